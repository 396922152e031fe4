/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/index.c: the LMDB index (FORMAT.md §7). */
#include "index.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pack.h"
#include "check.h"
#include "cleanup.h"

static const uint8_t repo_a[CAIRN_REPO_ID_SIZE] = { 0xa0, 1, 2, 3 };
static const uint8_t repo_b[CAIRN_REPO_ID_SIZE] = { 0xb0, 1, 2, 3 };

static char ixdir[512];

static cairn_index *ix_open(bool read_only)
{
	cairn_index *ix = NULL;
	snprintf(ixdir, sizeof(ixdir), "%s/index", check_tmpdir());
	CHECK_OK(cairn_index__open(&ix, ixdir, read_only, repo_a));
	CHECK(ix != NULL);
	return ix;
}

static struct cairn_id mkid(uint8_t first, uint32_t n)
{
	struct cairn_id id;
	check_random(id.b, sizeof(id.b), ((uint64_t)first << 32) | n);
	id.b[0] = first;
	return id;
}

/* n entries laid out like a pack (FORMAT.md §6.2), blob IDs from seed. */
static struct cairn_pack_entry *mk_entries(size_t n, uint32_t seed)
{
	struct cairn_pack_entry *e = calloc(n, sizeof(*e));
	uint32_t off = CAIRN_PACK_MAGIC_SIZE;
	CHECK(e);
	for (size_t i = 0; i < n; i++) {
		check_random(e[i].id.b, CAIRN_ID_SIZE, (uint64_t)seed << 32 | i);
		e[i].type = i % 4 == 0 ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA;
		e[i].offset = off;
		e[i].stored_len = (uint32_t)(41 + i % 1000);
		e[i].raw_len = (uint32_t)(i % 900);
		off += e[i].stored_len;
	}
	return e;
}

static void check_loc(const struct cairn_loc *l, const struct cairn_id *pack,
                      const struct cairn_pack_entry *e)
{
	CHECK(memcmp(l->pack.b, pack->b, CAIRN_ID_SIZE) == 0);
	CHECK_EQ(l->offset, e->offset);
	CHECK_EQ(l->stored_len, e->stored_len);
	CHECK_EQ(l->raw_len, e->raw_len);
	CHECK_EQ(l->type, e->type);
}

/* ---- open, add, get ----------------------------------------------------- */

static void test_index__open_create(void)
{
	char data[600];
	struct stat st;

	cairn_index *ix = ix_open(false);
	CHECK_OK(stat(ixdir, &st));
	CHECK_EQ(st.st_mode & 0777, 0700);
	snprintf(data, sizeof(data), "%s/data.mdb", ixdir);
	CHECK_OK(access(data, F_OK));
	cairn_index__close(ix);
	ix = ix_open(false); /* existing: meta matches */
	cairn_index__close(ix);
	cairn_index__close(NULL);
}

static void test_index__add_get(void)
{
	cairn_index *ix = ix_open(false);
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(500, 1);
	struct cairn_id pack = mkid(0x42, 0), other = mkid(0x43, 0);
	struct cairn_loc loc;
	uint64_t size = 0;

	CHECK_EQ(cairn_index__has_pack(ix, &pack, &size), 0);
	CHECK_ERR(cairn_index__get(ix, &e[0].id, &loc), -ENOENT);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 123456789012ull, e, 500));
	for (size_t i = 0; i < 500; i++) {
		memset(&loc, 0, sizeof(loc));
		CHECK_OK(cairn_index__get(ix, &e[i].id, &loc));
		check_loc(&loc, &pack, &e[i]);
	}
	CHECK_EQ(cairn_index__has_pack(ix, &pack, &size), 1);
	CHECK_EQ(size, 123456789012ull);
	CHECK_EQ(cairn_index__has_pack(ix, &pack, NULL), 1);
	CHECK_EQ(cairn_index__has_pack(ix, &other, NULL), 0);
	struct cairn_id missing = mkid(0x99, 7);
	loc.offset = 4242;
	CHECK_ERR(cairn_index__get(ix, &missing, &loc), -ENOENT);
	CHECK_EQ(loc.offset, 4242); /* untouched on failure */
	CHECK_ERR(cairn_index__add_pack(ix, &other, 1, e, CAIRN_PACK_MAX_ENTRIES + 1), -EINVAL);
	CHECK_EQ(cairn_index__has_pack(ix, &other, NULL), 0);
	cairn_index__close(ix);
}

/* FORMAT.md §7: a blob in several packs is indexed in the lowest-ID pack. */
static void lowest_wins(bool low_first)
{
	_cleanup_free_ struct cairn_pack_entry *lo_e = mk_entries(3, 10);
	_cleanup_free_ struct cairn_pack_entry *hi_e = mk_entries(3, 11);
	struct cairn_id lo = mkid(0x10, 1), hi = mkid(0x10, 2), other = mkid(0x10, 3);
	struct cairn_loc loc;

	lo.b[1] = 0x00;
	hi.b[1] = 0xff; /* lo < hi */
	other.b[1] = 0x80;
	hi_e[1].id = lo_e[1].id; /* shared blob, at a different place in each */
	hi_e[1].type = CAIRN_BLOB_TREE;
	lo_e[1].type = CAIRN_BLOB_DATA;
	cairn_index *ix = ix_open(false);
	if (low_first) {
		CHECK_OK(cairn_index__add_pack(ix, &lo, 1000, lo_e, 3));
		CHECK_OK(cairn_index__add_pack(ix, &hi, 2000, hi_e, 3));
	} else {
		CHECK_OK(cairn_index__add_pack(ix, &hi, 2000, hi_e, 3));
		CHECK_OK(cairn_index__add_pack(ix, &lo, 1000, lo_e, 3));
	}
	CHECK_OK(cairn_index__get(ix, &lo_e[1].id, &loc));
	check_loc(&loc, &lo, &lo_e[1]);
	/* blobs only in one pack stay there */
	CHECK_OK(cairn_index__get(ix, &hi_e[0].id, &loc));
	check_loc(&loc, &hi, &hi_e[0]);
	CHECK_OK(cairn_index__get(ix, &lo_e[2].id, &loc));
	check_loc(&loc, &lo, &lo_e[2]);
	/* a third pack between the two does not win either */
	CHECK_OK(cairn_index__add_pack(ix, &other, 3000, hi_e, 3));
	CHECK_OK(cairn_index__get(ix, &lo_e[1].id, &loc));
	check_loc(&loc, &lo, &lo_e[1]);
	CHECK_OK(cairn_index__get(ix, &hi_e[0].id, &loc));
	check_loc(&loc, &other, &hi_e[0]); /* 0x80 < 0xff */
	cairn_index__close(ix);
}

static void test_index__lowest_pack_wins_low_first(void)
{
	lowest_wins(true);
}

static void test_index__lowest_pack_wins_high_first(void)
{
	lowest_wins(false);
}

struct counter {
	size_t n;
	struct cairn_id last;
	struct cairn_id pack;
	size_t in_pack;
	size_t stop_after;
	bool ordered;
};

static int count_blob(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct counter *c = payload;
	if (c->n > 0 && memcmp(c->last.b, id->b, CAIRN_ID_SIZE) >= 0)
		c->ordered = false;
	c->last = *id;
	c->in_pack += memcmp(loc->pack.b, c->pack.b, CAIRN_ID_SIZE) == 0;
	if (++c->n == c->stop_after)
		return -ECANCELED;
	return 1; /* positive: carry on */
}

static int count_pack(const struct cairn_id *pack, uint64_t size, uint32_t count, void *payload)
{
	struct counter *c = payload;
	(void)size;
	c->in_pack += count;
	if (c->n > 0 && memcmp(c->last.b, pack->b, CAIRN_ID_SIZE) >= 0)
		c->ordered = false;
	c->last = *pack;
	c->n++;
	return 0;
}

static void test_index__del_pack(void)
{
	_cleanup_free_ struct cairn_pack_entry *a_e = mk_entries(100, 20);
	_cleanup_free_ struct cairn_pack_entry *b_e = mk_entries(50, 21);
	struct cairn_id a = mkid(0x01, 0), b = mkid(0x02, 0);
	struct cairn_loc loc;
	struct counter c = { .ordered = true, .pack = a };

	b_e[0].id = a_e[0].id;
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &a, 10, a_e, 100));
	CHECK_OK(cairn_index__add_pack(ix, &b, 20, b_e, 50));
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_EQ(c.n, 149);
	CHECK_EQ(c.in_pack, 100);
	CHECK_OK(cairn_index__del_pack(ix, &a));
	CHECK_EQ(cairn_index__has_pack(ix, &a, NULL), 0);
	CHECK_EQ(cairn_index__has_pack(ix, &b, NULL), 1);
	for (size_t i = 0; i < 100; i++)
		CHECK_ERR(cairn_index__get(ix, &a_e[i].id, &loc), -ENOENT);
	for (size_t i = 1; i < 50; i++) {
		CHECK_OK(cairn_index__get(ix, &b_e[i].id, &loc));
		check_loc(&loc, &b, &b_e[i]);
	}
	c = (struct counter){ .ordered = true, .pack = b };
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_EQ(c.n, 49);
	CHECK_EQ(c.in_pack, 49);
	CHECK_OK(cairn_index__del_pack(ix, &a)); /* again: nothing to do */
	cairn_index__close(ix);
}

/* Prune's swap: old packs out, new ones in, in one txn. */
static void test_index__replace_packs(void)
{
	_cleanup_free_ struct cairn_pack_entry *a_e = mk_entries(20, 90);
	_cleanup_free_ struct cairn_pack_entry *b_e = mk_entries(20, 91);
	_cleanup_free_ struct cairn_pack_entry *c_e = mk_entries(10, 92);
	struct cairn_id a = mkid(0x01, 0), b = mkid(0x02, 0), c = mkid(0x03, 0);
	struct cairn_loc loc;
	struct counter cnt = { .ordered = true };

	/* c holds blob 0 of a: a's ID is lower, but a goes */
	c_e[0].id = a_e[0].id;
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &a, 1, a_e, 20));
	CHECK_OK(cairn_index__add_pack(ix, &b, 2, b_e, 20));
	struct cairn_id old[] = { a, b };
	struct cairn_index_pack add = { .id = c, .size = 3, .e = c_e, .n = 10 };
	CHECK_OK(cairn_index__replace_packs(ix, old, 2, &add, 1));
	CHECK_EQ(cairn_index__has_pack(ix, &a, NULL), 0);
	CHECK_EQ(cairn_index__has_pack(ix, &b, NULL), 0);
	CHECK_EQ(cairn_index__has_pack(ix, &c, NULL), 1);
	CHECK_OK(cairn_index__get(ix, &a_e[0].id, &loc));
	check_loc(&loc, &c, &c_e[0]);
	CHECK_ERR(cairn_index__get(ix, &a_e[2].id, &loc), -ENOENT);
	CHECK_ERR(cairn_index__get(ix, &b_e[5].id, &loc), -ENOENT);
	cnt.pack = c;
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &cnt));
	CHECK_EQ(cnt.n, 10);
	CHECK_EQ(cnt.in_pack, 10);
	cairn_index__close(ix);
}

static void test_index__foreach_order(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(2000, 30);
	struct cairn_id packs[5];
	struct counter c = { .ordered = true };

	cairn_index *ix = ix_open(false);
	for (uint32_t p = 0; p < 5; p++) {
		packs[p] = mkid((uint8_t)(0xf0 - p * 16), p); /* added in decreasing ID order */
		CHECK_OK(cairn_index__add_pack(ix, &packs[p], 1000 + p, e + 400 * p, 400));
	}
	c.pack = packs[2];
	CHECK_EQ(cairn_index__foreach_blob(ix, count_blob, &c), 0); /* not the callback's 1 */
	CHECK_EQ(c.n, 2000);
	CHECK(c.ordered);
	CHECK_EQ(c.in_pack, 400);
	c = (struct counter){ .ordered = true, .stop_after = 10 };
	CHECK_ERR(cairn_index__foreach_blob(ix, count_blob, &c), -ECANCELED);
	CHECK_EQ(c.n, 10);
	c = (struct counter){ .ordered = true };
	CHECK_OK(cairn_index__foreach_pack(ix, count_pack, &c));
	CHECK_EQ(c.n, 5);
	CHECK(c.ordered);
	CHECK_EQ(c.in_pack, 2000);
	cairn_index__close(ix);
}

/* ---- snapshots, clear, reopen ------------------------------------------- */

struct snaps {
	size_t n;
	struct cairn_id id[8];
	int64_t t[8];
};

static int collect_snap(const struct cairn_id *id, int64_t time_ns, void *payload)
{
	struct snaps *s = payload;
	CHECK(s->n < 8);
	s->id[s->n] = *id;
	s->t[s->n++] = time_ns;
	return 0;
}

static void test_index__snapshots(void)
{
	struct cairn_id s1 = mkid(0x30, 1), s2 = mkid(0x10, 2), s3 = mkid(0x20, 3);
	struct snaps got = { 0 };

	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_snapshot(ix, &s1, 1700000000123456789ll));
	CHECK_OK(cairn_index__add_snapshot(ix, &s2, -5));
	CHECK_OK(cairn_index__add_snapshot(ix, &s3, INT64_MAX));
	CHECK_OK(cairn_index__foreach_snapshot(ix, collect_snap, &got));
	CHECK_EQ(got.n, 3);
	/* key (ID) order */
	CHECK(memcmp(got.id[0].b, s2.b, 32) == 0 && got.t[0] == -5);
	CHECK(memcmp(got.id[1].b, s3.b, 32) == 0 && got.t[1] == INT64_MAX);
	CHECK(memcmp(got.id[2].b, s1.b, 32) == 0 && got.t[2] == 1700000000123456789ll);
	CHECK_OK(cairn_index__add_snapshot(ix, &s1, 7)); /* replaces */
	CHECK_OK(cairn_index__del_snapshot(ix, &s3));
	CHECK_OK(cairn_index__del_snapshot(ix, &s3)); /* absent: fine */
	got.n = 0;
	CHECK_OK(cairn_index__foreach_snapshot(ix, collect_snap, &got));
	CHECK_EQ(got.n, 2);
	CHECK(memcmp(got.id[1].b, s1.b, 32) == 0 && got.t[1] == 7);
	cairn_index__close(ix);
}

static int count_aux(const void *k, size_t klen, const void *v, size_t vlen, void *payload)
{
	size_t *n = payload;
	(void)k;
	(void)v;
	CHECK(klen > 0);
	CHECK_EQ(vlen, 3);
	++*n;
	return 0;
}

static void test_index__clear(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(300, 40);
	struct cairn_id pack = mkid(0x50, 0), snap = mkid(0x51, 0);
	struct cairn_loc loc;
	struct counter c = { .ordered = true };
	struct snaps s = { 0 };
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;

	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 300));
	CHECK_OK(cairn_index__add_snapshot(ix, &snap, 1));
	CHECK_OK(cairn_index__aux_put(ix, "sync:x", "k", 1, "val", 3));
	CHECK_OK(cairn_index__clear(ix));
	CHECK_ERR(cairn_index__get(ix, &e[0].id, &loc), -ENOENT);
	CHECK_EQ(cairn_index__has_pack(ix, &pack, NULL), 0);
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_OK(cairn_index__foreach_pack(ix, count_pack, &c));
	CHECK_EQ(c.n, 0);
	CHECK_OK(cairn_index__foreach_snapshot(ix, collect_snap, &s));
	CHECK_EQ(s.n, 0);
	/* other subsystems' tables are left alone */
	CHECK_OK(cairn_index__aux_get(ix, "sync:x", "k", 1, &v));
	CHECK(v.len == 3 && memcmp(v.data, "val", 3) == 0);
	/* usable afterwards, and meta survived */
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 300));
	cairn_index__close(ix);
	ix = ix_open(false);
	CHECK_OK(cairn_index__get(ix, &e[299].id, &loc));
	cairn_index__close(ix);
}

static void test_index__read_only(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(10, 50);
	struct cairn_id pack = mkid(0x60, 0), snap = mkid(0x61, 0);
	struct cairn_loc loc;
	struct snaps s = { 0 };
	cairn_index *ro = NULL;
	char missing[600];

	snprintf(missing, sizeof(missing), "%s/nothing", check_tmpdir());
	CHECK_ERR(cairn_index__open(&ro, missing, true, repo_a), -ENOENT);
	CHECK(ro == NULL);
	CHECK_ERR(access(missing, F_OK), -1); /* read-only creates nothing */
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 77, e, 10));
	CHECK_OK(cairn_index__add_snapshot(ix, &snap, 99));
	cairn_index__close(ix);

	ro = ix_open(true);
	CHECK_OK(cairn_index__get(ro, &e[9].id, &loc));
	check_loc(&loc, &pack, &e[9]);
	CHECK_EQ(cairn_index__has_pack(ro, &pack, NULL), 1);
	CHECK_OK(cairn_index__foreach_snapshot(ro, collect_snap, &s));
	CHECK_EQ(s.n, 1);
	CHECK_ERR(cairn_index__add_pack(ro, &pack, 77, e, 10), -EROFS);
	CHECK_ERR(cairn_index__del_pack(ro, &pack), -EROFS);
	CHECK_ERR(cairn_index__add_snapshot(ro, &snap, 1), -EROFS);
	CHECK_ERR(cairn_index__clear(ro), -EROFS);
	CHECK_ERR(cairn_index__aux_put(ro, "t", "k", 1, "v", 1), -EROFS);
	CHECK_EQ(cairn_index__has_pack(ro, &pack, NULL), 1);
	cairn_index__close(ro);
}

static void test_index__other_repository(void)
{
	cairn_index *ix = ix_open(false), *other = NULL;
	cairn_index__close(ix);
	CHECK_ERR(cairn_index__open(&other, ixdir, false, repo_b), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "another repository") != NULL);
	CHECK_ERR(cairn_index__open(&other, ixdir, true, repo_b), -EBADMSG);
	CHECK(other == NULL);
}

/* Rewrite one record behind the index's back, with LMDB directly. */
static void poke(const char *db, const void *k, size_t klen, const void *v, size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val kv = { klen, (void *)k }, vv = { vlen, (void *)v };

	CHECK_EQ(mdb_env_create(&env), 0);
	CHECK_EQ(mdb_env_set_maxdbs(env, 64), 0);
	CHECK_EQ(mdb_env_open(env, ixdir, 0, 0600), 0);
	CHECK_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ(mdb_dbi_open(txn, db, 0, &dbi), 0);
	CHECK_EQ(mdb_put(txn, dbi, &kv, &vv, 0), 0);
	CHECK_EQ(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_index__unknown_version(void)
{
	uint8_t v2[4] = { 2, 0, 0, 0 }, v1[4] = { 1, 0, 0, 0 };
	cairn_index *ix = ix_open(false);

	cairn_index__close(ix);
	poke("meta", "version", 7, v2, 4);
	CHECK_ERR(cairn_index__open(&ix, ixdir, false, repo_a), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "unknown version") != NULL);
	poke("meta", "version", 7, v1, 3);
	CHECK_ERR(cairn_index__open(&ix, ixdir, true, repo_a), -EBADMSG);
	poke("meta", "version", 7, v1, 4);
	ix = ix_open(true);
	cairn_index__close(ix);
}

static void test_index__malformed_records(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(3, 60);
	struct cairn_id pack = mkid(0x70, 0);
	struct counter c = { .ordered = true };
	struct cairn_loc loc;
	uint8_t rec[CAIRN_LOC_SIZE + 1] = { 0 };

	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 3));
	cairn_index__close(ix);
	poke("blobs", e[1].id.b, 32, rec, CAIRN_LOC_SIZE + 1);
	poke("packs", pack.b, 32, rec, CAIRN_PACKREC_SIZE - 1);
	ix = ix_open(true);
	CHECK_OK(cairn_index__get(ix, &e[0].id, &loc));
	CHECK_ERR(cairn_index__get(ix, &e[1].id, &loc), -EBADMSG);
	CHECK_ERR(cairn_index__foreach_blob(ix, count_blob, &c), -EBADMSG);
	CHECK_ERR(cairn_index__has_pack(ix, &pack, NULL), -EBADMSG);
	CHECK_ERR(cairn_index__foreach_pack(ix, count_pack, &c), -EBADMSG);
	cairn_index__close(ix);
	/* a rewrite of the pack replaces the malformed blob record */
	ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 3));
	CHECK_OK(cairn_index__get(ix, &e[1].id, &loc));
	check_loc(&loc, &pack, &e[1]);
	cairn_index__close(ix);
}

/* ---- the `blobs` value (FORMAT.md §7) ----------------------------------- */

static void test_index__decode_loc(void)
{
	struct cairn_loc in = { .pack = mkid(0x80, 0),
		                .offset = 8,
		                .stored_len = 41,
		                .raw_len = CAIRN_TREE_MAX,
		                .type = CAIRN_BLOB_TREE };
	struct cairn_loc out;
	uint8_t rec[CAIRN_LOC_SIZE + 1], bad[CAIRN_LOC_SIZE];

	cairn_index__encode_loc(rec, &in);
	CHECK(memcmp(rec, in.pack.b, 32) == 0);
	CHECK_EQ(cairn_get_le32(rec + 32), 8);
	CHECK_EQ(rec[44], CAIRN_BLOB_TREE);
	CHECK_OK(cairn_index__decode_loc(&out, rec, CAIRN_LOC_SIZE));
	CHECK(memcmp(&out.pack, &in.pack, 32) == 0 && out.offset == in.offset &&
	      out.stored_len == in.stored_len && out.raw_len == in.raw_len && out.type == in.type);
	static const size_t sizes[] = { 0, 1, 12, 44, 46 };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		CHECK_ERR(cairn_index__decode_loc(&out, rec, sizes[i]), -EBADMSG);
	static const uint8_t types[] = { 0, CAIRN_BLOB_SNAPSHOT, CAIRN_BLOB_PACKHDR, 5, 255 };
	for (size_t i = 0; i < ARRAY_SIZE(types); i++) {
		memcpy(bad, rec, sizeof(bad));
		bad[44] = types[i];
		CHECK_ERR(cairn_index__decode_loc(&out, bad, sizeof(bad)), -EBADMSG);
	}
	struct {
		uint32_t off, slen, raw;
		int want;
	} v[] = {
		{ 7, 41, 0, -EBADMSG },                  /* inside the magic */
		{ 8, 40, 0, -EBADMSG },                  /* shorter than the seal */
		{ 8, 41, CAIRN_TREE_MAX + 1, -EBADMSG }, /* too large */
		{ UINT32_MAX - 40, 41, 0, -EBADMSG },    /* past 2^32 - 1 */
		{ UINT32_MAX - 41, 41, 0, 0 },           /* ends at 2^32 - 1 */
		{ 8, UINT32_MAX - 8, 0, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		memcpy(bad, rec, sizeof(bad));
		cairn_le32(bad + 32, v[i].off);
		cairn_le32(bad + 36, v[i].slen);
		cairn_le32(bad + 40, v[i].raw);
		out.offset = 1;
		CHECK_ERR(cairn_index__decode_loc(&out, bad, sizeof(bad)), v[i].want);
		CHECK_EQ(out.offset, v[i].want ? 1 : v[i].off);
	}
}

/* ---- auxiliary tables --------------------------------------------------- */

static void test_index__aux_tables(void)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	uint8_t big[600] = { 0 };
	size_t n = 0;

	cairn_index *ix = ix_open(false);
	CHECK_ERR(cairn_index__aux_get(ix, "t", "a", 1, &v), -ENOENT);
	CHECK_OK(cairn_index__aux_foreach(ix, "t", count_aux, &n));
	CHECK_EQ(n, 0);
	CHECK_OK(cairn_index__aux_del(ix, "t", "a", 1));
	CHECK_OK(cairn_index__aux_put(ix, "t", "a", 1, "one", 3));
	CHECK_OK(cairn_index__aux_put(ix, "t", "b", 1, "two", 3));
	CHECK_OK(cairn_index__aux_put(ix, "u", "a", 1, "uuu", 3));
	CHECK_ERR(cairn_index__aux_put(ix, "t", "", 0, "x", 1), -EINVAL);
	CHECK_ERR(cairn_index__aux_put(ix, "t", big, sizeof(big), "x", 1), -EINVAL);
	cairn_index__close(ix);

	/* A fresh handle reads a table it has not written: the table's handle is
	 * opened in a txn that commits, so it is still valid for the scan. */
	ix = ix_open(true);
	CHECK_OK(cairn_index__aux_foreach(ix, "t", count_aux, &n));
	CHECK_EQ(n, 2);
	CHECK_OK(cairn_index__aux_get(ix, "t", "b", 1, &v));
	CHECK(v.len == 3 && memcmp(v.data, "two", 3) == 0);
	cairn_index__close(ix);

	ix = ix_open(false);
	n = 0;
	CHECK_OK(cairn_index__aux_foreach(ix, "u", count_aux, &n));
	CHECK_EQ(n, 1);
	CHECK_OK(cairn_index__aux_del(ix, "t", "a", 1));
	CHECK_ERR(cairn_index__aux_get(ix, "t", "a", 1, &v), -ENOENT);
	CHECK_OK(cairn_index__aux_drop(ix, "u"));
	CHECK_OK(cairn_index__aux_drop(ix, "never"));
	n = 0;
	CHECK_OK(cairn_index__aux_foreach(ix, "u", count_aux, &n));
	CHECK_EQ(n, 0);
	n = 0;
	CHECK_OK(cairn_index__aux_foreach(ix, "t", count_aux, &n));
	CHECK_EQ(n, 1);
	cairn_index__close(ix);
}

/* ---- a full map --------------------------------------------------------- */

/* MDB_MAP_FULL is -ENOSPC, the failed txn leaves nothing behind, and the index
 * stays usable. */
static void test_index__map_full(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(2000, 70);
	struct cairn_loc loc;
	int r = 0;
	uint32_t p;

	cairn_index__set_map_size(1u << 20);
	cairn_index *ix = ix_open(false);
	cairn_index__set_map_size(0);
	for (p = 0; p < 100; p++) {
		struct cairn_id pack = mkid(0x90, p);
		for (size_t i = 0; i < 2000; i++) {
			e[i].id.b[31] = (uint8_t)p; /* new blobs in each pack */
			e[i].id.b[30] = (uint8_t)(p >> 8);
		}
		if ((r = cairn_index__add_pack(ix, &pack, 1, e, 2000)) < 0)
			break;
	}
	CHECK_ERR(r, -ENOSPC);
	CHECK(p > 0);
	struct cairn_id failed = mkid(0x90, p);
	CHECK_EQ(cairn_index__has_pack(ix, &failed, NULL), 0);
	CHECK_ERR(cairn_index__get(ix, &e[0].id, &loc), -ENOENT);
	struct cairn_id first = mkid(0x90, 0);
	CHECK_EQ(cairn_index__has_pack(ix, &first, NULL), 1);
	cairn_index__close(ix);
	/* with the default map the same pack goes in */
	ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &failed, 1, e, 2000));
	CHECK_OK(cairn_index__get(ix, &e[0].id, &loc));
	CHECK_EQ(cairn_index__has_pack(ix, &first, NULL), 1);
	cairn_index__close(ix);
}

/* The last transaction ID of the closed index at ixdir. */
static size_t last_txnid(void)
{
	MDB_env *env;
	MDB_envinfo info;
	CHECK(mdb_env_create(&env) == 0);
	CHECK(mdb_env_set_maxdbs(env, 64) == 0);
	CHECK(mdb_env_open(env, ixdir, MDB_RDONLY, 0600) == 0);
	CHECK(mdb_env_info(env, &info) == 0);
	mdb_env_close(env);
	return info.me_last_txnid;
}

/* A pack of many blobs is indexed a few thousand blobs per transaction: LMDB
 * holds a copy of each page a transaction changes, and with random IDs that is
 * a leaf per blob, so one transaction for a pack of a hundred thousand small
 * blobs held most of a large index in memory. The pack's record comes last. */
static void test_index__add_pack_in_batches(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(20000, 71);
	struct cairn_id pack = mkid(0x91, 1);
	struct cairn_loc loc;
	uint64_t size = 0;

	cairn_index__close(ix_open(false));
	size_t before = last_txnid();
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 12345, e, 20000));
	cairn_index__close(ix);
	CHECK(last_txnid() - before >= 3);
	ix = ix_open(true);
	CHECK_EQ(cairn_index__has_pack(ix, &pack, &size), 1);
	CHECK_EQ(size, 12345);
	for (size_t i = 0; i < 20000; i += 97) {
		CHECK_OK(cairn_index__get(ix, &e[i].id, &loc));
		check_loc(&loc, &pack, &e[i]);
	}
	cairn_index__close(ix);
}

/* ---- threads ------------------------------------------------------------ */

#define NPACKS 30
#define PERPACK 200

struct shared {
	cairn_index *ix;
	struct cairn_pack_entry *base; /* indexed before the threads start */
	struct cairn_pack_entry *e[NPACKS];
	atomic_bool done;
	atomic_int errors;
};

static void *reader(void *arg)
{
	struct shared *s = arg;
	struct cairn_loc loc;
	size_t i = 0;
	uint32_t round = 0;

	while (!atomic_load(&s->done) || round < 2) {
		if (atomic_load(&s->done))
			round++;
		for (size_t k = 0; k < 100; k++, i++) {
			const struct cairn_pack_entry *b = &s->base[i % PERPACK];
			if (cairn_index__get(s->ix, &b->id, &loc) < 0 || loc.offset != b->offset)
				atomic_fetch_add(&s->errors, 1);
			/* being added: either not yet or complete */
			const struct cairn_pack_entry *n = &s->e[i % NPACKS][i % PERPACK];
			int r = cairn_index__get(s->ix, &n->id, &loc);
			if ((r < 0 && r != -ENOENT) || (r == 0 && loc.raw_len != n->raw_len))
				atomic_fetch_add(&s->errors, 1);
		}
	}
	return NULL;
}

static void *writer(void *arg)
{
	struct shared *s = arg;
	for (uint32_t p = 0; p < NPACKS; p++) {
		struct cairn_id pack = mkid(0xc0, p);
		if (cairn_index__add_pack(s->ix, &pack, 1, s->e[p], PERPACK) < 0)
			atomic_fetch_add(&s->errors, 1);
	}
	atomic_store(&s->done, true);
	return NULL;
}

static void test_index__concurrent(void)
{
	struct shared s = { .base = mk_entries(PERPACK, 80) };
	struct cairn_id base = mkid(0xb0, 0);
	pthread_t r[4], w;
	struct counter c = { .ordered = true };

	for (uint32_t p = 0; p < NPACKS; p++)
		s.e[p] = mk_entries(PERPACK, 100 + p);
	s.ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(s.ix, &base, 1, s.base, PERPACK));
	for (size_t i = 0; i < ARRAY_SIZE(r); i++)
		CHECK_EQ(pthread_create(&r[i], NULL, reader, &s), 0);
	CHECK_EQ(pthread_create(&w, NULL, writer, &s), 0);
	CHECK_EQ(pthread_join(w, NULL), 0);
	for (size_t i = 0; i < ARRAY_SIZE(r); i++)
		CHECK_EQ(pthread_join(r[i], NULL), 0);
	CHECK_EQ(atomic_load(&s.errors), 0);
	CHECK_OK(cairn_index__foreach_blob(s.ix, count_blob, &c));
	CHECK_EQ(c.n, (NPACKS + 1) * PERPACK);
	cairn_index__close(s.ix);
	free(s.base);
	for (uint32_t p = 0; p < NPACKS; p++)
		free(s.e[p]);
}

/* Threads opening tables for the first time at once (mdb_dbi_open is serialised). */
static void *aux_worker(void *arg)
{
	cairn_index *ix = *(cairn_index **)arg;
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	char table[32];
	uintptr_t self = (uintptr_t)pthread_self();

	for (int i = 0; i < 20; i++) {
		snprintf(table, sizeof(table), "t%d", i % 5);
		if (cairn_index__aux_put(ix, table, &self, sizeof(self), "abc", 3) < 0 ||
		    cairn_index__aux_get(ix, table, &self, sizeof(self), &v) < 0 || v.len != 3)
			return (void *)1;
	}
	return NULL;
}

static void test_index__concurrent_aux(void)
{
	pthread_t t[4];
	void *ret;
	size_t n = 0;

	cairn_index *ix = ix_open(false);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++)
		CHECK_EQ(pthread_create(&t[i], NULL, aux_worker, &ix), 0);
	for (size_t i = 0; i < ARRAY_SIZE(t); i++) {
		CHECK_EQ(pthread_join(t[i], &ret), 0);
		CHECK(ret == NULL);
	}
	for (int i = 0; i < 5; i++) {
		char table[32];
		snprintf(table, sizeof(table), "t%d", i);
		CHECK_OK(cairn_index__aux_foreach(ix, table, count_aux, &n));
	}
	CHECK_EQ(n, 5 * ARRAY_SIZE(t));
	cairn_index__close(ix);
}

int main(void)
{
	RUN(test_index__open_create);
	RUN(test_index__add_get);
	RUN(test_index__lowest_pack_wins_low_first);
	RUN(test_index__lowest_pack_wins_high_first);
	RUN(test_index__del_pack);
	RUN(test_index__replace_packs);
	RUN(test_index__foreach_order);
	RUN(test_index__snapshots);
	RUN(test_index__clear);
	RUN(test_index__read_only);
	RUN(test_index__other_repository);
	RUN(test_index__unknown_version);
	RUN(test_index__malformed_records);
	RUN(test_index__decode_loc);
	RUN(test_index__aux_tables);
	RUN(test_index__map_full);
	RUN(test_index__add_pack_in_batches);
	RUN(test_index__concurrent);
	RUN(test_index__concurrent_aux);
	return 0;
}
