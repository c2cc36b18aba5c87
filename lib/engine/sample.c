/* Next-token sampling and stop conditions; see sample.h for the order of the steps and why. */
#include "config.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sample.h"

void llm_sampler_params_default(struct llm_sampler_params *p)
{
	*p = (struct llm_sampler_params){
	    .temperature = 1.0f,
	    .top_k = 0,
	    .top_p = 1.0f,
	    .min_p = 0.0f,
	    .repetition_penalty = 1.0f,
	    .frequency_penalty = 0.0f,
	    .presence_penalty = 0.0f,
	    .n_logprobs = 0,
	    .seed = 0,
	};
}

enum llm_err llm_sampler_init(struct llm_sampler *s, const struct llm_sampler_params *p,
			      struct llm_diag *diag)
{
	memset(s, 0, sizeof *s);
	if (!(p->temperature >= 0.0f) || isinf(p->temperature))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "temperature must be a finite number >= 0, not %g",
				    (double)p->temperature);
	if (p->top_k < 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "top_k must be >= 0, not %d",
				    (int)p->top_k);
	if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "top_p must be in (0, 1], not %g",
				    (double)p->top_p);
	if (!(p->min_p >= 0.0f && p->min_p <= 1.0f))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "min_p must be in [0, 1], not %g",
				    (double)p->min_p);
	if (!(p->repetition_penalty > 0.0f) || isinf(p->repetition_penalty))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "repetition_penalty must be a finite number > 0, not %g",
				    (double)p->repetition_penalty);
	if (!isfinite(p->frequency_penalty) || !isfinite(p->presence_penalty))
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "frequency_penalty and presence_penalty must be finite");
	if (p->n_logprobs < 0 || p->n_logprobs > LLM_SAMPLE_MAX_LOGPROBS)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "n_logprobs must be in 0..%d, not %d", LLM_SAMPLE_MAX_LOGPROBS,
				    (int)p->n_logprobs);
	s->params = *p;
	llm_rand_seed(&s->rng, p->seed);
	return LLM_OK;
}

void llm_sampler_free(struct llm_sampler *s)
{
	free(s->cand);
	free(s->count);
	s->cand = NULL;
	s->count = NULL;
	s->cap = 0;
}

static enum llm_err reserve(struct llm_sampler *s, size_t n, struct llm_diag *diag)
{
	if (n <= s->cap)
		return LLM_OK;
	struct llm_sample_cand *c = malloc(n * sizeof *c);
	uint32_t *count = calloc(n, sizeof *count);
	if (!c || !count) {
		free(c);
		free(count);
		return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "no memory for %zu candidates", n);
	}
	llm_sampler_free(s);
	s->cand = c;
	s->count = count;
	s->cap = n;
	return LLM_OK;
}

/* The total order every selection uses: higher logit first, then lower id, so results never
 * depend on how the partition happened to fall. */
static inline bool better(const struct llm_sample_cand *a, const struct llm_sample_cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap(struct llm_sample_cand *a, struct llm_sample_cand *b)
{
	struct llm_sample_cand t = *a;
	*a = *b;
	*b = t;
}

/* Partition a[lo..hi) (hi - lo >= 2) around a pivot and return its index p: a[lo..p) beat it,
 * a[p+1..hi) do not.  Median of three keeps sorted or reversed logits from going quadratic. */
static size_t partition(struct llm_sample_cand *a, size_t lo, size_t hi)
{
	size_t mid = lo + (hi - lo) / 2;
	if (better(&a[mid], &a[lo]))
		swap(&a[mid], &a[lo]);
	if (better(&a[hi - 1], &a[lo]))
		swap(&a[hi - 1], &a[lo]);
	if (better(&a[hi - 1], &a[mid]))
		swap(&a[hi - 1], &a[mid]);
	struct llm_sample_cand pivot = a[mid];
	swap(&a[mid], &a[hi - 1]);
	size_t store = lo;
	for (size_t i = lo; i < hi - 1; i++)
		if (better(&a[i], &pivot))
			swap(&a[i], &a[store++]);
	swap(&a[store], &a[hi - 1]);
	return store;
}

/* Move the k best of a[0..n) to a[0..k), in no particular order: quickselect, O(n) on average,
 * so top-k over a 200k vocabulary costs a pass or two instead of a full sort. */
static void select_top(struct llm_sample_cand *a, size_t n, size_t k)
{
	/* a[0..lo) beat everything after them and a[hi..n) lose to everything before them. */
	size_t lo = 0, hi = n;
	while (k > lo && k < hi && hi - lo > 1) {
		size_t p = partition(a, lo, hi);
		if (p == k || p + 1 == k)
			return;
		if (p > k)
			hi = p;
		else
			lo = p + 1;
	}
}

static float max_logit(const struct llm_sample_cand *a, size_t n)
{
	float m = -INFINITY;
	for (size_t i = 0; i < n; i++)
		if (a[i].logit > m)
			m = a[i].logit;
	return m;
}

/* HF's RepetitionPenaltyLogitsProcessor once per distinct token, then vLLM's frequency and
 * presence penalties.  count[] is zero on entry and left zero on return. */
static void apply_penalties(struct llm_sampler *s, const uint32_t *history, size_t n_history,
			    size_t n_vocab)
{
	const struct llm_sampler_params *p = &s->params;
	if (p->repetition_penalty == 1.0f && p->frequency_penalty == 0.0f &&
	    p->presence_penalty == 0.0f)
		return;
	for (size_t i = 0; i < n_history; i++)
		if (history[i] < n_vocab)
			s->count[history[i]]++;
	for (size_t i = 0; i < n_history; i++) {
		uint32_t t = history[i];
		if (t >= n_vocab || s->count[t] == 0)
			continue;
		float l = s->cand[t].logit;
		if (p->repetition_penalty != 1.0f)
			l = l > 0.0f ? l / p->repetition_penalty : l * p->repetition_penalty;
		l -= (float)s->count[t] * p->frequency_penalty + p->presence_penalty;
		s->cand[t].logit = l;
		s->count[t] = 0;
	}
}

/* The n best raw logits as log-probabilities; a small insertion list, since n <= 20. */
static void top_logprobs(const float *logits, size_t n_vocab, double lse, size_t n,
			 struct llm_sample_result *out)
{
	size_t have = 0;
	for (size_t i = 0; i < n_vocab && n > 0; i++) {
		float l = logits[i];
		if (l == -INFINITY || (have == n && !(l > out->top[n - 1].logprob)))
			continue;
		/* Equal logits go after those already in: lower ids first. */
		size_t j = have < n ? have++ : n - 1;
		while (j > 0 && l > out->top[j - 1].logprob) {
			out->top[j] = out->top[j - 1];
			j--;
		}
		out->top[j] = (struct llm_token_logprob){.token = (uint32_t)i, .logprob = l};
	}
	for (size_t j = 0; j < have; j++)
		out->top[j].logprob = (float)((double)out->top[j].logprob - lse);
	out->n_top = have;
}

/* Keep the smallest set of most likely tokens whose mass reaches p (HF's TopPLogitsWarper
 * keeps exactly this set: a token stays when the mass above it is < p).  Rather than sorting,
 * a quickselect that weighs each side: O(n) on average even when the set is most of a flat
 * 200k vocabulary.  The kept tokens end up in a[0..return), unordered. */
static size_t filter_top_p(struct llm_sample_cand *a, size_t n, double p)
{
	float mx = max_logit(a, n);
	double total = 0.0;
	for (size_t i = 0; i < n; i++)
		total += expf(a[i].logit - mx);
	double target = p * total;
	/* a[0..lo) are kept, holding mass acc < target; the answer's last token is in [lo, hi). */
	size_t lo = 0, hi = n;
	double acc = 0.0;
	while (hi - lo > 1) {
		size_t piv = partition(a, lo, hi);
		double upper = 0.0;
		for (size_t i = lo; i < piv; i++)
			upper += expf(a[i].logit - mx);
		double with_pivot = acc + upper + expf(a[piv].logit - mx);
		if (acc + upper >= target) {
			hi = piv;
		} else if (with_pivot >= target) {
			return piv + 1;
		} else {
			acc = with_pivot;
			lo = piv + 1;
		}
	}
	/* One token left, or none when rounding left the mass a hair short of p: keep all. */
	return hi > lo ? lo + 1 : (lo > 0 ? lo : 1);
}

/* Drop tokens whose probability is below min_p times the largest; order is kept. */
static size_t filter_min_p(struct llm_sample_cand *a, size_t n, float min_p)
{
	float mx = max_logit(a, n);
	size_t kept = 0;
	for (size_t i = 0; i < n; i++)
		if (expf(a[i].logit - mx) >= min_p)
			a[kept++] = a[i];
	return kept;
}

static uint32_t draw(struct llm_rand *rng, const struct llm_sample_cand *a, size_t n)
{
	float mx = max_logit(a, n);
	double sum = 0.0;
	for (size_t i = 0; i < n; i++)
		sum += expf(a[i].logit - mx);
	double u = llm_rand_double(rng) * sum, cum = 0.0;
	size_t last = 0;
	for (size_t i = 0; i < n; i++) {
		double w = expf(a[i].logit - mx);
		if (w == 0.0)
			continue;
		cum += w;
		last = i;
		if (u < cum)
			return a[i].id;
	}
	return a[last].id; /* u landed past the rounded sum */
}

/* Check the logits; their maximum in *mx. */
static enum llm_err check_logits(const float *logits, size_t n_vocab, float *mx,
				 struct llm_diag *diag)
{
	if (n_vocab == 0 || n_vocab > UINT32_MAX)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "vocabulary size %zu out of range",
				    n_vocab);
	*mx = -INFINITY;
	for (size_t i = 0; i < n_vocab; i++) {
		if (isnan(logits[i]) || logits[i] == INFINITY)
			return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
					    "logit of token %zu is %g: the model diverged", i,
					    (double)logits[i]);
		if (logits[i] > *mx)
			*mx = logits[i];
	}
	if (*mx == -INFINITY)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0, "every token is banned (-inf)");
	return LLM_OK;
}

enum llm_err llm_sampler_candidates(struct llm_sampler *s, const float *logits, size_t n_vocab,
				    const uint32_t *history, size_t n_history,
				    const struct llm_sample_cand **cands, size_t *n_cands,
				    struct llm_diag *diag)
{
	const struct llm_sampler_params *p = &s->params;
	float mx;
	enum llm_err e = check_logits(logits, n_vocab, &mx, diag);
	if (e)
		return e;
	e = reserve(s, n_vocab, diag);
	if (e)
		return e;

	struct llm_sample_cand *a = s->cand;
	for (size_t i = 0; i < n_vocab; i++)
		a[i] = (struct llm_sample_cand){.logit = logits[i], .id = (uint32_t)i};
	apply_penalties(s, history, n_history, n_vocab);
	*cands = a;

	if (p->temperature == 0.0f) {
		/* Greedy: a strict > scan in id order gives ties to the lowest id. */
		size_t best = 0;
		for (size_t i = 1; i < n_vocab; i++)
			if (a[i].logit > a[best].logit)
				best = i;
		a[0] = a[best];
		*n_cands = 1;
		return LLM_OK;
	}
	/* Banned tokens can never be drawn: drop them so the filters see fewer. */
	size_t n = 0;
	for (size_t i = 0; i < n_vocab; i++)
		if (a[i].logit != -INFINITY)
			a[n++] = (struct llm_sample_cand){.logit = a[i].logit / p->temperature,
							  .id = a[i].id};
	if (n == 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, "", 0,
				    "every token is banned after the penalties");
	if (p->top_k > 0 && (size_t)p->top_k < n) {
		/* Exactly k, ties to the lower id (llama.cpp); HF and vLLM keep every token tied
		 * with the k-th, which differs only on exact ties. */
		select_top(a, n, (size_t)p->top_k);
		n = (size_t)p->top_k;
	}
	if (p->top_p < 1.0f)
		n = filter_top_p(a, n, p->top_p);
	if (p->min_p > 0.0f)
		n = filter_min_p(a, n, p->min_p);
	*n_cands = n;
	return LLM_OK;
}

enum llm_err llm_sampler_next(struct llm_sampler *s, const float *logits, size_t n_vocab,
			      const uint32_t *history, size_t n_history, uint32_t *token,
			      struct llm_sample_result *out, struct llm_diag *diag)
{
	const struct llm_sample_cand *a;
	size_t n;
	enum llm_err e =
	    llm_sampler_candidates(s, logits, n_vocab, history, n_history, &a, &n, diag);
	if (e)
		return e;
	/* Greedy consumes no random number, so switching it on and off mid-stream does not
	 * shift the draws that follow. */
	uint32_t chosen = s->params.temperature == 0.0f ? a[0].id : draw(&s->rng, a, n);
	*token = chosen;

	if (out) {
		float mx = -INFINITY;
		for (size_t i = 0; i < n_vocab; i++)
			if (logits[i] > mx)
				mx = logits[i];
		double sum = 0.0;
		for (size_t i = 0; i < n_vocab; i++)
			sum += expf(logits[i] - mx);
		double lse = mx + log(sum);
		out->token = chosen;
		out->logprob = (float)((double)logits[chosen] - lse);
		top_logprobs(logits, n_vocab, lse, (size_t)s->params.n_logprobs, out);
	}
	return LLM_OK;
}

/* --- stop conditions -------------------------------------------------------------------- */

enum llm_err llm_stop_init(struct llm_stop *st, const char *const *strs, size_t n_strs,
			   const uint32_t *tokens, size_t n_tokens, struct llm_diag *diag)
{
	memset(st, 0, sizeof *st);
	/* Bounded by the longest stop string plus one piece; pieces are the caller's to bound. */
	llm_buf_init(&st->held, 0);
	if (n_strs) {
		st->strs = calloc(n_strs, sizeof *st->strs);
		st->lens = calloc(n_strs, sizeof *st->lens);
		if (!st->strs || !st->lens)
			goto nomem;
	}
	for (size_t i = 0; i < n_strs; i++) {
		size_t len = strlen(strs[i]);
		if (len == 0) {
			llm_stop_free(st);
			return llm_diag_set(diag, LLM_ERR_USAGE, "", 0, "stop string %zu is empty",
					    i);
		}
		st->strs[i] = malloc(len + 1);
		if (!st->strs[i])
			goto nomem;
		memcpy(st->strs[i], strs[i], len + 1);
		st->lens[i] = len;
		st->n_strs = i + 1;
		if (len > st->max_len)
			st->max_len = len;
	}
	if (n_tokens) {
		st->tokens = malloc(n_tokens * sizeof *st->tokens);
		if (!st->tokens)
			goto nomem;
		memcpy(st->tokens, tokens, n_tokens * sizeof *tokens);
		st->n_tokens = n_tokens;
	}
	return LLM_OK;
nomem:
	st->n_strs = n_strs; /* calloc left the unset entries NULL, which free accepts */
	llm_stop_free(st);
	return llm_diag_set(diag, LLM_ERR_NOMEM, "", 0, "no memory for the stop strings");
}

void llm_stop_free(struct llm_stop *st)
{
	for (size_t i = 0; st->strs && i < st->n_strs; i++)
		free(st->strs[i]);
	free(st->strs);
	free(st->lens);
	free(st->tokens);
	llm_buf_free(&st->held);
	memset(st, 0, sizeof *st);
}

bool llm_stop_is_token(const struct llm_stop *st, uint32_t token)
{
	for (size_t i = 0; i < st->n_tokens; i++)
		if (st->tokens[i] == token)
			return true;
	return false;
}

/* The earliest position in s[0..len) where a whole stop string starts; len when none. */
static size_t find_stop(const struct llm_stop *st, const char *s, size_t len, size_t *which)
{
	for (size_t pos = 0; pos < len; pos++)
		for (size_t j = 0; j < st->n_strs; j++)
			if (len - pos >= st->lens[j] &&
			    memcmp(s + pos, st->strs[j], st->lens[j]) == 0) {
				*which = j;
				return pos;
			}
	return len;
}

/* The longest tail of s[0..len) that is a proper prefix of some stop string. */
static size_t partial_tail(const struct llm_stop *st, const char *s, size_t len)
{
	size_t k = len < st->max_len ? len : st->max_len - 1;
	for (; k > 0; k--)
		for (size_t j = 0; j < st->n_strs; j++)
			if (k < st->lens[j] && memcmp(s + len - k, st->strs[j], k) == 0)
				return k;
	return 0;
}

enum llm_err llm_stop_feed(struct llm_stop *st, const char *piece, size_t n, struct llm_buf *out,
			   bool *stopped)
{
	*stopped = st->stopped;
	if (st->stopped)
		return LLM_OK;
	if (st->n_strs == 0)
		return llm_buf_append(out, piece, n);
	/* Only the held tail can begin a match that this piece completes: everything released
	 * earlier had no tail that starts a stop string. */
	size_t old = st->held.len;
	enum llm_err e = llm_buf_append(&st->held, piece, n);
	if (e)
		return e;
	char *s = st->held.data;
	size_t len = st->held.len, which = 0;
	size_t pos = find_stop(st, s, len, &which);
	size_t keep = pos < len ? 0 : partial_tail(st, s, len);
	size_t release = pos < len ? pos : len - keep;
	e = llm_buf_append(out, s, release);
	if (e) {
		st->held.len = old;
		st->held.data[old] = '\0';
		return e;
	}
	if (pos < len) {
		st->stopped = true;
		st->which = which;
		*stopped = true;
		llm_buf_clear(&st->held);
		return LLM_OK;
	}
	memmove(s, s + release, keep);
	st->held.len = keep;
	s[keep] = '\0';
	return LLM_OK;
}

enum llm_err llm_stop_flush(struct llm_stop *st, struct llm_buf *out)
{
	if (st->stopped || st->held.len == 0)
		return LLM_OK;
	enum llm_err e = llm_buf_append(out, st->held.data, st->held.len);
	if (e)
		return e;
	llm_buf_clear(&st->held);
	return LLM_OK;
}
