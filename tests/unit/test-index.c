/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/index.c: the LMDB index (FORMAT.md §7). */
#include "index.h"

#include <lmdb.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

	cairn_index *ix = NULL;
	snprintf(ixdir, sizeof(ixdir), "%s/index", check_tmpdir());
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 1); /* new: to be built */
	CHECK_OK(stat(ixdir, &st));
	CHECK_EQ(st.st_mode & 0777, 0700);
	snprintf(data, sizeof(data), "%s/data.mdb", ixdir);
	CHECK_OK(access(data, F_OK));
	cairn_index__close(ix);
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 0); /* existing: meta matches */
	cairn_index__close(ix);
	CHECK_EQ(cairn_index__open(&ix, ixdir, true, repo_a), 0);
	cairn_index__close(ix);
	cairn_index__close(NULL);
}

/* A damaged copy leaves the index blob by blob, only where the index places it. */
static void test_index__del_blob(void)
{
	cairn_index *ix = ix_open(false);
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(3, 9);
	struct cairn_id pack = mkid(0x52, 0), other = mkid(0x53, 0);
	struct cairn_loc loc;
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1000, e, 3));
	CHECK_EQ(cairn_index__del_blob(ix, &e[1].id, &other), 0); /* placed elsewhere */
	CHECK_OK(cairn_index__get(ix, &e[1].id, &loc));
	CHECK_EQ(cairn_index__del_blob(ix, &e[1].id, &pack), 1);
	CHECK_ERR(cairn_index__get(ix, &e[1].id, &loc), -ENOENT);
	CHECK_EQ(cairn_index__del_blob(ix, &e[1].id, &pack), 0); /* gone already */
	CHECK_OK(cairn_index__get(ix, &e[0].id, &loc));          /* the others stay */
	CHECK_OK(cairn_index__get(ix, &e[2].id, &loc));
	CHECK_EQ(cairn_index__has_pack(ix, &pack, NULL), 1);
	cairn_index__close(ix);
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

/* A blob in a pack a prune is deleting moves to the next pack that holds it,
 * whatever the IDs; without that, the lower ID keeps it. */
static void test_index__doomed(void)
{
	_cleanup_free_ struct cairn_pack_entry *lo_e = mk_entries(3, 12);
	_cleanup_free_ struct cairn_pack_entry *hi_e = mk_entries(3, 13);
	struct cairn_id lo = mkid(0x11, 1), hi = mkid(0x11, 2);
	struct cairn_idset doomed;
	struct cairn_loc loc;

	lo.b[1] = 0x00;
	hi.b[1] = 0xff; /* lo < hi */
	hi_e[0].id = lo_e[0].id;
	cairn_idset_init(&doomed);
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &lo, 1, lo_e, 3));
	cairn_index__set_doomed(ix, &doomed); /* empty: as before */
	CHECK_OK(cairn_index__add_pack(ix, &hi, 2, hi_e, 1));
	CHECK_OK(cairn_index__get(ix, &lo_e[0].id, &loc));
	check_loc(&loc, &lo, &lo_e[0]);
	CHECK_OK(cairn_idset_add(&doomed, &lo, 0));
	CHECK_OK(cairn_index__add_pack(ix, &hi, 2, hi_e, 3));
	CHECK_OK(cairn_index__get(ix, &lo_e[0].id, &loc));
	check_loc(&loc, &hi, &hi_e[0]);
	CHECK_OK(cairn_index__get(ix, &lo_e[1].id, &loc)); /* only in lo: stays */
	check_loc(&loc, &lo, &lo_e[1]);
	/* A doomed pack of a lower ID added later takes no record from one that
	 * stays (a repack's source indexed again from an index file). */
	struct cairn_id lo2 = lo;
	lo2.b[2] ^= 1;
	CHECK_OK(cairn_idset_add(&doomed, &lo2, 0));
	CHECK_OK(cairn_index__add_pack(ix, &lo2, 3, lo_e, 1));
	CHECK_OK(cairn_index__get(ix, &lo_e[0].id, &loc));
	check_loc(&loc, &hi, &hi_e[0]);
	cairn_index__set_doomed(ix, NULL);
	cairn_index__close(ix);
	cairn_idset_release(&doomed);
}

/* A rebuild in one txn: the packs and blobs are exactly add's; snapshots and
 * state tables stay. */
static void test_index__reset_packs(void)
{
	_cleanup_free_ struct cairn_pack_entry *a_e = mk_entries(30, 14);
	_cleanup_free_ struct cairn_pack_entry *c_e = mk_entries(20, 15);
	struct cairn_id a = mkid(0x12, 1), c = mkid(0x12, 3), snap = mkid(0x12, 9);
	struct counter cnt = { .ordered = true };
	struct snaps got = { 0 };
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	struct cairn_loc loc;

	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &a, 1, a_e, 30));
	CHECK_OK(cairn_index__add_snapshot(ix, &snap, 5));
	CHECK_OK(cairn_index__aux_put(ix, "t", "k", 1, "v", 1));
	struct cairn_index_pack add = { c, 3, c_e, 20 };
	CHECK_OK(cairn_index__reset_packs(ix, &add, 1));
	CHECK_EQ(cairn_index__has_pack(ix, &a, NULL), 0);
	CHECK_EQ(cairn_index__has_pack(ix, &c, NULL), 1);
	CHECK_ERR(cairn_index__get(ix, &a_e[0].id, &loc), -ENOENT);
	CHECK_OK(cairn_index__get(ix, &c_e[19].id, &loc));
	check_loc(&loc, &c, &c_e[19]);
	cnt.pack = c;
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &cnt));
	CHECK_EQ(cnt.n, 20);
	CHECK_EQ(cnt.in_pack, 20);
	CHECK_OK(cairn_index__foreach_snapshot(ix, collect_snap, &got));
	CHECK_EQ(got.n, 1);
	CHECK_OK(cairn_index__aux_get(ix, "t", "k", 1, &v));
	CHECK_OK(cairn_index__reset_packs(ix, NULL, 0));
	CHECK_EQ(cairn_index__has_pack(ix, &c, NULL), 0);
	cairn_index__close(ix);
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

/* Write behind the index's back, with LMDB directly: put one record (or delete
 * every record of key k when v is NULL) in db, created with flags if missing. */
static void poke_flags(const char *db, unsigned flags, const void *k, size_t klen, const void *v,
                       size_t vlen)
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val kv = { klen, (void *)k }, vv = { vlen, (void *)v };

	CHECK_EQ(mdb_env_create(&env), 0);
	CHECK_EQ(mdb_env_set_maxdbs(env, 64), 0);
	CHECK_EQ(mdb_env_open(env, ixdir, 0, 0600), 0);
	CHECK_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ(mdb_dbi_open(txn, db, flags, &dbi), 0);
	if (v)
		CHECK_EQ(mdb_put(txn, dbi, &kv, &vv, 0), 0);
	else
		CHECK_EQ(mdb_del(txn, dbi, &kv, NULL), 0);
	CHECK_EQ(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void poke(const char *db, const void *k, size_t klen, const void *v, size_t vlen)
{
	poke_flags(db, 0, k, klen, v, vlen);
}

/* An index of layout 1 (FORMAT.md §7 before the pack numbers): 32-byte blob
 * keys with 45-byte values, 12-byte pack records, and a state table. */
static void make_v1_index(const struct cairn_pack_entry *e, size_t n, const struct cairn_id *pack)
{
	uint8_t v1[4] = { 1, 0, 0, 0 }, rec[CAIRN_LOC_SIZE], prec[12] = { 0 };
	CHECK_OK(cairn_mkdir_p(ixdir, 0700));
	poke_flags("meta", MDB_CREATE, "version", 7, v1, 4);
	poke("meta", "repo-id", 7, repo_a, sizeof(repo_a));
	for (size_t i = 0; i < n; i++) {
		struct cairn_loc loc = { *pack, e[i].offset, e[i].stored_len, e[i].raw_len,
			                 e[i].type };
		cairn_index__encode_loc(rec, &loc);
		poke_flags("blobs", MDB_CREATE, e[i].id.b, 32, rec, sizeof(rec));
	}
	poke_flags("packs", MDB_CREATE, pack->b, 32, prec, sizeof(prec));
	poke_flags("aux:sync:x", MDB_CREATE, "k", 1, "val", 3);
}

/* FORMAT.md §7: an index of another layout is a cache to rebuild. A writable
 * open empties it (keeping the aux: tables) and says so; a read-only one cannot
 * and fails, naming the fix. */
static void test_index__old_layout_rebuilt(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(20, 55);
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	struct cairn_id pack = mkid(0x55, 0);
	struct cairn_loc loc;
	struct counter c = { .ordered = true };
	cairn_index *ix = NULL;

	snprintf(ixdir, sizeof(ixdir), "%s/index", check_tmpdir());
	make_v1_index(e, 20, &pack);
	CHECK_ERR(cairn_index__open(&ix, ixdir, true, repo_a), -EPROTO);
	CHECK(strstr(cairn_err_msg(), "layout version 1") != NULL);
	CHECK(strstr(cairn_err_msg(), "rebuild-index") != NULL);
	CHECK_ERR(cairn_index__open(&ix, ixdir, false, repo_b), -EBADMSG); /* not ours */
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 1);
	CHECK_ERR(cairn_index__get(ix, &e[0].id, &loc), -ENOENT);
	CHECK_EQ(cairn_index__has_pack(ix, &pack, NULL), 0);
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_EQ(c.n, 0);
	CHECK_OK(cairn_index__aux_get(ix, "sync:x", "k", 1, &v));
	CHECK(v.len == 3 && memcmp(v.data, "val", 3) == 0);
	/* what a rebuild does next */
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 20));
	CHECK_OK(cairn_index__get(ix, &e[19].id, &loc));
	check_loc(&loc, &pack, &e[19]);
	cairn_index__close(ix);
	CHECK_EQ(cairn_index__open(&ix, ixdir, true, repo_a), 0);
	CHECK_OK(cairn_index__get(ix, &e[0].id, &loc));
	cairn_index__close(ix);
}

static void test_index__unknown_version(void)
{
	uint8_t v9[4] = { 9, 0, 0, 0 }, v2[4] = { 2, 0, 0, 0 };
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(3, 56);
	struct cairn_id pack = mkid(0x56, 0);
	struct cairn_loc loc;
	cairn_index *ix = ix_open(false);

	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 3));
	cairn_index__close(ix);
	poke("meta", "version", 7, v9, 4); /* a later cairn's: read-only cannot use it */
	CHECK_ERR(cairn_index__open(&ix, ixdir, true, repo_a), -EPROTO);
	CHECK(strstr(cairn_err_msg(), "layout version 9") != NULL);
	poke("meta", "version", 7, v2, 3); /* malformed */
	CHECK_ERR(cairn_index__open(&ix, ixdir, true, repo_a), -EPROTO);
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 1); /* writable: starts afresh */
	CHECK_ERR(cairn_index__get(ix, &e[0].id, &loc), -ENOENT);
	cairn_index__close(ix);
	ix = ix_open(true);
	cairn_index__close(ix);
}

/* Replace the record of e's blob in `blobs` with raw bytes. */
static void poke_blob(const struct cairn_pack_entry *e, const uint8_t rec[CAIRN_INDEX_REC_SIZE])
{
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_cursor *cur;
	uint8_t probe[CAIRN_INDEX_REC_SIZE] = { 0 };
	MDB_val k = { 1, (void *)"b" }, v = { sizeof(probe), probe };

	memcpy(probe, e->id.b, 32);
	CHECK_EQ(mdb_env_create(&env), 0);
	CHECK_EQ(mdb_env_set_maxdbs(env, 64), 0);
	CHECK_EQ(mdb_env_open(env, ixdir, 0, 0600), 0);
	CHECK_EQ(mdb_txn_begin(env, NULL, 0, &txn), 0);
	CHECK_EQ(mdb_dbi_open(txn, "blobs", 0, &dbi), 0);
	CHECK_EQ(mdb_cursor_open(txn, dbi, &cur), 0);
	CHECK_EQ(mdb_cursor_get(cur, &k, &v, MDB_GET_BOTH_RANGE), 0);
	CHECK(memcmp(v.mv_data, e->id.b, 32) == 0);
	CHECK_EQ(mdb_cursor_del(cur, 0), 0);
	mdb_cursor_close(cur);
	k = (MDB_val){ 1, (void *)"b" };
	v = (MDB_val){ CAIRN_INDEX_REC_SIZE, (void *)rec };
	CHECK_EQ(mdb_put(txn, dbi, &k, &v, 0), 0);
	CHECK_EQ(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
}

static void test_index__malformed_records(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(3, 60);
	struct cairn_id pack = mkid(0x70, 0);
	struct counter c = { .ordered = true };
	struct cairn_loc loc;
	uint8_t rec[CAIRN_PACKREC_SIZE] = { 0 }, brec[CAIRN_INDEX_REC_SIZE];
	struct cairn_index_rec bad = { e[1].id, 1, 8, 41, 0, 7 }; /* blob type 7 */

	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 3));
	cairn_index__close(ix);
	cairn_index__encode_rec(brec, &bad);
	poke_blob(&e[1], brec);
	poke("packs", pack.b, 32, rec, CAIRN_PACKREC_SIZE - 1);
	ix = ix_open(true);
	CHECK_OK(cairn_index__get(ix, &e[0].id, &loc));
	CHECK_ERR(cairn_index__get(ix, &e[1].id, &loc), -EBADMSG);
	CHECK_ERR(cairn_index__foreach_blob(ix, count_blob, &c), -EBADMSG);
	CHECK_ERR(cairn_index__has_pack(ix, &pack, NULL), -EBADMSG);
	CHECK_ERR(cairn_index__foreach_pack(ix, count_pack, &c), -EBADMSG);
	cairn_index__close(ix);
	/* a record naming a pack number the index lacks */
	bad = (struct cairn_index_rec){ e[1].id, 99, 8, 41, 0, CAIRN_BLOB_DATA };
	cairn_index__encode_rec(brec, &bad);
	poke_blob(&e[1], brec);
	ix = ix_open(true);
	CHECK_ERR(cairn_index__get(ix, &e[1].id, &loc), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "pack number 99") != NULL);
	cairn_index__close(ix);
	/* a rewrite of the pack replaces the malformed records */
	ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 1, e, 3));
	CHECK_EQ(cairn_index__has_pack(ix, &pack, NULL), 1);
	for (size_t i = 0; i < 3; i++) {
		CHECK_OK(cairn_index__get(ix, &e[i].id, &loc));
		check_loc(&loc, &pack, &e[i]);
	}
	c = (struct counter){ .ordered = true };
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_EQ(c.n, 3);
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

/* The `blobs` record of layout 2: the type in the raw length's top bits. */
static void test_index__decode_rec(void)
{
	struct cairn_index_rec in = { mkid(0x81, 0), 7, 8, 41, CAIRN_TREE_MAX, CAIRN_BLOB_TREE },
	                       out;
	uint8_t rec[CAIRN_INDEX_REC_SIZE + 1], bad[CAIRN_INDEX_REC_SIZE];

	cairn_index__encode_rec(rec, &in);
	CHECK(memcmp(rec, in.id.b, 32) == 0);
	CHECK_EQ(cairn_get_le32(rec + 32), 7);
	CHECK_EQ(cairn_get_le32(rec + 44), CAIRN_TREE_MAX | 2u << 30);
	CHECK_OK(cairn_index__decode_rec(&out, rec, CAIRN_INDEX_REC_SIZE));
	CHECK(memcmp(&out.id, &in.id, 32) == 0 && out.packno == 7 && out.offset == 8 &&
	      out.stored_len == 41 && out.raw_len == CAIRN_TREE_MAX && out.type == in.type);
	static const size_t sizes[] = { 0, 45, 47, 49 };
	for (size_t i = 0; i < ARRAY_SIZE(sizes); i++)
		CHECK_ERR(cairn_index__decode_rec(&out, rec, sizes[i]), -EBADMSG);
	struct {
		uint32_t no, off, slen, word;
		int want;
	} v[] = {
		{ 0, 8, 41, 1u << 30, -EBADMSG },                        /* no pack number 0 */
		{ 1, 8, 41, 0, -EBADMSG },                               /* type 0 */
		{ 1, 8, 41, 3u << 30, -EBADMSG },                        /* type 3 */
		{ 1, 8, 41, (CAIRN_TREE_MAX + 1) | 1u << 30, -EBADMSG }, /* too large */
		{ 1, 7, 41, 1u << 30, -EBADMSG },                        /* inside the magic */
		{ 1, UINT32_MAX - 40, 41, 1u << 30, -EBADMSG },          /* past 2^32 - 1 */
		{ UINT32_MAX, UINT32_MAX - 41, 41, 5 | 1u << 30, 0 },
	};
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		memcpy(bad, rec, sizeof(bad));
		cairn_le32(bad + 32, v[i].no);
		cairn_le32(bad + 36, v[i].off);
		cairn_le32(bad + 40, v[i].slen);
		cairn_le32(bad + 44, v[i].word);
		out.offset = 1;
		CHECK_ERR(cairn_index__decode_rec(&out, bad, sizeof(bad)), v[i].want);
		CHECK_EQ(out.offset, v[i].want ? 1 : v[i].off);
	}
	CHECK_EQ(out.raw_len, 5);
	CHECK_EQ(out.type, CAIRN_BLOB_DATA);
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

/* Changes made in one txn: all or none; a pack's mark goes in with it. */
static void test_index__aux_apply(void)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(9000, 7);
	struct cairn_id big = mkid(0x70, 1), small = mkid(0x70, 2), bad = mkid(0x70, 3);
	struct cairn_loc loc;
	cairn_index *ix = ix_open(false);

	struct cairn_index_aux_op ops[5] = {
		{ "t", "a", 1, 0, 1, "one", 3 },
		{ "t", "b", 1, 0, 1, "", 0 },
		{ "never", "x", 1, 0, 1, NULL, 0 }, /* a delete from no table */
	};
	CHECK_OK(cairn_index__aux_apply(ix, ops, 3));
	CHECK_OK(cairn_index__aux_get(ix, "t", "a", 1, &v));
	CHECK(v.len == 3 && memcmp(v.data, "one", 3) == 0);
	CHECK_OK(cairn_index__aux_get(ix, "t", "b", 1, &v));
	CHECK_EQ(v.len, 0);
	/* one bad op: none of them */
	ops[0] = (struct cairn_index_aux_op){ "t", "c", 1, 0, 1, "c", 1 };
	ops[1] = (struct cairn_index_aux_op){ "t", "ab", 2, 1, 1, NULL, 0 };
	ops[2] = (struct cairn_index_aux_op){ "t", "", 0, 0, 1, "x", 1 };
	CHECK_ERR(cairn_index__aux_apply(ix, ops, 3), -EINVAL);
	CHECK_ERR(cairn_index__aux_get(ix, "t", "c", 1, &v), -ENOENT);
	CHECK_OK(cairn_index__aux_get(ix, "t", "a", 1, &v));
	CHECK_ERR(cairn_index__aux_apply(ix, ops, CAIRN_INDEX_AUX_OPS_MAX + 1), -EINVAL);
	/* keys "a" and "b", stride 1, deleted together */
	CHECK_OK(cairn_index__aux_apply(ix, &ops[1], 1));
	struct cairn_index_aux_op both = {
		.table = "t", .k = "ab", .klen = 1, .stride = 1, .n = 2
	};
	CHECK_OK(cairn_index__aux_apply(ix, &both, 1));
	CHECK_ERR(cairn_index__aux_get(ix, "t", "a", 1, &v), -ENOENT);
	CHECK_ERR(cairn_index__aux_get(ix, "t", "b", 1, &v), -ENOENT);

	/* in batches (over 8192 entries) and in one txn */
	struct cairn_index_aux_op mark = { "m", big.b, 32, 0, 1, "big", 3 };
	CHECK_OK(cairn_index__add_pack_with(ix, &big, 1, e, 9000, &mark));
	CHECK_OK(cairn_index__aux_get(ix, "m", big.b, 32, &v));
	CHECK_OK(cairn_index__get(ix, &e[8999].id, &loc));
	mark = (struct cairn_index_aux_op){ "m", small.b, 32, 0, 1, "small", 5 };
	CHECK_OK(cairn_index__add_pack_with(ix, &small, 1, e, 3, &mark));
	CHECK_OK(cairn_index__aux_get(ix, "m", small.b, 32, &v));
	CHECK(v.len == 5 && memcmp(v.data, "small", 5) == 0);
	/* a pack refused leaves no mark */
	mark = (struct cairn_index_aux_op){ "m", bad.b, 32, 0, 1, "bad", 3 };
	CHECK_ERR(cairn_index__add_pack_with(ix, &bad, 1, e, CAIRN_PACK_MAX_ENTRIES + 1, &mark),
	          -EINVAL);
	CHECK_ERR(cairn_index__aux_get(ix, "m", bad.b, 32, &v), -ENOENT);
	cairn_index__close(ix);
}

/* ---- a full map, size, compaction --------------------------------------- */

/* npacks packs of per entries each, every blob new, one txn per pack as a backup
 * writes them. The pack IDs are mkid(tag, p). */
static int add_new_packs(cairn_index *ix, uint8_t tag, uint32_t npacks, size_t per)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(per, tag);
	int r = 0;
	for (uint32_t p = 0; r >= 0 && p < npacks; p++) {
		struct cairn_id pack = mkid(tag, p);
		for (size_t i = 0; i < per; i++) {
			e[i].id.b[31] = (uint8_t)p; /* new blobs in each pack */
			e[i].id.b[30] = (uint8_t)(p >> 8);
		}
		r = cairn_index__add_pack(ix, &pack, 1, e, per);
	}
	return r;
}

/* Every blob of add_new_packs(tag, npacks, per) is where it was put. */
static void check_new_packs(cairn_index *ix, uint8_t tag, uint32_t npacks, size_t per)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(per, tag);
	struct cairn_loc loc;
	for (uint32_t p = 0; p < npacks; p++) {
		struct cairn_id pack = mkid(tag, p);
		for (size_t i = 0; i < per; i += 7) {
			e[i].id.b[31] = (uint8_t)p;
			e[i].id.b[30] = (uint8_t)(p >> 8);
			CHECK_OK(cairn_index__get(ix, &e[i].id, &loc));
			check_loc(&loc, &pack, &e[i]);
		}
	}
}

static off_t data_size(void)
{
	char data[600];
	struct stat st;
	snprintf(data, sizeof(data), "%s/data.mdb", ixdir);
	CHECK_OK(stat(data, &st));
	return st.st_size;
}

/* A full map is not a full disk: it grows (doubling) and the write goes in. */
static void test_index__map_grows(void)
{
	cairn_index__set_map_size(1u << 20);
	cairn_index *ix = ix_open(false);
	cairn_index__set_map_size(0);
	CHECK_OK(add_new_packs(ix, 0x90, 100, 2000)); /* 200,000 blobs: > 8 MiB */
	CHECK(data_size() > (8 << 20));
	check_new_packs(ix, 0x90, 100, 2000);
	cairn_index__close(ix);
	cairn_index__set_map_size(1u << 20); /* smaller than the file: LMDB takes the file's */
	ix = ix_open(false);
	cairn_index__set_map_size(0);
	CHECK_OK(add_new_packs(ix, 0x91, 10, 2000));
	check_new_packs(ix, 0x90, 100, 2000);
	cairn_index__close(ix);
}

/* Another process that has the index open (cairnfs) with a smaller map sees the
 * file grown past it (MDB_MAP_RESIZED) and adopts the new size. */
/* The child of test_index__map_grows_other_process: opens the index with a
 * small map, and once the parent has grown it, finds what the parent added. */
static bool read_grown(int ready, int go)
{
	cairn_index *ro = NULL;
	char b = 0;
	cairn_index__set_map_size(1u << 20);
	bool ok = cairn_index__open(&ro, ixdir, true, repo_a) >= 0;
	ok = ok && write(ready, "r", 1) == 1 && read(go, &b, 1) == 1;
	struct cairn_pack_entry *e = mk_entries(2000, 0x93);
	struct cairn_loc loc;
	for (uint32_t p = 0; ok && p < 40; p += 13) {
		e[1999].id.b[31] = (uint8_t)p;
		e[1999].id.b[30] = (uint8_t)(p >> 8);
		ok = cairn_index__get(ro, &e[1999].id, &loc) == 0 && loc.offset == e[1999].offset;
	}
	if (!ok)
		fprintf(stderr, "child: %s\n", cairn_err_msg());
	free(e);
	cairn_index__close(ro);
	return ok;
}

static void test_index__map_grows_other_process(void)
{
	int ready[2], go[2];
	char b = 0;

	CHECK_OK(pipe(ready));
	CHECK_OK(pipe(go));
	cairn_index *ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0x92, 1, 100));
	cairn_index__close(ix); /* not into the child, which cannot close it */
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0) {
		close(ready[0]), close(go[1]); /* a parent that fails ends the wait */
		_exit(read_grown(ready[1], go[0]) ? 0 : 1);
	}
	close(ready[1]), close(go[0]);
	CHECK_EQ(read(ready[0], &b, 1), 1);
	ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0x93, 40, 2000)); /* 80,000 blobs: past the child's map */
	CHECK(data_size() > (2 << 20));
	CHECK_EQ(write(go[1], "g", 1), 1);
	int status;
	CHECK_EQ(waitpid(pid, &status, 0), pid);
	CHECK(WIFEXITED(status));
	CHECK_EQ(WEXITSTATUS(status), 0);
	cairn_index__close(ix);
	close(ready[0]), close(go[1]);
}

/* FORMAT.md §7, "Size": after blobs went in pack by pack, one txn each as a
 * backup commits them, the file holds at most 100 bytes per blob once closed
 * (layout 1 took 245 to 325: 87-byte records, and free pages, as every txn
 * rewrote most leaves of the tree). */
static void test_index__size_per_blob(void)
{
	cairn_index *ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0xa0, 40, 500));
	off_t open_size = data_size();
	cairn_index__close(ix);
	off_t size = data_size();
	fprintf(stderr, "# 20,000 blobs: %lld bytes open, %lld closed (%.1f per blob)\n",
	        (long long)open_size, (long long)size, size / 20000.0);
	CHECK(size <= 100 * 20000);
	ix = ix_open(true);
	check_new_packs(ix, 0xa0, 40, 500);
	cairn_index__close(ix);
	/* the same blobs give the same size */
	cairn_rm_rf(ixdir);
	ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0xa0, 40, 500));
	cairn_index__close(ix);
	CHECK_EQ(data_size(), size);
}

/* One pack of many small blobs in one txn, as a first backup of small files
 * commits them: records past the last one are appended, so pages end full, not
 * half full as LMDB's split in the middle leaves pages filled in order (the
 * first backup of 100,000 small files took 103 bytes per blob before). */
static void test_index__size_one_big_pack(void)
{
	cairn_index *ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0xa4, 1, 20000));
	cairn_index__close(ix);
	off_t size = data_size();
	fprintf(stderr, "# 20,000 blobs in one pack: %lld bytes (%.1f per blob)\n", (long long)size,
	        size / 20000.0);
	CHECK(size <= 64 * 20000);
	ix = ix_open(true);
	check_new_packs(ix, 0xa4, 1, 20000);
	cairn_index__close(ix);
}

/* A close does not compact under another handle (here a read-only one of the
 * same process, as cairnfs would be), which goes on reading; the next close of a
 * writer alone does. */
static void test_index__compact_only_alone(void)
{
	cairn_index *ix = ix_open(false);
	CHECK_OK(add_new_packs(ix, 0xa1, 1, 10));
	cairn_index *ro = ix_open(true);
	CHECK_OK(add_new_packs(ix, 0xa2, 40, 500));
	off_t full = data_size();
	cairn_index__close(ix);
	CHECK_EQ(data_size(), full);
	check_new_packs(ro, 0xa2, 40, 500);
	ix = ix_open(false); /* two handles, one writer */
	cairn_index__close(ix);
	CHECK_EQ(data_size(), full);
	cairn_index__close(ro);
	ix = ix_open(false);
	cairn_index__close(ix);
	CHECK(data_size() < full / 2);
	ix = ix_open(false);
	check_new_packs(ix, 0xa2, 40, 500);
	CHECK_OK(add_new_packs(ix, 0xa3, 2, 500)); /* and it takes writes */
	cairn_index__close(ix);
}

/* Many packs in one txn: the same records as one txn per pack, the lowest pack
 * ID winning within the batch too. */
static void test_index__add_packs(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(4000, 0xb1);
	struct cairn_index_pack p[8];
	struct cairn_loc loc;

	for (size_t i = 0; i < 8; i++)
		p[i] = (struct cairn_index_pack){ mkid(0xb1, (uint32_t)(8 - i)), 100 + i,
			                          e + 500 * i, 500 };
	p[7].id.b[1] = 0x00; /* p[7] < p[6] */
	p[6].id.b[1] = 0xff;
	e[3999].id = e[3000].id; /* a blob in p[6] and p[7] */
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_packs(ix, p, 8));
	for (size_t i = 0; i < 8; i++) {
		uint64_t size;
		CHECK_EQ(cairn_index__has_pack(ix, &p[i].id, &size), 1);
		CHECK_EQ(size, 100 + i);
	}
	CHECK_OK(cairn_index__get(ix, &e[3000].id, &loc));
	check_loc(&loc, &p[7].id, &e[3999]);
	CHECK_OK(cairn_index__get(ix, &e[10].id, &loc));
	check_loc(&loc, &p[0].id, &e[10]);
	CHECK_OK(cairn_index__add_packs(ix, NULL, 0));
	cairn_index__close(ix);
}

/* A bulk load that did not finish (a crash: the mark stays) leaves an index to
 * start afresh; one that finished is kept. */
static void test_index__bulk(void)
{
	char mark[600];
	cairn_index *ix = ix_open(false);

	snprintf(mark, sizeof(mark), "%s/rebuilding", ixdir);
	CHECK_OK(cairn_index__bulk(ix, true));
	CHECK_OK(access(mark, F_OK));
	CHECK_OK(add_new_packs(ix, 0xb2, 5, 100));
	CHECK_OK(cairn_index__bulk(ix, false));
	CHECK_ERR(access(mark, F_OK), -1);
	cairn_index__close(ix);
	ix = NULL;
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 0);
	check_new_packs(ix, 0xb2, 5, 100);
	CHECK_OK(cairn_index__bulk(ix, true));
	CHECK_OK(add_new_packs(ix, 0xb3, 5, 100));
	cairn_index__close(ix); /* as if it had crashed */
	CHECK_OK(access(mark, F_OK));
	cairn_index *ro = ix_open(true); /* a reader cannot tell, and does not touch it */
	cairn_index__close(ro);
	CHECK_EQ(cairn_index__open(&ix, ixdir, false, repo_a), 1);
	CHECK_ERR(access(mark, F_OK), -1);
	struct counter c = { .ordered = true };
	CHECK_OK(cairn_index__foreach_blob(ix, count_blob, &c));
	CHECK_EQ(c.n, 0);
	cairn_index__close(ix);
}

static int write_inside(const struct cairn_id *id, int64_t time_ns, void *payload)
{
	(void)time_ns;
	return cairn_index__add_snapshot(payload, id, 1);
}

/* A scan's callback runs inside a read txn: writing there could wait forever
 * for a map resize that waits for the scan, so it is refused. */
static void test_index__no_write_in_scan(void)
{
	struct cairn_id s = mkid(0xb4, 0);
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_snapshot(ix, &s, 5));
	CHECK_ERR(cairn_index__foreach_snapshot(ix, write_inside, ix), -EINVAL);
	CHECK_OK(cairn_index__add_snapshot(ix, &s, 6)); /* and the handle is fine */
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

/* With a map of 64 KiB to start with, the writer grows it several times while
 * the readers look blobs up: each resize waits for their reads to end. */
static void test_index__concurrent(void)
{
	struct shared s = { .base = mk_entries(PERPACK, 80) };
	struct cairn_id base = mkid(0xb0, 0);
	pthread_t r[4], w;
	struct counter c = { .ordered = true };

	for (uint32_t p = 0; p < NPACKS; p++)
		s.e[p] = mk_entries(PERPACK, 100 + p);
	cairn_index__set_map_size(64u << 10);
	s.ix = ix_open(false);
	cairn_index__set_map_size(0);
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

/* The last committed txn's ID, read beside the index. */
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

/* A pack of many blobs is indexed in several txns (memory bounded by the batch,
 * not the pack), and is complete afterwards. */
static void test_index__add_pack_in_batches(void)
{
	_cleanup_free_ struct cairn_pack_entry *e = mk_entries(20000, 71);
	struct cairn_id pack = mkid(0x91, 1);
	struct cairn_loc loc;
	uint64_t size = 0;
	struct counter c = { 0 };

	cairn_index__close(ix_open(false));
	size_t before = last_txnid();
	cairn_index *ix = ix_open(false);
	CHECK_OK(cairn_index__add_pack(ix, &pack, 12345, e, 20000));
	cairn_index__close(ix);
	CHECK(last_txnid() - before >= 3);
	ix = ix_open(true);
	CHECK_EQ(cairn_index__has_pack(ix, &pack, &size), 1);
	CHECK_EQ(size, 12345);
	CHECK_OK(cairn_index__foreach_pack(ix, count_pack, &c));
	CHECK_EQ(c.n, 1);
	CHECK_EQ(c.in_pack, 20000);
	for (size_t i = 0; i < 20000; i += 97) {
		CHECK_OK(cairn_index__get(ix, &e[i].id, &loc));
		check_loc(&loc, &pack, &e[i]);
	}
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
	RUN(test_index__doomed);
	RUN(test_index__reset_packs);
	RUN(test_index__foreach_order);
	RUN(test_index__snapshots);
	RUN(test_index__clear);
	RUN(test_index__read_only);
	RUN(test_index__other_repository);
	RUN(test_index__old_layout_rebuilt);
	RUN(test_index__unknown_version);
	RUN(test_index__malformed_records);
	RUN(test_index__decode_loc);
	RUN(test_index__decode_rec);
	RUN(test_index__aux_tables);
	RUN(test_index__aux_apply);
	RUN(test_index__map_grows);
	RUN(test_index__map_grows_other_process);
	RUN(test_index__size_per_blob);
	RUN(test_index__size_one_big_pack);
	RUN(test_index__compact_only_alone);
	RUN(test_index__add_packs);
	RUN(test_index__bulk);
	RUN(test_index__no_write_in_scan);
	RUN(test_index__add_pack_in_batches);
	RUN(test_index__del_blob);
	RUN(test_index__concurrent);
	RUN(test_index__concurrent_aux);
	return 0;
}
