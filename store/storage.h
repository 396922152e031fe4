/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The storage backends' table of operations (STYLE §12). Internal. */
#ifndef CAIRN_STORAGE_INTERNAL_H
#define CAIRN_STORAGE_INTERNAL_H

#include <limits.h>

#include "cairn/storage.h"

/*
 * What a home for objects implements. The dispatch in storage.c checks kinds and
 * names, turns them into relative paths (cairn_obj_rel) and counts requests, so a
 * backend sees only valid relative paths ("packs/ab/ab12..."). Every operation
 * may be called from many threads at once. Errors as in cairn/storage.h.
 */
struct cairn_storage_ops {
	unsigned caps; /* CAIRN_STORAGE_* */
	unsigned (*concurrency)(void *self);
	int (*get)(void *self, const char *rel, uint64_t off, uint64_t len, size_t max,
	           struct cairn_buf *out);
	int (*read)(void *self, const char *rel, uint64_t off, void *buf, size_t len);
	int (*get_file)(void *self, const char *rel, int fd, uint64_t max, uint8_t sha256[32],
	                uint64_t *size);
	int (*put)(void *self, const char *rel, const void *data, size_t len);
	/* May be NULL. put only if there is no such object: -EEXIST;
	 * -EOPNOTSUPP when the server cannot make the condition. */
	int (*create)(void *self, const char *rel, const void *data, size_t len);
	/* sha256: what the content hashes to when its name says so (a pack), else
	 * NULL. A backend that reads the content anyway, or whose server can
	 * check it, stores nothing that differs: -EBADMSG. */
	int (*put_file)(void *self, const char *rel, int fd, uint64_t size, const uint8_t *sha256);
	/* tmp_path is in the storage's tmp dir; it is gone once this succeeds. */
	int (*put_tmp)(void *self, const char *rel, const char *tmp_path, int fd, uint64_t size,
	               const uint8_t *sha256);
	int (*stat)(void *self, const char *rel, struct cairn_obj_info *out);
	/* Every object whose relative path starts with dir + "/" (dir: "keys",
	 * "packs", ...); cb gets the rest of the path and its size/mtime/etag. */
	int (*list)(void *self, const char *dir,
	            int (*cb)(const char *rest, const struct cairn_obj_info *o, void *payload),
	            void *payload);
	/* May be NULL. 1 if the storage holds any object at all, else 0. */
	int (*any)(void *self);
	int (*remove)(void *self, const char *rel);
	void (*stats)(void *self, struct cairn_storage_stats *out);
	/* May be NULL: -EOPNOTSUPP (abort_uploads: 0). */
	int (*open_file)(void *self, const char *rel, int *fd, uint64_t *size);
	int (*etag)(void *self, int fd, uint64_t size, char etag[129]);
	int (*abort_uploads)(void *self, const char *dir, int64_t before);
	int (*protection)(void *self, struct cairn_storage_protection *out);
	/* May be NULL. Drop what is kept open of rel: the next read sees the
	 * object as it is now (one replaced by a rename, say). */
	void (*forget)(void *self, const char *rel);
	void (*close)(void *self);
};

/* Wrap a backend: the storage owns self (ops->close runs at cairn_storage_close,
 * also when this fails). url and state_dir are copied. */
int cairn_storage__new(cairn_storage **out, const struct cairn_storage_ops *ops, void *self,
                       const char *url, const char *describe, const char *id,
                       const char *state_dir);

/* Drop what the backend keeps open of an object, so that the next read opens
 * it again: after its content failed a check (a repaired pack may have been
 * put in its place). */
void cairn_storage__forget(cairn_storage *st, int kind, const char *name);

/* The user's cache directory: opt (--cache-dir), else CAIRN_CACHE_DIR, else
 * $XDG_CACHE_HOME/cairn, else ~/.cache/cairn. -EINVAL none, -ENAMETOOLONG. */
int cairn_storage__cache_base(const char *opt, char *out, size_t size);

/* The backends. */
int cairn_storage__local_open(cairn_storage **out, const char *dir);
int cairn_storage__s3_open(cairn_storage **out, const char *url,
                           const struct cairn_storage_opts *o);

#endif
