/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for key files (FORMAT.md §3.2): parse, and unwrap when cheap. */
#include "keyfile.h"

#include <stdint.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct cairn_keyfile kf;
	struct cairn_key_secret s;

	if (cairn_keyfile__parse(&kf, data, size) < 0)
		return 0;
	/* The kind decides the secret's length (FORMAT.md §3.2): 32 or 160 bytes. */
	size_t want = kf.kind == CAIRN_KEY_WRITE_ONLY ? 160 + 16 : 32 + 16;
	if (kf.wrapped_len != want || kf.aad_len + 12 + kf.wrapped_len != size ||
	    memchr(kf.label, '\0', sizeof(kf.label)) == NULL)
		__builtin_trap(); /* parse accepted something inconsistent */
	/* Only the cheapest scrypt settings (those of the seed corpus): the fuzzer
	 * should spend its time on the parser, not on scrypt. */
	if (kf.log2n == 10 && kf.r <= 8 && kf.p <= 2 &&
	    cairn_keyfile__unwrap_secret(data, size, "password", 8, &s) >= 0 && s.kind != kf.kind)
		__builtin_trap();
	return 0;
}
