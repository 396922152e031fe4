/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * bench-index: the LMDB index at scale (bench/README.md §5). Builds a synthetic
 * index of N blobs in packs, then measures its size, random lookups, and what a
 * backup that touches a share of it costs: lookups of blobs it has (a no-change
 * file), lookups that miss (new data) and the inserts of those, one synced txn
 * per pack as cairn_repo_flush() commits them.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "index.h"
#include "pack.h"
#include "cleanup.h"

static const uint8_t repo_id[CAIRN_REPO_ID_SIZE] = { 0xbe, 0x4c, 0x41 };

struct opts {
	const char *dir;
	uint64_t n;        /* blobs in the index */
	uint32_t per_pack; /* blobs per pack */
	uint32_t group;    /* packs per txn while building */
	double touch;      /* share of n a backup touches */
	uint64_t lookups;  /* random lookups */
	bool drop;         /* drop the page cache before lookups and backup */
	bool readahead;    /* leave read-ahead on (MDB_NORDAHEAD off) */
};

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void die(const char *what, int r)
{
	fprintf(stderr, "bench-index: %s: %s\n", what, r < 0 ? cairn_err_msg() : "failed");
	exit(1);
}

static uint64_t splitmix(uint64_t *x)
{
	uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Blob i's ID (random-looking, like an HMAC), and pack p's (another stream). */
static void blob_id(struct cairn_id *id, uint64_t i)
{
	uint64_t x = i * 4;
	for (int k = 0; k < 4; k++)
		cairn_le64(id->b + 8 * k, splitmix(&x));
}

static void pack_id(struct cairn_id *id, uint64_t p)
{
	uint64_t x = ~p * 4;
	for (int k = 0; k < 4; k++)
		cairn_le64(id->b + 8 * k, splitmix(&x));
}

/* The entries of pack p, blobs first .. first + count - 1, laid out like a pack
 * of mean 64 KiB chunks. */
static uint64_t fill_pack(struct cairn_pack_entry *e, uint64_t first, uint32_t count)
{
	uint32_t off = CAIRN_PACK_MAGIC_SIZE;
	for (uint32_t k = 0; k < count; k++) {
		uint64_t x = first + k;
		blob_id(&e[k].id, first + k);
		e[k].type = CAIRN_BLOB_DATA;
		e[k].raw_len = 1024 + (uint32_t)(splitmix(&x) % (128 * 1024));
		e[k].stored_len = e[k].raw_len / 2 + CAIRN_SEAL_OVERHEAD;
		e[k].offset = off;
		off += e[k].stored_len % (1u << 20); /* stay within 4 GiB */
	}
	return (uint64_t)off + 4096;
}

struct mem {
	long hwm_kib, rss_kib, anon_kib, file_kib;
	long long read_bytes;
};

static void mem_now(struct mem *m)
{
	char line[256];
	*m = (struct mem){ 0 };
	FILE *f = fopen("/proc/self/status", "r");
	while (f && fgets(line, sizeof(line), f)) {
		sscanf(line, "VmHWM: %ld", &m->hwm_kib);
		sscanf(line, "VmRSS: %ld", &m->rss_kib);
		sscanf(line, "RssAnon: %ld", &m->anon_kib);
		sscanf(line, "RssFile: %ld", &m->file_kib);
	}
	if (f)
		fclose(f);
	f = fopen("/proc/self/io", "r");
	while (f && fgets(line, sizeof(line), f))
		sscanf(line, "read_bytes: %lld", &m->read_bytes);
	if (f)
		fclose(f);
}

static void print_mem(const char *what, const struct mem *before)
{
	struct mem m;
	mem_now(&m);
	printf("  %-10s peak RSS %ld MiB (now: anon %ld MiB, file-backed %ld MiB), read from "
	       "disk %.1f MiB\n",
	       what, m.hwm_kib / 1024, m.anon_kib / 1024, m.file_kib / 1024,
	       (double)(m.read_bytes - before->read_bytes) / (1 << 20));
}

static void drop_caches(const struct opts *o)
{
	if (!o->drop)
		return;
	sync();
	int fd = open("/proc/sys/vm/drop_caches", O_WRONLY | O_CLOEXEC);
	if (fd < 0 || write(fd, "3\n", 2) != 2)
		fprintf(stderr, "bench-index: cannot drop the page cache (root?)\n");
	if (fd >= 0)
		close(fd);
}

static void report_size(const struct opts *o, uint64_t blobs)
{
	char data[4096];
	struct stat st;
	snprintf(data, sizeof(data), "%s/data.mdb", o->dir);
	if (stat(data, &st) < 0)
		die("stat data.mdb", 0);
	printf("  size       %.1f MiB, %.1f bytes per blob (%" PRIu64 " blobs)\n",
	       (double)st.st_size / (1 << 20), (double)st.st_size / (double)blobs, blobs);
}

static cairn_index *open_ix(const struct opts *o)
{
	cairn_index *ix = NULL;
	cairn_index__set_readahead(o->readahead);
	int r = cairn_index__open(&ix, o->dir, false, repo_id);
	if (r < 0)
		die("open", r);
	return ix;
}

/* Packs first_pack.. with blobs first.. , group packs per txn. */
static void add_packs(cairn_index *ix, uint64_t first_pack, uint64_t first, uint64_t count,
                      uint32_t per, uint32_t group, bool progress)
{
	struct cairn_pack_entry *e = calloc((size_t)per * group, sizeof(*e));
	struct cairn_index_pack *p = calloc(group, sizeof(*p));
	double t0 = now(), last = t0;
	uint64_t done = 0, pk = first_pack;
	if (!e || !p)
		die("out of memory", 0);
	while (done < count) {
		uint32_t np = 0;
		for (; np < group && done < count; np++, pk++) {
			uint32_t c = count - done < per ? (uint32_t)(count - done) : per;
			struct cairn_pack_entry *pe = e + (size_t)np * per;
			pack_id(&p[np].id, pk);
			p[np].size = fill_pack(pe, first + done, c);
			p[np].e = pe;
			p[np].n = c;
			done += c;
		}
		int r = cairn_index__add_packs(ix, p, np);
		if (r < 0)
			die("add_packs", r);
		if (progress && now() - last > 60) {
			last = now();
			printf("  ... %" PRIu64 " of %" PRIu64 " (%.0f inserts/s)\n", done, count,
			       (double)done / (last - t0));
			fflush(stdout);
		}
	}
	free(e);
	free(p);
}

static void phase_build(const struct opts *o)
{
	printf("build: %" PRIu64 " blobs, %u per pack, %u packs per txn, commits not synced\n",
	       o->n, o->per_pack, o->group);
	int r = cairn_rm_rf(o->dir);
	if (r < 0 && r != -ENOENT)
		die("cannot remove the old index", r);
	cairn_index *ix = open_ix(o);
	r = cairn_index__bulk(ix, true);
	if (r < 0)
		die("bulk", r);
	double t = now();
	add_packs(ix, 0, 0, o->n, o->per_pack, o->group, true);
	if ((r = cairn_index__bulk(ix, false)) < 0)
		die("bulk", r);
	t = now() - t;
	printf("  inserts    %.0f per second (%.0f s)\n", (double)o->n / t, t);
	report_size(o, o->n);
	t = now();
	cairn_index__close(ix);
	printf("  close      %.1f s\n", now() - t);
	report_size(o, o->n);
}

static void phase_lookup(const struct opts *o)
{
	struct mem m0;
	struct cairn_loc loc;
	struct cairn_id id;
	uint64_t x = 42;

	drop_caches(o);
	printf("lookup: %" PRIu64 " random lookups of indexed blobs%s, read-ahead %s\n", o->lookups,
	       o->drop ? " (page cache dropped)" : "", o->readahead ? "on" : "off");
	mem_now(&m0);
	cairn_index *ix = open_ix(o);
	double t = now();
	for (uint64_t i = 0; i < o->lookups; i++) {
		blob_id(&id, splitmix(&x) % o->n);
		int r = cairn_index__get(ix, &id, &loc);
		if (r < 0)
			die("get", r);
	}
	t = now() - t;
	printf("  lookups    %.0f per second (%.1f s)\n", (double)o->lookups / t, t);
	print_mem("lookups", &m0);
	cairn_index__close(ix);
}

/* What a backup that touches touch × n blobs does with the index: half of them
 * found (unchanged data), half new, looked up, missed, and added in packs of
 * per_pack, one synced txn each. */
static void phase_backup(const struct opts *o)
{
	uint64_t m = (uint64_t)((double)o->n * o->touch), half = m / 2, x = 7;
	struct cairn_loc loc;
	struct cairn_id id;
	struct mem m0;

	drop_caches(o);
	printf("backup: touches %" PRIu64 " blobs (%.2f%%): %" PRIu64 " found, %" PRIu64
	       " new in packs of %u%s\n",
	       m, o->touch * 100, half, m - half, o->per_pack,
	       o->drop ? " (page cache dropped)" : "");
	mem_now(&m0);
	cairn_index *ix = open_ix(o);
	double t = now();
	for (uint64_t i = 0; i < half; i++) {
		blob_id(&id, splitmix(&x) % o->n);
		int r = cairn_index__get(ix, &id, &loc);
		if (r < 0)
			die("get", r);
	}
	double tl = now() - t;
	/* New blobs: IDs past n, each looked up (a miss) before its pack goes in. */
	uint64_t first = o->n + ((uint64_t)time(NULL) % 1000) * 100000000ull, npk = 0;
	t = now();
	for (uint64_t i = 0; i < m - half; i++) {
		blob_id(&id, first + i);
		int r = cairn_index__get(ix, &id, &loc);
		if (r != -ENOENT)
			die("get of a new blob", r < 0 ? r : -EEXIST);
	}
	double tm = now() - t;
	t = now();
	npk = (m - half + o->per_pack - 1) / o->per_pack;
	add_packs(ix, 1u << 30 | first, first, m - half, o->per_pack, 1, false);
	double ta = now() - t;
	printf("  found      %.0f lookups per second (%.1f s)\n", (double)half / tl, tl);
	printf("  missed     %.0f lookups per second (%.1f s)\n", (double)(m - half) / tm, tm);
	printf("  added      %.0f inserts per second, %" PRIu64 " synced txns (%.1f s)\n",
	       (double)(m - half) / ta, npk, ta);
	print_mem("backup", &m0);
	report_size(o, o->n + (m - half));
	t = now();
	cairn_index__close(ix);
	printf("  close      %.1f s\n", now() - t);
	report_size(o, o->n + (m - half));
}

static void usage(void)
{
	fprintf(stderr, "usage: bench-index -d DIR [-n blobs] [-p per-pack] [-g packs-per-txn]\n"
	                "                   [-t touch] [-l lookups] [-D] [-R] PHASE...\n"
	                "  phases: build (a new index of n blobs in DIR), lookup, backup\n"
	                "  -n  blobs, default 10000000     -p  blobs per pack, default 4000\n"
	                "  -g  packs per txn while building (commits not synced), default 25\n"
	                "  -t  share of n a backup touches, default 0.01\n"
	                "  -l  random lookups, default 1000000\n"
	                "  -D  drop the page cache before lookup and backup (root)\n"
	                "  -R  leave the kernel's read-ahead on (MDB_NORDAHEAD off)\n");
	exit(2);
}

static uint64_t num(const char *s, uint64_t max)
{
	char *end;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || *end || v == 0 || v > max)
		usage();
	return v;
}

int main(int argc, char **argv)
{
	struct opts o = {
		.n = 10000000, .per_pack = 4000, .group = 25, .touch = 0.01, .lookups = 1000000
	};
	int opt;

	while ((opt = getopt(argc, argv, "d:n:p:g:t:l:DRh")) != -1) {
		switch (opt) {
		case 'd':
			o.dir = optarg;
			break;
		case 'n':
			o.n = num(optarg, 1ull << 40);
			break;
		case 'p':
			o.per_pack = (uint32_t)num(optarg, CAIRN_PACK_MAX_ENTRIES);
			break;
		case 'g':
			o.group = (uint32_t)num(optarg, 10000);
			break;
		case 't':
			o.touch = strtod(optarg, NULL);
			break;
		case 'l':
			o.lookups = num(optarg, 1ull << 40);
			break;
		case 'D':
			o.drop = true;
			break;
		case 'R':
			o.readahead = true;
			break;
		default:
			usage();
		}
	}
	if (!o.dir || optind == argc || !(o.touch > 0 && o.touch <= 1))
		usage();
	setvbuf(stdout, NULL, _IOLBF, 0);
	for (int i = optind; i < argc; i++) {
		if (strcmp(argv[i], "build") == 0)
			phase_build(&o);
		else if (strcmp(argv[i], "lookup") == 0)
			phase_lookup(&o);
		else if (strcmp(argv[i], "backup") == 0)
			phase_backup(&o);
		else
			usage();
	}
	return 0;
}
