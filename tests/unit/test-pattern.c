/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for tools/pattern.c: glob syntax, anchoring, "**", files, pathological input. */
#include "pattern.h"

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "check.h"
#include "cleanup.h"

/* Does the single pattern pat match path? (CHECKs that pat compiles.) */
static bool m(const char *pat, const char *path)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add(l, pat));
	bool r = pattern_list_match(l, path, strlen(path));
	pattern_list_free(l);
	return r;
}

static bool below(const char *pat, const char *path)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add(l, pat));
	bool r = pattern_list_match_below(l, path, strlen(path));
	pattern_list_free(l);
	return r;
}

static int add_one(const char *pat)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	int r = pattern_list_add(l, pat);
	CHECK_EQ(pattern_list_count(l), r < 0 ? 0 : 1);
	pattern_list_free(l);
	return r;
}

static void test_pattern__wildcards(void)
{
	CHECK(m("foo", "/foo"));
	CHECK(!m("foo", "/foobar"));
	CHECK(!m("foo", "/xfoo"));
	CHECK(m("*.o", "/src/main.o"));
	CHECK(m("*.o", "/.o")); /* '*' matches the empty string and leading dots */
	CHECK(!m("*.o", "/src/main.c"));
	CHECK(m("a*b*c", "/abc"));
	CHECK(m("a*b*c", "/aXXbYYbZZc"));
	CHECK(!m("a*b*c", "/aXXbYYbZZ"));
	CHECK(m("?", "/x"));
	CHECK(!m("?", "/xy"));
	CHECK(m("f??", "/foo"));
	CHECK(m("*", "/anything"));
	/* '*' and '?' never cross '/' */
	CHECK(!m("/a*c", "/ab/c"));
	CHECK(!m("/a?c", "/a/c"));
	CHECK(m("/a/*/c", "/a/b/c"));
	CHECK(!m("/a/*/c", "/a/b/x/c"));
}

static void test_pattern__classes(void)
{
	CHECK(m("[abc]", "/b"));
	CHECK(!m("[abc]", "/d"));
	CHECK(m("[a-c]x", "/bx"));
	CHECK(!m("[a-c]x", "/dx"));
	CHECK(m("[!a-c]", "/d"));
	CHECK(m("[^a-c]", "/d"));
	CHECK(!m("[!a-c]", "/a"));
	CHECK(m("[]]", "/]")); /* ']' first is literal */
	CHECK(m("[!]]", "/x"));
	CHECK(!m("[!]]", "/]"));
	CHECK(m("[a-]", "/-")); /* '-' last is literal */
	CHECK(m("[\\]]", "/]"));
	CHECK(m("[[:digit:]][[:alpha:]]", "/1z"));
	CHECK(!m("[[:digit:]]", "/z"));
	CHECK(m("[![:space:]]", "/q"));
	CHECK(m("[[:upper:][:punct:]]", "/!"));
	CHECK(!m("[[:lower:]]", "/Q"));
	CHECK(m("[\x80-\xff]", "/\xe9")); /* bytes, not characters */
	CHECK(!m("[z-a]", "/m"));         /* an empty range matches nothing */
}

static void test_pattern__escapes(void)
{
	CHECK(m("\\*", "/*"));
	CHECK(!m("\\*", "/x"));
	CHECK(m("a\\?", "/a?"));
	CHECK(!m("a\\?", "/ab"));
	CHECK(m("\\[x]", "/[x]"));
	CHECK(m("\\\\", "/\\"));
	CHECK(m("\\*\\*", "/**"));
	CHECK(!m("\\*\\*", "/a/b")); /* quoted stars are no "**" */
}

static void test_pattern__anchoring(void)
{
	/* no '/': the basename, at any depth */
	CHECK(m("cache", "/cache"));
	CHECK(m("cache", "/home/me/.cache/../cache"));
	CHECK(!m("cache", "/home/me/.cache"));
	/* leading '/': from the root only */
	CHECK(m("/home", "/home"));
	CHECK(!m("/me", "/home/me"));
	CHECK(m("/home/me", "/home/me"));
	CHECK(!m("/home/m", "/home/me"));
	/* inner '/': any trailing run of components */
	CHECK(m("me/docs", "/home/me/docs"));
	CHECK(m("me/docs", "/me/docs"));
	CHECK(!m("me/docs", "/home/xme/docs"));
	CHECK(m("home/*/docs", "/home/me/docs"));
	/* trailing and doubled slashes change nothing */
	CHECK(m("docs/", "/a/docs"));
	CHECK(m("/a//b", "/a/b"));
	CHECK(m("/a/b", "//a///b/"));
	/* the root pattern matches everything */
	CHECK(m("/", "/"));
	CHECK(m("/", "/x/y"));
}

static void test_pattern__beneath(void)
{
	CHECK(m("node_modules", "/p/node_modules/x/y.js"));
	CHECK(m("/var/cache", "/var/cache/apt/archives"));
	CHECK(!m("/var/cache", "/var/cached"));
	CHECK(!m("/var/cache", "/var"));
	CHECK(m("*.d", "/etc/conf.d/x"));
}

static void test_pattern__double_star(void)
{
	CHECK(m("/a/**/b", "/a/b"));
	CHECK(m("/a/**/b", "/a/x/b"));
	CHECK(m("/a/**/b", "/a/x/y/z/b"));
	CHECK(!m("/a/**/b", "/x/a/b"));
	CHECK(m("**/b", "/b"));
	CHECK(m("**/b", "/x/y/b"));
	CHECK(m("/a/**", "/a/x"));
	CHECK(m("/a/**", "/a"));
	CHECK(m("**", "/"));
	CHECK(m("/**/*.txt", "/docs/x/readme.txt"));
	CHECK(!m("/**/*.txt", "/docs/x/readme.md"));
	CHECK(m("/a/**/**/b", "/a/b"));
	CHECK(m("a/**/b/**/c", "/r/a/1/b/2/3/c"));
	CHECK(!m("a/**/b/**/c", "/r/a/1/c/2/3/b"));
	/* "**" only as a whole component; elsewhere it is '*' */
	CHECK(m("/a**b", "/axxb"));
	CHECK(!m("/a**b", "/ax/xb"));
	CHECK(m("/***", "/abc")); /* "***" is '*' */
	CHECK(!m("x/***/y", "/x/a/b/y"));
}

static void test_pattern__match_below(void)
{
	CHECK(below("/home/me/docs", "/"));
	CHECK(below("/home/me/docs", "/home"));
	CHECK(below("/home/me/docs", "/home/me"));
	CHECK(below("/home/me/docs", "/home/me/docs"));
	CHECK(below("/home/me/docs", "/home/me/docs/sub"));
	CHECK(!below("/home/me/docs", "/etc"));
	CHECK(!below("/home/me/docs", "/home/you"));
	CHECK(below("/home/*/docs", "/home/you"));
	CHECK(below("*.txt", "/any/where"));
	CHECK(below("/a/**/z", "/a/b/c/d"));
	CHECK(!below("/a/**/z", "/b"));
}

static void test_pattern__raw_bytes(void)
{
	CHECK(m("a\nb", "/x/a\nb"));
	CHECK(m("*\n*", "/x/a\nb"));
	CHECK(m("?", "/\xff"));
	CHECK(m("*\xe9*", "/caf\xe9.txt"));
	/* the length counts, not a NUL */
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add(l, "/a?b"));
	CHECK(pattern_list_match(l, "/a\0b", 4));
	CHECK(!pattern_list_match(l, "/a\0b", 3));
	pattern_list_free(l);
}

static void test_pattern__malformed(void)
{
	CHECK_ERR(add_one(""), -EINVAL);
	CHECK_ERR(add_one("[abc"), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "unterminated"));
	CHECK_ERR(add_one("["), -EINVAL);
	CHECK_ERR(add_one("[!"), -EINVAL);
	CHECK_ERR(add_one("[]"), -EINVAL);
	CHECK_ERR(add_one("[a\\"), -EINVAL);
	CHECK_ERR(add_one("abc\\"), -EINVAL);
	CHECK_ERR(add_one("[[:bogus:]]"), -EINVAL);
	CHECK_ERR(add_one("[[:alpha"), -EINVAL);
	char big[5000];
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	CHECK_ERR(add_one(big), -EINVAL);
	/* 300 components exceed the limit; 200 do not */
	char many[1024];
	for (int i = 0; i < 300; i++)
		memcpy(many + 2 * i, "/a", 2);
	many[600] = '\0';
	CHECK_ERR(add_one(many), -EINVAL);
	many[400] = '\0';
	CHECK_OK(add_one(many));
	CHECK_OK(add_one("]"));
	CHECK_OK(add_one("a]b"));
}

/* Patterns that make naive recursive matchers exponential finish at once. */
static void test_pattern__pathological(void)
{
	static char path[20002], pat[200];
	path[0] = '/';
	memset(path + 1, 'a', 20000);
	path[20001] = '\0';
	CHECK(!m("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*b", path));
	CHECK(m("*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*a*", path));

	/* many components of "a" with "**" between every pattern component */
	for (size_t i = 0; i < 10000; i++) {
		path[2 * i] = '/';
		path[2 * i + 1] = 'a';
	}
	path[20000] = '\0';
	size_t n = (size_t)snprintf(pat, sizeof(pat), "/**");
	for (int i = 0; i < 30; i++)
		n += (size_t)snprintf(pat + n, sizeof(pat) - n, "/a/**");
	snprintf(pat + n, sizeof(pat) - n, "/b");
	CHECK(!m(pat, path));
	CHECK(below(pat, path));
}

static void test_pattern__list(void)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK(!pattern_list_match(l, "/x", 2)); /* empty list matches nothing */
	CHECK(!pattern_list_match_below(l, "/x", 2));
	CHECK_OK(pattern_list_add(l, "*.o"));
	CHECK_OK(pattern_list_add(l, "/tmp"));
	CHECK_ERR(pattern_list_add(l, "[x"), -EINVAL);
	CHECK_EQ(pattern_list_count(l), 2);
	CHECK(pattern_list_match(l, "/a.o", 4));
	CHECK(pattern_list_match(l, "/tmp/q", 6));
	CHECK(!pattern_list_match(l, "/a.c", 4));
	/* Which pattern matched, and as written (backup --list names it). */
	const char *origin = "x";
	CHECK_EQ(pattern_list_find(l, "/a.o", 4), 0);
	CHECK_EQ(pattern_list_find(l, "/tmp/q.o", 8), 0); /* the first that matches */
	CHECK_EQ(pattern_list_find(l, "/tmp/q", 6), 1);
	CHECK_EQ(pattern_list_find(l, "/a.c", 4), -1);
	CHECK(strcmp(pattern_list_text(l, 1, &origin), "/tmp") == 0);
	CHECK(origin == NULL);
	pattern_list_free(l);
	pattern_list_free(NULL);
}

/* Does pat match path below its first `from` bytes (a path given to back up)? */
static bool mf(const char *pat, const char *path, size_t from)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add(l, pat));
	bool r = pattern_list_find_below(l, path, strlen(path), from) == 0;
	pattern_list_free(l);
	return r;
}

static void test_pattern__from(void)
{
	/* a match at or above the given path /var/tmp/src (12 bytes) does not count */
	CHECK(!mf("tmp", "/var/tmp/src/a", 12));
	CHECK(!mf("src", "/var/tmp/src/a", 12));
	CHECK(!mf("/var", "/var/tmp/src/a", 12));
	CHECK(!mf("/", "/var/tmp/src/a", 12));
	/* ...but one further down does, and everything beneath it */
	CHECK(mf("tmp", "/var/tmp/src/a/tmp", 12));
	CHECK(mf("tmp", "/var/tmp/src/a/tmp/x", 12));
	CHECK(mf("a", "/var/tmp/src/a", 12));
	CHECK(mf("src/a", "/var/tmp/src/a", 12));
	CHECK(mf("/var/tmp/src/a", "/var/tmp/src/a/b", 12));
	CHECK(mf("tmp/**", "/var/tmp/src/a", 12));
	CHECK(mf("**", "/var/tmp/src/a", 12));
	/* from 0 is pattern_list_find */
	CHECK(mf("tmp", "/var/tmp/src/a", 0));
	CHECK(mf("/", "/", 0));
}

static bool im(const char *pat, const char *path)
{
	struct pattern_list *l = NULL;
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add_flags(l, pat, PATTERN_ICASE));
	CHECK_EQ(pattern_list_flags(l, 0), PATTERN_ICASE);
	bool r = pattern_list_match(l, path, strlen(path));
	pattern_list_free(l);
	return r;
}

/* --iexclude: ASCII letters match either case, in literals and classes. */
static void test_pattern__icase(void)
{
	CHECK(im("*.jpg", "/p/IMG_1.JPG"));
	CHECK(im("*.JPG", "/p/img_1.jpg"));
	CHECK(im("/Home/*/Cache", "/home/me/CACHE/x"));
	CHECK(im("[a-c]x", "/Bx"));
	CHECK(im("[A-C]x", "/bX"));
	CHECK(!im("[!a]x", "/Ax")); /* folded before negation */
	CHECK(im("[!a]x", "/bx"));
	CHECK(im("[[:lower:]]1", "/Q1"));
	CHECK(im("\\Q", "/q"));
	CHECK(!im("*.jpg", "/p/x.jpeg"));
	CHECK(!im("a?", "/A"));
	CHECK(!m("*.jpg", "/p/IMG_1.JPG")); /* without the flag, case counts */
	/* Not ASCII: matched as bytes ("\xc3\x84" is U+00C4, "\xc3\xa4" U+00E4). */
	CHECK(im("\xc3\x84", "/\xc3\x84"));
	CHECK(!im("\xc3\x84", "/\xc3\xa4"));
	/* Case-insensitive patterns from a file keep the flag. */
	char path[512];
	struct pattern_list *l = NULL;
	snprintf(path, sizeof(path), "%s/iexcl", check_tmpdir());
	CHECK_OK(cairn_file_write_atomic(path, NULL, "*.TMP\n", 6));
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add_file_flags(l, path, PATTERN_ICASE));
	CHECK(pattern_list_match(l, "/a/b.tmp", 8));
	CHECK_EQ(pattern_list_flags(l, 0), PATTERN_ICASE);
	pattern_list_free(l);
}

static void test_pattern__file(void)
{
	char path[512];
	struct pattern_list *l = NULL;
	snprintf(path, sizeof(path), "%s/excl", check_tmpdir());
	static const char text[] = "# comment\n"
	                           "\n"
	                           "   \t\n"
	                           "*.o\r\n"
	                           "/var/tmp\n"
	                           "\\#literal\n"
	                           "last-no-newline";
	CHECK_OK(cairn_file_write_atomic(path, NULL, text, sizeof(text) - 1));
	CHECK_OK(pattern_list_new(&l));
	CHECK_OK(pattern_list_add_file(l, path));
	CHECK_EQ(pattern_list_count(l), 4);
	CHECK(pattern_list_match(l, "/x/y.o", 6));
	CHECK(pattern_list_match(l, "/var/tmp/z", 10));
	CHECK(pattern_list_match(l, "/#literal", 9));
	CHECK(pattern_list_match(l, "/a/last-no-newline", 18));
	CHECK(!pattern_list_match(l, "/comment", 8));
	/* Each pattern knows its file and line. */
	const char *origin = NULL;
	char want[600];
	CHECK_EQ(pattern_list_find(l, "/var/tmp/z", 10), 1);
	CHECK(strcmp(pattern_list_text(l, 1, &origin), "/var/tmp") == 0);
	snprintf(want, sizeof(want), "%s:5", path);
	CHECK(origin && strcmp(origin, want) == 0);
	CHECK(strcmp(pattern_list_text(l, 0, &origin), "*.o") == 0); /* '\r' stripped */
	pattern_list_free(l);

	static const char bad_text[] = "ok\n[bad\n";
	CHECK_OK(cairn_file_write_atomic(path, NULL, bad_text, sizeof(bad_text) - 1));
	CHECK_OK(pattern_list_new(&l));
	CHECK_ERR(pattern_list_add_file(l, path), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "line 2"));
	static const char nul_text[] = "a\0b\n";
	CHECK_OK(cairn_file_write_atomic(path, NULL, nul_text, sizeof(nul_text) - 1));
	CHECK_ERR(pattern_list_add_file(l, path), -EINVAL);
	snprintf(path, sizeof(path), "%s/missing", check_tmpdir());
	CHECK_ERR(pattern_list_add_file(l, path), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "missing"));
	pattern_list_free(l);
}

int main(void)
{
	RUN(test_pattern__wildcards);
	RUN(test_pattern__classes);
	RUN(test_pattern__escapes);
	RUN(test_pattern__anchoring);
	RUN(test_pattern__beneath);
	RUN(test_pattern__from);
	RUN(test_pattern__double_star);
	RUN(test_pattern__match_below);
	RUN(test_pattern__raw_bytes);
	RUN(test_pattern__malformed);
	RUN(test_pattern__pathological);
	RUN(test_pattern__list);
	RUN(test_pattern__file);
	RUN(test_pattern__icase);
	return 0;
}
