/* Unit tests for lib/tune/sweep: parsing search spaces against an option table, grid order and
 * counts, seeded random draws within their ranges. */
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

#include "tune/sweep.h"

/* A few of llm-tune train's options, in its form. */
static const struct llm_opt table[] = {
    {"out", 'o', LLM_OPT_STRING, "DIR", "out"},
    {"batch-size", 'B', LLM_OPT_INT, "N", "batch", "8", .min = 1, .max = 65536},
    {"lr", 0, LLM_OPT_DOUBLE, "X", "lr", "0.001", .min = 0, .max = 10},
    {"warmup", 0, LLM_OPT_INT, "N", "warmup", "0", .min = 0, .max = 1e12},
    {"steps", 0, LLM_OPT_INT, "N", "steps"},
    {"lora", 0, LLM_OPT_STRING, "SPEC", "lora"},
    {"merge", 0, LLM_OPT_FLAG, NULL, "merge"},
    {"threads", 'j', LLM_OPT_INT, "N", "threads"},
    {0},
};

static enum llm_err parse(const char *text, struct llm_sweep_space *s, struct llm_diag *d)
{
	return llm_sweep_space_parse(text, strlen(text), "space.json", table, s, d);
}

static void a_grid_is_the_product_first_parameter_slowest(void **state)
{
	(void)state;
	struct llm_sweep_space s;
	struct llm_diag d;
	assert_int_equal(parse("{\"params\": {\"lr\": [1e-3, 0.003], \"batch-size\": {\"values\": "
			       "[4, 8, 16]}, \"lora\": [\"r=8,alpha=16,targets=q,v\"]},"
			       " \"fixed\": {\"steps\": 100, \"merge\": true}}",
			       &s, &d),
			 LLM_OK);
	assert_int_equal(s.method, LLM_SWEEP_GRID);
	assert_int_equal(s.nparams, 3);
	assert_int_equal(s.nfixed, 2);
	assert_string_equal(s.fixed[0].values[0], "100");
	assert_string_equal(s.fixed[1].values[0], "true");
	assert_int_equal(llm_sweep_grid_size(&s), 6);
	struct llm_sweep_trials t;
	assert_int_equal(llm_sweep_trials_make(&s, 6, 1, &t, &d), LLM_OK);
	const char *want[6][2] = {{"0.001", "4"}, {"0.001", "8"}, {"0.001", "16"},
				  {"0.003", "4"}, {"0.003", "8"}, {"0.003", "16"}};
	for (size_t i = 0; i < 6; i++) {
		assert_string_equal(t.values[i * 3], want[i][0]);
		assert_string_equal(t.values[i * 3 + 1], want[i][1]);
		assert_string_equal(t.values[i * 3 + 2], "r=8,alpha=16,targets=q,v");
	}
	assert_true(llm_sweep_trials_vary(&t, 0));
	assert_true(llm_sweep_trials_vary(&t, 1));
	assert_false(llm_sweep_trials_vary(&t, 2));
	llm_sweep_trials_free(&t);
	/* --trials caps a grid: its first points; more than the grid is refused. */
	assert_int_equal(llm_sweep_trials_make(&s, 2, 1, &t, &d), LLM_OK);
	assert_string_equal(t.values[3 + 1], "8");
	llm_sweep_trials_free(&t);
	assert_int_equal(llm_sweep_trials_make(&s, 7, 1, &t, &d), LLM_ERR_RANGE);
	llm_sweep_space_free(&s);
}

static void random_draws_are_reproducible_and_within_their_ranges(void **state)
{
	(void)state;
	struct llm_sweep_space s;
	struct llm_diag d;
	assert_int_equal(parse("{\"method\": \"random\", \"params\": {"
			       "\"lr\": {\"min\": 1e-4, \"max\": 1e-2, \"log\": true},"
			       "\"warmup\": {\"min\": 0, \"max\": 10},"
			       "\"batch-size\": [4, 8]}}",
			       &s, &d),
			 LLM_OK);
	assert_int_equal(s.method, LLM_SWEEP_RANDOM);
	assert_int_equal(llm_sweep_grid_size(&s), 0);
	struct llm_sweep_trials a, b, c;
	size_t n = 2000;
	assert_int_equal(llm_sweep_trials_make(&s, n, 7, &a, &d), LLM_OK);
	assert_int_equal(llm_sweep_trials_make(&s, n, 7, &b, &d), LLM_OK);
	assert_int_equal(llm_sweep_trials_make(&s, n, 8, &c, &d), LLM_OK);
	size_t same = 0, below_1e3 = 0, fours = 0;
	double lsum = 0;
	for (size_t i = 0; i < n; i++) {
		for (size_t p = 0; p < 3; p++)
			assert_string_equal(a.values[i * 3 + p], b.values[i * 3 + p]);
		same += !strcmp(a.values[i * 3], c.values[i * 3]);
		double lr = strtod(a.values[i * 3], NULL);
		assert_true(lr >= 1e-4 && lr <= 1e-2);
		below_1e3 += lr < 1e-3;
		lsum += log10(lr);
		char *end;
		long w = strtol(a.values[i * 3 + 1], &end, 10);
		assert_true(*end == '\0' && w >= 0 && w <= 10);
		const char *bs = a.values[i * 3 + 2];
		assert_true(!strcmp(bs, "4") || !strcmp(bs, "8"));
		fours += !strcmp(bs, "4");
	}
	assert_true(same < n / 10); /* another seed, other draws */
	/* Log-uniform: half the draws below the geometric middle, mean log10 about -3. */
	assert_true(below_1e3 > n * 0.45 && below_1e3 < n * 0.55);
	assert_true(fabs(lsum / (double)n + 3) < 0.05);
	assert_true(fours > n * 0.45 && fours < n * 0.55);
	llm_sweep_trials_free(&a);
	llm_sweep_trials_free(&b);
	llm_sweep_trials_free(&c);
	llm_sweep_space_free(&s);
}

static void unknown_and_reserved_names_are_usage_errors_naming_them(void **state)
{
	(void)state;
	struct llm_sweep_space s;
	struct llm_diag d;
	assert_int_equal(parse("{\"params\": {\"lrr\": [1]}}", &s, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "unknown parameter 'lrr'"));
	assert_string_equal(d.file, "space.json");
	assert_int_equal(parse("{\"params\": {\"lr\": [1]}, \"fixed\": {\"stepz\": 3}}", &s, &d),
			 LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "'stepz'"));
	assert_int_equal(parse("{\"params\": {\"out\": [\"a\"]}}", &s, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "cannot be swept"));
	assert_int_equal(parse("{\"params\": {\"threads\": [1, 2]}}", &s, &d), LLM_ERR_USAGE);
	assert_int_equal(parse("{\"params\": {\"lr\": [1]}, \"extra\": 1}", &s, &d), LLM_ERR_USAGE);
}

static void malformed_spaces_are_refused_with_a_reason(void **state)
{
	(void)state;
	struct llm_sweep_space s;
	struct llm_diag d;
	assert_int_equal(parse("{\"params\": ", &s, &d), LLM_ERR_JSON);
	assert_int_equal(parse("[]", &s, &d), LLM_ERR_TYPE);
	assert_int_equal(parse("{\"params\": {}}", &s, &d), LLM_ERR_TYPE);
	assert_int_equal(parse("{\"method\": \"bayes\", \"params\": {\"lr\": [1]}}", &s, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(parse("{\"params\": {\"lr\": []}}", &s, &d), LLM_ERR_USAGE);
	/* A range needs a random search, numbers, min <= max, and min > 0 when log. */
	assert_int_equal(parse("{\"params\": {\"lr\": {\"min\": 0.1, \"max\": 1}}}", &s, &d),
			 LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "random"));
	assert_int_equal(parse("{\"method\": \"random\", \"params\": {\"lr\": {\"min\": 2, "
			       "\"max\": 1}}}",
			       &s, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(parse("{\"method\": \"random\", \"params\": {\"lr\": {\"min\": 0, "
			       "\"max\": 1, \"log\": true}}}",
			       &s, &d),
			 LLM_ERR_RANGE);
	assert_int_equal(parse("{\"method\": \"random\", \"params\": {\"lora\": {\"min\": 0, "
			       "\"max\": 1}}}",
			       &s, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(parse("{\"params\": {\"merge\": [1]}}", &s, &d), LLM_ERR_TYPE);
	assert_int_equal(parse("{\"params\": {\"lr\": [null]}}", &s, &d), LLM_ERR_TYPE);
	assert_int_equal(parse("{\"params\": {\"lr\": [1]}, \"fixed\": {\"lr\": 2}}", &s, &d),
			 LLM_ERR_USAGE);
	assert_int_equal(parse("{\"params\": {\"lr\": [1], \"lr\": [2]}}", &s, &d), LLM_ERR_JSON);
}

static void a_million_point_grid_counts_and_orders_its_points(void **state)
{
	(void)state;
	struct llm_sweep_space s;
	struct llm_diag d;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	llm_buf_puts(&b, "{\"params\": {\"lr\": [");
	for (int i = 0; i < 1000; i++)
		llm_buf_printf(&b, "%s%d", i ? "," : "", i);
	llm_buf_puts(&b, "], \"warmup\": [");
	for (int i = 0; i < 1000; i++)
		llm_buf_printf(&b, "%s%d", i ? "," : "", i);
	llm_buf_puts(&b, "]}}");
	assert_int_equal(llm_sweep_space_parse(b.data, b.len, "s", table, &s, &d), LLM_OK);
	assert_int_equal(llm_sweep_grid_size(&s), 1000000);
	struct llm_sweep_trials t;
	assert_int_equal(llm_sweep_trials_make(&s, 1001, 1, &t, &d), LLM_OK);
	assert_string_equal(t.values[1000 * 2], "1");
	assert_string_equal(t.values[1000 * 2 + 1], "0");
	llm_sweep_trials_free(&t);
	llm_sweep_space_free(&s);
	llm_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_grid_is_the_product_first_parameter_slowest),
	    cmocka_unit_test(random_draws_are_reproducible_and_within_their_ranges),
	    cmocka_unit_test(unknown_and_reserved_names_are_usage_errors_naming_them),
	    cmocka_unit_test(malformed_spaces_are_refused_with_a_reason),
	    cmocka_unit_test(a_million_point_grid_counts_and_orders_its_points),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
