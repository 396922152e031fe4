/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn key list|add|remove|passwd: manage the passwords of a repository. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cleanup.h"
#include "maint.h"

static const char usage[] =
        "usage: cairn key list [--json]\n"
        "       cairn key add [--write-only] [--new-password-file F] [--key-label TEXT]\n"
        "                     [--kdf-log2n N] [--insecure-password]\n"
        "       cairn key remove NAME\n"
        "       cairn key passwd [--new-password-file F] [--key-label TEXT]\n"
        "                        [--kdf-log2n N] [--insecure-password]\n"
        "\n"
        "Each key file holds the master key wrapped by one password (a full key), or,\n"
        "with --write-only, only what a host needs to add backups: it cannot read,\n"
        "forget or prune them, not even its own (see cairn(1), FORMAT.md §3.3). The\n"
        "current password opens the repository; the new one comes from\n"
        "--new-password-file or a prompt, and has at least 8 characters unless\n"
        "--insecure-password is given. passwd keeps the key's label unless\n"
        "--key-label gives another. The new key file's scrypt cost is that of the\n"
        "key in use unless --kdf-log2n N (10 to 20) sets it. add, remove and passwd\n"
        "need a full key.\n";

enum { OPT_NEW_PW = OPT_FIRST_COMMAND_OPT, OPT_LABEL, OPT_INSECURE, OPT_WRITE_ONLY, OPT_KDF };

struct key_opts {
	const char *new_file;
	const char *label;
	bool json, insecure, write_only;
	int kdf_log2n; /* 0: the cost of the key in use */
};

static int handle(int c, const char *arg, void *payload)
{
	struct key_opts *o = payload;
	switch (c) {
	case OPT_NEW_PW:
		o->new_file = arg;
		return 0;
	case OPT_LABEL:
		o->label = arg;
		return cli_check_label("a key label", arg, 255);
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_INSECURE:
		o->insecure = true;
		return 0;
	case OPT_WRITE_ONLY:
		o->write_only = true;
		return 0;
	case OPT_KDF: {
		long v;
		int r = cli_parse_int(arg, 10, 20, &v);
		if (r >= 0)
			o->kdf_log2n = (int)v;
		return r;
	}
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static void fmt_time(char *buf, size_t n, int64_t t)
{
	struct tm tm;
	time_t tt = (time_t)t;
	/* created is not authenticated until a password opens the file. */
	if (!localtime_r(&tt, &tm) || strftime(buf, n, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, n, "?");
}

static void list_unreadable(const struct cairn_key_info *k, bool json, bool first)
{
	if (json) {
		printf("%s{\"name\":\"%s\",\"current\":%s,\"unreadable\":", first ? "" : ",",
		       k->name, k->current ? "true" : "false");
		cli_json_str(stdout, k->unreadable, strlen(k->unreadable));
		fputc('}', stdout);
		return;
	}
	printf("%c %-16s  unreadable: ", k->current ? '*' : ' ', k->name);
	cairn_text_str(stdout, k->unreadable, strlen(k->unreadable));
	fputc('\n', stdout);
}

static int key_list(cairn_repo *repo, bool json)
{
	_cleanup_free_ struct cairn_key_info *keys = NULL;
	size_t n = 0;
	int r = cairn_key_list(repo, &keys, &n);
	if (r < 0)
		return cli_fail(r);
	if (json)
		fputc('[', stdout);
	else
		printf("  %-16s  %-10s  %-19s  %-8s  %s\n", "name", "kind", "created", "scrypt",
		       "label");
	size_t bad = 0;
	for (size_t i = 0; i < n; i++) {
		char t[32];
		if (keys[i].unreadable[0]) {
			list_unreadable(&keys[i], json, i == 0);
			bad++;
			continue;
		}
		fmt_time(t, sizeof(t), keys[i].created);
		if (json) {
			printf("%s{\"name\":\"%s\",\"kind\":\"%s\",\"created\":%lld,"
			       "\"current\":%s,\"label\":",
			       i ? "," : "", keys[i].name, cairn_key_kind_name(keys[i].kind),
			       (long long)keys[i].created, keys[i].current ? "true" : "false");
			cli_json_str(stdout, keys[i].label, strlen(keys[i].label));
			printf(",\"scrypt\":{\"log2n\":%d,\"r\":%u,\"p\":%u}}", keys[i].kdf_log2n,
			       keys[i].r, keys[i].p);
		} else {
			printf("%c %-16s  %-10s  %-19s  N=2^%-3d  ", keys[i].current ? '*' : ' ',
			       keys[i].name, cairn_key_kind_name(keys[i].kind), t,
			       keys[i].kdf_log2n);
			cairn_text_name(stdout, keys[i].label, strlen(keys[i].label));
			fputc('\n', stdout);
		}
	}
	if (json)
		fputs("]\n", stdout);
	if (bad)
		return cli_fail(cairn_err_set(-EBADMSG, "%zu key %s could not be read", bad,
		                              bad == 1 ? "file" : "files"));
	return 0;
}

static int key_change(cairn_repo *repo, const char *sub, const struct key_opts *o)
{
	char *pw = NULL, name[17];
	size_t len = 0;
	int r = cli_new_password(&pw, &len, o->new_file);
	if (r >= 0 && (r = cli_check_new_password(pw, len, o->insecure)) < 0)
		cli_password_free(pw, len);
	if (r < 0)
		return cli_fail(r);
	if (strcmp(sub, "add") == 0 && o->write_only)
		r = cairn_key_add_write_only(repo, pw, len, o->label, o->kdf_log2n, name);
	else if (strcmp(sub, "add") == 0)
		r = cairn_key_add(repo, pw, len, o->label, o->kdf_log2n, name);
	else
		r = cairn_key_passwd(repo, pw, len, o->label, o->kdf_log2n);
	cli_password_free(pw, len);
	if (r < 0)
		return cli_fail(r);
	if (strcmp(sub, "add") == 0)
		printf("added %skey %s\n", o->write_only ? "write-only " : "", name);
	else
		printf("password changed\n");
	return 0;
}

int cmd_key(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "new-password-file", required_argument, NULL, OPT_NEW_PW },
		{ "key-label", required_argument, NULL, OPT_LABEL },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "insecure-password", no_argument, NULL, OPT_INSECURE },
		{ "write-only", no_argument, NULL, OPT_WRITE_ONLY },
		{ "kdf-log2n", required_argument, NULL, OPT_KDF },
		{ 0 },
	};
	struct key_opts o = { 0 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .no_index = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i >= argc)
		return cli_usage_error("key: missing subcommand (list, add, remove, passwd)");
	const char *sub = argv[i++];
	bool is_remove = strcmp(sub, "remove") == 0;
	if (strcmp(sub, "list") && strcmp(sub, "add") && strcmp(sub, "passwd") && !is_remove)
		return cli_usage_error("key: unknown subcommand '%s'", sub);
	if (is_remove && i + 1 != argc)
		return cli_usage_error("key remove: give exactly one key name");
	if (!is_remove && i != argc)
		return cli_usage_error("key %s: unexpected argument '%s'", sub, argv[i]);
	if (o.write_only && strcmp(sub, "add") != 0)
		return cli_usage_error("key %s: --write-only is for key add", sub);
	if (o.kdf_log2n && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0)
		return cli_usage_error("key %s: --kdf-log2n is for key add and key passwd", sub);
	if (o.label && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0)
		return cli_usage_error("key %s: --key-label is for key add and key passwd", sub);
	ro.read_only = strcmp(sub, "list") == 0;
	/* Listing the keys reads no backup: a host may see what it holds. */
	ro.allow_write_only = ro.read_only;
	int r = cli_open_repo(&repo, &ro);
	if (r < 0)
		return cli_fail(r);
	if (strcmp(sub, "list") == 0)
		return key_list(repo, o.json);
	/* One key change at a time, beside backups and prunes (FORMAT.md §11). */
	maint_test_point("key-opened");
	if ((r = cairn_repo_lock(repo, CAIRN_LOCK_KEYS, "key", 0, &lock)) < 0)
		return cli_fail(r);
	maint_test_point("key-locked");
	if (is_remove) {
		if ((r = cairn_key_remove(repo, argv[i])) < 0)
			return cli_fail(r);
		printf("removed key %s\n", argv[i]);
		return 0;
	}
	return key_change(repo, sub, &o);
}
