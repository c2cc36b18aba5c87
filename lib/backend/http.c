/* The HTTP backend: OpenAI-compatible servers over libcurl's multi interface.
 *
 * Each request lives in exactly one queue: waiting (submitted, not started), backoff (a failed
 * attempt, waiting for its retry time), running (a transfer in curl), or done (its result ready
 * for llm_backend_next).  llm_backend_next starts what the concurrency limit and the pacing
 * buckets allow, lets curl work, and sleeps in curl_multi_poll until a socket is ready or the
 * next deadline (a retry time, a pacing refill) comes, so an idle wait costs no CPU. */
#include "config.h"

#include "backend/backend.h"
#include "backend/retry.h"
#include "backend/sse.h"
#include "core/buf.h"
#include "core/rand.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

/* The most a response (or the text assembled from a stream) may hold. */
#define RESPONSE_MAX (64u << 20)
/* More choices than any server gives (OpenAI allows n <= 128). */
#define CHOICES_MAX 1024
/* The longest poll between checks when nothing else bounds it. */
#define POLL_MAX_MS 10000

/* One choice of a streamed response, assembled from its deltas. */
struct acc_choice {
	bool seen;
	char role[32];
	struct llm_buf content;	  /* delta.content (chat) or text (completions) */
	struct llm_buf reasoning; /* delta.reasoning_content, as vLLM streams it */
	bool has_reasoning;
	json_t *finish_reason;
	json_t *logprobs; /* array fields concatenated chunk after chunk */
};

struct acc {
	json_t *id, *created, *model, *fingerprint, *usage;
	struct acc_choice *ch;
	size_t nch;
	size_t bytes; /* text held over all choices, against RESPONSE_MAX */
};

struct req;
struct queue {
	struct req *head, *tail;
};

struct http;

struct req {
	struct req *prev, *next;
	struct queue *q; /* the queue that holds it */
	struct http *h;
	uint64_t tag;
	enum llm_endpoint ep;
	char *body;
	size_t body_len;
	double est_tokens; /* what the TPM bucket was charged per attempt */
	double t0;	   /* the start of the first attempt; < 0 before */
	double not_before; /* in backoff: the retry time */
	CURL *easy;
	char errbuf[CURL_ERROR_SIZE];
	bool cancelled; /* llm_backend_cancel: drop it at the next turn of the loop */

	/* The current attempt. */
	long status;
	bool decided; /* the body's kind is known (after the headers) */
	bool sse;     /* the body is an event stream */
	bool done_seen;
	struct llm_retry_headers hd; /* retry hints and content type */
	struct llm_buf raw;
	struct llm_sse parser;
	struct acc acc;
	/* Why the body callbacks stopped the transfer (an error event, a cap). */
	enum llm_err stop_err;
	bool stop_retry;
	char stop_code[64];
	char *stop_msg;

	struct llm_result res;
};

struct bucket {
	bool on;
	double rate; /* per second */
	double cap, level, t;
};

struct http {
	struct llm_backend base;
	char *base_url; /* without a trailing slash */
	char *model_name;
	struct curl_slist *headers;
	CURLM *multi;
	int limit_max, limit; /* configured concurrency; the current one (halved on 429) */
	int nrunning;
	size_t pending;
	size_t n_cancel; /* requests marked cancelled since the last sweep */
	struct queue waiting, backoff, running, done;
	struct bucket rpm, tpm;
	struct llm_rand rng;
	int max_retries;
	double max_retry_after_s, timeout_s;
	bool stream;
	void (*on_delta)(void *ctx, uint64_t tag, int choice, const char *text, size_t n);
	void *on_delta_ctx;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* --- queues ------------------------------------------------------------------------------- */

static void q_push(struct queue *q, struct req *r)
{
	r->q = q;
	r->next = NULL;
	r->prev = q->tail;
	if (q->tail)
		q->tail->next = r;
	else
		q->head = r;
	q->tail = r;
}

static void q_remove(struct req *r)
{
	struct queue *q = r->q;
	if (r->prev)
		r->prev->next = r->next;
	else
		q->head = r->next;
	if (r->next)
		r->next->prev = r->prev;
	else
		q->tail = r->prev;
	r->prev = r->next = NULL;
	r->q = NULL;
}

/* --- pacing: token buckets ------------------------------------------------------------------
 * A bucket holds one second's worth (at least one request), starting full: servers enforce a
 * per-minute limit over shorter windows too (OpenAI says 60 RPM may be enforced as 1 per
 * second), so a minute's worth sent at once would be refused.  A request larger than the
 * bucket waits for a full one and leaves it in debt, so the average rate still holds. */

static void bucket_init(struct bucket *b, double per_minute, double now)
{
	b->on = per_minute > 0;
	b->rate = per_minute / 60.0;
	b->cap = fmax(b->rate, 1);
	b->level = b->cap;
	b->t = now;
}

static void bucket_fill(struct bucket *b, double now)
{
	if (!b->on)
		return;
	b->level = fmin(b->cap, b->level + (now - b->t) * b->rate);
	b->t = now;
}

/* Seconds until amount can be taken; a request larger than the bucket waits for a full one. */
static double bucket_wait(struct bucket *b, double amount, double now)
{
	if (!b->on)
		return 0;
	bucket_fill(b, now);
	double need = fmin(amount, b->cap);
	return b->level >= need ? 0 : (need - b->level) / b->rate;
}

static void bucket_take(struct bucket *b, double amount)
{
	if (b->on)
		b->level -= amount;
}

/* --- the per-attempt state ---------------------------------------------------------------- */

static void acc_free(struct acc *a)
{
	json_decref(a->id);
	json_decref(a->created);
	json_decref(a->model);
	json_decref(a->fingerprint);
	json_decref(a->usage);
	for (size_t i = 0; i < a->nch; i++) {
		llm_buf_free(&a->ch[i].content);
		llm_buf_free(&a->ch[i].reasoning);
		json_decref(a->ch[i].finish_reason);
		json_decref(a->ch[i].logprobs);
	}
	free(a->ch);
	memset(a, 0, sizeof *a);
}

static void attempt_reset(struct req *r)
{
	r->status = 0;
	r->decided = r->sse = r->done_seen = false;
	llm_retry_headers_reset(&r->hd);
	r->errbuf[0] = '\0';
	r->res.ttft_ms = -1; /* the first token of the attempt that answers */
	llm_buf_clear(&r->raw);
	llm_sse_reset(&r->parser);
	acc_free(&r->acc);
	r->stop_err = LLM_OK;
	r->stop_retry = false;
	r->stop_code[0] = '\0';
	free(r->stop_msg);
	r->stop_msg = NULL;
}

static void req_free(struct req *r)
{
	if (r->easy) {
		curl_multi_remove_handle(r->h->multi, r->easy);
		curl_easy_cleanup(r->easy);
	}
	free(r->body);
	llm_buf_free(&r->raw);
	llm_sse_free(&r->parser);
	acc_free(&r->acc);
	free(r->stop_msg);
	llm_result_clear(&r->res);
	free(r);
}

/* Stop the transfer from a body callback, saying why. */
static void stop(struct req *r, enum llm_err err, bool retry, const char *code, const char *msg)
{
	if (r->stop_err != LLM_OK)
		return;
	r->stop_err = err;
	r->stop_retry = retry;
	snprintf(r->stop_code, sizeof r->stop_code, "%s", code);
	r->stop_msg = strdup(msg);
}

/* --- headers ------------------------------------------------------------------------------ */

static size_t on_header(char *line, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	llm_retry_headers_line(&r->hd, line, n);
	r->status = r->hd.status;
	return n;
}

/* --- a streamed response, assembled ------------------------------------------------------- */

static struct acc_choice *acc_choice(struct acc *a, json_int_t index)
{
	if (index < 0 || index >= CHOICES_MAX)
		return NULL;
	size_t i = (size_t)index;
	if (i >= a->nch) {
		struct acc_choice *ch = realloc(a->ch, (i + 1) * sizeof *ch);
		if (!ch)
			return NULL;
		memset(ch + a->nch, 0, (i + 1 - a->nch) * sizeof *ch);
		for (size_t k = a->nch; k <= i; k++) {
			llm_buf_init(&ch[k].content, RESPONSE_MAX);
			llm_buf_init(&ch[k].reasoning, RESPONSE_MAX);
		}
		a->ch = ch;
		a->nch = i + 1;
	}
	a->ch[i].seen = true;
	return &a->ch[i];
}

static void keep_first(json_t **slot, json_t *v)
{
	if (!*slot && v && !json_is_null(v))
		*slot = json_incref(v);
}

/* Array fields of a logprobs object grow chunk after chunk ("content" for chat; "tokens",
 * "token_logprobs", "top_logprobs", "text_offset" for completions); others keep the last. */
static enum llm_err merge_logprobs(struct acc_choice *c, json_t *lp)
{
	if (!json_is_object(lp))
		return LLM_OK;
	if (!c->logprobs && !(c->logprobs = json_object()))
		return LLM_ERR_NOMEM;
	const char *key;
	json_t *v;
	json_object_foreach(lp, key, v)
	{
		json_t *have = json_object_get(c->logprobs, key);
		if (json_is_array(v) && json_is_array(have)) {
			if (json_array_extend(have, v) != 0)
				return LLM_ERR_NOMEM;
		} else if (json_is_array(v)) {
			if (json_object_set_new(c->logprobs, key, json_deep_copy(v)) != 0)
				return LLM_ERR_NOMEM;
		} else if (json_object_set(c->logprobs, key, v) != 0) {
			return LLM_ERR_NOMEM;
		}
	}
	return LLM_OK;
}

static enum llm_err add_text(struct req *r, int index, struct llm_buf *b, const char *s, size_t n,
			     bool content)
{
	if (n == 0)
		return LLM_OK;
	if (r->acc.bytes + n > RESPONSE_MAX)
		return LLM_ERR_TOO_BIG;
	if (llm_buf_append(b, s, n) != LLM_OK)
		return LLM_ERR_NOMEM;
	r->acc.bytes += n;
	if (r->res.ttft_ms < 0)
		r->res.ttft_ms = (now_s() - r->t0) * 1000.0;
	if (content && r->h->on_delta)
		r->h->on_delta(r->h->on_delta_ctx, r->tag, index, s, n);
	return LLM_OK;
}

static enum llm_err add_chunk(struct req *r, json_t *chunk)
{
	struct acc *a = &r->acc;
	keep_first(&a->id, json_object_get(chunk, "id"));
	keep_first(&a->created, json_object_get(chunk, "created"));
	keep_first(&a->model, json_object_get(chunk, "model"));
	keep_first(&a->fingerprint, json_object_get(chunk, "system_fingerprint"));
	json_t *usage = json_object_get(chunk, "usage");
	if (json_is_object(usage)) {
		json_decref(a->usage);
		a->usage = json_incref(usage);
	}
	json_t *choices = json_object_get(chunk, "choices");
	size_t i;
	json_t *cj;
	json_array_foreach(choices, i, cj)
	{
		json_t *jidx = json_object_get(cj, "index");
		json_int_t index = json_is_integer(jidx) ? json_integer_value(jidx) : 0;
		struct acc_choice *c = acc_choice(a, index);
		if (!c)
			continue;
		enum llm_err e = LLM_OK;
		json_t *text;
		if (r->ep == LLM_EP_CHAT) {
			json_t *delta = json_object_get(cj, "delta");
			json_t *role = json_object_get(delta, "role");
			if (json_is_string(role))
				snprintf(c->role, sizeof c->role, "%s", json_string_value(role));
			text = json_object_get(delta, "reasoning_content");
			if (json_is_string(text)) {
				c->has_reasoning = true;
				e = add_text(r, (int)index, &c->reasoning, json_string_value(text),
					     json_string_length(text), false);
			}
			text = json_object_get(delta, "content");
		} else {
			text = json_object_get(cj, "text");
		}
		if (e == LLM_OK && json_is_string(text))
			e = add_text(r, (int)index, &c->content, json_string_value(text),
				     json_string_length(text), true);
		json_t *fr = json_object_get(cj, "finish_reason");
		if (fr && !json_is_null(fr)) {
			json_decref(c->finish_reason);
			c->finish_reason = json_incref(fr);
		}
		if (e == LLM_OK)
			e = merge_logprobs(c, json_object_get(cj, "logprobs"));
		if (e != LLM_OK)
			return e;
	}
	return LLM_OK;
}

/* The OpenAI error object's code, else its type: "rate_limit_exceeded", "insufficient_quota". */
static void error_fields(json_t *err, char *code, size_t codesz, const char **msg)
{
	json_t *c = json_object_get(err, "code"), *t = json_object_get(err, "type");
	code[0] = '\0';
	if (json_is_string(c) && json_string_length(c) > 0)
		snprintf(code, codesz, "%s", json_string_value(c));
	else if (json_is_integer(c))
		snprintf(code, codesz, "%" JSON_INTEGER_FORMAT, json_integer_value(c));
	if ((!code[0] || json_is_integer(c)) && json_is_string(t) && json_string_length(t) > 0)
		snprintf(code, codesz, "%s", json_string_value(t));
	json_t *m = json_object_get(err, "message");
	*msg = json_is_string(m) ? json_string_value(m) : NULL;
}

static bool is_quota(json_t *err)
{
	json_t *c = json_object_get(err, "code"), *t = json_object_get(err, "type");
	return (json_is_string(c) && !strcmp(json_string_value(c), "insufficient_quota")) ||
	       (json_is_string(t) && !strcmp(json_string_value(t), "insufficient_quota"));
}

static enum llm_err on_event(void *ctx, const struct llm_sse_event *ev)
{
	struct req *r = ctx;
	if (r->done_seen)
		return LLM_OK;
	if (ev->data_len == 6 && memcmp(ev->data, "[DONE]", 6) == 0) {
		r->done_seen = true;
		return LLM_OK;
	}
	json_t *chunk = json_loadb(ev->data, ev->data_len, JSON_ALLOW_NUL, NULL);
	if (!json_is_object(chunk)) {
		json_decref(chunk);
		stop(r, LLM_ERR_REMOTE, false, "invalid_response",
		     "the server streamed an event that is not a JSON object");
		return LLM_ERR_REMOTE;
	}
	json_t *err = json_object_get(chunk, "error");
	if (err && !json_is_null(err)) {
		/* An error in the middle of a 200 stream: a failed attempt, retried as usual. */
		char code[64];
		const char *msg;
		error_fields(err, code, sizeof code, &msg);
		char text[512];
		snprintf(text, sizeof text, "error event in the stream: %s",
			 msg ? msg : "(no message)");
		stop(r, LLM_ERR_REMOTE, !is_quota(err), code[0] ? code : "stream_error", text);
		json_decref(chunk);
		return LLM_ERR_REMOTE;
	}
	enum llm_err e = add_chunk(r, chunk);
	json_decref(chunk);
	if (e == LLM_ERR_TOO_BIG)
		stop(r, e, false, "too_big", "the streamed response is larger than 64 MiB");
	else if (e != LLM_OK)
		stop(r, e, false, "out_of_memory", "out of memory assembling the stream");
	return e;
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *ud)
{
	struct req *r = ud;
	size_t n = size * nmemb;
	if (!r->decided) {
		r->decided = true;
		r->sse = r->status >= 200 && r->status < 300 &&
			 strncasecmp(r->hd.content_type, "text/event-stream", 17) == 0;
	}
	if (r->sse) {
		if (r->done_seen)
			return n; /* nothing after [DONE] matters */
		enum llm_err e = llm_sse_feed(&r->parser, data, n, on_event, r);
		if (e == LLM_ERR_TOO_BIG)
			stop(r, e, false, "too_big", "a streamed event is larger than 16 MiB");
		else if (e != LLM_OK)
			stop(r, e, false, "out_of_memory", "out of memory reading the stream");
		return e == LLM_OK ? n : 0;
	}
	if (llm_buf_append(&r->raw, data, n) != LLM_OK) {
		stop(r, LLM_ERR_TOO_BIG, false, "too_big", "the response is larger than 64 MiB");
		return 0;
	}
	return n;
}

/* The non-streaming response body from what the stream carried. */
static char *assemble(struct req *r)
{
	struct acc *a = &r->acc;
	bool chat = r->ep == LLM_EP_CHAT;
	json_t *root = json_object();
	json_t *choices = json_array();
	if (!root || !choices)
		goto fail;
	json_object_set_new(root, "id", a->id ? json_incref(a->id) : json_string(""));
	json_object_set_new(root, "object",
			    json_string(chat ? "chat.completion" : "text_completion"));
	json_object_set_new(root, "created",
			    a->created ? json_incref(a->created) : json_integer(time(NULL)));
	json_object_set_new(root, "model",
			    a->model ? json_incref(a->model) : json_string(r->h->base.model));
	if (a->fingerprint)
		json_object_set_new(root, "system_fingerprint", json_incref(a->fingerprint));
	for (size_t i = 0; i < a->nch; i++) {
		struct acc_choice *c = &a->ch[i];
		if (!c->seen)
			continue;
		json_t *cj = json_object();
		if (!cj || json_array_append_new(choices, cj) != 0)
			goto fail;
		json_object_set_new(cj, "index", json_integer((json_int_t)i));
		json_t *text = json_stringn(c->content.len ? c->content.data : "", c->content.len);
		if (!text)
			goto fail;
		if (chat) {
			json_t *msg = json_object();
			if (!msg) {
				json_decref(text);
				goto fail;
			}
			json_object_set_new(cj, "message", msg);
			json_object_set_new(msg, "role",
					    json_string(c->role[0] ? c->role : "assistant"));
			json_object_set_new(msg, "content", text);
			if (c->has_reasoning)
				json_object_set_new(
				    msg, "reasoning_content",
				    json_stringn(c->reasoning.len ? c->reasoning.data : "",
						 c->reasoning.len));
		} else {
			json_object_set_new(cj, "text", text);
		}
		if (c->logprobs)
			json_object_set_new(cj, "logprobs", json_incref(c->logprobs));
		json_object_set_new(cj, "finish_reason",
				    c->finish_reason ? json_incref(c->finish_reason) : json_null());
	}
	json_object_set_new(root, "choices", choices);
	choices = NULL;
	if (a->usage)
		json_object_set_new(root, "usage", json_incref(a->usage));
	char *s = json_dumps(root, JSON_COMPACT);
	json_decref(root);
	return s;
fail:
	json_decref(choices);
	json_decref(root);
	return NULL;
}

static bool any_finish_reason(const struct acc *a)
{
	for (size_t i = 0; i < a->nch; i++)
		if (a->ch[i].seen && a->ch[i].finish_reason)
			return true;
	return false;
}

/* --- the retry policy (openai-python's) --------------------------------------------------- */

static bool retry_status(const struct http *h, const struct req *r, bool quota)
{
	double hint;
	if (llm_retry_hint(&r->hd, &hint) && isfinite(hint) && hint > h->max_retry_after_s)
		return false;
	if (quota)
		return false;
	int should = llm_retry_should(&r->hd);
	return should >= 0 ? should == 1 : llm_retry_status(r->status);
}

static double retry_delay(struct http *h, const struct req *r, bool use_hint)
{
	double hint;
	if (use_hint && llm_retry_hint(&r->hd, &hint) && isfinite(hint) && hint > 0 &&
	    hint <= h->max_retry_after_s)
		return hint;
	return llm_retry_backoff(r->res.attempts - 1, llm_rand_double(&h->rng));
}

/* --- attempts ----------------------------------------------------------------------------- */

static void finish(struct http *h, struct req *r, enum llm_err err, const char *code,
		   const char *msg)
{
	r->res.err = err;
	r->res.status = (int)r->status;
	if (err != LLM_OK) {
		snprintf(r->res.error_code, sizeof r->res.error_code, "%s", code ? code : "");
		free(r->res.error_message);
		r->res.error_message = msg ? strdup(msg) : NULL;
		free(r->res.body);
		r->res.body = NULL;
		r->res.body_len = 0;
	}
	r->res.latency_ms = (now_s() - r->t0) * 1000.0;
	q_push(&h->done, r);
}

static bool start_attempt(struct http *h, struct req *r, double now)
{
	attempt_reset(r);
	char url[4096];
	int n = snprintf(url, sizeof url, "%s/%s", h->base_url, llm_endpoint_path(r->ep));
	CURL *e = curl_easy_init();
	if (n < 0 || (size_t)n >= sizeof url || !e) {
		if (e)
			curl_easy_cleanup(e);
		if (r->t0 < 0)
			r->t0 = now;
		finish(h, r, LLM_ERR_NOMEM, "out_of_memory", "cannot start a transfer");
		return false;
	}
	curl_easy_setopt(e, CURLOPT_URL, url);
	curl_easy_setopt(e, CURLOPT_POSTFIELDS, r->body);
	curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)r->body_len);
	curl_easy_setopt(e, CURLOPT_HTTPHEADER, h->headers);
	curl_easy_setopt(e, CURLOPT_USERAGENT, PACKAGE_NAME "/" PACKAGE_VERSION);
	curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(e, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(e, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(e, CURLOPT_PRIVATE, r);
	curl_easy_setopt(e, CURLOPT_ERRORBUFFER, r->errbuf);
	curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
	if (h->timeout_s > 0)
		curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, (long)ceil(h->timeout_s * 1000.0));
	if (curl_multi_add_handle(h->multi, e) != CURLM_OK) {
		curl_easy_cleanup(e);
		if (r->t0 < 0)
			r->t0 = now;
		finish(h, r, LLM_ERR_NOMEM, "out_of_memory", "cannot start a transfer");
		return false;
	}
	r->easy = e;
	if (r->t0 < 0)
		r->t0 = now;
	r->res.attempts++;
	bucket_take(&h->rpm, 1);
	bucket_take(&h->tpm, r->est_tokens);
	h->nrunning++;
	q_push(&h->running, r);
	return true;
}

/* Correct the TPM bucket by the tokens the response says it used. */
static void charge_usage(struct http *h, struct req *r, json_t *usage)
{
	if (!h->tpm.on || !json_is_object(usage))
		return;
	json_t *total = json_object_get(usage, "total_tokens");
	double used;
	if (json_is_integer(total)) {
		used = (double)json_integer_value(total);
	} else {
		json_t *p = json_object_get(usage, "prompt_tokens");
		json_t *c = json_object_get(usage, "completion_tokens");
		if (!json_is_integer(p) && !json_is_integer(c))
			return;
		used = (double)((json_is_integer(p) ? json_integer_value(p) : 0) +
				(json_is_integer(c) ? json_integer_value(c) : 0));
	}
	h->tpm.level = fmin(h->tpm.cap, h->tpm.level - (used - r->est_tokens));
}

static void succeed(struct http *h, struct req *r, char *body, json_t *usage)
{
	r->res.body = body;
	r->res.body_len = strlen(body);
	charge_usage(h, r, usage);
	if (h->limit < h->limit_max)
		h->limit++;
	finish(h, r, LLM_OK, NULL, NULL);
}

/* A failed attempt: retry it after its delay, or finish with the error. */
static void failed(struct http *h, struct req *r, bool retry, bool use_hint, enum llm_err err,
		   const char *code, const char *msg)
{
	if (retry && r->res.attempts - 1 < h->max_retries) {
		r->not_before = now_s() + retry_delay(h, r, use_hint);
		q_push(&h->backoff, r);
		return;
	}
	finish(h, r, err, code, msg);
}

/* A short plain-ASCII line, fit to quote in a message (an HTML page or binary is not). */
static bool printable(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] < 0x20 || s[i] > 0x7e)
			return false;
	return true;
}

/* A complete non-2xx response. */
static void failed_status(struct http *h, struct req *r)
{
	char code[64] = "";
	char msg[1024];
	const char *smsg = NULL;
	bool quota = false;
	json_t *root = json_loadb(r->raw.data ? r->raw.data : "", r->raw.len, 0, NULL);
	json_t *err = json_object_get(root, "error");
	if (json_is_object(err)) {
		error_fields(err, code, sizeof code, &smsg);
		quota = is_quota(err);
	} else if (json_is_object(root)) {
		/* Some servers put the fields at the top ({"object":"error","message":...}). */
		error_fields(root, code, sizeof code, &smsg);
		if (json_is_string(err) && !smsg)
			smsg = json_string_value(err);
		quota = is_quota(root);
	}
	if (!code[0])
		snprintf(code, sizeof code, "http_%ld", r->status);
	if (smsg)
		snprintf(msg, sizeof msg, "HTTP %ld: %s", r->status, smsg);
	else if (r->raw.len > 0 && r->raw.len < 200 && printable(r->raw.data, r->raw.len))
		snprintf(msg, sizeof msg, "HTTP %ld: %s", r->status, r->raw.data);
	else
		snprintf(msg, sizeof msg, "HTTP %ld", r->status);
	json_decref(root);
	if (r->status == 429)
		h->limit = h->limit / 2 > 1 ? h->limit / 2 : 1;
	failed(h, r, retry_status(h, r, quota), true, LLM_ERR_REMOTE, code, msg);
}

static void attempt_done(struct http *h, struct req *r, CURLcode rc)
{
	curl_multi_remove_handle(h->multi, r->easy);
	curl_easy_cleanup(r->easy);
	r->easy = NULL;
	h->nrunning--;
	q_remove(r);
	const char *path = llm_endpoint_path(r->ep);
	char msg[1024];

	if (r->stop_err != LLM_OK) {
		failed(h, r, r->stop_retry, false, r->stop_err, r->stop_code, r->stop_msg);
		return;
	}
	if (rc != CURLE_OK && !(r->sse && r->done_seen)) {
		bool timeout = rc == CURLE_OPERATION_TIMEDOUT;
		snprintf(msg, sizeof msg, "POST %s: %s", path,
			 r->errbuf[0] ? r->errbuf : curl_easy_strerror(rc));
		failed(h, r, true, false, LLM_ERR_IO, timeout ? "timeout" : "connection", msg);
		return;
	}
	if (r->status < 200 || r->status >= 300) {
		failed_status(h, r);
		return;
	}
	if (r->sse) {
		if (!r->done_seen && !any_finish_reason(&r->acc)) {
			snprintf(msg, sizeof msg,
				 "POST %s: the stream ended before its end (no [DONE], no "
				 "finish_reason)",
				 path);
			failed(h, r, true, false, LLM_ERR_IO, "connection", msg);
			return;
		}
		char *body = assemble(r);
		if (!body) {
			finish(h, r, LLM_ERR_NOMEM, "out_of_memory",
			       "out of memory assembling the stream");
			return;
		}
		succeed(h, r, body, r->acc.usage);
		return;
	}
	json_error_t jerr;
	json_t *root = json_loadb(r->raw.data ? r->raw.data : "", r->raw.len, 0, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		snprintf(msg, sizeof msg, "POST %s: the response is not a JSON object", path);
		finish(h, r, LLM_ERR_REMOTE, "invalid_response", msg);
		return;
	}
	char *body = malloc(r->raw.len + 1);
	if (!body) {
		json_decref(root);
		finish(h, r, LLM_ERR_NOMEM, "out_of_memory", "out of memory");
		return;
	}
	memcpy(body, r->raw.data, r->raw.len);
	body[r->raw.len] = '\0';
	succeed(h, r, body, json_object_get(root, "usage"));
	json_decref(root);
}

/* The request to start next: a retry whose time has come, else the oldest waiting one. */
static struct req *next_ready(struct http *h, double now, double *wait)
{
	struct req *best = NULL;
	for (struct req *r = h->backoff.head; r; r = r->next) {
		if (r->not_before <= now) {
			if (!best || r->not_before < best->not_before)
				best = r;
		} else {
			*wait = fmin(*wait, r->not_before - now);
		}
	}
	if (best)
		return best;
	return h->waiting.head;
}

/* Start what the limits allow.  Returns the seconds until something more could start
 * (INFINITY when only a finished transfer can change that). */
static double start_ready(struct http *h)
{
	double wait = INFINITY;
	while (h->nrunning < h->limit) {
		double now = now_s();
		double w = INFINITY;
		struct req *r = next_ready(h, now, &w);
		if (!r) {
			wait = fmin(wait, w);
			break;
		}
		double pace =
		    fmax(bucket_wait(&h->rpm, 1, now), bucket_wait(&h->tpm, r->est_tokens, now));
		if (pace > 0) {
			wait = fmin(wait, fmin(w, pace));
			break;
		}
		q_remove(r);
		start_attempt(h, r, now);
	}
	return wait;
}

/* --- the backend operations --------------------------------------------------------------- */

/* Tokens a request is charged before its usage is known: prompt bytes / 4 + max_tokens. */
static double text_bytes(json_t *v, int depth)
{
	if (depth > 32)
		return 0;
	if (json_is_string(v))
		return (double)json_string_length(v);
	if (json_is_number(v))
		return 4; /* a token id */
	double n = 0;
	size_t i;
	json_t *x;
	const char *k;
	if (json_is_array(v)) {
		json_array_foreach(v, i, x)
		{
			n += text_bytes(x, depth + 1);
		}
	} else if (json_is_object(v)) {
		json_object_foreach(v, k, x)
		{
			n += text_bytes(x, depth + 1);
		}
	}
	return n;
}

static double estimate_tokens(json_t *body)
{
	json_t *prompt = json_object_get(body, "messages");
	if (!prompt)
		prompt = json_object_get(body, "prompt");
	double t = text_bytes(prompt, 0) / 4.0;
	json_t *mt = json_object_get(body, "max_tokens");
	if (!json_is_integer(mt))
		mt = json_object_get(body, "max_completion_tokens");
	json_t *n = json_object_get(body, "n");
	double per = json_is_integer(mt) ? (double)json_integer_value(mt) : 0;
	double times =
	    json_is_integer(n) && json_integer_value(n) > 1 ? (double)json_integer_value(n) : 1;
	return t + per * times;
}

static enum llm_err http_submit(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep,
				const char *body, size_t len, struct llm_diag *diag)
{
	struct http *h = (struct http *)b;
	json_error_t jerr;
	json_t *root = json_loadb(body, len, JSON_ALLOW_NUL, &jerr);
	if (!json_is_object(root)) {
		json_decref(root);
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "the request body is not a JSON object");
	}
	int bad = 0;
	if (!json_object_get(root, "model") && h->model_name)
		bad |= json_object_set_new(root, "model", json_string(h->model_name));
	if (h->stream) {
		bad |= json_object_set_new(root, "stream", json_true());
		json_t *so = json_object_get(root, "stream_options");
		if (!json_is_object(so)) {
			so = json_object();
			bad |= json_object_set_new(root, "stream_options", so);
		}
		bad |= json_object_set_new(so, "include_usage", json_true());
	} else {
		json_object_del(root, "stream");
		json_object_del(root, "stream_options");
	}
	struct req *r = calloc(1, sizeof *r);
	char *text = bad ? NULL : json_dumps(root, JSON_COMPACT);
	if (!r || !text) {
		free(r);
		free(text);
		json_decref(root);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	r->h = h;
	r->tag = tag;
	r->ep = ep;
	r->body = text;
	r->body_len = strlen(text);
	r->est_tokens = estimate_tokens(root);
	r->t0 = -1;
	r->res.tag = tag;
	r->res.ttft_ms = -1;
	llm_buf_init(&r->raw, RESPONSE_MAX);
	llm_sse_init(&r->parser, 0);
	json_decref(root);
	q_push(&h->waiting, r);
	h->pending++;
	return LLM_OK;
}

/* Drop the transfers of cancelled requests and finish them; outside libcurl's callbacks, where
 * a handle may be removed. */
static void sweep_cancelled(struct http *h)
{
	h->n_cancel = 0;
	struct queue *qs[] = {&h->waiting, &h->backoff, &h->running};
	for (size_t i = 0; i < sizeof qs / sizeof *qs; i++) {
		for (struct req *r = qs[i]->head, *nx; r; r = nx) {
			nx = r->next;
			if (!r->cancelled)
				continue;
			if (r->easy) {
				curl_multi_remove_handle(h->multi, r->easy);
				curl_easy_cleanup(r->easy);
				r->easy = NULL;
				h->nrunning--;
			}
			q_remove(r);
			if (r->t0 < 0)
				r->t0 = now_s();
			finish(h, r, LLM_ERR_USAGE, "cancelled", "the request was cancelled");
		}
	}
}

static int http_next(struct llm_backend *b, struct llm_result *out, struct llm_diag *diag)
{
	struct http *h = (struct http *)b;
	for (;;) {
		if (h->n_cancel)
			sweep_cancelled(h);
		struct req *r = h->done.head;
		if (r) {
			q_remove(r);
			*out = r->res;
			memset(&r->res, 0, sizeof r->res);
			h->pending--;
			req_free(r);
			return 1;
		}
		if (h->pending == 0)
			return 0;
		double wait = start_ready(h);
		if (h->done.head)
			continue;
		int still;
		CURLMcode mc = curl_multi_perform(h->multi, &still);
		if (mc != CURLM_OK) {
			llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "curl: %s",
				     curl_multi_strerror(mc));
			return -1;
		}
		bool ended = false;
		CURLMsg *m;
		int left;
		while ((m = curl_multi_info_read(h->multi, &left))) {
			if (m->msg != CURLMSG_DONE)
				continue;
			char *priv = NULL;
			curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
			attempt_done(h, (struct req *)priv, m->data.result);
			ended = true;
		}
		if (ended || h->n_cancel)
			continue; /* a slot is free, or a result is ready */
		long ms = isfinite(wait) ? (long)ceil(wait * 1000.0) : POLL_MAX_MS;
		if (ms < 1)
			ms = 1;
		if (ms > POLL_MAX_MS)
			ms = POLL_MAX_MS;
		mc = curl_multi_poll(h->multi, NULL, 0, (int)ms, NULL);
		if (mc != CURLM_OK) {
			llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "curl: %s",
				     curl_multi_strerror(mc));
			return -1;
		}
	}
}

static size_t http_pending(const struct llm_backend *b)
{
	return ((const struct http *)b)->pending;
}

static enum llm_err http_cancel(struct llm_backend *b, uint64_t tag)
{
	struct http *h = (struct http *)b;
	struct queue *qs[] = {&h->running, &h->waiting, &h->backoff};
	for (size_t i = 0; i < sizeof qs / sizeof *qs; i++)
		for (struct req *r = qs[i]->head; r; r = r->next)
			if (r->tag == tag) {
				if (!r->cancelled) {
					r->cancelled = true;
					h->n_cancel++;
				}
				return LLM_OK;
			}
	return LLM_ERR_NOT_FOUND;
}

static void free_queue(struct queue *q)
{
	while (q->head) {
		struct req *r = q->head;
		q_remove(r);
		req_free(r);
	}
}

static void http_close(struct llm_backend *b)
{
	struct http *h = (struct http *)b;
	free_queue(&h->running);
	free_queue(&h->waiting);
	free_queue(&h->backoff);
	free_queue(&h->done);
	if (h->multi)
		curl_multi_cleanup(h->multi);
	/* The Authorization header holds the key: wipe it before the memory goes back. */
	for (struct curl_slist *s = h->headers; s; s = s->next)
		explicit_bzero(s->data, strlen(s->data));
	curl_slist_free_all(h->headers);
	free(h->base_url);
	free(h->model_name);
	free(h->base.model);
	free(h);
}

static const struct llm_backend_ops http_ops = {
    .submit = http_submit,
    .next = http_next,
    .pending = http_pending,
    .close = http_close,
    .cancel = http_cancel,
};

static enum llm_err check_url(const char *ref, struct llm_diag *diag)
{
	CURLU *u = curl_url();
	if (!u)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	char *host = NULL, *scheme = NULL;
	CURLUcode uc = curl_url_set(u, CURLUPART_URL, ref, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_HOST, &host, 0);
	if (uc == CURLUE_OK)
		uc = curl_url_get(u, CURLUPART_SCHEME, &scheme, 0);
	bool ok = uc == CURLUE_OK && host && *host &&
		  (!strcmp(scheme, "http") || !strcmp(scheme, "https"));
	curl_free(host);
	curl_free(scheme);
	curl_url_cleanup(u);
	if (!ok)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "not a valid server URL (want http(s)://host[:port]/v1)");
	return LLM_OK;
}

enum llm_err llm_backend_open_http(struct llm_backend **out, const struct llm_backend_opts *o,
				   struct llm_diag *diag)
{
	*out = NULL;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
		return llm_diag_set(diag, LLM_ERR_IO, NULL, 0, "cannot initialize libcurl");
	enum llm_err e = check_url(o->ref, diag);
	if (e != LLM_OK)
		return e;
	if (o->concurrency < 1 || o->max_retries < 0 || o->rpm < 0 || o->tpm < 0 ||
	    o->timeout_s < 0 || o->max_retry_after_s < 0)
		return llm_diag_set(
		    diag, LLM_ERR_USAGE, NULL, 0,
		    "concurrency must be at least 1, and retries, limits and timeouts "
		    "not negative");
	if (o->api_key && strpbrk(o->api_key, "\r\n"))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "the API key holds a line break");
	struct http *h = calloc(1, sizeof *h);
	if (!h)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	h->base.ops = &http_ops;
	h->base.remote = true;
	h->base.model = strdup(o->model_name ? o->model_name : o->ref);
	h->base_url = strdup(o->ref);
	h->model_name = o->model_name ? strdup(o->model_name) : NULL;
	h->multi = curl_multi_init();
	bool ok = h->base.model && h->base_url && (!o->model_name || h->model_name) && h->multi;
	if (ok) {
		size_t n = strlen(h->base_url);
		while (n > 0 && h->base_url[n - 1] == '/')
			h->base_url[--n] = '\0';
		const char *fixed[] = {"Content-Type: application/json", "Accept: application/json",
				       "Expect:"};
		for (size_t i = 0; i < sizeof fixed / sizeof *fixed && ok; i++) {
			struct curl_slist *s = curl_slist_append(h->headers, fixed[i]);
			ok = s != NULL;
			if (s)
				h->headers = s;
		}
		if (ok && o->api_key && *o->api_key) {
			struct llm_buf auth;
			llm_buf_init(&auth, 0);
			ok = llm_buf_puts(&auth, "Authorization: Bearer ") == LLM_OK &&
			     llm_buf_puts(&auth, o->api_key) == LLM_OK;
			struct curl_slist *s = ok ? curl_slist_append(h->headers, auth.data) : NULL;
			ok = s != NULL;
			if (s)
				h->headers = s;
			if (auth.data)
				explicit_bzero(auth.data, auth.len);
			llm_buf_free(&auth);
		}
	}
	if (!ok) {
		http_close(&h->base);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	h->limit_max = h->limit = o->concurrency;
	double now = now_s();
	bucket_init(&h->rpm, o->rpm, now);
	bucket_init(&h->tpm, o->tpm, now);
	llm_rand_seed(&h->rng, o->seed);
	h->max_retries = o->max_retries;
	h->max_retry_after_s = o->max_retry_after_s;
	h->timeout_s = o->timeout_s;
	h->stream = o->stream;
	h->on_delta = o->on_delta;
	h->on_delta_ctx = o->on_delta_ctx;
	*out = &h->base;
	return LLM_OK;
}
