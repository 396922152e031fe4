/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for key files (FORMAT.md §3.2): parse, and unwrap when cheap. */
#include "keyfile.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_keyfile kf;
	uint8_t master[CAIRN_KEY_SIZE];

	if (cairn_keyfile__parse(&kf, data, size) < 0)
		return 0;
	if (kf.aad_len + 12 + 48 != size || memchr(kf.label, '\0', sizeof(kf.label)) == NULL)
		__builtin_trap(); /* parse accepted something inconsistent */
	/* Only the cheapest scrypt settings (those of the seed corpus): the fuzzer
	 * should spend its time on the parser, not on scrypt. */
	if (kf.log2n == 10 && kf.r <= 8 && kf.p <= 2)
		(void)cairn_keyfile__unwrap(data, size, "password", 8, master);
	return 0;
}
