/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Glob patterns for --exclude/--include: our own matcher, bounded and fuzzable. */
#include "pattern.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"

/*
 * A pattern compiles to a list of components, one per '/'-separated part. A
 * component is "**" (any number of path components) or a run of atoms: a literal
 * byte, a byte class (a 256-bit set; '?' is the full set) or '*'. A pattern not
 * anchored with '/' gets a leading "**", so "*.o" and "a/b" match at any depth.
 *
 * Components are matched like an NFA over the path's components: the state set
 * holds the pattern positions reachable so far, so "**" costs no backtracking and
 * the whole match is O(path components x pattern components x component cost).
 * Within a component, '*' uses the usual two-pointer backtracking (only the last
 * star is retried), which is O(n x m): "*a*a*a*b" cannot go exponential.
 */

#define PATTERN_MAX_LEN 4096
#define PATTERN_MAX_COMPS 255 /* states 0..255 fit in the fixed-size set below */
#define STATE_WORDS ((PATTERN_MAX_COMPS + 1 + 63) / 64)
#define PATTERN_FILE_MAX (16u << 20)

enum atom_kind { A_LIT, A_SET, A_STAR };

struct atom {
	uint8_t kind;
	uint8_t c;    /* A_LIT */
	uint16_t set; /* A_SET: index into pattern.sets */
};

struct comp {
	uint32_t first, n; /* atoms[first .. first + n) */
	bool dstar;
};

struct pattern {
	char *text;   /* as written */
	char *origin; /* "FILE:LINE", or NULL */
	unsigned flags;
	struct atom *atoms;
	uint8_t (*sets)[32];
	struct comp *comps;
	size_t natoms, nsets, ncomps;
};

struct pattern_list {
	struct pattern *v;
	size_t n;
};

struct states {
	uint64_t w[STATE_WORDS];
};

static void pattern_release(struct pattern *p)
{
	free(p->text);
	free(p->origin);
	free(p->atoms);
	free(p->sets);
	free(p->comps);
}

int pattern_list_new(struct pattern_list **out)
{
	struct pattern_list *l = calloc(1, sizeof(*l));
	if (!l)
		return cairn_err_set(-ENOMEM, "out of memory");
	*out = l;
	return 0;
}

void pattern_list_free(struct pattern_list *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++)
		pattern_release(&l->v[i]);
	free(l->v);
	free(l);
}

size_t pattern_list_count(const struct pattern_list *l)
{
	return l->n;
}

/* ---- compiling ---------------------------------------------------------- */

struct compiler {
	const char *pat;
	size_t len, i;
	bool icase; /* PATTERN_ICASE */
	struct pattern *p;
	size_t comp_stars, comp_other; /* of the component being built: "**" detection */
};

static void set_bit(uint8_t *set, unsigned c)
{
	set[c >> 3] |= (uint8_t)(1u << (c & 7));
}

static bool has_bit(const uint8_t *set, unsigned c)
{
	return (set[c >> 3] >> (c & 7)) & 1;
}

/* PATTERN_ICASE: each ASCII letter in the set brings the other case along. */
static void fold_set(uint8_t *set)
{
	for (unsigned c = 'a'; c <= 'z'; c++)
		if (has_bit(set, c) || has_bit(set, c - 'a' + 'A')) {
			set_bit(set, c);
			set_bit(set, c - 'a' + 'A');
		}
}

/* ASCII only: matching must not depend on the locale. */
static bool in_posix_class(const char *name, size_t n, unsigned c)
{
	bool lower = c >= 'a' && c <= 'z', upper = c >= 'A' && c <= 'Z',
	     digit = c >= '0' && c <= '9';
	bool alpha = lower || upper, print = c >= 0x20 && c < 0x7f;
#define IS(s) (n == sizeof(s) - 1 && memcmp(name, s, n) == 0)
	if (IS("alpha"))
		return alpha;
	if (IS("digit"))
		return digit;
	if (IS("alnum"))
		return alpha || digit;
	if (IS("upper"))
		return upper;
	if (IS("lower"))
		return lower;
	if (IS("xdigit"))
		return digit || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
	if (IS("space"))
		return c == ' ' || (c >= '\t' && c <= '\r');
	if (IS("blank"))
		return c == ' ' || c == '\t';
	if (IS("punct"))
		return print && c != ' ' && !alpha && !digit;
	if (IS("print"))
		return print;
	if (IS("graph"))
		return print && c != ' ';
	return c < 0x20 || c == 0x7f; /* cntrl: the only name left (checked by the caller) */
#undef IS
}

static bool posix_class_known(const char *name, size_t n)
{
	static const char *const names[] = { "alpha", "digit", "alnum", "upper", "lower", "xdigit",
		                             "space", "blank", "punct", "print", "graph", "cntrl" };
	for (size_t i = 0; i < ARRAY_SIZE(names); i++)
		if (strlen(names[i]) == n && memcmp(names[i], name, n) == 0)
			return true;
	return false;
}

static int bad(const struct compiler *c, const char *why)
{
	return cairn_err_set(-EINVAL, "bad pattern '%s': %s", c->pat, why);
}

/* "[:name:]" at c->i inside a class. */
static int parse_posix_class(struct compiler *c, uint8_t *set)
{
	const char *name = c->pat + c->i + 2;
	const char *end = strstr(name, ":]");
	if (!end || !posix_class_known(name, (size_t)(end - name)))
		return bad(c, "unknown character class");
	for (unsigned b = 0; b < 256; b++)
		if (in_posix_class(name, (size_t)(end - name), b))
			set_bit(set, b);
	c->i = (size_t)(end + 2 - c->pat);
	return 0;
}

/* One possibly escaped byte of a class at c->i. */
static int class_byte(struct compiler *c, unsigned *out)
{
	if (c->pat[c->i] == '\\' && ++c->i >= c->len)
		return bad(c, "unterminated '['");
	*out = (uint8_t)c->pat[c->i++];
	return 0;
}

/* A class; c->i is just past the '['. */
static int parse_class(struct compiler *c, uint8_t *set)
{
	bool neg = c->pat[c->i] == '!' || c->pat[c->i] == '^';
	int r;

	c->i += neg;
	for (bool first = true;; first = false) {
		unsigned lo = 0, hi = 0;
		if (c->i >= c->len)
			return bad(c, "unterminated '['");
		if (c->pat[c->i] == ']' && !first) {
			c->i++;
			break;
		}
		if (c->pat[c->i] == '[' && c->pat[c->i + 1] == ':') {
			if ((r = parse_posix_class(c, set)) < 0)
				return r;
			continue;
		}
		if ((r = class_byte(c, &lo)) < 0)
			return r;
		hi = lo;
		if (c->pat[c->i] == '-' && c->i + 1 < c->len && c->pat[c->i + 1] != ']') {
			c->i++;
			if ((r = class_byte(c, &hi)) < 0)
				return r;
		}
		for (unsigned b = lo; b <= hi; b++)
			set_bit(set, b);
	}
	if (c->icase)
		fold_set(set); /* before negating: [!a] is neither a nor A */
	if (neg)
		for (size_t k = 0; k < 32; k++)
			set[k] = (uint8_t)~set[k];
	return 0;
}

static struct comp *cur_comp(struct compiler *c)
{
	return &c->p->comps[c->p->ncomps - 1];
}

static void push_atom(struct compiler *c, struct atom a)
{
	struct pattern *p = c->p;
	struct comp *k = cur_comp(c);
	bool letter = (a.c >= 'a' && a.c <= 'z') || (a.c >= 'A' && a.c <= 'Z');
	if (c->icase && a.kind == A_LIT && letter) {
		/* Each byte of pattern has a set of its own to turn into. */
		memset(p->sets[p->nsets], 0, 32);
		set_bit(p->sets[p->nsets], a.c);
		fold_set(p->sets[p->nsets]);
		a = (struct atom){ .kind = A_SET, .set = (uint16_t)p->nsets++ };
	}
	if (a.kind == A_STAR) {
		c->comp_stars++;
		if (k->n > 0 && p->atoms[p->natoms - 1].kind == A_STAR)
			return; /* "**" inside a component is just '*' */
	} else {
		c->comp_other++;
	}
	p->atoms[p->natoms++] = a;
	k->n++;
}

static int push_comp(struct compiler *c, bool dstar)
{
	struct pattern *p = c->p;
	if (p->ncomps > 0 && cur_comp(c)->n == 0 && !cur_comp(c)->dstar)
		p->ncomps--; /* an empty component ("a//b", trailing '/') */
	if (p->ncomps > 0 && dstar && cur_comp(c)->dstar)
		return 0; /* "**" twice in a row means the same */
	if (p->ncomps >= PATTERN_MAX_COMPS)
		return bad(c, "too many components");
	p->comps[p->ncomps++] = (struct comp){ .first = (uint32_t)p->natoms, .dstar = dstar };
	c->comp_stars = c->comp_other = 0;
	return 0;
}

/* A component made of exactly two unescaped stars is "**". */
static void end_comp(struct compiler *c)
{
	struct comp *k = cur_comp(c);
	if (c->comp_stars == 2 && c->comp_other == 0) {
		c->p->natoms -= k->n;
		*k = (struct comp){ .first = (uint32_t)c->p->natoms, .dstar = true };
		if (c->p->ncomps > 1 && c->p->comps[c->p->ncomps - 2].dstar)
			c->p->ncomps--;
	}
}

static int parse_atom(struct compiler *c)
{
	struct pattern *p = c->p;
	char ch = c->pat[c->i++];
	int r;

	switch (ch) {
	case '*':
		push_atom(c, (struct atom){ .kind = A_STAR });
		return 0;
	case '?':
		memset(p->sets[p->nsets], 0xff, 32);
		push_atom(c, (struct atom){ .kind = A_SET, .set = (uint16_t)p->nsets++ });
		return 0;
	case '[':
		memset(p->sets[p->nsets], 0, 32);
		if ((r = parse_class(c, p->sets[p->nsets])) < 0)
			return r;
		push_atom(c, (struct atom){ .kind = A_SET, .set = (uint16_t)p->nsets++ });
		return 0;
	case '\\':
		if (c->i >= c->len)
			return bad(c, "trailing '\\'");
		ch = c->pat[c->i++];
		if (ch == '/')
			break; /* a quoted '/' still separates: no name holds one */
		push_atom(c, (struct atom){ .kind = A_LIT, .c = (uint8_t)ch });
		return 0;
	case '/':
		break;
	default:
		push_atom(c, (struct atom){ .kind = A_LIT, .c = (uint8_t)ch });
		return 0;
	}
	end_comp(c);
	return push_comp(c, false);
}

static int compile(struct pattern *p, const char *pat, size_t len, bool icase)
{
	struct compiler c = { .pat = pat, .len = len, .p = p, .icase = icase };
	bool anchored = pat[0] == '/';
	int r;

	/* Each atom, class and component takes at least one byte of pattern (+1
	 * for the leading "**" and the first component). */
	p->atoms = calloc(len, sizeof(*p->atoms));
	p->sets = calloc(len, sizeof(*p->sets));
	p->comps = calloc(len + 2, sizeof(*p->comps));
	if (!p->atoms || !p->sets || !p->comps)
		return cairn_err_set(-ENOMEM, "out of memory");
	if (!anchored && (r = push_comp(&c, true)) < 0)
		return r;
	if ((r = push_comp(&c, false)) < 0)
		return r;
	while (c.i < len)
		if ((r = parse_atom(&c)) < 0)
			return r;
	end_comp(&c);
	if (cur_comp(&c)->n == 0 && !cur_comp(&c)->dstar)
		p->ncomps--;
	return 0;
}

static int add_from(struct pattern_list *l, const char *pat, const char *origin, unsigned flags)
{
	struct pattern p = { 0 };
	size_t len = strlen(pat);

	if (len == 0)
		return cairn_err_set(-EINVAL, "empty pattern");
	if (len > PATTERN_MAX_LEN)
		return cairn_err_set(-EINVAL, "pattern longer than %d bytes", PATTERN_MAX_LEN);
	struct pattern *v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	l->v = v;
	int r = compile(&p, pat, len, flags & PATTERN_ICASE);
	p.flags = flags;
	if (r >= 0 && (!(p.text = strdup(pat)) || (origin && !(p.origin = strdup(origin)))))
		r = cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0) {
		pattern_release(&p);
		return r;
	}
	l->v[l->n++] = p;
	return 0;
}

int pattern_list_add(struct pattern_list *l, const char *pat)
{
	return add_from(l, pat, NULL, 0);
}

int pattern_list_add_flags(struct pattern_list *l, const char *pat, unsigned flags)
{
	return add_from(l, pat, NULL, flags);
}

const char *pattern_list_text(const struct pattern_list *l, size_t i, const char **origin)
{
	*origin = l->v[i].origin;
	return l->v[i].text;
}

unsigned pattern_list_flags(const struct pattern_list *l, size_t i)
{
	return l->v[i].flags;
}

static bool blank_line(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t')
			return false;
	return true;
}

static int add_line(struct pattern_list *l, const char *path, size_t lineno, const char *s,
                    size_t n, unsigned flags)
{
	if (n > 0 && s[n - 1] == '\r')
		n--;
	if (n == 0 || s[0] == '#' || blank_line(s, n))
		return 0;
	if (memchr(s, '\0', n))
		return cairn_err_set(-EINVAL, "'%s' line %zu: NUL byte in pattern", path, lineno);
	_cleanup_free_ char *pat = strndup(s, n);
	char origin[4200];
	if (!pat)
		return cairn_err_set(-ENOMEM, "out of memory");
	snprintf(origin, sizeof(origin), "%s:%zu", path, lineno);
	int r = add_from(l, pat, origin, flags);
	if (r < 0)
		return cairn_err_wrap(r, "'%s' line %zu", path, lineno);
	return 0;
}

int pattern_list_add_file(struct pattern_list *l, const char *path)
{
	return pattern_list_add_file_flags(l, path, 0);
}

int pattern_list_add_file_flags(struct pattern_list *l, const char *path, unsigned flags)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	int r = cairn_file_slurp(path, PATTERN_FILE_MAX, &b);
	if (r < 0)
		return cairn_err_wrap(r, "cannot read pattern file '%s'", path);
	const char *s = (const char *)b.data;
	size_t left = b.len, lineno = 0;
	while (left > 0) {
		const char *nl = memchr(s, '\n', left);
		size_t n = nl ? (size_t)(nl - s) : left;
		if ((r = add_line(l, path, ++lineno, s, n, flags)) < 0)
			return r;
		s += n + (nl != NULL);
		left -= n + (nl != NULL);
	}
	return 0;
}

/* ---- matching ----------------------------------------------------------- */

static bool atom_ok(const struct pattern *p, const struct atom *a, uint8_t c)
{
	if (a->kind == A_LIT)
		return a->c == c;
	return (p->sets[a->set][c >> 3] >> (c & 7)) & 1;
}

/* One glob component against one path component (no '/' in either). */
static bool comp_match(const struct pattern *p, const struct comp *k, const uint8_t *s, size_t n)
{
	const struct atom *a = p->atoms + k->first;
	size_t m = k->n, pi = 0, si = 0, star = SIZE_MAX, mark = 0;

	while (si < n) {
		if (pi < m && a[pi].kind == A_STAR) {
			star = pi++;
			mark = si;
		} else if (pi < m && atom_ok(p, &a[pi], s[si])) {
			pi++;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star + 1; /* let the last star swallow one more byte */
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < m && a[pi].kind == A_STAR)
		pi++;
	return pi == m;
}

static bool st_has(const struct states *s, size_t i)
{
	return (s->w[i / 64] >> (i % 64)) & 1;
}

static void st_add(struct states *s, size_t i)
{
	s->w[i / 64] |= (uint64_t)1 << (i % 64);
}

static void st_del(struct states *s, size_t i)
{
	s->w[i / 64] &= ~((uint64_t)1 << (i % 64));
}

static bool st_empty(const struct states *s)
{
	for (size_t i = 0; i < STATE_WORDS; i++)
		if (s->w[i])
			return false;
	return true;
}

/* "**" may match nothing: whoever reaches it also stands past it. */
static void closure(const struct pattern *p, struct states *s)
{
	for (size_t i = 0; i < p->ncomps; i++)
		if (p->comps[i].dstar && st_has(s, i))
			st_add(s, i + 1);
}

static void step(const struct pattern *p, struct states *s, const uint8_t *c, size_t n)
{
	struct states next = { { 0 } };
	for (size_t i = 0; i < p->ncomps; i++) {
		if (!st_has(s, i))
			continue;
		if (p->comps[i].dstar)
			st_add(&next, i);
		else if (comp_match(p, &p->comps[i], c, n))
			st_add(&next, i + 1);
	}
	closure(p, &next);
	*s = next;
}

/* 1: a prefix of path (maybe all of it) longer than from bytes matches; 0: path
 * may lead to a match below it; -1: nothing under path can match. A match that
 * ends within the first from bytes does not count: the walk goes on past it. */
static int pattern_run(const struct pattern *p, const uint8_t *path, size_t len, size_t from)
{
	struct states s = { { 0 } };
	size_t i = 0;

	st_add(&s, 0);
	closure(p, &s);
	for (;;) {
		if (st_has(&s, p->ncomps)) {
			if (from == 0 || i > from)
				return 1;
			st_del(&s, p->ncomps);
			if (st_empty(&s))
				return -1;
		}
		while (i < len && path[i] == '/')
			i++;
		if (i == len)
			return 0;
		size_t start = i;
		while (i < len && path[i] != '/')
			i++;
		step(p, &s, path + start, i - start);
		if (st_empty(&s))
			return -1;
	}
}

long pattern_list_find_below(const struct pattern_list *l, const char *path, size_t len,
                             size_t from)
{
	for (size_t i = 0; i < l->n; i++)
		if (pattern_run(&l->v[i], (const uint8_t *)path, len, from) == 1)
			return (long)i;
	return -1;
}

long pattern_list_find(const struct pattern_list *l, const char *path, size_t len)
{
	return pattern_list_find_below(l, path, len, 0);
}

bool pattern_list_match(const struct pattern_list *l, const char *path, size_t len)
{
	return pattern_list_find(l, path, len) >= 0;
}

bool pattern_list_match_below(const struct pattern_list *l, const char *path, size_t len)
{
	for (size_t i = 0; i < l->n; i++)
		if (pattern_run(&l->v[i], (const uint8_t *)path, len, 0) >= 0)
			return true;
	return false;
}
