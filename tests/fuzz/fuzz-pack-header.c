/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for pack header plaintexts (FORMAT.md §6.2).
 *
 * The first 4 bytes are hdr_off (u32 LE, where the sealed header would start),
 * the rest is the plaintext given to cairn_pack__parse_hdr(). An accepted header
 * must satisfy what the parser promises; anything else traps. */
#include "pack.h"

#include <stdint.h>
#include <stdlib.h>

#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_entries(const struct cairn_pack_entry *e, size_t n, uint64_t hdr_off)
{
	uint64_t off = CAIRN_PACK_MAGIC_SIZE;
	if (n == 0 || n > CAIRN_PACK_MAX_ENTRIES)
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		if (e[i].offset != off || e[i].stored_len < CAIRN_SEAL_OVERHEAD ||
		    (e[i].type != CAIRN_BLOB_DATA && e[i].type != CAIRN_BLOB_TREE) ||
		    e[i].raw_len > CAIRN_TREE_MAX)
			__builtin_trap();
		off += e[i].stored_len;
	}
	if (off != hdr_off)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	size_t n = 0;

	if (size < 4)
		return 0;
	uint64_t hdr_off = cairn_get_le32(data);
	if (cairn_pack__parse_hdr(data + 4, size - 4, hdr_off, &e, &n) < 0) {
		if (e)
			__builtin_trap(); /* *out untouched on failure */
		return 0;
	}
	if (size - 4 != 4 + n * CAIRN_PACK_ENTRY_SIZE)
		__builtin_trap();
	check_entries(e, n, hdr_off);
	return 0;
}
