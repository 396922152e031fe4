/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The FUSE low-level operations on names, attributes, directories and xattrs. */
#include "ops.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>

#include "cleanup.h"
#include "fsmap.h"
#include "layout.h"
#include "read.h"
#include "xattr.h"

#define MiB (1u << 20)
#define PREFETCH_SUBDIRS 16 /* the prefetch queue holds no more */

static struct fs *fs_of(fuse_req_t req)
{
	return fuse_req_userdata(req);
}

static bool is_content(const struct fs_node *n)
{
	return n->kind == FS_ENTRY || n->kind == FS_SNAPROOT;
}

static double timeout_of(const struct fs_node *n)
{
	return is_content(n) ? FS_CONTENT_TIMEOUT : FS_VIRTUAL_TIMEOUT;
}

/* The node of a request, or NULL after replying ESTALE (the kernel forgot it). */
static struct fs_node *node_or_reply(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_node *n = fs_inodes_get(fs_of(req)->inodes, ino);
	if (!n)
		fuse_reply_err(req, ESTALE);
	return n;
}

static int node_stat(struct fs *fs, const struct fs_node *n, struct stat *st)
{
	if (n->kind == FS_ENTRY) {
		struct fs_cache_ent *t;
		const struct cairn_node *cn;
		int r = fs_entry_get(fs, n, &t, &cn);
		if (r < 0)
			return r;
		fs_entry_stat(cn, n->ino, st);
		fs_cache_put(fs->trees, t);
		return 0;
	}
	return fs_layout_stat(fs, n, st);
}

/* Reply with a node that is in the table (its lookup count already counted).
 * The name is cached as long as dir's content stays: a snapshot's name under
 * snapshots/ (or a version's under history/) goes when the snapshot is
 * forgotten, and a same-second suffix may then name another snapshot, so names
 * in virtual directories expire quickly even where the node's attributes do not. */
static void reply_entry(fuse_req_t req, struct fs *fs, const struct fs_node *dir, struct fs_node *n)
{
	struct fuse_entry_param e = { .ino = n->ino,
		                      .attr_timeout = timeout_of(n),
		                      .entry_timeout = timeout_of(dir) };
	int r = node_stat(fs, n, &e.attr);
	if (r < 0) {
		fs_inodes_forget(fs->inodes, n->ino, 1);
		fuse_reply_err(req, -r);
		return;
	}
	/* A reply the kernel never saw (interrupted request) must not keep the count. */
	if (fuse_reply_entry(req, &e) != 0)
		fs_inodes_forget(fs->inodes, n->ino, 1);
}

static void reply_new(fuse_req_t req, struct fs *fs, int r, const struct fs_node *dir,
                      struct fs_node *n)
{
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	reply_entry(req, fs, dir, fs_inodes_add(fs->inodes, n));
}

/* ---- lookup, forget, getattr, readlink ---------------------------------- */

static int lookup_content(struct fs *fs, const struct fs_node *dir, const char *name,
                          struct fs_node **out)
{
	struct fs_cache_ent *t;
	size_t idx;
	int r = fs_dir_tree(fs, dir, &t);
	if (r < 0)
		return r;
	r = cairn_tree_find(fs_cache_val(t), name, strlen(name), &idx);
	if (r >= 0)
		r = fs_node_new_entry(out, &dir->snap, t, idx);
	fs_cache_put(fs->trees, t);
	return r;
}

static void op_lookup(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	struct fs *fs = fs_of(req);
	struct fs_node *dir = node_or_reply(req, parent), *n = NULL;
	if (!dir)
		return;
	int r = is_content(dir) ? lookup_content(fs, dir, name, &n)
	                        : fs_layout_lookup(fs, dir, name, &n);
	if (r == -ENOENT && is_content(dir)) {
		/* Snapshot content never changes: let the kernel remember the miss. */
		struct fuse_entry_param e = { .ino = 0, .entry_timeout = FS_CONTENT_TIMEOUT };
		return (void)fuse_reply_entry(req, &e);
	}
	if (r >= 0)
		n->parent = dir->ino;
	reply_new(req, fs, r, dir, n);
}

static void op_forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup)
{
	fs_inodes_forget(fs_of(req)->inodes, ino, nlookup);
	fuse_reply_none(req);
}

static void op_forget_multi(fuse_req_t req, size_t count, struct fuse_forget_data *forgets)
{
	for (size_t i = 0; i < count; i++)
		fs_inodes_forget(fs_of(req)->inodes, forgets[i].ino, forgets[i].nlookup);
	fuse_reply_none(req);
}

static void op_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)fi;
	struct stat st;
	struct fs_node *n = node_or_reply(req, ino);
	if (!n)
		return;
	int r = node_stat(fs_of(req), n, &st);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fuse_reply_attr(req, &st, timeout_of(n));
}

static void op_readlink(fuse_req_t req, fuse_ino_t ino)
{
	struct fs_node *n = node_or_reply(req, ino);
	_cleanup_free_ char *target = NULL;
	if (!n)
		return;
	if (n->kind != FS_ENTRY) {
		int r = fs_layout_readlink(fs_of(req), n, &target);
		return r < 0 ? (void)fuse_reply_err(req, -r)
		             : (void)fuse_reply_readlink(req, target);
	}
	if (n->type != CAIRN_NODE_SYMLINK)
		return (void)fuse_reply_err(req, EINVAL);
	struct fs *fs = fs_of(req);
	struct fs_cache_ent *t;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &t, &cn);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	target = malloc(cn->target_len + 1);
	if (target) {
		if (cn->target_len > 0) /* an incomplete symlink may have none */
			memcpy(target, cn->target, cn->target_len);
		target[cn->target_len] = '\0';
	}
	fs_cache_put(fs->trees, t);
	if (!target)
		return (void)fuse_reply_err(req, ENOMEM);
	fuse_reply_readlink(req, target);
}

/* ---- directories -------------------------------------------------------- */

/* A directory being listed: snapshot content reads its tree, the others a
 * listing of the snapshot view. With FUSE_CAP_NO_OPENDIR_SUPPORT it is loaded
 * for each READDIR (the kernel then sends no OPENDIR or RELEASEDIR, and caches
 * listings until the directory's mtime moves); otherwise once, at opendir. */
struct fs_dir {
	struct fs_cache_ent *tree;
	struct cairn_id snap;
	uint64_t parent;         /* for ".." */
	struct fs_dirlist *list; /* !content: a reference */
	bool content;
};

static int dir_load(struct fs *fs, struct fs_node *n, struct fs_dir *d)
{
	*d = (struct fs_dir){ .content = is_content(n),
		              .parent = n->parent ? n->parent : FS_ROOT_INO };
	if (n->kind == FS_VLINK)
		return -ENOTDIR;
	if (!d->content)
		return fs_layout_list(fs, n, &d->list);
	d->snap = n->snap;
	return fs_dir_tree(fs, n, &d->tree);
}

static void dir_release(struct fs *fs, struct fs_dir *d)
{
	fs_cache_put(fs->trees, d->tree);
	fs_dirlist_put(d->list);
}

static void op_opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fs_of(req);
	struct fs_node *n = node_or_reply(req, ino);
	if (!n)
		return;
	if (fs->no_opendir) /* only the mount's first opendir comes here */
		return (void)fuse_reply_err(req, n->kind == FS_VLINK ? ENOTDIR : ENOSYS);
	struct fs_dir *d = malloc(sizeof(*d));
	if (!d)
		return (void)fuse_reply_err(req, ENOMEM);
	int r = dir_load(fs, n, d);
	if (r < 0) {
		free(d);
		return (void)fuse_reply_err(req, -r);
	}
	fi->fh = (uintptr_t)d;
	fi->cache_readdir = d->content; /* the kernel may keep listings of immutable trees */
	fi->keep_cache = d->content;
	if (fuse_reply_open(req, fi) != 0) {
		dir_release(fs, d);
		free(d);
	}
}

static void op_releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh;
	if (d) {
		dir_release(fs_of(req), d);
		free(d);
	}
	fuse_reply_err(req, 0);
}

static size_t dir_count(const struct fs_dir *d)
{
	return d->content ? cairn_tree_count(fs_cache_val(d->tree)) : d->list->n;
}

/* Entry i of the listing ("." and ".." first): name and attributes for readdir. */
static const char *dir_entry(const struct fs_dir *d, fuse_ino_t self, size_t i, struct stat *st,
                             const struct cairn_node **cn)
{
	*st = (struct stat){ 0 };
	*cn = NULL;
	if (i < 2) {
		st->st_ino = i == 0 ? self : d->parent;
		st->st_mode = S_IFDIR;
		return i == 0 ? "." : "..";
	}
	i -= 2;
	if (!d->content) {
		const struct fs_dirent *e = &d->list->v[i];
		st->st_ino = e->ino;
		st->st_mode = DTTOIF(e->type);
		return e->name;
	}
	*cn = cairn_tree_node(fs_cache_val(d->tree), i);
	st->st_mode = fs_type_mode((*cn)->type);
	return NULL; /* the caller copies the raw name, and numbers the entry */
}

/* The lookups one readdirplus reply counts, undone if the kernel never sees it. */
struct counted {
	uint64_t *ino;
	size_t n, cap;
};

/* readdirplus of one tree entry: counts a lookup, as the kernel will forget it. */
static size_t add_plus(fuse_req_t req, struct fs *fs, const struct fs_dir *d, size_t i,
                       fuse_ino_t self, const char *name, char *buf, size_t left, off_t next,
                       struct counted *c)
{
	size_t need = fuse_add_direntry_plus(req, NULL, 0, name, NULL, 0);
	struct fs_node *n;
	if (need > left)
		return need;
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		uint64_t *p = realloc(c->ino, cap * sizeof(*p));
		if (!p)
			return SIZE_MAX;
		c->ino = p;
		c->cap = cap;
	}
	if (fs_node_new_entry(&n, &d->snap, d->tree, i - 2) < 0)
		return SIZE_MAX; /* stop here; the kernel asks again */
	n->parent = self;
	n = fs_inodes_add(fs->inodes, n);
	c->ino[c->n++] = n->ino;
	struct fuse_entry_param e = { .ino = n->ino,
		                      .attr_timeout = FS_CONTENT_TIMEOUT,
		                      .entry_timeout = FS_CONTENT_TIMEOUT };
	fs_entry_stat(cairn_tree_node(fs_cache_val(d->tree), i - 2), n->ino, &e.attr);
	return fuse_add_direntry_plus(req, buf, left, name, &e, next);
}

static size_t add_one(fuse_req_t req, struct fs *fs, const struct fs_dir *d, size_t i, bool plus,
                      fuse_ino_t self, char *buf, size_t left, struct counted *c)
{
	char raw[CAIRN_NAME_MAX + 1];
	const struct cairn_node *cn;
	struct stat st;
	const char *name = dir_entry(d, self, i, &st, &cn);
	if (!name) {
		memcpy(raw, cn->name, cn->name_len);
		raw[cn->name_len] = '\0';
		name = raw;
	}
	off_t next = (off_t)i + 1;
	if (plus && cn)
		return add_plus(req, fs, d, i, self, name, buf, left, next, c);
	if (plus) {
		/* Node ID 0: the kernel shows the entry without linking it (no lookup). */
		struct fuse_entry_param e = { .attr = st };
		return fuse_add_direntry_plus(req, buf, left, name, &e, next);
	}
	if (cn) /* a hash: computed only where no node computes it */
		st.st_ino = fs_ino_entry(&d->snap, fs_cache_id(d->tree), (uint32_t)(i - 2), cn);
	return fuse_add_direntry(req, buf, left, name, &st, next);
}

/* One READDIR(PLUS) reply of d from offset off. */
static void list_page(fuse_req_t req, struct fs *fs, const struct fs_dir *d, fuse_ino_t ino,
                      size_t size, off_t off, bool plus)
{
	_cleanup_free_ char *buf = malloc(size);
	struct counted c = { 0 };
	size_t pos = 0, total = dir_count(d) + 2;
	if (!buf)
		return (void)fuse_reply_err(req, ENOMEM);
	for (size_t i = off < 0 ? 0 : (size_t)off; i < total; i++) {
		size_t len = add_one(req, fs, d, i, plus, ino, buf + pos, size - pos, &c);
		if (len == SIZE_MAX && pos == 0) {
			free(c.ino);
			return (void)fuse_reply_err(req, ENOMEM); /* empty would mean the end */
		}
		if (len > size - pos)
			break;
		pos += len;
	}
	/* A reply the kernel never got (interrupted request) counts no lookups. */
	if (fuse_reply_buf(req, buf, pos) != 0)
		for (size_t k = 0; k < c.n; k++)
			fs_inodes_forget(fs->inodes, c.ino[k], 1);
	free(c.ino);
}

/* find, du, cp -a and file managers descend into what they list: the subtrees
 * load on the prefetch threads while the kernel digests this reply. Local
 * repositories only: from S3 each could be a GET nobody asked for. */
static void prefetch_subdirs(struct fs *fs, const struct fs_cache_ent *tree)
{
	const cairn_tree *t = fs_cache_val(tree);
	size_t count = cairn_tree_count(t), n = 0;
	struct cairn_id ids[PREFETCH_SUBDIRS];
	for (size_t i = 0; i < count && n < PREFETCH_SUBDIRS; i++) {
		const struct cairn_node *cn = cairn_tree_node(t, i);
		if (cn->type == CAIRN_NODE_DIR)
			ids[n++] = cn->subtree;
	}
	fs_cache_prefetch(fs->trees, ids, n);
}

static void do_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi, bool plus)
{
	struct fs *fs = fs_of(req);
	struct fs_dir *d = (struct fs_dir *)(uintptr_t)fi->fh, here;
	if (!d) {
		struct fs_node *n = node_or_reply(req, ino);
		if (!n)
			return;
		int r = dir_load(fs, n, &here);
		if (r < 0) {
			dir_release(fs, &here);
			return (void)fuse_reply_err(req, -r);
		}
		d = &here;
	}
	/* Our own reference: once the reply is out, a RELEASEDIR may free d. */
	struct fs_cache_ent *t =
	        off == 0 && d->content && fs->local ? fs_cache_ref(fs->trees, d->tree) : NULL;
	list_page(req, fs, d, ino, size, off, plus);
	if (t) {
		prefetch_subdirs(fs, t);
		fs_cache_put(fs->trees, t);
	}
	if (d == &here)
		dir_release(fs, &here);
}

static void op_readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                       struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, false);
}

static void op_readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off,
                           struct fuse_file_info *fi)
{
	do_readdir(req, ino, size, off, fi, true);
}

/* ---- the file system as a whole ----------------------------------------- */

static void op_init(void *userdata, struct fuse_conn_info *conn)
{
	struct fs *fs = userdata;
	/* Without this flag the kernel hides system.posix_acl_* from getxattr. It
	 * also makes the kernel enforce the ACLs, which needs default_permissions. */
	if (fs->acl && (conn->capable & FUSE_CAP_POSIX_ACL))
		conn->want |= FUSE_CAP_POSIX_ACL;
	/* Each request is a round trip (tens of µs on a VM): the kernel sends no
	 * OPENDIR/RELEASEDIR or OPEN/RELEASE once the first of each got ENOSYS. */
	if (conn->capable & FUSE_CAP_NO_OPENDIR_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPENDIR_SUPPORT;
		fs->no_opendir = true;
	}
	if (conn->capable & FUSE_CAP_NO_OPEN_SUPPORT) {
		conn->want |= FUSE_CAP_NO_OPEN_SUPPORT;
		fs->no_open = true;
	}
	/* Attributes with every listing, not only its first page: cp -a, rsync and
	 * find then send no LOOKUP per entry (content never changes). */
	conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
	/* Every path through "latest" would otherwise cost a READLINK; a link's
	 * inode number changes with its target (layout.c). */
	if (conn->capable & FUSE_CAP_CACHE_SYMLINKS)
		conn->want |= FUSE_CAP_CACHE_SYMLINKS;
	/* libfuse derives max_pages from max_write: 1 MiB requests in both directions.
	 * The kernel caps max_readahead at what it offered (128 KiB); the
	 * read-ahead thread raises it after INIT (fs_readahead_start). */
	conn->max_write = MiB;
	conn->max_readahead = MiB;
	conn->time_gran = 1;
}

static void op_statfs(fuse_req_t req, fuse_ino_t ino)
{
	(void)ino;
	struct statvfs st = {
		.f_bsize = 4096, .f_frsize = 4096, .f_namemax = CAIRN_NAME_MAX, .f_flag = ST_RDONLY
	};
	fuse_reply_statfs(req, &st);
}

/* ---- everything that would modify: EROFS -------------------------------- */

static void op_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set,
                       struct fuse_file_info *fi)
{
	(void)ino, (void)attr, (void)to_set, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_mknod(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode, dev_t rdev)
{
	(void)parent, (void)name, (void)mode, (void)rdev;
	fuse_reply_err(req, EROFS);
}

static void op_mkdir(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode)
{
	(void)parent, (void)name, (void)mode;
	fuse_reply_err(req, EROFS);
}

static void op_remove(fuse_req_t req, fuse_ino_t parent, const char *name)
{
	(void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_symlink(fuse_req_t req, const char *link, fuse_ino_t parent, const char *name)
{
	(void)link, (void)parent, (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_rename(fuse_req_t req, fuse_ino_t parent, const char *name, fuse_ino_t newparent,
                      const char *newname, unsigned int flags)
{
	(void)parent, (void)name, (void)newparent, (void)newname, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newparent, const char *newname)
{
	(void)ino, (void)newparent, (void)newname;
	fuse_reply_err(req, EROFS);
}

static void op_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off,
                     struct fuse_file_info *fi)
{
	(void)ino, (void)buf, (void)size, (void)off, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_create(fuse_req_t req, fuse_ino_t parent, const char *name, mode_t mode,
                      struct fuse_file_info *fi)
{
	(void)parent, (void)name, (void)mode, (void)fi;
	fuse_reply_err(req, EROFS);
}

static void op_setxattr(fuse_req_t req, fuse_ino_t ino, const char *name, const char *value,
                        size_t size, int flags)
{
	(void)ino, (void)name, (void)value, (void)size, (void)flags;
	fuse_reply_err(req, EROFS);
}

static void op_removexattr(fuse_req_t req, fuse_ino_t ino, const char *name)
{
	(void)ino, (void)name;
	fuse_reply_err(req, EROFS);
}

static void op_fallocate(fuse_req_t req, fuse_ino_t ino, int mode, off_t offset, off_t length,
                         struct fuse_file_info *fi)
{
	(void)ino, (void)mode, (void)offset, (void)length, (void)fi;
	fuse_reply_err(req, EROFS);
}

const struct fuse_lowlevel_ops fs_ops = {
	.init = op_init,
	.lookup = op_lookup,
	.forget = op_forget,
	.forget_multi = op_forget_multi,
	.getattr = op_getattr,
	.readlink = op_readlink,
	.opendir = op_opendir,
	.readdir = op_readdir,
	.readdirplus = op_readdirplus,
	.releasedir = op_releasedir,
	.open = fs_op_open,
	.read = fs_op_read,
	/* no .release: nothing to free (libfuse then answers it with success) */
	.lseek = fs_op_lseek,
	.getxattr = fs_op_getxattr,
	.listxattr = fs_op_listxattr,
	.statfs = op_statfs,
	.setattr = op_setattr,
	.mknod = op_mknod,
	.mkdir = op_mkdir,
	.unlink = op_remove,
	.rmdir = op_remove,
	.symlink = op_symlink,
	.rename = op_rename,
	.link = op_link,
	.write = op_write,
	.create = op_create,
	.setxattr = op_setxattr,
	.removexattr = op_removexattr,
	.fallocate = op_fallocate,
};
