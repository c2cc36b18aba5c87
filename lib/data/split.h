/* Deterministic dataset splits: a record's split depends only on its key (and an optional
 * salt), never on the order of the input, the machine or the other records.
 *
 * The key is hashed with SHA-256 (of "SALT:KEY" when a salt is given, of KEY alone otherwise);
 * the first 8 bytes of the digest, read big-endian, keep their top 53 bits, which divided by
 * 2^53 give u in [0, 1).  Split i takes u in [r0 + ... + r(i-1), r0 + ... + ri).  Anyone can
 * recompute an assignment with sha256sum, and records added later never move old ones. */
#ifndef LLM_DATA_SPLIT_H
#define LLM_DATA_SPLIT_H

#include <stddef.h>

#include "core/err.h"

#define LLM_SPLIT_MAX 64

struct llm_split_plan {
	size_t n;
	double ratio[LLM_SPLIT_MAX];
	double upper[LLM_SPLIT_MAX]; /* cumulative: split i takes u < upper[i] */
	char *name[LLM_SPLIT_MAX];
};

/* Parse "0.8,0.1,0.1" and "train,val,test".  Ratios are non-negative and sum to 1 (within
 * 1e-6); names are as many, distinct, non-empty and usable as file names (no '/', not "." or
 * "..").  LLM_ERR_USAGE with the reason otherwise. */
enum llm_err llm_split_plan_parse(struct llm_split_plan *p, const char *ratios, const char *names,
				  struct llm_diag *diag);
void llm_split_plan_free(struct llm_split_plan *p);

/* u in [0, 1) for key[0, n); salt may be NULL. */
enum llm_err llm_split_unit(const char *key, size_t n, const char *salt, double *u);

/* The split that u falls in. */
size_t llm_split_pick(const struct llm_split_plan *p, double u);

#endif
