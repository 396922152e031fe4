/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Growable buffers, bounds-checked readers and hex (FORMAT.md §1). */
#include "cairn/util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

void cairn_buf_init(struct cairn_buf *b)
{
	*b = (struct cairn_buf)CAIRN_BUF_INIT;
}

void cairn_buf_release(struct cairn_buf *b)
{
	free(b->data);
	cairn_buf_init(b);
}

int cairn_buf_reserve(struct cairn_buf *b, size_t n)
{
	size_t need, cap;

	if (__builtin_add_overflow(b->len, n, &need))
		return cairn_err_set(-ENOMEM, "buffer size overflow");
	if (need <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < need)
		if (__builtin_mul_overflow(cap, 2, &cap))
			return cairn_err_set(-ENOMEM, "buffer size overflow");
	uint8_t *p = realloc(b->data, cap);
	if (!p)
		return cairn_err_set(-ENOMEM, "out of memory");
	b->data = p;
	b->cap = cap;
	return 0;
}

int cairn_buf_put(struct cairn_buf *b, const void *p, size_t n)
{
	int r = cairn_buf_reserve(b, n);
	if (r < 0)
		return r;
	if (n)
		memcpy(b->data + b->len, p, n);
	b->len += n;
	return 0;
}

int cairn_buf_put_u8(struct cairn_buf *b, uint8_t v)
{
	return cairn_buf_put(b, &v, 1);
}

int cairn_buf_put_u16(struct cairn_buf *b, uint16_t v)
{
	uint8_t t[2];
	cairn_le16(t, v);
	return cairn_buf_put(b, t, sizeof(t));
}

int cairn_buf_put_u32(struct cairn_buf *b, uint32_t v)
{
	uint8_t t[4];
	cairn_le32(t, v);
	return cairn_buf_put(b, t, sizeof(t));
}

int cairn_buf_put_u64(struct cairn_buf *b, uint64_t v)
{
	uint8_t t[8];
	cairn_le64(t, v);
	return cairn_buf_put(b, t, sizeof(t));
}

int cairn_buf_put_str8(struct cairn_buf *b, const void *p, size_t n)
{
	if (n > UINT8_MAX)
		return cairn_err_set(-EINVAL, "string of %zu bytes is too long", n);
	int r = cairn_buf_put_u8(b, (uint8_t)n);
	return r < 0 ? r : cairn_buf_put(b, p, n);
}

int cairn_buf_put_str16(struct cairn_buf *b, const void *p, size_t n)
{
	if (n > UINT16_MAX)
		return cairn_err_set(-EINVAL, "string of %zu bytes is too long", n);
	int r = cairn_buf_put_u16(b, (uint16_t)n);
	return r < 0 ? r : cairn_buf_put(b, p, n);
}

int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, r;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		return cairn_err_set(-EINVAL, "bad format");
	r = cairn_buf_reserve(b, (size_t)n + 1);
	if (r < 0)
		return r;
	va_start(ap, fmt);
	vsnprintf((char *)b->data + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	b->len += (size_t)n;
	return 0;
}

int cairn_rd_take(struct cairn_rd *r, size_t n, const uint8_t **out)
{
	if (n > r->left)
		return -EBADMSG;
	*out = r->p;
	r->p += n;
	r->left -= n;
	return 0;
}

int cairn_rd_copy(struct cairn_rd *r, void *dst, size_t n)
{
	const uint8_t *p;
	int rc = cairn_rd_take(r, n, &p);
	if (rc < 0)
		return rc;
	if (n)
		memcpy(dst, p, n);
	return 0;
}

int cairn_rd_u8(struct cairn_rd *r, uint8_t *out)
{
	return cairn_rd_copy(r, out, 1);
}

int cairn_rd_u16(struct cairn_rd *r, uint16_t *out)
{
	const uint8_t *p;
	int rc = cairn_rd_take(r, 2, &p);
	if (rc < 0)
		return rc;
	*out = (uint16_t)(p[0] | p[1] << 8);
	return 0;
}

int cairn_rd_u32(struct cairn_rd *r, uint32_t *out)
{
	const uint8_t *p;
	int rc = cairn_rd_take(r, 4, &p);
	if (rc < 0)
		return rc;
	*out = cairn_get_le32(p);
	return 0;
}

int cairn_rd_u64(struct cairn_rd *r, uint64_t *out)
{
	const uint8_t *p;
	int rc = cairn_rd_take(r, 8, &p);
	if (rc < 0)
		return rc;
	*out = cairn_get_le64(p);
	return 0;
}

int cairn_rd_i64(struct cairn_rd *r, int64_t *out)
{
	uint64_t v;
	int rc = cairn_rd_u64(r, &v);
	if (rc < 0)
		return rc;
	*out = (int64_t)v;
	return 0;
}

int cairn_rd_str8(struct cairn_rd *r, const uint8_t **p, size_t *n)
{
	uint8_t len;
	int rc = cairn_rd_u8(r, &len);
	if (rc < 0 || (rc = cairn_rd_take(r, len, p)) < 0)
		return rc;
	*n = len;
	return 0;
}

int cairn_rd_str16(struct cairn_rd *r, const uint8_t **p, size_t *n)
{
	uint16_t len;
	int rc = cairn_rd_u16(r, &len);
	if (rc < 0 || (rc = cairn_rd_take(r, len, p)) < 0)
		return rc;
	*n = len;
	return 0;
}

void cairn_hex(char *out, const uint8_t *p, size_t n)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cairn_unhex(uint8_t *out, size_t n, const char *s)
{
	if (strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}
