/* Rules over a monitoring stream's aggregates, and the state machine of the alerts they raise:
 * what `llm-monitor check` holds a log against and what `llm-monitor alert` keeps from one run
 * to the next.  The file format is llmops-rules(5).
 *
 * A rule is a condition that must hold: `metric op threshold`, on the aggregates
 * (monitor/aggregate.h) of a window, per group.  Evaluation here knows nothing of aggregates:
 * it asks a callback for a metric's value, so anything that can name a number can be held to
 * a rule.  A rule gives one threshold ("value") or two ("warning", "critical", each checked
 * with the same op): the critical condition failing means critical, else the warning one
 * failing means warning.  A metric the callback does not have is no data, and the rule's
 * no_data mode says what that means (Grafana's: ok, alerting, nodata, keep).
 *
 * The alert state of one (rule, group) moves as Prometheus's does: inactive; pending while the
 * condition fails for less than the rule's "for"; firing once it has failed that long without a
 * break; back to inactive (a resolve) when it holds.  llm_alert_step() is one evaluation: it
 * moves the state and says what to notify.  Times are Unix milliseconds given by the caller,
 * so a fake clock runs it the same.  Nothing here prints or exits. */
#ifndef LLM_MONITOR_RULES_H
#define LLM_MONITOR_RULES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "core/err.h"

enum llm_rule_op {
	LLM_RULE_GT,
	LLM_RULE_GTE,
	LLM_RULE_LT,
	LLM_RULE_LTE,
	LLM_RULE_EQ,
	LLM_RULE_NE,
	LLM_RULE_IN
};

/* What no data means (Grafana's "no data" modes). */
enum llm_rule_nodata {
	LLM_NODATA_NODATA, /* a state of its own: level nodata, notified like an alert (default) */
	LLM_NODATA_OK,	   /* the rule holds */
	LLM_NODATA_ALERTING, /* the rule fails at its highest level */
	LLM_NODATA_KEEP,     /* whatever the state was before (inactive when none) */
};

/* The outcome of one evaluation, worst last. */
enum llm_rule_level { LLM_LEVEL_OK, LLM_LEVEL_NODATA, LLM_LEVEL_WARNING, LLM_LEVEL_CRITICAL };

/* A threshold: one number, or the list of an "in". */
struct llm_rule_threshold {
	bool set;
	double *v;
	size_t n;
};

struct llm_rule {
	char *name;
	char *metric;
	enum llm_rule_op op;
	struct llm_rule_threshold value, warning, critical; /* value, or warning and/or critical */
	char *severity; /* the level a "value" rule fails at: "critical" (default) or "warning" */
	char *window;	/* as written ("5m", "all") */
	int64_t window_ms; /* 0: the whole input ("all", the default) */
	char **by;	   /* group keys (NULL-terminated) */
	size_t nby;
	char **where_keys, **where_vals; /* only groups whose key equals the value */
	size_t nwhere;
	json_t *labels, *annotations; /* objects of strings (never NULL) */
	int64_t for_ms;
	int64_t renotify_ms; /* 0: never */
	enum llm_rule_nodata no_data;
};

enum llm_notify_type { LLM_NOTIFY_WEBHOOK, LLM_NOTIFY_SLACK, LLM_NOTIFY_ALERTMANAGER };

struct llm_notify_target {
	char *name; /* "name", else "TYPE[INDEX]" */
	enum llm_notify_type type;
	char *url;
	char *secret_env;   /* NULL: unsigned */
	json_t *headers;    /* extra request headers: object of strings (never NULL) */
	int retries;	    /* attempts after the first (default 3) */
	int64_t timeout_ms; /* per attempt (default 10 s) */
	int64_t ttl_ms;	    /* alertmanager: how long a firing alert lasts unless sent again (1h) */
};

struct llm_rules {
	char *path;
	struct llm_rule *rules;
	size_t nrules;
	struct llm_notify_target *targets;
	size_t ntargets;
	char *external_url; /* "external_url": a link to where the alerts come from, or NULL */
};

/* Read and check a rules file (path) or text.  Every fault is LLM_ERR_FORMAT (LLM_ERR_JSON for
 * bad JSON, with its line) naming the file and the rule ("rules[2] (error-rate): unknown op
 * 'less'"); an unreadable file is LLM_ERR_IO or LLM_ERR_NOT_FOUND. */
enum llm_err llm_rules_load(struct llm_rules **out, const char *path, struct llm_diag *diag);
enum llm_err llm_rules_parse(struct llm_rules **out, const char *text, size_t n, const char *name,
			     struct llm_diag *diag);
void llm_rules_free(struct llm_rules *r);

/* Whether name is a metric that aggregates can have (monitor/aggregate.h). */
bool llm_rules_metric_known(const char *name);
const char *llm_rule_op_name(enum llm_rule_op op);
const char *llm_rule_level_name(enum llm_rule_level l);
const char *llm_rule_nodata_name(enum llm_rule_nodata m);
/* "5m" for 300000, "1h30m" ...; "0s" for 0. */
void llm_rules_format_duration(int64_t ms, char *out, size_t outsz);
/* A threshold as text: "0.05", "[200, 201]". */
void llm_rule_threshold_format(const struct llm_rule_threshold *t, char *out, size_t outsz);

/* Whether `v op t` holds.  eq and in compare within a relative 1e-9 (a rate that is 0.1
 * computed as 1/10 equals 0.1); NaN never holds. */
bool llm_rule_op_holds(enum llm_rule_op op, double v, const struct llm_rule_threshold *t);

/* Looks a metric up; false when there is no value. */
typedef bool (*llm_rule_get_fn)(void *ctx, const char *metric, double *v);

struct llm_rule_result {
	bool have_value;
	double value;
	enum llm_rule_level level; /* before the no_data mode: LLM_LEVEL_NODATA when no value */
	const struct llm_rule_threshold *threshold; /* the one that failed, or the lowest checked */
};

/* Evaluate r once.  A "value" rule fails at its severity. */
void llm_rule_eval(const struct llm_rule *r, llm_rule_get_fn get, void *ctx,
		   struct llm_rule_result *res);

/* --- alert state --- */

enum llm_alert_state { LLM_ALERT_INACTIVE, LLM_ALERT_PENDING, LLM_ALERT_FIRING };

struct llm_alert {
	enum llm_alert_state state;
	enum llm_rule_level level; /* while pending or firing */
	int64_t active_since;	   /* when the condition started failing (pending began) */
	int64_t fired_at;	   /* when it started firing at this level (startsAt) */
	int64_t notified_at;	   /* the last notification */
	bool have_value;
	double value; /* the last evaluation's */
};

enum llm_alert_action {
	LLM_ACTION_NONE,
	LLM_ACTION_FIRE,     /* newly firing */
	LLM_ACTION_RENOTIFY, /* still firing, renotify interval passed */
	LLM_ACTION_RESOLVE,  /* was firing, holds again (or no data under "ok") */
	LLM_ACTION_ESCALATE, /* firing at another level: resolve the old level, fire the new one */
};

/* One evaluation at now: a moves, and the return says what to tell.  For ESCALATE and RESOLVE
 * *old_level is the level that ends (and *old_fired_at its start).  res may be NULL: the group
 * has no data at all (it was firing before and has vanished from the input). */
enum llm_alert_action llm_alert_step(const struct llm_rule *r, struct llm_alert *a,
				     const struct llm_rule_result *res, int64_t now_ms,
				     enum llm_rule_level *old_level, int64_t *old_fired_at);

/* The state as JSON ({"state","level","active_since","fired_at","notified_at","value"}, times
 * in RFC 3339) and back; from_json fails with LLM_ERR_FORMAT on what to_json cannot write. */
json_t *llm_alert_to_json(const struct llm_alert *a);
enum llm_err llm_alert_from_json(const json_t *j, struct llm_alert *a, struct llm_diag *diag);
const char *llm_alert_state_name(enum llm_alert_state s);

/* RFC 3339 UTC with milliseconds ("2026-01-02T03:04:05.678Z") into out (32 bytes). */
void llm_rules_format_time(int64_t ms, char *out, size_t outsz);

#endif
