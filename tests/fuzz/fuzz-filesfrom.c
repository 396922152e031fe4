/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the lists of backup --files-from* (tools/filesfrom.c): the first byte
 * chooses the format, the rest is the list. It must never crash, and every path
 * it gives is a non-empty string of the input's bytes. Lines with glob
 * characters are left to the tests: glob(3) would walk this machine's disk. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "filesfrom.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct filesfrom l = { 0 };
	if (size < 1)
		return 0;
	enum filesfrom_kind kind = (enum filesfrom_kind)(data[0] % 3);
	const char *text = (const char *)data + 1;
	size_t len = size - 1;
	if (kind == FILESFROM_LINES &&
	    (memchr(text, '*', len) || memchr(text, '?', len) || memchr(text, '[', len)))
		return 0;
	int r = filesfrom_parse(&l, kind, "fuzz", text, len);
	size_t seps = 1;
	for (size_t i = 0; i < len; i++)
		seps += text[i] == (kind == FILESFROM_RAW ? '\0' : '\n');
	if (l.n > seps)
		abort();
	for (size_t i = 0; i < l.n; i++) {
		size_t n = strlen(l.v[i]);
		if (n == 0 || n > len || !memmem(text, len, l.v[i], n))
			abort();
	}
	(void)r;
	filesfrom_release(&l);
	return 0;
}
