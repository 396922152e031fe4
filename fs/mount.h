/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: setting up and tearing down the state of one mount. */
#ifndef CAIRN_FS_MOUNT_H
#define CAIRN_FS_MOUNT_H

#include "fs.h"

/* The caches, the inode table, the snapshot view and the xattr scan of fs,
 * whose options the caller has set. On failure everything is undone. Here, at
 * the top of fs/, because the caches' loaders and the scan belong to modules
 * that use struct fs themselves. */
int fs_open(struct fs *fs, cairn_repo *repo, uint64_t cache_size);
void fs_close(struct fs *fs);

/* The kernel's read-ahead for the mount, in KiB. The kernel starts a FUSE mount
 * at 128 KiB and lets INIT only lower it; root may raise it through sysfs. */
#define FS_READAHEAD_KB 1024

/* A thread that raises the read-ahead of the mount at mountpoint to
 * FS_READAHEAD_KB, once the kernel has taken the INIT reply (which would undo
 * it): it stats the mount point, so the session loop must be running. Without
 * the permission (not root) it logs at debug level and reads stay at 128 KiB. */
struct fs_readahead {
	pthread_t thread;
	const char *mountpoint;
	int ready_fd;
	bool started;
};
/* ready_fd (>= 0): written (one zero byte) and closed once the stat returned,
 * so that a background start returns only when the mount answers and nothing
 * of the daemon's own holds it: an unmount right after the start would
 * otherwise find the mount busy with that stat. */
void fs_readahead_start(struct fs_readahead *ra, const char *mountpoint, int ready_fd);
/* After the unmount (the thread's stat returns then at the latest). */
void fs_readahead_join(struct fs_readahead *ra);

#endif
