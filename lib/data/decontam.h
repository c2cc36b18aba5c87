/* Decontamination: find training text that shares word n-grams with evaluation sets.
 *
 * Words are the maximal runs of Unicode letters, marks and numbers, lowercased code point by
 * code point (utf8proc); everything else (spaces, punctuation, symbols) only separates words,
 * so "The answer: 42!" and "the answer 42" share their n-grams.  This is the GPT-3 recipe
 * (Brown et al. 2020, appendix C: 13-grams of lowercased words, punctuation ignored), as
 * lm-evaluation-harness applies it.
 *
 * An index holds the n-grams of the evaluation texts as 64-bit hashes, each with the
 * evaluation records it came from.  A training text is then scanned in one pass; every n-gram
 * found in the index is a hit with its byte and code-point span.  llm_decontam_cut() applies
 * the recipe's surgery: remove each hit with a window of characters on both sides, and keep
 * the pieces that are long enough. */
#ifndef LLM_DATA_DECONTAM_H
#define LLM_DATA_DECONTAM_H

#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

struct llm_decontam;

/* One occurrence in a training text of an n-gram of evaluation record eval.  Spans run from
 * the first word's start to the last word's end, in bytes and in code points. */
struct llm_decontam_hit {
	size_t start, end;
	size_t cp_start, cp_end;
	uint32_t eval;
};

struct llm_decontam_hits {
	struct llm_decontam_hit *h;
	size_t n, cap;
};

enum llm_err llm_decontam_new(struct llm_decontam **out, unsigned ngram, struct llm_diag *diag);
void llm_decontam_free(struct llm_decontam *dc);

/* Add the n-grams of one evaluation text (UTF-8) under record number eval.  *ngrams is how
 * many n-grams the text has: 0 when it has fewer than n words, which callers must report,
 * since such a text can never be found. */
enum llm_err llm_decontam_add(struct llm_decontam *dc, const char *text, size_t len, uint32_t eval,
			      size_t *ngrams, struct llm_diag *diag);
/* The number of distinct n-grams in the index. */
size_t llm_decontam_size(const struct llm_decontam *dc);

/* Replace hits with the occurrences in text of indexed n-grams, in text order (one hit per
 * occurrence and evaluation record). */
enum llm_err llm_decontam_find(const struct llm_decontam *dc, const char *text, size_t len,
			       struct llm_decontam_hits *hits, struct llm_diag *diag);
void llm_decontam_hits_free(struct llm_decontam_hits *hits);

/* The GPT-3 cut: remove every hit plus window code points on either side; the text falls
 * into *pieces pieces (the non-empty stretches left).  The pieces of at least min_piece code
 * points are appended to out, joined by sep; *kept is their total length in code points. */
enum llm_err llm_decontam_cut(const char *text, size_t len, const struct llm_decontam_hits *hits,
			      size_t window, size_t min_piece, const char *sep, struct llm_buf *out,
			      size_t *pieces, size_t *kept);

/* The words of text, lowercased, joined by single spaces (what the n-grams are made of). */
enum llm_err llm_decontam_words(const char *text, size_t len, struct llm_buf *out);

#endif
