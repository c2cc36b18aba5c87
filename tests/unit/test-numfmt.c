/* Unit tests for the number formatting of lib/core/buf that llm-eval writes its scores with:
 * llm_buf_put_g must give exactly the text of snprintf's "%.*g" (its fast path decides the
 * rounding itself), and llm_buf_put_int that of "%lld", over scores of every shape, values at
 * rounding ties and powers of ten, and a million random doubles. */
#include "config.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"

static void same_as_printf(double v, int prec)
{
	char want[64];
	snprintf(want, sizeof want, "%.*g", prec, v);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_buf_put_g(&b, v, prec), LLM_OK);
	if (strcmp(b.data, want))
		fail_msg("%.17g at precision %d: got %s, printf writes %s", v, prec, b.data, want);
	llm_buf_free(&b);
}

static uint64_t rng_state = 0x853c49e6748fea9bULL;
static uint64_t next_u64(void)
{
	uint64_t x = rng_state;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return rng_state = x;
}

static void scores_and_edges_read_as_printf_writes_them(void **state)
{
	(void)state;
	static const double v[] = {0,
				   -0.0,
				   1,
				   100,
				   43.36229047,
				   0.7666666667,
				   2.0 / 3,
				   1.0 / 3,
				   0.1,
				   1e-5,
				   9.9999999995e-5,
				   1e-4,
				   0.99999999995,
				   0.999999999949,
				   9999999999.5,
				   999999999.95,
				   1234567890.5,
				   0.5,
				   0.125,
				   12345.678905,
				   1e15,
				   1e16,
				   1e300,
				   5e-324,
				   -43.5,
				   NAN,
				   INFINITY,
				   -INFINITY,
				   DBL_MAX,
				   1e-300,
				   123456789012345.0,
				   0.000123456789012345};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++)
		for (int p = 1; p <= 17; p++)
			same_as_printf(v[i], p);
	/* Scores as the metrics make them: ratios of small integers, in percent or not. */
	for (int n = 1; n <= 300; n++)
		for (int k = 0; k <= n; k++) {
			same_as_printf((double)k / n, 10);
			same_as_printf(100.0 * k / n, 10);
		}
}

static void random_doubles_read_as_printf_writes_them(void **state)
{
	(void)state;
	for (int i = 0; i < 1000000; i++) {
		uint64_t r = next_u64();
		double v;
		if (i % 2) { /* any bit pattern in a score's range of magnitudes */
			v = ldexp((double)(r >> 11) / 9007199254740992.0 + 0.5, (int)(r % 80) - 40);
			if (r & 1024)
				v = -v;
		} else { /* decimals with few digits, near ties at precision 10 */
			v = (double)(r % 100000000000ULL) / pow(10, (double)(r % 13));
		}
		same_as_printf(v, i % 4 ? 10 : (int)(r % 15) + 1);
	}
}

static void integers_read_as_printf_writes_them(void **state)
{
	(void)state;
	static const long long v[] = {
	    0, 1, -1, 9, 10, 99, 100, 12345, -987654321, 9000000000000000LL, LLONG_MAX, LLONG_MIN};
	for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
		char want[32];
		snprintf(want, sizeof want, "%lld", v[i]);
		struct llm_buf b;
		llm_buf_init(&b, 0);
		assert_int_equal(llm_buf_put_int(&b, v[i]), LLM_OK);
		assert_string_equal(b.data, want);
		llm_buf_free(&b);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(scores_and_edges_read_as_printf_writes_them),
	    cmocka_unit_test(random_doubles_read_as_printf_writes_them),
	    cmocka_unit_test(integers_read_as_printf_writes_them),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
