/* Windowed aggregates of a monitoring stream, grouped by fields: what `llm-monitor summarize`
 * prints and what `check` and `alert` hold their rules against, computed one way for all.
 *
 * Events (monitor/event.h) go in; rows come out, one per (window, group).  A window is
 * [start, start + window) aligned to the Unix epoch (0: one window spanning everything);
 * events without a time fall into the first window of the run, or the only one.  Grouping
 * keys are event fields by name: model, key_id, endpoint, status, finish_reason, or any
 * top-level string or number field of the record.  A request's feedback is joined to the
 * request's row (by request_id, whichever comes first; the same feedback id counted once); a
 * feedback whose request is never seen counts in the row of its own time and group keys.
 *
 * Memory is bounded by the rows, never by the records: each row holds counters and four
 * sketches (monitor/sketch.h); the join remembers the last 262,144 request ids (as 64-bit
 * hashes) with their window and group, the last 262,144 feedback ids, and up to 65,536
 * feedback records waiting for their request.  A feedback that comes after its request has
 * left the join, or one still waiting when the rows are read (nrows/row) or when the waiting
 * list is full, counts in the row of its own time and group keys.  A group key that is absent
 * from a record is a null value (its own group).  Time-ordered or not, every record counts.
 *
 * Every quantity is mergeable: counts and sums add, latencies go into a relative-error
 * log-bucket quantile sketch (DDSketch-style, 1 % relative accuracy), so rows of shards merge
 * into the rows one pass over all the data would give (llm_mon_agg_merge_json).
 *
 * The metrics of a row, by the names rules use (times in milliseconds, as the logs write
 * them; rates in [0, 1]; a metric with no data, such as a percentile of zero latencies or a
 * rate over zero requests, is absent, which rules treat as no data):
 *   requests, errors, error_rate, status_2xx, status_3xx, status_4xx, status_5xx,
 *   status_NNN (each status seen), errors_by_code.CODE (each error code seen),
 *   latency_mean, latency_p50, latency_p90, latency_p95, latency_p99, latency_max,
 *   ttft_mean, ttft_p50, ttft_p90, ttft_p95, ttft_p99, ttft_max,
 *   prompt_tokens, completion_tokens, total_tokens, tokens_per_request,
 *   cost (from the price table; absent without one), cost_per_request,
 *   cost_unpriced (requests with token counts whose model the table does not price),
 *   refusals, refusal_rate (finish_reason "content_filter", or a refusal flag, or, when the
 *   output is known, lib/guard/inject's refusal detector),
 *   flags, flags.KIND (each flag kind seen), flagged_rate (requests with any flag),
 *   feedback_count, feedback_mean, feedback_min, feedback_negative (scores at or below the
 *   configured negative score), feedback_negative_rate,
 *   prompt_chars_mean, output_chars_mean, prompt_chars_p99, output_chars_p99.
 * Percentiles are those of the sketch (within 1 % of the value of rank floor(q (n - 1)));
 * means, minima and maxima are exact.  tokens_per_request divides by the requests whose usage
 * is known, cost_per_request by the requests priced.
 * Nothing here prints. */
#ifndef LLM_MONITOR_AGGREGATE_H
#define LLM_MONITOR_AGGREGATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"
#include "monitor/event.h"
#include "monitor/sketch.h"

/* A price table, from a JSON file:
 *   {"currency":"USD","models":{"gpt-4o":{"prompt":2.5,"completion":10.0},"*":{...}}}
 * prices per million tokens; "*" matches any model not listed; a model name matches its
 * entry exactly, or an entry that is its prefix up to '@' or ':' ("support-bot" prices
 * "support-bot@3"). */
struct llm_mon_prices;
enum llm_err llm_mon_prices_load(struct llm_mon_prices **out, const char *path,
				 struct llm_diag *diag);
void llm_mon_prices_free(struct llm_mon_prices *p);
/* The table's "currency" ("USD" when it names none). */
const char *llm_mon_prices_currency(const struct llm_mon_prices *p);

struct llm_mon_agg_config {
	int64_t window_ms;	/* 0: one window */
	char *const *by;	/* group keys (at most 16); NULL/0: no grouping */
	size_t nby;
	const struct llm_mon_prices *prices; /* NULL: no cost */
	double negative_score;	/* feedback at or below counts as negative; default 0 */
	size_t max_groups;	/* distinct (window, group) rows kept; 0: 100,000 (more fail with
				 * LLM_ERR_TOO_BIG naming the limit) */
};

struct llm_mon_agg;

enum llm_err llm_mon_agg_new(struct llm_mon_agg **out, const struct llm_mon_agg_config *cfg,
			     struct llm_diag *diag);
void llm_mon_agg_free(struct llm_mon_agg *a);

/* Add one event (a request or a feedback). */
enum llm_err llm_mon_agg_add(struct llm_mon_agg *a, const struct llm_mon_event *ev,
			     struct llm_diag *diag);

/* The rows, sorted by window start then group values (a null value first); valid until the
 * next add, merge, drop or free.  One thread uses an aggregate at a time: reading the rows
 * sorts them in place and settles waiting feedback. */
struct llm_mon_row;
size_t llm_mon_agg_nrows(const struct llm_mon_agg *a);
const struct llm_mon_row *llm_mon_agg_row(const struct llm_mon_agg *a, size_t i);

/* The window, in Unix ms: [start, end).  INT64_MIN for "no time".  With window 0, the time of
 * the row's first event and that of its last plus 1 ms. */
int64_t llm_mon_row_start(const struct llm_mon_row *r);
int64_t llm_mon_row_end(const struct llm_mon_row *r);
/* The group's value for key i of cfg->by (NULL when the events had none). */
const char *llm_mon_row_key(const struct llm_mon_row *r, size_t i);
/* A metric by name (see above); false when the row has no value for it. */
bool llm_mon_row_metric(const struct llm_mon_row *r, const char *name, double *value);

/* The row as one JSON object: {"window_start","window_end", <group keys>, <metrics>...,
 * "state": {...}}.  Times are RFC 3339 strings in UTC (null for "no time"); group values are
 * strings (null when absent); counts are integers.  "state" comes only with with_state: the
 * whole of the row's counters and sketches, with "window_ms" and "by", which is all merging
 * needs (the metrics beside it are not read back). */
json_t *llm_mon_row_json(const struct llm_mon_agg *a, const struct llm_mon_row *r,
			 bool with_state);
/* Add a row written with with_state (by another shard) into a: its group values are looked
 * up by a's key names (a key the row lacks is null), and it goes to a's window holding its
 * start.  A row without state, or one spanning more than one of a's windows, fails with
 * LLM_ERR_FORMAT. */
enum llm_err llm_mon_agg_merge_json(struct llm_mon_agg *a, const json_t *row, struct llm_diag *diag);

/* Add every row of src into dst, regrouped by dst's keys (keys dst lacks are summed over) and
 * into dst's windows (the same rule as merge_json). */
enum llm_err llm_mon_agg_merge(struct llm_mon_agg *dst, const struct llm_mon_agg *src,
			       struct llm_diag *diag);

/* For following a stream: the latest event time seen (INT64_MIN before any), and dropping the
 * rows whose window ends at or before t, once the caller has used them (windowed aggregates
 * only; with window 0 nothing is dropped).  An event or feedback that comes later for a
 * dropped window makes a new row for it, which holds only what came late: rows of the same
 * window and group add up. */
int64_t llm_mon_agg_latest(const struct llm_mon_agg *a);
void llm_mon_agg_drop_before(struct llm_mon_agg *a, int64_t t);

/* The whole of a's rows merged over windows (one row per group) into a fresh aggregate
 * with window 0, e.g. for a rule whose window spans the run. */
enum llm_err llm_mon_agg_collapse(const struct llm_mon_agg *a, struct llm_mon_agg **out,
				  struct llm_diag *diag);

#endif
