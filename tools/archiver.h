/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The ingester: turns directory trees into tree and data blobs, in parallel. */
#ifndef CAIRN_ARCHIVER_H
#define CAIRN_ARCHIVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "cairn/store.h"

/* Live counters, read by the progress display while the archiver runs. */
struct archiver_stats {
	atomic_uint_fast64_t files_new, files_changed, files_unmodified, dirs;
	atomic_uint_fast64_t files_done, bytes_done, bytes_read;
	atomic_uint_fast64_t errors, warnings;
	/* Totals from the concurrent scan (progress estimate only). */
	atomic_uint_fast64_t files_total, bytes_total;
	atomic_bool scan_done;
	pthread_mutex_t lock;
	char current[512];  /* protected by lock: the file being read */
	char last_dir[512]; /* protected by lock: the last completed directory */
};
void archiver_stats_init(struct archiver_stats *st);
void archiver_stats_release(struct archiver_stats *st);

/* What the backup does with an entry (backup --list). */
enum archiver_fate {
	ARCHIVER_NEW,        /* not in the parent snapshot */
	ARCHIVER_CHANGED,    /* in it, but changed (a file is read again) */
	ARCHIVER_UNMODIFIED, /* as in the parent snapshot (a file is not read) */
	ARCHIVER_EXCLUDED,   /* left out, by the rule named */
};

/* A file whose presence leaves its directory out (--exclude-if-present,
 * --exclude-caches). */
struct archiver_marker {
	const char *name;   /* a name in the directory */
	const char *header; /* the first bytes of that regular file, or NULL: any entry */
	const char *rule;   /* how --list names it */
};

struct archiver_opts {
	const char *const *paths; /* absolute, normalised (see archiver_normalize_paths) */
	size_t npaths;
	/* The rule that leaves path (absolute, raw bytes) out of the backup, as
	 * the user would name it ("--exclude '*.o'"; borrowed for the whole
	 * run), or NULL to keep it. root_len: the length of the path given that
	 * path lies under; what matches at or above it does not count. Called from
	 * several threads at once. */
	const char *(*exclude)(const char *path, size_t len, size_t root_len, void *payload);
	void *exclude_payload;
	/* When set, told the fate of every entry as it is decided (directories
	 * once their content is done), from any thread but one call at a time.
	 * rule is NULL unless fate is ARCHIVER_EXCLUDED. */
	void (*list)(const char *path, enum archiver_fate fate, const char *rule, void *payload);
	void *list_payload;
	const struct archiver_marker *markers; /* directories holding one are left out */
	size_t nmarkers;
	uint64_t max_file_size;    /* files larger are left out (UINT64_MAX: none) */
	const char *max_file_rule; /* how --list names that */
	/* When set, back up what stdin_fd gives, to its end, as the one file
	 * "/stdin_name" (a name, no '/'), instead of the paths. */
	const char *stdin_name;
	int stdin_fd;
	bool one_file_system;                /* do not descend into other filesystems */
	bool dry_run;                        /* read and hash, but store nothing */
	bool scan;                           /* run a concurrent scan for progress totals */
	int threads;                         /* worker threads; 0 = number of CPUs */
	const struct cairn_snapshot *parent; /* incremental base, or NULL */
	const atomic_bool *cancel;           /* set from a signal handler to stop */
};

/* Back up the paths. On success *root gets the ID of the root tree; every blob it
 * needs is stored (packs still open: call cairn_repo_flush()). Unreadable entries
 * are warnings counted in st->errors; the returned error is for failures that stop
 * the backup (-ENOSPC, -EIO on the repository, -ECANCELED, -ENOMEM). */
int archiver_run(cairn_repo *repo, const struct archiver_opts *o, struct archiver_stats *st,
                 struct cairn_id *root);

/* Make each path absolute (realpath), drop duplicates and paths inside others,
 * and sort. A path that is not there or cannot be reached (ENOENT, ENOTDIR,
 * EACCES) stays in the list, as its longest prefix that resolves followed by
 * the rest as written: archiver_run then reports it as an entry it could not
 * back up. Returns how many of the paths in *out are such (the message of the
 * first names it), so that the caller can refuse a backup of nothing. Caller
 * frees each string and the array. -ENOMEM, or -errno of another failure. */
int archiver_normalize_paths(char **in, size_t n, char ***out, size_t *nout);

#endif
