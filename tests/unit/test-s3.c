/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* store/s3/s3.c and s3conf.c: configuration, URL building, retries and error handling
 * against a scripted HTTP server on 127.0.0.1 (the real server is in
 * tests/integration/s3-sync.sh). */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <curl/curl.h>

#include "check.h"
#include "cleanup.h"
#include "s3.h"

#define S(x) x, strlen(x)

/* ---- configuration ------------------------------------------------------- */

static void clear_env(void)
{
	static const char *const vars[] = {
		"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
		"AWS_SESSION_TOKEN", "AWS_PROFILE",
		"AWS_REGION",        "AWS_DEFAULT_REGION",
		"AWS_ENDPOINT_URL",  "AWS_ENDPOINT_URL_S3",
		"AWS_CONFIG_FILE",   "AWS_SHARED_CREDENTIALS_FILE",
		"AWS_CA_BUNDLE",     "AWS_IGNORE_CONFIGURED_ENDPOINT_URLS",
		"CAIRN_S3_TRACE",
	};
	for (size_t i = 0; i < ARRAY_SIZE(vars); i++)
		unsetenv(vars[i]);
	setenv("HOME", check_tmpdir(), 1); /* never the developer's ~/.aws */
	setenv("CAIRN_S3_RETRY_BASE_MS", "1", 1);
	setenv("CAIRN_S3_RETRY_CAP_MS", "5", 1);
	setenv("CAIRN_S3_RETRIES", "3", 1);
}

static void test_s3__ini(void)
{
	char v[64];
	const char *ini = "# comment\n"
	                  "[default]\n"
	                  "aws_access_key_id = AKDEFAULT\r\n"
	                  "region=eu-west-1\n"
	                  "\n"
	                  "[profile dev]\n"
	                  "  ; indented comment\n"
	                  "region = us-west-2   \n"
	                  "s3 =\n"
	                  "  addressing_style = path\n"
	                  "  endpoint_url = http://x\n"
	                  "output = json\n"
	                  "  stray = 1\n"
	                  "[broken\n"
	                  "region = nowhere\n";
	CHECK_EQ(cairn_s3__ini_get(S(ini), "default", "aws_access_key_id", v, sizeof(v)), 1);
	CHECK(strcmp(v, "AKDEFAULT") == 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "default", "region", v, sizeof(v)), 1);
	CHECK(strcmp(v, "eu-west-1") == 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "profile dev", "region", v, sizeof(v)), 1);
	CHECK(strcmp(v, "us-west-2") == 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "profile dev", "s3.addressing_style", v, sizeof(v)), 1);
	CHECK(strcmp(v, "path") == 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "profile dev", "addressing_style", v, sizeof(v)), 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "profile dev", "output", v, sizeof(v)), 1);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "profile dev", "output.stray", v, sizeof(v)), 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "broken", "region", v, sizeof(v)), 0);
	CHECK_EQ(cairn_s3__ini_get(S(ini), "nosuch", "region", v, sizeof(v)), 0);
	CHECK_ERR(cairn_s3__ini_get(S(ini), "default", "aws_access_key_id", v, 4), -EINVAL);
	CHECK_EQ(cairn_s3__ini_get(S(""), "default", "x", v, sizeof(v)), 0);
	CHECK_EQ(cairn_s3__ini_get(S("[default"), "default", "x", v, sizeof(v)), 0);
	CHECK_EQ(cairn_s3__ini_get(S("["), "", "x", v, sizeof(v)), 0);
}

static void test_s3__url_parse(void)
{
	char *b, *p;
	CHECK_OK(cairn_s3_url_parse("s3://bucket/a/b/", &b, &p));
	CHECK(strcmp(b, "bucket") == 0 && strcmp(p, "a/b") == 0);
	free(b);
	free(p);
	CHECK_OK(cairn_s3_url_parse("s3://bucket", &b, &p));
	CHECK(strcmp(b, "bucket") == 0 && p[0] == 0);
	free(b);
	free(p);
	CHECK_ERR(cairn_s3_url_parse("s3:///x", &b, &p), -EINVAL);
	CHECK_ERR(cairn_s3_url_parse("http://bucket/x", &b, &p), -EINVAL);
	CHECK_ERR(cairn_s3_url_parse("s3://bu cket/x", &b, &p), -EINVAL);
	/* the HTTP layer would resolve them after signing */
	CHECK_ERR(cairn_s3_url_parse("s3://bucket/../x", &b, &p), -EINVAL);
	CHECK_ERR(cairn_s3_url_parse("s3://bucket/a/./x", &b, &p), -EINVAL);
	CHECK_ERR(cairn_s3_url_parse("s3://bucket/a/..", &b, &p), -EINVAL);
	CHECK_OK(cairn_s3_url_parse("s3://bucket/a.b/..c/.d", &b, &p));
	free(b);
	free(p);
	CHECK_ERR(cairn_s3_url_parse("s3://bucket/a//b", &b, &p), -EINVAL);
	/* An empty first part: the prefix "/x" would be another repository. */
	CHECK_ERR(cairn_s3_url_parse("s3://bucket//x", &b, &p), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "no empty, '.' or '..' parts") != NULL);
	CHECK_ERR(cairn_s3_url_parse("s3://bucket//", &b, &p), -EINVAL);
}

static void write_file(const char *name, const char *text)
{
	char path[512];
	snprintf(path, sizeof(path), "%s/%s", check_tmpdir(), name);
	CHECK_OK(cairn_file_write_atomic(path, NULL, text, strlen(text)));
}

static void test_s3__config_env(void)
{
	struct cairn_s3_opts o = { .version = CAIRN_S3_OPTS_VERSION };
	cairn_s3 *s;
	clear_env();
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -ENOENT); /* no credentials at all */
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -EINVAL); /* half a pair */
	setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strcmp(cairn_s3_endpoint(s), "https://s3.us-east-1.amazonaws.com") == 0);
	CHECK(strstr(cairn_s3_describe(s), "virtual-hosted") != NULL);
	CHECK(strstr(cairn_s3_describe(s), "SK") == NULL);
	cairn_s3_free(s);
	/* Dots in a bucket name do not fit TLS virtual hosts: path-style. */
	setenv("AWS_DEFAULT_REGION", "eu-central-1", 1);
	CHECK_OK(cairn_s3_new(&s, "my.bucket", &o));
	CHECK(strstr(cairn_s3_describe(s), "path-style") != NULL);
	CHECK(strstr(cairn_s3_describe(s), "eu-central-1") != NULL);
	cairn_s3_free(s);
	o.addressing = CAIRN_S3_ADDR_VIRTUAL;
	CHECK_ERR(cairn_s3_new(&s, "my.bucket", &o), -EINVAL);
	o.addressing = CAIRN_S3_ADDR_AUTO;
	/* Custom endpoints: path-style unless told otherwise; AWS_ENDPOINT_URL_S3 wins. */
	setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9", 1);
	setenv("AWS_ENDPOINT_URL_S3", "http://[::1]:7480/", 1);
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strcmp(cairn_s3_endpoint(s), "http://[::1]:7480") == 0);
	CHECK(strstr(cairn_s3_describe(s), "path-style") != NULL);
	cairn_s3_free(s);
	/* No bucket is a host name under an IP address. */
	o.addressing = CAIRN_S3_ADDR_VIRTUAL;
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -EINVAL);
	o.endpoint = "http://127.0.0.1:7480";
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -EINVAL);
	CHECK(strstr(cairn_err_msg(), "is an IP address") != NULL);
	o.addressing = CAIRN_S3_ADDR_AUTO;
	o.endpoint = "https://minio.example:9000";
	o.addressing = CAIRN_S3_ADDR_VIRTUAL;
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strstr(cairn_s3_describe(s), "virtual-hosted") != NULL);
	cairn_s3_free(s);
	static const char *const bad[] = { "ftp://x",        "http://",       "http://h:0",
		                           "http://h:99999", "http://h/path", "http://h:80x",
		                           "http://[zz]:1",  "http://a b" };
	for (size_t i = 0; i < ARRAY_SIZE(bad); i++) {
		o.endpoint = bad[i];
		CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -EINVAL);
	}
	o.endpoint = NULL;
	o.region = "EU WEST";
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -EINVAL);
}

static void test_s3__config_profile(void)
{
	struct cairn_s3_opts o = { .version = CAIRN_S3_OPTS_VERSION };
	cairn_s3 *s;
	clear_env();
	write_file("credentials", "[default]\naws_access_key_id = A1\naws_secret_access_key = S1\n"
	                          "[work]\naws_access_key_id=A2\naws_secret_access_key=S2\n"
	                          "aws_session_token = T2\n");
	write_file("config",
	           "[default]\nregion = ap-south-1\n"
	           "[profile work]\nregion = sa-east-1\nendpoint_url = http://s3.example:80\n"
	           "s3 =\n  addressing_style = virtual\n");
	char path[512];
	snprintf(path, sizeof(path), "%s/credentials", check_tmpdir());
	setenv("AWS_SHARED_CREDENTIALS_FILE", path, 1);
	snprintf(path, sizeof(path), "%s/config", check_tmpdir());
	setenv("AWS_CONFIG_FILE", path, 1);
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strstr(cairn_s3_describe(s), "ap-south-1") != NULL);
	cairn_s3_free(s);
	setenv("AWS_PROFILE", "work", 1);
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strcmp(cairn_s3_endpoint(s), "http://s3.example:80") == 0);
	CHECK(strstr(cairn_s3_describe(s), "virtual-hosted") != NULL);
	CHECK(strstr(cairn_s3_describe(s), "sa-east-1") != NULL);
	cairn_s3_free(s);
	setenv("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS", "true", 1);
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	CHECK(strcmp(cairn_s3_endpoint(s), "https://s3.sa-east-1.amazonaws.com") == 0);
	cairn_s3_free(s);
	o.profile = "nosuch";
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -ENOENT);
	/* A profile named that is nowhere is a mistake even with keys at hand. */
	setenv("AWS_ACCESS_KEY_ID", "A3", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "S3", 1);
	CHECK_ERR(cairn_s3_new(&s, "bucket", &o), -ENOENT);
	CHECK(strstr(cairn_err_msg(), "profile 'nosuch' is in neither") != NULL);
	o.profile = "work";
	CHECK_OK(cairn_s3_new(&s, "bucket", &o));
	cairn_s3_free(s);
	unsetenv("AWS_ACCESS_KEY_ID");
	unsetenv("AWS_SECRET_ACCESS_KEY");
}

static void test_s3__backoff(void)
{
	CHECK_EQ(cairn_s3__backoff_ms(0, 200, 20000, 0), 0);
	for (unsigned a = 0; a < 70; a++) {
		uint64_t ceiling = a < 7 ? 200u << a : 20000;
		if (ceiling > 20000)
			ceiling = 20000;
		for (uint32_t rnd = 0; rnd < 100000; rnd += 997)
			CHECK(cairn_s3__backoff_ms(a, 200, 20000, rnd) <= ceiling);
		CHECK_EQ(cairn_s3__backoff_ms(a, 200, 20000, UINT32_MAX),
		         UINT32_MAX % (ceiling + 1));
	}
	CHECK_EQ(cairn_s3__backoff_ms(5, 0, 20000, 12345), 0);
}

/* ---- a scripted HTTP server ---------------------------------------------- */

#define MAX_SCRIPT 16

/* Answers requests in order with canned responses, over keep-alive connections. */
struct server {
	int lfd, port;
	const char *replies[MAX_SCRIPT];
	size_t nreplies, served;
	char requests[MAX_SCRIPT][512]; /* request line and the signed headers seen */
	pthread_t tid;
};

static size_t read_head(int fd, char *buf, size_t size)
{
	size_t n = 0;
	while (n + 1 < size) {
		ssize_t got = read(fd, buf + n, 1);
		if (got <= 0)
			return 0;
		n++;
		if (n >= 4 && memcmp(buf + n - 4, "\r\n\r\n", 4) == 0)
			break;
	}
	buf[n] = 0;
	return n;
}

static void drain_body(int fd, const char *head)
{
	const char *cl = strcasestr(head, "\r\ncontent-length:");
	long len = cl ? strtol(cl + 17, NULL, 10) : 0;
	char buf[4096];
	while (len > 0) {
		ssize_t got = read(fd, buf, len < (long)sizeof(buf) ? (size_t)len : sizeof(buf));
		if (got <= 0)
			return;
		len -= got;
	}
}

static void serve_conn(struct server *sv, int fd)
{
	char head[8192];
	while (sv->served < sv->nreplies && read_head(fd, head, sizeof(head)) > 0) {
		size_t i = sv->served++;
		snprintf(sv->requests[i], sizeof(sv->requests[i]), "%.*s", (int)strcspn(head, "\r"),
		         head);
		if (!strstr(head, "x-amz-content-sha256:") || !strstr(head, "Authorization: AWS4"))
			snprintf(sv->requests[i], sizeof(sv->requests[i]), "UNSIGNED");
		drain_body(fd, head);
		const char *reply = sv->replies[i];
		if (strcmp(reply, "DROP") == 0)
			return; /* close without answering */
		if (write(fd, reply, strlen(reply)) < 0)
			return;
	}
}

static void *server_main(void *arg)
{
	struct server *sv = arg;
	while (sv->served < sv->nreplies) {
		int fd = accept(sv->lfd, NULL, NULL);
		if (fd < 0)
			break;
		serve_conn(sv, fd);
		close(fd);
	}
	return NULL;
}

static void server_start(struct server *sv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	socklen_t len = sizeof(a);
	sv->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	CHECK(sv->lfd >= 0);
	CHECK_OK(bind(sv->lfd, (struct sockaddr *)&a, sizeof(a)));
	CHECK_OK(listen(sv->lfd, 8));
	CHECK_OK(getsockname(sv->lfd, (struct sockaddr *)&a, &len));
	sv->port = ntohs(a.sin_port);
	CHECK_EQ(pthread_create(&sv->tid, NULL, server_main, sv), 0);
}

static void server_stop(struct server *sv)
{
	shutdown(sv->lfd, SHUT_RDWR);
	close(sv->lfd);
	pthread_join(sv->tid, NULL);
}

static void client(struct server *sv, cairn_s3 **s, cairn_s3_conn **c)
{
	char ep[64];
	snprintf(ep, sizeof(ep), "http://127.0.0.1:%d", sv->port);
	struct cairn_s3_opts o = { .version = CAIRN_S3_OPTS_VERSION, .endpoint = ep };
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
	CHECK_OK(cairn_s3_new(s, "bkt", &o));
	CHECK_OK(cairn_s3_conn_new(c, *s));
}

/* A canned reply with the right Content-Length (static storage, a few per test). */
static const char *http(const char *status, const char *headers, const char *body)
{
	static char pool[8][2048];
	static unsigned next;
	char *buf = pool[next++ % ARRAY_SIZE(pool)];
	snprintf(buf, sizeof(pool[0]), "HTTP/1.1 %s\r\n%sContent-Length: %zu\r\n\r\n%s", status,
	         headers, strlen(body), body);
	return buf;
}

#define SLOWDOWN "<Error><Code>SlowDown</Code><Message>later</Message></Error>"
#define ETAG_HELLO "ETag: \"5d41402abc4b2a76b9719d911017c592\"\r\n"

static void test_s3__retry_then_success(void)
{
	/* "Connection: close" first, so that the drop hits a fresh connection: curl
	 * itself retries a request once when a reused connection turns out dead. */
	struct server sv = { .replies = { http("503 Slow Down", "Connection: close\r\n", SLOWDOWN),
		                          "DROP", http("200 OK", ETAG_HELLO, "") },
		             .nreplies = 3 };
	cairn_s3 *s;
	cairn_s3_conn *c;
	struct cairn_s3_obj obj;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_put(c, "dir/hello", "hello", 5, &obj));
	CHECK(strcmp(obj.etag, "5d41402abc4b2a76b9719d911017c592") == 0);
	CHECK_EQ(cairn_s3_requests(s), 3);
	CHECK(strcmp(sv.requests[0], "PUT /bkt/dir/hello HTTP/1.1") == 0);
	CHECK(strcmp(sv.requests[2], sv.requests[0]) == 0);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

static void test_s3__errors(void)
{
	struct server sv = {
		.replies = { http("403 Forbidden", "",
		                  "<Error><Code>InvalidAccessKeyId</Code><Message>no such key id"
		                  "</Message></Error>"),
		             http("404 Not Found", "", ""), http("503 Slow Down", "", SLOWDOWN),
		             http("500 Oops", "", ""), http("429 Too Many", "", "") },
		.nreplies = 5
	};
	cairn_s3 *s;
	cairn_s3_conn *c;
	struct cairn_s3_obj obj;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_ERR(cairn_s3_put(c, "k", "x", 1, NULL), -EACCES);
	CHECK(strstr(cairn_err_msg(),
	             "S3 authentication failed: InvalidAccessKeyId: no such key id"));
	CHECK_ERR(cairn_s3_head(c, "missing", &obj), -ENOENT);
	CHECK_ERR(cairn_s3_put(c, "k", "x", 1, NULL), -EIO); /* 3 attempts, all refused */
	CHECK(strstr(cairn_err_msg(), "giving up after 3 attempts: HTTP 429"));
	CHECK(!strstr(cairn_err_msg(), "HTTP 429 HTTP 429")); /* no code: said once */
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

/* A PUT answered 200 without saying it stored what was sent (an ETag that is not
 * the MD5 sent, or none): a HEAD (and for a small object without a digest
 * ETag, a GET) decides; an object not there as sent is sent again, 3 times. */
static void test_s3__put_confirmed(void)
{
#define WRONG_ETAG                                                          \
	"HTTP/1.1 200 OK\r\nETag: \"00000000000000000000000000000000\"\r\n" \
	"Content-Length: 0\r\n\r\n"
#define NOT_FOUND "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
	struct server sv = {
		.replies = { /* the wrong ETag of a PUT that landed: the HEAD says so */
		             WRONG_ETAG,
		             "HTTP/1.1 200 OK\r\nETag: \"9dd4e461268c8034f5c8564e155c67a6\"\r\n"
		             "Content-Length: 1\r\n\r\n",
		             /* no ETag; the HEAD has none either: the content decides */
		             "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n",
		             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n",
		             "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\nx",
		             /* never stored: sent 3 times, then an error */
		             WRONG_ETAG, NOT_FOUND, WRONG_ETAG, NOT_FOUND, WRONG_ETAG, NOT_FOUND },
		.nreplies = 11
	};
#undef WRONG_ETAG
#undef NOT_FOUND
	cairn_s3 *s;
	cairn_s3_conn *c;
	struct cairn_s3_obj obj;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_put(c, "k", "x", 1, &obj));
	CHECK(strcmp(obj.etag, "9dd4e461268c8034f5c8564e155c67a6") == 0);
	CHECK(strncmp(sv.requests[1], "HEAD /bkt/k ", 12) == 0);
	CHECK_OK(cairn_s3_put(c, "k", "x", 1, &obj));
	CHECK(strncmp(sv.requests[4], "GET /bkt/k ", 11) == 0);
	CHECK_ERR(cairn_s3_put(c, "k", "x", 1, NULL), -EPROTO);
	CHECK(strstr(cairn_err_msg(), "giving up after 3 attempts"));
	CHECK(strncmp(sv.requests[9], "PUT /bkt/k ", 11) == 0);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

/* The adaptive slow-down: each throttling reply halves the requests in flight,
 * `limit` successes in a row raise them by one, up to the connections. */
static void test_s3__adaptive_gate(void)
{
	struct server sv = { .nreplies = 11 };
	cairn_s3 *s;
	cairn_s3_conn *c;
	const char *ok = http("200 OK", ETAG_HELLO, ""); /* http() has a few slots only */
	sv.replies[0] = http("503 Slow Down", "", SLOWDOWN);
	sv.replies[1] = http("429 Too Many", "", "");
	for (size_t i = 2; i < sv.nreplies; i++)
		sv.replies[i] = ok;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_EQ(cairn_s3__gate_limit(s), CAIRN_S3_CONNECTIONS_DEFAULT);
	CHECK_OK(cairn_s3_put(c, "k", "hello", 5, NULL)); /* 503, 429, then 200 */
	CHECK_EQ(cairn_s3__gate_limit(s), CAIRN_S3_CONNECTIONS_DEFAULT / 4);
	for (int i = 0; i < 2; i++)
		CHECK_OK(cairn_s3_put(c, "k", "hello", 5, NULL));
	CHECK_EQ(cairn_s3__gate_limit(s), CAIRN_S3_CONNECTIONS_DEFAULT / 4 + 1);
	for (int i = 0; i < 3; i++)
		CHECK_OK(cairn_s3_put(c, "k", "hello", 5, NULL));
	CHECK_EQ(cairn_s3__gate_limit(s), CAIRN_S3_CONNECTIONS_DEFAULT / 4 + 2);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

/* With SSE-KMS or SSE-C the ETag is no digest: the server's Content-MD5 check
 * is what vouches for the data. Without those headers the same ETag is refused. */
#define SSE_S3_ETAG                                      \
	"ETag: \"33333333333333333333333333333333\"\r\n" \
	"x-amz-server-side-encryption: AES256\r\n"
#define SSE_S3_PUT "HTTP/1.1 200 OK\r\n" SSE_S3_ETAG "Content-Length: 0\r\n\r\n"
#define SSE_S3_HEAD "HTTP/1.1 200 OK\r\n" SSE_S3_ETAG "Content-Length: 5\r\n\r\n"

static void test_s3__sse_etag(void)
{
	struct server sv = {
		.replies = { http("200 OK",
		                  "ETag: \"11111111111111111111111111111111\"\r\n"
		                  "x-amz-server-side-encryption: aws:kms\r\n",
		                  ""),
		             http("200 OK",
		                  "ETag: \"22222222222222222222222222222222\"\r\n"
		                  "x-amz-server-side-encryption-customer-algorithm: AES256\r\n",
		                  ""),
		             /* SSE-S3 keeps MD5 ETags: a wrong one is checked with a
		              * HEAD, which shows another object: sent again, 3 times */
		             SSE_S3_PUT, SSE_S3_HEAD, SSE_S3_PUT, SSE_S3_HEAD, SSE_S3_PUT,
		             SSE_S3_HEAD },
		.nreplies = 8
	};
	cairn_s3 *s;
	cairn_s3_conn *c;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_put(c, "k", "hello", 5, NULL));
	CHECK_OK(cairn_s3_put(c, "k", "hello", 5, NULL));
	CHECK_ERR(cairn_s3_put(c, "k", "hello", 5, NULL), -EPROTO);
	CHECK(strstr(cairn_err_msg(), "not the MD5"));
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

static int count(const struct cairn_s3xml_object *o, void *payload)
{
	(void)o;
	(*(size_t *)payload)++;
	return 0;
}

static void test_s3__get_and_list(void)
{
	struct server sv = {
		.replies = { http("206 Partial", "Content-Range: bytes 2-4/10\r\n", "abc"),
		             http("200 OK", "",
		                  "<ListBucketResult><IsTruncated>true</IsTruncated>"
		                  "<NextContinuationToken>t+1</"
		                  "NextContinuationToken><Contents><Key>"
		                  "p/a</Key><Size>1</Size></Contents></ListBucketResult>"),
		             http("200 OK", "",
		                  "<ListBucketResult><IsTruncated>false</"
		                  "IsTruncated><Contents><Key>"
		                  "p/b</Key><Size>2</Size></Contents></ListBucketResult>"),
		             http("200 OK", "", "<a/>x") },
		.nreplies = 4
	};
	cairn_s3 *s;
	cairn_s3_conn *c;
	_cleanup_buf_ struct cairn_buf b = CAIRN_BUF_INIT;
	size_t seen = 0;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_get(c, "obj", 2, 3, 100, &b));
	CHECK(b.len == 3 && memcmp(b.data, "abc", 3) == 0);
	CHECK_OK(cairn_s3_list(c, "p/", count, &seen));
	CHECK_EQ(seen, 2);
	CHECK(strcmp(sv.requests[1], "GET /bkt?list-type=2&max-keys=1000&prefix=p%2F HTTP/1.1") ==
	      0);
	CHECK(strstr(sv.requests[2], "continuation-token=t%2B1&") != NULL);
	CHECK_ERR(cairn_s3_list(c, "p/", count, &seen), -EPROTO); /* not a listing */
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

#define PAGE(truncated, token, key)                                             \
	http("200 OK", "",                                                      \
	     "<ListBucketResult><IsTruncated>" truncated "</IsTruncated>" token \
	     "<Contents><Key>" key "</Key><Size>1</Size></Contents></ListBucketResult>")
#define NEXT(t) "<NextContinuationToken>" t "</NextContinuationToken>"

/* A listing whose first page comes twice (keys not increasing) is made again
 * once; nothing of the bad one reaches the callback. Twice bad: -EPROTO. */
static void test_s3__list_repeated_page(void)
{
	struct server sv = {
		.replies = { PAGE("true", NEXT("t1"), "p/a"), PAGE("true", NEXT("t2"), "p/a"),
		             PAGE("true", NEXT("t1"), "p/a"), PAGE("false", "", "p/b"),
		             PAGE("true", NEXT("t1"), "p/a"), PAGE("false", "", "p/a"),
		             PAGE("true", NEXT("t1"), "p/b"), PAGE("false", "", "p/a") },
		.nreplies = 8
	};
	cairn_s3 *s;
	cairn_s3_conn *c;
	size_t seen = 0;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_list(c, "p/", count, &seen));
	CHECK_EQ(seen, 2);
	seen = 0;
	CHECK_ERR(cairn_s3_list(c, "p/", count, &seen), -EPROTO);
	CHECK_EQ(seen, 0);
	CHECK(strstr(cairn_err_msg(), "S3 listing of p/ is not in order: key p/a ") != NULL);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

/* The bucket settings a status command reports. */
static void test_s3__bucket_config(void)
{
	struct server sv = { .replies = { http("200 OK", "",
		                               "<VersioningConfiguration><Status>Enabled</Status>"
		                               "</VersioningConfiguration>"),
		                          http("404 Not Found", "",
		                               "<Error><Code>ObjectLockConfigurationNotFoundError</"
		                               "Code></Error>"),
		                          http("200 OK", "",
		                               "<ObjectLockConfiguration><ObjectLockEnabled>Enabled"
		                               "</ObjectLockEnabled></ObjectLockConfiguration>") },
		             .nreplies = 3 };
	cairn_s3 *s;
	cairn_s3_conn *c;
	char status[16];
	struct cairn_s3xml_lock lock;
	server_start(&sv);
	client(&sv, &s, &c);
	CHECK_OK(cairn_s3_versioning(c, status));
	CHECK(strcmp(status, "Enabled") == 0);
	CHECK(strcmp(sv.requests[0], "GET /bkt?versioning= HTTP/1.1") == 0);
	CHECK_ERR(cairn_s3_object_lock(c, &lock), -ENOENT);
	CHECK_OK(cairn_s3_object_lock(c, &lock));
	CHECK(lock.enabled && lock.mode[0] == 0);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
	server_stop(&sv);
}

static void test_s3__connection_refused(void)
{
	struct server sv = { .nreplies = 0 };
	cairn_s3 *s;
	cairn_s3_conn *c;
	server_start(&sv);
	client(&sv, &s, &c);
	server_stop(&sv); /* nobody listens on the port any more */
	struct cairn_s3_obj obj;
	CHECK_ERR(cairn_s3_head(c, "k", &obj), -EHOSTUNREACH);
	CHECK(strstr(cairn_err_msg(), "giving up after 3 attempts"));
	CHECK_EQ(cairn_s3_requests(s), 3);
	/* Unreachable: the next request is tried once, not a whole cycle again. */
	CHECK_ERR(cairn_s3_head(c, "k2", &obj), -EHOSTUNREACH);
	CHECK(strstr(cairn_err_msg(), "giving up after 1 attempt (unreachable before)"));
	CHECK_EQ(cairn_s3_requests(s), 4);
	size_t seen = 0; /* a listing's failure says what it listed */
	CHECK_ERR(cairn_s3_list(c, "p/", count, &seen), -EHOSTUNREACH);
	CHECK(strstr(cairn_err_msg(), "S3 listing of s3://bkt/p/:") != NULL);
	cairn_s3_conn_free(c);
	cairn_s3_free(s);
}

/* The ETag of a multipart upload, computed locally, for --verify. */
static void test_s3__file_etag(void)
{
	char path[512], etag[129];
	cairn_s3 *s;
	clear_env();
	setenv("AWS_ACCESS_KEY_ID", "AK", 1);
	setenv("AWS_SECRET_ACCESS_KEY", "SK", 1);
	setenv("CAIRN_S3_MULTIPART_THRESHOLD", "5242880", 1);
	setenv("CAIRN_S3_PART_SIZE", "5242880", 1);
	CHECK_OK(cairn_s3_new(&s, "bkt", NULL));
	snprintf(path, sizeof(path), "%s/f", check_tmpdir());
	_cleanup_close_ int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	CHECK(fd >= 0);
	CHECK_OK(cairn_s3_file_etag(s, fd, 0, etag));
	CHECK(strcmp(etag, "d41d8cd98f00b204e9800998ecf8427e") == 0);
	/* 6 MiB of zeros: parts of 5 MiB and 1 MiB. */
	CHECK_OK(ftruncate(fd, 6 << 20));
	CHECK_OK(cairn_s3_file_etag(s, fd, 6 << 20, etag));
	CHECK(strlen(etag) == 34 && strcmp(etag + 32, "-2") == 0);
	CHECK_ERR(cairn_s3_file_etag(s, fd, 7 << 20, etag), -EIO); /* shorter than said */
	cairn_s3_free(s);
	unsetenv("CAIRN_S3_MULTIPART_THRESHOLD");
	unsetenv("CAIRN_S3_PART_SIZE");
}

int main(void)
{
	curl_global_init(CURL_GLOBAL_DEFAULT);
	RUN(test_s3__ini);
	RUN(test_s3__url_parse);
	RUN(test_s3__config_env);
	RUN(test_s3__config_profile);
	RUN(test_s3__backoff);
	RUN(test_s3__retry_then_success);
	RUN(test_s3__errors);
	RUN(test_s3__put_confirmed);
	RUN(test_s3__sse_etag);
	RUN(test_s3__adaptive_gate);
	RUN(test_s3__get_and_list);
	RUN(test_s3__list_repeated_page);
	RUN(test_s3__bucket_config);
	RUN(test_s3__connection_refused);
	RUN(test_s3__file_etag);
	curl_global_cleanup();
	return 0;
}
