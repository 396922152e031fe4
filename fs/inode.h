/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The inode table of cairnfs: FUSE node IDs (= st_ino) to nodes, with lookup counts. */
#ifndef CAIRN_FS_INODE_H
#define CAIRN_FS_INODE_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "cache.h"

enum fs_kind {
	FS_ROOT = 1, /* "/" */
	FS_VDIR,     /* snapshots, hosts, hosts/<h>, tags, tags/<t>, ids, shadow, shadow/<h> */
	FS_VLINK,    /* latest, hosts/<h>/<time>, tags/<t>/<time>, ids/<id> */
	FS_HIST,     /* history and history/<path...> */
	FS_SNAPROOT, /* snapshots/<time>, shadow/<h>/@GMT-<time>: one snapshot's root tree */
	FS_ENTRY,    /* an entry inside a snapshot */
};

/*
 * A node the kernel knows. Every field but the ones marked is immutable after
 * the node enters the table, so a handler may read them without a lock: the
 * kernel sends no request for a node after forgetting it.
 *
 * An entry inside a snapshot keeps where it is (the parent directory's tree ID
 * and its index there), not the tree: the kernel may hold millions of nodes,
 * and trees belong to the tree cache, which bounds their memory. Attributes,
 * symlink targets, xattrs and extents are read from the tree, through the
 * cache, when asked for (rarely: the kernel keeps attributes for a day).
 */
struct fs_node {
	uint64_t ino;
	uint64_t parent;       /* the directory it was first found in (for ".."); 0: unknown */
	uint64_t nlookup;      /* protected by the table lock */
	struct fs_node *hnext; /* protected by the table lock */
	enum fs_kind kind;
	uint8_t type;    /* FS_ENTRY: enum cairn_node_type */
	bool has_xattrs; /* FS_ENTRY */
	union {
		struct {             /* FS_VDIR, FS_VLINK, FS_HIST */
			char *vpath; /* path below the root, no leading '/' */
			size_t vpath_len;
			pthread_mutex_t hist_lock; /* FS_HIST */
			/* Protected by hist_lock: the computed listing, which the node
			 * frees through hist_free. Opaque, so that the table sits below
			 * history.c, which sets both. */
			void *hist;
			void (*hist_free)(void *hist);
			char *target; /* FS_VLINK: the target it was looked up with */
		};
		struct {                      /* FS_SNAPROOT, FS_ENTRY */
			struct cairn_id snap; /* the snapshot */
			union {
				struct cairn_id root; /* FS_SNAPROOT: the snapshot's root tree */
				struct cairn_id tree; /* FS_ENTRY: the parent directory's tree */
			};
			int64_t time_ns; /* FS_SNAPROOT: the snapshot's time */
			uint32_t index;  /* FS_ENTRY: the entry's index in tree */
		};
	};
};

struct fs_inodes;

/* Caller frees with fs_inodes_free(). -ENOMEM. */
int fs_inodes_new(struct fs_inodes **out);
/* Frees every node, whatever its lookup count (the session is over). */
void fs_inodes_free(struct fs_inodes *t);

/* Node constructors: a node outside the table (lookup count 0), -ENOMEM. */
int fs_node_new_virtual(struct fs_node **out, enum fs_kind kind, const char *vpath, size_t len);
int fs_node_new_snaproot(struct fs_node **out, const struct cairn_id *snap,
                         const struct cairn_id *root, int64_t time_ns);
/* Entry index of tree (borrowed: the node copies what it needs); -EINVAL when
 * index is out of range. */
int fs_node_new_entry(struct fs_node **out, const struct cairn_id *snap,
                      const struct fs_cache_ent *tree, size_t index);
/* For nodes that never entered the table. NULL is a no-op. */
void fs_node_free(struct fs_node *n);

/* The node with this number, borrowed while the kernel holds it; NULL if unknown. */
struct fs_node *fs_inodes_get(struct fs_inodes *t, uint64_t ino);
/* Count one kernel lookup of n: returns the node in the table with n's number,
 * which is n itself or an older equal node (then n is freed). */
struct fs_node *fs_inodes_add(struct fs_inodes *t, struct fs_node *n);
/* The kernel dropped nlookup references (FUSE forget); frees the node at zero. */
void fs_inodes_forget(struct fs_inodes *t, uint64_t ino, uint64_t nlookup);
/* Number of nodes in the table (statistics). */
size_t fs_inodes_count(struct fs_inodes *t);

#endif
