/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository's packs as files: open one through the storage or its cache,
 * read its header, list them. Below the read path (read.c) and the index
 * (indexfiles.c, reindex.c, pending.c), which all read pack headers. */
#include "repo.h"

#include <errno.h>
#include <string.h>

static int pack_pread(void *ctx, const struct cairn_packf *f, int type, void *buf, size_t len,
                      uint64_t off)
{
	cairn_repo *repo = ctx;
	char hex[CAIRN_ID_HEX_SIZE];
	if (repo->cache)
		return cairn_cache__pread(repo->cache, &f->id, f->size, type, buf, len, off);
	cairn_id_hex(hex, &f->id);
	return cairn_storage_read(repo->st, CAIRN_OBJ_PACK, hex, off, buf, len);
}

/* The size of a pack: asked of a local storage (the file as it is, which check
 * compares with the index), from the index for a remote one (no request). */
static int pack_size(cairn_repo *repo, const struct cairn_id *pack, const char *rel, uint64_t *size)
{
	char hex[CAIRN_ID_HEX_SIZE];
	struct cairn_obj_info info;
	int r = repo->index && repo->cache ? cairn_index__has_pack(repo->index, pack, size) : 0;
	if (r != 0)
		return r < 0 ? r : 0;
	cairn_id_hex(hex, pack);
	if ((r = cairn_storage_stat(repo->st, CAIRN_OBJ_PACK, hex, &info)) < 0)
		return r == -ENOENT ? cairn_err_set(r, "pack '%s' is missing", rel) : r;
	*size = info.size;
	return 0;
}

void cairn_repo__pack_reader(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                             struct cairn_packf *f, char rel[CAIRN_PACK_RELPATH_SIZE])
{
	cairn_pack__relpath(rel, pack);
	*f = (struct cairn_packf){
		.fd = -1, .pread = pack_pread, .ctx = repo, .id = *pack, .size = size, .name = rel
	};
}

int cairn_repo__pack_open(cairn_repo *repo, const struct cairn_id *pack, struct cairn_packf *f,
                          char rel[CAIRN_PACK_RELPATH_SIZE])
{
	uint64_t size = 0;
	cairn_repo__pack_reader(repo, pack, 0, f, rel);
	int r = pack_size(repo, pack, rel, &size);
	f->size = size;
	return r;
}

int cairn_repo__pack_entries_sized(cairn_repo *repo, const struct cairn_id *pack, uint64_t size,
                                   struct cairn_pack_entry **out, size_t *n)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	struct cairn_packf f;
	cairn_repo__pack_reader(repo, pack, size, &f, rel);
	int r = cairn_pack__read_entries_from(&f, &repo->keys, out, n);
	if (r == -EBADMSG && repo->cache) {
		cairn_cache__invalidate(repo->cache, pack, 0, 0, 0); /* the cached header */
		r = cairn_pack__read_entries_from(&f, &repo->keys, out, n);
	}
	return r;
}

int cairn_repo_pack_entries(cairn_repo *repo, const struct cairn_id *pack,
                            struct cairn_pack_entry **out, size_t *n)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	uint64_t size = 0;
	cairn_pack__relpath(rel, pack);
	int r = pack_size(repo, pack, rel, &size);
	return r < 0 ? r : cairn_repo__pack_entries_sized(repo, pack, size, out, n);
}

struct each_pack {
	int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload);
	void *payload;
};

static int one_pack(const struct cairn_obj_info *o, void *payload)
{
	struct each_pack *e = payload;
	struct cairn_id id;
	return cairn_id_parse(&id, o->name) < 0 ? 0 : e->cb(&id, o->size, e->payload);
}

int cairn_repo_foreach_pack(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                            void *payload)
{
	struct each_pack e = { cb, payload };
	return cairn_storage_list(repo->st, CAIRN_OBJ_PACK, one_pack, &e);
}
