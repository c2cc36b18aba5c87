/* A cache of model answers on disk, so that a re-run (in CI, after an edit to one prompt) pays
 * only for the requests it has not made before.
 *
 * An entry is keyed on the SHA-256 of what determines the answer: the model's identity, the
 * endpoint and the canonical request body (backend/request.h).  The identity of a URL is the
 * URL and the model name; that of a local model its real path and the name, size and
 * modification time of each of its files, so retraining a model in place is a miss, not a
 * stale answer.  Only deterministic requests belong here (llm_request_deterministic): the
 * caller decides.
 *
 * Layout: DIR/KK/KEY.json, KK the key's first two hex digits, each file one JSON object
 *   {"key", "endpoint", "model", "request", "response", "latency_ms", "ttft_ms", "created"}
 * written atomically (core/atomic.h), so concurrent runs sharing a cache see an entry whole
 * or not at all.  An entry that cannot be read or parsed is a miss. */
#ifndef LLM_BACKEND_CACHE_H
#define LLM_BACKEND_CACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "backend/backend.h"
#include "core/buf.h"
#include "core/err.h"

#define LLM_CACHE_KEY_LEN 64

/* The default directory for a tool's cache: $LLMOPS_HOME/cache/NAME, LLMOPS_HOME defaulting
 * to ~/.llmops.  A malloc'd string, or NULL when out of memory. */
char *llm_cache_default_dir(const char *name);

/* The identity of a model reference (see above), appended to out. */
enum llm_err llm_cache_model_identity(const char *ref, const char *model_name, struct llm_buf *out,
				      struct llm_diag *diag);

/* The key: lower-case hex, NUL-terminated. */
enum llm_err llm_cache_key(const char *model_identity, enum llm_endpoint ep,
			   const char *canonical_body, char key[LLM_CACHE_KEY_LEN + 1]);

struct llm_cache;

/* Use dir, creating it (and its parents) when missing. */
enum llm_err llm_cache_open(struct llm_cache **out, const char *dir, struct llm_diag *diag);
void llm_cache_close(struct llm_cache *c);

/* A cached answer. */
struct llm_cache_hit {
	char *response; /* the response body, NUL-terminated */
	size_t len;
	double latency_ms; /* of the request that filled the entry */
	double ttft_ms;	   /* -1 when it was not measured */
};
void llm_cache_hit_clear(struct llm_cache_hit *h);

/* Look a key up: true with *hit filled, false for a miss (or an unreadable entry). */
bool llm_cache_get(struct llm_cache *c, const char *key, struct llm_cache_hit *hit);

/* Store an answer.  request and response are JSON texts (response len bytes). */
enum llm_err llm_cache_put(struct llm_cache *c, const char *key, const char *model_identity,
			   enum llm_endpoint ep, const char *request, const char *response,
			   size_t len, double latency_ms, double ttft_ms, struct llm_diag *diag);

#endif
