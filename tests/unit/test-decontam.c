/* Unit tests for lib/data/decontam: words, n-gram matching on a planted leak and a clean
 * text, short evaluation texts, and the GPT-3 cut (window, pieces, minimum piece). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "data/decontam.h"

static const char *question =
    "Which river is the longest in Africa and flows north into the Mediterranean Sea?";

static struct llm_decontam *index_of(unsigned n, const char *text, size_t *grams)
{
	struct llm_decontam *dc;
	assert_int_equal(llm_decontam_new(&dc, n, NULL), LLM_OK);
	assert_int_equal(llm_decontam_add(dc, text, strlen(text), 0, grams, NULL), LLM_OK);
	return dc;
}

static void words_are_lowercased_letters_and_digits(void **state)
{
	(void)state;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	const char *t = "The ANSWER: 42!  Ça va? Straße—ÉTÉ x_y";
	assert_int_equal(llm_decontam_words(t, strlen(t), &b), LLM_OK);
	assert_string_equal(b.data, "the answer 42 ça va straße été x y");
	llm_buf_free(&b);
}

static void a_planted_question_is_found_despite_case_and_punctuation(void **state)
{
	(void)state;
	size_t grams;
	struct llm_decontam *dc = index_of(13, question, &grams);
	assert_int_equal(grams, 14 - 13 + 1); /* 14 words */
	assert_int_equal(llm_decontam_size(dc), 2);
	const char *doc = "Trivia night! Q: which RIVER is the longest in Africa, and flows north "
			  "into the Mediterranean sea... A: the Nile.";
	struct llm_decontam_hits hits = {0};
	assert_int_equal(llm_decontam_find(dc, doc, strlen(doc), &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 2);
	assert_int_equal(hits.h[0].eval, 0);
	/* The first hit runs from "which" to "Mediterranean". */
	const char *w = strstr(doc, "which");
	assert_int_equal(hits.h[0].start, (size_t)(w - doc));
	assert_int_equal(hits.h[0].end, (size_t)(strstr(doc, " sea...") - doc));
	assert_int_equal(hits.h[1].end, (size_t)(strstr(doc, "... A") - doc));
	/* A clean text, and the same words in another order, have no hit. */
	const char *clean = "The Nile flows north. Which river is longest in Africa? "
			    "Into the Mediterranean Sea it flows, the longest.";
	assert_int_equal(llm_decontam_find(dc, clean, strlen(clean), &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 0);
	llm_decontam_hits_free(&hits);
	llm_decontam_free(dc);
}

static void texts_shorter_than_n_words_give_no_ngrams(void **state)
{
	(void)state;
	size_t grams = 99;
	struct llm_decontam *dc = index_of(13, "Is the sky blue?", &grams);
	assert_int_equal(grams, 0);
	assert_int_equal(llm_decontam_size(dc), 0);
	struct llm_decontam_hits hits = {0};
	assert_int_equal(llm_decontam_find(dc, question, strlen(question), &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 0);
	llm_decontam_free(dc);
	dc = index_of(4, "Is the sky blue?", &grams);
	assert_int_equal(grams, 1);
	llm_decontam_free(dc);
}

static void hits_name_every_evaluation_record_with_the_ngram(void **state)
{
	(void)state;
	struct llm_decontam *dc;
	size_t g;
	assert_int_equal(llm_decontam_new(&dc, 3, NULL), LLM_OK);
	assert_int_equal(llm_decontam_add(dc, "one two three", 13, 0, &g, NULL), LLM_OK);
	assert_int_equal(llm_decontam_add(dc, "ONE two three four", 18, 1, &g, NULL), LLM_OK);
	assert_int_equal(llm_decontam_size(dc), 2);
	struct llm_decontam_hits hits = {0};
	assert_int_equal(llm_decontam_find(dc, "zero one two three", 18, &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 2);
	assert_true((hits.h[0].eval == 0 && hits.h[1].eval == 1) ||
		    (hits.h[0].eval == 1 && hits.h[1].eval == 0));
	llm_decontam_hits_free(&hits);
	llm_decontam_free(dc);
}

/* n copies of c */
static char *fill(char *p, char c, size_t n)
{
	memset(p, c, n);
	return p + n;
}

static void the_cut_removes_the_window_and_counts_pieces(void **state)
{
	(void)state;
	/* 300 x, the 5 words "a b c d e" (9 chars), 300 y: a 3-gram hit on "a b c" and on the
	 * later grams, removed with 200 characters either side. */
	char text[700], *p = text;
	p = fill(p, 'x', 299);
	*p++ = ' ';
	memcpy(p, "a b c d e", 9);
	p += 9;
	*p++ = ' ';
	p = fill(p, 'y', 299);
	size_t len = (size_t)(p - text);
	struct llm_decontam *dc;
	size_t g;
	assert_int_equal(llm_decontam_new(&dc, 3, NULL), LLM_OK);
	assert_int_equal(llm_decontam_add(dc, "A B C D E", 9, 0, &g, NULL), LLM_OK);
	struct llm_decontam_hits hits = {0};
	assert_int_equal(llm_decontam_find(dc, text, len, &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 3);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	size_t pieces, kept;
	/* Match [300, 309); removed [100, 509); pieces [0, 100) and [509, 609). */
	assert_int_equal(llm_decontam_cut(text, len, &hits, 200, 50, "|", &out, &pieces, &kept),
			 LLM_OK);
	assert_int_equal(pieces, 2);
	assert_int_equal(kept, 200);
	assert_int_equal(out.len, 201);
	assert_int_equal(out.data[100], '|');
	assert_int_equal(out.data[0], 'x');
	assert_int_equal(out.data[200], 'y');
	/* Pieces shorter than the minimum are discarded: nothing is left. */
	llm_buf_clear(&out);
	assert_int_equal(llm_decontam_cut(text, len, &hits, 200, 200, "|", &out, &pieces, &kept),
			 LLM_OK);
	assert_int_equal(pieces, 2);
	assert_int_equal(kept, 0);
	assert_int_equal(out.len, 0);
	/* A window wider than the text leaves no piece at all. */
	assert_int_equal(llm_decontam_cut(text, len, &hits, 1000, 1, "|", &out, &pieces, &kept),
			 LLM_OK);
	assert_int_equal(pieces, 0);
	llm_buf_free(&out);
	llm_decontam_hits_free(&hits);
	llm_decontam_free(dc);
}

static void the_cut_counts_code_points_not_bytes(void **state)
{
	(void)state;
	/* 10 "é" (2 bytes each), then the words, then 10 "é": a window of 5 code points keeps
	 * 5 "é" on each side. */
	char text[128], *p = text;
	for (int i = 0; i < 10; i++)
		memcpy(p, "\xc3\xa9", 2), p += 2;
	memcpy(p, " a b c ", 7);
	p += 7;
	for (int i = 0; i < 10; i++)
		memcpy(p, "\xc3\xa9", 2), p += 2;
	size_t len = (size_t)(p - text);
	struct llm_decontam *dc;
	size_t g;
	assert_int_equal(llm_decontam_new(&dc, 3, NULL), LLM_OK);
	assert_int_equal(llm_decontam_add(dc, "a b c", 5, 0, &g, NULL), LLM_OK);
	struct llm_decontam_hits hits = {0};
	assert_int_equal(llm_decontam_find(dc, text, len, &hits, NULL), LLM_OK);
	assert_int_equal(hits.n, 1);
	assert_int_equal(hits.h[0].cp_start, 11);
	assert_int_equal(hits.h[0].cp_end, 16);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	size_t pieces, kept;
	assert_int_equal(llm_decontam_cut(text, len, &hits, 5, 1, "|", &out, &pieces, &kept),
			 LLM_OK);
	assert_int_equal(pieces, 2);
	assert_int_equal(kept, 12); /* [0, 6) and [21, 27) */
	assert_string_equal(out.data, "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9|"
				      "\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9");
	llm_buf_free(&out);
	llm_decontam_hits_free(&hits);
	llm_decontam_free(dc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(words_are_lowercased_letters_and_digits),
	    cmocka_unit_test(a_planted_question_is_found_despite_case_and_punctuation),
	    cmocka_unit_test(texts_shorter_than_n_words_give_no_ngrams),
	    cmocka_unit_test(hits_name_every_evaluation_record_with_the_ngram),
	    cmocka_unit_test(the_cut_removes_the_window_and_counts_pieces),
	    cmocka_unit_test(the_cut_counts_code_points_not_bytes),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
