/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Shared plumbing of the cairn subcommands: options, passwords, opening the repo. */
#ifndef CAIRN_CLI_H
#define CAIRN_CLI_H

#include <getopt.h>
#include <pthread.h>
#include <spawn.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "cairn/store.h"

/* Exit codes: 0 ok, 1 error, 2 bad usage, 3 finished with warnings (partial backup). */
enum { EXIT_ERROR = 1, EXIT_USAGE = 2, EXIT_PARTIAL = 3 };

/* Options every command accepts (set from argv or the environment). */
struct cli_globals {
	const char *repo;
	const char *password_file;
	const char *password_command;
	bool json;
	/* --s3-* and --cache-dir: how an s3:// repository (or sync target) is
	 * reached and where its local state is kept. */
	struct cairn_storage_opts storage;
};
extern struct cli_globals cli;

enum {
	OPT_PASSWORD_FILE = 0x100,
	OPT_PASSWORD_COMMAND,
	OPT_LOG_FORMAT,
	OPT_JSON,
	OPT_CACHE_DIR,
	OPT_S3_ENDPOINT,
	OPT_S3_REGION,
	OPT_S3_PROFILE,
	OPT_S3_ADDRESSING,
	OPT_S3_CONNECTIONS,
	OPT_S3_LOCK_DAYS,
	OPT_S3_LOCK_MODE,
	OPT_FIRST_COMMAND_OPT = 0x200, /* commands number their own long options from here */
};

#define CLI_COMMON_SHORTOPTS "r:vqh"
#define CLI_COMMON_LONGOPTS                                                                 \
	{ "repo", required_argument, NULL, 'r' },                                           \
	        { "password-file", required_argument, NULL, OPT_PASSWORD_FILE },            \
	        { "password-command", required_argument, NULL, OPT_PASSWORD_COMMAND },      \
	        { "verbose", no_argument, NULL, 'v' }, { "quiet", no_argument, NULL, 'q' }, \
	        { "log-format", required_argument, NULL, OPT_LOG_FORMAT },                  \
	        { "cache-dir", required_argument, NULL, OPT_CACHE_DIR },                    \
	        { "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },                \
	        { "s3-region", required_argument, NULL, OPT_S3_REGION },                    \
	        { "s3-profile", required_argument, NULL, OPT_S3_PROFILE },                  \
	        { "s3-addressing", required_argument, NULL, OPT_S3_ADDRESSING },            \
	        { "s3-connections", required_argument, NULL, OPT_S3_CONNECTIONS },          \
	        { "s3-lock-days", required_argument, NULL, OPT_S3_LOCK_DAYS },              \
	        { "s3-lock-mode", required_argument, NULL, OPT_S3_LOCK_MODE },              \
	{                                                                                   \
		"help", no_argument, NULL, 'h'                                              \
	}

/* Parse a command's options; for each option not common, calls handle(c, optarg,
 * payload), which returns < 0 on bad usage. Returns optind, or -1 after printing
 * usage for --help (exit 0) and -2 on bad usage (message printed, exit 2).
 * Messages begin with argv[0], the command's name ("ls: unknown option ..."),
 * unless it is empty (the global options of main). */
int cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
              const char *usage, int (*handle)(int c, const char *arg, void *payload),
              void *payload);
/* Convert a cli_parse result into a process exit code when it is negative. */
#define CLI_PARSE_EXIT(r) ((r) == -1 ? 0 : EXIT_USAGE)

/* Log a usage error at error level ("cairn: <msg>", or a JSON line with fields
 * code "usage" and exit_code 2) and return EXIT_USAGE. */
int cli_usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* 0 when path, a PATH inside a snapshot given to command cmd, is absolute;
 * otherwise a usage error naming the absolute path it likely meant, and
 * EXIT_USAGE. A relative PATH would be taken from the snapshot's root. */
int cli_check_snapshot_path(const char *cmd, const char *path);
/* Log cairn_err_msg() at error level (JSON field code: the errno name of r) and
 * return EXIT_ERROR (EXIT_USAGE for -EDESTADDRREQ). */
int cli_fail(int r);

/* Replace a file the user named for output (a report, metrics) whole, with
 * tmp + rename: data of len bytes, mode. A symlink or fifo there is replaced,
 * never followed (its directory may be writable by others); a device,
 * directory or socket is refused (-EINVAL), never replaced. */
int cli_write_output_file(const char *path, const void *data, size_t len, unsigned mode);
/* Whether cli_write_output_file() could write path, asked before the work that
 * produces it: path is not empty, its directory exists, and nothing is there
 * that it refuses. -EINVAL, -ENOENT with a message. */
int cli_check_output_file(const char *path);
/* On a crash (SIGSEGV, SIGBUS), one line saying what most likely damaged
 * memory, a damaged index (LMDB trusts its file), and what mends it, before
 * the signal takes its course. Not under AddressSanitizer, whose report is
 * worth more. Also ignores SIGPIPE: a closed output is a write error (EPIPE). */
void cli_crash_hint(void);
/* posix_spawn attributes for a program that is not cairn (the mail program):
 * SIGPIPE back to its default. 0 or an errno; posix_spawnattr_destroy after. */
int cli_spawnattr_init(posix_spawnattr_t *attr);
/* The exit code once the command returned rc: a stdout that could not be
 * written (full disk, closed) turns success into EXIT_ERROR, with a message. */
int cli_finish_stdout(int rc);

/* Where a password comes from, in this order: file, command, the environment
 * variables <env>_FILE, <env>_COMMAND and <env>, a no-echo prompt on the TTY. */
struct cli_password_src {
	const char *file, *command; /* NULL: not given */
	const char *env;            /* "CAIRN_PASSWORD" */
	const char *prompt;         /* NULL: "Password: " */
};
/* The password, from --password-file, --password-command, CAIRN_PASSWORD_FILE,
 * CAIRN_PASSWORD_COMMAND, CAIRN_PASSWORD, or a no-echo prompt on the TTY. confirm asks
 * twice (TTY only). Caller frees with cli_password_free(). */
int cli_password(char **out, size_t *len, const char *prompt, bool confirm);
/* A new password for key add/passwd: from new_file if given, else a TTY prompt with
 * confirmation. */
int cli_new_password(char **out, size_t *len, const char *new_file);
void cli_password_free(char *pw, size_t len);
/* The file cli_password() reads the password from (--password-file, else
 * CAIRN_PASSWORD_FILE unless --password-command is given), or NULL. */
const char *cli_password_file(void);
/* New passwords (init, key add, key passwd) have at least this many characters
 * unless --insecure-password says otherwise: -EINVAL with a message. */
#define CLI_PASSWORD_MIN 8
int cli_check_new_password(const char *pw, size_t len, bool insecure);
/* Read the first line of a file as a password (trailing newline stripped). */
int cli_password_from_file(const char *path, char **out, size_t *len);

/* The repository (a directory or s3://BUCKET[/PREFIX]) from -r/--repo or
 * CAIRN_REPO; -EDESTADDRREQ if none. */
int cli_repo_path(const char **out);
/* The name of the state table (FORMAT.md §7.1) in which a local repository
 * records what a sync copied to or from the storage other: "sync:<id>", or
 * "sync:" and 40 hex digits of SHA-256(id) when that is 100 bytes or more. */
#define CLI_SYNC_TABLE_MAX 128
void cli_sync_table(char out[CLI_SYNC_TABLE_MAX], const cairn_storage *other);
/* The S3 settings of the command line (--s3-*, --cache-dir). Borrowed. */
const struct cairn_storage_opts *cli_storage_opts(void);
/* A cairn_repo_opts.warn that logs each line as a warning. */
void cli_repo_warn(const char *msg, void *payload);
/* Probe, ask for the password, open (a directory or s3://, with the command
 * line's S3 settings unless opts has its own). The store's warnings are logged
 * (cli_repo_warn) unless opts sets its own. */
int cli_open_repo(cairn_repo **out, const struct cairn_repo_opts *opts);
/* The same for the repository at path, its password from src (NULL: as
 * cli_password() finds it). */
int cli_open_repo_at(cairn_repo **out, const char *path, const struct cli_password_src *src,
                     const struct cairn_repo_opts *opts);
static inline void cairn_repo_closep(cairn_repo **r)
{
	cairn_repo_close(*r);
}
#define _cleanup_repo_ __attribute__((cleanup(cairn_repo_closep)))

/* Parse sizes like 16M, 512K, 1G, 2T (binary units). -EINVAL. */
int cli_parse_size(const char *s, uint64_t *out);
int cli_parse_int(const char *s, long min, long max, long *out);

/* A host name or tag to record: 1 to max bytes, no control characters (they
 * would be shown escaped ever after). -EINVAL naming what. */
int cli_check_label(const char *what, const char *s, size_t max);

/* The item of a TAG[,TAG...] list that starts at p, without the spaces around
 * it ("a, b" is "a" and "b"; a tab stays, to be refused as a control
 * character): its start, its length in *len, and in *next the start of the
 * next item, or NULL after the last. */
static inline const char *cli_tag_item(const char *p, size_t *len, const char **next)
{
	size_t k = strcspn(p, ",");
	*next = p[k] ? p + k + 1 : NULL;
	while (k > 0 && *p == ' ') {
		p++;
		k--;
	}
	while (k > 0 && p[k - 1] == ' ')
		k--;
	*len = k;
	return p;
}

/* Tags given on the command line: copies, each once. */
struct cli_tags {
	char **v;
	size_t n;
};
/* Add the tags of arg, restic's TAG[,TAG...] ("a,b" is two tags, blanks around
 * each left out: cli_tag_item), skipping those t already has; "" adds none.
 * Each is checked as cli_check_label("a tag", tag, 1024) does, so "a,,b" is
 * refused. -EINVAL (message set), -ENOMEM; on failure the tags before the bad
 * one may have been added. */
int cli_tags_add(struct cli_tags *t, const char *arg);
bool cli_tags_has(const struct cli_tags *t, const char *tag);
void cli_tags_release(struct cli_tags *t);

/* Write bytes as a JSON string to f: cairn_json_str (cairn/util.h). Valid UTF-8
 * passes through; other bytes become \udcXX (U+DC80 + byte, as Python's
 * surrogateescape), so names stay exact. */
void cli_json_str(FILE *f, const void *s, size_t n);
/* The word for n things: cli_plural(n, "file", "files"). */
static inline const char *cli_plural(uint64_t n, const char *one, const char *many)
{
	return n == 1 ? one : many;
}
/* Human-readable bytes: "1.5 GiB". */
const char *cli_fmt_bytes(char *buf, size_t n, uint64_t bytes);
/* s with ',' and '\' escaped by '\', as libfuse's -o parser (fuse_opt) unescapes
 * it: a value in "-o name=VALUE" that cannot add options. Caller frees; NULL
 * when out of memory. */
char *cli_opt_escape(const char *s);

/* The previous metrics textfile at path (at most 1 MiB), NUL-terminated in *out
 * (caller releases): empty when there is none, and when path is anything but a
 * regular file of this user with one link, which is not read (a warning says
 * so; the caller's atomic rename then replaces it). -EACCES, -EFBIG, -EIO. */
int cli_metrics_read(const char *path, struct cairn_buf *out);

/* The environment for a child that does not open the repository (a mail
 * program): environ without CAIRN_PASSWORD*, CAIRN_FROM_PASSWORD*,
 * AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN. The strings are borrowed from
 * environ (valid until it changes); the caller frees the array. NULL when out of
 * memory. Children that do open it (cairn run's steps, cairnfs, a password
 * command that may fetch the password with cloud credentials) get the whole
 * environment. */
char **cli_child_env(void);

/* pthread_create with default attributes: 0, or a positive error number (EAGAIN
 * when the thread limit or memory is exhausted). CAIRN_TEST_THREAD_FAIL_AFTER=N
 * makes every call after the process's first N fail with EAGAIN (tests). */
int cli_thread_create(pthread_t *t, void *(*fn)(void *), void *arg);

/* Subcommands (git builtin/ style). */
int cmd_init(int argc, char **argv);
int cmd_key(int argc, char **argv);
int cmd_rebuild_index(int argc, char **argv);
int cmd_cat(int argc, char **argv);
int cmd_backup(int argc, char **argv);
int cmd_snapshots(int argc, char **argv);
int cmd_ls(int argc, char **argv);
int cmd_dump(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_sync(int argc, char **argv);
int cmd_forget(int argc, char **argv);
int cmd_prune(int argc, char **argv);
int cmd_check(int argc, char **argv);
int cmd_diff(int argc, char **argv);
int cmd_find(int argc, char **argv);
int cmd_stats(int argc, char **argv);
int cmd_unlock(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_notify(int argc, char **argv);
int cmd_status(int argc, char **argv);
int cmd_report(int argc, char **argv);
int cmd_mount(int argc, char **argv);
int cmd_tag(int argc, char **argv);
int cmd_rewrite(int argc, char **argv);
int cmd_copy(int argc, char **argv);

#endif
