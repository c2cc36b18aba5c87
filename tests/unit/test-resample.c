/* Unit tests for lib/metrics/resample: the bootstrap interval and the paired tests, held to
 * sacreBLEU's formulas (significance.py: estimate_ci, _compute_p_value, _paired_bs_test,
 * _paired_ar_test) by replaying the same draws from core/rand.h on small inputs. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/rand.h"
#include "metrics/resample.h"

static int cmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

/* n records of a 0/1 metric that is 1 with probability p, from its own generator. */
static double *bernoulli(size_t n, double p, uint64_t seed)
{
	double *v = malloc(n * sizeof *v);
	struct llm_rand r;
	llm_rand_seed(&r, seed);
	for (size_t i = 0; i < n; i++)
		v[i] = llm_rand_double(&r) < p;
	return v;
}

/* A metric whose score is a ratio of sums, like BLEU's precisions: stats (hits, total). */
static double ratio(void *ctx, const double *sums, size_t n)
{
	(void)ctx;
	(void)n;
	return sums[1] > 0 ? sums[0] / sums[1] : 0.0;
}

static void bootstrap_is_deterministic_given_a_seed(void **state)
{
	double *v = bernoulli(300, 0.4, 1);
	struct llm_ci a, b, c;
	struct llm_diag d;
	assert_int_equal(llm_bootstrap_ci(v, 300, 1, llm_score_mean, NULL, 1000, 12345, &a, &d),
			 LLM_OK);
	assert_int_equal(llm_bootstrap_ci(v, 300, 1, llm_score_mean, NULL, 1000, 12345, &b, &d),
			 LLM_OK);
	assert_memory_equal(&a, &b, sizeof a);
	assert_int_equal(llm_bootstrap_ci(v, 300, 1, llm_score_mean, NULL, 1000, 54321, &c, &d),
			 LLM_OK);
	assert_true(a.mean != c.mean);
	assert_true(a.score == c.score);
	free(v);
}

/* sacreBLEU's estimate_ci by hand: the scores of resamples drawn exactly as resample.h says. */
static void replay_bootstrap(const double *v, size_t n, int r, uint64_t seed, double *scores)
{
	struct llm_rand rng;
	llm_rand_seed(&rng, seed);
	for (int t = 0; t < r; t++) {
		double s = 0;
		for (size_t j = 0; j < n; j++)
			s += v[llm_rand_below(&rng, n)];
		scores[t] = s / (double)n;
	}
}

static void bootstrap_reproduces_sacrebleu_estimate_ci(void **state)
{
	const double v[3] = {0, 1, 3};
	static const int sizes[] = {5, 80, 1000};
	for (size_t k = 0; k < sizeof sizes / sizeof *sizes; k++) {
		int r = sizes[k];
		double *s = malloc((size_t)r * sizeof *s);
		replay_bootstrap(v, 3, r, 7, s);
		double sum = 0;
		for (int t = 0; t < r; t++)
			sum += s[t];
		double mean = sum / r, ss = 0;
		for (int t = 0; t < r; t++)
			ss += (s[t] - mean) * (s[t] - mean);
		qsort(s, (size_t)r, sizeof *s, cmp);
		int lo = r / 40, hi = r - lo - 1; /* 0 and 4; 2 and 77; 25 and 974 */
		struct llm_ci ci;
		struct llm_diag d;
		assert_int_equal(llm_bootstrap_ci(v, 3, 1, llm_score_mean, NULL, r, 7, &ci, &d),
				 LLM_OK);
		assert_true(ci.score == 4.0 / 3.0);
		assert_true(fabs(ci.mean - mean) < 1e-13);
		assert_true(ci.p_lo == s[lo]);
		assert_true(ci.p_hi == s[hi]);
		assert_true(ci.half == 0.5 * (s[hi] - s[lo]));
		assert_true(fabs(ci.lo - (mean - ci.half)) < 1e-13);
		assert_true(fabs(ci.hi - (mean + ci.half)) < 1e-13);
		assert_true(fabs(ci.sd - sqrt(ss / (r - 1))) < 1e-13);
		free(s);
	}
}

static void bootstrap_interval_contains_the_score(void **state)
{
	double *v = bernoulli(400, 0.3, 2);
	struct llm_ci ci;
	struct llm_diag d;
	assert_int_equal(llm_bootstrap_ci(v, 400, 1, llm_score_mean, NULL, 1000, 12345, &ci, &d),
			 LLM_OK);
	assert_true(ci.lo < ci.score && ci.score < ci.hi);
	assert_true(ci.p_lo < ci.score && ci.score < ci.p_hi);
	assert_true(fabs(ci.mean - ci.score) < 0.01);
	/* For a proportion the half-width is near 1.96 sqrt(p(1-p)/n) = 0.045. */
	assert_true(ci.half > 0.03 && ci.half < 0.06);
	free(v);
}

static void bootstrap_interval_shrinks_with_more_records(void **state)
{
	double *small = bernoulli(100, 0.5, 3), *large = bernoulli(10000, 0.5, 3);
	struct llm_ci a, b;
	struct llm_diag d;
	assert_int_equal(llm_bootstrap_ci(small, 100, 1, llm_score_mean, NULL, 1000, 1, &a, &d),
			 LLM_OK);
	assert_int_equal(llm_bootstrap_ci(large, 10000, 1, llm_score_mean, NULL, 1000, 1, &b, &d),
			 LLM_OK);
	/* 100 times the records: a tenth of the width, give or take the resampling noise. */
	assert_true(b.half < 0.2 * a.half);
	assert_true(b.sd < 0.2 * a.sd);
	free(small);
	free(large);
}

static void bootstrap_sums_statistics_before_scoring(void **state)
{
	/* (hits, total) per record: the corpus score is 6/10, not the mean of 1/1, 0/4, 5/5. */
	const double st[6] = {1, 1, 0, 4, 5, 5};
	struct llm_ci ci;
	struct llm_diag d;
	assert_int_equal(llm_bootstrap_ci(st, 3, 2, ratio, NULL, 200, 9, &ci, &d), LLM_OK);
	assert_true(ci.score == 0.6);
	assert_true(ci.p_lo >= 0.0 && ci.p_hi <= 1.0);
}

/* sacreBLEU's paired-bs and paired-ar by hand, for a mean metric. */
static void replay_paired(const double *base, const double *sys, size_t n, int r, int trials,
			  uint64_t seed, double *p_bs, double *p_ar)
{
	double b = 0, s = 0;
	for (size_t j = 0; j < n; j++) {
		b += base[j];
		s += sys[j];
	}
	double diff = fabs(b / (double)n - s / (double)n);
	struct llm_rand rng;
	llm_rand_seed(&rng, seed);
	double *d = malloc((size_t)r * sizeof *d), m = 0;
	for (int t = 0; t < r; t++) {
		double sb = 0, ss = 0;
		for (size_t j = 0; j < n; j++) {
			size_t i = llm_rand_below(&rng, n);
			sb += base[i];
			ss += sys[i];
		}
		d[t] = fabs(ss / (double)n - sb / (double)n);
		m += d[t];
	}
	m /= r;
	int c = 0;
	for (int t = 0; t < r; t++)
		c += d[t] - m > diff;
	*p_bs = (double)(c + 1) / (r + 1);
	free(d);
	llm_rand_seed(&rng, seed);
	c = 0;
	for (int t = 0; t < trials; t++) {
		double sa = 0, sb = 0;
		uint64_t bits = 0;
		for (size_t j = 0; j < n; j++) {
			if (j % 64 == 0)
				bits = llm_rand_next(&rng);
			int keep = (bits >> (j % 64)) & 1;
			sa += keep ? base[j] : sys[j];
			sb += keep ? sys[j] : base[j];
		}
		c += fabs(sa / (double)n - sb / (double)n) > diff;
	}
	*p_ar = (double)(c + 1) / (trials + 1);
}

static void paired_tests_reproduce_sacrebleu_formulas(void **state)
{
	/* 128 records: two 64-bit draws per randomization trial, and every score a multiple of
	 * 1/128, so the sums here and in the library are exact and the counts must agree. */
	double *base = bernoulli(128, 0.5, 11), *sys = bernoulli(128, 0.55, 12);
	static const int rs[] = {7, 40, 1000};
	for (size_t k = 0; k < sizeof rs / sizeof *rs; k++) {
		double p_bs, p_ar;
		replay_paired(base, sys, 128, rs[k], 3 * rs[k], 5, &p_bs, &p_ar);
		struct llm_paired out;
		struct llm_diag d;
		assert_int_equal(llm_paired_test_n(base, sys, 128, 1, llm_score_mean, NULL, rs[k],
						   3 * rs[k], 5, &out, &d),
				 LLM_OK);
		if (out.p_bootstrap != p_bs || out.p_randomization != p_ar)
			fail_msg("R=%d: p %.17g %.17g, by hand %.17g %.17g", rs[k], out.p_bootstrap,
				 out.p_randomization, p_bs, p_ar);
		assert_true(out.delta == out.sys - out.base);
	}
	free(base);
	free(sys);
}

static void paired_bootstrap_shares_draws_with_the_interval(void **state)
{
	double *base = bernoulli(150, 0.5, 21), *sys = bernoulli(150, 0.6, 22);
	struct llm_paired out;
	struct llm_ci cb, cs;
	struct llm_diag d;
	assert_int_equal(
	    llm_paired_test(base, sys, 150, 1, llm_score_mean, NULL, 1000, 12345, &out, &d),
	    LLM_OK);
	assert_int_equal(llm_bootstrap_ci(sys, 150, 1, llm_score_mean, NULL, 1000, 12345, &cs, &d),
			 LLM_OK);
	assert_int_equal(llm_bootstrap_ci(base, 150, 1, llm_score_mean, NULL, 1000, 12345, &cb, &d),
			 LLM_OK);
	assert_memory_equal(&out.sys_ci, &cs, sizeof cs);
	assert_memory_equal(&out.base_ci, &cb, sizeof cb);
	free(base);
	free(sys);
}

static void clearly_better_system_gets_a_small_p(void **state)
{
	double *base = bernoulli(500, 0.5, 31), *sys = bernoulli(500, 0.7, 32);
	struct llm_paired out;
	struct llm_diag d;
	assert_int_equal(
	    llm_paired_test(base, sys, 500, 1, llm_score_mean, NULL, 1000, 12345, &out, &d),
	    LLM_OK);
	assert_true(out.delta > 0.1);
	assert_true(out.p_bootstrap < 0.01);
	assert_true(out.p_randomization < 0.01);
	free(base);
	free(sys);
}

static void equal_scores_on_different_records_get_a_large_p(void **state)
{
	/* The same 0/1 values in another order: equal scores, record by record different. */
	size_t n = 400;
	double *base = bernoulli(n, 0.5, 41), *sys = malloc(n * sizeof *sys);
	for (size_t i = 0; i < n; i++)
		sys[i] = base[(i * 7 + 3) % n];
	struct llm_paired out;
	struct llm_diag d;
	assert_int_equal(
	    llm_paired_test(base, sys, n, 1, llm_score_mean, NULL, 1000, 12345, &out, &d), LLM_OK);
	assert_true(out.delta == 0.0);
	assert_true(out.p_bootstrap > 0.2);
	assert_true(out.p_randomization > 0.5);
	free(base);
	free(sys);
}

static void identical_systems_get_one_over_trials_plus_one(void **state)
{
	/* With an observed difference of 0, sacreBLEU's strict ">" counts no trial at all. */
	double *v = bernoulli(100, 0.5, 51);
	struct llm_paired out;
	struct llm_diag d;
	assert_int_equal(llm_paired_test(v, v, 100, 1, llm_score_mean, NULL, 1000, 12345, &out, &d),
			 LLM_OK);
	assert_true(out.p_bootstrap == 1.0 / 1001.0);
	assert_true(out.p_randomization == 1.0 / (LLM_AR_TRIALS + 1.0));
	assert_int_equal(LLM_AR_TRIALS, 10000);
	assert_int_equal(LLM_BOOTSTRAP_RESAMPLES, 1000);
	assert_int_equal(LLM_RESAMPLE_SEED, 12345);
	free(v);
}

static void resampling_refuses_empty_input(void **state)
{
	const double v[2] = {1, 0};
	struct llm_ci ci;
	struct llm_paired out;
	struct llm_diag d;
	assert_int_equal(llm_bootstrap_ci(v, 0, 1, llm_score_mean, NULL, 10, 1, &ci, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(llm_bootstrap_ci(v, 2, 0, llm_score_mean, NULL, 10, 1, &ci, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(llm_bootstrap_ci(v, 2, 1, llm_score_mean, NULL, 0, 1, &ci, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(llm_paired_test(v, v, 2, 1, llm_score_mean, NULL, -1, 1, &out, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(llm_paired_test_n(v, v, 2, 1, llm_score_mean, NULL, 10, 0, 1, &out, &d),
			 LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "trials"));
	/* One record, one resample: everything is that record. */
	assert_int_equal(llm_bootstrap_ci(v, 1, 1, llm_score_mean, NULL, 1, 1, &ci, &d), LLM_OK);
	assert_true(ci.mean == 1.0 && ci.p_lo == 1.0 && ci.p_hi == 1.0 && ci.sd == 0.0);
	assert_true(llm_score_mean(NULL, v, 2) == 0.5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(bootstrap_is_deterministic_given_a_seed),
	    cmocka_unit_test(bootstrap_reproduces_sacrebleu_estimate_ci),
	    cmocka_unit_test(bootstrap_interval_contains_the_score),
	    cmocka_unit_test(bootstrap_interval_shrinks_with_more_records),
	    cmocka_unit_test(bootstrap_sums_statistics_before_scoring),
	    cmocka_unit_test(paired_tests_reproduce_sacrebleu_formulas),
	    cmocka_unit_test(paired_bootstrap_shares_draws_with_the_interval),
	    cmocka_unit_test(clearly_better_system_gets_a_small_p),
	    cmocka_unit_test(equal_scores_on_different_records_get_a_large_p),
	    cmocka_unit_test(identical_systems_get_one_over_trials_plus_one),
	    cmocka_unit_test(resampling_refuses_empty_input),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
