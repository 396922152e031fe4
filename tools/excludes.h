/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* What backup leaves out, and how --list names each rule: --exclude, --iexclude
 * (and their -file forms), --exclude-caches, --exclude-if-present and
 * --exclude-larger-than. */
#ifndef CAIRN_EXCLUDES_H
#define CAIRN_EXCLUDES_H

#include "archiver.h"

#define EXCLUDES_MAX_HEADER 1024 /* bytes of an --exclude-if-present header */

struct excludes;

/* Caller frees with excludes_free(). -ENOMEM. */
int excludes_new(struct excludes **out);
void excludes_free(struct excludes *x);

/* --exclude GLOB, --iexclude GLOB (icase), and their -file FILE forms.
 * -EINVAL for a bad pattern, -errno reading a file. */
int excludes_add_glob(struct excludes *x, const char *glob, bool icase);
int excludes_add_glob_file(struct excludes *x, const char *path, bool icase);
/* --exclude-caches: a directory with a CACHEDIR.TAG that has the signature of
 * the Cache Directory Tagging Specification. */
int excludes_add_caches(struct excludes *x);
/* --exclude-if-present NAME[:HEADER]: a directory holding NAME (a regular file
 * that starts with HEADER, when given). -EINVAL for an empty NAME, one with '/',
 * or a HEADER over EXCLUDES_MAX_HEADER bytes. */
int excludes_add_marker(struct excludes *x, const char *spec);
/* --exclude-larger-than SIZE (cli_parse_size, T included). -EINVAL. */
int excludes_set_max_size(struct excludes *x, const char *size);

/* Point the exclusion fields of ao (exclude callback, markers, size limit) at
 * x, which must outlive the backup. -ENOMEM. */
int excludes_apply(struct excludes *x, struct archiver_opts *ao);

#endif
