/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot plaintext codec (FORMAT.md §8). */
#include "cairn/store.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/*
 * Layout (FORMAT.md §8), all integers little-endian:
 *   "CSNP" u8 version (1), i64 time_ns, str16 hostname, str16 username,
 *   u32 npaths x str16, u32 ntags x str16, id root, u8 has_parent, id parent,
 *   u64 files_new files_changed files_unmodified dirs bytes_read bytes_added blobs_added,
 *   u32 errors, u8 partial, str16 program version.
 * Strings become C strings, so a NUL inside one is corrupt.
 */
#define SNAP_MAGIC "CSNP"
#define SNAP_VERSION 1

DEFINE_FREEP(struct cairn_snapshot, cairn_snapshot_free)

/* ---- encoding ------------------------------------------------------------ */

static int check_str(const char *s, const char *what)
{
	if (!s)
		return cairn_err_set(-EINVAL, "snapshot: %s is NULL", what);
	if (strlen(s) > UINT16_MAX)
		return cairn_err_set(-EINVAL, "snapshot: %s is longer than %u bytes", what,
		                     UINT16_MAX);
	return 0;
}

static int check_list(char *const *list, size_t n, size_t max, const char *what)
{
	if (n > max)
		return cairn_err_set(-EINVAL, "snapshot: %zu %s, more than %zu", n, what, max);
	for (size_t i = 0; i < n; i++) {
		int r = check_str(list[i], what);
		if (r < 0)
			return r;
	}
	return 0;
}

static int check(const struct cairn_snapshot *s)
{
	int r;

	if ((r = check_str(s->hostname, "hostname")) < 0 ||
	    (r = check_str(s->username, "username")) < 0 ||
	    (r = check_str(s->program_version, "program version")) < 0 ||
	    (r = check_list(s->paths, s->npaths, CAIRN_SNAPSHOT_MAX_PATHS, "paths")) < 0)
		return r;
	return check_list(s->tags, s->ntags, CAIRN_SNAPSHOT_MAX_TAGS, "tags");
}

static int put_str(struct cairn_buf *b, const char *s)
{
	return cairn_buf_put_str16(b, s, strlen(s));
}

static int put_list(struct cairn_buf *b, char *const *list, size_t n)
{
	int r = cairn_buf_put_u32(b, (uint32_t)n);
	for (size_t i = 0; r >= 0 && i < n; i++)
		r = put_str(b, list[i]);
	return r;
}

static int put_summary(struct cairn_buf *b, const struct cairn_snapshot_summary *m)
{
	const uint64_t v[] = { m->files_new,  m->files_changed, m->files_unmodified, m->dirs,
		               m->bytes_read, m->bytes_added,   m->blobs_added };
	int r = 0;

	for (size_t i = 0; r >= 0 && i < ARRAY_SIZE(v); i++)
		r = cairn_buf_put_u64(b, v[i]);
	if (r < 0 || (r = cairn_buf_put_u32(b, m->errors)) < 0)
		return r;
	return cairn_buf_put_u8(b, m->partial ? 1 : 0);
}

static int put_all(struct cairn_buf *b, const struct cairn_snapshot *s)
{
	static const struct cairn_id zero;
	int r;

	if ((r = cairn_buf_put(b, SNAP_MAGIC, 4)) < 0 ||
	    (r = cairn_buf_put_u8(b, SNAP_VERSION)) < 0 ||
	    (r = cairn_buf_put_u64(b, (uint64_t)s->time_ns)) < 0 ||
	    (r = put_str(b, s->hostname)) < 0 || (r = put_str(b, s->username)) < 0 ||
	    (r = put_list(b, s->paths, s->npaths)) < 0 || (r = put_list(b, s->tags, s->ntags)) < 0)
		return r;
	if ((r = cairn_buf_put(b, s->root.b, CAIRN_ID_SIZE)) < 0 ||
	    (r = cairn_buf_put_u8(b, s->has_parent ? 1 : 0)) < 0 ||
	    (r = cairn_buf_put(b, (s->has_parent ? &s->parent : &zero)->b, CAIRN_ID_SIZE)) < 0 ||
	    (r = put_summary(b, &s->summary)) < 0)
		return r;
	return put_str(b, s->program_version);
}

int cairn_snapshot_encode(const struct cairn_snapshot *s, struct cairn_buf *out)
{
	size_t start = out->len;
	int r = check(s);

	if (r < 0)
		return r;
	if ((r = put_all(out, s)) < 0) {
		out->len = start;
		return r;
	}
	if (out->len - start > CAIRN_SNAPSHOT_MAX_SIZE) {
		out->len = start;
		return cairn_err_set(-EINVAL, "snapshot: more than %u bytes",
		                     CAIRN_SNAPSHOT_MAX_SIZE);
	}
	return 0;
}

/* ---- decoding ------------------------------------------------------------ */

struct dec {
	struct cairn_rd rd;
	size_t len; /* of the whole input, for offsets in messages */
};

static int bad(const struct dec *d, const char *what)
{
	return cairn_err_set(-EBADMSG, "snapshot: %s at offset %zu", what, d->len - d->rd.left);
}

static int get_str(struct dec *d, char **out, const char *what)
{
	const uint8_t *p;
	size_t n;

	if (cairn_rd_str16(&d->rd, &p, &n) < 0)
		return bad(d, "truncated string");
	if (n && memchr(p, 0, n))
		return bad(d, what);
	char *s = malloc(n + 1);
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory decoding snapshot");
	if (n)
		memcpy(s, p, n);
	s[n] = '\0';
	*out = s;
	return 0;
}

/* *list and *n are set before the strings are read, so a failure frees what was read. */
static int get_list(struct dec *d, char ***list, size_t *n, size_t max, const char *what)
{
	uint32_t count;

	if (cairn_rd_u32(&d->rd, &count) < 0)
		return bad(d, "truncated count");
	if (count > max || count > d->rd.left / 2)
		return bad(d, "count exceeds limit or data");
	if (count && !(*list = calloc(count, sizeof(**list))))
		return cairn_err_set(-ENOMEM, "out of memory decoding snapshot");
	*n = count;
	for (size_t i = 0; i < count; i++) {
		int r = get_str(d, &(*list)[i], what);
		if (r < 0)
			return r;
	}
	return 0;
}

static int get_header(struct dec *d, int64_t *time_ns)
{
	const uint8_t *magic;
	uint8_t version;

	if (cairn_rd_take(&d->rd, 4, &magic) < 0 || memcmp(magic, SNAP_MAGIC, 4) != 0)
		return bad(d, "bad magic");
	if (cairn_rd_u8(&d->rd, &version) < 0 || version != SNAP_VERSION)
		return bad(d, "unknown version");
	if (cairn_rd_i64(&d->rd, time_ns) < 0)
		return bad(d, "truncated header");
	return 0;
}

static int get_ids(struct dec *d, struct cairn_snapshot *s)
{
	static const struct cairn_id zero;
	uint8_t has_parent;

	if (cairn_rd_copy(&d->rd, s->root.b, CAIRN_ID_SIZE) < 0 ||
	    cairn_rd_u8(&d->rd, &has_parent) < 0 ||
	    cairn_rd_copy(&d->rd, s->parent.b, CAIRN_ID_SIZE) < 0)
		return bad(d, "truncated tree ids");
	/* Canonical: no parent is exactly 0 and a zero id (FORMAT.md §8). */
	if (has_parent > 1 || (!has_parent && memcmp(&s->parent, &zero, sizeof(zero)) != 0))
		return bad(d, "bad parent");
	s->has_parent = has_parent;
	return 0;
}

static int get_summary(struct dec *d, struct cairn_snapshot_summary *m)
{
	uint64_t *const v[] = { &m->files_new,  &m->files_changed, &m->files_unmodified, &m->dirs,
		                &m->bytes_read, &m->bytes_added,   &m->blobs_added };
	uint8_t partial;

	for (size_t i = 0; i < ARRAY_SIZE(v); i++)
		if (cairn_rd_u64(&d->rd, v[i]) < 0)
			return bad(d, "truncated summary");
	if (cairn_rd_u32(&d->rd, &m->errors) < 0 || cairn_rd_u8(&d->rd, &partial) < 0)
		return bad(d, "truncated summary");
	if (partial > 1)
		return bad(d, "bad partial flag");
	m->partial = partial;
	return 0;
}

static int get_all(struct dec *d, struct cairn_snapshot *s)
{
	int r;

	if ((r = get_header(d, &s->time_ns)) < 0 ||
	    (r = get_str(d, &s->hostname, "NUL in hostname")) < 0 ||
	    (r = get_str(d, &s->username, "NUL in username")) < 0 ||
	    (r = get_list(d, &s->paths, &s->npaths, CAIRN_SNAPSHOT_MAX_PATHS, "NUL in path")) < 0 ||
	    (r = get_list(d, &s->tags, &s->ntags, CAIRN_SNAPSHOT_MAX_TAGS, "NUL in tag")) < 0)
		return r;
	if ((r = get_ids(d, s)) < 0 || (r = get_summary(d, &s->summary)) < 0 ||
	    (r = get_str(d, &s->program_version, "NUL in program version")) < 0)
		return r;
	if (d->rd.left)
		return bad(d, "trailing bytes");
	return 0;
}

int cairn_snapshot_decode(struct cairn_snapshot **out, const uint8_t *data, size_t len)
{
	struct dec d = { { data, len }, len };

	if (len > CAIRN_SNAPSHOT_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "snapshot: %zu bytes exceed the 16 MiB limit", len);
	_cleanup_(cairn_snapshot_freep) struct cairn_snapshot *s = calloc(1, sizeof(*s));
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory decoding snapshot");
	int r = get_all(&d, s);
	if (r < 0)
		return r;
	*out = TAKE_PTR(s);
	return 0;
}

static void free_list(char **list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		free(list[i]);
	free(list);
}

void cairn_snapshot_free(struct cairn_snapshot *s)
{
	if (!s)
		return;
	free(s->hostname);
	free(s->username);
	free_list(s->paths, s->npaths);
	free_list(s->tags, s->ntags);
	free(s->program_version);
	free(s);
}

void cairn_snapshot_list_free(struct cairn_snapshot **list, size_t n)
{
	for (size_t i = 0; list && i < n; i++)
		cairn_snapshot_free(list[i]);
	free(list);
}
