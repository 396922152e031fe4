/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for store/keyfile.c: key files under keys/ (FORMAT.md §3.2). */
#include "keyfile.h"

#include <stdint.h>
#include <string.h>
#include <time.h>

#include "check.h"
#include "cleanup.h"

/* The cheapest scrypt the format allows, so each unwrap takes milliseconds. */
#define FAST_LOG2N 10
#define LABEL "alice@host"
#define FIXED_LEN 121 /* every field but the label */

static const uint8_t master[CAIRN_KEY_SIZE] = { 0xde, 0xad, 0xbe, 0xef, 1, 2, 3 };

static void make(struct cairn_buf *kf, const char *pw, const char *label)
{
	CHECK_OK(cairn_keyfile__create(kf, master, pw, strlen(pw), FAST_LOG2N, label));
}

static void test_keyfile__roundtrip(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	uint8_t got[CAIRN_KEY_SIZE] = { 0 };
	time_t before = time(NULL);

	make(&kf, "correct horse", LABEL);
	CHECK_EQ(kf.len, FIXED_LEN + strlen(LABEL));
	CHECK(kf.len <= CAIRN_KEYFILE_MAX);
	/* the layout of FORMAT.md §3.2, byte by byte */
	CHECK(memcmp(kf.data, "CAIRNKEY", 8) == 0);
	CHECK_EQ(kf.data[8], 1);
	CHECK_EQ(kf.data[9], 1);
	CHECK_EQ(kf.data[10], FAST_LOG2N);
	CHECK_EQ(kf.data[11], 0);
	CHECK_EQ(cairn_get_le32(kf.data + 12), CAIRN_KDF_R_DEFAULT);
	CHECK_EQ(cairn_get_le32(kf.data + 16), CAIRN_KDF_P_DEFAULT);
	CHECK_EQ(kf.data[60], strlen(LABEL));
	CHECK(memcmp(kf.data + 61, LABEL, strlen(LABEL)) == 0);

	CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len));
	CHECK_EQ(k.log2n, FAST_LOG2N);
	CHECK_EQ(k.r, CAIRN_KDF_R_DEFAULT);
	CHECK_EQ(k.p, CAIRN_KDF_P_DEFAULT);
	CHECK(strcmp(k.label, LABEL) == 0);
	CHECK(k.created >= before && k.created <= time(NULL));
	CHECK_EQ(k.aad_len, 61 + strlen(LABEL));
	CHECK(memcmp(k.salt, kf.data + 20, 32) == 0);
	CHECK(memcmp(k.nonce, kf.data + k.aad_len, 12) == 0);
	CHECK(memcmp(k.wrapped, kf.data + k.aad_len + 12, 48) == 0);

	CHECK_OK(cairn_keyfile__unwrap(kf.data, kf.len, "correct horse", 13, got));
	CHECK(memcmp(got, master, sizeof(master)) == 0);
}

/* A write-only key file (FORMAT.md §3.2, §3.3): kind 1 and a secret of 160
 * bytes, the same header, and the longest label still within the maximum. */
static void test_keyfile__write_only(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_key_secret s = { .kind = CAIRN_KEY_WRITE_ONLY }, got;
	struct cairn_keyfile k;
	uint8_t mk[CAIRN_KEY_SIZE];
	char label[256];

	for (size_t i = 0; i < CAIRN_WO_SECRET_SIZE; i++)
		((uint8_t *)&s.wo)[i] = (uint8_t)(i * 7 + 1);
	memset(label, 'x', 255);
	label[255] = '\0';
	CHECK_OK(cairn_keyfile__create_secret(&kf, &s, "pw", 2, FAST_LOG2N, label));
	CHECK_EQ(kf.len, FIXED_LEN + 128 + 255);
	CHECK(kf.len <= CAIRN_KEYFILE_MAX);
	CHECK_EQ(kf.data[11], 1);
	CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len));
	CHECK_EQ(k.kind, CAIRN_KEY_WRITE_ONLY);
	CHECK_EQ(k.wrapped_len, 176);
	CHECK_OK(cairn_keyfile__unwrap_secret(kf.data, kf.len, "pw", 2, &got));
	CHECK_EQ(got.kind, CAIRN_KEY_WRITE_ONLY);
	CHECK(memcmp(&got.wo, &s.wo, sizeof(s.wo)) == 0);
	/* the secret in file order: K_id, K_gear, K_idx, SHA-256(config), P_adm */
	CHECK(memcmp(got.wo.id, s.wo.id, 32) == 0 &&
	      memcmp(got.wo.admin_pub, s.wo.admin_pub, 32) == 0);
	CHECK_ERR(cairn_keyfile__unwrap_secret(kf.data, kf.len, "px", 2, &got), -EKEYREJECTED);
	/* it holds no master key */
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, mk), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "write-only"));
	/* the kind is authenticated and decides the length */
	kf.data[11] = 0;
	CHECK_ERR(cairn_keyfile__parse(&k, kf.data, kf.len), -EBADMSG);
	/* cut to a full key's length it parses, and the tag refuses it */
	CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len - 128));
	CHECK_ERR(cairn_keyfile__unwrap_secret(kf.data, kf.len - 128, "pw", 2, &got),
	          -EKEYREJECTED);
	/* a full key file whose kind says write-only is too short */
	_cleanup_buf_ struct cairn_buf full = CAIRN_BUF_INIT;
	make(&full, "pw", LABEL);
	full.data[11] = 1;
	CHECK_ERR(cairn_keyfile__parse(&k, full.data, full.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "truncated"));
	full.data[11] = 0;
	CHECK_OK(cairn_keyfile__unwrap_secret(full.data, full.len, "pw", 2, &got));
	CHECK_EQ(got.kind, CAIRN_KEY_FULL);
	CHECK(memcmp(got.master, master, sizeof(master)) == 0);
}

static void test_keyfile__fresh_salt_and_nonce(void)
{
	_cleanup_buf_ struct cairn_buf a = CAIRN_BUF_INIT, b = CAIRN_BUF_INIT;

	make(&a, "pw", "");
	make(&b, "pw", "");
	CHECK_EQ(a.len, FIXED_LEN);
	CHECK_EQ(a.len, b.len);
	CHECK(memcmp(a.data + 20, b.data + 20, 32) != 0);      /* salt */
	CHECK(memcmp(a.data + 61, b.data + 61, 12 + 48) != 0); /* nonce, wrapped key */
}

static void test_keyfile__wrong_password(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	uint8_t got[CAIRN_KEY_SIZE] = { 0 };

	make(&kf, "secret", LABEL);
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "Secret", 6, got), -EKEYREJECTED);
	CHECK(strcmp(cairn_err_msg(), "wrong password") == 0);
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "secret", 5, got), -EKEYREJECTED);
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "", 0, got), -EKEYREJECTED);
	for (size_t i = 0; i < sizeof(got); i++)
		CHECK_EQ(got[i], 0); /* master_out untouched on failure */
	/* the length counts, not a NUL: a password may contain one */
	kf.len = 0;
	CHECK_OK(cairn_keyfile__create(&kf, master, "a\0b", 3, FAST_LOG2N, NULL));
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "a\0c", 3, got), -EKEYREJECTED);
	CHECK_OK(cairn_keyfile__unwrap(kf.data, kf.len, "a\0b", 3, got));
	CHECK(memcmp(got, master, sizeof(master)) == 0);
}

static void test_keyfile__create_appends(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	uint8_t got[CAIRN_KEY_SIZE];
	char label[300];

	/* the AAD starts at the key file, not at the start of the buffer */
	CHECK_OK(cairn_buf_put(&kf, "junk", 4));
	make(&kf, "pw", LABEL);
	CHECK_OK(cairn_keyfile__unwrap(kf.data + 4, kf.len - 4, "pw", 2, got));
	CHECK(memcmp(got, master, sizeof(master)) == 0);
	/* failures leave the buffer as it was */
	size_t len = kf.len;
	memset(label, 'x', sizeof(label) - 1);
	label[sizeof(label) - 1] = '\0';
	CHECK_ERR(cairn_keyfile__create(&kf, master, "pw", 2, FAST_LOG2N, label), -EINVAL);
	CHECK_ERR(cairn_keyfile__create(&kf, master, "pw", 2, 9, LABEL), -EINVAL);
	CHECK_ERR(cairn_keyfile__create(&kf, master, "pw", 2, 25, LABEL), -EINVAL);
	CHECK_EQ(kf.len, len);
	/* the longest label fits */
	label[255] = '\0';
	kf.len = 0;
	CHECK_OK(cairn_keyfile__create(&kf, master, "pw", 2, FAST_LOG2N, label));
	CHECK_EQ(kf.len, FIXED_LEN + 255);
	CHECK_OK(cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, got));
}

static void test_keyfile__truncated(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	uint8_t got[CAIRN_KEY_SIZE];

	make(&kf, "pw", LABEL);
	for (size_t n = 0; n < kf.len; n++) {
		CHECK_ERR(cairn_keyfile__parse(&k, kf.data, n), -EBADMSG);
		CHECK_ERR(cairn_keyfile__unwrap(kf.data, n, "pw", 2, got), -EBADMSG);
	}
	CHECK_OK(cairn_buf_put_u8(&kf, 0)); /* one byte too many */
	CHECK_ERR(cairn_keyfile__parse(&k, kf.data, kf.len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "past the end"));
}

/* Every single-byte change is refused: the fields before the nonce by a range
 * check or the tag (they are the AAD), the rest by the tag. */
static void test_keyfile__flipped(void)
{
	static const uint8_t masks[] = { 0x01, 0x80 };
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	uint8_t got[CAIRN_KEY_SIZE];

	make(&kf, "pw", "ab");
	for (size_t i = 0; i < kf.len; i++) {
		for (size_t m = 0; m < ARRAY_SIZE(masks); m++) {
			kf.data[i] ^= masks[m];
			int r = cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, got);
			if (r != -EBADMSG)
				CHECK_ERR(r, -EKEYREJECTED);
			kf.data[i] ^= masks[m];
		}
	}
	CHECK_OK(cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, got));
}

/* Sets one field and expects parse to refuse it with msg in the message. */
static void check_bad_field(const struct cairn_buf *good, size_t off, const void *val, size_t n,
                            const char *msg)
{
	_cleanup_free_ uint8_t *p = malloc(good->len);
	struct cairn_keyfile k;

	CHECK(p);
	memcpy(p, good->data, good->len);
	memcpy(p + off, val, n);
	CHECK_ERR(cairn_keyfile__parse(&k, p, good->len), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), msg));
}

static void test_keyfile__bad_fields(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	const uint8_t v0 = 0, v2 = 2, v9 = 9, v25 = 25;
	uint8_t le[4];

	make(&kf, "pw", LABEL);
	check_bad_field(&kf, 0, "CAIRNKEZ", 8, "bad magic");
	check_bad_field(&kf, 8, &v0, 1, "version");
	check_bad_field(&kf, 8, &v2, 1, "version");
	check_bad_field(&kf, 9, &v2, 1, "kdf");
	check_bad_field(&kf, 10, &v9, 1, "log2(N)");
	check_bad_field(&kf, 10, &v25, 1, "log2(N)");
	check_bad_field(&kf, 11, &v2, 1, "unknown kind");
	cairn_le32(le, 0);
	check_bad_field(&kf, 12, le, 4, "scrypt r");
	cairn_le32(le, 33);
	check_bad_field(&kf, 12, le, 4, "scrypt r");
	cairn_le32(le, 0x01000008);
	check_bad_field(&kf, 12, le, 4, "scrypt r");
	cairn_le32(le, 0);
	check_bad_field(&kf, 16, le, 4, "scrypt p");
	cairn_le32(le, 17);
	check_bad_field(&kf, 16, le, 4, "scrypt p");
	/* a label length pointing past the end */
	const uint8_t big = 200;
	check_bad_field(&kf, 60, &big, 1, "truncated");
	/* a file longer than any key file can be */
	_cleanup_free_ uint8_t *huge = calloc(1, CAIRN_KEYFILE_MAX + 1);
	struct cairn_keyfile k;
	CHECK(huge);
	memcpy(huge, kf.data, kf.len);
	CHECK_ERR(cairn_keyfile__parse(&k, huge, CAIRN_KEYFILE_MAX + 1), -EBADMSG);
}

/* In range field by field but too costly together: refused as corrupt without
 * running scrypt (N = 2^24, r = 32 would need 64 GiB). */
static void test_keyfile__too_costly(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	uint8_t got[CAIRN_KEY_SIZE];

	make(&kf, "pw", LABEL);
	kf.data[10] = 24;
	cairn_le32(kf.data + 12, 32);
	cairn_le32(kf.data + 16, 16);
	CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len));
	CHECK_EQ(k.log2n, 24);
	CHECK_EQ(k.r, 32);
	CHECK_EQ(k.p, 16);
	CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, got), -EBADMSG);
	CHECK(strstr(cairn_err_msg(), "key file"));
}

/* Costs cairn never writes, below scrypt's own 2 GiB cap, are refused without
 * running scrypt: planted key files must not stall every open. */
static void test_keyfile__above_init_limit(void)
{
	static const struct {
		uint8_t log2n;
		uint32_t r, p;
		bool costly;
	} cases[] = {
		{ 21, 8, 1, true },  /* N above what init writes */
		{ 20, 16, 1, true }, /* 2 GiB of memory */
		{ 20, 1, 16, true }, /* 128 MiB, but 16 times the work */
		{ 20, 8, 1, false }, /* the most init writes */
		{ 14, 32, 16, false },
	};
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	uint8_t got[CAIRN_KEY_SIZE];

	make(&kf, "pw", LABEL);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct cairn_keyfile k;
		kf.data[10] = cases[i].log2n;
		cairn_le32(kf.data + 12, cases[i].r);
		cairn_le32(kf.data + 16, cases[i].p);
		CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len));
		CHECK_EQ(cairn_keyfile__too_costly(&k), cases[i].costly);
		if (!cases[i].costly)
			continue;
		uint64_t runs = cairn_crypt__scrypt_runs();
		CHECK_ERR(cairn_keyfile__unwrap(kf.data, kf.len, "pw", 2, got), -EBADMSG);
		CHECK(strstr(cairn_err_msg(), "above the limit"));
		CHECK_EQ(cairn_crypt__scrypt_runs(), runs);
	}
	/* Nor does cairn write such a file. */
	struct cairn_buf out = CAIRN_BUF_INIT;
	uint8_t mk[CAIRN_KEY_SIZE] = { 1 };
	CHECK_ERR(cairn_keyfile__create(&out, mk, "pw", 2, CAIRN_KDF_LOG2N_MAX + 1, ""), -EINVAL);
	CHECK_EQ(out.len, 0);
	cairn_buf_release(&out);
}

static void test_keyfile__label_with_nul(void)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;

	make(&kf, "pw", "abc");
	kf.data[62] = '\0'; /* "a\0c": parse keeps the part before the NUL */
	CHECK_OK(cairn_keyfile__parse(&k, kf.data, kf.len));
	CHECK(strcmp(k.label, "a") == 0);
}

/* A machine model for calibration: one derivation at log2n costs unit * 2^log2n
 * seconds (scrypt is linear in N). Records which costs were asked for. */
struct machine {
	double unit;
	int fail_at; /* cost < 0 (cannot run) from this log2n on; 0: never */
	int asked[32];
	int nasked;
};

static double model_cost(int log2n, void *payload)
{
	struct machine *m = payload;
	CHECK(m->nasked < 32);
	m->asked[m->nasked++] = log2n;
	if (m->fail_at && log2n >= m->fail_at)
		return -1;
	return m->unit * (double)(1u << log2n);
}

/* The calibration rule of FORMAT.md §3.2 without a clock: the result is the
 * smallest N in range whose derivation reaches 100 ms, so a key file made on that
 * machine costs an attacker at least that much per guess. */
static void test_keyfile__calibration_rule(void)
{
	/* 2^16 costs 0.12 s, 2^15 0.06 s: 16 is the answer. */
	struct machine m = { .unit = 0.12 / 65536 };
	int n = cairn_keyfile__calibrate_with(model_cost, &m);
	CHECK_EQ(n, 16);
	CHECK(m.unit * (double)(1u << n) >= CAIRN_KDF_TARGET_SECONDS);
	CHECK(m.unit * (double)(1u << (n - 1)) < CAIRN_KDF_TARGET_SECONDS);
	CHECK_EQ(m.nasked, 3); /* 14, 15, 16, in order, and nothing costlier */
	for (int i = 0; i < m.nasked; i++)
		CHECK_EQ(m.asked[i], CAIRN_KDF_LOG2N_MIN + i);

	/* Exactly on the target counts as reaching it. */
	m = (struct machine){ .unit = CAIRN_KDF_TARGET_SECONDS / (1u << 18) };
	CHECK_EQ(cairn_keyfile__calibrate_with(model_cost, &m), 18);

	/* A slow machine: the minimum already takes long enough. */
	m = (struct machine){ .unit = 1.0 / (1u << 14) };
	CHECK_EQ(cairn_keyfile__calibrate_with(model_cost, &m), CAIRN_KDF_LOG2N_MIN);
	CHECK_EQ(m.nasked, 1);

	/* A very fast machine: capped at the maximum, which is never measured. */
	m = (struct machine){ .unit = 1e-12 };
	CHECK_EQ(cairn_keyfile__calibrate_with(model_cost, &m), CAIRN_KDF_LOG2N_MAX);
	CHECK_EQ(m.nasked, CAIRN_KDF_LOG2N_MAX - CAIRN_KDF_LOG2N_MIN);

	/* A cost that cannot be run (out of memory) stops the search there. */
	m = (struct machine){ .unit = 1e-12, .fail_at = 17 };
	CHECK_EQ(cairn_keyfile__calibrate_with(model_cost, &m), 17);

	/* The real calibration stays in the range. */
	n = cairn_keyfile__calibrate();
	CHECK(n >= CAIRN_KDF_LOG2N_MIN && n <= CAIRN_KDF_LOG2N_MAX);
}

int main(void)
{
	RUN(test_keyfile__roundtrip);
	RUN(test_keyfile__write_only);
	RUN(test_keyfile__fresh_salt_and_nonce);
	RUN(test_keyfile__wrong_password);
	RUN(test_keyfile__create_appends);
	RUN(test_keyfile__truncated);
	RUN(test_keyfile__flipped);
	RUN(test_keyfile__bad_fields);
	RUN(test_keyfile__too_costly);
	RUN(test_keyfile__above_init_limit);
	RUN(test_keyfile__label_with_nul);
	RUN(test_keyfile__calibration_rule);
	return 0;
}
