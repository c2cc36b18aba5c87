/* The OCI distribution client: one libcurl easy handle per client (so connections are kept
 * alive between the requests of a push), one request function that handles authentication
 * challenges and transient failures, and the artifact mapping on top.
 *
 * Every response body goes to one of two places: a 2xx body to the request's sink (a capped
 * buffer, or a file with a running digest), anything else to a small buffer that holds the
 * registry's error JSON for the message.  The status is taken from the status line of the
 * last response (after redirects), as the header callback sees it. */
#include "config.h"

#include "artifact/oci.h"
#include "artifact/manifest.h"
#include "artifact/registry.h"
#include "core/atomic.h"
#include "core/hash.h"
#include "core/opt.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* The most of an error body kept for a message. */
#define ERR_BODY_MAX (64u << 10)
/* The largest token response and tags page read. */
#define TOKEN_MAX (1u << 20)
#define PAGE_MAX  (16u << 20)
/* Tags or repositories over all pages; pages followed. */
#define LIST_MAX  1000000
#define PAGES_MAX 100000
/* Retries of an idempotent request after a transient failure, and authentication rounds. */
#define RETRIES	    2
#define AUTH_ROUNDS 2
#define URL_MAX	    8192

struct llm_oci {
	CURL *curl;
	struct llm_oci_url url;
	char origin[300];  /* scheme://HOST[:PORT] */
	char display[600]; /* oci://HOST[:PORT][/NAMESPACE], for messages */
	bool https;
	char *user, *password;
	char *auth;	  /* the Authorization value to send to the registry, or NULL */
	char *auth_scope; /* the scope the bearer token was fetched for */
	bool auth_is_basic;
	char *ca_file;
	uint64_t chunk;
	long connect_ms;
	long stall_s;
};

/* One request and what came back. */
struct xfer {
	const char *method; /* GET HEAD POST PUT PATCH DELETE */
	char url[URL_MAX];
	const char *accept;
	const char *content_type;
	const char *content_range;
	bool idempotent;
	bool token_request; /* to a token realm: basic credentials, never the registry's auth */
	/* The body: bytes, or a range of a file. */
	const unsigned char *mem;
	FILE *in_fp;
	uint64_t in_off;
	uint64_t body_len;
	bool has_body;
	uint64_t sent;
	int read_err;
	/* The 2xx body: into a buffer, or a file; hashed when hash is set. */
	struct llm_buf *out;
	FILE *out_fp;
	struct llm_sha256 *hash;
	bool hashing;
	int64_t out_limit; /* < 0: none */
	uint64_t got;
	bool over_limit; /* more than out_limit */
	bool over_cap;	 /* more than out's cap */
	bool dirty;	 /* out_fp was written to: rewind it before a retry */
	int write_err;
	/* The response. */
	long status;
	struct llm_buf err_body;
	char location[URL_MAX];
	char digest[LLM_OCI_DIGEST_MAX];
	char ctype[256];
	char link[URL_MAX];
	char www[4096];
	char content_length[32];
	CURLcode cc;
	char errbuf[CURL_ERROR_SIZE];
};

/* --- names, tags, digests, references --------------------------------------------------- */

static bool is_lower_alnum(int ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9');
}

/* One path component: [a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*, of n bytes. */
static bool valid_component(const char *s, size_t n)
{
	if (n == 0 || !is_lower_alnum((unsigned char)s[0]) ||
	    !is_lower_alnum((unsigned char)s[n - 1]))
		return false;
	for (size_t i = 0; i < n;) {
		if (is_lower_alnum((unsigned char)s[i])) {
			i++;
			continue;
		}
		size_t j = i;
		while (j < n && !is_lower_alnum((unsigned char)s[j]))
			j++;
		size_t k = j - i;
		bool ok = (k == 1 && (s[i] == '.' || s[i] == '_' || s[i] == '-')) ||
			  (k == 2 && s[i] == '_' && s[i + 1] == '_');
		for (size_t q = i; !ok && q < j && s[q] == '-'; q++)
			ok = q + 1 == j;
		if (!ok)
			return false;
		i = j;
	}
	return true;
}

bool llm_oci_valid_repo(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 255)
		return false;
	const char *p = s;
	for (;;) {
		const char *slash = strchr(p, '/');
		size_t len = slash ? (size_t)(slash - p) : strlen(p);
		if (!valid_component(p, len))
			return false;
		if (!slash)
			return true;
		p = slash + 1;
	}
}

bool llm_oci_valid_tag(const char *s)
{
	size_t n = strlen(s);
	if (n == 0 || n > 128)
		return false;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		bool word = isalnum(ch) || ch == '_';
		if (!(word || (i > 0 && (ch == '.' || ch == '-'))))
			return false;
	}
	return true;
}

enum llm_err llm_oci_tag_for(const char *version, char *out, size_t outsz, struct llm_diag *d)
{
	size_t n = strlen(version);
	if (n + 1 > outsz)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s' is too long for a tag",
				    version);
	for (size_t i = 0; i <= n; i++)
		out[i] = version[i] == '+' ? '_' : version[i];
	if (!llm_oci_valid_tag(out))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "'%s' cannot be an OCI tag (letters, digits, '_', '.', '-', at "
				    "most 128, not starting with '.' or '-')",
				    version);
	return LLM_OK;
}

bool llm_oci_valid_digest(const char *s)
{
	if (strncmp(s, "sha256:", 7) != 0 || strlen(s) != 7 + LLM_SHA256_HEX_LEN)
		return false;
	for (const char *p = s + 7; *p; p++)
		if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f')))
			return false;
	return true;
}

static bool is_loopback(const char *host)
{
	if (!strcasecmp(host, "localhost") || !strcmp(host, "[::1]"))
		return true;
	if (strncmp(host, "127.", 4) != 0)
		return false;
	/* 127.0.0.0/8, written as a dotted quad. */
	int dots = 0;
	for (const char *p = host; *p; p++) {
		if (*p == '.')
			dots++;
		else if (!isdigit((unsigned char)*p))
			return false;
	}
	return dots == 3;
}

enum llm_err llm_oci_url_parse(const char *url, struct llm_oci_url *out, struct llm_diag *d)
{
	memset(out, 0, sizeof *out);
	if (strncmp(url, "oci://", 6) != 0)
		return llm_diag_set(
		    d, LLM_ERR_USAGE, NULL, 0,
		    "'%s' is not an OCI reference (want oci://HOST[:PORT]/NAMESPACE)", url);
	const char *h = url + 6;
	size_t hn = strcspn(h, "/");
	if (hn == 0 || hn >= sizeof out->host)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': no registry host", url);
	memcpy(out->host, h, hn);
	out->host[hn] = '\0';
	/* HOST is a name, a dotted quad or a bracketed IPv6 address; PORT digits. */
	char name[256];
	const char *port = NULL;
	if (out->host[0] == '[') {
		char *close = strchr(out->host, ']');
		if (!close)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': bad IPv6 host", url);
		size_t nn = (size_t)(close - out->host) + 1;
		memcpy(name, out->host, nn);
		name[nn] = '\0';
		for (const char *p = out->host + 1; p < close; p++)
			if (!isxdigit((unsigned char)*p) && *p != ':' && *p != '.')
				return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						    "'%s': bad IPv6 host", url);
		if (close[1] == ':')
			port = close + 2;
		else if (close[1])
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': bad host", url);
	} else {
		size_t nn = strcspn(out->host, ":");
		memcpy(name, out->host, nn);
		name[nn] = '\0';
		if (out->host[nn] == ':')
			port = out->host + nn + 1;
		if (nn == 0)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': no registry host",
					    url);
		for (const char *p = name; *p; p++)
			if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
				return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						    "'%s': bad host name", url);
	}
	if (port) {
		char *end;
		errno = 0;
		long v = strtol(port, &end, 10);
		if (!*port || *end || errno || v < 1 || v > 65535 || !isdigit((unsigned char)*port))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': bad port", url);
	}
	out->loopback = is_loopback(name);
	const char *ns = h + hn;
	while (*ns == '/')
		ns++;
	size_t nsn = strlen(ns);
	while (nsn > 0 && ns[nsn - 1] == '/')
		nsn--;
	if (nsn >= sizeof out->namespace)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s': the namespace is too long",
				    url);
	memcpy(out->namespace, ns, nsn);
	out->namespace[nsn] = '\0';
	if (nsn && !llm_oci_valid_repo(out->namespace))
		return llm_diag_set(
		    d, LLM_ERR_USAGE, NULL, 0,
		    "'%s': '%s' is not a valid repository path (lower-case letters, "
		    "digits, separators . _ __ -, components joined by /)",
		    url, out->namespace);
	return LLM_OK;
}

/* --- options ------------------------------------------------------------------------------ */

void llm_oci_opts_default(struct llm_oci_opts *o)
{
	memset(o, 0, sizeof *o);
	o->transport = LLM_OCI_AUTO;
}

enum llm_err llm_oci_opts_env(struct llm_oci_opts *o, struct llm_diag *d)
{
	const char *v = getenv("LLMOPS_OCI_INSECURE");
	if (v && *v) {
		if (!strcasecmp(v, "1") || !strcasecmp(v, "true") || !strcasecmp(v, "yes"))
			o->transport = LLM_OCI_HTTP;
		else if (!strcasecmp(v, "0") || !strcasecmp(v, "false") || !strcasecmp(v, "no"))
			o->transport = LLM_OCI_HTTPS;
		else
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "LLMOPS_OCI_INSECURE: want 1 or 0, not '%s'", v);
	}
	if ((v = getenv("LLMOPS_OCI_USER")) && *v)
		o->user = v;
	if ((v = getenv("LLMOPS_OCI_PASSWORD")))
		o->password = v;
	if ((v = getenv("LLMOPS_OCI_CA_FILE")) && *v)
		o->ca_file = v;
	if ((v = getenv("LLMOPS_OCI_CHUNK_SIZE")) && *v) {
		char *end;
		errno = 0;
		unsigned long long n = strtoull(v, &end, 10);
		if (*end || errno || !isdigit((unsigned char)*v))
			return llm_diag_set(
			    d, LLM_ERR_USAGE, NULL, 0,
			    "LLMOPS_OCI_CHUNK_SIZE: want a number of bytes, not '%s'", v);
		o->chunk_size = n;
	}
	return LLM_OK;
}

/* --- credentials from the Docker and Podman files ----------------------------------------- */

static int b64val(int ch)
{
	if (ch >= 'A' && ch <= 'Z')
		return ch - 'A';
	if (ch >= 'a' && ch <= 'z')
		return ch - 'a' + 26;
	if (ch >= '0' && ch <= '9')
		return ch - '0' + 52;
	if (ch == '+' || ch == '-')
		return 62;
	if (ch == '/' || ch == '_')
		return 63;
	return -1;
}

/* Decode base64 (padding optional) into a NUL-terminated string; false when malformed. */
static bool b64decode(const char *s, char *out, size_t outsz)
{
	size_t o = 0;
	unsigned acc = 0;
	int bits = 0;
	for (; *s && *s != '='; s++) {
		int v = b64val((unsigned char)*s);
		if (v < 0)
			return false;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			if (o + 1 >= outsz)
				return false;
			out[o++] = (char)((acc >> bits) & 0xff);
		}
	}
	out[o] = '\0';
	return memchr(out, '\0', o) == NULL;
}

/* The host part of an "auths" key: "https://ghcr.io/v1/" is ghcr.io. */
static void auth_key_host(const char *key, char *out, size_t outsz)
{
	const char *p = strstr(key, "://");
	p = p ? p + 3 : key;
	size_t n = strcspn(p, "/");
	if (n >= outsz)
		n = outsz - 1;
	memcpy(out, p, n);
	out[n] = '\0';
}

static bool same_registry(const char *key_host, const char *host)
{
	if (!strcasecmp(key_host, host))
		return true;
	/* Docker Hub's credentials are filed under its index. */
	bool hub = !strcasecmp(host, "docker.io") || !strcasecmp(host, "registry-1.docker.io");
	return hub && !strcasecmp(key_host, "index.docker.io");
}

static bool creds_from_file(struct llm_oci *c, const char *path)
{
	json_t *root = json_load_file(path, 0, NULL);
	if (!root)
		return false;
	bool found = false;
	json_t *auths = json_object_get(root, "auths");
	const char *key;
	json_t *val;
	json_object_foreach(auths, key, val)
	{
		char kh[256];
		auth_key_host(key, kh, sizeof kh);
		const char *b64 = json_string_value(json_object_get(val, "auth"));
		if (!same_registry(kh, c->url.host) || !b64)
			continue;
		char plain[1024];
		char *colon;
		if (!b64decode(b64, plain, sizeof plain) || !(colon = strchr(plain, ':')))
			continue;
		*colon = '\0';
		c->user = strdup(plain);
		c->password = strdup(colon + 1);
		explicit_bzero(plain, sizeof plain);
		found = true;
		break;
	}
	json_decref(root);
	return found;
}

static void creds_from_files(struct llm_oci *c)
{
	char path[4096];
	const char *v;
	if ((v = getenv("REGISTRY_AUTH_FILE")) && *v && creds_from_file(c, v))
		return;
	if ((v = getenv("XDG_RUNTIME_DIR")) && *v &&
	    snprintf(path, sizeof path, "%s/containers/auth.json", v) < (int)sizeof path &&
	    creds_from_file(c, path))
		return;
	if ((v = getenv("DOCKER_CONFIG")) && *v) {
		if (snprintf(path, sizeof path, "%s/config.json", v) < (int)sizeof path)
			creds_from_file(c, path);
		return;
	}
	if ((v = getenv("HOME")) && *v &&
	    snprintf(path, sizeof path, "%s/.docker/config.json", v) < (int)sizeof path)
		creds_from_file(c, path);
}

/* --- the client --------------------------------------------------------------------------- */

static char *dup_or_null(const char *s, bool *ok)
{
	if (!s)
		return NULL;
	char *p = strdup(s);
	if (!p)
		*ok = false;
	return p;
}

enum llm_err llm_oci_open(struct llm_oci **out, const char *url, const struct llm_oci_opts *o,
			  struct llm_diag *d)
{
	*out = NULL;
	struct llm_oci_opts defaults;
	if (!o) {
		llm_oci_opts_default(&defaults);
		o = &defaults;
	}
	struct llm_oci_url u;
	enum llm_err e = llm_oci_url_parse(url, &u, d);
	if (e)
		return e;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return llm_diag_set(d, LLM_ERR_IO, NULL, 0, "cannot initialize libcurl");
	if ((o->user && strpbrk(o->user, "\r\n:")) || (o->password && strpbrk(o->password, "\r\n")))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "the registry user or password holds a line break (or the user "
				    "a colon)");
	struct llm_oci *c = calloc(1, sizeof *c);
	if (!c)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	c->url = u;
	c->https = o->transport == LLM_OCI_HTTPS || (o->transport == LLM_OCI_AUTO && !u.loopback);
	snprintf(c->origin, sizeof c->origin, "%s://%s", c->https ? "https" : "http", u.host);
	snprintf(c->display, sizeof c->display, "oci://%s%s%s", u.host, *u.namespace ? "/" : "",
		 u.namespace);
	bool ok = true;
	c->user = dup_or_null(o->user, &ok);
	c->password = dup_or_null(o->user ? (o->password ? o->password : "") : NULL, &ok);
	c->ca_file = dup_or_null(o->ca_file, &ok);
	if (ok && !o->user && !o->no_auth_files)
		creds_from_files(c);
	c->chunk = o->chunk_size;
	c->connect_ms = o->connect_timeout_s > 0 ? (long)(o->connect_timeout_s * 1000.0) : 30000;
	c->stall_s = o->stall_timeout_s > 0 ? (long)(o->stall_timeout_s + 0.999) : 60;
	c->curl = curl_easy_init();
	if (!ok || !c->curl) {
		llm_oci_close(c);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	*out = c;
	return LLM_OK;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void llm_oci_close(struct llm_oci *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	free(c->user);
	wipe_free(c->password);
	wipe_free(c->auth);
	free(c->auth_scope);
	free(c->ca_file);
	free(c);
}

const char *llm_oci_namespace(const struct llm_oci *c)
{
	return c->url.namespace;
}

enum llm_err llm_oci_repo_for(const struct llm_oci *c, const char *name, char *out, size_t outsz,
			      struct llm_diag *d)
{
	const char *ns = c->url.namespace;
	int n = snprintf(out, outsz, "%s%s%s", ns, *ns ? "/" : "", name);
	if (n < 0 || (size_t)n >= outsz || !llm_oci_valid_repo(out))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "%s: '%s' cannot name an OCI repository (lower-case letters, "
				    "digits and single separators . _ -)",
				    c->display, name);
	return LLM_OK;
}

/* --- one request -------------------------------------------------------------------------- */

static void xfer_init(struct xfer *x, const char *method)
{
	memset(x, 0, sizeof *x);
	x->method = method;
	x->out_limit = -1;
	x->idempotent = !strcmp(method, "GET") || !strcmp(method, "HEAD");
	llm_buf_init(&x->err_body, ERR_BODY_MAX);
}

static void xfer_free(struct xfer *x)
{
	llm_buf_free(&x->err_body);
}

static enum llm_err set_url(struct xfer *x, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum llm_err set_url(struct xfer *x, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(x->url, sizeof x->url, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= sizeof x->url ? LLM_ERR_TOO_BIG : LLM_OK;
}

static void copy_header(char *dst, size_t dstsz, const char *v, size_t n)
{
	if (n >= dstsz)
		n = 0; /* too long to use: as if absent */
	memcpy(dst, v, n);
	dst[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb;
	if (len >= 5 && !strncmp(p, "HTTP/", 5)) {
		/* A new response (after a redirect or a 100 Continue): forget the last one's. */
		const char *sp = memchr(p, ' ', len);
		x->status = sp ? strtol(sp + 1, NULL, 10) : 0;
		x->location[0] = x->digest[0] = x->ctype[0] = x->link[0] = x->www[0] = '\0';
		x->content_length[0] = '\0';
		return len;
	}
	const char *colon = memchr(p, ':', len);
	if (!colon)
		return len;
	size_t nl = (size_t)(colon - p);
	const char *v = colon + 1;
	size_t vl = len - nl - 1;
	while (vl && (*v == ' ' || *v == '\t'))
		v++, vl--;
	while (vl && (v[vl - 1] == '\r' || v[vl - 1] == '\n' || v[vl - 1] == ' '))
		vl--;
#define IS(name) (nl == sizeof(name) - 1 && !strncasecmp(p, name, nl))
	if (IS("Location"))
		copy_header(x->location, sizeof x->location, v, vl);
	else if (IS("Docker-Content-Digest"))
		copy_header(x->digest, sizeof x->digest, v, vl);
	else if (IS("Content-Type"))
		copy_header(x->ctype, sizeof x->ctype, v, vl);
	else if (IS("Content-Length"))
		copy_header(x->content_length, sizeof x->content_length, v, vl);
	else if (IS("Link")) {
		/* Several Link headers: keep the one with rel="next". */
		if (!x->link[0] || (vl >= 4 && memmem(v, vl, "next", 4)))
			copy_header(x->link, sizeof x->link, v, vl);
	} else if (IS("WWW-Authenticate")) {
		/* Several challenges: Bearer is the one to answer. */
		if (!x->www[0] || (vl >= 6 && !strncasecmp(v, "Bearer", 6)))
			copy_header(x->www, sizeof x->www, v, vl);
	}
#undef IS
	return len;
}

static size_t on_body(char *p, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	size_t len = size * nmemb;
	if (x->status < 200 || x->status > 299) {
		/* An error body: keep what fits, for the message. */
		size_t room = x->err_body.max - x->err_body.len;
		llm_buf_append(&x->err_body, p, len < room ? len : room);
		return len;
	}
	if (x->out_limit >= 0 && (uint64_t)x->out_limit - x->got < len) {
		x->over_limit = true;
		return 0;
	}
	x->got += len;
	x->dirty = true;
	if (x->hashing && llm_sha256_update(x->hash, p, len) != LLM_OK) {
		x->write_err = ENOMEM;
		return 0;
	}
	if (x->out_fp && fwrite(p, 1, len, x->out_fp) != len) {
		x->write_err = errno ? errno : EIO;
		return 0;
	}
	if (x->out) {
		enum llm_err e = llm_buf_append(x->out, p, len);
		if (e == LLM_ERR_TOO_BIG) {
			x->over_cap = true;
			return 0;
		}
		if (e) {
			x->write_err = ENOMEM;
			return 0;
		}
	}
	return len;
}

static size_t on_read(char *buf, size_t size, size_t nmemb, void *ud)
{
	struct xfer *x = ud;
	uint64_t want = size * nmemb;
	uint64_t left = x->body_len - x->sent;
	size_t take = (size_t)(want < left ? want : left);
	if (!take)
		return 0;
	if (x->mem) {
		memcpy(buf, x->mem + x->sent, take);
	} else if (fread(buf, 1, take, x->in_fp) != take) {
		x->read_err = ferror(x->in_fp) ? (errno ? errno : EIO) : EIO;
		return CURL_READFUNC_ABORT;
	}
	x->sent += take;
	return take;
}

static int on_seek(void *ud, curl_off_t offset, int origin)
{
	struct xfer *x = ud;
	if (origin != SEEK_SET || offset < 0 || (uint64_t)offset > x->body_len)
		return CURL_SEEKFUNC_CANTSEEK;
	if (x->in_fp && fseeko(x->in_fp, (off_t)(x->in_off + (uint64_t)offset), SEEK_SET) != 0)
		return CURL_SEEKFUNC_FAIL;
	x->sent = (uint64_t)offset;
	return CURL_SEEKFUNC_OK;
}

/* Whether url is on the registry's own origin: only there does its Authorization go. */
static bool own_origin(const struct llm_oci *c, const char *url)
{
	size_t n = strlen(c->origin);
	return !strncmp(url, c->origin, n) && (url[n] == '/' || url[n] == '\0');
}

static bool sink_reset(struct xfer *x)
{
	x->got = 0;
	x->over_limit = x->over_cap = false;
	x->write_err = 0;
	if (x->out)
		llm_buf_clear(x->out);
	if (x->out_fp && x->dirty) {
		if (fflush(x->out_fp) != 0 || fseeko(x->out_fp, 0, SEEK_SET) != 0 ||
		    ftruncate(fileno(x->out_fp), 0) != 0)
			return false;
		x->dirty = false;
	}
	if (x->hashing) {
		unsigned char junk[LLM_SHA256_LEN];
		llm_sha256_final(x->hash, junk);
		x->hashing = llm_sha256_init(x->hash) == LLM_OK;
		if (!x->hashing)
			return false;
	}
	return true;
}

/* Run x once as it stands. */
static void xfer_perform(struct llm_oci *c, struct xfer *x, const char *basic_user,
			 const char *basic_password)
{
	CURL *e = c->curl;
	curl_easy_reset(e);
	struct curl_slist *hs = NULL, *t;
	char line[8192];
	line[0] = '\0';
#define ADD(...)                                                                                   \
	do {                                                                                       \
		snprintf(line, sizeof line, __VA_ARGS__);                                          \
		if ((t = curl_slist_append(hs, line)))                                             \
			hs = t;                                                                    \
	} while (0)
	if (x->accept)
		ADD("Accept: %s", x->accept);
	if (x->content_type)
		ADD("Content-Type: %s", x->content_type);
	if (x->content_range)
		ADD("Content-Range: %s", x->content_range);
	if (!x->token_request && c->auth && own_origin(c, x->url))
		ADD("Authorization: %s", c->auth);
#undef ADD
	x->status = 0;
	x->errbuf[0] = '\0';
	x->sent = 0;
	x->read_err = 0;
	llm_buf_clear(&x->err_body);
	if (x->in_fp)
		fseeko(x->in_fp, (off_t)x->in_off, SEEK_SET);
	curl_easy_setopt(e, CURLOPT_URL, x->url);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, hs);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_FOLLOWLOCATION, 1L);
	curl_easy_setopt(e, CURLOPT_MAXREDIRS, 10L);
	/* A redirect stays on HTTPS when the registry is on HTTPS. */
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https");
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS_STR, c->https ? "https" : "http,https");
#else
	curl_easy_setopt(e, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
	curl_easy_setopt(e, CURLOPT_REDIR_PROTOCOLS,
			 (long)(c->https ? CURLPROTO_HTTPS : CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, c->connect_ms);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
	curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, c->stall_s);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (c->ca_file)
		curl_easy_setopt(e, CURLOPT_CAINFO, c->ca_file);
	if (basic_user) {
		curl_easy_setopt(e, CURLOPT_HTTPAUTH, (long)CURLAUTH_BASIC);
		curl_easy_setopt(e, CURLOPT_USERNAME, basic_user);
		curl_easy_setopt(e, CURLOPT_PASSWORD, basic_password ? basic_password : "");
	}
	if (!strcmp(x->method, "HEAD")) {
		curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
	} else if (x->has_body || !strcmp(x->method, "PUT") || !strcmp(x->method, "PATCH")) {
		curl_easy_setopt(e, CURLOPT_UPLOAD, 1L);
		curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read);
		curl_easy_setopt(e, CURLOPT_READDATA, x);
		curl_easy_setopt(e, CURLOPT_SEEKFUNCTION, on_seek);
		curl_easy_setopt(e, CURLOPT_SEEKDATA, x);
		curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)x->body_len);
		if (strcmp(x->method, "PUT") != 0)
			curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	} else if (!strcmp(x->method, "POST")) {
		curl_easy_setopt(e, CURLOPT_POST, 1L);
		curl_easy_setopt(e, CURLOPT_POSTFIELDS, "");
		curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE, 0L);
	} else if (strcmp(x->method, "GET") != 0) {
		curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method);
	}
	x->cc = curl_easy_perform(e);
	if (line[0])
		explicit_bzero(line, sizeof line);
	curl_slist_free_all(hs);
}

/* --- authentication ----------------------------------------------------------------------- */

struct challenge {
	char scheme[16];
	char realm[2048];
	char service[512];
	char scope[1024];
};

/* Parse `Scheme k="v", k2=v2`: the parameters this client uses. */
static bool parse_challenge(const char *s, struct challenge *ch)
{
	memset(ch, 0, sizeof *ch);
	size_t n = strcspn(s, " ");
	if (n == 0 || n >= sizeof ch->scheme)
		return false;
	memcpy(ch->scheme, s, n);
	s += n;
	while (*s) {
		while (*s == ' ' || *s == ',')
			s++;
		const char *k = s;
		while (*s && *s != '=' && *s != ',' && *s != ' ')
			s++;
		size_t kn = (size_t)(s - k);
		if (*s != '=')
			continue; /* a bare token (token68): nothing this client reads */
		s++;
		char val[2048];
		size_t vn = 0;
		if (*s == '"') {
			for (s++; *s && *s != '"'; s++) {
				if (*s == '\\' && s[1])
					s++;
				if (vn + 1 < sizeof val)
					val[vn++] = *s;
			}
			if (*s == '"')
				s++;
		} else {
			while (*s && *s != ',' && *s != ' ') {
				if (vn + 1 < sizeof val)
					val[vn++] = *s;
				s++;
			}
		}
		val[vn] = '\0';
		char *dst = NULL;
		size_t dstsz = 0;
		if (kn == 5 && !strncasecmp(k, "realm", 5))
			dst = ch->realm, dstsz = sizeof ch->realm;
		else if (kn == 7 && !strncasecmp(k, "service", 7))
			dst = ch->service, dstsz = sizeof ch->service;
		else if (kn == 5 && !strncasecmp(k, "scope", 5))
			dst = ch->scope, dstsz = sizeof ch->scope;
		if (dst && vn < dstsz)
			memcpy(dst, val, vn + 1);
	}
	return true;
}

/* The registry's error JSON as "CODE: message; CODE: message", or the body's first line. */
static void describe_body(const struct llm_buf *b, char *out, size_t outsz)
{
	out[0] = '\0';
	if (!b->len)
		return;
	json_t *root = json_loadb(b->data, b->len, 0, NULL);
	json_t *errs = json_object_get(root, "errors");
	size_t used = 0;
	size_t i;
	json_t *it;
	json_array_foreach(errs, i, it)
	{
		const char *code = json_string_value(json_object_get(it, "code"));
		const char *msg = json_string_value(json_object_get(it, "message"));
		int n = snprintf(out + used, outsz - used, "%s%s%s%s", used ? "; " : "",
				 code ? code : "", code && msg ? ": " : "", msg ? msg : "");
		if (n < 0 || (size_t)n >= outsz - used)
			break;
		used += (size_t)n;
	}
	if (!used) {
		/* Not the distribution error format (a proxy's page, a token server's text). */
		const char *err = json_string_value(json_object_get(root, "error"));
		const char *det = json_string_value(json_object_get(root, "details"));
		if (err)
			snprintf(out, outsz, "%s%s%s", err, det ? ": " : "", det ? det : "");
		else {
			size_t n = strcspn(b->data, "\r\n");
			bool printable = true;
			for (size_t k = 0; k < n && printable; k++)
				printable = isprint((unsigned char)b->data[k]);
			if (printable)
				snprintf(out, outsz, "%.*s", (int)(n > 200 ? 200 : n), b->data);
		}
	}
	json_decref(root);
}

static enum llm_err http_error(struct llm_oci *c, const struct xfer *x, const char *repo,
			       const char *what, struct llm_diag *d)
{
	char detail[400];
	describe_body(&x->err_body, detail, sizeof detail);
	const char *hint = "";
	if (x->status == 401 && !c->user)
		hint = " (log in: LLMOPS_OCI_USER and LLMOPS_OCI_PASSWORD, or docker login)";
	else if (x->status == 401 || x->status == 403)
		hint = " (check the credentials and their rights on this repository)";
	enum llm_err code = x->status == 404 ? LLM_ERR_NOT_FOUND : LLM_ERR_REMOTE;
	return llm_diag_set(d, code, NULL, 0, "oci://%s%s%s: %s: HTTP %ld%s%s%s", c->url.host,
			    repo ? "/" : "", repo ? repo : "", what, x->status, *detail ? ": " : "",
			    detail, hint);
}

static enum llm_err url_escape(const char *s, char *out, size_t outsz)
{
	char *e = curl_easy_escape(NULL, s, 0);
	if (!e)
		return LLM_ERR_NOMEM;
	int n = snprintf(out, outsz, "%s", e);
	curl_free(e);
	return n < 0 || (size_t)n >= outsz ? LLM_ERR_TOO_BIG : LLM_OK;
}

/* Fetch a bearer token for the challenge (the Docker token flow) and keep it. */
static enum llm_err fetch_token(struct llm_oci *c, const struct challenge *ch, struct llm_diag *d)
{
	bool realm_https = !strncasecmp(ch->realm, "https://", 8);
	if (!realm_https && strncasecmp(ch->realm, "http://", 7) != 0)
		return llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
				    "%s: the registry's token realm '%s' is not an http(s) URL",
				    c->display, ch->realm);
	/* Credentials go over TLS, or in the clear only where the registry itself is. */
	if (!realm_https && c->https)
		return llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
				    "%s: the registry sends logins to the plain-HTTP token realm "
				    "'%s'; refusing",
				    c->display, ch->realm);
	struct xfer x;
	xfer_init(&x, "GET");
	x.token_request = true;
	x.accept = "application/json";
	struct llm_buf body;
	llm_buf_init(&body, TOKEN_MAX);
	x.out = &body;
	size_t used = 0;
	int n = snprintf(x.url, sizeof x.url, "%s", ch->realm);
	enum llm_err e = n < 0 || (size_t)n >= sizeof x.url ? LLM_ERR_TOO_BIG : LLM_OK;
	used = e ? 0 : (size_t)n;
	char sep = strchr(ch->realm, '?') ? '&' : '?';
	char esc[2048];
	if (!e && ch->service[0] && !(e = url_escape(ch->service, esc, sizeof esc))) {
		n = snprintf(x.url + used, sizeof x.url - used, "%cservice=%s", sep, esc);
		e = n < 0 || (size_t)n >= sizeof x.url - used ? LLM_ERR_TOO_BIG : LLM_OK;
		used += e ? 0 : (size_t)n;
		sep = '&';
	}
	/* Several scopes are separated by spaces; each is its own parameter. */
	for (const char *s = ch->scope; !e && *s;) {
		size_t k = strcspn(s, " ");
		char one[1024];
		snprintf(one, sizeof one, "%.*s", (int)k, s);
		if (k && !(e = url_escape(one, esc, sizeof esc))) {
			n = snprintf(x.url + used, sizeof x.url - used, "%cscope=%s", sep, esc);
			e = n < 0 || (size_t)n >= sizeof x.url - used ? LLM_ERR_TOO_BIG : LLM_OK;
			used += e ? 0 : (size_t)n;
			sep = '&';
		}
		s += k;
		while (*s == ' ')
			s++;
	}
	if (!e && c->user && !(e = url_escape(c->user, esc, sizeof esc))) {
		n = snprintf(x.url + used, sizeof x.url - used, "%caccount=%s", sep, esc);
		e = n < 0 || (size_t)n >= sizeof x.url - used ? LLM_ERR_TOO_BIG : LLM_OK;
	}
	if (e) {
		xfer_free(&x);
		llm_buf_free(&body);
		return llm_diag_set(d, e, NULL, 0, "%s: the token request is too long", c->display);
	}
	xfer_perform(c, &x, c->user, c->password);
	if (x.cc != CURLE_OK) {
		e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0, "%s: token server %s: %s", c->display,
				 ch->realm, x.errbuf[0] ? x.errbuf : curl_easy_strerror(x.cc));
	} else if (x.status != 200) {
		char detail[400];
		describe_body(&x.err_body, detail, sizeof detail);
		e = llm_diag_set(
		    d, LLM_ERR_REMOTE, NULL, 0,
		    "%s: the token server %s refused %s: HTTP %ld%s%s%s", c->display, ch->realm,
		    c->user ? "the login" : "an anonymous token", x.status, *detail ? ": " : "",
		    detail, c->user ? "" : " (log in: LLMOPS_OCI_USER and LLMOPS_OCI_PASSWORD)");
	} else {
		json_t *root = json_loadb(body.data ? body.data : "", body.len, 0, NULL);
		const char *tok = json_string_value(json_object_get(root, "token"));
		if (!tok || !*tok)
			tok = json_string_value(json_object_get(root, "access_token"));
		if (!tok || !*tok || strpbrk(tok, "\r\n")) {
			e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
					 "%s: the token server %s answered no token", c->display,
					 ch->realm);
		} else {
			struct llm_buf a;
			llm_buf_init(&a, 0);
			if (llm_buf_puts(&a, "Bearer ") || llm_buf_puts(&a, tok)) {
				llm_buf_free(&a);
				e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			} else {
				wipe_free(c->auth);
				free(c->auth_scope);
				c->auth = a.data;
				c->auth_scope = strdup(ch->scope);
				c->auth_is_basic = false;
			}
		}
		json_decref(root);
	}
	if (body.data)
		explicit_bzero(body.data, body.len);
	llm_buf_free(&body);
	xfer_free(&x);
	return e;
}

/* Answer a 401 (the round-th for this request): *retry when the request is worth sending
 * again. */
static enum llm_err authenticate(struct llm_oci *c, const struct xfer *x, int round, bool *retry,
				 struct llm_diag *d)
{
	*retry = false;
	struct challenge ch;
	if (!x->www[0] || !parse_challenge(x->www, &ch))
		return LLM_OK;
	if (!strcasecmp(ch.scheme, "Bearer")) {
		if (!ch.realm[0])
			return LLM_OK;
		/* The same scope as the token we hold: it may have expired (they last minutes, a
		 * push of a large model longer), so one fresh token, but not a second. */
		if (round > 1 && c->auth && !c->auth_is_basic && c->auth_scope &&
		    !strcmp(c->auth_scope, ch.scope))
			return LLM_OK;
		enum llm_err e = fetch_token(c, &ch, d);
		if (e)
			return e;
		*retry = true;
		return LLM_OK;
	}
	if (!strcasecmp(ch.scheme, "Basic") && c->user && !c->auth_is_basic) {
		struct llm_buf pair, a;
		llm_buf_init(&pair, 0);
		llm_buf_init(&a, 0);
		bool ok = !llm_buf_puts(&pair, c->user) && !llm_buf_putc(&pair, ':') &&
			  !llm_buf_puts(&pair, c->password ? c->password : "") &&
			  !llm_buf_puts(&a, "Basic ") && !llm_buf_base64(&a, pair.data, pair.len);
		if (pair.data)
			explicit_bzero(pair.data, pair.len);
		llm_buf_free(&pair);
		if (!ok) {
			llm_buf_free(&a);
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
		wipe_free(c->auth);
		c->auth = a.data;
		c->auth_is_basic = true;
		*retry = true;
	}
	return LLM_OK;
}

static bool transient_cc(CURLcode cc)
{
	return cc == CURLE_COULDNT_CONNECT || cc == CURLE_OPERATION_TIMEDOUT ||
	       cc == CURLE_RECV_ERROR || cc == CURLE_SEND_ERROR || cc == CURLE_GOT_NOTHING ||
	       cc == CURLE_PARTIAL_FILE;
}

static bool transient_status(long s)
{
	return s == 408 || s == 429 || s == 502 || s == 503 || s == 504;
}

static void pause_s(int s)
{
	struct timespec ts = {s, 0};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* Run x: answer authentication challenges, retry an idempotent request after a transient
 * failure.  LLM_OK when a response came (whatever its status); the caller judges it. */
static enum llm_err xfer_run(struct llm_oci *c, struct xfer *x, const char *repo, const char *what,
			     struct llm_diag *d)
{
	int auth_rounds = 0;
	for (int attempt = 0;;) {
		if (!sink_reset(x))
			return llm_diag_set(d, LLM_ERR_IO, NULL, 0,
					    "oci://%s/%s: %s: cannot rewind the output to retry",
					    c->url.host, repo ? repo : "", what);
		xfer_perform(c, x, NULL, NULL);
		if (x->write_err)
			return llm_diag_set(d, x->write_err == ENOMEM ? LLM_ERR_NOMEM : LLM_ERR_IO,
					    NULL, 0, "oci://%s/%s: %s: cannot write: %s",
					    c->url.host, repo ? repo : "", what,
					    strerror(x->write_err));
		if (x->read_err)
			return llm_diag_set(d, LLM_ERR_IO, NULL, 0,
					    "oci://%s/%s: %s: cannot read the file to send: %s",
					    c->url.host, repo ? repo : "", what,
					    strerror(x->read_err));
		/* The body stopped at a limit: the caller says which. */
		if (x->over_limit || x->over_cap)
			return LLM_OK;
		bool again = false;
		if (x->cc != CURLE_OK) {
			again = x->idempotent && transient_cc(x->cc);
			if (!again || attempt >= RETRIES)
				return llm_diag_set(
				    d, LLM_ERR_REMOTE, NULL, 0, "oci://%s%s%s: %s: %s", c->url.host,
				    repo ? "/" : "", repo ? repo : "", what,
				    x->errbuf[0] ? x->errbuf : curl_easy_strerror(x->cc));
		} else if (x->status == 401 && auth_rounds < AUTH_ROUNDS) {
			auth_rounds++;
			bool retry;
			enum llm_err e = authenticate(c, x, auth_rounds, &retry, d);
			if (e)
				return e;
			if (retry)
				continue;
			return LLM_OK;
		} else if (x->idempotent && transient_status(x->status) && attempt < RETRIES) {
			again = true;
		}
		if (!again)
			return LLM_OK;
		pause_s(1 << attempt);
		attempt++;
	}
}

/* --- the API ------------------------------------------------------------------------------- */

static enum llm_err check_repo(const struct llm_oci *c, const char *repo, struct llm_diag *d)
{
	if (!llm_oci_valid_repo(repo))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "oci://%s: '%s' is not a valid repository name", c->url.host,
				    repo);
	return LLM_OK;
}

static enum llm_err check_digest(const struct llm_oci *c, const char *digest, struct llm_diag *d)
{
	if (!llm_oci_valid_digest(digest))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "oci://%s: '%s' is not a sha256 digest", c->url.host, digest);
	return LLM_OK;
}

static enum llm_err check_ref(const struct llm_oci *c, const char *ref, struct llm_diag *d)
{
	if (!llm_oci_valid_tag(ref) && !llm_oci_valid_digest(ref))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "oci://%s: '%s' is neither a tag nor a sha256 digest",
				    c->url.host, ref);
	return LLM_OK;
}

enum llm_err llm_oci_ping(struct llm_oci *c, struct llm_diag *d)
{
	struct xfer x;
	xfer_init(&x, "GET");
	set_url(&x, "%s/v2/", c->origin);
	enum llm_err e = xfer_run(c, &x, NULL, "GET /v2/", d);
	if (!e && x.status != 200)
		e = http_error(c, &x, NULL,
			       x.status == 404 ? "GET /v2/ (is this an OCI registry?)" : "GET /v2/",
			       d);
	xfer_free(&x);
	return e;
}

enum llm_err llm_oci_blob_exists(struct llm_oci *c, const char *repo, const char *digest,
				 bool *exists, uint64_t *size, struct llm_diag *d)
{
	*exists = false;
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_digest(c, digest, d);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "HEAD");
	if (set_url(&x, "%s/v2/%s/blobs/%s", c->origin, repo, digest))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "oci://%s: URL too long",
				    c->url.host);
	char what[128];
	snprintf(what, sizeof what, "HEAD blob %.19s", digest);
	e = xfer_run(c, &x, repo, what, d);
	if (!e && x.status == 200) {
		*exists = true;
		if (size)
			*size = strtoull(x.content_length, NULL, 10);
	} else if (!e && x.status != 404) {
		e = http_error(c, &x, repo, what, d);
	}
	xfer_free(&x);
	return e;
}

/* Resolve a Location against the URL it answered, and add a query parameter. */
static enum llm_err resolve(const char *base, const char *location, const char *query, char *out,
			    size_t outsz)
{
	CURLU *u = curl_url();
	if (!u)
		return LLM_ERR_NOMEM;
	char *s = NULL;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, base, 0);
	if (!uc)
		uc = curl_url_set(u, CURLUPART_URL, location, 0);
	if (!uc && query)
		uc = curl_url_set(u, CURLUPART_QUERY, query, CURLU_APPENDQUERY | CURLU_URLENCODE);
	if (!uc)
		uc = curl_url_get(u, CURLUPART_URL, &s, 0);
	enum llm_err e = LLM_OK;
	if (uc)
		e = LLM_ERR_REMOTE;
	else if (snprintf(out, outsz, "%s", s) >= (int)outsz)
		e = LLM_ERR_TOO_BIG;
	curl_free(s);
	curl_url_cleanup(u);
	return e;
}

/* The upload itself: mem, or len bytes of fp from its start. */
static enum llm_err blob_upload(struct llm_oci *c, const char *repo, const char *digest,
				const unsigned char *mem, FILE *fp, uint64_t len,
				struct llm_diag *d)
{
	char what[128];
	snprintf(what, sizeof what, "upload blob %.19s", digest);
	struct xfer x;
	xfer_init(&x, "POST");
	set_url(&x, "%s/v2/%s/blobs/uploads/", c->origin, repo);
	enum llm_err e = xfer_run(c, &x, repo, what, d);
	if (!e && x.status != 202)
		e = http_error(c, &x, repo, what, d);
	if (!e && !x.location[0])
		e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
				 "oci://%s/%s: %s: the registry gave no upload location",
				 c->url.host, repo, what);
	char loc[URL_MAX];
	if (!e && resolve(x.url, x.location, NULL, loc, sizeof loc))
		e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
				 "oci://%s/%s: %s: bad upload location '%s'", c->url.host, repo,
				 what, x.location);
	xfer_free(&x);
	if (e)
		return e;
	uint64_t off = 0;
	bool chunked = c->chunk > 0 && len > c->chunk;
	/* Chunks: PATCH with Content-Range, each answer giving the next location. */
	while (chunked && off < len) {
		uint64_t k = len - off < c->chunk ? len - off : c->chunk;
		char range[64];
		snprintf(range, sizeof range, "%" PRIu64 "-%" PRIu64, off, off + k - 1);
		xfer_init(&x, "PATCH");
		snprintf(x.url, sizeof x.url, "%s", loc);
		x.content_type = "application/octet-stream";
		x.content_range = range;
		x.has_body = true;
		x.mem = mem ? mem + off : NULL;
		x.in_fp = fp;
		x.in_off = off;
		x.body_len = k;
		e = xfer_run(c, &x, repo, what, d);
		if (!e && x.status != 202)
			e = http_error(c, &x, repo, what, d);
		if (!e && (!x.location[0] || resolve(x.url, x.location, NULL, loc, sizeof loc)))
			e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
					 "oci://%s/%s: %s: no location after a chunk", c->url.host,
					 repo, what);
		xfer_free(&x);
		if (e)
			return e;
		off += k;
	}
	char q[128];
	snprintf(q, sizeof q, "digest=%s", digest);
	xfer_init(&x, "PUT");
	if (resolve(loc, loc, q, x.url, sizeof x.url)) {
		xfer_free(&x);
		return llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0, "oci://%s/%s: %s: bad location",
				    c->url.host, repo, what);
	}
	x.content_type = "application/octet-stream";
	x.has_body = true;
	if (!chunked) {
		x.mem = mem;
		x.in_fp = fp;
		x.body_len = len;
	}
	e = xfer_run(c, &x, repo, what, d);
	if (!e && x.status != 201)
		e = http_error(c, &x, repo, what, d);
	if (!e && x.digest[0] && strcmp(x.digest, digest) != 0)
		e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				 "oci://%s/%s: %s: the registry stored it as %s", c->url.host, repo,
				 what, x.digest);
	xfer_free(&x);
	return e;
}

static void digest_string(const unsigned char md[LLM_SHA256_LEN], char out[LLM_OCI_DIGEST_MAX])
{
	memcpy(out, "sha256:", 7);
	llm_hex(md, LLM_SHA256_LEN, out + 7);
}

enum llm_err llm_oci_blob_push_mem(struct llm_oci *c, const char *repo, const void *p, size_t n,
				   char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *d)
{
	unsigned char md[LLM_SHA256_LEN];
	if (llm_sha256(p, n, md))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot hash");
	digest_string(md, digest);
	bool have;
	enum llm_err e = llm_oci_blob_exists(c, repo, digest, &have, NULL, d);
	if (e || have)
		return e;
	return blob_upload(c, repo, digest, p ? p : (const unsigned char *)"", NULL, n, d);
}

/* The digest and size of a file, streamed. */
static enum llm_err hash_file(FILE *fp, const char *path, char digest[LLM_OCI_DIGEST_MAX],
			      uint64_t *size, struct llm_diag *d)
{
	struct llm_sha256 h;
	if (llm_sha256_init(&h))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot hash");
	static const size_t bufsz = 1u << 20;
	unsigned char *buf = malloc(bufsz);
	uint64_t total = 0;
	size_t got;
	while (buf && (got = fread(buf, 1, bufsz, fp)) > 0) {
		llm_sha256_update(&h, buf, got);
		total += got;
	}
	unsigned char md[LLM_SHA256_LEN];
	llm_sha256_final(&h, md);
	bool err = !buf || ferror(fp);
	free(buf);
	if (err)
		return llm_diag_set(d, buf ? LLM_ERR_IO : LLM_ERR_NOMEM, path, 0, "cannot read: %s",
				    strerror(errno));
	digest_string(md, digest);
	*size = total;
	return LLM_OK;
}

enum llm_err llm_oci_blob_push_file(struct llm_oci *c, const char *repo, const char *path,
				    char digest[LLM_OCI_DIGEST_MAX], uint64_t *size,
				    struct llm_diag *d)
{
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct stat st;
	if (fstat(fileno(fp), &st) == 0 && !S_ISREG(st.st_mode)) {
		fclose(fp);
		return llm_diag_set(d, S_ISDIR(st.st_mode) ? LLM_ERR_IS_DIR : LLM_ERR_IO, path, 0,
				    "not a regular file");
	}
	uint64_t len = 0;
	enum llm_err e = hash_file(fp, path, digest, &len, d);
	if (size && !e)
		*size = len;
	bool have = false;
	if (!e)
		e = llm_oci_blob_exists(c, repo, digest, &have, NULL, d);
	if (!e && !have)
		e = blob_upload(c, repo, digest, NULL, fp, len, d);
	fclose(fp);
	return e;
}

/* GET a blob into x's sink (set by the caller), verifying digest and size. */
static enum llm_err blob_get(struct llm_oci *c, const char *repo, const char *digest, int64_t size,
			     struct xfer *x, struct llm_sha256 *h, struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_digest(c, digest, d);
	if (e)
		return e;
	if (set_url(x, "%s/v2/%s/blobs/%s", c->origin, repo, digest))
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "oci://%s: URL too long",
				    c->url.host);
	if (llm_sha256_init(h))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot hash");
	x->hash = h;
	x->hashing = true;
	if (size >= 0)
		x->out_limit = size;
	char what[128];
	snprintf(what, sizeof what, "download blob %.19s", digest);
	e = xfer_run(c, x, repo, what, d);
	unsigned char md[LLM_SHA256_LEN];
	if (x->hashing)
		llm_sha256_final(h, md);
	if (e)
		return e;
	if (x->over_limit)
		return llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				    "oci://%s/%s: %s: the registry sent more than the %" PRId64
				    " bytes expected; refusing them",
				    c->url.host, repo, what, size);
	if (x->over_cap)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "oci://%s/%s: %s: over %zu bytes",
				    c->url.host, repo, what, x->out->max);
	if (x->status != 200)
		return http_error(c, x, repo, what, d);
	char got[LLM_OCI_DIGEST_MAX];
	digest_string(md, got);
	if (strcmp(got, digest) != 0)
		return llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				    "oci://%s/%s: %s: the bytes received have digest %s; refusing "
				    "them",
				    c->url.host, repo, what, got);
	if (size >= 0 && x->got != (uint64_t)size)
		return llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				    "oci://%s/%s: %s: %" PRIu64 " bytes received, %" PRId64
				    " expected",
				    c->url.host, repo, what, x->got, size);
	return LLM_OK;
}

enum llm_err llm_oci_blob_pull_mem(struct llm_oci *c, const char *repo, const char *digest,
				   int64_t size, size_t max, struct llm_buf *out,
				   struct llm_diag *d)
{
	struct xfer x;
	xfer_init(&x, "GET");
	struct llm_buf b;
	llm_buf_init(&b, max);
	x.out = &b;
	struct llm_sha256 h;
	enum llm_err e = blob_get(c, repo, digest, size, &x, &h, d);
	xfer_free(&x);
	if (e) {
		llm_buf_free(&b);
		return e;
	}
	llm_buf_free(out);
	*out = b;
	return LLM_OK;
}

enum llm_err llm_oci_blob_pull_file(struct llm_oci *c, const char *repo, const char *digest,
				    int64_t size, const char *path, struct llm_diag *d)
{
	struct llm_atomic a;
	enum llm_err e = llm_atomic_open(&a, path, d);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "GET");
	x.out_fp = a.fp;
	struct llm_sha256 h;
	e = blob_get(c, repo, digest, size, &x, &h, d);
	xfer_free(&x);
	if (!e)
		return llm_atomic_commit(&a, d);
	llm_atomic_abort(&a);
	return e;
}

enum llm_err llm_oci_manifest_put(struct llm_oci *c, const char *repo, const char *ref,
				  const char *media_type, const void *body, size_t n,
				  char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_ref(c, ref, d);
	if (e)
		return e;
	if (n > LLM_OCI_MANIFEST_MAX)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "a manifest over %u bytes",
				    LLM_OCI_MANIFEST_MAX);
	unsigned char md[LLM_SHA256_LEN];
	char mine[LLM_OCI_DIGEST_MAX];
	if (llm_sha256(body, n, md))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "cannot hash");
	digest_string(md, mine);
	if (llm_oci_valid_digest(ref) && strcmp(ref, mine) != 0)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "a manifest put under digest %s has digest %s", ref, mine);
	struct xfer x;
	xfer_init(&x, "PUT");
	set_url(&x, "%s/v2/%s/manifests/%s", c->origin, repo, ref);
	x.content_type = media_type;
	x.has_body = true;
	x.mem = body ? body : (const unsigned char *)"";
	x.body_len = n;
	/* Re-putting the same bytes under the same name changes nothing: safe to retry. */
	x.idempotent = true;
	char what[160];
	snprintf(what, sizeof what, "put manifest %s", ref);
	e = xfer_run(c, &x, repo, what, d);
	if (!e && x.status != 201 && x.status != 200)
		e = http_error(c, &x, repo, what, d);
	if (!e && x.digest[0] && strcmp(x.digest, mine) != 0)
		e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
				 "oci://%s/%s: %s: the registry stored it as %s, not %s",
				 c->url.host, repo, what, x.digest, mine);
	xfer_free(&x);
	if (!e && digest)
		memcpy(digest, mine, sizeof mine);
	return e;
}

static const char *manifest_accept =
    LLM_OCI_MANIFEST_TYPE ", "
			  "application/vnd.oci.image.index.v1+json;q=0.5, "
			  "application/vnd.docker.distribution.manifest.v2+json;q=0.5, "
			  "application/vnd.docker.distribution.manifest.list.v2+json;q=0.5";

enum llm_err llm_oci_manifest_get(struct llm_oci *c, const char *repo, const char *ref,
				  struct llm_buf *body, char digest[LLM_OCI_DIGEST_MAX],
				  struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_ref(c, ref, d);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "GET");
	set_url(&x, "%s/v2/%s/manifests/%s", c->origin, repo, ref);
	x.accept = manifest_accept;
	struct llm_buf b;
	llm_buf_init(&b, LLM_OCI_MANIFEST_MAX);
	x.out = &b;
	char what[160];
	snprintf(what, sizeof what, "get manifest %s", ref);
	e = xfer_run(c, &x, repo, what, d);
	if (!e && x.over_cap)
		e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
				 "oci://%s/%s: %s: a manifest over %u bytes", c->url.host, repo,
				 what, LLM_OCI_MANIFEST_MAX);
	else if (!e && x.status != 200)
		e = http_error(c, &x, repo, what, d);
	char mine[LLM_OCI_DIGEST_MAX];
	if (!e) {
		unsigned char md[LLM_SHA256_LEN];
		llm_sha256(b.data ? b.data : "", b.len, md);
		digest_string(md, mine);
		const char *want = llm_oci_valid_digest(ref) ? ref : x.digest;
		if (llm_oci_valid_digest(want) && strcmp(want, mine) != 0)
			e = llm_diag_set(d, LLM_ERR_CHECK, NULL, 0,
					 "oci://%s/%s: %s: the bytes received have digest %s, not "
					 "%s; refusing them",
					 c->url.host, repo, what, mine, want);
	}
	xfer_free(&x);
	if (e) {
		llm_buf_free(&b);
		return e;
	}
	llm_buf_free(body);
	*body = b;
	if (!body->data && llm_buf_reserve(body, 0))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	if (digest)
		memcpy(digest, mine, sizeof mine);
	return LLM_OK;
}

enum llm_err llm_oci_manifest_head(struct llm_oci *c, const char *repo, const char *ref,
				   bool *exists, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *d)
{
	*exists = false;
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_ref(c, ref, d);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "HEAD");
	set_url(&x, "%s/v2/%s/manifests/%s", c->origin, repo, ref);
	x.accept = manifest_accept;
	char what[160];
	snprintf(what, sizeof what, "head manifest %s", ref);
	e = xfer_run(c, &x, repo, what, d);
	bool fetch = false;
	if (!e && x.status == 200) {
		*exists = true;
		if (llm_oci_valid_digest(x.digest)) {
			if (digest)
				memcpy(digest, x.digest, LLM_OCI_DIGEST_MAX);
		} else {
			fetch = digest != NULL;
		}
	} else if (!e && x.status != 404) {
		e = http_error(c, &x, repo, what, d);
	}
	xfer_free(&x);
	if (fetch) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		e = llm_oci_manifest_get(c, repo, ref, &b, digest, d);
		llm_buf_free(&b);
	}
	return e;
}

enum llm_err llm_oci_manifest_delete(struct llm_oci *c, const char *repo, const char *digest,
				     struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	if (!e)
		e = check_digest(c, digest, d);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "DELETE");
	set_url(&x, "%s/v2/%s/manifests/%s", c->origin, repo, digest);
	char what[160];
	snprintf(what, sizeof what, "delete manifest %.19s", digest);
	e = xfer_run(c, &x, repo, what, d);
	if (!e && x.status != 202 && x.status != 200)
		e = http_error(c, &x, repo, what, d);
	xfer_free(&x);
	return e;
}

enum llm_err llm_oci_tag_delete(struct llm_oci *c, const char *repo, const char *tag,
				struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	if (!e && !llm_oci_valid_tag(tag))
		e = llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "'%s' is not a tag", tag);
	if (e)
		return e;
	struct xfer x;
	xfer_init(&x, "DELETE");
	set_url(&x, "%s/v2/%s/manifests/%s", c->origin, repo, tag);
	char what[200];
	snprintf(what, sizeof what, "delete tag %s", tag);
	e = xfer_run(c, &x, repo, what, d);
	/* Distribution 2.x reads the tag as a digest (400 DIGEST_INVALID); others say 405. */
	if (!e && (x.status == 400 || x.status == 405 || x.status == 501)) {
		char detail[400];
		describe_body(&x.err_body, detail, sizeof detail);
		e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
				 "oci://%s/%s: %s: this registry cannot delete a tag alone (HTTP "
				 "%ld%s%s); point it at another version instead",
				 c->url.host, repo, what, x.status, *detail ? ": " : "", detail);
	} else if (!e && x.status != 202 && x.status != 200) {
		e = http_error(c, &x, repo, what, d);
	}
	xfer_free(&x);
	return e;
}

/* --- lists: tags and the catalog ---------------------------------------------------------- */

void llm_oci_list_free(struct llm_oci_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static enum llm_err list_add(struct llm_oci_list *l, const char *s, size_t n)
{
	if (l->n >= LIST_MAX)
		return LLM_ERR_TOO_BIG;
	if ((l->n & (l->n - 1)) == 0) {
		size_t cap = l->n ? l->n * 2 : 16;
		char **v = realloc(l->v, cap * sizeof *v);
		if (!v)
			return LLM_ERR_NOMEM;
		l->v = v;
	}
	char *p = strndup(s, n);
	if (!p)
		return LLM_ERR_NOMEM;
	l->v[l->n++] = p;
	return LLM_OK;
}

/* The target of a `<URL>; rel="next"` link, or "" when there is none. */
static void next_link(const char *link, char *out, size_t outsz)
{
	out[0] = '\0';
	for (const char *p = link; (p = strchr(p, '<'));) {
		const char *close = strchr(p, '>');
		if (!close)
			return;
		const char *end = strchr(close, ',');
		size_t plen = end ? (size_t)(end - close) : strlen(close);
		char params[512];
		snprintf(params, sizeof params, "%.*s", (int)plen, close);
		bool is_next = strstr(params, "rel=\"next\"") || strstr(params, "rel=next");
		size_t n = (size_t)(close - p - 1);
		if (is_next && n < outsz) {
			memcpy(out, p + 1, n);
			out[n] = '\0';
			return;
		}
		p = close;
	}
}

/* GET url and the pages after it; add each string of the member field. */
static enum llm_err list_pages(struct llm_oci *c, const char *repo, const char *first,
			       const char *field, const char *what, struct llm_oci_list *out,
			       bool missing_is_empty, struct llm_diag *d)
{
	char url[URL_MAX];
	snprintf(url, sizeof url, "%s", first);
	enum llm_err e = LLM_OK;
	for (int page = 0; !e && url[0]; page++) {
		if (page >= PAGES_MAX)
			return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
					    "oci://%s: %s: more than %d pages", c->url.host, what,
					    PAGES_MAX);
		struct xfer x;
		xfer_init(&x, "GET");
		snprintf(x.url, sizeof x.url, "%s", url);
		x.accept = "application/json";
		struct llm_buf b;
		llm_buf_init(&b, PAGE_MAX);
		x.out = &b;
		e = xfer_run(c, &x, repo, what, d);
		if (!e && x.over_cap)
			e = llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
					 "oci://%s: %s: a page over %u bytes", c->url.host, what,
					 PAGE_MAX);
		else if (!e && x.status == 404 && missing_is_empty && page == 0)
			url[0] = '\0';
		else if (!e && x.status != 200)
			e = http_error(c, &x, repo, what, d);
		else if (!e) {
			json_t *root = json_loadb(b.data ? b.data : "", b.len, 0, NULL);
			json_t *arr = json_object_get(root, field);
			if (!root || (arr && !json_is_array(arr) && !json_is_null(arr)))
				e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
						 "oci://%s: %s: the registry's answer is not the "
						 "expected JSON",
						 c->url.host, what);
			size_t i;
			json_t *it;
			json_array_foreach(arr, i, it)
			{
				const char *s = json_string_value(it);
				if (e || !s)
					continue;
				e = list_add(out, s, strlen(s));
				if (e)
					e = llm_diag_set(d, e, NULL, 0,
							 "oci://%s: %s: too many entries",
							 c->url.host, what);
			}
			json_decref(root);
			char next[URL_MAX];
			next_link(x.link, next, sizeof next);
			if (!e && next[0] && resolve(x.url, next, NULL, url, sizeof url))
				e = llm_diag_set(d, LLM_ERR_REMOTE, NULL, 0,
						 "oci://%s: %s: bad next-page link '%s'",
						 c->url.host, what, next);
			if (!next[0])
				url[0] = '\0';
		}
		llm_buf_free(&b);
		xfer_free(&x);
	}
	return e;
}

enum llm_err llm_oci_tags(struct llm_oci *c, const char *repo, struct llm_oci_list *out,
			  struct llm_diag *d)
{
	out->v = NULL;
	out->n = 0;
	enum llm_err e = check_repo(c, repo, d);
	if (e)
		return e;
	char url[URL_MAX];
	snprintf(url, sizeof url, "%s/v2/%s/tags/list", c->origin, repo);
	e = list_pages(c, repo, url, "tags", "list tags", out, true, d);
	if (e)
		llm_oci_list_free(out);
	return e;
}

enum llm_err llm_oci_catalog(struct llm_oci *c, struct llm_oci_list *out, struct llm_diag *d)
{
	out->v = NULL;
	out->n = 0;
	struct llm_oci_list all = {0};
	char url[URL_MAX];
	snprintf(url, sizeof url, "%s/v2/_catalog", c->origin);
	enum llm_err e =
	    list_pages(c, NULL, url, "repositories", "list repositories", &all, false, d);
	const char *ns = c->url.namespace;
	size_t nl = strlen(ns);
	for (size_t i = 0; !e && i < all.n; i++) {
		const char *r = all.v[i];
		if (nl && (strncmp(r, ns, nl) != 0 || r[nl] != '/'))
			continue;
		const char *rest = nl ? r + nl + 1 : r;
		if ((e = list_add(out, rest, strlen(rest))))
			e = llm_diag_set(d, e, NULL, 0, "out of memory");
	}
	llm_oci_list_free(&all);
	if (e)
		llm_oci_list_free(out);
	return e;
}

/* --- artifacts ----------------------------------------------------------------------------- */

static json_t *desc_json(const struct llm_oci_desc *x, const char *title)
{
	json_t *j = json_pack("{s:s, s:s, s:I}", "mediaType", x->media_type, "digest", x->digest,
			      "size", (json_int_t)x->size);
	if (j && title && *title &&
	    json_object_set_new(j, "annotations",
				json_pack("{s:s}", "org.opencontainers.image.title", title))) {
		json_decref(j);
		return NULL;
	}
	return j;
}

enum llm_err llm_oci_artifact_manifest(const struct llm_oci_push *p,
				       const struct llm_oci_desc *config,
				       const struct llm_oci_desc *layer,
				       const struct llm_oci_desc *sig, struct llm_buf *out,
				       struct llm_diag *d)
{
	if (!p->name || !*p->name || !p->version || !*p->version || !p->created || !*p->created)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "an artifact needs a name, a version and a creation time");
	const char *title = p->layer_title;
	if (!title && p->tarball) {
		const char *slash = strrchr(p->tarball, '/');
		title = slash ? slash + 1 : p->tarball;
	}
	char sig_title[300] = "";
	if (title && *title)
		snprintf(sig_title, sizeof sig_title, "%s.sig", title);
	json_t *m = json_object();
	json_t *layers = json_array();
	json_t *ann = json_object();
	bool ok = m && layers && ann;
	ok = ok && !json_array_append_new(layers, desc_json(layer, title));
	ok = ok && (!sig || !json_array_append_new(layers, desc_json(sig, sig_title)));
	ok = ok &&
	     !json_object_set_new(ann, "org.opencontainers.image.created", json_string(p->created));
	ok =
	    ok && !json_object_set_new(ann, "org.opencontainers.image.title", json_string(p->name));
	ok = ok &&
	     !json_object_set_new(ann, "org.opencontainers.image.version", json_string(p->version));
	for (size_t i = 0; ok && i < p->nannotations; i++) {
		const struct llm_oci_annotation *a = &p->annotations[i];
		if (a->key && *a->key && a->value && *a->value)
			ok = !json_object_set_new(ann, a->key, json_string(a->value));
	}
	ok = ok && !json_object_set_new(m, "schemaVersion", json_integer(2));
	ok = ok && !json_object_set_new(m, "mediaType", json_string(LLM_OCI_MANIFEST_TYPE));
	ok = ok && !json_object_set_new(m, "artifactType", json_string(LLM_OCI_ARTIFACT_TYPE));
	ok = ok && !json_object_set_new(m, "config", desc_json(config, NULL));
	ok = ok && !json_object_set(m, "layers", layers);
	ok = ok && !json_object_set(m, "annotations", ann);
	/* Sorted keys: the bytes depend on the content only, not on the order of the calls. */
	char *s = ok ? json_dumps(m, JSON_COMPACT | JSON_SORT_KEYS) : NULL;
	json_decref(m);
	json_decref(layers);
	json_decref(ann);
	if (!s)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "cannot write the OCI manifest (an annotation that is not "
				    "UTF-8?)");
	llm_buf_clear(out);
	enum llm_err e = llm_buf_puts(out, s);
	free(s);
	if (e)
		return llm_diag_set(d, e, NULL, 0, "the OCI manifest is too big");
	return LLM_OK;
}

static bool read_desc(json_t *j, struct llm_oci_desc *x)
{
	const char *mt = json_string_value(json_object_get(j, "mediaType"));
	const char *dg = json_string_value(json_object_get(j, "digest"));
	json_t *sz = json_object_get(j, "size");
	if (!mt || !dg || !json_is_integer(sz) || json_integer_value(sz) < 0 ||
	    strlen(mt) >= sizeof x->media_type || strlen(dg) >= sizeof x->digest)
		return false;
	snprintf(x->media_type, sizeof x->media_type, "%s", mt);
	snprintf(x->digest, sizeof x->digest, "%s", dg);
	x->size = (uint64_t)json_integer_value(sz);
	return true;
}

void llm_oci_artifact_clear(struct llm_oci_artifact *a)
{
	json_decref(a->annotations);
	memset(a, 0, sizeof *a);
}

/* The layers: exactly one tarball, at most one signature, anything else ignored. */
static enum llm_err read_layers(json_t *layers, struct llm_oci_artifact *out, struct llm_diag *d)
{
	size_t i, ntar = 0, nsig = 0;
	json_t *it;
	json_array_foreach(layers, i, it)
	{
		struct llm_oci_desc x;
		if (!read_desc(it, &x))
			return llm_diag_set(
			    d, LLM_ERR_FORMAT, NULL, 0,
			    "layer %zu of the OCI manifest is not a valid descriptor", i);
		if (!strcmp(x.media_type, LLM_OCI_SIG_TYPE) && nsig++ == 0) {
			out->sig = x;
			out->has_sig = true;
		}
		if (strcmp(x.media_type, LLM_OCI_LAYER_TYPE) != 0 || ntar++ > 0)
			continue;
		out->layer = x;
		const char *t = json_string_value(json_object_get(
		    json_object_get(it, "annotations"), "org.opencontainers.image.title"));
		if (t && strlen(t) < sizeof out->title && !strchr(t, '/'))
			snprintf(out->title, sizeof out->title, "%s", t);
	}
	if (ntar != 1)
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				    "the OCI manifest has %zu tarball layers (%s), want one", ntar,
				    LLM_OCI_LAYER_TYPE);
	if (nsig > 1)
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				    "the OCI manifest has %zu signature layers, want at most one",
				    nsig);
	if (!llm_oci_valid_digest(out->config.digest) || !llm_oci_valid_digest(out->layer.digest) ||
	    (out->has_sig && !llm_oci_valid_digest(out->sig.digest)))
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				    "the OCI manifest uses a digest other than sha256 (%s, %s)",
				    out->config.digest, out->layer.digest);
	return LLM_OK;
}

enum llm_err llm_oci_artifact_parse(const char *body, size_t n, struct llm_oci_artifact *out,
				    struct llm_diag *d)
{
	memset(out, 0, sizeof *out);
	json_error_t je;
	json_t *m = json_loadb(body, n, 0, &je);
	if (!m || !json_is_object(m)) {
		json_decref(m);
		return llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0, "the OCI manifest is not JSON: %s",
				    m ? "not an object" : je.text);
	}
	enum llm_err e = LLM_OK;
	const char *mt = json_string_value(json_object_get(m, "mediaType"));
	const char *at = json_string_value(json_object_get(m, "artifactType"));
	json_t *layers = json_object_get(m, "layers");
	json_t *ann = json_object_get(m, "annotations");
	if (json_integer_value(json_object_get(m, "schemaVersion")) != 2 ||
	    (mt && strcmp(mt, LLM_OCI_MANIFEST_TYPE) != 0))
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "not an OCI image manifest (mediaType %s): not an llmops artifact",
				 mt ? mt : "absent");
	else if (!read_desc(json_object_get(m, "config"), &out->config))
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "the OCI manifest has no valid config");
	else if ((at && strcmp(at, LLM_OCI_ARTIFACT_TYPE) != 0) ||
		 strcmp(out->config.media_type, LLM_OCI_CONFIG_TYPE) != 0)
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "not an llmops artifact (artifactType %s, config %s; want %s)",
				 at ? at : "absent", out->config.media_type, LLM_OCI_ARTIFACT_TYPE);
	else if (!json_is_array(layers))
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0, "the OCI manifest has no layers");
	else if (ann && !json_is_object(ann))
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "the OCI manifest's annotations are not an object");
	else
		e = read_layers(layers, out, d);
	if (!e && !(out->annotations = ann ? json_incref(ann) : json_object()))
		e = llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	json_decref(m);
	if (e)
		llm_oci_artifact_clear(out);
	return e;
}

enum llm_err llm_oci_artifact_push(struct llm_oci *c, const char *repo,
				   const struct llm_oci_push *p, const char *const *tags,
				   size_t ntags, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *d)
{
	enum llm_err e = check_repo(c, repo, d);
	for (size_t i = 0; !e && i < ntags; i++)
		e = check_ref(c, tags[i], d);
	if (e)
		return e;
	if (!ntags)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "an artifact pushed with no tag");
	struct llm_oci_desc cfg = {.media_type = LLM_OCI_CONFIG_TYPE};
	struct llm_oci_desc lay = {.media_type = LLM_OCI_LAYER_TYPE};
	struct llm_oci_desc sig = {.media_type = LLM_OCI_SIG_TYPE};
	cfg.size = p->config_len;
	e = llm_oci_blob_push_mem(c, repo, p->config, p->config_len, cfg.digest, d);
	if (!e)
		e = llm_oci_blob_push_file(c, repo, p->tarball, lay.digest, &lay.size, d);
	if (!e && p->signature)
		e = llm_oci_blob_push_file(c, repo, p->signature, sig.digest, &sig.size, d);
	struct llm_buf m;
	llm_buf_init(&m, LLM_OCI_MANIFEST_MAX);
	if (!e)
		e = llm_oci_artifact_manifest(p, &cfg, &lay, p->signature ? &sig : NULL, &m, d);
	/* The blobs are all there before the manifest names them, as the spec requires. */
	char dg[LLM_OCI_DIGEST_MAX] = "";
	for (size_t i = 0; !e && i < ntags; i++)
		e = llm_oci_manifest_put(c, repo, tags[i], LLM_OCI_MANIFEST_TYPE, m.data, m.len, dg,
					 d);
	llm_buf_free(&m);
	if (!e && digest)
		memcpy(digest, dg, sizeof dg);
	return e;
}

enum llm_err llm_oci_artifact_pull(struct llm_oci *c, const char *repo, const char *ref,
				   struct llm_buf *config, const char *tarball, const char *sig,
				   struct llm_oci_artifact *a, char digest[LLM_OCI_DIGEST_MAX],
				   struct llm_diag *d)
{
	struct llm_buf m;
	llm_buf_init(&m, 0);
	char dg[LLM_OCI_DIGEST_MAX];
	struct llm_oci_artifact art = {0};
	enum llm_err e = llm_oci_manifest_get(c, repo, ref, &m, dg, d);
	struct llm_diag why = {0};
	if (!e && (e = llm_oci_artifact_parse(m.data, m.len, &art, &why)))
		e = llm_diag_set(d, e, NULL, 0, "oci://%s/%s:%s: %s", c->url.host, repo, ref,
				 why.msg);
	llm_buf_free(&m);
	if (!e && config)
		e = llm_oci_blob_pull_mem(c, repo, art.config.digest, (int64_t)art.config.size,
					  LLM_OCI_CONFIG_MAX, config, d);
	if (!e && tarball)
		e = llm_oci_blob_pull_file(c, repo, art.layer.digest, (int64_t)art.layer.size,
					   tarball, d);
	if (!e && sig && art.has_sig)
		e = llm_oci_blob_pull_file(c, repo, art.sig.digest, (int64_t)art.sig.size, sig, d);
	if (!e && a)
		*a = art;
	else
		llm_oci_artifact_clear(&art);
	if (!e && digest)
		memcpy(digest, dg, sizeof dg);
	return e;
}

enum llm_err llm_oci_tag(struct llm_oci *c, const char *repo, const char *from_ref, const char *tag,
			 char digest[LLM_OCI_DIGEST_MAX], struct llm_diag *d)
{
	enum llm_err e = check_ref(c, tag, d);
	if (e)
		return e;
	struct llm_buf m;
	llm_buf_init(&m, 0);
	char dg[LLM_OCI_DIGEST_MAX];
	e = llm_oci_manifest_get(c, repo, from_ref, &m, dg, d);
	/* The media type the manifest declares is the one to put it back with. */
	char mt[128] = LLM_OCI_MANIFEST_TYPE;
	if (!e) {
		json_t *root = json_loadb(m.data, m.len, 0, NULL);
		const char *s = json_string_value(json_object_get(root, "mediaType"));
		if (s && strlen(s) < sizeof mt)
			snprintf(mt, sizeof mt, "%s", s);
		json_decref(root);
		e = llm_oci_manifest_put(c, repo, tag, mt, m.data, m.len, dg, d);
	}
	llm_buf_free(&m);
	if (!e && digest)
		memcpy(digest, dg, sizeof dg);
	return e;
}

/* --- the OCI kind of registry (artifact/registry.h) ---------------------------------------
 * NAME lives in repository NAMESPACE/NAME; a version is the tag of its version (a '+' as
 * '_'); an alias is a tag starting with a letter.  show reads the manifest and the config
 * blob (the MANIFEST.json, whose digest is the artifact's identity); its pushed time, pusher
 * and reason are annotations the push wrote.  An OCI registry keeps no log of tag moves, so
 * there is no history op: the generic layer says so. */

#define ANN_PUSHED    "org.llmops.pushed"
#define ANN_PUSHED_BY "org.llmops.pushed-by"
#define ANN_REASON    "org.llmops.reason"

static enum llm_err nomem(struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

/* The strings of l that keep says to keep, as a NULL-terminated array for llm_strv_free,
 * each passed through map first (in place, on a copy). */
static enum llm_err to_strv(const struct llm_oci_list *l, bool (*keep)(char *s), char ***out,
			    size_t *n, struct llm_diag *d)
{
	char **v = calloc(l->n + 1, sizeof *v);
	if (!v)
		return nomem(d);
	size_t k = 0;
	for (size_t i = 0; i < l->n; i++) {
		char *s = strdup(l->v[i]);
		if (!s) {
			llm_strv_free(v);
			return nomem(d);
		}
		if (keep(s))
			v[k++] = s;
		else
			free(s);
	}
	*out = v;
	*n = k;
	return LLM_OK;
}

static bool keep_name(char *s)
{
	return llm_registry_name_ok(s);
}

/* A tag that maps back to a version: '_' was '+' (SemVer has no '_' of its own). */
static bool keep_version(char *s)
{
	for (char *p = s; *p; p++)
		if (*p == '_')
			*p = '+';
	return llm_registry_version_ok(s);
}

static bool keep_alias(char *s)
{
	return llm_registry_alias_ok(s) && strcmp(s, "latest") != 0;
}

static int cmp_bytes(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int cmp_version(const void *a, const void *b)
{
	const char *x = *(char *const *)a, *y = *(char *const *)b;
	int c = llm_semver_cmp(x, y);
	return c ? c : strcmp(x, y);
}

struct refs {
	char repo[512];
	char tag[LLM_REGISTRY_VERSION_MAX + 1];
};

static enum llm_err refs_for(struct llm_registry *r, const char *name, const char *version,
			     struct refs *x, struct llm_diag *d)
{
	struct llm_oci *c = r->impl;
	enum llm_err e = llm_oci_repo_for(c, name, x->repo, sizeof x->repo, d);
	if (!e && version)
		e = llm_oci_tag_for(version, x->tag, sizeof x->tag, d);
	return e;
}

static enum llm_err reg_push(struct llm_registry *r, const struct llm_registry_artifact *a,
			     const struct llm_registry_why *why, bool *existed, struct llm_diag *d)
{
	*existed = false;
	struct refs x;
	enum llm_err e = refs_for(r, a->name, a->version, &x, d);
	if (e)
		return e;
	json_t *doc = json_loadb(a->manifest, a->manifest_len, 0, NULL);
	const char *created = json_string_value(json_object_get(doc, "created"));
	char pushed[21], title[LLM_REGISTRY_NAME_MAX + LLM_REGISTRY_VERSION_MAX + 16];
	llm_rfc3339_format((int64_t)time(NULL), pushed);
	snprintf(title, sizeof title, "%s-%s.tar.gz", a->name, a->version);
	struct llm_oci_annotation ann[] = {
	    {ANN_PUSHED, pushed},
	    {ANN_PUSHED_BY, why ? why->who : NULL},
	    {ANN_REASON, why ? why->reason : NULL},
	};
	struct llm_oci_push p = {
	    .tarball = a->path,
	    .signature = a->sig_path,
	    .layer_title = title,
	    .config = a->manifest,
	    .config_len = a->manifest_len,
	    .name = a->name,
	    .version = a->version,
	    .created = created,
	    .annotations = ann,
	    .nannotations = sizeof ann / sizeof *ann,
	};
	const char *tags[] = {x.tag};
	if (!created)
		e = llm_diag_set(d, LLM_ERR_FORMAT, a->path, 0, "the manifest has no created time");
	else
		e = llm_oci_artifact_push(r->impl, x.repo, &p, tags, 1, NULL, d);
	json_decref(doc);
	return e;
}

static enum llm_err reg_pull(struct llm_registry *r, const char *name, const char *version,
			     const char *path, const char *sig_path, bool *has_sig,
			     struct llm_diag *d)
{
	*has_sig = false;
	struct refs x;
	enum llm_err e = refs_for(r, name, version, &x, d);
	struct llm_oci_artifact a = {0};
	if (!e)
		e = llm_oci_artifact_pull(r->impl, x.repo, x.tag, NULL, path, sig_path, &a, NULL,
					  d);
	if (!e)
		*has_sig = a.has_sig && sig_path;
	llm_oci_artifact_clear(&a);
	return e;
}

static enum llm_err reg_names(struct llm_registry *r, char ***names, size_t *n, struct llm_diag *d)
{
	struct llm_oci_list l;
	enum llm_err e = llm_oci_catalog(r->impl, &l, d);
	if (!e)
		e = to_strv(&l, keep_name, names, n, d);
	llm_oci_list_free(&l);
	if (!e)
		qsort(*names, *n, sizeof **names, cmp_bytes);
	return e;
}

static enum llm_err reg_versions(struct llm_registry *r, const char *name, char ***versions,
				 size_t *n, struct llm_diag *d)
{
	struct refs x;
	enum llm_err e = refs_for(r, name, NULL, &x, d);
	struct llm_oci_list l = {0};
	if (!e)
		e = llm_oci_tags(r->impl, x.repo, &l, d);
	if (!e)
		e = to_strv(&l, keep_version, versions, n, d);
	llm_oci_list_free(&l);
	if (e)
		return e;
	if (!*n) {
		llm_strv_free(*versions);
		*versions = NULL;
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "%s: no versions in %s", name,
				    r->ref);
	}
	qsort(*versions, *n, sizeof **versions, cmp_version);
	return LLM_OK;
}

static char *dup_str(json_t *j)
{
	const char *s = json_string_value(j);
	return s ? strdup(s) : NULL;
}

static enum llm_err reg_show(struct llm_registry *r, const char *name, const char *version,
			     struct llm_registry_entry *ent, struct llm_diag *d)
{
	memset(ent, 0, sizeof *ent);
	struct refs x;
	enum llm_err e = refs_for(r, name, version, &x, d);
	struct llm_oci_artifact a = {0};
	struct llm_buf cfg;
	llm_buf_init(&cfg, LLM_OCI_CONFIG_MAX);
	if (!e)
		e = llm_oci_artifact_pull(r->impl, x.repo, x.tag, &cfg, NULL, NULL, &a, NULL, d);
	if (e == LLM_ERR_NOT_FOUND)
		e = llm_diag_set(d, e, NULL, 0, "%s@%s is not in %s", name, version, r->ref);
	if (!e) {
		ent->name = strdup(name);
		ent->version = strdup(version);
		ent->digest = strdup(a.config.digest);
		ent->manifest = cfg.data ? cfg.data : strdup("");
		cfg.data = NULL;
		ent->pushed = dup_str(json_object_get(a.annotations, ANN_PUSHED));
		ent->pushed_by = dup_str(json_object_get(a.annotations, ANN_PUSHED_BY));
		ent->size = a.layer.size;
		ent->is_signed = a.has_sig;
		if (!ent->name || !ent->version || !ent->digest || !ent->manifest) {
			llm_registry_entry_clear(ent);
			e = nomem(d);
		}
	}
	llm_buf_free(&cfg);
	llm_oci_artifact_clear(&a);
	return e;
}

/* The version the manifest under tag says it is: its version annotation, else the
 * MANIFEST.json's. */
static enum llm_err version_of(struct llm_registry *r, const char *repo, const char *tag,
			       char **version, struct llm_diag *d)
{
	*version = NULL;
	struct llm_oci_artifact a = {0};
	enum llm_err e = llm_oci_artifact_pull(r->impl, repo, tag, NULL, NULL, NULL, &a, NULL, d);
	if (e)
		return e;
	json_t *v = json_object_get(a.annotations, "org.opencontainers.image.version");
	if (json_is_string(v)) {
		*version = dup_str(v);
	} else {
		struct llm_buf cfg;
		llm_buf_init(&cfg, 0);
		e = llm_oci_blob_pull_mem(r->impl, repo, a.config.digest, (int64_t)a.config.size,
					  LLM_OCI_CONFIG_MAX, &cfg, d);
		json_t *doc = e ? NULL : json_loadb(cfg.data, cfg.len, 0, NULL);
		*version = dup_str(json_object_get(doc, "version"));
		json_decref(doc);
		llm_buf_free(&cfg);
	}
	llm_oci_artifact_clear(&a);
	if (!e && !*version)
		e = llm_diag_set(d, LLM_ERR_FORMAT, NULL, 0,
				 "oci://%s:%s: the artifact does not say its version", repo, tag);
	return e;
}

static enum llm_err reg_alias_get(struct llm_registry *r, const char *name, const char *alias,
				  char **version, struct llm_diag *d)
{
	*version = NULL;
	struct refs x;
	enum llm_err e = refs_for(r, name, alias, &x, d);
	if (!e)
		e = version_of(r, x.repo, x.tag, version, d);
	if (e == LLM_ERR_NOT_FOUND)
		e = llm_diag_set(d, e, NULL, 0, "%s@%s: no such alias in %s", name, alias, r->ref);
	return e;
}

static enum llm_err reg_alias_set(struct llm_registry *r, const char *name, const char *alias,
				  const char *version, const struct llm_registry_why *why,
				  char **previous, struct llm_diag *d)
{
	(void)why; /* a tag move leaves no record in an OCI registry */
	if (previous)
		*previous = NULL;
	struct refs x, v;
	enum llm_err e = refs_for(r, name, alias, &x, d);
	if (!e && version)
		e = refs_for(r, name, version, &v, d);
	if (e)
		return e;
	char *prev = NULL;
	struct llm_diag ignore;
	e = version_of(r, x.repo, x.tag, &prev, &ignore);
	if (e == LLM_ERR_NOT_FOUND)
		e = LLM_OK;
	else if (e && d)
		*d = ignore;
	if (!e && version) {
		e = llm_oci_tag(r->impl, x.repo, v.tag, x.tag, NULL, d);
		if (e == LLM_ERR_NOT_FOUND)
			e = llm_diag_set(d, e, NULL, 0, "%s@%s is not in %s", name, version,
					 r->ref);
	} else if (!e && prev) {
		e = llm_oci_tag_delete(r->impl, x.repo, x.tag, d);
	}
	if (!e && previous)
		*previous = prev;
	else
		free(prev);
	return e;
}

static enum llm_err reg_aliases(struct llm_registry *r, const char *name, char ***aliases,
				char ***versions, size_t *n, struct llm_diag *d)
{
	*aliases = *versions = NULL;
	*n = 0;
	struct refs x;
	enum llm_err e = refs_for(r, name, NULL, &x, d);
	struct llm_oci_list l = {0};
	if (!e)
		e = llm_oci_tags(r->impl, x.repo, &l, d);
	char **al = NULL;
	size_t na = 0;
	if (!e)
		e = to_strv(&l, keep_alias, &al, &na, d);
	llm_oci_list_free(&l);
	if (e)
		return e;
	qsort(al, na, sizeof *al, cmp_bytes);
	char **kept = calloc(na + 1, sizeof *kept);
	char **ve = calloc(na + 1, sizeof *ve);
	if (!kept || !ve)
		e = nomem(d);
	/* A tag on something else (a container image's "main") or one removed meanwhile is not
	 * an alias of ours: left out, not a failure of the whole list. */
	size_t k = 0;
	for (size_t i = 0; !e && i < na; i++) {
		struct llm_diag why;
		enum llm_err ve_err = version_of(r, x.repo, al[i], &ve[k], &why);
		if (ve_err == LLM_ERR_FORMAT || ve_err == LLM_ERR_NOT_FOUND)
			continue;
		if (ve_err) {
			e = ve_err;
			if (d)
				*d = why;
			break;
		}
		kept[k++] = al[i];
		al[i] = NULL;
	}
	for (size_t i = 0; i < na; i++)
		free(al[i]);
	free(al);
	if (e) {
		llm_strv_free(kept);
		llm_strv_free(ve);
		return e;
	}
	*aliases = kept;
	*versions = ve;
	*n = k;
	return LLM_OK;
}

static void reg_close(struct llm_registry *r)
{
	llm_oci_close(r->impl);
	r->impl = NULL;
}

static const struct llm_registry_ops oci_ops = {
    .kind = "oci",
    .push = reg_push,
    .pull = reg_pull,
    .names = reg_names,
    .versions = reg_versions,
    .show = reg_show,
    .alias_get = reg_alias_get,
    .alias_set = reg_alias_set,
    .aliases = reg_aliases,
    .history = NULL,
    .close = reg_close,
};

enum llm_err llm_registry_open_oci(struct llm_registry *r, const char *url, struct llm_diag *d)
{
	struct llm_oci_opts o;
	llm_oci_opts_default(&o);
	enum llm_err e = llm_oci_opts_env(&o, d);
	struct llm_oci *c = NULL;
	if (!e)
		e = llm_oci_open(&c, url, &o, d);
	if (e)
		return e;
	r->ops = &oci_ops;
	r->impl = c;
	return LLM_OK;
}
