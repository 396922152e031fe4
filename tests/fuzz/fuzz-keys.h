/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fixed keys shared by the fuzz targets that decrypt (and by their corpus
 * generators): master 0x5a.., repository id 0xa5... */
#ifndef CAIRN_FUZZ_KEYS_H
#define CAIRN_FUZZ_KEYS_H

#include <pthread.h>
#include <string.h>

#include "crypt.h"

static struct cairn_keys fuzz_keys_v;
static pthread_once_t fuzz_keys_once = PTHREAD_ONCE_INIT;

static void fuzz_keys_init(void)
{
	uint8_t master[CAIRN_KEY_SIZE], repo_id[CAIRN_REPO_ID_SIZE];

	memset(master, 0x5a, sizeof(master));
	memset(repo_id, 0xa5, sizeof(repo_id));
	if (cairn_crypt__derive(&fuzz_keys_v, master, repo_id) < 0)
		__builtin_trap();
}

static inline const struct cairn_keys *fuzz_keys(void)
{
	pthread_once(&fuzz_keys_once, fuzz_keys_init);
	return &fuzz_keys_v;
}

/* A write-only key of the same repository (FORMAT.md §3.3): it seals to the
 * admin key of fuzz_keys() (§5.4). */
static struct cairn_keys fuzz_keys_wo_v;
static pthread_once_t fuzz_keys_wo_once = PTHREAD_ONCE_INIT;

static void fuzz_keys_wo_init(void)
{
	struct cairn_wo_secret s;
	uint8_t repo_id[CAIRN_REPO_ID_SIZE];

	memset(repo_id, 0xa5, sizeof(repo_id));
	if (cairn_crypt__write_only_secret(&s, fuzz_keys(), "config", 6) < 0 ||
	    cairn_crypt__derive_write_only(&fuzz_keys_wo_v, &s, repo_id) < 0)
		__builtin_trap();
}

static inline const struct cairn_keys *fuzz_keys_wo(void)
{
	pthread_once(&fuzz_keys_wo_once, fuzz_keys_wo_init);
	return &fuzz_keys_wo_v;
}

#endif
