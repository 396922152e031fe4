/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for tools/bufpool.c (the ingester's large read buffers) and
 * tools/prewalk.c (the head start of a backup's walk). */
#include "bufpool.h"
#include "prewalk.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "check.h"

/* At most max buffers exist; a given-back one is handed out again. */
static void test_bufpool__reuse(void)
{
	struct bufpool *p = bufpool_new(4096, 2);
	CHECK(p);
	uint8_t *a = bufpool_take(p), *b = bufpool_take(p);
	CHECK(a && b && a != b);
	memset(a, 1, 4096), memset(b, 2, 4096); /* each is size bytes */
	bufpool_give(p, a);
	CHECK(bufpool_take(p) == a);
	bufpool_give(p, a);
	bufpool_give(p, b);
	bufpool_free(p);
	bufpool_free(NULL);
	CHECK(!bufpool_new(16, 0));
}

struct giver {
	struct bufpool *p;
	uint8_t *buf;
	atomic_bool given;
};

static void *give_later(void *arg)
{
	struct giver *g = arg;
	nanosleep(&(struct timespec){ 0, 100 * 1000 * 1000 }, NULL);
	atomic_store(&g->given, true);
	bufpool_give(g->p, g->buf);
	return NULL;
}

/* A take with every buffer out waits for one to come back. */
static void test_bufpool__waits(void)
{
	struct giver g = { .p = bufpool_new(64, 1) };
	pthread_t t;
	CHECK(g.p && (g.buf = bufpool_take(g.p)));
	CHECK_EQ(pthread_create(&t, NULL, give_later, &g), 0);
	uint8_t *again = bufpool_take(g.p);
	CHECK(atomic_load(&g.given));
	CHECK(again == g.buf);
	pthread_join(t, NULL);
	bufpool_give(g.p, again);
	bufpool_free(g.p);
}

struct hammer {
	struct bufpool *p;
	atomic_int out, most;
};

static void *take_give(void *arg)
{
	struct hammer *h = arg;
	for (int i = 0; i < 2000; i++) {
		uint8_t *b = bufpool_take(h->p);
		CHECK(b);
		int now = atomic_fetch_add(&h->out, 1) + 1, most = atomic_load(&h->most);
		while (now > most && !atomic_compare_exchange_weak(&h->most, &most, now))
			;
		b[0] = (uint8_t)i;
		atomic_fetch_sub(&h->out, 1);
		bufpool_give(h->p, b);
	}
	return NULL;
}

/* Eight threads, three buffers: never more than three out at once. */
static void test_bufpool__bound(void)
{
	struct hammer h = { .p = bufpool_new(1024, 3) };
	pthread_t t[8];
	CHECK(h.p);
	for (int i = 0; i < 8; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, take_give, &h), 0);
	for (int i = 0; i < 8; i++)
		pthread_join(t[i], NULL);
	CHECK(atomic_load(&h.most) >= 1 && atomic_load(&h.most) <= 3);
	bufpool_free(h.p);
}

/* A tree of dirs x dirs directories with a file in each, below top. */
static void make_tree(const char *top, int dirs)
{
	char path[PATH_MAX];
	CHECK_EQ(mkdir(top, 0755), 0);
	for (int i = 0; i < dirs; i++) {
		snprintf(path, sizeof(path), "%s/d%d", top, i);
		CHECK_EQ(mkdir(path, 0755), 0);
		for (int j = 0; j < dirs; j++) {
			snprintf(path, sizeof(path), "%s/d%d/e%d", top, i, j);
			CHECK_EQ(mkdir(path, 0755), 0);
			snprintf(path, sizeof(path), "%s/d%d/e%d/f", top, i, j);
			int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0644);
			CHECK(fd >= 0);
			close(fd);
		}
	}
}

/* The head start walks trees, files, missing paths and an unreadable
 * directory, and stops whether or not it is done: nothing leaks, nothing
 * hangs, nothing in the tree changes. */
static void test_prewalk__start_stop(void)
{
	char tree[PATH_MAX / 2], file[PATH_MAX], closed[PATH_MAX];
	struct stat before, after;
	snprintf(tree, sizeof(tree), "%s/tree", check_tmpdir());
	make_tree(tree, 20);
	snprintf(file, sizeof(file), "%s/d0/e0/f", tree);
	snprintf(closed, sizeof(closed), "%s/d1", tree);
	CHECK_EQ(chmod(closed, 0), 0);
	CHECK_EQ(stat(file, &before), 0);
	char *paths[] = { tree, file, (char *)"/nonexistent/cairn-prewalk" };

	prewalk_stop(prewalk_start(paths, 3)); /* stopped at once */
	struct prewalk *p = prewalk_start(paths, 3);
	CHECK(p);
	nanosleep(&(struct timespec){ 0, 200 * 1000 * 1000 }, NULL); /* done by now */
	prewalk_stop(p);
	prewalk_stop(prewalk_start(paths, 0));
	prewalk_stop(NULL);

	CHECK_EQ(stat(file, &after), 0);
	CHECK(before.st_mtim.tv_sec == after.st_mtim.tv_sec &&
	      before.st_mtim.tv_nsec == after.st_mtim.tv_nsec);
	CHECK_EQ(chmod(closed, 0755), 0);
}

int main(void)
{
	RUN(test_bufpool__reuse);
	RUN(test_bufpool__waits);
	RUN(test_bufpool__bound);
	RUN(test_prewalk__start_stop);
	return 0;
}
