/* TER (translation edit rate) exactly as sacreBLEU (2.x) computes it: its tokenizer (normalize,
 * no_punct, asian_support, case_sensitive), shifts found by its greedy search with the same
 * limits (beam width, maximum shift size and distance, candidate cap), and edit distance with
 * its cost model.  Sufficient statistics (see bleu.h), llm_ter_n_stats = 2: the edits of the
 * best reference (fewest edits) and the average reference length in words. */
#ifndef LLM_METRICS_TER_H
#define LLM_METRICS_TER_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_ter_opts {
	bool normalized;     /* default false */
	bool no_punct;	     /* default false */
	bool asian_support;  /* default false */
	bool case_sensitive; /* default false */
};

/* The most words a hypothesis or a reference may have after tokenization. */
#define LLM_TER_MAX_WORDS 65536
/* The most bytes one text may hold. */
#define LLM_TER_MAX_BYTES ((size_t)1 << 26)

void llm_ter_opts_default(struct llm_ter_opts *o);
size_t llm_ter_n_stats(const struct llm_ter_opts *o);

/* The statistics of one segment into stats (2 doubles).  refs: n_refs >= 1 reference strings
 * with their byte lengths.  An empty reference counts every hypothesis word as an edit and
 * adds 0 to the length.  LLM_ERR_UTF8 for invalid UTF-8, LLM_ERR_USAGE without a reference,
 * LLM_ERR_TOO_BIG past LLM_TER_MAX_BYTES or LLM_TER_MAX_WORDS. */
enum llm_err llm_ter_stats(const struct llm_ter_opts *o, const char *hyp, size_t hyp_len,
			   const char *const *refs, const size_t *ref_lens, size_t n_refs,
			   double *stats, struct llm_diag *diag);

/* A workspace that llm_ter_scratch_stats reuses from segment to segment (llm_ter_stats makes
 * and frees one on every call).  One per thread. */
struct llm_ter_scratch;
enum llm_err llm_ter_scratch_new(struct llm_ter_scratch **out, struct llm_diag *diag);
void llm_ter_scratch_free(struct llm_ter_scratch *s);
/* llm_ter_stats through a workspace; the same statistics. */
enum llm_err llm_ter_scratch_stats(struct llm_ter_scratch *s, const struct llm_ter_opts *o,
				   const char *hyp, size_t hyp_len, const char *const *refs,
				   const size_t *ref_lens, size_t n_refs, double *stats,
				   struct llm_diag *diag);

/* sacreBLEU's TercomTokenizer as its TER applies it (trailing whitespace stripped first): the
 * words of s (n bytes of UTF-8) joined by single spaces, appended to out.  LLM_ERR_UTF8 for
 * invalid UTF-8. */
enum llm_err llm_ter_tokenize(const struct llm_ter_opts *o, const char *s, size_t n,
			      struct llm_buf *out, struct llm_diag *diag);

/* 100 · edits / reference length of summed statistics (lower is better); with no reference
 * words, 100 when there are edits and 0 when there are none. */
double llm_ter_compute(const struct llm_ter_opts *o, const double *stats);

/* "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:2.4.3" appended to out;
 * n_refs 0 writes "nrefs:var". */
enum llm_err llm_ter_signature(const struct llm_ter_opts *o, size_t n_refs, struct llm_buf *out,
			       struct llm_diag *diag);

#endif
