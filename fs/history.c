/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* /history: versions of one path across all snapshots, resolved once per tree ID. */
#include "history.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsmap.h"

#define ABSENT UINT64_MAX

struct hist_ver {
	char name[FS_NAME_SIZE]; /* the snapshot's name in the view */
	struct cairn_id snap;
	struct cairn_id tree; /* the parent directory's tree */
	uint32_t index;       /* of the entry in that tree */
	uint8_t type;
	uint64_t ino;
};

/* The owner and mode of a history directory: no looser than any version of
 * its path, so that the kernel's permission walk (default_permissions) meets
 * what it would meet under snapshots/. */
struct hist_perm {
	bool any;          /* a version was seen */
	bool dir;          /* one of them was a directory: mode is set */
	bool mixed_owner;  /* the versions disagree on uid or gid */
	uint32_t mode;     /* the AND of the directory versions' modes */
	uint32_t uid, gid; /* of the newest version */
};

struct fs_hist {
	uint64_t gen; /* of the view it was computed from */
	struct hist_ver *ver;
	size_t nver, capver;
	char **child; /* sorted, unique */
	size_t nchild, capchild;
	struct hist_perm perm;   /* of the directory itself */
	struct fs_dirlist *list; /* built on first listing; NULL until then */
};

/* The path below /history, split into components. */
struct hpath {
	const char **name;
	size_t *len;
	size_t n;
};

/* Per depth, tree ID -> what the walk found there: an index into next[] (the
 * subtree to descend into) or, at the last depth, the entry's index. */
struct memo {
	struct cairn_idset *level;
	struct cairn_id *next;
	size_t nnext, capnext;
};

/* The node's hist_free (inode.h), hence the void *. NULL is a no-op. */
static void hist_free(void *p)
{
	struct fs_hist *h = p;
	if (!h)
		return;
	for (size_t i = 0; i < h->nchild; i++)
		free(h->child[i]);
	free(h->child);
	free(h->ver);
	fs_dirlist_put(h->list);
	free(h);
}

bool fs_hist_same(const struct cairn_node *a, const struct cairn_node *b)
{
	/* Not the name (the same path), atime, nor the source's dev and ino. */
	return cairn_node_equal(a, b,
	                        CAIRN_NODE_F_ALL & ~(CAIRN_NODE_F_NAME | CAIRN_NODE_F_ATIME |
	                                             CAIRN_NODE_F_DEV | CAIRN_NODE_F_INO));
}

/* ---- resolving the path in each snapshot --------------------------------- */

static int split(const struct fs_node *dir, struct hpath *p)
{
	const char *s = dir->vpath + strlen("history");
	size_t n = 0;
	for (const char *q = s; *q; q++)
		n += *q == '/';
	p->name = calloc(n ? n : 1, sizeof(*p->name));
	p->len = calloc(n ? n : 1, sizeof(*p->len));
	if (!p->name || !p->len)
		return cairn_err_set(-ENOMEM, "out of memory");
	p->n = 0;
	while (*s == '/') {
		s++;
		const char *end = strchr(s, '/');
		size_t len = end ? (size_t)(end - s) : strlen(s);
		p->name[p->n] = s;
		p->len[p->n++] = len;
		s += len;
	}
	return 0;
}

/* Look name up in tree id: the entry's index, ABSENT, or (want_dir) the index in
 * m->next of the directory's subtree. A tree that cannot be read counts as
 * absent: one damaged snapshot must not hide the others. */
static int step(struct fs *fs, struct memo *m, const struct cairn_id *id, const char *name,
                size_t len, bool want_dir, uint64_t *out)
{
	struct fs_cache_ent *t;
	size_t idx;
	int r = fs_cache_get(fs->trees, id, &t);
	if (r == -ENOMEM)
		return r;
	*out = ABSENT;
	if (r < 0) {
		log_warn("history: %s", cairn_err_msg());
		return 0;
	}
	if (cairn_tree_find(fs_cache_val(t), name, len, &idx) >= 0) {
		const struct cairn_node *cn = cairn_tree_node(fs_cache_val(t), idx);
		if (!want_dir) {
			*out = idx;
		} else if (cn->type == CAIRN_NODE_DIR) {
			if (m->nnext == m->capnext) {
				size_t cap = m->capnext ? 2 * m->capnext : 16;
				struct cairn_id *p = realloc(m->next, cap * sizeof(*p));
				if (!p) {
					fs_cache_put(fs->trees, t);
					return cairn_err_set(-ENOMEM, "out of memory");
				}
				m->next = p;
				m->capnext = cap;
			}
			m->next[m->nnext] = cn->subtree;
			*out = m->nnext++;
		}
	}
	fs_cache_put(fs->trees, t);
	return 0;
}

/* Where the path is in the snapshot with this root: the parent's tree and the
 * entry's index, or *index = ABSENT. */
static int resolve(struct fs *fs, struct memo *m, const struct hpath *p,
                   const struct cairn_id *root, struct cairn_id *tree, uint64_t *index)
{
	struct cairn_id t = *root;
	for (size_t d = 0; d < p->n; d++) {
		bool last = d + 1 == p->n;
		uint64_t *known = cairn_idset_get(&m->level[d], &t), val;
		if (known) {
			val = *known;
		} else {
			int r = step(fs, m, &t, p->name[d], p->len[d], !last, &val);
			if (r < 0 || (r = cairn_idset_add(&m->level[d], &t, val)) < 0)
				return r;
		}
		if (val == ABSENT || last) {
			*tree = t;
			*index = val;
			return 0;
		}
		t = m->next[val];
	}
	*index = ABSENT;
	return 0;
}

/* ---- building the listing ------------------------------------------------ */

static int add_version(struct fs_hist *h, const struct fs_view_ent *e, const struct cairn_id *tree,
                       uint64_t index, const struct cairn_node *cn)
{
	if (h->nver == h->capver) {
		size_t cap = h->capver ? 2 * h->capver : 8;
		struct hist_ver *p = realloc(h->ver, cap * sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		h->ver = p;
		h->capver = cap;
	}
	struct hist_ver *v = &h->ver[h->nver++];
	memcpy(v->name, e->name, sizeof(v->name));
	v->snap = e->snap->id;
	v->tree = *tree;
	v->index = (uint32_t)index;
	v->type = cn->type;
	if (!(v->ino = fs_ino_entry(&e->snap->id, tree, (uint32_t)index, cn))) {
		h->nver--;
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	return 0;
}

/* The view lists snapshots oldest first: the last version seen is the newest. */
static void perm_add(struct hist_perm *p, const struct cairn_node *cn)
{
	if (p->any && (p->uid != cn->uid || p->gid != cn->gid))
		p->mixed_owner = true;
	p->uid = cn->uid;
	p->gid = cn->gid;
	if (cn->type == CAIRN_NODE_DIR)
		p->mode = (p->dir ? p->mode : 0777) & cn->mode & 0777;
	p->dir |= cn->type == CAIRN_NODE_DIR;
	p->any = true;
}

/* Append a version for snapshot e unless its entry equals the previous version.
 * *prev holds the previous version's tree (a reference), *pidx its index. */
static int consider(struct fs *fs, struct fs_hist *h, const struct fs_view_ent *e,
                    const struct cairn_id *tree, uint64_t index, struct fs_cache_ent **prev,
                    uint64_t *pidx, struct cairn_idset *dirs)
{
	struct fs_cache_ent *t;
	if (*prev && *pidx == index && cairn_id_cmp(fs_cache_id(*prev), tree) == 0)
		return 0; /* the same tree: the same entry */
	int r = fs_cache_get(fs->trees, tree, &t);
	if (r < 0)
		return r == -ENOMEM ? r : 0;
	const struct cairn_node *cn = cairn_tree_node(fs_cache_val(t), index);
	const struct cairn_node *pn = *prev ? cairn_tree_node(fs_cache_val(*prev), *pidx) : NULL;
	perm_add(&h->perm, cn);
	if (!pn || !fs_hist_same(pn, cn)) {
		r = add_version(h, e, tree, index, cn);
		if (r >= 0 && cn->type == CAIRN_NODE_DIR)
			r = cairn_idset_add(dirs, &cn->subtree, 0);
	}
	fs_cache_put(fs->trees, *prev);
	*prev = t;
	*pidx = index;
	return r < 0 ? r : 0;
}

static int add_child(struct fs_hist *h, const uint8_t *name, size_t len)
{
	if (h->nchild == h->capchild) {
		size_t cap = h->capchild ? 2 * h->capchild : 64;
		char **p = realloc(h->child, cap * sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		h->child = p;
		h->capchild = cap;
	}
	char *s = malloc(len + 1);
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(s, name, len);
	s[len] = '\0';
	h->child[h->nchild++] = s;
	return 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The union of the names in the directory trees dirs. */
static int union_children(struct fs *fs, struct fs_hist *h, const struct cairn_idset *dirs)
{
	const struct cairn_id *id;
	for (size_t pos = 0; cairn_idset_next(dirs, &pos, &id);) {
		struct fs_cache_ent *t;
		int r = fs_cache_get(fs->trees, id, &t);
		if (r < 0) {
			if (r == -ENOMEM)
				return r;
			log_warn("history: %s", cairn_err_msg());
			continue;
		}
		const cairn_tree *tree = fs_cache_val(t);
		for (size_t i = 0; r >= 0 && i < cairn_tree_count(tree); i++) {
			const struct cairn_node *cn = cairn_tree_node(tree, i);
			r = add_child(h, cn->name, cn->name_len);
		}
		fs_cache_put(fs->trees, t);
		if (r < 0)
			return r;
	}
	if (h->nchild == 0)
		return 0; /* child is NULL: qsort must not see it */
	qsort(h->child, h->nchild, sizeof(*h->child), cmp_str);
	size_t k = 0;
	for (size_t i = 0; i < h->nchild; i++) {
		if (k > 0 && strcmp(h->child[i], h->child[k - 1]) == 0)
			free(h->child[i]);
		else
			h->child[k++] = h->child[i];
	}
	h->nchild = k;
	return 0;
}

static int versions(struct fs *fs, struct fs_hist *h, const struct fs_view *v,
                    const struct hpath *p, struct cairn_idset *dirs)
{
	struct memo m = { .level = calloc(p->n, sizeof(*m.level)) };
	struct fs_cache_ent *prev = NULL;
	uint64_t pidx = 0;
	int r = m.level ? 0 : cairn_err_set(-ENOMEM, "out of memory");

	for (size_t d = 0; r >= 0 && d < p->n; d++)
		cairn_idset_init(&m.level[d]);
	for (size_t i = 0; r >= 0 && i < v->n; i++) {
		struct cairn_id tree;
		uint64_t index;
		r = resolve(fs, &m, p, &v->v[i].snap->root, &tree, &index);
		if (r >= 0 && index != ABSENT)
			r = consider(fs, h, &v->v[i], &tree, index, &prev, &pidx, dirs);
	}
	fs_cache_put(fs->trees, prev);
	for (size_t d = 0; m.level && d < p->n; d++)
		cairn_idset_release(&m.level[d]);
	free(m.level);
	free(m.next);
	return r;
}

/* A path that was never a directory: its history directory takes the rule of
 * its parent's, which the kernel's walk has met just before. */
static int parent_perm(struct fs *fs, const struct fs_view *v, const struct hpath *p,
                       struct hist_perm *out)
{
	struct hpath up = { .name = p->name, .len = p->len, .n = p->n - 1 };
	struct fs_hist parent = { 0 };
	struct cairn_idset dirs;
	int r = 0;
	if (up.n == 0) {
		*out = (struct hist_perm){ 0 }; /* below /history: the mounter's 0555 */
		return 0;
	}
	cairn_idset_init(&dirs);
	r = versions(fs, &parent, v, &up, &dirs);
	cairn_idset_release(&dirs);
	free(parent.ver);
	if (r >= 0)
		*out = parent.perm;
	return r;
}

static int compute(struct fs *fs, const struct fs_view *v, const struct fs_node *dir,
                   struct fs_hist **out)
{
	_cleanup_free_ const char **names = NULL;
	_cleanup_free_ size_t *lens = NULL;
	struct hpath p = { 0 };
	struct cairn_idset dirs;
	struct fs_hist *h = calloc(1, sizeof(*h));
	int r = h ? split(dir, &p) : cairn_err_set(-ENOMEM, "out of memory");

	names = p.name;
	lens = p.len;
	cairn_idset_init(&dirs);
	if (r >= 0 && p.n == 0) {
		/* /history itself: the union of every snapshot's top level. */
		for (size_t i = 0; r >= 0 && i < v->n; i++)
			r = cairn_idset_add(&dirs, &v->v[i].snap->root, 0);
	} else if (r >= 0) {
		r = versions(fs, h, v, &p, &dirs);
		if (r >= 0 && !h->perm.dir)
			r = parent_perm(fs, v, &p, &h->perm);
	}
	if (r >= 0)
		r = union_children(fs, h, &dirs);
	cairn_idset_release(&dirs);
	if (r < 0) {
		hist_free(h);
		return r;
	}
	h->gen = v->gen;
	*out = h;
	return 0;
}

/* The node's history for view v, computed if missing or stale. Called with the
 * node's hist_lock held. */
static int get(struct fs *fs, const struct fs_view *v, struct fs_node *dir, struct fs_hist **out)
{
	struct fs_hist *cur = dir->hist;
	if (!cur || cur->gen != v->gen) {
		struct fs_hist *h;
		int r = compute(fs, v, dir, &h);
		if (r < 0)
			return r;
		hist_free(cur);
		dir->hist = cur = h;
		dir->hist_free = hist_free;
	}
	*out = cur;
	return 0;
}

/* ---- lookup and listing -------------------------------------------------- */

static int child_path(const struct fs_node *dir, const char *name, char **out, size_t *len)
{
	size_t n = strlen(name);
	char *p = malloc(dir->vpath_len + n + 2);
	if (!p)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(p, dir->vpath, dir->vpath_len);
	p[dir->vpath_len] = '/';
	memcpy(p + dir->vpath_len + 1, name, n + 1);
	*out = p;
	*len = dir->vpath_len + 1 + n;
	return 0;
}

static bool has_child(const struct fs_hist *h, const char *name)
{
	return h->nchild > 0 &&
	       bsearch(&name, h->child, h->nchild, sizeof(*h->child), cmp_str) != NULL;
}

static int version_node(struct fs *fs, const struct hist_ver *ver, struct fs_node **out)
{
	struct fs_cache_ent *t;
	int r = fs_cache_get(fs->trees, &ver->tree, &t);
	if (r < 0)
		return r;
	r = fs_node_new_entry(out, &ver->snap, t, ver->index);
	fs_cache_put(fs->trees, t);
	return r;
}

static int lookup_locked(struct fs *fs, const struct fs_view *v, struct fs_node *dir,
                         const char *name, struct fs_node **out)
{
	struct fs_hist *h;
	int r = get(fs, v, dir, &h);
	if (r < 0)
		return r;
	if (has_child(h, name)) {
		_cleanup_free_ char *path = NULL;
		size_t len = 0;
		r = child_path(dir, name, &path, &len);
		return r < 0 ? r : fs_node_new_virtual(out, FS_HIST, path, len);
	}
	for (size_t i = 0; i < h->nver; i++)
		if (strcmp(h->ver[i].name, name) == 0)
			return version_node(fs, &h->ver[i], out);
	return -ENOENT;
}

int fs_hist_lookup(struct fs *fs, struct fs_view *v, struct fs_node *dir, const char *name,
                   struct fs_node **out)
{
	pthread_mutex_lock(&dir->hist_lock);
	int r = lookup_locked(fs, v, dir, name, out);
	pthread_mutex_unlock(&dir->hist_lock);
	return r;
}

static unsigned char dtype(uint8_t type)
{
	return IFTODT(fs_type_mode(type));
}

/* The entries, children first: N names, paths and inode hashes, so built once
 * per history (not once per READDIR page, which made a listing quadratic). */
static int build_list(struct fs *fs, const struct fs_node *dir, const struct fs_hist *h,
                      struct fs_dirlist **out)
{
	struct fs_dirent *v = NULL;
	size_t n = 0, cap = 0;
	int r = 0;
	for (size_t i = 0; r >= 0 && i < h->nchild; i++) {
		_cleanup_free_ char *path = NULL;
		size_t len = 0;
		r = child_path(dir, h->child[i], &path, &len);
		if (r >= 0)
			r = fs_dirents_add(&v, &n, &cap, h->child[i], strlen(h->child[i]),
			                   fs_ino_virtual(path, len), DT_DIR);
	}
	for (size_t i = 0; r >= 0 && i < h->nver; i++)
		if (!has_child(h, h->ver[i].name))
			r = fs_dirents_add(&v, &n, &cap, h->ver[i].name, strlen(h->ver[i].name),
			                   h->ver[i].ino, dtype(h->ver[i].type));
	if (r < 0) {
		fs_dirents_free(v, n);
		return r;
	}
	atomic_fetch_add_explicit(&fs->hist_listings, 1, memory_order_relaxed);
	return fs_dirlist_new(out, v, n);
}

static int list_locked(struct fs *fs, const struct fs_view *v, struct fs_node *dir,
                       struct fs_dirlist **out)
{
	struct fs_hist *h;
	int r = get(fs, v, dir, &h);
	if (r >= 0 && !h->list)
		r = build_list(fs, dir, h, &h->list);
	if (r >= 0)
		*out = fs_dirlist_ref(h->list);
	return r;
}

int fs_hist_list(struct fs *fs, struct fs_view *v, struct fs_node *dir, struct fs_dirlist **out)
{
	pthread_mutex_lock(&dir->hist_lock);
	int r = list_locked(fs, v, dir, out);
	pthread_mutex_unlock(&dir->hist_lock);
	return r;
}

int fs_hist_stat(struct fs *fs, struct fs_view *v, struct fs_node *dir, struct stat *st)
{
	struct fs_hist *h;
	pthread_mutex_lock(&dir->hist_lock);
	int r = get(fs, v, dir, &h);
	if (r >= 0 && h->perm.dir) {
		st->st_mode = S_IFDIR | h->perm.mode;
		st->st_uid = h->perm.mixed_owner ? 0 : h->perm.uid;
		st->st_gid = h->perm.mixed_owner ? 0 : h->perm.gid;
	}
	pthread_mutex_unlock(&dir->hist_lock);
	return r;
}
