/* BLEU exactly as sacreBLEU (2.x) computes it, and sacreBLEU's tokenizers.
 *
 * A metric in lib/metrics works on sufficient statistics: each segment (a hypothesis and its
 * references) gives a fixed-length vector of numbers; summing the vectors of any set of
 * segments and computing once gives that set's corpus score.  llm-eval keeps the per-segment
 * vectors, so the corpus score, sentence scores, bootstrap confidence intervals and paired
 * significance tests all come from one tokenization.
 *
 * BLEU's vector (llm_bleu_n_stats = 2 + 2 · max_order): hypothesis length, closest reference
 * length (ties to the shorter), then matches for orders 1..max_order, then totals for orders
 * 1..max_order.  A hypothesis n-gram is clipped by its highest count in any one reference.
 *
 * The numbers are sacreBLEU 2.4.3's (LLM_BLEU_SACREBLEU_VERSION; 2.0 to 2.5 agree on all of
 * this): a segment is lowercased with Python's str.lower() when asked, stripped at the end of
 * Python's whitespace, tokenized, and split on Python's whitespace; the score, precisions and
 * brevity penalty are computed with the same floating-point operations in the same order, so
 * they agree to the last bit with sacreBLEU on the same C library.  The intl tokenizer's
 * Unicode categories are utf8proc's (Unicode 15 for Debian 12's utf8proc 2.8, as the `regex`
 * module of that time). */
#ifndef LLM_METRICS_BLEU_H
#define LLM_METRICS_BLEU_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* The sacreBLEU release whose numbers and signature these are. */
#define LLM_BLEU_SACREBLEU_VERSION "2.4.3"

/* sacreBLEU's tokenizers: 13a (mteval-v13a, the default), none, intl (mteval-v14 international:
 * Unicode punctuation and symbols split off), char (every character but spaces a token). */
enum llm_sacretok {
	LLM_SACRETOK_13A = 0,
	LLM_SACRETOK_NONE = 1,
	LLM_SACRETOK_INTL = 2,
	LLM_SACRETOK_CHAR = 3,
};

/* "13a", "none", "intl", "char" to the enum; LLM_ERR_USAGE naming the choices otherwise. */
enum llm_err llm_sacretok_parse(const char *name, enum llm_sacretok *out, struct llm_diag *diag);
const char *llm_sacretok_name(enum llm_sacretok t);

/* Tokenize s (UTF-8, n bytes) as sacreBLEU's tokenizer object does and append the tokens joined
 * by single spaces to out.  This is the tokenizer alone: BLEU lowercases (when asked) and
 * strips trailing whitespace first, which can change what 13a and intl do at the end of the
 * text.  For none and char the tokens are those BLEU counts (sacreBLEU's none returns the text
 * as it is, and its char puts a space after every character, spaces included; BLEU splits
 * either on whitespace).  LLM_ERR_UTF8 for invalid UTF-8; LLM_ERR_TOO_BIG for more than
 * LLM_BLEU_MAX_SEGMENT bytes. */
enum llm_err llm_sacretok_apply(enum llm_sacretok t, const char *s, size_t n, struct llm_buf *out,
				struct llm_diag *diag);

enum llm_bleu_smooth {
	LLM_BLEU_SMOOTH_EXP = 0,   /* sacreBLEU's default */
	LLM_BLEU_SMOOTH_FLOOR = 1, /* zero matches count as smooth_value (default 0.1) */
	LLM_BLEU_SMOOTH_ADD_K = 2, /* add smooth_value (default 1) to orders above 1 */
	LLM_BLEU_SMOOTH_NONE = 3,
};

#define LLM_BLEU_MAX_ORDER 8

/* The longest hypothesis or reference llm_bleu_stats takes, in bytes (LLM_ERR_TOO_BIG above):
 * tokenizing can make a text many times longer, and every buffer has a ceiling. */
#define LLM_BLEU_MAX_SEGMENT ((size_t)64 << 20)

struct llm_bleu_opts {
	enum llm_sacretok tokenize;
	bool lowercase;
	enum llm_bleu_smooth smooth;
	double smooth_value;  /* < 0: the method's default */
	int max_order;	      /* 1..LLM_BLEU_MAX_ORDER, default 4 */
	bool effective_order; /* sacreBLEU's --sentence-level default: orders with no n-grams in the
			       * hypothesis are left out of the geometric mean */
};

/* sacreBLEU's corpus defaults: 13a, mixed case, exp smoothing, order 4, no effective order. */
void llm_bleu_opts_default(struct llm_bleu_opts *o);

/* "exp", "floor", "add-k", "none". */
enum llm_err llm_bleu_smooth_parse(const char *name, enum llm_bleu_smooth *out,
				   struct llm_diag *diag);

size_t llm_bleu_n_stats(const struct llm_bleu_opts *o);

/* The statistics of one segment into stats (llm_bleu_n_stats doubles).  refs: n_refs >= 1
 * reference strings with their byte lengths.  As in sacreBLEU, an empty reference (0 bytes) is
 * left out (a segment may have fewer references than others), and a segment whose references
 * are all empty has no score: LLM_ERR_MISSING.  An empty hypothesis counts, with length 0.
 * LLM_ERR_UTF8 for invalid UTF-8; LLM_ERR_RANGE for max_order outside 1..8 or no references;
 * LLM_ERR_TOO_BIG for a text over LLM_BLEU_MAX_SEGMENT, or a hypothesis with so many tokens
 * that its n-gram table would pass 2 GiB (about 8 million tokens at order 4); LLM_ERR_NOMEM. */
enum llm_err llm_bleu_stats(const struct llm_bleu_opts *o, const char *hyp, size_t hyp_len,
			    const char *const *refs, const size_t *ref_lens, size_t n_refs,
			    double *stats, struct llm_diag *diag);

/* The same with buffers and hash tables kept between calls, so that a corpus allocates nothing
 * once they have grown to its longest segment: the faster way to score many segments.  A
 * scratch serves one thread at a time. */
struct llm_bleu_scratch;
enum llm_err llm_bleu_scratch_new(struct llm_bleu_scratch **out, struct llm_diag *diag);
void llm_bleu_scratch_free(struct llm_bleu_scratch *s);
enum llm_err llm_bleu_stats_scratch(struct llm_bleu_scratch *s, const struct llm_bleu_opts *o,
				    const char *hyp, size_t hyp_len, const char *const *refs,
				    const size_t *ref_lens, size_t n_refs, double *stats,
				    struct llm_diag *diag);

struct llm_bleu_result {
	double score; /* 0..100 */
	double bp;    /* brevity penalty */
	double ratio; /* sys_len / ref_len */
	double sys_len, ref_len;
	double precisions[LLM_BLEU_MAX_ORDER]; /* 0..100, after smoothing */
};

/* The score of summed statistics (a whole corpus, one segment, or any resample).  Orders past
 * the first with no hypothesis n-grams keep precision 0; without effective order they make
 * the score 0, as in sacreBLEU. */
void llm_bleu_compute(const struct llm_bleu_opts *o, const double *stats,
		      struct llm_bleu_result *r);

/* sacreBLEU's signature, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3",
 * appended to out (the version is that of the sacreBLEU whose numbers these are).  n_refs 0
 * means the number varies from segment to segment ("nrefs:var").  floor and add-k carry their
 * value ("smooth:floor[0.10]").  Like sacreBLEU's, it does not name the maximum order. */
enum llm_err llm_bleu_signature(const struct llm_bleu_opts *o, size_t n_refs, struct llm_buf *out,
				struct llm_diag *diag);

#endif
