/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for the config file (FORMAT.md §4): probe, parse, verify. */
#include "config.h"

#include <stdint.h>
#include <string.h>

#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The key the seed corpus was written with (all bytes 0x11). */
static const uint8_t cfg_key[CAIRN_KEY_SIZE] = {
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
	0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11, 0x11,
};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const char *text = (const char *)data;
	struct cairn_config c;

	(void)cairn_config__probe(text, size);
	if (cairn_config__parse(&c, text, size) < 0)
		return 0;
	if (cairn_config__check(&c) < 0 || c.mac_off >= size)
		__builtin_trap();
	(void)cairn_config__verify(&c, text, cfg_key);
	/* The syntax is canonical: what parses formats back to the same bytes. */
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	if (cairn_config__format(&b, &c, cfg_key) < 0)
		return 0; /* out of memory */
	if (b.len != size || memcmp(b.data, text, c.mac_off) != 0)
		__builtin_trap();
	return 0;
}
