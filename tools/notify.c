/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Failure notifications: webhook POST with libcurl, mail with sendmail -t. */
#include "notify.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "jobconf.h"
#include "cli.h"
#include "cleanup.h"

#define NOTIFY_ATTEMPTS 3
#define NOTIFY_REPLY_MAX 512 /* of a reply body kept for the error message */

/* The message's texts as valid UTF-8 (a file name's Latin-1 byte is U+FFFD):
 * strict JSON decoders refuse the \udcXX escapes of exact names, and the mail
 * says charset=utf-8. */
struct filled {
	char when[32]; /* ISO 8601, UTC */
	int64_t time;
	char *job, *host, *error; /* owned; job NULL when there is none */
};

static void filled_release(struct filled *f)
{
	free(f->job);
	free(f->host);
	free(f->error);
}

static char *valid_text(const char *s)
{
	return cairn_utf8_valid(s, strlen(s));
}

static int fill(struct filled *f, const struct notify_msg *m)
{
	char host[256] = "localhost";
	struct tm tm;
	time_t t;

	*f = (struct filled){ .time = m->time ? m->time : (int64_t)time(NULL) };
	t = (time_t)f->time;
	if (m->host)
		snprintf(host, sizeof(host), "%s", m->host);
	else if (gethostname(host, sizeof(host) - 1) < 0)
		snprintf(host, sizeof(host), "localhost");
	if (!gmtime_r(&t, &tm) || !strftime(f->when, sizeof(f->when), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(f->when, sizeof(f->when), "1970-01-01T00:00:00Z");
	bool job = m->job && *m->job;
	f->host = valid_text(host);
	f->error = valid_text(m->error && *m->error ? m->error : "job failed");
	f->job = job ? valid_text(m->job) : NULL;
	if (!f->host || !f->error || (job && !f->job)) {
		filled_release(f);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	return 0;
}

/* One line for people: what chat tools show. */
static void summary_line(char *buf, size_t n, const struct filled *f)
{
	if (f->job)
		snprintf(buf, n, "cairn: job '%s' failed on %s: %s", f->job, f->host, f->error);
	else
		snprintf(buf, n, "cairn: failed on %s: %s", f->host, f->error);
}

/* The JSON members, written with the same escaping as every other JSON output. */
static void write_json(FILE *out, const struct notify_msg *m, const struct filled *f)
{
	char text[2048];
	summary_line(text, sizeof(text), f);
	fputs("{\"text\":", out);
	cli_json_str(out, text, strlen(text));
	fputs(",\"job\":", out);
	if (f->job)
		cli_json_str(out, f->job, strlen(f->job));
	else
		fputs("null", out);
	fputs(",\"host\":", out);
	cli_json_str(out, f->host, strlen(f->host));
	fputs(",\"error\":", out);
	cli_json_str(out, f->error, strlen(f->error));
	fprintf(out, ",\"time\":\"%s\",\"timestamp\":%lld,\"status\":\"failure\"", f->when,
	        (long long)f->time);
	if (m->exit_code >= 0)
		fprintf(out, ",\"exit_code\":%d", m->exit_code);
	fputs(",\"program\":\"cairn " CAIRN_VERSION "\"}", out);
}

/* ---- formats ------------------------------------------------------------ */

static const char *const format_names[] = {
	[NOTIFY_AUTO] = "auto",
	[NOTIFY_GENERIC] = "generic",
	[NOTIFY_SLACK] = "slack",
	[NOTIFY_TEAMS] = "teams",
};

int notify_format_parse(const char *s, enum notify_format *out)
{
	for (size_t i = 0; i < ARRAY_SIZE(format_names); i++)
		if (strcmp(s, format_names[i]) == 0) {
			*out = (enum notify_format)i;
			return 0;
		}
	return cairn_err_set(-EINVAL, "notify format '%s' is not auto, generic, slack or teams", s);
}

/* host is, or ends in ".", suffix (case-insensitive, as DNS names are). */
static bool host_is(const char *host, size_t n, const char *suffix, bool subdomains)
{
	size_t k = strlen(suffix);
	if (n == k)
		return strncasecmp(host, suffix, n) == 0;
	return subdomains && n > k && host[n - k - 1] == '.' &&
	       strncasecmp(host + n - k, suffix, k) == 0;
}

enum notify_format notify_format_for(const char *url, enum notify_format f)
{
	if (f != NOTIFY_AUTO)
		return f;
	const char *host = strstr(url, "://");
	host = host ? host + 3 : url;
	size_t n = strcspn(host, "/?#");
	const char *at = memrchr(host, '@', n); /* user:password@host */
	if (at) {
		n -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	const char *colon = memchr(host, ':', n);
	if (colon)
		n = (size_t)(colon - host);
	if (host_is(host, n, "hooks.slack.com", false) ||
	    host_is(host, n, "hooks.slack-gov.com", false))
		return NOTIFY_SLACK;
	if (host_is(host, n, "webhook.office.com", true) ||
	    host_is(host, n, "outlook.office.com", false) ||
	    host_is(host, n, "outlook.office365.com", false) ||
	    host_is(host, n, "logic.azure.com", true) ||
	    host_is(host, n, "powerplatform.com", true))
		return NOTIFY_TEAMS;
	return NOTIFY_GENERIC;
}

/* Slack refuses a text object over 3000 characters (a field's over 2000), so the
 * escaped text is cut at a character boundary before that. */
#define SLACK_TEXT_MAX 1900

#define ZWSP "\xe2\x80\x8b" /* U+200B ZERO WIDTH SPACE */

/* s with Slack's three mrkdwn control characters as entities
 * (api.slack.com/reference/surfaces/formatting#escaping), at most
 * SLACK_TEXT_MAX bytes and "..." when cut, between pre and post (kept whole).
 * Between the fences of a code block (pre "```"), a zero width space parts
 * any two backticks in a row: mrkdwn has no escape, and s's own "```" would
 * end the block. */
static void slack_str(FILE *out, const char *pre, const char *s, const char *post)
{
	bool code = strcmp(pre, "```") == 0, tick = code;
	char *esc = NULL;
	size_t len = 0;
	FILE *m = open_memstream(&esc, &len);
	if (!m) {
		cli_json_str(out, "", 0);
		return;
	}
	fputs(pre, m);
	for (size_t n = strlen(pre) + strlen(post); *s; s++) {
		bool starts = ((unsigned char)*s & 0xc0) != 0x80; /* not a continuation byte */
		if (starts && n + 5 > SLACK_TEXT_MAX - 3) {
			fputs("...", m);
			tick = false;
			break;
		}
		n += *s == '&' ? 5 : *s == '<' || *s == '>' ? 4 : 1;
		if (tick && *s == '`') {
			fputs(ZWSP, m);
			n += 3;
		}
		tick = code && *s == '`';
		if (*s == '&')
			fputs("&amp;", m);
		else if (*s == '<')
			fputs("&lt;", m);
		else if (*s == '>')
			fputs("&gt;", m);
		else
			fputc(*s, m);
	}
	if (tick) /* before the closing fence */
		fputs(ZWSP, m);
	fputs(post, m);
	fclose(m);
	cli_json_str(out, esc ? esc : "", esc ? len : 0);
	free(esc);
}

/* One Slack mrkdwn text object: "*Title*\nvalue". */
static void slack_field(FILE *out, const char *title, const char *value)
{
	char pre[64];
	snprintf(pre, sizeof(pre), "*%s*\n", title);
	fputs("{\"type\":\"mrkdwn\",\"text\":", out);
	slack_str(out, pre, value, "");
	fputc('}', out);
}

static void write_slack(FILE *out, const struct notify_msg *m, const struct filled *f)
{
	char text[2048], code[16];
	summary_line(text, sizeof(text), f);
	snprintf(code, sizeof(code), "%d", m->exit_code);
	fputs("{\"text\":", out);
	slack_str(out, "", text, "");
	fputs(",\"blocks\":[{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":", out);
	if (f->job)
		snprintf(text, sizeof(text), ":x: cairn job '%s' failed on %s", f->job, f->host);
	else
		snprintf(text, sizeof(text), ":x: cairn failed on %s", f->host);
	slack_str(out, "", text, "");
	fputs("}},{\"type\":\"section\",\"fields\":[", out);
	slack_field(out, "Job", f->job ? f->job : "-");
	fputc(',', out);
	slack_field(out, "Host", f->host);
	fputc(',', out);
	slack_field(out, "Exit code", m->exit_code >= 0 ? code : "-");
	fputc(',', out);
	slack_field(out, "Time", f->when);
	fputs("]},{\"type\":\"section\",\"text\":{\"type\":\"mrkdwn\",\"text\":", out);
	slack_str(out, "```", f->error, "```");
	fputs("}}]}", out);
}

static void teams_fact(FILE *out, const char *title, const char *value, bool last)
{
	fputs("{\"title\":", out);
	cli_json_str(out, title, strlen(title));
	fputs(",\"value\":", out);
	cli_json_str(out, value, strlen(value));
	fputs(last ? "}" : "},", out);
}

static void write_teams(FILE *out, const struct notify_msg *m, const struct filled *f)
{
	char text[2048], code[16];
	snprintf(code, sizeof(code), "%d", m->exit_code);
	fputs("{\"type\":\"message\",\"attachments\":[{\"contentType\":"
	      "\"application/vnd.microsoft.card.adaptive\",\"contentUrl\":null,\"content\":{"
	      "\"$schema\":\"http://adaptivecards.io/schemas/adaptive-card.json\","
	      "\"type\":\"AdaptiveCard\",\"version\":\"1.4\",\"body\":["
	      "{\"type\":\"TextBlock\",\"size\":\"Medium\",\"weight\":\"Bolder\","
	      "\"color\":\"Attention\",\"wrap\":true,\"text\":",
	      out);
	if (f->job)
		snprintf(text, sizeof(text), "cairn job '%s' failed on %s", f->job, f->host);
	else
		snprintf(text, sizeof(text), "cairn failed on %s", f->host);
	cli_json_str(out, text, strlen(text));
	fputs("},{\"type\":\"FactSet\",\"facts\":[", out);
	teams_fact(out, "Job", f->job ? f->job : "-", false);
	teams_fact(out, "Host", f->host, false);
	teams_fact(out, "Exit code", m->exit_code >= 0 ? code : "-", false);
	teams_fact(out, "Time", f->when, true);
	fputs("]},{\"type\":\"TextBlock\",\"wrap\":true,\"fontType\":\"Monospace\",\"text\":", out);
	cli_json_str(out, f->error, strlen(f->error));
	fputs("}]}}]}", out);
}

int notify_body(struct cairn_buf *out, enum notify_format fmt, const struct notify_msg *m)
{
	struct filled f;
	char *data = NULL;
	size_t len = 0;

	int r = fill(&f, m);
	if (r < 0)
		return r;
	FILE *mem = open_memstream(&data, &len);
	if (!mem) {
		filled_release(&f);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	if (fmt == NOTIFY_SLACK)
		write_slack(mem, m, &f);
	else if (fmt == NOTIFY_TEAMS)
		write_teams(mem, m, &f);
	else
		write_json(mem, m, &f);
	filled_release(&f);
	int bad = ferror(mem);
	if (fclose(mem) != 0 || bad) {
		free(data);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	r = cairn_buf_put(out, data, len);
	free(data);
	return r;
}

int notify_json(struct cairn_buf *out, const struct notify_msg *m)
{
	return notify_body(out, NOTIFY_GENERIC, m);
}

/* ---- webhook ------------------------------------------------------------ */

/* "scheme://host[:port]" of url: webhook paths hold tokens, and the userinfo
 * (user:password@) a password, so both stay out of messages and logs. */
static void redact(char *buf, size_t n, const char *url)
{
	const char *sep = strstr(url, "://");
	size_t scheme = sep ? (size_t)(sep + 3 - url) : 0;
	const char *host = url + scheme;
	size_t len = strcspn(host, "/?#");
	const char *at = memrchr(host, '@', len); /* the userinfo ends at the last '@' */
	if (at) {
		len -= (size_t)(at + 1 - host);
		host = at + 1;
	}
	snprintf(buf, n, "%.*s%.*s", (int)(scheme < 64 ? scheme : 64), url,
	         (int)(len < 512 ? len : 512), host);
}

static size_t on_reply(char *p, size_t size, size_t nmemb, void *payload)
{
	struct cairn_buf *b = payload;
	size_t n = size * nmemb, room = NOTIFY_REPLY_MAX - b->len;
	if (room > 0 && cairn_buf_put(b, p, n < room ? n : room) < 0)
		return 0;
	return n;
}

struct post {
	CURL *h;
	char errbuf[CURL_ERROR_SIZE];
	struct cairn_buf reply;
	long status;
};

static void setup(struct post *p, const char *url, const struct cairn_buf *body,
                  struct curl_slist *headers)
{
	CURL *h = p->h;
	curl_easy_setopt(h, CURLOPT_URL, url);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_POSTFIELDS, (const char *)body->data);
	curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, headers);
	curl_easy_setopt(h, CURLOPT_USERAGENT, "cairn/" CAIRN_VERSION);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(h, CURLOPT_TIMEOUT, 30L);
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_reply);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, &p->reply);
}

/* One attempt: 0 delivered, 1 worth retrying, < 0 final failure (message set). */
static int attempt(struct post *p, const char *where)
{
	p->errbuf[0] = '\0';
	p->reply.len = 0;
	CURLcode cc = curl_easy_perform(p->h);
	if (cc != CURLE_OK) {
		cairn_err_set(cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO,
		              "cannot reach webhook %s: %s", where,
		              p->errbuf[0] ? p->errbuf : curl_easy_strerror(cc));
		return cc == CURLE_UNSUPPORTED_PROTOCOL || cc == CURLE_URL_MALFORMAT ? -EIO : 1;
	}
	curl_easy_getinfo(p->h, CURLINFO_RESPONSE_CODE, &p->status);
	if (p->status >= 200 && p->status < 300)
		return 0;
	/* The start of the reply says why (Slack: "invalid_payload", "no_service"),
	 * on one line. */
	char why[NOTIFY_REPLY_MAX + 1];
	size_t n = p->reply.len;
	for (size_t i = 0; i < n; i++)
		why[i] = p->reply.data[i] < 0x20 || p->reply.data[i] == 0x7f
		                 ? ' '
		                 : (char)p->reply.data[i];
	why[n] = '\0';
	cairn_err_set(-EPROTO, "webhook %s answered HTTP %ld%s%s", where, p->status, n ? ": " : "",
	              why);
	return p->status >= 500 || p->status == 429 ? 1 : -EPROTO;
}

int notify_webhook(const char *url, enum notify_format f, const struct notify_msg *m)
{
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct post p = { .reply = CAIRN_BUF_INIT };
	char where[600];
	int r = notify_body(&body, notify_format_for(url, f), m);

	if (r < 0)
		return r;
	redact(where, sizeof(where), url);
	struct curl_slist *headers = curl_slist_append(NULL, "Content-Type: application/json");
	if (!headers || !(p.h = curl_easy_init())) {
		curl_slist_free_all(headers);
		return cairn_err_set(-ENOMEM, "cannot set up an HTTP request");
	}
	setup(&p, url, &body, headers);
	for (int i = 0; i < NOTIFY_ATTEMPTS; i++) {
		if (i > 0)
			sleep((unsigned)i); /* 1 s, then 2 s: a restarting proxy, not a storm */
		if ((r = attempt(&p, where)) <= 0)
			break;
	}
	if (r > 0) /* retries used up: the message of the last attempt stands */
		r = p.status >= 300 ? -EPROTO : -EIO;
	curl_easy_cleanup(p.h);
	curl_slist_free_all(headers);
	cairn_buf_release(&p.reply);
	return r;
}

/* ---- mail --------------------------------------------------------------- */

/* Text from the job, the host and the error (file names, messages) with its
 * control characters as \xNN, as on the terminal: in the subject nothing can
 * end the header, in the body nothing can forge a line or drive the reader's
 * terminal. */
static void put_text(FILE *out, const char *s)
{
	cairn_text_str(out, s, strlen(s));
}

static int write_mail(FILE *out, const char *addr, const struct notify_msg *m)
{
	struct filled f;
	int r = fill(&f, m);

	if (r < 0)
		return r;
	fprintf(out, "To: %s\nSubject: cairn: ", addr);
	if (f.job) {
		fputs("job ", out);
		put_text(out, f.job);
		fputs(" failed on ", out);
	} else {
		fputs("failure on ", out);
	}
	put_text(out, f.host);
	fputs("\nAuto-Submitted: auto-generated\nMIME-Version: 1.0\n"
	      "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n",
	      out);
	fputs("job:   ", out);
	put_text(out, f.job ? f.job : "-");
	fputs("\nhost:  ", out);
	put_text(out, f.host);
	fprintf(out, "\ntime:  %s\n", f.when);
	if (m->exit_code >= 0)
		fprintf(out, "exit:  %d\n", m->exit_code);
	fputs("error: ", out);
	put_text(out, f.error);
	fputc('\n', out);
	fputs("\nSee journalctl -u 'cairn-backup@*' for the whole log.\n", out);
	filled_release(&f);
	return ferror(out) ? -EIO : 0;
}

static bool plain_address(const char *a)
{
	const char *at = strchr(a, '@');
	return a[0] && a[0] != '-' && at && at != a && at[1] && !strpbrk(a, " \t\r\n,;<>\"()");
}

int notify_mail(const char *addr, const struct notify_msg *m)
{
	const char *sendmail = getenv("CAIRN_SENDMAIL");
	int fds[2];
	pid_t pid;

	if (!plain_address(addr))
		return cairn_err_set(-EINVAL, "'%s' is not one mail address", addr);
	if (!sendmail || !*sendmail)
		sendmail = "/usr/sbin/sendmail";
	if (access(sendmail, X_OK) < 0)
		return cairn_err_set(-ENOENT, "cannot send mail: '%s' not found (install a MTA)",
		                     sendmail);
	/* The mail program needs no password and no cloud credentials. */
	_cleanup_free_ char **env = cli_child_env();
	if (!env)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (pipe2(fds, O_CLOEXEC) < 0)
		return cairn_err_set(-errno, "cannot create a pipe: %s", strerror(errno));
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, fds[0], STDIN_FILENO);
	char *argv[] = { (char *)sendmail, (char *)"-t", (char *)"-i", NULL };
	posix_spawnattr_t attr;
	int e = cli_spawnattr_init(&attr);
	if (e == 0) {
		e = posix_spawn(&pid, sendmail, &fa, &attr, argv, env);
		posix_spawnattr_destroy(&attr);
	}
	posix_spawn_file_actions_destroy(&fa);
	close(fds[0]);
	if (e) {
		close(fds[1]);
		return cairn_err_set(-EIO, "cannot run '%s': %s", sendmail, strerror(e));
	}
	/* A sendmail that dies early must not kill us with SIGPIPE. */
	void (*old)(int) = signal(SIGPIPE, SIG_IGN);
	FILE *out = fdopen(fds[1], "w");
	int r = out ? write_mail(out, addr, m) : -EIO;
	if (out ? fclose(out) != 0 : close(fds[1]) != 0)
		r = -EIO;
	signal(SIGPIPE, old);
	int status = 0;
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (r < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return cairn_err_set(-EIO, "'%s -t' failed (exit status %d)", sendmail,
		                     WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	return 0;
}

/* ---- reported markers --------------------------------------------------- */

static int marker_path(char *buf, size_t n, const char *job)
{
	return job ? jobconf_state_path(buf, n, job, ".reported") : -EINVAL;
}

void notify_mark_reported(const char *job, bool reported)
{
	char path[4096];
	if (marker_path(path, sizeof(path), job) < 0)
		return;
	if (!reported) {
		if (unlink(path) < 0 && errno != ENOENT)
			log_debug("cannot remove '%s': %s", path, strerror(errno));
		return;
	}
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		log_debug("cannot create '%s': %s", path, strerror(errno));
	else
		close(fd);
}

bool notify_take_reported(const char *job)
{
	char path[4096];
	if (marker_path(path, sizeof(path), job) < 0)
		return false;
	return unlink(path) == 0;
}
