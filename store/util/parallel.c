/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Jobs 0..n-1 on a few threads: requests to a remote storage, pack headers. */
#include "cairn/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#define PARALLEL_MAX 64

/* Workers take jobs in order from a shared cursor. The first failure stops the
 * others after their current job; its code and message are kept. */
struct pool {
	size_t n;
	atomic_size_t next;
	atomic_bool stop;
	int (*fn)(size_t i, void *payload);
	void *payload;
	pthread_mutex_t lock;
	int code;       /* protected by lock */
	char msg[1024]; /* protected by lock */
};

static void pool_loop(struct pool *p)
{
	while (!atomic_load(&p->stop)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			return;
		int r = p->fn(i, p->payload);
		if (r >= 0)
			continue;
		pthread_mutex_lock(&p->lock);
		if (p->code == 0) {
			p->code = r;
			snprintf(p->msg, sizeof(p->msg), "%s", cairn_err_msg());
		}
		pthread_mutex_unlock(&p->lock);
		atomic_store(&p->stop, true);
	}
}

static void *pool_worker(void *arg)
{
	pool_loop(arg);
	return NULL;
}

int cairn_parallel(size_t n, unsigned threads, int (*fn)(size_t i, void *payload), void *payload)
{
	struct pool p = { .n = n, .fn = fn, .payload = payload };
	pthread_t tid[PARALLEL_MAX];
	size_t started = 0;
	if (threads > PARALLEL_MAX)
		threads = PARALLEL_MAX;
	if (threads > n)
		threads = (unsigned)n;
	pthread_mutex_init(&p.lock, NULL);
	/* The caller works too, so a thread that cannot start only costs speed. */
	for (; threads > 1 && started < threads - 1; started++)
		if (pthread_create(&tid[started], NULL, pool_worker, &p) != 0)
			break;
	pool_loop(&p);
	for (size_t i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	pthread_mutex_destroy(&p.lock);
	return p.code < 0 ? cairn_err_set(p.code, "%s", p.msg) : 0;
}
