/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading files: offset -> extent map, shared blob cache, read-ahead, holes as zeros. */
#include "read.h"

#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "fsmap.h"

#define ZERO_SIZE (128u << 10)
#define READ_AHEAD 2  /* data blobs fetched ahead of a sequential reader */
#define NEIGHBOURS 64 /* entries after a small file whose blobs are fetched */
#define NEIGHBOUR_MAX (1u << 20)

static const uint8_t zeros[ZERO_SIZE];

/* A file being read: its own copy of the extents, so that it pins no tree.
 * Files are not opened: reads find this by inode number in fs->files. */
struct fs_file {
	struct cairn_extent *ext;
	struct fs_extmap map;
	_Atomic uint64_t next; /* where a sequential reader continues */
	/* The blob of the last failed read (its first 8 bytes; 0: none): a
	 * failure is logged once per file and blob, not for each of the kernel's
	 * read(-ahead) requests that meet it. */
	_Atomic uint64_t failed;
	char name[CAIRN_NAME_MAX + 1]; /* for messages */
	char snap[9];                  /* the snapshot's ID, shortened, for messages */
};

static void file_free(struct fs_file *f)
{
	fs_extmap_release(&f->map);
	free(f->ext);
	free(f);
}

/* The extents of n, copied out of its tree. -ENOMEM, -EIO, logged. */
static int file_new(struct fs *fs, const struct fs_node *n, struct fs_file **out)
{
	struct fs_cache_ent *t;
	const struct cairn_node *cn;
	int r = fs_entry_get(fs, n, &t, &cn);
	if (r < 0)
		return r;
	struct fs_file *f = calloc(1, sizeof(*f));
	if (f)
		f->ext = malloc((cn->nextents ? cn->nextents : 1) * sizeof(*f->ext));
	if (!f || !f->ext) {
		fs_cache_put(fs->trees, t);
		free(f);
		cairn_err_set(-ENOMEM, "out of memory");
		return log_error_errno(-ENOMEM, "cannot read '%.*s'", (int)cn->name_len, cn->name);
	}
	if (cn->nextents > 0) /* an empty file has no extents array */
		memcpy(f->ext, cn->extents, cn->nextents * sizeof(*f->ext));
	memcpy(f->name, cn->name, cn->name_len);
	f->name[cn->name_len] = '\0';
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, &n->snap);
	snprintf(f->snap, sizeof(f->snap), "%.8s", hex);
	r = fs_extmap_init(&f->map, f->ext, cn->nextents);
	fs_cache_put(fs->trees, t);
	if (r < 0) {
		log_error("cannot read '%s': its extent lengths overflow", f->name);
		file_free(f);
		return -EIO;
	}
	*out = f;
	return 0;
}

static struct cairn_id file_key(uint64_t ino)
{
	struct cairn_id k = { 0 };
	memcpy(k.b, &ino, sizeof(ino));
	return k;
}

static int load_file(void *payload, const struct cairn_id *key, void **val, size_t *bytes)
{
	struct fs *fs = payload;
	uint64_t ino;
	memcpy(&ino, key->b, sizeof(ino));
	/* Reads come only for inodes the kernel holds, so the node is there. */
	struct fs_node *n = fs_inodes_get(fs->inodes, ino);
	if (!n || n->kind != FS_ENTRY || n->type != CAIRN_NODE_FILE) {
		log_error("cannot read inode %llu: not a known file", (unsigned long long)ino);
		return -ESTALE;
	}
	struct fs_file *f = NULL;
	int r = file_new(fs, n, &f);
	if (r < 0)
		return r;
	*val = f;
	*bytes = sizeof(*f) + f->map.n * (sizeof(*f->ext) + sizeof(*f->map.start));
	return 0;
}

static void free_file(void *val)
{
	file_free(val);
}

const struct fs_cache_ops fs_file_ops = { .load = load_file, .free = free_file };

/* Checked here, though with FUSE_CAP_NO_OPEN_SUPPORT only the first open of the
 * mount comes: ENOSYS then tells the kernel to skip OPEN and RELEASE (two round
 * trips per file) from now on. The kernel itself refuses writes on the
 * read-only mount, and keeps the page cache (FOPEN_KEEP_CACHE is its default). */
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
	if (fs->no_open)
		return (void)fuse_reply_err(req, ENOSYS);
	fi->fh = 0;
	fi->keep_cache = 1; /* content is immutable: the page cache stays valid */
	fi->noflush = 1;
	fuse_reply_open(req, fi);
}

/* The file of ino from the cache, or an error reply sent (NULL); the loader
 * logged why. */
static struct fs_cache_ent *file_get(fuse_req_t req, fuse_ino_t ino)
{
	struct fs *fs = fuse_req_userdata(req);
	struct cairn_id key = file_key(ino);
	struct fs_cache_ent *e;
	int r = fs_cache_get(fs->files, &key, &e);
	if (r < 0) {
		fuse_reply_err(req, r == -ENOMEM ? ENOMEM : r == -ESTALE ? ESTALE : EIO);
		return NULL;
	}
	return e;
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

/* Collect [off, off + n) from extents first..last; on failure *bad is the
 * extent that failed. */
static int collect(struct fs *fs, const struct fs_file *f, uint64_t off, uint64_t n, size_t first,
                   size_t last, struct pieces *p, size_t *bad)
{
	for (size_t i = first; i <= last; i++) {
		const struct cairn_extent *x = &f->map.ext[i];
		uint64_t s = f->map.start[i], e = f->map.start[i + 1];
		uint64_t from = off > s ? off : s, to = off + n < e ? off + n : e;
		int r = cairn_id_is_zero(&x->id) ? (add_zeros(p, to - from), 0)
		                                 : add_data(fs, p, x, from - s, to - from);
		*bad = i;
		if (r < 0)
			return r;
	}
	return 0;
}

/* On a sequential read, start loading the data blobs after the last one read. */
static void read_ahead(struct fs *fs, const struct fs_file *f, size_t last)
{
	struct cairn_id ids[READ_AHEAD];
	size_t n = 0;
	for (size_t i = last + 1; i < f->map.n && n < READ_AHEAD; i++)
		if (!cairn_id_is_zero(&f->map.ext[i].id))
			ids[n++] = f->map.ext[i].id;
	fs_cache_prefetch(fs->blobs, ids, n);
}

/* cp -a reads a directory's files in its own order (by inode number), rsync in
 * another: on the first read of a small file, load the small files listed after
 * it too, so that the next reads find their blobs decoded by the prefetch
 * threads instead of waiting for one decode each. Local repositories only:
 * from S3 each would be a GET nobody asked for (and offline, a failed one). */
static void read_neighbours(struct fs *fs, const struct cairn_id *dir, uint32_t index)
{
	struct fs_cache_ent *t;
	if (fs_cache_get(fs->trees, dir, &t) < 0)
		return;
	const cairn_tree *tree = fs_cache_val(t);
	size_t count = cairn_tree_count(tree), nids = 0;
	struct cairn_id ids[NEIGHBOURS];
	for (size_t k = 1; k <= NEIGHBOURS && k < count; k++) {
		const struct cairn_node *cn = cairn_tree_node(tree, (index + k) % count);
		if (cn->type == CAIRN_NODE_FILE && cn->nextents == 1 && cn->size <= NEIGHBOUR_MAX &&
		    !cairn_id_is_zero(&cn->extents[0].id))
			ids[nids++] = cn->extents[0].id;
	}
	fs_cache_put(fs->trees, t);
	fs_cache_prefetch(fs->blobs, ids, nids);
}

/* Whether ino, being read, is a small file whose neighbours are worth loading;
 * then where it is listed. After the reply a FORGET may free its node. */
static bool small_file(struct fs *fs, fuse_ino_t ino, const struct fs_file *f, struct cairn_id *dir,
                       uint32_t *index)
{
	if (!fs->local || f->map.n != 1 || fs_extmap_size(&f->map) > NEIGHBOUR_MAX)
		return false;
	struct fs_node *n = fs_inodes_get(fs->inodes, ino);
	if (!n)
		return false;
	*dir = n->tree;
	*index = n->index;
	return true;
}

static uint64_t blob_key(const struct fs_file *f, size_t i)
{
	uint64_t key;
	memcpy(&key, f->map.ext[i].id.b, sizeof(key));
	return key | 1; /* never 0 */
}

/* A read of extents first..last succeeded: if it read the blob that failed
 * (repaired since), a new failure of it is news again. */
static void repaired(struct fs_file *f, size_t first, size_t last)
{
	uint64_t failed = atomic_load_explicit(&f->failed, memory_order_relaxed);
	for (size_t i = first; failed && i <= last; i++)
		if (blob_key(f, i) == failed)
			atomic_compare_exchange_strong(&f->failed, &failed, 0);
}

/* A read of f failed at extent bad: one line for the first request that
 * meets a failing blob, debug for the next ones (the kernel's read-ahead
 * sends several). */
static void log_failure(struct fs_file *f, size_t bad, uint64_t off)
{
	uint64_t key = blob_key(f, bad);
	bool again = atomic_exchange(&f->failed, key) == key;
	cairn_log(again ? CAIRN_LOG_DEBUG : CAIRN_LOG_ERR,
	          "cannot read '%s' (snapshot %s) at offset %llu: %s", f->name, f->snap,
	          (unsigned long long)off, cairn_err_msg());
}

void fs_op_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = fuse_req_userdata(req);
	struct fs_cache_ent *fe = file_get(req, ino);
	if (!fe)
		return;
	struct fs_file *f = fs_cache_val(fe);
	uint64_t fsize = fs_extmap_size(&f->map);
	if (off < 0 || (uint64_t)off >= fsize || size == 0) {
		fuse_reply_buf(req, NULL, 0);
		return fs_cache_put(fs->files, fe);
	}
	uint64_t n = fsize - (uint64_t)off < size ? fsize - (uint64_t)off : size;
	size_t first = fs_extmap_find(&f->map, (uint64_t)off);
	size_t last = fs_extmap_find(&f->map, (uint64_t)off + n - 1);
	size_t nx = last - first + 1;
	struct pieces p = { .cap = nx + n / ZERO_SIZE + 1 };
	p.iov = calloc(p.cap, sizeof(*p.iov));
	p.refs = calloc(nx, sizeof(*p.refs));
	size_t bad = first;
	int r = p.iov && p.refs ? collect(fs, f, (uint64_t)off, n, first, last, &p, &bad)
	                        : cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0) {
		log_failure(f, bad, (uint64_t)off);
		fuse_reply_err(req, r == -ENOMEM ? ENOMEM : EIO);
	} else {
		repaired(f, first, last);
		bool sequential = atomic_exchange(&f->next, (uint64_t)off + n) == (uint64_t)off;
		if (sequential)
			read_ahead(fs, f, last);
		/* Queued after the reply, so that the reader need not wait for the
		 * lookups; the node's place is read before it, while the request pins
		 * the node. */
		struct cairn_id dir;
		uint32_t index;
		bool neighbours = off == 0 && small_file(fs, ino, f, &dir, &index);
		fuse_reply_iov(req, p.iov, (int)p.niov);
		if (neighbours)
			read_neighbours(fs, &dir, index);
	}
	for (size_t i = 0; i < p.nrefs; i++)
		fs_cache_put(fs->blobs, p.refs[i]);
	free(p.refs);
	free(p.iov);
	fs_cache_put(fs->files, fe);
}

void fs_op_lseek(fuse_req_t req, fuse_ino_t ino, off_t off, int whence, struct fuse_file_info *fi)
{
	(void)fi;
	struct fs *fs = fuse_req_userdata(req);
	if (whence != SEEK_DATA && whence != SEEK_HOLE)
		return (void)fuse_reply_err(req, EINVAL);
	if (off < 0)
		return (void)fuse_reply_err(req, ENXIO);
	struct fs_cache_ent *fe = file_get(req, ino);
	if (!fe)
		return;
	struct fs_file *f = fs_cache_val(fe);
	int64_t r = fs_extmap_seek(&f->map, (uint64_t)off, whence == SEEK_DATA);
	if (r < 0)
		fuse_reply_err(req, (int)-r);
	else
		fuse_reply_lseek(req, (off_t)r);
	fs_cache_put(fs->files, fe);
}
