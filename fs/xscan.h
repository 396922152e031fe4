/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: whether any snapshot of a mount has an extended attribute at all. */
#ifndef CAIRN_FS_XSCAN_H
#define CAIRN_FS_XSCAN_H

#include <stdbool.h>

#include "cache.h"
#include "snapview.h"

/*
 * cp -a asks for every file's xattrs twice (LISTXATTR) and for its ACL once
 * (GETXATTR), and the kernel caches neither: three round trips per file on
 * top of the READs. A reply of ENOSYS makes the kernel stop asking for the life
 * of the mount (and answer EOPNOTSUPP itself), so a mount may give it only when
 * no snapshot it shows has an xattr or an ACL. The repository keeps no such
 * summary, so a scan finds out: a thread walks every directory tree of every
 * snapshot once (each tree ID once, through the tree cache, at low CPU
 * priority), stops at the first xattr it meets, and otherwise marks the
 * snapshot view it walked as having none. Until it is done, requests are
 * answered as usual.
 *
 * Once ENOSYS was sent, the kernel never asks again: a snapshot that appears
 * later with xattrs shows none through this mount (one warning is logged;
 * remount to see them). "-o xattrs=always" never sends ENOSYS, nor does a
 * mount of an s3:// repository, where the walk would fetch every tree, nor
 * one with default_permissions, where the kernel reads ACLs through GETXATTR
 * to enforce them. LISTXATTR never gets ENOSYS (xattr.c).
 */
struct fs_xscan;

/* Start the scan of snapview's snapshots, reading trees through tree_cache
 * (both borrowed: freed after the scan). always: -o xattrs=always; then
 * requests are always answered. -ENOMEM, or the error of pthread_create.
 * Caller frees with fs_xscan_free(). */
int fs_xscan_new(struct fs_xscan **out, struct fs_cache *tree_cache, struct fs_snapview *snapview,
                 bool always);
/* Stops the scan; NULL is a no-op. */
void fs_xscan_free(struct fs_xscan *x);

/* Whether the scan is done and found no xattr in the current snapshot view
 * (statistics and tests). */
bool fs_xscan_none(struct fs_xscan *x);

/* Whether to answer an xattr request with ENOSYS: the scan found no xattr in
 * the snapshots shown now, or the kernel was told so already. A view that
 * changed since the scan wakes it for the new snapshots, and is answered as
 * usual meanwhile. */
bool fs_xscan_enosys(struct fs_xscan *x);

#endif
