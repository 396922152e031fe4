/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LMDB index under index/ (FORMAT.md §7). Internal. */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include "crypt.h"

#define CAIRN_LOC_SIZE 45
#define CAIRN_PACKREC_SIZE 16
#define CAIRN_INDEX_REC_SIZE 48

/* One env per process (lmdb.h caveats). Thread-safe: lookups take a short read txn
 * each (MDB_NOTLS); writes are serialised by an internal mutex. The callbacks of
 * the foreach functions run inside a read txn and must not write to the index
 * (-EINVAL: a write that had to grow the map would wait for the scan). */
typedef struct cairn_index cairn_index;

/* Open or create dir (created 0700 unless read_only). Checks meta version and
 * repo-id (-EBADMSG if the index belongs to another repository: the caller
 * rebuilds). read_only: MDB_RDONLY, -ENOENT if missing, -EBADMSG for an index
 * of another layout version. Returns 1 when the caller must rebuild the index:
 * it was just created, or it was emptied because it had another layout version
 * (FORMAT.md §7) or a bulk load (cairn_index__bulk) was interrupted; 0 when it
 * is as it was left. */
int cairn_index__open(cairn_index **out, const char *dir, bool read_only,
                      const uint8_t repo_id[CAIRN_REPO_ID_SIZE]);
/* With every txn of ix ended. Writable: compacts the file first when free pages
 * are at least a quarter of it and no other process has the index open
 * (FORMAT.md §7, "Size"). */
void cairn_index__close(cairn_index *ix);
/* The map size that indexes opened after this call start with, in bytes (0: the
 * default, 1 GiB or twice the file). The map grows when full (MDB_MAP_FULL is
 * retried after doubling it); tests use a tiny one to make it grow. */
void cairn_index__set_map_size(size_t bytes);
/* For benchmarks that measure what MDB_NORDAHEAD saves: whether indexes opened
 * after this call let the kernel read ahead on page faults (default: no). */
void cairn_index__set_readahead(bool on);

/* A location as 45 bytes: pack id[32], u32 offset, u32 stored_len, u32 raw_len,
 * u8 type (the `blobs` value of index layout 1); decode checks size and bounds. */
void cairn_index__encode_loc(uint8_t out[CAIRN_LOC_SIZE], const struct cairn_loc *loc);
int cairn_index__decode_loc(struct cairn_loc *out, const uint8_t *p, size_t len);

/* Packs a prune is deleting (pending.c): a blob recorded in one of them is
 * recorded again in the next pack added that holds it, whatever the pack IDs,
 * so that the new copy outlives the old pack's records. Borrowed, and not
 * changed while the index is in use. */
void cairn_index__set_doomed(cairn_index *ix, const struct cairn_idset *doomed);

/* A `blobs` record of layout 2 (FORMAT.md §7): the blob ID, the pack's number in
 * `packnums` and where the blob is in that pack. */
struct cairn_index_rec {
	struct cairn_id id;
	uint32_t packno;
	uint32_t offset, stored_len, raw_len;
	uint8_t type;
};
void cairn_index__encode_rec(uint8_t out[CAIRN_INDEX_REC_SIZE], const struct cairn_index_rec *rec);
/* -EBADMSG unless exactly CAIRN_INDEX_REC_SIZE bytes within a pack entry's bounds. */
int cairn_index__decode_rec(struct cairn_index_rec *out, const uint8_t *p, size_t len);

/* A change to an auxiliary table made in one txn with others: n keys of klen
 * bytes, stride bytes apart (0: klen), each set to v (vlen bytes) or, with v
 * NULL, deleted (a key or table that is not there is no error). */
struct cairn_index_aux_op {
	const char *table;
	const void *k;
	size_t klen, stride, n;
	const void *v;
	size_t vlen;
};
#define CAIRN_INDEX_AUX_OPS_MAX 4
/* Up to CAIRN_INDEX_AUX_OPS_MAX changes in one write txn: all of them, or
 * none. A txn costs a sync of the file; changes that belong together are also
 * atomic. */
int cairn_index__aux_apply(cairn_index *ix, const struct cairn_index_aux_op *ops, size_t n);

/* -ENOENT if absent, -EBADMSG for a malformed record. */
int cairn_index__get(cairn_index *ix, const struct cairn_id *id, struct cairn_loc *out);
/* Record a durable pack and its entries in one write txn. An entry already indexed
 * in a pack with a lower ID keeps it; otherwise the new location replaces it. */
int cairn_index__add_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n);
/* The same, with op made in the (first) write txn: a mark about the pack is
 * never apart from its entries. */
int cairn_index__add_pack_with(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                               const struct cairn_pack_entry *e, size_t n,
                               const struct cairn_index_aux_op *op);
/* Remove a pack and every blob entry that points to it (prune). */
int cairn_index__del_pack(cairn_index *ix, const struct cairn_id *pack);
/* Forget blob id's record if it places the blob in pack (a damaged copy):
 * 1 removed, 0 not there or elsewhere. */
int cairn_index__del_blob(cairn_index *ix, const struct cairn_id *id, const struct cairn_id *pack);
/* 1 if the pack is indexed (size_out set when not NULL), 0 if not. */
int cairn_index__has_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t *size_out);
int cairn_index__foreach_blob(cairn_index *ix,
                              int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                        void *payload),
                              void *payload);
int cairn_index__foreach_pack(cairn_index *ix,
                              int (*cb)(const struct cairn_id *pack, uint64_t size, uint32_t count,
                                        void *payload),
                              void *payload);
/* Snapshots table: id -> time_ns. */
int cairn_index__add_snapshot(cairn_index *ix, const struct cairn_id *id, int64_t time_ns);
int cairn_index__del_snapshot(cairn_index *ix, const struct cairn_id *id);
int cairn_index__foreach_snapshot(cairn_index *ix,
                                  int (*cb)(const struct cairn_id *id, int64_t time_ns,
                                            void *payload),
                                  void *payload);
/* Auxiliary tables of other subsystems (sync state, check results): each a named
 * LMDB database "aux:<table>" of byte keys and values, left alone by clear().
 * get: -ENOENT; value copied into out (replaced). foreach: key order, stops on < 0. */
int cairn_index__aux_put(cairn_index *ix, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen);
int cairn_index__aux_get(cairn_index *ix, const char *table, const void *k, size_t klen,
                         struct cairn_buf *out);
int cairn_index__aux_del(cairn_index *ix, const char *table, const void *k, size_t klen);
/* Delete n keys of klen bytes, stride bytes apart, in one txn. */
int cairn_index__aux_del_many(cairn_index *ix, const char *table, const void *k, size_t klen,
                              size_t stride, size_t n);
int cairn_index__aux_foreach(cairn_index *ix, const char *table,
                             int (*cb)(const void *k, size_t klen, const void *v, size_t vlen,
                                       void *payload),
                             void *payload);
int cairn_index__aux_drop(cairn_index *ix, const char *table);
/* Empty blobs, packs and snapshots in one txn (before a rebuild). */
int cairn_index__clear(cairn_index *ix);

/* A durable pack to record with its entries (cairn_index__replace_packs). */
struct cairn_index_pack {
	struct cairn_id id;
	uint64_t size;
	const struct cairn_pack_entry *e;
	size_t n;
};
/* Prune's swap, in one write txn (readers see all of it or nothing): remove the
 * packs old[0..nold) with every blob record naming them, then record the new
 * packs and their entries (lowest pack ID wins among the packs that remain). The
 * new packs must be durable, and every blob still needed must be in add or in a
 * pack that stays. -ENOSPC, -EIO, -EINVAL. */
int cairn_index__replace_packs(cairn_index *ix, const struct cairn_id *old, size_t nold,
                               const struct cairn_index_pack *add, size_t nadd);
/* The index of blobs and packs replaced by add's, in one write txn: a rebuild
 * that readers never see half done. */
int cairn_index__reset_packs(cairn_index *ix, const struct cairn_index_pack *add, size_t nadd);
/* Record several durable packs in one write txn, as cairn_index__add_pack does
 * for one. A txn rewrites every page it touches, and with random blob IDs a
 * pack's entries touch most leaves of a small tree: one txn for many packs
 * writes (and frees) far fewer pages than one per pack. -ENOSPC, -EIO, -EINVAL. */
int cairn_index__add_packs(cairn_index *ix, const struct cairn_index_pack *p, size_t n);

/* A bulk load (a rebuild, which can be redone): on, commits are not synced
 * (MDB_NOSYNC) and index/rebuilding marks the index as incomplete, so that an
 * open after a crash starts it afresh (and returns 1); off syncs everything and
 * removes the mark. -EIO. */
int cairn_index__bulk(cairn_index *ix, bool on);

#endif
