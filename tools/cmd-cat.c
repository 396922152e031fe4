/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn cat and cairn rebuild-index: low-level views of the repository. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cleanup.h"

static const char cat_usage[] =
        "usage: cairn cat config\n"
        "       cairn cat pack ID      list a pack's header (ID or unique prefix)\n"
        "       cairn cat blob ID      write a blob's plaintext to stdout\n";

static const char rebuild_usage[] =
        "usage: cairn rebuild-index\n"
        "\n"
        "Recreates the index from the pack headers. The index is a cache: this is\n"
        "always safe, and needed only after it was lost or damaged. The blobs of a\n"
        "pack whose header is damaged are taken from the index files that name it;\n"
        "when none does, they are left out, and the exit status is 1.\n";

/* Resolve a hex prefix against a set of IDs delivered by an iterator. */
struct prefix_match {
	const char *prefix;
	size_t len;
	struct cairn_id found;
	int matches;
};

static void match_one(struct prefix_match *m, const struct cairn_id *id)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, id);
	if (strncmp(hex, m->prefix, m->len) == 0 && m->matches++ == 0)
		m->found = *id;
}

static int match_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	(void)size;
	match_one(payload, pack);
	return 0;
}

static int match_blob(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	(void)loc;
	match_one(payload, id);
	return 0;
}

static int resolve(cairn_repo *repo, const char *arg, bool pack, struct cairn_id *out)
{
	struct prefix_match m = { .prefix = arg, .len = strlen(arg) };
	uint8_t tmp[CAIRN_ID_SIZE];

	if (m.len < 4 || m.len > 64 || (m.len % 2 == 0 && cairn_unhex(tmp, m.len / 2, arg) < 0))
		return cairn_err_set(-EINVAL, "'%s' is not an ID or an ID prefix of 4+ hex digits",
		                     arg);
	int r = pack ? cairn_repo_foreach_pack(repo, match_pack, &m)
	             : cairn_repo_foreach_blob(repo, match_blob, &m);
	if (r < 0)
		return r;
	if (m.matches == 0)
		return cairn_err_set(-ENOENT, "no %s matches '%s'", pack ? "pack" : "blob", arg);
	if (m.matches > 1)
		return cairn_err_set(-EINVAL, "'%s' is ambiguous (%d %ss match)", arg, m.matches,
		                     pack ? "pack" : "blob");
	*out = m.found;
	return 0;
}

static int cat_pack(cairn_repo *repo, const char *arg)
{
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	struct cairn_id pack;
	size_t n = 0;
	int r;

	if ((r = resolve(repo, arg, true, &pack)) < 0 ||
	    (r = cairn_repo_pack_entries(repo, &pack, &e, &n)) < 0)
		return cli_fail(r);
	for (size_t i = 0; i < n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &e[i].id);
		printf("%s %-4s offset %u stored %u raw %u\n", hex, cairn_blob_type_name(e[i].type),
		       e[i].offset, e[i].stored_len, e[i].raw_len);
	}
	return 0;
}

static int cat_blob(cairn_repo *repo, const char *arg)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_id id;
	int r;

	if ((r = resolve(repo, arg, false, &id)) < 0 || (r = cairn_repo_get(repo, &id, &b)) < 0)
		return cli_fail(r);
	if (cairn_write_all(STDOUT_FILENO, b.data, b.len) < 0)
		return cli_fail(cairn_err_set(-EIO, "cannot write to stdout"));
	return 0;
}

int cmd_cat(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { 0 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;

	int i = cli_parse(argc, argv, "", longopts, cat_usage, NULL, NULL);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i >= argc)
		return cli_usage_error("cat: say what to print: config, pack ID or blob ID");
	const char *what = argv[i++];
	bool needs_id = strcmp(what, "pack") == 0 || strcmp(what, "blob") == 0;
	if (!needs_id && strcmp(what, "config") != 0)
		return cli_usage_error("cat: unknown object '%s'", what);
	if (needs_id ? i + 1 != argc : i != argc)
		return cli_usage_error("cat %s: %s", what,
		                       needs_id ? "give exactly one ID" : "takes no arguments");
	ro.no_index = strcmp(what, "blob") != 0;
	int r = cli_open_repo(&repo, &ro);
	if (r < 0)
		return cli_fail(r);
	if (strcmp(what, "config") == 0) {
		fputs(cairn_repo_config_text(repo), stdout);
		return 0;
	}
	return strcmp(what, "pack") == 0 ? cat_pack(repo, argv[i]) : cat_blob(repo, argv[i]);
}

int cmd_rebuild_index(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { 0 } };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .no_index = true };
	_cleanup_repo_ cairn_repo *repo = NULL;

	int i = cli_parse(argc, argv, "", longopts, rebuild_usage, NULL, NULL);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i != argc)
		return cli_usage_error("rebuild-index: unexpected argument '%s'", argv[i]);
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = cairn_repo_rebuild_index(repo);
	size_t lost = repo ? cairn_repo_unindexed_packs(repo) : 0;
	if (r >= 0 && lost)
		r = cairn_err_set(-EBADMSG,
		                  "the blobs of %zu %s could not be indexed: %s damaged and no "
		                  "index file names %s (see above)",
		                  lost, lost == 1 ? "pack" : "packs",
		                  lost == 1 ? "its header is" : "their headers are",
		                  lost == 1 ? "it" : "them");
	if (r < 0)
		return cli_fail(r);
	if (cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("index rebuilt from %d %s\n", r, cli_plural((uint64_t)r, "pack", "packs"));
	return 0;
}
