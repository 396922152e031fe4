/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The storage interface: the object layout, and the local backend's operations. */
#include "check.h"

#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn/storage.h"
#include "cairn/store.h"
#include "cleanup.h"

static const char hex64[] = "ab00000000000000000000000000000000000000000000000000000000000001";

static void test_storage__layout(void)
{
	char rel[CAIRN_OBJ_REL_MAX], name[CAIRN_OBJ_NAME_MAX];
	int kind = 0;
	static const struct {
		int kind;
		const char *name, *rel;
	} ok[] = {
		{ CAIRN_OBJ_CONFIG, "", "config" },
		{ CAIRN_OBJ_KEY, "0123456789abcdef", "keys/0123456789abcdef" },
		{ CAIRN_OBJ_PACK, hex64,
		  "packs/ab/"
		  "ab00000000000000000000000000000000000000000000000000000000000001" },
		{ CAIRN_OBJ_INDEX, hex64,
		  "indexes/"
		  "ab00000000000000000000000000000000000000000000000000000000000001" },
		{ CAIRN_OBJ_SNAPSHOT, hex64,
		  "snapshots/"
		  "ab00000000000000000000000000000000000000000000000000000000000001" },
		{ CAIRN_OBJ_LOCK, "0123456789abcdef0123456789abcdef",
		  "locks/0123456789abcdef0123456789abcdef" },
		{ CAIRN_OBJ_PRUNE, "0123456789abcdef0123456789abcdef",
		  "prune/0123456789abcdef0123456789abcdef" },
	};
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		CHECK_OK(cairn_obj_rel(rel, ok[i].kind, ok[i].name));
		CHECK(strcmp(rel, ok[i].rel) == 0);
		CHECK_OK(cairn_obj_parse(rel, &kind, name));
		CHECK_EQ(kind, ok[i].kind);
		CHECK(strcmp(name, ok[i].name) == 0);
	}
	/* Names with another length, upper case, a path or a NUL spelling are refused. */
	CHECK_ERR(cairn_obj_rel(rel, CAIRN_OBJ_KEY, "0123456789ABCDEF"), -EINVAL);
	CHECK_ERR(cairn_obj_rel(rel, CAIRN_OBJ_KEY, "0123456789abcde"), -EINVAL);
	CHECK_ERR(cairn_obj_rel(rel, CAIRN_OBJ_SNAPSHOT, "../config"), -EINVAL);
	CHECK_ERR(cairn_obj_rel(rel, CAIRN_OBJ_CONFIG, "x"), -EINVAL);
	CHECK_ERR(cairn_obj_rel(rel, 0, ""), -EINVAL);
	CHECK_ERR(cairn_obj_rel(rel, CAIRN_OBJ_KIND_MAX + 1, ""), -EINVAL);
	static const char *const bad[] = {
		"index/data.mdb",
		"tmp/pack.tmp.abc",
		"keys/0123456789abcdef.tmp",
		"packs/ac/ab00000000000000000000000000000000000000000000000000000000000001",
		"packs/ab00000000000000000000000000000000000000000000000000000000000001",
		"configx",
		"locks/sync-0123.flock",
	};
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		CHECK_ERR(cairn_obj_parse(bad[i], &kind, name), -EINVAL);
}

static cairn_storage *open_local(void)
{
	char tmp[PATH_MAX];
	cairn_storage *st;
	snprintf(tmp, sizeof(tmp), "%s/tmp", check_tmpdir());
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_OK(cairn_storage_open(&st, check_tmpdir(), NULL));
	CHECK(!(cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE));
	CHECK(strcmp(cairn_storage_state_dir(st), check_tmpdir()) == 0);
	return st;
}

static void test_storage__local_get_put(void)
{
	cairn_storage *st = open_local();
	struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_obj_info info;
	char path[PATH_MAX];
	struct stat sb;

	CHECK_ERR(cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 0, 0, 100, &b), -ENOENT);
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_CONFIG, "", "hello world", 11));
	CHECK_OK(cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 0, 0, 100, &b));
	CHECK(b.len == 11 && memcmp(b.data, "hello world", 11) == 0);
	CHECK_OK(cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 6, 5, 100, &b));
	CHECK(b.len == 5 && memcmp(b.data, "world", 5) == 0);
	CHECK_ERR(cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 6, 6, 100, &b), -EBADMSG);
	CHECK_ERR(cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 0, 0, 10, &b), -EFBIG);
	CHECK_OK(cairn_storage_stat(st, CAIRN_OBJ_CONFIG, "", &info));
	CHECK_EQ(info.size, 11);

	/* A pack goes under its fan-out directory, created on the way, mode 0600. */
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_PACK, hex64, "pack", 4));
	snprintf(path, sizeof(path), "%s/packs/ab/%s", check_tmpdir(), hex64);
	CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0600 && sb.st_size == 4);
	CHECK_OK(cairn_storage_remove(st, CAIRN_OBJ_PACK, hex64));
	CHECK(stat(path, &sb) < 0 && errno == ENOENT);
	CHECK_OK(cairn_storage_remove(st, CAIRN_OBJ_PACK, hex64)); /* gone is fine */
	CHECK_ERR(cairn_storage_put(st, CAIRN_OBJ_PACK, "ab", "x", 1), -EINVAL);
	cairn_buf_release(&b);
	cairn_storage_close(st);
}

static void test_storage__local_files(void)
{
	cairn_storage *st = open_local();
	char tmp[PATH_MAX], out[PATH_MAX];
	uint8_t sha[32], want[32];
	uint64_t size = 0;
	const char data[] = "a pack's bytes";

	snprintf(tmp, sizeof(tmp), "%s/pack.tmp.XXXXXX", cairn_storage_tmp_dir(st));
	int fd = mkostemp(tmp, O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(cairn_write_all(fd, data, sizeof(data)));
	CHECK_OK(cairn_storage_put_tmp(st, CAIRN_OBJ_PACK, hex64, tmp, fd, sizeof(data)));
	close(fd);
	CHECK(access(tmp, F_OK) < 0); /* taken over */

	snprintf(out, sizeof(out), "%s/copy", check_tmpdir());
	fd = open(out, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_OK(cairn_write_all(fd, "junk to be truncated first", 26));
	CHECK_OK(cairn_storage_get_file(st, CAIRN_OBJ_PACK, hex64, fd, 1000, sha, &size));
	CHECK_EQ(size, sizeof(data));
	CHECK_OK(cairn_sha256(data, sizeof(data), want));
	CHECK(memcmp(sha, want, 32) == 0);
	/* put_file copies: the source stays. */
	CHECK_OK(cairn_storage_put_file(st, CAIRN_OBJ_SNAPSHOT, hex64, fd, 5));
	/* A pack is stored only under the SHA-256 of its content (FORMAT.md §6.1). */
	char named[65], wrong[65];
	cairn_hex(named, want, 32);
	want[0] ^= 1;
	cairn_hex(wrong, want, 32);
	CHECK_ERR(cairn_storage_put_file(st, CAIRN_OBJ_PACK, wrong, fd, sizeof(data)), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "is corrupt: its SHA-256 is") != NULL);
	CHECK(strstr(cairn_err_msg(), named) != NULL);
	struct cairn_obj_info info;
	CHECK_ERR(cairn_storage_stat(st, CAIRN_OBJ_PACK, wrong, &info), -ENOENT);
	CHECK_OK(cairn_storage_put_file(st, CAIRN_OBJ_PACK, named, fd, sizeof(data)));
	CHECK_OK(cairn_storage_stat(st, CAIRN_OBJ_PACK, named, &info));
	CHECK_EQ(info.size, sizeof(data));
	CHECK_ERR(cairn_storage_get_file(st, CAIRN_OBJ_PACK, hex64, fd, 4, sha, &size), -EFBIG);
	close(fd);
	struct cairn_buf b = CAIRN_BUF_INIT;
	CHECK_OK(cairn_storage_get(st, CAIRN_OBJ_SNAPSHOT, hex64, 0, 0, 100, &b));
	CHECK(b.len == 5 && memcmp(b.data, data, 5) == 0);
	cairn_buf_release(&b);
	cairn_storage_close(st);
}

struct seen {
	size_t n;
	char names[8][CAIRN_OBJ_NAME_MAX];
};

static int collect(const struct cairn_obj_info *o, void *payload)
{
	struct seen *s = payload;
	CHECK(s->n < 8);
	snprintf(s->names[s->n++], CAIRN_OBJ_NAME_MAX, "%s", o->name);
	CHECK(o->mtime > 0);
	return 0;
}

static int stop_at_first(const struct cairn_obj_info *o, void *payload)
{
	(void)o, (void)payload;
	return -ECANCELED;
}

static void test_storage__local_list(void)
{
	cairn_storage *st = open_local();
	char other[] = "cd00000000000000000000000000000000000000000000000000000000000002";
	char path[PATH_MAX];
	struct seen s = { 0 };

	CHECK_OK(cairn_storage_list(st, CAIRN_OBJ_PACK, collect, &s)); /* no packs/ yet */
	CHECK_EQ(s.n, 0);
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_PACK, hex64, "1", 1));
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_PACK, other, "22", 2));
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_SNAPSHOT, hex64, "3", 1));
	/* Strangers: a temp file, a misplaced pack, a directory. */
	snprintf(path, sizeof(path), "%s/packs/ab/x.tmp", check_tmpdir());
	CHECK_OK(cairn_file_write_atomic(path, NULL, "x", 1));
	snprintf(path, sizeof(path), "%s/packs/ab/%s", check_tmpdir(), other);
	CHECK_OK(cairn_file_write_atomic(path, NULL, "x", 1));
	snprintf(path, sizeof(path), "%s/packs/zz", check_tmpdir());
	CHECK_OK(cairn_mkdir_p(path, 0700));
	CHECK_OK(cairn_storage_list(st, CAIRN_OBJ_PACK, collect, &s));
	CHECK_EQ(s.n, 2);
	CHECK((strcmp(s.names[0], hex64) == 0 && strcmp(s.names[1], other) == 0) ||
	      (strcmp(s.names[1], hex64) == 0 && strcmp(s.names[0], other) == 0));
	CHECK_ERR(cairn_storage_list(st, CAIRN_OBJ_PACK, stop_at_first, NULL), -ECANCELED);
	CHECK_ERR(cairn_storage_list(st, CAIRN_OBJ_CONFIG, collect, &s), -EINVAL);

	struct cairn_storage_stats stats;
	cairn_storage_stats(st, &stats);
	CHECK_EQ(stats.requests[CAIRN_STORAGE_PUT], 3);
	CHECK(stats.requests[CAIRN_STORAGE_LIST] >= 3);
	cairn_storage_close(st);
}

/* A read of a pack reuses the descriptor of the last read of it (a restore reads
 * blob after blob of one pack: an open per blob doubled its syscalls), and a
 * pack removed or replaced through the storage is not read through the old one. */
static void test_storage__local_read_keeps_packs_open(void)
{
	cairn_storage *st = open_local();
	char path[PATH_MAX], buf[4];

	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_PACK, hex64, "pack", 4));
	CHECK_OK(cairn_storage_read(st, CAIRN_OBJ_PACK, hex64, 0, buf, 4));
	CHECK(memcmp(buf, "pack", 4) == 0);
	/* Gone behind the storage's back: the open descriptor still reads it. */
	snprintf(path, sizeof(path), "%s/packs/ab/%s", check_tmpdir(), hex64);
	CHECK(unlink(path) == 0);
	CHECK_OK(cairn_storage_read(st, CAIRN_OBJ_PACK, hex64, 1, buf, 3));
	CHECK(memcmp(buf, "ack", 3) == 0);
	/* Replaced through the storage: the new file is read. */
	CHECK_OK(cairn_storage_put(st, CAIRN_OBJ_PACK, hex64, "PACK", 4));
	CHECK_OK(cairn_storage_read(st, CAIRN_OBJ_PACK, hex64, 0, buf, 4));
	CHECK(memcmp(buf, "PACK", 4) == 0);
	/* Removed through the storage: gone. */
	CHECK_OK(cairn_storage_remove(st, CAIRN_OBJ_PACK, hex64));
	CHECK_ERR(cairn_storage_read(st, CAIRN_OBJ_PACK, hex64, 0, buf, 4), -ENOENT);
	cairn_storage_close(st);
}

static void test_storage__open(void)
{
	cairn_storage *st;
	CHECK_ERR(cairn_storage_open(&st, "", NULL), -EINVAL);
	CHECK_ERR(cairn_storage_open(&st, "ftp://host/x", NULL), -EINVAL);
	CHECK(cairn_storage_is_url("s3://bucket/prefix"));
	CHECK(!cairn_storage_is_url("/srv/s3://x"));
	/* Trailing slashes name the same repository. */
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s//", check_tmpdir());
	CHECK_OK(cairn_storage_open(&st, dir, NULL));
	CHECK(strcmp(cairn_storage_url(st), check_tmpdir()) == 0);
	cairn_storage_close(st);
}

int main(void)
{
	RUN(test_storage__layout);
	RUN(test_storage__local_get_put);
	RUN(test_storage__local_files);
	RUN(test_storage__local_list);
	RUN(test_storage__local_read_keeps_packs_open);
	RUN(test_storage__open);
	return 0;
}
