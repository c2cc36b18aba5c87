/* Unit tests for lib/backend/retry: reading retry hints as openai-python reads them. */
#include "config.h"

#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "backend/retry.h"

static void feed(struct llm_retry_headers *h, const char *line)
{
	llm_retry_headers_line(h, line, strlen(line));
}

static void headers_are_read_case_blind_trimmed_and_reset_by_a_status_line(void **state)
{
	(void)state;
	struct llm_retry_headers h;
	llm_retry_headers_reset(&h);
	feed(&h, "HTTP/1.1 100 Continue\r\n");
	feed(&h, "Retry-After: 7\r\n");
	feed(&h, "HTTP/2 429 \r\n");
	assert_int_equal(h.status, 429);
	assert_false(h.have_after); /* the 100's header is forgotten */
	feed(&h, "retry-after-MS:   1500  \r\n");
	feed(&h, "X-Should-Retry: false\r\n");
	feed(&h, "Content-Type: text/event-stream; charset=utf-8\r\n");
	feed(&h, "retry-after-msx: 3\r\n"); /* another header: ignored */
	assert_true(h.have_ms);
	assert_string_equal(h.ms, "1500");
	assert_string_equal(h.content_type, "text/event-stream; charset=utf-8");
	assert_int_equal(llm_retry_should(&h), 0);
	double s;
	assert_true(llm_retry_hint(&h, &s));
	assert_true(fabs(s - 1.5) < 1e-12); /* retry-after-ms wins */
}

static void hints_follow_pythons_float_then_http_dates(void **state)
{
	(void)state;
	struct llm_retry_headers h;
	double s;
	llm_retry_headers_reset(&h);
	assert_false(llm_retry_hint(&h, &s));
	feed(&h, "retry-after: 1_000\r\n");
	assert_true(llm_retry_hint(&h, &s));
	assert_true(s == 1000.0);
	llm_retry_headers_reset(&h);
	feed(&h, "retry-after: 1e400\r\n"); /* too large for a double: too long to wait */
	assert_true(llm_retry_hint(&h, &s));
	assert_true(s == DBL_MAX);
	llm_retry_headers_reset(&h);
	feed(&h, "retry-after: soon\r\n");
	assert_false(llm_retry_hint(&h, &s));
	llm_retry_headers_reset(&h);
	time_t later = time(NULL) + 100;
	char line[128], date[64];
	struct tm tm;
	gmtime_r(&later, &tm);
	strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
	snprintf(line, sizeof line, "Retry-After: %s\r\n", date);
	feed(&h, line);
	assert_true(llm_retry_hint(&h, &s));
	assert_true(s > 95 && s <= 100);
}

static void statuses_verdicts_and_backoff_are_openai_pythons(void **state)
{
	(void)state;
	assert_true(llm_retry_status(408) && llm_retry_status(409) && llm_retry_status(429) &&
		    llm_retry_status(500) && llm_retry_status(503));
	assert_false(llm_retry_status(400) || llm_retry_status(401) || llm_retry_status(404) ||
		     llm_retry_status(200));
	struct llm_retry_headers h;
	llm_retry_headers_reset(&h);
	assert_int_equal(llm_retry_should(&h), -1);
	feed(&h, "x-should-retry: true\r\n");
	assert_int_equal(llm_retry_should(&h), 1);
	/* 0.5 s doubling, at most 8 s, less up to 25 % */
	assert_true(llm_retry_backoff(0, 0.0) == 0.5);
	assert_true(llm_retry_backoff(1, 0.0) == 1.0);
	assert_true(llm_retry_backoff(3, 0.0) == 4.0);
	assert_true(llm_retry_backoff(4, 0.0) == 8.0);
	assert_true(llm_retry_backoff(40, 0.0) == 8.0);
	assert_true(fabs(llm_retry_backoff(2, 0.999999) - 2.0 * 0.75) < 1e-5);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(headers_are_read_case_blind_trimmed_and_reset_by_a_status_line),
	    cmocka_unit_test(hints_follow_pythons_float_then_http_dates),
	    cmocka_unit_test(statuses_verdicts_and_backoff_are_openai_pythons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
