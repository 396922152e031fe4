/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pack files (FORMAT.md §6): append sealed blobs, seal a header, rename into place. */
#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"

/* Room kept for the sealed header and trailer of a full pack (FORMAT.md §6.2):
 * 4 + 45 x 1,000,000 + 41 + 12 bytes, rounded up. */
#define HDR_RESERVE (64u << 20)

static const struct cairn_id zero_id;

/* DONE: a storage took the sealed temp file over (renamed or uploaded it). */
enum packw_state { PACKW_OPEN, PACKW_FAILED, PACKW_SEALED, PACKW_DONE };

#define WBUF_SIZE (1u << 20) /* one write() per MiB, not one per blob */

struct cairn_packw {
	int fd;
	uint8_t *wbuf; /* bytes hashed but not yet written */
	size_t wlen;
	char tmp[PATH_MAX];
	EVP_MD_CTX *sha; /* SHA-256 of every byte written: the pack ID (§6.1) */
	uint64_t size;
	struct cairn_pack_entry *e;
	size_t n, cap;
	enum packw_state state;
};

/* errno -> -errno with "no space" spelled out: quota and a full disk mean the same
 * to the user, and both must reach the caller as -ENOSPC. */
static int sys_err(int e, const char *what, const char *path)
{
	if (e == ENOSPC || e == EDQUOT)
		return cairn_err_set(-ENOSPC, "cannot %s '%s': no space left on device", what,
		                     path);
	return cairn_err_set(e > 0 ? -e : -EIO, "cannot %s '%s': %s", what, path,
	                     strerror(e > 0 ? e : EIO));
}

/* Fault injection for tests: pack bytes that may still be written by this
 * process, or -1 for no limit. Set from CAIRN_TEST_PACK_WRITE_FAIL_AFTER at the
 * first write, or by cairn_pack__test_fail_after(). */
static _Atomic int64_t fail_budget = -1;
static pthread_once_t fail_once = PTHREAD_ONCE_INIT;

static void fail_budget_from_env(void)
{
	const char *e = getenv("CAIRN_TEST_PACK_WRITE_FAIL_AFTER");
	char *end;
	long long n = e && *e ? strtoll(e, &end, 10) : -1;
	if (n >= 0 && *end == '\0')
		atomic_store(&fail_budget, n);
}

void cairn_pack__test_fail_after(int64_t n)
{
	pthread_once(&fail_once, fail_budget_from_env);
	atomic_store(&fail_budget, n < 0 ? -1 : n);
}

/* How many of n bytes the fault injection lets through (n when it is off). */
static size_t fail_allow(size_t n)
{
	pthread_once(&fail_once, fail_budget_from_env);
	int64_t b = atomic_load(&fail_budget), take;
	do {
		if (b < 0)
			return n;
		take = (uint64_t)b < n ? b : (int64_t)n;
	} while (!atomic_compare_exchange_weak(&fail_budget, &b, b - take));
	return (size_t)take;
}

/* Write and hash. A failed write leaves the file in an unknown state, so the
 * writer refuses everything but _free() afterwards. */
static int write_out(cairn_packw *w, const void *p, size_t n)
{
	size_t allow = fail_allow(n);
	int r = cairn_write_all(w->fd, p, allow);
	if (r >= 0 && allow < n)
		r = -EIO; /* injected */
	if (r < 0) {
		w->state = PACKW_FAILED;
		return sys_err(-r, "write pack", w->tmp);
	}
	return 0;
}

static int flush_wbuf(cairn_packw *w)
{
	int r = write_out(w, w->wbuf, w->wlen);
	if (r >= 0)
		w->wlen = 0;
	return r;
}

/* Hash, and write through a buffer: small blobs would otherwise cost a syscall each. */
static int put(cairn_packw *w, const void *p, size_t n)
{
	if (EVP_DigestUpdate(w->sha, p, n) != 1) {
		w->state = PACKW_FAILED;
		return cairn_err_set(-EIO, "pack '%s': SHA-256 failed", w->tmp);
	}
	w->size += n;
	if (w->wlen + n > WBUF_SIZE) {
		int r = flush_wbuf(w);
		if (r < 0)
			return r;
	}
	if (n >= WBUF_SIZE)
		return write_out(w, p, n);
	memcpy(w->wbuf + w->wlen, p, n);
	w->wlen += n;
	return 0;
}

static int check_open(const cairn_packw *w)
{
	if (w->state != PACKW_OPEN)
		return cairn_err_set(-EIO, "pack '%s': writer is %s", w->tmp,
		                     w->state == PACKW_FAILED ? "unusable after an error"
		                                              : "finished");
	return 0;
}

int cairn_packw__new(cairn_packw **out, const char *tmpdir)
{
	_cleanup_free_ cairn_packw *w = calloc(1, sizeof(*w));
	if (!w)
		return cairn_err_set(-ENOMEM, "out of memory");
	w->fd = -1;
	if (snprintf(w->tmp, sizeof(w->tmp), "%s/pack.tmp.XXXXXX", tmpdir) >= (int)sizeof(w->tmp))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", tmpdir);
	/* mkostemp creates the file 0600 (FORMAT.md §2). */
	w->fd = mkostemp(w->tmp, O_CLOEXEC);
	if (w->fd < 0)
		return sys_err(errno, "create a pack in", tmpdir);
	w->sha = EVP_MD_CTX_new();
	w->wbuf = malloc(WBUF_SIZE);
	int r = w->sha && w->wbuf && EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) == 1
	                ? put(w, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE)
	                : cairn_err_set(-ENOMEM, "cannot start SHA-256");
	if (r < 0) {
		cairn_packw__free(TAKE_PTR(w));
		return r;
	}
	*out = TAKE_PTR(w);
	return 0;
}

void cairn_packw__free(cairn_packw *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (w->state != PACKW_DONE)
		unlink(w->tmp);
	EVP_MD_CTX_free(w->sha);
	free(w->wbuf);
	free(w->e);
	free(w);
}

uint64_t cairn_packw__size(const cairn_packw *w)
{
	return w->size;
}

size_t cairn_packw__count(const cairn_packw *w)
{
	return w->n;
}

const struct cairn_pack_entry *cairn_packw__entries(const cairn_packw *w)
{
	return w->e;
}

/* Arguments a reader would reject (FORMAT.md §6.2) are the caller's bug. */
static int check_entry(const cairn_packw *w, int type, size_t slen, uint32_t raw_len)
{
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EINVAL, "pack '%s': blob type %d cannot go in a pack", w->tmp,
		                     type);
	if (slen < CAIRN_SEAL_OVERHEAD || raw_len > CAIRN_TREE_MAX)
		return cairn_err_set(-EINVAL, "pack '%s': impossible blob lengths %zu/%u", w->tmp,
		                     slen, raw_len);
	if (w->n >= CAIRN_PACK_MAX_ENTRIES || slen > CAIRN_PACK_MAX_SIZE - HDR_RESERVE ||
	    w->size + slen > CAIRN_PACK_MAX_SIZE - HDR_RESERVE)
		return cairn_err_set(-EFBIG, "pack '%s' is full", w->tmp);
	return 0;
}

int cairn_packw__add(cairn_packw *w, const struct cairn_id *id, int type, const void *sealed,
                     size_t slen, uint32_t raw_len)
{
	int r = check_open(w);
	if (r < 0 || (r = check_entry(w, type, slen, raw_len)) < 0)
		return r;
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 256;
		struct cairn_pack_entry *e = reallocarray(w->e, cap, sizeof(*e));
		if (!e)
			return cairn_err_set(-ENOMEM, "out of memory");
		w->e = e;
		w->cap = cap;
	}
	uint32_t off = (uint32_t)w->size; /* < CAIRN_PACK_MAX_SIZE by check_entry */
	if ((r = put(w, sealed, slen)) < 0)
		return r;
	w->e[w->n++] = (struct cairn_pack_entry){ .id = *id,
		                                  .type = (uint8_t)type,
		                                  .offset = off,
		                                  .stored_len = (uint32_t)slen,
		                                  .raw_len = raw_len };
	return 0;
}

int cairn_packw__read(cairn_packw *w, size_t i, struct cairn_buf *out)
{
	if (w->state != PACKW_OPEN || i >= w->n)
		return cairn_err_set(-EINVAL, "pack '%s': no blob %zu to read", w->tmp, i);
	const struct cairn_pack_entry *e = &w->e[i];
	/* The last wlen bytes are still in wbuf, the rest in the file. */
	uint64_t on_disk = w->size - w->wlen, off = e->offset, len = e->stored_len;
	uint64_t from_file = off >= on_disk ? 0 : off + len <= on_disk ? len : on_disk - off;
	out->len = 0;
	int r = cairn_buf_reserve(out, (size_t)len);
	if (r < 0)
		return r;
	if (from_file && (r = cairn_pread_all(w->fd, out->data, (size_t)from_file, off)) < 0)
		return sys_err(r == -EBADMSG ? EIO : -r, "read pack", w->tmp);
	memcpy(out->data + from_file, w->wbuf + (off + from_file - on_disk),
	       (size_t)(len - from_file));
	out->len = (size_t)len;
	return 0;
}

/* Header plaintext (FORMAT.md §6.2): u32 count, then per entry id[32] u8 type
 * u32 offset u32 stored_len u32 raw_len. */
static int encode_hdr(const cairn_packw *w, struct cairn_buf *out)
{
	int r = cairn_buf_reserve(out, 4 + w->n * CAIRN_PACK_ENTRY_SIZE);
	if (r < 0)
		return r;
	cairn_buf_put_u32(out, (uint32_t)w->n); /* cannot fail after the reserve */
	for (size_t i = 0; i < w->n; i++) {
		const struct cairn_pack_entry *e = &w->e[i];
		cairn_buf_put(out, e->id.b, CAIRN_ID_SIZE);
		cairn_buf_put_u8(out, e->type);
		cairn_buf_put_u32(out, e->offset);
		cairn_buf_put_u32(out, e->stored_len);
		cairn_buf_put_u32(out, e->raw_len);
	}
	return 0;
}

void cairn_pack__relpath(char out[CAIRN_PACK_RELPATH_SIZE], const struct cairn_id *pack)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	if (cairn_obj_rel(out, CAIRN_OBJ_PACK, hex) < 0) /* cannot fail: hex is a pack name */
		snprintf(out, CAIRN_PACK_RELPATH_SIZE, "packs/?");
}

/* Append the sealed header and the trailer (FORMAT.md §6.1). */
static int write_tail(cairn_packw *w, const struct cairn_keys *k)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT;
	uint8_t trailer[CAIRN_PACK_TRAILER_SIZE];
	int r;

	/* Stored raw (enc = 0) under the all-zero ID (FORMAT.md §5.1, §6.2). */
	if ((r = encode_hdr(w, &plain)) < 0 ||
	    (r = cairn_crypt__seal(k, CAIRN_BLOB_PACKHDR, &zero_id, 0, plain.data, plain.len,
	                           &sealed)) < 0)
		return r;
	if (w->size + sealed.len + sizeof(trailer) > CAIRN_PACK_MAX_SIZE)
		return cairn_err_set(-EFBIG, "pack '%s': header does not fit", w->tmp);
	cairn_le32(trailer, (uint32_t)sealed.len);
	memcpy(trailer + 4, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE);
	if ((r = put(w, sealed.data, sealed.len)) < 0 || (r = put(w, trailer, sizeof(trailer))) < 0)
		return r;
	return flush_wbuf(w);
}

int cairn_packw__seal(cairn_packw *w, const struct cairn_keys *k, struct cairn_id *pack_id_out,
                      uint64_t *size_out)
{
	unsigned int len = 0;
	int r = check_open(w);

	if (r < 0)
		return r;
	if (w->n == 0) /* a header has 1..1,000,000 entries (FORMAT.md §6.2) */
		return cairn_err_set(-EINVAL, "pack '%s' has no blobs", w->tmp);
	/* No fsync: the storage that takes the file over makes it durable (a local
	 * one syncs before its rename); an upload needs none, and a pack of 16 MiB
	 * synced to a cache it then leaves cost the disk writes of the whole backup. */
	r = write_tail(w, k);
	if (r >= 0 &&
	    (EVP_DigestFinal_ex(w->sha, pack_id_out->b, &len) != 1 || len != CAIRN_ID_SIZE))
		r = cairn_err_set(-EIO, "pack '%s': SHA-256 failed", w->tmp);
	/* Only _free() may follow a failure; it unlinks the temp file. */
	w->state = r < 0 ? PACKW_FAILED : PACKW_SEALED;
	if (r >= 0)
		*size_out = w->size;
	return r;
}

int cairn_packw__fd(const cairn_packw *w)
{
	return w->fd;
}

const char *cairn_packw__path(const cairn_packw *w)
{
	return w->tmp;
}

void cairn_packw__taken(cairn_packw *w)
{
	w->state = PACKW_DONE;
}

/* ---- reading ------------------------------------------------------------ */

/* The plaintext of a header with the maximum number of entries (FORMAT.md §5.3). */
#define HDR_PLAIN_MAX (4 + (size_t)CAIRN_PACK_ENTRY_SIZE * CAIRN_PACK_MAX_ENTRIES)
/* Sealed header sizes: enc = 0, so exactly plaintext + overhead (FORMAT.md §6.2). */
#define HDR_SEALED_MIN (CAIRN_SEAL_OVERHEAD + 4 + CAIRN_PACK_ENTRY_SIZE)
#define HDR_SEALED_MAX (CAIRN_SEAL_OVERHEAD + HDR_PLAIN_MAX)

/* Trailer (FORMAT.md §6.1): u32 header_len, "CAIRNPK1". */
int cairn_pack__parse_trailer(const uint8_t trailer[CAIRN_PACK_TRAILER_SIZE], uint64_t file_size,
                              uint32_t *hdr_len)
{
	if (memcmp(trailer + 4, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE) != 0)
		return cairn_err_set(
		        -EBADMSG, "trailer at offset %llu: bad magic",
		        (unsigned long long)(file_size >= CAIRN_PACK_TRAILER_SIZE
		                                     ? file_size - CAIRN_PACK_TRAILER_SIZE
		                                     : 0));
	uint32_t len = cairn_get_le32(trailer);
	if (len < HDR_SEALED_MIN || len > HDR_SEALED_MAX)
		return cairn_err_set(-EBADMSG, "trailer: header length %u is out of range", len);
	if ((uint64_t)CAIRN_PACK_MAGIC_SIZE + len + CAIRN_PACK_TRAILER_SIZE > file_size)
		return cairn_err_set(-EBADMSG,
		                     "trailer: header length %u does not fit a %llu-byte file", len,
		                     (unsigned long long)file_size);
	*hdr_len = len;
	return 0;
}

/* One 45-byte entry (FORMAT.md §6.2); expect_off is where the previous one ended. */
static int parse_entry(struct cairn_rd *rd, struct cairn_pack_entry *e, uint64_t expect_off,
                       size_t i)
{
	uint8_t type;
	/* The caller checked the exact length, so these reads cannot run short. */
	if (cairn_rd_copy(rd, e->id.b, CAIRN_ID_SIZE) < 0 || cairn_rd_u8(rd, &type) < 0 ||
	    cairn_rd_u32(rd, &e->offset) < 0 || cairn_rd_u32(rd, &e->stored_len) < 0 ||
	    cairn_rd_u32(rd, &e->raw_len) < 0)
		return cairn_err_set(-EBADMSG, "header: entry %zu is truncated", i);
	e->type = type;
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EBADMSG, "header: entry %zu has type %u", i, type);
	if (e->offset != expect_off)
		return cairn_err_set(
		        -EBADMSG, "header: entry %zu offset %u is not contiguous (expected %llu)",
		        i, e->offset, (unsigned long long)expect_off);
	if (e->stored_len < CAIRN_SEAL_OVERHEAD)
		return cairn_err_set(-EBADMSG, "header: entry %zu offset %u: stored length %u < %d",
		                     i, e->offset, e->stored_len, CAIRN_SEAL_OVERHEAD);
	/* §5.3: 64 MiB for trees; data is checked against chunk-max by the repository. */
	if (e->raw_len > CAIRN_TREE_MAX)
		return cairn_err_set(-EBADMSG,
		                     "header: entry %zu offset %u: raw length %u too large", i,
		                     e->offset, e->raw_len);
	return 0;
}

int cairn_pack__parse_hdr(const uint8_t *plain, size_t len, uint64_t hdr_off,
                          struct cairn_pack_entry **out, size_t *n)
{
	struct cairn_rd rd = { plain, len };
	uint32_t count;
	size_t need;

	if (cairn_rd_u32(&rd, &count) < 0)
		return cairn_err_set(-EBADMSG, "header: %zu bytes is too short", len);
	if (count == 0 || count > CAIRN_PACK_MAX_ENTRIES)
		return cairn_err_set(-EBADMSG, "header: %u entries is out of range", count);
	if (__builtin_mul_overflow((size_t)count, CAIRN_PACK_ENTRY_SIZE, &need) || need != rd.left)
		return cairn_err_set(-EBADMSG, "header: %zu bytes for %u entries, expected %zu",
		                     len, count, need + 4);
	_cleanup_free_ struct cairn_pack_entry *e = calloc(count, sizeof(*e));
	if (!e)
		return cairn_err_set(-ENOMEM, "out of memory");
	uint64_t off = CAIRN_PACK_MAGIC_SIZE; /* cannot overflow: 10^6 x 2^32 < 2^64 */
	for (size_t i = 0; i < count; i++) {
		int r = parse_entry(&rd, &e[i], off, i);
		if (r < 0)
			return r;
		off += e[i].stored_len;
	}
	if (off != hdr_off)
		return cairn_err_set(-EBADMSG,
		                     "header: entries end at offset %llu, header is at %llu",
		                     (unsigned long long)off, (unsigned long long)hdr_off);
	*out = TAKE_PTR(e);
	*n = count;
	return 0;
}

int cairn_packf__pread(const struct cairn_packf *f, int type, void *buf, size_t len, uint64_t off)
{
	int r;
	if (f->pread) {
		r = f->pread(f->ctx, f, type, buf, len, off);
		if (r == -EBADMSG)
			return cairn_err_set(r, "pack '%s': truncated at offset %llu", f->name,
			                     (unsigned long long)off);
		/* The storage's message names the file too: the pack is named once. */
		if (r == -ENOENT)
			return cairn_err_set(r, "pack '%s' is missing", f->name);
		return r < 0 ? cairn_err_wrap(r, "pack '%s' at offset %llu", f->name,
		                              (unsigned long long)off)
		             : 0;
	}
	r = cairn_pread_all(f->fd, buf, len, off);
	if (r == -EBADMSG)
		return cairn_err_set(r, "pack '%s': truncated at offset %llu", f->name,
		                     (unsigned long long)off);
	if (r < 0)
		return cairn_err_set(r, "cannot read pack '%s' at offset %llu: %s", f->name,
		                     (unsigned long long)off, strerror(-r));
	return 0;
}

void cairn_packf__close(struct cairn_packf *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

/* Magic at offset 0 and the trailer; *hoff gets where the sealed header starts. */
static int read_frame(const struct cairn_packf *f, uint32_t *hlen, uint64_t *hoff)
{
	uint8_t magic[CAIRN_PACK_MAGIC_SIZE], trailer[CAIRN_PACK_TRAILER_SIZE];
	int r;

	if (f->size < CAIRN_PACK_MAGIC_SIZE + HDR_SEALED_MIN + CAIRN_PACK_TRAILER_SIZE)
		return cairn_err_set(-EBADMSG, "pack '%s': %llu bytes is too short", f->name,
		                     (unsigned long long)f->size);
	if ((r = cairn_packf__pread(f, 0, magic, sizeof(magic), 0)) < 0)
		return r;
	if (memcmp(magic, CAIRN_PACK_MAGIC, sizeof(magic)) != 0)
		return cairn_err_set(-EBADMSG, "pack '%s': bad magic at offset 0", f->name);
	if ((r = cairn_packf__pread(f, 0, trailer, sizeof(trailer), f->size - sizeof(trailer))) < 0)
		return r;
	if ((r = cairn_pack__parse_trailer(trailer, f->size, hlen)) < 0)
		return cairn_err_wrap(r, "pack '%s'", f->name);
	*hoff = f->size - sizeof(trailer) - *hlen;
	return 0;
}

int cairn_pack__read_entries_from(const struct cairn_packf *f, const struct cairn_keys *k,
                                  struct cairn_pack_entry **out, size_t *n)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	uint32_t hlen = 0;
	uint64_t hoff = 0;
	int r;

	if ((r = read_frame(f, &hlen, &hoff)) < 0)
		return r;
	/* hlen <= HDR_SEALED_MAX (parse_trailer): the allocation has a ceiling. */
	if ((r = cairn_buf_reserve(&sealed, hlen)) < 0)
		return r;
	if ((r = cairn_packf__pread(f, 0, sealed.data, hlen, hoff)) < 0)
		return r;
	sealed.len = hlen;
	r = cairn_blob__decode(k, CAIRN_BLOB_PACKHDR, &zero_id, sealed.data, sealed.len, SIZE_MAX,
	                       HDR_PLAIN_MAX, &plain);
	if (r < 0)
		return cairn_err_wrap(r, "pack '%s': header at offset %llu", f->name,
		                      (unsigned long long)hoff);
	if ((r = cairn_pack__parse_hdr(plain.data, plain.len, hoff, out, n)) < 0)
		return cairn_err_wrap(r, "pack '%s'", f->name);
	return 0;
}

int cairn_pack__read_entries(int fd, uint64_t file_size, const struct cairn_keys *k,
                             const char *name, struct cairn_pack_entry **out, size_t *n)
{
	struct cairn_packf f = { .fd = fd, .size = file_size, .name = name };
	return cairn_pack__read_entries_from(&f, k, out, n);
}
