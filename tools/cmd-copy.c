/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn copy: copy snapshots from another repository, with its own keys, into this
 * one (restic's copy; docs/DESIGN.md "Copying snapshots between repositories"). */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "snapsel.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn copy --from-repo SOURCE [options] [filters] [SNAP...]\n"
        "\n"
        "Copies the snapshots named (IDs, prefixes or 'latest'), or without SNAP\n"
        "every snapshot the filters match, from the repository SOURCE into the\n"
        "repository of -r or CAIRN_REPO. Either may be a directory or\n"
        "s3://BUCKET[/PREFIX]; each has its own password and keys. Each copy has the\n"
        "time, host, user, paths, tags and summary of its original, and content\n"
        "equal to it; the data keeps the source's chunk boundaries (a chunk larger\n"
        "than the destination's largest is cut to fit), and what the destination\n"
        "already holds is not written again. A snapshot copied before (the same\n"
        "fields and the same content) is skipped, so a copy run again copies only\n"
        "what is new, and copies copied back into their source are skipped too; a\n"
        "snapshot whose parent was copied reads from the source only what changed\n"
        "since.\n"
        "\n"
        "  --from-repo SOURCE     the repository to copy from (default: CAIRN_FROM_REPO)\n"
        "  --from-password-file F  its password, from the first line of F\n"
        "  --from-password-command CMD  its password, from the output of CMD\n"
        "                         (default: CAIRN_FROM_PASSWORD_FILE, then\n"
        "                         CAIRN_FROM_PASSWORD_COMMAND, CAIRN_FROM_PASSWORD,\n"
        "                         a prompt)\n" SNAPSEL_HELP
        "  --lock-wait SECONDS    wait this long for a prune of either to finish\n"
        "  --json                 JSON lines: one per snapshot, then a summary\n"
        "\n"
        "Both repositories are locked shared, as a backup locks: prune may not run\n"
        "meanwhile, backups may. A copy's parent is the copy of its original's\n"
        "parent, when the destination has one. The S3 settings (--s3-*) apply to\n"
        "both sides.\n"
        "The destination chunks new backups with its own key, so they share no data\n"
        "with copied snapshots of the same files.\n";

enum {
	OPT_FROM_REPO = OPT_FIRST_COMMAND_OPT,
	OPT_FROM_PASSWORD_FILE,
	OPT_FROM_PASSWORD_COMMAND,
	OPT_LOCK_WAIT,
};

#define COPY_MAX_DEPTH 1000 /* directories, as rewrite */
#define COPY_MAX_THREADS 8

DEFINE_FREEP(cairn_tree, cairn_tree_free)
DEFINE_FREEP(cairn_tree_builder, cairn_tree_builder_free)

struct copy_args {
	const char *from, *from_pw_file, *from_pw_command;
	bool json;
	unsigned wait;
	struct snapsel sel;
};

/* One destination extent of a source data blob: one, or several when the blob
 * was larger than the destination's largest chunk. */
struct piece {
	struct cairn_extent e;
	bool last; /* the blob's last piece */
};

/* The destination extents a worker made of one source blob. */
struct result {
	struct cairn_extent *v;
	size_t n;
};

/* A destination snapshot that a source snapshot may have been copied to: the
 * fields to compare, and the destination's root tree. */
struct candidate {
	const struct cairn_snapshot *meta; /* borrowed from a snapshot list */
	struct cairn_id id, root;          /* in the destination */
};

struct copier {
	cairn_repo *src, *dst;
	cairn_lock *dst_lock;
	const struct copy_args *a;
	const cairn_chunker *chunker; /* the destination's, to cut chunks too large for it */
	size_t max_chunk;
	/* For the whole run: source data blob -> index of its first piece. */
	struct cairn_idset blobs;
	struct piece *pieces;
	size_t npieces, cap_pieces;
	/* Source tree -> index of its copy's ID in tree_ids. */
	struct cairn_idset trees;
	struct cairn_id *tree_ids;
	size_t ntrees, cap_trees;
	/* (source tree, destination tree) pairs found equal (see same_tree). */
	struct cairn_idset same;
	struct cairn_snapshot *const *from; /* the source's snapshots */
	size_t nfrom;
	/* What a snapshot may have been copied to, and what this run copied. */
	struct candidate *cands;
	size_t ncands, cap_cands;
	/* For one snapshot: trees walked, and the blobs to copy. */
	struct cairn_idset seen, queued;
	struct cairn_id *todo;
	size_t ntodo, cap_todo;
	struct result *results;
	unsigned depth, threads;
	struct cairn_extent *ext; /* a file's new extents, reused */
	size_t cap_ext;
	/* The workers: the next job, and the first failure with its message. */
	_Atomic size_t next;
	atomic_bool failed;
	pthread_mutex_t mu;
	int err;          /* protected by mu */
	char errmsg[512]; /* protected by mu */
	_Atomic uint64_t blobs_read, bytes_read;
	size_t copied, skipped;
};

static int handle(int c, const char *arg, void *payload)
{
	struct copy_args *a = payload;
	int r = snapsel_opt(&a->sel, c, arg);
	if (r != 1)
		return r;
	switch (c) {
	case OPT_FROM_REPO:
		a->from = arg;
		return 0;
	case OPT_FROM_PASSWORD_FILE:
		a->from_pw_file = arg;
		return 0;
	case OPT_FROM_PASSWORD_COMMAND:
		a->from_pw_command = arg;
		return 0;
	case OPT_LOCK_WAIT:
		return maint_parse_wait(arg, &a->wait);
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* Grow *v (of *cap elements of size) to hold n + 1. */
static int grow(void *v, size_t *cap, size_t n, size_t size)
{
	if (n < *cap)
		return 0;
	size_t cap2 = *cap ? 2 * *cap : 64;
	void *p = reallocarray(*(void **)v, cap2, size);
	if (!p)
		return cairn_err_set(-ENOMEM, "out of memory");
	*(void **)v = p;
	*cap = cap2;
	return 0;
}

/* ---- what the run knows: source IDs and their destination IDs ------------ */

/* The key of the pair (a, b) in c->same. */
static int pair_key(const struct cairn_id *a, const struct cairn_id *b, struct cairn_id *out)
{
	struct cairn_id two[2] = { *a, *b };
	return cairn_sha256(two, sizeof(two), out->b);
}

/* Source blob src is the destination extents v[0..n) (n > 0), unless the run
 * knows it already. */
static int learn_blob(struct copier *c, const struct cairn_id *src, const struct cairn_extent *v,
                      size_t n)
{
	uint64_t first = c->npieces;
	if (n == 0 || cairn_idset_has(&c->blobs, src))
		return 0;
	for (size_t k = 0; k < n; k++) {
		int r = grow(&c->pieces, &c->cap_pieces, c->npieces, sizeof(*c->pieces));
		if (r < 0)
			return r;
		c->pieces[c->npieces++] = (struct piece){ v[k], k + 1 == n };
	}
	return cairn_idset_add(&c->blobs, src, first) < 0 ? cairn_err_set(-ENOMEM, "out of memory")
	                                                  : 0;
}

/* Destination tree dst is a copy of source tree src: for later snapshots that
 * hold src, and for same_tree. */
static int learn_tree(struct copier *c, const struct cairn_id *src, const struct cairn_id *dst)
{
	struct cairn_id key;
	int r = pair_key(src, dst, &key);
	if (r < 0 || (r = grow(&c->tree_ids, &c->cap_trees, c->ntrees, sizeof(*c->tree_ids))) < 0)
		return r;
	if (!cairn_idset_has(&c->trees, src)) {
		if (cairn_idset_add(&c->trees, src, c->ntrees) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
		c->tree_ids[c->ntrees++] = *dst;
	}
	return cairn_idset_add(&c->same, &key, 0) < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

/* ---- is it there already? ------------------------------------------------ */

static bool same_strings(char *const *a, size_t na, char *const *b, size_t nb)
{
	if (na != nb)
		return false;
	for (size_t i = 0; i < na; i++)
		if (strcmp(a[i], b[i]) != 0)
			return false;
	return true;
}

/* Every field a copy takes over from its original (FORMAT.md §8). */
static bool same_fields(const struct cairn_snapshot *a, const struct cairn_snapshot *b)
{
	const struct cairn_snapshot_summary *x = &a->summary, *y = &b->summary;
	return a->time_ns == b->time_ns && strcmp(a->hostname, b->hostname) == 0 &&
	       strcmp(a->username, b->username) == 0 &&
	       same_strings(a->paths, a->npaths, b->paths, b->npaths) &&
	       same_strings(a->tags, a->ntags, b->tags, b->ntags) &&
	       strcmp(a->program_version, b->program_version) == 0 &&
	       x->files_new == y->files_new && x->files_changed == y->files_changed &&
	       x->files_unmodified == y->files_unmodified && x->dirs == y->dirs &&
	       x->bytes_read == y->bytes_read && x->bytes_added == y->bytes_added &&
	       x->blobs_added == y->blobs_added && x->errors == y->errors &&
	       x->partial == y->partial;
}

/* Whether file b (destination) has the content of file a (source) as a copy
 * gives it: each extent of a is a hole in both, or pieces of b summing to its
 * length; those pieces are the ones this run made of a's blob when it knows it.
 * The bytes of blobs this run did not copy are not read: their IDs differ by
 * key, so only lengths can be compared. */
static bool same_extents(const struct copier *c, const struct cairn_node *a,
                         const struct cairn_node *b)
{
	size_t j = 0;
	for (size_t i = 0; i < a->nextents; i++) {
		const struct cairn_extent *e = &a->extents[i];
		bool hole = cairn_id_is_zero(&e->id);
		const uint64_t *first = hole ? NULL : cairn_idset_get(&c->blobs, &e->id);
		const struct piece *p = first ? &c->pieces[*first] : NULL;
		for (uint64_t left = e->len; left > 0; j++) {
			if (j >= b->nextents)
				return false;
			const struct cairn_extent *f = &b->extents[j];
			if (cairn_id_is_zero(&f->id) != hole || f->len > left)
				return false;
			if (p &&
			    (memcmp(&p->e.id, &f->id, sizeof(f->id)) != 0 || p->e.len != f->len))
				return false;
			p = p && !p->last ? p + 1 : NULL;
			left -= f->len;
		}
	}
	return j == b->nextents;
}

/* After same_extents(c, a, b): each blob of source file a is the pieces of b
 * that take its place. A file equal in every field, inode, times and size
 * included, and of the same extent lengths, has the same content: the ingester
 * trusts the same test to take a file's extents from the parent snapshot
 * without reading it. So a snapshot whose parent has a copy reads from the
 * source only what changed. */
static int learn_extents(struct copier *c, const struct cairn_node *a, const struct cairn_node *b)
{
	size_t j = 0;
	int r = 0;
	for (size_t i = 0; r >= 0 && i < a->nextents; i++) {
		const struct cairn_extent *e = &a->extents[i];
		size_t start = j;
		for (uint64_t left = e->len; left > 0; j++)
			left -= b->extents[j].len;
		if (!cairn_id_is_zero(&e->id))
			r = learn_blob(c, &e->id, &b->extents[start], j - start);
	}
	return r;
}

/* Whether each extent of file a is whole extents of b, as a copy cuts them:
 * not so when b was cut elsewhere (b is the original of a, which was copied
 * through a repository with smaller chunks). */
static bool cut_alike(const struct cairn_node *a, const struct cairn_node *b)
{
	size_t j = 0;
	for (size_t i = 0; i < a->nextents; i++)
		for (uint64_t left = a->extents[i].len; left > 0; j++) {
			if (j >= b->nextents || b->extents[j].len > left)
				return false;
			left -= b->extents[j].len;
		}
	return j == b->nextents;
}

static uint64_t extents_len(const struct cairn_node *n)
{
	uint64_t len = 0;
	for (size_t i = 0; i < n->nextents; i++)
		len += n->extents[i].len;
	return len;
}

static int same_tree(struct copier *c, const struct cairn_id *a, const struct cairn_id *b);

/* Whether entry b is a copy of entry a: every field but the IDs, which differ by
 * key, equal, and the content equal (same_extents, same_tree). */
static int same_node(struct copier *c, const struct cairn_node *a, const struct cairn_node *b)
{
	unsigned ids = CAIRN_NODE_F_SUBTREE | CAIRN_NODE_F_EXTENTS;
	if (!cairn_node_equal(a, b, CAIRN_NODE_F_ALL & ~ids))
		return 0;
	if (a->type == CAIRN_NODE_DIR)
		return same_tree(c, &a->subtree, &b->subtree);
	if (a->type != CAIRN_NODE_FILE)
		return 1;
	/* Cut elsewhere, no blob can be matched; a file equal in every field,
	 * inode, times and size included, is the same content by the test the
	 * ingester trusts (learn_extents), so a copy copied back is no new one. */
	if (!cut_alike(a, b))
		return extents_len(a) == extents_len(b);
	if (!same_extents(c, a, b))
		return 0;
	int r = learn_extents(c, a, b);
	return r < 0 ? r : 1;
}

/* 1 when destination tree b is a copy of source tree a, 0 when not. */
static int same_tree(struct copier *c, const struct cairn_id *a, const struct cairn_id *b)
{
	_cleanup_(cairn_tree_freep) cairn_tree *ta = NULL;
	_cleanup_(cairn_tree_freep) cairn_tree *tb = NULL;
	struct cairn_id key;
	int r = pair_key(a, b, &key);

	if (r < 0 || cairn_idset_has(&c->same, &key))
		return r < 0 ? r : 1;
	if (c->depth >= COPY_MAX_DEPTH)
		return cairn_err_set(-ELOOP, "directories nested more than %d deep",
		                     COPY_MAX_DEPTH);
	if ((r = cairn_repo_tree_load(c->src, a, &ta)) < 0 ||
	    (r = cairn_repo_tree_load(c->dst, b, &tb)) < 0)
		return r;
	if (cairn_tree_count(ta) != cairn_tree_count(tb))
		return 0;
	c->depth++;
	r = 1;
	for (size_t i = 0; r == 1 && i < cairn_tree_count(ta); i++)
		r = same_node(c, cairn_tree_node(ta, i), cairn_tree_node(tb, i));
	c->depth--;
	if (r == 1 && (r = learn_tree(c, a, b)) >= 0)
		r = 1;
	return r;
}

/* The candidate s was copied to, or NULL. Errors reading trees. */
static int find_copy(struct copier *c, const struct cairn_snapshot *s, const struct candidate **out)
{
	*out = NULL;
	for (size_t i = 0; i < c->ncands; i++) {
		if (!same_fields(c->cands[i].meta, s))
			continue;
		int r = same_tree(c, &s->root, &c->cands[i].root);
		if (r < 0)
			return r;
		if (r) {
			*out = &c->cands[i];
			return 1;
		}
	}
	return 0;
}

static int add_candidate(struct copier *c, const struct cairn_snapshot *meta,
                         const struct cairn_id *id, const struct cairn_id *root)
{
	int r = grow(&c->cands, &c->cap_cands, c->ncands, sizeof(*c->cands));
	if (r >= 0)
		c->cands[c->ncands++] = (struct candidate){ meta, *id, *root };
	return r;
}

/* ---- the data blobs ---------------------------------------------------- */

/* Pass 1: the data blobs of tree id (and below) this run has not copied yet. */
static int collect(struct copier *c, const struct cairn_id *id)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	int r;

	if (cairn_idset_has(&c->trees, id) || (r = cairn_idset_add(&c->seen, id, 0)) == 0)
		return 0; /* copied for an earlier snapshot, or met in this one */
	if (r < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (c->depth >= COPY_MAX_DEPTH)
		return cairn_err_set(-ELOOP, "directories nested more than %d deep",
		                     COPY_MAX_DEPTH);
	if ((r = cairn_repo_tree_load(c->src, id, &t)) < 0)
		return r;
	c->depth++;
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		if (n->type == CAIRN_NODE_DIR)
			r = collect(c, &n->subtree);
		for (size_t k = 0; r >= 0 && k < n->nextents; k++) {
			const struct cairn_id *b = &n->extents[k].id;
			if (cairn_id_is_zero(b) || cairn_idset_has(&c->blobs, b))
				continue;
			if ((r = cairn_idset_add(&c->queued, b, 0)) > 0 &&
			    (r = grow(&c->todo, &c->cap_todo, c->ntodo, sizeof(*c->todo))) >= 0)
				c->todo[c->ntodo++] = *b;
		}
	}
	c->depth--;
	return r < 0 ? r : 0;
}

static int add_result(struct result *out, const struct cairn_id *id, size_t len)
{
	struct cairn_extent *v = reallocarray(out->v, out->n + 1, sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	v[out->n++] = (struct cairn_extent){ *id, len };
	out->v = v;
	return 0;
}

/* Read source blob id and store it in the destination: whole, or cut by the
 * destination's chunker when it is larger than the destination allows. */
static int copy_blob(struct copier *c, const struct cairn_id *id, struct cairn_buf *buf,
                     struct result *out)
{
	int r = cairn_repo_get_typed(c->src, CAIRN_BLOB_DATA, id, buf);
	if (r < 0)
		return r;
	atomic_fetch_add(&c->blobs_read, 1);
	atomic_fetch_add(&c->bytes_read, buf->len);
	for (size_t off = 0; off < buf->len;) {
		size_t left = buf->len - off;
		size_t len = left <= c->max_chunk
		                     ? left
		                     : cairn_chunker_cut(c->chunker, buf->data + off, left);
		struct cairn_id did;
		r = cairn_repo_put(c->dst, CAIRN_BLOB_DATA, buf->data + off, len, NULL, &did);
		if (r < 0)
			return r;
		if ((r = add_result(out, &did, len)) < 0)
			return r;
		off += len;
	}
	return 0;
}

static void fail_once(struct copier *c, int r)
{
	pthread_mutex_lock(&c->mu);
	if (!c->err) {
		c->err = r;
		snprintf(c->errmsg, sizeof(c->errmsg), "%s", cairn_err_msg());
	}
	pthread_mutex_unlock(&c->mu);
	atomic_store(&c->failed, true);
}

/* Take jobs until none is left or one failed. */
static void *work(void *arg)
{
	struct copier *c = arg;
	_cleanup_buf_ struct cairn_buf buf = CAIRN_BUF_INIT;
	while (!atomic_load(&c->failed)) {
		size_t i = atomic_fetch_add(&c->next, 1);
		if (i >= c->ntodo)
			break;
		int r = interrupt_check();
		if (r >= 0)
			r = copy_blob(c, &c->todo[i], &buf, &c->results[i]);
		if (r < 0)
			fail_once(c, r);
	}
	return NULL;
}

/* Record what the workers made of each blob, for the trees (and later snapshots). */
static int merge_results(struct copier *c)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < c->ntodo; i++)
		r = learn_blob(c, &c->todo[i], c->results[i].v, c->results[i].n);
	return r;
}

/* Pass 2: copy the blobs of c->todo on c->threads threads, this one included. */
static int copy_blobs(struct copier *c)
{
	pthread_t tids[COPY_MAX_THREADS];
	size_t started = 0;
	int r = 0;

	if (c->ntodo == 0)
		return 0;
	if (!(c->results = calloc(c->ntodo, sizeof(*c->results))))
		return cairn_err_set(-ENOMEM, "out of memory");
	atomic_store(&c->next, 0);
	/* A thread that cannot start leaves its share to the others. */
	while (started + 1 < c->threads && started + 1 < c->ntodo &&
	       cli_thread_create(&tids[started], work, c) == 0)
		started++;
	work(c);
	for (size_t i = 0; i < started; i++)
		pthread_join(tids[i], NULL);
	if (c->err)
		r = cairn_err_set(c->err, "%s", c->errmsg);
	else
		r = merge_results(c);
	for (size_t i = 0; i < c->ntodo; i++)
		free(c->results[i].v);
	free(TAKE_PTR(c->results));
	return r;
}

/* ---- the trees ----------------------------------------------------------- */

static int push_extent(struct copier *c, size_t *k, const struct cairn_extent *e)
{
	int r = grow(&c->ext, &c->cap_ext, *k, sizeof(*c->ext));
	if (r >= 0)
		c->ext[(*k)++] = *e;
	return r;
}

/* c->ext: the extents of source file n in the destination. A hole stays a
 * hole; a blob becomes the pieces copy_blob made of it. */
static int new_extents(struct copier *c, const struct cairn_node *n, size_t *count)
{
	size_t k = 0;
	int r = 0;
	for (size_t i = 0; r >= 0 && i < n->nextents; i++) {
		const struct cairn_extent *e = &n->extents[i];
		if (cairn_id_is_zero(&e->id)) {
			r = push_extent(c, &k, e);
			continue;
		}
		const uint64_t *first = cairn_idset_get(&c->blobs, &e->id);
		uint64_t sum = 0;
		for (size_t p = first ? *first : c->npieces; r >= 0 && p < c->npieces; p++) {
			r = push_extent(c, &k, &c->pieces[p].e);
			sum += c->pieces[p].e.len;
			if (c->pieces[p].last)
				break;
		}
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &e->id);
		/* A blob of another length than its extent says: the source's tree
		 * and blob disagree, and the copy would be wrong. */
		if (r >= 0 && sum != e->len)
			r = cairn_err_set(
			        -EBADMSG,
			        "file '%.*s': data blob %s holds %llu bytes, its extent %llu",
			        (int)n->name_len, (const char *)n->name, hex,
			        (unsigned long long)sum, (unsigned long long)e->len);
	}
	*count = k;
	return r;
}

static int copy_tree(struct copier *c, const struct cairn_id *id, struct cairn_id *out);

/* Add the copy of source entry n to b: new subtree and extent IDs. */
static int copy_node(struct copier *c, cairn_tree_builder *b, const struct cairn_node *n)
{
	struct cairn_node copy = *n;
	int r = 0;
	if (n->type == CAIRN_NODE_DIR)
		r = copy_tree(c, &n->subtree, &copy.subtree);
	if (r >= 0 && n->nextents && (r = new_extents(c, n, &copy.nextents)) >= 0)
		copy.extents = c->ext;
	return r < 0 ? r : cairn_tree_builder_add(b, &copy);
}

/* Pass 3: *out is the ID of the copy of source tree id in the destination,
 * stored there with the trees below it (bottom-up). */
static int copy_tree(struct copier *c, const struct cairn_id *id, struct cairn_id *out)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf data = CAIRN_BUF_INIT;
	const uint64_t *known = cairn_idset_get(&c->trees, id);
	int r;

	if (known) {
		*out = c->tree_ids[*known];
		return 0;
	}
	if (c->depth >= COPY_MAX_DEPTH)
		return cairn_err_set(-ELOOP, "directories nested more than %d deep",
		                     COPY_MAX_DEPTH);
	if ((r = interrupt_check()) < 0 || (r = cairn_repo_tree_load(c->src, id, &t)) < 0 ||
	    (r = cairn_tree_builder_new(&b)) < 0)
		return r;
	c->depth++;
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++)
		r = copy_node(c, b, cairn_tree_node(t, i));
	c->depth--;
	if (r < 0 || (r = cairn_tree_builder_encode(b, &data)) < 0 ||
	    (r = cairn_repo_put(c->dst, CAIRN_BLOB_TREE, data.data, data.len, NULL, out)) < 0)
		return r;
	return learn_tree(c, id, out);
}

/* ---- snapshots ----------------------------------------------------------- */

static void print_snapshot(const struct copier *c, const struct cairn_snapshot *s,
                           const struct cairn_id *copy, bool skipped, uint64_t blobs,
                           uint64_t bytes)
{
	char o[CAIRN_ID_HEX_SIZE], n[CAIRN_ID_HEX_SIZE], size[32];
	cairn_id_hex(o, &s->id);
	cairn_id_hex(n, copy);
	if (c->a->json) {
		printf("{\"message_type\":\"%s\",\"source_snapshot_id\":\"%s\","
		       "\"snapshot_id\":\"%s\"",
		       skipped ? "skipped_snapshot" : "copied_snapshot", o, n);
		if (!skipped)
			printf(",\"blobs_added\":%llu,\"bytes_added\":%llu",
			       (unsigned long long)blobs, (unsigned long long)bytes);
		fputs("}\n", stdout);
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE && skipped) {
		printf("%.8s already copied as %.8s\n", o, n);
	} else if (cairn_log_get_level() >= CAIRN_LOG_NOTICE) {
		printf("copied %.8s as %.8s: %llu new %s (%s)\n", o, n, (unsigned long long)blobs,
		       cli_plural(blobs, "blob", "blobs"),
		       cli_fmt_bytes(size, sizeof(size), bytes));
	}
	fflush(stdout);
}

/* The parent of the copy: the copy of the original's parent, when the
 * destination has one (copied now or before); else none. */
static int set_parent(struct copier *c, struct cairn_snapshot *copy)
{
	const struct candidate *k = NULL;
	int r = 0;
	for (size_t i = 0; copy->has_parent && i < c->nfrom; i++)
		if (memcmp(&c->from[i]->id, &copy->parent, sizeof(copy->parent)) == 0) {
			r = find_copy(c, c->from[i], &k);
			break;
		}
	copy->has_parent = k != NULL;
	copy->parent = k ? k->id : (struct cairn_id){ 0 };
	return r;
}

/* Copy s unless the destination has it: its blobs, its trees, then the snapshot
 * (the commit point, FORMAT.md §8). */
static int copy_snapshot(struct copier *c, const struct cairn_snapshot *s)
{
	struct cairn_snapshot copy = *s; /* shallow: strings stay s's */
	struct cairn_repo_stats before, after;
	const struct candidate *there;
	int r = find_copy(c, s, &there);

	if (r < 0)
		return r;
	if (there) {
		struct candidate k = *there; /* add_candidate moves the array */
		c->skipped++;
		print_snapshot(c, s, &k.id, true, 0, 0);
		/* Known as the copy of a later snapshot's parent. */
		return add_candidate(c, s, &k.id, &k.root);
	}
	cairn_repo_stats(c->dst, &before);
	c->ntodo = 0;
	/* The parent first: comparing it with its copy tells the copies of
	 * the trees and blobs the snapshot shares with it (learn_extents). */
	if ((r = set_parent(c, &copy)) >= 0 && (r = collect(c, &s->root)) >= 0) {
		char id[9];
		maint_short_id(id, &s->id);
		log_info("copying %s: %zu %s to read from the source", id, c->ntodo,
		         cli_plural(c->ntodo, "blob", "blobs"));
		r = copy_blobs(c);
	}
	if (r >= 0)
		r = copy_tree(c, &s->root, &copy.root);
	cairn_idset_release(&c->seen);
	cairn_idset_release(&c->queued);
	/* Every pack the snapshot needs is durable and indexed before it. */
	if (r < 0 || (r = cairn_repo_flush(c->dst)) < 0 || (r = interrupt_check()) < 0 ||
	    (r = cairn_lock_refresh(c->dst_lock)) < 0 ||
	    (r = cairn_repo_snapshot_save(c->dst, &copy)) < 0)
		return r;
	cairn_repo_stats(c->dst, &after);
	c->copied++;
	print_snapshot(c, s, &copy.id, false, after.blobs_written - before.blobs_written,
	               after.bytes_written - before.bytes_written);
	return add_candidate(c, s, &copy.id, &copy.root);
}

static void summary(const struct copier *c, const struct cairn_repo_stats *st)
{
	char size[32];
	uint64_t blobs = st->blobs_written;
	if (c->a->json) {
		printf("{\"message_type\":\"summary\",\"command\":\"copy\","
		       "\"snapshots_copied\":%zu,\"snapshots_skipped\":%zu,\"blobs_read\":%llu,"
		       "\"bytes_read\":%llu,\"blobs_added\":%llu,\"bytes_added\":%llu,"
		       "\"packs_written\":%llu}\n",
		       c->copied, c->skipped, (unsigned long long)atomic_load(&c->blobs_read),
		       (unsigned long long)atomic_load(&c->bytes_read), (unsigned long long)blobs,
		       (unsigned long long)st->bytes_written,
		       (unsigned long long)st->packs_written);
		return;
	}
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	printf("copied %zu %s, %zu already there; ", c->copied,
	       cli_plural(c->copied, "snapshot", "snapshots"), c->skipped);
	if (st->packs_written == 0)
		printf("nothing written\n");
	else
		printf("%llu new %s, %s written in %llu %s\n", (unsigned long long)blobs,
		       cli_plural(blobs, "blob", "blobs"),
		       cli_fmt_bytes(size, sizeof(size), st->bytes_written),
		       (unsigned long long)st->packs_written,
		       cli_plural(st->packs_written, "pack", "packs"));
}

static unsigned thread_count(void)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	return n < 2 ? 2 : n > COPY_MAX_THREADS ? COPY_MAX_THREADS : (unsigned)n;
}

/* Choose the source's snapshots and copy them, oldest first. */
static int copy_all(struct copier *c, char **specs, size_t nspecs)
{
	struct cairn_snapshot **from = NULL, **to = NULL;
	size_t nfrom = 0, nto = 0;
	_cleanup_free_ bool *want = NULL;
	int r = cairn_repo_snapshot_list(c->src, &from, &nfrom);

	if (r >= 0)
		r = cairn_repo_snapshot_list(c->dst, &to, &nto);
	if (r >= 0 && !(want = calloc(nfrom ? nfrom : 1, sizeof(*want))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0)
		r = snapsel_choose(&c->a->sel, from, nfrom, specs, nspecs, want);
	c->from = from;
	c->nfrom = nfrom;
	for (size_t i = 0; r >= 0 && i < nto; i++)
		r = add_candidate(c, to[i], &to[i]->id, &to[i]->root);
	for (size_t i = 0; r >= 0 && i < nfrom; i++) {
		char id[9];
		if (!want[i])
			continue;
		if ((r = copy_snapshot(c, from[i])) < 0 && r != -ENOMEM) {
			maint_short_id(id, &from[i]->id);
			cairn_err_wrap(r, "cannot copy snapshot %s", id);
		}
	}
	struct cairn_repo_stats st;
	cairn_repo_stats(c->dst, &st);
	if (r >= 0)
		summary(c, &st);
	cairn_snapshot_list_free(from, nfrom);
	cairn_snapshot_list_free(to, nto);
	return r;
}

static void copier_release(struct copier *c)
{
	cairn_idset_release(&c->blobs);
	cairn_idset_release(&c->trees);
	cairn_idset_release(&c->same);
	cairn_idset_release(&c->seen);
	cairn_idset_release(&c->queued);
	free(c->pieces);
	free(c->tree_ids);
	free(c->cands);
	free(c->todo);
	free(c->ext);
	pthread_mutex_destroy(&c->mu);
}

/* ---- opening both sides -------------------------------------------------- */

/* Whether a and b name one repository: one directory (however spelled), or one
 * bucket and prefix. Opened twice it would have two index environments. */
static bool same_place(const char *a, const char *b)
{
	struct stat sa, sb;
	cairn_storage *x = NULL, *y = NULL;
	bool same = false;
	if (cairn_storage_is_url(a) != cairn_storage_is_url(b))
		return false;
	if (!cairn_storage_is_url(a))
		return stat(a, &sa) == 0 && stat(b, &sb) == 0 && sa.st_dev == sb.st_dev &&
		       sa.st_ino == sb.st_ino;
	if (cairn_storage_open(&x, a, cli_storage_opts()) >= 0 &&
	    cairn_storage_open(&y, b, cli_storage_opts()) >= 0)
		same = strcmp(cairn_storage_id(x), cairn_storage_id(y)) == 0;
	cairn_storage_close(x);
	cairn_storage_close(y);
	return same;
}

/* The source, read-only, and its shared lock: where the source cannot be
 * written (read-only media), it is read without one, as check does. */
static int open_source(const struct copy_args *a, cairn_repo **repo, cairn_lock **lock)
{
	struct cli_password_src pw = { a->from_pw_file, a->from_pw_command, "CAIRN_FROM_PASSWORD",
		                       "Password of the source repository: " };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .read_only = true };
	int r = cli_open_repo_at(repo, a->from, &pw, &ro);
	if (r == -ENOTTY)
		return cairn_err_set(r, "no password given for the source repository: use "
		                        "--from-password-file/--from-password-command or set "
		                        "CAIRN_FROM_PASSWORD_FILE");
	if (r < 0)
		return cairn_err_wrap(r, "source repository '%s'", a->from);
	r = cairn_repo_lock(*repo, CAIRN_LOCK_SHARED, "copy", a->wait, lock);
	if (r == -EROFS || r == -EACCES || r == -EPERM) {
		log_warn("reading the source without a lock: %s", cairn_err_msg());
		r = 0;
	}
	return r;
}

static int copy_main(struct copy_args *a, int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "from-repo", required_argument, NULL, OPT_FROM_REPO },
		{ "from-password-file", required_argument, NULL, OPT_FROM_PASSWORD_FILE },
		{ "from-password-command", required_argument, NULL, OPT_FROM_PASSWORD_COMMAND },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		SNAPSEL_LONGOPTS,
		{ 0 },
	};
	_cleanup_repo_ cairn_repo *src = NULL;
	_cleanup_repo_ cairn_repo *dst = NULL;
	_cleanup_lock_ cairn_lock *src_lock = NULL;
	_cleanup_lock_ cairn_lock *dst_lock = NULL;
	const char *to = NULL;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (!a->from && (a->from = getenv("CAIRN_FROM_REPO")) && !*a->from)
		a->from = NULL;
	if (!a->from)
		return cli_usage_error("copy: give the repository to copy from with --from-repo "
		                       "or CAIRN_FROM_REPO");
	if (strstr(a->from, "://") && !cairn_storage_is_url(a->from))
		return cli_usage_error("copy: '%s': only s3:// URLs and directories are supported",
		                       a->from);
	int r = cli_repo_path(&to);
	if (r >= 0 && same_place(a->from, to))
		return cli_usage_error("copy: the source and the destination are both '%s'", to);
	/* Shared on both sides, as a backup into the destination and a reader of
	 * the source: only prune must not run meanwhile. */
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .lock_first = true };
	if (r >= 0 && (r = cli_open_repo(&dst, &ro)) >= 0 &&
	    (r = cairn_repo_lock(dst, CAIRN_LOCK_SHARED, "copy", a->wait, &dst_lock)) >= 0)
		maint_recover(dst, dst_lock);
	if (r >= 0)
		r = open_source(a, &src, &src_lock);
	if (r < 0)
		return cli_fail(r);
	struct copier c = {
		.src = src,
		.dst = dst,
		.dst_lock = dst_lock,
		.a = a,
		.chunker = cairn_repo_chunker(dst),
		.max_chunk = cairn_chunker_params(cairn_repo_chunker(dst))->max,
		.threads = thread_count(),
		.mu = PTHREAD_MUTEX_INITIALIZER,
	};
	cairn_idset_init(&c.blobs);
	cairn_idset_init(&c.trees);
	cairn_idset_init(&c.same);
	cairn_idset_init(&c.seen);
	cairn_idset_init(&c.queued);
	interrupt_catch("copy");
	r = interrupt_result(copy_all(&c, argv + i, (size_t)(argc - i)));
	copier_release(&c);
	return r < 0 ? cli_fail(r) : 0;
}

int cmd_copy(int argc, char **argv)
{
	struct copy_args a = { 0 };
	snapsel_init(&a.sel);
	int rc = copy_main(&a, argc, argv);
	snapsel_release(&a.sel);
	return rc;
}
