/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Index files indexes/<id> (FORMAT.md §12): which blobs each pack holds. Internal. */
#ifndef CAIRN_IDXFILE_H
#define CAIRN_IDXFILE_H

#include "pack.h"

#define CAIRN_IDXFILE_MAGIC "CIDX"
#define CAIRN_IDXFILE_VERSION 1
#define CAIRN_IDXFILE_MAX_SIZE (256u << 20) /* raw bytes, FORMAT.md §5.3 */
#define CAIRN_IDXFILE_MAX_PACKS 100000u
#define CAIRN_IDXFILE_MAX_SUPERSEDES 1000000u
/* The smallest pack record: id, size, count and one entry. */
#define CAIRN_IDXFILE_PACK_MIN (32 + 8 + 4 + CAIRN_PACK_ENTRY_SIZE)

/* One pack and its header entries (as cairn_pack__parse_hdr gives them). */
struct cairn_idxfile_pack {
	struct cairn_id id;
	uint64_t size;
	const struct cairn_pack_entry *e; /* borrowed from the file or the caller */
	size_t n;
};

/* A decoded index file. Open struct; from _parse it owns its arrays. */
struct cairn_idxfile {
	struct cairn_idxfile_pack *packs; /* sorted by id, strictly increasing */
	size_t npacks;
	struct cairn_id *supersedes; /* index files this one replaces, sorted */
	size_t nsupersedes;
	struct cairn_pack_entry *entries_; /* the arena the packs' e point into */
};

/* The plaintext of f, appended to out. Packs and supersedes must already be
 * sorted and valid (-EINVAL otherwise: the caller's bug). -ENOMEM. */
int cairn_idxfile__encode(const struct cairn_idxfile *f, struct cairn_buf *out);
/* Decode and validate a plaintext: magic, version, counts against limits and the
 * bytes left before allocating, order, and that every pack record is what a pack
 * of that size holds (entries contiguous from offset 8, header and trailer
 * exactly filling the rest). -EBADMSG naming the offset, -ENOMEM. Caller frees
 * with cairn_idxfile__free(). */
int cairn_idxfile__parse(struct cairn_idxfile **out, const uint8_t *p, size_t len);
void cairn_idxfile__free(struct cairn_idxfile *f);
/* The size of a pack that holds these entries: FORMAT.md §6.1. */
uint64_t cairn_idxfile__pack_size(const struct cairn_pack_entry *e, size_t n);

#endif
