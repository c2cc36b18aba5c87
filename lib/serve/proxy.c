/* The gateway's forwarding (see proxy.h): one thread, one libcurl multi handle.
 *
 * A request (struct preq) is made on a server thread by llm_proxy_forward and handed to the
 * proxy's thread through the submit queue; from then on only the proxy's thread touches its
 * transfer state.  The server's close callback can run at any time on a server thread: it
 * only sets `gone` and queues the request on the cancel queue.  A preq holds two references,
 * the proxy's (dropped when done has run) and the close callback's (dropped there), and goes
 * back to a process-wide free list when both are gone, so a proxy freed before the server
 * leaves nothing dangling.
 *
 * The hot path allocates little: preqs, their buffers and curl's easy handles are reused, the
 * body goes upstream with two members spliced rather than re-serialized, and the per-server
 * header lists are built once. */
#include "config.h"

#include "serve/proxy.h"
#include "backend/retry.h"
#include "backend/sse.h"
#include "core/buf.h"
#include "core/json.h"
#include "core/rand.h"

#include <ctype.h>
#include <curl/curl.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* Servers a request remembers having tried (to prefer others on a retry). */
#define TRIED_MAX 16
/* Probes started per loop at most, and the slack in checking timeouts. */
#define PROBES_MAX   16
#define TIMEOUT_TICK 0.05
#define POLL_MAX_MS  1000
/* Reused preqs kept, and the buffer capacity one may keep when it goes back. */
#define FREE_MAX    1024
#define KEEP_CAP    (16u << 10)
#define BODY_IN_MAX (64u << 20)

enum kind { K_REQ, K_PROBE };

struct llm_proxy;

struct preq {
	enum kind kind;		  /* first: CURLOPT_PRIVATE points at either kind */
	struct preq *next, *prev; /* in running or backoff */
	struct preq *qnext;	  /* in the submit, cancel or free queue */
	struct llm_proxy *p;
	struct llm_httpd_req *r;
	atomic_int refs;
	atomic_bool gone;     /* the client went away (set by the close callback) */
	atomic_bool finished; /* done has run */
	bool in_running, in_backoff;

	enum llm_endpoint ep;
	llm_proxy_done_fn done;
	void *ctx;
	char rid_header[80];
	struct curl_slist rid_node;

	/* The client's body: model as sent, the other members (without model and
	 * stream_options) as one text, and stream_options rebuilt with include_usage. */
	struct llm_buf model_in; /* decoded model name, "" when absent */
	bool has_model;
	struct llm_buf rest; /* members, comma-separated, no braces */
	struct llm_buf so;   /* stream_options object text (stream only) */
	bool stream, client_usage;

	/* Routing. */
	struct llm_pool *route[LLM_UPSTREAM_ROUTE_MAX];
	size_t nroute, ri;
	int tries_in_pool;
	struct llm_upstream *tried[TRIED_MAX];
	size_t ntried;
	bool picked_any;

	/* The attempt under way. */
	CURL *easy;
	struct llm_pick pick;
	bool has_pick;
	struct llm_buf up_body;
	long status;
	bool decided, sse, committed, done_seen, finish_seen, broken_after;
	struct llm_retry_headers hd; /* retry hints and content type */
	struct llm_buf raw; /* a body not streamed */
	struct llm_sse parser;
	struct llm_buf pending; /* framed events held before the first token */
	struct llm_buf relay;	/* framed events to push after this read */
	bool stop;		/* a body callback stopped the transfer */
	bool stop_retry;
	char stop_code[64];
	char stop_msg[256];
	double t0, attempt_t0, deadline, not_before;

	/* What the client gets told when everything fails. */
	int last_status; /* an upstream HTTP error kept to pass on; 0: none */
	struct llm_buf last_body;
	char last_ctype[128];
	char last_retry_after[128];
	char err_code[64];
	char err_msg[512];

	/* For the result. */
	struct llm_buf output;
	char finish_reason[32];
	char upstream_model[128];
	int64_t prompt_tokens, completion_tokens;
	double ttft_ms;
	int attempts, retries, fallbacks;
	int final_status;
	bool client_gone;
};

struct probe {
	enum kind kind;
	struct probe *next;
	struct llm_probe pr;
	CURL *easy;
	long status;
};

struct hdrs {
	struct llm_upstream *server;
	struct curl_slist *list;
};

struct llm_proxy {
	struct llm_proxy_opts o;
	struct llm_upstreams *u;
	struct llm_serve_metrics *m;
	CURLM *multi;
	pthread_t thread;
	bool thread_on;

	pthread_mutex_t mu; /* the submit and cancel queues, stopping */
	struct preq *submit_head, *submit_tail;
	struct preq *cancel_head;
	bool stopping;

	/* The proxy thread's own. */
	struct preq *running, *backoff;
	struct probe *probes;
	struct hdrs *hdrs;
	size_t nhdrs;
	struct curl_slist *probe_base;
	CURL **easy_free;
	size_t neasy_free, easy_cap;
	struct llm_rand rng;
	double next_timeout_check;

	atomic_size_t inflight;
	atomic_uint_fast64_t c_requests, c_attempts, c_retries, c_fallbacks, c_cancelled, c_probes,
	    c_probes_failed;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void llm_proxy_opts_init(struct llm_proxy_opts *o)
{
	memset(o, 0, sizeof *o);
	o->max_retries = 2;
	o->max_retry_wait_s = 20;
	o->timeout_s = 600;
	o->connect_timeout_s = 10;
	o->probe_timeout_s = 5;
	o->max_response = 64u << 20;
	o->max_output = 1u << 20;
}

/* --- preqs: made, reused, freed ------------------------------------------------------------- */

static pthread_mutex_t free_mu = PTHREAD_MUTEX_INITIALIZER;
static struct preq *free_list;
static size_t nfree;

static void trim(struct llm_buf *b, size_t max)
{
	if (b->cap > KEEP_CAP) {
		llm_buf_free(b);
		llm_buf_init(b, max);
	} else {
		b->max = max;
		llm_buf_clear(b);
	}
}

static void preq_destroy(struct preq *q)
{
	llm_buf_free(&q->model_in);
	llm_buf_free(&q->rest);
	llm_buf_free(&q->so);
	llm_buf_free(&q->up_body);
	llm_buf_free(&q->raw);
	llm_sse_free(&q->parser);
	llm_buf_free(&q->pending);
	llm_buf_free(&q->relay);
	llm_buf_free(&q->last_body);
	llm_buf_free(&q->output);
	free(q);
}

/* A clean preq; NULL when memory ran out. */
static struct preq *preq_get(const struct llm_proxy_opts *o)
{
	pthread_mutex_lock(&free_mu);
	struct preq *q = free_list;
	if (q) {
		free_list = q->qnext;
		nfree--;
	}
	pthread_mutex_unlock(&free_mu);
	size_t resp_max = o->max_response;
	if (!q) {
		q = calloc(1, sizeof *q);
		if (!q)
			return NULL;
		llm_buf_init(&q->model_in, 4096);
		llm_buf_init(&q->rest, BODY_IN_MAX);
		llm_buf_init(&q->so, 1u << 20);
		llm_buf_init(&q->up_body, BODY_IN_MAX);
		llm_buf_init(&q->raw, resp_max);
		llm_sse_init(&q->parser, resp_max);
		llm_buf_init(&q->pending, resp_max);
		llm_buf_init(&q->relay, resp_max);
		llm_buf_init(&q->last_body, 64u << 10);
		llm_buf_init(&q->output, o->max_output);
	} else {
		trim(&q->model_in, 4096);
		trim(&q->rest, BODY_IN_MAX);
		trim(&q->so, 1u << 20);
		trim(&q->up_body, BODY_IN_MAX);
		trim(&q->raw, resp_max);
		if (q->parser.line.cap > KEEP_CAP || q->parser.data.cap > KEEP_CAP) {
			llm_sse_free(&q->parser);
			llm_sse_init(&q->parser, resp_max);
		} else {
			llm_sse_reset(&q->parser);
			q->parser.max_event = resp_max;
		}
		trim(&q->pending, resp_max);
		trim(&q->relay, resp_max);
		trim(&q->last_body, 64u << 10);
		trim(&q->output, o->max_output);
	}
	/* Zero the scalar state between the buffers' keeping. */
	q->kind = K_REQ;
	q->next = q->prev = q->qnext = NULL;
	q->p = NULL;
	q->r = NULL;
	atomic_init(&q->refs, 0);
	atomic_init(&q->gone, false);
	atomic_init(&q->finished, false);
	q->in_running = q->in_backoff = false;
	q->done = NULL;
	q->ctx = NULL;
	q->rid_header[0] = '\0';
	q->has_model = q->stream = q->client_usage = false;
	q->nroute = q->ri = 0;
	q->tries_in_pool = 0;
	q->ntried = 0;
	q->picked_any = false;
	q->easy = NULL;
	q->has_pick = false;
	q->last_status = 0;
	q->last_ctype[0] = q->last_retry_after[0] = '\0';
	q->err_code[0] = q->err_msg[0] = '\0';
	q->finish_reason[0] = q->upstream_model[0] = '\0';
	q->prompt_tokens = q->completion_tokens = -1;
	q->ttft_ms = -1;
	q->attempts = q->retries = q->fallbacks = 0;
	q->final_status = 0;
	q->client_gone = false;
	q->committed = false;
	return q;
}

static void preq_unref(struct preq *q)
{
	if (atomic_fetch_sub(&q->refs, 1) != 1)
		return;
	pthread_mutex_lock(&free_mu);
	bool keep = nfree < FREE_MAX;
	if (keep) {
		q->qnext = free_list;
		free_list = q;
		nfree++;
	}
	pthread_mutex_unlock(&free_mu);
	if (!keep)
		preq_destroy(q);
}

/* The members of a scanned body or answer, kept per thread between requests, freed when the
 * thread ends. */
static pthread_key_t members_key;
static pthread_once_t members_once = PTHREAD_ONCE_INIT;

static void members_free(void *v)
{
	llm_json_members_free(v);
	free(v);
}

static void members_init(void)
{
	pthread_key_create(&members_key, members_free);
}

static struct llm_json_members *thread_members(void)
{
	pthread_once(&members_once, members_init);
	struct llm_json_members *m = pthread_getspecific(members_key);
	if (!m && (m = calloc(1, sizeof *m)) && pthread_setspecific(members_key, m)) {
		free(m);
		m = NULL;
	}
	return m;
}

/* --- lists of the proxy's thread ------------------------------------------------------------ */

static void list_push(struct preq **head, struct preq *q)
{
	q->prev = NULL;
	q->next = *head;
	if (*head)
		(*head)->prev = q;
	*head = q;
}

static void list_remove(struct preq **head, struct preq *q)
{
	if (q->prev)
		q->prev->next = q->next;
	else
		*head = q->next;
	if (q->next)
		q->next->prev = q->prev;
	q->next = q->prev = NULL;
}

/* --- easy handles and header lists ---------------------------------------------------------- */

static CURL *easy_get(struct llm_proxy *p)
{
	if (p->neasy_free > 0) {
		CURL *e = p->easy_free[--p->neasy_free];
		curl_easy_reset(e);
		return e;
	}
	return curl_easy_init();
}

static void easy_put(struct llm_proxy *p, CURL *e)
{
	curl_multi_remove_handle(p->multi, e);
	if (p->neasy_free == p->easy_cap) {
		size_t cap = p->easy_cap ? p->easy_cap * 2 : 64;
		CURL **v = cap <= 65536 ? realloc(p->easy_free, cap * sizeof *v) : NULL;
		if (!v) {
			curl_easy_cleanup(e);
			return;
		}
		p->easy_free = v;
		p->easy_cap = cap;
	}
	p->easy_free[p->neasy_free++] = e;
}

static struct curl_slist *append(struct curl_slist *l, const char *s, bool *ok)
{
	struct curl_slist *n = curl_slist_append(l, s);
	if (!n) {
		*ok = false;
		return l;
	}
	return n;
}

/* The headers every request to server s carries (its key among them), built once. */
static struct curl_slist *server_headers(struct llm_proxy *p, const struct llm_pick *pk)
{
	for (size_t i = 0; i < p->nhdrs; i++)
		if (p->hdrs[i].server == pk->server)
			return p->hdrs[i].list;
	bool ok = true;
	struct curl_slist *l = NULL;
	l = append(l, "Content-Type: application/json", &ok);
	l = append(l, "Expect:", &ok);
	if (pk->auth)
		l = append(l, pk->auth, &ok);
	struct hdrs *v = ok ? realloc(p->hdrs, (p->nhdrs + 1) * sizeof *v) : NULL;
	if (!v) {
		curl_slist_free_all(l);
		return NULL;
	}
	p->hdrs = v;
	v[p->nhdrs].server = pk->server;
	v[p->nhdrs].list = l;
	p->nhdrs++;
	return l;
}

static void free_headers(struct curl_slist *l)
{
	/* An Authorization line holds a key: wipe it before the memory goes back. */
	for (struct curl_slist *s = l; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(l);
}

/* --- metrics -------------------------------------------------------------------------------- */

static void count_attempt(struct llm_proxy *p, const char *label, long status)
{
	if (!p->m)
		return;
	char st[24];
	if (status > 0)
		snprintf(st, sizeof st, "%ld", status);
	else
		snprintf(st, sizeof st, "error");
	const char *v[] = {label, st};
	llm_metric_add(p->m->upstream_requests, v, 1);
}

static void count_retry(struct llm_proxy *p, const char *label)
{
	atomic_fetch_add(&p->c_retries, 1);
	if (p->m) {
		const char *v[] = {label};
		llm_metric_add(p->m->upstream_retries, v, 1);
	}
}

static void count_fallback(struct llm_proxy *p, const char *model)
{
	atomic_fetch_add(&p->c_fallbacks, 1);
	if (p->m) {
		const char *v[] = {model};
		llm_metric_add(p->m->upstream_fallbacks, v, 1);
	}
}

static void set_healthy(struct llm_proxy *p, const char *label, bool up)
{
	if (p->m) {
		const char *v[] = {label};
		llm_metric_set(p->m->upstream_healthy, v, up ? 1 : 0);
	}
}

/* --- the end of a request ------------------------------------------------------------------- */

static void set_error(struct preq *q, const char *code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void set_error(struct preq *q, const char *code, const char *fmt, ...)
{
	snprintf(q->err_code, sizeof q->err_code, "%s", code);
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(q->err_msg, sizeof q->err_msg, fmt, ap);
	va_end(ap);
}

/* Run done, let go of the server's request and the proxy's reference. */
static void finish(struct llm_proxy *p, struct preq *q)
{
	struct llm_proxy_result res = {0};
	res.status = q->final_status;
	res.stream = q->stream;
	res.started = q->committed;
	res.client_gone = q->client_gone;
	struct llm_pool *pool =
	    q->nroute ? q->route[q->ri < q->nroute ? q->ri : q->nroute - 1] : NULL;
	res.model = pool ? llm_pool_name(pool) : (q->model_in.len ? q->model_in.data : NULL);
	if (res.model && !strcmp(res.model, "*"))
		res.model = q->model_in.len ? q->model_in.data : NULL;
	res.upstream = q->has_pick ? q->pick.label : NULL;
	res.upstream_model = q->upstream_model[0] ? q->upstream_model : NULL;
	res.attempts = q->attempts;
	res.retries = q->retries;
	res.fallbacks = q->fallbacks;
	res.latency_ms = (now_s() - q->t0) * 1000.0;
	res.ttft_ms = q->ttft_ms;
	res.prompt_tokens = q->prompt_tokens;
	res.completion_tokens = q->completion_tokens;
	res.finish_reason = q->finish_reason[0] ? q->finish_reason : NULL;
	res.output = q->output.data ? q->output.data : "";
	res.output_len = q->output.len;
	res.error_code = q->err_code[0] ? q->err_code : NULL;
	res.error_message = q->err_code[0] ? q->err_msg : NULL;
	if (q->done)
		q->done(q->ctx, q->r, &res);
	atomic_store(&q->finished, true);
	atomic_fetch_sub(&p->inflight, 1);
	if (q->r)
		llm_httpd_req_unref(q->r);
	q->r = NULL;
	preq_unref(q);
}

/* Answer with an error in OpenAI's shape (not streamed yet), and finish. */
static void fail_reply(struct llm_proxy *p, struct preq *q, int status, const char *type,
		       const char *code, const char *msg)
{
	if (!q->err_code[0])
		set_error(q, code, "%s", msg);
	if (!q->client_gone)
		llm_httpd_error(q->r, status, type, code, "%s", msg);
	q->final_status = q->client_gone ? 499 : status;
	finish(p, q);
}

/* A stream already under way breaks: an error event, no [DONE], the end. */
static void fail_stream(struct llm_proxy *p, struct preq *q, const char *code, const char *msg)
{
	set_error(q, code, "%s", msg);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (!q->client_gone && llm_httpd_error_body(&b, "upstream_error", code, msg) == LLM_OK) {
		llm_httpd_sse_data(q->r, b.data, b.len);
		llm_httpd_sse_end(q->r);
	}
	llm_buf_free(&b);
	q->final_status = q->client_gone ? 499 : 200;
	finish(p, q);
}

/* --- reading what comes back ---------------------------------------------------------------- */

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
	struct preq *q = ud;
	size_t n = size * nmemb;
	llm_retry_headers_line(&q->hd, line, n);
	q->status = q->hd.status;
	return n;
}

static void stop_attempt(struct preq *q, bool retry, const char *code, const char *msg)
{
	if (q->stop)
		return;
	q->stop = true;
	q->stop_retry = retry;
	snprintf(q->stop_code, sizeof q->stop_code, "%s", code);
	snprintf(q->stop_msg, sizeof q->stop_msg, "%s", msg);
}

static void keep_output(struct preq *q, json_t *text)
{
	if (!json_is_string(text) || q->output.max == 0)
		return;
	size_t n = json_string_length(text);
	size_t room = q->output.max > q->output.len ? q->output.max - q->output.len : 0;
	if (n > room) /* the log keeps a prefix (whole characters); the client gets all */
		n = llm_utf8_valid_prefix(json_string_value(text), room);
	if (n)
		llm_buf_append(&q->output, json_string_value(text), n);
}

static void keep_usage(struct preq *q, json_t *usage)
{
	json_t *pt = json_object_get(usage, "prompt_tokens");
	json_t *ct = json_object_get(usage, "completion_tokens");
	if (json_is_integer(pt))
		q->prompt_tokens = json_integer_value(pt);
	if (json_is_integer(ct))
		q->completion_tokens = json_integer_value(ct);
}

static void keep_model(struct preq *q, json_t *chunk)
{
	json_t *m = json_object_get(chunk, "model");
	if (!q->upstream_model[0] && json_is_string(m))
		snprintf(q->upstream_model, sizeof q->upstream_model, "%s", json_string_value(m));
}

static bool is_quota(json_t *err)
{
	json_t *c = json_object_get(err, "code"), *t = json_object_get(err, "type");
	return (json_is_string(c) && !strcmp(json_string_value(c), "insufficient_quota")) ||
	       (json_is_string(t) && !strcmp(json_string_value(t), "insufficient_quota"));
}

/* The first token is here (or the stream ended without one): answer the client with the
 * stream, and let go of what was held back. */
static bool commit(struct preq *q)
{
	if (q->committed)
		return true;
	q->committed = true;
	q->ttft_ms = (now_s() - q->t0) * 1000.0;
	if (!llm_httpd_sse_start(q->r))
		return false;
	if (q->pending.len && !llm_httpd_sse_raw(q->r, q->pending.data, q->pending.len))
		return false;
	llm_buf_clear(&q->pending);
	return true;
}

static enum llm_err frame(struct preq *q, const char *data, size_t n)
{
	struct llm_buf *b = q->committed ? &q->relay : &q->pending;
	if (llm_buf_append(b, "data: ", 6) || llm_buf_append(b, data, n) ||
	    llm_buf_append(b, "\n\n", 2))
		return LLM_ERR_TOO_BIG;
	return LLM_OK;
}

static enum llm_err on_event(void *ctx, const struct llm_sse_event *ev)
{
	struct preq *q = ctx;
	if (q->done_seen)
		return LLM_OK;
	if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
		q->done_seen = true;
		return frame(q, ev->data, ev->data_len);
	}
	json_t *chunk = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(chunk)) {
		json_decref(chunk);
		stop_attempt(q, true, "invalid_response",
			     "the upstream streamed an event that is not a JSON object");
		return LLM_ERR_REMOTE;
	}
	json_t *err = json_object_get(chunk, "error");
	if (err && !json_is_null(err)) {
		json_t *m = json_object_get(err, "message");
		char msg[256];
		snprintf(msg, sizeof msg, "error event in the upstream stream: %s",
			 json_is_string(m) ? json_string_value(m) : "(no message)");
		bool retry = !is_quota(err);
		json_decref(chunk);
		stop_attempt(q, retry, "upstream_stream_error", msg);
		return LLM_ERR_REMOTE;
	}
	keep_model(q, chunk);
	json_t *usage = json_object_get(chunk, "usage");
	if (json_is_object(usage))
		keep_usage(q, usage);
	json_t *choices = json_object_get(chunk, "choices");
	bool token = false;
	if (json_is_array(choices) && json_array_size(choices) == 0 && json_is_object(usage) &&
	    !q->client_usage) {
		json_decref(chunk); /* asked for by us, not by the client */
		return LLM_OK;
	}
	size_t i;
	json_t *c;
	json_array_foreach(choices, i, c)
	{
		json_t *idx = json_object_get(c, "index");
		bool first = !json_is_integer(idx) || json_integer_value(idx) == 0;
		json_t *text = q->ep == LLM_EP_CHAT
				   ? json_object_get(json_object_get(c, "delta"), "content")
				   : json_object_get(c, "text");
		if (json_is_string(text) && json_string_length(text) > 0) {
			token = true;
			if (first)
				keep_output(q, text);
		}
		json_t *fr = json_object_get(c, "finish_reason");
		if (json_is_string(fr)) {
			token = true;
			q->finish_seen = true;
			if (first)
				snprintf(q->finish_reason, sizeof q->finish_reason, "%s",
					 json_string_value(fr));
		}
	}
	json_decref(chunk);
	if (token && !q->committed && !commit(q)) {
		q->client_gone = true;
		return LLM_ERR_IO;
	}
	return frame(q, ev->data, ev->data_len);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct preq *q = ud;
	size_t n = size * nmemb;
	if (!q->decided) {
		q->decided = true;
		q->sse = q->status >= 200 && q->status < 300 &&
			 strncasecmp(q->hd.content_type, "text/event-stream", 17) == 0;
	}
	if (atomic_load_explicit(&q->gone, memory_order_relaxed)) {
		q->client_gone = true;
		return 0;
	}
	if (!q->sse) {
		if (llm_buf_append(&q->raw, data, n) != LLM_OK) {
			stop_attempt(q, false, "upstream_too_big",
				     "the upstream's answer is larger than the limit");
			return 0;
		}
		return n;
	}
	if (q->committed && q->p->o.timeout_s > 0) /* after the first token: silence, per read */
		q->deadline = now_s() + q->p->o.timeout_s;
	enum llm_err e = llm_sse_feed(&q->parser, data, n, on_event, q);
	if (e == LLM_ERR_TOO_BIG)
		stop_attempt(q, false, "upstream_too_big", "an upstream event is too large");
	if (q->client_gone)
		return 0;
	if (q->relay.len) {
		bool ok = llm_httpd_sse_raw(q->r, q->relay.data, q->relay.len);
		llm_buf_clear(&q->relay);
		if (!ok) {
			q->client_gone = true;
			return 0;
		}
	}
	return e == LLM_OK ? n : 0;
}

/* --- attempts ------------------------------------------------------------------------------- */

static void next_attempt(struct llm_proxy *p, struct preq *q, bool retry);

/* The body for this attempt: the model the upstream wants, the stream options, the rest. */
static enum llm_err build_body(struct preq *q)
{
	struct llm_buf *b = &q->up_body;
	llm_buf_clear(b);
	const char *model = q->pick.model;
	size_t mlen = model ? strlen(model) : 0;
	const char *pool = llm_pool_name(q->route[q->ri]);
	if (!model && strcmp(pool, "*")) {
		model = pool;
		mlen = strlen(pool);
	} else if (!model && q->has_model) {
		model = q->model_in.data;
		mlen = q->model_in.len;
	}
	enum llm_err e = llm_buf_putc(b, '{');
	bool comma = false;
	if (!e && model) {
		e = llm_buf_puts(b, "\"model\":");
		if (!e)
			e = llm_buf_json_string(b, model, mlen);
		comma = true;
	}
	if (!e && q->stream) {
		if (comma)
			e = llm_buf_putc(b, ',');
		if (!e)
			e = llm_buf_puts(b, "\"stream_options\":");
		if (!e)
			e = llm_buf_append(b, q->so.data, q->so.len);
		comma = true;
	}
	if (!e && q->rest.len) {
		if (comma)
			e = llm_buf_putc(b, ',');
		if (!e)
			e = llm_buf_append(b, q->rest.data, q->rest.len);
	}
	if (!e)
		e = llm_buf_putc(b, '}');
	return e;
}

static void reset_attempt(struct preq *q)
{
	q->status = 0;
	q->decided = q->sse = q->done_seen = q->finish_seen = false;
	llm_retry_headers_reset(&q->hd);
	llm_buf_clear(&q->raw);
	llm_sse_reset(&q->parser);
	llm_buf_clear(&q->pending);
	llm_buf_clear(&q->relay);
	q->stop = q->stop_retry = false;
	q->stop_code[0] = q->stop_msg[0] = '\0';
	/* What one attempt saw of the answer does not carry to the next. */
	llm_buf_clear(&q->output);
	q->finish_reason[0] = q->upstream_model[0] = '\0';
	q->prompt_tokens = q->completion_tokens = -1;
}

static bool start_transfer(struct llm_proxy *p, struct preq *q)
{
	reset_attempt(q);
	char url[4096];
	int n = snprintf(url, sizeof url, "%s/%s", q->pick.url, llm_endpoint_path(q->ep));
	struct curl_slist *h = server_headers(p, &q->pick);
	CURL *e = (n > 0 && (size_t)n < sizeof url && h) ? easy_get(p) : NULL;
	if (!e || build_body(q) != LLM_OK) {
		if (e)
			easy_put(p, e);
		return false;
	}
	if (q->rid_header[0]) {
		q->rid_node.data = q->rid_header;
		q->rid_node.next = h;
		h = &q->rid_node;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, q->up_body.data);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->up_body.len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, q);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, q);
	curl_easy_setopt(e, CURLOPT_PRIVATE, q);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, (long)ceil(p->o.connect_timeout_s * 1000));
	if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
		easy_put(p, e);
		return false;
	}
	q->easy = e;
	q->attempt_t0 = now_s();
	q->deadline = p->o.timeout_s > 0 ? q->attempt_t0 + p->o.timeout_s : INFINITY;
	q->attempts++;
	atomic_fetch_add(&p->c_attempts, 1);
	q->in_running = true;
	list_push(&p->running, q);
	return true;
}

/* Give up: tell the client what the last upstream said, or that none answered. */
static void give_up(struct llm_proxy *p, struct preq *q)
{
	if (q->client_gone) {
		q->final_status = 499;
		finish(p, q);
		return;
	}
	if (q->last_status) {
		if (q->last_retry_after[0])
			llm_httpd_add_header(q->r, "Retry-After", q->last_retry_after);
		llm_httpd_reply(q->r, q->last_status,
				q->last_ctype[0] ? q->last_ctype : "application/json",
				q->last_body.data ? q->last_body.data : "", q->last_body.len);
		q->final_status = q->last_status;
		finish(p, q);
		return;
	}
	if (!q->err_code[0])
		set_error(q, "upstream_unavailable", "no upstream is available for this model");
	int status = !strcmp(q->err_code, "upstream_timeout") ? 504
		     : !strcmp(q->err_code, "shutting_down")  ? 503
							      : 502;
	char msg[sizeof q->err_msg];
	snprintf(msg, sizeof msg, "%s", q->err_msg);
	fail_reply(p, q, status, status == 503 ? "unavailable" : "upstream_error", q->err_code,
		   msg);
}

/* Move on to the next pool of the route, or give up. */
static void fall_back(struct llm_proxy *p, struct preq *q)
{
	if (q->ri + 1 < q->nroute) {
		q->ri++;
		q->tries_in_pool = 0;
		next_attempt(p, q, false);
		return;
	}
	give_up(p, q);
}

/* The name fallbacks are counted under: the model the client asked for. */
static const char *asked_model(const struct preq *q)
{
	const char *name = llm_pool_name(q->route[0]);
	if (!strcmp(name, "*") && q->model_in.len)
		return q->model_in.data;
	return name;
}

/* Pick a server in the current pool and start, or wait for, the attempt. */
static void next_attempt(struct llm_proxy *p, struct preq *q, bool retry)
{
	bool resort = false;
	for (;;) {
		if (atomic_load(&q->gone)) {
			q->client_gone = true;
			give_up(p, q);
			return;
		}
		struct llm_pool *pool = q->route[q->ri];
		bool again = false;
		/* A retry in a pool takes a cooling server rather than none (after the delay); a
		 * first attempt skips a pool with nothing fit, to its fallbacks; a request that
		 * finds nothing fit anywhere takes the primary's server whose cooldown ends
		 * first: a last resort better than refusing. */
		unsigned flags = retry || resort ? LLM_PICK_LAST_RESORT : 0;
		if (!llm_upstreams_pick(p->u, pool, q->tried, q->ntried, flags, &q->pick, &again)) {
			if (q->ri + 1 < q->nroute) {
				q->ri++;
				q->tries_in_pool = 0;
				retry = false;
				continue;
			}
			if (!q->picked_any && !resort) {
				q->ri = 0;
				q->tries_in_pool = 0;
				resort = true;
				continue;
			}
			give_up(p, q);
			return;
		}
		q->has_pick = true;
		q->picked_any = true;
		if (retry && again && q->not_before > now_s()) {
			/* The same server again: wait out its delay first, holding nothing. */
			llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_NEUTRAL, 0);
			q->in_backoff = true;
			list_push(&p->backoff, q);
			return;
		}
		if (q->tries_in_pool == 0 && q->ri > 0) {
			count_fallback(p, asked_model(q));
			q->fallbacks++;
		}
		q->tries_in_pool++;
		bool known = false;
		for (size_t i = 0; i < q->ntried && !known; i++)
			known = q->tried[i] == q->pick.server;
		if (!known && q->ntried < TRIED_MAX)
			q->tried[q->ntried++] = q->pick.server;
		if (start_transfer(p, q))
			return;
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_NEUTRAL, 0);
		set_error(q, "internal_error", "cannot start an upstream transfer");
		fail_reply(p, q, 500, "server_error", "internal_error",
			   "cannot start an upstream transfer");
		return;
	}
}

/* A failed attempt (nothing went to the client yet): retry, fall back or give up. */
static void attempt_failed(struct llm_proxy *p, struct preq *q, bool retryable, double hint,
			   bool has_hint)
{
	const char *label = q->pick.label;
	if (q->client_gone) {
		give_up(p, q);
		return;
	}
	if (has_hint && hint > p->o.max_retry_wait_s)
		retryable = false; /* openai-python: a longer hint, no retry */
	if (retryable && q->tries_in_pool <= p->o.max_retries) {
		count_retry(p, label);
		q->retries++;
		double delay = has_hint && hint > 0 ? hint : llm_retry_backoff(q->tries_in_pool - 1, llm_rand_double(&p->rng));
		q->not_before = now_s() + delay;
		next_attempt(p, q, true);
		return;
	}
	fall_back(p, q);
}

static void keep_last_answer(struct preq *q)
{
	q->last_status = (int)q->status;
	llm_buf_clear(&q->last_body);
	size_t n = q->raw.len < q->last_body.max ? q->raw.len : q->last_body.max;
	if (n)
		llm_buf_append(&q->last_body, q->raw.data, n);
	snprintf(q->last_ctype, sizeof q->last_ctype, "%s", q->hd.content_type);
	q->last_retry_after[0] = '\0';
	if (q->hd.have_after)
		snprintf(q->last_retry_after, sizeof q->last_retry_after, "%s", q->hd.after);
}

/* A complete non-2xx answer. */
static void failed_status(struct llm_proxy *p, struct preq *q)
{
	long st = q->status;
	json_t *root = json_loadb(q->raw.data ? q->raw.data : "", q->raw.len, JSON_ALLOW_NUL, NULL);
	json_t *err = json_object_get(root, "error");
	bool quota = is_quota(json_is_object(err) ? err : root);
	json_t *m = json_object_get(json_is_object(err) ? err : root, "message");
	char msg[256];
	snprintf(msg, sizeof msg, "upstream %s answered HTTP %ld%s%s", q->pick.label, st,
		 json_is_string(m) ? ": " : "", json_is_string(m) ? json_string_value(m) : "");
	json_decref(root);
	double hint = 0;
	bool has_hint = llm_retry_hint(&q->hd, &hint) && isfinite(hint);
	int should = llm_retry_should(&q->hd);
	bool retryable = should >= 0 ? should == 1 : llm_retry_status(st);
	if (quota)
		retryable = false;
	bool upstream_fault = retryable || st == 401 || st == 403 || quota || st >= 500;
	enum llm_outcome o = !upstream_fault	   ? LLM_OUTCOME_NEUTRAL
			     : st == 429 && !quota ? LLM_OUTCOME_LIMITED
						   : LLM_OUTCOME_FAILED;
	llm_upstreams_release(p->u, q->pick.server, o, has_hint ? hint : 0);
	if (!upstream_fault) {
		/* The request's own fault (400, 404, 413, 422, ...): the client hears it as is. */
		keep_last_answer(q);
		set_error(q, "upstream_rejected", "%s", msg);
		give_up(p, q);
		return;
	}
	if (st == 401 || st == 403) {
		/* The gateway's key, not the client's: never pass a 401 on as if it were theirs. */
		q->last_status = 0;
		set_error(q, "upstream_auth_failed", "%s (check the upstream key)", msg);
	} else {
		keep_last_answer(q);
		set_error(q, st == 429 ? "upstream_rate_limited" : "upstream_error", "%s", msg);
	}
	attempt_failed(p, q, retryable, hint, has_hint);
}

/* An answer not streamed, 2xx: pass it on. */
/* A member of the scanned answer as a jansson value (a small one: usage, choices). */
static json_t *member_json(const struct llm_json_members *ms, const char *name)
{
	const struct llm_json_member *m = llm_json_get(ms, name);
	return m ? json_loadb(m->val, m->val_len, 0, NULL) : NULL;
}

static void succeed_whole(struct llm_proxy *p, struct preq *q)
{
	/* One scan validates the answer and finds its members; only the small ones the log and
	 * the limits need become trees (the choices only when the output is kept). */
	struct llm_json_members *ms = thread_members();
	struct llm_json_fault fault;
	if (!ms || llm_json_scan(q->raw.data ? q->raw.data : "", q->raw.len, ms, &fault)) {
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_FAILED, 0);
		q->last_status = 0;
		set_error(q, "invalid_response", "upstream %s answered with something not JSON",
			  q->pick.label);
		attempt_failed(p, q, true, 0, false);
		return;
	}
	llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_OK, 0);
	const struct llm_json_member *model = llm_json_get(ms, "model");
	if (model && model->type == LLM_JSON_STRING && model->val_len < sizeof q->upstream_model &&
	    !memchr(model->val, '\\', model->val_len)) {
		/* A name with no escapes (every real one): the bytes between the quotes. */
		memcpy(q->upstream_model, model->val + 1, model->val_len - 2);
		q->upstream_model[model->val_len - 2] = '\0';
	}
	json_t *usage = member_json(ms, "usage");
	if (json_is_object(usage))
		keep_usage(q, usage);
	json_decref(usage);
	if (q->output.max > 0) {
		json_t *choices = member_json(ms, "choices");
		json_t *c0 = json_array_get(choices, 0);
		keep_output(q, q->ep == LLM_EP_CHAT
				   ? json_object_get(json_object_get(c0, "message"), "content")
				   : json_object_get(c0, "text"));
		json_t *fr = json_object_get(c0, "finish_reason");
		if (json_is_string(fr))
			snprintf(q->finish_reason, sizeof q->finish_reason, "%s",
				 json_string_value(fr));
		json_decref(choices);
	}
	q->ttft_ms = (now_s() - q->t0) * 1000.0;
	q->err_code[0] = q->err_msg[0] = '\0';
	bool ok = llm_httpd_reply(q->r, (int)q->status, q->hd.content_type[0] ? q->hd.content_type : "application/json",
				  q->raw.data, q->raw.len);
	q->final_status = ok ? (int)q->status : 499;
	q->client_gone = !ok;
	finish(p, q);
}

/* A stream that ended cleanly (or broke after its first token). */
static void end_stream(struct llm_proxy *p, struct preq *q, bool broken, const char *why)
{
	if (broken) {
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_FAILED, 0);
		fail_stream(p, q, "upstream_stream_broken", why);
		return;
	}
	llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_OK, 0);
	q->err_code[0] = q->err_msg[0] = '\0';
	bool ok = commit(q);
	if (ok && !q->done_seen)
		ok = llm_httpd_sse_raw(q->r, "data: [DONE]\n\n", 14);
	if (ok)
		llm_httpd_sse_end(q->r);
	q->client_gone = !ok;
	q->final_status = ok ? 200 : 499;
	finish(p, q);
}

static void unlink_running(struct llm_proxy *p, struct preq *q)
{
	if (q->in_running) {
		list_remove(&p->running, q);
		q->in_running = false;
	}
	if (q->easy) {
		easy_put(p, q->easy);
		q->easy = NULL;
	}
}

/* An attempt's transfer ended (rc from curl; timed_out when our own deadline cut it). */
static void attempt_done(struct llm_proxy *p, struct preq *q, CURLcode rc, bool timed_out)
{
	unlink_running(p, q);
	count_attempt(p, q->pick.label, q->status);
	char msg[512];
	if (q->client_gone || atomic_load(&q->gone)) {
		q->client_gone = true;
		atomic_fetch_add(&p->c_cancelled, 1);
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_NEUTRAL, 0);
		set_error(q, "client_gone", "the client went away");
		if (q->committed) {
			q->final_status = 499;
			finish(p, q);
		} else {
			give_up(p, q);
		}
		return;
	}
	if (q->stop) {
		if (q->committed) {
			end_stream(p, q, true, q->stop_msg);
			return;
		}
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_FAILED, 0);
		q->last_status = 0;
		set_error(q, q->stop_code, "upstream %s: %s", q->pick.label, q->stop_msg);
		attempt_failed(p, q, q->stop_retry, 0, false);
		return;
	}
	if (timed_out || (rc != CURLE_OK && !(q->sse && q->done_seen))) {
		bool to = timed_out || rc == CURLE_OPERATION_TIMEDOUT;
		snprintf(msg, sizeof msg, "upstream %s: %s%s", q->pick.label,
			 q->committed ? "the stream broke after it began: " : "",
			 timed_out ? "no answer within the timeout" : curl_easy_strerror(rc));
		if (q->committed) {
			end_stream(p, q, true, msg);
			return;
		}
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_FAILED, 0);
		q->last_status = 0;
		set_error(q, to ? "upstream_timeout" : "upstream_unavailable", "%s", msg);
		attempt_failed(p, q, true, 0, false);
		return;
	}
	if (q->status < 200 || q->status >= 300) {
		failed_status(p, q);
		return;
	}
	if (!q->sse) {
		succeed_whole(p, q);
		return;
	}
	if (!q->done_seen && !q->finish_seen) {
		snprintf(msg, sizeof msg, "upstream %s: the stream ended before its end",
			 q->pick.label);
		if (q->committed) {
			end_stream(p, q, true, msg);
			return;
		}
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_FAILED, 0);
		q->last_status = 0;
		set_error(q, "upstream_stream_broken", "%s", msg);
		attempt_failed(p, q, true, 0, false);
		return;
	}
	end_stream(p, q, false, NULL);
}

/* --- the client's body ---------------------------------------------------------------------- */

/* Split the client's body into what build_body splices.  Returns 0, or the HTTP status of a
 * bad request with its message in q->err_msg. */
static int take_body(struct preq *q, const char *body, size_t len)
{
	struct llm_json_fault fault;
	struct llm_json_members *ms = thread_members();
	if (!ms)
		return 500;
	enum llm_err e = llm_json_scan(body, len, ms, &fault);
	if (e == LLM_ERR_NOMEM)
		return 500;
	if (e != LLM_OK) {
		set_error(q, "invalid_json", "the request body is not a JSON object (byte %zu: %s)",
			  fault.offset, fault.why);
		return 400;
	}
	const struct llm_json_member *so = NULL;
	bool bad = false;
	for (size_t i = 0; i < ms->n && !bad; i++) {
		const struct llm_json_member *m = &ms->m[i];
		bool is_model = !m->key_escaped && m->key_len == 5 && !memcmp(m->key, "model", 5);
		bool is_so =
		    !m->key_escaped && m->key_len == 14 && !memcmp(m->key, "stream_options", 14);
		bool is_stream = !m->key_escaped && m->key_len == 6 && !memcmp(m->key, "stream", 6);
		if (is_model) {
			if (m->type == LLM_JSON_NULL)
				continue;
			if (m->type != LLM_JSON_STRING) {
				set_error(q, "invalid_request_error", "'model' must be a string");
				return 400;
			}
			llm_buf_clear(&q->model_in);
			if (llm_json_string_decode(m->val, m->val_len, &q->model_in) != LLM_OK) {
				set_error(q, "invalid_request_error", "'model' is too long");
				return 400;
			}
			q->has_model = q->model_in.len > 0;
			continue;
		}
		if (is_stream)
			q->stream = m->type == LLM_JSON_TRUE;
		if (is_so) {
			so = m;
			continue;
		}
		if (q->rest.len && llm_buf_putc(&q->rest, ','))
			bad = true;
		if (llm_buf_putc(&q->rest, '"') || llm_buf_append(&q->rest, m->key, m->key_len) ||
		    llm_buf_append(&q->rest, "\":", 2) ||
		    llm_buf_append(&q->rest, m->val, m->val_len))
			bad = true;
	}
	if (bad) {
		set_error(q, "invalid_request_error", "the request body is too large");
		return 413;
	}
	if (!q->stream)
		return 0;
	/* Ask for the usage; remember whether the client did. */
	json_t *o = so && so->type == LLM_JSON_OBJECT ? json_loadb(so->val, so->val_len, 0, NULL)
						      : json_object();
	if (!o)
		return 500;
	json_t *iu = json_object_get(o, "include_usage");
	q->client_usage = json_is_true(iu);
	json_object_set_new(o, "include_usage", json_true());
	char *s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return 500;
	llm_buf_clear(&q->so);
	e = llm_buf_puts(&q->so, s);
	free(s);
	return e == LLM_OK ? 0 : 413;
}

/* --- the close callback and forwarding ------------------------------------------------------ */

static void wake_thread(struct llm_proxy *p)
{
	curl_multi_wakeup(p->multi);
}

static void on_close(struct llm_httpd_req *r, void *data, bool completed)
{
	(void)r;
	struct preq *q = data;
	if (completed || atomic_load(&q->finished)) {
		preq_unref(q);
		return;
	}
	atomic_store(&q->gone, true);
	struct llm_proxy *p = q->p;
	/* The wake-up happens under the lock: once stopping is set, nothing touches p. */
	pthread_mutex_lock(&p->mu);
	bool stopping = p->stopping;
	if (!stopping) {
		q->qnext = p->cancel_head; /* the queue takes the close callback's reference */
		p->cancel_head = q;
		wake_thread(p);
	}
	pthread_mutex_unlock(&p->mu);
	if (stopping)
		preq_unref(q);
}

void llm_proxy_forward(struct llm_proxy *p, struct llm_httpd_req *r, enum llm_endpoint ep,
		       const char *body, size_t len, const char *request_id, llm_proxy_done_fn done,
		       void *ctx)
{
	atomic_fetch_add(&p->c_requests, 1);
	atomic_fetch_add(&p->inflight, 1);
	struct preq *q = preq_get(&p->o);
	if (!q) {
		atomic_fetch_sub(&p->inflight, 1);
		llm_httpd_error(r, 500, "server_error", "out_of_memory", "out of memory");
		struct llm_proxy_result res = {.status = 500,
					       .ttft_ms = -1,
					       .prompt_tokens = -1,
					       .completion_tokens = -1,
					       .error_code = "out_of_memory",
					       .error_message = "out of memory"};
		if (done)
			done(ctx, r, &res);
		return;
	}
	q->p = p;
	q->r = r;
	llm_httpd_req_ref(r);
	atomic_init(&q->refs, 1);
	q->ep = ep;
	q->done = done;
	q->ctx = ctx;
	q->t0 = now_s();
	if (request_id && *request_id && !strpbrk(request_id, "\r\n"))
		snprintf(q->rid_header, sizeof q->rid_header, "X-Request-Id: %.60s", request_id);
	int bad = take_body(q, body, len);
	if (!bad) {
		struct llm_pool *pool = llm_upstreams_pool(p->u, q->model_in.data, q->model_in.len);
		if (!pool) {
			set_error(q, "model_not_found", "the model '%.200s' does not exist",
				  q->model_in.data);
			bad = 404;
		} else {
			q->nroute =
			    llm_upstreams_route(p->u, pool, q->route, LLM_UPSTREAM_ROUTE_MAX);
		}
	}
	if (bad) {
		char msg[sizeof q->err_msg];
		snprintf(msg, sizeof msg, "%s", q->err_msg[0] ? q->err_msg : "internal error");
		fail_reply(p, q, bad,
			   bad == 404	? "invalid_request_error"
			   : bad >= 500 ? "server_error"
					: "invalid_request_error",
			   q->err_code[0] ? q->err_code : "internal_error", msg);
		return;
	}
	atomic_init(&q->refs, 2); /* the proxy's and the close callback's */
	llm_httpd_set_data(r, q, on_close);
	pthread_mutex_lock(&p->mu);
	bool stopping = p->stopping;
	bool was_empty = !p->submit_head;
	if (!stopping) {
		if (p->submit_tail)
			p->submit_tail->qnext = q;
		else
			p->submit_head = q;
		p->submit_tail = q;
		q->qnext = NULL;
		if (was_empty) /* else a wake-up is on its way already */
			wake_thread(p);
	}
	pthread_mutex_unlock(&p->mu);
	if (stopping)
		fail_reply(p, q, 503, "unavailable", "shutting_down",
			   "the server is shutting down");
}

size_t llm_proxy_inflight(struct llm_proxy *p)
{
	return atomic_load(&p->inflight);
}

void llm_proxy_counts(struct llm_proxy *p, struct llm_proxy_counts *out)
{
	out->requests = atomic_load(&p->c_requests);
	out->attempts = atomic_load(&p->c_attempts);
	out->retries = atomic_load(&p->c_retries);
	out->fallbacks = atomic_load(&p->c_fallbacks);
	out->cancelled = atomic_load(&p->c_cancelled);
	out->probes = atomic_load(&p->c_probes);
	out->probes_failed = atomic_load(&p->c_probes_failed);
}

/* --- health probes -------------------------------------------------------------------------- */

static size_t probe_discard(char *d, size_t size, size_t nmemb, void *ud)
{
	(void)d;
	(void)ud;
	return size * nmemb;
}

static void start_probes(struct llm_proxy *p, double *wait)
{
	struct llm_probe due[PROBES_MAX];
	double next;
	size_t n = llm_upstreams_due(p->u, due, PROBES_MAX, &next);
	if (next < *wait)
		*wait = next;
	for (size_t i = 0; i < n; i++) {
		struct probe *pb = calloc(1, sizeof *pb);
		CURL *e = pb ? curl_easy_init() : NULL;
		struct curl_slist *h = p->probe_base;
		if (!e) {
			free(pb);
			llm_upstreams_probed(p->u, due[i].server, false);
			continue;
		}
		pb->kind = K_PROBE;
		pb->pr = due[i];
		curl_easy_setopt(e, CURLOPT_URL, pb->pr.url);
		curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
		if (pb->pr.auth) {
			/* The key rides on the server's request header list, built once. */
			struct llm_pick pk = {.server = pb->pr.server, .auth = pb->pr.auth};
			h = server_headers(p, &pk);
		}
		curl_easy_setopt(e, CURLOPT_HTTPHEADER, h);
		curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
		curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, probe_discard);
		curl_easy_setopt(e, CURLOPT_PRIVATE, pb);
		curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(p->o.probe_timeout_s * 1000));
		if (curl_multi_add_handle(p->multi, e) != CURLM_OK) {
			curl_easy_cleanup(e);
			free(pb);
			llm_upstreams_probed(p->u, due[i].server, false);
			continue;
		}
		pb->easy = e;
		pb->next = p->probes;
		p->probes = pb;
		atomic_fetch_add(&p->c_probes, 1);
	}
}

static void probe_done(struct llm_proxy *p, struct probe *pb, CURLcode rc)
{
	long status = 0;
	curl_easy_getinfo(pb->easy, CURLINFO_RESPONSE_CODE, &status);
	bool passed = rc == CURLE_OK && status >= 200 && status < 300;
	if (!passed)
		atomic_fetch_add(&p->c_probes_failed, 1);
	llm_upstreams_probed(p->u, pb->pr.server, passed);
	set_healthy(p, pb->pr.label, passed);
	if (p->o.on_probe)
		p->o.on_probe(p->o.on_probe_ctx, pb->pr.label, passed);
	curl_multi_remove_handle(p->multi, pb->easy);
	curl_easy_cleanup(pb->easy);
	for (struct probe **pp = &p->probes; *pp; pp = &(*pp)->next)
		if (*pp == pb) {
			*pp = pb->next;
			break;
		}
	free(pb);
}

/* --- the thread ----------------------------------------------------------------------------- */

static void begin(struct llm_proxy *p, struct preq *q)
{
	next_attempt(p, q, false);
}

static void cancel(struct llm_proxy *p, struct preq *q)
{
	if (atomic_load(&q->finished))
		return;
	q->client_gone = true;
	if (q->in_backoff) {
		list_remove(&p->backoff, q);
		q->in_backoff = false;
		atomic_fetch_add(&p->c_cancelled, 1);
		set_error(q, "client_gone", "the client went away");
		q->final_status = 499;
		finish(p, q);
		return;
	}
	if (q->in_running)
		attempt_done(p, q, CURLE_ABORTED_BY_CALLBACK, false);
	/* Otherwise still in the submit queue: begin() sees gone. */
}

static double run_timers(struct llm_proxy *p)
{
	double now = now_s();
	double wait = INFINITY;
	for (struct preq *q = p->backoff, *nx; q; q = nx) {
		nx = q->next;
		if (q->not_before <= now) {
			list_remove(&p->backoff, q);
			q->in_backoff = false;
			q->not_before = 0;
			next_attempt(p, q, true);
		} else if (q->not_before - now < wait) {
			wait = q->not_before - now;
		}
	}
	if (now >= p->next_timeout_check) {
		p->next_timeout_check = now + TIMEOUT_TICK;
		for (struct preq *q = p->running, *nx; q; q = nx) {
			nx = q->next;
			if (q->deadline <= now)
				attempt_done(p, q, CURLE_OPERATION_TIMEDOUT, true);
		}
	}
	if (p->running && TIMEOUT_TICK < wait)
		wait = TIMEOUT_TICK;
	return wait;
}

static void *thread_main(void *arg)
{
	struct llm_proxy *p = arg;
	for (;;) {
		pthread_mutex_lock(&p->mu);
		struct preq *sub = p->submit_head, *can = p->cancel_head;
		p->submit_head = p->submit_tail = NULL;
		p->cancel_head = NULL;
		bool stopping = p->stopping;
		pthread_mutex_unlock(&p->mu);
		for (struct preq *q = sub, *nx; q; q = nx) {
			nx = q->qnext;
			q->qnext = NULL;
			begin(p, q);
		}
		for (struct preq *q = can, *nx; q; q = nx) {
			nx = q->qnext;
			q->qnext = NULL;
			cancel(p, q);
			preq_unref(q);
		}
		if (stopping)
			break;
		double wait = run_timers(p);
		start_probes(p, &wait);
		int still;
		curl_multi_perform(p->multi, &still);
		CURLMsg *msg;
		int left;
		bool any = false;
		while ((msg = curl_multi_info_read(p->multi, &left))) {
			if (msg->msg != CURLMSG_DONE)
				continue;
			char *priv = NULL;
			curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
			CURLcode rc = msg->data.result;
			if (*(enum kind *)(void *)priv == K_PROBE)
				probe_done(p, (struct probe *)(void *)priv, rc);
			else
				attempt_done(p, (struct preq *)(void *)priv, rc, false);
			any = true;
		}
		if (any)
			continue; /* retries and fallbacks may have started transfers */
		long ms = isfinite(wait) ? (long)ceil(wait * 1000.0) : POLL_MAX_MS;
		if (ms > POLL_MAX_MS)
			ms = POLL_MAX_MS;
		if (ms < 0)
			ms = 0;
		curl_multi_poll(p->multi, NULL, 0, (int)ms, NULL);
	}
	return NULL;
}

enum llm_err llm_proxy_new(struct llm_proxy **out, const struct llm_proxy_opts *o,
			   struct llm_diag *diag)
{
	*out = NULL;
	if (!o->upstreams)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "the gateway has no upstreams");
	if (o->max_retries < 0 || !(o->max_retry_wait_s >= 0) || !(o->timeout_s >= 0) ||
	    !(o->connect_timeout_s > 0) || !(o->probe_timeout_s > 0) || o->max_response < 1024)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "retries, waits and timeouts must not be negative");
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "cannot initialize libcurl");
	struct llm_proxy *p = calloc(1, sizeof *p);
	if (!p)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	p->o = *o;
	p->u = o->upstreams;
	p->m = o->metrics;
	pthread_mutex_init(&p->mu, NULL);
	llm_rand_seed(&p->rng, o->seed);
	p->multi = curl_multi_init();
	bool ok = p->multi != NULL;
	p->probe_base = append(NULL, "Accept: application/json", &ok);
	if (ok) {
		/* Keep connections to every upstream alive: enough for a busy pool. */
		curl_multi_setopt(p->multi, CURLMOPT_MAXCONNECTS, 1024L);
	}
	if (ok && pthread_create(&p->thread, NULL, thread_main, p) != 0)
		ok = false;
	if (!ok) {
		if (p->multi)
			curl_multi_cleanup(p->multi);
		curl_slist_free_all(p->probe_base);
		pthread_mutex_destroy(&p->mu);
		free(p);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "cannot start the proxy thread");
	}
	p->thread_on = true;
	*out = p;
	return LLM_OK;
}

void llm_proxy_free(struct llm_proxy *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->mu);
	p->stopping = true;
	pthread_mutex_unlock(&p->mu);
	wake_thread(p);
	if (p->thread_on)
		pthread_join(p->thread, NULL);
	/* What is still under way ends now. */
	while (p->backoff) {
		struct preq *q = p->backoff;
		list_remove(&p->backoff, q);
		q->in_backoff = false;
		q->last_status = 0;
		set_error(q, "shutting_down", "the server is shutting down");
		give_up(p, q);
	}
	while (p->running) {
		struct preq *q = p->running;
		unlink_running(p, q);
		llm_upstreams_release(p->u, q->pick.server, LLM_OUTCOME_NEUTRAL, 0);
		if (q->committed) {
			fail_stream(p, q, "shutting_down", "the server is shutting down");
		} else {
			q->last_status = 0;
			set_error(q, "shutting_down", "the server is shutting down");
			fail_reply(p, q, 503, "unavailable", "shutting_down",
				   "the server is shutting down");
		}
	}
	while (p->probes) {
		struct probe *pb = p->probes;
		p->probes = pb->next;
		curl_multi_remove_handle(p->multi, pb->easy);
		curl_easy_cleanup(pb->easy);
		llm_upstreams_probed(p->u, pb->pr.server, false);
		free(pb);
	}
	for (size_t i = 0; i < p->neasy_free; i++)
		curl_easy_cleanup(p->easy_free[i]);
	free(p->easy_free);
	curl_multi_cleanup(p->multi);
	for (size_t i = 0; i < p->nhdrs; i++)
		free_headers(p->hdrs[i].list);
	free(p->hdrs);
	curl_slist_free_all(p->probe_base);
	pthread_mutex_destroy(&p->mu);
	free(p);
}
