/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Test helper: write snapshots that `cairn backup` refuses to make, as a hostile or
 * older writer of the repository could.
 *
 *   cairn-test-craft relabel HOST [TAG...]
 *       a copy of the latest snapshot, one second newer, with this host and tags
 *   cairn-test-craft blob-id FILE
 *       print the ID the repository gives FILE's content as one data blob (a
 *       file smaller than the minimum chunk is stored as exactly that blob)
 *
 * The repository is $CAIRN_REPO, the password the first line of $CAIRN_PASSWORD_FILE. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

static int relabel(cairn_repo *repo, char *host, char **tags, size_t ntags)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);
	if (r < 0 || n == 0) {
		cairn_snapshot_list_free(list, n);
		return r < 0 ? r : cairn_err_set(-ENOENT, "no snapshot to copy");
	}
	struct cairn_snapshot s = *list[n - 1]; /* shallow: the strings stay list's */
	s.time_ns += 1000000000;
	s.hostname = host;
	s.tags = tags;
	s.ntags = ntags;
	r = cairn_repo_snapshot_save(repo, &s);
	cairn_snapshot_list_free(list, n);
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
	cairn_repo_blob_id(repo, data, n, &id);
	cairn_id_hex(hex, &id);
	printf("%s\n", hex);
	return 0;
}

int main(int argc, char **argv)
{
	cairn_repo *repo = NULL;
	bool relabel_cmd = argc >= 3 && strcmp(argv[1], "relabel") == 0;
	if (!relabel_cmd && !(argc == 3 && strcmp(argv[1], "blob-id") == 0)) {
		fprintf(stderr, "usage: cairn-test-craft relabel HOST [TAG...]\n"
		                "       cairn-test-craft blob-id FILE\n");
		return 2;
	}
	int r = open_repo(&repo);
	if (r >= 0)
		r = relabel_cmd ? relabel(repo, argv[2], argv + 3, (size_t)(argc - 3))
		                : blob_id(repo, argv[2]);
	if (r < 0)
		fprintf(stderr, "craft: %s\n", cairn_err_msg());
	cairn_repo_close(repo);
	return r < 0 ? 1 : 0;
}
