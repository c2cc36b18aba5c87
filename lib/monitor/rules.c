/* Rules files, rule evaluation and the alert state machine (monitor/rules.h). */
#include "config.h"

#include "monitor/rules.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "monitor/event.h"

/* The most a rules file may hold: a rules file is configuration, not data. */
#define RULES_MAX_BYTES (16u << 20)

static const char *const op_names[] = {"gt", "gte", "lt", "lte", "eq", "ne", "in"};
static const char *const level_names[] = {"ok", "nodata", "warning", "critical"};
static const char *const nodata_names[] = {"nodata", "ok", "alerting", "keep"};
static const char *const state_names[] = {"inactive", "pending", "firing"};

const char *llm_rule_op_name(enum llm_rule_op op)
{
	return op_names[op];
}

const char *llm_rule_level_name(enum llm_rule_level l)
{
	return level_names[l];
}

const char *llm_rule_nodata_name(enum llm_rule_nodata m)
{
	return nodata_names[m];
}

const char *llm_alert_state_name(enum llm_alert_state s)
{
	return state_names[s];
}

/* The metrics of monitor/aggregate.h, and the families whose last part is data. */
static const char *const metrics[] = {
    "requests",
    "errors",
    "error_rate",
    "status_2xx",
    "status_3xx",
    "status_4xx",
    "status_5xx",
    "latency_mean",
    "latency_p50",
    "latency_p90",
    "latency_p95",
    "latency_p99",
    "latency_max",
    "ttft_mean",
    "ttft_p50",
    "ttft_p90",
    "ttft_p95",
    "ttft_p99",
    "ttft_max",
    "prompt_tokens",
    "completion_tokens",
    "total_tokens",
    "tokens_per_request",
    "cost",
    "cost_per_request",
    "refusals",
    "refusal_rate",
    "flags",
    "flagged_rate",
    "feedback_count",
    "feedback_mean",
    "feedback_min",
    "feedback_negative",
    "feedback_negative_rate",
    "prompt_chars_mean",
    "output_chars_mean",
    "prompt_chars_p99",
    "output_chars_p99",
    NULL,
};

bool llm_rules_metric_known(const char *name)
{
	for (size_t i = 0; metrics[i]; i++)
		if (!strcmp(name, metrics[i]))
			return true;
	if (!strncmp(name, "status_", 7) && strlen(name) == 10 && name[7] >= '1' &&
	    name[7] <= '5' && name[8] >= '0' && name[8] <= '9' && name[9] >= '0' && name[9] <= '9')
		return true;
	if (!strncmp(name, "errors_by_code.", 15) && name[15])
		return true;
	if (!strncmp(name, "flags.", 6) && name[6])
		return true;
	return false;
}

void llm_rules_format_duration(int64_t ms, char *out, size_t outsz)
{
	static const struct {
		int64_t ms;
		const char *unit;
	} units[] = {{604800000, "w"}, {86400000, "d"}, {3600000, "h"},
		     {60000, "m"},     {1000, "s"},	{1, "ms"}};
	size_t len = 0;
	out[0] = '\0';
	if (ms <= 0) {
		snprintf(out, outsz, "0s");
		return;
	}
	for (size_t i = 0; i < sizeof units / sizeof *units && ms; i++) {
		if (ms < units[i].ms)
			continue;
		int k = snprintf(out + len, outsz - len, "%" PRId64 "%s", ms / units[i].ms,
				 units[i].unit);
		if (k < 0 || (size_t)k >= outsz - len)
			return;
		len += (size_t)k;
		ms %= units[i].ms;
	}
}

void llm_rule_threshold_format(const struct llm_rule_threshold *t, char *out, size_t outsz)
{
	if (!t || !t->set) {
		snprintf(out, outsz, "-");
		return;
	}
	if (t->n == 1 && t->v) {
		snprintf(out, outsz, "%.10g", t->v[0]);
		return;
	}
	size_t len = 0;
	int k = snprintf(out, outsz, "[");
	len = (size_t)k;
	for (size_t i = 0; i < t->n && len < outsz; i++) {
		k = snprintf(out + len, outsz - len, "%s%.10g", i ? ", " : "", t->v[i]);
		if (k < 0)
			return;
		len += (size_t)k;
	}
	if (len < outsz)
		snprintf(out + len, outsz - len, "]");
}

void llm_rules_format_time(int64_t ms, char *out, size_t outsz)
{
	time_t s = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
	int frac = (int)(ms - (int64_t)s * 1000);
	struct tm tm;
	if (!gmtime_r(&s, &tm)) {
		snprintf(out, outsz, "1970-01-01T00:00:00.000Z");
		return;
	}
	snprintf(out, outsz, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
		 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, frac);
}

/* --- parsing --- */

struct ctx {
	const char *file;
	struct llm_diag *diag;
};

__attribute__((format(printf, 3, 4))) static enum llm_err bad(struct ctx *c, const char *where,
							      const char *fmt, ...)
{
	char msg[LLM_DIAG_MSG_MAX];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	return llm_diag_set(c->diag, LLM_ERR_FORMAT, c->file, 0, "%s%s%s", where ? where : "",
			    where ? ": " : "", msg);
}

static char *dup_str(const char *s)
{
	return s ? strdup(s) : NULL;
}

/* Check that obj has only the members in allowed (NULL-terminated). */
static enum llm_err only_members(struct ctx *c, const char *where, const json_t *obj,
				 const char *const *allowed)
{
	const char *key;
	json_t *v;
	json_object_foreach((json_t *)obj, key, v)
	{
		bool ok = false;
		for (size_t i = 0; allowed[i] && !ok; i++)
			ok = !strcmp(key, allowed[i]);
		if (!ok)
			return bad(c, where, "unknown member '%s'", key);
	}
	return LLM_OK;
}

static enum llm_err get_duration(struct ctx *c, const char *where, const json_t *obj,
				 const char *name, int64_t *ms, bool *given)
{
	json_t *v = json_object_get(obj, name);
	if (given)
		*given = v != NULL;
	if (!v)
		return LLM_OK;
	if (!json_is_string(v))
		return bad(c, where, "%s must be a duration such as \"5m\"", name);
	int64_t t;
	if (!llm_mon_parse_duration(json_string_value(v), &t) || t < 0)
		return bad(c, where, "%s: '%s' is not a duration (500ms, 30s, 5m, 1h, 1d, 1w)",
			   name, json_string_value(v));
	*ms = t;
	return LLM_OK;
}

static enum llm_err get_threshold(struct ctx *c, const char *where, const json_t *obj,
				  const char *name, enum llm_rule_op op,
				  struct llm_rule_threshold *t)
{
	json_t *v = json_object_get(obj, name);
	if (!v)
		return LLM_OK;
	if (op == LLM_RULE_IN) {
		if (!json_is_array(v) || !json_array_size(v))
			return bad(c, where, "%s: op in takes a non-empty array of numbers", name);
	} else if (!json_is_number(v)) {
		return bad(c, where, "%s must be a number (op %s)", name, op_names[op]);
	}
	size_t n = json_is_array(v) ? json_array_size(v) : 1;
	t->v = calloc(n, sizeof *t->v);
	if (!t->v)
		return llm_diag_set(c->diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	t->n = n;
	t->set = true;
	for (size_t i = 0; i < n; i++) {
		json_t *x = json_is_array(v) ? json_array_get(v, i) : v;
		if (!json_is_number(x))
			return bad(c, where, "%s: item %zu is not a number", name, i);
		t->v[i] = json_number_value(x);
	}
	return LLM_OK;
}

static enum llm_err get_string_object(struct ctx *c, const char *where, const json_t *obj,
				      const char *name, json_t **out)
{
	json_t *v = json_object_get(obj, name);
	if (!v) {
		*out = json_object();
		return *out ? LLM_OK
			    : llm_diag_set(c->diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	}
	if (!json_is_object(v))
		return bad(c, where, "%s must be an object of strings", name);
	const char *key;
	json_t *x;
	json_object_foreach(v, key, x)
	{
		if (!json_is_string(x))
			return bad(c, where, "%s.%s must be a string", name, key);
	}
	*out = json_deep_copy(v);
	return LLM_OK;
}

/* A label name as Prometheus allows it: [a-zA-Z_][a-zA-Z0-9_]*. */
static bool label_name_ok(const char *s)
{
	if (!*s || (*s >= '0' && *s <= '9'))
		return false;
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '_'))
			return false;
	return true;
}

static enum llm_err parse_rule(struct ctx *c, const json_t *j, size_t idx, struct llm_rule *r,
			       const struct llm_rules *all)
{
	static const char *const allowed[] = {
	    "name",	"metric",  "op",       "value",	      "warning", "critical",
	    "severity", "window",  "by",       "where",	      "labels",	 "annotations",
	    "for",	"no_data", "renotify", "description", NULL};
	char where[160];
	snprintf(where, sizeof where, "rules[%zu]", idx);
	if (!json_is_object(j))
		return bad(c, where, "a rule must be an object");
	json_t *name = json_object_get(j, "name");
	if (!json_is_string(name) || !*json_string_value(name))
		return bad(c, where, "a rule needs a name (a non-empty string)");
	snprintf(where, sizeof where, "rules[%zu] (%s)", idx, json_string_value(name));
	for (size_t i = 0; i < idx; i++)
		if (!strcmp(all->rules[i].name, json_string_value(name)))
			return bad(c, where, "a rule of that name comes before (rules[%zu])", i);
	enum llm_err e = only_members(c, where, j, allowed);
	if (e)
		return e;
	r->name = dup_str(json_string_value(name));
	json_t *metric = json_object_get(j, "metric");
	if (!json_is_string(metric))
		return bad(c, where, "metric must be given, as a string");
	if (!llm_rules_metric_known(json_string_value(metric)))
		return bad(c, where, "unknown metric '%s' (llmops-rules(5) lists them)",
			   json_string_value(metric));
	r->metric = dup_str(json_string_value(metric));
	json_t *op = json_object_get(j, "op");
	if (!json_is_string(op))
		return bad(c, where, "op must be given: gt, gte, lt, lte, eq, ne or in");
	size_t k;
	for (k = 0; k < sizeof op_names / sizeof *op_names; k++)
		if (!strcmp(json_string_value(op), op_names[k]))
			break;
	if (k == sizeof op_names / sizeof *op_names)
		return bad(c, where, "unknown op '%s' (gt, gte, lt, lte, eq, ne, in)",
			   json_string_value(op));
	r->op = (enum llm_rule_op)k;
	if ((e = get_threshold(c, where, j, "value", r->op, &r->value)) ||
	    (e = get_threshold(c, where, j, "warning", r->op, &r->warning)) ||
	    (e = get_threshold(c, where, j, "critical", r->op, &r->critical)))
		return e;
	if (r->value.set && (r->warning.set || r->critical.set))
		return bad(c, where, "give value, or warning and critical, not both");
	if (!r->value.set && !r->warning.set && !r->critical.set)
		return bad(c, where, "no threshold: give value, or warning and/or critical");
	json_t *sev = json_object_get(j, "severity");
	if (sev) {
		if (!json_is_string(sev) || (strcmp(json_string_value(sev), "warning") &&
					     strcmp(json_string_value(sev), "critical")))
			return bad(c, where, "severity must be \"warning\" or \"critical\"");
		if (!r->value.set)
			return bad(c, where,
				   "severity goes with value (warning and critical "
				   "name their own)");
	}
	r->severity = dup_str(sev ? json_string_value(sev) : "critical");
	json_t *win = json_object_get(j, "window");
	if (win && !json_is_string(win))
		return bad(c, where, "window must be a duration such as \"5m\", or \"all\"");
	r->window = dup_str(win ? json_string_value(win) : "all");
	if (strcmp(r->window, "all")) {
		if (!llm_mon_parse_duration(r->window, &r->window_ms) || r->window_ms <= 0)
			return bad(c, where, "window: '%s' is not a duration or \"all\"",
				   r->window);
	}
	json_t *by = json_object_get(j, "by");
	size_t nby = 0;
	if (by) {
		if (json_is_string(by))
			nby = 1;
		else if (json_is_array(by))
			nby = json_array_size(by);
		else
			return bad(c, where, "by must be an array of field names");
	}
	r->by = calloc(nby + 1, sizeof *r->by);
	if (!r->by)
		return llm_diag_set(c->diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
	for (size_t i = 0; i < nby; i++) {
		json_t *x = json_is_array(by) ? json_array_get(by, i) : by;
		if (!json_is_string(x) || !label_name_ok(json_string_value(x)))
			return bad(c, where,
				   "by: item %zu must be a field name ([A-Za-z_][A-Za-z0-9_]*)", i);
		for (size_t m = 0; m < i; m++)
			if (!strcmp(r->by[m], json_string_value(x)))
				return bad(c, where, "by: '%s' twice", r->by[m]);
		if (!strcmp(json_string_value(x), "alertname") ||
		    !strcmp(json_string_value(x), "severity"))
			return bad(c, where, "by: '%s' is a label of its own",
				   json_string_value(x));
		r->by[i] = dup_str(json_string_value(x));
		r->nby++;
	}
	json_t *wh = json_object_get(j, "where");
	if (wh) {
		if (!json_is_object(wh))
			return bad(c, where, "where must be an object {\"field\": \"value\"}");
		size_t n = json_object_size(wh);
		r->where_keys = calloc(n + 1, sizeof *r->where_keys);
		r->where_vals = calloc(n + 1, sizeof *r->where_vals);
		if (!r->where_keys || !r->where_vals)
			return llm_diag_set(c->diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		const char *key;
		json_t *x;
		json_object_foreach(wh, key, x)
		{
			char num[64];
			const char *val;
			if (json_is_string(x)) {
				val = json_string_value(x);
			} else if (json_is_integer(x)) {
				snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT,
					 json_integer_value(x));
				val = num;
			} else {
				return bad(c, where, "where.%s must be a string or an integer",
					   key);
			}
			if (!label_name_ok(key))
				return bad(c, where, "where: '%s' is not a field name", key);
			for (size_t m = 0; m < r->nby; m++)
				if (!strcmp(r->by[m], key))
					return bad(c, where, "where.%s: the field is also in by",
						   key);
			r->where_keys[r->nwhere] = dup_str(key);
			r->where_vals[r->nwhere] = dup_str(val);
			r->nwhere++;
		}
	}
	if ((e = get_string_object(c, where, j, "labels", &r->labels)) ||
	    (e = get_string_object(c, where, j, "annotations", &r->annotations)))
		return e;
	const char *lk;
	json_t *lv;
	json_object_foreach(r->labels, lk, lv)
	{
		if (!label_name_ok(lk))
			return bad(c, where, "labels: '%s' is not a label name", lk);
		if (!strcmp(lk, "alertname") || !strcmp(lk, "severity"))
			return bad(c, where, "labels: '%s' is set by the rule itself", lk);
		for (size_t m = 0; m < r->nby; m++)
			if (!strcmp(r->by[m], lk))
				return bad(c, where, "labels: '%s' is a group key (by)", lk);
	}
	json_t *desc = json_object_get(j, "description");
	if (desc && !json_is_string(desc))
		return bad(c, where, "description must be a string");
	if (desc && !json_object_get(r->annotations, "description"))
		json_object_set(r->annotations, "description", desc);
	if ((e = get_duration(c, where, j, "for", &r->for_ms, NULL)) ||
	    (e = get_duration(c, where, j, "renotify", &r->renotify_ms, NULL)))
		return e;
	json_t *nd = json_object_get(j, "no_data");
	r->no_data = LLM_NODATA_NODATA;
	if (nd) {
		if (!json_is_string(nd))
			return bad(c, where, "no_data must be ok, alerting, nodata or keep");
		for (k = 0; k < sizeof nodata_names / sizeof *nodata_names; k++)
			if (!strcmp(json_string_value(nd), nodata_names[k]))
				break;
		if (k == sizeof nodata_names / sizeof *nodata_names)
			return bad(c, where,
				   "no_data: unknown mode '%s' (ok, alerting, nodata, keep)",
				   json_string_value(nd));
		r->no_data = (enum llm_rule_nodata)k;
	}
	return LLM_OK;
}

static enum llm_err parse_target(struct ctx *c, const json_t *j, size_t idx,
				 struct llm_notify_target *t)
{
	static const char *const allowed[] = {"name",	 "type",    "url", "secret_env", "headers",
					      "retries", "timeout", "ttl", NULL};
	static const char *const types[] = {"webhook", "slack", "alertmanager"};
	char where[160];
	snprintf(where, sizeof where, "notify[%zu]", idx);
	if (!json_is_object(j))
		return bad(c, where, "a notify target must be an object");
	enum llm_err e = only_members(c, where, j, allowed);
	if (e)
		return e;
	json_t *type = json_object_get(j, "type");
	if (!json_is_string(type))
		return bad(c, where, "type must be webhook, slack or alertmanager");
	size_t k;
	for (k = 0; k < 3; k++)
		if (!strcmp(json_string_value(type), types[k]))
			break;
	if (k == 3)
		return bad(c, where, "unknown type '%s' (webhook, slack, alertmanager)",
			   json_string_value(type));
	t->type = (enum llm_notify_type)k;
	json_t *name = json_object_get(j, "name");
	if (name && (!json_is_string(name) || !*json_string_value(name)))
		return bad(c, where, "name must be a non-empty string");
	char defname[64];
	snprintf(defname, sizeof defname, "%s[%zu]", types[k], idx);
	t->name = dup_str(name ? json_string_value(name) : defname);
	json_t *url = json_object_get(j, "url");
	if (!json_is_string(url) || (strncmp(json_string_value(url), "http://", 7) &&
				     strncmp(json_string_value(url), "https://", 8)))
		return bad(c, where, "url must be an http:// or https:// URL");
	if (strpbrk(json_string_value(url), " \r\n\t"))
		return bad(c, where, "url holds white space");
	t->url = dup_str(json_string_value(url));
	json_t *sec = json_object_get(j, "secret_env");
	if (sec) {
		if (!json_is_string(sec) || !label_name_ok(json_string_value(sec)))
			return bad(c, where, "secret_env must name an environment variable");
		t->secret_env = dup_str(json_string_value(sec));
	}
	if ((e = get_string_object(c, where, j, "headers", &t->headers)))
		return e;
	const char *hk;
	json_t *hv;
	json_object_foreach(t->headers, hk, hv)
	{
		if (!*hk || strpbrk(hk, ": \r\n\t") || strpbrk(json_string_value(hv), "\r\n"))
			return bad(c, where, "headers: '%s' is not a header a request can carry",
				   hk);
	}
	t->retries = 3;
	json_t *r = json_object_get(j, "retries");
	if (r) {
		if (!json_is_integer(r) || json_integer_value(r) < 0 || json_integer_value(r) > 20)
			return bad(c, where, "retries must be an integer from 0 to 20");
		t->retries = (int)json_integer_value(r);
	}
	t->timeout_ms = 10000;
	t->ttl_ms = 3600000;
	bool given;
	if ((e = get_duration(c, where, j, "timeout", &t->timeout_ms, &given)))
		return e;
	if (given && t->timeout_ms <= 0)
		return bad(c, where, "timeout must be above zero");
	if ((e = get_duration(c, where, j, "ttl", &t->ttl_ms, &given)))
		return e;
	if (given && t->type != LLM_NOTIFY_ALERTMANAGER)
		return bad(c, where, "ttl is for alertmanager targets");
	if (given && t->ttl_ms <= 0)
		return bad(c, where, "ttl must be above zero");
	return LLM_OK;
}

enum llm_err llm_rules_parse(struct llm_rules **out, const char *text, size_t n, const char *name,
			     struct llm_diag *diag)
{
	struct ctx c = {name, diag};
	*out = NULL;
	json_error_t jerr;
	json_t *root = json_loadb(text, n, JSON_REJECT_DUPLICATES, &jerr);
	if (!root)
		return llm_diag_set(diag, LLM_ERR_JSON, name, jerr.line > 0 ? jerr.line : 0, "%s",
				    jerr.text);
	struct llm_rules *r = calloc(1, sizeof *r);
	enum llm_err e = LLM_OK;
	if (!r || !(r->path = strdup(name))) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	static const char *const allowed[] = {"rules", "notify", "external_url", NULL};
	if (!json_is_object(root)) {
		e = bad(&c, NULL,
			"a rules file is a JSON object {\"rules\": [...], \"notify\": [...]}");
		goto done;
	}
	if ((e = only_members(&c, NULL, root, allowed)))
		goto done;
	json_t *rules = json_object_get(root, "rules");
	if (!json_is_array(rules) || !json_array_size(rules)) {
		e = bad(&c, NULL, "rules must be a non-empty array");
		goto done;
	}
	r->rules = calloc(json_array_size(rules), sizeof *r->rules);
	if (!r->rules) {
		e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
		goto done;
	}
	for (size_t i = 0; i < json_array_size(rules); i++) {
		r->nrules++;
		if ((e = parse_rule(&c, json_array_get(rules, i), i, &r->rules[i], r)))
			goto done;
	}
	json_t *notify = json_object_get(root, "notify");
	if (notify) {
		if (!json_is_array(notify)) {
			e = bad(&c, NULL, "notify must be an array of targets");
			goto done;
		}
		size_t nt = json_array_size(notify);
		r->targets = calloc(nt ? nt : 1, sizeof *r->targets);
		if (!r->targets) {
			e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
			goto done;
		}
		for (size_t i = 0; i < nt; i++) {
			r->ntargets++;
			if ((e = parse_target(&c, json_array_get(notify, i), i, &r->targets[i])))
				goto done;
			for (size_t m = 0; m < i; m++)
				if (!strcmp(r->targets[m].name, r->targets[i].name)) {
					e = bad(&c, NULL, "notify[%zu]: name '%s' is taken", i,
						r->targets[i].name);
					goto done;
				}
		}
	}
	json_t *ext = json_object_get(root, "external_url");
	if (ext) {
		if (!json_is_string(ext)) {
			e = bad(&c, NULL, "external_url must be a string");
			goto done;
		}
		r->external_url = dup_str(json_string_value(ext));
	}
done:
	json_decref(root);
	if (e) {
		llm_rules_free(r);
		return e;
	}
	*out = r;
	return LLM_OK;
}

enum llm_err llm_rules_load(struct llm_rules **out, const char *path, struct llm_diag *diag)
{
	*out = NULL;
	FILE *fp = fopen(path, "rb");
	if (!fp)
		return llm_diag_set(diag, errno == ENOENT ? LLM_ERR_NOT_FOUND : LLM_ERR_IO, path, 0,
				    "cannot open: %s", strerror(errno));
	char *buf = NULL;
	size_t len = 0, cap = 0;
	enum llm_err e = LLM_OK;
	for (;;) {
		if (len == cap) {
			size_t ncap = cap ? cap * 2 : 8192;
			if (ncap > RULES_MAX_BYTES + 1)
				ncap = RULES_MAX_BYTES + 1;
			if (ncap == cap) {
				e = llm_diag_set(diag, LLM_ERR_TOO_BIG, path, 0,
						 "a rules file holds at most %u bytes",
						 RULES_MAX_BYTES);
				break;
			}
			char *nb = realloc(buf, ncap);
			if (!nb) {
				e = llm_diag_set(diag, LLM_ERR_NOMEM, NULL, 0, "out of memory");
				break;
			}
			buf = nb;
			cap = ncap;
		}
		size_t k = fread(buf + len, 1, cap - len, fp);
		len += k;
		if (k == 0) {
			if (ferror(fp))
				e = llm_diag_set(diag, LLM_ERR_IO, path, 0, "read error: %s",
						 strerror(errno));
			break;
		}
	}
	fclose(fp);
	if (!e)
		e = llm_rules_parse(out, buf ? buf : "", len, path, diag);
	free(buf);
	return e;
}

static void threshold_free(struct llm_rule_threshold *t)
{
	free(t->v);
}

static void strv_free(char **v)
{
	if (!v)
		return;
	for (size_t i = 0; v[i]; i++)
		free(v[i]);
	free(v);
}

void llm_rules_free(struct llm_rules *r)
{
	if (!r)
		return;
	for (size_t i = 0; i < r->nrules; i++) {
		struct llm_rule *x = &r->rules[i];
		free(x->name);
		free(x->metric);
		threshold_free(&x->value);
		threshold_free(&x->warning);
		threshold_free(&x->critical);
		free(x->severity);
		free(x->window);
		strv_free(x->by);
		strv_free(x->where_keys);
		strv_free(x->where_vals);
		json_decref(x->labels);
		json_decref(x->annotations);
	}
	for (size_t i = 0; i < r->ntargets; i++) {
		free(r->targets[i].name);
		free(r->targets[i].url);
		free(r->targets[i].secret_env);
		json_decref(r->targets[i].headers);
	}
	free(r->rules);
	free(r->targets);
	free(r->external_url);
	free(r->path);
	free(r);
}

/* --- evaluation --- */

static bool near(double a, double b)
{
	if (a == b)
		return true;
	double scale = fmax(fabs(a), fabs(b));
	return fabs(a - b) <= 1e-9 * scale;
}

bool llm_rule_op_holds(enum llm_rule_op op, double v, const struct llm_rule_threshold *t)
{
	if (isnan(v) || !t->set || !t->n)
		return false;
	double x = t->v[0];
	switch (op) {
	case LLM_RULE_GT:
		return v > x;
	case LLM_RULE_GTE:
		return v >= x;
	case LLM_RULE_LT:
		return v < x;
	case LLM_RULE_LTE:
		return v <= x;
	case LLM_RULE_EQ:
		return near(v, x);
	case LLM_RULE_NE:
		return !near(v, x);
	case LLM_RULE_IN:
		for (size_t i = 0; i < t->n; i++)
			if (near(v, t->v[i]))
				return true;
		return false;
	}
	return false;
}

void llm_rule_eval(const struct llm_rule *r, llm_rule_get_fn get, void *ctx,
		   struct llm_rule_result *res)
{
	memset(res, 0, sizeof *res);
	double v = 0;
	res->have_value = get(ctx, r->metric, &v) && !isnan(v);
	res->value = res->have_value ? v : 0;
	if (!res->have_value) {
		res->level = LLM_LEVEL_NODATA;
		res->threshold = r->value.set	   ? &r->value
				 : r->critical.set ? &r->critical
						   : &r->warning;
		return;
	}
	if (r->value.set) {
		res->threshold = &r->value;
		res->level = llm_rule_op_holds(r->op, v, &r->value) ? LLM_LEVEL_OK
			     : !strcmp(r->severity, "warning")	    ? LLM_LEVEL_WARNING
								    : LLM_LEVEL_CRITICAL;
		return;
	}
	if (r->critical.set && !llm_rule_op_holds(r->op, v, &r->critical)) {
		res->threshold = &r->critical;
		res->level = LLM_LEVEL_CRITICAL;
	} else if (r->warning.set && !llm_rule_op_holds(r->op, v, &r->warning)) {
		res->threshold = &r->warning;
		res->level = LLM_LEVEL_WARNING;
	} else {
		res->threshold = r->warning.set ? &r->warning : &r->critical;
		res->level = LLM_LEVEL_OK;
	}
}

/* The rule's highest level: what "alerting" on no data fires at. */
static enum llm_rule_level top_level(const struct llm_rule *r)
{
	if (r->value.set)
		return !strcmp(r->severity, "warning") ? LLM_LEVEL_WARNING : LLM_LEVEL_CRITICAL;
	return r->critical.set ? LLM_LEVEL_CRITICAL : LLM_LEVEL_WARNING;
}

enum llm_alert_action llm_alert_step(const struct llm_rule *r, struct llm_alert *a,
				     const struct llm_rule_result *res, int64_t now_ms,
				     enum llm_rule_level *old_level, int64_t *old_fired_at)
{
	enum llm_rule_level lv = res ? res->level : LLM_LEVEL_NODATA;
	if (res && res->have_value) {
		a->have_value = true;
		a->value = res->value;
	} else {
		a->have_value = false;
	}
	if (lv == LLM_LEVEL_NODATA) {
		switch (r->no_data) {
		case LLM_NODATA_OK:
			lv = LLM_LEVEL_OK;
			break;
		case LLM_NODATA_ALERTING:
			lv = top_level(r);
			break;
		case LLM_NODATA_KEEP:
			/* The last state stands, untouched: no data says nothing new. */
			return LLM_ACTION_NONE;
		case LLM_NODATA_NODATA:
			break;
		}
	}
	*old_level = a->level;
	*old_fired_at = a->fired_at;
	if (lv == LLM_LEVEL_OK) {
		bool was_firing = a->state == LLM_ALERT_FIRING;
		a->state = LLM_ALERT_INACTIVE;
		a->level = LLM_LEVEL_OK;
		a->active_since = 0;
		if (was_firing) {
			a->notified_at = now_ms;
			return LLM_ACTION_RESOLVE;
		}
		return LLM_ACTION_NONE;
	}
	if (a->state == LLM_ALERT_INACTIVE) {
		a->state = LLM_ALERT_PENDING;
		a->active_since = now_ms;
	}
	if (a->state == LLM_ALERT_PENDING) {
		a->level = lv;
		if (now_ms - a->active_since < r->for_ms)
			return LLM_ACTION_NONE;
		a->state = LLM_ALERT_FIRING;
		a->fired_at = now_ms;
		a->notified_at = now_ms;
		return LLM_ACTION_FIRE;
	}
	/* Firing. */
	if (lv != a->level) {
		a->level = lv;
		a->fired_at = now_ms;
		a->notified_at = now_ms;
		return LLM_ACTION_ESCALATE;
	}
	if (r->renotify_ms > 0 && now_ms - a->notified_at >= r->renotify_ms) {
		a->notified_at = now_ms;
		return LLM_ACTION_RENOTIFY;
	}
	return LLM_ACTION_NONE;
}

static json_t *time_json(int64_t ms)
{
	char t[40];
	if (!ms)
		return json_null();
	llm_rules_format_time(ms, t, sizeof t);
	return json_string(t);
}

json_t *llm_alert_to_json(const struct llm_alert *a)
{
	json_t *j = json_object();
	if (!j)
		return NULL;
	json_object_set_new(j, "state", json_string(state_names[a->state]));
	json_object_set_new(j, "level", json_string(level_names[a->level]));
	json_object_set_new(j, "active_since", time_json(a->active_since));
	json_object_set_new(j, "fired_at", time_json(a->fired_at));
	json_object_set_new(j, "notified_at", time_json(a->notified_at));
	json_object_set_new(
	    j, "value", a->have_value && isfinite(a->value) ? json_real(a->value) : json_null());
	return j;
}

static bool time_from(const json_t *v, int64_t *ms)
{
	if (!v || json_is_null(v)) {
		*ms = 0;
		return true;
	}
	return json_is_string(v) &&
	       llm_mon_parse_time(json_string_value(v), json_string_length(v), ms);
}

static bool name_from(const json_t *v, const char *const *names, size_t n, int *out)
{
	if (!json_is_string(v))
		return false;
	for (size_t i = 0; i < n; i++)
		if (!strcmp(json_string_value(v), names[i])) {
			*out = (int)i;
			return true;
		}
	return false;
}

enum llm_err llm_alert_from_json(const json_t *j, struct llm_alert *a, struct llm_diag *diag)
{
	memset(a, 0, sizeof *a);
	int st, lv;
	if (!json_is_object(j) || !name_from(json_object_get(j, "state"), state_names, 3, &st) ||
	    !name_from(json_object_get(j, "level"), level_names, 4, &lv) ||
	    !time_from(json_object_get(j, "active_since"), &a->active_since) ||
	    !time_from(json_object_get(j, "fired_at"), &a->fired_at) ||
	    !time_from(json_object_get(j, "notified_at"), &a->notified_at))
		return llm_diag_set(diag, LLM_ERR_FORMAT, NULL, 0, "not an alert state");
	a->state = (enum llm_alert_state)st;
	a->level = (enum llm_rule_level)lv;
	json_t *v = json_object_get(j, "value");
	if (json_is_number(v)) {
		a->have_value = true;
		a->value = json_number_value(v);
	}
	return LLM_OK;
}
