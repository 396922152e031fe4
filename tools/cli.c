/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Options, passwords and repository opening shared by every subcommand. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"

#define PASSWORD_MAX 4096

struct cli_globals cli;

int cli_usage_error(const char *fmt, ...)
{
	va_list ap;
	/* Through the logger, so that --log-format json covers bad usage too. */
	va_start(ap, fmt);
	cairn_log_fv(CAIRN_LOG_ERR, CAIRN_FIELDS(LOG_STR("code", "usage"), LOG_INT("exit_code", 2)),
	             fmt, ap);
	va_end(ap);
	return EXIT_USAGE;
}

int cli_check_snapshot_path(const char *cmd, const char *path)
{
	char cwd[PATH_MAX];
	if (path[0] == '/')
		return 0;
	if (!getcwd(cwd, sizeof(cwd)))
		snprintf(cwd, sizeof(cwd), "$PWD");
	return cli_usage_error("%s: PATH must be absolute (a path inside the snapshot, e.g. "
	                       "%s%s%s)",
	                       cmd, strcmp(cwd, "/") == 0 ? "" : cwd, "/", *path ? path : "b");
}

int cli_fail(int r)
{
	cairn_log_f(CAIRN_LOG_ERR, CAIRN_FIELDS(LOG_STR("code", cairn_errno_name(r))), "%s",
	            cairn_err_msg());
	/* A missing repository argument is bad usage, not a failure of the repository. */
	return r == -EDESTADDRREQ ? EXIT_USAGE : EXIT_ERROR;
}

/* Whether an output file may go to path: nothing there, or what a rename
 * replaces without harm (a file, or a symlink or fifo planted in a directory
 * others may write, replaced and never followed, see cli_metrics_read). A
 * device, directory or socket is refused. */
static int output_target(const char *path)
{
	struct stat st;
	if (lstat(path, &st) < 0)
		return errno == ENOENT ? 0
		                       : cairn_err_set(-errno, "cannot write '%s': %s", path,
		                                       strerror(errno));
	if (!S_ISREG(st.st_mode) && !S_ISLNK(st.st_mode) && !S_ISFIFO(st.st_mode))
		return cairn_err_set(-EINVAL, "'%s' is not a regular file: give a file to write",
		                     path);
	return 1;
}

int cli_check_output_file(const char *path)
{
	char dir[PATH_MAX];
	struct stat st;
	if (!*path)
		return cairn_err_set(-EINVAL, "give a file name to write, not ''");
	int r = output_target(path);
	if (r != 0)
		return r < 0 ? r : 0;
	snprintf(dir, sizeof(dir), "%s", path);
	char *slash = strrchr(dir, '/');
	if (!slash)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return cairn_err_set(-ENOENT, "cannot write '%s': no directory '%s'", path, dir);
	return 0;
}

int cli_write_output_file(const char *path, const void *data, size_t len, unsigned mode)
{
	int r = output_target(path);
	return r < 0 ? r : cairn_file_write_atomic_mode(path, NULL, data, len, mode);
}

#if !defined(__SANITIZE_ADDRESS__)
static void on_crash(int sig)
{
	static const char msg[] =
	        "cairn: crashed. If a disk or file system fault damaged the repository's "
	        "index (a cache), 'cairn rebuild-index' makes it anew; else please report "
	        "this.\n";
	ssize_t n = write(STDERR_FILENO, msg, sizeof(msg) - 1);
	(void)n;
	signal(sig, SIG_DFL);
	raise(sig);
}
#endif

void cli_crash_hint(void)
{
#if !defined(__SANITIZE_ADDRESS__)
	struct sigaction sa = { .sa_handler = on_crash, .sa_flags = SA_RESETHAND };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGSEGV, &sa, NULL);
	sigaction(SIGBUS, &sa, NULL);
#endif
	/* A reader of the output that went away (| head, a cairn run that was
	 * killed) must not kill a command half-way, a backup after its snapshot
	 * before its metrics: writes fail with EPIPE instead (cli_finish_stdout). */
	signal(SIGPIPE, SIG_IGN);
}

int cli_spawnattr_init(posix_spawnattr_t *attr)
{
	sigset_t dfl;
	sigemptyset(&dfl);
	sigaddset(&dfl, SIGPIPE);
	int e = posix_spawnattr_init(attr);
	if (e == 0 && (e = posix_spawnattr_setsigdefault(attr, &dfl)) == 0)
		e = posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGDEF);
	return e;
}

/* Whether stdout is a pipe nobody reads any more (poll says POLLERR then). */
static bool reader_gone(void)
{
	struct pollfd p = { .fd = STDOUT_FILENO, .events = POLLOUT };
	return poll(&p, 1, 0) == 1 && (p.revents & POLLERR);
}

int cli_finish_stdout(int rc)
{
	/* A reader that went away (EPIPE) ends the output as it wished: what the
	 * command did stands, and its status with it. */
	errno = 0;
	if ((fflush(stdout) == 0 && !ferror(stdout)) || errno == EPIPE || reader_gone())
		return rc;
	/* A flush by the command that failed already leaves no errno. */
	int e = errno ? errno : EIO;
	cairn_err_set(-e, "cannot write the output%s%s", errno ? ": " : "",
	              errno ? strerror(e) : "");
	return rc == 0 ? cli_fail(-e) : rc;
}

static int s3_opt(int c, const char *arg, struct cairn_s3_opts *o)
{
	long v;
	int r = 0;
	switch (c) {
	case OPT_S3_ENDPOINT:
		if (!*arg)
			return cairn_err_set(-EINVAL, "--s3-endpoint: give a URL");
		o->endpoint = arg;
		break;
	case OPT_S3_REGION:
		o->region = arg;
		break;
	case OPT_S3_PROFILE:
		o->profile = arg;
		break;
	case OPT_S3_ADDRESSING:
		if (strcmp(arg, "auto") == 0)
			o->addressing = CAIRN_S3_ADDR_AUTO;
		else if (strcmp(arg, "path") == 0)
			o->addressing = CAIRN_S3_ADDR_PATH;
		else if (strcmp(arg, "virtual") == 0)
			o->addressing = CAIRN_S3_ADDR_VIRTUAL;
		else
			r = cairn_err_set(-EINVAL, "--s3-addressing must be auto, path or virtual");
		break;
	case OPT_S3_CONNECTIONS:
		if ((r = cli_parse_int(arg, 1, CAIRN_S3_CONNECTIONS_MAX, &v)) >= 0)
			o->connections = (unsigned)v;
		else
			r = cairn_err_wrap(r, "--s3-connections");
		break;
	case OPT_S3_LOCK_DAYS:
		if ((r = cli_parse_int(arg, 1, 36500, &v)) >= 0)
			o->lock_days = (unsigned)v;
		else
			r = cairn_err_wrap(r, "--s3-lock-days");
		break;
	default: /* OPT_S3_LOCK_MODE */
		if (strcmp(arg, "compliance") == 0)
			o->lock_mode = CAIRN_S3_LOCK_COMPLIANCE;
		else if (strcmp(arg, "governance") == 0)
			o->lock_mode = CAIRN_S3_LOCK_GOVERNANCE;
		else
			r = cairn_err_set(-EINVAL,
			                  "--s3-lock-mode must be compliance or governance");
	}
	return r;
}

/* 0 handled, 1 --help, 2 not a common option, < 0 a bad value (message set). */
static int common_opt(int c, const char *arg)
{
	switch (c) {
	case 'r':
		cli.repo = arg;
		return 0;
	case OPT_PASSWORD_FILE:
		cli.password_file = arg;
		return 0;
	case OPT_PASSWORD_COMMAND:
		cli.password_command = arg;
		return 0;
	case OPT_CACHE_DIR:
		if (!*arg)
			return cairn_err_set(-EINVAL, "--cache-dir: give a directory");
		cli.storage.cache_dir = arg;
		return 0;
	case OPT_S3_ENDPOINT:
	case OPT_S3_REGION:
	case OPT_S3_PROFILE:
	case OPT_S3_ADDRESSING:
	case OPT_S3_CONNECTIONS:
	case OPT_S3_LOCK_DAYS:
	case OPT_S3_LOCK_MODE:
		return s3_opt(c, arg, &cli.storage.s3);
	case 'v':
		cairn_log_set_level(cairn_log_get_level() + 1);
		return 0;
	case 'q':
		cairn_log_set_level(CAIRN_LOG_ERR);
		return 0;
	case OPT_LOG_FORMAT:
		if (strcmp(arg, "json") == 0)
			cairn_log_set_json(true);
		else if (strcmp(arg, "text") == 0)
			cairn_log_set_json(false);
		else
			return cairn_err_set(-EINVAL,
			                     "unknown log format '%s' (use 'text' or 'json')", arg);
		return 0;
	case 'h':
		return 1;
	default:
		return 2;
	}
}

int cli_parse(int argc, char **argv, const char *shortopts, const struct option *longopts,
              const char *usage, int (*handle)(int c, const char *arg, void *payload),
              void *payload)
{
	char opts[128];
	int c;

	/* getopt wants '+' (stop at the first operand) before ':' (quiet errors). */
	bool plus = shortopts && shortopts[0] == '+';
	snprintf(opts, sizeof(opts), "%s:%s%s", plus ? "+" : "", shortopts ? shortopts + plus : "",
	         CLI_COMMON_SHORTOPTS);
	/* "ls: " before a command's messages; the logger adds "cairn: " itself. */
	const char *name = argv[0], *sep = *name ? ": " : "";
	optind = 0; /* 0: GNU getopt re-initialises (permutation mode may change) */
	opterr = 0;
	while ((c = getopt_long(argc, argv, opts, longopts, NULL)) != -1) {
		int r;
		if (c == '?') {
			cli_usage_error("%s%sunknown option '%s' (see '--help')", name, sep,
			                argv[optind - 1]);
			return -2;
		}
		if (c == ':') {
			cli_usage_error("%s%soption '%s' needs a value", name, sep,
			                argv[optind - 1]);
			return -2;
		}
		r = common_opt(c, optarg);
		if (r == 1) {
			fputs(usage, stdout);
			return -1;
		}
		if (r == 0)
			continue;
		if (r == 2)
			r = handle ? handle(c, optarg, payload) : -EINVAL;
		if (r < 0) {
			cli_usage_error("%s%s%s", name, sep, cairn_err_msg());
			return -2;
		}
	}
	/* One would be ignored without a word (the job file refuses both too). */
	if (cli.password_file && cli.password_command) {
		cli_usage_error("give --password-file or --password-command, not both");
		return -2;
	}
	return optind;
}

/* ---- passwords ---------------------------------------------------------- */

void cli_password_free(char *pw, size_t len)
{
	if (pw)
		OPENSSL_cleanse(pw, len);
	free(pw);
}

static int take_line(const char *data, size_t n, const char *from, char **out, size_t *len)
{
	size_t l = 0;
	while (l < n && data[l] != '\n')
		l++;
	if (l > 0 && data[l - 1] == '\r')
		l--;
	if (l == 0)
		return cairn_err_set(-EINVAL, "empty password from %s", from);
	char *pw = malloc(l + 1);
	if (!pw)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(pw, data, l);
	pw[l] = '\0';
	*out = pw;
	*len = l;
	return 0;
}

int cli_password_from_file(const char *path, char **out, size_t *len)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	int r = cairn_file_slurp(path, PASSWORD_MAX, &b);
	if (r < 0)
		return cairn_err_set(r, "cannot read password file '%s': %s", path,
		                     r == -EFBIG ? "too large" : strerror(-r));
	r = take_line((const char *)b.data, b.len, path, out, len);
	OPENSSL_cleanse(b.data, b.len);
	return r;
}

/* Seconds a password command may take (CAIRN_PASSWORD_COMMAND_TIMEOUT, 0 for
 * no limit): a secret helper that hangs (a vault that does not answer) must
 * not hang a backup unit forever, with no failure and no notification. */
#define PASSWORD_COMMAND_TIMEOUT 60

static long command_timeout(void)
{
	const char *e = getenv("CAIRN_PASSWORD_COMMAND_TIMEOUT");
	char *end;
	long v = e && *e ? strtol(e, &end, 10) : -1;
	return v >= 0 && v <= 86400 && *end == '\0' ? v : PASSWORD_COMMAND_TIMEOUT;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Milliseconds left until deadline (0 = none: -1, wait for ever). */
static int ms_left(double deadline)
{
	if (deadline == 0)
		return -1;
	double left = deadline - mono_now();
	return left <= 0 ? 0 : (int)(left * 1000) + 1;
}

/* The command's output until end of file or a full buffer. -ETIMEDOUT. */
static int read_output(int fd, char *buf, size_t size, size_t *n, double deadline)
{
	while (*n < size) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		int k = poll(&p, 1, ms_left(deadline));
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			return -ETIMEDOUT;
		ssize_t got = k < 0 ? -1 : read(fd, buf + *n, size - *n);
		if (got < 0 && errno == EINTR)
			continue;
		if (got <= 0)
			return 0;
		*n += (size_t)got;
	}
	return 0;
}

/* The command's exit status, once it has exited. -ETIMEDOUT. */
static int wait_exit(pid_t pid, int *status, double deadline)
{
	for (;;) {
		pid_t w = waitpid(pid, status, WNOHANG);
		if (w == pid)
			return 0;
		if (w < 0 && errno != EINTR)
			return cairn_err_set(-errno, "password command: %s", strerror(errno));
		if (ms_left(deadline) == 0)
			return -ETIMEDOUT;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000 * 1000 }, NULL);
	}
}

/* sh -c cmd with its stdout a pipe (stdin and stderr as ours: a command may ask
 * on the terminal), SIGPIPE at its default. */
static int spawn_command(const char *cmd, pid_t *pid, int *fd)
{
	extern char **environ;
	int fds[2];
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cairn_err_set(-errno, "cannot run password command: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[1], STDOUT_FILENO);
	char *argv[] = { (char *)"sh", (char *)"-c", (char *)cmd, NULL };
	int e = cli_spawnattr_init(&attr);
	if (e == 0) {
		e = posix_spawn(pid, "/bin/sh", &fa, &attr, argv, environ);
		posix_spawnattr_destroy(&attr);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(fds[1]);
	if (e) {
		close(fds[0]);
		return cairn_err_set(-e, "cannot run password command: %s", strerror(e));
	}
	*fd = fds[0];
	return 0;
}

static int command_failed(int status)
{
	if (WIFSIGNALED(status))
		return cairn_err_set(-EINVAL, "password command killed by SIG%s",
		                     sigabbrev_np(WTERMSIG(status)) ? sigabbrev_np(WTERMSIG(status))
		                                                    : "?");
	return cairn_err_set(-EINVAL, "password command failed (exit status %d)",
	                     WEXITSTATUS(status));
}

/* Past a full buffer: read and drop the rest of the output, up to a bound,
 * so that a command that writes more after its password line (a password
 * manager's notes) ends normally rather than by SIGPIPE. */
#define DRAIN_MAX (1 << 20)
static int drain_output(int fd, double deadline)
{
	char junk[4096];
	int r = 0;
	for (size_t total = 0; r == 0 && total < DRAIN_MAX;) {
		size_t n = 0;
		r = read_output(fd, junk, sizeof(junk), &n, deadline);
		if (n < sizeof(junk))
			break; /* end of file */
		total += n;
	}
	OPENSSL_cleanse(junk, sizeof(junk));
	return r;
}

/* Killed by SIGPIPE (or a shell's 128 + SIGPIPE for its child) once the whole
 * first line was read: the command wrote past what cairn reads. */
static bool sigpipe_after_line(int status, const char *buf, size_t n)
{
	bool pipe = (WIFSIGNALED(status) && WTERMSIG(status) == SIGPIPE) ||
	            (WIFEXITED(status) && WEXITSTATUS(status) == 128 + SIGPIPE);
	return pipe && memchr(buf, '\n', n) != NULL;
}

static int password_from_command(const char *cmd, char **out, size_t *len)
{
	char buf[PASSWORD_MAX];
	size_t n = 0;
	int fd = -1, status = 0;
	pid_t pid = 0;
	long limit = command_timeout();
	int r = spawn_command(cmd, &pid, &fd);
	if (r < 0)
		return r;
	double deadline = limit ? mono_now() + (double)limit : 0;
	r = read_output(fd, buf, sizeof(buf), &n, deadline);
	if (r == 0 && n == sizeof(buf))
		r = drain_output(fd, deadline);
	close(fd); /* a command that writes on past the bound gets SIGPIPE */
	if (r == 0)
		r = wait_exit(pid, &status, deadline);
	if (r == -ETIMEDOUT) {
		kill(pid, SIGKILL);
		while (waitpid(pid, NULL, 0) < 0 && errno == EINTR)
			;
		r = cairn_err_set(-ETIMEDOUT,
		                  "password command gave no password within %ld s: killed (set "
		                  "CAIRN_PASSWORD_COMMAND_TIMEOUT for a longer limit)",
		                  limit);
	} else if (r == 0 && status != 0 && !sigpipe_after_line(status, buf, n)) {
		r = command_failed(status);
	}
	if (r == 0)
		r = take_line(buf, n, "password command", out, len);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}

static int prompt_tty(const char *prompt, char *buf, size_t size)
{
	_cleanup_close_ int fd = open("/dev/tty", O_RDWR | O_CLOEXEC | O_NOCTTY);
	struct termios old, quiet;
	size_t n = 0;

	if (fd < 0 || !isatty(fd))
		return cairn_err_set(-ENOTTY,
		                     "no password given: set CAIRN_PASSWORD_FILE, CAIRN_PASSWORD "
		                     "or use --password-file/--password-command");
	if (tcgetattr(fd, &old) < 0)
		return cairn_err_set(-errno, "cannot read terminal settings: %s", strerror(errno));
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)(ECHO | ECHONL);
	quiet.c_lflag |= ICANON;
	if (write(fd, prompt, strlen(prompt)) < 0 || tcsetattr(fd, TCSAFLUSH, &quiet) < 0)
		return cairn_err_set(-EIO, "cannot prompt for a password");
	while (n + 1 < size) {
		char c;
		ssize_t got = read(fd, &c, 1);
		if (got <= 0 || c == '\n')
			break;
		buf[n++] = c;
	}
	buf[n] = '\0';
	tcsetattr(fd, TCSAFLUSH, &old);
	if (write(fd, "\n", 1) < 0)
		return cairn_err_set(-EIO, "cannot write to the terminal");
	return (int)n;
}

static int password_from_tty(char **out, size_t *len, const char *prompt, bool confirm)
{
	char a[PASSWORD_MAX], b[PASSWORD_MAX];
	int r = prompt_tty(prompt, a, sizeof(a));
	if (r >= 0 && confirm) {
		r = prompt_tty("Repeat password: ", b, sizeof(b));
		if (r >= 0 && strcmp(a, b) != 0)
			r = cairn_err_set(-EINVAL, "passwords do not match");
	}
	if (r >= 0)
		r = take_line(a, strlen(a), "terminal", out, len);
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return r;
}

/* The variable env followed by suffix ("CAIRN_PASSWORD" "_FILE"), if set and not empty. */
static const char *env_var(const char *env, const char *suffix, char name[64])
{
	snprintf(name, 64, "%s%s", env, suffix);
	const char *e = getenv(name);
	return e && *e ? e : NULL;
}

static int password_get(char **out, size_t *len, const struct cli_password_src *src, bool confirm)
{
	char name[64];
	const char *e;

	if (src->file)
		return cli_password_from_file(src->file, out, len);
	if (src->command)
		return password_from_command(src->command, out, len);
	if ((e = env_var(src->env, "_FILE", name)))
		return cli_password_from_file(e, out, len);
	if ((e = env_var(src->env, "_COMMAND", name)))
		return password_from_command(e, out, len);
	if ((e = env_var(src->env, "", name)))
		return take_line(e, strlen(e), name, out, len);
	return password_from_tty(out, len, src->prompt ? src->prompt : "Password: ", confirm);
}

int cli_password(char **out, size_t *len, const char *prompt, bool confirm)
{
	struct cli_password_src src = { cli.password_file, cli.password_command, "CAIRN_PASSWORD",
		                        prompt };
	return password_get(out, len, &src, confirm);
}

int cli_new_password(char **out, size_t *len, const char *new_file)
{
	if (new_file)
		return cli_password_from_file(new_file, out, len);
	int r = password_from_tty(out, len, "New password: ", true);
	/* The repository's own password is not what is missing here. */
	if (r == -ENOTTY)
		return cairn_err_set(r, "no new password given: use --new-password-file FILE, or "
		                        "run this on a terminal to be asked");
	return r;
}

const char *cli_password_file(void)
{
	const char *e = getenv("CAIRN_PASSWORD_FILE");
	if (cli.password_file)
		return cli.password_file;
	return !cli.password_command && e && *e ? e : NULL;
}

int cli_check_new_password(const char *pw, size_t len, bool insecure)
{
	size_t chars = 0;
	for (size_t i = 0; i < len; i++)
		chars += ((uint8_t)pw[i] & 0xc0) != 0x80; /* UTF-8 continuation bytes */
	if (chars < CLI_PASSWORD_MIN && !insecure)
		return cairn_err_set(-EINVAL,
		                     "the new password has %zu %s, fewer than %d: choose a longer "
		                     "one (or give --insecure-password)",
		                     chars, chars == 1 ? "character" : "characters",
		                     CLI_PASSWORD_MIN);
	return 0;
}

/* ---- repository --------------------------------------------------------- */

int cli_repo_path(const char **out)
{
	const char *e = cli.repo;
	if (!e || !*e)
		e = getenv("CAIRN_REPO");
	if (!e || !*e)
		return cairn_err_set(-EDESTADDRREQ,
		                     "no repository given: use -r/--repo or CAIRN_REPO");
	*out = e;
	return 0;
}

void cli_repo_warn(const char *msg, void *payload)
{
	(void)payload;
	log_warn("%s", msg);
}

void cli_sync_table(char out[CLI_SYNC_TABLE_MAX], const cairn_storage *other)
{
	const char *id = cairn_storage_id(other);
	uint8_t md[32];
	char hex[65];
	if (strlen(id) < 100 || cairn_sha256(id, strlen(id), md) < 0) {
		snprintf(out, CLI_SYNC_TABLE_MAX, "sync:%.100s", id);
		return;
	}
	cairn_hex(hex, md, sizeof(md)); /* LMDB names are short */
	snprintf(out, CLI_SYNC_TABLE_MAX, "sync:%.40s", hex);
}

const struct cairn_storage_opts *cli_storage_opts(void)
{
	cli.storage.version = CAIRN_STORAGE_OPTS_VERSION;
	cli.storage.s3.version = CAIRN_S3_OPTS_VERSION;
	return &cli.storage;
}

int cli_open_repo_at(cairn_repo **out, const char *path, const struct cli_password_src *src,
                     const struct cairn_repo_opts *opts)
{
	struct cairn_repo_opts o = { .version = CAIRN_REPO_OPTS_VERSION };
	struct cli_password_src own = { cli.password_file, cli.password_command, "CAIRN_PASSWORD",
		                        NULL };
	char *pw = NULL;
	size_t len = 0;
	int r;

	if (opts)
		o = *opts;
	if (!o.storage)
		o.storage = cli_storage_opts();
	if (!o.warn)
		o.warn = cli_repo_warn;
	/* A local config is checked before the password is asked for; a remote
	 * one is read once, by the open (a mount of its cache works offline). */
	if ((!cairn_storage_is_url(path) && (r = cairn_repo_probe(path, o.storage)) < 0) ||
	    (r = password_get(&pw, &len, src ? src : &own, false)) < 0)
		return r;
	r = cairn_repo_open(out, path, pw, len, &o);
	cli_password_free(pw, len);
	return r;
}

int cli_open_repo(cairn_repo **out, const struct cairn_repo_opts *opts)
{
	const char *path;
	int r = cli_repo_path(&path);
	return r < 0 ? r : cli_open_repo_at(out, path, NULL, opts);
}

/* ---- parsing and formatting --------------------------------------------- */

int cli_parse_int(const char *s, long min, long max, long *out)
{
	char *end;
	errno = 0;
	long v = strtol(s, &end, 10);
	if (errno || end == s || *end || v < min || v > max)
		return cairn_err_set(-EINVAL, "'%s' is not a number from %ld to %ld", s, min, max);
	*out = v;
	return 0;
}

int cli_parse_size(const char *s, uint64_t *out)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	unsigned shift = 0;

	if (errno || end == s || *s == '-')
		return cairn_err_set(-EINVAL, "'%s' is not a size", s);
	switch (*end) {
	case '\0':
		break;
	case 'k':
	case 'K':
		shift = 10;
		break;
	case 'm':
	case 'M':
		shift = 20;
		break;
	case 'g':
	case 'G':
		shift = 30;
		break;
	case 't':
	case 'T':
		shift = 40;
		break;
	default:
		return cairn_err_set(-EINVAL, "'%s' is not a size (use K, M, G or T)", s);
	}
	if (*end && end[1] && strcmp(end + 1, "iB") != 0 && strcmp(end + 1, "B") != 0)
		return cairn_err_set(-EINVAL, "'%s' is not a size", s);
	if (shift && v > (UINT64_MAX >> shift))
		return cairn_err_set(-EINVAL, "'%s' is too large", s);
	*out = (uint64_t)v << shift;
	return 0;
}

int cli_check_label(const char *what, const char *s, size_t max)
{
	size_t n = strlen(s);
	if (n == 0 || n > max)
		return cairn_err_set(-EINVAL, "%s must be 1 to %zu bytes", what, max);
	if (cairn_text_str(NULL, s, n) != n)
		return cairn_err_set(-EINVAL, "%s '%s' holds a control character", what, s);
	return 0;
}

bool cli_tags_has(const struct cli_tags *t, const char *tag)
{
	for (size_t i = 0; i < t->n; i++)
		if (strcmp(t->v[i], tag) == 0)
			return true;
	return false;
}

/* Append tag (taken over) unless t has it. */
static int tags_push(struct cli_tags *t, char *tag)
{
	_cleanup_free_ char *own = tag;
	int r = cli_check_label("a tag", tag, 1024);
	if (r < 0 || cli_tags_has(t, tag))
		return r;
	if (t->n >= CAIRN_SNAPSHOT_MAX_TAGS)
		return cairn_err_set(-EINVAL, "more than %u tags", CAIRN_SNAPSHOT_MAX_TAGS);
	char **v = realloc(t->v, (t->n + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	v[t->n++] = TAKE_PTR(own);
	t->v = v;
	return 0;
}

int cli_tags_add(struct cli_tags *t, const char *arg)
{
	for (const char *p = *arg ? arg : NULL; p;) {
		size_t k;
		const char *s = cli_tag_item(p, &k, &p);
		char *tag = strndup(s, k);
		int r = tag ? tags_push(t, tag) : cairn_err_set(-ENOMEM, "out of memory");
		if (r < 0)
			return r;
	}
	return 0;
}

void cli_tags_release(struct cli_tags *t)
{
	for (size_t i = 0; i < t->n; i++)
		free(t->v[i]);
	free(t->v);
	*t = (struct cli_tags){ 0 };
}

void cli_json_str(FILE *f, const void *s, size_t n)
{
	cairn_json_str(f, s, n);
}

const char *cli_fmt_bytes(char *buf, size_t n, uint64_t bytes)
{
	static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;
	while (v >= 1024 && u + 1 < ARRAY_SIZE(units)) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, n, "%llu B", (unsigned long long)bytes);
	else
		snprintf(buf, n, "%.1f %s", v, units[u]);
	return buf;
}

char *cli_opt_escape(const char *s)
{
	char *out = malloc(2 * strlen(s) + 1), *p = out;
	if (!out)
		return NULL;
	for (; *s; s++) {
		if (*s == ',' || *s == '\\')
			*p++ = '\\';
		*p++ = *s;
	}
	*p = '\0';
	return out;
}

int cli_thread_create(pthread_t *t, void *(*fn)(void *), void *arg)
{
	/* Test hook: the paths that must cope with a thread that cannot start
	 * (RLIMIT_NPROC, memory) are hard to reach otherwise, and root ignores
	 * RLIMIT_NPROC. */
	static atomic_long created;
	const char *e = getenv("CAIRN_TEST_THREAD_FAIL_AFTER");
	if (e && *e && atomic_fetch_add(&created, 1) >= strtol(e, NULL, 10))
		return EAGAIN;
	return pthread_create(t, NULL, fn, arg);
}

int cli_metrics_read(const char *path, struct cairn_buf *out)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct stat st;
	int r = 0;
	/* The directory may be writable by others (a textfile collector's): a
	 * symlink, a hard link or a fifo planted there must not make us read (and
	 * copy into a world-readable file) what it points to, nor hang. */
	_cleanup_close_ int fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0 && errno != ENOENT && errno != ELOOP)
		return cairn_err_set(-errno, "cannot open metrics '%s': %s", path, strerror(errno));
	bool absent = fd < 0 && errno == ENOENT;
	if (fd >= 0 && fstat(fd, &st) < 0)
		return cairn_err_set(-errno, "cannot stat metrics '%s': %s", path, strerror(errno));
	if (fd >= 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() && st.st_nlink == 1)
		r = cairn_file_slurp_fd(fd, path, 1 << 20, &b);
	else if (!absent)
		log_warn("metrics '%s' is not a regular file of this user with one link: not "
		         "read, and replaced",
		         path);
	if (r < 0 || (r = cairn_buf_put_u8(&b, 0)) < 0)
		return r;
	*out = b;
	cairn_buf_init(&b);
	return 0;
}

/* Secrets for opening the repository and reaching S3 (name prefixes). */
static bool secret_var(const char *kv)
{
	static const char *const names[] = { "CAIRN_PASSWORD", "CAIRN_FROM_PASSWORD",
		                             "AWS_SECRET_ACCESS_KEY=", "AWS_SESSION_TOKEN=" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strncmp(kv, names[i], strlen(names[i])) == 0)
			return true;
	return false;
}

char **cli_child_env(void)
{
	extern char **environ;
	size_t n = 0, k = 0;
	while (environ[n])
		n++;
	char **v = calloc(n + 1, sizeof(*v));
	if (!v)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (!secret_var(environ[i]))
			v[k++] = environ[i];
	return v;
}
