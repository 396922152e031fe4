/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs: mount every snapshot of a cairn repository, read-only (docs/MOUNT.md). */
#include "mount.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <locale.h>
#include <malloc.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cli.h"
#include "cleanup.h"
#include "ops.h"

#define CACHE_SIZE_DEFAULT (256ull << 20)

static const char usage[] =
        "usage: cairnfs [options] REPO|s3://BUCKET[/PREFIX] MOUNTPOINT\n"
        "\n"
        "Mounts every snapshot of the cairn repository REPO read-only at MOUNTPOINT:\n"
        "snapshots/<time>, latest, hosts/<host>/<time>, tags/<tag>/<time> (each host\n"
        "and tag with its own latest), ids/<id>, history/<path> and\n"
        "shadow/<host>/@GMT-<utc time> (Samba's vfs_shadow_copy2).\n"
        "Unmount with 'fusermount3 -u MOUNTPOINT'.\n"
        "\n"
        "options:\n"
        "  -f                        stay in the foreground (for systemd and tests)\n"
        "  -o cache_size=SIZE        blob and tree caches (default 256M; K, M, G)\n"
        "  -o cache_dir=DIR          s3://: where the repository is cached (default\n"
        "                            CAIRN_CACHE_DIR, $XDG_CACHE_HOME/cairn, ~/.cache/cairn)\n"
        "  -o disk_cache=SIZE        s3://: bound of the on-disk pack data cache (1G)\n"
        "  -o allow_other            let other users in (permissions still apply)\n"
        "  -o no_default_permissions do not let the kernel check permissions\n"
        "                            (this also hides POSIX ACLs)\n"
        "  -o xattrs=auto|always     with no_default_permissions, auto: once no\n"
        "                            snapshot is found to have xattrs, the kernel\n"
        "                            stops asking; always: answer every request\n"
        "  -o password_file=FILE     --password-file FILE: the password's first line\n"
        "  -o password_command=CMD   --password-command CMD: run CMD for the password\n"
        "  -d                        debug: foreground, log every FUSE request\n"
        "  -v, -q                    more or less logging\n"
        "  -V, --version             print the version\n"
        "\n"
        "Without a password option: CAIRN_PASSWORD_FILE, CAIRN_PASSWORD_COMMAND,\n"
        "CAIRN_PASSWORD, or a prompt on the terminal. Other -o options go to libfuse:\n";

struct opts {
	char *repo;
	char *password_file;
	char *password_command;
	char *cache_size;
	char *cache_dir;
	char *disk_cache;
	char *xattrs;
	int no_default_permissions;
	int help, version, verbose, quiet;
};

enum { KEY_NO_DP, KEY_DP, KEY_HELP, KEY_VERSION, KEY_VERBOSE, KEY_QUIET };

static const struct fuse_opt opt_spec[] = {
	{ "password_file=%s", offsetof(struct opts, password_file), 0 },
	{ "--password-file=%s", offsetof(struct opts, password_file), 0 },
	{ "password_command=%s", offsetof(struct opts, password_command), 0 },
	{ "--password-command=%s", offsetof(struct opts, password_command), 0 },
	{ "cache_size=%s", offsetof(struct opts, cache_size), 0 },
	{ "cache_dir=%s", offsetof(struct opts, cache_dir), 0 },
	{ "disk_cache=%s", offsetof(struct opts, disk_cache), 0 },
	{ "xattrs=%s", offsetof(struct opts, xattrs), 0 },
	FUSE_OPT_KEY("no_default_permissions", KEY_NO_DP),
	FUSE_OPT_KEY("default_permissions", KEY_DP),
	FUSE_OPT_KEY("-h", KEY_HELP),
	FUSE_OPT_KEY("--help", KEY_HELP),
	FUSE_OPT_KEY("-V", KEY_VERSION),
	FUSE_OPT_KEY("--version", KEY_VERSION),
	FUSE_OPT_KEY("-v", KEY_VERBOSE),
	FUSE_OPT_KEY("--verbose", KEY_VERBOSE),
	FUSE_OPT_KEY("-q", KEY_QUIET),
	FUSE_OPT_KEY("--quiet", KEY_QUIET),
	FUSE_OPT_END
};

static int opt_proc(void *data, const char *arg, int key, struct fuse_args *outargs)
{
	(void)outargs;
	struct opts *o = data;
	switch (key) {
	case FUSE_OPT_KEY_NONOPT:
		if (o->repo)
			return 1; /* the mount point: fuse_parse_cmdline takes it */
		o->repo = strdup(arg);
		return o->repo ? 0 : -1;
	case FUSE_OPT_KEY_OPT:
		/* fstab options meant for mount(8) and systemd, not for the kernel. */
		return strncmp(arg, "x-", 2) == 0 || strcmp(arg, "_netdev") == 0 ? 0 : 1;
	case KEY_NO_DP:
		o->no_default_permissions = 1;
		return 0;
	case KEY_DP:
		return 0; /* on by default; added below */
	case KEY_HELP:
		o->help = 1;
		return 0;
	case KEY_VERSION:
		o->version = 1;
		return 0;
	case KEY_VERBOSE:
		o->verbose++;
		return 0;
	case KEY_QUIET:
		o->quiet = 1;
		return 0;
	default:
		return 1;
	}
}

static void opts_release(struct opts *o)
{
	free(o->repo);
	free(o->password_file);
	free(o->password_command);
	free(o->cache_size);
	free(o->cache_dir);
	free(o->disk_cache);
	free(o->xattrs);
}

/* libfuse's messages go through our logger (STYLE §7), one line each: some come
 * in pieces (fuse_session_new names unknown options with one call per option),
 * so a line is logged once it ends. */
static void fuse_log_cb(enum fuse_log_level level, const char *fmt, va_list ap)
{
	static _Thread_local char line[1024];
	static _Thread_local size_t len;
	int l = (int)level < CAIRN_LOG_ERR ? CAIRN_LOG_ERR : (int)level;
	vsnprintf(line + len, sizeof(line) - len, fmt, ap);
	len += strlen(line + len);
	if (len > 0 && line[len - 1] != '\n' && len < sizeof(line) - 1)
		return;
	while (len > 0 && line[len - 1] == '\n')
		line[--len] = '\0';
	cairn_log(l, "%s", line);
	len = 0;
}

/* The options every cairnfs mount gets. subtype and fsname come first, so the
 * user's may replace them; ro,nosuid,nodev come last, so nothing can: mount.fuse3
 * adds "dev,suid" for /etc/fstab entries, and with allow_other a setuid binary
 * or a device node from a backup must not come alive. */
static int add_mount_opts(struct fuse_args *args, const struct opts *o, const char *repo)
{
	_cleanup_free_ char *esc = cli_opt_escape(repo);
	char buf[PATH_MAX * 2 + 64];
	if (!esc)
		return -ENOMEM;
	snprintf(buf, sizeof(buf), "-osubtype=cairnfs,fsname=cairn:%s,ro", esc);
	if (fuse_opt_insert_arg(args, 1, buf) < 0)
		return -ENOMEM;
	/* Issue 8: the mount honours permissions unless told otherwise. */
	if (!o->no_default_permissions && fuse_opt_add_arg(args, "-odefault_permissions") < 0)
		return -ENOMEM;
	return fuse_opt_add_arg(args, "-oro,nosuid,nodev") < 0 ? -ENOMEM : 0;
}

static void print_help(void)
{
	fputs(usage, stdout);
	fuse_lowlevel_help();
}

/* ---- running the session ------------------------------------------------ */

struct run {
	struct opts o;
	struct fuse_cmdline_opts fo;
	struct fuse_args *args;
	char repo[PATH_MAX];
	uint64_t cache_size;
	uint64_t disk_cache;
	char *pw;
	size_t pwlen;
};

static int open_repo(struct run *run, cairn_repo **out)
{
	struct cairn_storage_opts so = { .version = CAIRN_STORAGE_OPTS_VERSION,
		                         /* A stalled server: EIO within two low-speed
		                          * windows (docs/S3.md §6), not 8. */
		                         .s3 = { .version = CAIRN_S3_OPTS_VERSION,
		                                 .stall_attempts = 2 },
		                         .cache_dir = run->o.cache_dir };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .read_only = true,
		                      .warn = cli_repo_warn,
		                      .storage = &so,
		                      .cache_size = run->disk_cache };
	int r = cairn_repo_open(out, run->repo, run->pw, run->pwlen, &ro);
	cli_password_free(run->pw, run->pwlen);
	run->pw = NULL;
	return r < 0 ? log_error_errno(r, "cannot open repository '%s'", run->repo) : 0;
}

static int loop(struct fuse_session *se, const struct fuse_cmdline_opts *fo)
{
	if (fo->singlethread)
		return fuse_session_loop(se);
	struct fuse_loop_config *cfg = fuse_loop_cfg_create();
	if (!cfg)
		return -ENOMEM;
	fuse_loop_cfg_set_clone_fd(cfg, (unsigned)fo->clone_fd);
	/* UINT_MAX: not given, keep libfuse's default. */
	if (fo->max_threads != UINT_MAX)
		fuse_loop_cfg_set_max_threads(cfg, fo->max_threads);
	if (fo->max_idle_threads != UINT_MAX)
		fuse_loop_cfg_set_idle_threads(cfg, fo->max_idle_threads);
	int r = fuse_session_loop_mt(se, cfg);
	fuse_loop_cfg_destroy(cfg);
	return r;
}

static void to_null(int fd)
{
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);
	if (null >= 0) {
		dup2(null, fd);
		close(null);
	}
}

/* systemd names the journal stream it gave a service in JOURNAL_STREAM. */
static bool stderr_is_journal(void)
{
	const char *e = getenv("JOURNAL_STREAM");
	unsigned long long dev, ino;
	struct stat st;
	return e && sscanf(e, "%llu:%llu", &dev, &ino) == 2 && fstat(STDERR_FILENO, &st) == 0 &&
	       (unsigned long long)st.st_dev == dev && (unsigned long long)st.st_ino == ino;
}

/* Once mounted in the background, stderr stays only where it is the journal: a
 * terminal, a pipe or an ssh session held open by the daemon would never see its
 * end (`out=$(cairnfs ...)`, `ssh host cairnfs ...` hang). Messages go to syslog
 * instead; errors before the mount still reach the caller on stderr. */
static void detach_stderr(void)
{
	if (stderr_is_journal())
		return;
	cairn_log_to_syslog("cairnfs");
	to_null(STDERR_FILENO);
}

/* Open the repository, mount, tell the parent (ready_fd >= 0) and serve until
 * unmounted. LMDB must be opened in the process that uses it: this runs after
 * the fork. */
static int serve(struct run *run, int ready_fd)
{
	struct fs fs = { .acl = !run->o.no_default_permissions,
		         .local = !cairn_storage_is_url(run->repo),
		         .xattrs_always = run->o.xattrs && strcmp(run->o.xattrs, "always") == 0 };
	cairn_repo *repo = NULL;
	cairn_lock *lock = NULL;
	int r = open_repo(run, &repo);
	/* Informational (FORMAT.md §11): 'cairn unlock --list' shows the mount; it
	 * conflicts with nothing. A repository on read-only media has no lock. */
	if (r >= 0 &&
	    cairn_lock_acquire(&lock, cairn_repo_storage(repo), CAIRN_LOCK_MOUNT, "mount", 0) < 0)
		log_info("mounting without a mount lock: %s", cairn_err_msg());
	if (r >= 0 && (r = fs_open(&fs, repo, run->cache_size)) < 0)
		log_error("cannot read the snapshots: %s", cairn_err_msg());
	struct fuse_session *se =
	        r < 0 ? NULL : fuse_session_new(run->args, &fs_ops, sizeof(fs_ops), &fs);
	if (se && fuse_session_mount(se, run->fo.mountpoint) != 0) {
		fuse_session_destroy(se);
		se = NULL;
	}
	if (se && fuse_set_signal_handlers(se) != 0) {
		fuse_session_unmount(se);
		fuse_session_destroy(se);
		se = NULL;
	}
	if (!se && ready_fd >= 0) {
		char fail = 1;
		if (write(ready_fd, &fail, 1) < 0)
			log_debug("the parent process is gone");
		close(ready_fd);
	}
	if (se) {
		struct fs_readahead ra = { 0 };
		log_info("mounted '%s' at '%s'", run->repo, run->fo.mountpoint);
		if (ready_fd >= 0)
			detach_stderr();
		/* The parent hears of the mount once it answers (mount.h). */
		fs_readahead_start(&ra, run->fo.mountpoint, ready_fd);
		r = loop(se, &run->fo);
		fuse_remove_signal_handlers(se);
		fuse_session_unmount(se);
		fs_readahead_join(&ra);
		fuse_session_destroy(se);
	}
	fs_close(&fs);
	cairn_lock_release(lock);
	cairn_repo_close(repo);
	return se && r >= 0 ? 0 : 1;
}

/* Close every descriptor above 2 but keep[0..n), which must be sorted. */
static void close_all_but(const int *keep, size_t n)
{
	unsigned from = 3;
	for (size_t i = 0; i < n; i++) {
		if (keep[i] < (int)from)
			continue;
		if ((unsigned)keep[i] > from)
			close_range(from, (unsigned)keep[i] - 1, 0);
		from = (unsigned)keep[i] + 1;
	}
	close_range(from, ~0U, 0);
}

/* The daemon keeps no descriptor of its caller's above 2 (a jobserver or
 * status pipe whose reader waits for its end, a lock held through an fd): only
 * the ready pipe, and a /dev/fuse descriptor given as the mount point. */
static void close_inherited(const char *mountpoint, int ready_fd)
{
	unsigned fuse_fd;
	char c;
	int keep[2] = { ready_fd, -1 };
	if (sscanf(mountpoint, "/dev/fd/%u%c", &fuse_fd, &c) == 1 && fuse_fd <= INT_MAX)
		keep[1] = (int)fuse_fd;
	if (keep[1] >= 0 && keep[1] < keep[0]) {
		keep[1] = keep[0];
		keep[0] = (int)fuse_fd;
	}
	close_all_but(keep, keep[1] >= 0 ? 2 : 1);
}

/* Background mode: the parent exits with the child's mount status, so that
 * mount(8) and fstab see failures. */
static int daemonize(struct run *run)
{
	int p[2];
	if (pipe(p) < 0)
		return log_error_errno(-errno, "cannot create a pipe"), 1;
	pid_t pid = fork();
	if (pid < 0)
		return log_error_errno(-errno, "cannot fork"), 1;
	if (pid > 0) {
		char ok = 1;
		close(p[1]);
		cli_password_free(run->pw, run->pwlen);
		run->pw = NULL;
		if (read(p[0], &ok, 1) != 1)
			ok = 1;
		return ok ? 1 : 0;
	}
	close(p[0]);
	close_inherited(run->fo.mountpoint, p[1]);
	setsid();
	to_null(STDIN_FILENO);
	to_null(STDOUT_FILENO);
	/* stderr stays until the mount is up (detach_stderr): errors before it are
	 * the caller's to see. */
	return serve(run, p[1]);
}

/* The root of every cairnfs mount is a directory: on a file the kernel would
 * mount it, and then fail every access with EIO. "/dev/fd/N" is a /dev/fuse
 * descriptor from a privileged helper (libfuse's fuse_mnt_parse_fuse_fd). */
static int check_mountpoint(const char *mnt)
{
	unsigned fd;
	char c;
	struct stat st;
	if (sscanf(mnt, "/dev/fd/%u%c", &fd, &c) == 1)
		return -1;
	if (stat(mnt, &st) < 0)
		return cli_usage_error("bad mount point '%s': %s", mnt, strerror(errno));
	if (!S_ISDIR(st.st_mode))
		return cli_usage_error("mount point '%s' is not a directory", mnt);
	/* FUSE mounts over files too: they would be hidden while it is up. */
	DIR *d = opendir(mnt);
	struct dirent *de = NULL;
	while (d && (de = readdir(d)) && (!strcmp(de->d_name, ".") || !strcmp(de->d_name, "..")))
		;
	if (d)
		closedir(d);
	if (de)
		return cli_usage_error("mount point '%s' is not empty: mount on an empty directory",
		                       mnt);
	return -1;
}

/* libfuse names unknown options only when the session is created, after the
 * password and the repository: a session made from a copy of the arguments and
 * dropped at once names them first, without anything mounted. */
static int check_fuse_opts(const struct fuse_args *args)
{
	static const struct fuse_lowlevel_ops none;
	struct fuse_args copy = FUSE_ARGS_INIT(0, NULL);
	for (int i = 0; i < args->argc; i++) {
		if (fuse_opt_add_arg(&copy, args->argv[i]) < 0) {
			fuse_opt_free_args(&copy);
			return log_error("out of memory"), EXIT_ERROR;
		}
	}
	struct fuse_session *se = fuse_session_new(&copy, &none, sizeof(none), NULL);
	fuse_opt_free_args(&copy);
	if (!se)
		return EXIT_USAGE;
	fuse_session_destroy(se);
	return -1;
}

/* args: argv with "--password-file F" joined into "--password-file=F" (and
 * --password-command likewise). libfuse's template "--opt %s" also matches
 * "--opt=VALUE", as a prefix, and gives "=VALUE": with only "--opt=%s" in
 * opt_spec both forms work. Returns 0, or -1 out of memory. */
static int join_args(int argc, char **argv, struct fuse_args *args)
{
	static const char *const joined[] = { "--password-file", "--password-command" };
	bool options = true;
	for (int i = 0; i < argc; i++) {
		_cleanup_free_ char *both = NULL;
		const char *a = argv[i];
		options = options && strcmp(a, "--") != 0;
		for (size_t k = 0; options && k < ARRAY_SIZE(joined) && i + 1 < argc; k++)
			if (strcmp(a, joined[k]) == 0) {
				if (asprintf(&both, "%s=%s", a, argv[++i]) < 0)
					return -1;
				a = both;
				break;
			}
		if (fuse_opt_add_arg(args, a) < 0)
			return -1;
	}
	return 0;
}

static int parse(struct run *run, struct fuse_args *args)
{
	if (fuse_opt_parse(args, &run->o, opt_spec, opt_proc) != 0)
		return EXIT_USAGE;
	if (run->o.help) {
		print_help();
		return 0;
	}
	if (run->o.version) {
		printf("cairnfs %s (repository format %d, libfuse %s)\n", CAIRN_VERSION,
		       CAIRN_FORMAT_VERSION, fuse_pkgversion());
		return 0;
	}
	if (run->o.quiet)
		cairn_log_set_level(CAIRN_LOG_ERR);
	cairn_log_set_level(cairn_log_get_level() + run->o.verbose);
	run->cache_size = CACHE_SIZE_DEFAULT;
	if (run->o.cache_size && cli_parse_size(run->o.cache_size, &run->cache_size) < 0)
		return cli_usage_error("cache_size: %s", cairn_err_msg());
	if (run->o.disk_cache && cli_parse_size(run->o.disk_cache, &run->disk_cache) < 0)
		return cli_usage_error("disk_cache: %s", cairn_err_msg());
	if (run->o.xattrs && strcmp(run->o.xattrs, "auto") != 0 &&
	    strcmp(run->o.xattrs, "always") != 0)
		return cli_usage_error("xattrs: '%s' is neither 'auto' nor 'always'",
		                       run->o.xattrs);
	if (!run->o.repo)
		return cli_usage_error("give a repository and a mount point (see --help)");
	if (cairn_storage_is_url(run->o.repo)) {
		if (strlen(run->o.repo) >= sizeof(run->repo))
			return cli_usage_error("repository URL too long");
		snprintf(run->repo, sizeof(run->repo), "%s", run->o.repo);
	} else if (!realpath(run->o.repo, run->repo))
		return log_error("cannot open repository '%s': %s", run->o.repo, strerror(errno)),
		       EXIT_ERROR;
	if (add_mount_opts(args, &run->o, run->repo) < 0 || fuse_parse_cmdline(args, &run->fo) != 0)
		return EXIT_USAGE;
	if (!run->fo.mountpoint)
		return cli_usage_error("give a mount point (see --help)");
	int rc = check_mountpoint(run->fo.mountpoint);
	if (rc < 0)
		rc = check_fuse_opts(args);
	if (rc >= 0)
		return rc;
	if (run->fo.debug) /* libfuse's request trace is logged at debug level */
		cairn_log_set_level(CAIRN_LOG_DEBUG);
	return -1;
}

/* The cache directory as every cairn command would take it in the caller's
 * directory: a relative --cache-dir, -o cache_dir or CAIRN_CACHE_DIR made
 * absolute before the daemon changes to '/'. ($XDG_CACHE_HOME counts only
 * when absolute.) 0, or -ENOMEM / -ENAMETOOLONG and the error of getcwd. */
static int absolute_cache_dir(struct opts *o)
{
	const char *dir = o->cache_dir && *o->cache_dir ? o->cache_dir : getenv("CAIRN_CACHE_DIR");
	char cwd[PATH_MAX];
	if (!dir || !*dir || *dir == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		return cairn_err_set(-errno, "cannot resolve the cache directory '%s': %s", dir,
		                     strerror(errno));
	char *abs = NULL;
	if (asprintf(&abs, "%s/%s", strcmp(cwd, "/") == 0 ? "" : cwd, dir) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (strlen(abs) >= PATH_MAX) {
		free(abs);
		return cairn_err_set(-ENAMETOOLONG, "cache path too long");
	}
	free(o->cache_dir);
	o->cache_dir = abs;
	return 0;
}

static int run_main(struct run *run)
{
	/* Not an s3:// one: a mount of its cache must work with the server down. */
	int r = cairn_storage_is_url(run->repo) ? 0 : cairn_repo_probe(run->repo, NULL);
	cli.password_file = run->o.password_file;
	cli.password_command = run->o.password_command;
	if (r >= 0)
		r = absolute_cache_dir(&run->o);
	if (r >= 0)
		r = cli_password(&run->pw, &run->pwlen, NULL, false);
	if (r < 0)
		return cli_fail(r);
	/* The daemon must not keep the caller's directory busy. */
	if (chdir("/") < 0)
		log_debug("cannot change to '/'");
	return run->fo.foreground ? serve(run, -1) : daemonize(run);
}

int main(int argc, char **argv)
{
	struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
	struct run run = { .args = &args };

	cairn_guard_std_fds(); /* before /dev/fuse or a repository file is opened */
	/* Blobs are 1 MiB buffers freed in any thread: with glibc's sliding mmap
	 * threshold they would land in per-thread arenas and stay there after the
	 * cache evicts them. A fixed threshold returns them to the kernel, so the
	 * daemon's RSS follows its caches. */
	mallopt(M_MMAP_THRESHOLD, 256 << 10);
	mallopt(M_ARENA_MAX, 4);
	cairn_log_set_prog("cairnfs"); /* its messages say which program failed */
	setlocale(LC_ALL, "");
	tzset(); /* snapshot names are local times */
	cairn_log_level_from_env();
	fuse_set_log_func(fuse_log_cb);
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) /* s3:// repositories */
		return log_error("cannot initialise libcurl"), EXIT_ERROR;
	int rc = join_args(argc, argv, &args) < 0 ? (log_error("out of memory"), EXIT_ERROR)
	                                          : parse(&run, &args);
	if (rc < 0)
		rc = run_main(&run);
	cli_password_free(run.pw, run.pwlen);
	free(run.fo.mountpoint);
	opts_release(&run.o);
	fuse_opt_free_args(&args);
	curl_global_cleanup();
	return rc;
}
