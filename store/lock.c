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

enum { LOST_STALE = 1, LOST_REMOVED };

struct cairn_lock {
	cairn_storage *st; /* borrowed: outlives the lock */
	char name[CAIRN_LOCK_NAME_SIZE];
	struct cairn_buf text; /* written again at each refresh (a new mtime) */
	pthread_t thread;
	bool thread_started;
	bool placed;                    /* the object exists (ours to remove) */
	struct cairn_lock_info *others; /* the other locks at the last look */
	size_t nothers;
	bool looked; /* others is that look's */
	pthread_mutex_t mu;
	pthread_cond_t cond;
	bool mount;     /* a mount's lock: no commit point, so never lost */
	bool stop;      /* protected by mu */
	int lost;       /* LOST_*, or 0; protected by mu */
	time_t last_ok; /* the last successful write; protected by mu */
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
	case CAIRN_LOCK_PRUNE:
		return "prune";
	case CAIRN_LOCK_KEYS:
		return "keys";
	default:
		return "unknown";
	}
}

static int kind_from_name(const char *s)
{
	for (int k = CAIRN_LOCK_SHARED; k <= CAIRN_LOCK_KEYS; k++)
		if (strcmp(s, cairn_lock_kind_name(k)) == 0)
			return k;
	return 0;
}

/* CAIRN_LOCK_STALE_SECONDS, or CAIRN_TEST_LOCK_STALE_SECONDS (>= 6) so that tests
 * of dead hosts need not wait half an hour. Refreshes come six times as often. */
int64_t cairn_lock_stale_seconds(void)
{
	const char *e = getenv("CAIRN_TEST_LOCK_STALE_SECONDS");
	char *end;
	long long v = e && *e ? strtoll(e, &end, 10) : 0;
	return e && *e && *end == '\0' && v >= 6 && v <= CAIRN_LOCK_STALE_SECONDS
	               ? v
	               : CAIRN_LOCK_STALE_SECONDS;
}

static int64_t refresh_seconds(void)
{
	return cairn_lock_stale_seconds() / 6;
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
	if (strcmp(key, "released") == 0) {
		errno = 0;
		long long v = strtoll(value, &end, 10);
		info->released = !errno && end != value && !*end && v > 0;
		return 0; /* optional */
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

/* The texts of locks read or written by this process, by name and size: a
 * refresh writes a lock again as it was, and each one read is a request on S3,
 * made again by every listing (taking a lock lists twice). A lock rewritten as
 * released (FORMAT.md §11) is longer, so it is read again. A small ring: a
 * name not found is simply read again. */
#define SEEN_LOCKS 64
static struct {
	char name[CAIRN_LOCK_NAME_SIZE];
	char *text; /* NUL-terminated */
	size_t len;
} seen[SEEN_LOCKS];
static unsigned seen_next;
static pthread_mutex_t seen_mu = PTHREAD_MUTEX_INITIALIZER;

static void seen_put(const char *name, const void *text, size_t len)
{
	char *copy = malloc(len + 1);
	if (!copy)
		return; /* only a cache */
	memcpy(copy, text, len);
	copy[len] = '\0';
	pthread_mutex_lock(&seen_mu);
	unsigned i = seen_next++ % SEEN_LOCKS;
	free(seen[i].text);
	snprintf(seen[i].name, sizeof(seen[i].name), "%.*s", (int)sizeof(seen[i].name) - 1, name);
	seen[i].text = copy;
	seen[i].len = len;
	pthread_mutex_unlock(&seen_mu);
}

/* Copy the text of lock name, len bytes long, to out (if not NULL). -ENOENT,
 * -ENOMEM. */
static int seen_get(const char *name, size_t len, struct cairn_buf *out)
{
	int r = -ENOENT;
	pthread_mutex_lock(&seen_mu);
	for (unsigned i = 0; r == -ENOENT && i < SEEN_LOCKS; i++)
		if (seen[i].text && seen[i].len == len && strcmp(seen[i].name, name) == 0)
			r = out ? cairn_buf_put(out, seen[i].text, len) : 0;
	pthread_mutex_unlock(&seen_mu);
	return r;
}

/* Fill info from the lock a listing found (its mtime and size are the
 * listing's). -ENOENT when the lock was released meanwhile. */
static int read_lock(cairn_storage *st, const struct cairn_obj_info *o,
                     struct cairn_lock_info *info)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char text[LOCK_FILE_MAX + 1];
	const char *name = o->name;
	int64_t mtime = o->mtime;
	int r = seen_get(name, o->size, &b);
	if (r == -ENOENT) {
		r = cairn_storage_get(st, CAIRN_OBJ_LOCK, name, 0, 0, LOCK_FILE_MAX, &b);
		if (r >= 0 && b.len && !memchr(b.data, '\0', b.len))
			seen_put(name, b.data, b.len);
	}

	if (r == -ENOENT)
		return r;
	*info = (struct cairn_lock_info){ .refreshed = mtime };
	snprintf(info->name, sizeof(info->name), "%.*s", (int)sizeof(info->name) - 1, name);
	bool old = time(NULL) - info->refreshed > cairn_lock_stale_seconds();
	if (r == -EFBIG)
		b.len = 0; /* unparsable */
	else if (r < 0)
		return cairn_err_wrap(r, "cannot read lock '%s'", name);
	memcpy(text, b.data ? (const char *)b.data : "", b.len);
	text[b.len] = '\0';
	if (memchr(text, '\0', b.len) || parse_lock(info, text) < 0) {
		info->kind = 0;
		info->stale = old;
		return 0;
	}
	/* A released lock's holder ended as it should: nothing of it to recover. */
	info->dead = !info->released && holder_dead(info);
	info->stale = info->dead || old || info->released;
	return 0;
}

static int by_start(const void *a, const void *b)
{
	const struct cairn_lock_info *x = a, *y = b;
	if (x->start != y->start)
		return x->start < y->start ? -1 : 1;
	return strcmp(x->name, y->name);
}

struct lock_listing {
	cairn_storage *st;
	const char *skip; /* the caller's own lock: not read (a request on S3) */
	struct cairn_lock_info *v;
	size_t n, cap;
};

static int lock_listed(const struct cairn_obj_info *o, void *payload)
{
	struct lock_listing *l = payload;
	if (l->skip && strcmp(o->name, l->skip) == 0)
		return 0;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		struct cairn_lock_info *nv = reallocarray(l->v, cap, sizeof(*nv));
		if (!nv)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = nv;
		l->cap = cap;
	}
	int r = read_lock(l->st, o, &l->v[l->n]);
	if (r == -ENOENT)
		return 0; /* released while we listed */
	if (r >= 0)
		l->n++;
	return r;
}

static int list_locks(cairn_storage *st, const char *skip, struct cairn_lock_info **out, size_t *n)
{
	struct lock_listing l = { .st = st, .skip = skip };
	int r = cairn_storage_list(st, CAIRN_OBJ_LOCK, lock_listed, &l);
	if (r < 0) {
		free(l.v);
		return r;
	}
	if (l.n > 1)
		qsort(l.v, l.n, sizeof(*l.v), by_start);
	*out = l.v;
	*n = l.n;
	return 0;
}

int cairn_lock_list(cairn_storage *st, struct cairn_lock_info **out, size_t *n)
{
	return list_locks(st, NULL, out, n);
}

int cairn_lock_remove(cairn_storage *st, const char *name)
{
	struct cairn_obj_info info;
	if (!cairn_obj_name_ok(CAIRN_OBJ_LOCK, name))
		return cairn_err_set(-EINVAL, "'%s' is not the name of a lock", name);
	int r = cairn_storage_stat(st, CAIRN_OBJ_LOCK, name, &info);
	if (r == -ENOENT)
		return cairn_err_set(r, "no lock '%s'", name);
	return r < 0 ? r : cairn_storage_remove(st, CAIRN_OBJ_LOCK, name);
}

/* ---- conflicts ---------------------------------------------------------- */

/* FORMAT.md §11: a dead or stale holder has expired, a mount never conflicts;
 * an exclusive lock conflicts with every other; two prunes conflict, and two
 * key changes (a keys lock leaves backups and prunes running). */
static bool conflicts(int mine, const struct cairn_lock_info *o)
{
	if (o->stale || o->kind == CAIRN_LOCK_MOUNT)
		return false;
	/* A file we cannot parse may come from a newer cairn: assume the worst. */
	if (o->kind == 0 || o->kind == CAIRN_LOCK_EXCLUSIVE || mine == CAIRN_LOCK_EXCLUSIVE)
		return true;
	return (mine == CAIRN_LOCK_PRUNE || mine == CAIRN_LOCK_KEYS) && o->kind == mine;
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
	char since[64];

	if (o->kind == 0)
		return cairn_err_set(-EBUSY,
		                     "repository is locked by an unreadable lock file "
		                     "'locks/%s' (it expires once not refreshed for %lld minutes)",
		                     o->name, (long long)cairn_lock_stale_seconds() / 60);
	fmt_time(since, sizeof(since), o->start);
	if (o->kind != CAIRN_LOCK_SHARED)
		return cairn_err_set(-EBUSY,
		                     "repository is locked %s by %s on host %s pid %lld since %s",
		                     o->kind == CAIRN_LOCK_PRUNE  ? "for pruning"
		                     : o->kind == CAIRN_LOCK_KEYS ? "for a key change"
		                                                  : "exclusively",
		                     o->command, o->host, (long long)o->pid, since);
	return cairn_err_set(-EBUSY,
	                     "repository is in use by %s on host %s pid %lld since %s "
	                     "(shared lock)",
	                     o->command, o->host, (long long)o->pid, since);
}

/* -EBUSY naming the first holder that conflicts with a lock of kind mine. The
 * other locks found are kept in l (cairn_lock_others). */
static int check_conflicts(cairn_lock *l, int mine)
{
	struct cairn_lock_info *v = NULL;
	size_t n = 0;
	int r = list_locks(l->st, l->name, &v, &n);

	free(l->others);
	l->others = v;
	l->nothers = n;
	l->looked = r >= 0;
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (conflicts(mine, &v[i]))
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

/* Remove the lock; a storage that refuses this holder deletes (a host whose
 * credentials may only add objects, docs/S3.md §8) gets it written once more
 * with "released", which expires it for every reader (FORMAT.md §11). The
 * text itself stays as it was, for a retry to take the lock again. */
static void withdraw(cairn_lock *l)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	int r = cairn_storage_remove(l->st, CAIRN_OBJ_LOCK, l->name);
	if (r != -EACCES)
		return;
	if ((r = cairn_buf_put(&b, l->text.data, l->text.len)) >= 0 &&
	    (r = cairn_buf_printf(&b, "released = %lld\n", (long long)time(NULL))) >= 0)
		r = cairn_storage_put(l->st, CAIRN_OBJ_LOCK, l->name, b.data, b.len);
	if (r < 0)
		log_debug("cannot release lock '%s': %s", l->name, cairn_err_msg());
}

static int put_lock(cairn_lock *l)
{
	int r = cairn_storage_put(l->st, CAIRN_OBJ_LOCK, l->name, l->text.data, l->text.len);
	if (r >= 0) {
		if (seen_get(l->name, l->text.len, NULL) < 0)
			seen_put(l->name, l->text.data, l->text.len);
		pthread_mutex_lock(&l->mu);
		l->last_ok = time(NULL);
		pthread_mutex_unlock(&l->mu);
	}
	return r;
}

/*
 * Write, then look: two processes that race both see each other's lock in the
 * look and both back off, so two conflicting holders never both succeed (the
 * waiters retry after a random delay). A storage that is strongly consistent
 * for listings after writes (local files, S3 since 2020, Ceph RGW) is what
 * makes this hold. A retry looks first too, so that a waiter does not write
 * and delete its lock over and over beside a holder; the first try does not,
 * which saves a listing in the common case of no other holder.
 */
static int try_take(cairn_lock *l, int kind, bool retry)
{
	int r;
	if (retry && kind != CAIRN_LOCK_MOUNT && (r = check_conflicts(l, kind)) < 0)
		return r;
	if ((r = put_lock(l)) < 0)
		return r;
	l->placed = true;
	if (kind != CAIRN_LOCK_MOUNT && (r = check_conflicts(l, kind)) < 0) {
		withdraw(l);
		l->placed = false;
	}
	return r;
}

static void backoff(void)
{
	uint8_t rnd = 0;
	cairn_crypt__random(&rnd, 1);
	struct timespec ts = { 0, (500 + 4 * (long)rnd) * 1000000L };
	nanosleep(&ts, NULL);
}

/* Whether the holder may still count on its lock: not removed (unlock --all)
 * and written within half the stale period (others take a lock older than that
 * period for a dead holder's, and a suspended machine wakes up past it). A lost
 * lock stays lost and is never written again, so that a removal sticks. */
static int keep_lock(cairn_lock *l, bool write)
{
	struct cairn_obj_info info;
	pthread_mutex_lock(&l->mu);
	long long age = (long long)(time(NULL) - l->last_ok);
	if (!l->mount && !l->lost && age > cairn_lock_stale_seconds() / 2)
		l->lost = LOST_STALE;
	int lost = l->lost;
	pthread_mutex_unlock(&l->mu);
	int r = lost || l->mount ? 0 : cairn_storage_stat(l->st, CAIRN_OBJ_LOCK, l->name, &info);
	if (r == -ENOENT) {
		pthread_mutex_lock(&l->mu);
		lost = l->lost = LOST_REMOVED;
		pthread_mutex_unlock(&l->mu);
	}
	if (lost == LOST_REMOVED)
		return cairn_err_set(-ENOENT, "lost the repository lock 'locks/%s': it was removed",
		                     l->name);
	if (lost)
		return cairn_err_set(-ENOENT,
		                     "lost the repository lock 'locks/%s': not refreshed for %lld "
		                     "seconds",
		                     l->name, age);
	if (r >= 0 && write)
		r = put_lock(l);
	return r < 0 ? cairn_err_wrap(r, "cannot refresh the repository lock") : 0;
}

/* Writes the lock again every refresh period: its new mtime tells others the
 * holder lives (FORMAT.md §11). A failed write is retried at the next period;
 * cairn_lock_refresh() tells the holder whether it has kept the lock. */
static void *refresher(void *arg)
{
	cairn_lock *l = arg;

	pthread_mutex_lock(&l->mu);
	while (!l->stop) {
		struct timespec until;
		clock_gettime(CLOCK_REALTIME, &until);
		until.tv_sec += refresh_seconds();
		if (pthread_cond_timedwait(&l->cond, &l->mu, &until) != ETIMEDOUT || l->stop)
			continue;
		pthread_mutex_unlock(&l->mu);
		keep_lock(l, true);
		pthread_mutex_lock(&l->mu);
	}
	pthread_mutex_unlock(&l->mu);
	return NULL;
}

static int check_args(int kind, const char *command)
{
	if (kind < CAIRN_LOCK_SHARED || kind > CAIRN_LOCK_KEYS)
		return cairn_err_set(-EINVAL, "lock kind %d is unknown", kind);
	if (!command || !*command || strlen(command) >= 64 || strpbrk(command, "\n\r"))
		return cairn_err_set(-EINVAL, "a lock's command must be one short line");
	return 0;
}

static int lock_new(cairn_lock **out, cairn_storage *st, int kind, const char *command)
{
	uint8_t rnd[16];
	int r = cairn_crypt__random(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	cairn_lock *l = calloc(1, sizeof(*l));
	if (!l)
		return cairn_err_set(-ENOMEM, "out of memory");
	l->st = st;
	l->mount = kind == CAIRN_LOCK_MOUNT;
	cairn_hex(l->name, rnd, sizeof(rnd));
	pthread_mutex_init(&l->mu, NULL);
	pthread_cond_init(&l->cond, NULL);
	if ((r = format_lock(&l->text, kind, command)) < 0) {
		cairn_lock_release(l);
		return r;
	}
	*out = l;
	return 0;
}

int cairn_lock_acquire(cairn_lock **out, cairn_storage *st, int kind, const char *command,
                       unsigned wait_seconds)
{
	cairn_lock *l = NULL;
	int r = check_args(kind, command);

	if (r < 0 || (r = lock_new(&l, st, kind, command)) < 0)
		return r;
	time_t deadline = time(NULL) + wait_seconds;
	bool retry = false;
	while ((r = try_take(l, kind, retry)) == -EBUSY && time(NULL) < deadline) {
		backoff();
		retry = true;
	}
	if (r == -ENOSPC)
		r = cairn_err_wrap(r,
		                   "cannot take the repository lock, the disk is full (free some "
		                   "space: a lock takes a few hundred bytes)");
	if (r >= 0 && pthread_create(&l->thread, NULL, refresher, l) != 0)
		r = cairn_err_set(-EIO, "cannot start the lock refresh thread");
	if (r < 0) {
		cairn_lock_release(l);
		return r;
	}
	l->thread_started = true;
	*out = l;
	return 0;
}

const char *cairn_lock_name(const cairn_lock *l)
{
	return l->name;
}

int cairn_lock_others(const cairn_lock *l, struct cairn_lock_info **out, size_t *n)
{
	if (!l->looked)
		return list_locks(l->st, l->name, out, n);
	*out = malloc((l->nothers ? l->nothers : 1) * sizeof(**out));
	if (!*out)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (l->nothers)
		memcpy(*out, l->others, l->nothers * sizeof(**out));
	*n = l->nothers;
	return 0;
}

int cairn_lock_refresh(cairn_lock *l)
{
	/* Written again only when the refresher is due soon: checking costs one
	 * request, a commit point need not cost two. */
	pthread_mutex_lock(&l->mu);
	bool due = time(NULL) - l->last_ok >= refresh_seconds() / 2;
	pthread_mutex_unlock(&l->mu);
	return keep_lock(l, due);
}

void cairn_lock_release(cairn_lock *l)
{
	char why[1024]; /* the caller's failure, which a release often follows */
	if (!l)
		return;
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	if (l->thread_started) {
		pthread_mutex_lock(&l->mu);
		l->stop = true;
		pthread_cond_signal(&l->cond);
		pthread_mutex_unlock(&l->mu);
		pthread_join(l->thread, NULL);
	}
	if (l->placed)
		withdraw(l);
	cairn_buf_release(&l->text);
	free(l->others);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->mu);
	free(l);
	cairn_err_set(0, "%s", why); /* a failed release was logged, and is not it */
}
