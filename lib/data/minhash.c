#include "config.h"

#include "data/minhash.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "core/rand.h"

/* Permutations are computed four (or, with AVX2, 4 per register) at a time over 64-bit lanes;
 * the arrays are padded to a multiple of LANES so the loop has no tail. */
#define LANES 8
typedef uint64_t v4u64 __attribute__((vector_size(32), aligned(32)));

/* Word hashes do not depend on the permutation seed, so a seed change redraws permutations only. */
#define WORD_SEED 0x6c6c6d6f70732d77ULL

static inline uint64_t mix64(uint64_t z)
{
	z = (z ^ (z >> 33)) * 0xff51afd7ed558ccdULL;
	z = (z ^ (z >> 33)) * 0xc4ceb9fe1a85ec53ULL;
	return z ^ (z >> 33);
}

uint64_t llm_minhash_hash64(const void *p, size_t n, uint64_t seed)
{
	/* Little-endian 8-byte words, each mixed in: fixed whatever the host's byte order. */
	const unsigned char *s = p;
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
	while (n >= 8) {
		uint64_t v = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
		memcpy(&v, s, 8);
#else
		for (int i = 7; i >= 0; i--)
			v = v << 8 | s[i];
#endif
		h = (h ^ mix64(v)) * 0x9E3779B97F4A7C15ULL;
		h = (h << 27) | (h >> 37);
		s += 8;
		n -= 8;
	}
	uint64_t tail = 0;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
	memcpy(&tail, s, n);
#else
	for (size_t i = n; i > 0; i--)
		tail = tail << 8 | s[i - 1];
#endif
	h ^= mix64(tail ^ ((uint64_t)n << 56));
	return mix64(h);
}

/* ----- normalization ------------------------------------------------------------------- */

enum cls { C_KEEP, C_UPPER, C_DIGIT, C_SPACE, C_PUNCT, C_MULTI };

static unsigned char ascii_class[256];

static void init_classes(void)
{
	for (int c = 0; c < 256; c++) {
		enum cls k = C_KEEP;
		if (c >= 0x80)
			k = C_MULTI;
		else if (c >= 'A' && c <= 'Z')
			k = C_UPPER;
		else if (c >= '0' && c <= '9')
			k = C_DIGIT;
		else if (c <= 0x20 || c == 0x7f)
			k = C_SPACE;
		else if (strchr("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~", c))
			k = C_PUNCT;
		ascii_class[c] = (unsigned char)k;
	}
}

/* Output state: a space is owed before the next kept character (never at the start). */
struct norm_out {
	char *p;
	bool space;
	bool digits; /* the last thing kept was the "0" of a digit run */
};

static inline void put_char(struct norm_out *o, const char *base, char c)
{
	if (o->space && o->p != base)
		*o->p++ = ' ';
	o->space = false;
	o->digits = false;
	*o->p++ = c;
}

enum llm_err llm_minhash_normalize(const char *s, size_t n, struct llm_buf *out)
{
	static bool ready;
	if (!ready) {
		init_classes();
		ready = true;
	}
	/* Case folding and decomposition at most triple a character's bytes (U+0390 becomes
	 * three code points of two bytes each from two bytes); 4x is a safe bound. */
	if (n > (SIZE_MAX / 2) / 4)
		return LLM_ERR_TOO_BIG;
	enum llm_err e = llm_buf_reserve(out, 4 * n + 8);
	if (e)
		return e;
	char *base = out->data + out->len;
	struct norm_out o = {base, false, false};
	const unsigned char *u = (const unsigned char *)s;
	size_t i = 0;
	while (i < n) {
		unsigned char c = u[i];
		switch ((enum cls)ascii_class[c]) {
		case C_KEEP:
			put_char(&o, base, (char)c);
			i++;
			continue;
		case C_UPPER:
			put_char(&o, base, (char)(c + 32));
			i++;
			continue;
		case C_DIGIT:
			if (!o.digits)
				put_char(&o, base, '0');
			o.digits = true;
			i++;
			continue;
		case C_SPACE:
			o.space = true;
			o.digits = false;
			i++;
			continue;
		case C_PUNCT:
			i++;
			continue;
		case C_MULTI:
			break;
		}
		utf8proc_int32_t cp;
		utf8proc_ssize_t len = utf8proc_iterate(u + i, (utf8proc_ssize_t)(n - i), &cp);
		if (len <= 0) {
			/* Not UTF-8 (callers validate first): keep the byte as it is. */
			put_char(&o, base, (char)c);
			i++;
			continue;
		}
		i += (size_t)len;
		utf8proc_category_t cat = utf8proc_category(cp);
		switch (cat) {
		case UTF8PROC_CATEGORY_PC: case UTF8PROC_CATEGORY_PD: case UTF8PROC_CATEGORY_PS:
		case UTF8PROC_CATEGORY_PE: case UTF8PROC_CATEGORY_PI: case UTF8PROC_CATEGORY_PF:
		case UTF8PROC_CATEGORY_PO: case UTF8PROC_CATEGORY_CF:
			continue;
		case UTF8PROC_CATEGORY_ZS: case UTF8PROC_CATEGORY_ZL: case UTF8PROC_CATEGORY_ZP:
		case UTF8PROC_CATEGORY_CC:
			o.space = true;
			o.digits = false;
			continue;
		case UTF8PROC_CATEGORY_ND:
			if (!o.digits)
				put_char(&o, base, '0');
			o.digits = true;
			continue;
		default:
			break;
		}
		utf8proc_int32_t dec[8];
		int last = 0;
		utf8proc_ssize_t nd = utf8proc_decompose_char(
			cp, dec, 8, UTF8PROC_DECOMPOSE | UTF8PROC_CASEFOLD | UTF8PROC_STRIPMARK, &last);
		if (nd < 0 || nd > 8) {
			dec[0] = cp;
			nd = 1;
		}
		for (utf8proc_ssize_t k = 0; k < nd; k++) {
			utf8proc_uint8_t enc[4];
			utf8proc_ssize_t el = utf8proc_encode_char(dec[k], enc);
			for (utf8proc_ssize_t j = 0; j < el; j++)
				put_char(&o, base, (char)enc[j]);
		}
	}
	out->len = (size_t)(o.p - out->data);
	out->data[out->len] = '\0';
	return LLM_OK;
}

/* ----- signatures ------------------------------------------------------------------------ */

enum llm_err llm_minhash_init(struct llm_minhash *m, const struct llm_minhash_params *p,
			      struct llm_diag *diag)
{
	memset(m, 0, sizeof *m);
	if (p->num_perm < 1 || p->num_perm > LLM_MINHASH_MAX_PERM)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "the number of permutations must be 1 to %d", LLM_MINHASH_MAX_PERM);
	if (p->ngram < 1)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0, "the n-gram size must be at least 1");
	if (p->bands < 1 || p->rows < 1 || (uint64_t)p->bands * p->rows > p->num_perm)
		return llm_diag_set(diag, LLM_ERR_RANGE, NULL, 0,
				    "bands (%u) times rows (%u) must be at most the permutations (%u)",
				    p->bands, p->rows, p->num_perm);
	m->p = *p;
	m->padded = (p->num_perm + LANES - 1) / LANES * LANES;
	size_t bytes = m->padded * sizeof(uint64_t);
	m->a = aligned_alloc(32, bytes);
	m->b = aligned_alloc(32, bytes);
	m->acc = aligned_alloc(32, bytes);
	m->sig = calloc(m->padded, sizeof *m->sig);
	llm_buf_init(&m->norm, 0);
	if (!m->a || !m->b || !m->acc || !m->sig) {
		llm_minhash_free(m);
		return llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	struct llm_rand r;
	llm_rand_seed(&r, p->seed);
	for (unsigned i = 0; i < m->padded; i++) {
		m->a[i] = llm_rand_next(&r) | 1;
		m->b[i] = llm_rand_next(&r);
	}
	return LLM_OK;
}

void llm_minhash_free(struct llm_minhash *m)
{
	free(m->a);
	free(m->b);
	free(m->acc);
	free(m->sig);
	free(m->words);
	llm_buf_free(&m->norm);
	memset(m, 0, sizeof *m);
}

/* The hot loop: for a block of 8 permutations, keep the minimums in registers while walking
 * every shingle.  Because x < 2^32, with a = ah 2^32 + al and b = bh 2^32 + bl,
 *     ((a x + b) >> 32) mod 2^32 = (ah x + bh + ((al x + bl) >> 32)) mod 2^32,
 * and al x + bl cannot overflow 64 bits: two 32x32->64 multiplies per value, which AVX2 does
 * four at a time (vpmuludq).  The portable loop computes the same values. */
static void permute_min_generic(const uint64_t *a, const uint64_t *b, uint64_t *acc,
				unsigned padded, const uint64_t *xs, size_t nx)
{
	for (unsigned i = 0; i < padded; i += LANES) {
		v4u64 a0 = *(const v4u64 *)(a + i), a1 = *(const v4u64 *)(a + i + 4);
		v4u64 b0 = *(const v4u64 *)(b + i), b1 = *(const v4u64 *)(b + i + 4);
		v4u64 m0 = {~0ULL, ~0ULL, ~0ULL, ~0ULL}, m1 = m0;
		for (size_t k = 0; k < nx; k++) {
			uint64_t x = xs[k];
			v4u64 v0 = ((a0 * x + b0) >> 32) & 0xffffffffULL;
			v4u64 v1 = ((a1 * x + b1) >> 32) & 0xffffffffULL;
			v4u64 l0 = (v4u64)(v0 < m0), l1 = (v4u64)(v1 < m1);
			m0 = (v0 & l0) | (m0 & ~l0);
			m1 = (v1 & l1) | (m1 & ~l1);
		}
		*(v4u64 *)(acc + i) = m0;
		*(v4u64 *)(acc + i + 4) = m1;
	}
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX2_PATH 1

__attribute__((target("avx2"))) static void permute_min_avx2(const uint64_t *a,
							     const uint64_t *b, uint64_t *acc,
							     unsigned padded, const uint64_t *xs,
							     size_t nx)
{
	const __m256i lo32 = _mm256_set1_epi64x(0xffffffffLL);
	for (unsigned i = 0; i < padded; i += LANES) {
		__m256i a0 = _mm256_load_si256((const __m256i *)(a + i));
		__m256i a1 = _mm256_load_si256((const __m256i *)(a + i + 4));
		__m256i b0 = _mm256_load_si256((const __m256i *)(b + i));
		__m256i b1 = _mm256_load_si256((const __m256i *)(b + i + 4));
		__m256i ah0 = _mm256_srli_epi64(a0, 32), ah1 = _mm256_srli_epi64(a1, 32);
		__m256i bl0 = _mm256_and_si256(b0, lo32), bl1 = _mm256_and_si256(b1, lo32);
		__m256i bh0 = _mm256_srli_epi64(b0, 32), bh1 = _mm256_srli_epi64(b1, 32);
		__m256i m0 = _mm256_set1_epi64x(-1), m1 = m0;
		for (size_t k = 0; k < nx; k++) {
			__m256i x = _mm256_set1_epi64x((long long)xs[k]);
			__m256i t0 = _mm256_add_epi64(_mm256_mul_epu32(a0, x), bl0);
			__m256i t1 = _mm256_add_epi64(_mm256_mul_epu32(a1, x), bl1);
			__m256i v0 = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(ah0, x), bh0),
						      _mm256_srli_epi64(t0, 32));
			__m256i v1 = _mm256_add_epi64(_mm256_add_epi64(_mm256_mul_epu32(ah1, x), bh1),
						      _mm256_srli_epi64(t1, 32));
			/* Minimum over 32-bit lanes: the low half of each 64-bit lane is the value;
			 * the high halves collect junk that is masked off below. */
			m0 = _mm256_min_epu32(m0, v0);
			m1 = _mm256_min_epu32(m1, v1);
		}
		_mm256_store_si256((__m256i *)(acc + i), _mm256_and_si256(m0, lo32));
		_mm256_store_si256((__m256i *)(acc + i + 4), _mm256_and_si256(m1, lo32));
	}
}
#endif

static void permute_min(const uint64_t *a, const uint64_t *b, uint64_t *acc, unsigned padded,
			const uint64_t *xs, size_t nx)
{
#ifdef HAVE_AVX2_PATH
	static int avx2 = -1;
	if (avx2 < 0) {
		__builtin_cpu_init();
		avx2 = __builtin_cpu_supports("avx2") ? 1 : 0;
		if (getenv("LLMOPS_NO_SIMD"))
			avx2 = 0; /* lets the tests compare the two paths */
	}
	if (avx2) {
		permute_min_avx2(a, b, acc, padded, xs, nx);
		return;
	}
#endif
	permute_min_generic(a, b, acc, padded, xs, nx);
}

static bool is_space(unsigned char c)
{
	return c == ' ' || (c >= '\t' && c <= '\r');
}

enum llm_err llm_minhash_sign(struct llm_minhash *m, const char *s, size_t n, size_t *nshingles)
{
	const char *t = s;
	size_t tn = n;
	if (m->p.normalize) {
		llm_buf_clear(&m->norm);
		enum llm_err e = llm_minhash_normalize(s, n, &m->norm);
		if (e)
			return e;
		t = m->norm.data;
		tn = m->norm.len;
	}
	/* Hash each word once; a shingle's hash combines its words' hashes in order. */
	m->nwords = 0;
	size_t i = 0;
	while (i < tn) {
		while (i < tn && is_space((unsigned char)t[i]))
			i++;
		if (i >= tn)
			break;
		size_t st = i;
		while (i < tn && !is_space((unsigned char)t[i]))
			i++;
		if (m->nwords == m->cap_words) {
			size_t cap = m->cap_words ? 2 * m->cap_words : 1024;
			uint64_t *w = realloc(m->words, cap * sizeof *w);
			if (!w)
				return LLM_ERR_NOMEM;
			m->words = w;
			m->cap_words = cap;
		}
		m->words[m->nwords++] = llm_minhash_hash64(t + st, i - st, WORD_SEED);
	}
	size_t nw = m->nwords, g = m->p.ngram;
	size_t ns = nw == 0 ? 0 : nw < g ? 1 : nw - g + 1;
	size_t span = nw < g ? nw : g;
	/* Shingle hashes overwrite the word hashes in place: shingle k reads words k.. only. */
	for (size_t k = 0; k < ns; k++) {
		/* A polynomial in an odd constant keeps the order of the words; one mix at the end. */
		uint64_t h = span;
		for (size_t j = 0; j < span; j++)
			h = (h + m->words[k + j]) * 0x9E3779B97F4A7C15ULL;
		m->words[k] = mix64(h) >> 32;
	}
	*nshingles = ns;
	if (ns == 0) {
		for (unsigned p = 0; p < m->p.num_perm; p++)
			m->sig[p] = UINT32_MAX;
		return LLM_OK;
	}
	permute_min(m->a, m->b, m->acc, m->padded, m->words, ns);
	for (unsigned p = 0; p < m->p.num_perm; p++)
		m->sig[p] = (uint32_t)m->acc[p];
	return LLM_OK;
}

void llm_minhash_band_key(const struct llm_minhash *m, const uint32_t *sig, unsigned band,
			  unsigned char key[LLM_MINHASH_KEY_LEN])
{
	unsigned r = m->p.rows;
	unsigned char buf[4 * LLM_MINHASH_MAX_PERM];
	const uint32_t *v = sig + (size_t)band * r;
	for (unsigned i = 0; i < r; i++) {
		buf[4 * i] = (unsigned char)(v[i] >> 24);
		buf[4 * i + 1] = (unsigned char)(v[i] >> 16);
		buf[4 * i + 2] = (unsigned char)(v[i] >> 8);
		buf[4 * i + 3] = (unsigned char)v[i];
	}
	uint64_t h1 = llm_minhash_hash64(buf, 4 * (size_t)r, 0x62616e64ULL);
	uint64_t h2 = llm_minhash_hash64(buf, 4 * (size_t)r, 0x6b657932ULL);
	for (int i = 0; i < 8; i++)
		key[i] = (unsigned char)(h1 >> (56 - 8 * i));
	for (int i = 0; i < 4; i++)
		key[8 + i] = (unsigned char)(h2 >> (56 - 8 * i));
}

double llm_minhash_similarity(const uint32_t *x, const uint32_t *y, unsigned n)
{
	unsigned eq = 0;
	for (unsigned i = 0; i < n; i++)
		eq += x[i] == y[i];
	return n ? (double)eq / n : 0.0;
}

/* ----- band and row choice --------------------------------------------------------------- */

double llm_minhash_candidate_probability(double s, unsigned bands, unsigned rows)
{
	return 1.0 - pow(1.0 - pow(s, rows), bands);
}

struct curve {
	unsigned b, r;
	bool negative; /* integrate the miss probability instead of the hit probability */
};

static double curve_at(const struct curve *c, double s)
{
	double p = llm_minhash_candidate_probability(s, c->b, c->r);
	return c->negative ? 1.0 - p : p;
}

/* Adaptive Simpson: tolerance tight enough that the choice matches scipy's quad, whose
 * default absolute tolerance is 1.49e-8. */
static double simpson(const struct curve *c, double a, double b, double fa, double fm,
		      double fb, double whole, double eps, int depth)
{
	double m = (a + b) / 2, lm = (a + m) / 2, rm = (m + b) / 2;
	double flm = curve_at(c, lm), frm = curve_at(c, rm);
	double left = (m - a) / 6 * (fa + 4 * flm + fm);
	double right = (b - m) / 6 * (fm + 4 * frm + fb);
	double delta = left + right - whole;
	if (depth <= 0 || fabs(delta) <= 15 * eps)
		return left + right + delta / 15;
	return simpson(c, a, m, fa, flm, fm, left, eps / 2, depth - 1) +
	       simpson(c, m, b, fm, frm, fb, right, eps / 2, depth - 1);
}

static double integrate(const struct curve *c, double a, double b)
{
	/* Start from 8 pieces so a steep curve cannot hide between the first samples. */
	double total = 0;
	for (int k = 0; k < 8; k++) {
		double x0 = a + (b - a) * k / 8, x1 = a + (b - a) * (k + 1) / 8;
		double f0 = curve_at(c, x0), f1 = curve_at(c, x1), fm = curve_at(c, (x0 + x1) / 2);
		double whole = (x1 - x0) / 6 * (f0 + 4 * fm + f1);
		total += simpson(c, x0, x1, f0, fm, f1, whole, 1e-12, 40);
	}
	return total;
}

void llm_minhash_optimal_param(double threshold, unsigned num_perm, double fp_weight,
			       double fn_weight, unsigned *bands, unsigned *rows)
{
	double best = INFINITY;
	*bands = 1;
	*rows = num_perm ? num_perm : 1;
	for (unsigned b = 1; b <= num_perm; b++) {
		for (unsigned r = 1; r <= num_perm / b; r++) {
			struct curve fp = {b, r, false}, fn = {b, r, true};
			double err = fp_weight * integrate(&fp, 0.0, threshold) +
				     fn_weight * integrate(&fn, threshold, 1.0);
			if (err < best) {
				best = err;
				*bands = b;
				*rows = r;
			}
		}
	}
}
