/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host cache of a write-only key (FORMAT.md §14, DESIGN.md "Write-only keys"). */
#include "hostcache.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "storage.h"

#define TREES_MAGIC "CHTL"
#define TREES_VERSION 1
#define TREES_HEAD 9 /* magic, version, u32 count */

struct cairn_hostcache {
	char dir[PATH_MAX - 160]; /* paths below it fit PATH_MAX */
	char tmp[PATH_MAX];
	int lock_fd;
	uint8_t id_key[CAIRN_KEY_SIZE];
	pthread_mutex_t mu;
	struct cairn_idset noted; /* trees of the snapshot to come; protected by mu */
};

/* ---- the .trees format --------------------------------------------------- */

static int by_id(const void *a, const void *b)
{
	return cairn_id_cmp(a, b);
}

int cairn_hostcache__encode_trees(struct cairn_buf *out, const struct cairn_idset *set)
{
	_cleanup_free_ struct cairn_id *v = calloc(set->count ? set->count : 1, sizeof(*v));
	const struct cairn_id *id;
	size_t n = 0;
	int r;

	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (set->count > CAIRN_HOSTCACHE_TREES_MAX)
		return cairn_err_set(-EINVAL, "%zu trees are more than a host cache keeps",
		                     set->count);
	for (size_t pos = 0; cairn_idset_next(set, &pos, &id);)
		v[n++] = *id;
	qsort(v, n, sizeof(*v), by_id);
	if ((r = cairn_buf_put(out, TREES_MAGIC, 4)) < 0 ||
	    (r = cairn_buf_put_u8(out, TREES_VERSION)) < 0 ||
	    (r = cairn_buf_put_u32(out, (uint32_t)n)) < 0)
		return r;
	return cairn_buf_put(out, v, n * sizeof(*v));
}

int cairn_hostcache__parse_trees(const uint8_t *p, size_t len, struct cairn_id **out, size_t *n)
{
	struct cairn_rd rd = { p, len };
	const uint8_t *magic;
	uint8_t version;
	uint32_t count;

	if (cairn_rd_take(&rd, 4, &magic) < 0 || memcmp(magic, TREES_MAGIC, 4) != 0)
		return cairn_err_set(-EBADMSG, "tree list: bad magic");
	if (cairn_rd_u8(&rd, &version) < 0 || cairn_rd_u32(&rd, &count) < 0)
		return cairn_err_set(-EBADMSG, "tree list: truncated at offset %zu", len - rd.left);
	if (version != TREES_VERSION)
		return cairn_err_set(-EBADMSG, "tree list: unsupported version %u", version);
	if (count > CAIRN_HOSTCACHE_TREES_MAX || (size_t)count * CAIRN_ID_SIZE != rd.left)
		return cairn_err_set(-EBADMSG, "tree list: %zu bytes for %u IDs", rd.left, count);
	_cleanup_free_ struct cairn_id *v = calloc(count ? count : 1, sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		cairn_rd_copy(&rd, v[i].b, CAIRN_ID_SIZE); /* the length was checked */
		if (i > 0 && cairn_id_cmp(&v[i - 1], &v[i]) >= 0)
			return cairn_err_set(-EBADMSG, "tree list: ID %zu is out of order", i);
	}
	*out = TAKE_PTR(v);
	*n = count;
	return 0;
}

/* ---- files ----------------------------------------------------------------- */

static int path_of(const cairn_hostcache *hc, char *out, size_t size, const char *sub,
                   const struct cairn_id *id, const char *ext)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, id);
	int n = strcmp(sub, "trees") == 0
	                ? snprintf(out, size, "%s/trees/%.2s/%s%s", hc->dir, hex, hex, ext)
	                : snprintf(out, size, "%s/%s/%s%s", hc->dir, sub, hex, ext);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-ENAMETOOLONG, "path too long") : 0;
}

static int put_file(const cairn_hostcache *hc, const char *path, const void *data, size_t len)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0'; /* path_of made it, with a '/' */
	int r = cairn_mkdir_p(dir, 0700);
	return r < 0 ? r : cairn_file_write_unsynced(path, hc->tmp, data, len);
}

/* The plaintext of an object named by its blob ID: -ENOENT when absent or, then
 * removed, when its content is not what the name says (a torn write). */
static int get_named(const cairn_hostcache *hc, const char *path, const struct cairn_id *id,
                     size_t max, struct cairn_buf *out)
{
	struct cairn_id got;
	cairn_buf_release(out);
	int r = cairn_file_slurp(path, max, out);
	if (r == -ENOENT || r == -EFBIG)
		return -ENOENT;
	if (r < 0)
		return r;
	if ((r = cairn_crypt__hmac(hc->id_key, out->data, out->len, got.b)) < 0)
		return r;
	if (!cairn_crypt__equal(got.b, id->b, CAIRN_ID_SIZE)) {
		log_debug("host cache: '%s' is damaged, removed", path);
		unlink(path);
		out->len = 0;
		return -ENOENT;
	}
	return 0;
}

static void note(cairn_hostcache *hc, const struct cairn_id *id)
{
	pthread_mutex_lock(&hc->mu);
	if (cairn_idset_add(&hc->noted, id, 0) < 0)
		log_debug("host cache: cannot note a tree: out of memory");
	pthread_mutex_unlock(&hc->mu);
}

int cairn_hostcache__keep_tree(cairn_hostcache *hc, const struct cairn_id *id, const void *data,
                               size_t len)
{
	char path[PATH_MAX];
	int r = path_of(hc, path, sizeof(path), "trees", id, "");
	if (r >= 0 && access(path, F_OK) < 0)
		r = put_file(hc, path, data, len);
	if (r >= 0)
		note(hc, id);
	return r;
}

int cairn_hostcache__tree(cairn_hostcache *hc, const struct cairn_id *id, struct cairn_buf *out)
{
	char path[PATH_MAX], hex[CAIRN_ID_HEX_SIZE];
	int r = path_of(hc, path, sizeof(path), "trees", id, "");
	if (r >= 0)
		r = get_named(hc, path, id, CAIRN_TREE_MAX_SIZE, out);
	if (r == -ENOENT) {
		cairn_id_hex(hex, id);
		return cairn_err_set(-ENOENT, "tree %.8s is not in the host cache '%s'", hex,
		                     hc->dir);
	}
	if (r >= 0)
		note(hc, id);
	return r;
}

/* ---- snapshots --------------------------------------------------------------- */

int cairn_hostcache__snapshot(cairn_hostcache *hc, const struct cairn_id *id,
                              struct cairn_snapshot **out)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char path[PATH_MAX], hex[CAIRN_ID_HEX_SIZE];
	struct cairn_snapshot *s;
	int r = path_of(hc, path, sizeof(path), "snapshots", id, "");

	if (r >= 0)
		r = get_named(hc, path, id, CAIRN_SNAPSHOT_MAX_SIZE, &b);
	cairn_id_hex(hex, id);
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "snapshot %.8s is not in the host cache '%s'", hex,
		                     hc->dir);
	if (r >= 0 && (r = cairn_snapshot_decode(&s, b.data, b.len)) < 0) {
		unlink(path);
		return cairn_err_wrap(-ENOENT, "host cache: snapshot %.8s", hex);
	}
	if (r < 0)
		return r;
	s->id = *id;
	*out = s;
	return 0;
}

struct snaplist {
	struct cairn_snapshot **v;
	size_t n, cap;
};

static int snaplist_add(struct snaplist *l, struct cairn_snapshot *s)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct cairn_snapshot **v = reallocarray(l->v, cap, sizeof(*v));
		if (!v) {
			cairn_snapshot_free(s);
			return cairn_err_set(-ENOMEM, "out of memory");
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = s;
	return 0;
}

/* Every snapshot kept (names of 64 hex digits in snapshots/), and the IDs of
 * those that are damaged (removed already). */
static int load_all(cairn_hostcache *hc, struct snaplist *l)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/snapshots", hc->dir);
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : cairn_err_set(-errno, "cannot open '%s': %m", dir);
	for (struct dirent *de; (de = readdir(d));) {
		struct cairn_snapshot *s;
		struct cairn_id id;
		if (strlen(de->d_name) != 64 || cairn_id_parse(&id, de->d_name) < 0)
			continue;
		int r = cairn_hostcache__snapshot(hc, &id, &s);
		if (r == -ENOENT)
			continue;
		if (r < 0 || (r = snaplist_add(l, s)) < 0)
			return r;
	}
	return 0;
}

static int ids_to_set(struct cairn_idset *set, const struct cairn_id *ids, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (cairn_idset_add(set, &ids[i], 0) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

int cairn_hostcache__snapshots(cairn_hostcache *hc, const struct cairn_id *ids, size_t nids,
                               struct cairn_snapshot ***out, size_t *n)
{
	_cleanup_(cairn_idset_release) struct cairn_idset in_storage;
	struct snaplist l = { 0 };
	size_t k = 0;
	cairn_idset_init(&in_storage);
	int r = ids_to_set(&in_storage, ids, nids);
	if (r >= 0)
		r = load_all(hc, &l);
	for (size_t i = 0; i < l.n; i++) {
		if (r >= 0 && cairn_idset_has(&in_storage, &l.v[i]->id))
			l.v[k++] = l.v[i];
		else
			cairn_snapshot_free(l.v[i]); /* forgotten by an admin, or on failure */
	}
	if (r < 0) {
		free(l.v);
		return r;
	}
	*out = l.v ? l.v : calloc(1, sizeof(*l.v));
	*n = k;
	return *out ? 0 : cairn_err_set(-ENOMEM, "out of memory");
}

/* ---- tidying up -------------------------------------------------------------- */

static bool same_group(const struct cairn_snapshot *a, const struct cairn_snapshot *b)
{
	if (strcmp(a->hostname, b->hostname) != 0 || a->npaths != b->npaths)
		return false;
	for (size_t i = 0; i < a->npaths; i++)
		if (strcmp(a->paths[i], b->paths[i]) != 0)
			return false;
	return true;
}

static bool newer(const struct cairn_snapshot *a, const struct cairn_snapshot *b)
{
	return a->time_ns != b->time_ns ? a->time_ns > b->time_ns
	                                : cairn_id_cmp(&a->id, &b->id) > 0;
}

/* Whether s stays: listed by the storage, and the newest of its group. */
static bool stays(const struct snaplist *l, size_t i, const struct cairn_idset *in_storage)
{
	if (!cairn_idset_has(in_storage, &l->v[i]->id))
		return false;
	for (size_t j = 0; j < l->n; j++)
		if (j != i && cairn_idset_has(in_storage, &l->v[j]->id) &&
		    same_group(l->v[i], l->v[j]) && newer(l->v[j], l->v[i]))
			return false;
	return true;
}

static void drop_snapshot(const cairn_hostcache *hc, const struct cairn_id *id)
{
	char path[PATH_MAX];
	if (path_of(hc, path, sizeof(path), "snapshots", id, ".trees") >= 0)
		unlink(path);
	if (path_of(hc, path, sizeof(path), "snapshots", id, "") >= 0)
		unlink(path);
}

/* Add the trees a kept snapshot names to keep. */
static int keep_trees_of(const cairn_hostcache *hc, const struct cairn_id *snap,
                         struct cairn_idset *keep)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_id *v = NULL;
	char path[PATH_MAX];
	size_t n = 0;
	int r = path_of(hc, path, sizeof(path), "snapshots", snap, ".trees");
	if (r >= 0)
		r = cairn_file_slurp(path, TREES_HEAD + (size_t)CAIRN_HOSTCACHE_TREES_MAX * 32, &b);
	if (r >= 0)
		r = cairn_hostcache__parse_trees(b.data, b.len, &v, &n);
	if (r < 0) {
		/* Without its list the snapshot is no parent worth having. */
		drop_snapshot(hc, snap);
		return 0;
	}
	for (size_t i = 0; i < n; i++)
		if (cairn_idset_add(keep, &v[i], 0) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

static void sweep_trees(const cairn_hostcache *hc, const struct cairn_idset *keep)
{
	char dir[PATH_MAX - 16], sub[PATH_MAX - 8], path[PATH_MAX + 80];
	snprintf(dir, sizeof(dir), "%s/trees", hc->dir);
	_cleanup_closedir_ DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		if (strlen(de->d_name) != 2 || de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		_cleanup_closedir_ DIR *s = opendir(sub);
		for (struct dirent *f; s && (f = readdir(s));) {
			struct cairn_id id;
			if (f->d_name[0] == '.')
				continue;
			if (strlen(f->d_name) == 64 && cairn_id_parse(&id, f->d_name) >= 0 &&
			    cairn_idset_has(keep, &id))
				continue;
			snprintf(path, sizeof(path), "%s/%s", sub, f->d_name);
			unlink(path);
		}
	}
}

static int tidy(cairn_hostcache *hc, const struct cairn_id *ids, size_t nids)
{
	_cleanup_(cairn_idset_release) struct cairn_idset in_storage, keep;
	struct snaplist l = { 0 };
	cairn_idset_init(&in_storage);
	cairn_idset_init(&keep);
	int r = ids_to_set(&in_storage, ids, nids);
	if (r >= 0)
		r = load_all(hc, &l);
	for (size_t i = 0; r >= 0 && i < l.n; i++)
		if (!stays(&l, i, &in_storage))
			drop_snapshot(hc, &l.v[i]->id);
		else
			r = keep_trees_of(hc, &l.v[i]->id, &keep);
	if (r >= 0)
		sweep_trees(hc, &keep);
	cairn_snapshot_list_free(l.v, l.n);
	return r;
}

int cairn_hostcache__saved(cairn_hostcache *hc, const struct cairn_id *id, const void *plain,
                           size_t len, const struct cairn_id *ids, size_t nids)
{
	_cleanup_buf_ struct cairn_buf list = CAIRN_BUF_INIT;
	char path[PATH_MAX];
	pthread_mutex_lock(&hc->mu);
	int r = cairn_hostcache__encode_trees(&list, &hc->noted);
	cairn_idset_release(&hc->noted);
	cairn_idset_init(&hc->noted);
	pthread_mutex_unlock(&hc->mu);
	/* The list first: a snapshot without one is dropped as no parent. */
	if (r >= 0 && (r = path_of(hc, path, sizeof(path), "snapshots", id, ".trees")) >= 0)
		r = put_file(hc, path, list.data, list.len);
	if (r >= 0 && (r = path_of(hc, path, sizeof(path), "snapshots", id, "")) >= 0)
		r = put_file(hc, path, plain, len);
	if (r < 0)
		return r;
	/* Another process with the cache open may be between storing a tree and
	 * saving its snapshot: its trees are in no list yet. Tidy up another time. */
	if (flock(hc->lock_fd, LOCK_EX | LOCK_NB) < 0)
		return 0;
	r = tidy(hc, ids, nids);
	flock(hc->lock_fd, LOCK_SH);
	return r;
}

/* ---- open and close ------------------------------------------------------------ */

static int open_dir(cairn_hostcache *hc, const char *base_opt,
                    const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	char base[PATH_MAX - 256], hex[2 * CAIRN_REPO_ID_SIZE + 1], lock[PATH_MAX];
	int r = cairn_storage__cache_base(base_opt, base, sizeof(base));
	if (r < 0)
		return r;
	cairn_hex(hex, repo_id, CAIRN_REPO_ID_SIZE);
	snprintf(hc->dir, sizeof(hc->dir), "%s/host-%s", base, hex);
	snprintf(hc->tmp, sizeof(hc->tmp), "%s/tmp", hc->dir);
	snprintf(lock, sizeof(lock), "%s/lock", hc->dir);
	if ((r = cairn_mkdir_p(hc->tmp, 0700)) < 0)
		return cairn_err_wrap(r, "cannot create the host cache");
	hc->lock_fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (hc->lock_fd < 0)
		return cairn_err_set(-errno, "cannot open '%s': %m", lock);
	if (flock(hc->lock_fd, LOCK_SH) < 0)
		return cairn_err_set(-errno, "cannot lock '%s': %m", lock);
	return 0;
}

int cairn_hostcache__open(cairn_hostcache **out, const char *base_opt,
                          const uint8_t repo_id[CAIRN_REPO_ID_SIZE],
                          const uint8_t id_key[CAIRN_KEY_SIZE])
{
	cairn_hostcache *hc = calloc(1, sizeof(*hc));
	if (!hc)
		return cairn_err_set(-ENOMEM, "out of memory");
	hc->lock_fd = -1;
	pthread_mutex_init(&hc->mu, NULL);
	cairn_idset_init(&hc->noted);
	memcpy(hc->id_key, id_key, CAIRN_KEY_SIZE);
	int r = open_dir(hc, base_opt, repo_id);
	if (r < 0) {
		cairn_hostcache__close(hc);
		return r;
	}
	*out = hc;
	return 0;
}

void cairn_hostcache__close(cairn_hostcache *hc)
{
	if (!hc)
		return;
	if (hc->lock_fd >= 0)
		close(hc->lock_fd);
	cairn_idset_release(&hc->noted);
	pthread_mutex_destroy(&hc->mu);
	OPENSSL_cleanse(hc->id_key, sizeof(hc->id_key));
	free(hc);
}

const char *cairn_hostcache__dir(const cairn_hostcache *hc)
{
	return hc->dir;
}
