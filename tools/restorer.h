/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading snapshots back: finding entries by path, file content, and restore. */
#ifndef CAIRN_RESTORER_H
#define CAIRN_RESTORER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn/store.h"
#include "pattern.h"

/* ---- helpers shared by snapshots, ls, dump and restore ------------------ */

/* Load every snapshot and pick the one spec names ("latest" or an ID prefix of
 * 4+ hex digits). -ENOENT none, -EINVAL ambiguous or malformed, -EBADMSG a
 * corrupt snapshot file. Caller frees *out with cairn_snapshot_free(). */
int restorer_find_snapshot(cairn_repo *repo, const char *spec, struct cairn_snapshot **out);

/* Write a regular file's content to fd at its position, one blob at a time
 * through buf (so memory stays bounded by the largest chunk). Holes become zeros
 * when sparse is false, and are skipped with lseek when it is true (the caller
 * then sets the size with ftruncate). Each blob is verified and must have its
 * extent's length. -EBADMSG/-ENOENT for the repository (message names path and
 * offset), -EIO/-ENOSPC/-EFBIG for fd. */
int restorer_write_content(cairn_repo *repo, const struct cairn_node *node, const char *path,
                           int fd, bool sparse, struct cairn_buf *buf);

/* ---- restore ------------------------------------------------------------ */

struct restorer_opts {
	const char *target;                 /* directory (created if missing) */
	const char *path;                   /* subtree of the snapshot; NULL for "/" */
	const struct pattern_list *include; /* NULL or empty: everything */
	const struct pattern_list *exclude; /* NULL or empty: nothing */
};

struct restorer_stats {
	uint64_t files, dirs, links, others, bytes;
	uint64_t warnings; /* entries or attributes that could not be restored */
};

/* Restore snap's entries below o->path into o->target, keeping their absolute
 * layout (target/home/me/...). Existing entries of the same names are replaced;
 * files are written to a temporary name and renamed, so a failed file never has
 * its final name. Problems with single entries (a corrupt blob, a failing
 * syscall) are logged as warnings, counted in st->warnings, and the restore goes
 * on. Returns < 0 only for failures that stop it: -ENOENT/-ENOTDIR o->path is
 * not in the snapshot, a target that cannot be opened, -ENOSPC, -ENOMEM. */
int restorer_run(cairn_repo *repo, const struct cairn_snapshot *snap, const struct restorer_opts *o,
                 struct restorer_stats *st);

#endif
