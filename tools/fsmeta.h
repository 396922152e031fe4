/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading a filesystem entry's metadata into a tree node (FORMAT.md §10). */
#ifndef CAIRN_FSMETA_H
#define CAIRN_FSMETA_H

#include <sys/stat.h>

#include "cairn/store.h"

/* Storage a node's variable-length fields point into. Caller embeds it. */
struct fsmeta {
	struct cairn_buf xattr_data; /* names and values */
	struct cairn_xattr *xattrs;  /* fixed up to point into xattr_data */
	size_t nxattrs;
	uint8_t *target; /* symlink target */
};
void fsmeta_release(struct fsmeta *m);

/* Fill the stat-derived fields of node (type, mode, ids, names, times, size, dev,
 * ino, nlink, rdev). Returns 0; 1 when a time lies outside what i64 nanoseconds
 * hold (years 1677 to 2262) and was clamped to the nearest; -EINVAL for a file
 * type cairn cannot store. */
int fsmeta_from_stat(struct cairn_node *node, const struct stat *st);

/* Read xattrs and the symlink target of name in dirfd into m and point node at
 * them. Errors other than "not supported" are returned (-EACCES, -ENOENT...). */
int fsmeta_read_extra(struct cairn_node *node, struct fsmeta *m, int dirfd, const char *name);

/* uid/gid -> name, cached for the life of the process (thread-safe). Empty when unknown. */
const char *fsmeta_user(uint32_t uid);
const char *fsmeta_group(uint32_t gid);

#endif
