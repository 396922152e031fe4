/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Read ahead for a remote storage (docs/S3.md §5): a walker goes through a tree
 * in the order restore and dump read it and queues the pack ranges its files'
 * blobs lie in; workers fetch them into the block cache on the storage's
 * connections, a bounded number of bytes ahead of what the reader has read. */
#include "repo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"

#define QUEUE 256             /* ranges waiting for a worker */
#define RUN_MAX (20ull << 20) /* one range: a pack of 16 MiB, which ends past it */
#define WINDOW_MAX (256ull << 20)
#define WINDOW_MIN (1ull << 20)
#define WORKERS_MAX 16
#define OPEN_RUNS 32 /* ranges the walker builds at once */
/* The reader waits until the walker is three quarters of the window ahead of it
 * (at most a second): a backup's pack writers fill side by side, so a pack's
 * blobs lie over (writers x pack size) of tree order, some 150 MiB with 8
 * threads. The first packs' ranges are then whole when the reader reaches them,
 * not split into the reader's GETs and the read ahead's. */
#define HEAD_WAIT_MS 1000

struct range {
	struct cairn_id pack;
	uint64_t size; /* the pack's */
	uint64_t off, len;
};

struct cairn_prefetch {
	cairn_repo *repo;
	struct cairn_id root;
	uint64_t window;
	pthread_t walker, workers[WORKERS_MAX];
	unsigned nworkers;
	bool walker_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct range q[QUEUE]; /* protected by mu */
	size_t head, count;    /* protected by mu */
	bool walked, stop;     /* protected by mu */
	bool ahead;            /* protected by mu: the walker has its head start */
	/* The walker's ranges being built, least recently grown first, one per pack: a parallel
	 * backup interleaves its packs in tree order, and a range closed at each
	 * change of pack would be a GET of a few blobs. */
	struct range runs[OPEN_RUNS];
	size_t nruns;
	uint64_t walked_bytes; /* the walker's: data bytes of the ranges built */
	uint64_t head_start;
};

/* A deadline for pthread_cond_timedwait. */
static struct timespec after_ms(long ms)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_nsec += ms % 1000 * 1000000L;
	ts.tv_sec += ms / 1000 + ts.tv_nsec / 1000000000;
	ts.tv_nsec %= 1000000000;
	return ts;
}

static bool stopping(struct cairn_prefetch *pf)
{
	pthread_mutex_lock(&pf->mu);
	bool s = pf->stop;
	pthread_mutex_unlock(&pf->mu);
	return s;
}

/* Queue open range i, once the reader is near enough. */
static void push_run(struct cairn_prefetch *pf, size_t i)
{
	struct range run = pf->runs[i];
	memmove(&pf->runs[i], &pf->runs[i + 1], (pf->nruns - i - 1) * sizeof(run));
	pf->nruns--;
	pthread_mutex_lock(&pf->mu);
	while (!pf->stop && (pf->count == QUEUE ||
	                     pf->walked_bytes > atomic_load(&pf->repo->data_read) + pf->window)) {
		/* The reader's progress is not signalled: look again shortly. */
		struct timespec ts = after_ms(20);
		pthread_cond_timedwait(&pf->cond, &pf->mu, &ts);
	}
	if (!pf->stop) {
		pf->q[(pf->head + pf->count) % QUEUE] = run;
		pf->count++;
		pthread_cond_broadcast(&pf->cond);
	}
	pthread_mutex_unlock(&pf->mu);
}

static void walked(struct cairn_prefetch *pf, uint64_t bytes)
{
	pf->walked_bytes += bytes;
	if (pf->walked_bytes >= pf->head_start && !pf->ahead) {
		pthread_mutex_lock(&pf->mu);
		pf->ahead = true;
		pthread_cond_broadcast(&pf->cond);
		pthread_mutex_unlock(&pf->mu);
	}
}

/* Add one blob's place to its pack's open range, or open another. */
static void want(struct cairn_prefetch *pf, const struct cairn_id *blob)
{
	struct cairn_loc loc;
	uint64_t size;
	if (cairn_repo__lookup_cached(pf->repo, blob, &loc) < 0 || loc.type != CAIRN_BLOB_DATA)
		return; /* the reader will say what is wrong */
	uint64_t end = (uint64_t)loc.offset + loc.stored_len;
	for (size_t i = 0; i < pf->nruns; i++) {
		struct range *r = &pf->runs[i];
		if (cairn_id_cmp(&r->pack, &loc.pack) != 0)
			continue;
		/* Blobs of a pack come out of tree order: parallel workers wrote it. */
		uint64_t lo = loc.offset < r->off ? loc.offset : r->off;
		uint64_t hi = end > r->off + r->len ? end : r->off + r->len;
		if (hi - lo <= RUN_MAX) {
			struct range grown = { r->pack, r->size, lo, hi - lo };
			if (lo != r->off || hi - lo != r->len)
				cairn_cache__plan(pf->repo->cache, &r->pack, lo, hi - lo);
			/* Last used last: the range pushed when all are open is the one
			 * the walk has left longest, not one still growing. */
			memmove(r, r + 1, (pf->nruns - i - 1) * sizeof(*r));
			pf->runs[pf->nruns - 1] = grown;
			walked(pf, loc.stored_len);
			return;
		}
		push_run(pf, i); /* too far from it: a range of its own */
		break;
	}
	if (pf->nruns == OPEN_RUNS)
		push_run(pf, 0);
	if (cairn_index__has_pack(pf->repo->index, &loc.pack, &size) <= 0)
		return;
	pf->runs[pf->nruns++] = (struct range){ loc.pack, size, loc.offset, loc.stored_len };
	cairn_cache__plan(pf->repo->cache, &loc.pack, loc.offset, loc.stored_len);
	walked(pf, loc.stored_len);
}

/* Depth first, entries in name order: the order of restore and dump. */
static void walk(struct cairn_prefetch *pf, const struct cairn_id *tree)
{
	cairn_tree *t = NULL;
	if (stopping(pf) || cairn_repo_tree_load(pf->repo, tree, &t) < 0)
		return;
	for (size_t i = 0; i < cairn_tree_count(t) && !stopping(pf); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		if (n->type == CAIRN_NODE_DIR)
			walk(pf, &n->subtree);
		for (size_t k = 0; k < n->nextents; k++)
			if (!cairn_id_is_zero(&n->extents[k].id))
				want(pf, &n->extents[k].id);
	}
	cairn_tree_free(t);
}

static void *walker(void *arg)
{
	struct cairn_prefetch *pf = arg;
	walk(pf, &pf->root);
	while (pf->nruns)
		push_run(pf, 0);
	pthread_mutex_lock(&pf->mu);
	pf->walked = true;
	pthread_cond_broadcast(&pf->cond);
	pthread_mutex_unlock(&pf->mu);
	return NULL;
}

static void *worker(void *arg)
{
	struct cairn_prefetch *pf = arg;
	for (;;) {
		pthread_mutex_lock(&pf->mu);
		while (!pf->stop && pf->count == 0 && !pf->walked)
			pthread_cond_wait(&pf->cond, &pf->mu);
		if (pf->stop || pf->count == 0) {
			pthread_mutex_unlock(&pf->mu);
			return NULL;
		}
		struct range r = pf->q[pf->head];
		pf->head = (pf->head + 1) % QUEUE;
		pf->count--;
		pthread_cond_broadcast(&pf->cond);
		pthread_mutex_unlock(&pf->mu);
		/* A failure is the reader's to meet and report. */
		if (cairn_cache__fetch(pf->repo->cache, &r.pack, r.size, r.off, r.len) < 0)
			log_debug("read ahead: %s", cairn_err_msg());
		cairn_cache__unplan(pf->repo->cache, &r.pack, r.off, r.len);
	}
}

static void wait_head_start(struct cairn_prefetch *pf)
{
	struct timespec until = after_ms(HEAD_WAIT_MS);
	pthread_mutex_lock(&pf->mu);
	while (!pf->ahead && !pf->walked &&
	       pthread_cond_timedwait(&pf->cond, &pf->mu, &until) != ETIMEDOUT)
		;
	pthread_mutex_unlock(&pf->mu);
}

int cairn_repo_prefetch_start(cairn_repo *repo, const struct cairn_id *root, cairn_prefetch **out)
{
	*out = NULL;
	if (!repo->cache || repo->offline || !repo->index)
		return 0; /* a local storage reads fast enough */
	struct cairn_prefetch *pf = calloc(1, sizeof(*pf));
	if (!pf)
		return cairn_err_set(-ENOMEM, "out of memory");
	pf->repo = repo;
	pf->root = *root;
	pf->window = cairn_cache__budget(repo->cache) / 4;
	pf->window = pf->window > WINDOW_MAX ? WINDOW_MAX : pf->window;
	pf->window = pf->window < WINDOW_MIN ? WINDOW_MIN : pf->window;
	pf->head_start = pf->window / 4 * 3;
	pthread_mutex_init(&pf->mu, NULL);
	pthread_cond_init(&pf->cond, NULL);
	unsigned want = cairn_storage_concurrency(repo->st);
	want = want > WORKERS_MAX ? WORKERS_MAX : want ? want : 1;
	while (pf->nworkers < want &&
	       pthread_create(&pf->workers[pf->nworkers], NULL, worker, pf) == 0)
		pf->nworkers++;
	pf->walker_started = pf->nworkers && pthread_create(&pf->walker, NULL, walker, pf) == 0;
	if (!pf->walker_started) {
		cairn_prefetch_stop(pf);
		return 0; /* no threads: reads go on without read ahead */
	}
	wait_head_start(pf);
	*out = pf;
	return 0;
}

void cairn_prefetch_stop(cairn_prefetch *pf)
{
	if (!pf)
		return;
	pthread_mutex_lock(&pf->mu);
	pf->stop = true;
	pthread_cond_broadcast(&pf->cond);
	pthread_mutex_unlock(&pf->mu);
	if (pf->walker_started)
		pthread_join(pf->walker, NULL);
	for (unsigned i = 0; i < pf->nworkers; i++)
		pthread_join(pf->workers[i], NULL);
	cairn_cache__unplan(pf->repo->cache, NULL, 0, 0); /* ranges never fetched */
	pthread_mutex_destroy(&pf->mu);
	pthread_cond_destroy(&pf->cond);
	free(pf);
}
