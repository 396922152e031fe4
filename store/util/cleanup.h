/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Scope-bound cleanup (STYLE §4). The one header allowed GNU extensions. */
#ifndef CAIRN_CLEANUP_H
#define CAIRN_CLEANUP_H

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "cairn/util.h"

#define _cleanup_(f) __attribute__((cleanup(f)))

static inline void freep(void *p)
{
	free(*(void **)p);
}
static inline void closep(const int *fd)
{
	if (*fd >= 0) {
		int e = errno;
		close(*fd);
		errno = e;
	}
}
static inline void fclosep(FILE **f)
{
	if (*f)
		fclose(*f);
}
static inline void closedirp(DIR **d)
{
	if (*d)
		closedir(*d);
}
static inline void cairn_buf_releasep(struct cairn_buf *b)
{
	cairn_buf_release(b);
}

#define _cleanup_free_ _cleanup_(freep)
#define _cleanup_close_ _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)
#define _cleanup_closedir_ _cleanup_(closedirp)
#define _cleanup_buf_ _cleanup_(cairn_buf_releasep)

#define TAKE_PTR(p)                     \
	__extension__({                 \
		__typeof__(p) t_ = (p); \
		(p) = NULL;             \
		t_;                     \
	})
#define TAKE_FD(fd)            \
	__extension__({        \
		int t_ = (fd); \
		(fd) = -1;     \
		t_;            \
	})

/* Declare a cleanup function for a type's _free(), e.g. DEFINE_FREEP(cairn_repo, cairn_repo_close).
 */
#define DEFINE_FREEP(type, fn)             \
	static inline void fn##p(type **p) \
	{                                  \
		if (*p)                    \
			fn(*p);            \
	}

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#endif
