/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn rewrite: remove excluded paths from existing snapshots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "pattern.h"
#include "restorer.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn rewrite --exclude GLOB... [--forget] [-n] [filters] [SNAP...]\n"
        "\n"
        "Removes the paths matching the exclude patterns from the snapshots named\n"
        "(IDs, prefixes or 'latest'), or without SNAP from every snapshot the\n"
        "filters match. Each snapshot that holds such a path gets a rewritten copy:\n"
        "a new snapshot with new trees and everything else kept (host, paths, tags,\n"
        "parent, summary), and the original's time plus 1 ns, so that the copy counts\n"
        "as the newer one for 'latest', forget and the next backup's parent.\n"
        "Snapshots without a match are left alone.\n"
        "\n"
        "  --exclude GLOB         remove matching paths (repeatable)\n"
        "  --exclude-file FILE    read exclude patterns from FILE, one per line\n"
        "  --forget               remove each original once its copy is saved\n"
        "                         (default: keep both)\n"
        "  -n, --dry-run          list what would be removed, and write nothing\n" SNAPSEL_HELP
        "  --lock-wait SECONDS    wait this long for prune to finish\n"
        "  --json                 JSON lines: one per path removed and per snapshot\n"
        "                         rewritten, then a summary\n"
        "\n"
        "Patterns have the syntax of 'cairn backup': * ? [..] and ** (any number of\n"
        "directories); a pattern without '/' matches a name anywhere, one starting\n"
        "with '/' from the root, and a matching directory goes with all it holds.\n"
        "\n"
        "A secret backed up by mistake: 'cairn rewrite --forget --exclude PATH' (no\n"
        "SNAP: every snapshot), then 'cairn prune --max-unused 0', which deletes the\n"
        "data no snapshot uses and repacks every pack that held any of it. Copies\n"
        "made by 'cairn sync' keep it until synced again with --delete.\n";

enum {
	OPT_EXCLUDE = OPT_FIRST_COMMAND_OPT,
	OPT_EXCLUDE_FILE,
	OPT_FORGET,
	OPT_LOCK_WAIT,
};

#define REWRITE_MAX_DEPTH 1000

DEFINE_FREEP(cairn_tree, cairn_tree_free)
DEFINE_FREEP(cairn_tree_builder, cairn_tree_builder_free)

struct rewrite_args {
	struct pattern_list *exclude;
	bool forget, dry_run, json;
	unsigned wait;
	struct snapsel sel;
};

struct rewriter {
	cairn_repo *repo;
	const struct rewrite_args *a;
	const struct cairn_snapshot *snap; /* being rewritten */
	struct maint_path path;
	struct cairn_idset clean; /* (tree, path) known to hold no match */
	unsigned depth;
	uint64_t removed; /* entries removed from this snapshot */
};

static int handle(int c, const char *arg, void *payload)
{
	struct rewrite_args *a = payload;
	int r = snapsel_opt(&a->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case OPT_EXCLUDE:
		return pattern_list_add(a->exclude, arg);
	case OPT_EXCLUDE_FILE:
		return pattern_list_add_file(a->exclude, arg);
	case OPT_FORGET:
		a->forget = true;
		return 0;
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

/* The same tree at the same path matches the same way in every snapshot: key
 * both, so a subtree without matches is read once for all of them. */
static struct cairn_id clean_key(const struct rewriter *w, const struct cairn_id *tree)
{
	struct cairn_id k = *tree;
	uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
	for (size_t i = 0; i < w->path.b.len; i++)
		h = (h ^ w->path.b.data[i]) * 0x100000001b3ull;
	for (int i = 0; i < 8; i++)
		k.b[i] ^= (uint8_t)(h >> (8 * i));
	return k;
}

static void print_removed(const struct rewriter *w, const struct cairn_node *n)
{
	char id[CAIRN_ID_HEX_SIZE];
	size_t len;
	const char *p = maint_path_str(&w->path, &len);
	if (w->a->json) {
		cairn_id_hex(id, &w->snap->id);
		printf("{\"message_type\":\"removed\",\"snapshot\":\"%s\",\"path\":", id);
		cli_json_str(stdout, p, len);
		printf(",\"type\":\"%s\"}\n", restorer_type_name(n->type));
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE) {
		maint_short_id(id, &w->snap->id);
		printf("%s  %s ", id, w->a->dry_run ? "would remove" : "removing");
		cairn_text_name(stdout, p, len);
		fputs(n->type == CAIRN_NODE_DIR ? "/\n" : "\n", stdout);
	}
}

static int rewrite_tree(struct rewriter *w, const struct cairn_id *id, struct cairn_id *out);

/* Add n to b, or leave it out when excluded, or with its subtree rewritten.
 * 1 when something changed. */
static int keep_node(struct rewriter *w, cairn_tree_builder *b, const struct cairn_node *n)
{
	size_t len;
	const char *p = maint_path_str(&w->path, &len);
	struct cairn_node copy = *n;
	int r = 0;

	if (pattern_list_find_below(w->a->exclude, p, len, snapsel_root_len(w->snap, p, len)) >=
	    0) {
		print_removed(w, n);
		w->removed++;
		return 1;
	}
	if (n->type == CAIRN_NODE_DIR && pattern_list_match_below(w->a->exclude, p, len))
		r = rewrite_tree(w, &n->subtree, &copy.subtree);
	if (r >= 0) {
		int a = cairn_tree_builder_add(b, &copy);
		r = a < 0 ? a : r;
	}
	return r;
}

/* Store the rewritten tree (only its ID in a dry run). */
static int store_tree(struct rewriter *w, cairn_tree_builder *b, struct cairn_id *out)
{
	_cleanup_buf_ struct cairn_buf data = CAIRN_BUF_INIT;
	int r = cairn_tree_builder_encode(b, &data);
	if (r < 0)
		return r;
	if (w->a->dry_run)
		return cairn_repo_blob_id(w->repo, data.data, data.len, out);
	r = cairn_repo_put(w->repo, CAIRN_BLOB_TREE, data.data, data.len, NULL, out);
	return r < 0 ? r : 0;
}

/* *out: the ID of tree id without the excluded entries (id itself when none
 * is). 1 when it changed, 0 when not. */
static int rewrite_tree(struct rewriter *w, const struct cairn_id *id, struct cairn_id *out)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	struct cairn_id key = clean_key(w, id);
	int r, changed = 0;

	*out = *id;
	if (cairn_idset_has(&w->clean, &key))
		return 0;
	if ((r = interrupt_check()) < 0)
		return r;
	if (w->depth >= REWRITE_MAX_DEPTH)
		return cairn_err_set(-ELOOP, "directories nested more than %d deep",
		                     REWRITE_MAX_DEPTH);
	/* A tree that cannot be read stops the rewrite: a copy without it would
	 * lose what it holds. */
	if ((r = cairn_repo_tree_load(w->repo, id, &t)) < 0 || (r = cairn_tree_builder_new(&b)) < 0)
		return r;
	w->depth++;
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		size_t mark;
		if ((r = maint_path_push(&w->path, n->name, n->name_len, &mark)) >= 0)
			r = keep_node(w, b, n);
		maint_path_pop(&w->path, mark);
		changed |= r > 0;
	}
	w->depth--;
	if (r < 0)
		return r;
	if (!changed)
		return cairn_idset_add(&w->clean, &key, 0) < 0 ? -ENOMEM : 0;
	return (r = store_tree(w, b, out)) < 0 ? r : 1;
}

static void print_snapshot(const struct rewriter *w, const struct cairn_snapshot *now)
{
	char o[CAIRN_ID_HEX_SIZE], n[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(o, &w->snap->id);
	cairn_id_hex(n, &now->id);
	if (w->a->json) {
		printf("{\"message_type\":\"rewritten_snapshot\",\"old_snapshot_id\":\"%s\","
		       "\"new_snapshot_id\":",
		       o);
		if (w->a->dry_run)
			fputs("null", stdout);
		else
			printf("\"%s\"", n);
		printf(",\"removed\":%llu,\"original\":\"%s\"}\n", (unsigned long long)w->removed,
		       !w->a->dry_run && w->a->forget ? "removed" : "kept");
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE) {
		printf("%.8s -> %.8s  %llu %s removed%s\n", o, w->a->dry_run ? "(new)" : n,
		       (unsigned long long)w->removed, cli_plural(w->removed, "entry", "entries"),
		       !w->a->dry_run && w->a->forget ? ", original removed" : "");
	}
}

/* Rewrite one snapshot: 1 when it held a match, 0 when not. */
static int rewrite_snapshot(struct rewriter *w, const struct cairn_snapshot *s, cairn_lock *lock)
{
	struct cairn_snapshot copy = *s; /* shallow: strings stay s's */
	/* One nanosecond newer than its original: 'latest', forget's policies and
	 * the parent of the next backup take the copy, never the original by the
	 * order of their IDs (FORMAT.md §8). */
	if (copy.time_ns < INT64_MAX)
		copy.time_ns++;
	w->snap = s;
	w->removed = 0;
	cairn_buf_release(&w->path.b);
	int r = rewrite_tree(w, &s->root, &copy.root);
	if (r <= 0 || w->a->dry_run) {
		if (r > 0)
			print_snapshot(w, &copy);
		return r;
	}
	/* The trees are durable and indexed before the snapshot that needs them;
	 * the copy is saved before the original goes. */
	if ((r = cairn_repo_flush(w->repo)) < 0 || (r = interrupt_check()) < 0 ||
	    (r = cairn_lock_refresh(lock)) < 0 ||
	    (r = cairn_repo_snapshot_save(w->repo, &copy)) < 0)
		return r;
	if (w->a->forget && (r = cairn_repo_snapshot_delete(w->repo, &s->id)) < 0)
		return r;
	print_snapshot(w, &copy);
	return 1;
}

static void summary(const struct rewrite_args *a, size_t rewritten)
{
	if (a->json) {
		printf("{\"message_type\":\"summary\",\"command\":\"rewrite\",\"dry_run\":%s,"
		       "\"rewritten_snapshots\":%zu,\"originals_removed\":%s}\n",
		       a->dry_run ? "true" : "false", rewritten,
		       a->forget && !a->dry_run ? "true" : "false");
		return;
	}
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	printf("%s %zu %s", a->dry_run ? "would rewrite" : "rewrote", rewritten,
	       cli_plural(rewritten, "snapshot", "snapshots"));
	if (rewritten && !a->dry_run)
		printf(a->forget ? "; the originals are removed: 'cairn prune' frees their data\n"
		                 : "; the originals are kept: 'cairn forget' them, or run again "
		                   "with --forget\n");
	else
		putchar('\n');
}

static int rewrite_all(cairn_repo *repo, const struct rewrite_args *a, char **specs, size_t nspecs,
                       cairn_lock *lock)
{
	struct rewriter w = { .repo = repo, .a = a, .path = { CAIRN_BUF_INIT } };
	struct cairn_snapshot **list = NULL;
	_cleanup_free_ bool *want = NULL;
	size_t n = 0, rewritten = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);

	cairn_idset_init(&w.clean);
	if (r >= 0 && !(want = calloc(n ? n : 1, sizeof(*want))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0)
		r = snapsel_choose(&a->sel, list, n, specs, nspecs, want);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		char id[9];
		if (!want[i])
			continue;
		r = rewrite_snapshot(&w, list[i], lock);
		rewritten += r > 0;
		maint_short_id(id, &list[i]->id);
		if (r < 0 && r != -ENOMEM)
			cairn_err_wrap(r, "cannot rewrite snapshot %s", id);
	}
	cairn_snapshot_list_free(list, n);
	cairn_idset_release(&w.clean);
	cairn_buf_release(&w.path.b);
	if (r >= 0)
		summary(a, rewritten);
	return r;
}

static int rewrite_main(struct rewrite_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "exclude-file", required_argument, NULL, OPT_EXCLUDE_FILE },
		{ "forget", no_argument, NULL, OPT_FORGET },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .lock_first = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "n", longopts, usage, handle, a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (pattern_list_count(a->exclude) == 0)
		return cli_usage_error(
		        "rewrite: say what to remove with --exclude or --exclude-file");
	int r = cli_open_repo(&repo, &ro);
	/* Shared, like backup: trees and snapshots are added (and with --forget
	 * snapshots removed); only prune, which deletes data, must not run. */
	if (r >= 0)
		r = cairn_repo_lock(repo, CAIRN_LOCK_SHARED, "rewrite", a->wait, &lock);
	if (r >= 0) {
		interrupt_catch("rewrite");
		r = interrupt_result(rewrite_all(repo, a, argv + i, (size_t)(argc - i), lock));
	}
	return r < 0 ? cli_fail(r) : 0;
}

int cmd_rewrite(int argc, char **argv)
{
	struct rewrite_args a = { 0 };
	if (pattern_list_new(&a.exclude) < 0)
		return cli_fail(cairn_err_set(-ENOMEM, "out of memory"));
	snapsel_init(&a.sel);
	int rc = rewrite_main(&a, argc, argv);
	pattern_list_free(a.exclude);
	snapsel_release(&a.sel);
	return rc;
}
