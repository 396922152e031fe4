/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The S3 storage: objects under s3://BUCKET/PREFIX/ with the relative names of
 * FORMAT.md §2 (docs/S3.md §1). Caching is the repository's business. */
#include "storage.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/store.h"
#include "cleanup.h"
#include "s3.h"

#define KEY_MAX 700

struct s3store {
	cairn_s3 *s3;
	char *bucket, *prefix;
	pthread_mutex_t lock;
	cairn_s3_conn *idle[CAIRN_S3_CONNECTIONS_MAX]; /* protected by lock */
	size_t nidle;                                  /* protected by lock */
};

static int key_of(const struct s3store *s, const char *rel, char out[KEY_MAX])
{
	int n = snprintf(out, KEY_MAX, "%s%s%s", s->prefix, s->prefix[0] ? "/" : "", rel);
	return n < 0 || n >= KEY_MAX ? cairn_err_set(-EINVAL, "object name too long") : 0;
}

/* Each thread needs its own connection (STYLE §6): a pool of idle ones. */
static int take_conn(struct s3store *s, cairn_s3_conn **out)
{
	pthread_mutex_lock(&s->lock);
	cairn_s3_conn *c = s->nidle ? s->idle[--s->nidle] : NULL;
	pthread_mutex_unlock(&s->lock);
	if (c) {
		*out = c;
		return 0;
	}
	return cairn_s3_conn_new(out, s->s3);
}

static void give_conn(struct s3store *s, cairn_s3_conn *c)
{
	pthread_mutex_lock(&s->lock);
	if (s->nidle < ARRAY_SIZE(s->idle)) {
		s->idle[s->nidle++] = c;
		c = NULL;
	}
	pthread_mutex_unlock(&s->lock);
	cairn_s3_conn_free(c);
}

/* The key of rel and a connection; nothing is taken on failure. */
static int begin(struct s3store *s, const char *rel, char key[KEY_MAX], cairn_s3_conn **c)
{
	int r = key_of(s, rel, key);
	return r < 0 ? r : take_conn(s, c);
}

static int s3_get(void *self, const char *rel, uint64_t off, uint64_t len, size_t max,
                  struct cairn_buf *out)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	/* A range of an object shorter than it ends in a 416 (-EBADMSG): a short
	 * reply to one within it is a fault on the way (a proxy), asked again. */
	for (int tries = 0; tries < 3; tries++) {
		r = cairn_s3_get(c, key, off, len, len && len < max ? (size_t)len : max, out);
		if (r < 0 || !len || out->len == len)
			break;
	}
	give_conn(s, c);
	if (r >= 0 && len && out->len != len)
		return cairn_err_set(
		        -EBADMSG, "s3://%s/%s: %zu bytes came of the %llu asked at %llu", s->bucket,
		        key, out->len, (unsigned long long)len, (unsigned long long)off);
	return r;
}

static int s3_read(void *self, const char *rel, uint64_t off, void *buf, size_t len)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (len == 0)
		return 0;
	int r = s3_get(self, rel, off, len, len, &b);
	if (r >= 0)
		memcpy(buf, b.data, len);
	return r;
}

static int s3_get_file(void *self, const char *rel, int fd, uint64_t max, uint8_t sha256[32],
                       uint64_t *size)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	r = cairn_s3_get_file(c, key, fd, max, sha256, size);
	give_conn(s, c);
	return r;
}

/* only_new: If-None-Match, for an object that must not replace another. */
static int put_as(void *self, const char *rel, const void *data, size_t len, bool only_new)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	r = only_new ? cairn_s3_put_new(c, key, data, len) : cairn_s3_put(c, key, data, len, NULL);
	give_conn(s, c);
	return r;
}

static int s3_put(void *self, const char *rel, const void *data, size_t len)
{
	return put_as(self, rel, data, len, false);
}

static int s3_create(void *self, const char *rel, const void *data, size_t len)
{
	return put_as(self, rel, data, len, true);
}

static int s3_put_file(void *self, const char *rel, int fd, uint64_t size, const uint8_t *sha256)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	r = cairn_s3_put_file(c, key, fd, size, sha256, NULL);
	give_conn(s, c);
	return r;
}

static int s3_put_tmp(void *self, const char *rel, const char *tmp_path, int fd, uint64_t size,
                      const uint8_t *sha256)
{
	int r = s3_put_file(self, rel, fd, size, sha256);
	if (r >= 0)
		unlink(tmp_path);
	return r;
}

static int s3_stat(void *self, const char *rel, struct cairn_obj_info *out)
{
	struct s3store *s = self;
	struct cairn_s3_obj o;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	r = cairn_s3_head(c, key, &o);
	give_conn(s, c);
	if (r < 0)
		return r;
	out->size = o.size;
	snprintf(out->etag, sizeof(out->etag), "%s", o.etag);
	return 0;
}

struct listing {
	size_t skip; /* bytes of "<prefix>/<dir>/" */
	int (*cb)(const char *rest, const struct cairn_obj_info *o, void *payload);
	void *payload;
};

static int list_one(const struct cairn_s3xml_object *o, void *payload)
{
	struct listing *l = payload;
	struct cairn_obj_info info = { .size = o->size, .mtime = o->mtime };
	snprintf(info.etag, sizeof(info.etag), "%s", o->etag);
	return strlen(o->key) > l->skip ? l->cb(o->key + l->skip, &info, l->payload) : 0;
}

static int s3_list(void *self, const char *dir,
                   int (*cb)(const char *rest, const struct cairn_obj_info *o, void *payload),
                   void *payload)
{
	struct s3store *s = self;
	char key[KEY_MAX], rel[CAIRN_OBJ_REL_MAX];
	cairn_s3_conn *c;
	snprintf(rel, sizeof(rel), "%s/", dir);
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	struct listing l = { .skip = strlen(key), .cb = cb, .payload = payload };
	r = cairn_s3_list(c, key, list_one, &l);
	give_conn(s, c);
	return r;
}

/* Anything under the prefix, in one request: the bucket's root lists the
 * whole bucket. */
static int s3_any(void *self)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, "", key, &c);
	if (r < 0)
		return r;
	r = cairn_s3_list_any(c, key);
	give_conn(s, c);
	return r;
}

static int s3_remove(void *self, const char *rel)
{
	struct s3store *s = self;
	char key[KEY_MAX];
	cairn_s3_conn *c;
	int r = begin(s, rel, key, &c);
	if (r < 0)
		return r;
	r = cairn_s3_delete(c, key);
	give_conn(s, c);
	return r;
}

static void s3_stats(void *self, struct cairn_storage_stats *out)
{
	struct s3store *s = self;
	cairn_s3_counts(s->s3, out);
}

static int s3_etag(void *self, int fd, uint64_t size, char etag[129])
{
	struct s3store *s = self;
	return cairn_s3_file_etag(s->s3, fd, size, etag);
}

struct aborting {
	struct s3store *s;
	cairn_s3_conn *c;
	int64_t before; /* only uploads initiated before (Unix seconds); 0: all */
	int n;
};

static int abort_one(const struct cairn_s3xml_upload *u, void *payload)
{
	struct aborting *a = payload;
	if (a->before && (!u->initiated || u->initiated >= a->before))
		return 0;
	int r = cairn_s3_upload_abort(a->c, u->key, u->upload_id);
	a->n += r >= 0;
	return r;
}

static int s3_abort_uploads(void *self, const char *dir, int64_t before)
{
	struct s3store *s = self;
	char key[KEY_MAX], rel[CAIRN_OBJ_REL_MAX];
	struct aborting a = { s, NULL, before, 0 };
	snprintf(rel, sizeof(rel), "%s%s", dir ? dir : "", dir ? "/" : "");
	int r = begin(s, rel, key, &a.c);
	if (r < 0)
		return r;
	r = cairn_s3_uploads_list(a.c, key, abort_one, &a);
	give_conn(s, a.c);
	return r < 0 ? r : a.n;
}

static int s3_protection(void *self, struct cairn_storage_protection *out)
{
	struct s3store *s = self;
	struct cairn_s3xml_lock lock = { 0 };
	char versioning[16] = "";
	cairn_s3_conn *c;
	int r = take_conn(s, &c);
	if (r < 0)
		return r;
	if ((r = cairn_s3_object_lock(c, &lock)) >= 0 && lock.enabled) {
		out->object_lock = true;
		snprintf(out->mode, sizeof(out->mode), "%s", lock.mode);
		out->days = lock.days;
		out->years = lock.years;
	}
	if ((r >= 0 || r == -ENOENT) && (r = cairn_s3_versioning(c, versioning)) >= 0)
		out->versioning = strcmp(versioning, "Enabled") == 0;
	give_conn(s, c);
	return r;
}

static unsigned s3_concurrency(void *self)
{
	struct s3store *s = self;
	return cairn_s3_connections(s->s3);
}

static void s3_close(void *self)
{
	struct s3store *s = self;
	if (!s)
		return;
	for (size_t i = 0; i < s->nidle; i++)
		cairn_s3_conn_free(s->idle[i]);
	cairn_s3_free(s->s3);
	pthread_mutex_destroy(&s->lock);
	free(s->bucket);
	free(s->prefix);
	free(s);
}

static const struct cairn_storage_ops s3_ops = {
	.caps = CAIRN_STORAGE_REMOTE | CAIRN_STORAGE_MTIME,
	.concurrency = s3_concurrency,
	.get = s3_get,
	.read = s3_read,
	.get_file = s3_get_file,
	.put = s3_put,
	.create = s3_create,
	.put_file = s3_put_file,
	.put_tmp = s3_put_tmp,
	.stat = s3_stat,
	.list = s3_list,
	.any = s3_any,
	.remove = s3_remove,
	.stats = s3_stats,
	.etag = s3_etag,
	.abort_uploads = s3_abort_uploads,
	.protection = s3_protection,
	.close = s3_close,
};

/* <base>/s3-<32 hex of SHA-256(id)>, with tmp/ (id: cairn_storage_id). */
static int s3_state_dir(const struct s3store *s, const char *base_opt, char *out, size_t size)
{
	char base[PATH_MAX - 128], id[1024], hex[65], tmp[PATH_MAX];
	uint8_t md[32];
	int r = cairn_storage__cache_base(base_opt, base, sizeof(base));
	if (r < 0)
		return r;
	snprintf(id, sizeof(id), "%s/%s/%s", cairn_s3_endpoint(s->s3), s->bucket, s->prefix);
	if ((r = cairn_sha256(id, strlen(id), md)) < 0)
		return r;
	cairn_hex(hex, md, sizeof(md));
	snprintf(out, size, "%s/s3-%.32s", base, hex);
	if (snprintf(tmp, sizeof(tmp), "%s/tmp", out) >= (int)sizeof(tmp))
		return cairn_err_set(-ENAMETOOLONG, "cache path too long");
	if ((r = cairn_mkdir_p(tmp, 0700)) < 0)
		return cairn_err_wrap(r, "cannot create the cache");
	return 0;
}

int cairn_storage__s3_open(cairn_storage **out, const char *url, const struct cairn_storage_opts *o)
{
	struct s3store *s = calloc(1, sizeof(*s));
	char dir[PATH_MAX], canon[700], desc[1024], id[1024];
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&s->lock, NULL);
	int r = cairn_s3_url_parse(url, &s->bucket, &s->prefix);
	if (r >= 0)
		r = cairn_s3_new(&s->s3, s->bucket, &o->s3);
	if (r >= 0)
		r = s3_state_dir(s, o->cache_dir, dir, sizeof(dir));
	if (r < 0) {
		s3_close(s);
		return r;
	}
	snprintf(canon, sizeof(canon), "s3://%s%s%s", s->bucket, s->prefix[0] ? "/" : "",
	         s->prefix);
	snprintf(desc, sizeof(desc), "%s on %s", canon, cairn_s3_endpoint(s->s3));
	snprintf(id, sizeof(id), "%s/%s/%s", cairn_s3_endpoint(s->s3), s->bucket, s->prefix);
	return cairn_storage__new(out, &s3_ops, s, canon, desc, id, dir);
}
