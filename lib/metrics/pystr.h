/* Python's str.split() and str.lower(), byte for byte, for the metrics whose reference
 * implementations are Python (sacreBLEU, rouge-score, SQuAD): a C port that splits on ASCII
 * whitespace only or lowercases code point by code point gives other numbers on text with
 * U+00A0, U+3000, 'İ' or a final 'Σ'. */
#ifndef LLM_METRICS_PYSTR_H
#define LLM_METRICS_PYSTR_H

#include <stdbool.h>
#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* True for the code points Python's str.isspace() accepts (and str.split() splits on):
 * \t \n \v \f \r, U+001C-U+001F, space, U+0085, U+00A0, U+1680, U+2000-U+200A, U+2028, U+2029,
 * U+202F, U+205F, U+3000. */
bool llm_py_isspace(unsigned cp);

/* Split s (n bytes of UTF-8) as Python's s.split() does: runs of whitespace separate tokens,
 * none is empty.  Calls fn(ctx, token, len) for each; stops early when fn returns false. */
void llm_py_split(const char *s, size_t n, bool (*fn)(void *ctx, const char *tok, size_t len),
		  void *ctx);

/* Append Python's s.lower() to out: full Unicode lowercasing (U+0130 becomes "i" U+0307, a
 * capital sigma at the end of a word becomes final sigma).  LLM_ERR_UTF8 for invalid UTF-8. */
enum llm_err llm_py_lower(const char *s, size_t n, struct llm_buf *out, struct llm_diag *diag);

#endif
