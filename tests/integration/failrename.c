/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test shim (LD_PRELOAD): a rename() onto a path ending in FAILRENAME_SUFFIX
 * fails with EIO, as on a disk that fails a write: a command made to fail at
 * one known step (init at its config, after it made the layout and the key). */
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rename(const char *from, const char *to)
{
	static int (*real)(const char *, const char *);
	const char *suffix = getenv("FAILRENAME_SUFFIX");
	size_t n = suffix ? strlen(suffix) : 0, len = strlen(to);
	if (n && len >= n && strcmp(to + len - n, suffix) == 0) {
		errno = EIO;
		return -1;
	}
	if (!real)
		real = (int (*)(const char *, const char *))dlsym(RTLD_NEXT, "rename");
	return real(from, to);
}
