/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test shim (LD_PRELOAD): the file TORN_PATH is rewritten while cairn reads it.
 * Right after each read at offset 0 of it, up to TORN_CHANGES times (default:
 * every time), the shim overwrites the whole file with the next letter (A, B,
 * C, ...: the same size) and gives it the mtime 1000000000 + the number of
 * changes, so that the change shows in fstat whatever the clock's granularity.
 * A writer racing the reader, made deterministic. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static atomic_long changes;

static void rewrite(const char *path, long k)
{
	int fd = open(path, O_WRONLY);
	struct stat st;
	char buf[65536];
	if (fd < 0)
		return;
	memset(buf, 'A' + (int)(k % 26), sizeof(buf));
	if (fstat(fd, &st) == 0)
		for (off_t off = 0; off < st.st_size; off += (off_t)sizeof(buf)) {
			size_t n = st.st_size - off < (off_t)sizeof(buf)
			                   ? (size_t)(st.st_size - off)
			                   : sizeof(buf);
			if (pwrite(fd, buf, n, off) < 0)
				break;
		}
	struct timespec t[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = 1000000000 + k } };
	futimens(fd, t);
	close(fd);
}

static bool is_target(int fd)
{
	const char *want = getenv("TORN_PATH");
	char link[64], name[PATH_MAX];
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = want ? readlink(link, name, sizeof(name) - 1) : -1;
	if (n <= 0)
		return false;
	name[n] = '\0';
	return strcmp(name, want) == 0;
}

ssize_t pread64(int fd, void *buf, size_t len, off_t off)
{
	static ssize_t (*real)(int, void *, size_t, off_t);
	if (!real)
		real = (ssize_t(*)(int, void *, size_t, off_t))dlsym(RTLD_NEXT, "pread64");
	ssize_t r = real(fd, buf, len, off);
	if (r > 0 && off == 0 && is_target(fd)) {
		const char *max = getenv("TORN_CHANGES");
		long k = atomic_fetch_add(&changes, 1) + 1;
		if (!max || k <= atol(max))
			rewrite(getenv("TORN_PATH"), k);
	}
	return r;
}
