/* Unit tests for lib/data/quality: each rule's measurements on small documents, worked out
 * by hand from datatrove's definitions, and the threshold boundaries (a value exactly at a
 * threshold passes where datatrove compares strictly, fails where it does not). */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "data/quality.h"

static struct llm_quality *make(const char *rules, const char *const *sets)
{
	struct llm_quality *q;
	struct llm_diag d;
	assert_int_equal(llm_quality_new(&q), LLM_OK);
	assert_int_equal(llm_quality_use(q, rules, &d), LLM_OK);
	for (; sets && *sets; sets++)
		if (llm_quality_set(q, *sets, &d))
			fail_msg("set %s: %s", *sets, d.msg);
	return q;
}

/* The hit for check, or NULL. */
static const struct llm_quality_hit *hit(const struct llm_quality_result *r, const char *check)
{
	for (size_t i = 0; i < r->nhits; i++)
		if (!strcmp(r->hits[i].check, check))
			return &r->hits[i];
	return NULL;
}

static void run(struct llm_quality *q, const char *text, struct llm_quality_result *r)
{
	assert_int_equal(llm_quality_check(q, text, strlen(text), LLM_QUALITY_EVERY, r), LLM_OK);
}

static void expect_measured(const struct llm_quality_result *r, const char *check, double v)
{
	const struct llm_quality_hit *h = hit(r, check);
	if (!h)
		fail_msg("no hit for %s", check);
	if (fabs(h->value - v) > 1e-12)
		fail_msg("%s: value %.15g, want %.15g", check, h->value, v);
}

static void expect_pass(const struct llm_quality_result *r, const char *check)
{
	const struct llm_quality_hit *h = hit(r, check);
	if (h)
		fail_msg("%s failed with value %.15g (threshold %.15g)", check, h->value,
			 h->threshold);
}

static void words_split_like_the_treebank_tokenizer(void **state)
{
	struct llm_quality *q = make("gopher_quality", NULL);
	static const struct {
		const char *in, *out;
	} cases[] = {
	    {"Hello, world. Don't stop!", "Hello , world . Do n't stop !"},
	    {"It's 1,000 (or 3:30)...", "It 's 1,000 ( or 3:30 ) ..."},
	    {"U.S. e.g. end.", "U.S. e.g. end ."},
	    {"well-known -- yes; #tag @me 50% a&b", "well-known -- yes ; # tag @ me 50 % a & b"},
	    {"the dogs' bones", "the dogs ' bones"},
	    {"\xe2\x80\x9cquoted\xe2\x80\x9d\xe2\x80\xa6",
	     "\xe2\x80\x9c quoted \xe2\x80\x9d \xe2\x80\xa6"},
	    {"  \t\n ", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_buf b;
		llm_buf_init(&b, 0);
		assert_int_equal(llm_quality_tokenize(q, cases[i].in, strlen(cases[i].in), &b),
				 LLM_OK);
		if (strcmp(b.data ? b.data : "", cases[i].out))
			fail_msg("tokenize(\"%s\") = \"%s\", want \"%s\"", cases[i].in,
				 b.data ? b.data : "", cases[i].out);
		llm_buf_free(&b);
	}
	llm_quality_free(q);
}

static void gopher_quality_word_counts_and_lengths(void **state)
{
	struct llm_quality_result r = {0};
	/* the cat and the dog . -> 5 words that are not all punctuation, mean length 3. */
	const char *sets_at[] = {"gopher_quality.min_words=5",
				 "gopher_quality.min_avg_word_length=3", NULL};
	struct llm_quality *q = make("gopher_quality", sets_at);
	run(q, "the cat and the dog.", &r);
	expect_pass(&r, "min_words");
	expect_pass(&r, "min_avg_word_length");
	expect_pass(&r, "min_stop_words"); /* "the" twice, "and" once */
	llm_quality_free(q);

	const char *sets_over[] = {"gopher_quality.min_words=6",
				   "gopher_quality.min_avg_word_length=3.01",
				   "gopher_quality.min_stop_words=4", NULL};
	q = make("gopher_quality", sets_over);
	run(q, "the cat and the dog.", &r);
	expect_measured(&r, "min_words", 5);
	expect_measured(&r, "min_avg_word_length", 3);
	expect_measured(&r, "min_stop_words", 3);
	/* Stop words are matched as written: "The" is not "the". */
	run(q, "The cat and The dog.", &r);
	expect_measured(&r, "min_stop_words", 1);
	llm_quality_free(q);

	/* With the published defaults a five-word text is short: 5 < 50. */
	q = make("gopher_quality", NULL);
	assert_int_equal(llm_quality_check(q, "the cat and the dog.", 20, LLM_QUALITY_FIRST, &r),
			 LLM_OK);
	assert_int_equal(r.nhits, 1);
	assert_string_equal(r.hits[0].check, "min_words");
	assert_true(r.hits[0].threshold == 50);
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void gopher_quality_symbol_and_line_ratios(void **state)
{
	struct llm_quality_result r = {0};
	const char *off[] = {"gopher_quality.min_words=off", "gopher_quality.min_stop_words=off",
			     NULL};
	struct llm_quality *q = make("gopher_quality", off);
	/* 10 words, one '#': 1/10 = 0.1, not above 0.1. */
	run(q, "the cat and the dog # with a big hat", &r);
	expect_pass(&r, "max_hash_word_ratio");
	/* Two: 0.2 fails. */
	run(q, "the cat and the dog # with # big hat", &r);
	expect_measured(&r, "max_hash_word_ratio", 0.2);
	/* "..." and U+2026 both count: 2 / 10 words (the ellipses are words too). */
	run(q, "one two three four five six seven eight ... \xe2\x80\xa6", &r);
	expect_measured(&r, "max_ellipsis_word_ratio", 0.2);
	/* 9 of 10 lines start with a bullet (after leading spaces): 0.9 passes; 10 fails. */
	run(q, "- a\n- b\n  - c\n\xe2\x80\xa2 d\n- e\n- f\n- g\n- h\n- i\nj", &r);
	expect_pass(&r, "max_bullet_lines_ratio");
	run(q, "- a\n- b\n  - c\n\xe2\x80\xa2 d\n- e\n- f\n- g\n- h\n- i\n-j", &r);
	expect_measured(&r, "max_bullet_lines_ratio", 1.0);
	/* 3 of 10 lines end with an ellipsis: 0.3 passes; 4 fail. */
	run(q, "a...\nb\xe2\x80\xa6\nc... \nd\ne\nf\ng\nh\ni\nj", &r);
	expect_pass(&r, "max_ellipsis_lines_ratio");
	run(q, "a...\nb\xe2\x80\xa6\nc... \nd...\ne\nf\ng\nh\ni\nj", &r);
	expect_measured(&r, "max_ellipsis_lines_ratio", 0.4);
	/* 8 of 10 words with a letter: 0.8 passes; 7 fail. */
	run(q, "aa bb cc dd ee ff gg hh 11 22", &r);
	expect_pass(&r, "min_alpha_words_ratio");
	run(q, "aa bb cc dd ee ff gg 00 11 22", &r);
	expect_measured(&r, "min_alpha_words_ratio", 0.7);
	llm_quality_free(q);
	/* max_symbol_word_ratio sets both symbol ratios at once. */
	const char *sym[] = {"gopher_quality.min_words=off",
			     "gopher_quality.max_symbol_word_ratio=0.3", NULL};
	q = make("gopher_quality", sym);
	run(q, "the cat and the dog # with # big hat", &r);
	expect_pass(&r, "max_hash_word_ratio");
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void gopher_repetition_lines_and_paragraphs(void **state)
{
	struct llm_quality_result r = {0};
	struct llm_quality *q = make("gopher_repetition", NULL);
	/* Paragraphs p1, p2, p1: 1/3 duplicated > 0.3; 2 of 10 characters = 0.2, not above. */
	run(q, "p1\n\np2\n\np1", &r);
	expect_measured(&r, "dup_para_frac", 1.0 / 3);
	expect_pass(&r, "dup_para_char_frac");
	/* Lines a, b, a, c (a run of newlines is one break): 1/4 passes; 1/7 chars passes. */
	run(q, "a\nb\n\na\nc", &r);
	expect_pass(&r, "dup_line_frac");
	expect_pass(&r, "dup_line_char_frac");
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void gopher_repetition_top_and_duplicated_ngrams(void **state)
{
	struct llm_quality_result r = {0};
	struct llm_quality *q = make("gopher_repetition", NULL);
	/* "a b a b c" (9 chars): top 2-gram "a b" x2 = 6/9; top 3-gram: all once, the first
	 * ("a b a", 5 chars) = 5/9; top 4-gram "a b a b" = 7/9. */
	run(q, "a b a b c", &r);
	expect_measured(&r, "top_2_gram_frac", 6.0 / 9);
	expect_measured(&r, "top_3_gram_frac", 5.0 / 9);
	expect_measured(&r, "top_4_gram_frac", 7.0 / 9);
	/* 5-grams of "a b c d e a b c d e" (19 chars): the second "abcde" repeats: 5/19; no
	 * 6-gram is reached twice because the scan jumps past a repeat. */
	run(q, "a b c d e a b c d e", &r);
	expect_measured(&r, "dup_5_gram_frac", 5.0 / 19);
	expect_pass(&r, "dup_6_gram_frac");
	/* datatrove joins n-gram words with no space, so "ab c d e f" and "a bc d e f" are the
	 * same 5-gram "abcdef": 6 of 21 characters. */
	run(q, "ab c d e f a bc d e f", &r);
	expect_measured(&r, "dup_5_gram_frac", 6.0 / 21);
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void c4_removes_lines_and_counts_sentences(void **state)
{
	struct llm_quality_result r = {0};
	const char *doc = "First sentence here is fine.\n"
			  "no terminal punctuation here\n"
			  "Javascript must be enabled to view.\n"
			  "We use cookies on this site.\n"
			  "Short line.\n"
			  "This has a citation[12] in it. Another one follows!\n"
			  "Trailing dots are not an end...\n";
	struct llm_quality *q = make("c4", NULL);
	run(q, doc, &r);
	/* Kept: the first line (1 sentence) and the citation line (2): 3 < 5. */
	expect_measured(&r, "min_sentences", 3);
	llm_quality_free(q);

	const char *three[] = {"c4.min_sentences=3", NULL};
	q = make("c4", three);
	assert_int_equal(llm_quality_check(q, doc, strlen(doc), LLM_QUALITY_FIRST, &r), LLM_OK);
	assert_int_equal(r.nhits, 0);
	assert_true(r.text_changed);
	assert_int_equal(r.lines_removed, 5);
	assert_int_equal(r.len, strlen("First sentence here is fine.\n"
				       "This has a citation in it. Another one follows!"));
	assert_memory_equal(r.text,
			    "First sentence here is fine.\nThis has a citation in it. "
			    "Another one follows!",
			    r.len);
	llm_quality_free(q);

	/* Document-level failures: lorem ipsum and a curly bracket, on lines that survive. */
	q = make("c4", three);
	run(q, "Lorem ipsum dolor sit amet.\nA {brace} is here too.\nIgnored { line", &r);
	expect_measured(&r, "lorem_ipsum", 1);
	expect_measured(&r, "curly_bracket", 1);
	const char *no_curly[] = {"c4.min_sentences=off", "c4.curly_bracket=false", NULL};
	llm_quality_free(q);
	q = make("c4", no_curly);
	run(q, "A {brace} is here too.", &r);
	assert_int_equal(r.nhits, 0);
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void fineweb_line_ratios(void **state)
{
	struct llm_quality_result r = {0};
	/* 4 lines, 1 ending in punctuation: 0.25.  The comparison is <=, so 0.25 fails. */
	const char *at[] = {"fineweb.line_punct_ratio=0.25", "fineweb.short_line_ratio=off",
			    "fineweb.list_ratio=off", NULL};
	struct llm_quality *q = make("fineweb", at);
	run(q, "one line ends here.\nanother\nand another\nlast", &r);
	expect_measured(&r, "line_punct_ratio", 0.25);
	llm_quality_free(q);
	const char *below[] = {"fineweb.line_punct_ratio=0.24", "fineweb.short_line_ratio=off",
			       "fineweb.list_ratio=off", NULL};
	q = make("fineweb", below);
	run(q, "one line ends here.\nanother\nand another\nlast", &r);
	expect_pass(&r, "line_punct_ratio");
	llm_quality_free(q);
	/* Short lines: 3 of 4 lines have at most 30 characters: 0.75 >= 0.67. */
	q = make("fineweb", NULL);
	run(q, "This line is certainly longer than thirty characters.\nshort.\nshort two.\nx.", &r);
	expect_measured(&r, "short_line_ratio", 0.75);
	/* Duplicated lines: "same line." twice; 10 of 48 non-newline characters >= 0.01. */
	run(q, "same line.\nsame line.\nsomething else entirely, ok.", &r);
	expect_measured(&r, "char_dup_ratio", 10.0 / 48);
	/* List-like: 3 newlines over 8 words (each "." is one) > 0.3. */
	run(q, "a.\nb.\nc.\nd.", &r);
	expect_measured(&r, "list_ratio", 3.0 / 8);
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void length_and_regex_rules(void **state)
{
	struct llm_quality_result r = {0};
	const char *sets[] = {"length.min_words=3", "length.max_chars=10", NULL};
	struct llm_quality *q = make("length", sets);
	run(q, "one two", &r);
	expect_measured(&r, "min_words", 2);
	run(q, "one two three", &r); /* 13 characters > 10 */
	expect_pass(&r, "min_words");
	expect_measured(&r, "max_chars", 13);
	run(q, "caf\xc3\xa9 au lait", &r); /* 12 code points, 13 bytes */
	expect_measured(&r, "max_chars", 12);
	llm_quality_free(q);

	struct llm_diag d;
	q = make("gopher_quality", NULL);
	assert_int_equal(llm_quality_add_regex(q, "(?i)buy\\s+now", &d), LLM_OK);
	assert_true(llm_quality_uses(q, LLM_QUALITY_REGEX));
	assert_int_equal(llm_quality_add_regex(q, "unclosed(", &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "unclosed("));
	assert_int_equal(llm_quality_use(q, "regex", &d), LLM_OK);
	run(q, "Please BUY   now!", &r);
	assert_int_equal(r.nhits, 1);
	assert_int_equal(r.hits[0].pattern, 0);
	assert_string_equal(llm_quality_regex(q, 0), "(?i)buy\\s+now");
	run(q, "nothing to see", &r);
	assert_int_equal(r.nhits, 0);
	llm_quality_free(q);
	llm_quality_result_free(&r);
}

static void unknown_names_are_usage_errors_that_list_the_valid_ones(void **state)
{
	struct llm_quality *q;
	struct llm_diag d;
	assert_int_equal(llm_quality_new(&q), LLM_OK);
	assert_int_equal(llm_quality_use(q, "gopher_quality,nope", &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "fineweb"));
	assert_int_equal(llm_quality_set(q, "gopher_quality.min_wordz=3", &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "min_words"));
	assert_non_null(strstr(d.msg, "min_stop_words"));
	assert_int_equal(llm_quality_set(q, "nope.x=1", &d), LLM_ERR_USAGE);
	assert_int_equal(llm_quality_set(q, "gopher_quality.min_words=abc", &d), LLM_ERR_USAGE);
	assert_int_equal(llm_quality_set(q, "c4.policy=2", &d), LLM_ERR_USAGE);
	assert_int_equal(llm_quality_set(q, "min_words=3", &d), LLM_ERR_USAGE);
	assert_int_equal(llm_quality_set(q, "c4.policy=false", &d), LLM_OK);
	assert_int_equal(llm_quality_set(q, "fineweb.list_ratio=off", &d), LLM_OK);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_quality_describe(&b), LLM_OK);
	assert_non_null(strstr(b.data, "gopher_repetition.dup_10_gram_frac=0.1\n"));
	assert_non_null(strstr(b.data, "length.max_chars=off\n"));
	llm_buf_free(&b);
	llm_quality_free(q);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(words_split_like_the_treebank_tokenizer),
	    cmocka_unit_test(gopher_quality_word_counts_and_lengths),
	    cmocka_unit_test(gopher_quality_symbol_and_line_ratios),
	    cmocka_unit_test(gopher_repetition_lines_and_paragraphs),
	    cmocka_unit_test(gopher_repetition_top_and_duplicated_ngrams),
	    cmocka_unit_test(c4_removes_lines_and_counts_sentences),
	    cmocka_unit_test(fineweb_line_ratios),
	    cmocka_unit_test(length_and_regex_rules),
	    cmocka_unit_test(unknown_names_are_usage_errors_that_list_the_valid_ones),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
