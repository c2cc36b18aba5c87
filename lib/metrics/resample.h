/* Confidence intervals and significance tests over per-record sufficient statistics.
 *
 * Every metric in lib/metrics reduces a record to a vector of n_stats numbers whose sum over
 * records gives the corpus score through a function (bleu.h).  A mean metric's vector is just
 * its value, with a score function that divides by the record count.  So one bootstrap serves
 * BLEU, chrF, TER, ROUGE and the rest without re-tokenizing anything: resample record indices,
 * sum their vectors, score.
 *
 * The methods and formulas are sacreBLEU's (its significance module): the bootstrap resamples n
 * records with replacement, R = 1000 times, seed 12345 unless told otherwise, and reports the
 * mean of the R resampled scores ± half the distance between the scores R//40 places from either
 * end of their sorted list (for R = 1000 the 26th and the 975th): sacreBLEU's "μ = mean ± ci".
 * It is not mean ± 1.96 · sd; sd is given beside it for those who want it.  The paired tests take
 * baseline and system statistics for the same records in the same order.
 *
 * sacreBLEU draws its indices from numpy's PCG64 (default_rng(seed).choice); these draw them
 * from core/rand.h (xoshiro256**), so the same seed gives the same numbers here on every machine
 * but not the same resamples as sacreBLEU: the p-values and intervals agree with sacreBLEU's in
 * distribution, not digit for digit.  sacreBLEU also sums the resampled statistics in float32;
 * these sum in double. */
#ifndef LLM_METRICS_RESAMPLE_H
#define LLM_METRICS_RESAMPLE_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The score of summed statistics; n is the number of records summed (for mean metrics). */
typedef double (*llm_score_fn)(void *ctx, const double *sums, size_t n);

/* sacreBLEU's defaults: 1000 bootstrap resamples, 10000 approximate-randomization trials, and
 * the seed it uses unless SACREBLEU_SEED says otherwise. */
#define LLM_BOOTSTRAP_RESAMPLES 1000
#define LLM_AR_TRIALS		10000
#define LLM_RESAMPLE_SEED	12345

struct llm_ci {
	double score;	   /* on all records */
	double mean, sd;   /* of the R resampled scores (sd divides by R - 1) */
	double lo, hi;	   /* the 95% interval: mean ∓ half */
	double p_lo, p_hi; /* the sorted resampled scores R//40 from either end (R resamples):
			    * sacreBLEU's 2.5th and 97.5th percentiles */
	double half;	   /* (p_hi - p_lo) / 2, the "± ci" sacreBLEU prints */
};

/* stats: n rows of n_stats doubles.  LLM_ERR_RANGE when n or n_stats is 0 or resamples < 1.
 * Resample t draws n indices with llm_rand_below(n) from one generator seeded with seed. */
enum llm_err llm_bootstrap_ci(const double *stats, size_t n, size_t n_stats, llm_score_fn f,
			      void *ctx, int resamples, uint64_t seed, struct llm_ci *out,
			      struct llm_diag *diag);

struct llm_paired {
	double base, sys;	/* the two scores on all records */
	double delta;		/* sys - base */
	double p_bootstrap;	/* paired bootstrap resampling (Koehn 2004, sacreBLEU's
				 * paired-bs): p-value of the difference */
	double p_randomization; /* approximate randomization (Riezler & Maxwell 2005, sacreBLEU's
				 * paired-ar): p-value of the difference */
	struct llm_ci sys_ci;	/* the system's interval from the same resamples */
	struct llm_ci base_ci;	/* the baseline's, likewise (what llm_bootstrap_ci gives it) */
};

/* base and sys: n rows of n_stats each, row i the same record.  The p-values are those of the
 * test that the two systems do not differ, computed as sacreBLEU computes them; the sign of
 * delta says which way (for TER and perplexity lower is better: the caller knows).
 *
 * With d = |base - sys| on all records, both are (c + 1) / (N + 1), where c counts, strictly:
 *   paired-bs (N = resamples, the same indices as llm_bootstrap_ci draws, both systems alike):
 *     resamples whose |sys_t - base_t| minus the mean of those over all resamples exceeds d;
 *   paired-ar (N = LLM_AR_TRIALS trials, from a second generator seeded with seed): trials that
 *     swap each record's two rows with probability 1/2 and give scores further apart than d
 *     (record j keeps its rows when bit j % 64 of the trial's (j / 64)th llm_rand_next is 1).
 * So two identical systems get 1 / (N + 1) from both, as in sacreBLEU: with d = 0 no trial can
 * beat it. */
enum llm_err llm_paired_test(const double *base, const double *sys, size_t n, size_t n_stats,
			     llm_score_fn f, void *ctx, int resamples, uint64_t seed,
			     struct llm_paired *out, struct llm_diag *diag);
/* The same with the number of randomization trials given (sacreBLEU's --paired-ar-n). */
enum llm_err llm_paired_test_n(const double *base, const double *sys, size_t n, size_t n_stats,
			       llm_score_fn f, void *ctx, int resamples, int trials, uint64_t seed,
			       struct llm_paired *out, struct llm_diag *diag);

/* For mean metrics: ctx unused, sums[0] / n. */
double llm_score_mean(void *ctx, const double *sums, size_t n);

#endif
