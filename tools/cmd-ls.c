/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn ls: list the entries of a directory in a snapshot. */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include "cli.h"
#include "restorer.h"
#include "timefmt.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn ls [-l] [-R] [--json] [--host H] [--path P] [--tag T] SNAP [PATH]\n"
        "\n"
        "Lists the directory PATH (an absolute path inside the snapshot, default '/')\n"
        "of snapshot SNAP (an ID prefix or 'latest'), or the entry itself when PATH\n"
        "is not a directory.\n"
        "\n"
        "  -l, --long             mode, owner, group, size, modification time and\n"
        "                         symlink targets (owners by name, by number when the\n"
        "                         name is unknown)\n"
        "  -R, --recursive        everything below PATH, each entry by its full path\n"
        "  --json                 one JSON object per entry and line, every "
        "attribute\n" SNAPSEL_HELP "\n"
        "The filters choose the snapshots 'latest' is taken from: the newest one they\n"
        "match (a snapshot named by ID is used whatever they say).\n"
        "\n"
        "Names are printed as stored, except that control characters (newline, tab,\n"
        "ESC, ...) in names and link targets are shown as \\xNN, so that each entry\n"
        "keeps to one line and cannot drive the terminal, and a backslash as \\\\, so\n"
        "that no two names print alike. --json keeps names exact (bytes that are not\n"
        "UTF-8 as \\udcXX).\n";

#define LS_MAX_DEPTH 1000

struct ls {
	cairn_repo *repo;
	bool lng, json, rec;
	unsigned depth;
	unsigned warnings;
	struct cairn_buf path; /* of the entry being printed */
	struct snapsel sel;
};

static int handle(int c, const char *arg, void *payload)
{
	struct ls *ls = payload;
	int r = snapsel_opt(&ls->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case 'l':
		ls->lng = true;
		return 0;
	case 'R':
		ls->rec = true;
		return 0;
	case OPT_JSON:
		ls->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static void mode_string(char out[11], const struct cairn_node *n)
{
	static const char types[] = "?-dlpscb", rwx[] = "rwxrwxrwx";
	out[0] = n->type < sizeof(types) - 1 ? types[n->type] : '?';
	for (int i = 0; i < 9; i++)
		out[1 + i] = (n->mode >> (8 - i)) & 1 ? rwx[i] : '-';
	if (n->mode & S_ISUID)
		out[3] = out[3] == 'x' ? 's' : 'S';
	if (n->mode & S_ISGID)
		out[6] = out[6] == 'x' ? 's' : 'S';
	if (n->mode & S_ISVTX)
		out[9] = out[9] == 'x' ? 't' : 'T';
	out[10] = '\0';
}

/* A user or group name, or the number when the name is unknown, padded. */
static void print_owner(const uint8_t *name, size_t len, uint32_t id)
{
	int w = 0;
	if (len > 0) {
		cairn_text_name(stdout, name, len);
		w = (int)len;
	} else {
		w = printf("%u", id);
	}
	printf("%*s ", w < 8 ? 8 - w : 0, "");
}

static void print_long(const struct cairn_node *n)
{
	char mode[11], t[TIMEFMT_MAX];
	mode_string(mode, n);
	timefmt_local(t, n->mtime_ns);
	printf("%s ", mode);
	print_owner(n->user, n->user_len, n->uid);
	print_owner(n->group, n->group_len, n->gid);
	if (n->type == CAIRN_NODE_CHR || n->type == CAIRN_NODE_BLK)
		printf("%7u, %4u ", major(n->rdev), minor(n->rdev));
	else
		printf("%13llu ", (unsigned long long)n->size);
	printf("%s ", t);
}

static void print_text(struct ls *ls, const struct cairn_node *n, bool full)
{
	if (ls->lng)
		print_long(n);
	if (full)
		cairn_text_name(stdout, ls->path.data, ls->path.len);
	else
		cairn_text_name(stdout, n->name, n->name_len);
	if (ls->lng && n->type == CAIRN_NODE_SYMLINK) {
		fputs(" -> ", stdout);
		cairn_text_name(stdout, n->target, n->target_len);
	}
	fputc('\n', stdout);
}

static void json_time(const char *key, int64_t ns)
{
	char t[TIMEFMT_MAX];
	timefmt_rfc3339(t, ns);
	printf(",\"%s\":\"%s\"", key, t);
}

static void json_tail(const struct cairn_node *n)
{
	char hex[CAIRN_ID_HEX_SIZE];
	if (n->type == CAIRN_NODE_SYMLINK) {
		fputs(",\"target\":", stdout);
		cli_json_str(stdout, n->target, n->target_len);
	} else if (n->type == CAIRN_NODE_DIR) {
		cairn_id_hex(hex, &n->subtree);
		printf(",\"subtree\":\"%s\"", hex);
	} else if (n->type == CAIRN_NODE_FILE) {
		printf(",\"extents\":%zu", n->nextents);
	} else if (n->type == CAIRN_NODE_CHR || n->type == CAIRN_NODE_BLK) {
		printf(",\"rdev\":%llu,\"major\":%u,\"minor\":%u", (unsigned long long)n->rdev,
		       major(n->rdev), minor(n->rdev));
	}
	fputs(",\"xattrs\":[", stdout);
	for (size_t i = 0; i < n->nxattrs; i++) {
		fputs(i ? "," : "", stdout);
		cli_json_str(stdout, n->xattrs[i].name, n->xattrs[i].name_len);
	}
	printf("],\"incomplete\":%s}\n", n->flags & CAIRN_NODE_INCOMPLETE ? "true" : "false");
}

static void print_json(struct ls *ls, const struct cairn_node *n)
{
	char mode[11];
	mode_string(mode, n);
	fputs("{\"name\":", stdout);
	cli_json_str(stdout, n->name, n->name_len);
	fputs(",\"path\":", stdout);
	cli_json_str(stdout, ls->path.data, ls->path.len);
	printf(",\"type\":\"%s\",\"mode\":%u,\"permissions\":\"%s\",\"uid\":%u,\"gid\":%u",
	       restorer_type_name(n->type), n->mode, mode, n->uid, n->gid);
	fputs(",\"user\":", stdout);
	cli_json_str(stdout, n->user, n->user_len);
	fputs(",\"group\":", stdout);
	cli_json_str(stdout, n->group, n->group_len);
	printf(",\"size\":%llu", (unsigned long long)n->size);
	json_time("mtime", n->mtime_ns);
	json_time("atime", n->atime_ns);
	json_time("ctime", n->ctime_ns);
	printf(",\"device\":%llu,\"inode\":%llu,\"nlink\":%u", (unsigned long long)n->dev,
	       (unsigned long long)n->ino, n->nlink);
	json_tail(n);
}

static void print_entry(struct ls *ls, const struct cairn_node *n, bool full)
{
	if (ls->json)
		print_json(ls, n);
	else
		print_text(ls, n, full);
}

/* Append "/name" to ls->path; returns the old length to go back to. */
static size_t push(struct ls *ls, const struct cairn_node *n, int *r)
{
	size_t old = ls->path.len;
	if (ls->path.len == 1)
		ls->path.len = 0; /* "/" + "/name" */
	if ((*r = cairn_buf_put_u8(&ls->path, '/')) >= 0)
		*r = cairn_buf_put(&ls->path, n->name, n->name_len);
	if (*r < 0)
		*r = cairn_err_set(-ENOMEM, "out of memory");
	return old;
}

static int list_tree(struct ls *ls, const struct cairn_id *id);

static int list_entries(struct ls *ls, const cairn_tree *t)
{
	for (size_t i = 0; i < cairn_tree_count(t); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		int r;
		size_t old = push(ls, n, &r);
		if (r >= 0)
			print_entry(ls, n, ls->rec);
		if (r >= 0 && ls->rec && n->type == CAIRN_NODE_DIR)
			r = list_tree(ls, &n->subtree);
		ls->path.len = old;
		if (r < 0)
			return r;
	}
	return 0;
}

/* A directory's tree. Unreadable subdirectories of -R are warnings. */
static int list_tree(struct ls *ls, const struct cairn_id *id)
{
	cairn_tree *t = NULL;
	int r = ls->depth >= LS_MAX_DEPTH ? cairn_err_set(-ELOOP, "nested too deeply")
	                                  : cairn_repo_tree_load(ls->repo, id, &t);
	if (r < 0 && ls->depth > 0 && r != -ENOMEM) {
		log_warn("cannot list '%.*s': %s", (int)ls->path.len, (char *)ls->path.data,
		         cairn_err_msg());
		ls->warnings++;
		return 0;
	}
	if (r < 0)
		return r;
	ls->depth++;
	r = list_entries(ls, t);
	ls->depth--;
	cairn_tree_free(t);
	return r;
}

/* The canonical form of the user's path: "/a/b", "/" for the root. */
static int set_base(struct ls *ls, const char *path)
{
	int r = 0;
	for (const char *p = path; *p && r >= 0;) {
		size_t n = strcspn(p, "/");
		if (n > 0 && !(n == 1 && p[0] == '.'))
			r = cairn_buf_printf(&ls->path, "/%.*s", (int)n, p);
		p += n + (p[n] == '/');
	}
	if (r >= 0 && ls->path.len == 0)
		r = cairn_buf_put_u8(&ls->path, '/');
	return r < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

static int ls_run(struct ls *ls, const char *spec, const char *path)
{
	struct cairn_snapshot *snap = NULL;
	struct cairn_tree_entry e = { 0 };

	int r = snapsel_load(ls->repo, &ls->sel, spec, &snap);
	if (r >= 0)
		r = cairn_repo_tree_lookup_path(ls->repo, &snap->root, path, &e);
	if (r >= 0)
		r = set_base(ls, path);
	if (r >= 0 && !e.node)
		r = list_tree(ls, &snap->root);
	else if (r >= 0 && e.node->type == CAIRN_NODE_DIR)
		r = list_tree(ls, &e.node->subtree);
	else if (r >= 0)
		print_entry(ls, e.node, true);
	cairn_tree_free(e.parent);
	cairn_snapshot_free(snap);
	return r;
}

static int ls_main(struct ls *ls, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "long", no_argument, NULL, 'l' },
		{ "recursive", no_argument, NULL, 'R' },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;

	int i = cli_parse(argc, argv, "lR", longopts, usage, handle, ls);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i >= argc)
		return cli_usage_error("ls: say which snapshot to list (an ID or 'latest')");
	if (argc - i > 2)
		return cli_usage_error("ls: unexpected argument '%s'", argv[i + 2]);
	if (i + 1 < argc && cli_check_snapshot_path("ls", argv[i + 1]) != 0)
		return EXIT_USAGE;
	int r = cli_open_repo(&repo, &ro);
	ls->repo = repo;
	if (r >= 0)
		r = ls_run(ls, argv[i], i + 1 < argc ? argv[i + 1] : "/");
	if (r < 0)
		return cli_fail(r);
	return ls->warnings ? EXIT_PARTIAL : 0;
}

int cmd_ls(int argc, char **argv)
{
	struct ls ls = { 0 };
	int rc = ls_main(&ls, argc, argv);
	cairn_buf_release(&ls.path);
	snapsel_release(&ls.sel);
	return rc;
}
