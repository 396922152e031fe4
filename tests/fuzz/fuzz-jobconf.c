/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Fuzz the job file parser (tools/jobconf.c): it must never crash, must fail only
 * with its documented codes and a "where:" message, and what it accepts must keep
 * the rules cmd-run relies on (an absolute or s3:// repository, absolute paths,
 * bounded lists, a lock mode only with lock days). */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "jobconf.h"
#include "cleanup.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_accepted(const struct jobconf *c)
{
	if (!c->repository || c->paths.n == 0)
		abort();
	if (c->repository[0] != '/' && strncmp(c->repository, "s3://", 5) != 0)
		abort();
	if (c->s3_lock_days < 0 || c->s3_lock_days > 36500 || (c->s3_lock_mode && !c->s3_lock_days))
		abort();
	if (c->paths.n > JOBCONF_MAX_LIST || c->excludes.n > JOBCONF_MAX_LIST)
		abort();
	for (size_t i = 0; i < c->paths.n; i++)
		if (c->paths.v[i][0] != '/' || strpbrk(c->paths.v[i], "\n\r"))
			abort();
	if (c->notify_mail && strpbrk(c->notify_mail, "\n\r ,<>"))
		abort();
	if (c->password_file && c->password_command)
		abort();
	if (c->compression < -1 || c->compression > 19 || c->threads < 0 || c->threads > 256)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct jobconf c;
	jobconf_init(&c);
	int r = jobconf_parse(&c, "fuzz.conf", (const char *)data, size);
	if (r < 0) {
		if (r != -EINVAL && r != -EFBIG && r != -ENOMEM)
			abort();
		if (r != -ENOMEM && strncmp(cairn_err_msg(), "fuzz.conf", 9) != 0)
			abort();
		return 0;
	}
	check_accepted(&c);
	jobconf_release(&c);
	return 0;
}
