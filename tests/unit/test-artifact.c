/* Unit tests for lib/artifact: the canonical JSON form (held to RFC 8785's number examples),
 * SemVer 2.0.0 (held to semver.org's lists of valid and invalid versions and its precedence
 * chain), times, names and paths, manifest checks, and signatures. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "artifact/manifest.h"
#include "artifact/sign.h"

static char *canonical(json_t *v)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_json_canonical(v, &b), LLM_OK);
	json_decref(v);
	return b.data;
}

static void expect_canonical(json_t *v, const char *want)
{
	char *got = canonical(v);
	assert_string_equal(got, want);
	free(got);
}

/* RFC 8785 appendix B: IEEE 754 bit patterns and their ECMAScript serializations. */
static void test_numbers_rfc8785(void **state)
{
	(void)state;
	static const struct {
		uint64_t bits;
		const char *text;
	} cases[] = {
	    {0x0000000000000000ULL, "0"},
	    {0x8000000000000000ULL, "0"},
	    {0x0000000000000001ULL, "5e-324"},
	    {0x8000000000000001ULL, "-5e-324"},
	    {0x7fefffffffffffffULL, "1.7976931348623157e+308"},
	    {0xffefffffffffffffULL, "-1.7976931348623157e+308"},
	    {0x4340000000000000ULL, "9007199254740992"},
	    {0xc340000000000000ULL, "-9007199254740992"},
	    {0x4430000000000000ULL, "295147905179352830000"},
	    {0x44b52d02c7e14af5ULL, "9.999999999999997e+22"},
	    {0x44b52d02c7e14af6ULL, "1e+23"},
	    {0x44b52d02c7e14af7ULL, "1.0000000000000001e+23"},
	    {0x444b1ae4d6e2ef4eULL, "999999999999999700000"},
	    {0x444b1ae4d6e2ef4fULL, "999999999999999900000"},
	    {0x444b1ae4d6e2ef50ULL, "1e+21"},
	    {0x3eb0c6f7a0b5ed8dULL, "0.000001"},
	    {0x3eb0c6f7a0b5ed8eULL, "0.0000010000000000000002"},
	    {0x41b3de4355555553ULL, "333333333.3333332"},
	    {0x41b3de4355555554ULL, "333333333.33333325"},
	    {0x41b3de4355555555ULL, "333333333.3333333"},
	    {0x41b3de4355555556ULL, "333333333.3333334"},
	    {0x41b3de4355555557ULL, "333333333.33333343"},
	    {0xbecbf647612f3696ULL, "-0.0000033333333333333333"},
	    {0x43143ff3c1cb0959ULL, "1424953923781206.2"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		double d;
		memcpy(&d, &cases[i].bits, sizeof d);
		expect_canonical(json_real(d), cases[i].text);
	}
}

static void test_numbers_as_parsed(void **state)
{
	(void)state;
	json_error_t je;
	json_t *v = json_loads("{\"a\":3.0,\"b\":0.10000000000000001,\"c\":3e-4,\"d\":-12,"
			       "\"e\":9223372036854775807,\"f\":1E21,\"g\":2.5e-7}",
			       0, &je);
	assert_non_null(v);
	expect_canonical(v, "{\"a\":3,\"b\":0.1,\"c\":0.0003,\"d\":-12,\"e\":9223372036854775807,"
			    "\"f\":1e+21,\"g\":2.5e-7}");
}

static void test_strings_and_keys(void **state)
{
	(void)state;
	/* Keys sorted by UTF-8 bytes: "B" < "a" < "b" < "é"; escapes only where JSON needs them. */
	json_t *o = json_object();
	json_object_set_new(o, "b", json_string("tab\there \"q\" back\\slash"));
	json_object_set_new(o, "a", json_string("\x01\x1f\x7f/é€😀"));
	json_object_set_new(o, "\xc3\xa9", json_true());
	json_object_set_new(o, "B", json_pack("[n,b,{}]", 0));
	json_object_set_new(o, "nl", json_string("\b\f\n\r"));
	expect_canonical(o, "{\"B\":[null,false,{}],\"a\":\"\\u0001\\u001f\x7f/é€😀\","
			    "\"b\":\"tab\\there \\\"q\\\" back\\\\slash\",\"nl\":\"\\b\\f\\n\\r\","
			    "\"\xc3\xa9\":true}");
}

static void test_digest(void **state)
{
	(void)state;
	char id[LLM_DIGEST_SIZE];
	assert_int_equal(llm_digest("abc", 3, id), LLM_OK);
	/* FIPS 180-2's "abc" example. */
	assert_string_equal(
	    id, "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	assert_true(llm_digest_valid(id));
	id[10] = 'A';
	assert_false(llm_digest_valid(id));
	assert_false(llm_digest_valid("sha256:abc"));
}

/* semver.org's lists of valid and invalid versions. */
static void test_semver_check(void **state)
{
	(void)state;
	static const char *const valid[] = {
	    "0.0.4",
	    "1.2.3",
	    "10.20.30",
	    "1.1.2-prerelease+meta",
	    "1.1.2+meta",
	    "1.1.2+meta-valid",
	    "1.0.0-alpha",
	    "1.0.0-beta",
	    "1.0.0-alpha.beta",
	    "1.0.0-alpha.beta.1",
	    "1.0.0-alpha.1",
	    "1.0.0-alpha0.valid",
	    "1.0.0-alpha.0valid",
	    "1.0.0-alpha-a.b-c-somethinglong+build.1-aef.1-its-okay",
	    "1.0.0-rc.1+build.1",
	    "2.0.0-rc.1+build.123",
	    "1.2.3-beta",
	    "10.2.3-DEV-SNAPSHOT",
	    "1.2.3-SNAPSHOT-123",
	    "1.0.0",
	    "2.0.0",
	    "1.1.7",
	    "2.0.0+build.1848",
	    "2.0.1-alpha.1227",
	    "1.0.0-alpha+beta",
	    "1.2.3----RC-SNAPSHOT.12.9.1--.12+788",
	    "1.2.3----R-S.12.9.1--.12+meta",
	    "1.2.3----RC-SNAPSHOT.12.9.1--.12",
	    "1.0.0+0.build.1-rc.10000aaa-kk-0.1",
	    "99999999999999999999999.999999999999999999.99999999999999999",
	    "1.0.0-0A.is.legal",
	};
	static const char *const invalid[] = {
	    "1",
	    "1.2",
	    "1.2.3-0123",
	    "1.2.3-0123.0123",
	    "1.1.2+.123",
	    "+invalid",
	    "-invalid",
	    "-invalid+invalid",
	    "-invalid.01",
	    "alpha",
	    "alpha.beta",
	    "alpha.beta.1",
	    "alpha.1",
	    "alpha+beta",
	    "alpha_beta",
	    "alpha.",
	    "alpha..",
	    "beta",
	    "1.0.0-alpha_beta",
	    "-alpha.",
	    "1.0.0-alpha..",
	    "1.0.0-alpha..1",
	    "1.0.0-alpha...1",
	    "1.0.0-alpha....1",
	    "1.0.0-alpha.....1",
	    "1.0.0-alpha......1",
	    "1.0.0-alpha.......1",
	    "01.1.1",
	    "1.01.1",
	    "1.1.01",
	    "1.2.3.DEV",
	    "1.2-SNAPSHOT",
	    "1.2.31.2.3----RC-SNAPSHOT.12.09.1--..12+788",
	    "1.2-RC-SNAPSHOT",
	    "-1.0.3-gamma+b7718",
	    "+justmeta",
	    "9.8.7+meta+meta",
	    "9.8.7-whatever+meta+meta",
	    "99999999999999999999999.999999999999999999.99999999999999999----RC-SNAPSHOT.12.09.1---"
	    "-----------------------------..12",
	    "",
	    "1.0.0-",
	    "1.0.0+",
	    " 1.0.0",
	    "1.0.0 ",
	};
	for (size_t i = 0; i < sizeof valid / sizeof *valid; i++)
		if (llm_semver_check(valid[i], NULL) != LLM_OK)
			fail_msg("valid version refused: %s", valid[i]);
	for (size_t i = 0; i < sizeof invalid / sizeof *invalid; i++)
		if (llm_semver_check(invalid[i], NULL) == LLM_OK)
			fail_msg("invalid version accepted: %s", invalid[i]);
}

/* The precedence chain of SemVer 2.0.0 section 11. */
static void test_semver_order(void **state)
{
	(void)state;
	static const char *const chain[] = {
	    "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta",
	    "1.0.0-beta",  "1.0.0-beta.2",  "1.0.0-beta.11",
	    "1.0.0-rc.1",  "1.0.0",	    "2.0.0",
	    "2.1.0",	   "2.1.1",	    "10.0.0",
	};
	size_t n = sizeof chain / sizeof *chain;
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < n; j++) {
			int c = llm_semver_cmp(chain[i], chain[j]);
			int want = (i > j) - (i < j);
			if ((c > 0) - (c < 0) != want)
				fail_msg("%s vs %s: %d", chain[i], chain[j], c);
		}
	assert_int_equal(llm_semver_cmp("1.0.0+a", "1.0.0+b"), 0);
	assert_int_equal(llm_semver_cmp("1.0.0-rc.1+x", "1.0.0-rc.1"), 0);
	assert_true(llm_semver_cmp("99999999999999999999.0.0", "9999999999999999999.0.0") > 0);
}

static void test_names(void **state)
{
	(void)state;
	static const char *const ok[] = {"a", "support-bot", "llama3.1_8b", "x-1.2", "0"};
	static const char *const bad[] = {"",	  "Bot", "-bot", "bot-", "a--b",
					  "a.-b", "a/b", "a b",	 "é"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		assert_int_equal(llm_artifact_name_check(ok[i], NULL), LLM_OK);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_artifact_name_check(bad[i], NULL) == LLM_OK)
			fail_msg("bad name accepted: '%s'", bad[i]);
	char long_name[140];
	memset(long_name, 'a', 129);
	long_name[129] = '\0';
	assert_int_not_equal(llm_artifact_name_check(long_name, NULL), LLM_OK);
	long_name[128] = '\0';
	assert_int_equal(llm_artifact_name_check(long_name, NULL), LLM_OK);
}

static void test_paths(void **state)
{
	(void)state;
	static const char *const ok[] = {"a",	    "a/b.c", "sub/dir/model.safetensors",
					 ".hidden", "a/..b", "café.txt"};
	static const char *const bad[] = {"",	 "/abs", "../x", "a/../b", "a/./b", ".",
					  "..",	 "a//b", "a/",	 "a\\b",   "a\nb",  "MANIFEST.json",
					  "\xff"};
	for (size_t i = 0; i < sizeof ok / sizeof *ok; i++)
		assert_int_equal(llm_artifact_path_check(ok[i], NULL), LLM_OK);
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_artifact_path_check(bad[i], NULL) == LLM_OK)
			fail_msg("bad path accepted: '%s'", bad[i]);
	assert_int_equal(llm_artifact_path_check("sub/MANIFEST.json", NULL), LLM_OK);
}

static void test_times(void **state)
{
	(void)state;
	char s[21];
	int64_t t;
	llm_rfc3339_format(0, s);
	assert_string_equal(s, "1970-01-01T00:00:00Z");
	llm_rfc3339_format(1700000000, s);
	assert_string_equal(s, "2023-11-14T22:13:20Z");
	llm_rfc3339_format(951782400, s); /* a leap day in a year divisible by 400 */
	assert_string_equal(s, "2000-02-29T00:00:00Z");
	assert_true(llm_rfc3339_parse("2023-11-14T22:13:20Z", &t));
	assert_int_equal(t, 1700000000);
	assert_true(llm_rfc3339_parse("2024-02-29T23:59:59Z", &t));
	assert_true(llm_rfc3339_parse("9999-12-31T23:59:59Z", &t));
	llm_rfc3339_format(t, s);
	assert_string_equal(s, "9999-12-31T23:59:59Z");
	assert_true(llm_rfc3339_parse("@1700000000", &t));
	assert_int_equal(t, 1700000000);
	static const char *const bad[] = {"2023-02-29T00:00:00Z",
					  "2023-11-14T24:00:00Z",
					  "2023-11-14 22:13:20Z",
					  "2023-11-14T22:13:20",
					  "2023-11-14T22:13:20+00:00",
					  "1969-12-31T23:59:59Z",
					  "@-1",
					  "@",
					  "@12x",
					  "2023-13-01T00:00:00Z"};
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
		if (llm_rfc3339_parse(bad[i], &t))
			fail_msg("bad time accepted: %s", bad[i]);
}

static const char *const H = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

static enum llm_err parse(const char *text, bool canonical, struct llm_diag *d)
{
	struct llm_manifest m;
	enum llm_err e = llm_manifest_parse(&m, text, strlen(text), "M", canonical, d);
	if (!e)
		llm_manifest_free(&m);
	return e;
}

static void expect_refused(const char *text, const char *why)
{
	struct llm_diag d;
	if (parse(text, false, &d) == LLM_OK)
		fail_msg("manifest accepted: %s", text);
	if (!strstr(d.msg, why))
		fail_msg("'%s' lacks '%s'", d.msg, why);
}

static void test_manifest_build_and_parse(void **state)
{
	(void)state;
	struct llm_manifest m;
	struct llm_diag d;
	assert_int_equal(llm_manifest_init(&m, "bot", "1.0.0", 1700000000, &d), LLM_OK);
	assert_int_equal(llm_manifest_add_file(&m, "z.bin", 3, H, false, &d), LLM_OK);
	assert_int_equal(llm_manifest_add_file(&m, "a/b", 0, H, true, &d), LLM_OK);
	assert_int_equal(llm_manifest_add_file(&m, "a-c", 1, H, false, &d), LLM_OK);
	assert_int_equal(llm_manifest_sort_files(&m, &d), LLM_OK);
	assert_string_equal(m.files[0].path, "a-c"); /* '-' sorts before '/' */
	assert_int_equal(llm_manifest_set(&m, "licence", json_string("MIT"), &d), LLM_OK);
	assert_int_equal(llm_manifest_set(&m, "params", json_pack("{s:f}", "lr", 0.0003), &d),
			 LLM_OK);
	assert_int_not_equal(llm_manifest_set(&m, "licnece", json_string("MIT"), &d), LLM_OK);
	assert_int_not_equal(llm_manifest_set(&m, "files", json_array(), &d), LLM_OK);
	assert_int_equal(llm_manifest_sync(&m), LLM_OK);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_manifest_canonical(&m, &b), LLM_OK);
	char want[2048];
	snprintf(
	    want, sizeof want,
	    "{\"created\":\"2023-11-14T22:13:20Z\",\"files\":[{\"path\":\"a-c\",\"sha256\":\"%s\","
	    "\"size\":1},{\"executable\":true,\"path\":\"a/b\",\"sha256\":\"%s\",\"size\":0},"
	    "{\"path\":\"z.bin\",\"sha256\":\"%s\",\"size\":3}],\"format\":1,\"licence\":\"MIT\","
	    "\"name\":\"bot\",\"params\":{\"lr\":0.0003},\"version\":\"1.0.0\"}",
	    H, H, H);
	assert_string_equal(b.data, want);
	char id[LLM_DIGEST_SIZE], id2[LLM_DIGEST_SIZE];
	assert_int_equal(llm_manifest_identity(&m, id), LLM_OK);
	llm_manifest_free(&m);
	/* Read back, canonical required: the same identity. */
	struct llm_manifest r;
	assert_int_equal(llm_manifest_parse(&r, b.data, b.len, "M", true, &d), LLM_OK);
	assert_int_equal(r.nfiles, 3);
	assert_true(r.files[1].executable);
	assert_int_equal(r.total_size, 4);
	assert_int_equal(r.created, 1700000000);
	assert_int_equal(llm_manifest_identity(&r, id2), LLM_OK);
	assert_string_equal(id, id2);
	llm_manifest_free(&r);
	/* The same content indented is a valid manifest but not canonical. */
	json_t *doc = json_loadb(b.data, b.len, 0, NULL);
	char *pretty = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
	assert_int_equal(parse(pretty, false, &d), LLM_OK);
	assert_int_equal(parse(pretty, true, &d), LLM_ERR_FORMAT);
	assert_non_null(strstr(d.msg, "canonical"));
	free(pretty);
	json_decref(doc);
	llm_buf_free(&b);
}

static void test_manifest_refusals(void **state)
{
	(void)state;
	char t[1024];
#define BASE                                                                                       \
	"\"created\":\"2023-11-14T22:13:20Z\",\"format\":1,\"name\":\"x\",\"version\":\"1.0.0\""
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"a\",\"sha256\":\"%s\",\"size\":1},"
		 "{\"path\":\"a/b\",\"sha256\":\"%s\",\"size\":1}]}",
		 H, H);
	expect_refused(t, "folder of");
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"b\",\"sha256\":\"%s\",\"size\":1},"
		 "{\"path\":\"a\",\"sha256\":\"%s\",\"size\":1}]}",
		 H, H);
	expect_refused(t, "out of order");
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"a\",\"sha256\":\"%s\",\"size\":1},"
		 "{\"path\":\"a\",\"sha256\":\"%s\",\"size\":1}]}",
		 H, H);
	expect_refused(t, "listed twice");
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"../a\",\"sha256\":\"%s\",\"size\":1}]}", H);
	expect_refused(t, "'..'");
	snprintf(t, sizeof t,
		 "{" BASE
		 ",\"files\":[{\"executable\":false,\"path\":\"a\",\"sha256\":\"%s\",\"size\":1}]}",
		 H);
	expect_refused(t, "only as true");
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"a\",\"sha256\":\"%.63s\",\"size\":1}]}", H);
	expect_refused(t, "64 lower-case hex");
	snprintf(t, sizeof t,
		 "{" BASE ",\"files\":[{\"path\":\"a\",\"sha256\":\"%s\",\"size\":-1}]}", H);
	expect_refused(t, "whole number");
	expect_refused("{" BASE ",\"files\":[],\"licnece\":\"MIT\"}", "unknown field");
	expect_refused("{" BASE ",\"files\":[],\"parent\":{\"name\":\"x\"}}", "parent");
	expect_refused("{" BASE ",\"files\":[],\"metrics\":{\"bleu\":{\"ci\":null}}}", "score");
	expect_refused("{\"created\":\"2023-11-14T22:13:20Z\",\"format\":1,\"name\":\"x\","
		       "\"version\":\"1.0\",\"files\":[]}",
		       "SemVer");
	expect_refused(
	    "{\"created\":\"yesterday\",\"format\":1,\"name\":\"x\",\"version\":\"1.0.0\","
	    "\"files\":[]}",
	    "RFC 3339");
	expect_refused("{\"format\":2}", "format 2");
	expect_refused("[1]", "JSON object");
	expect_refused("{" BASE ",\"files\":[],\"name\":\"y\"}", "duplicate");
	struct llm_diag d;
	assert_int_equal(parse("{\n\"format\": 1,\n  oops\n}", false, &d), LLM_ERR_JSON);
	assert_int_equal(d.line, 3);
	assert_int_equal(
	    parse("{\"created\":\"2023-11-14T22:13:20Z\",\"files\":[],\"format\":1,"
		  "\"name\":\"x\",\"version\":\"1.0.0\",\"x-team\":{\"owner\":\"ml\"}}",
		  true, &d),
	    LLM_OK);
#undef BASE
}

static void test_signatures(void **state)
{
	(void)state;
	char dir[] = "/tmp/llmops-test-sign.XXXXXX", prefix[64], priv[80], pub[80];
	assert_non_null(mkdtemp(dir));
	snprintf(prefix, sizeof prefix, "%s/k", dir);
	snprintf(priv, sizeof priv, "%s.pem", prefix);
	snprintf(pub, sizeof pub, "%s.pub", prefix);
	struct llm_diag d;
	char kid[LLM_DIGEST_SIZE], kid2[LLM_DIGEST_SIZE], got[LLM_DIGEST_SIZE];
	assert_int_equal(llm_sign_keygen(prefix, kid, &d), LLM_OK);
	assert_int_equal(access(priv, R_OK), 0);
	assert_int_equal(llm_sign_keygen(prefix, kid2, &d), LLM_ERR_USAGE); /* never overwrites */
	assert_int_equal(llm_sign_key_id(pub, kid2, &d), LLM_OK);
	assert_string_equal(kid, kid2);
	const char *id = "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	struct llm_buf s1, s2;
	llm_buf_init(&s1, 0);
	llm_buf_init(&s2, 0);
	assert_int_equal(llm_sign(priv, id, &s1, &d), LLM_OK);
	assert_int_equal(llm_sign(priv, id, &s2, &d), LLM_OK);
	assert_string_equal(s1.data, s2.data); /* Ed25519 is deterministic */
	assert_int_equal(llm_sign_verify(pub, id, s1.data, s1.len, "S", got, &d), LLM_OK);
	assert_string_equal(got, kid);
	/* Another artifact. */
	const char *other =
	    "sha256:ca7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
	assert_int_equal(llm_sign_verify(pub, other, s1.data, s1.len, "S", NULL, &d),
			 LLM_ERR_CHECK);
	/* A signature file edited to claim the other artifact. */
	char *edited = strdup(s1.data);
	memcpy(strstr(edited, "sha256:ba78"), other, strlen(other));
	assert_int_equal(llm_sign_verify(pub, other, edited, strlen(edited), "S", NULL, &d),
			 LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "bad signature"));
	free(edited);
	/* Another key. */
	char prefix2[80], pub2[88];
	snprintf(prefix2, sizeof prefix2, "%s/other", dir);
	snprintf(pub2, sizeof pub2, "%s.pub", prefix2);
	assert_int_equal(llm_sign_keygen(prefix2, kid2, &d), LLM_OK);
	assert_int_equal(llm_sign_verify(pub2, id, s1.data, s1.len, "S", NULL, &d), LLM_ERR_CHECK);
	assert_non_null(strstr(d.msg, "signed with key"));
	/* Garbage. */
	assert_int_equal(llm_sign_verify(pub, id, "{}", 2, "S", NULL, &d), LLM_ERR_FORMAT);
	assert_int_equal(llm_sign_verify(pub, id, "nope", 4, "S", NULL, &d), LLM_ERR_FORMAT);
	llm_buf_free(&s1);
	llm_buf_free(&s2);
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	assert_int_equal(system(cmd), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_numbers_rfc8785),
	    cmocka_unit_test(test_numbers_as_parsed),
	    cmocka_unit_test(test_strings_and_keys),
	    cmocka_unit_test(test_digest),
	    cmocka_unit_test(test_semver_check),
	    cmocka_unit_test(test_semver_order),
	    cmocka_unit_test(test_names),
	    cmocka_unit_test(test_paths),
	    cmocka_unit_test(test_times),
	    cmocka_unit_test(test_manifest_build_and_parse),
	    cmocka_unit_test(test_manifest_refusals),
	    cmocka_unit_test(test_signatures),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
