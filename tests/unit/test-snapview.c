/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names cairnfs gives snapshots (fs/snapview.c): local time to the second,
 * then "-1", "-2" ... among equal names, by time and ID (docs/MOUNT.md); and
 * under ids/, the shortest unique prefix of the ID, of at least 8 digits; and
 * which is the latest of a host or tag. */
#include "check.h"

#include <stdbool.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "snapview.h"

#define SEC 1700000000LL /* 2023-11-14T22:13:20Z */
#define NS 1000000000LL

static struct fs_snap snap(uint8_t tag, int64_t time_ns)
{
	struct fs_snap s = { .time_ns = time_ns, .host = (char *)"h" };
	memset(s.id.b, tag, sizeof(s.id.b));
	return s;
}

/* What snapshot i should be called: the name of a time, and a suffix (0: none). */
struct want {
	int64_t time_ns;
	unsigned k;
};

/* Names snaps[0..n) with the entries in the order perm gives (NULL: as they
 * are), and checks that snapshot i is named as want[i] says. */
static void check_names(const struct fs_snap *snaps, size_t n, const size_t *perm,
                        const struct want *want)
{
	struct fs_view_ent ents[16] = { 0 };
	CHECK(n <= ARRAY_SIZE(ents));
	for (size_t i = 0; i < n; i++)
		ents[i].snap = &snaps[perm ? perm[i] : i];
	CHECK_OK(fs_view_name(ents, n));
	for (size_t i = 0; i < n; i++) {
		size_t s = (size_t)(ents[i].snap - snaps);
		char base[FS_NAME_SIZE], name[2 * FS_NAME_SIZE];
		fs_time_name(base, want[s].time_ns);
		if (want[s].k)
			snprintf(name, sizeof(name), "%s-%u", base, want[s].k);
		else
			snprintf(name, sizeof(name), "%s", base);
		if (strcmp(ents[i].name, name) != 0) {
			fprintf(stderr, "snapshot %zu: named '%s', want '%s'\n", s, ents[i].name,
			        name);
			CHECK(!"name");
		}
	}
}

static void test_snapview__same_second(void)
{
	/* Six snapshots in one second, oldest first: five would have been named
	 * N, N-1, N, N-1, N by comparing with the previous name once suffixed. */
	struct fs_snap s[6];
	struct want w[6];
	for (uint8_t i = 0; i < 6; i++) {
		s[i] = snap((uint8_t)(60 - i), SEC * NS + 1000 * i);
		w[i] = (struct want){ SEC * NS, i };
	}
	check_names(s, 6, NULL, w);
	/* The same set in any order gives the same names: a rescan or another
	 * mount reads snapshots/ in another order. */
	static const size_t perms[][6] = { { 5, 4, 3, 2, 1, 0 },
		                           { 2, 0, 5, 1, 4, 3 },
		                           { 1, 3, 5, 0, 2, 4 } };
	for (size_t p = 0; p < ARRAY_SIZE(perms); p++)
		check_names(s, 6, perms[p], w);
}

static void test_snapview__same_ns(void)
{
	/* Equal times: the ID decides. */
	struct fs_snap s[3] = { snap(9, SEC * NS), snap(3, SEC * NS), snap(5, SEC * NS) };
	const struct want w[3] = { { SEC * NS, 2 }, { SEC * NS, 0 }, { SEC * NS, 1 } };
	static const size_t rev[3] = { 2, 1, 0 };
	check_names(s, 3, NULL, w);
	check_names(s, 3, rev, w);
}

static void test_snapview__two_seconds(void)
{
	/* Two seconds interleaved, and one alone: each second counts on its own. */
	const int64_t a = SEC * NS, b = (SEC + 1) * NS, c = (SEC + 5) * NS;
	struct fs_snap s[6] = { snap(1, a + 5), snap(2, b + 7), snap(3, a + 9),
		                snap(4, b + 3), snap(5, a + 2), snap(6, c) };
	const struct want w[6] = { { a, 1 }, { b, 1 }, { a, 2 }, { b, 0 }, { a, 0 }, { c, 0 } };
	static const size_t perm[6] = { 3, 5, 0, 4, 1, 2 };
	check_names(s, 6, NULL, w);
	check_names(s, 6, perm, w);
	check_names(s, 0, NULL, w); /* no snapshots */
}

static void test_snapview__dst(void)
{
	/* The hour repeated when daylight saving time ends: 02:30 CEST and 02:30
	 * CET one hour later share a name, the later one gets "-1". */
	const char *tz = getenv("TZ");
	char *old = tz ? strdup(tz) : NULL;
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	int64_t first = 1698539400LL; /* 2023-10-29T00:30:00Z = 02:30 CEST */
	struct fs_snap s[2] = { snap(7, (first + 3600) * NS), snap(8, first * NS) };
	const struct want w[2] = { { first * NS, 1 }, { first * NS, 0 } };
	char name[FS_NAME_SIZE];
	fs_time_name(name, (first + 3600) * NS);
	CHECK(strcmp(name, "2023-10-29T02:30:00") == 0);
	check_names(s, 2, NULL, w);
	if (old)
		setenv("TZ", old, 1);
	else
		unsetenv("TZ");
	tzset();
	free(old);
}

/* An ID from its leading hex digits, the rest filled from seed. */
static struct fs_snap snap_hex(const char *lead, uint64_t seed)
{
	struct fs_snap s = { .time_ns = (SEC + (int64_t)seed) * NS, .host = (char *)"h" };
	check_random(s.id.b, sizeof(s.id.b), seed);
	for (size_t i = 0; lead[i]; i++) {
		unsigned d = (unsigned)(lead[i] <= '9' ? lead[i] - '0' : lead[i] - 'a' + 10);
		uint8_t *b = &s.id.b[i / 2];
		*b = i % 2 ? (uint8_t)((*b & 0xf0) | d) : (uint8_t)((*b & 0x0f) | (d << 4));
	}
	return s;
}

/* Names snaps[0..n) in the order perm gives, checks that every ids/ name is a
 * prefix of its own ID of at least 8 digits that no other ID starts with, and
 * one digit shorter would not be, and that it leads back to its snapshot.
 * want[i]: the length snapshot i's name must have. */
static void check_sids(const struct fs_snap *snaps, size_t n, const size_t *perm,
                       const size_t *want)
{
	struct fs_view_ent ents[16] = { 0 };
	struct fs_view v = { .n = n, .v = ents };
	CHECK(n <= ARRAY_SIZE(ents));
	for (size_t i = 0; i < n; i++)
		ents[i].snap = &snaps[perm ? perm[i] : i];
	CHECK_OK(fs_view_name(ents, n));
	for (size_t i = 0; i < n; i++) {
		size_t s = (size_t)(ents[i].snap - snaps), len = strlen(ents[i].sid);
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &snaps[s].id);
		if (len != want[s])
			fprintf(stderr, "snapshot %zu: ids/%s, want %zu digits\n", s, ents[i].sid,
			        want[s]);
		CHECK_EQ(len, want[s]);
		CHECK(len >= FS_SID_MIN && strncmp(ents[i].sid, hex, len) == 0);
		bool shorter_taken = len == FS_SID_MIN;
		for (size_t k = 0; k < n; k++) {
			char other[CAIRN_ID_HEX_SIZE];
			cairn_id_hex(other, &snaps[k].id);
			CHECK(k == s || strncmp(other, hex, len) != 0);
			shorter_taken |= k != s && strncmp(other, hex, len - 1) == 0;
		}
		CHECK(shorter_taken); /* the shortest unique prefix */
		CHECK(fs_view_find_sid(&v, ents[i].sid) == &ents[i]);
	}
	CHECK(fs_view_find_sid(&v, "0123") == NULL);
}

static void test_snapview__short_ids(void)
{
	/* Before, ids/ showed 8 digits: snapshots 0 to 3 shared one name there,
	 * and only one of them could be reached. */
	struct fs_snap s[7] = {
		snap_hex("123456789a", 1), /* 9 digits shared with 1 */
		snap_hex("123456789b", 2),
		snap_hex("12345678", 3),   /* "1234567812" below: 8 with 0, 1 and 3 */
		snap_hex("1234567800", 4), /* 8 with 0, 1 and 2 */
		snap_hex("abcdef01", 5),   /* alone */
		snap_hex("abcdef11", 6),   /* 6 with 4: 8 digits are enough */
		snap_hex("", 7),
	};
	s[2].id.b[4] = 0x12; /* "1234567812...": 8 digits with 0, 1, 3 */
	s[6] = s[0];         /* all 64 digits but the last with 0 */
	s[6].id.b[CAIRN_ID_SIZE - 1] ^= 0x01;
	const size_t want[7] = { 64, 10, 9, 9, 8, 8, 64 };
	static const size_t perms[][7] = { { 6, 5, 4, 3, 2, 1, 0 }, { 3, 0, 6, 1, 5, 2, 4 } };
	check_sids(s, 7, NULL, want);
	for (size_t p = 0; p < ARRAY_SIZE(perms); p++)
		check_sids(s, 7, perms[p], want); /* names come from the set alone */
	/* Without its twin, 0 needs 10 digits; one snapshot alone gets 8. */
	check_sids(s, 6, NULL, (const size_t[]){ 10, 10, 9, 9, 8, 8 });
	check_sids(&s[4], 1, NULL, (const size_t[]){ 8 });
}

/* Names snaps[0..n) in the order perm gives and checks their names under
 * shadow/<host>/ against want[i], a UTC time in seconds. */
static void check_gmt(const struct fs_snap *snaps, size_t n, const size_t *perm,
                      const int64_t *want)
{
	struct fs_view_ent ents[16] = { 0 };
	CHECK(n <= ARRAY_SIZE(ents));
	for (size_t i = 0; i < n; i++)
		ents[i].snap = &snaps[perm ? perm[i] : i];
	CHECK_OK(fs_view_name(ents, n));
	for (size_t i = 0; i < n; i++) {
		size_t s = (size_t)(ents[i].snap - snaps);
		char name[FS_GMT_SIZE];
		time_t t = (time_t)want[s];
		struct tm tm;
		CHECK(gmtime_r(&t, &tm) != NULL);
		CHECK(strftime(name, sizeof(name), "@GMT-%Y.%m.%d-%H.%M.%S", &tm) > 0);
		if (strcmp(ents[i].gmt, name) != 0)
			fprintf(stderr, "snapshot %zu: shadow name '%s', want '%s'\n", s,
			        ents[i].gmt, name);
		CHECK(strcmp(ents[i].gmt, name) == 0);
	}
}

static void test_snapview__gmt(void)
{
	/* Samba's format, in UTC whatever the time zone: 2023-11-14T22:13:20Z. */
	setenv("TZ", "CET-1CEST,M3.5.0,M10.5.0/3", 1);
	tzset();
	struct fs_snap one = snap(1, SEC * NS + 999999999);
	struct fs_view_ent e = { .snap = &one };
	CHECK_OK(fs_view_name(&e, 1));
	CHECK(strcmp(e.gmt, "@GMT-2023.11.14-22.13.20") == 0);
	unsetenv("TZ");
	tzset();

	/* Three snapshots of host a in one second take it and the two after; the
	 * one of a in the second after that moves on too. Host b's own second is
	 * its own. */
	struct fs_snap s[6] = { snap(1, SEC * NS + 5), snap(2, SEC * NS + 1),
		                snap(3, SEC * NS + 1), snap(4, (SEC + 1) * NS + 7),
		                snap(5, SEC * NS + 3), snap(6, (SEC + 9) * NS) };
	s[4].host = (char *)"b";
	const int64_t want[6] = { SEC + 2, SEC, SEC + 1, SEC + 3, SEC, SEC + 9 };
	static const size_t perms[][6] = { { 5, 4, 3, 2, 1, 0 }, { 3, 0, 5, 1, 4, 2 } };
	check_gmt(s, 6, NULL, want);
	for (size_t p = 0; p < ARRAY_SIZE(perms); p++)
		check_gmt(s, 6, perms[p], want); /* names come from the set alone */
}

/* The snapshot fs_view_latest() picks among snaps, entered in the order perm
 * gives, as an index into snaps; -1 for none. */
static int latest_of(const struct fs_snap *snaps, size_t n, const size_t *perm, const char *host,
                     const char *tag)
{
	struct fs_view_ent ents[16] = { 0 };
	CHECK(n <= ARRAY_SIZE(ents));
	for (size_t i = 0; i < n; i++)
		ents[i].snap = &snaps[perm[i]];
	CHECK_OK(fs_view_name(ents, n));
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(ents[i].name, FS_LATEST) != 0); /* hosts/<h>/ holds both */
	struct fs_view v = { .n = n, .v = ents };
	const struct fs_view_ent *e = fs_view_latest(&v, host, tag);
	return e ? (int)(e->snap - snaps) : -1;
}

static void test_snapview__latest(void)
{
	/* Hosts a, b, c; tags x, y. a's and b's newest share the nanosecond:
	 * the higher ID is the newer, as it is the one with the "-1" suffix. */
	char *x[] = { (char *)"x" }, *xy[] = { (char *)"x", (char *)"y" }, *y[] = { (char *)"y" };
	struct fs_snap s[5] = { snap(1, SEC * NS), snap(2, (SEC + 5) * NS), snap(3, (SEC + 9) * NS),
		                snap(4, (SEC + 9) * NS), snap(5, (SEC - 100) * NS) };
	const char *host[5] = { "a", "b", "a", "b", "c" };
	for (size_t i = 0; i < 5; i++)
		s[i].host = (char *)host[i];
	s[0].tags = x, s[0].ntags = 1;
	s[1].tags = xy, s[1].ntags = 2;
	s[2].tags = y, s[2].ntags = 1;
	s[4].tags = x, s[4].ntags = 1;
	static const struct {
		const char *host, *tag;
		int want;
	} cases[] = { { NULL, NULL, 3 }, { "a", NULL, 2 }, { "b", NULL, 3 }, { "c", NULL, 4 },
		      { NULL, "x", 1 },  { NULL, "y", 2 }, { "a", "x", 0 },  { "c", "y", -1 },
		      { "d", NULL, -1 }, { NULL, "z", -1 } };
	static const size_t perms[][5] = { { 0, 1, 2, 3, 4 },
		                           { 4, 3, 2, 1, 0 },
		                           { 3, 0, 4, 2, 1 } };
	for (size_t p = 0; p < ARRAY_SIZE(perms); p++) {
		for (size_t c = 0; c < ARRAY_SIZE(cases); c++) {
			int got = latest_of(s, 5, perms[p], cases[c].host, cases[c].tag);
			if (got != cases[c].want)
				fprintf(stderr, "order %zu, host %s, tag %s: got %d, want %d\n", p,
				        cases[c].host ? cases[c].host : "-",
				        cases[c].tag ? cases[c].tag : "-", got, cases[c].want);
			CHECK(got == cases[c].want);
		}
	}
}

/* Two hosts (or tags) never share a directory, and each name is one. */
static void test_snapview__dir_names(void)
{
	static const char *const in[] = { "a/b", "a_b", "a%2Fb", "", ".", "..", "%00", "x", "%" };
	static const char *const want[] = { "a%2Fb", "a_b",   "a%252Fb", "%00", "%2E",
		                            "%2E.",  "%2500", "x",       "%25" };
	for (size_t i = 0; i < ARRAY_SIZE(in); i++) {
		char *got = fs_view_dir_name(in[i]);
		CHECK(got != NULL);
		if (strcmp(got, want[i]) != 0)
			fprintf(stderr, "'%s': got '%s', want '%s'\n", in[i], got, want[i]);
		CHECK(strcmp(got, want[i]) == 0);
		CHECK(strchr(got, '/') == NULL);
		free(got);
	}
}

int main(void)
{
	RUN(test_snapview__same_second);
	RUN(test_snapview__dir_names);
	RUN(test_snapview__same_ns);
	RUN(test_snapview__two_seconds);
	RUN(test_snapview__dst);
	RUN(test_snapview__short_ids);
	RUN(test_snapview__gmt);
	RUN(test_snapview__latest);
	return 0;
}
