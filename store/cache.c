/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Local caches of a remote storage (docs/S3.md §5): whole small objects, pack
 * headers, and pack blocks read through ranged GETs. */
#include "cache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "pack.h"

#define BLOCK_SIZE (1u << 20) /* unit of the pack caches */
/* A GET for missing blocks fetches at least this much, so the neighbouring blobs
 * of a sequential read come in the same request. */
#define FETCH_MIN (4u << 20)
#define TAIL_GUESS (64u << 10) /* first guess at the size of a pack's header + trailer */
#define TAIL_HDR 16            /* tails/ file: u64 pack size, the pack's first 8 bytes */
#define PACK_MAX (8ull << 30)
/* Ranges the read ahead announces at once (store/prefetch.c): those it builds
 * and those queued for its workers. */
#define PLANS 64
#define META_WHOLE (32u << 20) /* packs of trees up to this size come whole (read_blocks) */

/* Block files opened lately: consecutive blobs mostly lie in one block, and
 * opening its file by its long path cost more than reading the blob. */
#define OPEN_BLOCKS 32
struct open_block {
	struct cairn_id pack;
	uint64_t block;
	bool meta; /* meta/ rather than blocks/ */
	int fd;    /* -1: a free slot */
	uint64_t last_use;
};

struct cairn_cache {
	cairn_storage *st;
	char dir[PATH_MAX - 256]; /* paths below it fit PATH_MAX */
	pthread_mutex_t evict_lock;
	uint64_t budget;
	_Atomic uint64_t used; /* bytes in blocks/ (an estimate between scans) */
	pthread_mutex_t open_lock;
	struct open_block open[OPEN_BLOCKS]; /* protected by open_lock */
	uint64_t uses;                       /* protected by open_lock */
	/* Runs of data blocks being fetched: a reader that needs one waits for the
	 * fetch instead of sending the same GET (a prefetch runs ahead of it). */
	pthread_mutex_t fly_lock;
	pthread_cond_t landed;
	struct flight *flying; /* protected by fly_lock */
	struct plan {
		struct cairn_id pack;
		uint64_t first, last; /* blocks; last < first: a free slot */
	} plans[PLANS];               /* protected by fly_lock */
};

struct flight {
	struct cairn_id pack;
	uint64_t first, last; /* blocks */
	struct flight *next;
};

static int path_of(const cairn_cache *c, char *out, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int path_of(const cairn_cache *c, char *out, size_t size, const char *fmt, ...)
{
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return cairn_err_set(-ENAMETOOLONG, "path too long");
	n = snprintf(out, size, "%s/%s", c->dir, rel);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-ENAMETOOLONG, "path too long") : 0;
}

/* Write a cache file with tmp + rename and no fsync: a torn file has the wrong
 * size or fails authentication, and is fetched again. Errors are ignored. */
static bool store_file(const cairn_cache *c, const char *path, const void *data, size_t len)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return false;
	*slash = '\0';
	if (cairn_mkdir_p(dir, 0700) < 0 || path_of(c, tmp, sizeof(tmp), "tmp/cache.XXXXXX") < 0)
		return false;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return false;
	int r = cairn_write_all(fd, data, len);
	close(fd);
	if (r < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return false;
	}
	return true;
}

/* ---- whole objects --------------------------------------------------------- */

static int object_path(const cairn_cache *c, int kind, const char *name, char *out, size_t size)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	return r < 0 ? r : path_of(c, out, size, "%s", rel);
}

int cairn_cache__get(cairn_cache *c, int kind, const char *name, size_t max, struct cairn_buf *out)
{
	char path[PATH_MAX];
	int r = object_path(c, kind, name, path, sizeof(path));
	if (r < 0)
		return r;
	cairn_buf_release(out);
	if (cairn_file_slurp(path, max, out) >= 0)
		return 0;
	cairn_buf_release(out);
	if ((r = cairn_storage_get(c->st, kind, name, 0, 0, max, out)) < 0)
		return r;
	store_file(c, path, out->data, out->len);
	return 0;
}

void cairn_cache__put(cairn_cache *c, int kind, const char *name, const void *data, size_t len)
{
	char path[PATH_MAX];
	if (object_path(c, kind, name, path, sizeof(path)) >= 0)
		store_file(c, path, data, len);
}

bool cairn_cache__has(cairn_cache *c, int kind, const char *name)
{
	char path[PATH_MAX];
	return object_path(c, kind, name, path, sizeof(path)) >= 0 && access(path, F_OK) == 0;
}

void cairn_cache__drop(cairn_cache *c, int kind, const char *name)
{
	char path[PATH_MAX];
	if (object_path(c, kind, name, path, sizeof(path)) >= 0)
		unlink(path);
}

int cairn_cache__list(cairn_cache *c, int kind, int (*cb)(const char *name, void *payload),
                      void *payload)
{
	char dir[PATH_MAX];
	int r = path_of(c, dir, sizeof(dir), "%s", cairn_obj_kind_name(kind));
	_cleanup_closedir_ DIR *d = r < 0 ? NULL : opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (!cairn_obj_name_ok(kind, de->d_name))
			continue;
		if ((r = cb(de->d_name, payload)) < 0)
			return r;
	}
	return 0;
}

/* ---- the block caches ------------------------------------------------------ */

/* "blocks/ab/<pack>.<n>": evictable data; "meta/ab/<pack>.<n>": trees, kept. */
static int block_path(const cairn_cache *c, const char *sub, const struct cairn_id *pack,
                      uint64_t block, char *out, size_t size)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	return path_of(c, out, size, "%s/%.2s/%s.%llu", sub, hex, hex, (unsigned long long)block);
}

/* ---- open block files ------------------------------------------------------ */

static bool same_block(const struct open_block *o, const struct cairn_id *pack, uint64_t block,
                       bool meta)
{
	return o->fd >= 0 && o->block == block && o->meta == meta &&
	       cairn_id_cmp(&o->pack, pack) == 0;
}

/* A descriptor of its own (to close) for a block file opened lately, or -1. */
static int open_get(cairn_cache *c, const struct cairn_id *pack, uint64_t block, bool meta)
{
	int fd = -1;
	pthread_mutex_lock(&c->open_lock);
	for (size_t i = 0; i < OPEN_BLOCKS && fd < 0; i++)
		if (same_block(&c->open[i], pack, block, meta)) {
			fd = fcntl(c->open[i].fd, F_DUPFD_CLOEXEC, 0);
			c->open[i].last_use = ++c->uses;
		}
	pthread_mutex_unlock(&c->open_lock);
	return fd;
}

/* Remember a copy of fd for block, in place of the least recently used. */
static void open_put(cairn_cache *c, const struct cairn_id *pack, uint64_t block, bool meta, int fd)
{
	int copy = fcntl(fd, F_DUPFD_CLOEXEC, 0);
	if (copy < 0)
		return;
	pthread_mutex_lock(&c->open_lock);
	struct open_block *v = &c->open[0];
	for (size_t i = 1; i < OPEN_BLOCKS; i++)
		if (c->open[i].fd < 0 || (v->fd >= 0 && c->open[i].last_use < v->last_use))
			v = &c->open[i];
	if (v->fd >= 0)
		close(v->fd);
	*v = (struct open_block){ *pack, block, meta, copy, ++c->uses };
	pthread_mutex_unlock(&c->open_lock);
}

/* A block file that is replaced or removed is not read through an old descriptor. */
static void open_forget(cairn_cache *c, const struct cairn_id *pack)
{
	pthread_mutex_lock(&c->open_lock);
	for (size_t i = 0; i < OPEN_BLOCKS; i++)
		if (c->open[i].fd >= 0 && cairn_id_cmp(&c->open[i].pack, pack) == 0) {
			close(c->open[i].fd);
			c->open[i].fd = -1;
		}
	pthread_mutex_unlock(&c->open_lock);
}

/* 1 if the cache has block b of pack (want bytes, at pack offset start) whole, and
 * the part of it that overlaps [off, off + len) is in buf; 0 if not. Only that
 * part is read: a small blob costs a small read, not a block's. */
static int load_block(cairn_cache *c, const char *sub, const struct cairn_id *pack, uint64_t b,
                      size_t want, uint8_t *buf, uint64_t off, size_t len)
{
	bool meta = strcmp(sub, "meta") == 0;
	char path[PATH_MAX];
	_cleanup_close_ int fd = open_get(c, pack, b, meta);
	if (fd < 0) {
		struct stat st;
		if (block_path(c, sub, pack, b, path, sizeof(path)) < 0 ||
		    (fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
			return 0;
		if (fstat(fd, &st) < 0 || (uint64_t)st.st_size != want)
			return 0; /* an interrupted write: fetched again */
		/* Recently used: evicted last. Once a minute is enough for that. */
		if (time(NULL) - st.st_mtim.tv_sec > 60)
			futimens(fd, NULL);
		open_put(c, pack, b, meta, fd);
	}
	uint64_t start = b * BLOCK_SIZE;
	uint64_t from = start > off ? start : off;
	uint64_t to = start + want < off + len ? start + want : off + len;
	if (from < to && cairn_pread_all(fd, buf + (from - off), to - from, from - start) < 0)
		return 0;
	return 1;
}

static bool have_block(const char *path, size_t want)
{
	struct stat st;
	return stat(path, &st) == 0 && (uint64_t)st.st_size == want;
}

struct victim {
	struct timespec t;
	uint64_t size;
	char *path;
};

static int by_age(const void *a, const void *b)
{
	const struct victim *x = a, *y = b;
	if (x->t.tv_sec != y->t.tv_sec)
		return x->t.tv_sec < y->t.tv_sec ? -1 : 1;
	return (x->t.tv_nsec > y->t.tv_nsec) - (x->t.tv_nsec < y->t.tv_nsec);
}

static bool add_victim(struct victim **v, size_t *count, size_t *cap, const char *dir,
                       const char *name, const struct stat *st)
{
	if (*count == *cap) {
		size_t ncap = *cap ? 2 * *cap : 256;
		struct victim *p = reallocarray(*v, ncap, sizeof(**v));
		if (!p)
			return false;
		*v = p;
		*cap = ncap;
	}
	if (asprintf(&(*v)[*count].path, "%s/%s", dir, name) < 0)
		return false;
	(*v)[*count].t = st->st_mtim;
	(*v)[(*count)++].size = (uint64_t)st->st_size;
	return true;
}

/* Every block file under blocks/ (for the size at open and for eviction). */
static void scan_blocks(cairn_cache *c, struct victim **out, size_t *n, uint64_t *total)
{
	char dir[PATH_MAX], sub[PATH_MAX + 8];
	size_t count = 0, cap = 0;
	struct victim *v = NULL;
	*total = 0;
	int r = path_of(c, dir, sizeof(dir), "blocks");
	_cleanup_closedir_ DIR *d = r < 0 ? NULL : opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (de->d_name[0] == '.' || strlen(de->d_name) != 2)
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		_cleanup_closedir_ DIR *s = opendir(sub);
		for (struct dirent *fe; s && (fe = readdir(s));) {
			struct stat st;
			if (fe->d_name[0] == '.' || fstatat(dirfd(s), fe->d_name, &st, 0) < 0)
				continue;
			*total += (uint64_t)st.st_size;
			if (out && !add_victim(&v, &count, &cap, sub, fe->d_name, &st))
				break;
		}
	}
	if (out) {
		*out = v;
		*n = count;
	}
}

/* Over budget: remove the least recently used blocks down to 3/4 of it. */
static void evict(cairn_cache *c)
{
	if (atomic_load(&c->used) <= c->budget || pthread_mutex_trylock(&c->evict_lock) != 0)
		return;
	struct victim *v = NULL;
	size_t n = 0;
	uint64_t total = 0;
	scan_blocks(c, &v, &n, &total);
	if (n > 1)
		qsort(v, n, sizeof(*v), by_age);
	for (size_t i = 0; i < n; i++) {
		if (total > c->budget / 4 * 3 && unlink(v[i].path) == 0)
			total -= v[i].size;
		free(v[i].path);
	}
	free(v);
	atomic_store(&c->used, total);
	pthread_mutex_unlock(&c->evict_lock);
}

static void store_block(cairn_cache *c, const char *path, const uint8_t *data, size_t len,
                        bool evictable)
{
	if (store_file(c, path, data, len) && evictable) {
		atomic_fetch_add(&c->used, len);
		evict(c);
	}
}

/* Copy the part of [start, start + n) that overlaps the request into buf. */
static void copy_overlap(uint8_t *buf, uint64_t off, size_t len, uint64_t start,
                         const uint8_t *data, size_t n)
{
	uint64_t from = start > off ? start : off;
	uint64_t to = start + n < off + len ? start + n : off + len;
	if (from < to)
		memcpy(buf + (from - off), data + (from - start), to - from);
}

static size_t block_len(uint64_t pack_size, uint64_t b)
{
	uint64_t left = pack_size - b * BLOCK_SIZE;
	return left < BLOCK_SIZE ? (size_t)left : BLOCK_SIZE;
}

static int get_range(cairn_cache *c, const struct cairn_id *pack, uint64_t off, uint64_t len,
                     struct cairn_buf *out)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	return cairn_storage_get(c->st, CAIRN_OBJ_PACK, hex, off, len, (size_t)len, out);
}

/* ---- fetches in flight ----------------------------------------------------- */

static bool flying(const cairn_cache *c, const struct cairn_id *pack, uint64_t b)
{
	for (const struct flight *f = c->flying; f; f = f->next)
		if (b >= f->first && b <= f->last && cairn_id_cmp(&f->pack, pack) == 0)
			return true;
	return false;
}

/* Wait while block b of pack is being fetched; true if it was. */
static bool wait_landing(cairn_cache *c, const struct cairn_id *pack, uint64_t b)
{
	bool waited = false;
	pthread_mutex_lock(&c->fly_lock);
	while (flying(c, pack, b)) {
		waited = true;
		pthread_cond_wait(&c->landed, &c->fly_lock);
	}
	pthread_mutex_unlock(&c->fly_lock);
	return waited;
}

/* Claim blocks *s..*e (*s <= b <= *e) for a fetch: each end is cut at the block
 * in flight nearest to b. false if b itself is. */
static bool take_off(cairn_cache *c, struct flight *f, const struct cairn_id *pack, uint64_t b,
                     uint64_t *s, uint64_t *e)
{
	pthread_mutex_lock(&c->fly_lock);
	bool ok = !flying(c, pack, b);
	for (uint64_t k = b + 1; ok && k <= *e; k++)
		if (flying(c, pack, k))
			*e = k - 1;
	for (uint64_t k = b; ok && k > *s; k--)
		if (flying(c, pack, k - 1))
			*s = k;
	if (ok) {
		*f = (struct flight){ *pack, *s, *e, c->flying };
		c->flying = f;
	}
	pthread_mutex_unlock(&c->fly_lock);
	return ok;
}

static void land(cairn_cache *c, struct flight *f)
{
	pthread_mutex_lock(&c->fly_lock);
	for (struct flight **p = &c->flying; *p; p = &(*p)->next)
		if (*p == f) {
			*p = f->next;
			break;
		}
	pthread_cond_broadcast(&c->landed);
	pthread_mutex_unlock(&c->fly_lock);
}

/* ---- ranges the read ahead will fetch -------------------------------------- */

static bool plan_free(const struct plan *p)
{
	return p->last < p->first;
}

void cairn_cache__plan(cairn_cache *c, const struct cairn_id *pack, uint64_t off, uint64_t len)
{
	struct plan *slot = NULL;
	if (!len)
		return;
	uint64_t first = off / BLOCK_SIZE, last = (off + len - 1) / BLOCK_SIZE;
	pthread_mutex_lock(&c->fly_lock);
	for (size_t i = 0; i < PLANS; i++) {
		struct plan *p = &c->plans[i];
		/* A range grows: the plan it contains is its own, or one it now covers.
		 * Other ranges of the pack (queued, not yet fetched) keep theirs. */
		if (!plan_free(p) && cairn_id_cmp(&p->pack, pack) == 0 && p->first >= first &&
		    p->last <= last) {
			slot = p;
			break;
		}
		if (plan_free(p) && !slot)
			slot = p;
	}
	if (slot) /* else the table is full: a reader fetches 4 MiB, as without it */
		*slot = (struct plan){ *pack, first, last };
	pthread_mutex_unlock(&c->fly_lock);
}

void cairn_cache__unplan(cairn_cache *c, const struct cairn_id *pack, uint64_t off, uint64_t len)
{
	pthread_mutex_lock(&c->fly_lock);
	for (size_t i = 0; i < PLANS; i++) {
		struct plan *p = &c->plans[i];
		if (!pack ||
		    (!plan_free(p) && cairn_id_cmp(&p->pack, pack) == 0 &&
		     p->first == off / BLOCK_SIZE && p->last == (off + len - 1) / BLOCK_SIZE))
			*p = (struct plan){ .first = 1 };
	}
	pthread_mutex_unlock(&c->fly_lock);
}

/* The planned ranges that hold block b of pack, as one: *first..*last, or b..b;
 * whether there are any. */
static bool planned(cairn_cache *c, const struct cairn_id *pack, uint64_t b, uint64_t *first,
                    uint64_t *last)
{
	bool any = false;
	*first = *last = b;
	pthread_mutex_lock(&c->fly_lock);
	for (size_t i = 0; i < PLANS; i++) {
		const struct plan *p = &c->plans[i];
		if (b < p->first || b > p->last || cairn_id_cmp(&p->pack, pack) != 0)
			continue;
		*first = p->first < *first ? p->first : *first;
		*last = p->last > *last ? p->last : *last;
		any = true;
	}
	pthread_mutex_unlock(&c->fly_lock);
	return any;
}

/* Blocks b.. that are missing, as one GET: those the request needs, then (read
 * ahead) more up to FETCH_MIN or to the end of a planned range, and the pack's
 * last blocks when fewer than FETCH_MIN would be left; the missing blocks of a
 * planned range before b come too (the read ahead's worker would fetch them
 * apart), with its pack's first ones if fewer than FETCH_MIN. *end_out gets the
 * last block fetched. */
static int fetch_run(cairn_cache *c, const char *sub, const struct cairn_id *pack, uint64_t size,
                     uint64_t b, uint64_t last, uint8_t *buf, uint64_t off, size_t len,
                     uint64_t *end_out)
{
	_cleanup_buf_ struct cairn_buf got = CAIRN_BUF_INIT;
	uint64_t nblocks = (size + BLOCK_SIZE - 1) / BLOCK_SIZE, e = b;
	uint64_t ahead = b + FETCH_MIN / BLOCK_SIZE - 1;
	char path[PATH_MAX];
	uint64_t plan_first, plan_last, s = b;
	if (ahead < last)
		ahead = last;
	/* A planned range's head shorter than a fetch comes too: the walker finds
	 * a pack's blobs out of order, and may yet add it. */
	if (planned(c, pack, b, &plan_first, &plan_last) && plan_first < FETCH_MIN / BLOCK_SIZE)
		plan_first = 0;
	if (ahead < plan_last)
		ahead = plan_last;
	/* A rest shorter than a fetch comes too: it would be a GET of its own. */
	if (ahead + FETCH_MIN / BLOCK_SIZE >= nblocks)
		ahead = nblocks - 1;
	while (e + 1 < nblocks && e + 1 <= ahead &&
	       block_path(c, sub, pack, e + 1, path, sizeof(path)) >= 0 &&
	       !have_block(path, block_len(size, e + 1)))
		e++;
	while (s > plan_first && block_path(c, sub, pack, s - 1, path, sizeof(path)) >= 0 &&
	       !have_block(path, block_len(size, s - 1)))
		s--;
	struct flight f;
	if (!take_off(c, &f, pack, b, &s, &e))
		return -EAGAIN; /* another thread fetches b: wait for it */
	uint64_t start = s * BLOCK_SIZE,
	         stop = (e + 1) * BLOCK_SIZE < size ? (e + 1) * BLOCK_SIZE : size;
	int r = get_range(c, pack, start, stop - start, &got);
	if (r >= 0) {
		open_forget(c, pack); /* their files are replaced */
		for (uint64_t k = s; k <= e; k++) {
			const uint8_t *p = got.data + (k - s) * BLOCK_SIZE;
			size_t n = block_len(size, k);
			if (block_path(c, sub, pack, k, path, sizeof(path)) >= 0)
				store_block(c, path, p, n, strcmp(sub, "blocks") == 0);
			if (buf)
				copy_overlap(buf, off, len, k * BLOCK_SIZE, p, n);
		}
	}
	land(c, &f);
	*end_out = e;
	return r;
}

/* The missing blocks of off..off+len into sub/, as few GETs as it takes. */
static int fetch_blocks(cairn_cache *c, const char *sub, const struct cairn_id *pack, uint64_t size,
                        uint64_t off, uint64_t len)
{
	char path[PATH_MAX];
	uint64_t last = (off + len - 1) / BLOCK_SIZE;
	for (uint64_t b = off / BLOCK_SIZE; b <= last; b++) {
		uint64_t e;
		if (block_path(c, sub, pack, b, path, sizeof(path)) < 0 ||
		    have_block(path, block_len(size, b)))
			continue;
		int r = fetch_run(c, sub, pack, size, b, last, NULL, 0, 0, &e);
		if (r == -EAGAIN)
			continue; /* someone else's */
		if (r < 0)
			return r;
		b = e;
	}
	return 0;
}

static int read_blocks(cairn_cache *c, const char *sub, const struct cairn_id *pack, uint64_t size,
                       uint8_t *buf, size_t len, uint64_t off)
{
	uint64_t last = (off + len - 1) / BLOCK_SIZE;
	/* Trees are read all over their pack (a directory's tree comes after its
	 * children's, the root's last), and the cache keeps them: a pack of trees
	 * of up to twice the default pack size comes whole at its first miss. */
	bool whole = strcmp(sub, "meta") == 0 && size <= META_WHOLE;
	for (uint64_t b = off / BLOCK_SIZE; b <= last; b++) {
		if (load_block(c, sub, pack, b, block_len(size, b), buf, off, len))
			continue;
		int r;
		if (whole) {
			whole = false;
			if ((r = fetch_blocks(c, sub, pack, size, 0, size)) < 0)
				return r;
			b--; /* read it from the cache now */
			continue;
		}
		uint64_t e;
		r = fetch_run(c, sub, pack, size, b, last, buf, off, len, &e);
		if (r == -EAGAIN) {
			wait_landing(c, pack, b);
			b--; /* read it from the cache now, or fetch it after all */
			continue;
		}
		if (r < 0)
			return r;
		b = e;
	}
	return 0;
}

int cairn_cache__fetch(cairn_cache *c, const struct cairn_id *pack, uint64_t size, uint64_t off,
                       uint64_t len)
{
	if (len == 0 || off + len > size)
		return len ? cairn_err_set(-EBADMSG, "read past the end of a pack") : 0;
	return fetch_blocks(c, "blocks", pack, size, off, len);
}

/* ---- pack headers: tails/ -------------------------------------------------- */

static int tail_path(const cairn_cache *c, const struct cairn_id *pack, char *out, size_t n)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	return path_of(c, out, n, "tails/%s", hex);
}

/* tails/<pack> from the pack's first 8 bytes and its last tlen bytes. */
static int write_tail(cairn_cache *c, const struct cairn_id *pack, uint64_t size,
                      const uint8_t head[8], const uint8_t *tail, size_t tlen)
{
	_cleanup_buf_ struct cairn_buf file = CAIRN_BUF_INIT;
	char path[PATH_MAX];
	int r = cairn_buf_put_u64(&file, size);
	if (r >= 0 && (r = cairn_buf_put(&file, head, 8)) >= 0)
		r = cairn_buf_put(&file, tail, tlen);
	if (r >= 0 && (r = tail_path(c, pack, path, sizeof(path))) >= 0)
		store_file(c, path, file.data, file.len);
	return r;
}

/* The tail from `from` on, and the first 8 bytes (the magic, checked when the
 * header is parsed): one GET when the tail starts at 0, else two. */
static int fetch_tail(cairn_cache *c, const struct cairn_id *pack, uint64_t size, uint64_t from)
{
	_cleanup_buf_ struct cairn_buf head = CAIRN_BUF_INIT, tail = CAIRN_BUF_INIT;
	int r = get_range(c, pack, from, size - from, &tail);
	if (r >= 0 && from > 0)
		r = get_range(c, pack, 0, size < 8 ? size : 8, &head);
	const struct cairn_buf *h = from > 0 ? &head : &tail;
	if (r >= 0 && h->len < 8)
		r = cairn_err_set(-EBADMSG, "pack is only %zu bytes", h->len);
	return r < 0 ? r : write_tail(c, pack, size, h->data, tail.data, tail.len);
}

/* The cached tail of a pack of this size; -ENOENT when absent, torn or stale. */
static int load_tail(const char *path, uint64_t size, struct cairn_buf *t)
{
	cairn_buf_release(t);
	int r = cairn_file_slurp(path, PACK_MAX, t);
	if (r >= 0 && (t->len < TAIL_HDR || cairn_get_le64(t->data) != size))
		return -ENOENT;
	return r;
}

static int read_tail(cairn_cache *c, const struct cairn_id *pack, uint64_t size, uint8_t *buf,
                     size_t len, uint64_t off)
{
	_cleanup_buf_ struct cairn_buf t = CAIRN_BUF_INIT;
	char path[PATH_MAX];
	int r = tail_path(c, pack, path, sizeof(path));
	for (int attempt = 0; r >= 0 && attempt < 2; attempt++) {
		if ((r = load_tail(path, size, &t)) == -ENOENT &&
		    (r = fetch_tail(c, pack, size, size > TAIL_GUESS ? size - TAIL_GUESS : 0)) >= 0)
			r = load_tail(path, size, &t);
		if (r < 0)
			break;
		uint64_t kept = t.len - TAIL_HDR;
		if (off + len <= 8) {
			memcpy(buf, t.data + 8 + off, len);
			return 0;
		}
		if (off >= size - kept) {
			memcpy(buf, t.data + TAIL_HDR + (off - (size - kept)), len);
			return 0;
		}
		r = fetch_tail(c, pack, size, off); /* a large header: keep all of it */
	}
	return r < 0 ? r : cairn_err_set(-EIO, "cannot cache the header of a pack");
}

int cairn_cache__pread(cairn_cache *c, const struct cairn_id *pack, uint64_t size, int type,
                       void *buf, size_t len, uint64_t off)
{
	if (len == 0)
		return 0;
	if (off > size || len > size - off)
		return -EBADMSG;
	if (type == 0)
		return read_tail(c, pack, size, buf, len, off);
	return read_blocks(c, type == CAIRN_BLOB_TREE ? "meta" : "blocks", pack, size, buf, len,
	                   off);
}

int cairn_cache__invalidate(cairn_cache *c, const struct cairn_id *pack, int type, uint64_t off,
                            size_t len)
{
	char path[PATH_MAX];
	int n = 0;
	if (type == 0)
		return tail_path(c, pack, path, sizeof(path)) >= 0 && unlink(path) == 0;
	const char *sub = type == CAIRN_BLOB_TREE ? "meta" : "blocks";
	open_forget(c, pack);
	for (uint64_t b = off / BLOCK_SIZE; len && b <= (off + len - 1) / BLOCK_SIZE; b++)
		if (block_path(c, sub, pack, b, path, sizeof(path)) >= 0 && unlink(path) == 0)
			n++;
	return n;
}

/* ---- packs this process wrote ---------------------------------------------- */

static void keep_blocks(cairn_cache *c, const struct cairn_id *pack, int fd, uint64_t size)
{
	_cleanup_free_ uint8_t *blk = malloc(BLOCK_SIZE);
	char path[PATH_MAX];
	for (uint64_t b = 0; blk && b * BLOCK_SIZE < size; b++) {
		size_t n = block_len(size, b);
		if (cairn_pread_all(fd, blk, n, b * BLOCK_SIZE) < 0 ||
		    block_path(c, "meta", pack, b, path, sizeof(path)) < 0)
			return;
		store_file(c, path, blk, n);
	}
}

void cairn_cache__keep_pack(cairn_cache *c, const struct cairn_id *pack, int fd, uint64_t size,
                            bool trees)
{
	uint8_t trailer[CAIRN_PACK_TRAILER_SIZE], head[8];
	uint32_t hlen;
	if (size < 8 + CAIRN_PACK_TRAILER_SIZE || cairn_pread_all(fd, head, 8, 0) < 0 ||
	    cairn_pread_all(fd, trailer, sizeof(trailer), size - sizeof(trailer)) < 0 ||
	    cairn_pack__parse_trailer(trailer, size, &hlen) < 0)
		return;
	uint64_t from = size - CAIRN_PACK_TRAILER_SIZE - hlen;
	_cleanup_free_ uint8_t *tail = malloc(size - from);
	if (tail && cairn_pread_all(fd, tail, size - from, from) >= 0)
		write_tail(c, pack, size, head, tail, size - from);
	if (trees)
		keep_blocks(c, pack, fd, size);
}

static void drop_blocks(cairn_cache *c, const char *sub, const struct cairn_id *pack)
{
	char hex[CAIRN_ID_HEX_SIZE], dir[PATH_MAX];
	cairn_id_hex(hex, pack);
	if (path_of(c, dir, sizeof(dir), "%s/%.2s", sub, hex) < 0)
		return;
	_cleanup_closedir_ DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));)
		if (strncmp(de->d_name, hex, 64) == 0 && de->d_name[64] == '.')
			unlinkat(dirfd(d), de->d_name, 0);
}

void cairn_cache__drop_pack(cairn_cache *c, const struct cairn_id *pack)
{
	char path[PATH_MAX];
	if (tail_path(c, pack, path, sizeof(path)) >= 0)
		unlink(path);
	open_forget(c, pack);
	drop_blocks(c, "meta", pack);
	drop_blocks(c, "blocks", pack);
}

uint64_t cairn_cache__budget(const cairn_cache *c)
{
	return c->budget;
}

uint64_t cairn_cache__used(cairn_cache *c)
{
	return atomic_load(&c->used);
}

/* ---- open and close -------------------------------------------------------- */

/* CAIRN_CACHE_SIZE: bytes, or with K, M, G or T as -o disk_cache takes them.
 * One that does not parse is refused: a cache meant to be small must not grow
 * to the default unseen. */
static int budget_from_env(uint64_t *out)
{
	const char *e = getenv("CAIRN_CACHE_SIZE"), *units = "KMGTkmgt", *u = NULL;
	char *end;
	*out = CAIRN_CACHE_SIZE_DEFAULT;
	if (!e || !*e)
		return 0;
	errno = 0;
	unsigned long long v = strtoull(e, &end, 10);
	if (*end && !end[1])
		u = strchr(units, *end);
	unsigned shift = u ? 10 * (unsigned)((u - units) % 4 + 1) : 0;
	if (errno || end == e || *e == '-' || v == 0 || (*end && !u) || v > UINT64_MAX >> shift)
		return cairn_err_set(-EINVAL,
		                     "CAIRN_CACHE_SIZE: '%s' is not a size (use K, M, G or T)", e);
	*out = (uint64_t)v << shift;
	return 0;
}

int cairn_cache__open(cairn_cache **out, cairn_storage *st, uint64_t budget)
{
	cairn_cache *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->st = st;
	c->budget = budget;
	if (!budget && budget_from_env(&c->budget) < 0) {
		free(c);
		return -EINVAL;
	}
	pthread_mutex_init(&c->evict_lock, NULL);
	pthread_mutex_init(&c->open_lock, NULL);
	pthread_mutex_init(&c->fly_lock, NULL);
	pthread_cond_init(&c->landed, NULL);
	for (size_t i = 0; i < OPEN_BLOCKS; i++)
		c->open[i].fd = -1;
	cairn_cache__unplan(c, NULL, 0, 0);
	const char *dir = cairn_storage_state_dir(st);
	if (strlen(dir) >= sizeof(c->dir)) {
		cairn_cache__close(c);
		return cairn_err_set(-ENAMETOOLONG, "cache path too long: '%s'", dir);
	}
	snprintf(c->dir, sizeof(c->dir), "%s", dir);
	uint64_t used = 0;
	scan_blocks(c, NULL, NULL, &used);
	atomic_store(&c->used, used);
	*out = c;
	return 0;
}

void cairn_cache__close(cairn_cache *c)
{
	if (!c)
		return;
	pthread_mutex_destroy(&c->evict_lock);
	for (size_t i = 0; i < OPEN_BLOCKS; i++)
		if (c->open[i].fd >= 0)
			close(c->open[i].fd);
	pthread_mutex_destroy(&c->open_lock);
	pthread_mutex_destroy(&c->fly_lock);
	pthread_cond_destroy(&c->landed);
	free(c);
}
