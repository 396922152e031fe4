/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Subkeys, HMAC blob IDs, sealed blobs and scrypt over OpenSSL 3 EVP (FORMAT.md §3, §5). */
#include "crypt.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cleanup.h"

#define SHA256_BLOCK 64
#define GCM_IV_SIZE 12
#define BLOB_AAD_SIZE (2 + CAIRN_ID_SIZE)
#define BLOB_KEY_LABEL "cairn v1 blob"
/* Upper bound on 128 * r * p * N, the scrypt work a key file may ask for. */
#define SCRYPT_MAX_COST (2ull << 30)

/* Algorithms are fetched once: a fetch takes a lock and a method-store lookup,
 * which would dominate the cost of hashing a small blob. */
static struct {
	EVP_MD *sha256;
	EVP_CIPHER *gcm;
	EVP_KDF *hkdf;
	EVP_KDF *scrypt;
	bool ok;
} alg;
static pthread_once_t alg_once = PTHREAD_ONCE_INIT;

static void alg_fetch(void)
{
	alg.sha256 = EVP_MD_fetch(NULL, "SHA2-256", NULL);
	alg.gcm = EVP_CIPHER_fetch(NULL, "AES-256-GCM", NULL);
	alg.hkdf = EVP_KDF_fetch(NULL, "HKDF", NULL);
	alg.scrypt = EVP_KDF_fetch(NULL, "SCRYPT", NULL);
	alg.ok = alg.sha256 && alg.gcm && alg.hkdf && alg.scrypt;
}

static int alg_get(void)
{
	pthread_once(&alg_once, alg_fetch);
	if (!alg.ok)
		return cairn_err_set(-EIO, "OpenSSL lacks SHA-256, AES-256-GCM, HKDF or scrypt");
	return 0;
}

static void md_ctx_freep(EVP_MD_CTX **p)
{
	EVP_MD_CTX_free(*p);
}

static void cipher_ctx_freep(EVP_CIPHER_CTX **p)
{
	EVP_CIPHER_CTX_free(*p);
}

static void kdf_ctx_freep(EVP_KDF_CTX **p)
{
	EVP_KDF_CTX_free(*p);
}

/* ---- hashes ------------------------------------------------------------- */

static int digest_pass(EVP_MD_CTX *ctx, const uint8_t pad[SHA256_BLOCK], const void *data,
                       size_t len, uint8_t out[32])
{
	return EVP_DigestInit_ex2(ctx, alg.sha256, NULL) &&
	       EVP_DigestUpdate(ctx, pad, SHA256_BLOCK) && EVP_DigestUpdate(ctx, data, len) &&
	       EVP_DigestFinal_ex(ctx, out, NULL);
}

/*
 * HMAC-SHA-256 (RFC 2104) on one reused EVP_MD_CTX with the digest fetched once.
 * EVP_MAC would look SHA-256 up by name on every init. The key is 32 bytes,
 * shorter than the block, so it is only zero-padded, never hashed first.
 */
static int hmac(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t len, uint8_t out[32])
{
	uint8_t pad[SHA256_BLOCK], inner[32];
	int r = alg_get();

	if (r < 0)
		return r;
	_cleanup_(md_ctx_freep) EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	if (!ctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] = (uint8_t)((i < CAIRN_KEY_SIZE ? key[i] : 0) ^ 0x36);
	bool ok = digest_pass(ctx, pad, data, len, inner);
	for (size_t i = 0; i < SHA256_BLOCK; i++)
		pad[i] ^= 0x36 ^ 0x5c;
	ok = ok && digest_pass(ctx, pad, inner, sizeof(inner), out);
	OPENSSL_cleanse(pad, sizeof(pad));
	OPENSSL_cleanse(inner, sizeof(inner));
	return ok ? 0 : cairn_err_set(-EIO, "HMAC-SHA-256 failed");
}

int cairn_crypt__hmac(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t len,
                      uint8_t out[32])
{
	return hmac(key, data, len, out);
}

int cairn_sha256(const void *data, size_t len, uint8_t out[32])
{
	int r = alg_get();
	if (r < 0)
		return r;
	/* With a fetched digest, only the allocation of its context can fail. */
	if (!EVP_Digest(data, len, out, NULL, alg.sha256, NULL))
		return cairn_err_set(-ENOMEM, "SHA-256 failed: out of memory");
	return 0;
}

int cairn_crypt__random(void *p, size_t n)
{
	uint8_t *b = p;

	while (n > 0) {
		int step = n > INT_MAX ? INT_MAX : (int)n;
		if (RAND_bytes(b, step) != 1)
			return cairn_err_set(-EIO, "random number generator failed");
		b += step;
		n -= (size_t)step;
	}
	return 0;
}

bool cairn_crypt__equal(const void *a, const void *b, size_t n)
{
	return CRYPTO_memcmp(a, b, n) == 0;
}

/* ---- key derivation (FORMAT.md §3.1) ------------------------------------ */

static int hkdf(uint8_t out[CAIRN_KEY_SIZE], const uint8_t ikm[CAIRN_KEY_SIZE],
                const uint8_t salt[CAIRN_REPO_ID_SIZE], const char *label)
{
	_cleanup_(kdf_ctx_freep) EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(alg.hkdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA2-256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, CAIRN_KEY_SIZE),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
		                                  CAIRN_REPO_ID_SIZE),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)label,
		                                  strlen(label)),
		OSSL_PARAM_construct_end(),
	};

	if (!kctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (EVP_KDF_derive(kctx, out, CAIRN_KEY_SIZE, params) <= 0)
		return cairn_err_set(-EIO, "HKDF-SHA-256 failed");
	return 0;
}

int cairn_crypt__derive(struct cairn_keys *out, const uint8_t master[CAIRN_KEY_SIZE],
                        const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	struct cairn_keys k;
	int r = alg_get();

	memcpy(k.master, master, CAIRN_KEY_SIZE);
	if (r >= 0)
		r = hkdf(k.enc, master, repo_id, "cairn v1 blob-enc");
	if (r >= 0)
		r = hkdf(k.id, master, repo_id, "cairn v1 chunk-id");
	if (r >= 0)
		r = hkdf(k.gear, master, repo_id, "cairn v1 gear");
	if (r >= 0)
		r = hkdf(k.cfg, master, repo_id, "cairn v1 config-mac");
	if (r >= 0)
		r = hkdf(k.idx, master, repo_id, "cairn v1 index");
	if (r >= 0)
		*out = k;
	cairn_crypt__wipe(&k);
	return r;
}

void cairn_crypt__wipe(struct cairn_keys *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

/* ---- AES-256-GCM -------------------------------------------------------- */

/* One contiguous piece of the message: the sealed format encrypts the enc byte
 * and the body from separate buffers without copying them together. */
struct gcm_part {
	const uint8_t *in;
	uint8_t *out;
	size_t len;
};

static bool gcm_update(EVP_CIPHER_CTX *ctx, const struct gcm_part *part)
{
	size_t done = 0;

	/* EVP lengths are int: feed large bodies in steps. */
	while (done < part->len) {
		size_t left = part->len - done;
		int step = left > (1u << 30) ? 1 << 30 : (int)left, outl;
		if (!EVP_CipherUpdate(ctx, part->out + done, &outl, part->in + done, step) ||
		    outl != step)
			return false;
		done += (size_t)step;
	}
	return true;
}

/* Encrypts (tag written) or decrypts (tag checked) the parts in order.
 * -EKEYREJECTED on a tag mismatch, without a message; -EIO, -ENOMEM. */
static int gcm(bool encrypt, const uint8_t key[32], const uint8_t iv[GCM_IV_SIZE], const void *aad,
               size_t aadlen, const struct gcm_part *parts, size_t nparts,
               uint8_t tag[CAIRN_TAG_SIZE])
{
	uint8_t fin[16];
	int outl, r = alg_get();

	if (r < 0)
		return r;
	_cleanup_(cipher_ctx_freep) EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	if (!ctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (aadlen > INT_MAX || !EVP_CipherInit_ex2(ctx, alg.gcm, key, iv, encrypt, NULL) ||
	    (aadlen > 0 && !EVP_CipherUpdate(ctx, NULL, &outl, aad, (int)aadlen)))
		return cairn_err_set(-EIO, "AES-256-GCM setup failed");
	for (size_t i = 0; i < nparts; i++)
		if (!gcm_update(ctx, &parts[i]))
			return cairn_err_set(-EIO, "AES-256-GCM failed");
	if (!encrypt && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, CAIRN_TAG_SIZE, tag))
		return cairn_err_set(-EIO, "AES-256-GCM failed");
	if (EVP_CipherFinal_ex(ctx, fin, &outl) <= 0)
		return encrypt ? cairn_err_set(-EIO, "AES-256-GCM failed") : -EKEYREJECTED;
	if (encrypt && !EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, CAIRN_TAG_SIZE, tag))
		return cairn_err_set(-EIO, "AES-256-GCM failed");
	return 0;
}

int cairn_crypt__gcm_encrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                             size_t aadlen, const void *pt, size_t len, uint8_t *out)
{
	struct gcm_part part = { pt, out, len };
	return gcm(true, key, nonce, aad, aadlen, &part, 1, out + len);
}

int cairn_crypt__gcm_decrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                             size_t aadlen, const uint8_t *ct, size_t len, uint8_t *out)
{
	uint8_t tag[CAIRN_TAG_SIZE];

	if (len < CAIRN_TAG_SIZE)
		return cairn_err_set(-EBADMSG, "encrypted key of %zu bytes is shorter than its tag",
		                     len);
	memcpy(tag, ct + len - CAIRN_TAG_SIZE, CAIRN_TAG_SIZE);
	struct gcm_part part = { ct, out, len - CAIRN_TAG_SIZE };
	int r = gcm(false, key, nonce, aad, aadlen, &part, 1, tag);
	if (r < 0 && part.len > 0)
		OPENSSL_cleanse(out, part.len); /* never hand out unauthenticated plaintext */
	if (r == -EKEYREJECTED)
		return cairn_err_set(-EKEYREJECTED, "key authentication failed");
	return r;
}

/* ---- sealed blobs (FORMAT.md §5.2) -------------------------------------- */

/* K_b = HMAC-SHA-256(K, "cairn v1 blob" || nonce[0..12]): a fresh key per
 * blob, so GCM's random-IV limits per key are never approached. K is K_enc, or
 * K_idx for index files (FORMAT.md §12: keys that may not read data hold it). */
static int blob_key(uint8_t kb[32], const struct cairn_keys *k, int type,
                    const uint8_t nonce[CAIRN_NONCE_SIZE])
{
	uint8_t msg[sizeof(BLOB_KEY_LABEL) - 1 + 12];

	memcpy(msg, BLOB_KEY_LABEL, sizeof(BLOB_KEY_LABEL) - 1);
	memcpy(msg + sizeof(BLOB_KEY_LABEL) - 1, nonce, 12);
	return hmac(type == CAIRN_BLOB_INDEX ? k->idx : k->enc, msg, sizeof(msg), kb);
}

/* AAD = u8 version (1) || u8 type || id[32]: binds the blob to its ID and type. */
static int blob_aad(uint8_t aad[BLOB_AAD_SIZE], int type, const struct cairn_id *id)
{
	if (type < CAIRN_BLOB_DATA || type > CAIRN_BLOB_INDEX)
		return cairn_err_set(-EINVAL, "unknown blob type %d", type);
	aad[0] = CAIRN_FORMAT_VERSION;
	aad[1] = (uint8_t)type;
	memcpy(aad + 2, id->b, CAIRN_ID_SIZE);
	return 0;
}

int cairn_crypt__seal(const struct cairn_keys *k, int type, const struct cairn_id *id, uint8_t enc,
                      const void *body, size_t len, struct cairn_buf *out)
{
	uint8_t aad[BLOB_AAD_SIZE], kb[32];
	int r;

	if (len > UINT32_MAX - CAIRN_SEAL_OVERHEAD)
		return cairn_err_set(-EINVAL, "blob of %zu bytes is too large to seal", len);
	if ((r = blob_aad(aad, type, id)) < 0 ||
	    (r = cairn_buf_reserve(out, len + CAIRN_SEAL_OVERHEAD)) < 0)
		return r;
	uint8_t *dst = out->data + out->len;
	if ((r = cairn_crypt__random(dst, CAIRN_NONCE_SIZE)) < 0 || (r = blob_key(kb, k, type, dst)) < 0)
		return r;
	const struct gcm_part parts[] = {
		{ &enc, dst + CAIRN_NONCE_SIZE, 1 },
		{ body, dst + CAIRN_NONCE_SIZE + 1, len },
	};
	r = gcm(true, kb, dst + 12, aad, sizeof(aad), parts, 2, dst + CAIRN_NONCE_SIZE + 1 + len);
	OPENSSL_cleanse(kb, sizeof(kb));
	if (r < 0)
		return r;
	out->len += len + CAIRN_SEAL_OVERHEAD;
	return 0;
}

int cairn_crypt__open(const struct cairn_keys *k, int type, const struct cairn_id *id,
                      const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out)
{
	uint8_t aad[BLOB_AAD_SIZE], kb[32], tag[CAIRN_TAG_SIZE], e;
	int r;

	if (slen < CAIRN_SEAL_OVERHEAD)
		return cairn_err_set(-EBADMSG, "sealed blob of %zu bytes is shorter than %d", slen,
		                     CAIRN_SEAL_OVERHEAD);
	size_t len = slen - CAIRN_SEAL_OVERHEAD;
	body_out->len = 0;
	if ((r = blob_aad(aad, type, id)) < 0 || (r = cairn_buf_reserve(body_out, len)) < 0 ||
	    (r = blob_key(kb, k, type, sealed)) < 0)
		return r;
	memcpy(tag, sealed + slen - CAIRN_TAG_SIZE, CAIRN_TAG_SIZE);
	const struct gcm_part parts[] = {
		{ sealed + CAIRN_NONCE_SIZE, &e, 1 },
		{ sealed + CAIRN_NONCE_SIZE + 1, body_out->data, len },
	};
	r = gcm(false, kb, sealed + 12, aad, sizeof(aad), parts, 2, tag);
	OPENSSL_cleanse(kb, sizeof(kb));
	if (r < 0 && len > 0)
		OPENSSL_cleanse(body_out->data, len); /* never hand out unauthenticated plaintext */
	if (r == -EKEYREJECTED)
		return cairn_err_set(-EBADMSG, "sealed blob: authentication failed");
	if (r < 0)
		return r;
	*enc = e;
	body_out->len = len;
	return 0;
}

/* ---- scrypt (FORMAT.md §3.2) -------------------------------------------- */

static atomic_uint_fast64_t scrypt_runs; /* statistics: relaxed */

uint64_t cairn_crypt__scrypt_runs(void)
{
	return atomic_load_explicit(&scrypt_runs, memory_order_relaxed);
}

static int scrypt_check(int log2n, uint32_t r, uint32_t p)
{
	if (log2n < 10 || log2n > 24 || r < 1 || r > 32 || p < 1 || p > 16)
		return cairn_err_set(-EINVAL,
		                     "scrypt parameters out of range: log2(N) %d, r %" PRIu32
		                     ", p %" PRIu32,
		                     log2n, r, p);
	/* Each factor is range-checked above, so the product fits in 64 bits. */
	if (128ull * r * p * (1ull << log2n) > SCRYPT_MAX_COST)
		return cairn_err_set(-EINVAL,
		                     "scrypt parameters log2(N) %d, r %" PRIu32 ", p %" PRIu32
		                     " need more than 2 GiB of work",
		                     log2n, r, p);
	return 0;
}

int cairn_crypt__scrypt_salt(const char *pw, size_t pwlen, const void *salt, size_t saltlen,
                             int log2n, uint32_t r, uint32_t p, uint8_t out[CAIRN_KEY_SIZE])
{
	int rc = scrypt_check(log2n, r, p);
	if (rc < 0 || (rc = alg_get()) < 0)
		return rc;
	uint64_t n = 1ull << log2n;
	/* What OpenSSL allocates: V (128 r N, plus two blocks) and B (128 r p). */
	uint64_t maxmem = 128ull * r * (n + 2 + p);
	_cleanup_(kdf_ctx_freep) EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(alg.scrypt);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_PASSWORD, (void *)(pw ? pw : ""),
		                                  pw ? pwlen : 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_N, &n),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_R, &r),
		OSSL_PARAM_construct_uint32(OSSL_KDF_PARAM_SCRYPT_P, &p),
		OSSL_PARAM_construct_uint64(OSSL_KDF_PARAM_SCRYPT_MAXMEM, &maxmem),
		OSSL_PARAM_construct_end(),
	};

	if (!kctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	atomic_fetch_add_explicit(&scrypt_runs, 1, memory_order_relaxed);
	/* The parameters were validated, so the likely failure is the big allocation. */
	if (EVP_KDF_derive(kctx, out, CAIRN_KEY_SIZE, params) <= 0)
		return cairn_err_set(-ENOMEM, "scrypt failed: out of memory for %" PRIu64 " bytes",
		                     maxmem);
	return 0;
}

int cairn_crypt__scrypt(const char *pw, size_t pwlen, const uint8_t salt[32], int log2n, uint32_t r,
                        uint32_t p, uint8_t out[CAIRN_KEY_SIZE])
{
	return cairn_crypt__scrypt_salt(pw, pwlen, salt, 32, log2n, r, p, out);
}
