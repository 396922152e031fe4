/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Extent maps and inode numbers: the parts of cairnfs that need no FUSE session. */
#include "fsmap.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define SHA256_SIZE 32

int fs_extmap_init(struct fs_extmap *m, const struct cairn_extent *ext, size_t n)
{
	uint64_t *start = malloc((n + 1) * sizeof(*start));
	uint64_t pos = 0;

	if (!start)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		start[i] = pos;
		/* The tree decoder checked the sum; this keeps the map safe on its own. */
		if (__builtin_add_overflow(pos, ext[i].len, &pos)) {
			free(start);
			return cairn_err_set(-EBADMSG, "extent lengths overflow");
		}
	}
	start[n] = pos;
	*m = (struct fs_extmap){ .ext = ext, .n = n, .start = start };
	return 0;
}

void fs_extmap_release(struct fs_extmap *m)
{
	free(m->start);
	m->start = NULL;
	m->n = 0;
}

size_t fs_extmap_find(const struct fs_extmap *m, uint64_t off)
{
	/* The last extent whose start is <= off: start[] is strictly increasing
	 * (every len > 0), so the answer is unique. */
	size_t lo = 0, hi = m->n;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;
		if (m->start[mid] <= off)
			lo = mid;
		else
			hi = mid;
	}
	return lo;
}

int64_t fs_extmap_seek(const struct fs_extmap *m, uint64_t off, bool data)
{
	uint64_t size = fs_extmap_size(m);
	if (off >= size || size > INT64_MAX)
		return -ENXIO;
	for (size_t i = fs_extmap_find(m, off); i < m->n; i++) {
		bool hole = cairn_id_is_zero(&m->ext[i].id);
		if (hole != data)
			return (int64_t)(m->start[i] > off ? m->start[i] : off);
	}
	return data ? -ENXIO : (int64_t)size;
}

uint64_t fs_extents_allocated(const struct cairn_extent *ext, size_t n)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < n; i++)
		if (!cairn_id_is_zero(&ext[i].id))
			sum += ext[i].len;
	return sum;
}

/* ---- inode numbers ------------------------------------------------------ */

static uint64_t ino_from(const uint8_t *msg, size_t len)
{
	uint8_t md[SHA256_SIZE];
	if (cairn_sha256(msg, len, md) < 0)
		return 0; /* out of memory */
	uint64_t ino = cairn_get_le64(md);
	return ino <= FS_ROOT_INO ? ino + 2 : ino;
}

uint64_t fs_ino_virtual(const char *vpath, size_t len)
{
	/* The path is digested first so that any length fits a fixed buffer. */
	static const char tag[] = "cairnfs v1 virtual";
	uint8_t buf[sizeof(tag) + SHA256_SIZE];
	memcpy(buf, tag, sizeof(tag));
	if (cairn_sha256(vpath, len, buf + sizeof(tag)) < 0)
		return 0;
	return ino_from(buf, sizeof(buf));
}

uint64_t fs_ino_link(const char *vpath, size_t len, const char *target)
{
	static const char tag[] = "cairnfs v1 link";
	uint8_t buf[sizeof(tag) + 2 * SHA256_SIZE];
	memcpy(buf, tag, sizeof(tag));
	if (cairn_sha256(vpath, len, buf + sizeof(tag)) < 0 ||
	    cairn_sha256(target, strlen(target), buf + sizeof(tag) + SHA256_SIZE) < 0)
		return 0;
	return ino_from(buf, sizeof(buf));
}

uint64_t fs_ino_snaproot(const struct cairn_id *snap)
{
	static const char tag[] = "cairnfs v1 snapshot";
	uint8_t buf[sizeof(tag) + CAIRN_ID_SIZE];
	memcpy(buf, tag, sizeof(tag));
	memcpy(buf + sizeof(tag), snap->b, CAIRN_ID_SIZE);
	return ino_from(buf, sizeof(buf));
}

uint64_t fs_ino_entry(const struct cairn_id *snap, const struct cairn_id *tree, uint32_t index,
                      const struct cairn_node *n)
{
	static const char link_tag[] = "cairnfs v2 link", entry_tag[] = "cairnfs v2 entry";
	uint8_t buf[sizeof(link_tag) + 2 * CAIRN_ID_SIZE + 8 * 5 + 4 * 3 + 1];
	uint8_t *p = buf;

	if (n->type == CAIRN_NODE_DIR || n->nlink < 2) { /* no hard link: where it is */
		memcpy(p, entry_tag, sizeof(entry_tag));
		p += sizeof(entry_tag);
		memcpy(p, snap->b, CAIRN_ID_SIZE);
		memcpy(p + CAIRN_ID_SIZE, tree->b, CAIRN_ID_SIZE);
		cairn_le32(p + 2 * CAIRN_ID_SIZE, index);
		return ino_from(buf, (size_t)(p - buf) + 2 * CAIRN_ID_SIZE + 4);
	}
	/* Every field a hard link's names share (the inode's own), ctime too: a
	 * number the source reused for another file differs in some of them. */
	memcpy(p, link_tag, sizeof(link_tag));
	p += sizeof(link_tag);
	memcpy(p, snap->b, CAIRN_ID_SIZE);
	p += CAIRN_ID_SIZE;
	cairn_le64(p, n->dev);
	cairn_le64(p + 8, n->ino);
	cairn_le64(p + 16, n->size);
	cairn_le64(p + 24, (uint64_t)n->mtime_ns);
	cairn_le64(p + 32, (uint64_t)n->ctime_ns);
	cairn_le32(p + 40, n->mode);
	cairn_le32(p + 44, n->uid);
	cairn_le32(p + 48, n->gid);
	p[52] = n->type;
	return ino_from(buf, (size_t)(p - buf) + 53);
}
