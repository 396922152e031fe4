/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* Key files keys/<16 hex> (FORMAT.md §3.2): unlocking, and the key commands. */
#include "repo.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "keyfile.h"

/* The hints, one per kind: a write-only host's backups must not make every
 * admin open try their key first (FORMAT.md §3.2). */
#define LAST_KEY "index/last-key"
#define LAST_KEY_WO "index/last-key-wo"

/* Key file names, sorted so unlocking tries them in a stable order. */
struct names {
	char (*v)[17];
	size_t n, cap;
};

static int add_name(const struct cairn_obj_info *o, void *payload)
{
	struct names *l = payload;
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 8;
		char(*v)[17] = reallocarray(l->v, cap, sizeof(*v));
		if (!v)
			return cairn_err_set(-ENOMEM, "out of memory");
		l->v = v;
		l->cap = cap;
	}
	memcpy(l->v[l->n++], o->name, 17); /* 16 hex digits and the NUL */
	return 0;
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b); /* elements are char[17] */
}

static int list_names(cairn_repo *repo, struct names *out)
{
	int r = cairn_storage_list(repo->st, CAIRN_OBJ_KEY, add_name, out);
	if (r < 0)
		return r;
	if (out->n > 1)
		qsort(out->v, out->n, sizeof(*out->v), by_name);
	return 0;
}

/* r's message about key file name: "key file 'name': why" (the parser's
 * messages begin with "key file: "). */
static int key_err(int r, const char *name)
{
	char why[512];
	const char *m = cairn_err_msg();
	snprintf(why, sizeof(why), "%s", strncmp(m, "key file: ", 10) == 0 ? m + 10 : m);
	return cairn_err_set(r, "key file '%s': %s", name, why);
}

static int read_key(cairn_repo *repo, const char *name, struct cairn_keyfile *k,
                    struct cairn_buf *raw)
{
	int r = cairn_repo__get_object(repo, CAIRN_OBJ_KEY, name, CAIRN_KEYFILE_MAX, raw);
	if (r == -EFBIG)
		r = cairn_err_set(-EBADMSG, "key file '%s' is too large", name);
	if (r >= 0)
		r = cairn_keyfile__parse(k, raw->data, raw->len);
	return r < 0 ? key_err(r, name) : 0;
}

/* ---- the key that opened the repository last --------------------------------- */

/* A hint kept in the local state (a cache, like the index), so that an open does
 * not first run scrypt on every key file that sorts before it, and an open of a
 * remote repository needs no listing of its keys. Absent or garbage: no hint. */
static void last_key_read(const cairn_repo *repo, const char *file, char name[17])
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char p[PATH_MAX];

	name[0] = '\0';
	if (cairn_repo__path(repo, p, sizeof(p), "%s", file) < 0 ||
	    cairn_file_slurp(p, 64, &b) < 0 || b.len < 16 || (b.len > 16 && b.data[16] != '\n'))
		return;
	memcpy(name, b.data, 16);
	name[16] = '\0';
	if (!cairn_obj_name_ok(CAIRN_OBJ_KEY, name))
		name[0] = '\0';
}

static void remember(const char *state, const char *file, const char *name, bool mkdir_index)
{
	char p[PATH_MAX], tmp[PATH_MAX], line[18];
	if (snprintf(p, sizeof(p), "%s/index", state) >= (int)sizeof(p) ||
	    (mkdir_index && cairn_mkdir_p(p, 0700) < 0) ||
	    snprintf(p, sizeof(p), "%s/%s", state, file) >= (int)sizeof(p) ||
	    snprintf(tmp, sizeof(tmp), "%s/tmp", state) >= (int)sizeof(tmp))
		return;
	snprintf(line, sizeof(line), "%s\n", name);
	if (cairn_file_write_atomic(p, tmp, line, 17) < 0)
		log_debug("cannot remember the key in use: %s", cairn_err_msg());
}

void cairn_repo__remember_key(const char *state, const char *name, bool mkdir_index)
{
	remember(state, LAST_KEY, name, mkdir_index);
}

/* Best effort: a read-only file system, a directory we may not write or a
 * missing index/ only cost the hint, silently. A read-only command writes it
 * too: the hint is a cache, and a stale one costs every later open. A remote
 * repository's hint is in its cache, whose index/ a first open has not made
 * yet: so that the next command lists no keys. Only an open with a key of
 * the hint's kind writes it. */
static void last_key_write(const cairn_repo *repo, int kind)
{
	const char *file = kind == CAIRN_KEY_WRITE_ONLY ? LAST_KEY_WO : LAST_KEY;
	char old[17];
	last_key_read(repo, file, old);
	if (strcmp(old, repo->key_name) != 0)
		remember(repo->state, file, repo->key_name, repo->cache != NULL);
}

/* ---- unlocking ----------------------------------------------------------------- */

/* A key file served from a cache (the hint, tried without a listing) may have
 * been removed or replaced in the storage since: a key change made elsewhere
 * must take effect here too (FORMAT.md §3.2). One HEAD, as for the config.
 * 0 still there and the same; -EKEYREVOKED removed; -ESTALE replaced (the
 * cached copy is dropped, for a fresh read). */
static int confirm_cached(cairn_repo *repo, const char *name, const struct cairn_buf *kf)
{
	struct cairn_obj_info info = { 0 };
	int r = cairn_storage_stat(repo->st, CAIRN_OBJ_KEY, name, &info);

	if (r == -ENOENT) {
		cairn_cache__drop(repo->cache, CAIRN_OBJ_KEY, name);
		return cairn_err_set(
		        -EKEYREVOKED,
		        "key file '%s' of this password was removed from the repository", name);
	}
	if (r < 0)
		return r;
	if (info.size == kf->len && (!info.etag[0] || cairn_repo__md5_is(kf, info.etag)))
		return 0;
	cairn_cache__drop(repo->cache, CAIRN_OBJ_KEY, name);
	return -ESTALE;
}

/* A cached key file that did not open (error r) may be a download damaged
 * on the wire rather than another password's: one HEAD tells, and a copy that
 * differs from the storage's is dropped for a fresh read. r's message stays. */
static bool damaged_copy(cairn_repo *repo, const char *name, const struct cairn_buf *kf, int r)
{
	char why[512];
	snprintf(why, sizeof(why), "%s", cairn_err_msg());
	int c = confirm_cached(repo, name, kf);
	cairn_err_set(r, "%s", why);
	return c == -ESTALE;
}

/* Try one key file: 0 unlocked, -EKEYREJECTED another password's, other < 0
 * unreadable (corrupt, or refused for its cost with a warning), or removed
 * from the storage (-EKEYREVOKED). unlisted: name does not come from a listing
 * of the storage, so a cached copy is confirmed there. */
static int try_key(cairn_repo *repo, const char *name, const char *pw, size_t pwlen,
                   struct cairn_key_secret *out, bool unlisted)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	bool cached =
	        repo->cache && !repo->offline && cairn_cache__has(repo->cache, CAIRN_OBJ_KEY, name);
	int r = read_key(repo, name, &k, &kf);

	if (r >= 0 && cairn_keyfile__too_costly(&k)) {
		cairn_repo__warn(
		        repo,
		        "key file '%s/keys/%s' skipped: its scrypt cost (log2(N) %u, r %u, "
		        "p %u) is above the limit of log2(N) %d and %llu GiB",
		        cairn_storage_url(repo->st), name, k.log2n, k.r, k.p, CAIRN_KDF_LOG2N_MAX,
		        CAIRN_KDF_COST_MAX >> 30);
		return cairn_err_set(-EBADMSG,
		                     "key file '%s': its scrypt cost is above the limit of "
		                     "log2(N) %d and %llu GiB",
		                     name, CAIRN_KDF_LOG2N_MAX, CAIRN_KDF_COST_MAX >> 30);
	}
	if (r >= 0 && (r = cairn_keyfile__unwrap_secret(kf.data, kf.len, pw, pwlen, out)) < 0 &&
	    r != -EKEYREJECTED)
		r = key_err(r, name);
	if (r >= 0 && cached && unlisted && (r = confirm_cached(repo, name, &kf)) < 0)
		OPENSSL_cleanse(out, sizeof(*out));
	if (r < 0 && r != -ESTALE && cached && kf.len && damaged_copy(repo, name, &kf, r))
		r = -ESTALE;
	if (r == -ESTALE)
		return try_key(repo, name, pw, pwlen, out, false);
	if (r < 0 && r != -EKEYREJECTED)
		log_debug("key file '%s' skipped: %s", name, cairn_err_msg());
	return r;
}

/* A write-only key authenticates the config by its hash (FORMAT.md §4). */
static int verify_config_hash(const cairn_repo *repo, const uint8_t want[32])
{
	uint8_t md[32];
	int r = cairn_sha256(repo->config_text, strlen(repo->config_text), md);
	if (r >= 0 && !cairn_crypt__equal(md, want, sizeof(md)))
		r = cairn_err_set(-EBADMSG, "config does not match the write-only key's");
	return r;
}

/* The key derives the repository's keys, and they authenticate its config. */
static int accept_key(cairn_repo *repo, const struct cairn_key_secret *s)
{
	int r;
	if (s->kind == CAIRN_KEY_WRITE_ONLY)
		r = cairn_crypt__derive_write_only(&repo->keys, &s->wo, repo->cfg.id);
	else
		r = cairn_crypt__derive(&repo->keys, s->master, repo->cfg.id);
	if (r >= 0 && s->kind == CAIRN_KEY_WRITE_ONLY)
		r = verify_config_hash(repo, s->wo.config_sha256);
	else if (r >= 0)
		r = cairn_config__verify(&repo->cfg, repo->config_text, repo->keys.cfg);
	if (r >= 0)
		return 0;
	cairn_crypt__wipe(&repo->keys);
	return cairn_err_wrap(r, "repository '%s'", cairn_storage_url(repo->st));
}

/* What the key files tried so far said, for the error when none serves. */
struct unlock_state {
	const char *pw;
	size_t pwlen;
	bool allow_write_only;
	bool rejected;   /* a key file of another password */
	bool wrong_kind; /* a write-only key opened where a full key is needed */
	int refused;     /* a key file that opened but whose config check failed */
	char refused_msg[512];
	char removed[17];  /* the remembered key file, gone from the storage */
	char wo_later[17]; /* a write-only key that opened while a full one is preferred */
	char reason[512];  /* the first failure of a key file other than the password's */
};

static int unlocked(cairn_repo *repo, const char *name, int kind)
{
	snprintf(repo->key_name, sizeof(repo->key_name), "%s", name);
	last_key_write(repo, kind);
	return 0;
}

/* One key file: 0 when it opened and serves (repo->keys set), else < 0 with
 * what it said noted in u, so that the next one is tried (a write-only or a
 * foreign key file with the same password must not stop the search). */
static int try_one(cairn_repo *repo, struct unlock_state *u, const char *name, bool unlisted,
                   bool full_first)
{
	struct cairn_key_secret s = { 0 };
	int r = try_key(repo, name, u->pw, u->pwlen, &s, unlisted);

	if (r == -EKEYREJECTED)
		u->rejected = true;
	else if (r == -EKEYREVOKED)
		snprintf(u->removed, sizeof(u->removed), "%s", name);
	else if (r < 0 && !u->reason[0] && !(unlisted && r == -ENOENT))
		/* Said when no key file serves: a right password whose key file
		 * cannot be read (a newer version, scrypt out of memory) must not
		 * pass for a wrong one. A stale hint is no reason. */
		snprintf(u->reason, sizeof(u->reason), "%s", cairn_err_msg());
	if (r >= 0 && s.kind == CAIRN_KEY_WRITE_ONLY && u->allow_write_only && full_first) {
		/* The admin's password may open a write-only key too: a full key
		 * of the same password comes first. */
		if (!u->wo_later[0])
			snprintf(u->wo_later, sizeof(u->wo_later), "%s", name);
		r = -EAGAIN;
	} else if (r >= 0 && s.kind == CAIRN_KEY_WRITE_ONLY && !u->allow_write_only) {
		log_debug("key file '%s' skipped: a write-only key", name);
		u->wrong_kind = true;
		r = -EACCES;
	} else if (r >= 0 && (r = accept_key(repo, &s)) < 0) {
		log_debug("key file '%s' skipped: %s", name, cairn_err_msg());
		if (!u->refused) {
			u->refused = r;
			snprintf(u->refused_msg, sizeof(u->refused_msg), "%s", cairn_err_msg());
		}
	}
	int kind = s.kind;
	OPENSSL_cleanse(&s, sizeof(s));
	return r < 0 ? r : unlocked(repo, name, kind);
}

static int none_served(cairn_repo *repo, const struct unlock_state *u, size_t listed)
{
	if (u->refused)
		return cairn_err_set(u->refused, "%s", u->refused_msg);
	if (u->wrong_kind)
		return cairn_crypt__refuse_write_only();
	if (u->removed[0])
		return cairn_err_set(-EKEYREJECTED,
		                     "wrong password: key file '%s' of this password was removed "
		                     "from the repository",
		                     u->removed);
	if (listed == 0)
		return cairn_err_set(-EBADMSG, "repository '%s' has no key files",
		                     cairn_storage_url(repo->st));
	if (!u->rejected && u->reason[0])
		return cairn_err_set(-EBADMSG, "no readable key file in '%s': %s",
		                     cairn_storage_url(repo->st), u->reason);
	if (!u->rejected)
		return cairn_err_set(-EBADMSG, "no readable key file in '%s'",
		                     cairn_storage_url(repo->st));
	if (u->reason[0])
		return cairn_err_set(-EKEYREJECTED, "wrong password (%s)", u->reason);
	return cairn_err_set(-EKEYREJECTED, "wrong password");
}

/* The remembered keys first, without a listing (a request on S3): an admin
 * command tries the full key's hint, a backup the write-only key's and then
 * the full key's. Then the others in name order, a full key before a
 * write-only one of the same password. */
int cairn_repo__unlock(cairn_repo *repo, const char *pw, size_t pwlen, bool allow_write_only)
{
	struct unlock_state u = { .pw = pw, .pwlen = pwlen, .allow_write_only = allow_write_only };
	struct names l = { 0 };
	char hints[2][17] = { "", "" };

	if (allow_write_only)
		last_key_read(repo, LAST_KEY_WO, hints[0]);
	last_key_read(repo, LAST_KEY, hints[1]);
	for (size_t h = 0; h < 2; h++)
		if (hints[h][0] && (h == 0 || strcmp(hints[0], hints[1]) != 0) &&
		    try_one(repo, &u, hints[h], true, false) >= 0)
			return 0;
	int r = list_names(repo, &l);
	_cleanup_free_ char(*names)[17] = l.v;
	if (r < 0)
		return r;
	for (size_t i = 0; i < l.n; i++) {
		if (strcmp(names[i], hints[0]) == 0 || strcmp(names[i], hints[1]) == 0)
			continue; /* tried first */
		if (try_one(repo, &u, names[i], false, true) >= 0)
			return 0;
	}
	if (u.wo_later[0] && try_one(repo, &u, u.wo_later, false, false) >= 0)
		return 0;
	return none_served(repo, &u, l.n);
}

/* ---- the key commands ------------------------------------------------------------ */

static void default_label(char *out, size_t n)
{
	char host[256] = "localhost";
	const char *user = getenv("USER");

	gethostname(host, sizeof(host) - 1);
	snprintf(out, n, "%s@%s", user && *user ? user : "root", host);
}

int cairn_repo__write_key(cairn_storage *st, cairn_cache *cache, const struct cairn_key_secret *s,
                          const char *pw, size_t pwlen, int log2n, const char *label,
                          char name_out[17])
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	char def[300];
	uint8_t rnd[8];

	if (!label) {
		default_label(def, sizeof(def));
		label = def;
	}
	int r = cairn_keyfile__create_secret(&kf, s, pw, pwlen, log2n, label);
	if (r < 0 || (r = cairn_crypt__random(rnd, sizeof(rnd))) < 0)
		return r;
	cairn_hex(name_out, rnd, sizeof(rnd));
	if ((r = cairn_storage_put(st, CAIRN_OBJ_KEY, name_out, kf.data, kf.len)) >= 0 && cache)
		cairn_cache__put(cache, CAIRN_OBJ_KEY, name_out, kf.data, kf.len);
	return r;
}

int cairn_key_list(cairn_repo *repo, struct cairn_key_info **out, size_t *n)
{
	struct names l = { 0 };
	int r = list_names(repo, &l);
	_cleanup_free_ char(*names)[17] = l.v;
	if (r < 0)
		return r;
	_cleanup_free_ struct cairn_key_info *info = calloc(l.n ? l.n : 1, sizeof(*info));
	if (!info)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l.n; i++) {
		_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
		struct cairn_keyfile k;
		snprintf(info[i].name, sizeof(info[i].name), "%s", names[i]);
		info[i].current = strcmp(names[i], repo->key_name) == 0;
		if ((r = read_key(repo, names[i], &k, &kf)) == -ENOMEM)
			return r;
		if (r < 0) {
			/* One bad key file must not hide the others. */
			snprintf(info[i].unreadable, sizeof(info[i].unreadable), "%s",
			         cairn_err_msg());
			info[i].kind = -1;
			continue;
		}
		snprintf(info[i].label, sizeof(info[i].label), "%s", k.label);
		info[i].created = k.created;
		info[i].kdf_log2n = k.log2n;
		info[i].r = k.r;
		info[i].p = k.p;
		info[i].kind = k.kind;
	}
	*out = TAKE_PTR(info);
	*n = l.n;
	return 0;
}

static int key_log2n_current(cairn_repo *repo)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;

	if (read_key(repo, repo->key_name, &k, &kf) < 0)
		return CAIRN_KDF_LOG2N_DEFAULT;
	return k.log2n;
}

static bool has_name(const struct names *l, const char *name)
{
	for (size_t i = 0; i < l->n; i++)
		if (strcmp(l->v[i], name) == 0)
			return true;
	return false;
}

/* Key changes run under a keys lock (FORMAT.md §11) against the storage's own
 * listing, not a cache: another admin may have removed the key in use, and
 * acting on its behalf would undo that, or leave no full key. */
static int key_in_use_present(cairn_repo *repo, struct names *l)
{
	int r = list_names(repo, l);
	if (r >= 0 && !has_name(l, repo->key_name))
		r = cairn_err_set(-EKEYREVOKED,
		                  "the key this password opened was removed from the repository");
	return r;
}

/* Full key files that parse, besides skip: what can still open the repository
 * for reading and key changes once skip is gone. */
static size_t full_keys_besides(cairn_repo *repo, const struct names *l, const char *skip)
{
	size_t n = 0;
	for (size_t i = 0; i < l->n; i++) {
		_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
		struct cairn_keyfile k;
		if (strcmp(l->v[i], skip) != 0 && read_key(repo, l->v[i], &k, &kf) >= 0 &&
		    k.kind == CAIRN_KEY_FULL)
			n++;
	}
	return n;
}

/* Adding, removing and changing keys needs a full key: a write-only one has
 * no master key to wrap, and must not lock others out. *l gets the storage's
 * listing; the caller frees l->v. */
static int key_change_check(cairn_repo *repo, struct names *l)
{
	int r = cairn_repo__writable(repo);
	if (r >= 0 && repo->keys.write_only)
		r = cairn_crypt__refuse_write_only();
	return r < 0 ? r : key_in_use_present(repo, l);
}

static int key_add(cairn_repo *repo, int kind, const char *pw, size_t pwlen, const char *label,
                   int log2n, char name_out[17])
{
	struct cairn_key_secret s = { .kind = (uint8_t)kind };
	struct names l = { 0 };
	int r = key_change_check(repo, &l);
	free(l.v);
	if (r < 0)
		return r;
	if (kind == CAIRN_KEY_WRITE_ONLY)
		r = cairn_crypt__write_only_secret(&s.wo, &repo->keys, repo->config_text,
		                                   strlen(repo->config_text));
	else
		memcpy(s.master, repo->keys.master, CAIRN_KEY_SIZE);
	/* New keys are as strong as the one in use (tests init with a cheap KDF),
	 * unless a cost is asked for: the way to raise it (FORMAT.md §3.3). */
	if (r >= 0)
		r = cairn_repo__write_key(repo->st, repo->cache, &s, pw, pwlen,
		                          log2n ? log2n : key_log2n_current(repo), label, name_out);
	OPENSSL_cleanse(&s, sizeof(s));
	return r;
}

int cairn_key_add(cairn_repo *repo, const char *pw, size_t pwlen, const char *label, int kdf_log2n,
                  char name_out[17])
{
	return key_add(repo, CAIRN_KEY_FULL, pw, pwlen, label, kdf_log2n, name_out);
}

int cairn_key_add_write_only(cairn_repo *repo, const char *pw, size_t pwlen, const char *label,
                             int kdf_log2n, char name_out[17])
{
	return key_add(repo, CAIRN_KEY_WRITE_ONLY, pw, pwlen, label, kdf_log2n, name_out);
}

int cairn_key_remove(cairn_repo *repo, const char *name)
{
	struct names l = { 0 };

	if (!cairn_obj_name_ok(CAIRN_OBJ_KEY, name))
		return cairn_err_set(-EINVAL, "'%s' is not a key name (16 hex digits)", name);
	int r = key_change_check(repo, &l);
	_cleanup_free_ char(*names)[17] = l.v;
	if (r < 0)
		return r;
	if (!has_name(&l, name))
		return cairn_err_set(-ENOENT, "no key '%s'", name);
	/* Write-only and unreadable key files cannot open the repository for reading
	 * or key changes: they do not count. */
	if (full_keys_besides(repo, &l, name) == 0)
		return cairn_err_set(-EBUSY, "cannot remove the last full key");
	if (strcmp(name, repo->key_name) == 0)
		return cairn_err_set(-EBUSY,
		                     "key '%s' is the one in use; unlock with another "
		                     "password to remove it",
		                     name);
	if (repo->cache)
		cairn_cache__drop(repo->cache, CAIRN_OBJ_KEY, name);
	return cairn_storage_remove(repo->st, CAIRN_OBJ_KEY, name);
}

int cairn_key_passwd(cairn_repo *repo, const char *pw, size_t pwlen, const char *label,
                     int kdf_log2n)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	char old[17], name[17];
	struct names l = { 0 };
	int r = key_change_check(repo, &l);

	free(l.v);
	if (r < 0)
		return r;
	snprintf(old, sizeof(old), "%s", repo->key_name);
	/* Add first, then remove: a crash in between leaves both passwords working. */
	/* The label is how keys are told apart: the new file keeps it. */
	if (!label && (r = read_key(repo, old, &k, &kf)) < 0)
		return r;
	if ((r = cairn_key_add(repo, pw, pwlen, label ? label : k.label, kdf_log2n, name)) < 0)
		return r;
	unlocked(repo, name, CAIRN_KEY_FULL);
	if (repo->cache)
		cairn_cache__drop(repo->cache, CAIRN_OBJ_KEY, old);
	if ((r = cairn_storage_remove(repo->st, CAIRN_OBJ_KEY, old)) < 0) {
		/* Half done: the new password works, and so does the old one. */
		char why[512];
		snprintf(why, sizeof(why), "%s", cairn_err_msg());
		return cairn_err_set(r,
		                     "the new password works (key %s), but the old one still "
		                     "does: its key file could not be removed (%s); run 'cairn "
		                     "key remove %s'",
		                     name, why, old);
	}
	return 0;
}
