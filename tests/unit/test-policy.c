/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Retention policies (tools/policy.c) on synthetic snapshot times, fixed clock, UTC. */
#include "check.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "policy.h"
#include "cleanup.h"

/* "2024-03-10 18:00" in UTC, as Unix seconds. */
static int64_t at(const char *s)
{
	struct tm tm = { 0 };
	CHECK(sscanf(s, "%d-%d-%d %d:%d", &tm.tm_year, &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
	             &tm.tm_min) == 5);
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	return (int64_t)timegm(&tm);
}

/* Snapshots at the given times (newest first), judged by p at now; expect[i] is
 * the reasons the i-th must be kept for (0: removed). */
static void expect_policy(const struct policy *p, const char *const *times, const unsigned *expect,
                          size_t n, int64_t now)
{
	struct policy_item items[32] = { { 0 } };
	size_t kept = 0;

	CHECK(n <= 32);
	for (size_t i = 0; i < n; i++)
		items[i].time_ns = at(times[i]) * 1000000000 + 123; /* ns must not matter */
	for (size_t i = 0; i < n; i++)
		kept += expect[i] != 0;
	CHECK_EQ(policy_apply(p, items, n, now), kept);
	for (size_t i = 0; i < n; i++) {
		if (items[i].reasons != expect[i])
			fprintf(stderr, "snapshot %zu (%s): reasons %#x, expected %#x\n", i,
			        times[i], items[i].reasons, expect[i]);
		CHECK_EQ(items[i].reasons, expect[i]);
	}
}

static void test_policy__last(void)
{
	static const char *const t[] = { "2024-01-05 00:00", "2024-01-04 00:00", "2024-01-03 00:00",
		                         "2024-01-02 00:00", "2024-01-01 00:00" };
	static const unsigned e[] = { POLICY_LAST, POLICY_LAST, POLICY_LAST, 0, 0 };
	struct policy p = { .keep = { 3 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-02-01 00:00"));
}

static void test_policy__hourly(void)
{
	static const char *const t[] = { "2024-01-01 10:59", "2024-01-01 10:01", "2024-01-01 09:30",
		                         "2024-01-01 08:00" };
	static const unsigned e[] = { POLICY_HOURLY, 0, POLICY_HOURLY, 0 };
	struct policy p = { .keep = { [1] = 2 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-02-01 00:00"));
}

/* Days are counted among days with snapshots: a gap does not use up the count. */
static void test_policy__daily(void)
{
	static const char *const t[] = {
		"2024-03-10 18:00", "2024-03-10 09:00", "2024-03-09 23:59",
		"2024-03-09 00:00", "2024-03-07 12:00", "2024-03-01 12:00"
	};
	static const unsigned e[] = { POLICY_DAILY, 0, POLICY_DAILY, 0, POLICY_DAILY, 0 };
	struct policy p = { .keep = { [2] = 3 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-03-11 00:00"));
}

/* ISO weeks: Mon 2024-12-30 is in 2025-W01, Sun 12-29 and Mon 12-23 in 2024-W52. */
static void test_policy__weekly_iso(void)
{
	static const char *const t[] = { "2024-12-30 08:00", "2024-12-29 08:00", "2024-12-23 08:00",
		                         "2024-12-22 08:00", "2024-01-01 08:00" };
	static const unsigned e[] = { POLICY_WEEKLY, POLICY_WEEKLY, 0, POLICY_WEEKLY, 0 };
	struct policy p = { .keep = { [3] = 3 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2025-01-01 00:00"));
}

static void test_policy__monthly_and_yearly(void)
{
	static const char *const t[] = {
		"2024-05-15 00:00", "2024-05-01 00:00", "2024-04-20 00:00",
		"2023-12-31 23:00", "2023-06-01 00:00", "2022-01-01 00:00"
	};
	static const unsigned e[] = {
		POLICY_MONTHLY | POLICY_YEARLY, 0, POLICY_MONTHLY, POLICY_YEARLY, 0, POLICY_YEARLY
	};
	struct policy p = { .keep = { [4] = 2, [5] = 3 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-06-01 00:00"));
}

/* Several rules: each snapshot collects every rule that keeps it. */
static void test_policy__combined(void)
{
	static const char *const t[] = { "2024-05-02 12:00", "2024-05-02 08:00", "2024-05-01 12:00",
		                         "2024-04-30 12:00", "2024-03-15 12:00" };
	static const unsigned e[] = { POLICY_LAST | POLICY_DAILY | POLICY_MONTHLY, POLICY_LAST,
		                      POLICY_DAILY, POLICY_MONTHLY, POLICY_MONTHLY };
	struct policy p = { .keep = { 2, 0, 2, 0, 3 } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-06-01 00:00"));
}

static void test_policy__unlimited(void)
{
	static const char *const t[] = { "2024-01-03 10:00", "2024-01-03 09:00", "2024-01-02 10:00",
		                         "2020-01-01 10:00" };
	static const unsigned e[] = { POLICY_DAILY, 0, POLICY_DAILY, POLICY_DAILY };
	struct policy p = { .keep = { [2] = POLICY_UNLIMITED } };
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-02-01 00:00"));
}

/* now - 1m2d from 2024-06-15 12:00 is 2024-05-13 12:00, which is still kept. */
static void test_policy__within(void)
{
	static const char *const t[] = { "2024-06-15 11:00", "2024-05-13 12:00", "2024-05-13 11:59",
		                         "2024-01-01 00:00" };
	static const unsigned e[] = { POLICY_WITHIN, POLICY_WITHIN, 0, 0 };
	struct policy p = { .has_within = true };
	CHECK_OK(policy_parse_duration("1m2d", &p.within));
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-06-15 12:00"));

	/* 12h, 5m and 1y from the same clock: cut-offs 06-15 00:00, 01-15 12:00 and
	 * 2023-06-15 12:00. */
	static const unsigned e12h[] = { POLICY_WITHIN, 0, 0, 0 };
	CHECK_OK(policy_parse_duration("12h", &p.within));
	expect_policy(&p, t, e12h, ARRAY_SIZE(t), at("2024-06-15 12:00"));
	static const unsigned e5m[] = { POLICY_WITHIN, POLICY_WITHIN, POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("5m", &p.within));
	expect_policy(&p, t, e5m, ARRAY_SIZE(t), at("2024-06-15 12:00"));
	static const unsigned e1y[] = { POLICY_WITHIN, POLICY_WITHIN, POLICY_WITHIN,
		                        POLICY_WITHIN };
	CHECK_OK(policy_parse_duration("1y", &p.within));
	expect_policy(&p, t, e1y, ARRAY_SIZE(t), at("2024-06-15 12:00"));
}

/* Calendar arithmetic normalises like mktime: 2024-03-31 minus 1 month is
 * "February 31", that is 2024-03-02 (2024 is a leap year). */
static void test_policy__within_month_end(void)
{
	static const char *const t[] = { "2024-03-02 00:00", "2024-03-01 23:00" };
	static const unsigned e[] = { POLICY_WITHIN, 0 };
	struct policy p = { .has_within = true };
	CHECK_OK(policy_parse_duration("1m", &p.within));
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2024-03-31 00:00"));
}

static void use_tz(const char *tz)
{
	setenv("TZ", tz, 1);
	tzset();
}

/* Europe/Berlin, times given in UTC. On 2026-03-29 01:00 UTC the clocks jump
 * from 02:00 CET to 03:00 CEST; on 2026-10-25 01:00 UTC they go back from
 * 03:00 CEST to 02:00 CET. Hours are real hours, days calendar days. */
static void test_policy__within_dst(void)
{
	struct policy p = { .has_within = true };
	use_tz("Europe/Berlin");

	/* 03:30 CEST minus 1h is 02:30 CEST: wall time 01:30 never existed. */
	static const char *const gap[] = { "2026-03-29 01:20", "2026-03-29 01:00",
		                           "2026-03-29 00:30", "2026-03-29 00:29" };
	static const unsigned e_gap[] = { POLICY_WITHIN, POLICY_WITHIN, POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("1h", &p.within));
	expect_policy(&p, gap, e_gap, ARRAY_SIZE(gap), at("2026-03-29 01:30"));

	/* 12:00 CEST minus 12h: 12 real hours, 23:00 CET the day before. */
	static const char *const half[] = { "2026-03-28 22:00", "2026-03-28 21:59" };
	static const unsigned e_half[] = { POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("12h", &p.within));
	expect_policy(&p, half, e_half, ARRAY_SIZE(half), at("2026-03-29 10:00"));

	/* 2026-03-30 02:30 CEST minus 1d is 03-29 02:30, in the gap: from the jump. */
	static const char *const day[] = { "2026-03-29 01:00", "2026-03-29 00:59" };
	static const unsigned e_day[] = { POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("1d", &p.within));
	expect_policy(&p, day, e_day, ARRAY_SIZE(day), at("2026-03-30 00:30"));

	/* 02:10 CET minus 1h is 02:10 CEST, the first 02:10 of the fall-back. */
	static const char *const back[] = { "2026-10-25 00:10", "2026-10-25 00:09" };
	static const unsigned e_back[] = { POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("1h", &p.within));
	expect_policy(&p, back, e_back, ARRAY_SIZE(back), at("2026-10-25 01:10"));

	/* 2026-10-26 02:30 CET minus 1d is 10-25 02:30, which occurs twice: the
	 * first (CEST, 00:30 UTC), a day of 25 hours. */
	static const char *const twice[] = { "2026-10-25 00:30", "2026-10-25 00:29" };
	static const unsigned e_twice[] = { POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("1d", &p.within));
	expect_policy(&p, twice, e_twice, ARRAY_SIZE(twice), at("2026-10-26 01:30"));

	/* A plain day: 2026-06-10 12:00 CEST minus 1d2h is 06-09 10:00 CEST. */
	static const char *const plain[] = { "2026-06-09 08:00", "2026-06-09 07:59" };
	static const unsigned e_plain[] = { POLICY_WITHIN, 0 };
	CHECK_OK(policy_parse_duration("1d2h", &p.within));
	expect_policy(&p, plain, e_plain, ARRAY_SIZE(plain), at("2026-06-10 10:00"));
	use_tz("UTC");
}

/* 2027-10-31 in Europe/Berlin: 02:00-03:00 comes twice, CEST (00:00-01:00 UTC)
 * then CET (01:00-02:00 UTC): two hours, each with its newest kept. Days stay
 * calendar days: all four are one day. */
static void test_policy__hourly_fall_back(void)
{
	static const char *const t[] = { "2027-10-31 01:40", "2027-10-31 01:10", "2027-10-31 00:40",
		                         "2027-10-31 00:10" };
	static const unsigned e[] = { POLICY_HOURLY | POLICY_DAILY, 0, POLICY_HOURLY, 0 };
	struct policy p = { .keep = { [1] = 24, [2] = 7 } };
	use_tz("Europe/Berlin");
	expect_policy(&p, t, e, ARRAY_SIZE(t), at("2027-10-31 02:00"));
	/* Kolkata is UTC+05:30: its hours start at :30 UTC (07:10, 06:40, 06:10, 05:40). */
	static const char *const k[] = { "2027-10-31 01:40", "2027-10-31 01:10", "2027-10-31 00:40",
		                         "2027-10-31 00:10" };
	static const unsigned ek[] = { POLICY_HOURLY, POLICY_HOURLY, 0, POLICY_HOURLY };
	struct policy q = { .keep = { [1] = 24 } };
	use_tz("Asia/Kolkata");
	expect_policy(&q, k, ek, ARRAY_SIZE(k), at("2027-10-31 02:00"));
	use_tz("UTC");
}

static void test_policy__tags(void)
{
	static char *keep_tags[] = { (char *)"keep", (char *)"other" };
	static const char *const wanted[] = { "keep" };
	struct policy_item items[3] = {
		{ at("2024-01-03 00:00") * 1000000000, NULL, 0, 0 },
		{ at("2024-01-02 00:00") * 1000000000, keep_tags, 2, 0 },
		{ at("2024-01-01 00:00") * 1000000000, keep_tags + 1, 1, 0 },
	};
	struct policy p = { .keep = { 1 }, .tags = wanted, .ntags = 1 };
	CHECK_EQ(policy_apply(&p, items, 3, at("2024-02-01 00:00")), 2);
	CHECK_EQ(items[0].reasons, POLICY_LAST);
	CHECK_EQ(items[1].reasons, POLICY_TAG);
	CHECK_EQ(items[2].reasons, 0);
}

/* --keep-tag a,b keeps a snapshot with both tags; repeated, with either group
 * (restic's tag lists); '' keeps the untagged ones. */
static void test_policy__tag_groups(void)
{
	static char *ab[] = { (char *)"a", (char *)"b" }, *bc[] = { (char *)"b", (char *)"c" };
	static const char *const both[] = { "a,b" }, *const either[] = { "x,a", "c" },
	                         *const untagged[] = { "" };
	struct policy_item items[4] = {
		{ at("2024-01-04 00:00") * 1000000000, ab, 2, 0 },
		{ at("2024-01-03 00:00") * 1000000000, ab, 1, 0 },
		{ at("2024-01-02 00:00") * 1000000000, bc, 2, 0 },
		{ at("2024-01-01 00:00") * 1000000000, NULL, 0, 0 },
	};
	struct policy p = { .tags = both, .ntags = 1 };
	CHECK_EQ(policy_apply(&p, items, 4, at("2024-02-01 00:00")), 1);
	CHECK_EQ(items[0].reasons, POLICY_TAG);
	p = (struct policy){ .tags = either, .ntags = 2 };
	CHECK_EQ(policy_apply(&p, items, 4, at("2024-02-01 00:00")), 1);
	CHECK_EQ(items[2].reasons, POLICY_TAG);
	p = (struct policy){ .tags = untagged, .ntags = 1 };
	CHECK_EQ(policy_apply(&p, items, 4, at("2024-02-01 00:00")), 1);
	CHECK_EQ(items[3].reasons, POLICY_TAG);
}

static void test_policy__empty(void)
{
	struct policy p = { 0 };
	CHECK(policy_is_empty(&p));
	CHECK_EQ(policy_apply(&p, NULL, 0, 0), 0);
	p.keep[5] = 1;
	CHECK(!policy_is_empty(&p));
	struct policy q = { .has_within = true };
	CHECK(!policy_is_empty(&q));
}

static void test_policy__durations(void)
{
	struct policy_duration d;
	CHECK_OK(policy_parse_duration("2y5m7d3h", &d));
	CHECK(d.years == 2 && d.months == 5 && d.days == 7 && d.hours == 3);
	CHECK_OK(policy_parse_duration("3h1y", &d));
	CHECK(d.years == 1 && d.months == 0 && d.days == 0 && d.hours == 3);
	static const char *const bad[] = { "", "5", "5x", "1d1d", "-1d", "d", "1.5d", "1d ", "+1d",
		                           "99999999999999999999d",
		                           /* keeps nothing: forget would remove every snapshot */
		                           "0d", "0y0m0d0h" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_ERR(policy_parse_duration(bad[i], &d), -EINVAL);
}

static void test_policy__reason_names(void)
{
	char buf[128];
	policy_reasons_str(POLICY_LAST | POLICY_DAILY | POLICY_TAG, buf, sizeof(buf));
	CHECK(strcmp(buf, "last, daily, tag") == 0);
	policy_reasons_str(0, buf, sizeof(buf));
	CHECK(buf[0] == '\0');
	CHECK(strcmp(policy_reason_name(POLICY_WITHIN), "within") == 0);
}

static void test_policy__group_by(void)
{
	unsigned by;
	CHECK_OK(policy_parse_group_by("host,paths,tags", &by));
	CHECK_EQ(by, POLICY_GROUP_HOST | POLICY_GROUP_PATHS | POLICY_GROUP_TAGS);
	CHECK_OK(policy_parse_group_by("", &by));
	CHECK_EQ(by, 0);
	CHECK_OK(policy_parse_group_by("paths", &by));
	CHECK_EQ(by, POLICY_GROUP_PATHS);
	CHECK_ERR(policy_parse_group_by("host,bogus", &by), -EINVAL);
	CHECK_ERR(policy_parse_group_by("hosts", &by), -EINVAL);
}

static void test_policy__groups(void)
{
	static char *px[] = { (char *)"/x" }, *py[] = { (char *)"/y" };
	static char *tab[] = { (char *)"a", (char *)"b" }, *tba[] = { (char *)"b", (char *)"a" };
	struct cairn_snapshot s[5] = {
		{ .hostname = (char *)"a", .paths = px, .npaths = 1 },
		{ .hostname = (char *)"a", .paths = py, .npaths = 1 },
		{ .hostname = (char *)"b", .paths = px, .npaths = 1 },
		{ .hostname = (char *)"a", .paths = px, .npaths = 1, .tags = tab, .ntags = 2 },
		{ .hostname = (char *)"a", .paths = px, .npaths = 1, .tags = tba, .ntags = 2 },
	};
	struct cairn_snapshot *list[5] = { &s[0], &s[1], &s[2], &s[3], &s[4] };
	size_t g[5];

	CHECK_EQ(policy_group(list, 5, POLICY_GROUP_HOST | POLICY_GROUP_PATHS, g), 3);
	CHECK(g[0] == 0 && g[1] == 1 && g[2] == 2 && g[3] == 0 && g[4] == 0);
	CHECK_EQ(policy_group(list, 5, POLICY_GROUP_HOST, g), 2);
	CHECK(g[0] == 0 && g[1] == 0 && g[2] == 1 && g[3] == 0);
	CHECK_EQ(policy_group(list, 5, 0, g), 1);
	/* Tags compare as sets: {a,b} and {b,a} are one group. */
	CHECK_EQ(policy_group(list, 5, POLICY_GROUP_TAGS, g), 2);
	CHECK(g[0] == 0 && g[2] == 0 && g[3] == 1 && g[4] == 1);
	CHECK_EQ(policy_group(list, 0, POLICY_GROUP_HOST, g), 0);
}

int main(void)
{
	/* Buckets are local time; the expectations are for UTC. */
	setenv("TZ", "UTC", 1);
	tzset();
	RUN(test_policy__last);
	RUN(test_policy__hourly);
	RUN(test_policy__daily);
	RUN(test_policy__weekly_iso);
	RUN(test_policy__monthly_and_yearly);
	RUN(test_policy__combined);
	RUN(test_policy__unlimited);
	RUN(test_policy__within);
	RUN(test_policy__within_month_end);
	RUN(test_policy__within_dst);
	RUN(test_policy__hourly_fall_back);
	RUN(test_policy__tags);
	RUN(test_policy__tag_groups);
	RUN(test_policy__empty);
	RUN(test_policy__durations);
	RUN(test_policy__reason_names);
	RUN(test_policy__group_by);
	RUN(test_policy__groups);
	return 0;
}
