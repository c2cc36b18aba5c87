/* Choosing the next token from a model's logits, and knowing when to stop.
 *
 * The sampler works on a plain float array of n_vocab logits, so it depends on no model.  Its
 * parameters mean what they mean in vLLM and the OpenAI API, and the steps run in the order of
 * Hugging Face's logits processors and vLLM's sampler:
 *
 *     penalties -> temperature -> top-k -> top-p -> min-p -> seeded draw
 *
 * llama.cpp's default chain (penalties, top-k, top-p, min-p, temperature, dist) applies the
 * temperature last, so its top-p and min-p see the untempered distribution.  We follow HF and
 * vLLM because the parameters are documented with their semantics: "top_p 0.9 at temperature
 * 0.7" keeps the smallest set holding 90% of the mass of the distribution the draw uses.  top-k
 * is unaffected by the order; top-p and min-p are.
 *
 * Log-probabilities are those OpenAI's `logprobs` report: log-softmax of the raw logits, before
 * penalties and temperature, so they measure the model and not the sampling settings.
 *
 * The stop matcher takes the generated text one piece (one token's text) at a time and holds
 * back any tail that may be the start of a stop string, so a stop string split across tokens is
 * found and never shown. */
#ifndef LLM_ENGINE_SAMPLE_H
#define LLM_ENGINE_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"
#include "core/rand.h"

/* OpenAI's API caps top_logprobs at 20. */
#define LLM_SAMPLE_MAX_LOGPROBS 20

/* Every field's neutral value turns its step off; llm_sampler_params_default() gives them. */
struct llm_sampler_params {
	float temperature;	  /* 0: greedy argmax (ties to the lowest id); else > 0 */
	int32_t top_k;		  /* keep the k most likely; 0: off */
	float top_p;		  /* nucleus mass in (0, 1]; 1: off */
	float min_p;		  /* drop p < min_p * p_max, in [0, 1]; 0: off */
	float repetition_penalty; /* HF/CTRL: > 0; 1: off */
	float frequency_penalty;  /* OpenAI: logit -= f * count; 0: off */
	float presence_penalty;	  /* OpenAI: logit -= p if count > 0; 0: off */
	int32_t n_logprobs;	  /* alternatives to report, 0..LLM_SAMPLE_MAX_LOGPROBS */
	uint64_t seed;
};

struct llm_token_logprob {
	uint32_t token;
	float logprob;
};

/* What one step chose. top[] is sorted by logprob, highest first (ties: lowest id first). */
struct llm_sample_result {
	uint32_t token;
	float logprob; /* of token under the raw logits */
	size_t n_top;
	struct llm_token_logprob top[LLM_SAMPLE_MAX_LOGPROBS];
};

/* One candidate token while the filters narrow the set. */
struct llm_sample_cand {
	float logit;
	uint32_t id;
};

struct llm_sampler {
	struct llm_sampler_params params;
	struct llm_rand rng;
	/* Scratch sized for the largest vocabulary seen, so a step allocates nothing. */
	struct llm_sample_cand *cand;
	uint32_t *count; /* occurrences of each id in the history; all zero between steps */
	size_t cap;
};

void llm_sampler_params_default(struct llm_sampler_params *p);

/* Check p and seed the RNG.  LLM_ERR_RANGE names a parameter out of range. */
enum llm_err llm_sampler_init(struct llm_sampler *s, const struct llm_sampler_params *p,
			      struct llm_diag *diag);
void llm_sampler_free(struct llm_sampler *s);

/* Choose the next token from logits[0..n_vocab).  history[0..n_history) are the tokens the
 * penalties look at (the caller picks the window: generated tokens only, or the prompt too, as
 * HF does); ids outside the vocabulary are ignored.  logits may hold -inf for banned tokens but
 * no NaN or +inf (LLM_ERR_RANGE), and not only -inf.  out may be NULL when only token is
 * wanted.  Deterministic for a given seed and sequence of calls. */
enum llm_err llm_sampler_next(struct llm_sampler *s, const float *logits, size_t n_vocab,
			      const uint32_t *history, size_t n_history, uint32_t *token,
			      struct llm_sample_result *out, struct llm_diag *diag);

/* The steps of llm_sampler_next() short of the draw: the tokens that may be drawn, their
 * logits after penalties and temperature (with temperature 0, the one greedy choice).  For
 * tests and for tools that show what the sampler considered.  *cands points into the sampler's
 * scratch and is valid until its next call; its order is unspecified. */
enum llm_err llm_sampler_candidates(struct llm_sampler *s, const float *logits, size_t n_vocab,
				    const uint32_t *history, size_t n_history,
				    const struct llm_sample_cand **cands, size_t *n_cands,
				    struct llm_diag *diag);

/* --- stop conditions -------------------------------------------------------------------- */

struct llm_stop {
	char **strs;
	size_t *lens;
	size_t n_strs;
	size_t max_len;
	uint32_t *tokens;
	size_t n_tokens;
	struct llm_buf held; /* text that may be the start of a stop string */
	bool stopped;
	size_t which; /* the stop string that matched, when stopped */
};

/* Copy the stop strings (non-empty) and stop token ids.  Either list may be empty. */
enum llm_err llm_stop_init(struct llm_stop *st, const char *const *strs, size_t n_strs,
			   const uint32_t *tokens, size_t n_tokens, struct llm_diag *diag);
void llm_stop_free(struct llm_stop *st);

/* Is token one of the stop ids?  The caller drops its text and ends, as with an EOS token. */
bool llm_stop_is_token(const struct llm_stop *st, uint32_t token);

/* Feed the next piece of text.  Appends to out the text that is now certain to be output, and
 * holds back the longest tail that may begin a stop string.  When a stop string is complete,
 * *stopped becomes true, out ends just before it, and the rest is dropped; later calls add
 * nothing.  LLM_ERR_TOO_BIG when out is full (the matcher is then unchanged). */
enum llm_err llm_stop_feed(struct llm_stop *st, const char *piece, size_t n, struct llm_buf *out,
			   bool *stopped);

/* Generation ended without a stop string: release the held-back text to out. */
enum llm_err llm_stop_flush(struct llm_stop *st, struct llm_buf *out);

#endif
