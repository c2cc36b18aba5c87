#include "config.h"

#include "metrics/pystr.h"

#include <string.h>
#include <utf8proc.h>

#include "core/json.h"
#include "text/unicode.h"

bool llm_py_isspace(unsigned cp)
{
	return llm_unicode_is_space(cp);
}

void llm_py_split(const char *s, size_t n, bool (*fn)(void *ctx, const char *tok, size_t len),
		  void *ctx)
{
	size_t i = 0, start = 0;
	bool in_tok = false;
	while (i < n) {
		uint32_t cp = (unsigned char)s[i];
		size_t len = cp < 0x80 ? 1 : llm_unicode_decode(s + i, n - i, &cp);
		if (llm_unicode_is_space(cp)) {
			if (in_tok && !fn(ctx, s + start, i - start))
				return;
			in_tok = false;
		} else if (!in_tok) {
			in_tok = true;
			start = i;
		}
		i += len;
	}
	if (in_tok)
		fn(ctx, s + start, n - start);
}

/* Python's _PyUnicode_IsCased: Lowercase, Uppercase or titlecase letters. */
static bool is_cased(uint32_t cp)
{
	utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
	return c == UTF8PROC_CATEGORY_LU || c == UTF8PROC_CATEGORY_LL ||
	       c == UTF8PROC_CATEGORY_LT || utf8proc_islower((utf8proc_int32_t)cp) ||
	       utf8proc_isupper((utf8proc_int32_t)cp);
}

/* Unicode's Case_Ignorable: Mn, Me, Cf, Lm, Sk, and Word_Break MidLetter, MidNumLet and
 * Single_Quote. */
static bool is_case_ignorable(uint32_t cp)
{
	switch (cp) {
	case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4:
	case 0x2018: case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52:
	case 0xFE55: case 0xFF07: case 0xFF0E: case 0xFF1A:
		return true;
	default:
		break;
	}
	utf8proc_category_t c = utf8proc_category((utf8proc_int32_t)cp);
	return c == UTF8PROC_CATEGORY_MN || c == UTF8PROC_CATEGORY_ME ||
	       c == UTF8PROC_CATEGORY_CF || c == UTF8PROC_CATEGORY_LM ||
	       c == UTF8PROC_CATEGORY_SK;
}

/* The code point before byte offset i (i > 0), and where it starts. */
static uint32_t prev_cp(const char *s, size_t *i)
{
	size_t j = *i - 1;
	while (j > 0 && ((unsigned char)s[j] & 0xC0) == 0x80)
		j--;
	uint32_t cp;
	llm_unicode_decode(s + j, *i - j, &cp);
	*i = j;
	return cp;
}

/* Python's handle_capital_sigma: final sigma after a cased letter (case-ignorable characters
 * skipped) that no cased letter follows. */
static bool final_sigma(const char *s, size_t n, size_t at, size_t len)
{
	size_t i = at;
	uint32_t cp = 0;
	bool found = false;
	while (i > 0) {
		cp = prev_cp(s, &i);
		if (!is_case_ignorable(cp)) {
			found = true;
			break;
		}
	}
	if (!found || !is_cased(cp))
		return false;
	for (i = at + len; i < n;) {
		i += llm_unicode_decode(s + i, n - i, &cp);
		if (!is_case_ignorable(cp))
			return !is_cased(cp);
	}
	return true;
}

enum llm_err llm_py_lower(const char *s, size_t n, struct llm_buf *out, struct llm_diag *diag)
{
	size_t valid = llm_utf8_valid_prefix(s, n);
	if (valid != n)
		return llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0, "invalid UTF-8 at byte %zu", valid);
	enum llm_err e = llm_buf_reserve(out, n);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "text too long to lowercase");
	size_t i = 0;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			e = llm_buf_putc(out, (char)(c >= 'A' && c <= 'Z' ? c + 32 : c));
			i++;
		} else {
			uint32_t cp;
			size_t len = llm_unicode_decode(s + i, n - i, &cp);
			char enc[8];
			size_t k;
			if (cp == 0x130) { /* SpecialCasing: "i" + combining dot above */
				memcpy(enc, "i\xCC\x87", 3);
				k = 3;
			} else if (cp == 0x3A3) {
				k = llm_unicode_encode(final_sigma(s, n, i, len) ? 0x3C2 : 0x3C3, enc);
			} else {
				k = llm_unicode_encode(
				    (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp), enc);
			}
			e = llm_buf_append(out, enc, k);
			i += len;
		}
		if (e)
			return llm_diag_set(diag, e, NULL, 0, "text too long to lowercase");
	}
	return LLM_OK;
}
