/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshots a mount shows: rescanned while mounted, published as immutable views. */
#ifndef CAIRN_FS_SNAPVIEW_H
#define CAIRN_FS_SNAPVIEW_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cairn/store.h"

#define FS_NAME_SIZE 48 /* "YYYY-MM-DDTHH:MM:SS" plus a "-N" suffix, with room */
#define FS_SID_MIN 8    /* hex digits of a snapshot ID under ids/, at least */
#define FS_GMT_SIZE 32  /* "@GMT-YYYY.MM.DD-HH.MM.SS", with room */
/* The link to the newest snapshot in /, hosts/<host>/ and tags/<tag>/. No
 * snapshot name can be "latest": names start with a digit, '-' or '@'. */
#define FS_LATEST "latest"

/* One snapshot as the mount shows it. Immutable; lives as long as the snapshot view. */
struct fs_snap {
	struct cairn_id id;
	struct cairn_id root;
	int64_t time_ns;
	char *host;  /* directory name under hosts/: '/' replaced, never "", "." or ".." */
	char **tags; /* directory names under tags/, the same way */
	size_t ntags;
};

struct fs_view_ent {
	const struct fs_snap *snap;
	char name[FS_NAME_SIZE];     /* local time, unique within the view */
	char sid[CAIRN_ID_HEX_SIZE]; /* the name under ids/: the shortest unique ID prefix */
	char gmt[FS_GMT_SIZE];       /* under shadow/<host>/: UTC, unique per host */
};

/* The snapshots at one moment, oldest first. Immutable and refcounted, so a
 * handler works on one consistent list while a rescan publishes the next one. */
struct fs_view {
	atomic_uint refs;
	uint64_t gen;       /* changes whenever the set of snapshots changes */
	int64_t changed_ns; /* when it changed (see snapview.c): the virtual dirs' mtime */
	size_t n;
	struct fs_view_ent *v;
};

struct fs_snapview;

/* Scan snapshots/ once. refresh_ms: the minimum age of a view before the next
 * rescan. Caller frees with fs_snapview_free(). -ENOMEM, -EIO. */
int fs_snapview_new(struct fs_snapview **out, cairn_repo *repo, unsigned refresh_ms);
void fs_snapview_free(struct fs_snapview *c);

/* The current view, after a rescan if the last one is older than the refresh
 * interval (new snapshots appear, deleted ones go). Never fails: when a rescan
 * fails, it is logged and the previous view stays. Thread-safe; one thread
 * rescans while the others use the previous view. Put it back with fs_view_put. */
struct fs_view *fs_snapview_get(struct fs_snapview *c);
/* The current view as it is, never rescanning (for background work that must
 * cause no repository reads of its own). Put it back with fs_view_put. */
struct fs_view *fs_snapview_peek(struct fs_snapview *c);
void fs_view_put(struct fs_view *v);
/* The entry named name, or NULL. */
const struct fs_view_ent *fs_view_find(const struct fs_view *v, const char *name);
/* The entry whose name under ids/ is sid, or NULL. */
const struct fs_view_ent *fs_view_find_sid(const struct fs_view *v, const char *sid);
/* Whether s carries tag (a name under tags/). */
bool fs_snap_has_tag(const struct fs_snap *s, const char *tag);
/* The newest entry (last by time, then ID: the order of v and of the names'
 * suffixes) of host if host is not NULL, with tag if tag is not NULL; NULL if
 * none. host and tag are names under hosts/ and tags/. */
const struct fs_view_ent *fs_view_latest(const struct fs_view *v, const char *host,
                                         const char *tag);

/* Exposed for unit tests: the view name of a time (local time, no suffix). */
void fs_time_name(char out[FS_NAME_SIZE], int64_t time_ns);
/* Exposed for unit tests: names each of ents[0..n) (whose snap is set), in any
 * order, uniquely and from the set alone (docs/MOUNT.md): its local time, and
 * among equal times "-1", "-2" ... in the order of time_ns, then ID; and its
 * name under ids/: the shortest prefix of the ID in hex, of at least
 * FS_SID_MIN digits, that no other ID of the set shares; and its name under
 * shadow/<host>/: "@GMT-YYYY.MM.DD-HH.MM.SS" in UTC (Samba's vfs_shadow_copy2),
 * of its start, or for a later snapshot of the same host in a second already
 * named, of the next second free. -ENOMEM. */
int fs_view_name(struct fs_view_ent *ents, size_t n);
/* A host or tag as a directory name under hosts/, tags/ and shadow/: '/' and
 * '%' as %2F and %25, and an empty name, "." and ".." as %00, %2E and %2E.,
 * so that two hosts never share a directory (a_b and a/b did: their latest
 * and Samba's previous versions mixed them). Malloc'ed; NULL: no memory. */
char *fs_view_dir_name(const char *s);

#endif
