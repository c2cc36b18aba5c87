/* Document quality rules for pretraining text, as the field runs them: Gopher quality and
 * Gopher repetition (Rae et al. 2021, as datatrove implements them), C4 (Raffel et al. 2020,
 * datatrove's C4QualityFilter), FineWeb (datatrove's FineWebQualityFilter), plain length
 * bounds (NeMo Curator's WordCountFilter defaults) and regular expressions (PCRE2).
 *
 * Each rule has named checks with the published defaults; each threshold can be changed or
 * switched off by name ("gopher_quality.min_words=20", "fineweb.list_ratio=off").  Counting
 * follows datatrove: lengths are in code points, lines are Python's str.splitlines() or
 * split("\n") where datatrove uses those, whitespace is Python's str.isspace().  Where datatrove
 * asks NLTK for words and sentences, llm_quality_words() and a sentence counter stand in
 * (see there); this is the one place results can differ from datatrove's.  A ratio whose
 * denominator would be zero divides by one.
 *
 * A struct llm_quality owns the buffers it reuses from document to document, so checking
 * allocates nothing once they have grown; it is not for use by two threads at once. */
#ifndef LLM_DATA_QUALITY_H
#define LLM_DATA_QUALITY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

enum llm_quality_rule {
	LLM_QUALITY_GOPHER_QUALITY,
	LLM_QUALITY_GOPHER_REPETITION,
	LLM_QUALITY_C4,
	LLM_QUALITY_FINEWEB,
	LLM_QUALITY_LENGTH,
	LLM_QUALITY_REGEX,
	LLM_QUALITY__NRULES
};

struct llm_quality;

/* One failed check. */
struct llm_quality_hit {
	enum llm_quality_rule rule;
	const char *rule_name; /* "gopher_quality" */
	const char *check;     /* "min_words": the threshold's name */
	double value;	       /* what the document measured */
	double threshold;      /* what it was held to */
	int pattern;	       /* for regex: the index of the pattern that matched, else -1 */
};

enum llm_quality_mode {
	LLM_QUALITY_FIRST, /* stop at the first failed check (a filter that drops) */
	LLM_QUALITY_EVERY, /* run every check of every rule and report each failure (tagging) */
};

struct llm_quality_result {
	struct llm_quality_hit *hits;
	size_t nhits, cap;
	/* The text the rules left, when C4 removed lines (c4.remove_lines): valid until the
	 * next check.  text_changed says whether it differs from the input. */
	const char *text;
	size_t len;
	bool text_changed;
	uint64_t lines_removed;
};

enum llm_err llm_quality_new(struct llm_quality **out);
void llm_quality_free(struct llm_quality *q);

/* Choose the rules, in the order they run: "gopher_quality,c4".  Unknown names are usage
 * errors whose message lists the valid ones. */
enum llm_err llm_quality_use(struct llm_quality *q, const char *list, struct llm_diag *d);
/* Set one threshold, "RULE.NAME=VALUE": a number, "off" (the check is not run), or for
 * switches true/false.  "gopher_quality.max_symbol_word_ratio" sets both the hash and the
 * ellipsis ratios.  Unknown names are usage errors that list the valid ones. */
enum llm_err llm_quality_set(struct llm_quality *q, const char *assignment, struct llm_diag *d);
/* Add a pattern for the regex rule (PCRE2, UTF and Unicode properties on); a document that
 * matches any pattern fails.  Enables the rule when it is not on yet. */
enum llm_err llm_quality_add_regex(struct llm_quality *q, const char *pattern, struct llm_diag *d);
const char *llm_quality_regex(const struct llm_quality *q, int i);
bool llm_quality_uses(const struct llm_quality *q, enum llm_quality_rule r);

/* Append "RULE.NAME=DEFAULT" lines for every threshold to out (for documentation). */
enum llm_err llm_quality_describe(struct llm_buf *out);

/* Run the chosen rules over text[0..n) (valid UTF-8).  res->nhits == 0 means it passed. */
enum llm_err llm_quality_check(struct llm_quality *q, const char *text, size_t n,
			       enum llm_quality_mode mode, struct llm_quality_result *res);
void llm_quality_result_free(struct llm_quality_result *res);

/* The words the rules count, appended to out separated by single spaces.  An approximation of
 * NLTK's word_tokenize (Treebank) in one pass and no model: split at whitespace; ( ) [ ] { }
 * < > " ; @ # $ % & ? ! “ ” « » … are tokens of their own; "," and ":" too unless a digit
 * follows; "..." and "--" are tokens; a word's final "." is split off when the word has no
 * other "."; the endings n't 's 'm 'd 're 've 'll and a final ' are split off.  Unlike NLTK it
 * keeps " as it is (NLTK writes `` and '') and knows no abbreviations. */
enum llm_err llm_quality_tokenize(struct llm_quality *q, const char *text, size_t n,
				  struct llm_buf *out);

#endif
