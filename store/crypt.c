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
#define ADMIN_SEAL_LABEL "cairn v1 sealed-to-admin"
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

int cairn_crypt__sha256_fd(int fd, uint64_t size, uint8_t out[32])
{
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int r = alg_get();
	if (r >= 0 && (!buf || !ctx || !EVP_DigestInit_ex(ctx, alg.sha256, NULL)))
		r = cairn_err_set(-ENOMEM, "SHA-256 failed: out of memory");
	for (uint64_t off = 0; r >= 0 && off < size;) {
		size_t n = size - off < (1u << 20) ? (size_t)(size - off) : (1u << 20);
		if ((r = cairn_pread_all(fd, buf, n, off)) < 0)
			r = cairn_err_set(r == -EBADMSG ? -EIO : r, "cannot read the file to hash");
		else
			EVP_DigestUpdate(ctx, buf, n);
		off += n;
	}
	if (r >= 0)
		EVP_DigestFinal_ex(ctx, out, NULL);
	EVP_MD_CTX_free(ctx);
	return r;
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

/* HKDF-SHA-256 (RFC 5869) of a 32-byte input key into 32 bytes. */
static int hkdf_raw(uint8_t out[CAIRN_KEY_SIZE], const uint8_t ikm[CAIRN_KEY_SIZE],
                    const uint8_t salt[CAIRN_REPO_ID_SIZE], const void *info, size_t infolen)
{
	_cleanup_(kdf_ctx_freep) EVP_KDF_CTX *kctx = EVP_KDF_CTX_new(alg.hkdf);
	OSSL_PARAM params[] = {
		OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, (char *)"SHA2-256", 0),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, CAIRN_KEY_SIZE),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt,
		                                  CAIRN_REPO_ID_SIZE),
		OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
		OSSL_PARAM_construct_end(),
	};

	if (!kctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (EVP_KDF_derive(kctx, out, CAIRN_KEY_SIZE, params) <= 0)
		return cairn_err_set(-EIO, "HKDF-SHA-256 failed");
	return 0;
}

static int hkdf(uint8_t out[CAIRN_KEY_SIZE], const uint8_t ikm[CAIRN_KEY_SIZE],
                const uint8_t salt[CAIRN_REPO_ID_SIZE], const char *label)
{
	return hkdf_raw(out, ikm, salt, label, strlen(label));
}

/* ---- X25519 (FORMAT.md §5.4), through OpenSSL's EVP_PKEY ------------------ */

static void pkey_freep(EVP_PKEY **p)
{
	EVP_PKEY_free(*p);
}

static void pkey_ctx_freep(EVP_PKEY_CTX **p)
{
	EVP_PKEY_CTX_free(*p);
}

static int x25519_public(uint8_t pub[CAIRN_X25519_SIZE], const EVP_PKEY *key)
{
	size_t len = CAIRN_X25519_SIZE;
	if (EVP_PKEY_get_raw_public_key(key, pub, &len) != 1 || len != CAIRN_X25519_SIZE)
		return cairn_err_set(-EIO, "X25519: cannot get the public key");
	return 0;
}

/* The public key of a private scalar (RFC 7748: X25519(k, 9)). */
static int x25519_public_of(uint8_t pub[CAIRN_X25519_SIZE], const uint8_t priv[CAIRN_KEY_SIZE])
{
	_cleanup_(pkey_freep) EVP_PKEY *key =
	        EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, priv, CAIRN_KEY_SIZE);
	if (!key)
		return cairn_err_set(-EIO, "X25519: cannot load a private key");
	return x25519_public(pub, key);
}

/* S = X25519(mine, peer). A peer point of low order gives an all-zero S, which
 * OpenSSL refuses; either way -EBADMSG: the peer key came from a blob. */
static int x25519_shared(uint8_t out[32], EVP_PKEY *mine, const uint8_t peer[CAIRN_X25519_SIZE])
{
	static const uint8_t zero[32];
	size_t len = 32;
	_cleanup_(pkey_freep) EVP_PKEY *p =
	        EVP_PKEY_new_raw_public_key_ex(NULL, "X25519", NULL, peer, CAIRN_X25519_SIZE);
	if (!p)
		return cairn_err_set(-EBADMSG, "X25519: bad public key");
	_cleanup_(pkey_ctx_freep) EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL);
	if (!ctx)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, p) != 1 ||
	    EVP_PKEY_derive(ctx, out, &len) != 1 || len != 32 || CRYPTO_memcmp(out, zero, 32) == 0)
		return cairn_err_set(-EBADMSG, "X25519: no shared secret with this public key");
	return 0;
}

/* K_w = HKDF-SHA-256(S, salt = repo id, info = label || E || P_adm). */
static int session_key(uint8_t out[CAIRN_KEY_SIZE], const uint8_t s[32],
                       const uint8_t repo_id[CAIRN_REPO_ID_SIZE], const uint8_t e[32],
                       const uint8_t admin_pub[32])
{
	uint8_t info[sizeof(ADMIN_SEAL_LABEL) - 1 + 64];
	const size_t n = sizeof(ADMIN_SEAL_LABEL) - 1;

	memcpy(info, ADMIN_SEAL_LABEL, n);
	memcpy(info + n, e, 32);
	memcpy(info + n + 32, admin_pub, 32);
	return hkdf_raw(out, s, repo_id, info, sizeof(info));
}

/* A writer session: an ephemeral pair (e, E) whose e is used once and dropped. */
static int new_session(struct cairn_keys *k)
{
	uint8_t s[32];
	_cleanup_(pkey_freep) EVP_PKEY *e = EVP_PKEY_Q_keygen(NULL, NULL, "X25519");
	if (!e)
		return cairn_err_set(-EIO, "X25519: cannot generate a key pair");
	int r = x25519_public(k->session_pub, e);
	if (r >= 0 && (r = x25519_shared(s, e, k->admin_pub)) == -EBADMSG)
		r = cairn_err_set(-EBADMSG, "write-only key: bad admin public key");
	if (r >= 0)
		r = session_key(k->session_key, s, k->repo_id, k->session_pub, k->admin_pub);
	OPENSSL_cleanse(s, sizeof(s));
	return r;
}

/* K_w of a blob's E, as the admin derives it; the last ones are cached. */
static pthread_mutex_t cache_lock = PTHREAD_MUTEX_INITIALIZER;

static bool cache_get(const struct cairn_keys *k, const uint8_t e[32], uint8_t out[32])
{
	bool hit = false;
	pthread_mutex_lock(&cache_lock);
	for (size_t i = 0; !hit && i < CAIRN_SEAL_CACHE_SLOTS; i++)
		if (k->cache[i].used && memcmp(k->cache[i].e, e, 32) == 0) {
			memcpy(out, k->cache[i].k, 32);
			hit = true;
		}
	pthread_mutex_unlock(&cache_lock);
	return hit;
}

static void cache_put(const struct cairn_keys *k, const uint8_t e[32], const uint8_t key[32])
{
	/* The keys are never defined const (crypt.h): the cache is theirs to update. */
	struct cairn_keys *m = (struct cairn_keys *)k;
	pthread_mutex_lock(&cache_lock);
	unsigned i = m->cache_next++ % CAIRN_SEAL_CACHE_SLOTS;
	memcpy(m->cache[i].e, e, 32);
	memcpy(m->cache[i].k, key, 32);
	m->cache[i].used = true;
	pthread_mutex_unlock(&cache_lock);
}

static int admin_key_of(const struct cairn_keys *k, const uint8_t e[32], uint8_t out[32])
{
	uint8_t s[32];
	if (cache_get(k, e, out))
		return 0;
	_cleanup_(pkey_freep) EVP_PKEY *adm =
	        EVP_PKEY_new_raw_private_key_ex(NULL, "X25519", NULL, k->admin, CAIRN_KEY_SIZE);
	if (!adm)
		return cairn_err_set(-EIO, "X25519: cannot load the admin key");
	int r = x25519_shared(s, adm, e);
	if (r >= 0)
		r = session_key(out, s, k->repo_id, e, k->admin_pub);
	OPENSSL_cleanse(s, sizeof(s));
	if (r >= 0)
		cache_put(k, e, out);
	return r;
}

int cairn_crypt__derive(struct cairn_keys *out, const uint8_t master[CAIRN_KEY_SIZE],
                        const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	struct cairn_keys k = { 0 };
	int r = alg_get();

	memcpy(k.master, master, CAIRN_KEY_SIZE);
	memcpy(k.repo_id, repo_id, CAIRN_REPO_ID_SIZE);
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
		r = hkdf(k.prune, master, repo_id, "cairn v1 prune-mac");
	if (r >= 0)
		r = hkdf(k.admin, master, repo_id, "cairn v1 admin-x25519");
	if (r >= 0)
		r = x25519_public_of(k.admin_pub, k.admin);
	if (r >= 0)
		*out = k;
	cairn_crypt__wipe(&k);
	return r;
}

int cairn_crypt__derive_write_only(struct cairn_keys *out, const struct cairn_wo_secret *s,
                                   const uint8_t repo_id[CAIRN_REPO_ID_SIZE])
{
	struct cairn_keys k = { .write_only = true };
	int r = alg_get();

	memcpy(k.id, s->id, CAIRN_KEY_SIZE);
	memcpy(k.gear, s->gear, CAIRN_KEY_SIZE);
	memcpy(k.idx, s->idx, CAIRN_KEY_SIZE);
	memcpy(k.admin_pub, s->admin_pub, CAIRN_X25519_SIZE);
	memcpy(k.repo_id, repo_id, CAIRN_REPO_ID_SIZE);
	if (r >= 0)
		r = new_session(&k);
	if (r >= 0)
		*out = k;
	cairn_crypt__wipe(&k);
	return r;
}

int cairn_crypt__write_only_secret(struct cairn_wo_secret *out, const struct cairn_keys *full,
                                   const void *config, size_t config_len)
{
	struct cairn_wo_secret s;
	if (full->write_only)
		return cairn_crypt__refuse_write_only();
	memcpy(s.id, full->id, CAIRN_KEY_SIZE);
	memcpy(s.gear, full->gear, CAIRN_KEY_SIZE);
	memcpy(s.idx, full->idx, CAIRN_KEY_SIZE);
	memcpy(s.admin_pub, full->admin_pub, CAIRN_X25519_SIZE);
	int r = cairn_sha256(config, config_len, s.config_sha256);
	if (r >= 0)
		*out = s;
	OPENSSL_cleanse(&s, sizeof(s));
	return r;
}

void cairn_crypt__wipe(struct cairn_keys *k)
{
	OPENSSL_cleanse(k, sizeof(*k));
}

int cairn_crypt__refuse_write_only(void)
{
	return cairn_err_set(-EACCES, CAIRN_WRITE_ONLY_REFUSAL);
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

/* ---- sealed blobs (FORMAT.md §5.2, §5.4) --------------------------------- */

/* Data, trees and snapshots: what a write-only key seals to the admin and may
 * not open (FORMAT.md §3.3). */
static bool content_type(int type)
{
	return type == CAIRN_BLOB_DATA || type == CAIRN_BLOB_TREE || type == CAIRN_BLOB_SNAPSHOT;
}

/* The K of FORMAT.md §5.2 a key seals a type with: K_idx for index files and
 * for the pack headers of a write-only key, else K_enc. */
static const uint8_t *seal_key(const struct cairn_keys *k, int type)
{
	if (type == CAIRN_BLOB_INDEX || (type == CAIRN_BLOB_PACKHDR && k->write_only))
		return k->idx;
	return k->enc;
}

/* K_b = HMAC-SHA-256(K, "cairn v1 blob" || nonce[0..12]): a fresh key per
 * blob, so GCM's random-IV limits per key are never approached. */
static int blob_key(uint8_t kb[32], const uint8_t key[CAIRN_KEY_SIZE],
                    const uint8_t nonce[CAIRN_NONCE_SIZE])
{
	uint8_t msg[sizeof(BLOB_KEY_LABEL) - 1 + 12];

	memcpy(msg, BLOB_KEY_LABEL, sizeof(BLOB_KEY_LABEL) - 1);
	memcpy(msg + sizeof(BLOB_KEY_LABEL) - 1, nonce, 12);
	return hmac(key, msg, sizeof(msg), kb);
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

/* A random nonce; for §5.2 never one that begins with the mark of §5.4, so
 * that a reader never takes a blob written now for one sealed to the admin. */
static int draw_nonce(uint8_t nonce[CAIRN_NONCE_SIZE], bool avoid_mark)
{
	int r;
	do
		r = cairn_crypt__random(nonce, CAIRN_NONCE_SIZE);
	while (r >= 0 && avoid_mark &&
	       memcmp(nonce, CAIRN_ADMIN_SEAL_MARK, CAIRN_ADMIN_SEAL_MARK_SIZE) == 0);
	return r;
}

/* nonce || GCM(enc || body) || tag at dst, which has room for all of it. */
static int seal_at(uint8_t *dst, const uint8_t key[CAIRN_KEY_SIZE], bool avoid_mark,
                   const uint8_t aad[BLOB_AAD_SIZE], uint8_t enc, const void *body, size_t len)
{
	uint8_t kb[32];
	int r = draw_nonce(dst, avoid_mark);
	if (r < 0 || (r = blob_key(kb, key, dst)) < 0)
		return r;
	const struct gcm_part parts[] = {
		{ &enc, dst + CAIRN_NONCE_SIZE, 1 },
		{ body, dst + CAIRN_NONCE_SIZE + 1, len },
	};
	r = gcm(true, kb, dst + 12, aad, BLOB_AAD_SIZE, parts, 2, dst + CAIRN_NONCE_SIZE + 1 + len);
	OPENSSL_cleanse(kb, sizeof(kb));
	return r;
}

int cairn_crypt__seal(const struct cairn_keys *k, int type, const struct cairn_id *id, uint8_t enc,
                      const void *body, size_t len, struct cairn_buf *out)
{
	bool to_admin = k->write_only && content_type(type);
	size_t head = to_admin ? CAIRN_ADMIN_SEAL_HEAD : 0;
	uint8_t aad[BLOB_AAD_SIZE];
	int r;

	if (len > UINT32_MAX - CAIRN_SEAL_OVERHEAD_MAX)
		return cairn_err_set(-EINVAL, "blob of %zu bytes is too large to seal", len);
	if ((r = blob_aad(aad, type, id)) < 0 ||
	    (r = cairn_buf_reserve(out, head + len + CAIRN_SEAL_OVERHEAD)) < 0)
		return r;
	uint8_t *dst = out->data + out->len;
	if (to_admin) {
		memcpy(dst, CAIRN_ADMIN_SEAL_MARK, CAIRN_ADMIN_SEAL_MARK_SIZE);
		memcpy(dst + CAIRN_ADMIN_SEAL_MARK_SIZE, k->session_pub, CAIRN_X25519_SIZE);
		r = seal_at(dst + head, k->session_key, false, aad, enc, body, len);
	} else {
		r = seal_at(dst, seal_key(k, type), true, aad, enc, body, len);
	}
	if (r < 0)
		return r;
	out->len += head + len + CAIRN_SEAL_OVERHEAD;
	return 0;
}

/* Open nonce || ct || tag under key into body_out (room for slen - 41 bytes).
 * -EKEYREJECTED, without a message, when the tag does not match. */
static int open_at(const uint8_t key[CAIRN_KEY_SIZE], const uint8_t aad[BLOB_AAD_SIZE],
                   const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out)
{
	uint8_t kb[32], tag[CAIRN_TAG_SIZE], e;
	size_t len = slen - CAIRN_SEAL_OVERHEAD;
	int r = blob_key(kb, key, sealed);

	if (r < 0)
		return r;
	memcpy(tag, sealed + slen - CAIRN_TAG_SIZE, CAIRN_TAG_SIZE);
	const struct gcm_part parts[] = {
		{ sealed + CAIRN_NONCE_SIZE, &e, 1 },
		{ sealed + CAIRN_NONCE_SIZE + 1, body_out->data, len },
	};
	r = gcm(false, kb, sealed + 12, aad, BLOB_AAD_SIZE, parts, 2, tag);
	OPENSSL_cleanse(kb, sizeof(kb));
	if (r < 0 && len > 0)
		OPENSSL_cleanse(body_out->data, len); /* never hand out unauthenticated plaintext */
	if (r < 0)
		return r;
	*enc = e;
	body_out->len = len;
	return 0;
}

/* FORMAT.md §5.4: the mark, E, then §5.2 under the K_w of E. A blob that only
 * looks like one (a §5.2 nonce that began with the mark) fails here with
 * -EKEYREJECTED, and so does a bad E. */
static int open_admin(const struct cairn_keys *k, const uint8_t aad[BLOB_AAD_SIZE],
                      const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out)
{
	uint8_t kw[32];
	int r = admin_key_of(k, sealed + CAIRN_ADMIN_SEAL_MARK_SIZE, kw);
	if (r == -EBADMSG)
		return -EKEYREJECTED;
	if (r >= 0)
		r = open_at(kw, aad, sealed + CAIRN_ADMIN_SEAL_HEAD, slen - CAIRN_ADMIN_SEAL_HEAD,
		            enc, body_out);
	OPENSSL_cleanse(kw, sizeof(kw));
	return r;
}

static bool marked(const uint8_t *sealed, size_t slen)
{
	return slen >= CAIRN_SEAL_OVERHEAD_MAX &&
	       memcmp(sealed, CAIRN_ADMIN_SEAL_MARK, CAIRN_ADMIN_SEAL_MARK_SIZE) == 0;
}

/* Which keys may have sealed a blob, tried in order (FORMAT.md §5.2, §5.4,
 * §6.2); -EKEYREJECTED when none opens it. */
static int open_any(const struct cairn_keys *k, int type, const uint8_t aad[BLOB_AAD_SIZE],
                    const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out)
{
	int r;
	if (type == CAIRN_BLOB_INDEX || (type == CAIRN_BLOB_PACKHDR && k->write_only))
		return open_at(k->idx, aad, sealed, slen, enc, body_out);
	if (content_type(type) && marked(sealed, slen) &&
	    (r = open_admin(k, aad, sealed, slen, enc, body_out)) != -EKEYREJECTED)
		return r;
	r = open_at(k->enc, aad, sealed, slen, enc, body_out);
	if (r == -EKEYREJECTED && type == CAIRN_BLOB_PACKHDR)
		r = open_at(k->idx, aad, sealed, slen, enc, body_out);
	return r;
}

int cairn_crypt__open(const struct cairn_keys *k, int type, const struct cairn_id *id,
                      const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out)
{
	uint8_t aad[BLOB_AAD_SIZE];
	int r;

	if (slen < CAIRN_SEAL_OVERHEAD)
		return cairn_err_set(-EBADMSG, "sealed blob of %zu bytes is shorter than %d", slen,
		                     CAIRN_SEAL_OVERHEAD);
	body_out->len = 0;
	if ((r = blob_aad(aad, type, id)) < 0)
		return r;
	if (k->write_only && content_type(type))
		return cairn_crypt__refuse_write_only();
	if ((r = cairn_buf_reserve(body_out, slen - CAIRN_SEAL_OVERHEAD)) < 0)
		return r;
	r = open_any(k, type, aad, sealed, slen, enc, body_out);
	if (r == -EKEYREJECTED)
		return cairn_err_set(-EBADMSG, "sealed blob: authentication failed");
	return r;
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
