/* SPDX-License-Identifier: LGPL-2.1-or-later */
#include "prewalk.h"

#include <dirent.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* Threads waiting on the disk: the key's derivation takes one core meanwhile. */
#define THREADS 2
/* Directories waiting to be listed; when full, subdirectories are skipped (a
 * hint needs no completeness). */
#define STACK_MAX 4096

struct prewalk {
	pthread_mutex_t lock;
	pthread_cond_t more;
	char *stack[STACK_MAX]; /* protected by lock */
	size_t n;               /* protected by lock */
	unsigned busy;          /* threads listing a directory; protected by lock */
	atomic_bool stop;
	pthread_t tid[THREADS];
	int started;
};

static void push(struct prewalk *p, char *path)
{
	pthread_mutex_lock(&p->lock);
	if (p->n < STACK_MAX) {
		p->stack[p->n++] = path;
		path = NULL;
		pthread_cond_signal(&p->more);
	}
	pthread_mutex_unlock(&p->lock);
	free(path);
}

/* The next directory, or NULL when stopped or when no thread can find more. */
static char *pop(struct prewalk *p)
{
	char *path = NULL;
	pthread_mutex_lock(&p->lock);
	p->busy--;
	while (!p->n && p->busy && !atomic_load(&p->stop))
		pthread_cond_wait(&p->more, &p->lock);
	if (p->n && !atomic_load(&p->stop)) {
		path = p->stack[--p->n];
		p->busy++;
	} else {
		pthread_cond_broadcast(&p->more); /* the others end too */
	}
	pthread_mutex_unlock(&p->lock);
	return path;
}

static int open_dir(const char *path)
{
	int flags = O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC;
	int fd = open(path, flags | O_NOATIME);
	return fd < 0 ? open(path, flags) : fd; /* O_NOATIME needs ownership */
}

/* Stat every entry of path; queue its subdirectories (on the same device). */
static void list(struct prewalk *p, const char *path)
{
	int fd = open_dir(path);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct stat top, st;
	struct dirent *de;

	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	if (fstat(fd, &top) < 0) {
		closedir(d);
		return;
	}
	while (!atomic_load(&p->stop) && (de = readdir(d))) {
		const char *name = de->d_name;
		char *sub;
		if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0 ||
		    fstatat(fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 || !S_ISDIR(st.st_mode) ||
		    st.st_dev != top.st_dev)
			continue;
		if (asprintf(&sub, "%s/%s", strcmp(path, "/") ? path : "", name) >= 0)
			push(p, sub);
	}
	closedir(d);
}

static void *run(void *arg)
{
	struct prewalk *p = arg;
	char *path;
	pthread_setname_np(pthread_self(), "cairn-prewalk"); /* top -H, tests */
	while ((path = pop(p))) {
		list(p, path);
		free(path);
	}
	return NULL;
}

struct prewalk *prewalk_start(char *const *paths, size_t npaths)
{
	struct prewalk *p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->more, NULL);
	for (size_t i = 0; i < npaths && p->n < STACK_MAX; i++) {
		char *dup = strdup(paths[i]);
		if (dup)
			p->stack[p->n++] = dup;
	}
	p->busy = THREADS; /* each thread's first pop gives its share back */
	while (p->started < THREADS && pthread_create(&p->tid[p->started], NULL, run, p) == 0)
		p->started++;
	if (p->started < THREADS) { /* the missing ones never pop */
		pthread_mutex_lock(&p->lock);
		p->busy -= (unsigned)(THREADS - p->started);
		pthread_cond_broadcast(&p->more);
		pthread_mutex_unlock(&p->lock);
	}
	return p;
}

void prewalk_stop(struct prewalk *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	atomic_store(&p->stop, true);
	pthread_cond_broadcast(&p->more);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->started; i++)
		pthread_join(p->tid[i], NULL);
	while (p->n)
		free(p->stack[--p->n]);
	pthread_cond_destroy(&p->more);
	pthread_mutex_destroy(&p->lock);
	free(p);
}
