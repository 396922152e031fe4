/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* stat, xattrs, symlinks and owner names of one filesystem entry. */
#include "fsmeta.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <pthread.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/xattr.h>
#include <unistd.h>

#include "cleanup.h"

void fsmeta_release(struct fsmeta *m)
{
	cairn_buf_release(&m->xattr_data);
	free(m->xattrs);
	free(m->target);
	*m = (struct fsmeta){ 0 };
}

static int node_type(mode_t mode)
{
	switch (mode & S_IFMT) {
	case S_IFREG:
		return CAIRN_NODE_FILE;
	case S_IFDIR:
		return CAIRN_NODE_DIR;
	case S_IFLNK:
		return CAIRN_NODE_SYMLINK;
	case S_IFIFO:
		return CAIRN_NODE_FIFO;
	case S_IFSOCK:
		return CAIRN_NODE_SOCKET;
	case S_IFCHR:
		return CAIRN_NODE_CHR;
	case S_IFBLK:
		return CAIRN_NODE_BLK;
	default:
		return -EINVAL;
	}
}

/* FORMAT.md §10 keeps times as i64 nanoseconds, from 1677-09-21 to 2262-04-11:
 * a time outside is clamped to the nearest end, and *clamped set. */
static int64_t ns(const struct timespec *t, bool *clamped)
{
	int64_t sec = t->tv_sec, nsec = t->tv_nsec, v;
	if (sec < 0 && nsec > 0) { /* so that the product may reach INT64_MIN's second */
		sec++;
		nsec -= 1000000000;
	}
	if (__builtin_mul_overflow(sec, (int64_t)1000000000, &v) ||
	    __builtin_add_overflow(v, nsec, &v)) {
		*clamped = true;
		return sec < 0 ? INT64_MIN : INT64_MAX;
	}
	return v;
}

int fsmeta_from_stat(struct cairn_node *node, const struct stat *st)
{
	int type = node_type(st->st_mode);
	if (type < 0)
		return cairn_err_set(-EINVAL, "unknown file type 0%o", st->st_mode & S_IFMT);
	const char *user = fsmeta_user(st->st_uid), *group = fsmeta_group(st->st_gid);
	node->type = (uint8_t)type;
	node->mode = st->st_mode & 07777;
	node->uid = st->st_uid;
	node->gid = st->st_gid;
	node->user = (const uint8_t *)user;
	node->user_len = strlen(user);
	node->group = (const uint8_t *)group;
	node->group_len = strlen(group);
	node->size = type == CAIRN_NODE_FILE ? (uint64_t)st->st_size : 0;
	bool clamped = false;
	node->mtime_ns = ns(&st->st_mtim, &clamped);
	node->ctime_ns = ns(&st->st_ctim, &clamped);
	node->atime_ns = ns(&st->st_atim, &clamped);
	node->dev = st->st_dev;
	node->ino = st->st_ino;
	node->nlink = (uint32_t)st->st_nlink;
	node->rdev = (type == CAIRN_NODE_CHR || type == CAIRN_NODE_BLK) ? st->st_rdev : 0;
	return clamped;
}

/* ---- xattrs ------------------------------------------------------------- */

/* The *xattr path calls need a path; /proc/self/fd/N/name reaches name in dirfd
 * without rebuilding (possibly over-long) absolute paths. l* variants do not
 * follow a final symlink. */
static void proc_path(char *out, size_t n, int dirfd, const char *name)
{
	snprintf(out, n, "/proc/self/fd/%d/%s", dirfd, name);
}

static bool ignorable(int e)
{
	return e == ENOTSUP || e == ENODATA || e == EOPNOTSUPP;
}

static ssize_t list_names(const char *path, struct cairn_buf *names)
{
	for (;;) {
		ssize_t n = llistxattr(path, NULL, 0);
		if (n <= 0)
			return n < 0 && ignorable(errno) ? 0 : n < 0 ? -errno : 0;
		names->len = 0;
		if (cairn_buf_reserve(names, (size_t)n) < 0)
			return -ENOMEM;
		ssize_t got = llistxattr(path, (char *)names->data, (size_t)n);
		if (got >= 0)
			return got;
		if (errno != ERANGE) /* ERANGE: the list grew meanwhile; ask again */
			return ignorable(errno) ? 0 : -errno;
	}
}

static int read_value(const char *path, const char *name, struct cairn_buf *out)
{
	for (;;) {
		ssize_t n = lgetxattr(path, name, NULL, 0);
		if (n < 0)
			return -errno;
		if (n > CAIRN_XATTR_VALUE_MAX)
			return cairn_err_set(-E2BIG, "xattr '%s' is larger than %d bytes", name,
			                     CAIRN_XATTR_VALUE_MAX);
		if (cairn_buf_reserve(out, (size_t)n + 1) < 0)
			return -ENOMEM;
		ssize_t got = lgetxattr(path, name, out->data + out->len, (size_t)n);
		if (got >= 0) {
			out->len += (size_t)got;
			return (int)got;
		}
		if (errno != ERANGE)
			return -errno;
	}
}

/* Layout in m->xattr_data: for each xattr, the name (no NUL) then the value. */
static int read_xattrs(struct fsmeta *m, const char *path)
{
	_cleanup_buf_ struct cairn_buf names = CAIRN_BUF_INIT;
	ssize_t total = list_names(path, &names);
	size_t count = 0;

	if (total <= 0)
		return (int)total;
	for (ssize_t i = 0; i < total; i += (ssize_t)strlen((char *)names.data + i) + 1)
		count++;
	if (count > CAIRN_TREE_MAX_XATTRS)
		return cairn_err_set(-E2BIG, "more than %d xattrs", CAIRN_TREE_MAX_XATTRS);
	size_t *offs = calloc(count * 3, sizeof(size_t));
	if (!offs)
		return -ENOMEM;
	size_t k = 0;
	for (ssize_t i = 0; i < total; i += (ssize_t)strlen((char *)names.data + i) + 1) {
		const char *name = (const char *)names.data + i;
		size_t start = m->xattr_data.len, nlen = strlen(name);
		int r = cairn_buf_put(&m->xattr_data, name, nlen);
		if (r >= 0)
			r = read_value(path, name, &m->xattr_data);
		if (r == -ENODATA) { /* removed meanwhile */
			m->xattr_data.len = start;
			continue;
		}
		if (r < 0) {
			free(offs);
			return r;
		}
		offs[3 * k] = start;
		offs[3 * k + 1] = nlen;
		offs[3 * k + 2] = (size_t)r;
		k++;
	}
	m->xattrs = calloc(k ? k : 1, sizeof(*m->xattrs));
	if (!m->xattrs) {
		free(offs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < k; i++) {
		const uint8_t *base = m->xattr_data.data + offs[3 * i];
		m->xattrs[i] = (struct cairn_xattr){ base, offs[3 * i + 1], base + offs[3 * i + 1],
			                             offs[3 * i + 2] };
	}
	m->nxattrs = k;
	free(offs);
	return 0;
}

static int read_target(struct fsmeta *m, int dirfd, const char *name)
{
	char buf[CAIRN_SYMLINK_MAX + 1];
	ssize_t n = readlinkat(dirfd, name, buf, sizeof(buf));
	if (n < 0)
		return -errno;
	if (n == 0 || n > CAIRN_SYMLINK_MAX)
		return cairn_err_set(-E2BIG, "symlink target of %zd bytes", n);
	m->target = malloc((size_t)n);
	if (!m->target)
		return -ENOMEM;
	memcpy(m->target, buf, (size_t)n);
	return (int)n;
}

int fsmeta_read_extra(struct cairn_node *node, struct fsmeta *m, int dirfd, const char *name)
{
	char path[4096 + 64];
	int r;

	if (node->type == CAIRN_NODE_SYMLINK) {
		if ((r = read_target(m, dirfd, name)) < 0)
			return r;
		node->target = m->target;
		node->target_len = (size_t)r;
		/* readlink moves a symlink's atime: record the new one, or the next
		 * backup sees a change that is only our own read. */
		struct stat st;
		if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && S_ISLNK(st.st_mode))
			node->atime_ns = ns(&st.st_atim, &(bool){ false });
	}
	proc_path(path, sizeof(path), dirfd, name);
	if ((r = read_xattrs(m, path)) < 0)
		return r;
	node->xattrs = m->xattrs;
	node->nxattrs = m->nxattrs;
	return 0;
}

/* ---- owner names -------------------------------------------------------- */

struct name_cache {
	pthread_mutex_t lock;
	struct {
		uint32_t id;
		char *name;
	} * e; /* protected by lock */
	size_t n, cap;
};

static struct name_cache users = { .lock = PTHREAD_MUTEX_INITIALIZER };
static struct name_cache groups = { .lock = PTHREAD_MUTEX_INITIALIZER };

static char *lookup_name(bool user, uint32_t id)
{
	char buf[16384];
	if (user) {
		struct passwd pw, *res = NULL;
		if (getpwuid_r(id, &pw, buf, sizeof(buf), &res) == 0 && res)
			return strndup(res->pw_name, 255);
	} else {
		struct group gr, *res = NULL;
		if (getgrgid_r(id, &gr, buf, sizeof(buf), &res) == 0 && res)
			return strndup(res->gr_name, 255);
	}
	return strdup("");
}

/* Names live until exit: nodes point at them without copying. */
static const char *cached_name(struct name_cache *c, bool user, uint32_t id)
{
	const char *found = "";
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < c->n; i++)
		if (c->e[i].id == id) {
			found = c->e[i].name;
			goto out;
		}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 16;
		void *p = realloc(c->e, cap * sizeof(*c->e));
		if (!p)
			goto out;
		c->e = p;
		c->cap = cap;
	}
	char *name = lookup_name(user, id);
	if (!name)
		goto out;
	c->e[c->n].id = id;
	c->e[c->n++].name = name;
	found = name;
out:
	pthread_mutex_unlock(&c->lock);
	return found;
}

const char *fsmeta_user(uint32_t uid)
{
	return cached_name(&users, true, uid);
}

const char *fsmeta_group(uint32_t gid)
{
	return cached_name(&groups, false, gid);
}
