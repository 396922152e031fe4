/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Where a repository's objects live: a local directory or an S3 bucket, behind one
 * interface (docs/DESIGN.md "Storage"). */
#ifndef CAIRN_STORAGE_H
#define CAIRN_STORAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/util.h"

/*
 * The objects of a repository (FORMAT.md §2). A name is the part that varies:
 * "" for the config, 16 hex digits for a key, 64 for packs, index files and
 * snapshots, 32 for locks and pending deletions. cairn_obj_rel() is the one place
 * that turns a kind and a name into the object's relative path (its S3 key
 * below the prefix); every storage asks it.
 */
enum cairn_obj_kind {
	CAIRN_OBJ_CONFIG = 1, /* config */
	CAIRN_OBJ_KEY,        /* keys/<16 hex> */
	CAIRN_OBJ_PACK,       /* packs/<2 hex>/<64 hex> */
	CAIRN_OBJ_INDEX,      /* indexes/<64 hex> */
	CAIRN_OBJ_SNAPSHOT,   /* snapshots/<64 hex> */
	CAIRN_OBJ_LOCK,       /* locks/<32 hex> */
	CAIRN_OBJ_PRUNE,      /* prune/<32 hex>: a prune's pending deletions */
};
#define CAIRN_OBJ_KIND_MAX CAIRN_OBJ_PRUNE
#define CAIRN_OBJ_NAME_MAX 65 /* longest name and its NUL */
#define CAIRN_OBJ_REL_MAX 96  /* longest relative path and its NUL */

/* "packs", "snapshots", ... for messages. */
const char *cairn_obj_kind_name(int kind);
/* True if name is a valid name for kind. */
bool cairn_obj_name_ok(int kind, const char *name);
/* The relative path of an object. -EINVAL for a bad kind or name. */
int cairn_obj_rel(char out[CAIRN_OBJ_REL_MAX], int kind, const char *name);
/* The inverse: kind and name of a relative path; -EINVAL for anything cairn never
 * writes (temp files, strangers, the LMDB index). */
int cairn_obj_parse(const char *rel, int *kind, char name[CAIRN_OBJ_NAME_MAX]);

/* What a listing or a stat knows of an object. */
struct cairn_obj_info {
	char name[CAIRN_OBJ_NAME_MAX];
	uint64_t size;
	int64_t mtime;  /* Unix seconds: the file's mtime, or S3's LastModified */
	char etag[129]; /* S3's ETag without quotes; "" for local files */
};

/* S3 settings (docs/S3.md §6). Secrets never come through here. */
enum cairn_s3_addressing {
	CAIRN_S3_ADDR_AUTO,    /* path-style for custom endpoints, else virtual-hosted */
	CAIRN_S3_ADDR_PATH,    /* http://host/bucket/key */
	CAIRN_S3_ADDR_VIRTUAL, /* http://bucket.host/key */
};
enum cairn_s3_lock_mode { CAIRN_S3_LOCK_COMPLIANCE, CAIRN_S3_LOCK_GOVERNANCE };
#define CAIRN_S3_OPTS_VERSION 1
struct cairn_s3_opts {
	unsigned version;        /* CAIRN_S3_OPTS_VERSION */
	const char *endpoint;    /* NULL: AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, the profile's
	                            endpoint_url, else https://s3.<region>.amazonaws.com */
	const char *region;      /* NULL: AWS_REGION, AWS_DEFAULT_REGION, profile, us-east-1 */
	const char *profile;     /* NULL: AWS_PROFILE, else "default" */
	int addressing;          /* enum cairn_s3_addressing; AUTO also reads the profile's
	                            s3.addressing_style */
	unsigned connections;    /* most requests in flight at once; 0: 8 */
	unsigned lock_days;      /* > 0: PUTs carry Object Lock retention for this long */
	int lock_mode;           /* enum cairn_s3_lock_mode */
	bool local_only;         /* for local state only (cairn_storage_id, the cache): no
	                            credentials needed, and every request fails -EINVAL */
	unsigned stall_attempts; /* > 0: a request whose transfer stalled (nothing for the
	                            low-speed window, 60 s) this many times gives up then,
	                            the server counted unreachable; 0: as many as retries */
};
#define CAIRN_S3_CONNECTIONS_DEFAULT 8
#define CAIRN_S3_CONNECTIONS_MAX 64

#define CAIRN_STORAGE_OPTS_VERSION 1
struct cairn_storage_opts {
	unsigned version; /* CAIRN_STORAGE_OPTS_VERSION */
	struct cairn_s3_opts s3;
	/* Local state of a remote storage (temp files; the repository keeps its
	 * caches there too): NULL for CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn or
	 * ~/.cache/cairn, then one directory per endpoint, bucket and prefix. */
	const char *cache_dir;
};

/*
 * A storage: opaque, thread-safe (every call may come from any thread at once).
 * Every operation that fails sets the message and returns -ENOENT (no such
 * object), -ENXIO (no such bucket), -EACCES (credentials or permissions refused), -EHOSTUNREACH
 * (the storage gave no reply, after retries), -EIO/-ETIMEDOUT (it failed), -ENOSPC, -EBADMSG
 * (content failed a checksum), -EINVAL (bad kind or name).
 */
typedef struct cairn_storage cairn_storage;

/* What a storage can do (cairn_storage_caps). */
#define CAIRN_STORAGE_REMOTE 0x1u /* each call is a network round trip: cache what you can */
#define CAIRN_STORAGE_MTIME 0x2u  /* listings carry trustworthy mtimes */

/* url: "s3://BUCKET[/PREFIX]" or a directory path. Opening sends no request and
 * creates nothing but, for S3, the local state directory. Caller closes with
 * cairn_storage_close(). -EINVAL bad URL or S3 settings, -ENOENT no credentials. */
int cairn_storage_open(cairn_storage **out, const char *url, const struct cairn_storage_opts *o);
void cairn_storage_close(cairn_storage *st);
bool cairn_storage_is_url(const char *s); /* "s3://..." */
/* "/srv/repo" or "s3://bucket/prefix". Borrowed. */
const char *cairn_storage_url(const cairn_storage *st);
/* The same with the endpoint, for messages ("s3://b/p on http://127.0.0.1:7480"). */
const char *cairn_storage_describe(const cairn_storage *st);
unsigned cairn_storage_caps(const cairn_storage *st);
/* How many requests are worth running at once (S3: --s3-connections). */
unsigned cairn_storage_concurrency(const cairn_storage *st);
/* A stable name of where the objects are, for local state kept about this
 * storage (sync's records): the directory, or "<endpoint>/<bucket>/<prefix>".
 * Borrowed. */
const char *cairn_storage_id(const cairn_storage *st);
/* A local directory this storage's user may keep state in: the repository
 * directory itself, or the S3 storage's cache directory. It has tmp/ for temp
 * files on the same file system as whatever put_tmp() renames. Borrowed. */
const char *cairn_storage_state_dir(const cairn_storage *st);
/* Where put_tmp() wants its temp files (state_dir/tmp). Borrowed. */
const char *cairn_storage_tmp_dir(const cairn_storage *st);

/* Read bytes [off, off + len) of an object into out (replacing its content); len 0
 * reads it whole. More than max bytes: -EFBIG. A range past the end is -EBADMSG. */
int cairn_storage_get(cairn_storage *st, int kind, const char *name, uint64_t off, uint64_t len,
                      size_t max, struct cairn_buf *out);
/* Exactly len bytes at off into buf. -EBADMSG if the object ends first. */
int cairn_storage_read(cairn_storage *st, int kind, const char *name, uint64_t off, void *buf,
                       size_t len);
/* Read a whole object into fd (truncated first), computing its SHA-256. More than
 * max bytes: -EFBIG. */
int cairn_storage_get_file(cairn_storage *st, int kind, const char *name, int fd, uint64_t max,
                           uint8_t sha256_out[32], uint64_t *size_out);
/* Write an object durably (it exists whole, or not at all, once this returns).
 * An existing object of that name is replaced. */
int cairn_storage_put(cairn_storage *st, int kind, const char *name, const void *data, size_t len);
/* The same, only if no object has that name: -EEXIST when one has. A storage
 * that cannot tell in the same request answers -EOPNOTSUPP. */
int cairn_storage_create(cairn_storage *st, int kind, const char *name, const void *data,
                         size_t len);
/* 1 if the storage holds anything at all (one request), 0 if not; -EOPNOTSUPP
 * for a storage that cannot tell in one request (a local one). */
int cairn_storage_any(cairn_storage *st);
/* The same from size bytes of a file, streamed. */
int cairn_storage_put_file(cairn_storage *st, int kind, const char *name, int fd, uint64_t size);
/* The same from a complete temp file in cairn_storage_tmp_dir(), which the storage
 * takes over: a local one renames it into place, a remote one uploads it; either
 * way tmp_path is gone once this succeeds (on failure the caller removes it). */
int cairn_storage_put_tmp(cairn_storage *st, int kind, const char *name, const char *tmp_path,
                          int fd, uint64_t size);
/* Size, mtime and ETag of an object. -ENOENT. */
int cairn_storage_stat(cairn_storage *st, int kind, const char *name, struct cairn_obj_info *out);
/* Call cb for every object of kind (unordered); a negative return stops the
 * listing and is returned. Names that are not valid for kind are skipped. A kind
 * with nothing stored yet lists nothing. */
int cairn_storage_list(cairn_storage *st, int kind,
                       int (*cb)(const struct cairn_obj_info *o, void *payload), void *payload);
/* Remove an object; removing one that is not there succeeds. */
int cairn_storage_remove(cairn_storage *st, int kind, const char *name);

/* A read-only descriptor of a local object and its size (a copy to another
 * storage streams from it). -EOPNOTSUPP for a remote storage, -ENOENT. */
int cairn_storage_open_file(cairn_storage *st, int kind, const char *name, int *fd_out,
                            uint64_t *size_out);
/* The ETag this storage would give size bytes of fd once stored (S3: the MD5,
 * or the multipart form), to compare with a listing. -EOPNOTSUPP for storages
 * without ETags. */
int cairn_storage_etag(cairn_storage *st, int fd, uint64_t size, char etag[129]);
/* Abort the uploads a killed writer left unfinished (S3 multipart uploads under
 * the prefix, or under dir/ of it when dir is not NULL): they cost storage and
 * nothing refers to them. before (Unix seconds, the server's clock): only
 * uploads initiated earlier, so that a running writer's go on; 0: all.
 * Returns how many. A local storage has none. */
int cairn_storage_abort_uploads(cairn_storage *st, const char *dir, int64_t before);

/* How the storage guards against deletion (3-2-1-1-0's "1"): S3 Object Lock
 * or versioning. -EOPNOTSUPP for a local storage. */
struct cairn_storage_protection {
	bool object_lock; /* Object Lock enabled on the bucket */
	char mode[16];    /* its default retention: "GOVERNANCE", "COMPLIANCE" or "" */
	uint32_t days, years;
	bool versioning; /* versioning enabled */
};
int cairn_storage_protection(cairn_storage *st, struct cairn_storage_protection *out);

/* Requests sent (remote: HTTP requests, retries included; local: calls) and
 * payload bytes, by method, since the storage was opened. */
enum cairn_storage_method {
	CAIRN_STORAGE_GET,
	CAIRN_STORAGE_PUT,
	CAIRN_STORAGE_HEAD,
	CAIRN_STORAGE_LIST,
	CAIRN_STORAGE_DELETE,
	CAIRN_STORAGE_POST,
	CAIRN_STORAGE_METHODS
};
struct cairn_storage_stats {
	uint64_t requests[CAIRN_STORAGE_METHODS];
	uint64_t bytes_up, bytes_down;
};
void cairn_storage_stats(const cairn_storage *st, struct cairn_storage_stats *out);
const char *cairn_storage_method_name(int method);        /* "GET", "PUT", ... */
uint64_t cairn_storage_requests(const cairn_storage *st); /* all methods */

#endif
