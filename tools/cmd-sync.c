/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn sync: copy a repository from one storage to another, a local directory
 * or an S3 bucket either way (docs/S3.md §2-§4). */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"
#include "cli.h"
#include "maint.h"
#include "interrupt.h"

static const char usage[] =
        "usage: cairn sync [OPTIONS] DEST                 (from -r or CAIRN_REPO)\n"
        "       cairn sync [OPTIONS] --from SOURCE -r DEST\n"
        "\n"
        "Copies a repository to another storage: SOURCE and DEST are each a directory\n"
        "or s3://BUCKET[/PREFIX]. Every config, key, pack, index file and snapshot\n"
        "DEST lacks is copied, packs before the index files and snapshots that need\n"
        "them; a pack is checked against its name (SHA-256) whenever its bytes pass\n"
        "through here. What a local repository has copied is remembered in its index,\n"
        "so a sync with nothing new makes a few requests, and a sync that was\n"
        "interrupted finishes the job when run again. Copied into a directory, the\n"
        "repository's index is rebuilt and every snapshot verified.\n"
        "\n"
        "  --verify                list DEST and compare every object (size, and for\n"
        "                          S3 the MD5 or multipart ETag)\n"
        "  --delete                afterwards, remove from DEST the snapshots, index\n"
        "                          files, packs and keys SOURCE no longer has (never\n"
        "                          a pack an index file of either copy names)\n"
        "  --from SOURCE           copy from SOURCE into -r DEST (new, empty, or holding\n"
        "                          this repository)\n"
        "\n"
        "S3 settings (--s3-endpoint, --s3-region, --s3-profile, --s3-addressing,\n"
        "--s3-connections, --s3-lock-days, --s3-lock-mode) are the global options of\n"
        "'cairn --help'. Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY\n"
        "and AWS_SESSION_TOKEN, or from the profile; never from the command line.\n";

enum { OPT_VERIFY = OPT_FIRST_COMMAND_OPT, OPT_DELETE, OPT_FROM };

#define SMALL_MAX 65536 /* config and key files */
#define SNAPSHOT_FILE_MAX (CAIRN_SNAPSHOT_MAX_SIZE + 4096u)
#define FILE_MAX (8ull << 30)

/* One object of a repository, in a listing. */
struct obj {
	int kind;
	char name[CAIRN_OBJ_NAME_MAX];
	uint64_t size;
	char etag[129]; /* the listing's ETag, or the MD5 of config and keys */
};
struct objs {
	struct obj *v;
	size_t n, cap;
};

struct sync {
	cairn_storage *src, *dst;
	cairn_repo *repo;  /* the local side's repository (its index keeps the state) */
	bool state_in_src; /* the state table names dst (a push), else src (a pull) */
	cairn_lock *src_lock, *dst_lock;
	char table[CLI_SYNC_TABLE_MAX]; /* "" when neither side is local */
	bool verify, del;
	struct obj dst_cfg; /* DEST's config (etag: its MD5); name "" and size 0: none */
	bool dst_has_cfg;
	struct objs have, there; /* SOURCE's objects, DEST's (when listed) */
	bool listed;
	struct cairn_idset named; /* packs a standing index file names (names_check) */
	bool named_partly;        /* an index file could not be read: named lacks some */
	_Atomic uint64_t objects, bytes, present, deleted;
};

struct sync_opts {
	const char *from;
	bool verify, del;
};

static int handle_opt(int c, const char *arg, void *payload)
{
	struct sync_opts *o = payload;
	switch (c) {
	case OPT_VERIFY:
		o->verify = true;
		return 0;
	case OPT_DELETE:
		o->del = true;
		return 0;
	case OPT_FROM:
		o->from = arg;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

static bool remote(const cairn_storage *st)
{
	return cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE;
}

/* ---- object lists ---------------------------------------------------------- */

static int objs_add(struct objs *l, int kind, const char *name, uint64_t size, const char *etag)
{
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 64;
		struct obj *v = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	struct obj *o = &l->v[l->n++];
	*o = (struct obj){ .kind = kind, .size = size };
	snprintf(o->name, sizeof(o->name), "%s", name);
	snprintf(o->etag, sizeof(o->etag), "%s", etag ? etag : "");
	return 0;
}

static int by_kind_name(const void *a, const void *b)
{
	const struct obj *x = a, *y = b;
	return x->kind != y->kind ? x->kind - y->kind : strcmp(x->name, y->name);
}

static void objs_sort(struct objs *l)
{
	if (l->n > 1)
		qsort(l->v, l->n, sizeof(*l->v), by_kind_name);
}

static const struct obj *objs_find(const struct objs *l, int kind, const char *name)
{
	struct obj key = { .kind = kind };
	snprintf(key.name, sizeof(key.name), "%s", name);
	return l->n ? bsearch(&key, l->v, l->n, sizeof(key), by_kind_name) : NULL;
}

static bool small(int kind)
{
	return kind == CAIRN_OBJ_CONFIG || kind == CAIRN_OBJ_KEY;
}

/* Config and keys may be replaced under their name (a new repository, `key
 * passwd` elsewhere): they are compared by MD5, so their content is fetched. */
static int md5_of(cairn_storage *st, int kind, const char *name, char hex[33])
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	uint8_t md[16];
	int r = cairn_storage_get(st, kind, name, 0, 0, SMALL_MAX, &b);
	if (r < 0)
		return r;
	EVP_Digest(b.data, b.len, md, NULL, EVP_md5(), NULL);
	cairn_hex(hex, md, sizeof(md));
	return 0;
}

struct listing {
	cairn_storage *st;
	struct objs *l;
	int kind;
	bool md5; /* fill in the MD5 of small objects (etags of local files are "") */
};

static int listed(const struct cairn_obj_info *o, void *payload)
{
	struct listing *ls = payload;
	char md5[33];
	if (small(ls->kind) && ls->md5 && !o->etag[0]) {
		int r = md5_of(ls->st, ls->kind, o->name, md5);
		if (r == -ENOENT)
			return 0; /* removed meanwhile */
		if (r < 0)
			return r;
		return objs_add(ls->l, ls->kind, o->name, o->size, md5);
	}
	return objs_add(ls->l, ls->kind, o->name, o->size, o->etag);
}

/* Snapshots before index files before packs: a writer makes packs durable before
 * the index files and snapshots that name them (FORMAT.md §8, §12), so whatever
 * is listed finds what it needs in the listings that follow. */
static int list_all(cairn_storage *st, struct objs *l, bool md5)
{
	static const int order[] = { CAIRN_OBJ_SNAPSHOT, CAIRN_OBJ_INDEX, CAIRN_OBJ_PACK,
		                     CAIRN_OBJ_KEY };
	struct cairn_obj_info info;
	char hex[33] = "";
	int r = cairn_storage_stat(st, CAIRN_OBJ_CONFIG, "", &info);
	if (r >= 0 && md5 && !info.etag[0])
		r = md5_of(st, CAIRN_OBJ_CONFIG, "", hex);
	if (r >= 0)
		r = objs_add(l, CAIRN_OBJ_CONFIG, "", info.size, info.etag[0] ? info.etag : hex);
	if (r == -ENOENT)
		r = 0;
	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(order); i++) {
		struct listing ls = { st, l, order[i], md5 };
		r = cairn_storage_list(st, order[i], listed, &ls);
	}
	if (r >= 0)
		objs_sort(l);
	return r;
}

/* ---- the state of a copy (FORMAT.md §7.1) ------------------------------------ */

static void table_name(struct sync *sy)
{
	cli_sync_table(sy->table, sy->state_in_src ? sy->dst : sy->src);
}

static int state_put(struct sync *sy, const struct obj *o)
{
	char rel[CAIRN_OBJ_REL_MAX], v[160];
	int r = cairn_obj_rel(rel, o->kind, o->name);
	if (r < 0 || !sy->table[0])
		return r;
	int n = snprintf(v, sizeof(v), "%llu %s", (unsigned long long)o->size,
	                 o->etag[0] ? o->etag : "-");
	return cairn_repo_state_put(sy->repo, sy->table, rel, strlen(rel), v, (size_t)n);
}

/* 1 if the state records o with its size (and for config and keys its MD5). */
static int state_has(struct sync *sy, const struct obj *o)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	char rel[CAIRN_OBJ_REL_MAX], text[160], *end;
	int r = cairn_obj_rel(rel, o->kind, o->name);
	if (r >= 0)
		r = cairn_repo_state_get(sy->repo, sy->table, rel, strlen(rel), &v);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (v.len >= sizeof(text))
		return 0;
	memcpy(text, v.data, v.len);
	text[v.len] = '\0';
	unsigned long long got = strtoull(text, &end, 10);
	if (*end != ' ' || got != o->size)
		return 0;
	return !small(o->kind) || strcmp(end + 1, o->etag) == 0;
}

/* ---- copying one object --------------------------------------------------------- */

/* Local to remote: streamed from the file. A pack or snapshot that prune removed
 * during the sync is skipped. */
static int upload(struct sync *sy, const struct obj *o)
{
	uint64_t size;
	int fd = -1;
	int r = cairn_storage_open_file(sy->src, o->kind, o->name, &fd, &size);
	if (r == -ENOENT && !small(o->kind)) {
		log_info("%s/%s was removed during the sync (prune?): skipped",
		         cairn_obj_kind_name(o->kind), o->name);
		return 0;
	}
	if (r >= 0)
		r = cairn_storage_put_file(sy->dst, o->kind, o->name, fd, size);
	if (fd >= 0)
		close(fd);
	return r < 0 ? r : 1;
}

/* Anything else: through a temp file in the destination's tmp/, the SHA-256 of
 * a pack checked against its name (FORMAT.md §6.1) before it is put in place. */
static int transfer_once(struct sync *sy, const struct obj *o, const char *again)
{
	char tmp[4096];
	uint8_t sha[32];
	uint64_t size = 0;
	snprintf(tmp, sizeof(tmp), "%s/sync.tmp.XXXXXX", cairn_storage_tmp_dir(sy->dst));
	int r = cairn_mkdir_p(cairn_storage_tmp_dir(sy->dst), 0700);
	_cleanup_close_ int fd = r < 0 ? -1 : mkostemp(tmp, O_CLOEXEC);
	if (r >= 0 && fd < 0)
		r = cairn_err_set(-errno, "cannot create '%s': %s", tmp, strerror(errno));
	if (r >= 0)
		r = cairn_storage_get_file(sy->src, o->kind, o->name, fd,
		                           o->kind == CAIRN_OBJ_PACK ? FILE_MAX : SNAPSHOT_FILE_MAX,
		                           sha, &size);
	if (r >= 0 && size != o->size)
		r = cairn_err_set(-EPROTO,
		                  "%s/%s as read from %s%s is %llu bytes, not the %llu listed "
		                  "(changed during the copy, or damaged on the way)",
		                  cairn_obj_kind_name(o->kind), o->name, cairn_storage_url(sy->src),
		                  again, (unsigned long long)size, (unsigned long long)o->size);
	if (r >= 0 && o->kind == CAIRN_OBJ_PACK) {
		char hex[65];
		cairn_hex(hex, sha, sizeof(sha));
		if (strcmp(hex, o->name) != 0)
			r = cairn_err_set(-EBADMSG,
			                  "pack %s from %s%s is corrupt: its SHA-256 is %s",
			                  o->name, cairn_storage_url(sy->src), again, hex);
	}
	if (r >= 0)
		r = cairn_storage_put_tmp(sy->dst, o->kind, o->name, tmp, fd, size);
	if (r < 0 && fd >= 0)
		unlink(tmp);
	return r < 0 ? r : 1;
}

/* A copy from a remote SOURCE that does not come out as listed (its size, a
 * pack's SHA-256) is fetched again, once: one damaged reply is no reason to
 * fail the sync, nor to call the object corrupt. */
static int transfer(struct sync *sy, const struct obj *o)
{
	int r = transfer_once(sy, o, "");
	if ((r == -EBADMSG || r == -EPROTO) && remote(sy->src)) {
		log_debug("%s: fetching it again", cairn_err_msg());
		r = transfer_once(sy, o, " (read twice)");
	}
	return r;
}

static int copy_one(struct sync *sy, const struct obj *o)
{
	int r = interrupt_check();
	if (r >= 0)
		r = !remote(sy->src) && remote(sy->dst) ? upload(sy, o) : transfer(sy, o);
	if (r == -ENOENT) /* forgotten, or replaced by a prune, since the listing */
		return cairn_err_set(r,
		                     "%s/%s went from %s during the sync (a forget or prune "
		                     "ran beside it): run the sync again",
		                     cairn_obj_kind_name(o->kind), o->name,
		                     cairn_storage_url(sy->src));
	if (r <= 0)
		return r;
	log_debug("copied %s/%s (%llu bytes)", cairn_obj_kind_name(o->kind), o->name,
	          (unsigned long long)o->size);
	/* Recorded only now: a killed sync copies this object again, never skips it. */
	if (sy->state_in_src && (r = state_put(sy, o)) < 0)
		return r;
	atomic_fetch_add(&sy->objects, 1);
	atomic_fetch_add(&sy->bytes, o->size);
	return 0;
}

/* ---- planning ------------------------------------------------------------------ */

/* Does DEST hold it as SOURCE does? Packs, index files and snapshots are named by
 * their content, so the same size is enough unless --verify. */
static int matches(struct sync *sy, const struct obj *it, const struct obj *there)
{
	char etag[129];
	uint64_t size;
	int fd = -1;
	if (!there || there->size != it->size)
		return 0;
	if (small(it->kind))
		return strcmp(there->etag, it->etag) == 0;
	if (!sy->verify || !there->etag[0] || remote(sy->src))
		return 1;
	int r = cairn_storage_open_file(sy->src, it->kind, it->name, &fd, &size);
	if (r == -ENOENT)
		return 1;
	if (r >= 0)
		r = cairn_storage_etag(sy->dst, fd, size, etag);
	if (fd >= 0)
		close(fd);
	if (r >= 0 && (r = strcmp(etag, there->etag) == 0) == 0)
		log_warn("%s/%s differs in %s: copying it again", cairn_obj_kind_name(it->kind),
		         it->name, cairn_storage_url(sy->dst));
	return r;
}

/* want[i] for SOURCE object i that DEST lacks. */
static int plan(struct sync *sy, bool *want)
{
	for (size_t i = 0; i < sy->have.n; i++) {
		const struct obj *it = &sy->have.v[i];
		int r;
		if (sy->listed) {
			const struct obj *there = objs_find(&sy->there, it->kind, it->name);
			r = matches(sy, it, there);
			/* DEST holds it: remembered, so the next run need not list */
			if (r == 1 && sy->state_in_src) {
				int s = state_put(sy, there);
				r = s < 0 ? s : r;
			}
		} else {
			r = state_has(sy, it);
		}
		if (r < 0)
			return r;
		want[i] = r == 0;
		if (!want[i])
			atomic_fetch_add(&sy->present, 1);
	}
	return 0;
}

struct jobs {
	struct sync *sy;
	const struct obj **v;
	int (*fn)(struct sync *sy, const struct obj *o);
};

static int run_job(size_t i, void *payload)
{
	struct jobs *j = payload;
	return j->fn(j->sy, j->v[i]);
}

/* Run fn over the objects of one kind of l that are marked. */
static int run_kind(struct sync *sy, const struct objs *l, const bool *want, int kind,
                    int (*fn)(struct sync *sy, const struct obj *o))
{
	_cleanup_free_ const struct obj **v = calloc(l->n ? l->n : 1, sizeof(*v));
	size_t n = 0;
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n; i++)
		if (want[i] && l->v[i].kind == kind)
			v[n++] = &l->v[i];
	struct jobs j = { sy, v, fn };
	unsigned threads = cairn_storage_concurrency(remote(sy->dst) ? sy->dst : sy->src);
	return cairn_parallel(n, threads, run_job, &j);
}

static int delete_one(struct sync *sy, const struct obj *o)
{
	char rel[CAIRN_OBJ_REL_MAX];
	int r = interrupt_check();
	if (r < 0)
		return r;
	r = cairn_storage_remove(sy->dst, o->kind, o->name);
	if (r >= 0 && sy->table[0] && sy->state_in_src && cairn_obj_rel(rel, o->kind, o->name) >= 0)
		r = cairn_repo_state_del(sy->repo, sy->table, rel, strlen(rel));
	if (r == -ENOENT)
		r = 0;
	if (r >= 0)
		atomic_fetch_add(&sy->deleted, 1);
	return r;
}

/* ---- what the index files name (FORMAT.md §12) ----------------------------------- */

static int mark_unfinished(struct sync *sy, bool on);

struct idx_file {
	const struct obj *o;
	bool in_src;
	struct cairn_id *packs, *sup;
	size_t npacks, nsup;
};

/* An index file, from the local side when there is one: once the data is
 * copied, DEST holds every file SOURCE listed. */
static int read_names(struct sync *sy, struct idx_file *f)
{
	cairn_storage *st = f->in_src && !remote(sy->src) ? sy->src : sy->dst;
	int r = cairn_repo_index_file_names(sy->repo, st, f->o->name, &f->packs, &f->npacks,
	                                    &f->sup, &f->nsup);
	if (r == -ENOMEM || r == -EHOSTUNREACH || r == -EINTR)
		return r;
	if (r < 0) { /* check names it; its packs are not counted on below */
		log_warn("%s", cairn_err_msg());
		sy->named_partly = true;
	}
	return 0;
}

/* The index files SOURCE and DEST list, read. */
static int read_index_files(struct sync *sy, struct idx_file *v, size_t *n)
{
	int r = 0;
	for (size_t i = 0; r >= 0 && i < sy->have.n; i++)
		if (sy->have.v[i].kind == CAIRN_OBJ_INDEX) {
			v[*n] = (struct idx_file){ .o = &sy->have.v[i], .in_src = true };
			r = read_names(sy, &v[(*n)++]);
		}
	for (size_t i = 0; r >= 0 && i < sy->there.n; i++)
		if (sy->there.v[i].kind == CAIRN_OBJ_INDEX &&
		    !objs_find(&sy->have, CAIRN_OBJ_INDEX, sy->there.v[i].name)) {
			v[*n] = (struct idx_file){ .o = &sy->there.v[i] };
			r = read_names(sy, &v[(*n)++]);
		}
	return r;
}

/* Collect the packs that the index files standing in SOURCE or DEST name (not
 * those another file supersedes: a prune's leftovers, FORMAT.md §12), for
 * --delete to keep; and fail when one that SOURCE listed names a pack SOURCE's
 * listing lacks: the copy would look whole and be short of that pack. */
static int names_check(struct sync *sy)
{
	_cleanup_free_ struct idx_file *v = calloc(sy->have.n + sy->there.n + 1, sizeof(*v));
	struct cairn_idset sup;
	size_t n = 0;
	char lack[2][65] = { "", "" };
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	cairn_idset_init(&sup);
	int r = read_index_files(sy, v, &n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		for (size_t j = 0; r >= 0 && j < v[i].nsup; j++)
			r = cairn_idset_add(&sup, &v[i].sup[j], 0);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct cairn_id id;
		if (cairn_id_parse(&id, v[i].o->name) < 0 || cairn_idset_has(&sup, &id))
			continue;
		for (size_t j = 0; r >= 0 && j < v[i].npacks; j++) {
			char hex[65];
			cairn_hex(hex, v[i].packs[j].b, sizeof(v[i].packs[j].b));
			r = cairn_idset_add(&sy->named, &v[i].packs[j], 0);
			if (v[i].in_src && !lack[0][0] &&
			    !objs_find(&sy->have, CAIRN_OBJ_PACK, hex)) {
				snprintf(lack[0], sizeof(lack[0]), "%s", hex);
				snprintf(lack[1], sizeof(lack[1]), "%s", v[i].o->name);
			}
		}
	}
	for (size_t i = 0; i < n; i++) {
		free(v[i].packs);
		free(v[i].sup);
	}
	cairn_idset_release(&sup);
	if (r < 0 || !lack[0][0])
		return r;
	/* As an interrupted sync leaves it: no repository until a sync finishes. */
	if (!remote(sy->dst) && (r = mark_unfinished(sy, true)) < 0)
		return r;
	return cairn_err_set(-EPROTO,
	                     "%s's listing lacks pack %s that index file %.8s names: the copy is "
	                     "incomplete; run sync again",
	                     cairn_storage_url(sy->src), lack[0], lack[1]);
}

/* A pack of DEST that SOURCE's listing lacks goes with --delete, unless an index
 * file standing in either copy names it: a listing that left it out is no
 * reason to delete what the copy's snapshots may need. */
static bool keep_named(struct sync *sy, const struct obj *o)
{
	struct cairn_id id;
	if (o->kind != CAIRN_OBJ_PACK)
		return false;
	if (sy->named_partly) {
		log_warn("not deleting pack %s from %s: an index file could not be read", o->name,
		         cairn_storage_url(sy->dst));
		return true;
	}
	if (cairn_id_parse(&id, o->name) < 0 || !cairn_idset_has(&sy->named, &id))
		return false;
	log_warn("not deleting pack %s from %s: an index file names it, though %s did not list it",
	         o->name, cairn_storage_url(sy->dst), cairn_storage_url(sy->src));
	return true;
}

/* --delete, once everything else is copied: snapshots first, so DEST never has a
 * snapshot whose packs are gone; the config is never deleted. */
static int delete_phase(struct sync *sy)
{
	static const int order[] = { CAIRN_OBJ_SNAPSHOT, CAIRN_OBJ_INDEX, CAIRN_OBJ_PACK,
		                     CAIRN_OBJ_KEY };
	_cleanup_free_ bool *gone = calloc(sy->there.n ? sy->there.n : 1, sizeof(bool));
	if (!gone)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < sy->there.n; i++)
		gone[i] = sy->there.v[i].kind != CAIRN_OBJ_CONFIG &&
		          !objs_find(&sy->have, sy->there.v[i].kind, sy->there.v[i].name) &&
		          !keep_named(sy, &sy->there.v[i]);
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		int r = run_kind(sy, &sy->there, gone, order[k], delete_one);
		if (r < 0)
			return r;
	}
	return 0;
}

/* ---- the run --------------------------------------------------------------------- */

/* A local DEST is a new or empty directory, or one holding a repository (or what
 * an interrupted copy left of one): never someone else's files. Checked before
 * anything is asked of SOURCE. */
static int check_local_target(struct sync *sy)
{
	static const char *const ours[] = {
		"config", "index", "indexes",   "keys", "locks",
		"packs",  "prune", "snapshots", "tmp",  CAIRN_INCOMPLETE_FILE
	};
	const char *url = cairn_storage_url(sy->dst);
	_cleanup_closedir_ DIR *d = remote(sy->dst) ? NULL : opendir(url);
	char foreign[256] = "";
	bool repo = false;
	for (struct dirent *de; d && (de = readdir(d));) {
		bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
		for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
			known = known || strcmp(de->d_name, ours[i]) == 0;
		repo = repo || strcmp(de->d_name, "config") == 0;
		if (!known && !foreign[0])
			snprintf(foreign, sizeof(foreign), "%s", de->d_name);
	}
	if (foreign[0] && !repo)
		return cairn_err_set(-EEXIST,
		                     "'%s' is not empty and holds no repository (it has '%s'): "
		                     "copy into a new or empty directory",
		                     url, foreign);
	return 0;
}

/* DEST holds no config, or this repository's: a config never changes. One HEAD
 * (or, for a local DEST, a read of the small file). */
static int check_same(struct sync *sy, const struct obj *cfg)
{
	struct cairn_obj_info info;
	char md5[33] = "";
	int r = cairn_storage_stat(sy->dst, CAIRN_OBJ_CONFIG, "", &info);
	if (r == -ENOENT)
		return 0;
	if (r >= 0 && !info.etag[0])
		r = md5_of(sy->dst, CAIRN_OBJ_CONFIG, "", md5);
	if (r < 0)
		return r;
	sy->dst_has_cfg = true;
	sy->dst_cfg = (struct obj){ .kind = CAIRN_OBJ_CONFIG, .size = info.size };
	snprintf(sy->dst_cfg.etag, sizeof(sy->dst_cfg.etag), "%s", info.etag[0] ? info.etag : md5);
	if (info.size != cfg->size || strcmp(sy->dst_cfg.etag, cfg->etag) != 0)
		return cairn_err_set(-EEXIST, "'%s' holds another repository than %s",
		                     cairn_storage_url(sy->dst), cairn_storage_url(sy->src));
	return 0;
}

/* Open the repository (the password is checked before any pack is copied): a
 * local SOURCE, whose index keeps what was copied where; else DEST, once its
 * config and keys are there. */
static int open_repo(struct sync *sy, bool at_src)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION,
		                      .no_index = !at_src,
		                      .incomplete_ok = !at_src };
	const char *saved = cli.repo;
	cli.repo = cairn_storage_url(at_src ? sy->src : sy->dst);
	int r = cli_open_repo(&sy->repo, &ro);
	cli.repo = saved;
	if (r >= 0 && (at_src || !remote(sy->dst)))
		table_name(sy);
	return r;
}

/* The one cheap check of a run from a local repository: DEST has our config
 * (check_same) and the state recorded it: then nothing is listed. Returns 1
 * when trusted. */
static int trusted(struct sync *sy)
{
	if (!sy->state_in_src || !sy->table[0] || !sy->dst_has_cfg)
		return 0;
	return state_has(sy, &sy->dst_cfg);
}

/* Copied into a directory: index it from the packs, verify every snapshot, and
 * (state: a pull) record what SOURCE holds, so that copying back is cheap. */
static int finish_local(struct sync *sy, cairn_repo *repo, bool state)
{
	int r = cairn_repo_rebuild_index(repo);
	if (r < 0)
		return r;
	log_info("index rebuilt from %d %s", r, cli_plural((uint64_t)r, "pack", "packs"));
	for (size_t i = 0; i < sy->have.n; i++) {
		const struct obj *o = &sy->have.v[i];
		struct cairn_snapshot *s;
		struct cairn_id id;
		if (o->kind == CAIRN_OBJ_SNAPSHOT &&
		    ((r = cairn_id_parse(&id, o->name)) < 0 ||
		     (r = cairn_repo_snapshot_load(repo, &id, &s)) < 0))
			return cairn_err_wrap(r, "snapshot from %s", cairn_storage_url(sy->src));
		if (o->kind == CAIRN_OBJ_SNAPSHOT)
			cairn_snapshot_free(s);
		if (state && (r = state_put(sy, o)) < 0)
			return r;
	}
	return 0;
}

/* From a directory into one: DEST's index is a cache that nothing else brings
 * up to date (a local repository trusts its index), so once anything changed
 * it is rebuilt and every snapshot verified, as after a pull. */
static int finish_local_copy(struct sync *sy)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .incomplete_ok = true };
	_cleanup_repo_ cairn_repo *dst = NULL;
	if (!atomic_load(&sy->objects) && !atomic_load(&sy->deleted) && sy->dst_has_cfg)
		return 0;
	const char *saved = cli.repo;
	cli.repo = cairn_storage_url(sy->dst);
	int r = cli_open_repo(&dst, &ro);
	cli.repo = saved;
	return r < 0 ? r : finish_local(sy, dst, false);
}

static int lock_both(struct sync *sy)
{
	/* SOURCE shared (backups go on, prune waits), DEST exclusive: it is a copy
	 * being written, of no use to anyone else until the sync ends. A local
	 * side first: its conflicts are known without a request. */
	bool dst_first = remote(sy->src) && !remote(sy->dst);
	int r = 0;
	if (dst_first)
		r = cairn_lock_acquire(&sy->dst_lock, sy->dst, CAIRN_LOCK_EXCLUSIVE, "sync", 0);
	if (r >= 0)
		r = cairn_lock_acquire(&sy->src_lock, sy->src, CAIRN_LOCK_SHARED, "sync", 0);
	if (r >= 0 && !dst_first)
		r = cairn_lock_acquire(&sy->dst_lock, sy->dst, CAIRN_LOCK_EXCLUSIVE, "sync", 0);
	return r;
}

static int copy_small(struct sync *sy, const bool *want)
{
	int r = run_kind(sy, &sy->have, want, CAIRN_OBJ_CONFIG, copy_one);
	return r < 0 ? r : run_kind(sy, &sy->have, want, CAIRN_OBJ_KEY, copy_one);
}

/* Packs, then index files, then snapshots: DEST never holds an index file or a
 * snapshot whose packs are not there yet. */
static int copy_data(struct sync *sy, const bool *want)
{
	static const int order[] = { CAIRN_OBJ_PACK, CAIRN_OBJ_INDEX, CAIRN_OBJ_SNAPSHOT };
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		int r = run_kind(sy, &sy->have, want, order[k], copy_one);
		if (r < 0)
			return r;
	}
	return 0;
}

/* List SOURCE, and DEST unless the state of a local SOURCE can be trusted. */
/* What a killed sync left in DEST's tmp/: its temp files only (DEST is locked
 * exclusively, so no other sync is using them). */
static void clean_tmp(struct sync *sy)
{
	_cleanup_closedir_ DIR *d = opendir(cairn_storage_tmp_dir(sy->dst));
	for (struct dirent *de; d && (de = readdir(d));)
		if (strncmp(de->d_name, "sync.tmp.", 9) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
}

static int survey(struct sync *sy)
{
	int r = check_local_target(sy);
	if (r >= 0 && (r = lock_both(sy)) >= 0) {
		interrupt_catch("sync");
		clean_tmp(sy);
	}
	if (r >= 0 && (r = cairn_storage_abort_uploads(sy->dst, NULL, 0)) > 0)
		log_info("aborted %d abandoned uploads in %s", r, cairn_storage_url(sy->dst));
	if (r >= 0)
		r = list_all(sy->src, &sy->have, true);
	if (r >= 0)
		maint_test_point("sync-listed");
	const struct obj *cfg = r < 0 ? NULL : objs_find(&sy->have, CAIRN_OBJ_CONFIG, "");
	if (r >= 0 && !cfg)
		r = cairn_err_set(-ENOENT, "%s holds no cairn repository (no config)",
		                  cairn_storage_url(sy->src));
	if (r < 0 || (r = check_same(sy, cfg)) < 0)
		return r;
	sy->state_in_src = !remote(sy->src);
	if (sy->state_in_src && ((r = open_repo(sy, true)) < 0 || (r = trusted(sy)) < 0))
		return r;
	bool trust = r == 1;
	if (!trust && sy->table[0] && (r = cairn_repo_state_drop(sy->repo, sy->table)) < 0 &&
	    r != -ENOENT)
		return r;
	sy->listed = !trust || sy->verify || sy->del;
	/* A directory's config and keys by MD5 too, or they never match SOURCE's. */
	return sy->listed ? list_all(sy->dst, &sy->there, !remote(sy->dst)) : 0;
}

/* A new copy into a directory is marked unfinished from before its config
 * lands until it is whole (CAIRN_INCOMPLETE_FILE): an interrupted one is no
 * repository to anything but this sync run again. on: set, else cleared. */
static int mark_unfinished(struct sync *sy, bool on)
{
	char mark[PATH_MAX];
	const char *dir = cairn_storage_url(sy->dst);
	if (snprintf(mark, sizeof(mark), "%s/%s", dir, CAIRN_INCOMPLETE_FILE) >= (int)sizeof(mark))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	if (on) {
		static const char text[] = "a cairn sync into this directory has not finished\n";
		int r = cairn_mkdir_p(dir, 0700);
		return r < 0 ? r : cairn_file_write_atomic(mark, NULL, text, sizeof(text) - 1);
	}
	if (unlink(mark) < 0 && errno != ENOENT)
		return cairn_err_set(-errno, "cannot remove '%s': %s", mark, strerror(errno));
	return cairn_fsync_dir(dir);
}

static int copy(struct sync *sy)
{
	int r = survey(sy);
	if (r < 0)
		return r;
	_cleanup_free_ bool *want = calloc(sy->have.n ? sy->have.n : 1, sizeof(bool));
	if (!want)
		return cairn_err_set(-ENOMEM, "out of memory");
	/* A directory that had no config, or a copy an earlier run left unfinished. */
	bool mark = !remote(sy->dst) && !sy->dst_has_cfg;
	if ((r = plan(sy, want)) < 0 || (mark && (r = mark_unfinished(sy, true)) < 0) ||
	    (r = copy_small(sy, want)) < 0)
		return r;
	if (!sy->state_in_src && (r = open_repo(sy, false)) < 0)
		return r;
	if ((r = copy_data(sy, want)) < 0 || (r = names_check(sy)) < 0 ||
	    (sy->del && (r = delete_phase(sy)) < 0))
		return r;
	if (!sy->state_in_src && !remote(sy->dst) && (r = finish_local(sy, sy->repo, true)) < 0)
		return r;
	if (sy->state_in_src && !remote(sy->dst) && (r = finish_local_copy(sy)) < 0)
		return r;
	return remote(sy->dst) ? 0 : mark_unfinished(sy, false);
}

/* ---- command --------------------------------------------------------------------- */

static void summary(struct sync *sy)
{
	char size[32];
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	cli_fmt_bytes(size, sizeof(size), atomic_load(&sy->bytes));
	if (remote(sy->dst) && !remote(sy->src))
		printf("synced to %s: ", cairn_storage_url(sy->dst));
	else if (remote(sy->src) && !remote(sy->dst))
		printf("pulled from %s: ", cairn_storage_url(sy->src));
	else
		printf("copied %s to %s: ", cairn_storage_url(sy->src), cairn_storage_url(sy->dst));
	uint64_t copied = atomic_load(&sy->objects);
	printf("%llu %s copied (%s), %llu already there", (unsigned long long)copied,
	       cli_plural(copied, "object", "objects"), size,
	       (unsigned long long)atomic_load(&sy->present));
	if (sy->del)
		printf(", %llu deleted", (unsigned long long)atomic_load(&sy->deleted));
	uint64_t requests = cairn_storage_requests(sy->src) * remote(sy->src) +
	                    cairn_storage_requests(sy->dst) * remote(sy->dst);
	printf("; %llu %s\n", (unsigned long long)requests,
	       cli_plural(requests, "request", "requests"));
}

static void sync_release(struct sync *sy)
{
	cairn_lock_release(sy->dst_lock);
	cairn_lock_release(sy->src_lock);
	cairn_repo_close(sy->repo);
	cairn_storage_close(sy->src);
	cairn_storage_close(sy->dst);
	free(sy->have.v);
	free(sy->there.v);
	cairn_idset_release(&sy->named);
}

/* One storage twice: the same id, or two names of one directory ("repo" and
 * "$PWD/repo", a symlink), which the lock would take for another sync. */
static bool same_place(cairn_storage *a, cairn_storage *b)
{
	struct stat x, y;
	if (strcmp(cairn_storage_id(a), cairn_storage_id(b)) == 0)
		return true;
	return !remote(a) && !remote(b) && stat(cairn_storage_url(a), &x) == 0 &&
	       stat(cairn_storage_url(b), &y) == 0 && x.st_dev == y.st_dev && x.st_ino == y.st_ino;
}

static int run(struct sync *sy, const char *from, const char *to, const struct sync_opts *o)
{
	const struct cairn_storage_opts *so = cli_storage_opts();
	int r = cairn_storage_open(&sy->src, from, so);
	if (r >= 0)
		r = cairn_storage_open(&sy->dst, to, so);
	if (r < 0)
		return r;
	if (same_place(sy->src, sy->dst))
		return cairn_err_set(-EINVAL, "sync: source and destination are both '%s'",
		                     cairn_storage_url(sy->src));
	sy->verify = o->verify;
	sy->del = o->del;
	log_info("copying %s to %s", cairn_storage_describe(sy->src),
	         cairn_storage_describe(sy->dst));
	return copy(sy);
}

int cmd_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "delete", no_argument, NULL, OPT_DELETE },
		{ "from", required_argument, NULL, OPT_FROM },
		{ 0 },
	};
	struct sync_opts o = { 0 };
	struct sync sy = { 0 };
	const char *repo = NULL;

	int i = cli_parse(argc, argv, "", longopts, usage, handle_opt, &o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (o.from && i != argc)
		return cli_usage_error("sync --from: unexpected argument '%s'", argv[i]);
	if (!o.from && i + 1 != argc)
		return cli_usage_error("sync: give one destination (a directory or "
		                       "s3://BUCKET[/PREFIX]), or --from SOURCE");
	if (o.from && o.verify)
		return cli_usage_error("sync --from: --verify compares S3 ETags with local files: "
		                       "give the S3 copy as the destination");
	int r = cli_repo_path(&repo);
	if (r < 0)
		return cli_fail(r);
	const char *other = o.from ? o.from : argv[i];
	if (strstr(other, "://") && !cairn_storage_is_url(other))
		return cli_usage_error("sync: '%s': only s3:// URLs and directories are supported",
		                       other);
	r = interrupt_result(run(&sy, o.from ? o.from : repo, o.from ? repo : argv[i], &o));
	if (r >= 0)
		summary(&sy);
	int code = r < 0 ? cli_fail(r) : 0; /* before release: it may reset the message */
	sync_release(&sy);
	return code;
}
