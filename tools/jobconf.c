/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Parser of the strict "key = value" job files read by `cairn run`. */
#include "jobconf.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "pattern.h"
#include "cleanup.h"

enum kind {
	K_STR,   /* scalar string */
	K_LIST,  /* repeatable, one value per line */
	K_WORDS, /* repeatable, whitespace-separated values */
	K_BOOL,
	K_LONG,
};

/* A value checker: NULL if v is fine, else what is wrong with it. */
typedef const char *(*valid_fn)(const char *v);

struct key {
	const char *name;
	enum kind kind;
	size_t off;
	valid_fn valid;
	long min, max; /* K_LONG */
};

static const char *v_abs(const char *v)
{
	return v[0] == '/' ? NULL : "must be an absolute path";
}

static const char *v_http(const char *v)
{
	size_t skip = strncmp(v, "https://", 8) == 0 ? 8 : strncmp(v, "http://", 7) == 0 ? 7 : 0;
	if (!skip || !v[skip] || v[skip] == '/')
		return "must be an http:// or https:// URL with a host";
	return strpbrk(v, " \t") ? "must not contain spaces" : NULL;
}

static bool bucket_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '-';
}

/* s3://bucket[/prefix]: the bucket naming rules of S3 (3..63 of [a-z0-9.-]). */
static const char *v_s3(const char *v)
{
	size_t n = 0;
	if (strncmp(v, "s3://", 5) != 0)
		return "must be s3://bucket[/prefix]";
	v += 5;
	while (bucket_char(v[n]))
		n++;
	if (n < 3 || n > 63 || (v[n] && v[n] != '/'))
		return "must be s3://bucket[/prefix] with a bucket of 3 to 63 of [a-z0-9.-]";
	return strpbrk(v, " \t") ? "must not contain spaces" : NULL;
}

/* One plain address: it goes into a To: header for `sendmail -t`, so nothing that
 * could add a recipient or a header. */
static const char *v_mail(const char *v)
{
	const char *at = strchr(v, '@');
	if (v[0] == '-' || !at || at == v || !at[1] || strchr(at + 1, '@'))
		return "must be one mail address (user@host)";
	return strpbrk(v, " \t,;<>\"()") ? "must be one mail address (user@host)" : NULL;
}

/* A duration as cairn forget --keep-within reads it (policy.c): 1y6m, 30d, 12h;
 * units y m d h, each at most once, each number at most 100000. */
static const char *v_duration(const char *v)
{
	static const char units[] = "ymdh";
	unsigned seen = 0;
	long total = 0;
	const char *p = v;
	while (*p) {
		size_t digits = strspn(p, "0123456789");
		const char *u = digits && p[digits] ? strchr(units, p[digits]) : NULL;
		unsigned bit = u ? 1u << (u - units) : 0;
		long x = digits && digits <= 6 ? strtol(p, NULL, 10) : -1;
		if (!u || x < 0 || x > 100000 || (seen & bit))
			return "must be a duration like 1y6m, 30d or 12h (y m d h, each once)";
		seen |= bit;
		total += x;
		p += digits + 1;
	}
	/* As keep-last = 0: a policy that keeps nothing is a mistake, never meant. */
	return !seen   ? "must not be empty"
	       : total ? NULL
	               : "must be above zero (it would keep nothing)";
}

static bool parse_ulong(const char *s, size_t n, unsigned long *out)
{
	unsigned long v = 0;
	if (n == 0 || n > 9 || strspn(s, "0123456789") < n)
		return false;
	for (size_t i = 0; i < n; i++)
		v = v * 10 + (unsigned long)(s[i] - '0');
	*out = v;
	return true;
}

/* The share of packs check --read-data reads: N% (1..100), n/m (1 <= n <= m), or
 * the rotating '*' '/' m (cmd-run picks n by the day). */
static const char *v_subset(const char *v)
{
	static const char msg[] = "must be N% (1 to 100), n/m (1 <= n <= m) or */m";
	size_t len = strlen(v);
	const char *slash = strchr(v, '/');
	unsigned long a, b;

	if (len > 1 && v[len - 1] == '%')
		return parse_ulong(v, len - 1, &a) && a >= 1 && a <= 100 ? NULL : msg;
	if (!slash)
		return msg;
	if (slash == v + 1 && v[0] == '*')
		return parse_ulong(slash + 1, strlen(slash + 1), &b) && b >= 1 ? NULL : msg;
	if (!parse_ulong(v, (size_t)(slash - v), &a) ||
	    !parse_ulong(slash + 1, strlen(slash + 1), &b))
		return msg;
	return a >= 1 && a <= b ? NULL : msg;
}

/* The repository: a directory, or a bucket a host writes to directly (with a
 * write-only key, docs/S3.md §8). */
static const char *v_repo(const char *v)
{
	if (strncmp(v, "s3://", 5) == 0)
		return v_s3(v);
	return v[0] == '/' ? NULL : "must be an absolute path or s3://bucket[/prefix]";
}

static const char *v_lock_mode(const char *v)
{
	return strcmp(v, "compliance") == 0 || strcmp(v, "governance") == 0
	               ? NULL
	               : "must be compliance or governance";
}

static const char *v_log_format(const char *v)
{
	return strcmp(v, "text") == 0 || strcmp(v, "json") == 0 ? NULL : "must be text or json";
}

static const char *v_notify_format(const char *v)
{
	static const char *const ok[] = { "auto", "generic", "slack", "teams" };
	for (size_t i = 0; i < ARRAY_SIZE(ok); i++)
		if (strcmp(v, ok[i]) == 0)
			return NULL;
	return "must be auto, generic, slack or teams";
}

static const char *v_host(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-_");
	return v[n] == '\0' && n <= 255 ? NULL : "must be a host name of [A-Za-z0-9.-_]";
}

/* TAG[,TAG...], as backup --tag and forget --keep-tag take it. */
static const char *v_tag(const char *v)
{
	for (const char *p = v;; p++) {
		size_t k = strcspn(p, ",");
		if (k == 0 || k > 1024)
			return "must be TAG[,TAG...], each tag 1 to 1024 bytes";
		p += k;
		if (!*p)
			return NULL;
	}
}

/* NAME[:HEADER] of --exclude-if-present (excludes.c checks the same). */
static const char *v_marker(const char *v)
{
	size_t n = strcspn(v, ":");
	if (n == 0 || n > 255 || memchr(v, '/', n))
		return "must be NAME[:HEADER] with a file name";
	return v[n] && (!v[n + 1] || strlen(v + n + 1) > 1024)
	               ? "must have a header of 1 to 1024 bytes"
	               : NULL;
}

/* A size as cli_parse_size reads it: digits, then K, M, G or T (and B or iB). */
static const char *v_size(const char *v)
{
	size_t n = strspn(v, "0123456789");
	const char *u = v + n;
	if (n == 0 || n > 15)
		return "must be a size like 500K, 10M or 2G";
	if (*u && strchr("kKmMgGtT", *u))
		u++;
	if (*u && strcmp(u, "B") != 0 && strcmp(u, "iB") != 0)
		return "must be a size like 500K, 10M or 2G";
	return NULL;
}

/* Compiled and thrown away: a bad glob is reported here with its line, not later
 * by the backup. */
static const char *v_glob(const char *v)
{
	struct pattern_list *l = NULL;
	const char *bad = NULL;
	if (pattern_list_new(&l) < 0)
		return "cannot be checked: out of memory";
	if (pattern_list_add(l, v) < 0)
		bad = "is not a valid pattern";
	pattern_list_free(l);
	return bad;
}

#define F(field) offsetof(struct jobconf, field)
static const struct key keys[] = {
	{ "repository", K_STR, F(repository), v_repo, 0, 0 },
	{ "password-file", K_STR, F(password_file), v_abs, 0, 0 },
	{ "password-command", K_STR, F(password_command), NULL, 0, 0 },
	{ "paths", K_WORDS, F(paths), v_abs, 0, 0 },
	{ "path", K_LIST, F(paths), v_abs, 0, 0 },
	{ "files-from", K_LIST, F(files_from), v_abs, 0, 0 },
	{ "files-from-verbatim", K_LIST, F(files_from_verbatim), v_abs, 0, 0 },
	{ "files-from-raw", K_LIST, F(files_from_raw), v_abs, 0, 0 },
	{ "exclude", K_LIST, F(excludes), v_glob, 0, 0 },
	{ "exclude-file", K_LIST, F(exclude_files), v_abs, 0, 0 },
	{ "iexclude", K_LIST, F(iexcludes), v_glob, 0, 0 },
	{ "iexclude-file", K_LIST, F(iexclude_files), v_abs, 0, 0 },
	{ "exclude-if-present", K_LIST, F(exclude_if_present), v_marker, 0, 0 },
	{ "exclude-larger-than", K_STR, F(exclude_larger_than), v_size, 0, 0 },
	{ "exclude-caches", K_BOOL, F(exclude_caches), NULL, 0, 0 },
	{ "one-file-system", K_BOOL, F(one_file_system), NULL, 0, 0 },
	{ "tags", K_WORDS, F(tags), v_tag, 0, 0 },
	{ "tag", K_LIST, F(tags), v_tag, 0, 0 },
	{ "host", K_STR, F(host), v_host, 0, 0 },
	{ "compression", K_LONG, F(compression), NULL, 0, 19 },
	{ "threads", K_LONG, F(threads), NULL, 1, 256 },
	{ "keep-last", K_LONG, F(keep[JOBCONF_KEEP_LAST]), NULL, 1, 1000000 },
	{ "keep-hourly", K_LONG, F(keep[JOBCONF_KEEP_HOURLY]), NULL, 1, 1000000 },
	{ "keep-daily", K_LONG, F(keep[JOBCONF_KEEP_DAILY]), NULL, 1, 1000000 },
	{ "keep-weekly", K_LONG, F(keep[JOBCONF_KEEP_WEEKLY]), NULL, 1, 1000000 },
	{ "keep-monthly", K_LONG, F(keep[JOBCONF_KEEP_MONTHLY]), NULL, 1, 1000000 },
	{ "keep-yearly", K_LONG, F(keep[JOBCONF_KEEP_YEARLY]), NULL, 1, 1000000 },
	{ "keep-within", K_STR, F(keep_within), v_duration, 0, 0 },
	{ "keep-tag", K_LIST, F(keep_tags), v_tag, 0, 0 },
	{ "prune", K_BOOL, F(prune), NULL, 0, 0 },
	{ "s3-target", K_STR, F(s3_target), v_s3, 0, 0 },
	{ "s3-endpoint", K_STR, F(s3_endpoint), v_http, 0, 0 },
	{ "s3-lock-days", K_LONG, F(s3_lock_days), NULL, 1, 36500 },
	{ "s3-lock-mode", K_STR, F(s3_lock_mode), v_lock_mode, 0, 0 },
	{ "metrics-file", K_STR, F(metrics_file), v_abs, 0, 0 },
	{ "notify-url", K_STR, F(notify_url), v_http, 0, 0 },
	{ "notify-mail", K_STR, F(notify_mail), v_mail, 0, 0 },
	{ "notify-format", K_STR, F(notify_format), v_notify_format, 0, 0 },
	{ "log-format", K_STR, F(log_format), v_log_format, 0, 0 },
	{ "check", K_BOOL, F(check), NULL, 0, 0 },
	{ "check-read-data-subset", K_STR, F(check_read_data_subset), v_subset, 0, 0 },
};
#undef F

static const char *const keep_names[JOBCONF_KEEP_N] = {
	"keep-last", "keep-hourly", "keep-daily", "keep-weekly", "keep-monthly", "keep-yearly",
};

const char *jobconf_keep_name(enum jobconf_keep k)
{
	return keep_names[k];
}

void jobconf_init(struct jobconf *c)
{
	*c = (struct jobconf){ .compression = -1 };
}

static void list_release(struct jobconf_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct jobconf_list){ 0 };
}

void jobconf_release(struct jobconf *c)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++) {
		void *field = (char *)c + keys[i].off;
		if (keys[i].kind == K_STR)
			free(*(char **)field);
		else if (keys[i].kind == K_LIST || keys[i].kind == K_WORDS)
			list_release(field); /* "path" and "paths" share one: the 2nd is a no-op */
	}
	jobconf_init(c);
}

bool jobconf_has_policy(const struct jobconf *c)
{
	for (size_t k = 0; k < JOBCONF_KEEP_N; k++)
		if (c->keep[k] > 0)
			return true;
	return c->keep_within || c->keep_tags.n > 0;
}

/* ---- one line ----------------------------------------------------------- */

struct parser {
	const char *where;
	unsigned line;
	bool seen[ARRAY_SIZE(keys)]; /* scalars may appear once */
};

static int bad(const struct parser *p, const char *key, const char *what)
{
	if (key)
		return cairn_err_set(-EINVAL, "%s:%u: '%s' %s", p->where, p->line, key, what);
	return cairn_err_set(-EINVAL, "%s:%u: %s", p->where, p->line, what);
}

static int list_add(const struct parser *p, const struct key *k, struct jobconf_list *l,
                    const char *v, size_t n)
{
	if (l->n >= JOBCONF_MAX_LIST)
		return bad(p, k->name, "has too many values");
	char *s = strndup(v, n);
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory");
	const char *why = k->valid ? k->valid(s) : NULL;
	if (why) {
		int r = cairn_err_set(-EINVAL, "%s:%u: '%s' %s: '%s'", p->where, p->line, k->name,
		                      why, s);
		free(s);
		return r;
	}
	char **nv = realloc(l->v, (l->n + 1) * sizeof(*nv));
	if (!nv) {
		free(s);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	l->v = nv;
	l->v[l->n++] = s;
	return 0;
}

static int set_words(const struct parser *p, const struct key *k, struct jobconf_list *l,
                     const char *v)
{
	while (*v) {
		size_t n = strcspn(v, " \t");
		int r = n ? list_add(p, k, l, v, n) : 0;
		if (r < 0)
			return r;
		v += n + strspn(v + n, " \t");
	}
	return 0;
}

static int set_bool(const struct parser *p, const struct key *k, bool *out, const char *v)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "on") || !strcmp(v, "1"))
		*out = true;
	else if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "off") || !strcmp(v, "0"))
		*out = false;
	else
		return bad(p, k->name, "must be yes or no");
	return 0;
}

static int set_long(const struct parser *p, const struct key *k, long *out, const char *v)
{
	unsigned long u;
	char msg[80];
	if (!parse_ulong(v, strlen(v), &u) || u < (unsigned long)k->min ||
	    u > (unsigned long)k->max) {
		snprintf(msg, sizeof(msg), "must be a number from %ld to %ld", k->min, k->max);
		return bad(p, k->name, msg);
	}
	*out = (long)u;
	return 0;
}

static int set_str(const struct parser *p, const struct key *k, char **out, const char *v)
{
	const char *why = k->valid ? k->valid(v) : NULL;
	if (why)
		return bad(p, k->name, why);
	if (!(*out = strdup(v)))
		return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

static int assign(struct parser *p, struct jobconf *c, size_t ki, const char *v)
{
	const struct key *k = &keys[ki];
	void *field = (char *)c + k->off;

	if (k->kind != K_LIST && k->kind != K_WORDS) {
		if (p->seen[ki])
			return bad(p, k->name, "is given twice");
		p->seen[ki] = true;
	}
	switch (k->kind) {
	case K_STR:
		return set_str(p, k, field, v);
	case K_LIST:
		return list_add(p, k, field, v, strlen(v));
	case K_WORDS:
		return set_words(p, k, field, v);
	case K_BOOL:
		return set_bool(p, k, field, v);
	case K_LONG:
		return set_long(p, k, field, v);
	}
	return bad(p, k->name, "has an unknown type");
}

static char *trim(char *s)
{
	s += strspn(s, " \t");
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

/* line is NUL-terminated, without its newline. */
static int parse_line(struct parser *p, struct jobconf *c, char *line)
{
	for (const char *q = line; *q; q++)
		if ((unsigned char)*q < 0x20 ? *q != '\t' : *q == 0x7f)
			return bad(p, NULL, "control character in line");
	char *s = trim(line);
	if (*s == '\0' || *s == '#')
		return 0;
	size_t kn = strspn(s, "abcdefghijklmnopqrstuvwxyz0123456789-");
	char *eq = s + kn + strspn(s + kn, " \t");
	if (kn == 0 || *eq != '=')
		return bad(p, NULL, "expected 'key = value'");
	s[kn] = '\0';
	char *v = trim(eq + 1);
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (strcmp(keys[i].name, s) == 0)
			return *v ? assign(p, c, i, v) : bad(p, s, "has no value");
	return bad(p, s, "is not a known key (see cairn.conf(5))");
}

/* ---- whole files -------------------------------------------------------- */

static int check_complete(const struct parser *p, const struct jobconf *c)
{
	if (!c->repository)
		return cairn_err_set(-EINVAL, "%s: 'repository' is missing", p->where);
	if (c->paths.n + c->files_from.n + c->files_from_verbatim.n + c->files_from_raw.n == 0)
		return cairn_err_set(-EINVAL, "%s: 'paths' (or 'files-from') is missing", p->where);
	if (c->password_file && c->password_command)
		return cairn_err_set(-EINVAL,
		                     "%s: give 'password-file' or 'password-command', not both",
		                     p->where);
	bool s3_repo = strncmp(c->repository, "s3://", 5) == 0;
	if (c->s3_endpoint && !c->s3_target && !s3_repo)
		return cairn_err_set(-EINVAL,
		                     "%s: 's3-endpoint' needs 's3-target' or an s3:// 'repository'",
		                     p->where);
	if (c->s3_lock_days && !c->s3_target && !s3_repo)
		return cairn_err_set(
		        -EINVAL, "%s: 's3-lock-days' needs 's3-target' or an s3:// 'repository'",
		        p->where);
	if (c->s3_lock_mode && !c->s3_lock_days)
		return cairn_err_set(-EINVAL, "%s: 's3-lock-mode' needs 's3-lock-days'", p->where);
	return 0;
}

static int parse_all(struct parser *p, struct jobconf *c, const char *text, size_t len)
{
	char line[JOBCONF_MAX_LINE + 1];
	size_t pos = 0;

	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		p->line++;
		if (n > 0 && text[pos + n - 1] == '\r')
			n--; /* files edited on Windows */
		if (n > JOBCONF_MAX_LINE)
			return bad(p, NULL, "line too long");
		if (memchr(text + pos, '\0', n))
			return bad(p, NULL, "NUL byte in line");
		memcpy(line, text + pos, n);
		line[n] = '\0';
		int r = parse_line(p, c, line);
		if (r < 0)
			return r;
		pos += (nl ? (size_t)(nl - (text + pos)) + 1 : len - pos);
	}
	return check_complete(p, c);
}

int jobconf_parse(struct jobconf *c, const char *where, const char *text, size_t len)
{
	struct parser p = { .where = where };
	struct jobconf t;

	if (len > JOBCONF_MAX_SIZE)
		return cairn_err_set(-EFBIG, "%s: larger than %d bytes", where, JOBCONF_MAX_SIZE);
	jobconf_init(&t);
	int r = parse_all(&p, &t, text, len);
	if (r < 0) {
		jobconf_release(&t);
		return r;
	}
	*c = t;
	return 0;
}

/* Who may change what st describes: only root or this user, as cron, sshd and
 * sudo have it. A sticky directory (/tmp) lets nobody replace another's file. */
static int check_owner(const struct stat *st, const char *what, const char *path)
{
	if (st->st_uid != 0 && st->st_uid != geteuid())
		return cairn_err_set(
		        -EPERM,
		        "refusing job file '%s': %s is owned by uid %u, not by root or "
		        "this user (a job file runs its password-command)",
		        path, what, (unsigned)st->st_uid);
	if ((st->st_mode & (S_IWGRP | S_IWOTH)) &&
	    !(S_ISDIR(st->st_mode) && (st->st_mode & S_ISVTX)))
		return cairn_err_set(
		        -EPERM,
		        "refusing job file '%s': %s is writable by %s (mode %04o; a job "
		        "file runs its password-command): chmod go-w it",
		        path, what, st->st_mode & S_IWOTH ? "others" : "its group",
		        (unsigned)(st->st_mode & 07777));
	return 0;
}

/* The job file (the file a symlink names) and its directory. */
static int check_job_file(int fd, const char *path)
{
	struct stat st;
	char dir[4096];
	if (fstat(fd, &st) < 0)
		return cairn_err_set(-errno, "cannot read job file '%s': %s", path,
		                     strerror(errno));
	int r = check_owner(&st, "the file", path);
	snprintf(dir, sizeof(dir), "%s", path);
	if (r == 0 && stat(dirname(dir), &st) == 0)
		r = check_owner(&st, "its directory", path);
	return r;
}

int jobconf_load(struct jobconf *c, const char *path)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot read job file '%s': %s", path,
		                     strerror(errno));
	int r = check_job_file(fd, path);
	if (r < 0)
		return r;
	r = cairn_file_slurp_fd(fd, path, JOBCONF_MAX_SIZE, &b);
	if (r == -EFBIG)
		return cairn_err_set(r, "%s: larger than %d bytes", path, JOBCONF_MAX_SIZE);
	if (r < 0)
		return cairn_err_set(r, "cannot read job file '%s': %s", path, strerror(-r));
	return jobconf_parse(c, path, (const char *)b.data, b.len);
}

/* ---- names -------------------------------------------------------------- */

/* A job name becomes a path: no '/', no "..", nothing hidden. */
static int check_name(const char *name)
{
	size_t n =
	        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.@-");
	if (n == 0 || name[n] || n > JOBCONF_MAX_NAME || name[0] == '.')
		return cairn_err_set(-EINVAL,
		                     "'%.*s' is not a job name (1 to %d of [A-Za-z0-9_.@-], "
		                     "not starting with '.')",
		                     JOBCONF_MAX_NAME, name, JOBCONF_MAX_NAME);
	return 0;
}

/* A job named after its --config FILE may hold more than a job name's bytes,
 * but never a '/', and it is never hidden. */
static int in_dir_loose(char *buf, size_t size, const char *dir, const char *name, const char *ext)
{
	if (!*name || strchr(name, '/') || name[0] == '.')
		return cairn_err_set(-EINVAL, "'%s' cannot name a file", name);
	int w = snprintf(buf, size, "%s/%s%s", dir, name, ext);
	if (w < 0 || (size_t)w >= size)
		return cairn_err_set(-ENAMETOOLONG, "path of job '%s' too long", name);
	return 0;
}

static int in_dir(char *buf, size_t size, const char *dir, const char *name, const char *ext)
{
	int r = check_name(name);
	if (r < 0)
		return r;
	return in_dir_loose(buf, size, dir, name, ext);
}

int jobconf_path(char *buf, size_t size, const char *name)
{
	const char *dir = getenv("CAIRN_CONFIG_DIR");
	return in_dir(buf, size, dir && *dir ? dir : "/etc/cairn", name, ".conf");
}

const char *jobconf_state_dir(void)
{
	const char *dir = getenv("CAIRN_STATE_DIR");
	return dir && *dir ? dir : "/var/lib/cairn";
}

int jobconf_state_path(char *buf, size_t size, const char *name, const char *ext)
{
	return in_dir_loose(buf, size, jobconf_state_dir(), name, ext);
}

void jobconf_name_from_path(char *buf, size_t size, const char *path)
{
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	size_t n = strlen(base);
	if (n > 5 && strcmp(base + n - 5, ".conf") == 0)
		n -= 5;
	snprintf(buf, size, "%.*s", (int)(n > INT32_MAX ? INT32_MAX : n), base);
}
