/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot plaintext codec (FORMAT.md §8): round trips, limits, corruption. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/store.h"
#include "cleanup.h"

DEFINE_FREEP(struct cairn_snapshot, cairn_snapshot_free)

/* The struct owns char * strings; the encoder only reads these literals. */
#define S(lit) ((char *)(lit))

static char *paths[] = { S("/home/alice"), S("/etc"), S("/srv/data with spaces\n\xff") };
static char *tags[] = { S("daily"), S("") };

static struct cairn_snapshot sample(void)
{
	struct cairn_snapshot s = {
		.time_ns = 1700000000123456789,
		.hostname = S("host.example"),
		.username = S("root"),
		.paths = paths,
		.npaths = ARRAY_SIZE(paths),
		.tags = tags,
		.ntags = ARRAY_SIZE(tags),
		.has_parent = true,
		.summary = { 1, 2, 3, 4, UINT64_MAX, 6, 7, 8, true },
		.program_version = S("cairn 0.1.0"),
	};
	check_random(s.root.b, sizeof(s.root.b), 1);
	check_random(s.parent.b, sizeof(s.parent.b), 2);
	return s;
}

/* Minimal: empty strings, no lists, no parent. 153 bytes by FORMAT.md §8. */
static struct cairn_snapshot minimal(void)
{
	return (struct cairn_snapshot){ .hostname = S(""),
		                        .username = S(""),
		                        .program_version = S("") };
}

static bool str_eq(const char *a, const char *b)
{
	return a && b && strcmp(a, b) == 0;
}

static void check_same(const struct cairn_snapshot *a, const struct cairn_snapshot *b)
{
	static const struct cairn_id zero;

	CHECK(a->time_ns == b->time_ns);
	CHECK(str_eq(a->hostname, b->hostname) && str_eq(a->username, b->username));
	CHECK(str_eq(a->program_version, b->program_version));
	CHECK_EQ(a->npaths, b->npaths);
	for (size_t i = 0; i < a->npaths; i++)
		CHECK(str_eq(a->paths[i], b->paths[i]));
	CHECK_EQ(a->ntags, b->ntags);
	for (size_t i = 0; i < a->ntags; i++)
		CHECK(str_eq(a->tags[i], b->tags[i]));
	CHECK(memcmp(&a->root, &b->root, sizeof(a->root)) == 0);
	CHECK_EQ(a->has_parent, b->has_parent);
	CHECK(memcmp(&a->parent, b->has_parent ? &b->parent : &zero, sizeof(zero)) == 0);
	CHECK(memcmp(&a->summary, &b->summary, offsetof(struct cairn_snapshot_summary, errors)) ==
	      0);
	CHECK_EQ(a->summary.errors, b->summary.errors);
	CHECK_EQ(a->summary.partial, b->summary.partial);
}

/* Decode, compare with s, re-encode: the same bytes. */
static void roundtrip(const struct cairn_snapshot *s, size_t expect_len)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT, again = CAIRN_BUF_INIT;
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *d = NULL;
	static const struct cairn_id zero;

	CHECK_OK(cairn_snapshot_encode(s, &out));
	if (expect_len)
		CHECK_EQ(out.len, expect_len);
	CHECK_OK(cairn_snapshot_decode(&d, out.data, out.len));
	check_same(d, s);
	CHECK(memcmp(&d->id, &zero, sizeof(zero)) == 0);
	CHECK_OK(cairn_snapshot_encode(d, &again));
	CHECK(out.len == again.len && memcmp(out.data, again.data, out.len) == 0);
}

static void test_snapshot__roundtrip(void)
{
	struct cairn_snapshot s = sample();
	roundtrip(&s, 0);
	s.time_ns = -1;
	s.summary.partial = false;
	s.has_parent = false; /* parent is ignored, encoded as zero */
	roundtrip(&s, 0);
}

static void test_snapshot__minimal(void)
{
	struct cairn_snapshot s = minimal();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;

	roundtrip(&s, 153);
	CHECK_OK(cairn_snapshot_encode(&s, &out));
	CHECK(memcmp(out.data, "CSNP\1", 5) == 0);
}

static void test_snapshot__layout(void)
{
	struct cairn_snapshot s = minimal();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	char *one[] = { S("/x") };

	s.time_ns = 0x0102030405060708;
	s.hostname = S("h");
	s.paths = one;
	s.npaths = 1;
	s.summary.errors = 0xaabbccdd;
	CHECK_OK(cairn_snapshot_encode(&s, &out));
	CHECK_EQ(out.len, 153 + 1 + 4);
	CHECK_EQ(cairn_get_le64(out.data + 5), 0x0102030405060708);
	CHECK(memcmp(out.data + 13, "\1\0h\0\0\1\0\0\0\2\0/x\0\0\0\0", 17) == 0);
	/* errors sits before partial and the (empty) program version: the last 7 bytes. */
	CHECK_EQ(cairn_get_le32(out.data + out.len - 7), 0xaabbccdd);
}

static void test_snapshot__limits(void)
{
	struct cairn_snapshot s = minimal();
	_cleanup_free_ char **many = calloc(CAIRN_SNAPSHOT_MAX_PATHS + 1, sizeof(char *));
	_cleanup_free_ char *longest = malloc(65537);

	CHECK(many && longest);
	for (size_t i = 0; i <= CAIRN_SNAPSHOT_MAX_PATHS; i++)
		many[i] = S("/p");
	memset(longest, 'x', 65535);
	longest[65535] = '\0';
	s.paths = many;
	s.npaths = CAIRN_SNAPSHOT_MAX_PATHS;
	s.tags = many;
	s.ntags = CAIRN_SNAPSHOT_MAX_TAGS;
	s.hostname = longest;
	roundtrip(&s, 0);
}

static void test_snapshot__encode_errors(void)
{
	struct cairn_snapshot s = sample();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_free_ char *toolong = malloc(65537);
	char *nulls[] = { S("/ok"), NULL };

	CHECK(toolong != NULL);
	memset(toolong, 'x', 65536);
	toolong[65536] = '\0';
	CHECK_OK(cairn_buf_put(&out, "keep", 4));
#define BAD(setup)                                                   \
	do {                                                         \
		s = sample();                                        \
		setup;                                               \
		CHECK_ERR(cairn_snapshot_encode(&s, &out), -EINVAL); \
		CHECK_EQ(out.len, 4);                                \
	} while (0)
	BAD(s.hostname = NULL);
	BAD(s.username = NULL);
	BAD(s.program_version = NULL);
	BAD(s.username = toolong);
	BAD(s.program_version = toolong);
	BAD(s.paths = nulls; s.npaths = 2);
	BAD(s.tags = nulls; s.ntags = 2);
	BAD(s.paths = nulls; s.npaths = CAIRN_SNAPSHOT_MAX_PATHS + 1);
	BAD(s.tags = nulls; s.ntags = CAIRN_SNAPSHOT_MAX_TAGS + 1);
#undef BAD
	CHECK(memcmp(out.data, "keep", 4) == 0);
}

/* Over 16 MiB in total (4096 paths of 4 KiB is 16 MiB + the rest) is refused. */
static void test_snapshot__too_large(void)
{
	struct cairn_snapshot s = minimal();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	_cleanup_free_ char **many = calloc(CAIRN_SNAPSHOT_MAX_PATHS, sizeof(char *));
	_cleanup_free_ char *p = malloc(4097);
	struct cairn_snapshot *d = NULL;

	CHECK(many && p);
	memset(p, 'p', 4096);
	p[4096] = '\0';
	for (size_t i = 0; i < CAIRN_SNAPSHOT_MAX_PATHS; i++)
		many[i] = p;
	s.paths = many;
	s.npaths = CAIRN_SNAPSHOT_MAX_PATHS;
	CHECK_ERR(cairn_snapshot_encode(&s, &out), -EINVAL);
	CHECK_EQ(out.len, 0);
	p[4000] = '\0';
	CHECK_OK(cairn_snapshot_encode(&s, &out));
	CHECK(out.len <= CAIRN_SNAPSHOT_MAX_SIZE);

	_cleanup_free_ uint8_t *big = calloc(1, CAIRN_SNAPSHOT_MAX_SIZE + 1);
	CHECK(big != NULL);
	memcpy(big, out.data, out.len);
	CHECK_ERR(cairn_snapshot_decode(&d, big, CAIRN_SNAPSHOT_MAX_SIZE + 1), -EBADMSG);
	CHECK(d == NULL);
}

static void test_snapshot__truncated(void)
{
	struct cairn_snapshot s = sample();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_snapshot *d = NULL;

	CHECK_OK(cairn_snapshot_encode(&s, &out));
	for (size_t len = 0; len < out.len; len++) {
		CHECK_ERR(cairn_snapshot_decode(&d, out.data, len), -EBADMSG);
		CHECK(d == NULL);
	}
	CHECK_OK(cairn_buf_put_u8(&out, 0));
	CHECK_ERR(cairn_snapshot_decode(&d, out.data, out.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "trailing") != NULL);
}

/* Decode the mutated bytes; when they decode they must re-encode identically. */
static int try_decode(const uint8_t *data, size_t len)
{
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *d = NULL;
	_cleanup_buf_ struct cairn_buf again = CAIRN_BUF_INIT;

	int r = cairn_snapshot_decode(&d, data, len);
	CHECK(r == 0 || r == -EBADMSG);
	if (r == 0) {
		CHECK_OK(cairn_snapshot_encode(d, &again));
		CHECK(again.len == len && memcmp(again.data, data, len) == 0);
	}
	return r;
}

static void test_snapshot__byte_flips(void)
{
	struct cairn_snapshot s = sample();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	static const uint8_t masks[] = { 0x01, 0x04, 0x40, 0x80, 0xff };
	size_t ok = 0, bad = 0;

	CHECK_OK(cairn_snapshot_encode(&s, &out));
	for (size_t i = 0; i < out.len; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			out.data[i] ^= masks[m];
			if (try_decode(out.data, out.len) == 0)
				ok++;
			else
				bad++;
			out.data[i] ^= masks[m];
		}
	}
	CHECK(ok > 0 && bad > 0);
}

/* Offsets in the minimal encoding (FORMAT.md §8). */
enum {
	OFF_HOST = 13,
	OFF_NPATHS = 17,
	OFF_NTAGS = 21,
	OFF_HAS_PARENT = 57,
	OFF_PARENT = 58,
	OFF_PARTIAL = 150
};

static void test_snapshot__corrupt_fields(void)
{
	struct cairn_snapshot s = minimal();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_snapshot *d = NULL;

	CHECK_OK(cairn_snapshot_encode(&s, &out));
	CHECK_EQ(try_decode(out.data, out.len), 0);
#define BAD(off, val)                                                              \
	do {                                                                       \
		uint8_t old_ = out.data[off];                                      \
		out.data[off] = (val);                                             \
		CHECK_ERR(cairn_snapshot_decode(&d, out.data, out.len), -EBADMSG); \
		out.data[off] = old_;                                              \
	} while (0)
	BAD(0, 'X');
	BAD(4, 2); /* version */
	BAD(OFF_HAS_PARENT, 2);
	BAD(OFF_PARENT + 31, 1); /* parent set without has_parent */
	BAD(OFF_PARTIAL, 2);
	BAD(OFF_NPATHS, 1); /* count beyond the data */
	BAD(OFF_NTAGS + 3, 0x80);
#undef BAD
	/* Counts above the §8 maxima, before anything is allocated. */
	cairn_le32(out.data + OFF_NPATHS, CAIRN_SNAPSHOT_MAX_PATHS + 1);
	CHECK_ERR(cairn_snapshot_decode(&d, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + OFF_NPATHS, 0);
	cairn_le32(out.data + OFF_NTAGS, UINT32_MAX);
	CHECK_ERR(cairn_snapshot_decode(&d, out.data, out.len), -EBADMSG);
	cairn_le32(out.data + OFF_NTAGS, 0);
	/* has_parent = 1 with any parent is fine. */
	out.data[OFF_HAS_PARENT] = 1;
	out.data[OFF_PARENT] = 7;
	CHECK_EQ(try_decode(out.data, out.len), 0);
	out.data[OFF_PARTIAL] = 1;
	CHECK_EQ(try_decode(out.data, out.len), 0);
	CHECK(d == NULL);
}

static void test_snapshot__nul_in_string(void)
{
	static const char *const strings[] = { "host.example", "root",  "/home/alice",
		                               "/etc",         "daily", "cairn 0.1.0" };
	struct cairn_snapshot s = sample();
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_snapshot *d = NULL;

	CHECK_OK(cairn_snapshot_encode(&s, &out));
	for (size_t i = 0; i < ARRAY_SIZE(strings); i++) {
		uint8_t *p = memmem(out.data, out.len, strings[i], strlen(strings[i]));
		CHECK(p != NULL);
		p[1] = 0;
		CHECK_ERR(cairn_snapshot_decode(&d, out.data, out.len), -EBADMSG);
		CHECK(strstr(cairn_err_msg(), "NUL") != NULL);
		p[1] = (uint8_t)strings[i][1];
		CHECK_EQ(try_decode(out.data, out.len), 0);
	}
	CHECK(d == NULL);
}

static void test_snapshot__free_null(void)
{
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_snapshot s = sample();
	struct cairn_snapshot *d = NULL;

	cairn_snapshot_free(NULL);
	CHECK_OK(cairn_snapshot_encode(&s, &out));
	CHECK_OK(cairn_snapshot_decode(&d, out.data, out.len));
	CHECK(d != NULL && d->npaths == 3 && strcmp(d->paths[2], paths[2]) == 0);
	cairn_snapshot_free(d);
}

int main(void)
{
	RUN(test_snapshot__roundtrip);
	RUN(test_snapshot__minimal);
	RUN(test_snapshot__layout);
	RUN(test_snapshot__limits);
	RUN(test_snapshot__encode_errors);
	RUN(test_snapshot__too_large);
	RUN(test_snapshot__truncated);
	RUN(test_snapshot__byte_flips);
	RUN(test_snapshot__corrupt_fields);
	RUN(test_snapshot__nul_in_string);
	RUN(test_snapshot__free_null);
	return 0;
}
