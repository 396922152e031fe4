/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading files: offset -> extent map, shared blob cache, read-ahead, holes as zeros. */
#include "fs.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsmap.h"

#define ZERO_SIZE (128u << 10)
#define READ_AHEAD 2 /* data blobs fetched ahead of a sequential reader */

static const uint8_t zeros[ZERO_SIZE];

/* An open file: its own copy of the extents, so that it pins no tree. */
struct fs_file {
	struct cairn_extent *ext;
	struct fs_extmap map;
	_Atomic uint64_t next;         /* where a sequential reader continues */
	char name[CAIRN_NAME_MAX + 1]; /* for messages */
};

static void file_free(struct fs_file *f)
{
	fs_extmap_release(&f->map);
	free(f->ext);
	free(f);
}

/* The extents of n, copied out of its tree. -ENOMEM, -EIO. */
static int file_new(struct fs *fs, const struct fs_node *n, struct fs_file **out)
{
	struct fs_cache_ent *t;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &t, &cn);
	if (r < 0)
		return r;
	struct fs_file *f = calloc(1, sizeof(*f));
	f->ext = malloc((cn->nextents ? cn->nextents : 1) * sizeof(*f->ext));
	if (!f || !f->ext) {
		fs_cache_put(fs->trees, t);
		if (f)
			file_free(f);
		return -ENOMEM;
	}
	if (cn->nextents > 0) /* an empty file has no extents array */
		memcpy(f->ext, cn->extents, cn->nextents * sizeof(*f->ext));
	memcpy(f->name, cn->name, cn->name_len);
	f->name[cn->name_len] = '\0';
	r = fs_extmap_init(&f->map, f->ext, cn->nextents);
	fs_cache_put(fs->trees, t);
	if (r < 0) {
		file_free(f);
		return -EIO;
	}
	*out = f;
	return 0;
}

void fs_op_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	struct fs *fs = fuse_req_userdata(req);
	struct fs_node *n = fs_inodes_get(fs->inodes, ino);
	if (!n)
		return (void)fuse_reply_err(req, ESTALE);
	if ((fi->flags & O_ACCMODE) != O_RDONLY || (fi->flags & O_TRUNC))
		return (void)fuse_reply_err(req, EROFS);
	if (n->kind != FS_ENTRY || n->type != CAIRN_NODE_FILE)
		return (void)fuse_reply_err(req, n->kind == FS_VLINK ? ELOOP : EISDIR);
	struct fs_file *f;
	int r = file_new(fs, n, &f);
	if (r < 0)
		return (void)fuse_reply_err(req, -r);
	fi->fh = (uintptr_t)f;
	fi->keep_cache = 1; /* content is immutable: the page cache stays valid */
	fi->noflush = 1;
	if (fuse_reply_open(req, fi) != 0)
		file_free(f);
}

void fs_op_release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi)
{
	(void)ino;
	file_free((struct fs_file *)(uintptr_t)fi->fh);
	fuse_reply_err(req, 0);
}

/* The pieces of one read: iovecs into cached blobs (held by refs) and zeros. */
struct pieces {
	struct iovec *iov;
	size_t niov, cap;
	struct fs_cache_ent **refs;
	size_t nrefs;
};

static void add_zeros(struct pieces *p, uint64_t len)
{
	while (len > 0) {
		size_t l = len < ZERO_SIZE ? (size_t)len : ZERO_SIZE;
		p->iov[p->niov++] = (struct iovec){ .iov_base = (void *)zeros, .iov_len = l };
		len -= l;
	}
}

static int add_data(struct fs *fs, struct pieces *p, const struct cairn_extent *x, uint64_t inner,
                    uint64_t len)
{
	struct fs_cache_ent *e;
	int r = fs_cache_get(fs->blobs, &x->id, &e);
	if (r < 0)
		return r;
	p->refs[p->nrefs++] = e;
	const struct cairn_buf *b = fs_cache_val(e);
	if (b->len != x->len)
		return cairn_err_set(-EBADMSG, "data blob is %zu bytes, the tree says %llu", b->len,
		                     (unsigned long long)x->len);
	p->iov[p->niov++] = (struct iovec){ .iov_base = b->data + inner, .iov_len = (size_t)len };
	return 0;
}

/* Collect [off, off + n) from extents first..last. */
static int collect(struct fs *fs, const struct fs_file *f, uint64_t off, uint64_t n, size_t first,
                   size_t last, struct pieces *p)
{
	for (size_t i = first; i <= last; i++) {
		const struct cairn_extent *x = &f->map.ext[i];
		uint64_t s = f->map.start[i], e = f->map.start[i + 1];
		uint64_t from = off > s ? off : s, to = off + n < e ? off + n : e;
		int r = cairn_id_is_zero(&x->id) ? (add_zeros(p, to - from), 0)
		                                 : add_data(fs, p, x, from - s, to - from);
		if (r < 0)
			return r;
	}
	return 0;
}

/* On a sequential read, start loading the data blobs after the last one read. */
static void read_ahead(struct fs *fs, const struct fs_file *f, size_t last)
{
	unsigned queued = 0;
	for (size_t i = last + 1; i < f->map.n && queued < READ_AHEAD; i++) {
		if (cairn_id_is_zero(&f->map.ext[i].id))
			continue;
		fs_cache_prefetch(fs->blobs, &f->map.ext[i].id);
		queued++;
	}
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs *fs = fuse_req_userdata(req);
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;
	uint64_t fsize = fs_extmap_size(&f->map);
	if (off < 0 || (uint64_t)off >= fsize || size == 0)
		return (void)fuse_reply_buf(req, NULL, 0);
	uint64_t n = fsize - (uint64_t)off < size ? fsize - (uint64_t)off : size;
	size_t first = fs_extmap_find(&f->map, (uint64_t)off);
	size_t last = fs_extmap_find(&f->map, (uint64_t)off + n - 1);
	size_t nx = last - first + 1;
	struct pieces p = { .cap = nx + n / ZERO_SIZE + 1 };
	p.iov = calloc(p.cap, sizeof(*p.iov));
	p.refs = calloc(nx, sizeof(*p.refs));
	int r = p.iov && p.refs ? collect(fs, f, (uint64_t)off, n, first, last, &p)
	                        : cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0) {
		log_error("cannot read '%s' at offset %lld: %s", f->name, (long long)off,
		          cairn_err_msg());
		fuse_reply_err(req, r == -ENOMEM ? ENOMEM : EIO);
	} else {
		bool sequential = atomic_exchange(&f->next, (uint64_t)off + n) == (uint64_t)off;
		if (sequential)
			read_ahead(fs, f, last);
		fuse_reply_iov(req, p.iov, (int)p.niov);
	}
	for (size_t i = 0; i < p.nrefs; i++)
		fs_cache_put(fs->blobs, p.refs[i]);
	free(p.refs);
	free(p.iov);
}

void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)ino;
	struct fs_file *f = (struct fs_file *)(uintptr_t)fi->fh;
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return (void)fuse_reply_err(req, EINVAL);
	if (off < 0)
		return (void)fuse_reply_err(req, ENXIO);
	int64_t r = fs_extmap_seek(&f->map, (uint64_t)off, whence == SEEK_DATA);
	if (r < 0)
		return (void)fuse_reply_err(req, (int)-r);
	fuse_reply_lseek(req, (off_t)r);
}
