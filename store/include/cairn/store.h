/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* libcairnstore: the public API of a cairn repository (docs/FORMAT.md). */
#ifndef CAIRN_STORE_H
#define CAIRN_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/storage.h"
#include "cairn/util.h"

#define CAIRN_FORMAT_VERSION 1
#define CAIRN_ID_SIZE 32

/* A blob or pack ID (FORMAT.md §5.1, §6.1). Open struct: compare with memcmp. */
struct cairn_id {
	uint8_t b[CAIRN_ID_SIZE];
};
#define CAIRN_ID_HEX_SIZE (2 * CAIRN_ID_SIZE + 1)
void cairn_id_hex(char out[CAIRN_ID_HEX_SIZE], const struct cairn_id *id);
int cairn_id_parse(struct cairn_id *out, const char *hex); /* -EINVAL */
bool cairn_id_is_zero(const struct cairn_id *id);
int cairn_id_cmp(const struct cairn_id *a, const struct cairn_id *b);
/* SHA-256 of data, with the digest fetched from OpenSSL once (SHA256() fetches
 * it on every call, which costs more than hashing a short message). -ENOMEM,
 * -EIO (OpenSSL lacks SHA-256). Thread-safe. */
int cairn_sha256(const void *data, size_t len, uint8_t out[32]);

enum cairn_blob_type {
	CAIRN_BLOB_DATA = 1,
	CAIRN_BLOB_TREE = 2,
	CAIRN_BLOB_SNAPSHOT = 3,
	CAIRN_BLOB_PACKHDR = 4,
	CAIRN_BLOB_INDEX = 5, /* an index file, indexes/<id> (FORMAT.md §12) */
};
const char *cairn_blob_type_name(int type);
/* Raw size limits of FORMAT.md §5.3 (data blobs: the config's chunk max). */
#define CAIRN_TREE_MAX (64u * 1024 * 1024)
#define CAIRN_SNAPSHOT_MAX (16u * 1024 * 1024)

/* Where a blob lives (FORMAT.md §7 `blobs`). */
struct cairn_loc {
	struct cairn_id pack;
	uint32_t offset;
	uint32_t stored_len;
	uint32_t raw_len;
	uint8_t type;
};

/* ---- Chunker (FORMAT.md §9) -------------------------------------------- */

struct cairn_chunk_params {
	uint32_t min, avg, max; /* avg a power of two, min < avg < max */
};
#define CAIRN_CHUNK_MIN_DEFAULT (512u * 1024)
#define CAIRN_CHUNK_AVG_DEFAULT (1024u * 1024)
#define CAIRN_CHUNK_MAX_DEFAULT (8u * 1024 * 1024)

typedef struct cairn_chunker cairn_chunker;
/* Validates params (-EINVAL) and builds the table from the 32-byte gear key.
 * Caller frees with cairn_chunker_free(). Immutable afterwards: thread-safe. */
int cairn_chunker_new(cairn_chunker **out, const struct cairn_chunk_params *p,
                      const uint8_t gear_key[32]);
void cairn_chunker_free(cairn_chunker *c);
/* Length of the next chunk at the start of p[0..n). The caller passes at least
 * params.max bytes unless the input ends within them (then all that is left).
 * Returns a value in [1, min(n, max)]; n when n <= min. n must be > 0. */
size_t cairn_chunker_cut(const cairn_chunker *c, const uint8_t *p, size_t n);
const struct cairn_chunk_params *cairn_chunker_params(const cairn_chunker *c);

/* ---- Repository --------------------------------------------------------- */

typedef struct cairn_repo cairn_repo;
/* A lock held by this process (FORMAT.md §11; see "Locks" below). */
typedef struct cairn_lock cairn_lock;

#define CAIRN_INIT_OPTS_VERSION 1
struct cairn_init_opts {
	unsigned version;                         /* CAIRN_INIT_OPTS_VERSION */
	struct cairn_chunk_params chunk;          /* zero: defaults */
	int compression;                          /* -1: default (3); 0 off; 1..19 */
	uint32_t pack_size;                       /* 0: default 16 MiB */
	int kdf_log2n;                            /* 0: calibrated (14..20); 10..20 */
	const char *key_label;                    /* NULL: user@host */
	const struct cairn_storage_opts *storage; /* NULL: defaults (S3 from the environment) */
};
/* Create a repository at url: a directory (which must not exist or be empty) or
 * s3://BUCKET[/PREFIX] (which must hold no config or keys). -EEXIST if it already
 * holds a repository, -EINVAL for bad options, storage errors. */
int cairn_repo_init(const char *url, const char *password, size_t pwlen,
                    const struct cairn_init_opts *opts);

#define CAIRN_REPO_OPTS_VERSION 1
struct cairn_repo_opts {
	unsigned version; /* CAIRN_REPO_OPTS_VERSION */
	bool read_only;   /* no writes at all; a local index opened MDB_RDONLY */
	bool no_index;    /* do not open index/ (rebuild-index, key commands) */
	/* Told, one line without newline each, what the repository skipped and the
	 * user should hear of: a key file refused for its scrypt cost, a damaged
	 * snapshot left out of a listing. May be called from any thread that uses
	 * the repository. NULL: not told. */
	void (*warn)(const char *msg, void *payload);
	void *warn_payload;
	const struct cairn_storage_opts *storage; /* NULL: defaults (S3 from the environment) */
	uint64_t cache_size; /* remote: bound of the data block cache; 0: CAIRN_CACHE_SIZE or 1 GiB
	                      */
	/* The caller only adds backups: a write-only key (FORMAT.md §3.3) may open
	 * it. Otherwise such a key is refused with -EACCES, before anything is
	 * read. */
	bool allow_write_only;
	/* The caller stores blobs, and takes its lock with cairn_repo_lock()
	 * before it looks anything up. A remote repository's cache is then brought
	 * up to date under that lock, after the prune records are read, rather
	 * than at open: a prune that ran in between has by then rewritten the
	 * index files the cache reads, or its record is known (DESIGN.md "Prune
	 * while backups run"). */
	bool lock_first;
	/* A directory holding CAIRN_INCOMPLETE_FILE is opened all the same (the
	 * sync that is finishing the copy); otherwise it is refused. */
	bool incomplete_ok;
};
/* In a directory: the copy a sync is making into it is not whole yet (FORMAT.md
 * §2). Opening it is refused until that sync, run again, ends. */
#define CAIRN_INCOMPLETE_FILE "incomplete"
/*
 * Open and unlock the repository at url (a directory or s3://BUCKET[/PREFIX]).
 * With a write-only key (only when opts->allow_write_only), data, trees and
 * snapshots cannot be read: the snapshots listed and the trees loaded are those
 * of the host cache (FORMAT.md §14), and writes are sealed to the admin key.
 * The key file that last opened the repository is tried first (its name is kept
 * in the local state), then the others in name order; key files asking for more
 * scrypt work than init writes are skipped with a warning (FORMAT.md §3.2).
 *
 * A remote repository keeps its local state (the index, caches, temp files) in
 * the storage's cache directory (cairn_storage_state_dir), brought up to date
 * at open. When the storage cannot be reached and read_only is set, a cache
 * filled before is used as it is, with a warning; writes then fail with -EROFS.
 *
 * -ENOENT no repository there, -EPROTONOSUPPORT unknown format version,
 * -EKEYREJECTED wrong password, -EBADMSG corrupt config or key file, -EACCES
 * storage credentials refused or a write-only key not allowed, -EIO the
 * storage unreachable. Caller closes with
 * cairn_repo_close(). */
int cairn_repo_open(cairn_repo **out, const char *url, const char *password, size_t pwlen,
                    const struct cairn_repo_opts *opts);
/* Flushes nothing: call cairn_repo_flush() first to keep buffered blobs. */
void cairn_repo_close(cairn_repo *repo);
/* Checks that url holds a repository of a known version, without a password.
 * -ENOENT, -EPROTONOSUPPORT, -EBADMSG, storage errors. */
int cairn_repo_probe(const char *url, const struct cairn_storage_opts *o);

/* "/srv/repo" or "s3://bucket/prefix". Borrowed. */
const char *cairn_repo_path(const cairn_repo *repo);
/* The storage the repository lives in (for locks). Borrowed. */
cairn_storage *cairn_repo_storage(cairn_repo *repo);
const cairn_chunker *cairn_repo_chunker(const cairn_repo *repo);
int cairn_repo_compression(const cairn_repo *repo);
/* Override the zstd level for blobs written from now on (0..19); -EINVAL. */
int cairn_repo_set_compression(cairn_repo *repo, int level);
/* Text of the config file (for `cairn cat config`). Borrowed. */
const char *cairn_repo_config_text(const cairn_repo *repo);

/* ---- Keys (FORMAT.md §3) ------------------------------------------------ */

/* A full key reads and changes everything; a write-only key (FORMAT.md §3.3)
 * only adds backups. */
enum cairn_key_kind {
	CAIRN_KEY_FULL = 0,
	CAIRN_KEY_WRITE_ONLY = 1,
};
/* "full", "write-only". */
const char *cairn_key_kind_name(int kind);

struct cairn_key_info {
	char name[17];   /* file name under keys/ */
	int64_t created; /* Unix seconds */
	char label[256];
	int kdf_log2n;
	uint32_t r, p;
	bool current;         /* the key that opened this repo */
	int kind;             /* enum cairn_key_kind; -1 when unreadable */
	char unreadable[256]; /* "" for a key file that parses, else why it does not */
};
/* Fills a malloc'd array with every key file in keys/, caller frees *out. A key
 * file that cannot be read or parsed is listed with only its name and the
 * reason in unreadable. Storage errors, -ENOMEM. */
int cairn_key_list(cairn_repo *repo, struct cairn_key_info **out, size_t *n);
/* Adds a key file wrapping the master key under password; name_out gets its name.
 * kdf_log2n: the scrypt cost log2(N) of the new key file, 10..20, or 0 for
 * the cost of the key in use (-EINVAL out of range). These four need the repository opened with a
 * full key (-EACCES), and the caller holding a CAIRN_LOCK_KEYS lock; the three that change keys
 * refuse
 * (-EKEYREVOKED) when the storage no longer holds the key in use. */
int cairn_key_add(cairn_repo *repo, const char *password, size_t pwlen, const char *label,
                  int kdf_log2n, char name_out[17]);
/* Adds a write-only key file (FORMAT.md §3.3) under password. */
int cairn_key_add_write_only(cairn_repo *repo, const char *password, size_t pwlen,
                             const char *label, int kdf_log2n, char name_out[17]);
/* Removes keys/name. -ENOENT; -EBUSY for the one in use, or when no other full
 * key file that parses would remain. */
int cairn_key_remove(cairn_repo *repo, const char *name);
/* Replaces the current key file by one for the new password, with label (NULL:
 * the current key's label kept) and kdf_log2n as for cairn_key_add. */
int cairn_key_passwd(cairn_repo *repo, const char *password, size_t pwlen, const char *label,
                     int kdf_log2n);
/* True when the repository was opened with a write-only key. */
bool cairn_repo_write_only(const cairn_repo *repo);

/* ---- Blobs -------------------------------------------------------------- */

/* HMAC chunk ID of data (FORMAT.md §5.1). Thread-safe. -ENOMEM. */
int cairn_repo_blob_id(const cairn_repo *repo, const void *data, size_t len, struct cairn_id *out);

/* Store a data or tree blob unless the repository has it. Compresses, encrypts and
 * appends it to a pack; the pack becomes durable and indexed when it fills or at
 * cairn_repo_flush(). Returns 1 if stored, 0 if it was already there.
 * Thread-safe: callers in several threads compress and encrypt in parallel.
 * -ENOSPC, -EIO, -EINVAL (too large for its type). A failed pack write, finish
 * or index commit is sticky: it loses blobs earlier puts reported as stored, so
 * every later put and flush of this handle fails with it, and so does
 * cairn_repo_snapshot_save(). */
int cairn_repo_put(cairn_repo *repo, int type, const void *data, size_t len,
                   const struct cairn_id *id_or_null, struct cairn_id *id_out);
/* 1 if the blob is in the index or in a pack being written, 0 if not. Thread-safe. */
int cairn_repo_has(cairn_repo *repo, const struct cairn_id *id);
/* Blobs and sealed bytes this handle has written to packs since it was opened. */
struct cairn_repo_stats {
	uint64_t blobs_written;
	uint64_t bytes_written;
	uint64_t packs_written;
};
void cairn_repo_stats(const cairn_repo *repo, struct cairn_repo_stats *out);
/* Finish every open pack and commit their index entries. Thread-safe. Fails
 * when any pack write of this handle failed (see cairn_repo_put), after keeping
 * the packs that are sound. */
int cairn_repo_flush(cairn_repo *repo);

/* Read, verify and decompress a blob into out (replacing its content).
 * -ENOENT not in the index, -EBADMSG corrupt (names pack and offset), -EIO.
 * Thread-safe. */
int cairn_repo_get(cairn_repo *repo, const struct cairn_id *id, struct cairn_buf *out);
/* Like cairn_repo_get, with the type checked (-EBADMSG on mismatch). */
int cairn_repo_get_typed(cairn_repo *repo, int type, const struct cairn_id *id,
                         struct cairn_buf *out);
/* Where a blob is stored. -ENOENT. Thread-safe. */
int cairn_repo_lookup(cairn_repo *repo, const struct cairn_id *id, struct cairn_loc *out);

/*
 * Read ahead for a reader of every file below tree root, depth first with the
 * entries of each tree in order (restore, dump): for a repository in a remote
 * storage, the pack ranges of their data blobs are fetched into the cache on
 * the storage's connections, at most a quarter of the cache budget (1 to 256
 * MiB) ahead of the data the handle has read. *out is NULL when there is
 * nothing to do (a local repository). Stop it (NULL is fine) before the
 * repository is closed. Failures are left to the reader to meet.
 */
typedef struct cairn_prefetch cairn_prefetch;
int cairn_repo_prefetch_start(cairn_repo *repo, const struct cairn_id *root, cairn_prefetch **out);
void cairn_prefetch_stop(cairn_prefetch *pf);

/* ---- Packs and index ---------------------------------------------------- */

struct cairn_pack_entry {
	struct cairn_id id;
	uint8_t type;
	uint32_t offset, stored_len, raw_len;
};
/* Read and verify a pack's header (FORMAT.md §6.2). Caller frees *out.
 * -ENOENT, -EBADMSG. */
int cairn_repo_pack_entries(cairn_repo *repo, const struct cairn_id *pack,
                            struct cairn_pack_entry **out, size_t *n);
/* Call cb for every pack file in packs/ (unordered). A negative return stops. */
int cairn_repo_foreach_pack(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                            void *payload);
/* Recreate index/ from packs/ and snapshots/ (FORMAT.md §7). Returns the number of
 * packs read. The repository must be open without read_only. */
int cairn_repo_rebuild_index(cairn_repo *repo);
/* After cairn_repo_rebuild_index() (or an open that rebuilt the index): how many
 * packs whose header could not be read no index file named either, so that
 * their blobs are not in the index (each was named in a warning). */
size_t cairn_repo_unindexed_packs(const cairn_repo *repo);
/* Index every pack in packs/ that the index lacks: a process killed between a
 * pack's rename and its index commit leaves one, whose blobs a later run would
 * otherwise store again. Unreadable packs are skipped (check reports them).
 * Returns the number of packs added. -EROFS, -ENOENT opened without index, -EIO. */
int cairn_repo_index_unknown_packs(cairn_repo *repo);
/* The opposite: every pack of the index that the storage lacks (lost, or
 * deleted behind cairn's back) leaves it, with a warning, so that backups store
 * its blobs again where they meet them rather than refer to them. One listing
 * of packs/. Returns how many left. -EROFS, -ENOENT without index, -EIO. */
int cairn_repo_index_drop_missing(cairn_repo *repo);
/* The index no longer places blob id in pack, where its copy is damaged
 * (check --read-data found it so): backups store it again where they meet it,
 * and that copy then serves every snapshot. 1 dropped, 0 the index placed it
 * elsewhere or nowhere. */
int cairn_repo_index_drop_blob(cairn_repo *repo, const struct cairn_id *id,
                               const struct cairn_id *pack);
/* What index file `name` says (FORMAT.md §12), read from st, a storage that
 * holds this repository (a sync's other side, or the repository's own), and
 * authenticated with repo's keys: *packs the packs it names, *sup the index
 * files it supersedes. Caller frees both. -ENOENT, -EBADMSG, -ENOMEM, storage
 * errors. */
int cairn_repo_index_file_names(cairn_repo *repo, cairn_storage *st, const char *name,
                                struct cairn_id **packs, size_t *npacks, struct cairn_id **sup,
                                size_t *nsup);
/* Read and authenticate every index file (FORMAT.md §12); bad() gets a line for
 * each that is damaged (prune writes them anew). Returns how many were read.
 * -ENOMEM, -EHOSTUNREACH, listing errors. */
int cairn_repo_check_index_files(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                 void *payload);
/* Read every prune record (FORMAT.md §13); bad() gets a line for each that does
 * not parse (it stops every backup until an admin's prune removes it). Returns
 * how many were read. -ENOMEM, listing and storage errors. */
int cairn_repo_check_prune_records(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                   void *payload);
/* After a writer was killed (kill -9, a crash): when a lock of this host whose
 * holder is dead is found, index the packs the index lacks (one renamed or
 * uploaded just before the kill); and when no other writer is alive (own: the
 * caller's lock; mounts do not write), remove the temp packs in the storage's
 * tmp dir: a writer holds its lock while its temp packs exist, so those listed
 * before the locks belong to nobody; and the temp files of object writes
 * untouched for an hour (their writers may hold no lock). */
struct cairn_recover_stats {
	int packs_indexed;
	int temps_removed;
};
int cairn_repo_recover(cairn_repo *repo, const cairn_lock *own, struct cairn_recover_stats *out);
/* The same, and also drop packs and snapshots that are gone (a rebuild when a
 * pack went) and index new snapshots: for the cache of a remote repository.
 * Returns the number of packs added. */
int cairn_repo_index_update(cairn_repo *repo);
/* Call cb for every blob in the index, in ID order. A negative return stops. */
int cairn_repo_foreach_blob(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                      void *payload),
                            void *payload);

/* ---- Local state tables ----------------------------------------------- */

/* Small key/value tables kept in the repository's index environment for other
 * subsystems (e.g. "sync:<remote>" upload state, "check" results). They are a
 * local cache like the index: losing them costs work, never data. Thread-safe.
 * get: -ENOENT if absent; out is replaced. foreach: key order; a negative return
 * stops it. The repository must be open with an index. */
int cairn_repo_state_put(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen);
int cairn_repo_state_get(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         struct cairn_buf *out);
int cairn_repo_state_del(cairn_repo *repo, const char *table, const void *k, size_t klen);
int cairn_repo_state_foreach(cairn_repo *repo, const char *table,
                             int (*cb)(const void *k, size_t klen, const void *v, size_t vlen,
                                       void *payload),
                             void *payload);
int cairn_repo_state_drop(cairn_repo *repo, const char *table);

/* ---- ID sets ------------------------------------------------------------ */

/* An open-addressing hash set of IDs (with an optional u64 value per ID), for
 * dedup bookkeeping, reachability (prune, check) and hard-link maps. The caller
 * embeds it: cairn_idset_init / cairn_idset_release. Not thread-safe. */
struct cairn_idset {
	struct cairn_id *keys;
	uint64_t *vals;
	uint8_t *used;
	size_t cap, count;
};
void cairn_idset_init(struct cairn_idset *s);
void cairn_idset_release(struct cairn_idset *s);
/* 1 if added, 0 if present (value left unchanged), -ENOMEM. */
int cairn_idset_add(struct cairn_idset *s, const struct cairn_id *id, uint64_t val);
bool cairn_idset_has(const struct cairn_idset *s, const struct cairn_id *id);
/* Pointer to the value stored with id, or NULL. Valid until the next add. */
uint64_t *cairn_idset_get(const struct cairn_idset *s, const struct cairn_id *id);
/* 1 if removed, 0 if absent. */
int cairn_idset_del(struct cairn_idset *s, const struct cairn_id *id);
/* Iterate: for (size_t i = 0; cairn_idset_next(s, &i, &id);) ... */
bool cairn_idset_next(const struct cairn_idset *s, size_t *pos, const struct cairn_id **id);

/* ---- Trees and snapshots (FORMAT.md §8, §10) -------------------------- */

/* Node types and flags of a tree entry (FORMAT.md §10). */
enum cairn_node_type {
	CAIRN_NODE_FILE = 1,
	CAIRN_NODE_DIR = 2,
	CAIRN_NODE_SYMLINK = 3,
	CAIRN_NODE_FIFO = 4,
	CAIRN_NODE_SOCKET = 5,
	CAIRN_NODE_CHR = 6,
	CAIRN_NODE_BLK = 7,
};
#define CAIRN_NODE_INCOMPLETE 0x1u /* flags: could not be read completely */

#define CAIRN_TREE_MAX_SIZE (64u << 20) /* bytes, FORMAT.md §5.3 */
#define CAIRN_TREE_MAX_ENTRIES 10000000u
#define CAIRN_NAME_MAX 255         /* entry and xattr names */
#define CAIRN_TREE_MAX_XATTRS 1024 /* per entry */
#define CAIRN_XATTR_VALUE_MAX 65536
#define CAIRN_SYMLINK_MAX 4095

struct cairn_xattr {
	const uint8_t *name; /* 1..255 bytes, no NUL */
	size_t name_len;
	const uint8_t *value; /* binary, 0..65536 bytes */
	size_t value_len;
};

/* A run of file content: the data blob id, or all-zero for a hole of len bytes. */
struct cairn_extent {
	struct cairn_id id;
	uint64_t len; /* > 0 */
};

/*
 * One directory entry. Open struct: every pointer is borrowed from the tree or
 * builder that produced it and lives as long as that object. Fields that do not
 * apply to the type must be zero/NULL/0-length: target for symlinks only,
 * subtree (non-zero) for directories only, extents for regular files only.
 */
struct cairn_node {
	const uint8_t *name; /* raw bytes, 1..255, no '/' or NUL, not "." or ".." */
	size_t name_len;
	uint8_t type;   /* enum cairn_node_type */
	uint32_t flags; /* CAIRN_NODE_INCOMPLETE; other bits 0 */
	uint32_t mode;  /* permission bits, <= 07777 */
	uint32_t uid, gid;
	const uint8_t *user; /* 0..255 bytes, no NUL; empty when unknown */
	size_t user_len;
	const uint8_t *group;
	size_t group_len;
	uint64_t size; /* regular files: the sum of the extent lengths */
	int64_t mtime_ns, ctime_ns, atime_ns;
	uint64_t dev, ino, rdev;
	uint32_t nlink;
	size_t nxattrs; /* <= 1024 */
	const struct cairn_xattr *xattrs;
	const uint8_t *target; /* symlinks: 1..4095 bytes, no NUL (0 only if INCOMPLETE) */
	size_t target_len;
	struct cairn_id subtree; /* directories */
	size_t nextents;         /* regular files, in file order */
	const struct cairn_extent *extents;
};

/* A decoded tree blob (immutable, so safe to share between threads). */
typedef struct cairn_tree cairn_tree;
/* Decode and fully validate a tree blob's plaintext (FORMAT.md §10). data is
 * copied: the tree does not refer to it afterwards. -EBADMSG (message names the
 * entry and offset), -ENOMEM. Caller frees with cairn_tree_free(). */
int cairn_tree_parse(cairn_tree **out, const uint8_t *data, size_t len);
void cairn_tree_free(cairn_tree *t);
/* Read, verify and parse tree blob id of repo (cairn_repo_get_typed and
 * cairn_tree_parse; with a write-only key, from the host cache, FORMAT.md §14).
 * -ENOENT not in the index (or the host cache), -EBADMSG corrupt, -EIO.
 * Caller frees *out with cairn_tree_free(). Thread-safe. */
int cairn_repo_tree_load(cairn_repo *repo, const struct cairn_id *id, cairn_tree **out);
size_t cairn_tree_count(const cairn_tree *t);
/* Bytes of memory the parsed tree holds (for a cache's accounting). */
size_t cairn_tree_memory(const cairn_tree *t);
/* An entry found by path: node is borrowed from parent, the tree that holds it;
 * both are NULL for the root itself. */
struct cairn_tree_entry {
	cairn_tree *parent;
	const struct cairn_node *node;
};
/* Find path ("/home/me"; empty and "." components ignored) below the tree root
 * of repo. -ENOENT not there, -ENOTDIR a component is not a directory (also the
 * last one, when a "/" follows it: "/etc/passwd/"), -EINVAL
 * for "..", -EBADMSG a corrupt tree; the message names the path. *out is set
 * only on success; the caller frees out->parent with cairn_tree_free(). */
int cairn_repo_tree_lookup_path(cairn_repo *repo, const struct cairn_id *root, const char *path,
                                struct cairn_tree_entry *out);
/* Entry i in name order, or NULL when i >= count. Borrowed from t. */
const struct cairn_node *cairn_tree_node(const cairn_tree *t, size_t i);
/* Binary search by raw name. 0 and *index_out set, or -ENOENT. */
int cairn_tree_find(const cairn_tree *t, const void *name, size_t len, size_t *index_out);

/* The fields of a node (FORMAT.md §10), as bits of a mask for cairn_node_diff(). */
enum cairn_node_field {
	CAIRN_NODE_F_NAME = 1u << 0,
	CAIRN_NODE_F_TYPE = 1u << 1,
	CAIRN_NODE_F_FLAGS = 1u << 2,
	CAIRN_NODE_F_MODE = 1u << 3,
	CAIRN_NODE_F_UID = 1u << 4,
	CAIRN_NODE_F_GID = 1u << 5,
	CAIRN_NODE_F_USER = 1u << 6,
	CAIRN_NODE_F_GROUP = 1u << 7,
	CAIRN_NODE_F_SIZE = 1u << 8,
	CAIRN_NODE_F_MTIME = 1u << 9,
	CAIRN_NODE_F_CTIME = 1u << 10,
	CAIRN_NODE_F_ATIME = 1u << 11,
	CAIRN_NODE_F_DEV = 1u << 12,
	CAIRN_NODE_F_INO = 1u << 13,
	CAIRN_NODE_F_NLINK = 1u << 14,
	CAIRN_NODE_F_RDEV = 1u << 15,
	CAIRN_NODE_F_XATTRS = 1u << 16,  /* names and values, in order */
	CAIRN_NODE_F_TARGET = 1u << 17,  /* symlink target */
	CAIRN_NODE_F_SUBTREE = 1u << 18, /* directory tree ID */
	CAIRN_NODE_F_EXTENTS = 1u << 19, /* file content: IDs and lengths, in order */
};
#define CAIRN_NODE_F_ALL ((1u << 20) - 1) /* everything the encoding holds */
/* The fields of mask in which a and b differ; 0 when they agree on all of them.
 * Two nodes that agree on CAIRN_NODE_F_ALL encode to the same bytes. */
unsigned cairn_node_diff(const struct cairn_node *a, const struct cairn_node *b, unsigned mask);
/* cairn_node_diff(a, b, mask) == 0. */
bool cairn_node_equal(const struct cairn_node *a, const struct cairn_node *b, unsigned mask);
/* The file type bits (S_IFREG, S_IFDIR, ...) of a node type; 0 for none. */
unsigned cairn_node_ifmt(uint8_t type);

/* Collects the entries of one directory and encodes them canonically: the same
 * set of nodes gives the same bytes whatever order they were added in.
 * Not thread-safe. Caller frees with cairn_tree_builder_free(). -ENOMEM. */
typedef struct cairn_tree_builder cairn_tree_builder;
int cairn_tree_builder_new(cairn_tree_builder **out);
void cairn_tree_builder_free(cairn_tree_builder *b);
/* Validate node and deep-copy it (xattrs in any order; they are sorted here).
 * -EINVAL with a message for any rule of FORMAT.md §10 broken (bad name, too
 * many xattrs, duplicate xattr, extents not summing to size, too many entries,
 * ...), -ENOMEM. The builder is unchanged on failure. */
int cairn_tree_builder_add(cairn_tree_builder *b, const struct cairn_node *node);
size_t cairn_tree_builder_count(const cairn_tree_builder *b);
/* Append the tree blob plaintext to out. -EEXIST two entries have the same name,
 * -EINVAL the tree would exceed CAIRN_TREE_MAX_SIZE, -ENOMEM; out is unchanged on
 * failure. May be called again after more adds. */
int cairn_tree_builder_encode(cairn_tree_builder *b, struct cairn_buf *out);

#define CAIRN_SNAPSHOT_MAX_SIZE (16u << 20) /* bytes, FORMAT.md §5.3 */
#define CAIRN_SNAPSHOT_MAX_PATHS 4096
#define CAIRN_SNAPSHOT_MAX_TAGS 1024

struct cairn_snapshot_summary {
	uint64_t files_new, files_changed, files_unmodified, dirs;
	uint64_t bytes_read, bytes_added, blobs_added;
	uint32_t errors;
	bool partial; /* some entries could not be read */
};

/* A snapshot (FORMAT.md §8). Open struct owned by the caller. Strings are
 * NUL-terminated and at most 65535 bytes; counts at most the maxima above. */
struct cairn_snapshot {
	struct cairn_id id; /* blob ID: not part of the encoding, set by the repository */
	int64_t time_ns;
	char *hostname;
	char *username;
	char **paths;
	size_t npaths;
	char **tags;
	size_t ntags;
	struct cairn_id root;
	bool has_parent;
	struct cairn_id parent; /* ignored (encoded as zero) unless has_parent */
	struct cairn_snapshot_summary summary;
	char *program_version;
};
/* Append the snapshot plaintext to out. -EINVAL a NULL or too long string or too
 * many paths/tags, -ENOMEM; out is unchanged on failure. */
int cairn_snapshot_encode(const struct cairn_snapshot *s, struct cairn_buf *out);
/* Decode and validate a snapshot plaintext; id is left zero. -EBADMSG (message
 * names the offset), -ENOMEM. Caller frees with cairn_snapshot_free(). */
int cairn_snapshot_decode(struct cairn_snapshot **out, const uint8_t *data, size_t len);
/* Frees s, its strings and arrays: for decoded snapshots, or ones whose every
 * string and array is malloc'd. NULL is a no-op. */
void cairn_snapshot_free(struct cairn_snapshot *s);

/* ---- end of trees and snapshots ---------------------------------------- */

/* ---- Snapshot catalog (FORMAT.md §8) ------------------------------------ */

/* Seal s and write it durably to snapshots/<id>, then record it in the index.
 * Sets s->id. Call after cairn_repo_flush(): the snapshot is the commit point.
 * Refuses with the error of a failed pack write of this handle, if any. */
int cairn_repo_snapshot_save(cairn_repo *repo, struct cairn_snapshot *s);
/* Read and verify snapshots/<id>. -ENOENT, -EBADMSG. Caller frees *out. */
int cairn_repo_snapshot_load(cairn_repo *repo, const struct cairn_id *id,
                             struct cairn_snapshot **out);
/* Every snapshot in snapshots/, oldest first (ties by ID). A snapshot file that
 * fails to verify is left out, with a warning naming it to cairn_repo_opts.warn
 * (each listing warns again). With a write-only key: those of snapshots/ that
 * this host's cache holds (FORMAT.md §14). Caller frees with
 * cairn_snapshot_list_free(). */
int cairn_repo_snapshot_list(cairn_repo *repo, struct cairn_snapshot ***out, size_t *n);
void cairn_snapshot_list_free(struct cairn_snapshot **list, size_t n);
/* The IDs in snapshots/ (unordered, no decryption). Caller frees *out. */
int cairn_repo_snapshot_ids(cairn_repo *repo, struct cairn_id **out, size_t *n);
/* Resolve "latest" or an ID prefix (4+ hex digits) to one snapshot of list.
 * Returns its index. -ENOENT none, -EINVAL ambiguous or malformed. */
int cairn_snapshot_find(struct cairn_snapshot *const *list, size_t n, const char *spec);
/* Resolve an ID prefix (4+ hex digits) against the names in snapshots/, without
 * reading the files: also finds a damaged snapshot, for removal. -ENOENT none,
 * -EINVAL ambiguous or malformed. */
int cairn_repo_snapshot_resolve(cairn_repo *repo, const char *spec, struct cairn_id *out);
/* Remove snapshots/<id> and its index record. -ENOENT. */
int cairn_repo_snapshot_delete(cairn_repo *repo, const struct cairn_id *id);

/* ---- Locks, prune and pack verification (FORMAT.md §11, DESIGN.md) ----- */

/*
 * Repository locks: one small object per holder in locks/ of the storage
 * (FORMAT.md §11). Shared locks (backup, check, forget, sync) exclude only
 * exclusive ones; a prune lock excludes other prunes and exclusive locks, so
 * prune runs while backups do (DESIGN.md "Prune while backups run"); an
 * exclusive lock (a pull into a directory, rebuild-index) excludes every other;
 * a mount lock is informational and conflicts with nothing; a keys lock (key
 * add, remove, passwd) conflicts with another keys lock and an exclusive one. A
 * lock whose holder
 * is known dead (same host, no such pid), or that was not refreshed for
 * cairn_lock_stale_seconds(), has expired: it conflicts with nothing, and
 * `cairn unlock` removes it.
 */
enum cairn_lock_kind {
	CAIRN_LOCK_SHARED = 1,
	CAIRN_LOCK_EXCLUSIVE = 2,
	CAIRN_LOCK_MOUNT = 3,
	CAIRN_LOCK_PRUNE = 4,
	CAIRN_LOCK_KEYS = 5,
};
#define CAIRN_LOCK_STALE_SECONDS (30 * 60)
#define CAIRN_LOCK_NAME_SIZE 33 /* 32 hex digits and the NUL */
/* CAIRN_LOCK_STALE_SECONDS, or CAIRN_TEST_LOCK_STALE_SECONDS (6 or more) from the
 * environment, for tests of dead hosts. Holders refresh six times as often. */
int64_t cairn_lock_stale_seconds(void);

struct cairn_lock_info {
	char name[CAIRN_LOCK_NAME_SIZE]; /* object name under locks/ */
	int kind;                        /* enum cairn_lock_kind; 0 unparsable */
	char command[64];                /* "backup", "prune", ... */
	char host[256];
	int64_t pid;
	int64_t start;     /* Unix seconds */
	int64_t refreshed; /* the object's mtime (S3: LastModified), Unix seconds */
	bool dead;         /* the holder is on this host and no longer runs */
	bool released;     /* the holder ended but could not remove it (FORMAT.md §11) */
	bool stale;        /* dead, released, or not refreshed for cairn_lock_stale_seconds():
	                      expired */
};
const char *cairn_lock_kind_name(int kind);

/* A lock held by this process (cairn_lock): a thread writes the lock again (a
 * new mtime) every stale/6 seconds until it is released. */
/* Take a lock of kind on the repository in st for command (a short word for
 * messages). Retries for up to wait_seconds while another holder conflicts, then
 * fails with -EBUSY and a message naming that holder ("repository is locked for
 * pruning by prune on host h pid 42 since ..."). -EINVAL bad kind, storage
 * errors. The storage must outlive the lock. Caller releases with
 * cairn_lock_release(). Not thread-safe: one owner. */
int cairn_lock_acquire(cairn_lock **out, cairn_storage *st, int kind, const char *command,
                       unsigned wait_seconds);
/* cairn_lock_acquire() on the repository's storage; for a handle opened with
 * lock_first, then the prune records are read and the cache brought up to
 * date (cairn_repo_index_update). On failure no lock is held. Storage errors,
 * -EBUSY, -ENOMEM. */
int cairn_repo_lock(cairn_repo *repo, int kind, const char *command, unsigned wait_seconds,
                    cairn_lock **out);
/* The lock's object name. Borrowed. */
const char *cairn_lock_name(const cairn_lock *l);
/* The other locks (not l) as the last look of cairn_lock_acquire found them,
 * right after l was written, sorted as cairn_lock_list sorts: a writer that
 * looks for dead writers next spares a listing. A mount lock, which takes no
 * look, lists them now. Caller frees *out. Storage errors, -ENOMEM. */
int cairn_lock_others(const cairn_lock *l, struct cairn_lock_info **out, size_t *n);
/* Check that this holder still has its lock (one request), and write it again
 * if a refresh is due soon: -ENOENT when the object was removed (`cairn unlock
 * --all`) or not written for half the stale period (others may take it for
 * expired; a machine woke from a long suspend). The caller must stop before its
 * commit point. A lost lock is never written again. Storage errors. */
int cairn_lock_refresh(cairn_lock *l);
/* Stop refreshing and remove the object; when the storage refuses the delete
 * (-EACCES), write it once more marked released (FORMAT.md §11). NULL is a
 * no-op. The thread's error message stays the caller's (cairn_err_msg). */
void cairn_lock_release(cairn_lock *l);
/* Every lock in locks/, sorted by start time. Unparsable objects are listed with
 * kind 0, and stale once not refreshed for the stale period. Caller frees *out.
 * Storage errors, -ENOMEM. */
int cairn_lock_list(cairn_storage *st, struct cairn_lock_info **out, size_t *n);
/* Remove locks/<name>. -ENOENT, -EINVAL for a name that is not a lock's. */
int cairn_lock_remove(cairn_storage *st, const char *name);

/* Garbage collection: delete what no snapshot references (DESIGN.md "Prune"). */
#define CAIRN_PRUNE_OPTS_VERSION 1
struct cairn_prune_opts {
	unsigned version;  /* CAIRN_PRUNE_OPTS_VERSION */
	double max_unused; /* percent, 0..100: repack a pack whose unused share is above */
	bool dry_run;      /* decide and count, change nothing */
	/* Refreshed and checked before the index changes and before packs are deleted;
	 * NULL: no check. */
	cairn_lock *lock;
	/* Called at each step: "after-mark", "mid-repack" (after each new pack),
	 * "after-new-packs", "after-index", "mid-delete" (after each old pack is
	 * deleted), "done". For progress, and for crash tests. May be NULL. */
	void (*on_step)(const char *step, void *payload);
	void *payload;
	/* Asked before each tree is marked, each blob copied and each step that
	 * changes the repository (with payload): a negative return stops the
	 * prune with it, as a failure there would (its temp packs removed; the
	 * next prune goes on). NULL: never. */
	int (*check)(void *payload);
};
struct cairn_prune_stats {
	uint64_t snapshots, trees, blobs_used, blobs_unused;
	uint64_t packs, packs_kept, packs_deleted, packs_repacked, packs_written;
	uint64_t bytes_total;       /* all pack files before */
	uint64_t bytes_unused;      /* unused bytes in them before */
	uint64_t bytes_repacked;    /* size of the repacked packs */
	uint64_t bytes_written;     /* size of the new packs (estimated in a dry run) */
	uint64_t bytes_freed;       /* bytes_total minus what is on disk afterwards */
	uint64_t bytes_left_unused; /* unused bytes left in kept packs */
	/* Deleted and repacked packs wait until the backups running when they were
	 * chosen have ended (DESIGN.md "Prune while backups run"): */
	uint64_t packs_pending, bytes_pending;   /* chosen now, deleted by a later prune */
	uint64_t packs_finished, bytes_finished; /* chosen by an earlier one, deleted now */
	/* Index files an earlier prune replaced that were still there, removed now
	 * (a listing had left them out of that prune's). */
	uint64_t index_files_replaced;
	/* Multipart uploads under packs/ that a writer left unfinished long ago
	 * (S3), aborted now. */
	uint64_t uploads_aborted;
};
/*
 * Mark every blob the snapshots in snapshots/ reach, then delete packs with no
 * used blob and repack (copy the used blobs of) packs whose unused share is above
 * max_unused. New packs are durable, then one index transaction swaps the old
 * packs for the new ones, and only then are old pack files deleted: a crash at any
 * point loses no needed blob, and readers that looked a blob up just before the
 * swap find it again (cairn_repo_get retries). Packs on disk that the index lacks
 * are indexed first. The caller holds an exclusive lock. Refuses (-EBADMSG, with a
 * message) when a needed tree or blob is missing or damaged, or a snapshot file
 * does not verify. -EIO, -ENOSPC,
 * -ENOENT the lock vanished. st is filled as far as the run got.
 */
int cairn_repo_prune(cairn_repo *repo, const struct cairn_prune_opts *o,
                     struct cairn_prune_stats *st);

/* Read a whole pack file and verify it: its SHA-256 equals its name, the header
 * decrypts and parses, and each blob the header lists decrypts and hashes to its
 * ID. For each damaged blob bad() is called with the header entry and a message.
 * Returns 0 if the pack is sound, -EBADMSG if not (the message names the first
 * problem; when the header cannot be read, bad() is never called), -ENOENT,
 * -EIO. Thread-safe. */
int cairn_repo_pack_verify(cairn_repo *repo, const struct cairn_id *pack,
                           void (*bad)(const struct cairn_pack_entry *e, const char *msg,
                                       void *payload),
                           void *payload);

#endif
