/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The shared blob and tree cache of cairnfs: hash table + 2Q lists under one mutex. */
#include "cache.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#define LOADING 1
#define READY 0
#define QUEUE_MAX 16
/* 2Q (Johnson and Shasha, VLDB 1994): new entries enter a FIFO ("in") that may
 * hold a quarter of the capacity when the cache is full; the IDs it pushes out
 * are remembered ("ghosts", up to half as many as entries are cached, and at
 * least GHOST_MIN); an ID asked for again while remembered is loaded into the
 * LRU list of the proven ("main"). Hits in "in" change nothing: the next few
 * requests for what one walk just loaded say nothing about its future. So one
 * sequential walk, however long, only cycles "in" and the ghosts, and leaves
 * what is used again and again in "main". */
#define IN_SHARE 4
#define GHOST_MIN 64

struct fs_cache_ent {
	struct cairn_id id;
	void *val;
	size_t bytes;
	unsigned refs; /* protected by lock; the table holds one while the entry is in it */
	int state;     /* protected by lock: LOADING, READY or the load's -errno */
	char *err;     /* protected by lock: message of a failed load */
	bool in_table; /* protected by lock */
	bool hot;      /* protected by lock: loading an ID asked for again: for "main" */
	uint8_t list;  /* protected by lock: IN or MAIN while on a list */
	struct fs_cache_ent *hnext;       /* protected by lock: hash chain */
	struct fs_cache_ent *prev, *next; /* protected by lock: on "in" or "main" (READY) */
};

enum { IN, MAIN };

/* The IDs pushed out of "in", oldest first: a set to look them up, a ring for
 * their order. An ID asked for again leaves the set but not the ring, whose
 * length bounds the set. */
struct ghosts {
	struct cairn_idset set;
	struct cairn_id *ring;
	size_t head, len, cap;
};

struct fs_cache {
	pthread_mutex_t lock;
	pthread_cond_t loaded; /* a load finished */
	pthread_cond_t work;   /* the prefetch queue got an ID, or stop */
	const struct fs_cache_ops *ops;
	void *payload;
	const char *name;
	uint64_t capacity;
	uint64_t bytes;                   /* protected by lock: entries on both lists */
	uint64_t bytes_in;                /* protected by lock: entries on "in" */
	size_t resident;                  /* protected by lock: entries on both lists */
	struct fs_cache_ent **buckets;    /* protected by lock */
	size_t nbuckets, count;           /* protected by lock */
	struct fs_cache_ent lists[2];     /* protected by lock: sentinels, .next the newest */
	struct fs_cache_ent *newest;      /* protected by lock: the last one listed */
	struct ghosts ghosts;             /* protected by lock */
	uint64_t hits, misses;            /* protected by lock */
	struct cairn_id queue[QUEUE_MAX]; /* protected by lock: prefetch ring */
	size_t qhead, qlen;               /* protected by lock */
	bool stop;                        /* protected by lock */
	pthread_t *workers;
	unsigned nworkers;
};

static size_t bucket_of(const struct fs_cache *c, const struct cairn_id *id)
{
	/* IDs are HMAC outputs: any 8 bytes are uniformly distributed. */
	return (size_t)cairn_get_le64(id->b) & (c->nbuckets - 1);
}

static struct fs_cache_ent *find(const struct fs_cache *c, const struct cairn_id *id)
{
	for (struct fs_cache_ent *e = c->buckets[bucket_of(c, id)]; e; e = e->hnext)
		if (memcmp(e->id.b, id->b, CAIRN_ID_SIZE) == 0)
			return e;
	return NULL;
}

static void grow(struct fs_cache *c)
{
	size_t n = c->nbuckets * 2;
	struct fs_cache_ent **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < c->nbuckets; i++) {
		for (struct fs_cache_ent *e = c->buckets[i], *next; e; e = next) {
			next = e->hnext;
			size_t k = (size_t)cairn_get_le64(e->id.b) & (n - 1);
			e->hnext = b[k];
			b[k] = e;
		}
	}
	free(c->buckets);
	c->buckets = b;
	c->nbuckets = n;
}

/* ---- the two lists and the ghosts ------------------------------------------ */

static void list_unlink(struct fs_cache *c, struct fs_cache_ent *e)
{
	e->prev->next = e->next;
	e->next->prev = e->prev;
	e->prev = e->next = NULL;
	c->bytes -= e->bytes;
	c->resident--;
	if (e->list == IN)
		c->bytes_in -= e->bytes;
	if (c->newest == e)
		c->newest = NULL;
}

/* As the newest of list l (IN or MAIN). */
static void list_push(struct fs_cache *c, struct fs_cache_ent *e, uint8_t l)
{
	struct fs_cache_ent *head = &c->lists[l];
	e->next = head->next;
	e->prev = head;
	head->next->prev = e;
	head->next = e;
	e->list = l;
	c->bytes += e->bytes;
	c->resident++;
	if (l == IN)
		c->bytes_in += e->bytes;
	c->newest = e;
}

static size_t ghost_limit(const struct fs_cache *c)
{
	return c->resident / 2 > GHOST_MIN ? c->resident / 2 : GHOST_MIN;
}

/* Remember an ID pushed out of "in"; forget the oldest beyond the limit. Out of
 * memory, it is simply not remembered. */
static void ghost_add(struct fs_cache *c, const struct cairn_id *id)
{
	struct ghosts *g = &c->ghosts;
	size_t limit = ghost_limit(c);
	while (g->len > 0 && g->len >= limit) {
		cairn_idset_del(&g->set, &g->ring[g->head]);
		g->head = (g->head + 1) % g->cap;
		g->len--;
	}
	if (g->len == g->cap) {
		size_t cap = g->cap ? 2 * g->cap : GHOST_MIN;
		struct cairn_id *r = malloc(cap * sizeof(*r));
		if (!r)
			return;
		for (size_t i = 0; i < g->len; i++)
			r[i] = g->ring[(g->head + i) % g->cap];
		free(g->ring);
		g->ring = r;
		g->head = 0;
		g->cap = cap;
	}
	if (cairn_idset_add(&g->set, id, 0) < 0)
		return;
	g->ring[(g->head + g->len) % g->cap] = *id;
	g->len++;
}

/* Whether id was pushed out of "in" lately; it is forgotten either way. */
static bool ghost_take(struct fs_cache *c, const struct cairn_id *id)
{
	return cairn_idset_del(&c->ghosts.set, id) == 1;
}

static void table_insert(struct fs_cache *c, struct fs_cache_ent *e)
{
	if (c->count >= c->nbuckets)
		grow(c);
	size_t k = bucket_of(c, &e->id);
	e->hnext = c->buckets[k];
	c->buckets[k] = e;
	e->in_table = true;
	c->count++;
}

/* Drops the table's reference; returns the entry if that was the last one, for
 * the caller to destroy after unlocking. */
static struct fs_cache_ent *table_remove(struct fs_cache *c, struct fs_cache_ent *e)
{
	struct fs_cache_ent **pp = &c->buckets[bucket_of(c, &e->id)];
	while (*pp != e)
		pp = &(*pp)->hnext;
	*pp = e->hnext;
	e->in_table = false;
	c->count--;
	if (e->prev)
		list_unlink(c, e);
	return --e->refs == 0 ? e : NULL;
}

static void destroy(struct fs_cache *c, struct fs_cache_ent *e)
{
	while (e) {
		struct fs_cache_ent *next = e->hnext;
		if (e->val)
			c->ops->free(e->val);
		free(e->err);
		free(e);
		e = next;
	}
}

/* The next to go: the oldest of "in" while it holds more than its share (or
 * "main" has nothing), else the least recently used of "main"; never the
 * newest, so that an object larger than the capacity (a huge directory's tree)
 * is loaded once, not once per use. NULL when only the newest is left. */
static struct fs_cache_ent *victim(struct fs_cache *c)
{
	struct fs_cache_ent *in = c->lists[IN].prev, *main = c->lists[MAIN].prev;
	if (in == &c->lists[IN] || in == c->newest)
		in = NULL;
	if (main == &c->lists[MAIN] || main == c->newest)
		main = NULL;
	if (in && (c->bytes_in > c->capacity / IN_SHARE || !main))
		return in;
	return main ? main : in;
}

/* Evict until the cache fits. A victim that someone still holds leaves its list
 * but stays findable until put back, so that it is never loaded a second time
 * while its first copy lives (fs_cache_get lists it again). The others are
 * chained through hnext into *dead for destroy() outside the lock; what leaves
 * "in" is remembered as a ghost. */
static void evict(struct fs_cache *c, struct fs_cache_ent **dead)
{
	struct fs_cache_ent *e;
	while (c->bytes > c->capacity && (e = victim(c)) != NULL) {
		bool from_in = e->list == IN;
		if (e->refs > 1) {
			list_unlink(c, e);
			continue;
		}
		if (from_in)
			ghost_add(c, &e->id);
		e = table_remove(c, e);
		if (e) {
			e->hnext = *dead;
			*dead = e;
		}
	}
}

/* READY, in the table, but evicted: only its holders keep it. */
static bool held_only(const struct fs_cache_ent *e)
{
	return e->in_table && e->state == READY && !e->prev;
}

static int wait_loaded(struct fs_cache *c, struct fs_cache_ent *e)
{
	while (e->state == LOADING)
		pthread_cond_wait(&c->loaded, &c->lock);
	return e->state;
}

static int load(struct fs_cache *c, struct fs_cache_ent *e)
{
	void *val = NULL;
	size_t bytes = 0;
	int r = c->ops->load(c->payload, &e->id, &val, &bytes);
	struct fs_cache_ent *dead = NULL;

	pthread_mutex_lock(&c->lock);
	if (r < 0) {
		e->state = r;
		e->err = strdup(cairn_err_msg());
		if (e->in_table)
			dead = table_remove(c, e); /* never the last reference: ours remains */
	} else {
		e->val = val;
		e->bytes = bytes;
		e->state = READY;
		if (e->in_table) {
			list_push(c, e, e->hot ? MAIN : IN);
			evict(c, &dead);
		}
	}
	pthread_cond_broadcast(&c->loaded);
	pthread_mutex_unlock(&c->lock);
	destroy(c, dead);
	return r;
}

int fs_cache_get(struct fs_cache *c, const struct cairn_id *id, struct fs_cache_ent **out)
{
	pthread_mutex_lock(&c->lock);
	struct fs_cache_ent *e = find(c, id);
	if (e) {
		struct fs_cache_ent *dead = NULL;
		e->refs++;
		c->hits++;
		if (e->prev && e->list == MAIN) { /* READY: the most recently used */
			list_unlink(c, e);
			list_push(c, e, MAIN);
		} else if (held_only(e)) { /* evicted while held, asked for again: proven */
			list_push(c, e, MAIN);
			evict(c, &dead);
		}
		int r = wait_loaded(c, e);
		if (r < 0) {
			_cleanup_free_ char *msg = e->err ? strdup(e->err) : NULL;
			pthread_mutex_unlock(&c->lock);
			fs_cache_put(c, e);
			return cairn_err_set(r, "%s", msg ? msg : strerror(-r));
		}
		pthread_mutex_unlock(&c->lock);
		destroy(c, dead);
		*out = e;
		return 0;
	}
	c->misses++;
	e = calloc(1, sizeof(*e));
	if (!e) {
		pthread_mutex_unlock(&c->lock);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	e->id = *id;
	e->state = LOADING;
	e->hot = ghost_take(c, id);
	e->refs = 2; /* the table's and the caller's */
	table_insert(c, e);
	pthread_mutex_unlock(&c->lock);
	int r = load(c, e);
	if (r < 0) {
		fs_cache_put(c, e);
		return r;
	}
	*out = e;
	return 0;
}

struct fs_cache_ent *fs_cache_ref(struct fs_cache *c, struct fs_cache_ent *e)
{
	pthread_mutex_lock(&c->lock);
	e->refs++;
	pthread_mutex_unlock(&c->lock);
	return e;
}

void fs_cache_put(struct fs_cache *c, struct fs_cache_ent *e)
{
	if (!e)
		return;
	pthread_mutex_lock(&c->lock);
	struct fs_cache_ent *dead = NULL;
	if (--e->refs == 1 && held_only(e))
		dead = table_remove(c, e); /* the last holder of an evicted entry */
	else if (e->refs == 0)
		dead = e;
	pthread_mutex_unlock(&c->lock);
	if (dead) {
		dead->hnext = NULL;
		destroy(c, dead);
	}
}

void *fs_cache_val(const struct fs_cache_ent *e)
{
	return e->val;
}

const struct cairn_id *fs_cache_id(const struct fs_cache_ent *e)
{
	return &e->id;
}

void fs_cache_stats(struct fs_cache *c, struct fs_cache_stats *out)
{
	pthread_mutex_lock(&c->lock);
	*out = (struct fs_cache_stats){
		.hits = c->hits, .misses = c->misses, .entries = c->count, .bytes = c->bytes
	};
	pthread_mutex_unlock(&c->lock);
}

/* ---- prefetch ----------------------------------------------------------- */

static bool queued(const struct fs_cache *c, const struct cairn_id *id)
{
	for (size_t i = 0; i < c->qlen; i++)
		if (memcmp(c->queue[(c->qhead + i) % QUEUE_MAX].b, id->b, CAIRN_ID_SIZE) == 0)
			return true;
	return false;
}

/* One lock for the batch, and no lookups once the queue is full: readers wait
 * on this lock, and each lookup is a cache miss or two. */
void fs_cache_prefetch(struct fs_cache *c, const struct cairn_id *ids, size_t n)
{
	if (c->nworkers == 0 || n == 0)
		return;
	pthread_mutex_lock(&c->lock);
	size_t before = c->qlen;
	for (size_t i = 0; i < n && !c->stop && c->qlen < QUEUE_MAX; i++) {
		if (find(c, &ids[i]) || queued(c, &ids[i]))
			continue;
		c->queue[(c->qhead + c->qlen) % QUEUE_MAX] = ids[i];
		c->qlen++;
	}
	if (c->qlen > before)
		pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
}

static void *worker(void *arg)
{
	struct fs_cache *c = arg;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (!c->stop && c->qlen == 0)
			pthread_cond_wait(&c->work, &c->lock);
		if (c->stop)
			break;
		struct cairn_id id = c->queue[c->qhead];
		c->qhead = (c->qhead + 1) % QUEUE_MAX;
		c->qlen--;
		pthread_mutex_unlock(&c->lock);
		struct fs_cache_ent *e;
		/* A failure is not reported here: the reader that needs the blob loads
		 * it again and reports it then. */
		if (fs_cache_get(c, &id, &e) >= 0)
			fs_cache_put(c, e);
		else
			log_debug("%s cache: prefetch failed: %s", c->name, cairn_err_msg());
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- lifecycle ---------------------------------------------------------- */

static int start_workers(struct fs_cache *c, unsigned n)
{
	c->workers = calloc(n, sizeof(*c->workers));
	if (!c->workers)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (; c->nworkers < n; c->nworkers++) {
		int r = pthread_create(&c->workers[c->nworkers], NULL, worker, c);
		if (r != 0)
			return cairn_err_set(-r, "cannot start a prefetch thread: %s", strerror(r));
	}
	return 0;
}

int fs_cache_new(struct fs_cache **out, const char *name, const struct fs_cache_ops *ops,
                 void *payload, uint64_t capacity, unsigned workers)
{
	struct fs_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->nbuckets = 1024;
	c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->loaded, NULL);
	pthread_cond_init(&c->work, NULL);
	for (int l = IN; l <= MAIN; l++)
		c->lists[l].next = c->lists[l].prev = &c->lists[l];
	cairn_idset_init(&c->ghosts.set);
	c->ops = ops;
	c->payload = payload;
	c->name = name;
	c->capacity = capacity;
	int r = c->buckets ? start_workers(c, workers) : cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0) {
		fs_cache_free(c);
		return r;
	}
	*out = c;
	return 0;
}

void fs_cache_free(struct fs_cache *c)
{
	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->stop = true;
	pthread_cond_broadcast(&c->work);
	pthread_mutex_unlock(&c->lock);
	for (unsigned i = 0; i < c->nworkers; i++)
		pthread_join(c->workers[i], NULL);
	free(c->workers);
	/* Every other reference is gone: the entries left belong to the table. */
	for (size_t i = 0; c->buckets && i < c->nbuckets; i++)
		destroy(c, c->buckets[i]);
	free(c->buckets);
	cairn_idset_release(&c->ghosts.set);
	free(c->ghosts.ring);
	pthread_cond_destroy(&c->work);
	pthread_cond_destroy(&c->loaded);
	pthread_mutex_destroy(&c->lock);
	free(c);
}
