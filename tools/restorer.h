/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading snapshots back: finding entries by path, file content, and restore. */
#ifndef CAIRN_RESTORER_H
#define CAIRN_RESTORER_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "cairn/store.h"
#include "pattern.h"

/* ---- helpers shared by snapshots, ls, dump and restore ------------------ */

/* Read, verify and parse tree blob id. -ENOENT, -EBADMSG. Caller frees *out
 * with cairn_tree_free(). */
int restorer_load_tree(cairn_repo *repo, const struct cairn_id *id, cairn_tree **out);

/* An entry found by path. node is borrowed from parent; both are NULL for "/". */
struct restorer_entry {
	cairn_tree *parent;
	const struct cairn_node *node;
};
/* Find path ("/home/me", '.' and empty components ignored) below the root tree.
 * -ENOENT not in the snapshot, -ENOTDIR a component is not a directory, -EINVAL
 * for "..", -EBADMSG a corrupt tree. Caller frees out->parent with
 * cairn_tree_free(). */
int restorer_lookup(cairn_repo *repo, const struct cairn_id *root, const char *path,
                    struct restorer_entry *out);

/* Write a regular file's content to fd at its position, one blob at a time
 * through buf (so memory stays bounded by the largest chunk). Holes become zeros
 * when sparse is false, and are skipped with lseek when it is true (the caller
 * then sets the size with ftruncate). Each blob is verified and must have its
 * extent's length. -EBADMSG/-ENOENT for the repository (message names path and
 * offset), -EIO/-ENOSPC/-EFBIG for fd. */
int restorer_write_content(cairn_repo *repo, const struct cairn_node *node, const char *path,
                           int fd, bool sparse, struct cairn_buf *buf);

/* Times: "YYYY-MM-DD HH:MM:SS" local time, and RFC 3339 with nanoseconds and
 * the local offset ("2024-05-01T10:00:00.123456789+02:00"). */
#define RESTORER_TIME_MAX 64
void restorer_fmt_local(char buf[RESTORER_TIME_MAX], int64_t ns);
void restorer_fmt_rfc3339(char buf[RESTORER_TIME_MAX], int64_t ns);

/* The key under which entries count as hard links of one inode (restore, dump):
 * (dev, ino) and the type and size (device number) they must agree on, so that
 * a crafted snapshot cannot make a file a link to a symlink. Never all zero. */
void restorer_link_key(const struct cairn_node *n, struct cairn_id *k);

/* ---- restore ------------------------------------------------------------ */

struct restorer_opts {
	const char *target;                 /* directory (created if missing) */
	const char *path;                   /* subtree of the snapshot; NULL for "/" */
	const struct pattern_list *include; /* NULL or empty: everything */
	const struct pattern_list *exclude; /* NULL or empty: nothing */
};

struct restorer_stats {
	uint64_t files, dirs, links, others, bytes;
	uint64_t warnings; /* entries or attributes that could not be restored */
};

/* Restore snap's entries below o->path into o->target, keeping their absolute
 * layout (target/home/me/...). Existing entries of the same names are replaced;
 * files are written to a temporary name and renamed, so a failed file never has
 * its final name. Problems with single entries (a corrupt blob, a failing
 * syscall) are logged as warnings, counted in st->warnings, and the restore goes
 * on. Returns < 0 only for failures that stop it: -ENOENT/-ENOTDIR o->path is
 * not in the snapshot, a target that cannot be opened, -ENOSPC, -ENOMEM. */
int restorer_run(cairn_repo *repo, const struct cairn_snapshot *snap, const struct restorer_opts *o,
                 struct restorer_stats *st);

#endif
