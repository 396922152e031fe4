/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The run history of cairn run (runlog.h). */
#include "runlog.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "jobconf.h"
#include "cleanup.h"

#define RUNLOG_MAX_FILE (4u << 20)
#define TOKEN_MAX 64

static const char *const step_names[RUNLOG_STEPS] = { "backup", "forget", "sync", "check" };

int runlog_format(struct cairn_buf *b, const struct runlog_run *run)
{
	int r = cairn_buf_printf(b, "time=%lld exit=%d seconds=%.3f", (long long)run->time,
	                         run->exit_code, run->seconds);
	if (r >= 0 && run->snapshot[0])
		r = cairn_buf_printf(b, " snapshot=%s", run->snapshot);
	for (size_t i = 0; r >= 0 && i < run->nsteps; i++) {
		const struct runlog_step *s = &run->steps[i];
		r = cairn_buf_printf(b, " %s=%s", s->name, s->result);
		if (r >= 0 && strcmp(s->result, "skipped") != 0)
			r = cairn_buf_printf(b, ",%d,%.3f", s->exit_code, s->seconds);
	}
	if (r >= 0)
		r = cairn_buf_put_u8(b, '\n');
	return r < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

static bool word(const char *s, size_t max)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyz");
	return n > 0 && n < max && s[n] == '\0';
}

static bool number(const char *s, double *out)
{
	char *end;
	if (!*s || strspn(s, "-0123456789.") != strlen(s))
		return false;
	*out = strtod(s, &end);
	return *end == '\0';
}

/* "ok,0,10.200" or "skipped". */
static bool parse_step(struct runlog_step *st, const char *name, char *v)
{
	char *c1 = strchr(v, ','), *c2 = c1 ? strchr(c1 + 1, ',') : NULL;
	double code = 0, secs = 0;
	if (c1)
		*c1 = '\0';
	if (c2)
		*c2 = '\0';
	if (!word(v, sizeof(st->result)) ||
	    (c1 &&
	     (!c2 || !number(c1 + 1, &code) || !number(c2 + 1, &secs) || code < 0 || code > 255)))
		return false;
	/* Both fit: name is one of step_names, v a word shorter than result. */
	memcpy(st->name, name, strlen(name) + 1);
	memcpy(st->result, v, strlen(v) + 1);
	st->exit_code = (int)code;
	st->seconds = secs;
	return true;
}

/* One key=value; unknown keys are skipped (a later cairn may add some). */
static bool parse_token(struct runlog_run *run, char *tok, unsigned *seen)
{
	char *eq = strchr(tok, '=');
	double v;
	if (!eq)
		return false;
	*eq = '\0';
	const char *k = tok, *val = eq + 1;
	if (strcmp(k, "time") == 0 || strcmp(k, "exit") == 0 || strcmp(k, "seconds") == 0) {
		if (!number(val, &v))
			return false;
		if (k[0] == 't')
			run->time = (int64_t)v, *seen |= 1;
		else if (k[0] == 'e')
			run->exit_code = (int)v, *seen |= 2;
		else
			run->seconds = v;
		return true;
	}
	if (strcmp(k, "snapshot") == 0) {
		size_t n = strspn(val, "0123456789abcdef");
		if (n == 0 || n >= sizeof(run->snapshot) || val[n])
			return false;
		memcpy(run->snapshot, val, n + 1);
		return true;
	}
	for (size_t i = 0; i < RUNLOG_STEPS; i++)
		if (strcmp(k, step_names[i]) == 0)
			return run->nsteps < RUNLOG_STEPS &&
			       parse_step(&run->steps[run->nsteps++], k, eq + 1);
	return true;
}

bool runlog_parse(const char *line, size_t len, struct runlog_run *out)
{
	struct runlog_run run = { 0 };
	unsigned seen = 0;
	for (size_t pos = 0; pos < len;) {
		char tok[TOKEN_MAX];
		const char *sp = memchr(line + pos, ' ', len - pos);
		size_t n = sp ? (size_t)(sp - (line + pos)) : len - pos;
		if (n >= sizeof(tok) || memchr(line + pos, '\0', n))
			return false;
		memcpy(tok, line + pos, n);
		tok[n] = '\0';
		if (n && !parse_token(&run, tok, &seen))
			return false;
		pos += n + 1;
	}
	if (seen != 3)
		return false; /* time and exit are always there */
	*out = run;
	return true;
}

static int parse_all(const char *text, size_t len, struct runlog_run **out, size_t *n)
{
	struct runlog_run *v = NULL;
	size_t k = 0, cap = 0;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t l = nl ? (size_t)(nl - (text + pos)) : len - pos;
		if (k == cap) {
			cap = cap ? 2 * cap : 64;
			struct runlog_run *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				return cairn_err_set(-ENOMEM, "out of memory");
			}
			v = nv;
		}
		k += runlog_parse(text + pos, l, &v[k]);
		pos += l + 1;
	}
	*out = v;
	*n = k;
	return 0;
}

int runlog_read(const char *job, size_t max, struct runlog_run **out, size_t *n)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char path[4096];
	struct runlog_run *v = NULL;
	size_t k = 0;
	int r = jobconf_state_path(path, sizeof(path), job, ".runs");
	if (r >= 0 && (r = cairn_file_slurp(path, RUNLOG_MAX_FILE, &b)) == -ENOENT)
		r = 0;
	else if (r < 0)
		return cairn_err_wrap(r, "cannot read the run history of job '%s'", job);
	if ((r = parse_all((const char *)b.data, b.len, &v, &k)) < 0)
		return r;
	if (k > max) {
		memmove(v, v + (k - max), max * sizeof(*v));
		k = max;
	}
	*out = v;
	*n = k;
	return 0;
}

/* Past RUNLOG_KEEP runs, the file is written anew with the last ones. */
static int trim(const char *path)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	int r = cairn_file_slurp(path, RUNLOG_MAX_FILE, &b);
	size_t lines = 0, cut = b.len;
	if (r < 0)
		return r;
	while (cut > 0 && lines <= RUNLOG_KEEP)
		if (b.data[--cut] == '\n' && ++lines > RUNLOG_KEEP)
			cut++;
	if (lines <= RUNLOG_KEEP)
		return 0;
	return cairn_file_write_atomic_mode(path, NULL, b.data + cut, b.len - cut, 0644);
}

int runlog_append(const char *job, const struct runlog_run *run)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char path[4096];
	struct stat st;
	int r = jobconf_state_path(path, sizeof(path), job, ".runs");
	if (r < 0 || (r = runlog_format(&b, run)) < 0)
		return r;
	if (mkdir(jobconf_state_dir(), 0755) < 0 && errno != EEXIST)
		return cairn_err_set(-errno, "cannot create '%s': %s", jobconf_state_dir(),
		                     strerror(errno));
	_cleanup_close_ int fd =
	        open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0644);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot open '%s': %s", path, strerror(errno));
	/* One write of a short line: runs that end together do not interleave. */
	if (write(fd, b.data, b.len) != (ssize_t)b.len)
		return cairn_err_set(-EIO, "cannot write '%s'", path);
	/* No line is shorter than 40 bytes: below this, no need to count them. */
	if (fstat(fd, &st) == 0 && (uint64_t)st.st_size > RUNLOG_KEEP * 40ull)
		return trim(path);
	return 0;
}
