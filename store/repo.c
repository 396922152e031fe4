/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository handle's core: its accessors, whole objects through the cache,
 * and the state tables. Every other file of the repository builds on these;
 * opening, creating and closing one is repo-open.c, above them all. */
#include "repo.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <openssl/evp.h>

/* ---- accessors --------------------------------------------------------------- */

void cairn_repo_stats(const cairn_repo *repo, struct cairn_repo_stats *out)
{
	out->blobs_written = atomic_load_explicit(&repo->blobs_written, memory_order_relaxed);
	out->bytes_written = atomic_load_explicit(&repo->bytes_written, memory_order_relaxed);
	out->packs_written = atomic_load_explicit(&repo->packs_written, memory_order_relaxed);
}

/* snprintf "<dir>/<fmt...>" into out; -ENAMETOOLONG rather than a cut path. */
static int vjoin(char *out, size_t size, const char *dir, const char *fmt, va_list ap)
{
	char rel[PATH_MAX];
	int n = vsnprintf(rel, sizeof(rel), fmt, ap);

	if (n < 0 || (size_t)n >= sizeof(rel) ||
	    snprintf(out, size, "%s/%s", dir, rel) >= (int)size)
		return cairn_err_set(-ENAMETOOLONG, "path too long in '%s'", dir);
	return 0;
}

int cairn_repo__path(const cairn_repo *repo, char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vjoin(out, size, repo->state, fmt, ap);
	va_end(ap);
	return r;
}

const struct cairn_keys *cairn_repo__keys(const cairn_repo *repo)
{
	return &repo->keys;
}

const struct cairn_config *cairn_repo__config(const cairn_repo *repo)
{
	return &repo->cfg;
}

cairn_index *cairn_repo__index(cairn_repo *repo)
{
	return repo->index;
}

cairn_hostcache *cairn_repo__hostcache(cairn_repo *repo)
{
	return repo->hostcache;
}

bool cairn_repo_write_only(const cairn_repo *repo)
{
	return repo->keys.write_only;
}

bool cairn_repo__read_only(const cairn_repo *repo)
{
	return repo->read_only || repo->offline;
}

int cairn_repo__writable(const cairn_repo *repo)
{
	if (repo->offline)
		return cairn_err_set(-EROFS,
		                     "%s cannot be reached: only its cached copy can be read",
		                     cairn_storage_url(repo->st));
	if (repo->read_only)
		return cairn_err_set(-EROFS, "repository opened read-only");
	return 0;
}

int cairn_repo__write_failed(cairn_repo *repo, int r)
{
	pthread_mutex_lock(&repo->lock);
	if (repo->write_err == 0) {
		repo->write_err = r;
		snprintf(repo->write_err_msg, sizeof(repo->write_err_msg), "%s", cairn_err_msg());
	}
	pthread_mutex_unlock(&repo->lock);
	return r;
}

int cairn_repo__write_error(cairn_repo *repo)
{
	char msg[sizeof(repo->write_err_msg)];

	pthread_mutex_lock(&repo->lock);
	int r = repo->write_err;
	memcpy(msg, repo->write_err_msg, sizeof(msg));
	pthread_mutex_unlock(&repo->lock);
	return r < 0 ? cairn_err_set(r, "%s", msg) : 0;
}

void cairn_repo__warn(const cairn_repo *repo, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!repo->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	repo->warn(msg, repo->warn_payload);
}

size_t cairn_repo__max_raw(const cairn_repo *repo, int type)
{
	switch (type) {
	case CAIRN_BLOB_DATA:
		return repo->cfg.chunk.max;
	case CAIRN_BLOB_TREE:
		return CAIRN_TREE_MAX;
	case CAIRN_BLOB_SNAPSHOT:
		return CAIRN_SNAPSHOT_MAX;
	default:
		return 0;
	}
}

const char *cairn_repo_path(const cairn_repo *repo)
{
	return cairn_storage_url(repo->st);
}

cairn_storage *cairn_repo_storage(cairn_repo *repo)
{
	return repo->st;
}

const cairn_chunker *cairn_repo_chunker(const cairn_repo *repo)
{
	return repo->chunker;
}

int cairn_repo_compression(const cairn_repo *repo)
{
	return atomic_load(&repo->compression);
}

int cairn_repo_set_compression(cairn_repo *repo, int level)
{
	if (level < 0 || level > 19)
		return cairn_err_set(-EINVAL, "compression level %d is out of range 0..19", level);
	atomic_store(&repo->compression, level);
	return 0;
}

const char *cairn_repo_config_text(const cairn_repo *repo)
{
	return repo->config_text;
}

int cairn_repo_blob_id(const cairn_repo *repo, const void *data, size_t len, struct cairn_id *out)
{
	return cairn_crypt__hmac(repo->keys.id, data, len, out->b);
}

/* ---- objects ------------------------------------------------------------------- */

/* An S3 ETag of a plain PUT is the MD5 of the body. */
bool cairn_repo__md5_is(const struct cairn_buf *b, const char *etag)
{
	uint8_t md[16];
	char hex[33];
	EVP_Digest(b->data, b->len, md, NULL, EVP_md5(), NULL);
	cairn_hex(hex, md, sizeof(md));
	return strcmp(hex, etag) == 0;
}

int cairn_repo__get_object(cairn_repo *repo, int kind, const char *name, size_t max,
                           struct cairn_buf *out)
{
	if (repo->cache)
		return cairn_cache__get(repo->cache, kind, name, max, out);
	return cairn_storage_get(repo->st, kind, name, 0, 0, max, out);
}

int cairn_repo__put_object(cairn_repo *repo, int kind, const char *name, const void *data,
                           size_t len)
{
	int r = cairn_storage_put(repo->st, kind, name, data, len);
	if (r >= 0 && repo->cache)
		cairn_cache__put(repo->cache, kind, name, data, len);
	return r;
}

/* ---- state tables ------------------------------------------------------------------ */

static int need_index(cairn_repo *repo)
{
	return repo->index ? 0 : cairn_err_set(-ENOENT, "repository opened without index");
}

int cairn_repo_state_put(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_put(repo->index, table, k, klen, v, vlen);
}

int cairn_repo_state_get(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         struct cairn_buf *out)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_get(repo->index, table, k, klen, out);
}

int cairn_repo_state_del(cairn_repo *repo, const char *table, const void *k, size_t klen)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_del(repo->index, table, k, klen);
}

int cairn_repo_state_foreach(cairn_repo *repo, const char *table,
                             int (*cb)(const void *k, size_t klen, const void *v, size_t vlen,
                                       void *payload),
                             void *payload)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_foreach(repo->index, table, cb, payload);
}

int cairn_repo_state_drop(cairn_repo *repo, const char *table)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_drop(repo->index, table);
}
