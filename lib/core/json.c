#include "config.h"

#include "core/json.h"

#include <stdlib.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

/* Bytes a string can contain without a closer look: printable ASCII other than '"' and '\'. */
static const uint8_t plain[256] = {
#define R16(v) v, v, v, v, v, v, v, v, v, v, v, v, v, v, v, v
	R16(0), R16(0), /* control characters */
	0, 1, 0, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, /* 0x20: '"' at 0x22 */
	R16(1), R16(1),
	1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, /* 0x50: '\' at 0x5c */
	R16(1), R16(1),
	R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), R16(0), /* non-ASCII */
#undef R16
};

/* Length of the valid UTF-8 sequence at s (at most n bytes), or 0 when it is invalid. */
static size_t utf8_seq(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c < 0xC2)
		return 0;
	if (c < 0xE0) {
		if (n < 2 || (s[1] & 0xC0) != 0x80)
			return 0;
		return 2;
	}
	if (c < 0xF0) {
		if (n < 3 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80)
			return 0;
		if (c == 0xE0 && s[1] < 0xA0)
			return 0; /* overlong */
		if (c == 0xED && s[1] >= 0xA0)
			return 0; /* surrogate */
		return 3;
	}
	if (c < 0xF5) {
		if (n < 4 || (s[1] & 0xC0) != 0x80 || (s[2] & 0xC0) != 0x80 ||
		    (s[3] & 0xC0) != 0x80)
			return 0;
		if (c == 0xF0 && s[1] < 0x90)
			return 0; /* overlong */
		if (c == 0xF4 && s[1] >= 0x90)
			return 0; /* above U+10FFFF */
		return 4;
	}
	return 0;
}

size_t llm_ascii_prefix(const char *s, size_t n)
{
	size_t i = 0;
#ifdef __SSE2__
	for (; i + 16 <= n; i += 16) {
		unsigned high = (unsigned)_mm_movemask_epi8(
		    _mm_loadu_si128((const __m128i *)(const void *)(s + i)));
		if (high)
			return i + (size_t)__builtin_ctz(high);
	}
#endif
	while (i < n && (unsigned char)s[i] < 0x80)
		i++;
	return i;
}

size_t llm_utf8_valid_prefix(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i = llm_ascii_prefix(s, n);
	while (i < n) {
		if (p[i] < 0x80) {
			i++;
			continue;
		}
		size_t k = utf8_seq(p + i, n - i);
		if (!k)
			return i;
		i += k;
	}
	return n;
}

struct scan {
	const unsigned char *s;
	size_t n;
	size_t i;
	struct llm_json_fault *fault;
};

static enum llm_err fail(struct scan *sc, enum llm_err code, const char *why)
{
	if (sc->fault) {
		sc->fault->code = code;
		sc->fault->offset = sc->i;
		sc->fault->why = why;
	}
	return code;
}

static inline void skip_ws(struct scan *sc)
{
	while (sc->i < sc->n) {
		unsigned char c = sc->s[sc->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		sc->i++;
	}
}

static int hexval(unsigned char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	c |= 0x20;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static bool read_hex4(struct scan *sc, unsigned *out)
{
	if (sc->n - sc->i < 4)
		return false;
	unsigned v = 0;
	for (int k = 0; k < 4; k++) {
		int h = hexval(sc->s[sc->i + k]);
		if (h < 0)
			return false;
		v = v << 4 | (unsigned)h;
	}
	sc->i += 4;
	*out = v;
	return true;
}

/* At an opening quote: scan to just past the closing quote. */
static enum llm_err scan_string(struct scan *sc, bool *escaped)
{
	const unsigned char *s = sc->s;
	size_t n = sc->n;
	size_t i = sc->i + 1;
	for (;;) {
#ifdef __SSE2__
		/* Sixteen bytes at a time: the plain ones are 0x20-0x7f but '"' and '\\', so a
		 * byte that is not is '"', '\\', or below 0x20 as a signed char (which takes in
		 * 0x80-0xff as well). */
		const __m128i quote = _mm_set1_epi8('"'), bslash = _mm_set1_epi8('\\'),
			      space = _mm_set1_epi8(0x20);
		while (i + 16 <= n) {
			__m128i x = _mm_loadu_si128((const __m128i *)(const void *)(s + i));
			__m128i m = _mm_or_si128(
			    _mm_or_si128(_mm_cmpeq_epi8(x, quote), _mm_cmpeq_epi8(x, bslash)),
			    _mm_cmplt_epi8(x, space));
			unsigned mask = (unsigned)_mm_movemask_epi8(m);
			if (mask) {
				i += (size_t)__builtin_ctz(mask);
				break;
			}
			i += 16;
		}
#endif
		while (i + 8 <= n && plain[s[i]] & plain[s[i + 1]] & plain[s[i + 2]] &
					     plain[s[i + 3]] & plain[s[i + 4]] & plain[s[i + 5]] &
					     plain[s[i + 6]] & plain[s[i + 7]])
			i += 8;
		while (i < n && plain[s[i]])
			i++;
		if (i >= n) {
			sc->i = i;
			return fail(sc, LLM_ERR_JSON, "unterminated string");
		}
		unsigned char c = s[i];
		if (c == '"') {
			sc->i = i + 1;
			return LLM_OK;
		}
		if (c == '\\') {
			*escaped = true;
			if (i + 1 >= n) {
				sc->i = i;
				return fail(sc, LLM_ERR_JSON, "unterminated string");
			}
			unsigned char e = s[i + 1];
			if (e == 'u') {
				sc->i = i + 2;
				unsigned cp;
				if (!read_hex4(sc, &cp))
					return fail(sc, LLM_ERR_JSON, "invalid \\u escape");
				if (cp >= 0xDC00 && cp <= 0xDFFF)
					return fail(sc, LLM_ERR_JSON, "lone low surrogate escape");
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					unsigned lo;
					if (sc->n - sc->i < 2 || s[sc->i] != '\\' || s[sc->i + 1] != 'u')
						return fail(sc, LLM_ERR_JSON, "lone high surrogate escape");
					sc->i += 2;
					if (!read_hex4(sc, &lo) || lo < 0xDC00 || lo > 0xDFFF)
						return fail(sc, LLM_ERR_JSON, "lone high surrogate escape");
				}
				i = sc->i;
				continue;
			}
			if (!strchr("\"\\/bfnrt", e) || e == 0) {
				sc->i = i;
				return fail(sc, LLM_ERR_JSON, "invalid escape in string");
			}
			i += 2;
			continue;
		}
		if (c < 0x20) {
			sc->i = i;
			return fail(sc, LLM_ERR_JSON, "control character in string");
		}
		size_t k = utf8_seq(s + i, n - i);
		if (!k) {
			sc->i = i;
			return fail(sc, LLM_ERR_UTF8, "invalid UTF-8");
		}
		i += k;
	}
}

static enum llm_err scan_number(struct scan *sc, bool *is_int)
{
	const unsigned char *s = sc->s;
	size_t n = sc->n, i = sc->i;
	*is_int = true;
	if (i < n && s[i] == '-')
		i++;
	if (i >= n || s[i] < '0' || s[i] > '9') {
		sc->i = i;
		return fail(sc, LLM_ERR_JSON, "invalid number");
	}
	if (s[i] == '0') {
		i++;
	} else {
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && s[i] == '.') {
		*is_int = false;
		i++;
		if (i >= n || s[i] < '0' || s[i] > '9') {
			sc->i = i;
			return fail(sc, LLM_ERR_JSON, "invalid number");
		}
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	if (i < n && (s[i] == 'e' || s[i] == 'E')) {
		*is_int = false;
		i++;
		if (i < n && (s[i] == '+' || s[i] == '-'))
			i++;
		if (i >= n || s[i] < '0' || s[i] > '9') {
			sc->i = i;
			return fail(sc, LLM_ERR_JSON, "invalid number");
		}
		while (i < n && s[i] >= '0' && s[i] <= '9')
			i++;
	}
	sc->i = i;
	return LLM_OK;
}

static enum llm_err scan_literal(struct scan *sc, const char *word, size_t len)
{
	if (sc->n - sc->i < len || memcmp(sc->s + sc->i, word, len) != 0)
		return fail(sc, LLM_ERR_JSON, "invalid literal");
	sc->i += len;
	return LLM_OK;
}

/* Scan one value of any type, iteratively (nesting tracked in a bit stack). */
static enum llm_err scan_value(struct scan *sc, enum llm_json_type *type, bool *is_int)
{
	unsigned char stack[LLM_JSON_MAX_DEPTH / 8];
	int depth = 0;
	bool dummy;
	enum llm_err e;
	*is_int = false;
	skip_ws(sc);
	if (sc->i >= sc->n)
		return fail(sc, LLM_ERR_JSON, "expected a value");
	switch (sc->s[sc->i]) {
	case '"': *type = LLM_JSON_STRING; return scan_string(sc, &dummy);
	case 't': *type = LLM_JSON_TRUE; return scan_literal(sc, "true", 4);
	case 'f': *type = LLM_JSON_FALSE; return scan_literal(sc, "false", 5);
	case 'n': *type = LLM_JSON_NULL; return scan_literal(sc, "null", 4);
	case '[': *type = LLM_JSON_ARRAY; break;
	case '{': *type = LLM_JSON_OBJECT; break;
	default:
		if (sc->s[sc->i] == '-' || (sc->s[sc->i] >= '0' && sc->s[sc->i] <= '9')) {
			*type = LLM_JSON_NUMBER;
			return scan_number(sc, is_int);
		}
		return fail(sc, LLM_ERR_JSON, "expected a value");
	}
	/* A container: iterate until the matching close. */
	for (;;) {
		unsigned char c = sc->s[sc->i];
		bool obj = c == '{';
		if (depth >= LLM_JSON_MAX_DEPTH)
			return fail(sc, LLM_ERR_JSON, "nesting too deep");
		if (obj)
			stack[depth / 8] |= (unsigned char)(1u << (depth % 8));
		else
			stack[depth / 8] &= (unsigned char)~(1u << (depth % 8));
		depth++;
		sc->i++;
		skip_ws(sc);
		if (sc->i < sc->n && sc->s[sc->i] == (obj ? '}' : ']')) {
			sc->i++;
			goto closed;
		}
	element:
		if (stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8))) {
			skip_ws(sc);
			if (sc->i >= sc->n || sc->s[sc->i] != '"')
				return fail(sc, LLM_ERR_JSON, "expected a string key");
			if ((e = scan_string(sc, &dummy)))
				return e;
			skip_ws(sc);
			if (sc->i >= sc->n || sc->s[sc->i] != ':')
				return fail(sc, LLM_ERR_JSON, "expected ':'");
			sc->i++;
		}
		skip_ws(sc);
		if (sc->i >= sc->n)
			return fail(sc, LLM_ERR_JSON, "unexpected end of input");
		c = sc->s[sc->i];
		if (c == '{' || c == '[')
			continue; /* descend */
		{
			enum llm_json_type t;
			if ((e = scan_value(sc, &t, &dummy)))
				return e;
		}
	after:
		skip_ws(sc);
		if (sc->i >= sc->n)
			return fail(sc, LLM_ERR_JSON, "unexpected end of input");
		c = sc->s[sc->i];
		if (c == ',') {
			sc->i++;
			goto element;
		}
		{
			bool in_obj = stack[(depth - 1) / 8] & (1u << ((depth - 1) % 8));
			if (c != (in_obj ? '}' : ']'))
				return fail(sc, LLM_ERR_JSON, in_obj ? "expected ',' or '}'" : "expected ',' or ']'");
		}
		sc->i++;
	closed:
		depth--;
		if (depth == 0)
			return LLM_OK;
		goto after;
	}
}

static enum llm_err push_member(struct llm_json_members *out, const struct llm_json_member *m)
{
	if (out->n == out->cap) {
		size_t cap = out->cap ? out->cap * 2 : 16;
		struct llm_json_member *p = realloc(out->m, cap * sizeof *p);
		if (!p)
			return LLM_ERR_NOMEM;
		out->m = p;
		out->cap = cap;
	}
	out->m[out->n++] = *m;
	return LLM_OK;
}

enum llm_err llm_json_scan(const char *text, size_t n, struct llm_json_members *out,
			   struct llm_json_fault *fault)
{
	struct scan sc = {(const unsigned char *)text, n, 0, fault};
	enum llm_err e;
	out->n = 0;
	if (n > UINT32_MAX)
		return fail(&sc, LLM_ERR_TOO_BIG, "record larger than 4 GiB");
	skip_ws(&sc);
	if (sc.i >= n)
		return fail(&sc, LLM_ERR_JSON, "empty line");
	if (sc.s[sc.i] != '{') {
		if (sc.s[sc.i] >= 0x80 && !utf8_seq(sc.s + sc.i, n - sc.i))
			return fail(&sc, LLM_ERR_UTF8, "invalid UTF-8");
		return fail(&sc, LLM_ERR_JSON, "a record must be a JSON object");
	}
	sc.i++;
	skip_ws(&sc);
	if (sc.i < n && sc.s[sc.i] == '}') {
		sc.i++;
	} else {
		for (;;) {
			struct llm_json_member m = {0};
			skip_ws(&sc);
			if (sc.i >= n || sc.s[sc.i] != '"')
				return fail(&sc, LLM_ERR_JSON,
					    sc.i >= n ? "unexpected end of input" : "expected a string key");
			size_t k0 = sc.i;
			if ((e = scan_string(&sc, &m.key_escaped)))
				return e;
			m.key = text + k0 + 1;
			m.key_len = (uint32_t)(sc.i - k0 - 2);
			skip_ws(&sc);
			if (sc.i >= n || sc.s[sc.i] != ':')
				return fail(&sc, LLM_ERR_JSON, "expected ':'");
			sc.i++;
			skip_ws(&sc);
			size_t v0 = sc.i;
			if ((e = scan_value(&sc, &m.type, &m.is_integer)))
				return e;
			m.val = text + v0;
			m.val_len = (uint32_t)(sc.i - v0);
			if ((e = push_member(out, &m)))
				return e;
			skip_ws(&sc);
			if (sc.i >= n)
				return fail(&sc, LLM_ERR_JSON, "unexpected end of input");
			if (sc.s[sc.i] == ',') {
				sc.i++;
				continue;
			}
			if (sc.s[sc.i] == '}') {
				sc.i++;
				break;
			}
			return fail(&sc, LLM_ERR_JSON, "expected ',' or '}'");
		}
	}
	skip_ws(&sc);
	if (sc.i != n)
		return fail(&sc, LLM_ERR_JSON, "trailing characters after the object");
	return LLM_OK;
}

void llm_json_members_free(struct llm_json_members *ms)
{
	free(ms->m);
	ms->m = NULL;
	ms->n = ms->cap = 0;
}

static bool key_equals(const struct llm_json_member *m, const char *name, size_t len)
{
	if (!m->key_escaped)
		return m->key_len == len && memcmp(m->key, name, len) == 0;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	bool eq = llm_json_string_decode(m->key - 1, m->key_len + 2, &b) == LLM_OK &&
		  b.len == len && memcmp(b.data, name, len) == 0;
	llm_buf_free(&b);
	return eq;
}

const struct llm_json_member *llm_json_get(const struct llm_json_members *ms, const char *name)
{
	size_t len = strlen(name);
	for (size_t i = 0; i < ms->n; i++)
		if (key_equals(&ms->m[i], name, len))
			return &ms->m[i];
	return NULL;
}

static size_t put_utf8(char *o, unsigned cp)
{
	if (cp < 0x80) {
		o[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		return 2;
	}
	if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		return 3;
	}
	o[0] = (char)(0xF0 | cp >> 18);
	o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
	o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
	o[3] = (char)(0x80 | (cp & 0x3F));
	return 4;
}

enum llm_err llm_json_string_decode(const char *val, size_t len, struct llm_buf *out)
{
	if (len < 2 || val[0] != '"' || val[len - 1] != '"')
		return LLM_ERR_TYPE;
	const char *p = val + 1, *end = val + len - 1;
	enum llm_err e = llm_buf_reserve(out, (size_t)(end - p));
	if (e)
		return e;
	while (p < end) {
		const char *q = memchr(p, '\\', (size_t)(end - p));
		if (!q)
			q = end;
		if ((e = llm_buf_append(out, p, (size_t)(q - p))))
			return e;
		if (q == end)
			break;
		char c = q[1];
		char tmp[4];
		size_t tn = 1;
		p = q + 2;
		switch (c) {
		case 'b': tmp[0] = '\b'; break;
		case 'f': tmp[0] = '\f'; break;
		case 'n': tmp[0] = '\n'; break;
		case 'r': tmp[0] = '\r'; break;
		case 't': tmp[0] = '\t'; break;
		case 'u': {
			unsigned cp = 0;
			for (int k = 0; k < 4; k++)
				cp = cp << 4 | (unsigned)hexval((unsigned char)p[k]);
			p += 4;
			if (cp >= 0xD800 && cp <= 0xDBFF && p + 6 <= end) {
				unsigned lo = 0;
				for (int k = 0; k < 4; k++)
					lo = lo << 4 | (unsigned)hexval((unsigned char)p[2 + k]);
				cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
				p += 6;
			}
			tn = put_utf8(tmp, cp);
			break;
		}
		default: tmp[0] = c;
		}
		if ((e = llm_buf_append(out, tmp, tn)))
			return e;
	}
	return LLM_OK;
}

const char *llm_json_type_name(enum llm_json_type t)
{
	static const char *const names[] = {"null", "boolean", "boolean", "number",
					    "string", "array", "object"};
	return names[t];
}

const char *llm_json_type_phrase(enum llm_json_type t)
{
	static const char *const phrases[] = {"null",	     "a boolean", "a boolean", "a number",
					      "a string",    "an array",  "an object"};
	return phrases[t];
}
