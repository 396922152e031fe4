/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key files: the master key, or a write-only key's secret, wrapped under a
 * password (FORMAT.md §3.2, §3.3). */
#include "keyfile.h"

#include <errno.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>

#include "cleanup.h"

/*
 * FORMAT.md §3.2, all integers little-endian:
 *    0   8  magic "CAIRNKEY"
 *    8   1  version = 1
 *    9   1  kdf = 1 (scrypt)
 *   10   1  scrypt log2(N), 10..24
 *   11   1  kind: 0 full, 1 write-only
 *   12   4  scrypt r, 1..32
 *   16   4  scrypt p, 1..16
 *   20  32  salt
 *   52   8  created, i64 Unix seconds
 *   60 var  str8 label
 *       12  GCM nonce                   (AAD = every byte before it)
 *   48/176  MK (kind 0) or K_id || K_gear || K_idx || SHA-256(config) ||
 *           P_adm (kind 1) under AES-256-GCM + tag  (and the file ends here)
 */
#define KEYFILE_MAGIC "CAIRNKEY"
#define KEYFILE_MAGIC_SIZE 8
#define KEYFILE_VERSION 1
#define KEYFILE_KDF_SCRYPT 1
#define KEYFILE_NONCE_SIZE 12

static size_t secret_size(uint8_t kind)
{
	return kind == CAIRN_KEY_WRITE_ONLY ? CAIRN_WO_SECRET_SIZE : CAIRN_KEY_SIZE;
}

const char *cairn_key_kind_name(int kind)
{
	switch (kind) {
	case CAIRN_KEY_FULL:
		return "full";
	case CAIRN_KEY_WRITE_ONLY:
		return "write-only";
	default:
		return "unknown";
	}
}

static int truncated(const struct cairn_rd *rd, size_t len)
{
	return cairn_err_set(-EBADMSG, "key file: truncated at offset %zu of %zu", len - rd->left,
	                     len);
}

/* Magic, version and kdf: what says this is a key file we can read at all. */
static int parse_head(struct cairn_rd *rd, size_t len)
{
	const uint8_t *magic;
	uint8_t version, kdf;

	if (cairn_rd_take(rd, KEYFILE_MAGIC_SIZE, &magic) < 0 ||
	    memcmp(magic, KEYFILE_MAGIC, KEYFILE_MAGIC_SIZE) != 0)
		return cairn_err_set(-EBADMSG, "key file: bad magic");
	if (cairn_rd_u8(rd, &version) < 0 || cairn_rd_u8(rd, &kdf) < 0)
		return truncated(rd, len);
	if (version != KEYFILE_VERSION)
		return cairn_err_set(-EBADMSG, "key file: unsupported version %u", version);
	if (kdf != KEYFILE_KDF_SCRYPT)
		return cairn_err_set(-EBADMSG, "key file: unknown kdf %u", kdf);
	return 0;
}

static int parse_kdf(struct cairn_keyfile *kf, struct cairn_rd *rd, size_t len)
{
	if (cairn_rd_u8(rd, &kf->log2n) < 0 || cairn_rd_u8(rd, &kf->kind) < 0 ||
	    cairn_rd_u32(rd, &kf->r) < 0 || cairn_rd_u32(rd, &kf->p) < 0 ||
	    cairn_rd_copy(rd, kf->salt, sizeof(kf->salt)) < 0)
		return truncated(rd, len);
	if (kf->log2n < 10 || kf->log2n > 24)
		return cairn_err_set(-EBADMSG, "key file: scrypt log2(N) %u is out of range 10..24",
		                     kf->log2n);
	if (kf->kind != CAIRN_KEY_FULL && kf->kind != CAIRN_KEY_WRITE_ONLY)
		return cairn_err_set(-EBADMSG, "key file: unknown kind %u", kf->kind);
	if (kf->r < 1 || kf->r > 32)
		return cairn_err_set(-EBADMSG, "key file: scrypt r %u is out of range 1..32",
		                     kf->r);
	if (kf->p < 1 || kf->p > 16)
		return cairn_err_set(-EBADMSG, "key file: scrypt p %u is out of range 1..16",
		                     kf->p);
	return 0;
}

static int parse_tail(struct cairn_keyfile *kf, struct cairn_rd *rd, size_t len)
{
	const uint8_t *label;
	size_t n;

	if (cairn_rd_i64(rd, &kf->created) < 0 || cairn_rd_str8(rd, &label, &n) < 0)
		return truncated(rd, len);
	/* A str8 holds at most 255 bytes, so the copy always fits with its NUL. */
	const uint8_t *nul = memchr(label, '\0', n);
	if (nul)
		n = (size_t)(nul - label);
	memcpy(kf->label, label, n);
	kf->label[n] = '\0';
	kf->aad_len = len - rd->left;
	kf->wrapped_len = secret_size(kf->kind) + CAIRN_TAG_SIZE;
	if (cairn_rd_copy(rd, kf->nonce, sizeof(kf->nonce)) < 0 ||
	    cairn_rd_copy(rd, kf->wrapped, kf->wrapped_len) < 0)
		return truncated(rd, len);
	if (rd->left != 0)
		return cairn_err_set(-EBADMSG, "key file: %zu bytes past the end", rd->left);
	return 0;
}

int cairn_keyfile__parse(struct cairn_keyfile *out, const uint8_t *data, size_t len)
{
	struct cairn_rd rd = { data, len };
	struct cairn_keyfile kf = { 0 };
	int r;

	if (len > CAIRN_KEYFILE_MAX)
		return cairn_err_set(-EBADMSG, "key file: %zu bytes, more than %d", len,
		                     CAIRN_KEYFILE_MAX);
	if ((r = parse_head(&rd, len)) < 0 || (r = parse_kdf(&kf, &rd, len)) < 0 ||
	    (r = parse_tail(&kf, &rd, len)) < 0)
		return r;
	*out = kf;
	return 0;
}

bool cairn_keyfile__too_costly(const struct cairn_keyfile *kf)
{
	/* parse_kdf bounds each factor, so the product fits in 64 bits. */
	return kf->log2n > CAIRN_KDF_LOG2N_MAX ||
	       128ull * kf->r * kf->p * (1ull << kf->log2n) > CAIRN_KDF_COST_MAX;
}

static int put_header(struct cairn_buf *out, uint8_t kind, int log2n, const uint8_t salt[32],
                      const char *label, size_t lablen)
{
	int r;

	if ((r = cairn_buf_put(out, KEYFILE_MAGIC, KEYFILE_MAGIC_SIZE)) < 0 ||
	    (r = cairn_buf_put_u8(out, KEYFILE_VERSION)) < 0 ||
	    (r = cairn_buf_put_u8(out, KEYFILE_KDF_SCRYPT)) < 0 ||
	    (r = cairn_buf_put_u8(out, (uint8_t)log2n)) < 0 ||
	    (r = cairn_buf_put_u8(out, kind)) < 0 ||
	    (r = cairn_buf_put_u32(out, CAIRN_KDF_R_DEFAULT)) < 0 ||
	    (r = cairn_buf_put_u32(out, CAIRN_KDF_P_DEFAULT)) < 0 ||
	    (r = cairn_buf_put(out, salt, 32)) < 0 ||
	    (r = cairn_buf_put_u64(out, (uint64_t)(int64_t)time(NULL))) < 0)
		return r;
	return cairn_buf_put_str8(out, label, lablen);
}

/* The secret's bytes in file order (FORMAT.md §3.2); returns their number. */
static size_t secret_bytes(uint8_t out[CAIRN_WO_SECRET_SIZE], const struct cairn_key_secret *s)
{
	if (s->kind != CAIRN_KEY_WRITE_ONLY) {
		memcpy(out, s->master, CAIRN_KEY_SIZE);
		return CAIRN_KEY_SIZE;
	}
	memcpy(out, s->wo.id, 32);
	memcpy(out + 32, s->wo.gear, 32);
	memcpy(out + 64, s->wo.idx, 32);
	memcpy(out + 96, s->wo.config_sha256, 32);
	memcpy(out + 128, s->wo.admin_pub, 32);
	return CAIRN_WO_SECRET_SIZE;
}

static void secret_from(struct cairn_key_secret *s, uint8_t kind, const uint8_t *b)
{
	*s = (struct cairn_key_secret){ .kind = kind };
	if (kind != CAIRN_KEY_WRITE_ONLY) {
		memcpy(s->master, b, CAIRN_KEY_SIZE);
		return;
	}
	memcpy(s->wo.id, b, 32);
	memcpy(s->wo.gear, b + 32, 32);
	memcpy(s->wo.idx, b + 64, 32);
	memcpy(s->wo.config_sha256, b + 96, 32);
	memcpy(s->wo.admin_pub, b + 128, 32);
}

/* Appends nonce and wrapped secret; the AAD is the file from start on (FORMAT.md
 * §3.2), so no parameter can be altered without the tag failing. */
static int put_wrapped(struct cairn_buf *out, size_t start, const uint8_t wk[CAIRN_KEY_SIZE],
                       const struct cairn_key_secret *s)
{
	uint8_t plain[CAIRN_WO_SECRET_SIZE];
	size_t n = secret_bytes(plain, s);
	int r = cairn_buf_reserve(out, KEYFILE_NONCE_SIZE + n + CAIRN_TAG_SIZE);
	uint8_t *nonce = out->data + out->len;
	if (r >= 0 && (r = cairn_crypt__random(nonce, KEYFILE_NONCE_SIZE)) >= 0)
		r = cairn_crypt__gcm_encrypt(wk, nonce, out->data + start, out->len - start, plain,
		                             n, nonce + KEYFILE_NONCE_SIZE);
	OPENSSL_cleanse(plain, sizeof(plain));
	if (r >= 0)
		out->len += KEYFILE_NONCE_SIZE + n + CAIRN_TAG_SIZE;
	return r;
}

int cairn_keyfile__create(struct cairn_buf *out, const uint8_t master[CAIRN_KEY_SIZE],
                          const char *pw, size_t pwlen, int log2n, const char *label)
{
	struct cairn_key_secret s = { .kind = CAIRN_KEY_FULL };
	memcpy(s.master, master, CAIRN_KEY_SIZE);
	int r = cairn_keyfile__create_secret(out, &s, pw, pwlen, log2n, label);
	OPENSSL_cleanse(&s, sizeof(s));
	return r;
}

int cairn_keyfile__create_secret(struct cairn_buf *out, const struct cairn_key_secret *s,
                                 const char *pw, size_t pwlen, int log2n, const char *label)
{
	const size_t start = out->len, lablen = label ? strlen(label) : 0;
	uint8_t salt[32], wk[CAIRN_KEY_SIZE];
	int r;

	if (log2n == 0)
		log2n = CAIRN_KDF_LOG2N_DEFAULT;
	if (log2n < 10 || log2n > CAIRN_KDF_LOG2N_MAX)
		return cairn_err_set(-EINVAL, "scrypt log2(N) %d is out of range 10..%d", log2n,
		                     CAIRN_KDF_LOG2N_MAX);
	if (lablen > UINT8_MAX)
		return cairn_err_set(-EINVAL, "key label of %zu bytes is longer than 255", lablen);
	if ((r = cairn_crypt__random(salt, sizeof(salt))) < 0 ||
	    (r = cairn_crypt__scrypt(pw, pwlen, salt, log2n, CAIRN_KDF_R_DEFAULT,
	                             CAIRN_KDF_P_DEFAULT, wk)) < 0)
		return r;
	r = put_header(out, s->kind, log2n, salt, label ? label : "", lablen);
	if (r >= 0)
		r = put_wrapped(out, start, wk, s);
	OPENSSL_cleanse(wk, sizeof(wk));
	if (r < 0)
		out->len = start; /* no half-written key file escapes */
	return r;
}

int cairn_keyfile__unwrap_secret(const uint8_t *data, size_t len, const char *pw, size_t pwlen,
                                 struct cairn_key_secret *out)
{
	struct cairn_keyfile kf;
	uint8_t wk[CAIRN_KEY_SIZE], plain[CAIRN_WO_SECRET_SIZE];
	int r = cairn_keyfile__parse(&kf, data, len);

	if (r < 0)
		return r;
	if (cairn_keyfile__too_costly(&kf))
		return cairn_err_set(-EBADMSG,
		                     "key file: scrypt cost log2(N) %u, r %u, p %u is above the "
		                     "limit of log2(N) %d and %llu GiB",
		                     kf.log2n, kf.r, kf.p, CAIRN_KDF_LOG2N_MAX,
		                     CAIRN_KDF_COST_MAX >> 30);
	r = cairn_crypt__scrypt(pw, pwlen, kf.salt, kf.log2n, kf.r, kf.p, wk);
	if (r == -EINVAL) /* in range one by one, but too costly together */
		return cairn_err_wrap(-EBADMSG, "key file");
	if (r < 0)
		return r;
	r = cairn_crypt__gcm_decrypt(wk, kf.nonce, data, kf.aad_len, kf.wrapped, kf.wrapped_len,
	                             plain);
	OPENSSL_cleanse(wk, sizeof(wk));
	if (r == -EKEYREJECTED)
		return cairn_err_set(-EKEYREJECTED, "wrong password");
	if (r < 0)
		return r;
	secret_from(out, kf.kind, plain);
	OPENSSL_cleanse(plain, sizeof(plain));
	return 0;
}

int cairn_keyfile__unwrap(const uint8_t *data, size_t len, const char *pw, size_t pwlen,
                          uint8_t master_out[CAIRN_KEY_SIZE])
{
	struct cairn_key_secret s;
	int r = cairn_keyfile__unwrap_secret(data, len, pw, pwlen, &s);
	if (r >= 0 && s.kind != CAIRN_KEY_FULL)
		r = cairn_err_set(-EBADMSG, "key file: a write-only key holds no master key");
	if (r >= 0)
		memcpy(master_out, s.master, CAIRN_KEY_SIZE);
	OPENSSL_cleanse(&s, sizeof(s));
	return r;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int cairn_keyfile__calibrate_with(double (*cost)(int log2n, void *payload), void *payload)
{
	int log2n = CAIRN_KDF_LOG2N_MIN;
	for (; log2n < CAIRN_KDF_LOG2N_MAX; log2n++) {
		double t = cost(log2n, payload);
		if (t < 0 || t >= CAIRN_KDF_TARGET_SECONDS)
			break;
	}
	return log2n;
}

/* Seconds one derivation at log2n takes here; -1 when scrypt fails (memory). */
static double scrypt_cost(int log2n, void *payload)
{
	uint8_t *out = payload;
	static const uint8_t salt[32];
	double t = now_s();
	if (cairn_crypt__scrypt("calibrate", 9, salt, log2n, CAIRN_KDF_R_DEFAULT,
	                        CAIRN_KDF_P_DEFAULT, out) < 0)
		return -1;
	return now_s() - t;
}

int cairn_keyfile__calibrate(void)
{
	static const uint8_t salt[32];
	uint8_t out[CAIRN_KEY_SIZE];

	/* Warm up first: the first call also pays for loading the algorithms. */
	cairn_crypt__scrypt("calibrate", 9, salt, 10, CAIRN_KDF_R_DEFAULT, CAIRN_KDF_P_DEFAULT,
	                    out);
	int log2n = cairn_keyfile__calibrate_with(scrypt_cost, out);
	OPENSSL_cleanse(out, sizeof(out));
	return log2n;
}
