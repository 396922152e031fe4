/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* S3-backed repositories: `-r s3://bucket/prefix` for the read commands and cairnfs
 * (docs/S3.md §5). */
#ifndef CAIRN_REMOTE_H
#define CAIRN_REMOTE_H

#include <stdbool.h>
#include <stdint.h>

#include "cairn/store.h"
#include "s3.h"

/* Objects of a repository (FORMAT.md §2) as stored in a bucket. */
enum remote_kind { REMOTE_CONFIG, REMOTE_KEY, REMOTE_PACK, REMOTE_SNAPSHOT };
/* The kind of a repository-relative name ("config", "keys/<16 hex>",
 * "packs/xx/<64 hex>", "snapshots/<64 hex>"), or -1 for a name cairn never writes. */
int remote_classify(const char *rel);

/* One object of a repository: in a bucket's listing, or a local file to upload. */
struct remote_obj {
	char rel[96]; /* "config", "keys/<16 hex>", "packs/xx/<64 hex>", "snapshots/<64 hex>" */
	int kind;     /* enum remote_kind */
	uint64_t size;
	char etag[129]; /* the remote ETag, or the local MD5 of config and keys */
};
struct remote_objs {
	struct remote_obj *v;
	size_t n, cap;
};
/* Append (-ENOMEM); etag may be NULL. */
int remote_objs_add(struct remote_objs *l, const char *rel, int kind, uint64_t size,
                    const char *etag);
/* Sort by name, for remote_objs_find(). */
void remote_objs_sort(struct remote_objs *l);
/* The object named rel in a sorted list, or NULL. */
struct remote_obj *remote_objs_find(const struct remote_objs *l, const char *rel);
/* Append the repository objects under "prefix/" (prefix "" for the whole bucket),
 * sorted; other keys are skipped. Errors of cairn_s3_list(). */
int remote_list(cairn_s3_conn *c, const char *prefix, struct remote_objs *out);

#define REMOTE_CACHE_SIZE_DEFAULT (2ull << 30)

struct remote_opts {
	const char *cache_dir; /* NULL: CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn, ~/.cache/cairn */
	uint64_t cache_size;   /* bound of the pack data cache; 0: CAIRN_CACHE_SIZE or 2 GiB */
	struct cairn_s3_opts s3;
};

/* True for "s3://..." repository names. */
bool remote_is_url(const char *repo);

/* Open the repository stored at url: mirror its config, keys and snapshots into a
 * cache directory (one per endpoint, bucket and prefix), bring the cached index up
 * to date from the pack headers (fetched once, with ranged GETs), and read packs
 * through a bounded on-disk block cache. When the server cannot be reached, a
 * cache that was filled before is used as it is, with a warning. The repository
 * refuses writes except to its index and state tables. -ENOENT no repository
 * there, -EACCES credentials refused, -EIO the server unreachable with nothing
 * cached, -EKEYREJECTED wrong password. Close with cairn_repo_close(). */
int remote_open(cairn_repo **out, const char *url, const char *pw, size_t pwlen,
                const struct remote_opts *o);

#endif
