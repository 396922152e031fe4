/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The inode table: a chained hash of nodes under one mutex (STYLE §6). */
#include "inode.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

struct fs_inodes {
	pthread_mutex_t lock;
	struct fs_node **buckets; /* protected by lock */
	size_t nbuckets, count;   /* protected by lock */
	struct fs_node root;      /* never freed: the kernel does not forget the root */
};

static size_t slot(size_t nbuckets, uint64_t ino)
{
	/* Numbers are hash outputs already; the multiply spreads the small ones. */
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) >> 17) & (nbuckets - 1);
}

static void grow(struct fs_inodes *t)
{
	size_t n = t->nbuckets * 2;
	struct fs_node **b = calloc(n, sizeof(*b));
	if (!b)
		return; /* longer chains, still correct */
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct fs_node *e = t->buckets[i], *next; e; e = next) {
			next = e->hnext;
			size_t k = slot(n, e->ino);
			e->hnext = b[k];
			b[k] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->nbuckets = n;
}

static struct fs_node *find(const struct fs_inodes *t, uint64_t ino)
{
	for (struct fs_node *n = t->buckets[slot(t->nbuckets, ino)]; n; n = n->hnext)
		if (n->ino == ino)
			return n;
	return NULL;
}

int fs_inodes_new(struct fs_inodes **out)
{
	struct fs_inodes *t = calloc(1, sizeof(*t));
	if (!t)
		return cairn_err_set(-ENOMEM, "out of memory");
	t->nbuckets = 4096;
	t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
	if (!t->buckets) {
		free(t);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&t->lock, NULL);
	t->root.ino = FS_ROOT_INO;
	t->root.kind = FS_ROOT;
	t->root.parent = FS_ROOT_INO;
	t->root.nlookup = 1;
	t->buckets[slot(t->nbuckets, FS_ROOT_INO)] = &t->root;
	t->count = 1;
	*out = t;
	return 0;
}

void fs_inodes_free(struct fs_inodes *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nbuckets; i++) {
		for (struct fs_node *n = t->buckets[i], *next; n; n = next) {
			next = n->hnext;
			if (n != &t->root)
				fs_node_free(n);
		}
	}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	free(t);
}

static bool is_virtual(enum fs_kind kind)
{
	return kind == FS_VDIR || kind == FS_VLINK || kind == FS_HIST;
}

static struct fs_node *node_alloc(enum fs_kind kind)
{
	struct fs_node *n = calloc(1, sizeof(*n));
	if (n) {
		n->kind = kind;
		if (is_virtual(kind))
			pthread_mutex_init(&n->hist_lock, NULL);
	}
	return n;
}

int fs_node_new_virtual(struct fs_node **out, enum fs_kind kind, const char *vpath, size_t len)
{
	struct fs_node *n = node_alloc(kind);
	char *p = malloc(len + 1);
	if (!n || !p) {
		free(n);
		free(p);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	memcpy(p, vpath, len);
	p[len] = '\0';
	n->vpath = p;
	n->vpath_len = len;
	if (!(n->ino = fs_ino_virtual(vpath, len))) {
		fs_node_free(n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = n;
	return 0;
}

int fs_node_new_snaproot(struct fs_node **out, const struct cairn_id *snap,
                         const struct cairn_id *root, int64_t time_ns)
{
	struct fs_node *n = node_alloc(FS_SNAPROOT);
	if (!n)
		return cairn_err_set(-ENOMEM, "out of memory");
	n->snap = *snap;
	n->root = *root;
	n->time_ns = time_ns;
	if (!(n->ino = fs_ino_snaproot(snap))) {
		fs_node_free(n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = n;
	return 0;
}

int fs_node_new_entry(struct fs_node **out, const struct cairn_id *snap,
                      const struct fs_cache_ent *tree, size_t index)
{
	const struct cairn_node *cn = cairn_tree_node(fs_cache_val(tree), index);
	if (!cn || index > UINT32_MAX)
		return cairn_err_set(-EINVAL, "tree entry %zu out of range", index);
	struct fs_node *n = node_alloc(FS_ENTRY);
	if (!n)
		return cairn_err_set(-ENOMEM, "out of memory");
	n->snap = *snap;
	n->tree = *fs_cache_id(tree);
	n->index = (uint32_t)index;
	n->type = cn->type;
	n->has_xattrs = cn->nxattrs > 0;
	if (!(n->ino = fs_ino_entry(snap, fs_cache_id(tree), (uint32_t)index, cn))) {
		fs_node_free(n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = n;
	return 0;
}

void fs_node_free(struct fs_node *n)
{
	if (!n)
		return;
	if (is_virtual(n->kind)) {
		if (n->hist)
			n->hist_free(n->hist);
		pthread_mutex_destroy(&n->hist_lock);
		free(n->vpath);
		free(n->target);
	}
	free(n);
}

struct fs_node *fs_inodes_get(struct fs_inodes *t, uint64_t ino)
{
	pthread_mutex_lock(&t->lock);
	struct fs_node *n = find(t, ino);
	pthread_mutex_unlock(&t->lock);
	return n;
}

struct fs_node *fs_inodes_add(struct fs_inodes *t, struct fs_node *n)
{
	pthread_mutex_lock(&t->lock);
	struct fs_node *old = find(t, n->ino);
	if (old) {
		old->nlookup++;
		pthread_mutex_unlock(&t->lock);
		fs_node_free(n);
		return old;
	}
	if (t->count >= t->nbuckets)
		grow(t);
	size_t k = slot(t->nbuckets, n->ino);
	n->hnext = t->buckets[k];
	t->buckets[k] = n;
	n->nlookup = 1;
	t->count++;
	pthread_mutex_unlock(&t->lock);
	return n;
}

void fs_inodes_forget(struct fs_inodes *t, uint64_t ino, uint64_t nlookup)
{
	pthread_mutex_lock(&t->lock);
	struct fs_node *n = find(t, ino);
	if (!n || n == &t->root) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	n->nlookup = nlookup < n->nlookup ? n->nlookup - nlookup : 0;
	if (n->nlookup > 0) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	struct fs_node **pp = &t->buckets[slot(t->nbuckets, ino)];
	while (*pp != n)
		pp = &(*pp)->hnext;
	*pp = n->hnext;
	t->count--;
	pthread_mutex_unlock(&t->lock);
	fs_node_free(n); /* outside the lock: it may free a history listing */
}

size_t fs_inodes_count(struct fs_inodes *t)
{
	pthread_mutex_lock(&t->lock);
	size_t n = t->count;
	pthread_mutex_unlock(&t->lock);
	return n;
}
