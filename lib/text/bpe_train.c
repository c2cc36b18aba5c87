#include "config.h"

#include "text/bpe_train.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "core/buf.h"
#include "core/hash.h"
#include "core/json.h"

#define NONE UINT32_MAX

/* --- the distinct words and their counts ------------------------------------------------ */

struct word_entry {
	uint64_t hash;
	uint64_t count;
	uint64_t off; /* into the word arena */
	uint64_t len;
};

struct word_table {
	uint32_t *slots; /* entry index or NONE; a power of two long */
	size_t cap;
	struct word_entry *e;
	size_t n, ecap;
	char *arena;
	uint64_t alen, acap;
};

/* --- the pairs during training ----------------------------------------------------------- */

struct pair {
	uint64_t key;	/* left id << 32 | right id */
	int64_t count;	/* occurrences weighted by word counts */
	uint32_t head;	/* first node of the list of words it may occur in, or NONE */
	uint32_t stamp; /* the merge step in which it was last queued */
};

struct node {
	uint32_t word;
	uint32_t next;
};

struct heap_item {
	uint64_t count;
	uint64_t key;
};

struct tword {
	uint64_t start; /* into syms */
	uint32_t len;
	uint32_t stamp; /* the merge step that last rewrote it */
};

struct llm_bpe_trainer {
	uint32_t vocab_size;
	uint64_t min_frequency;
	uint64_t max_words;
	uint64_t prune_floor;
	pcre2_code *re;
	pcre2_match_data *md;
	char **specials;
	size_t *special_len;
	size_t *special_next; /* while feeding: each one's next occurrence */
	size_t nspecials;
	char *pattern; /* as given, for the JSON */
	struct word_table words;
	struct llm_bpe_train_stats st;
	bool trained;

	/* the vocabulary: id -> text (NUL-terminated in the arena), text -> id */
	uint64_t *tok_off;
	uint32_t *tok_len;
	size_t ntok, tokcap;
	struct llm_buf tok_arena;
	uint32_t *tok_slots;
	size_t tok_slots_cap;
	uint64_t *merges; /* left << 32 | right */
	size_t nmerges, mergecap;

	/* training state */
	uint32_t *syms;
	struct tword *tw;
	uint64_t *tcount;
	size_t ntw;
	struct pair *pairs;
	size_t npairs, paircap;
	uint32_t *pair_slots;
	size_t pair_slots_cap;
	struct node *nodes;
	size_t nnodes, nodecap;
	struct heap_item *heap;
	size_t nheap, heapcap;
	uint32_t *touched;
	size_t ntouched, touchcap;
	uint32_t step;
};

static enum llm_err nomem(struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

/* Grow *p (n elements of size sz, capacity *cap) to hold at least want. */
static bool grow(void *pp, size_t *cap, size_t want, size_t sz)
{
	if (want <= *cap)
		return true;
	size_t c = *cap ? *cap : 16;
	while (c < want)
		c *= 2;
	void *q = realloc(*(void **)pp, c * sz);
	if (!q)
		return false;
	*(void **)pp = q;
	*cap = c;
	return true;
}

/* --- the byte-to-unicode alphabet --------------------------------------------------------- */

static uint32_t byte_cp(unsigned char b)
{
	if ((b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || b >= 0xAE)
		return b;
	/* The others, in byte order, from U+0100. */
	uint32_t n = 0;
	for (unsigned i = 0; i < b; i++)
		if (!((i >= 0x21 && i <= 0x7E) || (i >= 0xA1 && i <= 0xAC) || i >= 0xAE))
			n++;
	return 256 + n;
}

size_t llm_bpe_byte_char(unsigned char b, char out[3])
{
	uint32_t cp = byte_cp(b);
	if (cp < 0x80) {
		out[0] = (char)cp;
		out[1] = '\0';
		return 1;
	}
	out[0] = (char)(0xC0 | cp >> 6);
	out[1] = (char)(0x80 | (cp & 0x3F));
	out[2] = '\0';
	return 2;
}

/* --- the vocabulary ------------------------------------------------------------------------ */

static const char *tok_text(const struct llm_bpe_trainer *t, uint32_t id)
{
	return t->tok_arena.data + t->tok_off[id];
}

static uint32_t tok_find(const struct llm_bpe_trainer *t, const char *s, size_t n, uint64_t h)
{
	size_t mask = t->tok_slots_cap - 1;
	for (size_t i = h & mask;; i = (i + 1) & mask) {
		uint32_t id = t->tok_slots[i];
		if (id == NONE)
			return NONE;
		if (t->tok_len[id] == n && !memcmp(tok_text(t, id), s, n))
			return id;
	}
}

static void tok_slot_put(struct llm_bpe_trainer *t, uint32_t id)
{
	size_t mask = t->tok_slots_cap - 1;
	uint64_t h = llm_hash64(tok_text(t, id), t->tok_len[id], 0);
	size_t i = h & mask;
	while (t->tok_slots[i] != NONE)
		i = (i + 1) & mask;
	t->tok_slots[i] = id;
}

/* The id of the token with text s, added when new. */
static enum llm_err tok_intern(struct llm_bpe_trainer *t, const char *s, size_t n, uint32_t *id,
			       struct llm_diag *d)
{
	uint64_t h = llm_hash64(s, n, 0);
	if (t->tok_slots_cap) {
		uint32_t f = tok_find(t, s, n, h);
		if (f != NONE) {
			*id = f;
			return LLM_OK;
		}
	}
	if (t->ntok + 1 > t->tok_slots_cap / 2) {
		size_t cap = t->tok_slots_cap ? t->tok_slots_cap * 2 : 1024;
		uint32_t *slots = malloc(cap * sizeof *slots);
		if (!slots)
			return nomem(d);
		memset(slots, 0xFF, cap * sizeof *slots);
		free(t->tok_slots);
		t->tok_slots = slots;
		t->tok_slots_cap = cap;
		for (uint32_t i = 0; i < t->ntok; i++)
			tok_slot_put(t, i);
	}
	if (!grow(&t->tok_off, &t->tokcap, t->ntok + 1, sizeof *t->tok_off))
		return nomem(d);
	size_t c2 = t->tokcap;
	uint32_t *lens = realloc(t->tok_len, c2 * sizeof *lens);
	if (!lens)
		return nomem(d);
	t->tok_len = lens;
	uint64_t off = t->tok_arena.len;
	if (llm_buf_append(&t->tok_arena, s, n) || llm_buf_putc(&t->tok_arena, '\0'))
		return nomem(d);
	t->tok_off[t->ntok] = off;
	t->tok_len[t->ntok] = (uint32_t)n;
	*id = (uint32_t)t->ntok++;
	tok_slot_put(t, *id);
	return LLM_OK;
}

/* --- options -------------------------------------------------------------------------------- */

/* Unicode White_Space, spelled out: PCRE2's \s also matches U+180E, Python's and Rust's do not. */
#define WHITE_SPACE                                                                                \
	"\\x{9}-\\x{d}\\x{20}\\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}\\x{2029}"         \
	"\\x{202f}\\x{205f}\\x{3000}"

/* The pattern with \s and \S replaced by the White_Space set. */
static enum llm_err translate_pattern(const char *p, struct llm_buf *out)
{
	bool in_class = false;
	enum llm_err e = LLM_OK;
	for (size_t i = 0; p[i] && !e; i++) {
		if (p[i] == '\\' && p[i + 1]) {
			char c = p[i + 1];
			if (c == 's')
				e = llm_buf_puts(out, in_class ? WHITE_SPACE : "[" WHITE_SPACE "]");
			else if (c == 'S' && !in_class)
				e = llm_buf_puts(out, "[^" WHITE_SPACE "]");
			else
				e = llm_buf_append(out, p + i, 2);
			i++;
			continue;
		}
		if (in_class && p[i] == '[' && p[i + 1] == ':') {
			/* A POSIX class such as [:alpha:]: its ']' does not end ours. */
			const char *end = strstr(p + i + 2, ":]");
			size_t n = end ? (size_t)(end - (p + i)) + 2 : strlen(p + i);
			e = llm_buf_append(out, p + i, n);
			i += n - 1;
			continue;
		}
		if (!in_class && p[i] == '[') {
			in_class = true;
			e = llm_buf_putc(out, '[');
			/* A ']' right after '[' or '[^' is a literal. */
			if (!e && p[i + 1] == '^') {
				e = llm_buf_putc(out, '^');
				i++;
			}
			if (!e && p[i + 1] == ']') {
				e = llm_buf_putc(out, ']');
				i++;
			}
			continue;
		}
		if (in_class && p[i] == ']')
			in_class = false;
		e = llm_buf_putc(out, p[i]);
	}
	return e;
}

enum llm_err llm_bpe_trainer_new(struct llm_bpe_trainer **out, const struct llm_bpe_train_opts *o,
				 struct llm_diag *d)
{
	*out = NULL;
	if ((uint64_t)o->vocab_size < 256 + (uint64_t)o->nspecials)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "--vocab-size %u is below the 256 byte tokens and %zu special "
				    "tokens",
				    o->vocab_size, o->nspecials);
	for (size_t i = 0; i < o->nspecials; i++) {
		size_t n = strlen(o->specials[i]);
		if (!n)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "an empty special token");
		if (llm_utf8_valid_prefix(o->specials[i], n) != n)
			return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
					    "special token %zu is not valid UTF-8", i + 1);
		for (size_t j = 0; j < i; j++)
			if (!strcmp(o->specials[i], o->specials[j]))
				return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
						    "special token '%s' is given twice",
						    o->specials[i]);
	}
	struct llm_bpe_trainer *t = calloc(1, sizeof *t);
	if (!t)
		return nomem(d);
	llm_buf_init(&t->tok_arena, 0);
	t->vocab_size = o->vocab_size;
	t->min_frequency = o->min_frequency;
	t->max_words = o->max_words;
	t->prune_floor = 1;
	const char *pattern = o->pattern ? o->pattern : LLM_BPE_PATTERN_CL100K;
	t->pattern = strdup(pattern);
	t->specials = calloc(o->nspecials + 1, sizeof *t->specials);
	t->special_len = calloc(o->nspecials + 1, sizeof *t->special_len);
	t->special_next = calloc(o->nspecials + 1, sizeof *t->special_next);
	if (!t->pattern || !t->specials || !t->special_len || !t->special_next) {
		llm_bpe_trainer_free(t);
		return nomem(d);
	}
	for (size_t i = 0; i < o->nspecials; i++) {
		t->specials[i] = strdup(o->specials[i]);
		if (!t->specials[i]) {
			llm_bpe_trainer_free(t);
			return nomem(d);
		}
		t->special_len[i] = strlen(o->specials[i]);
		t->nspecials++;
	}

	struct llm_buf pat;
	llm_buf_init(&pat, 0);
	if (translate_pattern(pattern, &pat)) {
		llm_buf_free(&pat);
		llm_bpe_trainer_free(t);
		return nomem(d);
	}
	int errcode;
	PCRE2_SIZE erroff;
	t->re = pcre2_compile((PCRE2_SPTR)pat.data, pat.len, PCRE2_UTF | PCRE2_UCP, &errcode,
			      &erroff, NULL);
	llm_buf_free(&pat);
	if (!t->re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(errcode, msg, sizeof msg);
		llm_bpe_trainer_free(t);
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "--pattern: %s", (char *)msg);
	}
	pcre2_jit_compile(t->re, PCRE2_JIT_COMPLETE); /* without JIT it is slower, not wrong */
	t->md = pcre2_match_data_create_from_pattern(t->re, NULL);
	if (!t->md) {
		llm_bpe_trainer_free(t);
		return nomem(d);
	}

	/* Ids as the Hugging Face trainer gives them: special tokens, then the byte alphabet in
	 * code-point order (the printable bytes ascending, then the others ascending). */
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i < t->nspecials && !e; i++) {
		uint32_t id;
		e = tok_intern(t, t->specials[i], t->special_len[i], &id, d);
	}
	for (int pass = 0; pass < 2 && !e; pass++)
		for (unsigned b = 0; b < 256 && !e; b++) {
			if ((byte_cp((unsigned char)b) < 256) != (pass == 0))
				continue;
			char ch[3];
			size_t n = llm_bpe_byte_char((unsigned char)b, ch);
			uint32_t id;
			e = tok_intern(t, ch, n, &id, d);
		}
	if (e) {
		llm_bpe_trainer_free(t);
		return e;
	}
	*out = t;
	return LLM_OK;
}

static void free_training(struct llm_bpe_trainer *t)
{
	free(t->syms);
	free(t->tw);
	free(t->tcount);
	free(t->pairs);
	free(t->pair_slots);
	free(t->nodes);
	free(t->heap);
	free(t->touched);
	t->syms = NULL;
	t->tw = NULL;
	t->tcount = NULL;
	t->pairs = NULL;
	t->pair_slots = NULL;
	t->nodes = NULL;
	t->heap = NULL;
	t->touched = NULL;
}

static void free_words(struct word_table *w)
{
	free(w->slots);
	free(w->e);
	free(w->arena);
	memset(w, 0, sizeof *w);
}

void llm_bpe_trainer_free(struct llm_bpe_trainer *t)
{
	if (!t)
		return;
	pcre2_match_data_free(t->md);
	pcre2_code_free(t->re);
	for (size_t i = 0; t->specials && i < t->nspecials; i++)
		free(t->specials[i]);
	free(t->specials);
	free(t->special_len);
	free(t->special_next);
	free(t->pattern);
	free_words(&t->words);
	free(t->tok_off);
	free(t->tok_len);
	free(t->tok_slots);
	llm_buf_free(&t->tok_arena);
	free(t->merges);
	free_training(t);
	free(t);
}

/* --- counting words -------------------------------------------------------------------------- */

static void word_slots_fill(struct word_table *w)
{
	size_t mask = w->cap - 1;
	memset(w->slots, 0xFF, w->cap * sizeof *w->slots);
	for (size_t k = 0; k < w->n; k++) {
		size_t i = w->e[k].hash & mask;
		while (w->slots[i] != NONE)
			i = (i + 1) & mask;
		w->slots[i] = (uint32_t)k;
	}
}

/* Drop the rarest words until a quarter of the room is free (word2vec's ReduceVocab): every
 * word seen at most prune_floor times goes, and the floor rises for the next time. */
static void prune_words(struct llm_bpe_trainer *t)
{
	struct word_table *w = &t->words;
	while (w->n > t->max_words - t->max_words / 4) {
		size_t k = 0;
		uint64_t aoff = 0;
		for (size_t i = 0; i < w->n; i++) {
			struct word_entry x = w->e[i];
			if (x.count <= t->prune_floor) {
				t->st.pruned_words++;
				t->st.pruned_count += x.count;
				continue;
			}
			memmove(w->arena + aoff, w->arena + x.off, x.len);
			x.off = aoff;
			aoff += x.len;
			w->e[k++] = x;
		}
		w->n = k;
		w->alen = aoff;
		t->prune_floor++;
	}
	word_slots_fill(w);
}

enum llm_err llm_bpe_trainer_add_word(struct llm_bpe_trainer *t, const char *s, size_t n,
				      uint64_t count, struct llm_diag *d)
{
	struct word_table *w = &t->words;
	if (!n || !count)
		return LLM_OK;
	if (t->trained)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the trainer has already trained");
	t->st.words += count;
	uint64_t h = llm_hash64(s, n, 0x62706521);
	if (w->cap) {
		size_t mask = w->cap - 1;
		for (size_t i = h & mask; w->slots[i] != NONE; i = (i + 1) & mask) {
			struct word_entry *x = &w->e[w->slots[i]];
			if (x->hash == h && x->len == n && !memcmp(w->arena + x->off, s, n)) {
				x->count += count;
				return LLM_OK;
			}
		}
	}
	if (w->n >= UINT32_MAX - 1)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
				    "more than 2^32 distinct words: set --max-words");
	if (!grow(&w->e, &w->ecap, w->n + 1, sizeof *w->e))
		return nomem(d);
	if (w->alen + n > w->acap) {
		uint64_t c = w->acap ? w->acap : 4096;
		while (c < w->alen + n)
			c *= 2;
		char *a = realloc(w->arena, c);
		if (!a)
			return nomem(d);
		w->arena = a;
		w->acap = c;
	}
	memcpy(w->arena + w->alen, s, n);
	w->e[w->n++] = (struct word_entry){h, count, w->alen, n};
	w->alen += n;
	if (w->n * 4 > w->cap * 3) {
		size_t cap = w->cap ? w->cap * 2 : 1024;
		uint32_t *slots = malloc(cap * sizeof *slots);
		if (!slots) {
			w->n--;
			return nomem(d);
		}
		free(w->slots);
		w->slots = slots;
		w->cap = cap;
		word_slots_fill(w);
	} else {
		size_t mask = w->cap - 1, i = h & mask;
		while (w->slots[i] != NONE)
			i = (i + 1) & mask;
		w->slots[i] = (uint32_t)(w->n - 1);
	}
	if (t->max_words && w->n > t->max_words)
		prune_words(t);
	return LLM_OK;
}

/* Split a stretch of text without special tokens by the pattern; text between matches (the
 * pattern need not cover everything) counts as words too, as Split does with Isolated. */
static enum llm_err split_words(struct llm_bpe_trainer *t, const char *s, size_t n,
				struct llm_diag *d)
{
	size_t at = 0, done = 0;
	while (at <= n) {
		int rc = pcre2_match(t->re, (PCRE2_SPTR)s, n, at, PCRE2_NO_UTF_CHECK, t->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0, "--pattern: %s",
					    (char *)msg);
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(t->md);
		size_t b = ov[0], e = ov[1];
		if (b > done) {
			enum llm_err er = llm_bpe_trainer_add_word(t, s + done, b - done, 1, d);
			if (er)
				return er;
		}
		if (e > b) {
			enum llm_err er = llm_bpe_trainer_add_word(t, s + b, e - b, 1, d);
			if (er)
				return er;
			done = at = e;
		} else {
			/* An empty match: step over one character. */
			done = b;
			at = b + 1;
			while (at < n && ((unsigned char)s[at] & 0xC0) == 0x80)
				at++;
		}
	}
	if (done < n)
		return llm_bpe_trainer_add_word(t, s + done, n - done, 1, d);
	return LLM_OK;
}

enum llm_err llm_bpe_trainer_feed(struct llm_bpe_trainer *t, const char *s, size_t n,
				  struct llm_diag *d)
{
	if (llm_utf8_valid_prefix(s, n) != n)
		return llm_diag_set(d, LLM_ERR_UTF8, NULL, 0, "invalid UTF-8 at byte %zu",
				    llm_utf8_valid_prefix(s, n));
	/* Special tokens are cut out first, leftmost and then longest, and never counted; each
	 * one's next occurrence is kept so the search stays linear. */
	size_t *next = t->special_next, ns = t->nspecials;
	for (size_t k = 0; k < ns; k++) {
		const char *f = memmem(s, n, t->specials[k], t->special_len[k]);
		next[k] = f ? (size_t)(f - s) : SIZE_MAX;
	}
	size_t pos = 0;
	for (;;) {
		size_t best = SIZE_MAX, blen = 0;
		for (size_t k = 0; k < ns; k++) {
			if (next[k] < pos) {
				const char *f =
				    memmem(s + pos, n - pos, t->specials[k], t->special_len[k]);
				next[k] = f ? (size_t)(f - s) : SIZE_MAX;
			}
			if (next[k] < best || (next[k] == best && t->special_len[k] > blen)) {
				best = next[k];
				blen = t->special_len[k];
			}
		}
		size_t end = best == SIZE_MAX ? n : best;
		if (end > pos) {
			enum llm_err e = split_words(t, s + pos, end - pos, d);
			if (e)
				return e;
		}
		if (best == SIZE_MAX)
			return LLM_OK;
		t->st.specials_seen++;
		pos = best + blen;
	}
}

/* --- training ----------------------------------------------------------------------------------
 */

static uint32_t pair_lookup(const struct llm_bpe_trainer *t, uint64_t key)
{
	if (!t->pair_slots_cap)
		return NONE;
	size_t mask = t->pair_slots_cap - 1;
	for (size_t i = llm_hash64(&key, sizeof key, 7) & mask;; i = (i + 1) & mask) {
		uint32_t p = t->pair_slots[i];
		if (p == NONE || t->pairs[p].key == key)
			return p;
	}
}

static void pair_slot_put(struct llm_bpe_trainer *t, uint32_t p)
{
	size_t mask = t->pair_slots_cap - 1;
	size_t i = llm_hash64(&t->pairs[p].key, sizeof t->pairs[p].key, 7) & mask;
	while (t->pair_slots[i] != NONE)
		i = (i + 1) & mask;
	t->pair_slots[i] = p;
}

static enum llm_err pair_get(struct llm_bpe_trainer *t, uint64_t key, uint32_t *out,
			     struct llm_diag *d)
{
	uint32_t p = pair_lookup(t, key);
	if (p != NONE) {
		*out = p;
		return LLM_OK;
	}
	if (t->npairs >= UINT32_MAX - 1)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "more than 2^32 distinct pairs");
	if (!grow(&t->pairs, &t->paircap, t->npairs + 1, sizeof *t->pairs))
		return nomem(d);
	t->pairs[t->npairs] = (struct pair){key, 0, NONE, 0};
	p = (uint32_t)t->npairs++;
	if (t->npairs * 2 > t->pair_slots_cap) {
		size_t cap = t->pair_slots_cap ? t->pair_slots_cap * 2 : 4096;
		uint32_t *slots = malloc(cap * sizeof *slots);
		if (!slots)
			return nomem(d);
		memset(slots, 0xFF, cap * sizeof *slots);
		free(t->pair_slots);
		t->pair_slots = slots;
		t->pair_slots_cap = cap;
		for (uint32_t i = 0; i < t->npairs; i++)
			pair_slot_put(t, i);
	} else {
		pair_slot_put(t, p);
	}
	*out = p;
	return LLM_OK;
}

/* The heap is ordered by count, then by the smaller pair (left id, then right id), the order
 * of the Hugging Face trainer's queue. */
static bool heap_above(const struct heap_item *a, const struct heap_item *b)
{
	return a->count != b->count ? a->count > b->count : a->key < b->key;
}

static enum llm_err heap_push(struct llm_bpe_trainer *t, uint64_t count, uint64_t key,
			      struct llm_diag *d)
{
	if (!grow(&t->heap, &t->heapcap, t->nheap + 1, sizeof *t->heap))
		return nomem(d);
	size_t i = t->nheap++;
	struct heap_item x = {count, key};
	while (i > 0) {
		size_t up = (i - 1) / 2;
		if (!heap_above(&x, &t->heap[up]))
			break;
		t->heap[i] = t->heap[up];
		i = up;
	}
	t->heap[i] = x;
	return LLM_OK;
}

static struct heap_item heap_pop(struct llm_bpe_trainer *t)
{
	struct heap_item top = t->heap[0];
	struct heap_item x = t->heap[--t->nheap];
	size_t i = 0, n = t->nheap;
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && heap_above(&t->heap[c + 1], &t->heap[c]))
			c++;
		if (!heap_above(&t->heap[c], &x))
			break;
		t->heap[i] = t->heap[c];
		i = c;
	}
	if (n)
		t->heap[i] = x;
	return top;
}

/* Add delta to a pair's count; when it grows, remember that word w holds it and queue the pair
 * again at the end of this step. */
static enum llm_err pair_change(struct llm_bpe_trainer *t, uint32_t a, uint32_t b, int64_t delta,
				uint32_t w, struct llm_diag *d)
{
	uint32_t p = 0; /* set by pair_get; initialised for GCC's flow analysis */
	enum llm_err e = pair_get(t, (uint64_t)a << 32 | b, &p, d);
	if (e)
		return e;
	t->pairs[p].count += delta;
	if (delta <= 0)
		return LLM_OK;
	uint32_t h = t->pairs[p].head;
	if (h == NONE || t->nodes[h].word != w) {
		if (t->nnodes >= UINT32_MAX - 1)
			return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "too many pair positions");
		if (!grow(&t->nodes, &t->nodecap, t->nnodes + 1, sizeof *t->nodes))
			return nomem(d);
		t->nodes[t->nnodes] = (struct node){w, h};
		t->pairs[p].head = (uint32_t)t->nnodes++;
	}
	if (t->pairs[p].stamp != t->step) {
		t->pairs[p].stamp = t->step;
		if (!grow(&t->touched, &t->touchcap, t->ntouched + 1, sizeof *t->touched))
			return nomem(d);
		t->touched[t->ntouched++] = p;
	}
	return LLM_OK;
}

/* Merge every (a, b) in word w into nid, left to right, and update the neighbours' pairs the
 * way the Hugging Face trainer's Word::merge reports its changes. */
static enum llm_err merge_word(struct llm_bpe_trainer *t, uint32_t w, uint32_t a, uint32_t b,
			       uint32_t nid, struct llm_diag *d)
{
	uint32_t *s = t->syms + t->tw[w].start;
	uint32_t len = t->tw[w].len;
	int64_t c = (int64_t)t->tcount[w];
	enum llm_err e = LLM_OK;
	for (uint32_t i = 0; i + 1 < len && !e; i++) {
		if (s[i] != a || s[i + 1] != b)
			continue;
		if (i > 0) {
			e = pair_change(t, s[i - 1], a, -c, w, d);
			if (!e)
				e = pair_change(t, s[i - 1], nid, c, w, d);
		}
		s[i] = nid;
		memmove(s + i + 1, s + i + 2, (len - i - 2) * sizeof *s);
		len--;
		if (!e && i + 1 < len) {
			e = pair_change(t, b, s[i + 1], -c, w, d);
			if (!e)
				e = pair_change(t, nid, s[i + 1], c, w, d);
		}
	}
	t->tw[w].len = len;
	return e;
}

/* Turn the word table into symbol arrays and count the pairs. */
static enum llm_err setup_training(struct llm_bpe_trainer *t, struct llm_diag *d)
{
	struct word_table *w = &t->words;
	uint32_t byte_id[256];
	for (unsigned b = 0; b < 256; b++) {
		char ch[3];
		size_t n = llm_bpe_byte_char((unsigned char)b, ch);
		byte_id[b] = tok_find(t, ch, n, llm_hash64(ch, n, 0));
	}
	t->ntw = w->n;
	t->syms = malloc((w->alen ? w->alen : 1) * sizeof *t->syms);
	t->tw = calloc(w->n ? w->n : 1, sizeof *t->tw);
	t->tcount = malloc((w->n ? w->n : 1) * sizeof *t->tcount);
	if (!t->syms || !t->tw || !t->tcount)
		return nomem(d);
	/* Words in first-seen order; the merges do not depend on it (counts are sums and ties go
	 * by ids), only the order of the lists of where a pair occurs. */
	for (size_t i = 0; i < w->n; i++) {
		const struct word_entry *x = &w->e[i];
		t->tw[i].start = x->off;
		t->tw[i].len = (uint32_t)(x->len > UINT32_MAX ? UINT32_MAX : x->len);
		t->tcount[i] = x->count;
		for (uint64_t k = 0; k < x->len; k++)
			t->syms[x->off + k] = byte_id[(unsigned char)w->arena[x->off + k]];
	}
	t->st.distinct_words = w->n;
	free_words(w);
	t->step = 1;
	for (uint32_t i = 0; i < t->ntw; i++) {
		const uint32_t *s = t->syms + t->tw[i].start;
		for (uint32_t k = 0; k + 1 < t->tw[i].len; k++) {
			enum llm_err e =
			    pair_change(t, s[k], s[k + 1], (int64_t)t->tcount[i], i, d);
			if (e)
				return e;
		}
	}
	for (size_t k = 0; k < t->ntouched; k++) {
		const struct pair *p = &t->pairs[t->touched[k]];
		enum llm_err e = heap_push(t, (uint64_t)p->count, p->key, d);
		if (e)
			return e;
	}
	t->ntouched = 0;
	return LLM_OK;
}

enum llm_err llm_bpe_trainer_train(struct llm_bpe_trainer *t, struct llm_diag *d)
{
	if (t->trained)
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0, "the trainer has already trained");
	t->trained = true;
	enum llm_err e = setup_training(t, d);
	struct llm_buf joined;
	llm_buf_init(&joined, 0);
	while (!e && t->ntok < t->vocab_size && t->nheap) {
		struct heap_item top = heap_pop(t);
		uint32_t p = pair_lookup(t, top.key);
		int64_t now = t->pairs[p].count;
		if ((int64_t)top.count != now) {
			/* Stale: queue it again with its count of now. */
			if (now > 0)
				e = heap_push(t, (uint64_t)now, top.key, d);
			continue;
		}
		if (top.count < 1 || top.count < t->min_frequency)
			break;
		uint32_t a = (uint32_t)(top.key >> 32), b = (uint32_t)top.key;
		llm_buf_clear(&joined);
		uint32_t nid;
		if (llm_buf_append(&joined, tok_text(t, a), t->tok_len[a]) ||
		    llm_buf_append(&joined, tok_text(t, b), t->tok_len[b])) {
			e = nomem(d);
			break;
		}
		/* A token already in the vocabulary (reached by another pair) keeps its id. */
		e = tok_intern(t, joined.data, joined.len, &nid, d);
		if (!e && !grow(&t->merges, &t->mergecap, t->nmerges + 1, sizeof *t->merges))
			e = nomem(d);
		if (e)
			break;
		t->merges[t->nmerges++] = top.key;
		t->step++;
		for (uint32_t n = t->pairs[p].head; n != NONE && !e; n = t->nodes[n].next) {
			uint32_t w = t->nodes[n].word;
			if (t->tw[w].stamp == t->step)
				continue;
			t->tw[w].stamp = t->step;
			e = merge_word(t, w, a, b, nid, d);
		}
		/* Every occurrence is gone; so is the list of where they were. */
		t->pairs[p].count = 0;
		t->pairs[p].head = NONE;
		for (size_t k = 0; k < t->ntouched && !e; k++) {
			const struct pair *q = &t->pairs[t->touched[k]];
			if (q->count > 0)
				e = heap_push(t, (uint64_t)q->count, q->key, d);
		}
		t->ntouched = 0;
	}
	llm_buf_free(&joined);
	t->st.merges = t->nmerges;
	t->st.vocab = t->ntok;
	free_training(t);
	return e;
}

void llm_bpe_trainer_stats(const struct llm_bpe_trainer *t, struct llm_bpe_train_stats *out)
{
	*out = t->st;
	out->vocab = t->ntok;
	if (!t->trained)
		out->distinct_words = t->words.n;
}

const char *llm_bpe_trainer_token(const struct llm_bpe_trainer *t, uint32_t id)
{
	return id < t->ntok ? tok_text(t, id) : NULL;
}

void llm_bpe_trainer_merge(const struct llm_bpe_trainer *t, size_t i, const char **left,
			   const char **right)
{
	*left = i < t->nmerges ? tok_text(t, (uint32_t)(t->merges[i] >> 32)) : NULL;
	*right = i < t->nmerges ? tok_text(t, (uint32_t)t->merges[i]) : NULL;
}

/* --- tokenizer.json ------------------------------------------------------------------------- */

static json_t *byte_level(void)
{
	return json_pack("{s:s,s:b,s:b,s:b}", "type", "ByteLevel", "add_prefix_space", 0,
			 "trim_offsets", 1, "use_regex", 0);
}

json_t *llm_bpe_trainer_json(const struct llm_bpe_trainer *t)
{
	json_t *added = json_array(), *vocab = json_object(), *merges = json_array();
	bool ok = added && vocab && merges;
	for (size_t i = 0; ok && i < t->nspecials; i++) {
		uint32_t id = tok_find(t, t->specials[i], t->special_len[i],
				       llm_hash64(t->specials[i], t->special_len[i], 0));
		ok = !json_array_append_new(
		    added, json_pack("{s:I,s:s,s:b,s:b,s:b,s:b,s:b}", "id", (json_int_t)id,
				     "content", t->specials[i], "single_word", 0, "lstrip", 0,
				     "rstrip", 0, "normalized", 0, "special", 1));
	}
	for (uint32_t id = 0; ok && id < t->ntok; id++)
		ok = !json_object_set_new(vocab, tok_text(t, id), json_integer(id));
	for (size_t i = 0; ok && i < t->nmerges; i++) {
		const char *l, *r;
		llm_bpe_trainer_merge(t, i, &l, &r);
		ok = !json_array_append_new(merges, json_pack("[s,s]", l, r));
	}
	json_t *split = json_pack("{s:s,s:{s:s},s:s,s:b}", "type", "Split", "pattern", "Regex",
				  t->pattern, "behavior", "Isolated", "invert", 0);
	json_t *pre = split ? json_pack("{s:s,s:[o,o]}", "type", "Sequence", "pretokenizers", split,
					byte_level())
			    : NULL;
	json_t *model = ok ? json_pack("{s:s,s:n,s:n,s:n,s:n,s:b,s:b,s:b,s:o,s:o}", "type", "BPE",
				       "dropout", "unk_token", "continuing_subword_prefix",
				       "end_of_word_suffix", "fuse_unk", 0, "byte_fallback", 0,
				       "ignore_merges", 0, "vocab", vocab, "merges", merges)
			   : NULL;
	if (model || ok)
		vocab = merges = NULL; /* json_pack took them, or released them on failure */
	json_t *root =
	    ok && pre && model
		? json_pack("{s:s,s:n,s:n,s:o,s:n,s:o,s:o,s:o,s:o}", "version", "1.0", "truncation",
			    "padding", "added_tokens", added, "normalizer", "pre_tokenizer", pre,
			    "post_processor", byte_level(), "decoder", byte_level(), "model", model)
		: NULL;
	if (!root) {
		json_decref(added);
		json_decref(pre);
		json_decref(model);
		json_decref(vocab);
		json_decref(merges);
	}
	return root;
}
