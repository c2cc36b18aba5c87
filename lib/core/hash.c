#include "config.h"

#include "core/hash.h"

#include <openssl/evp.h>
#include <string.h>

enum llm_err llm_sha256_init(struct llm_sha256 *h)
{
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	if (!c)
		return LLM_ERR_NOMEM;
	if (EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) {
		EVP_MD_CTX_free(c);
		return LLM_ERR_NOMEM;
	}
	h->ctx = c;
	return LLM_OK;
}

enum llm_err llm_sha256_update(struct llm_sha256 *h, const void *p, size_t n)
{
	return EVP_DigestUpdate(h->ctx, p, n) == 1 ? LLM_OK : LLM_ERR_NOMEM;
}

enum llm_err llm_sha256_final(struct llm_sha256 *h, unsigned char out[LLM_SHA256_LEN])
{
	unsigned len = 0;
	int ok = EVP_DigestFinal_ex(h->ctx, out, &len);
	EVP_MD_CTX_free(h->ctx);
	h->ctx = NULL;
	return ok == 1 && len == LLM_SHA256_LEN ? LLM_OK : LLM_ERR_NOMEM;
}

enum llm_err llm_sha256(const void *p, size_t n, unsigned char out[LLM_SHA256_LEN])
{
	unsigned len = 0;
	return EVP_Digest(p, n, out, &len, EVP_sha256(), NULL) == 1 ? LLM_OK : LLM_ERR_NOMEM;
}

void llm_hex(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";
	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static inline uint64_t mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t llm_hash64(const void *p, size_t n, uint64_t seed)
{
	const unsigned char *s = p;
	uint64_t h = seed ^ (n * 0x9E3779B97F4A7C15ULL);
	while (n >= 8) {
		uint64_t v;
		memcpy(&v, s, 8);
		h = (h ^ mix(v)) * 0x9E3779B97F4A7C15ULL;
		h = (h << 27) | (h >> 37);
		s += 8;
		n -= 8;
	}
	uint64_t tail = 0;
	memcpy(&tail, s, n);
	h ^= mix(tail ^ ((uint64_t)n << 56));
	return mix(h);
}
