/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pure helpers of cairnfs: file offset -> extent maps and deterministic inode numbers. */
#ifndef CAIRN_FS_FSMAP_H
#define CAIRN_FS_FSMAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/store.h"

/* The root of the mount (FUSE_ROOT_ID). Hashed inode numbers never take 0 or 1. */
#define FS_ROOT_INO 1

/*
 * The extents of one regular file (FORMAT.md §10) with their start offsets, so
 * that the extent holding an offset is found by binary search. The caller embeds
 * it: _init / _release. ext is borrowed and must outlive the map. Immutable after
 * init, so readers on several threads may share it.
 */
struct fs_extmap {
	const struct cairn_extent *ext;
	size_t n;
	uint64_t *start; /* n + 1 entries: start[i] is where ext[i] begins, start[n] the size */
};
/* -ENOMEM, -EBADMSG when the lengths overflow 64 bits. */
int fs_extmap_init(struct fs_extmap *m, const struct cairn_extent *ext, size_t n);
void fs_extmap_release(struct fs_extmap *m);
static inline uint64_t fs_extmap_size(const struct fs_extmap *m)
{
	return m->start[m->n];
}
/* Index of the extent that holds byte off; off must be below the size. */
size_t fs_extmap_find(const struct fs_extmap *m, uint64_t off);
/* lseek(2) SEEK_DATA (data = true) or SEEK_HOLE from off: the offset found, or
 * -ENXIO when off is at or past the end (or no data follows, for SEEK_DATA).
 * The end of the file counts as a hole, as in lseek(2). */
int64_t fs_extmap_seek(const struct fs_extmap *m, uint64_t off, bool data);
/* Bytes held by data extents (holes excluded), for st_blocks. */
uint64_t fs_extents_allocated(const struct cairn_extent *ext, size_t n);

/*
 * Inode numbers are the first 8 bytes (little-endian) of SHA-256 over a domain
 * tag and the fields that identify the object, so that the same object gets the
 * same number on every mount. 0 and 1 are mapped away (1 is the root): 0 means
 * that SHA-256 failed (out of memory). A node needs a number (-ENOMEM without);
 * a directory listing's d_ino is only informational.
 */
/* A virtual node, by its path below the mount root (no leading '/'). */
uint64_t fs_ino_virtual(const char *vpath, size_t len);
/* A virtual symlink, by its path and its current target. */
uint64_t fs_ino_link(const char *vpath, size_t len, const char *target);
/* The root directory of a snapshot. */
uint64_t fs_ino_snaproot(const struct cairn_id *snap);
/* An entry inside a snapshot, entry index of tree. A hard link (not a
 * directory, nlink > 1) by its source's inode: (dev, ino) and what else its
 * names share, so that they share one number and a source inode reused for
 * another file does not merge the two; anything else by where it is, so that
 * files the source gave one (dev, ino) without linking them stay apart. */
uint64_t fs_ino_entry(const struct cairn_id *snap, const struct cairn_id *tree, uint32_t index,
                      const struct cairn_node *n);

#endif
