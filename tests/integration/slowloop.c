/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test shim (LD_PRELOAD): cairnfs starts serving its mount SLOWLOOP_MS
 * milliseconds late, as on a loaded machine, by delaying libfuse's
 * fuse_loop_cfg_create, which it calls right before its session loop. What
 * reaches the mount before then waits. */
#include <dlfcn.h>
#include <stdlib.h>
#include <time.h>

struct fuse_loop_config;
struct fuse_loop_config *fuse_loop_cfg_create(void);

struct fuse_loop_config *fuse_loop_cfg_create(void)
{
	static struct fuse_loop_config *(*real)(void);
	if (!real)
		real = (struct fuse_loop_config * (*)(void))
		        dlsym(RTLD_NEXT, "fuse_loop_cfg_create");
	const char *ms = getenv("SLOWLOOP_MS");
	long n = ms ? atol(ms) : 0;
	struct timespec t = { .tv_sec = n / 1000, .tv_nsec = n % 1000 * 1000000 };
	nanosleep(&t, NULL);
	return real();
}
