/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Setting up the state of one mount: caches and their loaders, and the read-ahead. */
#include "mount.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cleanup.h"
#include "read.h"
#include "xscan.h"

/* Of the cache_size budget, parsed trees get a quarter, data blobs the rest. */
#define TREE_CACHE_SHARE 4
#define FILE_CACHE_SHARE 64 /* extent maps: a 64th, on top */
#define BLOB_PREFETCH 2
#define TREE_PREFETCH 1 /* trees are small: one keeps ahead of a walk */

/* ---- recycled blob buffers ----------------------------------------------- */

/* Smaller buffers come from malloc's arenas, reused without faults anyway
 * (main.c sets the threshold above which malloc maps fresh memory). */
#define BUFPOOL_MIN (256u << 10)
#define BUFPOOL_MAX (16u << 20)
#define BUFPOOL_SHARE 8 /* of the blob cache, at most */

static void bufpool_init(struct fs_bufpool *p, uint64_t blob_capacity)
{
	pthread_mutex_init(&p->lock, NULL);
	p->max = blob_capacity / BUFPOOL_SHARE < BUFPOOL_MAX ? blob_capacity / BUFPOOL_SHARE
	                                                     : BUFPOOL_MAX;
}

static void bufpool_release(struct fs_bufpool *p)
{
	for (size_t i = 0; i < p->n; i++)
		cairn_buf_release(&p->v[i]);
	p->n = 0;
	pthread_mutex_destroy(&p->lock);
}

/* The largest buffer kept, emptied, or an empty one. */
static struct cairn_buf bufpool_take(struct fs_bufpool *p)
{
	struct cairn_buf b = CAIRN_BUF_INIT;
	pthread_mutex_lock(&p->lock);
	size_t best = p->n;
	for (size_t i = 0; i < p->n; i++)
		if (best == p->n || p->v[i].cap > p->v[best].cap)
			best = i;
	if (best < p->n) {
		b = p->v[best];
		p->v[best] = p->v[--p->n];
		p->bytes -= b.cap;
	}
	pthread_mutex_unlock(&p->lock);
	b.len = 0;
	return b;
}

/* Keeps b's memory for the next load, or frees it; b is empty afterwards. */
static void bufpool_give(struct fs_bufpool *p, struct cairn_buf *b)
{
	bool kept = false;
	if (b->cap >= BUFPOOL_MIN) {
		pthread_mutex_lock(&p->lock);
		if (p->n < FS_BUFPOOL_SLOTS && p->bytes + b->cap <= p->max) {
			p->v[p->n++] = *b;
			p->bytes += b->cap;
			kept = true;
		}
		pthread_mutex_unlock(&p->lock);
	}
	if (kept)
		*b = (struct cairn_buf)CAIRN_BUF_INIT;
	else
		cairn_buf_release(b);
}

/* ---- cache loaders ------------------------------------------------------ */

/* A data blob in the cache: its bytes first, so that readers see a cairn_buf. */
struct blob {
	struct cairn_buf buf;
	struct fs_bufpool *pool;
};

/* Decoding into the memory of an evicted blob spares the page faults of a
 * fresh buffer: 280,000 of them for an 857 MB file read cold, about a third
 * of the daemon's CPU time (bench/README.md §3). */
static int load_blob(void *payload, const struct cairn_id *id, void **val, size_t *bytes)
{
	struct fs *fs = payload;
	struct blob *b = calloc(1, sizeof(*b));
	if (!b)
		return cairn_err_set(-ENOMEM, "out of memory");
	b->pool = &fs->bufpool;
	b->buf = bufpool_take(b->pool);
	int r = cairn_repo_get_typed(fs->repo, CAIRN_BLOB_DATA, id, &b->buf);
	if (r < 0) {
		bufpool_give(b->pool, &b->buf);
		free(b);
		return r;
	}
	*val = b;
	*bytes = b->buf.cap + sizeof(*b);
	return 0;
}

static void free_blob(void *val)
{
	struct blob *b = val;
	bufpool_give(b->pool, &b->buf);
	free(b);
}

static int load_tree(void *payload, const struct cairn_id *id, void **val, size_t *bytes)
{
	cairn_tree *t;
	int r = cairn_repo_tree_load(payload, id, &t);
	if (r < 0)
		return r;
	*val = t;
	*bytes = cairn_tree_memory(t);
	return 0;
}

static void free_tree(void *val)
{
	cairn_tree_free(val);
}

static const struct fs_cache_ops blob_ops = { .load = load_blob, .free = free_blob };
static const struct fs_cache_ops tree_ops = { .load = load_tree, .free = free_tree };

int fs_open(struct fs *fs, cairn_repo *repo, uint64_t cache_size)
{
	int r;
	uint64_t trees = cache_size / TREE_CACHE_SHARE;

	fs->repo = repo;
	fs->uid = getuid();
	fs->gid = getgid();
	bufpool_init(&fs->bufpool, cache_size - trees);
	fs->pool_ready = true;
	if ((r = fs_cache_new(&fs->blobs, "blob", &blob_ops, fs, cache_size - trees,
	                      BLOB_PREFETCH)) < 0 ||
	    (r = fs_cache_new(&fs->trees, "tree", &tree_ops, repo, trees, TREE_PREFETCH)) < 0 ||
	    (r = fs_cache_new(&fs->files, "file", &fs_file_ops, fs, cache_size / FILE_CACHE_SHARE,
	                      0)) < 0 ||
	    (r = fs_inodes_new(&fs->inodes)) < 0 ||
	    (r = fs_snapview_new(&fs->snapview, repo, FS_REFRESH_MS)) < 0 ||
	    /* From S3 the walk would fetch every tree of the repository. With
	     * default_permissions the kernel reads ACLs through GETXATTR to
	     * enforce them: an ENOSYS would stop that for snapshots made later. */
	    (r = fs_xscan_new(&fs->xscan, fs->trees, fs->snapview,
	                      fs->xattrs_always || !fs->local || fs->acl)) < 0) {
		fs_close(fs);
		return r;
	}
	return 0;
}

void fs_close(struct fs *fs)
{
	struct fs_cache_stats b = { 0 }, t = { 0 };
	if (fs->blobs && fs->trees) {
		fs_cache_stats(fs->blobs, &b);
		fs_cache_stats(fs->trees, &t);
		log_debug("blob cache: %llu hits, %llu misses; tree cache: %llu hits, %llu misses",
		          (unsigned long long)b.hits, (unsigned long long)b.misses,
		          (unsigned long long)t.hits, (unsigned long long)t.misses);
		log_debug("history: %llu listings built",
		          (unsigned long long)atomic_load(&fs->hist_listings));
	}
	fs_xscan_free(fs->xscan); /* first: it reads trees of the snapshot view */
	fs->xscan = NULL;
	fs_inodes_free(fs->inodes);
	fs_snapview_free(fs->snapview);
	fs_cache_free(fs->blobs);
	fs_cache_free(fs->trees);
	fs_cache_free(fs->files);
	fs->inodes = NULL;
	fs->snapview = NULL;
	fs->blobs = fs->trees = fs->files = NULL;
	if (fs->pool_ready) /* after the blob cache, which gives its buffers back */
		bufpool_release(&fs->bufpool);
	fs->pool_ready = false;
}

/* ---- read-ahead ---------------------------------------------------------- */

static void tell_ready(int fd)
{
	char ok = 0;
	if (fd < 0)
		return;
	if (write(fd, &ok, 1) < 0)
		log_debug("the parent process is gone");
	close(fd);
}

static void *raise_readahead(void *arg)
{
	const struct fs_readahead *ra = arg;
	const char *mnt = ra->mountpoint;
	struct stat st;
	/* The kernel handles the INIT reply before it answers any request, and
	 * INIT sets the read-ahead to at most what the kernel offered (128 KiB):
	 * once this stat returns, a larger value stays. */
	int r = stat(mnt, &st);
	tell_ready(ra->ready_fd);
	if (r < 0) {
		log_debug("cannot stat '%s' to raise its read-ahead: %s", mnt, strerror(errno));
		return NULL;
	}
	char path[64], val[16];
	snprintf(path, sizeof(path), "/sys/class/bdi/%u:%u/read_ahead_kb", major(st.st_dev),
	         minor(st.st_dev));
	int len = snprintf(val, sizeof(val), "%u\n", FS_READAHEAD_KB);
	_cleanup_close_ int fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, val, (size_t)len) != len) {
		/* Only root may write there: for anyone else that is expected. As
		 * root it is not (a read-only /sys, say), and reads are slower: at
		 * the default level (notice), so that the journal has it. */
		int e = errno;
		cairn_log(geteuid() == 0 ? CAIRN_LOG_NOTICE : CAIRN_LOG_DEBUG,
		          "cannot raise the read-ahead to %u KiB in '%s': %s; it stays at the "
		          "kernel's default",
		          FS_READAHEAD_KB, path, strerror(e));
	} else
		log_debug("read-ahead of '%s' raised to %u KiB", mnt, FS_READAHEAD_KB);
	return NULL;
}

void fs_readahead_start(struct fs_readahead *ra, const char *mountpoint, int ready_fd)
{
	ra->mountpoint = mountpoint;
	ra->ready_fd = ready_fd;
	int r = pthread_create(&ra->thread, NULL, raise_readahead, ra);
	ra->started = r == 0;
	if (r != 0) {
		log_debug("cannot start the read-ahead thread: %s", strerror(r));
		tell_ready(ready_fd);
	}
}

void fs_readahead_join(struct fs_readahead *ra)
{
	if (ra->started)
		pthread_join(ra->thread, NULL);
	ra->started = false;
}
