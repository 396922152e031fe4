/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairnfs helpers: offset -> extent maps, SEEK_DATA/SEEK_HOLE, inode numbers (the
 * blob/tree cache is in test-cache.c). */
#include "check.h"

#include <string.h>

#include "fsmap.h"

static struct cairn_extent ext(uint8_t tag, uint64_t len)
{
	struct cairn_extent e = { .len = len };
	memset(e.id.b, tag, sizeof(e.id.b)); /* tag 0: a hole */
	return e;
}

/* hole 100 | data 50 | data 25 | hole 10 | data 5 : size 190 */
static const uint64_t lens[] = { 100, 50, 25, 10, 5 };
static const uint8_t tags[] = { 0, 1, 2, 0, 3 };

static void make(struct cairn_extent *e, struct fs_extmap *m)
{
	for (size_t i = 0; i < 5; i++)
		e[i] = ext(tags[i], lens[i]);
	CHECK_OK(fs_extmap_init(m, e, 5));
}

static void test_fsmap__find(void)
{
	struct cairn_extent e[5];
	struct fs_extmap m;
	make(e, &m);
	CHECK_EQ(fs_extmap_size(&m), 190);
	CHECK_EQ(fs_extmap_find(&m, 0), 0);
	CHECK_EQ(fs_extmap_find(&m, 99), 0);
	CHECK_EQ(fs_extmap_find(&m, 100), 1);
	CHECK_EQ(fs_extmap_find(&m, 149), 1);
	CHECK_EQ(fs_extmap_find(&m, 150), 2);
	CHECK_EQ(fs_extmap_find(&m, 175), 3);
	CHECK_EQ(fs_extmap_find(&m, 189), 4);
	/* Every offset against a linear scan. */
	for (uint64_t off = 0; off < 190; off++) {
		size_t want = 0;
		while (m.start[want + 1] <= off)
			want++;
		CHECK_EQ(fs_extmap_find(&m, off), want);
	}
	CHECK_EQ(fs_extents_allocated(e, 5), 80);
	fs_extmap_release(&m);
}

static void test_fsmap__seek(void)
{
	struct cairn_extent e[5];
	struct fs_extmap m;
	make(e, &m);
	CHECK_EQ(fs_extmap_seek(&m, 0, true), 100);
	CHECK_EQ(fs_extmap_seek(&m, 120, true), 120);
	CHECK_EQ(fs_extmap_seek(&m, 176, true), 185);
	CHECK_EQ(fs_extmap_seek(&m, 0, false), 0);
	CHECK_EQ(fs_extmap_seek(&m, 100, false), 175);
	CHECK_EQ(fs_extmap_seek(&m, 186, false), 190); /* the end counts as a hole */
	CHECK_EQ(fs_extmap_seek(&m, 190, true), -ENXIO);
	CHECK_EQ(fs_extmap_seek(&m, 190, false), -ENXIO);
	fs_extmap_release(&m);

	/* Trailing hole: no data after it. */
	struct cairn_extent t[2] = { ext(1, 10), ext(0, 10) };
	CHECK_OK(fs_extmap_init(&m, t, 2));
	CHECK_EQ(fs_extmap_seek(&m, 12, true), -ENXIO);
	CHECK_EQ(fs_extmap_seek(&m, 3, false), 10);
	fs_extmap_release(&m);

	/* An empty file. */
	CHECK_OK(fs_extmap_init(&m, NULL, 0));
	CHECK_EQ(fs_extmap_size(&m), 0);
	CHECK_EQ(fs_extmap_seek(&m, 0, true), -ENXIO);
	fs_extmap_release(&m);
}

static void test_fsmap__overflow(void)
{
	struct cairn_extent e[2] = { ext(1, UINT64_MAX), ext(2, 2) };
	struct fs_extmap m;
	CHECK_ERR(fs_extmap_init(&m, e, 2), -EBADMSG);
}

static void test_fsmap__inodes(void)
{
	struct cairn_id s1, s2;
	memset(s1.b, 1, sizeof(s1.b));
	memset(s2.b, 2, sizeof(s2.b));
	struct cairn_id t1, t2;
	memset(t1.b, 3, sizeof(t1.b));
	memset(t2.b, 4, sizeof(t2.b));
	struct cairn_node a = { .type = CAIRN_NODE_FILE,
		                .dev = 10,
		                .ino = 42,
		                .size = 5,
		                .mtime_ns = 7,
		                .ctime_ns = 9,
		                .nlink = 2 };
	struct cairn_node b = a;
	b.name = (const uint8_t *)"other-name"; /* a hard link: same source inode */
	b.name_len = 10;
	CHECK_EQ(fs_ino_entry(&s1, &t1, 0, &a), fs_ino_entry(&s1, &t2, 5, &b));
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s2, &t1, 0, &a));
	b.ino = 43;
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s1, &t2, 5, &b));
	b = a;
	b.ctime_ns = 10; /* the source reused the inode for another file */
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s1, &t2, 5, &b));
	b = a;
	b.type = CAIRN_NODE_DIR; /* a reused source inode never merges two kinds */
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s1, &t2, 5, &b));
	/* One link: (dev, ino) says nothing, the place does. */
	a.nlink = b.nlink = 1;
	b = a;
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s1, &t2, 5, &b));
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s1, &t1, 1, &b));
	CHECK_EQ(fs_ino_entry(&s1, &t1, 0, &a), fs_ino_entry(&s1, &t1, 0, &b));
	CHECK(fs_ino_entry(&s1, &t1, 0, &a) != fs_ino_entry(&s2, &t1, 0, &a));
	CHECK(fs_ino_snaproot(&s1) != fs_ino_snaproot(&s2));
	CHECK_EQ(fs_ino_virtual("latest", 6), fs_ino_virtual("latest", 6));
	CHECK(fs_ino_virtual("latest", 6) != fs_ino_virtual("hosts", 5));
	/* Known answer: the numbers must not change between versions (stable inodes). */
	CHECK(fs_ino_virtual("latest", 6) == 0xb912960f18f24657ull);
	/* A link's number follows its target (the kernel caches link bodies by
	 * inode), and stays the same for the same target. */
	uint64_t l1 = fs_ino_link("latest", 6, "snapshots/2026-12-01T10:00:00");
	CHECK_EQ(l1, fs_ino_link("latest", 6, "snapshots/2026-12-01T10:00:00"));
	CHECK(l1 != fs_ino_link("latest", 6, "snapshots/2026-12-01T11:00:00"));
	CHECK(l1 != fs_ino_link("ids/1234abcd", 11, "snapshots/2026-12-01T10:00:00"));
	CHECK(l1 != fs_ino_virtual("latest", 6) && l1 > FS_ROOT_INO);
	for (int i = 0; i < 1000; i++) {
		char p[32];
		int n = snprintf(p, sizeof(p), "history/%d", i);
		CHECK(fs_ino_virtual(p, (size_t)n) > FS_ROOT_INO);
	}
}

int main(void)
{
	RUN(test_fsmap__find);
	RUN(test_fsmap__seek);
	RUN(test_fsmap__overflow);
	RUN(test_fsmap__inodes);
	return 0;
}
