/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The LMDB index (FORMAT.md §7): blob ID -> pack location, packs, snapshots. */
#include "index.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"
#include "cleanup.h"

#define INDEX_VERSION 2
/* Where the map starts (virtual: the file grows only as needed). It doubles
 * whenever a write finds it full. */
#define MAP_START (1ull << 30)
/* meta, blobs, packs, packnums, snapshots and the "aux:" tables of others. */
#define MAX_DBS 64
/* `blobs` holds one key whose sorted duplicates are the records (FORMAT.md §7):
 * MDB_DUPFIXED stores them packed, without LMDB's 8-byte node header each. */
static const uint8_t BLOBS_KEY[1] = { 'b' };
#define TYPE_SHIFT 30
#define RAW_MASK ((1u << TYPE_SHIFT) - 1)
/* Attempts of one write txn: each retry after MDB_MAP_FULL doubles the map. */
#define WRITE_TRIES 40
/* A writable close compacts the file when free pages are at least a quarter of
 * it, and at least this many (4 KiB each): below, a copy costs more than the
 * space it returns. */
#define COMPACT_MIN_FREE 256
/* Pack numbers cached by a scan of `blobs` (direct-mapped). */
#define PACKMAP_SLOTS 256

static _Atomic size_t map_size_override; /* 0: MAP_START, or twice the file */
static atomic_bool read_ahead;           /* false: MDB_NORDAHEAD */

/* The last LMDB error of this thread was MDB_MAP_FULL: the write is retried with
 * a larger map (in_write). */
static _Thread_local bool map_full;

struct cairn_index {
	MDB_env *env;
	MDB_dbi meta, blobs, packs, packnums, snaps;
	bool read_only;
	bool usable;                      /* opened and checked: a close may read it (compact) */
	const struct cairn_idset *doomed; /* borrowed; see cairn_index__set_doomed() */
	char *dir;
	int lockfd;               /* index/open.lock, read-locked while open; -1 if none */
	pthread_key_t reads;      /* read txns the calling thread has open (a count) */
	bool reads_key;           /* reads was created */
	pthread_mutex_t wlock;    /* one write txn at a time in this process */
	pthread_mutex_t dbi_lock; /* aux_dbi(): mdb_dbi_open in one txn at a time */
	/*
	 * The map gate: lmdb.h allows resizing the map only with no txn of the
	 * process active. Read txns pass the gate (readers counts them); a resize
	 * (under wlock, which keeps write txns out) closes it, waits for readers
	 * to reach 0 and opens it again, so a stream of reads cannot starve it. A
	 * thread that already has a read open passes a closed gate: it would wait
	 * for a resize that waits for its own read.
	 */
	pthread_mutex_t gate;
	pthread_cond_t gate_cv;
	size_t readers; /* protected by gate */
	bool resizing;  /* protected by gate */
};

void cairn_index__set_map_size(size_t bytes)
{
	atomic_store(&map_size_override, bytes);
}

void cairn_index__set_readahead(bool on)
{
	atomic_store(&read_ahead, on);
}

static MDB_val val(const void *p, size_t n)
{
	return (MDB_val){ .mv_size = n, .mv_data = (void *)p };
}

static int lmdb_err(int rc, const char *what)
{
	if (rc == MDB_MAP_FULL)
		map_full = true;
	return cairn_err_mdb(rc, what);
}

static int path_in(char *out, size_t size, const char *dir, const char *name)
{
	if (snprintf(out, size, "%s/%s", dir, name) >= (int)size)
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	return 0;
}

/* ---- records ------------------------------------------------------------ */

/* The bounds are those of a pack header entry (FORMAT.md §6.2). */
static int check_place(uint8_t type, uint32_t offset, uint32_t stored_len, uint32_t raw_len)
{
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EBADMSG, "index entry has blob type %u", type);
	if (offset < CAIRN_PACK_MAGIC_SIZE || stored_len < CAIRN_SEAL_OVERHEAD ||
	    (uint64_t)offset + stored_len > CAIRN_PACK_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "index entry has impossible location %u+%u", offset,
		                     stored_len);
	if (raw_len > CAIRN_TREE_MAX)
		return cairn_err_set(-EBADMSG, "index entry has raw length %u", raw_len);
	return 0;
}

void cairn_index__encode_loc(uint8_t out[CAIRN_LOC_SIZE], const struct cairn_loc *loc)
{
	memcpy(out, loc->pack.b, CAIRN_ID_SIZE);
	cairn_le32(out + 32, loc->offset);
	cairn_le32(out + 36, loc->stored_len);
	cairn_le32(out + 40, loc->raw_len);
	out[44] = loc->type;
}

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
	int r = check_place(l.type, l.offset, l.stored_len, l.raw_len);
	if (r < 0)
		return r;
	*out = l;
	return 0;
}

/* `blobs` record (FORMAT.md §7): id[32], u32 pack number, u32 offset, u32
 * stored_len, u32 raw_len | type << 30. raw_len is at most 2^26 (a tree's
 * maximum), so two bits are free for the type. */
void cairn_index__encode_rec(uint8_t out[CAIRN_INDEX_REC_SIZE], const struct cairn_index_rec *rec)
{
	memcpy(out, rec->id.b, CAIRN_ID_SIZE);
	cairn_le32(out + 32, rec->packno);
	cairn_le32(out + 36, rec->offset);
	cairn_le32(out + 40, rec->stored_len);
	cairn_le32(out + 44, (rec->raw_len & RAW_MASK) | (uint32_t)rec->type << TYPE_SHIFT);
}

int cairn_index__decode_rec(struct cairn_index_rec *out, const uint8_t *p, size_t len)
{
	struct cairn_index_rec rec;

	if (len != CAIRN_INDEX_REC_SIZE)
		return cairn_err_set(-EBADMSG, "index record is %zu bytes, expected %d", len,
		                     CAIRN_INDEX_REC_SIZE);
	memcpy(rec.id.b, p, CAIRN_ID_SIZE);
	rec.packno = cairn_get_le32(p + 32);
	rec.offset = cairn_get_le32(p + 36);
	rec.stored_len = cairn_get_le32(p + 40);
	uint32_t w = cairn_get_le32(p + 44);
	rec.raw_len = w & RAW_MASK;
	rec.type = (uint8_t)(w >> TYPE_SHIFT);
	if (rec.packno == 0)
		return cairn_err_set(-EBADMSG, "index record has pack number 0");
	int r = check_place(rec.type, rec.offset, rec.stored_len, rec.raw_len);
	if (r < 0)
		return r;
	*out = rec;
	return 0;
}

/* ---- locks -------------------------------------------------------------- */

/* Open file description locks: per descriptor, so two handles in one process
 * exclude each other like two processes, and LMDB closing its own descriptors
 * of the directory's files cannot drop them (as it would POSIX record locks). */
static int ofd_lock(int fd, short type, bool wait)
{
	struct flock fl = { .l_type = type, .l_whence = SEEK_SET };
	while (fcntl(fd, wait ? F_OFD_SETLKW : F_OFD_SETLK, &fl) < 0)
		if (errno != EINTR)
			return -errno;
	return 0;
}

/*
 * Every handle holds a read lock on index/open.lock for as long as it has the
 * environment open; a close that compacts swaps in a new data.mdb only under a
 * write lock, that is when no other handle (in any process) has it open. A
 * read-only handle that cannot create the file goes without: then no writer
 * has opened the index since it had one, and none compacts it.
 */
static int take_open_lock(cairn_index *ix)
{
	char path[PATH_MAX];
	int r = path_in(path, sizeof(path), ix->dir, "open.lock");
	if (r < 0)
		return r;
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (fd < 0 && ix->read_only)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && ix->read_only)
		return 0;
	if (fd < 0)
		return cairn_err_set(-errno, "cannot open '%s': %s", path, strerror(errno));
	if ((r = ofd_lock(fd, F_RDLCK, true)) < 0) {
		close(fd);
		return cairn_err_set(r, "cannot lock '%s': %s", path, strerror(-r));
	}
	ix->lockfd = fd;
	return 0;
}

static unsigned reads_held(cairn_index *ix)
{
	return (unsigned)(uintptr_t)pthread_getspecific(ix->reads);
}

static void reads_add(cairn_index *ix, int d)
{
	pthread_setspecific(ix->reads, (void *)(uintptr_t)(reads_held(ix) + (unsigned)d));
}

static void gate_enter(cairn_index *ix)
{
	pthread_mutex_lock(&ix->gate);
	while (ix->resizing && reads_held(ix) == 0)
		pthread_cond_wait(&ix->gate_cv, &ix->gate);
	ix->readers++;
	pthread_mutex_unlock(&ix->gate);
	reads_add(ix, 1);
}

static void gate_leave(cairn_index *ix)
{
	reads_add(ix, -1);
	pthread_mutex_lock(&ix->gate);
	if (--ix->readers == 0 && ix->resizing)
		pthread_cond_broadcast(&ix->gate_cv);
	pthread_mutex_unlock(&ix->gate);
}

/* Set the map size; 0 adopts the size another process gave the file. The caller
 * holds wlock. A thread that has a read txn open would wait for itself. */
static int resize(cairn_index *ix, size_t size)
{
	if (reads_held(ix) > 0)
		return cairn_err_set(size ? -ENOSPC : -EIO,
		                     "index: cannot resize its map inside a read of it");
	pthread_mutex_lock(&ix->gate);
	ix->resizing = true;
	while (ix->readers > 0)
		pthread_cond_wait(&ix->gate_cv, &ix->gate);
	int rc = mdb_env_set_mapsize(ix->env, size);
	ix->resizing = false;
	pthread_cond_broadcast(&ix->gate_cv);
	pthread_mutex_unlock(&ix->gate);
	return rc ? lmdb_err(rc, "index: cannot resize its map") : 0;
}

static int grow(cairn_index *ix)
{
	MDB_envinfo info;
	size_t next;
	int rc = mdb_env_info(ix->env, &info);
	if (rc)
		return lmdb_err(rc, "index: cannot read its map size");
	if (__builtin_mul_overflow(info.me_mapsize, (size_t)2, &next))
		return cairn_err_set(-ENOSPC, "index map cannot grow past %zu bytes",
		                     info.me_mapsize);
	return resize(ix, next);
}

/* ---- transactions ------------------------------------------------------- */

/* Another process that grew the file past this map makes mdb_txn_begin return
 * MDB_MAP_RESIZED (lmdb.h): adopt its size and try again. */
static int begin_read(cairn_index *ix, MDB_txn **txn)
{
	if (!ix->env)
		return cairn_err_set(-EIO, "index is closed");
	for (unsigned tries = 0;; tries++) {
		gate_enter(ix);
		int rc = mdb_txn_begin(ix->env, NULL, MDB_RDONLY, txn);
		if (rc == 0)
			return 0;
		gate_leave(ix);
		if (rc != MDB_MAP_RESIZED || tries == WRITE_TRIES)
			return lmdb_err(rc, "index: cannot begin read");
		/* Checked before taking wlock: its holder may be waiting for our read. */
		if (reads_held(ix) > 0)
			return cairn_err_set(-EIO, "index grew in another process during a read "
			                           "of it: try again");
		pthread_mutex_lock(&ix->wlock);
		int r = resize(ix, 0);
		pthread_mutex_unlock(&ix->wlock);
		if (r < 0)
			return r;
	}
}

static void end_read(cairn_index *ix, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	gate_leave(ix);
}

/* End a read txn by committing it, which keeps the handles it opened. */
static int commit_read(cairn_index *ix, MDB_txn *txn)
{
	int rc = mdb_txn_commit(txn);
	gate_leave(ix);
	return rc ? lmdb_err(rc, "index: cannot commit") : 0;
}

typedef int (*write_fn)(cairn_index *ix, MDB_txn *txn, void *arg);

/* One write txn running fn, committed when it returns >= 0 and aborted
 * otherwise (after any failed put, MDB_MAP_FULL included, LMDB only allows an
 * abort: nothing of the txn is kept). MDB_MAP_FULL, from fn or the commit, is
 * not the disk's ENOSPC: the map doubles and fn runs again from the start. */
static int in_write(cairn_index *ix, write_fn fn, void *arg)
{
	int r = 0;

	if (ix->read_only)
		return cairn_err_set(-EROFS, "index opened read-only");
	if (reads_held(ix) > 0)
		return cairn_err_set(-EINVAL, "index written inside a read of it");
	pthread_mutex_lock(&ix->wlock);
	for (unsigned tries = 0; tries < WRITE_TRIES; tries++) {
		MDB_txn *txn;
		map_full = false;
		int rc = mdb_txn_begin(ix->env, NULL, 0, &txn);
		if (rc == MDB_MAP_RESIZED) {
			if ((r = resize(ix, 0)) < 0)
				break;
			continue;
		}
		if (rc) {
			r = lmdb_err(rc, "index: cannot begin write");
			break;
		}
		r = fn(ix, txn, arg);
		if (r < 0)
			mdb_txn_abort(txn);
		else if ((rc = mdb_txn_commit(txn)))
			r = lmdb_err(rc, "index: cannot commit"); /* the txn is freed */
		if (r >= 0 || !map_full)
			break;
		int g = grow(ix);
		if (g < 0) {
			r = g;
			break;
		}
	}
	pthread_mutex_unlock(&ix->wlock);
	return r;
}

/* ---- opening ------------------------------------------------------------ */

/* `packnums` keys are native u32 (MDB_INTEGERKEY): the index never leaves the
 * machine (FORMAT.md §7). */
static int open_dbs(cairn_index *ix, MDB_txn *txn)
{
	unsigned c = ix->read_only ? 0 : MDB_CREATE;
	unsigned flags;
	int rc;
	if ((rc = mdb_dbi_open(txn, "meta", c, &ix->meta)) ||
	    (rc = mdb_dbi_open(txn, "blobs", c | MDB_DUPSORT | MDB_DUPFIXED, &ix->blobs)) ||
	    (rc = mdb_dbi_open(txn, "packs", c, &ix->packs)) ||
	    (rc = mdb_dbi_open(txn, "packnums", c | MDB_INTEGERKEY, &ix->packnums)) ||
	    (rc = mdb_dbi_open(txn, "snapshots", c, &ix->snaps)) ||
	    (rc = mdb_dbi_flags(txn, ix->blobs, &flags)))
		return lmdb_err(rc == MDB_NOTFOUND ? MDB_INVALID : rc,
		                "index: cannot open databases");
	/* An existing database keeps the flags it was created with. */
	if ((flags & (MDB_DUPSORT | MDB_DUPFIXED)) != (MDB_DUPSORT | MDB_DUPFIXED))
		return cairn_err_set(-EBADMSG, "index table 'blobs' has the wrong layout");
	return 0;
}

/* 1 and *out set, 0 if meta has no version, or -errno. */
static int read_version(MDB_txn *txn, MDB_dbi meta, uint32_t *out)
{
	MDB_val k = val("version", 7), v;
	int rc = mdb_get(txn, meta, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return lmdb_err(rc, "index: cannot read version");
	*out = v.mv_size == 4 ? cairn_get_le32(v.mv_data) : 0; /* malformed: no version */
	return 1;
}

static int check_repo(MDB_txn *txn, MDB_dbi meta, const uint8_t *repo_id)
{
	MDB_val k = val("repo-id", 7), v;
	int rc = mdb_get(txn, meta, &k, &v);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "index: cannot read repo-id");
	if (rc || v.mv_size != CAIRN_REPO_ID_SIZE || memcmp(v.mv_data, repo_id, v.mv_size) != 0)
		return cairn_err_set(-EBADMSG, "index belongs to another repository");
	return 0;
}

/* Delete a named database of another layout, if there is one. */
static int drop_named(MDB_txn *txn, const char *name)
{
	MDB_dbi dbi;
	int rc = mdb_dbi_open(txn, name, 0, &dbi);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc == 0)
		rc = mdb_drop(txn, dbi, 1);
	return rc ? lmdb_err(rc, "index: cannot remove an old table") : 0;
}

struct setup_arg {
	const uint8_t *repo_id;
	bool reset; /* out: the index is new or was emptied */
};

/* `meta` (FORMAT.md §7): a new index gets its version and repository id. An
 * index of another layout keeps only its aux: tables (and meta): the tables of
 * the index proper are deleted, to be rebuilt by the caller. */
static int setup_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct setup_arg *a = arg;
	uint8_t ver[4];
	uint32_t have = 0;
	int rc = mdb_dbi_open(txn, "meta", MDB_CREATE, &ix->meta), r;

	if (rc)
		return lmdb_err(rc, "index: cannot open databases");
	if ((r = read_version(txn, ix->meta, &have)) < 0)
		return r;
	if (r == 1 && (r = check_repo(txn, ix->meta, a->repo_id)) < 0)
		return r;
	a->reset = have != INDEX_VERSION;
	if (a->reset) {
		static const char *const old[] = { "blobs", "packs", "packnums", "snapshots" };
		for (size_t i = 0; i < ARRAY_SIZE(old); i++)
			if ((r = drop_named(txn, old[i])) < 0)
				return r;
		cairn_le32(ver, INDEX_VERSION);
		MDB_val kv = val("version", 7), vv = val(ver, 4), ki = val("repo-id", 7),
		        vi = val(a->repo_id, CAIRN_REPO_ID_SIZE);
		if ((rc = mdb_put(txn, ix->meta, &kv, &vv, 0)) ||
		    (rc = mdb_put(txn, ix->meta, &ki, &vi, 0)))
			return lmdb_err(rc, "index: cannot initialise");
	}
	return open_dbs(ix, txn);
}

static int setup_read(cairn_index *ix, const uint8_t *repo_id)
{
	MDB_txn *txn;
	uint32_t have = 0;
	int r = begin_read(ix, &txn), rc;
	if (r < 0)
		return r;
	if ((rc = mdb_dbi_open(txn, "meta", 0, &ix->meta)))
		r = lmdb_err(rc == MDB_NOTFOUND ? MDB_INVALID : rc, "index: cannot open databases");
	else if ((r = read_version(txn, ix->meta, &have)) == 0)
		r = cairn_err_set(-EBADMSG, "index has no version: run 'cairn rebuild-index'");
	else if (r > 0 && have != INDEX_VERSION)
		r = cairn_err_set(-EPROTO,
		                  "index has layout version %u, this cairn reads %u: run 'cairn "
		                  "rebuild-index'",
		                  have, INDEX_VERSION);
	else if (r > 0 && (r = check_repo(txn, ix->meta, repo_id)) >= 0)
		r = open_dbs(ix, txn);
	if (r < 0) {
		end_read(ix, txn);
		return r;
	}
	return commit_read(ix, txn); /* keeps the handles opened in it */
}

/* LMDB maps the file and trusts its meta page: the pages of a truncated file
 * past its end would fault (SIGBUS) when touched. */
static int check_size(cairn_index *ix)
{
	char data[PATH_MAX];
	MDB_envinfo info;
	MDB_stat st;
	struct stat fst;
	int rc, r;

	if ((rc = mdb_env_info(ix->env, &info)) || (rc = mdb_env_stat(ix->env, &st)))
		return lmdb_err(rc, "index: cannot read its size");
	if ((r = path_in(data, sizeof(data), ix->dir, "data.mdb")) < 0)
		return r;
	if (stat(data, &fst) < 0)
		return cairn_err_set(-EIO, "cannot stat '%s': %s", data, strerror(errno));
	if (((uint64_t)info.me_last_pgno + 1) * st.ms_psize > (uint64_t)fst.st_size)
		return cairn_err_set(-EBADMSG,
		                     "index '%s' is truncated (%llu of %llu bytes): run "
		                     "'cairn rebuild-index'",
		                     ix->dir, (unsigned long long)fst.st_size,
		                     ((unsigned long long)info.me_last_pgno + 1) * st.ms_psize);
	return 0;
}

/* The map to start with: room for the file to double before the first resize. */
static size_t start_map(const char *data)
{
	size_t map = atomic_load(&map_size_override);
	struct stat st;
	if (map)
		return map;
	map = MAP_START;
	if (stat(data, &st) == 0)
		while (map / 2 < (uint64_t)st.st_size && map < SIZE_MAX / 2)
			map *= 2;
	return map;
}

/* Create the environment and open it with flags: 0 or an LMDB code (after which
 * the environment is gone, as a failed open leaves it unusable). */
/* LMDB checks its pages with assertions and aborts on a damaged one: say what
 * it is and how to mend it, in one line, and exit as any failure does. The
 * transaction in progress is not committed (copy on write), and the lock
 * file's mutexes are robust, so the next open finds the index as it was. */
static void damaged(MDB_env *env, const char *msg)
{
	const char *dir = NULL;
	if (mdb_env_get_path(env, &dir) != 0 || !dir)
		dir = "?";
	cairn_log(CAIRN_LOG_ERR,
	          "the index '%s' is damaged (LMDB: %s): it is a cache, which 'cairn "
	          "rebuild-index' makes anew (for a bucket: remove the cache)",
	          dir, msg);
	_exit(EXIT_FAILURE);
}

static int env_open(cairn_index *ix, const char *data, unsigned flags)
{
	int rc;

	if (!atomic_load(&read_ahead))
		flags |= MDB_NORDAHEAD; /* a lookup reads one random page, not 32 */
	if ((rc = mdb_env_create(&ix->env)))
		return rc;
	mdb_env_set_assert(ix->env, damaged);
	if ((rc = mdb_env_set_maxdbs(ix->env, MAX_DBS)) ||
	    (rc = mdb_env_set_mapsize(ix->env, start_map(data))) ||
	    (rc = mdb_env_open(ix->env, ix->dir, flags, 0600))) {
		mdb_env_close(ix->env);
		ix->env = NULL;
	}
	return rc;
}

static int setup(cairn_index *ix, const uint8_t *repo_id)
{
	char data[PATH_MAX];
	int r = path_in(data, sizeof(data), ix->dir, "data.mdb");
	if (r < 0)
		return r;
	/* NOTLS: read txns are not tied to a thread (one short txn per call, STYLE §6).
	 * No NOSYNC or NOMETASYNC (outside a bulk load): a commit is durable, so after
	 * a crash the index is consistent and only ever names packs that exist
	 * (FORMAT.md §7). */
	int rc = env_open(ix, data, MDB_NOTLS | (ix->read_only ? MDB_RDONLY : 0));
	/* A lock file that cannot be opened for writing (an immutable copy, another
	 * user's repository): read without locking, as LMDB itself does on a
	 * read-only filesystem. */
	if (ix->read_only && (rc == EACCES || rc == EPERM || rc == EROFS))
		rc = env_open(ix, data, MDB_NOTLS | MDB_RDONLY | MDB_NOLOCK);
	/* Not an LMDB file at all (garbage, zeroes): a damaged cache, mended as a
	 * truncated one is. */
	if (rc == MDB_INVALID || rc == MDB_VERSION_MISMATCH)
		return cairn_err_set(-EBADMSG,
		                     "index '%s' is damaged (LMDB: %s): run 'cairn rebuild-index'",
		                     ix->dir, mdb_strerror(rc));
	if (rc)
		return cairn_err_wrap(lmdb_err(rc, "cannot open index"), "'%s'", ix->dir);
	if ((r = check_size(ix)) < 0)
		return r;
	/* Reader slots left by a crashed process would pin old pages and grow the map. */
	int dead = 0;
	if ((rc = mdb_reader_check(ix->env, &dead)))
		return lmdb_err(rc, "index: cannot check readers");
	if (ix->read_only)
		return setup_read(ix, repo_id);
	struct setup_arg a = { .repo_id = repo_id };
	r = in_write(ix, setup_write, &a);
	return r < 0 ? r : a.reset;
}

/*
 * Leftovers of an interrupted writer, removed only when no other handle has the
 * index open: a compaction's copy, and the file of a bulk load (its commits were
 * not synced, so after a system crash it may not even be consistent). Returns 1
 * when data.mdb went: the index starts empty.
 */
static int clean_leftovers(cairn_index *ix)
{
	char copy[PATH_MAX], mark[PATH_MAX], data[PATH_MAX], lock[PATH_MAX];
	int r;

	if ((r = path_in(copy, sizeof(copy), ix->dir, "data.mdb.compact")) < 0 ||
	    (r = path_in(mark, sizeof(mark), ix->dir, "rebuilding")) < 0 ||
	    (r = path_in(data, sizeof(data), ix->dir, "data.mdb")) < 0 ||
	    (r = path_in(lock, sizeof(lock), ix->dir, "lock.mdb")) < 0)
		return r;
	bool stale = access(copy, F_OK) == 0, bulk = access(mark, F_OK) == 0;
	if ((!stale && !bulk) || ix->lockfd < 0 || ofd_lock(ix->lockfd, F_WRLCK, false) < 0)
		return 0;
	if (stale && unlink(copy) < 0 && errno != ENOENT)
		r = cairn_err_set(-errno, "cannot remove '%s': %s", copy, strerror(errno));
	const char *gone[] = { data, lock, mark }; /* the mark last: it says "redo" */
	for (size_t i = 0; r >= 0 && bulk && i < ARRAY_SIZE(gone); i++)
		if (unlink(gone[i]) < 0 && errno != ENOENT)
			r = cairn_err_set(-errno, "cannot remove '%s': %s", gone[i],
			                  strerror(errno));
	if (r >= 0 && bulk)
		r = 1;
	int l = ofd_lock(ix->lockfd, F_RDLCK, true);
	if (l < 0 && r >= 0)
		r = cairn_err_set(l, "cannot lock index '%s': %s", ix->dir, strerror(-l));
	return r;
}

static int index_new(cairn_index **out, const char *dir, bool read_only)
{
	cairn_index *ix = calloc(1, sizeof(*ix));
	if (!ix || !(ix->dir = strdup(dir))) {
		free(ix);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	ix->read_only = read_only;
	ix->lockfd = -1;
	pthread_mutex_init(&ix->gate, NULL);
	pthread_cond_init(&ix->gate_cv, NULL);
	pthread_mutex_init(&ix->wlock, NULL);
	pthread_mutex_init(&ix->dbi_lock, NULL);
	int e = pthread_key_create(&ix->reads, NULL);
	ix->reads_key = e == 0;
	*out = ix;
	return e ? cairn_err_set(-e, "cannot create thread key: %s", strerror(e)) : 0;
}

int cairn_index__open(cairn_index **out, const char *dir, bool read_only,
                      const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	char data[PATH_MAX];
	cairn_index *ix = NULL;
	int r = path_in(data, sizeof(data), dir, "data.mdb"), fresh = 0;

	if (r < 0)
		return r;
	if ((r = index_new(&ix, dir, read_only)) < 0) {
		cairn_index__close(ix);
		return r;
	}
	/* MDB_RDONLY would fail on a missing file with a less helpful ENOENT text. */
	if (read_only && access(data, F_OK) < 0)
		r = cairn_err_set(-ENOENT, "no index at '%s'", dir);
	else if (!read_only)
		r = cairn_mkdir_p(dir, 0700);
	if (r >= 0)
		r = take_open_lock(ix);
	if (r >= 0 && !read_only)
		r = fresh = clean_leftovers(ix);
	if (r >= 0)
		r = setup(ix, repo_id);
	if (r < 0) {
		cairn_index__close(ix);
		return r;
	}
	ix->usable = true;
	*out = ix;
	return r || fresh ? 1 : 0;
}

/* ---- compaction --------------------------------------------------------- */

/* Pages on LMDB's free list: a scan of its free-page database (dbi 0), whose
 * records are page lists that start with their length. */
static int free_pages(cairn_index *ix, size_t *out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	size_t n = 0;
	int r = begin_read(ix, &txn), rc;
	if (r < 0)
		return r;
	if ((rc = mdb_cursor_open(txn, 0, &cur)) == 0) {
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			size_t len = 0;
			if (v.mv_size >= sizeof(len))
				memcpy(&len, v.mv_data, sizeof(len));
			n += len;
		}
		mdb_cursor_close(cur);
	}
	end_read(ix, txn);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "index: cannot read its free list");
	*out = n;
	return 0;
}

static bool worth_compacting(cairn_index *ix)
{
	MDB_envinfo info;
	size_t nfree = 0;
	if (mdb_env_info(ix->env, &info) || free_pages(ix, &nfree) < 0)
		return false;
	return nfree >= COMPACT_MIN_FREE && nfree >= (info.me_last_pgno + 1) / 4;
}

/*
 * Replace data.mdb with a copy without its free pages (mdb_env_copy2's
 * MDB_CP_COMPACT), and close the environment. Only with no other handle open
 * (the write lock on open.lock): one that has the old file mapped would go on
 * reading it, and share lock.mdb with the new one. The next open is then the
 * first, and LMDB rebuilds lock.mdb's state from the new file. Any failure
 * leaves the old file in place.
 */
static void compact(cairn_index *ix)
{
	char copy[PATH_MAX], data[PATH_MAX];

	if (path_in(copy, sizeof(copy), ix->dir, "data.mdb.compact") < 0 ||
	    path_in(data, sizeof(data), ix->dir, "data.mdb") < 0 ||
	    ofd_lock(ix->lockfd, F_WRLCK, false) < 0)
		return;
	int fd = open(copy, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = mdb_env_copyfd2(ix->env, fd, MDB_CP_COMPACT) == 0 && fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (ok) {
		mdb_env_close(ix->env);
		ix->env = NULL;
		ok = rename(copy, data) == 0;
	}
	if (!ok)
		unlink(copy);
	else
		cairn_fsync_dir(ix->dir); /* either file is a whole index */
}

void cairn_index__close(cairn_index *ix)
{
	if (!ix)
		return;
	if (ix->usable && ix->env && !ix->read_only && ix->lockfd >= 0 && worth_compacting(ix))
		compact(ix);
	if (ix->env)
		mdb_env_close(ix->env);
	if (ix->lockfd >= 0)
		close(ix->lockfd); /* releases its lock */
	if (ix->reads_key)
		pthread_key_delete(ix->reads);
	pthread_cond_destroy(&ix->gate_cv);
	pthread_mutex_destroy(&ix->gate);
	pthread_mutex_destroy(&ix->wlock);
	pthread_mutex_destroy(&ix->dbi_lock);
	free(ix->dir);
	free(ix);
}

/* ---- bulk loads --------------------------------------------------------- */

int cairn_index__bulk(cairn_index *ix, bool on)
{
	char mark[PATH_MAX];
	int r = path_in(mark, sizeof(mark), ix->dir, "rebuilding"), rc;

	if (r < 0)
		return r;
	if (ix->read_only)
		return cairn_err_set(-EROFS, "index opened read-only");
	if (on) {
		/* The mark is durable before the first commit that is not. */
		static const char text[] = "index rebuild in progress\n";
		if ((r = cairn_file_write_atomic(mark, ix->dir, text, sizeof(text) - 1)) < 0)
			return r;
		rc = mdb_env_set_flags(ix->env, MDB_NOSYNC, 1);
		return rc ? lmdb_err(rc, "index: cannot stop syncing") : 0;
	}
	if ((rc = mdb_env_sync(ix->env, 1)) || (rc = mdb_env_set_flags(ix->env, MDB_NOSYNC, 0)))
		return lmdb_err(rc, "index: cannot sync");
	if (unlink(mark) < 0 && errno != ENOENT)
		return cairn_err_set(-errno, "cannot remove '%s': %s", mark, strerror(errno));
	return cairn_fsync_dir(ix->dir);
}

/* ---- packs -------------------------------------------------------------- */

/* `packs` value (FORMAT.md §7): u64 size, u32 count, u32 number. The top bit
 * of count marks a pack whose blobs are being indexed in batches (add_pack):
 * such a pack counts as not indexed, and is indexed again after a crash. */
struct packrec {
	uint64_t size;
	uint32_t count, no;
	bool partial;
};

#define PARTIAL_BIT 0x80000000u

/* 1 and *out set, 0 if the pack is not indexed, -EBADMSG if its record is
 * malformed, or another -errno. */
static int get_packrec(cairn_index *ix, MDB_txn *txn, const struct cairn_id *pack,
                       struct packrec *out)
{
	MDB_val k = val(pack->b, CAIRN_ID_SIZE), v;
	int rc = mdb_get(txn, ix->packs, &k, &v);
	if (rc == MDB_NOTFOUND)
		return 0;
	if (rc)
		return lmdb_err(rc, "index lookup");
	if (v.mv_size != CAIRN_PACKREC_SIZE || cairn_get_le32((uint8_t *)v.mv_data + 12) == 0)
		return cairn_err_set(-EBADMSG, "index pack record is malformed");
	out->size = cairn_get_le64(v.mv_data);
	out->count = cairn_get_le32((uint8_t *)v.mv_data + 8);
	out->partial = out->count & PARTIAL_BIT;
	out->count &= ~PARTIAL_BIT;
	out->no = cairn_get_le32((uint8_t *)v.mv_data + 12);
	return 1;
}

/* The pack ID that `packnums` gives a number. */
static int pack_id(cairn_index *ix, MDB_txn *txn, uint32_t no, struct cairn_id *out)
{
	MDB_val k = val(&no, sizeof(no)), v;
	int rc = mdb_get(txn, ix->packnums, &k, &v);
	if (rc == MDB_NOTFOUND || (rc == 0 && v.mv_size != CAIRN_ID_SIZE))
		return cairn_err_set(-EBADMSG, "index entry names pack number %u, which it lacks",
		                     no);
	if (rc)
		return lmdb_err(rc, "index lookup");
	memcpy(out->b, v.mv_data, CAIRN_ID_SIZE);
	return 0;
}

/* The lowest number not in use above every number in use (numbers of pruned
 * packs at the top are used again, which is safe: their blob records went in
 * the same txn). */
static int next_packno(cairn_index *ix, MDB_txn *txn, uint32_t *out)
{
	MDB_cursor *cur;
	MDB_val k, v;
	uint32_t last = 0;
	int rc = mdb_cursor_open(txn, ix->packnums, &cur);
	if (rc)
		return lmdb_err(rc, "index: cursor");
	rc = mdb_cursor_get(cur, &k, &v, MDB_LAST);
	if (rc == 0 && k.mv_size == sizeof(last))
		memcpy(&last, k.mv_data, sizeof(last));
	mdb_cursor_close(cur);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "index lookup");
	if (last == UINT32_MAX)
		return cairn_err_set(-ENOSPC, "index has no pack number left: run 'cairn "
		                              "rebuild-index'");
	*out = last + 1;
	return 0;
}

/* Record a pack (again: it keeps its number), partial while its blobs are
 * being indexed in batches, and give its number. */
static int put_pack(cairn_index *ix, MDB_txn *txn, const struct cairn_id *pack, uint64_t size,
                    size_t n, bool partial, uint32_t *no)
{
	struct packrec old;
	uint8_t rec[CAIRN_PACKREC_SIZE];
	int r = get_packrec(ix, txn, pack, &old), rc;

	if (r == -EBADMSG)
		r = 0; /* a malformed record is replaced */
	if (r < 0)
		return r;
	if (r == 1) {
		*no = old.no;
	} else {
		if ((r = next_packno(ix, txn, no)) < 0)
			return r;
		MDB_val k = val(no, sizeof(*no)), v = val(pack->b, CAIRN_ID_SIZE);
		if ((rc = mdb_put(txn, ix->packnums, &k, &v, MDB_APPEND)))
			return lmdb_err(rc, "index: cannot add pack");
	}
	cairn_le64(rec, size);
	cairn_le32(rec + 8, (uint32_t)n | (partial ? PARTIAL_BIT : 0));
	cairn_le32(rec + 12, *no);
	MDB_val k = val(pack->b, CAIRN_ID_SIZE), v = val(rec, sizeof(rec));
	rc = mdb_put(txn, ix->packs, &k, &v, 0);
	return rc ? lmdb_err(rc, "index: cannot add pack") : 0;
}

/* Forget a pack: 1 and its number, or 0 if it was not indexed. */
static int del_pack(cairn_index *ix, MDB_txn *txn, const struct cairn_id *pack, uint32_t *no)
{
	struct packrec pr;
	int r = get_packrec(ix, txn, pack, &pr), rc;
	if (r <= 0)
		return r == -EBADMSG ? 0 : r;
	MDB_val k = val(pack->b, CAIRN_ID_SIZE), kn = val(&pr.no, sizeof(pr.no));
	if ((rc = mdb_del(txn, ix->packs, &k, NULL)) ||
	    ((rc = mdb_del(txn, ix->packnums, &kn, NULL)) && rc != MDB_NOTFOUND))
		return lmdb_err(rc, "index: cannot remove pack");
	*no = pr.no;
	return 1;
}

int cairn_index__has_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t *size_out)
{
	MDB_txn *txn;
	struct packrec pr;
	int r = begin_read(ix, &txn);
	if (r < 0)
		return r;
	r = get_packrec(ix, txn, pack, &pr);
	end_read(ix, txn);
	if (r == 1 && pr.partial)
		r = 0;
	if (r == 1 && size_out)
		*size_out = pr.size;
	return r;
}

/* ---- blobs -------------------------------------------------------------- */

/* Position cur on the record of id: 0 and *rec, MDB_NOTFOUND, or an LMDB code.
 * The records sort by ID (their first 32 bytes), so the first one at or after
 * the ID followed by zeros is the blob's, if it has one. *past_end says that no
 * record sorts at or after it. */
static int seek_blob_at(MDB_cursor *cur, const uint8_t id[CAIRN_ID_SIZE], MDB_val *rec,
                        bool *past_end)
{
	uint8_t probe[CAIRN_INDEX_REC_SIZE] = { 0 };
	memcpy(probe, id, CAIRN_ID_SIZE);
	MDB_val k = val(BLOBS_KEY, sizeof(BLOBS_KEY)), v = val(probe, sizeof(probe));
	int rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
	*past_end = rc == MDB_NOTFOUND;
	if (rc)
		return rc;
	if (v.mv_size != CAIRN_INDEX_REC_SIZE || memcmp(v.mv_data, id, CAIRN_ID_SIZE) != 0)
		return MDB_NOTFOUND;
	*rec = v;
	return 0;
}

static int seek_blob(MDB_cursor *cur, const uint8_t id[CAIRN_ID_SIZE], MDB_val *rec)
{
	bool past_end;
	return seek_blob_at(cur, id, rec, &past_end);
}

static int rec_to_loc(cairn_index *ix, MDB_txn *txn, const MDB_val *v, struct cairn_loc *out)
{
	struct cairn_index_rec rec;
	struct cairn_id pack;
	int r = cairn_index__decode_rec(&rec, v->mv_data, v->mv_size);
	if (r < 0 || (r = pack_id(ix, txn, rec.packno, &pack)) < 0)
		return r;
	*out = (struct cairn_loc){ pack, rec.offset, rec.stored_len, rec.raw_len, rec.type };
	return 0;
}

int cairn_index__get(cairn_index *ix, const struct cairn_id *id, struct cairn_loc *out)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val v;
	int r = begin_read(ix, &txn);
	if (r < 0)
		return r;
	int rc = mdb_cursor_open(txn, ix->blobs, &cur);
	if (rc == 0) {
		rc = seek_blob(cur, id->b, &v);
		mdb_cursor_close(cur);
	}
	if (rc == MDB_NOTFOUND)
		r = cairn_err_set(-ENOENT, "blob not in the index"); /* common: a new chunk */
	else if (rc)
		r = lmdb_err(rc, "index lookup");
	else
		r = rec_to_loc(ix, txn, &v, out); /* copy before txn ends */
	end_read(ix, txn);
	return r;
}

void cairn_index__set_doomed(cairn_index *ix, const struct cairn_idset *doomed)
{
	ix->doomed = doomed;
}

static bool in_doomed(const cairn_index *ix, const struct cairn_id *pack)
{
	return ix->doomed && ix->doomed->count > 0 && cairn_idset_has(ix->doomed, pack);
}

/* Whether a blob's record in pack `old` stays when pack `new` holds it too: a
 * pack a prune is deleting loses to any other; else the lowest ID wins. */
static bool keeps(const cairn_index *ix, const struct cairn_id *old, const struct cairn_id *new)
{
	bool old_doomed = in_doomed(ix, old), new_doomed = in_doomed(ix, new);
	if (old_doomed != new_doomed)
		return new_doomed;
	return cairn_id_cmp(old, new) < 0;
}

/* Put one entry of pack number no. FORMAT.md §7: the lowest pack ID wins, so a
 * rebuild gives the same index whatever order it reads the packs in, except over
 * a pack a prune is deleting: the new copy must survive that pack's records. A
 * record that names an unknown pack, or is malformed, is replaced. */
static int put_blob(cairn_index *ix, MDB_txn *txn, MDB_cursor *cur, uint32_t no,
                    const struct cairn_id *pack, const struct cairn_pack_entry *e)
{
	struct cairn_index_rec rec = { e->id, no, e->offset, e->stored_len, e->raw_len, e->type };
	uint8_t buf[CAIRN_INDEX_REC_SIZE];
	MDB_val v;
	bool past_end;
	int rc = seek_blob_at(cur, e->id.b, &v, &past_end);

	cairn_index__encode_rec(buf, &rec);
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "index lookup");
	if (rc == 0 && memcmp(v.mv_data, buf, sizeof(buf)) == 0)
		return 0; /* recorded already */
	if (rc == 0) {
		struct cairn_index_rec have;
		struct cairn_id hpack;
		if (cairn_index__decode_rec(&have, v.mv_data, v.mv_size) == 0 &&
		    have.packno != no && pack_id(ix, txn, have.packno, &hpack) == 0 &&
		    keeps(ix, &hpack, pack))
			return 0;
		if ((rc = mdb_cursor_del(cur, 0)))
			return lmdb_err(rc, "index: cannot replace blob");
	}
	MDB_val k = val(BLOBS_KEY, sizeof(BLOBS_KEY));
	v = val(buf, sizeof(buf));
	/* Past the last record, an append: LMDB then fills a page before it starts
	 * the next. A plain put splits full pages in the middle, so records added
	 * in order (put_packs sorts them) would leave every page half empty. */
	rc = mdb_cursor_put(cur, &k, &v, past_end ? MDB_APPENDDUP : 0);
	return rc ? lmdb_err(rc, "index: cannot add blob") : 0;
}

/* An entry to put and the number of its pack. */
struct put {
	const struct cairn_pack_entry *e;
	const struct cairn_id *pack;
	uint32_t no;
};

static int by_id(const void *a, const void *b)
{
	const struct put *x = a, *y = b;
	return memcmp(x->e->id.b, y->e->id.b, CAIRN_ID_SIZE);
}

/* Record packs and their entries, in blob ID order: the cursor then moves
 * forward through the tree instead of jumping about it. */
static int put_packs(cairn_index *ix, MDB_txn *txn, const struct cairn_index_pack *p, size_t n)
{
	size_t total = 0, j = 0;
	MDB_cursor *cur;
	int r = 0;

	for (size_t i = 0; i < n; i++)
		total += p[i].n;
	_cleanup_free_ struct put *all = calloc(total ? total : 1, sizeof(*all));
	if (!all)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; r >= 0 && i < n; i++) {
		uint32_t no;
		if ((r = put_pack(ix, txn, &p[i].id, p[i].size, p[i].n, false, &no)) < 0)
			break;
		for (size_t k = 0; k < p[i].n; k++)
			all[j++] = (struct put){ &p[i].e[k], &p[i].id, no };
	}
	if (r < 0)
		return r;
	qsort(all, total, sizeof(*all), by_id);
	int rc = mdb_cursor_open(txn, ix->blobs, &cur);
	if (rc)
		return lmdb_err(rc, "index: cursor");
	for (size_t i = 0; r >= 0 && i < total; i++)
		r = put_blob(ix, txn, cur, all[i].no, all[i].pack, all[i].e);
	mdb_cursor_close(cur);
	return r;
}

static int check_counts(const struct cairn_index_pack *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].n > CAIRN_PACK_MAX_ENTRIES)
			return cairn_err_set(-EINVAL, "a pack has at most %u entries, not %zu",
			                     CAIRN_PACK_MAX_ENTRIES, p[i].n);
	return 0;
}

/* Pack numbers, sorted, for del_blobs_in. */
struct nums {
	uint32_t *v;
	size_t n;
};

static int cmp_u32(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return (x > y) - (x < y);
}

static bool nums_has(const struct nums *s, uint32_t no)
{
	return bsearch(&no, s->v, s->n, sizeof(no), cmp_u32) != NULL;
}

/*
 * Delete every blob record whose pack number is in set: a full scan, as prune
 * is rare. After a delete the cursor is placed again by the deleted record's
 * bytes (the next record is the first at or after them) rather than trusting
 * where mdb_cursor_del leaves a cursor on duplicates, which LMDB before 0.9.27
 * got wrong for repeated deletes (ITS#9376).
 */
static int del_blobs_in(cairn_index *ix, MDB_txn *txn, const struct nums *set)
{
	MDB_cursor *cur;
	MDB_val k = val(BLOBS_KEY, sizeof(BLOBS_KEY)), v;
	uint8_t gone[CAIRN_INDEX_REC_SIZE];

	if (set->n == 0)
		return 0;
	int rc = mdb_cursor_open(txn, ix->blobs, &cur);
	if (rc)
		return lmdb_err(rc, "index: cursor");
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET); rc == 0;) {
		if (v.mv_size != CAIRN_INDEX_REC_SIZE ||
		    !nums_has(set, cairn_get_le32((uint8_t *)v.mv_data + 32))) {
			rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT_DUP);
			continue;
		}
		memcpy(gone, v.mv_data, sizeof(gone));
		if ((rc = mdb_cursor_del(cur, 0)))
			break;
		k = val(BLOBS_KEY, sizeof(BLOBS_KEY));
		v = val(gone, sizeof(gone));
		rc = mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE);
	}
	mdb_cursor_close(cur);
	return rc && rc != MDB_NOTFOUND ? lmdb_err(rc, "index: cannot remove pack blobs") : 0;
}

/* Forget packs and their blob records; the numbers they had go into gone. */
static int del_packs(cairn_index *ix, MDB_txn *txn, const struct cairn_id *old, size_t nold)
{
	struct nums gone = { calloc(nold ? nold : 1, sizeof(uint32_t)), 0 };
	int r = gone.v ? 0 : cairn_err_set(-ENOMEM, "out of memory");

	for (size_t i = 0; r >= 0 && i < nold; i++) {
		uint32_t no = 0;
		if ((r = del_pack(ix, txn, &old[i], &no)) == 1)
			gone.v[gone.n++] = no;
	}
	if (r >= 0) {
		qsort(gone.v, gone.n, sizeof(uint32_t), cmp_u32);
		r = del_blobs_in(ix, txn, &gone);
	}
	free(gone.v);
	return r;
}

/* n keys of klen bytes, stride bytes apart (a field of an array of structs). */
struct aux_arg {
	MDB_dbi dbi;
	const uint8_t *k;
	size_t klen, stride, n;
	MDB_val v;
	bool del;
};
static int aux_write(cairn_index *ix, MDB_txn *txn, void *arg);

struct replace_arg {
	const struct cairn_id *old;
	size_t nold;
	const struct cairn_index_pack *add;
	size_t nadd;
	struct aux_arg *aux; /* made in the same txn, or NULL */
};

static int replace_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct replace_arg *a = arg;
	int r = del_packs(ix, txn, a->old, a->nold);
	if (r >= 0)
		r = put_packs(ix, txn, a->add, a->nadd);
	return r < 0 || !a->aux ? r : aux_write(ix, txn, a->aux);
}

/*
 * The old packs' records go first, in the same txn, so that put_blob's "lowest
 * pack ID wins" (FORMAT.md §7) only ever compares a new location with one in a
 * pack that stays: an old pack with a lower ID can never keep a blob, and the
 * result equals what a rebuild from the remaining packs gives.
 */
int cairn_index__replace_packs(cairn_index *ix, const struct cairn_id *old, size_t nold,
                               const struct cairn_index_pack *add, size_t nadd)
{
	struct replace_arg a = { old, nold, add, nadd, NULL };
	int r = check_counts(add, nadd);
	return r < 0 ? r : in_write(ix, replace_write, &a);
}

struct del_blob_arg {
	const struct cairn_id *id, *pack;
	bool gone;
};

static int del_blob_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct del_blob_arg *a = arg;
	struct cairn_index_rec rec;
	struct cairn_id have;
	MDB_cursor *cur;
	MDB_val v;
	bool past_end;
	int rc = mdb_cursor_open(txn, ix->blobs, &cur);
	if (rc)
		return lmdb_err(rc, "index: cursor");
	rc = seek_blob_at(cur, a->id->b, &v, &past_end);
	int r = rc == MDB_NOTFOUND ? 0 : rc ? lmdb_err(rc, "index lookup") : 1;
	if (r > 0 && (r = cairn_index__decode_rec(&rec, v.mv_data, v.mv_size)) >= 0 &&
	    (r = pack_id(ix, txn, rec.packno, &have)) >= 0 && cairn_id_cmp(&have, a->pack) == 0) {
		rc = mdb_cursor_del(cur, 0);
		r = rc ? lmdb_err(rc, "index: cannot remove a blob") : 0;
		a->gone = r >= 0;
	}
	mdb_cursor_close(cur);
	return r < 0 ? r : 0;
}

int cairn_index__del_blob(cairn_index *ix, const struct cairn_id *id, const struct cairn_id *pack)
{
	struct del_blob_arg a = { id, pack, false };
	int r = in_write(ix, del_blob_write, &a);
	return r < 0 ? r : a.gone;
}

static int reset_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct replace_arg *a = arg;
	int rc;
	if ((rc = mdb_drop(txn, ix->blobs, 0)) || (rc = mdb_drop(txn, ix->packs, 0)) ||
	    (rc = mdb_drop(txn, ix->packnums, 0)))
		return lmdb_err(rc, "index: cannot clear");
	return put_packs(ix, txn, a->add, a->nadd);
}

int cairn_index__reset_packs(cairn_index *ix, const struct cairn_index_pack *add, size_t nadd)
{
	struct replace_arg a = { NULL, 0, add, nadd, NULL };
	int r = check_counts(add, nadd);
	return r < 0 ? r : in_write(ix, reset_write, &a);
}

int cairn_index__add_packs(cairn_index *ix, const struct cairn_index_pack *p, size_t n)
{
	return cairn_index__replace_packs(ix, NULL, 0, p, n);
}

/* Blobs per write txn of cairn_index__add_pack. LMDB keeps a copy of every page
 * a txn changes until it commits, and random IDs change a leaf each: a pack of
 * a hundred thousand small blobs in one txn held a copy of nearly every leaf of
 * a large index. In batches the copies stay below 4 KiB x 8192 = 32 MiB,
 * whatever the index size. */
#define BLOBS_PER_TXN 8192

/* One batch of a pack's entries, sorted by ID: [from, to) of all. */
struct batch_arg {
	const struct cairn_index_pack *p;
	const struct put *all;
	size_t from, to;
	struct aux_arg *aux; /* made in the first batch's txn, or NULL */
};

/* The pack's record stays partial until its last batch. */
static int batch_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	const struct batch_arg *a = arg;
	MDB_cursor *cur;
	uint32_t no;
	int r = put_pack(ix, txn, &a->p->id, a->p->size, a->p->n, a->to < a->p->n, &no), rc;
	if (r >= 0 && a->from == 0 && a->aux)
		r = aux_write(ix, txn, a->aux);
	if (r < 0)
		return r;
	if ((rc = mdb_cursor_open(txn, ix->blobs, &cur)))
		return lmdb_err(rc, "index: cursor");
	for (size_t i = a->from; r >= 0 && i < a->to; i++)
		r = put_blob(ix, txn, cur, no, &a->p->id, a->all[i].e);
	mdb_cursor_close(cur);
	return r;
}

static int aux_prepare(cairn_index *ix, const struct cairn_index_aux_op *op, struct aux_arg *a);

static int add_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                    const struct cairn_pack_entry *e, size_t n, struct aux_arg *aux)
{
	struct cairn_index_pack p = { *pack, size, e, n };
	int r = check_counts(&p, 1);
	if (r < 0 || n <= BLOBS_PER_TXN) {
		struct replace_arg a = { NULL, 0, &p, 1, aux };
		return r < 0 ? r : in_write(ix, replace_write, &a);
	}
	_cleanup_free_ struct put *all = calloc(n, sizeof(*all));
	if (!all)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		all[i] = (struct put){ &e[i], pack, 0 };
	qsort(all, n, sizeof(*all), by_id);
	for (size_t i = 0; r >= 0 && i < n; i += BLOBS_PER_TXN) {
		struct batch_arg a = { &p, all, i, n - i > BLOBS_PER_TXN ? i + BLOBS_PER_TXN : n,
			               aux };
		r = in_write(ix, batch_write, &a);
	}
	return r;
}

int cairn_index__add_pack(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n)
{
	return add_pack(ix, pack, size, e, n, NULL);
}

int cairn_index__add_pack_with(cairn_index *ix, const struct cairn_id *pack, uint64_t size,
                               const struct cairn_pack_entry *e, size_t n,
                               const struct cairn_index_aux_op *op)
{
	struct aux_arg a;
	int r = aux_prepare(ix, op, &a);
	return r < 0 ? r : add_pack(ix, pack, size, e, n, &a);
}

int cairn_index__del_pack(cairn_index *ix, const struct cairn_id *pack)
{
	return cairn_index__replace_packs(ix, pack, 1, NULL, 0);
}

/* ---- scans -------------------------------------------------------------- */

/* Walk a database in key order with a callback per record; the values are only
 * valid during the callback. A negative return stops the walk and is returned. */
static int scan(cairn_index *ix, MDB_dbi dbi,
                int (*fn)(MDB_txn *txn, MDB_val *k, MDB_val *v, void *arg), void *arg)
{
	MDB_txn *txn;
	MDB_cursor *cur;
	MDB_val k, v;
	int r = begin_read(ix, &txn), rc;
	if (r < 0)
		return r;
	if ((rc = mdb_cursor_open(txn, dbi, &cur))) {
		end_read(ix, txn);
		return lmdb_err(rc, "index: cursor");
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && r >= 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT))
		r = fn(txn, &k, &v, arg);
	mdb_cursor_close(cur);
	end_read(ix, txn);
	if (r < 0)
		return r;
	if (rc && rc != MDB_NOTFOUND)
		return lmdb_err(rc, "index: scan");
	return 0;
}

/* Pack numbers to IDs for a scan of `blobs`: a direct-mapped cache in front of
 * `packnums`, as a scan meets the same packs over and over. */
struct blob_cb {
	cairn_index *ix;
	int (*cb)(const struct cairn_id *, const struct cairn_loc *, void *);
	void *payload;
	uint32_t no[PACKMAP_SLOTS];
	struct cairn_id id[PACKMAP_SLOTS];
};

static int each_blob(MDB_txn *txn, MDB_val *k, MDB_val *v, void *arg)
{
	struct blob_cb *b = arg;
	struct cairn_index_rec rec;
	if (k->mv_size != sizeof(BLOBS_KEY) || memcmp(k->mv_data, BLOBS_KEY, sizeof(BLOBS_KEY)))
		return cairn_err_set(-EBADMSG, "index has a foreign key in 'blobs'");
	int r = cairn_index__decode_rec(&rec, v->mv_data, v->mv_size);
	if (r < 0)
		return r;
	size_t s = rec.packno % PACKMAP_SLOTS;
	if (b->no[s] != rec.packno) {
		if ((r = pack_id(b->ix, txn, rec.packno, &b->id[s])) < 0)
			return r;
		b->no[s] = rec.packno;
	}
	struct cairn_loc loc = { b->id[s], rec.offset, rec.stored_len, rec.raw_len, rec.type };
	return b->cb(&rec.id, &loc, b->payload);
}

int cairn_index__foreach_blob(cairn_index *ix,
                              int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                        void *payload),
                              void *payload)
{
	struct blob_cb *b = calloc(1, sizeof(*b)); /* 9 KiB: not on a FUSE thread's stack */
	if (!b)
		return cairn_err_set(-ENOMEM, "out of memory");
	*b = (struct blob_cb){ .ix = ix, .cb = cb, .payload = payload };
	int r = scan(ix, ix->blobs, each_blob, b);
	free(b);
	return r;
}

struct pack_cb {
	int (*cb)(const struct cairn_id *, uint64_t, uint32_t, void *);
	void *payload;
};

static int each_pack(MDB_txn *txn, MDB_val *k, MDB_val *v, void *arg)
{
	struct pack_cb *p = arg;
	struct cairn_id id;
	(void)txn;
	if (k->mv_size != CAIRN_ID_SIZE || v->mv_size != CAIRN_PACKREC_SIZE)
		return cairn_err_set(-EBADMSG, "index pack record is malformed");
	memcpy(id.b, k->mv_data, CAIRN_ID_SIZE);
	uint32_t count = cairn_get_le32((uint8_t *)v->mv_data + 8);
	if (count & PARTIAL_BIT)
		return 0; /* not indexed yet */
	return p->cb(&id, cairn_get_le64(v->mv_data), count, p->payload);
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

struct snap_arg {
	const struct cairn_id *id;
	int64_t time_ns;
	bool del;
};

/* `snapshots` value (FORMAT.md §7): i64 time_ns. */
static int snap_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct snap_arg *a = arg;
	uint8_t t[8];
	MDB_val k = val(a->id->b, CAIRN_ID_SIZE), v = val(t, sizeof(t));
	int rc;

	if (a->del) {
		rc = mdb_del(txn, ix->snaps, &k, NULL);
		return rc && rc != MDB_NOTFOUND ? lmdb_err(rc, "index: cannot remove snapshot") : 0;
	}
	cairn_le64(t, (uint64_t)a->time_ns);
	rc = mdb_put(txn, ix->snaps, &k, &v, 0);
	return rc ? lmdb_err(rc, "index: cannot add snapshot") : 0;
}

int cairn_index__add_snapshot(cairn_index *ix, const struct cairn_id *id, int64_t time_ns)
{
	struct snap_arg a = { id, time_ns, false };
	return in_write(ix, snap_write, &a);
}

int cairn_index__del_snapshot(cairn_index *ix, const struct cairn_id *id)
{
	struct snap_arg a = { id, 0, true };
	return in_write(ix, snap_write, &a);
}

struct snap_cb {
	int (*cb)(const struct cairn_id *, int64_t, void *);
	void *payload;
};

static int each_snap(MDB_txn *txn, MDB_val *k, MDB_val *v, void *arg)
{
	struct snap_cb *s = arg;
	struct cairn_id id;
	(void)txn;
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

static int clear_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	int rc;
	(void)arg;
	/* del = 0 empties the databases and keeps their handles valid. */
	if ((rc = mdb_drop(txn, ix->blobs, 0)) || (rc = mdb_drop(txn, ix->packs, 0)) ||
	    (rc = mdb_drop(txn, ix->packnums, 0)) || (rc = mdb_drop(txn, ix->snaps, 0)))
		return lmdb_err(rc, "index: cannot clear");
	return 0;
}

int cairn_index__clear(cairn_index *ix)
{
	return in_write(ix, clear_write, NULL);
}

/* ---- auxiliary tables --------------------------------------------------- */

struct dbi_arg {
	const char *name;
	MDB_dbi *dbi;
};

/* Open a named database in a txn of its own that commits: a commit, even of a
 * read txn, keeps the handle for later txns; an abort would close it. */
static int create_dbi(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct dbi_arg *a = arg;
	(void)ix;
	int rc = mdb_dbi_open(txn, a->name, MDB_CREATE, a->dbi);
	return rc ? lmdb_err(rc, "index: cannot open table") : 0;
}

static int find_dbi(cairn_index *ix, const char *name, MDB_dbi *dbi)
{
	MDB_txn *txn;
	int r = begin_read(ix, &txn);
	if (r < 0)
		return r;
	int rc = mdb_dbi_open(txn, name, 0, dbi);
	if (rc) {
		end_read(ix, txn);
		return rc == MDB_NOTFOUND ? -ENOENT : lmdb_err(rc, "index: cannot open table");
	}
	return commit_read(ix, txn);
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
	int r = find_dbi(ix, name, dbi);
	if (r == -ENOENT && create && !ix->read_only) {
		struct dbi_arg a = { name, dbi };
		r = in_write(ix, create_dbi, &a);
	}
	pthread_mutex_unlock(&ix->dbi_lock);
	if (r == -ENOENT && create)
		return cairn_err_set(-EROFS, "index opened read-only");
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "index has no table '%s'", table);
	return r;
}

/* LMDB rejects empty keys and keys above its compiled-in maximum. */
static int check_key(cairn_index *ix, size_t klen)
{
	int max = mdb_env_get_maxkeysize(ix->env);
	if (klen == 0 || klen > (size_t)max)
		return cairn_err_set(-EINVAL, "table key of %zu bytes (1..%d allowed)", klen, max);
	return 0;
}

static int aux_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct aux_arg *a = arg;
	(void)ix;
	for (size_t i = 0; i < a->n; i++) {
		MDB_val k = val(a->k + i * a->stride, a->klen);
		MDB_val v = a->v; /* mdb_put may change it */
		int rc = a->del ? mdb_del(txn, a->dbi, &k, NULL) : mdb_put(txn, a->dbi, &k, &v, 0);
		if (rc && (!a->del || rc != MDB_NOTFOUND))
			return lmdb_err(rc, a->del ? "index: cannot delete"
			                           : "index: cannot write table");
	}
	return 0;
}

/* The op's table opened (created for a put); a delete from a table that does
 * not exist is nothing to do (n 0). */
static int aux_prepare(cairn_index *ix, const struct cairn_index_aux_op *op, struct aux_arg *a)
{
	*a = (struct aux_arg){ .k = op->k,
		               .klen = op->klen,
		               .stride = op->stride ? op->stride : op->klen,
		               .n = op->n,
		               .v = val(op->v, op->vlen),
		               .del = !op->v };
	int r = check_key(ix, op->klen);
	if (r < 0 || op->n == 0)
		return r;
	if ((r = aux_dbi(ix, op->table, !a->del, &a->dbi)) == -ENOENT && a->del) {
		a->n = 0;
		return 0;
	}
	return r;
}

struct aux_ops {
	struct aux_arg *v;
	size_t n;
};

static int aux_ops_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	struct aux_ops *o = arg;
	int r = 0;
	for (size_t i = 0; r >= 0 && i < o->n; i++)
		r = aux_write(ix, txn, &o->v[i]);
	return r;
}

int cairn_index__aux_apply(cairn_index *ix, const struct cairn_index_aux_op *ops, size_t n)
{
	struct aux_arg v[CAIRN_INDEX_AUX_OPS_MAX];
	struct aux_ops o = { v, n };
	int r = n <= CAIRN_INDEX_AUX_OPS_MAX
	                ? 0
	                : cairn_err_set(-EINVAL, "%zu table changes at once", n);
	size_t keys = 0;
	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = aux_prepare(ix, &ops[i], &v[i])) >= 0)
			keys += v[i].n;
	/* Nothing to change (deletes from tables that do not exist): no txn. */
	return r < 0 || keys == 0 ? r : in_write(ix, aux_ops_write, &o);
}

int cairn_index__aux_put(cairn_index *ix, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen)
{
	struct cairn_index_aux_op op = { table, k, klen, 0, 1, v ? v : "", vlen };
	return cairn_index__aux_apply(ix, &op, 1);
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
		r = lmdb_err(rc, "index: cannot read table");
	} else {
		out->len = 0;
		r = cairn_buf_put(out, v.mv_data, v.mv_size); /* copy before the txn ends */
	}
	end_read(ix, txn);
	return r;
}

int cairn_index__aux_del_many(cairn_index *ix, const char *table, const void *k, size_t klen,
                              size_t stride, size_t n)
{
	struct cairn_index_aux_op op = { table, k, klen, stride, n, NULL, 0 };
	return cairn_index__aux_apply(ix, &op, 1);
}

int cairn_index__aux_del(cairn_index *ix, const char *table, const void *k, size_t klen)
{
	return cairn_index__aux_del_many(ix, table, k, klen, klen, 1);
}

struct aux_cb {
	int (*cb)(const void *, size_t, const void *, size_t, void *);
	void *payload;
};

static int each_aux(MDB_txn *txn, MDB_val *k, MDB_val *v, void *arg)
{
	struct aux_cb *a = arg;
	(void)txn;
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

static int drop_write(cairn_index *ix, MDB_txn *txn, void *arg)
{
	(void)ix;
	int rc = mdb_drop(txn, *(MDB_dbi *)arg, 0);
	return rc ? lmdb_err(rc, "index: cannot empty table") : 0;
}

int cairn_index__aux_drop(cairn_index *ix, const char *table)
{
	MDB_dbi dbi;
	int r = aux_dbi(ix, table, false, &dbi);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : in_write(ix, drop_write, &dbi);
}
