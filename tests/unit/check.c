/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The unit-test harness behind check.h. */
#include "check.h"

#include <stdint.h>
#include <stdlib.h>

static char tmpdir[256];

void check_fail(const char *file, int line, const char *expr, long long a, long long b)
{
	fprintf(stderr, "%s:%d: CHECK failed: %s (got %lld, want %lld)\n  last error: %s\n", file,
	        line, expr, a, b, cairn_err_msg());
	exit(1);
}

const char *check_tmpdir(void)
{
	return tmpdir;
}

void check_random(void *buf, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ull + 1;
	uint8_t *p = buf;
	for (size_t i = 0; i < n; i++) {
		if (i % 8 == 0) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
		}
		p[i] = (uint8_t)(x >> (8 * (i % 8)));
	}
}

void check_run(const char *name, void (*fn)(void))
{
	const char *base = getenv("TMPDIR");
	snprintf(tmpdir, sizeof(tmpdir), "%s/cairn-test-XXXXXX", base && *base ? base : "/tmp");
	if (!mkdtemp(tmpdir)) {
		perror("mkdtemp");
		exit(1);
	}
	fprintf(stderr, "# %s\n", name);
	cairn_err_clear();
	fn();
	cairn_rm_rf(tmpdir);
}
