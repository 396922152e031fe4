/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Helpers the handlers share: listings, the tree entry of a node, its attributes. */
#include "fs.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "fsmap.h"

void fs_dirents_free(struct fs_dirent *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i].name);
	free(v);
}

int fs_dirents_add(struct fs_dirent **v, size_t *n, size_t *cap, const char *name, size_t len,
                   uint64_t ino, unsigned char type)
{
	if (*n == *cap) {
		size_t c = *cap ? 2 * *cap : 32;
		struct fs_dirent *p = realloc(*v, c * sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		*v = p;
		*cap = c;
	}
	char *s = malloc(len + 1);
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory");
	memcpy(s, name, len);
	s[len] = '\0';
	(*v)[(*n)++] = (struct fs_dirent){ .name = s, .ino = ino, .type = type };
	return 0;
}

int fs_dirlist_new(struct fs_dirlist **out, struct fs_dirent *v, size_t n)
{
	struct fs_dirlist *l = malloc(sizeof(*l));
	if (!l) {
		fs_dirents_free(v, n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	atomic_init(&l->refs, 1);
	l->v = v;
	l->n = n;
	*out = l;
	return 0;
}

struct fs_dirlist *fs_dirlist_ref(struct fs_dirlist *l)
{
	atomic_fetch_add_explicit(&l->refs, 1, memory_order_relaxed);
	return l;
}

void fs_dirlist_put(struct fs_dirlist *l)
{
	if (!l || atomic_fetch_sub_explicit(&l->refs, 1, memory_order_acq_rel) != 1)
		return;
	fs_dirents_free(l->v, l->n);
	free(l);
}

/* Every tree a request needs comes through here: its failure is logged once, at
 * the point it happened, and the callers only turn it into an errno reply. */
static int tree_get(struct fs *fs, const struct cairn_id *id, struct fs_cache_ent **out)
{
	int r = fs_cache_get(fs->trees, id, out);
	if (r < 0)
		return log_error_errno(r == -ENOMEM ? r : -EIO, "cannot read a directory");
	return 0;
}

int fs_dir_tree(struct fs *fs, const struct fs_node *n, struct fs_cache_ent **out)
{
	if (n->kind == FS_SNAPROOT)
		return tree_get(fs, &n->root, out);
	if (n->kind != FS_ENTRY || n->type != CAIRN_NODE_DIR)
		return -ENOTDIR;
	struct fs_cache_ent *parent = NULL;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &parent, &cn);
	if (r < 0)
		return r;
	r = tree_get(fs, &cn->subtree, out);
	fs_cache_put(fs->trees, parent);
	return r;
}

int fs_entry_get(struct fs *fs, const struct fs_node *n, struct fs_cache_ent **out,
                 const struct cairn_node **cn)
{
	struct fs_cache_ent *t;
	int r = tree_get(fs, &n->tree, &t);
	if (r < 0)
		return r;
	*cn = cairn_tree_node(fs_cache_val(t), n->index);
	if (!*cn) { /* the tree is the one the node was made from: cannot happen */
		fs_cache_put(fs->trees, t);
		cairn_err_set(-EIO, "tree entry %u out of range", (unsigned)n->index);
		return log_error_errno(-EIO, "cannot read a directory");
	}
	*out = t;
	return 0;
}

mode_t fs_type_mode(uint8_t type)
{
	mode_t m = cairn_node_ifmt(type);
	return m ? m : S_IFREG; /* the tree decoder admits no other type */
}

static void set_time(struct timespec *ts, int64_t ns)
{
	ts->tv_sec = (time_t)(ns / 1000000000 - (ns % 1000000000 < 0));
	ts->tv_nsec = (long)(ns - (int64_t)ts->tv_sec * 1000000000);
}

void fs_entry_stat(const struct cairn_node *cn, uint64_t ino, struct stat *st)
{
	*st = (struct stat){
		.st_ino = ino,
		.st_mode = fs_type_mode(cn->type) | (cn->mode & 07777),
		.st_nlink = cn->nlink ? cn->nlink : 1,
		.st_uid = cn->uid,
		.st_gid = cn->gid,
		.st_size = (off_t)cn->size,
		.st_blksize = 4096,
	};
	if (cn->type == CAIRN_NODE_CHR || cn->type == CAIRN_NODE_BLK)
		st->st_rdev = (dev_t)cn->rdev;
	if (cn->type == CAIRN_NODE_SYMLINK)
		st->st_size = (off_t)cn->target_len;
	/* Holes take no blocks, so sparse files stay sparse when copied out. */
	uint64_t used = cn->type == CAIRN_NODE_FILE
	                        ? fs_extents_allocated(cn->extents, cn->nextents)
	                : cn->type == CAIRN_NODE_DIR ? cn->size
	                                             : 0;
	st->st_blocks = (blkcnt_t)(used / 512 + (used % 512 != 0));
	set_time(&st->st_atim, cn->atime_ns);
	set_time(&st->st_mtim, cn->mtime_ns);
	set_time(&st->st_ctim, cn->ctime_ns);
}
