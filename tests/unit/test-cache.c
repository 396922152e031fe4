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
static atomic_uint tag_loads[256]; /* loads by the ID's first byte */

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
	atomic_fetch_add(&tag_loads[id->b[0]], 1);
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
	for (size_t i = 0; i < ARRAY_SIZE(tag_loads); i++)
		atomic_store(&tag_loads[i], 0);
}

/* The object of a held entry is the one of its ID, and alive. */
static void check_val(struct fs_cache_ent *e, uint8_t tag)
{
	struct obj *o = fs_cache_val(e);
	CHECK_EQ(atomic_load(&o->mark), LIVE);
	CHECK_EQ(o->tag, tag);
	CHECK_EQ(fs_cache_id(e)->b[0], tag);
}

/* The cache's books, under its lock: the two lists hold READY table entries
 * whose sizes add up to bytes (bytes_in for "in"), which stays within the
 * capacity unless one entry is left; the table holds count entries, each with
 * the table's reference; the ghosts are IDs of no cached entry, no more than
 * the ring holds. When settled (no thread between a table removal and its
 * free), every object alive is in the table: none leaked, none freed early. */
static void check_books(struct fs_cache *c, bool settled)
{
	pthread_mutex_lock(&c->lock);
	uint64_t bytes = 0, bytes_in = 0;
	size_t listed = 0, in_table = 0, ready = 0;
	for (uint8_t l = IN; l <= MAIN; l++) {
		for (struct fs_cache_ent *e = c->lists[l].next; e != &c->lists[l]; e = e->next) {
			CHECK(e->in_table && e->state == READY && e->refs >= 1 && e->list == l);
			CHECK(e->next->prev == e);
			bytes += e->bytes;
			bytes_in += l == IN ? e->bytes : 0;
			listed++;
		}
	}
	CHECK_EQ(bytes, c->bytes);
	CHECK_EQ(bytes_in, c->bytes_in);
	CHECK_EQ(listed, c->resident);
	CHECK(c->bytes <= c->capacity || listed == 1);
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct fs_cache_ent *e = c->buckets[i]; e; e = e->hnext) {
			CHECK(e->in_table && e->refs >= 1);
			CHECK_EQ(bucket_of(c, &e->id), i);
			/* Evicted entries stay only while someone holds them. */
			CHECK(e->prev || e->state != READY || e->refs >= 2);
			CHECK(!cairn_idset_has(&c->ghosts.set, &e->id) || e->state == LOADING);
			ready += e->state == READY;
			in_table++;
		}
	}
	CHECK_EQ(in_table, c->count);
	CHECK(c->ghosts.set.count <= c->ghosts.len && c->ghosts.len <= c->ghosts.cap);
	if (settled)
		CHECK_EQ(atomic_load(&live), ready);
	pthread_mutex_unlock(&c->lock);
}

/* Whether the entry of id is cached on list l, under the lock. */
static bool listed_on(struct fs_cache *c, const struct cairn_id *id, uint8_t l)
{
	pthread_mutex_lock(&c->lock);
	struct fs_cache_ent *e = find(c, id);
	bool on = e && e->prev && e->list == l;
	pthread_mutex_unlock(&c->lock);
	return on;
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
	CHECK_OK(fs_cache_get(c, &ib, &b)); /* evicts a from its list */
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
 * ones leave their list but stay valid, found and counted; each is freed
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
	/* Each held object was loaded once; the others at most once per round (30
	 * a round, less the four gets of held[0] that each round makes; a few of
	 * one round stay cached for the next). */
	for (uint8_t i = 1; i <= 5; i++)
		CHECK_EQ(tag_loads[i], 1);
	CHECK(loads <= 5 + 3 * (30 - 4) && loads >= 5 + 3 * (30 - 4) - 6);
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
	/* The put-back entries no list had any more are freed at once. */
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

/* An ID of a walk: its first byte loads (not a multiple of 7), the rest is n. */
static struct cairn_id walk_id(uint64_t n)
{
	struct cairn_id id = { 0 };
	id.b[0] = (uint8_t)(1 + n % 6);
	memcpy(id.b + 1, &n, sizeof(n));
	id.b[9] = 0xee; /* never an oid() */
	return id;
}

static void get_put(struct fs_cache *c, const struct cairn_id *id)
{
	struct fs_cache_ent *e;
	CHECK_OK(fs_cache_get(c, id, &e));
	check_val(e, id->b[0]);
	fs_cache_put(c, e);
}

static void get_put_walk(struct fs_cache *c, uint64_t n)
{
	struct cairn_id id = walk_id(n);
	get_put(c, &id);
}

static bool remembered(struct fs_cache *c, uint64_t n)
{
	struct cairn_id id = walk_id(n);
	return cairn_idset_has(&c->ghosts.set, &id);
}

/* One sequential walk, however long, leaves what was used again and again: a
 * cache of ten, three IDs proven (asked for again after they were pushed out),
 * then a walk of a thousand others, each asked for twice in a row as a listing
 * asks for its tree once per page. With LRU the three were gone. */
static void test_cache__scan_resistant(void)
{
	struct fs_cache *c;
	const struct cairn_id hot[3] = { oid(1), oid(2), oid(3) };
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 10 * OBJ_BYTES, 0));
	reset();
	for (size_t i = 0; i < 3; i++)
		get_put(c, &hot[i]);
	for (uint64_t n = 0; n < 20; n++) /* pushes the three out of "in" */
		get_put_walk(c, n);
	for (size_t i = 0; i < 3; i++) {
		CHECK(!listed_on(c, &hot[i], IN) && !listed_on(c, &hot[i], MAIN));
		get_put(c, &hot[i]); /* remembered: loaded into "main" */
		CHECK(listed_on(c, &hot[i], MAIN));
	}
	check_books(c, true);
	unsigned before = atomic_load(&loads);
	size_t proven = 0;
	for (uint64_t n = 1000; n < 2000; n++) {
		struct cairn_id id = walk_id(n);
		get_put(c, &id);
		get_put(c, &id); /* a hit in "in": says nothing of the future */
		proven += listed_on(c, &id, MAIN);
	}
	CHECK_EQ(atomic_load(&loads), before + 1000);
	check_books(c, true);
	for (size_t i = 0; i < 3; i++)
		get_put(c, &hot[i]);
	CHECK_EQ(atomic_load(&loads), before + 1000); /* all three still cached */
	CHECK_EQ(proven, 0);
	/* What the walk pushed out last is remembered: asked for again, it is
	 * loaded into "main" (proven), where the walk's own hits never put it. */
	for (uint64_t n = 1980; n < 1990; n++) {
		struct cairn_id id = walk_id(n);
		CHECK(remembered(c, n) && !listed_on(c, &id, IN));
		get_put(c, &id);
		CHECK(listed_on(c, &id, MAIN));
	}
	CHECK_EQ(atomic_load(&loads), before + 1010);
	check_books(c, true);
	fs_cache_free(c);
	CHECK_EQ(live, 0);
}

/* The ghosts cost memory for IDs of nothing cached: at most half as many as
 * entries are cached, and GHOST_MIN (64), whatever the length of a walk. */
static void test_cache__ghosts_bounded(void)
{
	struct fs_cache *c;
	CHECK_OK(fs_cache_new(&c, "test", &obj_ops, NULL, 4 * OBJ_BYTES, 0));
	reset();
	for (uint64_t n = 0; n < 5000; n++) {
		get_put_walk(c, n);
		CHECK(c->ghosts.len <= GHOST_MIN && c->ghosts.set.count <= GHOST_MIN);
	}
	CHECK_EQ(c->ghosts.set.count, GHOST_MIN);
	CHECK(c->ghosts.cap <= 2 * GHOST_MIN);
	check_books(c, true);
	/* The newest 64 walked out of "in" are remembered, older ones not. */
	CHECK(remembered(c, 4990) && !remembered(c, 4000));
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
	RUN(test_cache__scan_resistant);
	RUN(test_cache__ghosts_bounded);
	return 0;
}
