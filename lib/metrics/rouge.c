#include "config.h"

#include "metrics/rouge.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "core/json.h"
#include "metrics/pystr.h"

/* How it goes fast and stays exact:
 * - Each distinct token string gets a small integer id from a vocabulary that lives as long as
 *   the scorer, and remembers its stem, so a word is stemmed once however often it recurs.
 *   Texts become id arrays once per call; every ROUGE type works on ids.
 * - The LCS runs bit-parallel (Allison-Dix, Crochemore et al.): one machine word covers 64
 *   reference tokens.  The bit vector after j hypothesis tokens is the difference row of the
 *   DP table t[i][j] (bit i-1 clear exactly where t[i][j] = t[i-1][j] + 1), so the rows kept
 *   for rougeLsum replay rouge-score's backtracking, ties and all, without the int table.
 * - N-grams are counted in one open-addressing table of positions, unigrams in the vocabulary.
 * - An ASCII text (most of them) is tokenized 64 bytes at a time: bit masks of its letters and
 *   digits and of its newlines, the tokens the runs of ones, each looked up by its first 16
 *   bytes lower-cased in two words, with no loop over its characters. */

#define NONE	  UINT32_MAX
#define HASH_SEED 0x726f756765ULL
/* The vocabulary is dropped between calls once it holds this much: bounded memory for a long
 * run, and still a cache that covers a corpus's working vocabulary. */
#define VOCAB_RESET_WORDS (1u << 19)
#define VOCAB_RESET_BYTES ((size_t)64 << 20)
/* The most memory the rows of one rougeLsum sentence pair may take (a "sentence" of tens of
 * thousands of tokens, a text without newlines). */
#define LCS_ROWS_MAX_BYTES ((size_t)256 << 20)
/* The most the bit masks of one text may take (distinct tokens times its length / 64); past it
 * rougeL falls back to the one-row DP. */
#define LCS_MASKS_MAX_BYTES ((size_t)64 << 20)

enum kind { KIND_N, KIND_L, KIND_LSUM };

struct rtype {
	enum kind kind;
	int n;
};

/* One distinct token string, by id. */
struct vword {
	uint32_t off, len;    /* in chars */
	uint32_t stamp;	      /* == epoch while this token has a bit mask in the current LCS */
	uint32_t slot;	      /* that mask's index */
	int32_t cnt_r, cnt_c; /* per-call counts (unigram overlap, rougeLsum bookkeeping) */
};

/* A slot of the vocabulary's hash table.  The first 16 bytes of the string are kept in the
 * slot, and what the string stands for as a token, so looking up a word reads one cache line. */
struct vslot {
	uint64_t k0, k1; /* the first 16 bytes, zero-padded, little-endian */
	uint32_t hash;	 /* the low 32 bits of the string's hash */
	uint32_t len;
	uint32_t id1; /* 1 + id; 0 for an empty slot */
	uint32_t tok; /* the id of the token this string is after stemming; NONE until needed */
};

struct key {
	uint64_t k0, k1, h;
};

/* A tokenized text: token ids, and the starts of its non-empty newline-separated sentences
 * followed by n (sentences are contiguous in ids because every token belongs to one). */
struct seq {
	uint32_t *ids;
	size_t n, cap;
	size_t *bounds;
	size_t n_sent, bounds_cap;
};

struct ngslot {
	uint32_t pos1; /* 1 + the n-gram's position in the reference; 0 for an empty slot */
	uint32_t hash;
	uint32_t ref_cnt, hyp_cnt;
};

struct llm_rouge {
	struct llm_rouge_opts o;
	struct rtype *types;
	size_t n_types;

	struct vword *w;
	size_t nw, wcap;
	struct vslot *table;
	size_t tsize; /* a power of two */
	struct llm_buf chars;
	uint32_t epoch;

	struct llm_buf word, stem, lower;
	struct seq hyp, ref;

	uint64_t *masks;
	size_t masks_cap, mw; /* capacity in words; words per mask in the current LCS */
	uint64_t *rows;
	size_t rows_cap;
	unsigned char *marks;
	size_t marks_cap;
	struct ngslot *ng;
	size_t ng_cap;
	uint32_t *bounds, *nl_at; /* the ASCII tokenizer's token bounds and newlines */
	size_t bounds_cap, nl_cap;
	struct llm_rouge_prf *cur;
};

/* --- small helpers ------------------------------------------------------------------------ */

static enum llm_err grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return LLM_OK;
	size_t c = *cap ? *cap : 16;
	while (c < need) {
		if (c > SIZE_MAX / 2 / elem)
			return LLM_ERR_NOMEM;
		c *= 2;
	}
	void *q = realloc(*p, c * elem);
	if (!q)
		return LLM_ERR_NOMEM;
	*p = q;
	*cap = c;
	return LLM_OK;
}

static enum llm_err nomem(struct llm_diag *diag)
{
	return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "rouge: out of memory");
}

/* rouge-score's scoring.fmeasure, operation for operation. */
static double fmeasure(double p, double r)
{
	return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

static struct llm_rouge_prf prf(size_t hits, size_t hyp_total, size_t ref_total)
{
	struct llm_rouge_prf s;
	s.precision = (double)hits / (double)hyp_total;
	s.recall = (double)hits / (double)ref_total;
	s.fmeasure = fmeasure(s.precision, s.recall);
	return s;
}

/* --- vocabulary --------------------------------------------------------------------------- */

static void vocab_reset(struct llm_rouge *r)
{
	r->nw = 0;
	llm_buf_clear(&r->chars);
	free(r->table); /* it grows back to what the next texts need */
	r->table = NULL;
	r->tsize = 0;
}

static enum llm_err vocab_rehash(struct llm_rouge *r, size_t tsize)
{
	struct vslot *t = calloc(tsize, sizeof *t);
	if (!t)
		return LLM_ERR_NOMEM;
	for (size_t k = 0; k < r->tsize; k++) {
		if (!r->table[k].id1)
			continue;
		size_t i = r->table[k].hash & (tsize - 1);
		while (t[i].id1)
			i = (i + 1) & (tsize - 1);
		t[i] = r->table[k];
	}
	free(r->table);
	r->table = t;
	r->tsize = tsize;
	return LLM_OK;
}

static inline uint64_t load_le(const char *s, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)(unsigned char)s[i] << (8 * i);
	return v;
}

static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0xFF51AFD7ED558CCDULL;
	return h ^ (h >> 32);
}

/* The key of s[0..n) whose first 16 bytes (zero-padded, byte i at bits 8i) are k0 and k1: the
 * tokenizer builds those as it copies the token.  The two words are multiplied independently
 * (a short token's hash is two multiplies deep, not three), and the high halves folded down,
 * since the table's index is the low bits. */
static inline struct key key_of(const char *s, size_t n, uint64_t k0, uint64_t k1)
{
	struct key k = {.k0 = k0, .k1 = k1};
	uint64_t a = (k0 ^ HASH_SEED) * 0x9E3779B97F4A7C15ULL;
	uint64_t b = (k1 ^ n) * 0xC4CEB9FE1A85EC53ULL;
	uint64_t h = a ^ (b >> 32 | b << 32);
	for (size_t i = 16; i < n; i += 8)
		h = mix(h, load_le(s + i, n - i < 8 ? n - i : 8));
	k.h = h ^ (h >> 29);
	return k;
}

static struct key make_key(const char *s, size_t n)
{
	return key_of(s, n, load_le(s, n < 8 ? n : 8),
		      n > 8 ? load_le(s + 8, (n < 16 ? n : 16) - 8) : 0);
}

/* The slot holding s, or the empty slot where it would go. */
static inline size_t vocab_find(const struct llm_rouge *r, const char *s, size_t len,
				const struct key *k)
{
	size_t mask = r->tsize - 1;
	for (size_t i = (size_t)k->h & mask;; i = (i + 1) & mask) {
		const struct vslot *sl = &r->table[i];
		if (!sl->id1)
			return i;
		if (sl->hash == (uint32_t)k->h && sl->len == len && sl->k0 == k->k0 &&
		    sl->k1 == k->k1 &&
		    (len <= 16 ||
		     !memcmp(r->chars.data + r->w[sl->id1 - 1].off + 16, s + 16, len - 16)))
			return i;
	}
}

/* Add s in the empty slot i. */
static enum llm_err vocab_add(struct llm_rouge *r, size_t i, const char *s, size_t len,
			      const struct key *k)
{
	if (r->nw >= NONE - 1 || len > UINT32_MAX || r->chars.len + len > UINT32_MAX)
		return LLM_ERR_TOO_BIG;
	enum llm_err e = grow((void **)&r->w, &r->wcap, r->nw + 1, sizeof *r->w);
	if (e != LLM_OK)
		return e;
	size_t off = r->chars.len;
	if ((e = llm_buf_append(&r->chars, s, len)) != LLM_OK)
		return e;
	r->w[r->nw] = (struct vword){.off = (uint32_t)off, .len = (uint32_t)len};
	r->table[i] = (struct vslot){.k0 = k->k0,
				     .k1 = k->k1,
				     .hash = (uint32_t)k->h,
				     .len = (uint32_t)len,
				     .id1 = (uint32_t)r->nw + 1,
				     .tok = NONE};
	r->nw++;
	return LLM_OK;
}

/* The id of a token as rouge-score compares it: its stem when stemming is on and the token is
 * longer than 3 characters (and ASCII: the stemmer is an English one), the token otherwise. */
static enum llm_err token_id(struct llm_rouge *r, const char *s, size_t len, const struct key *key,
			     uint32_t *out)
{
	/* Room for the word and its stem, so no slot moves below. */
	if ((r->nw + 2) * 2 > r->tsize) {
		enum llm_err e = vocab_rehash(r, r->tsize ? r->tsize * 2 : 1024);
		if (e != LLM_OK)
			return e;
	}
	size_t i = vocab_find(r, s, len, key);
	enum llm_err e;
	if (!r->table[i].id1 && (e = vocab_add(r, i, s, len, key)) != LLM_OK)
		return e;
	struct vslot *sl = &r->table[i];
	if (sl->tok != NONE) {
		*out = sl->tok;
		return LLM_OK;
	}
	bool ascii = true;
	for (size_t c = 0; c < len && ascii; c++)
		ascii = (unsigned char)s[c] < 0x80;
	uint32_t tok = sl->id1 - 1;
	if (r->o.stemmer && len > 3 && ascii) {
		llm_buf_clear(&r->stem);
		if ((e = llm_porter_stem(s, len, &r->stem, NULL)) != LLM_OK)
			return e;
		struct key ks = make_key(r->stem.data, r->stem.len);
		size_t j = vocab_find(r, r->stem.data, r->stem.len, &ks);
		if (!r->table[j].id1 &&
		    (e = vocab_add(r, j, r->stem.data, r->stem.len, &ks)) != LLM_OK)
			return e;
		tok = r->table[j].id1 - 1;
	}
	*out = sl->tok = tok;
	return LLM_OK;
}

/* --- tokenizers --------------------------------------------------------------------------- */

static enum llm_err seq_push(struct seq *q, uint32_t id)
{
	if (q->n >= UINT32_MAX - 1)
		return LLM_ERR_TOO_BIG;
	if (q->n >= q->cap && grow((void **)&q->ids, &q->cap, q->n + 1, sizeof *q->ids))
		return LLM_ERR_NOMEM;
	q->ids[q->n++] = id;
	return LLM_OK;
}

/* A newline ends the current sentence (kept when it has tokens, as rouge-score drops the
 * empty ones). */
static enum llm_err seq_end_sentence(struct seq *q, size_t *begin)
{
	if (q->n > *begin) {
		if (grow((void **)&q->bounds, &q->bounds_cap, q->n_sent + 2, sizeof *q->bounds))
			return LLM_ERR_NOMEM;
		q->bounds[q->n_sent++] = *begin;
	}
	*begin = q->n;
	return LLM_OK;
}

static enum llm_err seq_finish(struct seq *q, size_t *begin)
{
	enum llm_err e = seq_end_sentence(q, begin);
	if (e != LLM_OK)
		return e;
	if (grow((void **)&q->bounds, &q->bounds_cap, q->n_sent + 1, sizeof *q->bounds))
		return LLM_ERR_NOMEM;
	q->bounds[q->n_sent] = q->n;
	return LLM_OK;
}

static enum llm_err flush(struct llm_rouge *r, struct seq *q)
{
	if (!r->word.len)
		return LLM_OK;
	uint32_t id;
	struct key k = make_key(r->word.data, r->word.len);
	enum llm_err e = token_id(r, r->word.data, r->word.len, &k, &id);
	llm_buf_clear(&r->word);
	if (e != LLM_OK)
		return e;
	return seq_push(q, id);
}

/* An ASCII letter or digit, lower-cased; 0 for any other byte. */
static inline char alnum_lower(unsigned char c)
{
	if ((unsigned)(c - 'a') < 26 || (unsigned)(c - '0') < 10)
		return (char)c;
	if ((unsigned)(c - 'A') < 26)
		return (char)(c - 'A' + 'a');
	return 0;
}

/* The token w[0..len), whose first 16 bytes are k0 and k1, to its id at the end of q.  The key
 * comes by value, so that the tokenizer can build it in registers. */
static inline enum llm_err emit(struct llm_rouge *r, struct seq *q, const char *w, size_t len,
				uint64_t k0, uint64_t k1)
{
	struct key key = key_of(w, len, k0, k1);
	/* Most tokens of a corpus were seen before, their ids known: one probe, one store. */
	if (r->tsize && q->n < q->cap && q->n < UINT32_MAX - 1) {
		const struct vslot *sl = &r->table[vocab_find(r, w, len, &key)];
		if (sl->id1 && sl->tok != NONE) {
			q->ids[q->n++] = sl->tok;
			return LLM_OK;
		}
	}
	uint32_t id;
	enum llm_err e = token_id(r, w, len, &key, &id);
	return e != LLM_OK ? e : seq_push(q, id);
}

/* Append byte c to the token, and to its key's first 16 bytes. */
static inline void put(char *word, size_t *wl, uint64_t *k0, uint64_t *k1, char c)
{
	if (*wl < 8)
		*k0 |= (uint64_t)(unsigned char)c << (8 * *wl);
	else if (*wl < 16)
		*k1 |= (uint64_t)(unsigned char)c << (8 * (*wl - 8));
	word[(*wl)++] = c;
}

/* rouge-score: Python's lower(), every run outside [a-z0-9] a separator.  Of all non-ASCII
 * characters only two lower-case to something in [a-z0-9]: U+212A KELVIN SIGN to "k", and
 * U+0130 to "i" followed by U+0307, which separates. */
static enum llm_err tokenize_default(struct llm_rouge *r, const char *s, size_t n, struct seq *q,
				     size_t *bad_at)
{
	/* Room for any token of the text (none is longer than it), and for all its tokens. */
	enum llm_err e = llm_buf_reserve(&r->word, n);
	if (e != LLM_OK)
		return e;
	if (grow((void **)&q->ids, &q->cap, n / 2 + 1, sizeof *q->ids))
		return LLM_ERR_NOMEM;
	char *word = r->word.data;
	size_t wl = 0, begin = 0;
	uint64_t k0 = 0, k1 = 0;
	for (size_t i = 0; i < n;) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x80) {
			char l = alnum_lower(c);
			i++;
			if (l) {
				put(word, &wl, &k0, &k1, l);
				continue;
			}
			if (wl && (e = emit(r, q, word, wl, k0, k1)) != LLM_OK)
				return e;
			wl = 0;
			k0 = k1 = 0;
			if (c == '\n' && (e = seq_end_sentence(q, &begin)) != LLM_OK)
				return e;
			continue;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t len = utf8proc_iterate((const utf8proc_uint8_t *)s + i,
							(utf8proc_ssize_t)(n - i), &cp);
		if (len < 0) {
			*bad_at = i;
			return LLM_ERR_UTF8;
		}
		i += (size_t)len;
		if (cp == 0x212A) {
			put(word, &wl, &k0, &k1, 'k');
			continue;
		}
		if (cp == 0x130)
			put(word, &wl, &k0, &k1, 'i');
		if (wl && (e = emit(r, q, word, wl, k0, k1)) != LLM_OK)
			return e;
		wl = 0;
		k0 = k1 = 0;
	}
	if (wl && (e = emit(r, q, word, wl, k0, k1)) != LLM_OK)
		return e;
	return seq_finish(q, &begin);
}

#ifdef __SSE2__
/* Bit i: byte i of the 16 at p is an ASCII letter or digit (in *alnum), a newline (in *nl).
 * ASCII only: as signed bytes, the comparisons below are the unsigned ones. */
static inline void classify16(const char *p, uint64_t *alnum, uint64_t *nl, int shift)
{
	__m128i v = _mm_loadu_si128((const __m128i *)(const void *)p);
	__m128i lo = _mm_or_si128(v, _mm_set1_epi8(0x20)); /* A-Z to a-z; a-z, 0-9 unchanged */
	__m128i letter = _mm_and_si128(_mm_cmpgt_epi8(lo, _mm_set1_epi8('a' - 1)),
				       _mm_cmplt_epi8(lo, _mm_set1_epi8('z' + 1)));
	__m128i digit = _mm_and_si128(_mm_cmpgt_epi8(v, _mm_set1_epi8('0' - 1)),
				      _mm_cmplt_epi8(v, _mm_set1_epi8('9' + 1)));
	*alnum |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_or_si128(letter, digit)) << shift;
	*nl |= (uint64_t)(unsigned)_mm_movemask_epi8(_mm_cmpeq_epi8(v, _mm_set1_epi8('\n')))
	       << shift;
}

/* The token s[b..e), all ASCII letters and digits, to its id at the end of q, which has room.
 * Such bytes are lower-cased by setting bit 5 (digits have it already).  A token of at most
 * 16 bytes seen before is a probe and a store, no character copied. */
static inline enum llm_err emit_ascii(struct llm_rouge *r, struct seq *q, const char *s, size_t n,
				      size_t b, size_t e)
{
	const uint64_t lower = 0x2020202020202020ULL;
	size_t len = e - b;
	uint64_t w0, w1;
	if (b + 16 <= n) {
		memcpy(&w0, s + b, 8);
		memcpy(&w1, s + b + 8, 8);
	} else { /* near the end of the text: no load past it */
		char pad[16] = {0};
		memcpy(pad, s + b, n - b < 16 ? n - b : 16);
		memcpy(&w0, pad, 8);
		memcpy(&w1, pad + 8, 8);
	}
	/* The first 16 bytes of the token, lower-cased and zero-padded. */
	size_t l16 = len < 16 ? len : 16;
	uint64_t m0 = l16 >= 8 ? ~0ULL : (1ULL << (8 * l16)) - 1;
	uint64_t m1 = l16 <= 8 ? 0 : l16 == 16 ? ~0ULL : (1ULL << (8 * (l16 - 8))) - 1;
	uint64_t k0 = (w0 | lower) & m0, k1 = (w1 | lower) & m1;
	if (len <= 16 && r->tsize) {
		struct key key = key_of(NULL, len, k0, k1);
		const struct vslot *sl = &r->table[vocab_find(r, NULL, len, &key)];
		if (sl->id1 && sl->tok != NONE) {
			q->ids[q->n++] = sl->tok;
			return LLM_OK;
		}
	}
	char *word = r->word.data;
	memcpy(word, &k0, 8);
	memcpy(word + 8, &k1, 8);
	for (size_t i = 16; i < len; i++)
		word[i] = (char)(s[b + i] | 0x20);
	return emit(r, q, word, len, k0, k1);
}

/* tokenize_default for a text of ASCII bytes only (and shorter than 4 GiB), with the same
 * tokens and sentences, a chunk of ASCII_CHUNK bytes at a time (so that what it keeps of a text
 * stays small however long the text): first the bounds of the chunk's tokens and, for each
 * newline, how many tokens end before it, from the bit masks; then the lookups, in a loop of
 * their own whose iterations do not wait on one another; then the sentences. */
#define ASCII_CHUNK 16384 /* a multiple of 64 */
static enum llm_err tokenize_ascii(struct llm_rouge *r, const char *s, size_t n, struct seq *q)
{
	size_t most = (n < ASCII_CHUNK ? n : ASCII_CHUNK) / 2 + 2; /* a chunk's tokens, + 1 open */
	enum llm_err e = llm_buf_reserve(&r->word, n + 16);
	if (e != LLM_OK)
		return e;
	if (grow((void **)&q->ids, &q->cap, n / 2 + 1, sizeof *q->ids) ||
	    grow((void **)&r->bounds, &r->bounds_cap, 2 * most, sizeof *r->bounds) ||
	    grow((void **)&r->nl_at, &r->nl_cap, ASCII_CHUNK, sizeof *r->nl_at))
		return LLM_ERR_NOMEM;
	uint32_t *tb = r->bounds, *te = r->bounds + most; /* starts, ends */
	size_t nb = 0, ne = 0, begin = 0;
	uint64_t carry = 0; /* the last byte of the block before was in a token */
	for (size_t chunk = 0; chunk < n; chunk += ASCII_CHUNK) {
		size_t nn = 0, end = n - chunk < ASCII_CHUNK ? n : chunk + ASCII_CHUNK;
		for (size_t base = chunk; base < end; base += 64) {
			uint64_t alnum = 0, nl = 0;
			if (base + 64 <= n) {
				for (int k = 0; k < 4; k++)
					classify16(s + base + 16 * k, &alnum, &nl, 16 * k);
			} else {
				char pad[64] = {0}; /* NUL: neither a letter nor a newline */
				memcpy(pad, s + base, n - base);
				for (int k = 0; k < 4; k++)
					classify16(pad + 16 * k, &alnum, &nl, 16 * k);
			}
			uint64_t before = alnum << 1 | carry;
			uint64_t starts = alnum & ~before, ends = ~alnum & before;
			for (; starts; starts &= starts - 1)
				tb[nb++] = (uint32_t)(base + (size_t)__builtin_ctzll(starts));
			for (; nl; nl &= nl - 1) {
				/* A token ends at the byte after it: ending at the newline, it is
				 * before. */
				uint64_t upto = ~0ULL >> (63 - __builtin_ctzll(nl));
				r->nl_at[nn++] =
				    (uint32_t)(q->n + ne +
					       (size_t)__builtin_popcountll(ends & upto));
			}
			for (; ends; ends &= ends - 1)
				te[ne++] = (uint32_t)(base + (size_t)__builtin_ctzll(ends));
			carry = alnum >> 63;
		}
		if (carry && end == n)
			te[ne++] = (uint32_t)n;
		for (size_t t = 0; t < ne; t++)
			if ((e = emit_ascii(r, q, s, n, tb[t], te[t])) != LLM_OK)
				return e;
		if (nb > ne) /* a token that goes on into the next chunk */
			tb[0] = tb[ne];
		nb -= ne;
		ne = 0;
		/* The sentences: seq_end_sentence at each newline, with the token count it saw. */
		for (size_t k = 0; k < nn; k++) {
			if (r->nl_at[k] > begin) {
				if (grow((void **)&q->bounds, &q->bounds_cap, q->n_sent + 2,
					 sizeof *q->bounds))
					return LLM_ERR_NOMEM;
				q->bounds[q->n_sent++] = begin;
			}
			begin = r->nl_at[k];
		}
	}
	return seq_finish(q, &begin);
}
#endif

/* Each of these is a token by itself in the Unicode tokenizer: scripts written without spaces
 * between words. */
static bool is_single(utf8proc_int32_t cp)
{
	return (cp >= 0x3040 && cp <= 0x30FF) ||   /* hiragana, katakana */
	       (cp >= 0x31F0 && cp <= 0x31FF) ||   /* katakana phonetic extensions */
	       (cp >= 0x3400 && cp <= 0x4DBF) ||   /* CJK extension A */
	       (cp >= 0x4E00 && cp <= 0x9FFF) ||   /* CJK unified ideographs */
	       (cp >= 0xAC00 && cp <= 0xD7A3) ||   /* Hangul syllables */
	       (cp >= 0xF900 && cp <= 0xFAFF) ||   /* CJK compatibility ideographs */
	       (cp >= 0xFF66 && cp <= 0xFF9F) ||   /* halfwidth katakana */
	       (cp >= 0x1B000 && cp <= 0x1B16F) || /* kana supplement and extensions */
	       (cp >= 0x20000 && cp <= 0x3FFFF) || /* CJK extensions B.. */
	       cp == 0x3005;			   /* ideographic iteration mark */
}

/* The Unicode option: Python's lower() over the whole text, then runs of letters (L*),
 * decimal digits (Nd) and the combining marks that follow them; the scripts of is_single()
 * one character a token.  On ASCII text it gives exactly rouge-score's tokens. */
static enum llm_err tokenize_unicode(struct llm_rouge *r, const char *s, size_t n, struct seq *q,
				     struct llm_diag *diag)
{
	llm_buf_clear(&r->lower);
	enum llm_err e = llm_py_lower(s, n, &r->lower, diag);
	if (e != LLM_OK)
		return e;
	const char *t = r->lower.data;
	size_t tn = r->lower.len, begin = 0;
	bool single = false; /* the open token is one is_single() character (and its marks) */
	for (size_t i = 0; i < tn && e == LLM_OK;) {
		unsigned char c = (unsigned char)t[i];
		utf8proc_int32_t cp = c;
		size_t len = 1;
		if (c >= 0x80) {
			utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)t + i,
							      (utf8proc_ssize_t)(tn - i), &cp);
			len = l > 0 ? (size_t)l : 1;
		}
		enum { SEP, WORD, MARK, SINGLE } k = SEP;
		if (c < 0x80) {
			k = alnum_lower(c) ? WORD : SEP;
		} else {
			switch (utf8proc_category(cp)) {
			case UTF8PROC_CATEGORY_LU:
			case UTF8PROC_CATEGORY_LL:
			case UTF8PROC_CATEGORY_LT:
			case UTF8PROC_CATEGORY_LM:
			case UTF8PROC_CATEGORY_LO:
			case UTF8PROC_CATEGORY_ND:
				k = is_single(cp) ? SINGLE : WORD;
				break;
			case UTF8PROC_CATEGORY_MN:
			case UTF8PROC_CATEGORY_MC:
			case UTF8PROC_CATEGORY_ME:
				k = MARK;
				break;
			default:
				k = SEP;
			}
		}
		if (k == SEP || k == SINGLE || (k == WORD && single)) {
			e = flush(r, q);
			single = false;
			if (e == LLM_OK && c == '\n')
				e = seq_end_sentence(q, &begin);
		}
		if (e == LLM_OK && k != SEP) {
			e = llm_buf_append(&r->word, t + i, len);
			if (k == SINGLE)
				single = true;
		}
		i += len;
	}
	if (e == LLM_OK)
		e = flush(r, q);
	if (e == LLM_OK)
		e = seq_finish(q, &begin);
	return e;
}

static enum llm_err tokenize(struct llm_rouge *r, const char *s, size_t n, struct seq *q,
			     const char *what, size_t which, struct llm_diag *diag)
{
	q->n = 0;
	q->n_sent = 0;
	size_t bad_at = 0;
	struct llm_diag d; /* only the Unicode tokenizer's errors fill it */
	d.msg[0] = '\0';
	if (!s)
		s = "";
	enum llm_err e;
	if (r->o.unicode)
		e = tokenize_unicode(r, s, n, q, &d);
#ifdef __SSE2__
	else if (n < UINT32_MAX && llm_ascii_prefix(s, n) == n)
		e = tokenize_ascii(r, s, n, q);
#endif
	else
		e = tokenize_default(r, s, n, q, &bad_at);
	llm_buf_clear(&r->word);
	if (e == LLM_OK)
		return e;
	char name[48];
	if (which != (size_t)-1)
		snprintf(name, sizeof name, "%s %zu", what, which + 1);
	else
		snprintf(name, sizeof name, "%s", what);
	if (e == LLM_ERR_UTF8)
		return r->o.unicode
			   ? llm_diag_set(diag, e, NULL, 0, "rouge: %s: %s", name, d.msg)
			   : llm_diag_set(diag, e, NULL, 0, "rouge: %s: invalid UTF-8 at byte %zu",
					  name, bad_at);
	if (e == LLM_ERR_NOMEM)
		return nomem(diag);
	return llm_diag_set(diag, e, NULL, 0, "rouge: %s: too large to tokenize", name);
}

/* --- n-grams ------------------------------------------------------------------------------ */

static uint32_t ngram_hash(const uint32_t *p, int n)
{
	uint64_t h = 0x9E3779B97F4A7C15ULL;
	for (int k = 0; k < n; k++)
		h = (h ^ p[k]) * 0xFF51AFD7ED558CCDULL;
	h ^= h >> 29;
	return (uint32_t)(h ^ (h >> 32));
}

/* rouge-score's _score_ngrams: the overlap is the sum over the reference's n-grams of the
 * smaller of the two counts; an empty side scores 0 (its total counts as 1). */
static enum llm_err score_ngrams(struct llm_rouge *r, const struct seq *ref, const struct seq *hyp,
				 int n, struct llm_rouge_prf *out)
{
	size_t nr = ref->n >= (size_t)n ? ref->n - (size_t)n + 1 : 0;
	size_t nh = hyp->n >= (size_t)n ? hyp->n - (size_t)n + 1 : 0;
	size_t hits = 0;
	if (nr && nh && n == 1) {
		for (size_t i = 0; i < ref->n; i++)
			r->w[ref->ids[i]].cnt_r = r->w[ref->ids[i]].cnt_c = 0;
		for (size_t i = 0; i < hyp->n; i++)
			r->w[hyp->ids[i]].cnt_r = r->w[hyp->ids[i]].cnt_c = 0;
		for (size_t i = 0; i < ref->n; i++)
			r->w[ref->ids[i]].cnt_r++;
		for (size_t i = 0; i < hyp->n; i++) {
			struct vword *v = &r->w[hyp->ids[i]];
			if (v->cnt_c < v->cnt_r) {
				v->cnt_c++;
				hits++;
			}
		}
	} else if (nr && nh) {
		size_t size = 16;
		while (size < 2 * nr)
			size *= 2;
		if (grow((void **)&r->ng, &r->ng_cap, size, sizeof *r->ng))
			return LLM_ERR_NOMEM;
		memset(r->ng, 0, size * sizeof *r->ng);
		size_t mask = size - 1;
		for (size_t p = 0; p < nr; p++) {
			const uint32_t *g = ref->ids + p;
			uint32_t h = ngram_hash(g, n);
			size_t i = h & mask;
			for (; r->ng[i].pos1; i = (i + 1) & mask)
				if (r->ng[i].hash == h &&
				    !memcmp(ref->ids + r->ng[i].pos1 - 1, g, (size_t)n * sizeof *g))
					break;
			if (!r->ng[i].pos1) {
				r->ng[i].pos1 = (uint32_t)p + 1;
				r->ng[i].hash = h;
			}
			r->ng[i].ref_cnt++;
		}
		for (size_t p = 0; p < nh; p++) {
			const uint32_t *g = hyp->ids + p;
			uint32_t h = ngram_hash(g, n);
			for (size_t i = h & mask; r->ng[i].pos1; i = (i + 1) & mask)
				if (r->ng[i].hash == h && !memcmp(ref->ids + r->ng[i].pos1 - 1, g,
								  (size_t)n * sizeof *g)) {
					if (r->ng[i].hyp_cnt < r->ng[i].ref_cnt) {
						r->ng[i].hyp_cnt++;
						hits++;
					}
					break;
				}
		}
	}
	*out = prf(hits, nh ? nh : 1, nr ? nr : 1);
	return LLM_OK;
}

/* --- longest common subsequence ------------------------------------------------------------ */

/* One bit mask per distinct token of a[0..m), over the positions where it occurs. */
static enum llm_err masks_build(struct llm_rouge *r, const uint32_t *a, size_t m)
{
	if (++r->epoch == 0) {
		for (size_t i = 0; i < r->nw; i++)
			r->w[i].stamp = 0;
		r->epoch = 1;
	}
	size_t nd = 0;
	if (m <= 64) { /* one word a mask: the two passes in one, without a branch */
		if (grow((void **)&r->masks, &r->masks_cap, m, sizeof *r->masks))
			return LLM_ERR_NOMEM;
		for (size_t k = 0; k < m; k++) {
			struct vword *v = &r->w[a[k]];
			uint64_t fresh = v->stamp != r->epoch;
			uint32_t slot = fresh ? (uint32_t)nd : v->slot;
			v->stamp = r->epoch;
			v->slot = slot;
			r->masks[slot] = (r->masks[slot] & (fresh - 1)) | 1ULL << k;
			nd += fresh;
		}
		r->mw = 1;
		return LLM_OK;
	}
	for (size_t k = 0; k < m; k++) {
		struct vword *v = &r->w[a[k]];
		if (v->stamp != r->epoch) {
			v->stamp = r->epoch;
			v->slot = (uint32_t)nd++;
		}
	}
	size_t W = (m + 63) / 64;
	if (nd > LCS_MASKS_MAX_BYTES / sizeof *r->masks / W)
		return LLM_ERR_TOO_BIG;
	if (grow((void **)&r->masks, &r->masks_cap, nd * W, sizeof *r->masks))
		return LLM_ERR_NOMEM;
	memset(r->masks, 0, nd * W * sizeof *r->masks);
	for (size_t k = 0; k < m; k++)
		r->masks[(size_t)r->w[a[k]].slot * W + k / 64] |= 1ULL << (k % 64);
	r->mw = W;
	return LLM_OK;
}

/* The mask of token b in the current masks, or NULL when b is not in that text. */
static const uint64_t *mask_of(const struct llm_rouge *r, uint32_t b)
{
	const struct vword *v = &r->w[b];
	return v->stamp == r->epoch ? r->masks + (size_t)v->slot * r->mw : NULL;
}

/* V' = (V + (V & M)) | (V & ~M) over W words, with the carry crossing words. */
static void lcs_step(uint64_t *out, const uint64_t *v, const uint64_t *m, size_t W)
{
	uint64_t carry = 0;
	for (size_t w = 0; w < W; w++) {
		uint64_t x = v[w], u = x & m[w];
		uint64_t s = x + u;
		uint64_t c1 = s < x;
		uint64_t s2 = s + carry;
		carry = c1 | (s2 < s);
		out[w] = s2 | (x & ~m[w]);
	}
}

/* The LCS length by the textbook DP, one row of the table at a time: for texts whose masks
 * would be too large. */
static enum llm_err lcs_dp(struct llm_rouge *r, const struct seq *a, const struct seq *b,
			   size_t *lcs)
{
	size_t need = (b->n + 1 + 1) / 2; /* b->n + 1 uint32 cells in uint64 words */
	if (grow((void **)&r->rows, &r->rows_cap, need, sizeof *r->rows))
		return LLM_ERR_NOMEM;
	uint32_t *row = (uint32_t *)(void *)r->rows;
	memset(row, 0, (b->n + 1) * sizeof *row);
	for (size_t i = 0; i < a->n; i++) {
		uint32_t diag = 0; /* t[i][j-1] of the row above */
		for (size_t j = 1; j <= b->n; j++) {
			uint32_t up = row[j];
			if (a->ids[i] == b->ids[j - 1])
				row[j] = diag + 1;
			else if (row[j - 1] > up)
				row[j] = row[j - 1];
			diag = up;
		}
	}
	*lcs = row[b->n];
	return LLM_OK;
}

/* rouge-score's _score_lcs: LCS length over the two lengths, 0 when either is empty. */
static enum llm_err score_lcs(struct llm_rouge *r, const struct seq *ref, const struct seq *hyp,
			      struct llm_rouge_prf *out)
{
	*out = (struct llm_rouge_prf){0, 0, 0};
	if (!ref->n || !hyp->n)
		return LLM_OK;
	enum llm_err e = masks_build(r, ref->ids, ref->n);
	if (e == LLM_ERR_TOO_BIG) {
		size_t lcs;
		if ((e = lcs_dp(r, ref, hyp, &lcs)) == LLM_OK)
			*out = prf(lcs, hyp->n, ref->n);
		return e;
	}
	if (e != LLM_OK)
		return e;
	size_t W = r->mw;
	if (grow((void **)&r->rows, &r->rows_cap, W, sizeof *r->rows))
		return LLM_ERR_NOMEM;
	uint64_t *v = r->rows;
	memset(v, 0xff, W * sizeof *v);
	if (W == 1) {
		/* A reference of up to 64 tokens, the usual one: lcs_step without a carry, and
		 * without a branch, since a mask of zeros leaves x as it is.  A token that is not
		 * in the reference may have a slot from an earlier text, inside the masks'
		 * capacity: what is there is masked out. */
		uint64_t x = ~0ULL;
		for (size_t j = 0; j < hyp->n; j++) {
			const struct vword *w = &r->w[hyp->ids[j]];
			uint64_t m = r->masks[w->slot] & (0 - (uint64_t)(w->stamp == r->epoch));
			x = (x + (x & m)) | (x & ~m);
		}
		v[0] = x;
	} else {
		for (size_t j = 0; j < hyp->n; j++) {
			const uint64_t *m = mask_of(r, hyp->ids[j]);
			if (m)
				lcs_step(v, v, m, W);
		}
	}
	size_t lcs = 0;
	for (size_t w = 0; w < W; w++) {
		uint64_t zeros = ~v[w];
		if (w == W - 1 && ref->n % 64)
			zeros &= (1ULL << (ref->n % 64)) - 1;
		lcs += (size_t)__builtin_popcountll(zeros);
	}
	*out = prf(lcs, hyp->n, ref->n);
	return LLM_OK;
}

/* Mark in marks[] the reference positions of rouge-score's lcs_ind(ref, can), the LCS its
 * _backtrack_norec reads out.  The masks are those of ref.  With t[i][j] the DP table: on a
 * mismatch it steps left (j - 1) when t[i][j-1] > t[i-1][j], which happens exactly when
 * t[i-1][j] = t[i][j] - 1, that is when bit i-1 of row j is clear. */
static enum llm_err union_lcs(struct llm_rouge *r, const uint32_t *ref, size_t m,
			      const uint32_t *can, size_t n, unsigned char *marks,
			      struct llm_diag *diag)
{
	size_t W = r->mw;
	if (n + 1 > LCS_ROWS_MAX_BYTES / sizeof *r->rows / W)
		return llm_diag_set(diag, LLM_ERR_TOO_BIG, NULL, 0,
				    "rouge: rougeLsum: sentences of %zu and %zu tokens need more "
				    "than %zu MiB; split them with newlines",
				    m, n, LCS_ROWS_MAX_BYTES >> 20);
	if (grow((void **)&r->rows, &r->rows_cap, (n + 1) * W, sizeof *r->rows))
		return nomem(diag);
	uint64_t *rows = r->rows;
	memset(rows, 0xff, W * sizeof *rows);
	bool any = false;
	for (size_t j = 1; j <= n; j++) {
		const uint64_t *mk = mask_of(r, can[j - 1]);
		if (mk) {
			lcs_step(rows + j * W, rows + (j - 1) * W, mk, W);
			any = true;
		} else {
			memcpy(rows + j * W, rows + (j - 1) * W, W * sizeof *rows);
		}
	}
	if (!any)
		return LLM_OK;
	size_t i = m, j = n;
	while (i > 0 && j > 0) {
		if (ref[i - 1] == can[j - 1]) {
			marks[i - 1] = 1;
			i--;
			j--;
		} else if (!((rows[j * W + (i - 1) / 64] >> ((i - 1) % 64)) & 1)) {
			j--;
		} else {
			i--;
		}
	}
	return LLM_OK;
}

/* rouge-score's _summary_level_lcs: for each reference sentence, the union of its LCS with
 * every hypothesis sentence; a token of the union is a hit while both texts still have an
 * unused occurrence of it. */
static enum llm_err score_lsum(struct llm_rouge *r, const struct seq *ref, const struct seq *hyp,
			       struct llm_rouge_prf *out, struct llm_diag *diag)
{
	*out = (struct llm_rouge_prf){0, 0, 0};
	if (!ref->n || !hyp->n)
		return LLM_OK;
	for (size_t i = 0; i < ref->n; i++)
		r->w[ref->ids[i]].cnt_r = r->w[ref->ids[i]].cnt_c = 0;
	for (size_t i = 0; i < hyp->n; i++)
		r->w[hyp->ids[i]].cnt_r = r->w[hyp->ids[i]].cnt_c = 0;
	for (size_t i = 0; i < ref->n; i++)
		r->w[ref->ids[i]].cnt_r++;
	for (size_t i = 0; i < hyp->n; i++)
		r->w[hyp->ids[i]].cnt_c++;
	size_t hits = 0;
	for (size_t s = 0; s < ref->n_sent; s++) {
		const uint32_t *rs = ref->ids + ref->bounds[s];
		size_t m = ref->bounds[s + 1] - ref->bounds[s];
		enum llm_err e = masks_build(r, rs, m);
		if (e == LLM_ERR_TOO_BIG)
			return llm_diag_set(
			    diag, e, NULL, 0,
			    "rouge: rougeLsum: a reference sentence of %zu tokens is "
			    "too long; split it with newlines",
			    m);
		if (e == LLM_OK && grow((void **)&r->marks, &r->marks_cap, m, 1))
			e = LLM_ERR_NOMEM;
		if (e != LLM_OK)
			return nomem(diag);
		memset(r->marks, 0, m);
		for (size_t c = 0; c < hyp->n_sent; c++) {
			const uint32_t *cs = hyp->ids + hyp->bounds[c];
			size_t n = hyp->bounds[c + 1] - hyp->bounds[c];
			if ((e = union_lcs(r, rs, m, cs, n, r->marks, diag)) != LLM_OK)
				return e;
		}
		for (size_t i = 0; i < m; i++) {
			struct vword *v = &r->w[rs[i]];
			if (r->marks[i] && v->cnt_c > 0 && v->cnt_r > 0) {
				hits++;
				v->cnt_c--;
				v->cnt_r--;
			}
		}
	}
	*out = prf(hits, hyp->n, ref->n);
	return LLM_OK;
}

/* --- the scorer ---------------------------------------------------------------------------- */

enum llm_err llm_rouge_new(struct llm_rouge **out, const struct llm_rouge_opts *o,
			   const char *const *types, size_t n_types, struct llm_diag *diag)
{
	*out = NULL;
	struct rtype *t = calloc(n_types ? n_types : 1, sizeof *t);
	if (!t)
		return nomem(diag);
	for (size_t i = 0; i < n_types; i++) {
		const char *s = types[i] ? types[i] : "";
		if (!strcmp(s, "rougeL")) {
			t[i].kind = KIND_L;
		} else if (!strcmp(s, "rougeLsum")) {
			t[i].kind = KIND_LSUM;
		} else if (!strncmp(s, "rouge", 5) && s[5] >= '1' && s[5] <= '9' && !s[6]) {
			t[i].kind = KIND_N;
			t[i].n = s[5] - '0';
		} else {
			free(t);
			return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0,
					    "unknown ROUGE type '%s' (rouge1 to rouge9, rougeL, "
					    "rougeLsum)",
					    s);
		}
	}
	struct llm_rouge *r = calloc(1, sizeof *r);
	struct llm_rouge_prf *cur = calloc(n_types ? n_types : 1, sizeof *cur);
	if (!r || !cur) {
		free(t);
		free(r);
		free(cur);
		return nomem(diag);
	}
	if (o)
		r->o = *o;
	r->types = t;
	r->n_types = n_types;
	r->cur = cur;
	llm_buf_init(&r->chars, 0);
	llm_buf_init(&r->word, 0);
	llm_buf_init(&r->stem, 0);
	llm_buf_init(&r->lower, 0);
	*out = r;
	return LLM_OK;
}

void llm_rouge_free(struct llm_rouge *r)
{
	if (!r)
		return;
	free(r->types);
	free(r->w);
	free(r->table);
	llm_buf_free(&r->chars);
	llm_buf_free(&r->word);
	llm_buf_free(&r->stem);
	llm_buf_free(&r->lower);
	free(r->hyp.ids);
	free(r->hyp.bounds);
	free(r->ref.ids);
	free(r->ref.bounds);
	free(r->masks);
	free(r->rows);
	free(r->marks);
	free(r->ng);
	free(r->bounds);
	free(r->nl_at);
	free(r->cur);
	free(r);
}

static enum llm_err score_one(struct llm_rouge *r, const struct seq *ref, const struct seq *hyp,
			      struct llm_rouge_prf *out, struct llm_diag *diag)
{
	for (size_t t = 0; t < r->n_types; t++) {
		enum llm_err e = LLM_OK;
		switch (r->types[t].kind) {
		case KIND_N:
			e = score_ngrams(r, ref, hyp, r->types[t].n, &out[t]);
			break;
		case KIND_L:
			e = score_lcs(r, ref, hyp, &out[t]);
			break;
		case KIND_LSUM:
			e = score_lsum(r, ref, hyp, &out[t], diag);
			break;
		}
		if (e == LLM_ERR_NOMEM)
			return nomem(diag);
		if (e != LLM_OK)
			return e;
	}
	return LLM_OK;
}

enum llm_err llm_rouge_score(struct llm_rouge *r, const char *hyp, size_t hyp_len,
			     const char *const *refs, const size_t *ref_lens, size_t n_refs,
			     struct llm_rouge_prf *out, struct llm_diag *diag)
{
	if (!n_refs)
		return llm_diag_set(diag, LLM_ERR_USAGE, NULL, 0, "rouge: no reference to score");
	if (r->nw > VOCAB_RESET_WORDS || r->chars.len > VOCAB_RESET_BYTES)
		vocab_reset(r);
	enum llm_err e = tokenize(r, hyp, hyp_len, &r->hyp, "hypothesis", (size_t)-1, diag);
	for (size_t k = 0; k < n_refs && e == LLM_OK; k++) {
		e = tokenize(r, refs[k], ref_lens[k], &r->ref, "reference",
			     n_refs > 1 ? k : (size_t)-1, diag);
		if (e != LLM_OK)
			break;
		/* score_multi: per type, the reference with the highest F (the first of equals). */
		struct llm_rouge_prf *dst = k ? r->cur : out;
		if ((e = score_one(r, &r->ref, &r->hyp, dst, diag)) != LLM_OK)
			break;
		for (size_t t = 0; k && t < r->n_types; t++)
			if (r->cur[t].fmeasure > out[t].fmeasure)
				out[t] = r->cur[t];
	}
	return e;
}
