/* Bootstrap confidence intervals and paired significance tests, as sacreBLEU's significance
 * module computes them.  See resample.h. */
#include "config.h"

#include "metrics/resample.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "core/rand.h"

double llm_score_mean(void *ctx, const double *sums, size_t n)
{
	(void)ctx;
	return n ? sums[0] / (double)n : 0.0;
}

/* Neumaier's compensated sum: the mean of a thousand scores comes out as exactly as Python's
 * statistics.mean gives it, not off in the last digits. */
static double mean_of(const double *v, size_t n)
{
	double s = 0, c = 0;
	for (size_t i = 0; i < n; i++) {
		double t = s + v[i];
		c += fabs(s) >= fabs(v[i]) ? (s - t) + v[i] : (v[i] - t) + s;
		s = t;
	}
	return (s + c) / (double)n;
}

/* NaN (a score function's 0/0) sorts last, so it cannot scramble the order of the rest. */
static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	if (isnan(x) || isnan(y))
		return isnan(x) - isnan(y);
	return (x > y) - (x < y);
}

/* sacreBLEU's estimate_ci: sort, take the scores n//40 from either end, and report the mean
 * with half the distance between them. */
static bool summarize(const double *scores, size_t r, double score, struct llm_ci *out)
{
	double *sorted = malloc(r * sizeof *sorted);
	if (!sorted)
		return false;
	memcpy(sorted, scores, r * sizeof *sorted);
	qsort(sorted, r, sizeof *sorted, cmp_double);
	size_t lo_idx = r / 40, hi_idx = r - lo_idx - 1;
	out->score = score;
	out->mean = mean_of(scores, r);
	double ss = 0;
	for (size_t i = 0; i < r; i++)
		ss += (scores[i] - out->mean) * (scores[i] - out->mean);
	out->sd = r > 1 ? sqrt(ss / (double)(r - 1)) : 0.0;
	out->p_lo = sorted[lo_idx];
	out->p_hi = sorted[hi_idx];
	out->half = 0.5 * (out->p_hi - out->p_lo);
	out->lo = out->mean - out->half;
	out->hi = out->mean + out->half;
	free(sorted);
	return true;
}

static enum llm_err check_args(size_t n, size_t n_stats, int resamples, struct llm_diag *diag)
{
	if (n == 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "no records to resample");
	if (n_stats == 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "no statistics per record");
	if (resamples < 1)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "the number of resamples must be at least 1 (got %d)",
				    resamples);
	if (n > SIZE_MAX / sizeof(double) / n_stats)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "too many records");
	return LLM_OK;
}

static void column_sums(const double *stats, size_t n, size_t n_stats, double *sums)
{
	memset(sums, 0, n_stats * sizeof *sums);
	for (size_t i = 0; i < n; i++)
		for (size_t k = 0; k < n_stats; k++)
			sums[k] += stats[i * n_stats + k];
}

/* One bootstrap resample's sums for one or two systems: n indices drawn uniformly with
 * replacement, in order, from r.  Both systems see the same indices (paired). */
static void resample_sums(struct llm_rand *r, const double *a, const double *b, size_t n,
			  size_t n_stats, double *sa, double *sb)
{
	memset(sa, 0, n_stats * sizeof *sa);
	if (b)
		memset(sb, 0, n_stats * sizeof *sb);
	for (size_t j = 0; j < n; j++) {
		size_t i = (size_t)llm_rand_below(r, n);
		const double *ra = a + i * n_stats;
		for (size_t k = 0; k < n_stats; k++)
			sa[k] += ra[k];
		if (b) {
			const double *rb = b + i * n_stats;
			for (size_t k = 0; k < n_stats; k++)
				sb[k] += rb[k];
		}
	}
}

enum llm_err llm_bootstrap_ci(const double *stats, size_t n, size_t n_stats, llm_score_fn f,
			      void *ctx, int resamples, uint64_t seed, struct llm_ci *out,
			      struct llm_diag *diag)
{
	enum llm_err e = check_args(n, n_stats, resamples, diag);
	if (e)
		return e;
	size_t r = (size_t)resamples;
	double *scores = malloc(r * sizeof *scores);
	double *sums = malloc(n_stats * sizeof *sums);
	if (!scores || !sums) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	column_sums(stats, n, n_stats, sums);
	double score = f(ctx, sums, n);
	struct llm_rand rng;
	llm_rand_seed(&rng, seed);
	for (size_t t = 0; t < r; t++) {
		resample_sums(&rng, stats, NULL, n, n_stats, sums, NULL);
		scores[t] = f(ctx, sums, n);
	}
	if (!summarize(scores, r, score, out))
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
done:
	free(scores);
	free(sums);
	return e;
}

/* sacreBLEU's _compute_p_value: how often a statistic beats the observed one, strictly, with
 * one added above and below. */
static double p_value(size_t beats, size_t trials)
{
	return (double)(beats + 1) / (double)(trials + 1);
}

enum llm_err llm_paired_test_n(const double *base, const double *sys, size_t n, size_t n_stats,
			       llm_score_fn f, void *ctx, int resamples, int trials, uint64_t seed,
			       struct llm_paired *out, struct llm_diag *diag)
{
	enum llm_err e = check_args(n, n_stats, resamples, diag);
	if (e)
		return e;
	if (trials < 1)
		return llm_diag_set(
		    diag, LLM_ERR_RANGE, NULL, 0,
		    "the number of randomization trials must be at least 1 (got %d)", trials);
	size_t r = (size_t)resamples, T = (size_t)trials;
	double *sb = malloc(r * sizeof *sb), *ss = malloc(r * sizeof *ss);
	double *sa_sum = malloc(n_stats * sizeof(double)),
	       *sb_sum = malloc(n_stats * sizeof(double));
	if (!sb || !ss || !sa_sum || !sb_sum) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	column_sums(base, n, n_stats, sa_sum);
	out->base = f(ctx, sa_sum, n);
	column_sums(sys, n, n_stats, sb_sum);
	out->sys = f(ctx, sb_sum, n);
	out->delta = out->sys - out->base;
	double diff = fabs(out->base - out->sys);

	/* paired-bs: the same resampled records for both systems, the spread of |sys - base|
	 * centred on its mean, against the observed difference. */
	struct llm_rand rng;
	llm_rand_seed(&rng, seed);
	for (size_t t = 0; t < r; t++) {
		resample_sums(&rng, base, sys, n, n_stats, sa_sum, sb_sum);
		sb[t] = f(ctx, sa_sum, n);
		ss[t] = f(ctx, sb_sum, n);
	}
	if (!summarize(ss, r, out->sys, &out->sys_ci) ||
	    !summarize(sb, r, out->base, &out->base_ci)) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	double *d = sb; /* the baseline's scores are summarized; reuse their room */
	for (size_t t = 0; t < r; t++)
		d[t] = fabs(ss[t] - sb[t]);
	double m = mean_of(d, r);
	size_t beats = 0;
	for (size_t t = 0; t < r; t++)
		beats += d[t] - m > diff;
	out->p_bootstrap = p_value(beats, r);

	/* paired-ar: each trial swaps each record's two outputs with probability 1/2 (one bit of
	 * a 64-bit draw per record), from its own generator seeded alike, as sacreBLEU seeds a
	 * fresh one for each test. */
	llm_rand_seed(&rng, seed);
	beats = 0;
	for (size_t t = 0; t < T; t++) {
		memset(sa_sum, 0, n_stats * sizeof *sa_sum);
		memset(sb_sum, 0, n_stats * sizeof *sb_sum);
		uint64_t bits = 0;
		for (size_t j = 0; j < n; j++) {
			if (j % 64 == 0)
				bits = llm_rand_next(&rng);
			bool keep = (bits >> (j % 64)) & 1;
			const double *ra = (keep ? base : sys) + j * n_stats;
			const double *rb = (keep ? sys : base) + j * n_stats;
			for (size_t k = 0; k < n_stats; k++) {
				sa_sum[k] += ra[k];
				sb_sum[k] += rb[k];
			}
		}
		beats += fabs(f(ctx, sa_sum, n) - f(ctx, sb_sum, n)) > diff;
	}
	out->p_randomization = p_value(beats, T);
done:
	free(sb);
	free(ss);
	free(sa_sum);
	free(sb_sum);
	return e;
}

enum llm_err llm_paired_test(const double *base, const double *sys, size_t n, size_t n_stats,
			     llm_score_fn f, void *ctx, int resamples, uint64_t seed,
			     struct llm_paired *out, struct llm_diag *diag)
{
	return llm_paired_test_n(base, sys, n, n_stats, f, ctx, resamples, LLM_AR_TRIALS, seed, out,
				 diag);
}
