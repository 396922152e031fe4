/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention policies of `cairn forget`: buckets in local time, as restic has them. */
#include "policy.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "snapsel.h"

static const char *const reason_names[] = { "last",    "hourly", "daily",  "weekly",
	                                    "monthly", "yearly", "within", "tag" };

const char *policy_reason_name(unsigned bit)
{
	for (size_t i = 0; i < ARRAY_SIZE(reason_names); i++)
		if (bit == 1u << i)
			return reason_names[i];
	return "?";
}

void policy_reasons_str(unsigned reasons, char *buf, size_t size)
{
	size_t len = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < ARRAY_SIZE(reason_names); i++) {
		if (!(reasons & (1u << i)))
			continue;
		int k = snprintf(buf + len, size - len, "%s%s", len ? ", " : "", reason_names[i]);
		if (k < 0 || (size_t)k >= size - len)
			return;
		len += (size_t)k;
	}
}

/* ---- durations ---------------------------------------------------------- */

int policy_parse_duration(const char *s, struct policy_duration *out)
{
	static const char units[] = "ymdh";
	int v[4] = { 0 };
	unsigned seen = 0;
	const char *p = s;

	while (*p) {
		char *end;
		errno = 0;
		long x = *p >= '0' && *p <= '9' ? strtol(p, &end, 10) : -1;
		const char *u = x >= 0 && *end ? strchr(units, *end) : NULL;
		unsigned bit = u ? 1u << (u - units) : 0;
		if (errno || !u || x > 100000 || (seen & bit))
			return cairn_err_set(-EINVAL,
			                     "'%s' is not a duration like 1y6m, 30d or 12h "
			                     "(y, m, d, h; each once)",
			                     s);
		v[u - units] = (int)x;
		seen |= bit;
		p = end + 1;
	}
	if (!seen)
		return cairn_err_set(-EINVAL, "'%s' is not a duration like 1y6m, 30d or 12h", s);
	if (!v[0] && !v[1] && !v[2] && !v[3]) /* as --keep-last 0: it keeps nothing */
		return cairn_err_set(-EINVAL,
		                     "a duration of '%s' keeps nothing: give one above zero", s);
	*out = (struct policy_duration){ v[0], v[1], v[2], v[3] };
	return 0;
}

bool policy_is_empty(const struct policy *p)
{
	for (int i = 0; i < POLICY_NBUCKETS; i++)
		if (p->keep[i])
			return false;
	return !p->has_within && p->ntags == 0;
}

/* ---- applying ----------------------------------------------------------- */

static int64_t seconds(int64_t ns)
{
	return ns / 1000000000 - (ns % 1000000000 < 0);
}

/* The period of rule b a snapshot falls in, in local time; "last" gives each
 * snapshot its own. An hour is a real hour (its start in local time), so that
 * the hour a fall-back repeats counts twice. */
static int64_t bucket(int b, int64_t time_ns, size_t idx)
{
	time_t t = (time_t)seconds(time_ns);
	struct tm tm;
	char iso[16];

	if (b == 0 || !localtime_r(&t, &tm))
		return (int64_t)idx;
	int64_t y = tm.tm_year + 1900, m = tm.tm_mon + 1;
	switch (b) {
	case 1: { /* the moment the local hour began: a fall-back's two 02:00 are two */
		int64_t local = (int64_t)t + tm.tm_gmtoff, into = local % 3600;
		return (int64_t)t - (into < 0 ? into + 3600 : into);
	}
	case 2:
		return (y * 100 + m) * 100 + tm.tm_mday;
	case 3: /* ISO 8601 week: its year can differ from the calendar year */
		strftime(iso, sizeof(iso), "%G%V", &tm);
		return strtoll(iso, NULL, 10);
	case 4:
		return y * 100 + m;
	default:
		return y;
	}
}

/* The local time tm as a time_t, or -1 if no moment has that wall time and DST
 * flag. */
static time_t local_exact(const struct tm *tm, int isdst)
{
	struct tm in = *tm, back;
	in.tm_isdst = isdst;
	time_t t = mktime(&in);
	if (t == (time_t)-1 || !localtime_r(&t, &back))
		return (time_t)-1;
	if (back.tm_year != tm->tm_year || back.tm_mon != tm->tm_mon ||
	    back.tm_mday != tm->tm_mday || back.tm_hour != tm->tm_hour ||
	    back.tm_min != tm->tm_min || back.tm_sec != tm->tm_sec)
		return (time_t)-1;
	return t;
}

/* The wall time of t, counted in seconds like a time_t in UTC. */
static int64_t wall(time_t t)
{
	struct tm tm;
	return localtime_r(&t, &tm) ? (int64_t)timegm(&tm) : INT64_MIN;
}

/* The earliest moment whose local wall time is tm (normalised) or later. A
 * wall time that occurs twice (the hour a fall-back repeats) gives the first
 * one; a wall time in a spring-forward gap gives the moment of the jump. */
static int64_t local_earliest(struct tm tm)
{
	/* Normalise the fields (31 February, day 0) as calendar arithmetic:
	 * mktime would also move a wall time out of a gap. */
	int64_t want = (int64_t)timegm(&tm);
	struct tm guess = tm;
	guess.tm_isdst = -1;
	time_t norm = mktime(&guess);
	if (norm == (time_t)-1)
		return INT64_MIN;
	time_t a = local_exact(&tm, 0), b = local_exact(&tm, 1);
	if (a != (time_t)-1 && b != (time_t)-1)
		return (int64_t)(a < b ? a : b);
	if (a != (time_t)-1 || b != (time_t)-1)
		return (int64_t)(a != (time_t)-1 ? a : b);
	/* In a gap: search the jump near it, where the wall time rises steadily. */
	int64_t lo = (int64_t)norm - 26 * 3600, hi = (int64_t)norm + 26 * 3600;
	while (lo < hi) {
		int64_t mid = lo + (hi - lo) / 2;
		if (wall((time_t)mid) >= want)
			hi = mid;
		else
			lo = mid + 1;
	}
	return lo;
}

/* now minus d: years, months and days on the local calendar (a day is 23, 24 or
 * 25 hours), hours as real hours. Always before now. */
static int64_t within_cutoff(const struct policy_duration *d, int64_t now)
{
	time_t t = (time_t)now;
	struct tm tm;
	int64_t day = now;
	if (d->years || d->months || d->days) {
		if (!localtime_r(&t, &tm))
			return INT64_MIN;
		tm.tm_year -= d->years;
		tm.tm_mon -= d->months;
		tm.tm_mday -= d->days;
		day = local_earliest(tm);
		if (day == INT64_MIN)
			return INT64_MIN;
	}
	int64_t cutoff = day - (int64_t)d->hours * 3600;
	return cutoff < now ? cutoff : now - 1;
}

static bool has_tag(const struct policy *p, const struct policy_item *it)
{
	for (size_t i = 0; i < p->ntags; i++)
		if (snapsel_has_tags(it->tags, it->ntags, p->tags[i]))
			return true;
	return false;
}

size_t policy_apply(const struct policy *p, struct policy_item *items, size_t n, int64_t now)
{
	int left[POLICY_NBUCKETS];
	int64_t last[POLICY_NBUCKETS];
	bool started[POLICY_NBUCKETS] = { false };
	int64_t cutoff = p->has_within ? within_cutoff(&p->within, now) : 0;
	size_t kept = 0;

	memcpy(left, p->keep, sizeof(left));
	for (size_t i = 0; i < n; i++) {
		struct policy_item *it = &items[i];
		it->reasons = 0;
		if (has_tag(p, it))
			it->reasons |= POLICY_TAG;
		if (p->has_within && seconds(it->time_ns) >= cutoff)
			it->reasons |= POLICY_WITHIN;
		for (int b = 0; b < POLICY_NBUCKETS; b++) {
			if (left[b] == 0)
				continue;
			/* Newest first: the first snapshot met in a period is its newest. */
			int64_t v = bucket(b, it->time_ns, i);
			if (started[b] && v == last[b])
				continue;
			it->reasons |= 1u << b;
			started[b] = true;
			last[b] = v;
			if (left[b] > 0)
				left[b]--;
		}
		kept += it->reasons != 0;
	}
	return kept;
}

/* ---- grouping ----------------------------------------------------------- */

int policy_parse_group_by(const char *s, unsigned *out)
{
	unsigned by = 0;
	const char *p = s;

	while (*p) {
		size_t len = strcspn(p, ",");
		if (len == 4 && strncmp(p, "host", 4) == 0)
			by |= POLICY_GROUP_HOST;
		else if (len == 5 && strncmp(p, "paths", 5) == 0)
			by |= POLICY_GROUP_PATHS;
		else if (len == 4 && strncmp(p, "tags", 4) == 0)
			by |= POLICY_GROUP_TAGS;
		else
			return cairn_err_set(-EINVAL,
			                     "--group-by takes host, paths and tags, "
			                     "separated by commas, not '%s'",
			                     s);
		p += len + (p[len] == ',');
	}
	*out = by;
	return 0;
}

static bool same_list(char *const *a, size_t na, char *const *b, size_t nb, bool as_set)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++) {
		bool found = !as_set ? strcmp(a[i], b[i]) == 0 : false;
		for (size_t j = 0; as_set && !found && j < nb; j++)
			found = strcmp(a[i], b[j]) == 0;
		if (!found)
			return false;
	}
	return true;
}

static bool same_group(const struct cairn_snapshot *a, const struct cairn_snapshot *b, unsigned by)
{
	if ((by & POLICY_GROUP_HOST) && strcmp(a->hostname, b->hostname) != 0)
		return false;
	/* Backup stores paths normalised and sorted; tags are in the order given. */
	if ((by & POLICY_GROUP_PATHS) &&
	    !same_list(a->paths, a->npaths, b->paths, b->npaths, false))
		return false;
	return !(by & POLICY_GROUP_TAGS) || same_list(a->tags, a->ntags, b->tags, b->ntags, true);
}

int policy_group(struct cairn_snapshot *const *list, size_t n, unsigned by, size_t *group_out)
{
	_cleanup_free_ size_t *first = calloc(n ? n : 1, sizeof(*first));
	size_t groups = 0;

	if (!first)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t g = 0;
		while (g < groups && !same_group(list[first[g]], list[i], by))
			g++;
		if (g == groups)
			first[groups++] = i;
		group_out[i] = g;
	}
	return (int)groups;
}
