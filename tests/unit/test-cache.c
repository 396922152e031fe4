/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The blob and tree cache of cairnfs (fs/cache.c): the size bound, entries evicted
 * while held, refcounts, failed loads, and many threads at once. */
#include "check.h"

#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

/* The cache needs no FUSE session; compiled into this test, whose checks look
 * at its lists and counts under its lock. */
#include "cache.c"

#define LIVE 0x4c495645u
#define DEAD 0xdeadu
#define OBJ_BYTES 60

/* A loaded object: the ID's first byte, and a mark that free() changes, so that
 * a holder sees if its object was freed under it (ASan sees it too). */
struct obj {
	_Atomic unsigned mark;
	uint8_t tag;
};

static atomic_uint loads, live;

static int load_obj(void *payload, const struct cairn_id *id, void **val, size_t *bytes)
{
	(void)payload;
	/* Tags that are multiples of 7 cannot be loaded. */
	if (id->b[0] % 7 == 0) {
		atomic_fetch_add(&loads, 1);
		return cairn_err_set(-EIO, "no such object %u", id->b[0]);
	}
	struct obj *o = malloc(sizeof(*o));
	if (!o)
		return cairn_err_set(-ENOMEM, "out of memory");
	atomic_init(&o->mark, LIVE);
	o->tag = id->b[0];
	*val = o;
	*bytes = OBJ_BYTES;
	atomic_fetch_add(&loads, 1);
	atomic_fetch_add(&live, 1);
	return 0;
}

static void free_obj(void *val)
{
	struct obj *o = val;
	CHECK_EQ(atomic_exchange(&o->mark, DEAD), LIVE); /* freed once */
	atomic_fetch_sub(&live, 1);
	free(o);
}

static const struct fs_cache_ops obj_ops = { .load = load_obj, .free = free_obj };

static struct cairn_id oid(uint8_t tag)
{
	struct cairn_id id;
	memset(id.b, tag, sizeof(id.b));
	return id;
}

static void reset(void)
{
	atomic_store(&loads, 0);
	atomic_store(&live, 0);
}

/* The object of a held entry is the one of its ID, and alive. */
static void check_val(struct fs_cache_ent *e, uint8_t tag)
{
	struct obj *o = fs_cache_val(e);
	CHECK_EQ(atomic_load(&o->mark), LIVE);
	CHECK_EQ(o->tag, tag);
	CHECK_EQ(fs_cache_id(e)->b[0], tag);
}

/* The cache's books, under its lock: the LRU list holds READY table entries
 * whose sizes add up to bytes, which stays within the capacity unless one entry
 * is left; the table holds count entries, each with the table's reference. When
 * settled (no thread between a table removal and its free), every object alive
 * is in the table: none leaked, none freed early. */
static void check_books(struct fs_cache *c, bool settled)
{
	pthread_mutex_lock(&c->lock);
	uint64_t bytes = 0;
	size_t on_lru = 0, in_table = 0, ready = 0;
	for (struct fs_cache_ent *e = c->lru.next; e != &c->lru; e = e->next) {
		CHECK(e->in_table && e->state == READY && e->refs >= 1);
		CHECK(e->next->prev == e);
		bytes += e->bytes;
		on_lru++;
	}
	CHECK_EQ(bytes, c->bytes);
	CHECK(c->bytes <= c->capacity || on_lru == 1);
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct fs_cache_ent *e = c->buckets[i]; e; e = e->hnext) {
			CHECK(e->in_table && e->refs >= 1);
			CHECK_EQ(bucket_of(c, &e->id), i);
			/* Evicted entries stay only while someone holds them. */
			CHECK(e->prev || e->state != READY || e->refs >= 2);
			ready += e->state == READY;
			in_table++;
		}
	}
	CHECK_EQ(in_table, c->count);
	if (settled)
		CHECK_EQ(atomic_load(&live), ready);
	pthread_mutex_unlock(&c->lock);
}

static void test_cache__bounded(void)
{
	struct fs_cache *c;
	struct fs_cache_ent *e;
	struct fs_cache_stats st;
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 100, 0));
	reset();
	for (uint8_t i = 1; i <= 10; i++) {
		struct cairn_id id = oid(i == 7 ? 11 : i);
		CHECK_OK(fs_cache_get(c, &id, &e));
		check_val(e, id.b[0]);
		fs_cache_put(c, e);
		check_books(c, true);
	}
	fs_cache_stats(c, &st);
	CHECK_EQ(loads, 10);
	CHECK_EQ(st.bytes, OBJ_BYTES); /* one 60-byte object fits in 100 */
	CHECK_EQ(st.entries, 1);
	CHECK_EQ(live, 1);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
	/* An object above the capacity stays cached as the newest: used twice,
	 * loaded once. */
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 10, 0));
	reset();
	for (int k = 0; k < 2; k++) {
		struct cairn_id id = oid(8);
		CHECK_OK(fs_cache_get(c, &id, &e));
		fs_cache_put(c, e);
		check_books(c, true);
	}
	CHECK_EQ(loads, 1);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
}

static void test_cache__held(void)
{
	struct fs_cache *c;
	struct fs_cache_ent *a, *a2, *b, *x;
	struct fs_cache_stats st;
	struct cairn_id ia = oid(1), ib = oid(2);
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 100, 0));
	reset();
	CHECK_OK(fs_cache_get(c, &ia, &a)); /* held, like an open directory's tree */
	CHECK_OK(fs_cache_get(c, &ib, &b)); /* evicts a from the LRU */
	fs_cache_stats(c, &st);
	CHECK_EQ(st.bytes, OBJ_BYTES);
	CHECK(!a->prev && a->in_table && a->refs == 2);
	check_books(c, true);
	/* a is still alive: found, not loaded again, and cached again. */
	CHECK_OK(fs_cache_get(c, &ia, &a2));
	CHECK(a2 == a);
	CHECK_EQ(a->refs, 3);
	CHECK_EQ(loads, 2);
	check_val(a, 1);
	fs_cache_put(c, a2);
	fs_cache_put(c, a);
	fs_cache_put(c, b);
	check_books(c, true);
	/* Now b was evicted while held; once put back it is gone for good. */
	CHECK_OK(fs_cache_get(c, &ib, &x));
	CHECK_EQ(loads, 3);
	fs_cache_put(c, x);
	fs_cache_stats(c, &st);
	CHECK_EQ(st.entries, 1);
	CHECK_EQ(st.bytes, OBJ_BYTES);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
}

/* Hold some entries while many others pass through a cache of three: the held
 * ones leave the LRU list but stay valid, found and counted; each is freed
 * once, when its last holder puts it back after it was evicted. */
static void test_cache__evict_while_held(void)
{
	struct fs_cache *c;
	struct fs_cache_ent *held[5], *e, *again;
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 3 * OBJ_BYTES, 0));
	reset();
	for (uint8_t i = 0; i < 5; i++) {
		struct cairn_id id = oid(i + 1);
		CHECK_OK(fs_cache_get(c, &id, &held[i]));
	}
	held[4] = fs_cache_ref(c, held[4]); /* two references by one holder */
	CHECK_EQ(held[4]->refs, 3);
	fs_cache_put(c, held[4]);
	CHECK_EQ(held[4]->refs, 2);
	for (uint8_t round = 0; round < 3; round++) {
		for (uint8_t t = 100; t < 130; t++) {
			struct cairn_id id =
			        oid(t == 105 || t == 112 || t == 119 || t == 126 ? 1 : t);
			CHECK_OK(fs_cache_get(c, &id, &e));
			check_val(e, id.b[0]);
			fs_cache_put(c, e);
			check_books(c, true);
		}
		for (uint8_t i = 0; i < 5; i++) {
			check_val(held[i], i + 1);
			CHECK(held[i]->in_table);
		}
	}
	/* Each held object was loaded once; the others once per round (30 a round,
	 * less the four gets of held[0] that each round makes). */
	CHECK_EQ(loads, 5 + 3 * (30 - 4));
	/* A held entry is found again, not loaded, even when evicted. */
	struct cairn_id id3 = oid(3);
	CHECK(!held[2]->prev);
	CHECK_OK(fs_cache_get(c, &id3, &again));
	CHECK(again == held[2]);
	CHECK(held[2]->prev != NULL); /* cached again */
	fs_cache_put(c, again);
	check_books(c, true);
	unsigned before = live;
	for (uint8_t i = 0; i < 5; i++)
		fs_cache_put(c, held[i]);
	check_books(c, true);
	/* The put-back entries the LRU no longer had are freed at once. */
	struct fs_cache_stats st;
	fs_cache_stats(c, &st);
	CHECK(live < before);
	CHECK_EQ(live, st.entries);
	CHECK(st.bytes <= 3 * OBJ_BYTES);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
}

static void test_cache__fail(void)
{
	struct fs_cache *c;
	struct fs_cache_ent *e;
	struct cairn_id id = oid(14);
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 100, 0));
	reset();
	CHECK_ERR(fs_cache_get(c, &id, &e), -EIO);
	CHECK(strstr(cairn_err_msg(), "no such object 14") != NULL);
	/* Failures are not cached: the next get tries again (prune moved a blob). */
	CHECK_ERR(fs_cache_get(c, &id, &e), -EIO);
	CHECK_EQ(loads, 2);
	struct fs_cache_stats st;
	fs_cache_stats(c, &st);
	CHECK_EQ(st.entries, 0);
	check_books(c, true);
	fs_cache_free(c);
}

/* ---- many threads ---------------------------------------------------------- */

#define THREADS 4
#define ROUNDS 20000
#define KEEP 3 /* entries a thread holds at once */

struct worker_arg {
	struct fs_cache *c;
	uint64_t seed;
	pthread_barrier_t *start;
};

static uint64_t next_rand(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

/* Gets (from 48 IDs, in a cache of 8), holds up to KEEP of them for a while,
 * asks the prefetchers for others. */
static void *hammer(void *p)
{
	struct worker_arg *a = p;
	struct fs_cache_ent *keep[KEEP] = { 0 };
	uint64_t x = a->seed;
	pthread_barrier_wait(a->start);
	for (int i = 0; i < ROUNDS; i++) {
		uint64_t r = next_rand(&x);
		uint8_t tag = (uint8_t)(1 + r % 48);
		struct cairn_id id = oid(tag);
		struct fs_cache_ent *e;
		if (r % 97 == 0) {
			struct cairn_id ids[4] = { oid(tag), oid(tag + 1), oid(tag + 2),
				                   oid(tag + 3) };
			fs_cache_prefetch(a->c, ids, 4);
			continue;
		}
		int rc = fs_cache_get(a->c, &id, &e);
		if (tag % 7 == 0) {
			CHECK_ERR(rc, -EIO);
			char want[32];
			snprintf(want, sizeof(want), "no such object %u", tag);
			CHECK(strcmp(cairn_err_msg(), want) == 0);
			continue;
		}
		CHECK_OK(rc);
		check_val(e, tag);
		/* Another get of an ID this thread holds yields the held entry. */
		for (size_t k = 0; k < KEEP; k++)
			CHECK(!keep[k] || fs_cache_id(keep[k])->b[0] != tag || keep[k] == e);
		size_t slot = (r >> 8) % (KEEP * 2);
		if (slot < KEEP) {
			fs_cache_put(a->c, keep[slot]);
			keep[slot] = e;
		} else {
			fs_cache_put(a->c, e);
		}
		for (size_t k = 0; k < KEEP; k++)
			if (keep[k])
				check_val(keep[k], fs_cache_id(keep[k])->b[0]);
		if (i % 1000 == 0)
			check_books(a->c, false);
	}
	for (size_t k = 0; k < KEEP; k++)
		fs_cache_put(a->c, keep[k]);
	return NULL;
}

static void test_cache__threads(void)
{
	struct fs_cache *c;
	pthread_t t[THREADS];
	struct worker_arg a[THREADS];
	pthread_barrier_t start;
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 8 * OBJ_BYTES, 2));
	reset();
	CHECK_EQ(pthread_barrier_init(&start, NULL, THREADS), 0);
	for (int i = 0; i < THREADS; i++) {
		a[i] = (struct worker_arg){ .c = c,
			                    .seed = 0x1234567 + (uint64_t)i * 7919,
			                    .start = &start };
		CHECK_EQ(pthread_create(&t[i], NULL, hammer, &a[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		CHECK_EQ(pthread_join(t[i], NULL), 0);
	pthread_barrier_destroy(&start);
	/* Wait for the prefetchers: stop them, then nobody holds anything. */
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	c->nworkers = 0;
	check_books(c, true);
	struct fs_cache_stats st;
	fs_cache_stats(c, &st);
	CHECK(st.bytes <= 8 * OBJ_BYTES);
	CHECK_EQ(st.entries, live); /* no held-only entry was left behind */
	CHECK(st.hits > 0 && st.misses > 0);
	/* Each miss loaded once; a hit never loads (two threads missing one ID
	 * load it once: the second waits and counts a hit). */
	CHECK_EQ(st.misses, loads);
	CHECK(st.hits + st.misses >= THREADS * ROUNDS / 2);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
}

int main(void)
{
	RUN(test_cache__bounded);
	RUN(test_cache__held);
	RUN(test_cache__evict_while_held);
	RUN(test_cache__fail);
	RUN(test_cache__threads);
	return 0;
}
