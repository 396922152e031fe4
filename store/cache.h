/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Local caches of a remote storage's objects (docs/S3.md §5). Internal. */
#ifndef CAIRN_CACHE_H
#define CAIRN_CACHE_H

#include "cairn/storage.h"
#include "cairn/store.h"

/*
 * Everything a repository stores under a name is immutable once written (a key
 * file, the config, snapshots, index files and packs are replaced only under new
 * names), so a cached copy is valid for as long as the object exists, and a
 * damaged one fails its authentication when used and is fetched again. The
 * cache lives in the storage's state directory:
 *   config, keys/, snapshots/, indexes/   whole objects
 *   tails/<pack>    u64 pack size, the first 8 bytes, then the header and trailer
 *   meta/xx/<pack>.<n>    1 MiB block n of a pack, read for a tree: kept
 *   blocks/xx/<pack>.<n>  1 MiB block n of a pack, read for data: at most the
 *                         budget, least recently used evicted to 3/4 of it
 * Thread-safe. A failed cache write costs a later request, nothing else.
 */
typedef struct cairn_cache cairn_cache;

#define CAIRN_CACHE_SIZE_DEFAULT (1ull << 30)

/* budget: bytes of data blocks; 0: CAIRN_CACHE_SIZE from the environment, else
 * CAIRN_CACHE_SIZE_DEFAULT. The storage must outlive the cache. */
int cairn_cache__open(cairn_cache **out, cairn_storage *st, uint64_t budget);
void cairn_cache__close(cairn_cache *c);
/* A whole object (not packs, locks or prune records): from the cache, else
 * fetched and kept. -ENOENT, -EFBIG past max, storage errors. */
int cairn_cache__get(cairn_cache *c, int kind, const char *name, size_t max, struct cairn_buf *out);
/* Keep a copy of an object this process has just written. */
void cairn_cache__put(cairn_cache *c, int kind, const char *name, const void *data, size_t len);
/* True if the cache holds the object (no request). */
bool cairn_cache__has(cairn_cache *c, int kind, const char *name);
/* Drop a cached object: damaged, or gone from the storage. */
void cairn_cache__drop(cairn_cache *c, int kind, const char *name);
/* Call cb with the names of the cached objects of kind (for offline use). */
int cairn_cache__list(cairn_cache *c, int kind, int (*cb)(const char *name, void *payload),
                      void *payload);

/* Exactly len bytes at off of a pack of size bytes. type: the blob type read, 0
 * for the header and trailer. -EBADMSG past the end, storage errors. */
int cairn_cache__pread(cairn_cache *c, const struct cairn_id *pack, uint64_t size, int type,
                       void *buf, size_t len, uint64_t off);
/* Bring the data blocks covering [off, off + len) of a pack into the cache (a
 * read ahead): those missing are fetched, those another thread fetches left to
 * it. -EBADMSG past the end, storage errors. */
int cairn_cache__fetch(cairn_cache *c, const struct cairn_id *pack, uint64_t size, uint64_t off,
                       uint64_t len);
/* The read ahead will fetch [off, off + len) of a pack (one range a pack, the
 * last one given): a reader that must fetch one of its blocks first takes the
 * rest of the range along, in the same GET. */
void cairn_cache__plan(cairn_cache *c, const struct cairn_id *pack, uint64_t off, uint64_t len);
/* Forget that range of the pack, fetched now, unless another replaced it; a
 * NULL pack forgets every range. */
void cairn_cache__unplan(cairn_cache *c, const struct cairn_id *pack, uint64_t off, uint64_t len);
/* What was read from [off, off + len) failed its authentication: drop it.
 * Returns how many cached files were dropped. */
int cairn_cache__invalidate(cairn_cache *c, const struct cairn_id *pack, int type, uint64_t off,
                            size_t len);
/* A pack this process wrote (fd, size bytes): keep its header, and all of it
 * when it holds trees, so that reading them back costs no request. */
void cairn_cache__keep_pack(cairn_cache *c, const struct cairn_id *pack, int fd, uint64_t size,
                            bool trees);
/* A pack that is gone: drop what is cached of it. */
void cairn_cache__drop_pack(cairn_cache *c, const struct cairn_id *pack);
/* Bytes of data blocks the cache keeps at most. */
uint64_t cairn_cache__budget(const cairn_cache *c);
/* Bytes of data blocks cached now (an estimate between scans). */
uint64_t cairn_cache__used(cairn_cache *c);

#endif
