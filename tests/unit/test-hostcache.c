/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/hostcache.c: the host cache of a write-only key (FORMAT.md §14). */
#include "hostcache.h"

#include <dirent.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cleanup.h"

static const uint8_t repo_id[CAIRN_REPO_ID_SIZE] = { 0x11, 0x22 };
static const uint8_t id_key[CAIRN_KEY_SIZE] = { 0x33, 0x44 };

static cairn_hostcache *open_cache(void)
{
	cairn_hostcache *hc = NULL;
	CHECK_OK(cairn_hostcache__open(&hc, check_tmpdir(), repo_id, id_key));
	return hc;
}

static void id_of(const void *p, size_t n, struct cairn_id *id)
{
	CHECK_OK(cairn_crypt__hmac(id_key, p, n, id->b));
}

/* ---- the .trees format --------------------------------------------------- */

static void test_hostcache__trees_roundtrip(void)
{
	_cleanup_(cairn_idset_release) struct cairn_idset set;
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_id *v = NULL;
	size_t n = 0;

	cairn_idset_init(&set);
	CHECK_OK(cairn_hostcache__encode_trees(&b, &set));
	CHECK_EQ(b.len, 9);
	CHECK(memcmp(b.data, "CHTL\1\0\0\0\0", 9) == 0);
	CHECK_OK(cairn_hostcache__parse_trees(b.data, b.len, &v, &n));
	CHECK_EQ(n, 0);
	free(v);
	v = NULL;
	for (int i = 0; i < 100; i++) {
		struct cairn_id id;
		check_random(id.b, sizeof(id.b), (uint64_t)i + 1);
		CHECK_OK(cairn_idset_add(&set, &id, 0));
	}
	b.len = 0;
	CHECK_OK(cairn_hostcache__encode_trees(&b, &set));
	CHECK_EQ(b.len, 9 + 100 * 32);
	CHECK_EQ(cairn_get_le32(b.data + 5), 100);
	CHECK_OK(cairn_hostcache__parse_trees(b.data, b.len, &v, &n));
	CHECK_EQ(n, 100);
	for (size_t i = 0; i < n; i++) {
		CHECK(cairn_idset_has(&set, &v[i]));
		CHECK(i == 0 || cairn_id_cmp(&v[i - 1], &v[i]) < 0);
	}
}

static void test_hostcache__trees_corrupt(void)
{
	_cleanup_(cairn_idset_release) struct cairn_idset set;
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_id *v = NULL, a;
	size_t n = 0;

	cairn_idset_init(&set);
	for (int i = 0; i < 3; i++) {
		check_random(a.b, sizeof(a.b), (uint64_t)i + 7);
		CHECK_OK(cairn_idset_add(&set, &a, 0));
	}
	CHECK_OK(cairn_hostcache__encode_trees(&b, &set));
	for (size_t len = 0; len < b.len; len++)
		CHECK_ERR(cairn_hostcache__parse_trees(b.data, len, &v, &n), -EBADMSG);
	CHECK_OK(cairn_buf_put_u8(&b, 0)); /* one byte too many */
	CHECK_ERR(cairn_hostcache__parse_trees(b.data, b.len, &v, &n), -EBADMSG);
	b.len--;
	b.data[0] = 'X';
	CHECK_ERR(cairn_hostcache__parse_trees(b.data, b.len, &v, &n), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "magic"));
	b.data[0] = 'C';
	b.data[4] = 2;
	CHECK_ERR(cairn_hostcache__parse_trees(b.data, b.len, &v, &n), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "version"));
	b.data[4] = 1;
	cairn_le32(b.data + 5, 0xffffffffu); /* a count far beyond the bytes */
	CHECK_ERR(cairn_hostcache__parse_trees(b.data, b.len, &v, &n), -EBADMSG);
	cairn_le32(b.data + 5, 3);
	memcpy(b.data + 9 + 32, b.data + 9, 32); /* a duplicate: not strictly increasing */
	CHECK_ERR(cairn_hostcache__parse_trees(b.data, b.len, &v, &n), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "out of order"));
	CHECK(v == NULL);
}

/* ---- trees and snapshots ------------------------------------------------- */

static void test_hostcache__trees_checked(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	cairn_hostcache *hc = open_cache();
	struct cairn_id id, other;
	char path[PATH_MAX], hex[CAIRN_ID_HEX_SIZE];
	struct stat st;

	id_of("tree one", 8, &id);
	id_of("tree two", 8, &other);
	CHECK_ERR(cairn_hostcache__tree(hc, &id, &b), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "not in the host cache"));
	CHECK_OK(cairn_hostcache__keep_tree(hc, &id, "tree one", 8));
	CHECK_OK(cairn_hostcache__tree(hc, &id, &b));
	CHECK(b.len == 8 && memcmp(b.data, "tree one", 8) == 0);
	/* kept where FORMAT.md §14 says, private to the user */
	cairn_id_hex(hex, &id);
	snprintf(path, sizeof(path), "%s/trees/%.2s/%s", cairn_hostcache__dir(hc), hex, hex);
	CHECK_OK(stat(path, &st));
	CHECK_EQ(st.st_mode & 0777, 0600);
	CHECK(strstr(cairn_hostcache__dir(hc), "/host-11220000000000000000000000000000"));
	CHECK_OK(stat(cairn_hostcache__dir(hc), &st));
	CHECK_EQ(st.st_mode & 0777, 0700);
	/* a file whose content is not its name is damaged: removed, and missing */
	FILE *f = fopen(path, "w");
	CHECK(f && fputs("tree two", f) >= 0 && fclose(f) == 0);
	CHECK_ERR(cairn_hostcache__tree(hc, &id, &b), -ENOENT);
	CHECK(access(path, F_OK) < 0);
	cairn_hostcache__close(hc);
}

static struct cairn_snapshot *snap(int64_t t, const char *host, const char *path)
{
	struct cairn_snapshot *s = calloc(1, sizeof(*s));
	CHECK(s);
	s->time_ns = t;
	s->hostname = strdup(host);
	s->username = strdup("me");
	s->paths = calloc(1, sizeof(char *));
	s->paths[0] = strdup(path);
	s->npaths = 1;
	s->program_version = strdup("test");
	return s;
}

/* Save s with one tree of its own (content tree) and shared: its ID in id. */
static void save(cairn_hostcache *hc, struct cairn_snapshot *s, const char *tree,
                 const struct cairn_id *shared, struct cairn_id *ids, size_t nids,
                 struct cairn_id *id)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, b = CAIRN_BUF_INIT;
	struct cairn_id tid;
	id_of(tree, strlen(tree), &tid);
	CHECK_OK(cairn_hostcache__keep_tree(hc, &tid, tree, strlen(tree)));
	if (shared)
		CHECK_OK(cairn_hostcache__tree(hc, shared, &b));
	CHECK_OK(cairn_snapshot_encode(s, &plain));
	id_of(plain.data, plain.len, id);
	ids[nids - 1] = *id; /* the storage lists it once saved */
	CHECK_OK(cairn_hostcache__saved(hc, id, plain.data, plain.len, ids, nids));
}

static size_t count_files(const char *dir)
{
	size_t n = 0;
	_cleanup_closedir_ DIR *d = opendir(dir);
	for (struct dirent *de; d && (de = readdir(d));) {
		char sub[PATH_MAX];
		if (de->d_name[0] == '.')
			continue;
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		struct stat st;
		if (stat(sub, &st) == 0 && S_ISDIR(st.st_mode))
			n += count_files(sub);
		else
			n++;
	}
	return n;
}

static size_t trees_kept(const cairn_hostcache *hc)
{
	char dir[PATH_MAX];
	snprintf(dir, sizeof(dir), "%s/trees", cairn_hostcache__dir(hc));
	return count_files(dir);
}

/* Per hostname and paths the newest snapshot stays with the trees it names;
 * what the storage no longer lists goes; a second process holding the cache
 * open delays the tidy-up. */
static void test_hostcache__saved_and_tidied(void)
{
	cairn_hostcache *hc = open_cache();
	struct cairn_snapshot *a1 = snap(100, "h", "/a"), *a2 = snap(200, "h", "/a"),
	                      *b1 = snap(150, "h", "/b");
	struct cairn_snapshot **list = NULL;
	struct cairn_id ids[4], id_a1, id_a2, id_b1, shared;
	size_t n = 0;

	save(hc, a1, "tree a1", NULL, ids, 1, &id_a1);
	id_of("tree a1", 7, &shared);
	save(hc, b1, "tree b1", NULL, ids, 2, &id_b1);
	CHECK_EQ(trees_kept(hc), 2);
	/* a2 loads a1's tree (it is unchanged) and stores one of its own */
	save(hc, a2, "tree a2", &shared, ids, 3, &id_a2);
	CHECK_OK(cairn_hostcache__snapshots(hc, ids, 3, &list, &n));
	CHECK_EQ(n, 2); /* a1 is gone: a2 is newer with the same host and paths */
	for (size_t i = 0; i < n; i++)
		CHECK(cairn_id_cmp(&list[i]->id, &id_a1) != 0);
	cairn_snapshot_list_free(list, n);
	CHECK_EQ(trees_kept(hc), 3); /* a1's tree stays: a2 names it */
	struct cairn_snapshot *got = NULL;
	CHECK_OK(cairn_hostcache__snapshot(hc, &id_a2, &got));
	CHECK(got->time_ns == 200 && strcmp(got->paths[0], "/a") == 0);
	CHECK(cairn_id_cmp(&got->id, &id_a2) == 0);
	cairn_snapshot_free(got);
	CHECK_ERR(cairn_hostcache__snapshot(hc, &id_a1, &got), -ENOENT);

	/* Only what the storage lists is offered, and a snapshot the storage no
	 * longer lists (an admin forgot it) goes at the next tidy-up. */
	CHECK_OK(cairn_hostcache__snapshots(hc, &id_a2, 1, &list, &n));
	CHECK_EQ(n, 1);
	cairn_snapshot_list_free(list, n);
	cairn_hostcache *other = open_cache(); /* another backup runs */
	struct cairn_snapshot *a3 = snap(300, "h", "/a");
	struct cairn_id only[2] = { id_a2 }, id_a3;
	save(hc, a3, "tree a3", NULL, only, 2, &id_a3);
	CHECK_EQ(trees_kept(hc), 4); /* not tidied: the other may be mid-backup */
	cairn_hostcache__close(other);
	struct cairn_snapshot *a4 = snap(400, "h", "/a");
	struct cairn_id now[2], id_a4;
	save(hc, a4, "tree a4", NULL, now, 1, &id_a4);
	CHECK_OK(cairn_hostcache__snapshots(hc, &id_a4, 1, &list, &n));
	CHECK_EQ(n, 1);
	cairn_snapshot_list_free(list, n);
	CHECK_EQ(trees_kept(hc), 1);
	(void)now;
	cairn_snapshot_free(a1);
	cairn_snapshot_free(a2);
	cairn_snapshot_free(a3);
	cairn_snapshot_free(a4);
	cairn_snapshot_free(b1);
	cairn_hostcache__close(hc);
}

/* A snapshot whose tree list is gone or damaged is no parent: dropped. */
static void test_hostcache__damaged_list(void)
{
	cairn_hostcache *hc = open_cache();
	struct cairn_snapshot *a = snap(100, "h", "/a"), *b = snap(100, "h", "/b");
	struct cairn_snapshot **list = NULL;
	struct cairn_id ids[2], id_a, id_b;
	char path[PATH_MAX], hex[CAIRN_ID_HEX_SIZE];
	size_t n = 0;

	save(hc, a, "tree a", NULL, ids, 1, &id_a);
	cairn_id_hex(hex, &id_a);
	snprintf(path, sizeof(path), "%s/snapshots/%s.trees", cairn_hostcache__dir(hc), hex);
	FILE *f = fopen(path, "w");
	CHECK(f && fputs("CHTL", f) >= 0 && fclose(f) == 0);
	save(hc, b, "tree b", NULL, ids, 2, &id_b);
	CHECK_OK(cairn_hostcache__snapshots(hc, ids, 2, &list, &n));
	CHECK_EQ(n, 1);
	CHECK(cairn_id_cmp(&list[0]->id, &id_b) == 0);
	cairn_snapshot_list_free(list, n);
	CHECK_EQ(trees_kept(hc), 1);
	cairn_snapshot_free(a);
	cairn_snapshot_free(b);
	cairn_hostcache__close(hc);
}

int main(void)
{
	RUN(test_hostcache__trees_roundtrip);
	RUN(test_hostcache__trees_corrupt);
	RUN(test_hostcache__trees_checked);
	RUN(test_hostcache__saved_and_tidied);
	RUN(test_hostcache__damaged_list);
	return 0;
}
