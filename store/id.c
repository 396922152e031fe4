/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Blob and pack IDs (FORMAT.md §1, §5.1). */
#include "cairn/store.h"

#include <errno.h>
#include <string.h>

#include "cleanup.h"

void cairn_id_hex(char out[CAIRN_ID_HEX_SIZE], const struct cairn_id *id)
{
	cairn_hex(out, id->b, CAIRN_ID_SIZE);
}

int cairn_id_parse(struct cairn_id *out, const char *hex)
{
	struct cairn_id id;
	if (cairn_unhex(id.b, CAIRN_ID_SIZE, hex) < 0)
		return cairn_err_set(-EINVAL, "'%.80s' is not an ID of 64 hex digits", hex);
	*out = id;
	return 0;
}

bool cairn_id_is_zero(const struct cairn_id *id)
{
	static const struct cairn_id zero;
	return memcmp(id->b, zero.b, CAIRN_ID_SIZE) == 0;
}

int cairn_id_cmp(const struct cairn_id *a, const struct cairn_id *b)
{
	return memcmp(a->b, b->b, CAIRN_ID_SIZE);
}

const char *cairn_blob_type_name(int type)
{
	switch (type) {
	case CAIRN_BLOB_DATA:
		return "data";
	case CAIRN_BLOB_TREE:
		return "tree";
	case CAIRN_BLOB_SNAPSHOT:
		return "snapshot";
	case CAIRN_BLOB_PACKHDR:
		return "packhdr";
	case CAIRN_BLOB_INDEX:
		return "index";
	default:
		return "unknown";
	}
}
