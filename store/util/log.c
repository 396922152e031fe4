/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One-line log messages on stderr (or syslog, for a detached daemon) at syslog
 * levels (STYLE §7). */
#include "cairn/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

static atomic_int level = CAIRN_LOG_NOTICE;
static atomic_bool json;
static atomic_bool to_syslog;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char job[128];              /* protected by out_lock; "" for none */
static const char *prog = "cairn"; /* protected by out_lock */

void cairn_log_set_level(int l)
{
	atomic_store(&level, l);
}

int cairn_log_get_level(void)
{
	return atomic_load(&level);
}

void cairn_log_set_json(bool j)
{
	atomic_store(&json, j);
}

bool cairn_log_get_json(void)
{
	return atomic_load(&json);
}

void cairn_log_set_job(const char *name)
{
	pthread_mutex_lock(&out_lock);
	snprintf(job, sizeof(job), "%s", name ? name : "");
	pthread_mutex_unlock(&out_lock);
}

void cairn_log_set_prog(const char *name)
{
	pthread_mutex_lock(&out_lock);
	prog = name;
	pthread_mutex_unlock(&out_lock);
}

void cairn_log_to_syslog(const char *ident)
{
	openlog(ident, LOG_PID, LOG_DAEMON);
	atomic_store(&to_syslog, true);
}

void cairn_log_level_from_env(void)
{
	static const char *const names[] = { [CAIRN_LOG_ERR] = "err",
		                             [CAIRN_LOG_WARNING] = "warning",
		                             [CAIRN_LOG_NOTICE] = "notice",
		                             [CAIRN_LOG_INFO] = "info",
		                             [CAIRN_LOG_DEBUG] = "debug" };
	const char *e = getenv("CAIRN_LOG_JOB");
	char *end;

	/* cairn run names its job this way for the commands it runs. */
	if (e && *e)
		cairn_log_set_job(e);
	e = getenv("CAIRN_LOG_FORMAT");
	if (e && strcmp(e, "json") == 0)
		cairn_log_set_json(true);
	else if (e && strcmp(e, "text") == 0)
		cairn_log_set_json(false);
	e = getenv("CAIRN_LOG_LEVEL");
	if (!e || !*e)
		return;
	long v = strtol(e, &end, 10);
	if (*end == '\0' && v >= 0 && v <= 7) {
		cairn_log_set_level((int)v);
		return;
	}
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (names[i] && strcasecmp(e, names[i]) == 0)
			cairn_log_set_level((int)i);
}

static const char *level_name(int l)
{
	switch (l) {
	case CAIRN_LOG_ERR:
		return "error";
	case CAIRN_LOG_WARNING:
		return "warning";
	case CAIRN_LOG_NOTICE:
		return "notice";
	case CAIRN_LOG_INFO:
		return "info";
	default:
		return "debug";
	}
}

size_t cairn_utf8_len(const void *s, size_t left)
{
	const unsigned char *p = s;
	if (left == 0)
		return 0;
	if (p[0] < 0x80)
		return 1;
	size_t n = p[0] >= 0xf0 && p[0] <= 0xf4 ? 4 : p[0] >= 0xe0 ? 3 : p[0] >= 0xc2 ? 2 : 0;
	if (n == 0 || n > left)
		return 0;
	for (size_t i = 1; i < n; i++)
		if ((p[i] & 0xc0) != 0x80)
			return 0;
	/* Overlong 3/4-byte forms, surrogates and values past U+10FFFF. */
	if ((p[0] == 0xe0 && p[1] < 0xa0) || (p[0] == 0xed && p[1] >= 0xa0) ||
	    (p[0] == 0xf0 && p[1] < 0x90) || (p[0] == 0xf4 && p[1] >= 0x90))
		return 0;
	return n;
}

char *cairn_utf8_valid(const void *s, size_t n)
{
	const unsigned char *p = s;
	size_t cap;
	if (__builtin_mul_overflow(n, 3, &cap) || __builtin_add_overflow(cap, 1, &cap))
		return NULL;
	char *out = malloc(cap), *o = out;
	if (!out)
		return NULL;
	for (size_t i = 0; i < n;) {
		size_t u = cairn_utf8_len(p + i, n - i);
		if (u) {
			memcpy(o, p + i, u);
			o += u;
			i += u;
		} else {
			memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD */
			o += 3;
			i++;
		}
	}
	*o = '\0';
	return out;
}

void cairn_json_str(FILE *f, const void *s, size_t n)
{
	const unsigned char *p = s;
	fputc('"', f);
	for (size_t i = 0; i < n;) {
		unsigned char c = p[i];
		size_t u = c >= 0x80 ? cairn_utf8_len(p + i, n - i) : 0;
		if (u) {
			fwrite(p + i, 1, u, f);
			i += u;
			continue;
		}
		if (c == '"' || c == '\\')
			fprintf(f, "\\%c", c);
		else if (c == '\n')
			fputs("\\n", f);
		else if (c < 0x20 || c == 0x7f)
			fprintf(f, "\\u%04x", c);
		else if (c >= 0x80)
			/* Not UTF-8: JSON cannot carry the raw byte; U+DC80..U+DCFF (lone
			 * surrogates, as Python's surrogateescape) keep it recoverable. */
			fprintf(f, "\\udc%02x", c);
		else
			fputc(c, f);
		i++;
	}
	fputc('"', f);
}

/* Length of the character at p (UTF-8 or one byte), and whether it is a control
 * character: C0, DEL, C1 (U+0080..U+009F, and raw 0x80..0x9f outside UTF-8, which
 * an 8-bit terminal takes as C1). */
static size_t text_char(const unsigned char *p, size_t left, bool *control)
{
	size_t u = p[0] >= 0x80 ? cairn_utf8_len(p, left) : 0;
	if (u) {
		*control = u == 2 && p[0] == 0xc2 && p[1] < 0xa0;
		return *control ? 1 : u; /* escaped byte by byte */
	}
	*control = p[0] < 0x20 || (p[0] >= 0x7f && p[0] < 0xa0);
	return 1;
}

static size_t text_out(FILE *f, const void *s, size_t n, bool name)
{
	const unsigned char *p = s;
	size_t width = 0;
	for (size_t i = 0; i < n;) {
		bool control;
		size_t u = text_char(p + i, n - i, &control);
		bool slash = name && p[i] == '\\';
		if (control && f)
			fprintf(f, "\\x%02x", p[i]);
		else if (slash && f)
			fputs("\\\\", f);
		else if (f)
			fwrite(p + i, 1, u, f);
		width += control ? 4 : slash ? 2 : u;
		i += u;
	}
	return width;
}

size_t cairn_text_str(FILE *f, const void *s, size_t n)
{
	return text_out(f, s, n, false);
}

size_t cairn_text_name(FILE *f, const void *s, size_t n)
{
	return text_out(f, s, n, true);
}

const char *cairn_errno_name(int e)
{
	const char *n = strerrorname_np(e < 0 ? -e : e);
	return n ? n : "EUNKNOWN";
}

static void put_str(FILE *f, const char *s)
{
	cairn_json_str(f, s, strlen(s));
}

/* The members of "fields": the caller's, then the relayed raw ones. */
static void put_fields(FILE *f, const struct cairn_log_field *fields, const char *raw)
{
	bool first = true;
	fputs("\"fields\":{", f);
	for (const struct cairn_log_field *p = fields; p && p->key; p++) {
		if (!first)
			fputc(',', f);
		first = false;
		put_str(f, p->key);
		fputc(':', f);
		if (p->type == CAIRN_LOG_F_INT)
			fprintf(f, "%lld", p->i);
		else if (p->type == CAIRN_LOG_F_REAL)
			fprintf(f, "%.3f", p->d);
		else if (p->type == CAIRN_LOG_F_BOOL)
			fputs(p->i ? "true" : "false", f);
		else if (p->s)
			put_str(f, p->s);
		else
			fputs("null", f);
	}
	if (raw && *raw)
		fprintf(f, "%s%s", first ? "" : ",", raw);
	fputc('}', f);
}

/* A text line, with control characters escaped: a name with a newline or a
 * terminal escape in it cannot split the line or drive the terminal. */
static void emit_text(int l, const char *text)
{
	/* On a terminal a status line may stand there (backup's progress): clear
	 * it, the next refresh draws it again below the message. */
	const char *clear = isatty(STDERR_FILENO) ? "\r\033[K" : "";
	bool syslogged = atomic_load(&to_syslog);
	char *line = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&line, &len);
	if (!f)
		return;
	if (!syslogged && l <= CAIRN_LOG_WARNING)
		fprintf(f, "%s%s: %s", clear, prog, l == CAIRN_LOG_WARNING ? "warning: " : "");
	else if (!syslogged)
		fputs(clear, f);
	cairn_text_str(f, text, strlen(text));
	if (!syslogged)
		fputc('\n', f);
	if (fclose(f) == 0) {
		if (syslogged)
			syslog(l, "%s", line);
		else
			fwrite(line, 1, len, stderr); /* one write: lines do not interleave */
	}
	free(line);
}

void cairn_log_emit(int l, const struct cairn_log_field *fields, const char *raw, const char *text)
{
	if (l > atomic_load(&level))
		return;
	pthread_mutex_lock(&out_lock);
	if (atomic_load(&json)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		/* One fwrite per line, so lines of several processes sharing stderr
		 * (cairn run's steps) do not interleave. */
		char *line = NULL;
		size_t len = 0;
		FILE *f = open_memstream(&line, &len);
		if (!f) {
			pthread_mutex_unlock(&out_lock);
			return;
		}
		fprintf(f, "{\"time\":%lld.%03ld,\"level\":\"%s\",\"job\":", (long long)ts.tv_sec,
		        ts.tv_nsec / 1000000, level_name(l));
		if (job[0])
			put_str(f, job);
		else
			fputs("null", f);
		fputs(",\"message\":", f);
		put_str(f, text);
		fputc(',', f);
		put_fields(f, fields, raw);
		fputs("}\n", f);
		if (fclose(f) == 0 && len > 0) {
			if (atomic_load(&to_syslog))
				syslog(l, "%.*s", (int)(len - 1), line); /* without the newline */
			else
				fwrite(line, 1, len, stderr);
		}
		free(line);
	} else {
		emit_text(l, text);
	}
	pthread_mutex_unlock(&out_lock);
}

void cairn_log_fv(int l, const struct cairn_log_field *fields, const char *fmt, va_list ap)
{
	char text[2048];

	if (l > atomic_load(&level))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	cairn_log_emit(l, fields, NULL, text);
}

void cairn_log_f(int l, const struct cairn_log_field *fields, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cairn_log_fv(l, fields, fmt, ap);
	va_end(ap);
}

void cairn_logv(int l, const char *fmt, va_list ap)
{
	cairn_log_fv(l, NULL, fmt, ap);
}

void cairn_log(int l, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cairn_logv(l, fmt, ap);
	va_end(ap);
}

int log_error_errno(int r, const char *fmt, ...)
{
	char pre[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	cairn_log_f(CAIRN_LOG_ERR, CAIRN_FIELDS(LOG_STR("code", cairn_errno_name(r))), "%s: %s",
	            pre, cairn_err_msg());
	return r;
}
