/* Upstream pools: configuration, balancing, cooldown and the health-probe schedule.
 *
 * Everything that changes after setup (in-flight counts, round-robin weights, cooldowns,
 * probe times) sits behind one mutex: a pick is a short loop over one pool, far cheaper than
 * the request it routes, so finer locking would buy nothing. */
#include "config.h"

#include "serve/upstream.h"
#include "core/buf.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define LABEL_MAX 160

struct llm_upstream {
	char *url;	  /* base URL, no trailing '/' */
	char *key_env;	  /* NULL for none */
	char *auth;	  /* "Authorization: Bearer KEY" or NULL */
	char *health_url; /* NULL: no probe */
	char label[LABEL_MAX];
	int inflight;
	int failures;
	double cooldown_until;
	double next_probe;
	bool probing;
	bool healthy;
	uint64_t attempts;
};

struct entry {
	struct llm_upstream *server;
	char *model;
	int weight;
	long cw; /* smooth weighted round robin: the current weight */
};

struct llm_pool {
	char *name;
	struct entry *e;
	size_t n;
	char **fb_names;
	struct llm_pool **fb; /* resolved by llm_upstreams_check */
	size_t nfb;
};

struct llm_upstreams {
	struct llm_upstreams_opts o;
	pthread_mutex_t mu;
	struct llm_pool **pools;
	size_t npools;
	struct llm_pool *star; /* the "*" pool, if any */
	struct llm_pool *def;
	struct llm_upstream **servers;
	size_t nservers;
	bool ready;
};

static double mono_now(void *ctx)
{
	(void)ctx;
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double now_s(const struct llm_upstreams *u)
{
	return u->o.clock(u->o.clock_ctx);
}

void llm_upstreams_opts_init(struct llm_upstreams_opts *o)
{
	memset(o, 0, sizeof *o);
	o->balance = LLM_BALANCE_LEAST_BUSY;
	o->cooldown_s = 1;
	o->cooldown_max_s = 60;
	o->health_interval_s = 10;
}

enum llm_err llm_upstreams_new(struct llm_upstreams **out, const struct llm_upstreams_opts *o,
			       struct llm_diag *diag)
{
	*out = NULL;
	if (!(o->cooldown_s >= 0) || !(o->cooldown_max_s >= o->cooldown_s) ||
	    !(o->health_interval_s >= 0))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "cooldowns and the health interval must not be negative, and "
				    "the cooldown cap not below the first cooldown");
	struct llm_upstreams *u = calloc(1, sizeof *u);
	if (!u)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	u->o = *o;
	if (!u->o.clock)
		u->o.clock = mono_now;
	pthread_mutex_init(&u->mu, NULL);
	*out = u;
	return LLM_OK;
}

static void wipe_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

void llm_upstreams_free(struct llm_upstreams *u)
{
	if (!u)
		return;
	for (size_t i = 0; i < u->npools; i++) {
		struct llm_pool *p = u->pools[i];
		for (size_t k = 0; k < p->n; k++)
			free(p->e[k].model);
		for (size_t k = 0; k < p->nfb; k++)
			free(p->fb_names[k]);
		free(p->fb_names);
		free(p->fb);
		free(p->e);
		free(p->name);
		free(p);
	}
	for (size_t i = 0; i < u->nservers; i++) {
		struct llm_upstream *s = u->servers[i];
		free(s->url);
		free(s->key_env);
		wipe_free(s->auth);
		free(s->health_url);
		free(s);
	}
	free(u->pools);
	free(u->servers);
	pthread_mutex_destroy(&u->mu);
	free(u);
}

/* --- building ------------------------------------------------------------------------------- */

void llm_upstream_label(const char *url, char *out, size_t outsz)
{
	out[0] = '\0';
	CURLU *h = curl_url();
	if (!h)
		return;
	char *scheme = NULL, *host = NULL, *port = NULL;
	if (curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
	    curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK) {
		if (curl_url_get(h, CURLUPART_PORT, &port, 0) == CURLUE_OK && port)
			snprintf(out, outsz, "%s://%s:%s", scheme, host, port);
		else
			snprintf(out, outsz, "%s://%s", scheme, host);
	}
	curl_free(scheme);
	curl_free(host);
	curl_free(port);
	curl_url_cleanup(h);
}

static bool url_ok(const char *url)
{
	CURLU *h = curl_url();
	if (!h)
		return false;
	char *scheme = NULL, *host = NULL;
	bool ok = curl_url_set(h, CURLUPART_URL, url, 0) == CURLUE_OK &&
		  curl_url_get(h, CURLUPART_SCHEME, &scheme, 0) == CURLUE_OK &&
		  curl_url_get(h, CURLUPART_HOST, &host, 0) == CURLUE_OK && host && *host &&
		  (!strcmp(scheme, "http") || !strcmp(scheme, "https")) && !strpbrk(url, " \r\n");
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(h);
	return ok;
}

static struct llm_pool *find_pool(const struct llm_upstreams *u, const char *name, size_t len)
{
	for (size_t i = 0; i < u->npools; i++) {
		const char *pn = u->pools[i]->name;
		if (strlen(pn) == len && memcmp(pn, name, len) == 0)
			return u->pools[i];
	}
	return NULL;
}

static struct llm_pool *get_pool(struct llm_upstreams *u, const char *name)
{
	struct llm_pool *p = find_pool(u, name, strlen(name));
	if (p)
		return p;
	struct llm_pool **v = realloc(u->pools, (u->npools + 1) * sizeof *v);
	if (!v)
		return NULL;
	u->pools = v;
	p = calloc(1, sizeof *p);
	if (!p || !(p->name = strdup(name))) {
		free(p);
		return NULL;
	}
	u->pools[u->npools++] = p;
	if (!strcmp(name, "*"))
		u->star = p;
	if (!u->def)
		u->def = p;
	return p;
}

static bool same(const char *a, const char *b)
{
	return (!a && !b) || (a && b && !strcmp(a, b));
}

static struct llm_upstream *get_server(struct llm_upstreams *u, const char *url,
				       const char *key_env, const char *key, const char *health,
				       struct llm_diag *diag)
{
	for (size_t i = 0; i < u->nservers; i++)
		if (!strcmp(u->servers[i]->url, url) && same(u->servers[i]->key_env, key_env))
			return u->servers[i];
	struct llm_upstream **v = realloc(u->servers, (u->nservers + 1) * sizeof *v);
	if (!v)
		goto nomem;
	u->servers = v;
	struct llm_upstream *s = calloc(1, sizeof *s);
	if (!s)
		goto nomem;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	bool ok = (s->url = strdup(url)) != NULL;
	if (ok) {
		size_t n = strlen(s->url);
		while (n > 0 && s->url[n - 1] == '/')
			s->url[--n] = '\0';
	}
	if (ok && key_env)
		ok = (s->key_env = strdup(key_env)) != NULL;
	if (ok && key && *key) {
		ok = llm_buf_puts(&b, "Authorization: Bearer ") == LLM_OK &&
		     llm_buf_puts(&b, key) == LLM_OK;
		if (ok)
			ok = (s->auth = strdup(b.data)) != NULL;
		if (b.data)
			explicit_bzero(b.data, b.len);
	}
	llm_buf_free(&b);
	if (ok && health && *health) {
		llm_buf_init(&b, 0);
		ok = llm_buf_puts(&b, s->url) == LLM_OK &&
		     (health[0] == '/' || llm_buf_putc(&b, '/') == LLM_OK) &&
		     llm_buf_puts(&b, health) == LLM_OK;
		if (ok)
			ok = (s->health_url = strdup(b.data)) != NULL;
		llm_buf_free(&b);
	}
	if (!ok) {
		free(s->url);
		free(s->key_env);
		wipe_free(s->auth);
		free(s->health_url);
		free(s);
		goto nomem;
	}
	llm_upstream_label(s->url, s->label, sizeof s->label);
	s->healthy = true;
	s->next_probe = -INFINITY; /* probe at once: /ready needs an answer */
	u->servers[u->nservers++] = s;
	return s;
nomem:
	llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return NULL;
}

enum llm_err llm_upstreams_add(struct llm_upstreams *u, const char *pool, const char *url,
			       int weight, const char *model, const char *key_env,
			       const char *health, struct llm_diag *diag)
{
	if (!pool || !*pool)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "an empty model name");
	if (!url || !url_ok(url))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "not a valid upstream URL (want http(s)://host[:port]/v1)");
	if (weight < 1 || weight > LLM_UPSTREAM_WEIGHT_MAX)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "an upstream weight must be an integer from 1 to %d",
				    LLM_UPSTREAM_WEIGHT_MAX);
	const char *key = NULL;
	if (key_env) {
		key = getenv(key_env);
		if (!key || !*key)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "the upstream key variable %s is not set", key_env);
		if (strpbrk(key, "\r\n"))
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "the upstream key in %s holds a line break", key_env);
	}
	if (model && strpbrk(model, "\r\n"))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "an upstream model name holds a line break");
	struct llm_upstream *s =
	    get_server(u, url, key_env, key, health ? health : "/models", diag);
	if (!s)
		return LLM_ERR_NOMEM;
	struct llm_pool *p = get_pool(u, pool);
	struct entry *e = p ? realloc(p->e, (p->n + 1) * sizeof *e) : NULL;
	if (!e)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	p->e = e;
	e = &p->e[p->n];
	memset(e, 0, sizeof *e);
	e->server = s;
	e->weight = weight;
	if (model && !(e->model = strdup(model)))
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	p->n++;
	return LLM_OK;
}

enum llm_err llm_upstreams_add_spec(struct llm_upstreams *u, const char *pool, const char *spec,
				    const char *key_env, struct llm_diag *diag)
{
	/* The weight is what follows the last comma, when it is a number: a URL may hold commas. */
	char url[4096];
	int weight = 1;
	const char *comma = strrchr(spec, ',');
	size_t n = strlen(spec);
	if (comma) {
		char *end;
		long w = strtol(comma + 1, &end, 10);
		if (end != comma + 1 && *end == '\0') {
			if (w < 1 || w > LLM_UPSTREAM_WEIGHT_MAX)
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "upstream '%s': the weight must be an integer "
						    "from 1 to %d",
						    spec, LLM_UPSTREAM_WEIGHT_MAX);
			weight = (int)w;
			n = (size_t)(comma - spec);
		}
	}
	if (n >= sizeof url)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "an upstream URL is too long");
	memcpy(url, spec, n);
	url[n] = '\0';
	enum llm_err e = llm_upstreams_add(u, pool, url, weight, NULL, key_env, NULL, diag);
	if (e == LLM_ERR_USAGE && diag) {
		char why[LLM_DIAG_MSG_MAX];
		snprintf(why, sizeof why, "%s", diag->msg);
		llm_diag_set(diag, e, NULL, 0, "--upstream '%.200s': %s", url, why);
	}
	return e;
}

enum llm_err llm_upstreams_add_fallback(struct llm_upstreams *u, const char *pool,
					const char *fallback, struct llm_diag *diag)
{
	struct llm_pool *p = get_pool(u, pool);
	char **v = p ? realloc(p->fb_names, (p->nfb + 1) * sizeof *v) : NULL;
	if (!v)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	p->fb_names = v;
	if (!(v[p->nfb] = strdup(fallback)))
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	p->nfb++;
	return LLM_OK;
}

enum llm_err llm_upstreams_set_default(struct llm_upstreams *u, const char *pool,
				       struct llm_diag *diag)
{
	struct llm_pool *p = find_pool(u, pool, strlen(pool));
	if (!p)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "the default model '%s' is not one of the configured models",
				    pool);
	u->def = p;
	return LLM_OK;
}

enum llm_err llm_upstreams_check(struct llm_upstreams *u, struct llm_diag *diag)
{
	if (u->npools == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "no upstream is configured");
	for (size_t i = 0; i < u->npools; i++) {
		struct llm_pool *p = u->pools[i];
		if (p->n == 0)
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "model '%s' has no upstreams", p->name);
		free(p->fb);
		p->fb = p->nfb ? calloc(p->nfb, sizeof *p->fb) : NULL;
		if (p->nfb && !p->fb)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		for (size_t k = 0; k < p->nfb; k++) {
			struct llm_pool *f = find_pool(u, p->fb_names[k], strlen(p->fb_names[k]));
			if (!f || f->n == 0)
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "model '%s': the fallback '%s' is not one of "
						    "the configured models",
						    p->name, p->fb_names[k]);
			if (f == p)
				return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
						    "model '%s' names itself as its fallback",
						    p->name);
			p->fb[k] = f;
		}
	}
	return LLM_OK;
}

/* --- the configuration file ----------------------------------------------------------------- */

static bool only_keys(json_t *obj, const char *const *allowed, const char **bad)
{
	const char *k;
	json_t *v;
	json_object_foreach(obj, k, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(k, allowed[i]);
		if (!ok) {
			*bad = k;
			return false;
		}
	}
	return true;
}

static const char *opt_string(json_t *obj, const char *key, bool *bad)
{
	json_t *v = json_object_get(obj, key);
	if (!v || json_is_null(v))
		return NULL;
	if (!json_is_string(v) || strlen(json_string_value(v)) != json_string_length(v)) {
		*bad = true;
		return NULL;
	}
	return json_string_value(v);
}

static enum llm_err parse_pool(struct llm_upstreams *u, const char *name, json_t *pj,
			       const char *file, struct llm_diag *diag)
{
	static const char *const pool_keys[] = {"upstreams", "fallback", NULL};
	static const char *const up_keys[] = {"url", "weight", "model", "key_env", "health", NULL};
	const char *bad = NULL;
	if (!json_is_object(pj))
		return llm_diag_set(diag, LLM_ERR_USAGE, file, 0, "models.%s: not an object", name);
	if (!only_keys(pj, pool_keys, &bad))
		return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
				    "models.%s: unknown field '%s' (upstreams, fallback)", name,
				    bad);
	json_t *ups = json_object_get(pj, "upstreams");
	if (!json_is_array(ups) || json_array_size(ups) == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
				    "models.%s.upstreams: want a non-empty array", name);
	size_t i;
	json_t *uj;
	json_array_foreach(ups, i, uj)
	{
		if (!json_is_object(uj))
			return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
					    "models.%s.upstreams[%zu]: not an object", name, i);
		if (!only_keys(uj, up_keys, &bad))
			return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
					    "models.%s.upstreams[%zu]: unknown field '%s' (url, "
					    "weight, model, key_env, health)",
					    name, i, bad);
		bool wrong = false;
		const char *url = opt_string(uj, "url", &wrong);
		const char *model = opt_string(uj, "model", &wrong);
		const char *key_env = opt_string(uj, "key_env", &wrong);
		const char *health = opt_string(uj, "health", &wrong);
		json_t *w = json_object_get(uj, "weight");
		if (wrong || !url)
			return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
					    "models.%s.upstreams[%zu]: url is required, and url, "
					    "model, key_env and health are strings",
					    name, i);
		if (w && (!json_is_integer(w) || json_integer_value(w) < 1 ||
			  json_integer_value(w) > LLM_UPSTREAM_WEIGHT_MAX))
			return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
					    "models.%s.upstreams[%zu].weight: want an integer from "
					    "1 to %d",
					    name, i, LLM_UPSTREAM_WEIGHT_MAX);
		int weight = w ? (int)json_integer_value(w) : 1;
		enum llm_err e = llm_upstreams_add(u, name, url, weight, model, key_env,
						   health ? health : "/models", diag);
		if (e != LLM_OK) {
			if (diag) {
				char why[LLM_DIAG_MSG_MAX];
				snprintf(why, sizeof why, "%s", diag->msg);
				llm_diag_set(diag, e, file, 0, "models.%s.upstreams[%zu]: %s", name,
					     i, why);
			}
			return e;
		}
	}
	json_t *fb = json_object_get(pj, "fallback");
	if (fb && !json_is_array(fb))
		return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
				    "models.%s.fallback: want an array of model names", name);
	json_t *fj;
	json_array_foreach(fb, i, fj)
	{
		if (!json_is_string(fj))
			return llm_diag_set(diag, LLM_ERR_USAGE, file, 0,
					    "models.%s.fallback[%zu]: not a string", name, i);
		enum llm_err e = llm_upstreams_add_fallback(u, name, json_string_value(fj), diag);
		if (e != LLM_OK)
			return e;
	}
	return LLM_OK;
}

enum llm_err llm_upstreams_parse(struct llm_upstreams *u, const char *text, size_t n,
				 const char *name, struct llm_diag *diag)
{
	static const char *const top_keys[] = {"models", "default_model", NULL};
	json_error_t jerr;
	json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return llm_diag_set(diag, LLM_ERR_JSON, name, jerr.line, "%s", jerr.text);
	enum llm_err e = LLM_OK;
	const char *bad = NULL;
	json_t *models = json_object_get(root, "models");
	json_t *def = json_object_get(root, "default_model");
	if (!json_is_object(root)) {
		e = llm_diag_set(diag, LLM_ERR_USAGE, name, 0, "not a JSON object");
	} else if (!only_keys(root, top_keys, &bad)) {
		e = llm_diag_set(diag, LLM_ERR_USAGE, name, 0,
				 "unknown field '%s' (models, default_model)", bad);
	} else if (!json_is_object(models) || json_object_size(models) == 0) {
		e = llm_diag_set(diag, LLM_ERR_USAGE, name, 0,
				 "models: want an object of model names");
	} else if (def && !json_is_string(def)) {
		e = llm_diag_set(diag, LLM_ERR_USAGE, name, 0, "default_model: not a string");
	} else {
		const char *k;
		json_t *pj;
		json_object_foreach(models, k, pj)
		{
			if (!*k) {
				e = llm_diag_set(diag, LLM_ERR_USAGE, name, 0,
						 "models: an empty model name");
				break;
			}
			if ((e = parse_pool(u, k, pj, name, diag)) != LLM_OK)
				break;
		}
		if (e == LLM_OK && def) {
			e = llm_upstreams_set_default(u, json_string_value(def), diag);
			if (e != LLM_OK && diag) {
				char why[LLM_DIAG_MSG_MAX];
				snprintf(why, sizeof why, "%s", diag->msg);
				llm_diag_set(diag, e, name, 0, "%s", why);
			}
		}
	}
	json_decref(root);
	return e;
}

enum llm_err llm_upstreams_load(struct llm_upstreams *u, const char *path, struct llm_diag *diag)
{
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(diag, LLM_ERR_IO, path, 0, "cannot open: %s", strerror(errno));
	struct llm_buf b;
	llm_buf_init(&b, 16u << 20); /* a configuration, not a data set */
	char chunk[8192];
	size_t n;
	enum llm_err e = LLM_OK;
	while (e == LLM_OK && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		e = llm_buf_append(&b, chunk, n);
	bool rerr = ferror(f);
	fclose(f);
	if (e == LLM_OK && rerr)
		e = llm_diag_set(diag, LLM_ERR_IO, path, 0, "read error");
	else if (e != LLM_OK)
		e = llm_diag_set(diag, e, path, 0, "the file is too large");
	if (e == LLM_OK)
		e = llm_upstreams_parse(u, b.data ? b.data : "", b.len, path, diag);
	llm_buf_free(&b);
	return e;
}

/* --- routing -------------------------------------------------------------------------------- */

struct llm_pool *llm_upstreams_pool(struct llm_upstreams *u, const char *model, size_t len)
{
	if (!model || len == 0)
		return u->def;
	struct llm_pool *p = find_pool(u, model, len);
	return p ? p : u->star;
}

size_t llm_upstreams_route(struct llm_upstreams *u, struct llm_pool *pool, struct llm_pool **out,
			   size_t max)
{
	(void)u;
	size_t n = 0;
	if (max == 0)
		return 0;
	out[n++] = pool;
	for (size_t k = 0; k < pool->nfb && n < max; k++) {
		bool seen = false;
		for (size_t j = 0; j < n && !seen; j++)
			seen = out[j] == pool->fb[k];
		if (!seen && pool->fb[k])
			out[n++] = pool->fb[k];
	}
	return n;
}

const char *llm_pool_name(const struct llm_pool *p)
{
	return p->name;
}

size_t llm_upstreams_npools(const struct llm_upstreams *u)
{
	return u->npools;
}

struct llm_pool *llm_upstreams_pool_at(struct llm_upstreams *u, size_t i)
{
	return i < u->npools ? u->pools[i] : NULL;
}

/* --- picking -------------------------------------------------------------------------------- */

enum pass { FIT_NEW, FIT_TRIED };

static bool avoided(const struct llm_upstream *s, struct llm_upstream *const *avoid, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (avoid[i] == s)
			return true;
	return false;
}

static bool eligible(const struct entry *e, enum pass pass, double now,
		     struct llm_upstream *const *avoid, size_t navoid)
{
	if (e->server->cooldown_until > now)
		return false;
	return avoided(e->server, avoid, navoid) == (pass == FIT_TRIED);
}

/* in-flight / weight of a below b's, exactly: a.inflight * b.weight < b.inflight * a.weight. */
static int busier(const struct entry *a, const struct entry *b)
{
	long x = (long)a->server->inflight * b->weight, y = (long)b->server->inflight * a->weight;
	return (x > y) - (x < y);
}

/* One pass over the pool: the entry balancing chooses among those eligible, or NULL. */
static struct entry *choose(struct llm_upstreams *u, struct llm_pool *p, enum pass pass, double now,
			    struct llm_upstream *const *avoid, size_t navoid)
{
	struct entry *least = NULL;
	if (u->o.balance == LLM_BALANCE_LEAST_BUSY) {
		for (size_t i = 0; i < p->n; i++)
			if (eligible(&p->e[i], pass, now, avoid, navoid) &&
			    (!least || busier(&p->e[i], least) < 0))
				least = &p->e[i];
		if (!least)
			return NULL;
	}
	/* Smooth weighted round robin over the eligible entries (the least busy ones only,
	 * under least-busy): each gains its weight, the richest is chosen and pays the total. */
	struct entry *best = NULL;
	long total = 0;
	for (size_t i = 0; i < p->n; i++) {
		struct entry *e = &p->e[i];
		if (!eligible(e, pass, now, avoid, navoid))
			continue;
		if (least && busier(e, least) != 0)
			continue;
		e->cw += e->weight;
		total += e->weight;
		if (!best || e->cw > best->cw)
			best = e;
	}
	if (best)
		best->cw -= total;
	return best;
}

bool llm_upstreams_pick(struct llm_upstreams *u, struct llm_pool *pool,
			struct llm_upstream *const *avoid, size_t navoid, unsigned flags,
			struct llm_pick *out, bool *tried_again)
{
	pthread_mutex_lock(&u->mu);
	double now = now_s(u);
	bool again = false;
	struct entry *e = choose(u, pool, FIT_NEW, now, avoid, navoid);
	if (!e) {
		e = choose(u, pool, FIT_TRIED, now, avoid, navoid);
		again = e != NULL;
	}
	if (!e && (flags & LLM_PICK_LAST_RESORT)) {
		for (size_t i = 0; i < pool->n; i++)
			if (!e || pool->e[i].server->cooldown_until < e->server->cooldown_until)
				e = &pool->e[i];
		/* Tried, or still resting: either way not a server to rush to. */
		again = e && (avoided(e->server, avoid, navoid) || e->server->cooldown_until > now);
	}
	if (e) {
		struct llm_upstream *s = e->server;
		s->inflight++;
		s->attempts++;
		out->server = s;
		out->url = s->url;
		out->model = e->model;
		out->auth = s->auth;
		out->label = s->label;
	}
	pthread_mutex_unlock(&u->mu);
	if (tried_again)
		*tried_again = again;
	return e != NULL;
}

/* A failure in a row: cooldown doubling from cooldown_s, capped; a longer hint wins. */
static void fail_locked(struct llm_upstreams *u, struct llm_upstream *s, double now, double hint)
{
	if (s->failures < 1000)
		s->failures++;
	double cd = u->o.cooldown_s * pow(2.0, s->failures - 1);
	if (hint > cd)
		cd = hint;
	if (cd > u->o.cooldown_max_s)
		cd = u->o.cooldown_max_s;
	if (now + cd > s->cooldown_until)
		s->cooldown_until = now + cd;
}

static void ok_locked(struct llm_upstreams *u, struct llm_upstream *s)
{
	s->failures = 0;
	s->cooldown_until = 0;
	s->healthy = true;
	u->ready = true;
}

void llm_upstreams_release(struct llm_upstreams *u, struct llm_upstream *s, enum llm_outcome o,
			   double hint_s)
{
	pthread_mutex_lock(&u->mu);
	double now = now_s(u);
	if (s->inflight > 0)
		s->inflight--;
	switch (o) {
	case LLM_OUTCOME_OK:
		ok_locked(u, s);
		break;
	case LLM_OUTCOME_NEUTRAL:
		u->ready = true;
		break;
	case LLM_OUTCOME_FAILED:
		s->healthy = false;
		fail_locked(u, s, now, 0);
		break;
	case LLM_OUTCOME_LIMITED:
		/* It answered, so it is up; it wants no requests for a while. */
		u->ready = true;
		fail_locked(u, s, now, isfinite(hint_s) && hint_s > 0 ? hint_s : 0);
		break;
	}
	pthread_mutex_unlock(&u->mu);
}

/* --- health --------------------------------------------------------------------------------- */

size_t llm_upstreams_due(struct llm_upstreams *u, struct llm_probe *out, size_t max, double *next_s)
{
	size_t n = 0;
	double next = INFINITY;
	pthread_mutex_lock(&u->mu);
	if (u->o.health_interval_s > 0) {
		double now = now_s(u);
		for (size_t i = 0; i < u->nservers; i++) {
			struct llm_upstream *s = u->servers[i];
			if (!s->health_url || s->probing)
				continue;
			if (s->next_probe <= now && n < max) {
				s->probing = true;
				out[n].server = s;
				out[n].url = s->health_url;
				out[n].auth = s->auth;
				out[n].label = s->label;
				n++;
			} else {
				double w = s->next_probe - now;
				next = fmin(next, w > 0 ? w : 0);
			}
		}
	}
	pthread_mutex_unlock(&u->mu);
	if (next_s)
		*next_s = next;
	return n;
}

void llm_upstreams_probed(struct llm_upstreams *u, struct llm_upstream *s, bool passed)
{
	pthread_mutex_lock(&u->mu);
	double now = now_s(u);
	s->probing = false;
	s->next_probe = now + u->o.health_interval_s;
	if (passed) {
		ok_locked(u, s);
	} else {
		s->healthy = false;
		fail_locked(u, s, now, 0);
	}
	pthread_mutex_unlock(&u->mu);
}

/* --- state ---------------------------------------------------------------------------------- */

size_t llm_upstreams_nservers(const struct llm_upstreams *u)
{
	return u->nservers;
}

void llm_upstreams_state(struct llm_upstreams *u, size_t i, struct llm_upstream_state *out)
{
	memset(out, 0, sizeof *out);
	if (i >= u->nservers)
		return;
	pthread_mutex_lock(&u->mu);
	struct llm_upstream *s = u->servers[i];
	double now = now_s(u);
	out->label = s->label;
	out->url = s->url;
	out->inflight = s->inflight;
	out->failures = s->failures;
	out->cooldown_s = s->cooldown_until > now ? s->cooldown_until - now : 0;
	out->healthy = s->healthy;
	out->attempts = s->attempts;
	pthread_mutex_unlock(&u->mu);
}

bool llm_upstreams_ready(struct llm_upstreams *u)
{
	pthread_mutex_lock(&u->mu);
	bool r = u->ready;
	pthread_mutex_unlock(&u->mu);
	return r;
}
