/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Index files in the storage (FORMAT.md §12): each writer names the packs it
 * made in one; readers fill their local index from them, so a new host (or an
 * emptied cache) learns a repository of many packs from a few objects. */
#include "repo.h"

#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "idxfile.h"

/* The aux table (FORMAT.md §7.1) of the index files the local index holds. */
#define LOADED "indexes"
/* ...and of those it saw a prune replace: never loaded again. One put back
 * later (anyone who may write to the storage can) names packs that prune
 * deleted, and a writer would count on them. */
#define RETIRED "retired-indexes"
/* A writer names its packs in an index file at the latest every this many packs,
 * so that a long backup killed half-way leaves most of its work findable (the
 * next writer reads the headers of the others), and a cache fills itself from
 * a repository of 100,000 packs in about a hundred GETs; and once they hold
 * this many blobs: the noted entries are kept in memory until then, and the
 * file is encoded, compressed and sealed in memory, each copy 45 bytes a blob.
 * Packs of small files hold a hundred thousand blobs each, and 256 of them
 * made a file past the format's limit (FORMAT.md §5.3). */
#define PACKS_PER_FILE 1024
#define BLOBS_PER_FILE (64u * 1024)

static _Atomic size_t blobs_per_file_override; /* tests; 0: BLOBS_PER_FILE */

/* The aux table of packs indexed here but named in no index file yet, and who
 * indexed them. A writer that dies in between leaves its packs there: this
 * cache deduplicates against them, while other hosts' caches, which learn
 * packs from index files, would never know them. The next writer on this cache
 * names them (cairn_repo__name_orphans). Value: the pack's size, the writer's
 * pid and host, fixed-size. */
#define UNNAMED "unnamed"

void cairn_repo__test_blobs_per_file(size_t n)
{
	atomic_store(&blobs_per_file_override, n);
}

/* ---- writing ---------------------------------------------------------------- */

static int by_pack(const void *a, const void *b)
{
	return cairn_id_cmp(&((const struct cairn_idxfile_pack *)a)->id,
	                    &((const struct cairn_idxfile_pack *)b)->id);
}

/* The file is marked as one this cache holds, in one txn with also (or not). */
static int mark_loaded(cairn_repo *repo, const struct cairn_id *file,
                       const struct cairn_index_aux_op *also)
{
	struct cairn_index_aux_op ops[2] = {
		{ .table = LOADED, .k = file->b, .klen = CAIRN_ID_SIZE, .n = 1, .v = "" }
	};
	if (also)
		ops[1] = *also;
	return cairn_index__aux_apply(repo->index, ops, also ? 2 : 1);
}

int cairn_repo__write_index_file(cairn_repo *repo, struct cairn_idxfile *f,
                                 const struct cairn_index_aux_op *also, struct cairn_id *out)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_id id;
	if (f->npacks > 1)
		qsort(f->packs, f->npacks, sizeof(*f->packs), by_pack);
	int r = cairn_idxfile__encode(f, &plain);
	if (r >= 0)
		r = cairn_repo_blob_id(repo, plain.data, plain.len, &id);
	if (r >= 0)
		r = cairn_blob__encode(&repo->keys, atomic_load(&repo->compression),
		                       CAIRN_BLOB_INDEX, &id, plain.data, plain.len, &sealed);
	if (r < 0)
		return r;
	cairn_id_hex(hex, &id);
	if ((r = cairn_repo__put_object(repo, CAIRN_OBJ_INDEX, hex, sealed.data, sealed.len)) < 0 ||
	    (r = mark_loaded(repo, &id, also)) < 0)
		return r;
	if (out)
		*out = id;
	return 0;
}

/* ---- packs indexed but not yet named -------------------------------------- */

static void this_host(char host[CAIRN_UNNAMED_HOST])
{
	memset(host, 0, CAIRN_UNNAMED_HOST);
	if (gethostname(host, CAIRN_UNNAMED_HOST - 1) < 0)
		snprintf(host, CAIRN_UNNAMED_HOST, "localhost");
}

void cairn_repo__unnamed_encode(uint8_t out[CAIRN_UNNAMED_SIZE], const struct cairn_unnamed *u)
{
	cairn_le64(out, u->size);
	cairn_le64(out + 8, u->pid);
	memcpy(out + 16, u->host, CAIRN_UNNAMED_HOST);
}

int cairn_repo__unnamed_decode(struct cairn_unnamed *u, const uint8_t *v, size_t vlen)
{
	if (vlen != CAIRN_UNNAMED_SIZE || v[CAIRN_UNNAMED_SIZE - 1] != '\0')
		return -EBADMSG;
	u->size = cairn_get_le64(v);
	u->pid = cairn_get_le64(v + 8);
	memcpy(u->host, v + 16, CAIRN_UNNAMED_HOST);
	return 0;
}

/* The mark of a pack this writer indexes; v holds its value. */
static struct cairn_index_aux_op unnamed_op(const struct cairn_id *pack, uint64_t size,
                                            uint8_t v[CAIRN_UNNAMED_SIZE])
{
	struct cairn_unnamed u = { .size = size, .pid = (uint64_t)getpid() };
	this_host(u.host);
	cairn_repo__unnamed_encode(v, &u);
	return (struct cairn_index_aux_op){ .table = UNNAMED,
		                            .k = pack->b,
		                            .klen = CAIRN_ID_SIZE,
		                            .n = 1,
		                            .v = v,
		                            .vlen = CAIRN_UNNAMED_SIZE };
}

int cairn_repo__unnamed_mark(cairn_repo *repo, const struct cairn_id *pack, uint64_t size)
{
	uint8_t v[CAIRN_UNNAMED_SIZE];
	struct cairn_index_aux_op op = unnamed_op(pack, size, v);
	return cairn_index__aux_apply(repo->index, &op, 1);
}

/* The mark goes in with the entries: a writer killed after is seen to have left
 * the pack unnamed, and one txn is one sync of the index, not two. */
int cairn_repo__index_pack(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                           const struct cairn_pack_entry *e, size_t n)
{
	uint8_t v[CAIRN_UNNAMED_SIZE];
	struct cairn_index_aux_op op = unnamed_op(pack, size, v);
	int r = cairn_index__add_pack_with(repo->index, pack, size, e, n, &op);
	return r < 0 ? r : cairn_repo__note_pack(repo, pack, size, e, n);
}

int cairn_repo__unnamed_drop(cairn_repo *repo, const struct cairn_id *pack)
{
	return cairn_index__aux_del(repo->index, UNNAMED, pack->b, CAIRN_ID_SIZE);
}

struct orphans_cb {
	int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload);
	void *payload;
	char host[CAIRN_UNNAMED_HOST];
};

/* A mark whose writer is gone: one of this host whose pid no longer runs (a
 * pid means nothing on another host sharing the cache directory). */
static int orphan_mark(const void *k, size_t klen, const void *v, size_t vlen, void *payload)
{
	struct orphans_cb *o = payload;
	struct cairn_unnamed u;
	struct cairn_id id;
	if (klen != CAIRN_ID_SIZE || cairn_repo__unnamed_decode(&u, v, vlen) < 0)
		return 0; /* not ours to judge: left alone */
	if (strcmp(u.host, o->host) != 0 || u.pid == 0 || u.pid > INT_MAX ||
	    (pid_t)u.pid == getpid() || kill((pid_t)u.pid, 0) == 0 || errno != ESRCH)
		return 0;
	memcpy(id.b, k, CAIRN_ID_SIZE);
	return o->cb(&id, u.size, o->payload);
}

int cairn_repo__foreach_orphan(cairn_repo *repo,
                               int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                               void *payload)
{
	struct orphans_cb o = { .cb = cb, .payload = payload };
	this_host(o.host);
	return cairn_index__aux_foreach(repo->index, UNNAMED, orphan_mark, &o);
}

void cairn_repo__unnamed_free(cairn_repo *repo)
{
	for (size_t i = 0; i < repo->nunnamed; i++)
		free((void *)repo->unnamed[i].e);
	free(repo->unnamed);
	repo->unnamed = NULL;
	repo->nunnamed = repo->capunnamed = repo->unnamed_blobs = 0;
}

/* Under repo->lock. */
/* Under repo->lock. A pack noted already is not noted again: a refresh that a
 * read asked for (read.c) may adopt a pack this handle uploaded and has not
 * indexed yet, which its writer then notes too; an index file that named it
 * twice would be refused. */
static int add_unnamed(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                       const struct cairn_pack_entry *e, size_t n)
{
	for (size_t i = 0; i < repo->nunnamed; i++)
		if (cairn_id_cmp(&repo->unnamed[i].id, pack) == 0)
			return 0;
	if (repo->nunnamed == repo->capunnamed) {
		size_t cap = repo->capunnamed ? 2 * repo->capunnamed : 16;
		struct cairn_idxfile_pack *v = reallocarray(repo->unnamed, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		repo->unnamed = v;
		repo->capunnamed = cap;
	}
	struct cairn_pack_entry *copy = malloc(n * sizeof(*copy));
	if (!copy)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(copy, e, n * sizeof(*copy));
	repo->unnamed[repo->nunnamed++] =
	        (struct cairn_idxfile_pack){ .id = *pack, .size = size, .e = copy, .n = n };
	repo->unnamed_blobs += n;
	return 0;
}

static size_t blobs_per_file(void)
{
	size_t max = atomic_load(&blobs_per_file_override);
	const char *e = max ? NULL : getenv("CAIRN_TEST_BLOBS_PER_FILE");
	if (e && *e)
		max = strtoul(e, NULL, 10);
	return max ? max : BLOBS_PER_FILE;
}

/* How many of the n packs at v one index file names: up to PACKS_PER_FILE, or
 * up to the first that brings it to blobs_per_file(). */
static size_t file_batch(const struct cairn_idxfile_pack *v, size_t n)
{
	size_t k = 0, blobs = 0, max = blobs_per_file();
	while (k < n && k < PACKS_PER_FILE && blobs < max)
		blobs += v[k++].n;
	return k;
}

int cairn_repo__name_packs(cairn_repo *repo)
{
	/* Adopted packs are named only once checked under the writer's lock (a
	 * prune may be deleting them, and a name written now could outlive
	 * them); a writer killed before leaves them marked, for the next one. */
	if (atomic_load(&repo->names_held))
		return 0;
	int r = 0;
	pthread_mutex_lock(&repo->lock);
	struct cairn_idxfile_pack *v = repo->unnamed;
	size_t n = repo->nunnamed, k;
	repo->unnamed = NULL;
	repo->nunnamed = repo->capunnamed = repo->unnamed_blobs = 0;
	pthread_mutex_unlock(&repo->lock);
	for (size_t i = 0; r >= 0 && i < n; i += k) {
		struct cairn_idxfile f = { .packs = v + i, .npacks = k = file_batch(v + i, n - i) };
		/* named and no longer marked, in one txn */
		struct cairn_index_aux_op named = { .table = UNNAMED,
			                            .k = v[i].id.b,
			                            .klen = CAIRN_ID_SIZE,
			                            .stride = sizeof(*v),
			                            .n = k };
		r = cairn_repo__write_index_file(repo, &f, &named, NULL);
	}
	for (size_t i = 0; i < n; i++)
		free((void *)v[i].e);
	free(v);
	return r;
}

int cairn_repo__unnamed_forget(cairn_repo *repo, const struct cairn_id *packs, size_t n)
{
	int r = 0;
	pthread_mutex_lock(&repo->lock);
	size_t k = 0;
	for (size_t i = 0; i < repo->nunnamed; i++) {
		struct cairn_idxfile_pack *u = &repo->unnamed[i];
		bool drop = false;
		for (size_t j = 0; j < n && !drop; j++)
			drop = cairn_id_cmp(&u->id, &packs[j]) == 0;
		if (!drop) {
			repo->unnamed[k++] = *u;
			continue;
		}
		repo->unnamed_blobs -= u->n;
		free((void *)u->e);
	}
	repo->nunnamed = k;
	pthread_mutex_unlock(&repo->lock);
	for (size_t j = 0; j < n && r >= 0; j++)
		r = cairn_repo__unnamed_drop(repo, &packs[j]);
	return r;
}

int cairn_repo__note_pack(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                          const struct cairn_pack_entry *e, size_t n)
{
	pthread_mutex_lock(&repo->lock);
	int r = add_unnamed(repo, pack, size, e, n);
	bool full = repo->nunnamed >= PACKS_PER_FILE || repo->unnamed_blobs >= blobs_per_file();
	pthread_mutex_unlock(&repo->lock);
	return r >= 0 && full ? cairn_repo__name_packs(repo) : r;
}

/* ---- reading ------------------------------------------------------------------ */

struct names {
	struct cairn_id *v;
	size_t n, cap;
};

static int add_name(struct names *l, const struct cairn_id *id)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct cairn_id *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = *id;
	return 0;
}

static int index_file_listed(const struct cairn_obj_info *o, void *payload)
{
	struct cairn_id id;
	return cairn_id_parse(&id, o->name) < 0 ? 0 : add_name(payload, &id);
}

static int loaded(const void *k, size_t klen, const void *v, size_t vlen, void *payload)
{
	struct cairn_id id;
	(void)v, (void)vlen;
	if (klen != CAIRN_ID_SIZE)
		return 0;
	memcpy(id.b, k, CAIRN_ID_SIZE);
	return add_name(payload, &id);
}

/* Fetch (from the cache when it has it), verify and parse one index file. */
static int load_file(cairn_repo *repo, const struct cairn_id *id, struct cairn_idxfile **out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, id);
	int r = cairn_repo__get_object(repo, CAIRN_OBJ_INDEX, hex,
	                               CAIRN_IDXFILE_MAX_SIZE + CAIRN_SEAL_OVERHEAD, &sealed);
	if (r >= 0)
		r = cairn_blob__decode(&repo->keys, CAIRN_BLOB_INDEX, id, sealed.data, sealed.len,
		                       SIZE_MAX, CAIRN_IDXFILE_MAX_SIZE, &plain);
	if (r == -EBADMSG && repo->cache)
		cairn_cache__drop(repo->cache, CAIRN_OBJ_INDEX, hex); /* fetched again next time */
	if (r >= 0)
		r = cairn_idxfile__parse(out, plain.data, plain.len);
	return r < 0 ? cairn_err_wrap(r, "index file %.8s", hex) : 0;
}

static int copy_ids(struct cairn_id **out, size_t n)
{
	*out = calloc(n ? n : 1, sizeof(**out));
	return *out ? 0 : cairn_err_set(-ENOMEM, "out of memory");
}

int cairn_repo_index_file_names(cairn_repo *repo, cairn_storage *st, const char *name,
                                struct cairn_id **packs, size_t *npacks, struct cairn_id **sup,
                                size_t *nsup)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_id *p = NULL, *s = NULL;
	struct cairn_idxfile *f = NULL;
	struct cairn_id id;
	int r = cairn_id_parse(&id, name);
	if (r < 0)
		return cairn_err_set(-EBADMSG, "index file '%s': not an ID", name);
	r = cairn_storage_get(st, CAIRN_OBJ_INDEX, name, 0, 0,
	                      CAIRN_IDXFILE_MAX_SIZE + CAIRN_SEAL_OVERHEAD, &sealed);
	if (r >= 0)
		r = cairn_blob__decode(&repo->keys, CAIRN_BLOB_INDEX, &id, sealed.data, sealed.len,
		                       SIZE_MAX, CAIRN_IDXFILE_MAX_SIZE, &plain);
	if (r >= 0)
		r = cairn_idxfile__parse(&f, plain.data, plain.len);
	if (r >= 0 && (r = copy_ids(&p, f->npacks)) >= 0 &&
	    (r = copy_ids(&s, f->nsupersedes)) >= 0) {
		for (size_t i = 0; i < f->npacks; i++)
			p[i] = f->packs[i].id;
		memcpy(s, f->supersedes, f->nsupersedes * sizeof(*s));
		*npacks = f->npacks;
		*nsup = f->nsupersedes;
		*packs = TAKE_PTR(p);
		*sup = TAKE_PTR(s);
	}
	cairn_idxfile__free(f);
	return r < 0 ? cairn_err_wrap(r, "index file %.8s in %s", name, cairn_storage_url(st)) : 0;
}

struct loading {
	cairn_repo *repo;
	const struct cairn_id *ids;
	struct cairn_idxfile **files; /* NULL: unreadable, skipped */
};

static int load_one(size_t i, void *payload)
{
	struct loading *l = payload;
	if (load_file(l->repo, &l->ids[i], &l->files[i]) < 0) {
		/* check reports it; its packs are found by a listing of packs/ */
		cairn_repo__warn(l->repo, "skipping %s", cairn_err_msg());
		l->files[i] = NULL;
	}
	return 0;
}

static bool retired(cairn_repo *repo, const struct cairn_id *file);

int cairn_repo__check_index_files(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                  void *payload, size_t *nretired)
{
	struct names now = { 0 };
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_INDEX, index_file_listed, &now), n = 0;
	for (size_t i = 0; r >= 0 && i < now.n; i++) {
		struct cairn_idxfile *f = NULL;
		if (nretired && repo->index && retired(repo, &now.v[i]))
			++*nretired;
		int q = load_file(repo, &now.v[i], &f);
		cairn_idxfile__free(f);
		if (q == -ENOMEM || q == -EHOSTUNREACH)
			r = q;
		else if (q < 0)
			bad(cairn_err_msg(), payload);
		n++;
	}
	free(now.v);
	return r < 0 ? r : n;
}

int cairn_repo_check_index_files(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                 void *payload)
{
	return cairn_repo__check_index_files(repo, bad, payload, NULL);
}

/* Add the packs of the index files ids[0..n) to the index, in one transaction
 * for all of them, and record the files as loaded. reset: they replace every
 * pack the index held. */
static int load_files(cairn_repo *repo, const struct cairn_id *ids, size_t n, bool reset)
{
	struct loading l = { repo, ids, calloc(n ? n : 1, sizeof(*l.files)) };
	size_t total = 0;
	if (!l.files)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = cairn_parallel(n, cairn_storage_concurrency(repo->st), load_one, &l);
	for (size_t i = 0; r >= 0 && i < n; i++)
		total += l.files[i] ? l.files[i]->npacks : 0;
	struct cairn_index_pack *add = calloc(total ? total : 1, sizeof(*add));
	if (r >= 0 && !add)
		r = cairn_err_set(-ENOMEM, "out of memory");
	size_t k = 0;
	for (size_t i = 0; r >= 0 && i < n; i++)
		for (size_t j = 0; l.files[i] && j < l.files[i]->npacks; j++) {
			const struct cairn_idxfile_pack *p = &l.files[i]->packs[j];
			add[k++] = (struct cairn_index_pack){ p->id, p->size, p->e, p->n };
		}
	if (r >= 0 && reset && (r = cairn_index__reset_packs(repo->index, add, k)) >= 0 &&
	    (r = cairn_index__aux_drop(repo->index, LOADED)) == -ENOENT)
		r = 0;
	else if (r >= 0 && k)
		r = cairn_index__replace_packs(repo->index, NULL, 0, add, k);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (l.files[i])
			r = mark_loaded(repo, &ids[i], NULL);
	for (size_t i = 0; i < n; i++)
		cairn_idxfile__free(l.files[i]);
	free(l.files);
	free(add);
	return r;
}

static int by_id(const void *a, const void *b)
{
	return cairn_id_cmp(a, b);
}

static bool contains(const struct names *sorted, const struct cairn_id *id)
{
	return sorted->n && bsearch(id, sorted->v, sorted->n, sizeof(*id), by_id);
}

/* Take want's entries from f when it names that pack with that size. */
static int take_entries(const struct cairn_idxfile *f, struct cairn_index_pack *want)
{
	const struct cairn_idxfile_pack *p =
	        f->npacks ? bsearch(&want->id, f->packs, f->npacks, sizeof(*p), by_id) : NULL;
	if (!p || p->size != want->size || p->n == 0)
		return 0;
	struct cairn_pack_entry *e = calloc(p->n, sizeof(*e));
	if (!e)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(e, p->e, p->n * sizeof(*e));
	want->e = e;
	want->n = p->n;
	return 1;
}

int cairn_repo__entries_from_index_files(cairn_repo *repo, struct cairn_index_pack *want, size_t n,
                                         struct cairn_id *from)
{
	struct names now = { 0 };
	size_t found = 0;
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_INDEX, index_file_listed, &now);
	for (size_t k = 0; r >= 0 && found < n && k < now.n; k++) {
		struct cairn_idxfile *f = NULL;
		int q = load_file(repo, &now.v[k], &f);
		if (q == -ENOMEM)
			r = q;
		for (size_t i = 0; q >= 0 && r >= 0 && i < n; i++) {
			if (want[i].e || (r = take_entries(f, &want[i])) <= 0)
				continue;
			from[i] = now.v[k];
			found++;
		}
		cairn_idxfile__free(f);
	}
	free(now.v);
	return r < 0 ? r : (int)found;
}

int cairn_repo__index_files_seen(cairn_repo *repo)
{
	struct names now = { 0 };
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_INDEX, index_file_listed, &now);
	if (r >= 0)
		r = cairn_index__aux_drop(repo->index, LOADED);
	if (r == -ENOENT)
		r = 0;
	for (size_t i = 0; r >= 0 && i < now.n; i++)
		r = mark_loaded(repo, &now.v[i], NULL);
	free(now.v);
	return r;
}

int cairn_repo__index_files_forget(cairn_repo *repo)
{
	int r = cairn_index__aux_drop(repo->index, LOADED);
	return r == -ENOENT ? 0 : r;
}

static int retire(cairn_repo *repo, const struct cairn_id *file)
{
	return cairn_index__aux_put(repo->index, RETIRED, file->b, CAIRN_ID_SIZE, "", 0);
}

static bool retired(cairn_repo *repo, const struct cairn_id *file)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	return cairn_index__aux_get(repo->index, RETIRED, file->b, CAIRN_ID_SIZE, &v) >= 0;
}

/* Leave the retired files out of names (sorted or not; order kept). */
static void skip_retired(cairn_repo *repo, struct names *names)
{
	static atomic_bool warned;
	size_t k = 0;
	for (size_t i = 0; i < names->n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		if (!retired(repo, &names->v[i])) {
			names->v[k++] = names->v[i];
			continue;
		}
		cairn_id_hex(hex, &names->v[i]);
		if (!atomic_exchange(&warned, true)) /* a mount looks every second */
			cairn_repo__warn(
			        repo,
			        "skipping index file %.8s: a prune replaced it, and it is back",
			        hex);
	}
	names->n = k;
}

int cairn_repo__load_index_files(cairn_repo *repo, bool reload, bool *rebuilt)
{
	struct names now = { 0 }, had = { 0 }, fresh = { 0 };
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_INDEX, index_file_listed, &now);
	if (r >= 0)
		r = cairn_index__aux_foreach(repo->index, LOADED, loaded, &had);
	if (now.n > 1)
		qsort(now.v, now.n, sizeof(*now.v), by_id);
	bool gone = reload;
	for (size_t i = 0; r >= 0 && i < had.n; i++)
		if (!contains(&now, &had.v[i])) {
			gone = true;
			r = retire(repo, &had.v[i]);
		}
	*rebuilt = gone;
	/* A file that went was superseded by a prune (FORMAT.md §12): the packs it
	 * named may be gone, and only a rebuild from the files there now forgets
	 * them (from the cache: no request but for new files). Other processes
	 * sharing the cache see the old index until the new one is whole. */
	if (r >= 0 && gone) {
		skip_retired(repo, &now);
		r = load_files(repo, now.v, now.n, true);
	}
	if (r >= 0 && !gone) {
		if (had.n > 1)
			qsort(had.v, had.n, sizeof(*had.v), by_id);
		for (size_t i = 0; r >= 0 && i < now.n; i++)
			if (!contains(&had, &now.v[i]))
				r = add_name(&fresh, &now.v[i]);
		/* Only files not loaded yet are looked up: a mount refreshes every
		 * second, and most refreshes find none. */
		if (r >= 0)
			skip_retired(repo, &fresh);
		if (r >= 0 && fresh.n)
			r = load_files(repo, fresh.v, fresh.n, false);
	}
	free(now.v);
	free(had.v);
	free(fresh.v);
	return r == -ENOENT ? 0 : r;
}

/* ---- rewriting (prune) -------------------------------------------------------- */

/* Packs per index file prune writes: a few MiB each, so that an emptied cache
 * fetches a 100,000-pack repository's index in a few dozen requests. */
#define MERGED_PACKS_PER_FILE 4096

struct merged {
	struct cairn_idxfile_pack *v; /* e borrowed from files or add, or in owned */
	size_t n, cap;
	struct cairn_idset seen; /* pack IDs in v */
	struct cairn_buf owned;  /* entry arrays read here (pointers), to free */
};

/* 1: added; 0: already there (a pack in two files). */
static int merged_add(struct merged *m, const struct cairn_idxfile_pack *p)
{
	int r = cairn_idset_add(&m->seen, &p->id, 0);
	if (r <= 0)
		return r;
	if (m->n == m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 256;
		struct cairn_idxfile_pack *v = reallocarray(m->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		m->v = v;
		m->cap = cap;
	}
	m->v[m->n++] = *p;
	return 1;
}

static void merged_release(struct merged *m)
{
	void **e = (void **)(void *)m->owned.data;
	for (size_t i = 0; i < m->owned.len / sizeof(*e); i++)
		free(e[i]);
	cairn_buf_release(&m->owned);
	cairn_idset_release(&m->seen);
	free(m->v);
}

struct orphans {
	cairn_repo *repo;
	struct merged *m;
	const struct cairn_idset *drop;
};

/* An indexed pack no index file names (adopted after a killed writer). */
static int orphan(const struct cairn_id *pack, uint64_t size, uint32_t count, void *payload)
{
	struct orphans *o = payload;
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	(void)count;
	if (cairn_idset_has(&o->m->seen, pack) || cairn_idset_has(o->drop, pack))
		return 0;
	int r = cairn_repo__pack_entries_sized(o->repo, pack, size, &e, &n);
	if (r < 0) {
		cairn_repo__warn(o->repo, "leaving an unreadable pack out of the index: %s",
		                 cairn_err_msg());
		return 0;
	}
	struct cairn_idxfile_pack p = { .id = *pack, .size = size, .e = e, .n = n };
	if ((r = cairn_buf_put(&o->m->owned, &e, sizeof(e))) < 0) {
		free(e);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	r = merged_add(o->m, &p);
	return r < 0 ? r : 0;
}

static int write_merged(cairn_repo *repo, struct merged *m, const struct names *old)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && (i < m->n || i == 0); i += MERGED_PACKS_PER_FILE) {
		size_t k = m->n - i < MERGED_PACKS_PER_FILE ? m->n - i : MERGED_PACKS_PER_FILE;
		/* The first file says which files all of them replace. */
		struct cairn_idxfile f = { .packs = m->v + i,
			                   .npacks = k,
			                   .supersedes = i == 0 ? old->v : NULL,
			                   .nsupersedes = i == 0 ? old->n : 0 };
		if (f.nsupersedes > 1)
			qsort(f.supersedes, f.nsupersedes, sizeof(*f.supersedes), by_id);
		if (k == 0 && old->n == 0)
			break; /* nothing to say */
		r = cairn_repo__write_index_file(repo, &f, NULL, NULL);
	}
	return r;
}

static int remove_old(cairn_repo *repo, const struct names *old)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < old->n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &old->v[i]);
		if ((r = cairn_storage_remove(repo->st, CAIRN_OBJ_INDEX, hex)) >= 0 &&
		    (r = retire(repo, &old->v[i])) >= 0)
			r = cairn_index__aux_del(repo->index, LOADED, old->v[i].b, CAIRN_ID_SIZE);
		if (r == -ENOENT)
			r = 0;
		if (repo->cache)
			cairn_cache__drop(repo->cache, CAIRN_OBJ_INDEX, hex);
	}
	return r;
}

/* The packs of the files among old that the local index has not loaded (written
 * since it last looked) go into it, but those in drop: the merged files are
 * marked loaded, and a file marked loaded is never read again. */
static int learn_unloaded(cairn_repo *repo, const struct names *old, struct cairn_idxfile **files,
                          const struct cairn_idset *drop)
{
	struct names had = { 0 };
	struct cairn_index_pack *add = NULL;
	size_t total = 0, k = 0;
	int r = cairn_index__aux_foreach(repo->index, LOADED, loaded, &had);
	if (had.n > 1)
		qsort(had.v, had.n, sizeof(*had.v), by_id);
	for (size_t i = 0; r >= 0 && i < old->n; i++)
		total += contains(&had, &old->v[i]) || !files[i] ? 0 : files[i]->npacks;
	if (r >= 0 && total && !(add = calloc(total, sizeof(*add))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; r >= 0 && total && i < old->n; i++)
		for (size_t j = 0; files[i] && !contains(&had, &old->v[i]) && j < files[i]->npacks;
		     j++) {
			const struct cairn_idxfile_pack *p = &files[i]->packs[j];
			if (!cairn_idset_has(drop, &p->id))
				add[k++] = (struct cairn_index_pack){ p->id, p->size, p->e, p->n };
		}
	if (r >= 0 && k)
		r = cairn_index__replace_packs(repo->index, NULL, 0, add, k);
	free(add);
	free(had.v);
	return r;
}

int cairn_repo__rewrite_index_files(cairn_repo *repo, const struct cairn_idset *drop,
                                    const struct cairn_index_pack *add, size_t nadd)
{
	struct names old = { 0 };
	struct merged m = { 0 };
	struct cairn_idxfile **files = NULL;
	cairn_idset_init(&m.seen);
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_INDEX, index_file_listed, &old);
	if (r >= 0 && !(files = calloc(old.n ? old.n : 1, sizeof(*files))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; r >= 0 && i < nadd; i++) {
		struct cairn_idxfile_pack p = { add[i].id, add[i].size, add[i].e, add[i].n };
		r = merged_add(&m, &p);
	}
	/* Every pack a current file names, but those going. A damaged file goes
	 * too: the packs it named are in the index (from their headers, or the
	 * listing of a cache), and the orphan pass below names them. */
	for (size_t i = 0; r >= 0 && i < old.n; i++) {
		if (retired(repo, &old.v[i])) {
			files[i] = NULL; /* put back after a prune: replaced again, not merged */
			continue;
		}
		if ((r = load_file(repo, &old.v[i], &files[i])) == -EBADMSG) {
			cairn_repo__warn(repo, "replacing %s", cairn_err_msg());
			files[i] = NULL;
			r = 0;
			continue;
		}
		if (r < 0)
			break;
		for (size_t j = 0; r >= 0 && j < files[i]->npacks; j++)
			if (!cairn_idset_has(drop, &files[i]->packs[j].id))
				r = merged_add(&m, &files[i]->packs[j]);
	}
	struct orphans o = { repo, &m, drop };
	if (r >= 0)
		r = learn_unloaded(repo, &old, files, drop);
	if (r >= 0)
		r = cairn_index__foreach_pack(repo->index, orphan, &o);
	/* New files first: a crash in between leaves both, naming packs that all
	 * still exist. */
	if (r >= 0 && (r = write_merged(repo, &m, &old)) >= 0)
		r = remove_old(repo, &old);
	for (size_t i = 0; files && i < old.n; i++)
		cairn_idxfile__free(files[i]);
	free(files);
	free(old.v);
	merged_release(&m);
	return r;
}
