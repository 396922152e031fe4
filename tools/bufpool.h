/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A pool of at most N large buffers of one size, made when first needed and
 * handed from thread to thread: a thread that finds all N in use waits for one.
 * The ingester bounds its large reads with it, so that more threads than cores
 * can wait on small reads without each holding a large buffer. */
#ifndef CAIRN_BUFPOOL_H
#define CAIRN_BUFPOOL_H

#include <stddef.h>
#include <stdint.h>

struct bufpool;

/* A pool of at most max (>= 1) buffers of size bytes; NULL when out of memory. */
struct bufpool *bufpool_new(size_t size, unsigned max);
/* A buffer of the pool, waiting for one to be given back if all are taken; NULL
 * when out of memory. */
uint8_t *bufpool_take(struct bufpool *p);
/* Give back a buffer that bufpool_take returned. */
void bufpool_give(struct bufpool *p, uint8_t *buf);
/* Free the pool and its buffers, all of which must have been given back. */
void bufpool_free(struct bufpool *p);

#endif
