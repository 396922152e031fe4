/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Full verification of a pack file for `cairn check --read-data` (FORMAT.md §5.2, §6). */
#include "repo.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "pack.h"
#include "cleanup.h"

static inline void evp_md_ctx_freep(EVP_MD_CTX **c)
{
	EVP_MD_CTX_free(*c);
}

struct reader {
	const struct cairn_packf *f;
	const char *rel;
	EVP_MD_CTX *sha; /* over every byte in file order: the pack ID (§6.1) */
	uint64_t off;    /* next byte to hash */
};

/* Read [off, off + len) into b and hash it; reads are in file order. */
static int take(struct reader *rd, size_t len, struct cairn_buf *b)
{
	b->len = 0;
	int r = cairn_buf_reserve(b, len);
	if (r < 0)
		return r;
	r = cairn_packf__pread(rd->f, CAIRN_BLOB_DATA, b->data, len, rd->off);
	if (r < 0)
		return r;
	if (EVP_DigestUpdate(rd->sha, b->data, len) != 1)
		return cairn_err_set(-EIO, "pack '%s': SHA-256 failed", rd->rel);
	b->len = len;
	rd->off += len;
	return 0;
}

/* Decrypt and check one blob; bad() gets the reason. Returns 1 if damaged. */
static int check_blob(cairn_repo *repo, const struct cairn_pack_entry *e, const struct cairn_buf *b,
                      struct cairn_buf *plain,
                      void (*bad)(const struct cairn_pack_entry *, const char *, void *),
                      void *payload)
{
	size_t max =
	        e->type == CAIRN_BLOB_DATA ? cairn_repo__config(repo)->chunk.max : CAIRN_TREE_MAX;
	int r = cairn_blob__decode(cairn_repo__keys(repo), e->type, &e->id, b->data, b->len,
	                           e->raw_len, max, plain);
	if (r >= 0)
		return 0;
	if (bad)
		bad(e, cairn_err_msg(), payload);
	return 1;
}

/* Hash and check every blob, then the header and trailer; counts damaged blobs. */
static int read_all(cairn_repo *repo, struct reader *rd, uint64_t size,
                    const struct cairn_pack_entry *e, size_t n,
                    void (*bad)(const struct cairn_pack_entry *, const char *, void *),
                    void *payload)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT, plain = CAIRN_BUF_INIT;
	int r = take(rd, CAIRN_PACK_MAGIC_SIZE, &b), damaged = 0;

	/* parse_hdr checked that entries are contiguous from offset 8 to the header. */
	for (size_t i = 0; r >= 0 && i < n; i++)
		if ((r = take(rd, e[i].stored_len, &b)) >= 0)
			damaged += check_blob(repo, &e[i], &b, &plain, bad, payload);
	/* The rest is the sealed header and trailer: read in bounded pieces. */
	while (r >= 0 && rd->off < size)
		r = take(rd, size - rd->off > (1u << 20) ? (1u << 20) : size - rd->off, &b);
	return r < 0 ? r : damaged;
}

static int verify_pass(cairn_repo *repo, const struct cairn_id *pack,
                       void (*bad)(const struct cairn_pack_entry *e, const char *msg,
                                   void *payload),
                       void *payload, const char *fetched)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	_cleanup_packf_ struct cairn_packf f = { .fd = -1 };
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	_cleanup_(evp_md_ctx_freep) EVP_MD_CTX *sha = EVP_MD_CTX_new();
	struct cairn_id digest;
	unsigned dlen = 0;
	size_t n = 0;
	int r;

	if (!sha || EVP_DigestInit_ex(sha, EVP_sha256(), NULL) != 1)
		return cairn_err_set(-ENOMEM, "cannot start SHA-256");
	if ((r = cairn_repo__pack_open(repo, pack, &f, rel)) < 0 ||
	    (r = cairn_pack__read_entries_from(&f, cairn_repo__keys(repo), &e, &n)) < 0)
		return r;
	struct reader rd = { .f = &f, .rel = rel, .sha = sha };
	int damaged = read_all(repo, &rd, f.size, e, n, bad, payload);
	if (damaged < 0)
		return damaged;
	if (EVP_DigestFinal_ex(sha, digest.b, &dlen) != 1 || dlen != CAIRN_ID_SIZE)
		return cairn_err_set(-EIO, "pack '%s': SHA-256 failed", rel);
	if (damaged)
		return cairn_err_set(-EBADMSG, "pack '%s'%s: %d of %zu blobs are damaged", rel,
		                     fetched, damaged, n);
	if (memcmp(digest.b, pack->b, CAIRN_ID_SIZE) != 0)
		return cairn_err_set(-EBADMSG, "pack '%s'%s: its SHA-256 does not match its name",
		                     rel, fetched);
	return 0;
}

/* Through the cache of a remote storage, a pack that does not verify is dropped
 * from the cache and fetched again, once, before anything is reported: the
 * cached blocks, or the replies that brought them, may be what is damaged
 * (docs/S3.md §5). Only what the fresh copy shows reaches bad(); a copy that
 * fails again leaves the cache too, so that the next reader fetches it afresh. */
int cairn_repo_pack_verify(cairn_repo *repo, const struct cairn_id *pack,
                           void (*bad)(const struct cairn_pack_entry *e, const char *msg,
                                       void *payload),
                           void *payload)
{
	if (!repo->cache)
		return verify_pass(repo, pack, bad, payload, "");
	int r = verify_pass(repo, pack, NULL, NULL, "");
	if (r != -EBADMSG)
		return r;
	char why[512], hex[CAIRN_ID_HEX_SIZE], fetched[600];
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	cairn_id_hex(hex, pack);
	snprintf(fetched, sizeof(fetched), " (fetched twice from %s)", cairn_storage_url(repo->st));
	cairn_cache__drop_pack(repo->cache, pack);
	r = verify_pass(repo, pack, bad, payload, fetched);
	if (r >= 0)
		cairn_repo__warn(repo,
		                 "pack %.8s as first read from %s did not verify (%s); fetched "
		                 "again, it does: the damage was on the way or in this host's "
		                 "cache, not in the repository",
		                 hex, cairn_storage_url(repo->st), why);
	else if (r == -EBADMSG)
		cairn_cache__drop_pack(repo->cache, pack);
	return r;
}
