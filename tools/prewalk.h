/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A head start for a backup's walk. While the repository opens (deriving the key
 * from the password takes a quarter of a second by design; an S3 repository
 * adds its requests), a few threads list and stat the trees to be backed up, so
 * that the metadata the walk reads is in the kernel's caches when it begins. A
 * no-change backup is mostly that walk. Nothing is kept: the walk itself decides
 * everything, and stopping early costs nothing. */
#ifndef CAIRN_PREWALK_H
#define CAIRN_PREWALK_H

#include <stddef.h>

struct prewalk;

/* Start on paths (absolute); NULL when it could not (it is only a hint). */
struct prewalk *prewalk_start(char *const *paths, size_t npaths);
/* Stop the threads, wait for them and free p; NULL is a no-op. */
void prewalk_stop(struct prewalk *p);

#endif
