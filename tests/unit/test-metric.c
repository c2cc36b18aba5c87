/* Unit tests for lib/metrics/metric: the registry gives every metric one shape (a vector per
 * record laid side by side in a row, a corpus score from summed vectors, a direction, a
 * precision, a signature), and each adapter computes what its module computes: the sacreBLEU
 * README example (BLEU 48.53 from summed statistics, sentence BLEU with effective order),
 * ROUGE's mean F, pass@k, perplexity and bits per byte from pooled sums. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/metric.h"
#include "metrics/resample.h"

static struct llm_metric_set *make(const char *const *names, size_t n,
				   const struct llm_metric_opts *o)
{
	struct llm_metric_opts def;
	if (!o) {
		llm_metric_opts_default(&def);
		o = &def;
	}
	struct llm_metric_set *s = NULL;
	struct llm_diag d;
	assert_int_equal(llm_metric_set_new(&s, names, n, o, &d), LLM_OK);
	return s;
}

/* The sacreBLEU README example, two references per segment. */
static const char *hyps[] = {"The dog bit the man.", "It wasn't surprising.",
			     "The man had just bitten him."};
static const char *refs[3][2] = {
    {"The dog bit the man.", "The dog had bit the man."},
    {"It was not unexpected.", "No one was surprised."},
    {"The man bit him first.", "The man had bitten the dog."},
};

/* Rows for the example; returns the row length. */
static size_t readme_rows(struct llm_metric_set *s, double *rows)
{
	size_t w = llm_metric_set_row_len(s);
	for (int i = 0; i < 3; i++) {
		size_t lens[2] = {strlen(refs[i][0]), strlen(refs[i][1])};
		struct llm_metric_input in = {.hyp = hyps[i],
					      .hyp_len = strlen(hyps[i]),
					      .refs = refs[i],
					      .ref_lens = lens,
					      .n_refs = 2,
					      .n_passed = -1};
		struct llm_diag d;
		assert_int_equal(llm_metric_set_stats(s, &in, rows + i * w, &d), LLM_OK);
	}
	return w;
}

static const double *column_sums(const struct llm_metric *m, const double *rows, size_t w, size_t n,
				 double *sums)
{
	memset(sums, 0, m->n_stats * sizeof *sums);
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < m->n_stats; j++)
			sums[j] += rows[i * w + m->offset + j];
	return sums;
}

static void vectors_sit_side_by_side_in_one_row(void **state)
{
	(void)state;
	const char *names[] = {"bleu", "rougeL", "exact", "ter", "bleu"};
	struct llm_metric_set *s = make(names, 5, NULL);
	assert_int_equal(llm_metric_set_count(s), 4); /* the repeated name is dropped */
	const struct llm_metric *b = llm_metric_set_find(s, "bleu");
	const struct llm_metric *r = llm_metric_set_find(s, "rougeL");
	const struct llm_metric *e = llm_metric_set_find(s, "exact");
	const struct llm_metric *t = llm_metric_set_find(s, "ter");
	assert_int_equal(b->n_stats, 10);
	assert_int_equal(r->n_stats, 3);
	assert_int_equal(e->n_stats, 1);
	assert_int_equal(t->n_stats, 2);
	assert_int_equal(b->offset, 0);
	assert_int_equal(r->offset, 10);
	assert_int_equal(e->offset, 13);
	assert_int_equal(t->offset, 14);
	assert_int_equal(llm_metric_set_row_len(s), 16);
	assert_true(b->higher_is_better && r->higher_is_better && !t->higher_is_better);
	assert_int_equal(b->precision, 2);
	assert_int_equal(r->precision, 4);
	assert_int_equal(llm_metric_set_needs(s), LLM_METRIC_NEEDS_OUTPUT | LLM_METRIC_NEEDS_REFS);
	assert_null(llm_metric_set_find(s, "chrf"));
	llm_metric_set_free(s);
}

static void bleu_corpus_score_comes_from_summed_statistics(void **state)
{
	(void)state;
	const char *names[] = {"bleu"};
	struct llm_metric_set *s = make(names, 1, NULL);
	double rows[3 * 10], sums[10];
	size_t w = readme_rows(s, rows);
	const struct llm_metric *m = llm_metric_set_get(s, 0);
	column_sums(m, rows, w, 3, sums);
	assert_float_equal(llm_metric_score(m, sums, 3), 48.530827, 5e-7);
	/* The resample.h shape gives the same number. */
	assert_float_equal(llm_metric_score_fn((void *)m, sums, 3), llm_metric_score(m, sums, 3),
			   0);
	/* Not the mean of the sentence scores. */
	double mean = 0;
	for (int i = 0; i < 3; i++)
		mean += llm_metric_sentence(m, rows + i * w + m->offset) / 3;
	assert_true(fabs(mean - 48.530827) > 0.1);
	struct llm_metric_detail det[16];
	size_t nd = llm_metric_details(m, sums, 3, det, 16);
	assert_int_equal(nd, 8);
	assert_string_equal(det[0].name, "bp");
	assert_float_equal(det[0].value, 0.943, 5e-4);
	assert_string_equal(det[2].name, "hyp_len");
	assert_float_equal(det[2].value, 17, 0);
	assert_string_equal(det[4].name, "precision_1");
	assert_float_equal(det[4].value, 82.35, 5e-3);
	struct llm_buf sig;
	llm_buf_init(&sig, 0);
	struct llm_diag d;
	assert_int_equal(llm_metric_signature(m, 2, &sig, &d), LLM_OK);
	assert_string_equal(sig.data, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3");
	llm_buf_free(&sig);
	llm_metric_set_free(s);
}

/* sacreBLEU's test_sentence_bleu: a segment scored alone uses effective order. */
static void per_record_bleu_is_sentence_bleu(void **state)
{
	(void)state;
	const char *names[] = {"bleu"};
	struct llm_metric_set *s = make(names, 1, NULL);
	const char *hyp =
	    "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
	const char *ref[] = {"producţia de zahăr brut se exprimă în zahăr alb;"};
	size_t len = strlen(ref[0]);
	struct llm_metric_input in = {.hyp = hyp,
				      .hyp_len = strlen(hyp),
				      .refs = ref,
				      .ref_lens = &len,
				      .n_refs = 1,
				      .n_passed = -1};
	double row[10];
	struct llm_diag d;
	assert_int_equal(llm_metric_set_stats(s, &in, row, &d), LLM_OK);
	const struct llm_metric *m = llm_metric_set_get(s, 0);
	assert_float_equal(llm_metric_sentence(m, row), 8.493, 1e-3);
	llm_metric_set_free(s);
}

static void rouge_shares_one_scorer_and_scores_the_mean_f(void **state)
{
	(void)state;
	const char *names[] = {"rouge1", "rougeL", "rouge2"};
	struct llm_metric_set *s = make(names, 3, NULL);
	double rows[3 * 9];
	size_t w = readme_rows(s, rows);
	assert_int_equal(w, 9);
	const struct llm_metric *r1 = llm_metric_set_find(s, "rouge1");
	/* "The dog bit the man." against itself. */
	assert_float_equal(rows[r1->offset], 1.0, 0);
	double sums[3];
	column_sums(r1, rows, w, 3, sums);
	double mean = (rows[0 * w] + rows[1 * w] + rows[2 * w]) / 3;
	assert_float_equal(llm_metric_score(r1, sums, 3), mean, 1e-15);
	struct llm_metric_detail det[4];
	assert_int_equal(llm_metric_details(r1, sums, 3, det, 4), 2);
	assert_string_equal(det[0].name, "precision");
	llm_metric_set_free(s);
}

static void pass_at_k_from_verdicts_and_from_checked_samples(void **state)
{
	(void)state;
	const char *names[] = {"pass@1", "pass@2"};
	struct llm_metric_set *s = make(names, 2, NULL);
	assert_int_equal(llm_metric_set_needs(s), LLM_METRIC_NEEDS_SAMPLES);
	double row[2];
	struct llm_diag d;
	struct llm_metric_input in = {.n_samples = 5, .n_passed = 2};
	assert_int_equal(llm_metric_set_stats(s, &in, row, &d), LLM_OK);
	assert_float_equal(row[0], 0.4, 1e-12);
	assert_float_equal(row[1], 0.7, 1e-12);
	const char *samples[] = {"4", "5", "four", "The 4", "x"};
	size_t lens[] = {1, 1, 4, 5, 1};
	const char *ref[] = {"4"};
	size_t rl = 1;
	struct llm_metric_input in2 = {.refs = ref,
				       .ref_lens = &rl,
				       .n_refs = 1,
				       .n_samples = 5,
				       .n_passed = -1,
				       .samples = samples,
				       .sample_lens = lens};
	assert_int_equal(llm_metric_set_stats(s, &in2, row, &d), LLM_OK);
	assert_float_equal(row[0], 0.4, 1e-12); /* "4" and "The 4" match after normalization */
	struct llm_metric_input few = {.n_samples = 1, .n_passed = 1};
	assert_int_equal(llm_metric_set_stats(s, &few, row, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "pass@2"));
	llm_metric_set_free(s);
}

static void perplexity_and_bpb_pool_their_sums(void **state)
{
	(void)state;
	const char *names[] = {"perplexity", "bpb"};
	struct llm_metric_set *s = make(names, 2, NULL);
	double rows[2 * 6];
	struct llm_diag d;
	struct llm_metric_input a = {.nll = 4, .tokens = 2, .bytes = 10, .n_passed = -1};
	struct llm_metric_input b = {.nll = 2, .tokens = 4, .bytes = 6, .n_passed = -1};
	assert_int_equal(llm_metric_set_stats(s, &a, rows, &d), LLM_OK);
	assert_int_equal(llm_metric_set_stats(s, &b, rows + 6, &d), LLM_OK);
	const struct llm_metric *p = llm_metric_set_find(s, "perplexity");
	const struct llm_metric *bpb = llm_metric_set_find(s, "bpb");
	assert_false(p->higher_is_better);
	assert_float_equal(llm_metric_sentence(p, rows + p->offset), exp(2), 1e-12);
	double sums[3];
	column_sums(p, rows, 6, 2, sums);
	assert_float_equal(llm_metric_score(p, sums, 2), exp(6.0 / 6.0), 1e-12);
	column_sums(bpb, rows, 6, 2, sums);
	assert_float_equal(llm_metric_score(bpb, sums, 2), 6 / M_LN2 / 16, 1e-12);
	double none[3] = {0, 0, 0};
	assert_true(isnan(llm_metric_score(p, none, 1)));
	llm_metric_set_free(s);
}

static void the_bootstrap_takes_a_metric_as_it_is(void **state)
{
	(void)state;
	const char *names[] = {"exact"};
	struct llm_metric_set *s = make(names, 1, NULL);
	double v[10] = {1, 0, 1, 1, 0, 1, 0, 1, 1, 1};
	struct llm_ci ci;
	struct llm_diag d;
	const struct llm_metric *m = llm_metric_set_get(s, 0);
	assert_int_equal(
	    llm_bootstrap_ci(v, 10, 1, llm_metric_score_fn, (void *)m, 200, 12345, &ci, &d),
	    LLM_OK);
	assert_float_equal(ci.score, 0.7, 1e-12);
	assert_true(ci.lo < 0.7 && ci.hi > 0.7);
	llm_metric_set_free(s);
}

static void names_and_requirements_are_checked(void **state)
{
	(void)state;
	struct llm_metric_opts o;
	llm_metric_opts_default(&o);
	struct llm_metric_set *s = NULL;
	struct llm_diag d;
	const char *bad[] = {"bleu", "blue"};
	assert_int_equal(llm_metric_set_new(&s, bad, 2, &o, &d), LLM_ERR_USAGE);
	assert_null(s);
	assert_non_null(strstr(d.msg, "unknown metric 'blue'"));
	const char *odd[] = {"pass@0"};
	assert_int_equal(llm_metric_set_new(&s, odd, 1, &o, &d), LLM_ERR_USAGE);
	const char *re[] = {"regex"};
	assert_int_equal(llm_metric_set_new(&s, re, 1, &o, &d), LLM_ERR_USAGE);
	o.regex = "\\d+";
	assert_int_equal(llm_metric_set_new(&s, re, 1, &o, &d), LLM_OK);
	double row[1];
	struct llm_metric_input in = {.hyp = "x 12", .hyp_len = 4, .n_passed = -1};
	assert_int_equal(llm_metric_set_stats(s, &in, row, &d), LLM_OK);
	assert_float_equal(row[0], 1, 0);
	llm_metric_set_free(s);
	const char *sc[] = {"json-schema"};
	assert_int_equal(llm_metric_set_new(&s, sc, 1, &o, &d), LLM_ERR_USAGE);
	const char *many[] = {"rouge1", "rouge2", "rouge3", "rouge9", "rougeL", "rougeLsum"};
	assert_int_equal(llm_metric_set_new(&s, many, 6, &o, &d), LLM_OK);
	assert_int_equal(llm_metric_set_row_len(s), 18);
	llm_metric_set_free(s);
}

static void signatures_say_how_numbers_were_computed(void **state)
{
	(void)state;
	struct llm_metric_opts o;
	llm_metric_opts_default(&o);
	o.rouge.stemmer = true;
	o.judge_desc = "model:m|scale:1-10";
	const char *names[] = {"rougeL", "exact", "chrf++", "judge", "pass@10"};
	struct llm_metric_set *s = make(names, 5, &o);
	const char *want[] = {"nrefs:var|stem:yes|tok:default|impl:rouge-score",
			      "nrefs:var|norm:squad", NULL, "model:m|scale:1-10",
			      "k:10|estimator:unbiased|check:exact"};
	for (size_t i = 0; i < 5; i++) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		struct llm_diag d;
		assert_int_equal(llm_metric_signature(llm_metric_set_get(s, i), 0, &b, &d), LLM_OK);
		if (want[i])
			assert_string_equal(b.data, want[i]);
		else
			assert_non_null(strstr(b.data, "nrefs:var|") ? strstr(b.data, "|nw:2|")
								     : NULL);
		llm_buf_free(&b);
	}
	llm_metric_set_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(vectors_sit_side_by_side_in_one_row),
	    cmocka_unit_test(bleu_corpus_score_comes_from_summed_statistics),
	    cmocka_unit_test(per_record_bleu_is_sentence_bleu),
	    cmocka_unit_test(rouge_shares_one_scorer_and_scores_the_mean_f),
	    cmocka_unit_test(pass_at_k_from_verdicts_and_from_checked_samples),
	    cmocka_unit_test(perplexity_and_bpb_pool_their_sums),
	    cmocka_unit_test(the_bootstrap_takes_a_metric_as_it_is),
	    cmocka_unit_test(names_and_requirements_are_checked),
	    cmocka_unit_test(signatures_say_how_numbers_were_computed),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
