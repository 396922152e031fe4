/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prune (store/prune.c): what goes, what stays readable, refusals, a lost lock. */
#include <stdlib.h>
#include <string.h>

#include "cairn/store.h"
#include "check.h"
#include "cleanup.h"

#define PW "secret"
#define BLOB (200 * 1024)

static char repo_path[512];

static cairn_repo *make_repo(void)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = 0,
		                     .pack_size = 1024 * 1024,
		                     .kdf_log2n = 10,
		                     .chunk = { 64 * 1024, 128 * 1024, 1024 * 1024 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	cairn_repo *repo = NULL;

	snprintf(repo_path, sizeof(repo_path), "%s/repo", check_tmpdir());
	CHECK_OK(cairn_repo_init(repo_path, PW, strlen(PW), &o));
	CHECK_OK(cairn_repo_open(&repo, repo_path, PW, strlen(PW), &ro));
	return repo;
}

/* A regular file of one BLOB-sized data blob per seed, added to b. */
static void add_file(cairn_repo *repo, cairn_tree_builder *b, const char *name, int first,
                     int count, struct cairn_id *ids)
{
	struct cairn_extent ext[8];
	_cleanup_free_ uint8_t *data = malloc(BLOB);

	CHECK(data != NULL && count <= 8);
	for (int i = 0; i < count; i++) {
		check_random(data, BLOB, (uint64_t)(first + i));
		CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_DATA, data, BLOB, NULL, &ext[i].id));
		ext[i].len = BLOB;
		ids[first + i] = ext[i].id;
	}
	struct cairn_node n = { .name = (const uint8_t *)name,
		                .name_len = strlen(name),
		                .type = CAIRN_NODE_FILE,
		                .mode = 0644,
		                .size = (uint64_t)count * BLOB,
		                .nlink = 1,
		                .nextents = (size_t)count,
		                .extents = ext };
	CHECK_OK(cairn_tree_builder_add(b, &n));
}

/* Store b's tree and commit a snapshot with it as root. */
static struct cairn_id commit(cairn_repo *repo, cairn_tree_builder *b, int64_t t)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT;
	struct cairn_snapshot s = { .time_ns = t,
		                    .hostname = (char *)"h",
		                    .username = (char *)"u",
		                    .program_version = (char *)"test" };
	CHECK_OK(cairn_tree_builder_encode(b, &plain));
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_TREE, plain.data, plain.len, NULL, &s.root));
	CHECK_OK(cairn_repo_flush(repo));
	CHECK_OK(cairn_repo_snapshot_save(repo, &s));
	cairn_tree_builder_free(b);
	return s.id;
}

/* Snapshot A: file a (blobs 1..6) and shared (7, 8); B: file b (9..12) and shared. */
static void build(cairn_repo *repo, struct cairn_id *ids, struct cairn_id *a, struct cairn_id *b)
{
	cairn_tree_builder *ta = NULL, *tb = NULL;
	CHECK_OK(cairn_tree_builder_new(&ta));
	add_file(repo, ta, "a", 1, 6, ids);
	add_file(repo, ta, "shared", 7, 2, ids);
	*a = commit(repo, ta, 1000);
	CHECK_OK(cairn_tree_builder_new(&tb));
	add_file(repo, tb, "b", 9, 4, ids);
	add_file(repo, tb, "shared", 7, 2, ids);
	*b = commit(repo, tb, 2000);
}

static int count_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	(void)pack;
	(void)size;
	(*(int *)payload)++;
	return 0;
}

static int packs_on_disk(cairn_repo *repo)
{
	int n = 0;
	CHECK_OK(cairn_repo_foreach_pack(repo, count_pack, &n));
	return n;
}

static void expect_readable(cairn_repo *repo, const struct cairn_id *ids, int from, int to)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	for (int i = from; i <= to; i++) {
		CHECK_OK(cairn_repo_get_typed(repo, CAIRN_BLOB_DATA, &ids[i], &b));
		CHECK_EQ(b.len, BLOB);
	}
}

static void record_step(const char *step, void *payload)
{
	struct cairn_buf *b = payload;
	CHECK_OK(cairn_buf_printf(b, "%s%s", b->len ? "," : "", step));
	CHECK_OK(cairn_buf_reserve(b, 1));
	b->data[b->len] = '\0';
}

static void test_prune__frees_and_keeps(void)
{
	cairn_repo *repo = make_repo();
	struct cairn_id ids[13], a, b;
	struct cairn_loc loc;
	struct cairn_prune_stats st;
	_cleanup_buf_ struct cairn_buf steps = CAIRN_BUF_INIT;
	struct cairn_prune_opts o = { .version = CAIRN_PRUNE_OPTS_VERSION,
		                      .dry_run = true,
		                      .on_step = record_step,
		                      .payload = &steps };

	build(repo, ids, &a, &b);
	int before = packs_on_disk(repo);
	CHECK_OK(cairn_repo_snapshot_delete(repo, &a));

	CHECK_OK(cairn_repo_prune(repo, &o, &st));
	CHECK_EQ(packs_on_disk(repo), before);
	CHECK(st.packs_deleted + st.packs_repacked > 0 && st.bytes_freed > 0);
	CHECK_EQ(st.snapshots, 1);
	CHECK_EQ(st.blobs_used, 7); /* b's four, shared's two, and B's root tree */
	CHECK(strcmp((char *)steps.data, "after-mark,done") == 0);
	expect_readable(repo, ids, 1, 12); /* a dry run changes nothing */

	steps.len = 0;
	o.dry_run = false;
	CHECK_OK(cairn_repo_prune(repo, &o, &st));
	CHECK(st.bytes_freed >= 6 * BLOB - 64 * 1024);
	CHECK(strstr((char *)steps.data, "after-mark,") == (char *)steps.data);
	CHECK(strstr((char *)steps.data, "after-new-packs,after-record,after-index,mid-delete") !=
	      NULL);
	for (int i = 1; i <= 6; i++)
		CHECK_ERR(cairn_repo_lookup(repo, &ids[i], &loc), -ENOENT);
	expect_readable(repo, ids, 7, 12);
	CHECK_EQ(packs_on_disk(repo),
	         (int)(st.packs - st.packs_deleted - st.packs_repacked + st.packs_written));

	/* Nothing left to do. */
	o.on_step = NULL;
	CHECK_OK(cairn_repo_prune(repo, &o, &st));
	CHECK(st.packs_deleted == 0 && st.packs_repacked == 0 && st.blobs_unused == 0);
	cairn_repo_close(repo);
}

static int count_kind(const struct cairn_id *pack, uint64_t size, void *payload)
{
	void **v = payload;
	int *kinds = v[1];
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	(void)size;
	CHECK_OK(cairn_repo_pack_entries(v[0], pack, &e, &n));
	for (size_t i = 1; i < n; i++)
		CHECK_EQ(e[i].type, e[0].type);
	kinds[e[0].type == CAIRN_BLOB_TREE]++;
	free(e);
	return 0;
}

/* Packs of data, [0], and of trees, [1]; each holds one type only. */
static void count_kinds(cairn_repo *repo, int kinds[2])
{
	kinds[0] = kinds[1] = 0;
	CHECK_OK(cairn_repo_foreach_pack(repo, count_kind, (void *[]){ repo, kinds }));
}

static void expect_trees(cairn_repo *repo, size_t want)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	CHECK_OK(cairn_repo_snapshot_list(repo, &list, &n));
	CHECK_EQ(n, want);
	for (size_t i = 0; i < n; i++) {
		cairn_tree *t = NULL;
		CHECK_OK(cairn_repo_tree_load(repo, &list[i]->root, &t));
		cairn_tree_free(t);
	}
	cairn_snapshot_list_free(list, n);
}

/* Small backups leave a small pack of each type apiece (issue 17: 2.4 packs of
 * 28 KB per backup); prune merges them by type, and only when there is
 * something to merge. */
static void test_prune__merges_small_packs(void)
{
	cairn_repo *repo = make_repo(); /* packs of 1 MiB: below 256 KiB is small */
	struct cairn_id ids[5];
	struct cairn_prune_stats st;
	struct cairn_prune_opts o = { .version = CAIRN_PRUNE_OPTS_VERSION };
	int kinds[2];

	for (int i = 1; i <= 4; i++) {
		cairn_tree_builder *b = NULL;
		char name[8];
		CHECK_OK(cairn_tree_builder_new(&b));
		snprintf(name, sizeof(name), "f%d", i);
		add_file(repo, b, name, i, 1, ids);
		commit(repo, b, 1000 * i);
		if (i > 1)
			continue;
		/* One small pack of each type: nothing to merge them with. */
		CHECK_OK(cairn_repo_prune(repo, &o, &st));
		CHECK_EQ(st.packs_repacked, 0);
		CHECK_EQ(packs_on_disk(repo), 2);
	}
	count_kinds(repo, kinds);
	CHECK_EQ(kinds[0], 4);
	CHECK_EQ(kinds[1], 4);
	CHECK_OK(cairn_repo_prune(repo, &o, &st));
	CHECK_EQ(st.packs_repacked, 8);
	CHECK_EQ(st.packs_written, 2);
	count_kinds(repo, kinds);
	CHECK_EQ(kinds[0], 1);
	CHECK_EQ(kinds[1], 1);
	expect_readable(repo, ids, 1, 4);
	expect_trees(repo, 4);
	/* The merged data pack is no longer small, the tree pack is alone. */
	CHECK_OK(cairn_repo_prune(repo, &o, &st));
	CHECK_EQ(st.packs_repacked, 0);
	CHECK_EQ(packs_on_disk(repo), 2);
	cairn_repo_close(repo);
}

/* A snapshot whose root tree is not there: prune must not guess, it refuses. */
static void test_prune__refuses_missing_tree(void)
{
	cairn_repo *repo = make_repo();
	struct cairn_id ids[13], a, b;
	struct cairn_prune_stats st;
	struct cairn_prune_opts o = { .version = CAIRN_PRUNE_OPTS_VERSION };
	struct cairn_snapshot s = { .time_ns = 3000,
		                    .hostname = (char *)"h",
		                    .username = (char *)"u",
		                    .program_version = (char *)"test" };

	build(repo, ids, &a, &b);
	CHECK_OK(cairn_repo_snapshot_delete(repo, &a));
	check_random(s.root.b, sizeof(s.root.b), 99);
	CHECK_OK(cairn_repo_snapshot_save(repo, &s));
	int before = packs_on_disk(repo);
	CHECK_ERR(cairn_repo_prune(repo, &o, &st), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "cannot prune") != NULL);
	CHECK_EQ(packs_on_disk(repo), before);
	expect_readable(repo, ids, 1, 12);
	cairn_repo_close(repo);
}

struct steal {
	cairn_storage *st;
	bool done;
};

/* What `cairn unlock --all` would do while prune runs. */
static void steal_lock(const char *step, void *payload)
{
	struct steal *s = payload;
	struct cairn_lock_info *v = NULL;
	size_t n = 0;
	if (s->done || strcmp(step, "after-mark") != 0)
		return;
	CHECK_OK(cairn_lock_list(s->st, &v, &n));
	for (size_t i = 0; i < n; i++)
		CHECK_OK(cairn_lock_remove(s->st, v[i].name));
	free(v);
	s->done = true;
}

static void test_prune__stops_without_its_lock(void)
{
	cairn_repo *repo = make_repo();
	struct cairn_id ids[13], a, b;
	struct cairn_prune_stats st;
	struct steal s = { cairn_repo_storage(repo), false };
	cairn_lock *lock = NULL;

	build(repo, ids, &a, &b);
	CHECK_OK(cairn_repo_snapshot_delete(repo, &a));
	int before = packs_on_disk(repo);
	CHECK_OK(cairn_lock_acquire(&lock, cairn_repo_storage(repo), CAIRN_LOCK_PRUNE, "prune", 0));
	struct cairn_prune_opts o = { .version = CAIRN_PRUNE_OPTS_VERSION,
		                      .lock = lock,
		                      .on_step = steal_lock,
		                      .payload = &s };
	CHECK_ERR(cairn_repo_prune(repo, &o, &st), -ENOENT);
	CHECK(s.done);
	CHECK_EQ(packs_on_disk(repo), before); /* new packs were removed again */
	expect_readable(repo, ids, 1, 12);
	cairn_lock_release(lock);
	cairn_repo_close(repo);
}

static void test_prune__bad_options(void)
{
	cairn_repo *repo = make_repo();
	struct cairn_prune_stats st;
	struct cairn_prune_opts o = { .version = CAIRN_PRUNE_OPTS_VERSION, .max_unused = 101 };
	CHECK_ERR(cairn_repo_prune(repo, &o, &st), -EINVAL);
	cairn_repo_close(repo);
}

int main(void)
{
	RUN(test_prune__frees_and_keeps);
	RUN(test_prune__merges_small_packs);
	RUN(test_prune__refuses_missing_tree);
	RUN(test_prune__stops_without_its_lock);
	RUN(test_prune__bad_options);
	return 0;
}
