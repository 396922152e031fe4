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

#endif
