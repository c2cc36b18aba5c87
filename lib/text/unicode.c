#include "config.h"

#include "text/unicode.h"

#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

size_t llm_unicode_decode(const char *s, size_t n, uint32_t *cp)
{
	const unsigned char *p = (const unsigned char *)s;
	unsigned c = p[0];
	if (c < 0x80 || n < 2) {
		*cp = c;
		return 1;
	}
	if (c < 0xE0) {
		*cp = (c & 0x1Fu) << 6 | (p[1] & 0x3Fu);
		return 2;
	}
	if (c < 0xF0 || n < 4) {
		*cp = (c & 0x0Fu) << 12 | (p[1] & 0x3Fu) << 6 | (p[2] & 0x3Fu);
		return 3;
	}
	*cp = (c & 0x07u) << 18 | (p[1] & 0x3Fu) << 12 | (p[2] & 0x3Fu) << 6 | (p[3] & 0x3Fu);
	return 4;
}

size_t llm_unicode_encode(uint32_t cp, char out[4])
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xC0 | cp >> 6);
		out[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xE0 | cp >> 12);
		out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
		out[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	out[0] = (char)(0xF0 | cp >> 18);
	out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
	out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
	out[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

size_t llm_unicode_count(const char *s, size_t n)
{
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		k += ((unsigned char)s[i] & 0xC0) != 0x80;
	return k;
}

bool llm_unicode_is_space(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20);
	switch (cp) {
	case 0x85:
	case 0xA0:
	case 0x1680:
	case 0x2028:
	case 0x2029:
	case 0x202F:
	case 0x205F:
	case 0x3000:
		return true;
	}
	return cp >= 0x2000 && cp <= 0x200A;
}

bool llm_unicode_is_line_break(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 0x0A && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x1E);
	return cp == 0x85 || cp == 0x2028 || cp == 0x2029;
}

bool llm_unicode_is_alpha(uint32_t cp)
{
	if (cp < 0x80)
		return (cp | 0x20) >= 'a' && (cp | 0x20) <= 'z';
	utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
	return k >= UTF8PROC_CATEGORY_LU && k <= UTF8PROC_CATEGORY_LO;
}

bool llm_unicode_is_digit(uint32_t cp)
{
	if (cp < 0x80)
		return cp >= '0' && cp <= '9';
	return utf8proc_category((utf8proc_int32_t)cp) == UTF8PROC_CATEGORY_ND;
}

bool llm_unicode_is_invisible(uint32_t cp, bool joiners)
{
	switch (cp) {
	case 0x00AD:
	case 0x034F:
	case 0x061C:
	case 0x180E:
	case 0x200B:
	case 0x200E:
	case 0x200F:
	case 0x2060:
	case 0xFEFF:
	case 0xE0001:
		return true;
	case 0x200C:
	case 0x200D:
		return joiners;
	}
	return (cp >= 0x202A && cp <= 0x202E) || (cp >= 0x2061 && cp <= 0x2064) ||
	       (cp >= 0x2066 && cp <= 0x2069) || (cp >= 0xE0020 && cp <= 0xE007F);
}

static const char *const step_names[LLM_CLEAN_NSTEPS] = {
    "newlines",	 "controls", "invisible", "spaces",	 "normalize",
    "lowercase", "collapse", "trim",	  "blank-lines",
};

const char *llm_clean_step_name(unsigned i)
{
	return i < LLM_CLEAN_NSTEPS ? step_names[i] : NULL;
}

bool llm_clean_step_parse(const char *name, size_t len, unsigned *step)
{
	for (unsigned i = 0; i < LLM_CLEAN_NSTEPS; i++)
		if (strlen(step_names[i]) == len && !memcmp(step_names[i], name, len)) {
			*step = 1u << i;
			return true;
		}
	return false;
}

void llm_clean_init(struct llm_clean *c, unsigned steps, enum llm_uform form, bool joiners)
{
	memset(c, 0, sizeof *c);
	c->steps = steps;
	c->form = form;
	c->joiners = joiners;
	llm_buf_init(&c->a, 0);
	llm_buf_init(&c->b, 0);
}

void llm_clean_free(struct llm_clean *c)
{
	llm_buf_free(&c->a);
	llm_buf_free(&c->b);
	free(c->u32);
	c->u32 = NULL;
}

/* Step 1, per character: line breaks, controls, invisibles, spaces.  The result is never
 * longer than the input (every replacement is one byte), so it is written in one go. */
static enum llm_err pass_chars(struct llm_clean *c, const char *s, size_t n, struct llm_buf *o,
			       unsigned *changed)
{
	enum llm_err e = llm_buf_reserve(o, n);
	if (e)
		return e;
	unsigned st = c->steps;
	char *w = o->data;
	size_t i = 0;
	while (i < n) {
		size_t run = i;
		while (run < n && (unsigned char)s[run] >= 0x20 && (unsigned char)s[run] < 0x7F)
			run++;
		memcpy(w, s + i, run - i);
		w += run - i;
		i = run;
		if (i >= n)
			break;
		unsigned char ch = (unsigned char)s[i];
		if (ch < 0x80) {
			i++;
			if (ch == '\n' || ch == '\t') {
				*w++ = (char)ch;
			} else if (ch == '\r' && (st & LLM_CLEAN_NEWLINES)) {
				if (i < n && s[i] == '\n')
					i++; /* CRLF: the LF follows */
				*w++ = '\n';
				*changed |= LLM_CLEAN_NEWLINES;
			} else if ((ch == '\v' || ch == '\f') && (st & LLM_CLEAN_NEWLINES)) {
				*w++ = '\n';
				*changed |= LLM_CLEAN_NEWLINES;
			} else if (st & LLM_CLEAN_CONTROLS) {
				*changed |= LLM_CLEAN_CONTROLS;
			} else {
				*w++ = (char)ch;
			}
			continue;
		}
		uint32_t cp;
		size_t len = llm_unicode_decode(s + i, n - i, &cp);
		if ((cp == 0x85 || cp == 0x2028 || cp == 0x2029) && (st & LLM_CLEAN_NEWLINES)) {
			*w++ = '\n';
			*changed |= LLM_CLEAN_NEWLINES;
		} else if (cp >= 0x80 && cp < 0xA0 && (st & LLM_CLEAN_CONTROLS)) {
			*changed |= LLM_CLEAN_CONTROLS;
		} else if ((st & LLM_CLEAN_INVISIBLE) && llm_unicode_is_invisible(cp, c->joiners)) {
			*changed |= LLM_CLEAN_INVISIBLE;
		} else if ((st & LLM_CLEAN_SPACES) && cp != 0x85 && cp != 0x2028 && cp != 0x2029 &&
			   llm_unicode_is_space(cp)) {
			/* What is left of Python's spaces above ASCII is exactly the Zs set. */
			*w++ = ' ';
			*changed |= LLM_CLEAN_SPACES;
		} else {
			memcpy(w, s + i, len);
			w += len;
		}
		i += len;
	}
	o->len = (size_t)(w - o->data);
	o->data[o->len] = '\0';
	return LLM_OK;
}

/* Normalize one stretch that holds non-ASCII text, appending the result to o. */
static enum llm_err normalize_span(struct llm_clean *c, const char *s, size_t n, struct llm_buf *o,
				   bool *changed)
{
	utf8proc_option_t opt = UTF8PROC_STABLE | UTF8PROC_COMPOSE;
	if (c->form == LLM_UFORM_NFKC)
		opt |= UTF8PROC_COMPAT;
	for (;;) {
		utf8proc_ssize_t k = utf8proc_decompose(
		    (const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, (utf8proc_int32_t *)c->u32,
		    (utf8proc_ssize_t)c->u32cap, opt);
		if (k < 0)
			return LLM_ERR_UTF8;
		if ((size_t)k > c->u32cap) {
			size_t cap = (size_t)k + 64;
			int32_t *p = realloc(c->u32, cap * sizeof *p);
			if (!p)
				return LLM_ERR_NOMEM;
			c->u32 = p;
			c->u32cap = cap;
			continue;
		}
		k = utf8proc_normalize_utf32((utf8proc_int32_t *)c->u32, k, opt);
		if (k < 0)
			return LLM_ERR_UTF8;
		/* reencode writes the UTF-8 bytes over the code points, in place. */
		k = utf8proc_reencode((utf8proc_int32_t *)c->u32, k, opt);
		if (k < 0)
			return LLM_ERR_UTF8;
		if ((size_t)k != n || memcmp(c->u32, s, n))
			*changed = true;
		return llm_buf_append(o, c->u32, (size_t)k);
	}
}

/* Step 2: NFC or NFKC.  ASCII is stable under both, and no ASCII character combines with
 * what precedes it, so only the stretches around non-ASCII text (from the ASCII character
 * before each one) go through utf8proc; pure ASCII text is not touched at all. */
static enum llm_err pass_normalize(struct llm_clean *c, const char *s, size_t n, struct llm_buf *o,
				   unsigned *changed)
{
	llm_buf_clear(o);
	enum llm_err e = llm_buf_reserve(o, n);
	size_t done = 0, i = 0;
	bool ch = false;
	while (!e && i < n) {
		if ((unsigned char)s[i] < 0x80) {
			i++;
			continue;
		}
		size_t start = i > done ? i - 1 : i;
		size_t end = i;
		while (end < n && (unsigned char)s[end] >= 0x80)
			end++;
		e = llm_buf_append(o, s + done, start - done);
		if (!e)
			e = normalize_span(c, s + start, end - start, o, &ch);
		done = i = end;
	}
	if (!e)
		e = llm_buf_append(o, s + done, n - done);
	if (ch)
		*changed |= LLM_CLEAN_NORMALIZE;
	return e;
}

static enum llm_err pass_lowercase(const char *s, size_t n, struct llm_buf *o, unsigned *changed)
{
	llm_buf_clear(o);
	/* A lowercase letter may take one byte more than its capital (U+023A -> U+2C65). */
	enum llm_err e = llm_buf_reserve(o, n + n / 2 + 4);
	if (e)
		return e;
	char *w = o->data;
	bool ch = false;
	for (size_t i = 0; i < n;) {
		unsigned char b = (unsigned char)s[i];
		if (b < 0x80) {
			char l = (char)(b >= 'A' && b <= 'Z' ? b + 32 : b);
			ch |= l != (char)b;
			*w++ = l;
			i++;
			continue;
		}
		uint32_t cp;
		size_t len = llm_unicode_decode(s + i, n - i, &cp);
		uint32_t lo = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
		if (lo == cp) {
			memcpy(w, s + i, len);
			w += len;
		} else {
			w += llm_unicode_encode(lo, w);
			ch = true;
		}
		i += len;
	}
	o->len = (size_t)(w - o->data);
	o->data[o->len] = '\0';
	if (ch)
		*changed |= LLM_CLEAN_LOWERCASE;
	return LLM_OK;
}

static bool blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/* Step 3, per line: collapse, trim, blank lines.  Only removes bytes. */
static enum llm_err pass_layout(unsigned st, const char *s, size_t n, struct llm_buf *o,
				unsigned *changed)
{
	llm_buf_clear(o);
	enum llm_err e = llm_buf_reserve(o, n);
	if (e)
		return e;
	bool trim = st & LLM_CLEAN_TRIM, collapse = st & LLM_CLEAN_COLLAPSE;
	bool cap = st & LLM_CLEAN_BLANK_LINES;
	char *w = o->data;
	size_t pending = 0; /* newlines not written yet */
	bool wrote = false; /* some line was written */
	size_t i = 0;
	while (i <= n) {
		const char *nl = i < n ? memchr(s + i, '\n', n - i) : NULL;
		size_t end = nl ? (size_t)(nl - s) : n;
		size_t a = i, b = end;
		if (trim) {
			size_t b0 = b;
			while (b > a && blank(s[b - 1]))
				b--;
			if (b != b0)
				*changed |= LLM_CLEAN_TRIM;
			if (!wrote && b > a) {
				size_t a0 = a;
				while (a < b && blank(s[a]))
					a++;
				if (a != a0)
					*changed |= LLM_CLEAN_TRIM;
			}
		}
		if (b > a) {
			if (!wrote && trim && pending) {
				*changed |= LLM_CLEAN_TRIM;
				pending = 0;
			}
			if (cap && pending > 2) {
				*changed |= LLM_CLEAN_BLANK_LINES;
				pending = 2;
			}
			memset(w, '\n', pending);
			w += pending;
			pending = 0;
			size_t k = a;
			while (k < b && blank(s[k])) /* the indent stays as it is */
				*w++ = s[k++];
			while (k < b) {
				if (!blank(s[k])) {
					*w++ = s[k++];
					continue;
				}
				size_t r = k;
				while (r < b && blank(s[r]))
					r++;
				if (collapse && r - k >= 2) {
					*w++ = ' ';
					*changed |= LLM_CLEAN_COLLAPSE;
				} else {
					memcpy(w, s + k, r - k);
					w += r - k;
				}
				k = r;
			}
			wrote = true;
		} else if (!trim) {
			/* An untrimmed line of blanks is written as it is. */
			if (a < b) {
				memset(w, '\n', pending);
				w += pending;
				pending = 0;
				memcpy(w, s + a, b - a);
				w += b - a;
				wrote = true;
			}
		}
		if (!nl)
			break;
		pending++;
		i = end + 1;
	}
	if (pending) {
		if (trim) {
			*changed |= LLM_CLEAN_TRIM;
		} else {
			if (cap && pending > 2) {
				*changed |= LLM_CLEAN_BLANK_LINES;
				pending = 2;
			}
			memset(w, '\n', pending);
			w += pending;
		}
	}
	o->len = (size_t)(w - o->data);
	o->data[o->len] = '\0';
	return LLM_OK;
}

enum llm_err llm_clean_text(struct llm_clean *c, const char *s, size_t n, const char **out,
			    size_t *outn, unsigned *changed)
{
	unsigned st = c->steps;
	*changed = 0;
	const char *cur = s;
	size_t len = n;
	/* Two buffers, used in turn: each pass reads one and writes the other. */
	struct llm_buf *bufs[2] = {&c->a, &c->b};
	int next = 0;
	enum llm_err e = LLM_OK;
	if (st &
	    (LLM_CLEAN_NEWLINES | LLM_CLEAN_CONTROLS | LLM_CLEAN_INVISIBLE | LLM_CLEAN_SPACES)) {
		llm_buf_clear(bufs[next]);
		if ((e = pass_chars(c, cur, len, bufs[next], changed)))
			return e;
		cur = bufs[next]->data;
		len = bufs[next]->len;
		next ^= 1;
	}
	if (st & LLM_CLEAN_NORMALIZE) {
		if ((e = pass_normalize(c, cur, len, bufs[next], changed)))
			return e;
		cur = bufs[next]->data;
		len = bufs[next]->len;
		next ^= 1;
	}
	if (st & LLM_CLEAN_LOWERCASE) {
		if ((e = pass_lowercase(cur, len, bufs[next], changed)))
			return e;
		cur = bufs[next]->data;
		len = bufs[next]->len;
		next ^= 1;
	}
	if (st & (LLM_CLEAN_COLLAPSE | LLM_CLEAN_TRIM | LLM_CLEAN_BLANK_LINES)) {
		if ((e = pass_layout(st, cur, len, bufs[next], changed)))
			return e;
		cur = bufs[next]->data;
		len = bufs[next]->len;
	}
	*out = cur;
	*outn = len;
	return LLM_OK;
}
