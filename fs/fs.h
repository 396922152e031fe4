/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: the state one mount shares between its FUSE handlers. */
#ifndef CAIRN_FS_FS_H
#define CAIRN_FS_FS_H

#define FUSE_USE_VERSION FUSE_MAKE_VERSION(3, 14)
#include <fuse_lowlevel.h>

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/stat.h>

#include "cairn/store.h"
#include "cache.h"
#include "snapview.h"
#include "inode.h"
#include "xscan.h"

/* Snapshot content never changes: the kernel may cache names and attributes for
 * a day. The virtual directories change when snapshots come and go: names in
 * them (snapshots/<time> included) and their attributes expire after a second. */
#define FS_CONTENT_TIMEOUT 86400.0
#define FS_VIRTUAL_TIMEOUT 1.0
#define FS_REFRESH_MS 1000

/* Buffers of evicted data blobs, kept for the next blobs: a fresh 1 MiB buffer
 * costs 256 page faults, each zeroing a page (mount.c). */
#define FS_BUFPOOL_SLOTS 8
struct fs_bufpool {
	pthread_mutex_t lock;
	struct cairn_buf v[FS_BUFPOOL_SLOTS]; /* protected by lock */
	size_t n;                             /* protected by lock */
	uint64_t bytes, max;                  /* protected by lock */
};

/* Everything here is set up before the session starts (mount.c) and is
 * thread-safe (or immutable) afterwards. */
struct fs {
	cairn_repo *repo;          /* opened read-only: short LMDB read txns per lookup */
	struct fs_cache *blobs;    /* decrypted data blobs, bounded by -o cache_size */
	struct fs_bufpool bufpool; /* for the blob cache's loads */
	bool pool_ready;
	struct fs_cache *trees; /* parsed trees (cairn_tree *) */
	struct fs_cache *files; /* extent maps of files being read, by inode (read.c) */
	struct fs_inodes *inodes;
	struct fs_snapview *snapview;
	uid_t uid; /* owner of the virtual directories: who mounted */
	gid_t gid;
	bool acl;               /* FUSE_CAP_POSIX_ACL requested (needs default_permissions) */
	bool no_open;           /* set at INIT: the kernel skips OPEN/RELEASE after one ENOSYS */
	bool no_opendir;        /* likewise OPENDIR/RELEASEDIR (ops.c) */
	bool local;             /* packs on a local disk: cheap enough to read speculatively */
	bool xattrs_always;     /* -o xattrs=always: never tell the kernel there are none */
	struct fs_xscan *xscan; /* whether any snapshot has xattrs */
	_Atomic uint64_t hist_listings; /* statistics only: history listings built */
};

/* A directory listing built at opendir for the virtual and history directories. */
struct fs_dirent {
	char *name;
	uint64_t ino;
	unsigned char type; /* DT_* */
};
void fs_dirents_free(struct fs_dirent *v, size_t n);
/* Append one entry (name copied); -ENOMEM. */
int fs_dirents_add(struct fs_dirent **v, size_t *n, size_t *cap, const char *name, size_t len,
                   uint64_t ino, unsigned char type);

/* A listing shared by whoever reads it: a history directory keeps its own
 * until the node is forgotten or the snapshots change, and each READDIR
 * borrows it instead of building it again. Thread-safe reference counting. */
struct fs_dirlist {
	atomic_size_t refs;
	struct fs_dirent *v;
	size_t n;
};
/* A list with one reference that owns v[0..n); on -ENOMEM v is freed. */
int fs_dirlist_new(struct fs_dirlist **out, struct fs_dirent *v, size_t n);
struct fs_dirlist *fs_dirlist_ref(struct fs_dirlist *l);
/* Drop one reference; the last frees the list. NULL is a no-op. */
void fs_dirlist_put(struct fs_dirlist *l);

/* The parsed tree of a directory node (FS_SNAPROOT, or an FS_ENTRY directory);
 * -ENOTDIR, or -EIO/-ENOMEM (logged). Put it back with fs_cache_put(fs->trees). */
int fs_dir_tree(struct fs *fs, const struct fs_node *n, struct fs_cache_ent **out);
/* S_IF* bits of a tree entry type. */
mode_t fs_type_mode(uint8_t type);
/* stat of an entry inside a snapshot. */
void fs_entry_stat(const struct cairn_node *cn, uint64_t ino, struct stat *st);
/* The full tree entry of an FS_ENTRY node (symlink target, xattrs, extents):
 * *cn is borrowed from *out, which the caller puts back with
 * fs_cache_put(fs->trees). -EIO or -ENOMEM (logged) when the tree cannot be read. */
int fs_entry_get(struct fs *fs, const struct fs_node *n, struct fs_cache_ent **out,
                 const struct cairn_node **cn);

#endif
