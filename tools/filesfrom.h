/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* backup --files-from, --files-from-verbatim, --files-from-raw: the paths to back
 * up, read from a file, as restic reads them. */
#ifndef CAIRN_FILESFROM_H
#define CAIRN_FILESFROM_H

#include <stddef.h>

#define FILESFROM_MAX_SIZE (64u << 20) /* one list file */

/* A growing list of malloc'd strings. Caller embeds it, zeroed; filesfrom_release. */
struct filesfrom {
	char **v;
	size_t n;
};
void filesfrom_release(struct filesfrom *l);
/* Append a copy of s. -ENOMEM. */
int filesfrom_add(struct filesfrom *l, const char *s);

enum filesfrom_kind {
	/* One path or glob (glob(3)) per line: spaces around it are trimmed, empty
	 * lines and lines starting with '#' skipped. A glob that matches nothing,
	 * like a line without glob characters, is taken as it is (the backup
	 * then reports it as missing). */
	FILESFROM_LINES,
	/* One path per line, exactly as written (a trailing '\r' aside); empty
	 * lines skipped. */
	FILESFROM_VERBATIM,
	/* Each path ends with a NUL byte (find -print0); an empty one, or a last
	 * one without its NUL, is an error. */
	FILESFROM_RAW,
};

/* Parse len bytes of text, read from where (named in messages), into l.
 * -EINVAL (naming where and the line or entry), -ENOMEM. */
int filesfrom_parse(struct filesfrom *l, enum filesfrom_kind kind, const char *where,
                    const char *text, size_t len);
/* Read the file path ("-": standard input) and parse it. -errno of reading,
 * -EFBIG over FILESFROM_MAX_SIZE, and those of filesfrom_parse. */
int filesfrom_read(struct filesfrom *l, enum filesfrom_kind kind, const char *path);

#endif
