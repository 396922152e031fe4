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
/* A blob sealed to the admin key (FORMAT.md §5.4): mark and ephemeral public key first. */
#define CAIRN_ADMIN_SEAL_MARK "CAIRNSA1"
#define CAIRN_ADMIN_SEAL_MARK_SIZE 8
#define CAIRN_X25519_SIZE 32
#define CAIRN_ADMIN_SEAL_HEAD (CAIRN_ADMIN_SEAL_MARK_SIZE + CAIRN_X25519_SIZE)
#define CAIRN_SEAL_OVERHEAD_MAX (CAIRN_ADMIN_SEAL_HEAD + CAIRN_SEAL_OVERHEAD) /* 81 */
#define CAIRN_SEAL_CACHE_SLOTS 16

/* What a write-only key file wraps (FORMAT.md §3.2, §3.3), in this order. */
struct cairn_wo_secret {
	uint8_t id[CAIRN_KEY_SIZE];
	uint8_t gear[CAIRN_KEY_SIZE];
	uint8_t idx[CAIRN_KEY_SIZE];
	uint8_t config_sha256[32];
	uint8_t admin_pub[CAIRN_X25519_SIZE];
};
#define CAIRN_WO_SECRET_SIZE (5 * 32)

/*
 * The working keys of an unlocked repository (FORMAT.md §3.1). Embedded by repo.
 * A full key has them all; a write-only key (FORMAT.md §3.3) only id, gear, idx
 * and admin_pub, plus a session it seals with (§5.4), and the rest is zero.
 * cairn_crypt__open() updates the cache of a full key through a const pointer:
 * never define a struct cairn_keys const.
 */
struct cairn_keys {
	bool write_only;
	uint8_t master[CAIRN_KEY_SIZE];
	uint8_t enc[CAIRN_KEY_SIZE];
	uint8_t id[CAIRN_KEY_SIZE];
	uint8_t gear[CAIRN_KEY_SIZE];
	uint8_t cfg[CAIRN_KEY_SIZE];
	uint8_t idx[CAIRN_KEY_SIZE];   /* seals index files (FORMAT.md §12) */
	uint8_t prune[CAIRN_KEY_SIZE]; /* MACs prune records (§13); full keys only */
	uint8_t admin[CAIRN_KEY_SIZE]; /* K_adm, the admin's X25519 private key */
	uint8_t admin_pub[CAIRN_X25519_SIZE];
	uint8_t repo_id[CAIRN_REPO_ID_SIZE];
	/* Write-only: this session's ephemeral public key E and sealing key K_w. */
	uint8_t session_pub[CAIRN_X25519_SIZE];
	uint8_t session_key[CAIRN_KEY_SIZE];
	/* Full: the K_w of the last sessions read (E -> K_w); protected by a lock
	 * in crypt.c. */
	struct {
		uint8_t e[CAIRN_X25519_SIZE];
		uint8_t k[CAIRN_KEY_SIZE];
		bool used;
	} cache[CAIRN_SEAL_CACHE_SLOTS];
	unsigned cache_next;
};

/* HKDF-SHA-256 of all subkeys from the master key; salt = repo id; and the
 * admin's X25519 pair. -EIO on an OpenSSL failure. */
int cairn_crypt__derive(struct cairn_keys *out, const uint8_t master[CAIRN_KEY_SIZE],
                        const uint8_t repo_id[CAIRN_REPO_ID_SIZE]);
/* The keys of a write-only key (its secret from the key file), with a fresh
 * session to seal to the admin (FORMAT.md §5.4). -EIO, -ENOMEM. */
int cairn_crypt__derive_write_only(struct cairn_keys *out, const struct cairn_wo_secret *s,
                                   const uint8_t repo_id[CAIRN_REPO_ID_SIZE]);
/* The secret a write-only key file of a full key's repository wraps; config is
 * the config file's text. */
int cairn_crypt__write_only_secret(struct cairn_wo_secret *out, const struct cairn_keys *full,
                                   const void *config, size_t config_len);
/* Wipe keys (OPENSSL_cleanse). */
void cairn_crypt__wipe(struct cairn_keys *k);
/* The message (and -EACCES) of a read a write-only key may not do. */
#define CAIRN_WRITE_ONLY_REFUSAL \
	"this key can only add backups; reading and changing them need an admin key"
int cairn_crypt__refuse_write_only(void);
/* HMAC-SHA-256; thread-safe. -ENOMEM (a digest context), -EIO. */
int cairn_crypt__hmac(const uint8_t key[CAIRN_KEY_SIZE], const void *data, size_t len,
                      uint8_t out[32]);
/* SHA-256 of the first size bytes of fd (read with pread). -EIO, -ENOMEM. */
int cairn_crypt__sha256_fd(int fd, uint64_t size, uint8_t out[32]);
/* CSPRNG bytes; -EIO. */
int cairn_crypt__random(void *p, size_t n);
/* Constant-time equality (CRYPTO_memcmp). */
bool cairn_crypt__equal(const void *a, const void *b, size_t n);

/* Seal plaintext (enc || body) as FORMAT.md §5.2 and append the result to out:
 * nonce[24] || ciphertext || tag[16]; with a write-only key, a data, tree or
 * snapshot blob as §5.4 (mark, E, then that). Thread-safe. -EIO, -ENOMEM. */
int cairn_crypt__seal(const struct cairn_keys *k, int type, const struct cairn_id *id, uint8_t enc,
                      const void *body, size_t len, struct cairn_buf *out);
/* Verify and decrypt a sealed blob (FORMAT.md §5.2, §5.4). On success *enc gets
 * the enc byte and body_out (replaced) the body; on failure body_out is left
 * empty. -EBADMSG on a short input or a tag mismatch; -EACCES for a data, tree
 * or snapshot blob and a write-only key. Thread-safe. */
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
