/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn: the command-line front end. Dispatches to cmd_*() (git builtin/ style). */
#include <locale.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "cli.h"
#include "cleanup.h"

struct command {
	const char *name;
	int (*fn)(int argc, char **argv);
	const char *help;
};

static const struct command commands[] = {
	{ "init", cmd_init, "create a new repository" },
	{ "backup", cmd_backup, "back up files and directories into a new snapshot" },
	{ "snapshots", cmd_snapshots, "list snapshots" },
	{ "ls", cmd_ls, "list the files of a snapshot" },
	{ "dump", cmd_dump, "write a file of a snapshot, or a directory as tar, to stdout" },
	{ "restore", cmd_restore, "restore a snapshot, or part of it, to a directory" },
	{ "mount", cmd_mount, "mount every snapshot read-only (runs cairnfs)" },
	{ "key", cmd_key, "list, add, remove or change passwords" },
	{ "rebuild-index", cmd_rebuild_index, "recreate the index from the packs" },
	{ "cat", cmd_cat, "print the config, a pack header or a blob (debugging)" },
	{ "sync", cmd_sync, "copy the repository to another storage (S3 or a directory)" },
	{ "copy", cmd_copy, "copy snapshots from another repository into this one" },
	{ "tag", cmd_tag, "add, remove or set the tags of snapshots" },
	{ "rewrite", cmd_rewrite, "remove files from existing snapshots" },
	{ "forget", cmd_forget, "remove snapshots by a retention policy or by ID" },
	{ "prune", cmd_prune, "delete data no snapshot uses" },
	{ "check", cmd_check, "verify the repository and name what damage affects" },
	{ "diff", cmd_diff, "show what changed between two snapshots" },
	{ "find", cmd_find, "find files by name or path across snapshots" },
	{ "stats", cmd_stats, "sizes, deduplication and compression" },
	{ "unlock", cmd_unlock, "list or remove stale repository locks" },
	{ "run", cmd_run, "run a job of /etc/cairn: backup, forget, sync, check, metrics" },
	{ "status", cmd_status, "3-2-1-1-0 report: copies, offsite, immutability, checks" },
	{ "report", cmd_report, "write an HTML page: snapshots, size, jobs' runs, checks" },
	{ "notify", cmd_notify, "send a failure notification (webhook, mail)" },
};

static const char usage[] =
        "usage: cairn [-r REPO] [--password-file F | --password-command CMD] [-v|-q]\n"
        "             [--log-format text|json] [--cache-dir DIR] [S3 options]\n"
        "             COMMAND [ARGS]\n"
        "       cairn --version\n";

static void print_help(FILE *f)
{
	fputs(usage, f);
	fputs("\ncommands:\n", f);
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		fprintf(f, "  %-15s %s\n", commands[i].name, commands[i].help);
	fputs("\nThe repository comes from -r/--repo or CAIRN_REPO; the password from\n"
	      "--password-file, --password-command, CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND,\n"
	      "CAIRN_PASSWORD, or a prompt. 'cairn help COMMAND' (or 'cairn COMMAND --help')\n"
	      "describes a command; the manual is cairn(1), the guides /usr/share/doc/cairn.\n"
	      "A repository may live in S3 (-r s3://BUCKET/PREFIX) for every command; its\n"
	      "local cache is --cache-dir DIR (default CAIRN_CACHE_DIR, ~/.cache/cairn).\n"
	      "\nS3 options, before or after COMMAND (for s3:// repositories, and where a\n"
	      "command reaches S3: sync, copy, mount; see each):\n"
	      "  --s3-endpoint URL        the server (default AWS_ENDPOINT_URL_S3,\n"
	      "                           AWS_ENDPOINT_URL, the profile's endpoint_url, AWS)\n"
	      "  --s3-region REGION       default AWS_REGION, the profile's, us-east-1\n"
	      "  --s3-profile NAME        AWS config profile (default AWS_PROFILE, default)\n"
	      "  --s3-addressing auto|path|virtual\n"
	      "                           bucket in the URL's path or host name (auto)\n"
	      "  --s3-connections N       transfers in parallel (default 8)\n"
	      "  --s3-lock-days N         upload every object with an Object Lock of N days\n"
	      "  --s3-lock-mode compliance|governance\n"
	      "                           the mode of that lock (default compliance)\n",
	      f);
}

/* "cairn help [COMMAND]": the command's own --help, as git help does. */
static int help(int argc, char **argv)
{
	if (argc < 2) {
		print_help(stdout);
		return 0;
	}
	if (argc > 2)
		return cli_usage_error("help: give one command");
	for (size_t k = 0; k < ARRAY_SIZE(commands); k++) {
		if (strcmp(argv[1], commands[k].name) != 0)
			continue;
		char *args[] = { argv[1], (char *)"--help", NULL };
		return commands[k].fn(2, args);
	}
	return cli_usage_error("help: '%s' is not a cairn command; see 'cairn --help'", argv[1]);
}

static int handle_main(int c, const char *arg, void *payload)
{
	(void)arg;
	bool *version = payload;
	if (c != 'V')
		return cairn_err_set(-EINVAL, "unknown option");
	*version = true;
	return 0;
}

/* --log-format anywhere before "--" takes effect before anything is parsed, so that
 * even a usage error ahead of it on the command line is logged in its format. */
static void early_log_format(int argc, char **argv)
{
	for (int k = 1; k < argc; k++) {
		const char *v = NULL;
		if (strcmp(argv[k], "--") == 0)
			return;
		if (strcmp(argv[k], "--log-format") == 0 && k + 1 < argc)
			v = argv[k + 1];
		else if (strncmp(argv[k], "--log-format=", 13) == 0)
			v = argv[k] + 13;
		if (v && strcmp(v, "json") == 0)
			cairn_log_set_json(true);
		else if (v && strcmp(v, "text") == 0)
			cairn_log_set_json(false);
	}
}

static int run(int argc, char **argv);

int main(int argc, char **argv)
{
	cairn_guard_std_fds();
	cli_crash_hint();
	return cli_finish_stdout(run(argc, argv));
}

static int run(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS,
		                                  { "version", no_argument, NULL, 'V' },
		                                  { 0 } };
	bool version = false;

	setlocale(LC_ALL, "");
	/* Buffers of several MiB (index files, large chunks) are mapped and
	 * unmapped, not kept: after the first free of a mapped buffer glibc raises
	 * its mmap threshold to that size, and freed buffers below it then stay in
	 * each thread's arena for the rest of the run (a first backup of a million
	 * small files held about 30 MB more). */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 8 << 20);
	/* libcurl's global state is set up once, before any thread exists (STYLE §6,
	 * libcurl-thread.md); the S3 client's threads then only use easy handles. */
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return cli_fail(cairn_err_set(-EIO, "cannot initialise libcurl"));
	atexit(curl_global_cleanup);
	cairn_log_level_from_env();
	early_log_format(argc, argv);
	/* "+": global options stop at the command name; the command parses the rest.
	 * No name before their messages: the logger's "cairn: " says it already. */
	argv[0] = (char *)"";
	int i = cli_parse(argc, argv, "+", longopts, "", handle_main, &version); /* help: below */
	if (i == -1) {
		print_help(stdout);
		return 0;
	}
	if (i < 0)
		return EXIT_USAGE;
	if (version) {
		printf("cairn %s (repository format %d)\n", CAIRN_VERSION, CAIRN_FORMAT_VERSION);
		return 0;
	}
	if (i >= argc) {
		if (cairn_log_get_json())
			return cli_usage_error("no command given; see 'cairn --help'");
		print_help(stderr);
		return EXIT_USAGE;
	}
	if (strcmp(argv[i], "help") == 0)
		return help(argc - i, argv + i);
	for (size_t k = 0; k < ARRAY_SIZE(commands); k++)
		if (strcmp(argv[i], commands[k].name) == 0)
			return commands[k].fn(argc - i, argv + i);
	return cli_usage_error("'%s' is not a cairn command; see 'cairn --help'", argv[i]);
}
