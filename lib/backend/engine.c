/* The embedded engine behind the backend interface: OpenAI request bodies in, OpenAI response
 * bodies out, decoded by continuous batching on one key/value cache.
 *
 * A request is parsed, checked, rendered and tokenized when it is submitted, so a bad one
 * becomes a finished result at once.  Each of its n choices is a unit of work that needs one
 * cache slot: a choice waits in a queue until a slot is free, feeds the prompt (prefill), then
 * one token per step (decode).  Every step is one llm_kv_eval over all the busy slots: one
 * entry per decoding choice and up to PREFILL_BUDGET prompt tokens of the choices still
 * prefilling, so a long prompt does not stall the others for more than a step.  Queued choices
 * take slots as soon as others finish, between steps.  The choices of one request are decoded
 * side by side (n > 1 takes n slots when they are free), each prefilling the prompt itself,
 * with seeds seed, seed + 1, ...: choice 0 is what the same request with n = 1 gives.
 *
 * Prompts are built the way llm-tune train builds its examples, so a model fine-tuned on
 * messages is asked in the format it learnt: the built-in chat formats (ChatML unless the model
 * or opts->chat_format says otherwise) after the model's BOS token, with special tokens encoded
 * as text, as training encodes them; a model's own Jinja chat_template is rendered as
 * transformers renders it (it writes bos_token itself) and its special tokens are recognised,
 * as transformers' tokenizer does.  The end-of-turn marker of the format (<|im_end|>,
 * <|eot_id|>, </s>, or the template's eos_token) stops a chat answer, as text or as a token. */
#include "config.h"

#include "backend/backend.h"

#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "core/buf.h"
#include "core/hash.h"
#include "core/json.h"
#include "engine/generate.h"
#include "engine/gguf.h"
#include "engine/lora.h"
#include "engine/modeldir.h"
#include "text/bpe.h"
#include "text/template.h"

/* Prompt tokens fed per step, over all prefilling choices: bounds the step's scratch.  While
 * other choices are decoding, a step feeds fewer, so that a long prompt arriving delays the
 * running streams' next tokens by a short step rather than a whole prefill (chunked prefill,
 * as vLLM and llama.cpp schedule it): the newcomer's first token comes a little later. */
#define PREFILL_BUDGET 512
#define PREFILL_BUDGET_BUSY 64
/* Prompt positions scored per step: each keeps a row of vocab_size logits. */
#define SCORE_ROWS 256
/* The most choices (n) and stop strings one request may ask for. */
#define MAX_CHOICES 128
#define MAX_STOP    64
/* A rendered prompt or a response body beyond this is refused. */
#define MAX_TEXT ((size_t)64 << 20)

struct engine;
struct request;

/* One choice of a request: one cache slot while it runs. */
struct choice {
	struct request *r;
	int index;
	int slot;	/* -1 while queued or after it ended */
	size_t fed;	/* prompt tokens in the cache */
	size_t to_feed; /* prompt tokens to feed: all, or all but the last when not generating */
	bool scoring;	/* computes the prompt's log-probabilities (echo with logprobs) */
	bool seq_live;	/* seq holds a started generation */
	bool decoding;	/* the prompt is in; next is the token to feed */
	bool done;
	uint32_t next;
	struct llm_gen_seq seq;
	struct llm_gen_result out;
	struct choice *qnext; /* the wait queue */
};

struct request {
	struct engine *e;
	uint64_t tag;
	enum llm_endpoint ep;
	double t0;   /* submit time, ms */
	double ttft; /* ms, -1 until the first token */
	uint32_t *prompt;
	size_t n_prompt;
	char *prompt_text; /* completions: the prompt as text, for echo */
	size_t prompt_text_len;
	bool echo;
	int logprobs; /* completions: logprobs N; chat: top_logprobs; -1 when not asked */
	int max_tokens;
	struct llm_gen_params gp;
	char **stop;
	size_t n_stop;
	uint32_t *stop_ids;
	size_t n_stop_ids;
	uint64_t seed;
	int n, n_done;
	struct choice *ch;
	float *plp;			/* (n_prompt) prompt log-probabilities, [0] unused */
	struct llm_sample_result *ptop; /* (n_prompt) their alternatives, when logprobs > 0 */
	bool finished;
	bool cancelled; /* llm_backend_cancel: end at the next step with what it has */
	struct llm_result res;
	struct request *next; /* the done list */
};

struct engine {
	struct llm_backend base;
	struct llm_model *m;
	struct llm_bpe *bpe;
	uint32_t bpe_vocab;
	struct llm_chat_template *tmpl; /* NULL: the built-in format fmt */
	enum llm_chat_format fmt;
	uint32_t turn_ids[2]; /* the end-of-turn tokens a chat answer stops at */
	size_t n_turn_ids;
	const char *turn_str; /* the end-of-turn text, or NULL */
	char *turn_owned;     /* turn_str when it comes from the template */
	int n_ctx, n_slots;
	int threads;
	uint64_t seed;
	void (*on_delta)(void *ctx, uint64_t tag, int choice, const char *text, size_t n);
	void *on_delta_ctx;

	struct llm_kv *kv;
	struct llm_batch batch;
	struct choice **slot; /* (n_slots) the choice in each slot */
	struct choice **ent;  /* per batch entry: its choice */
	size_t *ent_pos;      /* per batch entry: its prompt position, or SIZE_MAX for decode */
	size_t ent_cap;
	struct choice *wait_head, *wait_tail;
	struct request *done_head, *done_tail;
	size_t pending;
	size_t n_cancel; /* requests marked cancelled since the last sweep */
	struct llm_buf scratch;
};

static double now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* --- requests: errors and cleanup ------------------------------------------------------------ */

static void request_free(struct request *r)
{
	if (!r)
		return;
	for (int i = 0; r->ch && i < r->n; i++) {
		if (r->ch[i].seq_live)
			llm_gen_seq_free(&r->ch[i].seq, false);
		llm_gen_result_free(&r->ch[i].out);
	}
	free(r->ch);
	for (size_t i = 0; i < r->n_stop; i++)
		free(r->stop[i]);
	free(r->stop);
	free(r->stop_ids);
	free(r->prompt);
	free(r->prompt_text);
	free(r->plp);
	free(r->ptop);
	llm_result_clear(&r->res);
	free(r);
}

/* Record why the request fails; the first reason wins.  Returns err for one-line use. */
static enum llm_err req_error(struct request *r, enum llm_err err, const char *code,
			      const char *fmt, ...) __attribute__((format(printf, 4, 5)));
static enum llm_err req_error(struct request *r, enum llm_err err, const char *code,
			      const char *fmt, ...)
{
	if (r->res.err)
		return r->res.err;
	r->res.err = err;
	snprintf(r->res.error_code, sizeof r->res.error_code, "%s", code);
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	free(r->res.error_message);
	r->res.error_message = strdup(msg);
	return err;
}

static enum llm_err bad_request(struct request *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static enum llm_err bad_request(struct request *r, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return req_error(r, LLM_ERR_USAGE, "invalid_request_error", "%s", msg);
}

/* --- reading the request's fields ---------------------------------------------------------- */

/* Each getter: 0 when the field is absent or null, 1 when read, -1 when wrong (the request's
 * error is then set). */

static int get_int(struct request *r, json_t *o, const char *k, long long lo, long long hi,
		   long long *out)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	double d = json_is_real(v) ? json_real_value(v) : 0.5;
	if (json_is_integer(v))
		*out = json_integer_value(v);
	else if (json_is_real(v) && d == floor(d) && fabs(d) < 9e15)
		*out = (long long)d;
	else
		return bad_request(r, "'%s' must be an integer", k), -1;
	if (*out < lo || *out > hi)
		return bad_request(r, "'%s' is %lld; it must be from %lld to %lld", k, *out, lo,
				   hi),
		       -1;
	return 1;
}

static int get_num(struct request *r, json_t *o, const char *k, double lo, double hi, bool lo_open,
		   double *out)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_number(v))
		return bad_request(r, "'%s' must be a number", k), -1;
	*out = json_number_value(v);
	if (!(lo_open ? *out > lo : *out >= lo) || !(*out <= hi))
		return bad_request(r, "'%s' is %g; it must be %s %g and at most %g", k, *out,
				   lo_open ? "above" : "at least", lo, hi),
		       -1;
	return 1;
}

static int get_bool(struct request *r, json_t *o, const char *k, bool *out)
{
	json_t *v = json_object_get(o, k);
	if (!v || json_is_null(v))
		return 0;
	if (!json_is_boolean(v))
		return bad_request(r, "'%s' must be true or false", k), -1;
	*out = json_is_true(v);
	return 1;
}

static enum llm_err read_stop(struct request *r, json_t *o)
{
	json_t *v = json_object_get(o, "stop");
	bool none = !v || json_is_null(v);
	size_t n = none ? 0 : json_is_array(v) ? json_array_size(v) : 1;
	if (!none && !json_is_string(v) && !json_is_array(v))
		return bad_request(r, "'stop' must be a string or an array of strings");
	if (n > MAX_STOP)
		return bad_request(r, "'stop' has %zu strings; at most %d are allowed", n,
				   MAX_STOP);
	r->stop = calloc(n + 1, sizeof *r->stop); /* room for the end-of-turn marker */
	if (!r->stop)
		return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	for (size_t i = 0; i < n; i++) {
		json_t *s = json_is_array(v) ? json_array_get(v, i) : v;
		if (!json_is_string(s))
			return bad_request(r, "'stop[%zu]' must be a string", i);
		if (json_string_length(s) == 0)
			continue; /* an empty stop string stops nothing */
		if (!(r->stop[r->n_stop] = strndup(json_string_value(s), json_string_length(s))))
			return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
		r->n_stop++;
	}
	return LLM_OK;
}

static enum llm_err add_stop_id(struct request *r, uint32_t id)
{
	for (size_t i = 0; i < r->n_stop_ids; i++)
		if (r->stop_ids[i] == id)
			return LLM_OK;
	uint32_t *v = realloc(r->stop_ids, (r->n_stop_ids + 1) * sizeof *v);
	if (!v)
		return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	r->stop_ids = v;
	r->stop_ids[r->n_stop_ids++] = id;
	return LLM_OK;
}

/* vLLM's stop_token_ids: more tokens that end generation. */
static enum llm_err read_stop_ids(struct request *r, json_t *o, int vocab)
{
	json_t *v = json_object_get(o, "stop_token_ids");
	if (!v || json_is_null(v))
		return LLM_OK;
	if (!json_is_array(v))
		return bad_request(r, "'stop_token_ids' must be an array of token ids");
	for (size_t i = 0; i < json_array_size(v); i++) {
		json_t *t = json_array_get(v, i);
		if (!json_is_integer(t) || json_integer_value(t) < 0 ||
		    json_integer_value(t) >= vocab)
			return bad_request(r, "'stop_token_ids[%zu]' must be a token id below %d",
					   i, vocab);
		if (add_stop_id(r, (uint32_t)json_integer_value(t)))
			return r->res.err;
	}
	return LLM_OK;
}

/* --- prompts ------------------------------------------------------------------------------ */

static enum llm_err add_ids(struct request *r, const uint32_t *ids, size_t n)
{
	uint32_t *v = realloc(r->prompt, (r->n_prompt + n + 1) * sizeof *v);
	if (!v)
		return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	r->prompt = v;
	if (n)
		memcpy(r->prompt + r->n_prompt, ids, n * sizeof *ids);
	r->n_prompt += n;
	return LLM_OK;
}

static enum llm_err encode(struct request *r, const char *s, size_t n)
{
	struct llm_bpe_ids ids = {0};
	struct llm_diag d;
	enum llm_err e = llm_bpe_encode(r->e->bpe, s, n, &ids, &d);
	if (e)
		req_error(r, e == LLM_ERR_NOMEM ? LLM_ERR_NOMEM : LLM_ERR_USAGE,
			  e == LLM_ERR_NOMEM ? "server_error" : "invalid_request_error",
			  "the prompt cannot be tokenized: %s", d.msg);
	else
		e = add_ids(r, ids.v, ids.n);
	llm_bpe_ids_free(&ids);
	return e;
}

/* The model's BOS first, as llm-tune train starts every example. */
static enum llm_err add_bos(struct request *r)
{
	int bos = r->e->m->config.bos_token_id;
	uint32_t id = (uint32_t)bos;
	return bos >= 0 ? add_ids(r, &id, 1) : LLM_OK;
}

/* A message's content as a string: a string, null (""), or the text parts of an array. */
static enum llm_err content_text(struct request *r, size_t i, json_t *c, struct llm_buf *out)
{
	llm_buf_clear(out);
	if (!c || json_is_null(c))
		return LLM_OK;
	if (json_is_string(c))
		return llm_buf_append(out, json_string_value(c), json_string_length(c))
			   ? bad_request(r, "'messages[%zu].content' is too long", i)
			   : LLM_OK;
	if (!json_is_array(c))
		return bad_request(r,
				   "'messages[%zu].content' must be a string or an array of "
				   "content parts",
				   i);
	for (size_t j = 0; j < json_array_size(c); j++) {
		json_t *p = json_array_get(c, j);
		const char *type = json_string_value(json_object_get(p, "type"));
		json_t *text = json_object_get(p, "text");
		if (!json_is_object(p) || !type || strcmp(type, "text") || !json_is_string(text))
			return bad_request(r,
					   "'messages[%zu].content[%zu]' must be a text part "
					   "{\"type\": \"text\", \"text\": string}",
					   i, j);
		if (llm_buf_append(out, json_string_value(text), json_string_length(text)))
			return bad_request(r, "'messages[%zu].content' is too long", i);
	}
	return LLM_OK;
}

/* The messages with every content a string, the other members kept for templates. */
static json_t *normalize_messages(struct request *r, json_t *msgs)
{
	if (!json_is_array(msgs)) {
		bad_request(r, msgs ? "'messages' must be an array of messages"
				    : "'messages' is required");
		return NULL;
	}
	if (json_array_size(msgs) == 0) {
		bad_request(r, "'messages' must not be empty");
		return NULL;
	}
	json_t *out = json_array();
	struct llm_buf b;
	llm_buf_init(&b, MAX_TEXT);
	enum llm_err e =
	    out ? LLM_OK : req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	for (size_t i = 0; !e && i < json_array_size(msgs); i++) {
		json_t *m = json_array_get(msgs, i);
		if (!json_is_object(m)) {
			e = bad_request(r, "'messages[%zu]' must be an object", i);
			break;
		}
		if (!json_is_string(json_object_get(m, "role"))) {
			e = bad_request(r, "'messages[%zu].role' must be a string", i);
			break;
		}
		if ((e = content_text(r, i, json_object_get(m, "content"), &b)))
			break;
		json_t *copy = json_copy(m);
		if (!copy ||
		    json_object_set_new(copy, "content",
					json_stringn(b.data ? b.data : "", b.len)) ||
		    json_array_append_new(out, copy))
			e = req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	}
	llm_buf_free(&b);
	if (e) {
		json_decref(out);
		return NULL;
	}
	return out;
}

static enum llm_err chat_prompt(struct request *r, json_t *body)
{
	struct engine *e = r->e;
	json_t *msgs = normalize_messages(r, json_object_get(body, "messages"));
	if (!msgs)
		return r->res.err;
	struct llm_buf text;
	llm_buf_init(&text, MAX_TEXT);
	struct llm_diag d;
	enum llm_err err;
	if (e->tmpl)
		err = llm_chat_template_render(e->tmpl, msgs, true, &text, NULL, &d);
	else
		err = llm_chat_render(e->fmt, msgs, true, &text, NULL, &d);
	json_decref(msgs);
	if (err == LLM_ERR_NOMEM)
		req_error(r, err, "server_error", "out of memory");
	else if (err)
		bad_request(r, "the messages cannot be rendered with the chat template: %s", d.msg);
	else if (!(err = e->tmpl ? LLM_OK : add_bos(r)))
		err = encode(r, text.data ? text.data : "", text.len);
	llm_buf_free(&text);
	return err;
}

static enum llm_err completion_prompt(struct request *r, json_t *body)
{
	json_t *p = json_object_get(body, "prompt");
	int vocab = r->e->m->config.vocab_size;
	if (json_is_array(p) && json_array_size(p) == 1 && !json_is_integer(json_array_get(p, 0)))
		p = json_array_get(p, 0); /* a batch of one prompt */
	if (json_is_string(p)) {
		r->prompt_text = strndup(json_string_value(p), json_string_length(p));
		r->prompt_text_len = json_string_length(p);
		if (!r->prompt_text)
			return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
		enum llm_err e = add_bos(r);
		return e ? e : encode(r, r->prompt_text, r->prompt_text_len);
	}
	if (!json_is_array(p))
		return bad_request(r, p ? "'prompt' must be a string, an array of one string, or "
					  "an array of token ids"
					: "'prompt' is required");
	if (json_array_size(p) > 0 && !json_is_integer(json_array_get(p, 0)))
		return bad_request(r, "'prompt' holds several prompts; send one per request");
	/* Token ids, taken as they are (no BOS added). */
	for (size_t i = 0; i < json_array_size(p); i++) {
		json_t *t = json_array_get(p, i);
		if (!json_is_integer(t) || json_integer_value(t) < 0 ||
		    json_integer_value(t) >= vocab)
			return bad_request(r, "'prompt[%zu]' must be a token id below %d", i,
					   vocab);
		uint32_t id = (uint32_t)json_integer_value(t);
		enum llm_err e = add_ids(r, &id, 1);
		if (e)
			return e;
	}
	struct llm_buf b;
	llm_buf_init(&b, MAX_TEXT);
	for (size_t i = 0; i < r->n_prompt; i++)
		if (r->prompt[i] < r->e->bpe_vocab)
			llm_bpe_decode(r->e->bpe, &r->prompt[i], 1, &b, NULL);
	r->prompt_text_len = llm_utf8_valid_prefix(b.data ? b.data : "", b.len);
	r->prompt_text = strndup(b.data ? b.data : "", r->prompt_text_len);
	llm_buf_free(&b);
	return r->prompt_text ? LLM_OK
			      : req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
}

/* --- parsing a request -------------------------------------------------------------------- */

static enum llm_err decode_token(void *ctx, const uint32_t *ids, size_t n, struct llm_buf *out,
				 struct llm_diag *diag)
{
	struct engine *e = ctx;
	for (size_t i = 0; i < n; i++) {
		/* Ids the model has beyond its tokenizer (a padded vocabulary) have no text. */
		if (ids[i] >= e->bpe_vocab)
			continue;
		enum llm_err err = llm_bpe_decode(e->bpe, &ids[i], 1, out, diag);
		if (err && err != LLM_ERR_RANGE)
			return err;
	}
	return LLM_OK;
}

static bool on_text(void *ctx, const char *piece, size_t n)
{
	struct choice *c = ctx;
	struct engine *e = c->r->e;
	if (e->on_delta)
		e->on_delta(e->on_delta_ctx, c->r->tag, c->index, piece, n);
	return true;
}

static enum llm_err parse_request(struct request *r, json_t *body)
{
	struct engine *e = r->e;
	const struct llm_model_config *mc = &e->m->config;
	bool chat = r->ep == LLM_EP_CHAT;
	enum llm_err err = chat ? chat_prompt(r, body) : completion_prompt(r, body);
	if (err)
		return err;
	if (r->n_prompt == 0)
		return bad_request(r, "the prompt is empty");

	struct llm_gen_params *gp = &r->gp;
	llm_gen_params_default(gp);
	long long v;
	double x;
	int got;
	/* Sampling: OpenAI's names and defaults (temperature 1, top_p 1), vLLM's extensions. */
	if ((got = get_num(r, body, "temperature", 0, 100, false, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.temperature = (float)x;
	if ((got = get_num(r, body, "top_p", 0, 1, true, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.top_p = (float)x;
	if ((got = get_int(r, body, "top_k", -1, INT32_MAX, &v)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.top_k = v < 0 ? 0 : (int32_t)v; /* vLLM's -1: off */
	if ((got = get_num(r, body, "min_p", 0, 1, false, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.min_p = (float)x;
	if ((got = get_num(r, body, "frequency_penalty", -2, 2, false, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.frequency_penalty = (float)x;
	if ((got = get_num(r, body, "presence_penalty", -2, 2, false, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.presence_penalty = (float)x;
	if ((got = get_num(r, body, "repetition_penalty", 0, 100, true, &x)) < 0)
		return r->res.err;
	if (got)
		gp->sampler.repetition_penalty = (float)x;
	/* Hugging Face's repetition penalty counts the prompt too (so does vLLM's). */
	gp->penalize_prompt = gp->sampler.repetition_penalty != 1.0f;
	r->seed = e->seed;
	if ((got = get_int(r, body, "seed", INT64_MIN, INT64_MAX, &v)) < 0)
		return r->res.err;
	if (got)
		r->seed = (uint64_t)v;
	if ((got = get_int(r, body, "n", 1, MAX_CHOICES, &v)) < 0)
		return r->res.err;
	r->n = got ? (int)v : 1;
	bool ignore_eos = false;
	if (get_bool(r, body, "ignore_eos", &ignore_eos) < 0)
		return r->res.err;

	/* Log-probabilities. */
	r->logprobs = -1;
	if (chat) {
		bool want = false;
		if (get_bool(r, body, "logprobs", &want) < 0 ||
		    (got = get_int(r, body, "top_logprobs", 0, LLM_SAMPLE_MAX_LOGPROBS, &v)) < 0)
			return r->res.err;
		if (got && !want)
			return bad_request(r, "'top_logprobs' needs 'logprobs' set to true");
		r->logprobs = want ? (got ? (int)v : 0) : -1;
	} else {
		if ((got = get_int(r, body, "logprobs", 0, LLM_SAMPLE_MAX_LOGPROBS, &v)) < 0)
			return r->res.err;
		r->logprobs = got ? (int)v : -1;
		if (get_bool(r, body, "echo", &r->echo) < 0)
			return r->res.err;
	}
	gp->logprobs = r->logprobs >= 0;
	gp->sampler.n_logprobs = r->logprobs > 0 ? r->logprobs : 0;

	/* Lengths: the context holds the prompt and every generated token. */
	long long room = (long long)e->n_ctx - (long long)r->n_prompt;
	const char *mt_name = "max_tokens";
	if ((got = get_int(r, body, "max_tokens", 0, INT32_MAX, &v)) == 0 && chat) {
		mt_name = "max_completion_tokens";
		got = get_int(r, body, mt_name, 0, INT32_MAX, &v);
	}
	if (got < 0)
		return r->res.err;
	if (got)
		r->max_tokens = (int)v;
	else /* OpenAI's default for completions; a chat answer may fill the context */
		r->max_tokens = chat ? (int)(room > 0 ? room : 1) : (int)(room < 16 ? room : 16);
	if (r->max_tokens < 0)
		r->max_tokens = 0;
	if ((long long)r->n_prompt > e->n_ctx ||
	    (long long)r->n_prompt + r->max_tokens > e->n_ctx || (chat && room <= 0))
		return req_error(
		    r, LLM_ERR_RANGE, "context_length_exceeded",
		    "This model's maximum context length is %d tokens. However, you "
		    "requested %lld tokens (%zu in the prompt, %d in the completion%s%s). "
		    "Please reduce the length of the prompt or the completion.",
		    e->n_ctx, (long long)r->n_prompt + r->max_tokens, r->n_prompt, r->max_tokens,
		    got ? " from " : "", got ? mt_name : "");
	if (r->max_tokens == 0 && chat)
		return bad_request(r, "'%s' must be at least 1", mt_name);
	gp->max_tokens = r->max_tokens;

	/* Stops: the request's strings and ids, the model's EOS and the chat turn's end. */
	if ((err = read_stop(r, body)) || (err = read_stop_ids(r, body, mc->vocab_size)))
		return err;
	if (!ignore_eos && mc->eos_token_id >= 0 &&
	    (err = add_stop_id(r, (uint32_t)mc->eos_token_id)))
		return err;
	if (chat && !ignore_eos) {
		for (size_t i = 0; i < e->n_turn_ids; i++)
			if ((err = add_stop_id(r, e->turn_ids[i])))
				return err;
		if (e->turn_str && !(r->stop[r->n_stop++] = strdup(e->turn_str)))
			return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	}
	gp->stop = (const char *const *)r->stop;
	gp->n_stop = r->n_stop;
	gp->stop_tokens = r->stop_ids;
	gp->n_stop_tokens = r->n_stop_ids;
	gp->ignore_eos = true; /* the list above is the whole of it */
	gp->decode = decode_token;
	gp->decode_ctx = e;
	gp->on_text = on_text;
	gp->n_ctx = e->n_ctx;
	/* Check the sampler's parameters once, for a clear error before any work. */
	struct llm_sampler s;
	struct llm_diag d;
	gp->sampler.seed = r->seed;
	if ((err = llm_sampler_init(&s, &gp->sampler, &d)))
		return bad_request(r, "%s", d.msg);
	llm_sampler_free(&s);
	return LLM_OK;
}

/* --- the response ------------------------------------------------------------------------- */

/* A token's text for logprobs: its bytes when they are UTF-8, else OpenAI's "bytes:\xNN". */
static json_t *token_string(struct engine *e, uint32_t id, json_t **bytes)
{
	struct llm_buf *b = &e->scratch;
	llm_buf_clear(b);
	decode_token(e, &id, 1, b, NULL);
	const char *s = b->data ? b->data : "";
	if (bytes) {
		*bytes = json_array();
		for (size_t i = 0; *bytes && i < b->len; i++)
			json_array_append_new(*bytes, json_integer((unsigned char)s[i]));
	}
	if (llm_utf8_valid_prefix(s, b->len) == b->len)
		return json_stringn(s, b->len);
	char out[6 * 64 + 8];
	size_t k = (size_t)snprintf(out, sizeof out, "bytes:");
	for (size_t i = 0; i < b->len && k + 5 < sizeof out; i++)
		k += (size_t)snprintf(out + k, sizeof out - k, "\\x%02x", (unsigned char)s[i]);
	return json_string(out);
}

/* Code points in a JSON string's text (text_offset counts them, as Python's len does). */
static size_t code_points(json_t *s)
{
	const char *p = json_string_value(s);
	size_t n = 0, len = json_string_length(s);
	for (size_t i = 0; p && i < len; i++)
		n += ((unsigned char)p[i] & 0xC0) != 0x80;
	return n;
}

static json_t *real(float x)
{
	/* JSON has no infinity; OpenAI reports an impossible token as -9999. */
	return json_real(isfinite(x) ? (double)x : -9999.0);
}

/* The completions API's logprobs for one token: its dict of alternatives, the chosen token
 * included as vLLM does. */
static json_t *top_dict(struct engine *e, const struct llm_sample_result *sr, uint32_t tok,
			float lp)
{
	json_t *o = json_object();
	bool has = false;
	for (size_t i = 0; o && i < sr->n_top; i++) {
		json_t *s = token_string(e, sr->top[i].token, NULL);
		if (s)
			json_object_set_new(o, json_string_value(s), real(sr->top[i].logprob));
		json_decref(s);
		has |= sr->top[i].token == tok;
	}
	if (o && !has) {
		json_t *s = token_string(e, tok, NULL);
		if (s)
			json_object_set_new(o, json_string_value(s), real(lp));
		json_decref(s);
	}
	return o;
}

static json_t *completion_logprobs(struct request *r, const struct choice *c)
{
	struct engine *e = r->e;
	json_t *toks = json_array(), *lps = json_array(), *tops = json_array(),
	       *offs = json_array();
	size_t off = 0;
	json_t *o = json_pack("{s:o,s:o,s:o,s:o}", "tokens", toks, "token_logprobs", lps,
			      "top_logprobs", tops, "text_offset", offs);
	if (!o)
		return NULL;
	size_t np = r->echo ? r->n_prompt : 0;
	for (size_t i = 0; i < np + c->out.n_tokens; i++) {
		bool prompt = i < np;
		uint32_t tok = prompt ? r->prompt[i] : c->out.tokens[i - np];
		json_t *s = token_string(e, tok, NULL);
		json_array_append_new(offs, json_integer((json_int_t)off));
		off += s ? code_points(s) : 0;
		json_array_append_new(toks, s);
		if (prompt && i == 0) {
			json_array_append_new(lps, json_null());
			json_array_append_new(tops, json_null());
		} else if (prompt) {
			json_array_append_new(lps, real(r->plp[i]));
			struct llm_sample_result none = {0};
			json_array_append_new(
			    tops, top_dict(e, r->ptop ? &r->ptop[i] : &none, tok, r->plp[i]));
		} else {
			const struct llm_sample_result *sr = &c->out.logprobs[i - np];
			json_array_append_new(lps, real(sr->logprob));
			json_array_append_new(tops, top_dict(e, sr, tok, sr->logprob));
		}
	}
	return o;
}

static json_t *chat_logprobs(struct request *r, const struct choice *c)
{
	json_t *content = json_array();
	for (size_t i = 0; content && i < c->out.n_tokens; i++) {
		const struct llm_sample_result *sr = &c->out.logprobs[i];
		json_t *bytes = NULL, *top = json_array();
		json_t *s = token_string(r->e, sr->token, &bytes);
		for (size_t k = 0; top && k < sr->n_top && k < (size_t)r->logprobs; k++) {
			json_t *tb = NULL;
			json_t *ts = token_string(r->e, sr->top[k].token, &tb);
			json_array_append_new(top,
					      json_pack("{s:o,s:o,s:o}", "token", ts, "logprob",
							real(sr->top[k].logprob), "bytes", tb));
		}
		json_array_append_new(content, json_pack("{s:o,s:o,s:o,s:o}", "token", s, "logprob",
							 real(sr->logprob), "bytes", bytes,
							 "top_logprobs", top));
	}
	return json_pack("{s:o}", "content", content);
}

static enum llm_err build_response(struct request *r)
{
	struct engine *e = r->e;
	bool chat = r->ep == LLM_EP_CHAT;
	json_t *choices = json_array();
	size_t completion = 0;
	for (int i = 0; choices && i < r->n; i++) {
		struct choice *c = &r->ch[i];
		completion += c->out.n_tokens;
		const char *text = c->out.text.data ? c->out.text.data : "";
		json_t *lp = r->logprobs < 0 ? json_null()
			     : chat	     ? chat_logprobs(r, c)
					     : completion_logprobs(r, c);
		const char *finish = llm_finish_name(c->out.finish);
		json_t *o;
		if (chat) {
			o = json_pack("{s:i,s:{s:s,s:s%},s:o,s:s}", "index", i, "message", "role",
				      "assistant", "content", text, c->out.text.len, "logprobs", lp,
				      "finish_reason", finish);
		} else {
			struct llm_buf t;
			llm_buf_init(&t, MAX_TEXT);
			if (r->echo)
				llm_buf_append(&t, r->prompt_text, r->prompt_text_len);
			llm_buf_append(&t, text, c->out.text.len);
			o = json_pack("{s:i,s:s%,s:o,s:s}", "index", i, "text",
				      t.data ? t.data : "", t.len, "logprobs", lp, "finish_reason",
				      finish);
			llm_buf_free(&t);
		}
		if (!o || json_array_append_new(choices, o)) {
			json_decref(choices);
			choices = NULL;
		}
	}
	char id[64];
	snprintf(id, sizeof id, "%s-%016" PRIx64, chat ? "chatcmpl" : "cmpl",
		 llm_hash64(&r->tag, sizeof r->tag, 0x6c6c6d6f7073ull));
	json_t *body = choices
			   ? json_pack("{s:s,s:s,s:I,s:s,s:o,s:{s:I,s:I,s:I}}", "id", id, "object",
				       chat ? "chat.completion" : "text_completion", "created",
				       (json_int_t)time(NULL), "model", e->base.model, "choices",
				       choices, "usage", "prompt_tokens", (json_int_t)r->n_prompt,
				       "completion_tokens", (json_int_t)completion, "total_tokens",
				       (json_int_t)(r->n_prompt + completion))
			   : NULL;
	char *s = body ? json_dumps(body, JSON_COMPACT | JSON_REAL_PRECISION(9)) : NULL;
	json_decref(body);
	if (!s)
		return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	r->res.body = s;
	r->res.body_len = strlen(s);
	return LLM_OK;
}

/* --- scheduling --------------------------------------------------------------------------- */

static void finish_request(struct request *r)
{
	struct engine *e = r->e;
	if (r->finished)
		return;
	r->finished = true;
	if (!r->res.err)
		build_response(r);
	r->res.tag = r->tag;
	r->res.status = 0;
	r->res.attempts = 1;
	r->res.latency_ms = now_ms() - r->t0;
	r->res.ttft_ms = r->ttft;
	if (r->res.err) {
		free(r->res.body);
		r->res.body = NULL;
		r->res.body_len = 0;
	}
	r->next = NULL;
	if (e->done_tail)
		e->done_tail->next = r;
	else
		e->done_head = r;
	e->done_tail = r;
}

static void release_slot(struct choice *c)
{
	struct engine *e = c->r->e;
	if (c->slot >= 0) {
		llm_kv_slot_free(e->kv, c->slot);
		e->slot[c->slot] = NULL;
		c->slot = -1;
	}
}

static void unqueue(struct engine *e, struct choice *c)
{
	struct choice **pp = &e->wait_head, *prev = NULL;
	while (*pp && *pp != c) {
		prev = *pp;
		pp = &(*pp)->qnext;
	}
	if (!*pp)
		return;
	*pp = c->qnext;
	if (e->wait_tail == c)
		e->wait_tail = prev;
	c->qnext = NULL;
}

/* The request failed (its error is set): give back its slots and queue places. */
static void fail_request(struct request *r)
{
	for (int i = 0; r->ch && i < r->n; i++) {
		struct choice *c = &r->ch[i];
		release_slot(c);
		unqueue(r->e, c);
		c->done = true;
	}
	finish_request(r);
}

static void choice_done(struct choice *c)
{
	struct request *r = c->r;
	release_slot(c);
	if (c->seq_live) {
		c->out = c->seq.result;
		llm_gen_seq_free(&c->seq, true);
		c->seq_live = false;
	} else if (!c->out.text.data && !r->cancelled) {
		/* Nothing generated (max_tokens 0): the prompt was the whole of it. */
		c->out.finish = LLM_FINISH_LENGTH;
	}
	if (r->cancelled && c->out.finish == LLM_FINISH_NONE)
		c->out.finish = LLM_FINISH_ABORT;
	c->done = true;
	if (++r->n_done == r->n)
		finish_request(r);
}

/* Feed the logits row that follows the choice's last token to its generation. */
static void sample(struct choice *c, const float *row)
{
	struct request *r = c->r;
	uint32_t tok;
	bool done;
	struct llm_diag d;
	enum llm_err err = llm_gen_seq_next(&c->seq, row, &tok, &done, &d);
	if (err) {
		req_error(r, err, "server_error", "generation failed: %s", d.msg);
		fail_request(r);
		return;
	}
	if (r->ttft < 0)
		r->ttft = now_ms() - r->t0;
	if (done)
		choice_done(c);
	else {
		c->next = tok;
		c->decoding = true;
	}
}

/* log p(prompt[pos + 1]) from the row at pos, as llm_score_tokens computes it, and the top
 * alternatives. */
static void score(struct request *r, size_t pos, const float *row, int V)
{
	float mx = row[0];
	for (int k = 1; k < V; k++)
		mx = row[k] > mx ? row[k] : mx;
	double sum = 0;
	for (int k = 0; k < V; k++)
		sum += expf(row[k] - mx);
	float lse = mx + (float)log(sum);
	uint32_t tok = r->prompt[pos + 1];
	r->plp[pos + 1] = row[tok] - lse;
	if (!r->ptop)
		return;
	struct llm_sample_result *sr = &r->ptop[pos + 1];
	sr->token = tok;
	sr->logprob = r->plp[pos + 1];
	sr->n_top = 0;
	size_t want = (size_t)r->logprobs;
	/* Insertion into a short sorted list: highest first, lowest id first on ties. */
	for (int k = 0; k < V; k++) {
		float lp = row[k] - lse;
		if (sr->n_top == want && !(lp > sr->top[want - 1].logprob))
			continue;
		size_t j = sr->n_top < want ? sr->n_top++ : want - 1;
		while (j > 0 && sr->top[j - 1].logprob < lp) {
			sr->top[j] = sr->top[j - 1];
			j--;
		}
		sr->top[j].token = (uint32_t)k;
		sr->top[j].logprob = lp;
	}
}

static enum llm_err grow_entries(struct engine *e, size_t n)
{
	if (n <= e->ent_cap)
		return LLM_OK;
	size_t cap = n * 2;
	struct choice **ent = realloc(e->ent, cap * sizeof *ent);
	if (ent)
		e->ent = ent;
	size_t *pos = ent ? realloc(e->ent_pos, cap * sizeof *pos) : NULL;
	if (!pos)
		return LLM_ERR_NOMEM;
	e->ent_pos = pos;
	e->ent_cap = cap;
	return LLM_OK;
}

static enum llm_err add_entry(struct engine *e, struct choice *c, uint32_t tok, bool logits,
			      size_t pos, struct llm_diag *d)
{
	if (grow_entries(e, e->batch.n + 1))
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	e->ent[e->batch.n] = c;
	e->ent_pos[e->batch.n] = pos;
	return llm_batch_add(&e->batch, c->slot, tok, logits, d);
}

/* Give free slots to waiting choices. */
static void admit(struct engine *e)
{
	while (e->wait_head) {
		int slot;
		if (llm_kv_slot_new(e->kv, &slot, NULL))
			return;
		struct choice *c = e->wait_head;
		e->wait_head = c->qnext;
		if (!e->wait_head)
			e->wait_tail = NULL;
		c->qnext = NULL;
		c->slot = slot;
		e->slot[slot] = c;
	}
}

/* One evaluation over every busy slot, then the tokens it gives.  False when there was
 * nothing to evaluate. */
static bool step(struct engine *e, struct llm_diag *d)
{
	llm_batch_clear(&e->batch);
	enum llm_err err = LLM_OK;
	for (int s = 0; s < e->n_slots && !err; s++) {
		struct choice *c = e->slot[s];
		if (c && c->decoding)
			err = add_entry(e, c, c->next, true, SIZE_MAX, d);
	}
	size_t budget = e->batch.n ? PREFILL_BUDGET_BUSY : PREFILL_BUDGET, rows = SCORE_ROWS;
	for (int s = 0; s < e->n_slots && !err && budget > 0; s++) {
		struct choice *c = e->slot[s];
		if (!c || c->decoding)
			continue;
		struct request *r = c->r;
		size_t end = c->fed + budget;
		if (c->scoring && c->fed + rows < end)
			end = c->fed + rows;
		if (end > c->to_feed)
			end = c->to_feed;
		if (end <= c->fed)
			continue;
		for (size_t p = c->fed; p < end && !err; p++) {
			bool last = p + 1 == r->n_prompt;
			err = add_entry(e, c, r->prompt[p], c->scoring || last, p, d);
		}
		budget -= end - c->fed;
		if (c->scoring)
			rows -= end - c->fed;
		c->fed = end;
	}
	if (!err && e->batch.n == 0)
		return false;
	if (err || (err = llm_kv_eval(e->kv, &e->batch, d))) {
		/* The step's requests cannot go on; others may, once these free their slots. */
		for (size_t i = 0; i < e->batch.n; i++) {
			struct request *r = e->ent[i]->r;
			if (r->finished)
				continue;
			req_error(r, err, err == LLM_ERR_NOMEM ? "server_error" : "engine_error",
				  "the engine failed: %s", d->msg);
			fail_request(r);
		}
		return true;
	}
	int V = e->m->config.vocab_size;
	for (size_t i = 0; i < e->batch.n; i++) {
		struct choice *c = e->ent[i];
		struct request *r = c->r;
		const float *row = llm_batch_logits(&e->batch, i);
		if (r->finished || c->done)
			continue;
		size_t pos = e->ent_pos[i];
		if (pos == SIZE_MAX) {
			sample(c, row);
			continue;
		}
		if (row && pos + 1 < r->n_prompt && c->scoring)
			score(r, pos, row, V);
		if (row && pos + 1 == r->n_prompt && c->seq_live)
			sample(c, row);
		else if (pos + 1 == c->to_feed && !c->seq_live)
			choice_done(c); /* prompt scoring only */
	}
	return true;
}

/* End the choices of cancelled requests, in slots or waiting: between steps, so that a cancel
 * made from on_delta (inside a step) never changes the batch being read. */
static void sweep_cancelled(struct engine *e)
{
	e->n_cancel = 0;
	for (int s = 0; s < e->n_slots; s++) {
		struct choice *c = e->slot[s];
		if (c && c->r->cancelled && !c->done)
			choice_done(c);
	}
	for (struct choice *c = e->wait_head, *nx; c; c = nx) {
		nx = c->qnext;
		if (c->r->cancelled && !c->done) {
			unqueue(e, c);
			choice_done(c);
		}
	}
}

/* --- the backend operations ----------------------------------------------------------------- */

static struct engine *engine_of(struct llm_backend *b)
{
	return (struct engine *)b;
}

static enum llm_err start_choices(struct request *r)
{
	struct engine *e = r->e;
	r->ch = calloc((size_t)r->n, sizeof *r->ch);
	bool scoring = r->echo && r->logprobs >= 0 && r->n_prompt > 1;
	if (scoring) {
		r->plp = calloc(r->n_prompt, sizeof *r->plp);
		if (r->logprobs > 0)
			r->ptop = calloc(r->n_prompt, sizeof *r->ptop);
	}
	if (!r->ch || (scoring && (!r->plp || (r->logprobs > 0 && !r->ptop))))
		return req_error(r, LLM_ERR_NOMEM, "server_error", "out of memory");
	for (int i = 0; i < r->n; i++) {
		struct choice *c = &r->ch[i];
		c->r = r;
		c->index = i;
		c->slot = -1;
		c->out.stop_string = -1;
		c->out.stop_token = -1;
		c->scoring = scoring && i == 0;
		if (r->max_tokens > 0) {
			struct llm_gen_params gp = r->gp;
			gp.sampler.seed = r->seed + (uint64_t)i;
			gp.on_text_ctx = c;
			struct llm_diag d;
			enum llm_err err = llm_gen_seq_init(&c->seq, &gp, &e->m->config, r->prompt,
							    r->n_prompt, &d);
			if (err)
				return err == LLM_ERR_NOMEM
					   ? req_error(r, err, "server_error", "out of memory")
					   : bad_request(r, "%s", d.msg);
			c->seq_live = true;
			c->to_feed = r->n_prompt;
		} else {
			c->to_feed = c->scoring ? r->n_prompt - 1 : 0;
		}
	}
	for (int i = 0; i < r->n; i++) {
		struct choice *c = &r->ch[i];
		if (c->to_feed == 0) {
			choice_done(c);
			continue;
		}
		if (e->wait_tail)
			e->wait_tail->qnext = c;
		else
			e->wait_head = c;
		e->wait_tail = c;
	}
	return LLM_OK;
}

static enum llm_err engine_submit(struct llm_backend *b, uint64_t tag, enum llm_endpoint ep,
				  const char *body, size_t len, struct llm_diag *diag)
{
	struct engine *e = engine_of(b);
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_ALLOW_NUL, &je);
	if (!json_is_object(o)) {
		json_decref(o);
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "the request body is not a JSON object%s%s", o ? "" : ": ",
				    o ? "" : je.text);
	}
	struct request *r = calloc(1, sizeof *r);
	if (!r) {
		json_decref(o);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	r->e = e;
	r->tag = tag;
	r->ep = ep;
	r->t0 = now_ms();
	r->ttft = -1;
	r->n = 1;
	enum llm_err err = parse_request(r, o);
	json_decref(o);
	e->pending++;
	if (err || start_choices(r))
		fail_request(r);
	return LLM_OK;
}

static int engine_next(struct llm_backend *b, struct llm_result *out, struct llm_diag *diag)
{
	struct engine *e = engine_of(b);
#ifdef _OPENMP
	int saved = omp_get_max_threads();
	if (e->threads > 0)
		omp_set_num_threads(e->threads);
#endif
	int ret = 0;
	for (;;) {
		if (e->n_cancel)
			sweep_cancelled(e);
		if (e->done_head) {
			struct request *r = e->done_head;
			e->done_head = r->next;
			if (!e->done_head)
				e->done_tail = NULL;
			*out = r->res;
			memset(&r->res, 0, sizeof r->res);
			request_free(r);
			e->pending--;
			ret = 1;
			break;
		}
		if (e->pending == 0)
			break;
		admit(e);
		struct llm_diag d;
		memset(&d, 0, sizeof d);
		if (!step(e, &d) && !e->done_head) {
			/* Requests pending and nothing to run: a bug, not a request's fault. */
			llm_diag_set(diag, LLM_ERR_CHECK, NULL, 0,
				     "%zu requests pending and none can run", e->pending);
			ret = -1;
			break;
		}
	}
#ifdef _OPENMP
	omp_set_num_threads(saved);
#endif
	return ret;
}

static size_t engine_pending(const struct llm_backend *b)
{
	return ((const struct engine *)b)->pending;
}

static enum llm_err engine_cancel(struct llm_backend *b, uint64_t tag)
{
	struct engine *e = engine_of(b);
	struct request *r = NULL;
	for (int s = 0; !r && s < e->n_slots; s++)
		if (e->slot[s] && e->slot[s]->r->tag == tag && !e->slot[s]->r->finished)
			r = e->slot[s]->r;
	for (struct choice *c = e->wait_head; !r && c; c = c->qnext)
		if (c->r->tag == tag && !c->r->finished)
			r = c->r;
	if (!r)
		return LLM_ERR_NOT_FOUND;
	if (!r->cancelled) {
		r->cancelled = true;
		e->n_cancel++;
	}
	return LLM_OK;
}

static void engine_close(struct llm_backend *b)
{
	struct engine *e = engine_of(b);
	/* Every unfinished request is reachable through a slot, the queue or the done list. */
	for (int s = 0; s < e->n_slots; s++) {
		struct choice *c = e->slot ? e->slot[s] : NULL;
		if (c && !c->r->finished) {
			req_error(c->r, LLM_ERR_USAGE, "cancelled", "the backend was closed");
			fail_request(c->r);
		}
	}
	while (e->wait_head) {
		struct request *r = e->wait_head->r;
		req_error(r, LLM_ERR_USAGE, "cancelled", "the backend was closed");
		fail_request(r);
	}
	while (e->done_head) {
		struct request *r = e->done_head;
		e->done_head = r->next;
		request_free(r);
	}
	llm_batch_free(&e->batch);
	llm_kv_free(e->kv);
	llm_model_free(e->m);
	llm_bpe_free(e->bpe);
	llm_chat_template_free(e->tmpl);
	llm_buf_free(&e->scratch);
	free(e->turn_owned);
	free(e->slot);
	free(e->ent);
	free(e->ent_pos);
	free(e->base.model);
	free(e);
}

static const struct llm_backend_ops engine_ops = {
    .submit = engine_submit,
    .next = engine_next,
    .pending = engine_pending,
    .close = engine_close,
    .cancel = engine_cancel,
};

/* --- opening ------------------------------------------------------------------------------ */

static bool ends_with(const char *s, const char *suffix)
{
	size_t n = strlen(s), k = strlen(suffix);
	return n >= k && strcmp(s + n - k, suffix) == 0;
}

static bool exists(const char *path)
{
	return access(path, F_OK) == 0;
}

/* dir/name into out; a GGUF's "dir" is the directory the file is in. */
static enum llm_err beside(char *out, size_t n, const char *ref, bool is_file, const char *name,
			   struct llm_diag *d)
{
	int k;
	if (is_file) {
		const char *slash = strrchr(ref, '/');
		k = slash ? snprintf(out, n, "%.*s/%s", (int)(slash - ref), ref, name)
			  : snprintf(out, n, "%s", name);
	} else {
		k = snprintf(out, n, "%s/%s", ref, name);
	}
	if (k < 0 || (size_t)k >= n)
		return llm_diag_set(d, LLM_ERR_USAGE, ref, 0, "the path is too long");
	return LLM_OK;
}

/* Does the tokenizer_config.json at path carry a chat_template? */
static bool config_has_template(const char *path)
{
	json_t *o = json_load_file(path, 0, NULL);
	bool has = json_is_string(json_object_get(o, "chat_template")) ||
		   json_is_array(json_object_get(o, "chat_template"));
	json_decref(o);
	return has;
}

/* A GGUF's own chat template (tokenizer.chat_template), with its BOS and EOS texts. */
static enum llm_err gguf_template(struct engine *e, const char *ref, struct llm_diag *d)
{
	struct llm_gguf *g;
	if (llm_gguf_open(&g, ref, NULL))
		return LLM_OK; /* it loaded as a model, so this cannot fail but for memory */
	const struct llm_gguf_kv *kv = llm_gguf_find_kv(g, "tokenizer.chat_template");
	enum llm_err err = LLM_OK;
	if (kv && kv->type == LLM_GGUF_STRING && kv->str.s) {
		err = llm_chat_template_from_string(kv->str.s, kv->str.len, ref, &e->tmpl, d);
		const struct llm_model_config *mc = &e->m->config;
		const int ids[2] = {mc->bos_token_id, mc->eos_token_id};
		const char *names[2] = {"bos_token", "eos_token"};
		for (int i = 0; i < 2 && !err; i++) {
			if (ids[i] < 0 || (uint32_t)ids[i] >= e->bpe_vocab)
				continue;
			llm_buf_clear(&e->scratch);
			uint32_t id = (uint32_t)ids[i];
			if (llm_bpe_decode(e->bpe, &id, 1, &e->scratch, NULL) == LLM_OK &&
			    e->scratch.data)
				llm_chat_template_set(
				    e->tmpl, names[i],
				    json_stringn(e->scratch.data, e->scratch.len));
		}
	}
	llm_gguf_close(g);
	return err;
}

/* How chat messages become a prompt, and where an answer ends. */
static enum llm_err setup_chat(struct engine *e, const char *ref, bool is_file,
			       const char *chat_format, struct llm_diag *d)
{
	char path[4096];
	enum llm_err err;
	e->fmt = LLM_CHAT_CHATML;
	if (chat_format && llm_chat_format_parse(chat_format, &e->fmt)) {
		/* a built-in format, by name */
	} else if (chat_format) {
		if (!exists(chat_format))
			return llm_diag_set(d, LLM_ERR_NOT_FOUND, chat_format, 0,
					    "no such chat template (nor a format: chatml, llama3, "
					    "llama2, alpaca)");
		if ((err = llm_chat_template_load(chat_format, &e->tmpl, d)))
			return err;
	} else {
		if (is_file && (err = gguf_template(e, ref, d)))
			return err;
		if ((err = beside(path, sizeof path, ref, is_file, "tokenizer_config.json", d)))
			return err;
		if (!e->tmpl && exists(path) && config_has_template(path) &&
		    (err = llm_chat_template_load(path, &e->tmpl, d)))
			return err;
	}
	const char *turn;
	if (e->tmpl) {
		/* A model's own template: its special tokens are tokens, as transformers reads
		 * them, and its eos_token ends the turn. */
		if ((err = llm_bpe_allow_special(e->bpe, "all", d)) && err != LLM_ERR_NOT_FOUND)
			return err;
		turn = llm_chat_template_token(e->tmpl, "eos_token");
		if (turn && *turn && !(e->turn_owned = strdup(turn)))
			return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		turn = e->turn_owned;
	} else {
		static const char *const ends[] = {[LLM_CHAT_CHATML] = "<|im_end|>",
						   [LLM_CHAT_LLAMA3] = "<|eot_id|>",
						   [LLM_CHAT_LLAMA2] = "</s>",
						   [LLM_CHAT_ALPACA] = NULL};
		turn = ends[e->fmt];
	}
	e->turn_str = turn;
	uint32_t id;
	if (turn && llm_bpe_special_id(e->bpe, turn, &id) && id < (uint32_t)e->m->config.vocab_size)
		e->turn_ids[e->n_turn_ids++] = id;
	return LLM_OK;
}

static enum llm_err load(struct engine *e, const struct llm_backend_opts *o, struct llm_diag *d)
{
	const char *ref = o->ref;
	bool is_file = ends_with(ref, ".gguf");
	char path[4096];
	enum llm_err err = llm_modeldir_open(&e->m, ref, d);
	if (err)
		return err;
	/* A fine-tuned directory may hold a PEFT adapter beside its base weights. */
	if (!is_file && !(err = beside(path, sizeof path, ref, false, "adapter_config.json", d)) &&
	    exists(path) && !(err = llm_lora_load_peft(e->m, ref, d)))
		err = llm_lora_merge(e->m, d);
	if (err)
		return err;
	/* The tokenizer: the directory's tokenizer.json, or the one beside a GGUF file (the
	 * engine does not rebuild one from GGUF metadata). */
	if ((err = beside(path, sizeof path, ref, is_file, "tokenizer.json", d)))
		return err;
	if (!exists(path))
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, path, 0,
				    is_file ? "no tokenizer.json beside the GGUF file"
					    : "the model directory has no tokenizer.json");
	if ((err = llm_bpe_open_file(&e->bpe, path, d)))
		return err;
	e->bpe_vocab = llm_bpe_vocab_size(e->bpe);
	if ((err = setup_chat(e, ref, is_file, o->chat_format, d)))
		return err;
	int maxpos = e->m->config.max_position_embeddings;
	if (o->n_ctx < 0 || o->n_ctx > maxpos)
		return llm_diag_set(d, LLM_ERR_USAGE, ref, 0,
				    "context length %d: the model allows 1 to %d", o->n_ctx,
				    maxpos);
	e->n_ctx = o->n_ctx > 0 ? o->n_ctx : maxpos;
	e->n_slots = o->concurrency > 0 ? o->concurrency : 1;
	if ((err = llm_kv_new(&e->kv, e->m, e->n_slots, e->n_ctx, d)))
		return err;
	e->slot = calloc((size_t)e->n_slots, sizeof *e->slot);
	e->base.model = strdup(o->model_name ? o->model_name : ref);
	if (!e->slot || !e->base.model)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	return LLM_OK;
}

enum llm_err llm_backend_open_engine(struct llm_backend **out, const struct llm_backend_opts *o,
				     struct llm_diag *diag)
{
	*out = NULL;
	if (!o->ref || !*o->ref)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "no model reference given");
	struct engine *e = calloc(1, sizeof *e);
	if (!e)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	e->base.ops = &engine_ops;
	e->base.remote = false;
	e->threads = o->threads;
	e->seed = o->seed;
	e->on_delta = o->on_delta;
	e->on_delta_ctx = o->on_delta_ctx;
	llm_batch_init(&e->batch);
	llm_buf_init(&e->scratch, 0);
	enum llm_err err = load(e, o, diag);
	if (err) {
		engine_close(&e->base);
		return err;
	}
	*out = &e->base;
	return LLM_OK;
}
