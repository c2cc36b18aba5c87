/* Unit tests for lib/metrics/rouge and the Porter stemmer: rouge-score's published test cases
 * (rouge_scorer_test.py and its testdata, which hold it to ROUGE-1.5.5), rouge-score's own
 * numbers on random segments bit for bit (tests/data/rouge/vectors.jsonl, from
 * scripts/maint/make-rouge-vectors), NLTK's stems of every word of tests/data/porter-nltk.tsv (from
 * scripts/maint/make-porter-vectors), rouge-score's algorithms written out plainly and compared on
 * random texts, the Unicode tokenizer, and bad input. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "metrics/rouge.h"

/* --- helpers -------------------------------------------------------------------------------- */

static char *slurp(const char *rel, size_t *len)
{
	char path[4096];
	const char *top = getenv("top_srcdir");
	snprintf(path, sizeof path, "%s/tests/data/%s", top ? top : ".", rel);
	FILE *f = fopen(path, "rb");
	if (!f)
		fail_msg("cannot open %s", path);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	char chunk[65536];
	size_t n;
	while ((n = fread(chunk, 1, sizeof chunk, f)) > 0)
		assert_int_equal(llm_buf_append(&b, chunk, n), LLM_OK);
	fclose(f);
	*len = b.len;
	return b.data ? b.data : calloc(1, 1);
}

static struct llm_rouge *scorer(bool stem, bool unicode, const char *const *types, size_t n)
{
	struct llm_rouge *r = NULL;
	struct llm_rouge_opts o = {.stemmer = stem, .unicode = unicode};
	struct llm_diag d;
	if (llm_rouge_new(&r, &o, types, n, &d) != LLM_OK)
		fail_msg("llm_rouge_new: %s", d.msg);
	return r;
}

#define TYPES(...)                                                                                 \
	(const char *const[]){__VA_ARGS__},                                                        \
	    sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *)

/* rouge-score's score(target, prediction): one reference. */
static void score1(struct llm_rouge *r, const char *target, const char *prediction,
		   struct llm_rouge_prf *out)
{
	size_t len = strlen(target);
	struct llm_diag d;
	if (llm_rouge_score(r, prediction, strlen(prediction), &target, &len, 1, out, &d) != LLM_OK)
		fail_msg("llm_rouge_score: %s", d.msg);
}

/* assertAlmostEqual(want, got, places). */
static void near(double got, double want, int places, const char *what)
{
	double tol = 0.5;
	for (int i = 0; i < places; i++)
		tol /= 10;
	if (!(got - want <= tol && want - got <= tol))
		fail_msg("%s: %.17g, expected %.*f", what, got, places, want);
}

static void expect_prf(struct llm_rouge_prf s, double p, double r, double f, int places)
{
	near(s.precision, p, places, "precision");
	near(s.recall, r, places, "recall");
	near(s.fmeasure, f, places, "fmeasure");
}

/* --- the Porter stemmer --------------------------------------------------------------------- */

static void test_porter_matches_nltk_on_every_word_of_the_fixture(void **state)
{
	(void)state;
	size_t len;
	char *text = slurp("porter-nltk.tsv", &len);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	size_t words = 0, wrong = 0;
	for (char *line = text, *next; line < text + len; line = next) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		next = nl ? nl + 1 : text + len;
		size_t n = (size_t)(next - line) - (nl ? 1 : 0);
		if (!n || line[0] == '#')
			continue;
		char *tab = memchr(line, '\t', n);
		assert_non_null(tab);
		size_t wl = (size_t)(tab - line), sl = n - wl - 1;
		llm_buf_clear(&out);
		assert_int_equal(llm_porter_stem(line, wl, &out, NULL), LLM_OK);
		words++;
		if (out.len != sl || memcmp(out.data, tab + 1, sl)) {
			if (wrong++ < 20)
				print_message("  %.*s: %s, NLTK %.*s\n", (int)wl, line, out.data,
					      (int)sl, tab + 1);
		}
	}
	llm_buf_free(&out);
	free(text);
	if (wrong)
		fail_msg("%zu of %zu words stem otherwise than NLTK", wrong, words);
	assert_true(words >= 5000);
}

static void stem_is(const char *w, const char *want)
{
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(llm_buf_puts(&out, "<"), LLM_OK);
	assert_int_equal(llm_porter_stem(w, strlen(w), &out, NULL), LLM_OK);
	if (strcmp(out.data + 1, want) || out.data[0] != '<')
		fail_msg("stem(%s) = %s, expected <%s", w, out.data, want);
	llm_buf_free(&out);
}

static void test_porter_appends_and_keeps_nltk_quirks(void **state)
{
	(void)state;
	stem_is("skies", "sky"); /* irregular forms */
	stem_is("dying", "die");
	stem_is("Sky", "ski"); /* looked up before lowercasing, as NLTK does */
	stem_is("Running", "run");
	stem_is("oed", "o");	 /* nltk issue 1581 */
	stem_is("is", "is");	 /* two letters: untouched */
	stem_is("On", "on");	 /* but lowercased */
	stem_is("flies", "fli"); /* ies on more than four letters */
	stem_is("dies", "die");	 /* and on four */
	stem_is("generously", "gener");
	stem_is("caf\xc3\xa9s", "caf\xc3\xa9s"); /* outside ASCII: unchanged */
	stem_is("", "");
}

/* --- rouge-score's published cases (rouge_scorer_test.py) ------------------------------------ */

static void test_invalid_rouge_types_are_usage_errors(void **state)
{
	(void)state;
	const char *bad[] = {"rougen", "rouge0", "rouge10", "rougel", "rougeLSum", "", "bleu"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct llm_rouge *r = (struct llm_rouge *)1;
		struct llm_diag d = {0};
		assert_int_equal(llm_rouge_new(&r, NULL, &bad[i], 1, &d), LLM_ERR_USAGE);
		assert_null(r);
		assert_non_null(strstr(d.msg, bad[i]));
	}
	const char *good[] = {"rouge1", "rouge9", "rougeL", "rougeLsum"};
	struct llm_rouge *r = scorer(false, false, good, 4);
	struct llm_rouge_prf s[4];
	score1(r, "testing one two", "testing", s);
	llm_rouge_free(r);
}

static void test_rouge1_rouge2_and_rougel_published_values(void **state)
{
	(void)state;
	struct llm_rouge_prf s[2];
	struct llm_rouge *r = scorer(false, false, TYPES("rouge1"));
	score1(r, "testing one two", "testing", s);
	expect_prf(s[0], 1, 1.0 / 3, 1.0 / 2, 7);
	llm_rouge_free(r);

	r = scorer(false, false, TYPES("rouge2"));
	score1(r, "testing one two", "testing one", s);
	expect_prf(s[0], 1, 1.0 / 2, 2.0 / 3, 7);
	llm_rouge_free(r);

	r = scorer(false, false, TYPES("rougeL"));
	score1(r, "testing one two", "testing one", s);
	expect_prf(s[0], 1, 2.0 / 3, 4.0 / 5, 7);
	score1(r, "testing one two", "testing two", s); /* not consecutive */
	expect_prf(s[0], 1, 2.0 / 3, 4.0 / 5, 7);
	llm_rouge_free(r);

	r = scorer(false, false, TYPES("rouge1", "rougeL"));
	score1(r, "testing one two", "testing one", s);
	expect_prf(s[0], 1, 2.0 / 3, 4.0 / 5, 7);
	expect_prf(s[1], 1, 2.0 / 3, 4.0 / 5, 7);
	llm_rouge_free(r);
}

static void test_empty_prediction_scores_zero_for_every_type(void **state)
{
	(void)state;
	struct llm_rouge_prf s[4];
	struct llm_rouge *r =
	    scorer(false, false, TYPES("rouge1", "rouge2", "rougeL", "rougeLsum"));
	score1(r, "testing one two", "", s);
	for (int i = 0; i < 4; i++)
		expect_prf(s[i], 0, 0, 0, 7);
	score1(r, "", "w1", s);
	for (int i = 0; i < 4; i++)
		expect_prf(s[i], 0, 0, 0, 7);
	score1(r, "w1 w2 w3 w4 w5", "/", s); /* all non-word characters */
	for (int i = 0; i < 4; i++)
		expect_prf(s[i], 0, 0, 0, 7);
	llm_rouge_free(r);
}

/* readlines()[i] of a testdata file, newline included. */
static char *line_of(const char *file, int which)
{
	size_t len;
	char *t = slurp(file, &len);
	char *p = t;
	for (int i = 0; i < which; i++)
		p = strchr(p, '\n') + 1;
	char *e = strchr(p, '\n');
	char *line = strndup(p, (size_t)(e - p) + 1);
	free(t);
	return line;
}

static void test_rouge_n_and_l_against_rouge155(void **state)
{
	(void)state;
	char *t0 = line_of("rouge/target.txt", 0), *p0 = line_of("rouge/prediction.txt", 0);
	char *t1 = line_of("rouge/target.txt", 1), *p1 = line_of("rouge/prediction.txt", 1);
	struct llm_rouge_prf s[3];
	for (int stem = 0; stem < 2; stem++) {
		struct llm_rouge *r = scorer(stem, false, TYPES("rouge1", "rouge2", "rougeL"));
		score1(r, t0, p0, s);
		expect_prf(s[0], 0.68750, 0.40741, 0.51163, 5);
		expect_prf(s[1], 0.53333, 0.30769, 0.39024, 5);
		if (!stem)
			expect_prf(s[2], 0.68750, 0.40741, 0.51163, 5);
		score1(r, t1, p1, s);
		if (stem)
			expect_prf(s[0], 0.69231, 0.42857, 0.52941, 5);
		else
			expect_prf(s[0], 0.65385, 0.40476, 0.50000, 5);
		expect_prf(s[1], 0.48000, 0.29268, 0.36364, 5);
		if (!stem)
			expect_prf(s[2], 0.65385, 0.40476, 0.50000, 5);
		llm_rouge_free(r);
	}
	free(t0);
	free(p0);
	free(t1);
	free(p1);
}

static void test_rougelsum_against_rouge155_with_stemming(void **state)
{
	(void)state;
	size_t tl, pl;
	char *t = slurp("rouge/target_multi.0.txt", &tl);
	char *p = slurp("rouge/prediction_multi.0.txt", &pl);
	struct llm_rouge_prf s[1];
	struct llm_rouge *r = scorer(true, false, TYPES("rougeLsum"));
	score1(r, t, p, s);
	expect_prf(s[0], 0.66667, 0.36538, 0.47205, 5);
	llm_rouge_free(r);
	free(t);
	free(p);
}

static void test_rougelsum_takes_the_union_lcs_per_reference_sentence(void **state)
{
	(void)state;
	struct llm_rouge_prf s[2];
	struct llm_rouge *r = scorer(false, false, TYPES("rougeLsum", "rougeL"));
	/* The example of section 3.2 of Lin (2004): union of [w1 w2] and [w1 w3 w5]. */
	score1(r, "w1 w2 w3 w4 w5", "w1 w2 w6 w7 w8\nw1 w3 w8 w9 w5", s);
	expect_prf(s[0], 0.4, 0.8, 0.5333, 3);
	assert_true(s[0].recall == 0.8 && s[0].precision == 0.4);
	/* rougeL sees one sequence, where "c" then "a b" have an LCS of two; rougeLsum takes
	 * the union of the LCS with each sentence. */
	score1(r, "a b c", "c\na b", s);
	expect_prf(s[0], 1, 1, 1, 15);
	expect_prf(s[1], 2.0 / 3, 2.0 / 3, 2.0 / 3, 15);
	/* A token is counted once however many candidate sentences' LCS take it. */
	score1(r, "a b", "a b\na b\na b", s);
	expect_prf(s[0], 2.0 / 6, 1, 0.5, 12);
	llm_rouge_free(r);
}

static void test_several_references_take_the_best_f_per_type(void **state)
{
	(void)state;
	struct llm_rouge_prf s[2];
	struct llm_rouge *r = scorer(false, false, TYPES("rouge1", "rouge2"));
	/* rouge1 ties at F = 2/3, and the first reference wins (numpy's argmax); rouge2 picks
	 * the other reference, each type on its own. */
	const char *refs[] = {"a b c d", "a"};
	size_t lens[] = {7, 1};
	assert_int_equal(llm_rouge_score(r, "a b", 3, refs, lens, 2, s, NULL), LLM_OK);
	expect_prf(s[0], 1, 0.5, 2.0 / 3, 15);
	expect_prf(s[1], 1, 1.0 / 3, 0.5, 15);
	const char *swapped[] = {"a", "a b c d"};
	size_t swapped_lens[] = {1, 7};
	assert_int_equal(llm_rouge_score(r, "a b", 3, swapped, swapped_lens, 2, s, NULL), LLM_OK);
	expect_prf(s[0], 0.5, 1, 2.0 / 3, 15);
	expect_prf(s[1], 1, 1.0 / 3, 0.5, 15);
	const char *three[] = {"a q q q q q", "z a b", "a b c d e f"};
	size_t three_lens[] = {11, 5, 11};
	assert_int_equal(llm_rouge_score(r, "a b", 3, three, three_lens, 3, s, NULL), LLM_OK);
	expect_prf(s[0], 1, 2.0 / 3, 0.8, 15);
	expect_prf(s[1], 1, 1.0 / 2, 2.0 / 3, 15);
	struct llm_diag d = {0};
	assert_int_equal(llm_rouge_score(r, "a b", 3, refs, lens, 0, s, &d), LLM_ERR_USAGE);
	llm_rouge_free(r);
}

/* --- rouge-score's numbers on random segments, bit for bit ----------------------------------- */

static const char *const ALL[] = {"rouge1", "rouge2", "rouge3", "rouge4", "rougeL", "rougeLsum"};

static bool all_ascii(json_t *rec)
{
	const char *h = json_string_value(json_object_get(rec, "hyp"));
	for (const char *p = h; *p; p++)
		if ((unsigned char)*p >= 0x80)
			return false;
	json_t *refs = json_object_get(rec, "refs"), *v;
	size_t i;
	json_array_foreach(refs, i, v)
	{
		for (const char *p = json_string_value(v); *p; p++)
			if ((unsigned char)*p >= 0x80)
				return false;
	}
	return true;
}

static void check_vectors(bool unicode)
{
	size_t len;
	char *text = slurp("rouge/vectors.jsonl", &len);
	struct llm_rouge *sc[2] = {scorer(false, unicode, ALL, 6), scorer(true, unicode, ALL, 6)};
	struct llm_rouge *lsum_only = scorer(true, unicode, TYPES("rougeLsum"));
	size_t segments = 0, checked = 0;
	for (char *line = text, *next; line < text + len; line = next) {
		char *nl = memchr(line, '\n', (size_t)(text + len - line));
		next = nl ? nl + 1 : text + len;
		json_error_t err;
		json_t *rec = json_loadb(line, (size_t)(next - line), 0, &err);
		if (!rec)
			fail_msg("vectors.jsonl:%zu: %s", segments + 1, err.text);
		segments++;
		if (unicode && !all_ascii(rec)) {
			json_decref(rec);
			continue;
		}
		bool stem = json_is_true(json_object_get(rec, "stemmer"));
		json_t *jh = json_object_get(rec, "hyp"), *jr = json_object_get(rec, "refs");
		const char *refs[8];
		size_t lens[8], nr = json_array_size(jr);
		assert_true(nr >= 1 && nr <= 8);
		for (size_t k = 0; k < nr; k++) {
			refs[k] = json_string_value(json_array_get(jr, k));
			lens[k] = json_string_length(json_array_get(jr, k));
		}
		struct llm_rouge_prf s[6];
		struct llm_diag d;
		if (llm_rouge_score(sc[stem], json_string_value(jh), json_string_length(jh), refs,
				    lens, nr, s, &d))
			fail_msg("segment %zu: %s", segments, d.msg);
		json_t *want = json_object_get(rec, "scores");
		for (int t = 0; t < 6; t++) {
			json_t *w = json_object_get(want, ALL[t]);
			double got[3] = {s[t].precision, s[t].recall, s[t].fmeasure};
			for (int k = 0; k < 3; k++) {
				double x = json_number_value(json_array_get(w, (size_t)k));
				if (got[k] != x)
					fail_msg(
					    "segment %zu (stemmer %d) %s[%d]: %.17g, rouge-score "
					    "%.17g",
					    segments, stem, ALL[t], k, got[k], x);
			}
		}
		if (stem) { /* a scorer of rougeLsum alone tokenizes the same */
			assert_int_equal(llm_rouge_score(lsum_only, json_string_value(jh),
							 json_string_length(jh), refs, lens, nr, s,
							 NULL),
					 LLM_OK);
			json_t *w = json_object_get(want, "rougeLsum");
			assert_true(s[0].fmeasure == json_number_value(json_array_get(w, 2)));
		}
		checked++;
		json_decref(rec);
	}
	llm_rouge_free(sc[0]);
	llm_rouge_free(sc[1]);
	llm_rouge_free(lsum_only);
	free(text);
	assert_true(segments >= 300);
	assert_true(checked >= (unicode ? 100 : 300));
}

static void test_random_segments_match_rouge_score_bit_for_bit(void **state)
{
	(void)state;
	check_vectors(false);
}

static void test_unicode_tokenizer_agrees_on_ascii_text(void **state)
{
	(void)state;
	check_vectors(true);
}

/* --- rouge-score's algorithms written out plainly, on random texts ---------------------------- */

static uint64_t rng_state = 0x9E3779B97F4A7C15ULL;
static unsigned rnd(unsigned n)
{
	rng_state ^= rng_state << 13;
	rng_state ^= rng_state >> 7;
	rng_state ^= rng_state << 17;
	return (unsigned)(rng_state % n);
}

struct text {
	int tok[400];
	int sent[400]; /* sentence index of each token */
	int n, nsent;
	char s[4096];
};

static void make_text(struct text *t, int max_len, int alphabet, int newline_per_100)
{
	t->n = (int)rnd((unsigned)max_len + 1);
	t->nsent = 1;
	size_t o = 0;
	for (int i = 0; i < t->n; i++) {
		t->tok[i] = (int)rnd((unsigned)alphabet);
		bool nl = i > 0 && (int)rnd(100) < newline_per_100;
		if (nl)
			t->nsent++;
		t->sent[i] = t->nsent - 1;
		o += (size_t)snprintf(t->s + o, sizeof t->s - o, "%sw%d",
				      i ? (nl ? "\n" : " ") : "", t->tok[i]);
	}
	t->s[o] = '\0';
}

static int lcs_table[401][401];

/* _lcs_table and _backtrack_norec over a[0..m) and b[0..n); marks the positions in a. */
static int plain_lcs(const int *a, int m, const int *b, int n, unsigned char *marks)
{
	for (int i = 0; i <= m; i++)
		for (int j = 0; j <= n; j++)
			lcs_table[i][j] = !i || !j		 ? 0
					  : a[i - 1] == b[j - 1] ? lcs_table[i - 1][j - 1] + 1
					  : lcs_table[i - 1][j] > lcs_table[i][j - 1]
					      ? lcs_table[i - 1][j]
					      : lcs_table[i][j - 1];
	int i = m, j = n;
	while (marks && i > 0 && j > 0) {
		if (a[i - 1] == b[j - 1]) {
			marks[i - 1] = 1;
			i--;
			j--;
		} else if (lcs_table[i][j - 1] > lcs_table[i - 1][j]) {
			j--;
		} else {
			i--;
		}
	}
	return lcs_table[m][n];
}

static double fm(double p, double r)
{
	return p + r > 0 ? 2 * p * r / (p + r) : 0.0;
}

static void plain_ngrams(const struct text *ref, const struct text *hyp, int n, double out[3])
{
	int nr = ref->n >= n ? ref->n - n + 1 : 0, nh = hyp->n >= n ? hyp->n - n + 1 : 0;
	int hits = 0;
	static unsigned char used[400];
	memset(used, 0, sizeof used);
	for (int i = 0; i < nr; i++) /* each reference n-gram, matched to an unused equal one */
		for (int j = 0; j < nh; j++)
			if (!used[j] &&
			    !memcmp(ref->tok + i, hyp->tok + j, (size_t)n * sizeof(int))) {
				used[j] = 1;
				hits++;
				break;
			}
	out[0] = (double)hits / (nh ? nh : 1);
	out[1] = (double)hits / (nr ? nr : 1);
	out[2] = fm(out[0], out[1]);
}

static void plain_lsum(const struct text *ref, const struct text *hyp, double out[3])
{
	out[0] = out[1] = out[2] = 0;
	if (!ref->n || !hyp->n)
		return;
	static int cr[64], cc[64];
	memset(cr, 0, sizeof cr);
	memset(cc, 0, sizeof cc);
	for (int i = 0; i < ref->n; i++)
		cr[ref->tok[i]]++;
	for (int i = 0; i < hyp->n; i++)
		cc[hyp->tok[i]]++;
	int hits = 0;
	for (int rs = 0; rs < ref->nsent; rs++) {
		int a0 = 0;
		while (a0 < ref->n && ref->sent[a0] < rs)
			a0++;
		int a1 = a0;
		while (a1 < ref->n && ref->sent[a1] == rs)
			a1++;
		unsigned char marks[400] = {0};
		for (int cs = 0; cs < hyp->nsent; cs++) {
			int b0 = 0;
			while (b0 < hyp->n && hyp->sent[b0] < cs)
				b0++;
			int b1 = b0;
			while (b1 < hyp->n && hyp->sent[b1] == cs)
				b1++;
			plain_lcs(ref->tok + a0, a1 - a0, hyp->tok + b0, b1 - b0, marks);
		}
		for (int i = 0; i < a1 - a0; i++) {
			int t = ref->tok[a0 + i];
			if (marks[i] && cc[t] > 0 && cr[t] > 0) {
				hits++;
				cc[t]--;
				cr[t]--;
			}
		}
	}
	out[0] = (double)hits / hyp->n;
	out[1] = (double)hits / ref->n;
	out[2] = fm(out[0], out[1]);
}

static void test_random_texts_match_the_plain_algorithms(void **state)
{
	(void)state;
	struct llm_rouge *r =
	    scorer(false, false, TYPES("rouge1", "rouge2", "rouge3", "rougeL", "rougeLsum"));
	static struct text ref, hyp;
	for (int iter = 0; iter < 3000; iter++) {
		/* Short and long (several 64-bit words per bit vector), few and many sentences. */
		int max_len = iter % 10 == 0 ? 300 : iter % 3 == 0 ? 90 : 20;
		int alphabet = 2 + (int)rnd(iter % 2 ? 6 : 40);
		int nl = (int)rnd(3) == 0 ? 0 : (int)rnd(30);
		make_text(&ref, max_len, alphabet, nl);
		make_text(&hyp, max_len, alphabet, (int)rnd(30));
		struct llm_rouge_prf s[5];
		score1(r, ref.s, hyp.s, s);
		double want[5][3];
		for (int n = 1; n <= 3; n++)
			plain_ngrams(&ref, &hyp, n, want[n - 1]);
		int l = ref.n && hyp.n ? plain_lcs(ref.tok, ref.n, hyp.tok, hyp.n, NULL) : 0;
		want[3][0] = hyp.n && ref.n ? (double)l / hyp.n : 0;
		want[3][1] = hyp.n && ref.n ? (double)l / ref.n : 0;
		want[3][2] = fm(want[3][0], want[3][1]);
		plain_lsum(&ref, &hyp, want[4]);
		for (int t = 0; t < 5; t++) {
			double got[3] = {s[t].precision, s[t].recall, s[t].fmeasure};
			for (int k = 0; k < 3; k++)
				if (got[k] != want[t][k])
					fail_msg(
					    "iteration %d type %d [%d]: %.17g, plain %.17g\nref: "
					    "%s\nhyp: %s",
					    iter, t, k, got[k], want[t][k], ref.s, hyp.s);
		}
	}
	llm_rouge_free(r);
}

/* Random ASCII: words of any case and length (past 16 bytes, past a 64-byte block), digits,
 * punctuation runs, newlines, tabs, NULs. */
static size_t make_ascii(char *s, size_t cap)
{
	static const char punct[] = " .,;:!?'\"()-_/\t\n\r\0@[]{}`~";
	size_t n = rnd((unsigned)cap), o = 0;
	while (o < n) {
		int k = (int)rnd(10);
		size_t len = k == 0 ? 17 + rnd(60) : 1 + rnd(9);
		for (size_t i = 0; i < len && o < n; i++) {
			int c = (int)rnd(3);
			s[o++] = (char)(c == 0	 ? 'A' + rnd(26)
					: c == 1 ? 'a' + rnd(26)
						 : '0' + rnd(10));
		}
		for (size_t i = 1 + rnd(3); i > 0 && o < n; i--)
			s[o++] = punct[rnd(sizeof punct - 1)];
	}
	return n;
}

/* ASCII texts take a tokenizer of their own (64 bytes at a time); the same text with a
 * separator that is not ASCII appended ("\xc3\xa9", é) takes the byte-by-byte one, and must
 * score the same, to the bit. */
static void test_ascii_texts_tokenize_as_the_general_tokenizer_does(void **state)
{
	(void)state;
	for (int stem = 0; stem < 2; stem++) {
		struct llm_rouge *r =
		    scorer(stem, false, TYPES("rouge1", "rouge2", "rougeL", "rougeLsum"));
		static char hyp[40100], ref[40100];
		for (int iter = 0; iter < 4000; iter++) {
			/* now and then past the tokenizer's chunk of 16 KiB */
			size_t cap = iter % 200 == 0 ? 40000 : 600;
			size_t hn = make_ascii(hyp, cap), rn = make_ascii(ref, cap);
			struct llm_rouge_prf fast[4], slow[4];
			const char *refs[1] = {ref};
			size_t lens[1] = {rn};
			struct llm_diag d;
			assert_int_equal(llm_rouge_score(r, hyp, hn, refs, lens, 1, fast, &d),
					 LLM_OK);
			memcpy(hyp + hn, " \xc3\xa9", 3);
			memcpy(ref + rn, "\xc3\xa9", 2);
			lens[0] = rn + 2;
			assert_int_equal(llm_rouge_score(r, hyp, hn + 3, refs, lens, 1, slow, &d),
					 LLM_OK);
			for (int t = 0; t < 4; t++)
				if (memcmp(&fast[t], &slow[t], sizeof fast[t]))
					fail_msg("stem %d iteration %d type %d: %.17g %.17g %.17g, "
						 "general tokenizer %.17g %.17g %.17g",
						 stem, iter, t, fast[t].precision, fast[t].recall,
						 fast[t].fmeasure, slow[t].precision,
						 slow[t].recall, slow[t].fmeasure);
		}
		llm_rouge_free(r);
	}
}

/* A reference too long for the bit masks: rougeL falls back to the row DP, rougeLsum says so. */
static void test_very_long_reference_without_newlines(void **state)
{
	(void)state;
	struct llm_buf ref, hyp;
	llm_buf_init(&ref, 0);
	llm_buf_init(&hyp, 0);
	enum { N = 24000 };
	for (int i = 0; i < N; i++) {
		assert_int_equal(llm_buf_printf(&ref, "%sw%d", i ? " " : "", i), LLM_OK);
		if (i % 240 == 7)
			assert_int_equal(llm_buf_printf(&hyp, "w%d x ", i), LLM_OK);
	}
	struct llm_rouge_prf s[1];
	struct llm_rouge *r = scorer(false, false, TYPES("rougeL"));
	score1(r, ref.data, hyp.data, s);
	expect_prf(s[0], 0.5, 100.0 / N, fm(0.5, 100.0 / N), 15);
	llm_rouge_free(r);
	r = scorer(false, false, TYPES("rougeLsum"));
	struct llm_diag d = {0};
	const char *refp = ref.data;
	assert_int_equal(llm_rouge_score(r, hyp.data, hyp.len, &refp, &ref.len, 1, s, &d),
			 LLM_ERR_TOO_BIG);
	assert_non_null(strstr(d.msg, "newline"));
	llm_rouge_free(r);
	llm_buf_free(&ref);
	llm_buf_free(&hyp);
}

/* The scorer drops its vocabulary between calls once it is large (here after one text of 600k
 * distinct words); the ids of the next call must not mix with the old ones. */
static void test_a_large_vocabulary_is_dropped_between_calls(void **state)
{
	(void)state;
	struct llm_buf big;
	llm_buf_init(&big, 0);
	for (int i = 0; i < 600000; i++)
		assert_int_equal(llm_buf_printf(&big, "w%d ", i), LLM_OK);
	struct llm_rouge_prf s[1];
	struct llm_rouge *r = scorer(true, false, TYPES("rouge1"));
	score1(r, big.data, "w5 w599999 nothing", s);
	expect_prf(s[0], 2.0 / 3, 2.0 / 600000, fm(2.0 / 3, 2.0 / 600000), 15);
	score1(r, "the cats were running home", "a cat runs home", s);
	expect_prf(s[0], 3.0 / 4, 3.0 / 5, fm(0.75, 0.6), 15);
	score1(r, big.data, "w7 w8", s);
	expect_prf(s[0], 1, 2.0 / 600000, fm(1, 2.0 / 600000), 15);
	llm_rouge_free(r);
	llm_buf_free(&big);
}

/* --- tokenizers ------------------------------------------------------------------------------ */

static void test_default_tokenizer_is_python_lower_then_a_to_z_0_to_9(void **state)
{
	(void)state;
	struct llm_rouge_prf s[1];
	struct llm_rouge *r = scorer(false, false, TYPES("rouge1"));
	/* U+212A KELVIN SIGN lower-cases to "k"; U+0130 to "i" and a combining dot. */
	score1(r, "kelvin i stanbul",
	       "\xe2\x84\xaa"
	       "ELVIN \xc4\xb0stanbul",
	       s);
	expect_prf(s[0], 1, 1, 1, 15);
	/* Every other non-ASCII character separates; apostrophes and underscores too. */
	score1(r, "caf s don t a b", "caf\xc3\xa9s don't a_b", s);
	expect_prf(s[0], 1, 1, 1, 15);
	/* Non-Latin text has no tokens at all. */
	score1(r, "\xe6\x88\x91\xe7\x88\xb1\xe5\x8c\x97\xe4\xba\xac", "\xe6\x88\x91", s);
	expect_prf(s[0], 0, 0, 0, 15);
	llm_rouge_free(r);
}

static void test_unicode_tokenizer_splits_cjk_and_keeps_marks(void **state)
{
	(void)state;
	struct llm_rouge_prf s[2];
	struct llm_rouge *r = scorer(true, true, TYPES("rouge1", "rouge2"));
	/* 我爱北京 / 我爱上海: one token per ideograph. */
	score1(r, "\xe6\x88\x91\xe7\x88\xb1\xe5\x8c\x97\xe4\xba\xac",
	       "\xe6\x88\x91\xe7\x88\xb1\xe4\xb8\x8a\xe6\xb5\xb7", s);
	expect_prf(s[0], 0.5, 0.5, 0.5, 15);
	expect_prf(s[1], 1.0 / 3, 1.0 / 3, 1.0 / 3, 15);
	/* नमस्ते दुनिया / नमस्ते: the vowel signs and virama stay inside the word. */
	score1(r,
	       "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87 "
	       "\xe0\xa4\xa6\xe0\xa5\x81\xe0\xa4\xa8\xe0\xa4\xbf\xe0\xa4\xaf\xe0\xa4\xbe",
	       "\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87", s);
	expect_prf(s[0], 1, 0.5, 2.0 / 3, 15);
	/* Python's lower(): a final capital sigma becomes ς, so ΟΔΟΣ matches οδος only if
	 * written with ς; and Latin words with accents are one token, stemmed only in ASCII. */
	score1(r, "\xce\xbf\xce\xb4\xce\xbf\xcf\x82 r\xc3\xa9sum\xc3\xa9s running",
	       "\xce\x9f\xce\x94\xce\x9f\xce\xa3 R\xc3\x89SUM\xc3\x89S runs", s);
	expect_prf(s[0], 1, 1, 1, 15);
	/* Japanese mixes kana and kanji, one token each; Latin runs stay words. */
	score1(r, "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e GPU", "\xe6\x97\xa5\xe6\x9c\xac gpu", s);
	expect_prf(s[0], 1, 0.75, fm(1, 0.75), 15);
	llm_rouge_free(r);
}

static void test_invalid_utf8_names_the_text(void **state)
{
	(void)state;
	for (int unicode = 0; unicode < 2; unicode++) {
		struct llm_rouge *r = scorer(false, unicode, TYPES("rouge1"));
		struct llm_rouge_prf s[1];
		struct llm_diag d = {0};
		const char *refs[] = {"fine", "bad \xc3( byte"};
		size_t lens[] = {4, strlen(refs[1])};
		assert_int_equal(llm_rouge_score(r, "ok", 2, refs, lens, 2, s, &d), LLM_ERR_UTF8);
		assert_non_null(strstr(d.msg, "reference 2"));
		assert_int_equal(llm_rouge_score(r, "\xed\xa0\x80", 3, refs, lens, 1, s, &d),
				 LLM_ERR_UTF8); /* a surrogate */
		assert_non_null(strstr(d.msg, "hypothesis"));
		llm_rouge_free(r);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_porter_matches_nltk_on_every_word_of_the_fixture),
	    cmocka_unit_test(test_porter_appends_and_keeps_nltk_quirks),
	    cmocka_unit_test(test_invalid_rouge_types_are_usage_errors),
	    cmocka_unit_test(test_rouge1_rouge2_and_rougel_published_values),
	    cmocka_unit_test(test_empty_prediction_scores_zero_for_every_type),
	    cmocka_unit_test(test_rouge_n_and_l_against_rouge155),
	    cmocka_unit_test(test_rougelsum_against_rouge155_with_stemming),
	    cmocka_unit_test(test_rougelsum_takes_the_union_lcs_per_reference_sentence),
	    cmocka_unit_test(test_several_references_take_the_best_f_per_type),
	    cmocka_unit_test(test_random_segments_match_rouge_score_bit_for_bit),
	    cmocka_unit_test(test_unicode_tokenizer_agrees_on_ascii_text),
	    cmocka_unit_test(test_random_texts_match_the_plain_algorithms),
	    cmocka_unit_test(test_ascii_texts_tokenize_as_the_general_tokenizer_does),
	    cmocka_unit_test(test_very_long_reference_without_newlines),
	    cmocka_unit_test(test_a_large_vocabulary_is_dropped_between_calls),
	    cmocka_unit_test(test_default_tokenizer_is_python_lower_then_a_to_z_0_to_9),
	    cmocka_unit_test(test_unicode_tokenizer_splits_cjk_and_keeps_marks),
	    cmocka_unit_test(test_invalid_utf8_names_the_text),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
