/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the snapshot decoder (FORMAT.md §8); whatever decodes must re-encode to the
 * same bytes. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/store.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

DEFINE_FREEP(struct cairn_snapshot, cairn_snapshot_free)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;

	int r = cairn_snapshot_decode(&s, data, size);
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		if (r != -EBADMSG || s)
			abort();
		return 0;
	}
	if (cairn_snapshot_encode(s, &out) < 0)
		abort();
	if (out.len != size || memcmp(out.data, data, size) != 0)
		abort();
	return 0;
}
