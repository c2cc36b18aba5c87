/* Digests: SHA-256 through OpenSSL (identities, shard keys, anything another machine must
 * reproduce), and a fast 64-bit hash for in-memory tables that never leave the process. */
#ifndef LLM_CORE_HASH_H
#define LLM_CORE_HASH_H

#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

#define LLM_SHA256_LEN 32
#define LLM_SHA256_HEX_LEN 64

struct llm_sha256 {
	void *ctx; /* EVP_MD_CTX */
};

enum llm_err llm_sha256_init(struct llm_sha256 *h);
enum llm_err llm_sha256_update(struct llm_sha256 *h, const void *p, size_t n);
/* Finish, write the digest and release the context. */
enum llm_err llm_sha256_final(struct llm_sha256 *h, unsigned char out[LLM_SHA256_LEN]);
/* One-shot digest. */
enum llm_err llm_sha256(const void *p, size_t n, unsigned char out[LLM_SHA256_LEN]);
/* Lower-case hex of n bytes into out (2n + 1 bytes). */
void llm_hex(const unsigned char *p, size_t n, char *out);

/* A fast, well-mixed 64-bit hash (not cryptographic, not stable across versions). */
uint64_t llm_hash64(const void *p, size_t n, uint64_t seed);

#endif
