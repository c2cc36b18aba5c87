/* A small Prometheus registry for llm-serve's /metrics: counters, gauges and histograms with a
 * fixed set of labels each, written in the text exposition format 0.0.4.
 *
 * A metric (a family) is registered once with its name, help text and label names; a series is
 * one combination of label values, interned on first use and kept for the registry's life, so
 * the pointer llm_metric_series() returns may be cached and updated with no lookup at all.
 * Updates are lock-free (atomic compare-and-swap on the value's bits); the lookup of a series
 * takes a read lock on its family only, and creating one a write lock.
 *
 * Labels must stay few: each family has a cap on its series (max_series, default 256).  Past the
 * cap, and for a label value that is not valid UTF-8 or is longer than LLM_METRIC_VALUE_MAX,
 * updates go to one overflow series whose every label value is "__overflow__", so a flood of
 * distinct values costs nothing and still shows.  Never use a key, a prompt, a user id or a
 * request id as a label value: that is what the log is for.
 *
 * Names follow Prometheus: [a-zA-Z_:][a-zA-Z0-9_:]*, a counter's name ends in "_total",
 * durations are histograms in seconds; label names are [a-zA-Z_][a-zA-Z0-9_]* and neither start
 * with "__" nor, in a histogram, are "le".  A histogram writes cumulative NAME_bucket{le="B"}
 * lines for each upper bound B and le="+Inf", then NAME_sum and NAME_count (which always
 * equals the +Inf bucket in one exposition).  Label values are escaped (\\, \", \n), and so
 * is the help text (\\, \n).  Families come out in registration order, series in creation
 * order; no timestamps.  Numbers print as the shortest text that reads back the same, with
 * +Inf, -Inf and NaN spelled as Prometheus does.
 *
 * Thread-safe throughout; nothing here prints. */
#ifndef LLM_SERVE_METRICS_H
#define LLM_SERVE_METRICS_H

#include <stddef.h>

#include "core/buf.h"
#include "core/err.h"

/* The Content-Type of the exposition. */
#define LLM_METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"
#define LLM_METRIC_LABELS_MAX	 8   /* labels per metric */
#define LLM_METRIC_VALUE_MAX	 128 /* bytes in a label value */
#define LLM_METRIC_BUCKETS_MAX	 64  /* upper bounds in a histogram */
#define LLM_METRIC_OVERFLOW	 "__overflow__"

enum llm_metric_type { LLM_METRIC_COUNTER, LLM_METRIC_GAUGE, LLM_METRIC_HISTOGRAM };

struct llm_metrics; /* the registry */
struct llm_metric;  /* one family */
struct llm_series;  /* one set of label values of a family */

/* max_series: the cap on series in each family; 0 means 256. */
enum llm_err llm_metrics_new(struct llm_metrics **out, size_t max_series);
void llm_metrics_free(struct llm_metrics *r);

/* Register a family.  labels is a NULL-terminated list of label names (NULL for none);
 * bounds, for a histogram, are the nbounds finite upper bounds in increasing order (+Inf is
 * added).  LLM_ERR_USAGE (with the reason in diag) for a bad or duplicate name, a counter not
 * ending in _total, bad labels or bounds. */
enum llm_err llm_metrics_counter(struct llm_metrics *r, const char *name, const char *help,
				 const char *const *labels, struct llm_metric **out,
				 struct llm_diag *diag);
enum llm_err llm_metrics_gauge(struct llm_metrics *r, const char *name, const char *help,
			       const char *const *labels, struct llm_metric **out,
			       struct llm_diag *diag);
enum llm_err llm_metrics_histogram(struct llm_metrics *r, const char *name, const char *help,
				   const char *const *labels, const double *bounds, size_t nbounds,
				   struct llm_metric **out, struct llm_diag *diag);

/* The series for these label values (one per label, in the order registered; NULL or unused
 * for a family without labels).  Never NULL: past the cap, or for a bad value, or when memory
 * runs out, it is the overflow series. */
struct llm_series *llm_metric_series(struct llm_metric *m, const char *const *values);

/* Update a series.  add on a counter ignores a negative or NaN amount (counters only go up);
 * set and add work on gauges; observe works on histograms.  A call of the wrong kind for its
 * family does nothing. */
void llm_series_add(struct llm_series *s, double v);
void llm_series_set(struct llm_series *s, double v);
void llm_series_observe(struct llm_series *s, double v);
/* The current value of a counter or gauge, or a histogram's count (for tests and /health). */
double llm_series_value(const struct llm_series *s);

/* Shorthands: look the series up and update it. */
void llm_metric_add(struct llm_metric *m, const char *const *values, double v);
void llm_metric_set(struct llm_metric *m, const char *const *values, double v);
void llm_metric_observe(struct llm_metric *m, const char *const *values, double v);

/* Append the exposition of every family to out (safe while other threads update). */
enum llm_err llm_metrics_write(struct llm_metrics *r, struct llm_buf *out);

/* The metrics llm-serve keeps, registered together by llm_serve_metrics_register():
 *
 *   llmops_requests_total{model,endpoint,status}   counter: requests answered, by HTTP status
 *   llmops_time_to_first_token_seconds{model}      histogram: arrival to first output token
 *   llmops_time_per_output_token_seconds{model}    histogram: (latency - ttft) / (tokens - 1)
 *   llmops_e2e_request_latency_seconds{model}      histogram: arrival to last byte
 *   llmops_queue_time_seconds{model}               histogram: arrival to the start of work
 *   llmops_prompt_tokens_total{model}              counter
 *   llmops_generation_tokens_total{model}          counter
 *   llmops_requests_running{model}                 gauge: being decoded or proxied now
 *   llmops_requests_waiting{model}                 gauge: queued for a slot
 *   llmops_upstream_requests_total{upstream,status} counter: attempts sent to each upstream
 *   llmops_upstream_retries_total{upstream}        counter: attempts repeated after a failure
 *   llmops_upstream_fallbacks_total{model}         counter: requests moved to a fallback model
 *   llmops_upstream_healthy{upstream}              gauge: 1 when the last probe passed, else 0
 *   llmops_rate_limited_total{reason}              counter: 429s, by llm_limit_verdict_name()
 *                                                  ("rpm", "tpm", "budget", "global_rpm",
 *                                                  "global_tpm", "clients") or "overloaded"
 *                                                  (the engine's queue was full)
 *
 * status is the HTTP status as digits ("200", "429"); for an upstream, "error" when no status
 * came back.  model is the name the server serves (bounded by its configuration), upstream is
 * the configured upstream's name or URL host, never a client's choice.  The histogram bounds
 * are vLLM's for TTFT and TPOT, extended below 1 ms for a gateway; e2e and queue time add
 * sub-second bounds to vLLM's. */
struct llm_serve_metrics {
	struct llm_metric *requests;
	struct llm_metric *ttft;
	struct llm_metric *tpot;
	struct llm_metric *e2e;
	struct llm_metric *queue;
	struct llm_metric *prompt_tokens;
	struct llm_metric *generation_tokens;
	struct llm_metric *running;
	struct llm_metric *waiting;
	struct llm_metric *upstream_requests;
	struct llm_metric *upstream_retries;
	struct llm_metric *upstream_fallbacks;
	struct llm_metric *upstream_healthy;
	struct llm_metric *rate_limited;
};

enum llm_err llm_serve_metrics_register(struct llm_metrics *r, struct llm_serve_metrics *out,
					struct llm_diag *diag);

#endif
