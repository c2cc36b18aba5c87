/* What the parts of llm-serve share: the server's state (the HTTP layer, keys, limits, metrics
 * and the request log), the checks every API request goes through, and the two modes that
 * answer the model routes: a local model through lib/backend's engine (cmd/serve/local.c) and
 * the gateway to upstream servers (cmd/serve/gateway.c). */
#ifndef LLM_CMD_SERVE_SERVE_H
#define LLM_CMD_SERVE_SERVE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "cli.h"
#include "serve/httpd.h"
#include "serve/keys.h"
#include "serve/limits.h"
#include "serve/metrics.h"
#include "serve/reqlog.h"

struct serve_local;	   /* local.c's state */
struct serve_gateway;	   /* gateway.c's state */
struct serve_refresh;	   /* refresh.c's state */
struct serve_guard_config; /* guard.c's settings */
struct serve_guard;	   /* guard.c: one request's findings */

struct serve {
	struct llm_cli *c;
	struct llm_httpd *httpd;
	struct llm_keys *keys;	   /* NULL: no key needed */
	struct llm_limits *limits; /* NULL: no limits */
	struct llm_metrics *registry;
	struct llm_serve_metrics m;
	struct llm_reqlog *log; /* NULL: no log */
	const char *model_name; /* the name clients call the model by */
	int64_t started;	/* Unix seconds, for /v1/models */
	atomic_bool ready;	/* the model is loaded (or an upstream answered) */
	atomic_bool draining;	/* SIGTERM: finishing what is under way */
	atomic_bool failed;	/* the model could not be loaded: the server must stop */
	struct llm_diag fail_diag;
	struct serve_local *local;     /* the model new requests go to */
	pthread_mutex_t local_mu;      /* local.c: guards local when a refresh replaces it */
	struct serve_refresh *refresh; /* NULL: the model does not move */
	struct serve_gateway *gateway;
	struct serve_guard_config *guard; /* guard.c: --guard-input/--guard-output; NULL: none */
};

/* Who is calling, after the checks. */
struct serve_caller {
	bool has_key;
	struct llm_key key;		  /* when has_key */
	char client[LLM_KEY_ID_MAX + 48]; /* the limits' client: the key id, or "ip:ADDR" */
	char request_id[LLM_REQLOG_ID_MAX];
};

/* The first check of every API request: a request id, and the key (401 without a good one
 * when --api-keys is set).  Fills who; on failure the request has been answered (and logged)
 * and false is returned. */
bool serve_admit(struct serve *S, struct llm_httpd_req *r, struct serve_caller *who);

/* The model name the body asks for, when it names one: 404 model_not_found for another name,
 * 403 when the key may not call it.  False (answered and logged) on failure. */
bool serve_check_model(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		       const json_t *body);

/* Take the rate limits for a request of est_tokens.  On refusal answers 429 with Retry-After
 * (and logs it) and returns false; ticket is then inactive. */
bool serve_limit(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		 int64_t est_tokens, struct llm_limit_ticket *ticket);

/* Answer an error in the OpenAI shape with x-request-id, write its log record, and count it. */
void serve_fail(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		int status, const char *type, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 7, 8)));

/* Parse a request body as a JSON object; on failure answers 400 (and logs it), NULL. */
json_t *serve_body_json(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who);

/* Write a log record (when there is a log) and count the request in the metrics. */
void serve_record(struct serve *S, const struct llm_reqlog_record *rec);
/* The record of a request answered at once, with status: its arrival time, the latency to now,
 * the caller's ids, no time to first token and no usage.  The caller adds the rest. */
void serve_record_init(const struct serve *S, struct llm_httpd_req *r,
		       const struct serve_caller *who, int status, struct llm_reqlog_record *rec);

/* --- modes ---------------------------------------------------------------------------------- */

/* Local model: register the routes, start the worker that loads the model (S->ready when it is
 * in) and owns the backend.  cmd/serve/local.c. */
int serve_local_start(struct serve *S);
/* Requests taken and not yet finished (queued, decoding, or waiting for their log record). */
size_t serve_local_busy(struct serve *S);
/* Cancel everything under way (a second signal, or the drain timeout). */
void serve_local_abort(struct serve *S);
void serve_local_stop(struct serve *S);

/* Model refresh.  A registry version as served: what the backend opens, and what /v1/models
 * and the log report. */
struct serve_version {
	char *ref;	/* registry:NAME@VERSION */
	char *root;	/* NAME@VERSION */
	char *version;	/* VERSION */
	char *artifact; /* the artifact's identity, sha256:HEX */
};
void serve_version_clear(struct serve_version *v);

/* Load v beside the model that answers (a second worker with its own backend) and wait for
 * the outcome: on success new requests go to it, while the model before finishes those it
 * took and closes its backend when the last one ends; on failure nothing changed and d says
 * why.  local.c. */
enum llm_err serve_local_switch(struct serve *S, const struct serve_version *v, struct llm_diag *d);

/* Follow a registry:NAME@ALIAS model (refresh.c).  serve_local_start calls it before the first
 * load: it checks --watch, resolves a registry reference into v (v->ref stays NULL for another
 * kind), and when the reference can move starts the thread that resolves it again on
 * serve_refresh_poke (SIGHUP) and every --watch seconds.  Returns 0, or an exit status after
 * saying why. */
int serve_refresh_start(struct serve *S, struct serve_version *v);
void serve_refresh_poke(struct serve *S);
/* Called by serve_local_stop: after it no switch happens. */
void serve_refresh_stop(struct serve *S);

/* Gateway mode (a --model URL, --upstream or --config): register the routes and start the
 * forwarding.  cmd/serve/gateway.c.  Returns 0, or an exit status after reporting why. */
int serve_gateway_start(struct serve *S);
size_t serve_gateway_busy(struct serve *S);
void serve_gateway_stop(struct serve *S);

/* Add the routes every mode has: /health, /ready, /metrics, /v1/feedback. */
int serve_common_routes(struct serve *S);

/* --- the guard (cmd/serve/guard.c) ----------------------------------------------------------- */

/* Read --guard-input and --guard-output (S->guard stays NULL when both are none). */
int serve_guard_setup(struct serve *S);
void serve_guard_stop(struct serve *S);
/* Check a request's prompt texts (body: the parsed request) under --guard-input: findings go
 * to *g (allocated on the first one), redact rewrites body in place.  False when the request
 * has been answered (400 guard_refused, or 500) and logged. */
bool serve_guard_input(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		       json_t *body, bool chat, struct serve_guard **g);
/* The same for a raw body (gateway mode): under redact, *body and *len may come to point to a
 * rewritten body in *owned, which the caller frees once the body has been handed on. */
bool serve_guard_body(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		      bool chat, const char **body, size_t *len, struct serve_guard **g,
		      char **owned);
/* Check an answer under --guard-output: root is the whole answer (NULL for a stream, which
 * has gone out), logged the first choice's text as the log keeps it; redact rewrites both. */
void serve_guard_output(struct serve *S, struct serve_guard **g, json_t *root, bool chat,
			struct llm_buf *logged);
/* Flag (never change) an answer's text that has gone out already (gateway mode). */
void serve_guard_output_text(struct serve *S, struct serve_guard **g, const char *text,
			     size_t len);
/* Point the record's flags at g's findings (g may be NULL), valid until g is freed. */
void serve_guard_log(struct serve_guard *g, struct llm_reqlog_record *rec);
void serve_guard_free(struct serve_guard *g);

extern const struct llm_opt serve_guard_opts[];
extern const struct llm_opt serve_local_opts[];
extern const struct llm_opt serve_gateway_opts[];

#endif
