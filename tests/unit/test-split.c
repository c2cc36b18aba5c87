/* Unit tests for lib/data/split: the hash-to-[0,1) mapping against SHA-256 values computed
 * independently (Python's hashlib), ratio parsing, and the choice of split. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "data/split.h"

static void unit_is_the_top_53_bits_of_sha256(void **state)
{
	(void)state;
	double u;
	/* sha256("abc") = ba7816bf8f01cfea...: 0xba7816bf8f01cfea >> 11 / 2^53 */
	assert_int_equal(llm_split_unit("abc", 3, NULL, &u), LLM_OK);
	assert_float_equal(u, 0.7283949105904021, 1e-16);
	assert_int_equal(llm_split_unit("r1", 2, NULL, &u), LLM_OK);
	assert_float_equal(u, 0.5115343198611854, 1e-16);
	/* With a salt the digest is of "7:r1". */
	assert_int_equal(llm_split_unit("r1", 2, "7", &u), LLM_OK);
	assert_float_equal(u, 0.22462483405296485, 1e-16);
}

static void ratios_and_names_are_checked(void **state)
{
	(void)state;
	struct llm_split_plan p;
	struct llm_diag d;
	assert_int_equal(llm_split_plan_parse(&p, "0.8,0.1,0.1", "train,val,test", &d), LLM_OK);
	assert_int_equal(p.n, 3);
	assert_string_equal(p.name[2], "test");
	assert_float_equal(p.upper[0], 0.8, 1e-12);
	assert_float_equal(p.upper[1], 0.9, 1e-12);
	assert_float_equal(p.upper[2], 1.0, 0);
	llm_split_plan_free(&p);
	static const char *const bad[][2] = {
	    {"0.8,0.1", "train,val,test"},
	    {"0.8,0.1,0.1", "train,val"},
	    {"0.5,0.4", "a,b"},
	    {"1.5,-0.5", "a,b"},
	    {"0.5,x", "a,b"},
	    {"0.5,0.5", "a,a"},
	    {"0.5,0.5", "a,../b"},
	    {"0.5,0.5", "a,"},
	    {"", ""},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_split_plan_parse(&p, bad[i][0], bad[i][1], &d) != LLM_ERR_USAGE)
			fail_msg("accepted --ratios %s --names %s", bad[i][0], bad[i][1]);
}

static void pick_follows_the_cumulative_ratios(void **state)
{
	(void)state;
	struct llm_split_plan p;
	assert_int_equal(llm_split_plan_parse(&p, "0.8,0.1,0.1", "train,val,test", NULL), LLM_OK);
	assert_int_equal(llm_split_pick(&p, 0.0), 0);
	assert_int_equal(llm_split_pick(&p, 0.7999), 0);
	assert_int_equal(llm_split_pick(&p, 0.8), 1);
	assert_int_equal(llm_split_pick(&p, 0.8999), 1);
	assert_int_equal(llm_split_pick(&p, 0.95), 2);
	assert_int_equal(llm_split_pick(&p, 0.9999999999), 2);
	llm_split_plan_free(&p);
	/* A zero ratio never receives a record. */
	assert_int_equal(llm_split_plan_parse(&p, "0.5,0,0.5", "a,b,c", NULL), LLM_OK);
	assert_int_equal(llm_split_pick(&p, 0.5), 2);
	llm_split_plan_free(&p);
}

static void ten_thousand_keys_split_close_to_the_ratios(void **state)
{
	(void)state;
	struct llm_split_plan p;
	assert_int_equal(llm_split_plan_parse(&p, "0.8,0.1,0.1", "train,val,test", NULL), LLM_OK);
	size_t count[3] = {0};
	for (int i = 0; i < 10000; i++) {
		char key[32];
		int n = snprintf(key, sizeof key, "doc-%d", i);
		double u;
		assert_int_equal(llm_split_unit(key, (size_t)n, NULL, &u), LLM_OK);
		count[llm_split_pick(&p, u)]++;
	}
	/* Binomial standard deviations: 40 for train, 30 for val and test; allow 4 of them. */
	assert_in_range(count[0], 8000 - 160, 8000 + 160);
	assert_in_range(count[1], 1000 - 120, 1000 + 120);
	assert_in_range(count[2], 1000 - 120, 1000 + 120);
	llm_split_plan_free(&p);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(unit_is_the_top_53_bits_of_sha256),
	    cmocka_unit_test(ratios_and_names_are_checked),
	    cmocka_unit_test(pick_follows_the_cumulative_ratios),
	    cmocka_unit_test(ten_thousand_keys_split_close_to_the_ratios),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
