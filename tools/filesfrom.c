/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Lists of paths to back up, read from files (backup --files-from*). */
#include "filesfrom.h"

#include <errno.h>
#include <glob.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cairn/util.h"
#include "cleanup.h"

void filesfrom_release(struct filesfrom *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	*l = (struct filesfrom){ 0 };
}

static int add_n(struct filesfrom *l, const char *s, size_t n)
{
	char **v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	l->v = v;
	if (!(l->v[l->n] = strndup(s, n)))
		return cairn_err_set(-ENOMEM, "out of memory");
	l->n++;
	return 0;
}

int filesfrom_add(struct filesfrom *l, const char *s)
{
	return add_n(l, s, strlen(s));
}

static bool space(char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

/* A line of --files-from: a glob is expanded (sorted, as glob(3) gives it). One
 * that matches nothing is taken as it is, like a plain path: the backup reports
 * it as a path it cannot reach and the snapshot is partial, as for a missing
 * path written out (a list line whose mount is absent must not look like a
 * complete backup). */
static int add_glob(struct filesfrom *l, const char *line)
{
	glob_t g;
	if (!strpbrk(line, "*?["))
		return filesfrom_add(l, line);
	int r = glob(line, 0, NULL, &g);
	if (r == GLOB_NOSPACE)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (r != 0)
		return filesfrom_add(l, line);
	for (size_t i = 0; r >= 0 && i < g.gl_pathc; i++)
		r = filesfrom_add(l, g.gl_pathv[i]);
	globfree(&g);
	return r;
}

static int parse_line(struct filesfrom *l, enum filesfrom_kind kind, const char *where,
                      size_t lineno, const char *s, size_t n)
{
	if (n > 0 && s[n - 1] == '\r')
		n--; /* files written on Windows */
	if (memchr(s, '\0', n))
		return cairn_err_set(-EINVAL, "'%s' line %zu: NUL byte in a path", where, lineno);
	if (kind == FILESFROM_VERBATIM)
		return n ? add_n(l, s, n) : 0;
	while (n > 0 && space(*s))
		s++, n--;
	while (n > 0 && space(s[n - 1]))
		n--;
	if (n == 0 || s[0] == '#')
		return 0;
	_cleanup_free_ char *line = strndup(s, n);
	if (!line)
		return cairn_err_set(-ENOMEM, "out of memory");
	return add_glob(l, line);
}

static int parse_raw(struct filesfrom *l, const char *where, const char *text, size_t len)
{
	size_t entry = 0;
	for (size_t pos = 0; pos < len; entry++) {
		const char *nul = memchr(text + pos, '\0', len - pos);
		if (!nul)
			return cairn_err_set(
			        -EINVAL, "'%s': the last name has no NUL byte at its end", where);
		size_t n = (size_t)(nul - (text + pos));
		if (n == 0)
			return cairn_err_set(-EINVAL, "'%s': name %zu is empty", where, entry + 1);
		int r = add_n(l, text + pos, n);
		if (r < 0)
			return r;
		pos += n + 1;
	}
	return 0;
}

int filesfrom_parse(struct filesfrom *l, enum filesfrom_kind kind, const char *where,
                    const char *text, size_t len)
{
	if (kind == FILESFROM_RAW)
		return parse_raw(l, where, text, len);
	size_t lineno = 0;
	for (size_t pos = 0; pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		int r = parse_line(l, kind, where, ++lineno, text + pos, n);
		if (r < 0)
			return r;
		pos += n + (nl != NULL);
	}
	return 0;
}

int filesfrom_read(struct filesfrom *l, enum filesfrom_kind kind, const char *path)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	bool in = strcmp(path, "-") == 0;
	const char *where = in ? "standard input" : path;
	int r = in ? cairn_file_slurp_fd(STDIN_FILENO, where, FILESFROM_MAX_SIZE, &b)
	           : cairn_file_slurp(path, FILESFROM_MAX_SIZE, &b);
	if (r < 0)
		return cairn_err_wrap(r, "cannot read the list of paths '%s'", where);
	return filesfrom_parse(l, kind, where, (const char *)b.data, b.len);
}
