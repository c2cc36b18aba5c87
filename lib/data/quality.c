#include "config.h"

#include "data/quality.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <utf8proc.h>

#include "core/hash.h"
#include "text/unicode.h"

static const char *const rule_names[LLM_QUALITY__NRULES] = {
    "gopher_quality", "gopher_repetition", "c4", "fineweb", "length", "regex",
};

/* How a threshold is held: the document fails when value < t (MIN), value > t (MAX),
 * value <= t (MIN_LE), value >= t (MAX_GE); PARAM and SWITCH values are used by the rule. */
enum pkind { K_MIN, K_MAX, K_MIN_LE, K_MAX_GE, K_PARAM, K_SWITCH };

/* The thresholds, grouped by rule; the enum below names each row. */
enum {
	GQ_MIN_WORDS,
	GQ_MAX_WORDS,
	GQ_MIN_AVG,
	GQ_MAX_AVG,
	GQ_HASH,
	GQ_ELLIPSIS,
	GQ_BULLET,
	GQ_END_ELLIPSIS,
	GQ_ALPHA,
	GQ_STOP,
	GR_PARA,
	GR_PARA_CHAR,
	GR_LINE,
	GR_LINE_CHAR,
	GR_TOP2,
	GR_TOP3,
	GR_TOP4,
	GR_DUP5,
	GR_DUP6,
	GR_DUP7,
	GR_DUP8,
	GR_DUP9,
	GR_DUP10,
	C4_MAX_WORD_LEN,
	C4_CITATIONS,
	C4_TERMINAL,
	C4_MIN_LINE_WORDS,
	C4_LOREM,
	C4_JAVASCRIPT,
	C4_CURLY,
	C4_POLICY,
	C4_MIN_SENTENCES,
	C4_REMOVE_LINES,
	FW_PUNCT,
	FW_PUNCT_EXCLUDE_ZERO,
	FW_SHORT,
	FW_SHORT_LEN,
	FW_CHAR_DUP,
	FW_LIST,
	LEN_MIN_CHARS,
	LEN_MAX_CHARS,
	LEN_MIN_WORDS,
	LEN_MAX_WORDS,
	NPARAMS
};

#define OFF NAN

static const struct param {
	enum llm_quality_rule rule;
	const char *name;
	double def;
	enum pkind kind;
} params[NPARAMS] = {
    {LLM_QUALITY_GOPHER_QUALITY, "min_words", 50, K_MIN},
    {LLM_QUALITY_GOPHER_QUALITY, "max_words", 100000, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "min_avg_word_length", 3, K_MIN},
    {LLM_QUALITY_GOPHER_QUALITY, "max_avg_word_length", 10, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "max_hash_word_ratio", 0.1, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "max_ellipsis_word_ratio", 0.1, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "max_bullet_lines_ratio", 0.9, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "max_ellipsis_lines_ratio", 0.3, K_MAX},
    {LLM_QUALITY_GOPHER_QUALITY, "min_alpha_words_ratio", 0.8, K_MIN},
    {LLM_QUALITY_GOPHER_QUALITY, "min_stop_words", 2, K_MIN},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_para_frac", 0.3, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_para_char_frac", 0.2, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_line_frac", 0.3, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_line_char_frac", 0.2, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "top_2_gram_frac", 0.20, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "top_3_gram_frac", 0.18, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "top_4_gram_frac", 0.16, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_5_gram_frac", 0.15, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_6_gram_frac", 0.14, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_7_gram_frac", 0.13, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_8_gram_frac", 0.12, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_9_gram_frac", 0.11, K_MAX},
    {LLM_QUALITY_GOPHER_REPETITION, "dup_10_gram_frac", 0.10, K_MAX},
    {LLM_QUALITY_C4, "max_word_length", 1000, K_PARAM},
    {LLM_QUALITY_C4, "remove_citations", 1, K_SWITCH},
    {LLM_QUALITY_C4, "terminal_punct", 1, K_SWITCH},
    {LLM_QUALITY_C4, "min_words_per_line", 3, K_PARAM},
    {LLM_QUALITY_C4, "lorem_ipsum", 1, K_SWITCH},
    {LLM_QUALITY_C4, "javascript", 1, K_SWITCH},
    {LLM_QUALITY_C4, "curly_bracket", 1, K_SWITCH},
    {LLM_QUALITY_C4, "policy", 1, K_SWITCH},
    {LLM_QUALITY_C4, "min_sentences", 5, K_MIN},
    {LLM_QUALITY_C4, "remove_lines", 1, K_SWITCH},
    {LLM_QUALITY_FINEWEB, "line_punct_ratio", 0.12, K_MIN_LE},
    {LLM_QUALITY_FINEWEB, "line_punct_exclude_zero", 0, K_SWITCH},
    {LLM_QUALITY_FINEWEB, "short_line_ratio", 0.67, K_MAX_GE},
    {LLM_QUALITY_FINEWEB, "short_line_length", 30, K_PARAM},
    {LLM_QUALITY_FINEWEB, "char_dup_ratio", 0.01, K_MAX_GE},
    {LLM_QUALITY_FINEWEB, "list_ratio", 0.3, K_MAX},
    {LLM_QUALITY_LENGTH, "min_chars", OFF, K_MIN},
    {LLM_QUALITY_LENGTH, "max_chars", OFF, K_MAX},
    {LLM_QUALITY_LENGTH, "min_words", 50, K_MIN},
    {LLM_QUALITY_LENGTH, "max_words", 100000, K_MAX},
};

struct tok {
	uint32_t off, len, cps; /* bytes into the text; length in bytes and in code points */
};

struct span {
	const char *p;
	uint32_t len;
};

/* An open-addressing set of byte spans, verified with memcmp, so equal means equal.  An
 * entry holds the index of the element's first occurrence; struct keys says where element i
 * lies, so entries stay 16 bytes. */
struct sent {
	uint64_t h; /* 0: empty */
	uint32_t first;
	uint32_t count;
};

struct spanset {
	struct sent *e;
	size_t alloc;	/* entries allocated */
	size_t mask;	/* entries in use - 1 */
	unsigned shift; /* 64 - log2(entries in use) */
};

enum keykind { KEY_SPANS, KEY_JOINED, KEY_CONCAT };

struct keys {
	enum keykind kind;
	const struct span *spans; /* KEY_SPANS */
	const char *base;	  /* joined or concat text */
	const size_t *cb;	  /* per-word byte offsets into concat */
	size_t g;		  /* n-gram length in words */
};

struct regex {
	char *src;
	pcre2_code *code;
	pcre2_match_data *md;
};

#define PW_TABLE 4096

struct llm_quality {
	double val[NPARAMS];
	enum llm_quality_rule order[LLM_QUALITY__NRULES];
	size_t norder;
	struct regex *re;
	size_t nre;
	/* scratch, reused */
	struct tok *toks;
	size_t ntoks, tokcap;
	bool toks_valid;
	struct span *spans;
	size_t nspans, spancap;
	struct spanset set;
	struct llm_buf joined, concat, c4out, c4line, c4low;
	uint64_t *hc, *hj; /* prefix hashes over concat and joined, per token */
	uint32_t *cp;	   /* prefix code-point counts per token */
	size_t *cb;	   /* prefix byte counts per token (offsets into concat) */
	size_t hcap;
	uint64_t pw[PW_TABLE + 1];
};

/* --- setup ------------------------------------------------------------------------------- */

#define HASH_BASE 0x100000001b3ULL

enum llm_err llm_quality_new(struct llm_quality **out)
{
	struct llm_quality *q = calloc(1, sizeof *q);
	if (!q)
		return LLM_ERR_NOMEM;
	for (size_t i = 0; i < NPARAMS; i++)
		q->val[i] = params[i].def;
	q->order[0] = LLM_QUALITY_GOPHER_QUALITY;
	q->order[1] = LLM_QUALITY_GOPHER_REPETITION;
	q->norder = 2;
	llm_buf_init(&q->joined, 0);
	llm_buf_init(&q->concat, 0);
	llm_buf_init(&q->c4out, 0);
	llm_buf_init(&q->c4line, 0);
	llm_buf_init(&q->c4low, 0);
	q->pw[0] = 1;
	for (size_t i = 1; i <= PW_TABLE; i++)
		q->pw[i] = q->pw[i - 1] * HASH_BASE;
	*out = q;
	return LLM_OK;
}

void llm_quality_free(struct llm_quality *q)
{
	if (!q)
		return;
	for (size_t i = 0; i < q->nre; i++) {
		free(q->re[i].src);
		pcre2_match_data_free(q->re[i].md);
		pcre2_code_free(q->re[i].code);
	}
	free(q->re);
	free(q->toks);
	free(q->spans);
	free(q->set.e);
	free(q->hc);
	free(q->hj);
	free(q->cp);
	free(q->cb);
	llm_buf_free(&q->joined);
	llm_buf_free(&q->concat);
	llm_buf_free(&q->c4out);
	llm_buf_free(&q->c4line);
	llm_buf_free(&q->c4low);
	free(q);
}

static int rule_by_name(const char *s, size_t len)
{
	for (int i = 0; i < LLM_QUALITY__NRULES; i++)
		if (strlen(rule_names[i]) == len && !memcmp(rule_names[i], s, len))
			return i;
	return -1;
}

enum llm_err llm_quality_use(struct llm_quality *q, const char *list, struct llm_diag *d)
{
	q->norder = 0;
	const char *p = list;
	while (p && *p) {
		const char *e = strchr(p, ',');
		size_t len = e ? (size_t)(e - p) : strlen(p);
		int r = rule_by_name(p, len);
		if (r < 0)
			return llm_diag_set(
			    d, LLM_ERR_USAGE, NULL, 0,
			    "unknown rule '%.*s' (gopher_quality, gopher_repetition, "
			    "c4, fineweb, length, regex)",
			    (int)len, p);
		if (!llm_quality_uses(q, (enum llm_quality_rule)r))
			q->order[q->norder++] = (enum llm_quality_rule)r;
		p = e ? e + 1 : NULL;
	}
	return LLM_OK;
}

bool llm_quality_uses(const struct llm_quality *q, enum llm_quality_rule r)
{
	for (size_t i = 0; i < q->norder; i++)
		if (q->order[i] == r)
			return true;
	return false;
}

/* "name1, name2, ..." of one rule's thresholds, for an error message. */
static void list_params(int rule, char *out, size_t outsz)
{
	size_t at = 0;
	out[0] = '\0';
	for (size_t i = 0; i < NPARAMS && at < outsz; i++)
		if ((int)params[i].rule == rule) {
			int k =
			    snprintf(out + at, outsz - at, "%s%s", at ? ", " : "", params[i].name);
			if (k < 0)
				break;
			at += (size_t)k;
		}
	if (rule == LLM_QUALITY_GOPHER_QUALITY && at < outsz)
		snprintf(out + at, outsz - at, ", max_symbol_word_ratio");
}

static bool parse_value(const char *s, enum pkind kind, double *out)
{
	if (!strcmp(s, "off") || !strcmp(s, "none")) {
		*out = OFF;
		return true;
	}
	if (!strcmp(s, "true") || !strcmp(s, "on")) {
		*out = 1;
		return kind == K_SWITCH;
	}
	if (!strcmp(s, "false")) {
		*out = 0;
		return kind == K_SWITCH;
	}
	char *end;
	double v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return false;
	if (kind == K_SWITCH && v != 0 && v != 1)
		return false;
	*out = v;
	return true;
}

enum llm_err llm_quality_set(struct llm_quality *q, const char *a, struct llm_diag *d)
{
	const char *eq = strchr(a, '=');
	const char *dot = strchr(a, '.');
	if (!eq || !dot || dot > eq)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "--set: expected RULE.NAME=VALUE, not '%s'", a);
	int rule = rule_by_name(a, (size_t)(dot - a));
	if (rule < 0 || rule == LLM_QUALITY_REGEX)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "--set: unknown rule '%.*s' (gopher_quality, "
				    "gopher_repetition, c4, fineweb, length)",
				    (int)(dot - a), a);
	const char *name = dot + 1;
	size_t nlen = (size_t)(eq - name);
	bool symbol = rule == LLM_QUALITY_GOPHER_QUALITY && nlen == 21 &&
		      !memcmp(name, "max_symbol_word_ratio", 21);
	for (size_t i = 0; i < NPARAMS; i++) {
		bool hit = (int)params[i].rule == rule && strlen(params[i].name) == nlen &&
			   !memcmp(params[i].name, name, nlen);
		if (symbol)
			hit = i == GQ_HASH;
		if (!hit)
			continue;
		double v;
		if (!parse_value(eq + 1, params[i].kind, &v))
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "--set %.*s: '%s' is not %s",
					    (int)(eq - a), a, eq + 1,
					    params[i].kind == K_SWITCH ? "true, false or off"
								       : "a number or off");
		q->val[i] = v;
		if (symbol)
			q->val[GQ_ELLIPSIS] = v;
		return LLM_OK;
	}
	char names[400];
	list_params(rule, names, sizeof names);
	return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "--set: unknown threshold '%.*s' (%s: %s)",
			    (int)(eq - a), a, rule_names[rule], names);
}

enum llm_err llm_quality_add_regex(struct llm_quality *q, const char *pattern, struct llm_diag *d)
{
	int err;
	PCRE2_SIZE off;
	pcre2_code *code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
					 PCRE2_UTF | PCRE2_UCP, &err, &off, NULL);
	if (!code) {
		PCRE2_UCHAR msg[256];
		pcre2_get_error_message(err, msg, sizeof msg);
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "--regex '%s': %s at offset %zu",
				    pattern, (char *)msg, (size_t)off);
	}
	pcre2_jit_compile(code, PCRE2_JIT_COMPLETE); /* without JIT it still matches */
	struct regex *re = realloc(q->re, (q->nre + 1) * sizeof *re);
	pcre2_match_data *md = pcre2_match_data_create_from_pattern(code, NULL);
	char *src = strdup(pattern);
	if (!re || !md || !src) {
		if (re)
			q->re = re;
		pcre2_match_data_free(md);
		pcre2_code_free(code);
		free(src);
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	q->re = re;
	q->re[q->nre++] = (struct regex){src, code, md};
	if (!llm_quality_uses(q, LLM_QUALITY_REGEX))
		q->order[q->norder++] = LLM_QUALITY_REGEX;
	return LLM_OK;
}

const char *llm_quality_regex(const struct llm_quality *q, int i)
{
	return i >= 0 && (size_t)i < q->nre ? q->re[i].src : NULL;
}

enum llm_err llm_quality_describe(struct llm_buf *out)
{
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < NPARAMS && !e; i++) {
		if (isnan(params[i].def))
			e = llm_buf_printf(out, "%s.%s=off\n", rule_names[params[i].rule],
					   params[i].name);
		else
			e = llm_buf_printf(out, "%s.%s=%g\n", rule_names[params[i].rule],
					   params[i].name, params[i].def);
	}
	return e;
}

void llm_quality_result_free(struct llm_quality_result *res)
{
	free(res->hits);
	res->hits = NULL;
	res->nhits = res->cap = 0;
}

/* --- text helpers -------------------------------------------------------------------------- */

static double ratio(double num, double den)
{
	return num / (den > 0 ? den : 1);
}

/* Python's str.strip(): trim isspace() characters at both ends of [*a, *b). */
static void py_strip(const char *s, size_t *a, size_t *b, bool left, bool right)
{
	while (left && *a < *b) {
		uint32_t cp;
		size_t l = llm_unicode_decode(s + *a, *b - *a, &cp);
		if (!llm_unicode_is_space(cp))
			break;
		*a += l;
	}
	while (right && *b > *a) {
		size_t k = *b - 1;
		while (k > *a && ((unsigned char)s[k] & 0xC0) == 0x80)
			k--;
		uint32_t cp;
		llm_unicode_decode(s + k, *b - k, &cp);
		if (!llm_unicode_is_space(cp))
			break;
		*b = k;
	}
}

/* The next line of Python's str.splitlines() from *pos; false when none is left. */
static bool next_line(const char *s, size_t n, size_t *pos, size_t *a, size_t *b)
{
	size_t i = *pos;
	if (i >= n)
		return false;
	*a = i;
	while (i < n) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			if ((c >= 0x0A && c <= 0x0D) || (c >= 0x1C && c <= 0x1E)) {
				*b = i;
				*pos = i + 1 + (c == '\r' && i + 1 < n && s[i + 1] == '\n');
				return true;
			}
			i++;
			continue;
		}
		uint32_t cp;
		size_t l = llm_unicode_decode(s + i, n - i, &cp);
		if (llm_unicode_is_line_break(cp)) {
			*b = i;
			*pos = i + l;
			return true;
		}
		i += l;
	}
	*b = n;
	*pos = n;
	return true;
}

static bool ends_with(const char *s, size_t a, size_t b, const char *suffix)
{
	size_t k = strlen(suffix);
	return b - a >= k && !memcmp(s + b - k, suffix, k);
}

/* Non-overlapping occurrences, as Python's str.count. */
static size_t count_str(const char *s, size_t n, const char *needle)
{
	size_t k = strlen(needle), c = 0;
	const char *p = s, *end = s + n;
	while ((size_t)(end - p) >= k && (p = memmem(p, (size_t)(end - p), needle, k))) {
		c++;
		p += k;
	}
	return c;
}

static bool contains(const char *s, size_t n, const char *needle)
{
	return memmem(s, n, needle, strlen(needle)) != NULL;
}

/* --- words ------------------------------------------------------------------------------- */

static bool always_split(uint32_t cp)
{
	switch (cp) {
	case '(':
	case ')':
	case '[':
	case ']':
	case '{':
	case '}':
	case '<':
	case '>':
	case '"':
	case ';':
	case '@':
	case '#':
	case '$':
	case '%':
	case '&':
	case '?':
	case '!':
	case 0x201C:
	case 0x201D:
	case 0xAB:
	case 0xBB:
	case 0x2026:
		return true;
	}
	return false;
}

static enum llm_err push_tok(struct llm_quality *q, const char *s, size_t a, size_t b)
{
	if (q->ntoks == q->tokcap) {
		size_t cap = q->tokcap ? q->tokcap * 2 : 1024;
		struct tok *t = realloc(q->toks, cap * sizeof *t);
		if (!t)
			return LLM_ERR_NOMEM;
		q->toks = t;
		q->tokcap = cap;
	}
	q->toks[q->ntoks++] =
	    (struct tok){(uint32_t)a, (uint32_t)(b - a), (uint32_t)llm_unicode_count(s + a, b - a)};
	return LLM_OK;
}

/* Whether [q, b) holds only characters that are always tokens of their own. */
static bool tail_closing(const char *s, size_t q, size_t b)
{
	while (q < b) {
		uint32_t cp;
		q += llm_unicode_decode(s + q, b - q, &cp);
		if (!always_split(cp))
			return false;
	}
	return true;
}

/* A piece [p, q) between split points of a chunk that ends at b. */
static enum llm_err flush_piece(struct llm_quality *q, const char *s, size_t p, size_t e, size_t b)
{
	if (p >= e)
		return LLM_OK;
	bool period = false;
	if (s[e - 1] == '.' && e - p > 1 && !memchr(s + p, '.', e - 1 - p) &&
	    tail_closing(s, e, b)) {
		period = true;
		e--;
	}
	static const char *const sfx[] = {"n't", "N'T", "'ll", "'LL", "'re", "'RE", "'ve", "'VE",
					  "'s",	 "'S",	"'m",  "'M",  "'d",  "'D",  "'"};
	static const unsigned char sfx_len[] = {3, 3, 3, 3, 3, 3, 3, 3, 2, 2, 2, 2, 2, 2, 1};
	size_t cut = e;
	/* Every ending contains an apostrophe: most words need no look at the list. */
	for (size_t i = 0; memchr(s + p, '\'', e - p) && i < sizeof sfx / sizeof *sfx; i++) {
		size_t k = sfx_len[i];
		if (e - p > k && !memcmp(s + e - k, sfx[i], k) && s[e - k - 1] != '\'') {
			cut = e - k;
			break;
		}
	}
	enum llm_err err = push_tok(q, s, p, cut);
	if (!err && cut < e)
		err = push_tok(q, s, cut, e);
	if (!err && period)
		err = push_tok(q, s, e, e + 1);
	return err;
}

static enum llm_err tokenize_chunk(struct llm_quality *q, const char *s, size_t a, size_t b)
{
	size_t ps = a, i = a;
	enum llm_err e = LLM_OK;
	while (i < b && !e) {
		unsigned char c = (unsigned char)s[i];
		size_t len = 1;
		uint32_t cp = c;
		if (c >= 0x80)
			len = llm_unicode_decode(s + i, b - i, &cp);
		size_t tl = 0;
		if (always_split(cp))
			tl = len;
		else if ((c == ',' || c == ':') &&
			 !(i + 1 < b && s[i + 1] >= '0' && s[i + 1] <= '9'))
			tl = 1;
		else if (c == '.' && i + 2 < b + 0 && s[i + 1] == '.' && s[i + 2] == '.')
			tl = 3;
		else if (c == '-' && i + 1 < b && s[i + 1] == '-')
			tl = 2;
		if (!tl) {
			i += len;
			continue;
		}
		e = flush_piece(q, s, ps, i, b);
		if (!e)
			e = push_tok(q, s, i, i + tl);
		i += tl;
		ps = i;
	}
	if (!e)
		e = flush_piece(q, s, ps, b, b);
	return e;
}

static enum llm_err tokenize(struct llm_quality *q, const char *s, size_t n)
{
	if (q->toks_valid)
		return LLM_OK;
	q->ntoks = 0;
	size_t i = 0;
	enum llm_err e = LLM_OK;
	while (i < n && !e) {
		uint32_t cp;
		size_t l = llm_unicode_decode(s + i, n - i, &cp);
		if (llm_unicode_is_space(cp)) {
			i += l;
			continue;
		}
		size_t a = i;
		i += l;
		while (i < n) {
			unsigned char c = (unsigned char)s[i];
			if (c > ' ' && c < 0x80) {
				i++;
				continue;
			}
			l = llm_unicode_decode(s + i, n - i, &cp);
			if (llm_unicode_is_space(cp))
				break;
			i += l;
		}
		e = tokenize_chunk(q, s, a, i);
	}
	q->toks_valid = !e;
	return e;
}

enum llm_err llm_quality_tokenize(struct llm_quality *q, const char *text, size_t n,
				  struct llm_buf *out)
{
	q->toks_valid = false;
	enum llm_err e = tokenize(q, text, n);
	for (size_t i = 0; i < q->ntoks && !e; i++) {
		if (i)
			e = llm_buf_putc(out, ' ');
		if (!e)
			e = llm_buf_append(out, text + q->toks[i].off, q->toks[i].len);
	}
	q->toks_valid = false;
	return e;
}

/* --- span sets ----------------------------------------------------------------------------- */

static enum llm_err set_reset(struct spanset *s, size_t n)
{
	size_t cap = 64;
	unsigned bits = 6;
	while (cap < 2 * n) {
		cap *= 2;
		bits++;
	}
	s->shift = 64 - bits;
	if (cap > s->alloc) {
		struct sent *e = realloc(s->e, cap * sizeof *e);
		if (!e)
			return LLM_ERR_NOMEM;
		s->e = e;
		s->alloc = cap;
	}
	memset(s->e, 0, cap * sizeof *s->e);
	s->mask = cap - 1;
	return LLM_OK;
}

static inline void key_at(const struct keys *k, size_t i, const char **p, size_t *len)
{
	switch (k->kind) {
	case KEY_SPANS:
		*p = k->spans[i].p;
		*len = k->spans[i].len;
		return;
	case KEY_JOINED:
		*p = k->base + k->cb[i] + i;
		*len = k->cb[i + k->g] - k->cb[i] + k->g - 1;
		return;
	case KEY_CONCAT:
		*p = k->base + k->cb[i];
		*len = k->cb[i + k->g] - k->cb[i];
		return;
	}
}

/* Find or add element idx; a new entry has count 0.  Never full: sized for 2x the
 * elements. */
static inline struct sent *set_add(struct spanset *s, const struct keys *k, uint64_t h, size_t idx)
{
	h |= 1; /* 0 marks an empty slot */
	/* The high bits of a multiplicative mix: the low bits of a polynomial hash mod 2^64
	 * depend on the low bits of the input only and would cluster. */
	size_t i = (size_t)((h * 0x9E3779B97F4A7C15ULL) >> s->shift);
	const char *p = NULL, *ep = NULL;
	size_t len = 0, elen = 0;
	for (;;) {
		struct sent *e = &s->e[i];
		if (!e->h) {
			*e = (struct sent){h, (uint32_t)idx, 0};
			return e;
		}
		if (e->h == h) {
			if (!p)
				key_at(k, idx, &p, &len);
			key_at(k, e->first, &ep, &elen);
			if (elen == len && !memcmp(ep, p, len))
				return e;
		}
		i = (i + 1) & s->mask;
	}
}

/* datatrove's find_duplicates: how many elements, and how many code points in them, were
 * seen before. */
static enum llm_err find_duplicates(struct llm_quality *q, const struct span *sp, size_t n,
				    size_t *dups, size_t *dup_chars)
{
	enum llm_err e = set_reset(&q->set, n);
	if (e)
		return e;
	struct keys k = {KEY_SPANS, sp, NULL, NULL, 0};
	*dups = *dup_chars = 0;
	for (size_t i = 0; i < n; i++) {
		struct sent *en = set_add(&q->set, &k, llm_hash64(sp[i].p, sp[i].len, 0), i);
		if (en->count++) {
			(*dups)++;
			*dup_chars += llm_unicode_count(sp[i].p, sp[i].len);
		}
	}
	return LLM_OK;
}

static enum llm_err push_span(struct llm_quality *q, const char *p, size_t len)
{
	if (q->nspans == q->spancap) {
		size_t cap = q->spancap ? q->spancap * 2 : 256;
		struct span *s = realloc(q->spans, cap * sizeof *s);
		if (!s)
			return LLM_ERR_NOMEM;
		q->spans = s;
		q->spancap = cap;
	}
	q->spans[q->nspans++] = (struct span){p, (uint32_t)len};
	return LLM_OK;
}

/* --- results ------------------------------------------------------------------------------- */

struct run {
	struct llm_quality *q;
	enum llm_quality_mode mode;
	struct llm_quality_result *res;
	enum llm_err err;
};

static bool add_hit(struct run *r, enum llm_quality_rule rule, const char *check, double v,
		    double t, int pattern)
{
	struct llm_quality_result *res = r->res;
	if (res->nhits == res->cap) {
		size_t cap = res->cap ? res->cap * 2 : 8;
		struct llm_quality_hit *h = realloc(res->hits, cap * sizeof *h);
		if (!h) {
			r->err = LLM_ERR_NOMEM;
			return true;
		}
		res->hits = h;
		res->cap = cap;
	}
	res->hits[res->nhits++] =
	    (struct llm_quality_hit){rule, rule_names[rule], check, v, t, pattern};
	return r->mode == LLM_QUALITY_FIRST;
}

/* Hold value v to threshold i; true when the run should stop here. */
static bool check(struct run *r, int i, double v)
{
	double t = r->q->val[i];
	if (isnan(t))
		return false;
	bool fail = false;
	switch (params[i].kind) {
	case K_MIN:
		fail = v < t;
		break;
	case K_MAX:
		fail = v > t;
		break;
	case K_MIN_LE:
		fail = v <= t;
		break;
	case K_MAX_GE:
		fail = v >= t;
		break;
	default:
		break;
	}
	return fail && add_hit(r, params[i].rule, params[i].name, v, t, -1);
}

static bool on(const struct llm_quality *q, int i)
{
	return !isnan(q->val[i]) && q->val[i] != 0;
}

/* --- the rules ----------------------------------------------------------------------------- */

static const char *const stop_words[] = {"the", "be", "to", "of", "and", "that", "have", "with"};
static const size_t stop_len[] = {3, 2, 2, 2, 3, 4, 4, 4};

/* datatrove's PUNCTUATION_SET: ASCII punctuation, the controls but TAB and LF, and a few
 * dozen CJK and typographic marks. */
static bool punct_char(uint32_t cp)
{
	if (cp < 0x80)
		return (cp < 0x20 && cp != 0x09 && cp != 0x0A) || cp == 0x7F ||
		       (cp > 0x20 && cp < 0x7F && !(cp >= '0' && cp <= '9') &&
			!((cp | 0x20) >= 'a' && (cp | 0x20) <= 'z'));
	if (cp < 0xA0)
		return true;
	switch (cp) {
	case 0xAB:
	case 0xB4:
	case 0xBB:
	case 0x2013:
	case 0x2014:
	case 0x2019:
	case 0x201C:
	case 0x201D:
	case 0x201E:
	case 0x2026:
	case 0x2236:
	case 0x2501:
	case 0x25BA:
	case 0x3001:
	case 0x3002:
	case 0x3008:
	case 0x3009:
	case 0x300A:
	case 0x300B:
	case 0x300C:
	case 0x300D:
	case 0x3010:
	case 0x3011:
	case 0xFF01:
	case 0xFF05:
	case 0xFF08:
	case 0xFF09:
	case 0xFF0C:
	case 0xFF0E:
	case 0xFF11:
	case 0xFF1A:
	case 0xFF1B:
	case 0xFF1F:
	case 0xFF5E:
		return true;
	}
	return false;
}

static void gopher_quality(struct run *r, const char *s, size_t n)
{
	struct llm_quality *q = r->q;
	if ((r->err = tokenize(q, s, n)))
		return;
	size_t nw = q->ntoks, ns = 0, ns_chars = 0, alpha = 0, stops = 0;
	for (size_t i = 0; i < nw; i++) {
		const struct tok *t = &q->toks[i];
		const char *w = s + t->off;
		bool symbol_only = true, has_alpha = false;
		for (size_t k = 0; k < t->len;) {
			uint32_t cp;
			k += llm_unicode_decode(w + k, t->len - k, &cp);
			symbol_only &= punct_char(cp);
			has_alpha |= llm_unicode_is_alpha(cp);
		}
		if (!symbol_only) {
			ns++;
			ns_chars += t->cps;
		}
		alpha += has_alpha;
		if (t->len >= 2 && t->len <= 4)
			for (size_t k = 0; k < sizeof stop_words / sizeof *stop_words; k++)
				if (stop_len[k] == t->len && !memcmp(stop_words[k], w, t->len)) {
					stops++;
					break;
				}
	}
	if (check(r, GQ_MIN_WORDS, (double)ns) || check(r, GQ_MAX_WORDS, (double)ns))
		return;
	if (ns && (check(r, GQ_MIN_AVG, (double)ns_chars / (double)ns) ||
		   check(r, GQ_MAX_AVG, (double)ns_chars / (double)ns)))
		return;
	if (check(r, GQ_HASH, ratio((double)count_str(s, n, "#"), (double)nw)))
		return;
	double ell = (double)(count_str(s, n, "...") + count_str(s, n, "\xe2\x80\xa6"));
	if (check(r, GQ_ELLIPSIS, ratio(ell, (double)nw)))
		return;
	size_t lines = 0, bullets = 0, end_ell = 0, pos = 0, a, b;
	while (next_line(s, n, &pos, &a, &b)) {
		lines++;
		size_t la = a, lb = b;
		py_strip(s, &la, &lb, true, false);
		bullets += ends_with(s, la, la + (lb - la >= 3 ? 3 : lb - la), "\xe2\x80\xa2") ||
			   (la < lb && s[la] == '-');
		la = a, lb = b;
		py_strip(s, &la, &lb, false, true);
		end_ell += ends_with(s, la, lb, "...") || ends_with(s, la, lb, "\xe2\x80\xa6");
	}
	if (check(r, GQ_BULLET, ratio((double)bullets, (double)lines)) ||
	    check(r, GQ_END_ELLIPSIS, ratio((double)end_ell, (double)lines)))
		return;
	if (check(r, GQ_ALPHA, ratio((double)alpha, (double)nw)))
		return;
	check(r, GQ_STOP, (double)stops);
}

static enum llm_err ensure_prefix(struct llm_quality *q, size_t n)
{
	if (n <= q->hcap)
		return LLM_OK;
	size_t cap = n + n / 2 + 16;
	uint64_t *hc = realloc(q->hc, cap * sizeof *hc);
	if (hc)
		q->hc = hc;
	uint64_t *hj = realloc(q->hj, cap * sizeof *hj);
	if (hj)
		q->hj = hj;
	uint32_t *cp = realloc(q->cp, cap * sizeof *cp);
	if (cp)
		q->cp = cp;
	size_t *cb = realloc(q->cb, cap * sizeof *cb);
	if (cb)
		q->cb = cb;
	if (!hc || !hj || !cp || !cb)
		return LLM_ERR_NOMEM;
	q->hcap = cap;
	return LLM_OK;
}

static uint64_t pw(const struct llm_quality *q, size_t k)
{
	if (k <= PW_TABLE)
		return q->pw[k];
	uint64_t r = 1, b = HASH_BASE;
	while (k) {
		if (k & 1)
			r *= b;
		b *= b;
		k >>= 1;
	}
	return r;
}

/* Build the words joined by spaces and joined by nothing, with polynomial prefix hashes
 * (mod 2^64) at each word boundary, so an n-gram's hash costs O(1); equal hashes are still
 * confirmed byte for byte.  hc[k]: concat[0, cs(k)); hj[k]: joined up to the end of word
 * k - 1; cp[k]: code points in words 0..k-1. */
static enum llm_err build_ngrams(struct llm_quality *q, const char *s)
{
	size_t nt = q->ntoks;
	enum llm_err e = ensure_prefix(q, nt + 1);
	llm_buf_clear(&q->joined);
	llm_buf_clear(&q->concat);
	size_t bytes = 0;
	for (size_t i = 0; i < nt; i++)
		bytes += q->toks[i].len;
	if (!e)
		e = llm_buf_reserve(&q->joined, bytes + nt);
	if (!e)
		e = llm_buf_reserve(&q->concat, bytes);
	if (e)
		return e;
	q->hc[0] = q->hj[0] = 0;
	q->cp[0] = 0;
	q->cb[0] = 0;
	for (size_t i = 0; i < nt; i++) {
		const struct tok *t = &q->toks[i];
		const unsigned char *w = (const unsigned char *)s + t->off;
		uint64_t h = 0;
		for (size_t k = 0; k < t->len; k++)
			h = h * HASH_BASE + w[k];
		q->hc[i + 1] = q->hc[i] * pw(q, t->len) + h;
		uint64_t before = i ? q->hj[i] * HASH_BASE + ' ' : 0;
		q->hj[i + 1] = before * pw(q, t->len) + h;
		q->cp[i + 1] = q->cp[i] + t->cps;
		q->cb[i + 1] = q->cb[i] + t->len;
		if (i)
			q->joined.data[q->joined.len++] = ' ';
		memcpy(q->joined.data + q->joined.len, w, t->len);
		q->joined.len += t->len;
		memcpy(q->concat.data + q->concat.len, w, t->len);
		q->concat.len += t->len;
	}
	return LLM_OK;
}

/* The hash of words [i, i + g) joined by spaces, and where that lies in q->joined. */
static uint64_t joined_hash(const struct llm_quality *q, size_t i, size_t g, size_t *start,
			    size_t *len)
{
	*start = q->cb[i] + i;
	*len = q->cb[i + g] - q->cb[i] + g - 1;
	uint64_t before = i ? q->hj[i] * HASH_BASE + ' ' : 0;
	return q->hj[i + g] - before * pw(q, *len);
}

static uint64_t concat_hash(const struct llm_quality *q, size_t i, size_t g)
{
	return q->hc[i + g] - q->hc[i] * pw(q, q->cb[i + g] - q->cb[i]);
}

static void gopher_repetition(struct run *r, const char *s, size_t n)
{
	struct llm_quality *q = r->q;
	double text_len = (double)llm_unicode_count(s, n);
	size_t dups, dup_chars;
	/* Paragraphs: the stripped text split at runs of two or more newlines. */
	size_t a = 0, b = n;
	py_strip(s, &a, &b, true, true);
	q->nspans = 0;
	for (size_t i = a;;) {
		const char *p = i < b ? memmem(s + i, b - i, "\n\n", 2) : NULL;
		size_t end = p ? (size_t)(p - s) : b;
		if ((r->err = push_span(q, s + i, end - i)))
			return;
		if (!p)
			break;
		i = end;
		while (i < b && s[i] == '\n')
			i++;
	}
	if ((r->err = find_duplicates(q, q->spans, q->nspans, &dups, &dup_chars)))
		return;
	if (check(r, GR_PARA, ratio((double)dups, (double)q->nspans)) ||
	    check(r, GR_PARA_CHAR, ratio((double)dup_chars, text_len)))
		return;
	/* Lines: the text split at runs of newlines (empty ends included). */
	q->nspans = 0;
	for (size_t i = 0;;) {
		const char *p = i < n ? memchr(s + i, '\n', n - i) : NULL;
		size_t end = p ? (size_t)(p - s) : n;
		if ((r->err = push_span(q, s + i, end - i)))
			return;
		if (!p)
			break;
		i = end;
		while (i < n && s[i] == '\n')
			i++;
	}
	if ((r->err = find_duplicates(q, q->spans, q->nspans, &dups, &dup_chars)))
		return;
	if (check(r, GR_LINE, ratio((double)dups, (double)q->nspans)) ||
	    check(r, GR_LINE_CHAR, ratio((double)dup_chars, text_len)))
		return;
	if ((r->err = tokenize(q, s, n)) || (r->err = build_ngrams(q, s)))
		return;
	size_t nt = q->ntoks;
	/* Top n-grams (words joined by spaces): the most frequent one, the first seen among
	 * equals (Counter.most_common), times its length in code points. */
	for (size_t g = 2; g <= 4; g++) {
		if (nt < g)
			continue;
		size_t count = nt - g + 1;
		if ((r->err = set_reset(&q->set, count)))
			return;
		struct sent *best = NULL;
		struct keys k = {KEY_JOINED, NULL, q->joined.data, q->cb, g};
		for (size_t i = 0; i < count; i++) {
			size_t st, len;
			uint64_t h = joined_hash(q, i, g, &st, &len);
			struct sent *e = set_add(&q->set, &k, h, i);
			e->count++;
			if (!best || e->count > best->count ||
			    (e->count == best->count && e->first < best->first))
				best = e;
		}
		size_t f = best->first;
		double chars = (double)(q->cp[f + g] - q->cp[f] + g - 1) * best->count;
		if (check(r, GR_TOP2 + (int)g - 2, ratio(chars, text_len)))
			return;
	}
	/* Duplicated n-grams (words joined by nothing, as datatrove's find_all_duplicate): a
	 * repeat counts its characters and skips past itself. */
	for (size_t g = 5; g <= 10; g++) {
		size_t rep = 0;
		if (nt >= g) {
			if ((r->err = set_reset(&q->set, nt - g + 1)))
				return;
			struct keys k = {KEY_CONCAT, NULL, q->concat.data, q->cb, g};
			for (size_t i = 0; i + g <= nt;) {
				struct sent *e = set_add(&q->set, &k, concat_hash(q, i, g), i);
				if (e->count) {
					rep += q->cp[i + g] - q->cp[i];
					i += g;
				} else {
					e->count = 1;
					i++;
				}
			}
		}
		if (check(r, GR_DUP5 + (int)g - 5, ratio((double)rep, text_len)))
			return;
	}
}

/* Sentences in one line, standing in for NLTK's punkt: one, plus one for each run of
 * . ! ? (and closing quotes or brackets) followed by whitespace and a character that is not
 * a lowercase letter. */
static size_t count_sentences(const char *s, size_t n)
{
	if (!n)
		return 0;
	size_t k = 1;
	for (size_t i = 0; i < n; i++) {
		if (s[i] != '.' && s[i] != '!' && s[i] != '?')
			continue;
		size_t j = i;
		while (j < n && (s[j] == '.' || s[j] == '!' || s[j] == '?'))
			j++;
		while (j < n && (s[j] == '"' || s[j] == '\'' || s[j] == ')' || s[j] == ']'))
			j++;
		size_t sp = j;
		while (j < n) {
			uint32_t cp;
			size_t l = llm_unicode_decode(s + j, n - j, &cp);
			if (!llm_unicode_is_space(cp))
				break;
			j += l;
		}
		if (j > sp && j < n) {
			uint32_t cp;
			llm_unicode_decode(s + j, n - j, &cp);
			if (utf8proc_category((utf8proc_int32_t)cp) != UTF8PROC_CATEGORY_LL)
				k++;
		}
		i = j - 1;
	}
	return k;
}

/* Remove Wikipedia citations: [123], [], [edit], [citation needed]. */
static enum llm_err strip_citations(const char *s, size_t n, struct llm_buf *o)
{
	llm_buf_clear(o);
	enum llm_err e = llm_buf_reserve(o, n);
	size_t i = 0, done = 0;
	while (!e && i < n) {
		const char *p = memchr(s + i, '[', n - i);
		if (!p)
			break;
		size_t at = (size_t)(p - s), j = at + 1;
		while (j < n) {
			uint32_t cp;
			size_t l = llm_unicode_decode(s + j, n - j, &cp);
			if (!llm_unicode_is_digit(cp))
				break;
			j += l;
		}
		size_t end = 0;
		if (j < n && s[j] == ']')
			end = j + 1;
		else if (n - at >= 6 && !memcmp(s + at, "[edit]", 6))
			end = at + 6;
		else if (n - at >= 17 && !memcmp(s + at, "[citation needed]", 17))
			end = at + 17;
		if (!end) {
			i = at + 1;
			continue;
		}
		e = llm_buf_append(o, s + done, at - done);
		done = i = end;
	}
	if (!e)
		e = llm_buf_append(o, s + done, n - done);
	return e;
}

static const char *const policy_phrases[] = {
    "terms of use", "privacy policy", "cookie policy",
    "uses cookies", "use of cookies", "use cookies",
};

/* C4: drop lines, fail documents; leaves the kept lines joined in q->c4out. */
static void c4(struct run *r, const char *s, size_t n, uint64_t *removed)
{
	struct llm_quality *q = r->q;
	llm_buf_clear(&q->c4out);
	size_t pos = 0, a, b, sentences = 0, lorem = 0, curly = 0, total = 0, kept = 0;
	double max_word = q->val[C4_MAX_WORD_LEN], min_words = q->val[C4_MIN_LINE_WORDS];
	while (next_line(s, n, &pos, &a, &b)) {
		total++;
		py_strip(s, &a, &b, true, true);
		/* Words by whitespace (str.split), and the longest one. */
		size_t words = 0, longest = 0;
		for (size_t i = a; i < b;) {
			uint32_t cp;
			size_t l = llm_unicode_decode(s + i, b - i, &cp);
			if (llm_unicode_is_space(cp)) {
				i += l;
				continue;
			}
			size_t len = 0;
			while (i < b) {
				unsigned char ch = (unsigned char)s[i];
				if (ch > ' ' && ch < 0x7F) { /* printable ASCII: never a space */
					len++;
					i++;
					continue;
				}
				l = llm_unicode_decode(s + i, b - i, &cp);
				if (llm_unicode_is_space(cp))
					break;
				len++;
				i += l;
			}
			words++;
			if (len > longest)
				longest = len;
		}
		if (!isnan(max_word) && max_word >= 0 && (double)longest > max_word)
			continue;
		const char *line = s + a;
		size_t len = b - a;
		if (on(q, C4_CITATIONS)) {
			if ((r->err = strip_citations(line, len, &q->c4line)))
				return;
			line = q->c4line.data;
			len = q->c4line.len;
		}
		if (on(q, C4_TERMINAL)) {
			char last = len ? line[len - 1] : 0;
			bool term = last == '.' || last == '?' || last == '!' || last == '"' ||
				    last == '\'';
			if (!term || ends_with(line, 0, len, "..."))
				continue;
		}
		if (!isnan(min_words) && min_words >= 0 && (double)words < min_words)
			continue;
		/* datatrove lowercases the line; only ASCII phrases are looked for, so folding
		 * ASCII is the same. */
		llm_buf_clear(&q->c4low);
		if ((r->err = llm_buf_append(&q->c4low, line, len)))
			return;
		for (size_t i = 0; i < len; i++)
			if (q->c4low.data[i] >= 'A' && q->c4low.data[i] <= 'Z')
				q->c4low.data[i] += 32;
		const char *low = q->c4low.data;
		if (on(q, C4_LOREM) && contains(low, len, "lorem ipsum")) {
			if (++lorem == 1 &&
			    add_hit(r, LLM_QUALITY_C4, params[C4_LOREM].name, 1, 0, -1))
				return;
		}
		if (on(q, C4_JAVASCRIPT) && contains(low, len, "javascript"))
			continue;
		if (on(q, C4_CURLY) && memchr(line, '{', len)) {
			if (++curly == 1 &&
			    add_hit(r, LLM_QUALITY_C4, params[C4_CURLY].name, 1, 0, -1))
				return;
		}
		if (on(q, C4_POLICY)) {
			bool policy = false;
			for (size_t k = 0; k < sizeof policy_phrases / sizeof *policy_phrases; k++)
				policy |= contains(low, len, policy_phrases[k]);
			if (policy)
				continue;
		}
		sentences += count_sentences(line, len);
		if (kept++ && (r->err = llm_buf_putc(&q->c4out, '\n')))
			return;
		if ((r->err = llm_buf_append(&q->c4out, line, len)))
			return;
	}
	/* In EVERY mode a document hit more than once reports the count. */
	for (size_t i = 0; i < r->res->nhits; i++) {
		struct llm_quality_hit *h = &r->res->hits[i];
		if (h->rule == LLM_QUALITY_C4 && h->check == params[C4_LOREM].name)
			h->value = (double)lorem;
		if (h->rule == LLM_QUALITY_C4 && h->check == params[C4_CURLY].name)
			h->value = (double)curly;
	}
	*removed = total - kept;
	if (check(r, C4_MIN_SENTENCES, (double)sentences))
		return;
	size_t oa = 0, ob = q->c4out.len;
	py_strip(q->c4out.data ? q->c4out.data : "", &oa, &ob, true, true);
	if (oa)
		memmove(q->c4out.data, q->c4out.data + oa, ob - oa);
	q->c4out.len = ob - oa;
	if (q->c4out.data)
		q->c4out.data[q->c4out.len] = '\0';
}

static void fineweb(struct run *r, const char *s, size_t n)
{
	struct llm_quality *q = r->q;
	size_t lines = 0, punct = 0, shorts = 0, newlines = 0;
	double short_len = q->val[FW_SHORT_LEN];
	q->nspans = 0;
	for (size_t i = 0;;) {
		const char *p = i < n ? memchr(s + i, '\n', n - i) : NULL;
		size_t end = p ? (size_t)(p - s) : n;
		lines++;
		char last = end > i ? s[end - 1] : 0;
		punct += last == '.' || last == '\'' || last == '"' || last == '!' || last == '?';
		if (!isnan(short_len) && (double)llm_unicode_count(s + i, end - i) <= short_len)
			shorts++;
		size_t a = i, b = end;
		py_strip(s, &a, &b, true, true);
		if (a < b && (r->err = push_span(q, s + i, end - i)))
			return;
		if (!p)
			break;
		newlines++;
		i = end + 1;
	}
	double pr = ratio((double)punct, (double)lines);
	if (!(pr == 0 && on(q, FW_PUNCT_EXCLUDE_ZERO)) && check(r, FW_PUNCT, pr))
		return;
	if (check(r, FW_SHORT, ratio((double)shorts, (double)lines)))
		return;
	size_t dups, dup_chars;
	if ((r->err = find_duplicates(q, q->spans, q->nspans, &dups, &dup_chars)))
		return;
	double chars = (double)(llm_unicode_count(s, n) - newlines);
	if (check(r, FW_CHAR_DUP, ratio((double)dup_chars, chars)))
		return;
	if ((r->err = tokenize(q, s, n)))
		return;
	check(r, FW_LIST, ratio((double)newlines, (double)q->ntoks));
}

static void length(struct run *r, const char *s, size_t n)
{
	size_t words = 0;
	bool in_word = false;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		i += llm_unicode_decode(s + i, n - i, &cp);
		bool sp = llm_unicode_is_space(cp);
		words += !sp && !in_word;
		in_word = !sp;
	}
	double chars = (double)llm_unicode_count(s, n);
	if (check(r, LEN_MIN_CHARS, chars) || check(r, LEN_MAX_CHARS, chars) ||
	    check(r, LEN_MIN_WORDS, (double)words))
		return;
	check(r, LEN_MAX_WORDS, (double)words);
}

static void regex(struct run *r, const char *s, size_t n)
{
	struct llm_quality *q = r->q;
	for (size_t i = 0; i < q->nre; i++) {
		int rc = pcre2_match(q->re[i].code, (PCRE2_SPTR)s, n, 0, PCRE2_NO_UTF_CHECK,
				     q->re[i].md, NULL);
		if (rc >= 0 && add_hit(r, LLM_QUALITY_REGEX, "match", 1, 0, (int)i))
			return;
	}
}

enum llm_err llm_quality_check(struct llm_quality *q, const char *text, size_t n,
			       enum llm_quality_mode mode, struct llm_quality_result *res)
{
	struct run r = {q, mode, res, LLM_OK};
	res->nhits = 0;
	res->text = text;
	res->len = n;
	res->text_changed = false;
	res->lines_removed = 0;
	q->toks_valid = false;
	for (size_t i = 0; i < q->norder && !r.err; i++) {
		if (mode == LLM_QUALITY_FIRST && res->nhits)
			break;
		switch (q->order[i]) {
		case LLM_QUALITY_GOPHER_QUALITY:
			gopher_quality(&r, res->text, res->len);
			break;
		case LLM_QUALITY_GOPHER_REPETITION:
			gopher_repetition(&r, res->text, res->len);
			break;
		case LLM_QUALITY_FINEWEB:
			fineweb(&r, res->text, res->len);
			break;
		case LLM_QUALITY_LENGTH:
			length(&r, res->text, res->len);
			break;
		case LLM_QUALITY_REGEX:
			regex(&r, res->text, res->len);
			break;
		case LLM_QUALITY_C4: {
			size_t before = res->nhits;
			uint64_t removed = 0;
			c4(&r, res->text, res->len, &removed);
			if (r.err || !on(q, C4_REMOVE_LINES) ||
			    (mode == LLM_QUALITY_FIRST && res->nhits > before))
				break;
			/* Later rules see what C4 kept, as in a datatrove pipeline. */
			res->lines_removed = removed;
			if (q->c4out.len != res->len ||
			    (res->len && memcmp(q->c4out.data, res->text, res->len))) {
				res->text = q->c4out.data ? q->c4out.data : "";
				res->len = q->c4out.len;
				res->text_changed = true;
				q->toks_valid = false;
			}
			break;
		}
		default:
			break;
		}
	}
	return r.err;
}
