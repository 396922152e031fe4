/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The exclusion rules of a backup, each named as the user gave it. */
#include "excludes.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "pattern.h"
#include "cleanup.h"

struct excludes {
	struct pattern_list *globs;
	char **glob_rules; /* per pattern of globs, made by excludes_apply */
	size_t nglob_rules;
	struct archiver_marker *markers; /* each string malloc'd */
	size_t nmarkers;
	uint64_t max_size;
	char *max_rule; /* NULL: no size limit */
};

int excludes_new(struct excludes **out)
{
	struct excludes *x = calloc(1, sizeof(*x));
	if (!x || pattern_list_new(&x->globs) < 0) {
		free(x);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = x;
	return 0;
}

void excludes_free(struct excludes *x)
{
	if (!x)
		return;
	for (size_t i = 0; i < x->nglob_rules; i++)
		free(x->glob_rules[i]);
	free(x->glob_rules);
	for (size_t i = 0; i < x->nmarkers; i++) {
		free((char *)x->markers[i].name);
		free((char *)x->markers[i].header);
		free((char *)x->markers[i].rule);
	}
	free(x->markers);
	free(x->max_rule);
	pattern_list_free(x->globs);
	free(x);
}

int excludes_add_glob(struct excludes *x, const char *glob, bool icase)
{
	return pattern_list_add_flags(x->globs, glob, icase ? PATTERN_ICASE : 0);
}

int excludes_add_glob_file(struct excludes *x, const char *path, bool icase)
{
	return pattern_list_add_file_flags(x->globs, path, icase ? PATTERN_ICASE : 0);
}

static int add_marker(struct excludes *x, const char *name, size_t name_len, const char *header,
                      const char *rule)
{
	struct archiver_marker *v = realloc(x->markers, (x->nmarkers + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	x->markers = v;
	struct archiver_marker m = {
		.name = strndup(name, name_len),
		.header = header ? strdup(header) : NULL,
		.rule = strdup(rule),
	};
	if (!m.name || (header && !m.header) || !m.rule) {
		free((char *)m.name);
		free((char *)m.header);
		free((char *)m.rule);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	x->markers[x->nmarkers++] = m;
	return 0;
}

int excludes_add_caches(struct excludes *x)
{
	static const char tag[] = "CACHEDIR.TAG";
	return add_marker(x, tag, strlen(tag), "Signature: 8a477f597d28d172789f06886806bc55",
	                  "--exclude-caches");
}

/* NAME[:HEADER], split at the first ':' as restic does. */
int excludes_add_marker(struct excludes *x, const char *spec)
{
	const char *colon = strchr(spec, ':');
	size_t n = colon ? (size_t)(colon - spec) : strlen(spec);
	char rule[EXCLUDES_MAX_HEADER + 300];

	if (n == 0 || memchr(spec, '/', n) || n > 255)
		return cairn_err_set(-EINVAL, "'%s' is not NAME[:HEADER] with a file name", spec);
	if (colon && (!colon[1] || strlen(colon + 1) > EXCLUDES_MAX_HEADER))
		return cairn_err_set(-EINVAL, "'%s': the header must be 1 to %d bytes", spec,
		                     EXCLUDES_MAX_HEADER);
	snprintf(rule, sizeof(rule), "--exclude-if-present %s", spec);
	return add_marker(x, spec, n, colon ? colon + 1 : NULL, rule);
}

int excludes_set_max_size(struct excludes *x, const char *size)
{
	uint64_t v;
	int r = cli_parse_size(size, &v);
	if (r < 0)
		return r;
	free(x->max_rule);
	if (asprintf(&x->max_rule, "--exclude-larger-than %s", size) < 0) {
		x->max_rule = NULL;
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	x->max_size = v;
	return 0;
}

static const char *glob_rule(const char *path, size_t len, size_t root_len, void *payload)
{
	const struct excludes *x = payload;
	long i = pattern_list_find_below(x->globs, path, len, root_len);
	return i < 0 ? NULL : x->glob_rules[i];
}

/* "--exclude '*.o'", "--iexclude-file FILE:LINE '*.o'": each pattern as given. */
static int name_globs(struct excludes *x)
{
	size_t n = pattern_list_count(x->globs);
	if (!(x->glob_rules = calloc(n ? n : 1, sizeof(*x->glob_rules))))
		return cairn_err_set(-ENOMEM, "out of memory");
	for (; x->nglob_rules < n; x->nglob_rules++) {
		size_t i = x->nglob_rules;
		const char *origin, *text = pattern_list_text(x->globs, i, &origin);
		const char *opt = pattern_list_flags(x->globs, i) & PATTERN_ICASE ? "--iexclude"
		                                                                  : "--exclude";
		int w = origin ? asprintf(&x->glob_rules[i], "%s-file %s '%s'", opt, origin, text)
		               : asprintf(&x->glob_rules[i], "%s '%s'", opt, text);
		if (w < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
	}
	return 0;
}

int excludes_apply(struct excludes *x, struct archiver_opts *ao)
{
	int r = x->glob_rules ? 0 : name_globs(x);
	if (r < 0)
		return r;
	ao->exclude = pattern_list_count(x->globs) ? glob_rule : NULL;
	ao->exclude_payload = x;
	ao->markers = x->markers;
	ao->nmarkers = x->nmarkers;
	ao->max_file_size = x->max_size;
	ao->max_file_rule = x->max_rule;
	return 0;
}
