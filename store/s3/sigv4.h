/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* AWS Signature Version 4 (header-based authentication) for the S3 client. */
#ifndef CAIRN_SIGV4_H
#define CAIRN_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "cairn/util.h"

/* A header or query parameter. Query names and values are given decoded: the
 * signer URI-encodes them. Header names may be in any case. */
struct cairn_sigv4_kv {
	const char *name;
	const char *value;
};

struct cairn_sigv4_creds {
	const char *access_key;
	const char *secret_key;
	const char *session_token; /* NULL or "": none (the caller sends and signs
	                              x-amz-security-token itself) */
};

struct cairn_sigv4_req {
	const char *method;                 /* "GET", "PUT", ... */
	const char *path;                   /* canonical URI, already URI-encoded ("/" at least) */
	const struct cairn_sigv4_kv *query; /* any order; may repeat names */
	size_t nquery;
	const struct cairn_sigv4_kv
	        *headers; /* every header to sign, host and x-amz-date included */
	size_t nheaders;
	const char *payload_hash; /* lowercase hex SHA-256 of the body */
	const char *region;       /* "us-east-1" */
	const char *service;      /* "s3" */
	const char *amz_date;     /* "YYYYMMDDTHHMMSSZ", equal to x-amz-date */
};

/* Append the Authorization header value ("AWS4-HMAC-SHA256 Credential=...,
 * SignedHeaders=..., Signature=...") to auth_out. canonical_out and sts_out, when
 * not NULL, receive the canonical request and the string to sign (tests, debugging).
 * -EINVAL for a malformed date or too many headers, -ENOMEM. The secret never
 * leaves this function except as the derived signature. Thread-safe. */
int cairn_sigv4_sign(const struct cairn_sigv4_req *rq, const struct cairn_sigv4_creds *cr,
                     struct cairn_buf *auth_out, struct cairn_buf *canonical_out,
                     struct cairn_buf *sts_out);

/* Append the canonical query string of q (names and values URI-encoded, sorted by
 * name then value, joined with '&'): the same bytes are signed and sent. -ENOMEM. */
int cairn_sigv4_query(struct cairn_buf *out, const struct cairn_sigv4_kv *q, size_t n);

/* Append s URI-encoded the SigV4 way: unreserved A-Z a-z 0-9 - _ . ~ stay, every
 * other byte becomes %XX (uppercase); '/' stays unless encode_slash. -ENOMEM. */
int cairn_sigv4_uri_encode(struct cairn_buf *out, const char *s, size_t n, bool encode_slash);

/* "YYYYMMDDTHHMMSSZ" of t in UTC; out holds 17 bytes. */
void cairn_sigv4_amz_date(char out[17], time_t t);

/* SHA-256 of data as lowercase hex; out holds 65 bytes. */
void cairn_sigv4_sha256_hex(char out[65], const void *data, size_t len);

#define CAIRN_SIGV4_EMPTY_SHA256 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"

#endif
