/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repository locks: one text file per holder under locks/ (FORMAT.md §11). */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn/store.h"
#include "crypt.h"
#include "cleanup.h"

#define LOCK_FILE_MAX 4096
#define LOCK_MAGIC "cairn-lock 1"

struct cairn_lock {
	char path[PATH_MAX];
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool stop; /* protected by mu */
};

const char *cairn_lock_kind_name(int kind)
{
	switch (kind) {
	case CAIRN_LOCK_SHARED:
		return "shared";
	case CAIRN_LOCK_EXCLUSIVE:
		return "exclusive";
	case CAIRN_LOCK_MOUNT:
		return "mount";
	default:
		return "unknown";
	}
}

static int kind_from_name(const char *s)
{
	for (int k = CAIRN_LOCK_SHARED; k <= CAIRN_LOCK_MOUNT; k++)
		if (strcmp(s, cairn_lock_kind_name(k)) == 0)
			return k;
	return 0;
}

static int locks_dir(char *out, size_t n, const char *repo)
{
	if (snprintf(out, n, "%s/locks", repo) >= (int)n)
		return cairn_err_set(-ENAMETOOLONG, "repository path too long: '%s'", repo);
	return 0;
}

static bool is_lock_name(const char *name)
{
	uint8_t raw[16];
	return cairn_unhex(raw, sizeof(raw), name) == 0;
}

static void this_host(char *out, size_t n)
{
	if (gethostname(out, n - 1) < 0)
		snprintf(out, n, "localhost");
	out[n - 1] = '\0';
}

/* ---- reading lock files ------------------------------------------------- */

/* One "key = value" line of FORMAT.md §11 into info; unknown keys are skipped so a
 * later version can add fields. Returns a bit per field seen. */
static unsigned parse_line(struct cairn_lock_info *info, const char *key, const char *value)
{
	char *end;
	if (strcmp(key, "kind") == 0) {
		info->kind = kind_from_name(value);
		return info->kind ? 1u : 0u;
	}
	if (strcmp(key, "command") == 0) {
		snprintf(info->command, sizeof(info->command), "%s", value);
		return 2u;
	}
	if (strcmp(key, "host") == 0) {
		snprintf(info->host, sizeof(info->host), "%s", value);
		return 4u;
	}
	if (strcmp(key, "pid") == 0 || strcmp(key, "start") == 0) {
		errno = 0;
		long long v = strtoll(value, &end, 10);
		if (errno || end == value || *end || v <= 0)
			return 0;
		if (key[0] == 'p') {
			info->pid = v;
			return v <= INT_MAX ? 8u : 0u;
		}
		info->start = v;
		return 16u;
	}
	return 0;
}

/* -EBADMSG unless every field is present and valid. text is NUL-terminated. */
static int parse_lock(struct cairn_lock_info *info, char *text)
{
	char *save = NULL;
	char *line = strtok_r(text, "\n", &save);
	unsigned seen = 0;

	if (!line || strcmp(line, LOCK_MAGIC) != 0)
		return -EBADMSG;
	while ((line = strtok_r(NULL, "\n", &save))) {
		char *eq = strstr(line, " = ");
		if (!eq)
			return -EBADMSG;
		*eq = '\0';
		seen |= parse_line(info, line, eq + 3);
	}
	return seen == 31u ? 0 : -EBADMSG;
}

static bool holder_dead(const struct cairn_lock_info *info)
{
	char host[256];
	this_host(host, sizeof(host));
	/* A pid means something only on its own host; EPERM means it runs as
	 * another user. */
	return strcmp(host, info->host) == 0 && kill((pid_t)info->pid, 0) < 0 && errno == ESRCH;
}

/* Fill info from locks/<name>. -ENOENT when the file vanished meanwhile. */
static int read_lock(int dfd, const char *name, struct cairn_lock_info *info)
{
	char text[LOCK_FILE_MAX + 1];
	struct stat st;
	_cleanup_close_ int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);

	if (fd < 0 || fstat(fd, &st) < 0)
		return errno == ENOENT ? -ENOENT
		                       : cairn_err_set(-EIO, "cannot read lock '%s': %s", name,
		                                       strerror(errno));
	ssize_t len = read(fd, text, LOCK_FILE_MAX);
	if (len < 0)
		return cairn_err_set(-EIO, "cannot read lock '%s': %s", name, strerror(errno));
	text[len] = '\0';
	*info = (struct cairn_lock_info){ .refreshed = (int64_t)st.st_mtime };
	memcpy(info->name, name, sizeof(info->name)); /* 32 hex digits and NUL (is_lock_name) */
	bool old = time(NULL) - info->refreshed > CAIRN_LOCK_STALE_SECONDS;
	if (parse_lock(info, text) < 0) {
		info->kind = 0;
		info->stale = old;
		return 0;
	}
	info->dead = holder_dead(info);
	info->stale = info->dead || old;
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const struct cairn_lock_info *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return strcmp(x->name, y->name);
}

int cairn_lock_list(const char *repo, struct cairn_lock_info **out, size_t *n)
{
	char dir[PATH_MAX];
	int r = locks_dir(dir, sizeof(dir), repo);
	if (r < 0)
		return r;
	_cleanup_free_ struct cairn_lock_info *v = NULL;
	size_t count = 0, cap = 0;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d && errno != ENOENT)
		return cairn_err_set(-EIO, "cannot read '%s': %s", dir, strerror(errno));
	for (struct dirent *de; d && (de = readdir(d));) {
		if (!is_lock_name(de->d_name))
			continue; /* temp files of a writer, strangers */
		if (count == cap) {
			cap = cap ? 2 * cap : 8;
			struct cairn_lock_info *nv = reallocarray(v, cap, sizeof(*v));
			if (!nv)
				return cairn_err_set(-ENOMEM, "out of memory");
			v = nv;
		}
		r = read_lock(dirfd(d), de->d_name, &v[count]);
		if (r == -ENOENT)
			continue; /* released while we listed */
		if (r < 0)
			return r;
		count++;
	}
	if (count)
		qsort(v, count, sizeof(*v), by_start);
	*out = TAKE_PTR(v);
	*n = count;
	return 0;
}

int cairn_lock_remove(const char *repo, const char *name)
{
	char dir[PATH_MAX], path[PATH_MAX];
	int r = locks_dir(dir, sizeof(dir), repo);

	if (r < 0)
		return r;
	if (!is_lock_name(name))
		return cairn_err_set(-EINVAL, "'%s' is not the name of a lock", name);
	if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
		return cairn_err_set(-ENAMETOOLONG, "repository path too long: '%s'", repo);
	if (unlink(path) < 0)
		return cairn_err_set(errno == ENOENT ? -ENOENT : -EIO,
		                     "cannot remove lock '%s': %s", name, strerror(errno));
	return cairn_fsync_dir(dir);
}

/* ---- conflicts ---------------------------------------------------------- */

static bool conflicts(int mine, const struct cairn_lock_info *other)
{
	if (other->dead || other->kind == CAIRN_LOCK_MOUNT)
		return false;
	/* A file we cannot parse may come from a newer cairn: assume the worst. */
	if (other->kind == 0 || other->kind == CAIRN_LOCK_EXCLUSIVE)
		return true;
	return mine == CAIRN_LOCK_EXCLUSIVE;
}

static void fmt_time(char *buf, size_t n, int64_t t)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (!localtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "@%lld", (long long)t);
}

static int conflict_error(const struct cairn_lock_info *o)
{
	char since[64], stale[128] = "";

	if (o->kind == 0)
		return cairn_err_set(-EBUSY,
		                     "repository is locked by an unreadable lock file "
		                     "'locks/%s' ('cairn unlock' removes it once stale)",
		                     o->name);
	fmt_time(since, sizeof(since), o->start);
	if (o->stale)
		snprintf(stale, sizeof(stale),
		         "; the lock is stale (not refreshed for %lld minutes): 'cairn unlock' "
		         "removes it",
		         (long long)(time(NULL) - o->refreshed) / 60);
	if (o->kind == CAIRN_LOCK_EXCLUSIVE)
		return cairn_err_set(-EBUSY,
		                     "repository is locked exclusively by %s on host %s pid %lld "
		                     "since %s%s",
		                     o->command, o->host, (long long)o->pid, since, stale);
	return cairn_err_set(-EBUSY,
	                     "repository is in use by %s on host %s pid %lld since %s "
	                     "(shared lock)%s",
	                     o->command, o->host, (long long)o->pid, since, stale);
}

/* -EBUSY naming the first holder that conflicts with a lock of kind mine. */
static int check_conflicts(const char *repo, const char *own, int mine)
{
	_cleanup_free_ struct cairn_lock_info *v = NULL;
	size_t n = 0;
	int r = cairn_lock_list(repo, &v, &n);

	for (size_t i = 0; r >= 0 && i < n; i++)
		if (strcmp(v[i].name, own) != 0 && conflicts(mine, &v[i]))
			return conflict_error(&v[i]);
	return r < 0 ? r : 0;
}

/* ---- taking and holding ------------------------------------------------- */

static int format_lock(struct cairn_buf *b, int kind, const char *command)
{
	char host[256];
	this_host(host, sizeof(host));
	return cairn_buf_printf(b,
	                        LOCK_MAGIC "\nkind = %s\ncommand = %s\nhost = %s\npid = %d\n"
	                                   "start = %lld\n",
	                        cairn_lock_kind_name(kind), command, host, (int)getpid(),
	                        (long long)time(NULL));
}

/*
 * Look, write, look again: two processes that race both see each other's file
 * in the second look and both back off, so two conflicting holders never both
 * succeed (the waiters retry after a random delay).
 */
static int try_take(cairn_lock *l, const char *repo, const char *name, int kind,
                    const struct cairn_buf *text)
{
	int r;
	if (kind != CAIRN_LOCK_MOUNT && (r = check_conflicts(repo, name, kind)) < 0)
		return r;
	if ((r = cairn_file_write_atomic(l->path, NULL, text->data, text->len)) < 0)
		return r;
	if (kind != CAIRN_LOCK_MOUNT && (r = check_conflicts(repo, name, kind)) < 0)
		unlink(l->path);
	return r;
}

static void backoff(void)
{
	uint8_t rnd = 0;
	cairn_crypt__random(&rnd, 1);
	struct timespec ts = { 0, (500 + 4 * (long)rnd) * 1000000L };
	nanosleep(&ts, NULL);
}

static void *refresher(void *arg)
{
	cairn_lock *l = arg;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += CAIRN_LOCK_REFRESH_SECONDS;
		if (pthread_cond_timedwait(&l->cond, &l->mu, &until) == ETIMEDOUT && !l->stop)
			utimensat(AT_FDCWD, l->path, NULL, 0);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static int check_args(int kind, const char *command)
{
	if (kind < CAIRN_LOCK_SHARED || kind > CAIRN_LOCK_MOUNT)
		return cairn_err_set(-EINVAL, "lock kind %d is unknown", kind);
	if (!command || !*command || strlen(command) >= 64 || strpbrk(command, "\n\r"))
		return cairn_err_set(-EINVAL, "a lock's command must be one short line");
	return 0;
}

static int lock_new(cairn_lock **out, const char *dir, char name[CAIRN_LOCK_NAME_SIZE])
{
	uint8_t rnd[16];
	int r = cairn_crypt__random(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	cairn_hex(name, rnd, sizeof(rnd));
	cairn_lock *l = calloc(1, sizeof(*l));
	if (!l)
		return cairn_err_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cond, NULL);
	if (snprintf(l->path, sizeof(l->path), "%s/%s", dir, name) >= (int)sizeof(l->path)) {
		l->path[0] = '\0'; /* nothing to unlink */
		cairn_lock_release(l);
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	}
	*out = l;
	return 0;
}

int cairn_lock_acquire(cairn_lock **out, const char *repo, int kind, const char *command,
                       unsigned wait_seconds)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	char dir[PATH_MAX], name[CAIRN_LOCK_NAME_SIZE];
	cairn_lock *l = NULL;
	int r;

	if ((r = check_args(kind, command)) < 0 || (r = locks_dir(dir, sizeof(dir), repo)) < 0)
		return r;
	/* Repositories from before locks existed have no locks/ yet. */
	if ((r = cairn_mkdir_p(dir, 0700)) < 0 || (r = format_lock(&text, kind, command)) < 0 ||
	    (r = lock_new(&l, dir, name)) < 0)
		return r;
	time_t deadline = time(NULL) + wait_seconds;
	while ((r = try_take(l, repo, name, kind, &text)) == -EBUSY && time(NULL) < deadline)
		backoff();
	if (r >= 0 && pthread_create(&l->thread, NULL, refresher, l) != 0)
		r = cairn_err_set(-EIO, "cannot start the lock refresh thread");
	if (r < 0) {
		unlink(l->path);
		l->path[0] = '\0';
		cairn_lock_release(l);
		return r;
	}
	l->thread_started = true;
	*out = l;
	return 0;
}

int cairn_lock_refresh(cairn_lock *l)
{
	if (utimensat(AT_FDCWD, l->path, NULL, 0) < 0)
		return cairn_err_set(errno == ENOENT ? -ENOENT : -EIO,
		                     "lost the repository lock '%s': %s", l->path, strerror(errno));
	return 0;
}

void cairn_lock_release(cairn_lock *l)
{
	if (!l)
		return;
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	if (l->path[0])
		unlink(l->path);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l);
}
