/* Unit tests for lib/metrics/ter: TER against sacreBLEU's published numbers (its
 * test/test_ter.py and test/test_tokenizer_ter.py, and the Hugging Face metric card that runs
 * it, which prints edits and lengths exactly), and the rules behind them: the tokenizer's
 * options, the best reference, the average reference length, empty texts, the beam. */
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

#include "metrics/ter.h"

static void seg_stats(const struct llm_ter_opts *o, const char *hyp, const char *const *refs,
		      size_t n_refs, double *stats)
{
	size_t lens[8];
	assert_true(n_refs <= 8);
	for (size_t r = 0; r < n_refs; r++)
		lens[r] = strlen(refs[r]);
	assert_int_equal(llm_ter_stats(o, hyp, strlen(hyp), refs, lens, n_refs, stats, NULL),
			 LLM_OK);
	double again[2];
	struct llm_ter_scratch *s;
	assert_int_equal(llm_ter_scratch_new(&s, NULL), LLM_OK);
	assert_int_equal(
	    llm_ter_scratch_stats(s, o, hyp, strlen(hyp), refs, lens, n_refs, again, NULL), LLM_OK);
	llm_ter_scratch_free(s);
	assert_memory_equal(stats, again, sizeof again);
}

/* Summed statistics of n segments (refs segment-major, n_refs each) into sum. */
static double corpus(const struct llm_ter_opts *o, const char *const *hyps, size_t n,
		     const char *const *refs, size_t n_refs, double sum[2])
{
	sum[0] = sum[1] = 0;
	for (size_t i = 0; i < n; i++) {
		double st[2];
		seg_stats(o, hyps[i], refs + i * n_refs, n_refs, st);
		sum[0] += st[0];
		sum[1] += st[1];
	}
	return llm_ter_compute(o, sum);
}

static double sentence(const struct llm_ter_opts *o, const char *hyp, const char *ref)
{
	double sum[2];
	return corpus(o, &hyp, 1, &ref, 1, sum);
}

#define NEAR(got, want, tol)                                                                       \
	do {                                                                                       \
		double g_ = (got), w_ = (want);                                                    \
		if (!(g_ >= w_ - (tol) && g_ <= w_ + (tol)))                                       \
			fail_msg("%s = %.10f, want %.10f (within %g)", #got, g_, w_,               \
				 (double)(tol));                                                   \
	} while (0)

/* sacreBLEU's test_ter.py holds these to 1e-3. */
#define EPSILON 1e-3

static void defaults_give_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	NEAR(sentence(&o, "aaaa bbbb cccc dddd", "aaaa bbbb cccc dddd"), 0.0, EPSILON);
	NEAR(sentence(&o, "dddd eeee ffff", "aaaa bbbb cccc"), 100.0, EPSILON);
	NEAR(sentence(&o, "", "a"), 100.0, EPSILON);
	/* One shift fixes it: 1 edit over 8 words. */
	NEAR(sentence(&o, "d e f g h a b c", "a b c d e f g h"), 12.5, EPSILON);

	const char *hyps[] = {
	    "wählen Sie \" Bild neu berechnen , \" um beim Ändern der Bildgröße Pixel "
	    "hinzuzufügen oder zu entfernen , damit das Bild ungefähr dieselbe Größe aufweist wie "
	    "die andere Größe .",
	    "wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im "
	    "Menü des Aufgabenbedienfelds die Option \" Alle Aufgaben aktualisieren . \"",
	    "klicken Sie auf der Registerkarte \" Optionen \" auf die Schaltfläche \" "
	    "Benutzerdefiniert \" und geben Sie Werte für \" Fehlerkorrektur-Level \" und \" Y / "
	    "X-Verhältnis \" ein .",
	    "Sie können beispielsweise ein Dokument erstellen , das ein Auto über die Bühne "
	    "enthält .",
	    "wählen Sie im Dialogfeld \" Neu aus Vorlage \" eine Vorlage aus und klicken Sie auf "
	    "\" "
	    "Neu . \"",
	};
	const char *refs[] = {
	    "wählen Sie \" Bild neu berechnen , \" um beim Ändern der Bildgröße Pixel "
	    "hinzuzufügen oder zu entfernen , damit die Darstellung des Bildes in einer anderen "
	    "Größe beibehalten wird .",
	    "wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im "
	    "Menü des Aufgabenbedienfelds die Option \" Alle Aufgaben aktualisieren . \"",
	    "klicken Sie auf der Registerkarte \" Optionen \" auf die Schaltfläche \" "
	    "Benutzerdefiniert \" und geben Sie für \" Fehlerkorrektur-Level \" und \" Y / "
	    "X-Verhältnis \" niedrigere Werte ein .",
	    "Sie können beispielsweise ein Dokument erstellen , das ein Auto enthalt , das sich "
	    "über die Bühne bewegt .",
	    "wählen Sie im Dialogfeld \" Neu aus Vorlage \" eine Vorlage aus und klicken Sie auf "
	    "\" "
	    "Neu . \"",
	};
	double sum[2];
	NEAR(corpus(&o, hyps, 5, refs, 1, sum), 13.6, EPSILON);
}

/* The Hugging Face metric card (its case_sensitive passed through to sacreBLEU) prints the
 * edits and the summed average reference lengths. */
static const char *const CARD_HYPS[] = {"does this sentence match??", "what about this sentence?",
					"What did the TER metric user say to the developer?"};
static const char *const CARD_REFS[] = {"does this sentence match",  "does this sentence match!?!",
					"wHaT aBoUt ThIs SeNtEnCe?", "wHaT aBoUt ThIs SeNtEnCe?",
					"Your jokes are...",	     "...TERrible"};

static void options_give_metric_card_values(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	double sum[2];
	llm_ter_opts_default(&o);
	o.case_sensitive = true;
	NEAR(corpus(&o, CARD_HYPS, 3, CARD_REFS, 2, sum), 150.0, 1e-12);
	assert_true(sum[0] == 15 && sum[1] == 10.0);
	NEAR(corpus(&o, CARD_HYPS, 2, CARD_REFS, 2, sum), 62.5, 1e-12);
	assert_true(sum[0] == 5 && sum[1] == 8.0);
	o.normalized = true;
	NEAR(corpus(&o, CARD_HYPS, 2, CARD_REFS, 2, sum), 57.14285714285714, 1e-12);
	assert_true(sum[0] == 6 && sum[1] == 10.5);
	llm_ter_opts_default(&o);
	o.no_punct = true;
	NEAR(corpus(&o, CARD_HYPS, 2, CARD_REFS, 2, sum), 0.0, 1e-12);
	assert_true(sum[0] == 0 && sum[1] == 8.0);
	NEAR(corpus(&o, CARD_HYPS, 3, CARD_REFS, 2, sum), 100.0, 1e-12);
	assert_true(sum[0] == 10 && sum[1] == 10.0);
}

static void expect_tok(const struct llm_ter_opts *o, const char *in, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 1 << 20);
	assert_int_equal(llm_ter_tokenize(o, in, strlen(in), &b, NULL), LLM_OK);
	if (b.len != strlen(want) || (b.len && memcmp(b.data, want, b.len)))
		fail_msg("tokenize(\"%s\") gave \"%.*s\", want \"%s\"", in, (int)b.len, b.data,
			 want);
	llm_buf_free(&b);
}

/* sacreBLEU's test_tokenizer_ter.py, and the rules it does not spell out. */
static void tokenizer_gives_sacrebleu_test_values(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	expect_tok(&o, "a b c d", "a b c d");
	expect_tok(&o, "", "");
	expect_tok(&o, "a b c d.", "a b c d.");
	expect_tok(&o, "A B C D.", "a b c d.");

	o.no_punct = true;
	expect_tok(&o, "a b c d.", "a b c d");
	expect_tok(&o, "A ; B ) C : D.", "a b c d");

	llm_ter_opts_default(&o);
	o.normalized = true;
	expect_tok(&o, "a b (c) d.", "a b ( c ) d .");
	expect_tok(&o, "Jim's car.", "jim 's car .");
	expect_tok(&o, "4.2", "4.2");
	/* Period and comma stay inside numbers; a dash after a digit is split off. */
	expect_tok(&o, "3,000 items, 2.5 kg. 10-20", "3,000 items , 2.5 kg . 10 - 20");
	/* XML entities are decoded one after another: "&amp;lt;" ends as "<". */
	expect_tok(&o, "a&amp;lt;b &quot;x&quot;", "a < b \" x \"");
	/* Line-end hyphenation is joined, other newlines are spaces. */
	expect_tok(&o, "hyphen\n-ation\nnext", "hyphenation next");

	o.asian_support = true;
	expect_tok(&o, "美众院公布对特", "美 众 院 公 布 对 特");
	expect_tok(&o, "りの拳銃を持", "りの 拳 銃 を 持");
	o.no_punct = true;
	expect_tok(&o, "東京、大阪。", "東 京 大 阪");
	/* Asian punctuation is removed only with asian_support. */
	o.normalized = false;
	o.asian_support = false;
	expect_tok(&o, "東京、大阪。", "東京、大阪。");
	o.asian_support = true;
	expect_tok(&o, "東京、大阪。", "東京大阪");

	/* Case is kept only when asked; Python's lowercasing ('İ' gains a combining dot). */
	llm_ter_opts_default(&o);
	expect_tok(&o, "İstanbul ÉTÉ", "i̇stanbul été");
	o.case_sensitive = true;
	expect_tok(&o, "İstanbul ÉTÉ", "İstanbul ÉTÉ");
	/* Words are split on Python whitespace: U+3000 and U+00A0 separate, U+200B does not. */
	expect_tok(&o, "a　b\u00a0c\u200bd", "a b c\u200bd");
}

static void tokenizer_refuses_invalid_utf8(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	struct llm_buf b;
	struct llm_diag d;
	llm_buf_init(&b, 1024);
	assert_int_equal(llm_ter_tokenize(&o, "ab\xC3", 3, &b, &d), LLM_ERR_UTF8);
	double st[2];
	const char *ref = "x";
	size_t len = 1;
	assert_int_equal(llm_ter_stats(&o, "\xFF", 1, &ref, &len, 1, st, &d), LLM_ERR_UTF8);
	o.case_sensitive = true;
	assert_int_equal(llm_ter_stats(&o, "a", 1, &ref, &len, 0, st, &d), LLM_ERR_USAGE);
	assert_int_equal(llm_ter_stats(&o, "\xFF", 1, &ref, &len, 1, st, &d), LLM_ERR_UTF8);
	llm_buf_free(&b);
}

static void best_reference_and_average_length(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	double st[2];
	/* Edits from the closest reference, length the mean over all of them. */
	const char *refs[] = {"x y z", "the cat sat down", "a b"};
	seg_stats(&o, "the cat sat", refs, 3, st);
	assert_true(st[0] == 1);
	assert_true(st[1] == 3.0);
	const char *refs2[] = {"the cat sat", "the cat sat on it"};
	seg_stats(&o, "the cat sat", refs2, 2, st);
	assert_true(st[0] == 0 && st[1] == 4.0);
	assert_true(llm_ter_compute(&o, st) == 0.0);
}

static void empty_texts_score_as_sacrebleu_does(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	double st[2];
	const char *empty = "";
	seg_stats(&o, "", &empty, 1, st);
	assert_true(st[0] == 0 && st[1] == 0);
	assert_true(llm_ter_compute(&o, st) == 0.0);
	/* An empty reference: every hypothesis word is an edit, and the score is 100. */
	seg_stats(&o, "one two three", &empty, 1, st);
	assert_true(st[0] == 3 && st[1] == 0);
	assert_true(llm_ter_compute(&o, st) == 100.0);
	/* Trailing whitespace is stripped before anything else. */
	const char *ref = "a b";
	seg_stats(&o, " a   b \n\t\u3000", &ref, 1, st);
	assert_true(st[0] == 0 && st[1] == 2);
	/* An empty hypothesis: one insertion per reference word. */
	const char *refs[] = {"a b c", "d e"};
	seg_stats(&o, "   ", refs, 2, st);
	assert_true(st[0] == 2 && st[1] == 2.5);
}

/* sacreBLEU's distance looks only at a band around the length-scaled diagonal.  Against a
 * 120-word reference, a one-word hypothesis sees columns 35..120 of its row, so a match of
 * the reference's first word is out of reach: 120 edits where Levenshtein says 119. */
static void beam_is_sacrebleus_not_full_levenshtein(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	char ref[2048];
	size_t k = (size_t)snprintf(ref, sizeof ref, "x");
	for (int i = 1; i < 120; i++)
		k += (size_t)snprintf(ref + k, sizeof ref - k, " w%d", i);
	const char *r = ref;
	double st[2];
	seg_stats(&o, "x", &r, 1, st);
	assert_true(st[0] == 120 && st[1] == 120);
	/* Where the band reaches the match, it counts. */
	seg_stats(&o, "w119", &r, 1, st);
	assert_true(st[0] == 119);
}

/* Shifts: a block moved back counts one edit; words shifted within the same sentence do not
 * need to be adjacent to the target. */
static void shifts_count_one_edit_each(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	NEAR(sentence(&o, "c d a b", "a b c d"), 25.0, 1e-12);
	NEAR(sentence(&o, "b a", "a b"), 50.0, 1e-12);
	NEAR(sentence(&o, "the man bit the dog", "the dog bit the man"), 40.0, 1e-12);
}

/* sacreBLEU counts candidate shifts over the whole search (1000 at most) and, once a round
 * reaches the cap, stops without taking that round's best shift.  Here the cap falls in the
 * round whose best shift would save one more edit: 17 edits, where a port that took the shift
 * counts 16.  (17 is what lib_ter.py's loop gives, worked through a line-by-line Python
 * transcription of it; sacreBLEU itself is not installable here.) */
static void candidate_cap_ends_the_search_as_sacrebleu_does(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	const char *ref = "e b a a d a b a e e c c b e c a a b b d b c c e c b c c b b e c b c d e "
			  "b d d d b";
	double st[2];
	seg_stats(&o,
		  "c e c b a c b c b a b a b c e a b e e c e c d a d c d d d b a b b e c b e b c "
		  "d b",
		  &ref, 1, st);
	assert_true(st[0] == 17 && st[1] == 41);
}

static void expect_sig(const struct llm_ter_opts *o, size_t n_refs, const char *want)
{
	struct llm_buf b;
	llm_buf_init(&b, 1024);
	assert_int_equal(llm_ter_signature(o, n_refs, &b, NULL), LLM_OK);
	assert_string_equal(b.data, want);
	llm_buf_free(&b);
}

static void signature_is_sacrebleus(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	expect_sig(&o, 1, "nrefs:1|case:lc|tok:tercom|norm:no|punct:yes|asian:no|version:2.4.3");
	o.case_sensitive = o.normalized = o.no_punct = o.asian_support = true;
	expect_sig(&o, 2,
		   "nrefs:2|case:mixed|tok:tercom|norm:yes|punct:no|asian:yes|version:2.4.3");
	expect_sig(&o, 0,
		   "nrefs:var|case:mixed|tok:tercom|norm:yes|punct:no|asian:yes|version:2.4.3");
	assert_int_equal(llm_ter_n_stats(&o), 2);
}

/* Long, scrambled segments run the candidate cap and the band's growth; one workspace gives
 * what fresh ones give. */
static void long_segments_and_scratch_reuse(void **state)
{
	(void)state;
	struct llm_ter_opts o;
	llm_ter_opts_default(&o);
	struct llm_ter_scratch *s;
	assert_int_equal(llm_ter_scratch_new(&s, NULL), LLM_OK);
	static char hyp[8192], ref[8192];
	for (int len = 1; len <= 400; len = len * 3 + 1) {
		size_t hk = 0, rk = 0;
		for (int i = 0; i < len; i++) {
			rk += (size_t)snprintf(ref + rk, sizeof ref - rk, "%sw%d", i ? " " : "",
					       i % 17);
			int j = (i * 7 + 3) % len;
			hk += (size_t)snprintf(hyp + hk, sizeof hyp - hk, "%sw%d", i ? " " : "",
					       j % 17);
		}
		const char *refs[] = {ref, hyp};
		size_t lens[] = {rk, hk};
		double a[2], b[2];
		assert_int_equal(llm_ter_scratch_stats(s, &o, hyp, hk, refs, lens, 1, a, NULL),
				 LLM_OK);
		assert_int_equal(llm_ter_stats(&o, hyp, hk, refs, lens, 1, b, NULL), LLM_OK);
		assert_memory_equal(a, b, sizeof a);
		assert_true(a[0] <= len && a[1] == len);
		assert_int_equal(llm_ter_scratch_stats(s, &o, hyp, hk, refs, lens, 2, a, NULL),
				 LLM_OK);
		assert_true(a[0] == 0);
	}
	llm_ter_scratch_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(defaults_give_sacrebleu_test_values),
	    cmocka_unit_test(options_give_metric_card_values),
	    cmocka_unit_test(tokenizer_gives_sacrebleu_test_values),
	    cmocka_unit_test(tokenizer_refuses_invalid_utf8),
	    cmocka_unit_test(best_reference_and_average_length),
	    cmocka_unit_test(empty_texts_score_as_sacrebleu_does),
	    cmocka_unit_test(beam_is_sacrebleus_not_full_levenshtein),
	    cmocka_unit_test(shifts_count_one_edit_each),
	    cmocka_unit_test(candidate_cap_ends_the_search_as_sacrebleu_does),
	    cmocka_unit_test(signature_is_sacrebleus),
	    cmocka_unit_test(long_segments_and_scratch_reuse),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
