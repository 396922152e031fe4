/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for sealed blobs (FORMAT.md §5.2) under fixed keys.
 *
 * Byte 0 picks the blob type (bits 0-1) and the mode (bit 7). In sealed mode
 * the rest is a sealed blob, as read from a pack. Random bytes never pass the
 * GCM tag, so in plaintext mode the rest is (enc || body), which this target
 * seals itself before decoding: that reaches the enc check, zstd and the size
 * caps, which only a key holder could otherwise feed. With bit 6 it seals with
 * a write-only key (FORMAT.md §5.4, to the admin key) and decodes with the full
 * key, which must open it, while the write-only key must refuse it; a sealed
 * input with bit 6 is decoded with the write-only key. */
#include "crypt.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "fuzz-keys.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_MAX (1u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	struct cairn_id id = { { 0 } };

	if (size < 1)
		return 0;
	int type = CAIRN_BLOB_DATA + (data[0] & 3);
	const uint8_t *p = data + 1;
	size_t n = size - 1;
	bool wo = data[0] & 0x40;
	if (data[0] & 0x80) {
		if (n < 1 || cairn_crypt__seal(wo ? fuzz_keys_wo() : fuzz_keys(), type, &id, p[0],
		                               p + 1, n - 1, &sealed) < 0)
			return 0;
		p = sealed.data;
		n = sealed.len;
		/* Sealed to the admin: the writer itself can never open it. */
		if (wo && type != CAIRN_BLOB_PACKHDR &&
		    cairn_blob__decode(fuzz_keys_wo(), type, &id, p, n, SIZE_MAX, FUZZ_MAX, &out) !=
		            -EACCES)
			__builtin_trap();
		wo = false;
	} else if (type != CAIRN_BLOB_PACKHDR && n >= CAIRN_SEAL_OVERHEAD + CAIRN_ID_SIZE) {
		/* a sealed blob followed by the ID it claims */
		n -= CAIRN_ID_SIZE;
		memcpy(id.b, p + n, CAIRN_ID_SIZE);
	}
	int r = cairn_blob__decode(wo ? fuzz_keys_wo() : fuzz_keys(), type, &id, p, n, SIZE_MAX,
	                           FUZZ_MAX, &out);
	if ((r >= 0 && out.len > FUZZ_MAX) ||
	    (r >= 0 && wo && type != CAIRN_BLOB_PACKHDR && type != CAIRN_BLOB_INDEX))
		__builtin_trap();
	return 0;
}
