/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Repository locks (FORMAT.md §11): conflicts, stale holders, the file format. */
#include "check.h"

#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn/store.h"
#include "cleanup.h"
#include "storage.h"

/* Write locks/<name> by hand, as another process (or another cairn) would. */
static void write_lock(const char *name, const char *text, time_t mtime)
{
	char dir[PATH_MAX - 64], path[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/locks", check_tmpdir());
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	CHECK_OK(cairn_mkdir_p(dir, 0700));
	CHECK_OK(cairn_file_write_atomic(path, NULL, text, strlen(text)));
	if (mtime) {
		struct timespec ts[2] = { { mtime, 0 }, { mtime, 0 } };
		CHECK(utimensat(AT_FDCWD, path, ts, 0) == 0);
	}
}

static void lock_text(char *buf, size_t n, const char *kind, const char *host, long pid)
{
	snprintf(buf, n,
	         "cairn-lock 1\nkind = %s\ncommand = test\nhost = %s\npid = %ld\nstart = %lld\n",
	         kind, host, pid, (long long)time(NULL));
}

static void my_host(char *buf, size_t n)
{
	CHECK(gethostname(buf, n - 1) == 0);
	buf[n - 1] = '\0';
}

/* A pid that certainly does not run: a child that has exited and been reaped. */
static pid_t dead_pid(void)
{
	pid_t pid = fork();
	CHECK(pid >= 0);
	if (pid == 0)
		_exit(0);
	CHECK(waitpid(pid, NULL, 0) == pid);
	return pid;
}

/* The test's directory as a local storage. */
static cairn_storage *open_st(void)
{
	cairn_storage *st;
	CHECK_OK(cairn_storage_open(&st, check_tmpdir(), NULL));
	return st;
}

static size_t count_locks(void)
{
	struct cairn_lock_info *v = NULL;
	size_t n = 0;
	cairn_storage *st = open_st();
	CHECK_OK(cairn_lock_list(st, &v, &n));
	cairn_storage_close(st);
	free(v);
	return n;
}

static void test_lock__shared_and_exclusive(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *a = NULL, *b = NULL, *x = NULL;

	CHECK_OK(cairn_lock_acquire(&a, repo, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_acquire(&b, repo, CAIRN_LOCK_SHARED, "check", 0));
	CHECK_EQ(count_locks(), 2);
	CHECK_ERR(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "in use by") != NULL);
	CHECK(x == NULL);
	CHECK_EQ(count_locks(), 2); /* the failed attempt left nothing behind */
	cairn_lock_release(a);
	cairn_lock_release(b);
	CHECK_EQ(count_locks(), 0);

	CHECK_OK(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	CHECK_ERR(cairn_lock_acquire(&a, repo, CAIRN_LOCK_SHARED, "backup", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "locked exclusively by prune on host") != NULL);
	char pid[32];
	snprintf(pid, sizeof(pid), "pid %d since", (int)getpid());
	CHECK(strstr(cairn_err_msg(), pid) != NULL);
	CHECK_ERR(cairn_lock_acquire(&a, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0), -EBUSY);
	cairn_lock_release(x);
	cairn_lock_release(NULL);
	cairn_storage_close(repo);
}

/* The others a lock's acquire saw: every other lock then, not itself, and not
 * one taken later; a mount lock, which takes no look, lists them when asked. */
static void test_lock__others(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *a = NULL, *b = NULL, *m = NULL, *c = NULL;
	struct cairn_lock_info *v = NULL;
	size_t n = 99;

	CHECK_OK(cairn_lock_acquire(&a, repo, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_others(a, &v, &n));
	CHECK_EQ(n, 0);
	free(v);
	CHECK_OK(cairn_lock_acquire(&b, repo, CAIRN_LOCK_SHARED, "check", 0));
	CHECK_OK(cairn_lock_others(b, &v, &n));
	CHECK_EQ(n, 1);
	CHECK(strcmp(v[0].name, cairn_lock_name(a)) == 0 && strcmp(v[0].command, "backup") == 0);
	free(v);
	CHECK_OK(cairn_lock_others(a, &v, &n)); /* as a's acquire saw them */
	CHECK_EQ(n, 0);
	free(v);
	CHECK_OK(cairn_lock_acquire(&m, repo, CAIRN_LOCK_MOUNT, "mount", 0));
	CHECK_OK(cairn_lock_acquire(&c, repo, CAIRN_LOCK_SHARED, "copy", 0));
	CHECK_OK(cairn_lock_others(m, &v, &n)); /* now: a, b and c */
	CHECK_EQ(n, 3);
	for (size_t i = 0; i < n; i++)
		CHECK(strcmp(v[i].name, cairn_lock_name(m)) != 0);
	free(v);
	cairn_lock_release(c);
	cairn_lock_release(m);
	cairn_lock_release(b);
	cairn_lock_release(a);
	cairn_storage_close(repo);
}

static void test_lock__prune_runs_beside_backups(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *b = NULL, *p = NULL, *q = NULL, *x = NULL;

	CHECK_OK(cairn_lock_acquire(&b, repo, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_acquire(&p, repo, CAIRN_LOCK_PRUNE, "prune", 0));
	CHECK_ERR(cairn_lock_acquire(&q, repo, CAIRN_LOCK_PRUNE, "prune", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "locked for pruning by prune") != NULL);
	CHECK_ERR(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "sync", 0), -EBUSY);
	cairn_lock_release(b);
	CHECK_ERR(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "sync", 0), -EBUSY);
	cairn_lock_release(p);
	CHECK_OK(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "sync", 0));
	CHECK_ERR(cairn_lock_acquire(&p, repo, CAIRN_LOCK_PRUNE, "prune", 0), -EBUSY);
	cairn_lock_release(x);
	CHECK(strcmp(cairn_lock_kind_name(CAIRN_LOCK_PRUNE), "prune") == 0);
	cairn_storage_close(repo);
}

/* Key changes exclude each other and exclusive locks, and run beside backups,
 * prunes and mounts. */
static void test_lock__keys(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *b = NULL, *p = NULL, *k = NULL, *q = NULL, *x = NULL;

	CHECK_OK(cairn_lock_acquire(&b, repo, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_acquire(&p, repo, CAIRN_LOCK_PRUNE, "prune", 0));
	CHECK_OK(cairn_lock_acquire(&k, repo, CAIRN_LOCK_KEYS, "key", 0));
	CHECK_ERR(cairn_lock_acquire(&q, repo, CAIRN_LOCK_KEYS, "key", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "locked for a key change by key") != NULL);
	cairn_lock_release(b);
	cairn_lock_release(p);
	CHECK_ERR(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "sync", 0), -EBUSY);
	cairn_lock_release(k);
	CHECK_OK(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "sync", 0));
	CHECK_ERR(cairn_lock_acquire(&k, repo, CAIRN_LOCK_KEYS, "key", 0), -EBUSY);
	cairn_lock_release(x);
	CHECK(strcmp(cairn_lock_kind_name(CAIRN_LOCK_KEYS), "keys") == 0);
	cairn_storage_close(repo);
}

/* Tests of dead hosts shorten the stale period; nothing else does. */
static void test_lock__test_stale_period(void)
{
	CHECK_EQ(cairn_lock_stale_seconds(), CAIRN_LOCK_STALE_SECONDS);
	setenv("CAIRN_TEST_LOCK_STALE_SECONDS", "12", 1);
	CHECK_EQ(cairn_lock_stale_seconds(), 12);
	setenv("CAIRN_TEST_LOCK_STALE_SECONDS", "5", 1); /* below the floor */
	CHECK_EQ(cairn_lock_stale_seconds(), CAIRN_LOCK_STALE_SECONDS);
	setenv("CAIRN_TEST_LOCK_STALE_SECONDS", "12x", 1);
	CHECK_EQ(cairn_lock_stale_seconds(), CAIRN_LOCK_STALE_SECONDS);
	unsetenv("CAIRN_TEST_LOCK_STALE_SECONDS");
}

static void test_lock__mount_conflicts_with_nothing(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *m = NULL, *x = NULL, *m2 = NULL;

	CHECK_OK(cairn_lock_acquire(&m, repo, CAIRN_LOCK_MOUNT, "mount", 0));
	CHECK_OK(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	CHECK_OK(cairn_lock_acquire(&m2, repo, CAIRN_LOCK_MOUNT, "mount", 0));
	CHECK_EQ(count_locks(), 3);
	cairn_lock_release(m);
	cairn_lock_release(m2);
	cairn_lock_release(x);
	cairn_storage_close(repo);
}

static void test_lock__file_format(void)
{
	cairn_storage *repo = open_st();
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL;
	char host[256];
	size_t n = 0;

	my_host(host, sizeof(host));
	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK_EQ(n, 1);
	CHECK_EQ(strlen(v[0].name), 32);
	CHECK_EQ(v[0].kind, CAIRN_LOCK_EXCLUSIVE);
	CHECK(strcmp(v[0].command, "prune") == 0 && strcmp(v[0].host, host) == 0);
	CHECK_EQ(v[0].pid, getpid());
	CHECK(v[0].start > 0 && !v[0].dead && !v[0].stale);

	char path[PATH_MAX], expect[512];
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	snprintf(path, sizeof(path), "%s/locks/%s", check_tmpdir(), v[0].name);
	CHECK_OK(cairn_file_slurp(path, 4096, &text));
	snprintf(expect, sizeof(expect),
	         "cairn-lock 1\nkind = exclusive\ncommand = prune\nhost = %s\npid = %d\nstart = "
	         "%lld\n",
	         host, (int)getpid(), (long long)v[0].start);
	CHECK(text.len == strlen(expect) && memcmp(text.data, expect, text.len) == 0);
	free(v);
	cairn_lock_release(l);
	CHECK(access(path, F_OK) < 0);
	cairn_storage_close(repo);
}

static void test_lock__dead_pid_is_ignored(void)
{
	cairn_storage *repo = open_st();
	const char *name = "0123456789abcdef0123456789abcdef";
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL;
	char host[256], text[512];
	size_t n = 0;

	my_host(host, sizeof(host));
	lock_text(text, sizeof(text), "exclusive", host, (long)dead_pid());
	write_lock(name, text, 0);
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK(n == 1 && v[0].dead && v[0].stale);
	free(v);
	/* Its holder is gone for sure: it blocks nobody. */
	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	cairn_lock_release(l);
	CHECK_OK(cairn_lock_remove(repo, name));
	CHECK_EQ(count_locks(), 0);
	CHECK_ERR(cairn_lock_remove(repo, name), -ENOENT);
	CHECK_ERR(cairn_lock_remove(repo, "../config"), -EINVAL);
	cairn_storage_close(repo);
}

static void test_lock__old_lock_expires(void)
{
	cairn_storage *repo = open_st();
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL;
	char text[512];
	size_t n = 0;

	/* Another host: its pid says nothing here, only its age does. */
	lock_text(text, sizeof(text), "exclusive", "elsewhere.example", 1);
	write_lock("00000000000000000000000000000001", text, 0);
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK(n == 1 && !v[0].dead && !v[0].stale);
	free(v);
	write_lock("00000000000000000000000000000001", text,
	           time(NULL) - CAIRN_LOCK_STALE_SECONDS - 60);
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK(n == 1 && !v[0].dead && v[0].stale);
	free(v);
	/* Not refreshed for the stale period: its host is gone, it blocks nobody
	 * (FORMAT.md §11), and `cairn unlock` removes it. */
	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	cairn_lock_release(l);
	/* Fresh again, it blocks. */
	write_lock("00000000000000000000000000000001", text, 0);
	CHECK_ERR(cairn_lock_acquire(&l, repo, CAIRN_LOCK_SHARED, "backup", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "elsewhere.example") != NULL);
	cairn_storage_close(repo);
}

static void test_lock__unreadable_file_blocks(void)
{
	cairn_storage *repo = open_st();
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL;
	size_t n = 0;

	write_lock("ffffffffffffffffffffffffffffffff", "cairn-lock 2\nkind = mystery\n", 0);
	write_lock("not-a-lock", "ignored", 0);
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK(n == 1 && v[0].kind == 0 && !v[0].stale);
	free(v);
	CHECK_ERR(cairn_lock_acquire(&l, repo, CAIRN_LOCK_SHARED, "backup", 0), -EBUSY);
	CHECK(strstr(cairn_err_msg(), "unreadable") != NULL);
	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_MOUNT, "mount", 0));
	cairn_lock_release(l);
	cairn_storage_close(repo);
}

static void test_lock__refresh_and_loss(void)
{
	cairn_storage *repo = open_st();
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL;
	size_t n = 0;

	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	CHECK_OK(cairn_lock_list(repo, &v, &n));
	CHECK_EQ(n, 1);
	char path[PATH_MAX];
	snprintf(path, sizeof(path), "%s/locks/%s", check_tmpdir(), v[0].name);
	free(v);
	struct timespec old[2] = { { 1000, 0 }, { 1000, 0 } };
	CHECK(utimensat(AT_FDCWD, path, old, 0) == 0);
	/* Just written: a refresh only checks that the lock is there (a commit
	 * point costs one request)... */
	CHECK_OK(cairn_lock_refresh(l));
	struct stat st;
	CHECK(stat(path, &st) == 0 && st.st_mtime == 1000);
	/* ...and writes it again once a refresh is due (at once with a 6 s stale
	 * period, whose refreshes come every second). */
	setenv("CAIRN_TEST_LOCK_STALE_SECONDS", "6", 1);
	CHECK_OK(cairn_lock_refresh(l));
	unsetenv("CAIRN_TEST_LOCK_STALE_SECONDS");
	CHECK(stat(path, &st) == 0 && st.st_mtime > 1000);
	/* `cairn unlock --all` took it away: the holder must notice. */
	CHECK(unlink(path) == 0);
	CHECK_ERR(cairn_lock_refresh(l), -ENOENT);
	cairn_lock_release(l);
	cairn_storage_close(repo);
}

static void test_lock__wait_then_give_up(void)
{
	cairn_storage *repo = open_st();
	cairn_lock *x = NULL, *l = NULL;

	CHECK_OK(cairn_lock_acquire(&x, repo, CAIRN_LOCK_EXCLUSIVE, "prune", 0));
	time_t t0 = time(NULL);
	CHECK_ERR(cairn_lock_acquire(&l, repo, CAIRN_LOCK_SHARED, "backup", 1), -EBUSY);
	CHECK(time(NULL) >= t0 + 1);
	cairn_lock_release(x);
	CHECK_OK(cairn_lock_acquire(&l, repo, CAIRN_LOCK_SHARED, "backup", 1));
	cairn_lock_release(l);
	cairn_storage_close(repo);
}

/* ---- a storage that refuses deletes (a host whose credentials only add) ---- */

static int nd_get(void *self, const char *rel, uint64_t off, uint64_t len, size_t max,
                  struct cairn_buf *out)
{
	char name[CAIRN_OBJ_NAME_MAX];
	int kind;
	CHECK_OK(cairn_obj_parse(rel, &kind, name));
	return cairn_storage_get(self, kind, name, off, len, max, out);
}

static int nd_put(void *self, const char *rel, const void *data, size_t len)
{
	char name[CAIRN_OBJ_NAME_MAX];
	int kind;
	CHECK_OK(cairn_obj_parse(rel, &kind, name));
	return cairn_storage_put(self, kind, name, data, len);
}

static int nd_stat(void *self, const char *rel, struct cairn_obj_info *out)
{
	char name[CAIRN_OBJ_NAME_MAX];
	int kind;
	CHECK_OK(cairn_obj_parse(rel, &kind, name));
	return cairn_storage_stat(self, kind, name, out);
}

struct nd_listing {
	int (*cb)(const char *rest, const struct cairn_obj_info *o, void *payload);
	void *payload;
};

static int nd_listed(const struct cairn_obj_info *o, void *payload)
{
	struct nd_listing *l = payload;
	return l->cb(o->name, o, l->payload);
}

static int nd_list(void *self, const char *dir,
                   int (*cb)(const char *rest, const struct cairn_obj_info *o, void *payload),
                   void *payload)
{
	struct nd_listing l = { cb, payload };
	CHECK(strcmp(dir, "locks") == 0);
	return cairn_storage_list(self, CAIRN_OBJ_LOCK, nd_listed, &l);
}

static int nd_remove(void *self, const char *rel)
{
	(void)self;
	return cairn_err_set(-EACCES, "DELETE %s: AccessDenied", rel);
}

static unsigned nd_concurrency(void *self)
{
	(void)self;
	return 1;
}

static void nd_close(void *self)
{
	cairn_storage_close(self);
}

static const struct cairn_storage_ops no_delete_ops = {
	.caps = CAIRN_STORAGE_MTIME,
	.concurrency = nd_concurrency,
	.get = nd_get,
	.put = nd_put,
	.stat = nd_stat,
	.list = nd_list,
	.remove = nd_remove,
	.close = nd_close,
};

/* A holder that may not delete its lock writes it again released (FORMAT.md
 * §11): expired at once for every reader, not after the stale period. */
static void test_lock__released_when_delete_refused(void)
{
	cairn_storage *st = open_st(), *nd = NULL;
	struct cairn_lock_info *v = NULL;
	cairn_lock *l = NULL, *x = NULL;
	size_t n = 0;

	CHECK_OK(cairn_storage__new(&nd, &no_delete_ops, open_st(), "nd", "nd", "nd",
	                            check_tmpdir()));
	CHECK_OK(cairn_lock_acquire(&l, nd, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_ERR(cairn_lock_acquire(&x, st, CAIRN_LOCK_EXCLUSIVE, "sync", 0), -EBUSY);
	cairn_lock_release(l);
	CHECK_OK(cairn_lock_list(st, &v, &n));
	CHECK_EQ(n, 1); /* still there: the storage refused the delete */
	CHECK(v[0].released && v[0].stale && !v[0].dead);
	CHECK_EQ(v[0].kind, CAIRN_LOCK_SHARED);
	free(v);
	/* it blocks nobody; the admin's unlock removes it */
	CHECK_OK(cairn_lock_acquire(&x, st, CAIRN_LOCK_EXCLUSIVE, "sync", 0));
	cairn_lock_release(x);
	CHECK_OK(cairn_lock_list(st, &v, &n));
	CHECK_EQ(n, 1);
	CHECK_OK(cairn_lock_remove(st, v[0].name));
	free(v);
	/* Refused, it leaves its lock released: it blocks nobody. */
	CHECK_OK(cairn_lock_acquire(&x, st, CAIRN_LOCK_EXCLUSIVE, "sync", 0));
	CHECK_ERR(cairn_lock_acquire(&l, nd, CAIRN_LOCK_SHARED, "backup", 0), -EBUSY);
	CHECK_OK(cairn_lock_list(st, &v, &n));
	CHECK_EQ(n, 2);
	for (size_t i = 0; i < n; i++)
		CHECK(v[i].kind == CAIRN_LOCK_EXCLUSIVE ? !v[i].released : v[i].released);
	CHECK_OK(cairn_lock_remove(st, v[0].kind == CAIRN_LOCK_SHARED ? v[0].name : v[1].name));
	free(v);
	cairn_lock_release(x);
	CHECK_OK(cairn_lock_acquire(&l, nd, CAIRN_LOCK_SHARED, "backup", 0));
	CHECK_OK(cairn_lock_list(st, &v, &n));
	CHECK_EQ(n, 1);
	CHECK(!v[0].released && !v[0].stale);
	free(v);
	cairn_lock_release(l);
	cairn_storage_close(nd);
	cairn_storage_close(st);
}

/* Exclusive takers that race, each writing its lock and then looking: two of
 * them never hold at once, and every one gets its turn. */
struct race {
	cairn_storage *st;
	atomic_int holders, most, taken, failed;
};

static void *racer(void *arg)
{
	struct race *r = arg;
	for (int i = 0; i < 3; i++) {
		cairn_lock *l = NULL;
		if (cairn_lock_acquire(&l, r->st, CAIRN_LOCK_EXCLUSIVE, "race", 60) < 0) {
			atomic_fetch_add(&r->failed, 1);
			continue;
		}
		int now = atomic_fetch_add(&r->holders, 1) + 1, most = atomic_load(&r->most);
		while (now > most && !atomic_compare_exchange_weak(&r->most, &most, now))
			;
		nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
		atomic_fetch_sub(&r->holders, 1);
		cairn_lock_release(l);
		atomic_fetch_add(&r->taken, 1);
	}
	return NULL;
}

static void test_lock__racing_exclusive_takers(void)
{
	struct race r = { .st = open_st() };
	pthread_t t[4];
	for (size_t i = 0; i < 4; i++)
		CHECK(pthread_create(&t[i], NULL, racer, &r) == 0);
	for (size_t i = 0; i < 4; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(atomic_load(&r.failed), 0);
	CHECK_EQ(atomic_load(&r.taken), 12);
	CHECK_EQ(atomic_load(&r.most), 1);
	CHECK_EQ(count_locks(), 0);
	cairn_storage_close(r.st);
}

static void test_lock__bad_arguments(void)
{
	cairn_lock *l = NULL;
	cairn_storage *st = open_st();
	CHECK_ERR(cairn_lock_acquire(&l, st, 9, "x", 0), -EINVAL);
	CHECK_ERR(cairn_lock_acquire(&l, st, CAIRN_LOCK_SHARED, "a\nb", 0), -EINVAL);
	CHECK_ERR(cairn_lock_acquire(&l, st, CAIRN_LOCK_SHARED, "", 0), -EINVAL);
	CHECK(strcmp(cairn_lock_kind_name(CAIRN_LOCK_MOUNT), "mount") == 0);
	cairn_storage_close(st);
}

int main(void)
{
	RUN(test_lock__shared_and_exclusive);
	RUN(test_lock__others);
	RUN(test_lock__keys);
	RUN(test_lock__mount_conflicts_with_nothing);
	RUN(test_lock__file_format);
	RUN(test_lock__dead_pid_is_ignored);
	RUN(test_lock__old_lock_expires);
	RUN(test_lock__prune_runs_beside_backups);
	RUN(test_lock__test_stale_period);
	RUN(test_lock__unreadable_file_blocks);
	RUN(test_lock__refresh_and_loss);
	RUN(test_lock__wait_then_give_up);
	RUN(test_lock__bad_arguments);
	RUN(test_lock__released_when_delete_refused);
	RUN(test_lock__racing_exclusive_takers);
	return 0;
}
