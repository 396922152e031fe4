/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The storage interface: the object layout (FORMAT.md §2) and what every
 * backend shares (docs/DESIGN.md "Storage"); storage-open.c picks the backend. */
#include "storage.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "crypt.h"

struct cairn_storage {
	const struct cairn_storage_ops *ops;
	void *self;
	char *url, *desc, *id, *state_dir, *tmp_dir;
	_Atomic uint64_t calls[CAIRN_STORAGE_METHODS]; /* backends without stats() */
};

/* ---- the layout ------------------------------------------------------------ */

struct kind_layout {
	const char *dir; /* "" for the config */
	size_t hex;      /* length of a name in hex digits */
	bool fanout;     /* packs/<first 2 hex>/<name> */
};

static const struct kind_layout layouts[] = {
	[CAIRN_OBJ_CONFIG] = { "", 0, false },
	[CAIRN_OBJ_KEY] = { "keys", 16, false },
	[CAIRN_OBJ_PACK] = { "packs", 64, true },
	[CAIRN_OBJ_INDEX] = { "indexes", 64, false },
	[CAIRN_OBJ_SNAPSHOT] = { "snapshots", 64, false },
	[CAIRN_OBJ_LOCK] = { "locks", 32, false },
	[CAIRN_OBJ_PRUNE] = { "prune", 32, false },
};

static const struct kind_layout *layout_of(int kind)
{
	return kind >= CAIRN_OBJ_CONFIG && kind <= CAIRN_OBJ_KIND_MAX ? &layouts[kind] : NULL;
}

const char *cairn_obj_kind_name(int kind)
{
	const struct kind_layout *l = layout_of(kind);
	return !l ? "unknown" : kind == CAIRN_OBJ_CONFIG ? "config" : l->dir;
}

/* Lowercase hex only: names are written that way, and one object must not have
 * two spellings. */
static bool lower_hex(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return s[n] == '\0';
}

bool cairn_obj_name_ok(int kind, const char *name)
{
	const struct kind_layout *l = layout_of(kind);
	if (!l || !name)
		return false;
	if (l->hex == 0)
		return name[0] == '\0';
	return strnlen(name, l->hex + 1) == l->hex && lower_hex(name, l->hex);
}

int cairn_obj_rel(char out[CAIRN_OBJ_REL_MAX], int kind, const char *name)
{
	const struct kind_layout *l = layout_of(kind);
	if (!cairn_obj_name_ok(kind, name))
		return cairn_err_set(-EINVAL, "'%.80s' is not the name of a %s object",
		                     name ? name : "(null)", cairn_obj_kind_name(kind));
	if (kind == CAIRN_OBJ_CONFIG)
		snprintf(out, CAIRN_OBJ_REL_MAX, "config");
	else if (l->fanout)
		snprintf(out, CAIRN_OBJ_REL_MAX, "%s/%.2s/%s", l->dir, name, name);
	else
		snprintf(out, CAIRN_OBJ_REL_MAX, "%s/%s", l->dir, name);
	return 0;
}

int cairn_obj_parse(const char *rel, int *kind, char name[CAIRN_OBJ_NAME_MAX])
{
	for (int k = CAIRN_OBJ_CONFIG; k <= CAIRN_OBJ_KIND_MAX; k++) {
		const struct kind_layout *l = &layouts[k];
		size_t dl = strlen(l->dir);
		const char *n = rel;
		if (k == CAIRN_OBJ_CONFIG) {
			if (strcmp(rel, "config") != 0)
				continue;
			n = "";
		} else {
			if (strncmp(rel, l->dir, dl) != 0 || rel[dl] != '/')
				continue;
			n = rel + dl + 1;
			if (l->fanout) {
				if (strnlen(n, 3) < 3 || n[2] != '/' || strncmp(n, n + 3, 2) != 0)
					return -EINVAL;
				n += 3;
			}
		}
		if (!cairn_obj_name_ok(k, n))
			return -EINVAL;
		*kind = k;
		snprintf(name, CAIRN_OBJ_NAME_MAX, "%s", n);
		return 0;
	}
	return -EINVAL;
}

/* ---- the storage ----------------------------------------------------------- */

int cairn_storage__new(cairn_storage **out, const struct cairn_storage_ops *ops, void *self,
                       const char *url, const char *describe, const char *id, const char *state_dir)
{
	cairn_storage *st = calloc(1, sizeof(*st));
	if (st) {
		st->ops = ops;
		st->self = self;
		st->url = strdup(url);
		st->desc = strdup(describe);
		st->id = strdup(id);
		st->state_dir = strdup(state_dir);
		if (asprintf(&st->tmp_dir, "%s/tmp", state_dir) < 0)
			st->tmp_dir = NULL;
	}
	if (!st || !st->url || !st->desc || !st->id || !st->state_dir || !st->tmp_dir) {
		if (st)
			st->self = NULL;
		cairn_storage_close(st);
		ops->close(self);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = st;
	return 0;
}

void cairn_storage_close(cairn_storage *st)
{
	if (!st)
		return;
	if (st->self)
		st->ops->close(st->self);
	free(st->url);
	free(st->desc);
	free(st->id);
	free(st->state_dir);
	free(st->tmp_dir);
	free(st);
}

int cairn_storage__cache_base(const char *opt, char *out, size_t size)
{
	const char *e = opt && *opt ? opt : getenv("CAIRN_CACHE_DIR");
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

bool cairn_storage_is_url(const char *s)
{
	return s && strncmp(s, "s3://", 5) == 0;
}

const char *cairn_storage_url(const cairn_storage *st)
{
	return st->url;
}

const char *cairn_storage_describe(const cairn_storage *st)
{
	return st->desc;
}

unsigned cairn_storage_caps(const cairn_storage *st)
{
	return st->ops->caps;
}

unsigned cairn_storage_concurrency(const cairn_storage *st)
{
	return st->ops->concurrency ? st->ops->concurrency(st->self) : 4;
}

const char *cairn_storage_id(const cairn_storage *st)
{
	return st->id;
}

const char *cairn_storage_state_dir(const cairn_storage *st)
{
	return st->state_dir;
}

const char *cairn_storage_tmp_dir(const cairn_storage *st)
{
	return st->tmp_dir;
}

static void count(cairn_storage *st, int method)
{
	atomic_fetch_add_explicit(&st->calls[method], 1, memory_order_relaxed);
}

int cairn_storage_get(cairn_storage *st, int kind, const char *name, uint64_t off, uint64_t len,
                      size_t max, struct cairn_buf *out)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_GET);
	return st->ops->get(st->self, rel, off, len, max, out);
}

int cairn_storage_read(cairn_storage *st, int kind, const char *name, uint64_t off, void *buf,
                       size_t len)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_GET);
	return st->ops->read(st->self, rel, off, buf, len);
}

void cairn_storage__forget(cairn_storage *st, int kind, const char *name)
{
	char rel[CAIRN_OBJ_REL_MAX];
	if (st->ops->forget && cairn_obj_rel(rel, kind, name) >= 0)
		st->ops->forget(st->self, rel);
}

int cairn_storage_get_file(cairn_storage *st, int kind, const char *name, int fd, uint64_t max,
                           uint8_t sha256_out[32], uint64_t *size_out)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_GET);
	return st->ops->get_file(st->self, rel, fd, max, sha256_out, size_out);
}

int cairn_storage_put(cairn_storage *st, int kind, const char *name, const void *data, size_t len)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_PUT);
	return st->ops->put(st->self, rel, data, len);
}

static int unsupported(const cairn_storage *st, const char *what);

int cairn_storage_create(cairn_storage *st, int kind, const char *name, const void *data,
                         size_t len)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	if (!st->ops->create)
		return unsupported(st, "a write only if absent");
	count(st, CAIRN_STORAGE_PUT);
	return st->ops->create(st->self, rel, data, len);
}

int cairn_storage_any(cairn_storage *st)
{
	if (!st->ops->any)
		return unsupported(st, "a listing of everything");
	count(st, CAIRN_STORAGE_LIST);
	return st->ops->any(st->self);
}

/* A pack is named by the SHA-256 of its content (FORMAT.md §6.1): the backend
 * gets it to check the upload against, so that no pack is stored under a name
 * its content does not hash to. */
static const uint8_t *named_sha(int kind, const char *name, uint8_t out[32])
{
	return kind == CAIRN_OBJ_PACK && cairn_unhex(out, 32, name) >= 0 ? out : NULL;
}

#define DAMAGED_TRIES 3 /* puts of a pack whose upload arrived damaged */

/* A pack's put whose check failed (-EBADMSG): the file itself does not hash to
 * its name (say so: -EBADMSG), or the upload was damaged on the way (-EAGAIN:
 * try again). */
static int check_failed(const char *name, int fd, uint64_t size, const uint8_t *want)
{
	uint8_t got[32];
	char hex[65];
	int r = cairn_crypt__sha256_fd(fd, size, got);
	if (r < 0)
		return r;
	if (memcmp(got, want, sizeof(got)) == 0)
		return -EAGAIN;
	cairn_hex(hex, got, sizeof(got));
	return cairn_err_set(-EBADMSG, "pack %s is corrupt: its SHA-256 is %s (not stored)", name,
	                     hex);
}

/* put_tmp (tmp_path) or put_file; a pack is tried again when its upload arrived
 * damaged (plain HTTP has no checksum of its own): the file is checked first. */
static int put_fd(cairn_storage *st, int kind, const char *name, const char *tmp_path, int fd,
                  uint64_t size)
{
	char rel[CAIRN_OBJ_REL_MAX];
	uint8_t sha[32];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	const uint8_t *want = named_sha(kind, name, sha);
	for (int tries = 1;; tries++) {
		count(st, CAIRN_STORAGE_PUT);
		r = tmp_path ? st->ops->put_tmp(st->self, rel, tmp_path, fd, size, want)
		             : st->ops->put_file(st->self, rel, fd, size, want);
		if (r != -EBADMSG || !want || tries == DAMAGED_TRIES)
			return r;
		int q = check_failed(name, fd, size, want);
		if (q != -EAGAIN)
			return q;
		cairn_log(CAIRN_LOG_WARNING,
		          "pack %s arrived damaged: sending it again (try %d of %d)", name,
		          tries + 1, DAMAGED_TRIES);
	}
}

int cairn_storage_put_file(cairn_storage *st, int kind, const char *name, int fd, uint64_t size)
{
	return put_fd(st, kind, name, NULL, fd, size);
}

int cairn_storage_put_tmp(cairn_storage *st, int kind, const char *name, const char *tmp_path,
                          int fd, uint64_t size)
{
	return put_fd(st, kind, name, tmp_path, fd, size);
}

int cairn_storage_stat(cairn_storage *st, int kind, const char *name, struct cairn_obj_info *out)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_HEAD);
	struct cairn_obj_info info = { 0 };
	if ((r = st->ops->stat(st->self, rel, &info)) < 0)
		return r;
	snprintf(info.name, sizeof(info.name), "%s", name);
	*out = info;
	return 0;
}

struct listing {
	int kind;
	int (*cb)(const struct cairn_obj_info *o, void *payload);
	void *payload;
};

/* rest is what follows "<dir>/": "<name>", or "<2 hex>/<name>" for packs. */
static int list_one(const char *rest, const struct cairn_obj_info *o, void *payload)
{
	struct listing *l = payload;
	const char *name = rest;
	if (layouts[l->kind].fanout) {
		if (strnlen(rest, 3) < 3 || rest[2] != '/' || strncmp(rest, rest + 3, 2) != 0)
			return 0;
		name = rest + 3;
	}
	if (!cairn_obj_name_ok(l->kind, name))
		return 0; /* temp files and strangers */
	struct cairn_obj_info info = *o;
	snprintf(info.name, sizeof(info.name), "%s", name);
	return l->cb(&info, l->payload);
}

int cairn_storage_list(cairn_storage *st, int kind,
                       int (*cb)(const struct cairn_obj_info *o, void *payload), void *payload)
{
	const struct kind_layout *lay = layout_of(kind);
	if (!lay || kind == CAIRN_OBJ_CONFIG)
		return cairn_err_set(-EINVAL, "cannot list %s objects", cairn_obj_kind_name(kind));
	struct listing l = { .kind = kind, .cb = cb, .payload = payload };
	count(st, CAIRN_STORAGE_LIST);
	return st->ops->list(st->self, lay->dir, list_one, &l);
}

int cairn_storage_remove(cairn_storage *st, int kind, const char *name)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	count(st, CAIRN_STORAGE_DELETE);
	return st->ops->remove(st->self, rel);
}

static int unsupported(const cairn_storage *st, const char *what)
{
	return cairn_err_set(-EOPNOTSUPP, "%s: %s is not supported there", st->url, what);
}

int cairn_storage_open_file(cairn_storage *st, int kind, const char *name, int *fd_out,
                            uint64_t *size_out)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = cairn_obj_rel(rel, kind, name);
	if (r < 0)
		return r;
	if (!st->ops->open_file)
		return unsupported(st, "opening an object as a file");
	count(st, CAIRN_STORAGE_GET);
	return st->ops->open_file(st->self, rel, fd_out, size_out);
}

int cairn_storage_etag(cairn_storage *st, int fd, uint64_t size, char etag[129])
{
	return st->ops->etag ? st->ops->etag(st->self, fd, size, etag) : unsupported(st, "an ETag");
}

int cairn_storage_abort_uploads(cairn_storage *st, const char *dir, int64_t before)
{
	return st->ops->abort_uploads ? st->ops->abort_uploads(st->self, dir, before) : 0;
}

int cairn_storage_protection(cairn_storage *st, struct cairn_storage_protection *out)
{
	*out = (struct cairn_storage_protection){ 0 };
	return st->ops->protection ? st->ops->protection(st->self, out)
	                           : unsupported(st, "Object Lock or versioning");
}

void cairn_storage_stats(const cairn_storage *st, struct cairn_storage_stats *out)
{
	*out = (struct cairn_storage_stats){ 0 };
	if (st->ops->stats) {
		st->ops->stats(st->self, out);
		return;
	}
	for (int i = 0; i < CAIRN_STORAGE_METHODS; i++)
		out->requests[i] = atomic_load_explicit(&st->calls[i], memory_order_relaxed);
}

uint64_t cairn_storage_requests(const cairn_storage *st)
{
	struct cairn_storage_stats s;
	uint64_t n = 0;
	cairn_storage_stats(st, &s);
	for (int i = 0; i < CAIRN_STORAGE_METHODS; i++)
		n += s.requests[i];
	return n;
}

const char *cairn_storage_method_name(int method)
{
	static const char *const names[CAIRN_STORAGE_METHODS] = { "GET",  "PUT",    "HEAD",
		                                                  "LIST", "DELETE", "POST" };
	return method >= 0 && method < CAIRN_STORAGE_METHODS ? names[method] : "?";
}
