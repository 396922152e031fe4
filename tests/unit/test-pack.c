/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/pack.c: writing packs, reading their headers, corruption (FORMAT.md §6). */
#include "pack.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cleanup.h"

static const uint8_t master[CAIRN_KEY_SIZE] = { 0x70, 0x61, 0x63, 0x6b };
static const uint8_t repo_id[CAIRN_REPO_ID_SIZE] = { 0x11, 0x22, 0x33 };

static struct cairn_keys keys;

/* What a test pack holds, to compare the reader's view with. */
struct pack {
	char path[700];
	struct cairn_id id;
	uint64_t size;
	uint64_t hdr_off;
	struct cairn_pack_entry *e;
	size_t n;
};

static void pack_release(struct pack *p)
{
	free(p->e);
	p->e = NULL;
}

static void dir_path(char *out, size_t n, const char *name)
{
	CHECK((size_t)snprintf(out, n, "%s/%s", check_tmpdir(), name) < n);
}

/* Blob i: 0..299 pseudo-random bytes; every third is compressible. */
static size_t blob_data(uint8_t *buf, size_t i)
{
	size_t len = (i * 7919) % 300;
	if (i % 3 == 0)
		memset(buf, (int)(i & 0xff), len);
	else
		check_random(buf, len, 1000 + i);
	return len;
}

static int blob_type(size_t i)
{
	return i % 5 == 0 ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA;
}

/* What a repository does with a full pack: seal it, and let the storage (a local
 * one, rooted at the test's directory) rename it into packs/xx/. */
static int finish(cairn_packw *w, struct cairn_id *id, uint64_t *size)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_storage *st;
	int r = cairn_packw__seal(w, &keys, id, size);
	if (r < 0)
		return r;
	CHECK_OK(cairn_storage_open(&st, check_tmpdir(), NULL));
	cairn_id_hex(hex, id);
	r = cairn_storage_put_tmp(st, CAIRN_OBJ_PACK, hex, cairn_packw__path(w), cairn_packw__fd(w),
	                          *size);
	if (r >= 0)
		cairn_packw__taken(w);
	cairn_storage_close(st);
	return r;
}

static int count_files(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	int n = 0;
	CHECK(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	return n;
}

/* Write a pack of n blobs (FORMAT.md §5.2 sealing) into <tmpdir>/packs. */
static void write_pack(struct pack *p, size_t n)
{
	char tmp[256], packs[256], hex[CAIRN_ID_HEX_SIZE];
	cairn_packw *w = NULL;
	uint8_t data[300];

	dir_path(tmp, sizeof(tmp), "tmp");
	dir_path(packs, sizeof(packs), "packs");
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_OK(cairn_mkdir_p(packs, 0700));
	CHECK_OK(cairn_packw__new(&w, tmp));
	for (size_t i = 0; i < n; i++) {
		_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
		struct cairn_id id;
		size_t len = blob_data(data, i);
		cairn_crypt__hmac(keys.id, data, len, id.b);
		CHECK_OK(cairn_blob__encode(&keys, i % 2 ? 3 : 0, blob_type(i), &id, data, len,
		                            &sealed));
		CHECK_OK(cairn_packw__add(w, &id, blob_type(i), sealed.data, sealed.len,
		                          (uint32_t)len));
		CHECK_EQ(cairn_packw__count(w), i + 1);
	}
	p->n = cairn_packw__count(w);
	p->e = malloc(p->n * sizeof(*p->e));
	CHECK(p->e);
	memcpy(p->e, cairn_packw__entries(w), p->n * sizeof(*p->e));
	p->hdr_off = cairn_packw__size(w);
	CHECK_OK(finish(w, &p->id, &p->size));
	cairn_packw__free(w);
	cairn_id_hex(hex, &p->id);
	snprintf(p->path, sizeof(p->path), "%s/%.2s/%s", packs, hex, hex);
	CHECK_EQ(count_files(tmp), 0);
}

static int read_entries_at(const char *path, struct cairn_pack_entry **e, size_t *n)
{
	struct stat st;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_OK(fstat(fd, &st));
	return cairn_pack__read_entries(fd, (uint64_t)st.st_size, &keys, "ab12cd34", e, n);
}

static bool entry_eq(const struct cairn_pack_entry *a, const struct cairn_pack_entry *b)
{
	return memcmp(a->id.b, b->id.b, CAIRN_ID_SIZE) == 0 && a->type == b->type &&
	       a->offset == b->offset && a->stored_len == b->stored_len && a->raw_len == b->raw_len;
}

/* ---- writing and reading back ------------------------------------------- */

static void check_blobs(const struct pack *p, const struct cairn_pack_entry *e)
{
	_cleanup_close_ int fd = open(p->path, O_RDONLY | O_CLOEXEC);
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_free_ uint8_t *sealed = malloc(64 * 1024);
	uint8_t want[300];

	CHECK(fd >= 0 && sealed);
	for (size_t i = 0; i < p->n; i++) {
		size_t len = blob_data(want, i);
		CHECK(e[i].stored_len <= 64 * 1024);
		CHECK_OK(cairn_pread_all(fd, sealed, e[i].stored_len, e[i].offset));
		CHECK_OK(cairn_blob__decode(&keys, e[i].type, &e[i].id, sealed, e[i].stored_len,
		                            e[i].raw_len, CAIRN_TREE_MAX, &out));
		CHECK_EQ(out.len, len);
		CHECK(len == 0 || memcmp(out.data, want, len) == 0);
	}
}

static void test_pack__roundtrip_10000(void)
{
	struct pack p = { 0 };
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	_cleanup_buf_ struct cairn_buf file = CAIRN_BUF_INIT;
	struct stat st;
	char dir[600];
	uint8_t sha[32];
	size_t n = 0;

	write_pack(&p, 10000);
	CHECK_OK(stat(p.path, &st));
	CHECK_EQ(st.st_size, p.size);
	CHECK_EQ(st.st_mode & 0777, 0600);
	snprintf(dir, sizeof(dir), "%.*s", (int)(strrchr(p.path, '/') - p.path), p.path);
	CHECK_OK(stat(dir, &st));
	CHECK_EQ(st.st_mode & 0777, 0700);
	/* §6.1: the name is the SHA-256 of the whole file */
	CHECK_OK(cairn_file_slurp(p.path, 64u << 20, &file));
	cairn_sha256(file.data, file.len, sha);
	CHECK(memcmp(sha, p.id.b, 32) == 0);
	CHECK(memcmp(file.data, "CAIRNPK1", 8) == 0);
	CHECK(memcmp(file.data + file.len - 8, "CAIRNPK1", 8) == 0);
	CHECK_EQ(p.hdr_off + cairn_get_le32(file.data + file.len - 12) + 12, file.len);
	/* §6.2: the sealed header is its plaintext plus the overhead (enc = 0) */
	CHECK_EQ(cairn_get_le32(file.data + file.len - 12), 4 + 45 * 10000 + CAIRN_SEAL_OVERHEAD);

	CHECK_OK(read_entries_at(p.path, &e, &n));
	CHECK_EQ(n, 10000);
	for (size_t i = 0; i < n; i++)
		CHECK(entry_eq(&e[i], &p.e[i]));
	CHECK_EQ(e[0].offset, 8);
	check_blobs(&p, e);
	pack_release(&p);
}

static void test_pack__relpath(void)
{
	struct cairn_id id;
	char rel[CAIRN_PACK_RELPATH_SIZE];

	for (size_t i = 0; i < sizeof(id.b); i++)
		id.b[i] = (uint8_t)(0xab + i);
	cairn_pack__relpath(rel, &id);
	CHECK(strcmp(rel,
	             "packs/ab/abacadaeafb0b1b2b3b4b5b6b7b8b9babbbcbdbebfc0c1c2c3c4c5c6c7c8c9ca") ==
	      0);
}

/* The ID helpers of store.h that name packs (store/id.c). */
static void test_pack__id_helpers(void)
{
	struct cairn_id a, b, z = { { 0 } };
	char hex[CAIRN_ID_HEX_SIZE];
	const char *s = "00ff10203040506070809a0b0c0d0e0f101112131415161718191a1b1c1d1eff";

	CHECK_OK(cairn_id_parse(&a, s));
	CHECK_EQ(a.b[1], 0xff);
	CHECK_EQ(a.b[31], 0xff);
	cairn_id_hex(hex, &a);
	CHECK(strcmp(hex, s) == 0);
	b = a;
	CHECK_ERR(cairn_id_parse(&b, "00ff"), -EINVAL);
	CHECK_ERR(cairn_id_parse(&b, ""), -EINVAL);
	char bad[CAIRN_ID_HEX_SIZE];
	memcpy(bad, s, sizeof(bad));
	bad[10] = 'g';
	CHECK_ERR(cairn_id_parse(&b, bad), -EINVAL);
	CHECK(memcmp(&a, &b, sizeof(a)) == 0); /* untouched on failure */
	CHECK(cairn_id_is_zero(&z));
	CHECK(!cairn_id_is_zero(&a));
	z.b[31] = 1;
	CHECK(!cairn_id_is_zero(&z));
	CHECK_EQ(cairn_id_cmp(&a, &b), 0);
	b.b[31] = 0xfe;
	CHECK(cairn_id_cmp(&a, &b) > 0 && cairn_id_cmp(&b, &a) < 0);
	CHECK(strcmp(cairn_blob_type_name(CAIRN_BLOB_DATA), "data") == 0);
	CHECK(strcmp(cairn_blob_type_name(CAIRN_BLOB_TREE), "tree") == 0);
	CHECK(strcmp(cairn_blob_type_name(CAIRN_BLOB_SNAPSHOT), "snapshot") == 0);
	CHECK(strcmp(cairn_blob_type_name(CAIRN_BLOB_PACKHDR), "packhdr") == 0);
	CHECK(strcmp(cairn_blob_type_name(0), "unknown") == 0);
}

static void test_pack__writer_rules(void)
{
	char tmp[512], packs[512];
	cairn_packw *w = NULL;
	struct cairn_id id = { { 1 } }, pid;
	uint8_t sealed[64] = { 0 };
	uint64_t size;

	dir_path(tmp, sizeof(tmp), "tmp");
	dir_path(packs, sizeof(packs), "packs");
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_ERR(cairn_packw__new(&w, packs), -ENOENT);
	CHECK(w == NULL);
	CHECK_OK(cairn_packw__new(&w, tmp));
	CHECK_EQ(count_files(tmp), 1);
	CHECK_EQ(cairn_packw__size(w), 8);
	/* a pack header has 1..1,000,000 entries: an empty pack is refused */
	CHECK_ERR(cairn_packw__seal(w, &keys, &pid, &size), -EINVAL);
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_SNAPSHOT, sealed, 41, 0), -EINVAL);
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_PACKHDR, sealed, 41, 0), -EINVAL);
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, 40, 0), -EINVAL);
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, 41, CAIRN_TREE_MAX + 1),
	          -EINVAL);
	CHECK_EQ(cairn_packw__count(w), 0);
	CHECK_OK(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, 41, 0));
	CHECK_EQ(cairn_packw__size(w), 49);
	/* sealed: the writer takes nothing more */
	CHECK_OK(cairn_packw__seal(w, &keys, &pid, &size));
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, 41, 0), -EIO);
	CHECK_ERR(cairn_packw__seal(w, &keys, &pid, &size), -EIO);
	/* no storage took it over: free removes the temp file */
	cairn_packw__free(w);
	CHECK_EQ(count_files(tmp), 0); /* no temp file left behind */
	CHECK(access(packs, F_OK) < 0);
	cairn_packw__free(NULL);
}

static void test_pack__free_unfinished_unlinks(void)
{
	char tmp[512];
	cairn_packw *w = NULL;
	struct cairn_id id = { { 2 } };
	uint8_t sealed[100] = { 0 };

	dir_path(tmp, sizeof(tmp), "tmp");
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_OK(cairn_packw__new(&w, tmp));
	CHECK_OK(cairn_packw__add(w, &id, CAIRN_BLOB_TREE, sealed, sizeof(sealed), 10));
	CHECK_EQ(count_files(tmp), 1);
	cairn_packw__free(w);
	CHECK_EQ(count_files(tmp), 0);
}

static void test_pack__finish_twice_and_shared_dir(void)
{
	struct pack a = { 0 }, b = { 0 };
	char packs[512];

	write_pack(&a, 3);
	write_pack(&b, 4); /* same blobs, new nonces: a different pack */
	CHECK(memcmp(a.id.b, b.id.b, 32) != 0);
	dir_path(packs, sizeof(packs), "packs");
	CHECK_EQ(count_files(packs), a.id.b[0] == b.id.b[0] ? 1 : 2);
	pack_release(&a);
	pack_release(&b);
}

static void test_pack__finished_writer_refuses(void)
{
	char tmp[512], packs[512];
	cairn_packw *w = NULL;
	struct cairn_id id = { { 3 } }, pid, pid2;
	uint8_t sealed[41] = { 0 };
	uint64_t size;

	dir_path(tmp, sizeof(tmp), "tmp");
	dir_path(packs, sizeof(packs), "packs");
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_OK(cairn_mkdir_p(packs, 0700));
	CHECK_OK(cairn_packw__new(&w, tmp));
	CHECK_OK(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, sizeof(sealed), 0));
	CHECK_OK(finish(w, &pid, &size));
	CHECK_ERR(cairn_packw__seal(w, &keys, &pid2, &size), -EIO);
	CHECK_ERR(cairn_packw__add(w, &id, CAIRN_BLOB_DATA, sealed, sizeof(sealed), 0), -EIO);
	cairn_packw__free(w);
	/* the finished pack stays: free only unlinks unfinished temp files */
	char rel[CAIRN_PACK_RELPATH_SIZE], path[700];
	cairn_pack__relpath(rel, &pid);
	snprintf(path, sizeof(path), "%s/%s", check_tmpdir(), rel);
	CHECK_OK(access(path, F_OK));
	CHECK_EQ(count_files(tmp), 0);
}

/* ---- corruption --------------------------------------------------------- */

static void test_pack__truncated(void)
{
	struct pack p = { 0 };
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;

	write_pack(&p, 20);
	int fd = open(p.path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	/* Every cut from one byte short down to 64 bytes before the header, then a
	 * few in the blobs and the magic. Descending, so one file serves. */
	for (uint64_t cut = p.size - 1; cut + 64 >= p.hdr_off; cut--) {
		CHECK_OK(ftruncate(fd, (off_t)cut));
		CHECK_ERR(cairn_pack__read_entries(fd, cut, &keys, "t", &e, &n), -EBADMSG);
	}
	static const uint64_t more[] = { 1000, 500, 100, 49, 20, 9, 8, 7, 1, 0 };
	for (size_t i = 0; i < ARRAY_SIZE(more); i++) {
		CHECK(more[i] < p.hdr_off - 64);
		CHECK_OK(ftruncate(fd, (off_t)more[i]));
		CHECK_ERR(cairn_pack__read_entries(fd, more[i], &keys, "t", &e, &n), -EBADMSG);
	}
	CHECK(e == NULL);
	close(fd);
	pack_release(&p);
}

/* A byte cut out of the blobs: trailer and header are intact, but the header no
 * longer ends where its entries say (§6.2: the sizes must add up exactly). */
static void test_pack__blob_bytes_missing(void)
{
	struct pack p = { 0 };
	_cleanup_buf_ struct cairn_buf file = CAIRN_BUF_INIT;
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	char path[600];

	write_pack(&p, 20);
	CHECK_OK(cairn_file_slurp(p.path, 1 << 20, &file));
	memmove(file.data + 100, file.data + 101, file.len - 101);
	snprintf(path, sizeof(path), "%s/cut", check_tmpdir());
	CHECK_OK(cairn_file_write_atomic(path, NULL, file.data, file.len - 1));
	CHECK_ERR(read_entries_at(path, &e, &n), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "pack 'ab12cd34': header: entries end at") != NULL);
	pack_release(&p);
}

static void test_pack__flipped_header_bytes(void)
{
	struct pack p = { 0 };
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	uint8_t b;

	write_pack(&p, 20);
	int fd = open(p.path, O_RDWR | O_CLOEXEC);
	CHECK(fd >= 0);
	/* each byte of the sealed header and the trailer, plus the leading magic */
	for (uint64_t off = 0; off < p.size; off++) {
		if (off == CAIRN_PACK_MAGIC_SIZE)
			off = p.hdr_off;
		CHECK_OK(cairn_pread_all(fd, &b, 1, off));
		b ^= (uint8_t)(1u << (off % 8));
		CHECK_EQ(pwrite(fd, &b, 1, (off_t)off), 1);
		CHECK_ERR(cairn_pack__read_entries(fd, p.size, &keys, "t", &e, &n), -EBADMSG);
		b ^= (uint8_t)(1u << (off % 8));
		CHECK_EQ(pwrite(fd, &b, 1, (off_t)off), 1);
	}
	/* restored: reads again */
	CHECK_OK(cairn_pack__read_entries(fd, p.size, &keys, "t", &e, &n));
	CHECK_EQ(n, 20);
	free(e);
	close(fd);
	pack_release(&p);
}

static void test_pack__wrong_key(void)
{
	struct pack p = { 0 };
	struct cairn_keys other;
	struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	uint8_t m[CAIRN_KEY_SIZE] = { 0x70, 0x61, 0x63, 0x6c };

	write_pack(&p, 2);
	CHECK_OK(cairn_crypt__derive(&other, m, repo_id));
	int fd = open(p.path, O_RDONLY | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK_ERR(cairn_pack__read_entries(fd, p.size, &other, "t", &e, &n), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "pack 't': header at offset") != NULL);
	close(fd);
	pack_release(&p);
}

/* ---- header plaintext (FORMAT.md §6.2) ---------------------------------- */

static void put_entry(struct cairn_buf *b, uint8_t idb, uint8_t type, uint32_t off, uint32_t slen,
                      uint32_t raw)
{
	uint8_t id[CAIRN_ID_SIZE];
	memset(id, idb, sizeof(id));
	CHECK_OK(cairn_buf_put(b, id, sizeof(id)));
	CHECK_OK(cairn_buf_put_u8(b, type));
	CHECK_OK(cairn_buf_put_u32(b, off));
	CHECK_OK(cairn_buf_put_u32(b, slen));
	CHECK_OK(cairn_buf_put_u32(b, raw));
}

/* Three entries at 8, 58, 158 of 50, 100, 41 bytes: the header starts at 199. */
static void good_hdr(struct cairn_buf *b)
{
	b->len = 0;
	CHECK_OK(cairn_buf_put_u32(b, 3));
	put_entry(b, 0xa1, CAIRN_BLOB_DATA, 8, 50, 9);
	put_entry(b, 0xa2, CAIRN_BLOB_TREE, 58, 100, 0);
	put_entry(b, 0xa3, CAIRN_BLOB_DATA, 158, 41, CAIRN_TREE_MAX);
}

static int parse(const struct cairn_buf *b, uint64_t hdr_off)
{
	static struct cairn_pack_entry sentinel;
	struct cairn_pack_entry *e = &sentinel;
	size_t n = 77;
	int r = cairn_pack__parse_hdr(b->data, b->len, hdr_off, &e, &n);
	if (r < 0) {
		CHECK(e == &sentinel && n == 77); /* outputs untouched on failure */
		return r;
	}
	CHECK(e != &sentinel && n > 0);
	free(e);
	return r;
}

static void test_pack__parse_hdr_valid(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	size_t n = 0;

	good_hdr(&b);
	CHECK_OK(cairn_pack__parse_hdr(b.data, b.len, 199, &e, &n));
	CHECK_EQ(n, 3);
	CHECK_EQ(e[0].id.b[31], 0xa1);
	CHECK_EQ(e[1].type, CAIRN_BLOB_TREE);
	CHECK_EQ(e[1].offset, 58);
	CHECK_EQ(e[1].stored_len, 100);
	CHECK_EQ(e[2].raw_len, CAIRN_TREE_MAX);
	CHECK_EQ(e[0].raw_len, 9);
}

static void test_pack__parse_hdr_counts(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;

	CHECK_ERR(parse(&b, 8), -EBADMSG); /* empty */
	CHECK_OK(cairn_buf_put(&b, "\0\0\0", 3));
	CHECK_ERR(parse(&b, 8), -EBADMSG); /* shorter than the count */
	b.len = 0;
	CHECK_OK(cairn_buf_put_u32(&b, 0));
	CHECK_ERR(parse(&b, 8), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "0 entries") != NULL);
	b.len = 0;
	CHECK_OK(cairn_buf_put_u32(&b, CAIRN_PACK_MAX_ENTRIES + 1));
	CHECK_ERR(parse(&b, 8), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "out of range") != NULL);
	b.len = 0;
	CHECK_OK(cairn_buf_put_u32(&b, UINT32_MAX));
	CHECK_ERR(parse(&b, 8), -EBADMSG);
	/* the maximum count passes the range check, then fails on length before allocating */
	b.len = 0;
	CHECK_OK(cairn_buf_put_u32(&b, CAIRN_PACK_MAX_ENTRIES));
	put_entry(&b, 1, CAIRN_BLOB_DATA, 8, 41, 0);
	CHECK_ERR(parse(&b, 49), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "expected 45000004") != NULL);
}

static void test_pack__parse_hdr_length(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;

	good_hdr(&b);
	CHECK_OK(parse(&b, 199));
	CHECK_OK(cairn_buf_put_u8(&b, 0));
	CHECK_ERR(parse(&b, 199), -EBADMSG); /* one byte too many */
	b.len -= 2;
	CHECK_ERR(parse(&b, 199), -EBADMSG); /* one too few */
	b.len = 4 + 45 * 2;
	CHECK_ERR(parse(&b, 199), -EBADMSG); /* a whole entry missing */
}

static void test_pack__parse_hdr_types(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	static const uint8_t bad[] = { 0, CAIRN_BLOB_SNAPSHOT, CAIRN_BLOB_PACKHDR, 5, 255 };

	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		good_hdr(&b);
		b.data[4 + 45 + 32] = bad[i]; /* entry 1 */
		CHECK_ERR(parse(&b, 199), -EBADMSG);
		CHECK(strstr(cairn_err_msg(), "entry 1 has type") != NULL);
	}
}

static void test_pack__parse_hdr_offsets(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;

	good_hdr(&b);
	cairn_le32(b.data + 4 + 33, 9); /* entry 0 must start right after the magic */
	CHECK_ERR(parse(&b, 199), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "header: entry 0 offset 9 is not contiguous") != NULL);
	good_hdr(&b);
	cairn_le32(b.data + 4 + 45 + 33, 59); /* a gap after entry 0 */
	CHECK_ERR(parse(&b, 199), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "entry 1 offset 59 is not contiguous") != NULL);
	good_hdr(&b);
	cairn_le32(b.data + 4 + 45 + 33, 57); /* an overlap */
	CHECK_ERR(parse(&b, 199), -EBADMSG);
	/* the entries must end exactly where the header starts */
	good_hdr(&b);
	CHECK_ERR(parse(&b, 198), -EBADMSG);
	CHECK_ERR(parse(&b, 200), -EBADMSG);
	CHECK_ERR(parse(&b, UINT64_MAX), -EBADMSG);
}

static void test_pack__parse_hdr_lengths(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;

	good_hdr(&b);
	cairn_le32(b.data + 4 + 90 + 37, 40); /* shorter than nonce + enc + tag */
	CHECK_ERR(parse(&b, 198), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "stored length 40") != NULL);
	good_hdr(&b);
	cairn_le32(b.data + 4 + 90 + 41, CAIRN_TREE_MAX + 1);
	CHECK_ERR(parse(&b, 199), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "raw length") != NULL);
	/* u32 lengths summing past 2^32 do not wrap around */
	b.len = 0;
	CHECK_OK(cairn_buf_put_u32(&b, 2));
	put_entry(&b, 1, CAIRN_BLOB_DATA, 8, UINT32_MAX, 0);
	put_entry(&b, 2, CAIRN_BLOB_DATA, 7, 41, 0); /* 8 + 2^32 - 1 mod 2^32 */
	CHECK_ERR(parse(&b, 48), -EBADMSG);
}

/* ---- trailer (FORMAT.md §6.1) ------------------------------------------- */

static void test_pack__parse_trailer(void)
{
	uint8_t t[CAIRN_PACK_TRAILER_SIZE];
	uint32_t len = 0;
	const uint32_t min = CAIRN_SEAL_OVERHEAD + 4 + 45;
	const uint32_t max = CAIRN_SEAL_OVERHEAD + 4 + 45 * CAIRN_PACK_MAX_ENTRIES;

	memcpy(t + 4, "CAIRNPK1", 8);
	cairn_le32(t, min);
	CHECK_OK(cairn_pack__parse_trailer(t, 8 + min + 12, &len));
	CHECK_EQ(len, min);
	CHECK_ERR(cairn_pack__parse_trailer(t, 8 + min + 11, &len), -EBADMSG);
	cairn_le32(t, min - 1);
	CHECK_ERR(cairn_pack__parse_trailer(t, 1 << 20, &len), -EBADMSG);
	cairn_le32(t, max);
	CHECK_OK(cairn_pack__parse_trailer(t, UINT32_MAX, &len));
	cairn_le32(t, max + 1);
	CHECK_ERR(cairn_pack__parse_trailer(t, UINT32_MAX, &len), -EBADMSG);
	cairn_le32(t, UINT32_MAX);
	CHECK_ERR(cairn_pack__parse_trailer(t, UINT64_MAX, &len), -EBADMSG);
	cairn_le32(t, min);
	t[11] = '2';
	len = 5;
	CHECK_ERR(cairn_pack__parse_trailer(t, 1 << 20, &len), -EBADMSG);
	CHECK_EQ(len, 5);
	CHECK(strstr(cairn_err_msg(), "bad magic") != NULL);
}

/* A pack of two zero-filled "blobs" of 100 bytes whose header, sealed with the
 * right key, puts the second at off2. */
static void craft_pack(const char *path, uint32_t off2)
{
	_cleanup_buf_ struct cairn_buf hdr = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT,
	                               file = CAIRN_BUF_INIT;
	static const struct cairn_id zero;
	uint8_t blobs[200] = { 0 };

	CHECK_OK(cairn_buf_put_u32(&hdr, 2));
	put_entry(&hdr, 1, CAIRN_BLOB_DATA, 8, 100, 1);
	put_entry(&hdr, 2, CAIRN_BLOB_DATA, off2, 208 - off2, 1);
	CHECK_OK(
	        cairn_crypt__seal(&keys, CAIRN_BLOB_PACKHDR, &zero, 0, hdr.data, hdr.len, &sealed));
	CHECK_OK(cairn_buf_put(&file, "CAIRNPK1", 8));
	CHECK_OK(cairn_buf_put(&file, blobs, sizeof(blobs)));
	CHECK_OK(cairn_buf_put(&file, sealed.data, sealed.len));
	CHECK_OK(cairn_buf_put_u32(&file, (uint32_t)sealed.len));
	CHECK_OK(cairn_buf_put(&file, "CAIRNPK1", 8));
	CHECK_OK(cairn_file_write_atomic(path, NULL, file.data, file.len));
}

/* A header that decrypts but breaks §6.2: the message names the pack, the entry
 * and its offset. */
static void test_pack__bad_header_message(void)
{
	struct cairn_pack_entry *e = NULL;
	char path[600];
	size_t n = 0;

	snprintf(path, sizeof(path), "%s/crafted", check_tmpdir());
	craft_pack(path, 110);
	CHECK_ERR(read_entries_at(path, &e, &n), -EBADMSG);
	CHECK(strcmp(cairn_err_msg(), "pack 'ab12cd34': header: entry 1 offset 110 is not "
	                              "contiguous (expected 108)") == 0);
	craft_pack(path, 108);
	CHECK_OK(read_entries_at(path, &e, &n));
	CHECK_EQ(n, 2);
	CHECK_EQ(e[1].offset, 108);
	free(e);
}

int main(void)
{
	CHECK_OK(cairn_crypt__derive(&keys, master, repo_id));
	RUN(test_pack__roundtrip_10000);
	RUN(test_pack__relpath);
	RUN(test_pack__id_helpers);
	RUN(test_pack__writer_rules);
	RUN(test_pack__free_unfinished_unlinks);
	RUN(test_pack__finish_twice_and_shared_dir);
	RUN(test_pack__finished_writer_refuses);
	RUN(test_pack__truncated);
	RUN(test_pack__blob_bytes_missing);
	RUN(test_pack__flipped_header_bytes);
	RUN(test_pack__wrong_key);
	RUN(test_pack__parse_hdr_valid);
	RUN(test_pack__parse_hdr_counts);
	RUN(test_pack__parse_hdr_length);
	RUN(test_pack__parse_hdr_types);
	RUN(test_pack__parse_hdr_offsets);
	RUN(test_pack__parse_hdr_lengths);
	RUN(test_pack__parse_trailer);
	RUN(test_pack__bad_header_message);
	return 0;
}
