/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Reading back the JSON log lines of cairn_log_emit (what `cairn run` relays). */
#include "jline.h"

#include <string.h>

#include "cleanup.h"

static void ws(const char **p)
{
	while (**p == ' ' || **p == '\t')
		(*p)++;
}

static void put_utf8(struct cairn_buf *b, unsigned cp)
{
	uint8_t u[4];
	size_t n;
	if (cp < 0x80) {
		u[0] = (uint8_t)cp, n = 1;
	} else if (cp < 0x800) {
		u[0] = (uint8_t)(0xc0 | cp >> 6), u[1] = (uint8_t)(0x80 | (cp & 0x3f)), n = 2;
	} else if (cp < 0x10000) {
		u[0] = (uint8_t)(0xe0 | cp >> 12), u[1] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f));
		u[2] = (uint8_t)(0x80 | (cp & 0x3f)), n = 3;
	} else {
		u[0] = (uint8_t)(0xf0 | cp >> 18), u[1] = (uint8_t)(0x80 | ((cp >> 12) & 0x3f));
		u[2] = (uint8_t)(0x80 | ((cp >> 6) & 0x3f)), u[3] = (uint8_t)(0x80 | (cp & 0x3f));
		n = 4;
	}
	cairn_buf_put(b, u, n);
}

static bool hex4(const char *p, unsigned *out)
{
	unsigned v = 0;
	for (int i = 0; i < 4; i++) {
		char c = p[i];
		int d = c >= '0' && c <= '9'   ? c - '0'
		        : c >= 'a' && c <= 'f' ? c - 'a' + 10
		        : c >= 'A' && c <= 'F' ? c - 'A' + 10
		                               : -1;
		if (d < 0)
			return false;
		v = v << 4 | (unsigned)d;
	}
	*out = v;
	return true;
}

/* A JSON string at *p; decoded into out if not NULL. \udc80..\udcff give back the
 * raw byte (cairn_json_str's surrogate escapes). */
static bool jstr(const char **p, struct cairn_buf *out)
{
	static const char esc[] = "\"\\/bfnrt", val[] = "\"\\/\b\f\n\r\t";
	const char *s = *p;
	if (*s++ != '"')
		return false;
	for (;;) {
		unsigned char c = (unsigned char)*s;
		if (c == '\0' || c < 0x20)
			return false;
		if (c == '"')
			break;
		if (c != '\\') {
			if (out)
				cairn_buf_put_u8(out, c);
			s++;
			continue;
		}
		const char *e = s[1] ? strchr(esc, s[1]) : NULL;
		if (e) {
			if (out)
				cairn_buf_put_u8(out, (uint8_t)val[e - esc]);
			s += 2;
			continue;
		}
		unsigned cp, lo;
		if (s[1] != 'u' || !hex4(s + 2, &cp))
			return false;
		s += 6;
		if (cp >= 0xd800 && cp < 0xdc00 && s[0] == '\\' && s[1] == 'u' &&
		    hex4(s + 2, &lo) && lo >= 0xdc00 && lo < 0xe000) {
			cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			s += 6;
		}
		if (!out)
			continue;
		if (cp >= 0xdc80 && cp <= 0xdcff)
			cairn_buf_put_u8(out, (uint8_t)(cp - 0xdc00));
		else
			put_utf8(out, cp);
	}
	*p = s + 1;
	return !out || cairn_buf_put_u8(out, 0) == 0;
}

/* A number, true, false or null. */
static bool jscalar(const char **p)
{
	const char *s = *p;
	static const char *const words[] = { "true", "false", "null" };
	for (size_t i = 0; i < ARRAY_SIZE(words); i++)
		if (strncmp(s, words[i], strlen(words[i])) == 0) {
			*p = s + strlen(words[i]);
			return true;
		}
	size_t n = strspn(s, "-+.0123456789eE");
	*p = s + n;
	return n > 0;
}

/* The flat object of "fields": strings and scalars only (what cairn_log_emit writes). */
static bool jfields(const char **p, struct jline *l)
{
	const char *s = *p;
	if (*s++ != '{')
		return false;
	l->fields = s;
	ws(&s);
	while (*s != '}') {
		if (!jstr(&s, NULL))
			return false;
		ws(&s);
		if (*s++ != ':')
			return false;
		ws(&s);
		if (!(*s == '"' ? jstr(&s, NULL) : jscalar(&s)))
			return false;
		ws(&s);
		if (*s == ',')
			s++, ws(&s);
		else if (*s != '}')
			return false;
	}
	l->fields_len = (size_t)(s - l->fields);
	*p = s + 1;
	return true;
}

static int level_of(const char *name)
{
	static const char *const names[] = { "error", "warning", "notice", "info", "debug" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strcmp(name, names[i]) == 0)
			return CAIRN_LOG_ERR + (int)i;
	return -1;
}

bool jline_parse(const char *s, struct jline *l)
{
	_cleanup_buf_ struct cairn_buf lvl = CAIRN_BUF_INIT;
	bool have_msg = false;
	ws(&s);
	if (*s++ != '{')
		return false;
	for (;;) {
		_cleanup_buf_ struct cairn_buf key = CAIRN_BUF_INIT;
		ws(&s);
		if (!jstr(&s, &key))
			return false;
		ws(&s);
		if (*s++ != ':')
			return false;
		ws(&s);
		const char *k = (const char *)key.data;
		bool ok;
		if (strcmp(k, "level") == 0 && lvl.len == 0)
			ok = jstr(&s, &lvl);
		else if (strcmp(k, "message") == 0 && !have_msg)
			ok = have_msg = jstr(&s, &l->message);
		else if (strcmp(k, "fields") == 0 && *s == '{')
			ok = jfields(&s, l);
		else
			ok = *s == '"' ? jstr(&s, NULL) : jscalar(&s);
		if (!ok)
			return false;
		ws(&s);
		if (*s == '}')
			break;
		if (*s++ != ',')
			return false;
	}
	s++;
	ws(&s);
	l->level = lvl.len ? level_of((const char *)lvl.data) : -1;
	return l->level >= 0 && have_msg && *s == '\0';
}
