/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The JSON log lines cairn writes (CAIRN_LOG_FORMAT=json), read back by `cairn run`
 * from its steps' stderr, so that their fields survive the relay. */
#ifndef CAIRN_TOOLS_JLINE_H
#define CAIRN_TOOLS_JLINE_H

#include <stdbool.h>
#include <stddef.h>

#include "cairn/util.h"

struct jline {
	int level;                /* CAIRN_LOG_ERR..CAIRN_LOG_DEBUG */
	struct cairn_buf message; /* decoded, NUL-terminated; the caller releases it */
	const char *fields;       /* the members inside "fields":{...}, in the line */
	size_t fields_len;
};

/* One object written by cairn_log_emit, from the NUL-terminated line s; false
 * for anything else (a sanitizer's report, a crash message), which the caller
 * then relays as plain text. l->message must be initialised (CAIRN_BUF_INIT) and
 * is released by the caller whatever the result. */
bool jline_parse(const char *s, struct jline *l);

#endif
