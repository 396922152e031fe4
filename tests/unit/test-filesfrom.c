/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for tools/filesfrom.c: the three list formats of backup --files-from*. */
#include "filesfrom.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "check.h"
#include "cleanup.h"

/* Parse text (len bytes) and compare with the NULL-terminated want. */
static void parses(enum filesfrom_kind kind, const char *text, size_t len, const char *const *want)
{
	struct filesfrom l = { 0 };
	size_t n = 0;
	CHECK_OK(filesfrom_parse(&l, kind, "list", text, len));
	for (; want[n]; n++)
		CHECK(n < l.n && strcmp(l.v[n], want[n]) == 0);
	CHECK_EQ(l.n, n);
	filesfrom_release(&l);
}

static void test_filesfrom__lines(void)
{
	static const char text[] = "# a comment\n"
	                           "\n"
	                           "  /srv/a  \n"
	                           "/srv/b\r\n"
	                           "\t#not-a-comment-after-all\n" /* trimmed first: a comment */
	                           "relative/c\n"
	                           "/last";
	const char *const want[] = { "/srv/a", "/srv/b", "relative/c", "/last", NULL };
	parses(FILESFROM_LINES, text, sizeof(text) - 1, want);
}

static void test_filesfrom__verbatim(void)
{
	static const char text[] = "# not a comment\n"
	                           "\n"
	                           "  spaced  \n"
	                           "/srv/b\r\n";
	const char *const want[] = { "# not a comment", "  spaced  ", "/srv/b", NULL };
	parses(FILESFROM_VERBATIM, text, sizeof(text) - 1, want);
}

static void test_filesfrom__raw(void)
{
	static const char text[] = "/a\nwith newline\0 spaced \0#x\0";
	const char *const want[] = { "/a\nwith newline", " spaced ", "#x", NULL };
	parses(FILESFROM_RAW, text, sizeof(text) - 1, want);
	const char *const none[] = { NULL };
	parses(FILESFROM_RAW, "", 0, none);

	struct filesfrom l = { 0 };
	CHECK_ERR(filesfrom_parse(&l, FILESFROM_RAW, "list", "/a\0/b", 5), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "no NUL byte at its end"));
	CHECK_ERR(filesfrom_parse(&l, FILESFROM_RAW, "list", "/a\0\0", 4), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "name 2 is empty"));
	CHECK_ERR(filesfrom_parse(&l, FILESFROM_LINES, "list", "/a\n/b\0c\n", 8), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "'list' line 2: NUL byte"));
	filesfrom_release(&l);
}

/* Globs of --files-from expand against the filesystem, sorted; one that matches
 * nothing is kept as written, for the backup to report missing; -verbatim never
 * expands. */
static void test_filesfrom__globs(void)
{
	char dir[256], text[1024], a[300], b[300];
	snprintf(dir, sizeof(dir), "%s", check_tmpdir());
	snprintf(a, sizeof(a), "%s/x1.log", dir);
	snprintf(b, sizeof(b), "%s/x2.log", dir);
	CHECK_OK(cairn_file_write_atomic(b, NULL, "b", 1));
	CHECK_OK(cairn_file_write_atomic(a, NULL, "a", 1));
	int n = snprintf(text, sizeof(text), "%s/*.log\n%s/*.none\n%s/plain-missing\n", dir, dir,
	                 dir);
	struct filesfrom l = { 0 };
	CHECK_OK(filesfrom_parse(&l, FILESFROM_LINES, "list", text, (size_t)n));
	CHECK_EQ(l.n, 4);
	CHECK(strcmp(l.v[0], a) == 0 && strcmp(l.v[1], b) == 0);
	CHECK(strstr(l.v[2], "/*.none"));
	CHECK(strstr(l.v[3], "/plain-missing"));
	filesfrom_release(&l);
	n = snprintf(text, sizeof(text), "%s/*.log\n", dir);
	CHECK_OK(filesfrom_parse(&l, FILESFROM_VERBATIM, "list", text, (size_t)n));
	CHECK_EQ(l.n, 1);
	CHECK(strstr(l.v[0], "/*.log"));
	filesfrom_release(&l);
}

static void test_filesfrom__read(void)
{
	char path[300];
	struct filesfrom l = { 0 };
	snprintf(path, sizeof(path), "%s/list", check_tmpdir());
	CHECK_OK(cairn_file_write_atomic(path, NULL, "/a\n/b\n", 6));
	CHECK_OK(filesfrom_read(&l, FILESFROM_LINES, path));
	CHECK_EQ(l.n, 2);
	snprintf(path, sizeof(path), "%s/missing", check_tmpdir());
	CHECK_ERR(filesfrom_read(&l, FILESFROM_LINES, path), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "cannot read the list of paths"));
	CHECK_EQ(l.n, 2);
	filesfrom_release(&l);
}

int main(void)
{
	RUN(test_filesfrom__lines);
	RUN(test_filesfrom__verbatim);
	RUN(test_filesfrom__raw);
	RUN(test_filesfrom__globs);
	RUN(test_filesfrom__read);
	return 0;
}
