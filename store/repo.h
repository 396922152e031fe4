/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Accessors other store/ files use on an open repository (defined in repo.c). Internal. */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include "config.h"
#include "index.h"
#include "pack.h"

/* Borrowed, valid while the repository is open. */
const struct cairn_keys *cairn_repo__keys(const cairn_repo *repo);
const struct cairn_config *cairn_repo__config(const cairn_repo *repo);
/* NULL when opened with no_index. */
cairn_index *cairn_repo__index(cairn_repo *repo);
/* True also for a repository whose packs come from a source (remote). */
bool cairn_repo__read_only(const cairn_repo *repo);
/* The first pack write, finish or index commit that failed on this handle, with
 * its message set again; 0 if none did. Thread-safe. */
int cairn_repo__write_error(cairn_repo *repo);
/* Open a pack for reading, from packs/ or the pack source; rel gets its relative
 * name (f->name points to it). Close with cairn_packf__close(). -ENOENT, -EIO. */
int cairn_repo__pack_open(cairn_repo *repo, const struct cairn_id *pack, struct cairn_packf *f,
                          char rel[CAIRN_PACK_RELPATH_SIZE]);
/* Pass one warning line to the caller's cairn_repo_opts.warn, if any. */
void cairn_repo__warn(const cairn_repo *repo, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* cairn_repo_snapshot_list(); strict: a damaged snapshot fails the listing
 * (-EBADMSG naming it) instead of being skipped with a warning (prune). */
int cairn_repo__snapshot_list(cairn_repo *repo, bool strict, struct cairn_snapshot ***out,
                              size_t *n);
/* snprintf "<repo>/<fmt...>" into out; -ENAMETOOLONG. */
int cairn_repo__path(const cairn_repo *repo, char *out, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));

#endif
