/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Bringing the index (a cache, FORMAT.md §7) in line with the storage: rebuild
 * it, index packs it lacks, drop packs and snapshots that are gone. */
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

/* The packs a listing found. */
struct packlist {
	struct cairn_id *id;
	uint64_t *size;
	size_t n, cap;
};

static void packlist_release(struct packlist *l)
{
	free(l->id);
	free(l->size);
}

static int packlist_add(struct packlist *l, const struct cairn_id *id, uint64_t size)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 256;
		struct cairn_id *v = reallocarray(l->id, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->id = v;
		uint64_t *s = reallocarray(l->size, cap, sizeof(*s));
		if (!s)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->size = s;
		l->cap = cap;
	}
	l->id[l->n] = *id;
	l->size[l->n++] = size;
	return 0;
}

struct listing {
	cairn_repo *repo;
	struct packlist *all;     /* every pack listed, when not NULL */
	struct packlist *unknown; /* the ones the index lacks, when not NULL */
};

static int pack_listed(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct listing *l = payload;
	int r = 0;
	if (l->all && (r = packlist_add(l->all, pack, size)) < 0)
		return r;
	if (!l->unknown || cairn_repo__doomed(l->repo, pack))
		return 0; /* a prune is deleting it: not adopted (pending.c) */
	if ((r = cairn_index__has_pack(l->repo->index, pack, NULL)) < 0)
		return r;
	return r ? 0 : packlist_add(l->unknown, pack, size);
}

/* ---- reading many pack headers ----------------------------------------------- */

struct headers {
	cairn_repo *repo;
	const struct packlist *l;
	struct cairn_index_pack *out; /* e NULL: unreadable or gone, left out */
	bool name;
	char **why; /* a rebuild's: why the header of out[i] could not be read */
};

static int read_header(size_t i, void *payload)
{
	struct headers *h = payload;
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	int r = cairn_repo__pack_entries_sized(h->repo, &h->l->id[i], h->l->size[i], &e, &n);
	/* Gone since it was listed or marked: a prune deleted it. */
	if (r == -ENOENT)
		return h->name ? cairn_repo__unnamed_drop(h->repo, &h->l->id[i]) : 0;
	if (r == -ENOMEM)
		return r;
	if (r < 0 && h->why) {
		/* A rebuild looks for its entries in the index files (from_files). */
		return (h->why[i] = strdup(cairn_err_msg()))
		               ? 0
		               : cairn_err_set(-ENOMEM, "out of memory");
	}
	if (r < 0) {
		/* One bad pack must not stop recovery of the others: check reports it. */
		cairn_repo__warn(h->repo, "skipping pack: %s", cairn_err_msg());
		return 0;
	}
	h->out[i] = (struct cairn_index_pack){ h->l->id[i], h->l->size[i], e, n };
	return 0;
}

static void warn_damaged(cairn_repo *repo, const struct cairn_index_pack *p, const char *why,
                         const struct cairn_id *file)
{
	char hex[CAIRN_ID_HEX_SIZE], fhex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, &p->id);
	if (!p->e) {
		cairn_repo__warn(repo,
		                 "pack %.8s: header damaged (%s), and no index file names it: its "
		                 "blobs are left out of the index",
		                 hex, why);
		return;
	}
	cairn_id_hex(fhex, file);
	cairn_repo__warn(repo, "pack %.8s: header damaged (%s); %zu %s taken from index file %.8s",
	                 hex, why, p->n, p->n == 1 ? "blob" : "blobs", fhex);
}

/* The packs of a rebuild whose header cannot be read: their entries are those
 * a sound index file gives for them (authenticated under K_idx, and equal to
 * the header's by construction, FORMAT.md §12), so that the rebuilt index is
 * the one it replaces (§7); each blob is still authenticated when it is read.
 * Those no index file names are counted in repo->unindexed. */
static int from_files(struct headers *h)
{
	size_t n = 0, k = 0;
	for (size_t i = 0; i < h->l->n; i++)
		n += h->why[i] != NULL;
	if (n == 0)
		return 0;
	_cleanup_free_ struct cairn_index_pack *want = calloc(n, sizeof(*want));
	_cleanup_free_ struct cairn_id *file = calloc(n, sizeof(*file));
	if (!want || !file)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < h->l->n; i++)
		if (h->why[i])
			want[k++] =
			        (struct cairn_index_pack){ h->l->id[i], h->l->size[i], NULL, 0 };
	int r = cairn_repo__entries_from_index_files(h->repo, want, n, file);
	k = 0;
	for (size_t i = 0; i < h->l->n; i++) {
		if (!h->why[i])
			continue;
		if (r >= 0)
			warn_damaged(h->repo, &want[k], h->why[i], &file[k]);
		if (!want[k].e)
			h->repo->unindexed++;
		h->out[i] = want[k++];
	}
	return r < 0 ? r : 0;
}

/* Index the packs of l from their headers, read in parallel (a remote storage
 * answers each with a request); all in one index transaction. name: the next
 * index file of this handle names them (packs a killed writer left, which other
 * hosts should find too). rebuild: a damaged header's entries are taken from
 * the index files. Returns how many were indexed. */
static int index_packs(cairn_repo *repo, const struct packlist *l, bool name, bool rebuild)
{
	struct headers h = { repo, l, calloc(l->n ? l->n : 1, sizeof(*h.out)), name, NULL };
	size_t k = 0;
	if (!h.out || (rebuild && !(h.why = calloc(l->n ? l->n : 1, sizeof(*h.why))))) {
		free(h.out);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	int r = cairn_parallel(l->n, cairn_storage_concurrency(repo->st), read_header, &h);
	if (r >= 0 && rebuild)
		r = from_files(&h);
	for (size_t i = 0; rebuild && i < l->n; i++)
		free(h.why[i]);
	free(h.why);
	for (size_t i = 0; i < l->n; i++)
		if (h.out[i].e)
			h.out[k++] = h.out[i];
	for (size_t i = 0; r >= 0 && name && i < k; i++)
		r = cairn_repo__unnamed_mark(repo, &h.out[i].id, h.out[i].size);
	if (r >= 0 && k)
		r = cairn_index__replace_packs(repo->index, NULL, 0, h.out, k);
	/* Checked again once the writer holds its lock, unless it does already
	 * (pending.c); named only then. */
	pthread_mutex_lock(&repo->doomed_lock);
	bool recheck = name && !atomic_load(&repo->doomed_known);
	for (size_t i = 0; r >= 0 && recheck && i < k; i++)
		if (cairn_idset_add(&repo->adopted, &h.out[i].id, 0) < 0)
			r = cairn_err_set(-ENOMEM, "out of memory");
	if (recheck && k)
		atomic_store(&repo->names_held, true);
	pthread_mutex_unlock(&repo->doomed_lock);
	for (size_t i = 0; r >= 0 && name && i < k; i++)
		r = cairn_repo__note_pack(repo, &h.out[i].id, h.out[i].size, h.out[i].e,
		                          h.out[i].n);
	for (size_t i = 0; i < k; i++)
		free((void *)h.out[i].e);
	free(h.out);
	return r < 0 ? r : (int)k;
}

/* ---- snapshots ------------------------------------------------------------------ */

static int rebuild_snapshots(cairn_repo *repo)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &n);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct cairn_snapshot *s;
		int q = cairn_repo_snapshot_load(repo, &ids[i], &s);
		/* A write-only key knows only its own (FORMAT.md §14). */
		if (q == -ENOENT && repo->hostcache)
			continue;
		if (q < 0) {
			cairn_repo__warn(repo, "skipping snapshot: %s", cairn_err_msg());
			continue;
		}
		r = cairn_index__add_snapshot(repo->index, &ids[i], s->time_ns);
		cairn_snapshot_free(s);
	}
	return r;
}

static int indexed_snapshot(const struct cairn_id *id, int64_t time_ns, void *payload)
{
	(void)time_ns;
	return cairn_idset_add(payload, id, 0) < 0 ? -ENOMEM : 0;
}

/* Whether a snapshot the index knows that the listing lacks is gone: 1 when
 * the storage says so. A listing that leaves one out (an eventually consistent
 * store, a caching proxy) must not make this host forget it, or prune would
 * have nothing left to doubt that listing with. No answer: kept, asked again. */
static int removed(cairn_repo *repo, const char *hex)
{
	struct cairn_obj_info info;
	if (repo->offline)
		return 1;
	return cairn_storage_stat(repo->st, CAIRN_OBJ_SNAPSHOT, hex, &info) == -ENOENT;
}

/* Snapshots added or removed since the index last saw the storage; the cache
 * drops the copies of removed ones. */
static int update_snapshots(cairn_repo *repo)
{
	_cleanup_(cairn_idset_release) struct cairn_idset indexed;
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0, pos = 0;
	const struct cairn_id *id;
	cairn_idset_init(&indexed);
	int r = cairn_index__foreach_snapshot(repo->index, indexed_snapshot, &indexed);
	if (r >= 0)
		r = cairn_repo_snapshot_ids(repo, &ids, &n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct cairn_snapshot *s;
		if (cairn_idset_del(&indexed, &ids[i]) > 0 ||
		    cairn_repo_snapshot_load(repo, &ids[i], &s) < 0)
			continue;
		r = cairn_index__add_snapshot(repo->index, &ids[i], s->time_ns);
		cairn_snapshot_free(s);
	}
	while (r >= 0 && cairn_idset_next(&indexed, &pos, &id)) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		if (!removed(repo, hex))
			continue;
		if (repo->cache)
			cairn_cache__drop(repo->cache, CAIRN_OBJ_SNAPSHOT, hex);
		r = cairn_index__del_snapshot(repo->index, id);
	}
	return r;
}

/* ---- rebuild, adopt, refresh ------------------------------------------------------ */

int cairn_repo_rebuild_index(cairn_repo *repo)
{
	int r = cairn_repo__writable(repo);
	return r < 0 && !repo->cache ? r : cairn_repo__rebuild_index(repo);
}

size_t cairn_repo_unindexed_packs(const cairn_repo *repo)
{
	return repo->unindexed;
}

int cairn_repo__rebuild_index(cairn_repo *repo)
{
	struct packlist all = { 0 };
	struct listing l = { .repo = repo, .all = &all };
	int r;

	repo->unindexed = 0;

	if (!repo->index) {
		/* Opened without index, maybe because it was damaged: start afresh. */
		char dir[PATH_MAX];
		if ((r = cairn_repo__path(repo, dir, sizeof(dir), "index")) < 0)
			return r;
		if ((r = cairn_rm_rf(dir)) < 0)
			return cairn_err_set(r, "cannot remove '%s': %s", dir, strerror(-r));
		if ((r = cairn_mkdir_p(dir, 0700)) < 0 ||
		    (r = cairn_index__open(&repo->index, dir, false, repo->cfg.id)) < 0)
			return r;
	}
	/* The index files before the packs: a file listed later could name a
	 * pack the listing missed, and would never be read. */
	if ((r = cairn_index__clear(repo->index)) >= 0 &&
	    (r = cairn_repo__index_files_seen(repo)) >= 0 &&
	    (r = cairn_repo_foreach_pack(repo, pack_listed, &l)) >= 0 &&
	    (r = index_packs(repo, &all, false, true)) >= 0) {
		int packs = r;
		r = rebuild_snapshots(repo);
		r = r < 0 ? r : packs;
	}
	if (r < 0)
		cairn_repo__index_files_forget(repo);
	packlist_release(&all);
	return r;
}

static int adopt_check(cairn_repo *repo)
{
	int r = cairn_repo__writable(repo);
	if (r < 0)
		return r;
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	return 0;
}

typedef int each_pack_fn(cairn_repo *repo,
                         int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                         void *payload);

/* Index from their headers the packs that each() offers and pick() keeps;
 * name: the next index file of this handle names them. */
static int index_from(cairn_repo *repo, each_pack_fn *each,
                      int (*pick)(const struct cairn_id *, uint64_t, void *), bool name)
{
	struct packlist found = { 0 };
	struct listing l = { .repo = repo, .unknown = &found };
	int r = each(repo, pick, &l);
	if (r >= 0)
		r = found.n ? index_packs(repo, &found, name, false) : 0;
	packlist_release(&found);
	return r;
}

int cairn_repo_index_unknown_packs(cairn_repo *repo)
{
	int r = adopt_check(repo);
	if (r >= 0)
		r = cairn_repo__learn_doomed(repo);
	return r < 0 ? r
	             : index_from(repo, cairn_repo_foreach_pack, pack_listed,
	                          !cairn_repo__read_only(repo));
}

struct gone {
	cairn_repo *repo;
	struct cairn_idset listed;
	struct packlist out;
};

static int unlisted(const struct cairn_id *pack, uint64_t size, uint32_t count, void *payload)
{
	struct gone *g = payload;
	(void)count;
	return cairn_idset_has(&g->listed, pack) ? 0 : packlist_add(&g->out, pack, size);
}

/* Keep in g->out only the packs the storage still lacks: a writer may have
 * stored and indexed one since the listing (it stores before it indexes, so
 * one indexed now is there now, if at all). A request each, for what is rare. */
static int confirm_gone(struct gone *g)
{
	size_t k = 0;
	for (size_t i = 0; i < g->out.n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		struct cairn_obj_info o;
		cairn_id_hex(hex, &g->out.id[i]);
		int r = cairn_storage_stat(g->repo->st, CAIRN_OBJ_PACK, hex, &o);
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT) {
			g->out.id[k] = g->out.id[i];
			g->out.size[k++] = g->out.size[i];
		}
	}
	g->out.n = k;
	return 0;
}

/* The packs of the index that all (a listing of the storage) lacks leave it:
 * lost, or deleted behind cairn's back. Their blobs then count as not stored,
 * and the backups that meet them store them again. Returns how many left. */
static int drop_unlisted(cairn_repo *repo, const struct packlist *all)
{
	struct gone g = { .repo = repo };
	cairn_idset_init(&g.listed);
	int r = 0;
	for (size_t i = 0; r >= 0 && i < all->n; i++)
		if (cairn_idset_add(&g.listed, &all->id[i], 0) < 0)
			r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0)
		r = cairn_index__foreach_pack(repo->index, unlisted, &g);
	if (r >= 0)
		r = confirm_gone(&g);
	for (size_t i = 0; r >= 0 && i < g.out.n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &g.out.id[i]);
		cairn_repo__warn(repo,
		                 "pack %s is missing from %s (lost, or deleted behind cairn's "
		                 "back): left out of the index, a backup stores its blobs again",
		                 hex, cairn_storage_url(repo->st));
	}
	/* Doomed, they lose to any other copy of their blobs (an index file of a
	 * backup that stored them again): a cache loads its index files anew with
	 * that known, before the gone packs leave, so that those copies stay. */
	bool rebuilt;
	if (r >= 0 && g.out.n)
		r = cairn_repo__doom(repo, g.out.id, g.out.n);
	if (r >= 0 && g.out.n && repo->cache)
		r = cairn_repo__load_index_files(repo, true, &rebuilt);
	if (r >= 0 && g.out.n &&
	    (r = cairn_index__replace_packs(repo->index, g.out.id, g.out.n, NULL, 0)) >= 0)
		r = cairn_repo__unnamed_forget(repo, g.out.id, g.out.n);
	cairn_idset_release(&g.listed);
	int n = (int)g.out.n;
	packlist_release(&g.out);
	return r < 0 ? r : n;
}

int cairn_repo_index_drop_blob(cairn_repo *repo, const struct cairn_id *id,
                               const struct cairn_id *pack)
{
	int r = adopt_check(repo);
	return r < 0 ? r : cairn_index__del_blob(repo->index, id, pack);
}

int cairn_repo_index_drop_missing(cairn_repo *repo)
{
	struct packlist all = { 0 };
	struct listing l = { .repo = repo, .all = &all };
	int r = adopt_check(repo);
	if (r >= 0)
		r = cairn_repo_foreach_pack(repo, pack_listed, &l);
	if (r >= 0)
		r = drop_unlisted(repo, &all);
	packlist_release(&all);
	return r;
}

/* Packs the storage holds that the index lacks, indexed from their headers: at
 * the first open of a cache (a repository from before index files, packs of a
 * killed writer) and by rebuild-index's callers. A writer names them in its
 * next index file: left unnamed (a killed writer's, adopted here rather than by
 * cairn_repo_recover() later), other hosts' caches would never learn them, and
 * their prunes would count them as leftovers. */
static int adopt_listed(cairn_repo *repo)
{
	struct packlist all = { 0 }, found = { 0 };
	struct listing l = { .repo = repo, .all = &all, .unknown = &found };
	int r = cairn_repo__peek_doomed(repo);
	if (r >= 0)
		r = cairn_repo_foreach_pack(repo, pack_listed, &l);
	if (r >= 0 && found.n)
		r = index_packs(repo, &found, !cairn_repo__read_only(repo), false);
	/* The index files were read before the listing, and name only packs that
	 * were stored before them: one the listing lacks is gone. */
	int added = r;
	if (r >= 0 && !cairn_repo__read_only(repo))
		r = drop_unlisted(repo, &all);
	packlist_release(&all);
	packlist_release(&found);
	return r < 0 ? r : added;
}

int cairn_repo_index_update(cairn_repo *repo)
{
	bool rebuilt = false;
	int r = repo->index ? 0 : cairn_err_set(-ENOENT, "repository opened without index");

	if (r >= 0)
		r = cairn_repo__load_index_files(repo, false, &rebuilt);
	/* A new cache, or an index file gone (a prune merged it, or it was
	 * deleted behind cairn's back, and then the packs it named are known only
	 * to their listing): the packs are listed, as at a cold open. */
	if (r >= 0 && (repo->fresh_index || rebuilt) && (r = adopt_listed(repo)) >= 0)
		repo->fresh_index = false;
	int added = r;
	if (r >= 0)
		r = update_snapshots(repo);
	return r < 0 ? r : added;
}

/* A temp file of one object write (tmp/.tmp.*, tmp/put.tmp.*) untouched this
 * long belongs to a killed write: such a write takes no time, but its writer
 * may hold no lock (a lock's own file, a key command), so the look at locks/
 * alone cannot tell it is done. */
#define TEMP_OBJECT_STALE_SECONDS 3600

static bool stale_object_temp(int dfd, const char *name, time_t now)
{
	struct stat st;
	if (strncmp(name, ".tmp.", 5) != 0 && strncmp(name, "put.tmp.", 8) != 0)
		return false;
	return fstatat(dfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISREG(st.st_mode) &&
	       st.st_mtime <= now - TEMP_OBJECT_STALE_SECONDS;
}

/* The names of tmp/pack.tmp.* (a pack being written, FORMAT.md §6.1), and of
 * the temp files of object writes killed long ago. */
static int list_temps(const char *tmpdir, struct cairn_buf *names, size_t *n)
{
	_cleanup_closedir_ DIR *d = opendir(tmpdir);
	time_t now = time(NULL);
	*n = 0;
	if (!d)
		return errno == ENOENT ? 0 : -errno;
	for (struct dirent *de; (de = readdir(d));) {
		if (strncmp(de->d_name, "pack.tmp.", 9) != 0 &&
		    !stale_object_temp(dirfd(d), de->d_name, now))
			continue;
		if (cairn_buf_put(names, de->d_name, strlen(de->d_name) + 1) < 0)
			return -ENOMEM;
		(*n)++;
	}
	return 0;
}

static int remove_temps(const char *tmpdir, const struct cairn_buf *names, size_t n)
{
	const char *p = (const char *)names->data;
	int removed = 0;
	for (size_t i = 0; i < n; i++, p += strlen(p) + 1) {
		char path[PATH_MAX];
		if (snprintf(path, sizeof(path), "%s/%s", tmpdir, p) < (int)sizeof(path) &&
		    unlink(path) == 0)
			removed++;
	}
	return removed;
}

static int orphan_listed(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct listing *l = payload;
	if (cairn_repo__doomed(l->repo, pack))
		return 0; /* a prune is deleting it: its record decides */
	return packlist_add(l->unknown, pack, size);
}

/* The packs writers on this cache indexed and died before naming in an index
 * file: this cache deduplicates against them, other hosts' caches would never
 * know them. Named in this writer's next file. The prune records are read once
 * per writer anyway (its first lookup). */
static int name_orphans(cairn_repo *repo)
{
	int r = cairn_repo__learn_doomed(repo);
	return r < 0 ? r : index_from(repo, cairn_repo__foreach_orphan, orphan_listed, true);
}

/* Count the writers other than own, dead and alive (mounts do not write), in a
 * new listing of locks/, or in the look own's lock kept when it was taken. */
static int count_writers(cairn_repo *repo, const cairn_lock *own, bool fresh, size_t *dead,
                         size_t *live)
{
	_cleanup_free_ struct cairn_lock_info *locks = NULL;
	size_t n = 0;
	int r = own && !fresh ? cairn_lock_others(own, &locks, &n)
	                      : cairn_lock_list(repo->st, &locks, &n);

	*dead = *live = 0;
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (locks[i].kind == CAIRN_LOCK_MOUNT ||
		    (own && strcmp(locks[i].name, cairn_lock_name(own)) == 0))
			continue;
		if (locks[i].dead)
			(*dead)++;
		else if (!locks[i].stale)
			(*live)++;
	}
	return r;
}

int cairn_repo_recover(cairn_repo *repo, const cairn_lock *own, struct cairn_recover_stats *out)
{
	_cleanup_buf_ struct cairn_buf names = CAIRN_BUF_INIT;
	const char *tmpdir = cairn_storage_tmp_dir(repo->st);
	size_t ntemp = 0, dead = 0, live = 0, dead_now;
	int r = adopt_check(repo);

	*out = (struct cairn_recover_stats){ 0 };
	if (r < 0 || (r = list_temps(tmpdir, &names, &ntemp)) < 0 ||
	    (r = count_writers(repo, own, false, &dead, &live)) < 0)
		return r == -ENOMEM ? cairn_err_set(r, "out of memory") : r;
	if (dead && (r = cairn_repo_index_unknown_packs(repo)) < 0)
		return r;
	out->packs_indexed = dead ? r : 0;
	if ((r = name_orphans(repo)) < 0)
		return r;
	out->packs_indexed += r;
	/* own's look came before tmp/ was listed: a writer that began between the
	 * two holds a lock it did not show. Temp packs go only after a look that
	 * follows their listing (FORMAT.md §6.1). */
	if (!live && ntemp && own && (r = count_writers(repo, own, true, &dead_now, &live)) < 0)
		return r;
	if (!live && ntemp)
		out->temps_removed = remove_temps(tmpdir, &names, ntemp);
	return 0;
}

int cairn_repo__refresh(cairn_repo *repo)
{
	int r = cairn_repo_index_update(repo);
	return r < 0 ? cairn_err_wrap(r, "cache of %s", cairn_storage_url(repo->st)) : 0;
}

int cairn_repo_lock(cairn_repo *repo, int kind, const char *command, unsigned wait_seconds,
                    cairn_lock **out)
{
	int r = cairn_lock_acquire(out, repo->st, kind, command, wait_seconds);
	if (r < 0 || !atomic_load(&repo->update_at_lock))
		return r;
	/* The records first: a prune whose record is gone by now finished, and
	 * rewrote the index files before it deleted a pack. */
	if ((r = cairn_repo__learn_doomed(repo)) >= 0 && (r = cairn_repo__refresh(repo)) >= 0) {
		atomic_store(&repo->update_at_lock, false);
		return 0;
	}
	cairn_lock_release(*out);
	*out = NULL;
	return r;
}
