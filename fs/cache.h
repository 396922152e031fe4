/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A bounded, refcounted, scan-resistant (2Q) cache of objects named by ID. */
#ifndef CAIRN_FS_CACHE_H
#define CAIRN_FS_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "cairn/store.h"

/*
 * cairnfs keeps three of these: decrypted data blobs, parsed trees, and the
 * extent maps of files being read. Entries are refcounted, so an entry evicted
 * while a reader still copies from it lives until that reader puts it back, and
 * is found (not loaded a second time) by whoever asks meanwhile; the capacity
 * bounds what the cache itself keeps, beyond the newest entry, which always
 * stays. What is kept is chosen by 2Q (cache.c): one sequential walk (find,
 * cp -a, the xattr scan) does not push out what is used again and again. Two
 * threads asking for the same missing ID load it once (the second waits).
 * Failed loads are not cached: a blob that prune moved is found on the next
 * try. Thread-safe: one mutex.
 */
struct fs_cache;
struct fs_cache_ent;

struct fs_cache_ops {
	/* Load the object named id: *val and the bytes it occupies. Called without
	 * the cache lock, on any thread. Returns -errno with a message set. */
	int (*load)(void *payload, const struct cairn_id *id, void **val, size_t *bytes);
	void (*free)(void *val);
};

/* workers: threads serving fs_cache_prefetch() (0: prefetch is a no-op).
 * Caller frees with fs_cache_free(), after putting back every entry. -ENOMEM. */
int fs_cache_new(struct fs_cache **out, const char *name, const struct fs_cache_ops *ops,
                 void *payload, uint64_t capacity, unsigned workers);
void fs_cache_free(struct fs_cache *c);

/* A reference to the loaded object, or the loader's error (with its message).
 * The caller puts it back with fs_cache_put(). */
int fs_cache_get(struct fs_cache *c, const struct cairn_id *id, struct fs_cache_ent **out);
/* Another reference to an entry the caller holds. */
struct fs_cache_ent *fs_cache_ref(struct fs_cache *c, struct fs_cache_ent *e);
/* NULL is a no-op. */
void fs_cache_put(struct fs_cache *c, struct fs_cache_ent *e);
/* The object; borrowed while the reference is held. */
void *fs_cache_val(const struct fs_cache_ent *e);
const struct cairn_id *fs_cache_id(const struct fs_cache_ent *e);

/* Load ids[0..n) in the background, each unless it is cached, loading or
 * queued. Never blocks on I/O; drops the rest when the small queue is full. */
void fs_cache_prefetch(struct fs_cache *c, const struct cairn_id *ids, size_t n);

struct fs_cache_stats {
	uint64_t hits, misses, entries, bytes;
};
void fs_cache_stats(struct fs_cache *c, struct fs_cache_stats *out);

#endif
