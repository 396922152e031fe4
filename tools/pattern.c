/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* TEMPORARY placeholder (fnmatch-based) until the real matcher lands. */
#include "pattern.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdlib.h>
#include <string.h>

struct pattern_list {
	char **p;
	size_t n;
};

int pattern_list_new(struct pattern_list **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void pattern_list_free(struct pattern_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		free(l->p[i]);
	free(l->p);
	free(l);
}

int pattern_list_add(struct pattern_list *l, const char *pat)
{
	char **v = realloc(l->p, (l->n + 1) * sizeof(*v));
	if (!v)
		return -ENOMEM;
	l->p = v;
	l->p[l->n++] = strdup(pat);
	return 0;
}

int pattern_list_add_file(struct pattern_list *l, const char *path)
{
	(void)l;
	(void)path;
	return -ENOTSUP;
}

bool pattern_list_match(const struct pattern_list *l, const char *path, size_t len)
{
	(void)len;
	const char *base = strrchr(path, '/');
	base = base ? base + 1 : path;
	for (size_t i = 0; i < l->n; i++)
		if (fnmatch(l->p[i], strchr(l->p[i], '/') ? path : base, 0) == 0)
			return true;
	return false;
}
