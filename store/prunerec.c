/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Prune records (FORMAT.md §13): plain text, so that every key and `cairn unlock`
 * can read them, and nothing in them is secret (pack IDs are object names); the
 * MAC line that ends them is made and checked in pending.c, which has the key. */
#include "prunerec.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

#define MAGIC "cairn-prune 1"

int cairn_prunerec__format(const struct cairn_prunerec *r, struct cairn_buf *out)
{
	size_t start = out->len;
	int q = cairn_buf_printf(out, MAGIC "\ntime = %lld\nhost = %s\n", (long long)r->time,
	                         r->host);
	if (q >= 0 && r->wait_known) {
		q = cairn_buf_printf(out, "wait =");
		for (size_t i = 0; q >= 0 && i < r->nwait; i++)
			q = cairn_buf_printf(out, " %s", r->wait[i]);
		if (q >= 0)
			q = cairn_buf_printf(out, "\n");
	}
	for (size_t i = 0; q >= 0 && i < r->npacks; i++) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, &r->packs[i]);
		q = cairn_buf_printf(out, "pack = %s\n", hex);
	}
	if (q < 0)
		out->len = start;
	return q < 0 ? q : 0;
}

void cairn_prunerec__release(struct cairn_prunerec *r)
{
	free(r->wait);
	free(r->packs);
	r->wait = NULL;
	r->packs = NULL;
	r->nwait = r->npacks = 0;
}

static bool lock_name(const char *s, size_t n)
{
	uint8_t raw[16];
	char tmp[CAIRN_LOCK_NAME_SIZE];
	if (n != 32)
		return false;
	memcpy(tmp, s, 32);
	tmp[32] = '\0';
	return cairn_unhex(raw, sizeof(raw), tmp) == 0;
}

/* "wait = NAME NAME ...": space-separated lock names, maybe none. */
static int parse_wait(struct cairn_prunerec *r, const char *v, size_t n)
{
	size_t count = (n + 1) / 33;
	if (n && (n + 1) % 33 != 0)
		return -EBADMSG;
	if (count > CAIRN_PRUNEREC_MAX_WAIT)
		return -EBADMSG;
	if (count && !(r->wait = calloc(count, sizeof(*r->wait))))
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		const char *p = v + 33 * i;
		if (!lock_name(p, 32) || (i + 1 < count && p[32] != ' '))
			return -EBADMSG;
		memcpy(r->wait[i], p, 32);
		r->wait[i][32] = '\0';
	}
	r->nwait = count;
	r->wait_known = true;
	return 0;
}

static int add_pack(struct cairn_prunerec *r, const char *v, size_t n, size_t *cap)
{
	char hex[CAIRN_ID_HEX_SIZE];
	if (n != 64)
		return -EBADMSG;
	memcpy(hex, v, 64);
	hex[64] = '\0';
	if (r->npacks == *cap) {
		size_t c = *cap ? 2 * *cap : 64;
		struct cairn_id *p = reallocarray(r->packs, c, sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		r->packs = p;
		*cap = c;
	}
	if (cairn_id_parse(&r->packs[r->npacks], hex) < 0)
		return -EBADMSG;
	r->npacks++;
	return 0;
}

static int parse_time(const char *v, size_t n, int64_t *out)
{
	char buf[24];
	char *end;
	if (n == 0 || n >= sizeof(buf))
		return -EBADMSG;
	memcpy(buf, v, n);
	buf[n] = '\0';
	long long t = strtoll(buf, &end, 10);
	if (*end || t < 0 || buf[0] == '-' || buf[0] == '+')
		return -EBADMSG;
	*out = t;
	return 0;
}

static int parse_mac(struct cairn_prunerec *r, const char *v, size_t n)
{
	char hex[2 * CAIRN_PRUNEREC_MAC_SIZE + 1];
	if (n != 2 * CAIRN_PRUNEREC_MAC_SIZE)
		return -EBADMSG;
	memcpy(hex, v, n);
	hex[n] = '\0';
	if (cairn_unhex(r->mac, sizeof(r->mac), hex) < 0)
		return -EBADMSG;
	r->has_mac = true;
	return 0;
}

/* One "key = value" line. seen: bits of the keys met so far. */
static int parse_line(struct cairn_prunerec *r, const char *line, size_t n, unsigned *seen,
                      size_t *cap)
{
	const char *eq = memmem(line, n, " = ", 3);
	if (!eq) /* "wait =" with no lock: nothing after the '=' */
		eq = n >= 2 && memcmp(line + n - 2, " =", 2) == 0 ? line + n - 2 : NULL;
	if (!eq)
		return -EBADMSG;
	size_t klen = (size_t)(eq - line);
	const char *v = eq + (eq + 3 <= line + n ? 3 : 2);
	size_t vlen = (size_t)(line + n - v);
	if (r->has_mac)
		return -EBADMSG; /* the MAC covers everything before it: it comes last */
	if (klen == 3 && memcmp(line, "mac", 3) == 0)
		return parse_mac(r, v, vlen);
	if (klen == 4 && memcmp(line, "pack", 4) == 0)
		return add_pack(r, v, vlen, cap);
	static const char *const once[] = { "time", "host", "wait" };
	for (unsigned i = 0; i < 3; i++) {
		if (klen != 4 || memcmp(line, once[i], 4) != 0)
			continue;
		if (*seen & (1u << i))
			return -EBADMSG; /* a known key twice */
		*seen |= 1u << i;
		if (i == 0)
			return parse_time(v, vlen, &r->time);
		if (i == 2)
			return parse_wait(r, v, vlen);
		if (vlen >= sizeof(r->host) || memchr(v, '\0', vlen))
			return -EBADMSG;
		memcpy(r->host, v, vlen);
		r->host[vlen] = '\0';
		return 0;
	}
	return 0; /* a key of a later version */
}

int cairn_prunerec__parse(struct cairn_prunerec *out, const char *text, size_t len)
{
	struct cairn_prunerec r = { 0 };
	size_t ml = strlen(MAGIC), cap = 0, lineno = 1;
	unsigned seen = 0;
	if (len > CAIRN_PRUNEREC_MAX || len < ml + 1 || memcmp(text, MAGIC "\n", ml + 1) != 0)
		return cairn_err_set(-EBADMSG, "not a prune record");
	if (text[len - 1] != '\n')
		return cairn_err_set(-EBADMSG, "prune record: the last line is cut");
	int q = 0;
	for (size_t pos = ml + 1; q >= 0 && pos < len;) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = (size_t)(nl - (text + pos));
		lineno++;
		if (!r.has_mac)
			r.mac_at = pos;
		q = parse_line(&r, text + pos, n, &seen, &cap);
		pos += n + 1;
	}
	if (q >= 0 && (seen & 3) != 3)
		q = -EBADMSG;
	if (q < 0) {
		cairn_prunerec__release(&r);
		return q == -ENOMEM ? q
		                    : cairn_err_set(-EBADMSG, "prune record: bad line %zu", lineno);
	}
	memcpy(r.name, out->name, sizeof(r.name));
	*out = r;
	return 0;
}
