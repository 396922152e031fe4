/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/util: buffers, readers, hex, errors and file helpers. */
#include "cairn/util.h"

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "cleanup.h"

/* ---- buffers ------------------------------------------------------------ */

static void test_util__buf_put(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	static const uint8_t want[] = { 0x11, 0x22, 0x11, 0x44, 0x33, 0x22, 0x11, 0x88, 0x77,
		                        0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 'x',  'y' };

	CHECK_OK(cairn_buf_put_u8(&b, 0x11));
	CHECK_OK(cairn_buf_put_u16(&b, 0x1122));
	CHECK_OK(cairn_buf_put_u32(&b, 0x11223344));
	CHECK_OK(cairn_buf_put_u64(&b, 0x1122334455667788ull));
	CHECK_OK(cairn_buf_put(&b, "xy", 2));
	CHECK_OK(cairn_buf_put(&b, NULL, 0));
	CHECK_EQ(b.len, sizeof(want));
	CHECK(memcmp(b.data, want, sizeof(want)) == 0);
	CHECK(b.cap >= b.len);
	/* growth keeps the content */
	for (int i = 0; i < 10000; i++)
		CHECK_OK(cairn_buf_put_u8(&b, (uint8_t)i));
	CHECK_EQ(b.len, sizeof(want) + 10000);
	CHECK(memcmp(b.data, want, sizeof(want)) == 0);
	CHECK_EQ(b.data[b.len - 1], (uint8_t)9999);
	/* sizes that cannot exist fail without allocating */
	CHECK_ERR(cairn_buf_reserve(&b, SIZE_MAX), -ENOMEM);
	CHECK_ERR(cairn_buf_reserve(&b, SIZE_MAX - b.len), -ENOMEM);
	CHECK_EQ(b.len, sizeof(want) + 10000);
	cairn_buf_release(&b);
	CHECK(b.data == NULL && b.len == 0 && b.cap == 0);
}

static void test_util__buf_strings(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_free_ uint8_t *s = malloc(70000);

	CHECK(s);
	memset(s, 'a', 70000);
	CHECK_OK(cairn_buf_put_str8(&b, s, 255));
	CHECK_EQ(b.len, 256);
	CHECK_EQ(b.data[0], 255);
	CHECK_ERR(cairn_buf_put_str8(&b, s, 256), -EINVAL);
	CHECK_EQ(b.len, 256); /* nothing written */
	CHECK_OK(cairn_buf_put_str16(&b, s, 65535));
	CHECK_EQ(b.len, 256 + 2 + 65535);
	CHECK_EQ(b.data[256], 0xff);
	CHECK_EQ(b.data[257], 0xff);
	CHECK_ERR(cairn_buf_put_str16(&b, s, 65536), -EINVAL);
	CHECK_EQ(b.len, 256 + 2 + 65535);
	CHECK_OK(cairn_buf_put_str8(&b, "", 0));
	CHECK_EQ(b.data[b.len - 1], 0);

	b.len = 0;
	CHECK_OK(cairn_buf_printf(&b, "%s-%d", "ab", 42));
	CHECK_OK(cairn_buf_printf(&b, "%s", ""));
	CHECK_OK(cairn_buf_printf(&b, "/%05u", 7u));
	CHECK_EQ(b.len, 11);
	CHECK(memcmp(b.data, "ab-42/00007", 11) == 0);
}

/* ---- readers ------------------------------------------------------------ */

static void test_util__rd_getters(void)
{
	static const uint8_t in[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
		                      0x09, 0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
		                      0xff, 0x02, 'h',  'i',  0x01, 0x00, 'z' };
	struct cairn_rd r = { in, sizeof(in) };
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	const uint8_t *p;
	size_t n;

	CHECK_OK(cairn_rd_u8(&r, &u8));
	CHECK_EQ(u8, 1);
	CHECK_OK(cairn_rd_u16(&r, &u16));
	CHECK_EQ(u16, 0x0302);
	CHECK_OK(cairn_rd_u32(&r, &u32));
	CHECK_EQ(u32, 0x07060504);
	CHECK_OK(cairn_rd_take(&r, 2, &p));
	CHECK(p == in + 7);
	CHECK_OK(cairn_rd_i64(&r, &i64));
	CHECK_EQ(i64, -2);
	CHECK_OK(cairn_rd_str8(&r, &p, &n));
	CHECK_EQ(n, 2);
	CHECK(memcmp(p, "hi", 2) == 0);
	CHECK_OK(cairn_rd_str16(&r, &p, &n));
	CHECK_EQ(n, 1);
	CHECK_EQ(p[0], 'z');
	CHECK_EQ(r.left, 0);
	CHECK_OK(cairn_rd_take(&r, 0, &p));
	CHECK_ERR(cairn_rd_u8(&r, &u8), -EBADMSG);

	r = (struct cairn_rd){ in, 8 };
	CHECK_OK(cairn_rd_u64(&r, &u64));
	CHECK_EQ(u64, 0x0807060504030201ull);
}

/* Every getter refuses input one byte short and leaves the cursor alone. */
static void test_util__rd_short(void)
{
	static const uint8_t in[8] = { 5, 0, 0, 0, 0, 0, 0, 0 };
	uint8_t u8, buf[9];
	uint16_t u16;
	uint32_t u32;
	uint64_t u64;
	int64_t i64;
	const uint8_t *p = NULL;
	size_t n = 99;

	for (size_t len = 0; len < 8; len++) {
		struct cairn_rd r = { in, len };
		if (len < 1)
			CHECK_ERR(cairn_rd_u8(&r, &u8), -EBADMSG);
		if (len < 2)
			CHECK_ERR(cairn_rd_u16(&r, &u16), -EBADMSG);
		if (len < 4)
			CHECK_ERR(cairn_rd_u32(&r, &u32), -EBADMSG);
		CHECK_ERR(cairn_rd_u64(&r, &u64), -EBADMSG);
		CHECK_ERR(cairn_rd_i64(&r, &i64), -EBADMSG);
		CHECK_ERR(cairn_rd_copy(&r, buf, len + 1), -EBADMSG);
		CHECK_ERR(cairn_rd_take(&r, SIZE_MAX, &p), -EBADMSG);
		CHECK(r.p == in && r.left == len);
	}
	/* a str8 of length 5 needs 6 bytes; a str16 of length 5 needs 7 */
	for (size_t len = 0; len < 6; len++) {
		struct cairn_rd r = { in, len };
		CHECK_ERR(cairn_rd_str8(&r, &p, &n), -EBADMSG);
	}
	for (size_t len = 0; len < 7; len++) {
		struct cairn_rd r = { in, len };
		CHECK_ERR(cairn_rd_str16(&r, &p, &n), -EBADMSG);
	}
	CHECK_EQ(n, 99);
	struct cairn_rd r = { in, 7 };
	CHECK_OK(cairn_rd_str16(&r, &p, &n));
	CHECK(n == 5 && p == in + 2 && r.left == 0);
}

/* ---- hex ---------------------------------------------------------------- */

static void test_util__hex(void)
{
	uint8_t in[32], out[32];
	char hex[65];

	check_random(in, sizeof(in), 5);
	cairn_hex(hex, in, sizeof(in));
	CHECK_EQ(strlen(hex), 64);
	for (size_t i = 0; i < 64; i++)
		CHECK(strchr("0123456789abcdef", hex[i]));
	CHECK_OK(cairn_unhex(out, sizeof(out), hex));
	CHECK(memcmp(in, out, sizeof(in)) == 0);

	cairn_hex(hex, (const uint8_t *)"\x00\x9f\xff", 3);
	CHECK(strcmp(hex, "009fff") == 0);
	CHECK_OK(cairn_unhex(out, 2, "a0FF"));
	CHECK(out[0] == 0xa0 && out[1] == 0xff);
	cairn_hex(hex, in, 0);
	CHECK(hex[0] == '\0');

	CHECK_ERR(cairn_unhex(out, 2, "a0f"), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, "a0fff"), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, ""), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, "a0fg"), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, "a0f "), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, "-0ff"), -EINVAL);
	CHECK_ERR(cairn_unhex(out, 2, "0x0f"), -EINVAL);
}

/* ---- errors ------------------------------------------------------------- */

/* Valid UTF-8 passes; stray bytes, overlong forms, surrogates and a cut
 * sequence become U+FFFD, one per byte. */
static void test_util__utf8_valid(void)
{
	static const struct {
		const char *in, *out;
	} cases[] = {
		{ "caf\xc3\xa9 \xf0\x9f\x90\x8d", "caf\xc3\xa9 \xf0\x9f\x90\x8d" },
		{ "caf\xe9", "caf\xef\xbf\xbd" },
		{ "\xff\xfe", "\xef\xbf\xbd\xef\xbf\xbd" },
		{ "\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd" },                 /* overlong '/' */
		{ "\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd" }, /* U+D800 */
		{ "a\xe2\x82", "a\xef\xbf\xbd\xef\xbf\xbd" },               /* cut short */
		{ "", "" },
	};
	for (size_t i = 0; i < ARRAY_SIZE(cases); i++) {
		_cleanup_free_ char *s = cairn_utf8_valid(cases[i].in, strlen(cases[i].in));
		CHECK(s && strcmp(s, cases[i].out) == 0);
	}
}

static void test_util__err(void)
{
	CHECK_ERR(cairn_err_set(-EBADMSG, "pack '%s' at %d", "ab", 12), -EBADMSG);
	CHECK(strcmp(cairn_err_msg(), "pack 'ab' at 12") == 0);
	CHECK_ERR(cairn_err_wrap(-EIO, "reading %s", "x"), -EIO);
	CHECK(strcmp(cairn_err_msg(), "reading x: pack 'ab' at 12") == 0);
	cairn_err_clear();
	CHECK(strcmp(cairn_err_msg(), "unknown error") == 0);
}

/* ---- files -------------------------------------------------------------- */

static void path_in(char *out, size_t size, const char *name)
{
	CHECK(snprintf(out, size, "%s/%s", check_tmpdir(), name) < (int)size);
}

static size_t count_entries(const char *dir)
{
	_cleanup_closedir_ DIR *d = opendir(dir);
	struct dirent *de;
	size_t n = 0;

	CHECK(d);
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	return n;
}

static void test_util__file_slurp(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	_cleanup_free_ uint8_t *data = malloc(200000);
	char p[PATH_MAX];

	CHECK(data);
	check_random(data, 200000, 9);
	path_in(p, sizeof(p), "f");
	CHECK_OK(cairn_file_write_atomic(p, NULL, data, 200000));
	CHECK_OK(cairn_file_slurp(p, 200000, &b));
	CHECK_EQ(b.len, 200000);
	CHECK(memcmp(b.data, data, 200000) == 0);
	cairn_buf_release(&b);
	CHECK_ERR(cairn_file_slurp(p, 199999, &b), -EFBIG);
	CHECK(b.data == NULL); /* *out untouched on failure */
	CHECK_ERR(cairn_file_slurp(p, 0, &b), -EFBIG);

	path_in(p, sizeof(p), "empty");
	CHECK_OK(cairn_file_write_atomic(p, NULL, "", 0));
	CHECK_OK(cairn_file_slurp(p, 0, &b));
	CHECK_EQ(b.len, 0);
	cairn_buf_release(&b);

	path_in(p, sizeof(p), "missing");
	CHECK_ERR(cairn_file_slurp(p, 100, &b), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "missing"));
	CHECK_ERR(cairn_file_slurp(check_tmpdir(), 100, &b), -EISDIR);
}

static void test_util__file_write_atomic(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char p[PATH_MAX], tmp[PATH_MAX], bad[PATH_MAX];
	struct stat st;

	path_in(p, sizeof(p), "config");
	CHECK_OK(cairn_file_write_atomic(p, NULL, "first", 5));
	CHECK_OK(cairn_file_write_atomic(p, NULL, "second!", 7));
	CHECK_OK(cairn_file_slurp(p, 100, &b));
	CHECK(b.len == 7 && memcmp(b.data, "second!", 7) == 0);
	CHECK_OK(stat(p, &st));
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(count_entries(check_tmpdir()), 1); /* no temp file left behind */

	/* with a separate temp directory on the same file system */
	path_in(tmp, sizeof(tmp), "tmp");
	CHECK_OK(cairn_mkdir_p(tmp, 0700));
	CHECK_OK(cairn_file_write_atomic(p, tmp, "third", 5));
	cairn_buf_release(&b);
	CHECK_OK(cairn_file_slurp(p, 100, &b));
	CHECK(b.len == 5 && memcmp(b.data, "third", 5) == 0);
	CHECK_EQ(count_entries(tmp), 0);

	/* a target directory that does not exist: an error, and nothing left */
	path_in(bad, sizeof(bad), "nodir/file");
	CHECK(cairn_file_write_atomic(bad, NULL, "x", 1) < 0);
	CHECK(cairn_file_write_atomic(bad, tmp, "x", 1) < 0);
	CHECK_EQ(count_entries(tmp), 0);
}

static void test_util__write_and_pread(void)
{
	char p[PATH_MAX];
	uint8_t data[5000], back[5000];

	check_random(data, sizeof(data), 4);
	path_in(p, sizeof(p), "raw");
	_cleanup_close_ int fd = open(p, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_OK(cairn_write_all(fd, data, sizeof(data)));
	CHECK_OK(cairn_pread_all(fd, back, 1000, 4000));
	CHECK(memcmp(back, data + 4000, 1000) == 0);
	CHECK_OK(cairn_pread_all(fd, back, sizeof(back), 0));
	CHECK(memcmp(back, data, sizeof(data)) == 0);
	CHECK_ERR(cairn_pread_all(fd, back, 2, 4999), -EBADMSG); /* short file */
	CHECK(cairn_write_all(-1, data, 1) < 0);
}

static void test_util__mkdir_p(void)
{
	char p[PATH_MAX], f[PATH_MAX];
	struct stat st;

	path_in(p, sizeof(p), "a/b/c/d");
	CHECK_OK(cairn_mkdir_p(p, 0700));
	CHECK_OK(stat(p, &st));
	CHECK(S_ISDIR(st.st_mode));
	CHECK_EQ(st.st_mode & 0777, 0700);
	CHECK_OK(cairn_mkdir_p(p, 0700)); /* existing is fine */
	path_in(p, sizeof(p), "a/b/");
	CHECK_OK(cairn_mkdir_p(p, 0700));
	CHECK_OK(cairn_mkdir_p("/", 0700));
	/* a file in the way */
	path_in(f, sizeof(f), "a/file");
	CHECK_OK(cairn_file_write_atomic(f, NULL, "x", 1));
	path_in(p, sizeof(p), "a/file/sub");
	CHECK(cairn_mkdir_p(p, 0700) < 0);
	CHECK(stat(p, &st) < 0);
}

static void test_util__rm_rf(void)
{
	char root[PATH_MAX], p[PATH_MAX], outside[PATH_MAX], keep[PATH_MAX];
	struct stat st;

	path_in(root, sizeof(root), "tree");
	path_in(p, sizeof(p), "tree/x/y/z");
	CHECK_OK(cairn_mkdir_p(p, 0700));
	path_in(p, sizeof(p), "tree/x/y/z/file");
	CHECK_OK(cairn_file_write_atomic(p, NULL, "data", 4));
	path_in(p, sizeof(p), "tree/top");
	CHECK_OK(cairn_file_write_atomic(p, NULL, "data", 4));
	/* a symlink to a directory outside: removed, never followed */
	path_in(outside, sizeof(outside), "outside");
	CHECK_OK(cairn_mkdir_p(outside, 0700));
	path_in(keep, sizeof(keep), "outside/keep");
	CHECK_OK(cairn_file_write_atomic(keep, NULL, "k", 1));
	path_in(p, sizeof(p), "tree/x/link");
	CHECK_OK(symlink(outside, p));
	/* and an empty directory */
	path_in(p, sizeof(p), "tree/x/empty");
	CHECK_OK(cairn_mkdir_p(p, 0700));

	CHECK_OK(cairn_rm_rf(root));
	CHECK(lstat(root, &st) < 0 && errno == ENOENT);
	CHECK_OK(stat(keep, &st));
	CHECK_OK(cairn_rm_rf(root)); /* already gone */
	CHECK_OK(cairn_rm_rf(keep)); /* a plain file */
	CHECK(lstat(keep, &st) < 0);
}

/* What cairn_text_str() makes of s: the text and its returned width. */
static void text_is(const char *s, size_t n, const char *want)
{
	char *out = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&out, &len);
	CHECK(f != NULL);
	size_t w = cairn_text_str(f, s, n);
	CHECK_OK(fclose(f));
	if (strcmp(out, want) != 0)
		fprintf(stderr, "got '%s', want '%s'\n", out, want);
	CHECK(strcmp(out, want) == 0);
	CHECK_EQ(w, len);
	CHECK_EQ(cairn_text_str(NULL, s, n), len);
	free(out);
}

static void test_util__text_str(void)
{
	text_is("plain name.txt", 14, "plain name.txt");
	text_is("", 0, "");
	text_is("a\nb\tc\rd", 7, "a\\x0ab\\x09c\\x0dd");
	text_is("\x1b[31m\x07\x7f", 7, "\\x1b[31m\\x07\\x7f");
	text_is("nul\0x", 5, "nul\\x00x");
	/* UTF-8 passes, C1 controls do not: U+009B (CSI) as UTF-8 and as a raw byte. */
	text_is("caf\xc3\xa9 \xe2\x82\xac", 9, "caf\xc3\xa9 \xe2\x82\xac");
	text_is("\xc2\x9b"
	        "2J",
	        4, "\\xc2\\x9b2J");
	text_is("\x9b"
	        "2J \x85",
	        5, "\\x9b2J \\x85");
	text_is("\xc2\xa0", 2, "\xc2\xa0"); /* U+00A0 is not a control */
	/* Other bytes that are not UTF-8 are no control in any 8-bit set either. */
	text_is("latin1-\xe9\xff", 9, "latin1-\xe9\xff");
	text_is("back\\slash", 10, "back\\slash");
}

int main(void)
{
	RUN(test_util__buf_put);
	RUN(test_util__buf_strings);
	RUN(test_util__rd_getters);
	RUN(test_util__rd_short);
	RUN(test_util__hex);
	RUN(test_util__utf8_valid);
	RUN(test_util__err);
	RUN(test_util__file_slurp);
	RUN(test_util__file_write_atomic);
	RUN(test_util__write_and_pread);
	RUN(test_util__mkdir_p);
	RUN(test_util__rm_rf);
	RUN(test_util__text_str);
	return 0;
}
