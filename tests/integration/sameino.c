/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test shim (LD_PRELOAD): files whose names begin with "sameino-" all report
 * inode number 77777, as on a source file system whose inode numbers are not
 * unique, or after a file deleted during a backup gave its number to a new
 * one. Each keeps its one link: they are different files, not hard links.
 * Files named "samelink-*" share another number and say they have 2 links, as
 * a hard-linked file deleted during the backup and a new one in its inode. */
#include <dlfcn.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define SAME_INO 77777

static void fake(const char *name, struct stat64 *st)
{
	const char *base = strrchr(name, '/');
	base = base ? base + 1 : name;
	if (strncmp(base, "sameino-", 8) == 0 && S_ISREG(st->st_mode))
		st->st_ino = SAME_INO;
	if (strncmp(base, "samelink-", 9) == 0 && S_ISREG(st->st_mode)) {
		st->st_ino = SAME_INO + 1;
		st->st_nlink = 2;
	}
}

int fstatat64(int dirfd, const char *name, struct stat64 *st, int flags)
{
	static int (*real)(int, const char *, struct stat64 *, int);
	if (!real)
		real = (int (*)(int, const char *, struct stat64 *, int))dlsym(RTLD_NEXT,
		                                                               "fstatat64");
	int r = real(dirfd, name, st, flags);
	if (r == 0)
		fake(name, st);
	return r;
}

int fstat64(int fd, struct stat64 *st)
{
	static int (*real)(int, struct stat64 *);
	char link[64], name[PATH_MAX];
	if (!real)
		real = (int (*)(int, struct stat64 *))dlsym(RTLD_NEXT, "fstat64");
	int r = real(fd, st);
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	ssize_t n = r == 0 ? readlink(link, name, sizeof(name) - 1) : -1;
	if (n > 0) {
		name[n] = '\0';
		fake(name, st);
	}
	return r;
}
