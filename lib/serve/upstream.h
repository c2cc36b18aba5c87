/* Pools of upstream OpenAI-compatible servers for llm-serve's gateway mode: which server a
 * request goes to, and which servers are fit to take one.
 *
 * A pool is a model name as clients call it ("chat-large", or "*" for any name) mapped to a
 * list of upstreams, each a base URL (http(s)://host:port/v1) with a weight, the model name to
 * send in its place (NULL: the client's, unchanged) and the environment variable that holds its
 * API key.  A pool may name fallback pools, tried in order when the pool itself cannot answer.
 * The same URL with the same key in several pools is one server: it has one in-flight count,
 * one cooldown and one health probe.
 *
 * Balancing, inside a pool, over the servers that are not cooling down:
 *   weighted    smooth weighted round robin (nginx's): over any run of picks each upstream's
 *               share is its weight's share, spread out rather than in bursts;
 *   least-busy  the upstreams with the fewest requests in flight for their weight
 *               (in-flight / weight, compared exactly), ties broken by the same weighted round
 *               robin, so an idle pool still spreads by weight.  The default.
 * A failed attempt (a connection error, a timeout, a 5xx, a 429) puts its server in cooldown
 * for cooldown_s, doubling with each failure in a row up to cooldown_max_s; a 429's retry hint
 * sets the cooldown when it is longer.  A success, or a health probe that passes, ends it.
 * Health probes (GET BASE/models by default, or the path configured: never a completion, so
 * never a paid call) are scheduled here and sent by the caller (lib/serve/proxy.c); a probe
 * that fails counts as a failure.
 *
 * The configuration file (--config), JSON:
 *
 *     {"models": {
 *        "chat": {"upstreams": [{"url": "http://10.0.0.5:8000/v1", "weight": 3,
 *                                "model": "meta-llama/Llama-3.1-8B-Instruct"},
 *                               {"url": "https://api.example.com/v1", "weight": 1,
 *                                "model": "gpt-4o-mini", "key_env": "EXAMPLE_API_KEY",
 *                                "health": "/models"}],
 *                 "fallback": ["small"]},
 *        "small": {"upstreams": [{"url": "http://127.0.0.1:8081/v1"}]}},
 *      "default_model": "chat"}
 *
 * models maps names to pools (at least one); a pool has upstreams (at least one) and an
 * optional fallback list of other pools' names (not followed transitively: only the pool's own
 * list).  An upstream has url (required), weight (integer 1..1000, default 1), model, key_env
 * (an environment variable name; it must be set when the file is loaded) and health (the probe
 * path below the URL, default "/models"; "" turns the probe off for that server).  default_model
 * is the pool for requests with no "model" (default: the first pool).  Unknown fields are
 * errors, so a typo is never silently ignored.  Keys are read from the environment once, held
 * only in the Authorization header given to the caller, wiped on free, and never in a message.
 *
 * Thread-safe: one mutex guards the state of every server; picks, releases and probe results
 * may come from any thread.  Time comes from an injectable clock, so tests need no sleeping.
 * Nothing here prints or exits. */
#ifndef LLM_SERVE_UPSTREAM_H
#define LLM_SERVE_UPSTREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_UPSTREAM_WEIGHT_MAX 1000
/* How many pools one request may go through: its own and its fallbacks. */
#define LLM_UPSTREAM_ROUTE_MAX 16

enum llm_balance {
	LLM_BALANCE_LEAST_BUSY = 0,
	LLM_BALANCE_WEIGHTED = 1,
};

struct llm_upstreams_opts {
	enum llm_balance balance;
	double cooldown_s;	    /* after the first failure in a row; default 1 */
	double cooldown_max_s;	    /* the cap on the doubling; default 60 */
	double health_interval_s;   /* between probes of one server; 0: no probes; default 10 */
	double (*clock)(void *ctx); /* seconds, monotonic; NULL: CLOCK_MONOTONIC */
	void *clock_ctx;
};

void llm_upstreams_opts_init(struct llm_upstreams_opts *o);

struct llm_upstreams; /* the whole set */
struct llm_pool;      /* one model name's upstreams */
struct llm_upstream;  /* one server */

enum llm_err llm_upstreams_new(struct llm_upstreams **out, const struct llm_upstreams_opts *o,
			       struct llm_diag *diag);
void llm_upstreams_free(struct llm_upstreams *u);

/* Add an upstream to the pool named pool (made when new).  weight 1..LLM_UPSTREAM_WEIGHT_MAX;
 * model, key_env and health as in the file (NULL for the defaults; key_env names a variable
 * that must be set and non-empty).  LLM_ERR_USAGE for a URL that is not http(s)://host...,
 * a bad weight, a missing key variable. */
enum llm_err llm_upstreams_add(struct llm_upstreams *u, const char *pool, const char *url,
			       int weight, const char *model, const char *key_env,
			       const char *health, struct llm_diag *diag);

/* Add "URL[,WEIGHT]" (the --upstream option) to pool, with the key from key_env (NULL: none). */
enum llm_err llm_upstreams_add_spec(struct llm_upstreams *u, const char *pool, const char *spec,
				    const char *key_env, struct llm_diag *diag);

/* Add a fallback pool name to pool's list (checked by llm_upstreams_check). */
enum llm_err llm_upstreams_add_fallback(struct llm_upstreams *u, const char *pool,
					const char *fallback, struct llm_diag *diag);

/* Load a configuration file as above, adding its pools.  Errors name the file and the field. */
enum llm_err llm_upstreams_load(struct llm_upstreams *u, const char *path, struct llm_diag *diag);
/* The same from text in memory; name is what messages call it. */
enum llm_err llm_upstreams_parse(struct llm_upstreams *u, const char *text, size_t n,
				 const char *name, struct llm_diag *diag);

/* Set the pool for requests without a model (default: the first pool added). */
enum llm_err llm_upstreams_set_default(struct llm_upstreams *u, const char *pool,
				       struct llm_diag *diag);

/* Check the whole: at least one pool, every fallback names a pool other than its own.  Call
 * once after adding everything and before any pick. */
enum llm_err llm_upstreams_check(struct llm_upstreams *u, struct llm_diag *diag);

/* --- routing -------------------------------------------------------------------------------- */

/* The pool for a model name as a client sent it: the pool of that exact name, else a "*" pool,
 * else NULL (the server answers 404).  NULL or "" gives the default pool. */
struct llm_pool *llm_upstreams_pool(struct llm_upstreams *u, const char *model, size_t len);

/* The pools a request for pool goes through, in order: pool itself, then its fallbacks (each
 * once).  Returns how many (>= 1) were put in out[0..max). */
size_t llm_upstreams_route(struct llm_upstreams *u, struct llm_pool *pool, struct llm_pool **out,
			   size_t max);

const char *llm_pool_name(const struct llm_pool *p);
/* The pools, in the order they were added (for /v1/models). */
size_t llm_upstreams_npools(const struct llm_upstreams *u);
struct llm_pool *llm_upstreams_pool_at(struct llm_upstreams *u, size_t i);

/* --- picking -------------------------------------------------------------------------------- */

/* Where one attempt goes.  The strings live as long as the set. */
struct llm_pick {
	struct llm_upstream *server;
	const char *url;   /* the base URL, without a trailing '/' */
	const char *model; /* the model name to send; NULL: the client's */
	const char *auth;  /* "Authorization: Bearer KEY" for curl, or NULL; never to be logged */
	const char *label; /* scheme://host:port, for logs and metric labels */
};

enum llm_pick_flags {
	/* When every server of the pool is cooling down (or avoided), take the one whose cooldown
	 * ends first rather than none: a last resort better than refusing. */
	LLM_PICK_LAST_RESORT = 1,
};

/* Choose a server of pool for one attempt and count it in flight (until llm_upstreams_release).
 * Servers in avoid[0..navoid) (those a request already tried) are taken only when no other
 * server is fit.  Returns false when no server is fit (all cooling down), unless the flag says
 * otherwise.  *tried_again is set when the pick is one of avoid or, as a last resort, a server
 * still cooling down: a pick the caller should delay (by the retry's backoff or hint). */
bool llm_upstreams_pick(struct llm_upstreams *u, struct llm_pool *pool,
			struct llm_upstream *const *avoid, size_t navoid, unsigned flags,
			struct llm_pick *out, bool *tried_again);

enum llm_outcome {
	LLM_OUTCOME_OK = 0,	 /* the server answered (2xx) */
	LLM_OUTCOME_NEUTRAL = 1, /* the server answered, the fault was the request's (400, 404, a
				  * client that left): says nothing about the server */
	LLM_OUTCOME_FAILED = 2,	 /* a connection error, a timeout, a 5xx, a broken stream */
	LLM_OUTCOME_LIMITED = 3, /* a 429: cooldown for hint_s when it is longer than the usual */
};

/* End an attempt: no longer in flight, and the outcome moves the server's cooldown. */
void llm_upstreams_release(struct llm_upstreams *u, struct llm_upstream *s, enum llm_outcome o,
			   double hint_s);

/* --- health --------------------------------------------------------------------------------- */

/* A probe to send: GET url (BASE + the health path). */
struct llm_probe {
	struct llm_upstream *server;
	const char *url;
	const char *auth;
	const char *label;
};

/* The servers whose probe is due now, at most max, each marked as being probed (it is not due
 * again until its result comes).  *next_s is set to the seconds until the next one falls due
 * (INFINITY when probes are off). */
size_t llm_upstreams_due(struct llm_upstreams *u, struct llm_probe *out, size_t max,
			 double *next_s);
/* A probe's result: passed (a 2xx) ends the server's cooldown and its failure count; failed
 * counts as a failure.  The next probe is due health_interval_s later. */
void llm_upstreams_probed(struct llm_upstreams *u, struct llm_upstream *s, bool passed);

/* --- state, for /ready, /metrics and tests ------------------------------------------------ */

struct llm_upstream_state {
	const char *label;
	const char *url;
	int inflight;
	int failures;	   /* failures in a row */
	double cooldown_s; /* seconds of cooldown left; 0 when fit */
	bool healthy;	   /* the last probe or attempt passed (true before any) */
	uint64_t attempts; /* attempts sent */
};

size_t llm_upstreams_nservers(const struct llm_upstreams *u);
/* The state of server i (0..nservers-1) now. */
void llm_upstreams_state(struct llm_upstreams *u, size_t i, struct llm_upstream_state *out);
/* True once any server answered an attempt or a probe (for /ready in gateway mode). */
bool llm_upstreams_ready(struct llm_upstreams *u);

/* The label of a URL: scheme://host[:port], without user, password, path or query. */
void llm_upstream_label(const char *url, char *out, size_t outsz);

#endif
