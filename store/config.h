/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The config file (FORMAT.md §4). Internal. */
#ifndef CAIRN_CONFIG_H
#define CAIRN_CONFIG_H

#include "crypt.h"

#define CAIRN_CONFIG_MAX 4096
#define CAIRN_COMPRESSION_DEFAULT 3
#define CAIRN_PACK_SIZE_DEFAULT (16u * 1024 * 1024)
#define CAIRN_PACK_SIZE_MIN (1u * 1024 * 1024)
#define CAIRN_PACK_SIZE_MAX (1024u * 1024 * 1024)

struct cairn_config {
	unsigned version;
	uint8_t id[CAIRN_REPO_ID_SIZE];
	struct cairn_chunk_params chunk;
	int compression;
	uint32_t pack_size;
	uint8_t mac[32];
	size_t mac_off; /* bytes of the file covered by the mac */
};

/* Just the first line: -EPROTONOSUPPORT for a version other than 1, -EBADMSG. */
int cairn_config__probe(const char *text, size_t len);
/* Full parse with range checks (not the MAC). -EPROTONOSUPPORT, -EBADMSG. */
int cairn_config__parse(struct cairn_config *out, const char *text, size_t len);
/* Validate chunk/compression/pack sizes: -EINVAL with a message. */
int cairn_config__check(const struct cairn_config *c);
/* Render the file, with its mac under cfg_key, into out (appended). */
int cairn_config__format(struct cairn_buf *out, const struct cairn_config *c,
                         const uint8_t cfg_key[CAIRN_KEY_SIZE]);
/* Check the mac of text (parsed into c) under cfg_key. -EBADMSG on mismatch. */
int cairn_config__verify(const struct cairn_config *c, const char *text,
                         const uint8_t cfg_key[CAIRN_KEY_SIZE]);

#endif
