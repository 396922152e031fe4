/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Unit tests for the FastCDC chunker (FORMAT.md §9). */
#include "cairn/store.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <openssl/hmac.h>
/* Optional: valgrind runs the big cases smaller (see big_size). */
#if defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define UNDER_VALGRIND() (RUNNING_ON_VALGRIND != 0)
#endif
#endif
#ifndef UNDER_VALGRIND
#define UNDER_VALGRIND() 0
#endif

#include "check.h"

#include "cleanup.h"

#define MiB (1024u * 1024)
#define KiB 1024u

static const struct cairn_chunk_params defaults = {
	CAIRN_CHUNK_MIN_DEFAULT,
	CAIRN_CHUNK_AVG_DEFAULT,
	CAIRN_CHUNK_MAX_DEFAULT,
};
/* Near the smallest legal sizes: many cuts per MiB, and some chunks that reach max. */
static const struct cairn_chunk_params small = { 64 * KiB, 128 * KiB, 256 * KiB };

static uint8_t key1[32], key2[32];

/* Big inputs for the statistical cases. Valgrind runs them at a quarter of the
 * size; the normal run keeps the 64 MiB the shift test is specified with. */
static size_t big_size(void)
{
	return UNDER_VALGRIND() || getenv("CAIRN_TEST_QUICK") ? 16 * MiB : 64 * MiB;
}

DEFINE_FREEP(cairn_chunker, cairn_chunker_free)
#define _cleanup_chunker_ _cleanup_(cairn_chunker_freep)

static cairn_chunker *new_chunker(const struct cairn_chunk_params *p, const uint8_t key[32])
{
	cairn_chunker *c = NULL;
	CHECK_OK(cairn_chunker_new(&c, p, key));
	CHECK(c != NULL);
	return c;
}

static uint8_t *xmalloc(size_t n)
{
	uint8_t *p = malloc(n);
	CHECK(p != NULL);
	return p;
}

/* Cut all of p[0..n) the way the ingester does: offer max bytes or the rest.
 * Returns the number of chunks; *cuts_out gets their lengths (caller frees). */
static size_t chunk_all(const cairn_chunker *c, const uint8_t *p, size_t n, size_t **cuts_out)
{
	const struct cairn_chunk_params *pp = cairn_chunker_params(c);
	size_t cap = n / pp->min + 2, count = 0, off = 0;
	size_t *cuts = calloc(cap, sizeof(*cuts));
	CHECK(cuts != NULL);
	while (off < n) {
		size_t left = n - off;
		size_t len = cairn_chunker_cut(c, p + off, left < pp->max ? left : pp->max);
		CHECK(len >= 1 && len <= left);
		CHECK(count < cap);
		cuts[count++] = len;
		off += len;
	}
	*cuts_out = cuts;
	return count;
}

/* Every chunk but the last lies in (min, max]; the last is at most max; together they
 * cover the input exactly. */
static void check_bounds(const struct cairn_chunk_params *pp, const size_t *cuts, size_t count,
                         size_t n)
{
	size_t sum = 0;
	for (size_t i = 0; i < count; i++) {
		CHECK(cuts[i] >= 1 && cuts[i] <= pp->max);
		if (i + 1 < count)
			CHECK(cuts[i] > pp->min);
		sum += cuts[i];
	}
	CHECK_EQ(sum, n);
}

/*
 * An independent reading of FORMAT.md §9, written for clarity rather than speed:
 * the gear table straight from OpenSSL's HMAC, and a gear hash that runs over every
 * byte of the chunk from its first, testing each length in (min, end].
 */
static void ref_gear(uint64_t g[256], const uint8_t key[32])
{
	for (uint32_t i = 0; i < 64; i++) {
		uint8_t msg[17] = "cairn v1 gear", mac[32];
		unsigned maclen = 0;
		cairn_le32(msg + 13, i);
		CHECK(HMAC(EVP_sha256(), key, 32, msg, sizeof(msg), mac, &maclen) != NULL);
		CHECK_EQ(maclen, 32);
		for (int j = 0; j < 4; j++)
			g[4 * i + j] = cairn_get_le64(mac + 8 * j);
	}
}

static size_t ref_cut(const uint64_t g[256], const struct cairn_chunk_params *pp, const uint8_t *p,
                      size_t n)
{
	unsigned b = 0;
	while ((1u << b) < pp->avg)
		b++;
	uint64_t mask_s = ~UINT64_C(0) << (64 - (b + 2)), mask_l = ~UINT64_C(0) << (64 - (b - 2));
	size_t end = n < pp->max ? n : pp->max;
	uint64_t h = 0;

	for (size_t len = 1; len <= end; len++) {
		h = (h << 1) + g[p[len - 1]];
		if (len > pp->min && (h & (len <= pp->avg ? mask_s : mask_l)) == 0)
			return len;
	}
	return end;
}

static void test_chunker__params(void)
{
	static const struct cairn_chunk_params bad[] = {
		{ 512 * KiB, 1000 * KiB, 8 * MiB },   /* avg not a power of two */
		{ 512 * KiB, 0, 8 * MiB },            /* avg zero */
		{ 64 * KiB - 1, 128 * KiB, 8 * MiB }, /* min below 64 KiB */
		{ 0, 128 * KiB, 8 * MiB },            /* min zero */
		{ 512 * KiB, 1 * MiB, 64 * MiB + 1 }, /* max above 64 MiB */
		{ 1 * MiB, 1 * MiB, 8 * MiB },        /* min == avg */
		{ 2 * MiB, 1 * MiB, 8 * MiB },        /* min > avg */
		{ 512 * KiB, 1 * MiB, 1 * MiB },      /* avg == max */
		{ 512 * KiB, 2 * MiB, 1 * MiB },      /* avg > max */
		{ 64 * KiB, 64 * MiB, 64 * MiB },     /* avg == max at the ceiling */
		{ UINT32_MAX, 1u << 31, UINT32_MAX }, /* everything far out */
	};
	static const struct cairn_chunk_params good[] = {
		{ CAIRN_CHUNK_MIN_DEFAULT, CAIRN_CHUNK_AVG_DEFAULT, CAIRN_CHUNK_MAX_DEFAULT },
		{ 64 * KiB, 128 * KiB, 128 * KiB + 1 }, /* smallest legal */
		{ 32 * MiB - 1, 32 * MiB, 64 * MiB },   /* largest legal */
		{ 100 * KiB, 4 * MiB, 5 * MiB },        /* min need not be a power of two */
	};

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		static char sentinel;
		cairn_chunker *c = (cairn_chunker *)&sentinel; /* untouched on failure */
		cairn_err_clear();
		CHECK_ERR(cairn_chunker_new(&c, &bad[i], key1), -EINVAL);
		CHECK(c == (cairn_chunker *)&sentinel);
		CHECK(strstr(cairn_err_msg(), "chunk") != NULL);
	}
	for (size_t i = 0; i < ARRAY_SIZE(good); i++) {
		_cleanup_chunker_ cairn_chunker *c = new_chunker(&good[i], key1);
		const struct cairn_chunk_params *pp = cairn_chunker_params(c);
		CHECK_EQ(pp->min, good[i].min);
		CHECK_EQ(pp->avg, good[i].avg);
		CHECK_EQ(pp->max, good[i].max);
	}
	cairn_chunker_free(NULL);
}

/* The fast path (skipping to min - 64, two bytes per step) gives exactly the cuts
 * of the plain reading of the spec, including inputs that end before max. */
static void test_chunker__matches_reference(void)
{
	const struct cairn_chunk_params *sets[] = { &small, &defaults };
	const size_t n = 24 * MiB;
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	check_random(buf, n, 7);

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		const struct cairn_chunk_params *pp = sets[s];
		_cleanup_chunker_ cairn_chunker *c = new_chunker(pp, key1);
		uint64_t g[256];
		size_t off = 0, chunks = 0, at_max = 0;
		ref_gear(g, key1);

		while (off < n) {
			size_t left = n - off, give = left < pp->max ? left : pp->max;
			size_t want = ref_cut(g, pp, buf + off, give);
			CHECK_EQ(cairn_chunker_cut(c, buf + off, give), want);
			at_max += want == pp->max;
			chunks++;
			off += want;
		}
		/* The small set must exercise both the content cut and the max cut. */
		if (pp == &small)
			CHECK(at_max > 0 && at_max < chunks);

		/* Short inputs: at and around min and avg, odd and even lengths (the fast
		 * loop steps by two), and the mask switch at avg. */
		const size_t lens[] = { 1,           2,           pp->min - 1, pp->min, pp->min + 1,
			                pp->min + 2, pp->min + 3, pp->avg - 1, pp->avg, pp->avg + 1,
			                pp->avg + 2, pp->max - 1, pp->max };
		for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
			for (size_t o = 0; o < 4 * MiB; o += 97 * KiB + 13) {
				size_t got = cairn_chunker_cut(c, buf + o, lens[i]);
				CHECK_EQ(got, ref_cut(g, pp, buf + o, lens[i]));
				if (lens[i] <= pp->min)
					CHECK_EQ(got, lens[i]);
			}
		}
	}
}

/* The window hash h_P of buf[P - 64 .. P) for every P >= 64, as in ref_cut. */
static uint64_t *window_hashes(const uint64_t g[256], const uint8_t *buf, size_t n)
{
	uint64_t *hs = calloc(n + 1, sizeof(*hs)), h = 0;
	CHECK(hs != NULL);
	for (size_t i = 0; i < n; i++) {
		h = (h << 1) + g[buf[i]];
		hs[i + 1] = h;
	}
	return hs;
}

/*
 * Cuts placed on purpose at the edges of the rules, which random chunking rarely
 * reaches: a content cut at P is found from starts chosen so that P falls at
 * length min + 1 .. min + 200 (inside the 64-byte warm-up before min that the fast
 * path skips to, and on both parities), at min itself (not allowed), and at avg and
 * avg + 1 where the mask switches.
 */
static void test_chunker__edges(void)
{
	const struct cairn_chunk_params *pp = &small;
	const uint64_t mask_s = ~UINT64_C(0) << (64 - 19), mask_l = ~UINT64_C(0) << (64 - 15);
	const size_t n = 8 * MiB, span = 200;
	_cleanup_chunker_ cairn_chunker *c = new_chunker(pp, key2);
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	uint64_t g[256];
	ref_gear(g, key2);
	check_random(buf, n, 99);
	_cleanup_free_ uint64_t *hs = window_hashes(g, buf, n);
	bool min_done = false, avg_done = false;

	CHECK_EQ(pp->avg, 1u << 17); /* the masks above are for b = 17 */
	for (size_t p = pp->max; p < n && !(min_done && avg_done); p++) {
		if (!min_done && (hs[p] & mask_s) == 0) {
			/* Alone among the span positions before it, so each start cuts at p. */
			bool alone = true;
			for (size_t q = p - span; q < p; q++)
				alone = alone && (hs[q] & mask_s) != 0;
			if (!alone)
				continue;
			for (size_t len = pp->min + 1; len <= pp->min + span; len++) {
				size_t got = cairn_chunker_cut(c, buf + p - len, n - (p - len));
				CHECK_EQ(got, ref_cut(g, pp, buf + p - len, n - (p - len)));
				CHECK_EQ(got, len);
			}
			size_t got = cairn_chunker_cut(c, buf + p - pp->min, n - (p - pp->min));
			CHECK_EQ(got, ref_cut(g, pp, buf + p - pp->min, n - (p - pp->min)));
			CHECK(got != pp->min);
			min_done = true;
		}
		if (!avg_done && (hs[p] & mask_l) == 0 && (hs[p] & mask_s) != 0) {
			/* Passes the easy test only: a cut at length avg + 1, none at avg. */
			size_t s1 = p - (pp->avg + 1), s0 = p - pp->avg;
			if (ref_cut(g, pp, buf + s1, n - s1) != pp->avg + 1)
				continue; /* an earlier cut in the way; try the next p */
			CHECK_EQ(cairn_chunker_cut(c, buf + s1, n - s1), pp->avg + 1);
			size_t got = cairn_chunker_cut(c, buf + s0, n - s0);
			CHECK_EQ(got, ref_cut(g, pp, buf + s0, n - s0));
			CHECK(got != pp->avg);
			avg_done = true;
		}
	}
	CHECK(min_done && avg_done);
}

static void test_chunker__deterministic(void)
{
	const size_t n = 32 * MiB;
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	_cleanup_free_ size_t *a = NULL, *b = NULL, *d = NULL;
	check_random(buf, n, 1);

	_cleanup_chunker_ cairn_chunker *c1 = new_chunker(&small, key1);
	_cleanup_chunker_ cairn_chunker *c1b = new_chunker(&small, key1);
	_cleanup_chunker_ cairn_chunker *c2 = new_chunker(&small, key2);
	size_t na = chunk_all(c1, buf, n, &a);
	size_t nb = chunk_all(c1b, buf, n, &b);
	size_t nd = chunk_all(c2, buf, n, &d);

	CHECK_EQ(na, nb);
	CHECK(memcmp(a, b, na * sizeof(*a)) == 0);
	/* Same call again on the same chunker: no state carried between calls. */
	_cleanup_free_ size_t *a2 = NULL;
	CHECK_EQ(chunk_all(c1, buf, n, &a2), na);
	CHECK(memcmp(a, a2, na * sizeof(*a)) == 0);

	/* Another key, another table: hardly any cut point is shared. */
	size_t same = 0, oa = 0, od = 0, i = 0, j = 0;
	while (i < na && j < nd) {
		if (oa == od)
			same++;
		if (oa <= od)
			oa += a[i++];
		else
			od += d[j++];
	}
	CHECK(same < na / 4);
	check_bounds(&small, a, na, n);
	check_bounds(&small, d, nd, n);
}

static void test_chunker__bounds_and_coverage(void)
{
	const size_t n = big_size() + 12345;
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	check_random(buf, n, 2);
	const struct cairn_chunk_params *sets[] = { &small, &defaults };

	for (size_t s = 0; s < ARRAY_SIZE(sets); s++) {
		_cleanup_chunker_ cairn_chunker *c = new_chunker(sets[s], key1);
		_cleanup_free_ size_t *cuts = NULL;
		size_t count = chunk_all(c, buf, n, &cuts);
		CHECK(count >= 2);
		check_bounds(sets[s], cuts, count, n);
	}
	/* Inputs shorter than min are one chunk. */
	_cleanup_chunker_ cairn_chunker *c = new_chunker(&defaults, key1);
	CHECK_EQ(cairn_chunker_cut(c, buf, 1), 1);
	CHECK_EQ(cairn_chunker_cut(c, buf, defaults.min), defaults.min);
}

/* Chunks of mod that occur nowhere among the chunks of orig (length, then bytes). */
static size_t count_new_chunks(const uint8_t *orig, const size_t *oc, size_t on, const uint8_t *mod,
                               const size_t *mc, size_t mn)
{
	size_t fresh = 0, moff = 0;
	for (size_t i = 0; i < mn; moff += mc[i++]) {
		bool found = false;
		size_t ooff = 0;
		for (size_t j = 0; j < on && !found; ooff += oc[j++])
			found = oc[j] == mc[i] && memcmp(orig + ooff, mod + moff, mc[i]) == 0;
		fresh += !found;
	}
	return fresh;
}

/* One byte inserted at `at` changes at most two chunks: cuts depend on the content
 * of a 64-byte window, not on offsets, so they resynchronise after the edit. */
static void shift_case(size_t at)
{
	const size_t n = big_size();
	_cleanup_free_ uint8_t *orig = xmalloc(n), *mod = xmalloc(n + 1);
	_cleanup_free_ size_t *oc = NULL, *mc = NULL;
	check_random(orig, n, 3);
	memcpy(mod, orig, at);
	mod[at] = 0xa5;
	memcpy(mod + at + 1, orig + at, n - at);

	_cleanup_chunker_ cairn_chunker *c = new_chunker(&defaults, key1);
	size_t on = chunk_all(c, orig, n, &oc);
	size_t mn = chunk_all(c, mod, n + 1, &mc);
	check_bounds(&defaults, oc, on, n);
	check_bounds(&defaults, mc, mn, n + 1);
	/* Enough chunks that "at most 2 new" means something. */
	CHECK(on >= 8);
	size_t fresh = count_new_chunks(orig, oc, on, mod, mc, mn);
	CHECK(fresh >= 1); /* the edited chunk itself */
	CHECK(fresh <= 2);
}

static void test_chunker__shift_start(void)
{
	shift_case(0);
}

static void test_chunker__shift_middle(void)
{
	shift_case(big_size() / 2 + 4321);
}

/* The check above can fail: cutting at fixed offsets instead changes every chunk
 * after an insertion, and count_new_chunks sees that. */
static void test_chunker__shift_detects_fixed_size(void)
{
	const size_t n = 8 * MiB, fixed = 1 * MiB;
	_cleanup_free_ uint8_t *orig = xmalloc(n), *mod = xmalloc(n + 1);
	size_t oc[16], mc[16], on = 0, mn = 0;
	check_random(orig, n, 3);
	mod[0] = 0xa5;
	memcpy(mod + 1, orig, n);
	for (size_t off = 0; off < n; off += fixed)
		oc[on++] = n - off < fixed ? n - off : fixed;
	for (size_t off = 0; off < n + 1; off += fixed)
		mc[mn++] = n + 1 - off < fixed ? n + 1 - off : fixed;
	CHECK_EQ(count_new_chunks(orig, oc, on, mod, mc, mn), mn);
}

/* Zeros give a constant window hash, so no content cut: every chunk is max long
 * (for this key; a key whose -G[0] has b - 2 zero top bits would cut at min + 1). */
static void test_chunker__zeros_cut_at_max(void)
{
	const size_t n = 3 * CAIRN_CHUNK_MAX_DEFAULT + 5;
	_cleanup_free_ uint8_t *buf = calloc(1, n);
	_cleanup_free_ size_t *cuts = NULL;
	CHECK(buf != NULL);
	_cleanup_chunker_ cairn_chunker *c = new_chunker(&defaults, key1);
	size_t count = chunk_all(c, buf, n, &cuts);
	CHECK_EQ(count, 4);
	for (size_t i = 0; i < 3; i++)
		CHECK_EQ(cuts[i], CAIRN_CHUNK_MAX_DEFAULT);
	CHECK_EQ(cuts[3], 5);
}

/* Normalized chunking keeps the mean near avg: with min = avg / 2 the expectation
 * is about 1.2 avg (min, plus the mean wait at 2^-(b+2) per byte until avg, plus
 * 2^(b-2) after it). */
static void test_chunker__average(void)
{
	const size_t n = big_size();
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	_cleanup_free_ size_t *cuts = NULL;
	check_random(buf, n, 4);
	_cleanup_chunker_ cairn_chunker *c = new_chunker(&defaults, key2);
	size_t count = chunk_all(c, buf, n, &cuts);
	CHECK(count >= 3);
	/* Leave out the final, truncated chunk. */
	double mean = (double)(n - cuts[count - 1]) / (double)(count - 1);
	fprintf(stderr, "# %zu chunks, mean %.0f bytes (%.2f x avg)\n", count, mean,
	        mean / defaults.avg);
	CHECK(mean >= 0.6 * defaults.avg);
	CHECK(mean <= 1.6 * defaults.avg);
}

/* Pins the format: these cut lengths are what every cairn v1 writer must produce
 * for this key and input, independent of check_random. A change here breaks
 * deduplication against existing repositories (FORMAT.md §9). */
static void test_chunker__golden(void)
{
	/* Computed independently from the spec text by a Python script (hmac, struct). */
	static const size_t want[] = {
		187346, 144374, 136002, 135741, 194609, 200280, 155616, 137796, 243934,
		139667, 135194, 153776, 151029, 187176, 135009, 186218, 128428, 141831,
		131951, 222861, 178568, 123875, 214920, 108995, 151041, 135731, 32336,
	};
	const size_t n = 4 * MiB;
	_cleanup_free_ uint8_t *buf = xmalloc(n);
	_cleanup_free_ size_t *cuts = NULL;
	uint8_t key[32];
	uint64_t x = 0;
	for (int i = 0; i < 32; i++)
		key[i] = (uint8_t)i;
	/* splitmix64 */
	for (size_t i = 0; i < n; i += 8) {
		uint64_t z = (x += 0x9e3779b97f4a7c15ull);
		z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
		z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
		cairn_le64(buf + i, z ^ (z >> 31));
	}
	_cleanup_chunker_ cairn_chunker *c = new_chunker(&small, key);
	size_t count = chunk_all(c, buf, n, &cuts);
	CHECK_EQ(count, ARRAY_SIZE(want));
	for (size_t i = 0; i < count; i++)
		CHECK_EQ(cuts[i], want[i]);
}

int main(void)
{
	for (int i = 0; i < 32; i++) {
		key1[i] = (uint8_t)(0x11 * i + 1);
		key2[i] = (uint8_t)(0x5a ^ i);
	}
	RUN(test_chunker__params);
	RUN(test_chunker__matches_reference);
	RUN(test_chunker__edges);
	RUN(test_chunker__deterministic);
	RUN(test_chunker__bounds_and_coverage);
	RUN(test_chunker__shift_start);
	RUN(test_chunker__shift_middle);
	RUN(test_chunker__shift_detects_fixed_size);
	RUN(test_chunker__zeros_cut_at_max);
	RUN(test_chunker__average);
	RUN(test_chunker__golden);
	return 0;
}
