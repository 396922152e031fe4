/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* How far a repository meets the 3-2-1-1-0 rule: gathered and judged here, for
 * cairn status (which prints it) and cairn report (which draws it). */
#ifndef CAIRN_STATUS_H
#define CAIRN_STATUS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "cairn/store.h"
#include "jobconf.h"

enum rule { RULE_COPIES, RULE_MEDIA, RULE_OFFSITE, RULE_IMMUTABLE, RULE_ERRORS, RULE_N };

enum immutability { IMM_UNKNOWN, IMM_NONE, IMM_VERSIONING, IMM_LOCK };

struct s3_copy {
	const char *url;      /* NULL: no S3 copy named */
	const char *endpoint; /* --s3-endpoint or the job's */
	bool known;           /* the sync state could be read */
	char why[512];        /* why not known, or what the bucket said */
	char where[512];      /* "s3://b/p on http://host": the sync state's key */
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

/* The repository itself in a bucket, which hosts write to (docs/S3.md §8). */
struct s3_repo {
	bool remote; /* the repository is an s3:// one */
	enum immutability imm;
	char imm_detail[128];
	size_t write_only_keys; /* keys that can only add backups (FORMAT.md §3.3) */
};

struct status_report {
	const char *repo;
	struct s3_repo repo_s3;
	size_t snapshots;
	int64_t newest_ns;
	bool network_fs;
	struct s3_copy s3;
	struct data_check check;
	long max_age_days;
	bool offline, json; /* json: for cairn status only */
	time_t now;
	bool met[RULE_N];
	char why[RULE_N][640];
};

/* "copies", "media", ... (the keys of status --json) and "3 copies", ... */
extern const char *const status_rule_names[RULE_N];
extern const char *const status_rule_titles[RULE_N];
extern const char *const status_imm_names[];

/* Defaults: --check-max-age 35, now. */
void status_init(struct status_report *rep);
/* --job: the job's repository, password and S3 target into cli and rep, unless
 * given otherwise; c keeps the strings (the caller releases it). -errno of
 * jobconf_load. */
int status_apply_job(const char *job, struct jobconf *c, struct status_report *rep);
/* Gather what the repository, its check records and (unless rep->offline) the
 * S3 bucket tell, then judge each rule into rep->met and rep->why. -errno of
 * listing the snapshots. */
int status_evaluate(cairn_repo *repo, struct status_report *rep);
/* "12m ago" of secs seconds; the age of a time in ns at rep->now. */
void status_fmt_age(char *buf, size_t size, int64_t secs);
int64_t status_age_of_ns(const struct status_report *rep, int64_t ns);
/* Whether the S3 copy counts: known, with a snapshot. */
bool status_s3_counts(const struct status_report *rep);
/* --s3 URL of status and report: an s3:// URL (a directory is no offsite
 * copy), else -EINVAL with a message. */
int status_set_s3(struct status_report *rep, const char *url);
/* Whether the repository itself is in a bucket and holds a snapshot. */
bool status_repo_counts(const struct status_report *rep);

#endif
