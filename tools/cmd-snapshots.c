/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn snapshots: list the snapshots of a repository, oldest first. */
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "timefmt.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn snapshots [--json] [--host H]... [--path P]... [--tag T]...\n"
        "\n"
        "Lists the snapshots, oldest first: short ID, local time, host, tags and\n"
        "backed-up paths. '(partial)' marks snapshots where some files could not be\n"
        "read.\n"
        "\n" SNAPSEL_HELP
        "  --json                 a JSON array with every field of each snapshot\n";

#define SHORT_ID 8

struct filter {
	struct snapsel sel;
	bool json;
};

static int handle(int c, const char *arg, void *payload)
{
	struct filter *f = payload;
	int r = snapsel_opt(&f->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case OPT_JSON:
		f->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static void json_strs(const char *key, char *const *v, size_t n)
{
	printf(",\"%s\":[", key);
	for (size_t i = 0; i < n; i++) {
		fputs(i ? "," : "", stdout);
		cli_json_str(stdout, v[i], strlen(v[i]));
	}
	fputc(']', stdout);
}

static void json_summary(const struct cairn_snapshot_summary *m)
{
	printf(",\"summary\":{\"files_new\":%llu,\"files_changed\":%llu,\"files_unmodified\":%llu,"
	       "\"dirs\":%llu,\"bytes_read\":%llu,\"bytes_added\":%llu,\"blobs_added\":%llu,"
	       "\"errors\":%u,\"partial\":%s}",
	       (unsigned long long)m->files_new, (unsigned long long)m->files_changed,
	       (unsigned long long)m->files_unmodified, (unsigned long long)m->dirs,
	       (unsigned long long)m->bytes_read, (unsigned long long)m->bytes_added,
	       (unsigned long long)m->blobs_added, m->errors, m->partial ? "true" : "false");
}

static void print_json(const struct cairn_snapshot *s, bool first)
{
	char id[CAIRN_ID_HEX_SIZE], tree[CAIRN_ID_HEX_SIZE], parent[CAIRN_ID_HEX_SIZE];
	char t[TIMEFMT_MAX];
	cairn_id_hex(id, &s->id);
	cairn_id_hex(tree, &s->root);
	cairn_id_hex(parent, &s->parent);
	timefmt_rfc3339(t, s->time_ns);
	printf("%s{\"id\":\"%s\",\"short_id\":\"%.*s\",\"time\":\"%s\",\"hostname\":",
	       first ? "" : ",\n", id, SHORT_ID, id, t);
	cli_json_str(stdout, s->hostname, strlen(s->hostname));
	fputs(",\"username\":", stdout);
	cli_json_str(stdout, s->username, strlen(s->username));
	json_strs("paths", s->paths, s->npaths);
	json_strs("tags", s->tags, s->ntags);
	printf(",\"tree\":\"%s\",\"parent\":", tree);
	if (s->has_parent)
		printf("\"%s\"", parent);
	else
		fputs("null", stdout);
	json_summary(&s->summary);
	fputs(",\"program_version\":", stdout);
	cli_json_str(stdout, s->program_version, strlen(s->program_version));
	printf(",\"partial\":%s}", s->summary.partial ? "true" : "false");
}

/* Column widths of the table. */
struct widths {
	int host, tags;
};

/* Columns of a string as printed (control characters escaped), at most 1000. */
static int text_width(FILE *f, const char *s)
{
	size_t w = cairn_text_name(f, s, strlen(s));
	return w > 1000 ? 1000 : (int)w;
}

static int tags_len(const struct cairn_snapshot *s)
{
	int len = 0;
	for (size_t i = 0; i < s->ntags && len < 1000; i++)
		len += text_width(NULL, s->tags[i]) + (i > 0);
	return len > 1000 ? 1000 : len;
}

static void print_padded(const char *s, int width)
{
	int w = text_width(stdout, s);
	printf("%*s", w < width ? width - w : 0, "");
}

static void print_row(const struct cairn_snapshot *s, const struct widths *w)
{
	char id[CAIRN_ID_HEX_SIZE], t[TIMEFMT_MAX];
	cairn_id_hex(id, &s->id);
	timefmt_local(t, s->time_ns);
	printf("%.*s  %-19s  ", SHORT_ID, id, t);
	print_padded(s->hostname, w->host);
	fputs("  ", stdout);
	for (size_t i = 0; i < s->ntags; i++) {
		fputs(i ? "," : "", stdout);
		text_width(stdout, s->tags[i]);
	}
	printf("%*s  ", w->tags - tags_len(s), "");
	for (size_t i = 0; i < s->npaths || i == 0; i++) {
		if (i > 0)
			printf("%*s", SHORT_ID + 2 + 19 + 2 + w->host + 2 + w->tags + 2, "");
		if (i < s->npaths)
			cairn_text_name(stdout, s->paths[i], strlen(s->paths[i]));
		if (i == 0 && s->summary.partial)
			fputs("  (partial)", stdout);
		fputc('\n', stdout);
	}
}

static void print_table(struct cairn_snapshot **list, const bool *show, size_t n)
{
	struct widths w = { 4, 4 };
	size_t shown = 0, partial = 0;
	for (size_t i = 0; i < n; i++) {
		if (!show[i])
			continue;
		int h = text_width(NULL, list[i]->hostname), tl = tags_len(list[i]);
		w.host = h > w.host ? (h > 64 ? 64 : h) : w.host;
		w.tags = tl > w.tags ? tl : w.tags;
	}
	printf("%-*s  %-19s  %-*s  %-*s  %s\n", SHORT_ID, "ID", "Time", w.host, "Host", w.tags,
	       "Tags", "Paths");
	for (size_t i = 0; i < n; i++) {
		if (!show[i])
			continue;
		print_row(list[i], &w);
		shown++;
		partial += list[i]->summary.partial;
	}
	printf("%zu snapshot%s", shown, shown == 1 ? "" : "s");
	if (partial)
		printf(", %zu partial (some files could not be read)", partial);
	fputc('\n', stdout);
}

static int list(cairn_repo *repo, const struct filter *f)
{
	struct cairn_snapshot **v = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &v, &n);
	if (r < 0)
		return r;
	_cleanup_free_ bool *show = calloc(n ? n : 1, sizeof(*show));
	if (!show) {
		cairn_snapshot_list_free(v, n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < n; i++)
		show[i] = snapsel_match(&f->sel, v[i]);
	if (f->json) {
		bool first = true;
		fputc('[', stdout);
		for (size_t i = 0; i < n; i++)
			if (show[i]) {
				print_json(v[i], first);
				first = false;
			}
		fputs("]\n", stdout);
	} else {
		print_table(v, show, n);
	}
	cairn_snapshot_list_free(v, n);
	return 0;
}

int cmd_snapshots(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		SNAPSEL_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	struct filter f = { 0 };
	int rc = 0;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &f);
	if (i < 0)
		rc = CLI_PARSE_EXIT(i);
	else if (i < argc)
		rc = cli_usage_error("snapshots: unexpected argument '%s'", argv[i]);
	if (i >= 0 && i == argc) {
		int r = cli_open_repo(&repo, &ro);
		if (r >= 0)
			r = list(repo, &f);
		if (r < 0)
			rc = cli_fail(r);
	}
	snapsel_release(&f.sel);
	return rc;
}
