/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Snapshot filters (tools/snapsel.c): restic's --host, --path, --tag and "latest". */
#include "check.h"

#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "snapsel.h"

static void expect_clean(const char *in, const char *want)
{
	char *out = NULL;
	CHECK_OK(snapsel_clean_path(in, &out));
	if (strcmp(out, want) != 0)
		fprintf(stderr, "clean '%s': got '%s', want '%s'\n", in, out, want);
	CHECK(strcmp(out, want) == 0);
	free(out);
}

static void test_snapsel__clean_path(void)
{
	expect_clean("/", "/");
	expect_clean("//", "/");
	expect_clean("/home/me/", "/home/me");
	expect_clean("/home//me/./docs", "/home/me/docs");
	expect_clean("/home/me/..", "/home");
	expect_clean("/..", "/");
	expect_clean("/a/../../b", "/b");
	CHECK_OK(chdir(check_tmpdir()));
	char *cwd = getcwd(NULL, 0), want[4096];
	CHECK(cwd);
	snprintf(want, sizeof(want), "%s/sub/x", cwd);
	expect_clean("sub/x/", want);
	expect_clean("./sub/./x", want);
	expect_clean(".", cwd);
	free(cwd);
	CHECK_OK(chdir("/"));
	char *out = NULL;
	CHECK_ERR(snapsel_clean_path("", &out), -EINVAL);
}

/* A snapshot with the given host, paths and tags (NULL-terminated lists). */
static struct cairn_snapshot *snap(uint8_t id, const char *host, const char *const *paths,
                                   const char *const *tags)
{
	struct cairn_snapshot *s = calloc(1, sizeof(*s));
	CHECK(s);
	s->id.b[0] = id;
	s->id.b[1] = 0x5a;
	s->time_ns = id;
	s->hostname = strdup(host);
	while (paths && paths[s->npaths])
		s->npaths++;
	while (tags && tags[s->ntags])
		s->ntags++;
	s->paths = calloc(s->npaths + 1, sizeof(char *));
	s->tags = calloc(s->ntags + 1, sizeof(char *));
	for (size_t i = 0; i < s->npaths; i++)
		s->paths[i] = strdup(paths[i]);
	for (size_t i = 0; i < s->ntags; i++)
		s->tags[i] = strdup(tags[i]);
	s->username = strdup("u");
	s->program_version = strdup("t");
	return s;
}

static void sel_add(struct snapsel *s, int c, const char *arg)
{
	CHECK_EQ(snapsel_opt(s, c, arg), 0);
}

/* Oldest first: 0 h1 /home,/etc [daily]; 1 h1 /etc/ssh []; 2 h2 /home [daily,manual];
 * 3 h1 /home [manual]. */
static struct cairn_snapshot **fixture(size_t *n)
{
	static const char *const home_etc[] = { "/etc", "/home", NULL },
	                         *const ssh[] = { "/etc/ssh", NULL },
	                         *const home[] = { "/home", NULL };
	static const char *const daily[] = { "daily", NULL },
	                         *const both[] = { "daily", "manual", NULL },
	                         *const manual[] = { "manual", NULL };
	struct cairn_snapshot **v = calloc(4, sizeof(*v));
	CHECK(v);
	v[0] = snap(0x10, "h1", home_etc, daily);
	v[1] = snap(0x20, "h1", ssh, NULL);
	v[2] = snap(0x30, "h2", home, both);
	v[3] = snap(0x40, "h1", home, manual);
	*n = 4;
	return v;
}

static void test_snapsel__latest(void)
{
	struct snapsel s;
	size_t n;
	struct cairn_snapshot **v = fixture(&n);

	snapsel_init(&s);
	CHECK(snapsel_empty(&s));
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 3);
	/* The case: a later backup of /etc/ssh must not hide /home. */
	sel_add(&s, OPT_SNAPSEL_PATH, "/etc/");
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 0);
	snapsel_release(&s);

	sel_add(&s, OPT_SNAPSEL_HOST, "h2");
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 2);
	sel_add(&s, OPT_SNAPSEL_HOST, "h1"); /* repeated: any */
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 3);
	sel_add(&s, OPT_SNAPSEL_PATH, "/home");
	sel_add(&s, OPT_SNAPSEL_PATH, "/etc"); /* repeated: all */
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 0);
	snapsel_release(&s);

	/* A named ID is taken whatever the filters say (restic). */
	sel_add(&s, OPT_SNAPSEL_HOST, "nohost");
	CHECK_EQ(snapsel_find(&s, v, n, "205a"), 1);
	CHECK_ERR(snapsel_find(&s, v, n, "latest"), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "host 'nohost'"));
	sel_add(&s, OPT_SNAPSEL_HOST, "other");
	sel_add(&s, OPT_SNAPSEL_TAG, "a,b");
	CHECK_ERR(snapsel_find(&s, v, n, "latest"), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "host 'nohost' or 'other', tags 'a,b'"));
	snapsel_release(&s);
	cairn_snapshot_list_free(v, n);
}

static void test_snapsel__tags(void)
{
	struct snapsel s;
	size_t n;
	struct cairn_snapshot **v = fixture(&n);

	snapsel_init(&s);
	sel_add(&s, OPT_SNAPSEL_TAG, "daily");
	CHECK(snapsel_match(&s, v[0]) && !snapsel_match(&s, v[1]) && snapsel_match(&s, v[2]) &&
	      !snapsel_match(&s, v[3]));
	snapsel_release(&s);

	/* "a,b": all of them. */
	sel_add(&s, OPT_SNAPSEL_TAG, "daily,manual");
	CHECK(!snapsel_match(&s, v[0]) && snapsel_match(&s, v[2]) && !snapsel_match(&s, v[3]));
	CHECK_EQ(snapsel_find(&s, v, n, "latest"), 2);
	/* Repeated: any of the groups. */
	sel_add(&s, OPT_SNAPSEL_TAG, "manual");
	CHECK(!snapsel_match(&s, v[0]) && snapsel_match(&s, v[2]) && snapsel_match(&s, v[3]));
	snapsel_release(&s);

	/* '': snapshots without tags. */
	sel_add(&s, OPT_SNAPSEL_TAG, "");
	CHECK(!snapsel_match(&s, v[0]) && snapsel_match(&s, v[1]) && !snapsel_match(&s, v[2]));
	snapsel_release(&s);

	/* Filters combine with "and". */
	sel_add(&s, OPT_SNAPSEL_TAG, "manual");
	sel_add(&s, OPT_SNAPSEL_HOST, "h2");
	CHECK(!snapsel_match(&s, v[3]) && snapsel_match(&s, v[2]));
	sel_add(&s, OPT_SNAPSEL_PATH, "/etc");
	CHECK(!snapsel_match(&s, v[2]));
	CHECK_EQ(snapsel_opt(&s, 'x', "y"), 1);
	snapsel_release(&s);
	cairn_snapshot_list_free(v, n);
}

/* Named snapshots, or without names every match (find, tag, rewrite). */
static void test_snapsel__choose(void)
{
	struct snapsel s;
	size_t n;
	struct cairn_snapshot **v = fixture(&n);
	bool want[4];
	char *specs[] = { (char *)"latest", (char *)"105a", (char *)"105A" };

	snapsel_init(&s);
	sel_add(&s, OPT_SNAPSEL_HOST, "h1");
	CHECK_OK(snapsel_choose(&s, v, n, NULL, 0, want));
	CHECK(want[0] && want[1] && !want[2] && want[3]);
	sel_add(&s, OPT_SNAPSEL_TAG, "daily");
	CHECK_OK(snapsel_choose(&s, v, n, specs, 1, want));
	CHECK(want[0] && !want[1] && !want[2] && !want[3]);
	CHECK_OK(snapsel_choose(&s, v, n, specs + 1, 1, want));
	CHECK(want[0] && !want[1] && !want[2] && !want[3]);
	/* Hex digits in either case. */
	CHECK_OK(snapsel_choose(&s, v, n, specs + 2, 1, want));
	CHECK(want[0] && !want[1] && !want[2] && !want[3]);
	snapsel_release(&s);
	sel_add(&s, OPT_SNAPSEL_HOST, "h3");
	CHECK_ERR(snapsel_choose(&s, v, n, specs, 2, want), -ENOENT);
	snapsel_release(&s);
	cairn_snapshot_list_free(v, n);
}

/* Tag groups: blanks around each tag left out; an empty tag refused, and ""
 * only where it means "no tags". */
static void test_snapsel__tag_groups(void)
{
	char *g = NULL;
	struct snapsel s;

	CHECK_OK(snapsel_tag_group("--tag", " a ,  b ", true, &g));
	CHECK(strcmp(g, "a,b") == 0);
	free(g);
	CHECK_OK(snapsel_tag_group("--tag", "", true, &g));
	CHECK(strcmp(g, "") == 0);
	free(g);
	g = NULL;
	CHECK_ERR(snapsel_tag_group("--keep-tag", "", false, &g), -EINVAL);
	CHECK_ERR(snapsel_tag_group("--keep-tag", ",", false, &g), -EINVAL);
	CHECK_ERR(snapsel_tag_group("--tag", ",", true, &g), -EINVAL);
	CHECK_ERR(snapsel_tag_group("--tag", "a,,b", true, &g), -EINVAL);
	CHECK_ERR(snapsel_tag_group("--tag", "a, ", true, &g), -EINVAL);
	CHECK(g == NULL);
	snapsel_init(&s);
	CHECK_ERR(snapsel_opt(&s, OPT_SNAPSEL_TAG, ","), -EINVAL);
	CHECK_EQ(s.ntags, 0);
	snapsel_release(&s);
}

int main(void)
{
	RUN(test_snapsel__clean_path);
	RUN(test_snapsel__latest);
	RUN(test_snapsel__tags);
	RUN(test_snapsel__choose);
	RUN(test_snapsel__tag_groups);
	return 0;
}
