/* Unicode helpers for text cleaning and for the quality rules: UTF-8 decoding, the character
 * classes Python's str methods use (so rules ported from Python tools count what they count),
 * and llm_clean, the switchable cleaning steps behind `llm-prep clean`.
 *
 * All input is valid UTF-8 (the JSON scanner checked it); nothing here validates again. */
#ifndef LLM_TEXT_UNICODE_H
#define LLM_TEXT_UNICODE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

/* Decode the code point at s[0..n) (n >= 1, valid UTF-8); returns its length in bytes. */
size_t llm_unicode_decode(const char *s, size_t n, uint32_t *cp);
/* Encode cp as UTF-8 into out; returns 1 to 4. */
size_t llm_unicode_encode(uint32_t cp, char out[4]);
/* The number of code points in s[0..n) (what Python's len() says of the decoded string). */
size_t llm_unicode_count(const char *s, size_t n);

/* Python's str.isspace(): \t \n \v \f \r, U+001C..U+001F, space, U+0085, U+00A0, U+1680,
 * U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000. */
bool llm_unicode_is_space(uint32_t cp);
/* The line boundaries of Python's str.splitlines(): \n \v \f \r, U+001C..U+001E, U+0085,
 * U+2028, U+2029 (and "\r\n" counts as one). */
bool llm_unicode_is_line_break(uint32_t cp);
/* Python's str.isalpha() for one character: general category Lu, Ll, Lt, Lm or Lo. */
bool llm_unicode_is_alpha(uint32_t cp);
/* A decimal digit (general category Nd), what Python's re means by \d. */
bool llm_unicode_is_digit(uint32_t cp);
/* The invisible characters `clean` removes: U+00AD soft hyphen, U+034F combining grapheme
 * joiner, U+061C Arabic letter mark, U+180E Mongolian vowel separator, U+200B zero-width
 * space, U+200E/U+200F directional marks, U+202A..U+202E bidi embeddings and overrides,
 * U+2060 word joiner, U+2061..U+2064 invisible operators, U+2066..U+2069 bidi isolates,
 * U+FEFF byte order mark, U+E0001 and U+E0020..U+E007F tag characters; and, when joiners is
 * true, U+200C zero-width non-joiner and U+200D zero-width joiner (kept by default: Persian,
 * Indic scripts and emoji sequences need them). */
bool llm_unicode_is_invisible(uint32_t cp, bool joiners);

/* The cleaning steps, in the order they run; each can be switched off. */
enum llm_clean_step {
	LLM_CLEAN_NEWLINES = 1u << 0,  /* CRLF, CR, VT, FF, U+0085, U+2028, U+2029 -> LF */
	LLM_CLEAN_CONTROLS = 1u << 1,  /* drop C0 controls but TAB and LF, DEL, C1 controls */
	LLM_CLEAN_INVISIBLE = 1u << 2, /* drop llm_unicode_is_invisible() characters */
	LLM_CLEAN_SPACES = 1u << 3,    /* other Unicode space separators (Zs) -> U+0020 */
	LLM_CLEAN_NORMALIZE = 1u << 4, /* NFC or NFKC (utf8proc) */
	LLM_CLEAN_LOWERCASE = 1u << 5, /* simple Unicode lowercase mapping (off by default) */
	LLM_CLEAN_COLLAPSE =
	    1u << 6,		  /* runs of 2+ spaces/tabs after a line's indent -> one space */
	LLM_CLEAN_TRIM = 1u << 7, /* spaces/tabs at line ends; whitespace at text ends */
	LLM_CLEAN_BLANK_LINES = 1u << 8, /* 3+ newlines in a row -> 2 (one blank line at most) */
};
#define LLM_CLEAN_NSTEPS 9
#define LLM_CLEAN_DEFAULT                                                                          \
	(LLM_CLEAN_NEWLINES | LLM_CLEAN_CONTROLS | LLM_CLEAN_INVISIBLE | LLM_CLEAN_SPACES |        \
	 LLM_CLEAN_NORMALIZE | LLM_CLEAN_COLLAPSE | LLM_CLEAN_TRIM | LLM_CLEAN_BLANK_LINES)

/* The name of step i (0-based, in run order): "newlines", "controls", "invisible", "spaces",
 * "normalize", "lowercase", "collapse", "trim", "blank-lines". */
const char *llm_clean_step_name(unsigned i);
/* The step called name; false when there is none. */
bool llm_clean_step_parse(const char *name, size_t len, unsigned *step);

enum llm_uform {
	LLM_UFORM_NFC,
	LLM_UFORM_NFKC,
};

/* A cleaner: its settings and the buffers it reuses, so cleaning a record allocates nothing
 * once the buffers have grown to the largest text seen.  Not for use by two threads. */
struct llm_clean {
	unsigned steps; /* enum llm_clean_step bits */
	enum llm_uform form;
	bool joiners; /* also remove ZWNJ and ZWJ */
	struct llm_buf a, b;
	int32_t *u32; /* utf8proc's working buffer */
	size_t u32cap;
};

void llm_clean_init(struct llm_clean *c, unsigned steps, enum llm_uform form, bool joiners);
void llm_clean_free(struct llm_clean *c);

/* Clean s[0..n).  *out and *outn give the result (valid until the next call; it may be s
 * itself when no step applies); *changed gets the bits of the steps that changed something. */
enum llm_err llm_clean_text(struct llm_clean *c, const char *s, size_t n, const char **out,
			    size_t *outn, unsigned *changed);

#endif
