/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn forget: remove snapshots by retention policy or by ID, optionally prune. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "policy.h"
#include "timefmt.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn forget [policy] [--group-by KEYS] [--group-of SNAPSHOT] [filters]\n"
        "                    [-n] [--prune]\n"
        "       cairn forget [-n] [--prune] SNAPSHOT...\n"
        "\n"
        "Removes snapshots: those the policy does not keep, in each group of snapshots\n"
        "with the same host and paths, or the snapshots named (also a damaged one,\n"
        "which other commands skip with a warning). The data they used is freed by\n"
        "'cairn prune' (or --prune).\n"
        "\n"
        "Policy (a snapshot is kept when any rule selects it; N may be -1 for all):\n"
        "  --keep-last N          the N newest snapshots\n"
        "  --keep-hourly N        the newest snapshot of each of the last N hours\n"
        "  --keep-daily N         ... days\n"
        "  --keep-weekly N        ... ISO weeks\n"
        "  --keep-monthly N       ... months\n"
        "  --keep-yearly N        ... years (periods with a snapshot; local time)\n"
        "  --keep-within DURATION everything newer than DURATION before now (1y6m,\n"
        "                         7d, 12h; y, m, d on the local calendar, h as real\n"
        "                         hours)\n"
        "  --keep-tag TAG[,TAG...]  snapshots with all these tags (repeatable: any\n"
        "                         of the lists)\n"
        "\n"
        "  --group-by KEYS        host, paths, tags, comma-separated, or '' for one group\n"
        "                         (default host,paths)\n"
        "  --group-of SNAPSHOT    only the group SNAPSHOT belongs to (what 'cairn run'\n"
        "                         uses: a job's policy applies to its own snapshots)\n"
        "\n"
        "Filters (the snapshots the policy considers; with SNAPSHOT... and --group-of,\n"
        "what 'latest' means):\n" SNAPSEL_HELP "\n"
        "  -n, --dry-run          show what would be kept and removed, and why\n"
        "  --prune                run 'cairn prune' afterwards\n"
        "  --max-unused PERCENT   for --prune (default 5)\n"
        "  --lock-wait SECONDS    wait this long for other commands to finish\n"
        "  --json                 JSON lines: one per snapshot, then a summary\n";

enum {
	OPT_KEEP_LAST = OPT_FIRST_COMMAND_OPT, /* the counted rules, in policy order */
	OPT_KEEP_HOURLY,
	OPT_KEEP_DAILY,
	OPT_KEEP_WEEKLY,
	OPT_KEEP_MONTHLY,
	OPT_KEEP_YEARLY,
	OPT_KEEP_WITHIN,
	OPT_KEEP_TAG,
	OPT_GROUP_BY,
	OPT_GROUP_OF,
	OPT_PRUNE,
	OPT_MAX_UNUSED,
	OPT_LOCK_WAIT,
};

struct forget_args {
	struct policy policy;
	char **tags; /* policy.tags, owned */
	unsigned group_by;
	const char *group_of; /* --group-of: judge only this snapshot's group */
	struct snapsel sel;
	bool dry_run, prune, json;
	double max_unused;
	unsigned wait;
};

static int add_tag(struct forget_args *a, const char *arg)
{
	_cleanup_free_ char *group = NULL;
	int r = snapsel_tag_group("--keep-tag", arg, false, &group);
	if (r < 0)
		return r;
	char **v = realloc(a->tags, (a->policy.ntags + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	v[a->policy.ntags++] = TAKE_PTR(group);
	a->tags = v;
	a->policy.tags = (const char *const *)v;
	return 0;
}

static void forget_args_release(struct forget_args *a)
{
	for (size_t i = 0; i < a->policy.ntags; i++)
		free(a->tags[i]);
	free(a->tags);
	snapsel_release(&a->sel);
}

static int handle(int c, const char *arg, void *payload)
{
	struct forget_args *a = payload;
	long v;
	int r = snapsel_opt(&a->sel, c, arg);

	if (r != 1)
		return r;
	if (c >= OPT_KEEP_LAST && c < OPT_KEEP_LAST + POLICY_NBUCKETS) {
		if ((r = cli_parse_int(arg, -1, 1000000, &v)) < 0)
			return r;
		a->policy.keep[c - OPT_KEEP_LAST] = (int)v;
		return 0;
	}
	switch (c) {
	case OPT_KEEP_WITHIN:
		a->policy.has_within = true;
		return policy_parse_duration(arg, &a->policy.within);
	case OPT_KEEP_TAG:
		return add_tag(a, arg);
	case OPT_GROUP_BY:
		return policy_parse_group_by(arg, &a->group_by);
	case OPT_GROUP_OF:
		a->group_of = arg;
		return 0;
	case 'n':
		a->dry_run = true;
		return 0;
	case OPT_PRUNE:
		a->prune = true;
		return 0;
	case OPT_MAX_UNUSED: {
		char *end;
		a->max_unused = strtod(arg, &end);
		if (end == arg || *end || !(a->max_unused >= 0 && a->max_unused <= 100))
			return cairn_err_set(-EINVAL, "'%s' is not a percentage from 0 to 100",
			                     arg);
		return 0;
	}
	case OPT_LOCK_WAIT:
		return maint_parse_wait(arg, &a->wait);
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* ---- deciding ----------------------------------------------------------- */

/* The decision for each snapshot of the list (oldest first, as listed). */
struct verdict {
	unsigned reasons; /* POLICY_* bits: why it is kept */
	bool remove, considered;
	bool named; /* removed because the command line named it */
	size_t group;
};

static int by_ids(const struct forget_args *a, struct cairn_snapshot **list, size_t n, char **ids,
                  size_t nids, struct verdict *v)
{
	for (size_t i = 0; i < nids; i++) {
		int k = snapsel_find(&a->sel, list, n, ids[i]);
		if (k < 0)
			return k;
		v[k].remove = v[k].considered = v[k].named = true;
	}
	return 0;
}

/* Run the policy over the snapshots of group g, newest first. */
static int judge_group(const struct forget_args *a, struct cairn_snapshot **list, size_t n,
                       struct verdict *v, size_t g, int64_t now)
{
	_cleanup_free_ struct policy_item *items = calloc(n ? n : 1, sizeof(*items));
	_cleanup_free_ size_t *at = calloc(n ? n : 1, sizeof(*at));
	size_t m = 0;

	if (!items || !at)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = n; i-- > 0;) {
		if (!v[i].considered || v[i].group != g)
			continue;
		items[m] =
		        (struct policy_item){ list[i]->time_ns, list[i]->tags, list[i]->ntags, 0 };
		at[m++] = i;
	}
	policy_apply(&a->policy, items, m, now);
	for (size_t j = 0; j < m; j++) {
		v[at[j]].reasons = items[j].reasons;
		v[at[j]].remove = items[j].reasons == 0;
	}
	return 0;
}

/* Returns the number of groups. */
static int by_policy(const struct forget_args *a, struct cairn_snapshot **list, size_t n,
                     struct verdict *v)
{
	_cleanup_free_ size_t *group = calloc(n ? n : 1, sizeof(*group));
	if (!group)
		return cairn_err_set(-ENOMEM, "out of memory");
	int groups = policy_group(list, n, a->group_by, group);
	if (groups < 0)
		return groups;
	/* --group-of: the snapshots of every other group are not even looked at. */
	int of = a->group_of ? snapsel_find(&a->sel, list, n, a->group_of) : 0;
	if (of < 0)
		return of;
	for (size_t i = 0; i < n; i++) {
		v[i].group = group[i];
		v[i].considered =
		        snapsel_match(&a->sel, list[i]) && (!a->group_of || group[i] == group[of]);
	}
	int64_t now = (int64_t)time(NULL);
	for (int g = 0; g < groups; g++) {
		int r = judge_group(a, list, n, v, (size_t)g, now);
		if (r < 0)
			return r;
	}
	return groups;
}

/* ---- output ------------------------------------------------------------- */

static void print_group_header(const struct cairn_snapshot *s, unsigned by)
{
	const char *sep = "";
	if (by & POLICY_GROUP_HOST) {
		fputs("host ", stdout);
		cairn_text_name(stdout, s->hostname, strlen(s->hostname));
		sep = ", ";
	}
	if (by & POLICY_GROUP_PATHS) {
		printf("%spaths", sep);
		for (size_t i = 0; i < s->npaths; i++) {
			fputc(' ', stdout);
			cairn_text_name(stdout, s->paths[i], strlen(s->paths[i]));
		}
		sep = ", ";
	}
	if (by & POLICY_GROUP_TAGS) {
		printf("%stags", sep);
		for (size_t i = 0; i < s->ntags; i++) {
			fputc(' ', stdout);
			cairn_text_name(stdout, s->tags[i], strlen(s->tags[i]));
		}
	}
	printf(":\n");
}

static void print_text(const struct cairn_snapshot *s, const struct verdict *v)
{
	char id[9], when[TIMEFMT_MAX], why[128];
	maint_short_id(id, &s->id);
	timefmt_local(when, s->time_ns);
	policy_reasons_str(v->reasons, why, sizeof(why));
	printf("  %-6s  %s  %s  %s\n", v->remove ? "remove" : "keep", id, when,
	       v->named ? "named" : why);
}

static void print_json(const struct cairn_snapshot *s, const struct verdict *v)
{
	char id[CAIRN_ID_HEX_SIZE], when[TIMEFMT_MAX];
	cairn_id_hex(id, &s->id);
	timefmt_rfc3339(when, s->time_ns);
	printf("{\"message_type\":\"snapshot\",\"id\":\"%s\",\"time\":\"%s\",\"host\":", id, when);
	cli_json_str(stdout, s->hostname, strlen(s->hostname));
	printf(",\"group\":%zu,\"action\":\"%s\",\"reasons\":[", v->group,
	       v->remove ? "remove" : "keep");
	for (unsigned b = 0, k = 0; b < 8; b++)
		if (v->reasons & (1u << b))
			printf("%s\"%s\"", k++ ? "," : "", policy_reason_name(1u << b));
	printf("]}\n");
}

/* Newest first within each group, groups in order of their oldest snapshot. */
static void print_all(const struct forget_args *a, struct cairn_snapshot **list, size_t n,
                      const struct verdict *v, size_t groups)
{
	for (size_t g = 0; g < groups; g++) {
		bool header = false;
		for (size_t i = n; i-- > 0;) {
			if (!v[i].considered || v[i].group != g)
				continue;
			if (a->json) {
				print_json(list[i], &v[i]);
				continue;
			}
			if (!header && a->group_by)
				print_group_header(list[i], a->group_by);
			header = true;
			print_text(list[i], &v[i]);
		}
	}
}

/* ---- running ------------------------------------------------------------ */

static void tally(const struct verdict *v, size_t n, size_t *removed, size_t *kept)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].considered)
			(*(v[i].remove ? removed : kept))++;
}

static int remove_marked(cairn_repo *repo, struct cairn_snapshot **list, size_t n,
                         const struct verdict *v)
{
	for (size_t i = 0; i < n; i++) {
		if (!v[i].considered || !v[i].remove)
			continue;
		int r = interrupt_check();
		if (r >= 0)
			r = cairn_repo_snapshot_delete(repo, &list[i]->id);
		if (r < 0)
			return r;
	}
	return 0;
}

static void summary(const struct forget_args *a, size_t removed, size_t kept)
{
	if (a->json)
		printf("{\"message_type\":\"summary\",\"command\":\"forget\",\"dry_run\":%s,"
		       "\"kept\":%zu,\"removed\":%zu}\n",
		       a->dry_run ? "true" : "false", kept, removed);
	else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("%s %zu %s, %s %zu%s\n", a->dry_run ? "would remove" : "removed", removed,
		       cli_plural(removed, "snapshot", "snapshots"),
		       a->dry_run ? "would keep" : "kept", kept,
		       a->dry_run ? " (dry run: nothing was changed)" : "");
}

/* Decide, print, remove. Returns < 0 on failure. */
static int judge_and_remove(cairn_repo *repo, const struct forget_args *a,
                            struct cairn_snapshot **list, size_t n, char **ids, size_t nids)
{
	_cleanup_free_ struct verdict *v = calloc(n ? n : 1, sizeof(*v));
	size_t removed = 0, kept = 0;
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	int groups = nids ? by_ids(a, list, n, ids, nids, v) : by_policy(a, list, n, v);
	if (groups < 0)
		return groups;
	print_all(a, list, n, v, nids ? 1 : (size_t)groups);
	fflush(stdout);
	tally(v, n, &removed, &kept);
	int r = a->dry_run ? 0 : remove_marked(repo, list, n, v);
	if (r >= 0)
		summary(a, removed, kept);
	return r;
}

/* Named snapshots that the listing left out as damaged are removed here, by the
 * ID in their file name, and dropped from ids. */
static int remove_damaged(cairn_repo *repo, const struct forget_args *a,
                          struct cairn_snapshot **list, size_t n, char **ids, size_t *nids)
{
	for (size_t i = 0; i < *nids;) {
		struct cairn_id id;
		char hex[CAIRN_ID_HEX_SIZE];
		int r;
		if (strcmp(ids[i], "latest") == 0) {
			i++;
			continue;
		}
		if ((r = cairn_repo_snapshot_resolve(repo, ids[i], &id)) < 0)
			return r;
		cairn_id_hex(hex, &id);
		if (cairn_snapshot_find(list, n, hex) >= 0) {
			i++;
			continue;
		}
		if (!a->dry_run && ((r = interrupt_check()) < 0 ||
		                    (r = cairn_repo_snapshot_delete(repo, &id)) < 0))
			return r;
		if (a->json)
			printf("{\"message_type\":\"snapshot\",\"id\":\"%s\",\"action\":\"remove\","
			       "\"damaged\":true}\n",
			       hex);
		else
			printf("%s damaged snapshot %.8s\n",
			       a->dry_run ? "would remove" : "removed", hex);
		ids[i] = ids[--*nids];
	}
	return 0;
}

static int forget(cairn_repo *repo, const struct forget_args *a, char **ids, size_t nids,
                  cairn_lock *lock)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0, named = nids;
	int r = cairn_repo_snapshot_list(repo, &list, &n);

	if (r >= 0)
		r = remove_damaged(repo, a, list, n, ids, &nids);
	/* When every named snapshot was a damaged one, there is nothing to judge. */
	if (r >= 0 && (named == 0 || nids > 0))
		r = judge_and_remove(repo, a, list, n, ids, nids);
	cairn_snapshot_list_free(list, n);
	if (r >= 0 && a->prune) {
		struct maint_prune_opts po = { a->max_unused, a->dry_run, a->json, lock };
		r = maint_prune(repo, &po);
	}
	return r;
}

static int check_usage(const struct forget_args *a, int nids)
{
	bool policy = !policy_is_empty(&a->policy);
	if (!policy && nids == 0)
		return cli_usage_error("forget: give a policy (--keep-...) or snapshot IDs; "
		                       "see 'cairn forget --help'");
	if (policy && nids > 0)
		return cli_usage_error("forget: give either a policy or snapshot IDs, not both");
	if (a->group_of && nids > 0)
		return cli_usage_error("forget: --group-of goes with a policy, not snapshot IDs");
	return 0;
}

int cmd_forget(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "keep-last", required_argument, NULL, OPT_KEEP_LAST },
		{ "keep-hourly", required_argument, NULL, OPT_KEEP_HOURLY },
		{ "keep-daily", required_argument, NULL, OPT_KEEP_DAILY },
		{ "keep-weekly", required_argument, NULL, OPT_KEEP_WEEKLY },
		{ "keep-monthly", required_argument, NULL, OPT_KEEP_MONTHLY },
		{ "keep-yearly", required_argument, NULL, OPT_KEEP_YEARLY },
		{ "keep-within", required_argument, NULL, OPT_KEEP_WITHIN },
		{ "keep-tag", required_argument, NULL, OPT_KEEP_TAG },
		{ "group-by", required_argument, NULL, OPT_GROUP_BY },
		{ "group-of", required_argument, NULL, OPT_GROUP_OF },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "prune", no_argument, NULL, OPT_PRUNE },
		{ "max-unused", required_argument, NULL, OPT_MAX_UNUSED },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct forget_args a = { .group_by = POLICY_GROUP_HOST | POLICY_GROUP_PATHS,
		                 .max_unused = 5 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .lock_first = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "n", longopts, usage, handle, &a);
	int r = i < 0 ? CLI_PARSE_EXIT(i) : check_usage(&a, argc - i);
	if (i < 0 || r != 0) {
		forget_args_release(&a);
		return r;
	}
	r = cli_open_repo(&repo, &ro);
	/* Removing snapshots never disturbs a backup (one that chose a removed
	 * parent stores again what a prune deletes), so only --prune keeps another
	 * prune away. */
	if (r >= 0)
		r = cairn_repo_lock(repo,
		                    a.prune && !a.dry_run ? CAIRN_LOCK_PRUNE : CAIRN_LOCK_SHARED,
		                    "forget", a.wait, &lock);
	if (r >= 0) {
		interrupt_catch("forget");
		r = interrupt_result(forget(repo, &a, argv + i, (size_t)(argc - i), lock));
	}
	forget_args_release(&a);
	return r < 0 ? cli_fail(r) : 0;
}
