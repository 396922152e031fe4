/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* The S3 request engine (sign, send, classify, retry) and the S3 operations. */
#include "s3.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "sigv4.h"

/*
 * Concurrency: a thread pool, not the multi interface. Each worker thread owns a
 * cairn_s3_conn (one easy handle, so one keep-alive connection), and blocking
 * calls keep the retry loop, file I/O and hashing straight-line code in the
 * thread that does the work. The shared cairn_s3 only holds immutable settings,
 * atomic counters and the gate below.
 *
 * The gate is the adaptive slow-down: at most `limit` requests are in flight.
 * A throttling reply (429, 503, SlowDown) halves the limit; `limit` successes in a
 * row raise it by one, up to the configured connections (AIMD, as TCP does).
 */
struct gate {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	unsigned limit, max; /* protected by lock */
	unsigned active;     /* protected by lock */
	unsigned streak;     /* successes since the limit last changed; protected by lock */
};

struct cairn_s3 {
	struct cairn_s3__config cfg;
	char *bucket;
	char desc[512];
	char endpoint[300];
	unsigned connections;
	unsigned lock_days;
	int lock_mode;
	unsigned max_attempts;
	unsigned stall_attempts; /* 0: max_attempts */
	long stall_s;            /* the low-speed window: no byte for this long is a stall */
	uint64_t base_ms, cap_ms;
	uint64_t mp_threshold, part_size;
	int trace_fd; /* CAIRN_S3_TRACE: one line per HTTP request, for tests */
	_Atomic uint64_t requests;
	_Atomic uint64_t by_method[CAIRN_STORAGE_METHODS]; /* enum cairn_storage_method */
	_Atomic uint64_t bytes_up, bytes_down;
	struct gate gate;
	/* A request gave up with no reply from the server: until one gets a reply,
	 * each is tried once, so that a command with many to make (a restore's
	 * files, a mount's reads) fails in seconds, not a retry cycle each. */
	atomic_bool unreachable;
};

struct cairn_s3_conn {
	cairn_s3 *s;
	CURL *curl;
	curl_socket_t sock; /* of the connection last made, until closed; or -1 */
	char errbuf[CURL_ERROR_SIZE];
};

#define ERRBODY_MAX (64u << 10) /* error replies are small; keep at most this */
#define MIN_PART (5u << 20)     /* S3's minimum part size (but the last) */
#define MAX_PARTS 10000u
#define LIST_PAGE "1000"
#define LIST_MAX ((size_t)1 << 24) /* keys in one listing */

/* ---- setup ------------------------------------------------------------------ */

static uint64_t env_u64(const char *name, uint64_t def, uint64_t min, uint64_t max)
{
	const char *e = getenv(name);
	char *end;
	if (!e || !*e)
		return def;
	errno = 0;
	unsigned long long v = strtoull(e, &end, 10);
	if (errno || *end || v < min || v > max) {
		log_debug("ignoring %s='%s' (expected %llu..%llu)", name, e,
		          (unsigned long long)min, (unsigned long long)max);
		return def;
	}
	return v;
}

static void load_tuning(cairn_s3 *s)
{
	s->max_attempts = (unsigned)env_u64("CAIRN_S3_RETRIES", 8, 1, 100);
	s->stall_s = (long)env_u64("CAIRN_S3_STALL_SECONDS", 60, 1, 3600); /* tests: shorter */
	s->base_ms = env_u64("CAIRN_S3_RETRY_BASE_MS", 200, 0, 60000);
	s->cap_ms = env_u64("CAIRN_S3_RETRY_CAP_MS", 20000, 0, 600000);
	s->mp_threshold = env_u64("CAIRN_S3_MULTIPART_THRESHOLD", 64u << 20, MIN_PART, 5ull << 40);
	s->part_size = env_u64("CAIRN_S3_PART_SIZE", 16u << 20, MIN_PART, 5ull << 30);
}

static void describe(cairn_s3 *s)
{
	const struct cairn_s3__config *c = &s->cfg;
	snprintf(s->endpoint, sizeof(s->endpoint), "%s://%s%s%s", c->scheme, c->host,
	         c->port[0] ? ":" : "", c->port);
	snprintf(s->desc, sizeof(s->desc), "bucket '%s' on %s (%s, %s)", s->bucket, s->endpoint,
	         c->path_style ? "path-style" : "virtual-hosted", c->region);
}

int cairn_s3_new(cairn_s3 **out, const char *bucket, const struct cairn_s3_opts *o)
{
	static const struct cairn_s3_opts defaults = { .version = CAIRN_S3_OPTS_VERSION };
	if (!o)
		o = &defaults;
	if (o->connections > CAIRN_S3_CONNECTIONS_MAX)
		return cairn_err_set(-EINVAL, "at most %d S3 connections",
		                     CAIRN_S3_CONNECTIONS_MAX);
	cairn_s3 *s = calloc(1, sizeof(*s));
	if (!s || !(s->bucket = strdup(bucket))) {
		free(s);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	s->trace_fd = -1;
	pthread_mutex_init(&s->gate.lock, NULL);
	pthread_cond_init(&s->gate.cond, NULL);
	int r = cairn_s3__config_load(&s->cfg, bucket, o);
	if (r < 0) {
		cairn_s3_free(s);
		return r;
	}
	s->connections = o->connections ? o->connections : CAIRN_S3_CONNECTIONS_DEFAULT;
	s->gate.limit = s->gate.max = s->connections;
	s->lock_days = o->lock_days;
	s->lock_mode = o->lock_mode;
	s->stall_attempts = o->stall_attempts;
	load_tuning(s);
	describe(s);
	const char *trace = getenv("CAIRN_S3_TRACE");
	if (trace && *trace &&
	    (s->trace_fd = open(trace, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
		log_debug("cannot open CAIRN_S3_TRACE file '%s': %s", trace, strerror(errno));
	*out = s;
	return 0;
}

void cairn_s3_free(cairn_s3 *s)
{
	if (!s)
		return;
	cairn_s3__config_release(&s->cfg);
	if (s->trace_fd >= 0)
		close(s->trace_fd);
	pthread_mutex_destroy(&s->gate.lock);
	pthread_cond_destroy(&s->gate.cond);
	free(s->bucket);
	free(s);
}

const char *cairn_s3_describe(const cairn_s3 *s)
{
	return s->desc;
}

const char *cairn_s3_endpoint(const cairn_s3 *s)
{
	return s->endpoint;
}

unsigned cairn_s3_connections(const cairn_s3 *s)
{
	return s->connections;
}

uint64_t cairn_s3_requests(const cairn_s3 *s)
{
	return atomic_load(&s->requests);
}

void cairn_s3_counts(const cairn_s3 *s, struct cairn_storage_stats *out)
{
	for (int i = 0; i < CAIRN_STORAGE_METHODS; i++)
		out->requests[i] = atomic_load(&s->by_method[i]);
	out->bytes_up = atomic_load(&s->bytes_up);
	out->bytes_down = atomic_load(&s->bytes_down);
}

int cairn_s3_conn_new(cairn_s3_conn **out, cairn_s3 *s)
{
	cairn_s3_conn *c = calloc(1, sizeof(*c));
	if (!c)
		return cairn_err_set(-ENOMEM, "out of memory");
	c->s = s;
	c->sock = CURL_SOCKET_BAD;
	if (!(c->curl = curl_easy_init())) {
		free(c);
		return cairn_err_set(-EIO, "cannot create a curl handle");
	}
	*out = c;
	return 0;
}

void cairn_s3_conn_free(cairn_s3_conn *c)
{
	if (!c)
		return;
	curl_easy_cleanup(c->curl);
	free(c);
}

/* ---- the adaptive gate ------------------------------------------------------ */

static void gate_enter(struct gate *g)
{
	pthread_mutex_lock(&g->lock);
	while (g->active >= g->limit)
		pthread_cond_wait(&g->cond, &g->lock);
	g->active++;
	pthread_mutex_unlock(&g->lock);
}

static void gate_leave(struct gate *g, bool throttled, bool ok)
{
	pthread_mutex_lock(&g->lock);
	g->active--;
	if (throttled) {
		unsigned limit = g->limit > 1 ? g->limit / 2 : 1;
		if (limit != g->limit)
			log_debug("S3 server is throttling: down to %u parallel requests", limit);
		g->limit = limit;
		g->streak = 0;
	} else if (ok && ++g->streak >= g->limit && g->limit < g->max) {
		g->limit++;
		g->streak = 0;
	}
	pthread_cond_broadcast(&g->cond);
	pthread_mutex_unlock(&g->lock);
}

unsigned cairn_s3__gate_limit(cairn_s3 *s)
{
	pthread_mutex_lock(&s->gate.lock);
	unsigned limit = s->gate.limit;
	pthread_mutex_unlock(&s->gate.lock);
	return limit;
}

/* ---- requests ------------------------------------------------------------- */

/* An upload body: memory, or a range of a file read with pread (rewindable). */
struct body {
	const uint8_t *mem;
	int fd;
	uint64_t off, len, pos;
	int err;
	/* The content's SHA-256 when known (a pack's name): signed as it is, for
	 * the server to check, instead of computed. */
	const uint8_t *sha256;
	EVP_MD_CTX *whole; /* when set, fed with the body too (a multipart file) */
};

enum sink_kind { SINK_NONE, SINK_MEM, SINK_FD };
struct sink {
	enum sink_kind kind;
	struct cairn_buf *mem;
	int fd;
	uint64_t max, got;
	EVP_MD_CTX *sha;
	int err; /* set when the sink refused data; the message is set too */
};

#define REQ_MAX_KV 6
struct req {
	const char *method;
	const char *key; /* NULL: the bucket itself */
	struct cairn_sigv4_kv query[REQ_MAX_KV];
	size_t nquery;
	struct cairn_sigv4_kv hdr[REQ_MAX_KV]; /* extra headers, signed and sent */
	size_t nhdr;
	bool has_body;
	struct body body;
	char sha256[65];
	struct sink sink;
	bool error_in_200; /* a 200 reply may still carry <Error> (CompleteMultipartUpload) */
	/* the reply */
	long status;
	char etag[129];
	bool etag_opaque; /* SSE-KMS or SSE-C: the ETag is no MD5 of the content */
	uint64_t length;
	bool have_length;
	uint64_t range_start;
	bool have_range;
	time_t date; /* the server's clock (Date); 0: none */
	struct cairn_buf errbody;
	const curl_socket_t *sock; /* its connection's, or CURL_SOCKET_BAD */
};

/* A GET of the bucket itself is a listing (ListObjectsV2, ListMultipartUploads...). */
static int method_of(const struct req *rq)
{
	if (strcmp(rq->method, "GET") == 0)
		return rq->key ? CAIRN_STORAGE_GET : CAIRN_STORAGE_LIST;
	if (strcmp(rq->method, "PUT") == 0)
		return CAIRN_STORAGE_PUT;
	if (strcmp(rq->method, "HEAD") == 0)
		return CAIRN_STORAGE_HEAD;
	if (strcmp(rq->method, "DELETE") == 0)
		return CAIRN_STORAGE_DELETE;
	return CAIRN_STORAGE_POST;
}

static void add_query(struct req *rq, const char *name, const char *value)
{
	assert(rq->nquery < REQ_MAX_KV);
	rq->query[rq->nquery++] = (struct cairn_sigv4_kv){ name, value };
}

static void add_header(struct req *rq, const char *name, const char *value)
{
	assert(rq->nhdr < REQ_MAX_KV);
	rq->hdr[rq->nhdr++] = (struct cairn_sigv4_kv){ name, value };
}

static size_t on_read(char *buf, size_t size, size_t n, void *arg)
{
	struct body *b = arg;
	size_t want = size * n;
	if (want > b->len - b->pos)
		want = (size_t)(b->len - b->pos);
	if (b->mem) {
		memcpy(buf, b->mem + b->pos, want);
	} else if (want > 0) {
		int r = cairn_pread_all(b->fd, buf, want, b->off + b->pos);
		if (r < 0) {
			b->err = cairn_err_set(
			        r == -EBADMSG ? -EIO : r,
			        "cannot read the file being uploaded (did it shrink?)");
			return CURL_READFUNC_ABORT;
		}
	}
	b->pos += want;
	return want;
}

static int on_seek(void *arg, curl_off_t off, int origin)
{
	struct body *b = arg;
	if (origin != SEEK_SET || off < 0 || (uint64_t)off > b->len)
		return CURL_SEEKFUNC_CANTSEEK;
	b->pos = (uint64_t)off;
	return CURL_SEEKFUNC_OK;
}

static int sink_put(struct sink *k, const char *p, size_t n)
{
	if (k->got + n > k->max)
		return k->err = cairn_err_set(-EFBIG, "object is larger than %llu bytes",
		                              (unsigned long long)k->max);
	k->got += n;
	if (k->kind == SINK_MEM)
		return k->err = cairn_buf_put(k->mem, p, n);
	if (k->kind == SINK_FD) {
		EVP_DigestUpdate(k->sha, p, n);
		int r = cairn_write_all(k->fd, p, n);
		if (r < 0)
			return k->err = cairn_err_set(r, "cannot write the download: %s",
			                              strerror(-r));
	}
	return 0;
}

static size_t on_write(char *p, size_t size, size_t n, void *arg)
{
	struct req *rq = arg;
	size_t len = size * n;
	if (rq->status < 200 || rq->status >= 300) {
		size_t room = ERRBODY_MAX - rq->errbody.len;
		return cairn_buf_put(&rq->errbody, p, len < room ? len : room) < 0 ? 0 : len;
	}
	return sink_put(&rq->sink, p, len) < 0 ? 0 : len;
}

static bool header_is(const char *line, size_t n, const char *name, const char **value)
{
	size_t l = strlen(name);
	if (n <= l || strncasecmp(line, name, l) != 0 || line[l] != ':')
		return false;
	*value = line + l + 1;
	return true;
}

/* Copy a header value without surrounding blanks, CR/LF and quotes. */
static void header_value(char *out, size_t size, const char *v, size_t n)
{
	while (n > 0 && (*v == ' ' || *v == '\t' || *v == '"')) {
		v++;
		n--;
	}
	while (n > 0 &&
	       (v[n - 1] == '\r' || v[n - 1] == '\n' || v[n - 1] == ' ' || v[n - 1] == '"'))
		n--;
	if (n >= size)
		n = 0; /* absurdly long: treat as absent */
	memcpy(out, v, n);
	out[n] = '\0';
}

/*
 * At the end of a reply's headers, acknowledge them at once. A server that
 * writes the body apart from the headers with Nagle's algorithm on (Ceph RGW
 * does) holds the body until the headers are acknowledged, and Linux delays
 * that ACK by up to 40 ms: each listing took 45 ms on loopback instead of 5.
 * Setting TCP_QUICKACK sends an ACK that is due right away (tcp(7)).
 */
static void ack_now(const curl_socket_t *sock)
{
	int one = 1;
	if (sock && *sock != CURL_SOCKET_BAD)
		(void)setsockopt(*sock, IPPROTO_TCP, TCP_QUICKACK, &one, sizeof(one));
}

/* curl's CURLINFO_ACTIVESOCKET answers only for CONNECT_ONLY: the connection's
 * socket is noted when made and forgotten when closed. */
static int on_sockopt(void *arg, curl_socket_t fd, curlsocktype purpose)
{
	if (purpose == CURLSOCKTYPE_IPCXN)
		((cairn_s3_conn *)arg)->sock = fd;
	return CURL_SOCKOPT_OK;
}

static int on_closesocket(void *arg, curl_socket_t fd)
{
	cairn_s3_conn *c = arg;
	if (c->sock == fd)
		c->sock = CURL_SOCKET_BAD;
	return close(fd);
}

static size_t on_header(char *line, size_t size, size_t n, void *arg)
{
	struct req *rq = arg;
	size_t len = size * n;
	const char *v;
	char buf[160];

	if (len == 2 && line[0] == '\r' && line[1] == '\n') {
		ack_now(rq->sock);
	} else if (len > 9 && strncmp(line, "HTTP/", 5) == 0) {
		/* A new status line (after "100 Continue" too): forget earlier headers. */
		const char *sp = memchr(line, ' ', len);
		rq->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		rq->etag[0] = '\0';
		rq->etag_opaque = false;
		rq->have_length = rq->have_range = false;
		rq->date = 0;
	} else if (header_is(line, len, "date", &v)) {
		header_value(buf, sizeof(buf), v, len - (size_t)(v - line));
		time_t t = curl_getdate(buf, NULL);
		rq->date = t > 0 ? t : 0;
	} else if (header_is(line, len, "etag", &v)) {
		header_value(rq->etag, sizeof(rq->etag), v, len - (size_t)(v - line));
	} else if (header_is(line, len, "x-amz-server-side-encryption", &v)) {
		header_value(buf, sizeof(buf), v, len - (size_t)(v - line));
		rq->etag_opaque = rq->etag_opaque || strncmp(buf, "aws:kms", 7) == 0;
	} else if (header_is(line, len, "x-amz-server-side-encryption-customer-algorithm", &v)) {
		rq->etag_opaque = true;
	} else if (header_is(line, len, "content-length", &v)) {
		header_value(buf, sizeof(buf), v, len - (size_t)(v - line));
		char *end;
		rq->length = strtoull(buf, &end, 10);
		rq->have_length = buf[0] >= '0' && buf[0] <= '9' && *end == '\0';
	} else if (header_is(line, len, "content-range", &v)) {
		header_value(buf, sizeof(buf), v, len - (size_t)(v - line));
		char *end;
		rq->have_range = strncmp(buf, "bytes ", 6) == 0;
		rq->range_start = strtoull(buf + (rq->have_range ? 6 : 0), &end, 10);
		rq->have_range = rq->have_range && *end == '-';
	}
	return len;
}

/* Host and path of the request: path-style /bucket/key or virtual-hosted /key. */
static int target(const cairn_s3 *s, const struct req *rq, char *host, size_t hsize,
                  struct cairn_buf *path)
{
	const struct cairn_s3__config *c = &s->cfg;
	int n = snprintf(host, hsize, "%s%s%s%s%s", c->path_style ? "" : s->bucket,
	                 c->path_style ? "" : ".", c->host, c->port[0] ? ":" : "", c->port);
	if (n < 0 || (size_t)n >= hsize)
		return cairn_err_set(-EINVAL, "host name too long");
	int r = cairn_buf_put_u8(path, '/');
	if (r >= 0 && c->path_style)
		r = cairn_sigv4_uri_encode(path, s->bucket, strlen(s->bucket), true);
	if (r >= 0 && rq->key && c->path_style)
		r = cairn_buf_put_u8(path, '/');
	if (r >= 0 && rq->key)
		r = cairn_sigv4_uri_encode(path, rq->key, strlen(rq->key), false);
	if (r >= 0)
		r = cairn_buf_put_u8(path, 0);
	return r < 0 ? cairn_err_set(-ENOMEM, "out of memory") : 0;
}

struct wire {
	char host[320];
	char date[17];
	struct cairn_buf path, query, url, auth;
	struct curl_slist *headers;
};

static void wire_release(struct wire *w)
{
	cairn_buf_release(&w->path);
	cairn_buf_release(&w->query);
	cairn_buf_release(&w->url);
	OPENSSL_cleanse(w->auth.data, w->auth.cap);
	cairn_buf_release(&w->auth);
	curl_slist_free_all(w->headers);
}

static int add_curl_header(struct wire *w, const char *name, const char *value)
{
	char line[8448];
	int n = snprintf(line, sizeof(line), "%s:%s%s", name, *value ? " " : "", value);
	struct curl_slist *l =
	        n > 0 && (size_t)n < sizeof(line) ? curl_slist_append(w->headers, line) : NULL;
	OPENSSL_cleanse(line, sizeof(line)); /* the Authorization line passes through here */
	if (!l)
		return cairn_err_set(-ENOMEM, "cannot build request headers");
	w->headers = l;
	return 0;
}

/* Sign the request now and build the URL and the header list curl sends. */
static int prepare(const cairn_s3 *s, const struct req *rq, struct wire *w)
{
	struct cairn_sigv4_kv h[REQ_MAX_KV + 4];
	size_t nh = 0;
	if (!s->cfg.access_key[0]) /* opened local_only */
		return cairn_err_set(-EINVAL, "no S3 credentials were loaded for %s", s->desc);
	int r = target(s, rq, w->host, sizeof(w->host), &w->path);
	if (r < 0 || (r = cairn_sigv4_query(&w->query, rq->query, rq->nquery)) < 0 ||
	    (r = cairn_buf_put_u8(&w->query, 0)) < 0)
		return r;
	cairn_sigv4_amz_date(w->date, time(NULL));
	h[nh++] = (struct cairn_sigv4_kv){ "host", w->host };
	h[nh++] = (struct cairn_sigv4_kv){ "x-amz-date", w->date };
	h[nh++] = (struct cairn_sigv4_kv){ "x-amz-content-sha256", rq->sha256 };
	if (s->cfg.session_token)
		h[nh++] = (struct cairn_sigv4_kv){ "x-amz-security-token", s->cfg.session_token };
	for (size_t i = 0; i < rq->nhdr; i++)
		h[nh++] = rq->hdr[i];
	struct cairn_sigv4_req sr = { .method = rq->method,
		                      .path = (const char *)w->path.data,
		                      .query = rq->query,
		                      .nquery = rq->nquery,
		                      .headers = h,
		                      .nheaders = nh,
		                      .payload_hash = rq->sha256,
		                      .region = s->cfg.region,
		                      .service = "s3",
		                      .amz_date = w->date };
	struct cairn_sigv4_creds cr = { s->cfg.access_key, s->cfg.secret_key,
		                        s->cfg.session_token };
	if ((r = cairn_sigv4_sign(&sr, &cr, &w->auth, NULL, NULL)) < 0 ||
	    (r = cairn_buf_put_u8(&w->auth, 0)) < 0)
		return r;
	r = cairn_buf_printf(&w->url, "%s://%s%s%s%s", s->cfg.scheme, w->host,
	                     (const char *)w->path.data, w->query.len > 1 ? "?" : "",
	                     (const char *)w->query.data);
	for (size_t i = 0; i < nh && r >= 0; i++)
		r = add_curl_header(w, h[i].name, h[i].value);
	if (r >= 0)
		r = add_curl_header(w, "Authorization", (const char *)w->auth.data);
	/* No "Expect: 100-continue" round trip: the server checks the signature either way. */
	if (r >= 0)
		r = add_curl_header(w, "Expect", "");
	return r;
}

static void set_method(CURL *h, struct req *rq)
{
	if (strcmp(rq->method, "HEAD") == 0) {
		curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
	} else if (rq->has_body || strcmp(rq->method, "POST") == 0) {
		curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)rq->body.len);
		curl_easy_setopt(h, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(h, CURLOPT_READDATA, &rq->body);
		curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(h, CURLOPT_SEEKDATA, &rq->body);
		if (strcmp(rq->method, "PUT") != 0)
			curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	} else if (strcmp(rq->method, "GET") != 0) {
		curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, rq->method);
	}
}

static void set_options(cairn_s3_conn *c, struct req *rq, struct wire *w)
{
	CURL *h = c->curl;
	/* reset keeps the connection cache: the next request reuses the connection. */
	curl_easy_reset(h);
	curl_easy_setopt(h, CURLOPT_URL, (const char *)w->url.data);
	curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM (STYLE §6) */
	curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(h, CURLOPT_HTTPHEADER, w->headers);
	curl_easy_setopt(h, CURLOPT_ERRORBUFFER, c->errbuf);
	curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
	/* A transfer that stalls for a minute is dropped and retried. */
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, c->s->stall_s);
	curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L * 1024);
	curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(h, CURLOPT_HEADERDATA, rq);
	curl_easy_setopt(h, CURLOPT_SOCKOPTFUNCTION, on_sockopt);
	curl_easy_setopt(h, CURLOPT_SOCKOPTDATA, c);
	curl_easy_setopt(h, CURLOPT_CLOSESOCKETFUNCTION, on_closesocket);
	curl_easy_setopt(h, CURLOPT_CLOSESOCKETDATA, c);
	rq->sock = &c->sock;
	curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_write);
	curl_easy_setopt(h, CURLOPT_WRITEDATA, rq);
	if (c->s->cfg.ca_bundle[0])
		curl_easy_setopt(h, CURLOPT_CAINFO, c->s->cfg.ca_bundle);
	set_method(h, rq);
}

/* Undo what a failed attempt did to the body and the sink. */
static int rewind_req(struct req *rq)
{
	rq->body.pos = 0;
	rq->body.err = 0;
	rq->status = 0;
	rq->errbody.len = 0;
	rq->etag[0] = '\0';
	rq->etag_opaque = false;
	rq->have_length = rq->have_range = false;
	struct sink *k = &rq->sink;
	k->got = 0;
	k->err = 0;
	if (k->kind == SINK_MEM)
		k->mem->len = 0;
	if (k->kind == SINK_FD) {
		if (ftruncate(k->fd, 0) < 0 || lseek(k->fd, 0, SEEK_SET) < 0)
			return cairn_err_set(-errno, "cannot truncate the download: %s",
			                     strerror(errno));
		if (!EVP_DigestInit_ex(k->sha, EVP_sha256(), NULL))
			return cairn_err_set(-ENOMEM, "cannot hash the download");
	}
	return 0;
}

static void trace(const cairn_s3 *s, const struct req *rq, const struct wire *w, CURLcode cc)
{
	char line[1200];
	const char *range = "";
	if (s->trace_fd < 0)
		return;
	for (size_t i = 0; i < rq->nhdr; i++)
		if (strcmp(rq->hdr[i].name, "Range") == 0)
			range = rq->hdr[i].value;
	int n = snprintf(line, sizeof(line), "%s %s%s%.600s %ld%s%s%s\n", rq->method,
	                 (const char *)w->path.data, w->query.len > 1 ? "?" : "",
	                 (const char *)w->query.data, rq->status,
	                 cc == CURLE_OK ? "" : " transport-error", *range ? " " : "", range);
	if (n > 0 &&
	    write(s->trace_fd, line, (size_t)n < sizeof(line) ? (size_t)n : sizeof(line) - 1) < 0)
		log_debug("cannot write the S3 trace: %s", strerror(errno));
}

enum outcome { DONE, RETRY, FAIL };

struct verdict {
	enum outcome what;
	bool throttled;
	int code;       /* FAIL, and RETRY's code should it be the last attempt */
	bool transport; /* RETRY: no reply came (no connection, a timeout) */
	bool stalled;   /* RETRY: a timeout (the low-speed window, or connecting) */
	char why[400];  /* RETRY: the reason, for the log and the final message */
};

static bool retryable_curl(CURLcode cc)
{
	switch (cc) {
	case CURLE_COULDNT_CONNECT:
	case CURLE_COULDNT_RESOLVE_HOST:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_HTTP2:
	case CURLE_HTTP2_STREAM:
	case CURLE_WEIRD_SERVER_REPLY:
	case CURLE_AGAIN:
		return true;
	default:
		return false;
	}
}

static bool retryable_code(const char *code)
{
	static const char *const codes[] = { "SlowDown", "RequestTimeout", "InternalError",
		                             "ServiceUnavailable" };
	for (size_t i = 0; i < ARRAY_SIZE(codes); i++)
		if (strcmp(code, codes[i]) == 0)
			return true;
	return false;
}

static void name_of(char *out, size_t size, const cairn_s3 *s, const struct req *rq)
{
	const char *prefix = NULL;
	for (size_t i = 0; !rq->key && i < rq->nquery; i++)
		if (strcmp(rq->query[i].name, "prefix") == 0)
			prefix = rq->query[i].value;
	if (prefix) /* a listing: what of */
		snprintf(out, size, "S3 listing of s3://%s/%s", s->bucket, prefix);
	else
		snprintf(out, size, "S3 %s s3://%s/%s", rq->method, s->bucket,
		         rq->key ? rq->key : "");
}

/* A signature's time must be within 15 minutes of the server's clock: say
 * how far this host's is off, which the reply's Date tells. */
static int skewed(const cairn_s3 *s, const struct req *rq)
{
	char who[700], off[64] = "more than 15 minutes off";
	name_of(who, sizeof(who), s, rq);
	long ahead = rq->date ? (long)(time(NULL) - rq->date) : 0;
	if (ahead >= 60 || ahead <= -60)
		snprintf(off, sizeof(off), "%ld minutes %s", (ahead < 0 ? -ahead : ahead) / 60,
		         ahead < 0 ? "behind" : "ahead of");
	return cairn_err_set(-ETIME,
	                     "%s: refused, this host's clock is %s the server's "
	                     "(RequestTimeTooSkewed): set the clock right (NTP)",
	                     who, off);
}

static void http_error(struct verdict *v, const cairn_s3 *s, const struct req *rq)
{
	struct cairn_s3xml_error e = { "", "" };
	char who[700];
	name_of(who, sizeof(who), s, rq);
	bool bare = rq->errbody.len == 0 ||
	            cairn_s3xml_parse_error(&e, rq->errbody.data, rq->errbody.len) < 0;
	if (bare) /* no code in the reply: the status is all there is */
		snprintf(e.code, sizeof(e.code), "HTTP %ld", rq->status);
	bool unsupported = rq->status == 501 || strcmp(e.code, "NotImplemented") == 0;
	bool retry =
	        !unsupported && (rq->status == 429 || rq->status >= 500 || retryable_code(e.code));
	v->throttled = rq->status == 429 || rq->status == 503 || strcmp(e.code, "SlowDown") == 0;
	if (retry) {
		v->what = RETRY;
		v->code = -EIO;
		if (bare)
			snprintf(v->why, sizeof(v->why), "%s", e.code);
		else
			snprintf(v->why, sizeof(v->why), "HTTP %ld %s", rq->status, e.code);
		return;
	}
	v->what = FAIL;
	if (unsupported) {
		v->code = cairn_err_set(-EOPNOTSUPP, "%s: the server does not implement it (%s)",
		                        who, e.code);
	} else if (rq->status == 412 ||
	           (rq->status == 409 && strcmp(e.code, "ConditionalRequestConflict") == 0)) {
		v->code = cairn_err_set(-EEXIST, "%s: already there (%s)", who, e.code);
	} else if (rq->status == 404) {
		v->code =
		        strcmp(e.code, "NoSuchBucket") == 0 /* not "no such object" */
		                ? cairn_err_set(-ENXIO, "S3 bucket '%s' does not exist", s->bucket)
		                : cairn_err_set(-ENOENT, "%s: not found (%s)", who, e.code);
	} else if (strcmp(e.code, "RequestTimeTooSkewed") == 0 ||
	           (rq->status == 403 && rq->date &&
	            labs((long)(time(NULL) - rq->date)) > 15 * 60)) {
		/* A HEAD's refusal has no body to name the code. */
		v->code = skewed(s, rq);
	} else if (rq->status == 416) {
		/* cairn_storage_get(): a range past the end is -EBADMSG (a truncated
		 * object), which check reports and goes on. */
		v->code = cairn_err_set(-EBADMSG, "%s: shorter than the range read (%s)", who,
		                        e.code);
	} else if (strcmp(e.code, "XAmzContentSHA256Mismatch") == 0) {
		v->code = cairn_err_set(-EBADMSG,
		                        "%s: the server found the body's SHA-256 is not %s (%s)",
		                        who, rq->sha256, e.code);
	} else if (strcmp(e.code, "BadDigest") == 0) {
		v->code = cairn_err_set(
		        -EBADMSG, "%s: the server found the body's MD5 is not the one sent (%s)",
		        who, e.code);
	} else if (rq->status == 401 || rq->status == 403) {
		v->code = cairn_err_set(-EACCES, "S3 authentication failed: %s%s%s (%s)", e.code,
		                        e.message[0] ? ": " : "", e.message, who);
	} else {
		char status[32] = "";
		if (!bare)
			snprintf(status, sizeof(status), "HTTP %ld ", rq->status);
		v->code = cairn_err_set(-EIO, "%s: %s%s%s%s", who, status, e.code,
		                        e.message[0] ? ": " : "", e.message);
	}
}

/* A 200 reply to CompleteMultipartUpload can still be an <Error> (S3 docs). */
static void error_in_200(struct verdict *v, const cairn_s3 *s, struct req *rq)
{
	char root[CAIRN_S3XML_MAX_NAME + 1];
	struct cairn_buf *b = rq->sink.mem;
	if (cairn_s3xml_root(root, b->data, b->len) < 0 || strcmp(root, "Error") != 0)
		return;
	rq->errbody.len = 0;
	if (cairn_buf_put(&rq->errbody, b->data, b->len < ERRBODY_MAX ? b->len : ERRBODY_MAX) < 0)
		return;
	rq->status = 400; /* retried only for the retryable codes */
	http_error(v, s, rq);
}

static void judge(struct verdict *v, cairn_s3_conn *c, struct req *rq, CURLcode cc)
{
	char who[700];
	*v = (struct verdict){ .what = DONE };
	name_of(who, sizeof(who), c->s, rq);
	if (rq->sink.err || rq->body.err) {
		v->what = FAIL;
		v->code = rq->sink.err ? rq->sink.err : rq->body.err; /* message already set */
	} else if (cc != CURLE_OK) {
		const char *msg = c->errbuf[0] ? c->errbuf : curl_easy_strerror(cc);
		v->code = cc == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
		if (retryable_curl(cc)) {
			v->what = RETRY;
			v->transport = true;
			v->stalled = cc == CURLE_OPERATION_TIMEDOUT;
			snprintf(v->why, sizeof(v->why), "%s", msg);
		} else {
			v->what = FAIL;
			v->code = cairn_err_set(v->code, "%s: %s", who, msg);
		}
	} else if (rq->status < 200 || rq->status >= 300) {
		http_error(v, c->s, rq);
	} else if (rq->error_in_200) {
		error_in_200(v, c->s, rq);
	}
}

static void sleep_ms(uint64_t ms)
{
	struct timespec ts = { .tv_sec = (time_t)(ms / 1000),
		               .tv_nsec = (long)(ms % 1000) * 1000000 };
	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

uint64_t cairn_s3__backoff_ms(unsigned attempt, uint64_t base, uint64_t cap, uint32_t rnd)
{
	/* Full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter"):
	 * uniform in [0, min(cap, base * 2^attempt)]. */
	uint64_t ceiling = attempt >= 32 ? cap : base << attempt;
	if (ceiling > cap || (attempt < 32 && base != 0 && (ceiling >> attempt) != base))
		ceiling = cap;
	return ceiling ? (uint64_t)rnd % (ceiling + 1) : 0;
}

static uint32_t random_u32(void)
{
	uint32_t v;
	if (RAND_bytes((unsigned char *)&v, sizeof(v)) != 1)
		v = (uint32_t)time(NULL) ^ (uint32_t)(uintptr_t)&v;
	return v;
}

static enum outcome attempt(cairn_s3_conn *c, struct req *rq, struct verdict *v)
{
	struct wire w = { 0 };
	int r = rewind_req(rq);
	if (r >= 0)
		r = prepare(c->s, rq, &w);
	if (r < 0) {
		wire_release(&w);
		*v = (struct verdict){ .what = FAIL, .code = r };
		return FAIL;
	}
	set_options(c, rq, &w);
	c->errbuf[0] = '\0';
	gate_enter(&c->s->gate);
	CURLcode cc = curl_easy_perform(c->curl);
	atomic_fetch_add(&c->s->requests, 1);
	atomic_fetch_add(&c->s->by_method[method_of(rq)], 1);
	if (rq->has_body)
		atomic_fetch_add(&c->s->bytes_up, rq->body.pos);
	if (rq->sink.kind != SINK_NONE)
		atomic_fetch_add(&c->s->bytes_down,
		                 rq->sink.kind == SINK_MEM ? rq->sink.mem->len : rq->sink.got);
	judge(v, c, rq, cc);
	gate_leave(&c->s->gate, v->throttled, v->what == DONE);
	trace(c->s, rq, &w, cc);
	/* Drop the header list now: it holds the signature. */
	curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, NULL);
	wire_release(&w);
	return v->what;
}

/* Send rq, retrying transient failures with backoff. 0 or a negative errno. */
static int perform(cairn_s3_conn *c, struct req *rq)
{
	const cairn_s3 *s = c->s;
	struct verdict v;
	char who[700];

	if (!rq->has_body)
		memcpy(rq->sha256, CAIRN_SIGV4_EMPTY_SHA256, sizeof(rq->sha256));
	bool was_down = atomic_load(&c->s->unreachable);
	unsigned tries = was_down ? 1 : s->max_attempts, stalls = 0;
	for (unsigned i = 0;; i++) {
		enum outcome o = attempt(c, rq, &v);
		if (o != RETRY || !v.transport) /* the server answered */
			atomic_store(&c->s->unreachable, false);
		if (o == DONE)
			return 0;
		if (o == FAIL)
			return v.code;
		name_of(who, sizeof(who), s, rq);
		/* A server that stalls holds each attempt for the whole window: a
		 * caller that must answer soon (a mount) gives up after fewer. */
		stalls += v.stalled;
		if (v.transport && s->stall_attempts && stalls >= s->stall_attempts)
			tries = i + 1;
		if (i + 1 >= tries && v.transport) {
			atomic_store(&c->s->unreachable, true);
			return cairn_err_set(
			        -EHOSTUNREACH, "%s: giving up after %u attempt%s%s: %s", who, i + 1,
			        i ? "s" : "", was_down ? " (unreachable before)" : "", v.why);
		}
		if (i + 1 >= tries)
			return cairn_err_set(v.code, "%s: giving up after %u attempts: %s", who,
			                     i + 1, v.why);
		uint64_t ms = cairn_s3__backoff_ms(i, s->base_ms, s->cap_ms, random_u32());
		log_debug("%s: %s; retrying in %llu ms (attempt %u of %u)", who, v.why,
		          (unsigned long long)ms, i + 2, s->max_attempts);
		sleep_ms(ms);
	}
}

static void req_release(struct req *rq)
{
	cairn_buf_release(&rq->errbody);
}

/* ---- hashing -------------------------------------------------------------- */

static void b64(char *out, size_t size, const uint8_t *p, size_t n)
{
	if (size >= 4 * ((n + 2) / 3) + 1)
		EVP_EncodeBlock((unsigned char *)out, p, (int)n);
	else
		out[0] = '\0';
}

/* Feed n bytes to every context that is set. */
static void digest(EVP_MD_CTX *const ctx[3], const void *p, size_t n)
{
	for (int i = 0; i < 3; i++)
		if (ctx[i])
			EVP_DigestUpdate(ctx[i], p, n);
}

static int hash_file(const struct body *b, EVP_MD_CTX *const ctx[3])
{
	_cleanup_free_ uint8_t *buf = malloc(1u << 20);
	if (!buf)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (uint64_t done = 0; done < b->len;) {
		size_t n = b->len - done < (1u << 20) ? (size_t)(b->len - done) : (1u << 20);
		int r = cairn_pread_all(b->fd, buf, n, b->off + done);
		if (r < 0)
			return cairn_err_set(
			        r == -EBADMSG ? -EIO : r, "cannot read the file to upload: %s",
			        r == -EBADMSG ? "shorter than expected" : strerror(-r));
		digest(ctx, buf, n);
		done += n;
	}
	return 0;
}

/* MD5 and SHA-256 of a body in one pass (the file is read once more to send it);
 * a known SHA-256 is taken as it is. */
static int hash_body(const struct body *b, uint8_t md5[16], char sha_hex[65])
{
	EVP_MD_CTX *ctx[3] = { EVP_MD_CTX_new(), b->sha256 ? NULL : EVP_MD_CTX_new(), b->whole };
	uint8_t sha[32];
	int r = ctx[0] && (b->sha256 || ctx[1]) && EVP_DigestInit_ex(ctx[0], EVP_md5(), NULL) &&
	                        (b->sha256 || EVP_DigestInit_ex(ctx[1], EVP_sha256(), NULL))
	                ? 0
	                : cairn_err_set(-ENOMEM, "cannot hash the upload");
	if (r >= 0 && b->mem)
		digest(ctx, b->mem, b->len);
	if (!b->mem && r >= 0)
		r = hash_file(b, ctx);
	if (r >= 0) {
		EVP_DigestFinal_ex(ctx[0], md5, NULL);
		if (!b->sha256)
			EVP_DigestFinal_ex(ctx[1], sha, NULL);
		cairn_hex(sha_hex, b->sha256 ? b->sha256 : sha, sizeof(sha));
	}
	EVP_MD_CTX_free(ctx[0]);
	EVP_MD_CTX_free(ctx[1]);
	return r;
}

/* ---- objects ------------------------------------------------------------- */

static void lock_headers(const cairn_s3 *s, struct req *rq, char until[32])
{
	if (!s->lock_days)
		return;
	time_t t = time(NULL) + (time_t)s->lock_days * 86400;
	struct tm tm;
	gmtime_r(&t, &tm);
	strftime(until, 32, "%Y-%m-%dT%H:%M:%SZ", &tm);
	add_header(rq, "x-amz-object-lock-mode",
	           s->lock_mode == CAIRN_S3_LOCK_GOVERNANCE ? "GOVERNANCE" : "COMPLIANCE");
	add_header(rq, "x-amz-object-lock-retain-until-date", until);
}

#define PUT_SENDS 3                 /* a PUT the server does not confirm: sent again */
#define CONFIRM_GET_MAX (64u << 10) /* confirmed by its content when no ETag says */

static bool is_md5(const char *etag)
{
	return strlen(etag) == 32 && strspn(etag, "0123456789abcdefABCDEF") == 32;
}

/* After a PUT answered 2xx without saying it stored what was sent (no ETag, or
 * one that is not the MD5 sent): does the server hold key as sent? A HEAD (the
 * size, and an ETag that is an MD5), and for a small object whose ETag says
 * nothing, its content. 1 yes, 0 no (send it again), or an error. */
static int stored_as_sent(cairn_s3_conn *c, const char *key, uint64_t len, const uint8_t md5[16],
                          const char *md5_hex)
{
	struct cairn_s3_obj head = { 0 };
	int r = cairn_s3_head(c, key, &head);
	if (r == -ENOENT)
		return 0;
	if (r < 0 || head.size != len)
		return r < 0 ? r : 0;
	if (is_md5(head.etag))
		return strcasecmp(head.etag, md5_hex) == 0;
	if (len > CONFIRM_GET_MAX)
		return 1; /* SSE-KMS/C: an ETag that is no digest; the size is all there is */
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	uint8_t got[16];
	if ((r = cairn_s3_get(c, key, 0, 0, CONFIRM_GET_MAX, &b)) < 0)
		return r == -ENOENT ? 0 : r;
	EVP_Digest(b.data, b.len, got, NULL, EVP_md5(), NULL);
	return b.len == len && memcmp(got, md5, 16) == 0;
}

/* Whether the reply to a PUT says the body landed as sent. object: a whole
 * object, which a HEAD can look at (a part cannot be). */
static int put_landed(cairn_s3_conn *c, struct req *rq, bool object, const uint8_t md5[16],
                      const char *md5_hex)
{
	/* The server checked Content-MD5; a plain ETag must also be that MD5 (servers
	 * with SSE-KMS or SSE-C answer other ETags, which are not digests). */
	if (rq->etag_opaque || (is_md5(rq->etag) && strcasecmp(rq->etag, md5_hex) == 0))
		return 1;
	if (!object) /* a part: the completion's ETag covers an empty or odd one */
		return !is_md5(rq->etag);
	return stored_as_sent(c, rq->key, rq->body.len, md5, md5_hex);
}

/* PUT one body (a whole object or one part) with Content-MD5, and make sure it
 * landed: a reply without an ETag (an object) or with one that is not the MD5
 * sent is checked (put_landed), and the PUT sent again, as for a failed
 * upload, up to PUT_SENDS times. */
static int put_body(cairn_s3_conn *c, struct req *rq, bool object, uint8_t md5_out[16])
{
	uint8_t md5[16];
	char md5_b64[32], md5_hex[33], said[200];
	int r = hash_body(&rq->body, md5, rq->sha256);
	if (r < 0)
		return r;
	b64(md5_b64, sizeof(md5_b64), md5, sizeof(md5));
	cairn_hex(md5_hex, md5, sizeof(md5));
	add_header(rq, "Content-MD5", md5_b64);
	rq->has_body = true;
	for (unsigned i = 1;; i++) {
		if ((r = perform(c, rq)) < 0)
			return r;
		if (rq->etag[0])
			snprintf(said, sizeof(said), "ETag %s, not the MD5 %s,", rq->etag, md5_hex);
		else
			snprintf(said, sizeof(said), "no ETag");
		if ((r = put_landed(c, rq, object, md5, md5_hex)) < 0)
			return r;
		if (r)
			break;
		if (i >= PUT_SENDS)
			return cairn_err_set(-EPROTO,
			                     "S3 PUT s3://%s/%s: giving up after %u attempts: the "
			                     "server answered %s and does not hold the object as "
			                     "sent",
			                     c->s->bucket, rq->key, i, said);
		log_debug("S3 PUT s3://%s/%s: the server answered %s and does not hold the "
		          "object as sent: sending it again",
		          c->s->bucket, rq->key, said);
	}
	if (object && !rq->etag_opaque)
		snprintf(rq->etag, sizeof(rq->etag), "%s", md5_hex);
	if (md5_out)
		memcpy(md5_out, md5, 16);
	return 0;
}

static int put_mem(cairn_s3_conn *c, const char *key, const void *data, size_t len, bool create,
                   struct cairn_s3_obj *out)
{
	struct req rq = { .method = "PUT",
		          .key = key,
		          .body = { .mem = data, .fd = -1, .len = len } };
	char until[32];
	static const uint8_t empty[1];
	if (!data)
		rq.body.mem = empty;
	if (create)
		add_header(&rq, "If-None-Match", "*");
	lock_headers(c->s, &rq, until);
	int r = put_body(c, &rq, true, NULL);
	if (r >= 0 && out) {
		out->size = len;
		snprintf(out->etag, sizeof(out->etag), "%s", rq.etag);
	}
	req_release(&rq);
	return r;
}

int cairn_s3_put(cairn_s3_conn *c, const char *key, const void *data, size_t len,
                 struct cairn_s3_obj *out)
{
	return put_mem(c, key, data, len, false, out);
}

int cairn_s3_put_new(cairn_s3_conn *c, const char *key, const void *data, size_t len)
{
	return put_mem(c, key, data, len, true, NULL);
}

static uint64_t part_size_for(const cairn_s3 *s, uint64_t size)
{
	uint64_t min = (size + MAX_PARTS - 1) / MAX_PARTS;
	return s->part_size > min ? s->part_size : min;
}

/* The multipart ETag: MD5 of the concatenated binary part MD5s, "-", part count. */
static void multipart_etag(char out[129], const uint8_t *md5s, size_t parts)
{
	uint8_t md[16];
	char hex[33];
	EVP_Digest(md5s, 16 * parts, md, NULL, EVP_md5(), NULL);
	cairn_hex(hex, md, sizeof(md));
	snprintf(out, 129, "%s-%zu", hex, parts);
}

int cairn_s3_file_etag(const cairn_s3 *s, int fd, uint64_t size, char etag[129])
{
	uint8_t md5[16];
	char sha[65];
	if (size <= s->mp_threshold) {
		struct body b = { .fd = fd, .len = size };
		int r = hash_body(&b, md5, sha);
		if (r >= 0)
			cairn_hex(etag, md5, sizeof(md5));
		return r;
	}
	uint64_t psize = part_size_for(s, size);
	size_t parts = (size_t)((size + psize - 1) / psize);
	_cleanup_free_ uint8_t *md5s = malloc(16 * parts);
	if (!md5s)
		return cairn_err_set(-ENOMEM, "out of memory");
	for (size_t i = 0; i < parts; i++) {
		uint64_t off = i * psize;
		struct body b = { .fd = fd,
			          .off = off,
			          .len = size - off < psize ? size - off : psize };
		int r = hash_body(&b, md5s + 16 * i, sha);
		if (r < 0)
			return r;
	}
	multipart_etag(etag, md5s, parts);
	return 0;
}

static int mp_create(cairn_s3_conn *c, const char *key, char **upload_id)
{
	struct cairn_buf reply = CAIRN_BUF_INIT;
	struct req rq = { .method = "POST",
		          .key = key,
		          .sink = { .kind = SINK_MEM, .mem = &reply, .max = 1u << 20 } };
	char until[32];
	add_query(&rq, "uploads", "");
	lock_headers(c->s, &rq, until);
	int r = perform(c, &rq);
	if (r >= 0 && (r = cairn_s3xml_parse_upload_id(upload_id, reply.data, reply.len)) < 0)
		r = cairn_err_wrap(-EPROTO, "S3 CreateMultipartUpload of '%s'", key);
	req_release(&rq);
	cairn_buf_release(&reply);
	return r;
}

static int mp_part(cairn_s3_conn *c, const char *key, const char *id, int fd, unsigned part,
                   uint64_t off, uint64_t len, EVP_MD_CTX *whole, uint8_t md5[16])
{
	char num[16];
	snprintf(num, sizeof(num), "%u", part);
	struct req rq = { .method = "PUT",
		          .key = key,
		          .body = { .fd = fd, .off = off, .len = len, .whole = whole } };
	add_query(&rq, "partNumber", num);
	add_query(&rq, "uploadId", id);
	int r = put_body(c, &rq, false, md5);
	req_release(&rq);
	return r;
}

static int mp_complete(cairn_s3_conn *c, const char *key, const char *id, const uint8_t *md5s,
                       size_t parts, char etag[129])
{
	_cleanup_buf_ struct cairn_buf xml = CAIRN_BUF_INIT, reply = CAIRN_BUF_INIT;
	char hex[33];
	int r = cairn_buf_printf(&xml, "<CompleteMultipartUpload>");
	for (size_t i = 0; i < parts && r >= 0; i++) {
		cairn_hex(hex, md5s + 16 * i, 16);
		r = cairn_buf_printf(&xml,
		                     "<Part><PartNumber>%zu</PartNumber><ETag>\"%s\"</ETag></Part>",
		                     i + 1, hex);
	}
	if (r >= 0)
		r = cairn_buf_printf(&xml, "</CompleteMultipartUpload>");
	if (r < 0)
		return r;
	struct req rq = { .method = "POST",
		          .key = key,
		          .body = { .mem = xml.data, .fd = -1, .len = xml.len },
		          .sink = { .kind = SINK_MEM, .mem = &reply, .max = 1u << 20 },
		          .error_in_200 = true };
	add_query(&rq, "uploadId", id);
	r = put_body(c, &rq, false, NULL);
	if (r >= 0 && (r = cairn_s3xml_parse_complete(etag, reply.data, reply.len)) < 0)
		r = cairn_err_wrap(-EPROTO, "S3 CompleteMultipartUpload of '%s'", key);
	req_release(&rq);
	return r;
}

/* Abort after a failure, keeping the failure's message. */
static void mp_abort_quietly(cairn_s3_conn *c, const char *key, const char *id)
{
	char msg[1024];
	snprintf(msg, sizeof(msg), "%s", cairn_err_msg());
	if (cairn_s3_upload_abort(c, key, id) < 0)
		log_debug("cannot abort multipart upload of '%s': %s", key, cairn_err_msg());
	cairn_err_set(-EIO, "%s", msg);
}

/* The parts' hashing also hashes the whole file, for a known SHA-256 (a pack's
 * name) to be checked before the upload is completed. */
static int whole_check(EVP_MD_CTX *whole, const uint8_t *sha256, const char *key)
{
	uint8_t got[32];
	if (!sha256 || (EVP_DigestFinal_ex(whole, got, NULL) == 1 && !memcmp(got, sha256, 32)))
		return 0;
	return cairn_err_set(-EBADMSG, "'%s': the file does not hash to its name", key);
}

static int put_multipart(cairn_s3_conn *c, const char *key, int fd, uint64_t size,
                         const uint8_t *sha256, EVP_MD_CTX *whole, struct cairn_s3_obj *out)
{
	uint64_t psize = part_size_for(c->s, size);
	size_t parts = (size_t)((size + psize - 1) / psize);
	_cleanup_free_ uint8_t *md5s = malloc(16 * parts);
	_cleanup_free_ char *id = NULL;
	char want[129], got[129] = "";
	int r = md5s && (!sha256 || (whole && EVP_DigestInit_ex(whole, EVP_sha256(), NULL)))
	                ? mp_create(c, key, &id)
	                : cairn_err_set(-ENOMEM, "out of memory");
	if (r < 0)
		return r;
	for (size_t i = 0; i < parts && r >= 0; i++) {
		uint64_t off = i * psize, len = size - off < psize ? size - off : psize;
		r = mp_part(c, key, id, fd, (unsigned)i + 1, off, len, whole, md5s + 16 * i);
	}
	if (r >= 0)
		r = whole_check(whole, sha256, key);
	if (r >= 0)
		r = mp_complete(c, key, id, md5s, parts, got);
	multipart_etag(want, md5s, parts);
	struct cairn_s3_obj head = { 0 };
	if (r == -ENOENT && cairn_s3_head(c, key, &head) >= 0 && head.size == size &&
	    strcmp(head.etag, want) == 0)
		r = 0; /* the reply to a completion was lost and its retry found it done */
	if (r < 0) {
		int code = r;
		mp_abort_quietly(c, key, id);
		return cairn_err_wrap(code, "multipart upload");
	}
	if (!got[0]) { /* Ceph RGW leaves the ETag of the reply empty: ask with HEAD */
		if ((r = cairn_s3_head(c, key, &head)) < 0)
			return r;
		snprintf(got, sizeof(got), "%s", head.etag);
	}
	if (strcmp(got, want) != 0)
		return cairn_err_set(-EBADMSG, "S3 multipart upload of '%s': ETag %s, expected %s",
		                     key, got, want);
	out->size = size;
	snprintf(out->etag, sizeof(out->etag), "%s", want);
	return 0;
}

int cairn_s3_put_file(cairn_s3_conn *c, const char *key, int fd, uint64_t size,
                      const uint8_t *sha256, struct cairn_s3_obj *out)
{
	struct cairn_s3_obj tmp;
	if (!out)
		out = &tmp;
	if (size > c->s->mp_threshold) {
		EVP_MD_CTX *whole = sha256 ? EVP_MD_CTX_new() : NULL;
		int r = put_multipart(c, key, fd, size, sha256, whole, out);
		EVP_MD_CTX_free(whole);
		return r;
	}
	struct req rq = { .method = "PUT",
		          .key = key,
		          .body = { .fd = fd, .len = size, .sha256 = sha256 } };
	char until[32];
	lock_headers(c->s, &rq, until);
	int r = put_body(c, &rq, true, NULL);
	if (r >= 0) {
		out->size = size;
		snprintf(out->etag, sizeof(out->etag), "%s", rq.etag);
	}
	req_release(&rq);
	return r;
}

int cairn_s3_get(cairn_s3_conn *c, const char *key, uint64_t off, uint64_t len, size_t max,
                 struct cairn_buf *out)
{
	char range[64];
	struct req rq = {
		.method = "GET",
		.key = key,
		.sink = { .kind = SINK_MEM, .mem = out, .max = len && len < max ? len : max }
	};
	if (len) {
		if (off + len < off)
			return cairn_err_set(-EINVAL, "bad range");
		snprintf(range, sizeof(range), "bytes=%llu-%llu", (unsigned long long)off,
		         (unsigned long long)(off + len - 1));
		add_header(&rq, "Range", range);
	}
	int r = perform(c, &rq);
	/* A server that ignores Range answers 200 with the whole object. */
	if (r >= 0 && len && rq.status == 200 && off != 0)
		r = cairn_err_set(-EPROTO, "S3 GET s3://%s/%s: the server ignored the Range header",
		                  c->s->bucket, key);
	if (r >= 0 && len && rq.status == 206 && (!rq.have_range || rq.range_start != off))
		r = cairn_err_set(-EPROTO, "S3 GET s3://%s/%s: wrong Content-Range", c->s->bucket,
		                  key);
	if (r >= 0 && rq.have_length && rq.length != out->len)
		r = cairn_err_set(-EPROTO, "S3 GET s3://%s/%s: got %zu of %llu bytes", c->s->bucket,
		                  key, out->len, (unsigned long long)rq.length);
	req_release(&rq);
	return r;
}

int cairn_s3_get_file(cairn_s3_conn *c, const char *key, int fd, uint64_t max,
                      uint8_t sha256_out[32], uint64_t *size_out)
{
	EVP_MD_CTX *sha = EVP_MD_CTX_new();
	if (!sha)
		return cairn_err_set(-ENOMEM, "out of memory");
	struct req rq = { .method = "GET",
		          .key = key,
		          .sink = { .kind = SINK_FD, .fd = fd, .max = max, .sha = sha } };
	int r = perform(c, &rq);
	if (r >= 0 && rq.have_length && rq.length != rq.sink.got)
		r = cairn_err_set(-EPROTO, "S3 GET s3://%s/%s: got %llu of %llu bytes",
		                  c->s->bucket, key, (unsigned long long)rq.sink.got,
		                  (unsigned long long)rq.length);
	if (r >= 0) {
		EVP_DigestFinal_ex(sha, sha256_out, NULL);
		*size_out = rq.sink.got;
	}
	EVP_MD_CTX_free(sha);
	req_release(&rq);
	return r;
}

int cairn_s3_head(cairn_s3_conn *c, const char *key, struct cairn_s3_obj *out)
{
	struct req rq = { .method = "HEAD", .key = key };
	int r = perform(c, &rq);
	if (r >= 0 && !rq.have_length)
		r = cairn_err_set(-EPROTO, "S3 HEAD s3://%s/%s: no Content-Length", c->s->bucket,
		                  key);
	if (r >= 0) {
		out->size = rq.length;
		snprintf(out->etag, sizeof(out->etag), "%s", rq.etag);
	}
	req_release(&rq);
	return r;
}

int cairn_s3_delete(cairn_s3_conn *c, const char *key)
{
	struct req rq = { .method = "DELETE", .key = key };
	int r = perform(c, &rq);
	req_release(&rq);
	return r == -ENOENT ? 0 : r;
}

/* GET on the bucket with a query; the reply body in out. */
static int bucket_get(cairn_s3_conn *c, struct req *rq, struct cairn_buf *out)
{
	rq->method = "GET";
	rq->sink = (struct sink){ .kind = SINK_MEM, .mem = out, .max = CAIRN_S3XML_MAX_SIZE };
	int r = perform(c, rq);
	req_release(rq);
	return r;
}

/* A whole listing: the objects of every page, in order. */
struct listed {
	struct cairn_s3xml_object *v;
	size_t n, cap;
};

static void listed_release(struct listed *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i].key);
	free(l->v);
	*l = (struct listed){ 0 };
}

/* Whether key is among l's, which are in order. */
static bool seen_key(const struct listed *l, const char *key)
{
	size_t lo = 0, hi = l->n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int cmp = strcmp(key, l->v[mid].key);
		if (cmp == 0)
			return true;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return false;
}

/* Take o (its key too) into l, after checking that it comes after the last
 * key: S3 lists keys in UTF-8 binary order, so a key that does not (a page
 * sent twice, a page of another listing) means the listing cannot be trusted.
 * 1 when out of order, the message set. */
static int take_listed(struct listed *l, const char *prefix, struct cairn_s3xml_object *o)
{
	int cmp = l->n ? strcmp(o->key, l->v[l->n - 1].key) : 1;
	if (cmp <= 0) {
		if (cmp == 0 || seen_key(l, o->key))
			cairn_err_set(-EPROTO, "S3 listing of %s is not in order: key %s repeated",
			              prefix, o->key);
		else
			cairn_err_set(-EPROTO, "S3 listing of %s is not in order: key %s after %s",
			              prefix, o->key, l->v[l->n - 1].key);
		return 1;
	}
	if (l->n == LIST_MAX)
		return cairn_err_set(-EPROTO, "S3 listing of %s: more than %zu keys", prefix,
		                     LIST_MAX);
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 1024;
		struct cairn_s3xml_object *p = reallocarray(l->v, cap, sizeof(*p));
		if (!p)
			return cairn_err_set(-ENOMEM, "S3 listing of %s: out of memory", prefix);
		l->v = p;
		l->cap = cap;
	}
	l->v[l->n++] = *o;
	o->key = NULL;
	return 0;
}

/* Every page of a listing into out; 1 when its keys are out of order. */
static int list_pages(cairn_s3_conn *c, const char *prefix, struct listed *out)
{
	_cleanup_buf_ struct cairn_buf reply = CAIRN_BUF_INIT;
	_cleanup_free_ char *token = NULL;
	int r;
	do {
		struct req rq = { 0 };
		struct cairn_s3xml_list l;
		add_query(&rq, "list-type", "2");
		add_query(&rq, "prefix", prefix);
		add_query(&rq, "max-keys", LIST_PAGE);
		if (token)
			add_query(&rq, "continuation-token", token);
		if ((r = bucket_get(c, &rq, &reply)) < 0)
			return r;
		if ((r = cairn_s3xml_parse_list(&l, reply.data, reply.len)) < 0)
			return cairn_err_wrap(-EPROTO, "S3 ListObjectsV2");
		for (size_t i = 0; i < l.n && r == 0; i++)
			r = take_listed(out, prefix, &l.objs[i]);
		/* A server that repeats a token would make us loop forever. */
		if (r == 0 && l.truncated && token && strcmp(token, l.next_token) == 0)
			r = cairn_err_set(-EPROTO,
			                  "S3 ListObjectsV2: the continuation token repeats");
		free(token);
		token = l.truncated ? TAKE_PTR(l.next_token) : NULL;
		cairn_s3xml_list_release(&l);
	} while (r == 0 && token);
	return r;
}

int cairn_s3_list(cairn_s3_conn *c, const char *prefix,
                  int (*cb)(const struct cairn_s3xml_object *o, void *payload), void *payload)
{
	struct listed all = { 0 };
	/* Nothing reaches cb before the whole listing is known to be in order:
	 * one out of order is asked for once more, then an error. */
	int r = list_pages(c, prefix, &all);
	if (r == 1) {
		listed_release(&all);
		r = list_pages(c, prefix, &all);
	}
	if (r == 1)
		r = -EPROTO;
	for (size_t i = 0; i < all.n && r >= 0; i++)
		r = cb(&all.v[i], payload);
	listed_release(&all);
	return r;
}

int cairn_s3_list_any(cairn_s3_conn *c, const char *prefix)
{
	_cleanup_buf_ struct cairn_buf reply = CAIRN_BUF_INIT;
	struct req rq = { 0 };
	struct cairn_s3xml_list l;
	add_query(&rq, "list-type", "2");
	add_query(&rq, "prefix", prefix);
	add_query(&rq, "max-keys", "1");
	int r = bucket_get(c, &rq, &reply);
	if (r < 0)
		return r;
	if ((r = cairn_s3xml_parse_list(&l, reply.data, reply.len)) < 0)
		return cairn_err_wrap(-EPROTO, "S3 ListObjectsV2");
	r = l.n > 0 || l.truncated;
	cairn_s3xml_list_release(&l);
	return r;
}

static int uploads_page(cairn_s3_conn *c, const char *prefix, char **key_marker, char **id_marker,
                        int (*cb)(const struct cairn_s3xml_upload *u, void *payload), void *payload)
{
	_cleanup_buf_ struct cairn_buf reply = CAIRN_BUF_INIT;
	struct req rq = { 0 };
	struct cairn_s3xml_uploads u;
	add_query(&rq, "uploads", "");
	add_query(&rq, "prefix", prefix);
	if (*key_marker)
		add_query(&rq, "key-marker", *key_marker);
	if (*id_marker)
		add_query(&rq, "upload-id-marker", *id_marker);
	int r = bucket_get(c, &rq, &reply);
	if (r < 0)
		return r;
	if ((r = cairn_s3xml_parse_uploads(&u, reply.data, reply.len)) < 0)
		return cairn_err_wrap(-EPROTO, "S3 ListMultipartUploads");
	for (size_t i = 0; i < u.n && r >= 0; i++)
		r = cb(&u.u[i], payload);
	bool same = *key_marker && u.next_key_marker &&
	            strcmp(*key_marker, u.next_key_marker) == 0 &&
	            (!*id_marker || !u.next_upload_id_marker ||
	             strcmp(*id_marker, u.next_upload_id_marker) == 0);
	if (r >= 0 && u.truncated && same)
		r = cairn_err_set(-EPROTO, "S3 ListMultipartUploads: the marker repeats");
	free(*key_marker);
	free(*id_marker);
	*key_marker = u.truncated ? TAKE_PTR(u.next_key_marker) : NULL;
	*id_marker = u.truncated ? TAKE_PTR(u.next_upload_id_marker) : NULL;
	cairn_s3xml_uploads_release(&u);
	return r < 0 ? r : *key_marker != NULL;
}

int cairn_s3_uploads_list(cairn_s3_conn *c, const char *prefix,
                          int (*cb)(const struct cairn_s3xml_upload *u, void *payload),
                          void *payload)
{
	char *key_marker = NULL, *id_marker = NULL;
	int r;
	while ((r = uploads_page(c, prefix, &key_marker, &id_marker, cb, payload)) == 1)
		;
	free(key_marker);
	free(id_marker);
	return r;
}

int cairn_s3_upload_abort(cairn_s3_conn *c, const char *key, const char *upload_id)
{
	struct req rq = { .method = "DELETE", .key = key };
	add_query(&rq, "uploadId", upload_id);
	int r = perform(c, &rq);
	req_release(&rq);
	return r == -ENOENT ? 0 : r; /* NoSuchUpload: already gone */
}

int cairn_s3_versioning(cairn_s3_conn *c, char status[16])
{
	_cleanup_buf_ struct cairn_buf reply = CAIRN_BUF_INIT;
	struct req rq = { 0 };
	add_query(&rq, "versioning", "");
	int r = bucket_get(c, &rq, &reply);
	if (r >= 0 && cairn_s3xml_parse_versioning(status, reply.data, reply.len) < 0)
		r = cairn_err_wrap(-EPROTO, "S3 GetBucketVersioning");
	return r;
}

int cairn_s3_object_lock(cairn_s3_conn *c, struct cairn_s3xml_lock *out)
{
	_cleanup_buf_ struct cairn_buf reply = CAIRN_BUF_INIT;
	struct req rq = { 0 };
	add_query(&rq, "object-lock", "");
	int r = bucket_get(c, &rq, &reply);
	if (r >= 0 && cairn_s3xml_parse_lock(out, reply.data, reply.len) < 0)
		r = cairn_err_wrap(-EPROTO, "S3 GetObjectLockConfiguration");
	return r;
}

/* ---- parallel jobs -------------------------------------------------------- */

/* Workers take jobs in order from a shared cursor, each over its own connection.
 * The first failure stops the others after their current transfer. */
struct pool {
	cairn_s3 *s3;
	size_t n;
	atomic_size_t next;
	atomic_bool stop;
	int (*fn)(cairn_s3_conn *c, size_t i, void *payload);
	void *payload;
	pthread_mutex_t lock;
	int code;       /* protected by lock */
	char msg[1024]; /* protected by lock */
};

static void pool_fail(struct pool *p, int r)
{
	pthread_mutex_lock(&p->lock);
	if (p->code == 0) {
		p->code = r;
		snprintf(p->msg, sizeof(p->msg), "%s", cairn_err_msg());
	}
	pthread_mutex_unlock(&p->lock);
	atomic_store(&p->stop, true);
}

static void pool_loop(struct pool *p, cairn_s3_conn *c)
{
	while (!atomic_load(&p->stop)) {
		size_t i = atomic_fetch_add(&p->next, 1);
		if (i >= p->n)
			return;
		int r = p->fn(c, i, p->payload);
		if (r < 0)
			pool_fail(p, r);
	}
}

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	cairn_s3_conn *c = NULL;
	int r = cairn_s3_conn_new(&c, p->s3);
	if (r < 0)
		pool_fail(p, r);
	else
		pool_loop(p, c);
	cairn_s3_conn_free(c);
	return NULL;
}

int cairn_s3_parallel(cairn_s3 *s, cairn_s3_conn *main_conn, size_t n,
                      int (*fn)(cairn_s3_conn *c, size_t i, void *payload), void *payload)
{
	struct pool p = { .s3 = s, .n = n, .fn = fn, .payload = payload };
	pthread_t tid[CAIRN_S3_CONNECTIONS_MAX];
	size_t threads = cairn_s3_connections(s), started = 0;
	if (threads > n)
		threads = n;
	pthread_mutex_init(&p.lock, NULL);
	if (threads <= 1) {
		pool_loop(&p, main_conn); /* one at a time: the caller's connection does it */
	} else {
		for (; started < threads; started++)
			if (pthread_create(&tid[started], NULL, pool_worker, &p) != 0)
				break;
		if (started == 0)
			pool_loop(&p, main_conn);
		for (size_t i = 0; i < started; i++)
			pthread_join(tid[i], NULL);
	}
	pthread_mutex_destroy(&p.lock);
	if (p.code < 0)
		return cairn_err_set(p.code, "%s", p.msg);
	return 0;
}
