/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz target for tools/jline.c: `cairn run` reading its steps' log lines. */
#include "jline.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* The caller hands over one NUL-terminated line. */
	char *line = malloc(size + 1);
	if (!line)
		return 0;
	memcpy(line, data, size);
	line[size] = '\0';
	struct jline l = { .message = CAIRN_BUF_INIT };
	if (jline_parse(line, &l)) {
		/* What relay_line relies on: a known level, a terminated message,
		 * fields inside the line. */
		if (l.level < CAIRN_LOG_ERR || l.level > CAIRN_LOG_DEBUG || !l.message.len ||
		    l.message.data[l.message.len - 1] != '\0')
			__builtin_trap();
		if (l.fields_len && (l.fields < line || l.fields + l.fields_len > line + size))
			__builtin_trap();
	}
	cairn_buf_release(&l.message);
	free(line);
	return 0;
}
