/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Job configuration files /etc/cairn/NAME.conf for `cairn run` (cairn.conf(5)). */
#ifndef CAIRN_JOBCONF_H
#define CAIRN_JOBCONF_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Syntax: one "key = value" per line; blank lines and lines whose first non-blank
 * character is '#' are ignored (a '#' later in a line is part of the value, since
 * paths may hold it). Spaces around the key and the value are trimmed. Keys are
 * strict: an unknown key, a scalar key given twice, an empty or malformed value,
 * a control character, a line over JOBCONF_MAX_LINE bytes or a file over
 * JOBCONF_MAX_SIZE bytes is an error naming "file:line". The keys and their
 * values are documented in packaging/man/cairn.conf.5 and docs/OPERATIONS.md.
 */
#define JOBCONF_MAX_SIZE (64 * 1024)
#define JOBCONF_MAX_LINE 4096
#define JOBCONF_MAX_LIST 1024 /* entries of one list key (paths, exclude, tags ...) */
#define JOBCONF_MAX_NAME 64

/* A list of malloc'd strings. */
struct jobconf_list {
	char **v;
	size_t n;
};

enum jobconf_keep {
	JOBCONF_KEEP_LAST,
	JOBCONF_KEEP_HOURLY,
	JOBCONF_KEEP_DAILY,
	JOBCONF_KEEP_WEEKLY,
	JOBCONF_KEEP_MONTHLY,
	JOBCONF_KEEP_YEARLY,
	JOBCONF_KEEP_N
};

/* A parsed job; every string is malloc'd and owned by the struct, NULL when unset.
 * The caller embeds it: jobconf_init / jobconf_release. */
struct jobconf {
	char *repository;               /* required: absolute, or s3://bucket[/prefix] */
	char *password_file;            /* absolute; exclusive with password_command */
	char *password_command;         /* run by sh -c */
	struct jobconf_list paths;      /* absolute; "paths" and "path" (or files-from*) */
	struct jobconf_list files_from; /* absolute; backup --files-from */
	struct jobconf_list files_from_verbatim;
	struct jobconf_list files_from_raw;
	struct jobconf_list excludes;
	struct jobconf_list exclude_files;
	struct jobconf_list iexcludes;
	struct jobconf_list iexclude_files;
	struct jobconf_list exclude_if_present; /* NAME[:HEADER] */
	char *exclude_larger_than;              /* a size: 10M */
	bool exclude_caches;
	bool one_file_system;
	struct jobconf_list tags;
	char *host;
	long compression;          /* -1 unset, else 0..19 */
	long threads;              /* 0 unset, else 1..256 */
	long keep[JOBCONF_KEEP_N]; /* 0 unset, else >= 1 */
	char *keep_within;         /* duration: 1y2m4d5h */
	struct jobconf_list keep_tags;
	bool prune;
	char *s3_target;    /* s3://bucket[/prefix] */
	char *s3_endpoint;  /* http(s)://host[:port]: of s3-target and an s3:// repository */
	long s3_lock_days;  /* 0 unset, else 1..36500: Object Lock retention of what is uploaded */
	char *s3_lock_mode; /* compliance (default) or governance */
	char *metrics_file;
	char *notify_url;             /* http(s)://... */
	char *notify_mail;            /* one address */
	char *notify_format;          /* auto, generic, slack or teams (notify.h) */
	char *log_format;             /* "text" or "json" */
	bool check;                   /* run `cairn check` after the other steps */
	char *check_read_data_subset; /* N%, n/m, '*' '/' m; implies check */
};

void jobconf_init(struct jobconf *c);
void jobconf_release(struct jobconf *c);

/* Parse len bytes of text (need not be NUL-terminated) into c, which is
 * overwritten on success and untouched on failure. where names the source in
 * messages ("/etc/cairn/x.conf"). -EINVAL with "where:line: ..." for any error,
 * -EFBIG over JOBCONF_MAX_SIZE, -ENOMEM. Reentrant (no global state). */
int jobconf_parse(struct jobconf *c, const char *where, const char *text, size_t len);
/* Read and parse a file (at most JOBCONF_MAX_SIZE bytes). -ENOENT, -EIO,
 * -EFBIG, -EINVAL as jobconf_parse. */
int jobconf_load(struct jobconf *c, const char *path);

/* The path of job name's file: $CAIRN_CONFIG_DIR/NAME.conf, else
 * /etc/cairn/NAME.conf. -EINVAL unless name is 1..JOBCONF_MAX_NAME bytes of
 * [A-Za-z0-9_.@-] not starting with '.'; -ENAMETOOLONG. */
int jobconf_path(char *buf, size_t size, const char *name);
/* The path of job name's file of state: $CAIRN_STATE_DIR/NAME.EXT, else
 * /var/lib/cairn/NAME.EXT (ext with its dot: ".runs"). -EINVAL for an empty
 * name, one with '/' or starting with '.' (a job run with --config may have a
 * name that jobconf_path refuses), -ENAMETOOLONG. */
int jobconf_state_path(char *buf, size_t size, const char *name, const char *ext);
/* The directory of those files. Borrowed (the environment's or a constant). */
const char *jobconf_state_dir(void);
/* The job name of a config path: its basename without ".conf", into buf. */
void jobconf_name_from_path(char *buf, size_t size, const char *path);
/* True if any keep-* rule is set (forget has something to do). */
bool jobconf_has_policy(const struct jobconf *c);
/* The option name of a keep rule without "--" ("keep-daily"). */
const char *jobconf_keep_name(enum jobconf_keep k);

#endif
