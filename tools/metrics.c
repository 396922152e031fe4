/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The cairn_backup_* metric families, in the text exposition format. */
#include "metrics.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cleanup.h"

void metrics_label_escape(char *out, size_t size, const char *s)
{
	size_t k = 0, left = strlen(s);
	while (left) {
		/* The exposition format wants UTF-8: a byte that is not (a Latin-1
		 * path) would make the whole file invalid, so it is U+FFFD. */
		size_t u = cairn_utf8_len(s, left);
		const char *c = u ? s : "\xef\xbf\xbd";
		size_t w = u ? u : 3;
		bool esc = u == 1 && (*s == '\\' || *s == '"' || *s == '\n');
		if (k + w + esc >= size) /* never a character cut in two */
			break;
		if (esc) {
			out[k++] = '\\';
			out[k++] = *s == '\n' ? 'n' : *s;
		} else {
			memcpy(out + k, c, w);
			k += w;
		}
		s += u ? u : 1;
		left -= u ? u : 1;
	}
	out[k] = '\0';
}

double metrics_old_value(const char *text, const char *name, const char *labels)
{
	size_t n = strlen(name), l = strlen(labels);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, name, n) == 0 && p[n] == '{' && strncmp(p + n + 1, labels, l) == 0 &&
		    strncmp(p + n + 1 + l, "} ", 2) == 0)
			return strtod(p + n + l + 3, NULL);
	return 0;
}

struct family {
	const char *name; /* after cairn_backup_ */
	const char *type;
	const char *help;
};

/* Names follow the Prometheus conventions: the base unit last and plural
 * (_seconds, _bytes, _files), _timestamp_seconds for times, _total for
 * counters only. Gauges describe the last backup. */
enum {
	F_LAST_SUCCESS,
	F_LAST_RUN,
	F_SUCCESS,
	F_DURATION,
	F_NEW,
	F_CHANGED,
	F_UNMODIFIED,
	F_PROCESSED,
	F_ADDED,
	F_ERRORS,
	F_SNAPSHOTS,
	F_RUNS,
	F_FAILURES,
	F_N
};
static const struct family families[F_N] = {
	{ "last_success_timestamp_seconds", "gauge",
	  "Time of the last backup that wrote a snapshot." },
	{ "last_run_timestamp_seconds", "gauge", "Time the last backup ended, failed or not." },
	{ "success", "gauge", "1 if the last backup wrote a snapshot, else 0." },
	{ "duration_seconds", "gauge", "Duration of the last backup." },
	{ "new_files", "gauge", "New files in the last backup." },
	{ "changed_files", "gauge", "Changed files in the last backup." },
	{ "unmodified_files", "gauge", "Unmodified files in the last backup." },
	{ "processed_bytes", "gauge", "Bytes read by the last backup." },
	{ "added_bytes", "gauge", "Bytes stored (compressed, encrypted) by the last backup." },
	{ "errors", "gauge", "Paths and entries the last backup could not read." },
	{ "snapshots", "gauge", "Snapshots in the repository." },
	{ "runs_total", "counter", "Backups run, failed or not." },
	{ "failures_total", "counter", "Backups that wrote no snapshot." },
};

static int sample(struct cairn_buf *b, int f, const char *labels, const char *value)
{
	const struct family *m = &families[f];
	return cairn_buf_printf(b,
	                        "# HELP cairn_backup_%s %s\n# TYPE cairn_backup_%s %s\n"
	                        "cairn_backup_%s{%s} %s\n",
	                        m->name, m->help, m->name, m->type, m->name, labels, value);
}

/* By method: one family with a second label, and the payload bytes. */
static int requests(struct cairn_buf *b, const char *labels, const struct cairn_storage_stats *s)
{
	int r = cairn_buf_printf(b, "# HELP cairn_backup_requests Requests the last backup sent to "
	                            "the storage (retries included), by method.\n"
	                            "# TYPE cairn_backup_requests gauge\n");
	for (int m = 0; r >= 0 && m < CAIRN_STORAGE_METHODS; m++)
		r = cairn_buf_printf(b, "cairn_backup_requests{%s,method=\"%s\"} %llu\n", labels,
		                     cairn_storage_method_name(m),
		                     (unsigned long long)s->requests[m]);
	if (r >= 0)
		r = cairn_buf_printf(
		        b,
		        "# HELP cairn_backup_uploaded_bytes Payload bytes the last backup sent to "
		        "the "
		        "storage.\n# TYPE cairn_backup_uploaded_bytes gauge\n"
		        "cairn_backup_uploaded_bytes{%s} %llu\n"
		        "# HELP cairn_backup_downloaded_bytes Payload bytes the last backup "
		        "received "
		        "from the storage.\n# TYPE cairn_backup_downloaded_bytes gauge\n"
		        "cairn_backup_downloaded_bytes{%s} %llu\n",
		        labels, (unsigned long long)s->bytes_up, labels,
		        (unsigned long long)s->bytes_down);
	return r < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

static double old(const char *text, int f, const char *labels)
{
	char name[96];
	snprintf(name, sizeof(name), "cairn_backup_%s", families[f].name);
	return metrics_old_value(text, name, labels);
}

/* repo="...", after cairn_job="..." for a job's backup: two jobs that back up
 * into one repository (one metrics file each) write two series, not the same
 * one twice, which the node exporter would drop one of. */
static void backup_labels(char *out, size_t size, const struct metrics_backup *m)
{
	char repo[1100], job[1100];
	metrics_label_escape(repo, sizeof(repo), m->repo ? m->repo : "");
	if (m->job) {
		metrics_label_escape(job, sizeof(job), m->job);
		snprintf(out, size, "cairn_job=\"%s\",repo=\"%s\"", job, repo);
	} else {
		snprintf(out, size, "repo=\"%s\"", repo);
	}
}

int metrics_backup_format(struct cairn_buf *b, const struct metrics_backup *m, const char *text)
{
	static const struct cairn_snapshot_summary none = { 0 };
	const struct cairn_snapshot_summary *s = m->summary ? m->summary : &none;
	char v[F_N][64], labels[2400];
	double now = (double)time(NULL);

	backup_labels(labels, sizeof(labels), m);
	snprintf(v[F_LAST_SUCCESS], 64, "%.0f", m->ok ? now : old(text, F_LAST_SUCCESS, labels));
	snprintf(v[F_LAST_RUN], 64, "%.0f", now);
	snprintf(v[F_SUCCESS], 64, "%d", m->ok);
	snprintf(v[F_DURATION], 64, "%.3f", m->duration);
	snprintf(v[F_NEW], 64, "%llu", (unsigned long long)s->files_new);
	snprintf(v[F_CHANGED], 64, "%llu", (unsigned long long)s->files_changed);
	snprintf(v[F_UNMODIFIED], 64, "%llu", (unsigned long long)s->files_unmodified);
	snprintf(v[F_PROCESSED], 64, "%llu", (unsigned long long)s->bytes_read);
	snprintf(v[F_ADDED], 64, "%llu", (unsigned long long)s->bytes_added);
	snprintf(v[F_ERRORS], 64, "%u", s->errors);
	if (m->snapshots >= 0)
		snprintf(v[F_SNAPSHOTS], 64, "%lld", (long long)m->snapshots);
	else
		snprintf(v[F_SNAPSHOTS], 64, "%.0f", old(text, F_SNAPSHOTS, labels));
	snprintf(v[F_RUNS], 64, "%.0f", old(text, F_RUNS, labels) + 1);
	snprintf(v[F_FAILURES], 64, "%.0f", old(text, F_FAILURES, labels) + !m->ok);
	for (int f = 0; f < F_N; f++)
		if (sample(b, f, labels, v[f]) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
	return m->requests ? requests(b, labels, m->requests) : 0;
}

int metrics_backup_write(const char *path, const struct metrics_backup *m)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	/* An unreadable previous file only costs the remembered values. */
	bool have_old = cli_metrics_read(path, &text) >= 0 && text.data;
	int r = metrics_backup_format(&b, m, have_old ? (const char *)text.data : "");
	/* 0644: node_exporter's textfile collector runs as another user. */
	if (r >= 0)
		r = cli_write_output_file(path, b.data, b.len, 0644);
	return r;
}
