/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for tools/jobconf.c: every key, strictness (file:line errors), bounds,
 * job names and the file loader. */
#include "jobconf.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cleanup.h"

#define BASE "repository = /srv/repo\npaths = /home\n"

static int parse(struct jobconf *c, const char *text)
{
	jobconf_init(c);
	return jobconf_parse(c, "t.conf", text, strlen(text));
}

/* text must fail with -EINVAL and a message containing want. */
static void expect_bad(const char *text, const char *want)
{
	struct jobconf c;
	CHECK_ERR(parse(&c, text), -EINVAL);
	if (!strstr(cairn_err_msg(), want)) {
		fprintf(stderr, "message '%s' lacks '%s'\n", cairn_err_msg(), want);
		CHECK(false);
	}
	CHECK(c.repository == NULL); /* untouched on failure */
}

static void test_jobconf__minimal(void)
{
	struct jobconf c;
	CHECK_OK(parse(&c, BASE));
	CHECK(strcmp(c.repository, "/srv/repo") == 0);
	CHECK_EQ(c.paths.n, 1);
	CHECK_EQ(c.compression, -1);
	CHECK_EQ(c.threads, 0);
	CHECK(!c.prune && !c.check && !c.exclude_caches);
	CHECK(!jobconf_has_policy(&c));
	CHECK(c.s3_target == NULL && c.notify_url == NULL);
	jobconf_release(&c);
}

static void test_jobconf__every_key(void)
{
	static const char text[] =
	        "# comment\n"
	        "   # indented comment\n"
	        "\n"
	        "repository=/srv/repo\n"
	        "password-file = /etc/cairn/pw\n"
	        "paths = /home   /etc\t/root\n"
	        "path = /srv/with space # not a comment\n"
	        "exclude = *.tmp\n"
	        "exclude = /home/*/.cache\n"
	        "exclude-file = /etc/cairn/ex\n"
	        "exclude-caches = yes\n"
	        "files-from = /etc/cairn/list\n"
	        "files-from-verbatim = /etc/cairn/list2\n"
	        "files-from-raw = /etc/cairn/list0\n"
	        "iexclude = *.JPG\n"
	        "iexclude-file = /etc/cairn/iex\n"
	        "exclude-if-present = .nobackup\n"
	        "exclude-if-present = TAG:Signature: x\n"
	        "exclude-larger-than = 2G\n"
	        "one-file-system = true\n"
	        "tags = a b\n"
	        "tag = c d\n"
	        "host = host-1.example\n"
	        "compression = 0\n"
	        "threads = 4\n"
	        "keep-last = 2\nkeep-hourly = 24\nkeep-daily = 7\nkeep-weekly = 4\n"
	        "keep-monthly = 12\nkeep-yearly = 3\n"
	        "keep-within = 1y2m4d5h\n"
	        "keep-tag = forever\n"
	        "prune = on\n"
	        "s3-target = s3://my-bucket/a/b\n"
	        "s3-endpoint = http://127.0.0.1:7480\n"
	        "s3-lock-days = 30\n"
	        "s3-lock-mode = governance\n"
	        "metrics-file = /var/lib/node/cairn.prom\n"
	        "notify-url = https://hooks.example.org/x?y=1\n"
	        "notify-mail = root@localhost\n"
	        "log-format = json\n"
	        "check = no\n"
	        "check-read-data-subset = 1/7\r\n";
	struct jobconf c;
	CHECK_OK(parse(&c, text));
	CHECK_EQ(c.paths.n, 4);
	CHECK(strcmp(c.paths.v[2], "/root") == 0);
	CHECK(strcmp(c.paths.v[3], "/srv/with space # not a comment") == 0);
	CHECK_EQ(c.excludes.n, 2);
	CHECK_EQ(c.exclude_files.n, 1);
	CHECK(c.exclude_caches && c.one_file_system && c.prune && !c.check);
	CHECK(c.files_from.n == 1 && c.files_from_verbatim.n == 1 && c.files_from_raw.n == 1);
	CHECK(c.iexcludes.n == 1 && c.iexclude_files.n == 1);
	CHECK_EQ(c.exclude_if_present.n, 2);
	CHECK(strcmp(c.exclude_if_present.v[1], "TAG:Signature: x") == 0);
	CHECK(strcmp(c.exclude_larger_than, "2G") == 0);
	CHECK_EQ(c.tags.n, 3);
	CHECK(strcmp(c.tags.v[2], "c d") == 0);
	CHECK(strcmp(c.host, "host-1.example") == 0);
	CHECK_EQ(c.compression, 0);
	CHECK_EQ(c.threads, 4);
	CHECK_EQ(c.keep[JOBCONF_KEEP_LAST], 2);
	CHECK_EQ(c.keep[JOBCONF_KEEP_YEARLY], 3);
	CHECK(strcmp(c.keep_within, "1y2m4d5h") == 0);
	CHECK_EQ(c.keep_tags.n, 1);
	CHECK(jobconf_has_policy(&c));
	CHECK(strcmp(c.s3_target, "s3://my-bucket/a/b") == 0);
	CHECK_EQ(c.s3_lock_days, 30);
	CHECK(strcmp(c.s3_lock_mode, "governance") == 0);
	CHECK(strcmp(c.log_format, "json") == 0);
	CHECK(strcmp(c.check_read_data_subset, "1/7") == 0); /* \r stripped */
	CHECK(strcmp(jobconf_keep_name(JOBCONF_KEEP_DAILY), "keep-daily") == 0);
	jobconf_release(&c);
	CHECK(c.repository == NULL && c.paths.n == 0);
}

static void test_jobconf__strict(void)
{
	struct jobconf c;
	expect_bad(BASE "frobnicate = 1\n", "t.conf:3: 'frobnicate' is not a known key");
	expect_bad(BASE "repository = /x\n", "t.conf:3: 'repository' is given twice");
	expect_bad(BASE "prune = maybe\n", "'prune' must be yes or no");
	expect_bad(BASE "keep-last = 0\n", "'keep-last' must be a number from 1");
	expect_bad(BASE "keep-last = -1\n", "must be a number");
	expect_bad(BASE "keep-last = 99999999999999999999\n", "must be a number");
	expect_bad(BASE "compression = 20\n", "from 0 to 19");
	expect_bad(BASE "keep-within = 7\n", "duration");
	expect_bad(BASE "keep-within = 1q\n", "duration");
	expect_bad(BASE "keep-within = 2w\n", "duration");
	expect_bad(BASE "keep-within = 1d1d\n", "duration");
	expect_bad(BASE "keep-within = 0d\n", "above zero");
	expect_bad(BASE "keep-within = 100001d\n", "duration");
	expect_bad(BASE "check-read-data-subset = 0%\n", "N%");
	expect_bad(BASE "check-read-data-subset = 101%\n", "N%");
	expect_bad(BASE "check-read-data-subset = 3/2\n", "n/m");
	expect_bad(BASE "check-read-data-subset = */0\n", "*/m");
	expect_bad(BASE "check-read-data-subset = **/2\n", "*/m");
	CHECK_OK(parse(&c, BASE "check-read-data-subset = */7\n"));
	jobconf_release(&c);
	expect_bad(BASE "s3-target = http://x/y\n", "s3://");
	expect_bad(BASE "s3-target = s3://Upper/x\n", "bucket");
	expect_bad(BASE "s3-target = s3://ok-bucket/x\ns3-endpoint = ftp://h\n", "http://");
	expect_bad(BASE "notify-url = https://\n", "with a host");
	expect_bad(BASE "notify-mail = a@b, c@d\n", "one mail address");
	expect_bad(BASE "notify-mail = -oX@b\n", "one mail address");
	expect_bad(BASE "log-format = xml\n", "text or json");
	expect_bad(BASE "host = a b\n", "host name");
	expect_bad(BASE "exclude = [abc\n", "'exclude' is not a valid pattern");
	expect_bad(BASE "path = relative\n", "absolute");
	expect_bad(BASE "paths = /a b\n", "absolute path: 'b'");
	expect_bad(BASE "metrics-file = m.prom\n", "absolute");
	expect_bad(BASE "tag =\n", "'tag' has no value");
	expect_bad(BASE "tag = a,,b\n", "TAG[,TAG...]");
	expect_bad(BASE "tags = a, b\n", "TAG[,TAG...]");
	expect_bad(BASE "keep-tag = a,\n", "TAG[,TAG...]");
	expect_bad(BASE "Repository = /x\n", "t.conf:3: expected 'key = value'");
	expect_bad(BASE "repository /x\n", "expected 'key = value'");
	expect_bad(BASE "= /x\n", "expected 'key = value'");
	expect_bad(BASE "host = a\001b\n", "control character");
	expect_bad("paths = /a\n", "'repository' is missing");
	expect_bad("repository = /r\n", "'paths' (or 'files-from') is missing");
	CHECK_OK(parse(&c, "repository = /r\nfiles-from-raw = /l\n")); /* no paths needed */
	jobconf_release(&c);
	expect_bad(BASE "files-from = list\n", "absolute");
	expect_bad(BASE "iexclude = [x\n", "'iexclude' is not a valid pattern");
	expect_bad(BASE "exclude-if-present = a/b\n", "NAME[:HEADER]");
	expect_bad(BASE "exclude-if-present = :h\n", "NAME[:HEADER]");
	expect_bad(BASE "exclude-if-present = n:\n", "header of 1 to 1024");
	expect_bad(BASE "exclude-larger-than = 10X\n", "size like");
	expect_bad(BASE "exclude-larger-than = M\n", "size like");
	expect_bad(BASE "exclude-larger-than = 10M\nexclude-larger-than = 1G\n", "given twice");
	expect_bad(BASE "password-file = /p\npassword-command = cat /p\n", "not both");
	expect_bad(BASE "s3-endpoint = http://h\n", "needs 's3-target'");
	expect_bad(BASE "s3-lock-days = 7\n", "needs 's3-target' or an s3:// 'repository'");
	expect_bad(BASE "s3-target = s3://b-x/p\ns3-lock-mode = governance\n",
	           "'s3-lock-mode' needs 's3-lock-days'");
	expect_bad(BASE "s3-target = s3://b-x/p\ns3-lock-days = 0\n", "from 1 to 36500");
	expect_bad(BASE "s3-target = s3://b-x/p\ns3-lock-days = 1\ns3-lock-mode = strict\n",
	           "compliance or governance");
	expect_bad("repository = s3://B/x\npaths = /a\n", "bucket");
	expect_bad("repository = repo\npaths = /a\n", "absolute path or s3://");
}

/* A host that backs up straight into a bucket (docs/S3.md §8): the repository
 * is s3://, with its endpoint and the retention of what it uploads. */
static void test_jobconf__s3_repository(void)
{
	struct jobconf c;
	CHECK_OK(parse(&c, "repository = s3://backups/host1\npaths = /home\n"
	                   "s3-endpoint = https://s3.example.org\ns3-lock-days = 30\n"));
	CHECK(strcmp(c.repository, "s3://backups/host1") == 0);
	CHECK(strcmp(c.s3_endpoint, "https://s3.example.org") == 0);
	CHECK_EQ(c.s3_lock_days, 30);
	CHECK(c.s3_lock_mode == NULL && c.s3_target == NULL);
	jobconf_release(&c);
}

static void test_jobconf__bounds(void)
{
	struct jobconf c;
	size_t big = JOBCONF_MAX_LINE + 100;
	_cleanup_free_ char *text = malloc(big + 64);
	CHECK(text != NULL);
	int n = snprintf(text, 64, BASE "host = ");
	memset(text + n, 'a', big);
	text[n + (int)big] = '\0';
	expect_bad(text, "t.conf:3: line too long");

	jobconf_init(&c);
	CHECK_ERR(jobconf_parse(&c, "t.conf", text, JOBCONF_MAX_SIZE + 1), -EFBIG);

	/* A NUL inside the text is an error, not an early end. */
	static const char nul[] = "repository = /r\0\npaths = /a\n";
	jobconf_init(&c);
	CHECK_ERR(jobconf_parse(&c, "t.conf", nul, sizeof(nul) - 1), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "t.conf:1: NUL") != NULL);

	/* Too many values for one list. */
	struct cairn_buf b = CAIRN_BUF_INIT;
	CHECK_OK(cairn_buf_printf(&b, BASE));
	for (int i = 0; i <= JOBCONF_MAX_LIST; i++)
		CHECK_OK(cairn_buf_printf(&b, "tag = t%d\n", i));
	jobconf_init(&c);
	CHECK_ERR(jobconf_parse(&c, "t.conf", (const char *)b.data, b.len), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "too many values") != NULL);
	cairn_buf_release(&b);

	/* No final newline is fine. */
	CHECK_OK(parse(&c, "repository = /r\npaths = /a"));
	CHECK(strcmp(c.paths.v[0], "/a") == 0);
	jobconf_release(&c);
}

static void test_jobconf__names(void)
{
	char buf[256], name[64];
	unsetenv("CAIRN_CONFIG_DIR");
	CHECK_OK(jobconf_path(buf, sizeof(buf), "home"));
	CHECK(strcmp(buf, "/etc/cairn/home.conf") == 0);
	setenv("CAIRN_CONFIG_DIR", "/tmp/x", 1);
	CHECK_OK(jobconf_path(buf, sizeof(buf), "a_b.c@d-1"));
	CHECK(strcmp(buf, "/tmp/x/a_b.c@d-1.conf") == 0);
	CHECK_ERR(jobconf_path(buf, sizeof(buf), ""), -EINVAL);
	CHECK_ERR(jobconf_path(buf, sizeof(buf), "../etc/passwd"), -EINVAL);
	CHECK_ERR(jobconf_path(buf, sizeof(buf), "a/b"), -EINVAL);
	CHECK_ERR(jobconf_path(buf, sizeof(buf), ".hidden"), -EINVAL);
	CHECK_ERR(jobconf_path(buf, 8, "home"), -ENAMETOOLONG);
	unsetenv("CAIRN_CONFIG_DIR");
	jobconf_name_from_path(name, sizeof(name), "/etc/cairn/home.conf");
	CHECK(strcmp(name, "home") == 0);
	jobconf_name_from_path(name, sizeof(name), "plain");
	CHECK(strcmp(name, "plain") == 0);
}

static void test_jobconf__load(void)
{
	char path[512];
	struct jobconf c;
	snprintf(path, sizeof(path), "%s/j.conf", check_tmpdir());
	jobconf_init(&c);
	CHECK_ERR(jobconf_load(&c, path), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "cannot read job file") != NULL);
	CHECK_OK(cairn_file_write_atomic(path, NULL, BASE "bogus\n", strlen(BASE "bogus\n")));
	CHECK_ERR(jobconf_load(&c, path), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "j.conf:3: expected") != NULL);
	CHECK_OK(cairn_file_write_atomic(path, NULL, BASE, strlen(BASE)));
	CHECK_OK(jobconf_load(&c, path));
	CHECK(strcmp(c.paths.v[0], "/home") == 0);
	jobconf_release(&c);
}

int main(void)
{
	RUN(test_jobconf__minimal);
	RUN(test_jobconf__every_key);
	RUN(test_jobconf__strict);
	RUN(test_jobconf__s3_repository);
	RUN(test_jobconf__bounds);
	RUN(test_jobconf__names);
	RUN(test_jobconf__load);
	return 0;
}
