/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The Prometheus textfile metrics of cairn backup (docs/OPERATIONS.md §5), shared
 * by backup, which writes them, and cairn run, which writes them in its stead
 * when the backup died before it could. */
#ifndef CAIRN_METRICS_H
#define CAIRN_METRICS_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/storage.h"
#include "cairn/store.h"

/* What the metrics of one backup say. */
struct metrics_backup {
	const char *repo; /* the repository as given (-r or CAIRN_REPO): the label */
	const char *job;  /* the job's name (cairn run), the label cairn_job; NULL: none */
	bool ok;          /* a snapshot was written */
	double duration;  /* seconds */
	const struct cairn_snapshot_summary *summary; /* NULL: nothing was counted */
	int64_t snapshots; /* in the repository; -1 unknown: the previous file's value */
	const struct cairn_storage_stats *requests; /* NULL: not counted */
};

/* s as a label value of the text exposition format (backslash, quote and newline
 * escaped, bytes that are not UTF-8 as U+FFFD), cut between characters to fit
 * size. */
void metrics_label_escape(char *out, size_t size, const char *s);
/* The value of the sample name{labels} in text (a textfile), 0 when absent. */
double metrics_old_value(const char *text, const char *name, const char *labels);
/* Append the cairn_backup_* families of m to b. old is the previous file's text
 * ("" if none): a failed backup keeps its last success time, and the counters go
 * on from its values. -ENOMEM. */
int metrics_backup_format(struct cairn_buf *b, const struct metrics_backup *m, const char *old);
/* Replace the textfile at path by the families of m (the previous one is read as
 * cli_metrics_read does). -errno of reading or writing it. */
int metrics_backup_write(const char *path, const struct metrics_backup *m);

#endif
