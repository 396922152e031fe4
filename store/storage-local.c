/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The local storage: a repository directory (FORMAT.md §2). Every write is a temp
 * file in tmp/, fsync, rename, fsync of the directory (STYLE §5). */
#include "storage.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"

/* Packs kept open for local_read: a restore reads blob after blob of one pack,
 * and an open per blob was as many syscalls as the rest of a small file's
 * restore. A pack never changes after its rename (FORMAT.md §2), so an open
 * descriptor stays good; one removed or replaced through this storage is
 * forgotten. */
#define OPEN_PACKS 16

struct open_pack {
	char rel[CAIRN_OBJ_REL_MAX];
	int fd;         /* -1: a free slot */
	unsigned users; /* readers between open_get and open_put */
	bool gone;      /* removed or replaced: closed by its last user */
	uint64_t last_use;
};

struct local {
	char root[PATH_MAX - CAIRN_OBJ_REL_MAX - 32]; /* paths below it always fit */
	char tmp[PATH_MAX - CAIRN_OBJ_REL_MAX - 16];
	pthread_mutex_t open_lock;
	struct open_pack open[OPEN_PACKS]; /* protected by open_lock */
	uint64_t uses;                     /* protected by open_lock */
};

static int io_err(int e, const char *what, const char *path)
{
	return cairn_err_set(e == ENOSPC || e == EDQUOT ? -ENOSPC
	                     : e                        ? -e
	                                                : -EIO,
	                     "cannot %s '%s': %s", what, path, strerror(e ? e : EIO));
}

static void path_of(const struct local *l, const char *rel, char out[PATH_MAX])
{
	snprintf(out, PATH_MAX, "%s/%s", l->root, rel);
}

/* An open descriptor of rel (a pack) and its slot, for open_put; the slot is
 * NULL when every slot is in use (the caller then just closes the fd). */
static int open_get(struct local *l, const char *rel, struct open_pack **slot)
{
	char path[PATH_MAX];
	struct open_pack *v = NULL;
	pthread_mutex_lock(&l->open_lock);
	for (size_t i = 0; i < OPEN_PACKS; i++) {
		struct open_pack *p = &l->open[i];
		if (p->fd >= 0 && !p->gone && strcmp(p->rel, rel) == 0) {
			p->users++;
			p->last_use = ++l->uses;
			pthread_mutex_unlock(&l->open_lock);
			*slot = p;
			return p->fd;
		}
	}
	pthread_mutex_unlock(&l->open_lock);
	path_of(l, rel, path);
	int fd = open(path, O_RDONLY | O_CLOEXEC), kind;
	char name[CAIRN_OBJ_NAME_MAX];
	*slot = NULL;
	if (fd < 0 || cairn_obj_parse(rel, &kind, name) < 0 || kind != CAIRN_OBJ_PACK)
		return fd;
	pthread_mutex_lock(&l->open_lock);
	for (size_t i = 0; i < OPEN_PACKS; i++) {
		struct open_pack *p = &l->open[i];
		if (p->users == 0 && (!v || p->fd < 0 || (v->fd >= 0 && p->last_use < v->last_use)))
			v = p;
	}
	if (v) {
		if (v->fd >= 0)
			close(v->fd);
		*v = (struct open_pack){ .fd = fd, .users = 1, .last_use = ++l->uses };
		snprintf(v->rel, sizeof(v->rel), "%s", rel);
		*slot = v;
	}
	pthread_mutex_unlock(&l->open_lock);
	return fd;
}

static void open_put(struct local *l, struct open_pack *p, int fd)
{
	if (!p) {
		close(fd);
		return;
	}
	pthread_mutex_lock(&l->open_lock);
	if (--p->users == 0 && p->gone) {
		close(p->fd);
		p->fd = -1;
	}
	pthread_mutex_unlock(&l->open_lock);
}

/* rel is removed or replaced: later reads open it again. */
static void open_forget(struct local *l, const char *rel)
{
	pthread_mutex_lock(&l->open_lock);
	for (size_t i = 0; i < OPEN_PACKS; i++) {
		struct open_pack *p = &l->open[i];
		if (p->fd < 0 || strcmp(p->rel, rel) != 0)
			continue;
		p->gone = true;
		if (p->users == 0) {
			close(p->fd);
			p->fd = -1;
		}
	}
	pthread_mutex_unlock(&l->open_lock);
}

/* The directory part of a path ("packs/ab" of "packs/ab/ab12..."), in place. */
static void cut_dir(char *path)
{
	char *slash = strrchr(path, '/');
	if (slash)
		*slash = '\0';
}

/* Held from a directory's mkdir until it is synced into its parent: a thread
 * whose mkdir finds the directory there waits for that, not only for the entry
 * (two packs of one packs/xx/ placed at once); another process's directory is
 * synced again by whoever finds it. */
static pthread_mutex_t made_lock = PTHREAD_MUTEX_INITIALIZER;

static int make_dir_locked(const char *dir)
{
	char parent[PATH_MAX];
	snprintf(parent, sizeof(parent), "%s", dir);
	cut_dir(parent);
	/* A directory found there may be another process's, not synced yet: its
	 * parent is synced again (cheap when nothing in it changed). */
	if (mkdir(dir, 0700) == 0 || errno == EEXIST)
		return cairn_fsync_dir(parent);
	if (errno != ENOENT)
		return io_err(errno, "create directory", dir);
	int r = strcmp(parent, dir) != 0 ? make_dir_locked(parent) : -ENOENT;
	return r < 0 ? r : make_dir_locked(dir);
}

/* mkdir that survives a power cut: a directory created here is synced into its
 * parent before anything is renamed into it (a pulled pack must not vanish with
 * the packs/xx/ entry that held it). */
static int make_dir(const char *dir)
{
	pthread_mutex_lock(&made_lock);
	int r = make_dir_locked(dir);
	pthread_mutex_unlock(&made_lock);
	return r;
}

/* Rename a complete, synced temp file into place, durably. */
static int place(struct local *l, const char *rel, const char *tmp)
{
	char path[PATH_MAX], dir[PATH_MAX];
	path_of(l, rel, path);
	snprintf(dir, sizeof(dir), "%s", path);
	cut_dir(dir);
	int r = make_dir(dir);
	if (r < 0)
		return r;
	if (rename(tmp, path) < 0)
		return io_err(errno, "rename into", path);
	open_forget(l, rel);
	return cairn_fsync_dir(dir);
}

static int local_get(void *self, const char *rel, uint64_t off, uint64_t len, size_t max,
                     struct cairn_buf *out)
{
	struct local *l = self;
	char path[PATH_MAX];
	struct stat st;
	path_of(l, rel, path);
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0)
		return errno == ENOENT ? cairn_err_set(-ENOENT, "'%s' not found", path)
		                       : io_err(errno, "open", path);
	uint64_t size = (uint64_t)st.st_size;
	if (len == 0) {
		if (off > size)
			return cairn_err_set(-EBADMSG, "'%s' is shorter than %llu bytes", path,
			                     (unsigned long long)off);
		len = size - off;
	}
	if (len > max)
		return cairn_err_set(-EFBIG, "'%s' is larger than %zu bytes", path, max);
	if (off > size || len > size - off)
		return cairn_err_set(-EBADMSG, "'%s' is truncated before offset %llu", path,
		                     (unsigned long long)(off + len));
	out->len = 0;
	int r = cairn_buf_reserve(out, (size_t)len);
	if (r >= 0 && (r = cairn_pread_all(fd, out->data, (size_t)len, off)) < 0)
		return r == -EBADMSG ? cairn_err_set(r, "'%s' shrank while read", path)
		                     : io_err(-r, "read", path);
	if (r >= 0)
		out->len = (size_t)len;
	return r;
}

/* Messages without the path: the caller, a pack reader, names the pack. */
static int local_read(void *self, const char *rel, uint64_t off, void *buf, size_t len)
{
	struct local *l = self;
	struct open_pack *slot;
	int fd = open_get(l, rel, &slot);
	if (fd < 0)
		return errno == ENOENT ? cairn_err_set(-ENOENT, "not found")
		                       : io_err(errno, "open", "the file");
	int r = cairn_pread_all(fd, buf, len, off);
	open_put(l, slot, fd);
	if (r == -EBADMSG)
		return cairn_err_set(r, "truncated before offset %llu",
		                     (unsigned long long)(off + len));
	return r < 0 ? io_err(-r, "read", "the file") : 0;
}

static int local_get_file(void *self, const char *rel, int fd, uint64_t max, uint8_t sha256[32],
                          uint64_t *size)
{
	struct local *l = self;
	char path[PATH_MAX];
	path_of(l, rel, path);
	_cleanup_close_ int in = open(path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return errno == ENOENT ? cairn_err_set(-ENOENT, "'%s' not found", path)
		                       : io_err(errno, "open", path);
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	uint64_t got = 0;
	int r = buf && sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) == 1
	                ? 0
	                : cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0 && (ftruncate(fd, 0) < 0 || lseek(fd, 0, SEEK_SET) < 0))
		r = io_err(errno, "truncate the file for", path);
	while (r >= 0) {
		ssize_t n = read(in, buf, 1u << 20);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? io_err(errno, "read", path) : 0;
			break;
		}
		if ((got += (uint64_t)n) > max)
			r = cairn_err_set(-EFBIG, "'%s' is larger than %llu bytes", path,
			                  (unsigned long long)max);
		else if ((r = cairn_write_all(fd, buf, (size_t)n)) < 0)
			r = io_err(-r, "write the copy of", path);
		else
			EVP_DigestUpdate(sha, buf, (size_t)n);
	}
	if (r >= 0) {
		EVP_DigestFinal_ex(sha, sha256, NULL);
		*size = got;
	}
	EVP_MD_CTX_free(sha);
	return r;
}

static int local_put(void *self, const char *rel, const void *data, size_t len)
{
	struct local *l = self;
	char path[PATH_MAX], dir[PATH_MAX];
	path_of(l, rel, path);
	snprintf(dir, sizeof(dir), "%s", path);
	cut_dir(dir);
	int r = make_dir(dir);
	if (r >= 0)
		r = make_dir(l->tmp); /* a repository that lost its tmp/ */
	if (r >= 0 && (r = cairn_file_write_atomic(path, l->tmp, data, len)) >= 0)
		open_forget(l, rel);
	return r;
}

/* Copy size bytes of fd (from offset 0) into a new temp file, synced; hashed
 * as it is written when want is given, so that a file that is not what its
 * name says is not stored. */
static int copy_to_tmp(struct local *l, int fd, uint64_t size, const uint8_t *want,
                       char tmp[PATH_MAX])
{
	int r = make_dir(l->tmp);
	if (r < 0)
		return r;
	snprintf(tmp, PATH_MAX, "%.*s/put.tmp.XXXXXX", (int)sizeof(l->tmp), l->tmp);
	_cleanup_close_ int out = mkostemp(tmp, O_CLOEXEC);
	if (out < 0)
		return io_err(errno, "create", tmp);
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	EVP_MD_CTX *sha = want ? EVP_MD_CTX_new() : NULL;
	r = buf && (!want || (sha && EVP_DigestInit_ex(sha, EVP_sha256(), NULL) == 1))
	            ? 0
	            : cairn_err_set(-ENOMEM, "out of memory");
	for (uint64_t off = 0; r >= 0 && off < size;) {
		size_t n = size - off < (1u << 20) ? (size_t)(size - off) : (1u << 20);
		if ((r = cairn_pread_all(fd, buf, n, off)) < 0)
			r = cairn_err_set(r == -EBADMSG ? -EIO : r,
			                  "cannot read the file to store");
		else if ((r = cairn_write_all(out, buf, n)) < 0)
			r = io_err(-r, "write", tmp);
		else if (sha)
			EVP_DigestUpdate(sha, buf, n);
		off += n;
	}
	uint8_t got[32];
	if (r >= 0 && sha && (EVP_DigestFinal_ex(sha, got, NULL) != 1 || memcmp(got, want, 32)))
		r = cairn_err_set(-EBADMSG, "'%s': the copy does not hash to its name", tmp);
	EVP_MD_CTX_free(sha);
	if (r >= 0 && fsync(out) < 0)
		r = io_err(errno, "sync", tmp);
	if (r < 0)
		unlink(tmp);
	return r;
}

static int local_put_file(void *self, const char *rel, int fd, uint64_t size, const uint8_t *sha256)
{
	struct local *l = self;
	char tmp[PATH_MAX];
	int r = copy_to_tmp(l, fd, size, sha256, tmp);
	if (r >= 0 && (r = place(l, rel, tmp)) < 0)
		unlink(tmp);
	return r;
}

/* The writer hashed the temp file as it wrote it (a pack's name is that hash):
 * it is not read again. */
static int local_put_tmp(void *self, const char *rel, const char *tmp_path, int fd, uint64_t size,
                         const uint8_t *sha256)
{
	(void)size;
	(void)sha256;
	if (fsync(fd) < 0)
		return io_err(errno, "sync", tmp_path);
	return place(self, rel, tmp_path);
}

static int local_stat(void *self, const char *rel, struct cairn_obj_info *out)
{
	struct local *l = self;
	char path[PATH_MAX];
	struct stat st;
	path_of(l, rel, path);
	if (stat(path, &st) < 0)
		return errno == ENOENT ? cairn_err_set(-ENOENT, "'%s' not found", path)
		                       : io_err(errno, "stat", path);
	out->size = (uint64_t)st.st_size;
	out->mtime = st.st_mtim.tv_sec;
	return 0;
}

typedef int (*list_cb)(const char *rest, const struct cairn_obj_info *o, void *payload);

/* Regular files of one directory; prefix goes before each name in rest. */
static int list_dir(const char *dir, const char *prefix, list_cb cb, void *payload)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : io_err(errno, "read", dir);
	for (struct dirent *de; (errno = 0, de = readdir(d));) {
		char rest[CAIRN_OBJ_REL_MAX];
		struct stat st;
		if (de->d_name[0] == '.' || strlen(de->d_name) >= CAIRN_OBJ_NAME_MAX ||
		    fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
		    !S_ISREG(st.st_mode))
			continue;
		snprintf(rest, sizeof(rest), "%s%s", prefix, de->d_name);
		struct cairn_obj_info o = { .size = (uint64_t)st.st_size,
			                    .mtime = st.st_mtim.tv_sec };
		int r = cb(rest, &o, payload);
		if (r < 0)
			return r;
	}
	return errno ? io_err(errno, "read", dir) : 0;
}

static int local_list(void *self, const char *dir, list_cb cb, void *payload)
{
	struct local *l = self;
	char path[PATH_MAX];
	path_of(l, dir, path);
	if (strcmp(dir, "packs") != 0)
		return list_dir(path, "", cb, payload);
	_cleanup_closedir_ DIR *d = opendir(path);
	if (!d)
		return errno == ENOENT ? 0 : io_err(errno, "read", path);
	for (struct dirent *de; (de = readdir(d));) {
		char sub[PATH_MAX], prefix[4];
		uint8_t b;
		if (cairn_unhex(&b, 1, de->d_name) < 0)
			continue;
		if (snprintf(sub, sizeof(sub), "%s/%.2s", path, de->d_name) >= (int)sizeof(sub))
			continue; /* cannot happen: root leaves room */
		snprintf(prefix, sizeof(prefix), "%.2s/", de->d_name);
		int r = list_dir(sub, prefix, cb, payload);
		if (r < 0)
			return r;
	}
	return 0;
}

static int local_remove(void *self, const char *rel)
{
	struct local *l = self;
	char path[PATH_MAX];
	path_of(l, rel, path);
	open_forget(l, rel);
	if (unlink(path) < 0)
		return errno == ENOENT ? 0 : io_err(errno, "remove", path);
	cut_dir(path);
	return cairn_fsync_dir(path);
}

static void local_forget(void *self, const char *rel)
{
	open_forget(self, rel);
}

static int local_open_file(void *self, const char *rel, int *fd, uint64_t *size)
{
	struct local *l = self;
	char path[PATH_MAX];
	struct stat st;
	path_of(l, rel, path);
	int f = open(path, O_RDONLY | O_CLOEXEC);
	if (f < 0 || fstat(f, &st) < 0) {
		int e = errno;
		if (f >= 0)
			close(f);
		return e == ENOENT ? cairn_err_set(-ENOENT, "'%s' not found", path)
		                   : io_err(e, "open", path);
	}
	*fd = f;
	*size = (uint64_t)st.st_size;
	return 0;
}

static void local_close(void *self)
{
	struct local *l = self;
	for (size_t i = 0; i < OPEN_PACKS; i++)
		if (l->open[i].fd >= 0)
			close(l->open[i].fd);
	pthread_mutex_destroy(&l->open_lock);
	free(l);
}

static const struct cairn_storage_ops local_ops = {
	.caps = CAIRN_STORAGE_MTIME,
	.get = local_get,
	.read = local_read,
	.get_file = local_get_file,
	.put = local_put,
	.put_file = local_put_file,
	.put_tmp = local_put_tmp,
	.stat = local_stat,
	.list = local_list,
	.remove = local_remove,
	.open_file = local_open_file,
	.forget = local_forget,
	.close = local_close,
};

int cairn_storage__local_open(cairn_storage **out, const char *dir)
{
	struct local *l = calloc(1, sizeof(*l));
	if (!l)
		return cairn_err_set(-ENOMEM, "out of memory");
	size_t n = strlen(dir);
	while (n > 1 && dir[n - 1] == '/')
		n--; /* "repo/" and "repo" are one repository */
	if (n >= sizeof(l->root)) {
		free(l);
		return cairn_err_set(-ENAMETOOLONG, "repository path too long: '%.100s...'", dir);
	}
	memcpy(l->root, dir, n);
	pthread_mutex_init(&l->open_lock, NULL);
	for (size_t i = 0; i < OPEN_PACKS; i++)
		l->open[i].fd = -1;
	snprintf(l->tmp, sizeof(l->tmp), "%.*s/tmp", (int)sizeof(l->root), l->root);
	return cairn_storage__new(out, &local_ops, l, l->root, l->root, l->root, l->root);
}
