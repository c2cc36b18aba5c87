/* chrF and chrF++ as sacreBLEU 2.x computes them (see chrf.h).
 *
 * A segment becomes one array of 32-bit symbols: the code points of each text (whitespace
 * dropped unless kept), then, for chrF++, the ids of its words.  Counting allocates nothing per
 * n-gram: the reference's n-grams go into an open-addressing table as a trie, an n-gram being
 * the pair (id of its first n - 1 symbols, last symbol), so two n-grams are equal exactly when
 * their 64-bit keys are, with no string to compare.  Each window of the hypothesis then walks
 * the trie from its first symbol and takes one reference occurrence at each order where one is
 * left; that gives sum(min(hyp, ref)) per order, the clipped matches, without counting the
 * hypothesis, and a window stops at the first order the reference lacks.  The table is emptied
 * between references by bumping a generation number instead of clearing it. */
#include "config.h"

#include "metrics/chrf.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/hash.h"
#include "core/json.h"
#include "metrics/pystr.h"
#include "text/unicode.h"

#define SACREBLEU_VERSION "2.4.3"
#define EPS		  1e-16 /* sacreBLEU's stand-in for an undefined precision, recall or F */
#define WORD_SEED	  0x63687246776f7264ULL

/* One distinct reference n-gram; its id is its index + FIRST_ID. */
struct slot {
	uint64_t key; /* id of the (n - 1)-gram << 32 | last symbol */
	uint32_t gen; /* the slot is empty unless gen is the table's */
	int32_t left; /* reference occurrences no hypothesis n-gram has taken yet */
};

/* The ids of the empty prefix of character and of word n-grams. */
#define CHAR_ROOT 0
#define WORD_ROOT 1
#define FIRST_ID  2

/* One distinct word of the segment, for chrF++. */
struct wslot {
	uint64_t key;
	const char *p;
	size_t len;
	uint32_t gen;
	uint32_t id;
};

/* Where one text's symbols lie in sym. */
struct span {
	size_t chars, n_chars; /* code points */
	size_t words, n_words; /* word ids */
};

struct llm_chrf_scratch {
	struct llm_buf low; /* the lowercased texts, one after another */
	size_t *low_off;    /* n_texts + 1 offsets into low */
	struct span *spans;
	size_t texts_cap;

	uint32_t *sym;
	size_t sym_cap, n_sym;
	uint32_t *ids; /* one per symbol of the longest text: n-gram ids while counting */
	size_t ids_cap;

	struct slot *tab;
	size_t tab_cap;	    /* slots allocated */
	size_t mask;	    /* slots in use for this reference, less one (a power of two) */
	unsigned tab_shift; /* 64 - log2(mask + 1) */
	uint32_t gen;

	struct wslot *wtab;
	size_t wtab_cap; /* a power of two, or 0 */
	uint32_t wgen, n_words;
	bool nomem; /* a word could not be added */
};

void llm_chrf_opts_default(struct llm_chrf_opts *o)
{
	*o = (struct llm_chrf_opts){.char_order = 6, .word_order = 0, .beta = 2};
}

size_t llm_chrf_n_stats(const struct llm_chrf_opts *o)
{
	return 3 * (size_t)(o->char_order + o->word_order);
}

enum llm_err llm_chrf_scratch_new(struct llm_chrf_scratch **out, struct llm_diag *diag)
{
	*out = calloc(1, sizeof **out);
	if (!*out)
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	llm_buf_init(&(*out)->low, LLM_CHRF_MAX_BYTES * 2);
	return LLM_OK;
}

void llm_chrf_scratch_free(struct llm_chrf_scratch *s)
{
	if (!s)
		return;
	llm_buf_free(&s->low);
	free(s->low_off);
	free(s->spans);
	free(s->sym);
	free(s->ids);
	free(s->tab);
	free(s->wtab);
	free(s);
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 64;
	while (c < n)
		c <<= 1;
	return c;
}

/* A fresh, empty table for need n-grams (kept at most half full).  A short segment after a
 * long one uses only the front of the table, so its n-grams stay close together in the cache. */
static enum llm_err table_reset(struct llm_chrf_scratch *s, size_t need, struct llm_diag *diag)
{
	if (need > ((size_t)1 << 30))
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0, "segment has too many n-grams");
	size_t cap = pow2_at_least(2 * need + 1);
	if (cap > s->tab_cap) {
		free(s->tab);
		s->tab = calloc(cap + 1, sizeof *s->tab); /* + the slot that stands for "absent" */
		if (!s->tab) {
			s->tab_cap = 0;
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
		s->tab_cap = cap;
		s->gen = 0;
	}
	if (++s->gen == 0) {
		memset(s->tab, 0, (s->tab_cap + 1) * sizeof *s->tab);
		s->gen = 1;
	}
	s->mask = cap - 1;
	s->tab_shift = 64;
	for (size_t c = cap; c > 1; c >>= 1)
		s->tab_shift--;
	return LLM_OK;
}

/* The table as the counting loops use it: a copy in locals, which a store to a slot cannot
 * alias, so the loops keep it in registers. */
struct table {
	struct slot *tab;
	size_t mask;
	unsigned shift;
	uint32_t gen;
	size_t none; /* the slot past the table's, whose left stays 0: "not there" */
};

/* Fibonacci hashing: the key is exact, the hash only spreads it. */
static inline size_t slot_of(struct table t, uint64_t key)
{
	return (size_t)((key * 0x9E3779B97F4A7C15ULL) >> t.shift);
}

/* Count one reference n-gram; returns its id. */
static inline uint32_t table_add(struct table t, uint64_t key)
{
	for (size_t i = slot_of(t, key);; i = (i + 1) & t.mask) {
		struct slot *e = &t.tab[i];
		if (e->gen != t.gen) {
			*e = (struct slot){.key = key, .gen = t.gen, .left = 1};
			return (uint32_t)i + FIRST_ID;
		}
		if (e->key == key) {
			e->left++;
			return (uint32_t)i + FIRST_ID;
		}
	}
}

/* The slot of the reference n-gram of this key, or t.none. */
static inline size_t table_find(struct table t, uint64_t key)
{
	for (size_t i = slot_of(t, key);; i = (i + 1) & t.mask) {
		const struct slot *e = &t.tab[i];
		if (e->gen != t.gen)
			return t.none;
		if (e->key == key)
			return i;
	}
}

/* The n-grams are walked order by order rather than start by start: within one order the
 * lookups of successive windows do not depend on one another, so the processor overlaps them,
 * where a walk from each start would wait on each lookup before the next.  ids[i] holds the id
 * of the window at i of the previous order. */

/* Every n-gram of orders 1..max_n in sym[0, len) into the table. */
static void add_windows(struct table t, const uint32_t *sym, size_t len, size_t max_n,
			uint32_t root, uint32_t *ids)
{
	for (size_t i = 0; i < len; i++)
		ids[i] = root;
	for (size_t n = 0; n < max_n && n < len; n++)
		for (size_t i = 0; i + n < len; i++)
			ids[i] = table_add(t, (uint64_t)ids[i] << 32 | sym[i + n]);
}

/* Match every n-gram of orders 1..max_n in sym[0, len) against the table, counting matches
 * per order into match.  Only the windows whose shorter n-gram the reference has go on to the
 * next order: their starts are kept in live (ascending), written whether or not the window
 * goes on and kept by moving on past it, and a miss lands on the table's "absent" slot,
 * so that the loop has no branch on what the reference holds. */
static void match_windows(struct table t, const uint32_t *sym, size_t len, size_t max_n,
			  uint32_t root, uint32_t *ids, uint32_t *live, uint32_t *match)
{
	for (size_t i = 0; i < len; i++) {
		ids[i] = root;
		live[i] = (uint32_t)i;
	}
	size_t n_live = len;
	for (size_t n = 0; n < max_n && n < len; n++) {
		uint32_t m = 0;
		size_t kept = 0;
		while (n_live && live[n_live - 1] + n >= len)
			n_live--; /* no window of this order starts there */
		for (size_t j = 0; j < n_live; j++) {
			uint32_t i = live[j];
			size_t at = table_find(t, (uint64_t)ids[i] << 32 | sym[i + n]);
			struct slot *e = &t.tab[at];
			uint32_t take = e->left > 0;
			e->left -= (int32_t)take;
			m += take;
			ids[i] = (uint32_t)at + FIRST_ID;
			live[kept] = i;
			kept += at != t.none;
		}
		n_live = kept;
		match[n] += m;
	}
}

/* The code points of t[0..n) into sym, Python whitespace left out unless kept.  An ASCII
 * character is written whatever it is and kept by moving on past it or not, without a branch
 * on whether it is a space. */
static void decode_chars(struct llm_chrf_scratch *s, const char *t, size_t n, bool keep_space)
{
	size_t k = s->n_sym;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)t[i];
		uint32_t cp;
		if (c < 0x80) {
			/* \t-\r, 0x1c-0x1f and ' ': bits of a 64-bit set */
			unsigned space = (c < 64) & (unsigned)(0x1F0003E00ULL >> (c & 63));
			s->sym[k] = c;
			k += keep_space | !space;
			i++;
			continue;
		} else {
			i += llm_unicode_decode(t + i, n - i, &cp);
			if (!keep_space && llm_py_isspace(cp))
				continue;
		}
		s->sym[k++] = cp;
	}
	s->n_sym = k;
}

/* string.punctuation, which sacreBLEU splits off words for chrF++. */
static inline bool is_punct(unsigned char c)
{
	return c < 0x80 && c > ' ' && c != 0x7f && !(c >= '0' && c <= '9') &&
	       !((c | 0x20) >= 'a' && (c | 0x20) <= 'z');
}

/* Double the word table, keeping this segment's words. */
static bool wtab_grow(struct llm_chrf_scratch *s)
{
	size_t cap = s->wtab_cap * 2;
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

/* The id of a word, the same for equal bytes within one segment; UINT32_MAX when out of
 * memory. */
static uint32_t word_id(struct llm_chrf_scratch *s, const char *p, size_t len)
{
	if (2 * ((size_t)s->n_words + 1) > s->wtab_cap && !wtab_grow(s)) {
		s->nomem = true;
		return UINT32_MAX;
	}
	uint64_t key = llm_hash64(p, len, WORD_SEED);
	size_t mask = s->wtab_cap - 1;
	for (size_t i = (size_t)key & mask;; i = (i + 1) & mask) {
		struct wslot *e = &s->wtab[i];
		if (e->gen != s->wgen) {
			*e = (struct wslot){
			    .key = key, .p = p, .len = len, .gen = s->wgen, .id = s->n_words++};
			return e->id;
		}
		if (e->key == key && e->len == len && memcmp(e->p, p, len) == 0)
			return e->id;
	}
}

/* A word of Python's split(), as sacreBLEU's _remove_punctuation cuts it: a word longer than
 * one character loses a final punctuation mark, or else a leading one, as a word of its own. */
static bool add_word(void *ctx, const char *w, size_t len)
{
	struct llm_chrf_scratch *s = ctx;
	uint32_t first;
	size_t first_len = llm_unicode_decode(w, len, &first);
	if (first_len < len && is_punct((unsigned char)w[len - 1])) {
		s->sym[s->n_sym++] = word_id(s, w, len - 1);
		s->sym[s->n_sym++] = word_id(s, w + len - 1, 1);
	} else if (first_len < len && is_punct((unsigned char)w[0])) {
		s->sym[s->n_sym++] = word_id(s, w, 1);
		s->sym[s->n_sym++] = word_id(s, w + 1, len - 1);
	} else {
		s->sym[s->n_sym++] = word_id(s, w, len);
	}
	return !s->nomem;
}

static enum llm_err check_opts(const struct llm_chrf_opts *o, struct llm_diag *diag)
{
	if (o->char_order < 0 || o->char_order > LLM_CHRF_MAX_ORDER || o->word_order < 0 ||
	    o->word_order > LLM_CHRF_MAX_ORDER || o->char_order + o->word_order == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "chrF orders must be 0..%d and not both 0 (got %d and %d)",
				    LLM_CHRF_MAX_ORDER, o->char_order, o->word_order);
	if (!(o->beta >= 0) || isinf(o->beta))
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
				    "chrF beta must be a number >= 0 (got %g)", o->beta);
	return LLM_OK;
}

/* Lowercase (or only check) every text and lay out its symbols. */
static enum llm_err prepare(struct llm_chrf_scratch *s, const struct llm_chrf_opts *o,
			    const char *const *texts, const size_t *lens, size_t n_texts,
			    struct llm_diag *diag)
{
	enum llm_err e;
	size_t total = 0;
	for (size_t t = 0; t < n_texts; t++) {
		if (lens[t] > LLM_CHRF_MAX_BYTES - total)
			return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0,
					    "segment over %zu bytes", LLM_CHRF_MAX_BYTES);
		total += lens[t];
	}
	if (n_texts + 1 > s->texts_cap) {
		size_t cap = 2 * (n_texts + 1);
		size_t *off = realloc(s->low_off, cap * sizeof *off);
		if (off)
			s->low_off = off;
		struct span *sp = off ? realloc(s->spans, cap * sizeof *sp) : NULL;
		if (!sp)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		s->spans = sp;
		s->texts_cap = cap;
	}

	size_t bytes = total;
	if (o->lowercase) {
		llm_buf_clear(&s->low);
		for (size_t t = 0; t < n_texts; t++) {
			s->low_off[t] = s->low.len;
			if ((e = llm_py_lower(texts[t], lens[t], &s->low, diag)))
				return e;
		}
		s->low_off[n_texts] = s->low.len;
		bytes = s->low.len; /* lowercasing may grow a text: U+0130 becomes 3 bytes */
	} else {
		for (size_t t = 0; t < n_texts; t++) {
			size_t ok = llm_utf8_valid_prefix(texts[t], lens[t]);
			if (ok != lens[t])
				return llm_diag_set(diag, LLM_ERR_UTF8, NULL, 0,
						    "invalid UTF-8 at byte %zu", ok);
		}
	}

	/* At most one code point per byte; at most two words per byte (a word cut in two). */
	size_t need = bytes + (o->word_order > 0 ? 2 * bytes : 0) + 1;
	if (need > s->sym_cap) {
		size_t cap = s->sym_cap ? s->sym_cap : 256;
		while (cap < need)
			cap *= 2;
		uint32_t *sym = realloc(s->sym, cap * sizeof *sym);
		if (!sym)
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		s->sym = sym;
		s->sym_cap = cap;
	}
	if (need > s->ids_cap) {
		free(s->ids);
		s->ids = malloc(2 * s->sym_cap * sizeof *s->ids); /* ids, then match's live list */
		if (!s->ids) {
			s->ids_cap = 0;
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
		s->ids_cap = s->sym_cap;
	}
	if (o->word_order > 0) {
		if (!s->wtab) {
			s->wtab = calloc(256, sizeof *s->wtab);
			if (!s->wtab)
				return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			s->wtab_cap = 256;
			s->wgen = 0;
		}
		if (++s->wgen == 0) {
			memset(s->wtab, 0, s->wtab_cap * sizeof *s->wtab);
			s->wgen = 1;
		}
		s->n_words = 0;
		s->nomem = false;
	}

	s->n_sym = 0;
	for (size_t t = 0; t < n_texts; t++) {
		const char *p = o->lowercase ? s->low.data + s->low_off[t] : texts[t];
		size_t n = o->lowercase ? s->low_off[t + 1] - s->low_off[t] : lens[t];
		struct span *x = &s->spans[t];
		x->chars = s->n_sym;
		decode_chars(s, p, n, o->whitespace);
		x->n_chars = s->n_sym - x->chars;
		x->words = s->n_sym;
		if (o->word_order > 0) {
			llm_py_split(p, n, add_word, s);
			if (s->nomem)
				return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
		x->n_words = s->n_sym - x->words;
	}
	return LLM_OK;
}

static size_t n_windows(size_t len, size_t n)
{
	return len >= n ? len - n + 1 : 0;
}

enum llm_err llm_chrf_scratch_stats(struct llm_chrf_scratch *s, const struct llm_chrf_opts *o,
				    const char *hyp, size_t hyp_len, const char *const *refs,
				    const size_t *ref_lens, size_t n_refs, double *stats,
				    struct llm_diag *diag)
{
	enum llm_err e = check_opts(o, diag);
	if (e)
		return e;
	if (n_refs == 0)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "chrF needs a reference");

	/* The texts as one list, the hypothesis first. */
	size_t n_texts = n_refs + 1;
	const char *small_t[8];
	size_t small_l[8];
	const char **tx = small_t;
	size_t *tl = small_l;
	if (n_texts > 8) {
		tx = malloc(n_texts * sizeof *tx);
		tl = malloc(n_texts * sizeof *tl);
		if (!tx || !tl) {
			free(tx);
			free(tl);
			return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		}
	}
	tx[0] = hyp;
	tl[0] = hyp_len;
	for (size_t r = 0; r < n_refs; r++) {
		tx[r + 1] = refs[r];
		tl[r + 1] = ref_lens[r];
	}
	e = prepare(s, o, tx, tl, n_texts, diag);
	if (tx != small_t) {
		free(tx);
		free(tl);
	}
	if (e)
		return e;

	size_t nc = (size_t)o->char_order, nw = (size_t)o->word_order, k = nc + nw;
	uint32_t match[2 * LLM_CHRF_MAX_ORDER];
	double cur[6 * LLM_CHRF_MAX_ORDER];
	double best_f = -1.0;
	const struct span *h = &s->spans[0];
	for (size_t r = 0; r < n_refs; r++) {
		const struct span *x = &s->spans[r + 1];
		size_t need = 0;
		for (size_t n = 1; n <= nc; n++)
			need += n_windows(x->n_chars, n);
		for (size_t n = 1; n <= nw; n++)
			need += n_windows(x->n_words, n);
		if ((e = table_reset(s, need, diag)))
			return e;
		memset(match, 0, k * sizeof *match);
		struct table t = {s->tab, s->mask, s->tab_shift, s->gen, s->tab_cap};
		if (nc) {
			add_windows(t, s->sym + x->chars, x->n_chars, nc, CHAR_ROOT, s->ids);
			match_windows(t, s->sym + h->chars, h->n_chars, nc, CHAR_ROOT, s->ids,
				      s->ids + s->ids_cap, match);
		}
		if (nw) {
			add_windows(t, s->sym + x->words, x->n_words, nw, WORD_ROOT, s->ids);
			match_windows(t, s->sym + h->words, h->n_words, nw, WORD_ROOT, s->ids,
				      s->ids + s->ids_cap, match + nc);
		}
		for (size_t i = 0; i < k; i++) {
			bool word = i >= nc;
			size_t n = word ? i - nc + 1 : i + 1;
			size_t hl = word ? h->n_words : h->n_chars;
			size_t rl = word ? x->n_words : x->n_chars;
			double n_ref = (double)n_windows(rl, n);
			/* sacreBLEU counts no hypothesis n-grams where the reference has none. */
			cur[3 * i] = n_ref > 0 ? (double)n_windows(hl, n) : 0;
			cur[3 * i + 1] = n_ref;
			cur[3 * i + 2] = (double)match[i];
		}
		double f = llm_chrf_compute(o, cur);
		if (f > best_f) {
			best_f = f;
			memcpy(stats, cur, 3 * k * sizeof *stats);
		}
	}
	return LLM_OK;
}

enum llm_err llm_chrf_stats(const struct llm_chrf_opts *o, const char *hyp, size_t hyp_len,
			    const char *const *refs, const size_t *ref_lens, size_t n_refs,
			    double *stats, struct llm_diag *diag)
{
	struct llm_chrf_scratch *s;
	enum llm_err e = llm_chrf_scratch_new(&s, diag);
	if (e)
		return e;
	e = llm_chrf_scratch_stats(s, o, hyp, hyp_len, refs, ref_lens, n_refs, stats, diag);
	llm_chrf_scratch_free(s);
	return e;
}

/* sacreBLEU's _compute_f_score, operation for operation, so the last bits agree too. */
double llm_chrf_compute(const struct llm_chrf_opts *o, const double *stats)
{
	size_t order = (size_t)(o->char_order + o->word_order);
	if (order == 0)
		return 0.0;
	double factor = o->beta * o->beta;
	double score = 0.0, avg_prec = 0.0, avg_rec = 0.0;
	size_t effective_order = 0;
	for (size_t i = 0; i < order; i++) {
		double n_hyp = stats[3 * i], n_ref = stats[3 * i + 1], n_match = stats[3 * i + 2];
		double prec = n_hyp > 0 ? n_match / n_hyp : EPS;
		double rec = n_ref > 0 ? n_match / n_ref : EPS;
		double denom = factor * prec + rec;
		score += denom > 0 ? (1 + factor) * prec * rec / denom : EPS;
		if (n_hyp > 0 && n_ref > 0) {
			avg_prec += prec;
			avg_rec += rec;
			effective_order++;
		}
	}
	if (o->eps_smoothing)
		return 100 * score / (double)order;
	if (effective_order == 0) {
		avg_prec = avg_rec = 0.0;
	} else {
		avg_prec /= (double)effective_order;
		avg_rec /= (double)effective_order;
	}
	if (avg_prec + avg_rec == 0)
		return 0.0;
	score = (1 + factor) * avg_prec * avg_rec;
	score /= factor * avg_prec + avg_rec;
	return 100 * score;
}

static enum llm_err put_nrefs(struct llm_buf *out, size_t n_refs)
{
	return n_refs ? llm_buf_printf(out, "nrefs:%zu", n_refs) : llm_buf_puts(out, "nrefs:var");
}

enum llm_err llm_chrf_signature(const struct llm_chrf_opts *o, size_t n_refs, struct llm_buf *out,
				struct llm_diag *diag)
{
	enum llm_err e = put_nrefs(out, n_refs);
	if (!e)
		e = llm_buf_printf(out, "|case:%s|eff:%s|nc:%d|nw:%d|space:%s|version:%s",
				   o->lowercase ? "lc" : "mixed", o->eps_smoothing ? "no" : "yes",
				   o->char_order, o->word_order, o->whitespace ? "yes" : "no",
				   SACREBLEU_VERSION);
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "signature too long");
	return LLM_OK;
}

enum llm_err llm_chrf_name(const struct llm_chrf_opts *o, struct llm_buf *out,
			   struct llm_diag *diag)
{
	enum llm_err e = llm_buf_printf(out, "chrF%g", o->beta);
	for (int i = 0; !e && i < o->word_order; i++)
		e = llm_buf_putc(out, '+');
	if (e)
		return llm_diag_set(diag, e, NULL, 0, "name too long");
	return LLM_OK;
}
