/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Minimal unit-test harness (STYLE §8): CHECK prints file:line, the expression and
 * cairn_err_msg(), then exits 1. Cases are plain functions run by RUN(). */
#ifndef CAIRN_CHECK_H
#define CAIRN_CHECK_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/util.h"

void check_fail(const char *file, int line, const char *expr, long long a, long long b);

#define CHECK(e)                                                  \
	do {                                                      \
		if (!(e))                                         \
			check_fail(__FILE__, __LINE__, #e, 0, 0); \
	} while (0)
/* r must be >= 0 */
#define CHECK_OK(e)                                                \
	do {                                                       \
		long long r_ = (long long)(e);                     \
		if (r_ < 0)                                        \
			check_fail(__FILE__, __LINE__, #e, r_, 0); \
	} while (0)
/* e must equal the (negative) code */
#define CHECK_ERR(e, code)                                             \
	do {                                                           \
		long long r_ = (long long)(e), c_ = (long long)(code); \
		if (r_ != c_)                                          \
			check_fail(__FILE__, __LINE__, #e, r_, c_);    \
	} while (0)
#define CHECK_EQ(a, b)                                                        \
	do {                                                                  \
		long long a_ = (long long)(a), b_ = (long long)(b);           \
		if (a_ != b_)                                                 \
			check_fail(__FILE__, __LINE__, #a " == " #b, a_, b_); \
	} while (0)

/* A fresh mkdtemp directory for the running case, removed after it passes. */
const char *check_tmpdir(void);
/* Fill buf with deterministic pseudo-random bytes from seed (xorshift). */
void check_random(void *buf, size_t n, uint64_t seed);
void check_run(const char *name, void (*fn)(void));
#define RUN(fn) check_run(#fn, fn)

#endif
