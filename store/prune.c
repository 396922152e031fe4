/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prune: mark what the snapshots reach, repack or delete the rest, while backups
 * run (docs/DESIGN.md "Prune while backups run"). */
#include "repo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "pack.h"
#include "prunerec.h"

/* Bytes of a pack besides its blobs (FORMAT.md §6): magic, trailer, the sealed
 * header's overhead and count, and one header entry per blob. */
#define PACK_FIXED (CAIRN_PACK_MAGIC_SIZE + CAIRN_PACK_TRAILER_SIZE + CAIRN_SEAL_OVERHEAD + 4)
/* A pack below this share of the target size is small: small packs of one type
 * are merged (each pack is an object to keep, and on S3 a request and a minimum
 * billed size). The limit also bounds what merging rewrites: a merged pack is
 * copied again only until it passes it. */
#define SMALL_DIV 4

enum action { KEEP, DELETE, REPACK, UNINDEX };
/* What a pack holds: data blobs, tree blobs, or both (repacked by an earlier
 * cairn, whose repack mixed them). */
enum kind { K_DATA, K_TREE, K_MIXED, NKINDS };

struct pk {
	struct cairn_id id;
	uint64_t size;
	uint64_t used_bytes; /* stored bytes of used blobs the index places here */
	uint32_t n, used_n;  /* blobs the index places here, and how many are used */
	uint32_t count;      /* blobs the pack holds (copies placed elsewhere too) */
	int kind;            /* of the blobs the index places here: enum kind */
	bool on_disk, indexed;
	enum action action;
};

/* A used blob to copy out of a pack being repacked. */
struct copy {
	struct cairn_id id;
	struct cairn_loc loc;
};

struct prune {
	cairn_repo *repo;
	cairn_index *ix;
	const struct cairn_prune_opts *o;
	struct cairn_prune_stats *st;
	struct cairn_idset used;  /* blobs (trees and data) the snapshots reach */
	struct cairn_idset index; /* pack ID -> position in packs */
	struct pk *packs;
	size_t npacks, cap;
	uint64_t used_present;     /* used blobs found in a pack on disk */
	struct cairn_pending pend; /* earlier prunes' pending deletions */
};

static void step(const struct prune *p, const char *name)
{
	if (p->o->on_step)
		p->o->on_step(name, p->o->payload);
}

/* Whether the caller wants the prune to stop (cairn_prune_opts.check). */
static int stop(const struct prune *p)
{
	return p->o->check ? p->o->check(p->o->payload) : 0;
}

/* ---- the pack table ----------------------------------------------------- */

static int pack_get(struct prune *p, const struct cairn_id *id, struct pk **out)
{
	uint64_t *pos = cairn_idset_get(&p->index, id);
	if (pos) {
		*out = &p->packs[*pos];
		return 0;
	}
	if (p->npacks == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 64;
		struct pk *v = reallocarray(p->packs, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		p->packs = v;
		p->cap = cap;
	}
	int r = cairn_idset_add(&p->index, id, p->npacks);
	if (r < 0)
		return r;
	*out = &p->packs[p->npacks++];
	**out = (struct pk){ .id = *id };
	return 0;
}

static int on_disk(const struct cairn_id *id, uint64_t size, void *payload)
{
	struct prune *p = payload;
	struct pk *k = NULL;
	if (cairn_repo__pending_has_pack(&p->pend, id))
		return 0; /* an earlier prune's: its record decides (pending.c) */
	int r = pack_get(p, id, &k);
	if (r < 0)
		return r;
	k->on_disk = true;
	k->size = size;
	return 0;
}

static int in_index(const struct cairn_id *id, uint64_t size, uint32_t count, void *payload)
{
	struct prune *p = payload;
	struct pk *k = NULL;
	if (cairn_repo__pending_has_pack(&p->pend, id))
		return 0;
	int r = pack_get(p, id, &k);
	if (r < 0)
		return r;
	k->count = count;
	k->size = size; /* until the listing says */
	k->indexed = true;
	return 0;
}

/* A pack on disk that the index lacks (a crash between a pack's rename and its
 * index commit, or before an earlier prune deleted it) is indexed first, as
 * rebuild-index would, so that its blobs count, and named with this run's new
 * packs: once the index is filled again from the index files, a pack only
 * this cache knew would be gone from it. An unreadable one is left alone:
 * check reports it. A dry run changes nothing and leaves such packs out. */
static int index_orphans(struct prune *p)
{
	for (size_t i = 0; i < p->npacks; i++) {
		struct pk *k = &p->packs[i];
		_cleanup_free_ struct cairn_pack_entry *e = NULL;
		size_t n = 0;
		if (!k->on_disk || k->indexed || p->o->dry_run)
			continue;
		if (cairn_repo_pack_entries(p->repo, &k->id, &e, &n) < 0) {
			log_debug("prune: leaving unreadable pack alone: %s", cairn_err_msg());
			continue;
		}
		int r = cairn_repo__index_pack(p->repo, &k->id, k->size, e, n);
		if (r < 0)
			return r;
		k->indexed = true;
		k->count = (uint32_t)n;
	}
	return 0;
}

/* The index first: a pack is durable before it is indexed, so one indexed now
 * and missing from the listing that follows is gone, not a backup's new pack. */
static int load_packs(struct prune *p)
{
	int r = cairn_index__foreach_pack(p->ix, in_index, p);
	if (r >= 0)
		r = cairn_repo_foreach_pack(p->repo, on_disk, p);
	return r < 0 ? r : index_orphans(p);
}

/* ---- mark --------------------------------------------------------------- */

static int mark_tree(struct prune *p, const struct cairn_id *id);

/* A tree the index no longer places may be in a pack an earlier prune is about
 * to delete, which a backup that ran meanwhile used: found there. */
static int load_tree(struct prune *p, const struct cairn_id *id, struct cairn_buf *out)
{
	struct cairn_loc loc;
	/* The index as mark() left it: a refresh now would bring packs the pack
	 * table lacks. */
	int r = cairn_repo__lookup_cached(p->repo, id, &loc);
	if (r == -ENOENT)
		r = cairn_repo__pending_lookup(&p->pend, id, &loc);
	if (r < 0)
		return r;
	if (loc.type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EBADMSG, "a tree is stored as a data blob");
	return cairn_repo__get_at(p->repo, id, &loc, out);
}

static int mark_node(struct prune *p, const struct cairn_node *nd)
{
	if (nd->type == CAIRN_NODE_DIR)
		return mark_tree(p, &nd->subtree);
	for (size_t i = 0; i < nd->nextents; i++) {
		if (cairn_id_is_zero(&nd->extents[i].id))
			continue; /* a hole */
		int r = cairn_idset_add(&p->used, &nd->extents[i].id, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Depth-first; a tree shared by several snapshots or directories is read once. */
static int mark_tree(struct prune *p, const struct cairn_id *id)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	cairn_tree *t = NULL;
	int r = cairn_idset_add(&p->used, id, 0);

	if (r <= 0)
		return r;
	if ((r = stop(p)) < 0)
		return r;
	p->st->trees++;
	if ((r = load_tree(p, id, &b)) >= 0)
		r = cairn_tree_parse(&t, b.data, b.len);
	if (r < 0) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		/* A needed tree that is not there is damage, not a lookup miss. */
		return cairn_err_wrap(r == -ENOENT ? -EBADMSG : r, "tree %.8s", hex);
	}
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++)
		r = mark_node(p, cairn_tree_node(t, i));
	cairn_tree_free(t);
	return r;
}

/* The snapshots there now, then the index files, which name the packs of every
 * one of them (a backup writes its index file before its snapshot). */
static int mark(struct prune *p)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	bool rebuilt;
	/* A damaged snapshot stops prune: the blobs it refers to are unknown. */
	int r = cairn_repo__snapshot_list(p->repo, true, &list, &n);
	if (r >= 0 && p->repo->cache)
		r = cairn_repo__load_index_files(p->repo, false, &rebuilt);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		r = mark_tree(p, &list[i]->root);
		if (r < 0) {
			char hex[CAIRN_ID_HEX_SIZE];
			cairn_id_hex(hex, &list[i]->id);
			r = cairn_err_wrap(r, "snapshot %.8s", hex);
		}
	}
	cairn_snapshot_list_free(list, n);
	if (r < 0)
		return cairn_err_wrap(r, "cannot prune (run 'cairn check')");
	p->st->snapshots = n;
	return 0;
}

/* ---- sweep: decide per pack --------------------------------------------- */

static int attribute(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct prune *p = payload;
	uint64_t *pos = cairn_idset_get(&p->index, &loc->pack);
	if (cairn_repo__pending_has_pack(&p->pend, &loc->pack))
		return 0; /* counted by found_pending() */
	if (!pos) {
		/* Indexed since load_packs() (a backup running beside a local
		 * repository's prune): durable, not ours to judge. */
		if (cairn_idset_has(&p->used, id))
			p->used_present++;
		return 0;
	}
	struct pk *k = &p->packs[*pos];
	int kind = loc->type == CAIRN_BLOB_TREE ? K_TREE : K_DATA;
	k->kind = k->n == 0 || k->kind == kind ? kind : K_MIXED;
	k->n++;
	if (!cairn_idset_has(&p->used, id)) {
		p->st->blobs_unused++;
		return 0;
	}
	k->used_n++;
	k->used_bytes += loc->stored_len;
	if (k->on_disk)
		p->used_present++;
	return 0;
}

/* Used blobs the index does not place in a pack of this run, found in packs an
 * earlier prune is deleting instead (kept by its record's end, pending.c). */
/* Whether attribute() counted used blob id as present: the index places it in
 * a pack that is on disk, or one indexed since the table was made. */
static bool counted(struct prune *p, const struct cairn_id *id)
{
	struct cairn_loc loc;
	if (cairn_repo__lookup_cached(p->repo, id, &loc) < 0 ||
	    cairn_repo__pending_has_pack(&p->pend, &loc.pack))
		return false;
	uint64_t *k = cairn_idset_get(&p->index, &loc.pack);
	return !k || p->packs[*k].on_disk;
}

static void found_pending(struct prune *p)
{
	const struct cairn_id *id;
	struct cairn_loc loc;
	if (p->pend.npacks == 0)
		return;
	for (size_t pos = 0; cairn_idset_next(&p->used, &pos, &id);)
		if (!counted(p, id) && cairn_repo__pending_lookup(&p->pend, id, &loc) >= 0)
			p->used_present++;
}

static int missing_error(struct prune *p, size_t missing)
{
	const struct cairn_id *id;
	struct cairn_loc loc;
	char hex[CAIRN_ID_HEX_SIZE] = "?";

	for (size_t pos = 0; cairn_idset_next(&p->used, &pos, &id);)
		if (!counted(p, id) && cairn_repo__pending_lookup(&p->pend, id, &loc) < 0) {
			cairn_id_hex(hex, id);
			break;
		}
	return cairn_err_set(-EBADMSG,
	                     "cannot prune: %zu blobs that snapshots need are missing (blob %.8s "
	                     "first); run 'cairn check'",
	                     missing, hex);
}

static uint64_t unused_bytes(const struct pk *k)
{
	uint64_t used = k->used_bytes + PACK_FIXED + (uint64_t)CAIRN_PACK_ENTRY_SIZE * k->used_n;
	return k->size > used ? k->size - used : 0;
}

static enum action decide_one(const struct prune *p, const struct pk *k)
{
	if (!k->on_disk)
		return UNINDEX; /* only index records to drop: no needed blob (checked) */
	if (!k->indexed)
		return KEEP; /* unreadable or a dry run: unknown content */
	if (k->used_n == 0)
		return DELETE;
	/* Compare unused / size with max_unused / 100 without dividing. */
	if ((double)unused_bytes(k) * 100.0 > p->o->max_unused * (double)k->size)
		return REPACK;
	return KEEP;
}

static bool small(const struct prune *p, const struct pk *k)
{
	return k->action == KEEP && k->on_disk && k->indexed && k->used_n > 0 &&
	       k->size < cairn_repo__config(p->repo)->pack_size / SMALL_DIV;
}

/* Small packs of one kind are repacked together when there are two or more of
 * them, or when a repack of that kind writes a pack they can join; so are small
 * packs of both kinds, which repack splits by kind. A lone small pack stays: a
 * copy would be no larger. */
static void merge_small(struct prune *p)
{
	size_t nsmall[NKINDS] = { 0 }, nrepack[NKINDS] = { 0 };
	for (size_t i = 0; i < p->npacks; i++) {
		const struct pk *k = &p->packs[i];
		if (small(p, k))
			nsmall[k->kind]++;
		else if (k->action == REPACK)
			nrepack[k->kind]++;
	}
	size_t mixed = nsmall[K_MIXED] + nrepack[K_MIXED], any = 0;
	for (int t = 0; t < NKINDS; t++)
		any += nsmall[t] + nrepack[t];
	for (size_t i = 0; i < p->npacks; i++) {
		struct pk *k = &p->packs[i];
		if (!small(p, k))
			continue;
		size_t with = k->kind == K_MIXED ? any : nsmall[k->kind] + nrepack[k->kind] + mixed;
		if (with >= 2) /* k and at least one other */
			k->action = REPACK;
	}
}

static void count(struct prune *p, const struct pk *k)
{
	struct cairn_prune_stats *st = p->st;
	if (k->on_disk) {
		st->packs++;
		st->bytes_total += k->size;
		if (k->indexed)
			st->bytes_unused += unused_bytes(k);
	}
	if (k->action == KEEP && k->on_disk) {
		st->packs_kept++;
		st->bytes_left_unused += k->indexed ? unused_bytes(k) : 0;
	} else if (k->action == DELETE) {
		st->packs_deleted++;
		st->bytes_freed += k->size;
	} else if (k->action == REPACK) {
		st->packs_repacked++;
		st->bytes_repacked += k->size;
		st->bytes_freed += k->size;
		/* The estimate for a dry run; a real run replaces it. */
		st->bytes_written += k->used_bytes + (uint64_t)CAIRN_PACK_ENTRY_SIZE * k->used_n;
	}
}

/* ---- copies: a pack goes only if the copies that stay are good ------------ */

/* Whether the copy of used blob e in pack k must stay: the index places e in
 * another pack (the lowest ID wins, FORMAT.md §7), whose copy is damaged or
 * gone while k's is good. An interrupted run can leave such a copy, and a
 * write-only key can store one under any ID in a pack whose ID sorts first:
 * deleting k would lose the only good copy. 1 keep, 0 not, or an error that
 * stops the prune (one that says nothing about the copies). */
static int only_good_copy(struct prune *p, const struct pk *k, const struct cairn_pack_entry *e)
{
	struct cairn_loc there, here = { k->id, e->offset, e->stored_len, e->raw_len, e->type };
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (!cairn_idset_has(&p->used, &e->id) ||
	    cairn_repo__lookup_cached(p->repo, &e->id, &there) < 0 ||
	    cairn_id_cmp(&there.pack, &k->id) == 0)
		return 0;
	int r = cairn_repo__get_at(p->repo, &e->id, &there, &b);
	if (r != -EBADMSG && r != -ENOENT)
		return r < 0 ? r : 0;
	char why[512], hex[CAIRN_ID_HEX_SIZE], pk[CAIRN_ID_HEX_SIZE];
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	b.len = 0;
	if ((r = cairn_repo__get_at(p->repo, &e->id, &here, &b)) == -EBADMSG || r == -ENOENT)
		return 0; /* neither copy is good: check --read-data names the damage */
	if (r < 0)
		return r;
	cairn_id_hex(hex, &e->id);
	cairn_id_hex(pk, &k->id);
	cairn_repo__warn(p->repo,
	                 "keeping pack %.8s: it holds the only good copy of blob %.8s (%s); "
	                 "run 'cairn check --read-data'",
	                 pk, hex, why);
	return 1;
}

/* Packs about to go that hold more blobs than the index places there. */
static int keep_good_copies(struct prune *p)
{
	for (size_t i = 0; i < p->npacks; i++) {
		struct pk *k = &p->packs[i];
		_cleanup_free_ struct cairn_pack_entry *e = NULL;
		size_t n = 0;
		if ((k->action != DELETE && k->action != REPACK) || !k->on_disk || k->count <= k->n)
			continue;
		int r = cairn_repo__pack_entries_sized(p->repo, &k->id, k->size, &e, &n);
		for (size_t j = 0; r >= 0 && j < n && k->action != KEEP; j++)
			if ((r = only_good_copy(p, k, &e[j])) > 0)
				k->action = KEEP;
		if (r == -EBADMSG)
			k->action = KEEP; /* an unreadable header: unknown copies */
		else if (r < 0)
			return r;
	}
	return 0;
}

static int sweep_decide(struct prune *p)
{
	int r = cairn_index__foreach_blob(p->ix, attribute, p);
	if (r < 0)
		return r;
	p->st->blobs_used = p->used.count;
	found_pending(p);
	if (p->used_present != p->used.count)
		return missing_error(p, p->used.count - (size_t)p->used_present);
	for (size_t i = 0; i < p->npacks; i++)
		p->packs[i].action = decide_one(p, &p->packs[i]);
	merge_small(p);
	if ((r = keep_good_copies(p)) < 0)
		return r;
	for (size_t i = 0; i < p->npacks; i++)
		count(p, &p->packs[i]);
	if (p->st->packs_repacked)
		p->st->bytes_written += PACK_FIXED;
	return 0;
}

/* ---- repack ------------------------------------------------------------- */

struct collect_ctx {
	const struct prune *p;
	struct cairn_buf *list; /* of struct copy */
};

static int collect(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct collect_ctx *c = payload;
	uint64_t *k = cairn_idset_get(&c->p->index, &loc->pack);
	if (!k || c->p->packs[*k].action != REPACK || !cairn_idset_has(&c->p->used, id))
		return 0;
	struct copy cp = { *id, *loc };
	return cairn_buf_put(c->list, &cp, sizeof(cp));
}

/* By type, so that trees and data go to packs of their own (docs/S3.md §5),
 * then in pack order. */
static int by_place(const void *a, const void *b)
{
	const struct copy *x = a, *y = b;
	if (x->loc.type != y->loc.type)
		return x->loc.type < y->loc.type ? -1 : 1;
	int c = cairn_id_cmp(&x->loc.pack, &y->loc.pack);
	if (c)
		return c;
	return x->loc.offset < y->loc.offset ? -1 : x->loc.offset > y->loc.offset;
}

static int finish_pack(struct prune *p, cairn_packw **w)
{
	struct cairn_id id;
	uint64_t size;
	int r = cairn_repo__pack_commit(p->repo, *w, &id, &size);
	cairn_packw__free(*w);
	*w = NULL;
	if (r < 0)
		return r;
	p->st->packs_written++;
	p->st->bytes_written += size;
	step(p, "mid-repack");
	return 0;
}

/* Sealed blobs are copied as they are: the AEAD binds a blob to its ID and type,
 * not to its pack (FORMAT.md §5.2). Each is verified first, so that a damaged
 * copy is never given a new home that hides it from check. */
static int copy_blob(struct prune *p, const struct cairn_packf *f, const struct copy *c,
                     cairn_packw *w, struct cairn_buf *sealed, struct cairn_buf *plain)
{
	size_t max = c->loc.type == CAIRN_BLOB_DATA ? cairn_repo__config(p->repo)->chunk.max
	                                            : CAIRN_TREE_MAX;
	int r = cairn_buf_reserve(sealed, c->loc.stored_len);
	const char *rel = f->name;

	if (r >= 0)
		r = cairn_packf__pread(f, c->loc.type, sealed->data, c->loc.stored_len,
		                       c->loc.offset);
	if (r < 0)
		return r;
	sealed->len = c->loc.stored_len;
	r = cairn_blob__decode(cairn_repo__keys(p->repo), c->loc.type, &c->id, sealed->data,
	                       sealed->len, c->loc.raw_len, max, plain);
	if (r < 0)
		return cairn_err_wrap(r, "cannot prune: pack '%s' offset %u (run 'cairn check')",
		                      rel, c->loc.offset);
	return cairn_packw__add(w, &c->id, c->loc.type, sealed->data, sealed->len, c->loc.raw_len);
}

static int copy_all(struct prune *p, const struct copy *c, size_t n)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	char rel[CAIRN_PACK_RELPATH_SIZE];
	struct cairn_packf f = { .fd = -1 };
	cairn_packw *w = NULL;
	uint32_t target = cairn_repo__config(p->repo)->pack_size;
	int r = 0;

	for (size_t i = 0; r >= 0 && i < n; i++) {
		if (w && c[i].loc.type != c[i - 1].loc.type)
			r = finish_pack(p, &w);
		if (r >= 0 && (i == 0 || cairn_id_cmp(&c[i].loc.pack, &c[i - 1].loc.pack) != 0))
			r = cairn_repo__pack_open(p->repo, &c[i].loc.pack, &f, rel);
		if (r >= 0 && !w)
			r = cairn_packw__new(&w,
			                     cairn_storage_tmp_dir(cairn_repo_storage(p->repo)));
		if (r >= 0)
			r = stop(p);
		if (r >= 0)
			r = copy_blob(p, &f, &c[i], w, &sealed, &plain);
		if (r >= 0 && cairn_packw__size(w) >= target)
			r = finish_pack(p, &w);
	}
	if (r >= 0 && w)
		r = finish_pack(p, &w);
	cairn_packw__free(w); /* after a failure: its temp file goes */
	return r;
}

static int repack(struct prune *p)
{
	_cleanup_buf_ struct cairn_buf list = CAIRN_BUF_INIT;
	struct collect_ctx ctx = { p, &list };
	int r = cairn_index__foreach_blob(p->ix, collect, &ctx);
	if (r < 0)
		return r;
	size_t n = list.len / sizeof(struct copy);
	struct copy *c = (struct copy *)(void *)list.data;
	if (n == 0)
		return 0;
	qsort(c, n, sizeof(*c), by_place);
	return copy_all(p, c, n);
}

/* ---- apply --------------------------------------------------------------- */

static int check_lock(struct prune *p)
{
	return p->o->lock ? cairn_lock_refresh(p->o->lock) : 0;
}

static void count_bad(const char *msg, void *payload)
{
	(void)msg;
	++*(size_t *)payload;
}

/* Packs the index names that the storage lacks: their records go (no used blob
 * is only there: sweep_decide checked), from the index files first. The index
 * files are written anew too when one is damaged (check names it), or when one
 * that a prune replaced is still there (a listing left it out of that prune's):
 * every open would warn that it came back. The new files name its packs. */
static int unindex_missing(struct prune *p)
{
	_cleanup_(cairn_idset_release) struct cairn_idset gone;
	_cleanup_free_ struct cairn_id *v = calloc(p->npacks ? p->npacks : 1, sizeof(*v));
	size_t n = 0;
	int r = 0;
	cairn_idset_init(&gone);
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; r >= 0 && i < p->npacks; i++)
		if (p->packs[i].action == UNINDEX) {
			v[n++] = p->packs[i].id;
			r = cairn_idset_add(&gone, &p->packs[i].id, 0);
		}
	if (r < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	size_t bad = 0, old = 0;
	if (!n && (r = cairn_repo__check_index_files(p->repo, count_bad, &bad, &old)) < 0)
		return r;
	if ((n || bad || old) &&
	    (r = cairn_repo__rewrite_index_files(p->repo, &gone, NULL, 0)) >= 0)
		r = cairn_index__replace_packs(p->ix, v, n, NULL, 0);
	if (r >= 0)
		p->st->index_files_replaced = old;
	return r;
}

/* The copies repack makes win over the old packs' records in the index. */
static int doom_own(struct prune *p)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < p->npacks; i++)
		if (p->packs[i].action == DELETE || p->packs[i].action == REPACK)
			r = cairn_repo__doom(p->repo, &p->packs[i].id, 1);
	return r;
}

static void pending_step(const char *name, void *payload)
{
	step(payload, name);
}

/* Finish the ripe records of p->pend (earlier prunes', or this one's) with the
 * blobs p->used holds. */
static int finish_pending(struct prune *p)
{
	uint64_t packs = 0, bytes = 0;
	int r = cairn_repo__pending_finish(p->repo, &p->pend, &p->used, p->o->lock, pending_step, p,
	                                   &packs, &bytes);
	p->st->packs_finished += packs;
	p->st->bytes_finished += bytes;
	return r;
}

/* The record of this run's deletions (FORMAT.md §13): written first, then again
 * with the locks live at that moment, whose holders may have started before it
 * and use any blob: the deletion waits for them to end. */
static int record(struct prune *p, struct cairn_prunerec *rec)
{
	uint8_t rnd[16];
	char host[256] = "localhost";
	int r = cairn_crypt__random(rnd, sizeof(rnd));
	if (r < 0)
		return r;
	cairn_hex(rec->name, rnd, sizeof(rnd));
	rec->time = time(NULL);
	gethostname(host, sizeof(host) - 1);
	snprintf(rec->host, sizeof(rec->host), "%s", host);
	if (!(rec->packs = calloc(p->npacks ? p->npacks : 1, sizeof(*rec->packs))))
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < p->npacks; i++)
		if (p->packs[i].action == DELETE || p->packs[i].action == REPACK) {
			rec->packs[rec->npacks++] = p->packs[i].id;
			p->st->bytes_pending += p->packs[i].size;
		}
	if (rec->npacks == 0)
		return 0;
	if ((r = cairn_repo__record_put(p->repo, rec)) < 0)
		return r;
	step(p, "after-record");
	return cairn_repo__record_wait(p->repo, p->o->lock, rec);
}

/* Nobody was writing when this run's record was made: its packs go now, once
 * the snapshots are marked again (a backup may have ended since the first mark,
 * with blobs of them). */
static int finish_now(struct prune *p)
{
	uint64_t trees = p->st->trees;
	cairn_repo__pending_release(&p->pend);
	cairn_idset_release(&p->used);
	cairn_idset_init(&p->used);
	int r = cairn_repo__pending_load(p->repo, p->o->lock, false, &p->pend);
	if (r >= 0)
		r = mark(p);
	p->st->trees = trees; /* the same snapshots, and maybe one more backup's */
	if (r >= 0)
		r = finish_pending(p);
	return r;
}

/* Earlier records first; then this run's new packs are written and named in an
 * index file before its record says which packs go. A failure at any point
 * leaves packs that are all still indexed: the next prune goes on. */
static int apply(struct prune *p)
{
	struct cairn_prunerec rec = { 0 };
	int r = stop(p);
	if (r >= 0)
		r = finish_pending(p);
	if (r >= 0)
		r = unindex_missing(p);
	if (r >= 0)
		r = doom_own(p);
	if (r >= 0)
		r = repack(p);
	if (r >= 0)
		r = cairn_repo__name_packs(p->repo);
	if (r >= 0) {
		step(p, "after-new-packs");
		r = check_lock(p);
	}
	if (r >= 0)
		r = stop(p);
	if (r >= 0)
		r = record(p, &rec);
	/* packs_finished counts earlier runs' packs only: this run's are in
	 * packs_deleted and packs_repacked, or else in packs_pending. */
	uint64_t packs = p->st->packs_finished, earlier = p->st->bytes_finished, own = 0;
	if (r >= 0) {
		p->st->packs_pending = rec.npacks;
		if (rec.npacks && rec.nwait == 0) {
			p->st->packs_pending = p->st->bytes_pending = 0;
			r = finish_now(p);
			own = p->st->bytes_finished - earlier;
			p->st->packs_finished = packs;
			p->st->bytes_finished = earlier;
		}
	}
	uint64_t added = p->st->bytes_written;
	p->st->bytes_freed = earlier + own > added ? earlier + own - added : 0;
	cairn_prunerec__release(&rec);
	return r;
}

/* Multipart uploads of packs that a killed or failed backup left (and whose
 * abort failed too) cost storage for ever and nothing refers to them. A
 * running backup's upload is younger than a day and than the time a lock
 * takes to go stale. Not being able to look is no reason to fail the prune. */
static void abort_old_uploads(struct prune *p)
{
	int64_t age = cairn_lock_stale_seconds() > 86400 ? cairn_lock_stale_seconds() : 86400;
	int r = cairn_storage_abort_uploads(p->repo->st, "packs", (int64_t)time(NULL) - age);
	if (r < 0)
		cairn_repo__warn(p->repo, "cannot abort abandoned uploads: %s", cairn_err_msg());
	else
		p->st->uploads_aborted = (uint64_t)r;
}

static void prune_release(struct prune *p)
{
	free(p->packs);
	cairn_idset_release(&p->used);
	cairn_idset_release(&p->index);
	cairn_repo__pending_release(&p->pend);
}

int cairn_repo_prune(cairn_repo *repo, const struct cairn_prune_opts *o,
                     struct cairn_prune_stats *st)
{
	struct prune p = { .repo = repo, .ix = cairn_repo__index(repo), .o = o, .st = st };
	int r;

	*st = (struct cairn_prune_stats){ 0 };
	if (!p.ix || (cairn_repo__read_only(repo) && !o->dry_run))
		return cairn_err_set(-EROFS, "prune needs the repository open for writing");
	if (o->max_unused < 0 || o->max_unused > 100)
		return cairn_err_set(-EINVAL, "max-unused must be a percentage from 0 to 100");
	cairn_idset_init(&p.used);
	cairn_idset_init(&p.index);
	/* Marked before the packs are listed: a pack that comes later is not judged. */
	if ((r = cairn_repo__pending_load(repo, o->lock, o->dry_run, &p.pend)) >= 0 &&
	    (r = mark(&p)) >= 0 && (r = load_packs(&p)) >= 0) {
		step(&p, "after-mark");
		r = sweep_decide(&p);
	}
	if (r >= 0 && !o->dry_run) {
		st->bytes_written = 0; /* the real amount follows */
		r = apply(&p);
		if (r >= 0)
			abort_old_uploads(&p);
	} else if (r >= 0) {
		st->bytes_freed -=
		        st->bytes_written < st->bytes_freed ? st->bytes_written : st->bytes_freed;
	}
	if (r >= 0)
		step(&p, "done");
	prune_release(&p);
	return r;
}
