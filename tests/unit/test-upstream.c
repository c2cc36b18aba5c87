/* Unit tests for lib/serve/upstream: the gateway's pools, balancing, cooldowns and health
 * schedule, on a clock the tests move by hand (no sleeping, no network). */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "serve/upstream.h"

static double fake_now;

static double fake_clock(void *ctx)
{
	(void)ctx;
	return fake_now;
}

static struct llm_upstreams *make(enum llm_balance balance)
{
	struct llm_upstreams_opts o;
	llm_upstreams_opts_init(&o);
	o.balance = balance;
	o.clock = fake_clock;
	o.cooldown_s = 1;
	o.cooldown_max_s = 8;
	o.health_interval_s = 10;
	fake_now = 1000;
	struct llm_upstreams *u;
	struct llm_diag d;
	assert_int_equal(llm_upstreams_new(&u, &o, &d), LLM_OK);
	return u;
}

static void add(struct llm_upstreams *u, const char *pool, const char *url, int weight)
{
	struct llm_diag d;
	assert_int_equal(llm_upstreams_add(u, pool, url, weight, NULL, NULL, NULL, &d), LLM_OK);
}

static void check(struct llm_upstreams *u)
{
	struct llm_diag d;
	enum llm_err e = llm_upstreams_check(u, &d);
	if (e != LLM_OK)
		fail_msg("%s", d.msg);
}

/* Pick and release at once (an idle pool); returns the label picked. */
static const char *pick_idle(struct llm_upstreams *u, struct llm_pool *p)
{
	struct llm_pick pk;
	bool again;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, &again));
	assert_false(again);
	llm_upstreams_release(u, pk.server, LLM_OUTCOME_OK, 0);
	return pk.label;
}

static void weighted_spread_matches_the_weights_exactly_and_smoothly(void **state)
{
	(void)state;
	for (int b = 0; b < 2; b++) {
		struct llm_upstreams *u = make(b ? LLM_BALANCE_WEIGHTED : LLM_BALANCE_LEAST_BUSY);
		add(u, "m", "http://a:1/v1", 3);
		add(u, "m", "http://b:2/v1", 1);
		check(u);
		struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
		int na = 0, run = 0, maxrun = 0;
		for (int i = 0; i < 400; i++) {
			bool a = !strcmp(pick_idle(u, p), "http://a:1");
			na += a;
			run = a ? run + 1 : 0;
			if (run > maxrun)
				maxrun = run;
		}
		assert_int_equal(na, 300);
		assert_int_equal(maxrun, 3); /* spread out: never more than the weight in a row */
		llm_upstreams_free(u);
	}
}

static void least_busy_avoids_the_server_with_requests_in_flight(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	add(u, "m", "http://a:1/v1", 1);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick slow, pk;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &slow, NULL));
	for (int i = 0; i < 10; i++) {
		assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
		assert_ptr_not_equal(pk.server, slow.server);
		llm_upstreams_release(u, pk.server, LLM_OUTCOME_OK, 0);
	}
	/* Held: one in flight on each; the next two go one to each, whichever first. */
	struct llm_pick x, y, z;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &x, NULL));
	assert_ptr_not_equal(x.server, slow.server);
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &y, NULL));
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &z, NULL));
	assert_ptr_not_equal(y.server, z.server);
	struct llm_upstream_state st;
	llm_upstreams_state(u, 0, &st);
	assert_int_equal(st.inflight, 2);
	llm_upstreams_free(u);

	/* The weighted policy ignores what is in flight. */
	u = make(LLM_BALANCE_WEIGHTED);
	add(u, "m", "http://a:1/v1", 1);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	p = llm_upstreams_pool(u, "m", 1);
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &slow, NULL));
	int same = 0;
	for (int i = 0; i < 10; i++) {
		assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
		same += pk.server == slow.server;
		llm_upstreams_release(u, pk.server, LLM_OUTCOME_OK, 0);
	}
	assert_int_equal(same, 5);
	llm_upstreams_free(u);
}

static void least_busy_weighs_in_flight_by_weight(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	add(u, "m", "http://a:1/v1", 4);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	/* Holding every pick: a takes 4 for each 1 of b (0/4 < 0/1 ties, then 1/4 < 1/1 ...). */
	int na = 0;
	struct llm_pick pk;
	for (int i = 0; i < 10; i++) {
		assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
		na += !strcmp(pk.label, "http://a:1");
	}
	assert_int_equal(na, 8);
	llm_upstreams_free(u);
}

static void a_failure_cools_the_server_down_exponentially_up_to_the_cap(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	add(u, "m", "http://a:1/v1", 1);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick pk;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
	struct llm_upstream *bad = pk.server;
	double want[] = {1, 2, 4, 8, 8, 8};
	for (size_t i = 0; i < sizeof want / sizeof *want; i++) {
		llm_upstreams_release(u, bad, LLM_OUTCOME_FAILED, 0);
		struct llm_upstream_state st;
		llm_upstreams_state(u, 0, &st);
		assert_true(fabs(st.cooldown_s - want[i]) < 1e-9);
		assert_int_equal(st.failures, (int)i + 1);
		assert_false(st.healthy);
		/* While it cools, every pick goes to the other one. */
		for (int k = 0; k < 4; k++)
			assert_string_equal(pick_idle(u, p), "http://b:2");
		fake_now += want[i] + 0.001;
		/* Cooled down: it takes its turn again (and fails again). */
		int seen = 0;
		for (int k = 0; k < 2; k++) {
			assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
			if (pk.server == bad)
				seen++;
			else
				llm_upstreams_release(u, pk.server, LLM_OUTCOME_OK, 0);
		}
		assert_int_equal(seen, 1);
	}
	/* A success ends the run of failures. */
	llm_upstreams_release(u, bad, LLM_OUTCOME_OK, 0);
	struct llm_upstream_state st;
	llm_upstreams_state(u, 0, &st);
	assert_int_equal(st.failures, 0);
	assert_true(st.healthy);
	assert_true(st.cooldown_s == 0);
	llm_upstreams_free(u);
}

static void a_429_hint_sets_a_longer_cooldown_and_a_400_none(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	add(u, "m", "http://a:1/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick pk;
	struct llm_upstream_state st;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
	llm_upstreams_release(u, pk.server, LLM_OUTCOME_NEUTRAL, 0);
	llm_upstreams_state(u, 0, &st);
	assert_true(st.cooldown_s == 0 && st.failures == 0 && st.inflight == 0);
	assert_true(llm_upstreams_ready(u));
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
	llm_upstreams_release(u, pk.server, LLM_OUTCOME_LIMITED, 5);
	llm_upstreams_state(u, 0, &st);
	assert_true(fabs(st.cooldown_s - 5) < 1e-9);
	/* A hint past the cap is capped. */
	assert_true(llm_upstreams_pick(u, p, NULL, 0, LLM_PICK_LAST_RESORT, &pk, NULL));
	llm_upstreams_release(u, pk.server, LLM_OUTCOME_LIMITED, 100);
	llm_upstreams_state(u, 0, &st);
	assert_true(fabs(st.cooldown_s - 8) < 1e-9);
	llm_upstreams_free(u);
}

static void a_pool_that_is_all_cooling_gives_none_unless_last_resort(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	add(u, "m", "http://a:1/v1", 1);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick a, b, pk;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &a, NULL));
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &b, NULL));
	llm_upstreams_release(u, a.server, LLM_OUTCOME_FAILED, 0); /* 1 s */
	llm_upstreams_release(u, b.server, LLM_OUTCOME_FAILED, 0);
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL) == false);
	fake_now += 0.5;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &b, NULL) == false);
	/* b failed twice now: a ends first. */
	llm_upstreams_release(u, b.server, LLM_OUTCOME_FAILED, 0);
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL) == false);
	bool again = false;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, LLM_PICK_LAST_RESORT, &pk, &again));
	assert_string_equal(pk.label, "http://a:1");
	assert_true(again); /* still cooling: to be delayed */
	llm_upstreams_release(u, pk.server, LLM_OUTCOME_NEUTRAL, 0);
	fake_now += 1;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, LLM_PICK_LAST_RESORT, &pk, &again));
	assert_string_equal(pk.label, "http://a:1");
	assert_false(again); /* rested: fit again */
	llm_upstreams_free(u);
}

static void tried_servers_are_taken_only_when_no_other_is_fit(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_WEIGHTED);
	add(u, "m", "http://a:1/v1", 1);
	add(u, "m", "http://b:2/v1", 1);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick first, pk;
	bool again;
	for (int i = 0; i < 6; i++) {
		assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &first, NULL));
		llm_upstreams_release(u, first.server, LLM_OUTCOME_NEUTRAL, 0);
		struct llm_upstream *avoid[] = {first.server};
		assert_true(llm_upstreams_pick(u, p, avoid, 1, 0, &pk, &again));
		assert_ptr_not_equal(pk.server, first.server);
		assert_false(again);
		llm_upstreams_release(u, pk.server, LLM_OUTCOME_NEUTRAL, 0);
		struct llm_upstream *both[] = {first.server, pk.server};
		assert_true(llm_upstreams_pick(u, p, both, 2, 0, &pk, &again));
		assert_true(again);
		llm_upstreams_release(u, pk.server, LLM_OUTCOME_NEUTRAL, 0);
	}
	llm_upstreams_free(u);
}

static void probes_are_scheduled_and_move_the_cooldown(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	struct llm_diag d;
	add(u, "m", "http://a:1/v1", 1);
	assert_int_equal(llm_upstreams_add(u, "m", "http://b:2/v1/", 1, NULL, NULL, "/health", &d),
			 LLM_OK);
	assert_int_equal(llm_upstreams_add(u, "n", "http://c:3/v1", 1, NULL, NULL, "", &d), LLM_OK);
	check(u);
	assert_false(llm_upstreams_ready(u));
	struct llm_probe pr[8];
	double next;
	/* At start every server with a probe is due (c has none). */
	assert_int_equal(llm_upstreams_due(u, pr, 8, &next), 2);
	assert_string_equal(pr[0].url, "http://a:1/v1/models");
	assert_string_equal(pr[1].url, "http://b:2/v1/health");
	assert_true(isinf(next));
	/* Not due again while being probed. */
	assert_int_equal(llm_upstreams_due(u, pr + 2, 6, &next), 0);
	llm_upstreams_probed(u, pr[0].server, true);
	llm_upstreams_probed(u, pr[1].server, false);
	assert_true(llm_upstreams_ready(u));
	struct llm_upstream_state st;
	llm_upstreams_state(u, 1, &st);
	assert_false(st.healthy);
	assert_true(fabs(st.cooldown_s - 1) < 1e-9);
	assert_int_equal(llm_upstreams_due(u, pr + 2, 6, &next), 0);
	assert_true(fabs(next - 10) < 1e-9);
	fake_now += 10;
	assert_int_equal(llm_upstreams_due(u, pr, 8, &next), 2);
	/* A probe that passes ends the cooldown of a server that failed. */
	struct llm_pool *p = llm_upstreams_pool(u, "m", 1);
	struct llm_pick pk;
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
	assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
	llm_upstreams_release(u, pr[1].server, LLM_OUTCOME_FAILED, 0);
	llm_upstreams_release(u, pr[1].server, LLM_OUTCOME_FAILED, 0);
	llm_upstreams_state(u, 1, &st);
	assert_true(st.cooldown_s > 3);
	llm_upstreams_probed(u, pr[1].server, true);
	llm_upstreams_state(u, 1, &st);
	assert_true(st.cooldown_s == 0 && st.failures == 0 && st.healthy);
	llm_upstreams_probed(u, pr[0].server, true);
	llm_upstreams_free(u);

	/* Interval 0: no probes at all. */
	struct llm_upstreams_opts o;
	llm_upstreams_opts_init(&o);
	o.health_interval_s = 0;
	assert_int_equal(llm_upstreams_new(&u, &o, &d), LLM_OK);
	add(u, "m", "http://a:1/v1", 1);
	check(u);
	assert_int_equal(llm_upstreams_due(u, pr, 8, &next), 0);
	assert_true(isinf(next));
	llm_upstreams_free(u);
}

static void model_names_map_to_pools_with_a_catch_all_and_a_default(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_LEAST_BUSY);
	struct llm_diag d;
	add(u, "big", "http://a:1/v1", 1);
	add(u, "small", "http://b:2/v1", 1);
	assert_int_equal(llm_upstreams_add_fallback(u, "big", "small", &d), LLM_OK);
	check(u);
	assert_string_equal(llm_pool_name(llm_upstreams_pool(u, "small", 5)), "small");
	assert_string_equal(llm_pool_name(llm_upstreams_pool(u, NULL, 0)), "big");
	assert_null(llm_upstreams_pool(u, "other", 5));
	assert_null(llm_upstreams_pool(u, "smal", 4));
	struct llm_pool *route[LLM_UPSTREAM_ROUTE_MAX];
	size_t n =
	    llm_upstreams_route(u, llm_upstreams_pool(u, "big", 3), route, LLM_UPSTREAM_ROUTE_MAX);
	assert_int_equal(n, 2);
	assert_string_equal(llm_pool_name(route[1]), "small");
	assert_int_equal(llm_upstreams_set_default(u, "small", &d), LLM_OK);
	assert_string_equal(llm_pool_name(llm_upstreams_pool(u, "", 0)), "small");
	add(u, "*", "http://c:3/v1", 1);
	check(u);
	assert_string_equal(llm_pool_name(llm_upstreams_pool(u, "other", 5)), "*");
	/* One server per URL: a and the catch-all share nothing, two pools may share one. */
	add(u, "small", "http://a:1/v1", 1);
	assert_int_equal(llm_upstreams_nservers(u), 3);
	llm_upstreams_free(u);
}

static void upstream_specs_parse_a_weight_after_the_last_comma(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_WEIGHTED);
	struct llm_diag d;
	assert_int_equal(llm_upstreams_add_spec(u, "*", "http://a:1/v1,3", NULL, &d), LLM_OK);
	assert_int_equal(llm_upstreams_add_spec(u, "*", "http://b:2/v1", NULL, &d), LLM_OK);
	assert_int_equal(llm_upstreams_add_spec(u, "*", "http://c:3/v1,0", NULL, &d),
			 LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "weight"));
	assert_int_equal(llm_upstreams_add_spec(u, "*", "ftp://c/v1", NULL, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_upstreams_add_spec(u, "*", "not a url", NULL, &d), LLM_ERR_USAGE);
	check(u);
	struct llm_pool *p = llm_upstreams_pool(u, "x", 1);
	int na = 0;
	for (int i = 0; i < 40; i++)
		na += !strcmp(pick_idle(u, p), "http://a:1");
	assert_int_equal(na, 30);
	llm_upstreams_free(u);
}

static void labels_keep_scheme_host_and_port_only(void **state)
{
	(void)state;
	char out[160];
	llm_upstream_label("http://user:secret@example.com:8000/v1?key=x", out, sizeof out);
	assert_string_equal(out, "http://example.com:8000");
	llm_upstream_label("https://api.example.com/v1", out, sizeof out);
	assert_string_equal(out, "https://api.example.com");
}

static const char good_config[] =
    "{\"models\": {\n"
    "  \"chat\": {\"upstreams\": [{\"url\": \"http://10.0.0.5:8000/v1\", \"weight\": 3,\n"
    "                            \"model\": \"llama\"},\n"
    "                           {\"url\": \"https://api.example.com/v1\", \"model\": \"gpt\",\n"
    "                            \"key_env\": \"LLMOPS_TEST_UPSTREAM_KEY\", \"health\": \"\"}],\n"
    "            \"fallback\": [\"small\"]},\n"
    "  \"small\": {\"upstreams\": [{\"url\": \"http://127.0.0.1:8081/v1\"}]}},\n"
    " \"default_model\": \"small\"}\n";

static void a_configuration_file_maps_models_weights_keys_and_fallbacks(void **state)
{
	(void)state;
	struct llm_upstreams *u = make(LLM_BALANCE_WEIGHTED);
	struct llm_diag d;
	setenv("LLMOPS_TEST_UPSTREAM_KEY", "sk-test-123", 1);
	assert_int_equal(llm_upstreams_parse(u, good_config, strlen(good_config), "gw.json", &d),
			 LLM_OK);
	check(u);
	assert_int_equal(llm_upstreams_npools(u), 2);
	assert_string_equal(llm_pool_name(llm_upstreams_pool(u, NULL, 0)), "small");
	struct llm_pool *p = llm_upstreams_pool(u, "chat", 4);
	int na = 0;
	for (int i = 0; i < 8; i++) {
		struct llm_pick pk;
		assert_true(llm_upstreams_pick(u, p, NULL, 0, 0, &pk, NULL));
		if (!strcmp(pk.label, "http://10.0.0.5:8000")) {
			na++;
			assert_string_equal(pk.model, "llama");
			assert_null(pk.auth);
		} else {
			assert_string_equal(pk.model, "gpt");
			assert_string_equal(pk.auth, "Authorization: Bearer sk-test-123");
		}
		llm_upstreams_release(u, pk.server, LLM_OUTCOME_OK, 0);
	}
	assert_int_equal(na, 6);
	struct llm_probe pr[4];
	assert_int_equal(llm_upstreams_due(u, pr, 4, NULL), 2); /* health "" turned one off */
	llm_upstreams_free(u);
}

static void expect_config_error(const char *text, const char *want)
{
	struct llm_upstreams *u = make(LLM_BALANCE_WEIGHTED);
	struct llm_diag d;
	memset(&d, 0, sizeof d);
	enum llm_err e = llm_upstreams_parse(u, text, strlen(text), "gw.json", &d);
	if (e == LLM_OK)
		e = llm_upstreams_check(u, &d);
	assert_int_not_equal(e, LLM_OK);
	char got[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 8];
	llm_diag_format(&d, got, sizeof got);
	if (!strstr(got, want))
		fail_msg("message %s lacks %s", got, want);
	assert_null(strstr(d.msg, "sk-")); /* never a key in a message */
	llm_upstreams_free(u);
}

static void configuration_errors_name_the_field(void **state)
{
	(void)state;
	unsetenv("LLMOPS_TEST_UNSET_KEY");
	expect_config_error("{\"model\": {}}", "unknown field 'model'");
	expect_config_error("{\"models\": {}}", "models");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": []}}}", "models.a.upstreams");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\", "
			    "\"weight\": 0}]}}}",
			    "models.a.upstreams[0].weight");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\", "
			    "\"wieght\": 2}]}}}",
			    "unknown field 'wieght'");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\", "
			    "\"key_env\": \"LLMOPS_TEST_UNSET_KEY\"}]}}}",
			    "LLMOPS_TEST_UNSET_KEY is not set");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\"}], "
			    "\"fallback\": [\"b\"]}}}",
			    "the fallback 'b'");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\"}], "
			    "\"fallback\": [\"a\"]}}}",
			    "names itself");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://h/v1\"}]}}, "
			    "\"default_model\": \"b\"}",
			    "default model 'b'");
	expect_config_error("{\"models\": {\"a\": {\"upstreams\": [{\"url\": 5}]}}}",
			    "url is required");
	expect_config_error("{\"models\": ", "gw.json");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(weighted_spread_matches_the_weights_exactly_and_smoothly),
	    cmocka_unit_test(least_busy_avoids_the_server_with_requests_in_flight),
	    cmocka_unit_test(least_busy_weighs_in_flight_by_weight),
	    cmocka_unit_test(a_failure_cools_the_server_down_exponentially_up_to_the_cap),
	    cmocka_unit_test(a_429_hint_sets_a_longer_cooldown_and_a_400_none),
	    cmocka_unit_test(a_pool_that_is_all_cooling_gives_none_unless_last_resort),
	    cmocka_unit_test(tried_servers_are_taken_only_when_no_other_is_fit),
	    cmocka_unit_test(probes_are_scheduled_and_move_the_cooldown),
	    cmocka_unit_test(model_names_map_to_pools_with_a_catch_all_and_a_default),
	    cmocka_unit_test(upstream_specs_parse_a_weight_after_the_last_comma),
	    cmocka_unit_test(labels_keep_scheme_host_and_port_only),
	    cmocka_unit_test(a_configuration_file_maps_models_weights_keys_and_fallbacks),
	    cmocka_unit_test(configuration_errors_name_the_field),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
