/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn restore: write a snapshot's files back to a directory. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pattern.h"
#include "restorer.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn restore SNAP --target DIR [options] [PATH]\n"
        "\n"
        "Restores snapshot SNAP (an ID prefix or 'latest') into DIR, keeping the\n"
        "absolute layout of the backup: /home/me/docs comes back as DIR/home/me/docs.\n"
        "PATH restores only that file or directory of the snapshot (default '/').\n"
        "\n"
        "  -t, --target DIR       directory to restore into (created if missing)\n"
        "  --include GLOB         restore only matching paths, with the directories\n"
        "                         leading to them (repeatable)\n"
        "  --include-file FILE    read include patterns from FILE, one per line\n"
        "  --exclude GLOB         leave out matching paths (repeatable)\n"
        "  --exclude-file FILE    read exclude patterns from FILE, one per line\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n"
        "\n"
        "Patterns match the absolute paths in the snapshot, with the syntax of\n"
        "'cairn backup': * ? [..] and ** (any number of directories); a pattern\n"
        "without '/' matches a name anywhere, one starting with '/' from the root.\n"
        "\n"
        "Entries already in DIR with the same name are replaced: files are written\n"
        "under a temporary name and renamed over the old ones. Other entries in DIR\n"
        "are left alone. Every kind of entry comes back: files, directories,\n"
        "symlinks, fifos, unix sockets (as cp -a makes them: nobody listens) and, as\n"
        "root, device nodes and owners. Hard links within the restored set come back\n"
        "as hard links (entries of one inode that agree on its type and size), and\n"
        "sparse files stay sparse.\n"
        "Exit status: 0 ok, 1 error, 3 finished, but some entries or attributes\n"
        "could not be restored (each is reported on stderr).\n";

enum {
	OPT_TARGET = OPT_FIRST_COMMAND_OPT,
	OPT_INCLUDE,
	OPT_INCLUDE_FILE,
	OPT_EXCLUDE,
	OPT_EXCLUDE_FILE,
};

DEFINE_FREEP(struct pattern_list, pattern_list_free)

struct restore_args {
	const char *target;
	struct pattern_list *include, *exclude;
	struct snapsel sel;
};

static int handle(int c, const char *arg, void *payload)
{
	struct restore_args *a = payload;
	int r = snapsel_opt(&a->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case 't':
	case OPT_TARGET:
		a->target = arg;
		return 0;
	case OPT_INCLUDE:
		return pattern_list_add(a->include, arg);
	case OPT_INCLUDE_FILE:
		return pattern_list_add_file(a->include, arg);
	case OPT_EXCLUDE:
		return pattern_list_add(a->exclude, arg);
	case OPT_EXCLUDE_FILE:
		return pattern_list_add_file(a->exclude, arg);
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static void print_summary(const struct restorer_stats *st, const char *target)
{
	char bytes[32];
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	printf("restored %llu files (%s), %llu directories, %llu hard links and %llu other "
	       "entries into '%s'\n",
	       (unsigned long long)st->files, cli_fmt_bytes(bytes, sizeof(bytes), st->bytes),
	       (unsigned long long)st->dirs, (unsigned long long)st->links,
	       (unsigned long long)st->others, target);
}

static int run(const struct restore_args *a, const char *spec, const char *path)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	struct cairn_snapshot *snap = NULL;
	struct restorer_opts o = {
		.target = a->target, .path = path, .include = a->include, .exclude = a->exclude
	};
	struct restorer_stats st;

	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = snapsel_load(repo, &a->sel, spec, &snap);
	if (r >= 0)
		r = restorer_run(repo, snap, &o, &st);
	cairn_snapshot_free(snap);
	if (r < 0)
		return cli_fail(r);
	print_summary(&st, a->target);
	if (st.warnings > 0) {
		log_warn("%llu problems: some entries or attributes were not restored (see above)",
		         (unsigned long long)st.warnings);
		return EXIT_PARTIAL;
	}
	return 0;
}

static int restore_main(struct restore_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "target", required_argument, NULL, OPT_TARGET },
		{ "include", required_argument, NULL, OPT_INCLUDE },
		{ "include-file", required_argument, NULL, OPT_INCLUDE_FILE },
		{ "exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "exclude-file", required_argument, NULL, OPT_EXCLUDE_FILE },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	int i = cli_parse(argc, argv, "t:", longopts, usage, handle, a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i >= argc)
		return cli_usage_error(
		        "restore: say which snapshot to restore (an ID or 'latest')");
	if (argc - i > 2)
		return cli_usage_error("restore: unexpected argument '%s'", argv[i + 2]);
	if (!a->target || !*a->target)
		return cli_usage_error("restore: say where to restore to with --target DIR");
	return run(a, argv[i], i + 1 < argc ? argv[i + 1] : "/");
}

int cmd_restore(int argc, char **argv)
{
	_cleanup_(pattern_list_freep) struct pattern_list *include = NULL;
	_cleanup_(pattern_list_freep) struct pattern_list *exclude = NULL;
	struct restore_args a = { 0 };

	if (pattern_list_new(&include) < 0 || pattern_list_new(&exclude) < 0)
		return cli_fail(-ENOMEM);
	a.include = include;
	a.exclude = exclude;
	snapsel_init(&a.sel);
	int rc = restore_main(&a, argc, argv);
	snapsel_release(&a.sel);
	return rc;
}
