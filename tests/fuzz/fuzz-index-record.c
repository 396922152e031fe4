/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for `blobs` values of the LMDB index (FORMAT.md §7).
 *
 * An accepted record must re-encode to the same 45 bytes and obey the bounds of
 * a pack entry (§6.2); anything else traps. */
#include "index.h"

#include <stdint.h>
#include <string.h>

#include "pack.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_loc loc;
	uint8_t again[CAIRN_LOC_SIZE];

	if (cairn_index__decode_loc(&loc, data, size) < 0)
		return 0;
	if (size != CAIRN_LOC_SIZE)
		__builtin_trap();
	cairn_index__encode_loc(again, &loc);
	if (memcmp(again, data, CAIRN_LOC_SIZE) != 0)
		__builtin_trap();
	if ((loc.type != CAIRN_BLOB_DATA && loc.type != CAIRN_BLOB_TREE) ||
	    loc.offset < CAIRN_PACK_MAGIC_SIZE || loc.stored_len < CAIRN_SEAL_OVERHEAD ||
	    (uint64_t)loc.offset + loc.stored_len > CAIRN_PACK_MAX_SIZE ||
	    loc.raw_len > CAIRN_TREE_MAX)
		__builtin_trap();
	return 0;
}
