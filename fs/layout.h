/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The virtual directories of a mount: /, snapshots/, latest, hosts/, tags/, ids/, shadow/. */
#ifndef CAIRN_FS_LAYOUT_H
#define CAIRN_FS_LAYOUT_H

#include "fs.h"

/*
 * These work on every node that is not snapshot content: FS_ROOT, FS_VDIR,
 * FS_VLINK and (through history.h) FS_HIST. Each call looks at the
 * snapshot view's current view, so new snapshots show up and removed ones vanish.
 */

/* The child name of dir as a new node outside the inode table. -ENOENT. */
int fs_layout_lookup(struct fs *fs, struct fs_node *dir, const char *name, struct fs_node **out);
/* Attributes; -ENOENT when the node no longer exists (e.g. its snapshots were removed). */
int fs_layout_stat(struct fs *fs, const struct fs_node *n, struct stat *st);
/* A symlink's target, malloc'd: caller frees. -ENOENT. */
int fs_layout_readlink(struct fs *fs, const struct fs_node *n, char **out);
/* The entries of dir (without "." and ".."). Caller drops it with fs_dirlist_put(). */
int fs_layout_list(struct fs *fs, struct fs_node *dir, struct fs_dirlist **out);

#endif
