/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* `cairn dump` of a directory: a POSIX pax archive of a snapshot subtree. */
#ifndef CAIRN_TAROUT_H
#define CAIRN_TAROUT_H

#include <stdint.h>

#include "cairn/store.h"

struct tarout_stats {
	uint64_t entries;  /* written to the archive */
	uint64_t bytes;    /* of file content */
	uint64_t warnings; /* entries skipped, or written with zeros for what could not be read */
};

/*
 * Write a pax archive (ustar headers, pax extended headers only where ustar
 * falls short: long names and link targets, large sizes and ids, sub-second
 * times, extended attributes as SCHILY.xattr, sparse files as GNU sparse 1.0)
 * of the directory dir at path in the snapshot to fd. dir is NULL for the
 * snapshot's root, whose tree is root. Entries are named by their path in the
 * snapshot without the leading '/' ("home/me/notes.txt"), as `cairn restore`
 * lays them out under its target. Hard links within the archive are tar hard
 * links. Sockets cannot be stored in tar and are skipped with a warning, as
 * GNU tar does; an unreadable subtree or blob is a warning too (the blob's
 * bytes come out as zeros), counted in st->warnings. Returns < 0 only for
 * failures that stop the archive: writing to fd (-EIO, -EPIPE), -ENOMEM.
 */
int tarout_write(cairn_repo *repo, const struct cairn_node *dir, const struct cairn_id *root,
                 const char *path, int fd, struct tarout_stats *st);

#endif
