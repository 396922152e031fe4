/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The 3-2-1-1-0 state of a repository (status.h). */
#include "status.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/vfs.h>

#include "cli.h"
#include "cleanup.h"

const char *const status_rule_names[RULE_N] = { "copies", "media", "offsite", "immutable",
	                                        "errors" };
const char *const status_rule_titles[RULE_N] = { "3 copies", "2 media", "1 offsite", "1 immutable",
	                                         "0 errors" };
const char *const status_imm_names[] = { "unknown", "none", "versioning", "object-lock" };

void status_init(struct status_report *rep)
{
	*rep = (struct status_report){ .max_age_days = 35, .now = time(NULL) };
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

static void count_uploaded(cairn_repo *repo, struct s3_copy *s3, const char *table,
                           struct cairn_snapshot **list, size_t n)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	char key[CAIRN_OBJ_REL_MAX], hex[CAIRN_ID_HEX_SIZE];
	s3->known = true;
	for (size_t i = 0; i < n; i++) {
		/* sync keeps its state by object path (cmd-sync.c) */
		cairn_id_hex(hex, &list[i]->id);
		int r = cairn_obj_rel(key, CAIRN_OBJ_SNAPSHOT, hex);
		if (r >= 0)
			r = cairn_repo_state_get(repo, table, key, strlen(key), &v);
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
static void ask_bucket(enum immutability *imm, char *detail, size_t size, cairn_storage *st)
{
	struct cairn_storage_protection p;
	int r = cairn_storage_protection(st, &p);
	/* Object Lock without a default retention locks only the objects uploaded
	 * with a retention of their own (--s3-lock-days), which nothing here can
	 * tell: it is no more than the versioning it implies. */
	bool bare_lock = r >= 0 && p.object_lock && !p.mode[0];
	if (r >= 0 && p.object_lock && p.mode[0]) {
		*imm = IMM_LOCK;
		snprintf(detail, size, "Object Lock %s default retention", p.mode);
	} else if (r >= 0) {
		*imm = p.versioning ? IMM_VERSIONING : IMM_NONE;
		snprintf(detail, size, "%s%s",
		         p.versioning ? "versioning enabled" : "no Object Lock, no versioning",
		         bare_lock ? "; Object Lock without default retention locks only what "
		                     "is uploaded with --s3-lock-days"
		                   : "");
	} else {
		snprintf(detail, size, "cannot ask the bucket: %s", cairn_err_msg());
	}
}

static void gather_s3(cairn_repo *repo, struct status_report *rep, struct cairn_snapshot **list,
                      size_t n)
{
	struct s3_copy *s3 = &rep->s3;
	struct cairn_storage_opts so = *cli_storage_opts();
	cairn_storage *st = NULL;
	char table[CLI_SYNC_TABLE_MAX];

	if (!so.s3.endpoint)
		so.s3.endpoint = s3->endpoint; /* the job's, unless --s3-endpoint */
	s3->imm = IMM_UNKNOWN;
	snprintf(s3->imm_detail, sizeof(s3->imm_detail), "not asked (--offline)");
	so.s3.local_only = rep->offline;
	int r = cairn_storage_open(&st, s3->url, &so);
	if (r < 0 && !rep->offline) {
		/* Without credentials only the bucket cannot be asked: what was
		 * uploaded is known from the sync state in the local index. */
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "cannot ask the bucket: %s",
		         cairn_err_msg());
		so.s3.local_only = true;
		r = cairn_storage_open(&st, s3->url, &so);
	} else if (r >= 0 && !rep->offline) {
		ask_bucket(&s3->imm, s3->imm_detail, sizeof(s3->imm_detail), st);
	}
	if (r < 0) {
		snprintf(s3->why, sizeof(s3->why), "%s", cairn_err_msg());
		snprintf(s3->imm_detail, sizeof(s3->imm_detail), "%s", cairn_err_msg());
		return;
	}
	snprintf(s3->where, sizeof(s3->where), "%s", cairn_storage_describe(st));
	cli_sync_table(table, st);
	count_uploaded(repo, s3, table, list, n);
	cairn_storage_close(st);
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

/* A repository in a bucket is itself the offsite copy, and with versioning or
 * Object Lock and hosts that only add (write-only keys, credentials without
 * DeleteObject: docs/S3.md §8) the immutable one. */
static void gather_repo_s3(cairn_repo *repo, struct status_report *rep)
{
	struct s3_repo *s = &rep->repo_s3;
	struct cairn_key_info *keys = NULL;
	size_t n = 0;

	s->remote = (cairn_storage_caps(cairn_repo_storage(repo)) & CAIRN_STORAGE_REMOTE) != 0;
	if (!s->remote)
		return;
	s->imm = IMM_UNKNOWN;
	snprintf(s->imm_detail, sizeof(s->imm_detail), "not asked (--offline)");
	if (!rep->offline)
		ask_bucket(&s->imm, s->imm_detail, sizeof(s->imm_detail), cairn_repo_storage(repo));
	if (cairn_key_list(repo, &keys, &n) >= 0)
		for (size_t i = 0; i < n; i++)
			s->write_only_keys += keys[i].kind == CAIRN_KEY_WRITE_ONLY;
	free(keys);
}

static int gather(cairn_repo *repo, struct status_report *rep)
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
	gather_repo_s3(repo, rep);
	if (rep->s3.url)
		gather_s3(repo, rep, list, n);
	gather_check(repo, &rep->check);
	cairn_snapshot_list_free(list, n);
	return 0;
}

/* ---- judging ------------------------------------------------------------ */

void status_fmt_age(char *buf, size_t size, int64_t secs)
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

int64_t status_age_of_ns(const struct status_report *rep, int64_t ns)
{
	return (int64_t)rep->now - ns / 1000000000;
}

int status_set_s3(struct status_report *rep, const char *url)
{
	if (!cairn_storage_is_url(url))
		return cairn_err_set(-EINVAL, "--s3 takes s3://BUCKET[/PREFIX], not '%s'", url);
	rep->s3.url = url;
	return 0;
}

bool status_s3_counts(const struct status_report *rep)
{
	return rep->s3.url && rep->s3.known && rep->s3.uploaded > 0;
}

static void judge_copies(struct status_report *rep)
{
	char *w = rep->why[RULE_COPIES], age[32];
	size_t size = sizeof(rep->why[0]);
	int copies = 1 + (rep->snapshots > 0) + status_s3_counts(rep);
	int k = snprintf(w, size, "%d of 3: source, %s", copies,
	                 rep->snapshots ? "repository" : "repository (no snapshot yet)");
	rep->met[RULE_COPIES] = copies >= 3;
	if (!rep->s3.url) {
		snprintf(w + k, size - (size_t)k, "; no S3 copy (give --s3 or --job)");
	} else if (!rep->s3.known) {
		snprintf(w + k, size - (size_t)k, "; S3 copy unknown: %s", rep->s3.why);
	} else if (!rep->s3.uploaded) {
		/* The sync state says what this repository uploaded, not what the
		 * bucket holds (another endpoint is another copy). */
		snprintf(w + k, size - (size_t)k, "; no snapshot synced to %s yet", rep->s3.where);
	} else {
		status_fmt_age(age, sizeof(age), status_age_of_ns(rep, rep->s3.newest_ns));
		snprintf(w + k, size - (size_t)k, ", %s (%zu %s behind, newest %s)", rep->s3.url,
		         rep->s3.behind, cli_plural(rep->s3.behind, "snapshot", "snapshots"), age);
	}
}

static bool kept_safe(enum immutability imm)
{
	return imm == IMM_LOCK || imm == IMM_VERSIONING;
}

bool status_repo_counts(const struct status_report *rep)
{
	return rep->repo_s3.remote && rep->snapshots > 0;
}

/* The repository in a bucket: "object-lock: ... (the repository's bucket; hosts
 * back up with 2 write-only keys)". */
static void why_repo_immutable(struct status_report *rep)
{
	const struct s3_repo *s = &rep->repo_s3;
	char keys[96] = "";
	if (s->write_only_keys)
		snprintf(keys, sizeof(keys), "; hosts back up with %zu write-only %s",
		         s->write_only_keys, cli_plural(s->write_only_keys, "key", "keys"));
	snprintf(rep->why[RULE_IMMUTABLE], sizeof(rep->why[0]),
	         "%s: %s (the repository's bucket%s)", status_imm_names[s->imm], s->imm_detail,
	         keys);
}

static void judge_layout(struct status_report *rep)
{
	const char *disk = rep->network_fs ? "network disk" : "local disk";
	bool s3 = status_s3_counts(rep), remote = status_repo_counts(rep);
	rep->met[RULE_MEDIA] = s3 || remote;
	if (remote)
		snprintf(rep->why[RULE_MEDIA], sizeof(rep->why[0]),
		         "local disk (the source), object store (the repository)");
	else
		snprintf(rep->why[RULE_MEDIA], sizeof(rep->why[0]), "%s%s", disk,
		         s3 ? ", object store" : " only");
	rep->met[RULE_OFFSITE] = s3 || remote;
	snprintf(rep->why[RULE_OFFSITE], sizeof(rep->why[0]), "%s",
	         remote ? rep->repo
	         : s3   ? rep->s3.url
	                : "no copy outside this machine");
	bool repo_safe = remote && kept_safe(rep->repo_s3.imm);
	rep->met[RULE_IMMUTABLE] = repo_safe || (s3 && kept_safe(rep->s3.imm));
	if (repo_safe || (rep->repo_s3.remote && !rep->s3.url))
		why_repo_immutable(rep);
	else if (!rep->s3.url)
		snprintf(rep->why[RULE_IMMUTABLE], sizeof(rep->why[0]), "no S3 copy");
	else
		snprintf(rep->why[RULE_IMMUTABLE], sizeof(rep->why[0]), "%s: %s",
		         status_imm_names[rep->s3.imm], rep->s3.imm_detail);
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
static bool read_nothing(const struct status_report *rep)
{
	const struct data_check *ck = &rep->check;
	if (!ck->share_known)
		return strcmp(ck->mode, "full") != 0;
	return ck->packs_read == 0 && (ck->packs > 0 || rep->snapshots > 0);
}

static void judge_errors(struct status_report *rep)
{
	struct data_check *ck = &rep->check;
	char *w = rep->why[RULE_ERRORS], age[32], share[128];
	size_t size = sizeof(rep->why[0]);
	int64_t secs = (int64_t)rep->now - ck->time;

	if (!ck->present) {
		snprintf(w, size, "never checked (run 'cairn check --read-data')");
		return;
	}
	status_fmt_age(age, sizeof(age), secs);
	fmt_share(share, sizeof(share), ck);
	bool fresh = secs <= (int64_t)rep->max_age_days * 86400;
	ck->read_nothing = read_nothing(rep);
	rep->met[RULE_ERRORS] =
	        ck->ok && ck->errors == 0 && !ck->newer_failed && fresh && !ck->read_nothing;
	snprintf(w, size, "last data check (%s%s%s%s) %s: %lu %s%s%s%s", ck->mode,
	         ck->subset[0] ? " " : "", ck->subset, share, age, ck->errors,
	         cli_plural(ck->errors, "error", "errors"),
	         ck->newer_failed ? "; a later check found damage" : "",
	         fresh ? "" : "; older than --check-max-age",
	         !ck->read_nothing ? ""
	         : ck->share_known ? "; it read no data, so it does not count"
	                           : "; what share it read is unknown, so it does not count");
}

int status_evaluate(cairn_repo *repo, struct status_report *rep)
{
	int r = gather(repo, rep);
	if (r < 0)
		return r;
	judge_copies(rep);
	judge_layout(rep);
	judge_errors(rep);
	return 0;
}

/* --job: the job's repository, password and S3 target, unless given otherwise. */
int status_apply_job(const char *job, struct jobconf *c, struct status_report *rep)
{
	char path[4096];
	int r = jobconf_path(path, sizeof(path), job);
	if (r >= 0)
		r = jobconf_load(c, path);
	if (r < 0)
		return r;
	if (!cli.repo) {
		cli.repo = c->repository;
		/* A bucket the hosts back up to directly is reached as the job says. */
		if (strncmp(c->repository, "s3://", 5) == 0 && !cli.storage.s3.endpoint)
			cli.storage.s3.endpoint = c->s3_endpoint;
	}
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
