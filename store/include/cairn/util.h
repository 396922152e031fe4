/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn utilities shared by every module: errors, logging, byte buffers, hex. */
#ifndef CAIRN_UTIL_H
#define CAIRN_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Errors (STYLE §3): a failing function returns a negative errno and records one
 * message in a thread-local buffer. cairn_err_set() returns its code so detection
 * and return fit on one line. The message stays until the next cairn_err_set() on
 * the same thread.
 */
int cairn_err_set(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
int cairn_err_setv(int code, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* Prefix the current message with "what: " (for context added by callers); returns code. */
int cairn_err_wrap(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* The last message on this thread, or strerror(-code) text if none was set. Borrowed. */
const char *cairn_err_msg(void);
void cairn_err_clear(void);
/* LMDB return code -> -errno with mdb_strerror text (MDB_NOTFOUND -> -ENOENT ...). */
int cairn_err_mdb(int rc, const char *what);

/* Logging (STYLE §7): one line per message on stderr, syslog levels. */
enum {
	CAIRN_LOG_ERR = 3,
	CAIRN_LOG_WARNING = 4,
	CAIRN_LOG_NOTICE = 5,
	CAIRN_LOG_INFO = 6,
	CAIRN_LOG_DEBUG = 7
};
void cairn_log_set_level(int level);
int cairn_log_get_level(void);
/* Reads CAIRN_LOG_LEVEL (a number or err/warning/notice/info/debug), CAIRN_LOG_JOB
 * (as cairn_log_set_job) and CAIRN_LOG_FORMAT (text or json; others are ignored). */
void cairn_log_level_from_env(void);
/* Emit JSON objects instead of text lines (--log-format json), one per line:
 *   {"time": 1714564800.123 (Unix seconds), "level": "error|warning|notice|info|debug",
 *    "job": "NAME" or null, "message": "...", "fields": {"path": "...", ...}}
 * Strings go through cairn_json_str, so every line is valid JSON whatever the bytes. */
void cairn_log_set_json(bool json);
bool cairn_log_get_json(void);
/* The job name JSON lines carry (cairn run NAME); NULL or "" for none. Copied. */
void cairn_log_set_job(const char *name);
/* The program name that starts error and warning lines on stderr ("cairn" unless
 * set; kept, not copied): "NAME: message", as the program that prints them. */
void cairn_log_set_prog(const char *name);
/* Send every later message to syslog(3) as IDENT (kept, not copied) instead of
 * stderr, JSON lines as well: for a daemon that has let go of its terminal. */
void cairn_log_to_syslog(const char *ident);
void cairn_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void cairn_logv(int level, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
/* A structured field of a log line, shown in JSON mode only (the text says the
 * same in words). Lists end with a NULL key; CAIRN_FIELDS() builds one in place:
 *   cairn_log_f(CAIRN_LOG_WARNING, CAIRN_FIELDS(LOG_STR("path", p), LOG_INT("errno", e)),
 *               "cannot read '%s': %s", p, strerror(e));
 * Strings are borrowed for the call; a NULL string is written as null. */
struct cairn_log_field {
	const char *key;
	enum { CAIRN_LOG_F_STR, CAIRN_LOG_F_INT, CAIRN_LOG_F_REAL, CAIRN_LOG_F_BOOL } type;
	const char *s;
	long long i;
	double d;
};
#define LOG_STR(k, v)                                         \
	{                                                     \
		.key = (k), .type = CAIRN_LOG_F_STR, .s = (v) \
	}
#define LOG_INT(k, v)                                                    \
	{                                                                \
		.key = (k), .type = CAIRN_LOG_F_INT, .i = (long long)(v) \
	}
#define LOG_REAL(k, v)                                                 \
	{                                                              \
		.key = (k), .type = CAIRN_LOG_F_REAL, .d = (double)(v) \
	}
#define LOG_BOOL(k, v)                                           \
	{                                                        \
		.key = (k), .type = CAIRN_LOG_F_BOOL, .i = !!(v) \
	}
#define CAIRN_FIELDS(...) ((const struct cairn_log_field[]){ __VA_ARGS__, { 0 } })
void cairn_log_f(int level, const struct cairn_log_field *fields, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));
void cairn_log_fv(int level, const struct cairn_log_field *fields, const char *fmt, va_list ap)
        __attribute__((format(printf, 3, 0)));
/* One line with a finished text; raw, if not NULL, is appended to "fields" as it is and
 * must be JSON object members ("k":v,...) from a trusted writer (cairn run relays its
 * steps' fields this way). */
void cairn_log_emit(int level, const struct cairn_log_field *fields, const char *raw,
                    const char *text);
/* Bytes as a JSON string to f: valid UTF-8 passes through, other bytes become
 * \udcXX (U+DC80 + byte, as Python's surrogateescape), so names stay exact. */
void cairn_json_str(FILE *f, const void *s, size_t n);
/* Bytes as text for a terminal or a text log line: each byte of a control
 * character (C0 with newline and ESC, DEL, C1 whether UTF-8 or a raw byte) is
 * written as \xNN, everything else as it is. Returns the number of bytes written
 * (each a column); f NULL only measures, so a result other than n means s holds
 * control characters. Text log lines (cairn_log_emit) go through this. */
size_t cairn_text_str(FILE *f, const void *s, size_t n);
/* cairn_text_str for a file name, path, host, tag or label in any text output
 * (ls, find, snapshots, diff, restore -n, backup --list, ...): a backslash is
 * written as \\ too, as GNU ls -b does, so that a name holding the four
 * characters \x0a never prints like one holding a newline. */
size_t cairn_text_name(FILE *f, const void *s, size_t n);
/* Length of the valid UTF-8 sequence at p (1..4 bytes, at most left), 0 if it is
 * not one (a stray byte, an overlong form, a surrogate, past U+10FFFF). */
size_t cairn_utf8_len(const void *p, size_t left);
/* A NUL-terminated copy of the n bytes at s in which each byte that is not part
 * of valid UTF-8 is U+FFFD: for readers that want Unicode text and no exact
 * names (a chat message, a mail, a Prometheus label). Caller frees; NULL when
 * out of memory. */
char *cairn_utf8_valid(const void *s, size_t n);
/* "ENOENT" for ENOENT or -ENOENT ("EUNKNOWN" if it has no name). Static. */
const char *cairn_errno_name(int e);
#define log_error(...) cairn_log(CAIRN_LOG_ERR, __VA_ARGS__)
#define log_warn(...) cairn_log(CAIRN_LOG_WARNING, __VA_ARGS__)
#define log_info(...) cairn_log(CAIRN_LOG_INFO, __VA_ARGS__)
#define log_debug(...) cairn_log(CAIRN_LOG_DEBUG, __VA_ARGS__)
/* Logs "fmt: <cairn_err_msg()>" at error level and returns r. */
int log_error_errno(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* A growable byte buffer; the caller embeds it: _init / _release. */
struct cairn_buf {
	uint8_t *data;
	size_t len;
	size_t cap;
};
#define CAIRN_BUF_INIT     \
	{                  \
		NULL, 0, 0 \
	}
void cairn_buf_init(struct cairn_buf *b);
void cairn_buf_release(struct cairn_buf *b);
/* Make room for n more bytes; -ENOMEM. */
int cairn_buf_reserve(struct cairn_buf *b, size_t n);
int cairn_buf_put(struct cairn_buf *b, const void *p, size_t n);
int cairn_buf_put_u8(struct cairn_buf *b, uint8_t v);
int cairn_buf_put_u16(struct cairn_buf *b, uint16_t v);
int cairn_buf_put_u32(struct cairn_buf *b, uint32_t v);
int cairn_buf_put_u64(struct cairn_buf *b, uint64_t v);
/* Length-prefixed byte strings (FORMAT.md §1); -EINVAL if n exceeds the prefix. */
int cairn_buf_put_str8(struct cairn_buf *b, const void *p, size_t n);
int cairn_buf_put_str16(struct cairn_buf *b, const void *p, size_t n);
int cairn_buf_printf(struct cairn_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

/* A bounds-checked reader over untrusted bytes (STYLE §5). Each getter returns
 * -EBADMSG without setting a message when fewer bytes are left than needed. */
struct cairn_rd {
	const uint8_t *p;
	size_t left;
};
int cairn_rd_take(struct cairn_rd *r, size_t n, const uint8_t **out);
int cairn_rd_copy(struct cairn_rd *r, void *dst, size_t n);
int cairn_rd_u8(struct cairn_rd *r, uint8_t *out);
int cairn_rd_u16(struct cairn_rd *r, uint16_t *out);
int cairn_rd_u32(struct cairn_rd *r, uint32_t *out);
int cairn_rd_u64(struct cairn_rd *r, uint64_t *out);
int cairn_rd_i64(struct cairn_rd *r, int64_t *out);
/* A str8/str16 as a borrowed pointer into the input. */
int cairn_rd_str8(struct cairn_rd *r, const uint8_t **p, size_t *n);
int cairn_rd_str16(struct cairn_rd *r, const uint8_t **p, size_t *n);

/* Little-endian helpers. */
static inline void cairn_le16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}
static inline void cairn_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline void cairn_le64(uint8_t *p, uint64_t v)
{
	for (int i = 0; i < 8; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t cairn_get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t cairn_get_le64(const uint8_t *p)
{
	return (uint64_t)cairn_get_le32(p) | (uint64_t)cairn_get_le32(p + 4) << 32;
}

/* Hex: out must hold 2n+1 bytes; parse returns -EINVAL unless s is exactly 2n hex digits. */
void cairn_hex(char *out, const uint8_t *p, size_t n);
int cairn_unhex(uint8_t *out, size_t n, const char *s);

/* Open /dev/null on any of fds 0-2 that is closed, the wrong way round (stdin
 * for writing, stdout and stderr for reading), so that files opened later do
 * not take their numbers (a repository file written as stdout) and every use
 * of them fails. For the start of main(). */
void cairn_guard_std_fds(void);

/* Files (STYLE §4-5). */
/* Read a whole file of at most max bytes; -ENOENT, -EFBIG, -EIO. Caller releases *out. */
int cairn_file_slurp(const char *path, size_t max, struct cairn_buf *out);
/* The same from an open fd (read from where it stands; path names it in errors).
 * The fd stays open. */
int cairn_file_slurp_fd(int fd, const char *path, size_t max, struct cairn_buf *out);
/* Durably replace path with data: tmp in tmpdir (or path's dir if NULL), fsync,
 * rename, fsync dir. Mode 0600. -ENOSPC, -EIO. */
int cairn_file_write_atomic(const char *path, const char *tmpdir, const void *data, size_t len);
/* The same with another mode than 0600 (e.g. 0644 for files other programs read). */
int cairn_file_write_atomic_mode(const char *path, const char *tmpdir, const void *data, size_t len,
                                 unsigned mode);
/* Replace path with data by a temp file in tmpdir and a rename, without fsync:
 * for caches, whose readers detect a torn file. -ENOSPC, -EIO. */
int cairn_file_write_unsynced(const char *path, const char *tmpdir, const void *data, size_t len);
int cairn_fsync_dir(const char *dir);
/* Write all of buf or fail (-ENOSPC, -EIO). */
int cairn_write_all(int fd, const void *buf, size_t len);
int cairn_pread_all(int fd, void *buf, size_t len, uint64_t off);
/* mkdir -p with mode; existing directories are fine. */
int cairn_mkdir_p(const char *path, unsigned mode);
/* Remove a directory tree (for tests and tmp cleanup). */
int cairn_rm_rf(const char *path);
/* The next component of a path, skipping separators and "."; *len 0 at the end. */
const char *cairn_path_next(const char *p, size_t *len);

/* Run fn(i, payload) for every i in [0, n) on up to threads threads (the caller's
 * among them). The first failure stops the others after their current job; its
 * code is returned with its message. fn must be thread-safe. */
int cairn_parallel(size_t n, unsigned threads, int (*fn)(size_t i, void *payload), void *payload);

#endif
