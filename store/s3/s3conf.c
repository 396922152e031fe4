/* SPDX-License-Identifier: LGPL-2.1-or-later */
/* S3 client configuration as the AWS tools resolve it: environment, profiles, endpoint. */
#include "s3.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cleanup.h"

#define INI_MAX (1u << 20) /* ~/.aws files larger than this are refused */
#define NAME_MAX_LEN 256

/* ---- INI ------------------------------------------------------------------ */

struct span {
	const char *p;
	size_t n;
};

static bool blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r';
}

static struct span trim(const char *p, size_t n)
{
	while (n > 0 && blank(*p)) {
		p++;
		n--;
	}
	while (n > 0 && blank(p[n - 1]))
		n--;
	return (struct span){ p, n };
}

static bool span_eq(struct span s, const char *z)
{
	return strlen(z) == s.n && memcmp(s.p, z, s.n) == 0;
}

/* key "a.b" matches parent "a" + name "b" of an indented line. */
static bool key_eq(struct span parent, struct span name, const char *key)
{
	if (parent.n == 0)
		return span_eq(name, key);
	size_t kl = strlen(key);
	return kl == parent.n + 1 + name.n && memcmp(key, parent.p, parent.n) == 0 &&
	       key[parent.n] == '.' && memcmp(key + parent.n + 1, name.p, name.n) == 0;
}

struct ini_state {
	struct span section, parent;
};

/* One line: 1 and *value set when it is the key looked for. */
static int ini_line(struct ini_state *st, struct span line, const char *section, const char *key,
                    struct span *value)
{
	bool indented = line.n > 0 && blank(line.p[0]);
	struct span t = trim(line.p, line.n);
	if (t.n == 0 || t.p[0] == '#' || t.p[0] == ';')
		return 0;
	if (t.p[0] == '[') {
		st->section = t.p[t.n - 1] == ']' ? trim(t.p + 1, t.n - 2) : (struct span){ 0 };
		st->parent = (struct span){ 0 };
		return 0;
	}
	const char *eq = memchr(t.p, '=', t.n);
	if (!eq)
		return 0;
	struct span name = trim(t.p, (size_t)(eq - t.p));
	struct span v = trim(eq + 1, t.n - (size_t)(eq - t.p) - 1);
	if (!indented)
		st->parent = (struct span){ 0 };
	bool match = st->section.p && span_eq(st->section, section) &&
	             key_eq(indented ? st->parent : (struct span){ 0 }, name, key);
	if (!indented && v.n == 0)
		st->parent = name; /* "s3 =" opens an indented block */
	if (match)
		*value = v;
	return match;
}

int cairn_s3__ini_get(const char *text, size_t len, const char *section, const char *key, char *out,
                      size_t size)
{
	struct ini_state st = { { 0 }, { 0 } };
	size_t pos = 0;
	while (pos < len) {
		const char *nl = memchr(text + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (text + pos)) : len - pos;
		struct span v;
		if (ini_line(&st, (struct span){ text + pos, n }, section, key, &v) == 1) {
			if (v.n >= size || memchr(v.p, 0, v.n))
				return cairn_err_set(-EINVAL, "value of '%s' in [%s] is too long",
				                     key, section);
			memcpy(out, v.p, v.n);
			out[v.n] = '\0';
			return 1;
		}
		pos += n + 1;
	}
	return 0;
}

/* ---- profiles --------------------------------------------------------------- */

/* The shared credentials and config files of one profile. */
struct profile {
	char name[NAME_MAX_LEN];
	char cred_section[NAME_MAX_LEN], conf_section[NAME_MAX_LEN + 8];
	struct cairn_buf creds, conf;
	bool explicit_name;
};

static void profile_release(struct profile *p)
{
	OPENSSL_cleanse(p->creds.data, p->creds.len);
	cairn_buf_release(&p->creds);
	cairn_buf_release(&p->conf);
}

static int load_file(const char *env, const char *home_rel, struct cairn_buf *out)
{
	char path[4096];
	const char *e = getenv(env), *home = getenv("HOME");
	if (e && *e)
		snprintf(path, sizeof(path), "%s", e);
	else if (home && *home)
		snprintf(path, sizeof(path), "%s/%s", home, home_rel);
	else
		return 0;
	int r = cairn_file_slurp(path, INI_MAX, out);
	if (r == -ENOENT || r == -EISDIR)
		return 0; /* no such file: nothing configured there */
	return r;
}

/* Whether text has a line "[section]" (blanks around it allowed). */
static bool has_section(const struct cairn_buf *b, const char *section)
{
	const char *t = (const char *)b->data;
	size_t len = b->len, sl = strlen(section);
	for (size_t pos = 0; t && pos < len;) {
		const char *nl = memchr(t + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (t + pos)) : len - pos, i = 0;
		while (i < n && (t[pos + i] == ' ' || t[pos + i] == '\t'))
			i++;
		if (n - i >= sl + 2 && t[pos + i] == '[' &&
		    memcmp(t + pos + i + 1, section, sl) == 0 && t[pos + i + 1 + sl] == ']')
			return true;
		pos += n + 1;
	}
	return false;
}

static int profile_load(struct profile *p, const char *name)
{
	const char *env = getenv("AWS_PROFILE");
	p->explicit_name = (name && *name) || (env && *env);
	snprintf(p->name, sizeof(p->name), "%s",
	         name && *name ? name
	         : env && *env ? env
	                       : "default");
	snprintf(p->cred_section, sizeof(p->cred_section), "%s", p->name);
	/* ~/.aws/config names sections "profile NAME", except the default one. */
	if (strcmp(p->name, "default") == 0)
		snprintf(p->conf_section, sizeof(p->conf_section), "default");
	else
		snprintf(p->conf_section, sizeof(p->conf_section), "profile %s", p->name);
	int r = load_file("AWS_SHARED_CREDENTIALS_FILE", ".aws/credentials", &p->creds);
	if (r >= 0)
		r = load_file("AWS_CONFIG_FILE", ".aws/config", &p->conf);
	/* A profile asked for by name that is nowhere: a typo, not "no settings". */
	if (r >= 0 && p->explicit_name && strcmp(p->name, "default") != 0 &&
	    !has_section(&p->creds, p->cred_section) && !has_section(&p->conf, p->conf_section))
		r = cairn_err_set(-ENOENT,
		                  "S3 profile '%s' is in neither ~/.aws/credentials nor "
		                  "~/.aws/config",
		                  p->name);
	return r;
}

/* A setting from the credentials file, then the config file. 1 found, 0 not. */
static int profile_get(struct profile *p, const char *key, char *out, size_t size)
{
	int r = cairn_s3__ini_get((const char *)p->creds.data, p->creds.len, p->cred_section, key,
	                          out, size);
	if (r == 0)
		r = cairn_s3__ini_get((const char *)p->conf.data, p->conf.len, p->conf_section, key,
		                      out, size);
	return r;
}

/* ---- resolution ----------------------------------------------------------- */

static const char *env_nonempty(const char *name)
{
	const char *e = getenv(name);
	return e && *e ? e : NULL;
}

static int copy_setting(char *out, size_t size, const char *v, const char *what)
{
	if (strlen(v) >= size)
		return cairn_err_set(-EINVAL, "%s is too long", what);
	memcpy(out, v, strlen(v) + 1);
	return 0;
}

static int load_credentials(struct cairn_s3__config *cfg, struct profile *p)
{
	const char *ak = env_nonempty("AWS_ACCESS_KEY_ID"),
	           *sk = env_nonempty("AWS_SECRET_ACCESS_KEY");
	char token[8192];
	int r;

	if (ak || sk) {
		if (!ak || !sk)
			return cairn_err_set(-EINVAL, "%s is set but %s is not",
			                     ak ? "AWS_ACCESS_KEY_ID" : "AWS_SECRET_ACCESS_KEY",
			                     ak ? "AWS_SECRET_ACCESS_KEY" : "AWS_ACCESS_KEY_ID");
		const char *tok = env_nonempty("AWS_SESSION_TOKEN");
		if ((r = copy_setting(cfg->access_key, sizeof(cfg->access_key), ak,
		                      "AWS_ACCESS_KEY_ID")) < 0 ||
		    (r = copy_setting(cfg->secret_key, sizeof(cfg->secret_key), sk,
		                      "AWS_SECRET_ACCESS_KEY")) < 0)
			return r;
		if (tok && !(cfg->session_token = strdup(tok)))
			return cairn_err_set(-ENOMEM, "out of memory");
		return 0;
	}
	if ((r = profile_get(p, "aws_access_key_id", cfg->access_key, sizeof(cfg->access_key))) <
	            0 ||
	    (r == 1 && (r = profile_get(p, "aws_secret_access_key", cfg->secret_key,
	                                sizeof(cfg->secret_key))) < 0))
		return r;
	if (r == 0 || !cfg->access_key[0] || !cfg->secret_key[0])
		return cairn_err_set(-ENOENT,
		                     "no S3 credentials: set AWS_ACCESS_KEY_ID and "
		                     "AWS_SECRET_ACCESS_KEY, or aws_access_key_id and "
		                     "aws_secret_access_key in profile '%s' of ~/.aws/credentials",
		                     p->name);
	r = profile_get(p, "aws_session_token", token, sizeof(token));
	if (r == 1 && token[0] && !(cfg->session_token = strdup(token)))
		r = cairn_err_set(-ENOMEM, "out of memory");
	OPENSSL_cleanse(token, sizeof(token));
	return r < 0 ? r : 0;
}

static bool valid_region(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 63)
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') || *s == '-'))
			return false;
	return true;
}

static int load_region(struct cairn_s3__config *cfg, const struct cairn_s3_opts *o,
                       struct profile *p)
{
	const char *v = o->region && *o->region ? o->region : env_nonempty("AWS_REGION");
	if (!v)
		v = env_nonempty("AWS_DEFAULT_REGION");
	int r = v ? copy_setting(cfg->region, sizeof(cfg->region), v, "the region")
	          : profile_get(p, "region", cfg->region, sizeof(cfg->region));
	if (r < 0)
		return r;
	if (!cfg->region[0])
		snprintf(cfg->region, sizeof(cfg->region), "us-east-1");
	if (!valid_region(cfg->region))
		return cairn_err_set(-EINVAL, "'%s' is not a region name", cfg->region);
	return 0;
}

static bool host_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_';
}

/* host[:port] after the scheme; brackets for IPv6 literals. */
static int parse_authority(struct cairn_s3__config *cfg, const char *s, const char *url)
{
	size_t n = 0;
	if (*s == '[') {
		const char *end = strchr(s, ']');
		if (!end || strspn(s + 1, "0123456789abcdefABCDEF:.") != (size_t)(end - s - 1))
			return cairn_err_set(-EINVAL, "bad IPv6 address in endpoint '%s'", url);
		n = (size_t)(end - s) + 1;
	} else {
		while (host_char(s[n]))
			n++;
	}
	if (n == 0 || n >= sizeof(cfg->host))
		return cairn_err_set(-EINVAL, "bad host in endpoint '%s'", url);
	memcpy(cfg->host, s, n);
	cfg->host[n] = '\0';
	s += n;
	if (*s == ':') {
		char *end;
		long port = strtol(s + 1, &end, 10);
		if (end == s + 1 || port < 1 || port > 65535 || end - s - 1 > 5)
			return cairn_err_set(-EINVAL, "bad port in endpoint '%s'", url);
		snprintf(cfg->port, sizeof(cfg->port), "%ld", port);
		s = end;
	}
	if (*s && strcmp(s, "/") != 0)
		return cairn_err_set(-EINVAL, "endpoint '%s' must be scheme://host[:port]", url);
	return 0;
}

static int parse_endpoint(struct cairn_s3__config *cfg, const char *url)
{
	const char *rest;
	if (strncmp(url, "https://", 8) == 0)
		rest = url + 8;
	else if (strncmp(url, "http://", 7) == 0)
		rest = url + 7;
	else
		return cairn_err_set(-EINVAL, "endpoint '%s' must start with http:// or https://",
		                     url);
	snprintf(cfg->scheme, sizeof(cfg->scheme), "%.*s", (int)(rest - url - 3), url);
	cfg->custom_endpoint = true;
	return parse_authority(cfg, rest, url);
}

static int load_endpoint(struct cairn_s3__config *cfg, const struct cairn_s3_opts *o,
                         struct profile *p)
{
	char buf[1024] = "";
	const char *v = o->endpoint && *o->endpoint ? o->endpoint : NULL;
	const char *ignore = env_nonempty("AWS_IGNORE_CONFIGURED_ENDPOINT_URLS");
	/* As the AWS SDKs: configured endpoints can be switched off as a whole. */
	if (!v && !(ignore && strcmp(ignore, "true") == 0)) {
		v = env_nonempty("AWS_ENDPOINT_URL_S3");
		if (!v)
			v = env_nonempty("AWS_ENDPOINT_URL");
		int r = v ? 0 : profile_get(p, "endpoint_url", buf, sizeof(buf));
		if (r < 0)
			return r;
		if (r == 1 && buf[0])
			v = buf;
	}
	if (v)
		return parse_endpoint(cfg, v);
	snprintf(cfg->scheme, sizeof(cfg->scheme), "https");
	snprintf(cfg->host, sizeof(cfg->host), "s3.%s.amazonaws.com", cfg->region);
	return 0;
}

/* DNS-compatible without dots: usable as a virtual host, also over TLS. */
static bool dns_bucket(const char *b)
{
	size_t n = strlen(b);
	if (n < 3 || n > 63 || b[0] == '-' || b[n - 1] == '-')
		return false;
	for (; *b; b++)
		if (!((*b >= 'a' && *b <= 'z') || (*b >= '0' && *b <= '9') || *b == '-'))
			return false;
	return true;
}

/* Whether the endpoint's host is an IP address (IPv6 literals keep their
 * brackets): no bucket can be a name below it. */
static bool ip_host(const char *host)
{
	struct in_addr a;
	return host[0] == '[' || inet_pton(AF_INET, host, &a) == 1;
}

static int load_addressing(struct cairn_s3__config *cfg, const char *bucket,
                           const struct cairn_s3_opts *o, struct profile *p)
{
	char style[32] = "";
	int mode = o->addressing;
	if (mode == CAIRN_S3_ADDR_AUTO) {
		int r = profile_get(p, "s3.addressing_style", style, sizeof(style));
		if (r < 0)
			return r;
		if (strcmp(style, "path") == 0)
			mode = CAIRN_S3_ADDR_PATH;
		else if (strcmp(style, "virtual") == 0)
			mode = CAIRN_S3_ADDR_VIRTUAL;
	}
	if (mode == CAIRN_S3_ADDR_AUTO)
		mode = cfg->custom_endpoint || !dns_bucket(bucket) ? CAIRN_S3_ADDR_PATH
		                                                   : CAIRN_S3_ADDR_VIRTUAL;
	if (mode == CAIRN_S3_ADDR_VIRTUAL && !dns_bucket(bucket))
		return cairn_err_set(-EINVAL,
		                     "bucket '%s' cannot be a host name: use path-style addressing",
		                     bucket);
	if (mode == CAIRN_S3_ADDR_VIRTUAL && ip_host(cfg->host))
		return cairn_err_set(-EINVAL,
		                     "endpoint host %s is an IP address, which no bucket can be "
		                     "a host name under: use path-style addressing",
		                     cfg->host);
	cfg->path_style = mode == CAIRN_S3_ADDR_PATH;
	return 0;
}

static bool valid_bucket(const char *b)
{
	size_t n = strlen(b);
	if (n == 0 || n > 255)
		return false;
	for (; *b; b++)
		if (!host_char(*b))
			return false;
	return true;
}

int cairn_s3__config_load(struct cairn_s3__config *cfg, const char *bucket,
                          const struct cairn_s3_opts *o)
{
	struct profile p = { 0 };
	const char *ca = env_nonempty("AWS_CA_BUNDLE");
	int r;

	*cfg = (struct cairn_s3__config){ 0 };
	if (!valid_bucket(bucket))
		return cairn_err_set(-EINVAL, "'%s' is not a bucket name", bucket);
	if (ca)
		snprintf(cfg->ca_bundle, sizeof(cfg->ca_bundle), "%s", ca);
	if ((r = profile_load(&p, o->profile)) >= 0 && (r = load_region(cfg, o, &p)) >= 0 &&
	    (r = load_endpoint(cfg, o, &p)) >= 0 &&
	    (r = load_addressing(cfg, bucket, o, &p)) >= 0 && !o->local_only)
		r = load_credentials(cfg, &p);
	profile_release(&p);
	if (r < 0)
		cairn_s3__config_release(cfg);
	return r;
}

void cairn_s3__config_release(struct cairn_s3__config *cfg)
{
	if (cfg->session_token) {
		OPENSSL_cleanse(cfg->session_token, strlen(cfg->session_token));
		free(cfg->session_token);
	}
	OPENSSL_cleanse(cfg, sizeof(*cfg));
}

/* ---- URLs ------------------------------------------------------------------ */

int cairn_s3_url_parse(const char *url, char **bucket, char **prefix)
{
	if (strncmp(url, "s3://", 5) != 0)
		return cairn_err_set(-EINVAL, "'%s' is not an s3://bucket/prefix URL", url);
	const char *b = url + 5, *slash = strchr(b, '/');
	size_t bl = slash ? (size_t)(slash - b) : strlen(b);
	const char *pre = slash ? slash + 1 : "";
	size_t pl = strlen(pre);
	while (pl > 0 && pre[pl - 1] == '/')
		pl--;
	if (bl == 0)
		return cairn_err_set(-EINVAL, "'%s' names no bucket", url);
	if (pl > 512)
		return cairn_err_set(-EINVAL, "bad prefix in '%s'", url);
	/* "s3://b//x" would be the prefix "/x", another repository than
	 * "s3://b/x": an empty part is refused as "." is. */
	if (pre[0] == '/' || strstr(pre, "//"))
		return cairn_err_set(-EINVAL, "bad prefix in '%s': no empty, '.' or '..' parts",
		                     url);
	_cleanup_free_ char *bk = strndup(b, bl);
	char *pk = strndup(pre, pl);
	if (!bk || !pk) {
		free(pk);
		return cairn_err_set(-ENOMEM, "out of memory");
	}
	/* A "." or ".." segment is resolved by the HTTP layer after signing: the
	 * server would refuse every request's signature. */
	for (const char *seg = pk; *seg;) {
		size_t n = strcspn(seg, "/");
		if ((n == 1 && seg[0] == '.') || (n == 2 && seg[0] == '.' && seg[1] == '.')) {
			free(pk);
			return cairn_err_set(
			        -EINVAL, "bad prefix in '%s': no empty, '.' or '..' parts", url);
		}
		seg += n + (seg[n] == '/');
	}
	if (!valid_bucket(bk)) {
		free(pk);
		return cairn_err_set(-EINVAL, "'%s' is not a bucket name", bk);
	}
	*bucket = TAKE_PTR(bk);
	*prefix = pk;
	return 0;
}
