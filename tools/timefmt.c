/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times of snapshots, entries and locks as the commands print them. */
#include "timefmt.h"

#include <stdbool.h>
#include <stdio.h>
#include <time.h>

static bool split_ns(int64_t ns, struct tm *tm, long *frac)
{
	int64_t s = ns / 1000000000, f = ns % 1000000000;
	if (f < 0) {
		f += 1000000000;
		s--;
	}
	time_t t = (time_t)s;
	*frac = (long)f;
	return localtime_r(&t, tm) != NULL;
}

void timefmt_local(char buf[TIMEFMT_MAX], int64_t ns)
{
	struct tm tm;
	long frac;
	if (!split_ns(ns, &tm, &frac) || !strftime(buf, TIMEFMT_MAX, "%Y-%m-%d %H:%M:%S", &tm))
		snprintf(buf, TIMEFMT_MAX, "?");
}

void timefmt_rfc3339(char buf[TIMEFMT_MAX], int64_t ns)
{
	char date[32];
	struct tm tm;
	long frac;
	if (!split_ns(ns, &tm, &frac) || !strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm)) {
		snprintf(buf, TIMEFMT_MAX, "?");
		return;
	}
	long off = tm.tm_gmtoff, a = off < 0 ? -off : off;
	snprintf(buf, TIMEFMT_MAX, "%s.%09ld%c%02ld:%02ld", date, frac, off < 0 ? '-' : '+',
	         (a / 3600) % 100, a / 60 % 60);
}
