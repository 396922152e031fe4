/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Choosing snapshots by host, path and tag (restic's --host, --path, --tag). */
#ifndef CAIRN_SNAPSEL_H
#define CAIRN_SNAPSEL_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>

#include "cairn/store.h"

/*
 * The filters of one command line, with restic's semantics:
 *   --host H   (repeatable) the snapshot's host is one of them;
 *   --path P   (repeatable) the snapshot's paths include every one of them
 *              (P made absolute and cleaned lexically: "/home/me/" is "/home/me");
 *   --tag a,b  the snapshot has both a and b (blanks around each left out);
 *              repeated, any of the groups matches; an empty group (--tag '')
 *              matches snapshots without tags.
 * They choose which snapshots a command looks at, and what "latest" means: the
 * newest snapshot they match. A snapshot named by ID is taken whatever they say.
 * The caller embeds it: snapsel_init / snapsel_release. Strings are copied.
 */
struct snapsel {
	char **hosts;
	size_t nhosts;
	char **paths;
	size_t npaths;
	char **tags; /* one "a,b" group per --tag */
	size_t ntags;
};

/* Option codes: above the global options of cli.h, below the commands' own. */
enum { OPT_SNAPSEL_HOST = 0x180, OPT_SNAPSEL_TAG, OPT_SNAPSEL_PATH };

#define SNAPSEL_LONGOPTS                                             \
	{ "host", required_argument, NULL, OPT_SNAPSEL_HOST },       \
	        { "tag", required_argument, NULL, OPT_SNAPSEL_TAG }, \
	{                                                            \
		"path", required_argument, NULL, OPT_SNAPSEL_PATH    \
	}

/* The lines of --help that describe the filters. */
#define SNAPSEL_HELP                                                                       \
	"  --host HOST            only snapshots of this host (repeatable: any of them)\n" \
	"  --path PATH            only snapshots whose backed-up paths include PATH\n"     \
	"                         (repeatable: all of them)\n"                             \
	"  --tag TAG[,TAG...]     only snapshots with all of these tags (repeatable:\n"    \
	"                         any of the groups; '' for snapshots without tags)\n"

void snapsel_init(struct snapsel *s);
void snapsel_release(struct snapsel *s);
/* Handle option c of a command's parser: 0 taken, 1 not a filter option,
 * -EINVAL a bad value (message set), -ENOMEM. */
int snapsel_opt(struct snapsel *s, int c, const char *arg);
bool snapsel_empty(const struct snapsel *s);
/* arg, a TAG[,TAG...] group given to option opt, without the blanks around each
 * tag ("a, b" is "a,b"; cli_tag_item). An empty tag ("a,,b", ",") is refused;
 * so is "" unless none_ok ("" is the group of no tags). Caller frees *out.
 * -EINVAL (message naming opt), -ENOMEM. */
int snapsel_tag_group(const char *opt, const char *arg, bool none_ok, char **out);
/* Whether tags (n of them) hold every tag of group, restic's "a,b"; the group ""
 * is matched by no tags at all. */
bool snapsel_has_tags(char *const *tags, size_t n, const char *group);
/* Whether snap passes every filter. */
bool snapsel_match(const struct snapsel *s, const struct cairn_snapshot *snap);

/* The index in list (oldest first, as cairn_repo_snapshot_list returns it) of
 * the snapshot spec names: "latest" is the newest one s matches, an ID prefix
 * names its snapshot. -ENOENT none (the message says which filters), -EINVAL
 * ambiguous or malformed. */
int snapsel_find(const struct snapsel *s, struct cairn_snapshot *const *list, size_t n,
                 const char *spec);
/* Mark in want[] (n entries, cleared first) the snapshots a command works on:
 * those specs name (through snapsel_find), or without specs every snapshot s
 * matches, as restic's find, tag and rewrite choose. Errors of snapsel_find. */
int snapsel_choose(const struct snapsel *s, struct cairn_snapshot *const *list, size_t n,
                   char *const *specs, size_t nspecs, bool *want);
/* Load the snapshot list and take the one snapsel_find picks. -EBADMSG a corrupt
 * snapshot file. Caller frees *out with cairn_snapshot_free(). */
int snapsel_load(cairn_repo *repo, const struct snapsel *s, const char *spec,
                 struct cairn_snapshot **out);

/* path made absolute (relative to the working directory) and cleaned without
 * looking at the file system: repeated '/', "." and trailing '/' dropped, ".."
 * takes the previous component away. Caller frees *out. -ENOMEM, -EINVAL empty,
 * -ERANGE no working directory. */
int snapsel_clean_path(const char *path, char **out);

/* The length of the path of s that p (len bytes, a path in the snapshot) lies
 * in, or len when p is not below one of them: what exclude patterns are matched
 * below (pattern_list_find_below), as backup matches them below the paths given. */
size_t snapsel_root_len(const struct cairn_snapshot *s, const char *p, size_t len);

#endif
