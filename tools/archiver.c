/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * The ingester. One walker thread lists and stats every entry depth-first and
 * decides what must be read; worker threads read, chunk, hash, compress, encrypt
 * and store file content, a chunk at a time, so even one large file uses every
 * core. A directory's tree blob is written by whichever thread completes its last
 * child (a counter per directory), so nothing ever waits for a whole directory.
 * Memory is bounded by the job queues, one read buffer per worker, and the
 * metadata of the directories still open along the walk.
 */
#include "archiver.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bufpool.h"
#include "cli.h"
#include "fsmeta.h"
#include "cleanup.h"

#define FILE_QUEUE 256
#define DIR_QUEUE 64
#define SMALL_CHUNK (256 * 1024) /* chunks below this are stored by the reader itself */
/* A file smaller than this is read into its reader's own buffer; a larger one
 * into one of the pool's 2 x max-chunk buffers, one per CPU: a large buffer per
 * worker would cost 16 MiB of memory for each, and the kernel's read-ahead keeps
 * a large file's reads going without more readers. */
#define SMALL_READ (1024 * 1024)
#define EXTENT_BLOCK 256
/* Workers wait on reads as well as compute: at least this many keep a disk's
 * queue busy while the cores work (a cold first backup on 2 cores took 2.3 s
 * with 8 workers, 3.4 to 4.8 s with 2; bench/README §3), and twice the CPUs
 * beyond that, at most MAX_WORKERS. */
#define MIN_WORKERS 8
#define MAX_WORKERS 64

struct entry {
	struct cairn_node node; /* variable fields point into meta, extents or the old tree */
	struct fsmeta meta;
	struct cairn_extent *extents; /* owned when the file was read in this run */
	bool skip;                    /* vanished, excluded or not stat-able: left out */
};

/* Paths given on the command line form a trie: directories above them are listed
 * selectively, the paths themselves completely. */
struct sel {
	char *name;
	struct sel *kids;
	size_t nkids;
	bool whole; /* a path given by the user: back up everything below */
};

struct dir {
	struct dir *parent;
	size_t slot;           /* our entry in parent->entries */
	atomic_size_t pending; /* the walker's hold + children still being processed */
	int fd;
	dev_t dev;             /* for --one-file-system */
	const struct sel *sel; /* non-NULL: list only these children */
	char *names;           /* NUL-separated listing */
	struct entry *entries;
	size_t n;
	cairn_tree *old;        /* this directory in the parent snapshot */
	struct cairn_id old_id; /* its tree ID, when old is set */
	bool had_old;           /* the parent snapshot has an entry of this name */
	const char *excluded;   /* the rule that left its content out, or NULL */
	bool incomplete;
	char *path;      /* for progress and messages */
	size_t root_len; /* of the path given at or above it (excludes match below) */
};

struct extent_block {
	struct cairn_extent e[EXTENT_BLOCK];
	struct extent_block *next;
};

/* A file being read: its extents fill in as chunks are stored, in any order. */
struct file_ctx {
	struct dir *dir;
	size_t slot;
	atomic_size_t refs; /* the reader + chunk jobs in flight */
	struct extent_block *head, *tail;
	struct extent_block *stale; /* of a read started over: freed with f */
	size_t nextents;
	uint64_t size;
	uint32_t flags;
	uint64_t fail_at; /* test hook: reads fail from here on (UINT64_MAX: never) */
	bool stream;      /* a pipe (--stdin): read, not pread */
	/* files_new or files_changed, counted when queued: a file that cannot be
	 * opened is taken back out (NULL: none). */
	atomic_uint_fast64_t *counted;
};

struct chunk_job {
	struct file_ctx *file;
	struct cairn_extent *slot;
	uint8_t *data;
	size_t len;
};

struct queue {
	void **items;
	size_t cap, head, count;
};

struct reader {
	uint8_t *small; /* SMALL_READ bytes, made when first needed */
	uint8_t *buf;   /* the file's: small, or one of the pool's while it reads */
	size_t cap;     /* of buf: a cut always sees max chunk bytes or the end */
};

struct arch {
	cairn_repo *repo;
	const struct archiver_opts *o;
	struct archiver_stats *st;
	size_t max_chunk;
	struct cairn_id empty_tree;
	unsigned ncpu;
	struct bufpool *big; /* 2 x max chunk each, one per CPU */

	pthread_mutex_t lock;
	pthread_cond_t work, room, done;
	struct queue files, chunks, dirs; /* protected by lock */
	unsigned chunks_running;          /* chunk jobs being stored; protected by lock */
	bool shutdown;                    /* protected by lock */
	bool root_done;                   /* protected by lock */
	struct cairn_id root;             /* protected by lock */

	atomic_int fatal; /* first error that stops the backup */
	char fatal_msg[1024];
	pthread_mutex_t list_lock; /* one o->list call at a time */

	const char *fail_path; /* CAIRN_TEST_READ_FAIL (see test_hooks) */
	uint64_t fail_at;
};

/* ---- errors ------------------------------------------------------------- */

static void set_fatal(struct arch *a, int r)
{
	int zero = 0;
	if (atomic_compare_exchange_strong(&a->fatal, &zero, r))
		snprintf(a->fatal_msg, sizeof(a->fatal_msg), "%s", cairn_err_msg());
}

static bool stopping(struct arch *a)
{
	if (a->o->cancel && atomic_load(a->o->cancel))
		set_fatal(a, cairn_err_set(-ECANCELED, "interrupted"));
	return atomic_load(&a->fatal) != 0;
}

/* An entry that could not be backed up: a warning that makes the snapshot partial. */
static void entry_error(struct arch *a, const char *path, const char *what, int e)
{
	atomic_fetch_add(&a->st->errors, 1);
	cairn_log_f(CAIRN_LOG_WARNING,
	            CAIRN_FIELDS(LOG_STR("path", path), LOG_STR("code", cairn_errno_name(e))),
	            "%s '%s': %s", what, path, strerror(e));
}

/* A file that changed while it was read, and again while it was read again:
 * what was stored may be a mix of versions, so the snapshot is partial. */
static void entry_changed(struct arch *a, const char *path)
{
	atomic_fetch_add(&a->st->errors, 1);
	cairn_log_f(CAIRN_LOG_WARNING, CAIRN_FIELDS(LOG_STR("path", path)),
	            "'%s' changed while it was read, twice: stored as read the second time, "
	            "flagged incomplete",
	            path);
}

static void entry_warning(struct arch *a, const char *path, const char *what)
{
	atomic_fetch_add(&a->st->warnings, 1);
	cairn_log_f(CAIRN_LOG_WARNING, CAIRN_FIELDS(LOG_STR("path", path)), "'%s' %s", path, what);
}

/* backup --list: what happens to path. */
static void tell(struct arch *a, const char *path, enum archiver_fate fate, const char *rule)
{
	if (!a->o->list)
		return;
	pthread_mutex_lock(&a->list_lock);
	a->o->list(path, fate, rule, a->o->list_payload);
	pthread_mutex_unlock(&a->list_lock);
}

static enum archiver_fate fate_of(bool had_old, bool same)
{
	return same ? ARCHIVER_UNMODIFIED : had_old ? ARCHIVER_CHANGED : ARCHIVER_NEW;
}

/* ---- queues ------------------------------------------------------------- */

static int queue_init(struct queue *q, size_t cap)
{
	q->items = calloc(cap, sizeof(*q->items));
	q->cap = cap;
	q->head = q->count = 0;
	return q->items ? 0 : cairn_err_set(-ENOMEM, "out of memory");
}

static void queue_push(struct queue *q, void *item)
{
	q->items[(q->head + q->count++) % q->cap] = item;
}

static void *queue_pop(struct queue *q)
{
	void *item = q->items[q->head];
	q->head = (q->head + 1) % q->cap;
	q->count--;
	return item;
}

/* ---- paths and selection ------------------------------------------------ */

static char *join(const char *dir, const char *name)
{
	size_t a = strlen(dir), b = strlen(name);
	char *p = malloc(a + b + 2);
	if (!p)
		return NULL;
	memcpy(p, dir, a);
	size_t k = a;
	if (a == 0 || dir[a - 1] != '/')
		p[k++] = '/';
	memcpy(p + k, name, b + 1);
	return p;
}

static void sel_free(struct sel *s)
{
	for (size_t i = 0; i < s->nkids; i++)
		sel_free(&s->kids[i]);
	free(s->kids);
	free(s->name);
}

/* The paths come sorted, and what sorts between two paths with a common prefix
 * has that prefix too: a child seen before is the last one added. So even a
 * list of many thousands of paths (--files-from) builds in linear time. */
static struct sel *sel_child(struct sel *s, const char *name, size_t len)
{
	struct sel *last = s->nkids ? &s->kids[s->nkids - 1] : NULL;
	if (last && strlen(last->name) == len && memcmp(last->name, name, len) == 0)
		return last;
	struct sel *k = realloc(s->kids, (s->nkids + 1) * sizeof(*k));
	if (!k)
		return NULL;
	s->kids = k;
	k = &s->kids[s->nkids];
	*k = (struct sel){ .name = strndup(name, len) };
	if (!k->name)
		return NULL;
	s->nkids++;
	return k;
}

static int cmp_sel(const void *a, const void *b)
{
	return strcmp(((const struct sel *)a)->name, ((const struct sel *)b)->name);
}

/* Children by name, for sel_find's binary search. */
static void sel_sort(struct sel *s)
{
	if (s->nkids == 0)
		return;
	qsort(s->kids, s->nkids, sizeof(*s->kids), cmp_sel);
	for (size_t i = 0; i < s->nkids; i++)
		sel_sort(&s->kids[i]);
}

static int sel_build(struct sel *root, const char *const *paths, size_t n)
{
	*root = (struct sel){ 0 };
	for (size_t i = 0; i < n; i++) {
		struct sel *s = root;
		const char *p = paths[i];
		while (*p == '/')
			p++;
		if (!*p)
			s->whole = true; /* "/" itself */
		while (*p) {
			size_t len = strcspn(p, "/");
			if (!(s = sel_child(s, p, len)))
				return cairn_err_set(-ENOMEM, "out of memory");
			p += len;
			while (*p == '/')
				p++;
		}
		s->whole = true;
	}
	sel_sort(root);
	return 0;
}

/* in made absolute by its text alone: the current directory before a relative
 * path, "." and empty components dropped, ".." dropping the component before it.
 * NULL when out of memory (or the current directory is gone). */
static char *lexical_abs(const char *in)
{
	_cleanup_free_ char *cwd = in[0] == '/' ? strdup("") : getcwd(NULL, 0);
	if (!cwd)
		return NULL;
	size_t cap = strlen(cwd) + strlen(in) + 3;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t k = 0;
	for (int part = 0; part < 2; part++) {
		for (const char *p = part ? in : cwd; *p;) {
			size_t len = strcspn(p, "/");
			if (len == 2 && p[0] == '.' && p[1] == '.') {
				while (k > 0 && out[--k] != '/')
					;
			} else if (len > 0 && !(len == 1 && p[0] == '.')) {
				out[k++] = '/';
				memcpy(out + k, p, len);
				k += len;
			}
			p += len + (p[len] == '/');
		}
	}
	if (k == 0)
		out[k++] = '/';
	out[k] = '\0';
	return out;
}

/* A path realpath cannot resolve: its longest prefix that resolves, followed by
 * the rest as written, so that the snapshot names what was asked for. */
static char *resolve_missing(const char *in)
{
	_cleanup_free_ char *abs = lexical_abs(in);
	if (!abs)
		return NULL;
	for (size_t k = strlen(abs); k > 0;) {
		while (k > 0 && abs[k - 1] != '/')
			k--;
		if (k > 0)
			k--; /* abs[k] is the '/' before the component that failed */
		char save = abs[k];
		abs[k] = '\0';
		_cleanup_free_ char *real = realpath(k ? abs : "/", NULL);
		abs[k] = save;
		if (real)
			return join(real, abs + k + 1);
	}
	return strdup(abs);
}

struct given {
	char *path;
	bool missing;
};

static int cmp_given(const void *a, const void *b)
{
	return strcmp(((const struct given *)a)->path, ((const struct given *)b)->path);
}

/* Paths that realpath cannot resolve because they are not there (or not
 * reachable) are backed up as missing; any other failure stops the backup. */
static bool is_missing(int e)
{
	return e == ENOENT || e == ENOTDIR || e == EACCES;
}

static int resolve_given(const char *in, struct given *g, size_t *missing)
{
	g->missing = false;
	if ((g->path = realpath(in, NULL)))
		return 0;
	int e = errno;
	if (!is_missing(e))
		return cairn_err_set(-e, "cannot back up '%s': %s", in, strerror(e));
	if (!(g->path = resolve_missing(in)))
		return cairn_err_set(-ENOMEM, "out of memory");
	g->missing = true;
	if ((*missing)++ == 0)
		cairn_err_set(-e, "cannot back up '%s': %s", in, strerror(e));
	return 0;
}

/* Sorted, a path inside another follows it directly (or after its siblings). */
static bool inside_any(const struct given *v, size_t k, const char *p)
{
	for (size_t j = 0; j < k; j++) {
		size_t l = strlen(v[j].path);
		if (strcmp(v[j].path, p) == 0 || strcmp(v[j].path, "/") == 0 ||
		    (strncmp(v[j].path, p, l) == 0 && p[l] == '/'))
			return true;
	}
	return false;
}

int archiver_normalize_paths(char **in, size_t n, char ***out, size_t *nout)
{
	_cleanup_free_ struct given *v = calloc(n ? n : 1, sizeof(*v));
	char **paths = calloc(n ? n : 1, sizeof(*paths));
	size_t k = 0, missing = 0, kept_missing = 0;
	int r = v && paths ? 0 : cairn_err_set(-ENOMEM, "out of memory");

	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = resolve_given(in[i], &v[i], &missing)) < 0)
			for (size_t j = 0; j < i; j++)
				free(v[j].path);
	if (r < 0) {
		free(paths);
		return r;
	}
	qsort(v, n, sizeof(*v), cmp_given);
	for (size_t i = 0; i < n; i++) {
		if (inside_any(v, k, v[i].path)) {
			free(v[i].path);
			continue;
		}
		kept_missing += v[i].missing;
		v[k++] = v[i];
	}
	for (size_t i = 0; i < k; i++)
		paths[i] = v[i].path;
	*out = paths;
	*nout = k;
	return (int)kept_missing;
}

/* ---- finishing directories ---------------------------------------------- */

static void dir_free(struct dir *d)
{
	for (size_t i = 0; i < d->n; i++) {
		fsmeta_release(&d->entries[i].meta);
		free(d->entries[i].extents);
	}
	free(d->entries);
	free(d->names);
	cairn_tree_free(d->old);
	if (d->fd >= 0)
		close(d->fd);
	free(d->path);
	free(d);
}

static int store_tree(struct arch *a, const struct cairn_buf *plain, struct cairn_id *id)
{
	if (a->o->dry_run)
		return cairn_repo_blob_id(a->repo, plain->data, plain->len, id);
	return cairn_repo_put(a->repo, CAIRN_BLOB_TREE, plain->data, plain->len, NULL, id);
}

/* True when d would encode to exactly the parent snapshot's tree (canonical
 * encoding): then its ID is known and encoding, hashing and storing are skipped.
 * Entries and tree nodes are both in name order. */
static bool same_as_old(const struct dir *d)
{
	size_t j = 0, n = d->old ? cairn_tree_count(d->old) : 0;
	if (!d->old)
		return false;
	for (size_t i = 0; i < d->n; i++) {
		if (d->entries[i].skip)
			continue;
		if (j >= n || !cairn_node_equal(&d->entries[i].node, cairn_tree_node(d->old, j++),
		                                CAIRN_NODE_F_ALL))
			return false;
	}
	return j == n;
}

/* *same: whether the tree is the parent snapshot's. */
static int encode_dir(struct arch *a, struct dir *d, struct cairn_id *id, bool *same)
{
	if ((*same = same_as_old(d))) {
		/* Unless a prune is deleting the parent's tree (its ID is kept). */
		int r = cairn_repo_has(a->repo, &d->old_id);
		if (r != 0) {
			*id = d->old_id;
			return r < 0 ? r : 0;
		}
	}
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT;
	cairn_tree_builder *b = NULL;
	int r = cairn_tree_builder_new(&b);

	for (size_t i = 0; r >= 0 && i < d->n; i++) {
		if (d->entries[i].skip)
			continue;
		r = cairn_tree_builder_add(b, &d->entries[i].node);
		if (r == -EINVAL) { /* an entry the format cannot hold: leave it out */
			char *p = join(d->path,
			               d->names ? (const char *)d->entries[i].node.name : "?");
			log_warn("cannot store '%s': %s", p ? p : d->path, cairn_err_msg());
			atomic_fetch_add(&a->st->errors, 1);
			free(p);
			r = 0;
		}
	}
	if (r >= 0)
		r = cairn_tree_builder_encode(b, &plain);
	cairn_tree_builder_free(b);
	if (r >= 0)
		r = store_tree(a, &plain, id);
	return r < 0 ? r : 0;
}

static void complete_root(struct arch *a, const struct cairn_id *id)
{
	pthread_mutex_lock(&a->lock);
	a->root = *id;
	a->root_done = true;
	/* Everything below the root is done, so the queues are empty: stop the workers. */
	a->shutdown = true;
	pthread_cond_broadcast(&a->work);
	pthread_cond_broadcast(&a->done);
	pthread_mutex_unlock(&a->lock);
}

/* Drop one reference to d; the last one writes its tree and moves up the chain. */
static void dir_release(struct arch *a, struct dir *d)
{
	while (d && atomic_fetch_sub(&d->pending, 1) == 1) {
		struct dir *parent = d->parent;
		size_t slot = d->slot;
		struct cairn_id id = { 0 };

		bool same = false;
		if (!stopping(a)) {
			int r = encode_dir(a, d, &id, &same);
			if (r < 0)
				set_fatal(a, r);
			else if (d->excluded)
				tell(a, d->path, ARCHIVER_EXCLUDED, d->excluded);
			else
				tell(a, d->path, fate_of(d->had_old, same), NULL);
		}
		atomic_fetch_add(&a->st->dirs, 1);
		pthread_mutex_lock(&a->st->lock);
		snprintf(a->st->last_dir, sizeof(a->st->last_dir), "%s", d->path);
		pthread_mutex_unlock(&a->st->lock);
		if (parent) {
			struct entry *e = &parent->entries[slot];
			e->node.subtree = id;
			if (d->incomplete)
				e->node.flags |= CAIRN_NODE_INCOMPLETE;
		} else {
			complete_root(a, &id);
		}
		dir_free(d);
		d = parent;
	}
}

/* ---- storing content ---------------------------------------------------- */

static int store_chunk(struct arch *a, const uint8_t *data, size_t len, struct cairn_id *id)
{
	if (a->o->dry_run)
		return cairn_repo_blob_id(a->repo, data, len, id);
	int r = cairn_repo_put(a->repo, CAIRN_BLOB_DATA, data, len, NULL, id);
	return r < 0 ? r : 0;
}

static struct cairn_extent *add_extent(struct file_ctx *f, uint64_t len)
{
	if (!f->tail || f->nextents % EXTENT_BLOCK == 0) {
		struct extent_block *b = calloc(1, sizeof(*b));
		if (!b)
			return NULL;
		if (f->tail)
			f->tail->next = b;
		else
			f->head = b;
		f->tail = b;
	}
	struct cairn_extent *e = &f->tail->e[f->nextents++ % EXTENT_BLOCK];
	e->len = len;
	f->size += len;
	return e;
}

/* The last reference to a file: hand its extents to its tree entry. */
static void file_finish(struct arch *a, struct file_ctx *f)
{
	struct entry *e = &f->dir->entries[f->slot];
	struct cairn_extent *v = calloc(f->nextents ? f->nextents : 1, sizeof(*v));
	size_t k = 0;

	for (struct extent_block *b = f->head, *next; b; b = next) {
		next = b->next;
		for (size_t i = 0; i < EXTENT_BLOCK && k < f->nextents; i++)
			if (v)
				v[k++] = b->e[i];
		free(b);
	}
	for (struct extent_block *b = f->stale, *next; b; b = next) {
		next = b->next;
		free(b);
	}
	if (!v) {
		set_fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
		e->skip = true;
	} else {
		e->extents = v;
		e->node.extents = v;
		e->node.nextents = f->nextents;
		e->node.size = f->size;
		e->node.flags |= f->flags;
	}
	struct dir *d = f->dir;
	free(f);
	dir_release(a, d);
}

static void file_unref(struct arch *a, struct file_ctx *f)
{
	if (atomic_fetch_sub(&f->refs, 1) == 1)
		file_finish(a, f);
}

static void run_chunk_job(struct arch *a, struct chunk_job *j)
{
	if (!stopping(a)) {
		int r = store_chunk(a, j->data, j->len, &j->slot->id);
		if (r < 0)
			set_fatal(a, r);
	}
	free(j->data);
	file_unref(a, j->file);
	free(j);
}

/* Queue a copy of the chunk for another worker, or store it here when the queue
 * is full (so a reader never blocks on its own consumers) or the chunk is small. */
static bool try_queue_chunk(struct arch *a, struct file_ctx *f, struct cairn_extent *slot,
                            const uint8_t *data, size_t len)
{
	struct chunk_job *j = malloc(sizeof(*j));
	uint8_t *copy = j ? malloc(len) : NULL;
	bool queued = false;

	if (copy) {
		memcpy(copy, data, len);
		*j = (struct chunk_job){ f, slot, copy, len };
		atomic_fetch_add(&f->refs, 1);
		pthread_mutex_lock(&a->lock);
		if (a->chunks.count < a->chunks.cap) {
			queue_push(&a->chunks, j);
			pthread_cond_signal(&a->work);
			queued = true;
		}
		pthread_mutex_unlock(&a->lock);
		if (!queued)
			atomic_fetch_sub(&f->refs,
			                 1); /* cannot be the last: the reader holds one */
	}
	if (!queued) {
		free(copy);
		free(j);
	}
	return queued;
}

/* A failure that stops the backup (out of memory, the repository): returned as
 * -ECANCELED, so that the reader never takes it for a read error of the file. */
static int fatal(struct arch *a, int r)
{
	set_fatal(a, r);
	return -ECANCELED;
}

/* Extend f by a hole of len zero bytes (an extent with the zero ID). */
static int emit_hole(struct arch *a, struct file_ctx *f, uint64_t len)
{
	if (!add_extent(f, len))
		return fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
	atomic_fetch_add(&a->st->bytes_done, len);
	return 0;
}

static int emit_chunk(struct arch *a, struct file_ctx *f, const uint8_t *data, size_t len)
{
	struct cairn_extent *slot = add_extent(f, len);
	if (!slot)
		return fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
	atomic_fetch_add(&a->st->bytes_done, len);
	if (len >= SMALL_CHUNK) {
		pthread_mutex_lock(&a->lock);
		bool room = a->chunks.count < a->chunks.cap;
		pthread_mutex_unlock(&a->lock);
		if (room && try_queue_chunk(a, f, slot, data, len))
			return 0;
	}
	int r = store_chunk(a, data, len, &slot->id);
	return r < 0 ? fatal(a, r) : 0;
}

/* ---- reading files ------------------------------------------------------ */

/* pread, except that the test hook's file fails with EIO from f->fail_at on. */
static ssize_t read_at(const struct file_ctx *f, int fd, void *buf, size_t want, uint64_t off)
{
	if (f->stream)
		return read(fd, buf, want);
	if (off >= f->fail_at) {
		errno = EIO;
		return -1;
	}
	if (want > f->fail_at - off)
		want = (size_t)(f->fail_at - off);
	return pread(fd, buf, want, (off_t)off);
}

/* Chunk [off, end) of fd, or up to its end if it shrank. Returns -errno of a
 * read error, after storing everything read before it; -ECANCELED when the
 * backup stops. */
static int chunk_range(struct arch *a, struct reader *rd, struct file_ctx *f, int fd, uint64_t off,
                       uint64_t end)
{
	const cairn_chunker *ch = cairn_repo_chunker(a->repo);
	size_t have = 0;
	bool eof = false;
	int err = 0;

	while (!eof || have > 0) {
		while (!eof && have < rd->cap) {
			size_t want = rd->cap - have;
			if (want > end - off)
				want = (size_t)(end - off);
			ssize_t n = want ? read_at(f, fd, rd->buf + have, want, off) : 0;
			if (n < 0 && errno == EINTR)
				continue;
			if (n < 0) {
				err = -errno;
				eof = true;
				break;
			}
			/* Only 0 is the end. A read short of the size stat gave is
			 * followed by another, which says why: 0 when the file shrank,
			 * or the error (a bad sector) the short read stopped at. */
			eof = n == 0;
			have += (size_t)n;
			off += (uint64_t)n;
			atomic_fetch_add(&a->st->bytes_read, (uint64_t)n);
		}
		size_t start = 0;
		while (have - start >= a->max_chunk || (eof && start < have)) {
			size_t cut = cairn_chunker_cut(ch, rd->buf + start, have - start);
			int r = emit_chunk(a, f, rd->buf + start, cut);
			if (r < 0)
				return r;
			start += cut;
			if (stopping(a))
				return -ECANCELED;
		}
		memmove(rd->buf, rd->buf + start, have - start);
		have -= start;
	}
	return err;
}

/* Sparse files: holes become zero-ID extents, data regions are chunked. */
static int read_sparse(struct arch *a, struct reader *rd, struct file_ctx *f, int fd, uint64_t size)
{
	uint64_t pos = 0;
	while (pos < size) {
		off_t data = lseek(fd, (off_t)pos, SEEK_DATA);
		if (data < 0 && errno != ENXIO)
			return -errno;
		uint64_t d = data < 0 ? size : (uint64_t)data;
		if (d > size)
			d = size;
		int r = d > pos ? emit_hole(a, f, d - pos) : 0;
		if (r < 0 || d >= size)
			return r;
		off_t hole = lseek(fd, (off_t)d, SEEK_HOLE);
		uint64_t h = hole < 0 || (uint64_t)hole > size ? size : (uint64_t)hole;
		if ((r = chunk_range(a, rd, f, fd, d, h)) < 0)
			return r;
		if (f->size < h)
			return 0; /* it shrank: what is there was read */
		pos = h;
	}
	return 0;
}

static int open_nofollow(int dirfd, const char *name, int flags)
{
	int fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM) /* O_NOATIME needs ownership */
		fd = openat(dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC);
	return fd;
}

/* A path-only open of a name never waits: the object behind it is checked
 * to be a regular file, then opened for reading through /proc, which reaches
 * that same object whatever took the name since. For an open that must wait
 * (a lease being broken). The fd returned is path-only when the object is not
 * a regular file: fstat then tells its type. */
static int reopen_regular(int dirfd, const char *name)
{
	_cleanup_close_ int pfd = openat(dirfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	struct stat st;
	if (pfd < 0 || fstat(pfd, &st) < 0)
		return -1;
	if (!S_ISREG(st.st_mode))
		return TAKE_FD(pfd);
	char proc[64];
	snprintf(proc, sizeof(proc), "/proc/self/fd/%d", pfd);
	int fd = open(proc, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM) /* O_NOATIME needs ownership */
		fd = open(proc, O_RDONLY | O_CLOEXEC);
	return fd;
}

/* Open a file listed as a regular file, and fstat it into st. The open must not
 * wait: the name may have been taken by a FIFO that no writer will ever open, or
 * by a device, since the listing; the caller checks the type st gives. A regular
 * file then has O_NONBLOCK cleared (a network or FUSE file system may heed it).
 * Only an incompatible lease makes such an open fail with EWOULDBLOCK: then the
 * open waits for the lease to be broken, on an object known to be a regular
 * file. Returns -1 with errno set on failure. */
static int open_listed(int dirfd, const char *name, struct stat *st)
{
	int fd = open_nofollow(dirfd, name, O_RDONLY | O_NONBLOCK);
	if (fd < 0 && errno == EWOULDBLOCK)
		fd = reopen_regular(dirfd, name);
	if (fd >= 0 && fstat(fd, st) < 0) {
		int err = errno;
		close(fd);
		errno = err;
		return -1;
	}
	int fl = fd >= 0 && S_ISREG(st->st_mode) ? fcntl(fd, F_GETFL) : -1;
	if (fl >= 0 && (fl & O_NONBLOCK))
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

static bool same_version(const struct stat *x, const struct stat *y)
{
	return x->st_size == y->st_size && x->st_mtim.tv_sec == y->st_mtim.tv_sec &&
	       x->st_mtim.tv_nsec == y->st_mtim.tv_nsec && x->st_ctim.tv_sec == y->st_ctim.tv_sec &&
	       x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

static void set_current(struct arch *a, const char *dir, const char *name)
{
	pthread_mutex_lock(&a->st->lock);
	snprintf(a->st->current, sizeof(a->st->current), "%s%s%s", dir, strcmp(dir, "/") ? "/" : "",
	         name);
	pthread_mutex_unlock(&a->st->lock);
}

/* Point rd at a buffer for size bytes (size < cap, so that a read of 0 says
 * the end): its own, or a large one from the pool, waiting for one. */
static int reader_take(struct arch *a, struct reader *rd, uint64_t size)
{
	if (size < SMALL_READ) {
		if (!rd->small && !(rd->small = malloc(SMALL_READ)))
			return cairn_err_set(-ENOMEM, "out of memory");
		rd->buf = rd->small;
		rd->cap = SMALL_READ;
	} else {
		if (!(rd->buf = bufpool_take(a->big)))
			return cairn_err_set(-ENOMEM, "out of memory");
		rd->cap = 2 * a->max_chunk;
	}
	return 0;
}

static void reader_give(struct arch *a, struct reader *rd)
{
	if (rd->buf != rd->small)
		bufpool_give(a->big, rd->buf);
	rd->buf = NULL;
}

/* --stdin: the stream to its end, or the backup fails (a dump cut short is no
 * backup of it). */
static int read_stream(struct arch *a, struct reader *rd, struct file_ctx *f)
{
	set_current(a, "/", a->o->stdin_name);
	f->fail_at = UINT64_MAX;
	f->stream = true;
	int r = reader_take(a, rd, UINT64_MAX);
	if (r < 0)
		return r;
	r = chunk_range(a, rd, f, a->o->stdin_fd, 0, UINT64_MAX);
	reader_give(a, rd);
	if (r == -ECANCELED || stopping(a))
		return atomic_load(&a->fatal);
	if (r < 0)
		return cairn_err_set(r, "cannot read standard input: %s", strerror(-r));
	return 0;
}

/* One read of the file as st describes it. Returns 1 after a read error (the
 * entry is flagged), < 0 for failures that stop the backup. */
static int read_pass(struct arch *a, struct reader *rd, struct file_ctx *f, int fd,
                     const struct stat *st, const char *path)
{
	uint64_t size = (uint64_t)st->st_size;
	int r = reader_take(a, rd, size);
	if (r < 0)
		return r;
	/* The size stat gave, no more: the content then agrees with the recorded
	 * size, and a file that grows faster than it is read cannot hold the backup
	 * up forever ("changed while it was read" says so). */
	if ((uint64_t)st->st_blocks * 512 < size)
		r = read_sparse(a, rd, f, fd, size);
	else
		r = chunk_range(a, rd, f, fd, 0, size);
	reader_give(a, rd);
	if (r == -ECANCELED || stopping(a))
		return atomic_load(&a->fatal);
	if (r >= 0)
		return 0;
	/* FORMAT.md §10: what was read is kept, the part that could not be read is
	 * a hole, so the entry keeps the size stat gave, and flag bit 0 says that
	 * it is incomplete (restore warns; the next backup reads it again). */
	entry_error(a, path, "read error in", -r);
	f->flags |= CAIRN_NODE_INCOMPLETE;
	if (f->size < size && emit_hole(a, f, size - f->size) < 0)
		return atomic_load(&a->fatal);
	return 1;
}

/* Start f over for another read. Extents already handed to chunk jobs stay
 * where they are (file_finish frees them, when no job holds f), unused. */
static void file_restart(struct arch *a, struct file_ctx *f)
{
	if (f->tail) {
		f->tail->next = f->stale;
		f->stale = f->head;
	}
	atomic_fetch_sub(&a->st->bytes_done, f->size);
	f->head = f->tail = NULL;
	f->nextents = 0;
	f->size = 0;
}

/* A file that cannot be opened stays in the tree with the metadata lstat gave:
 * FORMAT.md §10, nothing of it was read, so all of it is a hole and flag bit 0
 * says so (restore warns; the next backup tries again). */
static int unreadable(struct arch *a, struct file_ctx *f, const char *path, int err)
{
	const struct entry *e = &f->dir->entries[f->slot];
	entry_error(a, path, "cannot read", err);
	f->flags |= CAIRN_NODE_INCOMPLETE;
	if (e->node.size > 0 && emit_hole(a, f, e->node.size) < 0)
		return atomic_load(&a->fatal);
	return 0;
}

/* Read one file into f. Entry-level problems are warnings; returns < 0 only for
 * failures that stop the backup. */
static int read_file(struct arch *a, struct reader *rd, struct file_ctx *f)
{
	struct entry *e = &f->dir->entries[f->slot];
	const char *name = (const char *)e->node.name;
	struct stat before, after;
	int r;

	if (a->o->stdin_name)
		return read_stream(a, rd, f);

	set_current(a, f->dir->path, name);
	_cleanup_free_ char *p = join(f->dir->path, name);
	const char *path = p ? p : name;
	_cleanup_close_ int fd = open_listed(f->dir->fd, name, &before);
	int err = fd < 0 ? errno : 0;
	/* Another regular file under the name (one saved by rename) is read as a
	 * changed file; another type of object is left out, as if it had vanished. */
	if (err == ENOENT || (!err && !S_ISREG(before.st_mode))) {
		entry_warning(a, path,
		              err ? "vanished during the backup"
		                  : "changed type during the backup");
		e->skip = true;
		if (f->counted)
			atomic_fetch_sub(f->counted, 1);
		return 0;
	}
	if (err)
		return unreadable(a, f, path, err);
	f->fail_at = a->fail_path && strcmp(path, a->fail_path) == 0 ? a->fail_at : UINT64_MAX;
	if (before.st_size > (off_t)a->max_chunk)
		posix_fadvise(fd, 0, 0, POSIX_FADV_SEQUENTIAL);
	/* A file that changed while it was read may hold a mix of its versions:
	 * it is read once more. Changed again, it is kept as read the second time
	 * and flagged (FORMAT.md §10), and the snapshot is partial. */
	for (int pass = 0;; pass++) {
		if ((r = read_pass(a, rd, f, fd, &before, path)) < 0)
			return r;
		/* r > 0: a read error, the entry flagged already */
		if (r > 0 || fstat(fd, &after) < 0 || same_version(&before, &after))
			break;
		if (pass == 1) {
			entry_changed(a, path);
			f->flags |= CAIRN_NODE_INCOMPLETE;
			break;
		}
		log_debug("'%s' changed while it was read: reading it again", path);
		file_restart(a, f);
		before = after;
	}
	/* Record the stat the content was read under: a later change shows next time. */
	fsmeta_from_stat(&e->node, &before);
	return 0;
}

static void run_file_job(struct arch *a, struct reader *rd, struct file_ctx *f)
{
	if (!stopping(a)) {
		int r = read_file(a, rd, f);
		if (r < 0)
			set_fatal(a, r);
	}
	atomic_fetch_add(&a->st->files_done, 1);
	file_unref(a, f);
}

/* ---- workers ------------------------------------------------------------ */

static void walk_dir(struct arch *a, struct reader *rd, struct dir *d);

enum job_kind { JOB_CHUNK, JOB_FILE, JOB_DIR };

/* A queued chunk is work for a core: no more of them are stored at once than
 * there are CPUs, and the other workers read meanwhile (each chunk being
 * stored holds its copy, compressed form and sealed form). */
static bool chunk_ready(const struct arch *a)
{
	return a->chunks.count && a->chunks_running < a->ncpu;
}

static bool job_ready(const struct arch *a)
{
	return chunk_ready(a) || a->files.count || a->dirs.count;
}

/* Chunks first (they hold memory and finish files), then files, then directories
 * (listing them creates more work). Called with a job ready. */
static enum job_kind pop_job(struct arch *a, void **job)
{
	if (chunk_ready(a)) {
		*job = queue_pop(&a->chunks);
		a->chunks_running++;
		return JOB_CHUNK;
	}
	if (a->files.count) {
		*job = queue_pop(&a->files);
		return JOB_FILE;
	}
	*job = queue_pop(&a->dirs);
	return JOB_DIR;
}

/* The worker loop; the main thread joins it once its own walk is done. It ends
 * when the root tree is written (complete_root sets shutdown). */
static void work(struct arch *a, struct reader *rd)
{
	for (;;) {
		void *job;
		pthread_mutex_lock(&a->lock);
		while (!job_ready(a) && !(a->shutdown && !a->chunks.count))
			pthread_cond_wait(&a->work, &a->lock);
		if (!job_ready(a)) { /* shut down, and every chunk stored */
			pthread_mutex_unlock(&a->lock);
			return;
		}
		enum job_kind kind = pop_job(a, &job);
		pthread_mutex_unlock(&a->lock);
		if (kind == JOB_CHUNK) {
			run_chunk_job(a, job);
			pthread_mutex_lock(&a->lock);
			a->chunks_running--;
			if (a->chunks.count)
				pthread_cond_signal(&a->work);
			pthread_mutex_unlock(&a->lock);
		} else if (kind == JOB_FILE) {
			run_file_job(a, rd, job);
		} else {
			struct dir *d = job;
			walk_dir(a, rd, d);
			dir_release(a, d);
		}
	}
}

static void *worker(void *arg)
{
	struct arch *a = arg;
	struct reader rd = { 0 };
	work(a, &rd);
	free(rd.small);
	return NULL;
}

/* Queue a job unless its queue is full; false means: do it yourself. Nobody ever
 * waits for room, so threads that produce work cannot deadlock each other. */
static bool try_queue(struct arch *a, struct queue *q, void *job)
{
	bool queued = false;
	pthread_mutex_lock(&a->lock);
	if (q->count < q->cap) {
		queue_push(q, job);
		pthread_cond_signal(&a->work);
		queued = true;
	}
	pthread_mutex_unlock(&a->lock);
	return queued;
}

static void queue_file(struct arch *a, struct reader *rd, struct dir *d, size_t slot,
                       atomic_uint_fast64_t *counted)
{
	struct file_ctx *f = calloc(1, sizeof(*f));
	if (!f) {
		set_fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
		return;
	}
	f->dir = d;
	f->slot = slot;
	f->counted = counted;
	if (counted)
		atomic_fetch_add(counted, 1);
	atomic_init(&f->refs, 1);
	atomic_fetch_add(&d->pending, 1);
	if (!try_queue(a, &a->files, f))
		run_file_job(a, rd, f);
}

/* ---- the walker --------------------------------------------------------- */

static int cmp_name(const void *x, const void *y)
{
	return strcmp(*(const char *const *)x, *(const char *const *)y);
}

/* Read all names of d (or its selection) so entries[] never moves while workers
 * fill it. Sorted: the tree builder sorts anyway, and sorted reads are kinder to
 * the parent-tree lookups. */
static int list_dir(struct dir *d)
{
	_cleanup_buf_ struct cairn_buf names = CAIRN_BUF_INIT;
	size_t n = 0;

	if (d->sel && !d->sel->whole) {
		for (size_t i = 0; i < d->sel->nkids; i++)
			if (cairn_buf_put(&names, d->sel->kids[i].name,
			                  strlen(d->sel->kids[i].name) + 1) < 0)
				return -ENOMEM;
		n = d->sel->nkids;
	} else {
		int fd = dup(d->fd);
		DIR *dh = fd >= 0 ? fdopendir(fd) : NULL;
		if (!dh) {
			int e = errno;
			if (fd >= 0)
				close(fd);
			return -e;
		}
		struct dirent *de;
		while ((errno = 0, de = readdir(dh))) {
			if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
				continue;
			if (cairn_buf_put(&names, de->d_name, strlen(de->d_name) + 1) < 0) {
				closedir(dh);
				return -ENOMEM;
			}
			n++;
		}
		int e = errno;
		closedir(dh);
		if (e)
			return -e;
	}
	d->entries = calloc(n ? n : 1, sizeof(*d->entries));
	char **v = calloc(n ? n : 1, sizeof(*v));
	if (!d->entries || !v) {
		free(v);
		return -ENOMEM;
	}
	char *p = (char *)names.data;
	for (size_t i = 0; i < n; p += strlen(p) + 1)
		v[i++] = p;
	qsort(v, n, sizeof(*v), cmp_name);
	for (size_t i = 0; i < n; i++) {
		d->entries[i].node.name = (const uint8_t *)v[i];
		d->entries[i].node.name_len = strlen(v[i]);
	}
	free(v);
	d->n = n;
	d->names = (char *)names.data; /* entries point into it */
	cairn_buf_init(&names);
	return 0;
}

static const struct cairn_node *old_node(const struct dir *d, const struct entry *e)
{
	size_t i;
	if (!d->old || cairn_tree_find(d->old, e->node.name, e->node.name_len, &i) < 0)
		return NULL;
	return cairn_tree_node(d->old, i);
}

/* Same inode, same change time: stat fields aside from atime cannot have changed,
 * and neither can xattrs or a symlink target (changing them moves ctime). */
static bool meta_unchanged(const struct cairn_node *old, const struct cairn_node *now)
{
	return old && old->type == now->type && old->ino == now->ino &&
	       old->ctime_ns == now->ctime_ns && old->mtime_ns == now->mtime_ns &&
	       !(old->flags & CAIRN_NODE_INCOMPLETE);
}

static bool content_unchanged(const struct cairn_node *old, const struct cairn_node *now)
{
	return meta_unchanged(old, now) && old->type == CAIRN_NODE_FILE && old->size == now->size;
}

/* An unchanged file's blobs are reused without reading it, unless one is not
 * stored where it stays: a prune may have deleted it since the parent snapshot
 * (DESIGN.md "Prune while backups run"); then the file is read again. */
static bool extents_stored(struct arch *a, const struct cairn_node *old)
{
	for (size_t i = 0; i < old->nextents; i++) {
		if (cairn_id_is_zero(&old->extents[i].id))
			continue; /* a hole */
		int r = cairn_repo_has(a->repo, &old->extents[i].id);
		if (r < 0)
			set_fatal(a, r);
		if (r <= 0)
			return false;
	}
	return true;
}

/* Whether the directory holds the marker: the entry, or a regular file that
 * starts with the header (a CACHEDIR.TAG's signature). Not followed if a
 * symlink, and never waited on (a fifo). */
static bool has_marker(int dirfd, const struct archiver_marker *m)
{
	struct stat st;
	if (!m->header)
		return fstatat(dirfd, m->name, &st, AT_SYMLINK_NOFOLLOW) == 0;
	size_t n = strlen(m->header), got = 0;
	_cleanup_free_ char *buf = malloc(n ? n : 1);
	_cleanup_close_ int fd =
	        openat(dirfd, m->name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
	if (!buf || fd < 0 || fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return false;
	while (got < n) {
		ssize_t r = pread(fd, buf + got, n - got, (off_t)got);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return memcmp(buf, m->header, n) == 0;
}

/* The rule of the first marker the directory holds, or NULL. */
static const char *marked(struct arch *a, int dirfd)
{
	for (size_t i = 0; i < a->o->nmarkers; i++)
		if (has_marker(dirfd, &a->o->markers[i]))
			return a->o->markers[i].rule;
	return NULL;
}

static const struct sel *sel_find(const struct sel *s, const char *name)
{
	if (!s || s->whole || s->nkids == 0)
		return NULL;
	struct sel key = { .name = (char *)name };
	return bsearch(&key, s->kids, s->nkids, sizeof(*s->kids), cmp_sel);
}

/* Metadata of an entry that changed: stat fields, xattrs, symlink target. */
static void read_meta(struct arch *a, struct dir *d, struct entry *e, const char *path)
{
	int r = fsmeta_read_extra(&e->node, &e->meta, d->fd, (const char *)e->node.name);
	if (r == -ENOENT) {
		entry_warning(a, path, "vanished during the backup");
		e->skip = true;
	} else if (r < 0) {
		entry_error(a, path, "cannot read metadata of", -r);
		e->node.flags |= CAIRN_NODE_INCOMPLETE;
	}
}

static void borrow_meta(struct entry *e, const struct cairn_node *old)
{
	e->node.xattrs = old->xattrs;
	e->node.nxattrs = old->nxattrs;
	e->node.target = old->target;
	e->node.target_len = old->target_len;
}

static void descend(struct arch *a, struct reader *rd, struct dir *d, size_t slot,
                    const struct stat *st, const struct cairn_node *old, char *path)
{
	struct entry *e = &d->entries[slot];
	const char *name = (const char *)e->node.name;
	struct dir *c = calloc(1, sizeof(*c));

	if (!c) {
		free(path);
		set_fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
		return;
	}
	c->parent = d;
	c->slot = slot;
	c->path = path;
	c->sel = sel_find(d->sel, name);
	c->root_len = c->sel && c->sel->whole ? strlen(path) : d->root_len;
	/* Inside a given path the device is inherited; a given path starts its own. */
	bool in_whole = !d->sel || d->sel->whole;
	c->dev = in_whole ? d->dev : st->st_dev;
	c->had_old = old != NULL;
	atomic_init(&c->pending, 1);
	atomic_fetch_add(&d->pending, 1);
	if (old && old->type == CAIRN_NODE_DIR) {
		if (cairn_repo_tree_load(a->repo, &old->subtree, &c->old) >= 0)
			c->old_id = old->subtree;
		else
			log_warn("parent snapshot tree for '%s' unreadable: %s", path,
			         cairn_err_msg());
	}
	bool other_fs = a->o->one_file_system && in_whole && st->st_dev != d->dev;
	if (other_fs)
		c->excluded = "--one-file-system"; /* kept as an empty directory */
	c->fd = other_fs ? -1 : open_nofollow(d->fd, name, O_RDONLY | O_DIRECTORY);
	if (c->fd < 0 && !other_fs) {
		entry_error(a, path, "cannot open directory", errno);
		c->incomplete = true;
	}
	const char *rule = c->fd >= 0 && !c->sel ? marked(a, c->fd) : NULL;
	if (rule) {
		e->skip = true;
		c->excluded = rule;
		close(c->fd);
		c->fd = -1;
	}
	/* Another thread lists it if there is room in the queue; else we do, now. */
	if (c->fd >= 0 && try_queue(a, &a->dirs, c))
		return;
	if (c->fd >= 0)
		walk_dir(a, rd, c);
	dir_release(a, c);
}

static void visit(struct arch *a, struct reader *rd, struct dir *d, size_t slot, char *path)
{
	struct entry *e = &d->entries[slot];
	const char *name = (const char *)e->node.name;
	struct stat st;

	/* A name of the selection (d lists only the paths given and the
	 * directories above them) was asked for: its absence is an error. */
	bool given = d->sel && !d->sel->whole;

	if (fstatat(d->fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
		if (errno == ENOENT && !given)
			entry_warning(a, path, "vanished during the backup");
		else
			entry_error(a, path, given ? "cannot back up" : "cannot stat", errno);
		e->skip = true;
		free(path);
		return;
	}
	int r = fsmeta_from_stat(&e->node, &st);
	if (r < 0) {
		entry_warning(a, path, "has a file type cairn cannot store");
		e->skip = true;
		free(path);
		return;
	}
	if (r > 0)
		entry_warning(a, path,
		              "has a time outside the years 1677 to 2262, which cairn cannot "
		              "store: it is stored as the nearest one it can");
	if (!given && a->o->max_file_rule && e->node.type == CAIRN_NODE_FILE &&
	    e->node.size > a->o->max_file_size) {
		e->skip = true;
		tell(a, path, ARCHIVER_EXCLUDED, a->o->max_file_rule);
		free(path);
		return;
	}
	const struct sel *ks = sel_find(d->sel, name);
	if (ks && !ks->whole && e->node.type != CAIRN_NODE_DIR) {
		/* A path given below something that is not a directory. */
		entry_error(a, path, "cannot back up below", ENOTDIR);
		e->skip = true;
		free(path);
		return;
	}
	const struct cairn_node *old = old_node(d, e);
	bool same_meta = meta_unchanged(old, &e->node);
	if (same_meta)
		borrow_meta(e, old);
	else
		read_meta(a, d, e, path);
	if (e->skip || e->node.type != CAIRN_NODE_FILE) {
		if (!e->skip && e->node.type == CAIRN_NODE_DIR)
			return descend(a, rd, d, slot, &st, old, path);
		if (!e->skip)
			tell(a, path, fate_of(old != NULL, same_meta), NULL);
		free(path);
		return;
	}
	tell(a, path, fate_of(old != NULL, content_unchanged(old, &e->node)), NULL);
	free(path);
	if (content_unchanged(old, &e->node) && extents_stored(a, old)) {
		e->node.extents = old->extents;
		e->node.nextents = old->nextents;
		atomic_fetch_add(&a->st->files_unmodified, 1);
		atomic_fetch_add(&a->st->files_done, 1);
		atomic_fetch_add(&a->st->bytes_done, e->node.size);
		return;
	}
	queue_file(a, rd, d, slot, old ? &a->st->files_changed : &a->st->files_new);
}

static void walk_dir(struct arch *a, struct reader *rd, struct dir *d)
{
	int r = list_dir(d);
	if (r < 0) {
		if (r == -ENOMEM)
			set_fatal(a, cairn_err_set(r, "out of memory"));
		else
			entry_error(a, d->path, "cannot list directory", -r);
		d->incomplete = true;
		return;
	}
	for (size_t i = 0; i < d->n && !stopping(a); i++) {
		char *path = join(d->path, (const char *)d->entries[i].node.name);
		if (!path) {
			set_fatal(a, cairn_err_set(-ENOMEM, "out of memory"));
			return;
		}
		bool selected = d->sel && !d->sel->whole;
		const char *rule = selected || !a->o->exclude
		                           ? NULL
		                           : a->o->exclude(path, strlen(path), d->root_len,
		                                           a->o->exclude_payload);
		if (rule) {
			d->entries[i].skip = true;
			tell(a, path, ARCHIVER_EXCLUDED, rule);
			free(path);
			continue;
		}
		visit(a, rd, d, i, path);
	}
}

/* ---- the progress scan -------------------------------------------------- */

/* Counts files and bytes ahead of the walker, for the progress estimate only. */
static void scan_dir(struct arch *a, int fd, const char *path, const struct sel *sel, dev_t dev,
                     size_t root_len)
{
	DIR *dh = fdopendir(fd);
	struct dirent *de;
	if (!dh) {
		close(fd);
		return;
	}
	while ((de = readdir(dh)) && !stopping(a)) {
		struct stat st;
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		const struct sel *ks = sel_find(sel, de->d_name);
		if (sel && !sel->whole && !ks)
			continue;
		_cleanup_free_ char *p = join(path, de->d_name);
		if (!p || fstatat(dirfd(dh), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		bool in_whole = !sel || sel->whole;
		if (in_whole && a->o->exclude &&
		    a->o->exclude(p, strlen(p), root_len, a->o->exclude_payload) != NULL)
			continue;
		bool too_large = a->o->max_file_rule && (uint64_t)st.st_size > a->o->max_file_size;
		if (S_ISREG(st.st_mode) && !(in_whole && too_large)) {
			atomic_fetch_add(&a->st->files_total, 1);
			atomic_fetch_add(&a->st->bytes_total, (uint64_t)st.st_size);
		} else if (S_ISDIR(st.st_mode) &&
		           !(a->o->one_file_system && in_whole && st.st_dev != dev)) {
			int c = open_nofollow(dirfd(dh), de->d_name, O_RDONLY | O_DIRECTORY);
			if (c >= 0)
				scan_dir(a, c, p, ks, in_whole ? dev : st.st_dev,
				         ks && ks->whole ? strlen(p) : root_len);
		}
	}
	closedir(dh);
}

struct scan_arg {
	struct arch *a;
	const struct sel *root;
	dev_t dev;
};

static void *scan_thread(void *arg)
{
	struct scan_arg *s = arg;
	int fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd >= 0)
		scan_dir(s->a, fd, "/", s->root, s->dev, 1);
	atomic_store(&s->a->st->scan_done, true);
	return NULL;
}

/* ---- running it --------------------------------------------------------- */

void archiver_stats_init(struct archiver_stats *st)
{
	memset(st, 0, sizeof(*st));
	pthread_mutex_init(&st->lock, NULL);
}

void archiver_stats_release(struct archiver_stats *st)
{
	pthread_mutex_destroy(&st->lock);
}

static int make_root(struct arch *a, const struct sel *sel, struct dir **out)
{
	struct dir *d = calloc(1, sizeof(*d));
	struct stat st;
	if (!d || !(d->path = strdup("/"))) {
		free(d);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	atomic_init(&d->pending, 1);
	d->sel = sel;
	d->root_len = 1;
	d->fd = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (d->fd < 0 || fstat(d->fd, &st) < 0) {
		dir_free(d);
		return cairn_err_set(-errno, "cannot open '/': %s", strerror(errno));
	}
	d->dev = st.st_dev;
	if (a->o->parent) {
		int r = cairn_repo_tree_load(a->repo, &a->o->parent->root, &d->old);
		if (r >= 0)
			d->old_id = a->o->parent->root;
		d->had_old = true;
		if (r < 0)
			log_warn("parent snapshot unreadable, reading everything: %s",
			         cairn_err_msg());
	}
	*out = d;
	return 0;
}

/* --stdin: the root holds one entry, a new file of this user, written now. */
static int stdin_entry(struct arch *a, struct dir *top)
{
	struct timespec now;
	char *path = join("/", a->o->stdin_name);
	clock_gettime(CLOCK_REALTIME, &now);
	top->entries = calloc(1, sizeof(*top->entries));
	top->names = strdup(a->o->stdin_name);
	if (!path || !top->entries || !top->names) {
		free(path);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	top->n = 1;
	struct cairn_node *n = &top->entries[0].node;
	const char *user = fsmeta_user(getuid()), *group = fsmeta_group(getgid());
	*n = (struct cairn_node){
		.name = (const uint8_t *)top->names,
		.name_len = strlen(top->names),
		.type = CAIRN_NODE_FILE,
		.mode = 0644,
		.uid = getuid(),
		.gid = getgid(),
		.user = (const uint8_t *)user,
		.user_len = strlen(user),
		.group = (const uint8_t *)group,
		.group_len = strlen(group),
		.mtime_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec,
		.nlink = 1,
	};
	n->ctime_ns = n->atime_ns = n->mtime_ns;
	atomic_fetch_add(&a->st->files_new, 1);
	tell(a, path, ARCHIVER_NEW, NULL);
	free(path);
	return 0;
}

/* CAIRN_TEST_READ_FAIL=N:PATH makes every read of the file PATH (absolute, as
 * the backup names it) fail with EIO from byte N on: the tests of a file that
 * cannot be read to the end (FORMAT.md §10) need no failing disk. */
static void test_hooks(struct arch *a)
{
	const char *e = getenv("CAIRN_TEST_READ_FAIL");
	char *end;
	if (!e || !*e)
		return;
	unsigned long long n = strtoull(e, &end, 10);
	if (end != e && end[0] == ':' && end[1] == '/') {
		a->fail_at = n;
		a->fail_path = end + 1;
	}
}

static int arch_init(struct arch *a, cairn_repo *repo, const struct archiver_opts *o,
                     struct archiver_stats *st)
{
	*a = (struct arch){ .repo = repo, .o = o, .st = st };
	test_hooks(a);
	a->max_chunk = cairn_chunker_params(cairn_repo_chunker(repo))->max;
	long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	a->ncpu = ncpu > 0 ? (unsigned)ncpu : 1;
	pthread_mutex_init(&a->lock, NULL);
	pthread_cond_init(&a->work, NULL);
	pthread_cond_init(&a->room, NULL);
	pthread_cond_init(&a->done, NULL);
	pthread_mutex_init(&a->list_lock, NULL);
	atomic_init(&a->fatal, 0);
	/* Chunks wait for a core, not a disk: their queue follows the CPUs. */
	if (queue_init(&a->files, FILE_QUEUE) < 0 || queue_init(&a->dirs, DIR_QUEUE) < 0 ||
	    queue_init(&a->chunks, 2 * (size_t)a->ncpu + 2) < 0 ||
	    !(a->big = bufpool_new(2 * a->max_chunk, a->ncpu)))
		return -ENOMEM;
	return 0;
}

static void arch_release(struct arch *a)
{
	free(a->files.items);
	free(a->dirs.items);
	free(a->chunks.items);
	bufpool_free(a->big);
	pthread_mutex_destroy(&a->lock);
	pthread_cond_destroy(&a->work);
	pthread_cond_destroy(&a->room);
	pthread_cond_destroy(&a->done);
	pthread_mutex_destroy(&a->list_lock);
}

static void wait_root(struct arch *a)
{
	pthread_mutex_lock(&a->lock);
	while (!a->root_done)
		pthread_cond_wait(&a->done, &a->lock);
	a->shutdown = true;
	pthread_cond_broadcast(&a->work);
	pthread_mutex_unlock(&a->lock);
}

/* Start up to n workers; returns how many started, the only ones to join. The
 * calling thread works too, so the backup goes on with fewer (even none). */
static int start_workers(struct arch *a, pthread_t *tid, int n)
{
	for (int i = 0; i < n; i++) {
		int e = cli_thread_create(&tid[i], worker, a);
		if (e != 0) {
			log_warn("cannot start worker thread %d of %d: %s; going on with %d", i + 1,
			         n, strerror(e), i);
			return i;
		}
	}
	return n;
}

static int default_workers(void)
{
	long n = 2 * sysconf(_SC_NPROCESSORS_ONLN);
	return n < MIN_WORKERS ? MIN_WORKERS : n > MAX_WORKERS ? MAX_WORKERS : (int)n;
}

int archiver_run(cairn_repo *repo, const struct archiver_opts *o, struct archiver_stats *st,
                 struct cairn_id *root)
{
	int threads = o->threads > 0 ? o->threads : default_workers();
	pthread_t *tid = calloc((size_t)threads, sizeof(*tid));
	pthread_t scanner;
	struct arch a;
	struct sel sel = { 0 };
	struct dir *top = NULL;
	int started = 0, r;

	if (!tid)
		return cairn_err_set(-ENOMEM, "out of memory");
	r = arch_init(&a, repo, o, st);
	if (r >= 0)
		r = sel_build(&sel, o->paths, o->npaths);
	if (r >= 0)
		r = make_root(&a, &sel, &top);
	struct scan_arg sa = { &a, &sel, top ? top->dev : 0 };
	bool scanning = r >= 0 && o->scan && cli_thread_create(&scanner, scan_thread, &sa) == 0;
	if (r >= 0)
		started = start_workers(&a, tid, threads);
	struct reader rd = { 0 };
	if (r < 0 && top)
		set_fatal(&a, r);
	if (r >= 0 && o->stdin_name)
		r = stdin_entry(&a, top);
	if (r < 0 && top)
		set_fatal(&a, r);
	if (top) {
		if (r >= 0 && o->stdin_name)
			queue_file(&a, &rd, top, 0, NULL);
		else if (r >= 0)
			walk_dir(&a, &rd, top);
		dir_release(&a, top);
		work(&a, &rd); /* help until the root tree is written */
		wait_root(&a);
	}
	free(rd.small);
	for (int i = 0; i < started; i++)
		pthread_join(tid[i], NULL);
	if (scanning)
		pthread_join(scanner, NULL);
	if (r >= 0 && atomic_load(&a.fatal))
		r = cairn_err_set(atomic_load(&a.fatal), "%s", a.fatal_msg);
	if (r >= 0)
		*root = a.root;
	sel_free(&sel);
	arch_release(&a);
	free(tid);
	return r;
}
