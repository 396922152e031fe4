/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn find: entries matching glob patterns, across snapshots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "maint.h"
#include "pattern.h"
#include "restorer.h"
#include "timefmt.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn find [--snapshot SNAP]... [--host H] [--path P] [--tag T] [--json]\n"
        "                  PATTERN...\n"
        "\n"
        "Prints the entries of every snapshot (oldest first) that match a pattern:\n"
        "short snapshot ID, snapshot time and path. A pattern without '/' matches a\n"
        "name anywhere ('*.conf'); one with '/' matches the end of a path ('etc/*.conf'),\n"
        "or the whole path when it starts with '/'; '**' spans directories. A matching\n"
        "directory is printed once, without what it contains.\n"
        "\n"
        "  --snapshot SNAP        search only this snapshot (ID, prefix or 'latest';\n"
        "                         repeatable)\n" SNAPSEL_HELP
        "  --json                 JSON lines: snapshot, time, path, type, size, mtime\n"
        "\n"
        "Without --snapshot, every snapshot the filters match is searched; with it, the\n"
        "snapshots named, where 'latest' is the newest one the filters match. A\n"
        "snapshot whose trees cannot be read is reported by ID and the others are\n"
        "searched; the exit status is then 1.\n"
        "\n"
        "Paths are printed as 'cairn ls' prints them: control characters as \\xNN, a\n"
        "backslash as \\\\; --json keeps them exact.\n";

enum { OPT_SNAPSHOT = OPT_FIRST_COMMAND_OPT };

struct find_args {
	const char **snaps;
	size_t nsnaps;
	struct snapsel sel;
	bool json;
};

struct finder {
	cairn_repo *repo;
	const struct find_args *a;
	struct pattern_list *pats;
	const struct cairn_snapshot *snap;
	struct maint_path path;
	struct cairn_idset barren; /* (tree, path) known to hold no match */
	uint64_t matches;
};

/* ---- walking ------------------------------------------------------------ */

/* The same tree at the same path matches the same way in every snapshot, so a
 * subtree without matches is skipped the next time: key it by both. */
static struct cairn_id barren_key(const struct finder *f, const struct cairn_id *tree)
{
	struct cairn_id k = *tree;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < f->path.b.len; i++)
		h = (h ^ f->path.b.data[i]) * 0x100000001b3ull;
	for (int i = 0; i < 8; i++)
		k.b[i] ^= (uint8_t)(h >> (8 * i));
	return k;
}

static void print_match(struct finder *f, const struct cairn_node *n)
{
	char id[CAIRN_ID_HEX_SIZE], when[TIMEFMT_MAX], mtime[TIMEFMT_MAX];
	size_t len;
	const char *p = maint_path_str(&f->path, &len);

	f->matches++;
	if (!f->a->json) {
		maint_short_id(id, &f->snap->id);
		timefmt_local(when, f->snap->time_ns);
		printf("%s  %s  ", id, when);
		cairn_text_name(stdout, p, len);
		fputs(n->type == CAIRN_NODE_DIR ? "/\n" : "\n", stdout);
		return;
	}
	cairn_id_hex(id, &f->snap->id);
	timefmt_rfc3339(when, f->snap->time_ns);
	timefmt_rfc3339(mtime, n->mtime_ns);
	printf("{\"snapshot\":\"%s\",\"time\":\"%s\",\"path\":", id, when);
	cli_json_str(stdout, p, len);
	printf(",\"type\":\"%s\",\"size\":%llu,\"mtime\":\"%s\"}\n", restorer_type_name(n->type),
	       (unsigned long long)n->size, mtime);
}

static int walk(struct finder *f, const struct cairn_id *tree);

/* 1 if n or something below it matched. */
static int visit(struct finder *f, const struct cairn_node *n)
{
	size_t mark, len;
	int r = maint_path_push(&f->path, n->name, n->name_len, &mark);
	const char *p = maint_path_str(&f->path, &len);

	if (r >= 0 && pattern_list_match(f->pats, p, len)) {
		print_match(f, n);
		r = 1;
	} else if (r >= 0 && n->type == CAIRN_NODE_DIR &&
	           pattern_list_match_below(f->pats, p, len)) {
		r = walk(f, &n->subtree);
	}
	maint_path_pop(&f->path, mark);
	return r;
}

static int walk(struct finder *f, const struct cairn_id *tree)
{
	struct cairn_id key = barren_key(f, tree);
	cairn_tree *t = NULL;
	int r, found = 0;

	if (cairn_idset_has(&f->barren, &key))
		return 0;
	if ((r = cairn_repo_tree_load(f->repo, tree, &t)) < 0)
		return r;
	for (size_t i = 0; i < cairn_tree_count(t); i++) {
		if ((r = visit(f, cairn_tree_node(t, i))) < 0)
			break;
		found |= r;
	}
	cairn_tree_free(t);
	if (r >= 0 && !found)
		r = cairn_idset_add(&f->barren, &key, 0);
	return r < 0 ? r : found;
}

/* ---- command ------------------------------------------------------------ */

static int search(struct finder *f)
{
	struct cairn_snapshot **list = NULL;
	_cleanup_free_ bool *want = NULL;
	size_t n = 0, damaged = 0;
	int r = cairn_repo_snapshot_list(f->repo, &list, &n);

	if (r >= 0 && !(want = calloc(n ? n : 1, sizeof(*want))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0)
		r = snapsel_choose(&f->a->sel, list, n, (char *const *)f->a->snaps, f->a->nsnaps,
		                   want);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (!want[i])
			continue;
		f->snap = list[i];
		r = walk(f, &list[i]->root);
		/* The other snapshots are searched all the same. */
		if (r < 0 && maint_snapshot_damaged(list[i], r)) {
			damaged++;
			r = 0;
		}
	}
	cairn_snapshot_list_free(list, n);
	if (r >= 0)
		log_info("%llu %s", (unsigned long long)f->matches,
		         cli_plural(f->matches, "match", "matches"));
	return r < 0 ? r : maint_damaged_result(damaged);
}

static int handle(int c, const char *arg, void *payload)
{
	struct find_args *a = payload;
	const char **v;
	int r = snapsel_opt(&a->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case OPT_SNAPSHOT:
		if (!(v = realloc(a->snaps, (a->nsnaps + 1) * sizeof(*v))))
			return cairn_err_set(-ENOMEM, "out of memory");
		v[a->nsnaps++] = arg;
		a->snaps = v;
		return 0;
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static int run(struct find_args *a, char **pats, size_t npats)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	struct finder f = { .a = a, .path = { CAIRN_BUF_INIT } };
	int r = pattern_list_new(&f.pats);

	for (size_t i = 0; r >= 0 && i < npats; i++)
		r = pattern_list_add(f.pats, pats[i]);
	if (r == -EINVAL) {
		r = cli_usage_error("find: %s", cairn_err_msg());
		pattern_list_free(f.pats);
		return r;
	}
	cairn_idset_init(&f.barren);
	if (r >= 0)
		r = cli_open_repo(&f.repo, &ro);
	if (r >= 0)
		r = search(&f);
	cairn_repo_close(f.repo);
	cairn_idset_release(&f.barren);
	cairn_buf_release(&f.path.b);
	pattern_list_free(f.pats);
	return r < 0 ? cli_fail(r) : 0;
}

int cmd_find(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "snapshot", required_argument, NULL, OPT_SNAPSHOT },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct find_args a = { 0 };

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &a);
	int rc = i < 0       ? CLI_PARSE_EXIT(i)
	         : i >= argc ? cli_usage_error("find: give at least one pattern")
	                     : run(&a, argv + i, (size_t)(argc - i));
	free(a.snaps);
	snapsel_release(&a.sel);
	return rc;
}
