/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Whole-file reads and durable writes (STYLE §5: tmp + fsync + rename + fsync dir). */
#include "cairn/util.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cleanup.h"

static int io_err(int e, const char *what, const char *path)
{
	return cairn_err_set(e == ENOSPC || e == EDQUOT ? -ENOSPC : -e, "cannot %s '%s': %s", what,
	                     path, strerror(e));
}

int cairn_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return errno == ENOSPC || errno == EDQUOT ? -ENOSPC : -errno;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int cairn_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len > 0) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EBADMSG; /* short file: truncated data */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

int cairn_file_slurp(const char *path, size_t max, struct cairn_buf *out)
{
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot open '%s': %s", path, strerror(errno));
	return cairn_file_slurp_fd(fd, path, max, out);
}

int cairn_file_slurp_fd(int fd, const char *path, size_t max, struct cairn_buf *out)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	for (;;) {
		int r = cairn_buf_reserve(&b, 65536);
		if (r < 0)
			return r;
		ssize_t n = read(fd, b.data + b.len, b.cap - b.len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return io_err(errno, "read", path);
		if (n == 0)
			break;
		b.len += (size_t)n;
		if (b.len > max)
			return cairn_err_set(-EFBIG, "'%s' is larger than %zu bytes", path, max);
	}
	*out = b;
	cairn_buf_init(&b);
	return 0;
}

int cairn_fsync_dir(const char *dir)
{
	_cleanup_close_ int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return io_err(errno, "open directory", dir);
	if (fsync(fd) < 0)
		return io_err(errno, "sync directory", dir);
	return 0;
}

int cairn_file_write_atomic(const char *path, const char *tmpdir, const void *data, size_t len)
{
	return cairn_file_write_atomic_mode(path, tmpdir, data, len, 0600);
}

int cairn_file_write_atomic_mode(const char *path, const char *tmpdir, const void *data, size_t len,
                                 unsigned mode)
{
	char dir[PATH_MAX], tmp[PATH_MAX];
	int r;

	if (snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", path);
	const char *d = dirname(dir);
	if (snprintf(tmp, sizeof(tmp), "%s/.tmp.XXXXXX", tmpdir ? tmpdir : d) >= (int)sizeof(tmp))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", path);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return io_err(errno, "create", tmp);
	r = mode != 0600 && fchmod(fd, mode) < 0 ? -errno : cairn_write_all(fd, data, len);
	if (r < 0) {
		r = cairn_err_set(r, "cannot write '%s': %s", tmp, strerror(-r));
		goto fail;
	}
	if (fsync(fd) < 0) {
		r = io_err(errno, "sync", tmp);
		goto fail;
	}
	if (rename(tmp, path) < 0) {
		r = io_err(errno, "rename into", path);
		goto fail;
	}
	return cairn_fsync_dir(d);
fail:
	unlink(tmp);
	return r;
}

int cairn_file_write_unsynced(const char *path, const char *tmpdir, const void *data, size_t len)
{
	char tmp[PATH_MAX];
	if (snprintf(tmp, sizeof(tmp), "%s/.tmp.XXXXXX", tmpdir) >= (int)sizeof(tmp))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", tmpdir);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return io_err(errno, "create", tmp);
	int r = cairn_write_all(fd, data, len);
	if (r < 0)
		r = cairn_err_set(r, "cannot write '%s': %s", tmp, strerror(-r));
	else if (rename(tmp, path) < 0)
		r = io_err(errno, "rename into", path);
	if (r < 0)
		unlink(tmp);
	return r;
}

int cairn_mkdir_p(const char *path, unsigned mode)
{
	char buf[PATH_MAX];
	if (!path[0])
		return cairn_err_set(-EINVAL, "empty path");
	if (snprintf(buf, sizeof(buf), "%s", path) >= (int)sizeof(buf))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", path);
	for (char *p = buf + 1;; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		char c = *p;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return io_err(errno, "create directory", buf);
		*p = c;
		if (c == '\0')
			break;
	}
	return 0;
}

static int rm_at(int dfd, const char *name)
{
	if (unlinkat(dfd, name, 0) == 0 || errno == ENOENT)
		return 0;
	if (errno != EISDIR && errno != EPERM)
		return -errno;
	int fd = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	_cleanup_closedir_ DIR *d = fdopendir(fd);
	if (!d) {
		close(fd);
		return -errno;
	}
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		int r = rm_at(dirfd(d), de->d_name);
		if (r < 0)
			return r;
	}
	return unlinkat(dfd, name, AT_REMOVEDIR) < 0 ? -errno : 0;
}

int cairn_rm_rf(const char *path)
{
	return rm_at(AT_FDCWD, path);
}

const char *cairn_path_next(const char *p, size_t *len)
{
	for (;;) {
		while (*p == '/')
			p++;
		size_t n = strcspn(p, "/");
		if (n == 1 && p[0] == '.') {
			p++;
			continue;
		}
		*len = n;
		return p;
	}
}

void cairn_guard_std_fds(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* no O_CLOEXEC: children inherit fds 0-2 as they are */
		int n = open("/dev/null", fd == 0 ? O_WRONLY : O_RDONLY);
		if (n >= 0 && n != fd) { /* cannot happen: the lowest free number */
			dup2(n, fd);
			close(n);
		}
	}
}
