/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /history/<path>: every distinct version of a path across the snapshots. */
#ifndef CAIRN_FS_HISTORY_H
#define CAIRN_FS_HISTORY_H

#include "fs.h"

/*
 * A history directory (FS_HIST node, vpath "history" or "history/<path>") lists
 * - one entry per version of <path>, named like the snapshot it first appears
 *   in: a snapshot starts a version when the entry's content or metadata (all
 *   but atime, dev and ino) differs from the previous version. The entry is the
 *   snapshot's own entry (same inode as under snapshots/).
 * - for a path that is a directory in some snapshot, the union of the child
 *   names over all versions, as history directories. A child name equal to a
 *   version name hides the version.
 * Computed on first use and kept in the node (freed with it) until the set of
 * snapshots changes; so is the listing built from it, which every READDIR page
 * borrows.
 * Trees are resolved once per distinct tree ID, so snapshots sharing a
 * directory cost nothing extra.
 */
int fs_hist_lookup(struct fs *fs, struct fs_view *v, struct fs_node *dir, const char *name,
                   struct fs_node **out);
/* The listing of dir, built on first use and kept with the node's history:
 * the caller drops its reference with fs_dirlist_put(). -ENOMEM. */
int fs_hist_list(struct fs *fs, struct fs_view *v, struct fs_node *dir, struct fs_dirlist **out);

/* Set st's owner and mode for history directory dir: the owner of the path's
 * newest version (root when the versions disagree) and the AND of the modes of
 * its directory versions; a path that never was a directory takes its parent's.
 * /history itself keeps what st holds. -ENOMEM. */
int fs_hist_stat(struct fs *fs, struct fs_view *v, struct fs_node *dir, struct stat *st);

/* Exposed for unit tests: whether two entries are the same version (equal in
 * everything but name, atime, dev and ino). */
bool fs_hist_same(const struct cairn_node *a, const struct cairn_node *b);

#endif
