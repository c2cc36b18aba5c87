/* Inference for the Llama decoder: a key/value cache, batched evaluation, token generation
 * with sampling, stop conditions and streaming, and prompt scoring.
 *
 * Three layers, each usable alone:
 *
 *   llm_kv / llm_batch  the continuous-batching primitive.  A cache holds n_slots sequences,
 *                       each with K and V for every layer at up to n_ctx positions.  A batch is
 *                       a list of (slot, token) entries; llm_kv_eval runs them all through the
 *                       model at once, one matrix product per weight, each token at the next
 *                       position of its slot (RoPE at that position), attending to its slot's
 *                       cache.  A prompt is many entries of one slot (prefill); a decode step is
 *                       one entry for each active slot.  Slots are taken, stepped and freed
 *                       independently, so a server adds and retires requests between steps.
 *
 *   llm_gen_seq         one request's state after the logits: the sampler, the penalty
 *                       history, the stop tokens and strings, the UTF-8-safe streaming of text,
 *                       the log-probabilities and the finish reason.  A server calls
 *                       llm_gen_seq_next with each step's logits row for the request.
 *
 *   llm_generate        one request from prompt ids to the result, on its own cache.
 *
 * llm_score_tokens gives the log-probability of each token of a text given the ones before it,
 * their sum and the perplexity, for evaluation.
 *
 * The arithmetic is the training forward's (engine/model.c): logits from prefill and decode
 * steps match llm_model_forward's within float rounding (tests/unit/test-generate.c).  Threads
 * are OpenMP's, as in the model.  Nothing here changes the model, so several caches may share
 * one model, each used by one thread at a time. */
#ifndef LLM_ENGINE_GENERATE_H
#define LLM_ENGINE_GENERATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "engine/model.h"
#include "engine/sample.h"

struct llm_bpe;

/* --- the cache and batched evaluation ------------------------------------------------------- */

struct llm_kv; /* opaque: the cache, its slots and the evaluation scratch */

/* A cache for n_slots sequences of up to n_ctx tokens (0: max_position_embeddings, which is
 * also the most allowed).  It uses 2 · layers · n_slots · n_ctx · kv_dim floats.  The model
 * must outlive the cache and must not change shape; its weights may change between calls (a
 * cache filled before a change holds keys and values of the old weights).  LLM_ERR_RANGE for
 * bad sizes, LLM_ERR_USAGE when LoRA adapters are attached (merge them first), LLM_ERR_NOMEM. */
enum llm_err llm_kv_new(struct llm_kv **out, const struct llm_model *m, int n_slots, int n_ctx,
			struct llm_diag *diag);
void llm_kv_free(struct llm_kv *kv);

int llm_kv_n_ctx(const struct llm_kv *kv);
int llm_kv_n_slots(const struct llm_kv *kv);

/* Take a free slot (empty, position 0) into *slot.  LLM_ERR_RANGE when all are in use. */
enum llm_err llm_kv_slot_new(struct llm_kv *kv, int *slot, struct llm_diag *diag);

/* Give a slot back; its contents are forgotten.  Freeing a free slot does nothing. */
void llm_kv_slot_free(struct llm_kv *kv, int slot);

/* The number of tokens cached in slot: the position its next token takes.  -1 when the slot
 * is not in use. */
int llm_kv_slot_len(const struct llm_kv *kv, int slot);

/* Forget all but the first len tokens of slot (len ≤ its length), to reuse a shared prefix or
 * roll back.  LLM_ERR_RANGE otherwise. */
enum llm_err llm_kv_slot_truncate(struct llm_kv *kv, int slot, int len, struct llm_diag *diag);

/* The tokens of one evaluation.  Entries of one slot run in the order added and take that
 * slot's next positions; entries of different slots may interleave.  logits is filled by
 * llm_kv_eval: one row of vocab_size floats for each entry added with want_logits, in the order
 * added; llm_batch_logits finds an entry's row. */
struct llm_batch {
	size_t n; /* entries */
	size_t cap;
	uint32_t *token;   /* (n) */
	int *slot;	   /* (n) */
	int *row;	   /* (n) the entry's logits row, or -1 when not wanted */
	size_t n_logits;   /* rows wanted */
	float *logits;	   /* (n_logits, n_vocab) after llm_kv_eval */
	int n_vocab;	   /* the row width, set by llm_kv_eval */
	size_t logits_cap; /* floats allocated in logits */
};

void llm_batch_init(struct llm_batch *b);
void llm_batch_free(struct llm_batch *b);
/* Empty the batch for the next step, keeping its memory. */
void llm_batch_clear(struct llm_batch *b);
/* Append one entry.  LLM_ERR_NOMEM. */
enum llm_err llm_batch_add(struct llm_batch *b, int slot, uint32_t token, bool want_logits,
			   struct llm_diag *diag);
/* The logits row of entry i after llm_kv_eval, or NULL when it was added without want_logits. */
const float *llm_batch_logits(const struct llm_batch *b, size_t i);

/* Run the batch: append each entry's key and value to its slot's cache and compute the logits
 * asked for.  The whole batch is checked first (slots in use, ids below vocab_size, each slot's
 * length plus its entries within n_ctx), so a failure changes nothing: LLM_ERR_RANGE names the
 * slot and the numbers.  LLM_ERR_NOMEM when the scratch cannot grow. */
enum llm_err llm_kv_eval(struct llm_kv *kv, struct llm_batch *b, struct llm_diag *diag);

/* --- one request's sampling, stopping and streaming ----------------------------------------- */

/* Why generation ended. */
enum llm_finish {
	LLM_FINISH_NONE = 0,   /* not yet */
	LLM_FINISH_STOP = 1,   /* a stop token (EOS) or a stop string */
	LLM_FINISH_LENGTH = 2, /* max_tokens reached */
	LLM_FINISH_ABORT = 3,  /* the text callback asked to stop */
};

/* "stop", "length", "abort", or "" for LLM_FINISH_NONE: the OpenAI finish_reason strings. */
const char *llm_finish_name(enum llm_finish f);

struct llm_gen_params {
	struct llm_sampler_params sampler; /* temperature 0 for greedy */
	int max_tokens;			   /* tokens to generate at most, > 0 */
	/* Stop token ids; when NULL (n_stop_tokens 0) the config's eos_token_id, if any, unless
	 * ignore_eos.  The stop token's text is not output and the token is not in the result. */
	const uint32_t *stop_tokens;
	size_t n_stop_tokens;
	bool ignore_eos;
	/* Stop strings: the text ends just before the first one to appear, across tokens. */
	const char *const *stop;
	size_t n_stop;
	/* The penalties look at the generated tokens (OpenAI and vLLM's frequency and presence),
	 * or at the prompt too (Hugging Face's repetition_penalty) when this is set. */
	bool penalize_prompt;
	bool logprobs; /* keep each token's logprob and sampler.n_logprobs alternatives */

	/* Token text: decode when set, else bpe, else no text (stop strings then need one of
	 * them).  decode appends the bytes of ids to out, which may end inside a character. */
	enum llm_err (*decode)(void *ctx, const uint32_t *ids, size_t n, struct llm_buf *out,
			       struct llm_diag *diag);
	void *decode_ctx;
	const struct llm_bpe *bpe;

	/* Streaming: called with each piece of text as soon as it is certain to be output: whole
	 * UTF-8 characters only (bytes that cannot form one become U+FFFD), nothing that may be
	 * the start of a stop string.  The pieces concatenate to the result's text.  Returning
	 * false ends generation with LLM_FINISH_ABORT. */
	bool (*on_text)(void *ctx, const char *piece, size_t n);
	void *on_text_ctx;

	int n_ctx; /* llm_generate's context length; 0: max_position_embeddings */
};

/* The defaults: llm_sampler_params_default()'s sampler (temperature 1), max_tokens 16, EOS
 * stops, no stop strings, no logprobs. */
void llm_gen_params_default(struct llm_gen_params *p);

struct llm_gen_result {
	uint32_t *tokens; /* generated ids, the stop token left out */
	size_t n_tokens;
	struct llm_sample_result *logprobs; /* (n_tokens) when params.logprobs, else NULL */
	struct llm_buf text;		    /* the text, stop string and what follows left out */
	enum llm_finish finish;
	int stop_string; /* index of the stop string that ended generation, or -1 */
	long stop_token; /* the stop token that ended generation, or -1 */
	size_t n_prompt;
};

void llm_gen_result_free(struct llm_gen_result *r);

/* One request's state between steps.  Fields are the module's; read result. */
struct llm_gen_seq {
	struct llm_gen_params params; /* a copy; the pointers in it must stay valid */
	const struct llm_model_config *config;
	struct llm_sampler sampler;
	struct llm_stop stop;
	uint32_t *history; /* prompt (when penalized) then generated ids */
	size_t n_history, n_history_prompt, history_cap;
	struct llm_buf bytes; /* decoded bytes not yet whole characters */
	struct llm_buf chars; /* scratch: the whole characters one token completes */
	struct llm_buf piece; /* scratch: the text released by one token */
	struct llm_gen_result result;
};

/* Start a request.  prompt is kept for the penalties when params->penalize_prompt.
 * LLM_ERR_RANGE or LLM_ERR_USAGE for bad parameters (max_tokens, sampler, stop strings without
 * a decoder), LLM_ERR_NOMEM.  On failure nothing needs freeing. */
enum llm_err llm_gen_seq_init(struct llm_gen_seq *s, const struct llm_gen_params *params,
			      const struct llm_model_config *config, const uint32_t *prompt,
			      size_t n_prompt, struct llm_diag *diag);

/* Choose the next token from the request's logits row (vocab_size floats), record it, stream
 * its text and decide whether generation ends.  *token is the id chosen; *done tells whether
 * the request is finished (result.finish is then set and the remaining text released);
 * otherwise the caller feeds *token to the model and calls again with the next logits. */
enum llm_err llm_gen_seq_next(struct llm_gen_seq *s, const float *logits, uint32_t *token,
			      bool *done, struct llm_diag *diag);

/* Free the state; result is left to the caller when keep_result (free it with
 * llm_gen_result_free), freed with the rest otherwise. */
void llm_gen_seq_free(struct llm_gen_seq *s, bool keep_result);

/* --- one request ---------------------------------------------------------------------------- */

/* Generate from prompt[0..n_prompt) (at least one id) with params into *out (freed with
 * llm_gen_result_free, also after a failure).  The prompt plus max_tokens must fit the context:
 * otherwise LLM_ERR_RANGE with both numbers and the limit.  Other errors as llm_gen_seq_init
 * and llm_kv_eval. */
enum llm_err llm_generate(const struct llm_model *m, const uint32_t *prompt, size_t n_prompt,
			  const struct llm_gen_params *params, struct llm_gen_result *out,
			  struct llm_diag *diag);

/* --- scoring -------------------------------------------------------------------------------- */

struct llm_score {
	double sum_logprob;  /* Σ log p(ids[i] | ids[0..i)) over the scored tokens */
	size_t n_scored;     /* n − from */
	double mean_logprob; /* sum / n_scored: minus the mean cross-entropy */
	double perplexity;   /* exp(−mean_logprob) */
};

/* Score ids[from..n) given everything before each (1 ≤ from < n); ids[0..from) only condition,
 * so an evaluation can score an answer given its prompt.  token_logprobs, when not NULL, gets
 * n floats: [i] the log-probability of ids[i] for i ≥ from, 0 before.  n must fit
 * max_position_embeddings (LLM_ERR_RANGE with the numbers); longer texts are the caller's to
 * window. */
enum llm_err llm_score_tokens(const struct llm_model *m, const uint32_t *ids, size_t n, size_t from,
			      float *token_logprobs, struct llm_score *out, struct llm_diag *diag);

#endif
