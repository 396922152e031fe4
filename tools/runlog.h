/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run history of cairn run, read by cairn report: one line per run in
 * $CAIRN_STATE_DIR/NAME.runs (default /var/lib/cairn; docs/OPERATIONS.md "Run
 * history"), appended when a run ends:
 *
 *   time=1714564800 exit=0 seconds=12.345 snapshot=1a2b3c4d backup=ok,0,10.200
 *   forget=ok,0,0.500 sync=failed,1,1.250 check=skipped
 *
 * (one line). Every value is a number, a short ID or a word, so a line needs no
 * quoting and awk reads it as well as this file does. */
#ifndef CAIRN_RUNLOG_H
#define CAIRN_RUNLOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/util.h"

#define RUNLOG_KEEP 500 /* runs kept in a log: older ones are dropped */
#define RUNLOG_STEPS 4

struct runlog_step {
	char name[8];   /* backup, forget, sync, check */
	char result[8]; /* ok, partial, failed, skipped */
	int exit_code;  /* when it ran */
	double seconds;
};

struct runlog_run {
	int64_t time; /* when it ended, Unix seconds */
	int exit_code;
	double seconds;
	char snapshot[9]; /* the backup's short ID, or "" */
	struct runlog_step steps[RUNLOG_STEPS];
	size_t nsteps;
};

/* One line (with its newline) for run. -ENOMEM. */
int runlog_format(struct cairn_buf *b, const struct runlog_run *run);
/* Parse one line (len bytes, no newline); false when it is not one. */
bool runlog_parse(const char *line, size_t len, struct runlog_run *out);
/* Append run to job's log (creating the directory, mode 0755, if need be),
 * keeping the last RUNLOG_KEEP runs. -errno of writing it. */
int runlog_append(const char *job, const struct runlog_run *run);
/* The last max runs of job, oldest first; lines that do not parse are skipped.
 * *n 0 when there is no log. Caller frees *out. -errno of reading it. */
int runlog_read(const char *job, size_t max, struct runlog_run **out, size_t *n);

#endif
