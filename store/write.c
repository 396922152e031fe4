/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The blob write path (docs/DESIGN.md "The write path"): claim, seal, append to a
 * pack, and make full packs durable in the storage before indexing them. */
#include "repo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

static void forget_pending(cairn_repo *repo, const cairn_packw *w)
{
	const struct cairn_pack_entry *e = cairn_packw__entries(w);
	size_t n = cairn_packw__count(w);

	pthread_mutex_lock(&repo->lock);
	for (size_t i = 0; i < n; i++)
		cairn_idset_del(&repo->pending, &e[i].id);
	pthread_mutex_unlock(&repo->lock);
}

int cairn_repo__pack_store(cairn_repo *repo, cairn_packw *w, struct cairn_id *pack_out,
                           uint64_t *size_out)
{
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_id id;
	uint64_t size;
	int r = cairn_packw__seal(w, &repo->keys, &id, &size);
	if (r < 0)
		return r;
	cairn_id_hex(hex, &id);
	r = cairn_storage_put_tmp(repo->st, CAIRN_OBJ_PACK, hex, cairn_packw__path(w),
	                          cairn_packw__fd(w), size);
	if (r < 0)
		return r;
	cairn_packw__taken(w);
	/* A remote storage has uploaded the file; its header (and trees) stay cached
	 * so that reading them back costs no request. The fd outlives the file. */
	if (repo->cache) {
		const struct cairn_pack_entry *e = cairn_packw__entries(w);
		cairn_cache__keep_pack(repo->cache, &id, cairn_packw__fd(w), size,
		                       e[0].type == CAIRN_BLOB_TREE);
	}
	*pack_out = id;
	*size_out = size;
	return 0;
}

int cairn_repo__pack_commit(cairn_repo *repo, cairn_packw *w, struct cairn_id *pack_out,
                            uint64_t *size_out)
{
	int r = cairn_repo__pack_store(repo, w, pack_out, size_out);
	return r < 0 ? r
	             : cairn_repo__index_pack(repo, pack_out, *size_out, cairn_packw__entries(w),
	                                      cairn_packw__count(w));
}

/* Make a full pack durable, then index it (FORMAT.md §6.1: durable before indexed). */
static int finish_packer(cairn_repo *repo, struct cairn_packer *p)
{
	struct cairn_id pack;
	uint64_t size;
	int r = cairn_repo__pack_commit(repo, p->w, &pack, &size);

	if (r >= 0)
		atomic_fetch_add_explicit(&repo->packs_written, 1, memory_order_relaxed);
	else
		cairn_repo__write_failed(repo, r);
	forget_pending(repo, p->w);
	cairn_packw__free(p->w);
	free(p);
	return r;
}

static int new_packer(cairn_repo *repo, struct cairn_packer **out)
{
	struct cairn_packer *p = calloc(1, sizeof(*p));
	if (!p)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = cairn_packw__new(&p->w, cairn_storage_tmp_dir(repo->st));
	if (r < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

/* Trees and data go to different packs, so that browsing a snapshot stored
 * remotely fetches packs of trees only (docs/S3.md §5). */
static int take_packer(cairn_repo *repo, int type, struct cairn_packer **out)
{
	pthread_mutex_lock(&repo->lock);
	struct cairn_packer **idle = &repo->idle[type == CAIRN_BLOB_TREE];
	struct cairn_packer *p = *idle;
	if (p)
		*idle = p->next;
	pthread_mutex_unlock(&repo->lock);
	if (p) {
		*out = p;
		return 0;
	}
	return new_packer(repo, out);
}

/* Back to the end of the idle list: the writers take turns and fill at one
 * pace, so a pack holds the blobs of a stretch of the backup about (writers x
 * pack size) long. Put back on top, the writers below filled only when many
 * threads appended at once, and their packs held blobs from all over the
 * backup, which a restore from S3 then read in pieces. */
static void return_packer(cairn_repo *repo, int type, struct cairn_packer *p)
{
	pthread_mutex_lock(&repo->lock);
	struct cairn_packer **idle = &repo->idle[type == CAIRN_BLOB_TREE];
	while (*idle) /* as many as threads ever appended at once */
		idle = &(*idle)->next;
	p->next = NULL;
	*idle = p;
	pthread_mutex_unlock(&repo->lock);
}

static void unclaim(cairn_repo *repo, const struct cairn_id *id)
{
	pthread_mutex_lock(&repo->lock);
	cairn_idset_del(&repo->pending, id);
	pthread_mutex_unlock(&repo->lock);
}

/* 1 if pack stays: no prune is deleting it (DESIGN.md "Prune while backups
 * run"), and a local storage holds it whole (at its indexed size). The index is
 * a cache, and a pack lost since (deleted, truncated) leaves it, so
 * that its blobs are stored again where the backup meets them, rather than
 * every new snapshot referring to them. Each pack is looked at once. A remote
 * storage's packs are not (a request each). */
static int pack_stays(cairn_repo *repo, const struct cairn_id *pack)
{
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_obj_info o;
	uint64_t size = 0;
	/* One lock for both questions: this runs for every chunk met again. */
	pthread_mutex_lock(&repo->doomed_lock);
	bool doomed = cairn_idset_has(&repo->doomed, pack);
	bool known = !doomed && ((cairn_storage_caps(repo->st) & CAIRN_STORAGE_REMOTE) ||
	                         cairn_idset_has(&repo->present, pack));
	pthread_mutex_unlock(&repo->doomed_lock);
	if (doomed || known)
		return !doomed;
	cairn_id_hex(hex, pack);
	int r = cairn_storage_stat(repo->st, CAIRN_OBJ_PACK, hex, &o);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r >= 0 && (cairn_index__has_pack(repo->index, pack, &size) <= 0 || size == o.size)) {
		pthread_mutex_lock(&repo->doomed_lock);
		r = cairn_idset_add(&repo->present, pack, 0);
		pthread_mutex_unlock(&repo->doomed_lock);
		return r < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 1;
	}
	if (r >= 0)
		cairn_repo__warn(repo,
		                 "pack %s is %llu bytes, not %llu: its blobs are stored again", hex,
		                 (unsigned long long)o.size, (unsigned long long)size);
	else
		cairn_repo__warn(repo, "pack %s is missing: its blobs are stored again", hex);
	r = cairn_repo__read_only(repo) ? 0 : cairn_index__del_pack(repo->index, pack);
	return r < 0 ? r : 0;
}

/* 1 if id is stored where it stays: a blob in a pack that a prune is deleting
 * is stored again (DESIGN.md "Prune while backups run"), and so is one in a
 * pack that is lost. The prune records are read at the first look, after the
 * writer took its lock. */
static int indexed(cairn_repo *repo, const struct cairn_id *id)
{
	struct cairn_loc loc;
	if (atomic_load(&repo->update_at_lock))
		return cairn_err_set(-EINVAL, "a blob was stored before the repository was locked");
	int r = cairn_repo__learn_doomed(repo);
	if (r >= 0)
		r = cairn_index__get(repo->index, id, &loc);
	if (r >= 0)
		return pack_stays(repo, &loc.pack);
	return r == -ENOENT ? 0 : r;
}

/* Claim id for this writer: 1 if we must store it, 0 if stored or being stored.
 * A finished pack is indexed before its IDs leave pending, so the index is
 * asked again once the claim is made: another writer's pack may have gone from
 * pending to the index between the first look and the claim. */
static int claim(cairn_repo *repo, const struct cairn_id *id)
{
	int r = indexed(repo, id);
	if (r != 0)
		return r > 0 ? 0 : r;
	pthread_mutex_lock(&repo->lock);
	r = cairn_idset_add(&repo->pending, id, 0);
	pthread_mutex_unlock(&repo->lock);
	if (r <= 0)
		return r;
	if ((r = indexed(repo, id)) != 0) {
		unclaim(repo, id);
		return r > 0 ? 0 : r;
	}
	return 1;
}

/* Tests that need many packs (a cold open of a repository of 10,000 packs)
 * make them with CAIRN_TEST_PACK_BLOBS=N: a pack ends after N blobs. */
static bool pack_full_for_test(const cairn_packw *w)
{
	static _Atomic long blobs = -1;
	long n = atomic_load(&blobs);
	if (n < 0) {
		const char *e = getenv("CAIRN_TEST_PACK_BLOBS");
		n = e && *e ? strtol(e, NULL, 10) : 0;
		atomic_store(&blobs, n > 0 ? n : 0);
	}
	return n > 0 && cairn_packw__count(w) >= (size_t)n;
}

/* A pack writer in an unknown state goes with every blob it held, some of which
 * other puts reported as stored: the failure is sticky. */
static void drop_packer(cairn_repo *repo, struct cairn_packer *p, int r)
{
	cairn_repo__write_failed(repo, r);
	forget_pending(repo, p->w);
	cairn_packw__free(p->w);
	free(p);
}

static int append(cairn_repo *repo, int type, const struct cairn_id *id, const void *data,
                  size_t len)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_packer *p = NULL;
	int r = cairn_blob__encode(&repo->keys, atomic_load(&repo->compression), type, id, data,
	                           len, &sealed);
	if (r < 0 || (r = take_packer(repo, type, &p)) < 0)
		return r;
	r = cairn_packw__add(p->w, id, type, sealed.data, sealed.len, (uint32_t)len);
	if (r < 0) {
		drop_packer(repo, p, r);
		return r;
	}
	atomic_fetch_add_explicit(&repo->blobs_written, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&repo->bytes_written, sealed.len, memory_order_relaxed);
	if (cairn_packw__size(p->w) >= repo->cfg.pack_size || pack_full_for_test(p->w))
		return finish_packer(repo, p);
	return_packer(repo, type, p);
	return 0;
}

int cairn_repo_put(cairn_repo *repo, int type, const void *data, size_t len,
                   const struct cairn_id *id_or_null, struct cairn_id *id_out)
{
	struct cairn_id id;
	int r = cairn_repo__writable(repo);

	if (r < 0)
		return r;
	if (!repo->index)
		return cairn_err_set(-EROFS, "repository opened without index");
	if ((r = cairn_repo__write_error(repo)) < 0)
		return r;
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EINVAL, "blob type %d cannot be stored in a pack", type);
	if (len > cairn_repo__max_raw(repo, type))
		return cairn_err_set(-EINVAL, "%s blob of %zu bytes exceeds the maximum %zu",
		                     cairn_blob_type_name(type), len,
		                     cairn_repo__max_raw(repo, type));
	if (id_or_null)
		id = *id_or_null;
	else if ((r = cairn_repo_blob_id(repo, data, len, &id)) < 0)
		return r;
	if (id_out)
		*id_out = id;
	/* A write-only key reads its trees back from the host cache only. */
	if (repo->hostcache && type == CAIRN_BLOB_TREE &&
	    cairn_hostcache__keep_tree(repo->hostcache, &id, data, len) < 0)
		log_debug("cannot keep a tree in the host cache: %s", cairn_err_msg());
	r = claim(repo, &id);
	if (r <= 0)
		return r;
	r = append(repo, type, &id, data, len);
	if (r < 0) {
		unclaim(repo, &id);
		return r;
	}
	return 1;
}

int cairn_repo_has(cairn_repo *repo, const struct cairn_id *id)
{
	bool pending;

	pthread_mutex_lock(&repo->lock);
	pending = cairn_idset_has(&repo->pending, id);
	pthread_mutex_unlock(&repo->lock);
	return pending ? 1 : indexed(repo, id);
}

/* Move every blob of src to *dst, sealed as it is, finishing *dst whenever it
 * fills (then a new one takes the rest). src goes; its blobs stay pending until
 * the pack that took them is indexed. */
static int absorb(cairn_repo *repo, struct cairn_packer **dst, struct cairn_packer *src)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	const struct cairn_pack_entry *e = cairn_packw__entries(src->w);
	int r = 0;

	for (size_t i = 0; r >= 0 && i < cairn_packw__count(src->w); i++) {
		if (!*dst && (r = new_packer(repo, dst)) < 0)
			break;
		if ((r = cairn_packw__read(src->w, i, &sealed)) < 0)
			break;
		r = cairn_packw__add((*dst)->w, &e[i].id, e[i].type, sealed.data, sealed.len,
		                     e[i].raw_len);
		if (r < 0) {
			drop_packer(repo, TAKE_PTR(*dst), r);
			break;
		}
		if (cairn_packw__size((*dst)->w) >= repo->cfg.pack_size)
			r = finish_packer(repo, TAKE_PTR(*dst));
	}
	if (r < 0) {
		drop_packer(repo, src, r);
		return r;
	}
	cairn_packw__free(src->w);
	free(src);
	return 0;
}

/* The partial packs of one type, made by threads that appended at the same
 * time, become one: the fullest takes the blobs of the others (copied, not
 * sealed again), so that a small backup writes one pack of data and one of
 * trees (each pack is an object to store, and on S3 a request and a minimum
 * billed size). */
static int finish_all(cairn_repo *repo, struct cairn_packer *list)
{
	struct cairn_packer **fullest = &list, *dst;
	int r = 0;

	if (!list)
		return 0;
	for (struct cairn_packer **p = &list; *p; p = &(*p)->next)
		if (cairn_packw__size((*p)->w) > cairn_packw__size((*fullest)->w))
			fullest = p;
	dst = *fullest;
	*fullest = dst->next;
	for (struct cairn_packer *p = list, *next; p; p = next) {
		next = p->next;
		int q = absorb(repo, &dst, p);
		if (q < 0 && r == 0)
			r = q;
	}
	int q = dst ? finish_packer(repo, dst) : 0;
	return r < 0 ? r : q;
}

int cairn_repo_flush(cairn_repo *repo)
{
	pthread_mutex_lock(&repo->lock);
	struct cairn_packer *lists[2] = { repo->idle[0], repo->idle[1] };
	repo->idle[0] = repo->idle[1] = NULL;
	pthread_mutex_unlock(&repo->lock);
	int r = finish_all(repo, lists[0]);
	int q = finish_all(repo, lists[1]);
	if (r == 0)
		r = q;
	/* The healthy packs are kept (durable and indexed), but what a dropped one
	 * held is lost: the flush fails whenever any write failed. An index file
	 * names the packs for other hosts (FORMAT.md §12). */
	if (r >= 0 && (r = cairn_repo__write_error(repo)) >= 0 &&
	    (r = cairn_repo__name_packs(repo)) < 0)
		cairn_repo__write_failed(repo, r);
	return r;
}
