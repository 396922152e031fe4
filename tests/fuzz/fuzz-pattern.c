/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the glob matcher (tools/pattern.c): the first line is a pattern, the rest a
 * path. It must never crash or hang, and must keep its own rules: a match covers
 * everything beneath, whatever matches also "matches below", and the same
 * pattern ignoring case matches too. */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pattern.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

DEFINE_FREEP(struct pattern_list, pattern_list_free)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_(pattern_list_freep) struct pattern_list *l = NULL;
	const uint8_t *nl = memchr(data, '\n', size);
	size_t plen = nl ? (size_t)(nl - data) : size;
	const char *path = nl ? (const char *)nl + 1 : "";
	size_t len = nl ? size - plen - 1 : 0;

	if (memchr(data, '\0', plen) || pattern_list_new(&l) < 0)
		return 0;
	_cleanup_free_ char *pat = strndup((const char *)data, plen);
	if (!pat)
		return 0;
	int r = pattern_list_add(l, pat);
	if (r < 0) {
		if (r != -EINVAL && r != -ENOMEM)
			abort();
		if (pattern_list_count(l) != 0)
			abort();
		return 0;
	}
	bool match = pattern_list_match(l, path, len);
	bool below = pattern_list_match_below(l, path, len);
	if (match && !below)
		abort();
	/* A match extends to every path beneath. */
	_cleanup_free_ char *deeper = malloc(len + 3);
	if (!deeper)
		return 0;
	if (len)
		memcpy(deeper, path, len);
	memcpy(deeper + len, "/x", 2);
	if (match && !pattern_list_match(l, deeper, len + 2))
		abort();
	/* Nothing below a path that cannot lead to a match matches. */
	if (!below && pattern_list_match_below(l, deeper, len + 2))
		abort();
	/* Ignoring case matches at least what minding it does (--iexclude),
	 * except through a negated set: [!A] matches "a" only when minding case. */
	_cleanup_(pattern_list_freep) struct pattern_list *il = NULL;
	if (pattern_list_new(&il) < 0 || pattern_list_add_flags(il, pat, PATTERN_ICASE) < 0)
		return 0; /* it compiled above: only out of memory */
	bool negated = strstr(pat, "[!") || strstr(pat, "[^");
	if (match && !negated && !pattern_list_match(il, path, len))
		abort();
	return 0;
}
