/* A mergeable quantile sketch with relative-error guarantees (DDSketch, Masson, Rim and Lee,
 * VLDB 2019), for latency and length percentiles over streams of any size in bounded memory.
 *
 * A positive value x goes to bucket k = ceil(log_gamma(x)), gamma = (1 + a) / (1 - a) with the
 * relative accuracy a = 1 %; a bucket answers with 2 gamma^k / (gamma + 1), which is within
 * 1 % of every value the bucket holds.  So the q-quantile answered is within 1 % (relative) of
 * the value of rank floor(q (n - 1)) in the sorted input, whatever the distribution.  Values
 * below LLM_SKETCH_MIN_VALUE (zero; negatives, which latencies never are) are counted in a
 * zero bucket that answers 0.  Buckets are a dense array over the range of keys seen, at most
 * LLM_SKETCH_MAX_BINS of them: past that the lowest buckets are folded together (the
 * "collapsing lowest" store), which costs accuracy at the low quantiles only, and only for
 * inputs spanning more than 2048 buckets (about 18 orders of magnitude).
 *
 * Two sketches merge by adding their buckets: the merge of the sketches of two streams is the
 * sketch of their concatenation, bucket for bucket, so shards combine exactly.  count, sum,
 * min and max are kept exactly beside the buckets.
 *
 * JSON form (what `llm-monitor summarize --state` writes and --merge reads):
 *   {"alpha":0.01,"count":N,"sum":S,"min":m,"max":M,"zero":Z,"offset":K,"bins":[c0,c1,...]}
 * where bins[i] counts bucket K + i; an empty sketch has count 0 and no min or max.
 * Nothing here prints. */
#ifndef LLM_MONITOR_SKETCH_H
#define LLM_MONITOR_SKETCH_H

#include <stdbool.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

#define LLM_SKETCH_ALPHA 0.01
#define LLM_SKETCH_MAX_BINS 2048
#define LLM_SKETCH_MIN_VALUE 1e-9

struct llm_sketch {
	uint64_t *bins;	   /* bins[i] counts bucket offset + i */
	int32_t offset;
	uint32_t nbins;	   /* buckets in use (the span from the lowest to the highest key) */
	uint32_t cap;	   /* allocated */
	uint64_t zero;	   /* values below LLM_SKETCH_MIN_VALUE */
	uint64_t count;
	double sum, min, max;
};

/* An empty sketch (also what a zeroed struct is). */
void llm_sketch_init(struct llm_sketch *s);
void llm_sketch_free(struct llm_sketch *s);
/* Add one value; NaN is ignored.  Fails only for want of memory. */
enum llm_err llm_sketch_add(struct llm_sketch *s, double v);
/* Add src's counts into dst. */
enum llm_err llm_sketch_merge(struct llm_sketch *dst, const struct llm_sketch *src);
/* The q-quantile (0 <= q <= 1), clamped to [min, max]; false when the sketch is empty. */
bool llm_sketch_quantile(const struct llm_sketch *s, double q, double *out);

/* The JSON form above; NULL when out of memory. */
json_t *llm_sketch_to_json(const struct llm_sketch *s);
/* Read the JSON form into an empty sketch s.  A form that is not one, or was made with
 * another accuracy, fails with LLM_ERR_FORMAT (diag's message says what; file and line are
 * left for the caller to fill). */
enum llm_err llm_sketch_from_json(struct llm_sketch *s, const json_t *j, struct llm_diag *diag);

#endif
