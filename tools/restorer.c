/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading snapshots back (lookups, file content, times) and `cairn restore`. */
#include "restorer.h"

#include <errno.h>
#include <fcntl.h>
#include <dirent.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "snapsel.h"
#include "cleanup.h"
#include "interrupt.h"

DEFINE_FREEP(cairn_tree, cairn_tree_free)

/* ---- helpers shared by snapshots, ls, dump and restore ------------------ */

const char *restorer_type_name(uint8_t type)
{
	static const char *const names[] = { "?",    "file",   "dir",     "symlink",
		                             "fifo", "socket", "chardev", "blockdev" };
	return type < ARRAY_SIZE(names) ? names[type] : "?";
}

static int write_zeros(int fd, uint64_t len)
{
	static const uint8_t zeros[65536];
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int r = cairn_write_all(fd, zeros, n);
		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

static int skip_hole(int fd, uint64_t len)
{
	if (len > INT64_MAX)
		return -EFBIG;
	return lseek(fd, (off_t)len, SEEK_CUR) < 0 ? -errno : 0;
}

static int put_extent(cairn_repo *repo, const struct cairn_extent *e, const char *path,
                      const char *out, unsigned long long off, int fd, bool sparse,
                      struct cairn_buf *buf)
{
	int r = interrupt_check();
	if (r < 0)
		return r;
	if (cairn_id_is_zero(&e->id)) {
		r = sparse ? skip_hole(fd, e->len) : write_zeros(fd, e->len);
	} else {
		r = cairn_repo_get_typed(repo, CAIRN_BLOB_DATA, &e->id, buf);
		if (r < 0)
			return cairn_err_wrap(r, "cannot read '%s' at offset %llu", path, off);
		if (buf->len != e->len)
			return cairn_err_set(-EBADMSG,
			                     "cannot read '%s' at offset %llu: data blob holds %zu "
			                     "bytes, the tree says %llu",
			                     path, off, buf->len, (unsigned long long)e->len);
		r = cairn_write_all(fd, buf->data, buf->len);
	}
	if (r < 0 && out)
		return cairn_err_set(r, "cannot write %s: %s", out, strerror(-r));
	if (r < 0)
		return cairn_err_set(r, "cannot write '%s' at offset %llu: %s", path, off,
		                     strerror(-r));
	return 0;
}

int restorer_write_content(cairn_repo *repo, const struct cairn_node *node, const char *path,
                           const char *out, int fd, bool sparse, struct cairn_buf *buf)
{
	uint64_t off = 0;
	for (size_t i = 0; i < node->nextents; i++) {
		int r = put_extent(repo, &node->extents[i], path, out, off, fd, sparse, buf);
		if (r < 0)
			return r;
		off += node->extents[i].len;
	}
	return 0;
}

/* Entries are links of one inode only when they also agree on its type and size
 * (device number), and on its times: by (dev, ino) alone, a crafted snapshot
 * would restore a file as a link to a symlink, and a file deleted during the
 * backup whose inode a new one took would come back as a link to it. The inode
 * number comes first because the ID set takes its first bytes as the hash
 * (with dev first, every key of a device collided). */
void restorer_link_key(const struct cairn_node *n, struct cairn_id *k)
{
	uint8_t times[8];
	memset(k, 0, sizeof(*k));
	cairn_le64(k->b, n->ino);
	cairn_le64(k->b + 8, n->dev);
	cairn_le64(k->b + 16,
	           n->type == CAIRN_NODE_CHR || n->type == CAIRN_NODE_BLK ? n->rdev : n->size);
	k->b[24] = n->type; /* never 0: never the all-zero ID */
	cairn_le64(times, (uint64_t)n->mtime_ns * 0x9e3779b97f4a7c15ull ^ (uint64_t)n->ctime_ns);
	memcpy(k->b + 25, times, 7);
}

/* ---- restore ------------------------------------------------------------ */

/*
 * The walk holds one open directory fd per level and creates every entry with
 * *at() calls relative to it, opening directories with O_NOFOLLOW: a symlink in
 * the target (restored or planted) is replaced, never followed, so nothing is
 * written outside the target. A hard link's first copy is reached the same way,
 * one directory at a time from the target (open_parent). Directories leading to
 * included entries are made on demand (frame.fd < 0 until then); those that
 * only lead there and exist already keep their metadata (frame.leading). A directory's
 * mode and times are set when its walk ends, so the deepest are done first and
 * writing into a directory never changes its restored mtime.
 *
 * The walk runs in one thread and makes the directories; the other entries are
 * jobs for a pool of workers, each with a context of its own (path, buffer,
 * counts), so that reading, decrypting and decompressing blobs and writing
 * files use every core. Hard links are made by the walk itself, in walk order,
 * so the first copy of an inode exists before any link to it; so is an entry
 * when the job queue is full (the walk never waits for the workers). A
 * directory's frame is counted: the walk holds it while it lists the
 * directory, each job and each subdirectory's frame holds it too, and whoever
 * drops the last hold sets its metadata, so that happens after everything in
 * it is written, whichever thread finishes last.
 */
#define RESTORE_MAX_DEPTH 1000
#define TMP_NAME_MAX 64
#define JOBS_PER_THREAD 16 /* queued: bounds memory and open directories */
#define JOB_ENTRIES 32     /* entries of one directory per job */

struct frame {
	struct frame *up;
	const struct cairn_node *node; /* NULL: the target directory itself */
	cairn_tree *tree;              /* the entries inside (owned); nodes point into it */
	char *path;                    /* its snapshot path (owned), for messages */
	char name[CAIRN_NAME_MAX + 1];
	size_t plen;       /* its path is the first plen bytes of ctx.path */
	int fd;            /* -1 until the directory exists */
	int err;           /* creating it failed with err: do not try again */
	bool made;         /* a dry run counted it */
	bool leading;      /* only leads to what was asked for (PATH, --include) */
	bool existed;      /* it was in the target already */
	mode_t old_mode;   /* then: its mode, to put back if it only leads */
	atomic_uint holds; /* the walk's, one per job and per frame inside */
	struct job *batch; /* the walk's: entries not queued yet */
};

/* Entries of dir a worker restores (or verifies), one after the other: a job
 * per entry cost more in locking and waking than restoring a small file. */
struct job {
	struct frame *dir; /* held */
	size_t n;
	const struct cairn_node *e[JOB_ENTRIES];
};

/* What the walk and the workers share. */
struct pool {
	pthread_mutex_t lock;
	pthread_cond_t work, idle;
	struct job **q; /* a ring of cap jobs; protected by lock */
	size_t cap, head, count;
	size_t busy;  /* jobs being run; protected by lock */
	bool closing; /* protected by lock */
	pthread_t *tid;
	int started;
	struct restorer_stats *st; /* one per worker, added up at the end */
	struct ctx *ctx;           /* one per worker */
	atomic_int fatal;          /* the first failure that stops the restore */
	char fatal_msg[1024];
	pthread_mutex_t report_lock; /* one on_entry call at a time */
	atomic_ulong tmp_seq;
	int pid;
};

/* One walk of the snapshot serves three purposes: restoring; a dry run that
 * counts and reports what would be restored and touches nothing; and the check
 * of --verify, which opens what was restored (never creating, never following
 * a symlink) and compares each regular file with the snapshot. */
enum mode { RESTORE, DRY_RUN, VERIFY };

struct ctx {
	cairn_repo *repo;
	enum mode mode;
	const struct restorer_opts *o;
	struct restorer_stats *st;
	const struct pattern_list *include, *exclude; /* NULL when empty */
	const struct cairn_snapshot *snap;
	int rootfd;
	bool root;    /* euid 0: restore owners and devices */
	bool refused; /* the storage refused the last read (refused_read) */
	unsigned depth;
	struct pool *pool;           /* shared with the workers, if any */
	const char *what;            /* when set, the path messages name, not path */
	struct cairn_buf path;       /* snapshot path of the entry at hand, NUL-terminated */
	struct cairn_buf job_path;   /* the path of a job's entry, while it runs */
	struct cairn_buf data;       /* the blob being written */
	struct cairn_idset links;    /* (dev, ino) of a restored entry -> offset in link_paths */
	struct cairn_buf link_paths; /* NUL-terminated paths relative to the target */
};

/* Failures that would repeat for every entry stop the restore: a full disk,
 * or a storage that does not answer. */
static bool fatal(int r)
{
	return r == -ENOSPC || r == -EDQUOT || r == -ENOMEM || r == -EHOSTUNREACH ||
	       r == -ECANCELED;
}

/* A read the storage refused for a reason that holds for every read of this
 * run, as much as a storage that does not answer: the credentials were refused
 * or have expired (-EACCES), the bucket is gone (-ENXIO). Asked only of errors
 * of reads from the repository: a local EACCES is one file's. */
static bool refused_read(struct ctx *c, int r)
{
	c->refused = r == -EACCES || r == -ENXIO;
	return c->refused;
}

/* The path for messages, as it is: control characters in it are escaped where
 * the message is printed (cairn_text_str), so --log-format json keeps it exact. */
static const char *shown(struct ctx *c)
{
	if (c->what)
		return c->what;
	return c->path.len ? (const char *)c->path.data : "/";
}

/* path (len bytes) for a message: as it is up to 2 * SHOWN_END bytes, else its
 * first and last SHOWN_END bytes around "...", in out. */
#define SHOWN_END 120
static const char *shorten(char out[2 * SHOWN_END + 4], const char *path, size_t len)
{
	if (len <= 2 * SHOWN_END)
		return path;
	snprintf(out, 2 * SHOWN_END + 4, "%.*s...%s", SHOWN_END, path, path + len - SHOWN_END);
	return out;
}

/* Log "<what> '<path>': <why>" as a warning and count it. */
static void warn(struct ctx *c, const char *what, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void warn(struct ctx *c, const char *what, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	/* Whatever stops an entry's check is a difference from the snapshot. */
	log_warn("%s '%s': %s", c->mode == VERIFY ? "cannot verify" : what, shown(c), why);
	c->st->warnings++;
}

/* Tell the caller about an entry restored, or that a dry run would restore. */
static void report(struct ctx *c, size_t plen, const struct cairn_node *n, bool linked)
{
	if (!c->o->on_entry)
		return;
	pthread_mutex_lock(&c->pool->report_lock);
	c->o->on_entry((const char *)c->path.data, plen, n, linked, c->o->payload);
	pthread_mutex_unlock(&c->pool->report_lock);
}

static int path_push(struct ctx *c, const uint8_t *name, size_t len)
{
	if (cairn_buf_put_u8(&c->path, '/') < 0 || cairn_buf_put(&c->path, name, len) < 0 ||
	    cairn_buf_reserve(&c->path, 1) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->path.data[c->path.len] = '\0';
	return 0;
}

static void path_pop(struct ctx *c, size_t len)
{
	c->path.len = len;
	if (c->path.data)
		c->path.data[len] = '\0';
}

/* c->path = the len bytes of p (NUL-terminated). */
static int path_set(struct ctx *c, const char *p, size_t len)
{
	c->path.len = 0;
	if (cairn_buf_put(&c->path, p, len + 1) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->path.len = len;
	return 0;
}

static bool valid_name(const struct cairn_node *n)
{
	if (n->name_len == 0 || n->name_len > CAIRN_NAME_MAX || memchr(n->name, '/', n->name_len) ||
	    memchr(n->name, '\0', n->name_len))
		return false;
	return !(n->name[0] == '.' &&
	         (n->name_len == 1 || (n->name_len == 2 && n->name[1] == '.')));
}

static void copy_name(char out[CAIRN_NAME_MAX + 1], const struct cairn_node *n)
{
	memcpy(out, n->name, n->name_len);
	out[n->name_len] = '\0';
}

/* ---- metadata ----------------------------------------------------------- */

/* The entry metadata goes to: an open fd; or else name in dirfd, not followed
 * (symlinks); or, with follow, a /proc/self/fd link to an O_PATH fd, which leads
 * to that very inode whatever happens to its name (fifos, sockets, devices). */
struct obj {
	int fd;
	int dirfd;
	const char *name;
	bool follow;
};

static int set_xattr(const struct obj *o, const char *name, const struct cairn_xattr *x)
{
	char path[sizeof("/proc/self/fd/") + 12 + CAIRN_NAME_MAX + TMP_NAME_MAX];
	int r;
	if (o->fd >= 0) {
		r = fsetxattr(o->fd, name, x->value, x->value_len, 0);
	} else if (o->follow) {
		r = setxattr(o->name, name, x->value, x->value_len, 0);
	} else {
		/* No fd for symlinks, fifos and devices: go through the directory's
		 * /proc link; lsetxattr does not follow the last component. */
		snprintf(path, sizeof(path), "/proc/self/fd/%d/%s", o->dirfd, o->name);
		r = lsetxattr(path, name, x->value, x->value_len, 0);
	}
	return r < 0 ? -errno : 0;
}

static void set_xattrs(struct ctx *c, const struct obj *o, const struct cairn_node *n)
{
	for (size_t i = 0; i < n->nxattrs; i++) {
		const struct cairn_xattr *x = &n->xattrs[i];
		char name[CAIRN_NAME_MAX + 1], what[CAIRN_NAME_MAX + 64];
		if (x->name_len == 0 || x->name_len > CAIRN_NAME_MAX ||
		    memchr(x->name, '\0', x->name_len))
			continue; /* the tree parser refuses these */
		memcpy(name, x->name, x->name_len);
		name[x->name_len] = '\0';
		int r = set_xattr(o, name, x);
		if (r < 0) {
			snprintf(what, sizeof(what), "cannot set extended attribute '%s' on", name);
			warn(c, what, "%s", strerror(-r));
		}
	}
}

static ssize_t list_xattrs(const struct obj *o, char *buf, size_t size)
{
	if (o->fd >= 0)
		return flistxattr(o->fd, buf, size);
	return listxattr(o->name, buf, size); /* only with follow: see drop_xattrs */
}

static int remove_xattr(const struct obj *o, const char *name)
{
	int r = o->fd >= 0 ? fremovexattr(o->fd, name) : removexattr(o->name, name);
	return r < 0 ? -errno : 0;
}

static bool has_xattr(const struct cairn_node *n, const char *name, size_t len)
{
	for (size_t i = 0; i < n->nxattrs; i++)
		if (n->xattrs[i].name_len == len && memcmp(n->xattrs[i].name, name, len) == 0)
			return true;
	return false;
}

/* The extended attributes the entry has and n lacks go, so that it ends with
 * n's: an ACL it inherited from a default ACL of the directory it was made in
 * (cp -a and tar --acls remove it too), or what a directory restored over
 * had. The label SELinux gives a new inode stays, as with cp -a. Symlinks
 * inherit nothing and are not made over. */
static void drop_xattrs(struct ctx *c, const struct obj *o, const struct cairn_node *n)
{
	char small[1024], what[CAIRN_NAME_MAX + 64];
	_cleanup_free_ char *big = NULL;
	char *buf = small;
	ssize_t len = list_xattrs(o, small, sizeof(small));
	if (len < 0 && errno == ERANGE) {
		ssize_t need = list_xattrs(o, NULL, 0);
		if (need > 0 && need <= XATTR_LIST_MAX && (big = malloc((size_t)need)))
			len = list_xattrs(o, buf = big, (size_t)need);
	}
	for (ssize_t at = 0; at < len;) {
		const char *name = buf + at;
		size_t k = strnlen(name, (size_t)(len - at));
		if (k == (size_t)(len - at))
			break; /* no NUL: cut short */
		at += (ssize_t)k + 1;
		if (has_xattr(n, name, k) || strcmp(name, "security.selinux") == 0)
			continue;
		int r = remove_xattr(o, name);
		if (r < 0 && r != -ENODATA) {
			snprintf(what, sizeof(what),
			         "cannot remove extended attribute '%.255s' from", name);
			warn(c, what, "%s", strerror(-r));
		}
	}
}

static void split_ts(struct timespec *ts, int64_t ns)
{
	int64_t s = ns / 1000000000, f = ns % 1000000000;
	if (f < 0) {
		f += 1000000000;
		s--;
	}
	ts->tv_sec = (time_t)s;
	ts->tv_nsec = (long)f;
}

/* n's mode, less setuid and setgid when the entry did not get n's owner and
 * group (without root it belongs to whoever restores): as with cp -a, a
 * program would otherwise run with the rights of someone it never ran as. */
static mode_t mode_for(const struct ctx *c, const struct obj *o, const struct cairn_node *n)
{
	struct stat st;
	if (c->root || !(n->mode & (S_ISUID | S_ISGID)))
		return n->mode;
	int r = o->fd >= 0 ? fstat(o->fd, &st) : fstatat(o->dirfd, o->name, &st, 0);
	if (r == 0 && st.st_uid == n->uid && st.st_gid == n->gid)
		return n->mode;
	return n->mode & ~(mode_t)(S_ISUID | S_ISGID);
}

/* Owner first (chown clears setuid bits and file capabilities), then xattrs
 * (an access ACL rewrites the group bits), then the mode, then the times. */
static void set_meta(struct ctx *c, const struct obj *o, const struct cairn_node *n)
{
	bool lnk = n->type == CAIRN_NODE_SYMLINK;
	int at = o->follow ? 0 : AT_SYMLINK_NOFOLLOW;
	struct timespec ts[2];
	int r;

	if (c->root) {
		r = o->fd >= 0 ? fchown(o->fd, n->uid, n->gid)
		               : fchownat(o->dirfd, o->name, n->uid, n->gid, at);
		if (r < 0)
			warn(c, "cannot set the owner of", "%s", strerror(errno));
	}
	if (!lnk)
		drop_xattrs(c, o, n);
	set_xattrs(c, o, n);
	if (!lnk) { /* by name only with follow: chmod would follow a symlink there */
		mode_t mode = mode_for(c, o, n);
		r = o->fd >= 0 ? fchmod(o->fd, mode) : fchmodat(o->dirfd, o->name, mode, 0);
		if (r < 0)
			warn(c, "cannot set the mode of", "%s", strerror(errno));
	}
	split_ts(&ts[0], n->atime_ns);
	split_ts(&ts[1], n->mtime_ns);
	r = o->fd >= 0 ? futimens(o->fd, ts) : utimensat(o->dirfd, o->name, ts, at);
	if (r < 0)
		warn(c, "cannot set the times of", "%s", strerror(errno));
}

/* ---- directories -------------------------------------------------------- */

/* Open name in dirfd as a directory, creating it, or replacing whatever else
 * has the name. Returns the fd or -errno. */
/* The name create_tmp() gives, ".cairn-tmp.PID.SEQ", of a process other than
 * this one that no longer runs: a restore killed before it could remove it. */
static bool stale_tmp(const char *name)
{
	const char *p = name + sizeof(".cairn-tmp.") - 1;
	char *end;
	if (strncmp(name, ".cairn-tmp.", sizeof(".cairn-tmp.") - 1) != 0 || *p < '0' || *p > '9')
		return false;
	errno = 0;
	unsigned long pid = strtoul(p, &end, 10);
	if (errno || end - p > 10 || *end != '.' || end[1] < '0' || end[1] > '9')
		return false;
	p = end + 1;
	errno = 0;
	(void)strtoul(p, &end, 10);
	if (errno || end - p > 20 || *end != '\0' || pid == 0 || pid > INT32_MAX)
		return false;
	return (pid_t)pid != getpid() && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
}

/* Remove the temp files a killed restore left in the directory dirfd. */
static void remove_stale_tmps(int dirfd)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return;
	}
	for (struct dirent *de; (de = readdir(d));)
		if (stale_tmp(de->d_name) && unlinkat(dirfd, de->d_name, 0) == 0)
			log_debug("removed '%s', left by an interrupted restore", de->d_name);
	closedir(d);
}

/* *existed says whether the directory was there already, and *old_mode its
 * mode then. */
static int make_dir(int dirfd, const char *name, bool *existed, mode_t *old_mode)
{
	struct stat st;
	bool made = mkdirat(dirfd, name, 0700) == 0;
	if (!made && errno != EEXIST)
		return -errno;
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0 && (errno == ENOTDIR || errno == ELOOP)) {
		if (unlinkat(dirfd, name, 0) < 0 || mkdirat(dirfd, name, 0700) < 0)
			return -errno;
		made = true;
		fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	}
	if (fd < 0)
		return -errno;
	*existed = !made;
	*old_mode = 0700;
	/* An existing directory may be read-only (an earlier restore of it): we
	 * need to write into it until its own mode is set at the end. */
	if (fstat(fd, &st) == 0) {
		*old_mode = st.st_mode & 07777;
		if ((st.st_mode & 0700) != 0700)
			(void)fchmod(fd, (st.st_mode & 07777) | 0700);
	}
	if (!made)
		remove_stale_tmps(fd);
	return fd;
}

/* An existing directory to verify, never followed if it is a symlink. */
static int open_dir(int dirfd, const char *name)
{
	int fd = openat(dirfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int ensure_dir(struct ctx *c, struct frame *f)
{
	if (f->fd >= 0 || f->made)
		return 0;
	if (f->err < 0)
		return f->err;
	int r = ensure_dir(c, f->up);
	if (r < 0)
		return f->err = r;
	if (c->mode == DRY_RUN) {
		f->made = true;
		c->st->dirs++;
		report(c, f->plen, f->node, false);
		return 0;
	}
	r = c->mode == VERIFY ? open_dir(f->up->fd, f->name)
	                      : make_dir(f->up->fd, f->name, &f->existed, &f->old_mode);
	if (r < 0 && c->mode == VERIFY) {
		warn(c, NULL, "directory '%s': %s", f->name, strerror(-r));
		return f->err = r;
	}
	if (r < 0) {
		char what[CAIRN_NAME_MAX + 64];
		snprintf(what, sizeof(what), "cannot create directory '%s' for", f->name);
		warn(c, what, "%s", strerror(-r));
		if (fatal(r))
			cairn_err_set(r, "cannot create directory '%s': %s", f->name, strerror(-r));
		return f->err = r;
	}
	f->fd = r;
	if (f->leading && f->existed)
		return 0; /* left as it is: not restored */
	c->st->dirs++;
	if (c->mode == RESTORE)
		report(c, f->plen, f->node, false);
	return 0;
}

static void finish_dir(struct ctx *c, struct frame *f)
{
	if (f->fd < 0 || !f->node)
		return;
	struct obj o = { .fd = f->fd, .dirfd = -1 };
	c->what = f->path;
	/* A directory that was there and only leads to what was asked for keeps
	 * its owner, mode and xattrs (make_dir may have opened its mode). */
	if (c->mode == RESTORE && f->leading && f->existed) {
		if ((f->old_mode & 0700) != 0700)
			(void)fchmod(f->fd, f->old_mode);
	} else if (c->mode == RESTORE) {
		set_meta(c, &o, f->node);
	}
	c->what = NULL;
	close(f->fd);
	f->fd = -1;
}

/* A frame for the directory n in up (n NULL: the target), held by the caller,
 * with c->path its path. NULL when out of memory (message set). */
static struct frame *frame_new(struct ctx *c, struct frame *up, const struct cairn_node *n)
{
	struct frame *f = calloc(1, sizeof(*f));
	if (!f || !(f->path = strdup(shown(c)))) {
		free(f);
		cairn_err_set(-ENOMEM, "out of memory");
		return NULL;
	}
	f->up = up;
	f->node = n;
	f->plen = c->path.len;
	f->fd = -1;
	if (n)
		copy_name(f->name, n);
	atomic_init(&f->holds, 1);
	if (up)
		atomic_fetch_add(&up->holds, 1);
	return f;
}

/* Drop a hold on f; the last one finishes the directory and drops f's hold on
 * the directory above. c is the calling thread's. */
static void frame_release(struct ctx *c, struct frame *f)
{
	while (f && atomic_fetch_sub(&f->holds, 1) == 1) {
		struct frame *up = f->up;
		finish_dir(c, f);
		cairn_tree_free(f->tree);
		free(f->path);
		free(f);
		f = up;
	}
}

/* ---- other entries ------------------------------------------------------ */

static bool link_candidate(const struct cairn_node *n)
{
	return n->type != CAIRN_NODE_DIR && n->nlink > 1;
}

static bool is_device(const struct cairn_node *n)
{
	return n->type == CAIRN_NODE_CHR || n->type == CAIRN_NODE_BLK;
}

/* The target-relative path of the entry restored first with n's (dev, ino). */
static const char *link_first(struct ctx *c, const struct cairn_node *n)
{
	struct cairn_id k;
	restorer_link_key(n, &k);
	uint64_t *off = cairn_idset_get(&c->links, &k);
	return off ? (const char *)c->link_paths.data + *off : NULL;
}

static int link_add(struct ctx *c, const struct cairn_node *n)
{
	struct cairn_id k;
	uint64_t off = c->link_paths.len;
	restorer_link_key(n, &k);
	if (cairn_buf_put(&c->link_paths, c->path.data + 1, c->path.len - 1) < 0 ||
	    cairn_buf_put_u8(&c->link_paths, 0) < 0 || cairn_idset_add(&c->links, &k, off) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

/* The file type bits of a fifo, socket or device node; 0 for other types. */
static mode_t node_ifmt(const struct cairn_node *n)
{
	mode_t m = cairn_node_ifmt(n->type);
	return m == S_IFREG || m == S_IFDIR || m == S_IFLNK ? 0 : m;
}

/* The directory holding rel (a path relative to the target), opened one
 * component at a time from the target and never through a symlink, as every
 * other entry is made: a directory on the way that someone replaced with a
 * symlink fails the walk (ELOOP, ENOTDIR) instead of leading out of the target.
 * *base gets rel's last component. Returns an fd the caller closes, or -errno. */
static int open_parent(int rootfd, const char *rel, const char **base)
{
	const char *p = rel;
	size_t k;
	int fd = fcntl(rootfd, F_DUPFD_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	while (p[k = strcspn(p, "/")]) {
		char name[CAIRN_NAME_MAX + 1];
		if (k == 0 || k > CAIRN_NAME_MAX) {
			close(fd);
			return -EINVAL;
		}
		memcpy(name, p, k);
		name[k] = '\0';
		int next = openat(fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		int e = errno;
		close(fd);
		if (next < 0)
			return -e;
		fd = next;
		p += k + 1;
	}
	*base = p;
	return fd;
}

/* Link tmp in dirfd to the entry at link_from. linkat without AT_SYMLINK_FOLLOW
 * does not follow link_from's last component either. */
static int link_one(int rootfd, const char *link_from, int dirfd, const char *tmp)
{
	const char *base = NULL;
	int pfd = open_parent(rootfd, link_from, &base);
	if (pfd < 0)
		return pfd;
	int r = linkat(pfd, base, dirfd, tmp, 0) < 0 ? -errno : 0;
	close(pfd);
	return r;
}

/* Create n under tmp in dirfd (a hard link to link_from if set). *fd gets the
 * open file for a new regular file, else -1. Returns 0 or -errno. */
static int create_one(struct ctx *c, int dirfd, const struct cairn_node *n, const char *link_from,
                      const char *tmp, int *fd)
{
	char target[CAIRN_SYMLINK_MAX + 1];
	int r;

	*fd = -1;
	if (link_from)
		return link_one(c->rootfd, link_from, dirfd, tmp);
	switch (n->type) {
	case CAIRN_NODE_FILE:
		*fd = openat(dirfd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC,
		             0600);
		return *fd < 0 ? -errno : 0;
	case CAIRN_NODE_SYMLINK:
		if (n->target_len == 0 || n->target_len > CAIRN_SYMLINK_MAX)
			return -EINVAL;
		memcpy(target, n->target, n->target_len);
		target[n->target_len] = '\0';
		r = symlinkat(target, dirfd, tmp);
		break;
	case CAIRN_NODE_FIFO:
	case CAIRN_NODE_SOCKET: /* a socket inode, as cp -a makes: nobody listens */
	case CAIRN_NODE_CHR:
	case CAIRN_NODE_BLK:
		r = mknodat(dirfd, tmp, node_ifmt(n) | 0600, is_device(n) ? (dev_t)n->rdev : 0);
		break;
	default:
		return -EINVAL;
	}
	return r < 0 ? -errno : 0;
}

/* create_one under a fresh temporary name (written to tmp). */
static int create_tmp(struct ctx *c, int dirfd, const struct cairn_node *n, const char *link_from,
                      char tmp[TMP_NAME_MAX], int *fd)
{
	for (int tries = 0; tries < 100; tries++) {
		snprintf(tmp, TMP_NAME_MAX, ".cairn-tmp.%d.%lu", c->pool->pid,
		         atomic_fetch_add(&c->pool->tmp_seq, 1));
		int r = create_one(c, dirfd, n, link_from, tmp, fd);
		if (r != -EEXIST)
			return r;
	}
	return -EEXIST;
}

/* CAIRN_TEST_STOP_POINT=restore-file stops the process (SIGSTOP) once, when
 * the first file's temp copy exists and none of its content is written: a test
 * then signals or kills the restore at that moment. */
static void test_point(void)
{
	static atomic_bool done;
	const char *stop = getenv("CAIRN_TEST_STOP_POINT");
	if (stop && strcmp(stop, "restore-file") == 0 && !atomic_exchange(&done, true))
		raise(SIGSTOP);
}

/* Content, size and metadata of a new regular file. Message set on failure. */
static int fill_file(struct ctx *c, int fd, const struct cairn_node *n)
{
	test_point();
	int r = restorer_write_content(c->repo, n, shown(c), NULL, fd, true, &c->data);
	if (r < 0) {
		refused_read(c, r); /* its write errors are never these */
		return r;
	}
	/* Only a hole at the end leaves the file short (holes are skipped). */
	bool hole_at_end = n->nextents && cairn_id_is_zero(&n->extents[n->nextents - 1].id);
	if (hole_at_end && (n->size > INT64_MAX || ftruncate(fd, (off_t)n->size) < 0)) {
		r = n->size > INT64_MAX ? -EFBIG : -errno;
		return cairn_err_set(r, "cannot set the size of '%s': %s", shown(c), strerror(-r));
	}
	struct obj o = { .fd = fd, .dirfd = -1 };
	set_meta(c, &o, n);
	return 0;
}

/* Metadata of the fifo, socket or device node just made at tmp. There is nothing
 * to open it with, and calls by name follow a symlink someone put there since
 * (chmod) or act on whatever replaced it: take an O_PATH fd of the entry, check
 * that it is the node, and go through that fd's /proc link. */
static int fill_node(struct ctx *c, int dirfd, const char *tmp, const struct cairn_node *n)
{
	char proc[sizeof("/proc/self/fd/") + 12];
	struct stat st;
	_cleanup_close_ int fd = openat(dirfd, tmp, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot open '%s': %s", shown(c), strerror(errno));
	if (fstat(fd, &st) < 0 || (st.st_mode & S_IFMT) != node_ifmt(n))
		return cairn_err_set(-EEXIST, "cannot restore '%s': replaced while being created",
		                     shown(c));
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", fd);
	struct obj o = { .fd = -1, .dirfd = AT_FDCWD, .name = proc, .follow = true };
	set_meta(c, &o, n);
	return 0;
}

/* Make the new entry at tmp: content and metadata, except for extra links to an
 * inode restored already. Closes fd. Returns 0 or -errno with a message set. */
static int fill(struct ctx *c, int dirfd, int fd, const char *tmp, const struct cairn_node *n,
                bool linked)
{
	if (fd >= 0) {
		int r = fill_file(c, fd, n);
		if (close(fd) < 0 && r >= 0)
			r = cairn_err_set(-errno, "cannot write '%s': %s", shown(c),
			                  strerror(errno));
		return r;
	}
	if (linked)
		return 0;
	if (n->type != CAIRN_NODE_SYMLINK)
		return fill_node(c, dirfd, tmp, n);
	struct obj o = { .fd = -1, .dirfd = dirfd, .name = tmp };
	set_meta(c, &o, n);
	return 0;
}

/* Move tmp to name, replacing what is there. */
static int replace(int dirfd, const char *tmp, const char *name, bool linked)
{
	if (renameat(dirfd, tmp, dirfd, name) < 0)
		return -errno;
	/* When name already was a link to the same inode, rename did nothing:
	 * only a hard link can be (a new inode has no other name). */
	if (linked)
		(void)unlinkat(dirfd, tmp, 0);
	return 0;
}

static void count(struct ctx *c, const struct cairn_node *n, bool linked)
{
	if (linked)
		c->st->links++;
	else if (n->type == CAIRN_NODE_FILE)
		c->st->files++;
	else
		c->st->others++;
	if (!linked && n->type == CAIRN_NODE_FILE)
		c->st->bytes += n->size;
}

/* Restore a non-directory n as link_from's hard link (if set) or a new inode.
 * Returns < 0 only for fatal errors (others are warnings), 1 if the link failed
 * and the caller should write a copy instead. */
static int restore_inode(struct ctx *c, struct frame *dir, const struct cairn_node *n,
                         const char *link_from)
{
	char tmp[TMP_NAME_MAX], name[CAIRN_NAME_MAX + 1];
	int fd, r = create_tmp(c, dir->fd, n, link_from, tmp, &fd);
	if (r < 0) {
		if (fatal(r))
			return cairn_err_set(r, "cannot create '%s': %s", shown(c), strerror(-r));
		warn(c, link_from ? "cannot hard-link" : "cannot create", "%s", strerror(-r));
		return link_from ? 1 : 0;
	}
	r = fill(c, dir->fd, fd, tmp, n, link_from != NULL);
	copy_name(name, n);
	if (r >= 0 && (r = replace(dir->fd, tmp, name, link_from != NULL)) < 0)
		cairn_err_set(r, "cannot restore '%s': %s", shown(c), strerror(-r));
	if (r < 0) {
		(void)unlinkat(dir->fd, tmp, 0);
		if (fatal(r) || c->refused)
			return r;
		log_warn("%s", cairn_err_msg());
		c->st->warnings++;
		return 0;
	}
	count(c, n, link_from != NULL);
	report(c, c->path.len, n, link_from != NULL);
	if (!link_from && link_candidate(n))
		return link_add(c, n);
	return 0;
}

/* ---- verify ------------------------------------------------------------- */

/* Exactly n bytes at off: 0, 1 when the file ends first, -errno. */
static int read_at(int fd, uint8_t *buf, size_t n, uint64_t off)
{
	while (n > 0) {
		ssize_t k = pread(fd, buf, n, (off_t)off);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return k < 0 ? -errno : 1;
		buf += k;
		n -= (size_t)k;
		off += (uint64_t)k;
	}
	return 0;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* 0 if the bytes of fd at off are extent e's: they hash to its blob ID (so the
 * repository is not read again), or are zeros for a hole; 1 if not; -errno. */
static int same_extent(struct ctx *c, int fd, const struct cairn_extent *e, uint64_t off)
{
	bool hole = cairn_id_is_zero(&e->id);
	uint64_t max = cairn_chunker_params(cairn_repo_chunker(c->repo))->max;
	if (!hole && e->len > max)
		return 1; /* no blob of this repository is that long */
	size_t piece = hole && e->len > 65536 ? 65536 : (size_t)e->len;
	c->data.len = 0;
	if (cairn_buf_reserve(&c->data, piece) < 0)
		return -ENOMEM;
	for (uint64_t done = 0; done < e->len;) {
		size_t n = e->len - done < piece ? (size_t)(e->len - done) : piece;
		int r = read_at(fd, c->data.data, n, off + done);
		if (r != 0)
			return r;
		if (hole && !all_zero(c->data.data, n))
			return 1;
		done += n;
	}
	struct cairn_id id;
	if (hole)
		return 0;
	int r = cairn_repo_blob_id(c->repo, c->data.data, (size_t)e->len, &id);
	return r < 0 ? r : cairn_id_cmp(&id, &e->id) != 0;
}

/* Compare the restored regular file n with the snapshot; a difference is a
 * warning. Returns < 0 only for -ENOMEM. */
static int verify_file(struct ctx *c, struct frame *dir, const struct cairn_node *n)
{
	char name[CAIRN_NAME_MAX + 1];
	struct stat st;
	uint64_t off = 0;

	if (n->type != CAIRN_NODE_FILE)
		return 0;
	c->st->files++;
	copy_name(name, n);
	/* O_NONBLOCK: a fifo put in the file's place must not hang the check. */
	_cleanup_close_ int fd =
	        openat(dir->fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		warn(c, NULL, "%s", strerror(errno));
		return 0;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size != n->size) {
		warn(c, NULL, "%s of %llu bytes, the snapshot has a file of %llu",
		     S_ISREG(st.st_mode) ? "a file" : "not a regular file",
		     (unsigned long long)st.st_size, (unsigned long long)n->size);
		return 0;
	}
	for (size_t i = 0; i < n->nextents; i++) {
		int r = same_extent(c, fd, &n->extents[i], off);
		if (r == -ENOMEM)
			return cairn_err_set(r, "out of memory");
		if (r != 0) {
			warn(c, NULL, "%s at offset %llu", r < 0 ? strerror(-r) : "content differs",
			     (unsigned long long)off);
			return 0;
		}
		off += n->extents[i].len;
	}
	c->st->bytes += n->size;
	return 0;
}

/* What restore_inode would do, without doing it. */
static int dry_leaf(struct ctx *c, const struct cairn_node *n)
{
	const char *first = link_candidate(n) ? link_first(c, n) : NULL;
	count(c, n, first != NULL);
	report(c, c->path.len, n, first != NULL);
	return !first && link_candidate(n) ? link_add(c, n) : 0;
}

static int restore_leaf(struct ctx *c, struct frame *dir, const struct cairn_node *n)
{
	if (c->mode == VERIFY)
		return verify_file(c, dir, n);
	if (is_device(n) && !c->root) {
		warn(c, "skipping device", "only root can create device nodes");
		return 0;
	}
	if (n->type == CAIRN_NODE_SYMLINK && n->target_len == 0) {
		warn(c, "skipping symlink", "its target could not be read at backup time");
		return 0;
	}
	if (n->flags & CAIRN_NODE_INCOMPLETE)
		warn(c, "restoring an incomplete copy of",
		     "it could not be read completely "
		     "at backup time");
	if (c->mode == DRY_RUN)
		return dry_leaf(c, n);
	const char *first = link_candidate(n) ? link_first(c, n) : NULL;
	if (first) {
		int r = restore_inode(c, dir, n, first);
		if (r != 1)
			return r;
		/* Say, the first copy is gone: write this one on its own. */
	}
	return restore_inode(c, dir, n, NULL);
}

/* ---- the workers -------------------------------------------------------- */

static bool stopped(const struct ctx *c)
{
	return atomic_load(&c->pool->fatal) != 0 || interrupt_pending();
}

static void set_fatal(struct pool *p, int r)
{
	int zero = 0;
	if (atomic_compare_exchange_strong(&p->fatal, &zero, r))
		snprintf(p->fatal_msg, sizeof(p->fatal_msg), "%s", cairn_err_msg());
}

/* Run job in c, a worker's context or the walk's (when the queue was full). */
static void run_job(struct ctx *c, struct job *j)
{
	struct cairn_buf walk_path = c->path; /* the walk's place, when it runs a job */
	struct frame *d = j->dir;
	c->path = c->job_path;
	for (size_t i = 0; i < j->n && !stopped(c); i++) {
		const struct cairn_node *n = j->e[i];
		/* The directory's path, "/" for the target, and the name. */
		int r = path_set(c, d->path, d->plen);
		if (r >= 0)
			r = path_push(c, n->name, n->name_len);
		if (r >= 0)
			r = restore_leaf(c, d, n);
		if (r < 0)
			set_fatal(c->pool, r);
	}
	c->job_path = c->path;
	c->path = walk_path;
	frame_release(c, d);
	free(j);
}

static void *worker(void *arg)
{
	struct ctx *c = arg;
	struct pool *p = c->pool;
	pthread_mutex_lock(&p->lock);
	for (;;) {
		while (p->count == 0 && !p->closing)
			pthread_cond_wait(&p->work, &p->lock);
		if (p->count == 0)
			break;
		struct job *j = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
		p->busy++;
		pthread_mutex_unlock(&p->lock);
		run_job(c, j);
		pthread_mutex_lock(&p->lock);
		if (--p->busy == 0 && p->count == 0)
			pthread_cond_broadcast(&p->idle);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

/* Queue dir's batch for a worker, or run it here when the queue is full (the
 * walk never waits for the workers). */
static void submit(struct ctx *c, struct frame *dir)
{
	struct pool *p = c->pool;
	struct job *j = TAKE_PTR(dir->batch);
	if (!j)
		return;
	pthread_mutex_lock(&p->lock);
	bool room = p->count < p->cap;
	if (room) {
		p->q[(p->head + p->count++) % p->cap] = j;
		pthread_cond_signal(&p->work);
	}
	pthread_mutex_unlock(&p->lock);
	if (!room)
		run_job(c, j);
}

/* Restore n in dir, named by c->path: by a worker, in a batch of dir's entries,
 * or at once when there are no workers (or no memory for a batch). */
static int queue_leaf(struct ctx *c, struct frame *dir, const struct cairn_node *n)
{
	if (!c->pool->started)
		return restore_leaf(c, dir, n);
	if (!dir->batch) {
		if (!(dir->batch = malloc(sizeof(*dir->batch))))
			return restore_leaf(c, dir, n);
		*dir->batch = (struct job){ .dir = dir };
		atomic_fetch_add(&dir->holds, 1);
	}
	dir->batch->e[dir->batch->n++] = n;
	if (dir->batch->n == JOB_ENTRIES)
		submit(c, dir);
	return 0;
}

/* The walk is done with f: its last batch goes, and the walk's hold. */
static void walk_done(struct ctx *c, struct frame *f)
{
	submit(c, f);
	frame_release(c, f);
}

/* ---- the walk ----------------------------------------------------------- */

static int restore_children(struct ctx *c, struct frame *dir, const cairn_tree *t, bool inc);

static int restore_dir(struct ctx *c, struct frame *up, const struct cairn_node *n, bool inc)
{
	if (!inc && !pattern_list_match_below(c->include, (char *)c->path.data, c->path.len))
		return 0;
	if (c->depth >= RESTORE_MAX_DEPTH) {
		/* The path is 1000 names long: its start and end say where. */
		char shown_path[2 * SHOWN_END + 4];
		c->what = shorten(shown_path, (const char *)c->path.data, c->path.len);
		warn(c, "skipping", "directories nested more than %d deep", RESTORE_MAX_DEPTH);
		c->what = NULL;
		return 0;
	}
	struct frame *f = frame_new(c, up, n);
	if (!f)
		return -ENOMEM;
	f->leading = !inc;
	int r = inc ? ensure_dir(c, f) : 0;
	if (r < 0) {
		frame_release(c, f);
		return fatal(r) ? r : 0;
	}
	if ((n->flags & CAIRN_NODE_INCOMPLETE) && c->mode != VERIFY)
		warn(c, "restoring an incomplete copy of", "it could not be read at backup time");
	r = cairn_repo_tree_load(c->repo, &n->subtree, &f->tree);
	if (r < 0 && !fatal(r) && !refused_read(c, r)) {
		warn(c, "cannot restore the contents of", "%s", cairn_err_msg());
		r = 0;
	} else if (r >= 0) {
		c->depth++;
		r = restore_children(c, f, f->tree, inc);
		c->depth--;
	}
	walk_done(c, f);
	return r;
}

/* n, named by c->path, in dir; inc: a parent matched --include already. */
static int restore_node(struct ctx *c, struct frame *dir, const struct cairn_node *n, bool inc)
{
	const char *path = (const char *)c->path.data;
	if (!valid_name(n)) {
		warn(c, "skipping", "not a valid file name");
		return 0;
	}
	/* Matched below the snapshot's paths, as backup matched them. */
	if (c->exclude &&
	    pattern_list_find_below(c->exclude, path, c->path.len,
	                            snapsel_root_len(c->snap, path, c->path.len)) >= 0)
		return 0;
	inc = inc || !c->include || pattern_list_match(c->include, path, c->path.len);
	if (n->type == CAIRN_NODE_DIR)
		return restore_dir(c, dir, n, inc);
	if (!inc)
		return 0;
	int r = ensure_dir(c, dir);
	if (r < 0)
		return fatal(r) ? r : 0;
	log_debug("restoring '%s'", shown(c));
	/* Links in walk order (the walk's link map); a dry run touches nothing. */
	if (c->mode == DRY_RUN || (c->mode == RESTORE && link_candidate(n)))
		return restore_leaf(c, dir, n);
	return queue_leaf(c, dir, n);
}

static int restore_children(struct ctx *c, struct frame *dir, const cairn_tree *t, bool inc)
{
	size_t count = cairn_tree_count(t);
	for (size_t i = 0; i < count; i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		size_t old = c->path.len;
		if (stopped(c)) {
			int r = interrupt_check();
			return r < 0 ? r : atomic_load(&c->pool->fatal);
		}
		int r = path_push(c, n->name, n->name_len);
		if (r >= 0)
			r = restore_node(c, dir, n, inc);
		path_pop(c, old);
		if (r < 0)
			return r;
	}
	return 0;
}

static int walk(struct ctx *c, struct frame *up, const cairn_tree *t, const char *rest);

/* A directory on the way down to o->path: made only if something below is. */
static int walk_dir(struct ctx *c, struct frame *up, const struct cairn_node *n, const char *rest)
{
	if (n->type != CAIRN_NODE_DIR)
		return cairn_err_set(-ENOTDIR, "'%s' is not a directory", shown(c));
	struct frame *f = frame_new(c, up, n);
	if (!f)
		return -ENOMEM;
	f->leading = true;
	int r = cairn_repo_tree_load(c->repo, &n->subtree, &f->tree);
	if (r >= 0)
		r = walk(c, f, f->tree, rest);
	walk_done(c, f);
	return r;
}

static int walk(struct ctx *c, struct frame *up, const cairn_tree *t, const char *rest)
{
	size_t len, idx, last;
	const char *p = cairn_path_next(rest, &len);

	if (len == 0)
		return restore_children(c, up, t, false);
	if (cairn_tree_find(t, p, len, &idx) < 0)
		return cairn_err_set(-ENOENT, "'%s' is not in the snapshot", c->o->path);
	const struct cairn_node *n = cairn_tree_node(t, idx);
	size_t old = c->path.len;
	int r = path_push(c, n->name, n->name_len);
	cairn_path_next(p + len, &last);
	if (r >= 0 && last == 0)
		r = restore_node(c, up, n, false);
	else if (r >= 0)
		r = walk_dir(c, up, n, p + len);
	path_pop(c, old);
	return r;
}

/* The whole walk from the target: the top frame owns the root tree t. */
static int walk_top(struct ctx *c, cairn_tree **t, const char *path)
{
	int r = cairn_buf_reserve(&c->path, 1);
	if (r < 0)
		return r;
	c->path.data[0] = '\0';
	struct frame *top = frame_new(c, NULL, NULL);
	if (!top)
		return -ENOMEM;
	top->fd = c->rootfd; /* node NULL: finish_dir leaves it alone */
	top->made = c->mode == DRY_RUN;
	top->tree = TAKE_PTR(*t);
	r = walk(c, top, top->tree, path);
	walk_done(c, top);
	return r;
}

/* One fd per directory level, and per directory of a queued job. */
static void raise_nofile(size_t more)
{
	struct rlimit rl;
	rlim_t want = RESTORE_MAX_DEPTH + 64 + (rlim_t)more;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
		rl.rlim_cur = rl.rlim_max < want ? rl.rlim_max : want;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
}

static void ctx_release(struct ctx *c)
{
	cairn_buf_release(&c->path);
	cairn_buf_release(&c->job_path);
	cairn_buf_release(&c->data);
	cairn_buf_release(&c->link_paths);
	cairn_idset_release(&c->links);
}

/* Workers for c's walk: o->threads of them (one per CPU when 0), none for a dry
 * run or one thread. A worker that cannot start costs only speed. */
static int pool_start(struct pool *p, struct ctx *c)
{
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	unsigned n = c->o->threads ? c->o->threads : ncpu > 0 ? (unsigned)ncpu : 1;
	if (c->mode == DRY_RUN || n < 2)
		n = 0;
	if (n > 256)
		n = 256;
	p->cap = JOBS_PER_THREAD * (size_t)(n ? n : 1);
	p->q = calloc(p->cap, sizeof(*p->q));
	p->tid = calloc(n ? n : 1, sizeof(*p->tid));
	p->st = calloc(n ? n : 1, sizeof(*p->st));
	p->ctx = calloc(n ? n : 1, sizeof(*p->ctx));
	if (!p->q || !p->tid || !p->st || !p->ctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	raise_nofile(p->cap + n);
	for (unsigned i = 0; i < n; i++) {
		struct ctx *w = &p->ctx[i];
		*w = (struct ctx){ .repo = c->repo,
			           .mode = c->mode,
			           .o = c->o,
			           .st = &p->st[i],
			           .include = c->include,
			           .exclude = c->exclude,
			           .rootfd = c->rootfd,
			           .root = c->root,
			           .pool = p };
		cairn_idset_init(&w->links);
		int e = cli_thread_create(&p->tid[i], worker, w);
		if (e != 0) {
			log_warn("cannot start restore thread %u of %u: %s; going on with %u",
			         i + 1, n, strerror(e), i);
			break;
		}
		p->started++;
	}
	return 0;
}

/* Run what is queued, wait for the workers to finish theirs, stop them and add
 * their counts to c's. */
static void pool_finish(struct pool *p, struct ctx *c)
{
	pthread_mutex_lock(&p->lock);
	while (p->count) {
		struct job *j = p->q[p->head];
		p->head = (p->head + 1) % p->cap;
		p->count--;
		pthread_mutex_unlock(&p->lock);
		run_job(c, j);
		pthread_mutex_lock(&p->lock);
	}
	while (p->busy)
		pthread_cond_wait(&p->idle, &p->lock);
	p->closing = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->started; i++) {
		pthread_join(p->tid[i], NULL);
		struct restorer_stats *w = &p->st[i];
		c->st->files += w->files;
		c->st->dirs += w->dirs;
		c->st->links += w->links;
		c->st->others += w->others;
		c->st->bytes += w->bytes;
		c->st->warnings += w->warnings;
		ctx_release(&p->ctx[i]);
	}
}

static void pool_release(struct pool *p)
{
	free(p->q);
	free(p->tid);
	free(p->st);
	free(p->ctx);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->report_lock);
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->idle);
}

static int open_target(const struct ctx *c, const char *target)
{
	if (c->mode == VERIFY) {
		int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		return fd >= 0 ? fd
		               : cairn_err_set(-errno, "cannot open target '%s': %s", target,
		                               strerror(errno));
	}
	int r = cairn_mkdir_p(target, 0700);
	if (r < 0)
		return cairn_err_wrap(r, "cannot create the target");
	int fd = open(target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot open target '%s': %s", target,
		                     strerror(errno));
	if (c->mode == RESTORE)
		remove_stale_tmps(fd);
	return fd;
}

static int run(cairn_repo *repo, enum mode mode, const struct cairn_snapshot *snap,
               const struct restorer_opts *o, struct restorer_stats *st)
{
	struct pool pool = { .lock = PTHREAD_MUTEX_INITIALIZER,
		             .work = PTHREAD_COND_INITIALIZER,
		             .idle = PTHREAD_COND_INITIALIZER,
		             .report_lock = PTHREAD_MUTEX_INITIALIZER,
		             .pid = (int)getpid() };
	struct ctx c = { .repo = repo,
		         .mode = mode,
		         .o = o,
		         .st = st,
		         .snap = snap,
		         .rootfd = -1,
		         .root = geteuid() == 0,
		         .pool = &pool };
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	struct cairn_tree_entry e;
	const char *path = o->path ? o->path : "/";

	*st = (struct restorer_stats){ 0 };
	c.include = o->include && pattern_list_count(o->include) ? o->include : NULL;
	c.exclude = o->exclude && pattern_list_count(o->exclude) ? o->exclude : NULL;
	cairn_idset_init(&c.links);
	cairn_prefetch *pf = NULL;
	atomic_init(&pool.fatal, 0);
	atomic_init(&pool.tmp_seq, 0);
	/* Check the path before touching the target. */
	int r = cairn_repo_tree_lookup_path(repo, &snap->root, path, &e);
	/* From a remote repository, the data is fetched ahead of the writes (not
	 * for a selection by patterns: most of it would not be read). */
	if (r >= 0 && mode != DRY_RUN && !c.include && !c.exclude)
		pf = restorer_read_ahead(repo, &snap->root, e.parent ? e.node : NULL);
	if (r >= 0)
		cairn_tree_free(e.parent);
	/* A dry run creates nothing, not even the target. */
	if (r >= 0 && mode != DRY_RUN)
		r = c.rootfd = open_target(&c, o->target);
	if (r >= 0)
		r = cairn_repo_tree_load(repo, &snap->root, &t);
	if (r >= 0)
		r = pool_start(&pool, &c);
	if (r >= 0)
		r = walk_top(&c, &t, path);
	pool_finish(&pool, &c); /* before rootfd goes: the jobs' directories are in it */
	if (atomic_load(&pool.fatal) && (r >= 0 || r == atomic_load(&pool.fatal)))
		r = cairn_err_set(atomic_load(&pool.fatal), "%s", pool.fatal_msg);
	if (interrupt_pending())
		r = interrupt_check(); /* whatever else failed on the way out */
	/* The messages name entries by their path in the snapshot. */
	if ((r == -ENOSPC || r == -EDQUOT) && mode == RESTORE)
		r = cairn_err_wrap(r, "restoring into '%s'", o->target);
	pool_release(&pool);
	cairn_prefetch_stop(pf);
	ctx_release(&c);
	if (c.rootfd >= 0)
		close(c.rootfd);
	return r < 0 ? r : 0;
}

cairn_prefetch *restorer_read_ahead(cairn_repo *repo, const struct cairn_id *root,
                                    const struct cairn_node *node)
{
	cairn_prefetch *pf = NULL;
	const struct cairn_id *from = !node                          ? root
	                              : node->type == CAIRN_NODE_DIR ? &node->subtree
	                                                             : NULL;
	if (from && cairn_repo_prefetch_start(repo, from, &pf) < 0)
		log_debug("no read ahead: %s", cairn_err_msg());
	return pf;
}

int restorer_run(cairn_repo *repo, const struct cairn_snapshot *snap, const struct restorer_opts *o,
                 struct restorer_stats *st)
{
	return run(repo, o->dry_run ? DRY_RUN : RESTORE, snap, o, st);
}

int restorer_verify(cairn_repo *repo, const struct cairn_snapshot *snap,
                    const struct restorer_opts *o, struct restorer_stats *st)
{
	return run(repo, VERIFY, snap, o, st);
}
