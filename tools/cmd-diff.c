/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn diff: what changed between two snapshots. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "maint.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn diff [--json] [--host H] [--path P] [--tag T] SNAPSHOT1 SNAPSHOT2\n"
        "\n"
        "Lists what changed from SNAPSHOT1 to SNAPSHOT2 (IDs, prefixes or 'latest'):\n"
        "  +  added           -  removed          T  type changed\n"
        "  M  content changed (with metadata changes in parentheses): files of one\n"
        "     size whose chunks differ are compared byte by byte (read whole when\n"
        "     they were cut differently, as after a copy from a repository with\n"
        "     other chunk sizes)\n"
        "  U  only metadata changed: mode, uid, gid, user, group, mtime, xattrs,\n"
        "     incomplete (a directory's mtime is not reported: it follows its entries)\n"
        "Directories end with '/'. Unchanged subtrees are skipped without reading.\n"
        "Paths are printed as 'cairn ls' prints them: control characters as \\xNN, a\n"
        "backslash as \\\\; --json keeps them exact.\n"
        "\n"
        "  --json                 JSON lines: one \"change\" per entry, then "
        "\"statistics\"\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n";

struct diff_args {
	bool json;
	struct snapsel sel;
};

enum {
	F_MODE = 1,
	F_UID = 2,
	F_GID = 4,
	F_USER = 8,
	F_GROUP = 16,
	F_MTIME = 32,
	F_XATTRS = 64,
	F_INCOMPLETE = 128
};
static const char *const field_names[] = { "mode",  "uid",   "gid",    "user",
	                                   "group", "mtime", "xattrs", "incomplete" };

struct differ {
	cairn_repo *repo;
	bool json;
	struct maint_path path;
	struct cairn_buf blob[2]; /* one file's blob each side, while comparing content */
	uint64_t added, removed, modified, metadata, type_changed;
};

/* ---- output ------------------------------------------------------------- */

static void print_fields(unsigned fields, bool json)
{
	for (unsigned i = 0, k = 0; i < ARRAY_SIZE(field_names); i++) {
		if (!(fields & (1u << i)))
			continue;
		if (json)
			printf("%s\"%s\"", k++ ? "," : "", field_names[i]);
		else
			printf("%s%s", k++ ? ", " : "  (", field_names[i]);
	}
}

static void emit(struct differ *d, char mod, unsigned fields, bool dir)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	size_t len;
	const char *p = maint_path_str(&d->path, &len);

	/* Directories end with '/', except the root, which is "/" already. */
	if (cairn_buf_put(&b, p, len) < 0 ||
	    (dir && d->path.b.len > 0 && cairn_buf_put_u8(&b, '/') < 0))
		return;
	if (d->json) {
		printf("{\"message_type\":\"change\",\"path\":");
		cli_json_str(stdout, b.data, b.len);
		printf(",\"modifier\":\"%c\",\"fields\":[", mod);
		print_fields(fields, true);
		printf("]}\n");
		return;
	}
	printf("%c    ", mod);
	cairn_text_name(stdout, b.data, b.len);
	print_fields(fields, false);
	fputs(fields ? ")\n" : "\n", stdout);
}

static void count(struct differ *d, char mod)
{
	switch (mod) {
	case '+':
		d->added++;
		break;
	case '-':
		d->removed++;
		break;
	case 'M':
		d->modified++;
		break;
	case 'U':
		d->metadata++;
		break;
	default:
		d->type_changed++;
	}
}

/* ---- comparing ---------------------------------------------------------- */

/* The store's field bits behind each of ours (field_names order). */
static const unsigned node_fields[] = { CAIRN_NODE_F_MODE,   CAIRN_NODE_F_UID,   CAIRN_NODE_F_GID,
	                                CAIRN_NODE_F_USER,   CAIRN_NODE_F_GROUP, CAIRN_NODE_F_MTIME,
	                                CAIRN_NODE_F_XATTRS, CAIRN_NODE_F_FLAGS };

static unsigned meta_changes(const struct cairn_node *a, const struct cairn_node *b)
{
	unsigned mask = 0, f = 0;
	for (size_t i = 0; i < ARRAY_SIZE(node_fields); i++)
		mask |= node_fields[i];
	if (a->type == CAIRN_NODE_DIR) /* changes with every entry added or removed */
		mask &= ~CAIRN_NODE_F_MTIME;
	unsigned d = cairn_node_diff(a, b, mask);
	for (size_t i = 0; i < ARRAY_SIZE(node_fields); i++)
		f |= d & node_fields[i] ? 1u << i : 0;
	return f;
}

/* One side of a file's content, read one extent at a time from the repository. */
struct stream {
	const struct cairn_node *n;
	size_t next, end; /* the extent to read next, and the one to stop at */
	const uint8_t *p; /* into buf; NULL in a hole */
	uint64_t left;    /* bytes left of the extent at hand */
	struct cairn_buf *buf;
};

static bool same_extent(const struct cairn_extent *x, const struct cairn_extent *y)
{
	return x->len == y->len && cairn_id_cmp(&x->id, &y->id) == 0;
}

/* Make bytes available: 1, or 0 at the end, or -errno (message set). */
static int stream_fill(struct differ *d, struct stream *s)
{
	if (s->left > 0)
		return 1;
	if (s->next == s->end)
		return 0;
	const struct cairn_extent *e = &s->n->extents[s->next++];
	s->left = e->len;
	s->p = NULL;
	if (cairn_id_is_zero(&e->id))
		return 1;
	size_t len;
	const char *path = maint_path_str(&d->path, &len);
	int r = cairn_repo_get_typed(d->repo, CAIRN_BLOB_DATA, &e->id, s->buf);
	if (r < 0)
		return cairn_err_wrap(r, "cannot read '%.*s'", (int)len, path);
	if (s->buf->len != e->len)
		return cairn_err_set(-EBADMSG,
		                     "cannot read '%.*s': a data blob holds %zu bytes, "
		                     "the tree says %llu",
		                     (int)len, path, s->buf->len, (unsigned long long)e->len);
	s->p = s->buf->data;
	return 1;
}

static bool all_zero(const uint8_t *p, size_t n)
{
	return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* Whether x and y hold the same bytes: 1 or 0, or -errno. A hole equals zeros. */
static int same_bytes(struct differ *d, struct stream *x, struct stream *y)
{
	for (;;) {
		int rx = stream_fill(d, x), ry = rx < 0 ? rx : stream_fill(d, y);
		if (ry < 0)
			return ry;
		if (!rx || !ry)
			return rx == ry;
		uint64_t k64 = x->left < y->left ? x->left : y->left;
		size_t k = k64 > SIZE_MAX ? SIZE_MAX : (size_t)k64;
		bool same = !x->p   ? !y->p || all_zero(y->p, k)
		            : !y->p ? all_zero(x->p, k)
		                    : memcmp(x->p, y->p, k) == 0;
		if (!same)
			return 0;
		x->left -= k;
		y->left -= k;
		x->p = x->p ? x->p + k : NULL;
		y->p = y->p ? y->p + k : NULL;
	}
}

/* Whether two files of the same size differ. Their extents (FORMAT.md §10) are
 * the same for the same bytes cut the same way; the ones they share at the start
 * and at the end hold the same bytes at the same offsets, and the first ones that
 * differ, of one length, hold different bytes (IDs are hashes of the content,
 * unless one is a hole). Otherwise the files were cut differently (a copy from
 * a repository with other chunk sizes): what lies between is read and compared.
 * 1 or 0, or -errno. */
static int file_changed(struct differ *d, const struct cairn_node *a, const struct cairn_node *b)
{
	size_t na = a->nextents, nb = b->nextents, i = 0, k = 0;
	while (i < na && i < nb && same_extent(&a->extents[i], &b->extents[i]))
		i++;
	while (k < na - i && k < nb - i &&
	       same_extent(&a->extents[na - 1 - k], &b->extents[nb - 1 - k]))
		k++;
	if (i == na && i == nb)
		return 0;
	if (i < na && i < nb && a->extents[i].len == b->extents[i].len &&
	    !cairn_id_is_zero(&a->extents[i].id) && !cairn_id_is_zero(&b->extents[i].id))
		return 1;
	struct stream x = { .n = a, .next = i, .end = na - k, .buf = &d->blob[0] };
	struct stream y = { .n = b, .next = i, .end = nb - k, .buf = &d->blob[1] };
	int r = same_bytes(d, &x, &y);
	return r < 0 ? r : !r;
}

/* Content by type: a file's bytes, a link's target, a device's number. 1 when
 * it changed, 0, or -errno (a file's content could not be read). */
static int content_changed(struct differ *d, const struct cairn_node *a, const struct cairn_node *b)
{
	static const unsigned content[] = {
		[CAIRN_NODE_FILE] = CAIRN_NODE_F_SIZE | CAIRN_NODE_F_EXTENTS,
		[CAIRN_NODE_SYMLINK] = CAIRN_NODE_F_TARGET,
		[CAIRN_NODE_CHR] = CAIRN_NODE_F_RDEV,
		[CAIRN_NODE_BLK] = CAIRN_NODE_F_RDEV,
	};
	if (a->type >= ARRAY_SIZE(content) || !cairn_node_diff(a, b, content[a->type]))
		return 0;
	if (a->type != CAIRN_NODE_FILE || a->size != b->size)
		return 1;
	return file_changed(d, a, b);
}

/* Names order as in FORMAT.md §10: memcmp over the common length, prefix first. */
static int name_cmp(const struct cairn_node *a, const struct cairn_node *b)
{
	size_t n = a->name_len < b->name_len ? a->name_len : b->name_len;
	int c = memcmp(a->name, b->name, n);
	if (c)
		return c;
	return a->name_len < b->name_len ? -1 : a->name_len > b->name_len;
}

static int diff_trees(struct differ *d, const struct cairn_id *a, const struct cairn_id *b);
static int list_all(struct differ *d, const struct cairn_id *tree, char mod);

/* Report one entry present on one side only, with everything below it. */
static int one_side(struct differ *d, const struct cairn_node *n, char mod)
{
	emit(d, mod, 0, n->type == CAIRN_NODE_DIR);
	count(d, mod);
	return n->type == CAIRN_NODE_DIR ? list_all(d, &n->subtree, mod) : 0;
}

static int both_sides(struct differ *d, const struct cairn_node *a, const struct cairn_node *b)
{
	int r = 0;
	if (a->type != b->type) {
		emit(d, 'T', 0, b->type == CAIRN_NODE_DIR);
		count(d, 'T');
		if (a->type == CAIRN_NODE_DIR)
			r = list_all(d, &a->subtree, '-');
		if (r >= 0 && b->type == CAIRN_NODE_DIR)
			r = list_all(d, &b->subtree, '+');
		return r;
	}
	unsigned f = meta_changes(a, b);
	int c = content_changed(d, a, b);
	if (c < 0)
		return c;
	char mod = c ? 'M' : f ? 'U' : 0;
	if (mod) {
		emit(d, mod, f, a->type == CAIRN_NODE_DIR);
		count(d, mod);
	}
	return a->type == CAIRN_NODE_DIR ? diff_trees(d, &a->subtree, &b->subtree) : 0;
}

/* Visit entry n of the side that has it (or both), with the path extended. */
static int visit(struct differ *d, const struct cairn_node *a, const struct cairn_node *b)
{
	const struct cairn_node *n = a ? a : b;
	size_t mark;
	int r = maint_path_push(&d->path, n->name, n->name_len, &mark);
	if (r >= 0)
		r = !a ? one_side(d, b, '+') : !b ? one_side(d, a, '-') : both_sides(d, a, b);
	maint_path_pop(&d->path, mark);
	return r;
}

static int merge(struct differ *d, const cairn_tree *ta, const cairn_tree *tb)
{
	size_t i = 0, j = 0, na = ta ? cairn_tree_count(ta) : 0, nb = tb ? cairn_tree_count(tb) : 0;
	int r = 0;

	while (r >= 0 && (i < na || j < nb)) {
		const struct cairn_node *a = i < na ? cairn_tree_node(ta, i) : NULL;
		const struct cairn_node *b = j < nb ? cairn_tree_node(tb, j) : NULL;
		int c = !a ? 1 : !b ? -1 : name_cmp(a, b);
		r = visit(d, c <= 0 ? a : NULL, c >= 0 ? b : NULL);
		i += c <= 0;
		j += c >= 0;
	}
	return r;
}

/* Equal IDs mean equal subtrees (FORMAT.md §10): nothing to read. */
static int diff_trees(struct differ *d, const struct cairn_id *a, const struct cairn_id *b)
{
	cairn_tree *ta = NULL, *tb = NULL;
	int r = 0;

	if (a && b && cairn_id_cmp(a, b) == 0)
		return 0;
	if (a)
		r = cairn_repo_tree_load(d->repo, a, &ta);
	if (r >= 0 && b)
		r = cairn_repo_tree_load(d->repo, b, &tb);
	if (r >= 0)
		r = merge(d, ta, tb);
	cairn_tree_free(ta);
	cairn_tree_free(tb);
	return r;
}

static int list_all(struct differ *d, const struct cairn_id *tree, char mod)
{
	return mod == '+' ? diff_trees(d, NULL, tree) : diff_trees(d, tree, NULL);
}

/* ---- command ------------------------------------------------------------ */

static void statistics(const struct differ *d)
{
	if (d->json) {
		printf("{\"message_type\":\"statistics\",\"added\":%llu,\"removed\":%llu,"
		       "\"modified\":%llu,\"metadata\":%llu,\"type_changed\":%llu}\n",
		       (unsigned long long)d->added, (unsigned long long)d->removed,
		       (unsigned long long)d->modified, (unsigned long long)d->metadata,
		       (unsigned long long)d->type_changed);
		return;
	}
	if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("\n%llu added, %llu removed, %llu modified, %llu with new metadata, "
		       "%llu changed type\n",
		       (unsigned long long)d->added, (unsigned long long)d->removed,
		       (unsigned long long)d->modified, (unsigned long long)d->metadata,
		       (unsigned long long)d->type_changed);
}

static int run(cairn_repo *repo, const struct diff_args *da, const char *spec1, const char *spec2)
{
	struct cairn_snapshot **list = NULL;
	struct differ d = { .repo = repo,
		            .json = da->json,
		            .path = { CAIRN_BUF_INIT },
		            .blob = { CAIRN_BUF_INIT, CAIRN_BUF_INIT } };
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n), a = -1, b = -1;

	if (r >= 0 && (a = snapsel_find(&da->sel, list, n, spec1)) < 0)
		r = a;
	if (r >= 0 && (b = snapsel_find(&da->sel, list, n, spec2)) < 0)
		r = b;
	if (r >= 0)
		r = diff_trees(&d, &list[a]->root, &list[b]->root);
	if (r >= 0)
		statistics(&d);
	cairn_buf_release(&d.path.b);
	cairn_buf_release(&d.blob[0]);
	cairn_buf_release(&d.blob[1]);
	cairn_snapshot_list_free(list, n);
	return r;
}

static int handle(int c, const char *arg, void *payload)
{
	struct diff_args *da = payload;
	int r = snapsel_opt(&da->sel, c, arg);
	if (r != 1)
		return r;
	if (c != OPT_JSON)
		return cairn_err_set(-EINVAL, "unknown option");
	da->json = true;
	return 0;
}

static int diff_main(struct diff_args *da, int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS,
		                                  { "json", no_argument, NULL, OPT_JSON },
		                                  SNAPSEL_LONGOPTS,
		                                  { 0 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, da);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (argc - i != 2)
		return cli_usage_error("diff: give two snapshots");
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = run(repo, da, argv[i], argv[i + 1]);
	return r < 0 ? cli_fail(r) : 0;
}

int cmd_diff(int argc, char **argv)
{
	struct diff_args da = { 0 };
	int rc = diff_main(&da, argc, argv);
	snapsel_release(&da.sel);
	return rc;
}
