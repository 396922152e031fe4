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

/* "file", "dir", "symlink", "fifo", "socket", "chardev", "blockdev"; "?" for
 * another value. */
const char *restorer_type_name(uint8_t type);

/* From a remote repository, fetch ahead the data of the tree under node (a
 * directory), or of root when node is NULL, in the order restore and dump -a
 * tar read it; NULL when there is nothing to fetch ahead (cairn_prefetch_stop
 * takes NULL). */
cairn_prefetch *restorer_read_ahead(cairn_repo *repo, const struct cairn_id *root,
                                    const struct cairn_node *node);

/* Write a regular file's content to fd at its position, one blob at a time
 * through buf (so memory stays bounded by the largest chunk). Holes become zeros
 * when sparse is false, and are skipped with lseek when it is true (the caller
 * then sets the size with ftruncate). Each blob is verified and must have its
 * extent's length. -EBADMSG/-ENOENT for the repository (message names path and
 * offset), -EIO/-ENOSPC/-EFBIG for fd,
 * whose message names out ("the output") or, when out is NULL, path and offset. */
int restorer_write_content(cairn_repo *repo, const struct cairn_node *node, const char *path,
                           const char *out, int fd, bool sparse, struct cairn_buf *buf);

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
	bool dry_run;                       /* create nothing, not even the target */
	unsigned threads;                   /* restore (and verify) threads; 0: one per CPU */
	/* Called for each entry restored, or that a dry run would restore: its
	 * path in the snapshot (path_len bytes, not NUL-terminated), and whether it
	 * is a hard link to an entry restored before. Directories made only to hold
	 * included entries are reported too. May be NULL. A restore calls it from
	 * several threads, one call at a time, in no set order; a dry run from the
	 * calling thread, in walk order. */
	void (*on_entry)(const char *path, size_t path_len, const struct cairn_node *n, bool linked,
	                 void *payload);
	void *payload;
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

/* After restorer_run with the same snap and o: open what it restored (never
 * following a symlink, never creating anything) and compare every regular
 * file with the snapshot: its size, and each extent's bytes hash to its blob ID
 * (the repository is not read again) or are zeros for a hole. A file that is
 * missing or differs, or a directory that cannot be opened, is a warning that
 * names it, counted in st->warnings; st->files counts the files checked and
 * st->bytes the bytes that matched. Returns < 0 only when the check cannot
 * run: the target cannot be opened, -ENOMEM. */
int restorer_verify(cairn_repo *repo, const struct cairn_snapshot *snap,
                    const struct restorer_opts *o, struct restorer_stats *st);

#endif
