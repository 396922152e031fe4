/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository config: strict key = value text with an HMAC (FORMAT.md §4). */
#include "config.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/*
 * FORMAT.md §4: LF-terminated lines, in exactly this order, nothing else.
 *   cairn-repository 1
 *   id = <32 hex>
 *   chunk-min = <n>
 *   chunk-avg = <n>
 *   chunk-max = <n>
 *   compression = <n>
 *   pack-size = <n>
 *   mac = <64 hex>       HMAC-SHA-256(K_cfg, every byte before this line)
 */
#define HEAD "cairn-repository "
#define CHUNK_LIMIT_MIN (64u * 1024)
#define CHUNK_LIMIT_MAX (64u * 1024 * 1024)
#define COMPRESSION_MAX 19
#define NUM_DIGITS_MAX 20 /* UINT64_MAX */

/* A line cursor over the text; line numbers are 1-based for messages. */
struct cfg_rd {
	const char *p;
	size_t left;
	unsigned line;
};

/* A canonical decimal number: digits only, no sign, space or leading zero, at
 * most max. strtoull alone would accept " +1" and wrap "-1". */
static int parse_num(const char *v, size_t n, uint64_t max, uint64_t *out)
{
	char buf[NUM_DIGITS_MAX + 1], *end;

	if (n == 0 || n > NUM_DIGITS_MAX || (n > 1 && v[0] == '0'))
		return -EBADMSG;
	for (size_t i = 0; i < n; i++)
		if (v[i] < '0' || v[i] > '9')
			return -EBADMSG;
	memcpy(buf, v, n);
	buf[n] = '\0';
	errno = 0;
	unsigned long long x = strtoull(buf, &end, 10);
	if (errno != 0 || *end != '\0' || x > max)
		return -EBADMSG;
	*out = x;
	return 0;
}

/* Exactly 2n lowercase hex digits (FORMAT.md §1). */
static int parse_hex(const char *v, size_t len, uint8_t *out, size_t n)
{
	char buf[65];

	if (len != 2 * n || len >= sizeof(buf))
		return -EBADMSG;
	for (size_t i = 0; i < len; i++)
		if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'a' && v[i] <= 'f')))
			return -EBADMSG;
	memcpy(buf, v, len);
	buf[len] = '\0';
	return cairn_unhex(out, n, buf) < 0 ? -EBADMSG : 0;
}

int cairn_config__probe(const char *text, size_t len)
{
	const size_t hl = sizeof(HEAD) - 1;
	uint64_t version;

	if (len < hl || memcmp(text, HEAD, hl) != 0)
		return cairn_err_set(-EBADMSG, "not a cairn repository config");
	/* Look no further than the longest version number. */
	size_t left = len - hl, scan = left < NUM_DIGITS_MAX + 1 ? left : NUM_DIGITS_MAX + 1;
	const char *nl = memchr(text + hl, '\n', scan);
	if (!nl || parse_num(text + hl, (size_t)(nl - (text + hl)), UINT64_MAX, &version) < 0)
		return cairn_err_set(-EBADMSG, "config: bad format version line");
	if (version != CAIRN_FORMAT_VERSION)
		return cairn_err_set(-EPROTONOSUPPORT,
		                     "unsupported repository format version %" PRIu64, version);
	return 0;
}

/* Takes the next line, which must be "<key> = <value>\n"; the value is borrowed. */
static int take_line(struct cfg_rd *rd, const char *key, const char **val, size_t *vlen)
{
	const size_t klen = strlen(key);
	const char *nl = memchr(rd->p, '\n', rd->left);

	if (!nl)
		return cairn_err_set(-EBADMSG, "config line %u: missing or not LF-terminated",
		                     rd->line);
	size_t n = (size_t)(nl - rd->p);
	if (n < klen + 3 || memcmp(rd->p, key, klen) != 0 || memcmp(rd->p + klen, " = ", 3) != 0)
		return cairn_err_set(-EBADMSG, "config line %u: expected '%s = ...'", rd->line,
		                     key);
	*val = rd->p + klen + 3;
	*vlen = n - klen - 3;
	rd->p += n + 1;
	rd->left -= n + 1;
	rd->line++;
	return 0;
}

static int take_num(struct cfg_rd *rd, const char *key, uint64_t max, uint64_t *out)
{
	const char *v = NULL; /* set on success; gcc -O3 cannot see it */
	size_t n = 0;
	int r = take_line(rd, key, &v, &n);

	if (r < 0)
		return r;
	if (parse_num(v, n, max, out) < 0)
		return cairn_err_set(-EBADMSG, "config line %u: bad value for '%s'", rd->line - 1,
		                     key);
	return 0;
}

static int take_hex(struct cfg_rd *rd, const char *key, uint8_t *out, size_t n)
{
	const char *v = NULL;
	size_t vlen = 0;
	int r = take_line(rd, key, &v, &vlen);

	if (r < 0)
		return r;
	if (parse_hex(v, vlen, out, n) < 0)
		return cairn_err_set(-EBADMSG, "config line %u: '%s' is not %zu hex digits",
		                     rd->line - 1, key, 2 * n);
	return 0;
}

static int parse_body(struct cairn_config *c, struct cfg_rd *rd, const char *text)
{
	uint64_t min, avg, max, level, pack;
	int r;

	if ((r = take_hex(rd, "id", c->id, sizeof(c->id))) < 0 ||
	    (r = take_num(rd, "chunk-min", UINT32_MAX, &min)) < 0 ||
	    (r = take_num(rd, "chunk-avg", UINT32_MAX, &avg)) < 0 ||
	    (r = take_num(rd, "chunk-max", UINT32_MAX, &max)) < 0 ||
	    (r = take_num(rd, "compression", INT_MAX, &level)) < 0 ||
	    (r = take_num(rd, "pack-size", UINT32_MAX, &pack)) < 0)
		return r;
	c->chunk = (struct cairn_chunk_params){ (uint32_t)min, (uint32_t)avg, (uint32_t)max };
	c->compression = (int)level;
	c->pack_size = (uint32_t)pack;
	c->mac_off = (size_t)(rd->p - text);
	if ((r = take_hex(rd, "mac", c->mac, sizeof(c->mac))) < 0)
		return r;
	if (rd->left != 0)
		return cairn_err_set(-EBADMSG, "config line %u: unexpected data after 'mac'",
		                     rd->line);
	return 0;
}

int cairn_config__parse(struct cairn_config *out, const char *text, size_t len)
{
	struct cairn_config c = { .version = CAIRN_FORMAT_VERSION };
	int r;

	if (len > CAIRN_CONFIG_MAX)
		return cairn_err_set(-EBADMSG, "config: %zu bytes, more than %d", len,
		                     CAIRN_CONFIG_MAX);
	if ((r = cairn_config__probe(text, len)) < 0)
		return r;
	/* probe found the first line's LF */
	const char *nl = memchr(text, '\n', len);
	size_t first = (size_t)(nl - text) + 1;
	struct cfg_rd rd = { text + first, len - first, 2 };
	if ((r = parse_body(&c, &rd, text)) < 0)
		return r;
	if (cairn_config__check(&c) < 0)
		return cairn_err_wrap(-EBADMSG, "config");
	*out = c;
	return 0;
}

int cairn_config__check(const struct cairn_config *c)
{
	const struct cairn_chunk_params *k = &c->chunk;

	if (k->avg == 0 || (k->avg & (k->avg - 1)) != 0)
		return cairn_err_set(-EINVAL, "chunk-avg %" PRIu32 " is not a power of two",
		                     k->avg);
	if (k->min < CHUNK_LIMIT_MIN || k->min >= k->avg || k->avg >= k->max ||
	    k->max > CHUNK_LIMIT_MAX)
		return cairn_err_set(-EINVAL,
		                     "chunk sizes %" PRIu32 "/%" PRIu32 "/%" PRIu32
		                     " do not satisfy 64 KiB <= min < avg < max <= 64 MiB",
		                     k->min, k->avg, k->max);
	if (c->compression < 0 || c->compression > COMPRESSION_MAX)
		return cairn_err_set(-EINVAL, "compression level %d is out of range 0..%d",
		                     c->compression, COMPRESSION_MAX);
	if (c->pack_size < CAIRN_PACK_SIZE_MIN || c->pack_size > CAIRN_PACK_SIZE_MAX)
		return cairn_err_set(-EINVAL, "pack size %" PRIu32 " is out of range 1 MiB..1 GiB",
		                     c->pack_size);
	return 0;
}

static int format_body(struct cairn_buf *out, const struct cairn_config *c)
{
	char id[2 * CAIRN_REPO_ID_SIZE + 1];

	cairn_hex(id, c->id, sizeof(c->id));
	return cairn_buf_printf(out,
	                        HEAD "%d\n"
	                             "id = %s\n"
	                             "chunk-min = %" PRIu32 "\n"
	                             "chunk-avg = %" PRIu32 "\n"
	                             "chunk-max = %" PRIu32 "\n"
	                             "compression = %d\n"
	                             "pack-size = %" PRIu32 "\n",
	                        CAIRN_FORMAT_VERSION, id, c->chunk.min, c->chunk.avg, c->chunk.max,
	                        c->compression, c->pack_size);
}

int cairn_config__format(struct cairn_buf *out, const struct cairn_config *c,
                         const uint8_t cfg_key[CAIRN_KEY_SIZE])
{
	const size_t start = out->len;
	uint8_t mac[32];
	char hex[2 * sizeof(mac) + 1];
	int r = cairn_config__check(c);

	if (r < 0 || (r = format_body(out, c)) < 0)
		return r;
	r = cairn_crypt__hmac(cfg_key, out->data + start, out->len - start, mac);
	cairn_hex(hex, mac, sizeof(mac));
	if (r >= 0)
		r = cairn_buf_printf(out, "mac = %s\n", hex);
	if (r < 0)
		out->len = start; /* no config without its mac */
	return r;
}

int cairn_config__verify(const struct cairn_config *c, const char *text,
                         const uint8_t cfg_key[CAIRN_KEY_SIZE])
{
	uint8_t mac[32];
	int r = cairn_crypt__hmac(cfg_key, text, c->mac_off, mac);

	if (r < 0)
		return r;
	if (!cairn_crypt__equal(mac, c->mac, sizeof(mac)))
		return cairn_err_set(-EBADMSG, "config: authentication failed");
	return 0;
}
