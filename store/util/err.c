/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Thread-local error messages (STYLE §3). */
#include "cairn/util.h"

#include <errno.h>
#include <lmdb.h>
#include <stdio.h>
#include <string.h>

#include "cleanup.h"

static _Thread_local char msg[1024];
static _Thread_local int msg_code;

int cairn_err_setv(int code, const char *fmt, va_list ap)
{
	vsnprintf(msg, sizeof(msg), fmt, ap);
	msg_code = code;
	return code;
}

int cairn_err_set(int code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	cairn_err_setv(code, fmt, ap);
	va_end(ap);
	return code;
}

int cairn_err_wrap(int code, const char *fmt, ...)
{
	char old[sizeof(msg)], pre[512];
	va_list ap;

	snprintf(old, sizeof(old), "%s", cairn_err_msg());
	va_start(ap, fmt);
	vsnprintf(pre, sizeof(pre), fmt, ap);
	va_end(ap);
	/* Truncation is fine: the message is for humans. */
	size_t n = strnlen(pre, sizeof(msg) - 3);
	memcpy(msg, pre, n);
	memcpy(msg + n, ": ", 2);
	size_t rest = strnlen(old, sizeof(msg) - n - 3);
	memcpy(msg + n + 2, old, rest);
	msg[n + 2 + rest] = '\0';
	msg_code = code;
	return code;
}

const char *cairn_err_msg(void)
{
	if (msg[0])
		return msg;
	if (msg_code < 0) {
		char buf[128];
		snprintf(msg, sizeof(msg), "%s", strerror_r(-msg_code, buf, sizeof(buf)));
		return msg;
	}
	return "unknown error";
}

void cairn_err_clear(void)
{
	msg[0] = '\0';
	msg_code = 0;
}

int cairn_err_mdb(int rc, const char *what)
{
	int code;

	switch (rc) {
	case MDB_NOTFOUND:
		code = -ENOENT;
		break;
	case MDB_MAP_FULL:
		code = -ENOSPC;
		break;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_INVALID:
	case MDB_VERSION_MISMATCH:
		code = -EBADMSG;
		break;
	default:
		code = rc > 0 ? -rc : -EIO;
		break;
	}
	return cairn_err_set(code, "%s: %s", what, mdb_strerror(rc));
}
