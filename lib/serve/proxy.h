/* The gateway's forwarding: a request to llm-serve's /v1/chat/completions or /v1/completions
 * goes to an upstream OpenAI-compatible server chosen by lib/serve/upstream.h, and the answer
 * comes back to the client through lib/serve/httpd.h.
 *
 * One thread of its own runs every upstream transfer on a libcurl multi handle (connections
 * kept alive and reused), the health probes, the retry timers and the timeouts; server threads
 * only hand requests over.  Per request:
 *
 *   - The body's "model" picks the pool (404 model_not_found when no pool serves it); the
 *     upstream's model name replaces it when the pool says so.  The body is otherwise sent as
 *     it came, except that a stream asks for stream_options.include_usage, so the usage is
 *     known for the log and the limits; the usage chunk is passed on only to a client that
 *     asked for it.  The client's Authorization never goes upstream: the upstream's own key
 *     (from its key_env) does, and it is never logged.
 *   - Failures before any byte went to the client are retried as openai-python retries (408,
 *     409, 429, 5xx, a connection error, a timeout; x-should-retry first; never a 429
 *     insufficient_quota): on another server of the pool at once when there is one fit, else
 *     on the same server after its hint (retry-after-ms, retry-after in seconds or as an HTTP
 *     date, when 0 < hint <= max_retry_wait_s) or a backoff of min(0.5 * 2^n, 8) s less up to
 *     25 % jitter.  A longer hint, spent retries, a 401/403 (the gateway's key), or a pool with
 *     no server fit moves the request to the next pool of its fallback list.  What no pool
 *     could answer gets the last upstream's error (status and body), or 502/504 when no
 *     answer came at all.  Other 4xx answers are the request's fault and are passed on as
 *     they are.
 *   - A stream is held back until its first token (a content delta, or a finish_reason): a
 *     stream that breaks before it (a dropped connection, an error event, a timeout, the end
 *     with no finish_reason and no [DONE]) is a failure like any other and is retried or falls
 *     back, invisibly to the client.  After the first token the stream is relayed event by
 *     event as it arrives; a break then ends the client's stream with an error event in
 *     OpenAI's shape and no [DONE] (a second answer would duplicate text already shown).
 *   - A client that goes away cancels the upstream transfer at once (the connection to the
 *     upstream is closed, which is how vLLM and llama.cpp learn to stop generating).
 *   - timeout_s bounds each attempt until its first token (a stream) or its whole answer (not
 *     streamed); after the first token it bounds the silence between two reads.
 *
 * When the request has ended, the done callback runs once, on the proxy's thread, with what
 * the log and the limits need; the request's httpd data and close callback are the proxy's.
 *
 * Nothing here prints or exits. */
#ifndef LLM_SERVE_PROXY_H
#define LLM_SERVE_PROXY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "core/err.h"
#include "serve/httpd.h"
#include "serve/metrics.h"
#include "serve/upstream.h"

struct llm_proxy_opts {
	struct llm_upstreams *upstreams;   /* required; checked (llm_upstreams_check) */
	struct llm_serve_metrics *metrics; /* upstream counters and gauges; NULL: none */
	int max_retries;	  /* retries within one pool after its first attempt (default 2) */
	double max_retry_wait_s;  /* the longest server hint waited for (default 20) */
	double timeout_s;	  /* see above (default 600) */
	double connect_timeout_s; /* connecting to an upstream (default 10) */
	double probe_timeout_s;	  /* a health probe's whole exchange (default 5) */
	size_t max_response; /* an upstream answer (not streamed) or one event (default 64 MiB) */
	size_t max_output;   /* output text kept for the log (default 1 MiB); 0: none */
	uint64_t seed;	     /* the backoff's jitter */
	/* Called on the proxy's thread after each health probe (passed or not); may be NULL.
	 * For a server whose /ready waits for the first upstream to answer. */
	void (*on_probe)(void *ctx, const char *label, bool passed);
	void *on_probe_ctx;
};

/* The defaults above. */
void llm_proxy_opts_init(struct llm_proxy_opts *o);

/* What became of one request, for the log, the metrics and the limits.  Valid during the done
 * callback only. */
struct llm_proxy_result {
	int status;	      /* the HTTP status the client got (200 for a stream that started,
			       * even if it broke later); 499 when the client went away first */
	bool stream;	      /* the client asked for a stream */
	bool started;	      /* a stream: its first event went to the client */
	bool client_gone;     /* the client went away before the end */
	const char *model;    /* the pool (model name) that answered or was last tried */
	const char *upstream; /* the label of the upstream last tried, NULL if none */
	const char *upstream_model; /* the "model" the upstream answered with, NULL if none */
	int attempts;		    /* attempts sent upstream */
	int retries;		    /* attempts repeated after a failure, over all pools */
	int fallbacks;		    /* moves to a fallback pool */
	double latency_ms;	    /* from llm_proxy_forward to the end */
	double ttft_ms;	       /* to the first token relayed (stream) or the answer; -1: none */
	int64_t prompt_tokens; /* from the upstream's usage; -1 when unknown */
	int64_t completion_tokens;
	const char *finish_reason; /* the first choice's, NULL when none */
	const char *output;	   /* the first choice's text (up to max_output bytes) */
	size_t output_len;
	const char *error_code; /* NULL on success */
	const char *error_message;
};

typedef void (*llm_proxy_done_fn)(void *ctx, struct llm_httpd_req *r,
				  const struct llm_proxy_result *res);

struct llm_proxy;

/* Start the proxy's thread. */
enum llm_err llm_proxy_new(struct llm_proxy **out, const struct llm_proxy_opts *o,
			   struct llm_diag *diag);
/* Stop the thread: transfers under way end (their clients get 503 or an error event, their
 * done callbacks run), then everything is freed.  Call after the server stopped taking
 * requests. */
void llm_proxy_free(struct llm_proxy *p);

/* Forward one request (call from the route's handler).  body is the client's JSON; request_id
 * (may be NULL) goes upstream as X-Request-Id.  The proxy answers r in every case: a body that
 * is not a JSON object or has a "model" that is not a string gets 400, a model no pool serves
 * 404, both at once (done runs before this returns).  ctx is passed to done. */
void llm_proxy_forward(struct llm_proxy *p, struct llm_httpd_req *r, enum llm_endpoint ep,
		       const char *body, size_t len, const char *request_id, llm_proxy_done_fn done,
		       void *ctx);

/* Requests handed over and not yet done. */
size_t llm_proxy_inflight(struct llm_proxy *p);

/* Counters since start (for /health and tests). */
struct llm_proxy_counts {
	uint64_t requests, attempts, retries, fallbacks, cancelled, probes, probes_failed;
};
void llm_proxy_counts(struct llm_proxy *p, struct llm_proxy_counts *out);

#endif
