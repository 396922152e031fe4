/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pending deletions (FORMAT.md §13, docs/DESIGN.md "Prune while backups run"):
 * the prune records in the storage, and what a writer learns from them. */
#include "repo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "prunerec.h"

struct records {
	cairn_repo *repo;
	struct cairn_prunerec *v;
	size_t n, cap;
	bool admin; /* prune: one that does not parse is judged by its MAC alone */
	void (*bad)(const char *msg, void *payload); /* check: report one, go on */
	void *payload;
};

/* HMAC-SHA-256(K_prune, name || text): only a full key makes or checks it, so
 * that no write-only key, nor anyone who can merely write to the storage, can
 * make a prune delete packs (FORMAT.md §13). */
static int record_mac(const cairn_repo *repo, const char *name, const uint8_t *text, size_t len,
                      uint8_t out[CAIRN_KEY_SIZE])
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (cairn_buf_put(&b, name, strlen(name)) < 0 || cairn_buf_put(&b, text, len) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	return cairn_crypt__hmac(repo->keys.prune, b.data, b.len, out);
}

static bool mac_checks(const cairn_repo *repo, const char *name, const struct cairn_buf *text,
                       size_t mac_at, const uint8_t want[CAIRN_PRUNEREC_MAC_SIZE])
{
	uint8_t mac[CAIRN_KEY_SIZE];
	return !repo->keys.write_only && record_mac(repo, name, text->data, mac_at, mac) >= 0 &&
	       cairn_crypt__equal(mac, want, sizeof(mac));
}

/* The MAC of a record that does not parse, found without parsing it: its last
 * line is "mac = <64 hex>", and it covers the bytes before that line
 * (FORMAT.md §13). False without a full key. */
static bool raw_mac_checks(const cairn_repo *repo, const char *name, const struct cairn_buf *text)
{
	static const char tag[] = "mac = ";
	const size_t line = sizeof(tag) - 1 + 2 * CAIRN_PRUNEREC_MAC_SIZE + 1;
	uint8_t want[CAIRN_PRUNEREC_MAC_SIZE];
	char hex[2 * CAIRN_PRUNEREC_MAC_SIZE + 1];

	if (text->len < line || text->data[text->len - 1] != '\n')
		return false;
	size_t at = text->len - line;
	if ((at > 0 && text->data[at - 1] != '\n') ||
	    memcmp(text->data + at, tag, sizeof(tag) - 1) != 0)
		return false;
	memcpy(hex, text->data + at + sizeof(tag) - 1, sizeof(hex) - 1);
	hex[sizeof(hex) - 1] = '\0';
	return cairn_unhex(want, sizeof(want), hex) == 0 && mac_checks(repo, name, text, at, want);
}

/* A record that does not parse. A prune keeps one that no admin key wrote as a
 * forged record (it deletes nothing, and is removed); one that an admin key
 * wrote (a later cairn's) stops it. A backup cannot tell the two apart (a
 * write-only key has no K_prune), nor skip a genuine one (its packs would be
 * used while they go): it stops, saying who mends it. check reports it. */
static int unparsable(struct records *l, const char *name, const struct cairn_buf *text, int r)
{
	char rel[CAIRN_OBJ_REL_MAX], why[512];
	if (r == -ENOMEM)
		return r;
	if (cairn_obj_rel(rel, CAIRN_OBJ_PRUNE, name) < 0) /* cannot fail: listed */
		snprintf(rel, sizeof(rel), "%s", name);
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	bool genuine = l->admin && raw_mac_checks(l->repo, name, text);
	if (l->admin && !genuine) {
		l->n++; /* l->v[l->n] has its name only: not authentic, no packs */
		return 0;
	}
	if (genuine)
		return cairn_err_set(r,
		                     "%s: %s, though an admin key wrote it (a later version of "
		                     "cairn?)",
		                     rel, why);
	const char *detail = strncmp(why, "prune record: ", 14) == 0 ? why + 14 : NULL;
	r = cairn_err_set(r, "%s: not a prune record%s%s%s; an admin's 'cairn prune' removes it",
	                  rel, detail ? " (" : "", detail ? detail : "", detail ? ")" : "");
	if (!l->bad)
		return r;
	l->bad(cairn_err_msg(), l->payload);
	return 0;
}

static int one_record(const struct cairn_obj_info *o, void *payload)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	struct records *l = payload;
	int r = cairn_storage_get(l->repo->st, CAIRN_OBJ_PRUNE, o->name, 0, 0, CAIRN_PRUNEREC_MAX,
	                          &text);
	if (r == -ENOENT)
		return 0; /* finished meanwhile */
	if (r < 0)
		return r;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 4;
		struct cairn_prunerec *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct cairn_prunerec *rec = &l->v[l->n];
	*rec = (struct cairn_prunerec){ 0 };
	snprintf(rec->name, sizeof(rec->name), "%.32s", o->name);
	if ((r = cairn_prunerec__parse(rec, (const char *)text.data, text.len)) < 0)
		return unparsable(l, o->name, &text, r);
	rec->authentic =
	        rec->has_mac && mac_checks(l->repo, rec->name, &text, rec->mac_at, rec->mac);
	l->n++;
	return 0;
}

static int list_records(struct records *l, struct cairn_prunerec **out, size_t *n)
{
	int r = cairn_storage_list(l->repo->st, CAIRN_OBJ_PRUNE, one_record, l);
	if (r < 0) {
		cairn_repo__records_free(l->v, l->n);
		return r;
	}
	*out = l->v;
	*n = l->n;
	return 0;
}

int cairn_repo__records(cairn_repo *repo, struct cairn_prunerec **out, size_t *n)
{
	struct records l = { .repo = repo };
	return list_records(&l, out, n);
}

int cairn_repo_check_prune_records(cairn_repo *repo, void (*bad)(const char *msg, void *payload),
                                   void *payload)
{
	struct records l = { .repo = repo, .bad = bad, .payload = payload };
	struct cairn_prunerec *v = NULL;
	size_t n = 0;
	int r = list_records(&l, &v, &n);
	cairn_repo__records_free(v, n);
	return r < 0 ? r : (int)n;
}

void cairn_repo__records_free(struct cairn_prunerec *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		cairn_prunerec__release(&v[i]);
	free(v);
}

int cairn_repo__record_put(cairn_repo *repo, const struct cairn_prunerec *rec)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	uint8_t mac[CAIRN_KEY_SIZE];
	char hex[2 * CAIRN_KEY_SIZE + 1];
	if (repo->keys.write_only)
		return cairn_err_set(-EPERM, "a prune record needs an admin key");
	int r = cairn_prunerec__format(rec, &text);
	if (r >= 0)
		r = record_mac(repo, rec->name, text.data, text.len, mac);
	if (r >= 0) {
		cairn_hex(hex, mac, sizeof(mac));
		r = cairn_buf_printf(&text, "mac = %s\n", hex);
	}
	return r < 0 ? r
	             : cairn_storage_put(repo->st, CAIRN_OBJ_PRUNE, rec->name, text.data, text.len);
}

/* ---- what a writer learns ---------------------------------------------------- */

/* Add a pack to the idset payload. */
static int add_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	(void)size;
	return cairn_idset_add(payload, pack, 0) < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

/* The packs no index file names that this writer's index holds (adopted at
 * open, or indexed by a writer killed on this cache) were unused, and a prune
 * may have chosen them: it waited for the writers whose locks it saw, not for
 * one that had none yet. So once the lock is held and the records are
 * learned, those a record names or the storage no longer holds leave the index
 * and the list to name: nothing is deduplicated against them, and no index
 * file names a pack that goes. Under doomed_lock. */
static int recheck_adopted(cairn_repo *repo)
{
	_cleanup_(cairn_idset_release) struct cairn_idset present;
	_cleanup_free_ struct cairn_id *gone = NULL;
	const struct cairn_id *id;
	size_t n = 0;
	cairn_idset_init(&present);
	int r = cairn_repo__foreach_orphan(repo, add_pack, &repo->adopted);
	if (r < 0 || repo->adopted.count == 0)
		return r;
	r = cairn_repo_foreach_pack(repo, add_pack, &present);
	if (r >= 0 && !(gone = calloc(repo->adopted.count, sizeof(*gone))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	for (size_t pos = 0; r >= 0 && cairn_idset_next(&repo->adopted, &pos, &id);)
		if (!cairn_idset_has(&present, id) || cairn_idset_has(&repo->doomed, id))
			gone[n++] = *id;
	if (r >= 0 && n)
		r = cairn_index__replace_packs(repo->index, gone, n, NULL, 0);
	if (r >= 0 && n)
		r = cairn_repo__unnamed_forget(repo, gone, n);
	if (r >= 0) {
		cairn_idset_release(&repo->adopted);
		cairn_idset_init(&repo->adopted);
		atomic_store(&repo->names_held, false);
	}
	return r;
}

/* Add the packs of every prune record to repo->doomed; final: the caller holds
 * its lock, so what it learned now is all it needs to know (see repo.h). */
static int load_doomed(cairn_repo *repo, bool final)
{
	struct cairn_prunerec *v = NULL;
	size_t n = 0;
	int r = 0;
	if (atomic_load(&repo->doomed_known))
		return 0;
	pthread_mutex_lock(&repo->doomed_lock);
	if (!atomic_load(&repo->doomed_known) && !repo->offline)
		r = cairn_repo__records(repo, &v, &n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		for (size_t j = 0; r >= 0 && j < v[i].npacks; j++)
			if (cairn_idset_add(&repo->doomed, &v[i].packs[j], 0) < 0)
				r = cairn_err_set(-ENOMEM, "out of memory");
	if (r >= 0 && final && repo->index)
		r = recheck_adopted(repo);
	if (r >= 0 && final)
		atomic_store(&repo->doomed_known, true);
	if (r >= 0 && repo->index)
		cairn_index__set_doomed(repo->index, &repo->doomed);
	pthread_mutex_unlock(&repo->doomed_lock);
	cairn_repo__records_free(v, n);
	return r;
}

int cairn_repo__learn_doomed(cairn_repo *repo)
{
	return load_doomed(repo, true);
}

int cairn_repo__peek_doomed(cairn_repo *repo)
{
	return load_doomed(repo, false);
}

int cairn_repo__doom(cairn_repo *repo, const struct cairn_id *packs, size_t n)
{
	int r = 0;
	pthread_mutex_lock(&repo->doomed_lock);
	for (size_t i = 0; r >= 0 && i < n; i++)
		if (cairn_idset_add(&repo->doomed, &packs[i], 0) < 0)
			r = cairn_err_set(-ENOMEM, "out of memory");
	if (repo->index)
		cairn_index__set_doomed(repo->index, &repo->doomed);
	pthread_mutex_unlock(&repo->doomed_lock);
	return r;
}

bool cairn_repo__doomed(cairn_repo *repo, const struct cairn_id *pack)
{
	pthread_mutex_lock(&repo->doomed_lock);
	bool d = cairn_idset_has(&repo->doomed, pack);
	pthread_mutex_unlock(&repo->doomed_lock);
	return d;
}

/* ---- what prune does with them ------------------------------------------------ */

static bool lock_live(const struct cairn_lock_info *v, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return !v[i].stale && !v[i].dead;
	return false;
}

/* The holders a record waits for: the locks live now but the caller's and
 * mounts (which never write). */
static int live_holders(const struct cairn_lock_info *v, size_t n, const cairn_lock *own,
                        struct cairn_prunerec *rec)
{
	free(rec->wait);
	rec->wait = calloc(n ? n : 1, sizeof(*rec->wait));
	rec->nwait = 0;
	if (!rec->wait)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		if (!v[i].stale && !v[i].dead && v[i].kind != CAIRN_LOCK_MOUNT &&
		    (!own || strcmp(v[i].name, cairn_lock_name(own)) != 0))
			memcpy(rec->wait[rec->nwait++], v[i].name, CAIRN_LOCK_NAME_SIZE);
	rec->wait_known = true;
	return 0;
}

int cairn_repo__record_wait(cairn_repo *repo, const cairn_lock *own, struct cairn_prunerec *rec)
{
	_cleanup_free_ struct cairn_lock_info *v = NULL;
	size_t n = 0;
	int r = cairn_lock_list(repo->st, &v, &n);
	if (r >= 0)
		r = live_holders(v, n, own, rec);
	return r < 0 ? r : cairn_repo__record_put(repo, rec);
}

static int present_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct cairn_pending *p = payload;
	uint64_t *pos = cairn_idset_get(&p->index, pack);
	if (pos) {
		p->packs[*pos].present = true;
		p->packs[*pos].size = size;
	}
	return 0;
}

static int add_pending_pack(struct cairn_pending *p, const struct cairn_id *id, size_t rec)
{
	if (cairn_idset_has(&p->index, id))
		return 0; /* in two records */
	if (p->npacks == p->cap) {
		size_t cap = p->cap ? 2 * p->cap : 16;
		struct cairn_pending_pack *v = reallocarray(p->packs, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		p->packs = v;
		p->cap = cap;
	}
	p->packs[p->npacks] = (struct cairn_pending_pack){ .id = *id, .rec = rec };
	return cairn_idset_add(&p->index, id, p->npacks++) < 0
	               ? cairn_err_set(-ENOMEM, "out of memory")
	               : 0;
}

/* The headers of the pending packs still in the storage, and their blobs. */
static int read_headers(cairn_repo *repo, struct cairn_pending *p)
{
	int r = cairn_repo_foreach_pack(repo, present_pack, p);
	for (size_t i = 0; r >= 0 && i < p->npacks; i++) {
		struct cairn_pending_pack *k = &p->packs[i];
		if (!k->present)
			continue;
		if ((r = cairn_repo__pack_entries_sized(repo, &k->id, k->size, &k->e, &k->n)) < 0) {
			/* Unreadable: nothing can be found in it, and it stays (check says so). */
			cairn_repo__warn(repo, "leaving an unreadable pack alone: %s",
			                 cairn_err_msg());
			k->present = false;
			r = 0;
			continue;
		}
		for (size_t j = 0; r >= 0 && j < k->n; j++)
			if (cairn_idset_add(&p->blobs, &k->e[j].id,
			                    i * (uint64_t)CAIRN_PACK_MAX_ENTRIES + j) < 0)
				r = cairn_err_set(-ENOMEM, "out of memory");
	}
	return r;
}

/* A record no admin key made (a forged one, or one of a cairn before records
 * had a MAC) deletes nothing: it is left out, and removed unless this is a dry
 * run. Its packs are judged like any other: one that left the index files is
 * found on disk and indexed again from its header. */
static int drop_forged(cairn_repo *repo, struct cairn_pending *p, bool dry_run)
{
	size_t k = 0;
	int r = 0;
	for (size_t i = 0; r >= 0 && i < p->nrecs; i++) {
		struct cairn_prunerec *rec = &p->recs[i];
		if (rec->authentic) {
			p->recs[k++] = *rec;
			continue;
		}
		cairn_repo__warn(repo, "%s prune record 'prune/%s': no admin key wrote it",
		                 dry_run ? "would remove" : "removing", rec->name);
		if (!dry_run &&
		    (r = cairn_storage_remove(repo->st, CAIRN_OBJ_PRUNE, rec->name)) == -ENOENT)
			r = 0;
		cairn_prunerec__release(rec);
	}
	for (size_t i = k; i < p->nrecs; i++)
		p->recs[i] = (struct cairn_prunerec){ 0 };
	p->nrecs = k;
	return r;
}

static int load_records(cairn_repo *repo, const cairn_lock *own, bool dry_run,
                        struct cairn_pending *p)
{
	_cleanup_free_ struct cairn_lock_info *locks = NULL;
	size_t nlocks = 0;
	*p = (struct cairn_pending){ 0 };
	cairn_idset_init(&p->index);
	cairn_idset_init(&p->blobs);
	struct records l = { .repo = repo, .admin = !repo->keys.write_only };
	int r = list_records(&l, &p->recs, &p->nrecs);
	if (r >= 0)
		r = drop_forged(repo, p, dry_run);
	if (r < 0 || p->nrecs == 0)
		return r;
	if (!(p->ripe = calloc(p->nrecs, sizeof(*p->ripe))))
		return cairn_err_set(-ENOMEM, "out of memory");
	if ((r = cairn_lock_list(repo->st, &locks, &nlocks)) < 0)
		return r;
	for (size_t i = 0; r >= 0 && i < p->nrecs; i++) {
		struct cairn_prunerec *rec = &p->recs[i];
		/* A prune killed before it listed the locks: whoever holds one now
		 * may have started before the record, so all of them are waited for
		 * (a dry run only says the record is not done). */
		if (!rec->wait_known && !dry_run &&
		    ((r = live_holders(locks, nlocks, own, rec)) < 0 ||
		     (r = cairn_repo__record_put(repo, rec)) < 0))
			break;
		p->ripe[i] = rec->wait_known;
		for (size_t j = 0; j < rec->nwait; j++)
			p->ripe[i] &= !lock_live(locks, nlocks, rec->wait[j]);
		for (size_t j = 0; r >= 0 && j < rec->npacks; j++)
			r = add_pending_pack(p, &rec->packs[j], i);
	}
	return r < 0 ? r : read_headers(repo, p);
}

/* A copy of a blob in a pending pack stored since (by a prune's repack or a
 * backup that knew of the record) is where the index must place the blob, so
 * that needed() sees it: a writer's own index does (cairn_index__set_doomed), a
 * cache of a remote storage filled from index files is filled again knowing
 * the records. */
static int place_copies(cairn_repo *repo, const struct cairn_pending *p, bool dry_run)
{
	bool ripe = false, rebuilt;
	for (size_t i = 0; i < p->nrecs; i++)
		ripe |= p->ripe[i];
	int r = cairn_repo__learn_doomed(repo);
	for (size_t i = 0; r >= 0 && i < p->npacks; i++)
		r = cairn_repo__doom(repo, &p->packs[i].id, 1);
	if (r >= 0 && ripe && !dry_run && repo->cache)
		r = cairn_repo__load_index_files(repo, true, &rebuilt);
	return r;
}

int cairn_repo__pending_load(cairn_repo *repo, const cairn_lock *own, bool dry_run,
                             struct cairn_pending *p)
{
	int r = load_records(repo, own, dry_run, p);
	return r < 0 || p->nrecs == 0 ? r : place_copies(repo, p, dry_run);
}

void cairn_repo__pending_release(struct cairn_pending *p)
{
	for (size_t i = 0; i < p->npacks; i++)
		free(p->packs[i].e);
	free(p->packs);
	free(p->ripe);
	cairn_repo__records_free(p->recs, p->nrecs);
	cairn_idset_release(&p->index);
	cairn_idset_release(&p->blobs);
	*p = (struct cairn_pending){ 0 };
}

bool cairn_repo__pending_has_pack(const struct cairn_pending *p, const struct cairn_id *pack)
{
	return cairn_idset_has(&p->index, pack);
}

int cairn_repo__pending_lookup(const struct cairn_pending *p, const struct cairn_id *id,
                               struct cairn_loc *out)
{
	const uint64_t *v = cairn_idset_get(&p->blobs, id);
	if (!v)
		return -ENOENT;
	const struct cairn_pending_pack *k = &p->packs[*v / CAIRN_PACK_MAX_ENTRIES];
	const struct cairn_pack_entry *e = &k->e[*v % CAIRN_PACK_MAX_ENTRIES];
	*out = (struct cairn_loc){ k->id, e->offset, e->stored_len, e->raw_len, e->type };
	return 0;
}

/* A pending pack of a ripe record holding a used blob that has no other home
 * is kept: a backup that started before the record used it (DESIGN.md "Prune
 * while backups run"). A blob the index places in a pack that stays (a prune
 * moved it, or a backup that knew of the record stored it again) does not keep
 * it. */
static bool needed(cairn_repo *repo, const struct cairn_pending *p,
                   const struct cairn_pending_pack *k, const struct cairn_idset *used)
{
	for (size_t j = 0; j < k->n; j++) {
		struct cairn_loc loc;
		if (!cairn_idset_has(used, &k->e[j].id))
			continue;
		if (cairn_index__get(repo->index, &k->e[j].id, &loc) < 0 ||
		    cairn_idset_has(&p->index, &loc.pack))
			return true;
	}
	return false;
}

/* Kept packs a listing found but the index lacks go into it and an index file;
 * going ones out of both, the index files first (FORMAT.md §12): from then on
 * no reader that refreshes finds them. */
static int settle(cairn_repo *repo, struct cairn_pending *p, const struct cairn_idset *go)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < p->npacks; i++) {
		struct cairn_pending_pack *k = &p->packs[i];
		if (!k->present || !p->ripe[k->rec] || cairn_idset_has(go, &k->id) ||
		    (r = cairn_index__has_pack(repo->index, &k->id, NULL)) != 0)
			continue;
		r = cairn_repo__index_pack(repo, &k->id, k->size, k->e, k->n);
	}
	if (r >= 0)
		r = cairn_repo__name_packs(repo);
	if (r < 0 || go->count == 0)
		return r;
	_cleanup_free_ struct cairn_id *v = calloc(go->count, sizeof(*v));
	const struct cairn_id *id;
	size_t n = 0;
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t pos = 0; cairn_idset_next(go, &pos, &id);)
		v[n++] = *id;
	if ((r = cairn_repo__rewrite_index_files(repo, go, NULL, 0)) >= 0)
		r = cairn_index__replace_packs(repo->index, v, n, NULL, 0);
	return r;
}

static void step(void (*on_step)(const char *, void *), void *payload, const char *name)
{
	if (on_step)
		on_step(name, payload);
}

int cairn_repo__pending_finish(cairn_repo *repo, struct cairn_pending *p,
                               const struct cairn_idset *used, cairn_lock *lock,
                               void (*on_step)(const char *name, void *payload), void *payload,
                               uint64_t *packs, uint64_t *bytes)
{
	_cleanup_(cairn_idset_release) struct cairn_idset go;
	cairn_idset_init(&go);
	int r = 0;
	bool any = false;
	*packs = *bytes = 0;
	for (size_t i = 0; i < p->nrecs; i++)
		any |= p->ripe[i];
	if (!any)
		return 0;
	for (size_t i = 0; r >= 0 && i < p->npacks; i++) {
		const struct cairn_pending_pack *k = &p->packs[i];
		if (k->present && p->ripe[k->rec] && !needed(repo, p, k, used) &&
		    cairn_idset_add(&go, &k->id, 0) < 0)
			r = cairn_err_set(-ENOMEM, "out of memory");
	}
	if (r >= 0 && lock)
		r = cairn_lock_refresh(lock);
	if (r >= 0)
		r = settle(repo, p, &go);
	if (r >= 0 && lock)
		r = cairn_lock_refresh(lock);
	if (r >= 0)
		step(on_step, payload, "after-index");
	const struct cairn_id *id;
	for (size_t pos = 0; r >= 0 && cairn_idset_next(&go, &pos, &id);) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		if (repo->cache)
			cairn_cache__drop_pack(repo->cache, id);
		if ((r = cairn_storage_remove(repo->st, CAIRN_OBJ_PACK, hex)) < 0) {
			r = cairn_err_wrap(r, "cannot delete pack %s", hex);
			break;
		}
		(*packs)++;
		*bytes += p->packs[*cairn_idset_get(&p->index, id)].size;
		step(on_step, payload, "mid-delete");
	}
	for (size_t i = 0; r >= 0 && i < p->nrecs; i++)
		if (p->ripe[i])
			r = cairn_storage_remove(repo->st, CAIRN_OBJ_PRUNE, p->recs[i].name);
	return r;
}
