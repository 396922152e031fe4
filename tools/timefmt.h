/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Times of snapshots, entries and locks as the commands print them. */
#ifndef CAIRN_TIMEFMT_H
#define CAIRN_TIMEFMT_H

#include <stdint.h>

/* "YYYY-MM-DD HH:MM:SS" local time, and RFC 3339 with nanoseconds and the local
 * offset ("2024-05-01T10:00:00.123456789+02:00"), of ns since the epoch; "?"
 * when the time cannot be shown. */
#define TIMEFMT_MAX 64
void timefmt_local(char buf[TIMEFMT_MAX], int64_t ns);
void timefmt_rfc3339(char buf[TIMEFMT_MAX], int64_t ns);

#endif
