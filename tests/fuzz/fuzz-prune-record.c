/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for prune records (FORMAT.md §13): an accepted record keeps what
 * the parser promises and formats to text that parses to the same record. */
#include "prunerec.h"

#include <stdint.h>
#include <string.h>

#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_prunerec r = { 0 }, again = { 0 };
	if (cairn_prunerec__parse(&r, (const char *)data, size) < 0) {
		if (r.packs || r.wait)
			__builtin_trap(); /* *out untouched on failure */
		return 0;
	}
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (cairn_prunerec__format(&r, &b) < 0 ||
	    cairn_prunerec__parse(&again, (const char *)b.data, b.len) < 0 ||
	    again.npacks != r.npacks || again.nwait != r.nwait ||
	    again.wait_known != r.wait_known || again.time != r.time ||
	    strcmp(again.host, r.host) != 0 ||
	    (r.npacks && memcmp(again.packs, r.packs, r.npacks * sizeof(*r.packs)) != 0))
		__builtin_trap();
	cairn_prunerec__release(&r);
	cairn_prunerec__release(&again);
	return 0;
}
