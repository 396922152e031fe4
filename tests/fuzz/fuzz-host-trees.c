/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the tree lists of the host cache (FORMAT.md §14): what the
 * parser accepts has exactly the length its count says, IDs strictly
 * increasing, and encodes back to the same bytes. */
#include "hostcache.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(cairn_idset_release) struct cairn_idset set;
	_cleanup_buf_ struct cairn_buf again = CAIRN_BUF_INIT;
	_cleanup_free_ struct cairn_id *v = NULL;
	size_t n = 0;

	cairn_idset_init(&set);
	if (cairn_hostcache__parse_trees(data, size, &v, &n) < 0)
		return 0;
	if (n > CAIRN_HOSTCACHE_TREES_MAX || size != 9 + n * CAIRN_ID_SIZE)
		__builtin_trap();
	for (size_t i = 0; i < n; i++) {
		if (i > 0 && cairn_id_cmp(&v[i - 1], &v[i]) >= 0)
			__builtin_trap();
		if (cairn_idset_add(&set, &v[i], 0) < 0)
			return 0;
	}
	if (cairn_hostcache__encode_trees(&again, &set) >= 0 &&
	    (again.len != size || memcmp(again.data, data, size) != 0))
		__builtin_trap();
	return 0;
}
