/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn prune: delete what no snapshot references (DESIGN.md "Prune"). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn prune [--max-unused PERCENT] [-n|--dry-run] [--lock-wait SECONDS] [--json]\n"
        "\n"
        "Deletes the data no snapshot references: packs without a used blob are\n"
        "deleted, and packs whose unused share is above the limit are repacked (their\n"
        "used blobs copied into new packs), and so are small packs (below a quarter\n"
        "of the pack size) of one kind, trees or data, when there are several: they\n"
        "are merged into one. Backups may run meanwhile, on any host:\n"
        "the packs a running backup could still use are deleted by the next prune\n"
        "after it ended, and the ones nobody waits for at once. Only one prune runs\n"
        "at a time; mounts go on working. Interrupting it at any point loses nothing.\n"
        "In a bucket it also aborts the uploads of packs begun more than a day ago.\n"
        "\n"
        "  --max-unused PERCENT  repack packs with more unused space than this (default 5)\n"
        "  -n, --dry-run         only report what would be done\n"
        "  --lock-wait SECONDS   wait this long for other commands to finish (default 0)\n"
        "  --json                print the summary as one JSON object\n";

enum { OPT_MAX_UNUSED = OPT_FIRST_COMMAND_OPT, OPT_LOCK_WAIT };

struct prune_args {
	struct maint_prune_opts po;
	unsigned wait;
};

static int parse_percent(const char *arg, double *out)
{
	char *end;
	double v = strtod(arg, &end);
	if (end == arg || (*end && strcmp(end, "%") != 0) || !(v >= 0 && v <= 100))
		return cairn_err_set(-EINVAL, "'%s' is not a percentage from 0 to 100", arg);
	*out = v;
	return 0;
}

static int handle(int c, const char *arg, void *payload)
{
	struct prune_args *a = payload;
	switch (c) {
	case OPT_MAX_UNUSED:
		return parse_percent(arg, &a->po.max_unused);
	case 'n':
		a->po.dry_run = true;
		return 0;
	case OPT_LOCK_WAIT:
		return maint_parse_wait(arg, &a->wait);
	case OPT_JSON:
		a->po.json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

int cmd_prune(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ 0 },
	};
	struct prune_args a = { .po = { .max_unused = 5 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .lock_first = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "n", longopts, usage, handle, &a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i != argc)
		return cli_usage_error("prune: unexpected argument '%s'", argv[i]);
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = cairn_repo_lock(repo, CAIRN_LOCK_PRUNE, "prune", a.wait, &lock);
	a.po.lock = lock;
	if (r >= 0) {
		interrupt_catch("prune");
		r = interrupt_result(maint_prune(repo, &a.po));
	}
	return r < 0 ? cli_fail(r) : 0;
}
