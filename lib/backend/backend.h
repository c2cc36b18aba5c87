/* One interface to a model, whatever answers: the embedded engine (a model directory or a GGUF
 * file) or any OpenAI-compatible server (vLLM, llama.cpp, Ollama, llm-serve) over HTTP.
 *
 * The lingua franca is the OpenAI API itself: a request is the JSON body of a
 * POST /v1/chat/completions or /v1/completions, and a result carries the JSON body of the
 * non-streaming response.  So llm-gen, llm-eval (judges, perplexity) and llm-serve build and
 * read one format, and a request that works against the embedded engine works against vLLM.
 *
 * The interface is asynchronous: submit any number of requests, then take finished ones with
 * llm_backend_next in the order they finish.  The HTTP backend keeps up to `concurrency`
 * requests in flight (libcurl multi) and does what the official openai-python client does
 * about failures (FIELD-NOTES.md, Evaluation): retries on 408, 409, 429, 5xx and connection
 * errors, server hints from x-should-retry, retry-after-ms and retry-after, exponential backoff
 * with jitter, never a retry of insufficient_quota; on a 429 it halves its concurrency and
 * grows it back one step per success; requests-per-minute and tokens-per-minute limits pace
 * the submissions.  With `stream` it asks for server-sent events (so ttft_ms is measured, not
 * guessed) and assembles the chunks into the same non-streaming response body; an error event
 * or a connection dropped mid-stream is a failed attempt, retried like any other.
 *
 * The engine backend decodes up to `concurrency` requests together (one llm_kv slot each),
 * renders chat messages with the model's chat template, tokenizes with its tokenizer.json,
 * and honours the OpenAI sampling fields (max_tokens, temperature, top_p, top_k, min_p,
 * frequency/presence penalties, repetition_penalty, seed, stop, n, logprobs/top_logprobs)
 * and, for /v1/completions, echo with logprobs (prompt scoring: max_tokens 0, echo true,
 * logprobs 1 gives the log-probability of every prompt token, as vLLM does).
 *
 * Nothing here prints or exits.  A backend is used by one thread at a time. */
#ifndef LLM_BACKEND_BACKEND_H
#define LLM_BACKEND_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum llm_endpoint {
	LLM_EP_CHAT = 0,	/* /v1/chat/completions */
	LLM_EP_COMPLETIONS = 1, /* /v1/completions */
};

/* "chat/completions" or "completions": the path below the base URL. */
const char *llm_endpoint_path(enum llm_endpoint ep);

struct llm_backend_opts {
	/* The model reference, as DESIGN.md section 4: a directory, a .gguf file, or an
	 * http(s)://host[:port]/v1 base URL, or an artifact (NAME-VERSION.tar.gz) or
	 * registry:NAME@VERSION|ALIAS reference, which lib/artifact/resolve.h verifies and unpacks
	 * into a cache before the engine loads it. */
	const char *ref;
	/* For a URL: the "model" field to send when the request has none (--model-name).  For a
	 * local model: the name responses report (default: the reference as given). */
	const char *model_name;
	const char *api_key;	 /* URL only: sent as "Authorization: Bearer KEY"; NULL for none */
	int concurrency;	 /* requests in flight (HTTP) or decoded together (engine); >= 1 */
	double rpm;		 /* requests per minute, 0 for no limit (HTTP) */
	double tpm;		 /* tokens per minute, 0 for no limit (HTTP); a request counts its
				  * prompt bytes / 4 plus max_tokens, corrected by the usage that
				  * comes back.  Both limits pace through token buckets that hold
				  * one second's worth, so a minute's worth never goes at once */
	int max_retries;	 /* retries after the first attempt (openai-python's default: 2) */
	double max_retry_after_s; /* a longer server hint is not waited for (default 120) */
	double timeout_s;	 /* per attempt, the whole transfer, 0 for none (HTTP) */
	bool stream;		 /* HTTP: ask for SSE with stream_options.include_usage */
	int threads;		 /* engine: threads, 0 for the default */
	int n_ctx;		 /* engine: context length, 0 for the model's */
	uint64_t seed;		 /* jitter of the backoff; engine: the sampling seed when a
				  * request carries none */
	/* Called with each piece of generated text as it arrives (streamed HTTP or engine), for
	 * progress and for a server that streams; may be NULL.  choice is the OpenAI index.  It
	 * runs inside llm_backend_next.  Over HTTP, text from an attempt that then fails (a
	 * dropped stream, an error event) has been delivered already, and the retry delivers
	 * its own text from the start. */
	void (*on_delta)(void *ctx, uint64_t tag, int choice, const char *text, size_t n);
	void *on_delta_ctx;
	/* Engine: how chat messages become a prompt.  "chatml", "llama3", "llama2" or "alpaca"
	 * (the built-in formats, as llm-tune train --chat-format renders them), or the path of a
	 * tokenizer_config.json or .jinja chat template.  NULL: the model's own chat_template
	 * (tokenizer_config.json, or a GGUF's tokenizer.chat_template) when it has one, else
	 * chatml, llm-tune train's default. */
	const char *chat_format;
};

/* Defaults: concurrency 1, max_retries 2, max_retry_after_s 120, everything else 0/NULL. */
void llm_backend_opts_init(struct llm_backend_opts *o);

struct llm_result {
	uint64_t tag;		/* the caller's, from llm_backend_submit */
	enum llm_err err;	/* LLM_OK when body holds a successful response; else LLM_ERR_REMOTE
				 * (the server said no, after retries), LLM_ERR_IO (connection,
				 * timeout), LLM_ERR_RANGE (context too long, engine), ... */
	int status;		/* the last HTTP status, 0 when none came (engine, connection) */
	char *body;		/* the response JSON (non-streaming shape: id, object, created,
				 * model, choices[], usage), NUL-terminated; NULL on error */
	size_t body_len;
	char error_code[64];	/* on error: the OpenAI error type or code ("rate_limit_exceeded",
				 * "insufficient_quota", "timeout", "connection",
				 * "context_length_exceeded", "invalid_request_error", ...) */
	char *error_message;	/* on error: a readable message (server's, or ours), else NULL */
	double latency_ms;	/* submit (after pacing) to the end of the last attempt */
	double ttft_ms;		/* from the same start to the first content token of the attempt
				 * that answered; -1 when not measured (not streamed) */
	int attempts;		/* 1 + retries made */
};

/* Free what a result holds and zero it. */
void llm_result_clear(struct llm_result *r);

struct llm_backend;

/* Open the backend the reference names.  A directory or .gguf loads the model (errors as
 * modeldir.h says); a URL is checked for shape only (nothing is sent).  LLM_ERR_USAGE for a
 * reference of no known kind, naming it. */
enum llm_err llm_backend_open(struct llm_backend **out, const struct llm_backend_opts *o,
			      struct llm_diag *diag);
void llm_backend_close(struct llm_backend *b);

/* The model name responses carry and records should show. */
const char *llm_backend_model(const struct llm_backend *b);
/* True for an HTTP backend (a remote server), false for the embedded engine. */
bool llm_backend_is_remote(const struct llm_backend *b);

/* Queue a request: body is the OpenAI request JSON (an object; "stream" and "stream_options"
 * are the backend's to set, and "model" is added when absent).  Returns at once; the request
 * runs while llm_backend_next is called.  LLM_ERR_USAGE when body is not a JSON object. */
enum llm_err llm_backend_submit(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep,
				const char *body, size_t len, struct llm_diag *diag);

/* Work until one submitted request has finished, successfully or not, and move its result
 * into *out (clear it with llm_result_clear).  Returns 1 with a result, 0 when nothing is
 * pending, or -1 on a failure of the backend itself (not of a request), with diag set. */
int llm_backend_next(struct llm_backend *b, struct llm_result *out, struct llm_diag *diag);

/* Requests submitted and not yet returned by llm_backend_next. */
size_t llm_backend_pending(const struct llm_backend *b);

/* Stop a submitted request early (its client went away).  It still comes back from
 * llm_backend_next, soon: from the engine as a response with what was generated so far and
 * finish_reason "abort" (a request still waiting for a slot: nothing generated); over HTTP as
 * an error with error_code "cancelled" (the transfer is dropped, nothing is retried).
 * LLM_ERR_NOT_FOUND when no unfinished request has the tag (it finished already: its result
 * stands), LLM_ERR_USAGE when the backend cannot cancel.
 *
 * llm_backend_submit and llm_backend_cancel may also be called from inside on_delta (that is,
 * inside llm_backend_next, on its thread): a server that owns the backend on one thread takes
 * new requests and cancellations there while long generations run. */
enum llm_err llm_backend_cancel(struct llm_backend *b, uint64_t tag);

/* --- for implementations (backend.c dispatches to these) ------------------------------------ */

struct llm_backend_ops {
	enum llm_err (*submit)(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep,
			       const char *body, size_t len, struct llm_diag *diag);
	int (*next)(struct llm_backend *b, struct llm_result *out, struct llm_diag *diag);
	size_t (*pending)(const struct llm_backend *b);
	void (*close)(struct llm_backend *b);
	enum llm_err (*cancel)(struct llm_backend *b, uint64_t tag); /* optional */
};

/* Every implementation's state starts with this. */
struct llm_backend {
	const struct llm_backend_ops *ops;
	char *model; /* llm_backend_model's answer, owned */
	bool remote;
};

/* lib/backend/http.c: an OpenAI-compatible server. */
enum llm_err llm_backend_open_http(struct llm_backend **out, const struct llm_backend_opts *o,
				   struct llm_diag *diag);
/* lib/backend/engine.c: the embedded engine on a model directory or GGUF file. */
enum llm_err llm_backend_open_engine(struct llm_backend **out, const struct llm_backend_opts *o,
				     struct llm_diag *diag);

#endif
