/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn's S3 client: libcurl + OpenSSL, SigV4, retries, multipart (docs/S3.md). */
#ifndef CAIRN_S3_H
#define CAIRN_S3_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/storage.h"
#include "cairn/util.h"
#include "s3xml.h"

/*
 * Two objects:
 * - cairn_s3: one bucket on one endpoint with resolved credentials, region and
 *   addressing, retry policy and the adaptive concurrency gate. Immutable after
 *   cairn_s3_new() apart from atomics and the gate: thread-safe, shared by all
 *   threads.
 * - cairn_s3_conn: one libcurl easy handle (keep-alive connection) and scratch
 *   buffers. Not thread-safe: each thread makes its own (STYLE §6), so N threads
 *   give N parallel transfers. curl_global_init() must have run (main does it).
 *
 * Every operation retries by itself on 5xx, 429, SlowDown, RequestTimeout,
 * timeouts and dropped connections: up to CAIRN_S3_RETRIES attempts (default 8)
 * with exponential backoff and full jitter (base CAIRN_S3_RETRY_BASE_MS = 200,
 * cap CAIRN_S3_RETRY_CAP_MS = 20000; the environment variables override them).
 * Errors: -ENOENT no such key, -ENXIO no such bucket, -EACCES authentication or permission
 * refused ("S3 authentication failed: <Code>: <Message>"), -EHOSTUNREACH no
 * reply after the last retry (no connection, timeouts; the requests that follow
 * are then tried once, until one gets a reply), -EIO a refused request or
 * errors after the last retry, -EPROTO a reply that makes no sense, -EBADMSG content that fails its
 * checksum, -ENOMEM. Keys are never logged with credentials; secrets never are.
 */
typedef struct cairn_s3 cairn_s3;
typedef struct cairn_s3_conn cairn_s3_conn;

/* Resolve configuration and credentials (environment, ~/.aws/credentials,
 * ~/.aws/config; no network traffic). -EINVAL bad option or endpoint, -ENOENT no
 * credentials found. Caller frees with cairn_s3_free(). */
int cairn_s3_new(cairn_s3 **out, const char *bucket, const struct cairn_s3_opts *opts);
void cairn_s3_free(cairn_s3 *s);
/* "s3://bucket/prefix on http://127.0.0.1:7480 (path-style, us-east-1)": no secrets. */
const char *cairn_s3_describe(const cairn_s3 *s);
/* "scheme://host[:port]" of the endpoint (names the remote in local state). */
const char *cairn_s3_endpoint(const cairn_s3 *s);
unsigned cairn_s3_connections(const cairn_s3 *s);
/* HTTP requests sent so far, retries included (statistics). */
uint64_t cairn_s3_requests(const cairn_s3 *s);
/* The same by method (GET of the bucket counts as LIST), and the payload bytes
 * sent and received. */
void cairn_s3_counts(const cairn_s3 *s, struct cairn_storage_stats *out);

/* A connection for the calling thread. -ENOMEM, -EIO (curl). */
int cairn_s3_conn_new(cairn_s3_conn **out, cairn_s3 *s);
void cairn_s3_conn_free(cairn_s3_conn *c);

/* What HEAD, PUT and LIST report about an object. */
struct cairn_s3_obj {
	uint64_t size;
	char etag[129]; /* without quotes */
};

/* PUT len bytes from memory with Content-MD5 and the payload's SHA-256; the ETag
 * the server returns must be the MD5. out may be NULL. */
int cairn_s3_put(cairn_s3_conn *c, const char *key, const void *data, size_t len,
                 struct cairn_s3_obj *out);
/* The same only if key does not exist (If-None-Match: *): -EEXIST when it does;
 * -EOPNOTSUPP from a server that does not implement the condition. */
int cairn_s3_put_new(cairn_s3_conn *c, const char *key, const void *data, size_t len);
/* PUT size bytes of the file fd from offset 0, streamed (never read into memory
 * whole); objects above the multipart threshold (CAIRN_S3_MULTIPART_THRESHOLD,
 * default 64 MiB) go up in parts (CAIRN_S3_PART_SIZE, default 16 MiB, >= 5 MiB),
 * each with Content-MD5; a failed multipart upload is aborted. out->etag is the
 * final ETag, checked against the one computed locally. sha256, when not NULL,
 * is what the file must hash to (a pack's name): signed as the payload's hash,
 * for the server to refuse a body that differs (-EBADMSG), and checked here
 * before a multipart upload is completed. */
int cairn_s3_put_file(cairn_s3_conn *c, const char *key, int fd, uint64_t size,
                      const uint8_t *sha256, struct cairn_s3_obj *out);
/* The ETag this client's upload of the file would get: hex MD5, or for multipart
 * sizes "<MD5 of the part MD5s>-<parts>". For comparisons with a listing. */
int cairn_s3_file_etag(const cairn_s3 *s, int fd, uint64_t size, char etag[129]);

/* GET into out (replacing its content). len 0: the whole object; else bytes
 * [off, off + len) with a Range header (fewer if the object ends first). More than
 * max bytes: -EFBIG. */
int cairn_s3_get(cairn_s3_conn *c, const char *key, uint64_t off, uint64_t len, size_t max,
                 struct cairn_buf *out);
/* GET the whole object into fd (truncated first and again before each retry),
 * computing its SHA-256. More than max bytes: -EFBIG. */
int cairn_s3_get_file(cairn_s3_conn *c, const char *key, int fd, uint64_t max,
                      uint8_t sha256_out[32], uint64_t *size_out);
int cairn_s3_head(cairn_s3_conn *c, const char *key, struct cairn_s3_obj *out);
/* DELETE; deleting a missing key succeeds (S3 semantics). */
int cairn_s3_delete(cairn_s3_conn *c, const char *key);

/* 1 when some key starts with prefix (one ListObjectsV2 of one key), else 0. */
int cairn_s3_list_any(cairn_s3_conn *c, const char *prefix);
/* ListObjectsV2 of every key starting with prefix, page by page (1000 a page).
 * cb gets each object (borrowed), once the whole listing is in; a negative
 * return stops it. A listing whose keys are not strictly increasing (a page
 * sent twice) is made once more, then it fails: -EPROTO. */
int cairn_s3_list(cairn_s3_conn *c, const char *prefix,
                  int (*cb)(const struct cairn_s3xml_object *o, void *payload), void *payload);
/* ListMultipartUploads under prefix; cb for each (borrowed). */
int cairn_s3_uploads_list(cairn_s3_conn *c, const char *prefix,
                          int (*cb)(const struct cairn_s3xml_upload *u, void *payload),
                          void *payload);
int cairn_s3_upload_abort(cairn_s3_conn *c, const char *key, const char *upload_id);

/* GetBucketVersioning: "Enabled", "Suspended" or "" (never enabled). */
int cairn_s3_versioning(cairn_s3_conn *c, char status[16]);
/* GetObjectLockConfiguration; -ENOENT when the bucket has none. */
int cairn_s3_object_lock(cairn_s3_conn *c, struct cairn_s3xml_lock *out);

/* Run fn(c, i, payload) for every i in [0, n) on up to cairn_s3_connections()
 * threads, each with a connection of its own (one thread: the caller's main_conn).
 * The first failure stops the others after their current job; its code and
 * message are returned. */
int cairn_s3_parallel(cairn_s3 *s, cairn_s3_conn *main_conn, size_t n,
                      int (*fn)(cairn_s3_conn *c, size_t i, void *payload), void *payload);

/* Split "s3://bucket[/prefix]" into malloc'd bucket and prefix (without leading or
 * trailing '/', "" if none). -EINVAL with a message for anything else. */
int cairn_s3_url_parse(const char *url, char **bucket, char **prefix);

/* ---- module-internal (s3.c, s3conf.c, tests) ------------------------------ */

/* The resolved configuration (s3conf.c). Secrets are wiped by _release. */
struct cairn_s3__config {
	char scheme[8]; /* "http" or "https" */
	char host[256]; /* endpoint host; IPv6 literals keep their brackets */
	char port[8];   /* "" for the scheme's default */
	bool custom_endpoint;
	bool path_style;
	char region[64];
	char access_key[256];
	char secret_key[256];
	char *session_token;  /* NULL if none */
	char ca_bundle[4096]; /* AWS_CA_BUNDLE or "" */
};
int cairn_s3__config_load(struct cairn_s3__config *cfg, const char *bucket,
                          const struct cairn_s3_opts *opts);
void cairn_s3__config_release(struct cairn_s3__config *cfg);
/* Look up key in [section] of an INI text (AWS config syntax: '#'/';' comments,
 * "key = value", an indented block after "key =" gives "key.sub"). Returns 1 and
 * copies the value, 0 if absent, -EINVAL if it does not fit in out. */
int cairn_s3__ini_get(const char *text, size_t len, const char *section, const char *key, char *out,
                      size_t size);
/* The adaptive gate's current limit of requests in flight (tests). */
unsigned cairn_s3__gate_limit(cairn_s3 *s);
/* Full-jitter backoff delay in ms for a 0-based attempt (base and cap in ms). */
uint64_t cairn_s3__backoff_ms(unsigned attempt, uint64_t base, uint64_t cap, uint32_t rnd);

#endif
