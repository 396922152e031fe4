/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The names cairnfs gives snapshots (fs/snapview.c): local time to the second,
 * then "-1", "-2" ... among equal names, by time and ID (docs/MOUNT.md). */
#include "check.h"

#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "snapview.h"

#define SEC 1700000000LL /* 2023-11-14T22:13:20Z */
#define NS 1000000000LL

static struct fs_snap snap(uint8_t tag, int64_t time_ns)
{
	struct fs_snap s = { .time_ns = time_ns };
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

int main(void)
{
	RUN(test_snapview__same_second);
	RUN(test_snapview__same_ns);
	RUN(test_snapview__two_seconds);
	RUN(test_snapview__dst);
	return 0;
}
