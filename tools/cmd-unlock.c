/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn unlock: list repository locks and remove stale ones (FORMAT.md §11). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "timefmt.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn unlock [--all | --list]\n"
        "\n"
        "Removes stale locks: those of processes on this host that no longer run,\n"
        "those not refreshed for 30 minutes, and those released by hosts that may not\n"
        "delete them (credentials that only add objects). No password is needed.\n"
        "\n"
        "  --all    remove every lock, also of commands that may still run\n"
        "  --list   only list the locks\n";

enum { OPT_ALL = OPT_FIRST_COMMAND_OPT, OPT_LIST };

struct unlock_args {
	bool all, list;
};

static int handle(int c, const char *arg, void *payload)
{
	struct unlock_args *a = payload;
	(void)arg;
	if (c == OPT_ALL)
		a->all = true;
	else if (c == OPT_LIST)
		a->list = true;
	else
		return cairn_err_set(-EINVAL, "unknown option");
	return 0;
}

/* Lock files come from whoever can write the repository: escape what they say. */
static void put_text(const char *s)
{
	cairn_text_str(stdout, s, strlen(s));
}

static void describe(const char *verb, const struct cairn_lock_info *l)
{
	char since[TIMEFMT_MAX];
	timefmt_local(since, l->start * 1000000000);
	if (l->kind == 0) {
		printf("%slock ", verb);
		put_text(l->name);
		fputs(" (unreadable)\n", stdout);
		return;
	}
	printf("%s%s lock ", verb, cairn_lock_kind_name(l->kind));
	put_text(l->name);
	fputs(": ", stdout);
	put_text(l->command);
	fputs(" on host ", stdout);
	put_text(l->host);
	printf(" pid %lld since %s%s\n", (long long)l->pid, since,
	       l->dead       ? " (process gone)"
	       : l->released ? " (released)"
	       : l->stale    ? " (stale)"
	                     : "");
}

static int unlock(cairn_storage *repo, const struct unlock_args *a)
{
	_cleanup_free_ struct cairn_lock_info *v = NULL;
	size_t n = 0, kept = 0;
	int r = cairn_lock_list(repo, &v, &n);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (a->list) {
			describe("", &v[i]);
			continue;
		}
		if (!a->all && !v[i].stale) {
			kept++;
			continue;
		}
		r = cairn_lock_remove(repo, v[i].name);
		if (r == -ENOENT)
			r = 0; /* its holder released it meanwhile */
		else if (r >= 0)
			describe("removed ", &v[i]);
	}
	if (r >= 0 && kept)
		printf("%zu %s (--all removes them)\n", kept,
		       cli_plural(kept, "lock of a running command was kept",
		                  "locks of running commands were kept"));
	return r;
}

int cmd_unlock(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "all", no_argument, NULL, OPT_ALL },
		{ "list", no_argument, NULL, OPT_LIST },
		{ 0 },
	};
	struct unlock_args a = { 0 };
	const char *repo;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i != argc)
		return cli_usage_error("unlock: unexpected argument '%s'", argv[i]);
	if (a.all && a.list)
		return cli_usage_error("unlock: --all and --list exclude each other");
	/* No password: locks are plain text (FORMAT.md §11). */
	cairn_storage *st = NULL;
	int r = cli_repo_path(&repo);
	if (r >= 0)
		r = cairn_repo_probe(repo, cli_storage_opts());
	if (r >= 0)
		r = cairn_storage_open(&st, repo, cli_storage_opts());
	if (r >= 0)
		r = unlock(st, &a);
	int code = r < 0 ? cli_fail(r) : 0;
	cairn_storage_close(st);
	return code;
}
