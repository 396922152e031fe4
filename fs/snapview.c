/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The mount's view of the snapshots: loads each snapshot once, names it by local time. */
#include "snapview.h"

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <limits.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"

#define BAD UINT64_MAX /* known value of a snapshot that failed to load */

struct fs_snapview {
	cairn_repo *repo;
	int64_t refresh_ns;
	pthread_mutex_t lock;
	struct fs_view *cur; /* protected by lock */
	int64_t scanned_at;  /* protected by lock: CLOCK_MONOTONIC ns */
	pthread_mutex_t scan_lock;
	struct cairn_idset known; /* protected by scan_lock: id -> index into snaps, or BAD */
	struct fs_snap **snaps;   /* protected by scan_lock: every snapshot ever loaded */
	size_t nsnaps, cap;       /* protected by scan_lock */
	uint64_t gen;             /* protected by scan_lock */
};

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

void fs_time_name(char out[FS_NAME_SIZE], int64_t time_ns)
{
	/* Floor division, so times before 1970 still name the right second. */
	time_t sec = (time_t)(time_ns / 1000000000 - (time_ns % 1000000000 < 0));
	struct tm tm;
	if (!localtime_r(&sec, &tm) || strftime(out, FS_NAME_SIZE, "%Y-%m-%dT%H:%M:%S", &tm) == 0)
		snprintf(out, FS_NAME_SIZE, "@%lld", (long long)sec);
}

char *fs_view_dir_name(const char *s)
{
	size_t len = strnlen(s, 255), o = 0;
	char *p = malloc(3 * len + 8);
	if (!p)
		return NULL;
	if (len == 0) {
		memcpy(p, "%00", 3);
		o = 3;
	} else if (strcmp(s, ".") == 0 || strcmp(s, "..") == 0) {
		memcpy(p, "%2E", 3); /* then the second dot, if any */
		o = 3;
		s++;
		len--;
	}
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '/' || s[i] == '%') {
			memcpy(p + o, s[i] == '/' ? "%2F" : "%25", 3);
			o += 3;
		} else {
			p[o++] = s[i];
		}
	}
	p[o < 255 ? o : 255] = '\0'; /* a name's limit (then no longer one to one) */
	return p;
}

static void snap_free(struct fs_snap *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->ntags; i++)
		free(s->tags[i]);
	free(s->tags);
	free(s->host);
	free(s);
}

static int snap_from(struct fs_snap **out, const struct cairn_snapshot *cs)
{
	struct fs_snap *s = calloc(1, sizeof(*s));
	if (!s)
		return cairn_err_set(-ENOMEM, "out of memory");
	s->id = cs->id;
	s->root = cs->root;
	s->time_ns = cs->time_ns;
	s->host = fs_view_dir_name(cs->hostname);
	s->tags = calloc(cs->ntags ? cs->ntags : 1, sizeof(*s->tags));
	bool ok = s->host && s->tags;
	for (size_t i = 0; ok && i < cs->ntags; i++, s->ntags++)
		ok = (s->tags[i] = fs_view_dir_name(cs->tags[i])) != NULL;
	if (!ok) {
		snap_free(s);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	*out = s;
	return 0;
}

/* Load a snapshot not seen before; a bad one is logged once and remembered. */
static int learn(struct fs_snapview *c, const struct cairn_id *id)
{
	struct cairn_snapshot *cs = NULL;
	struct fs_snap *s = NULL;
	int r = cairn_repo_snapshot_load(c->repo, id, &cs);
	if (r >= 0) {
		r = snap_from(&s, cs);
		cairn_snapshot_free(cs);
	}
	if (r == -ENOMEM)
		return r;
	if (r < 0) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		log_warn("cannot read snapshot %.8s, not shown: %s", hex, cairn_err_msg());
		return cairn_idset_add(&c->known, id, BAD);
	}
	if (c->nsnaps == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 64;
		struct fs_snap **p = realloc(c->snaps, cap * sizeof(*p));
		if (!p) {
			snap_free(s);
			return cairn_err_set(-ENOMEM, "out of memory");
		}
		c->snaps = p;
		c->cap = cap;
	}
	r = cairn_idset_add(&c->known, id, c->nsnaps);
	if (r < 0) {
		snap_free(s);
		return r;
	}
	c->snaps[c->nsnaps++] = s;
	return 0;
}

static int by_time(const void *a, const void *b)
{
	const struct fs_view_ent *x = a, *y = b;
	if (x->snap->time_ns != y->snap->time_ns)
		return x->snap->time_ns < y->snap->time_ns ? -1 : 1;
	return cairn_id_cmp(&x->snap->id, &y->snap->id);
}

/* Equal names in time order, then ID: the order that gives the suffixes. Equal
 * names come from snapshots in one second, or in an hour repeated when daylight
 * saving time ends. */
static int by_name(const void *a, const void *b)
{
	const struct fs_view_ent *const *x = a, *const *y = b;
	int d = strcmp((*x)->name, (*y)->name);
	return d ? d : by_time(*x, *y);
}

static int by_id(const void *a, const void *b)
{
	const struct fs_view_ent *const *x = a, *const *y = b;
	return cairn_id_cmp(&(*x)->snap->id, &(*y)->snap->id);
}

/* How many leading hex digits two IDs share. */
static size_t common_digits(const struct cairn_id *a, const struct cairn_id *b)
{
	size_t i = 0;
	while (i < CAIRN_ID_SIZE && a->b[i] == b->b[i])
		i++;
	if (i == CAIRN_ID_SIZE)
		return 2 * CAIRN_ID_SIZE;
	return 2 * i + ((a->b[i] >> 4) == (b->b[i] >> 4));
}

/* In ID order, the IDs that share the most leading digits with an ID include
 * one of its neighbours: one digit more than it shares with either makes its
 * prefix unique in the set, and no other ID's prefix can extend it. */
static void name_ids(struct fs_view_ent **idx, size_t n)
{
	qsort(idx, n, sizeof(*idx), by_id);
	for (size_t i = 0; i < n; i++) {
		size_t len = FS_SID_MIN, c;
		if (i > 0 && (c = common_digits(&idx[i]->snap->id, &idx[i - 1]->snap->id)) >= len)
			len = c + 1;
		if (i + 1 < n &&
		    (c = common_digits(&idx[i]->snap->id, &idx[i + 1]->snap->id)) >= len)
			len = c + 1;
		if (len > 2 * CAIRN_ID_SIZE) /* equal IDs: cannot happen in a set */
			len = 2 * CAIRN_ID_SIZE;
		cairn_id_hex(idx[i]->sid, &idx[i]->snap->id);
		idx[i]->sid[len] = '\0';
	}
}

/* A host's snapshots in time order, hosts one after the other. */
static int by_host(const void *a, const void *b)
{
	const struct fs_view_ent *const *x = a, *const *y = b;
	int d = strcmp((*x)->snap->host, (*y)->snap->host);
	return d ? d : by_time(*x, *y);
}

static void gmt_name(char out[FS_GMT_SIZE], int64_t sec)
{
	time_t t = (time_t)sec;
	struct tm tm;
	if (!gmtime_r(&t, &tm) || strftime(out, FS_GMT_SIZE, "@GMT-%Y.%m.%d-%H.%M.%S", &tm) == 0)
		snprintf(out, FS_GMT_SIZE, "@%lld", (long long)sec);
}

/* The format has seconds only, and Samba finds a snapshot by its time: two of
 * one host in one second (small jobs run back to back) cannot share a name, so
 * the later one takes the next second free. Names depend on the set alone. */
static void name_gmt(struct fs_view_ent **idx, size_t n)
{
	qsort(idx, n, sizeof(*idx), by_host);
	int64_t last = 0;
	for (size_t i = 0; i < n; i++) {
		int64_t ns = idx[i]->snap->time_ns;
		int64_t sec = ns / 1000000000 - (ns % 1000000000 < 0);
		bool same_host = i > 0 && strcmp(idx[i]->snap->host, idx[i - 1]->snap->host) == 0;
		if (same_host && sec <= last)
			sec = last + 1;
		last = sec;
		gmt_name(idx[i]->gmt, sec);
	}
}

int fs_view_name(struct fs_view_ent *ents, size_t n)
{
	_cleanup_free_ struct fs_view_ent **idx = calloc(n ? n : 1, sizeof(*idx));
	if (!idx)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		fs_time_name(ents[i].name, ents[i].snap->time_ns);
		idx[i] = &ents[i];
	}
	name_ids(idx, n);
	name_gmt(idx, n);
	qsort(idx, n, sizeof(*idx), by_name);
	/* Each run of equal names is compared with its first entry, which keeps
	 * the bare name: the others already carry their suffix. No suffixed name
	 * can equal a bare one, which ends in ":SS" or is "@<seconds>". */
	for (size_t i = 1, first = 0; i < n; i++) {
		if (strcmp(idx[i]->name, idx[first]->name) != 0) {
			first = i;
			continue;
		}
		size_t len = strlen(idx[i]->name);
		snprintf(idx[i]->name + len, FS_NAME_SIZE - len, "-%zu", i - first);
	}
	return 0;
}

static bool same_view(const struct fs_view *a, const struct fs_view_ent *v, size_t n)
{
	if (!a || a->n != n)
		return false;
	for (size_t i = 0; i < n; i++)
		if (a->v[i].snap != v[i].snap)
			return false;
	return true;
}

static void publish(struct fs_snapview *c, struct fs_view *v)
{
	pthread_mutex_lock(&c->lock);
	struct fs_view *old = c->cur;
	if (v)
		c->cur = v;
	c->scanned_at = mono_ns();
	pthread_mutex_unlock(&c->lock);
	if (v)
		fs_view_put(old);
}

/* When the set changed, for the virtual directories' mtime: the newest
 * snapshot's time at the first scan (the same on every mount), then the moment
 * a rescan saw the change, so that removing an old snapshot moves it too (the
 * kernel keeps a listing until the mtime moves). */
static int64_t changed_at(const struct fs_view *prev, const struct fs_view_ent *ents, size_t m)
{
	int64_t t = m ? ents[m - 1].snap->time_ns : 0;
	struct timespec ts;
	if (!prev)
		return t;
	if (clock_gettime(CLOCK_REALTIME, &ts) == 0 &&
	    (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec > t)
		t = (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
	/* Always later than before, whatever the clocks of the backup hosts say. */
	return t > prev->changed_ns ? t : prev->changed_ns + 1;
}

/* Under scan_lock: read snapshots/, load the new ones, publish a view if the set
 * changed. */
/* A local repository always has snapshots/ (FORMAT.md §2), and its listing
 * takes a missing directory for an empty one: without it the repository is
 * not there (its disk unmounted, moved), and every snapshot would vanish. */
static int local_present(const cairn_repo *repo)
{
	const char *path = cairn_repo_path(repo);
	char dir[PATH_MAX];
	if (cairn_storage_is_url(path))
		return 0;
	if (snprintf(dir, sizeof(dir), "%s/snapshots", path) >= (int)sizeof(dir))
		return cairn_err_set(-ENAMETOOLONG, "repository path too long");
	if (access(dir, F_OK) < 0)
		return cairn_err_set(-errno, "cannot read '%s': %s", dir, strerror(errno));
	return 0;
}

static int scan(struct fs_snapview *c)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	_cleanup_free_ struct fs_view_ent *ents = NULL;
	size_t n = 0, m = 0;
	pthread_mutex_lock(&c->lock);
	bool shown = c->cur && c->cur->n > 0;
	pthread_mutex_unlock(&c->lock);
	/* Only a view with snapshots has something to lose (and a repository
	 * that never had one may lack the directory: cairn sync makes it late). */
	int r = shown ? local_present(c->repo) : 0;
	if (r >= 0)
		r = cairn_repo_snapshot_ids(c->repo, &ids, &n);
	if (r < 0)
		return r;
	ents = calloc(n ? n : 1, sizeof(*ents));
	if (!ents)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		uint64_t *k = cairn_idset_get(&c->known, &ids[i]);
		if (!k && (r = learn(c, &ids[i])) < 0)
			return r;
		k = cairn_idset_get(&c->known, &ids[i]);
		if (k && *k != BAD)
			ents[m++].snap = c->snaps[*k];
	}
	qsort(ents, m, sizeof(*ents), by_time);
	pthread_mutex_lock(&c->lock);
	bool same = same_view(c->cur, ents, m);
	pthread_mutex_unlock(&c->lock);
	if (same) {
		publish(c, NULL);
		return 0;
	}
	if ((r = fs_view_name(ents, m)) < 0)
		return r;
	struct fs_view *v = calloc(1, sizeof(*v));
	if (!v)
		return cairn_err_set(-ENOMEM, "out of memory");
	atomic_init(&v->refs, 1);
	v->gen = ++c->gen;
	pthread_mutex_lock(&c->lock);
	v->changed_ns = changed_at(c->cur, ents, m);
	pthread_mutex_unlock(&c->lock);
	v->n = m;
	v->v = TAKE_PTR(ents);
	publish(c, v);
	return 0;
}

int fs_snapview_new(struct fs_snapview **out, cairn_repo *repo, unsigned refresh_ms)
{
	struct fs_snapview *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->repo = repo;
	c->refresh_ns = (int64_t)refresh_ms * 1000000;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->scan_lock, NULL);
	cairn_idset_init(&c->known);
	int r = scan(c);
	if (r < 0) {
		fs_snapview_free(c);
		return r;
	}
	*out = c;
	return 0;
}

void fs_snapview_free(struct fs_snapview *c)
{
	if (!c)
		return;
	fs_view_put(c->cur);
	for (size_t i = 0; i < c->nsnaps; i++)
		snap_free(c->snaps[i]);
	free(c->snaps);
	cairn_idset_release(&c->known);
	pthread_mutex_destroy(&c->scan_lock);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static struct fs_view *current(struct fs_snapview *c, bool *stale)
{
	pthread_mutex_lock(&c->lock);
	struct fs_view *v = c->cur;
	atomic_fetch_add(&v->refs, 1);
	if (stale)
		*stale = mono_ns() - c->scanned_at >= c->refresh_ns;
	pthread_mutex_unlock(&c->lock);
	return v;
}

struct fs_view *fs_snapview_get(struct fs_snapview *c)
{
	bool stale;
	struct fs_view *v = current(c, &stale);
	/* Whoever gets the scan lock rescans; the others go on with the view they have. */
	if (!stale || pthread_mutex_trylock(&c->scan_lock) != 0)
		return v;
	fs_view_put(v);
	v = current(c, &stale);
	if (stale) {
		int r = scan(c);
		if (r < 0) {
			log_error("cannot rescan snapshots: %s", cairn_err_msg());
			publish(c, NULL); /* retry after the interval, not on every request */
		}
		fs_view_put(v);
		v = current(c, NULL);
	}
	pthread_mutex_unlock(&c->scan_lock);
	return v;
}

struct fs_view *fs_snapview_peek(struct fs_snapview *c)
{
	return current(c, NULL);
}

void fs_view_put(struct fs_view *v)
{
	if (v && atomic_fetch_sub(&v->refs, 1) == 1) {
		free(v->v);
		free(v);
	}
}

const struct fs_view_ent *fs_view_find(const struct fs_view *v, const char *name)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i].name, name) == 0)
			return &v->v[i];
	return NULL;
}

const struct fs_view_ent *fs_view_find_sid(const struct fs_view *v, const char *sid)
{
	for (size_t i = 0; i < v->n; i++)
		if (strcmp(v->v[i].sid, sid) == 0)
			return &v->v[i];
	return NULL;
}

bool fs_snap_has_tag(const struct fs_snap *s, const char *tag)
{
	for (size_t i = 0; i < s->ntags; i++)
		if (strcmp(s->tags[i], tag) == 0)
			return true;
	return false;
}

const struct fs_view_ent *fs_view_latest(const struct fs_view *v, const char *host, const char *tag)
{
	const struct fs_view_ent *best = NULL;
	for (size_t i = 0; i < v->n; i++) {
		const struct fs_view_ent *e = &v->v[i];
		if ((host && strcmp(e->snap->host, host) != 0) ||
		    (tag && !fs_snap_has_tag(e->snap, tag)))
			continue;
		if (!best || by_time(e, best) > 0)
			best = e;
	}
	return best;
}
