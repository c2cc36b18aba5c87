/* Traffic-abuse detectors for a stream of requests, in bounded memory: request-rate spikes per
 * API key, floods of near-identical prompts (from one key or many), and floods of long prompts
 * from one key.  What `llm-monitor scan` runs over traffic, request by request, so that it
 * works the same on a day's log and under --follow.
 *
 * Time is the requests' own (ts), never the clock: a log read a week later gives the same
 * findings.  Time never goes backwards here: a request older than the latest one seen, or one
 * without a time, counts at the latest time seen.
 *
 * Windows slide in tenths: a window of W is ten buckets of W/10, and "in the window" means in
 * the current bucket or the nine before it.
 *
 * Rate spikes (per key).  n is the key's requests in --rate-window.  The key's baseline b is
 * an exponentially weighted mean of its requests per window, over the buckets that have left
 * the window (so a burst does not raise its own baseline), with time constant
 * rate_baseline_ms, bias-corrected as Adam's moments are so that a young key's mean is not
 * pulled to zero.  The request that makes
 *     n >= max(rate_min, rate_factor * b)   (relative; once the key is warm: seen for at
 *                                            least five windows)
 *  or n >= max_rate * window seconds        (absolute; max_rate > 0)
 * true is flagged; the key is flagged again only after n has fallen to half of that threshold
 * (one finding per episode, not one per request).
 *
 * Near-identical prompts (across keys).  Each prompt of at least dup_min_words words gets a
 * MinHash signature (data/minhash.h: 128 permutations, 2-word shingles on datatrove's
 * normalized text, so digits and case do not matter) and is looked up by LSH among the
 * prompts of the last dup_window_ms (at most dup_max_prompts of them, the oldest leaving
 * first).  It joins the cluster of its most similar candidate whose estimated Jaccard
 * similarity is at least dup_threshold, or starts a cluster.  A cluster whose members in the
 * window reach dup_count is flagged, and again at twice, four times... that size; it is armed
 * again when it falls under half of dup_count.  A cluster is a chain of near-duplicates: its
 * ends may differ more than the threshold allows.
 *
 * Long-prompt floods (per key).  A prompt is long when its length in code points exceeds
 * max(long_min_chars, the long_percentile-th percentile of the lengths of the last
 * long_history prompts, the flood's own included; once 1000 lengths are known; to within 9 %,
 * the resolution of the length histogram).  A flood of more than (100 - long_percentile) % of
 * long_history prompts raises the bar it is measured against, so long_history should be well
 * above long_count * 100 / (100 - long_percentile): 1000 with the defaults, and it is 10000.
 * A key whose long prompts in long_window_ms reach long_count is flagged, once per episode as
 * for rates.
 *
 * Memory: at most max_keys keys are tracked (the least recently seen is forgotten first, and
 * starts again as a new key when it comes back), at most dup_max_prompts signatures and
 * long_history lengths are held; llm_abuse_memory() says how much that is.  Nothing here
 * prints or does I/O; one thread uses a detector at a time. */
#ifndef LLM_MONITOR_ABUSE_H
#define LLM_MONITOR_ABUSE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/err.h"

/* The numbers are stable; a set of kinds is a bit mask of (1u << kind). */
enum llm_abuse_kind {
	LLM_ABUSE_RATE_SPIKE = 0,      /* "rate_spike" */
	LLM_ABUSE_NEAR_DUPLICATES = 1, /* "near_duplicates" */
	LLM_ABUSE_LONG_PROMPTS = 2,    /* "long_prompt_flood" */
	LLM_ABUSE__COUNT
};

#define LLM_ABUSE_ALL ((1u << LLM_ABUSE__COUNT) - 1)

struct llm_abuse_config {
	unsigned kinds; /* bit mask of enum llm_abuse_kind; 0: all */
	/* rate spikes */
	int64_t rate_window_ms;	  /* 1 minute */
	int64_t rate_baseline_ms; /* 1 hour */
	double rate_factor;	  /* 5 */
	uint32_t rate_min;	  /* 30 requests */
	double max_rate;	  /* 10 requests per second; 0: no absolute limit */
	size_t max_keys;	  /* 10000 */
	/* near-identical prompts */
	int64_t dup_window_ms;	/* 10 minutes */
	size_t dup_max_prompts; /* 10000 */
	double dup_threshold;	/* 0.7 */
	uint32_t dup_count;	/* 20 */
	uint32_t dup_min_words; /* 5 */
	/* long-prompt floods */
	int64_t long_window_ms; /* 5 minutes */
	double long_percentile; /* 99; 0: the fixed limit alone */
	int64_t long_min_chars; /* 2000 */
	uint32_t long_count;	/* 10 */
	size_t long_history;	/* 10000 */
};

/* The defaults above. */
void llm_abuse_config_init(struct llm_abuse_config *cfg);

/* One request as the detectors see it. */
struct llm_abuse_request {
	int64_t ts_ms;	 /* Unix milliseconds; INT64_MIN when unknown */
	const char *key; /* the key's name (key_id); NULL: requests without a key share one */
	size_t key_len;
	const char *text; /* the user's text, for near-duplicates; NULL when unknown */
	size_t text_len;
	int64_t chars; /* the prompt's length in code points; -1 when unknown */
};

/* A finding, on the request that made it. */
struct llm_abuse_finding {
	enum llm_abuse_kind kind;
	const char *detector; /* "rate_relative", "rate_absolute", "minhash_cluster",
			       * "long_prompt_flood" (static) */
	double score;	      /* count / (2 * threshold), at most 1: 0.5 at the threshold */
	uint64_t count;	      /* requests in the window, the cluster's size, long prompts */
	double threshold;     /* what count had to reach */
	int64_t window_ms;
	double baseline;     /* rate: the key's baseline requests per window; -1 when not warm */
	uint32_t keys;	     /* near-duplicates: distinct keys in the cluster */
	int64_t limit_chars; /* long prompts: the length a prompt had to exceed */
};

/* At most one finding of each kind per request. */
struct llm_abuse_findings {
	struct llm_abuse_finding f[LLM_ABUSE__COUNT];
	size_t n;
};

struct llm_abuse;

/* Check cfg (LLM_ERR_USAGE naming the bad member) and allocate what the limits allow. */
enum llm_err llm_abuse_new(struct llm_abuse **out, const struct llm_abuse_config *cfg,
			   struct llm_diag *diag);
void llm_abuse_free(struct llm_abuse *a);

/* Count one request and replace out's contents with what it set off.  Fails only for want of
 * memory. */
enum llm_err llm_abuse_add(struct llm_abuse *a, const struct llm_abuse_request *r,
			   struct llm_abuse_findings *out, struct llm_diag *diag);

/* Bytes held now (all of it allocated by llm_abuse_new or reused since, except the MinHash
 * scratch space, which grows with the longest prompt signed). */
size_t llm_abuse_memory(const struct llm_abuse *a);
/* Keys tracked, prompts in the near-duplicate window, live clusters. */
void llm_abuse_counts(const struct llm_abuse *a, size_t *keys, size_t *prompts, size_t *clusters);

/* "rate_spike", "near_duplicates", "long_prompt_flood"; and back. */
const char *llm_abuse_kind_name(enum llm_abuse_kind k);
bool llm_abuse_kind_parse(const char *name, size_t len, enum llm_abuse_kind *out);

#endif
