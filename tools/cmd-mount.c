/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn mount: run cairnfs, the FUSE daemon (a program of its own: it links libfuse). */
#include <errno.h>
#include <limits.h>
#include <libgen.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "cleanup.h"

#define MAX_OPTS 32

static const char usage[] =
        "usage: cairn mount [-f] [-o OPTION[,OPTION...]] [REPO] MOUNTPOINT\n"
        "\n"
        "Mounts every snapshot of the repository read-only at MOUNTPOINT with cairnfs\n"
        "(see cairnfs --help and /usr/share/doc/cairn/MOUNT.md). REPO defaults to\n"
        "-r/--repo or CAIRN_REPO, and may be s3://BUCKET/PREFIX. MOUNTPOINT is an\n"
        "existing empty directory. Unmount with 'fusermount3 -u MOUNTPOINT'.\n"
        "\n"
        "  -f            stay in the foreground\n"
        "  -o OPTIONS    cairnfs and FUSE options, e.g. allow_other,cache_size=1G\n"
        "\n"
        "The password options, --cache-dir, --s3-endpoint, --s3-region and\n"
        "--s3-profile reach cairnfs; --s3-addressing and --s3-connections are refused\n"
        "(cairnfs has no setting for them).\n";

struct mount_opts {
	bool foreground;
	const char *o[MAX_OPTS];
	size_t no;
};

static int handle(int c, const char *arg, void *payload)
{
	struct mount_opts *m = payload;
	switch (c) {
	case 'f':
		m->foreground = true;
		return 0;
	case 'o':
		if (m->no == MAX_OPTS)
			return cairn_err_set(-EINVAL, "too many -o options");
		m->o[m->no++] = arg;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* cairnfs next to this program (installed, or build/fs/ beside build/tools/),
 * else from PATH. */
static void find_cairnfs(char *out, size_t n)
{
	char self[PATH_MAX];
	ssize_t len = readlink("/proc/self/exe", self, sizeof(self) - 1);
	snprintf(out, n, "cairnfs");
	if (len <= 0)
		return;
	self[len] = '\0';
	const char *dir = dirname(self);
	static const char *const rel[] = { "cairnfs", "../fs/cairnfs" };
	for (size_t i = 0; i < ARRAY_SIZE(rel); i++) {
		char p[PATH_MAX];
		if (snprintf(p, sizeof(p), "%s/%s", dir, rel[i]) < (int)sizeof(p) &&
		    access(p, X_OK) == 0) {
			snprintf(out, n, "%s", p);
			return;
		}
	}
}

/* cairnfs takes its S3 settings from the environment (docs/S3.md §6): the
 * options given to cairn go there, over what the environment says. Those with
 * no variable are bad usage rather than dropped. */
static int pass_s3_opts(const struct cairn_s3_opts *o)
{
	if (o->addressing != CAIRN_S3_ADDR_AUTO || o->connections)
		return cli_usage_error("mount: cairnfs takes no --s3-addressing or "
		                       "--s3-connections (set s3.addressing_style in the profile)");
	int r = 0;
	if (o->endpoint)
		r = setenv("AWS_ENDPOINT_URL_S3", o->endpoint, 1) < 0 ||
		    unsetenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS") < 0;
	if (!r && o->region)
		r = setenv("AWS_REGION", o->region, 1) < 0;
	if (!r && o->profile)
		r = setenv("AWS_PROFILE", o->profile, 1) < 0;
	return r ? cli_fail(cairn_err_set(-ENOMEM, "out of memory")) : -1;
}

int cmd_mount(int argc, char **argv)
{
	static const struct option longopts[] = { CLI_COMMON_LONGOPTS, { 0 } };
	struct mount_opts m = { 0 };
	const char *args[2 * MAX_OPTS + 16];
	_cleanup_free_ char *pwfile = NULL, *pwcmd = NULL;
	char prog[PATH_MAX];
	size_t n = 0;

	int i = cli_parse(argc, argv, "fo:", longopts, usage, handle, &m);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	const char *repo = NULL, *mnt = NULL;
	if (argc - i == 2) {
		repo = argv[i];
		mnt = argv[i + 1];
	} else if (argc - i == 1) {
		int r = cli_repo_path(&repo);
		if (r < 0)
			return cli_fail(r);
		mnt = argv[i];
	} else {
		return cli_usage_error("mount: give [REPO] MOUNTPOINT (see 'cairn mount --help')");
	}
	int rc = pass_s3_opts(&cli.storage.s3);
	if (rc >= 0)
		return rc;
	find_cairnfs(prog, sizeof(prog));
	args[n++] = "cairnfs";
	/* Passwords travel as file names or commands, never as values on argv;
	 * whole, however long (a cut command would run something else). */
	if ((cli.password_file && asprintf(&pwfile, "--password-file=%s", cli.password_file) < 0) ||
	    (cli.password_command &&
	     asprintf(&pwcmd, "--password-command=%s", cli.password_command) < 0))
		return cli_fail(cairn_err_set(-ENOMEM, "out of memory"));
	if (pwfile)
		args[n++] = pwfile;
	if (pwcmd)
		args[n++] = pwcmd;
	if (m.foreground)
		args[n++] = "-f";
	/* A ',' in the value would start another option (--cache-dir '/x,allow_other'). */
	_cleanup_free_ char *esc =
	        cli.storage.cache_dir ? cli_opt_escape(cli.storage.cache_dir) : NULL;
	_cleanup_free_ char *cache = NULL;
	if (cli.storage.cache_dir) {
		if (!esc || asprintf(&cache, "cache_dir=%s", esc) < 0)
			return cli_fail(cairn_err_set(-ENOMEM, "out of memory"));
		args[n++] = "-o";
		args[n++] = cache;
	}
	for (size_t k = 0; k < m.no; k++) {
		args[n++] = "-o";
		args[n++] = m.o[k];
	}
	args[n++] = repo;
	args[n++] = mnt;
	args[n] = NULL;
	fflush(NULL);
	signal(SIGPIPE, SIG_DFL); /* cairnfs's own choice, not ours */
	if (strchr(prog, '/'))
		execv(prog, (char *const *)args);
	else
		execvp(prog, (char *const *)args);
	return cli_fail(cairn_err_set(-errno, "cannot run '%s': %s", prog, strerror(errno)));
}
