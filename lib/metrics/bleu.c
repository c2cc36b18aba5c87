/* BLEU as sacreBLEU 2.x computes it.  The tokenizers replay sacreBLEU's regular expressions
 * pass by pass (each pass is a left-to-right substitution whose matches do not overlap, which
 * is what decides cases like "a.,b"), on bytes where every pattern is ASCII (13a) and on code
 * points where it is a Unicode category (intl).  Counting interns the hypothesis' tokens as
 * small integers, keeps the hypothesis' n-grams in an open-addressing table, and runs each
 * reference's n-grams against it: a reference n-gram that the hypothesis lacks cannot match,
 * so it is never stored. */
#include "config.h"

#include "metrics/bleu.h"

#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/json.h"
#include "metrics/pystr.h"
#include "text/unicode.h"

/* Tokenizing makes a text at most ~24 times longer (13a's four passes); the ceiling of every
 * buffer here, so that no input grows one without bound. */
#define TEXT_MAX (32 * LLM_BLEU_MAX_SEGMENT)

/* A token: bytes in a buffer that stays put while the segment is counted. */
struct span {
	const char *p;
	size_t len;
};

/* One side of a segment: its lowercased text, its tokenized text and its tokens. */
struct seg {
	struct llm_buf low;
	struct llm_buf text;
	struct span *sp;
	size_t nsp, capsp;
};

/* The hypothesis' vocabulary: token bytes to id. */
struct tok_slot {
	uint64_t h;
	const char *p;
	uint32_t len;
	uint32_t id;
	uint32_t gen; /* the slot is in use when gen is the table's */
};

/* One n-gram of the hypothesis (32 bytes).  The n-grams form a trie: an n-gram's key is the
 * slot of its first n - 1 tokens (+ 1; 0 for none) and its last token id, so two n-grams are
 * equal exactly when their keys are, with no token sequence to compare.  Then its order, how
 * often the hypothesis has it, its highest count in one reference so far, and its count in the
 * reference being read (cur, valid when stamp is that reference's). */
struct ng_slot {
	uint64_t key;
	uint32_t gen;
	uint32_t order;
	uint32_t count;
	uint32_t maxref;
	uint32_t cur;
	uint32_t stamp;
};

struct llm_bleu_scratch {
	struct seg hyp, ref;
	struct llm_buf a, b, c; /* 13a's passes */
	uint32_t *u, *v;	/* intl's passes, code points with class bits */
	size_t ucap, vcap;
	uint32_t *hid, *rid; /* token ids of the hypothesis and of one reference */
	size_t hidcap, ridcap;
	/* The tables keep their largest size; each segment uses the first mask + 1 slots, enough
	 * for it, so that a long segment once does not spread short ones over cold memory. */
	struct tok_slot *tt;
	size_t tcap, tmask;
	uint32_t tgen;
	struct ng_slot *nt;
	size_t ncap, nmask;
	uint32_t ngen;
	uint32_t *used; /* the n-gram slots filled for this hypothesis */
	size_t usedcap;
	uint64_t *bits; /* the bit masks of split_ascii and tok_13a_ascii */
	size_t bitscap;
};

#define NO_ID UINT32_MAX

/* --- names and defaults ------------------------------------------------------------------ */

static const char *const tok_names[] = {"13a", "none", "intl", "char"};
static const char *const smooth_names[] = {"exp", "floor", "add-k", "none"};

enum llm_err llm_sacretok_parse(const char *name, enum llm_sacretok *out, struct llm_diag *diag)
{
	for (size_t i = 0; i < sizeof tok_names / sizeof *tok_names; i++) {
		if (!strcmp(name, tok_names[i])) {
			*out = (enum llm_sacretok)i;
			return LLM_OK;
		}
	}
	return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
			    "unknown tokenizer '%s' (13a, none, intl, char)", name);
}

const char *llm_sacretok_name(enum llm_sacretok t)
{
	return (unsigned)t < sizeof tok_names / sizeof *tok_names ? tok_names[t] : "?";
}

enum llm_err llm_bleu_smooth_parse(const char *name, enum llm_bleu_smooth *out,
				   struct llm_diag *diag)
{
	for (size_t i = 0; i < sizeof smooth_names / sizeof *smooth_names; i++) {
		if (!strcmp(name, smooth_names[i])) {
			*out = (enum llm_bleu_smooth)i;
			return LLM_OK;
		}
	}
	return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
			    "unknown smoothing '%s' (exp, floor, add-k, none)", name);
}

void llm_bleu_opts_default(struct llm_bleu_opts *o)
{
	o->tokenize = LLM_SACRETOK_13A;
	o->lowercase = false;
	o->smooth = LLM_BLEU_SMOOTH_EXP;
	o->smooth_value = -1;
	o->max_order = 4;
	o->effective_order = false;
}

static int order_of(const struct llm_bleu_opts *o)
{
	if (o->max_order < 1)
		return 1;
	return o->max_order > LLM_BLEU_MAX_ORDER ? LLM_BLEU_MAX_ORDER : o->max_order;
}

size_t llm_bleu_n_stats(const struct llm_bleu_opts *o)
{
	return 2 + 2 * (size_t)order_of(o);
}

/* sacreBLEU's SMOOTH_DEFAULTS: floor 0.1, add-k 1. */
static double smooth_value_of(const struct llm_bleu_opts *o)
{
	if (o->smooth_value >= 0)
		return o->smooth_value;
	if (o->smooth == LLM_BLEU_SMOOTH_FLOOR)
		return 0.1;
	return o->smooth == LLM_BLEU_SMOOTH_ADD_K ? 1 : 0;
}

/* --- buffers --------------------------------------------------------------------------------- */

static enum llm_err grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return LLM_OK;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	if (c > TEXT_MAX / elem + 1)
		return LLM_ERR_TOO_BIG;
	void *q = realloc(*p, c * elem);
	if (!q)
		return LLM_ERR_NOMEM;
	*p = q;
	*cap = c;
	return LLM_OK;
}

static void seg_init(struct seg *g)
{
	llm_buf_init(&g->low, TEXT_MAX);
	llm_buf_init(&g->text, TEXT_MAX);
	g->sp = NULL;
	g->nsp = g->capsp = 0;
}

static void seg_free(struct seg *g)
{
	llm_buf_free(&g->low);
	llm_buf_free(&g->text);
	free(g->sp);
}

static inline enum llm_err push(struct seg *g, const char *p, size_t len)
{
	if (g->nsp == g->capsp) {
		enum llm_err e = grow((void **)&g->sp, &g->capsp, g->nsp + 1, sizeof *g->sp);
		if (e)
			return e;
	}
	g->sp[g->nsp].p = p;
	g->sp[g->nsp].len = len;
	g->nsp++;
	return LLM_OK;
}

/* Empty b and make room for need bytes, to be written through b->data; finish with done(). */
static enum llm_err start(struct llm_buf *b, size_t need)
{
	llm_buf_clear(b);
	return llm_buf_reserve(b, need);
}

static void done(struct llm_buf *b, const char *w)
{
	b->len = (size_t)(w - b->data);
	b->data[b->len] = '\0';
}

/* --- Python's whitespace --------------------------------------------------------------------- */

/* \t \n \v \f \r, U+001C..U+001F and space: the ASCII part of str.isspace(). */
static inline bool ascii_space(unsigned char c)
{
	return c <= 0x20 && (0x1F0003E00ULL >> c & 1);
}

/* Is the character at s[i] whitespace; *k gets its length.  Python's other spaces are
 * U+0085, U+00A0, U+1680, U+2000..U+200A, U+2028, U+2029, U+202F, U+205F, U+3000: their first
 * bytes are C2, E1, E2 and E3, so any other byte above ASCII is part of a non-space. */
static inline bool space_at(const char *s, size_t n, size_t i, size_t *k)
{
	unsigned char c = (unsigned char)s[i];
	if (c < 0x80) {
		*k = 1;
		return ascii_space(c);
	}
	if (c != 0xC2 && (c < 0xE1 || c > 0xE3)) {
		*k = 1;
		return false;
	}
	uint32_t cp;
	*k = llm_unicode_decode(s + i, n - i, &cp);
	return llm_py_isspace(cp);
}

/* str.rstrip(): the length without trailing whitespace. */
static size_t rstrip_len(const char *s, size_t n)
{
	while (n > 0) {
		unsigned char c = (unsigned char)s[n - 1];
		if (c < 0x80) {
			if (!ascii_space(c))
				break;
			n--;
			continue;
		}
		size_t j = n - 1;
		while (j > 0 && n - j < 4 && ((unsigned char)s[j] & 0xC0) == 0x80)
			j--;
		uint32_t cp;
		llm_unicode_decode(s + j, n - j, &cp);
		if (!llm_py_isspace(cp))
			break;
		n = j;
	}
	return n;
}

#ifdef __SSE2__
/* Texts of ASCII only are split, and tokenized by 13a, 64 bytes at a time from bit masks of the
 * characters that matter (bit i of a word: byte i of the 64).  The masks of a text are all made
 * before any token is written, so that a text found to need the general path has nothing to
 * undo. */
struct masks {
	uint64_t ws, sym, digit, dash, dot, other; /* other: a byte the fast paths do not take */
};

static inline __m128i in_range(__m128i v, char lo, char hi)
{
	return _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8((char)(lo - 1))),
			     _mm_cmplt_epi8(v, _mm_set1_epi8((char)(hi + 1))));
}

static inline uint64_t bits16(__m128i m, int shift)
{
	return (uint64_t)(unsigned)_mm_movemask_epi8(m) << shift;
}

/* The masks of the 16 bytes at p, as bits shift to shift + 15: Python's ASCII whitespace
 * (\t-\r, 0x1c-0x1f, space); for 13a also its symbols, digits, '-', '.' and ','; and in other
 * the bytes above ASCII (as signed bytes, the comparisons above are then the unsigned ones),
 * with, for 13a, those its replacements look for ('\n', '<', '&'). */
static inline __attribute__((always_inline)) void classify16(const char *p, struct masks *m,
							     int shift, bool for_13a)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	m->ws |= bits16(_mm_or_si128(in_range(v, 0x09, 0x0D), in_range(v, 0x1C, 0x20)), shift);
	__m128i other = _mm_cmplt_epi8(v, _mm_setzero_si128());
	if (for_13a) {
		__m128i sym = _mm_or_si128(
		    _mm_or_si128(_mm_or_si128(in_range(v, 0x21, 0x26), in_range(v, 0x28, 0x2B)),
				 _mm_or_si128(in_range(v, 0x3A, 0x40), in_range(v, 0x5B, 0x60))),
		    _mm_or_si128(in_range(v, 0x7B, 0x7E), _mm_cmpeq_epi8(v, _mm_set1_epi8(0x2F))));
		m->sym |= bits16(sym, shift);
		m->digit |= bits16(in_range(v, '0', '9'), shift);
		m->dash |= bits16(_mm_cmpeq_epi8(v, _mm_set1_epi8('-')), shift);
		m->dot |= bits16(_mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('.')),
					      _mm_cmpeq_epi8(v, _mm_set1_epi8(','))),
				 shift);
		other = _mm_or_si128(_mm_or_si128(other, _mm_cmpeq_epi8(v, _mm_set1_epi8('\n'))),
				     _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('<')),
						  _mm_cmpeq_epi8(v, _mm_set1_epi8('&'))));
	}
	m->other |= bits16(other, shift);
}

/* The masks of s[0..n) into nw words each of the arrays given, bytes past n whitespace; false
 * when a byte is one the fast paths do not take. */
static bool classify_ascii(const char *s, size_t n, size_t nw, bool for_13a, uint64_t *ws,
			   uint64_t *sym, uint64_t *digit, uint64_t *dash, uint64_t *dot)
{
	for (size_t w = 0; w < nw; w++) {
		struct masks m = {0};
		const char *p = s + 64 * w;
		char pad[64];
		if (64 * w + 64 > n) {
			memset(pad, ' ', sizeof pad);
			if (64 * w < n)
				memcpy(pad, p, n - 64 * w);
			p = pad;
		}
		for (int k = 0; k < 4; k++)
			classify16(p + 16 * k, &m, 16 * k, for_13a);
		if (m.other)
			return false;
		ws[w] = m.ws;
		if (for_13a)
			sym[w] = m.sym, digit[w] = m.digit, dash[w] = m.dash, dot[w] = m.dot;
	}
	return true;
}

static inline bool bit_at(const uint64_t *x, size_t i)
{
	return x[i / 64] >> (i % 64) & 1;
}

static inline void set_bit(uint64_t *x, size_t i)
{
	x[i / 64] |= 1ULL << (i % 64);
}

/* The tokens of s: the runs of bytes that are not whitespace, cut where cut has a bit (a cut
 * after byte i), as spans into s.  A block's starts are written first, then its ends complete
 * them: a token ends in the block where it starts or a later one.  starts: nw words of
 * scratch. */
static enum llm_err push_runs(struct seg *g, const char *s, size_t nw, const uint64_t *ws,
			      const uint64_t *cut, uint64_t *starts)
{
	size_t count = 0;
	for (size_t w = 0; w < nw; w++) {
		uint64_t tok = ~ws[w];
		uint64_t prev_tok = tok << 1 | (w ? ~ws[w - 1] >> 63 : 0);
		uint64_t prev_cut = cut ? cut[w] << 1 | (w ? cut[w - 1] >> 63 : 0) : 0;
		starts[w] = tok & (~prev_tok | prev_cut);
		count += (size_t)__builtin_popcountll(starts[w]);
	}
	enum llm_err e = grow((void **)&g->sp, &g->capsp, g->nsp + count, sizeof *g->sp);
	if (e)
		return e;
	size_t ns = g->nsp, ne = g->nsp;
	for (size_t w = 0; w < nw; w++) {
		uint64_t tok = ~ws[w];
		uint64_t next_tok = tok >> 1 | (w + 1 < nw ? ~ws[w + 1] << 63 : 0);
		uint64_t ends = tok & (~next_tok | (cut ? cut[w] : 0));
		for (uint64_t b = starts[w]; b; b &= b - 1)
			g->sp[ns++].p = s + 64 * w + (size_t)__builtin_ctzll(b);
		for (; ends; ends &= ends - 1, ne++)
			g->sp[ne].len =
			    (size_t)(s + 64 * w + (size_t)__builtin_ctzll(ends) + 1 - g->sp[ne].p);
	}
	g->nsp = ns;
	return LLM_OK;
}

/* split_py for an ASCII text; false (and nothing done) for any other. */
static bool split_ascii(struct llm_bleu_scratch *sc, struct seg *g, const char *s, size_t n,
			enum llm_err *e)
{
	size_t nw = n / 64 + 1; /* bit n is past the end: whitespace */
	if ((*e = grow((void **)&sc->bits, &sc->bitscap, 2 * nw, sizeof *sc->bits)))
		return true;
	uint64_t *ws = sc->bits;
	if (!classify_ascii(s, n, nw, false, ws, NULL, NULL, NULL, NULL))
		return false;
	*e = push_runs(g, s, nw, ws, NULL, ws + nw);
	return true;
}

/* tok_13a for an ASCII text without the characters its replacements look for, in one pass
 * instead of five and with no copy; false (and nothing done) for any other text.  13a's
 * substitutions only insert spaces, so each token is a span of s, and what has to be found is
 * where a space goes between two characters of s (a "cut"): around each symbol, between a
 * digit and a '-' and after it, from the masks; then the rules for '.' and ',', in order,
 * since a match there consumes characters another would use: ([^0-9])([.,]) -> "\1 \2 " on
 * the text with its symbols padded, then ([.,])([^0-9]) -> " \1 \2" on the result. */
static bool tok_13a_ascii(struct llm_bleu_scratch *sc, struct seg *g, const char *s, size_t n,
			  enum llm_err *e)
{
	size_t nw = n / 64 + 1; /* bit n is past the end: whitespace */
	if ((*e = grow((void **)&sc->bits, &sc->bitscap, 7 * nw, sizeof *sc->bits)))
		return true;
	uint64_t *ws = sc->bits, *sym = ws + nw, *digit = sym + nw, *dash = digit + nw,
		 *dot = dash + nw, *cut = dot + nw, *m2 = cut + nw;
	if (!classify_ascii(s, n, nw, true, ws, sym, digit, dash, dot))
		return false;
	for (size_t w = 0; w < nw; w++) {
		uint64_t next_sym = sym[w] >> 1 | (w + 1 < nw ? sym[w + 1] << 63 : 0);
		uint64_t next_dash = dash[w] >> 1 | (w + 1 < nw ? dash[w + 1] << 63 : 0);
		uint64_t prev_digit = digit[w] << 1 | (w ? digit[w - 1] >> 63 : 0);
		cut[w] = sym[w] | next_sym | (digit[w] & next_dash) | (dash[w] & prev_digit);
		m2[w] = 0;
	}
	/* The first: the character before s[i] is a space when i is 0 or s[i - 1] a symbol; a
	 * '.' or ',' taken as \2 cannot be the \1 of the next. */
	for (size_t w = 0; w < nw; w++)
		for (uint64_t d = dot[w]; d; d &= d - 1) {
			size_t i = 64 * w + (size_t)__builtin_ctzll(d);
			if (i > 0 && !bit_at(sym, i - 1) &&
			    (bit_at(digit, i - 1) || (bit_at(dot, i - 1) && bit_at(m2, i - 1))))
				continue;
			set_bit(m2, i);
			if (i > 0)
				set_bit(cut, i - 1);
			set_bit(cut, i);
		}
	/* The second: the character after s[i] is a space when a cut follows s[i] (at the end,
	 * the padding), else s[i + 1].  No match here takes a '.' or ',' as its \2, which would
	 * keep it from being the next \1: of two side by side, the first rule matched the second
	 * (or the first, and then put a space after it). */
	for (size_t w = 0; w < nw; w++)
		for (uint64_t d = dot[w]; d; d &= d - 1) {
			size_t i = 64 * w + (size_t)__builtin_ctzll(d);
			if (i + 1 < n && !bit_at(cut, i) && !bit_at(ws, i + 1) &&
			    bit_at(digit, i + 1))
				continue;
			if (i > 0)
				set_bit(cut, i - 1);
			set_bit(cut, i);
		}
	*e = push_runs(g, s, nw, ws, cut, m2);
	return true;
}
#endif

/* str.split(): the tokens of s as spans into s. */
static enum llm_err split_py(struct llm_bleu_scratch *sc, struct seg *g, const char *s, size_t n)
{
	enum llm_err e;
#ifdef __SSE2__
	if (split_ascii(sc, g, s, n, &e))
		return e;
#else
	(void)sc;
#endif
	size_t i = 0, k;
	for (;;) {
		while (i < n && space_at(s, n, i, &k))
			i += k;
		if (i == n)
			return LLM_OK;
		size_t begin = i;
		while (i < n) {
			unsigned char c = (unsigned char)s[i];
			if (c > 0x20 && c < 0x80) { /* the common case, first */
				i++;
				continue;
			}
			if (space_at(s, n, i, &k))
				break;
			i += k;
		}
		if ((e = push(g, s + begin, i - begin)))
			return e;
	}
}

/* --- 13a ------------------------------------------------------------------------------------- */

/* The characters of 13a's first pattern, [{-~[-` -&(-+:-@/], each padded with spaces. */
static inline unsigned is_13a_sym(unsigned char c)
{
	/* Bit c of the 128-bit set, as two words: 0x21-0x26 0x28-0x2B 0x2F 0x3A-0x40 0x5B-0x60
	 * 0x7B-0x7E.  The pattern has the space too, but three spaces for one change nothing:
	 * below, a space can only be the first character of a match in one substitution and
	 * only the second in another, so whether one is taken never decides another match, and
	 * the split removes it in the end. */
	const uint64_t lo = 0xFC008F7E00000000ULL, hi = 0x78000001F8000001ULL;
	return (unsigned)(c < 128) & (unsigned)((c < 64 ? lo : hi) >> (c & 63));
}

static inline bool is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* str.replace(pat, rep) from *s into dst, when pat occurs; *s then points at the result. */
static enum llm_err replace(const char **s, size_t *n, const char *pat, const char *rep,
			    struct llm_buf *dst)
{
	size_t pl = strlen(pat), rl = strlen(rep);
	const char *p = *s, *end = *s + *n;
	const char *hit = memmem(p, *n, pat, pl);
	if (!hit)
		return LLM_OK;
	enum llm_err e = start(dst, *n);
	if (e)
		return e;
	char *w = dst->data;
	while (hit) {
		memcpy(w, p, (size_t)(hit - p));
		w += hit - p;
		memcpy(w, rep, rl); /* rep is never longer than pat */
		w += rl;
		p = hit + pl;
		hit = memmem(p, (size_t)(end - p), pat, pl);
	}
	memcpy(w, p, (size_t)(end - p));
	w += end - p;
	done(dst, w);
	*s = dst->data;
	*n = dst->len;
	return LLM_OK;
}

/* The next '.' or ',' in t[from..m), or m. */
static size_t next_dot_comma(const char *t, size_t from, size_t m)
{
	const char *d = memchr(t + from, '.', m - from), *c = memchr(t + from, ',', m - from);
	if (!d && !c)
		return m;
	if (!d || (c && c < d))
		return (size_t)(c - t);
	return (size_t)(d - t);
}

/* Each of 13a's substitutions below is a left-to-right scan in which a match consumes its two
 * characters (a consumed character cannot start or end another match).  They visit only the
 * places where the pattern's punctuation is, and copy the stretches between in one go. */

/* ([^0-9])([.,]) -> "\1 \2 " */
static enum llm_err pass_2(const char *t, size_t m, struct llm_buf *out)
{
	enum llm_err e = start(out, 2 * m);
	if (e)
		return e;
	char *w = out->data;
	size_t pos = 0; /* t[0..pos) is written */
	for (size_t j = next_dot_comma(t, 1 < m ? 1 : m, m); j < m;
	     j = next_dot_comma(t, j + 1, m)) {
		if (j - 1 < pos || is_digit((unsigned char)t[j - 1]))
			continue;
		memcpy(w, t + pos, j - pos);
		w += j - pos;
		*w++ = ' ';
		*w++ = t[j];
		*w++ = ' ';
		pos = j + 1;
	}
	memcpy(w, t + pos, m - pos);
	done(out, w + (m - pos));
	return LLM_OK;
}

/* ([\.,])([^0-9]) -> " \1 \2" */
static enum llm_err pass_3(const char *t, size_t m, struct llm_buf *out)
{
	enum llm_err e = start(out, 2 * m);
	if (e)
		return e;
	char *w = out->data;
	size_t pos = 0;
	for (size_t j = next_dot_comma(t, 0, m); j < m; j = next_dot_comma(t, j + 1, m)) {
		if (j < pos || j + 1 >= m || is_digit((unsigned char)t[j + 1]))
			continue;
		memcpy(w, t + pos, j - pos);
		w += j - pos;
		*w++ = ' ';
		*w++ = t[j];
		*w++ = ' ';
		*w++ = t[j + 1];
		pos = j + 2;
	}
	memcpy(w, t + pos, m - pos);
	done(out, w + (m - pos));
	return LLM_OK;
}

/* ([0-9])(-) -> "\1 \2 " */
static enum llm_err pass_4(const char *t, size_t m, struct llm_buf *out)
{
	enum llm_err e = start(out, 2 * m);
	if (e)
		return e;
	char *w = out->data;
	size_t pos = 0;
	for (size_t j = 1; j < m; j++) {
		const char *h = memchr(t + j, '-', m - j);
		if (!h)
			break;
		j = (size_t)(h - t);
		if (j - 1 < pos || !is_digit((unsigned char)t[j - 1]))
			continue;
		memcpy(w, t + pos, j - pos);
		w += j - pos;
		*w++ = ' ';
		*w++ = '-';
		*w++ = ' ';
		pos = j + 1;
	}
	memcpy(w, t + pos, m - pos);
	done(out, w + (m - pos));
	return LLM_OK;
}

/* mteval-v13a as sacreBLEU's Tokenizer13a: the language-independent replacements, then the
 * four substitutions of TokenizerRegexp on " line ", then split. */
static enum llm_err tok_13a(struct llm_bleu_scratch *sc, struct seg *g, const char *s, size_t n)
{
	enum llm_err e = LLM_OK;
#ifdef __SSE2__
	if (tok_13a_ascii(sc, g, s, n, &e))
		return e;
#endif
	if (memchr(s, '\n', n) || memchr(s, '<', n) || memchr(s, '&', n)) {
		struct llm_buf *bufs[2] = {&sc->a, &sc->b};
		int k = 0;
		static const char *const reps[][2] = {
		    {"<skipped>", ""}, {"-\n", ""},   {"\n", " "},   {"&quot;", "\""},
		    {"&amp;", "&"},    {"&lt;", "<"}, {"&gt;", ">"},
		};
		for (size_t r = 0; r < sizeof reps / sizeof *reps && !e; r++) {
			const char *before = s;
			e = replace(&s, &n, reps[r][0], reps[r][1], bufs[k]);
			if (s != before)
				k ^= 1;
		}
		if (e)
			return e;
	}
	/* ([{-~[-` -&(-+:-@/]) -> " \1 " on " line " */
	struct llm_buf *b1 = &sc->c;
	if ((e = start(b1, 3 * n + 2)))
		return e;
	char *w = b1->data;
	*w++ = ' ';
	/* The runs between symbols in one copy each: in text, symbols are few. */
	for (size_t i = 0; i < n; i++) {
		size_t j = i;
		while (j < n && !is_13a_sym((unsigned char)s[j]))
			j++;
		memcpy(w, s + i, j - i);
		w += j - i;
		if (j == n)
			break;
		w[0] = ' ';
		w[1] = s[j];
		w[2] = ' ';
		w += 3;
		i = j;
	}
	*w++ = ' ';
	done(b1, w);

	const char *t = b1->data;
	size_t m = b1->len;
	if ((e = pass_2(t, m, &sc->a)) || (e = pass_3(sc->a.data, sc->a.len, &sc->b)) ||
	    (e = pass_4(sc->b.data, sc->b.len, &g->text)))
		return e;
	return split_py(sc, g, g->text.data, g->text.len);
}

/* --- intl ------------------------------------------------------------------------------------ */

/* Code points carry their class in the bits above U+10FFFF. */
#define CL_N	(1u << 24) /* \p{N}: Nd, Nl, No */
#define CL_P	(1u << 25) /* \p{P}: Pc, Pd, Ps, Pe, Pi, Pf, Po */
#define CL_S	(1u << 26) /* \p{S}: Sm, Sc, Sk, So */
#define CP_MASK 0x1FFFFFu

static uint32_t classify(uint32_t cp)
{
	switch (utf8proc_category((utf8proc_int32_t)cp)) {
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return cp | CL_N;
	case UTF8PROC_CATEGORY_PC:
	case UTF8PROC_CATEGORY_PD:
	case UTF8PROC_CATEGORY_PS:
	case UTF8PROC_CATEGORY_PE:
	case UTF8PROC_CATEGORY_PI:
	case UTF8PROC_CATEGORY_PF:
	case UTF8PROC_CATEGORY_PO:
		return cp | CL_P;
	case UTF8PROC_CATEGORY_SM:
	case UTF8PROC_CATEGORY_SC:
	case UTF8PROC_CATEGORY_SK:
	case UTF8PROC_CATEGORY_SO:
		return cp | CL_S;
	default:
		return cp;
	}
}

/* mteval-v14's international tokenization as sacreBLEU's TokenizerV14International:
 * (\P{N})(\p{P}) -> "\1 \2 ", then (\p{P})(\P{N}) -> " \1 \2", then (\p{S}) -> " \1 ", then
 * split. */
static enum llm_err tok_intl(struct llm_bleu_scratch *sc, struct seg *g, const char *s, size_t n)
{
	enum llm_err e;
	if ((e = grow((void **)&sc->u, &sc->ucap, 4 * n + 1, sizeof *sc->u)) ||
	    (e = grow((void **)&sc->v, &sc->vcap, 12 * n + 1, sizeof *sc->v)))
		return e;
	uint32_t *u = sc->u, *v = sc->v;
	size_t m = 0;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		i += llm_unicode_decode(s + i, n - i, &cp);
		u[m++] = classify(cp);
	}
	size_t k = 0;
	for (size_t i = 0; i < m;) {
		if (i + 1 < m && !(u[i] & CL_N) && (u[i + 1] & CL_P)) {
			v[k++] = u[i];
			v[k++] = ' ';
			v[k++] = u[i + 1];
			v[k++] = ' ';
			i += 2;
		} else {
			v[k++] = u[i++];
		}
	}
	m = k;
	k = 0;
	for (size_t i = 0; i < m;) {
		if (i + 1 < m && (v[i] & CL_P) && !(v[i + 1] & CL_N)) {
			u[k++] = ' ';
			u[k++] = v[i];
			u[k++] = ' ';
			u[k++] = v[i + 1];
			i += 2;
		} else {
			u[k++] = v[i++];
		}
	}
	m = k;
	k = 0;
	for (size_t i = 0; i < m; i++) {
		if (u[i] & CL_S) {
			v[k++] = ' ';
			v[k++] = u[i];
			v[k++] = ' ';
		} else {
			v[k++] = u[i];
		}
	}
	/* Encode the tokens, one space between them; the buffer never moves while spans are
	 * taken, since its room was made first. */
	if ((e = start(&g->text, 4 * k)))
		return e;
	char *w = g->text.data;
	char *tok = NULL;
	for (size_t i = 0; i < k; i++) {
		uint32_t cp = v[i] & CP_MASK;
		bool sp = cp < 0x80 ? ascii_space((unsigned char)cp) : llm_py_isspace(cp);
		if (sp) {
			if (tok) {
				if ((e = push(g, tok, (size_t)(w - tok))))
					return e;
				*w++ = ' ';
				tok = NULL;
			}
			continue;
		}
		if (!tok)
			tok = w;
		if (cp < 0x80) {
			*w++ = (char)cp;
		} else {
			w += llm_unicode_encode(cp, w);
		}
	}
	if (tok && (e = push(g, tok, (size_t)(w - tok))))
		return e;
	done(&g->text, w);
	return LLM_OK;
}

/* --- char ------------------------------------------------------------------------------------ */

/* Every character a token; sacreBLEU's spaces between them, and the text's own whitespace,
 * vanish in the split. */
static enum llm_err tok_char(struct seg *g, const char *s, size_t n)
{
	size_t k;
	for (size_t i = 0; i < n; i += k) {
		unsigned char c = (unsigned char)s[i];
		size_t len = c < 0x80 ? 1 : c < 0xE0 ? 2 : c < 0xF0 ? 3 : 4;
		if (!space_at(s, n, i, &k)) {
			enum llm_err e = push(g, s + i, len);
			if (e)
				return e;
		}
		k = len;
	}
	return LLM_OK;
}

/* --- segments -------------------------------------------------------------------------------- */

/* The tokens of one text into g, as BLEU counts them: lowercased (when asked), stripped at the
 * end (strip false for llm_sacretok_apply), tokenized. */
static enum llm_err tokenize(struct llm_bleu_scratch *sc, enum llm_sacretok t, bool lowercase,
			     bool strip, struct seg *g, const char *s, size_t n,
			     struct llm_diag *diag)
{
	g->nsp = 0;
	if (n == 0)
		s = ""; /* a caller's NULL for an empty text */
	if (n > LLM_BLEU_MAX_SEGMENT)
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0,
				    "text of %zu bytes is over the limit of %zu", n,
				    LLM_BLEU_MAX_SEGMENT);
	enum llm_err e;
	if (lowercase) {
		llm_buf_clear(&g->low);
		if ((e = llm_py_lower(s, n, &g->low, diag)))
			return e;
		s = g->low.data;
		n = g->low.len;
	} else {
		size_t valid = llm_utf8_valid_prefix(s, n);
		if (valid != n)
			return llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0,
					    "invalid UTF-8 at byte %zu", valid);
	}
	if (strip)
		n = rstrip_len(s, n);
	switch (t) {
	case LLM_SACRETOK_13A:
		e = tok_13a(sc, g, s, n);
		break;
	case LLM_SACRETOK_INTL:
		e = tok_intl(sc, g, s, n);
		break;
	case LLM_SACRETOK_CHAR:
		e = tok_char(g, s, n);
		break;
	case LLM_SACRETOK_NONE:
	default:
		e = split_py(sc, g, s, n);
		break;
	}
	if (e)
		return llm_diag_set(diag, e, NULL, 0,
				    e == LLM_ERR_NOMEM ? "out of memory tokenizing"
						       : "tokenized text too long");
	return LLM_OK;
}

enum llm_err llm_bleu_scratch_new(struct llm_bleu_scratch **out, struct llm_diag *diag)
{
	struct llm_bleu_scratch *sc = calloc(1, sizeof *sc);
	*out = sc;
	if (!sc)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	seg_init(&sc->hyp);
	seg_init(&sc->ref);
	llm_buf_init(&sc->a, TEXT_MAX);
	llm_buf_init(&sc->b, TEXT_MAX);
	llm_buf_init(&sc->c, TEXT_MAX);
	return LLM_OK;
}

void llm_bleu_scratch_free(struct llm_bleu_scratch *sc)
{
	if (!sc)
		return;
	seg_free(&sc->hyp);
	seg_free(&sc->ref);
	llm_buf_free(&sc->a);
	llm_buf_free(&sc->b);
	llm_buf_free(&sc->c);
	free(sc->u);
	free(sc->v);
	free(sc->hid);
	free(sc->rid);
	free(sc->tt);
	free(sc->nt);
	free(sc->used);
	free(sc->bits);
	free(sc);
}

enum llm_err llm_sacretok_apply(enum llm_sacretok t, const char *s, size_t n, struct llm_buf *out,
				struct llm_diag *diag)
{
	struct llm_bleu_scratch *sc;
	enum llm_err e = llm_bleu_scratch_new(&sc, diag);
	if (e)
		return e;
	e = tokenize(sc, t, false, false, &sc->hyp, s, n, diag);
	for (size_t i = 0; i < sc->hyp.nsp && !e; i++) {
		if (i)
			e = llm_buf_putc(out, ' ');
		if (!e)
			e = llm_buf_append(out, sc->hyp.sp[i].p, sc->hyp.sp[i].len);
		if (e)
			e = llm_diag_set(diag, e, NULL, 0, "tokenized text too long");
	}
	llm_bleu_scratch_free(sc);
	return e;
}

/* --- counting -------------------------------------------------------------------------------- */

/* A token's hash, inline: tokens are short, and this runs once per token per segment. */
static inline uint64_t tok_hash(const char *p, size_t len)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL ^ len, v;
	for (; len > 8; p += 8, len -= 8) {
		memcpy(&v, p, 8);
		h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
		h ^= h >> 32;
	}
	/* The last 1 to 8 bytes in two loads that may overlap (together they cover every byte,
	 * and the length is in h). */
	if (len >= 4) {
		uint32_t a, b;
		memcpy(&a, p, 4);
		memcpy(&b, p + len - 4, 4);
		v = a | (uint64_t)b << 32;
	} else if (len) {
		v = (uint64_t)(unsigned char)p[0] | (uint64_t)(unsigned char)p[len / 2] << 8 |
		    (uint64_t)(unsigned char)p[len - 1] << 16;
	} else {
		v = 0;
	}
	h = (h ^ v) * 0xC4CEB9FE1A85EC53ULL;
	return h ^ (h >> 29);
}

static inline bool same_bytes(const char *a, const char *b, size_t n)
{
	if (n > 16)
		return !memcmp(a, b, n);
	for (size_t k = 0; k < n; k++)
		if (a[k] != b[k])
			return false;
	return true;
}

/* The key of the n-gram whose first n - 1 tokens are in slot prefix - 1 (prefix 0: none) and
 * whose last token is id. */
static inline uint64_t ng_key(size_t prefix, uint32_t id)
{
	return (uint64_t)prefix << 32 | id;
}

/* Make a table ready for entries: at least 2·entries slots in use (a power of two, *mask + 1),
 * all of them empty, which moving to a new generation does without touching them. */
static enum llm_err table_ready(void **tab, size_t *cap, size_t *mask, uint32_t *gen,
				size_t entries, size_t elem, size_t gen_offset)
{
	size_t want = 64;
	while (want < 2 * entries)
		want *= 2;
	if (want > *cap) {
		if (want > TEXT_MAX / elem)
			return LLM_ERR_TOO_BIG;
		void *q = calloc(want, elem);
		if (!q)
			return LLM_ERR_NOMEM;
		free(*tab);
		*tab = q;
		*cap = want;
		*gen = 0;
	}
	*mask = want - 1;
	if (++*gen == 0) { /* wrapped: clear the stamps of every slot */
		for (size_t i = 0; i < *cap; i++)
			memset((char *)*tab + i * elem + gen_offset, 0, sizeof(uint32_t));
		*gen = 1;
	}
	return LLM_OK;
}

/* The hypothesis' tokens to ids 0, 1, ... in order of first appearance. */
static enum llm_err intern_hyp(struct llm_bleu_scratch *sc)
{
	const struct seg *g = &sc->hyp;
	enum llm_err e;
	if ((e = table_ready((void **)&sc->tt, &sc->tcap, &sc->tmask, &sc->tgen, g->nsp,
			     sizeof *sc->tt, offsetof(struct tok_slot, gen))) ||
	    (e = grow((void **)&sc->hid, &sc->hidcap, g->nsp + 1, sizeof *sc->hid)))
		return e;
	const size_t mask = sc->tmask;
	const uint32_t gen = sc->tgen;
	uint32_t next = 0;
	for (size_t i = 0; i < g->nsp; i++) {
		const struct span *t = &g->sp[i];
		uint64_t h = tok_hash(t->p, t->len);
		size_t j = (size_t)h & mask;
		for (;;) {
			struct tok_slot *s = &sc->tt[j];
			if (s->gen != gen) {
				*s = (struct tok_slot){.h = h,
						       .p = t->p,
						       .len = (uint32_t)t->len,
						       .id = next,
						       .gen = gen};
				sc->hid[i] = next++;
				break;
			}
			if (s->h == h && s->len == t->len && same_bytes(s->p, t->p, t->len)) {
				sc->hid[i] = s->id;
				break;
			}
			j = (j + 1) & mask;
		}
	}
	return LLM_OK;
}

/* A reference's tokens to the hypothesis' ids, NO_ID for tokens the hypothesis lacks. */
static enum llm_err lookup_ref(struct llm_bleu_scratch *sc)
{
	const struct seg *g = &sc->ref;
	enum llm_err e = grow((void **)&sc->rid, &sc->ridcap, g->nsp + 1, sizeof *sc->rid);
	if (e)
		return e;
	const size_t mask = sc->tmask;
	const uint32_t gen = sc->tgen;
	for (size_t i = 0; i < g->nsp; i++) {
		const struct span *t = &g->sp[i];
		uint64_t h = tok_hash(t->p, t->len);
		size_t j = (size_t)h & mask;
		sc->rid[i] = NO_ID;
		for (;;) {
			const struct tok_slot *s = &sc->tt[j];
			if (s->gen != gen)
				break;
			if (s->h == h && s->len == t->len && same_bytes(s->p, t->p, t->len)) {
				sc->rid[i] = s->id;
				break;
			}
			j = (j + 1) & mask;
		}
	}
	return LLM_OK;
}

/* The slot of the n-gram with this key, or the empty slot where it would go. */
static inline struct ng_slot *ng_find(struct ng_slot *nt, size_t mask, uint32_t gen, uint64_t key)
{
	uint64_t h = key * 0x9E3779B97F4A7C15ULL;
	for (size_t j = (size_t)(h ^ (h >> 29)) & mask;; j = (j + 1) & mask) {
		struct ng_slot *s = &nt[j];
		if (s->gen != gen || s->key == key)
			return s;
	}
}

enum llm_err llm_bleu_stats_scratch(struct llm_bleu_scratch *sc, const struct llm_bleu_opts *o,
				    const char *hyp, size_t hyp_len, const char *const *refs,
				    const size_t *ref_lens, size_t n_refs, double *stats,
				    struct llm_diag *diag)
{
	if (o->max_order < 1 || o->max_order > LLM_BLEU_MAX_ORDER)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "BLEU max order %d is outside 1..%d", o->max_order,
				    LLM_BLEU_MAX_ORDER);
	if (n_refs == 0)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "BLEU needs a reference");
	const uint32_t N = (uint32_t)o->max_order;
	enum llm_err e =
	    tokenize(sc, o->tokenize, o->lowercase, true, &sc->hyp, hyp, hyp_len, diag);
	if (e)
		return e;
	const size_t L = sc->hyp.nsp;
	/* A limit on the tables below; a text LLM_BLEU_MAX_SEGMENT allows has fewer tokens. */
	if (L >= (size_t)1 << 29)
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0, "hypothesis too long");
	if ((e = intern_hyp(sc)))
		return llm_diag_set(diag, e, NULL, 0, "hypothesis too long");

	/* The hypothesis' n-grams and their counts. */
	size_t entries = L * N;
	if ((e = table_ready((void **)&sc->nt, &sc->ncap, &sc->nmask, &sc->ngen, entries,
			     sizeof *sc->nt, offsetof(struct ng_slot, gen))) ||
	    (e = grow((void **)&sc->used, &sc->usedcap, entries + 1, sizeof *sc->used)))
		return llm_diag_set(diag, e, NULL, 0, "hypothesis too long");
	struct ng_slot *const nt = sc->nt;
	const size_t mask = sc->nmask;
	const uint32_t gen = sc->ngen;
	const uint32_t *const hid = sc->hid;
	size_t nused = 0;
	for (size_t i = 0; i < L; i++) {
		size_t prefix = 0;
		for (uint32_t n = 1; n <= N && i + n <= L; n++) {
			uint64_t key = ng_key(prefix, hid[i + n - 1]);
			struct ng_slot *s = ng_find(nt, mask, gen, key);
			prefix = (size_t)(s - nt) + 1;
			if (s->gen == gen) {
				s->count++;
				continue;
			}
			*s = (struct ng_slot){.key = key, .gen = gen, .order = n, .count = 1};
			sc->used[nused++] = (uint32_t)(s - nt);
		}
	}

	/* Each reference: its length, and its counts of the hypothesis' n-grams. */
	size_t closest = 0, kept = 0;
	for (size_t r = 0; r < n_refs; r++) {
		if (ref_lens[r] == 0)
			continue; /* sacreBLEU drops empty references */
		if ((e = tokenize(sc, o->tokenize, o->lowercase, true, &sc->ref, refs[r],
				  ref_lens[r], diag)))
			return e;
		if ((e = lookup_ref(sc)))
			return llm_diag_set(diag, e, NULL, 0, "reference too long");
		const size_t R = sc->ref.nsp;
		/* The closest length, the shorter one on a tie. */
		size_t diff = R > L ? R - L : L - R, best = closest > L ? closest - L : L - closest;
		if (!kept || diff < best || (diff == best && R < closest))
			closest = R;
		kept++;
		const uint32_t stamp = (uint32_t)kept;
		const uint32_t *rid = sc->rid;
		for (size_t j = 0; j < R; j++) {
			size_t prefix = 0;
			for (uint32_t n = 1; n <= N && j + n <= R; n++) {
				uint32_t id = rid[j + n - 1];
				if (id == NO_ID)
					break;
				struct ng_slot *s = ng_find(nt, mask, gen, ng_key(prefix, id));
				if (s->gen != gen)
					break; /* no longer n-gram from here is the hypothesis' */
				prefix = (size_t)(s - nt) + 1;
				if (s->stamp != stamp) {
					s->stamp = stamp;
					s->cur = 0;
				}
				if (++s->cur > s->maxref)
					s->maxref = s->cur;
			}
		}
	}
	if (!kept)
		return llm_diag_set(diag, LLM_ERR_MISSING, NULL, 0,
				    "every reference is empty (sacreBLEU refuses such a segment)");

	double *correct = stats + 2, *total = stats + 2 + N;
	stats[0] = (double)L;
	stats[1] = (double)closest;
	for (uint32_t n = 1; n <= N; n++) {
		correct[n - 1] = 0;
		total[n - 1] = L >= n ? (double)(L - n + 1) : 0;
	}
	for (size_t k = 0; k < nused; k++) {
		const struct ng_slot *s = &nt[sc->used[k]];
		correct[s->order - 1] += s->count < s->maxref ? s->count : s->maxref;
	}
	return LLM_OK;
}

enum llm_err llm_bleu_stats(const struct llm_bleu_opts *o, const char *hyp, size_t hyp_len,
			    const char *const *refs, const size_t *ref_lens, size_t n_refs,
			    double *stats, struct llm_diag *diag)
{
	struct llm_bleu_scratch *sc;
	enum llm_err e = llm_bleu_scratch_new(&sc, diag);
	if (e)
		return e;
	e = llm_bleu_stats_scratch(sc, o, hyp, hyp_len, refs, ref_lens, n_refs, stats, diag);
	llm_bleu_scratch_free(sc);
	return e;
}

/* --- the score ------------------------------------------------------------------------------- */

/* sacreBLEU's my_log: log, with 0 floored to -9999999999. */
static double floored_log(double x)
{
	return x == 0.0 ? -9999999999.0 : log(x);
}

/* BLEU.compute_bleu, operation for operation, so that the doubles come out the same. */
void llm_bleu_compute(const struct llm_bleu_opts *o, const double *stats, struct llm_bleu_result *r)
{
	const int N = order_of(o);
	const double sv = smooth_value_of(o);
	memset(r, 0, sizeof *r);
	double sys_len = stats[0], ref_len = stats[1];
	double correct[LLM_BLEU_MAX_ORDER], total[LLM_BLEU_MAX_ORDER];
	memcpy(correct, stats + 2, (size_t)N * sizeof *correct);
	memcpy(total, stats + 2 + N, (size_t)N * sizeof *total);

	r->sys_len = sys_len;
	r->ref_len = ref_len;
	r->ratio = ref_len != 0 ? sys_len / ref_len : 0;
	if (sys_len < ref_len)
		r->bp = sys_len > 0 ? exp(1 - ref_len / sys_len) : 0.0;
	else
		r->bp = 1.0;

	bool any = false;
	for (int n = 0; n < N; n++)
		any = any || correct[n] != 0;
	if (!any) /* no match at all: 0, with no smoothing (sacreBLEU #141) */
		return;

	double smooth_mteval = 1.0;
	int eff_order = N;
	for (int n = 1; n <= N; n++) {
		if (o->smooth == LLM_BLEU_SMOOTH_ADD_K && n > 1) {
			correct[n - 1] += sv;
			total[n - 1] += sv;
		}
		if (total[n - 1] == 0)
			break;
		if (o->effective_order)
			eff_order = n;
		if (correct[n - 1] == 0) {
			if (o->smooth == LLM_BLEU_SMOOTH_EXP) {
				smooth_mteval *= 2;
				r->precisions[n - 1] = 100. / (smooth_mteval * total[n - 1]);
			} else if (o->smooth == LLM_BLEU_SMOOTH_FLOOR) {
				r->precisions[n - 1] = 100. * sv / total[n - 1];
			}
		} else {
			r->precisions[n - 1] = 100. * correct[n - 1] / total[n - 1];
		}
	}
	double sum = 0;
	for (int n = 0; n < eff_order; n++)
		sum += floored_log(r->precisions[n]);
	r->score = r->bp * exp(sum / eff_order);
}

enum llm_err llm_bleu_signature(const struct llm_bleu_opts *o, size_t n_refs, struct llm_buf *out,
				struct llm_diag *diag)
{
	char nrefs[32], smooth[48];
	if (n_refs)
		snprintf(nrefs, sizeof nrefs, "%zu", n_refs);
	else
		snprintf(nrefs, sizeof nrefs, "var");
	const char *method = (unsigned)o->smooth < sizeof smooth_names / sizeof *smooth_names
				 ? smooth_names[o->smooth]
				 : "?";
	if (o->smooth == LLM_BLEU_SMOOTH_FLOOR || o->smooth == LLM_BLEU_SMOOTH_ADD_K)
		snprintf(smooth, sizeof smooth, "%s[%.2f]", method, smooth_value_of(o));
	else
		snprintf(smooth, sizeof smooth, "%s", method);
	enum llm_err e =
	    llm_buf_printf(out, "nrefs:%s|case:%s|eff:%s|tok:%s|smooth:%s|version:%s", nrefs,
			   o->lowercase ? "lc" : "mixed", o->effective_order ? "yes" : "no",
			   llm_sacretok_name(o->tokenize), smooth, LLM_BLEU_SACREBLEU_VERSION);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "signature too long");
	return LLM_OK;
}
