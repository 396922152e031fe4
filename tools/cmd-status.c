/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn status: how far a repository meets the 3-2-1-1-0 rule. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>
#include <time.h>

#include "cli.h"
#include "jobconf.h"
#include "s3.h"
#include "sigv4.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn status [--json] [--job NAME] [--s3 s3://BUCKET[/PREFIX]]\n"
        "                    [--s3-endpoint URL] [--offline] [--check-max-age DAYS]\n"
        "\n"
        "Reports how far the repository meets the 3-2-1-1-0 rule:\n"
        "  3 copies    the source, the repository, and a synced S3 copy (with how many\n"
        "              snapshots it is behind and the age of its newest snapshot)\n"
        "  2 media     local or network disk, and an object store\n"
        "  1 offsite   an S3 copy\n"
        "  1 immutable the bucket has S3 Object Lock or versioning (asked from the bucket)\n"
        "  0 errors    the last 'cairn check --read-data' (or a subset) read data,\n"
        "              found no damage, and is at most DAYS old\n"
        "\n"
        "  --json                one JSON object instead of the table\n"
        "  --job NAME            take the repository, password file, S3 target and\n"
        "                        endpoint from the job file (cairn.conf(5))\n"
        "  --s3 URL              the S3 copy made by 'cairn sync URL'\n"
        "  --s3-endpoint URL     its endpoint, as given to sync\n"
        "  --offline             do not ask the bucket (immutability is then unknown)\n"
        "  --check-max-age DAYS  an older data check does not count (default 35)\n"
        "\n"
        "The S3 copy is known from the state 'cairn sync' keeps in the local index.\n"
        "Exit status: 0 every rule is met, 1 a rule is not met or its state is unknown\n"
        "(or the report failed), 2 bad usage.\n";

enum {
	OPT_JOB = OPT_FIRST_COMMAND_OPT,
	OPT_S3,
	OPT_S3_ENDPOINT,
	OPT_OFFLINE,
	OPT_MAX_AGE,
};

enum rule { RULE_COPIES, RULE_MEDIA, RULE_OFFSITE, RULE_IMMUTABLE, RULE_ERRORS, RULE_N };
static const char *const rule_names[RULE_N] = { "copies", "media", "offsite", "immutable",
	                                        "errors" };
static const char *const rule_titles[RULE_N] = { "3 copies", "2 media", "1 offsite", "1 immutable",
	                                         "0 errors" };

enum immutability { IMM_UNKNOWN, IMM_NONE, IMM_VERSIONING, IMM_LOCK };
static const char *const imm_names[] = { "unknown", "none", "versioning", "object-lock" };

struct s3_copy {
	const char *url;      /* NULL: no S3 copy named */
	const char *endpoint; /* --s3-endpoint or the job's */
	bool known;           /* the sync state could be read */
	char why[512];        /* why not known, or what the bucket said */
	size_t uploaded, behind;
	int64_t newest_ns; /* newest uploaded snapshot; 0 none */
	enum immutability imm;
	char imm_detail[128];
};

struct data_check {
	bool present;
	int64_t time;
	bool ok;
	unsigned long errors;
	char mode[16]; /* "full" or "subset" */
	char subset[32];
	bool newer_failed; /* a later check without --read-data found damage */
	bool read_nothing; /* it read no data of a repository that has some */
	/* What it read: packs_read of packs, bytes_read of bytes (records older
	 * than these fields: share_known false). */
	bool share_known;
	unsigned long long packs, packs_read, bytes, bytes_read;
};

struct report {
	const char *repo;
	size_t snapshots;
	int64_t newest_ns;
	bool network_fs;
	struct s3_copy s3;
	struct data_check check;
	long max_age_days;
	bool offline, json;
	time_t now;
	bool met[RULE_N];
	char why[RULE_N][640];
};

struct status_opts {
	const char *job;
	struct report *rep;
};

static int handle(int c, const char *arg, void *payload)
{
	struct status_opts *o = payload;
	struct report *rep = o->rep;
	switch (c) {
	case OPT_JSON:
		rep->json = true;
		return 0;
	case OPT_JOB:
		o->job = arg;
		return 0;
	case OPT_S3:
		rep->s3.url = arg;
		return 0;
	case OPT_S3_ENDPOINT:
		rep->s3.endpoint = arg;
		return 0;
	case OPT_OFFLINE:
		rep->offline = true;
		return 0;
	case OPT_MAX_AGE:
		return cli_parse_int(arg, 1, 36500, &rep->max_age_days);
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* ---- gathering ---------------------------------------------------------- */

/* NFS, SMB/CIFS, FUSE-mounted storage: a disk elsewhere, still one medium. */
static bool on_network_fs(const char *path)
{
	struct statfs s;
	if (statfs(path, &s) < 0)
		return false;
	unsigned long t = (unsigned long)s.f_type;
	return t == 0x6969 || t == 0xff534d42 || t == 0xfe534d42 || t == 0x517b || t == 0x65735546;
}

/* The name cmd-sync.c (table_name) gives the state of endpoint/bucket/prefix. */
static void sync_table(char *out, size_t size, const char *endpoint, const char *bucket,
                       const char *prefix)
{
	char id[900], hex[65];
	int n = snprintf(id, sizeof(id), "%s/%s/%s", endpoint, bucket, prefix);
	if (n > 0 && (size_t)n < 100) {
		snprintf(out, size, "sync:%s", id);
		return;
	}
	cairn_sigv4_sha256_hex(hex, id, strlen(id)); /* LMDB names are short */
	snprintf(out, size, "sync:%.40s", hex);
}

static void count_uploaded(cairn_repo *repo, struct s3_copy *s3, const char *table,
                           struct cairn_snapshot **list, size_t n)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	char key[16 + CAIRN_ID_HEX_SIZE];
	s3->known = true;
	for (size_t i = 0; i < n; i++) {
		memcpy(key, "snapshots/", 10);
		cairn_id_hex(key + 10, &list[i]->id);
		int r = cairn_repo_state_get(repo, table, key, strlen(key), &v);
		if (r == -ENOENT) {
			s3->behind++;
			continue;
		}
		if (r < 0) {
			s3->known = false;
			snprintf(s3->why, sizeof(s3->why), "cannot read the sync state: %s",
			         cairn_err_msg());
			return;
		}
		s3->uploaded++;
		if (list[i]->time_ns > s3->newest_ns)
			s3->newest_ns = list[i]->time_ns;
	}
}

/* Object Lock is immutability proper; versioning keeps overwritten and deleted
 * objects recoverable, which counts too (the 3-2-1-1-0 "1" is about ransomware
 * that deletes the copies it can reach). */
static void ask_bucket(struct s3_copy *s3, cairn_s3 *s)
{
	cairn_s3_conn *c = NULL;
	struct cairn_s3xml_lock lock = { 0 };
	char versioning[16] = "";
	if (cairn_s3_conn_new(&c, s) < 0) {
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "%s", cairn_err_msg());
		return;
	}
	int r = cairn_s3_object_lock(c, &lock);
	/* Object Lock without a default retention locks only the objects uploaded
	 * with a retention of their own (sync --s3-lock-days), which nothing here
	 * can tell: it is no more than the versioning it implies. */
	bool bare_lock = r >= 0 && lock.enabled && !lock.mode[0];
	if (r >= 0 && lock.enabled && lock.mode[0]) {
		s3->imm = IMM_LOCK;
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "Object Lock %s default retention",
		         lock.mode);
	} else if ((r >= 0 || r == -ENOENT) && (r = cairn_s3_versioning(c, versioning)) >= 0) {
		bool on = strcmp(versioning, "Enabled") == 0;
		s3->imm = on ? IMM_VERSIONING : IMM_NONE;
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "%s%s",
		         on ? "versioning enabled" : "no Object Lock, no versioning",
		         bare_lock ? "; Object Lock without default retention locks only what "
		                     "sync uploads with --s3-lock-days"
		                   : "");
	} else {
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "cannot ask the bucket: %s",
		         cairn_err_msg());
	}
	cairn_s3_conn_free(c);
}

static void gather_s3(cairn_repo *repo, struct report *rep, struct cairn_snapshot **list, size_t n)
{
	struct s3_copy *s3 = &rep->s3;
	struct cairn_s3_opts o = { .version = CAIRN_S3_OPTS_VERSION, .endpoint = s3->endpoint };
	_cleanup_free_ char *bucket = NULL, *prefix = NULL;
	cairn_s3 *s = NULL;
	char table[160];

	s3->imm = IMM_UNKNOWN;
	snprintf(s3->imm_detail, sizeof(s3->imm_detail), "not asked (--offline)");
	if (cairn_s3_url_parse(s3->url, &bucket, &prefix) < 0 || cairn_s3_new(&s, bucket, &o) < 0) {
		snprintf(s3->why, sizeof(s3->why), "%s", cairn_err_msg());
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "%s", cairn_err_msg());
		return;
	}
	sync_table(table, sizeof(table), cairn_s3_endpoint(s), bucket, prefix);
	count_uploaded(repo, s3, table, list, n);
	if (!rep->offline)
		ask_bucket(s3, s);
	cairn_s3_free(s);
}

/* Values of the check record: "key=value" lines (cmd-check.c record()). */
static const char *field(const char *text, const char *key, char *out, size_t size)
{
	size_t n = strlen(key);
	for (const char *p = text; p && *p; p = strchr(p, '\n'), p = p ? p + 1 : NULL)
		if (strncmp(p, key, n) == 0 && p[n] == '=') {
			size_t len = strcspn(p + n + 1, "\n");
			snprintf(out, size, "%.*s", (int)(len < size ? len : size - 1), p + n + 1);
			return out;
		}
	snprintf(out, size, "%s", "");
	return out;
}

static int read_record(cairn_repo *repo, const char *key, char *text, size_t size)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	int r = cairn_repo_state_get(repo, "check", key, strlen(key), &v);
	if (r < 0)
		return r;
	size_t n = v.len < size - 1 ? v.len : size - 1;
	memcpy(text, v.data, n);
	text[n] = '\0';
	return 0;
}

static void gather_check(cairn_repo *repo, struct data_check *ck)
{
	char text[1024], val[64];
	if (read_record(repo, "last-read-data", text, sizeof(text)) < 0)
		return;
	ck->present = true;
	ck->time = strtoll(field(text, "time", val, sizeof(val)), NULL, 10);
	ck->ok = strcmp(field(text, "ok", val, sizeof(val)), "1") == 0;
	ck->errors = strtoul(field(text, "errors", val, sizeof(val)), NULL, 10);
	field(text, "read_data", ck->mode, sizeof(ck->mode));
	field(text, "subset", ck->subset, sizeof(ck->subset));
	ck->share_known = *field(text, "bytes_read", val, sizeof(val)) != '\0';
	ck->bytes_read = strtoull(val, NULL, 10);
	ck->bytes = strtoull(field(text, "bytes", val, sizeof(val)), NULL, 10);
	ck->packs = strtoull(field(text, "packs", val, sizeof(val)), NULL, 10);
	ck->packs_read = strtoull(field(text, "packs_read", val, sizeof(val)), NULL, 10);
	/* A structure check after the data check that found damage counts too. */
	if (read_record(repo, "last", text, sizeof(text)) >= 0 &&
	    strtoll(field(text, "time", val, sizeof(val)), NULL, 10) > ck->time &&
	    strcmp(field(text, "ok", val, sizeof(val)), "1") != 0)
		ck->newer_failed = true;
}

static int gather(cairn_repo *repo, struct report *rep)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);
	if (r < 0)
		return r;
	rep->snapshots = n;
	for (size_t i = 0; i < n; i++)
		if (list[i]->time_ns > rep->newest_ns)
			rep->newest_ns = list[i]->time_ns;
	rep->network_fs = on_network_fs(rep->repo);
	if (rep->s3.url)
		gather_s3(repo, rep, list, n);
	gather_check(repo, &rep->check);
	cairn_snapshot_list_free(list, n);
	return 0;
}

/* ---- judging ------------------------------------------------------------ */

static void fmt_age(char *buf, size_t size, int64_t secs)
{
	if (secs < 0)
		secs = 0;
	if (secs < 120)
		snprintf(buf, size, "%llds ago", (long long)secs);
	else if (secs < 2 * 3600)
		snprintf(buf, size, "%lldm ago", (long long)secs / 60);
	else if (secs < 2 * 86400)
		snprintf(buf, size, "%lldh ago", (long long)secs / 3600);
	else
		snprintf(buf, size, "%lldd ago", (long long)secs / 86400);
}

static int64_t age_of_ns(const struct report *rep, int64_t ns)
{
	return (int64_t)rep->now - ns / 1000000000;
}

static bool s3_counts(const struct report *rep)
{
	return rep->s3.url && rep->s3.known && rep->s3.uploaded > 0;
}

static void judge_copies(struct report *rep)
{
	char *w = rep->why[RULE_COPIES], age[32];
	size_t size = sizeof(rep->why[0]);
	int copies = 1 + (rep->snapshots > 0) + s3_counts(rep);
	int k = snprintf(w, size, "%d of 3: source, %s", copies,
	                 rep->snapshots ? "repository" : "repository (no snapshot yet)");
	rep->met[RULE_COPIES] = copies >= 3;
	if (!rep->s3.url) {
		snprintf(w + k, size - (size_t)k, "; no S3 copy (give --s3 or --job)");
	} else if (!rep->s3.known) {
		snprintf(w + k, size - (size_t)k, "; S3 copy unknown: %s", rep->s3.why);
	} else if (!rep->s3.uploaded) {
		snprintf(w + k, size - (size_t)k, "; %s holds no snapshot yet", rep->s3.url);
	} else {
		fmt_age(age, sizeof(age), age_of_ns(rep, rep->s3.newest_ns));
		snprintf(w + k, size - (size_t)k, ", %s (%zu snapshots behind, newest %s)",
		         rep->s3.url, rep->s3.behind, age);
	}
}

static void judge_layout(struct report *rep)
{
	const char *disk = rep->network_fs ? "network disk" : "local disk";
	bool s3 = s3_counts(rep);
	rep->met[RULE_MEDIA] = s3;
	snprintf(rep->why[RULE_MEDIA], sizeof(rep->why[0]), "%s%s", disk,
	         s3 ? ", object store" : " only");
	rep->met[RULE_OFFSITE] = s3;
	snprintf(rep->why[RULE_OFFSITE], sizeof(rep->why[0]), "%s",
	         s3 ? rep->s3.url : "no copy outside this machine");
	rep->met[RULE_IMMUTABLE] = s3 && (rep->s3.imm == IMM_LOCK || rep->s3.imm == IMM_VERSIONING);
	if (!rep->s3.url)
		snprintf(rep->why[RULE_IMMUTABLE], sizeof(rep->why[0]), "no S3 copy");
	else
		snprintf(rep->why[RULE_IMMUTABLE], sizeof(rep->why[0]), "%s: %s",
		         imm_names[rep->s3.imm], rep->s3.imm_detail);
}

/* ": read 1 of 40 packs, 12.0 MiB of 480.0 MiB": the share the check read. */
static void fmt_share(char *buf, size_t size, const struct data_check *ck)
{
	char rd[32], all[32];
	if (!ck->share_known) {
		buf[0] = '\0';
		return;
	}
	snprintf(buf, size, ": read %llu of %llu packs, %s of %s", ck->packs_read, ck->packs,
	         cli_fmt_bytes(rd, sizeof(rd), ck->bytes_read),
	         cli_fmt_bytes(all, sizeof(all), ck->bytes));
}

/* A data check that read no pack verified nothing: not of a repository that
 * had packs then, nor of one that has snapshots now (it was checked while
 * empty). A record of an older cairn, without the share it read, counts for a
 * full read only: its subsets could select no pack at all. */
static bool read_nothing(const struct report *rep)
{
	const struct data_check *ck = &rep->check;
	if (!ck->share_known)
		return strcmp(ck->mode, "full") != 0;
	return ck->packs_read == 0 && (ck->packs > 0 || rep->snapshots > 0);
}

static void judge_errors(struct report *rep)
{
	struct data_check *ck = &rep->check;
	char *w = rep->why[RULE_ERRORS], age[32], share[128];
	size_t size = sizeof(rep->why[0]);
	int64_t secs = (int64_t)rep->now - ck->time;

	if (!ck->present) {
		snprintf(w, size, "never checked (run 'cairn check --read-data')");
		return;
	}
	fmt_age(age, sizeof(age), secs);
	fmt_share(share, sizeof(share), ck);
	bool fresh = secs <= (int64_t)rep->max_age_days * 86400;
	ck->read_nothing = read_nothing(rep);
	rep->met[RULE_ERRORS] =
	        ck->ok && ck->errors == 0 && !ck->newer_failed && fresh && !ck->read_nothing;
	snprintf(w, size, "last data check (%s%s%s%s) %s: %lu errors%s%s%s", ck->mode,
	         ck->subset[0] ? " " : "", ck->subset, share, age, ck->errors,
	         ck->newer_failed ? "; a later check found damage" : "",
	         fresh ? "" : "; older than --check-max-age",
	         !ck->read_nothing ? ""
	         : ck->share_known ? "; it read no data, so it does not count"
	                           : "; what share it read is unknown, so it does not count");
}

/* ---- output ------------------------------------------------------------- */

static void print_text(const struct report *rep)
{
	char age[32] = "never";
	int missed = 0;
	if (rep->snapshots)
		fmt_age(age, sizeof(age), age_of_ns(rep, rep->newest_ns));
	printf("repository %s: %zu snapshots, newest %s\n", rep->repo, rep->snapshots, age);
	for (int i = 0; i < RULE_N; i++) {
		printf("%-12s %-4s ", rule_titles[i], rep->met[i] ? "yes" : "no");
		cairn_text_str(stdout, rep->why[i], strlen(rep->why[i])); /* may quote errors */
		fputc('\n', stdout);
		missed += !rep->met[i];
	}
	if (missed)
		printf("%d of %d rules not met\n", missed, RULE_N);
	else
		printf("all rules met\n");
}

static void json_kv_str(const char *key, const char *v)
{
	printf("\"%s\":", key);
	if (v)
		cli_json_str(stdout, v, strlen(v));
	else
		fputs("null", stdout);
}

static void print_json_s3(const struct report *rep)
{
	const struct s3_copy *s3 = &rep->s3;
	fputs(",\"s3\":", stdout);
	if (!s3->url) {
		fputs("null", stdout);
		return;
	}
	fputc('{', stdout);
	json_kv_str("target", s3->url);
	printf(",\"known\":%s,", s3->known ? "true" : "false");
	json_kv_str("error", s3->known ? NULL : s3->why);
	printf(",\"uploaded_snapshots\":%zu,\"behind_snapshots\":%zu", s3->uploaded, s3->behind);
	if (s3->newest_ns)
		printf(",\"newest_uploaded_age_seconds\":%lld",
		       (long long)age_of_ns(rep, s3->newest_ns));
	printf(",\"immutability\":\"%s\",", imm_names[s3->imm]);
	json_kv_str("immutability_detail", s3->imm_detail);
	fputc('}', stdout);
}

static void print_json_check(const struct report *rep)
{
	const struct data_check *ck = &rep->check;
	fputs(",\"check\":", stdout);
	if (!ck->present) {
		fputs("null", stdout);
		return;
	}
	printf("{\"time\":%lld,\"age_seconds\":%lld,\"ok\":%s,\"errors\":%lu,", (long long)ck->time,
	       (long long)(rep->now - ck->time), ck->ok ? "true" : "false", ck->errors);
	json_kv_str("read_data", ck->mode);
	fputc(',', stdout);
	json_kv_str("subset", ck->subset[0] ? ck->subset : NULL);
	if (ck->share_known)
		printf(",\"packs\":%llu,\"packs_read\":%llu,\"bytes\":%llu,\"bytes_read\":%llu",
		       ck->packs, ck->packs_read, ck->bytes, ck->bytes_read);
	printf(",\"later_check_failed\":%s,\"read_nothing\":%s}",
	       ck->newer_failed ? "true" : "false", ck->read_nothing ? "true" : "false");
}

static void print_json(const struct report *rep)
{
	bool all = true;
	fputc('{', stdout);
	json_kv_str("repository", rep->repo);
	printf(",\"snapshots\":%zu", rep->snapshots);
	if (rep->snapshots)
		printf(",\"newest_snapshot_age_seconds\":%lld",
		       (long long)age_of_ns(rep, rep->newest_ns));
	printf(",\"media\":[\"%s\"%s]", rep->network_fs ? "network-disk" : "local-disk",
	       s3_counts(rep) ? ",\"object-store\"" : "");
	print_json_s3(rep);
	print_json_check(rep);
	fputs(",\"rules\":{", stdout);
	for (int i = 0; i < RULE_N; i++) {
		printf("%s\"%s\":{\"met\":%s,", i ? "," : "", rule_names[i],
		       rep->met[i] ? "true" : "false");
		json_kv_str("detail", rep->why[i]);
		fputc('}', stdout);
		all &= rep->met[i];
	}
	printf("},\"all_met\":%s}\n", all ? "true" : "false");
}

/* ---- the command -------------------------------------------------------- */

/* --job: the job's repository, password and S3 target, unless given otherwise. */
static int apply_job(const char *job, struct jobconf *c, struct report *rep)
{
	char path[4096];
	int r = jobconf_path(path, sizeof(path), job);
	if (r >= 0)
		r = jobconf_load(c, path);
	if (r < 0)
		return r;
	if (!cli.repo)
		cli.repo = c->repository;
	if (!cli.password_file && !cli.password_command) {
		cli.password_file = c->password_file;
		cli.password_command = c->password_command;
	}
	if (!rep->s3.url) {
		rep->s3.url = c->s3_target;
		if (!rep->s3.endpoint)
			rep->s3.endpoint = c->s3_endpoint;
	}
	return 0;
}

static int report(struct report *rep)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	_cleanup_repo_ cairn_repo *repo = NULL;
	int r = cli_open_repo(&repo, &ro);
	if (r < 0)
		return cli_fail(r);
	rep->repo = cairn_repo_path(repo);
	if ((r = gather(repo, rep)) < 0)
		return cli_fail(r);
	judge_copies(rep);
	judge_layout(rep);
	judge_errors(rep);
	if (rep->json)
		print_json(rep);
	else
		print_text(rep);
	for (int i = 0; i < RULE_N; i++)
		if (!rep->met[i])
			return EXIT_ERROR;
	return 0;
}

int cmd_status(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "json", no_argument, NULL, OPT_JSON },
		{ "job", required_argument, NULL, OPT_JOB },
		{ "s3", required_argument, NULL, OPT_S3 },
		{ "s3-endpoint", required_argument, NULL, OPT_S3_ENDPOINT },
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "check-max-age", required_argument, NULL, OPT_MAX_AGE },
		{ 0 },
	};
	struct report rep = { .max_age_days = 35, .now = time(NULL) };
	struct status_opts o = { .rep = &rep };
	struct jobconf c;
	int i = cli_parse(argc, argv, NULL, longopts, usage, handle, &o);

	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i < argc)
		return cli_usage_error("status: unexpected argument '%s'", argv[i]);
	jobconf_init(&c);
	int r = o.job ? apply_job(o.job, &c, &rep) : 0;
	int rc = r < 0 ? cli_fail(r) : report(&rep);
	jobconf_release(&c);
	return rc;
}
