/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key files under keys/ (FORMAT.md §3.2). Internal. */
#ifndef CAIRN_KEYFILE_H
#define CAIRN_KEYFILE_H

#include "crypt.h"

#define CAIRN_KEYFILE_MAX 512
#define CAIRN_KDF_LOG2N_DEFAULT 16 /* used when calibration is not asked for */
#define CAIRN_KDF_R_DEFAULT 8
#define CAIRN_KDF_P_DEFAULT 1

/* The largest secret a key file wraps, with its GCM tag (FORMAT.md §3.2). */
#define CAIRN_KEYFILE_WRAPPED_MAX (CAIRN_WO_SECRET_SIZE + CAIRN_TAG_SIZE)

struct cairn_keyfile {
	uint8_t kind; /* enum cairn_key_kind */
	uint8_t log2n;
	uint32_t r, p;
	uint8_t salt[32];
	int64_t created;
	char label[256]; /* NUL-terminated copy; bytes past a NUL are dropped */
	uint8_t nonce[12];
	uint8_t wrapped[CAIRN_KEYFILE_WRAPPED_MAX];
	size_t wrapped_len; /* 48 (full) or 176 (write-only) */
	size_t aad_len;     /* bytes before the nonce */
};

/* What a key file wraps: the master key, or a write-only key's secret. */
struct cairn_key_secret {
	uint8_t kind; /* enum cairn_key_kind */
	uint8_t master[CAIRN_KEY_SIZE];
	struct cairn_wo_secret wo;
};

#define CAIRN_KDF_LOG2N_MIN 14 /* calibration range (FORMAT.md §3.2) */
#define CAIRN_KDF_LOG2N_MAX 20
#define CAIRN_KDF_TARGET_SECONDS 0.1
/* The most scrypt work (128 r p N bytes) a key file may ask for when it is read:
 * what init writes at most (log2(N) 20, r 8, p 1), 1 GiB. A costlier file is
 * skipped unread, so planted key files cannot stall every open (FORMAT.md §3.2). */
#define CAIRN_KDF_COST_MAX \
	(128ull * CAIRN_KDF_R_DEFAULT * CAIRN_KDF_P_DEFAULT << CAIRN_KDF_LOG2N_MAX)

/* The smallest log2(N) (14..20, r and p the defaults) whose derivation takes at
 * least 100 ms here, like restic's calibration (FORMAT.md §3.2). */
int cairn_keyfile__calibrate(void);
/* The rule behind it, with the cost of one derivation supplied by cost(log2n,
 * payload) in seconds (< 0: that cost cannot be run): tries log2n upwards from
 * CAIRN_KDF_LOG2N_MIN and returns the first whose cost reaches
 * CAIRN_KDF_TARGET_SECONDS, or that cannot be run, else CAIRN_KDF_LOG2N_MAX.
 * cairn_keyfile__calibrate() measures scrypt with a monotonic clock. */
int cairn_keyfile__calibrate_with(double (*cost)(int log2n, void *payload), void *payload);

/* Decode and bounds-check (FORMAT.md §3.2). -EBADMSG with a message naming the field. */
int cairn_keyfile__parse(struct cairn_keyfile *out, const uint8_t *data, size_t len);
/* True when kf asks for more scrypt work than a reader runs: log2(N) above
 * CAIRN_KDF_LOG2N_MAX or 128 r p N above CAIRN_KDF_COST_MAX. */
bool cairn_keyfile__too_costly(const struct cairn_keyfile *kf);
/* Build a key file of s's kind wrapping its secret under password (fresh salt
 * and nonce); log2n 0 (the default) or 10..CAIRN_KDF_LOG2N_MAX, else -EINVAL.
 * Appends to out. */
int cairn_keyfile__create_secret(struct cairn_buf *out, const struct cairn_key_secret *s,
                                 const char *pw, size_t pwlen, int log2n, const char *label);
/* The same for a full key wrapping master. */
int cairn_keyfile__create(struct cairn_buf *out, const uint8_t master[CAIRN_KEY_SIZE],
                          const char *pw, size_t pwlen, int log2n, const char *label);
/* Parse and unwrap into *out (kind and secret). -EKEYREJECTED wrong password,
 * -EBADMSG corrupt or too costly (then scrypt is not run). */
int cairn_keyfile__unwrap_secret(const uint8_t *data, size_t len, const char *pw, size_t pwlen,
                                 struct cairn_key_secret *out);
/* The same for a full key: -EBADMSG for a write-only key file. */
int cairn_keyfile__unwrap(const uint8_t *data, size_t len, const char *pw, size_t pwlen,
                          uint8_t master_out[CAIRN_KEY_SIZE]);

#endif
