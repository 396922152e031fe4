/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/config.c: the repository config (FORMAT.md §4). */
#include "config.h"

#include <inttypes.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cleanup.h"

static const uint8_t cfg_key[CAIRN_KEY_SIZE] = { 0x42, 1, 2, 3 };

static struct cairn_config sample(void)
{
	struct cairn_config c = {
		.version = 1,
		.id = { 0x5f, 0x0c, 0x9e, 0x1b, 0x2a, 0x7d, 0x4c, 0x3e, 0x8f, 0x9a, 0x0b, 0x1c,
		        0x2d, 0x3e, 0x4f, 0x50 },
		.chunk = { 524288, 1048576, 8388608 },
		.compression = 3,
		.pack_size = 16777216,
	};
	return c;
}

static const char sample_body[] = "cairn-repository 1\n"
                                  "id = 5f0c9e1b2a7d4c3e8f9a0b1c2d3e4f50\n"
                                  "chunk-min = 524288\n"
                                  "chunk-avg = 1048576\n"
                                  "chunk-max = 8388608\n"
                                  "compression = 3\n"
                                  "pack-size = 16777216\n";

/* Formats c and returns the text NUL-terminated in b. */
static void format(struct cairn_buf *b, const struct cairn_config *c)
{
	b->len = 0;
	CHECK_OK(cairn_config__format(b, c, cfg_key));
	CHECK_OK(cairn_buf_put_u8(b, 0));
	b->len--;
}

static void test_config__roundtrip(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;
	uint8_t mac[32];
	char hex[65];

	format(&b, &c);
	/* the text of FORMAT.md §4, byte for byte, then the mac over it */
	const size_t body = sizeof(sample_body) - 1;
	CHECK_EQ(b.len, body + strlen("mac = ") + 64 + 1);
	CHECK(memcmp(b.data, sample_body, body) == 0);
	cairn_crypt__hmac(cfg_key, sample_body, body, mac);
	cairn_hex(hex, mac, sizeof(mac));
	CHECK(memcmp(b.data + body, "mac = ", 6) == 0);
	CHECK(memcmp(b.data + body + 6, hex, 64) == 0);
	CHECK_EQ(b.data[b.len - 1], '\n');

	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
	CHECK_EQ(got.version, 1);
	CHECK(memcmp(got.id, c.id, sizeof(c.id)) == 0);
	CHECK_EQ(got.chunk.min, c.chunk.min);
	CHECK_EQ(got.chunk.avg, c.chunk.avg);
	CHECK_EQ(got.chunk.max, c.chunk.max);
	CHECK_EQ(got.compression, c.compression);
	CHECK_EQ(got.pack_size, c.pack_size);
	CHECK_EQ(got.mac_off, body);
	CHECK(memcmp(got.mac, mac, 32) == 0);
	CHECK_OK(cairn_config__verify(&got, (const char *)b.data, cfg_key));

	/* extremes of every range survive the round trip */
	c.chunk = (struct cairn_chunk_params){ 65536, 131072, 64u << 20 };
	c.compression = 0;
	c.pack_size = CAIRN_PACK_SIZE_MAX;
	format(&b, &c);
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
	CHECK(got.chunk.min == 65536 && got.chunk.avg == 131072 && got.chunk.max == 64u << 20);
	CHECK(got.compression == 0 && got.pack_size == CAIRN_PACK_SIZE_MAX);
	CHECK_OK(cairn_config__verify(&got, (const char *)b.data, cfg_key));
}

static void test_config__format_appends(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;

	CHECK_OK(cairn_buf_put(&b, "xx", 2));
	CHECK_OK(cairn_config__format(&b, &c, cfg_key));
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data + 2, b.len - 2));
	CHECK_OK(cairn_config__verify(&got, (const char *)b.data + 2, cfg_key));
	/* a bad config is refused and the buffer left alone */
	size_t len = b.len;
	c.compression = 20;
	CHECK_ERR(cairn_config__format(&b, &c, cfg_key), -EINVAL);
	CHECK_EQ(b.len, len);
}

static void test_config__probe(void)
{
	static const char v1[] = "cairn-repository 1\n";
	static const char v2[] = "cairn-repository 2\nanything = at all\n";
	static const char big[] = "cairn-repository 18446744073709551615\n";
	static const char *const bad[] = {
		"",
		"cairn-repository",
		"cairn-repository 1",
		"cairn-repository \n",
		"cairn-repository x\n",
		"cairn-repository 01\n",
		"cairn-repository +1\n",
		"cairn-repository -1\n",
		"cairn-repository 1 \n",
		"cairn-repository  1\n",
		"cairn-repository 1\r\n",
		"cairn-repository 18446744073709551616\n",
		"Cairn-repository 1\n",
		"\x89PNG\r\n\x1a\n",
		"[core]\n\tbare = true\n",
	};

	CHECK_OK(cairn_config__probe(v1, strlen(v1)));
	CHECK_ERR(cairn_config__probe(v2, strlen(v2)), -EPROTONOSUPPORT);
	CHECK(strcmp(cairn_err_msg(), "unsupported repository format version 2") == 0);
	CHECK_ERR(cairn_config__probe(big, strlen(big)), -EPROTONOSUPPORT);
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++)
		CHECK_ERR(cairn_config__probe(bad[i], strlen(bad[i])), -EBADMSG);
	/* the length is what counts: a NUL ends nothing */
	CHECK_ERR(cairn_config__probe("cairn-repository 1\0\n", 20), -EBADMSG);
	CHECK_ERR(cairn_config__probe(v1, strlen(v1) - 1), -EBADMSG);
}

static void test_config__parse_version2(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;

	format(&b, &c);
	b.data[17] = '2';
	CHECK_ERR(cairn_config__parse(&got, (const char *)b.data, b.len), -EPROTONOSUPPORT);
}

/* Every change to the text is caught: by parse, or else by verify. */
static void test_config__tampered(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;
	uint8_t other_key[CAIRN_KEY_SIZE] = { 0x43 };
	size_t parsed = 0;

	format(&b, &c);
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
	CHECK_ERR(cairn_config__verify(&got, (const char *)b.data, other_key), -EBADMSG);
	CHECK(strcmp(cairn_err_msg(), "config: authentication failed") == 0);

	char *compr = strstr((char *)b.data, "compression = 3");
	CHECK(compr);
	compr[14] = '4';
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
	CHECK_EQ(got.compression, 4);
	CHECK_ERR(cairn_config__verify(&got, (const char *)b.data, cfg_key), -EBADMSG);
	compr[14] = '3';

	for (size_t i = 0; i < b.len; i++) {
		for (int bit = 0; bit < 8; bit++) {
			b.data[i] ^= (uint8_t)(1 << bit);
			int r = cairn_config__parse(&got, (const char *)b.data, b.len);
			if (r >= 0) {
				parsed++;
				CHECK_ERR(cairn_config__verify(&got, (const char *)b.data, cfg_key),
				          -EBADMSG);
			} else if (r != -EPROTONOSUPPORT) {
				CHECK_ERR(r, -EBADMSG);
			}
			b.data[i] ^= (uint8_t)(1 << bit);
		}
	}
	CHECK(parsed > 0); /* some flips do parse (hex digits), and verify caught those */
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
	CHECK_OK(cairn_config__verify(&got, (const char *)b.data, cfg_key));
}

static void test_config__truncated(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;

	format(&b, &c);
	for (size_t n = 0; n < b.len; n++)
		CHECK_ERR(cairn_config__parse(&got, (const char *)b.data, n), -EBADMSG);
	CHECK_OK(cairn_config__parse(&got, (const char *)b.data, b.len));
}

/* Replaces the first occurrence of from in the formatted sample by to and
 * expects parse to fail with code. */
static void check_edit(const char *from, const char *to, int code)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT, e = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;

	format(&b, &c);
	const char *at = strstr((const char *)b.data, from);
	CHECK(at);
	size_t pre = (size_t)(at - (const char *)b.data);
	CHECK_OK(cairn_buf_put(&e, b.data, pre));
	CHECK_OK(cairn_buf_put(&e, to, strlen(to)));
	CHECK_OK(cairn_buf_put(&e, at + strlen(from), b.len - pre - strlen(from)));
	CHECK_ERR(cairn_config__parse(&got, (const char *)e.data, e.len), code);
}

static void test_config__strict_syntax(void)
{
	check_edit("chunk-min = 524288\n", "chunk-min = 0524288\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = +524288\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min =  524288\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = 524288 \n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min=524288\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = 524288\r\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = 524288x\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = \n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = 4295491584\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = 99999999999999999999999\n", -EBADMSG);
	check_edit("chunk-min = 524288\n", "chunk-min = -524288\n", -EBADMSG);
	check_edit("compression = 3\n", "compression = 2147483648\n", -EBADMSG);
	check_edit("id = 5f0c", "id = 5F0C", -EBADMSG);
	check_edit("id = 5f0c", "id = 5f0", -EBADMSG);
	check_edit("id = 5f0c", "id = 5f0cc", -EBADMSG);
	check_edit("id = 5f0c", "id = 5g0c", -EBADMSG);
	/* order, duplicates, unknown and missing keys */
	check_edit("chunk-min = 524288\nchunk-avg = 1048576\n",
	           "chunk-avg = 1048576\nchunk-min = 524288\n", -EBADMSG);
	check_edit("compression = 3\n", "compression = 3\ncompression = 3\n", -EBADMSG);
	check_edit("compression = 3\n", "compression = 3\nencryption = 1\n", -EBADMSG);
	check_edit("compression = 3\n", "", -EBADMSG);
	check_edit("compression = 3\n", "# comment\ncompression = 3\n", -EBADMSG);
	check_edit("compression = 3\n", "\ncompression = 3\n", -EBADMSG);
	check_edit("mac = ", "mac =  ", -EBADMSG);
	/* nothing after the mac line, and a size limit */
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct cairn_config c = sample(), got;
	format(&b, &c);
	CHECK_OK(cairn_buf_put(&b, "\n", 1));
	CHECK_ERR(cairn_config__parse(&got, (const char *)b.data, b.len), -EBADMSG);
	b.len--;
	b.data[b.len - 1] = ' '; /* mac line without its LF */
	CHECK_ERR(cairn_config__parse(&got, (const char *)b.data, b.len), -EBADMSG);
	_cleanup_free_ char *huge = malloc(CAIRN_CONFIG_MAX + 1);
	CHECK(huge);
	memset(huge, '\n', CAIRN_CONFIG_MAX + 1);
	memcpy(huge, "cairn-repository 1\n", 19);
	CHECK_ERR(cairn_config__parse(&got, huge, CAIRN_CONFIG_MAX + 1), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "more than 4096"));
}

/* check() refuses each out-of-range value with -EINVAL, and parse refuses the
 * same value in a file with -EBADMSG. */
static void check_range(const struct cairn_config *c)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char hex[33];
	struct cairn_config got;

	CHECK_ERR(cairn_config__check(c), -EINVAL);
	cairn_hex(hex, c->id, sizeof(c->id));
	CHECK_OK(cairn_buf_printf(
	        &b,
	        "cairn-repository 1\nid = %s\nchunk-min = %" PRIu32 "\nchunk-avg = %" PRIu32
	        "\nchunk-max = %" PRIu32 "\ncompression = %d\npack-size = %" PRIu32 "\nmac = ",
	        hex, c->chunk.min, c->chunk.avg, c->chunk.max, c->compression, c->pack_size));
	for (int i = 0; i < 64; i++)
		CHECK_OK(cairn_buf_put_u8(&b, '0'));
	CHECK_OK(cairn_buf_put_u8(&b, '\n'));
	CHECK_ERR(cairn_config__parse(&got, (const char *)b.data, b.len), -EBADMSG);
}

static void test_config__ranges(void)
{
	struct cairn_config c = sample();

	CHECK_OK(cairn_config__check(&c));
	c.chunk.avg = 1048577;
	check_range(&c);
	c = sample();
	c.chunk.avg = 0;
	check_range(&c);
	c = sample();
	c.chunk.min = 65535;
	check_range(&c);
	c = sample();
	c.chunk.min = c.chunk.avg;
	check_range(&c);
	c = sample();
	c.chunk.max = c.chunk.avg;
	check_range(&c);
	c = sample();
	c.chunk.max = (64u << 20) + 1;
	check_range(&c);
	c = sample();
	c.chunk = (struct cairn_chunk_params){ 65536, 65536, 131072 };
	check_range(&c);
	c = sample();
	c.compression = 20;
	check_range(&c);
	c = sample();
	c.pack_size = CAIRN_PACK_SIZE_MIN - 1;
	check_range(&c);
	c = sample();
	c.pack_size = CAIRN_PACK_SIZE_MAX + 1;
	check_range(&c);
	c = sample();
	c.compression = -1;
	CHECK_ERR(cairn_config__check(&c), -EINVAL);
	/* the boundaries themselves are fine */
	c = sample();
	c.chunk = (struct cairn_chunk_params){ 65536, 1u << 25, 64u << 20 };
	c.compression = 19;
	c.pack_size = CAIRN_PACK_SIZE_MIN;
	CHECK_OK(cairn_config__check(&c));
}

int main(void)
{
	RUN(test_config__roundtrip);
	RUN(test_config__format_appends);
	RUN(test_config__probe);
	RUN(test_config__parse_version2);
	RUN(test_config__tampered);
	RUN(test_config__truncated);
	RUN(test_config__strict_syntax);
	RUN(test_config__ranges);
	return 0;
}
