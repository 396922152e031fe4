/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* One-line log messages on stderr at syslog levels (STYLE §7). */
#include "cairn/util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "cleanup.h"

static atomic_int level = CAIRN_LOG_NOTICE;
static atomic_bool json;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static char job[128]; /* protected by out_lock; "" for none */

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

static void put_json_string(FILE *f, const char *s)
{
	fputc('"', f);
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		if (*p == '"' || *p == '\\')
			fprintf(f, "\\%c", *p);
		else if (*p < 0x20)
			fprintf(f, "\\u%04x", *p);
		else
			fputc(*p, f);
	}
	fputc('"', f);
}

void cairn_logv(int l, const char *fmt, va_list ap)
{
	char text[2048];

	if (l > atomic_load(&level))
		return;
	vsnprintf(text, sizeof(text), fmt, ap);
	pthread_mutex_lock(&out_lock);
	if (atomic_load(&json)) {
		struct timespec ts;
		clock_gettime(CLOCK_REALTIME, &ts);
		fprintf(stderr, "{\"time\":%lld.%03ld,\"level\":\"%s\",", (long long)ts.tv_sec,
		        ts.tv_nsec / 1000000, level_name(l));
		if (job[0]) {
			fputs("\"job\":", stderr);
			put_json_string(stderr, job);
			fputc(',', stderr);
		}
		fputs("\"message\":", stderr);
		put_json_string(stderr, text);
		fputs("}\n", stderr);
	} else if (l <= CAIRN_LOG_WARNING) {
		fprintf(stderr, "cairn: %s%s\n", l == CAIRN_LOG_WARNING ? "warning: " : "", text);
	} else {
		fprintf(stderr, "%s\n", text);
	}
	pthread_mutex_unlock(&out_lock);
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
	cairn_log(CAIRN_LOG_ERR, "%s: %s", pre, cairn_err_msg());
	return r;
}
