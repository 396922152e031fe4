/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* S3 XML replies: expat under limits, and typed extractors over its events. */
#include "s3xml.h"

#include <errno.h>
#include <expat.h>
#include <stdalign.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cairn/util.h"
#include "cleanup.h"

/* ---- expat's memory, counted ---------------------------------------------- */

/*
 * expat's memory functions take no context, so the bytes held by the parsers of
 * this thread are counted here. Without a cap a reply could make expat hold many
 * times its size: each distinct element or attribute name gets an entry in its
 * tables, and one long token (a comment, an attribute) is buffered whole.
 */
static _Thread_local size_t mem_held; /* never above CAIRN_S3XML_MAX_MEM */
static _Thread_local bool mem_over;   /* an allocation was refused by the cap */

#define MEM_HDR alignof(max_align_t) /* the size in front; keeps the block aligned */

static void *mem_realloc(void *ptr, size_t n)
{
	char *base = ptr ? (char *)ptr - MEM_HDR : NULL;
	size_t had = 0, want;
	if (base)
		memcpy(&had, base, sizeof(had));
	/* had is part of mem_held, so mem_held - had cannot wrap. */
	if (__builtin_add_overflow(n, MEM_HDR, &want) ||
	    want > CAIRN_S3XML_MAX_MEM - (mem_held - had)) {
		mem_over = true;
		return NULL;
	}
	char *p = realloc(base, want);
	if (!p)
		return NULL;
	mem_held = mem_held - had + want;
	memcpy(p, &want, sizeof(want));
	return p + MEM_HDR;
}

static void *mem_malloc(size_t n)
{
	return mem_realloc(NULL, n);
}

static void mem_free(void *ptr)
{
	size_t had;
	if (!ptr)
		return;
	char *base = (char *)ptr - MEM_HDR;
	memcpy(&had, base, sizeof(had));
	mem_held -= had;
	free(base);
}

static const XML_Memory_Handling_Suite mem_suite = { mem_malloc, mem_realloc, mem_free };

/* ---- the walk over expat's callbacks -------------------------------------- */

/* Bytes given to expat per call: its buffer stays small unless one token is long. */
#define FEED 65536

struct walker {
	XML_Parser xp;
	int depth;
	char names[CAIRN_S3XML_MAX_DEPTH + 1][CAIRN_S3XML_MAX_NAME + 1]; /* [0] is "" */
	bool has_child[CAIRN_S3XML_MAX_DEPTH + 1];
	struct cairn_buf text; /* text of the innermost open element */
	int err;               /* first failure; expat is stopped and later calls ignored */
	size_t fed;            /* bytes given to expat so far */
	int (*cb)(const struct cairn_s3xml_ev *ev, void *payload);
	void *payload;
};

/* Keep the first failure r and stop expat, which may still call us once after. */
static void settle(struct walker *w, int r)
{
	if (r >= 0 || w->err < 0)
		return;
	w->err = r;
	XML_StopParser(w->xp, XML_FALSE);
}

static int bad(const struct walker *w, const char *what)
{
	long long at = XML_GetCurrentByteIndex(w->xp);
	return cairn_err_set(-EBADMSG, "bad XML reply at offset %lld: %s",
	                     at >= 0 ? at : (long long)w->fed, what); /* -1: at the end */
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

/* Opens the element name: its local name ("s3:Key" is "Key") goes on the stack. */
static int start(struct walker *w, const char *name)
{
	size_t n = strlen(name);
	if (n > CAIRN_S3XML_MAX_NAME)
		return bad(w, "name too long");
	const char *colon = strrchr(name, ':');
	const char *local = colon ? colon + 1 : name;
	if (!*local)
		return bad(w, "empty local name");
	if (w->depth == CAIRN_S3XML_MAX_DEPTH)
		return bad(w, "elements nested too deeply");
	w->has_child[w->depth] = true;
	w->depth++;
	memcpy(w->names[w->depth], local, strlen(local) + 1);
	w->has_child[w->depth] = false;
	w->text.len = 0;
	return emit(w, CAIRN_S3XML_OPEN, NULL, 0);
}

/* Closes the innermost element (expat has matched the names). */
static int end(struct walker *w)
{
	int r = 0;
	if (!w->has_child[w->depth]) {
		if (cairn_buf_put_u8(&w->text, 0) < 0)
			return cairn_err_set(-ENOMEM, "out of memory");
		r = emit(w, CAIRN_S3XML_TEXT, (const char *)w->text.data, w->text.len - 1);
	}
	if (r >= 0)
		r = emit(w, CAIRN_S3XML_CLOSE, NULL, 0);
	w->depth--;
	w->text.len = 0;
	return r;
}

/* Character data, entities and character references decoded, in as many pieces
 * as expat likes; only a leaf element's text is kept. */
static int text(struct walker *w, const char *s, size_t n)
{
	if (w->depth == 0 || w->has_child[w->depth])
		return 0;
	if (n > CAIRN_S3XML_MAX_TEXT || w->text.len > CAIRN_S3XML_MAX_TEXT - n)
		return bad(w, "element text too long");
	return cairn_buf_put(&w->text, s, n) < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

static void XMLCALL on_start(void *arg, const XML_Char *name, const XML_Char **attrs)
{
	struct walker *w = arg;
	(void)attrs; /* S3 replies carry nothing we need in attributes */
	if (w->err == 0)
		settle(w, start(w, name));
}

static void XMLCALL on_end(void *arg, const XML_Char *name)
{
	struct walker *w = arg;
	(void)name;
	if (w->err == 0)
		settle(w, end(w));
}

static void XMLCALL on_text(void *arg, const XML_Char *s, int len)
{
	struct walker *w = arg;
	if (w->err == 0)
		settle(w, text(w, s, (size_t)len));
}

/* No DTD: no entity of ours to expand (billion laughs), none from elsewhere. */
static void XMLCALL on_doctype(void *arg, const XML_Char *name, const XML_Char *sysid,
                               const XML_Char *pubid, int has_internal_subset)
{
	struct walker *w = arg;
	(void)name, (void)sysid, (void)pubid, (void)has_internal_subset;
	settle(w, bad(w, "DOCTYPE and declarations are not allowed"));
}

/* expat's verdict on the document as a -errno with a message. */
static int parse_error(struct walker *w)
{
	enum XML_Error e = XML_GetErrorCode(w->xp);
	if (w->err < 0)
		return w->err;
	if (e == XML_ERROR_NO_MEMORY && mem_over)
		return cairn_err_set(-EBADMSG, "XML reply needs more than %u bytes to parse",
		                     CAIRN_S3XML_MAX_MEM);
	if (e == XML_ERROR_NO_MEMORY)
		return cairn_err_set(-ENOMEM, "out of memory");
	return bad(w, XML_ErrorString(e));
}

static int feed(struct walker *w, const char *data, size_t len)
{
	size_t pos = 0;
	do {
		size_t n = len - pos < FEED ? len - pos : FEED;
		bool last = pos + n == len;
		w->fed = pos + n;
		if (XML_Parse(w->xp, data + pos, (int)n, last) != XML_STATUS_OK)
			return parse_error(w);
		pos += n;
	} while (pos < len);
	return w->err; /* 0: expat only stops with an error */
}

int cairn_s3xml_walk(const void *data, size_t len,
                     int (*cb)(const struct cairn_s3xml_ev *ev, void *payload), void *payload)
{
	struct walker w = { .cb = cb, .payload = payload };

	if (len > CAIRN_S3XML_MAX_SIZE)
		return cairn_err_set(-EBADMSG, "XML reply too large (%zu bytes)", len);
	mem_over = false;
	/* UTF-8 whatever the declaration says, as S3 writes; no namespace processing:
	 * names keep their prefix and local_name() drops it. */
	w.xp = XML_ParserCreate_MM("UTF-8", &mem_suite, NULL);
	if (!w.xp)
		return cairn_err_set(-ENOMEM, "out of memory");
	XML_SetUserData(w.xp, &w);
	XML_SetElementHandler(w.xp, on_start, on_end);
	XML_SetCharacterDataHandler(w.xp, on_text);
	XML_SetStartDoctypeDeclHandler(w.xp, on_doctype);
	XML_SetParamEntityParsing(w.xp, XML_PARAM_ENTITY_PARSING_NEVER);
	int r = feed(&w, data, len);
	XML_ParserFree(w.xp);
	cairn_buf_release(&w.text);
	return r;
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
	if (is_text(ev, 3, "Initiated"))
		return cairn_s3xml_parse_time(ev->text, &c->cur.initiated);
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
	uint64_t v = 0;
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
