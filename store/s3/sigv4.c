/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AWS Signature Version 4: canonical request, string to sign, signing key. */
#include "sigv4.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "cleanup.h"

/* More signed headers than any S3 request of ours needs; bounds the sort arrays. */
#define MAX_HEADERS 32
#define MAX_QUERY 32

/* A header name in lowercase and its value with whitespace trimmed and runs of
 * spaces collapsed ("Trimall" of the SigV4 spec), owned by the canonical buffer. */
struct canon_hdr {
	char name[64];
	const char *value;
};

void cairn_sigv4_sha256_hex(char out[65], const void *data, size_t len)
{
	uint8_t md[32];
	EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL);
	cairn_hex(out, md, sizeof(md));
}

void cairn_sigv4_amz_date(char out[17], time_t t)
{
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(out, 17, "%Y%m%dT%H%M%SZ", &tm);
}

static bool unreserved(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '_' || c == '.' || c == '~';
}

int cairn_sigv4_uri_encode(struct cairn_buf *out, const char *s, size_t n, bool encode_slash)
{
	static const char hex[] = "0123456789ABCDEF";
	int r = cairn_buf_reserve(out, 3 * n + 1);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		if (unreserved(c) || (c == '/' && !encode_slash)) {
			out->data[out->len++] = c;
		} else {
			out->data[out->len++] = '%';
			out->data[out->len++] = (uint8_t)hex[c >> 4];
			out->data[out->len++] = (uint8_t)hex[c & 15];
		}
	}
	return 0;
}

/* An encoded query pair: offsets into one buffer, compared as encoded bytes. */
struct qpair {
	const struct cairn_buf *b;
	size_t name, name_len, value, value_len;
};

static int cmp_bytes(const uint8_t *a, size_t an, const uint8_t *b, size_t bn)
{
	int c = memcmp(a, b, an < bn ? an : bn);
	return c ? c : (an > bn) - (an < bn);
}

static int cmp_qpair(const void *x, const void *y)
{
	const struct qpair *a = x, *b = y;
	int c = cmp_bytes(a->b->data + a->name, a->name_len, b->b->data + b->name, b->name_len);
	return c ? c
	         : cmp_bytes(a->b->data + a->value, a->value_len, b->b->data + b->value,
	                     b->value_len);
}

int cairn_sigv4_query(struct cairn_buf *out, const struct cairn_sigv4_kv *q, size_t n)
{
	_cleanup_buf_ struct cairn_buf enc = CAIRN_BUF_INIT;
	struct qpair p[MAX_QUERY];
	int r = 0;

	if (n > MAX_QUERY)
		return cairn_err_set(-EINVAL, "too many query parameters (%zu)", n);
	for (size_t i = 0; i < n && r >= 0; i++) {
		const char *v = q[i].value ? q[i].value : "";
		p[i] = (struct qpair){ .b = &enc, .name = enc.len };
		r = cairn_sigv4_uri_encode(&enc, q[i].name, strlen(q[i].name), true);
		p[i].name_len = enc.len - p[i].name;
		p[i].value = enc.len;
		if (r >= 0)
			r = cairn_sigv4_uri_encode(&enc, v, strlen(v), true);
		p[i].value_len = enc.len - p[i].value;
	}
	if (r < 0)
		return cairn_err_set(r, "out of memory");
	qsort(p, n, sizeof(p[0]), cmp_qpair);
	for (size_t i = 0; i < n && r >= 0; i++) {
		if (i > 0)
			r = cairn_buf_put_u8(out, '&');
		if (r >= 0)
			r = cairn_buf_put(out, enc.data + p[i].name, p[i].name_len);
		if (r >= 0)
			r = cairn_buf_put_u8(out, '=');
		if (r >= 0)
			r = cairn_buf_put(out, enc.data + p[i].value, p[i].value_len);
	}
	return r < 0 ? cairn_err_set(r, "out of memory") : 0;
}

static int cmp_hdr(const void *x, const void *y)
{
	return strcmp(((const struct canon_hdr *)x)->name, ((const struct canon_hdr *)y)->name);
}

/* Append v trimmed, with each run of spaces or tabs collapsed to one space. */
static int put_trimall(struct cairn_buf *out, const char *v)
{
	bool space = false, any = false;
	int r = 0;
	for (; *v && r >= 0; v++) {
		if (*v == ' ' || *v == '\t') {
			space = any;
			continue;
		}
		if (space)
			r = cairn_buf_put_u8(out, ' ');
		if (r >= 0)
			r = cairn_buf_put_u8(out, (uint8_t)*v);
		space = false;
		any = true;
	}
	return r;
}

static int sort_headers(const struct cairn_sigv4_req *rq, struct canon_hdr *h)
{
	if (rq->nheaders > MAX_HEADERS)
		return cairn_err_set(-EINVAL, "too many signed headers (%zu)", rq->nheaders);
	for (size_t i = 0; i < rq->nheaders; i++) {
		size_t len = strlen(rq->headers[i].name);
		if (len == 0 || len >= sizeof(h[i].name))
			return cairn_err_set(-EINVAL, "bad header name '%s'", rq->headers[i].name);
		for (size_t k = 0; k <= len; k++) {
			char c = rq->headers[i].name[k];
			h[i].name[k] = (c >= 'A' && c <= 'Z') ? (char)(c - 'A' + 'a') : c;
		}
		h[i].value = rq->headers[i].value ? rq->headers[i].value : "";
	}
	qsort(h, rq->nheaders, sizeof(h[0]), cmp_hdr);
	return 0;
}

/* The canonical headers block ("name:value\n" each, equal names joined by ',') and
 * the signed header list ("a;b;c"). */
static int canonical_headers(const struct cairn_sigv4_req *rq, struct cairn_buf *block,
                             struct cairn_buf *names)
{
	struct canon_hdr h[MAX_HEADERS];
	int r = sort_headers(rq, h);

	for (size_t i = 0; i < rq->nheaders && r >= 0; i++) {
		bool same = i > 0 && strcmp(h[i].name, h[i - 1].name) == 0;
		if (same) {
			block->len--; /* replace the previous '\n' by ',' */
			r = cairn_buf_put_u8(block, ',');
		} else {
			r = cairn_buf_printf(block, "%s:", h[i].name);
			if (r >= 0 && names->len > 0)
				r = cairn_buf_put_u8(names, ';');
			if (r >= 0)
				r = cairn_buf_put(names, h[i].name, strlen(h[i].name));
		}
		if (r >= 0)
			r = put_trimall(block, h[i].value);
		if (r >= 0)
			r = cairn_buf_put_u8(block, '\n');
	}
	return r;
}

static int canonical_request(const struct cairn_sigv4_req *rq, struct cairn_buf *out,
                             struct cairn_buf *signed_names)
{
	_cleanup_buf_ struct cairn_buf block = CAIRN_BUF_INIT;
	int r = cairn_buf_printf(out, "%s\n%s\n", rq->method, rq->path);
	if (r >= 0)
		r = cairn_sigv4_query(out, rq->query, rq->nquery);
	if (r >= 0)
		r = cairn_buf_put_u8(out, '\n');
	if (r >= 0)
		r = canonical_headers(rq, &block, signed_names);
	if (r >= 0)
		r = cairn_buf_put(out, block.data, block.len);
	if (r >= 0)
		r = cairn_buf_put_u8(signed_names, '\0');
	if (r >= 0)
		r = cairn_buf_printf(out, "\n%s\n%s", (const char *)signed_names->data,
		                     rq->payload_hash);
	return r;
}

static void hmac(uint8_t out[32], const void *key, size_t klen, const char *msg, size_t mlen)
{
	unsigned int n = 32;
	HMAC(EVP_sha256(), key, (int)klen, (const unsigned char *)msg, mlen, out, &n);
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" + secret, date), region), service), "aws4_request") */
static int signing_key(uint8_t out[32], const struct cairn_sigv4_creds *cr, const char *date8,
                       const char *region, const char *service)
{
	char k[256];
	uint8_t a[32], b[32];
	int n = snprintf(k, sizeof(k), "AWS4%s", cr->secret_key);
	if (n < 0 || (size_t)n >= sizeof(k))
		return cairn_err_set(-EINVAL, "secret key too long");
	hmac(a, k, (size_t)n, date8, 8);
	hmac(b, a, 32, region, strlen(region));
	hmac(a, b, 32, service, strlen(service));
	hmac(out, a, 32, "aws4_request", 12);
	OPENSSL_cleanse(k, sizeof(k));
	OPENSSL_cleanse(a, sizeof(a));
	OPENSSL_cleanse(b, sizeof(b));
	return 0;
}

static bool valid_amz_date(const char *d)
{
	if (strlen(d) != 16 || d[8] != 'T' || d[15] != 'Z')
		return false;
	for (int i = 0; i < 15; i++)
		if (i != 8 && (d[i] < '0' || d[i] > '9'))
			return false;
	return true;
}

int cairn_sigv4_sign(const struct cairn_sigv4_req *rq, const struct cairn_sigv4_creds *cr,
                     struct cairn_buf *auth_out, struct cairn_buf *canonical_out,
                     struct cairn_buf *sts_out)
{
	_cleanup_buf_ struct cairn_buf creq = CAIRN_BUF_INIT, names = CAIRN_BUF_INIT,
	                               sts = CAIRN_BUF_INIT;
	char date8[9], creq_hash[65], sig[65];
	uint8_t key[32], mac[32];

	if (!valid_amz_date(rq->amz_date))
		return cairn_err_set(-EINVAL, "bad x-amz-date '%s'", rq->amz_date);
	memcpy(date8, rq->amz_date, 8);
	date8[8] = '\0';
	int r = canonical_request(rq, &creq, &names);
	if (r < 0)
		return r == -ENOMEM ? cairn_err_set(r, "out of memory") : r;
	cairn_sigv4_sha256_hex(creq_hash, creq.data, creq.len);
	r = cairn_buf_printf(&sts, "AWS4-HMAC-SHA256\n%s\n%s/%s/%s/aws4_request\n%s", rq->amz_date,
	                     date8, rq->region, rq->service, creq_hash);
	if (r >= 0)
		r = signing_key(key, cr, date8, rq->region, rq->service);
	if (r < 0)
		return r;
	hmac(mac, key, sizeof(key), (const char *)sts.data, sts.len);
	OPENSSL_cleanse(key, sizeof(key));
	cairn_hex(sig, mac, sizeof(mac));
	r = cairn_buf_printf(auth_out,
	                     "AWS4-HMAC-SHA256 Credential=%s/%s/%s/%s/aws4_request, "
	                     "SignedHeaders=%s, Signature=%s",
	                     cr->access_key, date8, rq->region, rq->service,
	                     (const char *)names.data, sig);
	if (r >= 0 && canonical_out)
		r = cairn_buf_put(canonical_out, creq.data, creq.len);
	if (r >= 0 && sts_out)
		r = cairn_buf_put(sts_out, sts.data, sts.len);
	return r < 0 ? cairn_err_set(r, "out of memory") : 0;
}
