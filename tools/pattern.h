/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Glob patterns for --exclude/--include, matched against absolute raw-byte paths. */
#ifndef CAIRN_PATTERN_H
#define CAIRN_PATTERN_H

#include <stdbool.h>
#include <stddef.h>

/*
 * Syntax: '*' any run of bytes within one component, '?' one byte, "[...]" one
 * byte of a class (ranges a-z, "[:alpha:]"-style ASCII classes, negated by a
 * leading '!' or '^'; a ']' right after the opening is literal), "**" as a whole
 * component any number of components (zero included), and '\' quoting the next
 * byte. A pattern starting with '/' is anchored at the root; any other pattern
 * matches a trailing run of components ("*.o" a basename anywhere, "a/b" any
 * ".../a/b"). A pattern that matches a directory matches everything beneath it.
 * Matching is polynomial in the lengths (no exponential backtracking).
 */
struct pattern_list;

/* An empty list. Caller frees with pattern_list_free(). -ENOMEM. */
int pattern_list_new(struct pattern_list **out);
void pattern_list_free(struct pattern_list *l);
/* Compile and append pat. -EINVAL malformed (empty, unterminated class, trailing
 * '\', too long or too many components), -ENOMEM; the list is unchanged then. */
int pattern_list_add(struct pattern_list *l, const char *pat);
/* The same with flags: PATTERN_ICASE makes the pattern's ASCII letters (in
 * literals and classes) match either case (--iexclude). Other bytes, UTF-8
 * letters included, match as they are: matching does not depend on the locale. */
enum { PATTERN_ICASE = 1 };
int pattern_list_add_flags(struct pattern_list *l, const char *pat, unsigned flags);
/* Add one pattern per line of a file: '#' comment lines and blank lines are
 * skipped, a trailing '\r' is stripped. -ENOENT/-EIO reading, -EINVAL naming the
 * line; patterns before a bad line stay added. */
int pattern_list_add_file(struct pattern_list *l, const char *path);
int pattern_list_add_file_flags(struct pattern_list *l, const char *path, unsigned flags);
/* Number of patterns in l. */
size_t pattern_list_count(const struct pattern_list *l);
/* Pattern i (< count) as written; *origin gets "FILE:LINE" for a pattern read
 * by pattern_list_add_file, NULL for one added alone. Both borrowed, valid
 * until the list is freed. */
const char *pattern_list_text(const struct pattern_list *l, size_t i, const char **origin);
/* The flags pattern i was added with. */
unsigned pattern_list_flags(const struct pattern_list *l, size_t i);

/* True if a pattern matches path (or one of its parent directories). path is
 * absolute, len bytes, not NUL-terminated; it may hold any bytes. Read-only: safe
 * to call from several threads at once. */
bool pattern_list_match(const struct pattern_list *l, const char *path, size_t len);
/* The same, telling which: the index of the first pattern that matches, or -1. */
long pattern_list_find(const struct pattern_list *l, const char *path, size_t len);
/* The same, counting only a match that takes in a component past the first from
 * bytes of path: with from the length of a path given to back up, a pattern
 * that matches a directory above it ("tmp" and /var/tmp/src) leaves out nothing
 * in it, while a "**" that takes in components below it still can. */
long pattern_list_find_below(const struct pattern_list *l, const char *path, size_t len,
                             size_t from);
/* True if a pattern matches path or could match something beneath it: whether a
 * directory must be walked to find every match (restore --include). */
bool pattern_list_match_below(const struct pattern_list *l, const char *path, size_t len);

#endif
