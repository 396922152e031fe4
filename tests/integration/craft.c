/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper: write snapshots that `cairn backup` refuses to make, as a hostile or
 * older writer of the repository could.
 *
 *   cairn-test-craft relabel HOST [TAG...]
 *       a copy of the latest snapshot, one second newer, with this host and tags
 *   cairn-test-craft relabel-at SECONDS_AGO HOST [TAG...]
 *       the same, made SECONDS_AGO before now (a history of many days)
 *   cairn-test-craft check-record TEXT
 *       TEXT as the record of the last check and the last data check (the
 *       "key=value" lines cmd-check.c writes), as an older cairn could leave it
 *   cairn-test-craft blob-id FILE
 *       print the ID the repository gives FILE's content as one data blob (a
 *       file smaller than the minimum chunk is stored as exactly that blob)
 *   cairn-test-craft hole SIZE
 *       a copy of the latest snapshot whose root holds one file, "hole", of SIZE
 *       bytes that are all one hole (FORMAT.md §10 allows up to 2^64 - 1)
 *
 * The repository is $CAIRN_REPO, the password the first line of $CAIRN_PASSWORD_FILE. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cairn/store.h"

static int open_repo(cairn_repo **repo)
{
	const char *path = getenv("CAIRN_REPO"), *pwfile = getenv("CAIRN_PASSWORD_FILE");
	char pw[256];
	FILE *f = pwfile ? fopen(pwfile, "r") : NULL;
	if (!path || !f || !fgets(pw, sizeof(pw), f)) {
		fprintf(stderr, "craft: set CAIRN_REPO and CAIRN_PASSWORD_FILE\n");
		if (f)
			fclose(f);
		return -EINVAL;
	}
	fclose(f);
	pw[strcspn(pw, "\n")] = '\0';
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	return cairn_repo_open(repo, path, pw, strlen(pw), &ro);
}

static int relabel(cairn_repo *repo, int64_t ago, char *host, char **tags, size_t ntags)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);
	if (r < 0 || n == 0) {
		cairn_snapshot_list_free(list, n);
		return r < 0 ? r : cairn_err_set(-ENOENT, "no snapshot to copy");
	}
	struct cairn_snapshot s = *list[n - 1]; /* shallow: the strings stay list's */
	if (ago >= 0)
		s.time_ns = ((int64_t)time(NULL) - ago) * 1000000000;
	else
		s.time_ns += 1000000000;
	s.hostname = host;
	s.tags = tags;
	s.ntags = ntags;
	r = cairn_repo_snapshot_save(repo, &s);
	cairn_snapshot_list_free(list, n);
	return r;
}

static int check_record(cairn_repo *repo, const char *text)
{
	int r = cairn_repo_state_put(repo, "check", "last", 4, text, strlen(text));
	if (r >= 0)
		r = cairn_repo_state_put(repo, "check", "last-read-data", 14, text, strlen(text));
	return r;
}

static int blob_id(cairn_repo *repo, const char *file)
{
	static uint8_t data[1 << 20];
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_id id;
	FILE *f = fopen(file, "rb");
	if (!f)
		return cairn_err_set(-errno, "cannot open '%s'", file);
	size_t n = fread(data, 1, sizeof(data), f);
	fclose(f);
	int r = cairn_repo_blob_id(repo, data, n, &id);
	if (r < 0)
		return r;
	cairn_id_hex(hex, &id);
	printf("%s\n", hex);
	return 0;
}

static int hole(cairn_repo *repo, uint64_t size)
{
	struct cairn_extent e = { .len = size };
	struct cairn_node n = { .name = (const uint8_t *)"hole",
		                .name_len = 4,
		                .type = CAIRN_NODE_FILE,
		                .mode = 0644,
		                .size = size,
		                .nlink = 1,
		                .nextents = 1,
		                .extents = &e };
	struct cairn_buf data = CAIRN_BUF_INIT;
	struct cairn_snapshot **list = NULL;
	cairn_tree_builder *b = NULL;
	size_t count = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &count);
	if (r >= 0 && count == 0)
		r = cairn_err_set(-ENOENT, "no snapshot to copy");
	if (r >= 0)
		r = cairn_tree_builder_new(&b);
	if (r >= 0)
		r = cairn_tree_builder_add(b, &n);
	if (r >= 0)
		r = cairn_tree_builder_encode(b, &data);
	struct cairn_snapshot s = r >= 0 ? *list[count - 1] : (struct cairn_snapshot){ 0 };
	s.time_ns += 1000000000;
	if (r >= 0)
		r = cairn_repo_put(repo, CAIRN_BLOB_TREE, data.data, data.len, NULL, &s.root);
	if (r >= 0)
		r = cairn_repo_flush(repo);
	if (r >= 0)
		r = cairn_repo_snapshot_save(repo, &s);
	cairn_buf_release(&data);
	cairn_tree_builder_free(b);
	cairn_snapshot_list_free(list, count);
	return r;
}

int main(int argc, char **argv)
{
	cairn_repo *repo = NULL;
	bool relabel_cmd = argc >= 3 && strcmp(argv[1], "relabel") == 0;
	bool at_cmd = argc >= 4 && strcmp(argv[1], "relabel-at") == 0;
	bool record_cmd = argc == 3 && strcmp(argv[1], "check-record") == 0;
	bool blob_cmd = argc == 3 && strcmp(argv[1], "blob-id") == 0;
	bool hole_cmd = argc == 3 && strcmp(argv[1], "hole") == 0;
	if (!relabel_cmd && !at_cmd && !record_cmd && !blob_cmd && !hole_cmd) {
		fprintf(stderr, "usage: cairn-test-craft relabel HOST [TAG...]\n"
		                "       cairn-test-craft relabel-at SECONDS_AGO HOST [TAG...]\n"
		                "       cairn-test-craft check-record TEXT\n"
		                "       cairn-test-craft blob-id FILE\n"
		                "       cairn-test-craft hole SIZE\n");
		return 2;
	}
	int r = open_repo(&repo);
	if (r >= 0 && relabel_cmd)
		r = relabel(repo, -1, argv[2], argv + 3, (size_t)(argc - 3));
	else if (r >= 0 && at_cmd)
		r = relabel(repo, strtoll(argv[2], NULL, 10), argv[3], argv + 4,
		            (size_t)(argc - 4));
	else if (r >= 0 && record_cmd)
		r = check_record(repo, argv[2]);
	else if (r >= 0 && blob_cmd)
		r = blob_id(repo, argv[2]);
	else if (r >= 0)
		r = hole(repo, strtoull(argv[2], NULL, 10));
	if (r < 0)
		fprintf(stderr, "craft: %s\n", cairn_err_msg());
	cairn_repo_close(repo);
	return r < 0 ? 1 : 0;
}
