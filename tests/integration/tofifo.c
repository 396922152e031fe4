/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test shim (LD_PRELOAD): the file named TOFIFO_NAME (a name in its directory)
 * is replaced by a FIFO right before cairn's first open of it for reading: a
 * file swapped for a FIFO between the directory scan and the read, made
 * deterministic. No writer ever opens the FIFO, so an open that waits for one
 * waits for good. */
#include <dlfcn.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_bool swapped;

static int real_openat(int dirfd, const char *name, int flags, mode_t mode)
{
	static int (*real)(int, const char *, int, ...);
	if (!real)
		real = (int (*)(int, const char *, int, ...))dlsym(RTLD_NEXT, "openat64");
	const char *want = getenv("TOFIFO_NAME");
	if (want && strcmp(name, want) == 0 && !(flags & (O_DIRECTORY | O_PATH | O_WRONLY)) &&
	    !atomic_exchange(&swapped, true) && unlinkat(dirfd, name, 0) == 0)
		mkfifoat(dirfd, name, 0644);
	return real(dirfd, name, flags, mode);
}

/* With 64-bit offsets, as the build has them, this is the symbol openat64,
 * the one cairn calls. */
int openat(int dirfd, const char *name, int flags, ...)
{
	va_list ap;
	va_start(ap, flags);
	mode_t mode = (flags & (O_CREAT | O_TMPFILE)) ? va_arg(ap, mode_t) : 0;
	va_end(ap);
	return real_openat(dirfd, name, flags, mode);
}
