/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the records of the LMDB index (FORMAT.md §7): the 48-byte
 * `blobs` records of layout 2, the 45-byte locations of layout 1, and the
 * values of `aux:unnamed` (§7.1).
 *
 * An accepted input must re-encode to the same bytes and obey the bounds of a
 * pack entry (§6.2); anything else traps. */
#include "index.h"
#include "repo.h"

#include <stdint.h>
#include <string.h>

#include "pack.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_place(uint8_t type, uint32_t offset, uint32_t stored_len, uint32_t raw_len)
{
	if ((type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE) ||
	    offset < CAIRN_PACK_MAGIC_SIZE || stored_len < CAIRN_SEAL_OVERHEAD ||
	    (uint64_t)offset + stored_len > CAIRN_PACK_MAX_SIZE || raw_len > CAIRN_TREE_MAX)
		__builtin_trap();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_loc loc;
	struct cairn_index_rec rec;
	uint8_t again[CAIRN_INDEX_REC_SIZE];

	if (cairn_index__decode_rec(&rec, data, size) >= 0) {
		if (size != CAIRN_INDEX_REC_SIZE || rec.packno == 0)
			__builtin_trap();
		cairn_index__encode_rec(again, &rec);
		if (memcmp(again, data, CAIRN_INDEX_REC_SIZE) != 0)
			__builtin_trap();
		check_place(rec.type, rec.offset, rec.stored_len, rec.raw_len);
	}
	struct cairn_unnamed u;
	uint8_t mark[CAIRN_UNNAMED_SIZE];
	if (cairn_repo__unnamed_decode(&u, data, size) >= 0) {
		cairn_repo__unnamed_encode(mark, &u);
		if (size != CAIRN_UNNAMED_SIZE || memcmp(mark, data, size) != 0 ||
		    strlen(u.host) >= CAIRN_UNNAMED_HOST)
			__builtin_trap();
	}
	if (cairn_index__decode_loc(&loc, data, size) < 0)
		return 0;
	if (size != CAIRN_LOC_SIZE)
		__builtin_trap();
	cairn_index__encode_loc(again, &loc);
	if (memcmp(again, data, CAIRN_LOC_SIZE) != 0)
		__builtin_trap();
	check_place(loc.type, loc.offset, loc.stored_len, loc.raw_len);
	return 0;
}
