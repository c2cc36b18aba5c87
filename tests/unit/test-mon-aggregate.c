/* Unit tests of lib/monitor/sketch and lib/monitor/aggregate: the sketch's quantiles against
 * exact ones on random data, merging shards against one pass, windows, grouping, the join of
 * feedback with requests in either order, feedback ids counted once, and the price table. */
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

#include "core/rand.h"
#include "monitor/aggregate.h"
#include "monitor/sketch.h"

/* --- helpers -------------------------------------------------------------------------------- */

static struct llm_mon_str str(const char *s)
{
	struct llm_mon_str r = {s, s ? strlen(s) : 0};
	return r;
}

static struct llm_mon_event request(int64_t ts, const char *model, const char *key, int status,
				    double latency, const char *rid)
{
	struct llm_mon_event ev;
	memset(&ev, 0, sizeof ev);
	ev.kind = LLM_MON_REQUEST;
	ev.ts_ms = ts;
	ev.model = str(model);
	ev.key_id = str(key);
	ev.request_id = str(rid);
	ev.status = status;
	ev.failed = status >= 400;
	ev.latency_ms = latency;
	ev.ttft_ms = LLM_MON_UNKNOWN;
	ev.prompt_tokens = ev.completion_tokens = -1;
	ev.prompt_chars = ev.output_chars = -1;
	ev.score = LLM_MON_UNKNOWN;
	return ev;
}

static struct llm_mon_event feedback(int64_t ts, const char *rid, double score, const char *fid)
{
	struct llm_mon_event ev = request(ts, NULL, NULL, 0, LLM_MON_UNKNOWN, rid);
	ev.kind = LLM_MON_FEEDBACK;
	ev.score = score;
	ev.feedback_id = str(fid);
	return ev;
}

static struct llm_mon_agg *agg_new(int64_t window, const char *by, const struct llm_mon_prices *p)
{
	static char buf[8][32];
	static char *keys[8];
	size_t n = 0;
	/* by is a comma list, as --by takes it. */
	for (const char *s = by; s && *s && n < 8;) {
		size_t len = strcspn(s, ",");
		snprintf(buf[n], sizeof buf[n], "%.*s", (int)len, s);
		keys[n] = buf[n];
		n++;
		s += len + (s[len] == ',');
	}
	struct llm_mon_agg_config cfg = {.window_ms = window, .by = keys, .nby = n, .prices = p};
	struct llm_mon_agg *a = NULL;
	struct llm_diag d;
	assert_int_equal(llm_mon_agg_new(&a, &cfg, &d), LLM_OK);
	return a;
}

static void add(struct llm_mon_agg *a, struct llm_mon_event ev)
{
	struct llm_diag d;
	assert_int_equal(llm_mon_agg_add(a, &ev, &d), LLM_OK);
}

static double metric(const struct llm_mon_row *r, const char *name)
{
	double v = NAN;
	if (!llm_mon_row_metric(r, name, &v))
		fail_msg("no metric %s", name);
	return v;
}

/* The row whose first key is k0 (NULL for null), in window start. */
static const struct llm_mon_row *find_row(const struct llm_mon_agg *a, int64_t start,
					  const char *k0)
{
	for (size_t i = 0; i < llm_mon_agg_nrows(a); i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(a, i);
		const char *k = llm_mon_row_key(r, 0);
		if (llm_mon_row_start(r) == start && (k0 ? k && !strcmp(k, k0) : !k))
			return r;
	}
	fail_msg("no row %s at %lld", k0 ? k0 : "(null)", (long long)start);
	return NULL;
}

static double lognormal(struct llm_rand *g)
{
	double u1 = (llm_rand_next(g) >> 11) * 0x1.0p-53, u2 = (llm_rand_next(g) >> 11) * 0x1.0p-53;
	double z = sqrt(-2 * log(u1 + 1e-300)) * cos(2 * M_PI * u2);
	return exp(5 + 1.2 * z);
}

static int cmp_double(const void *x, const void *y)
{
	double a = *(const double *)x, b = *(const double *)y;
	return (a > b) - (a < b);
}

/* --- the sketch ----------------------------------------------------------------------------- */

static void sketch_quantiles_within_one_percent_of_exact(void **state)
{
	(void)state;
	enum { N = 50000 };
	double *v = malloc(N * sizeof *v);
	assert_non_null(v);
	struct llm_rand g;
	llm_rand_seed(&g, 42);
	struct llm_sketch s;
	llm_sketch_init(&s);
	for (size_t i = 0; i < N; i++) {
		/* Two modes and a few exact zeros, as latencies of cached and generated answers. */
		v[i] = i % 97 == 0 ? 0 : (i % 3 ? lognormal(&g) : lognormal(&g) / 50);
		assert_int_equal(llm_sketch_add(&s, v[i]), LLM_OK);
	}
	qsort(v, N, sizeof *v, cmp_double);
	for (double q = 0; q <= 1.0001; q += 0.01) {
		double qq = q > 1 ? 1 : q, est;
		assert_true(llm_sketch_quantile(&s, qq, &est));
		double exact = v[(size_t)floor(qq * (N - 1))];
		if (exact == 0)
			assert_true(est == 0);
		else if (fabs(est - exact) > LLM_SKETCH_ALPHA * exact * (1 + 1e-9))
			fail_msg("q=%.2f: sketch %.6g, exact %.6g", qq, est, exact);
	}
	assert_int_equal(s.count, N);
	assert_true(s.min == v[0] && s.max == v[N - 1]);
	/* Bounded: the span of keys, not the number of values. */
	assert_true(s.cap <= LLM_SKETCH_MAX_BINS);
	free(v);
	llm_sketch_free(&s);
}

static void sketch_merge_equals_one_pass_and_survives_json(void **state)
{
	(void)state;
	struct llm_rand g;
	llm_rand_seed(&g, 7);
	struct llm_sketch all, part[3], merged;
	llm_sketch_init(&all);
	llm_sketch_init(&merged);
	for (int k = 0; k < 3; k++)
		llm_sketch_init(&part[k]);
	for (int i = 0; i < 30000; i++) {
		double x = lognormal(&g) * (i % 3 == 2 ? 100 : 1);
		llm_sketch_add(&all, x);
		llm_sketch_add(&part[i % 3], x);
	}
	for (int k = 0; k < 3; k++) {
		/* Through JSON, as shards would hand them over. */
		json_t *j = llm_sketch_to_json(&part[k]);
		char *text = json_dumps(j, JSON_COMPACT);
		json_decref(j);
		json_t *back = json_loads(text, 0, NULL);
		free(text);
		struct llm_sketch s;
		llm_sketch_init(&s);
		struct llm_diag d;
		assert_int_equal(llm_sketch_from_json(&s, back, &d), LLM_OK);
		json_decref(back);
		assert_int_equal(llm_sketch_merge(&merged, &s), LLM_OK);
		llm_sketch_free(&s);
		llm_sketch_free(&part[k]);
	}
	assert_int_equal(merged.count, all.count);
	for (double q = 0; q <= 1; q += 0.05) {
		double x, y;
		llm_sketch_quantile(&all, q, &x);
		llm_sketch_quantile(&merged, q, &y);
		assert_true(x == y);
	}
	assert_true(fabs(merged.sum - all.sum) <= 1e-9 * all.sum);
	/* Another accuracy cannot merge. */
	json_t *j = llm_sketch_to_json(&all);
	json_object_set_new(j, "alpha", json_real(0.02));
	struct llm_sketch s;
	llm_sketch_init(&s);
	struct llm_diag d;
	assert_int_equal(llm_sketch_from_json(&s, j, &d), LLM_ERR_FORMAT);
	json_decref(j);
	llm_sketch_free(&s);
	llm_sketch_free(&all);
	llm_sketch_free(&merged);
}

static void sketch_collapses_lowest_buckets_beyond_its_bound(void **state)
{
	(void)state;
	struct llm_sketch s;
	llm_sketch_init(&s);
	/* 1e-8 .. 1e12: far more than 2048 buckets of 2 %. */
	for (double x = 1e-8; x < 1e12; x *= 1.01)
		llm_sketch_add(&s, x);
	assert_true(s.cap <= LLM_SKETCH_MAX_BINS);
	double p99, p50;
	llm_sketch_quantile(&s, 0.99, &p99);
	llm_sketch_quantile(&s, 0.5, &p50);
	/* The high quantiles keep their accuracy. */
	assert_true(p99 > 1e11 * 0.5 && p99 < 1e12);
	assert_true(p50 > 0);
	llm_sketch_free(&s);
}

/* --- aggregates ----------------------------------------------------------------------------- */

static void windows_align_to_the_epoch_and_untimed_events_join_the_first(void **state)
{
	(void)state;
	struct llm_mon_agg *a = agg_new(60000, NULL, NULL);
	add(a, request(120500, "m", NULL, 200, 10, NULL));
	add(a, request(INT64_MIN, "m", NULL, 200, 20, NULL));
	add(a, request(179999, "m", NULL, 500, 30, NULL));
	add(a, request(180000, "m", NULL, 200, 40, NULL));
	assert_int_equal(llm_mon_agg_nrows(a), 2);
	const struct llm_mon_row *r = llm_mon_agg_row(a, 0);
	assert_true(llm_mon_row_start(r) == 120000 && llm_mon_row_end(r) == 180000);
	assert_true(metric(r, "requests") == 3);
	assert_true(metric(r, "errors") == 1);
	assert_true(fabs(metric(r, "error_rate") - 1.0 / 3) < 1e-12);
	assert_true(metric(r, "status_5xx") == 1 && metric(r, "status_500") == 1);
	assert_true(metric(r, "latency_max") == 30);
	assert_true(fabs(metric(r, "latency_mean") - 20) < 1e-12);
	double v;
	assert_false(llm_mon_row_metric(r, "ttft_p50", &v)); /* no data is absent */
	assert_false(llm_mon_row_metric(r, "cost", &v));
	r = llm_mon_agg_row(a, 1);
	assert_true(llm_mon_row_start(r) == 180000 && metric(r, "requests") == 1);
	/* Dropping a closed window leaves the open one, and a late event makes a new row. */
	llm_mon_agg_drop_before(a, 180000);
	assert_int_equal(llm_mon_agg_nrows(a), 1);
	add(a, request(150000, "m", NULL, 200, 5, NULL));
	assert_int_equal(llm_mon_agg_nrows(a), 2);
	assert_true(metric(find_row(a, 120000, NULL), "requests") == 1);
	llm_mon_agg_free(a);
}

static void groups_by_several_keys_with_null_for_absent(void **state)
{
	(void)state;
	struct llm_mon_agg *a = agg_new(0, "model,key_id", NULL);
	add(a, request(1000, "b", "k1", 200, 1, NULL));
	add(a, request(2000, "a", "k2", 200, 1, NULL));
	add(a, request(3000, "a", "k1", 429, 1, NULL));
	add(a, request(4000, "a", "k1", 200, 1, NULL));
	add(a, request(5000, "a", NULL, 200, 1, NULL));
	assert_int_equal(llm_mon_agg_nrows(a), 4);
	/* Sorted by values, null first. */
	const char *want[][2] = {{"a", NULL}, {"a", "k1"}, {"a", "k2"}, {"b", "k1"}};
	for (size_t i = 0; i < 4; i++) {
		const struct llm_mon_row *r = llm_mon_agg_row(a, i);
		assert_string_equal(llm_mon_row_key(r, 0), want[i][0]);
		if (want[i][1])
			assert_string_equal(llm_mon_row_key(r, 1), want[i][1]);
		else
			assert_null(llm_mon_row_key(r, 1));
	}
	const struct llm_mon_row *r = llm_mon_agg_row(a, 1);
	assert_true(metric(r, "requests") == 2 && metric(r, "status_4xx") == 1);
	assert_true(llm_mon_row_start(r) == 3000 && llm_mon_row_end(r) == 4001);
	/* Collapsing keeps the groups; the window 0 rows already span everything. */
	struct llm_mon_agg *c;
	struct llm_diag d;
	assert_int_equal(llm_mon_agg_collapse(a, &c, &d), LLM_OK);
	assert_int_equal(llm_mon_agg_nrows(c), 4);
	llm_mon_agg_free(c);
	llm_mon_agg_free(a);
}

static void feedback_joins_its_request_in_either_order(void **state)
{
	(void)state;
	struct llm_mon_agg *a = agg_new(60000, "model", NULL);
	/* After its request, in a later window: counted in the request's row. */
	add(a, request(1000, "m1", NULL, 200, 1, "r1"));
	add(a, feedback(200000, "r1", 5, "f1"));
	/* Before its request. */
	add(a, feedback(2000, "r2", 1, "f2"));
	add(a, request(3000, "m2", NULL, 200, 1, "r2"));
	/* Never joined: its own time, a null model. */
	add(a, feedback(4000, "r-none", 3, "f3"));
	assert_int_equal(llm_mon_agg_nrows(a), 3);
	const struct llm_mon_row *r = find_row(a, 0, "m1");
	assert_true(metric(r, "feedback_count") == 1 && metric(r, "feedback_mean") == 5);
	r = find_row(a, 0, "m2");
	assert_true(metric(r, "feedback_count") == 1 && metric(r, "feedback_min") == 1);
	assert_true(metric(r, "feedback_negative") == 0);
	r = find_row(a, 0, NULL);
	assert_true(metric(r, "requests") == 0 && metric(r, "feedback_count") == 1);
	llm_mon_agg_free(a);
}

static void the_same_feedback_id_counts_once(void **state)
{
	(void)state;
	struct llm_mon_agg *a = agg_new(0, NULL, NULL);
	add(a, request(1000, "m", NULL, 200, 1, "r1"));
	add(a, feedback(2000, "r1", -1, "f1"));
	add(a, feedback(2000, "r1", -1, "f1"));
	add(a, feedback(2500, "r1", 1, "f2"));
	const struct llm_mon_row *r = llm_mon_agg_row(a, 0);
	assert_true(metric(r, "feedback_count") == 2);
	assert_true(metric(r, "feedback_mean") == 0);
	assert_true(metric(r, "feedback_negative") == 1);
	assert_true(metric(r, "feedback_negative_rate") == 0.5);
	llm_mon_agg_free(a);
}

static void prices_cost_by_exact_prefix_and_star(void **state)
{
	(void)state;
	char path[] = "/tmp/test-mon-prices-XXXXXX";
	int fd = mkstemp(path);
	assert_true(fd >= 0);
	const char *text = "{\"currency\":\"EUR\",\"models\":{\"support-bot\":{\"prompt\":2,"
			   "\"completion\":10},\"*\":{\"prompt\":1,\"completion\":1}}}";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	struct llm_mon_prices *p;
	struct llm_diag d;
	assert_int_equal(llm_mon_prices_load(&p, path, &d), LLM_OK);
	unlink(path);
	assert_string_equal(llm_mon_prices_currency(p), "EUR");
	struct llm_mon_agg *a = agg_new(0, "model", p);
	struct llm_mon_event ev = request(1, "support-bot@3", NULL, 200, 1, NULL);
	ev.prompt_tokens = 1000000;
	ev.completion_tokens = 500000;
	add(a, ev); /* 2 + 5 */
	ev.model = str("other");
	add(a, ev); /* 1 + 0.5 */
	ev.prompt_tokens = ev.completion_tokens = -1;
	add(a, ev); /* no usage: not priced, not counted */
	const struct llm_mon_row *r = find_row(a, 1, "other");
	assert_true(fabs(metric(r, "cost") - 1.5) < 1e-9);
	assert_true(metric(r, "tokens_per_request") == 1500000);
	r = find_row(a, 1, "support-bot@3");
	assert_true(fabs(metric(r, "cost") - 7) < 1e-9);
	assert_true(metric(r, "cost_unpriced") == 0);
	llm_mon_agg_free(a);
	llm_mon_prices_free(p);
	/* A bad table names the model. */
	char bad[] = "/tmp/test-mon-prices-XXXXXX";
	fd = mkstemp(bad);
	text = "{\"models\":{\"x\":{\"prompt\":\"2\"}}}";
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	assert_int_equal(llm_mon_prices_load(&p, bad, &d), LLM_ERR_FORMAT);
	assert_non_null(strstr(d.msg, "\"x\""));
	unlink(bad);
}

static void shards_merged_from_state_equal_one_pass(void **state)
{
	(void)state;
	struct llm_rand g;
	llm_rand_seed(&g, 3);
	struct llm_mon_agg *all = agg_new(300000, "model", NULL),
			   *shard[2] = {agg_new(300000, "model", NULL),
					agg_new(300000, "model", NULL)};
	const char *models[] = {"a", "b", "c"};
	char rid[32];
	for (int i = 0; i < 6000; i++) {
		snprintf(rid, sizeof rid, "r%d", i);
		struct llm_mon_event ev = request(1700000000000 + (int64_t)i * 997, models[i % 3],
						  NULL, i % 17 ? 200 : 503, lognormal(&g), rid);
		ev.ttft_ms = ev.latency_ms / 4;
		ev.prompt_tokens = i % 50;
		ev.completion_tokens = i % 7;
		add(all, ev);
		add(shard[i % 2], ev);
	}
	struct llm_mon_agg *m = agg_new(300000, "model", NULL);
	struct llm_diag d;
	for (int k = 0; k < 2; k++) {
		for (size_t i = 0; i < llm_mon_agg_nrows(shard[k]); i++) {
			json_t *j = llm_mon_row_json(shard[k], llm_mon_agg_row(shard[k], i), true);
			char *text = json_dumps(j, JSON_COMPACT);
			json_decref(j);
			json_t *back = json_loads(text, 0, NULL);
			free(text);
			assert_int_equal(llm_mon_agg_merge_json(m, back, &d), LLM_OK);
			json_decref(back);
		}
	}
	assert_int_equal(llm_mon_agg_nrows(m), llm_mon_agg_nrows(all));
	assert_true(llm_mon_agg_nrows(all) > 3);
	static const char *const names[] = {"requests", "errors", "status_503", "latency_p50",
					    "latency_p90", "latency_p99", "latency_max",
					    "ttft_p99", "total_tokens", "latency_mean"};
	for (size_t i = 0; i < llm_mon_agg_nrows(all); i++) {
		const struct llm_mon_row *x = llm_mon_agg_row(all, i), *y = llm_mon_agg_row(m, i);
		assert_true(llm_mon_row_start(x) == llm_mon_row_start(y));
		assert_string_equal(llm_mon_row_key(x, 0), llm_mon_row_key(y, 0));
		for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
			double vx = metric(x, names[k]), vy = metric(y, names[k]);
			if (fabs(vx - vy) > 1e-9 * fabs(vx))
				fail_msg("%s: %g vs %g", names[k], vx, vy);
		}
	}
	/* A row without state cannot be merged; nor one wider than the window. */
	json_t *j = llm_mon_row_json(all, llm_mon_agg_row(all, 0), false);
	assert_int_equal(llm_mon_agg_merge_json(m, j, &d), LLM_ERR_FORMAT);
	json_decref(j);
	struct llm_mon_agg *one = agg_new(0, "model", NULL), *small = agg_new(60000, "model", NULL);
	assert_int_equal(llm_mon_agg_merge(one, all, &d), LLM_OK);
	j = llm_mon_row_json(one, llm_mon_agg_row(one, 0), true);
	assert_int_equal(llm_mon_agg_merge_json(small, j, &d), LLM_ERR_FORMAT);
	json_decref(j);
	/* Regrouping drops a key: the sum over it. */
	struct llm_mon_agg *total = agg_new(0, NULL, NULL);
	assert_int_equal(llm_mon_agg_merge(total, all, &d), LLM_OK);
	assert_int_equal(llm_mon_agg_nrows(total), 1);
	assert_true(metric(llm_mon_agg_row(total, 0), "requests") == 6000);
	llm_mon_agg_free(total);
	llm_mon_agg_free(one);
	llm_mon_agg_free(small);
	llm_mon_agg_free(m);
	llm_mon_agg_free(all);
	llm_mon_agg_free(shard[0]);
	llm_mon_agg_free(shard[1]);
}

static void rows_are_bounded_by_max_groups(void **state)
{
	(void)state;
	char *by[] = {"key_id"};
	struct llm_mon_agg_config cfg = {.by = by, .nby = 1, .max_groups = 10};
	struct llm_mon_agg *a;
	struct llm_diag d;
	assert_int_equal(llm_mon_agg_new(&a, &cfg, &d), LLM_OK);
	char k[16];
	enum llm_err e = LLM_OK;
	for (int i = 0; i < 11 && !e; i++) {
		snprintf(k, sizeof k, "k%d", i);
		struct llm_mon_event ev = request(1, "m", k, 200, 1, NULL);
		e = llm_mon_agg_add(a, &ev, &d);
	}
	assert_int_equal(e, LLM_ERR_TOO_BIG);
	assert_non_null(strstr(d.msg, "10"));
	llm_mon_agg_free(a);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(sketch_quantiles_within_one_percent_of_exact),
	    cmocka_unit_test(sketch_merge_equals_one_pass_and_survives_json),
	    cmocka_unit_test(sketch_collapses_lowest_buckets_beyond_its_bound),
	    cmocka_unit_test(windows_align_to_the_epoch_and_untimed_events_join_the_first),
	    cmocka_unit_test(groups_by_several_keys_with_null_for_absent),
	    cmocka_unit_test(feedback_joins_its_request_in_either_order),
	    cmocka_unit_test(the_same_feedback_id_counts_once),
	    cmocka_unit_test(prices_cost_by_exact_prefix_and_star),
	    cmocka_unit_test(shards_merged_from_state_equal_one_pass),
	    cmocka_unit_test(rows_are_bounded_by_max_groups),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
