/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LMDB index (FORMAT.md §7): blob ID -> pack location, packs, snapshots. */
#include "index.h"

#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"
#include "cleanup.h"

#define INDEX_VERSION 1
/* Virtual: the file grows only as needed. 32 GiB holds ~300M blobs and stays
 * within what valgrind can map. */
#define MAP_SIZE (32ull << 30)
/* meta, blobs, packs, snapshots and the "aux:" tables of other subsystems. */
#define MAX_DBS 64

static _Atomic size_t map_size_override; /* 0: MAP_SIZE */

struct cairn_index {
	MDB_env *env;
	MDB_dbi meta, blobs, packs, snaps;
	bool read_only;
	pthread_mutex_t wlock;            /* one write txn at a time in this process */
	pthread_mutex_t dbi_lock;         /* aux_dbi(): mdb_dbi_open in one txn at a time */
	const struct cairn_idset *doomed; /* borrowed; see cairn_index__set_doomed() */
};

void cairn_index__set_map_size(size_t bytes)
{
	atomic_store(&map_size_override, bytes);
}

static MDB_val val(const void *p, size_t n)
{
	return (MDB_val){ .mv_size = n, .mv_data = (void *)p };
}

/* `blobs` value (FORMAT.md §7): pack id[32], u32 offset, u32 stored_len,
 * u32 raw_len, u8 type. */
void cairn_index__encode_loc(uint8_t out[CAIRN_LOC_SIZE], const struct cairn_loc *loc)
{
	memcpy(out, loc->pack.b, CAIRN_ID_SIZE);
	cairn_le32(out + 32, loc->offset);
	cairn_le32(out + 36, loc->stored_len);
	cairn_le32(out + 40, loc->raw_len);
	out[44] = loc->type;
}

/* The bounds are those of a pack header entry (FORMAT.md §6.2). */
int cairn_index__decode_loc(struct cairn_loc *out, const uint8_t *p, size_t len)
{
	struct cairn_loc l;

	if (len != CAIRN_LOC_SIZE)
		return cairn_err_set(-EBADMSG, "index entry is %zu bytes, expected %d", len,
		                     CAIRN_LOC_SIZE);
	memcpy(l.pack.b, p, CAIRN_ID_SIZE);
	l.offset = cairn_get_le32(p + 32);
	l.stored_len = cairn_get_le32(p + 36);
	l.raw_len = cairn_get_le32(p + 40);
	l.type = p[44];
	if (l.type != CAIRN_BLOB_DATA && l.type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EBADMSG, "index entry has blob type %u", l.type);
	if (l.offset < CAIRN_PACK_MAGIC_SIZE || l.stored_len < CAIRN_SEAL_OVERHEAD ||
	    (uint64_t)l.offset + l.stored_len > CAIRN_PACK_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "index entry has impossible location %u+%u",
		                     l.offset, l.stored_len);
	if (l.raw_len > CAIRN_TREE_MAX)
		return cairn_err_set(-EBADMSG, "index entry has raw length %u", l.raw_len);
	*out = l;
	return 0;
}

/* ---- opening ------------------------------------------------------------ */

static int open_dbs(cairn_index *ix, MDB_txn *txn)
{
	unsigned flags = ix->read_only ? 0 : MDB_CREATE;
	int rc;
	if ((rc = mdb_dbi_open(txn, "meta", flags, &ix->meta)) ||
	    (rc = mdb_dbi_open(txn, "blobs", flags, &ix->blobs)) ||
	    (rc = mdb_dbi_open(txn, "packs", flags, &ix->packs)) ||
	    (rc = mdb_dbi_open(txn, "snapshots", flags, &ix->snaps)))
		return cairn_err_mdb(rc == MDB_NOTFOUND ? MDB_INVALID : rc,
		                     "index: cannot open databases");
	return 0;
}

/* `meta` (FORMAT.md §7): a new index gets its version and repository id; an
 * existing one must match both. */
static int check_meta(cairn_index *ix, MDB_txn *txn, const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	MDB_val k = val("version", 7), v;
	uint8_t ver[4];
	int rc = mdb_get(txn, ix->meta, &k, &v);

	if (rc == MDB_NOTFOUND && !ix->read_only) {
		cairn_le32(ver, INDEX_VERSION);
		MDB_val kv = val(ver, 4), ki = val("repo-id", 7),
		        vi = val(repo_id, CAIRN_REPO_ID_SIZE);
		if ((rc = mdb_put(txn, ix->meta, &k, &kv, 0)) ||
		    (rc = mdb_put(txn, ix->meta, &ki, &vi, 0)))
			return cairn_err_mdb(rc, "index: cannot initialise");
		return 0;
	}
	if (rc == MDB_NOTFOUND)
		return cairn_err_set(-EBADMSG, "index has no version");
	if (rc)
		return cairn_err_mdb(rc, "index: cannot read version");
	if (v.mv_size != 4 || cairn_get_le32(v.mv_data) != INDEX_VERSION)
		return cairn_err_set(-EBADMSG, "index has an unknown version");
	k = val("repo-id", 7);
	rc = mdb_get(txn, ix->meta, &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return cairn_err_mdb(rc, "index: cannot read repo-id");
	if (rc || v.mv_size != CAIRN_REPO_ID_SIZE || memcmp(v.mv_data, repo_id, v.mv_size) != 0)
		return cairn_err_set(-EBADMSG, "index belongs to another repository");
	return 0;
}

/* LMDB maps the file and trusts its meta page: the pages of a truncated file
 * past its end would fault (SIGBUS) when touched. */
static int check_size(cairn_index *ix, const char *dir)
{
	char data[PATH_MAX];
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	int rc;

	if ((rc = mdb_env_info(ix->env, &info)) || (rc = mdb_env_stat(ix->env, &st)))
		return cairn_err_mdb(rc, "index: cannot read its size");
	if (snprintf(data, sizeof(data), "%s/data.mdb", dir) >= (int)sizeof(data))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	if (stat(data, &fst) < 0)
		return cairn_err_set(-EIO, "cannot stat '%s': %s", data, strerror(errno));
	if (((uint64_t)info.me_last_pgno + 1) * st.ms_psize > (uint64_t)fst.st_size)
		return cairn_err_set(-EBADMSG,
		                     "index '%s' is truncated (%llu of %llu bytes): run "
		                     "'cairn rebuild-index'",
		                     dir, (unsigned long long)fst.st_size,
		                     ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize);
	return 0;
}

/* Create the environment and open it with flags: 0 or an LMDB code (after which
 * the environment is gone, as a failed open leaves it unusable). */
static int env_open(cairn_index *ix, const char *dir, unsigned flags)
{
	size_t map = atomic_load(&map_size_override);
	int rc;

	if ((rc = mdb_env_create(&ix->env)))
		return rc;
	if ((rc = mdb_env_set_maxdbs(ix->env, MAX_DBS)) ||
	    (rc = mdb_env_set_mapsize(ix->env, map ? map : MAP_SIZE)) ||
	    (rc = mdb_env_open(ix->env, dir, flags, 0600))) {
		mdb_env_close(ix->env);
		ix->env = NULL;
	}
	return rc;
}

static int setup(cairn_index *ix, const char *dir, const uint8_t *repo_id)
{
	MDB_txn *txn;
	/* NOTLS: read txns are not tied to a thread (one short txn per call, STYLE §6).
	 * No NOSYNC or NOMETASYNC: a commit is durable, so after a crash the index is
	 * consistent and only ever names packs that exist (FORMAT.md §7). */
	int rc = env_open(ix, dir, MDB_NOTLS | (ix->read_only ? MDB_RDONLY : 0));
	/* A lock file that cannot be opened for writing (an immutable copy, another
	 * user's repository): read without locking, as LMDB itself does on a
	 * read-only filesystem. */
	if (ix->read_only && (rc == EACCES || rc == EPERM || rc == EROFS))
		rc = env_open(ix, dir, MDB_NOTLS | MDB_RDONLY | MDB_NOLOCK);
	if (rc)
		return cairn_err_wrap(cairn_err_mdb(rc, "cannot open index"), "'%s'", dir);
	int r = check_size(ix, dir);
	if (r < 0)
		return r;
	/* Reader slots left by a crashed process would pin old pages and grow the map. */
	int dead = 0;
	if ((rc = mdb_reader_check(ix->env, &dead)))
		return cairn_err_mdb(rc, "index: cannot check readers");
	if ((rc = mdb_txn_begin(ix->env, NULL, ix->read_only ? MDB_RDONLY : 0, &txn)))
		return cairn_err_mdb(rc, "index: cannot begin transaction");
	r = open_dbs(ix, txn);
	if (r >= 0)
		r = check_meta(ix, txn, repo_id);
	if (r < 0) {
		mdb_txn_abort(txn);
		return r;
	}
	/* A commit, even of a read txn, keeps the handles opened in it. */
	if ((rc = mdb_txn_commit(txn)))
		return cairn_err_mdb(rc, "index: cannot commit");
	return 0;
}

int cairn_index__open(cairn_index **out, const char *dir, bool read_only,
                      const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	char data[PATH_MAX];
	int r = 0;

	if (snprintf(data, sizeof(data), "%s/data.mdb", dir) >= (int)sizeof(data))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	cairn_index *ix = calloc(1, sizeof(*ix));
	if (!ix)
		return cairn_err_set(-ENOMEM, "out of memory");
	ix->read_only = read_only;
	pthread_mutex_init(&ix->wlock, NULL);
	pthread_mutex_init(&ix->dbi_lock, NULL);
	/* MDB_RDONLY would fail on a missing file with a less helpful ENOENT text. */
	if (read_only && access(data, F_OK) < 0)
		r = cairn_err_set(-ENOENT, "no index at '%s'", dir);
	else if (!read_only)
		r = cairn_mkdir_p(dir, 0700);
	if (r >= 0)
		r = setup(ix, dir, repo_id);
	if (r < 0) {
		cairn_index__close(ix);
		return r;
	}
	*out = ix;
	return 0;
}

void cairn_index__close(cairn_index *ix)
{
	if (!ix)
		return;
	if (ix->env)
		mdb_env_close(ix->env);
	pthread_mutex_destroy(&ix->wlock);
	pthread_mutex_destroy(&ix->dbi_lock);
	free(ix);
}

/* ---- transactions ------------------------------------------------------- */

static int begin_read(cairn_index *ix, MDB_txn **txn)
{
	int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
	return rc ? cairn_err_mdb(rc, "index: cannot begin read") : 0;
}

static int begin_write(cairn_index *ix, MDB_txn **txn)
{
	if (ix->read_only)
		return cairn_err_set(-EROFS, "index opened read-only");
	pthread_mutex_lock(&ix->wlock);
	int rc = mdb_txn_begin(ix->env, NULL, 0, txn);
	if (rc) {
		pthread_mutex_unlock(&ix->wlock);
		return cairn_err_mdb(rc, "index: cannot begin write");
	}
	return 0;
}

/* Commit when r >= 0, else abort; releases the write lock. After any failed put
 * (MDB_MAP_FULL included) LMDB only allows an abort, which this is: nothing of
 * the txn is kept. A failed commit frees the txn itself. */
static int end_write(cairn_index *ix, MDB_txn *txn, int r)
{
	if (r >= 0) {
		int rc = mdb_txn_commit(txn);
		if (rc)
			r = cairn_err_mdb(rc, "index: cannot commit");
	} else {
		mdb_txn_abort(txn);
	}
	pthread_mutex_unlock(&ix->wlock);
	return r;
}

/* ---- blobs and packs ---------------------------------------------------- */

int cairn_index__get(cairn_index *ix, const struct cairn_id *id, struct cairn_loc *out)
{
	MDB_txn *txn;
	MDB_val k = val(id->b, CAIRN_ID_SIZE), v;
	int r = begin_read(ix, &txn);
	if (r < 0)
		return r;
	int rc = mdb_get(txn, ix->blobs, &k, &v);
	if (rc == MDB_NOTFOUND)
		r = cairn_err_set(-ENOENT, "blob not in the index"); /* common: a new chunk */
	else if (rc)
		r = cairn_err_mdb(rc, "index lookup");
	else
		r = cairn_index__decode_loc(out, v.mv_data, v.mv_size); /* copy before txn ends */
	mdb_txn_abort(txn);
	return r;
}

void cairn_index__set_doomed(cairn_index *ix, const struct cairn_idset *doomed)
{
	ix->doomed = doomed;
}

static bool in_doomed(const cairn_index *ix, const uint8_t *pack)
{
	struct cairn_id id;
	if (!ix->doomed || ix->doomed->count == 0)
		return false;
	memcpy(id.b, pack, CAIRN_ID_SIZE);
	return cairn_idset_has(ix->doomed, &id);
}

/* Whether a blob's record in pack `old` stays when pack `new` holds it too: a
 * pack a prune is deleting loses to any other; else the lowest ID wins. */
static bool keeps(const cairn_index *ix, const uint8_t *old, const uint8_t *new)
{
	bool old_doomed = in_doomed(ix, old), new_doomed = in_doomed(ix, new);
	if (old_doomed != new_doomed)
		return new_doomed;
	return memcmp(old, new, CAIRN_ID_SIZE) < 0;
}

static int put_blob(cairn_index *ix, MDB_txn *txn, const struct cairn_id *pack,
                    const struct cairn_pack_entry *e)
{
	MDB_val k = val(e->id.b, CAIRN_ID_SIZE), v;
	int rc = mdb_get(txn, ix->blobs, &k, &v);
	/* FORMAT.md §7: the lowest pack ID wins, so a rebuild gives the same index
	 * whatever order it reads the packs in, except over a pack a prune is
	 * deleting: the new copy must survive that pack's records. A malformed
	 * record is replaced. */
	if (rc == 0 && v.mv_size == CAIRN_LOC_SIZE && keeps(ix, v.mv_data, pack->b))
		return 0;
	if (rc && rc != MDB_NOTFOUND)
		return cairn_err_mdb(rc, "index lookup");
	uint8_t rec[CAIRN_LOC_SIZE];
	struct cairn_loc loc = { *pack, e->offset, e->stored_len, e->raw_len, e->type };
	cairn_index__encode_loc(rec, &loc);
	v = val(rec, sizeof(rec));
	rc = mdb_put(txn, ix->blobs, &k, &v, 0);
	return rc ? cairn_err_mdb(rc, "index: cannot add blob") : 0;
}

/* Blobs per transaction of cairn_index__add_pack. LMDB holds a copy of every page
 * a transaction changes until it commits (and keeps the copies for reuse), and
 * random IDs change a leaf each: a pack of a hundred thousand small blobs in one
 * transaction held a copy of nearly every leaf of a large index. In batches the
 * copies stay below 4 KiB x 8192 = 32 MiB, whatever the index size. */
#define BLOBS_PER_TXN 8192

int cairn_index__add_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n)
{
	uint8_t rec[CAIRN_PACKREC_SIZE];
	size_t i = 0;
	int r;

	if (n > CAIRN_PACK_MAX_ENTRIES)
		return cairn_err_set(-EINVAL, "a pack has at most %u entries, not %zu",
		                     CAIRN_PACK_MAX_ENTRIES, n);
	/* The pack's record goes with the last batch: a crash before it leaves
	 * blobs of a pack the `packs` table lacks, and such a pack is indexed
	 * again (cairn_repo_index_unknown_packs), so the table names only packs
	 * whose blobs are all indexed. */
	do {
		MDB_txn *txn;
		size_t end = n - i > BLOBS_PER_TXN ? i + BLOBS_PER_TXN : n;
		if ((r = begin_write(ix, &txn)) < 0)
			return r;
		for (; r >= 0 && i < end; i++)
			r = put_blob(ix, txn, pack, &e[i]);
		if (r >= 0 && i == n) {
			/* `packs` value (FORMAT.md §7): u64 size, u32 count. */
			cairn_le64(rec, size);
			cairn_le32(rec + 8, (uint32_t)n);
			MDB_val k = val(pack->b, CAIRN_ID_SIZE), v = val(rec, sizeof(rec));
			int rc = mdb_put(txn, ix->packs, &k, &v, 0);
			r = rc ? cairn_err_mdb(rc, "index: cannot add pack") : 0;
		}
		if ((r = end_write(ix, txn, r)) < 0)
			return r;
	} while (i < n);
	return 0;
}

static int del_blobs_in(cairn_index *ix, MDB_txn *txn, const struct cairn_idset *set);

/* Delete every blob record naming pack: a full scan, as prune is rare. */
static int del_blobs_of(cairn_index *ix, MDB_txn *txn, const struct cairn_id *pack)
{
	struct cairn_idset one;
	cairn_idset_init(&one);
	int r = cairn_idset_add(&one, pack, 0);
	if (r >= 0)
		r = del_blobs_in(ix, txn, &one);
	cairn_idset_release(&one);
	return r;
}

int cairn_index__del_pack(cairn_index *ix, const struct cairn_id *pack)
{
	MDB_txn *txn;
	int r = begin_write(ix, &txn);
	if (r < 0)
		return r;
	if ((r = del_blobs_of(ix, txn, pack)) >= 0) {
		MDB_val k = val(pack->b, CAIRN_ID_SIZE);
		int rc = mdb_del(txn, ix->packs, &k, NULL);
		r = rc && rc != MDB_NOTFOUND ? cairn_err_mdb(rc, "index: cannot remove pack") : 0;
	}
	return end_write(ix, txn, r);
}

int cairn_index__has_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t *size_out)
{
	MDB_txn *txn;
	MDB_val k = val(pack->b, CAIRN_ID_SIZE), v;
	int r = begin_read(ix, &txn);
	if (r < 0)
		return r;
	int rc = mdb_get(txn, ix->packs, &k, &v);
	if (rc == MDB_NOTFOUND) {
		r = 0;
	} else if (rc) {
		r = cairn_err_mdb(rc, "index lookup");
	} else if (v.mv_size != CAIRN_PACKREC_SIZE) {
		r = cairn_err_set(-EBADMSG, "index pack record is %zu bytes", v.mv_size);
	} else {
		if (size_out)
			*size_out = cairn_get_le64(v.mv_data);
		r = 1;
	}
	mdb_txn_abort(txn);
	return r;
}

/* Walk a database in key order with a callback per record; the values are only
 * valid during the callback. A negative return stops the walk and is returned. */
static int scan(cairn_index *ix, MDB_dbi dbi, int (*fn)(MDB_val *k, MDB_val *v, void *arg),
                void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int r = begin_read(ix, &txn), rc;
	if (r < 0)
		return r;
	if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
		mdb_txn_abort(txn);
		return cairn_err_mdb(rc, "index: cursor");
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		r = fn(&k, &v, arg);
	mdb_cursor_close(cur);
	mdb_txn_abort(txn);
	if (r < 0)
		return r;
	if (rc && rc != MDB_NOTFOUND)
		return cairn_err_mdb(rc, "index: scan");
	return 0;
}

struct blob_cb {
	int (*cb)(const struct cairn_id *, const struct cairn_loc *, void *);
	void *payload;
};

static int each_blob(MDB_val *k, MDB_val *v, void *arg)
{
	struct blob_cb *b = arg;
	struct cairn_id id;
	struct cairn_loc loc;
	if (k->mv_size != CAIRN_ID_SIZE)
		return cairn_err_set(-EBADMSG, "index key is %zu bytes", k->mv_size);
	int r = cairn_index__decode_loc(&loc, v->mv_data, v->mv_size);
	if (r < 0)
		return r;
	memcpy(id.b, k->mv_data, CAIRN_ID_SIZE);
	return b->cb(&id, &loc, b->payload);
}

int cairn_index__foreach_blob(cairn_index *ix,
                              int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                        void *payload),
                              void *payload)
{
	struct blob_cb b = { cb, payload };
	return scan(ix, ix->blobs, each_blob, &b);
}

struct pack_cb {
	int (*cb)(const struct cairn_id *, uint64_t, uint32_t, void *);
	void *payload;
};

static int each_pack(MDB_val *k, MDB_val *v, void *arg)
{
	struct pack_cb *p = arg;
	struct cairn_id id;
	if (k->mv_size != CAIRN_ID_SIZE || v->mv_size != CAIRN_PACKREC_SIZE)
		return cairn_err_set(-EBADMSG, "index pack record is malformed");
	memcpy(id.b, k->mv_data, CAIRN_ID_SIZE);
	return p->cb(&id, cairn_get_le64(v->mv_data), cairn_get_le32((uint8_t *)v->mv_data + 8),
	             p->payload);
}

int cairn_index__foreach_pack(cairn_index *ix,
                              int (*cb)(const struct cairn_id *pack, uint64_t size, uint32_t count,
                                        void *payload),
                              void *payload)
{
	struct pack_cb p = { cb, payload };
	return scan(ix, ix->packs, each_pack, &p);
}

/* ---- snapshots ---------------------------------------------------------- */

/* `snapshots` value (FORMAT.md §7): i64 time_ns. */
int cairn_index__add_snapshot(cairn_index *ix, const struct cairn_id *id, int64_t time_ns)
{
	MDB_txn *txn;
	uint8_t t[8];
	int r = begin_write(ix, &txn);
	if (r < 0)
		return r;
	cairn_le64(t, (uint64_t)time_ns);
	MDB_val k = val(id->b, CAIRN_ID_SIZE), v = val(t, sizeof(t));
	int rc = mdb_put(txn, ix->snaps, &k, &v, 0);
	return end_write(ix, txn, rc ? cairn_err_mdb(rc, "index: cannot add snapshot") : 0);
}

int cairn_index__del_snapshot(cairn_index *ix, const struct cairn_id *id)
{
	MDB_txn *txn;
	int r = begin_write(ix, &txn);
	if (r < 0)
		return r;
	MDB_val k = val(id->b, CAIRN_ID_SIZE);
	int rc = mdb_del(txn, ix->snaps, &k, NULL);
	r = rc && rc != MDB_NOTFOUND ? cairn_err_mdb(rc, "index: cannot remove snapshot") : 0;
	return end_write(ix, txn, r);
}

struct snap_cb {
	int (*cb)(const struct cairn_id *, int64_t, void *);
	void *payload;
};

static int each_snap(MDB_val *k, MDB_val *v, void *arg)
{
	struct snap_cb *s = arg;
	struct cairn_id id;
	if (k->mv_size != CAIRN_ID_SIZE || v->mv_size != 8)
		return cairn_err_set(-EBADMSG, "index snapshot record is malformed");
	memcpy(id.b, k->mv_data, CAIRN_ID_SIZE);
	return s->cb(&id, (int64_t)cairn_get_le64(v->mv_data), s->payload);
}

int cairn_index__foreach_snapshot(cairn_index *ix,
                                  int (*cb)(const struct cairn_id *id, int64_t time_ns,
                                            void *payload),
                                  void *payload)
{
	struct snap_cb s = { cb, payload };
	return scan(ix, ix->snaps, each_snap, &s);
}

int cairn_index__clear(cairn_index *ix)
{
	MDB_txn *txn;
	int r = begin_write(ix, &txn), rc;
	if (r < 0)
		return r;
	/* del = 0 empties the databases and keeps their handles valid. */
	if ((rc = mdb_drop(txn, ix->blobs, 0)) || (rc = mdb_drop(txn, ix->packs, 0)) ||
	    (rc = mdb_drop(txn, ix->snaps, 0)))
		r = cairn_err_mdb(rc, "index: cannot clear");
	return end_write(ix, txn, r);
}

/* ---- auxiliary tables --------------------------------------------------- */

/* Open a named database in a txn of its own that commits: a commit, even of a
 * read txn, keeps the handle for later txns; an abort would close it. */
static int open_dbi(MDB_env *env, const char *name, unsigned flags, MDB_dbi *dbi)
{
	MDB_txn *txn;
	int rc = mdb_txn_begin(env, NULL, flags & MDB_CREATE ? 0 : MDB_RDONLY, &txn);
	if (rc)
		return rc;
	if ((rc = mdb_dbi_open(txn, name, flags, dbi))) {
		mdb_txn_abort(txn);
		return rc;
	}
	return mdb_txn_commit(txn);
}

/*
 * The handle of "aux:<table>", created if asked. lmdb.h: mdb_dbi_open must not
 * run in two txns at once, hence dbi_lock, held until the opening txn has ended.
 * Lock order: dbi_lock, then wlock; nothing takes dbi_lock inside a write txn.
 * -ENOENT when the table does not exist and create is false.
 */
static int aux_dbi(cairn_index *ix, const char *table, bool create, MDB_dbi *dbi)
{
	char name[128];

	if (snprintf(name, sizeof(name), "aux:%s", table) >= (int)sizeof(name))
		return cairn_err_set(-EINVAL, "table name '%.40s...' is too long", table);
	pthread_mutex_lock(&ix->dbi_lock);
	int rc = open_dbi(ix->env, name, 0, dbi);
	if (rc == MDB_NOTFOUND && create && !ix->read_only) {
		pthread_mutex_lock(&ix->wlock);
		rc = open_dbi(ix->env, name, MDB_CREATE, dbi);
		pthread_mutex_unlock(&ix->wlock);
	}
	pthread_mutex_unlock(&ix->dbi_lock);
	if (rc == MDB_NOTFOUND && create)
		return cairn_err_set(-EROFS, "index opened read-only");
	if (rc == MDB_NOTFOUND)
		return cairn_err_set(-ENOENT, "index has no table '%s'", table);
	return rc ? cairn_err_mdb(rc, "index: cannot open table") : 0;
}

/* LMDB rejects empty keys and keys above its compiled-in maximum. */
static int check_key(cairn_index *ix, size_t klen)
{
	int max = mdb_env_get_maxkeysize(ix->env);
	if (klen == 0 || klen > (size_t)max)
		return cairn_err_set(-EINVAL, "table key of %zu bytes (1..%d allowed)", klen, max);
	return 0;
}

int cairn_index__aux_put(cairn_index *ix, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int r = check_key(ix, klen);
	if (r < 0 || (r = aux_dbi(ix, table, true, &dbi)) < 0 || (r = begin_write(ix, &txn)) < 0)
		return r;
	MDB_val kv = val(k, klen), vv = val(v, vlen);
	int rc = mdb_put(txn, dbi, &kv, &vv, 0);
	return end_write(ix, txn, rc ? cairn_err_mdb(rc, "index: cannot write table") : 0);
}

int cairn_index__aux_get(cairn_index *ix, const char *table, const void *k, size_t klen,
                         struct cairn_buf *out)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val kv = val(k, klen), v;
	int r = check_key(ix, klen);
	if (r < 0 || (r = aux_dbi(ix, table, false, &dbi)) < 0 || (r = begin_read(ix, &txn)) < 0)
		return r;
	int rc = mdb_get(txn, dbi, &kv, &v);
	if (rc == MDB_NOTFOUND) {
		r = cairn_err_set(-ENOENT, "no such key in table '%s'", table);
	} else if (rc) {
		r = cairn_err_mdb(rc, "index: cannot read table");
	} else {
		out->len = 0;
		r = cairn_buf_put(out, v.mv_data, v.mv_size); /* copy before the txn ends */
	}
	mdb_txn_abort(txn);
	return r;
}

int cairn_index__aux_del(cairn_index *ix, const char *table, const void *k, size_t klen)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int r = check_key(ix, klen);
	if (r < 0)
		return r;
	r = aux_dbi(ix, table, false, &dbi);
	if (r == -ENOENT)
		return 0; /* no table, no key */
	if (r < 0 || (r = begin_write(ix, &txn)) < 0)
		return r;
	MDB_val kv = val(k, klen);
	int rc = mdb_del(txn, dbi, &kv, NULL);
	r = rc && rc != MDB_NOTFOUND ? cairn_err_mdb(rc, "index: cannot delete") : 0;
	return end_write(ix, txn, r);
}

struct aux_cb {
	int (*cb)(const void *, size_t, const void *, size_t, void *);
	void *payload;
};

static int each_aux(MDB_val *k, MDB_val *v, void *arg)
{
	struct aux_cb *a = arg;
	return a->cb(k->mv_data, k->mv_size, v->mv_data, v->mv_size, a->payload);
}

int cairn_index__aux_foreach(cairn_index *ix, const char *table,
                             int (*cb)(const void *k, size_t klen, const void *v, size_t vlen,
                                       void *payload),
                             void *payload)
{
	struct aux_cb a = { cb, payload };
	MDB_dbi dbi;
	int r = aux_dbi(ix, table, false, &dbi);
	if (r == -ENOENT)
		return 0; /* an empty table */
	return r < 0 ? r : scan(ix, dbi, each_aux, &a);
}

int cairn_index__aux_drop(cairn_index *ix, const char *table)
{
	MDB_txn *txn;
	MDB_dbi dbi;
	int r = aux_dbi(ix, table, false, &dbi);
	if (r == -ENOENT)
		return 0;
	if (r < 0 || (r = begin_write(ix, &txn)) < 0)
		return r;
	int rc = mdb_drop(txn, dbi, 0);
	return end_write(ix, txn, rc ? cairn_err_mdb(rc, "index: cannot empty table") : 0);
}

/* ---- prune: swapping packs ---------------------------------------------- */

/* Delete every blob record naming a pack of set: one scan for all of them. */
static int del_blobs_in(cairn_index *ix, MDB_txn *txn, const struct cairn_idset *set)
{
	MDB_cursor *cur;
	MDB_val k, v;
	int rc = mdb_cursor_open(txn, ix->blobs, &cur);
	if (rc)
		return cairn_err_mdb(rc, "index: cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct cairn_id pack;
		if (v.mv_size != CAIRN_LOC_SIZE)
			continue;
		memcpy(pack.b, v.mv_data, CAIRN_ID_SIZE);
		if (cairn_idset_has(set, &pack) && (rc = mdb_cursor_del(cur, 0)))
			break;
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? cairn_err_mdb(rc, "index: cannot remove pack blobs") : 0;
}

static int replace_in_txn(cairn_index *ix, MDB_txn *txn, const struct cairn_idset *old,
                          const struct cairn_index_pack *add, size_t nadd)
{
	int r = del_blobs_in(ix, txn, old);
	const struct cairn_id *id;
	for (size_t pos = 0; r >= 0 && cairn_idset_next(old, &pos, &id);) {
		MDB_val k = val(id->b, CAIRN_ID_SIZE);
		int rc = mdb_del(txn, ix->packs, &k, NULL);
		if (rc && rc != MDB_NOTFOUND)
			r = cairn_err_mdb(rc, "index: cannot remove pack");
	}
	for (size_t i = 0; r >= 0 && i < nadd; i++) {
		uint8_t rec[CAIRN_PACKREC_SIZE];
		cairn_le64(rec, add[i].size);
		cairn_le32(rec + 8, (uint32_t)add[i].n);
		MDB_val k = val(add[i].id.b, CAIRN_ID_SIZE), v = val(rec, sizeof(rec));
		int rc = mdb_put(txn, ix->packs, &k, &v, 0);
		r = rc ? cairn_err_mdb(rc, "index: cannot add pack") : 0;
		for (size_t j = 0; r >= 0 && j < add[i].n; j++)
			r = put_blob(ix, txn, &add[i].id, &add[i].e[j]);
	}
	return r;
}

/*
 * The old packs' records go first, in the same txn, so that put_blob's "lowest
 * pack ID wins" (FORMAT.md §7) only ever compares a new location with one in a
 * pack that stays: an old pack with a lower ID can never keep a blob, and the
 * result equals what a rebuild from the remaining packs gives.
 */
static int check_adds(const struct cairn_index_pack *add, size_t nadd)
{
	for (size_t i = 0; i < nadd; i++)
		if (add[i].n > CAIRN_PACK_MAX_ENTRIES)
			return cairn_err_set(-EINVAL, "a pack has at most %u entries, not %zu",
			                     CAIRN_PACK_MAX_ENTRIES, add[i].n);
	return 0;
}

int cairn_index__reset_packs(cairn_index *ix, const struct cairn_index_pack *add, size_t nadd)
{
	struct cairn_idset none;
	MDB_txn *txn;
	int r = check_adds(add, nadd), rc;
	cairn_idset_init(&none);
	if (r < 0 || (r = begin_write(ix, &txn)) < 0)
		return r;
	if ((rc = mdb_drop(txn, ix->blobs, 0)) || (rc = mdb_drop(txn, ix->packs, 0)))
		r = cairn_err_mdb(rc, "index: cannot clear");
	else
		r = replace_in_txn(ix, txn, &none, add, nadd);
	return end_write(ix, txn, r);
}

int cairn_index__replace_packs(cairn_index *ix, const struct cairn_id *old, size_t nold,
                               const struct cairn_index_pack *add, size_t nadd)
{
	struct cairn_idset set;
	MDB_txn *txn;
	int r = 0;

	cairn_idset_init(&set);
	for (size_t i = 0; r >= 0 && i < nold; i++)
		r = cairn_idset_add(&set, &old[i], 0);
	if (r >= 0)
		r = check_adds(add, nadd);
	if (r >= 0 && (r = begin_write(ix, &txn)) >= 0)
		r = end_write(ix, txn, replace_in_txn(ix, txn, &set, add, nadd));
	cairn_idset_release(&set);
	return r;
}
