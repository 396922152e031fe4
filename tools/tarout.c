/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* A snapshot subtree as a POSIX pax archive, written with libarchive. */
#include "tarout.h"

#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include <archive.h>
#include <archive_entry.h>

#include "maint.h"
#include "restorer.h"
#include "cleanup.h"

/*
 * libarchive writes the headers: pax is a format of many corners (which field
 * overflows when, hdrcharset for names that are not UTF-8, SCHILY.xattr records
 * with binary values, GNU sparse maps) that bsdtar's own writer has long got
 * right, where ours would be a new encoder to get wrong. What goes into each
 * entry, and in which order, is decided here.
 */
#define TAR_MAX_DEPTH 1000
#define HOLE_STEP (1u << 30) /* bytes of a hole handed to libarchive at a time */

struct tw {
	cairn_repo *repo;
	struct archive *ar;
	struct tarout_stats *st;
	unsigned depth;
	struct maint_path path;      /* snapshot path of the entry at hand */
	struct cairn_buf data;       /* the blob being written */
	struct cairn_idset links;    /* restorer_link_key -> offset in link_names */
	struct cairn_buf link_names; /* NUL-terminated archive names */
	const uint8_t *hole;         /* HOLE_STEP bytes of zero pages, or MAP_FAILED */
};

DEFINE_FREEP(struct archive_entry, archive_entry_free)

/* The entry's name in the archive: its snapshot path without the leading '/'. */
static const char *ar_name(const struct tw *w)
{
	size_t len;
	const char *p = maint_path_str(&w->path, &len);
	return p + (p[0] == '/');
}

static void warn(struct tw *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void warn(struct tw *w, const char *fmt, ...)
{
	char why[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	log_warn("'/%s': %s", ar_name(w), why);
	w->st->warnings++;
}

/* Writing failed: the errno libarchive saw (EPIPE, ENOSPC), else what it says.
 * The entry is named as the one being archived: the path is in the snapshot,
 * the failure is the output's. */
static int ar_fail(struct tw *w)
{
	int e = archive_errno(w->ar);
	const char *msg = archive_error_string(w->ar);
	return cairn_err_set(e > 0 ? -e : -EIO, "cannot write the archive (at entry '/%s'): %s",
	                     ar_name(w),
	                     e > 0 ? strerror(e)
	                     : msg ? msg
	                           : "unknown error");
}

static int ar_write(struct tw *w, const void *p, size_t n)
{
	while (n > 0) {
		la_ssize_t got = archive_write_data(w->ar, p, n);
		if (got <= 0)
			return ar_fail(w);
		p = (const uint8_t *)p + got;
		n -= (size_t)got;
	}
	return 0;
}

/* Zeros for what could not be read (or a hole, when no mapping for ar_hole). */
static int ar_zeros(struct tw *w, uint64_t len)
{
	static const uint8_t zeros[65536];
	while (len > 0) {
		size_t n = len < sizeof(zeros) ? (size_t)len : sizeof(zeros);
		int r = ar_write(w, zeros, n);
		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

/* A hole of a sparse entry (set_sparse), not at its end. libarchive's pax
 * writer counts the bytes of a hole off its map without reading them, but it
 * still wants them handed over, at most INT_MAX per call: here 1 GiB at a time
 * from a mapping of zero pages (address space only), where 64 KiB at a time
 * made a hole of 2^62 bytes 2^46 calls. */
static int ar_hole(struct tw *w, uint64_t len)
{
	if (!w->hole)
		w->hole = mmap(NULL, HOLE_STEP, PROT_READ,
		               MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (w->hole == MAP_FAILED)
		return ar_zeros(w, len);
	while (len > 0) {
		size_t n = len < HOLE_STEP ? (size_t)len : HOLE_STEP;
		int r = ar_write(w, w->hole, n);
		if (r < 0)
			return r;
		len -= n;
	}
	return 0;
}

/* Whether the extents from i on are all holes: the end of a sparse file, which
 * libarchive's map already says is a hole and which needs no data. */
static bool holes_to_end(const struct cairn_node *n, size_t i)
{
	for (; i < n->nextents; i++)
		if (!cairn_id_is_zero(&n->extents[i].id))
			return false;
	return true;
}

static int put_content(struct tw *w, const struct cairn_node *n)
{
	uint64_t off = 0;
	for (size_t i = 0; i < n->nextents; i++) {
		const struct cairn_extent *e = &n->extents[i];
		int r;
		/* A hole makes the entry sparse (set_sparse): its zeros are not
		 * written, and one at the end is not even handed over, but for
		 * one byte when the file is all hole: the sparse map goes out
		 * with the first bytes handed over. */
		if (cairn_id_is_zero(&e->id) && holes_to_end(n, i)) {
			if (i == 0 && (r = ar_hole(w, 1)) < 0)
				return r;
			break;
		}
		if (cairn_id_is_zero(&e->id)) {
			if ((r = ar_hole(w, e->len)) < 0)
				return r;
			off += e->len;
			continue;
		}
		r = cairn_repo_get_typed(w->repo, CAIRN_BLOB_DATA, &e->id, &w->data);
		if (r >= 0 && w->data.len != e->len)
			r = cairn_err_set(-EBADMSG, "data blob holds %zu bytes, the tree says %llu",
			                  w->data.len, (unsigned long long)e->len);
		if (r == -ENOMEM)
			return r;
		if (r < 0)
			warn(w, "cannot read at offset %llu (zeros written instead): %s",
			     (unsigned long long)off, cairn_err_msg());
		if (r < 0)
			r = ar_zeros(w, e->len);
		else
			r = ar_write(w, w->data.data, w->data.len);
		if (r < 0)
			return r;
		off += e->len;
	}
	w->st->bytes += n->size;
	return 0;
}

/* The data runs of a file with holes, so that they stay holes. */
static void set_sparse(struct archive_entry *ae, const struct cairn_node *n)
{
	bool holes = false;
	for (size_t i = 0; i < n->nextents && !holes; i++)
		holes = cairn_id_is_zero(&n->extents[i].id);
	if (!holes)
		return;
	uint64_t off = 0, start = 0;
	size_t runs = 0;
	for (size_t i = 0; i <= n->nextents; i++) {
		bool data = i < n->nextents && !cairn_id_is_zero(&n->extents[i].id);
		if (!data && off > start && ++runs)
			archive_entry_sparse_add_entry(ae, (la_int64_t)start,
			                               (la_int64_t)(off - start));
		if (i < n->nextents)
			off += n->extents[i].len;
		if (!data)
			start = off;
	}
	/* All hole: an empty run at the end keeps the map (GNU tar makes the same). */
	if (runs == 0)
		archive_entry_sparse_add_entry(ae, (la_int64_t)n->size, 0);
}

static unsigned ae_type(uint8_t type)
{
	switch (type) {
	case CAIRN_NODE_FILE:
		return AE_IFREG;
	case CAIRN_NODE_DIR:
		return AE_IFDIR;
	case CAIRN_NODE_SYMLINK:
		return AE_IFLNK;
	case CAIRN_NODE_FIFO:
		return AE_IFIFO;
	case CAIRN_NODE_CHR:
		return AE_IFCHR;
	case CAIRN_NODE_BLK:
		return AE_IFBLK;
	default:
		return 0;
	}
}

/* Names in the tree are at most 255 bytes, without NUL (FORMAT.md §10). */
static void copy_str(char out[CAIRN_NAME_MAX + 1], const uint8_t *s, size_t len)
{
	len = len > CAIRN_NAME_MAX ? CAIRN_NAME_MAX : len;
	memcpy(out, s, len);
	out[len] = '\0';
}

static void set_meta(struct archive_entry *ae, const struct cairn_node *n)
{
	char s[CAIRN_NAME_MAX + 1];
	int64_t sec = n->mtime_ns / 1000000000, ns = n->mtime_ns % 1000000000;
	/* Before 1970, whole seconds (the floor, as stat gives): a pax time with a
	 * fraction is read as a decimal number by GNU tar (-1.5), but libarchive
	 * writes and reads the seconds' floor and a fraction to add (-2 + 0.5 as
	 * "-2.5"): the readers could not agree on any fraction written there. */
	if (ns < 0)
		sec--;
	if (sec < 0)
		ns = 0;
	archive_entry_set_filetype(ae, ae_type(n->type));
	archive_entry_set_perm(ae, n->mode & 07777);
	archive_entry_set_uid(ae, n->uid);
	archive_entry_set_gid(ae, n->gid);
	if (n->user_len) {
		copy_str(s, n->user, n->user_len);
		archive_entry_copy_uname(ae, s);
	}
	if (n->group_len) {
		copy_str(s, n->group, n->group_len);
		archive_entry_copy_gname(ae, s);
	}
	archive_entry_set_mtime(ae, (time_t)sec, (long)ns);
	for (size_t i = 0; i < n->nxattrs; i++) {
		copy_str(s, n->xattrs[i].name, n->xattrs[i].name_len);
		archive_entry_xattr_add_entry(ae, s, n->xattrs[i].value, n->xattrs[i].value_len);
	}
	if (n->type == CAIRN_NODE_CHR || n->type == CAIRN_NODE_BLK)
		archive_entry_set_rdev(ae, (dev_t)n->rdev);
}

/* Build n's entry: a hard link to an earlier entry (*linked), or the inode. */
static int make_entry(struct tw *w, const struct cairn_node *n, struct archive_entry *ae,
                      bool *linked)
{
	char target[CAIRN_SYMLINK_MAX + 1];
	struct cairn_id k;
	uint64_t *first = NULL;

	archive_entry_copy_pathname(ae, ar_name(w));
	set_meta(ae, n);
	if (n->type != CAIRN_NODE_DIR && n->nlink > 1) {
		restorer_link_key(n, &k);
		first = cairn_idset_get(&w->links, &k);
	}
	*linked = first != NULL;
	if (first) {
		archive_entry_copy_hardlink(ae, (const char *)w->link_names.data + *first);
		archive_entry_set_size(ae, 0);
		return 0;
	}
	if (n->type == CAIRN_NODE_SYMLINK) {
		memcpy(target, n->target, n->target_len);
		target[n->target_len] = '\0';
		archive_entry_copy_symlink(ae, target);
	} else if (n->type == CAIRN_NODE_FILE) {
		archive_entry_set_size(ae, (la_int64_t)n->size);
		set_sparse(ae, n);
	}
	if (n->type == CAIRN_NODE_DIR || n->nlink <= 1)
		return 0;
	const char *name = ar_name(w);
	uint64_t off = w->link_names.len;
	if (cairn_buf_put(&w->link_names, name, strlen(name) + 1) < 0 ||
	    cairn_idset_add(&w->links, &k, off) < 0)
		return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

/* Entries tar cannot hold, or that have nothing to hold. 1: skip n. */
static int skip(struct tw *w, const struct cairn_node *n)
{
	if (n->type == CAIRN_NODE_SOCKET) {
		warn(w, "socket not archived: tar cannot hold sockets");
		return 1;
	}
	if (!ae_type(n->type)) {
		warn(w, "skipped: unknown type %u", n->type);
		return 1;
	}
	if (n->type == CAIRN_NODE_SYMLINK &&
	    (n->target_len == 0 || n->target_len > CAIRN_SYMLINK_MAX)) {
		warn(w, "symlink skipped: its target could not be read at backup time");
		return 1;
	}
	if (n->flags & CAIRN_NODE_INCOMPLETE)
		warn(w, "not read completely at backup time: archived as it was stored");
	return 0;
}

static int put_tree(struct tw *w, const struct cairn_id *id);

/* The entry for n, named by w->path, and for a directory what it holds. */
static int put_entry(struct tw *w, const struct cairn_node *n)
{
	_cleanup_(archive_entry_freep) struct archive_entry *ae = archive_entry_new();
	bool linked;
	if (!ae)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (skip(w, n))
		return 0;
	int r = make_entry(w, n, ae, &linked);
	if (r < 0)
		return r;
	r = archive_write_header(w->ar, ae);
	if (r == ARCHIVE_FATAL)
		return ar_fail(w);
	if (r == ARCHIVE_FAILED) {
		warn(w, "not archived: %s", archive_error_string(w->ar));
		return 0;
	}
	w->st->entries++;
	if (n->type == CAIRN_NODE_FILE && !linked)
		return put_content(w, n);
	if (n->type != CAIRN_NODE_DIR)
		return 0;
	if (w->depth >= TAR_MAX_DEPTH) {
		warn(w, "contents skipped: directories nested more than %d deep", TAR_MAX_DEPTH);
		return 0;
	}
	w->depth++;
	r = put_tree(w, &n->subtree);
	w->depth--;
	return r;
}

/* Every entry of a tree. An unreadable tree is a warning. */
static int put_tree(struct tw *w, const struct cairn_id *id)
{
	cairn_tree *t = NULL;
	int r = cairn_repo_tree_load(w->repo, id, &t);
	if (r < 0 && r != -ENOMEM) {
		warn(w, "contents not archived: %s", cairn_err_msg());
		return 0;
	}
	for (size_t i = 0; r >= 0 && i < cairn_tree_count(t); i++) {
		const struct cairn_node *n = cairn_tree_node(t, i);
		size_t mark;
		r = maint_path_push(&w->path, n->name, n->name_len, &mark);
		if (r >= 0)
			r = put_entry(w, n);
		maint_path_pop(&w->path, mark);
	}
	cairn_tree_free(t);
	return r;
}

/* w->path from the user's path: '.' and empty components dropped. */
static int set_base(struct tw *w, const char *path)
{
	size_t mark;
	int r = 0;
	for (const char *p = path; *p && r >= 0;) {
		size_t k = strcspn(p, "/");
		if (k > 0 && !(k == 1 && p[0] == '.'))
			r = maint_path_push(&w->path, (const uint8_t *)p, k, &mark);
		p += k + (p[k] == '/');
	}
	return r;
}

static int run(struct tw *w, const struct cairn_node *dir, const struct cairn_id *root,
               const char *path, int fd)
{
	int r = set_base(w, path);
	if (r < 0)
		return r;
	/* SCHILY.xattr only: GNU tar warns about every LIBARCHIVE.xattr record. */
	if (archive_write_set_format_pax(w->ar) != ARCHIVE_OK ||
	    archive_write_set_format_option(w->ar, "pax", "xattrheader", "SCHILY") != ARCHIVE_OK ||
	    archive_write_open_fd(w->ar, fd) != ARCHIVE_OK)
		return ar_fail(w);
	r = dir ? put_entry(w, dir) : put_tree(w, root);
	if (r >= 0 && archive_write_close(w->ar) != ARCHIVE_OK)
		r = ar_fail(w);
	/* No end-of-archive marker after a failure: a cut archive must look cut. */
	if (r < 0)
		archive_write_fail(w->ar);
	return r;
}

int tarout_write(cairn_repo *repo, const struct cairn_node *dir, const struct cairn_id *root,
                 const char *path, int fd, struct tarout_stats *st)
{
	struct tw w = { .repo = repo, .st = st, .path = { CAIRN_BUF_INIT } };

	/* libarchive takes names in the locale's charset and converts them to the
	 * UTF-8 of pax headers: with UTF-8, names that are UTF-8 are kept exactly
	 * whatever the user's locale, and others go in as raw bytes
	 * (hdrcharset=BINARY). */
	locale_t utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	locale_t old = utf8 ? uselocale(utf8) : (locale_t)0;

	*st = (struct tarout_stats){ 0 };
	cairn_idset_init(&w.links);
	/* From a remote repository, the data is fetched ahead, as for restore: the
	 * archive is written in the walker's order. */
	cairn_prefetch *pf = restorer_read_ahead(repo, root, dir);
	w.ar = archive_write_new();
	int r = w.ar ? run(&w, dir, root, path, fd) : cairn_err_set(-ENOMEM, "out of memory");
	cairn_prefetch_stop(pf);
	if (w.ar)
		archive_write_free(w.ar);
	if (utf8) {
		uselocale(old);
		freelocale(utf8);
	}
	cairn_idset_release(&w.links);
	cairn_buf_release(&w.link_names);
	cairn_buf_release(&w.data);
	cairn_buf_release(&w.path.b);
	if (w.hole && w.hole != MAP_FAILED)
		munmap((void *)w.hole, HOLE_STEP);
	return r;
}
