/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/crypt.c and store/blob.c: subkeys, HMAC, sealed blobs, scrypt (FORMAT.md §3, §5).
 */
#include "crypt.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <stdint.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <zstd.h>

#include "check.h"
#include "cleanup.h"

static const uint8_t master_a[CAIRN_KEY_SIZE] = { 1, 2, 3, 4, 5, 6, 7, 8 };
static const uint8_t master_b[CAIRN_KEY_SIZE] = { 9, 9, 9 };
static const uint8_t repo_a[CAIRN_REPO_ID_SIZE] = { 0xaa, 0xbb };
static const uint8_t repo_b[CAIRN_REPO_ID_SIZE] = { 0xaa, 0xbc };

static void keys_a(struct cairn_keys *k)
{
	CHECK_OK(cairn_crypt__derive(k, master_a, repo_a));
}

static void unhex_or_die(uint8_t *out, size_t n, const char *hex)
{
	CHECK_OK(cairn_unhex(out, n, hex));
}

static bool keys_equal(const struct cairn_keys *a, const struct cairn_keys *b)
{
	return memcmp(a, b, sizeof(*a)) == 0;
}

/* ---- derivation and hashes ---------------------------------------------- */

static void test_crypt__derive_deterministic(void)
{
	struct cairn_keys a1, a2, b, c;

	keys_a(&a1);
	keys_a(&a2);
	CHECK(keys_equal(&a1, &a2));
	CHECK(memcmp(a1.master, master_a, CAIRN_KEY_SIZE) == 0);
	/* the four subkeys differ from each other and from the master key */
	const uint8_t *sub[] = { a1.master, a1.enc, a1.id, a1.gear, a1.cfg };
	for (size_t i = 0; i < ARRAY_SIZE(sub); i++)
		for (size_t j = i + 1; j < ARRAY_SIZE(sub); j++)
			CHECK(memcmp(sub[i], sub[j], CAIRN_KEY_SIZE) != 0);
	CHECK_OK(cairn_crypt__derive(&b, master_a, repo_b));
	CHECK(memcmp(a1.enc, b.enc, CAIRN_KEY_SIZE) != 0);
	CHECK(memcmp(a1.id, b.id, CAIRN_KEY_SIZE) != 0);
	CHECK(memcmp(a1.cfg, b.cfg, CAIRN_KEY_SIZE) != 0);
	CHECK_OK(cairn_crypt__derive(&c, master_b, repo_a));
	CHECK(memcmp(a1.gear, c.gear, CAIRN_KEY_SIZE) != 0);
	cairn_crypt__wipe(&c);
	for (size_t i = 0; i < sizeof(c); i++)
		CHECK_EQ(((const uint8_t *)&c)[i], 0);
}

/* HKDF-SHA-256 per RFC 5869, recomputed by hand from HMAC: PRK = HMAC(salt, MK),
 * OKM = HMAC(PRK, label || 0x01). Pins the labels of FORMAT.md §3.1. */
static void test_crypt__derive_matches_rfc5869(void)
{
	struct cairn_keys k;
	uint8_t salt_key[CAIRN_KEY_SIZE] = { 0 }, prk[32], okm[32], msg[64];
	const char *label = "cairn v1 chunk-id";

	keys_a(&k);
	/* a 16-byte HMAC key equals itself zero-padded to 32 bytes */
	memcpy(salt_key, repo_a, sizeof(repo_a));
	cairn_crypt__hmac(salt_key, master_a, CAIRN_KEY_SIZE, prk);
	memcpy(msg, label, strlen(label));
	msg[strlen(label)] = 1;
	cairn_crypt__hmac(prk, msg, strlen(label) + 1, okm);
	CHECK(memcmp(okm, k.id, 32) == 0);
}

static void test_crypt__hmac_rfc4231(void)
{
	/* RFC 4231 test cases 1-4. Their keys are shorter than 32 bytes; HMAC
	 * zero-pads a short key, so padding it to 32 bytes gives the same MAC. */
	struct {
		uint8_t key[CAIRN_KEY_SIZE];
		uint8_t data[50];
		size_t len;
		const char *mac;
	} v[4] = { 0 };
	uint8_t want[32], got[32];

	memset(v[0].key, 0x0b, 20);
	memcpy(v[0].data, "Hi There", 8);
	v[0].len = 8;
	v[0].mac = "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7";
	memcpy(v[1].key, "Jefe", 4);
	memcpy(v[1].data, "what do ya want for nothing?", 28);
	v[1].len = 28;
	v[1].mac = "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843";
	memset(v[2].key, 0xaa, 20);
	memset(v[2].data, 0xdd, 50);
	v[2].len = 50;
	v[2].mac = "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe";
	for (int i = 0; i < 25; i++)
		v[3].key[i] = (uint8_t)(i + 1);
	memset(v[3].data, 0xcd, 50);
	v[3].len = 50;
	v[3].mac = "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b";
	for (size_t i = 0; i < ARRAY_SIZE(v); i++) {
		unhex_or_die(want, sizeof(want), v[i].mac);
		cairn_crypt__hmac(v[i].key, v[i].data, v[i].len, got);
		CHECK(memcmp(got, want, 32) == 0);
	}
}

/* Cross-check against OpenSSL's own HMAC for full-length keys and odd sizes. */
static void test_crypt__hmac_matches_openssl(void)
{
	static const size_t lens[] = { 0, 1, 55, 56, 63, 64, 65, 1000, 1 << 20 };
	_cleanup_free_ uint8_t *data = malloc(1 << 20);
	uint8_t key[32], got[32], want[32];
	unsigned wlen = 0;

	CHECK(data);
	check_random(data, 1 << 20, 1);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		check_random(key, sizeof(key), 100 + i);
		cairn_crypt__hmac(key, data, lens[i], got);
		CHECK(HMAC(EVP_sha256(), key, 32, data, lens[i], want, &wlen));
		CHECK_EQ(wlen, 32);
		CHECK(memcmp(got, want, 32) == 0);
	}
}

static void test_crypt__sha256(void)
{
	uint8_t got[32], want[32];

	unhex_or_die(want, 32, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	cairn_sha256("abc", 3, got);
	CHECK(memcmp(got, want, 32) == 0);
	unhex_or_die(want, 32, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	cairn_sha256("", 0, got);
	CHECK(memcmp(got, want, 32) == 0);
}

static void test_crypt__random_and_equal(void)
{
	uint8_t a[64] = { 0 }, b[64] = { 0 }, zero[64] = { 0 };

	CHECK_OK(cairn_crypt__random(a, sizeof(a)));
	CHECK_OK(cairn_crypt__random(b, sizeof(b)));
	CHECK(memcmp(a, zero, sizeof(a)) != 0);
	CHECK(memcmp(a, b, sizeof(a)) != 0);
	CHECK(cairn_crypt__equal(a, a, sizeof(a)));
	CHECK(!cairn_crypt__equal(a, b, sizeof(a)));
	memcpy(b, a, sizeof(a));
	b[63] ^= 1;
	CHECK(!cairn_crypt__equal(a, b, sizeof(a)));
	CHECK(cairn_crypt__equal(a, b, 63));
}

/* ---- sealed blobs (FORMAT.md §5.2) -------------------------------------- */

static void id_of(const struct cairn_keys *k, const void *p, size_t n, struct cairn_id *id)
{
	cairn_crypt__hmac(k->id, p, n, id->b);
}

static void test_crypt__seal_open_roundtrip(void)
{
	static const size_t lens[] = { 0, 1, 15, 16, 17, 1000, 1 << 20 };
	_cleanup_free_ uint8_t *data = malloc(1 << 20);
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;
	uint8_t enc = 0xff;

	CHECK(data);
	keys_a(&k);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		check_random(data, lens[i], i);
		id_of(&k, data, lens[i], &id);
		sealed.len = 0;
		CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_DATA, &id, (uint8_t)(i & 1), data,
		                           lens[i], &sealed));
		CHECK_EQ(sealed.len, lens[i] + CAIRN_SEAL_OVERHEAD);
		CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc,
		                           &body));
		CHECK_EQ(enc, i & 1);
		CHECK_EQ(body.len, lens[i]);
		CHECK(lens[i] == 0 || memcmp(body.data, data, lens[i]) == 0);
	}
}

/* Decrypts a sealed blob with OpenSSL directly, following FORMAT.md §5.2 to the
 * letter, so the layout is checked independently of cairn_crypt__open. */
static int open_by_spec_key(const uint8_t key[32], int type, const struct cairn_id *id,
                            const uint8_t *s, size_t slen, uint8_t *pt)
{
	uint8_t msg[13 + 12], kb[32], aad[34];
	unsigned kblen = 0;
	int n = 0, ok;

	memcpy(msg, "cairn v1 blob", 13);
	memcpy(msg + 13, s, 12);
	CHECK(HMAC(EVP_sha256(), key, 32, msg, sizeof(msg), kb, &kblen));
	aad[0] = 1;
	aad[1] = (uint8_t)type;
	memcpy(aad + 2, id->b, 32);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	CHECK(ctx);
	ok = EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kb, s + 12) &&
	     EVP_DecryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) &&
	     EVP_DecryptUpdate(ctx, pt, &n, s + 24, (int)(slen - 40)) &&
	     EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_SET_TAG, 16, (void *)(s + slen - 16)) &&
	     EVP_DecryptFinal_ex(ctx, pt + n, &n) > 0;
	EVP_CIPHER_CTX_free(ctx);
	return ok;
}

static int open_by_spec(const struct cairn_keys *k, int type, const struct cairn_id *id,
                        const uint8_t *s, size_t slen, uint8_t *pt)
{
	return open_by_spec_key(k->enc, type, id, s, slen, pt);
}

static void test_crypt__seal_format(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;
	uint8_t body[100], pt[101];

	keys_a(&k);
	check_random(body, sizeof(body), 7);
	id_of(&k, body, sizeof(body), &id);
	CHECK_OK(cairn_buf_put(&sealed, "prefix", 6)); /* seal appends */
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_TREE, &id, 1, body, sizeof(body), &sealed));
	CHECK_EQ(sealed.len, 6 + sizeof(body) + 41);
	CHECK(memcmp(sealed.data, "prefix", 6) == 0);
	CHECK(open_by_spec(&k, CAIRN_BLOB_TREE, &id, sealed.data + 6, sealed.len - 6, pt));
	CHECK_EQ(pt[0], 1);
	CHECK(memcmp(pt + 1, body, sizeof(body)) == 0);
	/* and the independent decryption does reject a wrong type */
	CHECK(!open_by_spec(&k, CAIRN_BLOB_DATA, &id, sealed.data + 6, sealed.len - 6, pt));
}

static void test_crypt__seal_nonce_random(void)
{
	_cleanup_buf_ struct cairn_buf a = CAIRN_BUF_INIT, b = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id = { { 0 } };
	const char text[] = "the same plaintext twice";

	keys_a(&k);
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_DATA, &id, 0, text, sizeof(text), &a));
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_DATA, &id, 0, text, sizeof(text), &b));
	CHECK_EQ(a.len, b.len);
	CHECK(memcmp(a.data, b.data, CAIRN_NONCE_SIZE) != 0);
	CHECK(memcmp(a.data + CAIRN_NONCE_SIZE, b.data + CAIRN_NONCE_SIZE,
	             a.len - CAIRN_NONCE_SIZE) != 0);
}

static void test_crypt__open_tampered(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;
	uint8_t data[60], enc;

	keys_a(&k);
	check_random(data, sizeof(data), 3);
	id_of(&k, data, sizeof(data), &id);
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_DATA, &id, 0, data, sizeof(data), &sealed));
	/* every byte: nonce, enc byte, ciphertext and tag */
	for (size_t i = 0; i < sealed.len; i++) {
		for (int bit = 0; bit < 8; bit += 7) {
			sealed.data[i] ^= (uint8_t)(1 << bit);
			CHECK_OK(cairn_buf_put(&body, "stale", 5));
			CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data,
			                            sealed.len, &enc, &body),
			          -EBADMSG);
			CHECK_EQ(body.len, 0); /* nothing unauthenticated is handed out */
			for (size_t j = 0; j < sizeof(data); j++)
				CHECK_EQ(body.data[j], 0); /* nor left in the buffer */
			sealed.data[i] ^= (uint8_t)(1 << bit);
		}
	}
	for (size_t n = 0; n < sealed.len; n++)
		CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, n, &enc, &body),
		          -EBADMSG);
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc, &body));
	CHECK(memcmp(body.data, data, sizeof(data)) == 0);
}

static void test_crypt__open_wrong_context(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct cairn_keys k, other;
	struct cairn_id id, id2;
	uint8_t enc;

	keys_a(&k);
	CHECK_OK(cairn_crypt__derive(&other, master_b, repo_a));
	id_of(&k, "x", 1, &id);
	id2 = id;
	id2.b[31] ^= 0x80;
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_SNAPSHOT, &id, 0, "x", 1, &sealed));
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_SNAPSHOT, &id, sealed.data, sealed.len, &enc,
	                           &body));
	for (int t = CAIRN_BLOB_DATA; t <= CAIRN_BLOB_PACKHDR; t++)
		if (t != CAIRN_BLOB_SNAPSHOT)
			CHECK_ERR(
			        cairn_crypt__open(&k, t, &id, sealed.data, sealed.len, &enc, &body),
			        -EBADMSG);
	CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_SNAPSHOT, &id2, sealed.data, sealed.len, &enc,
	                            &body),
	          -EBADMSG);
	CHECK_ERR(cairn_crypt__open(&other, CAIRN_BLOB_SNAPSHOT, &id, sealed.data, sealed.len, &enc,
	                            &body),
	          -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "authentication failed"));
	/* only the encryption subkey matters for opening */
	other = k;
	memset(other.id, 0, sizeof(other.id));
	CHECK_OK(cairn_crypt__open(&other, CAIRN_BLOB_SNAPSHOT, &id, sealed.data, sealed.len, &enc,
	                           &body));
	other.enc[0] ^= 1;
	CHECK_ERR(cairn_crypt__open(&other, CAIRN_BLOB_SNAPSHOT, &id, sealed.data, sealed.len, &enc,
	                            &body),
	          -EBADMSG);
	CHECK_ERR(cairn_crypt__seal(&k, 0, &id, 0, "x", 1, &sealed), -EINVAL);
	CHECK_ERR(cairn_crypt__seal(&k, 6, &id, 0, "x", 1, &sealed), -EINVAL);
	/* Index files are sealed under their own subkey (FORMAT.md §12): a key that
	 * may read them and not data holds K_idx without K_enc. */
	sealed.len = 0; /* seal appends */
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_INDEX, &id, 0, "x", 1, &sealed));
	other = k;
	memset(other.enc, 0, sizeof(other.enc));
	CHECK_OK(cairn_crypt__open(&other, CAIRN_BLOB_INDEX, &id, sealed.data, sealed.len, &enc,
	                           &body));
	other = k;
	memset(other.idx, 0, sizeof(other.idx));
	CHECK_ERR(cairn_crypt__open(&other, CAIRN_BLOB_INDEX, &id, sealed.data, sealed.len, &enc,
	                            &body),
	          -EBADMSG);
}

/* ---- sealed to the admin key (FORMAT.md §5.4) ----------------------------- */

static const char config_text[] = "cairn-repository 1\nid = aabb\n";

static void keys_wo(const struct cairn_keys *full, struct cairn_keys *wo)
{
	struct cairn_wo_secret sec;
	CHECK_OK(cairn_crypt__write_only_secret(&sec, full, config_text, sizeof(config_text) - 1));
	CHECK_OK(cairn_crypt__derive_write_only(wo, &sec, repo_a));
}

/* HKDF-SHA-256 by hand (RFC 5869, one block): HMAC(HMAC(salt, ikm), info || 1). */
static void hkdf_by_hand(uint8_t out[32], const uint8_t *salt, size_t saltlen,
                         const uint8_t ikm[32], const void *info, size_t infolen)
{
	uint8_t prk[32], msg[256];
	unsigned len = 0;
	CHECK(infolen < sizeof(msg));
	CHECK(HMAC(EVP_sha256(), salt, (int)saltlen, ikm, 32, prk, &len));
	memcpy(msg, info, infolen);
	msg[infolen] = 1;
	CHECK(HMAC(EVP_sha256(), prk, 32, msg, infolen + 1, out, &len));
}

/* X25519(priv, peer) with OpenSSL's EVP_PKEY directly. */
static void x25519_by_hand(uint8_t out[32], const uint8_t priv[32], const uint8_t peer[32])
{
	EVP_PKEY *a = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, 32);
	EVP_PKEY *b = EVP_PKEY_new_raw_public_key(EVP_PKEY_X25519, NULL, peer, 32);
	EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(a, NULL);
	size_t len = 32;
	CHECK(a && b && ctx);
	CHECK(EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, b) == 1 &&
	      EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32);
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(a);
	EVP_PKEY_free(b);
}

/* K_adm from the master key, and P_adm = X25519(K_adm, 9) (FORMAT.md §3.1); the
 * write-only secret holds exactly the keys of §3.3. */
static void test_crypt__admin_keys(void)
{
	struct cairn_keys k, wo;
	uint8_t want[32], pub[32];
	size_t len = 32;

	keys_a(&k);
	hkdf_by_hand(want, repo_a, sizeof(repo_a), master_a, "cairn v1 admin-x25519", 21);
	CHECK(memcmp(want, k.admin, 32) == 0);
	EVP_PKEY *key = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, k.admin, 32);
	CHECK(key && EVP_PKEY_get_raw_public_key(key, pub, &len) == 1);
	EVP_PKEY_free(key);
	CHECK(memcmp(pub, k.admin_pub, 32) == 0);
	CHECK(!k.write_only);

	keys_wo(&k, &wo);
	CHECK(wo.write_only);
	CHECK(memcmp(wo.id, k.id, 32) == 0 && memcmp(wo.gear, k.gear, 32) == 0 &&
	      memcmp(wo.idx, k.idx, 32) == 0 && memcmp(wo.admin_pub, k.admin_pub, 32) == 0);
	static const uint8_t zero[32];
	const uint8_t *none[] = { wo.master, wo.enc, wo.cfg, wo.admin };
	for (size_t i = 0; i < ARRAY_SIZE(none); i++)
		CHECK(memcmp(none[i], zero, 32) == 0);
	struct cairn_wo_secret sec;
	CHECK_OK(cairn_crypt__write_only_secret(&sec, &k, config_text, sizeof(config_text) - 1));
	CHECK_OK(cairn_sha256(config_text, sizeof(config_text) - 1, want));
	CHECK(memcmp(sec.config_sha256, want, 32) == 0);
	/* a write-only key cannot make another one */
	CHECK_ERR(cairn_crypt__write_only_secret(&sec, &wo, config_text, 3), -EACCES);
}

/* The layout of FORMAT.md §5.4, opened by hand: mark, E, then §5.2 under
 * K_w = HKDF(X25519(K_adm, E), repo id, label || E || P_adm). */
static void test_crypt__admin_seal_format(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_keys k, wo;
	struct cairn_id id;
	uint8_t body[100], pt[101], s[32], kw[32], info[24 + 64];

	keys_a(&k);
	keys_wo(&k, &wo);
	check_random(body, sizeof(body), 11);
	id_of(&k, body, sizeof(body), &id);
	CHECK_OK(cairn_crypt__seal(&wo, CAIRN_BLOB_TREE, &id, 1, body, sizeof(body), &sealed));
	CHECK_EQ(sealed.len, sizeof(body) + 81);
	CHECK(memcmp(sealed.data, "CAIRNSA1", 8) == 0);
	CHECK(memcmp(sealed.data + 8, wo.session_pub, 32) == 0);
	x25519_by_hand(s, k.admin, sealed.data + 8);
	memcpy(info, "cairn v1 sealed-to-admin", 24);
	memcpy(info + 24, sealed.data + 8, 32);
	memcpy(info + 56, k.admin_pub, 32);
	hkdf_by_hand(kw, repo_a, sizeof(repo_a), s, info, sizeof(info));
	CHECK(memcmp(kw, wo.session_key, 32) == 0);
	CHECK(open_by_spec_key(kw, CAIRN_BLOB_TREE, &id, sealed.data + 40, sealed.len - 40, pt));
	CHECK_EQ(pt[0], 1);
	CHECK(memcmp(pt + 1, body, sizeof(body)) == 0);
	/* K_enc opens nothing of it */
	CHECK(!open_by_spec(&k, CAIRN_BLOB_TREE, &id, sealed.data + 40, sealed.len - 40, pt));
}

/* What each kind of key seals how, and opens (FORMAT.md §5.2, §5.4, §6.2, §12). */
static void test_crypt__admin_seal_roundtrip(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, body = CAIRN_BUF_INIT;
	struct cairn_keys k, wo, wo2, other;
	struct cairn_id id = { { 7 } };
	uint8_t enc;

	keys_a(&k);
	keys_wo(&k, &wo);
	keys_wo(&k, &wo2);
	CHECK_OK(cairn_crypt__derive(&other, master_b, repo_a));
	CHECK(memcmp(wo.session_pub, wo2.session_pub, 32) != 0); /* one pair per session */
	for (int t = CAIRN_BLOB_DATA; t <= CAIRN_BLOB_SNAPSHOT; t++) {
		sealed.len = 0;
		CHECK_OK(cairn_crypt__seal(&wo, t, &id, 0, "content", 7, &sealed));
		CHECK_EQ(sealed.len, 7 + CAIRN_SEAL_OVERHEAD_MAX);
		CHECK_OK(cairn_crypt__open(&k, t, &id, sealed.data, sealed.len, &enc, &body));
		CHECK(body.len == 7 && memcmp(body.data, "content", 7) == 0);
		/* the writer itself cannot read it back, nor any other write-only key */
		CHECK_ERR(cairn_crypt__open(&wo, t, &id, sealed.data, sealed.len, &enc, &body),
		          -EACCES);
		CHECK(strstr(cairn_err_msg(), "can only add backups"));
		CHECK_EQ(body.len, 0);
		CHECK_ERR(cairn_crypt__open(&other, t, &id, sealed.data, sealed.len, &enc, &body),
		          -EBADMSG);
		CHECK_ERR(cairn_crypt__open(
		                  &k, t == CAIRN_BLOB_DATA ? CAIRN_BLOB_TREE : CAIRN_BLOB_DATA, &id,
		                  sealed.data, sealed.len, &enc, &body),
		          -EBADMSG);
		/* nor what a full key wrote */
		sealed.len = 0;
		CHECK_OK(cairn_crypt__seal(&k, t, &id, 0, "content", 7, &sealed));
		CHECK_EQ(sealed.len, 7 + CAIRN_SEAL_OVERHEAD);
		CHECK_ERR(cairn_crypt__open(&wo, t, &id, sealed.data, sealed.len, &enc, &body),
		          -EACCES);
	}
	/* Pack headers of a write-only key are under K_idx: both read them. */
	sealed.len = 0;
	CHECK_OK(cairn_crypt__seal(&wo, CAIRN_BLOB_PACKHDR, &id, 0, "hdr", 3, &sealed));
	CHECK_EQ(sealed.len, 3 + CAIRN_SEAL_OVERHEAD);
	CHECK_OK(cairn_crypt__open(&wo, CAIRN_BLOB_PACKHDR, &id, sealed.data, sealed.len, &enc,
	                           &body));
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_PACKHDR, &id, sealed.data, sealed.len, &enc,
	                           &body));
	CHECK(body.len == 3 && memcmp(body.data, "hdr", 3) == 0);
	/* A full key's headers are under K_enc: not for a write-only key. */
	sealed.len = 0;
	CHECK_OK(cairn_crypt__seal(&k, CAIRN_BLOB_PACKHDR, &id, 0, "hdr", 3, &sealed));
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_PACKHDR, &id, sealed.data, sealed.len, &enc,
	                           &body));
	CHECK_ERR(cairn_crypt__open(&wo, CAIRN_BLOB_PACKHDR, &id, sealed.data, sealed.len, &enc,
	                            &body),
	          -EBADMSG);
	/* Index files: K_idx for both. */
	sealed.len = 0;
	CHECK_OK(cairn_crypt__seal(&wo, CAIRN_BLOB_INDEX, &id, 0, "idx", 3, &sealed));
	CHECK_OK(
	        cairn_crypt__open(&k, CAIRN_BLOB_INDEX, &id, sealed.data, sealed.len, &enc, &body));
	CHECK_OK(cairn_crypt__open(&wo, CAIRN_BLOB_INDEX, &id, sealed.data, sealed.len, &enc,
	                           &body));
	cairn_crypt__wipe(&wo);
	cairn_crypt__wipe(&wo2);
}

static void test_crypt__admin_seal_tampered(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, body = CAIRN_BUF_INIT;
	struct cairn_keys k, wo;
	struct cairn_id id = { { 9 } };
	uint8_t data[40], enc;

	keys_a(&k);
	keys_wo(&k, &wo);
	check_random(data, sizeof(data), 5);
	CHECK_OK(cairn_crypt__seal(&wo, CAIRN_BLOB_DATA, &id, 0, data, sizeof(data), &sealed));
	/* every byte: mark, E, nonce, enc byte, ciphertext and tag */
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.data[i] ^= 0x01;
		CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc,
		                            &body),
		          -EBADMSG);
		CHECK_EQ(body.len, 0);
		sealed.data[i] ^= 0x01;
	}
	for (size_t n = 0; n < sealed.len; n++)
		CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, n, &enc, &body),
		          -EBADMSG);
	/* E of low order: X25519 gives all zeros, refused */
	uint8_t e[32];
	memcpy(e, sealed.data + 8, 32);
	memset(sealed.data + 8, 0, 32);
	CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc, &body),
	          -EBADMSG);
	sealed.data[8] = 1; /* the point 1 has order 4 */
	CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc, &body),
	          -EBADMSG);
	memcpy(sealed.data + 8, e, 32);
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, &enc, &body));
	CHECK(memcmp(body.data, data, sizeof(data)) == 0);
	/* a write-only key whose admin public key is of low order cannot seal */
	struct cairn_wo_secret sec;
	struct cairn_keys bad;
	CHECK_OK(cairn_crypt__write_only_secret(&sec, &k, config_text, 3));
	memset(sec.admin_pub, 0, sizeof(sec.admin_pub));
	CHECK_ERR(cairn_crypt__derive_write_only(&bad, &sec, repo_a), -EBADMSG);
}

/* A blob of FORMAT.md §5.2 whose random nonce happens to begin with the mark
 * (written before §5.4 existed): a full key reads it after the §5.4 attempt. */
static void test_crypt__admin_mark_fallback(void)
{
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id = { { 3 } };
	uint8_t blob[24 + 1 + 64 + 16], msg[25], kb[32], aad[34], pt[65], enc;
	unsigned kblen = 0;
	int n = 0;

	keys_a(&k);
	memcpy(blob, "CAIRNSA1", 8);
	check_random(blob + 8, 16, 21);
	memcpy(msg, "cairn v1 blob", 13);
	memcpy(msg + 13, blob, 12);
	CHECK(HMAC(EVP_sha256(), k.enc, 32, msg, sizeof(msg), kb, &kblen));
	aad[0] = 1;
	aad[1] = CAIRN_BLOB_SNAPSHOT;
	memcpy(aad + 2, id.b, 32);
	pt[0] = 0;
	check_random(pt + 1, 64, 22);
	EVP_CIPHER_CTX *ctx = EVP_CIPHER_CTX_new();
	CHECK(ctx && EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, kb, blob + 12) &&
	      EVP_EncryptUpdate(ctx, NULL, &n, aad, sizeof(aad)) &&
	      EVP_EncryptUpdate(ctx, blob + 24, &n, pt, sizeof(pt)) &&
	      EVP_EncryptFinal_ex(ctx, blob + 24 + n, &n) &&
	      EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, blob + 24 + 65));
	EVP_CIPHER_CTX_free(ctx);
	CHECK_OK(cairn_crypt__open(&k, CAIRN_BLOB_SNAPSHOT, &id, blob, sizeof(blob), &enc, &body));
	CHECK(body.len == 64 && memcmp(body.data, pt + 1, 64) == 0);
	blob[sizeof(blob) - 1] ^= 1;
	CHECK_ERR(cairn_crypt__open(&k, CAIRN_BLOB_SNAPSHOT, &id, blob, sizeof(blob), &enc, &body),
	          -EBADMSG);
}

/* Readers keep the K_w of the last sessions: blobs of more sessions than the
 * cache holds, read by several threads at once, all open. */
struct session_blobs {
	struct cairn_keys *full;
	struct cairn_buf sealed[24];
};

static void *read_sessions(void *arg)
{
	struct session_blobs *sb = arg;
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	struct cairn_id id = { { 1 } };
	uint8_t enc;
	for (int round = 0; round < 20; round++)
		for (size_t i = 0; i < ARRAY_SIZE(sb->sealed); i++)
			if (cairn_crypt__open(sb->full, CAIRN_BLOB_DATA, &id, sb->sealed[i].data,
			                      sb->sealed[i].len, &enc, &body) < 0 ||
			    body.len != 1 || body.data[0] != (uint8_t)i)
				return (void *)1;
	return NULL;
}

static void test_crypt__admin_seal_sessions(void)
{
	struct session_blobs sb = { 0 };
	struct cairn_keys k, wo;
	struct cairn_id id = { { 1 } };
	pthread_t th[4];
	void *ret;

	keys_a(&k);
	sb.full = &k;
	for (size_t i = 0; i < ARRAY_SIZE(sb.sealed); i++) {
		uint8_t b = (uint8_t)i;
		keys_wo(&k, &wo);
		CHECK_OK(cairn_crypt__seal(&wo, CAIRN_BLOB_DATA, &id, 0, &b, 1, &sb.sealed[i]));
	}
	for (size_t i = 0; i < ARRAY_SIZE(th); i++)
		CHECK_EQ(pthread_create(&th[i], NULL, read_sessions, &sb), 0);
	for (size_t i = 0; i < ARRAY_SIZE(th); i++) {
		CHECK_EQ(pthread_join(th[i], &ret), 0);
		CHECK(ret == NULL);
	}
	for (size_t i = 0; i < ARRAY_SIZE(sb.sealed); i++)
		cairn_buf_release(&sb.sealed[i]);
}

static void test_crypt__gcm_keyfile_helpers(void)
{
	uint8_t key[32], nonce[12], pt[32], ct[48], back[32];
	const char aad[] = "header bytes";

	check_random(key, sizeof(key), 1);
	check_random(nonce, sizeof(nonce), 2);
	check_random(pt, sizeof(pt), 3);
	CHECK_OK(cairn_crypt__gcm_encrypt(key, nonce, aad, sizeof(aad), pt, sizeof(pt), ct));
	CHECK(memcmp(ct, pt, sizeof(pt)) != 0);
	CHECK_OK(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad), ct, sizeof(ct), back));
	CHECK(memcmp(back, pt, sizeof(pt)) == 0);
	for (size_t i = 0; i < sizeof(ct); i++) {
		ct[i] ^= 4;
		CHECK_ERR(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad), ct, sizeof(ct),
		                                   back),
		          -EKEYREJECTED);
		ct[i] ^= 4;
	}
	CHECK_ERR(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad) - 1, ct, sizeof(ct), back),
	          -EKEYREJECTED);
	nonce[0] ^= 1;
	CHECK_ERR(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad), ct, sizeof(ct), back),
	          -EKEYREJECTED);
	nonce[0] ^= 1;
	key[31] ^= 1;
	CHECK_ERR(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad), ct, sizeof(ct), back),
	          -EKEYREJECTED);
	CHECK_ERR(cairn_crypt__gcm_decrypt(key, nonce, aad, sizeof(aad), ct, 15, back), -EBADMSG);
}

/* ---- scrypt (FORMAT.md §3.2) -------------------------------------------- */

static void test_crypt__scrypt_rfc7914(void)
{
	uint8_t got[32], want[32], salt[32] = { 0 };

	/* RFC 7914 §12, third vector; scrypt ends in PBKDF2, whose first 32 output
	 * bytes do not depend on the requested length. */
	unhex_or_die(want, 32, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162");
	CHECK_OK(cairn_crypt__scrypt_salt("password", 8, "NaCl", 4, 10, 8, 16, got));
	CHECK(memcmp(got, want, 32) == 0);
	/* the 32-byte-salt form agrees with the general one */
	memcpy(salt, "NaCl", 4);
	CHECK_OK(cairn_crypt__scrypt("password", 8, salt, 10, 8, 16, got));
	CHECK_OK(cairn_crypt__scrypt_salt("password", 8, salt, 32, 10, 8, 16, want));
	CHECK(memcmp(got, want, 32) == 0);
	CHECK_OK(cairn_crypt__scrypt("passwore", 8, salt, 10, 8, 16, want));
	CHECK(memcmp(got, want, 32) != 0);
	CHECK_OK(cairn_crypt__scrypt("", 0, salt, 10, 1, 1, got)); /* an empty password works */
}

static void test_crypt__scrypt_ranges(void)
{
	uint8_t out[32], salt[32] = { 0 };

	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 9, 8, 1, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 25, 8, 1, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 10, 0, 1, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 10, 33, 1, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 10, 8, 0, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 10, 8, 17, out), -EINVAL);
	/* each in range, together far beyond 2 GiB */
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 24, 32, 16, out), -EINVAL);
	CHECK_ERR(cairn_crypt__scrypt("pw", 2, salt, 20, 8, 3, out), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "2 GiB"));
	CHECK_OK(cairn_crypt__scrypt("pw", 2, salt, 10, 32, 1, out));
}

/* ---- blob encode/decode ------------------------------------------------- */

/* The enc byte of a sealed blob, read back through cairn_crypt__open. */
static uint8_t enc_of(const struct cairn_keys *k, int type, const struct cairn_id *id,
                      const struct cairn_buf *sealed)
{
	_cleanup_buf_ struct cairn_buf body = CAIRN_BUF_INIT;
	uint8_t enc = 0xff;

	CHECK_OK(cairn_crypt__open(k, type, id, sealed->data, sealed->len, &enc, &body));
	return enc;
}

static void fill_text(uint8_t *p, size_t n)
{
	static const char words[] = "the quick brown fox jumps over the lazy dog 0123456789 ";
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)words[(i * 7 + i / 97) % (sizeof(words) - 1)];
}

static void test_crypt__blob_roundtrip_compressible(void)
{
	const size_t n = 300000;
	_cleanup_free_ uint8_t *data = malloc(n);
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;

	CHECK(data);
	fill_text(data, n);
	keys_a(&k);
	id_of(&k, data, n, &id);
	CHECK_OK(cairn_blob__encode(&k, 3, CAIRN_BLOB_DATA, &id, data, n, &sealed));
	CHECK(sealed.len < n / 4);
	CHECK_EQ(enc_of(&k, CAIRN_BLOB_DATA, &id, &sealed), 1);
	CHECK_OK(cairn_buf_put(&out, "old content", 11)); /* replaced */
	CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, n, n, &out));
	CHECK_EQ(out.len, n);
	CHECK(memcmp(out.data, data, n) == 0);
	CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, SIZE_MAX, n,
	                            &out));
	CHECK_EQ(out.len, n);
	/* level 0 stores raw even when zstd would help */
	sealed.len = 0;
	CHECK_OK(cairn_blob__encode(&k, 0, CAIRN_BLOB_DATA, &id, data, n, &sealed));
	CHECK_EQ(sealed.len, n + CAIRN_SEAL_OVERHEAD);
	CHECK_EQ(enc_of(&k, CAIRN_BLOB_DATA, &id, &sealed), 0);
	CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, n, n, &out));
	CHECK(out.len == n && memcmp(out.data, data, n) == 0);
	CHECK_ERR(cairn_blob__encode(&k, 20, CAIRN_BLOB_DATA, &id, data, n, &sealed), -EINVAL);
	CHECK_ERR(cairn_blob__encode(&k, -1, CAIRN_BLOB_DATA, &id, data, n, &sealed), -EINVAL);
}

/* A blob that starts like a gzip or PNG file is stored raw without asking zstd
 * (compressed already; the magic alone decides); the same bytes behind any other
 * start are compressed. */
static void test_crypt__blob_compressed_formats(void)
{
	static const uint8_t magics[][6] = {
		{ 0x1f, 0x8b, 8, 0, 0, 0 },       { 0x89, 'P', 'N', 'G', '\r', '\n' },
		{ 0x28, 0xb5, 0x2f, 0xfd, 0, 0 }, { 0xfd, '7', 'z', 'X', 'Z', 0 },
		{ 'B', 'Z', 'h', '9', 0, 0 },     { 'w', 'O', 'F', '2', 0, 0 },
	};
	const size_t n = 20000;
	_cleanup_free_ uint8_t *data = malloc(n);
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;

	CHECK(data);
	keys_a(&k);
	fill_text(data, n);
	for (size_t i = 0; i < ARRAY_SIZE(magics); i++) {
		memcpy(data, magics[i], sizeof(magics[i]));
		id_of(&k, data, n, &id);
		sealed.len = 0;
		CHECK_OK(cairn_blob__encode(&k, 3, CAIRN_BLOB_DATA, &id, data, n, &sealed));
		CHECK_EQ(sealed.len, n + CAIRN_SEAL_OVERHEAD);
		CHECK_EQ(enc_of(&k, CAIRN_BLOB_DATA, &id, &sealed), 0);
		CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, n, n,
		                            &out));
		CHECK(out.len == n && memcmp(out.data, data, n) == 0);
	}
	/* a zip (.jar: its headers compress) and a near miss of the gzip magic */
	static const uint8_t others[][4] = { { 'P', 'K', 3, 4 }, { 0x1f, 0x8c, 0, 0 } };
	for (size_t i = 0; i < ARRAY_SIZE(others); i++) {
		memcpy(data, others[i], sizeof(others[i]));
		id_of(&k, data, n, &id);
		sealed.len = 0;
		CHECK_OK(cairn_blob__encode(&k, 3, CAIRN_BLOB_DATA, &id, data, n, &sealed));
		CHECK(sealed.len < n / 4);
		CHECK_EQ(enc_of(&k, CAIRN_BLOB_DATA, &id, &sealed), 1);
	}
	/* the magic alone, or less, is simply short */
	sealed.len = 0;
	CHECK_OK(cairn_blob__encode(&k, 3, CAIRN_BLOB_DATA, &id, magics[0], 2, &sealed));
	CHECK_EQ(enc_of(&k, CAIRN_BLOB_DATA, &id, &sealed), 0);
}

static void test_crypt__blob_roundtrip_random(void)
{
	static const size_t lens[] = { 0, 1, 2, 100, 65536, 1 << 20 };
	_cleanup_free_ uint8_t *data = malloc(1 << 20);
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;

	CHECK(data);
	keys_a(&k);
	for (size_t i = 0; i < ARRAY_SIZE(lens); i++) {
		size_t n = lens[i];
		check_random(data, n, 40 + i);
		id_of(&k, data, n, &id);
		sealed.len = 0;
		CHECK_OK(cairn_blob__encode(&k, 19, CAIRN_BLOB_TREE, &id, data, n, &sealed));
		/* random data does not compress: stored raw (FORMAT.md §5.2) */
		CHECK_EQ(sealed.len, n + CAIRN_SEAL_OVERHEAD);
		CHECK_EQ(enc_of(&k, CAIRN_BLOB_TREE, &id, &sealed), 0);
		CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_TREE, &id, sealed.data, sealed.len, n,
		                            64u << 20, &out));
		CHECK_EQ(out.len, n);
		CHECK(n == 0 || memcmp(out.data, data, n) == 0);
	}
}

/* Size checks for both encodings: the raw length from the index must match,
 * and nothing may decompress past the cap. */
static void check_size_limits(const struct cairn_keys *k, int level, const uint8_t *data, size_t n)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_id id;

	id_of(k, data, n, &id);
	CHECK_OK(cairn_blob__encode(k, level, CAIRN_BLOB_DATA, &id, data, n, &sealed));
	CHECK_ERR(cairn_blob__decode(k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, n - 1, n,
	                             &out),
	          -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "decompressed size mismatch"));
	CHECK_EQ(out.len, 0);
	CHECK_ERR(cairn_blob__decode(k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, n + 1, n + 1,
	                             &out),
	          -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "decompressed size mismatch"));
	/* over the type's maximum, with the raw length unknown */
	CHECK_ERR(cairn_blob__decode(k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, SIZE_MAX,
	                             n - 1, &out),
	          -EBADMSG);
	CHECK_OK(cairn_blob__decode(k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len, SIZE_MAX, n,
	                            &out));
	CHECK_EQ(out.len, n);
}

static void test_crypt__blob_size_mismatch(void)
{
	uint8_t data[5000];
	struct cairn_keys k;

	keys_a(&k);
	fill_text(data, sizeof(data));
	check_size_limits(&k, 3, data, sizeof(data));
	check_size_limits(&k, 0, data, sizeof(data));
}

static void test_crypt__blob_id_mismatch(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id, zero = { { 0 } };
	uint8_t data[3000];

	keys_a(&k);
	fill_text(data, sizeof(data));
	/* sealed consistently under an ID that is not the HMAC of the content */
	id_of(&k, "something else", 14, &id);
	for (int level = 0; level <= 3; level += 3) {
		sealed.len = 0;
		CHECK_OK(cairn_blob__encode(&k, level, CAIRN_BLOB_DATA, &id, data, sizeof(data),
		                            &sealed));
		CHECK_ERR(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len,
		                             sizeof(data), sizeof(data), &out),
		          -EBADMSG);
		CHECK(strstr(cairn_err_msg(), "id mismatch"));
		CHECK_EQ(out.len, 0);
	}
	/* pack headers carry the all-zero ID and are not checked against content */
	sealed.len = 0;
	CHECK_OK(cairn_blob__encode(&k, 0, CAIRN_BLOB_PACKHDR, &zero, data, sizeof(data), &sealed));
	CHECK_OK(cairn_blob__decode(&k, CAIRN_BLOB_PACKHDR, &zero, sealed.data, sealed.len,
	                            SIZE_MAX, sizeof(data), &out));
	CHECK(out.len == sizeof(data) && memcmp(out.data, data, sizeof(data)) == 0);
	/* ... but the same bytes as a data blob are */
	CHECK_ERR(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &zero, sealed.data, sealed.len, SIZE_MAX,
	                             sizeof(data), &out),
	          -EBADMSG);
}

static void test_crypt__blob_tampered(void)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_keys k;
	struct cairn_id id;
	uint8_t data[2000];

	keys_a(&k);
	fill_text(data, sizeof(data));
	id_of(&k, data, sizeof(data), &id);
	CHECK_OK(cairn_blob__encode(&k, 3, CAIRN_BLOB_DATA, &id, data, sizeof(data), &sealed));
	for (size_t i = 0; i < sealed.len; i++) {
		sealed.data[i] ^= 0x10;
		CHECK_ERR(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len,
		                             sizeof(data), sizeof(data), &out),
		          -EBADMSG);
		sealed.data[i] ^= 0x10;
	}
	CHECK(strstr(cairn_err_msg(), "authentication failed"));
	for (size_t n = 0; n < sealed.len; n += 7)
		CHECK_ERR(cairn_blob__decode(&k, CAIRN_BLOB_DATA, &id, sealed.data, n, SIZE_MAX,
		                             sizeof(data), &out),
		          -EBADMSG);
}

/* Authentic but malformed bodies: only a key holder could write these, and
 * decode must still refuse them cleanly. */
static void check_bad_body(const struct cairn_keys *k, uint8_t enc, const void *body, size_t n,
                           const char *msg)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_id zero = { { 0 } };

	CHECK_OK(cairn_crypt__seal(k, CAIRN_BLOB_PACKHDR, &zero, enc, body, n, &sealed));
	CHECK_ERR(cairn_blob__decode(k, CAIRN_BLOB_PACKHDR, &zero, sealed.data, sealed.len,
	                             SIZE_MAX, 1 << 20, &out),
	          -EBADMSG);
	CHECK(strstr(cairn_err_msg(), msg));
}

static void test_crypt__blob_bad_bodies(void)
{
	uint8_t data[4000], frame[8000], two[16000];
	struct cairn_keys k;

	keys_a(&k);
	fill_text(data, sizeof(data));
	size_t fl = ZSTD_compress(frame, sizeof(frame), data, sizeof(data), 3);
	CHECK(!ZSTD_isError(fl));
	check_bad_body(&k, 2, data, 10, "unknown encoding");
	check_bad_body(&k, 1, data, 10, "not a zstd frame");
	check_bad_body(&k, 1, "", 0, "empty");
	check_bad_body(&k, 1, frame, fl - 1, "zstd");
	/* two frames where the format allows one */
	memcpy(two, frame, fl);
	memcpy(two + fl, frame, fl);
	check_bad_body(&k, 1, two, 2 * fl, "exactly one zstd frame");
	/* a frame that does not declare its size cannot be capped in advance */
	ZSTD_CCtx *c = ZSTD_createCCtx();
	CHECK(c);
	CHECK(!ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)));
	ZSTD_outBuffer ob = { frame, sizeof(frame), 0 };
	ZSTD_inBuffer ib = { data, sizeof(data), 0 };
	CHECK_EQ(ZSTD_compressStream2(c, &ob, &ib, ZSTD_e_end), 0);
	ZSTD_freeCCtx(c);
	check_bad_body(&k, 1, frame, ob.pos, "does not declare its size");
	/* a frame larger than the cap (1 MiB here) is refused before decompressing */
	_cleanup_free_ uint8_t *big = calloc(1, (1 << 20) + 1);
	CHECK(big);
	fl = ZSTD_compress(frame, sizeof(frame), big, (1 << 20) + 1, 1);
	CHECK(!ZSTD_isError(fl));
	check_bad_body(&k, 1, frame, fl, "decompressed size mismatch");
}

/* Several threads encode and decode at once, each with its own zstd contexts;
 * the thread-exit destructor frees them (valgrind checks for leaks). */
static void *thread_roundtrip(void *arg)
{
	const struct cairn_keys *k = arg;
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	uint8_t data[20000];
	struct cairn_id id;

	for (int i = 0; i < 20; i++) {
		fill_text(data, sizeof(data));
		data[i] = (uint8_t)i;
		id_of(k, data, sizeof(data), &id);
		sealed.len = 0;
		if (cairn_blob__encode(k, 1 + i % 5, CAIRN_BLOB_DATA, &id, data, sizeof(data),
		                       &sealed) < 0 ||
		    cairn_blob__decode(k, CAIRN_BLOB_DATA, &id, sealed.data, sealed.len,
		                       sizeof(data), sizeof(data), &out) < 0 ||
		    out.len != sizeof(data) || memcmp(out.data, data, sizeof(data)) != 0)
			return (void *)1;
	}
	return NULL;
}

static void test_crypt__blob_threads(void)
{
	pthread_t th[4];
	struct cairn_keys k;
	void *ret;

	keys_a(&k);
	for (size_t i = 0; i < ARRAY_SIZE(th); i++)
		CHECK_EQ(pthread_create(&th[i], NULL, thread_roundtrip, &k), 0);
	for (size_t i = 0; i < ARRAY_SIZE(th); i++) {
		CHECK_EQ(pthread_join(th[i], &ret), 0);
		CHECK(ret == NULL);
	}
}

/* ---- out of memory: an error, never abort() (it would kill cairnfs) ------ */

static _Atomic bool fail_alloc;

static void *test_malloc(size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return fail_alloc ? NULL : malloc(n);
}

static void *test_realloc(void *p, size_t n, const char *file, int line)
{
	(void)file, (void)line;
	return fail_alloc ? NULL : realloc(p, n);
}

static void test_free(void *p, const char *file, int line)
{
	(void)file, (void)line;
	free(p);
}

static void test_crypt__out_of_memory(void)
{
	uint8_t key[CAIRN_KEY_SIZE] = { 1 }, out[32];
	/* Algorithms are fetched at the first use: before the allocator fails. */
	CHECK_OK(cairn_crypt__hmac(key, "abc", 3, out));
	CHECK_OK(cairn_sha256("abc", 3, out));
	fail_alloc = true;
	int h = cairn_crypt__hmac(key, "abc", 3, out), s = cairn_sha256("abc", 3, out);
	fail_alloc = false;
	CHECK_EQ(h, -ENOMEM);
	CHECK_EQ(s, -ENOMEM);
}

int main(void)
{
	/* Before OpenSSL allocates anything, or it refuses. */
	CHECK(CRYPTO_set_mem_functions(test_malloc, test_realloc, test_free) == 1);
	RUN(test_crypt__derive_deterministic);
	RUN(test_crypt__derive_matches_rfc5869);
	RUN(test_crypt__hmac_rfc4231);
	RUN(test_crypt__hmac_matches_openssl);
	RUN(test_crypt__sha256);
	RUN(test_crypt__random_and_equal);
	RUN(test_crypt__seal_open_roundtrip);
	RUN(test_crypt__seal_format);
	RUN(test_crypt__seal_nonce_random);
	RUN(test_crypt__open_tampered);
	RUN(test_crypt__open_wrong_context);
	RUN(test_crypt__admin_keys);
	RUN(test_crypt__admin_seal_format);
	RUN(test_crypt__admin_seal_roundtrip);
	RUN(test_crypt__admin_seal_tampered);
	RUN(test_crypt__admin_mark_fallback);
	RUN(test_crypt__admin_seal_sessions);
	RUN(test_crypt__gcm_keyfile_helpers);
	RUN(test_crypt__scrypt_rfc7914);
	RUN(test_crypt__scrypt_ranges);
	RUN(test_crypt__blob_roundtrip_compressible);
	RUN(test_crypt__blob_compressed_formats);
	RUN(test_crypt__blob_roundtrip_random);
	RUN(test_crypt__blob_size_mismatch);
	RUN(test_crypt__blob_id_mismatch);
	RUN(test_crypt__blob_tampered);
	RUN(test_crypt__blob_bad_bodies);
	RUN(test_crypt__blob_threads);
	RUN(test_crypt__out_of_memory);
	return 0;
}
