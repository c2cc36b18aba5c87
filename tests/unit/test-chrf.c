/* Unit tests for lib/metrics/chrf: chrF and chrF++ against sacreBLEU's published numbers (its
 * test/test_chrf.py, its README, and the Hugging Face metric card that runs it), held to their
 * printed precision, and the rules behind them (clipping, whitespace, punctuation split, best
 * reference, code points rather than bytes). */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/chrf.h"

#define MAX_STATS (6 * LLM_CHRF_MAX_ORDER)

static struct llm_chrf_opts opts(int nc, int nw, double beta, bool eps)
{
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	o.char_order = nc;
	o.word_order = nw;
	o.beta = beta;
	o.eps_smoothing = eps;
	return o;
}

/* The statistics of one segment; both entry points must agree. */
static void seg_stats(const struct llm_chrf_opts *o, const char *hyp, const char *const *refs,
		      size_t n_refs, double *stats)
{
	size_t lens[8];
	assert_true(n_refs <= 8);
	for (size_t r = 0; r < n_refs; r++)
		lens[r] = strlen(refs[r]);
	assert_int_equal(llm_chrf_stats(o, hyp, strlen(hyp), refs, lens, n_refs, stats, NULL),
			 LLM_OK);
	double again[MAX_STATS];
	struct llm_chrf_scratch *s;
	assert_int_equal(llm_chrf_scratch_new(&s, NULL), LLM_OK);
	assert_int_equal(
	    llm_chrf_scratch_stats(s, o, hyp, strlen(hyp), refs, lens, n_refs, again, NULL),
	    LLM_OK);
	llm_chrf_scratch_free(s);
	assert_memory_equal(stats, again, llm_chrf_n_stats(o) * sizeof *stats);
}

/* The corpus score of n segments; refs holds n_refs references per segment, segment-major. */
static double corpus(const struct llm_chrf_opts *o, const char *const *hyps, size_t n,
		     const char *const *refs, size_t n_refs)
{
	double sum[MAX_STATS] = {0}, st[MAX_STATS];
	size_t k = llm_chrf_n_stats(o);
	for (size_t i = 0; i < n; i++) {
		seg_stats(o, hyps[i], refs + i * n_refs, n_refs, st);
		for (size_t j = 0; j < k; j++)
			sum[j] += st[j];
	}
	return llm_chrf_compute(o, sum);
}

static double sentence(const struct llm_chrf_opts *o, const char *hyp, const char *ref)
{
	return corpus(o, &hyp, 1, &ref, 1);
}

#define NEAR(got, want, tol)                                                                       \
	do {                                                                                       \
		double g_ = (got), w_ = (want);                                                    \
		if (!(g_ >= w_ - (tol) && g_ <= w_ + (tol)))                                       \
			fail_msg("%s = %.10f, want %.10f (within %g)", #got, g_, w_,               \
				 (double)(tol));                                                   \
	} while (0)

/* sacreBLEU's test_chrf.py holds these to 1e-4. */
#define EPSILON 1e-4

static const char RISK_H[] = " risk assessment must be made of those who are qualified and "
			     "expertise in the sector - these are the scientists .";
static const char RISK_R[] = "risk assessment has to be undertaken by those who are qualified "
			     "and expert in that area - that is the scientists .";
static const char DIE_H_SPACED[] =
    " Die    Beziehung zwischen  Obama und Netanjahu ist nicht gerade  freundlich. ";
static const char DIE_H[] = "Die Beziehung zwischen Obama und Netanjahu ist nicht gerade "
			    "freundlich.";
static const char DAS_R[] = "Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade "
			    "freundschaftlich.";

static void eps_smoothing_gives_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(6, 0, 3, true);
	NEAR(sentence(&o, "abcdefg", "hijklmnop"), 0.0, EPSILON);
	NEAR(sentence(&o, "a", "b"), 0.0, EPSILON);
	NEAR(sentence(&o, "", "b"), 0.0, EPSILON);
	NEAR(sentence(&o, "", "ref"), 0.0, EPSILON);
	NEAR(sentence(&o, "", "reference"), 0.0, EPSILON);
	NEAR(sentence(&o, "aa", "ab"), 8.3333, EPSILON);
	const char *h2[] = {"a", "b"}, *r2[] = {"a", "c"};
	NEAR(corpus(&o, h2, 2, r2, 1), 8.3333, EPSILON);
	NEAR(sentence(&o, "a", "a"), 16.6667, EPSILON);
	NEAR(sentence(&o, "a b c", "a b c"), 50.0, EPSILON);
	NEAR(sentence(&o, "a b c", "abc"), 50.0, EPSILON);
	NEAR(sentence(&o, RISK_H, RISK_R), 63.361730, EPSILON);
	NEAR(sentence(&o, DIE_H_SPACED, DAS_R), 64.1302698, EPSILON);
	NEAR(sentence(&o, "Niemand hat die Absicht, eine Mauer zu errichten",
		      "Niemand hat die Absicht, eine Mauer zu errichten"),
	     100.0, EPSILON);
}

static void effective_order_gives_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(6, 0, 3, false);
	NEAR(sentence(&o, "a", "a"), 100.0, EPSILON);
	NEAR(sentence(&o, "", "reference"), 0.0, EPSILON);
	NEAR(sentence(&o, "a b c", "a b c"), 100.0, EPSILON);
	NEAR(sentence(&o, "a b c", "abc"), 100.0, EPSILON);
	NEAR(sentence(&o, "", "c"), 0.0, EPSILON);
	const char *h2[] = {"a", "b"}, *r2[] = {"a", "c"};
	NEAR(corpus(&o, h2, 2, r2, 1), 50.0, EPSILON);
	NEAR(sentence(&o, "aa", "ab"), 25.0, EPSILON);
}

static void kept_whitespace_gives_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(6, 0, 3, false);
	o.whitespace = true;
	NEAR(sentence(&o, DIE_H, DAS_R), 67.3481606, EPSILON);
	NEAR(sentence(&o, RISK_H + 1, RISK_R), 65.2414427, EPSILON);
}

static void sentence_level_czech_gives_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(6, 0, 2, true);
	NEAR(sentence(&o,
		      "Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.",
		      "Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo "
		      "zemře."),
	     39.14078509, EPSILON);
	NEAR(sentence(&o, "Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.",
		      "A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."),
	     31.22557079, EPSILON);
	NEAR(sentence(&o, "Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.",
		      "Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, "
		      "připomněli."),
	     57.15704367, EPSILON);
}

/* The Hugging Face metric card runs sacreBLEU with its defaults and prints every digit. */
static void defaults_give_metric_card_values(void **state)
{
	(void)state;
	const char *hyps[] = {"The relationship between cats and dogs is not exactly friendly.",
			      "a good bookshop is just a genteel black hole that knows how to "
			      "read."};
	const char *refs[] = {"The relationship between dogs and cats is not exactly friendly.",
			      "A good bookshop is just a genteel Black Hole that knows how to "
			      "read."};
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	NEAR(corpus(&o, hyps, 2, refs, 1), 84.64214891738334, 1e-9);
	o.word_order = 2;
	NEAR(corpus(&o, hyps, 2, refs, 1), 82.87263732906315, 1e-9);
	o.lowercase = true;
	NEAR(corpus(&o, hyps, 2, refs, 1), 92.12853119829202, 1e-9);

	llm_chrf_opts_default(&o);
	NEAR(sentence(&o, "The relationship between Obama and Netanyahu is not exactly friendly.",
		      "The ties between Obama and Netanyahu are not particularly friendly."),
	     61.576379378113785, 1e-9);
}

/* sacreBLEU's README: two reference streams, chrF2 = 59.73. */
static void two_references_give_readme_value(void **state)
{
	(void)state;
	const char *hyps[] = {"The dog bit the man.", "It wasn't surprising.",
			      "The man had just bitten him."};
	const char *refs[] = {"The dog bit the man.",	"The dog had bit the man.",
			      "It was not unexpected.", "No one was surprised.",
			      "The man bit him first.", "The man had bitten the dog."};
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	NEAR(corpus(&o, hyps, 3, refs, 2), 59.73, 0.005);
}

static void best_reference_is_the_one_with_the_highest_f(void **state)
{
	(void)state;
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	double a[MAX_STATS], b[MAX_STATS], both[MAX_STATS];
	const char *bad = "completely different words", *good = "the cat sat";
	seg_stats(&o, "the cat sat", &bad, 1, a);
	seg_stats(&o, "the cat sat", &good, 1, b);
	const char *refs[] = {bad, good};
	seg_stats(&o, "the cat sat", refs, 2, both);
	assert_memory_equal(both, b, llm_chrf_n_stats(&o) * sizeof *b);
	assert_true(llm_chrf_compute(&o, both) == 100.0);
	/* A tie keeps the first reference (sacreBLEU replaces only on a strictly higher F). */
	const char *tie[] = {"xyz", "qrs"};
	seg_stats(&o, "abc", tie, 2, both);
	seg_stats(&o, "abc", tie, 1, a);
	assert_memory_equal(both, a, llm_chrf_n_stats(&o) * sizeof *a);
}

/* Matches are clipped by the reference count, and an order the reference lacks counts no
 * hypothesis n-grams (sacreBLEU's _get_match_statistics). */
static void matches_are_clipped_and_missing_orders_count_nothing(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(4, 0, 2, false);
	double st[MAX_STATS];
	const char *ref = "aa";
	seg_stats(&o, "aaaa", &ref, 1, st);
	const double want[] = {4, 2, 2, 3, 1, 1, 0, 0, 0, 0, 0, 0};
	assert_memory_equal(st, want, sizeof want);
	/* Non-empty hypothesis, empty reference: nothing counted at all. */
	const char *empty = "";
	seg_stats(&o, "abc", &empty, 1, st);
	for (int i = 0; i < 12; i++)
		assert_true(st[i] == 0);
	assert_true(llm_chrf_compute(&o, st) == 0.0);
}

static void empty_segments_score_as_sacrebleu_does(void **state)
{
	(void)state;
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	double st[MAX_STATS];
	const char *empty = "";
	seg_stats(&o, "", &empty, 1, st);
	for (size_t i = 0; i < llm_chrf_n_stats(&o); i++)
		assert_true(st[i] == 0);
	assert_true(llm_chrf_compute(&o, st) == 0.0);
	/* Epsilon smoothing: each order contributes 1e-16, so 100 · 1e-16. */
	o.eps_smoothing = true;
	NEAR(llm_chrf_compute(&o, st), 1e-14, 1e-20);
	/* Whitespace only is empty once whitespace is dropped. */
	const char *ref = "  \t";
	o.eps_smoothing = false;
	seg_stats(&o, " \xC2\xA0 ", &ref, 1, st);
	for (size_t i = 0; i < llm_chrf_n_stats(&o); i++)
		assert_true(st[i] == 0);
}

static void characters_are_code_points_and_python_whitespace_is_dropped(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(2, 0, 2, false);
	double st[MAX_STATS];
	const char *ref = "\xC3\xA9t\xC3\xA9"; /* "été": 3 code points, 5 bytes */
	seg_stats(&o, "\xC3\xA9t\xC3\xA9", &ref, 1, st);
	const double want[] = {3, 3, 3, 2, 2, 2};
	assert_memory_equal(st, want, sizeof want);
	/* U+00A0, U+3000 and U+2028 are whitespace to Python: gone, so these match exactly. */
	const char *plain = "abcd";
	seg_stats(&o,
		  "a\xC2\xA0"
		  "b\xE3\x80\x80"
		  "c\xE2\x80\xA8"
		  "d",
		  &plain, 1, st);
	const double want2[] = {4, 4, 4, 3, 3, 3};
	assert_memory_equal(st, want2, sizeof want2);
	/* U+200B (zero width space) is not whitespace to Python: kept. */
	seg_stats(&o, "ab\xE2\x80\x8B", &plain, 1, st);
	assert_true(st[0] == 3);
	/* With whitespace kept, spaces are characters. */
	o.whitespace = true;
	const char *spaced = "a b";
	seg_stats(&o, "a b", &spaced, 1, st);
	const double want3[] = {3, 3, 3, 2, 2, 2};
	assert_memory_equal(st, want3, sizeof want3);
}

static void lowercase_is_pythons(void **state)
{
	(void)state;
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	NEAR(sentence(&o,
		      "\xC3\x89"
		      "COLE",
		      "\xC3\xA9"
		      "cole"),
	     0.0, 1e-12);
	o.lowercase = true;
	NEAR(sentence(&o,
		      "\xC3\x89"
		      "COLE",
		      "\xC3\xA9"
		      "cole"),
	     100.0, 1e-12);
	/* 'İ' lowercases to "i" + U+0307: two characters, as in Python. */
	double st[MAX_STATS];
	const char *ref = "i\xCC\x87";
	seg_stats(&o, "\xC4\xB0", &ref, 1, st);
	assert_true(st[0] == 2 && st[1] == 2 && st[2] == 2);
}

/* chrF++ words: Python split(), then one punctuation mark off the end, or else off the start,
 * of a word longer than one character; "(hi)" becomes "(hi" and ")" (sacreBLEU issue #124). */
static void chrf_plusplus_splits_punctuation_as_sacrebleu_does(void **state)
{
	(void)state;
	struct llm_chrf_opts o = opts(1, 2, 2, false);
	double st[MAX_STATS];
	const char *ref = "(hi )";
	seg_stats(&o, "(hi)", &ref, 1, st);
	/* Words: hypothesis "(hi" ")", reference "(" "hi" ")". */
	assert_true(st[3] == 2 && st[4] == 3 && st[5] == 1);
	assert_true(st[6] == 1 && st[7] == 2 && st[8] == 0);
	/* "world." and "world" "." are the same words; a lone "." stays one word. */
	const char *ref2 = "hello , world .";
	seg_stats(&o, "hello, world.", &ref2, 1, st);
	assert_true(st[3] == 4 && st[4] == 4 && st[5] == 4);
	assert_true(st[6] == 3 && st[7] == 3 && st[8] == 3);
	/* A single non-ASCII character is one word, never split; "é." splits. */
	const char *ref3 = "\xC3\xA9 .";
	seg_stats(&o, "\xC3\xA9.", &ref3, 1, st);
	assert_true(st[3] == 2 && st[5] == 2);
	/* Words are split on Python whitespace (U+3000 here). */
	const char *ref4 = "a b";
	seg_stats(&o,
		  "a\xE3\x80\x80"
		  "b",
		  &ref4, 1, st);
	assert_true(st[3] == 2 && st[5] == 2 && st[8] == 1);
}

static void bad_input_is_refused(void **state)
{
	(void)state;
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	double st[MAX_STATS];
	struct llm_diag d;
	const char *ref = "ok";
	size_t len = 2;
	assert_int_equal(llm_chrf_stats(&o, "a\xFF", 2, &ref, &len, 1, st, &d), LLM_ERR_UTF8);
	o.lowercase = true;
	assert_int_equal(llm_chrf_stats(&o, "a\xFF", 2, &ref, &len, 1, st, &d), LLM_ERR_UTF8);
	assert_int_equal(llm_chrf_stats(&o, "a", 1, &ref, &len, 0, st, &d), LLM_ERR_USAGE);
	o.char_order = 0;
	assert_int_equal(llm_chrf_stats(&o, "a", 1, &ref, &len, 1, st, &d), LLM_ERR_USAGE);
	o.char_order = LLM_CHRF_MAX_ORDER + 1;
	assert_int_equal(llm_chrf_stats(&o, "a", 1, &ref, &len, 1, st, &d), LLM_ERR_USAGE);
	o.char_order = 6;
	o.beta = -1;
	assert_int_equal(llm_chrf_stats(&o, "a", 1, &ref, &len, 1, st, &d), LLM_ERR_USAGE);
}

static void expect_sig(const struct llm_chrf_opts *o, size_t n_refs, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 1024);
	assert_int_equal(llm_chrf_signature(o, n_refs, &b, NULL), LLM_OK);
	assert_string_equal(b.data, want);
	llm_buf_free(&b);
}

static void signature_and_name_are_sacrebleus(void **state)
{
	(void)state;
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	expect_sig(&o, 1, "nrefs:1|case:mixed|eff:yes|nc:6|nw:0|space:no|version:2.4.3");
	o.word_order = 2;
	o.lowercase = true;
	o.eps_smoothing = true;
	o.whitespace = true;
	expect_sig(&o, 2, "nrefs:2|case:lc|eff:no|nc:6|nw:2|space:yes|version:2.4.3");
	expect_sig(&o, 0, "nrefs:var|case:lc|eff:no|nc:6|nw:2|space:yes|version:2.4.3");

	struct llm_buf b;
	llm_buf_init(&b, 64);
	assert_int_equal(llm_chrf_name(&o, &b, NULL), LLM_OK);
	assert_string_equal(b.data, "chrF2++");
	llm_buf_clear(&b);
	o.word_order = 0;
	o.beta = 3;
	assert_int_equal(llm_chrf_name(&o, &b, NULL), LLM_OK);
	assert_string_equal(b.data, "chrF3");
	llm_buf_free(&b);
}

/* One workspace through segments of every shape gives what a fresh one gives each time. */
static void scratch_reuse_changes_nothing(void **state)
{
	(void)state;
	struct llm_chrf_scratch *s;
	assert_int_equal(llm_chrf_scratch_new(&s, NULL), LLM_OK);
	static const char *const texts[] = {
	    "",
	    "a",
	    "The dog bit the man.",
	    "\xC3\x89t\xC3\xA9 \xE2\x80\x94 d\xC3\xA9j\xC3\xA0 vu!",
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
	    RISK_H,
	    RISK_R,
	    DAS_R,
	    "(x) [y] {z}"};
	size_t nt = sizeof texts / sizeof *texts;
	/* A long text grows the tables past their first size. */
	char *big = malloc(20001);
	assert_non_null(big);
	for (int i = 0; i < 20000; i++)
		big[i] = (char)("abcdefghij ,.()"[(i * 7 + i / 13) % 15]);
	big[20000] = '\0';
	for (int variant = 0; variant < 4; variant++) {
		struct llm_chrf_opts o;
		llm_chrf_opts_default(&o);
		o.word_order = variant & 1 ? 2 : 0;
		o.lowercase = variant & 2;
		for (size_t i = 0; i <= nt; i++) {
			const char *h = i < nt ? texts[i] : big;
			const char *refs[3] = {texts[(i + 1) % nt], texts[(i + 3) % nt], big};
			size_t lens[3] = {strlen(refs[0]), strlen(refs[1]), strlen(big)};
			double a[MAX_STATS], b[MAX_STATS];
			assert_int_equal(
			    llm_chrf_scratch_stats(s, &o, h, strlen(h), refs, lens, 3, a, NULL),
			    LLM_OK);
			assert_int_equal(llm_chrf_stats(&o, h, strlen(h), refs, lens, 3, b, NULL),
					 LLM_OK);
			assert_memory_equal(a, b, llm_chrf_n_stats(&o) * sizeof *a);
		}
	}
	/* The big text against itself: every n-gram matches. */
	struct llm_chrf_opts o;
	llm_chrf_opts_default(&o);
	o.word_order = 2;
	const char *ref = big;
	size_t len = strlen(big);
	double st[MAX_STATS];
	assert_int_equal(llm_chrf_scratch_stats(s, &o, big, len, &ref, &len, 1, st, NULL), LLM_OK);
	assert_true(llm_chrf_compute(&o, st) == 100.0);
	free(big);
	llm_chrf_scratch_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(eps_smoothing_gives_sacrebleu_test_values),
	    cmocka_unit_test(effective_order_gives_sacrebleu_test_values),
	    cmocka_unit_test(kept_whitespace_gives_sacrebleu_test_values),
	    cmocka_unit_test(sentence_level_czech_gives_sacrebleu_test_values),
	    cmocka_unit_test(defaults_give_metric_card_values),
	    cmocka_unit_test(two_references_give_readme_value),
	    cmocka_unit_test(best_reference_is_the_one_with_the_highest_f),
	    cmocka_unit_test(matches_are_clipped_and_missing_orders_count_nothing),
	    cmocka_unit_test(empty_segments_score_as_sacrebleu_does),
	    cmocka_unit_test(characters_are_code_points_and_python_whitespace_is_dropped),
	    cmocka_unit_test(lowercase_is_pythons),
	    cmocka_unit_test(chrf_plusplus_splits_punctuation_as_sacrebleu_does),
	    cmocka_unit_test(bad_input_is_refused),
	    cmocka_unit_test(signature_and_name_are_sacrebleus),
	    cmocka_unit_test(scratch_reuse_changes_nothing),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
