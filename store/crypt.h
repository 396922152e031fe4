/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key derivation, blob IDs, blob sealing and scrypt (FORMAT.md §3, §5). Internal. */
#ifndef CAIRN_CRYPT_H
#define CAIRN_CRYPT_H

#include "cairn/store.h"

#define CAIRN_KEY_SIZE 32
#define CAIRN_REPO_ID_SIZE 16
#define CAIRN_NONCE_SIZE 24
#define CAIRN_TAG_SIZE 16
#define CAIRN_SEAL_OVERHEAD (CAIRN_NONCE_SIZE + 1 + CAIRN_TAG_SIZE) /* 41, with the enc byte */

/* The working keys of an unlocked repository (FORMAT.md §3.1). Embedded by repo. */
struct cairn_keys {
	uint8_t master[CAIRN_KEY_SIZE];
	uint8_t enc[CAIRN_KEY_SIZE];
	uint8_t id[CAIRN_KEY_SIZE];
	uint8_t gear[CAIRN_KEY_SIZE];
	uint8_t cfg[CAIRN_KEY_SIZE];
};

/* HKDF-SHA-256 of all subkeys from the master key; salt = repo id. -EIO on an OpenSSL failure. */
int cairn_crypt__derive(struct cairn_keys *out, const uint8_t master[CAIRN_KEY_SIZE],
                        const uint8_t repo_id[CAIRN_REPO_ID_SIZE]);
/* Wipe keys (OPENSSL_cleanse). */
void cairn_crypt__wipe(struct cairn_keys *k);
/* HMAC-SHA-256; thread-safe. -ENOMEM (a digest context), -EIO. */
int cairn_crypt__hmac(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t len,
                      uint8_t out[32]);
/* CSPRNG bytes; -EIO. */
int cairn_crypt__random(void *p, size_t n);
/* Constant-time equality (CRYPTO_memcmp). */
bool cairn_crypt__equal(const void *a, const void *b, size_t n);

/* Seal plaintext (enc || body) as FORMAT.md §5.2 and append the result to out:
 * nonce[24] || ciphertext || tag[16]. Thread-safe. -EIO, -ENOMEM. */
int cairn_crypt__seal(const struct cairn_keys *k, int type, const struct cairn_id *id, uint8_t enc,
                      const void *body, size_t len, struct cairn_buf *out);
/* Verify and decrypt a sealed blob. On success *enc gets the enc byte and body_out
 * (replaced) the body; on failure body_out is left empty. -EBADMSG on a short input
 * or a tag mismatch. Thread-safe. */
int cairn_crypt__open(const struct cairn_keys *k, int type, const struct cairn_id *id,
                      const uint8_t *sealed, size_t slen, uint8_t *enc, struct cairn_buf *body_out);

/* Compress (zstd level, 0 = never), choose raw when not smaller or when the blob
 * starts with the magic number of a compressed format (gzip, PNG ...), and seal.
 * Appends to out. */
int cairn_blob__encode(const struct cairn_keys *k, int level, int type, const struct cairn_id *id,
                       const void *data, size_t len, struct cairn_buf *out);
/* Open, decompress into out (replaced) and verify (FORMAT.md §5.2 "Reading"):
 * expect_len is the raw length from the index or SIZE_MAX if unknown; max caps it.
 * The recomputed ID must equal id unless type is CAIRN_BLOB_PACKHDR. -EBADMSG;
 * out is left empty on failure. Thread-safe (zstd contexts are per thread). */
int cairn_blob__decode(const struct cairn_keys *k, int type, const struct cairn_id *id,
                       const uint8_t *sealed, size_t slen, size_t expect_len, size_t max,
                       struct cairn_buf *out);

/* scrypt(password, salt, 2^log2n, r, p) -> 32 bytes. -EINVAL for parameters out of
 * FORMAT.md §3.2 ranges or with 128 * r * p * N above 2 GiB, -ENOMEM. */
int cairn_crypt__scrypt(const char *pw, size_t pwlen, const uint8_t salt[32], int log2n, uint32_t r,
                        uint32_t p, uint8_t out[CAIRN_KEY_SIZE]);
/* The same with a salt of any length (RFC 7914 test vectors use "NaCl"). */
int cairn_crypt__scrypt_salt(const char *pw, size_t pwlen, const void *salt, size_t saltlen,
                             int log2n, uint32_t r, uint32_t p, uint8_t out[CAIRN_KEY_SIZE]);
/* How many scrypt derivations this process has started (for tests). */
uint64_t cairn_crypt__scrypt_runs(void);
/* AES-256-GCM with an explicit 12-byte nonce, for key files: out = ct || tag. */
int cairn_crypt__gcm_encrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                             size_t aadlen, const void *pt, size_t len, uint8_t *out);
/* -EKEYREJECTED on a tag mismatch. out gets len - 16 bytes. */
int cairn_crypt__gcm_decrypt(const uint8_t key[32], const uint8_t nonce[12], const void *aad,
                             size_t aadlen, const uint8_t *ct, size_t len, uint8_t *out);

#endif
