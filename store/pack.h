/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Pack files (FORMAT.md §6): writing, and reading their headers. Internal. */
#ifndef CAIRN_PACK_H
#define CAIRN_PACK_H

#include "cairn/storage.h"
#include "crypt.h"

#define CAIRN_PACK_MAGIC "CAIRNPK1"
#define CAIRN_PACK_MAGIC_SIZE 8
#define CAIRN_PACK_TRAILER_SIZE 12
#define CAIRN_PACK_ENTRY_SIZE 45
#define CAIRN_PACK_MAX_ENTRIES 1000000u
#define CAIRN_PACK_MAX_SIZE 0xffffffffu

/* A pack being written: a temp file in tmpdir. Not thread-safe: one writer per thread. */
typedef struct cairn_packw cairn_packw;

/* Create the temp file and write the magic. -EIO, -ENOSPC. */
int cairn_packw__new(cairn_packw **out, const char *tmpdir);
/* Append one sealed blob; -EFBIG if the pack would pass CAIRN_PACK_MAX_SIZE or
 * CAIRN_PACK_MAX_ENTRIES, -ENOSPC, -EIO. */
int cairn_packw__add(cairn_packw *w, const struct cairn_id *id, int type, const void *sealed,
                     size_t slen, uint32_t raw_len);
uint64_t cairn_packw__size(const cairn_packw *w);
size_t cairn_packw__count(const cairn_packw *w);
/* Borrowed view of the entries added so far (valid until the next add or free). */
const struct cairn_pack_entry *cairn_packw__entries(const cairn_packw *w);
/* The sealed bytes of entry i, as added, into out (replacing its content): for
 * moving a blob to another pack without sealing it again. -EINVAL for an i past
 * the entries or a writer that failed or was sealed, -EIO. */
int cairn_packw__read(cairn_packw *w, size_t i, struct cairn_buf *out);
/* Seal the header and write the trailer (no fsync: put_tmp's). The pack ID is the
 * SHA-256 of the file, computed while writing. Afterwards the temp file (fd and
 * path below, still open) is complete: a storage takes it over
 * (cairn_storage_put_tmp), then cairn_packw__taken(). -ENOSPC, -EIO, -EINVAL for
 * an empty pack. */
int cairn_packw__seal(cairn_packw *w, const struct cairn_keys *k, struct cairn_id *pack_id_out,
                      uint64_t *size_out);
int cairn_packw__fd(const cairn_packw *w);
const char *cairn_packw__path(const cairn_packw *w);
/* The temp file now belongs to a storage: _free() leaves it alone. */
void cairn_packw__taken(cairn_packw *w);
/* Frees; an unfinished temp file is unlinked. NULL is a no-op. */
void cairn_packw__free(cairn_packw *w);

/* Tests: let this process write n more pack bytes, then fail every pack write with
 * -EIO (n < 0: no limit). The environment variable CAIRN_TEST_PACK_WRITE_FAIL_AFTER=n
 * does the same for a whole process. */
void cairn_pack__test_fail_after(int64_t n);

/* Decode the 12-byte trailer of a file of file_size bytes into the header length;
 * checks the magic and that 8 + header + 12 <= size. -EBADMSG. */
int cairn_pack__parse_trailer(const uint8_t trailer[CAIRN_PACK_TRAILER_SIZE], uint64_t file_size,
                              uint32_t *hdr_len);
/* Decode a header plaintext for a header starting at hdr_off (FORMAT.md §6.2):
 * count bounds, exact length, types, contiguous offsets from 8 to hdr_off.
 * Caller frees *out. -EBADMSG, -ENOMEM. */
int cairn_pack__parse_hdr(const uint8_t *plain, size_t len, uint64_t hdr_off,
                          struct cairn_pack_entry **out, size_t *n);
/* A pack opened for reading: a file descriptor, or a reader function (the
 * repository's: its storage or, for a remote one, its cache). */
struct cairn_packf {
	int fd; /* -1 with a reader */
	int (*pread)(void *ctx, const struct cairn_packf *f, int type, void *buf, size_t len,
	             uint64_t off);
	void *ctx;
	struct cairn_id id;
	uint64_t size;
	const char *name; /* for messages */
};
/* Exactly len bytes at off. -EBADMSG if the pack ends first, -EIO, -ENOENT (a
 * source's pack vanished); the message names the pack and offset. type: what is
 * read (a blob type, 0 for the header), a caching hint for a source. */
int cairn_packf__pread(const struct cairn_packf *f, int type, void *buf, size_t len, uint64_t off);
void cairn_packf__close(struct cairn_packf *f);
static inline void cairn_packf__closep(struct cairn_packf *f)
{
	cairn_packf__close(f);
}
#define _cleanup_packf_ __attribute__((cleanup(cairn_packf__closep)))
/* Read trailer + header of an opened pack, decrypt and parse. Caller frees *out. */
int cairn_pack__read_entries_from(const struct cairn_packf *f, const struct cairn_keys *k,
                                  struct cairn_pack_entry **out, size_t *n);
/* The same for an open pack file. name is for messages. */
int cairn_pack__read_entries(int fd, uint64_t file_size, const struct cairn_keys *k,
                             const char *name, struct cairn_pack_entry **out, size_t *n);
/* "packs/ab/abcdef..." relative path for a pack ID. */
#define CAIRN_PACK_RELPATH_SIZE CAIRN_OBJ_REL_MAX
void cairn_pack__relpath(char out[CAIRN_PACK_RELPATH_SIZE], const struct cairn_id *pack);

#endif
