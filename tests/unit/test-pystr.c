/* Unit tests for lib/metrics/pystr: str.split() and str.lower() as Python 3.11 gives them
 * (expected values printed by Python itself). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/pystr.h"

static void expect_lower(const char *in, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 1 << 20);
	assert_int_equal(llm_py_lower(in, strlen(in), &b, NULL), LLM_OK);
	if (b.len != strlen(want) || memcmp(b.data, want, b.len))
		fail_msg("lower(\"%s\") gave \"%.*s\", want \"%s\"", in, (int)b.len, b.data, want);
	llm_buf_free(&b);
}

static void lower_is_pythons(void **state)
{
	(void)state;
	expect_lower("HELLO World", "hello world");
	expect_lower("\xC4\xB0stanbul", "i\xCC\x87stanbul"); /* U+0130: two code points */
	/* Final sigma at the end of a word, also before punctuation; a lone one stays medial. */
	expect_lower("\xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3 \xCE\x9F\xCE\x94\xCE\x9F\xCE\xA3.",
		     "\xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82 \xCE\xBF\xCE\xB4\xCE\xBF\xCF\x82.");
	expect_lower("\xCE\xA3\xCE\x91 \xCE\xA3", "\xCF\x83\xCE\xB1 \xCF\x83");
	expect_lower("x \xCE\xA3", "x \xCF\x83");
	/* A combining accent after sigma is skipped when looking for a following letter. */
	expect_lower("\xCE\x91\xCE\xA3\xCC\x81\xCE\x92", "\xCE\xB1\xCF\x83\xCC\x81\xCE\xB2");
	/* Titlecase digraph and Latin-1 capitals. */
	expect_lower("\xC7\x85ungla \xC3\x80\xC3\x89\xC3\x8E",
		     "\xC7\x86ungla \xC3\xA0\xC3\xA9\xC3\xAE");
}

static void lower_rejects_invalid_utf8(void **state)
{
	(void)state;
	struct llm_buf b;
	struct llm_diag d;
	llm_buf_init(&b, 1 << 20);
	assert_int_equal(llm_py_lower("ab\xFF", 3, &b, &d), LLM_ERR_UTF8);
	assert_non_null(strstr(d.msg, "byte 2"));
	llm_buf_free(&b);
}

struct toks {
	char all[256];
	int n;
	int stop_after;
};

static bool collect(void *ctx, const char *tok, size_t len)
{
	struct toks *t = ctx;
	size_t at = strlen(t->all);
	snprintf(t->all + at, sizeof t->all - at, "[%.*s]", (int)len, tok);
	return ++t->n != t->stop_after;
}

static void split_is_pythons(void **state)
{
	(void)state;
	struct toks t = {0};
	/* U+00A0, U+3000, U+2028 and U+0085 separate; U+200B (zero-width space) does not. */
	const char *s = "  A\xC2\xA0" "B\xE3\x80\x80" "C\xE2\x80\xA8\xC2\x85"
			"D\xE2\x80\x8B" "E \t\n";
	llm_py_split(s, strlen(s), collect, &t);
	assert_string_equal(t.all, "[A][B][C][D\xE2\x80\x8B" "E]");
	memset(&t, 0, sizeof t);
	llm_py_split("", 0, collect, &t);
	assert_int_equal(t.n, 0);
	memset(&t, 0, sizeof t);
	t.stop_after = 2;
	llm_py_split("a b c d", 7, collect, &t);
	assert_string_equal(t.all, "[a][b]");
	assert_true(llm_py_isspace(0x3000));
	assert_false(llm_py_isspace(0x200B));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(lower_is_pythons),
	    cmocka_unit_test(lower_rejects_invalid_utf8),
	    cmocka_unit_test(split_is_pythons),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
