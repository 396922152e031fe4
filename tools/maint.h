/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers shared by the maintenance commands: forget, prune, check, diff, find, stats. */
#ifndef CAIRN_MAINT_H
#define CAIRN_MAINT_H

#include <stdbool.h>
#include <stdio.h>

#include "cairn/store.h"

static inline void cairn_lock_releasep(cairn_lock **l)
{
	cairn_lock_release(*l);
}
#define _cleanup_lock_ __attribute__((cleanup(cairn_lock_releasep)))

/* Before a writer (backup, copy, prune) adds to the repository, what a killed run left
 * (docs/DESIGN.md "The ingester"): packs it made durable but never indexed, and
 * the packs it was filling. own is the writer's lock. Logs what it did; a
 * failure is a warning. */
void maint_recover(cairn_repo *repo, const cairn_lock *own);

/* How `prune` and `forget --prune` run prune and report it. */
struct maint_prune_opts {
	double max_unused; /* percent */
	bool dry_run;
	bool json;
	cairn_lock *lock; /* the exclusive lock held */
};
/* Prune and print the report (text, or one JSON summary line). CAIRN_TEST_CRASH_POINT
 * names a step of cairn_prune_opts.on_step at which the process kills itself with
 * SIGKILL, for crash tests (tests/integration/prune-crash.sh). */
int maint_prune(cairn_repo *repo, const struct maint_prune_opts *o);
/* Test hooks at a named step: CAIRN_TEST_CRASH_POINT=step kills the process
 * with SIGKILL, CAIRN_TEST_STOP_POINT=step stops it until SIGCONT. */
void maint_test_point(const char *step);

/* A path being built during a tree walk: "/a/b", NUL-terminated, raw bytes. */
struct maint_path {
	struct cairn_buf b;
};
/* Append "/name"; *mark gets the length to pop back to. -ENOMEM. */
int maint_path_push(struct maint_path *p, const uint8_t *name, size_t len, size_t *mark);
void maint_path_pop(struct maint_path *p, size_t mark);
/* The path, or "/" at the root. Borrowed. */
const char *maint_path_str(const struct maint_path *p, size_t *len);

/* Commands over many snapshots (find, stats) go past one whose trees are
 * damaged (docs/DESIGN.md "Damaged snapshot files"): for error r of its walk,
 * maint_snapshot_damaged() logs "snapshot ID: <message>" and returns 1 when r
 * is damage (a tree or blob missing, corrupt or not authentic, -EBADMSG,
 * -ENOENT, -EKEYREJECTED, -ELOOP), else 0: a failure that stops the command. */
int maint_snapshot_damaged(const struct cairn_snapshot *s, int r);
/* After the walks: 0, or -EBADMSG and "N snapshots could not be read (see
 * above)" when n were damaged, for the command's exit status. */
int maint_damaged_result(size_t n);

/* "abcd1234": the short ID of FORMAT.md §1. */
void maint_short_id(char out[9], const struct cairn_id *id);
/* Parse "--lock-wait SECONDS". */
int maint_parse_wait(const char *arg, unsigned *out);

#endif
