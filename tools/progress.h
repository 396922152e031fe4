/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What `cairn backup` shows while it runs and when it ends: a live status line on a
 * terminal, JSON lines for scripts, the summary, and Prometheus metrics. */
#ifndef CAIRN_PROGRESS_H
#define CAIRN_PROGRESS_H

#include "archiver.h"
#include "cairn/storage.h"

struct progress;

/* NULL when out of memory. list: entries are listed on stdout (backup --list),
 * so no status line is drawn on a terminal. */
struct progress *progress_new(bool json, bool dry_run, bool list);
void progress_free(struct progress *pg);
/* A totals scan is worth its cost only when someone watches. */
bool progress_wants_scan(const struct progress *pg);
struct archiver_stats *progress_stats(struct progress *pg);
/* Start/stop the refresh thread (a no-op without a terminal or --json). */
void progress_start(struct progress *pg);
void progress_stop(struct progress *pg);
/* An archiver_opts.list callback (payload: the progress): one line per entry
 * on stdout, "new        /path", or a JSON message of type verbose_status. */
void progress_list(const char *path, enum archiver_fate fate, const char *rule, void *payload);
/* Snapshots in the repository after this backup (for the metrics). */
void progress_set_snapshots(struct progress *pg, uint64_t n);
/* What the backup asked of the storage, lock and all (for the summary and the
 * metrics); remote: the text summary says it too. */
void progress_set_requests(struct progress *pg, const struct cairn_storage_stats *s, bool remote);
/* Report the outcome r of the backup of snap: the summary (text or JSON), the error,
 * and the metrics file (not for a dry run; repo is the label, the repository as
 * given, and job, if not NULL, the label cairn_job). Returns the exit code. */
int progress_finish(struct progress *pg, int r, const struct cairn_snapshot *snap,
                    const char *metrics_path, const char *repo, const char *job);

#endif
