/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The repository: init, open and close over a storage (FORMAT.md §2-§4,
 * docs/DESIGN.md "Storage"). Above the files it sets up at open (keys.c,
 * hostcache.c, reindex.c) and tears down at close (indexfiles.c), so that
 * none of them need call back up here. */
#include "repo.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "keyfile.h"

/* ---- the config ------------------------------------------------------------------ */

/* Check a config's text: its size and first line (the version), before any key
 * is tried. NUL-terminates it without counting the NUL. */
static int probe_text(const cairn_storage *st, struct cairn_buf *text, int r)
{
	if (r == -ENOENT)
		return cairn_err_set(-ENOENT, "no repository at '%s' (no config)",
		                     cairn_storage_url(st));
	if (r == -EFBIG)
		return cairn_err_set(-EBADMSG, "'%s' holds no cairn config (too large)",
		                     cairn_storage_url(st));
	if (r < 0)
		return r;
	if ((r = cairn_buf_put_u8(text, 0)) < 0)
		return r;
	text->len--;
	r = cairn_config__probe((const char *)text->data, text->len);
	return r < 0 ? cairn_err_wrap(r, "repository '%s'", cairn_storage_url(st)) : 0;
}

static int read_config(cairn_storage *st, struct cairn_buf *text)
{
	int r = cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 0, 0, CAIRN_CONFIG_MAX, text);
	return probe_text(st, text, r);
}

int cairn_repo_probe(const char *url, const struct cairn_storage_opts *o)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	cairn_storage *st;
	int r = cairn_storage_open(&st, url, o);
	if (r < 0)
		return r;
	r = read_config(st, &text);
	cairn_storage_close(st);
	return r;
}

static bool same_id(const struct cairn_buf *a, const struct cairn_buf *b)
{
	struct cairn_config x, y;
	return cairn_config__parse(&x, (const char *)a->data, a->len) >= 0 &&
	       cairn_config__parse(&y, (const char *)b->data, b->len) >= 0 &&
	       memcmp(x.id, y.id, sizeof(x.id)) == 0;
}

/* An empty local state dir (a remote storage's cache), with its tmp/. */
static int clear_state(const char *state)
{
	char tmp[PATH_MAX];
	int r = cairn_rm_rf(state);
	if (r < 0)
		return cairn_err_set(r, "cannot remove '%s': %s", state, strerror(-r));
	if (snprintf(tmp, sizeof(tmp), "%s/tmp", state) >= (int)sizeof(tmp))
		return cairn_err_set(-ENAMETOOLONG, "cache path too long");
	return cairn_mkdir_p(tmp, 0700);
}

/* A new repository created where the cache's one was: the cache is of no use. */
static int reset_cache(cairn_repo *repo)
{
	cairn_repo__warn(repo, "%s holds another repository now: dropping the cache '%s'",
	                 cairn_storage_url(repo->st), repo->state);
	return clear_state(repo->state);
}

/* The config of a remote storage: the cached copy when the storage has the same
 * (one HEAD), else fetched (with nothing cached, at once). Unreachable with a
 * cached copy: the cache is used as it is, read-only (docs/S3.md §5, offline). */
static int read_remote_config(cairn_repo *repo, struct cairn_buf *text)
{
	_cleanup_buf_ struct cairn_buf mine = CAIRN_BUF_INIT;
	struct cairn_obj_info info = { 0 };
	bool cached =
	        cairn_cache__has(repo->cache, CAIRN_OBJ_CONFIG, "") &&
	        cairn_cache__get(repo->cache, CAIRN_OBJ_CONFIG, "", CAIRN_CONFIG_MAX, &mine) >= 0;
	int r = cached ? cairn_storage_stat(repo->st, CAIRN_OBJ_CONFIG, "", &info) : 0;

	if ((r == -EHOSTUNREACH || r == -EIO || r == -ETIMEDOUT) && cached && repo->read_only) {
		cairn_repo__warn(repo, "cannot reach %s (%s): using the cached copy",
		                 cairn_storage_url(repo->st), cairn_err_msg());
		repo->offline = true;
		*text = mine;
		cairn_buf_init(&mine);
		return probe_text(repo->st, text, 0);
	}
	if (r < 0)
		return probe_text(repo->st, text, r);
	if (cached && info.size == mine.len && cairn_repo__md5_is(&mine, info.etag)) {
		*text = mine;
		cairn_buf_init(&mine);
		return probe_text(repo->st, text, 0);
	}
	if ((r = read_config(repo->st, text)) < 0)
		return r;
	if (cached && !same_id(&mine, text) && (r = reset_cache(repo)) < 0)
		return r;
	cairn_cache__put(repo->cache, CAIRN_OBJ_CONFIG, "", text->data, text->len);
	return 0;
}

/* ---- init -------------------------------------------------------------------------- */

static int any_object(const struct cairn_obj_info *o, void *payload)
{
	(void)o, (void)payload;
	return -EEXIST;
}

/* A directory that does not exist (1) or is empty (0); a bucket prefix that
 * holds nothing at all (0: one listing of the prefix, not only of keys/: a
 * listing that leaves the keys out must not have init replace a config). */
static int check_empty_target(cairn_storage *st)
{
	const char *url = cairn_storage_url(st);
	struct cairn_obj_info info;
	int r = cairn_storage_stat(st, CAIRN_OBJ_CONFIG, "", &info);
	if (r >= 0)
		return cairn_err_set(-EEXIST, "'%s' already holds a repository", url);
	if (r != -ENOENT)
		return r;
	if (cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE) {
		r = cairn_storage_any(st);
		if (r <= 0)
			return r;
		r = cairn_storage_list(st, CAIRN_OBJ_KEY, any_object, NULL);
		if (r == -EEXIST)
			return cairn_err_set(
			        r,
			        "'%s' is not empty: it holds key files but no config (an "
			        "init that was killed? remove them and run init again)",
			        url);
		return r < 0 ? r : cairn_err_set(-EEXIST, "'%s' is not empty", url);
	}
	if ((r = cairn_storage_list(st, CAIRN_OBJ_KEY, any_object, NULL)) == -EEXIST)
		return cairn_err_set(
		        r,
		        "'%s' exists and is not empty: it holds key files but no config "
		        "(an init that was killed? remove it and run init again)",
		        url);
	_cleanup_closedir_ DIR *d = opendir(url);
	if (!d)
		return errno == ENOENT ? 1
		                       : cairn_err_set(-errno, "cannot open '%s': %s", url,
		                                       strerror(errno));
	for (struct dirent *de; (de = readdir(d));)
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			return cairn_err_set(-EEXIST, "'%s' exists and is not empty", url);
	return 0;
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

static const char *const layout_dirs[] = { "",         "/keys",  "/packs", "/snapshots",
	                                   "/indexes", "/index", "/tmp",   "/locks" };

/* A local repository gets its directories at once (FORMAT.md §2), so that its
 * layout is plain to see; a bucket has no directories. */
static int make_layout(cairn_storage *st)
{
	const char *base = cairn_storage_state_dir(st);
	char p[PATH_MAX];

	for (size_t i = 0; i < ARRAY_SIZE(layout_dirs); i++) {
		if (snprintf(p, sizeof(p), "%s%s", base, layout_dirs[i]) >= (int)sizeof(p))
			return cairn_err_set(-ENAMETOOLONG, "repository path too long");
		int r = cairn_mkdir_p(p, 0700);
		if (r < 0)
			return r;
	}
	return 0;
}

/* An init that failed removes what it made, so that init can run again: a
 * local directory it created (else the layout it made in the empty one given),
 * or the key file it wrote under a bucket prefix. Not once the config is
 * there (a write that failed only in its reply): the repository is whole. */
static void undo_init(cairn_storage *st, bool made_dir, const char *key_name)
{
	struct cairn_obj_info info;
	char p[PATH_MAX];
	if (cairn_storage_stat(st, CAIRN_OBJ_CONFIG, "", &info) != -ENOENT)
		return;
	if (cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE) {
		if (key_name[0])
			(void)cairn_storage_remove(st, CAIRN_OBJ_KEY, key_name);
		return;
	}
	/* layout_dirs[0] is the directory itself, the others what is in it. */
	size_t from = made_dir ? 0 : 1, to = made_dir ? 1 : ARRAY_SIZE(layout_dirs);
	for (size_t i = from; i < to; i++)
		if (snprintf(p, sizeof(p), "%s%s", cairn_storage_state_dir(st), layout_dirs[i]) <
		    (int)sizeof(p))
			(void)cairn_rm_rf(p);
}

/* An empty index in the local state, so that the first open need not rebuild
 * one (a remote storage's cache builds its own when first opened). */
static int init_index(cairn_storage *st, const uint8_t id[CAIRN_REPO_ID_SIZE])
{
	char dir[PATH_MAX];
	cairn_index *ix = NULL;
	if (cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE)
		return 0;
	if (snprintf(dir, sizeof(dir), "%s/index", cairn_storage_state_dir(st)) >= (int)sizeof(dir))
		return cairn_err_set(-ENAMETOOLONG, "repository path too long");
	int r = cairn_index__open(&ix, dir, false, id);
	cairn_index__close(ix);
	return r;
}

/* A new repository's cache starts with its config and key, as a first open
 * would leave it (docs/S3.md §5): the next command fetches neither. Whatever the
 * cache held is of another repository, which is gone. */
static int fresh_cache(cairn_storage *st, cairn_cache **out)
{
	if (!(cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE))
		return 0;
	int r = clear_state(cairn_storage_state_dir(st));
	return r < 0 ? r : cairn_cache__open(out, st, 0);
}

/* Whether the config there is the one we wrote (a PUT whose reply was lost,
 * sent again and refused because the first one landed). */
static bool config_is(cairn_storage *st, const struct cairn_buf *text)
{
	_cleanup_buf_ struct cairn_buf there = CAIRN_BUF_INIT;
	return cairn_storage_get(st, CAIRN_OBJ_CONFIG, "", 0, 0, CAIRN_CONFIG_MAX, &there) >= 0 &&
	       there.len == text->len && memcmp(there.data, text->data, text->len) == 0;
}

/* The config goes last: its presence marks a complete repository. In a bucket
 * it is written only where there is none (If-None-Match), so that a prefix a
 * listing showed empty by mistake keeps its repository; a server that does
 * not implement the condition gets a plain PUT, the listing having said empty. */
static int put_config(cairn_storage *st, const struct cairn_buf *text)
{
	if (!(cairn_storage_caps(st) & CAIRN_STORAGE_REMOTE))
		return cairn_storage_put(st, CAIRN_OBJ_CONFIG, "", text->data, text->len);
	int r = cairn_storage_create(st, CAIRN_OBJ_CONFIG, "", text->data, text->len);
	if (r == -EOPNOTSUPP)
		r = cairn_storage_put(st, CAIRN_OBJ_CONFIG, "", text->data, text->len);
	if (r == -EEXIST && !config_is(st, text))
		return cairn_err_set(-EEXIST, "'%s' is not empty: it has a config",
		                     cairn_storage_url(st));
	return r == -EEXIST ? 0 : r;
}

static int init_in(cairn_storage *st, const char *pw, size_t pwlen, const struct cairn_init_opts *o)
{
	struct cairn_config cfg;
	struct cairn_keys keys;
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	char name[17] = "";
	int log2n = o && o->kdf_log2n ? o->kdf_log2n : cairn_keyfile__calibrate();
	struct cairn_key_secret s = { .kind = CAIRN_KEY_FULL };
	cairn_cache *cache = NULL;
	int r = check_empty_target(st);
	bool made_dir = r == 1;

	if (r < 0 || (r = init_config(&cfg, o)) < 0)
		return r;
	if ((r = cairn_crypt__random(s.master, sizeof(s.master))) < 0 ||
	    (r = cairn_crypt__derive(&keys, s.master, cfg.id)) < 0)
		return r;
	if ((r = make_layout(st)) < 0 || (r = fresh_cache(st, &cache)) < 0 ||
	    (r = cairn_repo__write_key(st, cache, &s, pw, pwlen, log2n, o ? o->key_label : NULL,
	                               name)) < 0 ||
	    (r = init_index(st, cfg.id)) < 0 ||
	    (r = cairn_config__format(&text, &cfg, keys.cfg)) < 0)
		goto out;
	if ((r = put_config(st, &text)) == -EEXIST)
		cairn_storage_remove(st, CAIRN_OBJ_KEY, name); /* not ours to add to */
	if (r >= 0 && cache) {
		cairn_cache__put(cache, CAIRN_OBJ_CONFIG, "", text.data, text.len);
		cairn_repo__remember_key(cairn_storage_state_dir(st), name, true);
	}
out:
	if (r < 0) {
		char why[1024];
		snprintf(why, sizeof(why), "%s", cairn_err_msg());
		undo_init(st, made_dir, name);
		r = cairn_err_set(r, "%s", why);
	}
	cairn_cache__close(cache);
	if (r == -EEXIST && cache) /* it holds our key, not the one there */
		clear_state(cairn_storage_state_dir(st));
	cairn_crypt__wipe(&keys);
	OPENSSL_cleanse(&s, sizeof(s));
	return r;
}

int cairn_repo_init(const char *url, const char *pw, size_t pwlen, const struct cairn_init_opts *o)
{
	cairn_storage *st;
	int r = cairn_storage_open(&st, url, o ? o->storage : NULL);
	if (r < 0)
		return r;
	r = init_in(st, pw, pwlen, o);
	cairn_storage_close(st);
	return r;
}

/* ---- open ------------------------------------------------------------------------ */

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
	if (*created && repo->read_only && !repo->cache)
		return cairn_err_set(-ENOENT,
		                     "repository '%s' has no index: run 'cairn rebuild-index'",
		                     cairn_storage_url(repo->st));
	/* A write-only key reads only the headers of its own packs (FORMAT.md §6.2):
	 * what it would rebuild is not the repository's index, which a local
	 * repository shares with everyone who reads it. */
	if (*created && repo->keys.write_only && !repo->cache)
		return cairn_err_set(-ENOENT,
		                     "repository '%s' has no index: run 'cairn rebuild-index' with "
		                     "an admin key",
		                     cairn_storage_url(repo->st));
	/* A cache's index is ours to fill, even for a read-only open. */
	bool ro = repo->read_only && !repo->cache;
	if (!ro && (r = cairn_mkdir_p(dir, 0700)) < 0)
		return r;
	/* An index of an older layout is emptied by a writable open, and then
	 * rebuilt: a write-only key could not, so it leaves it as it is. */
	if (!ro && repo->keys.write_only && !repo->cache &&
	    (r = cairn_index__open(&repo->index, dir, true, repo->cfg.id)) == -EPROTO)
		return cairn_err_wrap(r,
		                      "index of '%s' has an older layout: run 'cairn "
		                      "rebuild-index' with an admin key",
		                      cairn_storage_url(repo->st));
	cairn_index__close(TAKE_PTR(repo->index));
	r = cairn_index__open(&repo->index, dir, ro, repo->cfg.id);
	/* A read-only command after an upgrade: the index is a cache, which it
	 * rebuilds where it can write it (FORMAT.md §7). */
	if (r == -EPROTO && ro && access(dir, W_OK) == 0)
		r = cairn_index__open(&repo->index, dir, false, repo->cfg.id);
	if (r < 0)
		return cairn_err_wrap(r, "cannot open the index of '%s'",
		                      cairn_storage_url(repo->st));
	*created = *created || r == 1;
	return 0;
}

static int load_config(cairn_repo *repo)
{
	_cleanup_buf_ struct cairn_buf text = CAIRN_BUF_INIT;
	int r = repo->cache ? read_remote_config(repo, &text) : read_config(repo->st, &text);
	if (r < 0)
		return r;
	if ((r = cairn_config__parse(&repo->cfg, (const char *)text.data, text.len)) < 0)
		return cairn_err_wrap(r, "config of '%s'", cairn_storage_url(repo->st));
	if (!(repo->config_text = strndup((const char *)text.data, text.len)))
		return cairn_err_set(-ENOMEM, "out of memory");
	return 0;
}

static int load(cairn_repo *repo, const char *pw, size_t pwlen, const struct cairn_repo_opts *o)
{
	bool created = false;
	int r;

	if ((r = load_config(repo)) < 0 ||
	    (r = cairn_repo__unlock(repo, pw, pwlen, o && o->allow_write_only)) < 0)
		return r;
	/* What a write-only key cannot read back: its parents (FORMAT.md §14). */
	if (repo->keys.write_only &&
	    (r = cairn_hostcache__open(&repo->hostcache,
	                               o && o->storage ? o->storage->cache_dir : NULL, repo->cfg.id,
	                               repo->keys.id)) < 0)
		return r;
	atomic_store(&repo->compression, repo->cfg.compression);
	if ((r = cairn_chunker_new(&repo->chunker, &repo->cfg.chunk, repo->keys.gear)) < 0)
		return r;
	if (o && o->no_index)
		return 0;
	if ((r = open_index(repo, &created)) < 0)
		return r;
	repo->fresh_index = created;
	if (created && !repo->cache) {
		/* The index is a cache (FORMAT.md §7): a missing one is rebuilt. */
		cairn_repo__warn(repo,
		                 "index of '%s' is missing or of an older layout: rebuilding it "
		                 "from the packs",
		                 cairn_storage_url(repo->st));
		return (r = cairn_repo__rebuild_index(repo)) < 0 ? r : 0;
	}
	if (!repo->cache || repo->offline)
		return 0;
	if (o && o->lock_first && !repo->read_only) {
		atomic_store(&repo->update_at_lock, true);
		return 0;
	}
	return cairn_repo__refresh(repo);
}

/* A copy into a directory that a sync has not finished holds a config and
 * keys, and so looks like a repository with fewer snapshots: used as one, a
 * `sync --delete` from it would empty a whole copy elsewhere. */
static int check_whole(cairn_repo *repo, const struct cairn_repo_opts *o)
{
	char mark[PATH_MAX];
	if ((cairn_storage_caps(repo->st) & CAIRN_STORAGE_REMOTE) || (o && o->incomplete_ok))
		return 0;
	int r = cairn_repo__path(repo, mark, sizeof(mark), CAIRN_INCOMPLETE_FILE);
	if (r >= 0 && access(mark, F_OK) == 0)
		return cairn_err_set(-EBUSY,
		                     "'%s' is an unfinished copy (a 'cairn sync' into it was "
		                     "interrupted): run that sync again to finish it",
		                     cairn_storage_url(repo->st));
	return r < 0 ? r : 0;
}

static int setup(cairn_repo *repo, const char *url, const struct cairn_repo_opts *o)
{
	int r = cairn_storage_open(&repo->st, url, o ? o->storage : NULL);
	if (r < 0)
		return r;
	if (!(repo->state = strdup(cairn_storage_state_dir(repo->st))))
		return cairn_err_set(-ENOMEM, "out of memory");
	if ((r = check_whole(repo, o)) < 0)
		return r;
	if (cairn_storage_caps(repo->st) & CAIRN_STORAGE_REMOTE)
		return cairn_cache__open(&repo->cache, repo->st, o ? o->cache_size : 0);
	return 0;
}

int cairn_repo_open(cairn_repo **out, const char *url, const char *pw, size_t pwlen,
                    const struct cairn_repo_opts *o)
{
	cairn_repo *repo = calloc(1, sizeof(*repo));
	if (!repo)
		return cairn_err_set(-ENOMEM, "out of memory");
	pthread_mutex_init(&repo->lock, NULL);
	pthread_mutex_init(&repo->doomed_lock, NULL);
	pthread_mutex_init(&repo->refresh_lock, NULL);
	cairn_idset_init(&repo->pending);
	cairn_idset_init(&repo->doomed);
	cairn_idset_init(&repo->adopted);
	cairn_idset_init(&repo->damaged_warned);
	cairn_idset_init(&repo->present);
	if (o) {
		repo->read_only = o->read_only;
		repo->warn = o->warn;
		repo->warn_payload = o->warn_payload;
	}
	int r = setup(repo, url, o);
	if (r >= 0)
		r = load(repo, pw, pwlen, o);
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
		for (struct cairn_packer *p = repo->idle[i], *next; p; p = next) {
			next = p->next;
			cairn_packw__free(p->w); /* unfinished: its temp file goes */
			free(p);
		}
	cairn_repo__unnamed_free(repo);
	cairn_index__close(repo->index);
	cairn_cache__close(repo->cache);
	cairn_hostcache__close(repo->hostcache);
	cairn_storage_close(repo->st);
	cairn_chunker_free(repo->chunker);
	cairn_idset_release(&repo->pending);
	cairn_idset_release(&repo->doomed);
	cairn_idset_release(&repo->adopted);
	cairn_idset_release(&repo->damaged_warned);
	cairn_idset_release(&repo->present);
	cairn_crypt__wipe(&repo->keys);
	pthread_mutex_destroy(&repo->lock);
	pthread_mutex_destroy(&repo->doomed_lock);
	pthread_mutex_destroy(&repo->refresh_lock);
	free(repo->config_text);
	free(repo->state);
	free(repo->snap_ids);
	free(repo);
}
