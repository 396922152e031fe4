/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tree blobs: one per directory, decoded and canonically encoded (FORMAT.md §10). */
#include "cairn/store.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cleanup.h"
#include "repo.h"

/*
 * Layout (FORMAT.md §10), all integers little-endian:
 *   "CTRE" u8 version (1) u32 count
 *   count x entry, sorted by name:
 *     str8 name, u8 type, u32 flags, u16 mode, u32 uid, u32 gid, str8 user, str8 group,
 *     u64 size, i64 mtime_ns, i64 ctime_ns, i64 atime_ns, u64 dev, u64 ino, u32 nlink,
 *     u64 rdev, u16 nxattrs, nxattrs x (str8 name, u32 value_len, value),
 *     then by type: file u32 nextents x (id[32], u64 len); dir id[32] subtree;
 *     symlink str16 target; fifo, socket, chr, blk nothing.
 */
#define TREE_MAGIC "CTRE"
#define TREE_VERSION 1
#define HEADER_SIZE 9
/* The integer fields of an entry: type 1, flags 4, mode 2, uid/gid 8, size 8, times 24,
 * dev/ino 16, nlink 4, rdev 8, nxattrs 2. */
#define FIXED_SIZE 77
/* Plus three string length bytes and a 1-byte name: lets the count be checked before
 * allocating. */
#define ENTRY_MIN (FIXED_SIZE + 3 + 1)
#define XATTR_MIN 5 /* name length byte and value length */
#define EXTENT_SIZE (CAIRN_ID_SIZE + 8)

struct cairn_tree {
	uint8_t *data; /* private copy; nodes point into it */
	struct cairn_node *nodes;
	size_t count;
	struct cairn_xattr *xattrs; /* all entries' xattrs, in entry order */
	struct cairn_extent *extents;
	size_t bytes; /* memory held, for caches */
};

/* A builder entry owns one block holding the copies of its node's bytes. */
struct bentry {
	struct cairn_node node;
	void *mem;
};

struct cairn_tree_builder {
	struct bentry *e;
	size_t count, cap;
};

DEFINE_FREEP(cairn_tree, cairn_tree_free)

/* ---- rules shared by decoder and builder --------------------------------- */

/* memcmp order, a proper prefix first (FORMAT.md §10). */
static int name_cmp(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	size_t min = alen < blen ? alen : blen;
	int c = min ? memcmp(a, b, min) : 0;
	if (c)
		return c;
	return alen < blen ? -1 : alen > blen;
}

/* Names are arbitrary bytes: escape them for messages. */
static const char *esc(char out[static 64], const uint8_t *p, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0, i;

	for (i = 0; i < n && o < 56; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '\\') {
			out[o++] = (char)p[i];
			continue;
		}
		out[o++] = '\\';
		out[o++] = 'x';
		out[o++] = hex[p[i] >> 4];
		out[o++] = hex[p[i] & 15];
	}
	if (i < n) {
		memcpy(out + o, "...", 3);
		o += 3;
	}
	out[o] = '\0';
	return out;
}

static bool has_byte(const uint8_t *p, size_t n, uint8_t c)
{
	return n && memchr(p, c, n);
}

static bool id_is_zero(const struct cairn_id *id)
{
	uint8_t acc = 0;
	for (size_t i = 0; i < sizeof(id->b); i++)
		acc |= id->b[i];
	return acc == 0;
}

static int check_name(const uint8_t *p, size_t n, int code)
{
	if (n == 0 || n > CAIRN_NAME_MAX)
		return cairn_err_set(code, "name of %zu bytes is outside 1..255", n);
	if (has_byte(p, n, '/') || has_byte(p, n, 0))
		return cairn_err_set(code, "name contains '/' or NUL");
	if ((n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
		return cairn_err_set(code, "name is '.' or '..'");
	return 0;
}

static int check_xattrs(const struct cairn_node *n, int code)
{
	if (n->nxattrs > CAIRN_TREE_MAX_XATTRS)
		return cairn_err_set(code, "%zu xattrs, more than %d", n->nxattrs,
		                     CAIRN_TREE_MAX_XATTRS);
	for (size_t i = 0; i < n->nxattrs; i++) {
		const struct cairn_xattr *x = &n->xattrs[i];
		if (x->name_len == 0 || x->name_len > CAIRN_NAME_MAX ||
		    has_byte(x->name, x->name_len, 0))
			return cairn_err_set(code, "xattr %zu: bad name", i);
		if (x->value_len > CAIRN_XATTR_VALUE_MAX)
			return cairn_err_set(code, "xattr %zu: value of %zu bytes exceeds %d", i,
			                     x->value_len, CAIRN_XATTR_VALUE_MAX);
	}
	return 0;
}

/* Strictly increasing names: the decoder's order check and the builder's duplicate check. */
static int check_xattr_order(const struct cairn_node *n, int code)
{
	for (size_t i = 1; i < n->nxattrs; i++) {
		const struct cairn_xattr *a = &n->xattrs[i - 1], *b = &n->xattrs[i];
		if (name_cmp(a->name, a->name_len, b->name, b->name_len) >= 0)
			return cairn_err_set(code, "xattr %zu: duplicate or out of order", i);
	}
	return 0;
}

static int check_extents(const struct cairn_node *n, int code)
{
	uint64_t sum = 0;

	for (size_t i = 0; i < n->nextents; i++) {
		if (n->extents[i].len == 0)
			return cairn_err_set(code, "extent %zu is empty", i);
		if (__builtin_add_overflow(sum, n->extents[i].len, &sum))
			return cairn_err_set(code, "extent lengths overflow");
	}
	if (sum != n->size)
		return cairn_err_set(code, "extents sum to %llu bytes, size is %llu",
		                     (unsigned long long)sum, (unsigned long long)n->size);
	return 0;
}

/* Type-specific fields: present for their type, empty for every other. */
static int check_by_type(const struct cairn_node *n, int code)
{
	bool file = n->type == CAIRN_NODE_FILE, dir = n->type == CAIRN_NODE_DIR;
	bool link = n->type == CAIRN_NODE_SYMLINK;

	if (n->type < CAIRN_NODE_FILE || n->type > CAIRN_NODE_BLK)
		return cairn_err_set(code, "unknown type %u", n->type);
	if (!file && n->nextents)
		return cairn_err_set(code, "extents on a non-regular file");
	if (dir == id_is_zero(&n->subtree))
		return cairn_err_set(code, dir ? "directory without a subtree"
		                               : "subtree on a non-directory");
	if (!link && n->target_len)
		return cairn_err_set(code, "target on a non-symlink");
	/* An unreadable target is stored empty, with the entry marked incomplete. */
	if (link && ((n->target_len == 0 && !(n->flags & CAIRN_NODE_INCOMPLETE)) ||
	             n->target_len > CAIRN_SYMLINK_MAX || has_byte(n->target, n->target_len, 0)))
		return cairn_err_set(code,
		                     "symlink target of %zu bytes is outside 1..%d or has NUL",
		                     n->target_len, CAIRN_SYMLINK_MAX);
	return file ? check_extents(n, code) : 0;
}

/* Every rule of FORMAT.md §10 for one entry but the xattr order. */
static int check_node(const struct cairn_node *n, int code)
{
	int r = check_name(n->name, n->name_len, code);
	if (r < 0)
		return r;
	if (n->flags & ~CAIRN_NODE_INCOMPLETE)
		return cairn_err_set(code, "reserved flags 0x%x set", n->flags);
	if (n->mode > 07777)
		return cairn_err_set(code, "mode 0%o has bits outside 07777", n->mode);
	if (n->user_len > CAIRN_NAME_MAX || n->group_len > CAIRN_NAME_MAX ||
	    has_byte(n->user, n->user_len, 0) || has_byte(n->group, n->group_len, 0))
		return cairn_err_set(code, "user or group name too long or has NUL");
	if ((r = check_xattrs(n, code)) < 0)
		return r;
	return check_by_type(n, code);
}

/* ---- decoding ------------------------------------------------------------ */

/* Side arrays grow by doubling; every element was bounds-checked against the input first. */
static int grow(void **p, size_t *cap, size_t need, size_t elem)
{
	size_t c = *cap ? *cap : 16, bytes;

	if (need <= *cap)
		return 0;
	while (c < need)
		c *= 2;
	if (__builtin_mul_overflow(c, elem, &bytes))
		return cairn_err_set(-ENOMEM, "tree too large");
	void *n = realloc(*p, bytes);
	if (!n)
		return cairn_err_set(-ENOMEM, "out of memory decoding tree");
	*p = n;
	*cap = c;
	return 0;
}

struct side {
	struct cairn_xattr *x;
	size_t nx, capx;
	struct cairn_extent *e;
	size_t ne, cape;
};

static int parse_xattrs(struct cairn_rd *rd, struct cairn_node *n, struct side *s)
{
	uint16_t count;
	int r;

	if (cairn_rd_u16(rd, &count) < 0)
		return cairn_err_set(-EBADMSG, "truncated");
	if (count > CAIRN_TREE_MAX_XATTRS || (size_t)count * XATTR_MIN > rd->left)
		return cairn_err_set(-EBADMSG, "xattr count %u exceeds limit or data", count);
	if ((r = grow((void **)&s->x, &s->capx, s->nx + count, sizeof(*s->x))) < 0)
		return r;
	for (size_t i = 0; i < count; i++) {
		struct cairn_xattr *x = &s->x[s->nx + i];
		uint32_t vlen;
		if (cairn_rd_str8(rd, &x->name, &x->name_len) < 0 || cairn_rd_u32(rd, &vlen) < 0)
			return cairn_err_set(-EBADMSG, "truncated xattr");
		if (vlen > CAIRN_XATTR_VALUE_MAX || cairn_rd_take(rd, vlen, &x->value) < 0)
			return cairn_err_set(-EBADMSG, "xattr value of %u bytes too long", vlen);
		x->value_len = vlen;
	}
	/* Valid until the next grow: cairn_tree_parse() re-points them at the end. */
	n->xattrs = count ? &s->x[s->nx] : NULL;
	n->nxattrs = count;
	s->nx += count;
	return 0;
}

static int parse_extents(struct cairn_rd *rd, struct cairn_node *n, struct side *s)
{
	const uint8_t *p;
	uint32_t count;
	int r;

	if (cairn_rd_u32(rd, &count) < 0)
		return cairn_err_set(-EBADMSG, "truncated");
	if (count > rd->left / EXTENT_SIZE)
		return cairn_err_set(-EBADMSG, "%u extents exceed the data", count);
	if ((r = grow((void **)&s->e, &s->cape, s->ne + count, sizeof(*s->e))) < 0)
		return r;
	cairn_rd_take(rd, (size_t)count * EXTENT_SIZE, &p); /* cannot fail: checked above */
	for (size_t i = 0; i < count; i++, p += EXTENT_SIZE) {
		memcpy(s->e[s->ne + i].id.b, p, CAIRN_ID_SIZE);
		s->e[s->ne + i].len = cairn_get_le64(p + CAIRN_ID_SIZE);
	}
	n->extents = count ? &s->e[s->ne] : NULL;
	n->nextents = count;
	s->ne += count;
	return 0;
}

static int parse_tail(struct cairn_rd *rd, struct cairn_node *n, struct side *s)
{
	switch (n->type) {
	case CAIRN_NODE_FILE:
		return parse_extents(rd, n, s);
	case CAIRN_NODE_DIR:
		if (cairn_rd_copy(rd, n->subtree.b, CAIRN_ID_SIZE) < 0)
			return cairn_err_set(-EBADMSG, "truncated");
		return 0;
	case CAIRN_NODE_SYMLINK:
		if (cairn_rd_str16(rd, &n->target, &n->target_len) < 0)
			return cairn_err_set(-EBADMSG, "truncated");
		return 0;
	default:
		return 0; /* unknown types are rejected by check_node() */
	}
}

static int parse_node(struct cairn_rd *rd, struct cairn_node *n, struct side *s)
{
	uint16_t mode;
	int r;

	if (cairn_rd_str8(rd, &n->name, &n->name_len) < 0 || cairn_rd_u8(rd, &n->type) < 0 ||
	    cairn_rd_u32(rd, &n->flags) < 0 || cairn_rd_u16(rd, &mode) < 0 ||
	    cairn_rd_u32(rd, &n->uid) < 0 || cairn_rd_u32(rd, &n->gid) < 0 ||
	    cairn_rd_str8(rd, &n->user, &n->user_len) < 0 ||
	    cairn_rd_str8(rd, &n->group, &n->group_len) < 0 || cairn_rd_u64(rd, &n->size) < 0 ||
	    cairn_rd_i64(rd, &n->mtime_ns) < 0 || cairn_rd_i64(rd, &n->ctime_ns) < 0 ||
	    cairn_rd_i64(rd, &n->atime_ns) < 0 || cairn_rd_u64(rd, &n->dev) < 0 ||
	    cairn_rd_u64(rd, &n->ino) < 0 || cairn_rd_u32(rd, &n->nlink) < 0 ||
	    cairn_rd_u64(rd, &n->rdev) < 0)
		return cairn_err_set(-EBADMSG, "truncated");
	n->mode = mode;
	if ((r = parse_xattrs(rd, n, s)) < 0 || (r = parse_tail(rd, n, s)) < 0 ||
	    (r = check_node(n, -EBADMSG)) < 0)
		return r;
	return check_xattr_order(n, -EBADMSG);
}

static int parse_header(struct cairn_rd *rd, uint32_t *count)
{
	const uint8_t *magic;
	uint8_t version;

	if (cairn_rd_take(rd, 4, &magic) < 0 || memcmp(magic, TREE_MAGIC, 4) != 0 ||
	    cairn_rd_u8(rd, &version) < 0)
		return cairn_err_set(-EBADMSG, "tree: bad magic");
	if (version != TREE_VERSION)
		return cairn_err_set(-EBADMSG, "tree: unknown version %u", version);
	if (cairn_rd_u32(rd, count) < 0)
		return cairn_err_set(-EBADMSG, "tree: truncated header");
	if (*count > CAIRN_TREE_MAX_ENTRIES || *count > rd->left / ENTRY_MIN)
		return cairn_err_set(-EBADMSG, "tree: entry count %u exceeds limit or data",
		                     *count);
	return 0;
}

/* The side arrays were filled in entry order: hand each node its slice. */
static void attach_side(cairn_tree *t, struct side *s)
{
	size_t x = 0, e = 0;

	t->xattrs = TAKE_PTR(s->x);
	t->extents = TAKE_PTR(s->e);
	for (size_t i = 0; i < t->count; i++) {
		struct cairn_node *n = &t->nodes[i];
		n->xattrs = n->nxattrs ? &t->xattrs[x] : NULL;
		n->extents = n->nextents ? &t->extents[e] : NULL;
		x += n->nxattrs;
		e += n->nextents;
	}
}

static int parse_nodes(cairn_tree *t, struct cairn_rd *rd, size_t len, struct side *s)
{
	for (size_t i = 0; i < t->count; i++) {
		struct cairn_node *n = &t->nodes[i];
		size_t off = len - rd->left;
		int r = parse_node(rd, n, s);
		if (r < 0)
			return cairn_err_wrap(r, "tree: entry %zu at offset %zu", i, off);
		if (i > 0 && name_cmp(n[-1].name, n[-1].name_len, n->name, n->name_len) >= 0)
			return cairn_err_set(
			        -EBADMSG,
			        "tree: entry %zu at offset %zu: duplicate or unsorted name", i,
			        off);
	}
	if (rd->left)
		return cairn_err_set(-EBADMSG, "tree: %zu trailing bytes at offset %zu", rd->left,
		                     len - rd->left);
	return 0;
}

int cairn_tree_parse(cairn_tree **out, const uint8_t *data, size_t len)
{
	struct side s = { 0 };
	uint32_t count;
	int r;

	if (len > CAIRN_TREE_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "tree: %zu bytes exceed the 64 MiB limit", len);
	_cleanup_(cairn_tree_freep) cairn_tree *t = calloc(1, sizeof(*t));
	if (!t || !(t->data = malloc(len ? len : 1)))
		return cairn_err_set(-ENOMEM, "out of memory decoding tree");
	if (len)
		memcpy(t->data, data, len);
	struct cairn_rd rd = { t->data, len };
	if ((r = parse_header(&rd, &count)) < 0)
		return r;
	t->count = count;
	if (count && !(t->nodes = calloc(count, sizeof(*t->nodes))))
		return cairn_err_set(-ENOMEM, "out of memory decoding tree");
	r = parse_nodes(t, &rd, len, &s);
	t->bytes = sizeof(*t) + len + count * sizeof(*t->nodes) + s.capx * sizeof(*s.x) +
	           s.cape * sizeof(*s.e);
	attach_side(t, &s); /* so that the arrays are freed with t on failure too */
	if (r < 0)
		return r;
	*out = TAKE_PTR(t);
	return 0;
}

void cairn_tree_free(cairn_tree *t)
{
	if (!t)
		return;
	free(t->data);
	free(t->nodes);
	free(t->xattrs);
	free(t->extents);
	free(t);
}

size_t cairn_tree_count(const cairn_tree *t)
{
	return t->count;
}

size_t cairn_tree_memory(const cairn_tree *t)
{
	return t->bytes;
}

int cairn_repo_tree_load(cairn_repo *repo, const struct cairn_id *id, cairn_tree **out)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	/* A write-only key cannot open trees: it has those it wrote (FORMAT.md §14). */
	cairn_hostcache *hc = cairn_repo__hostcache(repo);
	int r = hc ? cairn_hostcache__tree(hc, id, &b)
	           : cairn_repo_get_typed(repo, CAIRN_BLOB_TREE, id, &b);
	return r < 0 ? r : cairn_tree_parse(out, b.data, b.len);
}

const struct cairn_node *cairn_tree_node(const cairn_tree *t, size_t i)
{
	return i < t->count ? &t->nodes[i] : NULL;
}

int cairn_tree_find(const cairn_tree *t, const void *name, size_t len, size_t *index_out)
{
	size_t lo = 0, hi = t->count;
	char buf[64];

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct cairn_node *n = &t->nodes[mid];
		int c = name_cmp(n->name, n->name_len, name, len);
		if (c == 0) {
			*index_out = mid;
			return 0;
		}
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return cairn_err_set(-ENOENT, "no entry '%s' in tree", esc(buf, name, len));
}

/* ---- finding entries by path --------------------------------------------- */

int cairn_repo_tree_lookup_path(cairn_repo *repo, const struct cairn_id *root, const char *path,
                                struct cairn_tree_entry *out)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	const struct cairn_node *node = NULL;
	const char *p = path, *end = path;
	size_t len, idx;
	int r = cairn_repo_tree_load(repo, root, &t);

	while (r >= 0 && (p = cairn_path_next(p, &len), len > 0)) {
		if (len == 2 && p[0] == '.' && p[1] == '.')
			return cairn_err_set(-EINVAL, "'..' is not allowed in a snapshot path");
		if (node && node->type != CAIRN_NODE_DIR)
			return cairn_err_set(-ENOTDIR, "'%.*s' is not a directory",
			                     (int)(end - path), path);
		if (node) {
			cairn_tree *sub = NULL;
			if ((r = cairn_repo_tree_load(repo, &node->subtree, &sub)) < 0)
				return r;
			cairn_tree_free(t);
			t = sub;
		}
		if (cairn_tree_find(t, p, len, &idx) < 0)
			return cairn_err_set(-ENOENT, "'%.*s' is not in the snapshot",
			                     (int)(p + len - path), path);
		node = cairn_tree_node(t, idx);
		p += len;
		end = p;
	}
	if (r < 0)
		return r;
	/* "file/" (or "file/."), as for open(2): only a directory has a "/" after it. */
	if (node && node->type != CAIRN_NODE_DIR && *end)
		return cairn_err_set(-ENOTDIR, "'%.*s' is not a directory", (int)(end - path),
		                     path);
	*out = (struct cairn_tree_entry){ .parent = node ? TAKE_PTR(t) : NULL, .node = node };
	return 0;
}

/* ---- comparing ----------------------------------------------------------- */

static bool same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
	return alen == blen && (alen == 0 || a == b || memcmp(a, b, alen) == 0);
}

static bool same_xattrs(const struct cairn_node *a, const struct cairn_node *b)
{
	if (a->nxattrs != b->nxattrs)
		return false;
	for (size_t i = 0; i < a->nxattrs && a->xattrs != b->xattrs; i++) {
		const struct cairn_xattr *x = &a->xattrs[i], *y = &b->xattrs[i];
		if (!same_bytes(x->name, x->name_len, y->name, y->name_len) ||
		    !same_bytes(x->value, x->value_len, y->value, y->value_len))
			return false;
	}
	return true;
}

static bool same_extents(const struct cairn_node *a, const struct cairn_node *b)
{
	if (a->nextents != b->nextents)
		return false;
	for (size_t i = 0; i < a->nextents && a->extents != b->extents; i++)
		if (a->extents[i].len != b->extents[i].len ||
		    cairn_id_cmp(&a->extents[i].id, &b->extents[i].id) != 0)
			return false;
	return true;
}

/* The fields compared by one scalar test each, with their bit. */
static unsigned scalar_diff(const struct cairn_node *a, const struct cairn_node *b)
{
	return (a->type != b->type ? CAIRN_NODE_F_TYPE : 0) |
	       (a->flags != b->flags ? CAIRN_NODE_F_FLAGS : 0) |
	       (a->mode != b->mode ? CAIRN_NODE_F_MODE : 0) |
	       (a->uid != b->uid ? CAIRN_NODE_F_UID : 0) |
	       (a->gid != b->gid ? CAIRN_NODE_F_GID : 0) |
	       (a->size != b->size ? CAIRN_NODE_F_SIZE : 0) |
	       (a->mtime_ns != b->mtime_ns ? CAIRN_NODE_F_MTIME : 0) |
	       (a->ctime_ns != b->ctime_ns ? CAIRN_NODE_F_CTIME : 0) |
	       (a->atime_ns != b->atime_ns ? CAIRN_NODE_F_ATIME : 0) |
	       (a->dev != b->dev ? CAIRN_NODE_F_DEV : 0) |
	       (a->ino != b->ino ? CAIRN_NODE_F_INO : 0) |
	       (a->nlink != b->nlink ? CAIRN_NODE_F_NLINK : 0) |
	       (a->rdev != b->rdev ? CAIRN_NODE_F_RDEV : 0) |
	       (cairn_id_cmp(&a->subtree, &b->subtree) != 0 ? CAIRN_NODE_F_SUBTREE : 0);
}

unsigned cairn_node_diff(const struct cairn_node *a, const struct cairn_node *b, unsigned mask)
{
	unsigned d = scalar_diff(a, b) & mask;
	/* The byte strings and arrays only when asked for: they cost more. */
	if (mask & CAIRN_NODE_F_NAME && !same_bytes(a->name, a->name_len, b->name, b->name_len))
		d |= CAIRN_NODE_F_NAME;
	if (mask & CAIRN_NODE_F_USER && !same_bytes(a->user, a->user_len, b->user, b->user_len))
		d |= CAIRN_NODE_F_USER;
	if (mask & CAIRN_NODE_F_GROUP &&
	    !same_bytes(a->group, a->group_len, b->group, b->group_len))
		d |= CAIRN_NODE_F_GROUP;
	if (mask & CAIRN_NODE_F_TARGET &&
	    !same_bytes(a->target, a->target_len, b->target, b->target_len))
		d |= CAIRN_NODE_F_TARGET;
	if (mask & CAIRN_NODE_F_XATTRS && !same_xattrs(a, b))
		d |= CAIRN_NODE_F_XATTRS;
	if (mask & CAIRN_NODE_F_EXTENTS && !same_extents(a, b))
		d |= CAIRN_NODE_F_EXTENTS;
	return d;
}

unsigned cairn_node_ifmt(uint8_t type)
{
	static const unsigned fmt[] = {
		[CAIRN_NODE_FILE] = S_IFREG,    [CAIRN_NODE_DIR] = S_IFDIR,
		[CAIRN_NODE_SYMLINK] = S_IFLNK, [CAIRN_NODE_FIFO] = S_IFIFO,
		[CAIRN_NODE_SOCKET] = S_IFSOCK, [CAIRN_NODE_CHR] = S_IFCHR,
		[CAIRN_NODE_BLK] = S_IFBLK,
	};
	return type < sizeof(fmt) / sizeof(fmt[0]) ? fmt[type] : 0;
}

bool cairn_node_equal(const struct cairn_node *a, const struct cairn_node *b, unsigned mask)
{
	return cairn_node_diff(a, b, mask) == 0;
}

/* ---- encoding ------------------------------------------------------------ */

int cairn_tree_builder_new(cairn_tree_builder **out)
{
	cairn_tree_builder *b = calloc(1, sizeof(*b));
	if (!b)
		return cairn_err_set(-ENOMEM, "out of memory");
	*out = b;
	return 0;
}

void cairn_tree_builder_free(cairn_tree_builder *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->count; i++)
		free(b->e[i].mem);
	free(b->e);
	free(b);
}

size_t cairn_tree_builder_count(const cairn_tree_builder *b)
{
	return b->count;
}

static int xattr_cmp(const void *a, const void *b)
{
	const struct cairn_xattr *x = a, *y = b;
	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Bytes of the copy of n's variable parts. check_node() bounded every term, so the
 * sum cannot overflow except through nextents, which the caller bounded. */
static size_t copy_size(const struct cairn_node *n)
{
	size_t sz = n->nxattrs * sizeof(struct cairn_xattr) +
	            n->nextents * sizeof(struct cairn_extent) + n->name_len + n->user_len +
	            n->group_len + n->target_len;
	for (size_t i = 0; i < n->nxattrs; i++)
		sz += n->xattrs[i].name_len + n->xattrs[i].value_len;
	return sz;
}

static const uint8_t *dup_bytes(uint8_t **pos, const uint8_t *p, size_t n)
{
	uint8_t *d = *pos;
	if (n)
		memcpy(d, p, n);
	*pos += n;
	return n ? d : NULL;
}

/* Copy n into one block: the struct arrays first (malloc alignment), then the bytes. */
static int deep_copy(struct bentry *e, const struct cairn_node *n)
{
	_cleanup_free_ void *mem = malloc(copy_size(n) + 1);
	if (!mem)
		return cairn_err_set(-ENOMEM, "out of memory");
	struct cairn_xattr *xs = mem;
	struct cairn_extent *es = (struct cairn_extent *)(xs + n->nxattrs);
	uint8_t *pos = (uint8_t *)(es + n->nextents);

	e->node = *n;
	for (size_t i = 0; i < n->nxattrs; i++) {
		xs[i].name = dup_bytes(&pos, n->xattrs[i].name, n->xattrs[i].name_len);
		xs[i].name_len = n->xattrs[i].name_len;
		xs[i].value = dup_bytes(&pos, n->xattrs[i].value, n->xattrs[i].value_len);
		xs[i].value_len = n->xattrs[i].value_len;
	}
	if (n->nextents)
		memcpy(es, n->extents, n->nextents * sizeof(*es));
	qsort(xs, n->nxattrs, sizeof(*xs), xattr_cmp);
	e->node.xattrs = n->nxattrs ? xs : NULL;
	e->node.extents = n->nextents ? es : NULL;
	e->node.name = dup_bytes(&pos, n->name, n->name_len);
	e->node.user = dup_bytes(&pos, n->user, n->user_len);
	e->node.group = dup_bytes(&pos, n->group, n->group_len);
	e->node.target = dup_bytes(&pos, n->target, n->target_len);
	e->mem = TAKE_PTR(mem);
	return 0;
}

static int builder_check(const cairn_tree_builder *b, const struct cairn_node *n)
{
	char buf[64];
	int r;

	if (b->count >= CAIRN_TREE_MAX_ENTRIES)
		return cairn_err_set(-EINVAL, "tree has %u entries already",
		                     CAIRN_TREE_MAX_ENTRIES);
	if (n->nextents > CAIRN_TREE_MAX_SIZE / EXTENT_SIZE)
		r = cairn_err_set(-EINVAL, "%zu extents cannot fit in a tree", n->nextents);
	else
		r = check_node(n, -EINVAL);
	if (r < 0)
		return cairn_err_wrap(r, "tree entry '%s'", esc(buf, n->name, n->name_len));
	return 0;
}

int cairn_tree_builder_add(cairn_tree_builder *b, const struct cairn_node *node)
{
	char buf[64];
	int r = builder_check(b, node);
	if (r < 0)
		return r;
	if ((r = grow((void **)&b->e, &b->cap, b->count + 1, sizeof(*b->e))) < 0 ||
	    (r = deep_copy(&b->e[b->count], node)) < 0)
		return r;
	/* Sorted now, so a duplicate xattr name shows as a non-increasing pair. */
	if ((r = check_xattr_order(&b->e[b->count].node, -EINVAL)) < 0) {
		free(b->e[b->count].mem);
		return cairn_err_wrap(r, "tree entry '%s'", esc(buf, node->name, node->name_len));
	}
	b->count++;
	return 0;
}

static size_t encoded_size(const struct cairn_node *n)
{
	size_t sz = FIXED_SIZE + 3 + n->name_len + n->user_len + n->group_len;

	for (size_t i = 0; i < n->nxattrs; i++)
		sz += XATTR_MIN + n->xattrs[i].name_len + n->xattrs[i].value_len;
	if (n->type == CAIRN_NODE_FILE)
		sz += 4 + n->nextents * EXTENT_SIZE;
	else if (n->type == CAIRN_NODE_DIR)
		sz += CAIRN_ID_SIZE;
	else if (n->type == CAIRN_NODE_SYMLINK)
		sz += 2 + n->target_len;
	return sz;
}

static uint8_t *w_bytes(uint8_t *p, const void *src, size_t n)
{
	if (n)
		memcpy(p, src, n);
	return p + n;
}

static uint8_t *w_u8(uint8_t *p, uint8_t v)
{
	*p = v;
	return p + 1;
}

static uint8_t *w_u16(uint8_t *p, uint16_t v)
{
	cairn_le16(p, v);
	return p + 2;
}

static uint8_t *w_u32(uint8_t *p, uint32_t v)
{
	cairn_le32(p, v);
	return p + 4;
}

static uint8_t *w_u64(uint8_t *p, uint64_t v)
{
	cairn_le64(p, v);
	return p + 8;
}

static uint8_t *w_str8(uint8_t *p, const uint8_t *s, size_t n)
{
	return w_bytes(w_u8(p, (uint8_t)n), s, n);
}

static uint8_t *write_tail(uint8_t *p, const struct cairn_node *n)
{
	switch (n->type) {
	case CAIRN_NODE_FILE:
		p = w_u32(p, (uint32_t)n->nextents);
		for (size_t i = 0; i < n->nextents; i++)
			p = w_u64(w_bytes(p, n->extents[i].id.b, CAIRN_ID_SIZE), n->extents[i].len);
		return p;
	case CAIRN_NODE_DIR:
		return w_bytes(p, n->subtree.b, CAIRN_ID_SIZE);
	case CAIRN_NODE_SYMLINK:
		return w_bytes(w_u16(p, (uint16_t)n->target_len), n->target, n->target_len);
	default:
		return p;
	}
}

/* Field order of FORMAT.md §10; lengths were validated by cairn_tree_builder_add(). */
static uint8_t *write_node(uint8_t *p, const struct cairn_node *n)
{
	p = w_str8(p, n->name, n->name_len);
	p = w_u8(p, n->type);
	p = w_u32(p, n->flags);
	p = w_u16(p, (uint16_t)n->mode);
	p = w_u32(p, n->uid);
	p = w_u32(p, n->gid);
	p = w_str8(p, n->user, n->user_len);
	p = w_str8(p, n->group, n->group_len);
	p = w_u64(p, n->size);
	p = w_u64(p, (uint64_t)n->mtime_ns);
	p = w_u64(p, (uint64_t)n->ctime_ns);
	p = w_u64(p, (uint64_t)n->atime_ns);
	p = w_u64(p, n->dev);
	p = w_u64(p, n->ino);
	p = w_u32(p, n->nlink);
	p = w_u64(p, n->rdev);
	p = w_u16(p, (uint16_t)n->nxattrs);
	for (size_t i = 0; i < n->nxattrs; i++) {
		const struct cairn_xattr *x = &n->xattrs[i];
		p = w_u32(w_str8(p, x->name, x->name_len), (uint32_t)x->value_len);
		p = w_bytes(p, x->value, x->value_len);
	}
	return write_tail(p, n);
}

static int entry_cmp(const void *a, const void *b)
{
	const struct cairn_node *x = &((const struct bentry *)a)->node;
	const struct cairn_node *y = &((const struct bentry *)b)->node;
	return name_cmp(x->name, x->name_len, y->name, y->name_len);
}

/* Sort (the canonical order), reject duplicates and compute the exact size. */
static int prepare(cairn_tree_builder *b, size_t *size)
{
	char buf[64];
	size_t sz = HEADER_SIZE;

	if (b->count)
		qsort(b->e, b->count, sizeof(*b->e), entry_cmp);
	for (size_t i = 0; i < b->count; i++) {
		const struct cairn_node *n = &b->e[i].node;
		if (i > 0 && entry_cmp(&b->e[i - 1], &b->e[i]) == 0)
			return cairn_err_set(-EEXIST, "tree: duplicate entry '%s'",
			                     esc(buf, n->name, n->name_len));
		/* An entry is at most 64 MiB of extents plus 67 MiB of xattrs (bounded at add)
		 * and sz is checked after each, so the sum cannot wrap. */
		sz += encoded_size(n);
		if (sz > CAIRN_TREE_MAX_SIZE)
			return cairn_err_set(-EINVAL, "tree: more than %u bytes (at entry %zu)",
			                     CAIRN_TREE_MAX_SIZE, i);
	}
	*size = sz;
	return 0;
}

int cairn_tree_builder_encode(cairn_tree_builder *b, struct cairn_buf *out)
{
	size_t size = 0;
	int r;

	if ((r = prepare(b, &size)) < 0 || (r = cairn_buf_reserve(out, size)) < 0)
		return r;
	uint8_t *p = out->data + out->len;
	p = w_u32(w_u8(w_bytes(p, TREE_MAGIC, 4), TREE_VERSION), (uint32_t)b->count);
	for (size_t i = 0; i < b->count; i++)
		p = write_node(p, &b->e[i].node);
	assert(p == out->data + out->len + size); /* encoded_size() and write_node() agree */
	out->len += size;
	return 0;
}
