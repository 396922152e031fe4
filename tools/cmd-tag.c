/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn tag: add, remove or set the tags of existing snapshots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn tag [--add TAGS]... [--remove TAGS]... [--set TAGS]... [filters] [SNAP...]\n"
        "\n"
        "Changes the tags of the snapshots named (IDs, prefixes or 'latest'), or\n"
        "without SNAP of every snapshot the filters match. TAGS is one tag or a\n"
        "comma-separated list (blanks around each tag left out); --set replaces all\n"
        "tags ('--set \"\"' removes them) and cannot be combined with --add or\n"
        "--remove.\n"
        "\n"
        "  --add TAGS             add these tags\n"
        "  --remove TAGS          remove these tags\n"
        "  --set TAGS             make these the only tags\n" SNAPSEL_HELP
        "  -n, --dry-run          show what would change, and change nothing\n"
        "  --lock-wait SECONDS    wait this long for prune to finish\n"
        "  --json                 JSON lines: one per changed snapshot, then a summary\n"
        "\n"
        "A snapshot never changes: each one whose tags change is replaced by a new\n"
        "snapshot with a new ID, the new tags and everything else kept (time, host,\n"
        "paths, tree, parent, summary), and the old one is removed. The snapshot\n"
        "format has no field for the original's ID, so the new snapshot does not\n"
        "record it: the output pairs each old ID with its new one.\n";

enum { OPT_ADD = OPT_FIRST_COMMAND_OPT, OPT_REMOVE, OPT_SET, OPT_LOCK_WAIT };

/* A list of tags, borrowed from the arguments or from a snapshot. */
struct tags {
	const char **v;
	size_t n;
};

struct tag_args {
	struct cli_tags add, remove, set;
	bool has_set, dry_run, json;
	unsigned wait;
	struct snapsel sel;
};

static bool has_tag(const struct tags *t, const char *tag)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i], tag) == 0)
			return true;
	return false;
}

/* Append tag unless present. */
static int push(struct tags *t, const char *tag)
{
	if (has_tag(t, tag))
		return 0;
	if (t->n >= CAIRN_SNAPSHOT_MAX_TAGS)
		return cairn_err_set(-EINVAL, "more than %u tags", CAIRN_SNAPSHOT_MAX_TAGS);
	const char **v = realloc(t->v, (t->n + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	v[t->n++] = tag;
	t->v = v;
	return 0;
}

static int handle(int c, const char *arg, void *payload)
{
	struct tag_args *a = payload;
	int r = snapsel_opt(&a->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case OPT_ADD:
	case OPT_REMOVE: /* "" adds none: only --set "" means something (no tags) */
		if (!*arg)
			return cairn_err_set(-EINVAL, "--%s: a tag cannot be empty",
			                     c == OPT_ADD ? "add" : "remove");
		return cli_tags_add(c == OPT_ADD ? &a->add : &a->remove, arg);
	case OPT_SET:
		a->has_set = true;
		return cli_tags_add(&a->set, arg);
	case 'n':
		a->dry_run = true;
		return 0;
	case OPT_LOCK_WAIT:
		return maint_parse_wait(arg, &a->wait);
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* The tags s gets: 1 when they differ from its tags (as sets), 0 if not. */
static int new_tags(const struct tag_args *a, const struct cairn_snapshot *s, struct tags *out)
{
	int r = 0;
	for (size_t i = 0; i < (a->has_set ? a->set.n : s->ntags) && r >= 0; i++) {
		const char *t = a->has_set ? a->set.v[i] : s->tags[i];
		if (!cli_tags_has(&a->remove, t))
			r = push(out, t);
	}
	for (size_t i = 0; i < a->add.n && r >= 0; i++)
		r = push(out, a->add.v[i]);
	if (r < 0)
		return r;
	struct tags old = { (const char **)s->tags, s->ntags };
	bool same = out->n == old.n;
	for (size_t i = 0; i < out->n && same; i++)
		same = has_tag(&old, out->v[i]);
	return !same;
}

static void print_change(const struct tag_args *a, const struct cairn_snapshot *old,
                         const struct cairn_snapshot *now, const struct tags *t)
{
	char o[CAIRN_ID_HEX_SIZE], n[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(o, &old->id);
	cairn_id_hex(n, &now->id);
	if (a->json) {
		printf("{\"message_type\":\"changed_snapshot\",\"old_snapshot_id\":\"%s\","
		       "\"new_snapshot_id\":",
		       o);
		if (a->dry_run)
			fputs("null", stdout);
		else
			printf("\"%s\"", n);
		fputs(",\"tags\":[", stdout);
		for (size_t i = 0; i < t->n; i++) {
			fputs(i ? "," : "", stdout);
			cli_json_str(stdout, t->v[i], strlen(t->v[i]));
		}
		fputs("]}\n", stdout);
		return;
	}
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	printf("%.8s -> %.8s  tags:", o, a->dry_run ? "(new)" : n);
	for (size_t i = 0; i < t->n; i++) {
		fputs(i ? ", " : " ", stdout);
		cairn_text_name(stdout, t->v[i], strlen(t->v[i]));
	}
	fputs(t->n ? "\n" : " none\n", stdout);
}

/* Write s again with the tags t, then remove the original: a crash in between
 * leaves both, never neither. */
static int retag(cairn_repo *repo, const struct tag_args *a, const struct cairn_snapshot *s,
                 cairn_lock *lock)
{
	struct tags t = { 0 };
	struct cairn_snapshot copy = *s; /* shallow: strings stay s's */
	int r = new_tags(a, s, &t);
	if (r > 0 && !a->dry_run) {
		copy.tags = (char **)t.v;
		copy.ntags = t.n;
		if ((r = interrupt_check()) >= 0 && (r = cairn_lock_refresh(lock)) >= 0 &&
		    (r = cairn_repo_snapshot_save(repo, &copy)) >= 0)
			r = cairn_repo_snapshot_delete(repo, &s->id);
		r = r < 0 ? r : 1;
	}
	if (r > 0)
		print_change(a, s, &copy, &t);
	free(t.v);
	return r;
}

static int tag_all(cairn_repo *repo, const struct tag_args *a, char **specs, size_t nspecs,
                   cairn_lock *lock)
{
	struct cairn_snapshot **list = NULL;
	_cleanup_free_ bool *want = NULL;
	size_t n = 0, changed = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);

	if (r >= 0 && !(want = calloc(n ? n : 1, sizeof(*want))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0)
		r = snapsel_choose(&a->sel, list, n, specs, nspecs, want);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (want[i] && (r = retag(repo, a, list[i], lock)) > 0)
			changed++;
	cairn_snapshot_list_free(list, n);
	if (r < 0)
		return r;
	if (a->json)
		printf("{\"message_type\":\"summary\",\"command\":\"tag\",\"dry_run\":%s,"
		       "\"changed_snapshots\":%zu}\n",
		       a->dry_run ? "true" : "false", changed);
	else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("%s the tags of %zu %s\n", a->dry_run ? "would change" : "changed", changed,
		       cli_plural(changed, "snapshot", "snapshots"));
	return 0;
}

static int tag_main(struct tag_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "add", required_argument, NULL, OPT_ADD },
		{ "remove", required_argument, NULL, OPT_REMOVE },
		{ "set", required_argument, NULL, OPT_SET },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "n", longopts, usage, handle, a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (!a->has_set && a->add.n == 0 && a->remove.n == 0)
		return cli_usage_error("tag: say what to change with --add, --remove or --set");
	if (a->has_set && (a->add.n || a->remove.n))
		return cli_usage_error("tag: --set cannot be combined with --add or --remove");
	int r = cli_open_repo(&repo, &ro);
	/* Shared, like backup: only prune must not run while snapshots change. */
	if (r >= 0)
		r = cairn_repo_lock(repo, CAIRN_LOCK_SHARED, "tag", a->wait, &lock);
	if (r >= 0) {
		interrupt_catch("tag");
		r = interrupt_result(tag_all(repo, a, argv + i, (size_t)(argc - i), lock));
	}
	return r < 0 ? cli_fail(r) : 0;
}

int cmd_tag(int argc, char **argv)
{
	struct tag_args a = { 0 };
	int rc = tag_main(&a, argc, argv);
	cli_tags_release(&a.add);
	cli_tags_release(&a.remove);
	cli_tags_release(&a.set);
	snapsel_release(&a.sel);
	return rc;
}
