/* TER as sacreBLEU 2.x computes it (see ter.h).
 *
 * The words of a segment are interned to 32-bit ids, so the edit distance compares numbers.
 * The search is sacreBLEU's lib_ter.py step for step: the same candidate shifts in the same
 * order, ranked by the same keys, cut off at the same candidate count, and scored with its beam
 * edit distance (a band of cells around the length-scaled diagonal, ties broken towards match or
 * substitution, then deletion, then insertion), because each of these changes the number on
 * some inputs.  Only the cells of the band are stored.  sacreBLEU caches the rows of every
 * hypothesis prefix it has seen; a row depends only on the prefix (every candidate has the
 * hypothesis' length, so the band is the same), so here a candidate starts from the rows of the
 * current hypothesis up to their common prefix, which gives the same numbers. */
#include "config.h"

#include "metrics/ter.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "metrics/pystr.h"
#include "text/unicode.h"

#define SACREBLEU_VERSION "2.4.3"

/* sacreBLEU's limits: the first three are Tercom's, the candidate cap its own.  The candidate
 * count runs over all the shifts of one hypothesis-reference pair. */
#define MAX_SHIFT_SIZE	     10
#define MAX_SHIFT_DIST	     50
#define BEAM_WIDTH	     25
#define MAX_SHIFT_CANDIDATES 1000

#define INF	  0x3fffffff /* a cell outside the band; INF + 1 still fits */
#define WORD_SEED 0x7465722d776f7264ULL
/* Normalization can triple a text more than once; past this many code points it is refused. */
#define MAX_CPS ((size_t)1 << 28)

enum op { OP_UNDEF = 0, OP_NOP, OP_SUB, OP_INS, OP_DEL };

struct cpvec {
	uint32_t *v;
	size_t len, cap;
};

/* One distinct word; its bytes are in the keys arena. */
struct wslot {
	uint64_t key;
	size_t off, len;
	uint32_t gen, id;
};

struct row {
	size_t lo, hi, base;
};

struct llm_ter_scratch {
	struct llm_buf low, norm, keys;
	struct cpvec a, b;

	struct wslot *wtab;
	size_t wtab_cap; /* a power of two */
	uint32_t wgen, n_words;

	uint32_t *ids; /* the words of every text, one after another */
	size_t n_ids, ids_cap;
	size_t *text_off; /* n_texts + 1 offsets into ids */
	size_t texts_cap;

	/* The band of the current hypothesis against one reference: row i holds the cells
	 * rows[i].lo <= j < rows[i].hi, at cost[rows[i].base + j - rows[i].lo] (op[] alike). */
	struct row *rows;
	size_t rows_cap;
	int32_t *cost;
	uint8_t *op;
	size_t cost_cap, op_cap;
	int32_t *roll[2]; /* two rows for scoring a candidate */
	size_t roll_cap[2];

	uint32_t *words, *cand; /* the current hypothesis and a shifted one */
	size_t words_cap, cand_cap;
	long *align;	       /* reference position -> hypothesis position */
	uint32_t *herr, *rerr; /* prefix sums of the error flags */
	uint8_t *trace;
	size_t align_cap, herr_cap, rerr_cap, trace_cap;
};

void llm_ter_opts_default(struct llm_ter_opts *o)
{
	*o = (struct llm_ter_opts){0};
}

size_t llm_ter_n_stats(const struct llm_ter_opts *o)
{
	(void)o;
	return 2;
}

enum llm_err llm_ter_scratch_new(struct llm_ter_scratch **out, struct llm_diag *diag)
{
	struct llm_ter_scratch *s = calloc(1, sizeof *s);
	*out = s;
	if (!s)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	llm_buf_init(&s->low, 4 * LLM_TER_MAX_BYTES);
	llm_buf_init(&s->norm, 4 * MAX_CPS);
	llm_buf_init(&s->keys, 4 * MAX_CPS);
	return LLM_OK;
}

void llm_ter_scratch_free(struct llm_ter_scratch *s)
{
	if (!s)
		return;
	llm_buf_free(&s->low);
	llm_buf_free(&s->norm);
	llm_buf_free(&s->keys);
	free(s->a.v);
	free(s->b.v);
	free(s->wtab);
	free(s->ids);
	free(s->text_off);
	free(s->rows);
	free(s->cost);
	free(s->op);
	free(s->roll[0]);
	free(s->roll[1]);
	free(s->words);
	free(s->cand);
	free(s->align);
	free(s->herr);
	free(s->rerr);
	free(s->trace);
	free(s);
}

/* Make *p hold at least need elements of size elem. */
static bool reserve(void *pp, size_t *cap, size_t need, size_t elem)
{
	void **p = pp;
	if (need <= *cap)
		return true;
	size_t c = *cap ? *cap : 64;
	while (c < need)
		c *= 2;
	void *q = realloc(*p, c * elem);
	if (!q)
		return false;
	*p = q;
	*cap = c;
	return true;
}

static enum llm_err nomem(struct llm_diag *diag)
{
	return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

/* --- the tokenizer ------------------------------------------------------------------------ */

/* Room for an output of up to 3 · in + 2 code points: no pass grows a text more. */
static enum llm_err cv_prepare(struct cpvec *out, size_t in_len, struct llm_diag *diag)
{
	size_t need = 3 * in_len + 2;
	if (need > MAX_CPS)
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0, "text too long to normalize");
	uint32_t *v = out->v;
	size_t cap = out->cap;
	if (!reserve(&v, &cap, need, sizeof *v))
		return nomem(diag);
	out->v = v;
	out->cap = cap;
	out->len = 0;
	return LLM_OK;
}

static inline void put(struct cpvec *o, uint32_t c)
{
	o->v[o->len++] = c;
}

static void put_str(struct cpvec *o, const char *s)
{
	while (*s)
		put(o, (unsigned char)*s++);
}

static bool at(const struct cpvec *in, size_t i, const char *lit)
{
	for (; *lit; lit++, i++)
		if (i >= in->len || in->v[i] != (unsigned char)*lit)
			return false;
	return true;
}

/* re.sub with a literal pattern: left to right, matches do not overlap. */
static void replace_lit(const struct cpvec *in, struct cpvec *out, const char *pat, const char *rep)
{
	size_t plen = strlen(pat);
	for (size_t i = 0; i < in->len;) {
		if (in->v[i] == (unsigned char)pat[0] && at(in, i, pat)) {
			put_str(out, rep);
			i += plen;
		} else {
			put(out, in->v[i++]);
		}
	}
}

static bool is_digit(uint32_t c)
{
	return c >= '0' && c <= '9';
}
static bool not_digit(uint32_t c)
{
	return !is_digit(c);
}
static bool is_dot_comma(uint32_t c)
{
	return c == '.' || c == ',';
}
static bool is_dash(uint32_t c)
{
	return c == '-';
}

/* The class [{-~[-` -&(-+:-@/]: ASCII punctuation and space, less ' , - . */
static bool is_tercom_punct(uint32_t c)
{
	return (c >= '{' && c <= '~') || (c >= '[' && c <= '`') || (c >= ' ' && c <= '&') ||
	       (c >= '(' && c <= '+') || (c >= ':' && c <= '@') || c == '/';
}

static bool is_asian_punct(uint32_t c)
{
	return c == 0x3001 || c == 0x3002 || (c >= 0x3008 && c <= 0x3011) ||
	       (c >= 0x3014 && c <= 0x301f) || (c >= 0xff61 && c <= 0xff65) || c == 0x30fb;
}

static bool is_full_width_punct(uint32_t c)
{
	return c == 0xff0e || c == 0xff0c || c == 0xff1f || c == 0xff1a || c == 0xff1b ||
	       c == 0xff01 || c == 0xff02 || c == 0xff08 || c == 0xff09;
}

/* Every character that one of _normalize_asian's passes sets apart with spaces.  sacreBLEU runs
 * them one after another; as each only puts spaces around single characters, one pass over the
 * union gives the same words.  Its three kana passes anchor at the start of the text, which
 * after the general normalization is always a space, so they never match and are left out. */
static bool is_asian_split(uint32_t c)
{
	return (c >= 0x4e00 && c <= 0x9fff) || (c >= 0x3400 && c <= 0x4dbf) ||
	       (c >= 0x31c0 && c <= 0x31ef) || (c >= 0x2e80 && c <= 0x2eff) ||
	       (c >= 0x3300 && c <= 0x33ff) || (c >= 0xf900 && c <= 0xfaff) ||
	       (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0x3200 && c <= 0x3f22) || is_asian_punct(c) ||
	       is_full_width_punct(c);
}

/* re.sub(r"([class])", r" \1 ") */
static void wrap(const struct cpvec *in, struct cpvec *out, bool (*cls)(uint32_t))
{
	for (size_t i = 0; i < in->len; i++) {
		uint32_t c = in->v[i];
		if (cls(c)) {
			put(out, ' ');
			put(out, c);
			put(out, ' ');
		} else {
			put(out, c);
		}
	}
}

/* re.sub(r"(A)(B)", pre + \1 + mid + \2 + post) for one-character classes A and B. */
static void pair(const struct cpvec *in, struct cpvec *out, bool (*a)(uint32_t),
		 bool (*b)(uint32_t), const char *pre, const char *mid, const char *post)
{
	for (size_t i = 0; i < in->len;) {
		if (i + 1 < in->len && a(in->v[i]) && b(in->v[i + 1])) {
			put_str(out, pre);
			put(out, in->v[i]);
			put_str(out, mid);
			put(out, in->v[i + 1]);
			put_str(out, post);
			i += 2;
		} else {
			put(out, in->v[i++]);
		}
	}
}

/* re.sub(r"[class]", "") */
static void drop(const struct cpvec *in, struct cpvec *out, bool (*cls)(uint32_t))
{
	for (size_t i = 0; i < in->len; i++)
		if (!cls(in->v[i]))
			put(out, in->v[i]);
}

static bool is_tercom_removed(uint32_t c)
{
	return c == '.' || c == ',' || c == '?' || c == ':' || c == ';' || c == '!' || c == '"' ||
	       c == '(' || c == ')';
}

static bool is_asian_removed(uint32_t c)
{
	return is_asian_punct(c) || is_full_width_punct(c);
}

/* The passes of _normalize_general_and_western, _normalize_asian and _remove_punct on s->a,
 * ping-ponging with s->b; the result is left in s->a. */
static enum llm_err normalize_cps(struct llm_ter_scratch *s, const struct llm_ter_opts *o,
				  struct llm_diag *diag)
{
	enum llm_err e;
	struct cpvec tmp;
#define PASS(call)                                                                                 \
	do {                                                                                       \
		if ((e = cv_prepare(&s->b, s->a.len, diag)))                                       \
			return e;                                                                  \
		call;                                                                              \
		tmp = s->a;                                                                        \
		s->a = s->b;                                                                       \
		s->b = tmp;                                                                        \
	} while (0)

	if (o->normalized) {
		PASS(replace_lit(&s->a, &s->b, "\n-", ""));
		PASS(replace_lit(&s->a, &s->b, "\n", " "));
		PASS(replace_lit(&s->a, &s->b, "&quot;", "\""));
		PASS(replace_lit(&s->a, &s->b, "&amp;", "&"));
		PASS(replace_lit(&s->a, &s->b, "&lt;", "<"));
		PASS(replace_lit(&s->a, &s->b, "&gt;", ">"));
		/* f" {sent} " */
		if ((e = cv_prepare(&s->b, s->a.len, diag)))
			return e;
		put(&s->b, ' ');
		memcpy(s->b.v + 1, s->a.v, s->a.len * sizeof *s->a.v);
		s->b.len += s->a.len;
		put(&s->b, ' ');
		tmp = s->a;
		s->a = s->b;
		s->b = tmp;
		PASS(wrap(&s->a, &s->b, is_tercom_punct));
		PASS(replace_lit(&s->a, &s->b, "'s ", " 's "));
		/* r"'s$": the text ends in a space here, so this never fires; kept for the letter
		 * of the rule ($ also matches before a final newline). */
		{
			size_t n = s->a.len;
			const uint32_t *v = s->a.v;
			size_t at_s = n;
			if (n >= 2 && v[n - 2] == '\'' && v[n - 1] == 's')
				at_s = n - 2;
			else if (n >= 3 && v[n - 3] == '\'' && v[n - 2] == 's' && v[n - 1] == '\n')
				at_s = n - 3;
			if (at_s < n) {
				if ((e = cv_prepare(&s->b, n, diag)))
					return e;
				memcpy(s->b.v, v, at_s * sizeof *v);
				s->b.len = at_s;
				put(&s->b, ' ');
				memcpy(s->b.v + s->b.len, v + at_s, (n - at_s) * sizeof *v);
				s->b.len += n - at_s;
				tmp = s->a;
				s->a = s->b;
				s->b = tmp;
			}
		}
		PASS(pair(&s->a, &s->b, not_digit, is_dot_comma, "", " ", " "));
		PASS(pair(&s->a, &s->b, is_dot_comma, not_digit, " ", " ", ""));
		PASS(pair(&s->a, &s->b, is_digit, is_dash, "", " ", " "));
		if (o->asian_support)
			PASS(wrap(&s->a, &s->b, is_asian_split));
	}
	if (o->no_punct) {
		PASS(drop(&s->a, &s->b, is_tercom_removed));
		if (o->asian_support)
			PASS(drop(&s->a, &s->b, is_asian_removed));
	}
#undef PASS
	return LLM_OK;
}

/* Tokenize t[0..n) up to the final split: *out, *out_len is the text whose Python split()
 * gives the words (t itself, or one of the scratch buffers). */
static enum llm_err tokenize(struct llm_ter_scratch *s, const struct llm_ter_opts *o, const char *t,
			     size_t n, const char **out, size_t *out_len, struct llm_diag *diag)
{
	enum llm_err e;
	if (n > LLM_TER_MAX_BYTES)
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0, "text over %zu bytes",
				    LLM_TER_MAX_BYTES);
	size_t ok = llm_utf8_valid_prefix(t, n);
	if (ok != n)
		return llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0, "invalid UTF-8 at byte %zu", ok);

	/* sacreBLEU's TER strips trailing whitespace (sent.rstrip()) before tokenizing. */
	size_t end = n;
	while (end > 0) {
		size_t k = end - 1;
		while (k > 0 && ((unsigned char)t[k] & 0xc0) == 0x80)
			k--;
		uint32_t cp;
		llm_unicode_decode(t + k, end - k, &cp);
		if (!llm_py_isspace(cp))
			break;
		end = k;
	}
	n = end;

	if (!o->case_sensitive && n > 0) {
		llm_buf_clear(&s->low);
		if ((e = llm_py_lower(t, n, &s->low, diag)))
			return e;
		t = s->low.data;
		n = s->low.len;
	}
	if (n == 0 || (!o->normalized && !o->no_punct)) {
		*out = t;
		*out_len = n;
		return LLM_OK;
	}

	if ((e = cv_prepare(&s->a, n, diag)))
		return e;
	for (size_t i = 0; i < n;) {
		uint32_t cp;
		i += llm_unicode_decode(t + i, n - i, &cp);
		put(&s->a, cp);
	}
	if ((e = normalize_cps(s, o, diag)))
		return e;
	llm_buf_clear(&s->norm);
	if ((e = llm_buf_reserve(&s->norm, 4 * s->a.len)))
		return llm_diag_set(diag, e, NULL, 0, "text too long to normalize");
	for (size_t i = 0; i < s->a.len; i++) {
		char enc[4];
		size_t k = llm_unicode_encode(s->a.v[i], enc);
		memcpy(s->norm.data + s->norm.len, enc, k);
		s->norm.len += k;
	}
	s->norm.data[s->norm.len] = '\0';
	*out = s->norm.data;
	*out_len = s->norm.len;
	return LLM_OK;
}

struct joiner {
	struct llm_buf *out;
	size_t start;
	enum llm_err err;
};

static bool join_word(void *ctx, const char *w, size_t len)
{
	struct joiner *j = ctx;
	if (j->out->len > j->start && (j->err = llm_buf_putc(j->out, ' ')))
		return false;
	return !(j->err = llm_buf_append(j->out, w, len));
}

enum llm_err llm_ter_tokenize(const struct llm_ter_opts *o, const char *t, size_t n,
			      struct llm_buf *out, struct llm_diag *diag)
{
	struct llm_ter_scratch *s;
	enum llm_err e = llm_ter_scratch_new(&s, diag);
	if (e)
		return e;
	const char *p;
	size_t len;
	e = tokenize(s, o, t, n, &p, &len, diag);
	if (!e) {
		struct joiner j = {out, out->len, LLM_OK};
		llm_py_split(p, len, join_word, &j);
		if ((e = j.err))
			llm_diag_set(diag, e, NULL, 0, "tokenized text too long");
	}
	llm_ter_scratch_free(s);
	return e;
}

/* --- words to ids ------------------------------------------------------------------------- */

static bool wtab_grow(struct llm_ter_scratch *s)
{
	size_t cap = s->wtab_cap ? 2 * s->wtab_cap : 256;
	struct wslot *t = calloc(cap, sizeof *t);
	if (!t)
		return false;
	for (size_t i = 0; i < s->wtab_cap; i++) {
		const struct wslot *e = &s->wtab[i];
		if (e->gen != s->wgen)
			continue;
		size_t j = (size_t)e->key & (cap - 1);
		while (t[j].gen == s->wgen)
			j = (j + 1) & (cap - 1);
		t[j] = *e;
	}
	free(s->wtab);
	s->wtab = t;
	s->wtab_cap = cap;
	return true;
}

struct interner {
	struct llm_ter_scratch *s;
	size_t words; /* of the current text */
	enum llm_err err;
};

static bool intern_word(void *ctx, const char *w, size_t len)
{
	struct interner *in = ctx;
	struct llm_ter_scratch *s = in->s;
	if (++in->words > LLM_TER_MAX_WORDS) {
		in->err = LLM_ERR_TOO_BIG;
		return false;
	}
	if ((2 * ((size_t)s->n_words + 1) > s->wtab_cap && !wtab_grow(s)) ||
	    !reserve(&s->ids, &s->ids_cap, s->n_ids + 1, sizeof *s->ids)) {
		in->err = LLM_ERR_NOMEM;
		return false;
	}
	uint64_t key = llm_hash64(w, len, WORD_SEED);
	size_t mask = s->wtab_cap - 1;
	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
		struct wslot *e = &s->wtab[i];
		if (e->gen != s->wgen) {
			size_t off = s->keys.len;
			if ((in->err = llm_buf_append(&s->keys, w, len)))
				return false;
			*e = (struct wslot){
			    .key = key, .off = off, .len = len, .gen = s->wgen, .id = s->n_words++};
			s->ids[s->n_ids++] = e->id;
			return true;
		}
		if (e->key == key && e->len == len && memcmp(s->keys.data + e->off, w, len) == 0) {
			s->ids[s->n_ids++] = e->id;
			return true;
		}
	}
}

/* --- the beam edit distance --------------------------------------------------------------- */

/* The band of an n-word hypothesis against an nr-word reference, as sacreBLEU's
 * _edit_distance lays it out. */
static enum llm_err band(struct llm_ter_scratch *s, size_t n, size_t nr, struct llm_diag *diag)
{
	if (!reserve(&s->rows, &s->rows_cap, n + 1, sizeof *s->rows))
		return nomem(diag);
	double ratio = n ? (double)nr / (double)n : 1.0;
	long bw = BEAM_WIDTH;
	if (BEAM_WIDTH < ratio / 2)
		bw = (long)ceil(ratio / 2 + BEAM_WIDTH);
	size_t cells = 0;
	for (size_t i = 0; i <= n; i++) {
		long lo = 0, hi = (long)nr + 1;
		if (i > 0) {
			long diag_j = (long)floor((double)i * ratio);
			lo = diag_j - bw > 0 ? diag_j - bw : 0;
			hi = diag_j + bw < (long)nr + 1 ? diag_j + bw : (long)nr + 1;
			if (i == n)
				hi = (long)nr + 1;
			if (hi < lo)
				hi = lo;
		}
		s->rows[i] = (struct row){(size_t)lo, (size_t)hi, cells};
		cells += (size_t)(hi - lo);
	}
	if (!reserve(&s->cost, &s->cost_cap, cells, sizeof *s->cost) ||
	    !reserve(&s->op, &s->op_cap, cells, sizeof *s->op) ||
	    !reserve(&s->roll[0], &s->roll_cap[0], nr + 1, sizeof *s->roll[0]) ||
	    !reserve(&s->roll[1], &s->roll_cap[1], nr + 1, sizeof *s->roll[1]))
		return nomem(diag);

	/* Row 0: turning the empty hypothesis into the reference, one insertion per word. */
	for (size_t j = 0; j <= nr; j++) {
		s->cost[j] = (int32_t)j;
		s->op[j] = OP_INS;
	}
	return LLM_OK;
}

/* One row of the distance: cells lo..hi-1 of row i into cur (ops too when given), from row
 * i - 1 (cells plo..phi-1 in prev); hw is hypothesis word i - 1. */
static void dist_row(const int32_t *prev, size_t plo, size_t phi, int32_t *cur, uint8_t *ops,
		     size_t lo, size_t hi, uint32_t hw, const uint32_t *ref)
{
#define PREV(j) ((j) >= plo && (j) < phi ? prev[(j)-plo] : INF)
	for (size_t j = lo; j < hi; j++) {
		int32_t c, d;
		uint8_t op;
		if (j == 0) {
			c = PREV(0) + 1;
			op = OP_DEL;
		} else {
			bool same = hw == ref[j - 1];
			c = INF;
			op = OP_UNDEF;
			d = PREV(j - 1) + (same ? 0 : 1);
			if (c > d) {
				c = d;
				op = same ? OP_NOP : OP_SUB;
			}
			d = PREV(j) + 1;
			if (c > d) {
				c = d;
				op = OP_DEL;
			}
			d = (j > lo ? cur[j - 1 - lo] : INF) + 1;
			if (c > d) {
				c = d;
				op = OP_INS;
			}
		}
		cur[j - lo] = c;
		if (ops)
			ops[j - lo] = op;
	}
#undef PREV
}

/* Rows from + 1..n of the stored band for the hypothesis s->words. */
static void fill_rows(struct llm_ter_scratch *s, size_t from, size_t n, const uint32_t *ref)
{
	for (size_t i = from + 1; i <= n; i++) {
		const struct row *a = &s->rows[i - 1], *b = &s->rows[i];
		dist_row(s->cost + a->base, a->lo, a->hi, s->cost + b->base, s->op + b->base, b->lo,
			 b->hi, s->words[i - 1], ref);
	}
}

static int32_t final_cost(const struct llm_ter_scratch *s, size_t n, size_t nr)
{
	return s->cost[s->rows[n].base + nr - s->rows[n].lo];
}

/* The distance of words (equal to s->words in their first p words), from the stored rows. */
static int32_t candidate_cost(struct llm_ter_scratch *s, const uint32_t *words, size_t p, size_t n,
			      size_t nr, const uint32_t *ref)
{
	if (p >= n)
		return final_cost(s, n, nr);
	const int32_t *prev = s->cost + s->rows[p].base;
	size_t plo = s->rows[p].lo, phi = s->rows[p].hi;
	int32_t *cur = NULL;
	for (size_t i = p + 1; i <= n; i++) {
		const struct row *b = &s->rows[i];
		cur = s->roll[i & 1];
		dist_row(prev, plo, phi, cur, NULL, b->lo, b->hi, words[i - 1], ref);
		prev = cur;
		plo = b->lo;
		phi = b->hi;
	}
	return cur[nr - s->rows[n].lo];
}

/* The alignment of s->words with the reference from the stored band's trace: sacreBLEU flips
 * the trace (reading insertions as deletions) and walks it into align, ref_err and hyp_err. */
static enum llm_err alignment(struct llm_ter_scratch *s, size_t n, size_t nr, struct llm_diag *diag)
{
	size_t k = 0, i = n, j = nr;
	while (i > 0 || j > 0) {
		const struct row *b = &s->rows[i];
		uint8_t op = j >= b->lo && j < b->hi ? s->op[b->base + j - b->lo] : OP_UNDEF;
		s->trace[k++] = op;
		if (op == OP_NOP || op == OP_SUB) {
			i--;
			j--;
		} else if (op == OP_INS) {
			j--;
		} else if (op == OP_DEL) {
			i--;
		} else {
			return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
					    "TER: the edit trace left the beam");
		}
	}
	long ph = -1, pr = -1;
	s->herr[0] = s->rerr[0] = 0;
	while (k > 0) {
		uint8_t op = s->trace[--k];
		if (op == OP_NOP || op == OP_SUB) {
			uint32_t err = op == OP_SUB;
			ph++;
			pr++;
			s->align[pr] = ph;
			s->herr[ph + 1] = s->herr[ph] + err;
			s->rerr[pr + 1] = s->rerr[pr] + err;
		} else if (op == OP_DEL) { /* flipped: an insertion, a hypothesis word */
			ph++;
			s->herr[ph + 1] = s->herr[ph] + 1;
		} else { /* flipped: a deletion, a reference word */
			pr++;
			s->align[pr] = ph;
			s->rerr[pr + 1] = s->rerr[pr] + 1;
		}
	}
	return LLM_OK;
}

/* sacreBLEU's _perform_shift of words[start, start + len) to before target, Python's slice
 * clamping included. */
static void perform_shift(const uint32_t *w, size_t n, size_t start, size_t len, size_t target,
			  uint32_t *out)
{
	size_t k = 0;
#define COPY(from, to)                                                                             \
	do {                                                                                       \
		size_t f_ = (from), t_ = (to);                                                     \
		if (t_ > f_) {                                                                     \
			memcpy(out + k, w + f_, (t_ - f_) * sizeof *w);                            \
			k += t_ - f_;                                                              \
		}                                                                                  \
	} while (0)
	if (target < start) {
		COPY(0, target);
		COPY(start, start + len);
		COPY(target, start);
		COPY(start + len, n);
	} else if (target > start + len) {
		COPY(0, start);
		COPY(start + len, target);
		COPY(start, start + len);
		COPY(target, n);
	} else {
		size_t m = len + target < n ? len + target : n;
		COPY(0, start);
		COPY(start + len, m);
		COPY(start, start + len);
		COPY(m, n);
	}
#undef COPY
}

struct shift {
	bool have;
	long delta;
	size_t len, start, target;
};

/* sacreBLEU ranks a shift by (gain, length, -start, -target): the first larger one wins. */
static bool better(const struct shift *b, long delta, size_t len, size_t start, size_t target)
{
	if (!b->have)
		return true;
	if (delta != b->delta)
		return delta > b->delta;
	if (len != b->len)
		return len > b->len;
	if (start != b->start)
		return start < b->start;
	return target < b->target;
}

/* The edits turning hyp into ref: shifts found greedily, then the beam edit distance. */
static enum llm_err ter_pair(struct llm_ter_scratch *s, const uint32_t *hyp, size_t n,
			     const uint32_t *ref, size_t nr, long *edits, struct llm_diag *diag)
{
	if (nr == 0) {
		*edits = (long)n;
		return LLM_OK;
	}
	enum llm_err e = band(s, n, nr, diag);
	if (e)
		return e;
	if (!reserve(&s->words, &s->words_cap, n + 1, sizeof *s->words) ||
	    !reserve(&s->cand, &s->cand_cap, n + 1, sizeof *s->cand) ||
	    !reserve(&s->align, &s->align_cap, nr + 1, sizeof *s->align) ||
	    !reserve(&s->herr, &s->herr_cap, n + 1, sizeof *s->herr) ||
	    !reserve(&s->rerr, &s->rerr_cap, nr + 1, sizeof *s->rerr) ||
	    !reserve(&s->trace, &s->trace_cap, n + nr + 1, sizeof *s->trace))
		return nomem(diag);

	if (n)
		memcpy(s->words, hyp, n * sizeof *hyp);
	fill_rows(s, 0, n, ref);
	long shifts = 0, pre;
	size_t checked = 0;
	for (;;) {
		pre = final_cost(s, n, nr);
		if ((e = alignment(s, n, nr, diag)))
			return e;
		struct shift best = {0};
		bool stop = false;
		const uint32_t *w = s->words;
		for (size_t sh = 0; sh < n && !stop; sh++) {
			for (size_t sr = 0; sr < nr && !stop; sr++) {
				if ((sr > sh ? sr - sh : sh - sr) > MAX_SHIFT_DIST)
					continue;
				size_t len = 0;
				while (len < MAX_SHIFT_SIZE && w[sh + len] == ref[sr + len]) {
					len++;
					/* Shift only what is wrong in the hypothesis to where the
					 * reference is not matched, and not within itself. */
					if (s->herr[sh + len] - s->herr[sh] != 0 &&
					    s->rerr[sr + len] - s->rerr[sr] != 0 &&
					    !(s->align[sr] >= (long)sh &&
					      s->align[sr] < (long)(sh + len))) {
						long prev_idx = -1;
						for (long off = -1; off < (long)len; off++) {
							long idx =
							    (long)sr + off == -1
								? 0
								: s->align[(long)sr + off] + 1;
							if (idx == prev_idx)
								continue;
							prev_idx = idx;
							perform_shift(w, n, sh, len, (size_t)idx,
								      s->cand);
							size_t p =
							    sh < (size_t)idx ? sh : (size_t)idx;
							while (p < n && s->cand[p] == w[p])
								p++;
							long d = pre - candidate_cost(s, s->cand, p,
										      n, nr, ref);
							checked++;
							if (better(&best, d, len, sh, (size_t)idx))
								best = (struct shift){
								    true, d, len, sh, (size_t)idx};
						}
						if (checked >= MAX_SHIFT_CANDIDATES)
							stop = true;
					}
					if (stop || sh + len == n || sr + len == nr)
						break;
				}
			}
		}
		/* sacreBLEU stops at the cap before taking the best shift of that round. */
		if (checked >= MAX_SHIFT_CANDIDATES || !best.have || best.delta <= 0)
			break;
		perform_shift(s->words, n, best.start, best.len, best.target, s->cand);
		size_t p = best.start < best.target ? best.start : best.target;
		while (p < n && s->cand[p] == s->words[p])
			p++;
		memcpy(s->words, s->cand, n * sizeof *s->words);
		fill_rows(s, p, n, ref);
		shifts++;
	}
	*edits = shifts + pre;
	return LLM_OK;
}

/* --- statistics --------------------------------------------------------------------------- */

enum llm_err llm_ter_scratch_stats(struct llm_ter_scratch *s, const struct llm_ter_opts *o,
				   const char *hyp, size_t hyp_len, const char *const *refs,
				   const size_t *ref_lens, size_t n_refs, double *stats,
				   struct llm_diag *diag)
{
	if (n_refs == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "TER needs a reference");
	if (!reserve(&s->text_off, &s->texts_cap, n_refs + 2, sizeof *s->text_off))
		return nomem(diag);
	if (!s->wtab && !wtab_grow(s))
		return nomem(diag);
	if (++s->wgen == 0) {
		memset(s->wtab, 0, s->wtab_cap * sizeof *s->wtab);
		s->wgen = 1;
	}
	s->n_words = 0;
	s->n_ids = 0;
	llm_buf_clear(&s->keys);

	for (size_t t = 0; t <= n_refs; t++) {
		const char *p;
		size_t len;
		enum llm_err e = t == 0
				     ? tokenize(s, o, hyp, hyp_len, &p, &len, diag)
				     : tokenize(s, o, refs[t - 1], ref_lens[t - 1], &p, &len, diag);
		if (e)
			return e;
		s->text_off[t] = s->n_ids;
		struct interner in = {s, 0, LLM_OK};
		llm_py_split(p, len, intern_word, &in);
		if (in.err == LLM_ERR_TOO_BIG)
			return llm_diag_set(diag, in.err, NULL, 0, "text over %d words",
					    LLM_TER_MAX_WORDS);
		if (in.err)
			return llm_diag_set(diag, in.err, NULL, 0, "out of memory");
	}
	s->text_off[n_refs + 1] = s->n_ids;

	long best = -1;
	size_t ref_words = 0;
	size_t n = s->text_off[1];
	for (size_t r = 0; r < n_refs; r++) {
		size_t off = s->text_off[r + 1], nr = s->text_off[r + 2] - off;
		long edits = 0;
		enum llm_err e = ter_pair(s, s->ids, n, s->ids + off, nr, &edits, diag);
		if (e)
			return e;
		ref_words += nr;
		if (best < 0 || edits < best)
			best = edits;
	}
	stats[0] = (double)best;
	stats[1] = (double)ref_words / (double)n_refs;
	return LLM_OK;
}

enum llm_err llm_ter_stats(const struct llm_ter_opts *o, const char *hyp, size_t hyp_len,
			   const char *const *refs, const size_t *ref_lens, size_t n_refs,
			   double *stats, struct llm_diag *diag)
{
	struct llm_ter_scratch *s;
	enum llm_err e = llm_ter_scratch_new(&s, diag);
	if (e)
		return e;
	e = llm_ter_scratch_stats(s, o, hyp, hyp_len, refs, ref_lens, n_refs, stats, diag);
	llm_ter_scratch_free(s);
	return e;
}

double llm_ter_compute(const struct llm_ter_opts *o, const double *stats)
{
	(void)o;
	double score;
	if (stats[1] > 0)
		score = stats[0] / stats[1];
	else if (stats[0] > 0)
		score = 1.0; /* empty reference(s), words in the hypothesis */
	else
		score = 0.0;
	return 100 * score;
}

enum llm_err llm_ter_signature(const struct llm_ter_opts *o, size_t n_refs, struct llm_buf *out,
			       struct llm_diag *diag)
{
	enum llm_err e =
	    n_refs ? llm_buf_printf(out, "nrefs:%zu", n_refs) : llm_buf_puts(out, "nrefs:var");
	if (!e)
		e = llm_buf_printf(out, "|case:%s|tok:tercom|norm:%s|punct:%s|asian:%s|version:%s",
				   o->case_sensitive ? "mixed" : "lc", o->normalized ? "yes" : "no",
				   o->no_punct ? "no" : "yes", o->asian_support ? "yes" : "no",
				   SACREBLEU_VERSION);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "signature too long");
	return LLM_OK;
}
