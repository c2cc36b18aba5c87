#include "config.h"

#include "text/bpe.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PCRE2_CODE_UNIT_WIDTH 8
#include <jansson.h>
#include <pcre2.h>

#include "core/hash.h"
#include "core/json.h"

#define NONE UINT32_MAX
/* Pieces up to this many bytes merge in a flat array (cache-friendly, quadratic in the worst
 * case but short); longer ones merge through a heap. */
#define SHORT_PIECE 128
/* The longest token file accepted (o200k_base is 3.6 MB; Llama 3's tokenizer.json 9 MB). */
#define MAX_FILE_BYTES (256u << 20)

/* GPT-2's pre-splitting pattern: tiktoken's r50k_base and HF ByteLevel's default. */
static const char gpt2_pattern[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* Unicode White_Space, which is what \s means to tiktoken (Rust regex) and Python's regex;
 * PCRE2's own \s also takes U+180E, so it is never handed a bare \s. */
static const char white_space[] = "\\t-\\r \\x{85}\\x{a0}\\x{1680}\\x{2000}-\\x{200a}\\x{2028}"
				  "\\x{2029}\\x{202f}\\x{205f}\\x{3000}";

/* The patterns with a hand-written matcher for ASCII text (see fast_split_at). */
enum fast_split { FAST_NONE, FAST_GPT2, FAST_CL100K };
static const char cl100k_pattern[] =
    "('s|'S|'t|'T|'re|'rE|'Re|'RE|'ve|'vE|'Ve|'VE|'m|'M|'ll|'lL|'Ll|'LL|'d|'D)|"
    "[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

struct special {
	char *text;
	size_t len;
	uint32_t id;
	bool special; /* HF: false for added tokens that are always matched */
	bool allowed;
};

struct merge {
	uint64_t key; /* left id << 32 | right id; 0 marks an empty slot with id NONE */
	uint32_t rank;
	uint32_t id;
};

/* Words recur: a direct-mapped cache of short pieces and their ids skips most merging, and
 * for pieces that are tokens it is looked at before the vocabulary, whose lookup touches four
 * scattered arrays where an entry here is one cache line. */
#define CACHE_SLOTS 16384
#define CACHE_BYTES 30
#define CACHE_IDS   6
struct cache_entry {
	uint64_t h;
	uint8_t len; /* 0: empty */
	uint8_t nids;
	unsigned char bytes[CACHE_BYTES];
	uint32_t ids[CACHE_IDS];
};
_Static_assert(sizeof(struct cache_entry) == 64, "a cache entry is one cache line");

struct llm_bpe {
	bool hf;
	bool whole_first;      /* look a piece up whole before merging */
	bool add_prefix_space; /* HF ByteLevel: a space before each segment that lacks one */
	char *blob;	       /* every token's bytes */
	size_t blob_len, blob_cap;
	uint32_t n_ids, ids_cap;
	uint32_t *off, *len; /* per id; len 0: no such id */
	uint32_t max_len;
	uint32_t *slots; /* bytes -> id, open addressing */
	uint32_t mask;
	uint32_t byte_id[256];
	struct merge *merges; /* HF: (left, right) -> rank, merged id */
	uint32_t merge_mask;
	struct special *sp;
	size_t nsp;
	size_t nactive;
	bool first[256]; /* first bytes of the active special tokens */
	pcre2_code *re;
	pcre2_match_data *md;
	bool jit;
	enum fast_split fast; /* the pattern has a hand-written twin for ASCII text */
	bool fast_on;
	unsigned char pattern_sha[32]; /* of the pattern as given, for llm_bpe_digest */
	struct cache_entry *cache;     /* recent pieces and their ids */
	/* scratch for long pieces */
	uint32_t *nxt, *prv, *sid;
	uint64_t *heap;
	size_t scratch_cap, heap_cap;
};

/* --- hashing ----------------------------------------------------------------------------- */

static inline uint64_t mix128(uint64_t a, uint64_t b)
{
	__uint128_t r = (__uint128_t)a * b;
	return (uint64_t)r ^ (uint64_t)(r >> 64);
}

/* A hash for the short byte strings of a vocabulary (most under 16 bytes): two overlapping
 * reads and one multiply, inlined, as this runs for every piece and every candidate pair. */
static inline uint64_t hash_bytes(const unsigned char *p, size_t n)
{
	uint64_t a, b;
	if (n >= 8) {
		memcpy(&a, p, 8);
		memcpy(&b, p + n - 8, 8);
		for (size_t i = 8; i + 8 < n; i += 8) {
			uint64_t w;
			memcpy(&w, p + i, 8);
			a = mix128(a ^ w, 0x9E3779B97F4A7C15ULL);
		}
	} else if (n >= 4) {
		uint32_t x, y;
		memcpy(&x, p, 4);
		memcpy(&y, p + n - 4, 4);
		a = x;
		b = y;
	} else {
		a = n ? (uint64_t)p[0] | (uint64_t)p[n / 2] << 8 | (uint64_t)p[n - 1] << 16 : 0;
		b = 0;
	}
	return mix128(a ^ 0x2545F4914F6CDD1DULL ^ n, b ^ 0xbf58476d1ce4e5b9ULL);
}

static inline uint64_t hash_pair(uint64_t k)
{
	k ^= k >> 33;
	k *= 0xff51afd7ed558ccdULL;
	k ^= k >> 33;
	k *= 0xc4ceb9fe1a85ec53ULL;
	return k ^ (k >> 33);
}

static inline uint32_t vocab_find_h(const struct llm_bpe *b, const unsigned char *p, size_t n,
				    uint64_t h)
{
	if (n > b->max_len || !b->slots)
		return NONE;
	uint32_t i = (uint32_t)h & b->mask;
	for (;;) {
		uint32_t id = b->slots[i];
		if (id == NONE)
			return NONE;
		if (b->len[id] == n && !memcmp(b->blob + b->off[id], p, n))
			return id;
		i = (i + 1) & b->mask;
	}
}

static inline uint32_t vocab_find(const struct llm_bpe *b, const unsigned char *p, size_t n)
{
	return n > b->max_len ? NONE : vocab_find_h(b, p, n, hash_bytes(p, n));
}

static inline const struct merge *merge_find(const struct llm_bpe *b, uint32_t l, uint32_t r)
{
	uint64_t key = (uint64_t)l << 32 | r;
	uint32_t i = (uint32_t)hash_pair(key) & b->merge_mask;
	for (;;) {
		const struct merge *m = &b->merges[i];
		if (m->id == NONE)
			return NULL;
		if (m->key == key)
			return m;
		i = (i + 1) & b->merge_mask;
	}
}

static uint32_t table_size(size_t n)
{
	uint32_t cap = 1024;
	while (cap < 2 * n)
		cap <<= 1;
	return cap;
}

/* --- building ------------------------------------------------------------------------------ */

static enum llm_err nomem(struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_NOMEM, NULL, 0, "out of memory");
}

static struct llm_bpe *bpe_new(void)
{
	struct llm_bpe *b = calloc(1, sizeof *b);
	if (b)
		for (int i = 0; i < 256; i++)
			b->byte_id[i] = NONE;
	return b;
}

/* Make ids [0, n) addressable; capacity grows geometrically, vocabularies come one id at a
 * time. */
static bool grow_ids(struct llm_bpe *b, uint32_t n)
{
	if (n <= b->n_ids)
		return true;
	if (n > b->ids_cap) {
		uint32_t cap = b->ids_cap ? b->ids_cap : 1024;
		while (cap < n)
			cap = cap > UINT32_MAX / 2 ? n : cap * 2;
		uint32_t *o = realloc(b->off, (size_t)cap * sizeof *o);
		if (o)
			b->off = o;
		uint32_t *l = realloc(b->len, (size_t)cap * sizeof *l);
		if (l)
			b->len = l;
		if (!o || !l)
			return false;
		b->ids_cap = cap;
	}
	memset(b->len + b->n_ids, 0, (n - b->n_ids) * sizeof *b->len);
	b->n_ids = n;
	return true;
}

/* Record id's bytes (the id must be addressable). */
static bool set_token(struct llm_bpe *b, uint32_t id, const void *p, size_t n)
{
	if (n == 0 || n > UINT32_MAX / 2 || b->blob_len + n > UINT32_MAX)
		return false;
	if (b->blob_len + n > b->blob_cap) {
		size_t cap = b->blob_cap ? b->blob_cap * 2 : 1 << 16;
		while (cap < b->blob_len + n)
			cap *= 2;
		char *g = realloc(b->blob, cap);
		if (!g)
			return false;
		b->blob = g;
		b->blob_cap = cap;
	}
	memcpy(b->blob + b->blob_len, p, n);
	b->off[id] = (uint32_t)b->blob_len;
	b->len[id] = (uint32_t)n;
	b->blob_len += n;
	return true;
}

/* Index every id that has bytes and is not a special token, for whole-piece and pair lookups.
 * When two ids share bytes the lower wins (tiktoken's files have no such pairs). */
static enum llm_err build_index(struct llm_bpe *b, const bool *skip, struct llm_diag *d)
{
	size_t n = 0;
	for (uint32_t id = 0; id < b->n_ids; id++)
		n += b->len[id] && !(skip && skip[id]);
	uint32_t cap = table_size(n);
	free(b->slots);
	if (!(b->slots = malloc(cap * sizeof *b->slots)))
		return nomem(d);
	memset(b->slots, 0xff, cap * sizeof *b->slots);
	b->mask = cap - 1;
	b->max_len = 0;
	for (uint32_t id = 0; id < b->n_ids; id++) {
		uint32_t n_ = b->len[id];
		if (!n_ || (skip && skip[id]))
			continue;
		const unsigned char *p = (const unsigned char *)b->blob + b->off[id];
		uint32_t i = (uint32_t)hash_bytes(p, n_) & b->mask;
		bool dup = false;
		while (b->slots[i] != NONE) {
			uint32_t o = b->slots[i];
			if (b->len[o] == n_ && !memcmp(b->blob + b->off[o], p, n_)) {
				dup = true;
				break;
			}
			i = (i + 1) & b->mask;
		}
		if (dup)
			continue;
		b->slots[i] = id;
		if (n_ > b->max_len)
			b->max_len = n_;
		if (n_ == 1 && b->byte_id[p[0]] == NONE)
			b->byte_id[p[0]] = id;
	}
	return LLM_OK;
}

static enum llm_err add_special(struct llm_bpe *b, const char *text, size_t len, uint32_t id,
				bool special, struct llm_diag *d)
{
	if (!len)
		return llm_diag_set(d, LLM_ERR_IO, NULL, 0, "an added token is empty");
	struct special *g = realloc(b->sp, (b->nsp + 1) * sizeof *g);
	if (!g)
		return nomem(d);
	b->sp = g;
	struct special *s = &b->sp[b->nsp];
	if (!(s->text = malloc(len + 1)))
		return nomem(d);
	memcpy(s->text, text, len);
	s->text[len] = '\0';
	s->len = len;
	s->id = id;
	s->special = special;
	s->allowed = !special;
	b->nsp++;
	if (id == NONE || !grow_ids(b, id + 1))
		return id == NONE ? llm_diag_set(d, LLM_ERR_IO, NULL, 0, "token id out of range")
				  : nomem(d);
	if (!b->len[id] && !set_token(b, id, text, len))
		return nomem(d);
	return LLM_OK;
}

static int special_cmp(const void *x, const void *y)
{
	const struct special *a = x, *c = y;
	/* Longest first, so "<|a|>x" wins over its prefix "<|a|>" at the same place. */
	return a->len < c->len ? 1 : a->len > c->len ? -1 : strcmp(a->text, c->text);
}

static void refresh_active(struct llm_bpe *b)
{
	if (b->nsp) /* b->sp is NULL when there are no special tokens */
		qsort(b->sp, b->nsp, sizeof *b->sp, special_cmp);
	memset(b->first, 0, sizeof b->first);
	b->nactive = 0;
	for (size_t i = 0; i < b->nsp; i++)
		if (b->sp[i].allowed) {
			b->first[(unsigned char)b->sp[i].text[0]] = true;
			b->nactive++;
		}
}

/* Rewrite a pattern for PCRE2: \s and \S become the White_Space set, inside classes too. */
static enum llm_err translate_pattern(const char *pat, struct llm_buf *out, struct llm_diag *d)
{
	bool in_class = false;
	enum llm_err e = LLM_OK;
	for (const char *p = pat; *p && !e; p++) {
		if (*p == '\\' && p[1]) {
			char c = *++p;
			if (c == 's')
				e = in_class ? llm_buf_puts(out, white_space)
					     : llm_buf_printf(out, "[%s]", white_space);
			else if (c == 'S' && !in_class)
				e = llm_buf_printf(out, "[^%s]", white_space);
			else if (c == 'S')
				return llm_diag_set(
				    d, LLM_ERR_USAGE, NULL, 0,
				    "\\S inside a character class is not supported");
			else
				e = llm_buf_append(out, p - 1, 2);
			continue;
		}
		if (*p == '[' && !in_class) {
			in_class = true;
			e = llm_buf_putc(out, '[');
			if (!e && p[1] == '^')
				e = llm_buf_putc(out, *++p);
			if (!e && p[1] == ']')
				e = llm_buf_putc(out, *++p);
			continue;
		}
		if (*p == ']' && in_class)
			in_class = false;
		e = llm_buf_putc(out, *p);
	}
	return e ? nomem(d) : LLM_OK;
}

static enum llm_err set_pattern(struct llm_bpe *b, const char *pat, struct llm_diag *d)
{
	struct llm_buf t;
	llm_buf_init(&t, 0);
	enum llm_err e = translate_pattern(pat, &t, d);
	if (e) {
		llm_buf_free(&t);
		return e;
	}
	int code;
	PCRE2_SIZE at;
	b->re = pcre2_compile((PCRE2_SPTR)t.data, t.len, PCRE2_UTF | PCRE2_UCP, &code, &at, NULL);
	llm_buf_free(&t);
	if (!b->re) {
		PCRE2_UCHAR msg[160];
		pcre2_get_error_message(code, msg, sizeof msg);
		return llm_diag_set(d, LLM_ERR_USAGE, NULL, 0,
				    "pre-splitting pattern: %s at offset %zu", (char *)msg,
				    (size_t)at);
	}
	b->jit = pcre2_jit_compile(b->re, PCRE2_JIT_COMPLETE) == 0;
	b->fast = !strcmp(pat, gpt2_pattern)	 ? FAST_GPT2
		  : !strcmp(pat, cl100k_pattern) ? FAST_CL100K
						 : FAST_NONE;
	b->fast_on = true;
	if (llm_sha256(pat, strlen(pat), b->pattern_sha))
		return nomem(d);
	if (!(b->md = pcre2_match_data_create(1, NULL)))
		return nomem(d);
	return LLM_OK;
}

/* --- tiktoken ---------------------------------------------------------------------------- */

static int b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decode base64 s[0..n) into out (at least n * 3 / 4 bytes); -1 when malformed. */
static long b64_decode(const char *s, size_t n, unsigned char *out)
{
	uint32_t acc = 0;
	int bits = 0;
	long k = 0;
	size_t i = 0;
	for (; i < n && s[i] != '='; i++) {
		int v = b64_value((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = acc << 6 | (uint32_t)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[k++] = (unsigned char)(acc >> bits);
		}
	}
	for (; i < n; i++)
		if (s[i] != '=')
			return -1;
	return k;
}

static enum llm_err parse_tiktoken(struct llm_bpe *b, const char *text, size_t n, const char *file,
				   struct llm_diag *d)
{
	unsigned char tok[1024];
	long line = 0;
	const char *p = text, *end = text + n;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *eol = nl ? nl : end;
		line++;
		if (eol > p && eol[-1] == '\r')
			eol--;
		if (eol == p) {
			p = nl ? nl + 1 : end;
			continue;
		}
		const char *sp = memchr(p, ' ', (size_t)(eol - p));
		char num[16];
		size_t nd = sp ? (size_t)(eol - sp - 1) : 0;
		if (!sp || sp == p || (size_t)(sp - p) > 4 * sizeof tok / 3 || nd == 0 ||
		    nd >= sizeof num)
			return llm_diag_set(d, LLM_ERR_IO, file, line,
					    "expected 'BASE64 RANK' on each line");
		memcpy(num, sp + 1, nd);
		num[nd] = '\0';
		char *stop;
		errno = 0;
		unsigned long rank = strtoul(num, &stop, 10);
		long k = b64_decode(p, (size_t)(sp - p), tok);
		if (*stop || errno || rank >= NONE - 1 || k <= 0)
			return llm_diag_set(d, LLM_ERR_IO, file, line, "malformed token or rank");
		if (!grow_ids(b, (uint32_t)rank + 1))
			return nomem(d);
		if (b->len[rank])
			return llm_diag_set(d, LLM_ERR_IO, file, line, "rank %lu appears twice",
					    rank);
		if (!set_token(b, (uint32_t)rank, tok, (size_t)k))
			return nomem(d);
		p = nl ? nl + 1 : end;
	}
	if (!b->n_ids)
		return llm_diag_set(d, LLM_ERR_IO, file, 0, "no tokens in the vocabulary");
	return LLM_OK;
}

static enum llm_err finish_tiktoken(struct llm_bpe *b, const char *file, struct llm_diag *d)
{
	/* Special tokens are matched apart, never merged into. */
	bool *skip = calloc(b->n_ids, 1);
	if (!skip)
		return nomem(d);
	for (size_t i = 0; i < b->nsp; i++)
		skip[b->sp[i].id] = true;
	enum llm_err e = build_index(b, skip, d);
	free(skip);
	if (e)
		return e;
	for (int i = 0; i < 256; i++)
		if (b->byte_id[i] == NONE)
			return llm_diag_set(d, LLM_ERR_IO, file, 0,
					    "the vocabulary lacks the single byte 0x%02x", i);
	b->whole_first = true;
	refresh_active(b);
	return LLM_OK;
}

enum llm_err llm_bpe_from_tiktoken(struct llm_bpe **out, const char *vocab, size_t vocab_len,
				   const char *pattern, const char *const *special_text,
				   const uint32_t *special_id, size_t nspecial, struct llm_diag *d)
{
	*out = NULL;
	struct llm_bpe *b = bpe_new();
	if (!b)
		return nomem(d);
	enum llm_err e = parse_tiktoken(b, vocab, vocab_len, NULL, d);
	for (size_t i = 0; !e && i < nspecial; i++)
		e = add_special(b, special_text[i], strlen(special_text[i]), special_id[i], true,
				d);
	if (!e)
		e = finish_tiktoken(b, NULL, d);
	if (!e)
		e = set_pattern(b, pattern ? pattern : gpt2_pattern, d);
	if (e) {
		llm_bpe_free(b);
		return e;
	}
	*out = b;
	return LLM_OK;
}

static enum llm_err read_file(const char *path, char **data, size_t *len, struct llm_diag *d)
{
	*data = NULL;
	FILE *f = fopen(path, "rb");
	if (!f)
		return llm_diag_set(d, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	struct llm_buf b;
	llm_buf_init(&b, MAX_FILE_BYTES);
	char chunk[1 << 16];
	size_t n;
	enum llm_err e = LLM_OK;
	while (!e && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
		e = llm_buf_append(&b, chunk, n);
	bool bad = ferror(f);
	int err = errno;
	fclose(f);
	if (bad || e) {
		llm_buf_free(&b);
		if (e == LLM_ERR_TOO_BIG)
			return llm_diag_set(d, LLM_ERR_IO, path, 0, "larger than 256 MB");
		if (e)
			return nomem(d);
		return llm_diag_set(d, err == EISDIR ? LLM_ERR_IS_DIR : LLM_ERR_IO, path, 0,
				    "read error: %s", strerror(err));
	}
	if (!b.data && llm_buf_reserve(&b, 1))
		return nomem(d);
	*data = b.data;
	*len = b.len;
	return LLM_OK;
}

/* The meta file: {"pat_str": ..., "special_tokens": {text: id}, "sha256": ...}. */
static enum llm_err load_meta(struct llm_bpe *b, const char *meta_path, const char *vocab_path,
			      const char *vocab, size_t vocab_len, bool need_digest,
			      struct llm_diag *d)
{
	json_error_t je;
	json_t *m = json_load_file(meta_path, 0, &je);
	if (!m)
		return llm_diag_set(d, LLM_ERR_IO, meta_path, je.line > 0 ? je.line : 0, "%s",
				    je.text);
	enum llm_err e = LLM_OK;
	json_t *pat = json_object_get(m, "pat_str");
	json_t *sp = json_object_get(m, "special_tokens");
	json_t *digest = json_object_get(m, "sha256");
	if (!json_is_string(pat) || (sp && !json_is_object(sp)) ||
	    (digest && !json_is_string(digest)))
		e = llm_diag_set(d, LLM_ERR_IO, meta_path, 0,
				 "expected \"pat_str\", \"special_tokens\" and \"sha256\"");
	if (!e && need_digest && !digest)
		e = llm_diag_set(d, LLM_ERR_IO, meta_path, 0, "no \"sha256\" for the vocabulary");
	if (!e && digest) {
		unsigned char dg[LLM_SHA256_LEN];
		char hex[LLM_SHA256_HEX_LEN + 1];
		e = llm_sha256(vocab, vocab_len, dg);
		llm_hex(dg, sizeof dg, hex);
		if (!e && strcmp(hex, json_string_value(digest)))
			e = llm_diag_set(d, LLM_ERR_IO, vocab_path, 0,
					 "sha256 %s does not match %s: the file is corrupt or "
					 "altered",
					 hex, json_string_value(digest));
		else if (e)
			e = nomem(d);
	}
	if (!e)
		e = parse_tiktoken(b, vocab, vocab_len, vocab_path, d);
	const char *key;
	json_t *v;
	if (!e && sp)
		json_object_foreach(sp, key, v)
		{
			if (e)
				break;
			if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			    json_integer_value(v) >= NONE - 1)
				e = llm_diag_set(d, LLM_ERR_IO, meta_path, 0,
						 "special token %s: the id must be an integer",
						 key);
			else
				e = add_special(b, key, strlen(key),
						(uint32_t)json_integer_value(v), true, d);
		}
	if (!e)
		e = finish_tiktoken(b, vocab_path, d);
	if (!e)
		e = set_pattern(b, json_string_value(pat), d);
	json_decref(m);
	return e;
}

static enum llm_err open_tiktoken(struct llm_bpe **out, const char *vocab_path,
				  const char *meta_path, bool need_digest, struct llm_diag *d)
{
	*out = NULL;
	char *vocab;
	size_t n;
	enum llm_err e = read_file(vocab_path, &vocab, &n, d);
	if (e)
		return e;
	struct llm_bpe *b = bpe_new();
	if (!b) {
		free(vocab);
		return nomem(d);
	}
	e = load_meta(b, meta_path, vocab_path, vocab, n, need_digest, d);
	free(vocab);
	if (e) {
		llm_bpe_free(b);
		return e;
	}
	*out = b;
	return LLM_OK;
}

static char *path_join(const char *a, const char *b, const char *c)
{
	size_t n = strlen(a) + strlen(b) + strlen(c) + 1;
	char *p = malloc(n);
	if (p)
		snprintf(p, n, "%s%s%s", a, b, c);
	return p;
}

enum llm_err llm_bpe_open_encoding(struct llm_bpe **out, const char *dir, const char *name,
				   struct llm_diag *d)
{
	*out = NULL;
	for (const char *p = name; *p; p++)
		if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_' ||
		      *p == '-' || *p == '.') ||
		    (*p == '.' && p == name))
			return llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "unknown encoding '%s'",
					    name);
	char *base = path_join(dir, "/", name);
	char *meta = base ? path_join(base, ".meta.json", "") : NULL;
	char *vocab = base ? path_join(base, ".tiktoken", "") : NULL;
	enum llm_err e;
	FILE *f = meta ? fopen(meta, "r") : NULL;
	if (!base || !meta || !vocab)
		e = nomem(d);
	else if (!*name || !f)
		e = llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "unknown encoding '%s' (no %s)",
				 name, meta);
	else
		e = open_tiktoken(out, vocab, meta, true, d);
	if (f)
		fclose(f);
	free(base);
	free(meta);
	free(vocab);
	return e;
}

/* --- Hugging Face tokenizer.json ------------------------------------------------------------ */

/* GPT-2's byte-to-unicode alphabet: the printable bytes stand for themselves, the other 68
 * take U+0100 upward in byte order.  Returns the byte a code point stands for, or -1. */
static int unicode_to_byte(uint32_t cp)
{
	static int table[324];
	static bool ready;
	if (!ready) {
		for (int i = 0; i < 324; i++)
			table[i] = -1;
		int next = 256;
		for (int c = 0; c < 256; c++) {
			bool printable = (c >= '!' && c <= '~') || (c >= 0xa1 && c <= 0xac) ||
					 (c >= 0xae && c <= 0xff);
			table[printable ? c : next++] = c;
		}
		ready = true;
	}
	return cp < 324 ? table[cp] : -1;
}

static uint32_t utf8_next(const unsigned char **pp, const unsigned char *end)
{
	const unsigned char *p = *pp;
	uint32_t c = *p++;
	int more = c >= 0xf0 ? 3 : c >= 0xe0 ? 2 : c >= 0xc0 ? 1 : 0;
	c &= more == 3 ? 0x07 : more == 2 ? 0x0f : more == 1 ? 0x1f : 0x7f;
	while (more-- && p < end)
		c = c << 6 | (*p++ & 0x3f);
	*pp = p;
	return c;
}

/* A vocabulary key in the byte alphabet, back to its bytes.  A character outside the
 * alphabet stays as its UTF-8 (such a token is reachable only as an added token). */
static size_t unmap_bytes(const char *s, size_t n, unsigned char *out)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + n;
	size_t k = 0;
	while (p < end) {
		const unsigned char *at = p;
		int byte = unicode_to_byte(utf8_next(&p, end));
		if (byte >= 0) {
			out[k++] = (unsigned char)byte;
		} else {
			memcpy(out + k, at, (size_t)(p - at));
			k += (size_t)(p - at);
		}
	}
	return k;
}

static enum llm_err hf_unsupported(const char *file, const char *what, struct llm_diag *d)
{
	return llm_diag_set(d, LLM_ERR_USAGE, file, 0,
			    "unsupported tokenizer: %s (byte-level BPE is supported)", what);
}

/* Find the pattern and options in the pre_tokenizer: ByteLevel (GPT-2's pattern when
 * use_regex), or a Sequence of an isolating Split and a ByteLevel without regex. */
static enum llm_err hf_pre_tokenizer(struct llm_bpe *b, json_t *pt, const char *file,
				     const char **pattern, struct llm_diag *d)
{
	const char *type = json_string_value(json_object_get(pt, "type"));
	if (!type)
		return hf_unsupported(file, "no pre_tokenizer", d);
	if (!strcmp(type, "ByteLevel")) {
		json_t *re = json_object_get(pt, "use_regex");
		if (!re || json_is_true(re)) {
			if (*pattern)
				return hf_unsupported(file, "two splitting patterns", d);
			*pattern = gpt2_pattern;
		}
		b->add_prefix_space = json_is_true(json_object_get(pt, "add_prefix_space"));
		return LLM_OK;
	}
	if (!strcmp(type, "Split")) {
		json_t *pat = json_object_get(pt, "pattern");
		const char *re = json_string_value(json_object_get(pat, "Regex"));
		const char *behavior = json_string_value(json_object_get(pt, "behavior"));
		if (!re || json_is_true(json_object_get(pt, "invert")) || !behavior ||
		    strcmp(behavior, "Isolated"))
			return hf_unsupported(file, "a Split other than an isolating regex", d);
		if (*pattern)
			return hf_unsupported(file, "two splitting patterns", d);
		*pattern = re;
		return LLM_OK;
	}
	if (!strcmp(type, "Sequence")) {
		json_t *list = json_object_get(pt, "pretokenizers");
		size_t i;
		json_t *item;
		bool byte_level = false;
		json_array_foreach(list, i, item)
		{
			enum llm_err e = hf_pre_tokenizer(b, item, file, pattern, d);
			if (e)
				return e;
			const char *t = json_string_value(json_object_get(item, "type"));
			byte_level |= t && !strcmp(t, "ByteLevel");
		}
		return byte_level ? LLM_OK : hf_unsupported(file, "no ByteLevel pre_tokenizer", d);
	}
	return hf_unsupported(file, type, d);
}

static enum llm_err hf_add_merge(struct llm_bpe *b, const char *l, const char *r, uint32_t rank,
				 const char *file, struct llm_diag *d)
{
	/* Merges name tokens by their keys in the byte alphabet; find their ids through bytes. */
	unsigned char bl[1024], br[2048];
	size_t nl = strlen(l), nr = strlen(r);
	if (nl > 256 || nr > 256)
		return llm_diag_set(d, LLM_ERR_IO, file, 0, "merge %u: token too long", rank);
	size_t kl = unmap_bytes(l, nl, bl), kr = unmap_bytes(r, nr, br);
	uint32_t il = vocab_find(b, bl, kl), ir = vocab_find(b, br, kr);
	unsigned char both[2048];
	memcpy(both, bl, kl);
	memcpy(both + kl, br, kr);
	uint32_t im = vocab_find(b, both, kl + kr);
	if (il == NONE || ir == NONE || im == NONE)
		return llm_diag_set(d, LLM_ERR_IO, file, 0,
				    "merge %u (\"%s\" \"%s\") names a token not in the vocabulary",
				    rank, l, r);
	uint64_t key = (uint64_t)il << 32 | ir;
	uint32_t i = (uint32_t)hash_pair(key) & b->merge_mask;
	while (b->merges[i].id != NONE) {
		if (b->merges[i].key == key)
			return LLM_OK; /* a repeated merge keeps its first rank */
		i = (i + 1) & b->merge_mask;
	}
	b->merges[i] = (struct merge){key, rank, im};
	return LLM_OK;
}

static enum llm_err hf_load(struct llm_bpe *b, json_t *root, const char *file, struct llm_diag *d)
{
	json_t *model = json_object_get(root, "model");
	const char *type = json_string_value(json_object_get(model, "type"));
	json_t *vocab = json_object_get(model, "vocab");
	json_t *merges = json_object_get(model, "merges");
	if (!json_is_object(model) || !json_is_object(vocab) || !json_is_array(merges) ||
	    (type && strcmp(type, "BPE")))
		return hf_unsupported(file, type ? type : "no BPE model with vocab and merges", d);
	json_t *norm = json_object_get(root, "normalizer");
	if (norm && !json_is_null(norm))
		return hf_unsupported(file, "a normalizer", d);
	const char *cont = json_string_value(json_object_get(model, "continuing_subword_prefix"));
	const char *suffix = json_string_value(json_object_get(model, "end_of_word_suffix"));
	if ((cont && *cont) || (suffix && *suffix) ||
	    json_is_true(json_object_get(model, "byte_fallback")))
		return hf_unsupported(file, "subword prefixes or byte fallback", d);
	const char *pattern = NULL;
	enum llm_err e =
	    hf_pre_tokenizer(b, json_object_get(root, "pre_tokenizer"), file, &pattern, d);
	if (e)
		return e;
	b->hf = true;
	b->whole_first = json_is_true(json_object_get(model, "ignore_merges"));

	const char *key;
	json_t *v;
	unsigned char bytes[1024];
	json_object_foreach(vocab, key, v)
	{
		json_int_t id = json_integer_value(v);
		size_t n = strlen(key);
		if (!json_is_integer(v) || id < 0 || id >= NONE - 1 || n == 0 || n > 256)
			return llm_diag_set(d, LLM_ERR_IO, file, 0, "vocab entry \"%s\" is bad",
					    key);
		if (!grow_ids(b, (uint32_t)id + 1))
			return nomem(d);
		if (b->len[id])
			return llm_diag_set(d, LLM_ERR_IO, file, 0, "id %lld appears twice",
					    (long long)id);
		if (!set_token(b, (uint32_t)id, bytes, unmap_bytes(key, n, bytes)))
			return nomem(d);
	}
	/* Added tokens are matched apart; the vocabulary index holds only what merges reach. */
	json_t *added = json_object_get(root, "added_tokens");
	size_t i;
	json_t *item;
	bool *skip = NULL;
	json_array_foreach(added, i, item)
	{
		const char *content = json_string_value(json_object_get(item, "content"));
		json_t *idv = json_object_get(item, "id");
		if (!content || !json_is_integer(idv) || json_integer_value(idv) < 0 ||
		    json_integer_value(idv) >= NONE - 1)
			return llm_diag_set(d, LLM_ERR_IO, file, 0, "added token %zu is bad", i);
		uint32_t id = (uint32_t)json_integer_value(idv);
		if (id < b->n_ids && b->len[id])
			b->len[id] = 0; /* its bytes are the content, set by add_special */
		if ((e = add_special(b, content, strlen(content), id,
				     json_is_true(json_object_get(item, "special")), d)))
			return e;
	}
	if (b->nsp && !(skip = calloc(b->n_ids, 1)))
		return nomem(d);
	for (size_t k = 0; k < b->nsp; k++)
		skip[b->sp[k].id] = true;
	e = build_index(b, skip, d);
	free(skip);
	if (e)
		return e;

	size_t nm = json_array_size(merges);
	b->merge_mask = table_size(nm) - 1;
	if (!(b->merges = malloc(((size_t)b->merge_mask + 1) * sizeof *b->merges)))
		return nomem(d);
	for (size_t k = 0; k <= b->merge_mask; k++)
		b->merges[k].id = NONE;
	json_array_foreach(merges, i, item)
	{
		char pair[1024];
		const char *l = NULL, *r = NULL;
		if (json_is_string(item)) {
			const char *s = json_string_value(item);
			const char *sp = strchr(s, ' ');
			size_t n = strlen(s);
			if (sp && n < sizeof pair) {
				memcpy(pair, s, n + 1);
				pair[sp - s] = '\0';
				l = pair;
				r = pair + (sp - s) + 1;
			}
		} else if (json_array_size(item) == 2) {
			l = json_string_value(json_array_get(item, 0));
			r = json_string_value(json_array_get(item, 1));
		}
		if (!l || !r)
			return llm_diag_set(d, LLM_ERR_IO, file, 0,
					    "merge %zu is neither \"a b\" nor [\"a\", \"b\"]", i);
		if ((e = hf_add_merge(b, l, r, (uint32_t)i, file, d)))
			return e;
	}
	refresh_active(b);
	return pattern ? set_pattern(b, pattern, d) : LLM_OK;
}

enum llm_err llm_bpe_from_hf_json(struct llm_bpe **out, const char *json, size_t len,
				  const char *name, struct llm_diag *d)
{
	*out = NULL;
	json_error_t je;
	json_t *root = json_loadb(json, len, 0, &je);
	if (!root)
		return llm_diag_set(d, LLM_ERR_IO, name, je.line > 0 ? je.line : 0, "%s", je.text);
	struct llm_bpe *b = bpe_new();
	enum llm_err e = b ? hf_load(b, root, name, d) : nomem(d);
	json_decref(root);
	if (e) {
		llm_bpe_free(b);
		return e;
	}
	*out = b;
	return LLM_OK;
}

enum llm_err llm_bpe_open_file(struct llm_bpe **out, const char *path, struct llm_diag *d)
{
	*out = NULL;
	char *text;
	size_t n;
	enum llm_err e = read_file(path, &text, &n, d);
	if (e)
		return e;
	size_t i = 0;
	while (i < n && (text[i] == ' ' || text[i] == '\n' || text[i] == '\t' || text[i] == '\r'))
		i++;
	if (i < n && text[i] == '{') {
		e = llm_bpe_from_hf_json(out, text, n, path, d);
		free(text);
		return e;
	}
	free(text);
	size_t pl = strlen(path);
	const char *ext = ".tiktoken";
	size_t el = strlen(ext);
	char *meta = NULL;
	if (pl > el && !strcmp(path + pl - el, ext) && (meta = malloc(pl - el + 11)))
		snprintf(meta, pl - el + 11, "%.*s.meta.json", (int)(pl - el), path);
	if (!meta)
		return llm_diag_set(d, LLM_ERR_USAGE, path, 0,
				    "neither a tokenizer.json nor a NAME.tiktoken file");
	e = open_tiktoken(out, path, meta, false, d);
	free(meta);
	return e;
}

void llm_bpe_free(struct llm_bpe *b)
{
	if (!b)
		return;
	for (size_t i = 0; i < b->nsp; i++)
		free(b->sp[i].text);
	free(b->sp);
	free(b->blob);
	free(b->off);
	free(b->len);
	free(b->slots);
	free(b->merges);
	if (b->md)
		pcre2_match_data_free(b->md);
	if (b->re)
		pcre2_code_free(b->re);
	free(b->nxt);
	free(b->prv);
	free(b->sid);
	free(b->heap);
	free(b->cache);
	free(b);
}

uint32_t llm_bpe_vocab_size(const struct llm_bpe *b)
{
	return b->n_ids;
}

bool llm_bpe_special_id(const struct llm_bpe *b, const char *text, uint32_t *id)
{
	for (size_t i = 0; i < b->nsp; i++)
		if (!strcmp(b->sp[i].text, text)) {
			*id = b->sp[i].id;
			return true;
		}
	return false;
}

enum llm_err llm_bpe_allow_special(struct llm_bpe *b, const char *text, struct llm_diag *d)
{
	bool all = !strcmp(text, "all"), found = false;
	for (size_t i = 0; i < b->nsp; i++)
		if (all || !strcmp(b->sp[i].text, text)) {
			b->sp[i].allowed = true;
			found = true;
		}
	refresh_active(b);
	if (!found && !all)
		return llm_diag_set(d, LLM_ERR_NOT_FOUND, NULL, 0, "no special token '%s'", text);
	return LLM_OK;
}

/* --- encoding ---------------------------------------------------------------------------- */

void llm_bpe_ids_free(struct llm_bpe_ids *ids)
{
	free(ids->v);
	ids->v = NULL;
	ids->n = ids->cap = 0;
}

static bool ids_reserve(struct llm_bpe_ids *ids, size_t extra)
{
	if (ids->n + extra <= ids->cap)
		return true;
	size_t cap = ids->cap ? ids->cap : 256;
	while (cap < ids->n + extra)
		cap *= 2;
	uint32_t *v = realloc(ids->v, cap * sizeof *v);
	if (!v)
		return false;
	ids->v = v;
	ids->cap = cap;
	return true;
}

static inline bool ids_push(struct llm_bpe_ids *ids, uint32_t id)
{
	if (ids->n == ids->cap && !ids_reserve(ids, 1))
		return false;
	ids->v[ids->n++] = id;
	return true;
}

/* The rank of merging [a, m) (id ia) with [m, e) (id ib), and the id it makes.  tiktoken: the
 * rank of the joined bytes.  HF: the rank of the pair in the merges list. */
static inline uint32_t pair_rank(const struct llm_bpe *b, const unsigned char *s, uint32_t a,
				 uint32_t e, uint32_t ia, uint32_t ib, uint32_t *made)
{
	if (b->hf) {
		const struct merge *m = merge_find(b, ia, ib);
		if (!m)
			return NONE;
		*made = m->id;
		return m->rank;
	}
	uint32_t id = vocab_find(b, s + a, e - a);
	*made = id;
	return id;
}

/* A short piece: symbols in flat arrays, the lowest-ranked pair merged until none is left. */
static bool merge_short(const struct llm_bpe *b, const unsigned char *s, uint32_t n,
			struct llm_bpe_ids *out)
{
	uint32_t pos[SHORT_PIECE + 1], id[SHORT_PIECE], rank[SHORT_PIECE], made[SHORT_PIECE];
	for (uint32_t i = 0; i < n; i++) {
		pos[i] = i;
		id[i] = b->byte_id[s[i]];
	}
	pos[n] = n;
	uint32_t m = n;
	for (uint32_t i = 0; i + 1 < m; i++)
		rank[i] = pair_rank(b, s, pos[i], pos[i + 2], id[i], id[i + 1], &made[i]);
	while (m > 1) {
		uint32_t best = NONE, at = 0;
		for (uint32_t i = 0; i + 1 < m; i++)
			if (rank[i] < best) {
				best = rank[i];
				at = i;
			}
		if (best == NONE)
			break;
		id[at] = made[at];
		size_t tail = m - at - 2;
		memmove(pos + at + 1, pos + at + 2, (tail + 1) * sizeof *pos);
		memmove(id + at + 1, id + at + 2, tail * sizeof *id);
		memmove(rank + at + 1, rank + at + 2, tail * sizeof *rank);
		memmove(made + at + 1, made + at + 2, tail * sizeof *made);
		m--;
		if (at + 1 < m)
			rank[at] =
			    pair_rank(b, s, pos[at], pos[at + 2], id[at], id[at + 1], &made[at]);
		else
			rank[at] = NONE;
		if (at > 0)
			rank[at - 1] = pair_rank(b, s, pos[at - 1], pos[at + 1], id[at - 1], id[at],
						 &made[at - 1]);
	}
	if (!ids_reserve(out, m))
		return false;
	for (uint32_t i = 0; i < m; i++)
		out->v[out->n++] = id[i];
	return true;
}

static void heap_up(uint64_t *h, size_t i)
{
	uint64_t v = h[i];
	while (i > 0 && h[(i - 1) / 2] > v) {
		h[i] = h[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	h[i] = v;
}

static void heap_down(uint64_t *h, size_t n, size_t i)
{
	uint64_t v = h[i];
	for (;;) {
		size_t c = 2 * i + 1;
		if (c >= n)
			break;
		if (c + 1 < n && h[c + 1] < h[c])
			c++;
		if (h[c] >= v)
			break;
		h[i] = h[c];
		i = c;
	}
	h[i] = v;
}

#define DEAD (UINT32_MAX - 1) /* prv of a merged-away symbol; NONE is prv of the first */

/* A long piece: symbols in a linked list over byte positions, candidate pairs in a min-heap
 * keyed by rank then position (leftmost wins ties, as in tiktoken and HF).  Entries go stale
 * when a neighbour merges; a popped entry is used only if the pair at its position still has
 * its rank.  Every merge pushes at most two entries, so the work is O(n log n). */
static bool merge_long(struct llm_bpe *b, const unsigned char *s, uint32_t n,
		       struct llm_bpe_ids *out)
{
	if (n > b->scratch_cap) {
		free(b->nxt);
		free(b->prv);
		free(b->sid);
		b->nxt = malloc(n * sizeof *b->nxt);
		b->prv = malloc(n * sizeof *b->prv);
		b->sid = malloc(n * sizeof *b->sid);
		b->scratch_cap = b->nxt && b->prv && b->sid ? n : 0;
		if (!b->scratch_cap)
			return false;
	}
	if (n > b->heap_cap) {
		free(b->heap);
		b->heap_cap = n + n / 2;
		if (!(b->heap = malloc(b->heap_cap * sizeof *b->heap))) {
			b->heap_cap = 0;
			return false;
		}
	}
	uint32_t *nxt = b->nxt, *prv = b->prv, *sid = b->sid;
	uint64_t *h = b->heap;
	size_t hn = 0;
	for (uint32_t i = 0; i < n; i++) {
		nxt[i] = i + 1;
		prv[i] = i ? i - 1 : NONE;
		sid[i] = b->byte_id[s[i]];
	}
	uint32_t made = NONE;
	for (uint32_t i = 0; i + 1 < n; i++) {
		uint32_t e = i + 2 < n ? i + 2 : n;
		uint32_t r = pair_rank(b, s, i, e, sid[i], sid[i + 1], &made);
		if (r != NONE)
			h[hn++] = (uint64_t)r << 32 | i;
	}
	for (size_t i = hn / 2; i-- > 0;)
		heap_down(h, hn, i);
	while (hn) {
		uint64_t top = h[0];
		h[0] = h[--hn];
		heap_down(h, hn, 0);
		uint32_t r = (uint32_t)(top >> 32), i = (uint32_t)top;
		if (prv[i] == DEAD || nxt[i] >= n)
			continue;
		uint32_t j = nxt[i], k = nxt[j];
		if (pair_rank(b, s, i, k, sid[i], sid[j], &made) != r)
			continue;
		sid[i] = made;
		nxt[i] = k;
		if (k < n)
			prv[k] = i;
		prv[j] = DEAD;
		/* At most two new pairs: room is kept by growing before pushing. */
		if (hn + 2 > b->heap_cap) {
			size_t cap = b->heap_cap * 2;
			uint64_t *g = realloc(b->heap, cap * sizeof *g);
			if (!g)
				return false;
			b->heap = h = g;
			b->heap_cap = cap;
		}
		if (k < n) {
			uint32_t r2 = pair_rank(b, s, i, nxt[k], sid[i], sid[k], &made);
			if (r2 != NONE) {
				h[hn] = (uint64_t)r2 << 32 | i;
				heap_up(h, hn++);
			}
		}
		if (i > 0) {
			uint32_t p = prv[i];
			uint32_t r2 = pair_rank(b, s, p, k, sid[p], sid[i], &made);
			if (r2 != NONE) {
				h[hn] = (uint64_t)r2 << 32 | p;
				heap_up(h, hn++);
			}
		}
	}
	for (uint32_t i = 0; i < n; i = nxt[i])
		if (!ids_push(out, sid[i]))
			return false;
	return true;
}

static enum llm_err encode_piece(struct llm_bpe *b, const unsigned char *s, size_t n,
				 struct llm_bpe_ids *out, struct llm_diag *d)
{
	if (n == 1) {
		uint32_t id = b->byte_id[s[0]];
		if (id != NONE)
			return ids_push(out, id) ? LLM_OK : nomem(d);
	}
	uint64_t h = 0;
	if (b->whole_first || n <= CACHE_BYTES)
		h = hash_bytes(s, n);
	struct cache_entry *ce = NULL;
	if (n <= CACHE_BYTES) {
		if (!b->cache) {
			b->cache = aligned_alloc(64, CACHE_SLOTS * sizeof *b->cache);
			if (!b->cache)
				return nomem(d);
			memset(b->cache, 0, CACHE_SLOTS * sizeof *b->cache);
		}
		ce = &b->cache[(h >> 40) & (CACHE_SLOTS - 1)];
		if (ce->len == n && ce->h == h && !memcmp(ce->bytes, s, n)) {
			if (!ids_reserve(out, ce->nids))
				return nomem(d);
			memcpy(out->v + out->n, ce->ids, ce->nids * sizeof *ce->ids);
			out->n += ce->nids;
			return LLM_OK;
		}
	}
	if (b->whole_first) {
		uint32_t id = vocab_find_h(b, s, n, h);
		if (id != NONE) {
			if (ce) {
				ce->h = h;
				ce->len = (uint8_t)n;
				ce->nids = 1;
				memcpy(ce->bytes, s, n);
				ce->ids[0] = id;
			}
			return ids_push(out, id) ? LLM_OK : nomem(d);
		}
	}
	if (n >= UINT32_MAX - 1)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "a piece of 4 GB or more");
	if (b->hf)
		for (size_t i = 0; i < n; i++)
			if (b->byte_id[s[i]] == NONE)
				return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0,
						    "byte 0x%02x has no token in the vocabulary",
						    s[i]);
	size_t before = out->n;
	bool ok = n <= SHORT_PIECE ? merge_short(b, s, (uint32_t)n, out)
				   : merge_long(b, s, (uint32_t)n, out);
	if (!ok)
		return nomem(d);
	if (ce && out->n - before <= CACHE_IDS) {
		ce->h = h;
		ce->len = (uint8_t)n;
		ce->nids = (uint8_t)(out->n - before);
		memcpy(ce->bytes, s, n);
		memcpy(ce->ids, out->v + before, ce->nids * sizeof *ce->ids);
	}
	return LLM_OK;
}

/* --- pre-splitting ASCII text without the regex ---------------------------------------------
 *
 * Prose is mostly ASCII, and there the GPT-2 and cl100k_base patterns reduce to a few byte
 * classes, so the match at i is found by hand: the regex's alternatives in order, greedy, with
 * its backtracking worked out (\s*[\r\n]+ ends after the last line break of the white space
 * run; \s+(?!\S) gives back the run's last character when something follows).  Whenever a byte
 * the decision depends on is not ASCII (a letter, digit or space it might be), the answer is 0
 * and the regex decides.  tests/unit/test-bpe.c checks both against each other. */

static inline bool is_alpha(unsigned char c)
{
	return (unsigned char)((c | 0x20) - 'a') < 26;
}

static inline bool is_digit(unsigned char c)
{
	return (unsigned char)(c - '0') < 10;
}

static inline bool is_space(unsigned char c)
{
	return c == ' ' || (unsigned char)(c - '\t') < 5;
}

/* Neither letter, digit nor white space: what [^\s\p{L}\p{N}] takes of ASCII. */
static inline bool is_other(unsigned char c)
{
	return c < 0x80 && !is_alpha(c) && !is_digit(c) && !is_space(c);
}

static inline bool is_break(unsigned char c)
{
	return c == '\r' || c == '\n';
}

/* The end of the run of bytes in class at s[j..len), or 0 when a non-ASCII byte stops it. */
#define RUN_END(j, cls)                                                                            \
	do {                                                                                       \
		while ((j) < len && cls(s[j]))                                                     \
			(j)++;                                                                     \
		if ((j) < len && s[j] >= 0x80)                                                     \
			return 0;                                                                  \
	} while (0)

/* A contraction at s[i] == '\'': its end, or 0.  cl100k_base also takes upper case. */
static inline size_t contraction(const unsigned char *s, size_t len, size_t i, bool any_case)
{
	if (i + 1 >= len)
		return 0;
	unsigned char fold = any_case ? 0x20 : 0;
	unsigned char a = s[i + 1] | fold, z = i + 2 < len ? s[i + 2] | fold : 0;
	if (a == 's' || a == 't' || a == 'm' || a == 'd')
		return i + 2;
	if (((a == 'r' || a == 'v') && z == 'e') || (a == 'l' && z == 'l'))
		return i + 3;
	return 0;
}

/* The white space run at i: \s+(?!\S) then \s+, after \s*[\r\n]+ when line_breaks. */
static inline size_t space_run(const unsigned char *s, size_t len, size_t i, bool line_breaks)
{
	size_t j = i, after_break = 0;
	while (j < len && is_space(s[j]))
		if (is_break(s[j++]))
			after_break = j;
	if (j < len && s[j] >= 0x80)
		return 0;
	if (line_breaks && after_break)
		return after_break;
	return j < len && j - i >= 2 ? j - 1 : j;
}

/* 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+ */
static size_t split_gpt2(const unsigned char *s, size_t len, size_t i)
{
	size_t j = i + (s[i] == ' '), k;
	if (s[i] == '\'' && (k = contraction(s, len, i, false)))
		return k;
	if (j < len) {
		if (s[j] >= 0x80)
			return 0;
		if (is_alpha(s[j]))
			RUN_END(j, is_alpha);
		else if (is_digit(s[j]))
			RUN_END(j, is_digit);
		else if (is_other(s[j]))
			RUN_END(j, is_other);
		if (j > i + (s[i] == ' '))
			return j;
	}
	return space_run(s, len, i, false);
}

/* cl100k_base: ('s|'S|...|'d|'D)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
 * ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+ */
static size_t split_cl100k(const unsigned char *s, size_t len, size_t i)
{
	unsigned char c = s[i];
	size_t j = i, k;
	if (c == '\'' && (k = contraction(s, len, i, true)))
		return k;
	if (!is_alpha(c) && !is_digit(c) && !is_break(c) && i + 1 < len) {
		if (s[i + 1] >= 0x80)
			return 0;
		if (is_alpha(s[i + 1]))
			j = i + 1;
	}
	if (is_alpha(s[j])) {
		RUN_END(j, is_alpha);
		return j;
	}
	if (is_digit(c)) {
		for (j = i + 1; j < len && j < i + 3 && is_digit(s[j]);)
			j++;
		return j < i + 3 && j < len && s[j] >= 0x80 ? 0 : j;
	}
	j = i + (c == ' ');
	if (j < len && s[j] >= 0x80)
		return 0;
	if (j < len && is_other(s[j])) {
		RUN_END(j, is_other);
		while (j < len && is_break(s[j]))
			j++;
		return j;
	}
	return space_run(s, len, i, true);
}
#undef RUN_END

/* The end of the match at i, which the pattern always has for an ASCII s[i]; 0: ask the regex. */
static inline size_t fast_split_at(const struct llm_bpe *b, const unsigned char *s, size_t len,
				   size_t i)
{
	if (s[i] >= 0x80)
		return 0;
	return b->fast == FAST_CL100K ? split_cl100k(s, len, i) : split_gpt2(s, len, i);
}

void llm_bpe_use_fast_split(struct llm_bpe *b, bool on)
{
	b->fast_on = on;
}

/* Walk the pre-split pieces of text[0..len): matches, and any text between them, in order. */
static enum llm_err split_pieces(struct llm_bpe *b, const char *text, size_t len,
				 enum llm_err (*fn)(struct llm_bpe *, const unsigned char *, size_t,
						    void *, struct llm_diag *),
				 void *ctx, struct llm_diag *d)
{
	const unsigned char *s = (const unsigned char *)text;
	if (!b->re)
		return len ? fn(b, s, len, ctx, d) : LLM_OK;
	size_t at = 0, from = 0;
	bool fast = b->fast != FAST_NONE && b->fast_on;
	while (from < len) {
		size_t end = fast ? fast_split_at(b, s, len, from) : 0;
		if (end) {
			enum llm_err e;
			if (from > at && (e = fn(b, s + at, from - at, ctx, d)))
				return e;
			if ((e = fn(b, s + from, end - from, ctx, d)))
				return e;
			at = from = end;
			continue;
		}
		int rc = b->jit
			     ? pcre2_jit_match(b->re, s, len, from, PCRE2_NO_UTF_CHECK, b->md, NULL)
			     : pcre2_match(b->re, s, len, from, PCRE2_NO_UTF_CHECK, b->md, NULL);
		if (rc == PCRE2_ERROR_NOMATCH)
			break;
		if (rc < 0) {
			PCRE2_UCHAR msg[160];
			pcre2_get_error_message(rc, msg, sizeof msg);
			return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0, "pre-splitting: %s",
					    (char *)msg);
		}
		PCRE2_SIZE *ov = pcre2_get_ovector_pointer(b->md);
		size_t ms = ov[0], me = ov[1];
		if (me == ms) {
			/* An empty match: step over one character and let it join the gap. */
			from = ms + 1;
			while (from < len && (s[from] & 0xc0) == 0x80)
				from++;
			continue;
		}
		enum llm_err e;
		if (ms > at && (e = fn(b, s + at, ms - at, ctx, d)))
			return e;
		if ((e = fn(b, s + ms, me - ms, ctx, d)))
			return e;
		at = from = me;
	}
	return at < len ? fn(b, s + at, len - at, ctx, d) : LLM_OK;
}

static enum llm_err piece_encode(struct llm_bpe *b, const unsigned char *s, size_t n, void *ctx,
				 struct llm_diag *d)
{
	return encode_piece(b, s, n, ctx, d);
}

struct split_ctx {
	const unsigned char *base;
	struct llm_bpe_ids *starts;
};

static enum llm_err piece_start(struct llm_bpe *b, const unsigned char *s, size_t n, void *ctx,
				struct llm_diag *d)
{
	struct split_ctx *c = ctx;
	return ids_push(c->starts, (uint32_t)(s - c->base)) ? LLM_OK : nomem(d);
}

static enum llm_err encode_segment(struct llm_bpe *b, const char *text, size_t len,
				   struct llm_bpe_ids *out, struct llm_diag *d)
{
	if (!len)
		return LLM_OK;
	if (b->add_prefix_space && text[0] != ' ') {
		/* HF ByteLevel: the segment as if it began with a space. */
		char *t = malloc(len + 1);
		if (!t)
			return nomem(d);
		t[0] = ' ';
		memcpy(t + 1, text, len);
		enum llm_err e = split_pieces(b, t, len + 1, piece_encode, out, d);
		free(t);
		return e;
	}
	return split_pieces(b, text, len, piece_encode, out, d);
}

enum llm_err llm_bpe_encode(struct llm_bpe *b, const char *text, size_t len,
			    struct llm_bpe_ids *out, struct llm_diag *d)
{
	if (llm_utf8_valid_prefix(text, len) != len)
		return llm_diag_set(d, LLM_ERR_UTF8, NULL, 0, "the text is not valid UTF-8");
	if (!b->nactive)
		return encode_segment(b, text, len, out, d);
	const unsigned char *s = (const unsigned char *)text;
	size_t seg = 0;
	for (size_t i = 0; i < len; i++) {
		if (!b->first[s[i]])
			continue;
		for (size_t k = 0; k < b->nsp; k++) {
			const struct special *sp = &b->sp[k];
			if (!sp->allowed || sp->len > len - i || memcmp(sp->text, s + i, sp->len))
				continue;
			enum llm_err e = encode_segment(b, text + seg, i - seg, out, d);
			if (e)
				return e;
			if (!ids_push(out, sp->id))
				return nomem(d);
			seg = i + sp->len;
			i = seg - 1;
			break;
		}
	}
	return encode_segment(b, text + seg, len - seg, out, d);
}

enum llm_err llm_bpe_split(struct llm_bpe *b, const char *text, size_t len,
			   struct llm_bpe_ids *starts, struct llm_diag *d)
{
	if (llm_utf8_valid_prefix(text, len) != len)
		return llm_diag_set(d, LLM_ERR_UTF8, NULL, 0, "the text is not valid UTF-8");
	if (len >= UINT32_MAX)
		return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0, "a text of 4 GB or more");
	struct split_ctx c = {(const unsigned char *)text, starts};
	enum llm_err e = split_pieces(b, text, len, piece_start, &c, d);
	if (!e && !ids_push(starts, (uint32_t)len))
		e = nomem(d);
	return e;
}

static int merge_rank_cmp(const void *x, const void *y)
{
	const struct merge *a = x, *c = y;
	return a->rank < c->rank ? -1 : a->rank > c->rank;
}

enum llm_err llm_bpe_digest(const struct llm_bpe *b, char hex[65], struct llm_diag *d)
{
	struct llm_sha256 h;
	if (llm_sha256_init(&h))
		return nomem(d);
	enum llm_err e = LLM_OK;
#define FEED(p, n)                                                                                 \
	do {                                                                                       \
		if (!e)                                                                            \
			e = llm_sha256_update(&h, (p), (n));                                       \
	} while (0)
	unsigned char flags[4] = {b->hf, b->whole_first, b->add_prefix_space, b->re != NULL};
	FEED(flags, sizeof flags);
	FEED(b->pattern_sha, sizeof b->pattern_sha);
	FEED(&b->n_ids, sizeof b->n_ids);
	for (uint32_t id = 0; id < b->n_ids; id++) {
		FEED(&b->len[id], sizeof b->len[id]);
		FEED(b->blob + b->off[id], b->len[id]);
	}
	for (size_t i = 0; i < b->nsp; i++) {
		const struct special *sp = &b->sp[i];
		unsigned char f[2] = {sp->special, sp->allowed};
		FEED(&sp->id, sizeof sp->id);
		FEED(f, sizeof f);
		FEED(sp->text, sp->len + 1);
	}
	/* The merge table's order is its hash's; the digest takes the merges by rank. */
	size_t nm = 0;
	struct merge *ms = NULL;
	if (b->merges) {
		if (!(ms = malloc(((size_t)b->merge_mask + 1) * sizeof *ms)))
			e = LLM_ERR_NOMEM;
		for (uint32_t i = 0; ms && i <= b->merge_mask; i++)
			if (b->merges[i].id != NONE)
				ms[nm++] = b->merges[i];
		if (ms)
			qsort(ms, nm, sizeof *ms, merge_rank_cmp);
	}
	for (size_t i = 0; i < nm; i++) {
		FEED(&ms[i].key, sizeof ms[i].key);
		FEED(&ms[i].rank, sizeof ms[i].rank);
		FEED(&ms[i].id, sizeof ms[i].id);
	}
#undef FEED
	free(ms);
	unsigned char sum[LLM_SHA256_LEN];
	enum llm_err f = llm_sha256_final(&h, sum);
	if (e || f)
		return nomem(d);
	llm_hex(sum, sizeof sum, hex);
	return LLM_OK;
}

enum llm_err llm_bpe_decode(const struct llm_bpe *b, const uint32_t *ids, size_t n,
			    struct llm_buf *out, struct llm_diag *d)
{
	for (size_t i = 0; i < n; i++) {
		if (ids[i] >= b->n_ids || !b->len[ids[i]])
			return llm_diag_set(d, LLM_ERR_RANGE, NULL, 0,
					    "token id %" PRIu32 " is not in the vocabulary",
					    ids[i]);
		if (llm_buf_append(out, b->blob + b->off[ids[i]], b->len[ids[i]]))
			return llm_diag_set(d, LLM_ERR_TOO_BIG, NULL, 0,
					    "the decoded text is too long");
	}
	return LLM_OK;
}
