/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tree blob codec (FORMAT.md §10): round trips, canonical encoding, corruption. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/store.h"
#include "cleanup.h"

DEFINE_FREEP(cairn_tree, cairn_tree_free)
DEFINE_FREEP(cairn_tree_builder, cairn_tree_builder_free)

static const uint8_t acl_value[] = { 2, 0, 0, 0, 1, 0, 6, 0, 0xff, 0xff, 0xff, 0xff, 0, 0 };
static const struct cairn_xattr sample_xattrs[] = {
	/* Unsorted on purpose: the builder sorts them. */
	{ (const uint8_t *)"user.b", 6, (const uint8_t *)"\0\1\2\n\xff", 5 },
	{ (const uint8_t *)"system.posix_acl_access", 23, acl_value, sizeof(acl_value) },
	{ (const uint8_t *)"user.a", 6, NULL, 0 },
	{ (const uint8_t *)"user.a.longer", 13, (const uint8_t *)"v", 1 },
};

static struct cairn_id id_of(uint8_t seed)
{
	struct cairn_id id;
	check_random(id.b, sizeof(id.b), seed + 1);
	id.b[0] |= 1; /* never all-zero */
	return id;
}

/* A node with every common field set to something distinct. */
static struct cairn_node node(const char *name, uint8_t type)
{
	return (struct cairn_node){
		.name = (const uint8_t *)name,
		.name_len = strlen(name),
		.type = type,
		.mode = 0644,
		.uid = 1000,
		.gid = 100,
		.user = (const uint8_t *)"alice",
		.user_len = 5,
		.group = (const uint8_t *)"users",
		.group_len = 5,
		.mtime_ns = 1700000000123456789,
		.ctime_ns = -5,
		.atime_ns = INT64_MAX,
		.dev = 0x803,
		.ino = 123456789012ull,
		.nlink = 1,
	};
}

static void add_all_types(cairn_tree_builder *b)
{
	static struct cairn_extent ext[3];
	struct cairn_node n;

	ext[0] = (struct cairn_extent){ id_of(1), 1048576 };
	ext[1] = (struct cairn_extent){ { { 0 } }, 1ull << 40 }; /* a hole */
	ext[2] = (struct cairn_extent){ id_of(2), 17 };
	n = node("file", CAIRN_NODE_FILE);
	n.size = 1048576 + (1ull << 40) + 17;
	n.extents = ext;
	n.nextents = 3;
	n.nxattrs = ARRAY_SIZE(sample_xattrs);
	n.xattrs = sample_xattrs;
	n.flags = CAIRN_NODE_INCOMPLETE;
	n.mode = 07777;
	n.nlink = 3;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("empty", CAIRN_NODE_FILE);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("dir", CAIRN_NODE_DIR);
	n.subtree = id_of(3);
	n.size = 4096;
	n.mode = 01777;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("link", CAIRN_NODE_SYMLINK);
	n.target = (const uint8_t *)"../target\n\xff";
	n.target_len = 11;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("fifo", CAIRN_NODE_FIFO);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("sock", CAIRN_NODE_SOCKET);
	n.user_len = n.group_len = 0; /* unknown names */
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("null", CAIRN_NODE_CHR);
	n.rdev = (1 << 8) | 3;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("sda", CAIRN_NODE_BLK);
	n.rdev = 8 << 8;
	CHECK_OK(cairn_tree_builder_add(b, &n));
}

static void encode_all_types(struct cairn_buf *out)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	CHECK_OK(cairn_tree_builder_new(&b));
	add_all_types(b);
	CHECK_OK(cairn_tree_builder_encode(b, out));
}

static bool bytes_eq(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* Field-by-field equality; xattrs are compared against the sorted copy in e. */
static void check_node_eq(const struct cairn_node *a, const struct cairn_node *e)
{
	CHECK(bytes_eq(a->name, a->name_len, e->name, e->name_len));
	CHECK_EQ(a->type, e->type);
	CHECK_EQ(a->flags, e->flags);
	CHECK_EQ(a->mode, e->mode);
	CHECK_EQ(a->uid, e->uid);
	CHECK_EQ(a->gid, e->gid);
	CHECK(bytes_eq(a->user, a->user_len, e->user, e->user_len));
	CHECK(bytes_eq(a->group, a->group_len, e->group, e->group_len));
	CHECK(a->size == e->size);
	CHECK(a->mtime_ns == e->mtime_ns && a->ctime_ns == e->ctime_ns &&
	      a->atime_ns == e->atime_ns);
	CHECK(a->dev == e->dev && a->ino == e->ino && a->rdev == e->rdev);
	CHECK_EQ(a->nlink, e->nlink);
	CHECK(bytes_eq(a->target, a->target_len, e->target, e->target_len));
	CHECK(memcmp(&a->subtree, &e->subtree, sizeof(a->subtree)) == 0);
	CHECK_EQ(a->nxattrs, e->nxattrs);
	for (size_t i = 0; i < a->nxattrs; i++) {
		const struct cairn_xattr *x = &a->xattrs[i], *y = &e->xattrs[i];
		CHECK(bytes_eq(x->name, x->name_len, y->name, y->name_len));
		CHECK(bytes_eq(x->value, x->value_len, y->value, y->value_len));
	}
	CHECK_EQ(a->nextents, e->nextents);
	for (size_t i = 0; i < a->nextents; i++) {
		CHECK(a->extents[i].len == e->extents[i].len);
		CHECK(memcmp(&a->extents[i].id, &e->extents[i].id, CAIRN_ID_SIZE) == 0);
	}
}

static const struct cairn_node *find(const cairn_tree *t, const char *name)
{
	size_t i = SIZE_MAX;
	CHECK_OK(cairn_tree_find(t, name, strlen(name), &i));
	CHECK(i < cairn_tree_count(t));
	return cairn_tree_node(t, i);
}

static void test_tree__empty(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	size_t i;

	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	CHECK_EQ(out.len, 9);
	CHECK(memcmp(out.data, "CTRE\1\0\0\0\0", 9) == 0);
	CHECK_OK(cairn_tree_parse(&t, out.data, out.len));
	CHECK_EQ(cairn_tree_count(t), 0);
	CHECK(cairn_tree_node(t, 0) == NULL);
	CHECK_ERR(cairn_tree_find(t, "a", 1, &i), -ENOENT);
}

static void test_tree__roundtrip_all_types(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_free_ uint8_t *copy = NULL;

	encode_all_types(&out);
	/* Parse from a copy that is then wiped: the tree must not borrow the input. */
	CHECK((copy = malloc(out.len)) != NULL);
	memcpy(copy, out.data, out.len);
	CHECK_OK(cairn_tree_parse(&t, copy, out.len));
	memset(copy, 0xa5, out.len);
	CHECK_EQ(cairn_tree_count(t), 8);

	/* The builder's nodes are the expected values (its xattrs are sorted). */
	CHECK_OK(cairn_tree_builder_new(&b));
	add_all_types(b);
	static const char *const names[] = { "dir",  "empty", "fifo", "file",
		                             "link", "null",  "sda",  "sock" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		CHECK(bytes_eq(n->name, n->name_len, (const uint8_t *)names[i], strlen(names[i])));
	}
	_cleanup_(cairn_tree_freep) cairn_tree *expect = NULL;
	_cleanup_buf_ struct cairn_buf again = CAIRN_BUF_INIT;
	CHECK_OK(cairn_tree_builder_encode(b, &again));
	CHECK_OK(cairn_tree_parse(&expect, again.data, again.len));
	for (size_t i = 0; i < cairn_tree_count(t); i++) {
		check_node_eq(cairn_tree_node(t, i), cairn_tree_node(expect, i));
		CHECK(cairn_node_equal(cairn_tree_node(t, i), cairn_tree_node(expect, i),
		                       CAIRN_NODE_F_ALL));
	}

	/* Spot-check against the literal inputs too. */
	const struct cairn_node *f = find(t, "file");
	CHECK_EQ(f->nxattrs, 4);
	CHECK(bytes_eq(f->xattrs[0].name, f->xattrs[0].name_len,
	               (const uint8_t *)"system.posix_acl_access", 23));
	CHECK(bytes_eq(f->xattrs[0].value, f->xattrs[0].value_len, acl_value, sizeof(acl_value)));
	CHECK(bytes_eq(f->xattrs[1].name, f->xattrs[1].name_len, (const uint8_t *)"user.a", 6));
	CHECK_EQ(f->xattrs[1].value_len, 0);
	CHECK(bytes_eq(f->xattrs[2].name, f->xattrs[2].name_len, (const uint8_t *)"user.a.longer",
	               13));
	CHECK(bytes_eq(f->xattrs[3].value, f->xattrs[3].value_len, (const uint8_t *)"\0\1\2\n\xff",
	               5));
	CHECK_EQ(f->nextents, 3);
	CHECK(f->extents[1].len == 1ull << 40);
	struct cairn_id zero = { { 0 } }, one = id_of(1);
	CHECK(memcmp(&f->extents[1].id, &zero, sizeof(zero)) == 0);
	CHECK(memcmp(&f->extents[0].id, &one, sizeof(one)) == 0);
	CHECK_EQ(f->flags, CAIRN_NODE_INCOMPLETE);
	CHECK_EQ(f->mode, 07777);
	CHECK(f->atime_ns == INT64_MAX && f->ctime_ns == -5);
	CHECK(bytes_eq(f->user, f->user_len, (const uint8_t *)"alice", 5));
	const struct cairn_node *l = find(t, "link");
	CHECK(bytes_eq(l->target, l->target_len, (const uint8_t *)"../target\n\xff", 11));
	CHECK(l->nextents == 0 && l->extents == NULL && l->nxattrs == 0);
	struct cairn_id sub = id_of(3);
	CHECK(memcmp(&find(t, "dir")->subtree, &sub, sizeof(sub)) == 0);
	CHECK(find(t, "null")->rdev == ((1 << 8) | 3));
	CHECK_EQ(find(t, "sock")->user_len, 0);
	CHECK_EQ(find(t, "sda")->type, CAIRN_NODE_BLK);
	CHECK_EQ(find(t, "empty")->nextents, 0);
}

static void test_tree__odd_names(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	static uint8_t single[256], longest[255];
	static const char *const multi[] = { "a\nb",     "\n\n", "...", ".a",   "..a",
		                             "\xff\xfe", "aa",   "ab",  "a\xff" };
	size_t n = 0, idx;

	CHECK_OK(cairn_tree_builder_new(&b));
	for (int c = 1; c < 256; c++) {
		if (c == '/' || c == '.')
			continue;
		single[c] = (uint8_t)c;
		struct cairn_node nd = node("x", CAIRN_NODE_FIFO);
		nd.name = &single[c];
		nd.name_len = 1;
		CHECK_OK(cairn_tree_builder_add(b, &nd));
		n++;
	}
	for (size_t i = 0; i < ARRAY_SIZE(multi); i++, n++) {
		struct cairn_node nd = node(multi[i], CAIRN_NODE_FIFO);
		CHECK_OK(cairn_tree_builder_add(b, &nd));
	}
	memset(longest, 0xee, sizeof(longest));
	struct cairn_node nd = node("x", CAIRN_NODE_FIFO);
	nd.name = longest;
	nd.name_len = sizeof(longest);
	CHECK_OK(cairn_tree_builder_add(b, &nd));
	n++;
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	CHECK_OK(cairn_tree_parse(&t, out.data, out.len));
	CHECK_EQ(cairn_tree_count(t), n);

	/* memcmp order, shorter prefix first; every name is found where it sits. */
	for (size_t i = 0; i < n; i++) {
		const struct cairn_node *p = cairn_tree_node(t, i);
		CHECK_OK(cairn_tree_find(t, p->name, p->name_len, &idx));
		CHECK_EQ(idx, i);
		if (i == 0)
			continue;
		const struct cairn_node *q = cairn_tree_node(t, i - 1);
		size_t m = q->name_len < p->name_len ? q->name_len : p->name_len;
		int c = memcmp(q->name, p->name, m);
		CHECK(c < 0 || (c == 0 && q->name_len < p->name_len));
	}
	CHECK_OK(cairn_tree_find(t, longest, sizeof(longest), &idx));
	CHECK_EQ(cairn_tree_node(t, idx)->name_len, 255);
	CHECK(find(t, "a") < find(t, "a\nb") && find(t, "a\nb") < find(t, "ab"));
	CHECK_ERR(cairn_tree_find(t, "zz", 2, &idx), -ENOENT);
	CHECK_ERR(cairn_tree_find(t, "a\n", 2, &idx), -ENOENT);
}

static void test_tree__bad_nodes(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	static uint8_t name256[256];
	static char target[4097];
	struct cairn_xattr xs[2] = { sample_xattrs[0], sample_xattrs[0] };
	struct cairn_extent ext[2] = { { id_of(1), UINT64_MAX }, { id_of(2), 2 } };
	struct cairn_node n;

	CHECK_OK(cairn_tree_builder_new(&b));
#define BAD(setup)                                                 \
	do {                                                       \
		n = node("ok", CAIRN_NODE_FIFO);                   \
		setup;                                             \
		CHECK_ERR(cairn_tree_builder_add(b, &n), -EINVAL); \
	} while (0)
	BAD(n.name_len = 0);
	BAD(n.name = (const uint8_t *)"a/b"; n.name_len = 3);
	BAD(n.name = (const uint8_t *)"a\0b"; n.name_len = 3);
	BAD(n.name = (const uint8_t *)"."; n.name_len = 1);
	BAD(n.name = (const uint8_t *)".."; n.name_len = 2);
	BAD(n.name = name256; n.name_len = 256; memset(name256, 'a', 256));
	BAD(n.type = 0);
	BAD(n.type = 8);
	BAD(n.flags = 2);
	BAD(n.mode = 010000);
	BAD(n.user = (const uint8_t *)"a\0"; n.user_len = 2);
	BAD(n.group_len = 256; n.group = name256);
	BAD(n.xattrs = xs; n.nxattrs = 2); /* duplicate xattr name */
	BAD(xs[1].name_len = 0; n.xattrs = xs; n.nxattrs = 2);
	BAD(xs[1] = sample_xattrs[1]; xs[1].name = (const uint8_t *)"a\0b"; xs[1].name_len = 3;
	    n.xattrs = xs; n.nxattrs = 2);
	BAD(xs[1] = sample_xattrs[1]; xs[1].value = name256; xs[1].value_len = 65537; n.xattrs = xs;
	    n.nxattrs = 2);
	BAD(n.nxattrs = 1025; n.xattrs = xs);
	BAD(n.type = CAIRN_NODE_DIR); /* no subtree */
	BAD(n.subtree = id_of(1));    /* subtree on a fifo */
	BAD(n.target = (const uint8_t *)"t"; n.target_len = 1);
	BAD(n.type = CAIRN_NODE_SYMLINK);
	BAD(n.type = CAIRN_NODE_SYMLINK; n.flags = 3);
	BAD(n.type = CAIRN_NODE_SYMLINK; n.target = (const uint8_t *)"a\0"; n.target_len = 2);
	BAD(n.type = CAIRN_NODE_SYMLINK; memset(target, 'x', 4096);
	    n.target = (const uint8_t *)target; n.target_len = 4096);
	BAD(n.extents = ext + 1; n.nextents = 1); /* extents on a fifo */
	BAD(n.type = CAIRN_NODE_FILE; n.size = 3; n.extents = ext + 1; n.nextents = 1); /* sum */
	BAD(n.type = CAIRN_NODE_FILE; n.size = 1; n.extents = ext; n.nextents = 2); /* overflow */
	BAD(n.type = CAIRN_NODE_FILE; ext[0].len = 0; n.size = 2; n.extents = ext; n.nextents = 2);
	BAD(n.type = CAIRN_NODE_FILE; n.nextents = SIZE_MAX / 8; n.extents = ext);
#undef BAD
	CHECK_EQ(cairn_tree_builder_count(b), 0);

	/* An unreadable symlink target is stored empty, marked incomplete. */
	n = node("unreadable", CAIRN_NODE_SYMLINK);
	n.flags = CAIRN_NODE_INCOMPLETE;
	CHECK_OK(cairn_tree_builder_add(b, &n));

	/* The limits themselves are fine. */
	n = node("ok", CAIRN_NODE_SYMLINK);
	n.target = (const uint8_t *)target;
	n.target_len = 4095;
	n.xattrs = xs;
	n.nxattrs = 2;
	xs[0] = sample_xattrs[1];
	xs[1] = sample_xattrs[0];
	xs[1].name = name256;
	xs[1].name_len = 255;
	xs[1].value = (const uint8_t *)calloc(1, 65536);
	xs[1].value_len = 65536;
	CHECK(xs[1].value != NULL);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	free((void *)xs[1].value);
	CHECK_EQ(cairn_tree_builder_count(b), 2);
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	CHECK_OK(cairn_tree_parse(&t, out.data, out.len));
	CHECK_EQ(cairn_tree_node(t, 1)->target_len, 0);
	CHECK_EQ(cairn_tree_node(t, 0)->target_len, 4095);
	CHECK_EQ(cairn_tree_node(t, 0)->xattrs[0].name_len, 255); /* sorted before "system." */
	CHECK_EQ(cairn_tree_node(t, 0)->xattrs[0].value_len, 65536);
}

/* Many nodes with xattrs, added in three orders (and xattrs reversed): same bytes. */
static void build_many(struct cairn_buf *out, size_t count, unsigned order)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	struct cairn_xattr xs[ARRAY_SIZE(sample_xattrs)];
	char name[32];

	CHECK_OK(cairn_tree_builder_new(&b));
	for (size_t k = 0; k < count; k++) {
		size_t i = order == 0 ? k : order == 1 ? count - 1 - k : (k * 7919) % count;
		for (size_t j = 0; j < ARRAY_SIZE(xs); j++)
			xs[j] = sample_xattrs[order == 1 ? ARRAY_SIZE(xs) - 1 - j : j];
		snprintf(name, sizeof(name), "entry-%zu", i);
		struct cairn_node n = node(name, i % 3 ? CAIRN_NODE_FIFO : CAIRN_NODE_DIR);
		n.subtree = i % 3 ? (struct cairn_id){ { 0 } } : id_of((uint8_t)i);
		n.ino = i;
		n.xattrs = xs;
		n.nxattrs = i % 5 ? 0 : ARRAY_SIZE(xs);
		CHECK_OK(cairn_tree_builder_add(b, &n));
	}
	CHECK_OK(cairn_tree_builder_encode(b, out));
	/* Encoding again gives the same bytes. */
	_cleanup_buf_ struct cairn_buf again = CAIRN_BUF_INIT;
	CHECK_OK(cairn_tree_builder_encode(b, &again));
	CHECK(bytes_eq(out->data, out->len, again.data, again.len));
}

/* Re-encode every node of a parsed tree; must reproduce data exactly. */
static void check_reencode(const uint8_t *data, size_t len)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;

	CHECK_OK(cairn_tree_parse(&t, data, len));
	CHECK_OK(cairn_tree_builder_new(&b));
	for (size_t i = cairn_tree_count(t); i-- > 0;)
		CHECK_OK(cairn_tree_builder_add(b, cairn_tree_node(t, i)));
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	CHECK(bytes_eq(out.data, out.len, data, len));
}

static void test_tree__canonical(void)
{
	_cleanup_buf_ struct cairn_buf a = CAIRN_BUF_INIT, b = CAIRN_BUF_INIT, c = CAIRN_BUF_INIT;

	build_many(&a, 1000, 0);
	build_many(&b, 1000, 1);
	build_many(&c, 1000, 2);
	CHECK(a.len > 1000 * 81);
	CHECK(bytes_eq(a.data, a.len, b.data, b.len));
	CHECK(bytes_eq(a.data, a.len, c.data, c.len));
	check_reencode(a.data, a.len);
}

static void test_tree__duplicate_names(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_node n = node("same", CAIRN_NODE_FIFO);

	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n.type = CAIRN_NODE_SOCKET;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_buf_put(&out, "keep", 4));
	CHECK_ERR(cairn_tree_builder_encode(b, &out), -EEXIST);
	CHECK(bytes_eq(out.data, out.len, (const uint8_t *)"keep", 4));
}

static void test_tree__appends(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;

	CHECK_OK(cairn_buf_put(&out, "pre", 3));
	encode_all_types(&out);
	encode_all_types(&plain);
	CHECK(memcmp(out.data, "pre", 3) == 0);
	CHECK(bytes_eq(out.data + 3, out.len - 3, plain.data, plain.len));
}

static void test_tree__truncated(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	cairn_tree *t = NULL;

	encode_all_types(&out);
	for (size_t len = 0; len < out.len; len++) {
		CHECK_ERR(cairn_tree_parse(&t, out.data, len), -EBADMSG);
		CHECK(t == NULL);
	}
	CHECK_OK(cairn_buf_put_u8(&out, 0));
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "trailing") != NULL);
}

static void test_tree__byte_flips(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	static const uint8_t masks[] = { 0x01, 0x02, 0x10, 0x80, 0xff };
	size_t parsed = 0, rejected = 0;

	encode_all_types(&out);
	for (size_t i = 0; i < out.len; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			cairn_tree *t = NULL;
			out.data[i] ^= masks[m];
			int r = cairn_tree_parse(&t, out.data, out.len);
			CHECK(r == 0 || r == -EBADMSG);
			cairn_tree_free(t);
			if (r == 0) {
				check_reencode(out.data, out.len);
				parsed++;
			} else {
				rejected++;
			}
			out.data[i] ^= masks[m];
		}
	}
	/* Timestamps and ids take any value; magic, lengths and order do not. */
	CHECK(parsed > 0 && rejected > 0);
}

/* Two fifos with 1-byte names and empty user/group: 81 bytes each (FORMAT.md §10). */
static void two_fifos(struct cairn_buf *out)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	struct cairn_node n = node("a", CAIRN_NODE_FIFO);

	n.user_len = n.group_len = 0;
	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n.name = (const uint8_t *)"b";
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_tree_builder_encode(b, out));
	CHECK_EQ(out->len, 9 + 2 * 81);
	CHECK(out->data[10] == 'a' && out->data[9 + 81 + 1] == 'b');
}

static void test_tree__unsorted(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	cairn_tree *t = NULL;

	two_fifos(&out);
	check_reencode(out.data, out.len);
	out.data[10] = 'b';
	out.data[91] = 'a';
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[10] = 'a';
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "entry 1 at offset 90") != NULL);
	out.data[91] = '/';
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[91] = 'b';
	out.data[9 + 81 + 2] = CAIRN_NODE_SOCKET; /* type may change: still valid */
	check_reencode(out.data, out.len);
	CHECK(t == NULL);
}

static void test_tree__unsorted_xattrs(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_xattr xs[2] = { { (const uint8_t *)"user.b", 6, NULL, 0 },
		                     { (const uint8_t *)"user.a", 6, NULL, 0 } };
	struct cairn_node n = node("a", CAIRN_NODE_FIFO);
	cairn_tree *t = NULL;

	n.user_len = n.group_len = 0;
	n.xattrs = xs;
	n.nxattrs = 2;
	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	/* xattrs start after the 81-byte fixed part; each is 1 + 6 + 4 bytes here. */
	CHECK(memcmp(out.data + 9 + 81 + 1, "user.a", 6) == 0);
	CHECK(memcmp(out.data + 9 + 81 + 12, "user.b", 6) == 0);
	out.data[9 + 81 + 6] = 'b'; /* duplicate */
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[9 + 81 + 6] = 'c'; /* out of order */
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[9 + 81 + 6] = '0';
	check_reencode(out.data, out.len);
}

static void test_tree__extent_sum(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_extent ext = { id_of(9), 100 };
	struct cairn_node n = node("f", CAIRN_NODE_FILE);
	cairn_tree *t = NULL;

	n.user_len = n.group_len = 0;
	n.size = 100;
	n.extents = &ext;
	n.nextents = 1;
	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	/* size is at entry offset 2 + 1 + 4 + 2 + 8 + 2 = 19 */
	CHECK_EQ(cairn_get_le64(out.data + 9 + 19), 100);
	cairn_le64(out.data + 9 + 19, 101);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "sum") != NULL);
	cairn_le64(out.data + 9 + 19, 99);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le64(out.data + 9 + 19, 100);
	/* The extent length: the last 8 bytes. */
	cairn_le64(out.data + out.len - 8, 0);
	cairn_le64(out.data + 9 + 19, 0);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le64(out.data + out.len - 8, 100);
	cairn_le64(out.data + 9 + 19, 100);
	check_reencode(out.data, out.len);
}

static void test_tree__bad_header(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	cairn_tree *t = NULL;

	two_fifos(&out);
	out.data[0] = 'X';
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[0] = 'C';
	out.data[4] = 2;
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "version") != NULL);
	out.data[4] = 1;
	for (uint32_t count = 3; count != 0; count = count < 0x80000000u ? count * 2 : 0) {
		cairn_le32(out.data + 5, count);
		CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	}
	cairn_le32(out.data + 5, UINT32_MAX);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + 5, 1);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG); /* trailing entry */
	cairn_le32(out.data + 5, 2);
	check_reencode(out.data, out.len);

	/* Larger than §5.3 allows: rejected before looking at it. */
	_cleanup_free_ uint8_t *big = calloc(1, CAIRN_TREE_MAX_SIZE + 1);
	CHECK(big != NULL);
	memcpy(big, out.data, out.len);
	CHECK_ERR(cairn_tree_parse(&t, big, CAIRN_TREE_MAX_SIZE + 1), -EBADMSG);
	CHECK(t == NULL);
}

/* Extent counts are checked against the bytes left before anything is allocated. */
static void test_tree__huge_counts(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_node n = node("f", CAIRN_NODE_FILE);
	cairn_tree *t = NULL;

	n.user_len = n.group_len = 0;
	n.xattrs = sample_xattrs;
	n.nxattrs = 1;
	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_tree_builder_encode(b, &out));
	/* nextents is the last field of the only entry. */
	CHECK_EQ(cairn_get_le32(out.data + out.len - 4), 0);
	cairn_le32(out.data + out.len - 4, UINT32_MAX);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + out.len - 4, 0);
	/* nxattrs is at entry offset 79, then the xattr: str8 "user.b", u32 value length. */
	CHECK_EQ(out.data[9 + 79], 1);
	out.data[9 + 79] = 0xff;
	out.data[9 + 80] = 0xff;
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	out.data[9 + 79] = 1;
	out.data[9 + 80] = 0;
	CHECK_EQ(cairn_get_le32(out.data + 9 + 81 + 7), 5);
	cairn_le32(out.data + 9 + 81 + 7, 0xffffffffu);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + 9 + 81 + 7, 65537);
	CHECK_ERR(cairn_tree_parse(&t, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + 9 + 81 + 7, 5);
	check_reencode(out.data, out.len);
}

static void test_tree__large_directory(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	char name[32];
	size_t idx;

	build_many(&out, 100000, 2);
	CHECK_OK(cairn_tree_parse(&t, out.data, out.len));
	CHECK_EQ(cairn_tree_count(t), 100000);
	for (size_t i = 0; i < 100000; i += 997) {
		snprintf(name, sizeof(name), "entry-%zu", i);
		CHECK_OK(cairn_tree_find(t, name, strlen(name), &idx));
		CHECK(cairn_tree_node(t, idx)->ino == i);
	}
	CHECK_ERR(cairn_tree_find(t, "entry-100000", 12, &idx), -ENOENT);
}

static void test_tree__too_large(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_free_ uint8_t *value = calloc(1, 65536);
	struct cairn_xattr x = { (const uint8_t *)"user.big", 8, value, 65536 };
	char name[32];

	CHECK(value != NULL);
	CHECK_OK(cairn_tree_builder_new(&b));
	/* Each entry takes about 65.6 KB: 1020 fit in 64 MiB, 1025 do not. */
	for (size_t i = 0; i < 1025; i++) {
		if (i == 1020) {
			CHECK_OK(cairn_tree_builder_encode(b, &out));
			CHECK(out.len < CAIRN_TREE_MAX_SIZE);
		}
		snprintf(name, sizeof(name), "%zu", i);
		struct cairn_node n = node(name, CAIRN_NODE_FIFO);
		n.xattrs = &x;
		n.nxattrs = 1;
		CHECK_OK(cairn_tree_builder_add(b, &n));
	}
	size_t before = out.len;
	CHECK_ERR(cairn_tree_builder_encode(b, &out), -EINVAL);
	CHECK_EQ(out.len, before);
}

/* ---- comparing nodes ------------------------------------------------------ */

static const struct cairn_xattr cmp_xattrs[] = {
	{ (const uint8_t *)"user.a", 6, (const uint8_t *)"1", 1 },
	{ (const uint8_t *)"user.b", 6, (const uint8_t *)"22", 2 },
};
/* 100 bytes of data, then a hole of 50. */
static const struct cairn_extent cmp_extents[] = {
	{ { { 1 } }, 100 },
	{ { { 0 } }, 50 },
};

static struct cairn_node file_node(void)
{
	return (struct cairn_node){ .name = (const uint8_t *)"file",
		                    .name_len = 4,
		                    .type = CAIRN_NODE_FILE,
		                    .mode = 0644,
		                    .uid = 1000,
		                    .gid = 100,
		                    .user = (const uint8_t *)"me",
		                    .user_len = 2,
		                    .group = (const uint8_t *)"users",
		                    .group_len = 5,
		                    .size = 150,
		                    .mtime_ns = 1,
		                    .ctime_ns = 2,
		                    .atime_ns = 3,
		                    .dev = 4,
		                    .ino = 5,
		                    .nlink = 1,
		                    .nxattrs = 2,
		                    .xattrs = cmp_xattrs,
		                    .nextents = 2,
		                    .extents = cmp_extents };
}

/* Encode nodes into a tree and parse it back (deep copies, other pointers). */
static cairn_tree *encode_parse(const struct cairn_node *nodes, size_t n)
{
	cairn_tree_builder *b = NULL;
	struct cairn_buf buf = CAIRN_BUF_INIT;
	cairn_tree *t = NULL;
	CHECK_OK(cairn_tree_builder_new(&b));
	for (size_t i = 0; i < n; i++)
		CHECK_OK(cairn_tree_builder_add(b, &nodes[i]));
	CHECK_OK(cairn_tree_builder_encode(b, &buf));
	CHECK_OK(cairn_tree_parse(&t, buf.data, buf.len));
	cairn_tree_builder_free(b);
	cairn_buf_release(&buf);
	return t;
}

static void test_tree__node_equal_after_roundtrip(void)
{
	struct cairn_node n = file_node();
	cairn_tree *t = encode_parse(&n, 1);
	CHECK_EQ(cairn_node_diff(&n, cairn_tree_node(t, 0), CAIRN_NODE_F_ALL), 0);
	CHECK(cairn_node_equal(&n, cairn_tree_node(t, 0), CAIRN_NODE_F_ALL));
	cairn_tree_free(t);
}

/* Each field changed alone shows as its own bit, and only in a mask that has it. */
static void test_tree__node_diff_each_field(void)
{
	const struct cairn_node a = file_node();
	static const struct cairn_xattr other_xattrs[] = {
		{ (const uint8_t *)"user.a", 6, (const uint8_t *)"1", 1 },
		{ (const uint8_t *)"user.b", 6, (const uint8_t *)"23", 2 },
	};
	static const struct cairn_extent other_extents[] = {
		{ { { 1 } }, 100 },
		{ { { 2 } }, 50 },
	};
	struct {
		unsigned field;
		struct cairn_node b;
	} cases[22];
	size_t n = 0;
#define CASE(f, stmt)                               \
	do {                                        \
		cases[n].field = (f);               \
		cases[n].b = a;                     \
		struct cairn_node *b = &cases[n].b; \
		stmt;                               \
		n++;                                \
	} while (0)
	CASE(CAIRN_NODE_F_NAME, b->name = (const uint8_t *)"filf");
	CASE(CAIRN_NODE_F_NAME, b->name_len = 3);
	CASE(CAIRN_NODE_F_TYPE, b->type = CAIRN_NODE_FIFO);
	CASE(CAIRN_NODE_F_FLAGS, b->flags = CAIRN_NODE_INCOMPLETE);
	CASE(CAIRN_NODE_F_MODE, b->mode = 0600);
	CASE(CAIRN_NODE_F_UID, b->uid = 0);
	CASE(CAIRN_NODE_F_GID, b->gid = 0);
	CASE(CAIRN_NODE_F_USER, b->user = (const uint8_t *)"mf");
	CASE(CAIRN_NODE_F_GROUP, b->group_len = 0);
	CASE(CAIRN_NODE_F_SIZE, b->size = 151);
	CASE(CAIRN_NODE_F_MTIME, b->mtime_ns = -1);
	CASE(CAIRN_NODE_F_CTIME, b->ctime_ns = 0);
	CASE(CAIRN_NODE_F_ATIME, b->atime_ns = 0);
	CASE(CAIRN_NODE_F_DEV, b->dev = 0);
	CASE(CAIRN_NODE_F_INO, b->ino = 0);
	CASE(CAIRN_NODE_F_NLINK, b->nlink = 2);
	CASE(CAIRN_NODE_F_RDEV, b->rdev = 7);
	CASE(CAIRN_NODE_F_XATTRS, b->xattrs = other_xattrs);
	CASE(CAIRN_NODE_F_XATTRS, b->nxattrs = 1);
	CASE(CAIRN_NODE_F_TARGET, (b->target = (const uint8_t *)"x", b->target_len = 1));
	CASE(CAIRN_NODE_F_SUBTREE, b->subtree.b[31] = 1);
	CASE(CAIRN_NODE_F_EXTENTS, b->extents = other_extents);
#undef CASE
	CHECK_EQ(n, sizeof(cases) / sizeof(cases[0]));
	for (size_t i = 0; i < n; i++) {
		const struct cairn_node *b = &cases[i].b;
		CHECK_EQ(cairn_node_diff(&a, b, CAIRN_NODE_F_ALL), cases[i].field);
		CHECK_EQ(cairn_node_diff(b, &a, CAIRN_NODE_F_ALL), cases[i].field);
		CHECK_EQ(cairn_node_diff(&a, b, CAIRN_NODE_F_ALL & ~cases[i].field), 0);
		CHECK(!cairn_node_equal(&a, b, cases[i].field));
		CHECK(cairn_node_equal(&a, b, CAIRN_NODE_F_ALL & ~cases[i].field));
	}
	/* Every bit of CAIRN_NODE_F_ALL is covered above. */
	unsigned all = 0;
	for (size_t i = 0; i < n; i++)
		all |= cases[i].field;
	CHECK_EQ(all, CAIRN_NODE_F_ALL);
	/* Several at once. */
	struct cairn_node b = a;
	b.mode = 0;
	b.extents = other_extents;
	CHECK_EQ(cairn_node_diff(&a, &b, CAIRN_NODE_F_ALL),
	         CAIRN_NODE_F_MODE | CAIRN_NODE_F_EXTENTS);
}

/* ---- trees in a repository -------------------------------------------------- */

static cairn_repo *tree_repo(void)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = -1,
		                     .kdf_log2n = 10 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	cairn_repo *repo = NULL;
	char path[512];
	snprintf(path, sizeof(path), "%s/repo", check_tmpdir());
	CHECK_OK(cairn_repo_init(path, "pw", 2, &o));
	CHECK_OK(cairn_repo_open(&repo, path, "pw", 2, &ro));
	return repo;
}

/* Encode nodes and store them as a tree blob; returns its ID. */
static struct cairn_id put_tree(cairn_repo *repo, const struct cairn_node *nodes, size_t n)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf buf = CAIRN_BUF_INIT;
	struct cairn_id id;
	CHECK_OK(cairn_tree_builder_new(&b));
	for (size_t i = 0; i < n; i++)
		CHECK_OK(cairn_tree_builder_add(b, &nodes[i]));
	CHECK_OK(cairn_tree_builder_encode(b, &buf));
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_TREE, buf.data, buf.len, NULL, &id));
	return id;
}

static void test_tree__repo_tree_load(void)
{
	cairn_repo *repo = tree_repo();
	struct cairn_node n[2] = { file_node(), file_node() };
	n[1].name = (const uint8_t *)"gile";
	struct cairn_id id = put_tree(repo, n, 2), data;
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_DATA, "x", 1, NULL, &data));
	CHECK_OK(cairn_repo_flush(repo));

	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	CHECK_OK(cairn_repo_tree_load(repo, &id, &t));
	CHECK_EQ(cairn_tree_count(t), 2);
	CHECK(cairn_node_equal(cairn_tree_node(t, 1), &n[1], CAIRN_NODE_F_ALL));
	CHECK(cairn_tree_memory(t) > 2 * sizeof(struct cairn_node));
	/* A data blob is no tree; an unknown ID is not there. */
	cairn_tree *bad = NULL;
	CHECK_ERR(cairn_repo_tree_load(repo, &data, &bad), -EBADMSG);
	data.b[0] ^= 1;
	CHECK_ERR(cairn_repo_tree_load(repo, &data, &bad), -ENOENT);
	CHECK(bad == NULL);
	cairn_repo_close(repo);
}

static void test_tree__repo_tree_lookup_path(void)
{
	cairn_repo *repo = tree_repo();
	struct cairn_node inner[2] = { file_node(), node("l", CAIRN_NODE_SYMLINK) };
	inner[0].name = (const uint8_t *)"b";
	inner[0].name_len = 1;
	inner[1].target = (const uint8_t *)"b";
	inner[1].target_len = 1;
	struct cairn_node top[2] = { node("a", CAIRN_NODE_DIR), file_node() };
	top[0].subtree = put_tree(repo, inner, 2);
	struct cairn_id root = put_tree(repo, top, 2);
	CHECK_OK(cairn_repo_flush(repo));

	struct cairn_tree_entry e = { 0 };
	CHECK_OK(cairn_repo_tree_lookup_path(repo, &root, "/", &e));
	CHECK(e.node == NULL && e.parent == NULL);
	static const char *const to_b[] = { "/a/b", "a/b", "//a/./b", "./a//b" };
	for (size_t i = 0; i < ARRAY_SIZE(to_b); i++) {
		CHECK_OK(cairn_repo_tree_lookup_path(repo, &root, to_b[i], &e));
		CHECK(cairn_node_equal(e.node, &inner[0], CAIRN_NODE_F_ALL));
		CHECK(e.node == cairn_tree_node(e.parent, 0));
		cairn_tree_free(e.parent);
	}
	CHECK_OK(cairn_repo_tree_lookup_path(repo, &root, "/a", &e));
	CHECK_EQ(e.node->type, CAIRN_NODE_DIR);
	cairn_tree_free(e.parent);
	CHECK_OK(cairn_repo_tree_lookup_path(repo, &root, "/a/./", &e));
	CHECK_EQ(e.node->type, CAIRN_NODE_DIR);
	cairn_tree_free(e.parent);

	e = (struct cairn_tree_entry){ 0 };
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/b/c", &e), -ENOTDIR);
	CHECK(strstr(cairn_err_msg(), "'/a/b' is not a directory") != NULL);
	/* A file with a '/' after it is not a directory either (open(2): ENOTDIR). */
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/b/", &e), -ENOTDIR);
	CHECK(strstr(cairn_err_msg(), "'/a/b' is not a directory") != NULL);
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/b/.", &e), -ENOTDIR);
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/l/", &e), -ENOTDIR);
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/l/x", &e), -ENOTDIR);
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/x", &e), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "'/a/x'") != NULL);
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &root, "/a/../a", &e), -EINVAL);
	CHECK(e.node == NULL && e.parent == NULL); /* untouched on failure */
	struct cairn_id none = root;
	none.b[0] ^= 1;
	CHECK_ERR(cairn_repo_tree_lookup_path(repo, &none, "/a", &e), -ENOENT);
	cairn_repo_close(repo);
}

int main(void)
{
	RUN(test_tree__empty);
	RUN(test_tree__roundtrip_all_types);
	RUN(test_tree__odd_names);
	RUN(test_tree__bad_nodes);
	RUN(test_tree__canonical);
	RUN(test_tree__duplicate_names);
	RUN(test_tree__appends);
	RUN(test_tree__truncated);
	RUN(test_tree__byte_flips);
	RUN(test_tree__unsorted);
	RUN(test_tree__unsorted_xattrs);
	RUN(test_tree__extent_sum);
	RUN(test_tree__bad_header);
	RUN(test_tree__huge_counts);
	RUN(test_tree__large_directory);
	RUN(test_tree__too_large);
	RUN(test_tree__node_equal_after_roundtrip);
	RUN(test_tree__node_diff_each_field);
	RUN(test_tree__repo_tree_load);
	RUN(test_tree__repo_tree_lookup_path);
	return 0;
}
