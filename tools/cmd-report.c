/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn report --html FILE: a page to look at, about one repository. */
#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cli.h"
#include "jobconf.h"
#include "report.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn report --html FILE [--job NAME]... [--runs N] [--s3 URL]\n"
        "                    [--s3-endpoint URL] [--offline] [--check-max-age DAYS]\n"
        "\n"
        "Writes one self-contained HTML page about the repository (no script, no\n"
        "network: styles and SVG charts are inline), with\n"
        "  - the 3-2-1-1-0 state, as 'cairn status' judges it\n"
        "  - snapshots over time, per host and per tag\n"
        "  - repository size and deduplication over time (the snapshots' summaries)\n"
        "  - each job's recent runs, with outcome and duration (the run history\n"
        "    'cairn run' keeps in $CAIRN_STATE_DIR/NAME.runs, default /var/lib/cairn)\n"
        "  - the last check\n"
        "\n"
        "  --html FILE           where to write the page (replaced whole)\n"
        "  --job NAME            the runs of this job (repeatable); the first also\n"
        "                        gives the repository, password and S3 copy, as for\n"
        "                        'cairn status --job'. Without it: every job whose\n"
        "                        file names this repository and that has a history\n"
        "  --runs N              runs shown per job (default 30)\n"
        "  --s3 URL, --s3-endpoint URL, --offline, --check-max-age DAYS\n"
        "                        as for 'cairn status'\n";

enum {
	OPT_HTML = OPT_FIRST_COMMAND_OPT,
	OPT_JOB,
	OPT_RUNS,
	OPT_S3,
	OPT_OFFLINE,
	OPT_MAX_AGE,
};

#define MAX_JOBS 64

struct report_opts {
	const char *html;
	const char *jobs[MAX_JOBS];
	size_t njobs;
	long runs;
	struct status_report *st;
};

static int handle(int c, const char *arg, void *payload)
{
	struct report_opts *o = payload;
	switch (c) {
	case OPT_HTML:
		o->html = arg;
		return cli_check_output_file(arg);
	case OPT_JOB:
		if (o->njobs == MAX_JOBS)
			return cairn_err_set(-EINVAL, "at most %d --job", MAX_JOBS);
		o->jobs[o->njobs++] = arg;
		return 0;
	case OPT_RUNS:
		return cli_parse_int(arg, 1, RUNLOG_KEEP, &o->runs);
	case OPT_S3:
		return status_set_s3(o->st, arg);
	case OPT_OFFLINE:
		o->st->offline = true;
		return 0;
	case OPT_MAX_AGE:
		return cli_parse_int(arg, 1, 36500, &o->st->max_age_days);
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* ---- the jobs ------------------------------------------------------------- */

struct jobs {
	struct report_job v[MAX_JOBS];
	char names[MAX_JOBS][JOBCONF_MAX_NAME + 1];
	size_t n;
};

static void jobs_release(struct jobs *j)
{
	for (size_t i = 0; i < j->n; i++)
		free(j->v[i].runs);
}

static int add_job(struct jobs *j, const char *name, long runs)
{
	if (j->n == MAX_JOBS)
		return 0;
	struct report_job *rj = &j->v[j->n];
	snprintf(j->names[j->n], sizeof(j->names[0]), "%s", name);
	*rj = (struct report_job){ .name = j->names[j->n] };
	int r = runlog_read(name, (size_t)runs, &rj->runs, &rj->nruns);
	if (r >= 0)
		j->n++;
	return r;
}

/* Whether job name's file names the repository repo (as given). */
static bool job_of(const char *name, const char *repo)
{
	char path[4096];
	struct jobconf c;
	jobconf_init(&c);
	bool mine = jobconf_path(path, sizeof(path), name) >= 0 && jobconf_load(&c, path) >= 0 &&
	            strcmp(c.repository, repo) == 0;
	jobconf_release(&c);
	return mine;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Every job with a history in the state directory whose file names repo. */
static int find_jobs(struct jobs *j, const char *repo, long runs)
{
	_cleanup_closedir_ DIR *d = opendir(jobconf_state_dir());
	char *names[MAX_JOBS];
	size_t n = 0;
	int r = 0;
	if (!d)
		return 0; /* no run recorded yet */
	for (struct dirent *de; n < MAX_JOBS && (de = readdir(d));) {
		size_t len = strlen(de->d_name);
		char name[JOBCONF_MAX_NAME + 1];
		if (len <= 5 || len - 5 > JOBCONF_MAX_NAME || strcmp(de->d_name + len - 5, ".runs"))
			continue;
		snprintf(name, sizeof(name), "%.*s", (int)(len - 5), de->d_name);
		if (job_of(name, repo) && !(names[n++] = strdup(name)))
			return cairn_err_set(-ENOMEM, "out of memory");
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (r >= 0)
			r = add_job(j, names[i], runs);
		free(names[i]);
	}
	return r;
}

/* ---- the page ------------------------------------------------------------- */

static int cmp_time(const void *a, const void *b)
{
	const struct cairn_snapshot *x = *(struct cairn_snapshot *const *)a;
	const struct cairn_snapshot *y = *(struct cairn_snapshot *const *)b;
	return x->time_ns < y->time_ns ? -1 : x->time_ns > y->time_ns;
}

/* The page into path, made as a new file is (0666 less the umask): it is meant
 * to be looked at, maybe served. */
static int write_page(const char *path, const struct report_data *d)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	if (!f)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = report_html(f, d);
	if (fclose(f) != 0 && r >= 0)
		r = cairn_err_set(-ENOMEM, "out of memory");
	mode_t mask = umask(0);
	umask(mask);
	if (r >= 0)
		r = cli_write_output_file(path, text, len, 0666 & ~mask);
	free(text);
	return r;
}

static int report(cairn_repo *repo, struct report_opts *o)
{
	struct cairn_snapshot **list = NULL;
	struct jobs jobs = { .n = 0 };
	const char *given = NULL;
	size_t n = 0;

	o->st->repo = cairn_repo_path(repo);
	int r = status_evaluate(repo, o->st);
	if (r >= 0)
		r = cairn_repo_snapshot_list(repo, &list, &n);
	if (r >= 0 && n)
		qsort(list, n, sizeof(*list), cmp_time);
	for (size_t i = 0; r >= 0 && i < o->njobs; i++)
		r = add_job(&jobs, o->jobs[i], o->runs);
	if (r >= 0 && !o->njobs && cli_repo_path(&given) >= 0)
		r = find_jobs(&jobs, given, o->runs);
	struct report_data d = {
		.repo = o->st->repo,
		.snaps = list,
		.nsnaps = n,
		.status = o->st,
		.jobs = jobs.v,
		.njobs = jobs.n,
		.now = o->st->now,
	};
	if (r >= 0)
		r = write_page(o->html, &d);
	jobs_release(&jobs);
	cairn_snapshot_list_free(list, n);
	return r;
}

int cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "html", required_argument, NULL, OPT_HTML },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "runs", required_argument, NULL, OPT_RUNS },
		{ "s3", required_argument, NULL, OPT_S3 },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "check-max-age", required_argument, NULL, OPT_MAX_AGE },
		{ 0 },
	};
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	struct status_report st;
	struct report_opts o = { .runs = 30, .st = &st };
	struct jobconf c;

	status_init(&st);
	int i = cli_parse(argc, argv, NULL, longopts, usage, handle, &o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("report: unexpected argument '%s'", argv[i]);
	if (!o.html)
		return cli_usage_error("report: give --html FILE");
	jobconf_init(&c);
	int r = o.njobs ? status_apply_job(o.jobs[0], &c, &st) : 0;
	if (r >= 0)
		r = cli_open_repo(&repo, &ro);
	if (r >= 0)
		r = report(repo, &o);
	int rc = r < 0 ? cli_fail(r) : 0;
	if (r >= 0 && cairn_log_get_level() >= CAIRN_LOG_NOTICE)
		printf("report written to %s\n", o.html);
	jobconf_release(&c);
	return rc;
}
