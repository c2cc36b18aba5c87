/* llm-serve with a local model: the embedded engine through lib/backend, on a worker thread of
 * its own.
 *
 * The backend is single-threaded, so one worker thread owns it: it loads the model (the server
 * is already listening; /ready says 503 meanwhile), then takes jobs from a bounded queue,
 * submits up to --parallel of them (the engine decodes them together), and waits in
 * llm_backend_next.  The engine calls on_delta with each piece of text on that thread; there
 * the worker streams the piece to its client, and takes new jobs and cancellations, so a
 * request that arrives during a long generation joins the batch at the next step instead of
 * waiting for a result.
 *
 * A job has two owners: the HTTP side (until its request ends) and the work side (until the
 * backend gave its result back, or it left the queue).  The last one to let go writes the
 * request's log line, so every request is logged once, with everything known about it, even
 * when its client left half-way.  A client that leaves cancels its job: taken out of the queue,
 * or llm_backend_cancel'ed (the engine ends it at its next step).
 *
 * A model refresh (refresh.c) loads another model beside this one: a second serve_local with
 * its own worker and backend, which S->local then points at.  A handler takes the model it uses
 * with model_enter, so the one it took lives while it needs it; the model replaced ("retired")
 * finishes every request it took, then its worker closes the backend and ends. */
#include "config.h"

#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "artifact/resolve.h"
#include "backend/backend.h"
#include "core/json.h"
#include "engine/gguf.h"
#include "engine/hparams.h"
#include "serve/serve.h"
#include "text/bpe.h"

/* Output text kept per request for the log. */
#define LOG_OUTPUT_MAX (1u << 20)
/* Choices one request may ask for (the engine's own limit). */
#define MAX_CHOICES 128

const struct llm_opt serve_local_opts[] = {
    {"parallel", 'j', LLM_OPT_INT, "N", "requests decoded together (the engine's slots)", "4",
     .min = 1, .max = 1024},
    {"queue", 0, LLM_OPT_INT, "N",
     "requests that may wait for a slot; past them the answer is 429 overloaded", "64", .min = 0,
     .max = 1000000},
    {"ctx-size", 0, LLM_OPT_INT, "N", "the context length (0: the model's)", "0", .min = 0,
     .max = 1 << 24},
    {"engine-threads", 0, LLM_OPT_INT, "N", "the engine's threads (0: all cores)", "0", .min = 0,
     .max = 1024},
    {"chat-format", 0, LLM_OPT_STRING, "NAME|FILE",
     "how messages become a prompt: chatml, llama3, llama2, alpaca, or a chat template file "
     "(default: the model's own template, else chatml)"},
    {"seed", 0, LLM_OPT_INT, "N", "the sampling seed of requests that carry none", "0", .min = 0,
     .max = 9007199254740992.0},
    {"watch", 0, LLM_OPT_DOUBLE, "SECONDS",
     "check a registry:NAME@ALIAS model's alias this often and serve the version it moves to "
     "(0: on SIGHUP only)",
     "0", .min = 0, .max = 86400},
    {0},
};

enum job_state { JOB_QUEUED, JOB_RUNNING, JOB_DONE };

struct job {
	struct serve_local *L;
	struct llm_httpd_req *req; /* referenced until the job is freed */
	int refs;		   /* under L->mu */
	struct job *prev, *next;   /* L's list of live jobs */
	bool listed;		   /* in that list */
	struct job *qnext;	   /* L's queue */
	struct job *cnext;	   /* L's cancel list (which holds a reference) */
	struct job *fnext;	   /* a list of the worker's own */
	enum job_state state;
	atomic_bool gone;   /* the client went away */
	bool cancel_queued; /* in L's cancel list (under L->mu) */
	bool lost;	    /* the client left after the work was done, before the whole answer
			     * reached it (under L->mu) */
	atomic_bool cancel_sent;

	enum llm_endpoint ep;
	struct serve_caller who;
	char id[64];   /* the response's id */
	int64_t ts_ms; /* wall clock at arrival */
	int64_t created;
	double t0, t_submit, t_first, t_end; /* monotonic ms; 0: not yet */
	char *body;			     /* for the backend */
	size_t body_len;
	char *prompt; /* for the log: the prompt, or the messages as JSON */
	size_t prompt_len;
	bool prompt_is_messages;
	char *echo; /* a stream with echo: the prompt text to send first */
	size_t echo_len;
	bool stream, include_usage;
	int n; /* choices */
	struct llm_limit_ticket ticket;

	/* The worker's alone. */
	bool started;	 /* the event stream has begun */
	bool *role_sent; /* per choice: its first chunk went out */
	struct llm_buf out;

	/* The outcome, for the log. */
	int status;
	int64_t prompt_tokens, completion_tokens;
	char finish[32];
	char err_code[64];
	char *err_msg;
	struct serve_guard *guard; /* guard.c: the findings for the log (NULL: none) */
};

struct serve_local {
	struct serve *S;
	char *ref;
	struct llm_backend_opts bo;
	struct llm_backend *b;
	pthread_t worker;
	bool worker_on;
	int parallel;
	size_t queue_max;

	pthread_mutex_t mu;
	pthread_cond_t cond;
	struct job *qhead, *qtail, *cancels, *all;
	size_t nqueued, running;
	bool stop, abort_all;
	atomic_bool inbox; /* the queue or the cancel list has something for the worker */
	atomic_size_t live;
	long delay_us; /* LLMOPS_SERVE_TEST_DELAY_MS: a pause after each piece, for tests */

	/* /tokenize and /detokenize: the model's tokenizer, one user at a time. */
	pthread_mutex_t tok_mu;
	struct llm_bpe *bpe;
	int bos;
	int n_ctx;

	/* Model refresh. */
	struct serve_version ver;  /* the registry version (ref NULL: not one) */
	char *log_extra;	   /* its members in each log line; NULL: none */
	struct serve_local *older; /* models replaced, still finishing (under S->local_mu) */
	bool spare;		   /* loaded beside another: a failed load is not fatal */
	int load;		   /* 0 loading, 1 loaded, -1 failed: load_diag (under mu) */
	struct llm_diag load_diag;
	int holds;		     /* handlers using it (under mu) */
	bool retired;		     /* replaced: ends once idle and unheld (under mu) */
	bool exited;		     /* its worker has ended (under mu) */
	double g_running, g_waiting; /* what it added to the gauges */
};

static double now_ms(void)
{
	return llm_httpd_now_ms();
}

static uint64_t tag_of(struct job *j)
{
	return (uint64_t)(uintptr_t)j;
}

static struct job *job_of(uint64_t tag)
{
	return (struct job *)(uintptr_t)tag;
}

/* Two models may hold requests at once (a refresh): each adds the change of its own. */
static void set_gauges(struct serve_local *L)
{
	const char *labels[] = {L->S->model_name};
	llm_metric_add(L->S->m.running, labels, (double)L->running - L->g_running);
	llm_metric_add(L->S->m.waiting, labels, (double)L->nqueued - L->g_waiting);
	L->g_running = (double)L->running;
	L->g_waiting = (double)L->nqueued;
}

/* --- the end of a job: its log line ---------------------------------------------------------- */

static const char *endpoint_path(enum llm_endpoint ep)
{
	return ep == LLM_EP_CHAT ? "/v1/chat/completions" : "/v1/completions";
}

static void job_gone(struct job *j);

static void job_free(struct job *j)
{
	struct serve *S = j->L->S;
	if (j->lost)
		job_gone(j);
	double end = j->t_end > 0 ? j->t_end : now_ms();
	struct llm_reqlog_record rec = {
	    .ts_ms = j->ts_ms,
	    .request_id = j->who.request_id,
	    .endpoint = endpoint_path(j->ep),
	    .model = S->model_name,
	    .key_id = j->who.has_key ? j->who.key.id : NULL,
	    .status = j->status,
	    .latency_ms = end - j->t0,
	    .ttft_ms = j->t_first > 0 ? j->t_first - j->t0 : -1,
	    .prompt_tokens = j->prompt_tokens,
	    .completion_tokens = j->completion_tokens,
	    .finish_reason = j->finish[0] ? j->finish : NULL,
	    .output = j->out.data,
	    .output_len = j->out.len,
	    .error_code = j->err_code[0] ? j->err_code : NULL,
	    .error_message = j->err_code[0] ? (j->err_msg ? j->err_msg : "") : NULL,
	    .extra_json = j->L->log_extra,
	};
	if (j->prompt_is_messages) {
		rec.messages_json = j->prompt;
		rec.messages_len = j->prompt_len;
	} else {
		rec.prompt = j->prompt;
		rec.prompt_len = j->prompt_len;
	}
	serve_guard_log(j->guard, &rec); /* guard.c */
	serve_record(S, &rec);
	if (S->limits)
		llm_limits_settle(S->limits, &j->ticket,
				  (j->prompt_tokens > 0 ? j->prompt_tokens : 0) +
				      (j->completion_tokens > 0 ? j->completion_tokens : 0));
	llm_httpd_req_unref(j->req);
	free(j->body);
	free(j->prompt);
	free(j->echo);
	free(j->role_sent);
	free(j->err_msg);
	serve_guard_free(j->guard); /* guard.c */
	llm_buf_free(&j->out);
	atomic_fetch_sub(&j->L->live, 1);
	free(j);
}

static void job_unref(struct job *j)
{
	struct serve_local *L = j->L;
	pthread_mutex_lock(&L->mu);
	bool last = --j->refs == 0;
	if (last && j->listed) {
		if (j->prev)
			j->prev->next = j->next;
		else
			L->all = j->next;
		if (j->next)
			j->next->prev = j->prev;
	}
	pthread_mutex_unlock(&L->mu);
	if (last)
		job_free(j);
}

static void job_error(struct job *j, int status, const char *code, const char *msg)
{
	if (!j->status || (j->lost && !j->err_code[0]))
		j->status = status;
	if (!j->err_code[0]) {
		snprintf(j->err_code, sizeof j->err_code, "%s", code ? code : "error");
		free(j->err_msg);
		j->err_msg = msg ? strdup(msg) : NULL;
	}
}

/* The client left before its answer: the log says 499 (nginx's "client closed request"), or
 * 200 for a stream that had begun. */
static void job_gone(struct job *j)
{
	job_error(j, j->started ? 200 : 499, "client_closed",
		  "the client closed the connection before the answer was complete");
	if (!j->finish[0])
		snprintf(j->finish, sizeof j->finish, "abort");
}

/* --- streaming -------------------------------------------------------------------------------- */

static bool send_json(struct job *j, json_t *chunk)
{
	if (!chunk)
		return false;
	if (j->include_usage && !json_object_get(chunk, "usage"))
		json_object_set_new(chunk, "usage", json_null());
	char *s = json_dumps(chunk, JSON_COMPACT | JSON_REAL_PRECISION(9));
	json_decref(chunk);
	if (!s)
		return false;
	bool ok = llm_httpd_sse_data(j->req, s, strlen(s));
	free(s);
	return ok;
}

static json_t *chunk(struct job *j, json_t *choices)
{
	return json_pack("{s:s,s:s,s:I,s:s,s:o}", "id", j->id, "object",
			 j->ep == LLM_EP_CHAT ? "chat.completion.chunk" : "text_completion",
			 "created", (json_int_t)j->created, "model", j->L->S->model_name, "choices",
			 choices);
}

/* One choice's piece: a chat delta, or a completion's text. */
static json_t *piece(struct job *j, int index, json_t *delta_or_text, json_t *logprobs,
		     const char *finish)
{
	json_t *fr = finish ? json_string(finish) : json_null();
	json_t *lp = logprobs ? logprobs : json_null();
	if (j->ep == LLM_EP_CHAT)
		return json_pack("[{s:i,s:o,s:o,s:o}]", "index", index, "delta", delta_or_text,
				 "logprobs", lp, "finish_reason", fr);
	return json_pack("[{s:i,s:o,s:o,s:o}]", "index", index, "text", delta_or_text, "logprobs",
			 lp, "finish_reason", fr);
}

static bool stream_begin(struct job *j, int index)
{
	if (!j->started) {
		if (!llm_httpd_sse_start(j->req))
			return false;
		j->started = true;
	}
	if (index < 0 || index >= j->n || j->role_sent[index])
		return true;
	j->role_sent[index] = true;
	/* A chat stream opens each choice with its role, as OpenAI does; a completion with echo
	 * opens it with the prompt. */
	if (j->ep == LLM_EP_CHAT)
		return send_json(
		    j, chunk(j, piece(j, index,
				      json_pack("{s:s,s:s}", "role", "assistant", "content", ""),
				      NULL, NULL)));
	if (j->echo)
		return send_json(
		    j, chunk(j, piece(j, index, json_stringn(j->echo, j->echo_len), NULL, NULL)));
	return true;
}

static bool stream_text(struct job *j, int index, const char *text, size_t n)
{
	if (!stream_begin(j, index))
		return false;
	json_t *t = json_stringn(text, n);
	if (!t)
		return true; /* not UTF-8: cannot happen (the engine sends whole characters) */
	json_t *d = j->ep == LLM_EP_CHAT ? json_pack("{s:o}", "content", t) : t;
	return send_json(j, chunk(j, piece(j, index, d, NULL, NULL)));
}

/* The end of a stream from the whole response: each choice's finish_reason (and logprobs),
 * then the usage when asked, then [DONE]. */
static void stream_end(struct job *j, json_t *root)
{
	json_t *choices = json_object_get(root, "choices");
	bool ok = stream_begin(j, -1);
	for (size_t i = 0; ok && i < json_array_size(choices); i++) {
		json_t *c = json_array_get(choices, i);
		json_t *idx = json_object_get(c, "index");
		int index = json_is_integer(idx) ? (int)json_integer_value(idx) : (int)i;
		const char *fr = json_string_value(json_object_get(c, "finish_reason"));
		json_t *lp = json_object_get(c, "logprobs");
		ok = stream_begin(j, index) &&
		     send_json(
			 j, chunk(j, piece(j, index,
					   j->ep == LLM_EP_CHAT ? json_object() : json_string(""),
					   json_is_null(lp) ? NULL : json_incref(lp), fr)));
	}
	json_t *usage = json_object_get(root, "usage");
	if (ok && j->include_usage && usage) {
		json_t *u = chunk(j, json_array());
		if (u)
			json_object_set(u, "usage", usage);
		ok = send_json(j, u);
	}
	if (ok)
		llm_httpd_sse_raw(j->req, "data: [DONE]\n\n", 14);
	llm_httpd_sse_end(j->req);
}

/* --- the worker ------------------------------------------------------------------------------- */

static int error_status(const char *code, enum llm_err err)
{
	if (!strcmp(code, "context_length_exceeded") || !strcmp(code, "invalid_request_error") ||
	    err == LLM_ERR_USAGE || err == LLM_ERR_RANGE)
		return 400;
	return 500;
}

/* Answer a job from the backend's result (on the worker thread). */
static void finish(struct serve_local *L, struct llm_result *res)
{
	struct serve *S = L->S;
	struct job *j = job_of(res->tag);
	pthread_mutex_lock(&L->mu);
	L->running--;
	j->state = JOB_DONE;
	set_gauges(L);
	pthread_mutex_unlock(&L->mu);
	j->t_end = now_ms();
	bool gone = atomic_load(&j->gone);

	if (res->err == LLM_OK) {
		json_t *root = json_loadb(res->body ? res->body : "", res->body_len, JSON_ALLOW_NUL, NULL);
		json_t *usage = json_object_get(root, "usage");
		json_t *pt = json_object_get(usage, "prompt_tokens");
		json_t *ct = json_object_get(usage, "completion_tokens");
		j->prompt_tokens = json_is_integer(pt) ? json_integer_value(pt) : -1;
		j->completion_tokens = json_is_integer(ct) ? json_integer_value(ct) : -1;
		json_t *c0 = json_array_get(json_object_get(root, "choices"), 0);
		const char *fr = json_string_value(json_object_get(c0, "finish_reason"));
		snprintf(j->finish, sizeof j->finish, "%s", fr ? fr : "");
		if (!j->out.len && !j->stream) {
			/* Nothing streamed (an echo of the prompt only): log the answer's text. */
			json_t *t = j->ep == LLM_EP_CHAT
					? json_object_get(json_object_get(c0, "message"), "content")
					: json_object_get(c0, "text");
			if (json_is_string(t))
				llm_buf_append(&j->out, json_string_value(t),
					       json_string_length(t));
		}
		/* guard.c: --guard-output (a whole answer may be redacted before it goes) */
		serve_guard_output(S, &j->guard, j->stream ? NULL : root, j->ep == LLM_EP_CHAT,
				   &j->out);
		if (gone) {
			job_gone(j);
		} else if (!root) {
			job_error(j, 500, "server_error", "the engine's answer is not JSON");
			llm_httpd_error(j->req, 500, "server_error", NULL, "%s", j->err_msg);
		} else if (j->stream) {
			j->status = 200;
			stream_end(j, root);
		} else {
			j->status = 200;
			json_object_set_new(root, "id", json_string(j->id));
			json_object_set_new(root, "model", json_string(S->model_name));
			llm_httpd_reply_json(j->req, 200, root);
		}
		json_decref(root);
	} else if (gone) {
		job_gone(j);
	} else {
		const char *code = res->error_code[0] ? res->error_code : "server_error";
		const char *msg = res->error_message ? res->error_message : "the request failed";
		int status = error_status(code, res->err);
		const char *type = status == 400 ? "invalid_request_error" : "server_error";
		job_error(j, j->started ? 200 : status, code, msg);
		if (j->started) {
			/* Mid-stream: an error event in the shape of an error body, and no [DONE].
			 */
			struct llm_buf b;
			llm_buf_init(&b, 0);
			if (llm_httpd_error_body(&b, type, code, msg) == LLM_OK)
				llm_httpd_sse_data(j->req, b.data, b.len);
			llm_buf_free(&b);
			llm_httpd_sse_end(j->req);
		} else {
			llm_httpd_error(j->req, status, type, code, "%s", msg);
		}
	}

	const char *labels[] = {S->model_name};
	if (j->t_first > 0)
		llm_metric_observe(S->m.ttft, labels, (j->t_first - j->t0) / 1e3);
	if (j->t_first > 0 && j->completion_tokens > 1)
		llm_metric_observe(S->m.tpot, labels,
				   (j->t_end - j->t_first) / 1e3 /
				       (double)(j->completion_tokens - 1));
	llm_metric_observe(S->m.e2e, labels, (j->t_end - j->t0) / 1e3);
	if (j->prompt_tokens > 0)
		llm_metric_add(S->m.prompt_tokens, labels, (double)j->prompt_tokens);
	if (j->completion_tokens > 0)
		llm_metric_add(S->m.generation_tokens, labels, (double)j->completion_tokens);
	job_unref(j);
}

/* A job that cannot run (it failed to submit, or its client left while it waited). */
static void finish_unrun(struct serve_local *L, struct job *j, int status, const char *code,
			 const char *msg)
{
	pthread_mutex_lock(&L->mu);
	if (j->state == JOB_RUNNING)
		L->running--;
	j->state = JOB_DONE;
	set_gauges(L);
	pthread_mutex_unlock(&L->mu);
	j->t_end = now_ms();
	if (atomic_load(&j->gone)) {
		job_gone(j);
	} else {
		job_error(j, status, code, msg);
		llm_httpd_error(j->req, status,
				status == 400 ? "invalid_request_error" : "server_error", code,
				"%s", msg);
	}
	job_unref(j);
}

/* With L->mu held: have the worker cancel a running job. */
static void queue_cancel(struct serve_local *L, struct job *j)
{
	if (j->cancel_queued || atomic_load(&j->cancel_sent))
		return;
	j->cancel_queued = true;
	j->refs++;
	j->cnext = L->cancels;
	L->cancels = j;
	atomic_store(&L->inbox, true);
	pthread_cond_signal(&L->cond);
}

/* Take new jobs and cancellations; runs on the worker thread, between results or inside
 * on_delta. */
static void pump(struct serve_local *L)
{
	struct job *subs = NULL, **tail = &subs, *cancels, *drop = NULL;
	pthread_mutex_lock(&L->mu);
	atomic_store(&L->inbox, false);
	if (L->abort_all) {
		/* Shutting down: running jobs are cancelled (they answer with what they have,
		 * finish_reason "abort"), queued ones are answered 503. */
		L->abort_all = false;
		for (struct job *j = L->all; j; j = j->next)
			if (j->state == JOB_RUNNING)
				queue_cancel(L, j);
		while (L->qhead) {
			struct job *j = L->qhead;
			L->qhead = j->qnext;
			L->nqueued--;
			j->state = JOB_RUNNING; /* finish_unrun takes it from here */
			L->running++;
			j->fnext = drop;
			drop = j;
		}
		L->qtail = NULL;
	}
	while (L->qhead && L->running < (size_t)L->parallel) {
		struct job *j = L->qhead;
		L->qhead = j->qnext;
		if (!L->qhead)
			L->qtail = NULL;
		L->nqueued--;
		j->state = JOB_RUNNING;
		L->running++;
		j->qnext = NULL;
		*tail = j;
		tail = &j->qnext;
	}
	*tail = NULL;
	cancels = L->cancels;
	L->cancels = NULL;
	for (struct job *j = cancels; j; j = j->cnext)
		j->cancel_queued = false;
	set_gauges(L);
	pthread_mutex_unlock(&L->mu);

	while (drop) {
		struct job *j = drop;
		drop = j->fnext;
		finish_unrun(L, j, 503, "shutting_down", "the server is shutting down");
	}
	while (cancels) {
		struct job *j = cancels;
		cancels = j->cnext;
		if (j->state == JOB_RUNNING && !atomic_exchange(&j->cancel_sent, true))
			/* NOT_FOUND: it has finished already and its result is on its way. */
			llm_backend_cancel(L->b, tag_of(j));
		job_unref(j);
	}
	while (subs) {
		struct job *j = subs;
		subs = j->qnext;
		if (atomic_load(&j->gone)) {
			finish_unrun(L, j, 499, "client_closed", "the client left");
			continue;
		}
		j->t_submit = now_ms();
		const char *labels[] = {L->S->model_name};
		llm_metric_observe(L->S->m.queue, labels, (j->t_submit - j->t0) / 1e3);
		struct llm_diag d;
		if (llm_backend_submit(L->b, tag_of(j), j->ep, j->body, j->body_len, &d))
			finish_unrun(L, j, 400, "invalid_request_error", d.msg);
	}
}

static void on_delta(void *ctx, uint64_t tag, int choice, const char *text, size_t n)
{
	struct serve_local *L = ctx;
	struct job *j = job_of(tag);
	if (!atomic_load(&j->gone)) {
		if (j->t_first == 0)
			j->t_first = now_ms();
		if (choice == 0)
			llm_buf_append(&j->out, text, n); /* past the cap the log keeps the start */
		if (j->stream && !stream_text(j, choice, text, n)) {
			/* The client is gone (or does not read): stop decoding for it now. */
			atomic_store(&j->gone, true);
			if (!atomic_exchange(&j->cancel_sent, true))
				llm_backend_cancel(L->b, tag);
		}
	}
	if (L->delay_us > 0) {
		struct timespec ts = {L->delay_us / 1000000, (L->delay_us % 1000000) * 1000};
		nanosleep(&ts, NULL);
	}
	if (atomic_load(&L->inbox))
		pump(L);
}

/* The tokenizer and the numbers /tokenize reports, from the files the engine loaded. */
static enum llm_err load_tokenizer(struct serve_local *L, struct llm_diag *d)
{
	char dir[PATH_MAX], path[PATH_MAX + 32];
	const char *ref = L->ref;
	enum llm_err e;
	if (llm_artifact_is_ref(ref)) {
		if ((e = llm_artifact_resolve(ref, NULL, dir, sizeof dir, d)))
			return e;
		ref = dir;
	}
	size_t n = strlen(ref);
	bool gguf = n > 5 && !strcmp(ref + n - 5, ".gguf");
	int maxpos = 0;
	L->bos = -1;
	if (gguf) {
		const char *slash = strrchr(ref, '/');
		snprintf(path, sizeof path, "%.*s%stokenizer.json", slash ? (int)(slash - ref) : 0,
			 ref, slash ? "/" : "");
		struct llm_gguf *g;
		if ((e = llm_gguf_open(&g, ref, d)))
			return e;
		uint32_t v;
		if (llm_gguf_get_u32(g, "tokenizer.ggml.bos_token_id", &v, NULL) == LLM_OK)
			L->bos = (int)v;
		if (llm_gguf_get_u32(g, "llama.context_length", &v, NULL) == LLM_OK)
			maxpos = (int)v;
		llm_gguf_close(g);
	} else {
		struct llm_model_config mc;
		snprintf(path, sizeof path, "%s/config.json", ref);
		if ((e = llm_model_config_load(&mc, path, d)))
			return e;
		L->bos = mc.bos_token_id;
		maxpos = mc.max_position_embeddings;
		snprintf(path, sizeof path, "%s/tokenizer.json", ref);
	}
	L->n_ctx = L->bo.n_ctx > 0 ? L->bo.n_ctx : maxpos;
	return llm_bpe_open_file(&L->bpe, path, d);
}

static void *worker(void *arg)
{
	struct serve_local *L = arg;
	struct serve *S = L->S;
	struct llm_diag d;
	bool loaded = !llm_backend_open(&L->b, &L->bo, &d) && !load_tokenizer(L, &d);
	pthread_mutex_lock(&L->mu);
	L->load = loaded ? 1 : -1;
	if (!loaded)
		L->load_diag = d;
	pthread_cond_broadcast(&L->cond); /* serve_local_switch waits for this */
	pthread_mutex_unlock(&L->mu);
	if (!loaded) {
		if (!L->spare) {
			S->fail_diag = d;
			atomic_store(&S->failed, true);
		}
		return NULL;
	}
	atomic_store(&S->ready, true);
	for (;;) {
		pthread_mutex_lock(&L->mu);
		while (!L->stop && !L->qhead && !L->cancels && !L->abort_all && L->running == 0 &&
		       !(L->retired && L->holds == 0))
			pthread_cond_wait(&L->cond, &L->mu);
		bool idle = !L->qhead && !L->cancels && !L->abort_all && L->running == 0;
		bool stop = L->stop || (L->retired && L->holds == 0);
		pthread_mutex_unlock(&L->mu);
		if (stop && idle)
			break;
		pump(L);
		if (llm_backend_pending(L->b) == 0)
			continue;
		struct llm_result res = {0};
		int got = llm_backend_next(L->b, &res, &d);
		if (got == 1) {
			finish(L, &res);
		} else if (got < 0) {
			/* The engine itself failed: nothing it holds will come back. */
			S->fail_diag = d;
			atomic_store(&S->failed, true);
			pthread_mutex_lock(&L->mu);
			struct job *run = NULL;
			for (struct job *j = L->all; j; j = j->next)
				if (j->state == JOB_RUNNING) {
					j->refs++;
					j->fnext = run;
					run = j;
				}
			pthread_mutex_unlock(&L->mu);
			while (run) {
				struct job *j = run;
				run = j->fnext;
				finish_unrun(L, j, 500, "server_error", d.msg);
				job_unref(j);
			}
		}
		llm_result_clear(&res);
	}
	pthread_mutex_lock(&L->mu);
	if (L->retired) {
		/* Replaced, and its last request is done: the model's memory goes now.  Nothing
		 * uses the backend or the tokenizer any more (no handler holds this model). */
		llm_backend_close(L->b);
		L->b = NULL;
		llm_bpe_free(L->bpe);
		L->bpe = NULL;
		if (!S->c->quiet)
			llm_cli_error(S->c, "%s: closed after its last request",
				      L->ver.root ? L->ver.root : L->ref);
	}
	L->exited = true;
	pthread_mutex_unlock(&L->mu);
	return NULL;
}

/* --- which model answers ------------------------------------------------------------------ */

/* The model a handler uses, held until model_leave. */
static struct serve_local *model_enter(struct serve *S)
{
	pthread_mutex_lock(&S->local_mu);
	struct serve_local *L = S->local;
	pthread_mutex_lock(&L->mu);
	L->holds++;
	pthread_mutex_unlock(&L->mu);
	pthread_mutex_unlock(&S->local_mu);
	return L;
}

static void model_leave(struct serve_local *L)
{
	pthread_mutex_lock(&L->mu);
	if (--L->holds == 0 && L->retired)
		pthread_cond_signal(&L->cond);
	pthread_mutex_unlock(&L->mu);
}

/* --- the HTTP side -------------------------------------------------------------------------- */

static void on_close(struct llm_httpd_req *r, void *data, bool completed)
{
	(void)r;
	struct job *j = data;
	struct serve_local *L = j->L;
	bool unqueued = false;
	pthread_mutex_lock(&L->mu);
	if (!completed && j->state == JOB_DONE)
		j->lost = true;
	if (!completed && j->state != JOB_DONE) {
		atomic_store(&j->gone, true);
		if (j->state == JOB_QUEUED) {
			/* Never started: out of the queue, no work done. */
			struct job **pp = &L->qhead, *prev = NULL;
			while (*pp && *pp != j) {
				prev = *pp;
				pp = &(*pp)->qnext;
			}
			if (*pp) {
				*pp = j->qnext;
				if (L->qtail == j)
					L->qtail = prev;
				L->nqueued--;
				j->state = JOB_DONE;
				unqueued = true;
				set_gauges(L);
			}
		} else {
			queue_cancel(L, j);
		}
	}
	pthread_mutex_unlock(&L->mu);
	if (unqueued) {
		j->t_end = now_ms();
		job_gone(j);
		job_unref(j); /* the work side's */
	}
	job_unref(j); /* the HTTP side's */
}

static bool get_bool(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		     const json_t *o, const char *name, bool *out)
{
	json_t *v = json_object_get(o, name);
	if (!v || json_is_null(v))
		return true;
	if (!json_is_boolean(v)) {
		serve_fail(S, r, who, 400, "invalid_request_error", "invalid_type",
			   "'%s' must be true or false", name);
		return false;
	}
	*out = json_is_true(v);
	return true;
}

/* A rough bound on the tokens a request may use, for the limits (settled with the usage). */
static int64_t estimate_tokens(const json_t *o, size_t body_len, bool chat, int n_ctx)
{
	json_t *mt = json_object_get(o, "max_tokens");
	if (!json_is_integer(mt) && chat)
		mt = json_object_get(o, "max_completion_tokens");
	int64_t out = json_is_integer(mt) ? json_integer_value(mt) : chat ? 256 : 16;
	if (out < 0)
		out = 0;
	if (out > n_ctx && n_ctx > 0)
		out = n_ctx;
	return (int64_t)(body_len / 4) + out;
}

static void completions(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	bool chat = !strcmp(llm_httpd_path(r), "/v1/chat/completions");
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	json_t *o = serve_body_json(S, r, &who);
	if (!o)
		return;
	struct serve_local *L = model_enter(S);
	struct job *j = NULL;
	struct serve_guard *guard = NULL; /* guard.c */
	bool stream = false, include_usage = false, echo = false;
	json_t *so = json_object_get(o, "stream_options");
	if (!serve_check_model(S, r, &who, o) || !get_bool(S, r, &who, o, "stream", &stream) ||
	    (!chat && !get_bool(S, r, &who, o, "echo", &echo)))
		goto out;
	if (so && !json_is_null(so) &&
	    (!json_is_object(so) || !get_bool(S, r, &who, so, "include_usage", &include_usage))) {
		if (!json_is_object(so))
			serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_type",
				   "'stream_options' must be an object");
		goto out;
	}
	if (!atomic_load(&S->ready)) {
		llm_httpd_add_header(r, "Retry-After", "1");
		serve_fail(S, r, &who, 503, "unavailable", "model_loading",
			   "the model is loading; try again shortly");
		goto out;
	}
	/* guard.c: --guard-input (may answer 400 guard_refused, or redact o in place) */
	if (!serve_guard_input(S, r, &who, o, chat, &guard))
		goto out;
	size_t body_len;
	llm_httpd_body(r, &body_len);
	struct llm_limit_ticket ticket;
	if (!serve_limit(S, r, &who, estimate_tokens(o, body_len, chat, L->n_ctx), &ticket))
		goto out;

	j = calloc(1, sizeof *j);
	json_t *bo = json_copy(o);
	if (!j || !bo) {
		json_decref(bo);
		free(j);
		j = NULL;
		if (S->limits)
			llm_limits_settle(S->limits, &ticket, 0);
		serve_fail(S, r, &who, 500, "server_error", NULL, "out of memory");
		goto out;
	}
	j->L = L;
	j->req = r;
	llm_httpd_req_ref(r); /* the job's, dropped when it is freed */
	j->refs = 2;
	j->ep = chat ? LLM_EP_CHAT : LLM_EP_COMPLETIONS;
	j->who = who;
	j->ticket = ticket;
	j->guard = guard; /* guard.c: the job's now */
	guard = NULL;
	j->t0 = llm_httpd_t0(r);
	j->ts_ms = llm_reqlog_now_ms() - (int64_t)(now_ms() - j->t0);
	j->created = (int64_t)time(NULL);
	j->stream = stream;
	j->include_usage = stream && include_usage;
	j->prompt_tokens = j->completion_tokens = -1;
	snprintf(j->id, sizeof j->id, "%s-%s", chat ? "chatcmpl" : "cmpl", who.request_id + 4);
	llm_buf_init(&j->out, LOG_OUTPUT_MAX);
	json_t *nv = json_object_get(o, "n");
	j->n = json_is_integer(nv) && json_integer_value(nv) >= 1 &&
		       json_integer_value(nv) <= MAX_CHOICES
		   ? (int)json_integer_value(nv)
		   : 1;
	j->role_sent = calloc((size_t)j->n, sizeof *j->role_sent);
	json_t *p = json_object_get(o, chat ? "messages" : "prompt");
	if (json_is_string(p)) {
		j->prompt = strndup(json_string_value(p), json_string_length(p));
		j->prompt_len = json_string_length(p);
		if (echo && stream) {
			j->echo = strndup(json_string_value(p), json_string_length(p));
			j->echo_len = json_string_length(p);
		}
	} else if (p) {
		j->prompt = json_dumps(p, JSON_COMPACT);
		j->prompt_len = j->prompt ? strlen(j->prompt) : 0;
		j->prompt_is_messages = chat;
	}
	/* The backend decides how to answer; streaming is this server's business. */
	json_object_del(bo, "stream");
	json_object_del(bo, "stream_options");
	j->body = json_dumps(bo, JSON_COMPACT);
	json_decref(bo);
	j->body_len = j->body ? strlen(j->body) : 0;
	atomic_fetch_add(&L->live, 1);
	if (!j->body || !j->role_sent) {
		j->refs = 1;
		job_error(j, 500, "server_error", "out of memory");
		llm_httpd_error(r, 500, "server_error", NULL, "out of memory");
		job_unref(j);
		goto out;
	}
	llm_httpd_add_header(r, "x-request-id", who.request_id);

	pthread_mutex_lock(&L->mu);
	/* Room: the free slots (taken at once) and --queue places beyond them. */
	size_t free_slots = L->running < (size_t)L->parallel ? (size_t)L->parallel - L->running : 0;
	bool room = L->nqueued < L->queue_max + free_slots && !L->stop;
	if (room) {
		j->state = JOB_QUEUED;
		if (L->qtail)
			L->qtail->qnext = j;
		else
			L->qhead = j;
		L->qtail = j;
		L->nqueued++;
		j->next = L->all;
		if (L->all)
			L->all->prev = j;
		L->all = j;
		j->listed = true;
		set_gauges(L);
		atomic_store(&L->inbox, true);
		pthread_cond_signal(&L->cond);
	}
	pthread_mutex_unlock(&L->mu);
	if (!room) {
		j->refs = 1;
		j->t_end = now_ms();
		llm_httpd_add_header(r, "Retry-After", "1");
		job_error(j, 429, "overloaded",
			  "the server is overloaded: every slot is busy and the queue is full");
		llm_httpd_error(r, 429, "overloaded", "overloaded",
				"The server is overloaded (%d requests running, %zu queued); try "
				"again shortly.",
				L->parallel, L->queue_max);
		job_unref(j);
		goto out;
	}
	llm_httpd_set_data(r, j, on_close);
out:
	serve_guard_free(guard); /* guard.c */
	model_leave(L);
	json_decref(o);
}

/* Replace bytes that are not UTF-8 with U+FFFD, as a decode of a cut sequence of tokens
 * gives. */
static void utf8_lossy(const char *s, size_t n, struct llm_buf *out)
{
	size_t i = 0;
	while (i < n) {
		size_t k = llm_utf8_valid_prefix(s + i, n - i);
		llm_buf_append(out, s + i, k);
		i += k;
		if (i < n) {
			llm_buf_append(out, "\xEF\xBF\xBD", 3);
			i++;
		}
	}
}

static void log_simple(struct serve_local *L, struct llm_httpd_req *r,
		       const struct serve_caller *who, int status, const char *prompt,
		       size_t prompt_len)
{
	struct llm_reqlog_record rec;
	serve_record_init(L->S, r, who, status, &rec);
	rec.prompt = prompt;
	rec.prompt_len = prompt_len;
	rec.extra_json = L->log_extra;
	serve_record(L->S, &rec);
}

static void tokenize(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	json_t *o = serve_body_json(S, r, &who);
	if (!o)
		return;
	struct serve_local *L = model_enter(S);
	bool special = true;
	json_t *p = json_object_get(o, "prompt");
	if (!p)
		p = json_object_get(o, "content"); /* llama.cpp's name */
	if (!serve_check_model(S, r, &who, o) ||
	    !get_bool(S, r, &who, o, "add_special_tokens", &special))
		goto out;
	if (!json_is_string(p)) {
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_prompt",
			   "'prompt' must be a string");
		goto out;
	}
	if (!atomic_load(&S->ready)) {
		llm_httpd_add_header(r, "Retry-After", "1");
		serve_fail(S, r, &who, 503, "unavailable", "model_loading",
			   "the model is loading; try again shortly");
		goto out;
	}
	struct llm_bpe_ids ids = {0};
	struct llm_diag d;
	pthread_mutex_lock(&L->tok_mu);
	enum llm_err e =
	    llm_bpe_encode(L->bpe, json_string_value(p), json_string_length(p), &ids, &d);
	pthread_mutex_unlock(&L->tok_mu);
	if (e) {
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_prompt",
			   "the prompt cannot be tokenized: %s", d.msg);
	} else {
		json_t *toks = json_array();
		if (special && L->bos >= 0)
			json_array_append_new(toks, json_integer(L->bos));
		for (size_t i = 0; i < ids.n; i++)
			json_array_append_new(toks, json_integer(ids.v[i]));
		json_t *res = json_pack("{s:I,s:i,s:o}", "count", (json_int_t)json_array_size(toks),
					"max_model_len", L->n_ctx, "tokens", toks);
		llm_httpd_add_header(r, "x-request-id", who.request_id);
		llm_httpd_reply_json(r, 200, res);
		json_decref(res);
		log_simple(L, r, &who, 200, json_string_value(p), json_string_length(p));
	}
	llm_bpe_ids_free(&ids);
out:
	model_leave(L);
	json_decref(o);
}

static void detokenize(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	json_t *o = serve_body_json(S, r, &who);
	if (!o)
		return;
	struct serve_local *L = model_enter(S);
	json_t *toks = json_object_get(o, "tokens");
	if (!serve_check_model(S, r, &who, o))
		goto out;
	if (!atomic_load(&S->ready)) {
		llm_httpd_add_header(r, "Retry-After", "1");
		serve_fail(S, r, &who, 503, "unavailable", "model_loading",
			   "the model is loading; try again shortly");
		goto out;
	}
	if (!json_is_array(toks)) {
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_tokens",
			   "'tokens' must be an array of token ids");
		goto out;
	}
	uint32_t vocab = llm_bpe_vocab_size(L->bpe);
	struct llm_buf raw, text;
	llm_buf_init(&raw, 64u << 20);
	llm_buf_init(&text, 0);
	size_t bad = SIZE_MAX;
	for (size_t i = 0; i < json_array_size(toks) && bad == SIZE_MAX; i++) {
		json_t *t = json_array_get(toks, i);
		json_int_t v = json_is_integer(t) ? json_integer_value(t) : -1;
		uint32_t id = (uint32_t)v;
		if (v < 0 || (uint64_t)v >= vocab || llm_bpe_decode(L->bpe, &id, 1, &raw, NULL))
			bad = i;
	}
	if (bad != SIZE_MAX) {
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_tokens",
			   "'tokens[%zu]' is not a token id of this model (0 to %" PRIu32 ")", bad,
			   vocab ? vocab - 1 : 0);
	} else {
		utf8_lossy(raw.data ? raw.data : "", raw.len, &text);
		json_t *res = json_pack("{s:s%}", "prompt", text.data ? text.data : "", text.len);
		llm_httpd_add_header(r, "x-request-id", who.request_id);
		llm_httpd_reply_json(r, 200, res);
		json_decref(res);
		log_simple(L, r, &who, 200, NULL, 0);
	}
	llm_buf_free(&raw);
	llm_buf_free(&text);
out:
	model_leave(L);
	json_decref(o);
}

static void models(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	struct serve_local *L = model_enter(S);
	json_t *m = json_pack("{s:s,s:s,s:I,s:s}", "id", S->model_name, "object", "model",
			      "created", (json_int_t)S->started, "owned_by", "llmops");
	/* The registry version that answers (vLLM's "root" is what the name stands for). */
	if (m && L->ver.ref) {
		json_object_set_new(m, "root", json_string(L->ver.root));
		json_object_set_new(m, "version", json_string(L->ver.version));
		json_object_set_new(m, "artifact", json_string(L->ver.artifact));
	}
	if (m && L->n_ctx > 0)
		json_object_set_new(m, "max_model_len", json_integer(L->n_ctx));
	json_t *res = json_pack("{s:s,s:[o]}", "object", "list", "data", m);
	llm_httpd_add_header(r, "x-request-id", who.request_id);
	llm_httpd_reply_json(r, 200, res);
	json_decref(res);
	log_simple(L, r, &who, 200, NULL, 0);
	model_leave(L);
}

static void local_free(struct serve_local *L)
{
	llm_backend_close(L->b);
	llm_bpe_free(L->bpe);
	pthread_mutex_destroy(&L->tok_mu);
	pthread_cond_destroy(&L->cond);
	pthread_mutex_destroy(&L->mu);
	serve_version_clear(&L->ver);
	free(L->log_extra);
	free(L->ref);
	free(L);
}

/* The registry version L serves: what it opens, reports, and adds to each log line. */
static bool local_set_version(struct serve_local *L, const struct serve_version *v)
{
	L->ver.ref = strdup(v->ref);
	L->ver.root = strdup(v->root);
	L->ver.version = strdup(v->version);
	L->ver.artifact = strdup(v->artifact);
	json_t *o =
	    json_pack("{s:s?,s:s?}", "version", L->ver.version, "artifact", L->ver.artifact);
	char *s = o ? json_dumps(o, JSON_COMPACT) : NULL;
	json_decref(o);
	if (s) {
		/* The members without the braces, as the log wants them. */
		size_t n = strlen(s);
		memmove(s, s + 1, n - 2);
		s[n - 2] = '\0';
	}
	L->log_extra = s;
	free(L->ref);
	L->ref = L->ver.ref ? strdup(L->ver.ref) : NULL;
	L->bo.ref = L->ref;
	return L->ref && L->ver.root && L->ver.version && L->ver.artifact && s;
}

/* A model from the command line's settings: ref, or the version v (NULL: none). */
static struct serve_local *local_new(struct serve *S, const char *ref,
				     const struct serve_version *v)
{
	struct llm_cli *c = S->c;
	struct serve_local *L = calloc(1, sizeof *L);
	if (!L)
		return NULL;
	L->S = S;
	pthread_mutex_init(&L->mu, NULL);
	pthread_cond_init(&L->cond, NULL);
	pthread_mutex_init(&L->tok_mu, NULL);
	L->ref = strdup(ref);
	L->parallel = (int)llm_args_int(&c->args, "parallel");
	L->queue_max = (size_t)llm_args_int(&c->args, "queue");
	const char *delay = getenv("LLMOPS_SERVE_TEST_DELAY_MS");
	if (delay && *delay)
		L->delay_us = (long)(strtod(delay, NULL) * 1000); /* checked by serve_local_start */
	llm_backend_opts_init(&L->bo);
	L->bo.ref = L->ref;
	L->bo.model_name = S->model_name;
	L->bo.concurrency = L->parallel;
	L->bo.n_ctx = (int)llm_args_int(&c->args, "ctx-size");
	L->bo.threads = (int)llm_args_int(&c->args, "engine-threads");
	L->bo.seed = (uint64_t)llm_args_int(&c->args, "seed");
	L->bo.chat_format = llm_args_str(&c->args, "chat-format");
	L->bo.on_delta = on_delta;
	L->bo.on_delta_ctx = L;
	if (!L->ref || (v && v->ref && !local_set_version(L, v))) {
		local_free(L);
		return NULL;
	}
	return L;
}

int serve_local_start(struct serve *S)
{
	struct llm_cli *c = S->c;
	/* Tests need requests that last: a pause after each piece of text makes a tiny model
	 * as slow as they like, with no CPU spent. */
	const char *delay = getenv("LLMOPS_SERVE_TEST_DELAY_MS");
	if (delay && *delay) {
		char *end;
		double ms = strtod(delay, &end);
		if (*end || !(ms >= 0 && ms <= 60000))
			return llm_cli_usage(c, "LLMOPS_SERVE_TEST_DELAY_MS must be 0 to 60000");
	}
	struct serve_local *L = local_new(S, llm_args_str(&c->args, "model"), NULL);
	if (!L) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	pthread_mutex_init(&S->local_mu, NULL);
	S->local = L;
	/* A registry alias is pinned to the version it names now, which refresh.c follows. */
	struct serve_version v;
	int st = serve_refresh_start(S, &v);
	bool ok = st || !v.ref || local_set_version(L, &v);
	serve_version_clear(&v);
	if (st)
		return st;
	if (!ok) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	const struct llm_httpd_route routes[] = {
	    {"POST", "/v1/chat/completions", completions, S},
	    {"POST", "/v1/completions", completions, S},
	    {"GET", "/v1/models", models, S},
	    {"POST", "/tokenize", tokenize, S},
	    {"POST", "/detokenize", detokenize, S},
	};
	struct llm_diag d;
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (llm_httpd_add_route(S->httpd, &routes[i], &d))
			return llm_cli_fail(c, &d);
	if (pthread_create(&L->worker, NULL, worker, L)) {
		llm_cli_error(c, "cannot start the worker thread");
		return LLM_EXIT_IO;
	}
	L->worker_on = true;
	return 0;
}

/* Free the models replaced whose last request has ended (with S->local_mu held). */
static void reap(struct serve *S)
{
	struct serve_local **pp = &S->local->older;
	while (*pp) {
		struct serve_local *O = *pp;
		pthread_mutex_lock(&O->mu);
		bool done = O->exited && atomic_load(&O->live) == 0;
		pthread_mutex_unlock(&O->mu);
		if (!done) {
			pp = &O->older;
			continue;
		}
		*pp = O->older;
		pthread_join(O->worker, NULL);
		local_free(O);
	}
}

enum llm_err serve_local_switch(struct serve *S, const struct serve_version *v, struct llm_diag *d)
{
	struct serve_local *N = local_new(S, v->ref, v);
	if (!N)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	N->spare = true;
	if (pthread_create(&N->worker, NULL, worker, N)) {
		local_free(N);
		return llm_diag_set(d, LLM_ERR_IO, NULL, 0, "cannot start a worker thread");
	}
	pthread_mutex_lock(&N->mu);
	while (N->load == 0)
		pthread_cond_wait(&N->cond, &N->mu);
	bool loaded = N->load > 0;
	/* The server began to stop during the load: the model before finishes what it has. */
	bool stopping = loaded && atomic_load(&S->draining);
	if (!loaded)
		*d = N->load_diag;
	if (stopping) {
		N->stop = true;
		pthread_cond_signal(&N->cond);
	}
	pthread_mutex_unlock(&N->mu);
	if (!loaded || stopping) {
		pthread_join(N->worker, NULL);
		local_free(N);
		if (stopping)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the server is stopping");
		return d->code ? d->code : LLM_ERR_IO;
	}
	N->worker_on = true;
	pthread_mutex_lock(&S->local_mu);
	struct serve_local *old = S->local;
	N->older = old;
	S->local = N;
	pthread_mutex_lock(&old->mu);
	old->retired = true;
	pthread_cond_signal(&old->cond);
	pthread_mutex_unlock(&old->mu);
	reap(S);
	pthread_mutex_unlock(&S->local_mu);
	return LLM_OK;
}

size_t serve_local_busy(struct serve *S)
{
	if (!S->local)
		return 0;
	size_t n = 0;
	pthread_mutex_lock(&S->local_mu);
	for (struct serve_local *L = S->local; L; L = L->older)
		n += atomic_load(&L->live);
	pthread_mutex_unlock(&S->local_mu);
	return n;
}

void serve_local_abort(struct serve *S)
{
	pthread_mutex_lock(&S->local_mu);
	for (struct serve_local *L = S->local; L; L = L->older) {
		pthread_mutex_lock(&L->mu);
		L->abort_all = true;
		atomic_store(&L->inbox, true);
		pthread_cond_signal(&L->cond);
		pthread_mutex_unlock(&L->mu);
	}
	pthread_mutex_unlock(&S->local_mu);
}

void serve_local_stop(struct serve *S)
{
	if (!S->local)
		return;
	serve_refresh_stop(S); /* no switch from here on */
	while (S->local) {
		struct serve_local *L = S->local;
		S->local = L->older;
		if (L->worker_on) {
			pthread_mutex_lock(&L->mu);
			L->stop = true;
			/* What is still queued will not run. */
			L->abort_all = L->qhead != NULL || L->running > 0;
			atomic_store(&L->inbox, true);
			pthread_cond_signal(&L->cond);
			pthread_mutex_unlock(&L->mu);
			pthread_join(L->worker, NULL);
		}
		local_free(L);
	}
	pthread_mutex_destroy(&S->local_mu);
}
