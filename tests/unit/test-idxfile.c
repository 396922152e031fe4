/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Index files (FORMAT.md §12): round trips, canonical order, corruption. */
#include "check.h"

#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "idxfile.h"

/* n entries of a pack, contiguous from offset 8. */
static void make_entries(struct cairn_pack_entry *e, size_t n, uint8_t seed)
{
	uint32_t off = CAIRN_PACK_MAGIC_SIZE;
	for (size_t i = 0; i < n; i++) {
		memset(&e[i], 0, sizeof(e[i]));
		e[i].id.b[0] = seed;
		e[i].id.b[1] = (uint8_t)i;
		e[i].type = i % 2 ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA;
		e[i].offset = off;
		e[i].stored_len = CAIRN_SEAL_OVERHEAD + 100 * (uint32_t)i;
		e[i].raw_len = 100 * (uint32_t)i;
		off += e[i].stored_len;
	}
}

static void build(struct cairn_buf *out, struct cairn_pack_entry e[2][3])
{
	struct cairn_idxfile_pack packs[2] = { 0 };
	struct cairn_id sup[2] = { 0 };
	make_entries(e[0], 3, 1);
	make_entries(e[1], 2, 2);
	for (int i = 0; i < 2; i++) {
		packs[i].id.b[0] = (uint8_t)(0x10 + i);
		packs[i].e = e[i];
		packs[i].n = i ? 2 : 3;
		packs[i].size = cairn_idxfile__pack_size(packs[i].e, packs[i].n);
		sup[i].b[31] = (uint8_t)(i + 1);
	}
	struct cairn_idxfile f = {
		.packs = packs, .npacks = 2, .supersedes = sup, .nsupersedes = 2
	};
	CHECK_OK(cairn_idxfile__encode(&f, out));
}

static void test_idxfile__round_trip(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_pack_entry e[2][3];
	struct cairn_idxfile *f = NULL;
	build(&b, e);
	CHECK_OK(cairn_idxfile__parse(&f, b.data, b.len));
	CHECK_EQ(f->npacks, 2);
	CHECK_EQ(f->packs[0].n, 3);
	CHECK_EQ(f->packs[1].n, 2);
	CHECK(memcmp(f->packs[0].e, e[0], 3 * sizeof(e[0][0])) == 0);
	CHECK(memcmp(f->packs[1].e, e[1], 2 * sizeof(e[1][0])) == 0);
	CHECK_EQ(f->packs[1].size, cairn_idxfile__pack_size(e[1], 2));
	CHECK_EQ(f->nsupersedes, 2);
	CHECK_EQ(f->supersedes[1].b[31], 2);
	cairn_idxfile__free(f);

	/* An empty file (prune of everything) is valid too. */
	struct cairn_idxfile empty = { 0 };
	b.len = 0;
	CHECK_OK(cairn_idxfile__encode(&empty, &b));
	CHECK_EQ(b.len, 4 + 1 + 4 + 4);
	CHECK_OK(cairn_idxfile__parse(&f, b.data, b.len));
	CHECK_EQ(f->npacks + f->nsupersedes, 0);
	cairn_idxfile__free(f);
}

static void test_idxfile__encode_refuses_unsorted(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_pack_entry e[3];
	make_entries(e, 3, 7);
	struct cairn_idxfile_pack packs[2] = { { .e = e, .n = 3 }, { .e = e, .n = 3 } };
	packs[0].size = packs[1].size = cairn_idxfile__pack_size(e, 3);
	struct cairn_idxfile f = { .packs = packs, .npacks = 2 };
	CHECK_ERR(cairn_idxfile__encode(&f, &b), -EINVAL); /* equal ids */
	CHECK_EQ(b.len, 0);
}

/* Every truncation and every single-byte change of a structural field fails. */
static void test_idxfile__corrupt(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_pack_entry e[2][3];
	struct cairn_idxfile *f = NULL;
	build(&b, e);
	for (size_t n = 0; n < b.len; n++) {
		CHECK_ERR(cairn_idxfile__parse(&f, b.data, n), -EBADMSG);
		CHECK(f == NULL);
	}
	/* Trailing garbage. */
	_cleanup_buf_ struct cairn_buf longer = CAIRN_BUF_INIT;
	CHECK_OK(cairn_buf_put(&longer, b.data, b.len));
	CHECK_OK(cairn_buf_put_u8(&longer, 0));
	CHECK_ERR(cairn_idxfile__parse(&f, longer.data, longer.len), -EBADMSG);
	/* Magic, version, count, a pack's size, an entry's type, an offset. */
	size_t first_entry = 4 + 1 + 4 + 32 + 8 + 4;
	size_t spots[] = { 0, 4, 5, 4 + 1 + 4 + 32, first_entry + 32, first_entry + 33 };
	for (size_t i = 0; i < sizeof(spots) / sizeof(spots[0]); i++) {
		b.data[spots[i]] ^= 0x40;
		CHECK_ERR(cairn_idxfile__parse(&f, b.data, b.len), -EBADMSG);
		b.data[spots[i]] ^= 0x40;
	}
	/* Two packs out of order. */
	b.data[9] = 0x20;
	CHECK_ERR(cairn_idxfile__parse(&f, b.data, b.len), -EBADMSG);
	/* A huge pack count is refused before allocating. */
	cairn_le32(b.data + 5, 0xffffffffu);
	CHECK_ERR(cairn_idxfile__parse(&f, b.data, b.len), -EBADMSG);
}

int main(void)
{
	RUN(test_idxfile__round_trip);
	RUN(test_idxfile__encode_refuses_unsorted);
	RUN(test_idxfile__corrupt);
	return 0;
}
