/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repository: init/open, keys, the threaded blob write path, reads and index rebuild. */
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <lmdb.h>

#include "cairn/store.h"
#include "check.h"
#include "cleanup.h"
#include "crypt.h"
#include "keyfile.h"
#include "pack.h"
#include "repo.h"

#define PW "secret"

static char repo_path[512];

static cairn_repo *make_repo(uint32_t pack_size)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = -1,
		                     .pack_size = pack_size,
		                     .kdf_log2n = 10,
		                     .chunk = { 64 * 1024, 128 * 1024, 1024 * 1024 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	cairn_repo *repo = NULL;

	snprintf(repo_path, sizeof(repo_path), "%s/repo", check_tmpdir());
	CHECK_OK(cairn_repo_init(repo_path, PW, strlen(PW), &o));
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	return repo;
}

/* Recovery removes a temp pack only when no other writer lives, judged by a
 * look at locks/ after it listed tmp/: a writer whose lock came after the
 * caller's (so the caller's own look missed it) keeps its temp pack. */
static void test_repo__recover_keeps_live_temps(void)
{
	cairn_repo *repo = make_repo(0);
	cairn_storage *st = cairn_repo_storage(repo);
	cairn_lock *own = NULL, *other = NULL;
	struct cairn_recover_stats rs;
	char tmp[PATH_MAX];

	CHECK_OK(cairn_lock_acquire(&own, st, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_acquire(&other, st, CAIRN_LOCK_SHARED, "backup", 0));
	snprintf(tmp, sizeof(tmp), "%s/pack.tmp.other", cairn_storage_tmp_dir(st));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL, 0600);
	CHECK(fd >= 0);
	close(fd);
	CHECK_OK(cairn_repo_recover(repo, own, &rs));
	CHECK_EQ(rs.temps_removed, 0);
	CHECK_EQ(access(tmp, F_OK), 0);
	cairn_lock_release(other);
	CHECK_OK(cairn_repo_recover(repo, own, &rs));
	CHECK_EQ(rs.temps_removed, 1);
	CHECK(access(tmp, F_OK) < 0);
	cairn_lock_release(own);
	cairn_repo_close(repo);
}

static void test_repo__init_open(void)
{
	cairn_repo *repo = make_repo(0);
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = -1,
		                     .kdf_log2n = 10 };
	cairn_repo *again = NULL;
	struct stat st;

	CHECK(strstr(cairn_repo_config_text(repo), "cairn-repository 1\n") != NULL);
	CHECK_EQ(cairn_repo_compression(repo), 3);
	cairn_repo_close(repo);
	CHECK_ERR(cairn_repo_init(repo_path, PW, strlen(PW), &o), -EEXIST);
	CHECK_ERR(cairn_repo_open(&again, repo_path, "nope", 4, &ro), -EKEYREJECTED);
	CHECK(again == NULL);
	CHECK_ERR(cairn_repo_probe(check_tmpdir(), NULL), -ENOENT);
	CHECK_OK(cairn_repo_probe(repo_path, NULL));
	CHECK_OK(stat(repo_path, &st));
	CHECK_EQ(st.st_mode & 0777, 0700);
}

static void test_repo__bad_init_options(void)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = 25,
		                     .kdf_log2n = 10 };
	char p[600];
	snprintf(p, sizeof(p), "%s/r", check_tmpdir());
	CHECK_ERR(cairn_repo_init(p, PW, 6, &o), -EINVAL);
	o.compression = -1;
	o.chunk = (struct cairn_chunk_params){ 1000, 3000, 2000 };
	CHECK_ERR(cairn_repo_init(p, PW, 6, &o), -EINVAL);
	CHECK(access(p, F_OK) < 0); /* nothing left behind */
}

static void test_repo__keys(void)
{
	cairn_repo *repo = make_repo(0);
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .no_index = true };
	struct cairn_key_info *keys = NULL;
	char name[17], first[17];
	size_t n = 0;

	CHECK_OK(cairn_key_list(repo, &keys, &n));
	CHECK_EQ(n, 1);
	CHECK(keys[0].current);
	snprintf(first, sizeof(first), "%s", keys[0].name);
	free(keys);
	CHECK_ERR(cairn_key_remove(repo, first), -EBUSY);
	CHECK_OK(cairn_key_add(repo, "other", 5, "label", 0, name));
	cairn_repo_close(repo);

	CHECK_OK(cairn_repo_open(&repo, repo_path, "other", 5, &ro));
	CHECK_OK(cairn_key_remove(repo, first));
	CHECK_ERR(cairn_key_remove(repo, name), -EBUSY);
	CHECK_OK(cairn_key_passwd(repo, "third", 5, NULL, 0));
	cairn_repo_close(repo);
	repo = NULL;
	CHECK_ERR(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro), -EKEYREJECTED);
	CHECK_ERR(cairn_repo_open(&repo, repo_path, "other", 5, &ro), -EKEYREJECTED);
	CHECK_OK(cairn_repo_open(&repo, repo_path, "third", 5, &ro));
	CHECK_OK(cairn_key_list(repo, &keys, &n));
	CHECK_EQ(n, 1);
	free(keys);
	cairn_repo_close(repo);
}

#define NBLOBS 10000
/* Eight writers starting a few blobs apart keep meeting on the same new blob:
 * the claim race that stored a blob twice failed 14 of 30 runs so (four writers
 * spread over the range: 1 of 30). */
#define NTHREADS 8

struct writer {
	cairn_repo *repo;
	int start;
	int stored;
};

static size_t blob_len(int i)
{
	return 100 + (size_t)(i * 7919) % 3000;
}

static void make_blob(int i, uint8_t *buf)
{
	check_random(buf, blob_len(i), (uint64_t)i + 1);
	if (i % 3 == 0) /* some compressible ones */
		memset(buf, 'a', blob_len(i) / 2);
}

static void *write_blobs(void *arg)
{
	struct writer *w = arg;
	uint8_t buf[4096];
	/* Every thread writes every blob: each must be stored exactly once overall. */
	for (int k = 0; k < NBLOBS; k++) {
		int i = (k + w->start) % NBLOBS;
		make_blob(i, buf);
		int r = cairn_repo_put(w->repo, CAIRN_BLOB_DATA, buf, blob_len(i), NULL, NULL);
		CHECK_OK(r);
		w->stored += r;
	}
	return NULL;
}

struct collect {
	struct cairn_id *ids;
	struct cairn_loc *locs;
	size_t n;
};

static int collect_blob(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct collect *c = payload;
	c->ids[c->n] = *id;
	c->locs[c->n++] = *loc;
	return 0;
}

/* Field by field: struct padding is not initialised. */
static bool locs_equal(const struct collect *a, const struct collect *b)
{
	for (size_t i = 0; i < a->n; i++) {
		const struct cairn_loc *x = &a->locs[i], *y = &b->locs[i];
		if (memcmp(&x->pack, &y->pack, sizeof(x->pack)) != 0 || x->offset != y->offset ||
		    x->stored_len != y->stored_len || x->raw_len != y->raw_len ||
		    x->type != y->type)
			return false;
	}
	return true;
}

static void collect_all(cairn_repo *repo, struct collect *c)
{
	c->ids = calloc(NBLOBS + 1, sizeof(*c->ids));
	c->locs = calloc(NBLOBS + 1, sizeof(*c->locs));
	c->n = 0;
	CHECK(c->ids && c->locs);
	CHECK_OK(cairn_repo_foreach_blob(repo, collect_blob, c));
}

/* Every record of the index's own tables, read straight from LMDB (the repository
 * must be closed: one environment per process). Each table becomes a byte string
 * of (u32 key length, key, u32 value length, value) in key order. Pack numbers
 * are local to one index (FORMAT.md §7): a blob record shows its pack's ID in
 * their place, and a pack record leaves its number out. */
static const char *const index_tables[] = { "meta", "blobs", "packs", "snapshots" };
#define NTABLES (sizeof(index_tables) / sizeof(index_tables[0]))

static void put_value(struct cairn_buf *out, MDB_txn *txn, MDB_dbi nums, size_t t, MDB_val *v)
{
	if (t == 1 && v->mv_size == 48) {
		uint32_t no = cairn_get_le32((uint8_t *)v->mv_data + 32);
		MDB_val k = { sizeof(no), &no }, id;
		CHECK(mdb_get(txn, nums, &k, &id) == 0 && id.mv_size == 32);
		CHECK_OK(cairn_buf_put_u32(out, 32 + 32 + 12));
		CHECK_OK(cairn_buf_put(out, v->mv_data, 32));
		CHECK_OK(cairn_buf_put(out, id.mv_data, 32));
		CHECK_OK(cairn_buf_put(out, (uint8_t *)v->mv_data + 36, 12));
		return;
	}
	size_t len = t == 2 && v->mv_size == 16 ? 12 : v->mv_size;
	CHECK_OK(cairn_buf_put_u32(out, (uint32_t)len));
	CHECK_OK(cairn_buf_put(out, v->mv_data, len));
}

static void dump_index(struct cairn_buf out[NTABLES], size_t counts[NTABLES])
{
	char dir[600];
	MDB_env *env;
	MDB_txn *txn;
	snprintf(dir, sizeof(dir), "%s/index", repo_path);
	CHECK(mdb_env_create(&env) == 0);
	CHECK(mdb_env_set_maxdbs(env, 64) == 0);
	CHECK(mdb_env_open(env, dir, MDB_RDONLY, 0600) == 0);
	CHECK(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn) == 0);
	MDB_dbi nums;
	CHECK(mdb_dbi_open(txn, "packnums", MDB_INTEGERKEY, &nums) == 0);
	for (size_t t = 0; t < NTABLES; t++) {
		MDB_dbi dbi;
		MDB_cursor *c;
		MDB_val k, v;
		cairn_buf_init(&out[t]);
		counts[t] = 0;
		CHECK(mdb_dbi_open(txn, index_tables[t], 0, &dbi) == 0);
		CHECK(mdb_cursor_open(txn, dbi, &c) == 0);
		for (int rc = mdb_cursor_get(c, &k, &v, MDB_FIRST); rc == 0;
		     rc = mdb_cursor_get(c, &k, &v, MDB_NEXT)) {
			CHECK_OK(cairn_buf_put_u32(&out[t], (uint32_t)k.mv_size));
			CHECK_OK(cairn_buf_put(&out[t], k.mv_data, k.mv_size));
			put_value(&out[t], txn, nums, t, &v);
			counts[t]++;
		}
		mdb_cursor_close(c);
	}
	mdb_txn_abort(txn);
	mdb_env_close(env);
}

/* Table by table, byte for byte. */
static void check_same_index(struct cairn_buf a[NTABLES], const size_t na[NTABLES])
{
	struct cairn_buf b[NTABLES];
	size_t nb[NTABLES];
	dump_index(b, nb);
	for (size_t t = 0; t < NTABLES; t++) {
		if (na[t] != nb[t] || a[t].len != b[t].len ||
		    memcmp(a[t].data, b[t].data, a[t].len) != 0)
			fprintf(stderr,
			        "index table '%s' differs after rebuild: %zu -> %zu records\n",
			        index_tables[t], na[t], nb[t]);
		CHECK_EQ(na[t], nb[t]);
		CHECK_EQ(a[t].len, b[t].len);
		CHECK(memcmp(a[t].data, b[t].data, a[t].len) == 0);
		cairn_buf_release(&b[t]);
	}
}

static void save_snapshot(cairn_repo *repo, int64_t t, const struct cairn_id *root)
{
	struct cairn_snapshot s = { .time_ns = t,
		                    .hostname = (char *)"h",
		                    .username = (char *)"u",
		                    .root = *root,
		                    .program_version = (char *)"test" };
	CHECK_OK(cairn_repo_snapshot_save(repo, &s));
}

static void test_repo__threaded_put_get_rebuild(void)
{
	cairn_repo *repo = make_repo(1024 * 1024);
	pthread_t t[NTHREADS];
	struct writer w[NTHREADS];
	uint8_t buf[4096];
	int stored = 0;

	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct writer){ repo, i * 3, 0 };
		CHECK(pthread_create(&t[i], NULL, write_blobs, &w[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		stored += w[i].stored;
	}
	CHECK_EQ(stored, NBLOBS);
	CHECK_OK(cairn_repo_flush(repo));

	struct cairn_buf out = CAIRN_BUF_INIT;
	for (int i = 0; i < NBLOBS; i += 7) {
		struct cairn_id id;
		make_blob(i, buf);
		cairn_repo_blob_id(repo, buf, blob_len(i), &id);
		CHECK_EQ(cairn_repo_has(repo, &id), 1);
		CHECK_OK(cairn_repo_get_typed(repo, CAIRN_BLOB_DATA, &id, &out));
		CHECK_EQ(out.len, blob_len(i));
		CHECK(memcmp(out.data, buf, out.len) == 0);
		CHECK_ERR(cairn_repo_get_typed(repo, CAIRN_BLOB_TREE, &id, &out), -EBADMSG);
	}
	/* Storing again is a no-op. */
	make_blob(5, buf);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, blob_len(5), NULL, NULL), 0);

	/* Snapshots too: the index lists them (FORMAT.md §7). Their roots need not be
	 * trees for the index. */
	struct cairn_id some;
	make_blob(1, buf);
	cairn_repo_blob_id(repo, buf, blob_len(1), &some);
	for (int i = 0; i < 3; i++)
		save_snapshot(repo, 1000000000LL * (i + 1), &some);
	/* A state table, which a rebuild leaves alone. */
	CHECK_OK(cairn_repo_state_put(repo, "check", "last", 4, "ok=1", 4));

	struct collect before, after;
	collect_all(repo, &before);
	CHECK_EQ(before.n, NBLOBS);
	cairn_repo_close(repo);
	struct cairn_buf tables[NTABLES];
	size_t counts[NTABLES];
	dump_index(tables, counts);
	CHECK_EQ(counts[1], NBLOBS);
	CHECK(counts[2] > 1);
	CHECK_EQ(counts[3], 3);

	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	CHECK_EQ(cairn_repo_rebuild_index(repo), counts[2]);
	collect_all(repo, &after);
	CHECK_EQ(after.n, before.n);
	CHECK(memcmp(before.ids, after.ids, before.n * sizeof(*before.ids)) == 0);
	CHECK(locs_equal(&before, &after));
	free(after.ids);
	free(after.locs);
	struct cairn_buf st = CAIRN_BUF_INIT;
	CHECK_OK(cairn_repo_state_get(repo, "check", "last", 4, &st));
	CHECK(st.len == 4 && memcmp(st.data, "ok=1", 4) == 0);
	cairn_buf_release(&st);
	cairn_repo_close(repo);
	/* Every table of the rebuilt index equals the original, record for record. */
	check_same_index(tables, counts);

	/* A deleted index is rebuilt on the next open, equal to the original. */
	char ix[600];
	snprintf(ix, sizeof(ix), "%s/index", repo_path);
	CHECK_OK(cairn_rm_rf(ix));
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	collect_all(repo, &after);
	CHECK_EQ(after.n, before.n);
	CHECK(locs_equal(&before, &after));
	free(before.ids);
	free(before.locs);
	free(after.ids);
	free(after.locs);
	cairn_buf_release(&out);
	cairn_repo_close(repo);
	check_same_index(tables, counts);
	for (size_t k = 0; k < NTABLES; k++)
		cairn_buf_release(&tables[k]);
}

static int first_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	(void)size;
	*(struct cairn_id *)payload = *pack;
	return -1; /* stop */
}

static void test_repo__corrupt_pack(void)
{
	cairn_repo *repo = make_repo(0);
	uint8_t buf[50000];
	struct cairn_id id, pack;
	struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_loc loc;
	char path[700], rel[80], hex[CAIRN_ID_HEX_SIZE];

	check_random(buf, sizeof(buf), 42);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, sizeof(buf), NULL, &id), 1);
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_ERR(cairn_repo_foreach_pack(repo, first_pack, &pack), -1);
	CHECK_OK(cairn_repo_lookup(repo, &id, &loc));
	CHECK(memcmp(&loc.pack, &pack, sizeof(pack)) == 0);
	cairn_id_hex(hex, &pack);
	snprintf(rel, sizeof(rel), "packs/%.2s/%s", hex, hex);
	snprintf(path, sizeof(path), "%s/%s", repo_path, rel);

	/* Flip one byte inside the blob: the read fails with a message naming the pack. */
	FILE *f = fopen(path, "r+b");
	CHECK(f != NULL);
	fseek(f, loc.offset + 100, SEEK_SET);
	int c = fgetc(f);
	fseek(f, loc.offset + 100, SEEK_SET);
	fputc(c ^ 0x40, f);
	fclose(f);
	CHECK_ERR(cairn_repo_get(repo, &id, &out), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), hex) != NULL || strstr(cairn_err_msg(), "pack") != NULL);

	/* A missing pack is reported, not a crash. Removed by another process: an
	 * open repository keeps the packs it read open (storage-local.c). */
	CHECK_OK(unlink(path));
	cairn_repo_close(repo);
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	int r = cairn_repo_get(repo, &id, &out);
	CHECK(r == -ENOENT || r == -EIO);
	cairn_buf_release(&out);
	cairn_repo_close(repo);
}

static void test_repo__limits(void)
{
	cairn_repo *repo = make_repo(0);
	_cleanup_free_ uint8_t *big = calloc(1, 1024 * 1024 + 1);
	CHECK(big != NULL);
	CHECK_ERR(cairn_repo_put(repo, CAIRN_BLOB_DATA, big, 1024 * 1024 + 1, NULL, NULL), -EINVAL);
	CHECK_ERR(cairn_repo_put(repo, CAIRN_BLOB_SNAPSHOT, big, 10, NULL, NULL), -EINVAL);
	CHECK_ERR(cairn_repo_set_compression(repo, 20), -EINVAL);
	cairn_repo_close(repo);

	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	CHECK_ERR(cairn_repo_put(repo, CAIRN_BLOB_DATA, big, 10, NULL, NULL), -EROFS);
	cairn_repo_close(repo);
}

/* ---- a failed pack write is sticky (issue 14 point 2) -------------------- */

struct failing_writer {
	cairn_repo *repo;
	int start;
	struct cairn_id *stored; /* IDs whose put returned 1 */
	size_t nstored;
	int err; /* the first failure */
};

static void *write_until_failure(void *arg)
{
	struct failing_writer *w = arg;
	uint8_t buf[4096];
	for (int k = 0; k < NBLOBS; k++) {
		int i = (k + w->start) % NBLOBS;
		struct cairn_id id;
		make_blob(i, buf);
		int r = cairn_repo_put(w->repo, CAIRN_BLOB_DATA, buf, blob_len(i), NULL, &id);
		if (r < 0 && w->err == 0)
			w->err = r;
		else if (w->err < 0) /* once failed, every put fails */
			CHECK_EQ(r, -EIO);
		else if (r == 1)
			w->stored[w->nstored++] = id;
		if (w->err < 0 && k > NBLOBS / 2)
			break;
	}
	return NULL;
}

struct verify_all {
	cairn_repo *repo;
	size_t packs, blobs;
};

static int verify_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct verify_all *v = payload;
	(void)size;
	CHECK_OK(cairn_repo_pack_verify(v->repo, pack, NULL, NULL));
	v->packs++;
	return 0;
}

static int read_blob(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct verify_all *v = payload;
	struct cairn_buf out = CAIRN_BUF_INIT;
	CHECK_OK(cairn_repo_get(v->repo, id, &out));
	CHECK_EQ(out.len, loc->raw_len);
	cairn_buf_release(&out);
	v->blobs++;
	return 0;
}

/* What `check --read-data` reads: every pack verifies, every indexed blob reads. */
static void check_read_data(void)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	struct verify_all v = { 0 };
	char tmp[600];
	CHECK_OK(cairn_repo_open(&v.repo, repo_path, PW, strlen(PW), &ro));
	CHECK_OK(cairn_repo_foreach_pack(v.repo, verify_pack, &v));
	CHECK_OK(cairn_repo_foreach_blob(v.repo, read_blob, &v));
	cairn_repo_close(v.repo);
	/* The dropped pack's temp file went with it. */
	snprintf(tmp, sizeof(tmp), "%s/tmp", repo_path);
	_cleanup_closedir_ DIR *d = opendir(tmp);
	CHECK(d != NULL);
	for (struct dirent *de; (de = readdir(d));)
		CHECK(de->d_name[0] == '.');
}

static void check_all_writes_fail(cairn_repo *repo)
{
	uint8_t buf[100];
	struct cairn_snapshot s = { .hostname = (char *)"h",
		                    .username = (char *)"u",
		                    .program_version = (char *)"test" };
	check_random(buf, sizeof(buf), 999);
	CHECK_ERR(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, sizeof(buf), NULL, NULL), -EIO);
	CHECK_ERR(cairn_repo_flush(repo), -EIO);
	CHECK(strstr(cairn_err_msg(), "pack") != NULL);
	CHECK_ERR(cairn_repo_snapshot_save(repo, &s), -EIO);
	struct cairn_id *ids = NULL;
	size_t n = 1;
	CHECK_OK(cairn_repo_snapshot_ids(repo, &ids, &n));
	CHECK_EQ(n, 0);
	free(ids);
}

static void test_repo__write_failure_is_sticky(void)
{
	cairn_repo *repo = make_repo(1024 * 1024);
	pthread_t t[NTHREADS];
	struct failing_writer w[NTHREADS];
	int failed = 0;

	/* A few packs get written, then one write fails in the middle of a pack. */
	cairn_pack__test_fail_after(3500 * 1024);
	for (int i = 0; i < NTHREADS; i++) {
		w[i] = (struct failing_writer){ .repo = repo, .start = i * (NBLOBS / NTHREADS) };
		w[i].stored = calloc(NBLOBS, sizeof(*w[i].stored));
		CHECK(w[i].stored != NULL);
		CHECK(pthread_create(&t[i], NULL, write_until_failure, &w[i]) == 0);
	}
	for (int i = 0; i < NTHREADS; i++) {
		pthread_join(t[i], NULL);
		failed += w[i].err < 0;
	}
	cairn_pack__test_fail_after(-1);
	CHECK_EQ(failed, NTHREADS);
	check_all_writes_fail(repo);
	cairn_repo_close(repo);
	check_read_data();

	/* Blobs reported as stored were lost with the dropped pack: the reason the
	 * flush must fail. */
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	size_t missing = 0;
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	for (int i = 0; i < NTHREADS; i++) {
		for (size_t k = 0; k < w[i].nstored; k++)
			missing += cairn_repo_has(repo, &w[i].stored[k]) == 0;
		free(w[i].stored);
	}
	CHECK(missing > 0);
	cairn_repo_close(repo);
}

/* The failure may come when the pack is finished: at a flush. */
static void test_repo__finish_failure_is_sticky(void)
{
	cairn_repo *repo = make_repo(0);
	uint8_t buf[50000];
	check_random(buf, sizeof(buf), 7);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, 20000, NULL, NULL), 1);
	CHECK_OK(cairn_repo_flush(repo));
	/* The blob is only buffered, so its put succeeds; writing the pack fails. */
	cairn_pack__test_fail_after(29000);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf + 20000, 29000, NULL, NULL), 1);
	CHECK_ERR(cairn_repo_flush(repo), -EIO);
	cairn_pack__test_fail_after(-1);
	check_all_writes_fail(repo);
	cairn_repo_close(repo);
	check_read_data();
}

/* ---- key order and costly key files (issue 14 point 7) ------------------ */

struct warnings {
	int n;
	char last[1024];
};

static void collect_warning(const char *msg, void *payload)
{
	struct warnings *w = payload;
	w->n++;
	snprintf(w->last, sizeof(w->last), "%s", msg);
}

/* Open with pw; returns how many scrypt derivations the open ran. */
static uint64_t open_counting(const char *pw, struct warnings *w, bool read_only)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .read_only = read_only,
		                      .warn = collect_warning,
		                      .warn_payload = w };
	cairn_repo *repo = NULL;
	uint64_t before = cairn_crypt__scrypt_runs();
	CHECK_OK(cairn_repo_open(&repo, repo_path, pw, strlen(pw), &ro));
	cairn_repo_close(repo);
	return cairn_crypt__scrypt_runs() - before;
}

static void key_path(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/keys/%s", repo_path, name);
}

static void forget_last_key(void)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/index/last-key", repo_path);
	unlink(p);
}

/* A key file for pw asking for scrypt work far above what init writes (16
 * times log2(N) 20 with r 1: seconds of CPU), under a name sorting first. */
static void plant_costly_key(const char *name)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	uint8_t mk[CAIRN_KEY_SIZE] = { 0 };
	char p[600];
	CHECK_OK(cairn_keyfile__create(&kf, mk, PW, strlen(PW), 10, "planted"));
	kf.data[10] = 20;
	cairn_le32(kf.data + 12, 1);
	cairn_le32(kf.data + 16, 16);
	key_path(p, sizeof(p), name);
	CHECK_OK(cairn_file_write_atomic(p, NULL, kf.data, kf.len));
}

/* Threads that put at the same time fill packs of their own; the flush makes
 * them one pack per type (issue 17: a small backup writes one data pack and one
 * tree pack), and every blob reads back from it. */
#define SMALL_THREADS 8
#define SMALL_PER_THREAD 1000

struct small_writer {
	cairn_repo *repo;
	pthread_barrier_t *start;
	int first;
};

static void *put_small(void *arg)
{
	struct small_writer *w = arg;
	uint8_t buf[2000];
	pthread_barrier_wait(w->start);
	for (int i = w->first; i < w->first + SMALL_PER_THREAD; i++) {
		check_random(buf, sizeof(buf), 5000 + (uint64_t)i);
		int type = i % 10 == 0 ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA;
		CHECK_EQ(cairn_repo_put(w->repo, type, buf, 100 + i % 1900, NULL, NULL), 1);
	}
	return NULL;
}

struct pack_count {
	cairn_repo *repo;
	uint64_t target;
	int partial[2]; /* packs below the target size: [1] trees, [0] data */
};

static int count_partial(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct pack_count *c = payload;
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	CHECK_OK(cairn_repo_pack_entries(c->repo, pack, &e, &n));
	for (size_t i = 1; i < n; i++)
		CHECK_EQ(e[i].type, e[0].type); /* trees and data never share a pack */
	if (size < c->target)
		c->partial[e[0].type == CAIRN_BLOB_TREE]++;
	free(e);
	return 0;
}

/* SMALL_THREADS threads put at once into a repository of packs of pack_size;
 * returns how many packs were written. */
static uint64_t put_concurrently(uint32_t pack_size, int partial[2])
{
	cairn_repo *repo = make_repo(pack_size);
	pthread_t t[SMALL_THREADS];
	struct small_writer w[SMALL_THREADS];
	pthread_barrier_t start;
	struct pack_count c = { repo, pack_size ? pack_size : 16u << 20, { 0, 0 } };
	struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_repo_stats st;
	uint8_t buf[2000];

	CHECK(pthread_barrier_init(&start, NULL, SMALL_THREADS) == 0);
	for (int i = 0; i < SMALL_THREADS; i++) {
		w[i] = (struct small_writer){ repo, &start, i * SMALL_PER_THREAD };
		CHECK(pthread_create(&t[i], NULL, put_small, &w[i]) == 0);
	}
	for (int i = 0; i < SMALL_THREADS; i++)
		pthread_join(t[i], NULL);
	pthread_barrier_destroy(&start);
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_OK(cairn_repo_foreach_pack(repo, count_partial, &c));
	for (int i = 0; i < SMALL_THREADS * SMALL_PER_THREAD; i++) {
		struct cairn_id id;
		size_t len = 100 + (size_t)i % 1900;
		check_random(buf, sizeof(buf), 5000 + (uint64_t)i);
		CHECK_OK(cairn_repo_blob_id(repo, buf, len, &id));
		CHECK_OK(cairn_repo_get_typed(repo, i % 10 == 0 ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA,
		                              &id, &out));
		CHECK_EQ(out.len, len);
		CHECK(memcmp(out.data, buf, len) == 0);
	}
	cairn_repo_stats(repo, &st);
	cairn_buf_release(&out);
	cairn_repo_close(repo);
	CHECK_OK(cairn_rm_rf(repo_path));
	partial[0] = c.partial[0];
	partial[1] = c.partial[1];
	return st.packs_written;
}

static void test_repo__flush_merges_partial_packs(void)
{
	int partial[2];
	/* 8 MB in all: one pack of each type. */
	CHECK_EQ(put_concurrently(0, partial), 2);
	CHECK_EQ(partial[0], 1);
	CHECK_EQ(partial[1], 1);
	/* Packs of 1 MiB: full ones, and one partial pack per type at most, also
	 * when the merge fills a pack and starts another. */
	CHECK(put_concurrently(1024 * 1024, partial) >= 8);
	CHECK(partial[0] <= 1);
	CHECK(partial[1] <= 1);
}

static int count_obj(const struct cairn_obj_info *o, void *payload)
{
	(void)o;
	(*(int *)payload)++;
	return 0;
}

static int index_files(cairn_repo *repo)
{
	int n = 0;
	CHECK_OK(cairn_storage_list(cairn_repo_storage(repo), CAIRN_OBJ_INDEX, count_obj, &n));
	return n;
}

/* The packs a writer notes for its next index file are held in memory, and the
 * file is built in memory: named once they hold enough blobs, not only every
 * 256 packs, so that packs of many small blobs keep both bounded. */
static void test_repo__index_files_bounded_by_blobs(void)
{
	cairn_repo *repo = make_repo(1024 * 1024);
	uint8_t buf[2000];
	struct cairn_repo_stats st;

	cairn_repo__test_blobs_per_file(1000);
	for (int i = 0; i < 2000; i++) {
		check_random(buf, sizeof(buf), 70000 + (uint64_t)i);
		CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, sizeof(buf), NULL, NULL), 1);
	}
	cairn_repo_stats(repo, &st);
	CHECK_EQ(st.packs_written, 3);  /* about 520 blobs a pack */
	CHECK_EQ(index_files(repo), 1); /* the first two packs, past 1000 blobs */
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_EQ(index_files(repo), 2);
	cairn_repo__test_blobs_per_file(0);
	cairn_repo_close(repo);
}

/* Packs noted while files were held back are named all at once, in files
 * that each stay within the limit. */
static void test_repo__held_packs_named_within_limits(void)
{
	cairn_repo *repo = make_repo(1024 * 1024);
	uint8_t buf[2000];
	struct cairn_repo_stats st;

	for (int i = 0; i < 2000; i++) {
		check_random(buf, sizeof(buf), 90000 + (uint64_t)i);
		CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, sizeof(buf), NULL, NULL), 1);
	}
	cairn_repo_stats(repo, &st);
	CHECK_EQ(st.packs_written, 3);
	CHECK_EQ(index_files(repo), 0); /* below the default limits */
	cairn_repo__test_blobs_per_file(1000);
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_EQ(index_files(repo), 2); /* the first two packs pass 1000 blobs */
	cairn_repo__test_blobs_per_file(0);
	cairn_repo_close(repo);
}

/* A pack noted twice (adopted by a refresh while its writer was indexing it)
 * is named once: an index file naming it twice would be refused. */
static void test_repo__pack_noted_twice_named_once(void)
{
	cairn_repo *repo = make_repo(1024 * 1024);
	struct cairn_pack_entry e = { .id = { { 7 } },
		                      .type = CAIRN_BLOB_DATA,
		                      .offset = 8,
		                      .stored_len = 41,
		                      .raw_len = 1 };
	struct cairn_id pack = { { 9 } };
	CHECK_OK(cairn_repo__note_pack(repo, &pack, 100, &e, 1));
	CHECK_OK(cairn_repo__note_pack(repo, &pack, 100, &e, 1));
	CHECK_OK(cairn_repo__name_packs(repo));
	CHECK_EQ(index_files(repo), 1);
	cairn_repo_close(repo);
}

static void test_repo__costly_key_files_skipped(void)
{
	struct warnings w = { 0 };
	char p[600];
	cairn_repo_close(make_repo(0));
	plant_costly_key("0000000000000000");
	plant_costly_key("0000000000000001");
	forget_last_key();
	/* Without a hint every file is tried in name order: the planted ones are
	 * skipped with one warning each, scrypt runs for the real key only. */
	CHECK_EQ(open_counting(PW, &w, false), 1);
	CHECK_EQ(w.n, 2);
	key_path(p, sizeof(p), "0000000000000001");
	CHECK(strstr(w.last, p) != NULL);
	CHECK(strstr(w.last, "above the limit") != NULL);
	/* With the hint the planted files are not even read. */
	w.n = 0;
	CHECK_EQ(open_counting(PW, &w, true), 1);
	CHECK_EQ(w.n, 0);
	/* A wrong password is still "wrong password" after the skips. */
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	cairn_repo *repo = NULL;
	CHECK_ERR(cairn_repo_open(&repo, repo_path, "nope", 4, &ro), -EKEYREJECTED);
}

/* Renames the key file in use to to (the repository must be closed). */
static void rename_key(const char *pw, const char *to)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .no_index = true };
	struct cairn_key_info *keys = NULL;
	cairn_repo *repo = NULL;
	char from[600], dst[600];
	size_t n = 0;
	CHECK_OK(cairn_repo_open(&repo, repo_path, pw, strlen(pw), &ro));
	CHECK_OK(cairn_key_list(repo, &keys, &n));
	for (size_t i = 0; i < n; i++)
		if (keys[i].current)
			key_path(from, sizeof(from), keys[i].name);
	free(keys);
	cairn_repo_close(repo);
	key_path(dst, sizeof(dst), to);
	CHECK_OK(rename(from, dst));
}

static void test_repo__last_key_tried_first(void)
{
	cairn_repo *repo = make_repo(0);
	struct warnings w = { 0 };
	char name[17], p[600];
	CHECK_OK(cairn_key_add(repo, "two", 3, NULL, 0, name));
	CHECK_OK(cairn_key_add(repo, "three", 5, NULL, 0, name));
	cairn_repo_close(repo);
	rename_key("two", "0000000000000001");
	rename_key("three", "0000000000000002");
	rename_key(PW, "ffffffffffffffff");
	forget_last_key();

	CHECK_EQ(open_counting(PW, &w, false), 3); /* no hint: name order */
	CHECK_EQ(open_counting(PW, &w, false), 1); /* remembered */
	CHECK_EQ(open_counting("three", &w, false), 3);
	CHECK_EQ(open_counting("three", &w, false), 1);
	/* A read-only open of a directory it may write updates the hint too:
	 * the hint is a cache (FORMAT.md §3.2). */
	CHECK_EQ(open_counting(PW, &w, true), 3);
	CHECK_EQ(open_counting(PW, &w, true), 1);
	CHECK_EQ(open_counting("three", &w, true), 3);
	/* Garbage or a vanished key in the hint is no hint. */
	snprintf(p, sizeof(p), "%s/index/last-key", repo_path);
	CHECK_OK(cairn_file_write_atomic(p, NULL, "zz\n", 3));
	CHECK_EQ(open_counting(PW, &w, false), 3);
	CHECK_EQ(open_counting(PW, &w, false), 1);
	CHECK_OK(cairn_file_write_atomic(p, NULL, "0123456789abcdef\n", 17));
	CHECK_EQ(open_counting("three", &w, false), 2);
	CHECK_EQ(w.n, 0);
}

/* ---- a damaged snapshot file (issue 14 point 12) ------------------------- */

static void test_repo__damaged_snapshot_skipped(void)
{
	struct warnings w = { 0 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .warn = collect_warning,
		                      .warn_payload = &w };
	struct cairn_snapshot **list = NULL;
	struct cairn_id root = { { 1 } }, *ids = NULL, found;
	char hex[CAIRN_ID_HEX_SIZE], p[700];
	cairn_repo *repo = make_repo(0);
	size_t n = 0;

	for (int i = 0; i < 3; i++)
		save_snapshot(repo, 1000000000LL * (i + 1), &root);
	CHECK_OK(cairn_repo_snapshot_ids(repo, &ids, &n));
	CHECK_EQ(n, 3);
	cairn_id_hex(hex, &ids[1]);
	free(ids);
	cairn_repo_close(repo);
	snprintf(p, sizeof(p), "%s/snapshots/%s", repo_path, hex);
	FILE *f = fopen(p, "r+b");
	CHECK(f != NULL);
	fseek(f, 40, SEEK_SET);
	int c = fgetc(f);
	fseek(f, 40, SEEK_SET);
	fputc(c ^ 1, f);
	fclose(f);

	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, 2);
	CHECK_EQ(w.n, 1);
	char short_id[9];
	snprintf(short_id, sizeof(short_id), "%.8s", hex);
	CHECK(strstr(w.last, short_id) != NULL);
	cairn_snapshot_list_free(list, n);
	/* Found by the name of its file, and removed. */
	CHECK_OK(cairn_repo_snapshot_resolve(repo, short_id, &found));
	CHECK_ERR(cairn_repo_snapshot_resolve(repo, "abcdefg", &found), -EINVAL);
	CHECK_OK(cairn_repo_snapshot_delete(repo, &found));
	w.n = 0;
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, 2);
	CHECK_EQ(w.n, 0);
	cairn_snapshot_list_free(list, n);
	CHECK_ERR(cairn_repo_snapshot_resolve(repo, short_id, &found), -ENOENT);
	cairn_repo_close(repo);
}

/* ---- write-only keys (FORMAT.md §3.3, §5.4, §14) ------------------------- */

static cairn_repo *open_wo(const struct cairn_storage_opts *so, bool allow, int *r)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .storage = so,
		                      .allow_write_only = allow };
	cairn_repo *repo = NULL;
	*r = cairn_repo_open(&repo, repo_path, "host-pw", 7, &ro);
	return repo;
}

static void test_repo__write_only_key(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char cache[700], name[17];
	snprintf(cache, sizeof(cache), "%s/cache", check_tmpdir());
	struct cairn_storage_opts so = { .version = CAIRN_STORAGE_OPTS_VERSION,
		                         .cache_dir = cache };
	struct cairn_snapshot **list = NULL;
	struct cairn_key_info *keys = NULL;
	struct cairn_id data, tree;
	cairn_repo *repo = make_repo(0);
	size_t n = 0;
	int r;

	CHECK(!cairn_repo_write_only(repo));
	CHECK_OK(cairn_key_add_write_only(repo, "host-pw", 7, "host1", 0, name));
	cairn_repo_close(repo);

	/* refused unless the caller only adds backups, before anything is read */
	CHECK(open_wo(&so, false, &r) == NULL);
	CHECK_EQ(r, -EACCES);
	CHECK(strstr(cairn_err_msg(), "can only add backups"));
	repo = open_wo(&so, true, &r);
	CHECK_OK(r);
	CHECK(cairn_repo_write_only(repo));
	CHECK_OK(cairn_key_list(repo, &keys, &n));
	CHECK_EQ(n, 2);
	for (size_t i = 0; i < n; i++)
		CHECK_EQ(keys[i].kind, keys[i].current ? CAIRN_KEY_WRITE_ONLY : CAIRN_KEY_FULL);
	free(keys);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, "file content", 12, NULL, &data), 1);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_TREE, "a tree", 6, NULL, &tree), 1);
	CHECK_OK(cairn_repo_flush(repo));
	save_snapshot(repo, 1000, &tree);
	/* it dedupes against what is stored, and reads none of it back */
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, "file content", 12, NULL, NULL), 0);
	CHECK_EQ(cairn_repo_has(repo, &data), 1);
	CHECK_ERR(cairn_repo_get(repo, &data, &b), -EACCES);
	CHECK_ERR(cairn_repo_get(repo, &tree, &b), -EACCES);
	CHECK_ERR(cairn_key_add(repo, "x", 1, NULL, 0, name), -EACCES);
	CHECK_ERR(cairn_key_add_write_only(repo, "x", 1, NULL, 0, name), -EACCES);
	CHECK_ERR(cairn_key_passwd(repo, "x", 1, NULL, 0), -EACCES);
	/* its own snapshot comes from the host cache */
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, 1);
	CHECK(cairn_id_cmp(&list[0]->root, &tree) == 0);
	cairn_snapshot_list_free(list, n);
	cairn_repo_close(repo);

	/* The admin reads everything; rebuild-index reads the host's pack headers. */
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	CHECK_OK(cairn_repo_get(repo, &data, &b));
	CHECK(b.len == 12 && memcmp(b.data, "file content", 12) == 0);
	CHECK_OK(cairn_repo_get_typed(repo, CAIRN_BLOB_TREE, &tree, &b));
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, 1);
	cairn_snapshot_list_free(list, n);
	CHECK_EQ(cairn_repo_rebuild_index(repo), 2);
	CHECK_OK(cairn_repo_get(repo, &data, &b));
	cairn_repo_close(repo);

	/* Without its host cache the host knows no parent, and still dedupes. */
	CHECK_OK(cairn_rm_rf(cache));
	repo = open_wo(&so, true, &r);
	CHECK_OK(r);
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, 0);
	free(list);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, "file content", 12, NULL, NULL), 0);
	cairn_repo_close(repo);
}

/* ---- code debts (issue 14 point 18) -------------------------------------- */

/* A path that fits for the directories but not for the key file: an error, not
 * a key file written under a cut name. */
static void test_repo__path_too_long(void)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = -1,
		                     .kdf_log2n = 10 };
	char path[PATH_MAX];
	size_t len = (size_t)snprintf(path, sizeof(path), "%s", check_tmpdir());
	/* Components of 200 bytes up to 4076 bytes in all: "<path>/snapshots" and
	 * "<path>/tmp/.tmp.XXXXXX" still fit in PATH_MAX (4096 with the NUL),
	 * "<path>/keys/<16 hex>" does not. */
	while (len < 4076) {
		size_t n = 4076 - len - 1 < 200 ? 4076 - len - 1 : 200;
		path[len++] = '/';
		memset(path + len, 'd', n);
		len += n;
		path[len] = '\0';
	}
	CHECK_EQ(strlen(path), 4076);
	CHECK_ERR(cairn_repo_init(path, PW, strlen(PW), &o), -ENAMETOOLONG);
	/* Nothing was written under a shortened name (the storage refuses such a
	 * root before it creates anything). */
	char keys[PATH_MAX];
	snprintf(keys, sizeof(keys), "%s/keys", path);
	_cleanup_closedir_ DIR *d = opendir(keys);
	CHECK(d != NULL || errno == ENOENT);
	for (struct dirent *de; d && (de = readdir(d));)
		CHECK(de->d_name[0] == '.');
	CHECK_ERR(cairn_repo_probe(path, NULL), -ENAMETOOLONG);
}

/* Pack and snapshot files a rebuild skips are reported to the caller's warn
 * callback: the store prints nothing. */
static void test_repo__rebuild_warns(void)
{
	struct warnings w = { 0 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .warn = collect_warning,
		                      .warn_payload = &w };
	cairn_repo *repo = make_repo(0);
	struct cairn_id pack, id;
	uint8_t buf[1000];
	char path[700], hex[CAIRN_ID_HEX_SIZE];

	check_random(buf, sizeof(buf), 5);
	CHECK_EQ(cairn_repo_put(repo, CAIRN_BLOB_DATA, buf, sizeof(buf), NULL, &id), 1);
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_ERR(cairn_repo_foreach_pack(repo, first_pack, &pack), -1);
	cairn_repo_close(repo);
	cairn_id_hex(hex, &pack);
	snprintf(path, sizeof(path), "%s/packs/%.2s/%s", repo_path, hex, hex);
	CHECK_OK(truncate(path, 100));
	snprintf(path, sizeof(path), "%s/index", repo_path);
	CHECK_OK(cairn_rm_rf(path));

	/* The missing index is rebuilt at the open, which says so, and leaves out
	 * the pack: no index file names it with this size. */
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	CHECK_EQ(w.n, 2);
	CHECK(strstr(w.last, "no index file names it") != NULL);
	CHECK_EQ(cairn_repo_unindexed_packs(repo), 1);
	CHECK(strstr(w.last, hex) != NULL);
	CHECK_EQ(cairn_repo_has(repo, &id), 0);
	cairn_repo_close(repo);
}

int main(void)
{
	RUN(test_repo__init_open);
	RUN(test_repo__recover_keeps_live_temps);
	RUN(test_repo__bad_init_options);
	RUN(test_repo__keys);
	RUN(test_repo__threaded_put_get_rebuild);
	RUN(test_repo__corrupt_pack);
	RUN(test_repo__limits);
	RUN(test_repo__write_failure_is_sticky);
	RUN(test_repo__finish_failure_is_sticky);
	RUN(test_repo__flush_merges_partial_packs);
	RUN(test_repo__index_files_bounded_by_blobs);
	RUN(test_repo__held_packs_named_within_limits);
	RUN(test_repo__pack_noted_twice_named_once);
	RUN(test_repo__costly_key_files_skipped);
	RUN(test_repo__last_key_tried_first);
	RUN(test_repo__damaged_snapshot_skipped);
	RUN(test_repo__write_only_key);
	RUN(test_repo__path_too_long);
	RUN(test_repo__rebuild_warns);
	return 0;
}
