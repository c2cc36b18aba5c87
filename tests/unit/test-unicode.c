/* Unit tests for lib/text/unicode: Python's character classes and each cleaning step. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "text/unicode.h"

/* Clean s with the given steps and check the result and which steps said they changed it. */
static void expect_clean(unsigned steps, enum llm_uform form, bool joiners, const char *in,
			 const char *want, unsigned want_changed)
{
	struct llm_clean c;
	llm_clean_init(&c, steps, form, joiners);
	const char *out;
	size_t n;
	unsigned ch;
	assert_int_equal(llm_clean_text(&c, in, strlen(in), &out, &n, &ch), LLM_OK);
	if (n != strlen(want) || memcmp(out, want, n))
		fail_msg("clean(\"%s\") gave \"%.*s\", want \"%s\"", in, (int)n, out, want);
	assert_int_equal(ch, want_changed);
	llm_clean_free(&c);
}

static void python_whitespace_and_line_breaks(void **state)
{
	/* The sets Python 3.11 reports for str.isspace() and str.splitlines(). */
	static const uint32_t spaces[] = {0x09,	  0x0A,	  0x0B,	  0x0C,	  0x0D,	  0x1C,	  0x1D,
					  0x1E,	  0x1F,	  0x20,	  0x85,	  0xA0,	  0x1680, 0x2000,
					  0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000};
	for (size_t i = 0; i < sizeof spaces / sizeof *spaces; i++)
		assert_true(llm_unicode_is_space(spaces[i]));
	assert_false(llm_unicode_is_space(0x200B)); /* zero-width space is not a space */
	assert_false(llm_unicode_is_space(0x180E));
	assert_false(llm_unicode_is_space('a'));
	assert_true(llm_unicode_is_line_break(0x1E));
	assert_false(llm_unicode_is_line_break(0x1F));
	assert_true(llm_unicode_is_line_break(0x2029));
	assert_false(llm_unicode_is_line_break(' '));
	assert_true(llm_unicode_is_alpha(0x00E9));  /* é, Ll */
	assert_true(llm_unicode_is_alpha(0x4E2D));  /* 中, Lo */
	assert_false(llm_unicode_is_alpha(0x0661)); /* Arabic-Indic one, Nd */
	assert_true(llm_unicode_is_digit(0x0661));
	assert_int_equal(llm_unicode_count("caf\xc3\xa9 \xf0\x9f\x98\x80", 10), 6);
}

static void line_breaks_become_lf(void **state)
{
	expect_clean(LLM_CLEAN_NEWLINES, LLM_UFORM_NFC, false, "a\r\nb\rc\vd\fe", "a\nb\nc\nd\ne",
		     LLM_CLEAN_NEWLINES);
	expect_clean(LLM_CLEAN_NEWLINES, LLM_UFORM_NFC, false,
		     "a\xc2\x85"
		     "b\xe2\x80\xa8"
		     "c",
		     "a\nb\nc", LLM_CLEAN_NEWLINES);
	expect_clean(LLM_CLEAN_NEWLINES, LLM_UFORM_NFC, false, "a\nb", "a\nb", 0);
}

static void controls_go_but_tab_and_newline_stay(void **state)
{
	expect_clean(LLM_CLEAN_CONTROLS, LLM_UFORM_NFC, false,
		     "a\x01"
		     "b\tc\nd\x7f"
		     "e\xc2\x9b"
		     "f",
		     "ab\tc\nd"
		     "ef",
		     LLM_CLEAN_CONTROLS);
	/* Without the newline step a CR is a control like any other. */
	expect_clean(LLM_CLEAN_CONTROLS, LLM_UFORM_NFC, false, "a\r\nb", "a\nb",
		     LLM_CLEAN_CONTROLS);
}

static void invisible_characters_go_and_joiners_only_when_asked(void **state)
{
	/* ZWSP, soft hyphen, BOM, LRM, RLO, word joiner, a tag character. */
	expect_clean(LLM_CLEAN_INVISIBLE, LLM_UFORM_NFC, false,
		     "a\xe2\x80\x8b"
		     "b\xc2\xad"
		     "c\xef\xbb\xbf"
		     "d\xe2\x80\x8e"
		     "e\xe2\x80\xae"
		     "f\xe2\x81\xa0"
		     "g\xf3\xa0\x80\x81",
		     "abcdefg", LLM_CLEAN_INVISIBLE);
	const char *family = "\xf0\x9f\x91\xa8\xe2\x80\x8d\xf0\x9f\x91\xa9"; /* man ZWJ woman */
	expect_clean(LLM_CLEAN_INVISIBLE, LLM_UFORM_NFC, false, family, family, 0);
	expect_clean(LLM_CLEAN_INVISIBLE, LLM_UFORM_NFC, true, family,
		     "\xf0\x9f\x91\xa8\xf0\x9f\x91\xa9", LLM_CLEAN_INVISIBLE);
}

static void unicode_spaces_become_ascii_spaces(void **state)
{
	expect_clean(LLM_CLEAN_SPACES, LLM_UFORM_NFC, false,
		     "a\xc2\xa0"
		     "b\xe3\x80\x80"
		     "c\xe2\x80\xaf"
		     "d",
		     "a b c d", LLM_CLEAN_SPACES);
}

static void nfc_composes_and_nfkc_folds_compatibility_forms(void **state)
{
	/* e + COMBINING ACUTE -> U+00E9 (UAX #15); the ASCII e is pulled into the span. */
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFC, false, "cafe\xcc\x81!", "caf\xc3\xa9!",
		     LLM_CLEAN_NORMALIZE);
	/* Canonical reordering: dot below (ccc 220) before acute (ccc 230), then composed. */
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFC, false, "a\xcc\x81\xcc\xa3",
		     "\xe1\xba\xa1\xcc\x81", LLM_CLEAN_NORMALIZE);
	/* NFC leaves the fi ligature; NFKC folds it, and fullwidth A. */
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFC, false, "\xef\xac\x81", "\xef\xac\x81", 0);
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFKC, false, "\xef\xac\x81 \xef\xbc\xa1",
		     "fi A", LLM_CLEAN_NORMALIZE);
	/* Hangul syllables compose algorithmically: U+1100 U+1161 -> U+AC00. */
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFC, false, "\xe1\x84\x80\xe1\x85\xa1",
		     "\xea\xb0\x80", LLM_CLEAN_NORMALIZE);
	expect_clean(LLM_CLEAN_NORMALIZE, LLM_UFORM_NFC, false, "plain ascii", "plain ascii", 0);
}

static void lowercase_maps_letters_beyond_ascii(void **state)
{
	expect_clean(LLM_CLEAN_LOWERCASE, LLM_UFORM_NFC, false,
		     "\xc3\x80"
		     "BC \xce\xa3", /* ÀBC Σ */
		     "\xc3\xa0"
		     "bc \xcf\x83",
		     LLM_CLEAN_LOWERCASE);
	/* U+023A takes two bytes, its lowercase U+2C65 three. */
	expect_clean(LLM_CLEAN_LOWERCASE, LLM_UFORM_NFC, false, "\xc8\xba", "\xe2\xb1\xa5",
		     LLM_CLEAN_LOWERCASE);
}

static void whitespace_layout_steps(void **state)
{
	unsigned all = LLM_CLEAN_COLLAPSE | LLM_CLEAN_TRIM | LLM_CLEAN_BLANK_LINES;
	expect_clean(all, LLM_UFORM_NFC, false,
		     "  \n\nfirst  line \t\n    indented\t\tcode  \n\n\n\n\nend \n\n",
		     "first line\n    indented code\n\nend",
		     LLM_CLEAN_COLLAPSE | LLM_CLEAN_TRIM | LLM_CLEAN_BLANK_LINES);
	/* Each step alone. */
	expect_clean(LLM_CLEAN_COLLAPSE, LLM_UFORM_NFC, false, "a  b\tc \t d ", "a b\tc d ",
		     LLM_CLEAN_COLLAPSE);
	expect_clean(LLM_CLEAN_TRIM, LLM_UFORM_NFC, false, " a  \nb\t\n", "a\nb", LLM_CLEAN_TRIM);
	expect_clean(LLM_CLEAN_BLANK_LINES, LLM_UFORM_NFC, false, "a\n\n\nb\n\nc", "a\n\nb\n\nc",
		     LLM_CLEAN_BLANK_LINES);
	expect_clean(all, LLM_UFORM_NFC, false, "already\n\nclean", "already\n\nclean", 0);
	expect_clean(all, LLM_UFORM_NFC, false, " \n\t\n", "", LLM_CLEAN_TRIM);
}

static void the_default_steps_together(void **state)
{
	expect_clean(LLM_CLEAN_DEFAULT, LLM_UFORM_NFC, false,
		     "\xef\xbb\xbf"
		     "Cafe\xcc\x81\xc2\xa0 au  lait\r\n\r\n\r\n\r\nfin\xe2\x80\x8b \x07",
		     "Caf\xc3\xa9 au lait\n\nfin",
		     LLM_CLEAN_NEWLINES | LLM_CLEAN_CONTROLS | LLM_CLEAN_INVISIBLE |
			 LLM_CLEAN_SPACES | LLM_CLEAN_NORMALIZE | LLM_CLEAN_COLLAPSE |
			 LLM_CLEAN_TRIM | LLM_CLEAN_BLANK_LINES);
	unsigned step;
	assert_true(llm_clean_step_parse("blank-lines", 11, &step));
	assert_int_equal(step, LLM_CLEAN_BLANK_LINES);
	assert_false(llm_clean_step_parse("blank", 5, &step));
	assert_string_equal(llm_clean_step_name(4), "normalize");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(python_whitespace_and_line_breaks),
	    cmocka_unit_test(line_breaks_become_lf),
	    cmocka_unit_test(controls_go_but_tab_and_newline_stay),
	    cmocka_unit_test(invisible_characters_go_and_joiners_only_when_asked),
	    cmocka_unit_test(unicode_spaces_become_ascii_spaces),
	    cmocka_unit_test(nfc_composes_and_nfkc_folds_compatibility_forms),
	    cmocka_unit_test(lowercase_maps_letters_beyond_ascii),
	    cmocka_unit_test(whitespace_layout_steps),
	    cmocka_unit_test(the_default_steps_together),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
