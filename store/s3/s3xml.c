/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Defensive parsing of S3 XML replies: a bounded tokenizer and typed extractors. */
#include "s3xml.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/util.h"
#include "cleanup.h"

/* ---- tokenizer ----------------------------------------------------------- */

struct walker {
	const char *p; /* whole input; positions are offsets, never pointers past it */
	size_t len, pos;
	int depth;
	char names[CAIRN_S3XML_MAX_DEPTH + 1][CAIRN_S3XML_MAX_NAME + 1]; /* [0] is "" */
	bool has_child[CAIRN_S3XML_MAX_DEPTH + 1];
	bool seen_root;
	struct cairn_buf text; /* decoded text of the innermost open element */
	int (*cb)(const struct cairn_s3xml_ev *ev, void *payload);
	void *payload;
};

static int bad(const struct walker *w, const char *what)
{
	return cairn_err_set(-EBADMSG, "bad XML reply at offset %zu: %s", w->pos, what);
}

static bool at(const struct walker *w, const char *s)
{
	size_t n = strlen(s);
	return w->len - w->pos >= n && memcmp(w->p + w->pos, s, n) == 0;
}

/* Move past the next occurrence of end; -EBADMSG if the input ends first. */
static int skip_past(struct walker *w, const char *end, size_t *start_out)
{
	size_t n = strlen(end);
	size_t start = w->pos;
	while (w->len - w->pos >= n) {
		if (memcmp(w->p + w->pos, end, n) == 0) {
			if (start_out)
				*start_out = start;
			w->pos += n;
			return 0;
		}
		w->pos++;
	}
	return bad(w, "unterminated markup");
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void skip_space(struct walker *w)
{
	while (w->pos < w->len && is_space(w->p[w->pos]))
		w->pos++;
}

static bool name_char(unsigned char c, bool first)
{
	if ((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || c == '_' || c == ':' || c >= 0x80)
		return true;
	return !first && ((c >= '0' && c <= '9') || c == '-' || c == '.');
}

/* Read a name into out (local part: any "prefix:" is dropped). */
static int read_name(struct walker *w, char out[CAIRN_S3XML_MAX_NAME + 1])
{
	size_t start = w->pos, n;
	while (w->pos < w->len && name_char((unsigned char)w->p[w->pos], w->pos == start))
		w->pos++;
	n = w->pos - start;
	if (n == 0)
		return bad(w, "expected a name");
	if (n > CAIRN_S3XML_MAX_NAME)
		return bad(w, "name too long");
	const char *colon = memrchr(w->p + start, ':', n);
	size_t skip = colon ? (size_t)(colon - (w->p + start)) + 1 : 0;
	if (skip == n)
		return bad(w, "empty local name");
	memcpy(out, w->p + start + skip, n - skip);
	out[n - skip] = '\0';
	return 0;
}

static int emit(struct walker *w, enum cairn_s3xml_ev_type type, const char *text, size_t len)
{
	struct cairn_s3xml_ev ev = { .type = type,
		                     .depth = w->depth,
		                     .name = w->names[w->depth],
		                     .parent = w->names[w->depth - 1],
		                     .text = text,
		                     .len = len };
	return w->cb(&ev, w->payload);
}

static int text_put(struct walker *w, const void *p, size_t n)
{
	if (w->depth == 0 || w->has_child[w->depth])
		return 0; /* text outside the root or mixed content: not needed */
	if (n > CAIRN_S3XML_MAX_TEXT || w->text.len > CAIRN_S3XML_MAX_TEXT - n)
		return bad(w, "element text too long");
	return cairn_buf_put(&w->text, p, n) < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

/* UTF-8 of a character reference; only code points XML allows. */
static int put_codepoint(struct walker *w, uint32_t c)
{
	uint8_t b[4];
	size_t n;
	if (c == 0 || (c >= 0xd800 && c <= 0xdfff) || c > 0x10ffff || c == 0xfffe || c == 0xffff)
		return bad(w, "invalid character reference");
	if (c < 0x80) {
		b[0] = (uint8_t)c;
		n = 1;
	} else if (c < 0x800) {
		b[0] = (uint8_t)(0xc0 | c >> 6);
		b[1] = (uint8_t)(0x80 | (c & 0x3f));
		n = 2;
	} else if (c < 0x10000) {
		b[0] = (uint8_t)(0xe0 | c >> 12);
		b[1] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
		b[2] = (uint8_t)(0x80 | (c & 0x3f));
		n = 3;
	} else {
		b[0] = (uint8_t)(0xf0 | c >> 18);
		b[1] = (uint8_t)(0x80 | ((c >> 12) & 0x3f));
		b[2] = (uint8_t)(0x80 | ((c >> 6) & 0x3f));
		b[3] = (uint8_t)(0x80 | (c & 0x3f));
		n = 4;
	}
	return text_put(w, b, n);
}

static int char_ref(struct walker *w, const char *s, size_t n)
{
	bool hex = n > 1 && (s[1] == 'x');
	size_t i = hex ? 2 : 1;
	uint32_t c = 0;
	if (i >= n || n - i > 8)
		return bad(w, "bad character reference");
	for (; i < n; i++) {
		unsigned char d = (unsigned char)s[i];
		int v = d >= '0' && d <= '9'          ? d - '0'
		        : hex && d >= 'a' && d <= 'f' ? d - 'a' + 10
		        : hex && d >= 'A' && d <= 'F' ? d - 'A' + 10
		                                      : -1;
		if (v < 0)
			return bad(w, "bad character reference");
		c = c * (hex ? 16 : 10) + (uint32_t)v;
	}
	return put_codepoint(w, c);
}

/* At '&': decode one entity. Only the predefined ones exist: there is no DTD. */
static int entity(struct walker *w)
{
	static const struct {
		const char *name;
		char c;
	} predefined[] = {
		{ "amp", '&' }, { "lt", '<' }, { "gt", '>' }, { "quot", '"' }, { "apos", '\'' }
	};
	size_t start = ++w->pos, n = 0;
	while (w->pos < w->len && w->p[w->pos] != ';' && n <= 12) {
		w->pos++;
		n++;
	}
	if (w->pos >= w->len || w->p[w->pos] != ';' || n == 0)
		return bad(w, "unterminated entity");
	w->pos++;
	const char *s = w->p + start;
	if (s[0] == '#')
		return char_ref(w, s, n);
	for (size_t i = 0; i < ARRAY_SIZE(predefined); i++)
		if (strlen(predefined[i].name) == n && memcmp(s, predefined[i].name, n) == 0)
			return text_put(w, &predefined[i].c, 1);
	return bad(w, "unknown entity");
}

/* Attributes are skipped, but must be well-formed: name = "value" or 'value'. */
static int skip_attrs(struct walker *w)
{
	for (;;) {
		char name[CAIRN_S3XML_MAX_NAME + 1];
		bool spaced = w->pos < w->len && is_space(w->p[w->pos]);
		skip_space(w);
		if (w->pos >= w->len)
			return bad(w, "unterminated tag");
		if (w->p[w->pos] == '>' || at(w, "/>"))
			return 0;
		if (!spaced)
			return bad(w, "expected a space before an attribute");
		int r = read_name(w, name);
		if (r < 0)
			return r;
		skip_space(w);
		if (w->pos >= w->len || w->p[w->pos] != '=')
			return bad(w, "expected '=' after an attribute name");
		w->pos++;
		skip_space(w);
		if (w->pos >= w->len || (w->p[w->pos] != '"' && w->p[w->pos] != '\''))
			return bad(w, "expected a quoted attribute value");
		char q[2] = { w->p[w->pos++], 0 };
		size_t vstart;
		if ((r = skip_past(w, q, &vstart)) < 0)
			return r;
		if (memchr(w->p + vstart, '<', w->pos - 1 - vstart))
			return bad(w, "'<' in an attribute value");
	}
}

static int open_tag(struct walker *w)
{
	char name[CAIRN_S3XML_MAX_NAME + 1];
	int r;
	w->pos++; /* '<' */
	if ((r = read_name(w, name)) < 0 || (r = skip_attrs(w)) < 0)
		return r;
	if (w->depth == 0 && w->seen_root)
		return bad(w, "a second root element");
	if (w->depth == CAIRN_S3XML_MAX_DEPTH)
		return bad(w, "elements nested too deeply");
	w->has_child[w->depth] = true;
	w->depth++;
	w->seen_root = true;
	memcpy(w->names[w->depth], name, sizeof(name));
	w->has_child[w->depth] = false;
	w->text.len = 0;
	bool empty = at(w, "/>");
	w->pos += empty ? 2 : 1;
	if ((r = emit(w, CAIRN_S3XML_OPEN, NULL, 0)) < 0)
		return r;
	if (!empty)
		return 0;
	if ((r = emit(w, CAIRN_S3XML_TEXT, "", 0)) < 0 ||
	    (r = emit(w, CAIRN_S3XML_CLOSE, NULL, 0)) < 0)
		return r;
	w->depth--;
	return 0;
}

static int close_tag(struct walker *w)
{
	char name[CAIRN_S3XML_MAX_NAME + 1];
	int r;
	w->pos += 2; /* "</" */
	if ((r = read_name(w, name)) < 0)
		return r;
	skip_space(w);
	if (w->pos >= w->len || w->p[w->pos] != '>')
		return bad(w, "expected '>' after a closing tag name");
	w->pos++;
	if (w->depth == 0 || strcmp(name, w->names[w->depth]) != 0)
		return bad(w, "mismatched closing tag");
	if (!w->has_child[w->depth]) {
		if (cairn_buf_put_u8(&w->text, 0) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
		r = emit(w, CAIRN_S3XML_TEXT, (const char *)w->text.data, w->text.len - 1);
		if (r < 0)
			return r;
	}
	if ((r = emit(w, CAIRN_S3XML_CLOSE, NULL, 0)) < 0)
		return r;
	w->depth--;
	w->text.len = 0;
	return 0;
}

static int markup(struct walker *w)
{
	size_t start;
	int r;
	if (at(w, "<?"))
		return skip_past(w, "?>", NULL);
	if (at(w, "<!--"))
		return skip_past(w, "-->", NULL);
	if (at(w, "<![CDATA[")) {
		if (w->depth == 0)
			return bad(w, "CDATA outside the root element");
		w->pos += 9;
		if ((r = skip_past(w, "]]>", &start)) < 0)
			return r;
		return text_put(w, w->p + start, w->pos - 3 - start);
	}
	if (at(w, "<!"))
		return bad(w, "DOCTYPE and declarations are not allowed");
	if (at(w, "</"))
		return close_tag(w);
	return open_tag(w);
}

static int chars(struct walker *w)
{
	size_t start = w->pos;
	while (w->pos < w->len && w->p[w->pos] != '<' && w->p[w->pos] != '&') {
		if (w->p[w->pos] == '\0')
			return bad(w, "NUL byte");
		if (w->depth == 0 && !is_space(w->p[w->pos]))
			return bad(w, "text outside the root element");
		w->pos++;
	}
	return text_put(w, w->p + start, w->pos - start);
}

int cairn_s3xml_walk(const void *data, size_t len,
                     int (*cb)(const struct cairn_s3xml_ev *ev, void *payload), void *payload)
{
	struct walker w = { .p = data, .len = len, .cb = cb, .payload = payload };
	int r = 0;

	if (len > CAIRN_S3XML_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "XML reply too large (%zu bytes)", len);
	if (at(&w, "\xef\xbb\xbf"))
		w.pos = 3;
	while (r >= 0 && w.pos < w.len) {
		if (w.p[w.pos] == '<')
			r = markup(&w);
		else if (w.p[w.pos] == '&')
			r = w.depth > 0 ? entity(&w) : bad(&w, "entity outside the root element");
		else
			r = chars(&w);
	}
	cairn_buf_release(&w.text);
	if (r < 0)
		return r;
	if (w.depth != 0)
		return bad(&w, "unclosed element");
	if (!w.seen_root)
		return bad(&w, "no root element");
	return 0;
}

/* ---- typed extractors ----------------------------------------------------- */

static int root_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	if (ev->type == CAIRN_S3XML_OPEN && ev->depth == 1)
		snprintf(payload, CAIRN_S3XML_MAX_NAME + 1, "%s", ev->name);
	return 0;
}

int cairn_s3xml_root(char *out, const void *data, size_t len)
{
	char name[CAIRN_S3XML_MAX_NAME + 1] = "";
	int r = cairn_s3xml_walk(data, len, root_cb, name);
	if (r < 0)
		return r;
	memcpy(out, name, sizeof(name));
	return 0;
}

/* Checks the root element name at its OPEN event. */
static int want_root(const struct cairn_s3xml_ev *ev, const char *root)
{
	if (ev->type == CAIRN_S3XML_OPEN && ev->depth == 1 && strcmp(ev->name, root) != 0)
		return cairn_err_set(-EBADMSG, "XML reply: expected <%s>, got <%s>", root,
		                     ev->name);
	return 0;
}

static bool is_text(const struct cairn_s3xml_ev *ev, int depth, const char *name)
{
	return ev->type == CAIRN_S3XML_TEXT && ev->depth == depth && strcmp(ev->name, name) == 0;
}

static int parse_u64(const struct cairn_s3xml_ev *ev, uint64_t *out)
{
	uint64_t v = 0;
	if (ev->len == 0 || ev->len > 20)
		return cairn_err_set(-EBADMSG, "XML reply: bad number in <%s>", ev->name);
	for (size_t i = 0; i < ev->len; i++) {
		unsigned d = (unsigned char)ev->text[i] - '0';
		if (d > 9 || __builtin_mul_overflow(v, 10, &v) || __builtin_add_overflow(v, d, &v))
			return cairn_err_set(-EBADMSG, "XML reply: bad number in <%s>", ev->name);
	}
	*out = v;
	return 0;
}

static int parse_bool(const struct cairn_s3xml_ev *ev, bool *out)
{
	if (strcmp(ev->text, "true") == 0)
		*out = true;
	else if (strcmp(ev->text, "false") == 0)
		*out = false;
	else
		return cairn_err_set(-EBADMSG, "XML reply: bad boolean in <%s>", ev->name);
	return 0;
}

/* A copy of an element's text that must be a C string (no NUL inside). */
static int dup_text(const struct cairn_s3xml_ev *ev, char **out)
{
	if (memchr(ev->text, 0, ev->len))
		return cairn_err_set(-EBADMSG, "XML reply: NUL in <%s>", ev->name);
	if (*out)
		return cairn_err_set(-EBADMSG, "XML reply: duplicate <%s>", ev->name);
	if (!(*out = strndup(ev->text, ev->len)))
		return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

/* Text into a fixed buffer; -EBADMSG if it does not fit. */
static int copy_text(const struct cairn_s3xml_ev *ev, char *out, size_t size)
{
	if (ev->len >= size || memchr(ev->text, 0, ev->len))
		return cairn_err_set(-EBADMSG, "XML reply: bad <%s>", ev->name);
	memcpy(out, ev->text, ev->len + 1);
	return 0;
}

/* ETag values are quoted ("..."); the quotes are not part of the digest. */
static int copy_etag(const struct cairn_s3xml_ev *ev, char out[129])
{
	const char *s = ev->text;
	size_t n = ev->len;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"') {
		s++;
		n -= 2;
	}
	if (n > 128 || memchr(s, 0, n))
		return cairn_err_set(-EBADMSG, "XML reply: bad <ETag>");
	memcpy(out, s, n);
	out[n] = '\0';
	return 0;
}

static int grow(void **arr, size_t n, size_t size, const char *what)
{
	if (n >= CAIRN_S3XML_MAX_ITEMS)
		return cairn_err_set(-EBADMSG, "XML reply: more than %u %s", CAIRN_S3XML_MAX_ITEMS,
		                     what);
	if ((n & (n - 1)) == 0) { /* capacity doubles at powers of two */
		void *p = reallocarray(*arr, n ? 2 * n : 1, size);
		if (!p)
			return cairn_err_set(-ENOMEM, "out of memory");
		*arr = p;
	}
	return 0;
}

/* Error */

static int error_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	struct cairn_s3xml_error *e = payload;
	int r = want_root(ev, "Error");
	if (r < 0 || ev->type != CAIRN_S3XML_TEXT || ev->depth != 2)
		return r;
	char *dst = strcmp(ev->name, "Code") == 0      ? e->code
	            : strcmp(ev->name, "Message") == 0 ? e->message
	                                               : NULL;
	size_t size = dst == e->code ? sizeof(e->code) : sizeof(e->message);
	if (dst) {
		size_t n = strnlen(ev->text, ev->len < size - 1 ? ev->len : size - 1);
		memcpy(dst, ev->text, n);
		dst[n] = '\0';
	}
	return 0;
}

int cairn_s3xml_parse_error(struct cairn_s3xml_error *out, const void *data, size_t len)
{
	struct cairn_s3xml_error e = { "", "" };
	int r = cairn_s3xml_walk(data, len, error_cb, &e);
	if (r < 0)
		return r;
	if (!e.code[0])
		return cairn_err_set(-EBADMSG, "XML reply: <Error> without <Code>");
	*out = e;
	return 0;
}

/* ListBucketResult */

struct list_ctx {
	struct cairn_s3xml_list l;
	struct cairn_s3xml_object cur;
	bool have_size;
};

void cairn_s3xml_list_release(struct cairn_s3xml_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->objs[i].key);
	free(l->objs);
	free(l->next_token);
	*l = (struct cairn_s3xml_list){ 0 };
}

static int list_contents(struct list_ctx *c, const struct cairn_s3xml_ev *ev)
{
	if (ev->type == CAIRN_S3XML_OPEN) {
		c->cur = (struct cairn_s3xml_object){ 0 };
		c->have_size = false;
		return 0;
	}
	if (ev->type != CAIRN_S3XML_CLOSE)
		return 0;
	if (!c->cur.key || !c->cur.key[0] || !c->have_size) {
		free(c->cur.key);
		c->cur.key = NULL;
		return cairn_err_set(-EBADMSG, "XML reply: <Contents> without <Key> or <Size>");
	}
	int r = grow((void **)&c->l.objs, c->l.n, sizeof(c->cur), "objects");
	if (r < 0)
		return r;
	c->l.objs[c->l.n++] = c->cur;
	c->cur.key = NULL;
	return 0;
}

static int list_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	struct list_ctx *c = payload;
	int r = want_root(ev, "ListBucketResult");
	if (r < 0)
		return r;
	if (ev->depth == 2 && strcmp(ev->name, "Contents") == 0)
		return list_contents(c, ev);
	if (is_text(ev, 2, "IsTruncated"))
		return parse_bool(ev, &c->l.truncated);
	if (is_text(ev, 2, "NextContinuationToken"))
		return dup_text(ev, &c->l.next_token);
	if (ev->depth != 3 || strcmp(ev->parent, "Contents") != 0)
		return 0;
	if (is_text(ev, 3, "Key"))
		return dup_text(ev, &c->cur.key);
	if (is_text(ev, 3, "Size")) {
		c->have_size = true;
		return parse_u64(ev, &c->cur.size);
	}
	if (is_text(ev, 3, "ETag"))
		return copy_etag(ev, c->cur.etag);
	if (is_text(ev, 3, "LastModified"))
		return cairn_s3xml_parse_time(ev->text, &c->cur.mtime);
	return 0;
}

static bool digits(const char *s, size_t n, int *out)
{
	int v = 0;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar (Howard
 * Hinnant's days_from_civil): no timegm, whose time zone handling is global. */
static int64_t days_from_civil(int64_t y, int m, int d)
{
	y -= m <= 2;
	int64_t era = (y >= 0 ? y : y - 399) / 400;
	int64_t yoe = y - era * 400;
	int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
	int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

int cairn_s3xml_parse_time(const char *s, int64_t *out)
{
	int y, mo, d, h, mi, sec;
	size_t n = strlen(s);
	if (n < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':' ||
	    s[n - 1] != 'Z' || !digits(s, 4, &y) || !digits(s + 5, 2, &mo) ||
	    !digits(s + 8, 2, &d) || !digits(s + 11, 2, &h) || !digits(s + 14, 2, &mi) ||
	    !digits(s + 17, 2, &sec) || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60)
		return cairn_err_set(-EBADMSG, "XML reply: bad time '%.40s'", s);
	for (size_t i = 19; i + 1 < n; i++)
		if (!(i == 19 ? s[i] == '.' : s[i] >= '0' && s[i] <= '9'))
			return cairn_err_set(-EBADMSG, "XML reply: bad time '%.40s'", s);
	*out = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec;
	return 0;
}

int cairn_s3xml_parse_list(struct cairn_s3xml_list *out, const void *data, size_t len)
{
	struct list_ctx c = { 0 };
	int r = cairn_s3xml_walk(data, len, list_cb, &c);
	free(c.cur.key); /* a <Contents> cut short by an error */
	if (r >= 0 && c.l.truncated && (!c.l.next_token || !c.l.next_token[0]))
		r = cairn_err_set(-EBADMSG, "XML reply: truncated listing without a token");
	if (r < 0) {
		cairn_s3xml_list_release(&c.l);
		return r;
	}
	*out = c.l;
	return 0;
}

/* ListMultipartUploadsResult */

struct uploads_ctx {
	struct cairn_s3xml_uploads u;
	struct cairn_s3xml_upload cur;
};

void cairn_s3xml_uploads_release(struct cairn_s3xml_uploads *u)
{
	for (size_t i = 0; i < u->n; i++) {
		free(u->u[i].key);
		free(u->u[i].upload_id);
	}
	free(u->u);
	free(u->next_key_marker);
	free(u->next_upload_id_marker);
	*u = (struct cairn_s3xml_uploads){ 0 };
}

static void upload_free(struct cairn_s3xml_upload *u)
{
	free(u->key);
	free(u->upload_id);
	*u = (struct cairn_s3xml_upload){ 0 };
}

static int uploads_entry(struct uploads_ctx *c, const struct cairn_s3xml_ev *ev)
{
	if (ev->type == CAIRN_S3XML_OPEN) {
		upload_free(&c->cur);
		return 0;
	}
	if (ev->type != CAIRN_S3XML_CLOSE)
		return 0;
	if (!c->cur.key || !c->cur.upload_id || !c->cur.upload_id[0]) {
		upload_free(&c->cur);
		return cairn_err_set(-EBADMSG, "XML reply: <Upload> without <Key> or <UploadId>");
	}
	int r = grow((void **)&c->u.u, c->u.n, sizeof(c->cur), "uploads");
	if (r < 0)
		return r;
	c->u.u[c->u.n++] = c->cur;
	c->cur = (struct cairn_s3xml_upload){ 0 };
	return 0;
}

static int uploads_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	struct uploads_ctx *c = payload;
	int r = want_root(ev, "ListMultipartUploadsResult");
	if (r < 0)
		return r;
	if (ev->depth == 2 && strcmp(ev->name, "Upload") == 0)
		return uploads_entry(c, ev);
	if (is_text(ev, 2, "IsTruncated"))
		return parse_bool(ev, &c->u.truncated);
	if (is_text(ev, 2, "NextKeyMarker"))
		return dup_text(ev, &c->u.next_key_marker);
	if (is_text(ev, 2, "NextUploadIdMarker"))
		return dup_text(ev, &c->u.next_upload_id_marker);
	if (ev->depth != 3 || strcmp(ev->parent, "Upload") != 0)
		return 0;
	if (is_text(ev, 3, "Key"))
		return dup_text(ev, &c->cur.key);
	if (is_text(ev, 3, "UploadId"))
		return dup_text(ev, &c->cur.upload_id);
	return 0;
}

int cairn_s3xml_parse_uploads(struct cairn_s3xml_uploads *out, const void *data, size_t len)
{
	struct uploads_ctx c = { 0 };
	int r = cairn_s3xml_walk(data, len, uploads_cb, &c);
	upload_free(&c.cur);
	if (r >= 0 && c.u.truncated && !c.u.next_key_marker)
		r = cairn_err_set(-EBADMSG, "XML reply: truncated upload listing without a marker");
	if (r < 0) {
		cairn_s3xml_uploads_release(&c.u);
		return r;
	}
	*out = c.u;
	return 0;
}

/* InitiateMultipartUploadResult */

static int upload_id_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	int r = want_root(ev, "InitiateMultipartUploadResult");
	if (r >= 0 && is_text(ev, 2, "UploadId"))
		r = dup_text(ev, payload);
	return r;
}

int cairn_s3xml_parse_upload_id(char **out, const void *data, size_t len)
{
	char *id = NULL;
	int r = cairn_s3xml_walk(data, len, upload_id_cb, &id);
	if (r >= 0 && (!id || !id[0]))
		r = cairn_err_set(-EBADMSG, "XML reply: no <UploadId>");
	if (r < 0) {
		free(id);
		return r;
	}
	*out = id;
	return 0;
}

/* CompleteMultipartUploadResult */

static int complete_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	int r = want_root(ev, "CompleteMultipartUploadResult");
	if (r >= 0 && is_text(ev, 2, "ETag"))
		r = copy_etag(ev, payload);
	return r;
}

int cairn_s3xml_parse_complete(char etag[129], const void *data, size_t len)
{
	char e[129] = "";
	int r = cairn_s3xml_walk(data, len, complete_cb, e);
	if (r < 0)
		return r;
	memcpy(etag, e, sizeof(e));
	return 0;
}

/* VersioningConfiguration */

static int versioning_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	int r = want_root(ev, "VersioningConfiguration");
	if (r >= 0 && is_text(ev, 2, "Status"))
		r = copy_text(ev, payload, 16);
	return r;
}

int cairn_s3xml_parse_versioning(char status[16], const void *data, size_t len)
{
	char s[16] = "";
	int r = cairn_s3xml_walk(data, len, versioning_cb, s);
	if (r < 0)
		return r;
	memcpy(status, s, sizeof(s));
	return 0;
}

/* ObjectLockConfiguration: ObjectLockEnabled, Rule/DefaultRetention/{Mode,Days,Years} */

static int lock_u32(const struct cairn_s3xml_ev *ev, uint32_t *out)
{
	uint64_t v;
	int r = parse_u64(ev, &v);
	if (r >= 0 && v > 36500 * 100ull)
		r = cairn_err_set(-EBADMSG, "XML reply: <%s> out of range", ev->name);
	if (r >= 0)
		*out = (uint32_t)v;
	return r;
}

static int lock_cb(const struct cairn_s3xml_ev *ev, void *payload)
{
	struct cairn_s3xml_lock *l = payload;
	int r = want_root(ev, "ObjectLockConfiguration");
	if (r < 0)
		return r;
	if (is_text(ev, 2, "ObjectLockEnabled")) {
		l->enabled = strcmp(ev->text, "Enabled") == 0;
		return 0;
	}
	if (ev->depth != 4 || strcmp(ev->parent, "DefaultRetention") != 0)
		return 0;
	if (is_text(ev, 4, "Mode"))
		return copy_text(ev, l->mode, sizeof(l->mode));
	if (is_text(ev, 4, "Days"))
		return lock_u32(ev, &l->days);
	if (is_text(ev, 4, "Years"))
		return lock_u32(ev, &l->years);
	return 0;
}

int cairn_s3xml_parse_lock(struct cairn_s3xml_lock *out, const void *data, size_t len)
{
	struct cairn_s3xml_lock l = { 0 };
	int r = cairn_s3xml_walk(data, len, lock_cb, &l);
	if (r < 0)
		return r;
	*out = l;
	return 0;
}
