/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn check: verify packs, index and snapshots; name what damage affects. */
#include <stdarg.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "interrupt.h"
#include "maint.h"
#include "timefmt.h"
#include "cleanup.h"

static const char usage[] =
        "usage: cairn check [--read-data | --read-data-subset N%|K/M] [--lock-wait SECONDS]\n"
        "                   [--json]\n"
        "\n"
        "Checks the repository's structure: every pack header reads and agrees with\n"
        "the index, and every tree and blob a snapshot needs is indexed in a pack that\n"
        "exists. With --read-data it also reads every pack, checks its SHA-256 and\n"
        "decrypts and verifies every blob. Damage is reported with the packs,\n"
        "snapshots and file paths it affects; the exit status is then 1.\n"
        "\n"
        "  --read-data               read and verify all data\n"
        "  --read-data-subset N%     ... only about N percent of the packs\n"
        "  --read-data-subset K/M    ... only part K of M (all M parts cover every pack)\n"
        "  --lock-wait SECONDS       wait this long for prune to finish\n"
        "  --json                    JSON lines: one \"error\" per error found, one\n"
        "                            \"damage\" per damaged path of a snapshot, then a\n"
        "                            \"summary\"\n"
        "\n"
        "The subset is chosen by pack ID, so the same arguments read the same packs;\n"
        "one that selects no pack (a small repository) reads one anyway. The result,\n"
        "with the share of packs and bytes read, is recorded for 'cairn status'.\n";

enum { OPT_READ_DATA = OPT_FIRST_COMMAND_OPT, OPT_READ_SUBSET, OPT_LOCK_WAIT };

struct check_args {
	bool read_data;
	const char *subset_arg; /* for the record */
	double percent;         /* subset N% (read_data with percent < 100) */
	unsigned part, parts;   /* subset K/M; parts 0: not used */
	unsigned wait;
	bool json;
	bool read_only; /* the index cannot be written: nothing is dropped from it */
};

/* What is known about each object; IDs map to values in idsets. */
struct checker {
	cairn_repo *repo;
	const struct check_args *a;
	struct cairn_idset disk;    /* pack -> size: the pack files */
	struct cairn_idset agreed;  /* pack -> header entries the index agrees with */
	struct cairn_idset indexed; /* pack -> blobs the index places there */
	struct cairn_idset suspect; /* packs whose indexed blobs must be read one by one */
	struct cairn_idset bad;     /* blob -> index into why */
	char **why;
	size_t nwhy;
	struct cairn_idset trees; /* tree -> 1 when it or something below is damaged */
	struct cairn_idset data;  /* data blob -> 1 when damaged */
	size_t packs_read, snapshots;
	char snap_hex[CAIRN_ID_HEX_SIZE]; /* the snapshot whose damage is reported */
	uint64_t bytes, bytes_read;       /* of the packs on disk, of those read */
	unsigned errors, orphans;
	unsigned disagree;        /* packs whose header the index does not match */
	unsigned missing;         /* packs in the index whose file is gone */
	struct cairn_buf damaged; /* (blob, pack) pairs of damaged copies the index names */
};

static int error(struct checker *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int error(struct checker *c, const char *fmt, ...)
{
	char msg[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (c->a->json) {
		fputs("{\"message_type\":\"error\",\"message\":", stdout);
		cli_json_str(stdout, msg, strlen(msg));
		fputs("}\n", stdout);
	} else {
		printf("%s\n", msg);
	}
	c->errors++;
	return 0;
}

/* Record why blob id is unusable (the first reason stays). Reasons are printed
 * after the blob's ID, so a repeated "blob <short id>: " prefix is dropped. */
static int mark_bad(struct checker *c, const struct cairn_id *id, const char *reason)
{
	char prefix[32];
	if (cairn_idset_has(&c->bad, id))
		return 0;
	cairn_hex(prefix, id->b, 4);
	if (strncmp(reason, "blob ", 5) == 0 && strncmp(reason + 5, prefix, 8) == 0 &&
	    strncmp(reason + 13, ": ", 2) == 0)
		reason += 15;
	char **v = reallocarray(c->why, c->nwhy + 1, sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->why = v;
	if (!(v[c->nwhy] = strdup(reason)))
		return cairn_err_set(-ENOMEM, "out of memory");
	return cairn_idset_add(&c->bad, id, c->nwhy++);
}

static const char *bad_reason(const struct checker *c, const struct cairn_id *id)
{
	uint64_t *w = cairn_idset_get(&c->bad, id);
	return w ? c->why[*w] : NULL;
}

static int bump(struct cairn_idset *s, const struct cairn_id *id)
{
	uint64_t *v = cairn_idset_get(s, id);
	if (v) {
		(*v)++;
		return 0;
	}
	return cairn_idset_add(s, id, 1);
}

/* ---- packs and index ---------------------------------------------------- */

static int on_disk(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct checker *c = payload;
	c->bytes += size;
	return cairn_idset_add(&c->disk, pack, size);
}

/* One header entry against the index: the index may place the blob elsewhere
 * (a duplicate), but where it places it here, every field must agree. */
static int check_entry(struct checker *c, const struct cairn_id *pack,
                       const struct cairn_pack_entry *e, const char *rel)
{
	struct cairn_loc loc;
	char hex[CAIRN_ID_HEX_SIZE];
	int r = cairn_repo_lookup(c->repo, &e->id, &loc);

	if (r == -ENOENT || (r >= 0 && cairn_id_cmp(&loc.pack, pack) != 0))
		return 0;
	if (r < 0)
		return r;
	if (loc.offset == e->offset && loc.stored_len == e->stored_len &&
	    loc.raw_len == e->raw_len && loc.type == e->type)
		return bump(&c->agreed, pack);
	cairn_id_hex(hex, &e->id);
	error(c, "pack '%s': the index disagrees with the header about blob %.8s", rel, hex);
	return mark_bad(c, &e->id, "the index disagrees with its pack header");
}

static int check_header(struct checker *c, const struct cairn_id *pack)
{
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	char rel[CAIRN_OBJ_REL_MAX], hex[CAIRN_ID_HEX_SIZE];
	size_t n = 0;
	int r = cairn_repo_pack_entries(c->repo, pack, &e, &n);

	cairn_id_hex(hex, pack);
	if (cairn_obj_rel(rel, CAIRN_OBJ_PACK, hex) < 0) /* cannot fail: hex is a pack name */
		snprintf(rel, sizeof(rel), "%s", hex);
	if (r == -EBADMSG) {
		error(c,
		      "%s ('cairn rebuild-index' takes the blobs of a pack whose header is "
		      "damaged from the index files that name it)",
		      cairn_err_msg());
		return cairn_idset_add(&c->suspect, pack, 0);
	}
	if (r == -ENOENT) {
		error(c, "%s", cairn_err_msg());
		return cairn_idset_add(&c->suspect, pack, 0);
	}
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = check_entry(c, pack, &e[i], rel);
	if (r >= 0 && !cairn_idset_get(&c->agreed, pack))
		c->orphans++;
	return r;
}

static int check_headers(struct checker *c)
{
	const struct cairn_id *pack;
	for (size_t pos = 0; cairn_idset_next(&c->disk, &pos, &pack);) {
		int r = interrupt_check();
		if (r >= 0)
			r = check_header(c, pack);
		if (r < 0)
			return r;
	}
	return 0;
}

static int count_indexed(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	struct checker *c = payload;
	char hex[CAIRN_ID_HEX_SIZE];

	if (cairn_idset_has(&c->disk, &loc->pack))
		return bump(&c->indexed, &loc->pack);
	/* Reported per pack, once: mark the pack in `indexed` with a zero count. */
	cairn_id_hex(hex, &loc->pack);
	if (!cairn_idset_has(&c->indexed, &loc->pack)) {
		error(c, "pack %.8s is in the index but its file is missing", hex);
		c->missing++;
		int r = cairn_idset_add(&c->indexed, &loc->pack, 0);
		if (r < 0)
			return r;
	}
	return mark_bad(c, id, "its pack file is missing");
}

/* A pack whose header the index does not fully agree with. */
static int compare_counts(struct checker *c)
{
	const struct cairn_id *pack;
	for (size_t pos = 0; cairn_idset_next(&c->disk, &pos, &pack);) {
		uint64_t *ix = cairn_idset_get(&c->indexed, pack);
		uint64_t *ok = cairn_idset_get(&c->agreed, pack);
		uint64_t nix = ix ? *ix : 0, nok = ok ? *ok : 0;
		if (nix == nok || cairn_idset_has(&c->suspect, pack))
			continue;
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, pack);
		error(c, "pack %.8s: the index places %llu %s in it, its header agrees on %llu",
		      hex, (unsigned long long)nix, cli_plural(nix, "blob", "blobs"),
		      (unsigned long long)nok);
		c->disagree++;
		int r = cairn_idset_add(&c->suspect, pack, 0);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Blobs the index places in a suspect pack are read one by one to find which of
 * them are still good. */
static int read_suspect(const struct cairn_id *id, const struct cairn_loc *loc, void *payload)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct checker *c = payload;

	if (!cairn_idset_has(&c->suspect, &loc->pack) || cairn_idset_has(&c->bad, id))
		return 0;
	int r = cairn_repo_get(c->repo, id, &b);
	if (r == -ENOMEM)
		return r;
	return r < 0 ? mark_bad(c, id, cairn_err_msg()) : 0;
}

static void bad_index_file(const char *msg, void *payload)
{
	error(payload, "%s: 'cairn prune' writes the index files anew", msg);
}

static void bad_prune_record(const char *msg, void *payload)
{
	error(payload, "%s", msg);
}

/* keys/ must hold a full key file, and the one in use: else a new host, or
 * this one once its cache is gone, can read nothing (FORMAT.md §3.2). */
static int check_keys(struct checker *c)
{
	_cleanup_free_ struct cairn_key_info *keys = NULL;
	size_t n = 0, full = 0;
	bool current = false;
	int r = cairn_key_list(c->repo, &keys, &n);

	if (r == -ENOMEM)
		return r;
	if (r < 0)
		return error(c, "keys: %s", cairn_err_msg());
	for (size_t i = 0; i < n; i++) {
		full += keys[i].kind == CAIRN_KEY_FULL && !keys[i].unreadable[0];
		current = current || keys[i].current;
	}
	if (!full)
		error(c, "keys/ holds no full key file: no password can read the backups "
		         "(add one with 'cairn key add' while this one still opens them)");
	if (!current)
		error(c, "the key this password opened is not in keys/ any more");
	return 0;
}

static int check_structure(struct checker *c)
{
	int r = check_keys(c);
	if (r >= 0)
		r = cairn_repo_foreach_pack(c->repo, on_disk, c);
	if (r >= 0)
		r = cairn_repo_check_index_files(c->repo, bad_index_file, c);
	if (r >= 0)
		r = cairn_repo_check_prune_records(c->repo, bad_prune_record, c);
	if (r >= 0)
		r = check_headers(c);
	if (r >= 0)
		r = cairn_repo_foreach_blob(c->repo, count_indexed, c);
	if (r >= 0)
		r = compare_counts(c);
	if (r >= 0 && c->suspect.count)
		r = cairn_repo_foreach_blob(c->repo, read_suspect, c);
	return r;
}

/* ---- reading data ------------------------------------------------------- */

static bool selected(const struct check_args *a, const struct cairn_id *pack)
{
	uint32_t x = (uint32_t)pack->b[0] << 24 | (uint32_t)pack->b[1] << 16 |
	             (uint32_t)pack->b[2] << 8 | pack->b[3];
	if (!a->read_data)
		return false;
	if (a->parts)
		return x % a->parts == a->part - 1;
	return (double)x < a->percent / 100.0 * 4294967296.0;
}

static int cmp_pack(const void *x, const void *y)
{
	return cairn_id_cmp(*(const struct cairn_id *const *)x, *(const struct cairn_id *const *)y);
}

/* The pack a subset that selects none reads instead (see read_data): in ID
 * order, the first for N% (the one a larger N would take first), part K-1
 * modulo their number for K/M (so the parts of M days still differ). 0 and
 * *out NULL when no pack is left to read (suspect packs were read blob by
 * blob); -ENOMEM. */
static int fallback_pack(struct checker *c, const struct cairn_id **out)
{
	_cleanup_free_ const struct cairn_id **v = calloc(c->disk.count + 1, sizeof(*v));
	const struct cairn_id *pack;
	size_t n = 0;
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t pos = 0; cairn_idset_next(&c->disk, &pos, &pack);)
		if (!cairn_idset_has(&c->suspect, pack))
			v[n++] = pack;
	qsort(v, n, sizeof(*v), cmp_pack);
	*out = n ? v[c->a->parts ? (c->a->part - 1) % n : 0] : NULL;
	return 0;
}

struct verify_ctx {
	struct checker *c;
	const struct cairn_id *pack;
	char pack_hex[CAIRN_ID_HEX_SIZE];
	int r;
};

static void on_bad_blob(const struct cairn_pack_entry *e, const char *msg, void *payload)
{
	struct verify_ctx *v = payload;
	struct cairn_loc loc;
	char why[512];

	/* msg may be the thread's error buffer, which the lookup below reuses. */
	snprintf(why, sizeof(why), "%s", msg);
	msg = why;
	error(v->c, "pack %.8s offset %u: %s", v->pack_hex, e->offset, msg);
	/* Only the copy the index points to matters to snapshots. */
	if (v->r >= 0 && cairn_repo_lookup(v->c->repo, &e->id, &loc) >= 0 &&
	    cairn_id_cmp(&loc.pack, v->pack) == 0) {
		struct cairn_id pair[2] = { e->id, *v->pack };
		v->r = mark_bad(v->c, &e->id, msg);
		if (v->r >= 0 && cairn_buf_put(&v->c->damaged, pair, sizeof(pair)) < 0)
			v->r = cairn_err_set(-ENOMEM, "out of memory");
	}
}

static int read_pack(struct checker *c, const struct cairn_id *pack)
{
	struct verify_ctx v = { .c = c, .pack = pack };
	cairn_id_hex(v.pack_hex, pack);
	int r = cairn_repo_pack_verify(c->repo, pack, on_bad_blob, &v);
	c->packs_read++;
	c->bytes_read += *cairn_idset_get(&c->disk, pack);
	if (r == -EBADMSG || r == -ENOENT)
		error(c, "%s", cairn_err_msg());
	else if (r < 0)
		return r;
	return v.r < 0 ? v.r : 0;
}

static int read_data(struct checker *c)
{
	const struct cairn_id *pack;
	for (size_t pos = 0; cairn_idset_next(&c->disk, &pos, &pack);) {
		if (!selected(c->a, pack) || cairn_idset_has(&c->suspect, pack))
			continue; /* suspect packs were read blob by blob already */
		int r = interrupt_check();
		if (r >= 0)
			r = read_pack(c, pack);
		if (r < 0)
			return r;
	}
	/* A subset of a small repository can select no pack at all (1% of ten
	 * packs): it still reads one, or it would pass for a data check that read
	 * nothing. */
	if (!c->a->read_data || c->packs_read > 0)
		return 0;
	int r = fallback_pack(c, &pack);
	if (r < 0 || !pack)
		return r;
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	log_info("the subset %s selects none of the %zu %s: reading pack %.8s",
	         c->a->subset_arg ? c->a->subset_arg : "", c->disk.count,
	         cli_plural(c->disk.count, "pack", "packs"), hex);
	return read_pack(c, pack);
}

/* ---- snapshots ---------------------------------------------------------- */

static const char *data_problem(struct checker *c, const struct cairn_id *id)
{
	struct cairn_loc loc;
	int r = cairn_repo_lookup(c->repo, id, &loc);
	if (r == -ENOENT)
		return "not in the index";
	if (r < 0)
		return cairn_err_msg(); /* a malformed index record */
	return loc.type == CAIRN_BLOB_DATA ? NULL : "is a tree blob, not data";
}

/* 1 if data blob id is damaged or missing, 0 if not (memoised); < 0 -ENOMEM. */
static int data_state(struct checker *c, const struct cairn_id *id)
{
	uint64_t *memo = cairn_idset_get(&c->data, id);
	const char *why;
	int r, state = 0;

	if (memo)
		return (int)*memo;
	if (bad_reason(c, id)) {
		state = 1;
	} else if ((why = data_problem(c, id))) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		error(c, "data blob %.8s: %s", hex, why);
		if ((r = mark_bad(c, id, why)) < 0)
			return r;
		state = 1;
	}
	return (r = cairn_idset_add(&c->data, id, (uint64_t)state)) < 0 ? r : state;
}

static int load_tree(struct checker *c, const struct cairn_id *id, cairn_tree **out)
{
	const char *why = bad_reason(c, id);
	char hex[CAIRN_ID_HEX_SIZE];
	if (why)
		return -EBADMSG;
	int r = cairn_repo_tree_load(c->repo, id, out);
	if (r >= 0 || r == -ENOMEM)
		return r;
	cairn_id_hex(hex, id);
	error(c, "tree %.8s: %s", hex, cairn_err_msg());
	return (r = mark_bad(c, id, cairn_err_msg())) < 0 ? r : -EBADMSG;
}

static int tree_state(struct checker *c, const struct cairn_id *id);

static int node_state(struct checker *c, const struct cairn_node *nd)
{
	int state = 0;
	if (nd->type == CAIRN_NODE_DIR)
		return tree_state(c, &nd->subtree);
	for (size_t i = 0; i < nd->nextents; i++) {
		if (cairn_id_is_zero(&nd->extents[i].id))
			continue;
		int r = data_state(c, &nd->extents[i].id);
		if (r < 0)
			return r;
		state |= r;
	}
	return state;
}

/* 1 if the tree or anything below it is damaged; each tree is walked once. */
static int tree_state(struct checker *c, const struct cairn_id *id)
{
	uint64_t *memo = cairn_idset_get(&c->trees, id);
	cairn_tree *t = NULL;
	int state = 0;

	if (memo)
		return (int)*memo;
	int r = interrupt_check();
	if (r < 0)
		return r;
	r = load_tree(c, id, &t);
	if (r < 0 && r != -EBADMSG)
		return r;
	state = r < 0;
	r = 0;
	for (size_t i = 0; t && i < cairn_tree_count(t); i++) {
		if ((r = node_state(c, cairn_tree_node(t, i))) < 0)
			break;
		state |= r;
	}
	cairn_tree_free(t);
	if (r < 0)
		return r; /* only -ENOMEM or -ECANCELED gets here */
	return (r = cairn_idset_add(&c->trees, id, (uint64_t)state)) < 0 ? r : state;
}

/* ---- naming the damage -------------------------------------------------- */

/* "  <path>: <problem>", or a JSON "damage" line. */
static void damage(struct checker *c, const struct maint_path *p, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
static void damage(struct checker *c, const struct maint_path *p, const char *fmt, ...)
{
	char problem[2048];
	size_t len;
	const char *s = maint_path_str(p, &len);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(problem, sizeof(problem), fmt, ap);
	va_end(ap);
	if (c->a->json) {
		printf("{\"message_type\":\"damage\",\"snapshot\":\"%s\",\"path\":", c->snap_hex);
		cli_json_str(stdout, s, len);
		fputs(",\"problem\":", stdout);
		cli_json_str(stdout, problem, strlen(problem));
		fputs("}\n", stdout);
		return;
	}
	fputs("  ", stdout);
	cairn_text_name(stdout, s, len);
	fputs(": ", stdout);
	cairn_text_str(stdout, problem, strlen(problem));
	fputc('\n', stdout);
}

static void report_file(struct checker *c, const struct cairn_node *nd, struct maint_path *p)
{
	const struct cairn_id *first = NULL;
	size_t count = 0;
	for (size_t i = 0; i < nd->nextents; i++) {
		const struct cairn_id *id = &nd->extents[i].id;
		if (!cairn_id_is_zero(id) && bad_reason(c, id) && count++ == 0)
			first = id;
	}
	if (!first)
		return;
	char hex[CAIRN_ID_HEX_SIZE], more[64] = "";
	cairn_id_hex(hex, first);
	if (count > 1)
		snprintf(more, sizeof(more), " (and %zu more damaged blobs)", count - 1);
	damage(c, p, "blob %.8s: %s%s", hex, bad_reason(c, first), more);
}

/* Walk only into trees marked damaged, printing each affected path. */
static int report_tree(struct checker *c, const struct cairn_id *id, struct maint_path *p)
{
	cairn_tree *t = NULL;
	const char *why = bad_reason(c, id);

	if (why || cairn_repo_tree_load(c->repo, id, &t) < 0) {
		damage(c, p, "the directory cannot be read: %s", why ? why : cairn_err_msg());
		return 0;
	}
	int r = 0;
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++) {
		const struct cairn_node *nd = cairn_tree_node(t, i);
		size_t mark;
		if ((r = maint_path_push(p, nd->name, nd->name_len, &mark)) < 0)
			break;
		if (nd->type == CAIRN_NODE_DIR) {
			uint64_t *st = cairn_idset_get(&c->trees, &nd->subtree);
			if (st && *st)
				r = report_tree(c, &nd->subtree, p);
		} else {
			report_file(c, nd, p);
		}
		maint_path_pop(p, mark);
	}
	cairn_tree_free(t);
	return r;
}

static int check_snapshot(struct checker *c, const struct cairn_id *id)
{
	struct cairn_snapshot *s = NULL;
	char hex[CAIRN_ID_HEX_SIZE], when[TIMEFMT_MAX];
	int r = cairn_repo_snapshot_load(c->repo, id, &s);

	cairn_id_hex(hex, id);
	if (r < 0)
		return r == -ENOMEM ? r : error(c, "%s", cairn_err_msg());
	c->snapshots++;
	if ((r = tree_state(c, &s->root)) > 0) {
		struct maint_path p = { CAIRN_BUF_INIT };
		timefmt_local(when, s->time_ns);
		memcpy(c->snap_hex, hex, sizeof(hex));
		if (!c->a->json) {
			printf("snapshot %.8s of %s (host ", hex, when);
			cairn_text_name(stdout, s->hostname, strlen(s->hostname));
			fputs(") is damaged:\n", stdout);
		}
		r = report_tree(c, &s->root, &p);
		cairn_buf_release(&p.b);
	}
	cairn_snapshot_free(s);
	return r < 0 ? r : 0;
}

static int check_snapshots(struct checker *c)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(c->repo, &ids, &n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = check_snapshot(c, &ids[i]);
	return r;
}

/* ---- result ------------------------------------------------------------- */

static const char *read_mode(const struct check_args *a)
{
	return !a->read_data ? "none" : a->subset_arg ? "subset" : "full";
}

/* The record `cairn status` reads (DESIGN.md "Check results"). */
static void record(struct checker *c)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	const char *mode = read_mode(c->a);

	if (cairn_buf_printf(&b,
	                     "time=%lld\nok=%d\nerrors=%u\nread_data=%s\nsubset=%s\npacks=%zu\n"
	                     "packs_read=%zu\nsnapshots=%zu\nbytes=%llu\nbytes_read=%llu\n",
	                     (long long)time(NULL), c->errors == 0, c->errors, mode,
	                     c->a->subset_arg ? c->a->subset_arg : "", c->disk.count, c->packs_read,
	                     c->snapshots, (unsigned long long)c->bytes,
	                     (unsigned long long)c->bytes_read) < 0)
		return;
	int r = cairn_repo_state_put(c->repo, "check", "last", 4, b.data, b.len);
	if (r >= 0 && c->a->read_data)
		r = cairn_repo_state_put(c->repo, "check", "last-read-data", 14, b.data, b.len);
	if (r < 0)
		log_warn("cannot record the check result: %s", cairn_err_msg());
}

static void summary(const struct checker *c)
{
	if (c->a->json) {
		printf("{\"message_type\":\"summary\",\"command\":\"check\",\"ok\":%s,"
		       "\"errors\":%u,\"read_data\":\"%s\",\"subset\":",
		       c->errors ? "false" : "true", c->errors, read_mode(c->a));
		if (c->a->subset_arg)
			cli_json_str(stdout, c->a->subset_arg, strlen(c->a->subset_arg));
		else
			fputs("null", stdout);
		printf(",\"packs\":%zu,\"packs_read\":%zu,\"bytes\":%llu,\"bytes_read\":%llu,"
		       "\"snapshots\":%zu,\"unindexed_packs\":%u}\n",
		       c->disk.count, c->packs_read, (unsigned long long)c->bytes,
		       (unsigned long long)c->bytes_read, c->snapshots, c->orphans);
		return;
	}
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	/* Where the index and the headers disagree, the index (a cache) is what is
	 * wrong: a pack it does not name may hold the only good copies. */
	if (c->disagree)
		printf("the index disagrees with %u pack %s: 'cairn rebuild-index' makes it "
		       "anew from the packs\n",
		       c->disagree, c->disagree == 1 ? "header" : "headers");
	if (c->orphans && c->disagree)
		printf("%u %s no indexed blob (the index disagrees with the pack headers: run "
		       "'cairn rebuild-index' before any prune)\n",
		       c->orphans, c->orphans == 1 ? "pack holds" : "packs hold");
	else if (c->orphans)
		printf("%u %s no indexed blob (left by an interrupted backup or prune; "
		       "'cairn prune' removes them)\n",
		       c->orphans, c->orphans == 1 ? "pack holds" : "packs hold");
	printf("checked %zu %s (%zu read in full) and %zu %s: %u %s\n", c->disk.count,
	       c->disk.count == 1 ? "pack" : "packs", c->packs_read, c->snapshots,
	       c->snapshots == 1 ? "snapshot" : "snapshots", c->errors,
	       c->errors == 1 ? "error" : "errors");
}

static void checker_release(struct checker *c)
{
	for (size_t i = 0; i < c->nwhy; i++)
		free(c->why[i]);
	free(c->why);
	cairn_buf_release(&c->damaged);
	struct cairn_idset *sets[] = { &c->disk, &c->agreed, &c->indexed, &c->suspect,
		                       &c->bad,  &c->trees,  &c->data };
	for (size_t i = 0; i < ARRAY_SIZE(sets); i++)
		cairn_idset_release(sets[i]);
}

/* Missing packs and damaged copies leave the index (a cache): left there, they
 * would keep every backup referring to blobs that are gone. The damage found
 * stays until those backups store them again. */
static void drop_damage(struct checker *c)
{
	const struct cairn_id *pair = (const struct cairn_id *)(const void *)c->damaged.data;
	size_t n = c->damaged.len / (2 * sizeof(*pair)), dropped = 0;
	int r = c->missing ? cairn_repo_index_drop_missing(c->repo) : 0;
	if (r > 0) /* on stderr: stdout may be JSON */
		log_warn("%d missing %s left this host's index: a backup stores again what they "
		         "held that it still finds",
		         r, cli_plural((uint64_t)r, "pack", "packs"));
	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = cairn_repo_index_drop_blob(c->repo, &pair[2 * i], &pair[2 * i + 1])) > 0)
			dropped++;
	if (dropped)
		log_warn("%zu damaged %s left this host's index: a backup stores again those it "
		         "still finds",
		         dropped, cli_plural(dropped, "blob", "blobs"));
	if (r < 0)
		log_warn("cannot drop the damage from the index: %s", cairn_err_msg());
}

static int run(cairn_repo *repo, const struct check_args *a)
{
	struct checker c = { .repo = repo, .a = a };
	int r = check_structure(&c);

	if (r >= 0)
		r = read_data(&c);
	if (r >= 0)
		r = check_snapshots(&c);
	if (r >= 0) {
		record(&c);
		summary(&c);
		/* Left in the index, they would keep every backup referring to
		 * blobs that are gone. The damage above stays until those backups
		 * store them again (or a restore of older data is given up). */
		if (!a->read_only)
			drop_damage(&c);
		if (c.errors)
			r = cairn_err_set(-EBADMSG, "check found %u %s", c.errors,
			                  cli_plural(c.errors, "error", "errors"));
	}
	checker_release(&c);
	return r;
}

/* ---- options ------------------------------------------------------------ */

static int parse_subset(struct check_args *a, const char *arg)
{
	char *end;
	unsigned long k, m;

	if (a->read_data) /* --read-data, or a second subset: which one was meant? */
		return cairn_err_set(-EINVAL,
		                     "give --read-data or one --read-data-subset, not both");
	a->read_data = true;
	a->subset_arg = arg;
	if (strchr(arg, '/')) {
		k = strtoul(arg, &end, 10);
		m = *end == '/' ? strtoul(end + 1, &end, 10) : 0;
		if (*end || k < 1 || m < 1 || k > m || m > 1000000)
			return cairn_err_set(-EINVAL, "'%s' is not K/M with 1 <= K <= M", arg);
		a->part = (unsigned)k;
		a->parts = (unsigned)m;
		return 0;
	}
	a->percent = strtod(arg, &end);
	if (end == arg || strcmp(end, "%") != 0 || !(a->percent > 0 && a->percent <= 100))
		return cairn_err_set(-EINVAL,
		                     "'%s' is not a percentage like 10%% or a part like 1/5", arg);
	return 0;
}

static int handle(int c, const char *arg, void *payload)
{
	struct check_args *a = payload;
	switch (c) {
	case OPT_READ_DATA:
		if (a->subset_arg)
			return cairn_err_set(
			        -EINVAL, "give --read-data or one --read-data-subset, not both");
		a->read_data = true;
		a->percent = 100;
		return 0;
	case OPT_READ_SUBSET:
		return parse_subset(a, arg);
	case OPT_LOCK_WAIT:
		return maint_parse_wait(arg, &a->wait);
	case OPT_JSON:
		a->json = true;
		return 0;
	default:
		return cairn_err_set(-EINVAL, "unknown option");
	}
}

/* A repository this process cannot write (a read-only mount, an immutable copy,
 * another user's files) is checked read-only, and its result is not recorded. */
static bool index_writable(void)
{
	const char *path;
	char dir[PATH_MAX], data[PATH_MAX];

	if (cli_repo_path(&path) < 0 || cairn_storage_is_url(path) ||
	    snprintf(dir, sizeof(dir), "%s/index", path) >= (int)sizeof(dir) ||
	    snprintf(data, sizeof(data), "%s/data.mdb", dir) >= (int)sizeof(data))
		return true; /* the open reports it */
	return (access(dir, W_OK) == 0 && access(data, W_OK) == 0) || errno == ENOENT;
}

int cmd_check(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "read-data", no_argument, NULL, OPT_READ_DATA },
		{ "read-data-subset", required_argument, NULL, OPT_READ_SUBSET },
		{ "lock-wait", required_argument, NULL, OPT_LOCK_WAIT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ 0 },
	};
	struct check_args a = { 0 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	_cleanup_repo_ cairn_repo *repo = NULL;
	_cleanup_lock_ cairn_lock *lock = NULL;

	int i = cli_parse(argc, argv, "", longopts, usage, handle, &a);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (i != argc)
		return cli_usage_error("check: unexpected argument '%s'", argv[i]);
	ro.read_only = a.read_only = !index_writable();
	int r = cli_open_repo(&repo, &ro);
	if (r >= 0 && (r = cairn_repo_lock(repo, CAIRN_LOCK_SHARED, "check", a.wait, &lock)) < 0 &&
	    ((ro.read_only && (r == -EROFS || r == -EACCES || r == -EPERM)) || r == -ENOSPC)) {
		/* A full disk too: what is damaged is worth knowing before freeing
		 * space, but nothing is dropped from the index then. */
		log_warn("checking without a lock: %s", cairn_err_msg());
		a.read_only = a.read_only || r == -ENOSPC;
		r = 0;
	}
	if (r >= 0) {
		interrupt_catch("check");
		r = interrupt_result(run(repo, &a));
	}
	fflush(stdout);
	return r < 0 ? cli_fail(r) : 0;
}
