/* Drift statistics: is the current sample distributed like the reference one?
 *
 * Pure functions on arrays, each held to the computation Evidently runs with SciPy (1.10), so
 * that a number printed here is the number a user of those tools would get:
 *   - two-sample Kolmogorov-Smirnov, scipy.stats.ks_2samp(ref, cur) with its default method:
 *     exact when both samples have at most 10000 values (Hodges' lattice-path counts), else
 *     Smirnov's asymptotic law, kstwo.sf(D, round(n*m/(n+m)));
 *   - chi-square, scipy.stats.chisquare(f_obs, f_exp) over the union of the categories, the
 *     expected counts being the reference counts scaled to the current size (Evidently);
 *   - the two-proportion z-test (pooled variance, two-sided, 2 * (1 - Phi(|z|)));
 *   - the first Wasserstein distance, scipy.stats.wasserstein_distance, and Evidently's
 *     normalized form (divided by max(reference population std, 0.001));
 *   - the Jensen-Shannon distance, scipy.spatial.distance.jensenshannon (natural logarithm);
 *   - the population stability index over numpy's Sturges bins of the combined sample (or the
 *     categories), empty bins filled as Evidently does.
 * llm_drift_column() picks the test as Evidently's defaults do and says whether it drifted.
 *
 * Nothing here prints or allocates what it returns; functions that need scratch memory
 * return LLM_ERR_NOMEM when they cannot get it.  Arrays of values passed as `double *` are
 * sorted in place. */
#ifndef LLM_MONITOR_DRIFT_H
#define LLM_MONITOR_DRIFT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

enum llm_drift_test {
	LLM_DRIFT_AUTO,
	LLM_DRIFT_KS,
	LLM_DRIFT_CHISQUARE,
	LLM_DRIFT_Z,
	LLM_DRIFT_WASSERSTEIN,
	LLM_DRIFT_JENSENSHANNON,
	LLM_DRIFT_PSI,
	LLM_DRIFT__COUNT
};

/* "auto", "ks", "chisquare", "z", "wasserstein", "jensenshannon", "psi". */
const char *llm_drift_test_name(enum llm_drift_test t);
bool llm_drift_test_parse(const char *s, enum llm_drift_test *out);
/* Evidently's default threshold: 0.05 for the p-value tests, 0.1 for the distances. */
double llm_drift_default_threshold(enum llm_drift_test t);
/* True for ks, chisquare and z: drift when the p-value is below the threshold (the others
 * are distances: drift when at or above it). */
bool llm_drift_test_is_pvalue(enum llm_drift_test t);

/* --- the distributions the p-values come from ------------------------------------------ */

/* P(chi2 with df degrees of freedom > x), scipy.stats.chi2.sf. */
double llm_drift_chi2_sf(double x, double df);
/* The standard normal CDF, scipy.stats.norm.cdf. */
double llm_drift_norm_cdf(double x);
/* P(D(n1,n2) >= d) for the two-sided two-sample KS statistic, exactly (scipy's
 * _attempt_exact_2kssamp); NAN when the computation overflows (scipy then goes asymptotic). */
double llm_drift_ks_exact_sf(uint64_t n1, uint64_t n2, double d);
/* P(D_n >= d) for the one-sample two-sided KS statistic, scipy.stats.kstwo.sf(d, n). */
double llm_drift_kstwo_sf(uint64_t n, double d);
/* The one-sided Smirnov survival function, scipy.special.smirnov(n, d). */
double llm_drift_smirnov(uint64_t n, double d);

/* --- the statistics ------------------------------------------------------------------ */

struct llm_drift_ks {
	double d;   /* the statistic */
	double p;   /* its p-value */
	bool exact; /* the exact distribution (else the asymptotic one) */
};
/* ks_2samp(ref, cur): both arrays are sorted in place; nr, nc >= 1. */
enum llm_err llm_drift_ks(double *ref, size_t nr, double *cur, size_t nc, struct llm_drift_ks *out);

/* Counts of k categories (the union of both samples' values, in any order, the same order in
 * both arrays).  chisquare: the statistic (INFINITY when a category of the current sample
 * never occurs in the reference; the p-value is then 0) and p = chi2.sf(stat, k - 1). */
void llm_drift_chisquare(const uint64_t *ref, const uint64_t *cur, size_t k, double *stat,
			 double *p);
/* The z-test for the proportion of one category: a_ref of n_ref against a_cur of n_cur.
 * *z is NAN and *p is 1 when both samples hold only that category or none of it. */
void llm_drift_z(uint64_t a_ref, uint64_t n_ref, uint64_t a_cur, uint64_t n_cur, double *z,
		 double *p);
/* scipy.stats.wasserstein_distance(ref, cur); both arrays sorted in place. */
double llm_drift_wasserstein(double *ref, size_t nr, double *cur, size_t nc);
/* numpy.std(v) (population, ddof 0). */
double llm_drift_std(const double *v, size_t n);
/* jensenshannon(p, q) with the natural logarithm; p and q need not be normalized. */
double llm_drift_jensenshannon(const double *p, const double *q, size_t k);
/* Evidently's PSI over bin counts: proportions, each zero filled with 0.0001 (or the smallest
 * non-zero proportion divided by 10^6 when that is at most 0.0001), then
 * sum (r - c) * ln(r / c). */
double llm_drift_psi(const uint64_t *ref, const uint64_t *cur, size_t k);

/* numpy.histogram_bin_edges(v, bins="sturges") over the combined sample whose smallest and
 * largest values are lo and hi and whose size is n: the number of bins
 * (ceil(log2(n)) + 1, and 1 when lo == hi).  llm_drift_histogram counts sorted values into
 * those bins as numpy.histogram does (each bin closed on the left, the last on both sides). */
size_t llm_drift_sturges_bins(double lo, double hi, size_t n);
void llm_drift_histogram(const double *sorted, size_t n, double lo, double hi, size_t bins,
			 uint64_t *counts);

/* --- one column ---------------------------------------------------------------------- */

enum llm_drift_kind {
	LLM_DRIFT_NUMERIC,
	LLM_DRIFT_CATEGORICAL,
};

/* A column's two samples: numeric values (sorted in place by llm_drift_column), or the counts
 * of k categories in the same order for both. */
struct llm_drift_sample {
	enum llm_drift_kind kind;
	double *ref, *cur;
	size_t nref, ncur;
	const uint64_t *ref_counts, *cur_counts;
	size_t k;
};

struct llm_drift_result {
	enum llm_drift_test test; /* the test run */
	double statistic;	  /* KS D, chi-square, z, the distance or the PSI (NAN: none) */
	double p_value;		  /* ks, chisquare, z; NAN for the distances */
	double score;		  /* what the threshold judges: the p-value or the distance */
	double threshold;
	bool drifted;
	bool exact;	     /* ks: the exact distribution */
	uint64_t nref, ncur; /* the sample sizes (values or category occurrences) */
	size_t bins;	     /* categories or histogram bins the statistic used; 0: none */
	size_t distinct;     /* distinct values over both samples */
	double wasserstein;  /* wasserstein: the distance before normalizing */
};

/* Evidently's choice (calculations/stattests/registry.py, _get_default_stattest): with at
 * most 1000 reference values, a numeric column with more than 5 distinct values (over both
 * samples) gets ks, and any other column chisquare, or z with at most 2 distinct values;
 * with more, wasserstein for numeric columns with more than 5 distinct values and
 * jensenshannon for the others. */
enum llm_drift_test llm_drift_choose(enum llm_drift_kind kind, uint64_t nref, size_t distinct);
/* Whether a test can run on a kind (ks and wasserstein need numbers; chisquare and z need
 * categories, which a numeric column with at most 20 distinct reference values also has;
 * jensenshannon and psi take both). */
bool llm_drift_applies(enum llm_drift_test t, enum llm_drift_kind kind, size_t ref_distinct);

/* Run test (LLM_DRIFT_AUTO: llm_drift_choose's, and likewise when test does not apply) with
 * threshold (NAN: the test's default) on s; both samples must be non-empty.  As Evidently
 * does, jensenshannon and psi on a numeric column bin it with Sturges' rule when the
 * reference has more than 20 distinct values, and count its values as categories otherwise;
 * chisquare and z count them as categories. */
enum llm_err llm_drift_column(struct llm_drift_sample *s, enum llm_drift_test test,
			      double threshold, struct llm_drift_result *out);

/* Dataset drift: drifted >= share * columns (and at least one column). */
bool llm_drift_dataset(size_t drifted, size_t columns, double share);

/* --- word tokens --------------------------------------------------------------------- */

/* Split s[0..n) (valid UTF-8) into words: runs of letters (Unicode L*) and decimal digits,
 * lower-cased (Unicode simple case mapping); fn is called with each word, NUL-terminated in a
 * scratch buffer, until it returns false.  Returns LLM_ERR_NOMEM, or what stopped it. */
enum llm_err llm_drift_words(const char *s, size_t n,
			     bool (*fn)(void *ctx, const char *word, size_t len), void *ctx);

#endif
