/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Index files (FORMAT.md §12): encoding and validation of their plaintext. */
#include "idxfile.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/* A pack's header is stored raw (FORMAT.md §6.2), so its sealed length is exact. */
static uint64_t hdr_sealed_len(size_t n)
{
	return CAIRN_SEAL_OVERHEAD + 4 + (uint64_t)n * CAIRN_PACK_ENTRY_SIZE;
}

uint64_t cairn_idxfile__pack_size(const struct cairn_pack_entry *e, size_t n)
{
	uint64_t end = n ? (uint64_t)e[n - 1].offset + e[n - 1].stored_len : CAIRN_PACK_MAGIC_SIZE;
	return end + hdr_sealed_len(n) + CAIRN_PACK_TRAILER_SIZE;
}

static int put_entries(struct cairn_buf *out, const struct cairn_idxfile_pack *p)
{
	int r = cairn_buf_put(out, p->id.b, CAIRN_ID_SIZE);
	if (r >= 0)
		r = cairn_buf_put_u64(out, p->size);
	if (r >= 0)
		r = cairn_buf_put_u32(out, (uint32_t)p->n);
	for (size_t i = 0; r >= 0 && i < p->n; i++) {
		const struct cairn_pack_entry *e = &p->e[i];
		if ((r = cairn_buf_put(out, e->id.b, CAIRN_ID_SIZE)) >= 0 &&
		    (r = cairn_buf_put_u8(out, e->type)) >= 0 &&
		    (r = cairn_buf_put_u32(out, e->offset)) >= 0 &&
		    (r = cairn_buf_put_u32(out, e->stored_len)) >= 0)
			r = cairn_buf_put_u32(out, e->raw_len);
	}
	return r;
}

static int check_sorted(const struct cairn_idxfile *f)
{
	for (size_t i = 1; i < f->npacks; i++)
		if (cairn_id_cmp(&f->packs[i - 1].id, &f->packs[i].id) >= 0)
			return cairn_err_set(-EINVAL, "index file: packs not sorted");
	for (size_t i = 1; i < f->nsupersedes; i++)
		if (cairn_id_cmp(&f->supersedes[i - 1], &f->supersedes[i]) >= 0)
			return cairn_err_set(-EINVAL, "index file: superseded files not sorted");
	if (f->npacks > CAIRN_IDXFILE_MAX_PACKS || f->nsupersedes > CAIRN_IDXFILE_MAX_SUPERSEDES)
		return cairn_err_set(-EINVAL, "index file: too many records");
	return 0;
}

int cairn_idxfile__encode(const struct cairn_idxfile *f, struct cairn_buf *out)
{
	size_t start = out->len;
	int r = check_sorted(f);
	if (r >= 0)
		r = cairn_buf_put(out, CAIRN_IDXFILE_MAGIC, 4);
	if (r >= 0)
		r = cairn_buf_put_u8(out, CAIRN_IDXFILE_VERSION);
	if (r >= 0)
		r = cairn_buf_put_u32(out, (uint32_t)f->npacks);
	for (size_t i = 0; r >= 0 && i < f->npacks; i++)
		r = put_entries(out, &f->packs[i]);
	if (r >= 0)
		r = cairn_buf_put_u32(out, (uint32_t)f->nsupersedes);
	for (size_t i = 0; r >= 0 && i < f->nsupersedes; i++)
		r = cairn_buf_put(out, f->supersedes[i].b, CAIRN_ID_SIZE);
	if (r >= 0 && out->len - start > CAIRN_IDXFILE_MAX_SIZE)
		r = cairn_err_set(-EINVAL, "index file would exceed %u bytes",
		                  CAIRN_IDXFILE_MAX_SIZE);
	if (r < 0)
		out->len = start;
	return r;
}

void cairn_idxfile__free(struct cairn_idxfile *f)
{
	if (!f)
		return;
	free(f->packs);
	free(f->supersedes);
	free(f->entries_);
	free(f);
}

static size_t pos(const struct cairn_rd *rd, size_t len)
{
	return len - rd->left;
}

/* One entry of a pack record; expect is where it must start (contiguous). */
static int parse_entry(struct cairn_rd *rd, struct cairn_pack_entry *e, uint64_t expect)
{
	int r = cairn_rd_copy(rd, e->id.b, CAIRN_ID_SIZE);
	if (r >= 0)
		r = cairn_rd_u8(rd, &e->type);
	if (r >= 0)
		r = cairn_rd_u32(rd, &e->offset);
	if (r >= 0)
		r = cairn_rd_u32(rd, &e->stored_len);
	if (r >= 0)
		r = cairn_rd_u32(rd, &e->raw_len);
	if (r < 0)
		return r;
	if ((e->type != CAIRN_BLOB_DATA && e->type != CAIRN_BLOB_TREE) || e->offset != expect ||
	    e->stored_len < CAIRN_SEAL_OVERHEAD || e->raw_len > CAIRN_TREE_MAX)
		return -EBADMSG;
	return 0;
}

static int parse_pack(struct cairn_rd *rd, size_t len, struct cairn_idxfile_pack *p,
                      struct cairn_pack_entry *arena, size_t *used, size_t cap)
{
	uint32_t n;
	size_t at = pos(rd, len);
	int r = cairn_rd_copy(rd, p->id.b, CAIRN_ID_SIZE);
	if (r >= 0)
		r = cairn_rd_u64(rd, &p->size);
	if (r >= 0)
		r = cairn_rd_u32(rd, &n);
	if (r < 0 || n == 0 || n > CAIRN_PACK_MAX_ENTRIES || n > cap - *used ||
	    (uint64_t)n * CAIRN_PACK_ENTRY_SIZE > rd->left)
		return cairn_err_set(-EBADMSG, "index file: bad pack record at offset %zu", at);
	struct cairn_pack_entry *e = arena + *used;
	uint64_t off = CAIRN_PACK_MAGIC_SIZE;
	for (uint32_t i = 0; i < n; i++, off += e[i - 1].stored_len)
		if (parse_entry(rd, &e[i], off) < 0)
			return cairn_err_set(-EBADMSG,
			                     "index file: bad entry %u of the pack at offset %zu",
			                     i, at);
	if (cairn_idxfile__pack_size(e, n) != p->size)
		return cairn_err_set(-EBADMSG,
		                     "index file: the pack at offset %zu cannot be %llu bytes", at,
		                     (unsigned long long)p->size);
	p->e = e;
	p->n = n;
	*used += n;
	return 0;
}

static int parse_packs(struct cairn_idxfile *f, struct cairn_rd *rd, size_t len)
{
	uint32_t n;
	if (cairn_rd_u32(rd, &n) < 0 || n > CAIRN_IDXFILE_MAX_PACKS ||
	    (uint64_t)n * CAIRN_IDXFILE_PACK_MIN > rd->left)
		return cairn_err_set(-EBADMSG, "index file: bad pack count at offset 5");
	/* Every entry takes 45 bytes of the input: that bounds the arena. */
	size_t cap = rd->left / CAIRN_PACK_ENTRY_SIZE;
	if (!(f->packs = calloc(n ? n : 1, sizeof(*f->packs))) ||
	    !(f->entries_ = calloc(cap ? cap : 1, sizeof(*f->entries_))))
		return cairn_err_set(-ENOMEM, "out of memory");
	size_t used = 0;
	for (uint32_t i = 0; i < n; i++) {
		int r = parse_pack(rd, len, &f->packs[i], f->entries_, &used, cap);
		if (r < 0)
			return r;
		if (i && cairn_id_cmp(&f->packs[i - 1].id, &f->packs[i].id) >= 0)
			return cairn_err_set(-EBADMSG, "index file: pack %u out of order", i);
		f->npacks = i + 1;
	}
	return 0;
}

static int parse_supersedes(struct cairn_idxfile *f, struct cairn_rd *rd)
{
	uint32_t n;
	if (cairn_rd_u32(rd, &n) < 0 || n > CAIRN_IDXFILE_MAX_SUPERSEDES ||
	    (uint64_t)n * CAIRN_ID_SIZE != rd->left)
		return cairn_err_set(-EBADMSG, "index file: bad list of superseded files");
	if (!(f->supersedes = calloc(n ? n : 1, sizeof(*f->supersedes))))
		return cairn_err_set(-ENOMEM, "out of memory");
	for (uint32_t i = 0; i < n; i++) {
		cairn_rd_copy(rd, f->supersedes[i].b, CAIRN_ID_SIZE); /* length checked above */
		if (i && cairn_id_cmp(&f->supersedes[i - 1], &f->supersedes[i]) >= 0)
			return cairn_err_set(-EBADMSG,
			                     "index file: superseded file %u out of order", i);
	}
	f->nsupersedes = n;
	return 0;
}

int cairn_idxfile__parse(struct cairn_idxfile **out, const uint8_t *p, size_t len)
{
	struct cairn_rd rd = { p, len };
	const uint8_t *magic;
	uint8_t version;
	if (len > CAIRN_IDXFILE_MAX_SIZE || cairn_rd_take(&rd, 4, &magic) < 0 ||
	    memcmp(magic, CAIRN_IDXFILE_MAGIC, 4) != 0 || cairn_rd_u8(&rd, &version) < 0)
		return cairn_err_set(-EBADMSG, "not an index file");
	if (version != CAIRN_IDXFILE_VERSION)
		return cairn_err_set(-EBADMSG, "index file version %u is unknown", version);
	struct cairn_idxfile *f = calloc(1, sizeof(*f));
	if (!f)
		return cairn_err_set(-ENOMEM, "out of memory");
	int r = parse_packs(f, &rd, len);
	if (r >= 0)
		r = parse_supersedes(f, &rd);
	if (r < 0) {
		cairn_idxfile__free(f);
		return r;
	}
	*out = f;
	return 0;
}
