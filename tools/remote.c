/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* S3-backed repositories (docs/S3.md §5): a cache directory mirrors config, keys,
 * snapshots and the index; packs are read with ranged GETs through block caches. */
#include "remote.h"

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
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"
#include "cli.h"
#include "sigv4.h"

#define BLOCK_SIZE (1u << 20) /* unit of the pack caches */
/* A GET for missing blocks fetches at least this much, so the neighbouring blobs
 * of a sequential read come in the same request. */
#define FETCH_MIN (4u << 20)
#define TAIL_GUESS (64u << 10) /* first guess at the size of a pack's header + trailer */
#define TAIL_HDR 16            /* tails/ file: u64 pack size, the pack's first 8 bytes */
#define CONFIG_MAX 8192
#define KEY_MAX 65536
#define SNAPSHOT_FILE_MAX (CAIRN_SNAPSHOT_MAX_SIZE + 4096u)
#define PACK_MAX (8ull << 30)
#define REL_MAX 96

struct remote {
	cairn_s3 *s3;
	char *bucket, *prefix;
	char url[600];
	char dir[PATH_MAX - 256]; /* the cache of this remote: paths below it fit PATH_MAX */
	struct cairn_idset packs; /* pack id -> size; fixed once opened */
	pthread_mutex_t lock;
	cairn_s3_conn *idle[CAIRN_S3_CONNECTIONS_MAX]; /* protected by lock */
	size_t nidle;                                  /* protected by lock */
	pthread_mutex_t evict_lock;
	uint64_t budget;
	_Atomic uint64_t used; /* bytes in blocks/ (an estimate between scans) */
};

/* ---- names ---------------------------------------------------------------- */

static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return strlen(s) >= n;
}

int remote_classify(const char *rel)
{
	size_t n = strlen(rel);
	if (strcmp(rel, "config") == 0)
		return REMOTE_CONFIG;
	if (n == 5 + 16 && strncmp(rel, "keys/", 5) == 0 && lower_hex(rel + 5, 16))
		return REMOTE_KEY;
	if (n == 10 + 64 && strncmp(rel, "snapshots/", 10) == 0 && lower_hex(rel + 10, 64))
		return REMOTE_SNAPSHOT;
	if (n == 9 + 64 && strncmp(rel, "packs/", 6) == 0 && rel[8] == '/' &&
	    lower_hex(rel + 9, 64) && memcmp(rel + 6, rel + 9, 2) == 0)
		return REMOTE_PACK;
	return -1;
}

bool remote_is_url(const char *repo)
{
	return repo && strncmp(repo, "s3://", 5) == 0;
}

static int key_of(const struct remote *rm, const char *rel, char *out, size_t size)
{
	int n = snprintf(out, size, "%s%s%s", rm->prefix, rm->prefix[0] ? "/" : "", rel);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-EINVAL, "object name too long") : 0;
}

static int path_of(const struct remote *rm, char *out, size_t size, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int path_of(const struct remote *rm, char *out, size_t size, const char *fmt, ...)
{
	char rel[PATH_MAX];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(rel, sizeof(rel), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(rel))
		return cairn_err_set(-ENAMETOOLONG, "path too long");
	n = snprintf(out, size, "%s/%s", rm->dir, rel);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-ENAMETOOLONG, "path too long") : 0;
}

/* ---- connections ---------------------------------------------------------- */

static int take_conn(struct remote *rm, cairn_s3_conn **out)
{
	pthread_mutex_lock(&rm->lock);
	cairn_s3_conn *c = rm->nidle ? rm->idle[--rm->nidle] : NULL;
	pthread_mutex_unlock(&rm->lock);
	if (c) {
		*out = c;
		return 0;
	}
	return cairn_s3_conn_new(out, rm->s3);
}

static void give_conn(struct remote *rm, cairn_s3_conn *c)
{
	pthread_mutex_lock(&rm->lock);
	if (rm->nidle < ARRAY_SIZE(rm->idle)) {
		rm->idle[rm->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&rm->lock);
	cairn_s3_conn_free(c);
}

static int get_range(struct remote *rm, const struct cairn_id *pack, uint64_t off, uint64_t len,
                     struct cairn_buf *out)
{
	char hex[CAIRN_ID_HEX_SIZE], key[700];
	cairn_s3_conn *c;
	cairn_id_hex(hex, pack);
	int r = snprintf(key, sizeof(key), "%s%spacks/%.2s/%s", rm->prefix,
	                 rm->prefix[0] ? "/" : "", hex, hex) >= (int)sizeof(key)
	                ? cairn_err_set(-EINVAL, "object name too long")
	                : take_conn(rm, &c);
	if (r < 0)
		return r;
	r = cairn_s3_get(c, key, off, len, (size_t)len, out);
	give_conn(rm, c);
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "pack %.16s is missing from %s", hex, rm->url);
	if (r >= 0 && out->len != len)
		return cairn_err_set(-EBADMSG, "pack %.16s in %s is shorter than listed", hex,
		                     rm->url);
	return r;
}

/* ---- the block caches ----------------------------------------------------- */

/* "blocks/ab/<pack>.<n>": evictable data; "meta/ab/<pack>.<n>": trees, kept. */
static int block_path(const struct remote *rm, const char *sub, const struct cairn_id *pack,
                      uint64_t block, char *out, size_t size)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	return path_of(rm, out, size, "%s/%.2s/%s.%llu", sub, hex, hex, (unsigned long long)block);
}

/* 1 and the block in buf if the cache has it whole, 0 if not. */
static int load_block(const char *path, uint8_t *buf, size_t want)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0 || (uint64_t)st.st_size != want)
		return 0; /* an interrupted write: fetched again */
	if (cairn_pread_all(fd, buf, want, 0) < 0)
		return 0;
	futimens(fd, NULL); /* recently used: evicted last */
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

/* Every block file under blocks/ (for the size at open and for eviction). */
static int scan_blocks(struct remote *rm, struct victim **out, size_t *n, uint64_t *total)
{
	char dir[PATH_MAX], sub[PATH_MAX + 8];
	size_t count = 0, cap = 0;
	struct victim *v = NULL;
	*total = 0;
	int r = path_of(rm, dir, sizeof(dir), "blocks");
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
			if (!out)
				continue;
			if (count == cap) {
				cap = cap ? 2 * cap : 256;
				struct victim *p = reallocarray(v, cap, sizeof(*v));
				if (!p)
					break;
				v = p;
			}
			if (asprintf(&v[count].path, "%s/%s", sub, fe->d_name) < 0)
				break;
			v[count].t = st.st_mtim;
			v[count++].size = (uint64_t)st.st_size;
		}
	}
	if (out) {
		*out = v;
		*n = count;
	}
	return 0;
}

/* Over budget: remove the least recently used blocks down to 3/4 of it. */
static void evict(struct remote *rm)
{
	if (atomic_load(&rm->used) <= rm->budget || pthread_mutex_trylock(&rm->evict_lock) != 0)
		return;
	struct victim *v = NULL;
	size_t n = 0;
	uint64_t total = 0;
	scan_blocks(rm, &v, &n, &total);
	if (n > 1)
		qsort(v, n, sizeof(*v), by_age);
	for (size_t i = 0; i < n; i++) {
		if (total > rm->budget / 4 * 3 && unlink(v[i].path) == 0)
			total -= v[i].size;
		free(v[i].path);
	}
	free(v);
	atomic_store(&rm->used, total);
	pthread_mutex_unlock(&rm->evict_lock);
}

/* A cache write that fails costs a later request, nothing else: no error. */
static void store_block(struct remote *rm, const char *path, const uint8_t *data, size_t len,
                        bool evictable)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		return;
	*slash = '\0';
	if (cairn_mkdir_p(dir, 0700) < 0 || path_of(rm, tmp, sizeof(tmp), "tmp/blk.XXXXXX") < 0)
		return;
	int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return;
	int r = cairn_write_all(fd, data, len);
	close(fd);
	if (r < 0 || rename(tmp, path) < 0) {
		unlink(tmp);
		return;
	}
	if (evictable) {
		atomic_fetch_add(&rm->used, len);
		evict(rm);
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

/* Blocks b.. that are missing, as one GET: those the request needs, then (read
 * ahead) more up to FETCH_MIN. Returns the last block fetched. */
static int fetch_run(struct remote *rm, const char *sub, const struct cairn_id *pack, uint64_t size,
                     uint64_t b, uint64_t last, uint8_t *buf, uint64_t off, size_t len,
                     uint64_t *end_out)
{
	_cleanup_buf_ struct cairn_buf got = CAIRN_BUF_INIT;
	uint64_t nblocks = (size + BLOCK_SIZE - 1) / BLOCK_SIZE, e = b;
	uint64_t ahead = b + FETCH_MIN / BLOCK_SIZE - 1;
	char path[PATH_MAX];
	if (ahead < last)
		ahead = last;
	while (e + 1 < nblocks && e + 1 <= ahead &&
	       block_path(rm, sub, pack, e + 1, path, sizeof(path)) >= 0 &&
	       !have_block(path, block_len(size, e + 1)))
		e++;
	uint64_t start = b * BLOCK_SIZE,
	         stop = (e + 1) * BLOCK_SIZE < size ? (e + 1) * BLOCK_SIZE : size;
	int r = get_range(rm, pack, start, stop - start, &got);
	if (r < 0)
		return r;
	for (uint64_t k = b; k <= e; k++) {
		const uint8_t *p = got.data + (k - b) * BLOCK_SIZE;
		size_t n = block_len(size, k);
		if (block_path(rm, sub, pack, k, path, sizeof(path)) >= 0)
			store_block(rm, path, p, n, strcmp(sub, "blocks") == 0);
		copy_overlap(buf, off, len, k * BLOCK_SIZE, p, n);
	}
	*end_out = e;
	return 0;
}

static int read_blocks(struct remote *rm, const char *sub, const struct cairn_id *pack,
                       uint64_t size, uint8_t *buf, size_t len, uint64_t off)
{
	_cleanup_free_ uint8_t *blk = malloc(BLOCK_SIZE);
	char path[PATH_MAX];
	if (!blk)
		return cairn_err_set(-ENOMEM, "out of memory");
	uint64_t last = (off + len - 1) / BLOCK_SIZE;
	for (uint64_t b = off / BLOCK_SIZE; b <= last; b++) {
		size_t n = block_len(size, b);
		int r = block_path(rm, sub, pack, b, path, sizeof(path));
		if (r < 0)
			return r;
		if (load_block(path, blk, n)) {
			copy_overlap(buf, off, len, b * BLOCK_SIZE, blk, n);
			continue;
		}
		if ((r = fetch_run(rm, sub, pack, size, b, last, buf, off, len, &b)) < 0)
			return r;
	}
	return 0;
}

/* ---- pack headers: tails/ ------------------------------------------------- */

/* tails/<pack>: u64 pack size, the pack's first 8 bytes (its magic), then the
 * last bytes of the pack: the sealed header and the trailer (FORMAT.md §6). */
static int tail_path(const struct remote *rm, const struct cairn_id *pack, char *out, size_t n)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	return path_of(rm, out, n, "tails/%s", hex);
}

static int fetch_tail(struct remote *rm, const struct cairn_id *pack, uint64_t size, uint64_t from)
{
	_cleanup_buf_ struct cairn_buf head = CAIRN_BUF_INIT, tail = CAIRN_BUF_INIT,
	                               file = CAIRN_BUF_INIT;
	char path[PATH_MAX], tmpdir[PATH_MAX];
	int r = get_range(rm, pack, 0, size < 8 ? size : 8, &head);
	if (r >= 0)
		r = get_range(rm, pack, from, size - from, &tail);
	if (r >= 0 && head.len < 8)
		r = cairn_err_set(-EBADMSG, "pack in %s is only %zu bytes", rm->url, head.len);
	if (r >= 0 && (r = cairn_buf_put_u64(&file, size)) >= 0 &&
	    (r = cairn_buf_put(&file, head.data, 8)) >= 0)
		r = cairn_buf_put(&file, tail.data, tail.len);
	if (r >= 0 && (r = tail_path(rm, pack, path, sizeof(path))) >= 0 &&
	    (r = path_of(rm, tmpdir, sizeof(tmpdir), "tmp")) >= 0)
		r = cairn_file_write_atomic(path, tmpdir, file.data, file.len);
	return r;
}

static int fetch_tail_guess(struct remote *rm, const struct cairn_id *pack, uint64_t size)
{
	return fetch_tail(rm, pack, size, size > TAIL_GUESS ? size - TAIL_GUESS : 0);
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

static int read_tail(struct remote *rm, const struct cairn_id *pack, uint64_t size, uint8_t *buf,
                     size_t len, uint64_t off)
{
	_cleanup_buf_ struct cairn_buf t = CAIRN_BUF_INIT;
	char path[PATH_MAX];
	int r = tail_path(rm, pack, path, sizeof(path));
	for (int attempt = 0; r >= 0 && attempt < 2; attempt++) {
		if ((r = load_tail(path, size, &t)) == -ENOENT &&
		    (r = fetch_tail_guess(rm, pack, size)) >= 0)
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
		r = fetch_tail(rm, pack, size, off); /* a large header: keep all of it */
	}
	return r < 0 ? r : cairn_err_set(-EIO, "cannot cache the header of a pack in %s", rm->url);
}

/* ---- the pack source ------------------------------------------------------ */

static int src_foreach(void *payload, int (*cb)(const struct cairn_id *, uint64_t, void *),
                       void *cb_payload)
{
	struct remote *rm = payload;
	size_t pos = 0;
	const struct cairn_id *id;
	while (cairn_idset_next(&rm->packs, &pos, &id)) {
		int r = cb(id, *cairn_idset_get(&rm->packs, id), cb_payload);
		if (r < 0)
			return r;
	}
	return 0;
}

static int src_size(void *payload, const struct cairn_id *pack, uint64_t *size)
{
	struct remote *rm = payload;
	const uint64_t *v = cairn_idset_get(&rm->packs, pack);
	char hex[CAIRN_ID_HEX_SIZE];
	if (v) {
		*size = *v;
		return 0;
	}
	cairn_id_hex(hex, pack);
	return cairn_err_set(-ENOENT, "pack %.16s is not in %s", hex, rm->url);
}

static int src_pread(void *payload, const struct cairn_id *pack, int type, void *buf, size_t len,
                     uint64_t off)
{
	struct remote *rm = payload;
	uint64_t size = 0;
	int r = src_size(rm, pack, &size);
	if (r < 0)
		return r;
	if (len == 0)
		return 0;
	if (off > size || len > size - off)
		return -EBADMSG;
	if (type == 0)
		return read_tail(rm, pack, size, buf, len, off);
	return read_blocks(rm, type == CAIRN_BLOB_TREE ? "meta" : "blocks", pack, size, buf, len,
	                   off);
}

static void src_invalidate(void *payload, const struct cairn_id *pack, int type, uint64_t off,
                           size_t len)
{
	struct remote *rm = payload;
	char path[PATH_MAX];
	if (type == 0) {
		if (tail_path(rm, pack, path, sizeof(path)) >= 0)
			unlink(path);
		return;
	}
	const char *sub = type == CAIRN_BLOB_TREE ? "meta" : "blocks";
	for (uint64_t b = off / BLOCK_SIZE; len && b <= (off + len - 1) / BLOCK_SIZE; b++)
		if (block_path(rm, sub, pack, b, path, sizeof(path)) >= 0 && unlink(path) == 0)
			log_warn("%s: a damaged cache block was dropped", rm->url);
}

static void remote_free(void *payload)
{
	struct remote *rm = payload;
	if (!rm)
		return;
	for (size_t i = 0; i < rm->nidle; i++)
		cairn_s3_conn_free(rm->idle[i]);
	if (rm->s3)
		log_debug("%s: %llu requests", rm->url,
		          (unsigned long long)cairn_s3_requests(rm->s3));
	cairn_s3_free(rm->s3);
	cairn_idset_release(&rm->packs);
	pthread_mutex_destroy(&rm->lock);
	pthread_mutex_destroy(&rm->evict_lock);
	free(rm->bucket);
	free(rm->prefix);
	free(rm);
}

/* ---- mirroring the small objects ------------------------------------------ */

int remote_objs_add(struct remote_objs *l, const char *rel, int kind, uint64_t size,
                    const char *etag)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct remote_obj *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct remote_obj *o = &l->v[l->n++];
	*o = (struct remote_obj){ .kind = kind, .size = size };
	snprintf(o->rel, sizeof(o->rel), "%s", rel);
	snprintf(o->etag, sizeof(o->etag), "%s", etag ? etag : "");
	return 0;
}

static int by_rel(const void *a, const void *b)
{
	return strcmp(((const struct remote_obj *)a)->rel, ((const struct remote_obj *)b)->rel);
}

void remote_objs_sort(struct remote_objs *l)
{
	if (l->n > 1) /* qsort(NULL, 0) is undefined */
		qsort(l->v, l->n, sizeof(*l->v), by_rel);
}

struct remote_obj *remote_objs_find(const struct remote_objs *l, const char *rel)
{
	struct remote_obj key;
	snprintf(key.rel, sizeof(key.rel), "%s", rel);
	return l->n ? bsearch(&key, l->v, l->n, sizeof(key), by_rel) : NULL;
}

struct listing {
	const char *prefix;
	struct remote_objs *objs;
};

static int list_one(const struct cairn_s3xml_object *o, void *payload)
{
	struct listing *l = payload;
	size_t pl = strlen(l->prefix);
	if (pl && (strncmp(o->key, l->prefix, pl) != 0 || o->key[pl] != '/'))
		return 0;
	const char *rel = o->key + (pl ? pl + 1 : 0);
	int kind = remote_classify(rel);
	if (kind < 0) {
		log_debug("ignoring %s: not a repository object", o->key);
		return 0;
	}
	return remote_objs_add(l->objs, rel, kind, o->size, o->etag);
}

int remote_list(cairn_s3_conn *c, const char *prefix, struct remote_objs *out)
{
	char p[600];
	struct listing l = { .prefix = prefix, .objs = out };
	snprintf(p, sizeof(p), "%s%s", prefix, prefix[0] ? "/" : "");
	int r = cairn_s3_list(c, p, list_one, &l);
	if (r >= 0)
		remote_objs_sort(out);
	return r;
}

static int md5_matches(const char *path, const char *etag)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	uint8_t md[16];
	char hex[33];
	if (cairn_file_slurp(path, KEY_MAX, &b) < 0)
		return 0;
	EVP_Digest(b.data, b.len, md, NULL, EVP_md5(), NULL);
	cairn_hex(hex, md, sizeof(md));
	return strcmp(hex, etag) == 0;
}

/* Config and keys may be replaced (cairn key): same MD5 or fetched again.
 * Snapshots are named by their content: present means current. */
static bool is_current(const struct remote *rm, const struct remote_obj *o)
{
	char path[PATH_MAX];
	struct stat st;
	if (path_of(rm, path, sizeof(path), "%s", o->rel) < 0 || stat(path, &st) < 0 ||
	    (uint64_t)st.st_size != o->size)
		return false;
	return o->kind == REMOTE_SNAPSHOT || md5_matches(path, o->etag);
}

static int fetch_small(struct remote *rm, cairn_s3_conn *c, const struct remote_obj *o)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	size_t max = o->kind == REMOTE_CONFIG ? CONFIG_MAX
	             : o->kind == REMOTE_KEY  ? KEY_MAX
	                                      : SNAPSHOT_FILE_MAX;
	char key[700], path[PATH_MAX], tmpdir[PATH_MAX];
	int r = key_of(rm, o->rel, key, sizeof(key));
	if (r >= 0 && (r = path_of(rm, path, sizeof(path), "%s", o->rel)) >= 0)
		r = path_of(rm, tmpdir, sizeof(tmpdir), "tmp");
	if (r >= 0)
		r = cairn_s3_get(c, key, 0, 0, max, &b);
	if (r >= 0)
		r = cairn_file_write_atomic(path, tmpdir, b.data, b.len);
	return r;
}

struct mirror {
	struct remote *rm;
	struct remote_obj **todo;
};

static int mirror_one(cairn_s3_conn *c, size_t i, void *payload)
{
	struct mirror *m = payload;
	struct remote_obj *o = m->todo[i];
	if (o->kind == REMOTE_PACK) {
		struct cairn_id id;
		int r = cairn_id_parse(&id, o->rel + 9);
		return r < 0 ? r : fetch_tail_guess(m->rm, &id, o->size);
	}
	return fetch_small(m->rm, c, o);
}

/* The pack's tails/ file exists and is for a pack of this size. */
static bool have_tail(struct remote *rm, const struct remote_obj *o)
{
	char path[PATH_MAX];
	uint8_t sz[8];
	struct cairn_id id;
	if (cairn_id_parse(&id, o->rel + 9) < 0 || tail_path(rm, &id, path, sizeof(path)) < 0)
		return false;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	return fd >= 0 && cairn_pread_all(fd, sz, 8, 0) >= 0 && cairn_get_le64(sz) == o->size;
}

/* Fetch what the cache lacks: the small objects and the tails of new packs. */
static int mirror(struct remote *rm, cairn_s3_conn *c, struct remote_objs *l)
{
	_cleanup_free_ struct remote_obj **todo = calloc(l->n ? l->n : 1, sizeof(*todo));
	size_t n = 0;
	if (!todo)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n; i++) {
		struct remote_obj *o = &l->v[i];
		if (o->kind == REMOTE_PACK ? !have_tail(rm, o) : !is_current(rm, o))
			todo[n++] = o;
	}
	if (n)
		log_info("%s: fetching %zu objects into the cache", rm->url, n);
	struct mirror m = { .rm = rm, .todo = todo };
	return cairn_s3_parallel(rm->s3, c, n, mirror_one, &m);
}

/* Keys, snapshots and tails the remote no longer has (key remove, forget, prune). */
static void drop_gone(struct remote *rm, const struct remote_objs *l, const char *sub,
                      const char *relfmt)
{
	char dir[PATH_MAX], rel[REL_MAX];
	if (path_of(rm, dir, sizeof(dir), "%s", sub) < 0)
		return;
	_cleanup_closedir_ DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (de->d_name[0] == '.' || strlen(de->d_name) > 64)
			continue;
		snprintf(rel, sizeof(rel), relfmt, de->d_name, de->d_name);
		if (!remote_objs_find(l, rel))
			unlinkat(dirfd(d), de->d_name, 0);
	}
}

static int packs_from_listing(struct remote *rm, const struct remote_objs *l)
{
	for (size_t i = 0; i < l->n; i++) {
		struct cairn_id id;
		if (l->v[i].kind != REMOTE_PACK)
			continue;
		int r = cairn_id_parse(&id, l->v[i].rel + 9);
		if (r >= 0)
			r = cairn_idset_add(&rm->packs, &id, l->v[i].size);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Offline: the packs whose headers the cache holds. */
static int packs_from_tails(struct remote *rm)
{
	char dir[PATH_MAX];
	int r = path_of(rm, dir, sizeof(dir), "tails");
	_cleanup_closedir_ DIR *d = r < 0 ? NULL : opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		struct cairn_id id;
		uint8_t sz[8];
		if (cairn_id_parse(&id, de->d_name) < 0)
			continue;
		_cleanup_close_ int fd = openat(dirfd(d), de->d_name, O_RDONLY | O_CLOEXEC);
		if (fd >= 0 && cairn_pread_all(fd, sz, 8, 0) >= 0 &&
		    (r = cairn_idset_add(&rm->packs, &id, cairn_get_le64(sz))) < 0)
			return r;
	}
	return 0;
}

/* ---- the cache directory -------------------------------------------------- */

static int cache_base(const struct remote_opts *o, char *out, size_t size)
{
	const char *e = o->cache_dir && *o->cache_dir ? o->cache_dir : getenv("CAIRN_CACHE_DIR");
	int n;
	if (e && *e)
		n = snprintf(out, size, "%s", e);
	else if ((e = getenv("XDG_CACHE_HOME")) && *e == '/')
		n = snprintf(out, size, "%s/cairn", e);
	else if ((e = getenv("HOME")) && *e)
		n = snprintf(out, size, "%s/.cache/cairn", e);
	else
		return cairn_err_set(-EINVAL,
		                     "no cache directory: set --cache-dir or CAIRN_CACHE_DIR");
	return n < 0 || (size_t)n >= size ? cairn_err_set(-ENAMETOOLONG, "cache path too long") : 0;
}

static int make_cache(struct remote *rm, const struct remote_opts *o)
{
	static const char *const subs[] = { "keys",  "snapshots", "packs", "tmp",
		                            "index", "blocks",    "meta",  "tails" };
	char base[PATH_MAX - 512], id[900], hex[65], path[PATH_MAX];
	int r = cache_base(o, base, sizeof(base));
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "%s/%s/%s", cairn_s3_endpoint(rm->s3), rm->bucket, rm->prefix);
	cairn_sigv4_sha256_hex(hex, id, strlen(id));
	snprintf(rm->dir, sizeof(rm->dir), "%s/s3-%.32s", base, hex);
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		snprintf(path, sizeof(path), "%s/%s", rm->dir, subs[i]);
		if ((r = cairn_mkdir_p(path, 0700)) < 0)
			return cairn_err_set(r, "cannot create cache '%s': %s", path, strerror(-r));
	}
	return 0;
}

static int id_of_text(const uint8_t *data, size_t len, char id[33])
{
	const char *p = memmem(data, len, "\nid = ", 6);
	if (!p || (size_t)((const char *)data + len - p) < 6 + 32)
		return -EBADMSG;
	memcpy(id, p + 6, 32);
	id[32] = '\0';
	return 0;
}

/* A new repository created at the same URL: what the cache holds is of no use. */
static int reset_if_replaced(struct remote *rm, cairn_s3_conn *c, const struct remote_obj *cfg,
                             const struct remote_opts *o)
{
	_cleanup_buf_ struct cairn_buf mine = CAIRN_BUF_INIT, theirs = CAIRN_BUF_INIT;
	char path[PATH_MAX], key[700], a[33], b[33];
	int r = path_of(rm, path, sizeof(path), "config");
	if (r < 0 || is_current(rm, cfg) || cairn_file_slurp(path, CONFIG_MAX, &mine) < 0)
		return r;
	if ((r = key_of(rm, "config", key, sizeof(key))) < 0 ||
	    (r = cairn_s3_get(c, key, 0, 0, CONFIG_MAX, &theirs)) < 0)
		return r;
	if (id_of_text(mine.data, mine.len, a) >= 0 &&
	    id_of_text(theirs.data, theirs.len, b) >= 0 && strcmp(a, b) == 0)
		return 0; /* the same repository; mirror() fetches its new config */
	log_warn("%s holds another repository now: dropping the cache '%s'", rm->url, rm->dir);
	if ((r = cairn_rm_rf(rm->dir)) < 0)
		return cairn_err_set(r, "cannot remove '%s': %s", rm->dir, strerror(-r));
	return make_cache(rm, o);
}

static bool unreachable(int r)
{
	return r == -EIO || r == -ETIMEDOUT;
}

/* List the bucket once and mirror it; offline, use what the cache holds. */
static int refresh(struct remote *rm, const struct remote_opts *o)
{
	struct remote_objs l = { 0 };
	char cfgpath[PATH_MAX];
	cairn_s3_conn *c = NULL;
	int r = take_conn(rm, &c);
	if (r >= 0)
		r = remote_list(c, rm->prefix, &l);
	if (r < 0 && unreachable(r) && path_of(rm, cfgpath, sizeof(cfgpath), "config") >= 0 &&
	    access(cfgpath, F_OK) == 0) {
		log_warn("cannot reach %s (%s): using the cached copy", rm->url, cairn_err_msg());
		r = packs_from_tails(rm);
		goto out;
	}
	const struct remote_obj *cfg = r < 0 ? NULL : remote_objs_find(&l, "config");
	if (r >= 0 && !cfg)
		r = cairn_err_set(-ENOENT, "%s holds no cairn repository (no 'config')", rm->url);
	if (r >= 0 && (r = reset_if_replaced(rm, c, cfg, o)) >= 0 && (r = mirror(rm, c, &l)) >= 0 &&
	    (r = packs_from_listing(rm, &l)) >= 0) {
		drop_gone(rm, &l, "keys", "keys/%.16s");
		drop_gone(rm, &l, "snapshots", "snapshots/%.64s");
		drop_gone(rm, &l, "tails", "packs/%.2s/%.64s");
	}
out:
	if (c)
		give_conn(rm, c);
	free(l.v);
	return r;
}

static int remote_new(struct remote **out, const char *url, const struct remote_opts *o)
{
	struct remote *rm = calloc(1, sizeof(*rm));
	if (!rm)
		return cairn_err_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&rm->lock, NULL);
	pthread_mutex_init(&rm->evict_lock, NULL);
	cairn_idset_init(&rm->packs);
	const char *e = getenv("CAIRN_CACHE_SIZE");
	uint64_t budget = o->cache_size;
	rm->budget = budget ? budget : REMOTE_CACHE_SIZE_DEFAULT;
	if (!budget && e && *e) {
		char *end;
		unsigned long long v = strtoull(e, &end, 10);
		if (*end == '\0' && v > 0)
			rm->budget = v;
	}
	int r = cairn_s3_url_parse(url, &rm->bucket, &rm->prefix);
	if (r >= 0)
		r = cairn_s3_new(&rm->s3, rm->bucket, &o->s3);
	if (r >= 0) {
		snprintf(rm->url, sizeof(rm->url), "s3://%s%s%s", rm->bucket,
		         rm->prefix[0] ? "/" : "", rm->prefix);
		r = make_cache(rm, o);
	}
	if (r < 0) {
		remote_free(rm);
		return r;
	}
	uint64_t used = 0;
	scan_blocks(rm, NULL, NULL, &used);
	atomic_store(&rm->used, used);
	*out = rm;
	return 0;
}

int remote_open(cairn_repo **out, const char *url, const char *pw, size_t pwlen,
                const struct remote_opts *o)
{
	struct remote *rm = NULL;
	int r = remote_new(&rm, url, o);
	if (r < 0)
		return r;
	if ((r = refresh(rm, o)) < 0) {
		remote_free(rm);
		return r;
	}
	struct cairn_pack_source src = { .foreach = src_foreach,
		                         .size = src_size,
		                         .pread = src_pread,
		                         .invalidate = src_invalidate,
		                         .release = remote_free,
		                         .payload = rm };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .packs = &src,
		                      .warn = cli_repo_warn };
	cairn_repo *repo;
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", rm->dir);
	/* From here the repository owns rm (src.release), also on failure. */
	if ((r = cairn_repo_open(&repo, dir, pw, pwlen, &ro)) < 0)
		return r;
	if ((r = cairn_repo_index_update(repo)) < 0) {
		cairn_repo_close(repo);
		return cairn_err_wrap(r, "cache of %s", url);
	}
	if (r > 0)
		log_info("%s: %d new packs indexed", url, r);
	*out = repo;
	return 0;
}
