/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn backup: run the archiver, show progress, and commit a snapshot. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "archiver.h"
#include "cli.h"
#include "interrupt.h"
#include "excludes.h"
#include "filesfrom.h"
#include "maint.h"
#include "metrics.h"
#include "prewalk.h"
#include "progress.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn backup [options] PATH...\n"
        "       cairn backup [options] --files-from FILE...\n"
        "       cairn backup [options] --stdin [--stdin-filename NAME]\n"
        "\n"
        "Backs up the paths into a new snapshot. Unchanged files (same size, mtime,\n"
        "ctime and inode as in the parent snapshot) are not read again. With a\n"
        "write-only key (cairn key add --write-only) the parents are the snapshots\n"
        "this host keeps in its cache directory (--cache-dir).\n"
        "\n"
        "  --tag TAG[,TAG...]     tag the snapshot with these tags (repeatable; each 1\n"
        "                         to 1024 bytes, blanks around it left out)\n"
        "  --host NAME            hostname to record (default: this host; 1 to 255\n"
        "                         bytes); neither may hold control characters\n"
        "  --files-from FILE      back up the paths listed in FILE too (- for stdin):\n"
        "                         one per line, blanks around it trimmed, empty lines\n"
        "                         and '#' comments skipped, globs expanded (one that\n"
        "                         matches nothing is a path that does not exist)\n"
        "  --files-from-verbatim FILE  one path per line, exactly as written\n"
        "  --files-from-raw FILE  paths each ended by a NUL byte (find -print0)\n"
        "                         (each of the three repeatable)\n"
        "  --stdin                back up standard input as one file, /NAME\n"
        "  --stdin-filename NAME  its name (default: stdin)\n"
        "  --exclude GLOB         leave out matching paths (repeatable; see below)\n"
        "  --exclude-file FILE    read exclude patterns from FILE, one per line\n"
        "  --iexclude GLOB        as --exclude, ASCII letters matching either case\n"
        "  --iexclude-file FILE   read such patterns from FILE, one per line\n"
        "  --exclude-caches       leave out directories holding a CACHEDIR.TAG\n"
        "  --exclude-if-present NAME[:HEADER]  leave out directories holding NAME (a\n"
        "                         file starting with HEADER, when given; repeatable)\n"
        "  --exclude-larger-than SIZE  leave out files larger than SIZE (K, M, G, T)\n"
        "  -x, --one-file-system  do not cross filesystem boundaries\n"
        "  --parent SNAP          incremental base (default: the latest snapshot of\n"
        "                         this host with the same paths)\n"
        "  --force                read every file, ignoring the parent snapshot\n"
        "  -n, --dry-run          read and hash everything, store nothing\n"
        "  --list                 list each entry with what the backup does with it:\n"
        "                         new, changed, unmodified, or excluded (and by which\n"
        "                         rule), directories after their content, not sorted;\n"
        "                         with -n a check of the excludes, with --json one\n"
        "                         message of type verbose_status per entry\n"
        "  --compression LEVEL    zstd level 0..19 for this backup\n"
        "  --threads N            worker threads beside the one walking the tree, which\n"
        "                         joins them when its walk is done (default: twice the\n"
        "                         CPUs, at least 8, at most 64: they wait on reads too)\n"
        "  --json                 JSON lines on stdout: status messages and a summary\n"
        "  --metrics-file PATH    write Prometheus textfile metrics when it ends, failed\n"
        "                         or not (not for a dry run)\n"
        "  --metrics-job NAME     label the metrics cairn_job=\"NAME\" too (cairn run passes\n"
        "                         its job's name: jobs sharing a repository differ)\n"
        "\n"
        "Patterns: * ? [..] and ** (any number of directories). A pattern without '/'\n"
        "matches a file name anywhere; one starting with '/' is anchored at the root.\n"
        "Excludes apply below the paths given, not to the paths themselves nor above\n"
        "them: with /var/tmp/src, --exclude tmp leaves out only tmp directories in src.\n"
        "A file that cannot be read to the end (or opened) keeps its size: the unread\n"
        "part is stored as zeros (a hole) and the entry flagged incomplete; its\n"
        "restore warns.\n"
        "A path that does not exist (or cannot be reached), or a --files-from glob that\n"
        "matches nothing, is skipped with a warning, like a file that cannot be read:\n"
        "the snapshot is partial and still lists it.\n"
        "When none of the paths exists, no snapshot is written.\n"
        "A file that changes while it is read is read again; changed again, it is kept\n"
        "as read and flagged incomplete.\n"
        "Exit status: 0 ok, 1 error (no snapshot written), 3 snapshot written but some\n"
        "paths or files could not be read (or changed twice while read), or the metrics\n"
        "file could not be written (a warning: a metrics file that cannot be written\n"
        "never stops the backup).\n";

enum {
	OPT_TAG = OPT_FIRST_COMMAND_OPT,
	OPT_HOST,
	OPT_EXCLUDE,
	OPT_EXCLUDE_FILE,
	OPT_EXCLUDE_CACHES,
	OPT_PARENT,
	OPT_FORCE,
	OPT_COMPRESSION,
	OPT_THREADS,
	OPT_METRICS,
	OPT_METRICS_JOB,
	OPT_LIST,
	OPT_IEXCLUDE,
	OPT_IEXCLUDE_FILE,
	OPT_EXCLUDE_IF_PRESENT,
	OPT_EXCLUDE_LARGER,
	OPT_FILES_FROM,
	OPT_FILES_FROM_VERBATIM,
	OPT_FILES_FROM_RAW,
	OPT_STDIN,
	OPT_STDIN_FILENAME,
};

/* A --files-from* option, read once the options are parsed. */
struct list_file {
	enum filesfrom_kind kind;
	const char *path;
};

struct backup_opts {
	struct cli_tags tags;
	const char *host;
	struct excludes *excludes;
	struct list_file *lists;
	size_t nlists;
	bool stdin;
	const char *stdin_name;
	bool one_fs, dry_run, force, json, list;
	const char *parent;
	int compression;
	int threads;
	const char *metrics;
	const char *metrics_job;
};

static int add_list(struct backup_opts *o, enum filesfrom_kind kind, const char *path)
{
	struct list_file *v = realloc(o->lists, (o->nlists + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	o->lists = v;
	o->lists[o->nlists++] = (struct list_file){ kind, path };
	return 0;
}

/* One name of the root: a snapshot path /NAME that restore and ls can name. */
static int check_stdin_name(const char *name)
{
	int r = cli_check_label("the --stdin-filename", name, 255);
	if (r >= 0 && (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")))
		r = cairn_err_set(
		        -EINVAL,
		        "--stdin-filename '%s' is not a file name (no '/', not '.' or '..')", name);
	return r;
}

static int handle(int c, const char *arg, void *payload)
{
	struct backup_opts *o = payload;
	long v;
	int r;

	switch (c) {
	case OPT_TAG: /* "" would add no tag: refused, as an unset variable's likely mistake */
		return *arg ? cli_tags_add(&o->tags, arg) : cli_check_label("a tag", arg, 1024);
	case OPT_HOST:
		o->host = arg;
		return cli_check_label("a host name", arg, 255);
	case OPT_EXCLUDE:
	case OPT_IEXCLUDE:
		return excludes_add_glob(o->excludes, arg, c == OPT_IEXCLUDE);
	case OPT_EXCLUDE_FILE:
	case OPT_IEXCLUDE_FILE:
		return excludes_add_glob_file(o->excludes, arg, c == OPT_IEXCLUDE_FILE);
	case OPT_EXCLUDE_CACHES:
		return excludes_add_caches(o->excludes);
	case OPT_EXCLUDE_IF_PRESENT:
		return excludes_add_marker(o->excludes, arg);
	case OPT_EXCLUDE_LARGER:
		return excludes_set_max_size(o->excludes, arg);
	case OPT_FILES_FROM:
		return add_list(o, FILESFROM_LINES, arg);
	case OPT_FILES_FROM_VERBATIM:
		return add_list(o, FILESFROM_VERBATIM, arg);
	case OPT_FILES_FROM_RAW:
		return add_list(o, FILESFROM_RAW, arg);
	case OPT_STDIN:
		o->stdin = true;
		return 0;
	case OPT_STDIN_FILENAME:
		o->stdin_name = arg;
		return check_stdin_name(arg);
	case 'x':
		o->one_fs = true;
		return 0;
	case OPT_PARENT:
		o->parent = arg;
		return 0;
	case OPT_FORCE:
		o->force = true;
		return 0;
	case 'n':
		o->dry_run = true;
		return 0;
	case OPT_COMPRESSION:
		if ((r = cli_parse_int(arg, 0, 19, &v)) < 0)
			return r;
		o->compression = (int)v;
		return 0;
	case OPT_THREADS:
		if ((r = cli_parse_int(arg, 1, 256, &v)) < 0)
			return r;
		o->threads = (int)v;
		return 0;
	case OPT_JSON:
		o->json = true;
		return 0;
	case OPT_METRICS:
		o->metrics = arg;
		/* Refused before any snapshot is written: a target no rename can
		 * replace (a directory, a device). A directory that is missing (no
		 * node exporter installed) costs the metrics, not the backup. */
		r = cli_check_output_file(arg);
		return r == -EINVAL ? r : 0;
	case OPT_METRICS_JOB:
		o->metrics_job = arg;
		return 0;
	case OPT_LIST:
		o->list = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static bool same_paths(const struct cairn_snapshot *s, char **paths, size_t n)
{
	if (s->npaths != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (strcmp(s->paths[i], paths[i]) != 0)
			return false;
	return true;
}

/* The parent: --parent, else the newest snapshot of this host with the same paths.
 * -1: none; -2: --parent names no snapshot (message set). */
static int find_parent(struct cairn_snapshot **list, size_t n, const struct backup_opts *o,
                       const char *host, char **paths, size_t npaths)
{
	if (o->force)
		return -1;
	if (o->parent) {
		int i = cairn_snapshot_find(list, n, o->parent);
		return i < 0 ? -2 : i;
	}
	for (size_t i = n; i-- > 0;)
		if (strcmp(list[i]->hostname, host) == 0 && same_paths(list[i], paths, npaths))
			return (int)i;
	return -1;
}

/* Host and user names, malloc'd into s (freed by the caller). */
static int fill_identity(struct cairn_snapshot *s, const char *host_opt)
{
	struct passwd pw, *res = NULL;
	char buf[4096], host[256] = "localhost";

	if (host_opt)
		snprintf(host, sizeof(host), "%s", host_opt);
	else
		gethostname(host, sizeof(host) - 1);
	s->hostname = strdup(host);
	if (getpwuid_r(getuid(), &pw, buf, sizeof(buf), &res) == 0 && res)
		s->username = strdup(res->pw_name);
	else
		s->username = strdup("");
	return s->hostname && s->username ? 0 : cairn_err_set(-ENOMEM, "out of memory");
}

static int64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void fill_summary(struct cairn_snapshot *s, struct archiver_stats *st,
                         const struct cairn_repo_stats *before,
                         const struct cairn_repo_stats *after)
{
	struct cairn_snapshot_summary *m = &s->summary;
	m->files_new = atomic_load(&st->files_new);
	m->files_changed = atomic_load(&st->files_changed);
	m->files_unmodified = atomic_load(&st->files_unmodified);
	m->dirs = atomic_load(&st->dirs);
	m->bytes_read = atomic_load(&st->bytes_read);
	m->bytes_added = after->bytes_written - before->bytes_written;
	m->blobs_added = after->blobs_written - before->blobs_written;
	uint64_t errors = atomic_load(&st->errors);
	m->errors = errors > UINT32_MAX ? UINT32_MAX : (uint32_t)errors;
	m->partial = errors > 0;
}

/* Archive, flush, and commit the snapshot (the last step: FORMAT.md §8). */
static int run_backup(cairn_repo *repo, cairn_lock *lock, struct backup_opts *o, char **paths,
                      size_t npaths, struct progress *pg, struct cairn_snapshot *snap)
{
	struct cairn_snapshot **list = NULL;
	struct cairn_repo_stats before, after;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);

	if (r < 0 || (r = fill_identity(snap, o->host)) < 0) {
		cairn_snapshot_list_free(list, n);
		return r;
	}
	int pi = find_parent(list, n, o, snap->hostname, paths, npaths);
	if (pi == -2) {
		cairn_snapshot_list_free(list, n);
		return cairn_err_wrap(-ENOENT, "parent snapshot");
	}
	struct archiver_opts ao = {
		.paths = (const char *const *)paths,
		.npaths = npaths,
		.list = o->list ? progress_list : NULL,
		.list_payload = pg,
		.one_file_system = o->one_fs,
		.dry_run = o->dry_run,
		.scan = progress_wants_scan(pg) && !o->stdin,
		.stdin_name = o->stdin ? o->stdin_name : NULL,
		.stdin_fd = STDIN_FILENO,
		.threads = o->threads,
		.parent = pi >= 0 ? list[pi] : NULL,
		.cancel = interrupt_flag(),
	};
	if (pi >= 0) {
		snap->has_parent = true;
		snap->parent = list[pi]->id;
	}
	if ((r = excludes_apply(o->excludes, &ao)) < 0) {
		cairn_snapshot_list_free(list, n);
		return r;
	}
	snap->time_ns = now_ns();
	cairn_repo_stats(repo, &before);
	progress_start(pg);
	r = archiver_run(repo, &ao, progress_stats(pg), &snap->root);
	if (r >= 0 && !o->dry_run)
		r = cairn_repo_flush(repo);
	progress_stop(pg);
	cairn_repo_stats(repo, &after);
	fill_summary(snap, progress_stats(pg), &before, &after);
	cairn_snapshot_list_free(list, n);
	list = NULL;
	/* A signal that came after the archiver's last look still stops the commit. */
	if (r >= 0 && interrupt_pending())
		r = cairn_err_set(-ECANCELED, "interrupted");
	/* The commit point: a prune may delete what this backup reused once its
	 * lock is gone (FORMAT.md §11). */
	if (r >= 0 && !o->dry_run && (r = cairn_lock_refresh(lock)) >= 0)
		r = cairn_repo_snapshot_save(repo, snap);
	progress_set_snapshots(pg, n + (r >= 0 && !o->dry_run));
	return r;
}

/* missing of npaths paths do not exist: a partial snapshot, unless that is all
 * of them (restic: "all source directories/files do not exist"). */
static int refuse_nothing(int missing, size_t npaths)
{
	if (missing <= 0 || (size_t)missing < npaths)
		return missing;
	if (npaths == 1)
		return -ENOENT; /* the message names the path */
	return cairn_err_wrap(-ENOENT, "nothing to back up, none of the %zu paths exists", npaths);
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* The label of the metrics: the repository as given, opened or not, so that a
 * failure and a success are the same series. */
static const char *repo_label(void)
{
	const char *path = NULL;
	return cli_repo_path(&path) < 0 ? "" : path;
}

/* A backup that failed before it began (no repository, a lock, no path) says
 * so too: a file left as the last good backup wrote it would claim success. */
static void metrics_failed(const struct backup_opts *o, double t0)
{
	struct metrics_backup m = {
		.repo = repo_label(),
		.job = o->metrics_job,
		.duration = mono_now() - t0,
		.snapshots = -1,
	};
	if (o->metrics && metrics_backup_write(o->metrics, &m) < 0)
		log_warn("cannot write metrics: %s", cairn_err_msg());
}

/* The descriptor $CAIRN_SNAPSHOT_ID_FD names, or -1: 'cairn run' learns the ID
 * of the snapshot written there, whatever -q and the summary's wording. Taken
 * out of the environment and closed on exec, so the password command does not
 * inherit it. */
static int take_id_fd(void)
{
	const char *v = getenv("CAIRN_SNAPSHOT_ID_FD");
	char *end;
	long fd = v ? strtol(v, &end, 10) : -1;
	unsetenv("CAIRN_SNAPSHOT_ID_FD");
	if (fd < 3 || fd > 1000 || *end || fcntl((int)fd, F_SETFD, FD_CLOEXEC) < 0)
		return -1;
	return (int)fd;
}

/* The whole ID and a newline; a reader that is gone costs nothing. */
static void report_id(int fd, const struct cairn_id *id)
{
	char line[CAIRN_ID_HEX_SIZE + 1];
	if (fd < 0)
		return;
	cairn_id_hex(line, id);
	line[CAIRN_ID_HEX_SIZE - 1] = '\n';
	(void)!write(fd, line, CAIRN_ID_HEX_SIZE);
	close(fd);
}

static int parse_args(int argc, char **argv, struct backup_opts *o, int *first)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "tag", required_argument, NULL, OPT_TAG },
		{ "host", required_argument, NULL, OPT_HOST },
		{ "exclude", required_argument, NULL, OPT_EXCLUDE },
		{ "exclude-file", required_argument, NULL, OPT_EXCLUDE_FILE },
		{ "exclude-caches", no_argument, NULL, OPT_EXCLUDE_CACHES },
		{ "one-file-system", no_argument, NULL, 'x' },
		{ "parent", required_argument, NULL, OPT_PARENT },
		{ "force", no_argument, NULL, OPT_FORCE },
		{ "dry-run", no_argument, NULL, 'n' },
		{ "compression", required_argument, NULL, OPT_COMPRESSION },
		{ "threads", required_argument, NULL, OPT_THREADS },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "metrics-file", required_argument, NULL, OPT_METRICS },
		{ "metrics-job", required_argument, NULL, OPT_METRICS_JOB },
		{ "list", no_argument, NULL, OPT_LIST },
		{ "iexclude", required_argument, NULL, OPT_IEXCLUDE },
		{ "iexclude-file", required_argument, NULL, OPT_IEXCLUDE_FILE },
		{ "exclude-if-present", required_argument, NULL, OPT_EXCLUDE_IF_PRESENT },
		{ "exclude-larger-than", required_argument, NULL, OPT_EXCLUDE_LARGER },
		{ "files-from", required_argument, NULL, OPT_FILES_FROM },
		{ "files-from-verbatim", required_argument, NULL, OPT_FILES_FROM_VERBATIM },
		{ "files-from-raw", required_argument, NULL, OPT_FILES_FROM_RAW },
		{ "stdin", no_argument, NULL, OPT_STDIN },
		{ "stdin-filename", required_argument, NULL, OPT_STDIN_FILENAME },
		{ 0 },
	};
	int i = cli_parse(argc, argv, "xn", longopts, usage, handle, o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (o->stdin && (i < argc || o->nlists))
		return cli_usage_error("backup: --stdin takes no paths, nor --files-from");
	if (o->stdin_name && !o->stdin)
		return cli_usage_error("backup: --stdin-filename needs --stdin");
	if (i >= argc && !o->nlists && !o->stdin)
		return cli_usage_error("backup: give at least one path to back up");
	if (o->stdin && !o->stdin_name)
		o->stdin_name = "stdin";
	*first = i;
	return -1;
}

/* The paths to back up: those given, then those listed (restic's order), or
 * /NAME for --stdin. */
static int collect_paths(struct backup_opts *o, char **args, size_t nargs, struct filesfrom *out)
{
	char name[300];
	int r = 0;
	if (o->stdin) {
		snprintf(name, sizeof(name), "/%s", o->stdin_name);
		return filesfrom_add(out, name);
	}
	for (size_t i = 0; r >= 0 && i < nargs; i++)
		r = filesfrom_add(out, args[i]);
	for (size_t i = 0; r >= 0 && i < o->nlists; i++)
		r = filesfrom_read(out, o->lists[i].kind, o->lists[i].path);
	if (r >= 0 && out->n == 0)
		r = cairn_err_set(-ENOENT, "nothing to back up: the lists hold no path");
	return r;
}

int cmd_backup(int argc, char **argv)
{
	struct backup_opts o = { .compression = -1 };
	struct cairn_snapshot snap = { 0 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .allow_write_only = true,
		                      .lock_first = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	cairn_lock *lock = NULL;
	struct filesfrom given = { 0 };
	struct prewalk *pw = NULL;
	char **paths = NULL;
	size_t npaths = 0;
	int first = 0, rc;
	double t0 = mono_now();
	int id_fd = take_id_fd();

	if (excludes_new(&o.excludes) < 0)
		return cli_fail(-ENOMEM);
	rc = parse_args(argc, argv, &o, &first);
	if (rc >= 0)
		goto out;
	int r = collect_paths(&o, argv + first, (size_t)(argc - first), &given);
	if (r >= 0 && o.stdin) {
		paths = TAKE_PTR(given.v);
		npaths = given.n;
		given.n = 0;
	} else if (r >= 0) {
		r = archiver_normalize_paths(given.v, given.n, &paths, &npaths);
		r = refuse_nothing(r, npaths);
		if (r >= 0)
			pw = prewalk_start(paths, npaths);
	}
	if (r >= 0)
		r = cli_open_repo(&repo, &ro);
	/* Between the open and the lock: a prune may run there (s3-fleet.sh). */
	if (r >= 0)
		maint_test_point("backup-opened");
	/* Shared: other backups and checks may run, prune may not (FORMAT.md §11). */
	if (r >= 0)
		r = cairn_repo_lock(repo, CAIRN_LOCK_SHARED, "backup", 0, &lock);
	if (r >= 0 && !o.dry_run)
		maint_recover(repo, lock);
	if (r >= 0 && o.compression >= 0)
		r = cairn_repo_set_compression(repo, o.compression);
	if (r < 0) {
		rc = cli_fail(r);
		if (!o.dry_run)
			metrics_failed(&o, t0);
		goto out;
	}
	snap.paths = paths;
	snap.npaths = npaths;
	snap.tags = o.tags.v;
	snap.ntags = o.tags.n;
	snap.program_version = (char *)"cairn " CAIRN_VERSION;
	interrupt_catch("backup");
	prewalk_stop(TAKE_PTR(pw));
	struct progress *pg = progress_new(o.json, o.dry_run, o.list);
	r = pg ? run_backup(repo, lock, &o, paths, npaths, pg, &snap) : -ENOMEM;
	if (pg) {
		/* Released first, so that the count is the whole backup's. */
		struct cairn_storage_stats ss;
		cairn_lock_release(TAKE_PTR(lock));
		cairn_storage_stats(cairn_repo_storage(repo), &ss);
		progress_set_requests(pg, &ss, cairn_storage_is_url(repo_label()));
	}
	rc = progress_finish(pg, r, &snap, o.metrics, repo_label(), o.metrics_job);
	if (r >= 0 && !o.dry_run)
		report_id(id_fd, &snap.id);
	progress_free(pg);
	free(snap.hostname);
	free(snap.username);
out:
	prewalk_stop(pw);
	cairn_lock_release(lock);
	for (size_t i = 0; i < npaths; i++)
		free(paths[i]);
	free(paths);
	cli_tags_release(&o.tags);
	free(o.lists);
	filesfrom_release(&given);
	excludes_free(o.excludes);
	return rc;
}
