/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn dump: write a file of a snapshot, or a tar archive of a directory, to stdout. */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "restorer.h"
#include "snapsel.h"
#include "tarout.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn dump [-a tar] [--host H] [--path P] [--tag T] SNAP PATH\n"
        "\n"
        "Writes PATH (an absolute path inside the snapshot) of snapshot SNAP (an ID\n"
        "prefix or 'latest') to stdout: a regular file's content (holes as zeros), or\n"
        "for a directory ('/' for the whole snapshot) a tar archive of it and all it\n"
        "holds. Every block is verified as it is read.\n"
        "\n"
        "  -a, --archive tar      the archive format for directories (only tar)\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n"
        "\n"
        "The archive is POSIX pax (ustar where it suffices), as GNU tar and bsdtar\n"
        "read it. Entries keep the absolute layout of the snapshot without the\n"
        "leading '/' (home/me/notes.txt), as 'cairn restore' lays them out, with\n"
        "modes, owners (numbers and names), modification times, symlinks, hard\n"
        "links, fifos, devices, sparse files and extended attributes (read them back\n"
        "with 'tar --xattrs'). Sockets cannot be archived and are left out with a\n"
        "warning. Modification times before 1970 are whole seconds (rounded down):\n"
        "GNU tar and libarchive read a fraction there differently. The archive is\n"
        "not written to a terminal.\n"
        "\n"
        "Exit status: 0 ok, 1 error, 3 written, but something was not read completely\n"
        "at backup time or could not be read now (zeros in its place; each is\n"
        "reported on stderr).\n";

enum { OPT_ARCHIVE = OPT_FIRST_COMMAND_OPT };

static int dump_file(cairn_repo *repo, const struct cairn_node *n, const char *path, bool *partial)
{
	_cleanup_buf_ struct cairn_buf buf = CAIRN_BUF_INIT;
	if (n->type != CAIRN_NODE_FILE)
		return cairn_err_set(-EINVAL, "'%s' is not a regular file or a directory", path);
	int r = restorer_write_content(repo, n, path, "the output", STDOUT_FILENO, false, &buf);
	if (r >= 0 && (n->flags & CAIRN_NODE_INCOMPLETE)) {
		log_warn("'%s' was not read completely at backup time: the missing parts are zeros",
		         path);
		*partial = true;
	}
	return r;
}

static int dump_tar(cairn_repo *repo, const struct cairn_snapshot *snap,
                    const struct cairn_node *dir, const char *path, bool *partial)
{
	struct tarout_stats st;
	if (isatty(STDOUT_FILENO))
		return cairn_err_set(-EINVAL,
		                     "'%s' is a directory: its tar archive is not written to a "
		                     "terminal (redirect stdout to a file or a pipe)",
		                     path);
	int r = tarout_write(repo, dir, &snap->root, path, STDOUT_FILENO, &st);
	if (r >= 0 && st.warnings > 0) {
		log_warn("%llu %s: the archive lacks some entries or content (see above)",
		         (unsigned long long)st.warnings,
		         cli_plural(st.warnings, "problem", "problems"));
		*partial = true;
	}
	return r;
}

static int dump(cairn_repo *repo, const struct snapsel *sel, const char *spec, const char *path,
                bool *partial)
{
	struct cairn_snapshot *snap = NULL;
	struct cairn_tree_entry e = { 0 };

	int r = snapsel_load(repo, sel, spec, &snap);
	if (r >= 0)
		r = cairn_repo_tree_lookup_path(repo, &snap->root, path, &e);
	if (r >= 0 && (!e.node || e.node->type == CAIRN_NODE_DIR))
		r = dump_tar(repo, snap, e.node, path, partial);
	else if (r >= 0)
		r = dump_file(repo, e.node, path, partial);
	cairn_tree_free(e.parent);
	cairn_snapshot_free(snap);
	return r;
}

static int handle(int c, const char *arg, void *payload)
{
	int r = snapsel_opt(payload, c, arg);
	if (r != 1)
		return r;
	if (c != 'a' && c != OPT_ARCHIVE)
		return cairn_err_set(-EINVAL, "unknown option");
	if (strcmp(arg, "tar") != 0)
		return cairn_err_set(-EINVAL, "archive format '%s' is not supported (only 'tar')",
		                     arg);
	return 0;
}

static int dump_main(struct snapsel *sel, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "archive", required_argument, NULL, OPT_ARCHIVE },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	bool partial = false;

	int i = cli_parse(argc, argv, "a:", longopts, usage, handle, sel);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (argc - i != 2)
		return cli_usage_error("dump: give a snapshot and a path in it");
	if (cli_check_snapshot_path("dump", argv[i + 1]) != 0)
		return EXIT_USAGE;
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = dump(repo, sel, argv[i], argv[i + 1], &partial);
	if (r < 0)
		return cli_fail(r);
	return partial ? EXIT_PARTIAL : 0;
}

int cmd_dump(int argc, char **argv)
{
	struct snapsel sel;
	snapsel_init(&sel);
	int rc = dump_main(&sel, argc, argv);
	snapsel_release(&sel);
	return rc;
}
