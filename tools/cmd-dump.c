/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn dump: write one file of a snapshot to stdout. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "restorer.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn dump [--host H] [--path P] [--tag T] SNAP PATH\n"
        "\n"
        "Writes the content of the regular file PATH (an absolute path inside the\n"
        "snapshot) of snapshot SNAP (an ID prefix or 'latest') to stdout. Holes come\n"
        "out as zeros. Every block is verified as it is read.\n"
        "\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n"
        "\n"
        "Exit status: 0 ok, 1 error, 3 the file was not read completely at backup\n"
        "time (the missing parts are zeros).\n";

static int check_file(const struct restorer_entry *e, const char *path)
{
	if (!e->node || e->node->type == CAIRN_NODE_DIR)
		return cairn_err_set(-EISDIR, "'%s' is a directory", path);
	if (e->node->type != CAIRN_NODE_FILE)
		return cairn_err_set(-EINVAL, "'%s' is not a regular file", path);
	return 0;
}

static int dump(cairn_repo *repo, const struct snapsel *sel, const char *spec, const char *path,
                bool *incomplete)
{
	_cleanup_buf_ struct cairn_buf buf = CAIRN_BUF_INIT;
	struct cairn_snapshot *snap = NULL;
	struct restorer_entry e = { 0 };

	int r = snapsel_load(repo, sel, spec, &snap);
	if (r >= 0)
		r = restorer_lookup(repo, &snap->root, path, &e);
	if (r >= 0)
		r = check_file(&e, path);
	if (r >= 0) {
		*incomplete = e.node->flags & CAIRN_NODE_INCOMPLETE;
		r = restorer_write_content(repo, e.node, path, STDOUT_FILENO, false, &buf);
	}
	cairn_tree_free(e.parent);
	cairn_snapshot_free(snap);
	return r;
}

static int handle(int c, const char *arg, void *payload)
{
	int r = snapsel_opt(payload, c, arg);
	return r == 1 ? cairn_err_set(-EINVAL, "unknown option") : r;
}

static int dump_main(struct snapsel *sel, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, SNAPSEL_LONGOPTS, { 0 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	bool incomplete = false;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, sel);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (argc - i != 2)
		return cli_usage_error("dump: give a snapshot and the path of a file in it");
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = dump(repo, sel, argv[i], argv[i + 1], &incomplete);
	if (r < 0)
		return cli_fail(r);
	if (incomplete) {
		log_warn("'%s' was not read completely at backup time: the missing parts are zeros",
		         argv[i + 1]);
		return EXIT_PARTIAL;
	}
	return 0;
}

int cmd_dump(int argc, char **argv)
{
	struct snapsel sel;
	snapsel_init(&sel);
	int rc = dump_main(&sel, argc, argv);
	snapsel_release(&sel);
	return rc;
}
