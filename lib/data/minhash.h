/* MinHash signatures and LSH banding, for finding near-duplicate documents.
 *
 * A document is normalized (llm_minhash_normalize), split into words at whitespace, and cut
 * into word n-grams ("shingles", 5 words by default).  Each shingle gets a 32-bit hash; each
 * of the num_perm permutations is a multiply-add-shift hash of it,
 *     h_i(x) = (a_i * x + b_i) >> 32     (64-bit arithmetic, a_i and b_i drawn from the seed),
 * which is strongly universal on 32-bit keys (Dietzfelbinger 1996) and needs only integer
 * multiplies that vectorize, unlike the (a*x + b) mod (2^61 - 1) of datasketch and text-dedup.
 * The signature keeps the minimum of each h_i over the shingles.  Two documents whose shingle
 * sets have Jaccard similarity s agree on each signature value with probability about s.
 *
 * LSH cuts the signature into b bands of r rows: two documents become candidates when all r
 * values of some band agree, which happens with probability 1 - (1 - s^r)^b.  b and r come
 * from a threshold as text-dedup's optimal_param chooses them (llm_minhash_optimal_param).
 *
 * Every hash here is fixed by this file (not by the build or the machine), so signatures and
 * band keys computed on different machines, or by different versions, agree. */
#ifndef LLM_DATA_MINHASH_H
#define LLM_DATA_MINHASH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/err.h"

#define LLM_MINHASH_MAX_PERM 8192
#define LLM_MINHASH_KEY_LEN 12 /* bytes of a band key (96 bits) */

struct llm_minhash_params {
	unsigned num_perm; /* signature length */
	unsigned ngram;    /* words per shingle */
	unsigned bands, rows; /* bands * rows <= num_perm */
	uint64_t seed;        /* draws the permutations */
	bool normalize;       /* apply llm_minhash_normalize before splitting into words */
};

struct llm_minhash {
	struct llm_minhash_params p;
	unsigned padded;  /* num_perm rounded up to the vector width */
	uint64_t *a, *b;  /* the permutations, padded long */
	uint64_t *acc;    /* running minimums, padded long */
	uint32_t *sig;    /* the signature of the last document, num_perm long */
	uint64_t *words;  /* word hashes of the last document */
	size_t nwords, cap_words;
	struct llm_buf norm;
};

/* Check the parameters and draw the permutations. */
enum llm_err llm_minhash_init(struct llm_minhash *m, const struct llm_minhash_params *p,
			      struct llm_diag *diag);
void llm_minhash_free(struct llm_minhash *m);

/* Append the normalized form of UTF-8 text s[0..n) to out, as datatrove's simplify_text does
 * by default: lower case (Unicode case folding), diacritics removed (NFD, marks dropped),
 * punctuation (ASCII and Unicode category P) removed, every run of digits (category Nd)
 * replaced by a single "0", and every run of whitespace and control characters turned into
 * one space, none at either end. */
enum llm_err llm_minhash_normalize(const char *s, size_t n, struct llm_buf *out);

/* Compute the signature of text s[0..n) into m->sig.  *nshingles is the number of shingles:
 * a text of at least one but fewer than ngram words is one shingle of all its words; a text
 * with no words has none, and its signature is all 0xffffffff (it matches nothing useful and
 * callers should leave it out of the bands). */
enum llm_err llm_minhash_sign(struct llm_minhash *m, const char *s, size_t n, size_t *nshingles);

/* The key of band i of signature sig (rows values from i * rows): 96 bits of a fixed hash of
 * the values, so equal bands give equal keys and different ones collide with probability
 * 2^-96. */
void llm_minhash_band_key(const struct llm_minhash *m, const uint32_t *sig, unsigned band,
			  unsigned char key[LLM_MINHASH_KEY_LEN]);

/* The fraction of equal positions of two signatures: the estimate of their Jaccard similarity. */
double llm_minhash_similarity(const uint32_t *x, const uint32_t *y, unsigned n);

/* text-dedup's optimal_param: the (bands, rows) with bands * rows <= num_perm that minimize
 * fp_weight * (area under 1 - (1 - s^r)^b for s in [0, threshold]) + fn_weight * (area under
 * (1 - s^r)^b for s in [threshold, 1]); ties go to the first found, bands then rows ascending. */
void llm_minhash_optimal_param(double threshold, unsigned num_perm, double fp_weight,
			       double fn_weight, unsigned *bands, unsigned *rows);

/* The probability that two documents of Jaccard similarity s share at least one band. */
double llm_minhash_candidate_probability(double s, unsigned bands, unsigned rows);

/* A fixed 64-bit hash (the same on every machine and in every version of llmops). */
uint64_t llm_minhash_hash64(const void *p, size_t n, uint64_t seed);

#endif
