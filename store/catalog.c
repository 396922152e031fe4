/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot catalog: snapshots/<id> files, the commit points of backups (FORMAT.md §8). */
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

struct id_list {
	struct cairn_id *v;
	size_t n, cap;
};

#define LISTING_REUSE_MS 2000

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A listing of a remote storage made a moment ago: copied into *l. */
static bool reuse_listing(cairn_repo *repo, struct id_list *l)
{
	bool ok = false;
	pthread_mutex_lock(&repo->lock);
	if (repo->snap_listed_ms && now_ms() - repo->snap_listed_ms < LISTING_REUSE_MS &&
	    (l->v = malloc((repo->nsnap_ids ? repo->nsnap_ids : 1) * sizeof(*l->v)))) {
		if (repo->nsnap_ids) /* memcpy from NULL is undefined even for 0 bytes */
			memcpy(l->v, repo->snap_ids, repo->nsnap_ids * sizeof(*l->v));
		l->n = l->cap = repo->nsnap_ids;
		ok = true;
	}
	pthread_mutex_unlock(&repo->lock);
	return ok;
}

static void keep_listing(cairn_repo *repo, const struct id_list *l)
{
	struct cairn_id *copy = malloc((l->n ? l->n : 1) * sizeof(*copy));
	if (!copy)
		return;
	if (l->n) /* an empty listing has no array at all */
		memcpy(copy, l->v, l->n * sizeof(*copy));
	pthread_mutex_lock(&repo->lock);
	free(repo->snap_ids);
	repo->snap_ids = copy;
	repo->nsnap_ids = l->n;
	repo->snap_listed_ms = now_ms();
	pthread_mutex_unlock(&repo->lock);
}

static void forget_listing(cairn_repo *repo)
{
	pthread_mutex_lock(&repo->lock);
	repo->snap_listed_ms = 0;
	pthread_mutex_unlock(&repo->lock);
}

/* A write-only key keeps what it saved in its host cache, the next backup's
 * parent (FORMAT.md §14). The snapshot is saved: a failure here only costs the
 * next backup reading everything. */
static void keep_saved(cairn_repo *repo, const struct cairn_id *id, const struct cairn_buf *plain)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &n);
	if (r >= 0)
		r = cairn_hostcache__saved(repo->hostcache, id, plain->data, plain->len, ids, n);
	if (r < 0)
		cairn_repo__warn(repo, "cannot keep the snapshot in the host cache: %s",
		                 cairn_err_msg());
}

int cairn_repo_snapshot_save(cairn_repo *repo, struct cairn_snapshot *s)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE];
	const struct cairn_keys *k = cairn_repo__keys(repo);
	struct cairn_id id;
	int r = cairn_repo__writable(repo);

	if (r < 0)
		return r;
	/* A snapshot is the commit point: after a lost pack it would refer to blobs
	 * that are not there. */
	if ((r = cairn_repo__write_error(repo)) < 0)
		return cairn_err_wrap(r, "cannot save the snapshot after a failed write");
	if ((r = cairn_snapshot_encode(s, &plain)) < 0)
		return r;
	if ((r = cairn_repo_blob_id(repo, plain.data, plain.len, &id)) < 0)
		return r;
	r = cairn_blob__encode(k, cairn_repo_compression(repo), CAIRN_BLOB_SNAPSHOT, &id,
	                       plain.data, plain.len, &sealed);
	if (r < 0)
		return r;
	cairn_id_hex(hex, &id);
	if ((r = cairn_repo__put_object(repo, CAIRN_OBJ_SNAPSHOT, hex, sealed.data, sealed.len)) <
	    0)
		return r;
	s->id = id;
	forget_listing(repo);
	if (repo->hostcache)
		keep_saved(repo, &id, &plain);
	if (cairn_repo__index(repo))
		return cairn_index__add_snapshot(cairn_repo__index(repo), &id, s->time_ns);
	return 0;
}

int cairn_repo_snapshot_load(cairn_repo *repo, const struct cairn_id *id,
                             struct cairn_snapshot **out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_snapshot *s;
	int r;

	if (repo->hostcache)
		return cairn_hostcache__snapshot(repo->hostcache, id, out);
	cairn_id_hex(hex, id);
	r = cairn_repo__get_object(repo, CAIRN_OBJ_SNAPSHOT, hex,
	                           CAIRN_SNAPSHOT_MAX_SIZE + CAIRN_SEAL_OVERHEAD_MAX, &sealed);
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "snapshot %.8s not found", hex);
	if (r < 0)
		return r == -EFBIG ? cairn_err_set(-EBADMSG, "snapshot %.8s is too large", hex) : r;
	r = cairn_blob__decode(cairn_repo__keys(repo), CAIRN_BLOB_SNAPSHOT, id, sealed.data,
	                       sealed.len, SIZE_MAX, CAIRN_SNAPSHOT_MAX_SIZE, &plain);
	if (r >= 0)
		r = cairn_snapshot_decode(&s, plain.data, plain.len);
	if (r == -EBADMSG && repo->cache)
		cairn_cache__drop(repo->cache, CAIRN_OBJ_SNAPSHOT, hex); /* fetched again */
	if (r < 0)
		return cairn_err_wrap(r, "snapshot %.8s", hex);
	s->id = *id;
	*out = s;
	return 0;
}

static int add_id(struct id_list *l, const char *name)
{
	struct cairn_id id;
	if (cairn_id_parse(&id, name) < 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct cairn_id *p = reallocarray(l->v, cap, sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = id;
	return 0;
}

static int stored_snapshot(const struct cairn_obj_info *o, void *payload)
{
	return add_id(payload, o->name);
}

static int cached_snapshot(const char *name, void *payload)
{
	return add_id(payload, name);
}

static int cmp_id(const void *a, const void *b)
{
	return cairn_id_cmp(a, b);
}

/* Sorted, each ID once: a listing that names a snapshot twice would have a
 * policy keep one copy and remove the other, the same file. */
static void unique(struct id_list *l)
{
	size_t n = 0;
	if (l->n)
		qsort(l->v, l->n, sizeof(*l->v), cmp_id);
	for (size_t i = 0; i < l->n; i++)
		if (n == 0 || cairn_id_cmp(&l->v[n - 1], &l->v[i]) != 0)
			l->v[n++] = l->v[i];
	l->n = n;
}

int cairn_repo_snapshot_ids(cairn_repo *repo, struct cairn_id **out, size_t *n)
{
	struct id_list l = { 0 };
	int r = 0;
	/* Offline, the snapshots are the ones the cache holds. A remote listing is
	 * reused for a moment: opening and then reading lists once. */
	if (repo->offline)
		r = cairn_cache__list(repo->cache, CAIRN_OBJ_SNAPSHOT, cached_snapshot, &l);
	else if (!repo->cache || !reuse_listing(repo, &l))
		r = cairn_storage_list(repo->st, CAIRN_OBJ_SNAPSHOT, stored_snapshot, &l);
	if (r < 0) {
		free(l.v);
		return r;
	}
	unique(&l);
	if (repo->cache && !repo->offline)
		keep_listing(repo, &l);
	*out = l.v;
	*n = l.n;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct cairn_snapshot *x = *(struct cairn_snapshot *const *)a;
	const struct cairn_snapshot *y = *(struct cairn_snapshot *const *)b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return cairn_id_cmp(&x->id, &y->id);
}

struct loading {
	cairn_repo *repo;
	const struct cairn_id *ids;
	struct cairn_snapshot **list; /* NULL where not loaded */
	bool strict;
	bool *missing; /* strict: where the GET answered "not found" */
};

/* Warn about a damaged snapshot once per handle: a command may list more than
 * once (report judges the status, which lists, then lists to draw). The
 * message is the one load_one() failed with. */
static void warn_damaged(cairn_repo *repo, const struct cairn_id *id)
{
	char why[512];
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	pthread_mutex_lock(&repo->lock);
	/* Out of memory: warn again rather than never. */
	bool first = cairn_idset_add(&repo->damaged_warned, id, 0) != 0;
	pthread_mutex_unlock(&repo->lock);
	if (first)
		cairn_repo__warn(repo, "skipping a damaged snapshot: %s", why);
}

static int load_one(size_t i, void *payload)
{
	struct loading *l = payload;
	int r = cairn_repo_snapshot_load(l->repo, &l->ids[i], &l->list[i]);
	if (r >= 0)
		return 0;
	l->list[i] = NULL;
	if (r == -EBADMSG && !l->strict)
		warn_damaged(l->repo, &l->ids[i]);
	else if (r != -ENOENT)
		return r;
	else if (l->strict)
		l->missing[i] = true;
	return 0;
}

/* Load every listed snapshot, in parallel (from a remote storage each is a
 * request until cached). A damaged one (-EBADMSG) fails the listing when strict,
 * else it is left out with a warning; one removed since the listing is left out
 * (strict: marked in missing, for the caller to confirm). */
static int load_all(cairn_repo *repo, const struct cairn_id *ids, size_t count, bool strict,
                    bool *missing, struct cairn_snapshot **list, size_t *n)
{
	struct loading l = { repo, ids, list, strict, missing };
	unsigned threads = repo->cache ? cairn_storage_concurrency(repo->st) : 1;
	int r = cairn_parallel(count, threads, load_one, &l);
	*n = 0;
	for (size_t i = 0; i < count; i++)
		if (list[i])
			list[(*n)++] = list[i];
	return r;
}

/* ---- a strict listing: prune does not take one listing's word -------------- */

static bool listed(const struct cairn_id *sorted, size_t n, const struct cairn_id *id)
{
	return n && bsearch(id, sorted, n, sizeof(*sorted), cmp_id);
}

struct doubts {
	cairn_repo *repo;
	const struct cairn_id *sorted; /* the listing (cairn_repo_snapshot_ids() sorts it) */
	size_t nsorted;
	struct id_list unlisted; /* in the cache and there, not listed */
};

/* A snapshot this host knows that the listing lacks: asked for. Gone, the
 * cache forgets it (the index does at its next refresh); there, it is a doubt
 * for a second listing. */
static int unlisted(struct doubts *d, const struct cairn_id *id)
{
	struct cairn_obj_info info;
	char hex[CAIRN_ID_HEX_SIZE];
	if (listed(d->sorted, d->nsorted, id))
		return 0;
	cairn_id_hex(hex, id);
	int r = cairn_storage_stat(d->repo->st, CAIRN_OBJ_SNAPSHOT, hex, &info);
	if (r == -ENOENT) {
		if (d->repo->cache)
			cairn_cache__drop(d->repo->cache, CAIRN_OBJ_SNAPSHOT, hex);
		return 0;
	}
	return r < 0 ? cairn_err_wrap(r, "snapshot %.8s", hex) : add_id(&d->unlisted, hex);
}

static int indexed_unlisted(const struct cairn_id *id, int64_t time_ns, void *payload)
{
	(void)time_ns;
	return unlisted(payload, id);
}

static int cached_unlisted(const char *name, void *payload)
{
	struct cairn_id id;
	return cairn_id_parse(&id, name) < 0 ? 0 : unlisted(payload, &id);
}

static int inconsistent(const struct cairn_id *id, const char *what)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, id);
	return cairn_err_set(-EPROTO, "the listing of snapshots/ is inconsistent: snapshot %.8s %s",
	                     hex, what);
}

/* List snapshots/ again to settle the doubts: a snapshot that was there but
 * not listed must be listed now (saved since the first listing), one that was
 * listed but not found must be gone from this listing too (removed since). */
static int settle(cairn_repo *repo, const struct id_list *unlisted, const struct cairn_id *ids,
                  const bool *missing, size_t count)
{
	_cleanup_free_ struct cairn_id *again = NULL;
	size_t n = 0;
	forget_listing(repo);
	int r = cairn_repo_snapshot_ids(repo, &again, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < unlisted->n; i++)
		if (!listed(again, n, &unlisted->v[i]))
			return inconsistent(&unlisted->v[i], "is there but not listed");
	for (size_t i = 0; i < count; i++)
		if (missing[i] && listed(again, n, &ids[i]))
			return inconsistent(&ids[i], "is listed but not found");
	return 0;
}

/* The snapshots this host knows (its index, else its cache) that the listing
 * lacks, checked one by one: a listing that leaves out a snapshot would have
 * prune delete its data. */
static int doubt_unlisted(cairn_repo *repo, const struct cairn_id *ids, size_t count,
                          struct id_list *out)
{
	struct doubts d = { .repo = repo, .sorted = ids, .nsorted = count };
	int r = cairn_repo__index(repo)
	                ? cairn_index__foreach_snapshot(cairn_repo__index(repo), indexed_unlisted,
	                                                &d)
	                : cairn_cache__list(repo->cache, CAIRN_OBJ_SNAPSHOT, cached_unlisted, &d);
	if (r < 0) {
		free(d.unlisted.v);
		return r;
	}
	*out = d.unlisted;
	return 0;
}

static int load_strict(cairn_repo *repo, const struct cairn_id *ids, size_t count,
                       struct cairn_snapshot **list, size_t *loaded)
{
	struct id_list unlisted = { 0 };
	_cleanup_free_ bool *missing = calloc(count ? count : 1, sizeof(*missing));
	if (!missing)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = repo->cache || cairn_repo__index(repo) ? doubt_unlisted(repo, ids, count, &unlisted)
	                                               : 0;
	if (r >= 0)
		r = load_all(repo, ids, count, true, missing, list, loaded);
	bool doubt = unlisted.n > 0;
	for (size_t i = 0; i < count && !doubt; i++)
		doubt = missing[i];
	if (r >= 0 && doubt)
		r = settle(repo, &unlisted, ids, missing, count);
	free(unlisted.v);
	return r;
}

int cairn_repo__snapshot_list(cairn_repo *repo, bool strict, struct cairn_snapshot ***out,
                              size_t *n)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t count = 0, loaded = 0;
	/* Prune's listing is never one made a moment ago: a backup that ended
	 * since may need what it is about to delete. */
	if (strict)
		forget_listing(repo);
	int r = cairn_repo_snapshot_ids(repo, &ids, &count);
	if (r < 0)
		return r;
	struct cairn_snapshot **list = NULL;
	/* A write-only key knows the snapshots it wrote (FORMAT.md §14). */
	if (repo->hostcache)
		r = cairn_hostcache__snapshots(repo->hostcache, ids, count, &list, &loaded);
	else if (!(list = calloc(count ? count : 1, sizeof(*list))))
		return cairn_err_set(-ENOMEM, "out of memory");
	else if (strict)
		r = load_strict(repo, ids, count, list, &loaded);
	else
		r = load_all(repo, ids, count, false, NULL, list, &loaded);
	if (r < 0) {
		cairn_snapshot_list_free(list, loaded);
		return r;
	}
	qsort(list, loaded, sizeof(*list), by_time);
	*out = list;
	*n = loaded;
	return 0;
}

int cairn_repo_snapshot_list(cairn_repo *repo, struct cairn_snapshot ***out, size_t *n)
{
	return cairn_repo__snapshot_list(repo, false, out, n);
}

/* The one of n IDs (id(i) gives the i-th) that the ID prefix spec names, in
 * either case ("7B60" is "7b60"): its index, -ENOENT none, -EINVAL ambiguous or
 * malformed. */
static int find_prefix(const char *spec, size_t n,
                       const struct cairn_id *(*id)(const void *, size_t), const void *ids)
{
	size_t len = strlen(spec);
	int found = -1, matches = 0;

	if (len < 4 || len > 64 || strspn(spec, "0123456789abcdefABCDEF") != len)
		return cairn_err_set(-EINVAL, "'%s' is not a snapshot ID or 'latest'", spec);
	for (size_t i = 0; i < n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id(ids, i));
		if (strncasecmp(hex, spec, len) == 0 && matches++ == 0)
			found = (int)i;
	}
	if (matches == 0)
		return cairn_err_set(-ENOENT, "no snapshot matches '%s'", spec);
	if (matches > 1)
		return cairn_err_set(-EINVAL, "snapshot ID '%s' is ambiguous (%d match)", spec,
		                     matches);
	return found;
}

static const struct cairn_id *snapshot_id_at(const void *list, size_t i)
{
	return &((struct cairn_snapshot *const *)list)[i]->id;
}

static const struct cairn_id *id_at(const void *ids, size_t i)
{
	return &((const struct cairn_id *)ids)[i];
}

int cairn_snapshot_find(struct cairn_snapshot *const *list, size_t n, const char *spec)
{
	if (strcmp(spec, "latest") == 0) {
		if (n == 0)
			return cairn_err_set(-ENOENT, "the repository has no snapshots");
		return (int)(n - 1);
	}
	return find_prefix(spec, n, snapshot_id_at, list);
}

int cairn_repo_snapshot_resolve(cairn_repo *repo, const char *spec, struct cairn_id *out)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &n);
	if (r >= 0 && (r = find_prefix(spec, n, id_at, ids)) >= 0)
		*out = ids[r];
	return r < 0 ? r : 0;
}

int cairn_repo_snapshot_delete(cairn_repo *repo, const struct cairn_id *id)
{
	char hex[CAIRN_ID_HEX_SIZE];
	int r = cairn_repo__writable(repo);

	if (r < 0)
		return r;
	cairn_id_hex(hex, id);
	if ((r = cairn_storage_remove(repo->st, CAIRN_OBJ_SNAPSHOT, hex)) < 0)
		return cairn_err_wrap(r, "cannot remove snapshot %.8s", hex);
	if (repo->cache)
		cairn_cache__drop(repo->cache, CAIRN_OBJ_SNAPSHOT, hex);
	forget_listing(repo);
	if (cairn_repo__index(repo))
		return cairn_index__del_snapshot(cairn_repo__index(repo), id);
	return 0;
}
