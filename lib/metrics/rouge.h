/* ROUGE exactly as Google's rouge-score computes it: its tokenizer (lowercase, every run of
 * characters outside [a-z0-9] becomes a space, split), the Porter stemmer as NLTK's
 * PorterStemmer (mode NLTK_EXTENSIONS) applied to tokens longer than 3 characters, ROUGE-N
 * (n = 1..9) on n-gram overlap, ROUGE-L on the longest common subsequence, ROUGE-Lsum on the
 * union LCS over newline-separated sentences; precision, recall and F1; with several references
 * the one with the highest F (rouge-score's score_multi).  The corpus score is the mean of the
 * per-segment numbers, as rouge-score's aggregator reports.
 *
 * rouge-score drops every character outside [a-z0-9], so non-Latin text scores zero; the
 * unicode option tokenizes instead on Unicode letters and digits (Python-lowercased; each CJK
 * ideograph, kana or Hangul syllable its own token) and stems nothing outside ASCII.  Combining
 * marks stay with the letter before them (Devanagari vowel signs, Arabic harakat); on ASCII
 * text the two tokenizers agree. */
#ifndef LLM_METRICS_ROUGE_H
#define LLM_METRICS_ROUGE_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_rouge_prf {
	double precision, recall, fmeasure;
};

struct llm_rouge_opts {
	bool stemmer; /* rouge-score's use_stemmer; default false */
	bool unicode; /* the Unicode tokenizer above; default false */
};

/* A scorer for a list of ROUGE types.  It keeps the token strings it has seen with their stems
 * (dropped between calls once large), so a corpus is stemmed word by word once, and its
 * buffers, so scoring allocates little once warm.  One scorer per thread. */
struct llm_rouge;

/* types: names as rouge-score spells them ("rouge1".."rouge9", "rougeL", "rougeLsum").
 * LLM_ERR_USAGE naming an unknown type. */
enum llm_err llm_rouge_new(struct llm_rouge **out, const struct llm_rouge_opts *o,
			   const char *const *types, size_t n_types, struct llm_diag *diag);
void llm_rouge_free(struct llm_rouge *r);

/* Score one segment: out receives n_types results, in the order of types.  The hypothesis and
 * references are tokenized (and stemmed) once for all types.  n_refs >= 1 (LLM_ERR_USAGE
 * otherwise); with several, each type takes the reference with the highest F, the first of
 * equals, as numpy's argmax in score_multi.  LLM_ERR_UTF8 for invalid UTF-8; LLM_ERR_TOO_BIG
 * for a rougeLsum sentence pair of tens of thousands of tokens each (text without newlines). */
enum llm_err llm_rouge_score(struct llm_rouge *r, const char *hyp, size_t hyp_len,
			     const char *const *refs, const size_t *ref_lens, size_t n_refs,
			     struct llm_rouge_prf *out, struct llm_diag *diag);

/* NLTK's PorterStemmer (NLTK_EXTENSIONS mode) on one lower-case ASCII word, appended to out.
 * As NLTK, it lowercases ASCII capitals after looking the word up in its irregular forms
 * ("Sky" -> "ski", "sky" -> "sky"); a word with bytes outside ASCII is appended unchanged. */
enum llm_err llm_porter_stem(const char *w, size_t n, struct llm_buf *out, struct llm_diag *diag);

#endif
