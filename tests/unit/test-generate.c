/* Unit tests of inference: the key/value cache against the training forward, batched decoding,
 * greedy and seeded generation, stop tokens and strings, the UTF-8-safe stream, scoring, and
 * the context-length error.
 *
 * The model is a tiny random one whose query and key weights are scaled up, so attention is far
 * from uniform and a wrong position, mask or cache row changes the logits.  Tolerance: the
 * cached path computes the same sums as llm_model_forward in another order, so logits agree to
 * 1e-4 of the row's largest magnitude (float rounding; observed near 1e-6). */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/json.h"
#include "core/rand.h"
#include "engine/generate.h"
#include "engine/model.h"
#include "text/bpe.h"

#define VOCAB	64
#define MAXPOS	48
#define REL_TOL 1e-4

/* --- helpers -------------------------------------------------------------------------------- */

static struct llm_model_config test_config(void)
{
	struct llm_model_config c = {
	    .vocab_size = VOCAB,
	    .hidden_size = 32,
	    .intermediate_size = 48,
	    .num_hidden_layers = 2,
	    .num_attention_heads = 4,
	    .num_key_value_heads = 2,
	    .max_position_embeddings = MAXPOS,
	    .rms_norm_eps = 1e-5,
	    .rope_theta = 10000.0,
	    .tie_word_embeddings = false,
	    .bos_token_id = -1,
	    .eos_token_id = -1,
	};
	return c;
}

static void scale(float *p, size_t n, float f)
{
	for (size_t i = 0; i < n; i++)
		p[i] *= f;
}

/* Random weights with std 0.02, then q, k and the head scaled so attention scores and logits
 * are of order one: softmaxes that are neither uniform nor one-hot. */
static struct llm_model *new_model(uint64_t seed)
{
	struct llm_model_config c = test_config();
	struct llm_model *m = NULL;
	struct llm_diag d;
	if (llm_model_new(&m, &c, &d))
		fail_msg("llm_model_new: %s", d.msg);
	llm_model_init_random(m, seed, 0.02f);
	size_t dd = (size_t)c.hidden_size, kvd = dd / c.num_attention_heads * c.num_key_value_heads;
	for (int l = 0; l < c.num_hidden_layers; l++) {
		scale(m->w.layer[l].wq, dd * dd, 40.0f);
		scale(m->w.layer[l].wk, kvd * dd, 40.0f);
		scale(m->w.layer[l].wv, kvd * dd, 20.0f);
		scale(m->w.layer[l].wo, dd * dd, 20.0f);
	}
	scale(m->w.lm_head, (size_t)VOCAB * dd, 20.0f);
	return m;
}

static void random_ids(uint32_t *ids, size_t n, uint64_t seed)
{
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		ids[i] = (uint32_t)llm_rand_below(&r, VOCAB);
}

/* The largest |a − b| over a row, relative to the row's largest |b|. */
static double row_rel_err(const float *a, const float *b, int n)
{
	double err = 0, mag = 1e-6;
	for (int i = 0; i < n; i++) {
		err = fmax(err, fabs((double)a[i] - b[i]));
		mag = fmax(mag, fabs((double)b[i]));
	}
	return err / mag;
}

static uint32_t argmax(const float *row, int n)
{
	uint32_t best = 0;
	for (int i = 1; i < n; i++)
		if (row[i] > row[best])
			best = (uint32_t)i;
	return best;
}

/* Token texts: ids below 52 are two ASCII characters ("a0".."z1"), the rest pieces of UTF-8
 * characters and one byte that is never UTF-8. */
static const char *const utf8_pieces[VOCAB - 52] = {
    "\xC3",	    /* 52: first byte of é */
    "\xA9",	    /* 53: its second */
    "\xE2\x82",	    /* 54: two bytes of € */
    "\xAC",	    /* 55: its last */
    "\xF0\x9F",	    /* 56: half of 😀 */
    "\x98",	    /* 57 */
    "\x80",	    /* 58 */
    "\xFF",	    /* 59: never valid */
    "\xC3\xA9",	    /* 60: é whole */
    " ",	    /* 61 */
    "!",	    /* 62 */
    "\xE2\x82\xAC", /* 63: € whole */
};

static enum llm_err table_decode(void *ctx, const uint32_t *ids, size_t n, struct llm_buf *out,
				 struct llm_diag *diag)
{
	(void)ctx;
	for (size_t i = 0; i < n; i++) {
		enum llm_err e;
		if (ids[i] >= VOCAB)
			return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "id %u", ids[i]);
		if (ids[i] < 52) {
			char two[2] = {(char)('a' + ids[i] % 26), (char)('0' + ids[i] / 26)};
			e = llm_buf_append(out, two, 2);
		} else {
			e = llm_buf_puts(out, utf8_pieces[ids[i] - 52]);
		}
		if (e)
			return e;
	}
	return LLM_OK;
}

/* What the streaming callback saw. */
struct stream_log {
	struct llm_buf all;
	int pieces;
	bool all_whole_utf8;
	int stop_after; /* return false after this many pieces; 0: never */
};

static bool on_text(void *ctx, const char *piece, size_t n)
{
	struct stream_log *s = ctx;
	assert_true(n > 0);
	if (llm_utf8_valid_prefix(piece, n) != n)
		s->all_whole_utf8 = false;
	assert_int_equal(llm_buf_append(&s->all, piece, n), LLM_OK);
	s->pieces++;
	return s->stop_after == 0 || s->pieces < s->stop_after;
}

static void stream_log_init(struct stream_log *s)
{
	memset(s, 0, sizeof *s);
	llm_buf_init(&s->all, 0);
	s->all_whole_utf8 = true;
}

static struct llm_gen_params greedy_params(int max_tokens)
{
	struct llm_gen_params p;
	llm_gen_params_default(&p);
	p.sampler.temperature = 0.0f;
	p.max_tokens = max_tokens;
	p.decode = table_decode;
	return p;
}

static void generate_ok(const struct llm_model *m, const uint32_t *prompt, size_t n,
			const struct llm_gen_params *p, struct llm_gen_result *r)
{
	struct llm_diag d;
	if (llm_generate(m, prompt, n, p, r, &d))
		fail_msg("llm_generate: %s", d.msg);
}

static void eval_ok(struct llm_kv *kv, struct llm_batch *b)
{
	struct llm_diag d;
	if (llm_kv_eval(kv, b, &d))
		fail_msg("llm_kv_eval: %s", d.msg);
}

/* --- the cache against the training forward ------------------------------------------------- */

/* Prefill in two chunks, then one token per step: every position's logits are the training
 * forward's.  The key correctness check of the cache, positions and masking. */
static void cached_logits_equal_the_training_forward_at_every_position(void **state)
{
	(void)state;
	struct llm_model *m = new_model(1);
	enum { T = 30 };
	uint32_t tok[T];
	random_ids(tok, T, 7);
	assert_int_equal(llm_model_forward(m, tok, NULL, NULL, 1, T, NULL, NULL), LLM_OK);
	float *ref = malloc(sizeof(float) * T * VOCAB);
	memcpy(ref, m->logits, sizeof(float) * T * VOCAB);

	/* Attention must matter: changing the first token changes the last position's logits. */
	uint32_t tok2[T];
	memcpy(tok2, tok, sizeof tok);
	tok2[0] = (tok[0] + 1) % VOCAB;
	assert_int_equal(llm_model_forward(m, tok2, NULL, NULL, 1, T, NULL, NULL), LLM_OK);
	assert_true(row_rel_err(m->logits + (T - 1) * VOCAB, ref + (T - 1) * VOCAB, VOCAB) > 1e-2);

	struct llm_kv *kv;
	assert_int_equal(llm_kv_new(&kv, m, 2, 0, NULL), LLM_OK);
	assert_int_equal(llm_kv_n_ctx(kv), MAXPOS);
	int slot;
	assert_int_equal(llm_kv_slot_new(kv, &slot, NULL), LLM_OK);
	struct llm_batch b;
	llm_batch_init(&b);
	double worst = 0;
	int t = 0;
	const int chunks[] = {7, 5};
	for (int c = 0; c < 2; c++) {
		llm_batch_clear(&b);
		for (int j = 0; j < chunks[c]; j++)
			assert_int_equal(llm_batch_add(&b, slot, tok[t + j], true, NULL), LLM_OK);
		eval_ok(kv, &b);
		for (int j = 0; j < chunks[c]; j++)
			worst = fmax(worst, row_rel_err(llm_batch_logits(&b, (size_t)j),
							ref + (size_t)(t + j) * VOCAB, VOCAB));
		t += chunks[c];
	}
	for (; t < T; t++) {
		llm_batch_clear(&b);
		assert_int_equal(llm_batch_add(&b, slot, tok[t], true, NULL), LLM_OK);
		eval_ok(kv, &b);
		worst = fmax(worst,
			     row_rel_err(llm_batch_logits(&b, 0), ref + (size_t)t * VOCAB, VOCAB));
	}
	assert_int_equal(llm_kv_slot_len(kv, slot), T);
	print_message("cached vs training forward: largest relative difference %.2e\n", worst);
	assert_true(worst < REL_TOL);

	/* Truncating and re-feeding the tail gives the same logits again. */
	assert_int_equal(llm_kv_slot_truncate(kv, slot, 20, NULL), LLM_OK);
	llm_batch_clear(&b);
	for (int j = 20; j < T; j++)
		assert_int_equal(llm_batch_add(&b, slot, tok[j], j == T - 1, NULL), LLM_OK);
	eval_ok(kv, &b);
	assert_null(llm_batch_logits(&b, 0));
	assert_true(row_rel_err(llm_batch_logits(&b, T - 21), ref + (size_t)(T - 1) * VOCAB,
				VOCAB) < REL_TOL);

	llm_batch_free(&b);
	llm_kv_free(kv);
	free(ref);
	llm_model_free(m);
}

/* Three sequences of different lengths, prefilled together in one interleaved batch and then
 * decoded together, give each one's logits alone (the continuous-batching primitive). */
static void batched_sequences_give_the_logits_of_each_alone(void **state)
{
	(void)state;
	struct llm_model *m = new_model(2);
	enum { S = 3, STEPS = 6 };
	const int plen[S] = {5, 11, 2};
	uint32_t seq[S][32];
	for (int s = 0; s < S; s++)
		random_ids(seq[s], (size_t)plen[s] + STEPS, 100 + (uint64_t)s);

	/* Alone: the full forward over prompt + steps. */
	float *alone[S];
	for (int s = 0; s < S; s++) {
		int T = plen[s] + STEPS;
		assert_int_equal(llm_model_forward(m, seq[s], NULL, NULL, 1, T, NULL, NULL),
				 LLM_OK);
		alone[s] = malloc(sizeof(float) * (size_t)T * VOCAB);
		memcpy(alone[s], m->logits, sizeof(float) * (size_t)T * VOCAB);
	}

	struct llm_kv *kv;
	assert_int_equal(llm_kv_new(&kv, m, 4, 32, NULL), LLM_OK);
	int slot[S], spare;
	assert_int_equal(llm_kv_slot_new(kv, &spare, NULL), LLM_OK); /* slots need not be 0.. */
	for (int s = 0; s < S; s++)
		assert_int_equal(llm_kv_slot_new(kv, &slot[s], NULL), LLM_OK);
	llm_kv_slot_free(kv, spare);
	struct llm_batch b;
	llm_batch_init(&b);
	/* Prefill: round-robin entries, so runs of one slot are short and interleaved. */
	int fed[S] = {0};
	for (bool more = true; more;) {
		more = false;
		for (int s = 0; s < S; s++)
			if (fed[s] < plen[s]) {
				assert_int_equal(
				    llm_batch_add(&b, slot[s], seq[s][fed[s]], true, NULL), LLM_OK);
				fed[s]++;
				more = true;
			}
	}
	/* Sequence 1's last six entries form a run of one slot: a small prefill block. */
	eval_ok(kv, &b);
	double worst = 0;
	int seen[S] = {0};
	for (size_t i = 0; i < b.n; i++) {
		int s = b.slot[i] == slot[0] ? 0 : b.slot[i] == slot[1] ? 1 : 2;
		worst = fmax(worst, row_rel_err(llm_batch_logits(&b, i),
						alone[s] + (size_t)seen[s]++ * VOCAB, VOCAB));
	}
	for (int step = 0; step < STEPS; step++) {
		llm_batch_clear(&b);
		for (int s = S - 1; s >= 0; s--) /* any order of slots */
			assert_int_equal(
			    llm_batch_add(&b, slot[s], seq[s][plen[s] + step], true, NULL), LLM_OK);
		eval_ok(kv, &b);
		for (int s = 0; s < S; s++) {
			const float *row = llm_batch_logits(&b, (size_t)(S - 1 - s));
			worst = fmax(
			    worst,
			    row_rel_err(row, alone[s] + (size_t)(plen[s] + step) * VOCAB, VOCAB));
		}
	}
	print_message("batched vs alone: largest relative difference %.2e\n", worst);
	assert_true(worst < REL_TOL);
	for (int s = 0; s < S; s++) {
		assert_int_equal(llm_kv_slot_len(kv, slot[s]), plen[s] + STEPS);
		free(alone[s]);
	}

	/* A slot that is free, or a token outside the vocabulary, fails and changes nothing. */
	struct llm_diag d;
	llm_batch_clear(&b);
	assert_int_equal(llm_batch_add(&b, slot[0], 1, true, NULL), LLM_OK);
	assert_int_equal(llm_batch_add(&b, spare, 1, true, NULL), LLM_OK);
	assert_int_equal(llm_kv_eval(kv, &b, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "not in use"));
	llm_batch_clear(&b);
	assert_int_equal(llm_batch_add(&b, slot[0], VOCAB, true, NULL), LLM_OK);
	assert_int_equal(llm_kv_eval(kv, &b, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_kv_slot_len(kv, slot[0]), plen[0] + STEPS);

	llm_batch_free(&b);
	llm_kv_free(kv);
	llm_model_free(m);
}

/* --- generation ----------------------------------------------------------------------------- */

/* Greedy generation picks, at each step, the argmax of the full forward over everything so far;
 * its logprobs are the log-softmax of those logits. */
static void greedy_generation_equals_argmax_by_recomputation(void **state)
{
	(void)state;
	struct llm_model *m = new_model(3);
	enum { P = 6, N = 20 };
	uint32_t all[P + N];
	random_ids(all, P, 11);
	struct llm_gen_params p = greedy_params(N);
	p.logprobs = true;
	p.sampler.n_logprobs = 3;
	struct llm_gen_result r;
	generate_ok(m, all, P, &p, &r);
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	assert_string_equal(llm_finish_name(r.finish), "length");
	assert_int_equal(r.n_tokens, N);
	for (int i = 0; i < N; i++) {
		int T = P + i;
		assert_int_equal(llm_model_forward(m, all, NULL, NULL, 1, T, NULL, NULL), LLM_OK);
		const float *row = m->logits + (size_t)(T - 1) * VOCAB;
		uint32_t want = argmax(row, VOCAB);
		assert_int_equal(r.tokens[i], want);
		double mx = row[want], sum = 0;
		for (int j = 0; j < VOCAB; j++)
			sum += exp(row[j] - mx);
		assert_true(fabs(r.logprobs[i].logprob - (-log(sum))) < 1e-4);
		assert_int_equal(r.logprobs[i].n_top, 3);
		assert_int_equal(r.logprobs[i].top[0].token, want);
		all[T] = want;
	}
	llm_gen_result_free(&r);
	llm_model_free(m);
}

static void seeded_sampling_is_reproducible(void **state)
{
	(void)state;
	struct llm_model *m = new_model(4);
	uint32_t prompt[4] = {1, 2, 3, 4};
	struct llm_gen_params p = greedy_params(24);
	p.sampler.temperature = 1.3f;
	p.sampler.top_k = 30;
	p.sampler.top_p = 0.95f;
	p.sampler.min_p = 0.01f;
	p.sampler.repetition_penalty = 1.1f;
	p.penalize_prompt = true;
	p.sampler.seed = 42;
	struct llm_gen_result a, b, c;
	generate_ok(m, prompt, 4, &p, &a);
	generate_ok(m, prompt, 4, &p, &b);
	p.sampler.seed = 43;
	generate_ok(m, prompt, 4, &p, &c);
	assert_int_equal(a.n_tokens, b.n_tokens);
	assert_memory_equal(a.tokens, b.tokens, a.n_tokens * sizeof *a.tokens);
	assert_string_equal(a.text.data, b.text.data);
	assert_true(a.n_tokens != c.n_tokens ||
		    memcmp(a.tokens, c.tokens, a.n_tokens * sizeof *a.tokens) != 0);
	/* Sampling, not greedy: the greedy run differs too. */
	p.sampler.temperature = 0.0f;
	llm_gen_result_free(&c);
	generate_ok(m, prompt, 4, &p, &c);
	assert_true(memcmp(a.tokens, c.tokens, a.n_tokens * sizeof *a.tokens) != 0);
	llm_gen_result_free(&a);
	llm_gen_result_free(&b);
	llm_gen_result_free(&c);
	llm_model_free(m);
}

/* A stop string that begins inside one token and ends inside a later one ends the text just
 * before it; a stop token ends the tokens just before it; EOS from the config is a stop token
 * unless ignore_eos. */
static void stop_strings_and_tokens_end_generation(void **state)
{
	(void)state;
	struct llm_model *m = new_model(5);
	uint32_t prompt[3] = {7, 8, 9};
	struct llm_gen_params p = greedy_params(16);
	struct llm_gen_result free_run;
	generate_ok(m, prompt, 3, &p, &free_run);
	assert_int_equal(free_run.finish, LLM_FINISH_LENGTH);

	/* The full text of the first 6 tokens, to find where token 3's text starts. */
	struct llm_buf text;
	llm_buf_init(&text, 0);
	size_t start3 = 0, end4 = 0;
	for (size_t i = 0; i < 5; i++) {
		if (i == 3)
			start3 = text.len;
		assert_int_equal(table_decode(NULL, &free_run.tokens[i], 1, &text, NULL), LLM_OK);
		if (i == 4)
			end4 = text.len;
	}
	for (size_t i = 0; i < 5; i++) /* two ASCII characters each, by the choice of seed */
		assert_true(free_run.tokens[i] < 52);
	/* From the second byte of token 3 to the second-last of token 4. */
	char stop[16];
	size_t sl = end4 - start3 - 2;
	memcpy(stop, text.data + start3 + 1, sl);
	stop[sl] = '\0';
	const char *stops[] = {"never appears", stop};
	p.stop = stops;
	p.n_stop = 2;
	struct stream_log log;
	stream_log_init(&log);
	p.on_text = on_text;
	p.on_text_ctx = &log;
	struct llm_gen_result r;
	generate_ok(m, prompt, 3, &p, &r);
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	assert_string_equal(llm_finish_name(r.finish), "stop");
	assert_int_equal(r.stop_string, 1);
	assert_int_equal(r.stop_token, -1);
	/* The first occurrence might come earlier than token 3; the text ends before it. */
	size_t at = (size_t)(strstr(free_run.text.data, stop) - free_run.text.data);
	assert_true(at <= start3 + 1);
	assert_int_equal(r.text.len, at);
	assert_memory_equal(r.text.data, free_run.text.data, at);
	assert_string_equal(log.all.data, r.text.data);
	llm_gen_result_free(&r);
	llm_buf_free(&log.all);

	/* A stop token: the 5th token's id; generation stops at its first appearance. */
	uint32_t stop_id = free_run.tokens[4];
	size_t first = 0;
	while (free_run.tokens[first] != stop_id)
		first++;
	p.stop = NULL;
	p.n_stop = 0;
	p.on_text = NULL;
	p.stop_tokens = &stop_id;
	p.n_stop_tokens = 1;
	generate_ok(m, prompt, 3, &p, &r);
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	assert_int_equal(r.stop_token, stop_id);
	assert_int_equal(r.n_tokens, first);
	assert_memory_equal(r.tokens, free_run.tokens, first * sizeof *r.tokens);
	llm_gen_result_free(&r);

	/* EOS from the config is the default stop token; ignore_eos turns it off. */
	m->config.eos_token_id = (int)stop_id;
	p.stop_tokens = NULL;
	p.n_stop_tokens = 0;
	generate_ok(m, prompt, 3, &p, &r);
	assert_int_equal(r.finish, LLM_FINISH_STOP);
	assert_int_equal(r.n_tokens, first);
	llm_gen_result_free(&r);
	p.ignore_eos = true;
	generate_ok(m, prompt, 3, &p, &r);
	assert_int_equal(r.finish, LLM_FINISH_LENGTH);
	assert_int_equal(r.n_tokens, 16);
	llm_gen_result_free(&r);

	llm_buf_free(&text);
	llm_gen_result_free(&free_run);
	llm_model_free(m);
}

static void max_tokens_ends_with_length(void **state)
{
	(void)state;
	struct llm_model *m = new_model(6);
	uint32_t prompt[1] = {5};
	for (int n = 1; n <= 3; n++) {
		struct llm_gen_params p = greedy_params(n);
		struct llm_gen_result r;
		generate_ok(m, prompt, 1, &p, &r);
		assert_int_equal(r.finish, LLM_FINISH_LENGTH);
		assert_int_equal(r.n_tokens, n);
		assert_int_equal(r.n_prompt, 1);
		llm_gen_result_free(&r);
	}
	/* The prompt plus max_tokens may fill the context exactly. */
	uint32_t prompt2[MAXPOS - 4];
	random_ids(prompt2, MAXPOS - 4, 3);
	struct llm_gen_params p = greedy_params(4);
	struct llm_gen_result r;
	generate_ok(m, prompt2, MAXPOS - 4, &p, &r);
	assert_int_equal(r.n_tokens, 4);
	llm_gen_result_free(&r);
	llm_model_free(m);
}

static void tokens_only_generation_needs_no_decoder(void **state)
{
	(void)state;
	struct llm_model *m = new_model(6);
	uint32_t prompt[2] = {5, 9};
	struct llm_gen_params p = greedy_params(3);
	p.decode = NULL; /* ids only, as a caller that detokenizes itself asks */
	struct llm_gen_result r;
	generate_ok(m, prompt, 2, &p, &r);
	assert_int_equal(r.n_tokens, 3);
	assert_int_equal(r.text.len, 0);
	struct llm_gen_params q = greedy_params(3);
	struct llm_gen_result t;
	generate_ok(m, prompt, 2, &q, &t);
	assert_memory_equal(r.tokens, t.tokens, 3 * sizeof *r.tokens);
	llm_gen_result_free(&r);
	llm_gen_result_free(&t);
	llm_model_free(m);
}

static void context_overflow_is_an_error_naming_the_numbers(void **state)
{
	(void)state;
	struct llm_model *m = new_model(7);
	uint32_t prompt[40];
	random_ids(prompt, 40, 1);
	struct llm_gen_params p = greedy_params(9);
	struct llm_gen_result r;
	struct llm_diag d;
	assert_int_equal(llm_generate(m, prompt, 40, &p, &r, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "40"));
	assert_non_null(strstr(d.msg, "9"));
	assert_non_null(strstr(d.msg, "49"));
	assert_non_null(strstr(d.msg, "48"));
	llm_gen_result_free(&r);
	/* A smaller context given in the parameters. */
	p.n_ctx = 20;
	assert_int_equal(llm_generate(m, prompt, 12, &p, &r, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "context length 20"));
	llm_gen_result_free(&r);
	/* An empty prompt and max_tokens 0 are errors too. */
	assert_int_equal(llm_generate(m, prompt, 0, &p, &r, &d), LLM_ERR_USAGE);
	p.max_tokens = 0;
	p.n_ctx = 0;
	assert_int_equal(llm_generate(m, prompt, 3, &p, &r, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "max_tokens"));
	/* The cache refuses a batch beyond its context and keeps what it had. */
	struct llm_kv *kv;
	int slot;
	assert_int_equal(llm_kv_new(&kv, m, 1, 8, NULL), LLM_OK);
	assert_int_equal(llm_kv_slot_new(kv, &slot, NULL), LLM_OK);
	struct llm_batch b;
	llm_batch_init(&b);
	for (int i = 0; i < 6; i++)
		assert_int_equal(llm_batch_add(&b, slot, prompt[i], false, NULL), LLM_OK);
	eval_ok(kv, &b);
	assert_int_equal(llm_kv_eval(kv, &b, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "6 cached tokens + 6 new"));
	assert_int_equal(llm_kv_slot_len(kv, slot), 6);
	assert_int_equal(llm_kv_slot_new(kv, &slot, &d), LLM_ERR_RANGE);
	struct llm_kv *kv2;
	assert_int_equal(llm_kv_new(&kv2, m, 1, MAXPOS + 1, &d), LLM_ERR_RANGE);
	assert_null(kv2);
	llm_batch_free(&b);
	llm_kv_free(kv);
	llm_model_free(m);
}

/* --- streaming ------------------------------------------------------------------------------ */

/* Drive one request with forced tokens (a logits row with one large entry), collecting the
 * stream; returns the finish reason. */
static enum llm_finish force(const uint32_t *ids, size_t n, struct llm_gen_params *p,
			     struct stream_log *log, struct llm_gen_result *out)
{
	struct llm_model_config c = test_config();
	struct llm_gen_seq s;
	stream_log_init(log);
	p->on_text = on_text;
	p->on_text_ctx = log;
	assert_int_equal(llm_gen_seq_init(&s, p, &c, ids, 0, NULL), LLM_OK);
	float row[VOCAB];
	bool done = false;
	for (size_t i = 0; i < n && !done; i++) {
		for (int j = 0; j < VOCAB; j++)
			row[j] = 0.0f;
		row[ids[i]] = 50.0f;
		uint32_t tok;
		assert_int_equal(llm_gen_seq_next(&s, row, &tok, &done, NULL), LLM_OK);
		assert_int_equal(tok, ids[i]);
	}
	assert_true(done);
	*out = s.result;
	llm_gen_seq_free(&s, true);
	assert_string_equal(log->all.data, out->text.data);
	assert_true(log->all_whole_utf8);
	return out->finish;
}

/* Characters split across tokens come out whole; a byte that cannot be UTF-8 becomes U+FFFD;
 * an unfinished character at the end becomes U+FFFD; the pieces concatenate to the text. */
static void streamed_pieces_are_whole_utf8_characters(void **state)
{
	(void)state;
	struct llm_gen_params p = greedy_params(11);
	struct stream_log log;
	struct llm_gen_result r;
	/* a0, é in two, € in two, 😀 in three, 0xFF, then the first byte of é. */
	const uint32_t ids[] = {0, 52, 53, 54, 55, 56, 57, 58, 59, 61, 52};
	assert_int_equal(force(ids, 11, &p, &log, &r), LLM_FINISH_LENGTH);
	assert_string_equal(r.text.data, "a0\xC3\xA9\xE2\x82\xAC\xF0\x9F\x98\x80\xEF\xBF\xBD "
					 "\xEF\xBF\xBD");
	assert_int_equal(log.pieces, 7); /* nothing for the tokens that end mid-character */
	llm_gen_result_free(&r);
	llm_buf_free(&log.all);

	/* Random tokens from a sampled model, with a stop string holding text back. */
	struct llm_model *m = new_model(8);
	uint32_t prompt[2] = {52, 54};
	for (uint64_t seed = 1; seed <= 8; seed++) {
		struct llm_gen_params q = greedy_params(40);
		q.sampler.temperature = 2.0f;
		q.sampler.seed = seed;
		const char *stops[] = {"\xE2\x82\xAC!"};
		q.stop = stops;
		q.n_stop = 1;
		stream_log_init(&log);
		q.on_text = on_text;
		q.on_text_ctx = &log;
		generate_ok(m, prompt, 2, &q, &r);
		assert_true(log.all_whole_utf8);
		assert_string_equal(log.all.data, r.text.data);
		assert_int_equal(llm_utf8_valid_prefix(r.text.data, r.text.len), r.text.len);
		llm_gen_result_free(&r);
		llm_buf_free(&log.all);
	}
	llm_model_free(m);
}

/* A stop string made of multi-byte characters split over tokens is held back and never shown;
 * text that only began like a stop string is released when it turns out not to be one. */
static void stop_strings_hold_back_only_what_may_stop(void **state)
{
	(void)state;
	struct llm_gen_params p = greedy_params(10);
	const char *stops[] = {"\xE2\x82\xAC\xF0\x9F\x98\x80", "a0b0!"};
	p.stop = stops;
	p.n_stop = 2;
	struct stream_log log;
	struct llm_gen_result r;
	/* a0 b0 c0: "a0b0" was held, released with c0. */
	const uint32_t ids1[] = {0, 1, 2};
	p.max_tokens = 3;
	assert_int_equal(force(ids1, 3, &p, &log, &r), LLM_FINISH_LENGTH);
	assert_string_equal(r.text.data, "a0b0c0");
	assert_int_equal(log.pieces, 1);
	llm_gen_result_free(&r);
	llm_buf_free(&log.all);
	/* c0 € (two tokens) 😀 (three tokens): stops; the text is "c0". */
	const uint32_t ids2[] = {2, 54, 55, 56, 57, 58, 0};
	p.max_tokens = 10;
	assert_int_equal(force(ids2, 6, &p, &log, &r), LLM_FINISH_STOP);
	assert_string_equal(r.text.data, "c0");
	assert_int_equal(r.stop_string, 0);
	assert_int_equal(r.n_tokens, 6);
	llm_gen_result_free(&r);
	llm_buf_free(&log.all);
	/* The callback can end generation. */
	struct llm_gen_params q = greedy_params(10);
	const uint32_t ids3[] = {0, 1, 2, 3};
	struct llm_gen_seq s;
	struct llm_model_config c = test_config();
	stream_log_init(&log);
	log.stop_after = 2;
	q.on_text = on_text;
	q.on_text_ctx = &log;
	assert_int_equal(llm_gen_seq_init(&s, &q, &c, NULL, 0, NULL), LLM_OK);
	bool done = false;
	size_t i = 0;
	for (; i < 4 && !done; i++) {
		float row[VOCAB] = {0};
		row[ids3[i]] = 50.0f;
		uint32_t tok;
		assert_int_equal(llm_gen_seq_next(&s, row, &tok, &done, NULL), LLM_OK);
	}
	assert_int_equal(i, 2);
	assert_int_equal(s.result.finish, LLM_FINISH_ABORT);
	assert_string_equal(llm_finish_name(s.result.finish), "abort");
	llm_gen_seq_free(&s, false);
	llm_buf_free(&log.all);
	/* Stop strings without a decoder are refused. */
	q.decode = NULL;
	q.stop = stops;
	q.n_stop = 1;
	assert_int_equal(llm_gen_seq_init(&s, &q, &c, NULL, 0, NULL), LLM_ERR_USAGE);
}

/* The decoder may be a byte-level tokenizer: "Ã" and "©" are the bytes C3 and A9. */
static void a_bpe_tokenizer_decodes_the_stream(void **state)
{
	(void)state;
	static const char hf[] =
	    "{\"added_tokens\":[{\"id\":5,\"content\":\"<eos>\",\"special\":true}],"
	    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":false,"
	    "\"use_regex\":true},\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,"
	    "\"\xc3\x83\":2,\"\xc2\xa9\":3,\"ab\":4},\"merges\":[\"a b\"]}}";
	struct llm_bpe *bpe = NULL;
	struct llm_diag d;
	if (llm_bpe_from_hf_json(&bpe, hf, strlen(hf), "tiny.json", &d))
		fail_msg("%s", d.msg);
	struct llm_gen_params p = greedy_params(4);
	p.decode = NULL;
	p.bpe = bpe;
	struct stream_log log;
	struct llm_gen_result r;
	const uint32_t ids[] = {0, 2, 3, 1};
	assert_int_equal(force(ids, 4, &p, &log, &r), LLM_FINISH_LENGTH);
	assert_string_equal(r.text.data, "a\xC3\xA9"
					 "b");
	assert_int_equal(log.pieces, 3);
	llm_gen_result_free(&r);
	llm_buf_free(&log.all);
	llm_bpe_free(bpe);
}

/* --- scoring -------------------------------------------------------------------------------- */

/* The mean log-probability is minus the training forward's mean cross-entropy; perplexity is
 * exp of that loss.  With from > 1, the loss with the conditioning targets masked out. */
static void prompt_scoring_equals_the_training_loss(void **state)
{
	(void)state;
	struct llm_model *m = new_model(9);
	enum { N = 33 };
	uint32_t ids[N];
	random_ids(ids, N, 21);
	float loss;
	assert_int_equal(llm_model_forward(m, ids, ids + 1, NULL, 1, N - 1, &loss, NULL), LLM_OK);
	struct llm_score s;
	float lp[N];
	assert_int_equal(llm_score_tokens(m, ids, N, 1, lp, &s, NULL), LLM_OK);
	assert_int_equal(s.n_scored, N - 1);
	print_message("score: mean logprob %.6f, training loss %.6f\n", s.mean_logprob, loss);
	assert_true(fabs(-s.mean_logprob - loss) < REL_TOL * loss);
	assert_true(fabs(s.perplexity - exp(loss)) < REL_TOL * exp(loss));
	assert_true(lp[0] == 0.0f);
	double sum = 0;
	for (int i = 1; i < N; i++)
		sum += lp[i];
	assert_true(fabs(sum - s.sum_logprob) < 1e-6 * fabs(sum));

	float mask[N - 1];
	for (int i = 0; i < N - 1; i++)
		mask[i] = i + 1 >= 10 ? 1.0f : 0.0f;
	assert_int_equal(llm_model_forward(m, ids, ids + 1, mask, 1, N - 1, &loss, NULL), LLM_OK);
	assert_int_equal(llm_score_tokens(m, ids, N, 10, NULL, &s, NULL), LLM_OK);
	assert_int_equal(s.n_scored, N - 10);
	assert_true(fabs(-s.mean_logprob - loss) < REL_TOL * loss);

	struct llm_diag d;
	assert_int_equal(llm_score_tokens(m, ids, N, 0, NULL, &s, &d), LLM_ERR_RANGE);
	uint32_t long_ids[MAXPOS + 1] = {0};
	assert_int_equal(llm_score_tokens(m, long_ids, MAXPOS + 1, 1, NULL, &s, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "49"));
	llm_model_free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(cached_logits_equal_the_training_forward_at_every_position),
	    cmocka_unit_test(batched_sequences_give_the_logits_of_each_alone),
	    cmocka_unit_test(greedy_generation_equals_argmax_by_recomputation),
	    cmocka_unit_test(seeded_sampling_is_reproducible),
	    cmocka_unit_test(stop_strings_and_tokens_end_generation),
	    cmocka_unit_test(max_tokens_ends_with_length),
	    cmocka_unit_test(tokens_only_generation_needs_no_decoder),
	    cmocka_unit_test(context_overflow_is_an_error_naming_the_numbers),
	    cmocka_unit_test(streamed_pieces_are_whole_utf8_characters),
	    cmocka_unit_test(stop_strings_hold_back_only_what_may_stop),
	    cmocka_unit_test(a_bpe_tokenizer_decodes_the_stream),
	    cmocka_unit_test(prompt_scoring_equals_the_training_loss),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
