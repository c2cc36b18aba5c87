/* Unit tests for lib/monitor/rules and lib/monitor/notify: rules files refused with the rule
 * named, every op, warning and critical levels, the no-data modes, the alert state machine
 * (for durations across evaluations, resolve, renotify, escalation), the state's JSON round
 * trip, HMAC-SHA256 against RFC 4231's test vectors, the signature header, the three body
 * shapes, and the outbox. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/hash.h"
#include "monitor/notify.h"
#include "monitor/rules.h"

static struct llm_rules *parse_ok(const char *text)
{
	struct llm_rules *r = NULL;
	struct llm_diag d = {0};
	enum llm_err e = llm_rules_parse(&r, text, strlen(text), "rules.json", &d);
	if (e)
		fail_msg("unexpected error: %s", d.msg);
	return r;
}

/* The text must be refused with a message containing want (and naming the file). */
static void parse_bad(const char *text, const char *want)
{
	struct llm_rules *r = NULL;
	struct llm_diag d = {0};
	enum llm_err e = llm_rules_parse(&r, text, strlen(text), "rules.json", &d);
	assert_null(r);
	assert_true(e == LLM_ERR_FORMAT || e == LLM_ERR_JSON);
	assert_string_equal(d.file, "rules.json");
	if (!strstr(d.msg, want))
		fail_msg("message '%s' lacks '%s'", d.msg, want);
}

static void a_full_rules_file_is_read(void **state)
{
	(void)state;
	struct llm_rules *r = parse_ok(
	    "{\"rules\":[{\"name\":\"error-rate\",\"metric\":\"error_rate\",\"op\":\"lt\","
	    "\"warning\":0.01,\"critical\":0.05,\"window\":\"5m\",\"by\":[\"model\"],"
	    "\"where\":{\"endpoint\":\"/v1/chat/completions\"},\"for\":\"10m\","
	    "\"no_data\":\"ok\",\"renotify\":\"1h\",\"labels\":{\"team\":\"ml\"},"
	    "\"annotations\":{\"summary\":\"errors\"}},"
	    "{\"name\":\"ok-statuses\",\"metric\":\"status_200\",\"op\":\"in\",\"value\":[1,2]}],"
	    "\"notify\":[{\"type\":\"slack\",\"url\":\"https://hooks.example/x\"},"
	    "{\"type\":\"alertmanager\",\"url\":\"http://127.0.0.1:9093\",\"secret_env\":\"S\","
	    "\"retries\":1,\"timeout\":\"2s\",\"ttl\":\"30m\"}]}");
	assert_int_equal(r->nrules, 2);
	const struct llm_rule *a = &r->rules[0];
	assert_string_equal(a->name, "error-rate");
	assert_int_equal(a->op, LLM_RULE_LT);
	assert_false(a->value.set);
	assert_true(a->warning.set && a->critical.set);
	assert_true(a->critical.v[0] == 0.05);
	assert_int_equal(a->window_ms, 300000);
	assert_int_equal(a->nby, 1);
	assert_string_equal(a->by[0], "model");
	assert_int_equal(a->nwhere, 1);
	assert_string_equal(a->where_keys[0], "endpoint");
	assert_int_equal(a->for_ms, 600000);
	assert_int_equal(a->renotify_ms, 3600000);
	assert_int_equal(a->no_data, LLM_NODATA_OK);
	assert_string_equal(json_string_value(json_object_get(a->labels, "team")), "ml");
	const struct llm_rule *b = &r->rules[1];
	assert_int_equal(b->op, LLM_RULE_IN);
	assert_int_equal(b->value.n, 2);
	assert_int_equal(b->window_ms, 0); /* "all" */
	assert_string_equal(b->severity, "critical");
	assert_int_equal(b->no_data, LLM_NODATA_NODATA);
	assert_int_equal(r->ntargets, 2);
	assert_string_equal(r->targets[0].name, "slack[0]");
	assert_int_equal(r->targets[0].retries, 3);
	assert_int_equal(r->targets[1].type, LLM_NOTIFY_ALERTMANAGER);
	assert_string_equal(r->targets[1].secret_env, "S");
	assert_int_equal(r->targets[1].timeout_ms, 2000);
	assert_int_equal(r->targets[1].ttl_ms, 1800000);
	char url[256];
	assert_int_equal(llm_notify_endpoint(&r->targets[1], url, sizeof url), LLM_OK);
	assert_string_equal(url, "http://127.0.0.1:9093/api/v2/alerts");
	assert_int_equal(llm_notify_endpoint(&r->targets[0], url, sizeof url), LLM_OK);
	assert_string_equal(url, "https://hooks.example/x");
	llm_rules_free(r);
}

#define RULE(body)                                                                                 \
	"{\"rules\":[{\"name\":\"r1\",\"metric\":\"error_rate\",\"op\":\"lt\"," body "}]}"

static void bad_rules_are_refused_naming_the_rule(void **state)
{
	(void)state;
	parse_bad("{\"rules\":[", "");
	parse_bad("[]", "a rules file is a JSON object");
	parse_bad("{\"rules\":[]}", "rules must be a non-empty array");
	parse_bad("{\"rules\":[{}]}", "rules[0]: a rule needs a name");
	parse_bad(RULE("\"value\":1,\"treshold\":2"), "rules[0] (r1): unknown member 'treshold'");
	parse_bad(
	    "{\"rules\":[{\"name\":\"x\",\"metric\":\"error_rte\",\"op\":\"lt\",\"value\":1}]}",
	    "rules[0] (x): unknown metric 'error_rte'");
	parse_bad(
	    "{\"rules\":[{\"name\":\"x\",\"metric\":\"error_rate\",\"op\":\"less\",\"value\":1}]}",
	    "unknown op 'less'");
	parse_bad(RULE("\"value\":\"1\""), "value must be a number");
	parse_bad(RULE("\"value\":1,\"critical\":2"), "not both");
	parse_bad(RULE("\"window\":\"5m\""), "no threshold");
	parse_bad(RULE("\"value\":1,\"window\":\"5 minutes\""), "window: '5 minutes'");
	parse_bad(RULE("\"value\":1,\"for\":\"soon\""), "for: 'soon' is not a duration");
	parse_bad(RULE("\"value\":1,\"no_data\":\"ignore\""), "unknown mode 'ignore'");
	parse_bad(RULE("\"value\":1,\"severity\":\"page\""), "severity must be");
	parse_bad(RULE("\"critical\":1,\"severity\":\"warning\""), "severity goes with value");
	parse_bad(RULE("\"value\":1,\"by\":[\"model\",\"model\"]"), "by: 'model' twice");
	parse_bad(RULE("\"value\":1,\"by\":[\"model\"],\"where\":{\"model\":\"a\"}"), "also in by");
	parse_bad(RULE("\"value\":1,\"labels\":{\"severity\":\"x\"}"), "set by the rule itself");
	parse_bad(RULE("\"value\":1,\"labels\":{\"n\":1}"), "labels.n must be a string");
	parse_bad(
	    "{\"rules\":[{\"name\":\"x\",\"metric\":\"status_200\",\"op\":\"in\",\"value\":3}]}",
	    "op in takes a non-empty array");
	parse_bad("{\"rules\":[{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1},"
		  "{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1}]}",
		  "rules[1] (a): a rule of that name comes before");
	parse_bad("{\"rules\":[{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1}],"
		  "\"notify\":[{\"type\":\"email\",\"url\":\"http://x\"}]}",
		  "notify[0]: unknown type 'email'");
	parse_bad("{\"rules\":[{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1}],"
		  "\"notify\":[{\"type\":\"webhook\",\"url\":\"ftp://x\"}]}",
		  "notify[0]: url must be an http");
	parse_bad("{\"rules\":[{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1}],"
		  "\"notify\":[{\"type\":\"webhook\",\"url\":\"http://x\",\"ttl\":\"1h\"}]}",
		  "ttl is for alertmanager targets");
	/* JSON errors carry the line. */
	struct llm_rules *r = NULL;
	struct llm_diag d = {0};
	const char *text = "{\n\"rules\": [\n,\n]}";
	assert_int_equal(llm_rules_parse(&r, text, strlen(text), "f.json", &d), LLM_ERR_JSON);
	assert_int_equal(d.line, 3);
}

static void metric_names_follow_the_aggregates(void **state)
{
	(void)state;
	assert_true(llm_rules_metric_known("latency_p99"));
	assert_true(llm_rules_metric_known("status_503"));
	assert_true(llm_rules_metric_known("errors_by_code.rate_limit"));
	assert_true(llm_rules_metric_known("flags.pii"));
	assert_false(llm_rules_metric_known("status_2x"));
	assert_false(llm_rules_metric_known("status_999"));
	assert_false(llm_rules_metric_known("flags."));
	assert_false(llm_rules_metric_known("latency_p42"));
}

static void ops_compare_as_written(void **state)
{
	(void)state;
	double one = 1.0, list[] = {200, 201};
	struct llm_rule_threshold t = {true, &one, 1}, l = {true, list, 2};
	assert_true(llm_rule_op_holds(LLM_RULE_GT, 1.5, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_GT, 1.0, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_GTE, 1.0, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_GTE, 0.999, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_LT, 0.5, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_LT, 1.0, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_LTE, 1.0, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_LTE, 1.01, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_EQ, 1.0 + 1e-12, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_EQ, 1.001, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_NE, 2.0, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_NE, 1.0, &t));
	assert_true(llm_rule_op_holds(LLM_RULE_IN, 201, &l));
	assert_false(llm_rule_op_holds(LLM_RULE_IN, 202, &l));
	assert_false(llm_rule_op_holds(LLM_RULE_GT, NAN, &t));
	assert_false(llm_rule_op_holds(LLM_RULE_NE, NAN, &t));
	/* A rate of 1/10 equals 0.1. */
	double tenth = 0.1;
	struct llm_rule_threshold tt = {true, &tenth, 1};
	assert_true(llm_rule_op_holds(LLM_RULE_EQ, 1.0 / 10 * 3 / 3, &tt));
}

/* A metric table for the callback: "name=value" pairs. */
struct table {
	const char *name;
	double v;
	bool have;
};

static bool get(void *ctx, const char *metric, double *v)
{
	struct table *t = ctx;
	if (!t->have || strcmp(metric, t->name))
		return false;
	*v = t->v;
	return true;
}

static struct llm_rules *levels_rules(const char *extra)
{
	char text[1024];
	snprintf(text, sizeof text,
		 "{\"rules\":[{\"name\":\"lat\",\"metric\":\"latency_p99\",\"op\":\"lte\","
		 "\"warning\":1000,\"critical\":2000%s}]}",
		 extra);
	return parse_ok(text);
}

static void warning_and_critical_levels(void **state)
{
	(void)state;
	struct llm_rules *r = levels_rules("");
	struct table t = {"latency_p99", 500, true};
	struct llm_rule_result res;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_OK);
	t.v = 1000; /* lte holds at the threshold */
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_OK);
	t.v = 1500;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_WARNING);
	assert_true(res.threshold->v[0] == 1000);
	t.v = 2500;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_CRITICAL);
	assert_true(res.threshold->v[0] == 2000);
	assert_true(res.have_value && res.value == 2500);
	t.have = false;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_NODATA);
	assert_false(res.have_value);
	llm_rules_free(r);
	/* A value rule fails at its severity. */
	r = parse_ok("{\"rules\":[{\"name\":\"e\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":3,"
		     "\"severity\":\"warning\"}]}");
	t = (struct table){"errors", 3, true};
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(res.level, LLM_LEVEL_WARNING);
	llm_rules_free(r);
}

#define MIN 60000

/* One evaluation of rule 0 with value v (have: whether there is data) at minute m. */
static enum llm_alert_action step(struct llm_rules *r, struct llm_alert *a, double v, bool have,
				  int64_t m)
{
	struct table t = {r->rules[0].metric, v, have};
	struct llm_rule_result res;
	enum llm_rule_level old;
	int64_t oldf;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	return llm_alert_step(&r->rules[0], a, &res, 1700000000000 + m * MIN, &old, &oldf);
}

static void for_durations_hold_pending_until_they_pass(void **state)
{
	(void)state;
	struct llm_rules *r = levels_rules(",\"for\":\"10m\"");
	struct llm_alert a = {0};
	assert_int_equal(step(r, &a, 2500, true, 0), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_PENDING);
	assert_int_equal(step(r, &a, 2500, true, 5), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_PENDING);
	/* A break resets the clock. */
	assert_int_equal(step(r, &a, 10, true, 6), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_INACTIVE);
	assert_int_equal(step(r, &a, 2500, true, 7), LLM_ACTION_NONE);
	assert_int_equal(step(r, &a, 1500, true, 16),
			 LLM_ACTION_NONE); /* a level change: still failing */
	assert_int_equal(step(r, &a, 2500, true, 17), LLM_ACTION_FIRE);
	assert_int_equal(a.state, LLM_ALERT_FIRING);
	assert_int_equal(a.level, LLM_LEVEL_CRITICAL);
	assert_true(a.fired_at == 1700000000000 + 17 * MIN);
	assert_int_equal(step(r, &a, 2500, true, 18), LLM_ACTION_NONE); /* no renotify */
	assert_int_equal(step(r, &a, 10, true, 19), LLM_ACTION_RESOLVE);
	assert_int_equal(a.state, LLM_ALERT_INACTIVE);
	assert_int_equal(step(r, &a, 10, true, 20), LLM_ACTION_NONE);
	llm_rules_free(r);
}

static void renotify_and_escalation(void **state)
{
	(void)state;
	struct llm_rules *r = levels_rules(",\"renotify\":\"1h\"");
	struct llm_alert a = {0};
	assert_int_equal(step(r, &a, 1500, true, 0), LLM_ACTION_FIRE); /* for 0: at once */
	assert_int_equal(a.level, LLM_LEVEL_WARNING);
	assert_int_equal(step(r, &a, 1500, true, 59), LLM_ACTION_NONE);
	assert_int_equal(step(r, &a, 1500, true, 60), LLM_ACTION_RENOTIFY);
	assert_int_equal(step(r, &a, 1500, true, 61), LLM_ACTION_NONE);
	struct table t = {"latency_p99", 2500, true};
	struct llm_rule_result res;
	enum llm_rule_level old;
	int64_t oldf;
	llm_rule_eval(&r->rules[0], get, &t, &res);
	assert_int_equal(
	    llm_alert_step(&r->rules[0], &a, &res, 1700000000000 + 62 * MIN, &old, &oldf),
	    LLM_ACTION_ESCALATE);
	assert_int_equal(old, LLM_LEVEL_WARNING);
	assert_true(oldf == 1700000000000);
	assert_int_equal(a.level, LLM_LEVEL_CRITICAL);
	llm_rules_free(r);
}

static void no_data_modes(void **state)
{
	(void)state;
	/* nodata (default): a level of its own, which fires and then resolves. */
	struct llm_rules *r = levels_rules("");
	struct llm_alert a = {0};
	assert_int_equal(step(r, &a, 0, false, 0), LLM_ACTION_FIRE);
	assert_int_equal(a.level, LLM_LEVEL_NODATA);
	assert_int_equal(step(r, &a, 10, true, 1), LLM_ACTION_RESOLVE);
	llm_rules_free(r);
	/* ok: no data holds, and resolves a firing alert. */
	r = levels_rules(",\"no_data\":\"ok\"");
	a = (struct llm_alert){0};
	assert_int_equal(step(r, &a, 0, false, 0), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_INACTIVE);
	assert_int_equal(step(r, &a, 2500, true, 1), LLM_ACTION_FIRE);
	assert_int_equal(step(r, &a, 0, false, 2), LLM_ACTION_RESOLVE);
	llm_rules_free(r);
	/* alerting: fires at the top level. */
	r = levels_rules(",\"no_data\":\"alerting\"");
	a = (struct llm_alert){0};
	assert_int_equal(step(r, &a, 0, false, 0), LLM_ACTION_FIRE);
	assert_int_equal(a.level, LLM_LEVEL_CRITICAL);
	assert_int_equal(step(r, &a, 2500, true, 1), LLM_ACTION_NONE); /* the same alert */
	llm_rules_free(r);
	/* keep: the state stands whatever it was. */
	r = levels_rules(",\"no_data\":\"keep\"");
	a = (struct llm_alert){0};
	assert_int_equal(step(r, &a, 0, false, 0), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_INACTIVE);
	assert_int_equal(step(r, &a, 1500, true, 1), LLM_ACTION_FIRE);
	assert_int_equal(step(r, &a, 0, false, 2), LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_FIRING);
	assert_int_equal(a.level, LLM_LEVEL_WARNING);
	/* A group gone from the input (no result at all) is no data too. */
	enum llm_rule_level old;
	int64_t oldf;
	assert_int_equal(
	    llm_alert_step(&r->rules[0], &a, NULL, 1700000000000 + 3 * MIN, &old, &oldf),
	    LLM_ACTION_NONE);
	assert_int_equal(a.state, LLM_ALERT_FIRING);
	llm_rules_free(r);
}

static void alert_state_round_trips_through_json(void **state)
{
	(void)state;
	struct llm_alert a = {LLM_ALERT_FIRING,
			      LLM_LEVEL_WARNING,
			      1700000000123,
			      1700000060000,
			      1700000120000,
			      true,
			      0.25};
	json_t *j = llm_alert_to_json(&a);
	struct llm_alert b;
	assert_int_equal(llm_alert_from_json(j, &b, NULL), LLM_OK);
	assert_int_equal(b.state, a.state);
	assert_int_equal(b.level, a.level);
	assert_true(b.active_since == a.active_since);
	assert_true(b.fired_at == a.fired_at);
	assert_true(b.notified_at == a.notified_at);
	assert_true(b.have_value && b.value == 0.25);
	assert_string_equal(json_string_value(json_object_get(j, "fired_at")),
			    "2023-11-14T22:14:20.000Z");
	json_object_set_new(j, "state", json_string("burning"));
	assert_int_equal(llm_alert_from_json(j, &b, NULL), LLM_ERR_FORMAT);
	json_decref(j);
}

static void hex_of(const unsigned char *p, size_t n, char *out)
{
	llm_hex(p, n, out);
}

static void hmac_sha256_matches_rfc_4231(void **state)
{
	(void)state;
	unsigned char mac[32];
	char hex[65];
	/* Test case 1: key 0x0b x 20, "Hi There". */
	unsigned char k1[20];
	memset(k1, 0x0b, sizeof k1);
	assert_int_equal(llm_notify_hmac(k1, sizeof k1, "Hi There", 8, mac), LLM_OK);
	hex_of(mac, 32, hex);
	assert_string_equal(hex,
			    "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7");
	/* Test case 2: key "Jefe". */
	assert_int_equal(llm_notify_hmac("Jefe", 4, "what do ya want for nothing?", 28, mac),
			 LLM_OK);
	hex_of(mac, 32, hex);
	assert_string_equal(hex,
			    "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
	/* Test case 6: a key longer than the block (0xaa x 131). */
	unsigned char k6[131];
	memset(k6, 0xaa, sizeof k6);
	const char *m6 = "Test Using Larger Than Block-Size Key - Hash Key First";
	assert_int_equal(llm_notify_hmac(k6, sizeof k6, m6, strlen(m6), mac), LLM_OK);
	hex_of(mac, 32, hex);
	assert_string_equal(hex,
			    "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54");
	/* The header signs "<t>.<body>". */
	char sig[128];
	assert_int_equal(llm_notify_sign("Jefe", 1700000000, "{}", 2, sig, sizeof sig), LLM_OK);
	assert_int_equal(llm_notify_hmac("Jefe", 4, "1700000000.{}", 13, mac), LLM_OK);
	hex_of(mac, 32, hex);
	char want[128];
	snprintf(want, sizeof want, "t=1700000000,v1=%s", hex);
	assert_string_equal(sig, want);
}

static void bodies_have_the_receivers_shapes(void **state)
{
	(void)state;
	json_t *labels = json_pack("{s:s,s:s,s:s}", "alertname", "error-rate", "severity",
				   "critical", "model", "m1");
	json_t *labels2 = json_pack("{s:s,s:s,s:s}", "alertname", "error-rate", "severity",
				    "critical", "model", "m2");
	json_t *ann = json_pack("{s:s,s:s}", "summary", "too many errors", "value", "0.2");
	struct llm_notice n[2] = {
	    {false, labels, ann, 1700000000000, 0},
	    {true, labels2, ann, 1699999000000, 1700000000000},
	};
	/* Alertmanager's webhook, version 4. */
	json_t *w = llm_notify_body(LLM_NOTIFY_WEBHOOK, n, 2, "http://mon.example/");
	assert_string_equal(json_string_value(json_object_get(w, "version")), "4");
	assert_string_equal(json_string_value(json_object_get(w, "status")), "firing");
	assert_string_equal(json_string_value(json_object_get(w, "groupKey")),
			    "{}:{alertname=\"error-rate\"}");
	json_t *cl = json_object_get(w, "commonLabels");
	assert_int_equal(json_object_size(cl), 2); /* model differs */
	assert_string_equal(json_string_value(json_object_get(cl, "severity")), "critical");
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(w, "groupLabels"), "alertname")),
	    "error-rate");
	json_t *al = json_object_get(w, "alerts");
	assert_int_equal(json_array_size(al), 2);
	json_t *a0 = json_array_get(al, 0), *a1 = json_array_get(al, 1);
	assert_string_equal(json_string_value(json_object_get(a0, "status")), "firing");
	assert_string_equal(json_string_value(json_object_get(a0, "startsAt")),
			    "2023-11-14T22:13:20.000Z");
	assert_string_equal(json_string_value(json_object_get(a0, "endsAt")),
			    "0001-01-01T00:00:00Z");
	assert_string_equal(json_string_value(json_object_get(a1, "status")), "resolved");
	assert_string_equal(json_string_value(json_object_get(a1, "endsAt")),
			    "2023-11-14T22:13:20.000Z");
	assert_int_equal(strlen(json_string_value(json_object_get(a0, "fingerprint"))), 16);
	assert_string_not_equal(json_string_value(json_object_get(a0, "fingerprint")),
				json_string_value(json_object_get(a1, "fingerprint")));
	assert_string_equal(json_string_value(json_object_get(a0, "generatorURL")),
			    "http://mon.example/");
	json_decref(w);
	/* Alertmanager's API: an array, endsAt only when there is an end. */
	json_t *am = llm_notify_body(LLM_NOTIFY_ALERTMANAGER, n, 2, NULL);
	assert_true(json_is_array(am));
	assert_int_equal(json_array_size(am), 2);
	a0 = json_array_get(am, 0);
	assert_null(json_object_get(a0, "endsAt"));
	assert_null(json_object_get(a0, "status"));
	assert_null(json_object_get(a0, "generatorURL"));
	assert_string_equal(
	    json_string_value(json_object_get(json_object_get(a0, "labels"), "model")), "m1");
	assert_non_null(json_object_get(json_array_get(am, 1), "endsAt"));
	json_decref(am);
	/* Slack: text and blocks. */
	json_t *s = llm_notify_body(LLM_NOTIFY_SLACK, n, 1, NULL);
	const char *text = json_string_value(json_object_get(s, "text"));
	assert_non_null(text);
	assert_non_null(strstr(text, "[FIRING:critical] error-rate (model=m1): too many errors"));
	json_t *blocks = json_object_get(s, "blocks");
	assert_int_equal(json_array_size(blocks), 2);
	assert_string_equal(json_string_value(json_object_get(json_array_get(blocks, 0), "type")),
			    "section");
	json_decref(s);
	s = llm_notify_body(LLM_NOTIFY_SLACK, n + 1, 1, NULL);
	assert_non_null(
	    strstr(json_string_value(json_object_get(s, "text")), "[RESOLVED:critical]"));
	json_decref(s);
	json_decref(labels);
	json_decref(labels2);
	json_decref(ann);
}

static void the_outbox_keeps_what_failed(void **state)
{
	(void)state;
	char dir[] = "/tmp/test-mon-rules.XXXXXX";
	assert_non_null(mkdtemp(dir));
	struct llm_rules *r = parse_ok(
	    "{\"rules\":[{\"name\":\"a\",\"metric\":\"errors\",\"op\":\"lt\",\"value\":1}],"
	    "\"notify\":[{\"name\":\"hook\",\"type\":\"webhook\",\"url\":\"http://127.0.0.1:1/x\","
	    "\"secret_env\":\"SEC\",\"headers\":{\"X-Team\":\"ml\"},\"retries\":0}]}");
	struct llm_diag d;
	assert_int_equal(
	    llm_outbox_put(dir, &r->targets[0], "{\"b\":2}", 7, 1700000001000, 1, "HTTP 500", &d),
	    LLM_OK);
	assert_int_equal(
	    llm_outbox_put(dir, &r->targets[0], "{\"b\":1}", 7, 1700000000000, 1, "HTTP 500", &d),
	    LLM_OK);
	/* The same delivery again is the same entry. */
	assert_int_equal(
	    llm_outbox_put(dir, &r->targets[0], "{\"b\":1}", 7, 1700000000000, 1, "HTTP 500", &d),
	    LLM_OK);
	struct llm_outbox_entry *v;
	size_t n;
	assert_int_equal(llm_outbox_list(dir, &v, &n, &d), LLM_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].body, "{\"b\":1}"); /* oldest first */
	assert_string_equal(v[0].target.name, "hook");
	assert_string_equal(v[0].target.secret_env, "SEC");
	assert_string_equal(json_string_value(json_object_get(v[0].target.headers, "X-Team")),
			    "ml");
	assert_int_equal(v[0].attempts, 1);
	/* A delivery that fails again: nothing reached, the entry kept with its attempts. */
	struct llm_notify_result res;
	assert_int_equal(llm_notify_post(&v[0].target, NULL, v[0].body, v[0].body_len, &res, &d),
			 LLM_ERR_REMOTE);
	assert_int_equal(res.attempts, 1);
	assert_int_equal(llm_outbox_done(&v[0], false, res.attempts, res.error, &d), LLM_OK);
	assert_int_equal(llm_outbox_done(&v[1], true, 1, NULL, &d), LLM_OK);
	llm_outbox_free(v, n);
	assert_int_equal(llm_outbox_list(dir, &v, &n, &d), LLM_OK);
	assert_int_equal(n, 1);
	assert_int_equal(v[0].attempts, 2);
	assert_int_equal(llm_outbox_done(&v[0], true, 1, NULL, &d), LLM_OK);
	llm_outbox_free(v, n);
	assert_int_equal(llm_outbox_list(dir, &v, &n, &d), LLM_OK);
	assert_int_equal(n, 0);
	llm_outbox_free(v, n);
	char od[64];
	snprintf(od, sizeof od, "%s/outbox", dir);
	rmdir(od);
	rmdir(dir);
	llm_rules_free(r);
}

static void durations_format_back(void **state)
{
	(void)state;
	char s[32];
	llm_rules_format_duration(5400000, s, sizeof s);
	assert_string_equal(s, "1h30m");
	llm_rules_format_duration(300000, s, sizeof s);
	assert_string_equal(s, "5m");
	llm_rules_format_duration(0, s, sizeof s);
	assert_string_equal(s, "0s");
	llm_rules_format_duration(1500, s, sizeof s);
	assert_string_equal(s, "1s500ms");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_full_rules_file_is_read),
	    cmocka_unit_test(bad_rules_are_refused_naming_the_rule),
	    cmocka_unit_test(metric_names_follow_the_aggregates),
	    cmocka_unit_test(ops_compare_as_written),
	    cmocka_unit_test(warning_and_critical_levels),
	    cmocka_unit_test(for_durations_hold_pending_until_they_pass),
	    cmocka_unit_test(renotify_and_escalation),
	    cmocka_unit_test(no_data_modes),
	    cmocka_unit_test(alert_state_round_trips_through_json),
	    cmocka_unit_test(hmac_sha256_matches_rfc_4231),
	    cmocka_unit_test(bodies_have_the_receivers_shapes),
	    cmocka_unit_test(the_outbox_keeps_what_failed),
	    cmocka_unit_test(durations_format_back),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
