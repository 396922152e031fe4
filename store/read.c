/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The blob read path: index lookup, then the pack through the storage, or for a
 * remote storage through its cache (FORMAT.md §5.2 "Reading", docs/S3.md §5). */
#include "repo.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cleanup.h"
#include "storage.h"

int cairn_repo__lookup_cached(cairn_repo *repo, const struct cairn_id *id, struct cairn_loc *out)
{
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	int r = cairn_index__get(repo->index, id, out);
	if (r == -ENOENT) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		return cairn_err_set(-ENOENT, "blob %s not found in the index", hex);
	}
	return r;
}

static int64_t mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* A remote storage's cache index lags behind the bucket: another host's backup
 * added blobs, or a prune moved some and deleted their packs. Brought up to date
 * from the index files when a lookup misses or a pack is gone, at most once a
 * second; a thread that missed during another's refresh waits for it. */
static void catch_up(cairn_repo *repo)
{
	pthread_mutex_lock(&repo->refresh_lock);
	if (!repo->refreshed_ms || mono_ms() - repo->refreshed_ms >= 1000) {
		if (cairn_repo__refresh(repo) < 0)
			log_debug("%s", cairn_err_msg());
		repo->refreshed_ms = mono_ms();
	}
	pthread_mutex_unlock(&repo->refresh_lock);
}

int cairn_repo_lookup(cairn_repo *repo, const struct cairn_id *id, struct cairn_loc *out)
{
	int r = cairn_repo__lookup_cached(repo, id, out);
	if (r != -ENOENT || !repo->cache || repo->offline || !repo->index)
		return r;
	catch_up(repo);
	return cairn_repo__lookup_cached(repo, id, out);
}

/* The blob at loc, sealed. Local reads need no pack size: only the range. */
static int read_sealed(cairn_repo *repo, const struct cairn_loc *loc, struct cairn_buf *out)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	_cleanup_packf_ struct cairn_packf f;
	int r = 0;

	if (repo->cache)
		r = cairn_repo__pack_open(repo, &loc->pack, &f, rel);
	else
		cairn_repo__pack_reader(repo, &loc->pack, 0, &f, rel);
	if (r < 0)
		return r;
	out->len = 0;
	if ((r = cairn_buf_reserve(out, loc->stored_len)) < 0)
		return r;
	r = cairn_packf__pread(&f, loc->type, out->data, loc->stored_len, loc->offset);
	if (r == -EBADMSG)
		return cairn_err_set(r, "pack '%s' is truncated before offset %u", rel,
		                     loc->offset + loc->stored_len);
	if (r < 0)
		return r;
	out->len = loc->stored_len;
	return 0;
}

/* A failure names the blob's place; read_sealed's messages name the pack already. */
static int decode(cairn_repo *repo, const struct cairn_loc *loc, const struct cairn_id *id,
                  const struct cairn_buf *sealed, struct cairn_buf *out)
{
	int r = cairn_blob__decode(&repo->keys, loc->type, id, sealed->data, sealed->len,
	                           loc->raw_len, cairn_repo__max_raw(repo, loc->type), out);
	if (r < 0) {
		char rel[CAIRN_PACK_RELPATH_SIZE];
		cairn_pack__relpath(rel, &loc->pack);
		return cairn_err_wrap(r, "pack '%s' offset %u", rel, loc->offset);
	}
	return r;
}

/* A copy that failed read_sealed or decode through the cache of a remote
 * storage is dropped and fetched again, once (docs/S3.md §5): the cached block,
 * or the reply that brought it, may be what is damaged, not the pack. A copy
 * that fails again is dropped too (a later read fetches it afresh), and the
 * error says where it was read. */
static int refetch(cairn_repo *repo, const struct cairn_loc *loc, const struct cairn_id *id,
                   struct cairn_buf *sealed, struct cairn_buf *out)
{
	int r;
	bool dropped = cairn_cache__invalidate(repo->cache, &loc->pack, loc->type, loc->offset,
	                                       loc->stored_len) > 0;
	if ((r = read_sealed(repo, loc, sealed)) >= 0)
		r = decode(repo, loc, id, sealed, out);
	if (r >= 0 && dropped)
		cairn_repo__warn(repo, "%s: a damaged cache block was dropped",
		                 cairn_storage_url(repo->st));
	if (r != -EBADMSG)
		return r;
	cairn_cache__invalidate(repo->cache, &loc->pack, loc->type, loc->offset, loc->stored_len);
	char why[512];
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	return cairn_err_set(r,
	                     "%s (the copy fetched twice from %s did not verify: damaged "
	                     "there or on the way)",
	                     why, cairn_storage_url(repo->st));
}

/* After a read that failed with r: a local storage may read a pack through a
 * descriptor it keeps open, so a damaged pack replaced by a good copy (a
 * rename) is seen only by a fresh open. One more try with one; else r. */
static int reread(cairn_repo *repo, const struct cairn_loc *loc, const struct cairn_id *id,
                  struct cairn_buf *sealed, struct cairn_buf *out, int r)
{
	char hex[CAIRN_ID_HEX_SIZE];
	if ((r != -EBADMSG && r != -EKEYREJECTED) || repo->cache)
		return r;
	cairn_id_hex(hex, &loc->pack);
	cairn_storage__forget(repo->st, CAIRN_OBJ_PACK, hex);
	if ((r = read_sealed(repo, loc, sealed)) >= 0)
		r = decode(repo, loc, id, sealed, out);
	return r;
}

int cairn_repo__get_at(cairn_repo *repo, const struct cairn_id *id, const struct cairn_loc *loc,
                       struct cairn_buf *out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	int r = read_sealed(repo, loc, &sealed);
	if (r >= 0)
		r = decode(repo, loc, id, &sealed, out);
	if (r == -EBADMSG && repo->cache)
		r = refetch(repo, loc, id, &sealed, out);
	else
		r = reread(repo, loc, id, &sealed, out, r);
	return r < 0 ? r : 0;
}

int cairn_repo_get_typed(cairn_repo *repo, int type, const struct cairn_id *id,
                         struct cairn_buf *out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_loc loc;
	int r = cairn_repo_lookup(repo, id, &loc);

	if (r < 0)
		return r;
	if (type && loc.type != type) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		return cairn_err_set(-EBADMSG, "blob %.8s is a %s blob, expected %s", hex,
		                     cairn_blob_type_name(loc.type), cairn_blob_type_name(type));
	}
	r = read_sealed(repo, &loc, &sealed);
	if (r == -ENOENT) {
		/* Prune may have moved the blob and deleted its old pack since the lookup:
		 * the index names the new place before the old pack goes (for a remote
		 * storage, the index files do), so a second lookup finds it. */
		struct cairn_loc again;
		if (repo->cache && !repo->offline)
			catch_up(repo);
		if (cairn_repo__lookup_cached(repo, id, &again) >= 0 &&
		    memcmp(&again.pack, &loc.pack, sizeof(loc.pack)) != 0) {
			loc = again;
			r = read_sealed(repo, &loc, &sealed);
		}
	}
	if (r >= 0)
		r = decode(repo, &loc, id, &sealed, out);
	if (r == -EBADMSG && repo->cache)
		r = refetch(repo, &loc, id, &sealed, out);
	else
		r = reread(repo, &loc, id, &sealed, out, r);
	if (r >= 0 && loc.type == CAIRN_BLOB_DATA)
		atomic_fetch_add(&repo->data_read, loc.stored_len);
	return r < 0 ? r : 0;
}

int cairn_repo_get(cairn_repo *repo, const struct cairn_id *id, struct cairn_buf *out)
{
	return cairn_repo_get_typed(repo, 0, id, out);
}

int cairn_repo_foreach_blob(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                      void *payload),
                            void *payload)
{
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	return cairn_index__foreach_blob(repo->index, cb, payload);
}
