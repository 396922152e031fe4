/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* bench-store: single-thread throughput of the store's hot paths (bench/README.md). */
#include "cairn/store.h"

#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "crypt.h"
#include "cleanup.h"

#define MiB (1024u * 1024)
#define BLOB_SIZE (1 * MiB)
#define ZSTD_LEVEL 3

/* Results are folded into this so the compiler cannot drop the work measured. */
static uint64_t sink;

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-store: %s: %s\n", what, r < 0 ? cairn_err_msg() : "failed");
	exit(1);
}

/* xorshift64: incompressible and without structure the chunker could lock onto. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull | 1;
	for (size_t i = 0; i < n; i += 8) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint8_t w[8];
		cairn_le64(w, x);
		memcpy(p + i, w, n - i < 8 ? n - i : 8);
	}
}

/* Words from a small vocabulary with numbers mixed in: compresses about like
 * source code or logs (zstd -3 gives roughly 3-4x), not like a run of one byte. */
static void fill_text(uint8_t *p, size_t n, uint64_t seed)
{
	static const char *const words[] = {
		"the",    "backup", "chunk", "return", "struct", "int",   "if",     "error",
		"static", "const",  "size",  "buffer", "pack",   "index", "while",  "for",
		"data",   "void",   "key",   "of",     "a",      "to",    "length", "offset",
	};
	uint64_t x = seed * 0x9e3779b97f4a7c15ull | 1;
	size_t i = 0;
	while (i < n) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		char tok[32];
		int len;
		if (x % 7 == 0)
			len = snprintf(tok, sizeof(tok), "%u ", (unsigned)(x >> 40) % 100000);
		else
			len = snprintf(tok, sizeof(tok), "%s%s",
			               words[(x >> 8) % ARRAY_SIZE(words)],
			               (x >> 20) % 11 == 0 ? ";\n\t" : " ");
		size_t take = (size_t)len < n - i ? (size_t)len : n - i;
		memcpy(p + i, tok, take);
		i += take;
	}
}

static void report(const char *name, size_t bytes, double secs, const char *extra)
{
	printf("%-24s %8.1f MiB %10.1f MB/s  %s\n", name, (double)bytes / MiB,
	       (double)bytes / secs / 1e6, extra);
}

static void bench_chunker(const uint8_t *buf, size_t n, int reps)
{
	static const struct cairn_chunk_params params = {
		CAIRN_CHUNK_MIN_DEFAULT,
		CAIRN_CHUNK_AVG_DEFAULT,
		CAIRN_CHUNK_MAX_DEFAULT,
	};
	uint8_t key[32];
	cairn_chunker *c = NULL;
	double best = 1e30;
	size_t chunks = 0;

	memset(key, 0x42, sizeof(key));
	int r = cairn_chunker_new(&c, &params, key);
	if (r < 0)
		die("cairn_chunker_new", r);
	for (int rep = 0; rep < reps; rep++) {
		double t = now();
		size_t off = 0;
		chunks = 0;
		while (off < n) {
			size_t left = n - off;
			off += cairn_chunker_cut(c, buf + off,
			                         left < params.max ? left : params.max);
			chunks++;
		}
		t = now() - t;
		best = t < best ? t : best;
	}
	cairn_chunker_free(c);
	sink += chunks;
	char extra[96];
	snprintf(extra, sizeof(extra), "(%zu chunks, mean %zu KiB, defaults %u/%u/%u KiB)", chunks,
	         n / chunks / 1024, params.min / 1024, params.avg / 1024, params.max / 1024);
	report("chunk (FastCDC)", n, best, extra);
}

static void bench_hmac(const struct cairn_keys *k, const uint8_t *buf, size_t n, int reps)
{
	double best = 1e30;
	uint8_t mac[32];

	for (int rep = 0; rep < reps; rep++) {
		double t = now();
		for (size_t off = 0; off + BLOB_SIZE <= n; off += BLOB_SIZE) {
			cairn_crypt__hmac(k->id, buf + off, BLOB_SIZE, mac);
			sink += mac[0];
		}
		t = now() - t;
		best = t < best ? t : best;
	}
	report("chunk id (HMAC-SHA-256)", n / BLOB_SIZE * BLOB_SIZE, best, "(1 MiB buffers)");
}

/* Blobs alternate between text-like and random 1 MiB buffers, as a tree of
 * source files and media would. */
struct blobset {
	size_t count;
	const uint8_t *raw;       /* count × BLOB_SIZE */
	struct cairn_id *ids;     /* count */
	struct cairn_buf *sealed; /* count */
};

static void bench_seal(const struct cairn_keys *k, struct blobset *s, int reps)
{
	double best = 1e30;
	size_t stored = 0;

	for (int rep = 0; rep < reps; rep++) {
		double t = now();
		stored = 0;
		for (size_t i = 0; i < s->count; i++) {
			s->sealed[i].len = 0; /* encode appends */
			int r = cairn_blob__encode(k, ZSTD_LEVEL, CAIRN_BLOB_DATA, &s->ids[i],
			                           s->raw + i * BLOB_SIZE, BLOB_SIZE,
			                           &s->sealed[i]);
			if (r < 0)
				die("cairn_blob__encode", r);
			stored += s->sealed[i].len;
		}
		t = now() - t;
		best = t < best ? t : best;
	}
	char extra[96];
	snprintf(extra, sizeof(extra), "(zstd -%d, half text half random, stored %.0f%%)",
	         ZSTD_LEVEL, 100.0 * (double)stored / (double)(s->count * BLOB_SIZE));
	report("compress+encrypt", s->count * BLOB_SIZE, best, extra);
}

static void bench_open(const struct cairn_keys *k, struct blobset *s, int reps)
{
	double best = 1e30;
	struct cairn_buf out = CAIRN_BUF_INIT;

	for (int rep = 0; rep < reps; rep++) {
		double t = now();
		for (size_t i = 0; i < s->count; i++) {
			int r = cairn_blob__decode(k, CAIRN_BLOB_DATA, &s->ids[i],
			                           s->sealed[i].data, s->sealed[i].len, BLOB_SIZE,
			                           BLOB_SIZE, &out);
			if (r < 0)
				die("cairn_blob__decode", r);
			if (out.len != BLOB_SIZE ||
			    memcmp(out.data, s->raw + i * BLOB_SIZE, BLOB_SIZE) != 0)
				die("cairn_blob__decode: wrong plaintext", 0);
		}
		t = now() - t;
		best = t < best ? t : best;
	}
	cairn_buf_release(&out);
	report("decrypt+decompress", s->count * BLOB_SIZE, best, "(includes ID re-check)");
}

/* Many small blobs, as the small files of a tree give: what a blob costs beyond
 * its bytes. Random ones with a gzip header take the raw path at once (they
 * look compressed already); without it zstd tries and finds nothing. */
#define SMALL_SIZE 4096
#define SMALL_COUNT 20000

static void bench_small(const struct cairn_keys *k, uint8_t *buf, int reps)
{
	static const char *const kinds[] = { "text", "random", "gzip" };
	struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_id id = { { 0 } };

	for (size_t kind = 0; kind < ARRAY_SIZE(kinds); kind++) {
		double best = 1e30;
		size_t stored = 0;
		if (kind == 0)
			fill_text(buf, (size_t)SMALL_SIZE * SMALL_COUNT, 99);
		else
			fill_random(buf, (size_t)SMALL_SIZE * SMALL_COUNT, 99);
		for (size_t i = 0; kind == 2 && i < SMALL_COUNT; i++)
			memcpy(buf + i * SMALL_SIZE, "\x1f\x8b\x08", 3);
		for (int rep = 0; rep < reps; rep++) {
			double t = now();
			stored = 0;
			for (size_t i = 0; i < SMALL_COUNT; i++) {
				sealed.len = 0;
				int r = cairn_blob__encode(k, ZSTD_LEVEL, CAIRN_BLOB_DATA, &id,
				                           buf + i * SMALL_SIZE, SMALL_SIZE,
				                           &sealed);
				if (r < 0)
					die("cairn_blob__encode", r);
				stored += sealed.len;
			}
			t = now() - t;
			best = t < best ? t : best;
		}
		char name[32], extra[96];
		snprintf(name, sizeof(name), "4K blobs, %s", kinds[kind]);
		snprintf(extra, sizeof(extra), "(%.2f us per blob, stored %.0f%%)",
		         best / SMALL_COUNT * 1e6,
		         100.0 * (double)stored / ((double)SMALL_SIZE * SMALL_COUNT));
		report(name, (size_t)SMALL_SIZE * SMALL_COUNT, best, extra);
	}
	cairn_buf_release(&sealed);
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-store [-n MiB] [-r reps]\n"
	                "  -n  data per measurement, default 256 (chunking) and n/4 (blobs)\n"
	                "  -r  repetitions, the best is reported, default 3\n");
	exit(2);
}

int main(int argc, char **argv)
{
	unsigned long mib = 256, reps = 3;
	int opt;

	while ((opt = getopt(argc, argv, "n:r:h")) != -1) {
		char *end;
		errno = 0;
		unsigned long v = strtoul(optarg ? optarg : "", &end, 10);
		if (opt == 'h' || errno || *end || v == 0 || v > 65536)
			usage();
		if (opt == 'n')
			mib = v;
		else
			reps = v;
	}
	if (optind != argc || reps > 1000)
		usage();

	const size_t n = mib * MiB;
	_cleanup_free_ uint8_t *buf = malloc(n);
	if (!buf)
		die("out of memory", 0);
	fill_random(buf, n, 1);

	struct cairn_keys k;
	for (size_t i = 0; i < sizeof(k); i++)
		((uint8_t *)&k)[i] = (uint8_t)(i * 37 + 11);

	printf("bench-store: single thread, best of %lu, MB = 10^6 bytes\n", reps);
	bench_chunker(buf, n, (int)reps);
	bench_hmac(&k, buf, n, (int)reps);

	/* A quarter of the data for the slower blob paths, at least two blobs. */
	struct blobset s = { .count = n / 4 / BLOB_SIZE };
	if (s.count < 2)
		s.count = 2;
	if (s.count * BLOB_SIZE > n)
		s.count = n / BLOB_SIZE;
	_cleanup_free_ struct cairn_id *ids = calloc(s.count, sizeof(*ids));
	_cleanup_free_ struct cairn_buf *sealed = calloc(s.count, sizeof(*sealed));
	if (!ids || !sealed || s.count == 0)
		die("out of memory or -n too small", 0);
	for (size_t i = 0; i < s.count; i += 2)
		fill_text(buf + i * BLOB_SIZE, BLOB_SIZE, i + 2);
	for (size_t i = 0; i < s.count; i++)
		cairn_crypt__hmac(k.id, buf + i * BLOB_SIZE, BLOB_SIZE, ids[i].b);
	s.raw = buf;
	s.ids = ids;
	s.sealed = sealed;
	bench_seal(&k, &s, (int)reps);
	bench_open(&k, &s, (int)reps);
	if (n >= (size_t)SMALL_SIZE * SMALL_COUNT)
		bench_small(&k, buf, (int)reps);

	for (size_t i = 0; i < s.count; i++)
		cairn_buf_release(&sealed[i]);
	cairn_crypt__wipe(&k);
	return sink == 0xffffffffffffffffull; /* never true; keeps sink alive */
}
