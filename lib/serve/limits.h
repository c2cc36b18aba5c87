/* Rate limits and token budgets for llm-serve: per client requests per minute (RPM) and tokens
 * per minute (TPM), a total token budget per client, and the same two rates for the whole
 * server, answered as "go ahead" or "retry after N seconds" so the server can send 429 with
 * Retry-After and OpenAI's x-ratelimit-* headers.
 *
 * Each rate is a token bucket that holds one minute's worth (rpm requests, tpm tokens) and
 * refills continuously at rate/60 per second: a client may burst to its whole minute, then
 * goes at the rate.  A request is checked with llm_limits_acquire() before any work, reserving
 * one request and its estimated tokens (prompt tokens + max_tokens, the most it can use);
 * when it ends, llm_limits_settle() gives back the difference to the real usage, so a
 * request that stops early frees its tokens and one that was under-estimated takes the rest
 * (a bucket may go below zero: that debt delays the next request).  An estimate larger than a
 * whole minute's tokens is admitted when the bucket is full and takes all of it, so a big
 * request waits for a full bucket instead of being refused forever.  Acquiring is all or
 * nothing: a refused request takes nothing from any bucket or budget.
 *
 * A budget counts the tokens a client has used in total, reserved tokens included until they
 * settle; a request whose estimate would pass the budget is refused with LLM_LIMIT_BUDGET and
 * no retry time (OpenAI answers that case with 429 "insufficient_quota").  Budgets live in
 * memory; llm_limits_budgets_save()/load() keep them in a JSON file across restarts, and the
 * on_usage hook sees every settled request, for a server that wants to persist elsewhere.
 *
 * Clients are named by strings (a key id from lib/serve/keys.h, or "ip:ADDR" for anonymous
 * clients, as the caller chooses) and held in a fixed table of max_clients entries, so memory
 * never grows with traffic.  The table is split in 16 stripes by a hash of the name, each with
 * its own lock and a sixteenth of the entries.  When a stripe is full a new client takes the
 * least recently used of its entries that holds nothing worth keeping (no request in flight,
 * buckets full again, no budget used), looking at the 64 least recent; when there is none,
 * the new client is refused with LLM_LIMIT_FULL and a retry of one second.  Size max_clients
 * well above the number of keys (the default holds 65,536 clients), and keep anonymous clients
 * in a struct llm_limits of their own, so a flood of addresses cannot crowd out the keys.
 *
 * Thread-safe with fine-grained locks (the stripes); time comes from an injectable
 * clock so tests need no sleeping.  Nothing here prints. */
#ifndef LLM_SERVE_LIMITS_H
#define LLM_SERVE_LIMITS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* One client's limits.  For each: > 0 the limit, 0 no limit, < 0 (LLM_LIMIT_DEFAULT) the
 * default from struct llm_limits_config.  A struct llm_key's rpm/tpm/budget_tokens use the
 * same convention and can be copied in as they are. */
#define LLM_LIMIT_DEFAULT (-1)
struct llm_limit_rule {
	int64_t rpm;
	int64_t tpm;
	int64_t budget_tokens;
};

/* Seconds on a monotonic clock. */
typedef double (*llm_limits_clock_fn)(void *ctx);

struct llm_limits_config {
	struct llm_limit_rule defaults; /* for rules that say LLM_LIMIT_DEFAULT; < 0 here: none */
	int64_t global_rpm;		/* the whole server; 0: none */
	int64_t global_tpm;
	size_t max_clients;	   /* entries in the client table; 0: 65536 */
	llm_limits_clock_fn clock; /* NULL: CLOCK_MONOTONIC */
	void *clock_ctx;
	/* Called after each settle with the client and its total tokens used so far (under a
	 * lock: keep it short, and do not call back into this module). */
	void (*on_usage)(void *ctx, const char *client, int64_t tokens, int64_t total_used);
	void *on_usage_ctx;
};

enum llm_limit_verdict {
	LLM_LIMIT_OK = 0,
	LLM_LIMIT_RPM = 1,	  /* the client's requests per minute */
	LLM_LIMIT_TPM = 2,	  /* the client's tokens per minute */
	LLM_LIMIT_BUDGET = 3,	  /* the client's budget is spent: no retry will help */
	LLM_LIMIT_GLOBAL_RPM = 4, /* the server's requests per minute */
	LLM_LIMIT_GLOBAL_TPM = 5, /* the server's tokens per minute */
	LLM_LIMIT_FULL = 6,	  /* the client table is full of active clients */
};

/* What llm_limits_acquire() decided, with what the x-ratelimit-* headers need.  A limit of 0
 * means none (then remaining and reset are 0 too). */
struct llm_limit_result {
	enum llm_limit_verdict verdict;
	double retry_after;	    /* seconds until the request would pass; 0 when OK, -1 never */
	int64_t limit_requests;	    /* the client's rpm */
	int64_t remaining_requests; /* whole requests left in the bucket after this one */
	double reset_requests;	    /* seconds until the request bucket is full again */
	int64_t limit_tokens;	    /* the client's tpm */
	int64_t remaining_tokens;
	double reset_tokens;
	int64_t budget_tokens; /* the client's budget, 0 for none */
	int64_t budget_used;   /* used and reserved so far, this request included when OK */
};

/* A request admitted by llm_limits_acquire(), to settle exactly once. */
struct llm_limit_ticket {
	uint32_t stripe, slot;
	uint64_t generation;
	int64_t reserved; /* the tokens reserved */
	bool active;	  /* set by acquire, cleared by settle */
};

struct llm_limits;

enum llm_err llm_limits_new(struct llm_limits **out, const struct llm_limits_config *cfg);
void llm_limits_free(struct llm_limits *l);

/* Ask for one request of est_tokens estimated tokens (>= 0) for client under rule (NULL: the
 * defaults).  Returns LLM_OK with res->verdict saying whether it may go; on LLM_LIMIT_OK the
 * ticket is active and must be settled.  LLM_ERR_USAGE for an empty client or a negative
 * estimate.  The Retry-After header is ceil(res->retry_after). */
enum llm_err llm_limits_acquire(struct llm_limits *l, const char *client,
				const struct llm_limit_rule *rule, int64_t est_tokens,
				struct llm_limit_ticket *ticket, struct llm_limit_result *res);

/* End an admitted request with the tokens it really used (prompt + completion; 0 for one that
 * failed before any work).  Safe on an inactive ticket (does nothing). */
void llm_limits_settle(struct llm_limits *l, struct llm_limit_ticket *ticket, int64_t used_tokens);

/* The tokens a client has used (settled and reserved), 0 for one not in the table. */
int64_t llm_limits_budget_used(struct llm_limits *l, const char *client);
/* Set what a client has used (restoring a saved state; 0 resets its budget). */
enum llm_err llm_limits_budget_set(struct llm_limits *l, const char *client, int64_t used);

/* Save every client's used budget as a JSON object {"client": tokens, ...} (atomically:
 * temporary file and rename), and load such a file back.  Loading a missing file is OK. */
enum llm_err llm_limits_budgets_save(struct llm_limits *l, const char *path, struct llm_diag *diag);
enum llm_err llm_limits_budgets_load(struct llm_limits *l, const char *path, struct llm_diag *diag);

/* The code an OpenAI client expects in the 429 body for a verdict ("rate_limit_exceeded",
 * "insufficient_quota"), and a lower-case reason for a message ("requests per minute"). */
const char *llm_limit_verdict_code(enum llm_limit_verdict v);
const char *llm_limit_verdict_reason(enum llm_limit_verdict v);
/* A short name for a metric label: "rpm", "tpm", "budget", "global_rpm", "global_tpm",
 * "clients" ("ok" for LLM_LIMIT_OK). */
const char *llm_limit_verdict_name(enum llm_limit_verdict v);

#endif
