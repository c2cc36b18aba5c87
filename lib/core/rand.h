/* Seeded pseudo-random numbers: xoshiro256** seeded through splitmix64.  The same seed gives
 * the same sequence on every machine, which is what --seed promises. */
#ifndef LLM_CORE_RAND_H
#define LLM_CORE_RAND_H

#include <stdint.h>

struct llm_rand {
	uint64_t s[4];
};

void llm_rand_seed(struct llm_rand *r, uint64_t seed);
uint64_t llm_rand_next(struct llm_rand *r);
/* Uniform in [0, bound), without modulo bias; bound > 0. */
uint64_t llm_rand_below(struct llm_rand *r, uint64_t bound);
/* Uniform in [0, 1). */
double llm_rand_double(struct llm_rand *r);

#endif
