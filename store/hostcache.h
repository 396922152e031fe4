/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The host cache of a write-only key (FORMAT.md §14): the plaintext of the
 * snapshots this host wrote and of their trees, which the key cannot read back
 * from the repository. Internal. */
#ifndef CAIRN_HOSTCACHE_H
#define CAIRN_HOSTCACHE_H

#include "crypt.h"

/* Thread-safe. Every failure to write it costs a later backup reading files
 * again, never data. */
typedef struct cairn_hostcache cairn_hostcache;

#define CAIRN_HOSTCACHE_TREES_MAX (1u << 25) /* IDs in one .trees file */

/* Open (creating it) <base>/host-<repo id>, base as cairn_storage__cache_base()
 * chooses from base_opt, and hold its lock shared. id_key (K_id) checks what is
 * read. -EINVAL no cache directory, -EIO, -ENOMEM. Close with _close(). */
int cairn_hostcache__open(cairn_hostcache **out, const char *base_opt,
                          const uint8_t repo_id[CAIRN_REPO_ID_SIZE],
                          const uint8_t id_key[CAIRN_KEY_SIZE]);
void cairn_hostcache__close(cairn_hostcache *hc);
/* The directory (for messages and tests). Borrowed. */
const char *cairn_hostcache__dir(const cairn_hostcache *hc);

/* A tree this host stores: kept unless it is there, and noted for the snapshot
 * to come. */
int cairn_hostcache__keep_tree(cairn_hostcache *hc, const struct cairn_id *id, const void *data,
                               size_t len);
/* A tree's plaintext into out (replaced), checked against its ID, and noted.
 * -ENOENT when not kept (or damaged, then removed). */
int cairn_hostcache__tree(cairn_hostcache *hc, const struct cairn_id *id, struct cairn_buf *out);
/* The snapshots kept whose ID is among ids (the storage's listing), unordered,
 * their id set. Caller frees with cairn_snapshot_list_free(). */
int cairn_hostcache__snapshots(cairn_hostcache *hc, const struct cairn_id *ids, size_t nids,
                               struct cairn_snapshot ***out, size_t *n);
/* One kept snapshot; -ENOENT. */
int cairn_hostcache__snapshot(cairn_hostcache *hc, const struct cairn_id *id,
                              struct cairn_snapshot **out);
/* Snapshot id (plaintext plain) was saved: keep it with the trees noted since
 * the last one, then tidy up unless another process has the cache open: per
 * hostname and paths the newest snapshot stays, those not among ids (the
 * storage's listing) go, and the trees no remaining snapshot names. */
int cairn_hostcache__saved(cairn_hostcache *hc, const struct cairn_id *id, const void *plain,
                           size_t len, const struct cairn_id *ids, size_t nids);

/* The .trees format (FORMAT.md §14): encode a set (sorted here), and decode
 * into a malloc'd array (*out, caller frees). -EBADMSG, -ENOMEM. */
int cairn_hostcache__encode_trees(struct cairn_buf *out, const struct cairn_idset *set);
int cairn_hostcache__parse_trees(const uint8_t *p, size_t len, struct cairn_id **out, size_t *n);

#endif
