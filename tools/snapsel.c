/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Choosing snapshots by host, path and tag: the filters every command shares. */
#include "snapsel.h"

#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cleanup.h"
#include "cli.h"

void snapsel_init(struct snapsel *s)
{
	*s = (struct snapsel){ 0 };
}

static void free_strs(char **v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

void snapsel_release(struct snapsel *s)
{
	free_strs(s->hosts, s->nhosts);
	free_strs(s->paths, s->npaths);
	free_strs(s->tags, s->ntags);
	snapsel_init(s);
}

/* Append str (taken over; freed on failure). */
static int push(char ***v, size_t *n, char *str)
{
	char **nv = str ? realloc(*v, (*n + 1) * sizeof(*nv)) : NULL;
	if (!nv) {
		free(str);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	nv[(*n)++] = str;
	*v = nv;
	return 0;
}

int snapsel_clean_path(const char *path, char **out)
{
	_cleanup_free_ char *cwd = NULL;
	if (!*path)
		return cairn_err_set(-EINVAL, "an empty path matches no snapshot");
	if (path[0] != '/' && !(cwd = getcwd(NULL, 0)))
		return cairn_err_set(-ERANGE, "cannot make '%s' absolute: %s", path,
		                     strerror(errno));
	size_t cl = cwd ? strlen(cwd) : 0, pl = strlen(path);
	/* The result is never longer than "<cwd>/<path>" (and 2 for "/"). */
	char *o = malloc(cl + pl + 3);
	if (!o)
		return cairn_err_set(-ENOMEM, "out of memory");
	size_t len = 0;
	for (int pass = 0; pass < 2; pass++) {
		const char *p = pass == 0 ? (cwd ? cwd : "") : path;
		while (*p) {
			size_t k = strcspn(p, "/");
			if (k == 2 && p[0] == '.' && p[1] == '.') {
				while (len > 0 && o[--len] != '/')
					;
			} else if (k > 0 && !(k == 1 && p[0] == '.')) {
				o[len++] = '/';
				memcpy(o + len, p, k);
				len += k;
			}
			p += k + (p[k] == '/');
		}
	}
	if (len == 0)
		o[len++] = '/';
	o[len] = '\0';
	*out = o;
	return 0;
}

int snapsel_tag_group(const char *opt, const char *arg, bool none_ok, char **out)
{
	_cleanup_free_ char *buf = malloc(strlen(arg) + 1);
	size_t n = 0;
	if (!buf)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (!*arg && !none_ok)
		return cairn_err_set(-EINVAL, "%s: give a tag (TAG[,TAG...])", opt);
	for (const char *p = *arg ? arg : NULL; p;) {
		size_t k;
		const char *t = cli_tag_item(p, &k, &p);
		if (k == 0)
			return cairn_err_set(-EINVAL, "%s '%s': a tag must be 1 to 1024 bytes%s",
			                     opt, arg, none_ok ? " ('' alone: no tags)" : "");
		memcpy(buf + n, t, k);
		n += k;
		if (p)
			buf[n++] = ',';
	}
	buf[n] = '\0';
	*out = TAKE_PTR(buf);
	return 0;
}

int snapsel_opt(struct snapsel *s, int c, const char *arg)
{
	char *p = NULL;
	int r;
	switch (c) {
	case OPT_SNAPSEL_HOST:
		return push(&s->hosts, &s->nhosts, strdup(arg));
	case OPT_SNAPSEL_TAG:
		if ((r = snapsel_tag_group("--tag", arg, true, &p)) < 0)
			return r;
		return push(&s->tags, &s->ntags, p);
	case OPT_SNAPSEL_PATH:
		if ((r = snapsel_clean_path(arg, &p)) < 0)
			return r;
		return push(&s->paths, &s->npaths, p);
	default:
		return 1;
	}
}

bool snapsel_empty(const struct snapsel *s)
{
	return s->nhosts == 0 && s->npaths == 0 && s->ntags == 0;
}

static bool has(char *const *v, size_t n, const char *str, size_t len)
{
	for (size_t i = 0; i < n; i++)
		if (strlen(v[i]) == len && memcmp(v[i], str, len) == 0)
			return true;
	return false;
}

bool snapsel_has_tags(char *const *tags, size_t n, const char *group)
{
	if (!*group)
		return n == 0;
	for (const char *p = group;;) {
		size_t k = strcspn(p, ",");
		if (k > 0 && !has(tags, n, p, k))
			return false;
		if (!p[k])
			return true;
		p += k + 1;
	}
}

bool snapsel_match(const struct snapsel *s, const struct cairn_snapshot *snap)
{
	bool host = s->nhosts == 0, tags = s->ntags == 0;
	for (size_t i = 0; i < s->nhosts && !host; i++)
		host = strcmp(s->hosts[i], snap->hostname) == 0;
	for (size_t i = 0; i < s->ntags && !tags; i++)
		tags = snapsel_has_tags(snap->tags, snap->ntags, s->tags[i]);
	if (!host || !tags)
		return false;
	for (size_t i = 0; i < s->npaths; i++)
		if (!has(snap->paths, snap->npaths, s->paths[i], strlen(s->paths[i])))
			return false;
	return true;
}

/* "host 'a' or 'b', path '/x' and '/y', tags 't1,t2' or ''" for messages. */
static void describe(const struct snapsel *s, struct cairn_buf *b)
{
	const struct {
		const char *what, *join;
		char **v;
		size_t n;
	} parts[] = {
		{ "host", "or", s->hosts, s->nhosts },
		{ "paths", "and", s->paths, s->npaths },
		{ "tags", "or", s->tags, s->ntags },
	};
	for (size_t k = 0; k < ARRAY_SIZE(parts); k++) {
		for (size_t i = 0; i < parts[k].n; i++)
			(void)cairn_buf_printf(b, "%s%s '%s'",
			                       i        ? " "
			                       : b->len ? ", "
			                                : "",
			                       i ? parts[k].join : parts[k].what, parts[k].v[i]);
	}
}

int snapsel_find(const struct snapsel *s, struct cairn_snapshot *const *list, size_t n,
                 const char *spec)
{
	if (strcmp(spec, "latest") != 0 || snapsel_empty(s))
		return cairn_snapshot_find(list, n, spec);
	for (size_t i = n; i-- > 0;)
		if (snapsel_match(s, list[i]))
			return (int)i;
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	describe(s, &b);
	return cairn_err_set(-ENOENT, "no snapshot matches %.*s", (int)b.len,
	                     b.data ? (char *)b.data : "");
}

int snapsel_choose(const struct snapsel *s, struct cairn_snapshot *const *list, size_t n,
                   char *const *specs, size_t nspecs, bool *want)
{
	for (size_t i = 0; i < n; i++)
		want[i] = nspecs == 0 && snapsel_match(s, list[i]);
	for (size_t k = 0; k < nspecs; k++) {
		int r = snapsel_find(s, list, n, specs[k]);
		if (r < 0)
			return r;
		want[r] = true;
	}
	return 0;
}

int snapsel_load(cairn_repo *repo, const struct snapsel *s, const char *spec,
                 struct cairn_snapshot **out)
{
	struct cairn_snapshot **list = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_list(repo, &list, &n);
	if (r < 0)
		return r;
	int i = snapsel_find(s, list, n, spec);
	if (i >= 0) {
		*out = list[i];
		list[i] = NULL;
	}
	cairn_snapshot_list_free(list, n);
	return i < 0 ? i : 0;
}

size_t snapsel_root_len(const struct cairn_snapshot *s, const char *p, size_t len)
{
	size_t best = len;
	for (size_t i = 0; i < s->npaths; i++) {
		size_t n = strlen(s->paths[i]);
		bool root = n == 1 && s->paths[i][0] == '/';
		if (root ||
		    (n <= len && memcmp(p, s->paths[i], n) == 0 && (n == len || p[n] == '/')))
			best = best == len || n > best ? n : best;
	}
	return best;
}
