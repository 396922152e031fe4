/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn run NAME: the whole job of a job file, backup -> forget/prune -> sync ->
 * check -> metrics -> notification. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "jline.h"
#include "jobconf.h"
#include "metrics.h"
#include "notify.h"
#include "runlog.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn run [--config FILE] [-n|--dry-run] NAME\n"
        "\n"
        "Runs the job NAME as its file $CAIRN_CONFIG_DIR/NAME.conf (default\n"
        "/etc/cairn/NAME.conf, see cairn.conf(5)) describes it:\n"
        "  1. backup of the paths                                  (always)\n"
        "  2. forget by the keep-* policy, with --prune if prune = yes\n"
        "     (or prune alone with prune = yes and no policy)\n"
        "  3. sync to s3-target                                    (if set)\n"
        "  4. check, reading check-read-data-subset of the data    (check = yes)\n"
        "  5. metrics appended to metrics-file                     (if set)\n"
        "  6. notification to notify-url / notify-mail when the exit status is\n"
        "     not 0 (if it fails, the metrics are written again with exit 1)\n"
        "  7. one line in the run history $CAIRN_STATE_DIR/NAME.runs (default\n"
        "     /var/lib/cairn), which 'cairn report' shows            (always)\n"
        "Steps 2-4 are skipped when the backup wrote no snapshot; each step's outcome\n"
        "is logged, and a failed step does not stop the later ones. SIGINT, SIGTERM\n"
        "and SIGHUP go on to the running step, skip the later ones, and make the run\n"
        "a failure (recorded, notified).\n"
        "\n"
        "  --config FILE   read the job from FILE (NAME defaults to its base name)\n"
        "  -n, --dry-run   print the commands the job would run, run nothing\n"
        "\n"
        "Exit status, the first that applies: 2 bad usage or a bad job file; 1 a\n"
        "step failed (backup without snapshot, forget, prune, sync, check, metrics or\n"
        "the notification); 3 the backup wrote a snapshot but could not read some\n"
        "files or some paths did not exist; 0 everything succeeded.\n";

enum { OPT_CONFIG = OPT_FIRST_COMMAND_OPT };
enum step_id { STEP_BACKUP, STEP_FORGET, STEP_SYNC, STEP_CHECK, STEP_N };
static const char *const step_names[STEP_N] = { "backup", "forget", "sync", "check" };

#define STEP_WAIT "600"    /* --lock-wait: a mount's reader or a slow sync may hold the lock */
#define LINE_MAX_LEN 32768 /* a JSON line of a 2 KiB message, escaped */

struct step {
	bool configured;
	bool ran;
	int rc; /* exit status when ran */
	double secs;
	char error[512]; /* the last error line it printed */
	/* The ID of the snapshot backup wrote (CAIRN_SNAPSHOT_ID_FD), or "". */
	char snapshot[CAIRN_ID_HEX_SIZE];
	const char *label; /* "forget" may run as "prune" */
};

struct run {
	char name[JOBCONF_MAX_NAME + 1];
	const char *config;
	bool dry_run;
	struct jobconf c;
	struct step steps[STEP_N];
	/* The metrics file before the backup rewrote it: the last-success times of
	 * the previous run (NUL-terminated, empty if there was none). */
	struct cairn_buf before;
	/* The metrics file as the backup left it, read once (after_read): a second
	 * write of this command's families starts from it again. */
	struct cairn_buf after;
	bool after_read;
	/* The backup failed and did not replace the metrics file (it was killed,
	 * crashed, or never started): this command writes its families. */
	bool backup_silent;
};

/* ---- signals ------------------------------------------------------------ */

/* SIGINT, SIGTERM (systemctl stop, shutdown) and SIGHUP stop the job as one:
 * the running step gets the signal too and is waited for (a backup then
 * stops cleanly), the later steps are skipped, and the failure is recorded
 * in the history and the metrics and notified like any other. */
static atomic_int interrupted; /* the signal that stopped the job, or 0 */
static atomic_int step_pid;    /* the running step, not yet waited for, or 0 */

static void on_signal(int sig)
{
	int saved = errno;
	int none = 0;
	atomic_compare_exchange_strong(&interrupted, &none, sig);
	int pid = atomic_load(&step_pid);
	if (pid > 0)
		kill(pid, sig);
	errno = saved;
}

static void catch_signals(void)
{
	struct sigaction sa = { .sa_handler = on_signal, .sa_flags = SA_RESTART };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
}

/* ---- argument vectors --------------------------------------------------- */

struct argv {
	char **v;
	size_t n, cap;
	bool oom;
};

static void av_add(struct argv *a, const char *s)
{
	if (a->oom)
		return;
	if (a->n + 2 > a->cap) {
		size_t cap = a->cap ? 2 * a->cap : 32;
		char **v = realloc(a->v, cap * sizeof(*v));
		if (!v) {
			a->oom = true;
			return;
		}
		a->v = v;
		a->cap = cap;
	}
	if (!(a->v[a->n] = strdup(s))) {
		a->oom = true;
		return;
	}
	a->v[++a->n] = NULL;
}

static void av_add2(struct argv *a, const char *opt, const char *val)
{
	av_add(a, opt);
	av_add(a, val);
}

static void av_addl(struct argv *a, const char *opt, long val)
{
	char num[32];
	snprintf(num, sizeof(num), "%ld", val);
	av_add2(a, opt, num);
}

static void av_list(struct argv *a, const char *opt, const struct jobconf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		av_add2(a, opt, l->v[i]);
}

static void av_free(struct argv *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->v[i]);
	free(a->v);
	*a = (struct argv){ 0 };
}

/* ---- the command line of each step -------------------------------------- */

/* Options of the top level: the repository, the password source, and how
 * objects go to S3: every object a step writes to a bucket (an s3:// repository,
 * the sync target) gets the job's Object Lock retention (docs/S3.md §8). */
static void av_globals(struct argv *a, const struct jobconf *c)
{
	av_add(a, "cairn");
	av_add2(a, "-r", c->repository);
	if (c->password_file)
		av_add2(a, "--password-file", c->password_file);
	if (c->password_command)
		av_add2(a, "--password-command", c->password_command);
	if (c->s3_endpoint && strncmp(c->repository, "s3://", 5) == 0)
		av_add2(a, "--s3-endpoint", c->s3_endpoint);
	if (c->s3_lock_days > 0) {
		av_addl(a, "--s3-lock-days", c->s3_lock_days);
		av_add2(a, "--s3-lock-mode", c->s3_lock_mode ? c->s3_lock_mode : "compliance");
	}
}

static void backup_args(struct argv *a, const struct run *run)
{
	const struct jobconf *c = &run->c;
	av_add(a, "backup");
	av_list(a, "--tag", &c->tags);
	if (c->host)
		av_add2(a, "--host", c->host);
	av_list(a, "--files-from", &c->files_from);
	av_list(a, "--files-from-verbatim", &c->files_from_verbatim);
	av_list(a, "--files-from-raw", &c->files_from_raw);
	av_list(a, "--exclude", &c->excludes);
	av_list(a, "--exclude-file", &c->exclude_files);
	av_list(a, "--iexclude", &c->iexcludes);
	av_list(a, "--iexclude-file", &c->iexclude_files);
	av_list(a, "--exclude-if-present", &c->exclude_if_present);
	if (c->exclude_larger_than)
		av_add2(a, "--exclude-larger-than", c->exclude_larger_than);
	if (c->exclude_caches)
		av_add(a, "--exclude-caches");
	if (c->one_file_system)
		av_add(a, "--one-file-system");
	if (c->compression >= 0)
		av_addl(a, "--compression", c->compression);
	if (c->threads > 0)
		av_addl(a, "--threads", c->threads);
	if (c->metrics_file) {
		av_add2(a, "--metrics-file", c->metrics_file);
		av_add2(a, "--metrics-job", run->name);
	}
	av_add(a, "--");
	for (size_t i = 0; i < c->paths.n; i++)
		av_add(a, c->paths.v[i]);
}

/* forget only looks at the group of the snapshot the backup just wrote: the
 * snapshots of this host with exactly the paths this job backs up (as backup
 * resolved them). Another machine sharing the repository, another job of this
 * host and a backup made by hand of other paths keep their snapshots. */
static void forget_args(struct argv *a, const struct run *run)
{
	const struct jobconf *c = &run->c;
	const char *snap = run->steps[STEP_BACKUP].snapshot;
	char host[256] = "localhost";
	if (!jobconf_has_policy(c)) {
		av_add2(a, "prune", "--lock-wait");
		av_add(a, STEP_WAIT);
		return;
	}
	av_add(a, "forget");
	for (int k = 0; k < JOBCONF_KEEP_N; k++) {
		char opt[32];
		snprintf(opt, sizeof(opt), "--%s", jobconf_keep_name((enum jobconf_keep)k));
		if (c->keep[k] > 0)
			av_addl(a, opt, c->keep[k]);
	}
	if (c->keep_within)
		av_add2(a, "--keep-within", c->keep_within);
	av_list(a, "--keep-tag", &c->keep_tags);
	if (c->host)
		snprintf(host, sizeof(host), "%s", c->host);
	else
		gethostname(host, sizeof(host) - 1); /* as backup names it */
	av_add2(a, "--host", host);
	av_add2(a, "--group-of", snap[0] ? snap : "<new snapshot>");
	if (c->prune)
		av_add(a, "--prune");
	av_add2(a, "--lock-wait", STEP_WAIT);
}

static void sync_args(struct argv *a, const struct run *run)
{
	const struct jobconf *c = &run->c;
	av_add(a, "sync");
	if (c->s3_endpoint)
		av_add2(a, "--s3-endpoint", c->s3_endpoint);
	av_add(a, c->s3_target);
}

/* The rotating subset, '*' '/' M, turns into part D mod M + 1 of M on day D: the runs of M days
 * read all the data, where a fixed subset would read the same packs every time. */
static void check_args(struct argv *a, const struct run *run)
{
	const struct jobconf *c = &run->c;
	const char *subset = c->check_read_data_subset;
	char part[48];
	av_add(a, "check");
	if (subset && subset[0] == '*') {
		unsigned long m = strtoul(subset + 2, NULL, 10);
		snprintf(part, sizeof(part), "%lu/%lu", (unsigned long)(time(NULL) / 86400) % m + 1,
		         m);
		subset = part;
	}
	if (subset)
		av_add2(a, "--read-data-subset", subset);
	av_add2(a, "--lock-wait", STEP_WAIT);
}

static void (*const step_args[STEP_N])(struct argv *, const struct run *) = {
	backup_args,
	forget_args,
	sync_args,
	check_args,
};

/* ---- running a step ----------------------------------------------------- */

/* ---- the steps' log lines ----------------------------------------------- */

/* A line of the step's stderr, logged again as this job's, with the step's name
 * and its own fields; an error line is kept for the notification. */
static void relay_line(struct step *st, char *line)
{
	struct jline l = { .message = CAIRN_BUF_INIT };
	size_t n = strlen(line);
	if (n > 0 && line[n - 1] == '\r')
		line[--n] = '\0';
	if (n == 0)
		return;
	const struct cairn_log_field step[] = { LOG_STR("step", st->label), { 0 } };
	char *raw = NULL, text[LINE_MAX_LEN + 64];
	if (jline_parse(line, &l)) {
		const char *msg = (const char *)l.message.data;
		size_t ln = strlen(st->label);
		if (l.fields_len && !(raw = strndup(l.fields, l.fields_len)))
			l.fields_len = 0;
		/* A usage error already names its command ("backup: --x ..."). */
		if (strncmp(msg, st->label, ln) == 0 && strncmp(msg + ln, ": ", 2) == 0)
			msg += ln + 2;
		snprintf(text, sizeof(text), "%s: %s", st->label, msg);
	} else {
		/* Not ours: the text as it came, at notice level. */
		l.level = CAIRN_LOG_NOTICE;
		snprintf(text, sizeof(text), "%s: %s", st->label, line);
	}
	if (l.level == CAIRN_LOG_ERR)
		snprintf(st->error, sizeof(st->error), "%s", text + strlen(st->label) + 2);
	cairn_log_emit(l.level, step, raw, text);
	free(raw);
	cairn_buf_release(&l.message);
}

/* A line of the step's stdout (the command's report: "snapshot 1a2b3c4d saved",
 * forget's table ...): passed on to stdout as it is in text mode, and a notice
 * of the job in JSON mode, so that a JSON log holds nothing but JSON. */
static void relay_out(struct step *st, char *line)
{
	size_t n = strlen(line);
	if (!cairn_log_get_json()) {
		printf("%s\n", line);
		fflush(stdout);
		return;
	}
	if (n == 0)
		return;
	cairn_log_f(CAIRN_LOG_NOTICE,
	            CAIRN_FIELDS(LOG_STR("step", st->label), LOG_STR("stream", "stdout")), "%s: %s",
	            st->label, line);
}

struct lbuf {
	int fd; /* -1 after end of file */
	void (*line)(struct step *, char *);
	size_t len;
	char buf[LINE_MAX_LEN + 1];
};

/* Read what is there; 0, or -1 at end of file (the rest is passed on then). */
static int feed(struct step *st, struct lbuf *b)
{
	ssize_t got = read(b->fd, b->buf + b->len, LINE_MAX_LEN - b->len);
	if (got < 0 && (errno == EINTR || errno == EAGAIN))
		return 0;
	if (got <= 0) {
		b->buf[b->len] = '\0';
		if (b->len)
			b->line(st, b->buf);
		b->len = 0;
		return -1;
	}
	b->len += (size_t)got;
	char *nl;
	while ((nl = memchr(b->buf, '\n', b->len))) {
		*nl = '\0';
		b->line(st, b->buf);
		b->len -= (size_t)(nl + 1 - b->buf);
		memmove(b->buf, nl + 1, b->len);
	}
	if (b->len == LINE_MAX_LEN) { /* an endless line: pass it on in pieces */
		b->buf[b->len] = '\0';
		b->line(st, b->buf);
		b->len = 0;
	}
	return 0;
}

/* Both streams of the step until it closes them. */
static void relay(struct step *st, int err_fd, int out_fd)
{
	_cleanup_free_ struct lbuf *b = malloc(2 * sizeof(*b));
	if (!b) { /* let the step write where we write */
		close(err_fd);
		close(out_fd);
		return;
	}
	b[0].fd = err_fd, b[0].line = relay_line, b[0].len = 0;
	b[1].fd = out_fd, b[1].line = relay_out, b[1].len = 0;
	while (b[0].fd >= 0 || b[1].fd >= 0) {
		struct pollfd p[2] = { { .fd = b[0].fd, .events = POLLIN },
			               { .fd = b[1].fd, .events = POLLIN } };
		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		for (int i = 0; i < 2; i++)
			if (b[i].fd >= 0 && (p[i].revents & (POLLIN | POLLHUP | POLLERR)) &&
			    feed(st, &b[i]) < 0) {
				close(b[i].fd);
				b[i].fd = -1;
			}
	}
	for (int i = 0; i < 2; i++)
		if (b[i].fd >= 0)
			close(b[i].fd);
}

/* The step is known to the signal handler from its start until it has
 * exited, and waited for only then (WNOWAIT first): the handler never signals
 * a reused PID. */
static void step_started(pid_t pid)
{
	atomic_store(&step_pid, (int)pid);
	/* A signal that came before the step was known. */
	if (atomic_load(&interrupted))
		kill(pid, atomic_load(&interrupted));
}

static int wait_child(pid_t pid)
{
	siginfo_t info;
	int status;
	while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) < 0 && errno == EINTR)
		;
	atomic_store(&step_pid, 0);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return EXIT_ERROR;
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	return 128 + WTERMSIG(status); /* as shells report a killed child */
}

#define ID_FD 3 /* the backup's CAIRN_SNAPSHOT_ID_FD */

/* The snapshot ID the backup wrote to its ID_FD, read once it has exited (the
 * pipe's end is non-blocking: nothing there is no ID). */
static void read_id(struct step *st, int fd)
{
	char line[CAIRN_ID_HEX_SIZE + 1];
	ssize_t got = read(fd, line, sizeof(line) - 1);
	if (got == CAIRN_ID_HEX_SIZE && line[CAIRN_ID_HEX_SIZE - 1] == '\n' &&
	    strspn(line, "0123456789abcdef") == CAIRN_ID_HEX_SIZE - 1)
		snprintf(st->snapshot, sizeof(st->snapshot), "%.*s", CAIRN_ID_HEX_SIZE - 1, line);
}

/* A pipe for the ID of the snapshot, or none (-1s) for the other steps and when
 * it cannot be made (then forget does not run, see run_step). */
static void id_pipe(bool want, int id[2])
{
	id[0] = id[1] = -1;
	if (want && pipe2(id, O_CLOEXEC) == 0)
		(void)fcntl(id[0], F_SETFL, O_NONBLOCK);
}

/* Re-execute this binary with argv: a step's crash cannot take the job with it,
 * and every step is exactly the command an administrator would type. Each step
 * opens the repository (an s3:// one, or sync, with the AWS credentials), so
 * it gets the whole environment; its own children that need no secrets (the
 * mail program) get cli_child_env(). The backup also gets a pipe for the ID of
 * its snapshot. */
static int spawn_step(struct step *st, char **argv, bool backup)
{
	extern char **environ;
	posix_spawn_file_actions_t fa;
	int err[2], out[2], id[2];
	pid_t pid;

	if (pipe2(err, O_CLOEXEC) < 0) {
		snprintf(st->error, sizeof(st->error), "cannot create a pipe: %s", strerror(errno));
		return EXIT_ERROR;
	}
	if (pipe2(out, O_CLOEXEC) < 0) {
		snprintf(st->error, sizeof(st->error), "cannot create a pipe: %s", strerror(errno));
		close(err[0]);
		close(err[1]);
		return EXIT_ERROR;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, err[1], STDERR_FILENO);
	posix_spawn_file_actions_adddup2(&fa, out[1], STDOUT_FILENO);
	id_pipe(backup, id);
	if (id[1] >= 0) {
		posix_spawn_file_actions_adddup2(&fa, id[1], ID_FD);
		setenv("CAIRN_SNAPSHOT_ID_FD", "3", 1); /* ID_FD */
	}
	int e = posix_spawn(&pid, "/proc/self/exe", &fa, NULL, argv, environ);
	unsetenv("CAIRN_SNAPSHOT_ID_FD");
	posix_spawn_file_actions_destroy(&fa);
	close(err[1]);
	close(out[1]);
	if (id[1] >= 0)
		close(id[1]);
	if (e) {
		close(err[0]);
		close(out[0]);
		if (id[0] >= 0)
			close(id[0]);
		snprintf(st->error, sizeof(st->error), "cannot run cairn: %s", strerror(e));
		return EXIT_ERROR;
	}
	step_started(pid);
	relay(st, err[0], out[0]);
	int rc = wait_child(pid);
	if (id[0] >= 0) {
		read_id(st, id[0]);
		close(id[0]);
	}
	return rc;
}

/* One word quoted for a POSIX shell, so that a dry run's lines can be pasted. */
static void print_word(const char *w)
{
	static const char plain[] = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	                            "0123456789-_./=:@%+,";
	if (w[0] && !w[strspn(w, plain)]) {
		fputs(w, stdout);
		return;
	}
	putchar('\'');
	for (; *w; w++) {
		if (*w == '\'')
			fputs("'\\''", stdout);
		else
			putchar(*w);
	}
	putchar('\'');
}

static void print_command(char **argv)
{
	for (size_t i = 0; argv[i]; i++) {
		if (i)
			putchar(' ');
		print_word(argv[i]);
	}
	putchar('\n');
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int run_step(struct run *run, enum step_id id)
{
	struct step *st = &run->steps[id];
	struct argv a = { 0 };
	av_globals(&a, &run->c);
	step_args[id](&a, run);
	if (a.oom) {
		av_free(&a);
		return cli_fail(cairn_err_set(-ENOMEM, "out of memory"));
	}
	st->label = id == STEP_FORGET && !jobconf_has_policy(&run->c) ? "prune" : step_names[id];
	if (run->dry_run) {
		print_command(a.v);
		av_free(&a);
		return 0;
	}
	double t0 = mono_now();
	cairn_log_f(CAIRN_LOG_INFO, CAIRN_FIELDS(LOG_STR("step", st->label)), "%s: starting",
	            st->label);
	/* Without the ID, forget cannot tell the job's group: it would judge other
	 * jobs' snapshots. */
	if (id == STEP_FORGET && jobconf_has_policy(&run->c) &&
	    !run->steps[STEP_BACKUP].snapshot[0]) {
		snprintf(st->error, sizeof(st->error),
		         "the backup did not report its snapshot's ID");
		st->rc = EXIT_ERROR;
	} else {
		st->rc = spawn_step(st, a.v, id == STEP_BACKUP);
	}
	st->secs = mono_now() - t0;
	st->ran = true;
	av_free(&a);
	bool ok = st->rc == 0 || (id == STEP_BACKUP && st->rc == EXIT_PARTIAL);
	char snap[9];
	snprintf(snap, sizeof(snap), "%.8s", st->snapshot);
	const char *result = st->rc == 0 ? "ok" : ok ? "partial" : "failed";
	struct cairn_log_field f[] = {
		LOG_STR("step", st->label),
		LOG_STR("result", result),
		LOG_INT("exit_code", st->rc),
		LOG_REAL("duration_seconds", st->secs),
		LOG_STR("error", st->error[0] ? st->error : NULL),
		LOG_STR("snapshot", snap[0] ? snap : NULL),
		{ 0 },
	};
	if (id != STEP_BACKUP)
		f[5].key = NULL; /* only the backup has one */
	if (ok)
		cairn_log_f(st->rc == 0 ? CAIRN_LOG_INFO : CAIRN_LOG_WARNING, f,
		            "%s: done in %.1f s (exit %d)", st->label, st->secs, st->rc);
	else
		cairn_log_f(CAIRN_LOG_ERR, f, "%s failed (exit %d)%s%s", st->label, st->rc,
		            st->error[0] ? ": " : "", st->error);
	return st->rc;
}

/* ---- metrics ------------------------------------------------------------ */

/* The file as backup left it, without the families this command writes (a
 * previous run's), so they are not written twice; without the backup's too when
 * this command writes them in its stead. */
static int keep_foreign(struct cairn_buf *out, const char *text, bool backup_too)
{
	static const char *const ours[] = { "cairn_run_", "cairn_sync_", "cairn_check_",
		                            "cairn_backup_" };
	size_t nours = ARRAY_SIZE(ours) - !backup_too;
	for (const char *p = text; *p;) {
		size_t n = strcspn(p, "\n");
		const char *name = p;
		if (strncmp(p, "# HELP ", 7) == 0 || strncmp(p, "# TYPE ", 7) == 0)
			name = p + 7;
		bool mine = false;
		for (size_t i = 0; i < nours; i++)
			mine |= strncmp(name, ours[i], strlen(ours[i])) == 0;
		if (!mine && cairn_buf_put(out, p, n) < 0)
			return -ENOMEM;
		if (!mine && cairn_buf_put_u8(out, '\n') < 0)
			return -ENOMEM;
		p += n + (p[n] == '\n');
	}
	return 0;
}

struct metric_ctx {
	struct cairn_buf *b;
	const char *job; /* label value, escaped */
	const char *old; /* the previous file */
};

static void gauge(struct metric_ctx *m, const char *name, const char *help)
{
	cairn_buf_printf(m->b, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
}

/* A last-success timestamp: now if ok, else what the previous run recorded. */
static void last_success(struct metric_ctx *m, const char *name, const char *labels, bool ok,
                         time_t now)
{
	double v = ok ? (double)now : metrics_old_value(m->old, name, labels);
	cairn_buf_printf(m->b, "%s{%s} %.0f\n", name, labels, v);
}

static bool step_ok(const struct step *st, enum step_id id)
{
	return st->ran && (st->rc == 0 || (id == STEP_BACKUP && st->rc == EXIT_PARTIAL));
}

static void step_metrics(struct metric_ctx *m, const struct run *run)
{
	gauge(m, "cairn_run_step_success",
	      "1 if the step of the last run succeeded, 0 if it failed or was skipped.");
	for (int i = 0; i < STEP_N; i++)
		if (run->steps[i].configured)
			cairn_buf_printf(
			        m->b, "cairn_run_step_success{cairn_job=\"%s\",step=\"%s\"} %d\n",
			        m->job, step_names[i], step_ok(&run->steps[i], (enum step_id)i));
	gauge(m, "cairn_run_step_duration_seconds", "Duration of the step in the last run.");
	for (int i = 0; i < STEP_N; i++)
		if (run->steps[i].ran)
			cairn_buf_printf(
			        m->b,
			        "cairn_run_step_duration_seconds{cairn_job=\"%s\",step=\"%s\"} "
			        "%.3f\n",
			        m->job, step_names[i], run->steps[i].secs);
}

static void run_metrics(struct metric_ctx *m, const struct run *run, int rc, time_t now)
{
	char labels[256];
	snprintf(labels, sizeof(labels), "cairn_job=\"%s\"", m->job);
	gauge(m, "cairn_run_last_run_timestamp_seconds", "Time the last run of the job ended.");
	cairn_buf_printf(m->b, "cairn_run_last_run_timestamp_seconds{%s} %lld\n", labels,
	                 (long long)now);
	gauge(m, "cairn_run_exit_code", "Exit status of the last run (see cairn-run).");
	cairn_buf_printf(m->b, "cairn_run_exit_code{%s} %d\n", labels, rc);
	gauge(m, "cairn_run_success", "1 if the last run exited 0 or 3 (partial backup).");
	cairn_buf_printf(m->b, "cairn_run_success{%s} %d\n", labels, rc == 0 || rc == 3);
	gauge(m, "cairn_run_last_success_timestamp_seconds", "Time of the last successful run.");
	last_success(m, "cairn_run_last_success_timestamp_seconds", labels, rc == 0 || rc == 3,
	             now);
	step_metrics(m, run);
}

static void sync_check_metrics(struct metric_ctx *m, const struct run *run, time_t now)
{
	char labels[1200], target[1000];
	const struct step *sy = &run->steps[STEP_SYNC], *ck = &run->steps[STEP_CHECK];
	if (sy->configured) {
		metrics_label_escape(target, sizeof(target), run->c.s3_target);
		snprintf(labels, sizeof(labels), "cairn_job=\"%s\",target=\"%s\"", m->job, target);
		gauge(m, "cairn_sync_success", "1 if the last sync to S3 succeeded.");
		cairn_buf_printf(m->b, "cairn_sync_success{%s} %d\n", labels,
		                 step_ok(sy, STEP_SYNC));
		gauge(m, "cairn_sync_last_success_timestamp_seconds",
		      "Time of the last successful sync: the newest data known to be offsite.");
		last_success(m, "cairn_sync_last_success_timestamp_seconds", labels,
		             step_ok(sy, STEP_SYNC), now);
	}
	if (ck->configured && ck->ran) {
		snprintf(labels, sizeof(labels), "cairn_job=\"%s\"", m->job);
		gauge(m, "cairn_check_success", "1 if the last check found no damage.");
		cairn_buf_printf(m->b, "cairn_check_success{%s} %d\n", labels, ck->rc == 0);
		gauge(m, "cairn_check_last_run_timestamp_seconds", "Time the last check ended.");
		cairn_buf_printf(m->b, "cairn_check_last_run_timestamp_seconds{%s} %lld\n", labels,
		                 (long long)now);
		gauge(m, "cairn_check_last_success_timestamp_seconds",
		      "Time of the last check without damage.");
		last_success(m, "cairn_check_last_success_timestamp_seconds", labels, ck->rc == 0,
		             now);
	}
}

/* Append this run's families to the textfile backup wrote (or to the previous
 * one, if the backup could not write it). */
static int write_metrics(struct run *run, int rc)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	const char *path = run->c.metrics_file;
	char job[2 * JOBCONF_MAX_NAME + 1];
	time_t now = time(NULL);

	if (!run->after_read) {
		int r = cli_metrics_read(path, &run->after);
		if (r < 0)
			return r;
		run->after_read = true;
	}
	const char *old = (const char *)run->after.data;
	struct metrics_backup failed = {
		.repo = run->c.repository,
		.job = run->name,
		.duration = run->steps[STEP_BACKUP].secs,
		.snapshots = -1,
	};
	if (run->backup_silent && metrics_backup_format(&b, &failed, old) < 0)
		return -ENOMEM;
	if (keep_foreign(&b, old, run->backup_silent) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	metrics_label_escape(job, sizeof(job), run->name);
	const char *prev = run->before.len ? (const char *)run->before.data : "";
	struct metric_ctx m = { .b = &b, .job = job, .old = prev };
	run_metrics(&m, run, rc, now);
	sync_check_metrics(&m, run, now);
	/* The textfile collector runs as another user; metrics hold nothing secret.
	 * The mode is set on the temp file's fd: a chmod of the path would follow
	 * whatever is planted there after the rename. */
	return cairn_file_write_atomic_mode(path, NULL, b.data, b.len, 0644);
}

/* ---- outcome ------------------------------------------------------------ */

/* The exit status by the documented precedence: 1 (a failure) over 3 (partial
 * backup) over 0. */
static int outcome(const struct run *run)
{
	int rc = 0;
	for (int i = 0; i < STEP_N; i++) {
		const struct step *st = &run->steps[i];
		if (!st->configured)
			continue;
		if (!st->ran || (!step_ok(st, (enum step_id)i)))
			return EXIT_ERROR;
		if (st->rc == EXIT_PARTIAL)
			rc = EXIT_PARTIAL;
	}
	return rc;
}

/* "backup: <error>; sync skipped": what the notification says. */
static void describe(const struct run *run, char *buf, size_t size)
{
	size_t k = 0;
	int sig = atomic_load(&interrupted);
	buf[0] = '\0';
	if (sig) {
		int w = snprintf(buf, size, "interrupted by SIG%s", sigabbrev_np(sig));
		k = w < 0 ? size : (size_t)w;
	}
	for (int i = 0; i < STEP_N && k < size; i++) {
		const struct step *st = &run->steps[i];
		int w = 0;
		if (!st->configured || (step_ok(st, (enum step_id)i) && st->rc == 0))
			continue;
		if (!st->ran)
			w = snprintf(buf + k, size - k, "%s%s skipped", k ? "; " : "",
			             step_names[i]);
		else
			w = snprintf(buf + k, size - k, "%s%s exited %d%s%s", k ? "; " : "",
			             st->label, st->rc, st->error[0] ? ": " : "", st->error);
		k = w < 0 ? size : k + (size_t)w;
	}
}

static int send_notifications(struct run *run, int rc)
{
	char error[2048];
	const struct jobconf *c = &run->c;
	int r = 0;

	describe(run, error, sizeof(error));
	struct notify_msg msg = {
		.job = run->name, .host = c->host, .error = error, .exit_code = rc
	};
	enum notify_format f = NOTIFY_AUTO;
	if (c->notify_format)
		notify_format_parse(c->notify_format, &f); /* validated by jobconf_load */
	const struct cairn_log_field fail[] = { LOG_STR("step", "notify"),
		                                LOG_STR("result", "failed"),
		                                { 0 } };
	if (c->notify_url && notify_webhook(c->notify_url, f, &msg) < 0)
		r = -EIO,
		cairn_log_f(CAIRN_LOG_ERR, fail, "notification failed: %s", cairn_err_msg());
	if (c->notify_mail && notify_mail(c->notify_mail, &msg) < 0)
		r = -EIO,
		cairn_log_f(CAIRN_LOG_ERR, fail, "notification failed: %s", cairn_err_msg());
	if (r == 0)
		cairn_log_f(CAIRN_LOG_INFO,
		            CAIRN_FIELDS(LOG_STR("step", "notify"), LOG_STR("result", "ok")),
		            "notification sent");
	notify_mark_reported(run->name, r == 0);
	return r;
}

/* ---- the job ------------------------------------------------------------ */

static void plan(struct run *run)
{
	const struct jobconf *c = &run->c;
	run->steps[STEP_BACKUP].configured = true;
	run->steps[STEP_FORGET].configured = jobconf_has_policy(c) || c->prune;
	run->steps[STEP_SYNC].configured = c->s3_target != NULL;
	run->steps[STEP_CHECK].configured = c->check || c->check_read_data_subset;
	for (int i = 0; i < STEP_N; i++)
		run->steps[i].label = step_names[i];
}

/* The run history that cairn report shows (runlog.h). Not recording it costs
 * only the history, so it is no failure of the job. */
static void record_run(const struct run *run, int rc, double secs)
{
	struct runlog_run r = { .time = time(NULL), .exit_code = rc, .seconds = secs };
	snprintf(r.snapshot, sizeof(r.snapshot), "%.8s", run->steps[STEP_BACKUP].snapshot);
	for (int i = 0; i < STEP_N; i++) {
		const struct step *st = &run->steps[i];
		if (!st->configured)
			continue;
		struct runlog_step *s = &r.steps[r.nsteps++];
		snprintf(s->name, sizeof(s->name), "%s", step_names[i]);
		snprintf(s->result, sizeof(s->result), "%s",
		         !st->ran                        ? "skipped"
		         : !step_ok(st, (enum step_id)i) ? "failed"
		         : st->rc == EXIT_PARTIAL        ? "partial"
		                                         : "ok");
		s->exit_code = st->rc;
		s->seconds = st->secs;
	}
	if (runlog_append(run->name, &r) < 0)
		cairn_log_f(CAIRN_LOG_WARNING, CAIRN_FIELDS(LOG_STR("step", "history")),
		            "cannot record the run: %s", cairn_err_msg());
}

/* Whether the file at path is another than before (existed: whether there was
 * one): backup writes its metrics to a new file renamed over the old one. */
static bool replaced(const char *path, bool existed, const struct stat *before)
{
	struct stat now;
	if (lstat(path, &now) < 0)
		return false;
	return !existed || now.st_dev != before->st_dev || now.st_ino != before->st_ino;
}

/* Write the metrics of a run that exits rc; EXIT_ERROR if they cannot be. */
static int metrics_step(struct run *run, int rc)
{
	if (write_metrics(run, rc) >= 0)
		return 0;
	cairn_log_f(CAIRN_LOG_ERR,
	            CAIRN_FIELDS(LOG_STR("step", "metrics"), LOG_STR("result", "failed"),
	                         LOG_STR("path", run->c.metrics_file)),
	            "cannot write metrics: %s", cairn_err_msg());
	return EXIT_ERROR;
}

static int run_job(struct run *run)
{
	char level[8];
	double t0 = mono_now();
	plan(run);
	/* The steps log at this command's level (-v, -q included). */
	snprintf(level, sizeof(level), "%d", cairn_log_get_level());
	setenv("CAIRN_LOG_LEVEL", level, 1);
	/* JSON whatever this command's format, so relay_line keeps the steps' fields. */
	setenv("CAIRN_LOG_FORMAT", "json", 1);
	if (!run->dry_run) {
		notify_mark_reported(run->name, false);
		catch_signals();
	}
	/* backup writes the file anew and drops this command's families, so what
	 * the previous run recorded is read now (a missing or unreadable file only
	 * costs the remembered times). */
	struct stat before = { 0 };
	bool had_metrics = false;
	if (!run->dry_run && run->c.metrics_file) {
		(void)cli_metrics_read(run->c.metrics_file, &run->before);
		had_metrics = lstat(run->c.metrics_file, &before) == 0;
	}
	int b = run_step(run, STEP_BACKUP);
	bool snapshot = b == 0 || b == EXIT_PARTIAL;
	if (!run->dry_run && run->c.metrics_file && !snapshot)
		run->backup_silent = !replaced(run->c.metrics_file, had_metrics, &before);
	for (int i = STEP_FORGET; i < STEP_N; i++) {
		if (!run->steps[i].configured)
			continue;
		if ((snapshot && !atomic_load(&interrupted)) || run->dry_run)
			run_step(run, (enum step_id)i);
		else
			cairn_log_f(CAIRN_LOG_WARNING,
			            CAIRN_FIELDS(LOG_STR("step", step_names[i]),
			                         LOG_STR("result", "skipped")),
			            "%s skipped: %s", step_names[i],
			            snapshot ? "the job was interrupted" : "the backup failed");
	}
	if (run->dry_run)
		return 0;
	int rc = outcome(run);
	int sig = atomic_load(&interrupted);
	if (sig) {
		cairn_log_f(CAIRN_LOG_ERR, CAIRN_FIELDS(LOG_STR("signal", sigabbrev_np(sig))),
		            "job %s interrupted by SIG%s", run->name, sigabbrev_np(sig));
		rc = EXIT_ERROR;
	}
	bool metrics = run->c.metrics_file && metrics_step(run, rc) == 0;
	if (!metrics && run->c.metrics_file)
		rc = EXIT_ERROR;
	if (rc != 0 && (run->c.notify_url || run->c.notify_mail) &&
	    send_notifications(run, rc) < 0 && rc != EXIT_ERROR) {
		/* The metrics say the exit status the job ends with. */
		rc = EXIT_ERROR;
		if (metrics)
			(void)metrics_step(run, rc);
	}
	record_run(run, rc, mono_now() - t0);
	const struct cairn_log_field f[] = { LOG_INT("exit_code", rc), { 0 } };
	if (rc == 0)
		cairn_log_f(CAIRN_LOG_NOTICE, f, "job %s succeeded", run->name);
	else
		cairn_log_f(CAIRN_LOG_ERR, f, "job %s finished with exit status %d", run->name, rc);
	return rc;
}

static int handle(int c, const char *arg, void *payload)
{
	struct run *run = payload;
	switch (c) {
	case OPT_CONFIG:
		run->config = arg;
		return 0;
	case 'n':
		run->dry_run = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static int load(struct run *run, int argc, char **argv, int i)
{
	char path[4096];
	int r;
	if (i + 1 < argc || (i >= argc && !run->config))
		return cli_usage_error("run: give one job NAME (or --config FILE)");
	if (i < argc)
		snprintf(run->name, sizeof(run->name), "%.*s", JOBCONF_MAX_NAME, argv[i]);
	else
		jobconf_name_from_path(run->name, sizeof(run->name), run->config);
	if (!run->config && (r = jobconf_path(path, sizeof(path), argv[i])) < 0)
		return cli_usage_error("%s", cairn_err_msg());
	const char *file = run->config ? run->config : path;
	r = jobconf_load(&run->c, file);
	/* A job file that does not parse, or that others may change, is bad usage;
	 * one that cannot be read is a failure of the machine. */
	if (r == -EINVAL || r == -EFBIG || r == -EPERM)
		return cli_usage_error("%s", cairn_err_msg());
	if (r < 0) {
		cairn_log_f(
		        CAIRN_LOG_ERR,
		        CAIRN_FIELDS(LOG_STR("path", file), LOG_STR("code", cairn_errno_name(r))),
		        "%s", cairn_err_msg());
		return EXIT_ERROR;
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "config", required_argument, NULL, OPT_CONFIG },
		{ "dry-run", no_argument, NULL, 'n' },
		{ 0 },
	};
	struct run run = { 0 };
	jobconf_init(&run.c);
	int i = cli_parse(argc, argv, "n", longopts, usage, handle, &run);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	int rc = load(&run, argc, argv, i);
	if (rc == 0) {
		cairn_log_set_job(run.name);
		if (run.c.log_format && strcmp(run.c.log_format, "json") == 0)
			cairn_log_set_json(true);
		rc = run_job(&run);
	}
	jobconf_release(&run.c);
	cairn_buf_release(&run.before);
	cairn_buf_release(&run.after);
	return rc;
}
