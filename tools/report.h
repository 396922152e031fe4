/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn report --html: one self-contained page (inline CSS and SVG, no script,
 * nothing loaded from anywhere) about a repository. */
#ifndef CAIRN_REPORT_H
#define CAIRN_REPORT_H

#include <stdio.h>

#include "runlog.h"
#include "status.h"

struct report_job {
	const char *name;
	struct runlog_run *runs; /* oldest first */
	size_t nruns;
};

struct report_data {
	const char *repo;
	struct cairn_snapshot *const *snaps; /* oldest first */
	size_t nsnaps;
	const struct status_report *status; /* judged (status_evaluate) */
	const struct report_job *jobs;
	size_t njobs;
	time_t now;
};

/* Write the page to f. -EIO when f fails. */
int report_html(FILE *f, const struct report_data *d);

#endif
