/* OpenAI request bodies from sampling settings, and the answers read back out of responses.
 *
 * llm-gen sends a record's prompt or messages; llm-eval's judge sends a rubric; both speak the
 * OpenAI API through lib/backend/backend.h, so the one place that knows how the command-line
 * sampling options map onto the request fields, and where the text, finish reason, usage and
 * log-probabilities sit in a response, is here.
 *
 * Field mapping (OpenAI names; vLLM and the embedded engine take the extra ones top_k, min_p
 * and repetition_penalty at the top level of the body):
 *   max_tokens, temperature, top_p, top_k, min_p, frequency_penalty, presence_penalty,
 *   repetition_penalty, seed, stop (an array), n;
 *   logprobs K: chat gets "logprobs": true and "top_logprobs": K, completions "logprobs": K.
 * A setting left unset is not sent, so the server's default applies.  params (--params) is
 * merged last: its members replace those built here. */
#ifndef LLM_BACKEND_REQUEST_H
#define LLM_BACKEND_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "backend/backend.h"
#include "core/err.h"

struct llm_sampling {
	const char *model;  /* the "model" field, or NULL to leave it to the backend */
	int64_t max_tokens; /* < 0: unset */
	double temperature; /* NAN: unset (for this and the other doubles) */
	double top_p;
	double min_p;
	double frequency_penalty;
	double presence_penalty;
	double repetition_penalty;
	int64_t top_k; /* < 0: unset */
	bool has_seed;
	int64_t seed;
	char *const *stop; /* nstop strings */
	size_t nstop;
	int64_t n;	      /* < 1: unset (the API's default is 1) */
	int64_t logprobs;     /* < 0: unset; else the number of alternatives, 0..20 */
	const char *system;   /* chat: a system message put first when the messages have none */
	const json_t *params; /* an object merged into the body last, or NULL */
};

/* Everything unset. */
void llm_sampling_init(struct llm_sampling *s);

/* A /v1/chat/completions body for messages (an array of message objects, each with a string
 * "role"; borrowed and copied).  LLM_ERR_TYPE, naming the message, when the array is not
 * that. */
enum llm_err llm_request_chat(const struct llm_sampling *s, const json_t *messages, json_t **body,
			      struct llm_diag *diag);
/* A /v1/completions body for a prompt (UTF-8, len bytes). */
enum llm_err llm_request_completion(const struct llm_sampling *s, const char *prompt, size_t len,
				    json_t **body, struct llm_diag *diag);
/* A one-message chat: the prompt as the user's turn (after s->system when set). */
enum llm_err llm_request_chat_prompt(const struct llm_sampling *s, const char *prompt, size_t len,
				     json_t **body, struct llm_diag *diag);

/* Whether the same body must give the same answer, so that a cached answer may stand in for
 * it: greedy ("temperature": 0) or seeded ("seed" present).  A body without "temperature" is
 * sampled, since the API's default temperature is 1. */
bool llm_request_deterministic(const json_t *body);

/* The canonical text of a body: compact, keys sorted at every level, reals with 17 digits; a
 * malloc'd string, or NULL when out of memory.  Two bodies that mean the same give the same
 * text whatever order their members were built in. */
char *llm_request_canonical(const json_t *body);

/* What a response says, choice by choice (sorted by their "index"). */
struct llm_response {
	json_t *root;		/* the whole response; owned */
	enum llm_endpoint ep;	/* chat when the choices have "message", else completions */
	size_t n;		/* choices */
	json_t *outputs;	/* array: each choice's text (message.content or text), or null */
	json_t *finish_reasons; /* array: each choice's finish_reason, or null */
	json_t *logprobs;	/* array: each choice's logprobs, or null */
	bool has_logprobs;	/* some choice has non-null logprobs */
	json_t *usage;	   /* {"prompt_tokens","completion_tokens"} when the response has usage,
			    * else NULL */
	const char *model; /* the response's "model", or NULL; points into root */
};

/* Parse a non-streaming response body.  LLM_ERR_FORMAT when it is not a response (no choices
 * array, a choice without text or message); a body carrying an "error" object is
 * LLM_ERR_REMOTE with the server's message. */
enum llm_err llm_response_parse(const char *body, size_t len, struct llm_response *r,
				struct llm_diag *diag);
void llm_response_free(struct llm_response *r);

#endif
