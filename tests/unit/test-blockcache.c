/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The block cache of a remote repository (store/cache.c): how many GETs a read
 * makes, over a local storage that counts them. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "cairn/storage.h"
#include "cairn/store.h"
#include "check.h"
#include "cleanup.h"

#define MiB (1ull << 20)

struct fixture {
	cairn_storage *st;
	cairn_cache *c;
	struct cairn_id pack;
	uint64_t size;
	uint8_t *data;
};

/* A pack object of size bytes of a pattern, and a cache over its storage. */
static void setup(struct fixture *f, uint64_t size)
{
	char hex[CAIRN_ID_HEX_SIZE];
	memset(f, 0, sizeof(*f));
	memset(f->pack.b, 0xab, sizeof(f->pack.b));
	f->size = size;
	f->data = malloc(size);
	CHECK(f->data != NULL);
	for (uint64_t i = 0; i < size; i++)
		f->data[i] = (uint8_t)(i * 31 + (i >> 20));
	CHECK_OK(cairn_storage_open(&f->st, check_tmpdir(), NULL));
	cairn_id_hex(hex, &f->pack);
	CHECK_OK(cairn_storage_put(f->st, CAIRN_OBJ_PACK, hex, f->data, size));
	CHECK_OK(cairn_cache__open(&f->c, f->st, 1ull << 30));
}

static void teardown(struct fixture *f)
{
	cairn_cache__close(f->c);
	cairn_storage_close(f->st);
	free(f->data);
}

static uint64_t gets(const struct fixture *f)
{
	struct cairn_storage_stats s;
	cairn_storage_stats(f->st, &s);
	return s.requests[CAIRN_STORAGE_GET];
}

/* Read len bytes at off through the cache as a blob of a type, check them; the
 * GETs it made. */
static uint64_t read_type_at(struct fixture *f, int type, uint64_t off, size_t len)
{
	uint64_t before = gets(f);
	uint8_t *buf = malloc(len);
	CHECK(buf != NULL);
	CHECK_OK(cairn_cache__pread(f->c, &f->pack, f->size, type, buf, len, off));
	CHECK(memcmp(buf, f->data + off, len) == 0);
	free(buf);
	return gets(f) - before;
}

static uint64_t read_at(struct fixture *f, uint64_t off, size_t len)
{
	return read_type_at(f, CAIRN_BLOB_DATA, off, len);
}

/* A read fetches at least 4 MiB, and the rest of the pack when less than 4 MiB
 * of it would be left: never a GET for the last few blocks alone. */
static void test_blockcache__fetch_sizes(void)
{
	struct fixture f;
	setup(&f, 16 * MiB + 100000);
	CHECK_EQ(read_at(&f, 100, 1000), 1); /* blocks 0..3 */
	CHECK_EQ(read_at(&f, 3 * MiB, 1000), 0);
	CHECK_EQ(read_at(&f, 4 * MiB, 1000), 1);      /* 4..7 */
	CHECK_EQ(read_at(&f, 8 * MiB, 1000), 1);      /* 8..11: 12..16 left, 5 blocks */
	CHECK_EQ(read_at(&f, 12 * MiB + 5, 1000), 1); /* 12..16 */
	CHECK_EQ(read_at(&f, 16 * MiB + 50000, 1000), 0);
	teardown(&f);
}

/* A range the read ahead announced: a reader that gets there first takes all
 * of it in one GET, the part before its read too, and the pack's head when it
 * is less than 4 MiB; once forgotten, a read takes 4 MiB again. */
static void test_blockcache__plan(void)
{
	struct fixture f;
	struct cairn_id other;
	setup(&f, 32 * MiB);
	memset(other.b, 0xcd, sizeof(other.b));
	cairn_cache__plan(f.c, &other, 0, 32 * MiB); /* another pack's: no effect */
	cairn_cache__plan(f.c, &f.pack, 2 * MiB, 1000);
	cairn_cache__plan(f.c, &f.pack, 2 * MiB, 12 * MiB); /* replaces the first */
	CHECK_EQ(read_at(&f, 3 * MiB, 1000), 1);            /* blocks 2..13 */
	CHECK_EQ(read_at(&f, 13 * MiB + 7, 1000), 0);
	CHECK_EQ(read_at(&f, 2 * MiB, 1000), 0);          /* before the reader's start */
	CHECK_EQ(read_at(&f, 100, 1000), 0);              /* and the pack's head before it */
	cairn_cache__unplan(f.c, &f.pack, 2 * MiB, 1000); /* not the range: kept */
	CHECK_EQ(read_at(&f, 14 * MiB, 1000), 1);         /* 14..17: past the plan */
	cairn_cache__plan(f.c, &f.pack, 18 * MiB, 10 * MiB);
	cairn_cache__unplan(f.c, &f.pack, 18 * MiB, 10 * MiB);
	CHECK_EQ(read_at(&f, 18 * MiB, 1000), 1); /* 18..21, 4 MiB again */
	cairn_cache__plan(f.c, &f.pack, 22 * MiB, 8 * MiB);
	cairn_cache__unplan(f.c, NULL, 0, 0);
	CHECK_EQ(read_at(&f, 22 * MiB, 1000), 1); /* 22..25 */
	CHECK_EQ(read_at(&f, 26 * MiB, 1000), 1); /* 26..31: 30..31 would be left */
	CHECK_EQ(read_at(&f, 31 * MiB, 1000), 0);
	teardown(&f);
}

/* More packs announced than the table holds: the extra ones are ignored. */
static void test_blockcache__plan_full(void)
{
	struct fixture f;
	setup(&f, 20 * MiB);
	for (uint8_t i = 0; i < 80; i++) {
		struct cairn_id p;
		memset(p.b, i, sizeof(p.b));
		cairn_cache__plan(f.c, &p, 0, 16 * MiB);
	}
	cairn_cache__plan(f.c, &f.pack, 0, 16 * MiB);
	CHECK_EQ(read_at(&f, 0, 1000), 1);
	CHECK_EQ(read_at(&f, 4 * MiB, 1000), 1); /* the plan found no room */
	teardown(&f);
}

/* Two ranges of one pack: the walker closed the first (queued for a worker)
 * and grows the second; each keeps its plan. */
static void test_blockcache__plan_two_ranges(void)
{
	struct fixture f;
	setup(&f, 40 * MiB);
	cairn_cache__plan(f.c, &f.pack, 0, 10 * MiB);               /* queued */
	cairn_cache__plan(f.c, &f.pack, 30 * MiB, 1000);            /* opened */
	cairn_cache__plan(f.c, &f.pack, 20 * MiB, 10 * MiB + 1000); /* grown down */
	CHECK_EQ(read_at(&f, 5 * MiB, 1000), 1);                    /* blocks 0..9 */
	CHECK_EQ(read_at(&f, 9 * MiB, 1000), 0);
	CHECK_EQ(read_at(&f, 25 * MiB, 1000), 1); /* 20..30 */
	CHECK_EQ(read_at(&f, 20 * MiB, 1000), 0);
	CHECK_EQ(read_at(&f, 30 * MiB, 1000), 0);
	teardown(&f);
}

/* A pack of trees comes whole at its first miss, wherever the read is: a walk
 * reads its root tree, written last, first. */
static void test_blockcache__trees_whole(void)
{
	struct fixture f;
	setup(&f, 20 * MiB + 5);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 19 * MiB, 1000), 1);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 0, 1000), 0);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 10 * MiB, 1000), 0);
	teardown(&f);
}

/* A larger pack of trees is read as data is, 4 MiB at a time. */
static void test_blockcache__trees_large(void)
{
	struct fixture f;
	setup(&f, 40 * MiB);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 39 * MiB, 1000), 1);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 0, 1000), 1);
	CHECK_EQ(read_type_at(&f, CAIRN_BLOB_TREE, 4 * MiB, 1000), 1);
	teardown(&f);
}

int main(void)
{
	RUN(test_blockcache__fetch_sizes);
	RUN(test_blockcache__plan);
	RUN(test_blockcache__plan_full);
	RUN(test_blockcache__plan_two_ranges);
	RUN(test_blockcache__trees_whole);
	RUN(test_blockcache__trees_large);
	return 0;
}
