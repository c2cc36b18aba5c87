/* Unit tests for lib/monitor/drift: every statistic against SciPy 1.10 / NumPy 1.24 on the fixed
 * samples of tests/data/monitor/drift/samples (NAME.ref and NAME.cur, one value a line), and
 * the distributions (kstwo, smirnov, chi2, the exact two-sample KS) at points chosen to take
 * every branch of SciPy's code.  The constants below were generated once with
 *     /usr/bin/python3 tests/cli/drift-scipy.py samples tests/data/monitor/drift/samples
 *     /usr/bin/python3 tests/cli/drift-scipy.py kstwo
 * (Debian's python3-scipy 1.10.1, python3-numpy 1.24.2); tests/cli/monitor-drift.sh checks
 * the same script live when SciPy is there. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/buf.h"
#include "monitor/drift.h"

/* Relative 1e-9, or exact for zeros and infinities. */
static void close_to(double got, double want, const char *what)
{
	bool ok;
	if (isnan(want))
		ok = isnan(got);
	else if (isinf(want) || want == 0)
		ok = got == want;
	else
		ok = fabs(got - want) <= 1e-9 * fabs(want);
	if (!ok)
		fail_msg("%s: got %.17g, scipy says %.17g", what, got, want);
}

struct values {
	double *num;
	char **str;
	size_t n;
};

static void values_free(struct values *v)
{
	for (size_t i = 0; v->str && i < v->n; i++)
		free(v->str[i]);
	free(v->str);
	free(v->num);
}

static struct values load(const char *name, const char *ext)
{
	const char *top = getenv("top_srcdir");
	char path[4096];
	snprintf(path, sizeof path, "%s/tests/data/monitor/drift/samples/%s.%s", top ? top : ".",
		 name, ext);
	FILE *f = fopen(path, "r");
	if (!f)
		fail_msg("cannot open %s", path);
	struct values v = {0};
	size_t cap = 0;
	char line[256];
	while (fgets(line, sizeof line, f)) {
		line[strcspn(line, "\n")] = 0;
		if (v.n == cap) {
			cap = cap ? 2 * cap : 256;
			v.num = realloc(v.num, cap * sizeof *v.num);
			v.str = realloc(v.str, cap * sizeof *v.str);
		}
		char *end;
		v.num[v.n] = strtod(line, &end);
		v.str[v.n] = strdup(line);
		v.n++;
	}
	fclose(f);
	return v;
}

struct num_case {
	const char *name;
	size_t nref, ncur;
	double ks_d, ks_p;
	bool ks_exact;
	double w, wnorm, std_ref;
	size_t sturges;
	double psi, js;
	size_t js_bins;
};

/* drift-scipy.py samples: the numeric samples. */
static const struct num_case num_cases[] = {
    {"few-values", 700, 650, 0.21076923076923076, 1.3517514051690496e-13, 1, 0.49571428571428583,
     0.43086113377523894, 1.150519847011492, 12, 1.6693366472784807, 0.28310041003375674, 5},
    {"ks-asymp", 600, 10001, 0.02600506616005066, 0.82881195765243, 0, 0.723583868279839,
     0.05008152414521715, 14.448119953013494, 15, 0.023524998704030346, 0.055398984650050116, 15},
    {"ks-asymp-small", 50, 10020, 0.15149700598802396, 0.18165379975086982, 0, 16.732391217564867,
     0.42018706291473545, 39.82129078771807, 15, 0.20809732182346924, 0.145350161485516, 15},
    {"ks-equal", 60, 60, 0.11666666666666667, 0.8132812991497796, 1, 0.3302, 0.18796113373443474,
     1.7567461604404384, 8, 0.2227719033041915, 0.16301421692543094, 8},
    {"ks-exact", 40, 55, 0.42272727272727273, 0.00030631736837943103, 1, 0.7701136363636363,
     0.7848434585449223, 0.9812321527039357, 8, 1.1006873108102515, 0.28689201897953487, 8},
    {"same", 300, 300, 0.08333333333333333, 0.2488247843957968, 1, 0.11744999999999997,
     0.11713124426678839, 1.0027213553070908, 11, 0.09729651093555994, 0.09945627480042621, 11},
    {"wide", 1500, 1200, 0.17383333333333334, 4.682515841626561e-18, 1, 39.106883333333336,
     0.4273339343172268, 91.51363884971221, 13, 0.17812785380540652, 0.1464010987539257, 13},
};

struct cat_case {
	const char *name;
	size_t nref, ncur;
	double chi, chi_p;
	size_t k;
	double z, z_p, psi, js;
};

/* drift-scipy.py samples: the categorical samples. */
static const struct cat_case cat_cases[] = {
    {"cat-big", 3000, 2500, 73.46436109523565, 7.730195909641434e-16, 4, -3.3691032418116746,
     0.0007541317587793639, 0.02520464759322219, 0.0559852796381912},
    {"cat-chi", 400, 350, INFINITY, 0.0, 5, -0.8202417882331638, 0.41207828396126,
     0.6552593525781408, 0.1890497999876775},
    {"cat-z", 500, 300, 3.5793194874061016, 0.05850311267465413, 2, 1.4314369904775808,
     0.15230501332964885, 0.010686832154201603, 0.036506782219172904},
};

static void numeric_samples_match_scipy(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof num_cases / sizeof *num_cases; c++) {
		const struct num_case *k = &num_cases[c];
		struct values r = load(k->name, "ref"), u = load(k->name, "cur");
		char what[128];
		assert_int_equal(r.n, k->nref);
		assert_int_equal(u.n, k->ncur);
		struct llm_drift_ks ks;
		assert_int_equal(llm_drift_ks(r.num, r.n, u.num, u.n, &ks), LLM_OK);
		snprintf(what, sizeof what, "%s ks D", k->name);
		close_to(ks.d, k->ks_d, what);
		snprintf(what, sizeof what, "%s ks p", k->name);
		close_to(ks.p, k->ks_p, what);
		assert_int_equal(ks.exact, k->ks_exact);
		snprintf(what, sizeof what, "%s wasserstein", k->name);
		close_to(llm_drift_wasserstein(r.num, r.n, u.num, u.n), k->w, what);
		snprintf(what, sizeof what, "%s std", k->name);
		close_to(llm_drift_std(r.num, r.n), k->std_ref, what);
		double lo = fmin(r.num[0], u.num[0]), hi = fmax(r.num[r.n - 1], u.num[u.n - 1]);
		assert_int_equal(llm_drift_sturges_bins(lo, hi, r.n + u.n), k->sturges);

		/* The column-level runs, forced, as Evidently would run them. */
		struct llm_drift_sample s = {
		    LLM_DRIFT_NUMERIC, r.num, u.num, r.n, u.n, NULL, NULL, 0};
		struct llm_drift_result res;
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_WASSERSTEIN, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s wasserstein normed", k->name);
		close_to(res.statistic, k->wnorm, what);
		assert_int_equal(res.drifted, k->wnorm >= 0.1);
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_PSI, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s psi", k->name);
		close_to(res.statistic, k->psi, what);
		assert_int_equal(res.bins, k->js_bins);
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_JENSENSHANNON, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s jensenshannon", k->name);
		close_to(res.statistic, k->js, what);
		assert_int_equal(res.bins, k->js_bins);
		assert_true(isnan(res.p_value));
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_KS, NAN, &res), LLM_OK);
		close_to(res.p_value, k->ks_p, "column ks p");
		assert_int_equal(res.drifted, k->ks_p < 0.05);
		values_free(&r);
		values_free(&u);
	}
}

/* Categories in sorted order (the order Evidently's z-test keys on), and their counts. */
static size_t count_cats(const struct values *r, const struct values *u, char ***names,
			 uint64_t **rc, uint64_t **uc)
{
	size_t k = 0;
	*names = NULL;
	const struct values *both[2] = {r, u};
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < both[s]->n; i++) {
			size_t j = 0;
			while (j < k && strcmp((*names)[j], both[s]->str[i]))
				j++;
			if (j == k) {
				*names = realloc(*names, (k + 1) * sizeof **names);
				(*names)[k++] = both[s]->str[i];
			}
		}
	for (size_t i = 1; i < k; i++)
		for (size_t j = i; j > 0 && strcmp((*names)[j - 1], (*names)[j]) > 0; j--) {
			char *t = (*names)[j];
			(*names)[j] = (*names)[j - 1];
			(*names)[j - 1] = t;
		}
	*rc = calloc(k, sizeof **rc);
	*uc = calloc(k, sizeof **uc);
	for (int s = 0; s < 2; s++)
		for (size_t i = 0; i < both[s]->n; i++)
			for (size_t j = 0; j < k; j++)
				if (!strcmp((*names)[j], both[s]->str[i]))
					(s ? *uc : *rc)[j]++;
	return k;
}

static void categorical_samples_match_scipy(void **state)
{
	(void)state;
	for (size_t c = 0; c < sizeof cat_cases / sizeof *cat_cases; c++) {
		const struct cat_case *t = &cat_cases[c];
		struct values r = load(t->name, "ref"), u = load(t->name, "cur");
		char **names;
		uint64_t *rc, *uc;
		size_t k = count_cats(&r, &u, &names, &rc, &uc);
		char what[128];
		assert_int_equal(k, t->k);
		double stat, p;
		llm_drift_chisquare(rc, uc, k, &stat, &p);
		snprintf(what, sizeof what, "%s chisquare", t->name);
		close_to(stat, t->chi, what);
		close_to(p, t->chi_p, what);
		struct llm_drift_sample s = {LLM_DRIFT_CATEGORICAL, NULL, NULL, 0, 0, rc, uc, k};
		struct llm_drift_result res;
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_Z, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s z", t->name);
		close_to(res.statistic, t->z, what);
		close_to(res.p_value, t->z_p, what);
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_PSI, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s psi", t->name);
		close_to(res.statistic, t->psi, what);
		assert_int_equal(llm_drift_column(&s, LLM_DRIFT_JENSENSHANNON, NAN, &res), LLM_OK);
		snprintf(what, sizeof what, "%s jensenshannon", t->name);
		close_to(res.statistic, t->js, what);
		assert_int_equal(res.nref, t->nref);
		assert_int_equal(res.ncur, t->ncur);
		free(names);
		free(rc);
		free(uc);
		values_free(&r);
		values_free(&u);
	}
}

/* drift-scipy.py kstwo: (n, x, kstwo.sf(x, n), smirnov(n, x)). */
static const struct {
	uint64_t n;
	double x, sf, smirnov;
} kstwo_cases[] = {
    {10, 0.07, 0.9999999619492741, 0.8713078551305892},
    {10, 0.93, 5.649504979999961e-12, 2.8247524899999804e-12},
    {200, 0.004, 1.0, 0.9911474407876079},
    {20, 0.6, 2.0483011649719853e-07, 1.0241505824859927e-07},
    {30, 0.1, 0.8960782680050898, 0.5150661722374582},
    {30, 0.2, 0.15796916101547398, 0.07901431818133459},
    {30, 0.45, 4.60170836663682e-06, 2.30085418331841e-06},
    {100, 0.08, 0.5182193645480672, 0.2638568897514003},
    {140, 0.15, 0.0032495604415101703, 0.0016247802254718215},
    {500, 0.02, 0.9859871786857471, 0.6615370284054302},
    {500, 0.05, 0.15866260223815365, 0.07937040397120126},
    {500, 0.1, 8.342293067263533e-05, 4.1711465336317664e-05},
    {2000, 0.02, 0.3953133626892045, 0.19922934612225518},
    {200000, 0.002, 0.39995085369038097, 0.20162757353974722},
    {200, 0.02, 0.9999948480179858, 0.8410019387016985},
    {150, 0.044, 0.9210729270405793, 0.5436142605678599},
    {800, 0.8, 0.0, 0.0},
    {5000, 0.3, 0.0, 0.0},
    {1013, 0.06, 0.0013008506239695762, 0.0006504253119847881},
    {3000, 0.03, 0.008848227794930863, 0.004424113897465431},
};

static void kstwo_and_smirnov_match_scipy_on_every_branch(void **state)
{
	(void)state;
	char what[128];
	for (size_t i = 0; i < sizeof kstwo_cases / sizeof *kstwo_cases; i++) {
		snprintf(what, sizeof what, "kstwo.sf(%g, %lu)", kstwo_cases[i].x,
			 (unsigned long)kstwo_cases[i].n);
		close_to(llm_drift_kstwo_sf(kstwo_cases[i].n, kstwo_cases[i].x), kstwo_cases[i].sf,
			 what);
		snprintf(what, sizeof what, "smirnov(%lu, %g)", (unsigned long)kstwo_cases[i].n,
			 kstwo_cases[i].x);
		close_to(llm_drift_smirnov(kstwo_cases[i].n, kstwo_cases[i].x),
			 kstwo_cases[i].smirnov, what);
	}
}

static void chi2_sf_matches_scipy(void **state)
{
	(void)state;
	/* drift-scipy.py kstwo: (x, df, chi2.sf(x, df)). */
	static const double cases[][3] = {
	    {0.5, 1.0, 0.47950012218695337},	 {3.84, 1.0, 0.05004352124870519},
	    {10.0, 3.0, 0.01856613546304325},	 {25.0, 10.0, 0.005345505487134069},
	    {150.0, 120.0, 0.03307348091130466}, {1.0, 7.0, 0.9948285365165155},
	    {60.0, 5.0, 1.2154569777183007e-11}, {0.01, 2.0, 0.9950124791926823},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		close_to(llm_drift_chi2_sf(cases[i][0], cases[i][1]), cases[i][2], "chi2.sf");
	assert_true(llm_drift_chi2_sf(0, 3) == 1.0);
	assert_true(llm_drift_chi2_sf(INFINITY, 3) == 0.0);
}

static void exact_ks_matches_scipy(void **state)
{
	(void)state;
	/* drift-scipy.py kstwo: ks_2samp(arange(n1)/n1, arange(n2)/n2 + d): (n1, n2, D, p). */
	static const struct {
		uint64_t n1, n2;
		double d, p;
	} cases[] = {
	    {40, 55, 0.32272727272727275, 0.012086239199055266},
	    {60, 60, 0.21666666666666667, 0.11976314781726739},
	    {7, 9, 0.6349206349206349, 0.05506993006993007},
	    {300, 420, 0.10333333333333333, 0.044259819812759595},
	    {1000, 1000, 0.051, 0.14836452078962484},
	    {10000, 9000, 0.0201, 0.04284061433647445},
	    {3, 5, 0.8, 0.14285714285714288},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
		close_to(llm_drift_ks_exact_sf(cases[i].n1, cases[i].n2, cases[i].d), cases[i].p,
			 "exact ks p");
}

static void identical_samples_do_not_drift_and_a_shift_does(void **state)
{
	(void)state;
	double a[200], b[200], c[200];
	for (int i = 0; i < 200; i++) {
		a[i] = b[i] = (double)((i * 37) % 200);
		c[i] = a[i] + 60;
	}
	struct llm_drift_sample s = {LLM_DRIFT_NUMERIC, a, b, 200, 200, NULL, NULL, 0};
	struct llm_drift_result r;
	for (int t = LLM_DRIFT_AUTO; t < LLM_DRIFT__COUNT; t++) {
		assert_int_equal(llm_drift_column(&s, (enum llm_drift_test)t, NAN, &r), LLM_OK);
		assert_false(r.drifted);
	}
	assert_int_equal(r.test, LLM_DRIFT_PSI);
	assert_true(r.statistic == 0);
	s.cur = c;
	assert_int_equal(llm_drift_column(&s, LLM_DRIFT_AUTO, NAN, &r), LLM_OK);
	assert_int_equal(r.test, LLM_DRIFT_KS);
	assert_true(r.exact);
	assert_true(r.drifted);
	close_to(r.statistic, 0.3, "shifted ks D");
	/* A threshold given is used as given. */
	assert_int_equal(llm_drift_column(&s, LLM_DRIFT_WASSERSTEIN, 2.0, &r), LLM_OK);
	assert_false(r.drifted);
	close_to(r.threshold, 2.0, "threshold");
}

static void the_automatic_choice_is_evidentlys(void **state)
{
	(void)state;
	assert_int_equal(llm_drift_choose(LLM_DRIFT_NUMERIC, 1000, 6), LLM_DRIFT_KS);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_NUMERIC, 1000, 5), LLM_DRIFT_CHISQUARE);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_NUMERIC, 1000, 2), LLM_DRIFT_Z);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_CATEGORICAL, 10, 3), LLM_DRIFT_CHISQUARE);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_CATEGORICAL, 10, 2), LLM_DRIFT_Z);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_NUMERIC, 1001, 6), LLM_DRIFT_WASSERSTEIN);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_NUMERIC, 1001, 5), LLM_DRIFT_JENSENSHANNON);
	assert_int_equal(llm_drift_choose(LLM_DRIFT_CATEGORICAL, 5000, 40),
			 LLM_DRIFT_JENSENSHANNON);
	assert_false(llm_drift_applies(LLM_DRIFT_KS, LLM_DRIFT_CATEGORICAL, 3));
	assert_false(llm_drift_applies(LLM_DRIFT_CHISQUARE, LLM_DRIFT_NUMERIC, 21));
	assert_true(llm_drift_applies(LLM_DRIFT_CHISQUARE, LLM_DRIFT_NUMERIC, 20));
	/* A test that does not apply falls back to the automatic one. */
	uint64_t rc[3] = {10, 20, 30}, cc[3] = {10, 20, 31};
	struct llm_drift_sample s = {LLM_DRIFT_CATEGORICAL, NULL, NULL, 0, 0, rc, cc, 3};
	struct llm_drift_result r;
	assert_int_equal(llm_drift_column(&s, LLM_DRIFT_KS, NAN, &r), LLM_OK);
	assert_int_equal(r.test, LLM_DRIFT_CHISQUARE);
	assert_int_equal(r.bins, 3);
	enum llm_drift_test t;
	assert_true(llm_drift_test_parse("jensenshannon", &t));
	assert_int_equal(t, LLM_DRIFT_JENSENSHANNON);
	assert_false(llm_drift_test_parse("kl", &t));
	/* An empty sample is refused rather than judged. */
	uint64_t none[3] = {0, 0, 0};
	s.cur_counts = none;
	assert_int_equal(llm_drift_column(&s, LLM_DRIFT_AUTO, NAN, &r), LLM_ERR_RANGE);
}

static void dataset_drift_is_a_share_of_columns(void **state)
{
	(void)state;
	assert_true(llm_drift_dataset(5, 10, 0.5));
	assert_false(llm_drift_dataset(4, 10, 0.5));
	assert_true(llm_drift_dataset(1, 3, 0.3));
	assert_false(llm_drift_dataset(0, 3, 0.0));
	assert_false(llm_drift_dataset(0, 0, 0.5));
}

static bool collect(void *ctx, const char *w, size_t len)
{
	struct llm_buf *b = ctx;
	llm_buf_append(b, w, len);
	llm_buf_putc(b, '|');
	return true;
}

static void words_are_lower_cased_letter_and_digit_runs(void **state)
{
	(void)state;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	const char *s = "Hello, WORLD!  Ça va? x2 — ÉTÉ_42";
	assert_int_equal(llm_drift_words(s, strlen(s), collect, &b), LLM_OK);
	assert_string_equal(b.data, "hello|world|ça|va|x2|été|42|");
	llm_buf_free(&b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(numeric_samples_match_scipy),
	    cmocka_unit_test(categorical_samples_match_scipy),
	    cmocka_unit_test(kstwo_and_smirnov_match_scipy_on_every_branch),
	    cmocka_unit_test(chi2_sf_matches_scipy),
	    cmocka_unit_test(exact_ks_matches_scipy),
	    cmocka_unit_test(identical_samples_do_not_drift_and_a_shift_does),
	    cmocka_unit_test(the_automatic_choice_is_evidentlys),
	    cmocka_unit_test(dataset_drift_is_a_share_of_columns),
	    cmocka_unit_test(words_are_lower_cased_letter_and_digit_runs),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
