/* The simple per-record metrics: exact match and token F1 with SQuAD's normalization,
 * contains, regular expressions (PCRE2), JSON validity and JSON Schema, and pass@k.
 *
 * Each gives a number per record (1/0 for the checks); the corpus score is their mean.
 * With several references, exact match, F1 and contains take the best reference. */
#ifndef LLM_METRICS_MATCH_H
#define LLM_METRICS_MATCH_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* SQuAD's normalize_answer appended to out: lower-case (Python's str.lower()), ASCII
 * punctuation (string.punctuation) deleted, the words a, an, the removed, whitespace runs
 * collapsed to one space (Python's str.split() set), trimmed.  An article is removed where
 * Python's re finds \b(a|an|the)\b: a whole run of word characters (letters, digits with a
 * numeric value, '_'; Unicode, so the "a" in "éa" stays).  LLM_ERR_UTF8 for invalid UTF-8. */
enum llm_err llm_squad_normalize(const char *s, size_t n, struct llm_buf *out,
				 struct llm_diag *diag);

/* SQuAD exact match (1 or 0) and token F1 (over the multiset of normalized tokens; 0 when
 * either side is empty unless both are, SQuAD 2.0's rule: the v1.1 script gives 0 there too),
 * the maximum over the references.  LLM_ERR_MISSING when n_refs is 0. */
enum llm_err llm_match_exact(const char *hyp, size_t hyp_len, const char *const *refs,
			     const size_t *ref_lens, size_t n_refs, double *out,
			     struct llm_diag *diag);
enum llm_err llm_match_f1(const char *hyp, size_t hyp_len, const char *const *refs,
			  const size_t *ref_lens, size_t n_refs, double *out, struct llm_diag *diag);

/* 1 when some reference occurs in the hypothesis (after SQuAD normalization of both when
 * normalize is set, else byte for byte), else 0.  An empty reference occurs everywhere, as in
 * Python's `in`.  LLM_ERR_MISSING when n_refs is 0. */
enum llm_err llm_match_contains(const char *hyp, size_t hyp_len, const char *const *refs,
				const size_t *ref_lens, size_t n_refs, bool normalize, double *out,
				struct llm_diag *diag);

/* A compiled PCRE2 pattern (UTF mode, \w \d \b Unicode-aware as in Python's re, JIT when
 * available).  A compiled pattern may be shared by threads. */
struct llm_regex;
/* LLM_ERR_USAGE with PCRE2's message and the offset for a bad pattern. */
enum llm_err llm_regex_new(struct llm_regex **out, const char *pattern, bool caseless,
			   struct llm_diag *diag);
void llm_regex_free(struct llm_regex *re);
/* 1 when the pattern matches anywhere in s (search, not a whole-string match), else 0.
 * LLM_ERR_UTF8 when s is not valid UTF-8, LLM_ERR_RANGE when PCRE2 gives up (match limit). */
enum llm_err llm_regex_search(const struct llm_regex *re, const char *s, size_t n, double *out,
			      struct llm_diag *diag);

/* The JSON text inside s: s itself trimmed, or the body of its first ```json (or ```) fenced
 * block when s has one, as models often answer.  Sets *start and *len within s.  A block tagged
 * json (any case) wins over an earlier bare one; blocks tagged with another language are passed
 * over; an unclosed block runs to the end of s. */
void llm_json_extract(const char *s, size_t n, size_t *start, size_t *len);

/* 1 when llm_json_extract's text is one valid JSON value (RFC 8259), else 0. */
double llm_match_json_valid(const char *s, size_t n);

/* JSON Schema (draft 2020-12 and draft-07 validation vocabulary: type, enum, const,
 * properties, required, additionalProperties, patternProperties, items/prefixItems,
 * min/maxItems, uniqueItems, min/maxLength, pattern, minimum/maximum and their exclusive
 * forms, multipleOf, min/maxProperties, allOf/anyOf/oneOf/not, $ref to #/$defs and
 * #/definitions, format ignored as the spec allows).
 *
 * Also: boolean schemas, draft-07's items array with additionalItems, contains with
 * min/maxContains, propertyNames, dependentRequired, dependentSchemas, draft-07 dependencies,
 * if/then/else, draft-04's boolean exclusiveMinimum/Maximum.  $ref takes any JSON pointer into
 * the schema file ("#", "#/a~1b/0", percent-escapes decoded), resolved against the file's root;
 * beside other keywords it applies with them (2020-12), or alone when "$schema" names draft-07
 * or earlier.  Numbers compare by value (1 and 1.0 are equal and both integers); multipleOf
 * allows a relative 1e-9 for binary fractions.  pattern follows ECMA-262 as far as PCRE2 can
 * (\d and \w ASCII, \uXXXX escapes, $ only at the end).  Remote references, anchors,
 * $dynamicRef and unevaluatedProperties/Items are refused when loading (LLM_ERR_USAGE), not
 * silently ignored. */
struct llm_jschema;
/* Load a schema from a file.  LLM_ERR_JSON with the file and line for invalid JSON,
 * LLM_ERR_USAGE for a schema that is not an object or boolean or uses a keyword wrongly. */
enum llm_err llm_jschema_load(struct llm_jschema **out, const char *path, struct llm_diag *diag);
void llm_jschema_free(struct llm_jschema *s);
/* 1 when llm_json_extract's text of s is valid JSON that the schema accepts, else 0; when why
 * is not NULL and the answer is 0, the first failure ("$.items[2].name: expected string, got
 * number"; a key that is not an identifier as $["a b"]) is appended to it.  LLM_ERR_USAGE when
 * the schema recurses without end ({"$ref": "#"}), LLM_ERR_NOMEM. */
enum llm_err llm_jschema_check(const struct llm_jschema *sc, const char *s, size_t n, double *out,
			       struct llm_buf *why, struct llm_diag *diag);

/* pass@k, the unbiased estimator of the Codex paper (human-eval):
 * 1 - prod_{i=n-c+1..n} (1 - k/i), and 1 when n - c < k.  LLM_ERR_RANGE unless
 * 0 <= c <= n and 1 <= k <= n. */
enum llm_err llm_pass_at_k(long n, long c, long k, double *out, struct llm_diag *diag);

#endif
