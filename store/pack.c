/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pack files (FORMAT.md §6): append sealed blobs, seal a header, rename into place. */
#include "pack.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"

struct cairn_packw {
	int fd;
	char tmp[PATH_MAX];
	EVP_MD_CTX *sha; /* SHA-256 of everything written: the pack ID */
	uint64_t size;
	struct cairn_pack_entry *e;
	size_t n, cap;
	bool finished;
};

static int write_err(cairn_packw *w, int r)
{
	if (r == -ENOSPC)
		return cairn_err_set(-ENOSPC, "cannot write pack '%s': no space left on device",
				     w->tmp);
	return cairn_err_set(r < 0 ? r : -EIO, "cannot write pack '%s': %s", w->tmp,
			     strerror(r < 0 ? -r : EIO));
}

static int put(cairn_packw *w, const void *p, size_t n)
{
	int r = cairn_write_all(w->fd, p, n);
	if (r < 0)
		return write_err(w, r);
	if (EVP_DigestUpdate(w->sha, p, n) != 1)
		return cairn_err_set(-EIO, "SHA-256 failed");
	w->size += n;
	return 0;
}

int cairn_packw__new(cairn_packw **out, const char *tmpdir)
{
	cairn_packw *w = calloc(1, sizeof(*w));
	if (!w)
		return cairn_err_set(-ENOMEM, "out of memory");
	w->fd = -1;
	if (snprintf(w->tmp, sizeof(w->tmp), "%s/pack.tmp.XXXXXX", tmpdir) >= (int)sizeof(w->tmp)) {
		free(w);
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", tmpdir);
	}
	w->fd = mkostemp(w->tmp, O_CLOEXEC);
	if (w->fd < 0) {
		int e = errno;
		free(w);
		return cairn_err_set(e == ENOSPC ? -ENOSPC : -e, "cannot create a pack in '%s': %s",
				     tmpdir, strerror(e));
	}
	w->sha = EVP_MD_CTX_new();
	int r = w->sha && EVP_DigestInit_ex(w->sha, EVP_sha256(), NULL) == 1
			? 0
			: cairn_err_set(-ENOMEM, "cannot start SHA-256");
	if (r >= 0)
		r = put(w, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE);
	if (r < 0) {
		cairn_packw__free(w);
		return r;
	}
	*out = w;
	return 0;
}

void cairn_packw__free(cairn_packw *w)
{
	if (!w)
		return;
	if (w->fd >= 0)
		close(w->fd);
	if (!w->finished)
		unlink(w->tmp);
	EVP_MD_CTX_free(w->sha);
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

int cairn_packw__add(cairn_packw *w, const struct cairn_id *id, int type, const void *sealed,
		     size_t slen, uint32_t raw_len)
{
	if (w->n >= CAIRN_PACK_MAX_ENTRIES || slen > CAIRN_PACK_MAX_SIZE ||
	    w->size + slen > CAIRN_PACK_MAX_SIZE - (64u << 20)) /* room for the header */
		return cairn_err_set(-EFBIG, "pack '%s' is full", w->tmp);
	if (w->n == w->cap) {
		size_t cap = w->cap ? 2 * w->cap : 256;
		struct cairn_pack_entry *e = realloc(w->e, cap * sizeof(*e));
		if (!e)
			return cairn_err_set(-ENOMEM, "out of memory");
		w->e = e;
		w->cap = cap;
	}
	uint32_t off = (uint32_t)w->size;
	int r = put(w, sealed, slen);
	if (r < 0)
		return r;
	w->e[w->n++] = (struct cairn_pack_entry){ .id = *id, .type = (uint8_t)type, .offset = off,
						  .stored_len = (uint32_t)slen, .raw_len = raw_len };
	return 0;
}

/* Header plaintext (FORMAT.md §6.2): u32 count, then 45-byte entries. */
static int encode_hdr(const cairn_packw *w, struct cairn_buf *out)
{
	int r = cairn_buf_put_u32(out, (uint32_t)w->n);
	for (size_t i = 0; r >= 0 && i < w->n; i++) {
		const struct cairn_pack_entry *e = &w->e[i];
		if ((r = cairn_buf_put(out, e->id.b, CAIRN_ID_SIZE)) < 0 ||
		    (r = cairn_buf_put_u8(out, e->type)) < 0 ||
		    (r = cairn_buf_put_u32(out, e->offset)) < 0 ||
		    (r = cairn_buf_put_u32(out, e->stored_len)) < 0)
			break;
		r = cairn_buf_put_u32(out, e->raw_len);
	}
	return r;
}

void cairn_pack__relpath(char out[CAIRN_PACK_RELPATH_SIZE], const struct cairn_id *pack)
{
	char hex[CAIRN_ID_HEX_SIZE];
	cairn_id_hex(hex, pack);
	snprintf(out, CAIRN_PACK_RELPATH_SIZE, "packs/%.2s/%s", hex, hex);
}

/* Rename the finished temp file to packs_dir/xx/<id> and make that durable. */
static int place(cairn_packw *w, const char *packs_dir, const struct cairn_id *id)
{
	char hex[CAIRN_ID_HEX_SIZE], dir[PATH_MAX], path[PATH_MAX];
	cairn_id_hex(hex, id);
	if (snprintf(dir, sizeof(dir), "%s/%.2s", packs_dir, hex) >= (int)sizeof(dir) ||
	    snprintf(path, sizeof(path), "%s/%s", dir, hex) >= (int)sizeof(path))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", packs_dir);
	bool created = mkdir(dir, 0700) == 0;
	if (!created && errno != EEXIST)
		return cairn_err_set(errno == ENOSPC ? -ENOSPC : -errno, "cannot create '%s': %s",
				     dir, strerror(errno));
	if (rename(w->tmp, path) < 0)
		return cairn_err_set(-errno, "cannot rename pack to '%s': %s", path,
				     strerror(errno));
	w->finished = true;
	int r = cairn_fsync_dir(dir);
	if (r >= 0 && created)
		r = cairn_fsync_dir(packs_dir);
	return r;
}

int cairn_packw__finish(cairn_packw *w, const struct cairn_keys *k, const char *packs_dir,
			struct cairn_id *pack_id_out, uint64_t *size_out)
{
	_cleanup_buf_ struct cairn_buf plain = CAIRN_BUF_INIT, sealed = CAIRN_BUF_INIT;
	static const struct cairn_id zero;
	uint8_t trailer[CAIRN_PACK_TRAILER_SIZE];
	struct cairn_id id;
	unsigned int len = 0;
	int r;

	if ((r = encode_hdr(w, &plain)) < 0 ||
	    (r = cairn_crypt__seal(k, CAIRN_BLOB_PACKHDR, &zero, 0, plain.data, plain.len,
				   &sealed)) < 0)
		return r;
	if (sealed.len > UINT32_MAX)
		return cairn_err_set(-EFBIG, "pack header too large");
	cairn_le32(trailer, (uint32_t)sealed.len);
	memcpy(trailer + 4, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE);
	if ((r = put(w, sealed.data, sealed.len)) < 0 || (r = put(w, trailer, sizeof(trailer))) < 0)
		return r;
	if (fsync(w->fd) < 0)
		return write_err(w, errno == ENOSPC ? -ENOSPC : -errno);
	if (EVP_DigestFinal_ex(w->sha, id.b, &len) != 1 || len != CAIRN_ID_SIZE)
		return cairn_err_set(-EIO, "SHA-256 failed");
	if ((r = place(w, packs_dir, &id)) < 0)
		return r;
	*pack_id_out = id;
	*size_out = w->size;
	return 0;
}

/* ---- reading ------------------------------------------------------------ */

int cairn_pack__parse_trailer(const uint8_t trailer[CAIRN_PACK_TRAILER_SIZE], uint64_t file_size,
			      uint32_t *hdr_len)
{
	uint32_t len = cairn_get_le32(trailer);
	if (memcmp(trailer + 4, CAIRN_PACK_MAGIC, CAIRN_PACK_MAGIC_SIZE) != 0)
		return cairn_err_set(-EBADMSG, "bad pack trailer magic");
	if (len < CAIRN_SEAL_OVERHEAD + 4 ||
	    (uint64_t)len + CAIRN_PACK_MAGIC_SIZE + CAIRN_PACK_TRAILER_SIZE > file_size)
		return cairn_err_set(-EBADMSG, "pack header length %u does not fit a %llu-byte file",
				     len, (unsigned long long)file_size);
	*hdr_len = len;
	return 0;
}

static int parse_entry(struct cairn_rd *rd, struct cairn_pack_entry *e, uint64_t expect_off,
		       size_t i)
{
	uint8_t type;
	if (cairn_rd_copy(rd, e->id.b, CAIRN_ID_SIZE) < 0 || cairn_rd_u8(rd, &type) < 0 ||
	    cairn_rd_u32(rd, &e->offset) < 0 || cairn_rd_u32(rd, &e->stored_len) < 0 ||
	    cairn_rd_u32(rd, &e->raw_len) < 0)
		return cairn_err_set(-EBADMSG, "entry %zu is truncated", i);
	e->type = type;
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EBADMSG, "entry %zu has type %u", i, type);
	if (e->offset != expect_off)
		return cairn_err_set(-EBADMSG, "entry %zu offset %u is not contiguous (expected %llu)",
				     i, e->offset, (unsigned long long)expect_off);
	if (e->stored_len < CAIRN_SEAL_OVERHEAD || e->raw_len > CAIRN_TREE_MAX)
		return cairn_err_set(-EBADMSG, "entry %zu has impossible lengths %u/%u", i,
				     e->stored_len, e->raw_len);
	return 0;
}

int cairn_pack__parse_hdr(const uint8_t *plain, size_t len, uint64_t hdr_off,
			  struct cairn_pack_entry **out, size_t *n)
{
	struct cairn_rd rd = { plain, len };
	uint32_t count;
	size_t need;

	if (cairn_rd_u32(&rd, &count) < 0)
		return cairn_err_set(-EBADMSG, "pack header is truncated");
	if (count == 0 || count > CAIRN_PACK_MAX_ENTRIES)
		return cairn_err_set(-EBADMSG, "pack header has %u entries", count);
	if (__builtin_mul_overflow((size_t)count, CAIRN_PACK_ENTRY_SIZE, &need) || need != rd.left)
		return cairn_err_set(-EBADMSG, "pack header is %zu bytes for %u entries", len, count);
	_cleanup_free_ struct cairn_pack_entry *e = calloc(count, sizeof(*e));
	if (!e)
		return cairn_err_set(-ENOMEM, "out of memory");
	uint64_t off = CAIRN_PACK_MAGIC_SIZE;
	for (size_t i = 0; i < count; i++) {
		int r = parse_entry(&rd, &e[i], off, i);
		if (r < 0)
			return r;
		off += e[i].stored_len;
	}
	if (off != hdr_off)
		return cairn_err_set(-EBADMSG, "pack entries end at %llu, header starts at %llu",
				     (unsigned long long)off, (unsigned long long)hdr_off);
	*out = TAKE_PTR(e);
	*n = count;
	return 0;
}

int cairn_pack__read_entries(int fd, uint64_t file_size, const struct cairn_keys *k,
			     const char *name, struct cairn_pack_entry **out, size_t *n)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	static const struct cairn_id zero;
	uint8_t trailer[CAIRN_PACK_TRAILER_SIZE], magic[CAIRN_PACK_MAGIC_SIZE];
	const size_t max = 4 + (size_t)CAIRN_PACK_ENTRY_SIZE * CAIRN_PACK_MAX_ENTRIES;
	uint32_t hlen;
	int r;

	if (file_size < CAIRN_PACK_MAGIC_SIZE + CAIRN_PACK_TRAILER_SIZE ||
	    cairn_pread_all(fd, magic, sizeof(magic), 0) < 0 ||
	    memcmp(magic, CAIRN_PACK_MAGIC, sizeof(magic)) != 0)
		return cairn_err_set(-EBADMSG, "pack '%s': not a cairn pack (bad magic or size)",
				     name);
	r = cairn_pread_all(fd, trailer, sizeof(trailer), file_size - sizeof(trailer));
	if (r < 0 || (r = cairn_pack__parse_trailer(trailer, file_size, &hlen)) < 0)
		return cairn_err_wrap(r < 0 ? r : -EBADMSG, "pack '%s'", name);
	uint64_t hoff = file_size - sizeof(trailer) - hlen;
	if ((r = cairn_buf_reserve(&sealed, hlen)) < 0)
		return r;
	if ((r = cairn_pread_all(fd, sealed.data, hlen, hoff)) < 0)
		return cairn_err_set(-EIO, "pack '%s': cannot read header", name);
	sealed.len = hlen;
	r = cairn_blob__decode(k, CAIRN_BLOB_PACKHDR, &zero, sealed.data, sealed.len, SIZE_MAX, max,
			       &plain);
	if (r >= 0)
		r = cairn_pack__parse_hdr(plain.data, plain.len, hoff, out, n);
	if (r < 0)
		return cairn_err_wrap(r, "pack '%s' header at offset %llu", name,
				      (unsigned long long)hoff);
	return 0;
}
