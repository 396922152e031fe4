/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Status line, JSON messages, summary and metrics of a backup. */
#include "progress.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "metrics.h"
#include "cleanup.h"

struct progress {
	struct archiver_stats st;
	bool json, tty, dry_run;
	struct timespec start;
	pthread_t thread;
	bool running;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	bool stop;         /* protected by lock */
	int64_t snapshots; /* -1 until known */
	struct cairn_storage_stats req;
	bool have_req, remote;
};

void progress_set_snapshots(struct progress *pg, uint64_t n)
{
	pg->snapshots = (int64_t)n;
}

void progress_set_requests(struct progress *pg, const struct cairn_storage_stats *s, bool remote)
{
	pg->req = *s;
	pg->have_req = true;
	pg->remote = remote;
}

static uint64_t total_requests(const struct cairn_storage_stats *s)
{
	uint64_t n = 0;
	for (int m = 0; m < CAIRN_STORAGE_METHODS; m++)
		n += s->requests[m];
	return n;
}

/* "sent 9 requests (3 GET, 4 PUT, 2 LIST), uploaded 1.2 MiB" for a remote storage. */
static void print_requests_text(const struct progress *pg)
{
	char up[32], down[32];
	const char *sep = "";
	if (!pg->have_req || !pg->remote)
		return;
	uint64_t n = total_requests(&pg->req);
	printf("sent %llu %s (", (unsigned long long)n, cli_plural(n, "request", "requests"));
	for (int m = 0; m < CAIRN_STORAGE_METHODS; m++)
		if (pg->req.requests[m]) {
			printf("%s%llu %s", sep, (unsigned long long)pg->req.requests[m],
			       cairn_storage_method_name(m));
			sep = ", ";
		}
	printf("), uploaded %s, downloaded %s\n", cli_fmt_bytes(up, sizeof(up), pg->req.bytes_up),
	       cli_fmt_bytes(down, sizeof(down), pg->req.bytes_down));
}

/* ,"requests":{"GET":1,...,"total":9},"bytes_uploaded":..,"bytes_downloaded":.. */
static void print_requests_json(const struct progress *pg)
{
	if (!pg->have_req)
		return;
	fputs(",\"requests\":{", stdout);
	for (int m = 0; m < CAIRN_STORAGE_METHODS; m++)
		printf("\"%s\":%llu,", cairn_storage_method_name(m),
		       (unsigned long long)pg->req.requests[m]);
	printf("\"total\":%llu},\"bytes_uploaded\":%llu,\"bytes_downloaded\":%llu",
	       (unsigned long long)total_requests(&pg->req), (unsigned long long)pg->req.bytes_up,
	       (unsigned long long)pg->req.bytes_down);
}

struct progress *progress_new(bool json, bool dry_run, bool list)
{
	struct progress *pg = calloc(1, sizeof(*pg));
	if (!pg)
		return NULL;
	archiver_stats_init(&pg->st);
	pg->json = json;
	pg->dry_run = dry_run;
	pg->snapshots = -1;
	pg->tty = !json && !list && isatty(STDERR_FILENO) &&
	          cairn_log_get_level() >= CAIRN_LOG_NOTICE;
	pthread_mutex_init(&pg->lock, NULL);
	pthread_cond_init(&pg->wake, NULL);
	clock_gettime(CLOCK_MONOTONIC, &pg->start);
	return pg;
}

void progress_free(struct progress *pg)
{
	if (!pg)
		return;
	archiver_stats_release(&pg->st);
	pthread_mutex_destroy(&pg->lock);
	pthread_cond_destroy(&pg->wake);
	free(pg);
}

bool progress_wants_scan(const struct progress *pg)
{
	return pg->json || pg->tty;
}

struct archiver_stats *progress_stats(struct progress *pg)
{
	return &pg->st;
}

static double elapsed(const struct progress *pg)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - pg->start.tv_sec) +
	       (double)(now.tv_nsec - pg->start.tv_nsec) / 1e9;
}

struct snap_counts {
	uint64_t files, files_total, bytes, bytes_total, errors;
	bool scan_done;
	double secs, rate, eta, pct;
};

static void counts(struct progress *pg, struct snap_counts *c)
{
	struct archiver_stats *st = &pg->st;
	c->files = atomic_load(&st->files_done);
	c->bytes = atomic_load(&st->bytes_done);
	c->files_total = atomic_load(&st->files_total);
	c->bytes_total = atomic_load(&st->bytes_total);
	c->scan_done = atomic_load(&st->scan_done);
	c->errors = atomic_load(&st->errors);
	c->secs = elapsed(pg);
	c->rate = c->secs > 0 ? (double)c->bytes / c->secs : 0;
	c->pct = c->bytes_total ? 100.0 * (double)c->bytes / (double)c->bytes_total : 0;
	if (c->pct > 100)
		c->pct = 100;
	c->eta = c->scan_done && c->rate > 0 && c->bytes_total > c->bytes
	                 ? (double)(c->bytes_total - c->bytes) / c->rate
	                 : -1;
}

static void fmt_dur(char *b, size_t n, double s)
{
	long t = s < 0 ? 0 : (long)s;
	if (t >= 3600)
		snprintf(b, n, "%ld:%02ld:%02ld", t / 3600, t / 60 % 60, t % 60);
	else
		snprintf(b, n, "%ld:%02ld", t / 60, t % 60);
}

/* The last size - 1 bytes of raw with its control characters escaped: a file
 * name must not drive the terminal the status line is drawn on. */
static void escape_tail(char *out, size_t size, const char *raw)
{
	char *text = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&text, &len);
	out[0] = '\0';
	if (!f)
		return;
	cairn_text_name(f, raw, strlen(raw));
	if (fclose(f) == 0)
		snprintf(out, size, "%s", len < size ? text : text + len - (size - 1));
	free(text);
}

/* Append "  LABEL PATH" to line (length *n, capacity size) in at most room bytes,
 * cutting the path at the front: its tail (the file name) matters most. */
static void put_path(char *line, size_t size, size_t *n, size_t room, const char *label,
                     const char *raw)
{
	char path[1024];
	escape_tail(path, sizeof(path), raw);
	size_t len = strlen(path), fixed = strlen(label) + 3;
	if (!path[0] || room < fixed + 8 || *n + room >= size)
		return;
	if (fixed + len <= room)
		*n += (size_t)snprintf(line + *n, size - *n, "  %s %s", label, path);
	else
		*n += (size_t)snprintf(line + *n, size - *n, "  %s ...%s", label,
		                       path + len - (room - fixed - 3));
}

static void print_tty(struct progress *pg)
{
	struct snap_counts c;
	char cur[512], last[512], bd[32], bt[32], rt[32], el[48], eta[48] = "?", line[1400];
	struct winsize ws = { 0 };
	counts(pg, &c);
	pthread_mutex_lock(&pg->st.lock);
	snprintf(cur, sizeof(cur), "%s", pg->st.current);
	snprintf(last, sizeof(last), "%s", pg->st.last_dir);
	pthread_mutex_unlock(&pg->st.lock);
	fmt_dur(el, sizeof(el), c.secs);
	if (c.eta >= 0)
		fmt_dur(eta, sizeof(eta), c.eta);
	cli_fmt_bytes(bd, sizeof(bd), c.bytes);
	cli_fmt_bytes(bt, sizeof(bt), c.bytes_total);
	cli_fmt_bytes(rt, sizeof(rt), (uint64_t)c.rate);
	int k = snprintf(line, sizeof(line),
	                 "[%s] %5.1f%%  %llu/%llu%s files  %s/%s%s  %s/s  ETA %s  %llu %s", el,
	                 c.pct, (unsigned long long)c.files, (unsigned long long)c.files_total,
	                 c.scan_done ? "" : "+", bd, bt, c.scan_done ? "" : "+", rt, eta,
	                 (unsigned long long)c.errors, cli_plural(c.errors, "error", "errors"));
	size_t n = k > 0 && (size_t)k < sizeof(line) ? (size_t)k : 0;
	ioctl(STDERR_FILENO, TIOCGWINSZ, &ws);
	size_t width = ws.ws_col ? ws.ws_col : 80;
	if (width > sizeof(line))
		width = sizeof(line);
	/* The rest of the line: the file being read, then the last directory
	 * finished (a third of the room when both are shown). */
	size_t room = n + 1 < width ? width - 1 - n : 0;
	size_t dir_room = cur[0] && last[0] ? room / 3 : room;
	put_path(line, sizeof(line), &n, room - (cur[0] && last[0] ? dir_room : 0), "reading", cur);
	put_path(line, sizeof(line), &n, width - 1 > n ? width - 1 - n : 0, "last dir", last);
	line[width - 1 < n ? width - 1 : n] = '\0';
	fprintf(stderr, "\r\033[K%s", line);
	fflush(stderr);
}

static void print_json_status(struct progress *pg)
{
	struct snap_counts c;
	char cur[512], last[512];
	counts(pg, &c);
	pthread_mutex_lock(&pg->st.lock);
	snprintf(cur, sizeof(cur), "%s", pg->st.current);
	snprintf(last, sizeof(last), "%s", pg->st.last_dir);
	pthread_mutex_unlock(&pg->st.lock);
	flockfile(stdout); /* one line, not mixed with --list's */
	printf("{\"message_type\":\"status\",\"seconds_elapsed\":%.3f,\"percent_done\":%.2f,"
	       "\"files_done\":%llu,\"files_total\":%llu,\"bytes_done\":%llu,\"bytes_total\":%llu,"
	       "\"total_complete\":%s,\"bytes_per_second\":%.0f,\"seconds_remaining\":%.0f,"
	       "\"errors\":%llu,\"current_file\":",
	       c.secs, c.pct, (unsigned long long)c.files, (unsigned long long)c.files_total,
	       (unsigned long long)c.bytes, (unsigned long long)c.bytes_total,
	       c.scan_done ? "true" : "false", c.rate, c.eta, (unsigned long long)c.errors);
	cli_json_str(stdout, cur, strlen(cur));
	fputs(",\"last_dir\":", stdout);
	cli_json_str(stdout, last, strlen(last));
	fputs("}\n", stdout);
	fflush(stdout);
	funlockfile(stdout);
}

void progress_list(const char *path, enum archiver_fate fate, const char *rule, void *payload)
{
	static const char *const names[] = { "new", "changed", "unmodified", "excluded" };
	const struct progress *pg = payload;
	flockfile(stdout);
	if (pg->json) {
		printf("{\"message_type\":\"verbose_status\",\"action\":\"%s\",\"item\":",
		       names[fate]);
		cli_json_str(stdout, path, strlen(path));
		if (rule) {
			fputs(",\"rule\":", stdout);
			cli_json_str(stdout, rule, strlen(rule));
		}
		fputs("}\n", stdout);
	} else {
		printf("%-10s ", names[fate]);
		cairn_text_name(stdout, path, strlen(path));
		if (rule) {
			fputs(" (", stdout);
			cairn_text_str(stdout, rule, strlen(rule));
			fputc(')', stdout);
		}
		fputc('\n', stdout);
	}
	funlockfile(stdout);
}

static void *refresh(void *arg)
{
	struct progress *pg = arg;
	/* A few times a second on a terminal; once a second for scripts. */
	long step_ms = pg->tty ? 250 : 1000;
	pthread_mutex_lock(&pg->lock);
	while (!pg->stop) {
		struct timespec t;
		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += step_ms * 1000000;
		t.tv_sec += t.tv_nsec / 1000000000;
		t.tv_nsec %= 1000000000;
		pthread_cond_timedwait(&pg->wake, &pg->lock, &t);
		if (pg->stop)
			break;
		pthread_mutex_unlock(&pg->lock);
		if (pg->tty)
			print_tty(pg);
		else
			print_json_status(pg);
		pthread_mutex_lock(&pg->lock);
	}
	pthread_mutex_unlock(&pg->lock);
	return NULL;
}

void progress_start(struct progress *pg)
{
	clock_gettime(CLOCK_MONOTONIC, &pg->start);
	if ((pg->tty || pg->json) && pthread_create(&pg->thread, NULL, refresh, pg) == 0)
		pg->running = true;
}

void progress_stop(struct progress *pg)
{
	if (!pg->running)
		return;
	pthread_mutex_lock(&pg->lock);
	pg->stop = true;
	pthread_cond_signal(&pg->wake);
	pthread_mutex_unlock(&pg->lock);
	pthread_join(pg->thread, NULL);
	pg->running = false;
	if (pg->tty)
		fputs("\r\033[K", stderr);
}

/* ---- the outcome -------------------------------------------------------- */

static void print_summary_text(struct progress *pg, const struct cairn_snapshot *s)
{
	const struct cairn_snapshot_summary *m = &s->summary;
	char added[32], read[32], el[48], hex[CAIRN_ID_HEX_SIZE];

	cli_fmt_bytes(added, sizeof(added), m->bytes_added);
	cli_fmt_bytes(read, sizeof(read), m->bytes_read);
	fmt_dur(el, sizeof(el), elapsed(pg));
	printf("files: %llu new, %llu changed, %llu unmodified; %llu %s\n",
	       (unsigned long long)m->files_new, (unsigned long long)m->files_changed,
	       (unsigned long long)m->files_unmodified, (unsigned long long)m->dirs,
	       cli_plural(m->dirs, "directory", "directories"));
	printf("read %s, added %s in %llu %s, took %s\n", read, added,
	       (unsigned long long)m->blobs_added, cli_plural(m->blobs_added, "blob", "blobs"), el);
	if (pg->dry_run) {
		printf("dry run: no snapshot written\n");
		return;
	}
	cairn_id_hex(hex, &s->id);
	if (m->partial)
		printf("snapshot %.8s saved, partial: %u %s\n", hex, m->errors,
		       cli_plural(m->errors, "entry could not be read",
		                  "entries could not be read"));
	else
		printf("snapshot %.8s saved\n", hex);
}

static void print_summary_json(struct progress *pg, const struct cairn_snapshot *s)
{
	const struct cairn_snapshot_summary *m = &s->summary;
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, &s->id);
	printf("{\"message_type\":\"summary\",\"command\":\"backup\",\"snapshot_id\":");
	if (pg->dry_run)
		fputs("null", stdout);
	else
		printf("\"%s\"", hex);
	printf(",\"dry_run\":%s,\"files_new\":%llu,\"files_changed\":%llu,"
	       "\"files_unmodified\":%llu,\"dirs\":%llu,\"bytes_read\":%llu,\"bytes_added\":%llu,"
	       "\"blobs_added\":%llu,\"errors\":%u,\"warnings\":%llu,\"partial\":%s,"
	       "\"seconds_elapsed\":%.3f",
	       pg->dry_run ? "true" : "false", (unsigned long long)m->files_new,
	       (unsigned long long)m->files_changed, (unsigned long long)m->files_unmodified,
	       (unsigned long long)m->dirs, (unsigned long long)m->bytes_read,
	       (unsigned long long)m->bytes_added, (unsigned long long)m->blobs_added, m->errors,
	       (unsigned long long)atomic_load(&pg->st.warnings), m->partial ? "true" : "false",
	       elapsed(pg));
	print_requests_json(pg);
	fputs("}\n", stdout);
}

int progress_finish(struct progress *pg, int r, const struct cairn_snapshot *snap,
                    const char *metrics_path, const char *repo, const char *job)
{
	int rc = r < 0 ? EXIT_ERROR : snap->summary.partial ? EXIT_PARTIAL : 0;

	if (r < 0) {
		log_error("backup failed: %s", cairn_err_msg());
		if (pg->json) {
			fputs("{\"message_type\":\"error\",\"error\":", stdout);
			cli_json_str(stdout, cairn_err_msg(), strlen(cairn_err_msg()));
			fputs("}\n", stdout);
		}
	} else if (pg->json) {
		print_summary_json(pg, snap);
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE) {
		print_summary_text(pg, snap);
		print_requests_text(pg);
	}
	fflush(stdout);
	struct metrics_backup m = {
		.repo = repo,
		.job = job,
		.ok = r >= 0,
		.duration = elapsed(pg),
		.summary = &snap->summary,
		.snapshots = pg->snapshots,
		.requests = pg->have_req ? &pg->req : NULL,
	};
	/* A dry run writes no snapshot and says nothing about the last backup.
	 * After a snapshot, 1 would say there is none (a wrapper would retry): the
	 * snapshot stands, and 3 says that not everything went right. */
	if (metrics_path && !pg->dry_run && metrics_backup_write(metrics_path, &m) < 0) {
		log_warn("%scannot write metrics: %s", r < 0 ? "" : "snapshot saved, but ",
		         cairn_err_msg());
		if (rc == 0)
			rc = EXIT_PARTIAL;
	}
	return rc;
}
