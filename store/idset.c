/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Hash set of IDs. IDs are MACs or hashes, so their first bytes are already uniform. */
#include "cairn/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

void cairn_idset_init(struct cairn_idset *s)
{
	*s = (struct cairn_idset){ 0 };
}

void cairn_idset_release(struct cairn_idset *s)
{
	free(s->keys);
	free(s->vals);
	free(s->used);
	cairn_idset_init(s);
}

static size_t slot_of(const struct cairn_id *id, size_t cap)
{
	uint64_t h;
	memcpy(&h, id->b, sizeof(h));
	return (size_t)h & (cap - 1);
}

/* Index of id, or of the empty slot where it would go. cap is a power of two. */
static size_t probe(const struct cairn_idset *s, const struct cairn_id *id)
{
	size_t i = slot_of(id, s->cap);
	while (s->used[i] && memcmp(s->keys[i].b, id->b, CAIRN_ID_SIZE) != 0)
		i = (i + 1) & (s->cap - 1);
	return i;
}

static int grow(struct cairn_idset *s)
{
	size_t cap = s->cap ? s->cap * 2 : 64;
	struct cairn_idset n = { .cap = cap };

	n.keys = malloc(cap * sizeof(*n.keys));
	n.vals = malloc(cap * sizeof(*n.vals));
	n.used = calloc(cap, 1);
	if (!n.keys || !n.vals || !n.used) {
		cairn_idset_release(&n);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	for (size_t i = 0; i < s->cap; i++) {
		if (!s->used[i])
			continue;
		size_t j = probe(&n, &s->keys[i]);
		n.keys[j] = s->keys[i];
		n.vals[j] = s->vals[i];
		n.used[j] = 1;
		n.count++;
	}
	cairn_idset_release(s);
	*s = n;
	return 0;
}

int cairn_idset_add(struct cairn_idset *s, const struct cairn_id *id, uint64_t val)
{
	if ((s->count + 1) * 4 > s->cap * 3) {
		int r = grow(s);
		if (r < 0)
			return r;
	}
	size_t i = probe(s, id);
	if (s->used[i])
		return 0;
	s->keys[i] = *id;
	s->vals[i] = val;
	s->used[i] = 1;
	s->count++;
	return 1;
}

uint64_t *cairn_idset_get(const struct cairn_idset *s, const struct cairn_id *id)
{
	if (!s->cap)
		return NULL;
	size_t i = probe(s, id);
	return s->used[i] ? &s->vals[i] : NULL;
}

bool cairn_idset_has(const struct cairn_idset *s, const struct cairn_id *id)
{
	return cairn_idset_get(s, id) != NULL;
}

int cairn_idset_del(struct cairn_idset *s, const struct cairn_id *id)
{
	if (!s->cap)
		return 0;
	size_t i = probe(s, id);
	if (!s->used[i])
		return 0;
	s->used[i] = 0;
	s->count--;
	/* Backward-shift deletion keeps linear probing correct without tombstones. */
	for (size_t j = (i + 1) & (s->cap - 1); s->used[j]; j = (j + 1) & (s->cap - 1)) {
		size_t home = slot_of(&s->keys[j], s->cap);
		bool movable = (i <= j) ? (home <= i || home > j) : (home <= i && home > j);
		if (!movable)
			continue;
		s->keys[i] = s->keys[j];
		s->vals[i] = s->vals[j];
		s->used[i] = 1;
		s->used[j] = 0;
		i = j;
	}
	return 1;
}

bool cairn_idset_next(const struct cairn_idset *s, size_t *pos, const struct cairn_id **id)
{
	for (; *pos < s->cap; (*pos)++) {
		if (s->used[*pos]) {
			*id = &s->keys[(*pos)++];
			return true;
		}
	}
	return false;
}
