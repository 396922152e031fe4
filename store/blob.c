/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Blob encoding: zstd, sealing, and verified decoding (FORMAT.md §5.2). */
#include "crypt.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include <zstd_errors.h>

#include "cleanup.h"

/* A scratch buffer that grew past this (a large tree or pack header) is freed
 * after use rather than kept for the life of the thread. */
#define SCRATCH_KEEP (16u << 20)
#define LEVEL_MAX 19

/* zstd contexts are costly to create and not thread-safe, so each thread keeps
 * its own, plus a scratch buffer for the compressed form. The key's destructor
 * frees them when the thread exits. */
struct blob_tls {
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct cairn_buf scratch;
};

static pthread_key_t tls_key;
static pthread_once_t tls_once = PTHREAD_ONCE_INIT;
static int tls_key_err;

static void tls_free(void *p)
{
	struct blob_tls *t = p;

	ZSTD_freeCCtx(t->cctx);
	ZSTD_freeDCtx(t->dctx);
	cairn_buf_release(&t->scratch);
	free(t);
}

static void tls_key_create(void)
{
	tls_key_err = pthread_key_create(&tls_key, tls_free);
}

static int tls_get(struct blob_tls **out)
{
	pthread_once(&tls_once, tls_key_create);
	if (tls_key_err)
		return cairn_err_set(-tls_key_err, "cannot create thread key: %s",
		                     strerror(tls_key_err));
	struct blob_tls *t = pthread_getspecific(tls_key);
	if (!t) {
		if (!(t = calloc(1, sizeof(*t))))
			return cairn_err_set(-ENOMEM, "out of memory");
		int e = pthread_setspecific(tls_key, t);
		if (e) {
			free(t);
			return cairn_err_set(-e, "cannot set thread data: %s", strerror(e));
		}
	}
	*out = t;
	return 0;
}

static void tls_trim(struct blob_tls *t)
{
	if (t->scratch.cap > SCRATCH_KEEP)
		cairn_buf_release(&t->scratch);
}

static void short_id(char out[9], const struct cairn_id *id)
{
	cairn_hex(out, id->b, 4);
}

/* ---- encode ------------------------------------------------------------- */

/*
 * Formats that are compressed already. zstd finds nothing to gain in them (a
 * copy of /usr/share: 25,008 .gz files, 103.3 MB, 0.3% smaller; 4,948 PNG, 3%)
 * but still costs a call, several microseconds for a small file, which is what
 * most of these are. A blob that starts a file starts with its magic number, and
 * a file below the minimum chunk size (512 KiB by default) is one blob. Not zip
 * (its headers and stored members compress: .jar 12%) nor JPEG (EXIF, thumbnails).
 * The chunks after a large file's first one are not recognised, nor need to be:
 * zstd skips incompressible input at over 2 GB/s.
 */
static const struct {
	uint8_t len;
	uint8_t magic[6];
} packed_formats[] = {
	{ 2, { 0x1f, 0x8b } },                       /* gzip */
	{ 4, { 0x28, 0xb5, 0x2f, 0xfd } },           /* zstd */
	{ 6, { 0xfd, '7', 'z', 'X', 'Z', 0x00 } },   /* xz */
	{ 3, { 'B', 'Z', 'h' } },                    /* bzip2 */
	{ 4, { 0x04, 0x22, 0x4d, 0x18 } },           /* lz4 frame */
	{ 6, { '7', 'z', 0xbc, 0xaf, 0x27, 0x1c } }, /* 7-Zip */
	{ 4, { 0x89, 'P', 'N', 'G' } },              /* PNG */
	{ 4, { 'w', 'O', 'F', 'F' } },               /* WOFF */
	{ 4, { 'w', 'O', 'F', '2' } },               /* WOFF2 */
};

static bool packed_already(const uint8_t *p, size_t len)
{
	for (size_t i = 0; i < ARRAY_SIZE(packed_formats); i++)
		if (len > packed_formats[i].len &&
		    memcmp(p, packed_formats[i].magic, packed_formats[i].len) == 0)
			return true;
	return false;
}

/* Compresses data into t->scratch. Returns 1 when the frame is smaller than the
 * input, 0 when the blob should be stored raw (FORMAT.md §5.2). */
static int compress(struct blob_tls *t, int level, const void *data, size_t len)
{
	if (!t->cctx && !(t->cctx = ZSTD_createCCtx()))
		return cairn_err_set(-ENOMEM, "out of memory for a zstd context");
	t->scratch.len = 0;
	int r = cairn_buf_reserve(&t->scratch, len);
	if (r < 0)
		return r;
	/* A destination one byte short of the input makes zstd give up as soon as
	 * the frame would not be smaller, which is exactly when we store raw. */
	size_t n = ZSTD_compressCCtx(t->cctx, t->scratch.data, len - 1, data, len, level);
	if (!ZSTD_isError(n)) {
		t->scratch.len = n;
		return 1;
	}
	if (ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall)
		return 0;
	return cairn_err_set(ZSTD_getErrorCode(n) == ZSTD_error_memory_allocation ? -ENOMEM : -EIO,
	                     "zstd compression failed: %s", ZSTD_getErrorName(n));
}

int cairn_blob__encode(const struct cairn_keys *k, int level, int type, const struct cairn_id *id,
                       const void *data, size_t len, struct cairn_buf *out)
{
	struct blob_tls *t;
	int r;

	if (level < 0 || level > LEVEL_MAX)
		return cairn_err_set(-EINVAL, "compression level %d is out of range 0..%d", level,
		                     LEVEL_MAX);
	/* Below two bytes no frame can be smaller than the input. */
	if (level == 0 || len < 2 || packed_already(data, len))
		return cairn_crypt__seal(k, type, id, 0, data, len, out);
	if ((r = tls_get(&t)) < 0 || (r = compress(t, level, data, len)) < 0)
		return r;
	if (r == 0)
		r = cairn_crypt__seal(k, type, id, 0, data, len, out);
	else
		r = cairn_crypt__seal(k, type, id, 1, t->scratch.data, t->scratch.len, out);
	tls_trim(t);
	return r;
}

/* ---- decode ------------------------------------------------------------- */

/* The body in t->scratch must be exactly one zstd frame that declares its size,
 * at most cap: a frame is never decompressed past what the caller expects. */
static int decompress(struct blob_tls *t, size_t cap, struct cairn_buf *out, const char *sid)
{
	const struct cairn_buf *src = &t->scratch;

	if (src->len == 0)
		return cairn_err_set(-EBADMSG, "blob %s: empty zstd body", sid);
	unsigned long long fcs = ZSTD_getFrameContentSize(src->data, src->len);
	if (fcs == ZSTD_CONTENTSIZE_ERROR)
		return cairn_err_set(-EBADMSG, "blob %s: body is not a zstd frame", sid);
	if (fcs == ZSTD_CONTENTSIZE_UNKNOWN)
		return cairn_err_set(-EBADMSG, "blob %s: zstd frame does not declare its size",
		                     sid);
	if (fcs > cap)
		return cairn_err_set(-EBADMSG,
		                     "blob %s: decompressed size mismatch: frame holds %llu "
		                     "bytes, at most %zu expected",
		                     sid, fcs, cap);
	size_t fsz = ZSTD_findFrameCompressedSize(src->data, src->len);
	if (ZSTD_isError(fsz) || fsz != src->len)
		return cairn_err_set(-EBADMSG, "blob %s: body is not exactly one zstd frame", sid);
	if (!t->dctx && !(t->dctx = ZSTD_createDCtx()))
		return cairn_err_set(-ENOMEM, "out of memory for a zstd context");
	out->len = 0;
	int r = cairn_buf_reserve(out, fcs ? (size_t)fcs : 1);
	if (r < 0)
		return r;
	size_t n = ZSTD_decompressDCtx(t->dctx, out->data, (size_t)fcs, src->data, src->len);
	if (ZSTD_isError(n))
		return cairn_err_set(-EBADMSG, "blob %s: zstd: %s", sid, ZSTD_getErrorName(n));
	if (n != fcs)
		return cairn_err_set(-EBADMSG,
		                     "blob %s: decompressed size mismatch: %zu bytes, frame "
		                     "declares %llu",
		                     sid, n, fcs);
	out->len = n;
	return 0;
}

/* Opens into the thread's scratch buffer and leaves the plaintext in out. */
static int unseal(struct blob_tls *t, const struct cairn_keys *k, int type,
                  const struct cairn_id *id, const uint8_t *sealed, size_t slen, size_t cap,
                  struct cairn_buf *out, const char *sid)
{
	uint8_t enc;

	if (slen < CAIRN_SEAL_OVERHEAD)
		return cairn_err_set(-EBADMSG, "blob %s: sealed length %zu is shorter than %d", sid,
		                     slen, CAIRN_SEAL_OVERHEAD);
	int r = cairn_crypt__open(k, type, id, sealed, slen, &enc, &t->scratch);
	if (r == -EBADMSG)
		return cairn_err_set(-EBADMSG, "blob %s: authentication failed", sid);
	if (r < 0)
		return r;
	if (enc == 1)
		return decompress(t, cap, out, sid);
	if (enc != 0)
		return cairn_err_set(-EBADMSG, "blob %s: unknown encoding %u", sid, enc);
	if (t->scratch.len > cap)
		return cairn_err_set(-EBADMSG,
		                     "blob %s: decompressed size mismatch: %zu bytes, at most "
		                     "%zu expected",
		                     sid, t->scratch.len, cap);
	/* Raw body: hand the buffer over instead of copying it. */
	struct cairn_buf tmp = *out;
	*out = t->scratch;
	t->scratch = tmp;
	return 0;
}

static int verify(const struct cairn_keys *k, int type, const struct cairn_id *id,
                  size_t expect_len, const struct cairn_buf *out, const char *sid)
{
	struct cairn_id got;

	if (expect_len != SIZE_MAX && out->len != expect_len)
		return cairn_err_set(-EBADMSG,
		                     "blob %s: decompressed size mismatch: %zu bytes, expected %zu",
		                     sid, out->len, expect_len);
	if (type == CAIRN_BLOB_PACKHDR)
		return 0; /* all-zero ID (FORMAT.md §5.1); the AAD still binds it */
	int r = cairn_crypt__hmac(k->id, out->data, out->len, got.b);
	if (r < 0)
		return r;
	if (!cairn_crypt__equal(got.b, id->b, CAIRN_ID_SIZE))
		return cairn_err_set(-EBADMSG, "blob %s: id mismatch", sid);
	return 0;
}

int cairn_blob__decode(const struct cairn_keys *k, int type, const struct cairn_id *id,
                       const uint8_t *sealed, size_t slen, size_t expect_len, size_t max,
                       struct cairn_buf *out)
{
	size_t cap = expect_len < max ? expect_len : max;
	struct blob_tls *t;
	char sid[9];

	short_id(sid, id);
	int r = tls_get(&t);
	if (r < 0)
		return r;
	r = unseal(t, k, type, id, sealed, slen, cap, out, sid);
	tls_trim(t);
	if (r >= 0)
		r = verify(k, type, id, expect_len, out, sid);
	if (r < 0)
		out->len = 0;
	return r;
}
