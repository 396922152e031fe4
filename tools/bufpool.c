/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "bufpool.h"

#include <pthread.h>
#include <stdlib.h>

struct bufpool {
	pthread_mutex_t lock;
	pthread_cond_t given;
	size_t size;
	unsigned max, made, nfree; /* protected by lock */
	uint8_t **free;            /* nfree buffers given back; protected by lock */
};

struct bufpool *bufpool_new(size_t size, unsigned max)
{
	struct bufpool *p = calloc(1, sizeof(*p));
	if (!p || max == 0 || !(p->free = calloc(max, sizeof(*p->free)))) {
		free(p);
		return NULL;
	}
	p->size = size;
	p->max = max;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->given, NULL);
	return p;
}

uint8_t *bufpool_take(struct bufpool *p)
{
	uint8_t *buf = NULL;
	pthread_mutex_lock(&p->lock);
	while (p->nfree == 0 && p->made == p->max)
		pthread_cond_wait(&p->given, &p->lock);
	if (p->nfree > 0)
		buf = p->free[--p->nfree];
	else
		p->made++;
	pthread_mutex_unlock(&p->lock);
	if (buf || (buf = malloc(p->size)))
		return buf;
	pthread_mutex_lock(&p->lock); /* not made after all: another may try */
	p->made--;
	pthread_cond_signal(&p->given);
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

void bufpool_give(struct bufpool *p, uint8_t *buf)
{
	pthread_mutex_lock(&p->lock);
	p->free[p->nfree++] = buf;
	pthread_cond_signal(&p->given);
	pthread_mutex_unlock(&p->lock);
}

void bufpool_free(struct bufpool *p)
{
	if (!p)
		return;
	for (unsigned i = 0; i < p->nfree; i++)
		free(p->free[i]);
	free(p->free);
	pthread_cond_destroy(&p->given);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
