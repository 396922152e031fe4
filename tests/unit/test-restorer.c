/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Restore (tools/restorer.c) of crafted trees: hard links only between entries of
 * one type and size, every kind of entry cp -a makes, and no metadata call that
 * follows a symlink planted in the target while an entry is made. */
#include "check.h"

#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include "cairn/store.h"
#include "restorer.h"
#include "cleanup.h"

#define PW "secret"

DEFINE_FREEP(cairn_tree_builder, cairn_tree_builder_free)

/* ---- a hostile writer of the target directory --------------------------- */

/* When set, the next fifo the restorer makes is replaced by a symlink to this
 * path at once: what another user who can write the target could do between
 * the restorer's calls. These definitions take the place of libc's for the
 * restorer linked into this test. */
static const char *plant_symlink_to;
/* When set, the next fifo the restorer makes has this directory of the target
 * (a path) moved away and replaced by a symlink to plant_dir_to. */
static const char *plant_dir, *plant_dir_to;

static void plant(int dirfd, const char *path, mode_t mode)
{
	char moved[600];
	if (plant_dir && S_ISFIFO(mode)) {
		snprintf(moved, sizeof(moved), "%s.moved", plant_dir);
		CHECK_OK(rename(plant_dir, moved));
		CHECK_OK(symlink(plant_dir_to, plant_dir));
		plant_dir = NULL;
	}
	if (!plant_symlink_to || !S_ISFIFO(mode))
		return;
	CHECK_OK(unlinkat(dirfd, path, 0));
	CHECK_OK(symlinkat(plant_symlink_to, dirfd, path));
	plant_symlink_to = NULL;
}

int mknodat(int dirfd, const char *path, mode_t mode, dev_t dev)
{
	int r = (int)syscall(SYS_mknodat, dirfd, path, mode, dev);
	if (r == 0)
		plant(dirfd, path, mode);
	return r;
}

int mkfifoat(int dirfd, const char *path, mode_t mode)
{
	return mknodat(dirfd, path, S_IFIFO | (mode & 07777), 0);
}

/* ---- building snapshots ------------------------------------------------- */

static cairn_repo *make_repo(void)
{
	struct cairn_init_opts o = { .version = CAIRN_INIT_OPTS_VERSION,
		                     .compression = -1,
		                     .kdf_log2n = 10 };
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	char path[512];
	cairn_repo *repo = NULL;

	snprintf(path, sizeof(path), "%s/repo", check_tmpdir());
	CHECK_OK(cairn_repo_init(path, PW, strlen(PW), &o));
	CHECK_OK(cairn_repo_open(&repo, path, PW, strlen(PW), &ro));
	return repo;
}

static struct cairn_node node(const char *name, uint8_t type, uint64_t ino)
{
	return (struct cairn_node){
		.name = (const uint8_t *)name,
		.name_len = strlen(name),
		.type = type,
		.mode = 0644,
		.mtime_ns = 1700000000000000000,
		.atime_ns = 1700000000000000000,
		.dev = 0x803,
		.ino = ino,
		.nlink = 1,
	};
}

/* A regular file holding text. */
static struct cairn_node file(cairn_repo *repo, const char *name, uint64_t ino, const char *text,
                              struct cairn_extent *ext)
{
	struct cairn_node n = node(name, CAIRN_NODE_FILE, ino);
	ext->len = strlen(text);
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_DATA, text, ext->len, NULL, &ext->id));
	n.size = ext->len;
	n.extents = ext;
	n.nextents = 1;
	return n;
}

/* Store the tree of the builder's nodes as snap's root. */
static void store_root(cairn_repo *repo, cairn_tree_builder *b, struct cairn_snapshot *snap)
{
	_cleanup_buf_ struct cairn_buf data = CAIRN_BUF_INIT;
	*snap = (struct cairn_snapshot){ 0 };
	CHECK_OK(cairn_tree_builder_encode(b, &data));
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_TREE, data.data, data.len, NULL, &snap->root));
	CHECK_OK(cairn_repo_flush(repo));
}

static const char *target_dir(void)
{
	static char target[512];
	snprintf(target, sizeof(target), "%s/target", check_tmpdir());
	return target;
}

/* Restore snap into check_tmpdir()/target. Returns the restore's warnings. */
static uint64_t restore_snap(cairn_repo *repo, const struct cairn_snapshot *snap)
{
	struct restorer_stats st;
	struct restorer_opts o = { .target = target_dir() };
	CHECK_OK(restorer_run(repo, snap, &o, &st));
	return st.warnings;
}

/* Store the tree of the builder's nodes and restore it as a snapshot's root
 * into check_tmpdir()/target. Returns the restore's warnings. */
static uint64_t restore(cairn_repo *repo, cairn_tree_builder *b)
{
	struct cairn_snapshot snap;
	store_root(repo, b, &snap);
	return restore_snap(repo, &snap);
}

/* A directory node holding the builder's nodes. */
static struct cairn_node dir(cairn_repo *repo, const char *name, uint64_t ino,
                             cairn_tree_builder *sub)
{
	_cleanup_buf_ struct cairn_buf data = CAIRN_BUF_INIT;
	struct cairn_node n = node(name, CAIRN_NODE_DIR, ino);
	n.mode = 0755;
	CHECK_OK(cairn_tree_builder_encode(sub, &data));
	CHECK_OK(cairn_repo_put(repo, CAIRN_BLOB_TREE, data.data, data.len, NULL, &n.subtree));
	return n;
}

static void lstat_in_target(const char *name, struct stat *st)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/target/%s", check_tmpdir(), name);
	CHECK_OK(lstat(p, st));
}

static bool in_target(const char *name)
{
	char p[600];
	struct stat st;
	snprintf(p, sizeof(p), "%s/target/%s", check_tmpdir(), name);
	return lstat(p, &st) == 0;
}

static void check_content(const char *name, const char *text)
{
	char p[600], buf[64] = "";
	snprintf(p, sizeof(p), "%s/target/%s", check_tmpdir(), name);
	_cleanup_close_ int fd = open(p, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(read(fd, buf, sizeof(buf) - 1) == (ssize_t)strlen(text));
	CHECK(strcmp(buf, text) == 0);
}

/* ---- cases -------------------------------------------------------------- */

/* A file sharing (dev, ino) with a symlink, or with a file of another size, is
 * its own file; files that agree on the inode and its size are linked. */
static void test_restorer__links_need_type_and_size(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	struct cairn_extent ext[4];
	cairn_repo *repo = make_repo();
	struct stat a, f, l1, l2, other;

	CHECK_OK(cairn_tree_builder_new(&b));
	struct cairn_node n = node("a-link", CAIRN_NODE_SYMLINK, 42);
	n.target = (const uint8_t *)"/etc/passwd";
	n.target_len = strlen("/etc/passwd");
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "b-file", 42, "not a link\n", &ext[0]);
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "c-one", 7, "linked\n", &ext[1]);
	n.nlink = 3;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "d-two", 7, "linked\n", &ext[2]);
	n.nlink = 3;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "e-other", 7, "other size\n", &ext[3]);
	n.nlink = 3;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_EQ(restore(repo, b), 0);

	lstat_in_target("a-link", &a);
	lstat_in_target("b-file", &f);
	CHECK(S_ISLNK(a.st_mode));
	CHECK(S_ISREG(f.st_mode));
	CHECK(a.st_ino != f.st_ino);
	CHECK_EQ(f.st_nlink, 1);
	check_content("b-file", "not a link\n");
	lstat_in_target("c-one", &l1);
	lstat_in_target("d-two", &l2);
	lstat_in_target("e-other", &other);
	CHECK_EQ(l1.st_ino, l2.st_ino);
	CHECK(other.st_ino != l1.st_ino);
	check_content("e-other", "other size\n");
	cairn_repo_close(repo);
}

/* Fifos and unix sockets come back with their type and mode (devices too, as
 * root), as cp -a makes them. */
static void test_restorer__special_files(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	cairn_repo *repo = make_repo();
	struct stat st;

	CHECK_OK(cairn_tree_builder_new(&b));
	struct cairn_node n = node("fifo", CAIRN_NODE_FIFO, 1);
	n.mode = 0640;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("socket", CAIRN_NODE_SOCKET, 2);
	n.mode = 0751;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	if (geteuid() == 0) {
		n = node("null", CAIRN_NODE_CHR, 3);
		n.mode = 0666;
		n.rdev = makedev(1, 3);
		CHECK_OK(cairn_tree_builder_add(b, &n));
	}
	CHECK_EQ(restore(repo, b), 0);

	lstat_in_target("fifo", &st);
	CHECK(S_ISFIFO(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0640);
	CHECK_EQ(st.st_mtim.tv_sec, 1700000000);
	lstat_in_target("socket", &st);
	CHECK(S_ISSOCK(st.st_mode));
	CHECK_EQ(st.st_mode & 07777, 0751);
	CHECK_EQ(st.st_mtim.tv_sec, 1700000000);
	if (geteuid() == 0) {
		lstat_in_target("null", &st);
		CHECK(S_ISCHR(st.st_mode));
		CHECK_EQ(st.st_rdev, makedev(1, 3));
		CHECK_EQ(st.st_mode & 07777, 0666);
	}
	cairn_repo_close(repo);
}

/* A symlink put where the fifo was just made: the fifo's mode, owner and times
 * must not land on the symlink's target. */
static void test_restorer__planted_symlink_not_followed(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	cairn_repo *repo = make_repo();
	char victim[512];
	struct stat st;

	snprintf(victim, sizeof(victim), "%s/victim", check_tmpdir());
	_cleanup_close_ int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_OK(fchmod(fd, 0600));
	CHECK_OK(cairn_tree_builder_new(&b));
	struct cairn_node n = node("fifo", CAIRN_NODE_FIFO, 1);
	n.mode = 06777;
	n.uid = n.gid = 4242;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	plant_symlink_to = victim;
	uint64_t warnings = restore(repo, b);
	CHECK(plant_symlink_to == NULL);

	CHECK_OK(stat(victim, &st));
	CHECK_EQ(st.st_mode & 07777, 0600);
	CHECK_EQ(st.st_uid, geteuid());
	CHECK(st.st_mtim.tv_sec != 1700000000);
	CHECK_EQ(warnings, 1); /* the fifo, which is not restored */
	CHECK(!in_target("fifo"));
	cairn_repo_close(repo);
}

/* A hard link is made to the first copy of its inode by a path in the target.
 * A directory on that path replaced by a symlink meanwhile must not be followed:
 * the link would reach a file outside the target. The entry comes back as a
 * copy of its own instead. */
static void test_restorer__link_path_not_followed(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *sub = NULL;
	struct cairn_extent ext[2];
	cairn_repo *repo = make_repo();
	char outside[512], victim[600], d[600];
	struct stat v, z;

	snprintf(outside, sizeof(outside), "%s/outside", check_tmpdir());
	snprintf(victim, sizeof(victim), "%s/h1", outside);
	CHECK_OK(mkdir(outside, 0700));
	_cleanup_close_ int fd = open(victim, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK(write(fd, "victim\n", 7) == 7);
	/* d/h1 and z are one inode; the fifo e is made between them. */
	CHECK_OK(cairn_tree_builder_new(&b));
	CHECK_OK(cairn_tree_builder_new(&sub));
	struct cairn_node n = file(repo, "h1", 9, "linked\n", &ext[0]);
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(sub, &n));
	n = dir(repo, "d", 8, sub);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("e", CAIRN_NODE_FIFO, 10);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "z", 9, "linked\n", &ext[1]);
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	snprintf(d, sizeof(d), "%s/d", target_dir());
	plant_dir = d;
	plant_dir_to = outside;
	restore(repo, b);
	CHECK(plant_dir == NULL);

	CHECK_OK(stat(victim, &v));
	CHECK_EQ(v.st_nlink, 1);
	lstat_in_target("z", &z);
	CHECK(S_ISREG(z.st_mode));
	CHECK(z.st_ino != v.st_ino);
	check_content("z", "linked\n");
	cairn_repo_close(repo);
}

/* Paths a dry run reports, each followed by '\n' (and '=' for a hard link). */
static void collect(const char *path, size_t len, const struct cairn_node *n, bool linked,
                    void *payload)
{
	(void)n;
	CHECK_OK(cairn_buf_put(payload, path, len));
	CHECK_OK(cairn_buf_put(payload, linked ? "=\n" : "\n", linked ? 2 : 1));
}

/* A root with: a, d/c, two names of one inode, a symlink. */
static void build_sample(cairn_repo *repo, cairn_tree_builder *b, struct cairn_extent *ext)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *sub = NULL;
	struct cairn_node n = file(repo, "a", 1, "alpha\n", &ext[0]);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	CHECK_OK(cairn_tree_builder_new(&sub));
	n = file(repo, "c", 2, "gamma\n", &ext[1]);
	CHECK_OK(cairn_tree_builder_add(sub, &n));
	n = dir(repo, "d", 3, sub);
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "l1", 4, "linked\n", &ext[2]);
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = file(repo, "l2", 4, "linked\n", &ext[3]);
	n.nlink = 2;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	n = node("s", CAIRN_NODE_SYMLINK, 5);
	n.target = (const uint8_t *)"a";
	n.target_len = 1;
	CHECK_OK(cairn_tree_builder_add(b, &n));
}

/* A dry run creates nothing, not even the target, reports every entry, and
 * counts what the restore then does. */
static void test_restorer__dry_run(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	_cleanup_buf_ struct cairn_buf seen = CAIRN_BUF_INIT;
	struct cairn_extent ext[4];
	struct cairn_snapshot snap;
	struct restorer_stats dry, real;
	cairn_repo *repo = make_repo();

	CHECK_OK(cairn_tree_builder_new(&b));
	build_sample(repo, b, ext);
	store_root(repo, b, &snap);
	struct restorer_opts o = {
		.target = target_dir(), .dry_run = true, .on_entry = collect, .payload = &seen
	};
	CHECK_OK(restorer_run(repo, &snap, &o, &dry));
	CHECK(!in_target(""));
	static const char want[] = "/a\n/d\n/d/c\n/l1\n/l2=\n/s\n";
	CHECK_EQ(seen.len, strlen(want));
	CHECK(memcmp(seen.data, want, seen.len) == 0);
	CHECK_EQ(dry.files, 3);
	CHECK_EQ(dry.dirs, 1);
	CHECK_EQ(dry.links, 1);
	CHECK_EQ(dry.others, 1);
	CHECK_EQ(dry.bytes, 6 + 6 + 7);

	o = (struct restorer_opts){ .target = target_dir() };
	CHECK_OK(restorer_run(repo, &snap, &o, &real));
	CHECK(memcmp(&dry, &real, sizeof(dry)) == 0);
	cairn_repo_close(repo);
}

static uint64_t verify(cairn_repo *repo, const struct cairn_snapshot *snap, uint64_t *files)
{
	struct restorer_stats st;
	struct restorer_opts o = { .target = target_dir() };
	CHECK_OK(restorer_verify(repo, snap, &o, &st));
	*files = st.files;
	return st.warnings;
}

static void write_at(const char *name, const char *text, off_t off)
{
	char p[600];
	snprintf(p, sizeof(p), "%s/%s", target_dir(), name);
	_cleanup_close_ int fd = open(p, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
	CHECK(fd >= 0);
	CHECK(pwrite(fd, text, strlen(text), off) == (ssize_t)strlen(text));
}

/* --verify finds every way a restored file can differ, and follows no symlink. */
static void test_restorer__verify(void)
{
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
	struct cairn_extent ext[6];
	struct cairn_snapshot snap;
	cairn_repo *repo = make_repo();
	uint64_t files;
	char p[600], q[600];

	CHECK_OK(cairn_tree_builder_new(&b));
	build_sample(repo, b, ext);
	/* A hole, then data. */
	struct cairn_node n = file(repo, "sparse", 6, "tail\n", &ext[5]);
	ext[4] = (struct cairn_extent){ .len = 8192 };
	ext[5].len = 5;
	n.extents = &ext[4];
	n.nextents = 2;
	n.size = 8192 + 5;
	CHECK_OK(cairn_tree_builder_add(b, &n));
	store_root(repo, b, &snap);

	CHECK_EQ(restore_snap(repo, &snap), 0);
	CHECK_EQ(verify(repo, &snap, &files), 0);
	CHECK_EQ(files, 5);
	write_at("a", "A", 0); /* same size, other bytes */
	CHECK_EQ(verify(repo, &snap, &files), 1);
	CHECK_EQ(restore_snap(repo, &snap), 0);
	write_at("sparse", "x", 100); /* in the hole */
	write_at("l1", "!", 7);       /* longer: both names of the inode */
	CHECK_EQ(verify(repo, &snap, &files), 3);
	CHECK_EQ(restore_snap(repo, &snap), 0);
	CHECK_EQ(verify(repo, &snap, &files), 0);

	/* Missing, and a directory replaced by a symlink to a good copy elsewhere:
	 * the check does not follow it. */
	snprintf(p, sizeof(p), "%s/a", target_dir());
	CHECK_OK(unlink(p));
	snprintf(p, sizeof(p), "%s/d", target_dir());
	snprintf(q, sizeof(q), "%s/elsewhere", check_tmpdir());
	CHECK_OK(rename(p, q));
	CHECK_OK(symlink(q, p));
	CHECK_EQ(verify(repo, &snap, &files), 2);
	cairn_repo_close(repo);
}

/* Directories nested past the limit: one warning, whole, that says the limit
 * and shows the path shortened (it was cut at the log's line length, before
 * the limit's last digit). */
static void test_restorer__too_deep_message(void)
{
	cairn_repo *repo = make_repo();
	struct cairn_snapshot snap;
	struct restorer_stats st;
	struct cairn_node n = { 0 };
	char log[600], buf[8192] = "";

	for (int i = 0; i < 1010; i++) {
		_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *b = NULL;
		CHECK_OK(cairn_tree_builder_new(&b));
		if (i > 0)
			CHECK_OK(cairn_tree_builder_add(b, &n));
		n = dir(repo, "level", (uint64_t)i + 1, b);
	}
	_cleanup_(cairn_tree_builder_freep) cairn_tree_builder *root = NULL;
	CHECK_OK(cairn_tree_builder_new(&root));
	CHECK_OK(cairn_tree_builder_add(root, &n));
	store_root(repo, root, &snap);

	snprintf(log, sizeof(log), "%s/log", check_tmpdir());
	_cleanup_close_ int fd = open(log, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	int saved = dup(STDERR_FILENO);
	CHECK(fd >= 0 && saved >= 0);
	fflush(stderr);
	CHECK(dup2(fd, STDERR_FILENO) == STDERR_FILENO);
	struct restorer_opts o = { .target = target_dir(), .dry_run = true };
	int r = restorer_run(repo, &snap, &o, &st);
	fflush(stderr);
	CHECK(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
	close(saved);
	CHECK_OK(r);
	CHECK_EQ(st.warnings, 1);
	CHECK(pread(fd, buf, sizeof(buf) - 1, 0) > 0);
	CHECK(strstr(buf, "skipping '/level/level/") != NULL && strstr(buf, ".../") != NULL);
	CHECK(strstr(buf, "': directories nested more than 1000 deep\n") != NULL);
	CHECK(strlen(buf) < 400);
	cairn_repo_close(repo);
}

int main(void)
{
	RUN(test_restorer__links_need_type_and_size);
	RUN(test_restorer__special_files);
	RUN(test_restorer__planted_symlink_not_followed);
	RUN(test_restorer__link_path_not_followed);
	RUN(test_restorer__dry_run);
	RUN(test_restorer__verify);
	RUN(test_restorer__too_deep_message);
	return 0;
}
