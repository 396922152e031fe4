/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The snapshot catalog: snapshots/<id> files, the commit points of backups (FORMAT.md §8). */
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"

int cairn_repo_snapshot_save(cairn_repo *repo, struct cairn_snapshot *s)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE], path[PATH_MAX], tmp[PATH_MAX];
	const struct cairn_keys *k = cairn_repo__keys(repo);
	struct cairn_id id;
	int r;

	if (cairn_repo__read_only(repo))
		return cairn_err_set(-EROFS, "repository opened read-only");
	/* A snapshot is the commit point: after a lost pack it would refer to blobs
	 * that are not there. */
	if ((r = cairn_repo__write_error(repo)) < 0)
		return cairn_err_wrap(r, "cannot save the snapshot after a failed write");
	if ((r = cairn_snapshot_encode(s, &plain)) < 0)
		return r;
	if ((r = cairn_repo_blob_id(repo, plain.data, plain.len, &id)) < 0)
		return r;
	r = cairn_blob__encode(k, cairn_repo_compression(repo), CAIRN_BLOB_SNAPSHOT, &id,
	                       plain.data, plain.len, &sealed);
	if (r < 0)
		return r;
	cairn_id_hex(hex, &id);
	if ((r = cairn_repo__path(repo, path, sizeof(path), "snapshots/%s", hex)) < 0 ||
	    (r = cairn_repo__path(repo, tmp, sizeof(tmp), "tmp")) < 0 ||
	    (r = cairn_file_write_atomic(path, tmp, sealed.data, sealed.len)) < 0)
		return r;
	s->id = id;
	if (cairn_repo__index(repo))
		return cairn_index__add_snapshot(cairn_repo__index(repo), &id, s->time_ns);
	return 0;
}

int cairn_repo_snapshot_load(cairn_repo *repo, const struct cairn_id *id,
                             struct cairn_snapshot **out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	char hex[CAIRN_ID_HEX_SIZE], path[PATH_MAX];
	struct cairn_snapshot *s;
	int r;

	cairn_id_hex(hex, id);
	if ((r = cairn_repo__path(repo, path, sizeof(path), "snapshots/%s", hex)) < 0)
		return r;
	r = cairn_file_slurp(path, CAIRN_SNAPSHOT_MAX_SIZE + CAIRN_SEAL_OVERHEAD, &sealed);
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "snapshot %.8s not found", hex);
	if (r < 0)
		return r == -EFBIG ? cairn_err_set(-EBADMSG, "snapshot %.8s is too large", hex) : r;
	r = cairn_blob__decode(cairn_repo__keys(repo), CAIRN_BLOB_SNAPSHOT, id, sealed.data,
	                       sealed.len, SIZE_MAX, CAIRN_SNAPSHOT_MAX_SIZE, &plain);
	if (r >= 0)
		r = cairn_snapshot_decode(&s, plain.data, plain.len);
	if (r < 0)
		return cairn_err_wrap(r, "snapshot %.8s", hex);
	s->id = *id;
	*out = s;
	return 0;
}

int cairn_repo_snapshot_ids(cairn_repo *repo, struct cairn_id **out, size_t *n)
{
	char dir[PATH_MAX];
	int r = cairn_repo__path(repo, dir, sizeof(dir), "snapshots");
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return cairn_err_set(-errno, "cannot read '%s': %s", dir, strerror(errno));
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		struct cairn_id id;
		if (cairn_id_parse(&id, de->d_name) < 0)
			continue; /* temp files */
		if (count == cap) {
			cap = cap ? 2 * cap : 64;
			struct cairn_id *p = realloc(ids, cap * sizeof(*ids));
			if (!p)
				return cairn_err_set(-ENOMEM, "out of memory");
			ids = p;
		}
		ids[count++] = id;
	}
	*out = TAKE_PTR(ids);
	*n = count;
	return 0;
}

void cairn_snapshot_list_free(struct cairn_snapshot **list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		cairn_snapshot_free(list[i]);
	free(list);
}

static int by_time(const void *a, const void *b)
{
	const struct cairn_snapshot *x = *(struct cairn_snapshot *const *)a;
	const struct cairn_snapshot *y = *(struct cairn_snapshot *const *)b;
	if (x->time_ns != y->time_ns)
		return x->time_ns < y->time_ns ? -1 : 1;
	return cairn_id_cmp(&x->id, &y->id);
}

/* Load every listed snapshot. A damaged one (-EBADMSG) fails the listing when
 * strict, else it is left out with a warning; one removed since the directory
 * was read is left out silently. */
static int load_all(cairn_repo *repo, const struct cairn_id *ids, size_t count, bool strict,
                    struct cairn_snapshot **list, size_t *n)
{
	*n = 0;
	for (size_t i = 0; i < count; i++) {
		int r = cairn_repo_snapshot_load(repo, &ids[i], &list[*n]);
		if (r >= 0)
			(*n)++;
		else if (r == -EBADMSG && !strict)
			cairn_repo__warn(repo, "skipping a damaged snapshot: %s", cairn_err_msg());
		else if (r != -ENOENT)
			return r;
	}
	return 0;
}

int cairn_repo__snapshot_list(cairn_repo *repo, bool strict, struct cairn_snapshot ***out,
                              size_t *n)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t count = 0, loaded = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &count);
	if (r < 0)
		return r;
	struct cairn_snapshot **list = calloc(count ? count : 1, sizeof(*list));
	if (!list)
		return cairn_err_set(-ENOMEM, "out of memory");
	if ((r = load_all(repo, ids, count, strict, list, &loaded)) < 0) {
		cairn_snapshot_list_free(list, loaded);
		return r;
	}
	qsort(list, loaded, sizeof(*list), by_time);
	*out = list;
	*n = loaded;
	return 0;
}

int cairn_repo_snapshot_list(cairn_repo *repo, struct cairn_snapshot ***out, size_t *n)
{
	return cairn_repo__snapshot_list(repo, false, out, n);
}

/* The one of n IDs (id(i) gives the i-th) that the ID prefix spec names: its
 * index, -ENOENT none, -EINVAL ambiguous or malformed. */
static int find_prefix(const char *spec, size_t n,
                       const struct cairn_id *(*id)(const void *, size_t), const void *ids)
{
	size_t len = strlen(spec);
	int found = -1, matches = 0;

	if (len < 4 || len > 64 || strspn(spec, "0123456789abcdef") != len)
		return cairn_err_set(-EINVAL, "'%s' is not a snapshot ID or 'latest'", spec);
	for (size_t i = 0; i < n; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id(ids, i));
		if (strncmp(hex, spec, len) == 0 && matches++ == 0)
			found = (int)i;
	}
	if (matches == 0)
		return cairn_err_set(-ENOENT, "no snapshot matches '%s'", spec);
	if (matches > 1)
		return cairn_err_set(-EINVAL, "snapshot ID '%s' is ambiguous (%d match)", spec,
		                     matches);
	return found;
}

static const struct cairn_id *snapshot_id_at(const void *list, size_t i)
{
	return &((struct cairn_snapshot *const *)list)[i]->id;
}

static const struct cairn_id *id_at(const void *ids, size_t i)
{
	return &((const struct cairn_id *)ids)[i];
}

int cairn_snapshot_find(struct cairn_snapshot *const *list, size_t n, const char *spec)
{
	if (strcmp(spec, "latest") == 0) {
		if (n == 0)
			return cairn_err_set(-ENOENT, "the repository has no snapshots");
		return (int)(n - 1);
	}
	return find_prefix(spec, n, snapshot_id_at, list);
}

int cairn_repo_snapshot_resolve(cairn_repo *repo, const char *spec, struct cairn_id *out)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &n);
	if (r >= 0 && (r = find_prefix(spec, n, id_at, ids)) >= 0)
		*out = ids[r];
	return r < 0 ? r : 0;
}

int cairn_repo_snapshot_delete(cairn_repo *repo, const struct cairn_id *id)
{
	char hex[CAIRN_ID_HEX_SIZE], path[PATH_MAX], dir[PATH_MAX];
	int r;

	if (cairn_repo__read_only(repo))
		return cairn_err_set(-EROFS, "repository opened read-only");
	cairn_id_hex(hex, id);
	if ((r = cairn_repo__path(repo, path, sizeof(path), "snapshots/%s", hex)) < 0 ||
	    (r = cairn_repo__path(repo, dir, sizeof(dir), "snapshots")) < 0)
		return r;
	if (unlink(path) < 0)
		return cairn_err_set(-errno, "cannot remove snapshot %.8s: %s", hex,
		                     strerror(errno));
	if ((r = cairn_fsync_dir(dir)) < 0)
		return r;
	if (cairn_repo__index(repo))
		return cairn_index__del_snapshot(cairn_repo__index(repo), id);
	return 0;
}
