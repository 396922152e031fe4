/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Tests for tools/runlog.c: the lines of the run history, appending, trimming. */
#include "runlog.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "cleanup.h"

static const struct runlog_run sample = {
	.time = 1714564800,
	.exit_code = 1,
	.seconds = 12.5,
	.snapshot = "1a2b3c4d",
	.steps = { { "backup", "ok", 0, 10.25 },
	           { "forget", "skipped", 0, 0 },
	           { "sync", "failed", 1, 1.5 } },
	.nsteps = 3,
};

static void test_runlog__format(void)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	struct runlog_run r;
	CHECK_OK(runlog_format(&b, &sample));
	CHECK_OK(cairn_buf_put_u8(&b, 0));
	CHECK(strcmp((char *)b.data,
	             "time=1714564800 exit=1 seconds=12.500 snapshot=1a2b3c4d "
	             "backup=ok,0,10.250 forget=skipped sync=failed,1,1.500\n") == 0);
	CHECK(runlog_parse((char *)b.data, b.len - 2, &r)); /* without "\n" and NUL */
	CHECK_EQ(r.time, sample.time);
	CHECK_EQ(r.exit_code, 1);
	CHECK(r.seconds == 12.5 && strcmp(r.snapshot, "1a2b3c4d") == 0);
	CHECK_EQ(r.nsteps, 3);
	CHECK(strcmp(r.steps[1].name, "forget") == 0 && strcmp(r.steps[1].result, "skipped") == 0);
	CHECK(r.steps[2].exit_code == 1 && r.steps[2].seconds == 1.5);
}

static bool parses(const char *line)
{
	struct runlog_run r;
	return runlog_parse(line, strlen(line), &r);
}

static void test_runlog__parse(void)
{
	CHECK(parses("time=1 exit=0"));
	CHECK(parses("time=1 exit=0 later-key=whatever")); /* a later cairn's key */
	CHECK(!parses(""));
	CHECK(!parses("exit=0"));        /* no time */
	CHECK(!parses("time=1"));        /* no exit */
	CHECK(!parses("time=x exit=0")); /* not a number */
	CHECK(!parses("time=1 exit=0 snapshot=XYZ"));
	CHECK(!parses("time=1 exit=0 backup=OK"));
	CHECK(!parses("time=1 exit=0 backup=ok,1"));
	CHECK(!parses("time=1 exit=0 backup=ok,999,1"));
	CHECK(!parses("time=1 exit=0 backup=ok backup=ok backup=ok backup=ok backup=ok"));
	CHECK(!parses("time=1 exit=0 nonsense"));
	static char longtok[200];
	memset(longtok, '1', sizeof(longtok) - 1);
	memcpy(longtok, "time=", 5);
	CHECK(!parses(longtok));
}

static void test_runlog__append(void)
{
	struct runlog_run *v = NULL, r = sample;
	size_t n = 0;
	setenv("CAIRN_STATE_DIR", check_tmpdir(), 1);
	CHECK_OK(runlog_read("job", 10, &v, &n)); /* no log yet */
	CHECK_EQ(n, 0);
	free(v);
	for (int i = 0; i < RUNLOG_KEEP + 20; i++) {
		r.time = i;
		CHECK_OK(runlog_append("job", &r));
	}
	CHECK_OK(runlog_read("job", 5, &v, &n));
	CHECK_EQ(n, 5);
	CHECK_EQ(v[0].time, RUNLOG_KEEP + 15);
	CHECK_EQ(v[4].time, RUNLOG_KEEP + 19); /* oldest first */
	free(v);
	CHECK_OK(runlog_read("job", 100000, &v, &n));
	CHECK_EQ(n, RUNLOG_KEEP); /* the older ones were dropped */
	free(v);
	CHECK_ERR(runlog_append("../x", &r), -EINVAL);
}

int main(void)
{
	RUN(test_runlog__format);
	RUN(test_runlog__parse);
	RUN(test_runlog__append);
	return 0;
}
