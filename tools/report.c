/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The HTML page of cairn report: inline SVG charts drawn here, no script. */
#include "report.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "cleanup.h"

#define CHART_W 960
#define MARGIN_L 150
#define MARGIN_R 30
#define MARGIN_T 16
#define MARGIN_B 34

/* ---- text --------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (n bytes left) of a character that
 * can be shown: 0 for an invalid one, a control character or a C1 one. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	if (s[0] >= 0x20 && s[0] < 0x7f)
		return 1;
	size_t len = s[0] >= 0xf0 && s[0] < 0xf5 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 ? 2 : 0;
	if (s[0] >= 0xf5 || len == 0 || len > n)
		return 0;
	for (size_t i = 1; i < len; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	if ((len == 3 && s[0] == 0xe0 && s[1] < 0xa0) ||
	    (len == 4 && s[0] == 0xf0 && s[1] < 0x90) ||
	    (len == 4 && s[0] == 0xf4 && s[1] >= 0x90) ||
	    (len == 3 && s[0] == 0xed && s[1] >= 0xa0))
		return 0; /* overlong, past U+10FFFF, or a surrogate */
	if (len == 2 && s[0] == 0xc2 && s[1] < 0xa0)
		return 0; /* C1 controls */
	return len;
}

/* Text in HTML: markup characters as entities, and every byte that is not part
 * of a printable UTF-8 character as \xNN (a file name or host name may hold
 * any bytes, as cairn's text output shows them). */
static void esc_n(FILE *f, const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	while (n > 0) {
		size_t len = utf8_len(p, n);
		if (len == 0) {
			fprintf(f, "\\x%02x", p[0]);
			len = 1;
		} else if (p[0] == '&') {
			fputs("&amp;", f);
		} else if (p[0] == '<') {
			fputs("&lt;", f);
		} else if (p[0] == '>') {
			fputs("&gt;", f);
		} else if (p[0] == '"') {
			fputs("&quot;", f);
		} else if (p[0] == '\'') {
			fputs("&#39;", f);
		} else {
			fwrite(p, 1, len, f);
		}
		p += len;
		n -= len;
	}
}

static void esc(FILE *f, const char *s)
{
	esc_n(f, s, strlen(s));
}

/* A label cut to about max bytes (never inside a character), with "..." when
 * cut: the whole of it goes into the element's tooltip. */
static void esc_short(FILE *f, const char *s, size_t max)
{
	size_t n = strlen(s), k = 0;
	if (n <= max) {
		esc(f, s);
		return;
	}
	while (k < max) {
		size_t len = utf8_len((const unsigned char *)s + k, n - k);
		k += len ? len : 1;
	}
	esc_n(f, s, k);
	fputs("...", f);
}

static void fmt_time(char *buf, size_t size, int64_t secs, const char *fmt)
{
	struct tm tm;
	time_t t = (time_t)secs;
	if (!localtime_r(&t, &tm) || strftime(buf, size, fmt, &tm) == 0)
		snprintf(buf, size, "%lld", (long long)secs);
}

/* ---- charts ------------------------------------------------------------- */

/* A chart's plot area and what it maps: time across, a value upwards. */
struct chart {
	int h;         /* of the whole SVG */
	double t0, t1; /* seconds */
	double vmax;
};

static double cx(const struct chart *c, double t)
{
	return MARGIN_L + (t - c->t0) / (c->t1 - c->t0) * (CHART_W - MARGIN_L - MARGIN_R);
}

static double cy(const struct chart *c, double v)
{
	double plot = c->h - MARGIN_T - MARGIN_B;
	return MARGIN_T + plot - (c->vmax > 0 ? v / c->vmax : 0) * plot;
}

static void svg_open(FILE *f, const char *id, const char *label, int h)
{
	fprintf(f,
	        "<svg id=\"%s\" class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
	        "width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" role=\"img\" aria-label=\"",
	        id, CHART_W, h, CHART_W, h);
	esc(f, label);
	fputs("\"><title>", f);
	esc(f, label);
	fputs("</title>\n", f);
}

/* Five dates along the bottom, and the frame of the plot. */
static void time_axis(FILE *f, const struct chart *c)
{
	int bottom = c->h - MARGIN_B;
	fprintf(f, "<line class=\"axis\" x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\"/>\n", MARGIN_L,
	        bottom, CHART_W - MARGIN_R, bottom);
	for (int i = 0; i <= 4; i++) {
		double t = c->t0 + (c->t1 - c->t0) * i / 4;
		char label[32];
		fmt_time(label, sizeof(label), (int64_t)t, "%Y-%m-%d %H:%M");
		fprintf(f,
		        "<line class=\"grid\" x1=\"%.1f\" y1=\"%d\" x2=\"%.1f\" y2=\"%d\"/>"
		        "<text class=\"tick\" x=\"%.1f\" y=\"%d\" text-anchor=\"%s\">%s</text>\n",
		        cx(c, t), MARGIN_T, cx(c, t), bottom, cx(c, t), bottom + 18,
		        i == 0   ? "start"
		        : i == 4 ? "end"
		                 : "middle",
		        label);
	}
}

/* Four values up the left side: bytes, or percent when bytes is false. */
static void value_axis(FILE *f, const struct chart *c, bool bytes)
{
	for (int i = 0; i <= 4; i++) {
		double v = c->vmax * i / 4;
		char label[32];
		if (bytes)
			cli_fmt_bytes(label, sizeof(label), (uint64_t)v);
		else
			snprintf(label, sizeof(label), "%.0f%%", v);
		fprintf(f,
		        "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
		        "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%s</text>\n",
		        MARGIN_L, cy(c, v), CHART_W - MARGIN_R, cy(c, v), MARGIN_L - 6,
		        cy(c, v) + 4, label);
	}
}

static double snap_secs(const struct cairn_snapshot *s)
{
	return (double)s->time_ns / 1e9;
}

/* The time range of the snapshots, an hour either side of a single moment. */
static void time_range(const struct report_data *d, struct chart *c)
{
	c->t0 = d->nsnaps ? snap_secs(d->snaps[0]) : (double)d->now;
	c->t1 = d->nsnaps ? snap_secs(d->snaps[d->nsnaps - 1]) : (double)d->now;
	if (c->t1 - c->t0 < 60) {
		c->t0 -= 3600;
		c->t1 += 3600;
	}
}

/* ---- snapshots over time, per host and per tag --------------------------- */

struct row {
	const char *label;
	bool tag; /* a tag's row, else a host's */
};

static bool has_row(const struct row *rows, size_t n, const char *label, bool tag)
{
	for (size_t i = 0; i < n; i++)
		if (rows[i].tag == tag && strcmp(rows[i].label, label) == 0)
			return true;
	return false;
}

static bool in_row(const struct cairn_snapshot *s, const struct row *r)
{
	if (!r->tag)
		return strcmp(s->hostname, r->label) == 0;
	for (size_t i = 0; i < s->ntags; i++)
		if (strcmp(s->tags[i], r->label) == 0)
			return true;
	return false;
}

/* One row per host, then one per tag, in order of first appearance. */
static int collect_rows(const struct report_data *d, struct row **out, size_t *n)
{
	size_t cap = 1, k = 0;
	for (size_t i = 0; i < d->nsnaps; i++)
		cap += 1 + d->snaps[i]->ntags;
	struct row *rows = calloc(cap, sizeof(*rows));
	if (!rows)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < d->nsnaps; i++) {
			const struct cairn_snapshot *s = d->snaps[i];
			for (size_t t = 0; t < (pass ? s->ntags : 1); t++) {
				const char *label = pass ? s->tags[t] : s->hostname;
				if (!has_row(rows, k, label, pass))
					rows[k++] = (struct row){ label, pass };
			}
		}
	*out = rows;
	*n = k;
	return 0;
}

static void snapshot_dot(FILE *f, const struct chart *c, const struct cairn_snapshot *s, double y)
{
	char hex[CAIRN_ID_HEX_SIZE], when[32];
	cairn_id_hex(hex, &s->id);
	fmt_time(when, sizeof(when), s->time_ns / 1000000000, "%Y-%m-%d %H:%M:%S");
	fprintf(f, "<circle class=\"snap%s\" cx=\"%.1f\" cy=\"%.1f\" r=\"5\"><title>%.8s %s",
	        s->summary.partial ? " partial" : "", cx(c, snap_secs(s)), y, hex, when);
	if (s->summary.partial)
		fputs(" (partial)", f);
	fputs("</title></circle>\n", f);
}

static int snapshots_chart(FILE *f, const struct report_data *d)
{
	_cleanup_free_ struct row *rows = NULL;
	size_t nrows = 0;
	int r = collect_rows(d, &rows, &nrows);
	if (r < 0)
		return r;
	struct chart c = { .h = MARGIN_T + MARGIN_B + 28 * (int)(nrows ? nrows : 1) };
	time_range(d, &c);
	fputs("<section id=\"snapshots\"><h2>Snapshots over time</h2>\n", f);
	svg_open(f, "chart-snapshots", "snapshots over time, per host and per tag", c.h);
	time_axis(f, &c);
	for (size_t i = 0; i < nrows; i++) {
		double y = MARGIN_T + 14 + 28 * (double)i;
		const char *kind = rows[i].tag ? "tag" : "host";
		fprintf(f,
		        "<text class=\"row %s\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\"><title>%s ",
		        kind, MARGIN_L - 8, y + 4, kind);
		esc(f, rows[i].label);
		fprintf(f, "</title>%s ", kind);
		esc_short(f, rows[i].label, 16);
		fputs("</text>\n", f);
		for (size_t k = 0; k < d->nsnaps; k++)
			if (in_row(d->snaps[k], &rows[i]))
				snapshot_dot(f, &c, d->snaps[k], y);
	}
	fprintf(f,
	        "</svg>\n<p class=\"note\">%zu %s; a hollow dot is a partial "
	        "snapshot (some paths or files could not be read).</p></section>\n",
	        d->nsnaps, cli_plural(d->nsnaps, "snapshot", "snapshots"));
	return 0;
}

/* ---- repository size and deduplication ---------------------------------- */

static void polyline(FILE *f, const char *cls, const double *t, const double *v, size_t n,
                     const struct chart *c)
{
	fprintf(f, "<polyline class=\"%s\" points=\"", cls);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s%.1f,%.1f", i ? " " : "", cx(c, t[i]), cy(c, v[i]));
	fputs("\"/>\n", f);
}

/* Sums of the snapshots' summaries: what the backups read, and what they stored
 * (compressed and encrypted, before any prune). */
static int size_chart(FILE *f, const struct report_data *d)
{
	size_t n = d->nsnaps;
	_cleanup_free_ double *t = calloc(n ? n : 1, sizeof(double));
	_cleanup_free_ double *added = calloc(n ? n : 1, sizeof(double));
	_cleanup_free_ double *read = calloc(n ? n : 1, sizeof(double));
	struct chart c = { .h = 260 };
	if (!t || !added || !read)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		t[i] = snap_secs(d->snaps[i]);
		added[i] = (i ? added[i - 1] : 0) + (double)d->snaps[i]->summary.bytes_added;
		read[i] = (i ? read[i - 1] : 0) + (double)d->snaps[i]->summary.bytes_read;
	}
	time_range(d, &c);
	c.vmax = n && read[n - 1] > added[n - 1] ? read[n - 1] : n ? added[n - 1] : 0;
	if (c.vmax <= 0)
		c.vmax = 1024;
	fputs("<section id=\"size\"><h2>Repository size</h2>\n", f);
	svg_open(f, "chart-size", "bytes stored and bytes read by the backups, summed over time",
	         c.h);
	time_axis(f, &c);
	value_axis(f, &c, true);
	polyline(f, "line read", t, read, n, &c);
	polyline(f, "line added", t, added, n, &c);
	char a[32], rd[32];
	cli_fmt_bytes(a, sizeof(a), n ? (uint64_t)added[n - 1] : 0);
	cli_fmt_bytes(rd, sizeof(rd), n ? (uint64_t)read[n - 1] : 0);
	fprintf(f,
	        "</svg>\n<p class=\"note\"><span class=\"key added\"></span> stored by the "
	        "backups: %s in all (compressed, encrypted; what prune freed is not taken off). "
	        "<span class=\"key read\"></span> read by them: %s (new and changed files).</p>"
	        "</section>\n",
	        a, rd);
	return 0;
}

/* Per backup, the share of what it read that was already stored (or stored in
 * less room): 1 - added / read. A backup that read nothing has no point. */
static int dedup_chart(FILE *f, const struct report_data *d)
{
	struct chart c = { .h = 240, .vmax = 100 };
	uint64_t all_read = 0, all_added = 0;
	time_range(d, &c);
	fputs("<section id=\"dedup\"><h2>Deduplication</h2>\n", f);
	svg_open(f, "chart-dedup", "share of the data read that was not stored again, per backup",
	         c.h);
	time_axis(f, &c);
	value_axis(f, &c, false);
	for (size_t i = 0; i < d->nsnaps; i++) {
		const struct cairn_snapshot_summary *m = &d->snaps[i]->summary;
		all_read += m->bytes_read;
		all_added += m->bytes_added;
		if (m->bytes_read == 0)
			continue;
		double share = 100.0 * (1.0 - (double)m->bytes_added / (double)m->bytes_read);
		share = share < 0 ? 0 : share;
		fprintf(f,
		        "<rect class=\"bar\" x=\"%.1f\" y=\"%.1f\" width=\"6\" height=\"%.1f\">"
		        "<title>%.1f%%</title></rect>\n",
		        cx(&c, snap_secs(d->snaps[i])) - 3, cy(&c, share),
		        cy(&c, 0) - cy(&c, share), share);
	}
	double ratio = all_added ? (double)all_read / (double)all_added : 0;
	fprintf(f,
	        "</svg>\n<p class=\"note\">Of all the data the backups read, they stored one "
	        "part in %.1f (deduplication and compression together). Unchanged files are "
	        "not read at all and are not counted here.</p></section>\n",
	        ratio);
	return 0;
}

/* ---- the 3-2-1-1-0 rule and the last check ------------------------------- */

static void rules_section(FILE *f, const struct status_report *st)
{
	int met = 0;
	fputs("<section id=\"rules\"><h2>3-2-1-1-0</h2>\n<table class=\"rules\">\n"
	      "<tr><th>rule</th><th>met</th><th>why</th></tr>\n",
	      f);
	for (int i = 0; i < RULE_N; i++) {
		met += st->met[i];
		fprintf(f, "<tr class=\"%s\" data-rule=\"%s\"><td>%s</td><td>%s</td><td>",
		        st->met[i] ? "met" : "unmet", status_rule_names[i], status_rule_titles[i],
		        st->met[i] ? "yes" : "no");
		esc(f, st->why[i]);
		fputs("</td></tr>\n", f);
	}
	fprintf(f,
	        "</table>\n<p class=\"note\">%d of %d rules met (as 'cairn status' judges "
	        "them).</p></section>\n",
	        met, RULE_N);
}

static void check_section(FILE *f, const struct status_report *st)
{
	const struct data_check *ck = &st->check;
	char when[32], rd[32], all[32];
	fputs("<section id=\"check\"><h2>Last check</h2>\n", f);
	if (!ck->present) {
		fputs("<p class=\"unmet\">Never checked with --read-data.</p></section>\n", f);
		return;
	}
	fmt_time(when, sizeof(when), ck->time, "%Y-%m-%d %H:%M:%S");
	fprintf(f, "<table class=\"check\"><tr><th>when</th><td>%s</td></tr>\n", when);
	fputs("<tr><th>result</th><td class=\"", f);
	fputs(ck->ok && ck->errors == 0 ? "met\">no damage" : "unmet\">damage found", f);
	fprintf(f, " (%lu %s)</td></tr>\n<tr><th>data read</th><td>", ck->errors,
	        cli_plural(ck->errors, "error", "errors"));
	esc(f, ck->mode);
	if (ck->subset[0]) {
		fputc(' ', f);
		esc(f, ck->subset);
	}
	if (ck->share_known)
		fprintf(f, ": %llu of %llu packs, %s of %s", ck->packs_read, ck->packs,
		        cli_fmt_bytes(rd, sizeof(rd), ck->bytes_read),
		        cli_fmt_bytes(all, sizeof(all), ck->bytes));
	fprintf(f, "%s</td></tr>\n</table></section>\n",
	        ck->read_nothing ? " (read no data: does not count)" : "");
}

/* ---- jobs --------------------------------------------------------------- */

static const char *outcome(int exit_code)
{
	return exit_code == 0 ? "ok" : exit_code == EXIT_PARTIAL ? "partial" : "failed";
}

/* The runs' durations as bars, coloured by outcome, oldest on the left. */
static void runs_chart(FILE *f, const struct report_job *j)
{
	char id[96];
	double max = 1;
	snprintf(id, sizeof(id), "chart-runs-%s", j->name);
	for (size_t i = 0; i < j->nruns; i++)
		max = j->runs[i].seconds > max ? j->runs[i].seconds : max;
	struct chart c = {
		.h = 150, .t0 = 0, .t1 = (double)(j->nruns ? j->nruns : 1), .vmax = max
	};
	svg_open(f, id, "duration of each run, in seconds", c.h);
	for (int i = 0; i <= 2; i++)
		fprintf(f,
		        "<line class=\"grid\" x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\"/>"
		        "<text class=\"tick\" x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.1f "
		        "s</text>\n",
		        MARGIN_L, cy(&c, max * i / 2), CHART_W - MARGIN_R, cy(&c, max * i / 2),
		        MARGIN_L - 6, cy(&c, max * i / 2) + 4, max * i / 2);
	double w = (CHART_W - MARGIN_L - MARGIN_R) / c.t1;
	for (size_t i = 0; i < j->nruns; i++) {
		const struct runlog_run *r = &j->runs[i];
		char when[32];
		fmt_time(when, sizeof(when), r->time, "%Y-%m-%d %H:%M");
		fprintf(f,
		        "<rect class=\"run %s\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" "
		        "height=\"%.1f\"><title>%s: %s, %.1f s</title></rect>\n",
		        outcome(r->exit_code), cx(&c, (double)i) + w * 0.1, cy(&c, r->seconds),
		        w * 0.8, cy(&c, 0) - cy(&c, r->seconds), when, outcome(r->exit_code),
		        r->seconds);
	}
	fputs("</svg>\n", f);
}

static void run_row(FILE *f, const struct runlog_run *r)
{
	char when[32];
	fmt_time(when, sizeof(when), r->time, "%Y-%m-%d %H:%M:%S");
	fprintf(f,
	        "<tr class=\"%s\"><td>%s</td><td>%s</td><td>%d</td><td>%.1f s</td><td>%s</td>"
	        "<td>",
	        outcome(r->exit_code), when, outcome(r->exit_code), r->exit_code, r->seconds,
	        r->snapshot[0] ? r->snapshot : "-");
	for (size_t i = 0; i < r->nsteps; i++) {
		const struct runlog_step *s = &r->steps[i];
		fprintf(f, "<span class=\"step %s\">%s %s", s->result, s->name, s->result);
		if (strcmp(s->result, "skipped") != 0)
			fprintf(f, " %.1f s", s->seconds);
		fputs("</span> ", f);
	}
	fputs("</td></tr>\n", f);
}

static void jobs_section(FILE *f, const struct report_data *d)
{
	fputs("<section id=\"jobs\"><h2>Jobs</h2>\n", f);
	if (!d->njobs)
		fputs("<p class=\"note\">No run of a job of this repository is recorded "
		      "(cairn run writes the history).</p>\n",
		      f);
	for (size_t k = 0; k < d->njobs; k++) {
		const struct report_job *j = &d->jobs[k];
		fputs("<div class=\"job\"><h3>", f);
		esc(f, j->name);
		fprintf(f, "</h3>\n<p class=\"note\">the last %zu %s</p>\n", j->nruns,
		        cli_plural(j->nruns, "run", "runs"));
		runs_chart(f, j);
		fputs("<table class=\"runs\"><tr><th>ended</th><th>outcome</th><th>exit</th>"
		      "<th>duration</th><th>snapshot</th><th>steps</th></tr>\n",
		      f);
		for (size_t i = j->nruns; i-- > 0;)
			run_row(f, &j->runs[i]); /* newest first */
		fputs("</table></div>\n", f);
	}
	fputs("</section>\n", f);
}

/* ---- the page ----------------------------------------------------------- */

static const char style[] =
        "body{font:14px/1.4 sans-serif;margin:24px;color:#222;max-width:1000px}"
        "h1{font-size:22px}h2{font-size:18px;border-bottom:1px solid #ccc}"
        "h3{font-size:15px;margin-bottom:2px}"
        "table{border-collapse:collapse;margin:8px 0}"
        "td,th{border:1px solid #ddd;padding:3px 8px;text-align:left;vertical-align:top}"
        ".met td:nth-child(2),td.met,p.met{color:#1b5e20;font-weight:bold}"
        ".unmet td:nth-child(2),td.unmet,p.unmet{color:#b71c1c;font-weight:bold}"
        ".note{color:#555;font-size:13px}"
        "svg.chart{display:block;background:#fafafa;border:1px solid #e0e0e0}"
        ".axis{stroke:#444}.grid{stroke:#e3e3e3}"
        ".tick{font-size:11px;fill:#555}.row{font-size:12px;fill:#222}"
        ".snap{fill:#1565c0}.snap.partial{fill:#fff;stroke:#ef6c00;stroke-width:2}"
        ".line{fill:none;stroke-width:2}.line.added{stroke:#1565c0}"
        ".line.read{stroke:#9e9e9e;stroke-dasharray:5 3}"
        ".key{display:inline-block;width:18px;height:3px;vertical-align:middle}"
        ".key.added{background:#1565c0}.key.read{background:#9e9e9e}"
        ".bar{fill:#6a1b9a}.run.ok{fill:#2e7d32}.run.partial{fill:#f9a825}"
        ".run.failed{fill:#c62828}tr.failed td:nth-child(2){color:#b71c1c}"
        ".step{white-space:nowrap;margin-right:6px}.step.failed{color:#b71c1c}"
        ".step.skipped{color:#888}";

static void page_head(FILE *f, const struct report_data *d)
{
	char when[32];
	fmt_time(when, sizeof(when), d->now, "%Y-%m-%d %H:%M:%S %Z");
	/* The policy forbids every load: the page needs nothing from anywhere. */
	fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	      "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
	      "style-src 'unsafe-inline'\">\n<title>cairn report: ",
	      f);
	esc(f, d->repo);
	fprintf(f, "</title>\n<style>%s</style></head>\n<body>\n<h1>cairn report: ", style);
	esc(f, d->repo);
	fprintf(f,
	        "</h1>\n<p id=\"generated\" class=\"note\">%zu %s. Made %s by cairn "
	        "%s.</p>\n",
	        d->nsnaps, cli_plural(d->nsnaps, "snapshot", "snapshots"), when, CAIRN_VERSION);
}

int report_html(FILE *f, const struct report_data *d)
{
	int r;
	page_head(f, d);
	rules_section(f, d->status);
	if ((r = snapshots_chart(f, d)) < 0 || (r = size_chart(f, d)) < 0 ||
	    (r = dedup_chart(f, d)) < 0)
		return r;
	jobs_section(f, d);
	check_section(f, d->status);
	fputs("</body></html>\n", f);
	return ferror(f) ? cairn_err_set(-EIO, "cannot write the report") : 0;
}
