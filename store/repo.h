/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository handle shared by the store's files (repo-open.c opens it;
 * repo.c holds its accessors, which every other file uses; keys.c, packs.c,
 * indexfiles.c, pending.c, catalog.c, reindex.c, read.c, write.c, prune.c and
 * verify.c work on it). Each file calls only files below it, docs/DESIGN.md
 * "Modules" lists them by layer. Internal: callers outside store/ see only the
 * opaque cairn_repo. */
#ifndef CAIRN_REPO_H
#define CAIRN_REPO_H

#include <pthread.h>
#include <stdatomic.h>

#include "cache.h"
#include "cairn/storage.h"
#include "config.h"
#include "hostcache.h"
#include "idxfile.h"
#include "index.h"
#include "keyfile.h"
#include "pack.h"

/* One pack being filled. A putter takes one from the idle list, so threads append
 * to different packs and never wait on each other's I/O. */
struct cairn_packer {
	cairn_packw *w;
	struct cairn_packer *next;
};

struct cairn_repo {
	cairn_storage *st;          /* where the objects live (owned) */
	cairn_cache *cache;         /* local copies, for a remote storage only */
	cairn_hostcache *hostcache; /* a write-only key's (FORMAT.md §14); else NULL */
	char *state;                /* local state: index/, tmp/ (the repository directory, or
	                               the remote storage's cache directory) */
	bool read_only;
	bool offline;     /* a remote storage that could not be reached: the cache as it is */
	bool fresh_index; /* the local index was created by this open: adopt listed packs */
	size_t unindexed; /* packs the last rebuild could not index (reindex.c) */
	struct cairn_config cfg;
	char *config_text;
	struct cairn_keys keys;
	char key_name[17];
	void (*warn)(const char *msg, void *payload); /* may be NULL */
	void *warn_payload;
	cairn_chunker *chunker;
	cairn_index *index;
	atomic_int compression;

	pthread_mutex_t lock;
	struct cairn_packer *idle[2]; /* protected by lock: [1] tree packs, [0] data packs */
	struct cairn_idset pending;   /* protected by lock: blobs in packs not yet indexed */
	/* The first failed pack write, finish or index commit: code and message. A
	 * dropped pack may hold blobs other puts were told are stored, so every later
	 * put, flush and snapshot save fails with it. Protected by lock. */
	int write_err;
	char write_err_msg[512];
	atomic_uint_fast64_t blobs_written, bytes_written, packs_written; /* statistics */
	atomic_uint_fast64_t data_read; /* stored bytes of data blobs read (prefetch.c) */
	/* A remote storage's last listing of snapshots/, reused for a moment so that
	 * one command lists once (catalog.c). Protected by lock. */
	struct cairn_id *snap_ids;
	size_t nsnap_ids;
	int64_t snap_listed_ms; /* CLOCK_MONOTONIC; 0: none */
	/* Damaged snapshots already warned about: one warning each per handle,
	 * however often a command lists (catalog.c). Protected by lock. */
	struct cairn_idset damaged_warned;
	/* Packs this handle made durable and indexed that no index file names yet
	 * (indexfiles.c); each entry array is owned. Protected by lock. */
	struct cairn_idxfile_pack *unnamed;
	size_t nunnamed, capunnamed;
	size_t unnamed_blobs; /* their entries in all */
	/* Packs prune records name (pending.c): a writer does not count blobs in
	 * them as stored. Learned once, after the writer's lock is taken, and
	 * before any pack of this handle is indexed (the index reads the set
	 * unlocked). Protected by doomed_lock, held while learning. */
	pthread_mutex_t doomed_lock;
	struct cairn_idset doomed;
	atomic_bool doomed_known;
	/* Packs of a local storage found on disk at their indexed size, so that
	 * their blobs count as stored (write.c). Protected by doomed_lock. */
	struct cairn_idset present;
	/* Opened lock_first and not yet locked: the cache is as the open found it
	 * (cairn_repo_lock). */
	atomic_bool update_at_lock;
	/* Packs this writer adopted at open, before it held its lock (reindex.c):
	 * checked again when it learns the records. Protected by doomed_lock. */
	struct cairn_idset adopted;
	/* Set while adopted packs wait for that check: no index file names them
	 * before it (a prune may be deleting them; indexfiles.c). */
	atomic_bool names_held;
	/* Serialises the refreshes of a remote storage's cache index that a read
	 * missing a blob asks for (read.c), at most one a second. */
	pthread_mutex_t refresh_lock;
	int64_t refreshed_ms; /* CLOCK_MONOTONIC */
};

/* ---- the handle's accessors (repo.c) ---- */
/* Borrowed, valid while the repository is open. */
const struct cairn_keys *cairn_repo__keys(const cairn_repo *repo);
const struct cairn_config *cairn_repo__config(const cairn_repo *repo);
/* NULL when opened with no_index. */
cairn_index *cairn_repo__index(cairn_repo *repo);
/* The host cache of a write-only key; NULL for a full key. */
cairn_hostcache *cairn_repo__hostcache(cairn_repo *repo);
bool cairn_repo__read_only(const cairn_repo *repo);
/* -EROFS with a message unless the repository may be written. */
int cairn_repo__writable(const cairn_repo *repo);
/* The first pack write, finish or index commit that failed on this handle, with
 * its message set again; 0 if none did. Thread-safe. */
int cairn_repo__write_error(cairn_repo *repo);
/* Record r as this handle's write failure unless one is recorded; returns r. */
int cairn_repo__write_failed(cairn_repo *repo, int r);
/* Pass one warning line to the caller's cairn_repo_opts.warn, if any. */
void cairn_repo__warn(const cairn_repo *repo, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));
/* snprintf "<state dir>/<fmt...>" into out; -ENAMETOOLONG. */
int cairn_repo__path(const cairn_repo *repo, char *out, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
/* The largest raw length of a blob type (FORMAT.md §5.3); 0 for an unknown type. */
size_t cairn_repo__max_raw(const cairn_repo *repo, int type);

/* A whole object (config, key, snapshot, index file): through the cache for a
 * remote storage. -ENOENT, -EFBIG past max. */
int cairn_repo__get_object(cairn_repo *repo, int kind, const char *name, size_t max,
                           struct cairn_buf *out);
/* Write an object durably, and keep a copy in the cache of a remote storage. */
int cairn_repo__put_object(cairn_repo *repo, int kind, const char *name, const void *data,
                           size_t len);

/* ---- pack files (packs.c) ---- */
/* A reader of a pack through the storage or, for a remote one, its cache;
 * size 0 when unknown (a local storage reads ranges without it). rel gets its
 * relative name (f->name points to it). */
void cairn_repo__pack_reader(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                             struct cairn_packf *f, char rel[CAIRN_PACK_RELPATH_SIZE]);
/* Open a pack for reading; size from the index, else the storage.
 * rel gets its relative name (f->name points to it). -ENOENT, -EIO. */
int cairn_repo__pack_open(cairn_repo *repo, const struct cairn_id *pack, struct cairn_packf *f,
                          char rel[CAIRN_PACK_RELPATH_SIZE]);
/* cairn_repo_pack_entries() of a pack whose size is known (a listing's). */
int cairn_repo__pack_entries_sized(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                                   struct cairn_pack_entry **out, size_t *n);

/* ---- the read path (read.c) ---- */
/* cairn_repo_lookup() in the index as it is, never refreshed from the storage. */
int cairn_repo__lookup_cached(cairn_repo *repo, const struct cairn_id *id, struct cairn_loc *out);
/* The blob id at loc (not looked up in the index): read, verify, decompress. */
int cairn_repo__get_at(cairn_repo *repo, const struct cairn_id *id, const struct cairn_loc *loc,
                       struct cairn_buf *out);

/* ---- the write path (write.c) ---- */
/* Make a finished temp pack durable in the storage and index it (write.c);
 * a remote storage's cache keeps its header (and its trees). */
int cairn_repo__pack_store(cairn_repo *repo, cairn_packw *w, struct cairn_id *pack_out,
                           uint64_t *size_out);
/* cairn_repo__pack_store(), then the pack is indexed and noted for the next
 * index file (FORMAT.md §6.1: durable before indexed). */
int cairn_repo__pack_commit(cairn_repo *repo, cairn_packw *w, struct cairn_id *pack_out,
                            uint64_t *size_out);
/* True when etag (S3's, of a single PUT) is the MD5 of b (repo.c). */
bool cairn_repo__md5_is(const struct cairn_buf *b, const char *etag);

/* Find the key file pw opens and that serves: of the kind wanted (a full key
 * unless allow_write_only), deriving repo->keys that authenticate the config
 * (the error names the repository; repo->keys is wiped on failure). The ones
 * remembered for that kind first (FORMAT.md §3.2), then the rest in name
 * order (keys.c). */
int cairn_repo__unlock(cairn_repo *repo, const char *pw, size_t pwlen, bool allow_write_only);
/* Write a key file wrapping s under pw (keys.c); a copy goes to cache unless
 * NULL. */
int cairn_repo__write_key(cairn_storage *st, cairn_cache *cache, const struct cairn_key_secret *s,
                          const char *pw, size_t pwlen, int log2n, const char *label,
                          char name_out[17]);
/* Note in the local state dir that key file name opened the repository (best
 * effort); mkdir_index: make index/ first (a cache's, which an open makes
 * later). */
void cairn_repo__remember_key(const char *state, const char *name, bool mkdir_index);

/* cairn_repo_snapshot_list(); strict (prune): the storage is listed now (never
 * a listing reused from a moment ago), and a damaged snapshot fails the listing
 * (-EBADMSG naming it) instead of being skipped with a warning. */
int cairn_repo__snapshot_list(cairn_repo *repo, bool strict, struct cairn_snapshot ***out,
                              size_t *n);
/* ---- index files (indexfiles.c, FORMAT.md §12) ---- */
/* A pack this handle stored and indexed: the next index file names it (one is
 * written every PACKS_PER_FILE packs or BLOBS_PER_FILE blobs, and by
 * cairn_repo__name_packs; CAIRN_TEST_BLOBS_PER_FILE=N in tests). */
int cairn_repo__note_pack(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n);
/* Index a pack this handle stored, and note it: marked first as indexed but
 * not yet named (a mark the writer's death leaves is taken up by
 * cairn_repo__name_orphans), the mark dropped when an index file names it.
 * _unnamed_mark alone: for packs indexed in a batch. */
int cairn_repo__index_pack(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                           const struct cairn_pack_entry *e, size_t n);
int cairn_repo__unnamed_mark(cairn_repo *repo, const struct cairn_id *pack, uint64_t size);
/* A mark's value (FORMAT.md §7.1): fixed-size; decode: -EBADMSG unless exactly
 * CAIRN_UNNAMED_SIZE bytes with a NUL-terminated host. */
#define CAIRN_UNNAMED_HOST 64
#define CAIRN_UNNAMED_SIZE (8 + 8 + CAIRN_UNNAMED_HOST)
struct cairn_unnamed {
	uint64_t size, pid;
	char host[CAIRN_UNNAMED_HOST];
};
void cairn_repo__unnamed_encode(uint8_t out[CAIRN_UNNAMED_SIZE], const struct cairn_unnamed *u);
int cairn_repo__unnamed_decode(struct cairn_unnamed *u, const uint8_t *v, size_t vlen);
int cairn_repo__unnamed_drop(cairn_repo *repo, const struct cairn_id *pack);
/* Take packs out of the list this handle will name, and their marks. */
int cairn_repo__unnamed_forget(cairn_repo *repo, const struct cairn_id *packs, size_t n);
/* The marked packs of writers on this cache that died before naming them (of
 * this host, their pid no longer running), for cairn_repo_recover(). */
int cairn_repo__foreach_orphan(cairn_repo *repo,
                               int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                               void *payload);
/* Write index files naming the noted packs, each within the limits above
 * (none, or names held: nothing). Thread-safe. */
int cairn_repo__name_packs(cairn_repo *repo);
void cairn_repo__unnamed_free(cairn_repo *repo);
/* Tests: name the noted packs once they hold this many blobs (0: the default). */
void cairn_repo__test_blobs_per_file(size_t n);
/* Seal and store f (its packs are sorted here), and record it as loaded in the
 * local index, in one txn with also when not NULL. out may be NULL. */
int cairn_repo__write_index_file(cairn_repo *repo, struct cairn_idxfile *f,
                                 const struct cairn_index_aux_op *also, struct cairn_id *out);
/* Load the index files the local index lacks; when one it had is gone (a prune
 * superseded it), or reload, rebuild the local index from those there now
 * (*rebuilt), in one transaction. */
int cairn_repo__load_index_files(cairn_repo *repo, bool reload, bool *rebuilt);
/* cairn_repo_check_index_files(), counting into *nretired the files listed that
 * a prune replaced (FORMAT.md §12): a listing left them out of that prune's, or
 * they were put back. */
int cairn_repo__check_index_files(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                  void *payload, size_t *nretired);
/* Replace every index file in the storage by new ones naming the packs they
 * named but those in drop, the packs of add, and any indexed pack no file names
 * (prune, FORMAT.md §12). New files are written before the old ones go. */
int cairn_repo__rewrite_index_files(cairn_repo *repo, const struct cairn_idset *drop,
                                    const struct cairn_index_pack *add, size_t nadd);
/* Record the index files in the storage as loaded, without reading them: by a
 * rebuild from the pack headers, before it lists the packs, so that the listing
 * has every pack they name (a pack is stored before a file names it). _forget
 * drops the record (a rebuild that failed): the next refresh reads every file. */
int cairn_repo__index_files_seen(cairn_repo *repo);
/* For each want[i] without entries (e NULL: a pack whose header cannot be
 * read), its entries from the first sound index file that names the pack with
 * that size, and that file's ID in from[i]; e is then the caller's to free.
 * Damaged index files are passed over. Returns how many were found. -ENOMEM,
 * listing errors. */
int cairn_repo__entries_from_index_files(cairn_repo *repo, struct cairn_index_pack *want, size_t n,
                                         struct cairn_id *from);
int cairn_repo__index_files_forget(cairn_repo *repo);
/* cairn_repo_rebuild_index() for any open repository: the index is a local
 * cache, which even a read-only open may rebuild (an upgraded layout). */
int cairn_repo__rebuild_index(cairn_repo *repo);

/* ---- pending deletions (pending.c, FORMAT.md §13) ---- */
struct cairn_prunerec;
/* Every prune record in the storage. Free with cairn_repo__records_free(). */
int cairn_repo__records(cairn_repo *repo, struct cairn_prunerec **out, size_t *n);
void cairn_repo__records_free(struct cairn_prunerec *v, size_t n);
int cairn_repo__record_put(cairn_repo *repo, const struct cairn_prunerec *rec);
/* Set rec's wait list to the locks live now (but own's and mounts) and write it. */
int cairn_repo__record_wait(cairn_repo *repo, const cairn_lock *own, struct cairn_prunerec *rec);

/* The pending deletions as prune sees them: every record, whether its waited-for
 * holders are all gone (ripe), and the headers of its packs still stored. */
struct cairn_pending_pack {
	struct cairn_id id;
	uint64_t size;
	struct cairn_pack_entry *e; /* its header (owned); NULL when not present */
	size_t n;
	size_t rec; /* the record naming it */
	bool present;
};
struct cairn_pending {
	struct cairn_prunerec *recs;
	size_t nrecs;
	bool *ripe;
	struct cairn_pending_pack *packs;
	size_t npacks, cap;
	struct cairn_idset index; /* pack ID -> position in packs */
	struct cairn_idset blobs; /* blob ID -> pack position * 10^6 + entry */
};
/* Load the records; one whose prune was killed before it listed the locks now
 * waits for every live holder but own (a dry run writes nothing: not ripe). */
int cairn_repo__pending_load(cairn_repo *repo, const cairn_lock *own, bool dry_run,
                             struct cairn_pending *p);
void cairn_repo__pending_release(struct cairn_pending *p);
bool cairn_repo__pending_has_pack(const struct cairn_pending *p, const struct cairn_id *pack);
/* Where a pending pack holds blob id: the index no longer names it. -ENOENT. */
int cairn_repo__pending_lookup(const struct cairn_pending *p, const struct cairn_id *id,
                               struct cairn_loc *out);
/* Finish the ripe records: their packs holding a blob of used that has no
 * other home stay; the others leave the index files and the index, then the
 * storage; then the records go. The lock is refreshed before each step;
 * on_step (may be NULL) hears "after-index" and "mid-delete". packs/bytes:
 * what was deleted. */
int cairn_repo__pending_finish(cairn_repo *repo, struct cairn_pending *p,
                               const struct cairn_idset *used, cairn_lock *lock,
                               void (*on_step)(const char *name, void *payload), void *payload,
                               uint64_t *packs, uint64_t *bytes);

/* Learn the packs of the prune records, once per handle: a writer, after it
 * took its lock (a prune that lists the locks later waits for it; one that
 * listed them before wrote its record before). Blobs in those packs count as
 * not stored. _peek reads them before the lock (adoption at open) and keeps
 * the one learning that counts to come. */
int cairn_repo__learn_doomed(cairn_repo *repo);
/* Add packs to what this handle knows is doomed (a prune, for its own choices:
 * its copies of their blobs win in the index). */
int cairn_repo__doom(cairn_repo *repo, const struct cairn_id *packs, size_t n);
int cairn_repo__peek_doomed(cairn_repo *repo);
bool cairn_repo__doomed(cairn_repo *repo, const struct cairn_id *pack);

/* Bring the index up to date with the storage: index new packs and snapshots,
 * drop gone ones (reindex.c). For a remote storage at open. */
int cairn_repo__refresh(cairn_repo *repo);

#endif
