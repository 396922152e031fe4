/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Content-defined chunking: keyed FastCDC with normalized chunking level 2 (FORMAT.md §9). */
#include "cairn/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "crypt.h"
#include "cleanup.h"

/* The gear hash is a 64-bit shift register: a byte's table entry leaves it after
 * 64 more bytes, so h depends on the last 64 bytes only (FORMAT.md §9). */
#define WINDOW 64

#define PARAM_FLOOR (64u * 1024)
#define PARAM_CEIL (64u * 1024 * 1024)

struct cairn_chunker {
	_Alignas(64) uint64_t gear[256]; /* 32 cache lines, not 33 */
	uint64_t mask_s;                 /* top b + 2 bits: cut test for chunk lengths <= avg */
	uint64_t mask_l;                 /* top b - 2 bits: after avg */
	struct cairn_chunk_params p;
};

static int check_params(const struct cairn_chunk_params *p)
{
	if (p->avg == 0 || (p->avg & (p->avg - 1)) != 0)
		return cairn_err_set(-EINVAL, "chunk-avg %u is not a power of two", p->avg);
	if (p->min < PARAM_FLOOR || p->max > PARAM_CEIL)
		return cairn_err_set(-EINVAL, "chunk sizes %u/%u/%u outside 64 KiB .. 64 MiB",
		                     p->min, p->avg, p->max);
	if (!(p->min < p->avg && p->avg < p->max))
		return cairn_err_set(-EINVAL, "chunk sizes %u/%u/%u: need min < avg < max", p->min,
		                     p->avg, p->max);
	return 0;
}

/* G[0..255] from HMAC-SHA-256(K_gear, "cairn v1 gear" || u32le i), i = 0..63, each
 * MAC read as four u64 LE (FORMAT.md §9). */
static int gear_table(uint64_t g[256], const uint8_t key[CAIRN_KEY_SIZE])
{
	static const char label[] = "cairn v1 gear";
	uint8_t msg[sizeof(label) - 1 + 4], mac[32];

	memcpy(msg, label, sizeof(label) - 1);
	for (uint32_t i = 0; i < 64; i++) {
		cairn_le32(msg + sizeof(label) - 1, i);
		int r = cairn_crypt__hmac(key, msg, sizeof(msg), mac);
		if (r < 0)
			return r;
		for (int j = 0; j < 4; j++)
			g[4 * i + j] = cairn_get_le64(mac + 8 * j);
	}
	return 0;
}

int cairn_chunker_new(cairn_chunker **out, const struct cairn_chunk_params *p,
                      const uint8_t gear_key[32])
{
	int r = check_params(p);
	if (r < 0)
		return r;
	_cleanup_free_ cairn_chunker *c = aligned_alloc(_Alignof(cairn_chunker), sizeof(*c));
	if (!c)
		return cairn_err_set(-ENOMEM, "cannot allocate chunker");
	unsigned b = (unsigned)__builtin_ctz(p->avg); /* 17..25 after check_params */
	c->mask_s = ~UINT64_C(0) << (64 - (b + 2));
	c->mask_l = ~UINT64_C(0) << (64 - (b - 2));
	c->p = *p;
	if ((r = gear_table(c->gear, gear_key)) < 0)
		return r;
	*out = TAKE_PTR(c);
	return 0;
}

void cairn_chunker_free(cairn_chunker *c)
{
	if (!c)
		return;
	/* The table is derived from a key and reveals cut points: do not leave it in the heap. */
	explicit_bzero(c, sizeof(*c));
	free(c);
}

const struct cairn_chunk_params *cairn_chunker_params(const cairn_chunker *c)
{
	return &c->p;
}

/*
 * Scan p[from..to) and return the length of the chunk ending after the first byte
 * whose hash passes (h & mask) == 0, or 0 if none does. *hp carries h across calls.
 *
 * One byte per step on purpose. The loop-carried work is a single shift-and-add
 * (one LEA with gcc), so it runs at about a byte per cycle; the two-bytes-per-step
 * form of FastCDC 2020 measured no faster here once every position is still tested
 * (it must be, to keep the cuts of FORMAT.md §9), and its masks-shifted-by-one
 * trick does not work with masks that include bit 63.
 */
static inline size_t scan(const uint64_t *restrict g, const uint8_t *restrict p, size_t from,
                          size_t to, uint64_t mask, uint64_t *hp)
{
	uint64_t h = *hp;

	for (size_t i = from; i < to; i++) {
		h = (h << 1) + g[p[i]];
		if ((h & mask) == 0)
			return i + 1;
	}
	*hp = h;
	return 0;
}

size_t cairn_chunker_cut(const cairn_chunker *c, const uint8_t *p, size_t n)
{
	const size_t min = c->p.min, avg = c->p.avg;
	const size_t end = n < c->p.max ? n : c->p.max;
	uint64_t h = 0;
	size_t r;

	if (n <= min)
		return n;
	/* No cut within the first min bytes (FORMAT.md §9), so only the hash of the
	 * WINDOW bytes before offset min matters: skip straight to them. */
	for (size_t i = min - WINDOW; i < min; i++)
		h = (h << 1) + c->gear[p[i]];
	/* Normalized chunking: a harder test up to avg, an easier one after it. */
	r = scan(c->gear, p, min, avg < end ? avg : end, c->mask_s, &h);
	if (r)
		return r;
	if (avg < end) {
		r = scan(c->gear, p, avg, end, c->mask_l, &h);
		if (r)
			return r;
	}
	return end;
}
