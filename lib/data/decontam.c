/* N-gram decontamination (see decontam.h). */
#include "config.h"

#include "data/decontam.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "core/hash.h"

#define WORD_SEED 0x6c6c6d6f70730d0aULL
#define POLY	  0x100000001b3ULL /* odd: the rolling hash stays invertible in its last word */

/* An n-gram's evaluation records: a chain of nodes, newest first. */
struct node {
	uint32_t eval;
	uint32_t next; /* index + 1 of the next node; 0 ends */
};

struct llm_decontam {
	unsigned n;
	uint64_t pow;	 /* POLY^(n-1), to drop the oldest word from the rolling hash */
	uint64_t *keys;	 /* 0 = empty slot */
	uint32_t *heads; /* index + 1 into nodes */
	size_t cap, used;
	struct node *nodes;
	size_t nnodes, nodes_cap;
};

/* One word as the scanner sees it. */
struct word {
	size_t start, end, cp_start, cp_end;
	uint64_t hash;
};

static bool is_word_cp(utf8proc_int32_t c)
{
	switch (utf8proc_category(c)) {
	case UTF8PROC_CATEGORY_LU:
	case UTF8PROC_CATEGORY_LL:
	case UTF8PROC_CATEGORY_LT:
	case UTF8PROC_CATEGORY_LM:
	case UTF8PROC_CATEGORY_LO:
	case UTF8PROC_CATEGORY_MN:
	case UTF8PROC_CATEGORY_MC:
	case UTF8PROC_CATEGORY_ME:
	case UTF8PROC_CATEGORY_ND:
	case UTF8PROC_CATEGORY_NL:
	case UTF8PROC_CATEGORY_NO:
		return true;
	default:
		return false;
	}
}

/* Walks the words of a text, lowercasing each into a scratch buffer to hash it. */
struct walker {
	const char *s;
	size_t len, pos, cp;
	struct llm_buf low;
};

/* The next word, or false at the end.  Invalid UTF-8 (which records never hold) separates. */
static bool next_word(struct walker *w, struct word *out, enum llm_err *err)
{
	bool in = false;
	llm_buf_clear(&w->low);
	while (w->pos < w->len) {
		utf8proc_int32_t c;
		utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)w->s + w->pos,
						      (utf8proc_ssize_t)(w->len - w->pos), &c);
		if (k <= 0) {
			k = 1;
			c = -1;
		}
		bool wc = c >= 0 && is_word_cp(c);
		if (!wc && in)
			break;
		if (wc) {
			if (!in) {
				in = true;
				out->start = w->pos;
				out->cp_start = w->cp;
			}
			utf8proc_uint8_t enc[4];
			utf8proc_ssize_t m = utf8proc_encode_char(utf8proc_tolower(c), enc);
			if ((*err = llm_buf_append(&w->low, enc, (size_t)m)))
				return false;
		}
		w->pos += (size_t)k;
		w->cp++;
	}
	if (!in)
		return false;
	out->end = w->pos;
	out->cp_end = w->cp;
	out->hash = llm_hash64(w->low.data, w->low.len, WORD_SEED);
	return true;
}

/* The key of an n-gram hash in the table: never 0, which marks an empty slot. */
static uint64_t slot_key(uint64_t h)
{
	h ^= h >> 31;
	h *= 0x9E3779B97F4A7C15ULL;
	h ^= h >> 29;
	return h ? h : 1;
}

enum llm_err llm_decontam_new(struct llm_decontam **out, unsigned ngram, struct llm_diag *d)
{
	if (ngram < 1)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "the n-gram length must be at least 1");
	struct llm_decontam *dc = calloc(1, sizeof *dc);
	if (!dc)
		return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	dc->n = ngram;
	dc->pow = 1;
	for (unsigned i = 1; i < ngram; i++)
		dc->pow *= POLY;
	*out = dc;
	return LLM_OK;
}

void llm_decontam_free(struct llm_decontam *dc)
{
	if (!dc)
		return;
	free(dc->keys);
	free(dc->heads);
	free(dc->nodes);
	free(dc);
}

size_t llm_decontam_size(const struct llm_decontam *dc)
{
	return dc->used;
}

static size_t lookup(const struct llm_decontam *dc, uint64_t key)
{
	size_t mask = dc->cap - 1, i = (size_t)key & mask;
	while (dc->keys[i] && dc->keys[i] != key)
		i = (i + 1) & mask;
	return i;
}

static enum llm_err grow(struct llm_decontam *dc)
{
	size_t cap = dc->cap ? dc->cap * 2 : 1024;
	uint64_t *keys = calloc(cap, sizeof *keys);
	uint32_t *heads = calloc(cap, sizeof *heads);
	if (!keys || !heads) {
		free(keys);
		free(heads);
		return LLM_ERR_NOMEM;
	}
	struct llm_decontam old = *dc;
	dc->keys = keys;
	dc->heads = heads;
	dc->cap = cap;
	for (size_t i = 0; i < old.cap; i++)
		if (old.keys[i]) {
			size_t j = lookup(dc, old.keys[i]);
			dc->keys[j] = old.keys[i];
			dc->heads[j] = old.heads[i];
		}
	free(old.keys);
	free(old.heads);
	return LLM_OK;
}

static enum llm_err insert(struct llm_decontam *dc, uint64_t key, uint32_t eval)
{
	if ((dc->used + 1) * 2 > dc->cap && grow(dc))
		return LLM_ERR_NOMEM;
	size_t i = lookup(dc, key);
	if (dc->keys[i]) {
		/* Texts of one record are added together, so a repeat is at the head. */
		if (dc->nodes[dc->heads[i] - 1].eval == eval)
			return LLM_OK;
	} else {
		dc->keys[i] = key;
		dc->heads[i] = 0;
		dc->used++;
	}
	if (dc->nnodes == dc->nodes_cap) {
		size_t cap = dc->nodes_cap ? dc->nodes_cap * 2 : 1024;
		if (cap > UINT32_MAX)
			return LLM_ERR_TOO_BIG;
		struct node *p = realloc(dc->nodes, cap * sizeof *p);
		if (!p)
			return LLM_ERR_NOMEM;
		dc->nodes = p;
		dc->nodes_cap = cap;
	}
	dc->nodes[dc->nnodes] = (struct node){eval, dc->heads[i]};
	dc->heads[i] = (uint32_t)++dc->nnodes;
	return LLM_OK;
}

/* Walk the n-grams of a text: for each, call fn with the first and last word of the window. */
static enum llm_err each_gram(const struct llm_decontam *dc, const char *text, size_t len,
			      enum llm_err (*fn)(void *ctx, uint64_t key, const struct word *first,
						 const struct word *last),
			      void *ctx, size_t *count)
{
	struct walker w = {text, len, 0, 0, {0}};
	llm_buf_init(&w.low, 0);
	struct word *ring = malloc(dc->n * sizeof *ring);
	if (!ring)
		return LLM_ERR_NOMEM;
	enum llm_err e = LLM_OK;
	uint64_t h = 0;
	size_t nw = 0, grams = 0;
	struct word wd;
	while (next_word(&w, &wd, &e)) {
		size_t slot = nw % dc->n;
		if (nw >= dc->n)
			h -= ring[slot].hash * dc->pow;
		h = h * POLY + wd.hash;
		ring[slot] = wd;
		nw++;
		if (nw >= dc->n) {
			grams++;
			if ((e = fn(ctx, slot_key(h), &ring[nw % dc->n], &ring[slot])))
				break;
		}
	}
	free(ring);
	llm_buf_free(&w.low);
	if (count)
		*count = grams;
	return e;
}

struct add_ctx {
	struct llm_decontam *dc;
	uint32_t eval;
};

static enum llm_err add_gram(void *ctx, uint64_t key, const struct word *first,
			     const struct word *last)
{
	struct add_ctx *a = ctx;
	(void)first;
	(void)last;
	return insert(a->dc, key, a->eval);
}

enum llm_err llm_decontam_add(struct llm_decontam *dc, const char *text, size_t len, uint32_t eval,
			      size_t *ngrams, struct llm_diag *d)
{
	struct add_ctx a = {dc, eval};
	enum llm_err e = each_gram(dc, text, len, add_gram, &a, ngrams);
	if (e)
		return llm_diag_set(d, e, NULL, 0, "%s",
				    e == LLM_ERR_TOO_BIG ? "too many evaluation n-grams"
							 : "out of memory");
	return LLM_OK;
}

struct find_ctx {
	const struct llm_decontam *dc;
	struct llm_decontam_hits *hits;
};

static enum llm_err find_gram(void *ctx, uint64_t key, const struct word *first,
			      const struct word *last)
{
	struct find_ctx *f = ctx;
	const struct llm_decontam *dc = f->dc;
	if (!dc->cap)
		return LLM_OK;
	size_t i = lookup(dc, key);
	if (!dc->keys[i])
		return LLM_OK;
	for (uint32_t k = dc->heads[i]; k; k = dc->nodes[k - 1].next) {
		struct llm_decontam_hits *hs = f->hits;
		if (hs->n == hs->cap) {
			size_t cap = hs->cap ? hs->cap * 2 : 16;
			struct llm_decontam_hit *p = realloc(hs->h, cap * sizeof *p);
			if (!p)
				return LLM_ERR_NOMEM;
			hs->h = p;
			hs->cap = cap;
		}
		hs->h[hs->n++] = (struct llm_decontam_hit){first->start, last->end, first->cp_start,
							   last->cp_end, dc->nodes[k - 1].eval};
	}
	return LLM_OK;
}

enum llm_err llm_decontam_find(const struct llm_decontam *dc, const char *text, size_t len,
			       struct llm_decontam_hits *hits, struct llm_diag *d)
{
	hits->n = 0;
	struct find_ctx f = {dc, hits};
	if (!dc->used)
		return LLM_OK;
	enum llm_err e = each_gram(dc, text, len, find_gram, &f, NULL);
	return e ? llm_diag_set(d, e, NULL, 0, "out of memory") : LLM_OK;
}

void llm_decontam_hits_free(struct llm_decontam_hits *hits)
{
	free(hits->h);
	hits->h = NULL;
	hits->n = hits->cap = 0;
}

enum llm_err llm_decontam_cut(const char *text, size_t len, const struct llm_decontam_hits *hits,
			      size_t window, size_t min_piece, const char *sep, struct llm_buf *out,
			      size_t *pieces, size_t *kept)
{
	*pieces = 0;
	*kept = 0;
	/* Hits come in text order of their first word, so their windows merge in one pass; the
	 * kept stretches lie between merged windows, and a forward walk maps code points to
	 * bytes because both ends of the stretches only move forward. */
	size_t total_cp = 0;
	for (size_t i = 0; i < len; i++)
		total_cp += ((unsigned char)text[i] & 0xC0) != 0x80;
	size_t pos_cp = 0, pos_b = 0; /* walker */
	size_t keep_from = 0;	      /* start (cp) of the stretch not yet removed */
	size_t k = 0;
	bool first_out = true;
	enum llm_err e = LLM_OK;
	for (;;) {
		size_t cut_from, cut_to;
		if (k < hits->n) {
			cut_from = hits->h[k].cp_start > window ? hits->h[k].cp_start - window : 0;
			cut_to = hits->h[k].cp_end + window;
			k++;
			while (k < hits->n &&
			       (hits->h[k].cp_start > window ? hits->h[k].cp_start - window : 0) <=
				   cut_to) {
				if (hits->h[k].cp_end + window > cut_to)
					cut_to = hits->h[k].cp_end + window;
				k++;
			}
			if (cut_to > total_cp)
				cut_to = total_cp;
		} else {
			cut_from = cut_to = total_cp;
		}
		if (cut_from > keep_from) {
			(*pieces)++;
			if (cut_from - keep_from >= min_piece) {
				/* Map keep_from and cut_from to bytes. */
				while (pos_cp < keep_from) {
					pos_b++;
					while (pos_b < len &&
					       ((unsigned char)text[pos_b] & 0xC0) == 0x80)
						pos_b++;
					pos_cp++;
				}
				size_t b0 = pos_b;
				while (pos_cp < cut_from) {
					pos_b++;
					while (pos_b < len &&
					       ((unsigned char)text[pos_b] & 0xC0) == 0x80)
						pos_b++;
					pos_cp++;
				}
				if (!first_out && !e)
					e = llm_buf_puts(out, sep);
				if (!e)
					e = llm_buf_append(out, text + b0, pos_b - b0);
				first_out = false;
				*kept += cut_from - keep_from;
			}
		}
		if (cut_to > keep_from)
			keep_from = cut_to;
		if (cut_to >= total_cp)
			break;
	}
	return e;
}

enum llm_err llm_decontam_words(const char *text, size_t len, struct llm_buf *out)
{
	struct walker w = {text, len, 0, 0, {0}};
	llm_buf_init(&w.low, 0);
	enum llm_err e = LLM_OK;
	struct word wd;
	bool first = true;
	while (next_word(&w, &wd, &e)) {
		if (!first && (e = llm_buf_putc(out, ' ')))
			break;
		if ((e = llm_buf_append(out, w.low.data, w.low.len)))
			break;
		first = false;
	}
	llm_buf_free(&w.low);
	return e;
}
