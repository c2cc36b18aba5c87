/* Unit tests for lib/metrics/bleu: sacreBLEU's published test vectors (its README example and
 * test/test_bleu.py, test/test_sentence_bleu.py), its tokenizers on Unicode punctuation and
 * symbols (expected tokens are what sacreBLEU's regular expressions give), and the edges:
 * empty hypotheses and references, errors, the signature. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "metrics/bleu.h"

#define NS_MAX (2 + 2 * LLM_BLEU_MAX_ORDER)

/* --- helpers -------------------------------------------------------------------------------- */

static struct llm_bleu_opts opts(void)
{
	struct llm_bleu_opts o;
	llm_bleu_opts_default(&o);
	return o;
}

/* sacreBLEU's compat.raw_corpus_bleu: no tokenization, floor smoothing, effective order. */
static struct llm_bleu_opts raw_opts(double floor)
{
	struct llm_bleu_opts o = opts();
	o.tokenize = LLM_SACRETOK_NONE;
	o.smooth = LLM_BLEU_SMOOTH_FLOOR;
	o.smooth_value = floor;
	o.effective_order = true;
	return o;
}

/* One segment's statistics; refs is NULL-terminated. */
static void seg_stats(const struct llm_bleu_opts *o, const char *hyp, const char *const *refs,
		      double *stats)
{
	size_t n = 0, lens[8];
	while (refs[n]) {
		lens[n] = strlen(refs[n]);
		n++;
	}
	struct llm_diag d = {0};
	if (llm_bleu_stats(o, hyp, strlen(hyp), refs, lens, n, stats, &d) != LLM_OK)
		fail_msg("llm_bleu_stats: %s", d.msg);
}

/* Corpus BLEU: hyps[i] against refs[r][i] for r < n_refs, summing the statistics. */
static double corpus(const struct llm_bleu_opts *o, const char *const *hyps, size_t n,
		     const char *const (*refs)[3], size_t n_refs)
{
	double sums[NS_MAX] = {0}, st[NS_MAX];
	size_t ns = llm_bleu_n_stats(o);
	for (size_t i = 0; i < n; i++) {
		const char *r[4] = {0};
		for (size_t k = 0; k < n_refs; k++)
			r[k] = refs[k][i];
		seg_stats(o, hyps[i], r, st);
		for (size_t k = 0; k < ns; k++)
			sums[k] += st[k];
	}
	struct llm_bleu_result res;
	llm_bleu_compute(o, sums, &res);
	return res.score;
}

/* sentence_score: one hypothesis, its references (NULL-terminated). */
static double sentence(const struct llm_bleu_opts *o, const char *hyp, const char *const *refs)
{
	double st[NS_MAX];
	seg_stats(o, hyp, refs, st);
	struct llm_bleu_result res;
	llm_bleu_compute(o, st, &res);
	return res.score;
}

#define REFS(...) ((const char *const[]){__VA_ARGS__, NULL})

static void expect_tokens(enum llm_sacretok t, const char *in, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 1 << 20);
	struct llm_diag d = {0};
	assert_int_equal(llm_sacretok_apply(t, in, strlen(in), &b, &d), LLM_OK);
	if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len)))
		fail_msg("%s(\"%s\") gave \"%s\", want \"%s\"", llm_sacretok_name(t), in,
			 b.len ? b.data : "", want);
	llm_buf_free(&b);
}

static void expect_stats(const struct llm_bleu_opts *o, const char *hyp, const char *const *refs,
			 const double *want)
{
	double st[NS_MAX];
	seg_stats(o, hyp, refs, st);
	for (size_t k = 0; k < llm_bleu_n_stats(o); k++)
		if (st[k] != want[k])
			fail_msg("\"%s\": statistic %zu is %g, want %g", hyp, k, st[k], want[k]);
}

/* --- sacreBLEU's README example (3 segments, 2 references) ---------------------------------- */

static const char *const readme_hyps[] = {
    "The dog bit the man.",
    "It wasn't surprising.",
    "The man had just bitten him.",
};
static const char *const readme_refs[2][3] = {
    {"The dog bit the man.", "It was not unexpected.", "The man bit him first."},
    {"The dog had bit the man.", "No one was surprised.", "The man had bitten the dog."},
};

static void readme_example_is_48_530827(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	assert_float_equal(corpus(&o, readme_hyps, 3, readme_refs, 2), 48.530827, 1e-6);
	/* test_corpus_bleu: smoothing none gives the same (every order matches). */
	o.smooth = LLM_BLEU_SMOOTH_NONE;
	assert_float_equal(corpus(&o, readme_hyps, 3, readme_refs, 2), 48.530827, 1e-6);
}

static void readme_example_per_tokenizer(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.tokenize = LLM_SACRETOK_NONE;
	assert_float_equal(corpus(&o, readme_hyps, 3, readme_refs, 2), 49.1919566, 1e-7);
	o.tokenize = LLM_SACRETOK_13A;
	assert_float_equal(corpus(&o, readme_hyps, 3, readme_refs, 2), 48.530827, 1e-6);
	o.tokenize = LLM_SACRETOK_INTL;
	assert_float_equal(corpus(&o, readme_hyps, 3, readme_refs, 2), 43.91623493, 1e-8);
}

static void readme_example_max_order_1_to_6(void **state)
{
	(void)state;
	static const char *const want[] = {"77.65", "60.50", "53.93", "48.53", "46.14", "43.28"};
	for (int n = 1; n <= 6; n++) {
		struct llm_bleu_opts o = opts();
		o.max_order = n;
		assert_int_equal(llm_bleu_n_stats(&o), 2 + 2 * (size_t)n);
		char got[32];
		snprintf(got, sizeof got, "%.2f", corpus(&o, readme_hyps, 3, readme_refs, 2));
		assert_string_equal(got, want[n - 1]);
	}
}

static void empty_hypotheses_count_and_score_zero(void **state)
{
	(void)state;
	static const char *const empty[] = {"", "", ""};
	struct llm_bleu_opts o = opts();
	assert_true(corpus(&o, empty, 3, readme_refs, 2) == 0.0);
	/* An empty hypothesis has length 0; the closest reference is the shorter one. */
	expect_stats(&o, "", REFS("a b c", "a b"), (double[]){0, 2, 0, 0, 0, 0, 0, 0, 0, 0});
	struct llm_bleu_result r;
	llm_bleu_compute(&o, (double[]){0, 2, 0, 0, 0, 0, 0, 0, 0, 0}, &r);
	assert_true(r.score == 0.0 && r.bp == 0.0 && r.ratio == 0.0);
	/* A caller may pass NULL for an empty text. */
	double st[NS_MAX];
	const char *refs[] = {"a b"};
	size_t lens[] = {3};
	assert_int_equal(llm_bleu_stats(&o, NULL, 0, refs, lens, 1, st, NULL), LLM_OK);
	assert_true(st[0] == 0 && st[1] == 2);
}

/* --- test/test_bleu.py ----------------------------------------------------------------------- */

static void raw_corpus_bleu_cases(void **state)
{
	(void)state;
	struct llm_bleu_opts o = raw_opts(0.01);
	/* No match at all gives 0 without smoothing (sacreBLEU #141). */
	static const char *const h1[] = {"this is a test", "another test"};
	static const char *const r1[1][3] = {{"ref1", "ref2"}};
	assert_true(corpus(&o, h1, 2, r1, 1) == 0.0);
	assert_float_equal(sentence(&o, "this is a test", REFS("this is a test")) / 100, 1.0, 1e-8);
	assert_float_equal(sentence(&o, "this is a fest", REFS("this is a test")) / 100,
			   0.223606797749979, 1e-8);
}

static void effective_order_cases(void **state)
{
	(void)state;
	struct llm_bleu_opts o = raw_opts(0.01);
	assert_float_equal(sentence(&o, "test", REFS("a test")) / 100, 0.3678794411714425, 1e-8);
	assert_float_equal(sentence(&o, "a test", REFS("a test")) / 100, 1.0, 1e-8);
	assert_float_equal(sentence(&o, "a little test", REFS("a test")) / 100, 0.03218297948685433,
			   1e-8);
	/* Without effective order the missing orders make it 0. */
	o.effective_order = false;
	o.smooth = LLM_BLEU_SMOOTH_NONE;
	assert_true(sentence(&o, "a test", REFS("a test")) == 0.0);
}

static void statistics_and_floor_offset(void **state)
{
	(void)state;
	struct llm_bleu_opts o = raw_opts(0.01);
	const char *hyp = "am I am a character sequence";
	const char *const *ref = REFS("I am a symbol string sequence a a");
	expect_stats(&o, hyp, ref, (double[]){6, 8, 4, 2, 1, 0, 6, 5, 4, 3});
	o.smooth_value = 0.0;
	assert_true(sentence(&o, hyp, ref) == 0.0);
	o.smooth_value = -1; /* the default, 0.1 */
	assert_float_equal(sentence(&o, hyp, ref) / 100, 0.1555722182, 1e-8);
	o.smooth_value = 0.1;
	assert_float_equal(sentence(&o, hyp, ref) / 100, 0.1555722182, 1e-8);
}

static void compute_from_statistics(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.smooth = LLM_BLEU_SMOOTH_NONE;
	struct llm_bleu_result r;
	llm_bleu_compute(&o, (double[]){11, 11, 9, 7, 5, 3, 10, 8, 6, 4}, &r);
	assert_float_equal(r.score / 100, 0.8375922397, 1e-8);
	assert_true(r.bp == 1.0 && r.ratio == 1.0);
	assert_float_equal(r.precisions[0], 90.0, 1e-12);
	assert_float_equal(r.precisions[3], 75.0, 1e-12);

	/* test_degenerate_statistics: floor smoothing, (sys, ref, correct, total, offset). */
	static const double deg[][11] = {
	    {0, 1, 0, 0, 0, 0, 4, 4, 2, 1, 0.0}, {14, 10, 0, 0, 0, 0, 10, 11, 12, 0, 0.0},
	    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.0}, {6, 6, 6, 5, 4, 0, 6, 5, 4, 3, 0.0},
	    {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0.1}, {1, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0.01},
	};
	for (size_t i = 0; i < sizeof deg / sizeof *deg; i++) {
		o.smooth = LLM_BLEU_SMOOTH_FLOOR;
		o.smooth_value = deg[i][10];
		llm_bleu_compute(&o, deg[i], &r);
		if (r.score != 0.0)
			fail_msg("degenerate case %zu gave %g", i, r.score);
	}

	/* The brevity penalty: exp(1 - r/c) when c < r. */
	o = opts();
	llm_bleu_compute(&o, (double[]){10, 20, 10, 9, 8, 7, 10, 9, 8, 7}, &r);
	assert_float_equal(r.bp, 0.36787944117144233, 1e-15);
	assert_float_equal(r.score, 100 * r.bp, 1e-12);
	assert_float_equal(r.ratio, 0.5, 0);
}

/* --- test/test_sentence_bleu.py -------------------------------------------------------------- */

static void sentence_bleu_smoothing_tokenizers_case(void **state)
{
	(void)state;
	/* From sacreBLEU issue #98: ţ (U+0163) against ț (U+021B), and so on. */
	const char *ref = "producţia de zahăr brut se exprimă în zahăr alb;";
	const char *sys =
	    "Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;";
	static const struct {
		enum llm_bleu_smooth smooth;
		double value;
		bool lc;
		enum llm_sacretok tok;
		double want;
	} cases[] = {
	    {LLM_BLEU_SMOOTH_EXP, -1, false, LLM_SACRETOK_13A, 8.493},
	    {LLM_BLEU_SMOOTH_NONE, -1, false, LLM_SACRETOK_13A, 0.0},
	    {LLM_BLEU_SMOOTH_FLOOR, -1, false, LLM_SACRETOK_13A, 4.51688},
	    {LLM_BLEU_SMOOTH_FLOOR, 0.1, false, LLM_SACRETOK_13A, 4.51688},
	    {LLM_BLEU_SMOOTH_FLOOR, 0.5, false, LLM_SACRETOK_13A, 10.10},
	    {LLM_BLEU_SMOOTH_ADD_K, -1, false, LLM_SACRETOK_13A, 14.882},
	    {LLM_BLEU_SMOOTH_ADD_K, 1, false, LLM_SACRETOK_13A, 14.882},
	    {LLM_BLEU_SMOOTH_ADD_K, 2, false, LLM_SACRETOK_13A, 21.389},
	    {LLM_BLEU_SMOOTH_EXP, -1, false, LLM_SACRETOK_NONE, 7.347},
	    {LLM_BLEU_SMOOTH_EXP, -1, false, LLM_SACRETOK_INTL, 8.493},
	    {LLM_BLEU_SMOOTH_EXP, -1, false, LLM_SACRETOK_CHAR, 40.8759},
	    {LLM_BLEU_SMOOTH_EXP, -1, true, LLM_SACRETOK_CHAR, 42.0267},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_bleu_opts o = opts();
		o.smooth = cases[i].smooth;
		o.smooth_value = cases[i].value;
		o.lowercase = cases[i].lc;
		o.tokenize = cases[i].tok;
		o.effective_order = true;
		double got = sentence(&o, sys, REFS(ref));
		if (got < cases[i].want - 1e-3 || got > cases[i].want + 1e-3)
			fail_msg("case %zu: %.6f, want %g", i, got, cases[i].want);
	}
}

static void sentence_without_matches_is_zero_for_every_smoothing(void **state)
{
	(void)state;
	/* sacreBLEU issue #141. */
	static const enum llm_bleu_smooth m[] = {LLM_BLEU_SMOOTH_EXP, LLM_BLEU_SMOOTH_NONE,
						 LLM_BLEU_SMOOTH_FLOOR, LLM_BLEU_SMOOTH_ADD_K};
	for (size_t i = 0; i < 4; i++) {
		struct llm_bleu_opts o = opts();
		o.smooth = m[i];
		o.effective_order = true;
		assert_true(sentence(&o, "this is a cat", REFS("okay thanks")) == 0.0);
	}
}

/* --- tokenizers ------------------------------------------------------------------------------ */

static void tokenizer_13a(void **state)
{
	(void)state;
	enum llm_sacretok t = LLM_SACRETOK_13A;
	expect_tokens(
	    t,
	    "Hello, world! It costs $1,000.50 (approx.) - see \"A&amp;B\" &lt;tag&gt; in "
	    "1990-2000.",
	    "Hello , world ! It costs $ 1,000.50 ( approx . ) - see \" A & B \" < tag > in "
	    "1990 - 2000 .");
	/* The replacements run one after the other, once each: "&amp;quot;" ends as "&quot;". */
	expect_tokens(t, "a-\nb\nc<skipped>d &amp;quot; &amp;lt; x", "ab cd & quot ; < x");
	/* Period and comma: split unless between digits; matches do not overlap. */
	expect_tokens(t, "a.,b 3.14, 5,6 ,7 .8 x. y,z", "a . , b 3.14 , 5,6 , 7 . 8 x . y , z");
	/* In "x.,5" the first substitution takes "x." and so leaves ",": ",5" stays whole. */
	expect_tokens(t, "x.,5 9.-1 1.,,a", "x . ,5 9 . -1 1 . , , a");
	/* Only ASCII punctuation is split; the apostrophe and hyphen stay in words. */
	expect_tokens(t, "It wasn't 10-20% «off» — ¿sí?", "It wasn't 10 - 20 % «off» — ¿sí ?");
	expect_tokens(t, "pre-tokenized ... text !", "pre-tokenized . . . text !");
	/* Python's whitespace separates tokens: no-break space, ideographic space, U+2028. */
	expect_tokens(t, " a\u00a0b\u3000c\u2028d\x1f", "a b c d");
	expect_tokens(t, "", "");
}

static void tokenizer_intl(void **state)
{
	(void)state;
	enum llm_sacretok t = LLM_SACRETOK_INTL;
	expect_tokens(t, "\"this,\" she   said, is an example.",
		      "\" this , \" she said , is an example .");
	/* Unicode punctuation and symbols split off, except punctuation between digits; a year
	 * keeps its final dot (as mteval-v14 does). */
	expect_tokens(t, "Price: 1,000.50€ — «quoted» in 2018.",
		      "Price : 1,000.50 € — « quoted » in 2018.");
	expect_tokens(t, "你好，世界。「引用」", "你好 ， 世界 。 「 引用 」");
	expect_tokens(t, "a+b=c ©2024 ½ x²", "a + b = c © 2024 ½ x²");
	expect_tokens(t, "It wasn't 10-20% off, ok?!", "It wasn ' t 10-20 % off , ok ? !");
	/* Letter numbers and Arabic-Indic digits are numbers. */
	expect_tokens(t, "Ⅻ. ٣،٤ ..3", "Ⅻ . ٣،٤ . .3");
}

static void tokenizer_char_and_none(void **state)
{
	(void)state;
	expect_tokens(LLM_SACRETOK_CHAR, "a b\u3000c", "a b c");
	/* Code points, not grapheme clusters: a combining accent is a token of its own. */
	expect_tokens(LLM_SACRETOK_CHAR, "e\u0301té", "e \u0301 t é");
	expect_tokens(LLM_SACRETOK_CHAR, "中文 😀", "中 文 😀");
	expect_tokens(LLM_SACRETOK_CHAR, " x\u00a0y\u2028z ", "x y z");
	expect_tokens(LLM_SACRETOK_NONE, " a,b\t c.\u00a0d ", "a,b c. d");
}

static void tokenizer_names(void **state)
{
	(void)state;
	static const char *const names[] = {"13a", "none", "intl", "char"};
	for (int i = 0; i < 4; i++) {
		enum llm_sacretok t;
		assert_int_equal(llm_sacretok_parse(names[i], &t, NULL), LLM_OK);
		assert_int_equal((int)t, i);
		assert_string_equal(llm_sacretok_name(t), names[i]);
	}
	struct llm_diag d = {0};
	enum llm_sacretok t;
	assert_int_equal(llm_sacretok_parse("zh", &t, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "13a, none, intl, char"));
	enum llm_bleu_smooth s;
	assert_int_equal(llm_bleu_smooth_parse("add-k", &s, NULL), LLM_OK);
	assert_int_equal(s, LLM_BLEU_SMOOTH_ADD_K);
	assert_int_equal(llm_bleu_smooth_parse("add-n", &s, &d), LLM_ERR_USAGE);
}

/* BLEU strips trailing whitespace before it tokenizes, which 13a and intl can see. */
static void segments_are_stripped_at_the_end_first(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.tokenize = LLM_SACRETOK_INTL;
	o.max_order = 1;
	/* "2018. " would split the dot off; stripped, "2018." stays one token. */
	expect_stats(&o, "in 2018. \u3000", REFS("in 2018."), (double[]){2, 2, 2, 2});
	expect_tokens(LLM_SACRETOK_INTL, "in 2018. ", "in 2018 .");
	/* 13a: a final "-\n" goes only when it is not stripped first. */
	o.tokenize = LLM_SACRETOK_13A;
	expect_stats(&o, "up-\n", REFS("up-"), (double[]){1, 1, 1, 1});
	expect_tokens(LLM_SACRETOK_13A, "up-\n", "up");
}

static void lowercase_is_pythons(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.max_order = 1;
	o.lowercase = true;
	/* Final sigma, and U+0130 as "i" with a combining dot. */
	expect_stats(&o, "ΟΔΟΣ İ", REFS("οδος i\u0307"), (double[]){2, 2, 2, 2});
	o.lowercase = false;
	expect_stats(&o, "ΟΔΟΣ İ", REFS("οδος i\u0307"), (double[]){2, 2, 0, 2});
}

/* --- references ------------------------------------------------------------------------------ */

static void clipping_uses_the_highest_count_in_one_reference(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.max_order = 2;
	/* "a" is twice in one reference, once in the other: 2 matches, not 3. */
	expect_stats(&o, "a a a", REFS("a b", "a a c"), (double[]){3, 3, 2, 1, 3, 2});
	/* Closest length, the shorter on a tie: 5 against 4 and 6 is 4. */
	expect_stats(&o, "a b c d e", REFS("x y z w v u", "x y z w"), (double[]){5, 4, 0, 0, 5, 4});
	expect_stats(&o, "a b c d e", REFS("x y z w", "x y z w v u"), (double[]){5, 4, 0, 0, 5, 4});
}

static void empty_references_are_left_out(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.max_order = 1;
	/* An empty reference does not count for the closest length. */
	expect_stats(&o, "a", REFS("", "a b c"), (double[]){1, 3, 1, 1});
	/* A reference of spaces is not empty: it has no tokens. */
	expect_stats(&o, "a", REFS("  ", "a b c"), (double[]){1, 0, 1, 1});
	struct llm_diag d = {0};
	double st[NS_MAX];
	const char *refs[] = {"", ""};
	size_t lens[] = {0, 0};
	assert_int_equal(llm_bleu_stats(&o, "a", 1, refs, lens, 2, st, &d), LLM_ERR_MISSING);
	assert_non_null(strstr(d.msg, "empty"));
	assert_int_equal(llm_bleu_stats(&o, "a", 1, refs, lens, 0, st, &d), LLM_ERR_RANGE);
}

static void bad_input_is_an_error(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	struct llm_diag d = {0};
	double st[NS_MAX];
	const char *ok[] = {"fine"}, *bad[] = {"bad \xC3"};
	size_t okl[] = {4}, badl[] = {5};
	assert_int_equal(llm_bleu_stats(&o, "x \xFF y", 5, ok, okl, 1, st, &d), LLM_ERR_UTF8);
	assert_int_equal(llm_bleu_stats(&o, "x", 1, bad, badl, 1, st, &d), LLM_ERR_UTF8);
	o.lowercase = true;
	assert_int_equal(llm_bleu_stats(&o, "x", 1, bad, badl, 1, st, &d), LLM_ERR_UTF8);
	/* An overlong encoding and a surrogate are invalid too. */
	o.lowercase = false;
	assert_int_equal(llm_bleu_stats(&o, "\xC0\xAF", 2, ok, okl, 1, st, &d), LLM_ERR_UTF8);
	assert_int_equal(llm_bleu_stats(&o, "\xED\xA0\x80", 3, ok, okl, 1, st, &d), LLM_ERR_UTF8);
	o.max_order = 0;
	assert_int_equal(llm_bleu_stats(&o, "x", 1, ok, okl, 1, st, &d), LLM_ERR_RANGE);
	o.max_order = LLM_BLEU_MAX_ORDER + 1;
	assert_int_equal(llm_bleu_stats(&o, "x", 1, ok, okl, 1, st, &d), LLM_ERR_RANGE);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_sacretok_apply(LLM_SACRETOK_INTL, "\xFF", 1, &b, &d), LLM_ERR_UTF8);
	llm_buf_free(&b);
}

/* A NUL byte is a character like any other (JSON's "\u0000"). */
static void nul_bytes_are_characters(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	o.max_order = 1;
	double st[NS_MAX];
	const char *refs[] = {"a\0b c"};
	size_t lens[] = {5};
	assert_int_equal(llm_bleu_stats(&o, "a\0b", 3, refs, lens, 1, st, NULL), LLM_OK);
	assert_true(st[0] == 1 && st[1] == 2 && st[2] == 1);
}

/* --- the scratch API -------------------------------------------------------------------------- */

/* Segments of every size through one scratch give what a fresh computation gives. */
static void scratch_reuse_gives_the_same_statistics(void **state)
{
	(void)state;
	static const char *const words[] = {"the",  "a",      "dog", "man,", "bit",
					    "(it)", "1,000.", "ß",   "été",  "x-y"};
	struct llm_bleu_scratch *sc;
	assert_int_equal(llm_bleu_scratch_new(&sc, NULL), LLM_OK);
	uint64_t rng = 88172645463325252ULL;
	char *h = malloc(1 << 16), *r1 = malloc(1 << 16), *r2 = malloc(1 << 16);
	assert_non_null(h);
	assert_non_null(r1);
	assert_non_null(r2);
	for (int it = 0; it < 300; it++) {
		char *bufs[3] = {h, r1, r2};
		size_t lens[3];
		for (int k = 0; k < 3; k++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t n = it % 50 == 0 ? 2000 : rng % 40, len = 0;
			for (size_t w = 0; w < n; w++) {
				rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
				const char *word = words[rng % 10];
				size_t wl = strlen(word);
				memcpy(bufs[k] + len, word, wl);
				len += wl;
				bufs[k][len++] = ' ';
			}
			lens[k] = len;
		}
		struct llm_bleu_opts o = opts();
		o.tokenize = (enum llm_sacretok)(it % 4);
		o.max_order = 1 + it % LLM_BLEU_MAX_ORDER;
		o.lowercase = it % 3 == 0;
		double a[NS_MAX], b[NS_MAX];
		const char *refs[2] = {r1, r2};
		size_t rl[2] = {lens[1], lens[2]};
		if (!lens[1] && !lens[2])
			rl[0] = 1, r1[0] = 'x';
		assert_int_equal(llm_bleu_stats_scratch(sc, &o, h, lens[0], refs, rl, 2, a, NULL),
				 LLM_OK);
		assert_int_equal(llm_bleu_stats(&o, h, lens[0], refs, rl, 2, b, NULL), LLM_OK);
		assert_memory_equal(a, b, llm_bleu_n_stats(&o) * sizeof *a);
	}
	free(h);
	free(r1);
	free(r2);
	llm_bleu_scratch_free(sc);
}

/* An ASCII text is split 64 bytes at a time from a mask of its whitespace; the same text after a
 * no-break space (U+00A0, whitespace to Python, so no token) takes the general split, and must
 * count the same, across block boundaries, with the tokenizers that split the text itself
 * (13a and none; intl would see the space as a character before the first). */
static void ascii_split_is_the_general_split(void **state)
{
	(void)state;
	static const char alphabet[] = "aAbZ09.,-'!?()<>&;: \t\v\f\r\x1c\x1d\x1e\x1f\n";
	uint64_t rng = 0x5eed5eed5eedULL;
	static char x[3][400];
	for (int it = 0; it < 6000; it++) {
		size_t lens[2];
		for (int k = 0; k < 2; k++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			size_t n = rng % 300;
			x[k][0] = '\xc2', x[k][1] = '\xa0';
			for (size_t i = 0; i < n; i++) {
				rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
				/* mostly letters, so that tokens are long and short */
				x[k][2 + i] = rng % 3
						  ? "abcdefgh"[rng % 8]
						  : alphabet[(rng >> 8) % (sizeof alphabet - 1)];
			}
			lens[k] = n;
		}
		struct llm_bleu_opts o = opts();
		o.tokenize = it % 2 ? LLM_SACRETOK_13A : LLM_SACRETOK_NONE;
		o.lowercase = it % 5 == 0;
		double fast[NS_MAX], general[NS_MAX];
		const char *r[1] = {x[1] + 2}, *r_nbsp[1] = {x[1]};
		size_t rl[1] = {lens[1] ? lens[1] : 1}, rl_nbsp[1] = {rl[0] + 2};
		if (!lens[1])
			x[1][2] = 'q';
		enum llm_err e1 = llm_bleu_stats(&o, x[0] + 2, lens[0], r, rl, 1, fast, NULL);
		enum llm_err e2 =
		    llm_bleu_stats(&o, x[0], lens[0] + 2, r_nbsp, rl_nbsp, 1, general, NULL);
		assert_int_equal(e1, e2);
		if (e1 == LLM_OK && memcmp(fast, general, llm_bleu_n_stats(&o) * sizeof *fast))
			fail_msg("iteration %d: the split differs on \"%.*s\" / \"%.*s\"", it,
				 (int)lens[0], x[0] + 2, (int)rl[0], x[1] + 2);
	}
}

/* An ASCII text without '\n', '<' or '&' takes a one-pass 13a working from bit masks; after a
 * no-break space (U+00A0: a character to 13a's substitutions, whitespace to the split) the same
 * text takes the five passes, and must come out the same.  The alphabet is mostly what the
 * substitutions act on, so that runs like "a.,b", "1.-2", ".,." and "!." are common. */
static void ascii_13a_is_the_five_passes(void **state)
{
	(void)state;
	static const char alphabet[] = "a1.,.,-- !/'\t\x1f\x7f\"z9.";
	uint64_t rng = 0x13a13a13aULL;
	static char x[300];
	struct llm_buf a, b;
	llm_buf_init(&a, 0);
	llm_buf_init(&b, 0);
	for (int it = 0; it < 20000; it++) {
		rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
		size_t n = it % 100 == 0 ? 150 + rng % 140 : rng % 24;
		x[0] = '\xc2', x[1] = '\xa0';
		for (size_t i = 0; i < n; i++) {
			rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
			x[2 + i] = alphabet[rng % (sizeof alphabet - 1)];
		}
		llm_buf_clear(&a);
		llm_buf_clear(&b);
		assert_int_equal(llm_sacretok_apply(LLM_SACRETOK_13A, x + 2, n, &a, NULL), LLM_OK);
		assert_int_equal(llm_sacretok_apply(LLM_SACRETOK_13A, x, n + 2, &b, NULL), LLM_OK);
		if (a.len != b.len || memcmp(a.data, b.data, a.len))
			fail_msg("iteration %d: \"%.*s\" gives \"%s\", the five passes \"%s\"", it,
				 (int)n, x + 2, a.data ? a.data : "", b.data ? b.data : "");
	}
	llm_buf_free(&a);
	llm_buf_free(&b);
}

/* --- the signature ---------------------------------------------------------------------------- */

static void expect_signature(const struct llm_bleu_opts *o, size_t n_refs, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_bleu_signature(o, n_refs, &b, NULL), LLM_OK);
	assert_string_equal(b.data, want);
	llm_buf_free(&b);
}

static void signature_is_sacrebleus(void **state)
{
	(void)state;
	struct llm_bleu_opts o = opts();
	expect_signature(&o, 2, "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3");
	o.lowercase = true;
	o.effective_order = true;
	o.tokenize = LLM_SACRETOK_INTL;
	o.smooth = LLM_BLEU_SMOOTH_FLOOR;
	expect_signature(&o, 1,
			 "nrefs:1|case:lc|eff:yes|tok:intl|smooth:floor[0.10]|version:2.4.3");
	o.smooth = LLM_BLEU_SMOOTH_ADD_K;
	o.tokenize = LLM_SACRETOK_CHAR;
	expect_signature(&o, 0,
			 "nrefs:var|case:lc|eff:yes|tok:char|smooth:add-k[1.00]|version:2.4.3");
	o.smooth_value = 0.5;
	o.smooth = LLM_BLEU_SMOOTH_FLOOR;
	o.tokenize = LLM_SACRETOK_NONE;
	o.lowercase = false;
	expect_signature(&o, 3,
			 "nrefs:3|case:mixed|eff:yes|tok:none|smooth:floor[0.50]|version:2.4.3");
	o.smooth = LLM_BLEU_SMOOTH_NONE;
	expect_signature(&o, 1, "nrefs:1|case:mixed|eff:yes|tok:none|smooth:none|version:2.4.3");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(readme_example_is_48_530827),
	    cmocka_unit_test(readme_example_per_tokenizer),
	    cmocka_unit_test(readme_example_max_order_1_to_6),
	    cmocka_unit_test(empty_hypotheses_count_and_score_zero),
	    cmocka_unit_test(raw_corpus_bleu_cases),
	    cmocka_unit_test(effective_order_cases),
	    cmocka_unit_test(statistics_and_floor_offset),
	    cmocka_unit_test(compute_from_statistics),
	    cmocka_unit_test(sentence_bleu_smoothing_tokenizers_case),
	    cmocka_unit_test(sentence_without_matches_is_zero_for_every_smoothing),
	    cmocka_unit_test(tokenizer_13a),
	    cmocka_unit_test(tokenizer_intl),
	    cmocka_unit_test(tokenizer_char_and_none),
	    cmocka_unit_test(tokenizer_names),
	    cmocka_unit_test(segments_are_stripped_at_the_end_first),
	    cmocka_unit_test(lowercase_is_pythons),
	    cmocka_unit_test(clipping_uses_the_highest_count_in_one_reference),
	    cmocka_unit_test(empty_references_are_left_out),
	    cmocka_unit_test(bad_input_is_an_error),
	    cmocka_unit_test(nul_bytes_are_characters),
	    cmocka_unit_test(scratch_reuse_gives_the_same_statistics),
	    cmocka_unit_test(ascii_split_is_the_general_split),
	    cmocka_unit_test(ascii_13a_is_the_five_passes),
	    cmocka_unit_test(signature_is_sacrebleus),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
