/* Unit tests for lib/monitor/where: the --where language.  Comparisons on numbers, strings,
 * bare words and booleans; paths into objects and, with "any" semantics, into arrays (flags,
 * joined feedback scores); exists(); and/or/not with their precedence and parentheses; and
 * malformed expressions refused with the column of the fault. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/where.h"

static const char *rec_text =
    "{\"request_id\":\"req-1\",\"model\":\"support-bot@3\",\"key_id\":\"42\",\"status\":503,"
    "\"latency_ms\":1250.5,\"ts\":\"2026-01-02T03:04:05.000Z\",\"truncated\":true,"
    "\"error\":null,\"usage\":{\"prompt_tokens\":31,\"completion_tokens\":120},"
    "\"flags\":[{\"kind\":\"pii\",\"type\":\"email\"},{\"kind\":\"refusal\"}],"
    "\"feedback\":{\"count\":2,\"mean\":3,\"min\":1,\"max\":5,\"score\":[1,5],"
    "\"comments\":[\"wrong\",\"said \\\"no\\\"\"]},\"prompt\":\"caf\\u00e9\"}";

static bool match(const char *expr)
{
	json_error_t jerr;
	json_t *rec = json_loads(rec_text, 0, &jerr);
	assert_non_null(rec);
	struct llm_mon_where *w;
	struct llm_diag d;
	enum llm_err e = llm_mon_where_compile(&w, expr, &d);
	if (e)
		fail_msg("'%s' did not compile: %s", expr, d.msg);
	bool r = llm_mon_where_match(w, rec);
	llm_mon_where_free(w);
	json_decref(rec);
	return r;
}

/* expr must be refused, with msg containing want. */
static void refused(const char *expr, const char *want)
{
	struct llm_mon_where *w = NULL;
	struct llm_diag d;
	assert_int_equal(llm_mon_where_compile(&w, expr, &d), LLM_ERR_USAGE);
	assert_null(w);
	if (!strstr(d.msg, want))
		fail_msg("'%s': '%s' lacks '%s'", expr, d.msg, want);
}

static void numbers_compare_as_numbers(void **state)
{
	(void)state;
	assert_true(match("status>=500"));
	assert_false(match("status<500"));
	assert_true(match("status==503"));
	assert_true(match("status=503"));
	assert_true(match("status!=200"));
	assert_true(match("latency_ms > 1000"));
	assert_true(match("latency_ms<=1250.5"));
	assert_false(match("latency_ms<1250.5"));
	assert_true(match("usage.completion_tokens > 100"));
	assert_true(match("latency_ms > 1e3"));
	/* A number never equals a quoted string. */
	assert_false(match("status==\"503\""));
}

static void strings_bare_words_and_booleans(void **state)
{
	(void)state;
	assert_true(match("model==\"support-bot@3\""));
	assert_true(match("model='support-bot@3'"));
	assert_true(match("model=support-bot@3"));
	assert_false(match("model=support-bot"));
	assert_true(match("model!=gpt-4o"));
	/* A number literal against a string field compares with the literal's text. */
	assert_true(match("key_id=42"));
	/* Strings order bytewise, so UTC times compare as times. */
	assert_true(match("ts>=\"2026-01-01\""));
	assert_false(match("ts<2026-01-02T00:00:00Z"));
	assert_true(match("prompt=\"caf\\u00e9\""));
	assert_true(match("truncated=true"));
	assert_false(match("truncated=false"));
	assert_true(match("truncated!=false"));
}

static void arrays_match_when_any_element_does(void **state)
{
	(void)state;
	assert_true(match("flags.kind=refusal"));
	assert_true(match("flags.kind=pii"));
	assert_false(match("flags.kind=injection"));
	assert_true(match("not flags.kind=injection"));
	assert_false(match("not flags.kind=refusal"));
	assert_true(match("flags.type=email"));
	assert_true(match("feedback.score<=2"));
	assert_true(match("feedback.score>=4"));
	assert_false(match("feedback.score==3"));
	assert_true(match("feedback.mean==3"));
	assert_true(match("feedback.comments=\"said \\\"no\\\"\""));
}

static void absent_and_null_fields_are_false(void **state)
{
	(void)state;
	assert_false(match("nothing=1"));
	assert_false(match("nothing!=1"));
	assert_true(match("not nothing=1"));
	assert_false(match("error=null"));
	assert_false(match("exists(error)"));
	assert_false(match("exists(nothing)"));
	assert_true(match("exists(feedback)"));
	assert_true(match("exists(flags.kind)"));
	assert_false(match("exists(flags.span)"));
	assert_false(match("usage.nothing.deeper>1"));
	assert_false(match("model.inner=x"));
}

static void and_binds_tighter_than_or_and_not_tightest(void **state)
{
	(void)state;
	assert_true(match("status=200 or status=503 and model=support-bot@3"));
	assert_false(match("(status=200 or status=503) and model=x"));
	assert_true(match("status=200 or status=503 and not model=x"));
	assert_true(match("not status=200 and not model=x"));
	assert_false(match("not (status=503 and latency_ms>1000)"));
	assert_true(match("status>=500 && !flags.kind=injection || model=x"));
	assert_true(match("  ( ( feedback.min <= 2 ) )  "));
	assert_true(match("feedback.score<=2 and flags.kind=refusal"));
}

static void malformed_expressions_name_the_column(void **state)
{
	(void)state;
	refused("", "column 1: expected an expression");
	refused("status >", "column 9: expected a value");
	refused("status 500", "column 8: expected a comparison");
	refused("status=500 and", "column 15: expected a field name");
	refused("(status=500", "expected ')' to close the '(' of column 1");
	refused("status=500)", "column 11: expected 'and', 'or' or the end");
	refused("model=\"abc", "column 7: a string that does not end");
	refused("model=\"a\\qb\"", "an unknown escape");
	refused("exists status", "column 8: expected '(' after exists");
	refused("feedback.=2", "column 10: expected a field name after '.'");
	refused("5=status", "column 1: expected a field name");
	refused("status=500 xor 1", "column 12: expected 'and', 'or' or the end");
}

static void reads_names_the_top_level_fields_used(void **state)
{
	(void)state;
	struct llm_mon_where *w;
	struct llm_diag d;
	assert_int_equal(llm_mon_where_compile(&w, "status>1 or not exists(feedback.score)", &d),
			 LLM_OK);
	assert_true(llm_mon_where_reads(w, "feedback"));
	assert_true(llm_mon_where_reads(w, "status"));
	assert_false(llm_mon_where_reads(w, "flags"));
	llm_mon_where_free(w);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(numbers_compare_as_numbers),
	    cmocka_unit_test(strings_bare_words_and_booleans),
	    cmocka_unit_test(arrays_match_when_any_element_does),
	    cmocka_unit_test(absent_and_null_fields_are_false),
	    cmocka_unit_test(and_binds_tighter_than_or_and_not_tightest),
	    cmocka_unit_test(malformed_expressions_name_the_column),
	    cmocka_unit_test(reads_names_the_top_level_fields_used),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
