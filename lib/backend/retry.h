/* What an HTTP answer says about trying again, read the way the official OpenAI Python client
 * (openai-python) reads it: the retry-after-ms, retry-after and x-should-retry headers, and its
 * backoff.  Shared by the HTTP backend (llm-gen, llm-eval) and llm-serve's gateway, so both
 * obey a server the same way (FIELD-NOTES.md, Evaluation). */
#ifndef LLM_BACKEND_RETRY_H
#define LLM_BACKEND_RETRY_H

#include <stdbool.h>
#include <stddef.h>

/* The headers of one response that matter for retrying, and its status and content type. */
struct llm_retry_headers {
	long status; /* from the status line; 0 before one */
	bool have_ms, have_after, have_should;
	char ms[64], after[128], should[16]; /* the values, blanks trimmed */
	char content_type[128];
};

/* Forget everything (a new attempt). */
void llm_retry_headers_reset(struct llm_retry_headers *h);

/* Read one header line as libcurl's CURLOPT_HEADERFUNCTION passes it (n bytes, no NUL, the
 * line end included).  A status line ("HTTP/...") starts a new response: what earlier lines
 * said (a 100 Continue's) is forgotten.  Other headers are ignored. */
void llm_retry_headers_line(struct llm_retry_headers *h, const char *line, size_t n);

/* The server's hint in seconds: retry-after-ms, else retry-after as a number of seconds (as
 * Python's float() reads it), else as an HTTP date.  False when there is none.  A number too
 * large for a double gives DBL_MAX (a hint too long to wait for); "inf" and "nan" come back as
 * they are, for the caller's isfinite(). */
bool llm_retry_hint(const struct llm_retry_headers *h, double *seconds);

/* x-should-retry's verdict: 1 for "true", 0 for "false", -1 when absent or anything else. */
int llm_retry_should(const struct llm_retry_headers *h);

/* Whether the status alone is worth a retry: 408, 409, 429 and 5xx. */
bool llm_retry_status(long status);

/* openai-python's backoff before retry number retries + 1 (retries already taken >= 0):
 * min(0.5 · 2^retries, 8) s, less up to 25 % by jitter u in [0, 1). */
double llm_retry_backoff(int retries, double u);

#endif
