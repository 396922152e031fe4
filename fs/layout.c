/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The virtual directories: the snapshot view shown as snapshots/, hosts/, tags/, ids/, shadow/. */
#include "layout.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsmap.h"
#include "history.h"

/* Where a virtual node sits: its vpath split at the first two '/'. */
struct vpos {
	char top[16];      /* snapshots, hosts, tags, ids, shadow, latest; "" for the root */
	const char *group; /* hosts/<group>, tags/<group>, shadow/<group>: NUL-terminated copy */
	const char *leaf;  /* hosts/<g>/<leaf>, tags/<g>/<leaf>, shadow/<g>/<leaf>, ids/<leaf> */
	char buf[512];
};

static int parse(const struct fs_node *n, struct vpos *p)
{
	*p = (struct vpos){ 0 };
	if (n->kind == FS_ROOT)
		return 0;
	if (n->vpath_len >= sizeof(p->buf))
		return -ENOENT;
	memcpy(p->buf, n->vpath, n->vpath_len + 1);
	char *s1 = strchr(p->buf, '/'), *s2 = NULL;
	if (s1) {
		*s1++ = '\0';
		s2 = strchr(s1, '/');
		if (s2)
			*s2++ = '\0';
	}
	if (strlen(p->buf) >= sizeof(p->top))
		return -ENOENT;
	snprintf(p->top, sizeof(p->top), "%s", p->buf);
	if (strcmp(p->top, "ids") == 0) {
		p->leaf = s1;
	} else {
		p->group = s1;
		p->leaf = s2;
	}
	return 0;
}

/* ---- children of a virtual directory ------------------------------------ */

/* One child: its name, kind and, for snapshot roots and links, the snapshot. */
struct child {
	const char *name;
	enum fs_kind kind;
	const struct fs_view_ent *e;
};
/* Returns 1 to stop the walk, < 0 on error. */
typedef int (*child_fn)(const struct child *c, void *payload);

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The distinct hosts (tags = false) or tags of the view, each once, sorted. */
static int groups(const struct fs_view *v, bool tags, child_fn fn, void *payload)
{
	size_t n = 0, cap = 0;
	for (size_t i = 0; i < v->n; i++)
		cap += tags ? v->v[i].snap->ntags : 1;
	_cleanup_free_ const char **names = calloc(cap ? cap : 1, sizeof(*names));
	if (!names)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < v->n; i++) {
		const struct fs_snap *s = v->v[i].snap;
		if (!tags)
			names[n++] = s->host;
		for (size_t k = 0; tags && k < s->ntags; k++)
			names[n++] = s->tags[k];
	}
	qsort(names, n, sizeof(*names), cmp_str);
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && strcmp(names[i], names[i - 1]) == 0)
			continue;
		struct child c = { .name = names[i], .kind = FS_VDIR };
		int r = fn(&c, payload);
		if (r != 0)
			return r;
	}
	return 0;
}

static int root_children(const struct fs_view *v, child_fn fn, void *payload)
{
	static const struct {
		const char *name;
		enum fs_kind kind;
	} top[] = { { "snapshots", FS_VDIR }, { FS_LATEST, FS_VLINK }, { "hosts", FS_VDIR },
		    { "tags", FS_VDIR },      { "ids", FS_VDIR },      { "history", FS_HIST },
		    { "shadow", FS_VDIR } };
	for (size_t i = 0; i < ARRAY_SIZE(top); i++) {
		if (top[i].kind == FS_VLINK && v->n == 0)
			continue; /* no "latest" without snapshots */
		struct child c = { .name = top[i].name, .kind = top[i].kind };
		int r = fn(&c, payload);
		if (r != 0)
			return r;
	}
	return 0;
}

/* The newest snapshot of hosts/<group> or tags/<group>, or NULL. */
static const struct fs_view_ent *group_latest(const struct fs_view *v, const struct vpos *p)
{
	bool tags = strcmp(p->top, "tags") == 0;
	return fs_view_latest(v, tags ? NULL : p->group, tags ? p->group : NULL);
}

/* Snapshots of the view that belong in the directory p names, and in
 * hosts/<host>/ and tags/<tag>/ their own "latest". shadow/<host>/ holds the
 * snapshot roots themselves, not links: Samba's vfs_shadow_copy2
 * (docs/MOUNT.md) resolves paths through them, and parses every name there. */
static int snap_children(const struct fs_view *v, const struct vpos *p, child_fn fn, void *payload)
{
	bool ids = strcmp(p->top, "ids") == 0, tags = strcmp(p->top, "tags") == 0;
	bool shadow = strcmp(p->top, "shadow") == 0;
	for (size_t i = 0; i < v->n; i++) {
		const struct fs_view_ent *e = &v->v[i];
		struct child c = { .name = e->name, .kind = FS_VLINK, .e = e };
		if (ids) {
			c.name = e->sid;
		} else if (!p->group) {
			c.kind = FS_SNAPROOT;
		} else if (tags ? !fs_snap_has_tag(e->snap, p->group)
		                : strcmp(e->snap->host, p->group) != 0) {
			continue;
		} else if (shadow) {
			c.name = e->gmt;
			c.kind = FS_SNAPROOT;
		}
		int r = fn(&c, payload);
		if (r != 0)
			return r;
	}
	if (!p->group || shadow)
		return 0;
	struct child latest = { .name = FS_LATEST, .kind = FS_VLINK, .e = group_latest(v, p) };
	return latest.e ? fn(&latest, payload) : 0;
}

static int children(const struct fs_view *v, const struct fs_node *dir, child_fn fn, void *payload)
{
	struct vpos p;
	if (parse(dir, &p) < 0)
		return -ENOENT;
	if (dir->kind == FS_ROOT)
		return root_children(v, fn, payload);
	if (dir->kind != FS_VDIR || p.leaf)
		return -ENOTDIR;
	bool grouped = strcmp(p.top, "hosts") == 0 || strcmp(p.top, "tags") == 0 ||
	               strcmp(p.top, "shadow") == 0;
	if (grouped && !p.group)
		return groups(v, strcmp(p.top, "tags") == 0, fn, payload);
	if (grouped || strcmp(p.top, "snapshots") == 0 || strcmp(p.top, "ids") == 0)
		return snap_children(v, &p, fn, payload);
	return -ENOENT;
}

/* ---- symlink targets ---------------------------------------------------- */

static int link_target(const struct fs_view *v, const struct fs_node *n, char **out)
{
	struct vpos p;
	const char *name = NULL, *up = "../../";
	if (parse(n, &p) < 0)
		return -ENOENT;
	if (strcmp(p.top, FS_LATEST) == 0) {
		const struct fs_view_ent *e = fs_view_latest(v, NULL, NULL);
		name = e ? e->name : NULL;
		up = "";
	} else if (p.group && p.leaf && strcmp(p.leaf, FS_LATEST) == 0) {
		const struct fs_view_ent *e = group_latest(v, &p);
		name = e ? e->name : NULL;
	} else if (strcmp(p.top, "ids") == 0 && p.leaf) {
		const struct fs_view_ent *e = fs_view_find_sid(v, p.leaf);
		name = e ? e->name : NULL;
		up = "../";
	} else if (p.group && p.leaf) {
		/* The name may have moved to another host's snapshot (a same-second
		 * suffix shifts when a snapshot is forgotten): the link must still be
		 * in its directory. */
		const struct fs_view_ent *e = fs_view_find(v, p.leaf);
		bool in_group =
		        e && (strcmp(p.top, "hosts") == 0 ? strcmp(e->snap->host, p.group) == 0
		                                          : fs_snap_has_tag(e->snap, p.group));
		name = in_group ? p.leaf : NULL;
	}
	if (!name)
		return -ENOENT;
	size_t len = strlen(up) + strlen("snapshots/") + strlen(name) + 1;
	char *t = malloc(len);
	if (!t)
		return cairn_err_set(-ENOMEM, "out of memory");
	snprintf(t, len, "%ssnapshots/%s", up, name);
	*out = t;
	return 0;
}

/* ---- lookup and listing -------------------------------------------------- */

/* The vpath of a child: dir's vpath + "/" + name (or just name under the root). */
static int child_path(const struct fs_node *dir, const char *name, char **out, size_t *len)
{
	size_t n = strlen(name), base = dir->kind == FS_ROOT ? 0 : dir->vpath_len + 1;
	char *p = malloc(base + n + 1);
	if (!p)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (base) {
		memcpy(p, dir->vpath, dir->vpath_len);
		p[dir->vpath_len] = '/';
	}
	memcpy(p + base, name, n + 1);
	*out = p;
	*len = base + n;
	return 0;
}

/* A link node keeps the target it was looked up with, and its inode number
 * covers that target: when "latest" moves, the next lookup yields another inode,
 * so the kernel's cached link body (FUSE_CAP_CACHE_SYMLINKS) is never stale. */
static int child_node(const struct fs_view *v, const struct fs_node *dir, const struct child *c,
                      struct fs_node **out)
{
	if (c->kind == FS_SNAPROOT)
		return fs_node_new_snaproot(out, &c->e->snap->id, &c->e->snap->root,
		                            c->e->snap->time_ns);
	_cleanup_free_ char *path = NULL;
	size_t len = 0;
	struct fs_node *n;
	int r = child_path(dir, c->name, &path, &len);
	if (r < 0 || (r = fs_node_new_virtual(&n, c->kind, path, len)) < 0)
		return r;
	if (c->kind == FS_VLINK) {
		if ((r = link_target(v, n, &n->target)) >= 0 &&
		    !(n->ino = fs_ino_link(path, len, n->target)))
			r = cairn_err_set(-ENOMEM, "out of memory");
		if (r < 0) {
			fs_node_free(n);
			return r;
		}
	}
	*out = n;
	return 0;
}

struct find_ctx {
	const struct fs_view *v;
	const struct fs_node *dir;
	const char *name;
	struct fs_node *found;
};

static int find_cb(const struct child *c, void *payload)
{
	struct find_ctx *f = payload;
	if (strcmp(c->name, f->name) != 0)
		return 0;
	int r = child_node(f->v, f->dir, c, &f->found);
	return r < 0 ? r : 1;
}

int fs_layout_lookup(struct fs *fs, struct fs_node *dir, const char *name, struct fs_node **out)
{
	struct fs_view *v = fs_snapview_get(fs->snapview);
	int r;
	if (dir->kind == FS_HIST) {
		r = fs_hist_lookup(fs, v, dir, name, out);
	} else {
		struct find_ctx f = { .v = v, .dir = dir, .name = name };
		r = children(v, dir, find_cb, &f);
		if (r == 1)
			*out = f.found;
		r = r == 1 ? 0 : r < 0 ? r : -ENOENT;
	}
	fs_view_put(v);
	return r;
}

struct list_ctx {
	const struct fs_view *view;
	const struct fs_node *dir;
	struct fs_dirent *v;
	size_t n, cap;
};

static int list_cb(const struct child *c, void *payload)
{
	struct list_ctx *l = payload;
	uint64_t ino;
	if (c->kind == FS_SNAPROOT) {
		ino = fs_ino_snaproot(&c->e->snap->id);
	} else if (c->kind == FS_VLINK) {
		struct fs_node *n;
		int r = child_node(l->view, l->dir, c, &n);
		if (r < 0)
			return r;
		ino = n->ino;
		fs_node_free(n);
	} else {
		_cleanup_free_ char *path = NULL;
		size_t len = 0;
		int r = child_path(l->dir, c->name, &path, &len);
		if (r < 0)
			return r;
		ino = fs_ino_virtual(path, len);
	}
	return fs_dirents_add(&l->v, &l->n, &l->cap, c->name, strlen(c->name), ino,
	                      c->kind == FS_VLINK ? DT_LNK : DT_DIR);
}

int fs_layout_list(struct fs *fs, struct fs_node *dir, struct fs_dirlist **out)
{
	struct fs_view *v = fs_snapview_get(fs->snapview);
	struct list_ctx l = { .view = v, .dir = dir };
	int r;
	if (dir->kind == FS_HIST) {
		r = fs_hist_list(fs, v, dir, out);
		fs_view_put(v);
		return r;
	}
	r = children(v, dir, list_cb, &l);
	fs_view_put(v);
	if (r < 0) {
		fs_dirents_free(l.v, l.n);
		return r;
	}
	return fs_dirlist_new(out, l.v, l.n);
}

/* ---- symlinks and attributes --------------------------------------------- */

int fs_layout_readlink(struct fs *fs, const struct fs_node *n, char **out)
{
	if (n->kind != FS_VLINK)
		return -EINVAL;
	if (n->target) {
		*out = strdup(n->target);
		return *out ? 0 : cairn_err_set(-ENOMEM, "out of memory");
	}
	struct fs_view *v = fs_snapview_get(fs->snapview);
	int r = link_target(v, n, out);
	fs_view_put(v);
	return r;
}

static void set_time(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000 - (ns % 1000000000 < 0));
	ts->tv_nsec = (long)(ns - (int64_t)ts->tv_sec * 1000000000);
}

int fs_layout_stat(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	struct fs_view *v = fs_snapview_get(fs->snapview);
	_cleanup_free_ char *target = NULL;
	int r = n->kind == FS_VLINK ? link_target(v, n, &target) : 0;
	*st = (struct stat){ .st_ino = n->ino, .st_uid = fs->uid, .st_gid = fs->gid };
	/* Virtual directories change when snapshots come or go (snapview.c says
	 * when). nlink 1 tells find(1) not to count subdirectories. */
	set_time(&st->st_mtim, v->changed_ns);
	st->st_atim = st->st_ctim = st->st_mtim;
	st->st_nlink = 1;
	st->st_blksize = 4096;
	if (n->kind == FS_VLINK) {
		st->st_mode = S_IFLNK | 0777;
		const char *t = n->target ? n->target : target;
		st->st_size = t ? (off_t)strlen(t) : 0;
	} else {
		st->st_mode = S_IFDIR | 0555;
	}
	if (r >= 0 && n->kind == FS_HIST && n->vpath_len > strlen("history"))
		r = fs_hist_stat(fs, v, (struct fs_node *)n, st); /* hist: under hist_lock */
	if (n->kind == FS_SNAPROOT) {
		/* FORMAT.md §10 keeps no metadata for "/" itself: the snapshot's time it is. */
		set_time(&st->st_mtim, n->time_ns);
		st->st_atim = st->st_ctim = st->st_mtim;
		st->st_uid = st->st_gid = 0;
	}
	fs_view_put(v);
	return r;
}
