/* chrF and chrF++ exactly as sacreBLEU (2.x) computes them, on sufficient statistics (see
 * bleu.h).  Character n-grams per code point with whitespace removed (unless whitespace is
 * kept), word n-grams for chrF++ (word_order 2) on Python str.split() words with punctuation
 * at either end split off as sacreBLEU does; with several references the segment's statistics
 * are those of the reference with the best sentence-level score, as sacreBLEU picks it.
 *
 * Vector (llm_chrf_n_stats = 3 · (char_order + word_order)): for each character order then
 * each word order: hypothesis n-grams, reference n-grams, matching n-grams (each hypothesis
 * n-gram clipped by its count in the reference).  As in sacreBLEU, an order for which the
 * reference has no n-gram counts no hypothesis n-grams either. */
#ifndef LLM_METRICS_CHRF_H
#define LLM_METRICS_CHRF_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_chrf_opts {
	int char_order;	    /* default 6 */
	int word_order;	    /* 0 for chrF (default), 2 for chrF++ */
	double beta;	    /* default 2 */
	bool lowercase;	    /* default false */
	bool whitespace;    /* keep whitespace in character n-grams; default false */
	bool eps_smoothing; /* sacreBLEU's --chrf-eps-smoothing; default false */
};
/* eps_smoothing false (sacreBLEU's default, its "eff:yes"): precision and recall are averaged
 * over the orders that both sides have n-grams of, then one F-score is taken.  true (chrF++.py's,
 * NLTK's and Moses' way): one F-score per order, 1e-16 standing in for an undefined precision,
 * recall or F, and the mean of those. */

/* The largest char_order and word_order accepted. */
#define LLM_CHRF_MAX_ORDER 64
/* The most bytes one segment (hypothesis and references together) may hold. */
#define LLM_CHRF_MAX_BYTES ((size_t)1 << 28)

void llm_chrf_opts_default(struct llm_chrf_opts *o);
size_t llm_chrf_n_stats(const struct llm_chrf_opts *o);

/* The statistics of one segment into stats (llm_chrf_n_stats doubles).  refs: n_refs >= 1
 * reference strings with their byte lengths.  LLM_ERR_UTF8 for invalid UTF-8; LLM_ERR_USAGE for
 * orders outside 0..LLM_CHRF_MAX_ORDER (or both 0), a negative beta, or no reference;
 * LLM_ERR_TOO_BIG past LLM_CHRF_MAX_BYTES. */
enum llm_err llm_chrf_stats(const struct llm_chrf_opts *o, const char *hyp, size_t hyp_len,
			    const char *const *refs, const size_t *ref_lens, size_t n_refs,
			    double *stats, struct llm_diag *diag);

/* A workspace that llm_chrf_scratch_stats reuses from segment to segment, so that scoring a
 * corpus allocates nothing once the tables have grown to the longest segment (llm_chrf_stats
 * makes and frees one on every call).  One per thread. */
struct llm_chrf_scratch;
enum llm_err llm_chrf_scratch_new(struct llm_chrf_scratch **out, struct llm_diag *diag);
void llm_chrf_scratch_free(struct llm_chrf_scratch *s);
/* llm_chrf_stats through a workspace; the same statistics. */
enum llm_err llm_chrf_scratch_stats(struct llm_chrf_scratch *s, const struct llm_chrf_opts *o,
				    const char *hyp, size_t hyp_len, const char *const *refs,
				    const size_t *ref_lens, size_t n_refs, double *stats,
				    struct llm_diag *diag);

/* The score (0..100) of summed statistics. */
double llm_chrf_compute(const struct llm_chrf_opts *o, const double *stats);

/* "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3" appended to out; n_refs 0
 * writes "nrefs:var", sacreBLEU's word for a count that varies from segment to segment. */
enum llm_err llm_chrf_signature(const struct llm_chrf_opts *o, size_t n_refs, struct llm_buf *out,
				struct llm_diag *diag);

/* The score's name as sacreBLEU prints it, appended to out: "chrF2", "chrF2++" (one '+' per
 * word order), "chrF3" for beta 3. */
enum llm_err llm_chrf_name(const struct llm_chrf_opts *o, struct llm_buf *out,
			   struct llm_diag *diag);

#endif
