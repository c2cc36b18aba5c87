/* Unit tests for lib/engine/sample: the sampler's steps on hand-made logits, seeded draws, log-
 * probabilities, and the stop matcher on streamed pieces. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "core/rand.h"
#include "engine/sample.h"

#define N_OF(a) (sizeof(a) / sizeof *(a))

static void init(struct llm_sampler *s, const struct llm_sampler_params *p)
{
	struct llm_diag d;
	if (llm_sampler_init(s, p, &d) != LLM_OK)
		fail_msg("init: %s", d.msg);
}

static struct llm_sampler_params params(void)
{
	struct llm_sampler_params p;
	llm_sampler_params_default(&p);
	p.seed = 42;
	return p;
}

/* The set of ids the sampler may draw, as a bitmask over a small vocabulary. */
static uint32_t kept(const struct llm_sampler_params *p, const float *logits, size_t n,
		     const uint32_t *hist, size_t n_hist)
{
	struct llm_sampler s;
	init(&s, p);
	const struct llm_sample_cand *c;
	size_t nc;
	assert_int_equal(llm_sampler_candidates(&s, logits, n, hist, n_hist, &c, &nc, NULL),
			 LLM_OK);
	uint32_t mask = 0;
	for (size_t i = 0; i < nc; i++)
		mask |= 1u << c[i].id;
	llm_sampler_free(&s);
	return mask;
}

/* Log-probabilities 0.5, 0.25, 0.15, 0.07, 0.03 give sets with clear margins. */
static const float probs5[] = {0.5f, 0.25f, 0.15f, 0.07f, 0.03f};

static void log_of(const float *p, float *out, size_t n, float shift)
{
	for (size_t i = 0; i < n; i++)
		out[i] = logf(p[i]) + shift;
}

static void greedy_picks_the_argmax_and_ties_go_to_the_lowest_id(void **state)
{
	(void)state;
	struct llm_sampler_params p = params();
	p.temperature = 0.0f;
	struct llm_sampler s;
	init(&s, &p);
	const float logits[] = {1.0f, -INFINITY, 3.0f, 2.0f, 3.0f, 3.0f};
	uint32_t tok;
	for (int i = 0; i < 3; i++) {
		assert_int_equal(
		    llm_sampler_next(&s, logits, N_OF(logits), NULL, 0, &tok, NULL, NULL), LLM_OK);
		assert_int_equal(tok, 2);
	}
	/* The penalty applies before the argmax, as in HF's greedy search. */
	p.repetition_penalty = 2.0f;
	llm_sampler_free(&s);
	init(&s, &p);
	const uint32_t hist[] = {2, 4};
	assert_int_equal(llm_sampler_next(&s, logits, N_OF(logits), hist, 2, &tok, NULL, NULL),
			 LLM_OK);
	assert_int_equal(tok, 5);
	llm_sampler_free(&s);
}

static void top_k_keeps_exactly_the_k_largest(void **state)
{
	(void)state;
	float l[5];
	log_of(probs5, l, 5, 3.0f);
	struct llm_sampler_params p = params();
	p.top_k = 1;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x01);
	p.top_k = 3;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x07);
	p.top_k = 5;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x1f);
	p.top_k = 50;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x1f);
	/* Exactly k on ties: the lower ids stay. */
	const float tied[] = {1.0f, 2.0f, 2.0f, 2.0f, 0.0f};
	p.top_k = 2;
	assert_int_equal(kept(&p, tied, 5, NULL, 0), 0x06);
}

static void top_p_keeps_the_smallest_set_reaching_p(void **state)
{
	(void)state;
	/* Shuffled so the filter must sort: ids 3, 0, 4, 1, 2 hold .5 .25 .15 .07 .03. */
	const float p5[] = {0.25f, 0.07f, 0.03f, 0.5f, 0.15f};
	float l[5];
	log_of(p5, l, 5, -1.0f);
	struct llm_sampler_params p = params();
	p.top_p = 0.4f; /* .5 alone reaches it */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 1u << 3);
	p.top_p = 0.6f; /* .5 + .25 */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 1u << 3 | 1u << 0);
	p.top_p = 0.85f; /* .5 + .25 + .15 = .9 */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 1u << 3 | 1u << 0 | 1u << 4);
	p.top_p = 0.01f; /* at least one */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 1u << 3);
	p.top_p = 1.0f;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x1f);
	/* After top-k the mass is renormalised over the survivors: .5/.75 = .67 reaches .6. */
	p.top_k = 2;
	p.top_p = 0.6f;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 1u << 3);
}

static void min_p_drops_tokens_below_a_fraction_of_the_best(void **state)
{
	(void)state;
	float l[5];
	log_of(probs5, l, 5, 0.0f);
	struct llm_sampler_params p = params();
	p.min_p = 0.2f; /* threshold .1: keeps .5 .25 .15 */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x07);
	p.min_p = 0.4f; /* threshold .2 */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x03);
	p.min_p = 1.0f; /* only the best */
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x01);
	p.min_p = 0.01f;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x1f);
	/* After temperature (HF's order): at T = 0.5 the ratios square, .25/.5 -> .25. */
	p.temperature = 0.5f;
	p.min_p = 0.3f;
	assert_int_equal(kept(&p, l, 5, NULL, 0), 0x01);
}

static void temperature_divides_the_logits(void **state)
{
	(void)state;
	const float l[] = {2.0f, -1.0f, 0.5f};
	struct llm_sampler_params p = params();
	p.temperature = 0.5f;
	struct llm_sampler s;
	init(&s, &p);
	const struct llm_sample_cand *c;
	size_t n;
	assert_int_equal(llm_sampler_candidates(&s, l, 3, NULL, 0, &c, &n, NULL), LLM_OK);
	assert_int_equal(n, 3);
	for (size_t i = 0; i < n; i++)
		assert_float_equal(c[i].logit, l[c[i].id] / 0.5f, 0);
	llm_sampler_free(&s);
}

static void repetition_penalty_divides_positive_and_multiplies_negative_logits(void **state)
{
	(void)state;
	const float l[] = {2.0f, -2.0f, 1.0f, 0.5f, 0.0f};
	const uint32_t hist[] = {0, 1, 0, 0, 4, 99}; /* 99 is outside the vocabulary */
	struct llm_sampler_params p = params();
	p.repetition_penalty = 2.0f;
	struct llm_sampler s;
	init(&s, &p);
	const struct llm_sample_cand *c;
	size_t n;
	assert_int_equal(llm_sampler_candidates(&s, l, 5, hist, N_OF(hist), &c, &n, NULL), LLM_OK);
	/* Once per distinct token, however often it occurred (HF's gather/scatter). */
	const float want[] = {1.0f, -4.0f, 1.0f, 0.5f, 0.0f};
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_float_equal(c[i].logit, want[c[i].id], 0);
	llm_sampler_free(&s);

	/* OpenAI's frequency and presence penalties count occurrences. */
	p.repetition_penalty = 1.0f;
	p.frequency_penalty = 0.5f;
	p.presence_penalty = 0.25f;
	init(&s, &p);
	assert_int_equal(llm_sampler_candidates(&s, l, 5, hist, N_OF(hist), &c, &n, NULL), LLM_OK);
	const float want2[] = {2.0f - 1.5f - 0.25f, -2.0f - 0.5f - 0.25f, 1.0f, 0.5f,
			       -0.5f - 0.25f};
	for (size_t i = 0; i < n; i++)
		assert_float_equal(c[i].logit, want2[c[i].id], 1e-6);
	/* The counts are cleared: a call without history sees the raw logits. */
	assert_int_equal(llm_sampler_candidates(&s, l, 5, NULL, 0, &c, &n, NULL), LLM_OK);
	for (size_t i = 0; i < n; i++)
		assert_float_equal(c[i].logit, l[c[i].id], 0);
	llm_sampler_free(&s);
}

static void seeded_draws_are_reproducible(void **state)
{
	(void)state;
	const float l[] = {0.1f, 0.3f, -0.2f, 0.0f, 0.25f, 0.2f, -0.1f, 0.05f};
	struct llm_sampler_params p = params();
	p.top_k = 6;
	p.top_p = 0.95f;
	struct llm_sampler a, b, c;
	init(&a, &p);
	init(&b, &p);
	p.seed = 43;
	init(&c, &p);
	int differ = 0;
	for (int i = 0; i < 200; i++) {
		uint32_t ta, tb, tc;
		assert_int_equal(llm_sampler_next(&a, l, 8, NULL, 0, &ta, NULL, NULL), LLM_OK);
		assert_int_equal(llm_sampler_next(&b, l, 8, NULL, 0, &tb, NULL, NULL), LLM_OK);
		assert_int_equal(llm_sampler_next(&c, l, 8, NULL, 0, &tc, NULL, NULL), LLM_OK);
		assert_int_equal(ta, tb);
		differ += ta != tc;
	}
	assert_true(differ > 50);
	llm_sampler_free(&a);
	llm_sampler_free(&b);
	llm_sampler_free(&c);
}

static void draws_follow_the_softmax(void **state)
{
	(void)state;
	const float l[] = {1.0f, 0.5f, 0.0f, -0.5f, 2.0f, -3.0f, 0.25f, 1.5f};
	const float temps[] = {1.0f, 2.0f, 0.7f};
	enum { N = 8, DRAWS = 100000 };
	for (size_t t = 0; t < N_OF(temps); t++) {
		struct llm_sampler_params p = params();
		p.temperature = temps[t];
		p.seed = 7 + t;
		struct llm_sampler s;
		init(&s, &p);
		double want[N], sum = 0.0;
		for (int i = 0; i < N; i++)
			sum += want[i] = exp(l[i] / temps[t]);
		long got[N] = {0};
		for (int k = 0; k < DRAWS; k++) {
			uint32_t tok;
			assert_int_equal(llm_sampler_next(&s, l, N, NULL, 0, &tok, NULL, NULL),
					 LLM_OK);
			assert_true(tok < N);
			got[tok]++;
		}
		for (int i = 0; i < N; i++) {
			double pw = want[i] / sum, pg = (double)got[i] / DRAWS;
			/* 5 standard deviations of a binomial frequency. */
			double tol = 5.0 * sqrt(pw * (1.0 - pw) / DRAWS);
			if (fabs(pg - pw) > tol)
				fail_msg("T=%g token %d: drawn %.4f, softmax %.4f",
					 (double)temps[t], i, pg, pw);
		}
		llm_sampler_free(&s);
	}
}

static void logprobs_are_the_log_softmax_of_the_raw_logits(void **state)
{
	(void)state;
	const float l[] = {1.0f, 3.0f, -2.0f, 3.0f, 0.0f, -INFINITY};
	struct llm_sampler_params p = params();
	p.n_logprobs = LLM_SAMPLE_MAX_LOGPROBS;
	p.temperature = 0.3f; /* must not change the reported values */
	p.repetition_penalty = 1.5f;
	struct llm_sampler s;
	init(&s, &p);
	struct llm_sample_result r;
	uint32_t tok;
	const uint32_t hist[] = {1};
	assert_int_equal(llm_sampler_next(&s, l, N_OF(l), hist, 1, &tok, &r, NULL), LLM_OK);
	assert_int_equal(r.token, tok);
	assert_int_equal(r.n_top, 5); /* the banned token is not an alternative */
	double lse = 0.0;
	for (int i = 0; i < 5; i++)
		lse += exp(l[i]);
	lse = log(lse);
	double mass = 0.0;
	for (size_t i = 0; i < r.n_top; i++) {
		assert_float_equal(r.top[i].logprob, l[r.top[i].token] - lse, 1e-6);
		mass += exp(r.top[i].logprob);
		if (i > 0)
			assert_true(r.top[i].logprob <= r.top[i - 1].logprob);
	}
	assert_float_equal(mass, 1.0, 1e-6);
	/* Sorted, equal logits by id. */
	assert_int_equal(r.top[0].token, 1);
	assert_int_equal(r.top[1].token, 3);
	assert_int_equal(r.top[2].token, 0);
	assert_float_equal(r.logprob, l[tok] - lse, 1e-6);
	llm_sampler_free(&s);

	/* Fewer alternatives than tokens: the best ones. */
	p.n_logprobs = 2;
	init(&s, &p);
	assert_int_equal(llm_sampler_next(&s, l, N_OF(l), NULL, 0, &tok, &r, NULL), LLM_OK);
	assert_int_equal(r.n_top, 2);
	assert_int_equal(r.top[0].token, 1);
	assert_int_equal(r.top[1].token, 3);
	llm_sampler_free(&s);
}

/* The kept set of a 200k vocabulary against a full sort done here. */
static int by_logit_desc(const void *pa, const void *pb)
{
	const struct llm_sample_cand *a = pa, *b = pb;
	if (a->logit != b->logit)
		return a->logit > b->logit ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static void large_vocabularies_filter_as_a_full_sort_would(void **state)
{
	(void)state;
	enum { V = 200000 };
	float *l = malloc(V * sizeof *l);
	struct llm_sample_cand *ref = malloc(V * sizeof *ref);
	uint8_t *in = calloc(V, 1);
	assert_non_null(l);
	assert_non_null(ref);
	assert_non_null(in);
	struct llm_rand r;
	llm_rand_seed(&r, 1);
	for (size_t i = 0; i < V; i++) {
		/* Quantised, so there are many exact ties to break. */
		l[i] = (float)(int)(llm_rand_double(&r) * 2000.0) / 100.0f;
		ref[i] = (struct llm_sample_cand){l[i], (uint32_t)i};
	}
	qsort(ref, V, sizeof *ref, by_logit_desc);
	const struct {
		int32_t k;
		float top_p;
	} cases[] = {{40, 1.0f}, {1000, 1.0f}, {0, 0.5f}, {0, 0.99f}, {5000, 0.3f}};
	for (size_t c = 0; c < N_OF(cases); c++) {
		struct llm_sampler_params p = params();
		p.top_k = cases[c].k;
		p.top_p = cases[c].top_p;
		struct llm_sampler s;
		init(&s, &p);
		const struct llm_sample_cand *cand;
		size_t n;
		assert_int_equal(llm_sampler_candidates(&s, l, V, NULL, 0, &cand, &n, NULL),
				 LLM_OK);
		size_t want = cases[c].k ? (size_t)cases[c].k : V;
		if (cases[c].top_p < 1.0f) {
			double mx = ref[0].logit, sum = 0.0, cum = 0.0;
			for (size_t i = 0; i < want; i++)
				sum += exp(ref[i].logit - mx);
			size_t i = 0;
			while (i < want && (cum += exp(ref[i].logit - mx)) < cases[c].top_p * sum)
				i++;
			want = i + 1;
		}
		assert_int_equal(n, want);
		for (size_t i = 0; i < n; i++)
			in[cand[i].id] = 1;
		for (size_t i = 0; i < want; i++)
			if (!in[ref[i].id])
				fail_msg("case %zu: token %u (rank %zu) missing", c, ref[i].id, i);
		memset(in, 0, V);
		llm_sampler_free(&s);
	}
	free(l);
	free(ref);
	free(in);
}

static void bad_parameters_and_logits_are_refused(void **state)
{
	(void)state;
	struct llm_sampler s;
	struct llm_diag d;
	struct llm_sampler_params p = params();
	p.top_p = 0.0f;
	assert_int_equal(llm_sampler_init(&s, &p, &d), LLM_ERR_RANGE);
	p = params();
	p.temperature = -1.0f;
	assert_int_equal(llm_sampler_init(&s, &p, &d), LLM_ERR_RANGE);
	p = params();
	p.repetition_penalty = 0.0f;
	assert_int_equal(llm_sampler_init(&s, &p, &d), LLM_ERR_RANGE);
	p = params();
	p.n_logprobs = LLM_SAMPLE_MAX_LOGPROBS + 1;
	assert_int_equal(llm_sampler_init(&s, &p, &d), LLM_ERR_RANGE);
	p = params();
	init(&s, &p);
	uint32_t tok;
	const float nan_logits[] = {0.0f, NAN};
	assert_int_equal(llm_sampler_next(&s, nan_logits, 2, NULL, 0, &tok, NULL, &d),
			 LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "token 1"));
	const float banned[] = {-INFINITY, -INFINITY};
	assert_int_equal(llm_sampler_next(&s, banned, 2, NULL, 0, &tok, NULL, &d), LLM_ERR_RANGE);
	llm_sampler_free(&s);
}

/* --- stop matcher --------------------------------------------------------------------- */

struct feed_step {
	const char *piece;
	const char *out; /* the whole output so far */
	bool stopped;
};

static void run_feed(struct llm_stop *st, const struct feed_step *steps, size_t n,
		     struct llm_buf *out)
{
	for (size_t i = 0; i < n; i++) {
		bool stopped;
		assert_int_equal(
		    llm_stop_feed(st, steps[i].piece, strlen(steps[i].piece), out, &stopped),
		    LLM_OK);
		if (strcmp(out->data ? out->data : "", steps[i].out) != 0 ||
		    stopped != steps[i].stopped)
			fail_msg("after piece %zu: output \"%s\" stopped %d, want \"%s\" %d", i,
				 out->data ? out->data : "", stopped, steps[i].out,
				 steps[i].stopped);
	}
}

static void stop_strings_match_across_piece_boundaries(void **state)
{
	(void)state;
	const char *stops[] = {"\n\nUser:", "</s>"};
	struct llm_stop st;
	struct llm_buf out;
	assert_int_equal(llm_stop_init(&st, stops, 2, NULL, 0, NULL), LLM_OK);
	llm_buf_init(&out, 1 << 20);
	const struct feed_step steps[] = {
	    {"Hello", "Hello", false}, {"\n", "Hello", false},	 {"\nUs", "Hello", false},
	    {"er:", "Hello", true},    {" more", "Hello", true},
	};
	run_feed(&st, steps, N_OF(steps), &out);
	assert_int_equal(st.which, 0);
	assert_int_equal(llm_stop_flush(&st, &out), LLM_OK);
	assert_string_equal(out.data, "Hello");
	llm_stop_free(&st);

	/* Held text is released as soon as it cannot start a stop string. */
	assert_int_equal(llm_stop_init(&st, stops, 2, NULL, 0, NULL), LLM_OK);
	llm_buf_clear(&out);
	const struct feed_step released[] = {
	    {"Hi", "Hi", false},
	    {"\n", "Hi", false},
	    {"\nUx", "Hi\n\nUx", false},
	    {"a<", "Hi\n\nUxa", false},
	    {"/", "Hi\n\nUxa", false},
	    {"p>", "Hi\n\nUxa</p>", false},
	    {"\n\n", "Hi\n\nUxa</p>", false},
	};
	run_feed(&st, released, N_OF(released), &out);
	/* The end of generation releases what is held. */
	assert_int_equal(llm_stop_flush(&st, &out), LLM_OK);
	assert_string_equal(out.data, "Hi\n\nUxa</p>\n\n");
	llm_stop_free(&st);
	llm_buf_free(&out);
}

static void stop_strings_inside_one_piece_and_overlapping(void **state)
{
	(void)state;
	const char *stops[] = {"END", "aab"};
	struct llm_stop st;
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_stop_init(&st, stops, 2, NULL, 0, NULL), LLM_OK);
	const struct feed_step one[] = {{"abc END def", "abc ", true}};
	run_feed(&st, one, 1, &out);
	llm_stop_free(&st);

	/* A tail of "aa" is held; a third "a" releases one, and "aab" then completes. */
	llm_buf_clear(&out);
	assert_int_equal(llm_stop_init(&st, stops, 2, NULL, 0, NULL), LLM_OK);
	const struct feed_step overlap[] = {
	    {"xa", "x", false}, {"a", "x", false}, {"a", "xa", false}, {"b!", "xa", true}};
	run_feed(&st, overlap, N_OF(overlap), &out);
	assert_int_equal(st.which, 1);
	llm_stop_free(&st);

	/* The earliest match wins when two stop strings end in the same piece. */
	llm_buf_clear(&out);
	assert_int_equal(llm_stop_init(&st, stops, 2, NULL, 0, NULL), LLM_OK);
	const struct feed_step first[] = {{"zEN", "z", false}, {"xaabEND", "zENx", true}};
	run_feed(&st, first, N_OF(first), &out);
	assert_int_equal(st.which, 1);
	llm_stop_free(&st);

	/* No stop strings: everything passes straight through. */
	llm_buf_clear(&out);
	assert_int_equal(llm_stop_init(&st, NULL, 0, NULL, 0, NULL), LLM_OK);
	const struct feed_step none[] = {{"a", "a", false}, {"\n\n", "a\n\n", false}};
	run_feed(&st, none, N_OF(none), &out);
	llm_stop_free(&st);
	llm_buf_free(&out);
}

static void stop_tokens_and_bad_stop_strings(void **state)
{
	(void)state;
	const uint32_t ids[] = {2, 128009};
	struct llm_stop st;
	assert_int_equal(llm_stop_init(&st, NULL, 0, ids, 2, NULL), LLM_OK);
	assert_true(llm_stop_is_token(&st, 2));
	assert_true(llm_stop_is_token(&st, 128009));
	assert_false(llm_stop_is_token(&st, 3));
	llm_stop_free(&st);
	const char *empty[] = {"ok", ""};
	struct llm_diag d;
	assert_int_equal(llm_stop_init(&st, empty, 2, NULL, 0, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "empty"));
}

static void a_full_output_buffer_leaves_the_matcher_unchanged(void **state)
{
	(void)state;
	const char *stops[] = {"STOP"};
	struct llm_stop st;
	struct llm_buf out;
	llm_buf_init(&out, 4);
	assert_int_equal(llm_stop_init(&st, stops, 1, NULL, 0, NULL), LLM_OK);
	bool stopped;
	assert_int_equal(llm_stop_feed(&st, "abST", 4, &out, &stopped), LLM_OK);
	assert_string_equal(out.data, "ab");
	assert_int_equal(llm_stop_feed(&st, "xyz", 3, &out, &stopped), LLM_ERR_TOO_BIG);
	assert_int_equal(st.held.len, 2);
	llm_buf_free(&out);
	llm_buf_init(&out, 64);
	assert_int_equal(llm_stop_feed(&st, "OP", 2, &out, &stopped), LLM_OK);
	assert_true(stopped);
	assert_int_equal(out.len, 0);
	llm_stop_free(&st);
	llm_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(greedy_picks_the_argmax_and_ties_go_to_the_lowest_id),
	    cmocka_unit_test(top_k_keeps_exactly_the_k_largest),
	    cmocka_unit_test(top_p_keeps_the_smallest_set_reaching_p),
	    cmocka_unit_test(min_p_drops_tokens_below_a_fraction_of_the_best),
	    cmocka_unit_test(temperature_divides_the_logits),
	    cmocka_unit_test(repetition_penalty_divides_positive_and_multiplies_negative_logits),
	    cmocka_unit_test(seeded_draws_are_reproducible),
	    cmocka_unit_test(draws_follow_the_softmax),
	    cmocka_unit_test(logprobs_are_the_log_softmax_of_the_raw_logits),
	    cmocka_unit_test(large_vocabularies_filter_as_a_full_sort_would),
	    cmocka_unit_test(bad_parameters_and_logits_are_refused),
	    cmocka_unit_test(stop_strings_match_across_piece_boundaries),
	    cmocka_unit_test(stop_strings_inside_one_piece_and_overlapping),
	    cmocka_unit_test(stop_tokens_and_bad_stop_strings),
	    cmocka_unit_test(a_full_output_buffer_leaves_the_matcher_unchanged),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
