/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the tree decoder (FORMAT.md §10); whatever parses must re-encode to the same
 * bytes through the builder, the canonical property tree IDs rely on. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/store.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

DEFINE_FREEP(cairn_tree, cairn_tree_free)
DEFINE_FREEP(cairn_tree_builder, cairn_tree_builder_free)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(cairn_tree_freep) cairn_tree *t = NULL;
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf out = CAIRN_BUF_INIT;
	size_t idx;

	int r = cairn_tree_parse(&t, data, size);
	if (r == -ENOMEM)
		return 0;
	if (r < 0) {
		if (r != -EBADMSG || t)
			abort();
		return 0;
	}
	if (cairn_tree_builder_new(&b) < 0)
		return 0;
	/* Add in reverse so the builder's sort is exercised. */
	for (size_t i = cairn_tree_count(t); i-- > 0;) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		if (cairn_tree_find(t, n->name, n->name_len, &idx) < 0 || idx != i)
			abort();
		if (cairn_tree_builder_add(b, n) < 0)
			abort(); /* the builder must accept everything the decoder does */
	}
	if (cairn_tree_builder_encode(b, &out) < 0)
		abort();
	if (out.len != size || (size && memcmp(out.data, data, size) != 0))
		abort();
	return 0;
}
