/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn stats: sizes, deduplication and compression of a repository. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "maint.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn stats [--json] [SNAPSHOT...]\n"
        "\n"
        "Counts the snapshots (all, or those named) and what they use:\n"
        "  logical size       the bytes of every file of every snapshot, as restored\n"
        "  unique raw size    the blobs they use, each once, before compression\n"
        "  stored size        the same blobs as stored (compressed and encrypted)\n"
        "  dedup ratio        logical size / unique raw size of the data blobs\n"
        "  compression ratio  unique raw size / stored size\n"
        "and the repository: packs and their size, indexed blobs, and the blobs no\n"
        "snapshot uses (what 'cairn prune' would free; left out when snapshots are\n"
        "named, text and JSON). A snapshot whose trees cannot be read is reported by\n"
        "ID and left out of the figures; the exit status is 1.\n"
        "\n"
        "  --json   one JSON object\n";

/* Totals of one tree and everything below it, memoised by tree ID: a tree
 * shared by many snapshots is read once. */
struct totals {
	uint64_t files, bytes;
};

/* Unique blobs of one type: count, raw and stored bytes. */
struct usage {
	uint64_t count, raw, stored;
};

struct stats {
	cairn_repo *repo;
	struct cairn_idset trees; /* tree -> index in memo */
	struct totals *memo;
	size_t nmemo;
	struct cairn_idset data; /* data blobs used */
	struct usage used_data, used_trees;
	uint64_t snapshots, files, logical;
	size_t damaged; /* snapshots whose trees could not be read */
	uint64_t packs, pack_bytes, blobs, blob_bytes;
};

/* ---- walking ------------------------------------------------------------ */

static int use_blob(struct stats *s, const struct cairn_id *id, struct usage *u)
{
	struct cairn_loc loc;
	int r = cairn_repo_lookup(s->repo, id, &loc);
	if (r < 0)
		return r;
	u->count++;
	u->raw += loc.raw_len;
	u->stored += loc.stored_len;
	return 0;
}

static int walk(struct stats *s, const struct cairn_id *tree, struct totals *out);

static int add_node(struct stats *s, const struct cairn_node *n, struct totals *t)
{
	int r = 0;
	if (n->type == CAIRN_NODE_DIR) {
		struct totals sub;
		if ((r = walk(s, &n->subtree, &sub)) >= 0) {
			t->files += sub.files;
			t->bytes += sub.bytes;
		}
		return r;
	}
	if (n->type != CAIRN_NODE_FILE)
		return 0;
	t->files++;
	t->bytes += n->size;
	for (size_t i = 0; r >= 0 && i < n->nextents; i++) {
		const struct cairn_id *id = &n->extents[i].id;
		if (cairn_id_is_zero(id) || (r = cairn_idset_add(&s->data, id, 0)) <= 0)
			continue; /* a hole, or counted already */
		r = use_blob(s, id, &s->used_data);
	}
	return r;
}

static int remember(struct stats *s, const struct cairn_id *tree, const struct totals *t)
{
	struct totals *v = reallocarray(s->memo, s->nmemo + 1, sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	s->memo = v;
	v[s->nmemo] = *t;
	return cairn_idset_add(&s->trees, tree, s->nmemo++);
}

static int walk(struct stats *s, const struct cairn_id *tree, struct totals *out)
{
	uint64_t *at = cairn_idset_get(&s->trees, tree);
	struct totals t = { 0 };
	cairn_tree *tr = NULL;

	if (at) {
		*out = s->memo[*at];
		return 0;
	}
	int r = use_blob(s, tree, &s->used_trees);
	if (r >= 0)
		r = cairn_repo_tree_load(s->repo, tree, &tr);
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(tr); i++)
		r = add_node(s, cairn_tree_node(tr, i), &t);
	cairn_tree_free(tr);
	if (r >= 0)
		r = remember(s, tree, &t);
	*out = t;
	return r < 0 ? r : 0;
}

/* ---- the repository ----------------------------------------------------- */

static int each_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct stats *s = payload;
	(void)pack;
	s->packs++;
	s->pack_bytes += size;
	return 0;
}

static int each_blob(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct stats *s = payload;
	(void)id;
	s->blobs++;
	s->blob_bytes += loc->stored_len;
	return 0;
}

static int add_snapshot(struct stats *s, const struct cairn_snapshot *snap)
{
	struct totals t;
	int r = walk(s, &snap->root, &t);
	if (r < 0)
		return r;
	s->snapshots++;
	s->files += t.files;
	s->logical += t.bytes;
	return 0;
}

static int collect(struct stats *s, char **specs, size_t nspecs)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(s->repo, &list, &n);
	/* A snapshot named twice ("latest" and its ID) is counted once. */
	_cleanup_free_ bool *seen = r >= 0 ? calloc(n ? n : 1, sizeof(*seen)) : NULL;
	if (r >= 0 && !seen)
		r = cairn_err_set(-ENOMEM, "out of memory");

	for (size_t i = 0; r >= 0 && i < (nspecs ? nspecs : n); i++) {
		int k = nspecs ? cairn_snapshot_find(list, n, specs[i]) : (int)i;
		if (k >= 0 && seen[k])
			continue;
		if (k >= 0)
			seen[k] = true;
		r = k < 0 ? k : add_snapshot(s, list[k]);
		/* Left out of the figures, which count the others. */
		if (r < 0 && k >= 0 && maint_snapshot_damaged(list[k], r)) {
			s->damaged++;
			r = 0;
		}
	}
	cairn_snapshot_list_free(list, n);
	if (r >= 0)
		r = cairn_repo_foreach_pack(s->repo, each_pack, s);
	if (r >= 0)
		r = cairn_repo_foreach_blob(s->repo, each_blob, s);
	return r;
}

/* ---- output ------------------------------------------------------------- */

static double ratio(uint64_t a, uint64_t b)
{
	return b ? (double)a / (double)b : 0.0;
}

/* Without all (snapshots named), the unreferenced blobs are left out, as in the
 * text: counted against the named snapshots they are not what prune frees. */
static void print_json(const struct stats *s, bool all)
{
	uint64_t raw = s->used_data.raw + s->used_trees.raw;
	uint64_t stored = s->used_data.stored + s->used_trees.stored;
	uint64_t used = s->used_data.count + s->used_trees.count;
	printf("{\"snapshots\":%llu,\"files\":%llu,\"logical_size\":%llu,"
	       "\"data_blobs\":%llu,\"tree_blobs\":%llu,\"unique_raw_size\":%llu,"
	       "\"stored_size\":%llu,\"dedup_ratio\":%.4f,\"compression_ratio\":%.4f,"
	       "\"packs\":%llu,\"pack_size\":%llu,\"indexed_blobs\":%llu",
	       (unsigned long long)s->snapshots, (unsigned long long)s->files,
	       (unsigned long long)s->logical, (unsigned long long)s->used_data.count,
	       (unsigned long long)s->used_trees.count, (unsigned long long)raw,
	       (unsigned long long)stored, ratio(s->logical, s->used_data.raw), ratio(raw, stored),
	       (unsigned long long)s->packs, (unsigned long long)s->pack_bytes,
	       (unsigned long long)s->blobs);
	if (all)
		printf(",\"unreferenced_blobs\":%llu,\"unreferenced_size\":%llu",
		       (unsigned long long)(s->blobs - used),
		       (unsigned long long)(s->blob_bytes - stored));
	printf("}\n");
}

static void print_text(const struct stats *s, bool all)
{
	char a[32], b[32], c[32];
	uint64_t raw = s->used_data.raw + s->used_trees.raw;
	uint64_t stored = s->used_data.stored + s->used_trees.stored;
	uint64_t used = s->used_data.count + s->used_trees.count;

	printf("snapshots          %llu\n", (unsigned long long)s->snapshots);
	printf("files              %llu (counted in every snapshot)\n",
	       (unsigned long long)s->files);
	printf("logical size       %s\n", cli_fmt_bytes(a, sizeof(a), s->logical));
	printf("unique raw size    %s in %llu data %s and %llu %s\n",
	       cli_fmt_bytes(b, sizeof(b), raw), (unsigned long long)s->used_data.count,
	       cli_plural(s->used_data.count, "blob", "blobs"),
	       (unsigned long long)s->used_trees.count,
	       cli_plural(s->used_trees.count, "tree", "trees"));
	printf("stored size        %s\n", cli_fmt_bytes(c, sizeof(c), stored));
	printf("dedup ratio        %.2f\n", ratio(s->logical, s->used_data.raw));
	printf("compression ratio  %.2f\n", ratio(raw, stored));
	printf("repository         %llu %s, %s; %llu %s indexed\n", (unsigned long long)s->packs,
	       cli_plural(s->packs, "pack", "packs"), cli_fmt_bytes(a, sizeof(a), s->pack_bytes),
	       (unsigned long long)s->blobs, cli_plural(s->blobs, "blob", "blobs"));
	if (all)
		printf("unreferenced       %llu %s, %s (freed by 'cairn prune')\n",
		       (unsigned long long)(s->blobs - used),
		       cli_plural(s->blobs - used, "blob", "blobs"),
		       cli_fmt_bytes(b, sizeof(b), s->blob_bytes - stored));
}

static int handle(int c, const char *arg, void *payload)
{
	(void)arg;
	if (c != OPT_JSON)
		return cairn_err_set(-EINVAL, "unknown option");
	*(bool *)payload = true;
	return 0;
}

int cmd_stats(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS,
		                                  { "json", no_argument, NULL, OPT_JSON },
		                                  { 0 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	struct stats s = { 0 };
	bool json = false;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &json);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	cairn_idset_init(&s.trees);
	cairn_idset_init(&s.data);
	int r = cli_open_repo(&s.repo, &ro);
	if (r >= 0)
		r = collect(&s, argv + i, (size_t)(argc - i));
	if (r >= 0 && json)
		print_json(&s, i == argc);
	else if (r >= 0)
		print_text(&s, i == argc);
	if (r >= 0)
		r = maint_damaged_result(s.damaged);
	cairn_repo_close(s.repo);
	cairn_idset_release(&s.trees);
	cairn_idset_release(&s.data);
	free(s.memo);
	return r < 0 ? cli_fail(r) : 0;
}
