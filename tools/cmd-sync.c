/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* cairn sync: copy a repository to S3 and rebuild one from S3 (docs/S3.md). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "cleanup.h"
#include "cli.h"
#include "remote.h"
#include "s3.h"
#include "sigv4.h"

static const char usage[] =
        "usage: cairn sync [OPTIONS] s3://BUCKET[/PREFIX]\n"
        "       cairn sync [OPTIONS] --from s3://BUCKET[/PREFIX] -r DIR\n"
        "\n"
        "The first form uploads the repository (-r or CAIRN_REPO) to the bucket: every\n"
        "config, key, pack and snapshot object the bucket lacks, packs before the\n"
        "snapshots that need them. What was uploaded is remembered in the local index,\n"
        "so a sync with nothing new makes a few requests, and a sync that was\n"
        "interrupted finishes the job when run again. The second form downloads a\n"
        "complete repository into DIR, verifies every pack, and rebuilds the index.\n"
        "\n"
        "  --verify                list the bucket and compare every object (size, MD5)\n"
        "  --delete                after uploading, remove remote snapshots, packs and keys\n"
        "                          that no longer exist locally (after prune, key remove)\n"
        "  --from URL              download the repository at URL into -r DIR (new,\n"
        "                          empty, or holding this repository)\n"
        "  --s3-endpoint URL       an S3-compatible server (default: AWS_ENDPOINT_URL_S3,\n"
        "                          AWS_ENDPOINT_URL, the profile's endpoint_url, or AWS)\n"
        "  --s3-region REGION      (default: AWS_REGION, AWS_DEFAULT_REGION, the profile,\n"
        "                          us-east-1)\n"
        "  --s3-profile NAME       profile of ~/.aws/credentials and ~/.aws/config\n"
        "                          (default: AWS_PROFILE, default)\n"
        "  --s3-addressing STYLE   auto, path or virtual (auto: path-style for custom\n"
        "                          endpoints)\n"
        "  --s3-connections N      parallel transfers, 1 to 64 (default 8)\n"
        "  --s3-lock-days N        upload with S3 Object Lock retention for N days\n"
        "  --s3-lock-mode MODE     compliance (default) or governance\n"
        "\n"
        "Credentials come from AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and\n"
        "AWS_SESSION_TOKEN, or from the profile; they are never taken on the command line.\n";

enum {
	OPT_VERIFY = OPT_FIRST_COMMAND_OPT,
	OPT_DELETE,
	OPT_FROM,
	OPT_ENDPOINT,
	OPT_REGION,
	OPT_PROFILE,
	OPT_ADDRESSING,
	OPT_CONNECTIONS,
	OPT_LOCK_DAYS,
	OPT_LOCK_MODE,
};

/* Objects of a repository (FORMAT.md §2); index/ and tmp/ are local only. */
enum kind {
	K_CONFIG = REMOTE_CONFIG,
	K_KEY = REMOTE_KEY,
	K_PACK = REMOTE_PACK,
	K_SNAPSHOT = REMOTE_SNAPSHOT
};

#define REL_MAX 96
#define CONFIG_MAX 8192
#define KEY_MAX 65536
#define SNAPSHOT_FILE_MAX (CAIRN_SNAPSHOT_MAX_SIZE + 4096u)
#define PACK_FILE_MAX (8ull << 30)

struct sync {
	cairn_s3 *s3;
	cairn_s3_conn *conn; /* the main thread's connection */
	cairn_repo *repo;
	cairn_lock *lock;
	int remote_lock; /* flock of locks/sync-<remote>.flock, or -1 */
	const char *dir;
	char *bucket, *prefix;
	char url[600];
	char table[128];
	bool verify, del;
	struct remote_objs local, remote;
	bool listed; /* remote holds a full listing */
	_Atomic uint64_t objects, bytes, present, deleted;
};

struct sync_opts {
	struct cairn_s3_opts s3;
	const char *from;
	bool verify, del;
};

/* ---- options -------------------------------------------------------------- */

static int handle_opt(int c, const char *arg, void *payload)
{
	struct sync_opts *o = payload;
	long v;
	int r = 0;
	switch (c) {
	case OPT_VERIFY:
		o->verify = true;
		break;
	case OPT_DELETE:
		o->del = true;
		break;
	case OPT_FROM:
		o->from = arg;
		break;
	case OPT_ENDPOINT:
		o->s3.endpoint = arg;
		break;
	case OPT_REGION:
		o->s3.region = arg;
		break;
	case OPT_PROFILE:
		o->s3.profile = arg;
		break;
	case OPT_ADDRESSING:
		if (strcmp(arg, "auto") == 0)
			o->s3.addressing = CAIRN_S3_ADDR_AUTO;
		else if (strcmp(arg, "path") == 0)
			o->s3.addressing = CAIRN_S3_ADDR_PATH;
		else if (strcmp(arg, "virtual") == 0)
			o->s3.addressing = CAIRN_S3_ADDR_VIRTUAL;
		else
			r = cairn_err_set(-EINVAL, "--s3-addressing must be auto, path or virtual");
		break;
	case OPT_CONNECTIONS:
		if ((r = cli_parse_int(arg, 1, CAIRN_S3_CONNECTIONS_MAX, &v)) >= 0)
			o->s3.connections = (unsigned)v;
		else
			r = cairn_err_wrap(r, "--s3-connections");
		break;
	case OPT_LOCK_DAYS:
		if ((r = cli_parse_int(arg, 1, 36500, &v)) >= 0)
			o->s3.lock_days = (unsigned)v;
		else
			r = cairn_err_wrap(r, "--s3-lock-days");
		break;
	case OPT_LOCK_MODE:
		if (strcmp(arg, "compliance") == 0)
			o->s3.lock_mode = CAIRN_S3_LOCK_COMPLIANCE;
		else if (strcmp(arg, "governance") == 0)
			o->s3.lock_mode = CAIRN_S3_LOCK_GOVERNANCE;
		else
			r = cairn_err_set(-EINVAL,
			                  "--s3-lock-mode must be compliance or governance");
		break;
	default:
		r = cairn_err_set(-EINVAL, "unknown option");
	}
	return r;
}

/* ---- names ---------------------------------------------------------------- */

/* The kind of a repository-relative name, or -1 for anything cairn never writes. */
static int classify(const char *rel)
{
	return remote_classify(rel);
}

static int key_of(const struct sync *sy, const char *rel, char *out, size_t size)
{
	int n = snprintf(out, size, "%s%s%s", sy->prefix, sy->prefix[0] ? "/" : "", rel);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-EINVAL, "object name too long") : 0;
}

static int path_of(const struct sync *sy, const char *rel, char *out, size_t size)
{
	int n = snprintf(out, size, "%s/%s", sy->dir, rel);
	return n < 0 || (size_t)n >= size ? cairn_err_set(-ENAMETOOLONG, "path too long") : 0;
}

/* The local state table names endpoint, bucket and prefix: two remotes with the
 * same bucket name must not share what is known to be uploaded. */
static void table_name(struct sync *sy)
{
	char id[900], hex[65];
	int n = snprintf(id, sizeof(id), "%s/%s/%s", cairn_s3_endpoint(sy->s3), sy->bucket,
	                 sy->prefix);
	if (n > 0 && (size_t)n < 100) {
		snprintf(sy->table, sizeof(sy->table), "sync:%s", id);
		return;
	}
	cairn_sigv4_sha256_hex(hex, id, strlen(id)); /* LMDB names are short */
	snprintf(sy->table, sizeof(sy->table), "sync:%.40s", hex);
}

/* ---- item lists ----------------------------------------------------------- */

/* ---- state table ---------------------------------------------------------- */

static int state_put(struct sync *sy, const char *rel, uint64_t size, const char *etag)
{
	char v[160];
	int n = snprintf(v, sizeof(v), "%llu %s", (unsigned long long)size, etag);
	return cairn_repo_state_put(sy->repo, sy->table, rel, strlen(rel), v, (size_t)n);
}

/* 1 if the state records rel with this size (and ETag, when etag is given). */
static int state_has(struct sync *sy, const char *rel, uint64_t size, const char *etag)
{
	_cleanup_buf_ struct cairn_buf v = CAIRN_BUF_INIT;
	char text[160], *end;
	int r = cairn_repo_state_get(sy->repo, sy->table, rel, strlen(rel), &v);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	if (v.len >= sizeof(text))
		return 0;
	memcpy(text, v.data, v.len);
	text[v.len] = '\0';
	unsigned long long got = strtoull(text, &end, 10);
	if (*end != ' ' || got != size)
		return 0;
	return !etag || strcmp(end + 1, etag) == 0;
}

/* ---- local files ---------------------------------------------------------- */

static int file_md5(const char *path, uint64_t *size, char hex[33])
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	uint8_t md[16];
	int r = cairn_file_slurp(path, KEY_MAX, &b);
	if (r < 0)
		return r;
	EVP_Digest(b.data, b.len, md, NULL, EVP_md5(), NULL);
	cairn_hex(hex, md, sizeof(md));
	*size = b.len;
	return 0;
}

static int add_small_file(struct sync *sy, const char *rel, enum kind kind)
{
	char path[4096], md5[33];
	uint64_t size;
	int r = path_of(sy, rel, path, sizeof(path));
	if (r >= 0 && (r = file_md5(path, &size, md5)) < 0)
		return r;
	return r < 0 ? r : remote_objs_add(&sy->local, rel, kind, size, md5);
}

static int gather_keys(struct sync *sy)
{
	char dir[4096], rel[REL_MAX];
	int r = path_of(sy, "keys", dir, sizeof(dir));
	if (r < 0)
		return r;
	_cleanup_closedir_ DIR *d = opendir(dir);
	if (!d)
		return cairn_err_set(-errno, "cannot read '%s': %s", dir, strerror(errno));
	struct dirent *de;
	while ((de = readdir(d))) {
		snprintf(rel, sizeof(rel), "keys/%.20s", de->d_name);
		if (classify(rel) == K_KEY && (r = add_small_file(sy, rel, K_KEY)) < 0)
			return r;
	}
	return 0;
}

static int add_pack(const struct cairn_id *pack, uint64_t size, void *payload)
{
	char hex[CAIRN_ID_HEX_SIZE], rel[REL_MAX];
	cairn_id_hex(hex, pack);
	snprintf(rel, sizeof(rel), "packs/%.2s/%s", hex, hex);
	return remote_objs_add(payload, rel, K_PACK, size, NULL);
}

static int gather_snapshots(struct sync *sy)
{
	_cleanup_free_ struct cairn_id *ids = NULL;
	char hex[CAIRN_ID_HEX_SIZE], rel[REL_MAX], path[4096];
	size_t n = 0;
	int r = cairn_repo_snapshot_ids(sy->repo, &ids, &n);
	for (size_t i = 0; r >= 0 && i < n; i++) {
		struct stat st;
		cairn_id_hex(hex, &ids[i]);
		snprintf(rel, sizeof(rel), "snapshots/%s", hex);
		if ((r = path_of(sy, rel, path, sizeof(path))) < 0)
			break;
		if (stat(path, &st) < 0)
			continue; /* deleted since the listing (forget, prune) */
		r = remote_objs_add(&sy->local, rel, K_SNAPSHOT, (uint64_t)st.st_size, NULL);
	}
	return r;
}

/* Snapshots are listed before packs: a backup finishing in between adds a
 * snapshot only after its packs are durable (FORMAT.md §8), so every snapshot
 * seen here has its packs in the pack listing that follows. */
static int gather_local(struct sync *sy)
{
	int r;
	if ((r = gather_snapshots(sy)) < 0 || (r = add_small_file(sy, "config", K_CONFIG)) < 0 ||
	    (r = gather_keys(sy)) < 0 ||
	    (r = cairn_repo_foreach_pack(sy->repo, add_pack, &sy->local)) < 0)
		return r;
	remote_objs_sort(&sy->local);
	return 0;
}

/* ---- remote listing ------------------------------------------------------- */

static int list_remote(struct sync *sy)
{
	int r = remote_list(sy->conn, sy->prefix, &sy->remote);
	if (r >= 0)
		sy->listed = true;
	return r;
}

/* ---- parallel transfers --------------------------------------------------- */

typedef int (*job_fn)(struct sync *sy, cairn_s3_conn *c, struct remote_obj *it);

struct jobs {
	struct sync *sy;
	struct remote_obj **v;
	job_fn fn;
};

static int run_job(cairn_s3_conn *c, size_t i, void *payload)
{
	struct jobs *j = payload;
	return j->fn(j->sy, c, j->v[i]);
}

/* Run fn over the items of one kind that are marked (want[i]). */
static int run_kind(struct sync *sy, const struct remote_objs *l, const bool *want, enum kind kind,
                    job_fn fn)
{
	_cleanup_free_ struct remote_obj **jobs = calloc(l->n ? l->n : 1, sizeof(*jobs));
	size_t n = 0;
	if (!jobs)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n; i++)
		if (want[i] && l->v[i].kind == (int)kind)
			jobs[n++] = &l->v[i];
	struct jobs j = { .sy = sy, .v = jobs, .fn = fn };
	return cairn_s3_parallel(sy->s3, sy->conn, n, run_job, &j);
}

/* ---- push ----------------------------------------------------------------- */

static int abort_one(const char *key, const char *upload_id, void *payload)
{
	struct sync *sy = payload;
	log_info("aborting an abandoned multipart upload of s3://%s/%s", sy->bucket, key);
	return cairn_s3_upload_abort(sy->conn, key, upload_id);
}

/* Uploads this tool started and never finished (killed) hold storage: drop them. */
static int abort_stale_uploads(struct sync *sy)
{
	char prefix[600];
	snprintf(prefix, sizeof(prefix), "%s%s", sy->prefix, sy->prefix[0] ? "/" : "");
	return cairn_s3_uploads_list(sy->conn, prefix, abort_one, sy);
}

static int config_id(const char *text, size_t len, char id[33])
{
	const char *p = memmem(text, len, "\nid = ", 6);
	if (!p || (size_t)(text + len - p) < 6 + 32)
		return cairn_err_set(-EBADMSG, "config without an id");
	memcpy(id, p + 6, 32);
	id[32] = '\0';
	return 0;
}

/* The remote config differs from ours: refuse if it is another repository. */
static int same_repository(struct sync *sy, const char *key)
{
	_cleanup_buf_ struct cairn_buf remote = CAIRN_BUF_INIT, local = CAIRN_BUF_INIT;
	char path[4096], rid[33], lid[33];
	int r = cairn_s3_get(sy->conn, key, 0, 0, CONFIG_MAX, &remote);
	if (r >= 0 && (r = path_of(sy, "config", path, sizeof(path))) >= 0)
		r = cairn_file_slurp(path, CONFIG_MAX, &local);
	if (r >= 0 && (r = config_id((const char *)local.data, local.len, lid)) >= 0 &&
	    config_id((const char *)remote.data, remote.len, rid) < 0)
		return cairn_err_set(-EEXIST, "%s holds something else than a cairn repository",
		                     sy->url);
	if (r >= 0 && strcmp(rid, lid) != 0)
		return cairn_err_set(-EEXIST, "%s holds another repository (id %s, local %s)",
		                     sy->url, rid, lid);
	return r;
}

/* The one cheap check of a run: does the remote config match what the state
 * recorded? If not, the state is stale (bucket emptied, lost, other server)
 * and the remote is listed instead. Returns 1 when the state can be trusted. */
static int check_remote(struct sync *sy)
{
	struct cairn_s3_obj head;
	const struct remote_obj *cfg = remote_objs_find(&sy->local, "config");
	char key[700];
	int r = key_of(sy, "config", key, sizeof(key));
	if (r < 0 || (r = cairn_s3_head(sy->conn, key, &head)) == -ENOENT)
		return r == -ENOENT ? 0 : r;
	if (r < 0)
		return r;
	if (head.size != cfg->size || strcmp(head.etag, cfg->etag) != 0) {
		r = same_repository(sy, key);
		return r < 0 ? r : 0;
	}
	return state_has(sy, "config", cfg->size, cfg->etag);
}

/* Is the remote copy of it good? config and keys: same MD5; packs and snapshots
 * are named by their content, so the same size is enough unless --verify. */
static int remote_matches(struct sync *sy, const struct remote_obj *it,
                          const struct remote_obj *rem)
{
	char path[4096], etag[129];
	if (!rem || rem->size != it->size)
		return 0;
	if (it->kind == K_CONFIG || it->kind == K_KEY)
		return strcmp(rem->etag, it->etag) == 0;
	if (!sy->verify)
		return 1;
	int r = path_of(sy, it->rel, path, sizeof(path));
	_cleanup_close_ int fd = r < 0 ? -1 : open(path, O_RDONLY | O_CLOEXEC);
	if (r >= 0 && fd < 0)
		return errno == ENOENT ? 1 : cairn_err_set(-errno, "cannot open '%s'", path);
	if (r >= 0 && (r = cairn_s3_file_etag(sy->s3, fd, it->size, etag)) >= 0)
		r = strcmp(etag, rem->etag) == 0;
	if (r == 0)
		log_warn("%s differs in %s: uploading it again", it->rel, sy->url);
	return r;
}

/* Decide what to upload: want[i] for local item i. */
static int plan(struct sync *sy, bool *want)
{
	for (size_t i = 0; i < sy->local.n; i++) {
		struct remote_obj *it = &sy->local.v[i];
		bool small = it->kind == K_CONFIG || it->kind == K_KEY;
		int r;
		if (sy->listed) {
			struct remote_obj *rem = remote_objs_find(&sy->remote, it->rel);
			r = remote_matches(sy, it, rem);
			if (r == 1)
				r = state_put(sy, it->rel, rem->size, rem->etag);
			else if (r == 0)
				want[i] = true;
		} else {
			r = state_has(sy, it->rel, it->size, small ? it->etag : NULL);
			want[i] = r == 0;
		}
		if (r < 0)
			return r;
		if (!want[i])
			atomic_fetch_add(&sy->present, 1);
	}
	return 0;
}

static int upload_one(struct sync *sy, cairn_s3_conn *c, struct remote_obj *it)
{
	char path[4096], key[700];
	struct cairn_s3_obj obj;
	struct stat st;
	int r = path_of(sy, it->rel, path, sizeof(path));
	if (r < 0 || (r = key_of(sy, it->rel, key, sizeof(key))) < 0)
		return r;
	_cleanup_close_ int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 && errno == ENOENT && (it->kind == K_PACK || it->kind == K_SNAPSHOT)) {
		log_info("%s was removed locally during the sync (prune?): skipped", it->rel);
		return 0;
	}
	if (fd < 0 || fstat(fd, &st) < 0)
		return cairn_err_set(-errno, "cannot read '%s': %s", path, strerror(errno));
	if ((r = cairn_s3_put_file(c, key, fd, (uint64_t)st.st_size, &obj)) < 0)
		return r;
	log_debug("uploaded %s (%llu bytes)", it->rel, (unsigned long long)obj.size);
	/* Recorded only now: a killed sync uploads this object again, never skips it. */
	if ((r = state_put(sy, it->rel, obj.size, obj.etag)) < 0)
		return r;
	atomic_fetch_add(&sy->objects, 1);
	atomic_fetch_add(&sy->bytes, obj.size);
	return 0;
}

static int delete_one(struct sync *sy, cairn_s3_conn *c, struct remote_obj *it)
{
	char key[700];
	int r = key_of(sy, it->rel, key, sizeof(key));
	if (r >= 0)
		r = cairn_s3_delete(c, key);
	if (r >= 0)
		r = cairn_repo_state_del(sy->repo, sy->table, it->rel, strlen(it->rel));
	if (r == -ENOENT)
		r = 0;
	if (r >= 0) {
		log_debug("deleted %s from %s", it->rel, sy->url);
		atomic_fetch_add(&sy->deleted, 1);
	}
	return r;
}

/* --delete, once everything else is uploaded: snapshots first, so the remote
 * never has a snapshot whose packs are gone; the config is never deleted. */
static int delete_phase(struct sync *sy)
{
	static const enum kind order[] = { K_SNAPSHOT, K_PACK, K_KEY };
	_cleanup_free_ bool *gone = calloc(sy->remote.n ? sy->remote.n : 1, sizeof(bool));
	if (!gone)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < sy->remote.n; i++)
		gone[i] = sy->remote.v[i].kind != K_CONFIG &&
		          !remote_objs_find(&sy->local, sy->remote.v[i].rel);
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		int r = run_kind(sy, &sy->remote, gone, order[k], delete_one);
		if (r < 0)
			return r;
	}
	return 0;
}

/* Order: config and keys, then all packs, then the snapshots (FORMAT.md §8: a
 * snapshot on the remote always finds its packs there). */
static int upload_phase(struct sync *sy, const bool *want)
{
	static const enum kind order[] = { K_CONFIG, K_KEY, K_PACK, K_SNAPSHOT };
	for (size_t k = 0; k < ARRAY_SIZE(order); k++) {
		int r = run_kind(sy, &sy->local, want, order[k], upload_one);
		if (r < 0)
			return r;
	}
	return 0;
}

static int push(struct sync *sy)
{
	int r;
	/* ListMultipartUploads first: its errors carry a code (HEAD has no body). */
	if ((r = abort_stale_uploads(sy)) < 0 || (r = gather_local(sy)) < 0 ||
	    (r = check_remote(sy)) < 0)
		return r;
	bool trusted = r == 1;
	if (!trusted && (r = cairn_repo_state_drop(sy->repo, sy->table)) < 0 && r != -ENOENT)
		return r;
	if ((!trusted || sy->verify || sy->del) && (r = list_remote(sy)) < 0)
		return r;
	_cleanup_free_ bool *want = calloc(sy->local.n ? sy->local.n : 1, sizeof(bool));
	if (!want)
		return cairn_err_set(-ENOMEM, "out of memory");
	if ((r = plan(sy, want)) < 0 || (r = upload_phase(sy, want)) < 0)
		return r;
	return sy->del ? delete_phase(sy) : 0;
}

/* ---- pull ----------------------------------------------------------------- */

static int make_dirs(const char *dir)
{
	static const char *const subs[] = { "", "/keys", "/packs", "/snapshots", "/tmp" };
	char path[4096];
	for (size_t i = 0; i < ARRAY_SIZE(subs); i++) {
		snprintf(path, sizeof(path), "%s%s", dir, subs[i]);
		int r = cairn_mkdir_p(path, 0700);
		if (r < 0)
			return cairn_err_set(r, "cannot create '%s': %s", path, strerror(-r));
	}
	return 0;
}

/* A pull goes into a new or empty directory, or one with a repository in it (or
 * what a killed pull left of one); never among someone else's files. */
static int check_pull_target(const char *dir)
{
	static const char *const ours[] = { "config", "index",     "keys", "locks",
		                            "packs",  "snapshots", "tmp" };
	_cleanup_closedir_ DIR *d = opendir(dir);
	char foreign[256] = "";
	bool repo = false;
	struct dirent *de;
	if (!d)
		return errno == ENOENT ? 0
		                       : cairn_err_set(-errno, "cannot open '%s': %s", dir,
		                                       strerror(errno));
	while ((de = readdir(d))) {
		bool known = strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0;
		for (size_t i = 0; i < ARRAY_SIZE(ours); i++)
			known = known || strcmp(de->d_name, ours[i]) == 0;
		repo = repo || strcmp(de->d_name, "config") == 0;
		if (!known && !foreign[0])
			snprintf(foreign, sizeof(foreign), "%s", de->d_name);
	}
	if (foreign[0] && !repo)
		return cairn_err_set(-EEXIST,
		                     "'%s' is not empty and holds no repository (it has '%s'): "
		                     "pull into a new or empty directory",
		                     dir, foreign);
	return 0;
}

/* Leftovers of a pull that was killed: our temp files only. */
static void clean_tmp(const char *dir)
{
	char path[4096];
	snprintf(path, sizeof(path), "%s/tmp", dir);
	_cleanup_closedir_ DIR *d = opendir(path);
	struct dirent *de;
	while (d && (de = readdir(d)))
		if (strncmp(de->d_name, "s3pull.tmp.", 11) == 0)
			unlinkat(dirfd(d), de->d_name, 0);
}

/* Small objects are fetched into memory and written with tmp + fsync + rename. */
static int fetch_small(struct sync *sy, cairn_s3_conn *c, const struct remote_obj *it, size_t max)
{
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	char key[700], path[4096], tmpdir[4096];
	int r = key_of(sy, it->rel, key, sizeof(key));
	if (r >= 0 && (r = path_of(sy, it->rel, path, sizeof(path))) >= 0)
		r = path_of(sy, "tmp", tmpdir, sizeof(tmpdir));
	if (r >= 0)
		r = cairn_s3_get(c, key, 0, 0, max, &b);
	if (r >= 0 && b.len != it->size)
		r = cairn_err_set(-EPROTO, "%s changed during the download", it->rel);
	if (r >= 0)
		r = cairn_file_write_atomic(path, tmpdir, b.data, b.len);
	if (r >= 0) {
		atomic_fetch_add(&sy->objects, 1);
		atomic_fetch_add(&sy->bytes, b.len);
	}
	return r;
}

/* A local file of the same size is one an earlier run finished (renamed into
 * place only after verification). */
static bool have_file(struct sync *sy, const struct remote_obj *it)
{
	char path[4096];
	struct stat st;
	return path_of(sy, it->rel, path, sizeof(path)) >= 0 && stat(path, &st) == 0 &&
	       (uint64_t)st.st_size == it->size;
}

static int fetch_snapshot(struct sync *sy, cairn_s3_conn *c, struct remote_obj *it)
{
	if (have_file(sy, it)) {
		atomic_fetch_add(&sy->present, 1);
		return 0;
	}
	return fetch_small(sy, c, it, SNAPSHOT_FILE_MAX);
}

/* Verify the download against the pack's name (FORMAT.md §6.1: SHA-256 of the
 * file), then make it durable and rename it into place. */
static int install_pack(struct sync *sy, const struct remote_obj *it, int fd, const char *tmp,
                        const uint8_t sha[32], uint64_t size)
{
	char hex[65], path[4096], dir[4096];
	cairn_hex(hex, sha, 32);
	if (size != it->size)
		return cairn_err_set(-EPROTO, "%s changed during the download", it->rel);
	if (strcmp(hex, it->rel + 9) != 0)
		return cairn_err_set(-EBADMSG, "%s from %s is corrupt: its SHA-256 is %s", it->rel,
		                     sy->url, hex);
	if (fsync(fd) < 0)
		return cairn_err_set(-errno, "cannot fsync '%s': %s", tmp, strerror(errno));
	snprintf(dir, sizeof(dir), "%s/packs/%.2s", sy->dir, it->rel + 6);
	int r = cairn_mkdir_p(dir, 0700);
	if (r >= 0 && (r = path_of(sy, it->rel, path, sizeof(path))) >= 0 && rename(tmp, path) < 0)
		r = cairn_err_set(-errno, "cannot rename '%s': %s", tmp, strerror(errno));
	return r < 0 ? r : cairn_fsync_dir(dir);
}

static int fetch_pack(struct sync *sy, cairn_s3_conn *c, struct remote_obj *it)
{
	char key[700], tmp[4096];
	uint8_t sha[32];
	uint64_t size = 0;
	if (have_file(sy, it)) {
		atomic_fetch_add(&sy->present, 1);
		return 0;
	}
	int r = key_of(sy, it->rel, key, sizeof(key));
	if (r < 0)
		return r;
	snprintf(tmp, sizeof(tmp), "%s/tmp/s3pull.tmp.XXXXXX", sy->dir);
	_cleanup_close_ int fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return cairn_err_set(-errno, "cannot create '%s': %s", tmp, strerror(errno));
	r = cairn_s3_get_file(c, key, fd, PACK_FILE_MAX, sha, &size);
	if (r >= 0)
		r = install_pack(sy, it, fd, tmp, sha, size);
	if (r < 0) {
		unlink(tmp);
		return r;
	}
	atomic_fetch_add(&sy->objects, 1);
	atomic_fetch_add(&sy->bytes, size);
	return 0;
}

/* config first: refuse to mix two repositories in one directory. */
static int fetch_config(struct sync *sy, const struct remote_obj *cfg)
{
	_cleanup_buf_ struct cairn_buf mine = CAIRN_BUF_INIT, theirs = CAIRN_BUF_INIT;
	char path[4096], key[700], a[33], b[33];
	int r = path_of(sy, "config", path, sizeof(path));
	if (r < 0 || (r = cairn_file_slurp(path, CONFIG_MAX, &mine)) == -ENOENT)
		return r < 0 && r != -ENOENT ? r : fetch_small(sy, sy->conn, cfg, CONFIG_MAX);
	if (r < 0 || (r = key_of(sy, "config", key, sizeof(key))) < 0 ||
	    (r = cairn_s3_get(sy->conn, key, 0, 0, CONFIG_MAX, &theirs)) < 0)
		return r;
	if (config_id((const char *)mine.data, mine.len, a) < 0 ||
	    config_id((const char *)theirs.data, theirs.len, b) < 0 || strcmp(a, b) != 0)
		return cairn_err_set(-EEXIST, "'%s' holds another repository than %s", sy->dir,
		                     sy->url);
	return mine.len == theirs.len && memcmp(mine.data, theirs.data, mine.len) == 0
	               ? 0
	               : fetch_small(sy, sy->conn, cfg, CONFIG_MAX);
}

static int fetch_keys(struct sync *sy)
{
	size_t keys = 0;
	for (size_t i = 0; i < sy->remote.n; i++) {
		struct remote_obj *it = &sy->remote.v[i];
		if (it->kind != K_KEY)
			continue;
		keys++;
		if (have_file(sy, it)) {
			atomic_fetch_add(&sy->present, 1);
			continue;
		}
		int r = fetch_small(sy, sy->conn, it, KEY_MAX);
		if (r < 0)
			return r;
	}
	return keys ? 0 : cairn_err_set(-ENOENT, "%s has no key files", sy->url);
}

/* After the index is rebuilt: every snapshot must decrypt and verify. */
static int verify_snapshots(struct sync *sy)
{
	for (size_t i = 0; i < sy->remote.n; i++) {
		struct cairn_id id;
		struct cairn_snapshot *s;
		if (sy->remote.v[i].kind != K_SNAPSHOT)
			continue;
		int r = cairn_id_parse(&id, sy->remote.v[i].rel + 10);
		if (r >= 0)
			r = cairn_repo_snapshot_load(sy->repo, &id, &s);
		if (r < 0)
			return cairn_err_wrap(r, "snapshot from %s", sy->url);
		cairn_snapshot_free(s);
	}
	return 0;
}

/* Record what the bucket holds, so that a push from this copy is cheap. */
static int record_remote(struct sync *sy)
{
	for (size_t i = 0; i < sy->remote.n; i++) {
		int r = state_put(sy, sy->remote.v[i].rel, sy->remote.v[i].size,
		                  sy->remote.v[i].etag);
		if (r < 0)
			return r;
	}
	return 0;
}

static int pull_data(struct sync *sy)
{
	_cleanup_free_ bool *all = malloc(sy->remote.n ? sy->remote.n : 1);
	if (!all)
		return cairn_err_set(-ENOMEM, "out of memory");
	memset(all, 1, sy->remote.n);
	int r = run_kind(sy, &sy->remote, all, K_PACK, fetch_pack);
	if (r >= 0)
		r = run_kind(sy, &sy->remote, all, K_SNAPSHOT, fetch_snapshot);
	return r;
}

static int pull(struct sync *sy)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION, .no_index = true };
	int r;
	/* Exclusive: nothing else may use the directory while it is being filled. */
	if ((r = check_pull_target(sy->dir)) < 0 || (r = make_dirs(sy->dir)) < 0 ||
	    (r = cairn_lock_acquire(&sy->lock, sy->dir, CAIRN_LOCK_EXCLUSIVE, "sync", 0)) < 0 ||
	    (r = list_remote(sy)) < 0)
		return r;
	clean_tmp(sy->dir);
	const struct remote_obj *cfg = remote_objs_find(&sy->remote, "config");
	if (!cfg)
		return cairn_err_set(-ENOENT, "%s holds no cairn repository (no 'config')",
		                     sy->url);
	/* The password is checked before the packs are downloaded. */
	if ((r = fetch_config(sy, cfg)) < 0 || (r = fetch_keys(sy)) < 0 ||
	    (r = cli_open_repo(&sy->repo, &ro)) < 0 || (r = pull_data(sy)) < 0)
		return r;
	if ((r = cairn_repo_rebuild_index(sy->repo)) < 0)
		return r;
	log_info("index rebuilt from %d packs", r);
	if ((r = verify_snapshots(sy)) < 0)
		return r;
	return record_remote(sy);
}

/* ---- command -------------------------------------------------------------- */

static void sync_release(struct sync *sy)
{
	cairn_s3_conn_free(sy->conn);
	cairn_s3_free(sy->s3);
	cairn_repo_close(sy->repo);
	cairn_lock_release(sy->lock);
	if (sy->remote_lock >= 0)
		close(sy->remote_lock);
	free(sy->local.v);
	free(sy->remote.v);
	free(sy->bucket);
	free(sy->prefix);
}

static void summary(struct sync *sy, bool pulling)
{
	char size[32];
	if (cairn_log_get_level() < CAIRN_LOG_NOTICE)
		return;
	cli_fmt_bytes(size, sizeof(size), atomic_load(&sy->bytes));
	printf("%s %s: %llu objects %s (%s), %llu already there",
	       pulling ? "pulled from" : "synced to", sy->url,
	       (unsigned long long)atomic_load(&sy->objects), pulling ? "downloaded" : "uploaded",
	       size, (unsigned long long)atomic_load(&sy->present));
	if (sy->del)
		printf(", %llu deleted", (unsigned long long)atomic_load(&sy->deleted));
	printf("; %llu requests\n", (unsigned long long)cairn_s3_requests(sy->s3));
}

static int setup(struct sync *sy, const char *url, const struct sync_opts *o)
{
	int r = cairn_s3_url_parse(url, &sy->bucket, &sy->prefix);
	if (r < 0 || (r = cairn_s3_new(&sy->s3, sy->bucket, &o->s3)) < 0 ||
	    (r = cairn_s3_conn_new(&sy->conn, sy->s3)) < 0)
		return r;
	snprintf(sy->url, sizeof(sy->url), "s3://%s%s%s", sy->bucket, sy->prefix[0] ? "/" : "",
	         sy->prefix);
	table_name(sy);
	sy->verify = o->verify;
	sy->del = o->del;
	log_info("S3: %s", cairn_s3_describe(sy->s3));
	return cli_repo_path(&sy->dir);
}

/* One push to a remote at a time from this repository: each would abort the
 * other's multipart uploads as abandoned (docs/S3.md §2). Held until exit. */
static int lock_remote(struct sync *sy)
{
	char hex[65], path[4096];
	cairn_sigv4_sha256_hex(hex, sy->table, strlen(sy->table));
	if (snprintf(path, sizeof(path), "%s/locks/sync-%.40s.flock", sy->dir, hex) >=
	    (int)sizeof(path))
		return cairn_err_set(-ENAMETOOLONG, "path too long");
	sy->remote_lock = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (sy->remote_lock < 0)
		return cairn_err_set(-errno, "cannot create '%s': %s", path, strerror(errno));
	if (flock(sy->remote_lock, LOCK_EX | LOCK_NB) < 0)
		return cairn_err_set(-EBUSY, "another sync to %s is running from this repository",
		                     sy->url);
	return 0;
}

static int run(struct sync *sy, const char *url, const struct sync_opts *o)
{
	struct cairn_repo_opts ro = { .version = CAIRN_REPO_OPTS_VERSION };
	int r = setup(sy, url, o);
	if (r < 0)
		return r;
	if (o->from)
		return pull(sy);
	/* The remote first: a second push fails before it opens anything. Then a
	 * shared lock, like backup: prune must not delete packs being uploaded. */
	const char *local;
	if ((r = cli_local_repo_path(&local)) < 0 || (r = cairn_repo_probe(sy->dir)) < 0 ||
	    (r = lock_remote(sy)) < 0 || (r = cli_open_repo(&sy->repo, &ro)) < 0 ||
	    (r = cairn_lock_acquire(&sy->lock, sy->dir, CAIRN_LOCK_SHARED, "sync", 0)) < 0)
		return r;
	return push(sy);
}

int cmd_sync(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_COMMON_LONGOPTS,
		{ "verify", no_argument, NULL, OPT_VERIFY },
		{ "delete", no_argument, NULL, OPT_DELETE },
		{ "from", required_argument, NULL, OPT_FROM },
		{ "s3-endpoint", required_argument, NULL, OPT_ENDPOINT },
		{ "s3-region", required_argument, NULL, OPT_REGION },
		{ "s3-profile", required_argument, NULL, OPT_PROFILE },
		{ "s3-addressing", required_argument, NULL, OPT_ADDRESSING },
		{ "s3-connections", required_argument, NULL, OPT_CONNECTIONS },
		{ "s3-lock-days", required_argument, NULL, OPT_LOCK_DAYS },
		{ "s3-lock-mode", required_argument, NULL, OPT_LOCK_MODE },
		{ 0 },
	};
	struct sync_opts o = { .s3 = { .version = CAIRN_S3_OPTS_VERSION } };
	struct sync sy = { .remote_lock = -1 };

	int i = cli_parse(argc, argv, "", longopts, usage, handle_opt, &o);
	if (i < 0)
		return CLI_PARSE_EXIT(i);
	if (o.from && i != argc)
		return cli_usage_error("sync --from: unexpected argument '%s'", argv[i]);
	if (!o.from && i + 1 != argc)
		return cli_usage_error("sync: give one s3://BUCKET[/PREFIX] (or --from URL)");
	if (o.from && (o.verify || o.del || o.s3.lock_days))
		return cli_usage_error("sync --from: --verify, --delete and --s3-lock-days are "
		                       "for uploads");
	const char *url = o.from ? o.from : argv[i];
	if (strncmp(url, "s3://", 5) != 0)
		return cli_usage_error("sync: '%s' is not an s3://BUCKET[/PREFIX] URL", url);
	int r = run(&sy, url, &o);
	if (r >= 0)
		summary(&sy, o.from != NULL);
	int code = r < 0 ? cli_fail(r) : 0; /* before release: it may reset the message */
	sync_release(&sy);
	return code;
}
