#include "config.h"

#include "backend/cache.h"

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "core/atomic.h"
#include "core/hash.h"

/* No entry is larger than this; a bigger file is not one of ours. */
#define ENTRY_MAX (64u << 20)

struct llm_cache {
	char *dir;
};

static const char *ep_name(enum llm_endpoint ep)
{
	return ep == LLM_EP_CHAT ? "chat/completions" : "completions";
}

static char *join(const char *a, const char *b)
{
	size_t n = strlen(a) + strlen(b) + 2;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s/%s", a, b);
	return p;
}

char *llm_cache_default_dir(const char *name)
{
	const char *home = getenv("LLMOPS_HOME");
	char *base;
	if (home && *home) {
		base = join(home, "cache");
	} else {
		const char *user = getenv("HOME");
		if (!user || !*user) {
			struct passwd *pw = getpwuid(getuid());
			user = pw && pw->pw_dir ? pw->pw_dir : ".";
		}
		base = join(user, ".llmops/cache");
	}
	if (!base)
		return NULL;
	char *dir = join(base, name);
	free(base);
	return dir;
}

static enum llm_err mkdir_p(const char *path, struct llm_diag *d)
{
	char *p = strdup(path);
	if (!p)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (char *s = p + 1;; s++) {
		if (*s != '/' && *s)
			continue;
		char c = *s;
		*s = '\0';
		if (mkdir(p, 0777) != 0 && errno != EEXIST) {
			enum llm_err e =
			    llm_diag_set(d, LLM_ERR_IO, p, 0, "cannot create: %s", strerror(errno));
			free(p);
			return e;
		}
		*s = c;
		if (!c)
			break;
	}
	struct stat st;
	enum llm_err e = LLM_OK;
	if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
		e = llm_diag_set(d, LLM_ERR_IO, path, 0, "not a directory");
	free(p);
	return e;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static enum llm_err put_stat(struct llm_buf *out, const char *name, const struct stat *st)
{
	return llm_buf_printf(out, "\n%s %lld %lld.%09ld", name, (long long)st->st_size,
			      (long long)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
}

enum llm_err llm_cache_model_identity(const char *ref, const char *model_name, struct llm_buf *out,
				      struct llm_diag *diag)
{
	enum llm_err e;
	if (!strncmp(ref, "http://", 7) || !strncmp(ref, "https://", 8)) {
		size_t n = strlen(ref);
		while (n > 1 && ref[n - 1] == '/')
			n--;
		e = llm_buf_puts(out, "url ");
		if (!e)
			e = llm_buf_append(out, ref, n);
		if (!e)
			e = llm_buf_printf(out, "\nmodel %s", model_name ? model_name : "");
		return e ? llm_diag_set(diag, e, NULL, 0, "out of memory") : LLM_OK;
	}
	char real[PATH_MAX];
	struct stat st;
	if (!realpath(ref, real) || stat(real, &st) != 0)
		return llm_diag_set(diag, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, ref, 0,
				    "cannot read: %s", strerror(errno));
	e = llm_buf_printf(out, "local %s\nmodel %s", real, model_name ? model_name : "");
	if (!e && !S_ISDIR(st.st_mode))
		e = put_stat(out, ".", &st);
	if (e || !S_ISDIR(st.st_mode))
		return e ? llm_diag_set(diag, e, NULL, 0, "out of memory") : LLM_OK;
	DIR *dir = opendir(real);
	if (!dir)
		return llm_diag_set(diag, LLM_ERR_IO, ref, 0, "cannot read: %s", strerror(errno));
	char **names = NULL;
	size_t n = 0, cap = 0;
	struct dirent *de;
	while (!e && (de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (n == cap) {
			size_t nc = cap ? 2 * cap : 16;
			char **nn = realloc(names, nc * sizeof *nn);
			if (!nn) {
				e = LLM_ERR_NOMEM;
				break;
			}
			names = nn;
			cap = nc;
		}
		if (!(names[n] = strdup(de->d_name)))
			e = LLM_ERR_NOMEM;
		else
			n++;
	}
	closedir(dir);
	if (!e)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; i < n && !e; i++) {
		char *p = join(real, names[i]);
		if (!p)
			e = LLM_ERR_NOMEM;
		else if (stat(p, &st) == 0 && S_ISREG(st.st_mode))
			e = put_stat(out, names[i], &st);
		free(p);
	}
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return e ? llm_diag_set(diag, e, NULL, 0, "out of memory") : LLM_OK;
}

enum llm_err llm_cache_key(const char *model_identity, enum llm_endpoint ep,
			   const char *canonical_body, char key[LLM_CACHE_KEY_LEN + 1])
{
	/* A version line first: a change to what an entry means changes every key. */
	static const char head[] = "llmops cache 1\n";
	struct llm_sha256 h;
	unsigned char md[LLM_SHA256_LEN];
	enum llm_err e = llm_sha256_init(&h);
	if (e)
		return e;
	const char *ep_s = ep_name(ep);
	if (!e)
		e = llm_sha256_update(&h, head, sizeof head - 1);
	if (!e)
		e = llm_sha256_update(&h, model_identity, strlen(model_identity) + 1);
	if (!e)
		e = llm_sha256_update(&h, ep_s, strlen(ep_s) + 1);
	if (!e)
		e = llm_sha256_update(&h, canonical_body, strlen(canonical_body));
	/* final releases the context whatever happened before. */
	enum llm_err f = llm_sha256_final(&h, md);
	if (e || f)
		return e ? e : f;
	llm_hex(md, sizeof md, key);
	return LLM_OK;
}

enum llm_err llm_cache_open(struct llm_cache **out, const char *dir, struct llm_diag *diag)
{
	*out = NULL;
	enum llm_err e = mkdir_p(dir, diag);
	if (e)
		return e;
	struct llm_cache *c = calloc(1, sizeof *c);
	if (!c || !(c->dir = strdup(dir))) {
		free(c);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	*out = c;
	return LLM_OK;
}

void llm_cache_close(struct llm_cache *c)
{
	if (!c)
		return;
	free(c->dir);
	free(c);
}

void llm_cache_hit_clear(struct llm_cache_hit *h)
{
	free(h->response);
	memset(h, 0, sizeof *h);
}

/* DIR/KK/KEY.json, and DIR/KK when sub is set. */
static char *entry_path(const struct llm_cache *c, const char *key, bool sub)
{
	size_t n = strlen(c->dir) + LLM_CACHE_KEY_LEN + 16;
	char *p = malloc(n);
	if (!p)
		return NULL;
	if (sub)
		snprintf(p, n, "%s/%.2s", c->dir, key);
	else
		snprintf(p, n, "%s/%.2s/%s.json", c->dir, key, key);
	return p;
}

static bool valid_key(const char *key)
{
	if (strlen(key) != LLM_CACHE_KEY_LEN)
		return false;
	for (const char *s = key; *s; s++)
		if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
			return false;
	return true;
}

bool llm_cache_get(struct llm_cache *c, const char *key, struct llm_cache_hit *hit)
{
	memset(hit, 0, sizeof *hit);
	if (!valid_key(key))
		return false;
	char *path = entry_path(c, key, false);
	if (!path)
		return false;
	json_error_t je;
	json_t *o = NULL;
	FILE *f = fopen(path, "rb");
	free(path);
	if (!f)
		return false;
	struct stat st;
	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) && st.st_size < (off_t)ENTRY_MAX)
		o = json_loadf(f, 0, &je);
	fclose(f);
	json_t *k = json_object_get(o, "key");
	json_t *r = json_object_get(o, "response");
	bool ok = json_is_string(k) && !strcmp(json_string_value(k), key) && json_is_object(r);
	if (ok) {
		hit->response = json_dumps(r, JSON_COMPACT | JSON_REAL_PRECISION(17));
		ok = hit->response != NULL;
	}
	if (ok) {
		json_t *lat = json_object_get(o, "latency_ms");
		json_t *ttft = json_object_get(o, "ttft_ms");
		hit->len = strlen(hit->response);
		hit->latency_ms = json_is_number(lat) ? json_number_value(lat) : 0;
		hit->ttft_ms = json_is_number(ttft) ? json_number_value(ttft) : -1;
	}
	json_decref(o);
	return ok;
}

enum llm_err llm_cache_put(struct llm_cache *c, const char *key, const char *model_identity,
			   enum llm_endpoint ep, const char *request, const char *response,
			   size_t len, double latency_ms, double ttft_ms, struct llm_diag *diag)
{
	if (!valid_key(key))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "not a cache key: %s", key);
	json_error_t je;
	json_t *req = json_loads(request, 0, &je);
	json_t *res = json_loadb(response, len, JSON_ALLOW_NUL, &je);
	if (!json_is_object(req) || !json_is_object(res)) {
		json_decref(req);
		json_decref(res);
		return llm_diag_set(diag, LLM_ERR_JSON, NULL, 0,
				    "a cache entry's request and response must be JSON objects");
	}
	char created[32];
	time_t now = time(NULL);
	struct tm tm;
	gmtime_r(&now, &tm);
	strftime(created, sizeof created, "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_t *o = json_pack("{s:s,s:s,s:s,s:o,s:o,s:f,s:o,s:s}", "key", key, "endpoint",
			      ep_name(ep), "model", model_identity, "request", req, "response", res,
			      "latency_ms", latency_ms, "ttft_ms",
			      ttft_ms < 0 ? json_null() : json_real(ttft_ms), "created", created);
	char *text = o ? json_dumps(o, JSON_COMPACT | JSON_REAL_PRECISION(17)) : NULL;
	json_decref(o);
	char *sub = entry_path(c, key, true);
	char *path = entry_path(c, key, false);
	enum llm_err e = LLM_OK;
	if (!text || !sub || !path)
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	if (!e && mkdir(sub, 0777) != 0 && errno != EEXIST)
		e = llm_diag_set(diag, LLM_ERR_IO, sub, 0, "cannot create: %s", strerror(errno));
	if (!e) {
		size_t n = strlen(text);
		text[n] = '\n'; /* json_dumps leaves room for its NUL: the newline takes it */
		e = llm_atomic_write_file(path, text, n + 1, diag);
	}
	free(text);
	free(sub);
	free(path);
	return e;
}
