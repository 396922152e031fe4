/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LMDB index under index/ (FORMAT.md §7). Internal. */
#ifndef CAIRN_INDEX_H
#define CAIRN_INDEX_H

#include "crypt.h"

#define CAIRN_LOC_SIZE 45
#define CAIRN_PACKREC_SIZE 12

/* One env per process (lmdb.h caveats). Thread-safe: lookups take a short read txn
 * each (MDB_NOTLS); writes are serialised by an internal mutex. */
typedef struct cairn_index cairn_index;

/* Open or create dir (created 0700 unless read_only). Checks meta version and
 * repo-id (-EBADMSG if the index belongs to another repository: the caller
 * rebuilds). read_only: MDB_RDONLY, -ENOENT if missing. */
int cairn_index__open(cairn_index **out, const char *dir, bool read_only,
                      const uint8_t repo_id[CAIRN_REPO_ID_SIZE]);
void cairn_index__close(cairn_index *ix);
/* The LMDB map size of indexes opened after this call, in bytes (0: the default,
 * 32 GiB). For tests that fill the map (MDB_MAP_FULL -> -ENOSPC). */
void cairn_index__set_map_size(size_t bytes);

/* Encoding of a `blobs` value (FORMAT.md §7); decode checks size and type. */
void cairn_index__encode_loc(uint8_t out[CAIRN_LOC_SIZE], const struct cairn_loc *loc);
int cairn_index__decode_loc(struct cairn_loc *out, const uint8_t *p, size_t len);

/* Packs a prune is deleting (pending.c): a blob recorded in one of them is
 * recorded again in the next pack added that holds it, whatever the pack IDs,
 * so that the new copy outlives the old pack's records. Borrowed, and not
 * changed while the index is in use. */
void cairn_index__set_doomed(cairn_index *ix, const struct cairn_idset *doomed);
/* -ENOENT if absent, -EBADMSG for a malformed record. */
int cairn_index__get(cairn_index *ix, const struct cairn_id *id, struct cairn_loc *out);
/* Record a durable pack and its entries in one write txn. An entry already indexed
 * in a pack with a lower ID keeps it; otherwise the new location replaces it. */
int cairn_index__add_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n);
/* Remove a pack and every blob entry that points to it (prune). */
int cairn_index__del_pack(cairn_index *ix, const struct cairn_id *pack);
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

#endif
