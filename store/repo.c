/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository: init, unlock, and the blob write/read paths (FORMAT.md §2-§7). */
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "keyfile.h"
#include "pack.h"
#include "cleanup.h"

/* One pack being filled. A putter takes one from the idle list, so threads append
 * to different packs and never wait on each other's I/O. */
struct packer {
	cairn_packw *w;
	struct packer *next;
};

struct cairn_repo {
	char *path;
	bool read_only;
	bool remote;                  /* packs come from src: only the index is written */
	struct cairn_pack_source src; /* valid when remote */
	struct cairn_config cfg;
	char *config_text;
	struct cairn_keys keys;
	char key_name[17];
	void (*warn)(const char *msg, void *payload); /* may be NULL */
	void *warn_payload;
	cairn_chunker *chunker;
	cairn_index *index;
	atomic_int compression;

	pthread_mutex_t lock;
	struct packer *idle[2];     /* protected by lock: [1] tree packs, [0] data packs */
	struct cairn_idset pending; /* protected by lock: blobs in packs not yet indexed */
	/* The first failed pack write, finish or index commit: code and message. A
	 * dropped pack may hold blobs other puts were told are stored, so every later
	 * put, flush and snapshot save fails with it. Protected by lock. */
	int write_err;
	char write_err_msg[512];
	atomic_uint_fast64_t blobs_written, bytes_written, packs_written; /* statistics */
};

void cairn_repo_stats(const cairn_repo *repo, struct cairn_repo_stats *out)
{
	out->blobs_written = atomic_load_explicit(&repo->blobs_written, memory_order_relaxed);
	out->bytes_written = atomic_load_explicit(&repo->bytes_written, memory_order_relaxed);
	out->packs_written = atomic_load_explicit(&repo->packs_written, memory_order_relaxed);
}

/* snprintf "<dir>/<fmt...>" into out; -ENAMETOOLONG rather than a cut path. */
static int vjoin(char *out, size_t size, const char *dir, const char *fmt, va_list ap)
{
	char rel[PATH_MAX];
	int n = vsnprintf(rel, sizeof(rel), fmt, ap);

	if (n < 0 || (size_t)n >= sizeof(rel) ||
	    snprintf(out, size, "%s/%s", dir, rel) >= (int)size)
		return cairn_err_set(-ENAMETOOLONG, "path too long in repository '%s'", dir);
	return 0;
}

static int join(char *out, size_t size, const char *dir, const char *fmt, ...)
        __attribute__((format(printf, 4, 5)));
static int join(char *out, size_t size, const char *dir, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vjoin(out, size, dir, fmt, ap);
	va_end(ap);
	return r;
}

int cairn_repo__path(const cairn_repo *repo, char *out, size_t size, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vjoin(out, size, repo->path, fmt, ap);
	va_end(ap);
	return r;
}

const struct cairn_keys *cairn_repo__keys(const cairn_repo *repo)
{
	return &repo->keys;
}

const struct cairn_config *cairn_repo__config(const cairn_repo *repo)
{
	return &repo->cfg;
}

cairn_index *cairn_repo__index(cairn_repo *repo)
{
	return repo->index;
}

/* Record r as the write failure of this handle unless one is recorded already. */
static int write_failed(cairn_repo *repo, int r)
{
	pthread_mutex_lock(&repo->lock);
	if (repo->write_err == 0) {
		repo->write_err = r;
		snprintf(repo->write_err_msg, sizeof(repo->write_err_msg), "%s", cairn_err_msg());
	}
	pthread_mutex_unlock(&repo->lock);
	return r;
}

int cairn_repo__write_error(cairn_repo *repo)
{
	char msg[sizeof(repo->write_err_msg)];

	pthread_mutex_lock(&repo->lock);
	int r = repo->write_err;
	memcpy(msg, repo->write_err_msg, sizeof(msg));
	pthread_mutex_unlock(&repo->lock);
	return r < 0 ? cairn_err_set(r, "%s", msg) : 0;
}

bool cairn_repo__read_only(const cairn_repo *repo)
{
	return repo->read_only || repo->remote;
}

const char *cairn_repo_path(const cairn_repo *repo)
{
	return repo->path;
}

const cairn_chunker *cairn_repo_chunker(const cairn_repo *repo)
{
	return repo->chunker;
}

int cairn_repo_compression(const cairn_repo *repo)
{
	return atomic_load(&repo->compression);
}

int cairn_repo_set_compression(cairn_repo *repo, int level)
{
	if (level < 0 || level > 19)
		return cairn_err_set(-EINVAL, "compression level %d is out of range 0..19", level);
	atomic_store(&repo->compression, level);
	return 0;
}

const char *cairn_repo_config_text(const cairn_repo *repo)
{
	return repo->config_text;
}

int cairn_repo_blob_id(const cairn_repo *repo, const void *data, size_t len, struct cairn_id *out)
{
	return cairn_crypt__hmac(repo->keys.id, data, len, out->b);
}

/* ---- config and probing ------------------------------------------------- */

static int read_config(const char *path, struct cairn_buf *text)
{
	char p[PATH_MAX];
	struct stat st;

	if (snprintf(p, sizeof(p), "%s/config", path) >= (int)sizeof(p))
		return cairn_err_set(-ENAMETOOLONG, "repository path too long");
	if (stat(path, &st) < 0)
		return cairn_err_set(-ENOENT, "no repository at '%s': %s", path, strerror(errno));
	int r = cairn_file_slurp(p, CAIRN_CONFIG_MAX, text);
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "no repository at '%s' (no config file)", path);
	if (r == -EFBIG)
		return cairn_err_set(-EBADMSG, "'%s' is not a cairn config (too large)", p);
	if (r < 0)
		return r;
	/* NUL-terminate for the text parser without counting it. */
	if ((r = cairn_buf_put_u8(text, 0)) < 0)
		return r;
	text->len--;
	r = cairn_config__probe((const char *)text->data, text->len);
	if (r < 0)
		return cairn_err_wrap(r, "repository '%s'", path);
	return 0;
}

int cairn_repo_probe(const char *path)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	return read_config(path, &text);
}

/* ---- init --------------------------------------------------------------- */

static int check_empty_target(const char *path)
{
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;

	if (!d)
		return errno == ENOENT ? 0
		                       : cairn_err_set(-errno, "cannot open '%s': %s", path,
		                                       strerror(errno));
	while ((de = readdir(d))) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (strcmp(de->d_name, "config") == 0)
			return cairn_err_set(-EEXIST, "'%s' already holds a repository", path);
		return cairn_err_set(-EEXIST, "'%s' exists and is not empty", path);
	}
	return 0;
}

static void default_label(char *out, size_t n)
{
	char host[256] = "localhost";
	const char *user = getenv("USER");

	gethostname(host, sizeof(host) - 1);
	snprintf(out, n, "%s@%s", user && *user ? user : "root", host);
}

static int init_config(struct cairn_config *cfg, const struct cairn_init_opts *o)
{
	*cfg = (struct cairn_config){
		.version = CAIRN_FORMAT_VERSION,
		.chunk = { CAIRN_CHUNK_MIN_DEFAULT, CAIRN_CHUNK_AVG_DEFAULT,
		           CAIRN_CHUNK_MAX_DEFAULT },
		.compression = CAIRN_COMPRESSION_DEFAULT,
		.pack_size = CAIRN_PACK_SIZE_DEFAULT,
	};
	if (o && o->chunk.avg)
		cfg->chunk = o->chunk;
	if (o && o->compression >= 0)
		cfg->compression = o->compression;
	if (o && o->pack_size)
		cfg->pack_size = o->pack_size;
	int r = cairn_config__check(cfg);
	if (r < 0)
		return r;
	return cairn_crypt__random(cfg->id, sizeof(cfg->id));
}

static int write_key_file(const char *repo, const uint8_t master[CAIRN_KEY_SIZE], const char *pw,
                          size_t pwlen, int log2n, const char *label, char name_out[17])
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	char path[PATH_MAX], tmp[PATH_MAX], def[300];
	uint8_t rnd[8];

	if (!label) {
		default_label(def, sizeof(def));
		label = def;
	}
	int r = cairn_keyfile__create(&kf, master, pw, pwlen, log2n, label);
	if (r < 0 || (r = cairn_crypt__random(rnd, sizeof(rnd))) < 0)
		return r;
	cairn_hex(name_out, rnd, sizeof(rnd));
	if ((r = join(path, sizeof(path), repo, "keys/%s", name_out)) < 0 ||
	    (r = join(tmp, sizeof(tmp), repo, "tmp")) < 0)
		return r;
	return cairn_file_write_atomic(path, tmp, kf.data, kf.len);
}

static int make_layout(const char *path)
{
	static const char *const dirs[] = { "",       "/keys", "/packs", "/snapshots",
		                            "/index", "/tmp",  "/locks" };
	char p[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(dirs); i++) {
		if (snprintf(p, sizeof(p), "%s%s", path, dirs[i]) >= (int)sizeof(p))
			return cairn_err_set(-ENAMETOOLONG, "repository path too long");
		int r = cairn_mkdir_p(p, 0700);
		if (r < 0)
			return r;
	}
	return 0;
}

int cairn_repo_init(const char *path, const char *pw, size_t pwlen, const struct cairn_init_opts *o)
{
	struct cairn_config cfg;
	struct cairn_keys keys;
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	char p[PATH_MAX], tmp[PATH_MAX], name[17];
	int log2n = o && o->kdf_log2n ? o->kdf_log2n : cairn_keyfile__calibrate();
	uint8_t master[CAIRN_KEY_SIZE];
	int r;

	if ((r = check_empty_target(path)) < 0 || (r = init_config(&cfg, o)) < 0)
		return r;
	if ((r = cairn_crypt__random(master, sizeof(master))) < 0 ||
	    (r = cairn_crypt__derive(&keys, master, cfg.id)) < 0)
		return r;
	if ((r = make_layout(path)) < 0 ||
	    (r = write_key_file(path, master, pw, pwlen, log2n, o ? o->key_label : NULL, name)) < 0)
		goto out;
	cairn_index *ix = NULL;
	if ((r = join(p, sizeof(p), path, "index")) < 0 ||
	    (r = cairn_index__open(&ix, p, false, cfg.id)) < 0)
		goto out;
	cairn_index__close(ix);
	/* The config goes last: its presence marks a complete repository. */
	if ((r = join(p, sizeof(p), path, "config")) < 0 ||
	    (r = join(tmp, sizeof(tmp), path, "tmp")) < 0 ||
	    (r = cairn_config__format(&text, &cfg, keys.cfg)) < 0)
		goto out;
	r = cairn_file_write_atomic(p, tmp, text.data, text.len);
out:
	cairn_crypt__wipe(&keys);
	OPENSSL_cleanse(master, sizeof(master));
	return r;
}

/* ---- open --------------------------------------------------------------- */

/* The key file that last opened the repository: a hint kept in index/last-key
 * (a local cache, like the index), so that an open does not first run scrypt on
 * every key file that sorts before it. Absent or garbage: no hint. */
static void last_key_read(const cairn_repo *repo, char name[17])
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char p[PATH_MAX];
	uint8_t raw[8];

	name[0] = '\0';
	if (cairn_repo__path(repo, p, sizeof(p), "index/last-key") < 0 ||
	    cairn_file_slurp(p, 64, &b) < 0 || b.len < 16 || (b.len > 16 && b.data[16] != '\n'))
		return;
	memcpy(name, b.data, 16);
	name[16] = '\0';
	if (cairn_unhex(raw, sizeof(raw), name) < 0)
		name[0] = '\0';
}

/* Best effort: a read-only filesystem or a missing index/ only costs the hint. */
static void last_key_write(const cairn_repo *repo)
{
	char p[PATH_MAX], tmp[PATH_MAX], line[18], old[17];

	last_key_read(repo, old);
	if (repo->read_only || strcmp(old, repo->key_name) == 0 ||
	    cairn_repo__path(repo, p, sizeof(p), "index/last-key") < 0 ||
	    cairn_repo__path(repo, tmp, sizeof(tmp), "tmp") < 0)
		return;
	snprintf(line, sizeof(line), "%s\n", repo->key_name);
	if (cairn_file_write_atomic(p, tmp, line, 17) < 0)
		log_debug("cannot remember the key in use: %s", cairn_err_msg());
}

void cairn_repo__warn(const cairn_repo *repo, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	if (!repo->warn)
		return;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	repo->warn(msg, repo->warn_payload);
}

static int by_name(const void *a, const void *b)
{
	return strcmp(a, b); /* elements are char[17] */
}

/* Key file names in keys/, sorted so unlocking tries them in a stable order. */
static int list_key_names(const char *repo, char (**out)[17], size_t *n)
{
	char p[PATH_MAX];
	int r = join(p, sizeof(p), repo, "keys");
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = opendir(p);
	if (!d)
		return cairn_err_set(-errno == -ENOENT ? -EBADMSG : -errno,
		                     "cannot read key directory '%s': %s", p, strerror(errno));
	_cleanup_free_ char(*names)[17] = NULL;
	size_t count = 0, cap = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		uint8_t raw[8];
		if (cairn_unhex(raw, sizeof(raw), de->d_name) < 0)
			continue; /* temp files and strangers */
		if (count == cap) {
			cap = cap ? cap * 2 : 8;
			char(*nn)[17] = realloc(names, cap * sizeof(*names));
			if (!nn)
				return cairn_err_set(-ENOMEM, "out of memory");
			names = nn;
		}
		memcpy(names[count++], de->d_name, 17); /* 16 hex digits and the NUL */
	}
	qsort(names, count, sizeof(*names), by_name);
	*out = TAKE_PTR(names);
	*n = count;
	return 0;
}

/* Try one key file: 0 unlocked, -EKEYREJECTED another password's, other < 0
 * unreadable (corrupt, or refused for its cost with a warning). */
static int try_key(cairn_repo *repo, const char *name, const char *pw, size_t pwlen,
                   uint8_t master[CAIRN_KEY_SIZE])
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	char p[PATH_MAX];
	int r = cairn_repo__path(repo, p, sizeof(p), "keys/%s", name);

	if (r >= 0)
		r = cairn_file_slurp(p, CAIRN_KEYFILE_MAX, &kf);
	if (r >= 0 && (r = cairn_keyfile__parse(&k, kf.data, kf.len)) >= 0 &&
	    cairn_keyfile__too_costly(&k)) {
		cairn_repo__warn(repo,
		                 "key file '%s' skipped: its scrypt cost (log2(N) %u, r %u, p %u) "
		                 "is above the limit of log2(N) %d and %llu GiB",
		                 p, k.log2n, k.r, k.p, CAIRN_KDF_LOG2N_MAX,
		                 CAIRN_KDF_COST_MAX >> 30);
		return -EBADMSG;
	}
	if (r >= 0)
		r = cairn_keyfile__unwrap(kf.data, kf.len, pw, pwlen, master);
	if (r < 0 && r != -EKEYREJECTED)
		log_debug("key file '%s' skipped: %s", p, cairn_err_msg());
	return r;
}

static int unlock(cairn_repo *repo, const char *pw, size_t pwlen, uint8_t master[CAIRN_KEY_SIZE])
{
	_cleanup_free_ char(*names)[17] = NULL;
	size_t n = 0, corrupt = 0;
	char last[17];
	int r = list_key_names(repo->path, &names, &n);
	if (r < 0)
		return r;
	last_key_read(repo, last);
	/* The remembered key first (pass 0), then the others in name order. */
	for (int pass = 0; pass < 2; pass++)
		for (size_t i = 0; i < n; i++) {
			if ((strcmp(names[i], last) == 0) != (pass == 0))
				continue;
			r = try_key(repo, names[i], pw, pwlen, master);
			if (r >= 0) {
				snprintf(repo->key_name, sizeof(repo->key_name), "%s", names[i]);
				last_key_write(repo);
				return 0;
			}
			corrupt += r != -EKEYREJECTED;
		}
	if (n == 0)
		return cairn_err_set(-EBADMSG, "repository '%s' has no key files", repo->path);
	if (corrupt == n)
		return cairn_err_set(-EBADMSG, "no readable key file in '%s/keys'", repo->path);
	return cairn_err_set(-EKEYREJECTED, "wrong password");
}

static int open_index(cairn_repo *repo, bool *created)
{
	char dir[PATH_MAX], data[PATH_MAX];
	int r;

	if ((r = cairn_repo__path(repo, dir, sizeof(dir), "index")) < 0 ||
	    (r = cairn_repo__path(repo, data, sizeof(data), "index/data.mdb")) < 0)
		return r;
	struct stat st;
	/* An empty data.mdb (a crash before its first page, a truncation) is no index:
	 * LMDB would take it for a new one, empty, and every lookup would miss. */
	*created = stat(data, &st) < 0 || st.st_size == 0;
	if (*created && repo->read_only)
		return cairn_err_set(-ENOENT,
		                     "repository '%s' has no index: run 'cairn rebuild-index'",
		                     repo->path);
	r = cairn_index__open(&repo->index, dir, repo->read_only, repo->cfg.id);
	if (r < 0)
		return cairn_err_wrap(r, "cannot open index of '%s'", repo->path);
	return 0;
}

static int load(cairn_repo *repo, const char *pw, size_t pwlen, const struct cairn_repo_opts *o)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	uint8_t master[CAIRN_KEY_SIZE];
	bool created = false;
	int r;

	if ((r = read_config(repo->path, &text)) < 0)
		return r;
	if ((r = cairn_config__parse(&repo->cfg, (const char *)text.data, text.len)) < 0)
		return cairn_err_wrap(r, "config of '%s'", repo->path);
	if (!(repo->config_text = strndup((const char *)text.data, text.len)))
		return cairn_err_set(-ENOMEM, "out of memory");
	r = unlock(repo, pw, pwlen, master);
	if (r >= 0)
		r = cairn_crypt__derive(&repo->keys, master, repo->cfg.id);
	OPENSSL_cleanse(master, sizeof(master));
	if (r < 0)
		return r;
	r = cairn_config__verify(&repo->cfg, repo->config_text, repo->keys.cfg);
	if (r < 0)
		return cairn_err_wrap(r, "repository '%s'", repo->path);
	atomic_store(&repo->compression, repo->cfg.compression);
	if ((r = cairn_chunker_new(&repo->chunker, &repo->cfg.chunk, repo->keys.gear)) < 0)
		return r;
	if (o && o->no_index)
		return 0;
	if ((r = open_index(repo, &created)) < 0)
		return r;
	if (created) {
		/* The index is a cache (FORMAT.md §7): a missing one is rebuilt. */
		cairn_repo__warn(repo, "index of '%s' is missing: rebuilding it from the packs",
		                 repo->path);
		r = cairn_repo_rebuild_index(repo);
	}
	return r < 0 ? r : 0;
}

int cairn_repo_open(cairn_repo **out, const char *path, const char *pw, size_t pwlen,
                    const struct cairn_repo_opts *o)
{
	cairn_repo *repo = calloc(1, sizeof(*repo));
	if (!repo) {
		if (o && o->packs && o->packs->release)
			o->packs->release(o->packs->payload);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	pthread_mutex_init(&repo->lock, NULL);
	cairn_idset_init(&repo->pending);
	if (o && o->packs) {
		/* A cache of a remote repository: its index is always ours to update. */
		repo->remote = true;
		repo->src = *o->packs;
	}
	repo->read_only = o && o->read_only && !repo->remote;
	if (o) {
		repo->warn = o->warn;
		repo->warn_payload = o->warn_payload;
	}
	repo->path = strdup(path);
	int r = repo->path ? load(repo, pw, pwlen, o) : cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0) {
		cairn_repo_close(repo);
		return r;
	}
	*out = repo;
	return 0;
}

void cairn_repo_close(cairn_repo *repo)
{
	if (!repo)
		return;
	for (size_t i = 0; i < ARRAY_SIZE(repo->idle); i++)
		for (struct packer *p = repo->idle[i], *next; p; p = next) {
			next = p->next;
			cairn_packw__free(p->w); /* unfinished: its temp file goes */
			free(p);
		}
	cairn_index__close(repo->index);
	if (repo->remote && repo->src.release)
		repo->src.release(repo->src.payload);
	cairn_chunker_free(repo->chunker);
	cairn_idset_release(&repo->pending);
	cairn_crypt__wipe(&repo->keys);
	pthread_mutex_destroy(&repo->lock);
	free(repo->config_text);
	free(repo->path);
	free(repo);
}

/* ---- keys --------------------------------------------------------------- */

int cairn_key_list(cairn_repo *repo, struct cairn_key_info **out, size_t *n)
{
	_cleanup_free_ char(*names)[17] = NULL;
	size_t count = 0;
	int r = list_key_names(repo->path, &names, &count);
	if (r < 0)
		return r;
	_cleanup_free_ struct cairn_key_info *info = calloc(count ? count : 1, sizeof(*info));
	if (!info)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < count; i++) {
		_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
		struct cairn_keyfile k;
		char p[PATH_MAX];
		if ((r = cairn_repo__path(repo, p, sizeof(p), "keys/%s", names[i])) < 0)
			return r;
		if ((r = cairn_file_slurp(p, CAIRN_KEYFILE_MAX, &kf)) < 0 ||
		    (r = cairn_keyfile__parse(&k, kf.data, kf.len)) < 0)
			return cairn_err_wrap(r, "key file '%s'", p);
		snprintf(info[i].name, sizeof(info[i].name), "%s", names[i]);
		snprintf(info[i].label, sizeof(info[i].label), "%s", k.label);
		info[i].created = k.created;
		info[i].kdf_log2n = k.log2n;
		info[i].r = k.r;
		info[i].p = k.p;
		info[i].current = strcmp(names[i], repo->key_name) == 0;
	}
	*out = TAKE_PTR(info);
	*n = count;
	return 0;
}

static int key_log2n_current(cairn_repo *repo)
{
	_cleanup_buf_ struct cairn_buf kf = CAIRN_BUF_INIT;
	struct cairn_keyfile k;
	char p[PATH_MAX];

	if (cairn_repo__path(repo, p, sizeof(p), "keys/%s", repo->key_name) < 0 ||
	    cairn_file_slurp(p, CAIRN_KEYFILE_MAX, &kf) < 0 ||
	    cairn_keyfile__parse(&k, kf.data, kf.len) < 0)
		return CAIRN_KDF_LOG2N_DEFAULT;
	return k.log2n;
}

int cairn_key_add(cairn_repo *repo, const char *pw, size_t pwlen, const char *label,
                  char name_out[17])
{
	if (cairn_repo__read_only(repo))
		return cairn_err_set(-EROFS, "repository opened read-only");
	/* New keys are as strong as the one in use (tests init with a cheap KDF). */
	return write_key_file(repo->path, repo->keys.master, pw, pwlen, key_log2n_current(repo),
	                      label, name_out);
}

int cairn_key_remove(cairn_repo *repo, const char *name)
{
	_cleanup_free_ char(*names)[17] = NULL;
	size_t n = 0;
	char p[PATH_MAX];
	uint8_t raw[8];
	int r;

	if (cairn_repo__read_only(repo))
		return cairn_err_set(-EROFS, "repository opened read-only");
	if (cairn_unhex(raw, sizeof(raw), name) < 0)
		return cairn_err_set(-EINVAL, "'%s' is not a key name (16 hex digits)", name);
	if ((r = list_key_names(repo->path, &names, &n)) < 0)
		return r;
	if (n <= 1)
		return cairn_err_set(-EBUSY, "cannot remove the last key");
	if (strcmp(name, repo->key_name) == 0)
		return cairn_err_set(-EBUSY,
		                     "key '%s' is the one in use; unlock with another "
		                     "password to remove it",
		                     name);
	if ((r = cairn_repo__path(repo, p, sizeof(p), "keys/%s", name)) < 0)
		return r;
	if (unlink(p) < 0)
		return cairn_err_set(-errno, "cannot remove key '%s': %s", name, strerror(errno));
	if ((r = cairn_repo__path(repo, p, sizeof(p), "keys")) < 0)
		return r;
	return cairn_fsync_dir(p);
}

int cairn_key_passwd(cairn_repo *repo, const char *pw, size_t pwlen)
{
	char old[17], name[17], p[PATH_MAX];
	int r;

	if (cairn_repo__read_only(repo))
		return cairn_err_set(-EROFS, "repository opened read-only");
	snprintf(old, sizeof(old), "%s", repo->key_name);
	/* Add first, then remove: a crash in between leaves both passwords working. */
	if ((r = cairn_key_add(repo, pw, pwlen, NULL, name)) < 0)
		return r;
	snprintf(repo->key_name, sizeof(repo->key_name), "%s", name);
	last_key_write(repo);
	if ((r = cairn_repo__path(repo, p, sizeof(p), "keys/%s", old)) < 0)
		return r;
	if (unlink(p) < 0)
		return cairn_err_set(-errno, "cannot remove old key '%s': %s", old,
		                     strerror(errno));
	if ((r = cairn_repo__path(repo, p, sizeof(p), "keys")) < 0)
		return r;
	return cairn_fsync_dir(p);
}

/* ---- writing blobs ------------------------------------------------------ */

static size_t max_raw_len(const cairn_repo *repo, int type)
{
	switch (type) {
	case CAIRN_BLOB_DATA:
		return repo->cfg.chunk.max;
	case CAIRN_BLOB_TREE:
		return CAIRN_TREE_MAX;
	case CAIRN_BLOB_SNAPSHOT:
		return CAIRN_SNAPSHOT_MAX;
	default:
		return 0;
	}
}

static void forget_pending(cairn_repo *repo, const cairn_packw *w)
{
	const struct cairn_pack_entry *e = cairn_packw__entries(w);
	size_t n = cairn_packw__count(w);

	pthread_mutex_lock(&repo->lock);
	for (size_t i = 0; i < n; i++)
		cairn_idset_del(&repo->pending, &e[i].id);
	pthread_mutex_unlock(&repo->lock);
}

/* Make a full pack durable, then index it (FORMAT.md §6.1: durable before indexed). */
static int finish_packer(cairn_repo *repo, struct packer *p)
{
	struct cairn_id pack;
	uint64_t size;
	char dir[PATH_MAX];
	int r = cairn_repo__path(repo, dir, sizeof(dir), "packs");

	if (r >= 0)
		r = cairn_packw__finish(p->w, &repo->keys, dir, &pack, &size);
	if (r >= 0)
		r = cairn_index__add_pack(repo->index, &pack, size, cairn_packw__entries(p->w),
		                          cairn_packw__count(p->w));
	if (r >= 0)
		atomic_fetch_add_explicit(&repo->packs_written, 1, memory_order_relaxed);
	else
		write_failed(repo, r);
	forget_pending(repo, p->w);
	cairn_packw__free(p->w);
	free(p);
	return r;
}

/* Trees and data go to different packs, so that browsing a snapshot stored
 * remotely fetches packs of trees only (docs/S3.md §5). */
static int take_packer(cairn_repo *repo, int type, struct packer **out)
{
	char tmp[PATH_MAX];
	int r;

	pthread_mutex_lock(&repo->lock);
	struct packer **idle = &repo->idle[type == CAIRN_BLOB_TREE];
	struct packer *p = *idle;
	if (p)
		*idle = p->next;
	pthread_mutex_unlock(&repo->lock);
	if (p) {
		*out = p;
		return 0;
	}
	if (!(p = calloc(1, sizeof(*p))))
		return cairn_err_set(-ENOMEM, "out of memory");
	if ((r = cairn_repo__path(repo, tmp, sizeof(tmp), "tmp")) < 0 ||
	    (r = cairn_packw__new(&p->w, tmp)) < 0) {
		free(p);
		return r;
	}
	*out = p;
	return 0;
}

static void return_packer(cairn_repo *repo, int type, struct packer *p)
{
	pthread_mutex_lock(&repo->lock);
	struct packer **idle = &repo->idle[type == CAIRN_BLOB_TREE];
	p->next = *idle;
	*idle = p;
	pthread_mutex_unlock(&repo->lock);
}

static void unclaim(cairn_repo *repo, const struct cairn_id *id)
{
	pthread_mutex_lock(&repo->lock);
	cairn_idset_del(&repo->pending, id);
	pthread_mutex_unlock(&repo->lock);
}

static int indexed(cairn_repo *repo, const struct cairn_id *id)
{
	struct cairn_loc loc;
	int r = cairn_index__get(repo->index, id, &loc);
	return r >= 0 ? 1 : r == -ENOENT ? 0 : r;
}

/* Claim id for this writer: 1 if we must store it, 0 if stored or being stored.
 * A finished pack is indexed before its IDs leave pending, so the index is
 * asked again once the claim is made: another writer's pack may have gone from
 * pending to the index between the first look and the claim. */
static int claim(cairn_repo *repo, const struct cairn_id *id)
{
	int r = indexed(repo, id);
	if (r != 0)
		return r > 0 ? 0 : r;
	pthread_mutex_lock(&repo->lock);
	r = cairn_idset_add(&repo->pending, id, 0);
	pthread_mutex_unlock(&repo->lock);
	if (r <= 0)
		return r;
	if ((r = indexed(repo, id)) != 0) {
		unclaim(repo, id);
		return r > 0 ? 0 : r;
	}
	return 1;
}

static int append(cairn_repo *repo, int type, const struct cairn_id *id, const void *data,
                  size_t len)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct packer *p;
	int r = cairn_blob__encode(&repo->keys, atomic_load(&repo->compression), type, id, data,
	                           len, &sealed);
	if (r < 0 || (r = take_packer(repo, type, &p)) < 0)
		return r;
	r = cairn_packw__add(p->w, id, type, sealed.data, sealed.len, (uint32_t)len);
	if (r < 0) {
		/* The pack is in an unknown state: drop it with every blob it held,
		 * some of which other puts reported as stored. */
		write_failed(repo, r);
		forget_pending(repo, p->w);
		cairn_packw__free(p->w);
		free(p);
		return r;
	}
	atomic_fetch_add_explicit(&repo->blobs_written, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&repo->bytes_written, sealed.len, memory_order_relaxed);
	if (cairn_packw__size(p->w) >= repo->cfg.pack_size)
		return finish_packer(repo, p);
	return_packer(repo, type, p);
	return 0;
}

int cairn_repo_put(cairn_repo *repo, int type, const void *data, size_t len,
                   const struct cairn_id *id_or_null, struct cairn_id *id_out)
{
	struct cairn_id id;
	int r;

	if (cairn_repo__read_only(repo) || !repo->index)
		return cairn_err_set(-EROFS, "repository opened read-only");
	if ((r = cairn_repo__write_error(repo)) < 0)
		return r;
	if (type != CAIRN_BLOB_DATA && type != CAIRN_BLOB_TREE)
		return cairn_err_set(-EINVAL, "blob type %d cannot be stored in a pack", type);
	if (len > max_raw_len(repo, type))
		return cairn_err_set(-EINVAL, "%s blob of %zu bytes exceeds the maximum %zu",
		                     cairn_blob_type_name(type), len, max_raw_len(repo, type));
	if (id_or_null)
		id = *id_or_null;
	else if ((r = cairn_repo_blob_id(repo, data, len, &id)) < 0)
		return r;
	if (id_out)
		*id_out = id;
	r = claim(repo, &id);
	if (r <= 0)
		return r;
	r = append(repo, type, &id, data, len);
	if (r < 0) {
		unclaim(repo, &id);
		return r;
	}
	return 1;
}

int cairn_repo_has(cairn_repo *repo, const struct cairn_id *id)
{
	struct cairn_loc loc;
	bool pending;

	pthread_mutex_lock(&repo->lock);
	pending = cairn_idset_has(&repo->pending, id);
	pthread_mutex_unlock(&repo->lock);
	if (pending)
		return 1;
	int r = cairn_index__get(repo->index, id, &loc);
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int cairn_repo_flush(cairn_repo *repo)
{
	int r = 0;

	pthread_mutex_lock(&repo->lock);
	struct packer *lists[2] = { repo->idle[0], repo->idle[1] };
	repo->idle[0] = repo->idle[1] = NULL;
	pthread_mutex_unlock(&repo->lock);
	for (size_t i = 0; i < ARRAY_SIZE(lists); i++)
		for (struct packer *p = lists[i], *next; p; p = next) {
			next = p->next;
			int q = finish_packer(repo, p);
			if (q < 0 && r == 0)
				r = q;
		}
	/* The healthy packs are kept (durable and indexed), but what a dropped one
	 * held is lost: the flush fails whenever any write failed. */
	return r < 0 ? r : cairn_repo__write_error(repo);
}

/* ---- reading blobs ------------------------------------------------------ */

int cairn_repo_lookup(cairn_repo *repo, const struct cairn_id *id, struct cairn_loc *out)
{
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	int r = cairn_index__get(repo->index, id, out);
	if (r == -ENOENT) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		return cairn_err_set(-ENOENT, "blob %s not found in the index", hex);
	}
	return r;
}

int cairn_repo__pack_open(cairn_repo *repo, const struct cairn_id *pack, struct cairn_packf *f,
                          char rel[CAIRN_PACK_RELPATH_SIZE])
{
	char path[PATH_MAX];
	struct stat st;
	int r;

	cairn_pack__relpath(rel, pack);
	*f = (struct cairn_packf){ .fd = -1, .id = *pack, .name = rel };
	if (repo->remote) {
		f->src = &repo->src;
		return repo->src.size(repo->src.payload, pack, &f->size);
	}
	if ((r = cairn_repo__path(repo, path, sizeof(path), "%s", rel)) < 0)
		return r;
	f->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (f->fd < 0 || fstat(f->fd, &st) < 0) {
		r = errno == ENOENT ? -ENOENT : -EIO;
		cairn_packf__close(f);
		return cairn_err_set(r, "cannot open pack '%s': %s", rel, strerror(-r));
	}
	f->size = (uint64_t)st.st_size;
	return 0;
}

void cairn_packf__close(struct cairn_packf *f)
{
	if (f->fd >= 0)
		close(f->fd);
	f->fd = -1;
}

static int read_sealed(cairn_repo *repo, const struct cairn_loc *loc, struct cairn_buf *out)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	_cleanup_packf_ struct cairn_packf f = { .fd = -1 };
	int r;

	if ((r = cairn_repo__pack_open(repo, &loc->pack, &f, rel)) < 0)
		return r;
	out->len = 0;
	if ((r = cairn_buf_reserve(out, loc->stored_len)) < 0)
		return r;
	r = cairn_packf__pread(&f, loc->type, out->data, loc->stored_len, loc->offset);
	if (r == -EBADMSG)
		return cairn_err_set(r, "pack '%s' is truncated before offset %u", rel,
		                     loc->offset + loc->stored_len);
	if (r < 0)
		return r;
	out->len = loc->stored_len;
	return 0;
}

int cairn_repo_get_typed(cairn_repo *repo, int type, const struct cairn_id *id,
                         struct cairn_buf *out)
{
	_cleanup_buf_ struct cairn_buf sealed = CAIRN_BUF_INIT;
	struct cairn_loc loc;
	int r = cairn_repo_lookup(repo, id, &loc);

	if (r < 0)
		return r;
	if (type && loc.type != type) {
		char hex[CAIRN_ID_HEX_SIZE];
		cairn_id_hex(hex, id);
		return cairn_err_set(-EBADMSG, "blob %.8s is a %s blob, expected %s", hex,
		                     cairn_blob_type_name(loc.type), cairn_blob_type_name(type));
	}
	r = read_sealed(repo, &loc, &sealed);
	if (r == -ENOENT) {
		/* Prune may have moved the blob and deleted its old pack since the lookup:
		 * its index commit precedes the deletion, so a second lookup finds it. */
		struct cairn_loc again;
		if (cairn_repo_lookup(repo, id, &again) >= 0 &&
		    memcmp(&again.pack, &loc.pack, sizeof(loc.pack)) != 0) {
			loc = again;
			r = read_sealed(repo, &loc, &sealed);
		}
	}
	if (r < 0)
		return r;
	r = cairn_blob__decode(&repo->keys, loc.type, id, sealed.data, sealed.len, loc.raw_len,
	                       max_raw_len(repo, loc.type), out);
	if (r == -EBADMSG && repo->remote && repo->src.invalidate) {
		/* A damaged cache copy of a remote pack: fetched again, once. */
		repo->src.invalidate(repo->src.payload, &loc.pack, loc.type, loc.offset,
		                     loc.stored_len);
		if ((r = read_sealed(repo, &loc, &sealed)) >= 0)
			r = cairn_blob__decode(&repo->keys, loc.type, id, sealed.data, sealed.len,
			                       loc.raw_len, max_raw_len(repo, loc.type), out);
	}
	if (r < 0) {
		char rel[CAIRN_PACK_RELPATH_SIZE];
		cairn_pack__relpath(rel, &loc.pack);
		return cairn_err_wrap(r, "pack '%s' offset %u", rel, loc.offset);
	}
	return 0;
}

int cairn_repo_get(cairn_repo *repo, const struct cairn_id *id, struct cairn_buf *out)
{
	return cairn_repo_get_typed(repo, 0, id, out);
}

/* ---- packs and the index ------------------------------------------------ */

int cairn_repo_pack_entries(cairn_repo *repo, const struct cairn_id *pack,
                            struct cairn_pack_entry **out, size_t *n)
{
	char rel[CAIRN_PACK_RELPATH_SIZE];
	_cleanup_packf_ struct cairn_packf f = { .fd = -1 };
	int r = cairn_repo__pack_open(repo, pack, &f, rel);
	if (r >= 0)
		r = cairn_pack__read_entries_from(&f, &repo->keys, out, n);
	if (r == -EBADMSG && repo->remote && repo->src.invalidate) {
		repo->src.invalidate(repo->src.payload, pack, 0, 0, 0); /* the cached header */
		r = cairn_pack__read_entries_from(&f, &repo->keys, out, n);
	}
	return r;
}

static int scan_pack_dir(const char *dir, const char *sub,
                         int (*cb)(const struct cairn_id *, uint64_t, void *), void *payload)
{
	char p[PATH_MAX];
	if (snprintf(p, sizeof(p), "%s/%s", dir, sub) >= (int)sizeof(p))
		return cairn_err_set(-ENAMETOOLONG, "path too long: '%s'", dir);
	_cleanup_closedir_ DIR *d = opendir(p);
	if (!d)
		return cairn_err_set(-errno, "cannot read '%s': %s", p, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		struct cairn_id id;
		struct stat st;
		if (cairn_id_parse(&id, de->d_name) < 0 || strncmp(de->d_name, sub, 2) != 0)
			continue;
		if (fstatat(dirfd(d), de->d_name, &st, 0) < 0 || !S_ISREG(st.st_mode))
			continue;
		int r = cb(&id, (uint64_t)st.st_size, payload);
		if (r < 0)
			return r;
	}
	return 0;
}

int cairn_repo_foreach_pack(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *pack, uint64_t size, void *payload),
                            void *payload)
{
	char dir[PATH_MAX];
	if (repo->remote)
		return repo->src.foreach(repo->src.payload, cb, payload);
	int r = cairn_repo__path(repo, dir, sizeof(dir), "packs");
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return cairn_err_set(-errno, "cannot read '%s': %s", dir, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		uint8_t b;
		if (cairn_unhex(&b, 1, de->d_name) < 0)
			continue;
		if ((r = scan_pack_dir(dir, de->d_name, cb, payload)) < 0)
			return r;
	}
	return 0;
}

struct rebuild {
	cairn_repo *repo;
	int packs;
};

static int rebuild_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct rebuild *rb = payload;
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	int r = cairn_repo_pack_entries(rb->repo, pack, &e, &n);

	if (r < 0) {
		/* One bad pack must not stop recovery of the others. */
		cairn_repo__warn(rb->repo, "skipping pack: %s", cairn_err_msg());
		return 0;
	}
	rb->packs++;
	return cairn_index__add_pack(rb->repo->index, pack, size, e, n);
}

static int rebuild_snapshots(cairn_repo *repo)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(repo, &ids, &n);

	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct cairn_snapshot *s;
		if (cairn_repo_snapshot_load(repo, &ids[i], &s) < 0) {
			cairn_repo__warn(repo, "skipping snapshot: %s", cairn_err_msg());
			continue;
		}
		r = cairn_index__add_snapshot(repo->index, &ids[i], s->time_ns);
		cairn_snapshot_free(s);
	}
	return r;
}

int cairn_repo_rebuild_index(cairn_repo *repo)
{
	struct rebuild rb = { .repo = repo };
	int r;

	if (repo->read_only)
		return cairn_err_set(-EROFS, "repository opened read-only");
	if (!repo->index) {
		/* Opened without index, maybe because it was damaged: start afresh. */
		char dir[PATH_MAX];
		bool created;
		if ((r = cairn_repo__path(repo, dir, sizeof(dir), "index")) < 0)
			return r;
		if ((r = cairn_rm_rf(dir)) < 0)
			return cairn_err_set(r, "cannot remove '%s': %s", dir, strerror(-r));
		if ((r = cairn_mkdir_p(dir, 0700)) < 0 || (r = open_index(repo, &created)) < 0)
			return r;
	}
	if ((r = cairn_index__clear(repo->index)) < 0 ||
	    (r = cairn_repo_foreach_pack(repo, rebuild_pack, &rb)) < 0 ||
	    (r = rebuild_snapshots(repo)) < 0)
		return r;
	return rb.packs;
}

struct adopt {
	cairn_repo *repo;
	int added;
	struct cairn_idset *seen; /* every pack present, when not NULL */
	bool gone;                /* an indexed pack is no longer present */
};

static int adopt_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	struct adopt *ad = payload;
	_cleanup_free_ struct cairn_pack_entry *e = NULL;
	size_t n = 0;
	int r = ad->seen ? cairn_idset_add(ad->seen, pack, 0) : 0;

	if (r >= 0)
		r = cairn_index__has_pack(ad->repo->index, pack, NULL);
	if (r != 0)
		return r < 0 ? r : 0;
	if (cairn_repo_pack_entries(ad->repo, pack, &e, &n) < 0) {
		log_debug("leaving unreadable pack alone: %s", cairn_err_msg());
		return 0;
	}
	/* Lowest pack ID wins (FORMAT.md §7), so this agrees with a rebuild. */
	if ((r = cairn_index__add_pack(ad->repo->index, pack, size, e, n)) < 0)
		return r;
	ad->added++;
	return 0;
}

static int adopt_check(cairn_repo *repo)
{
	if (repo->read_only)
		return cairn_err_set(-EROFS, "repository opened read-only");
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	return 0;
}

int cairn_repo_index_unknown_packs(cairn_repo *repo)
{
	struct adopt ad = { .repo = repo };
	int r = adopt_check(repo);
	if (r >= 0)
		r = cairn_repo_foreach_pack(repo, adopt_pack, &ad);
	return r < 0 ? r : ad.added;
}

static int find_gone(const struct cairn_id *pack, uint64_t size, uint32_t count, void *payload)
{
	struct adopt *ad = payload;
	(void)size, (void)count;
	if (!cairn_idset_has(ad->seen, pack))
		ad->gone = true;
	return 0;
}

static int indexed_snapshot(const struct cairn_id *id, int64_t time_ns, void *payload)
{
	(void)time_ns;
	return cairn_idset_add(payload, id, 0) < 0 ? -ENOMEM : 0;
}

/* Snapshots added or removed in snapshots/ since the index last saw it. */
static int update_snapshots(cairn_repo *repo)
{
	_cleanup_(cairn_idset_release) struct cairn_idset indexed;
	_cleanup_free_ struct cairn_id *ids = NULL;
	size_t n = 0, pos = 0;
	const struct cairn_id *id;
	cairn_idset_init(&indexed);
	int r = cairn_index__foreach_snapshot(repo->index, indexed_snapshot, &indexed);
	if (r >= 0)
		r = cairn_repo_snapshot_ids(repo, &ids, &n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct cairn_snapshot *s;
		if (cairn_idset_del(&indexed, &ids[i]) > 0 ||
		    cairn_repo_snapshot_load(repo, &ids[i], &s) < 0)
			continue;
		r = cairn_index__add_snapshot(repo->index, &ids[i], s->time_ns);
		cairn_snapshot_free(s);
	}
	while (r >= 0 && cairn_idset_next(&indexed, &pos, &id))
		r = cairn_index__del_snapshot(repo->index, id);
	return r;
}

int cairn_repo_index_update(cairn_repo *repo)
{
	struct cairn_idset seen;
	struct adopt ad = { .repo = repo, .seen = &seen };
	int r = adopt_check(repo);

	if (r < 0)
		return r;
	cairn_idset_init(&seen);
	r = cairn_repo_foreach_pack(repo, adopt_pack, &ad);
	if (r >= 0)
		r = cairn_index__foreach_pack(repo->index, find_gone, &ad);
	cairn_idset_release(&seen);
	if (r < 0)
		return r;
	/* A pack that vanished may have shadowed copies of its blobs in others
	 * (§7, lowest pack ID wins): only a rebuild restores those entries. */
	if (ad.gone)
		return cairn_repo_rebuild_index(repo);
	return (r = update_snapshots(repo)) < 0 ? r : ad.added;
}

int cairn_repo_foreach_blob(cairn_repo *repo,
                            int (*cb)(const struct cairn_id *id, const struct cairn_loc *loc,
                                      void *payload),
                            void *payload)
{
	if (!repo->index)
		return cairn_err_set(-ENOENT, "repository opened without index");
	return cairn_index__foreach_blob(repo->index, cb, payload);
}

/* ---- state tables ------------------------------------------------------- */

static int need_index(cairn_repo *repo)
{
	return repo->index ? 0 : cairn_err_set(-ENOENT, "repository opened without index");
}

int cairn_repo_state_put(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         const void *v, size_t vlen)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_put(repo->index, table, k, klen, v, vlen);
}

int cairn_repo_state_get(cairn_repo *repo, const char *table, const void *k, size_t klen,
                         struct cairn_buf *out)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_get(repo->index, table, k, klen, out);
}

int cairn_repo_state_del(cairn_repo *repo, const char *table, const void *k, size_t klen)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_del(repo->index, table, k, klen);
}

int cairn_repo_state_foreach(cairn_repo *repo, const char *table,
                             int (*cb)(const void *k, size_t klen, const void *v, size_t vlen,
                                       void *payload),
                             void *payload)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_foreach(repo->index, table, cb, payload);
}

int cairn_repo_state_drop(cairn_repo *repo, const char *table)
{
	int r = need_index(repo);
	return r < 0 ? r : cairn_index__aux_drop(repo->index, table);
}
