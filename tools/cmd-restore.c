/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn restore: write a snapshot's files back to a directory. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"
#include "pattern.h"
#include "restorer.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn restore SNAP --target DIR [options] [PATH]\n"
        "\n"
        "Restores snapshot SNAP (an ID prefix or 'latest') into DIR, keeping the\n"
        "absolute layout of the backup: /home/me/docs comes back as DIR/home/me/docs.\n"
        "PATH (an absolute path inside the snapshot, default '/') restores only that\n"
        "file or directory.\n"
        "The directories leading to it (or to what --include chooses) that are in\n"
        "DIR already are left as they are; those missing are made with the metadata\n"
        "the snapshot records.\n"
        "\n"
        "  -t, --target DIR       directory to restore into (created if missing)\n"
        "  --include GLOB         restore only matching paths, with the directories\n"
        "                         leading to them (repeatable)\n"
        "  --include-file FILE    read include patterns from FILE, one per line\n"
        "  --exclude GLOB         leave out matching paths (repeatable)\n"
        "  --exclude-file FILE    read exclude patterns from FILE, one per line\n"
        "  -n, --dry-run          list what would be restored, and write nothing\n"
        "  --verify               afterwards, read the restored files back and compare\n"
        "                         them with the snapshot\n"
        "  --threads N            threads that read, decode and write files (and verify\n"
        "                         them), beside the one walking the tree (default: CPUs)\n"
        "  --json                 a JSON summary line (with -n, first one line per "
        "entry)\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n"
        "\n"
        "Patterns match the absolute paths in the snapshot, with the syntax of\n"
        "'cairn backup': * ? [..] and ** (any number of directories); a pattern\n"
        "without '/' matches a name anywhere, one starting with '/' from the root.\n"
        "An exclude counts only below the snapshot's paths, as in backup. Patterns that\n"
        "select nothing are an error (exit 1), and DIR is not created.\n"
        "\n"
        "Entries already in DIR with the same name are replaced: files are written\n"
        "under a temporary name (.cairn-tmp.PID.N) and renamed over the old ones;\n"
        "a restore run again removes the temporary files one killed outright left\n"
        "(SIGINT, SIGTERM or SIGHUP stop it cleanly, exit status 1). Other entries\n"
        "in DIR are left alone. Every kind of entry comes back: files, directories,\n"
        "symlinks, fifos, unix sockets (as cp -a makes them: nobody listens) and, as\n"
        "root, device nodes and owners. Hard links within the restored set come back\n"
        "as hard links (entries of one inode that agree on its type, size and times),\n"
        "and sparse files stay sparse. As with cp -a, an entry that does not get its\n"
        "owner and group back (not root) loses its setuid and setgid bits.\n"
        "Each entry ends with the extended attributes and ACLs of the snapshot's and\n"
        "no others: an ACL inherited from a default ACL in DIR is removed, and so are\n"
        "the attributes a directory already in DIR has and the snapshot's lacks.\n"
        "\n"
        "--verify reads every restored regular file and checks its size and that each\n"
        "chunk hashes to the ID the snapshot records (holes: zeros); the repository is\n"
        "not read again. Each file that is missing or differs is reported.\n"
        "\n"
        "Exit status: 0 ok, 1 error (or --verify found a difference), 3 finished, but\n"
        "some entries or attributes could not be restored (each is reported on\n"
        "stderr; a dry run reports what it can foresee, such as device nodes).\n";

enum {
	OPT_TARGET = OPT_FIRST_COMMAND_OPT,
	OPT_INCLUDE,
	OPT_INCLUDE_FILE,
	OPT_EXCLUDE,
	OPT_EXCLUDE_FILE,
	OPT_VERIFY,
	OPT_THREADS,
};

DEFINE_FREEP(struct pattern_list, pattern_list_free)

struct restore_args {
	const char *target;
	struct pattern_list *include, *exclude;
	struct snapsel sel;
	unsigned threads;
	bool dry_run, verify, json;
};

static int handle(int c, const char *arg, void *payload)
{
	struct restore_args *a = payload;
	long v;
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
	case 'n':
		a->dry_run = true;
		return 0;
	case OPT_VERIFY:
		a->verify = true;
		return 0;
	case OPT_THREADS:
		if ((r = cli_parse_int(arg, 1, 256, &v)) < 0)
			return r;
		a->threads = (unsigned)v;
		return 0;
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* A dry run's listing: one line per entry (JSON with --json). */
static void on_entry(const char *path, size_t len, const struct cairn_node *n, bool linked,
                     void *payload)
{
	const struct restore_args *a = payload;
	if (a->json) {
		fputs("{\"message_type\":\"verbose_status\",\"action\":\"restore\",\"item\":",
		      stdout);
		cli_json_str(stdout, path, len);
		printf(",\"type\":\"%s\",\"size\":%llu,\"hard_link\":%s}\n",
		       restorer_type_name(n->type), (unsigned long long)n->size,
		       linked ? "true" : "false");
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE) {
		cairn_text_name(stdout, path, len);
		fputs(n->type == CAIRN_NODE_DIR ? "/\n" : linked ? " (hard link)\n" : "\n", stdout);
	}
}

static void print_text(const struct restore_args *a, const struct restorer_stats *st,
                       const struct restorer_stats *vst)
{
	char bytes[32];
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	printf("%s %llu %s (%s), %llu %s, %llu %s and %llu other %s %s '%s'\n",
	       a->dry_run ? "would restore" : "restored", (unsigned long long)st->files,
	       cli_plural(st->files, "file", "files"),
	       cli_fmt_bytes(bytes, sizeof(bytes), st->bytes), (unsigned long long)st->dirs,
	       cli_plural(st->dirs, "directory", "directories"), (unsigned long long)st->links,
	       cli_plural(st->links, "hard link", "hard links"), (unsigned long long)st->others,
	       cli_plural(st->others, "entry", "entries"), a->dry_run ? "to" : "into", a->target);
	if (vst && vst->warnings == 0)
		printf("verified %llu %s (%s): all as in the snapshot\n",
		       (unsigned long long)vst->files, cli_plural(vst->files, "file", "files"),
		       cli_fmt_bytes(bytes, sizeof(bytes), vst->bytes));
}

static void print_json(const struct restore_args *a, const struct cairn_snapshot *snap,
                       const struct restorer_stats *st, const struct restorer_stats *vst)
{
	char id[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(id, &snap->id);
	printf("{\"message_type\":\"summary\",\"command\":\"restore\",\"dry_run\":%s,"
	       "\"snapshot\":\"%s\",\"target\":",
	       a->dry_run ? "true" : "false", id);
	cli_json_str(stdout, a->target, strlen(a->target));
	printf(",\"files\":%llu,\"dirs\":%llu,\"hard_links\":%llu,\"others\":%llu,\"bytes\":%llu,"
	       "\"warnings\":%llu,\"verify\":",
	       (unsigned long long)st->files, (unsigned long long)st->dirs,
	       (unsigned long long)st->links, (unsigned long long)st->others,
	       (unsigned long long)st->bytes, (unsigned long long)st->warnings);
	if (vst)
		printf("{\"files\":%llu,\"bytes\":%llu,\"mismatches\":%llu}}\n",
		       (unsigned long long)vst->files, (unsigned long long)vst->bytes,
		       (unsigned long long)vst->warnings);
	else
		fputs("null}\n", stdout);
}

static bool has_patterns(const struct restore_args *a)
{
	return (a->include && pattern_list_count(a->include) > 0) ||
	       (a->exclude && pattern_list_count(a->exclude) > 0);
}

/* Patterns that leave nothing (a typo in --include, an --exclude of PATH
 * itself): a failure, rather than an empty target and "restored 0 files". */
static int check_selected(const struct restorer_stats *st, const char *path)
{
	if (st->files + st->dirs + st->links + st->others > 0)
		return 0;
	return cairn_err_set(-ENOENT,
	                     "nothing matched: the --include and --exclude patterns select "
	                     "nothing of '%s' in the snapshot",
	                     path);
}

/* Restore (or list), then verify: returns < 0 for a failure, with the message set.
 * With patterns, a restore first walks the trees as a dry run, so that a
 * selection of nothing creates no target. */
static int restore(cairn_repo *repo, const struct restore_args *a,
                   const struct cairn_snapshot *snap, const char *path, struct restorer_stats *st,
                   struct restorer_stats *vst)
{
	struct restorer_opts o = { .target = a->target,
		                   .path = path,
		                   .include = a->include,
		                   .exclude = a->exclude,
		                   .dry_run = true,
		                   .threads = a->threads,
		                   .on_entry = NULL,
		                   .payload = (void *)a };
	int r = 0;
	if (has_patterns(a) && !a->dry_run && (r = restorer_run(repo, snap, &o, st)) >= 0)
		r = check_selected(st, path);
	o.dry_run = a->dry_run;
	o.on_entry = a->dry_run ? on_entry : NULL;
	if (r >= 0)
		r = restorer_run(repo, snap, &o, st);
	if (r >= 0 && has_patterns(a) && a->dry_run)
		r = check_selected(st, path);
	if (r < 0 || !vst)
		return r;
	fflush(stdout);
	return restorer_verify(repo, snap, &o, vst);
}

static int run(const struct restore_args *a, const char *spec, const char *path)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	struct cairn_snapshot *snap = NULL;
	struct restorer_stats st, vst;

	int r = cli_open_repo(&repo, &ro);
	/* Stopped by a signal, it removes its temp files first. */
	if (r >= 0 && !a->dry_run)
		interrupt_catch("restore");
	if (r >= 0)
		r = snapsel_load(repo, &a->sel, spec, &snap);
	if (r >= 0)
		r = restore(repo, a, snap, path, &st, a->verify ? &vst : NULL);
	if (r >= 0 && a->json)
		print_json(a, snap, &st, a->verify ? &vst : NULL);
	else if (r >= 0)
		print_text(a, &st, a->verify ? &vst : NULL);
	cairn_snapshot_free(snap);
	if (r < 0)
		return cli_fail(r);
	if (a->verify && vst.warnings > 0) {
		cairn_err_set(-EBADMSG, "%llu restored %s not as in the snapshot (see above)",
		              (unsigned long long)vst.warnings,
		              cli_plural(vst.warnings, "entry is", "entries are"));
		return cli_fail(-EBADMSG);
	}
	if (st.warnings > 0) {
		log_warn("%llu %s: some entries or attributes were not restored (see above)",
		         (unsigned long long)st.warnings,
		         cli_plural(st.warnings, "problem", "problems"));
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
		{ "dry-run", no_argument, NULL, 'n' },
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	int i = cli_parse(argc, argv, "t:n", longopts, usage, handle, a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i >= argc)
		return cli_usage_error(
		        "restore: say which snapshot to restore (an ID or 'latest')");
	if (argc - i > 2)
		return cli_usage_error("restore: unexpected argument '%s'", argv[i + 2]);
	if (i + 1 < argc && cli_check_snapshot_path("restore", argv[i + 1]) != 0)
		return EXIT_USAGE;
	if (!a->target || !*a->target)
		return cli_usage_error("restore: say where to restore to with --target DIR");
	if (a->dry_run && a->verify)
		return cli_usage_error("restore: --verify checks what was restored: not with -n");
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
