/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for index file plaintexts (FORMAT.md §12). An accepted file must
 * encode back to the same bytes (the encoding is canonical) and keep what the
 * parser promises; anything else traps. */
#include "idxfile.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_idxfile *f = NULL;
	if (cairn_idxfile__parse(&f, data, size) < 0) {
		if (f)
			__builtin_trap(); /* *out untouched on failure */
		return 0;
	}
	for (size_t i = 0; i < f->npacks; i++)
		if (f->packs[i].n == 0 ||
		    cairn_idxfile__pack_size(f->packs[i].e, f->packs[i].n) != f->packs[i].size)
			__builtin_trap();
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (cairn_idxfile__encode(f, &b) < 0 || b.len != size || memcmp(b.data, data, size) != 0)
		__builtin_trap();
	cairn_idxfile__free(f);
	return 0;
}
