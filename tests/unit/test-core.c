/* Unit tests for lib/core: the JSON scanner, buffers, options, records, hashing, atomic
 * files and the random numbers. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "core/atomic.h"
#include "core/buf.h"
#include "core/hash.h"
#include "core/json.h"
#include "core/jsonl.h"
#include "core/opt.h"
#include "core/rand.h"
#include "text/tokfile.h"

static enum llm_err scan(const char *s, struct llm_json_members *ms, struct llm_json_fault *f)
{
	return llm_json_scan(s, strlen(s), ms, f);
}

/* Strings are scanned sixteen bytes at a time: whatever lands at any offset of a block (a
 * quote, an escape, a control character, UTF-8 valid or not) is seen, at its exact byte. */
static void json_strings_are_checked_at_every_offset(void **state)
{
	(void)state;
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	for (size_t pos = 0; pos < 48; pos++) {
		char line[128];
		size_t len;
		const char *inserts[] = {"\\\"", "\xc3\xa9", "\x7f", "\x01", "\xff", "\\q"};
		for (size_t k = 0; k < sizeof inserts / sizeof *inserts; k++) {
			len = (size_t)snprintf(line, sizeof line, "{\"a\":\"%.*s%s%.*s\"}", (int)pos,
					       "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyz",
					       inserts[k], 20,
					       "ABCDEFGHIJKLMNOPQRSTUVWXYZ");
			enum llm_err e = llm_json_scan(line, len, &ms, &f);
			if (k < 3) { /* an escaped quote, a two-byte letter, DEL: all fine */
				assert_int_equal(e, LLM_OK);
				assert_int_equal(ms.m[0].val_len, len - 6);
			} else {
				assert_int_equal(e, k == 4 ? LLM_ERR_UTF8 : LLM_ERR_JSON);
				assert_int_equal(f.offset, 6 + pos);
			}
		}
	}
	llm_json_members_free(&ms);
}

static void json_scanner_accepts_valid_objects(void **state)
{
	const char *good[] = {
		"{}",
		" { } ",
		"{\"a\":1}",
		"{\"a\":-0.5e+10,\"b\":[1,[2,[3]],{}],\"c\":{\"d\":null},\"e\":true,\"f\":false}",
		"{\"s\":\"\\\"\\\\\\/\\b\\f\\n\\r\\t\\u00e9\\ud83d\\ude00\"}",
		"{\"u\":\"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80\"}",
		"{\"a\" : [ 1 , 2 ] , \"b\" : { } }",
	};
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
		if (scan(good[i], &ms, &f) != LLM_OK)
			fail_msg("rejected %s: %s", good[i], f.why);
	}
	llm_json_members_free(&ms);
}

static void json_scanner_rejects_invalid_text(void **state)
{
	static const struct {
		const char *text;
		enum llm_err code;
		const char *why;
	} bad[] = {
		{"", LLM_ERR_JSON, "empty line"},
		{"[1]", LLM_ERR_JSON, "a record must be a JSON object"},
		{"{\"a\":1,}", LLM_ERR_JSON, "expected a string key"},
		{"{\"a\":01}", LLM_ERR_JSON, "expected ',' or '}'"},
		{"{\"a\":1.}", LLM_ERR_JSON, "invalid number"},
		{"{\"a\":tru}", LLM_ERR_JSON, "invalid literal"},
		{"{\"a\":\"x}", LLM_ERR_JSON, "unterminated string"},
		{"{\"a\":\"\\x\"}", LLM_ERR_JSON, "invalid escape in string"},
		{"{\"a\":\"\\ud800\"}", LLM_ERR_JSON, "lone high surrogate escape"},
		{"{\"a\":\"\\udc00\"}", LLM_ERR_JSON, "lone low surrogate escape"},
		{"{\"a\":\"\x01\"}", LLM_ERR_JSON, "control character in string"},
		{"{\"a\":\"\xc0\xaf\"}", LLM_ERR_UTF8, "invalid UTF-8"},       /* overlong */
		{"{\"a\":\"\xed\xa0\x80\"}", LLM_ERR_UTF8, "invalid UTF-8"},   /* surrogate */
		{"{\"a\":\"\xf4\x90\x80\x80\"}", LLM_ERR_UTF8, "invalid UTF-8"}, /* > U+10FFFF */
		{"{\"a\":\"\xe2\x82\"}", LLM_ERR_UTF8, "invalid UTF-8"},       /* cut short */
		{"{\"a\":1} {}", LLM_ERR_JSON, "trailing characters after the object"},
		{"{\"a\" 1}", LLM_ERR_JSON, "expected ':'"},
		{"{\"a\":[1 2]}", LLM_ERR_JSON, "expected ',' or ']'"},
		{"{\"a\":", LLM_ERR_JSON, "expected a value"},
	};
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		enum llm_err e = scan(bad[i].text, &ms, &f);
		if (e != bad[i].code || strcmp(f.why, bad[i].why) != 0)
			fail_msg("%s: got %d '%s', want %d '%s'", bad[i].text, e,
				 e ? f.why : "", bad[i].code, bad[i].why);
	}
	llm_json_members_free(&ms);
}

static void json_scanner_refuses_deep_nesting_without_recursion(void **state)
{
	size_t n = 100000;
	char *s = malloc(n + 8);
	memcpy(s, "{\"a\":", 5);
	memset(s + 5, '[', n);
	s[n + 5] = '\0';
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	assert_int_equal(scan(s, &ms, &f), LLM_ERR_JSON);
	assert_string_equal(f.why, "nesting too deep");
	llm_json_members_free(&ms);
	free(s);
}

static void json_scanner_records_member_spans_in_order(void **state)
{
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	assert_int_equal(scan("{\"id\": \"x\" , \"n\":12, \"r\":1.5,\"o\":{\"k\":[1]}}", &ms, &f),
			 LLM_OK);
	assert_int_equal(ms.n, 4);
	assert_memory_equal(ms.m[0].key, "id", 2);
	assert_int_equal(ms.m[0].type, LLM_JSON_STRING);
	assert_int_equal(ms.m[0].val_len, 3);
	assert_true(ms.m[1].is_integer);
	assert_false(ms.m[2].is_integer);
	assert_int_equal(ms.m[3].type, LLM_JSON_OBJECT);
	assert_memory_equal(ms.m[3].val, "{\"k\":[1]}", ms.m[3].val_len);
	assert_ptr_equal(llm_json_get(&ms, "o"), &ms.m[3]);
	assert_null(llm_json_get(&ms, "missing"));
	llm_json_members_free(&ms);
}

static void json_get_matches_escaped_keys(void **state)
{
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	assert_int_equal(scan("{\"t\\u0065xt\":1}", &ms, &f), LLM_OK);
	assert_true(ms.m[0].key_escaped);
	assert_non_null(llm_json_get(&ms, "text"));
	llm_json_members_free(&ms);
}

static void json_string_decode_handles_escapes_and_surrogates(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	const char *v = "\"a\\n\\u00e9\\ud83d\\ude00\\\"\"";
	assert_int_equal(llm_json_string_decode(v, strlen(v), &b), LLM_OK);
	assert_string_equal(b.data, "a\n\xc3\xa9\xf0\x9f\x98\x80\"");
	llm_buf_free(&b);
}

static void utf8_prefix_stops_at_the_first_bad_byte(void **state)
{
	assert_int_equal(llm_utf8_valid_prefix("ab\xc3\xa9", 4), 4);
	assert_int_equal(llm_utf8_valid_prefix("ab\xffz", 4), 2);
	assert_int_equal(llm_utf8_valid_prefix("\xe2\x82", 2), 0);
}

static void buf_refuses_to_grow_past_its_maximum(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 10);
	assert_int_equal(llm_buf_append(&b, "0123456789", 10), LLM_OK);
	assert_int_equal(llm_buf_append(&b, "x", 1), LLM_ERR_TOO_BIG);
	assert_int_equal(b.len, 10);
	assert_string_equal(b.data, "0123456789");
	llm_buf_free(&b);
}

static void buf_printf_and_json_string(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_buf_printf(&b, "%d-%s", 42, "x"), LLM_OK);
	for (int i = 0; i < 100; i++)
		llm_buf_printf(&b, "%0100d", i);
	assert_int_equal(b.len, 4 + 100 * 100);
	llm_buf_clear(&b);
	llm_buf_json_string(&b, "a\"\\\n\x01\xc3\xa9", 7);
	assert_string_equal(b.data, "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"");
	llm_buf_clear(&b);
	llm_buf_base64(&b, "hello", 5);
	assert_string_equal(b.data, "aGVsbG8=");
	llm_buf_free(&b);
}

static const struct llm_opt test_opts[] = {
	{"count", 'n', LLM_OPT_INT, "N", "a count", "10", .min = 0, .max = 100},
	{"size", 0, LLM_OPT_SIZE, "SIZE", "a size", "1K"},
	{"mode", 0, LLM_OPT_CHOICE, "M", "a mode", "a", "a|b|c"},
	{"tag", 't', LLM_OPT_STRING, "T", "a tag", .repeat = true},
	{"quiet", 'q', LLM_OPT_FLAG, NULL, "quiet"},
	{"verbose", 'v', LLM_OPT_FLAG, NULL, "verbose"},
	{0},
};
static const struct llm_opt *const test_tables[] = {test_opts, NULL};

static enum llm_err parse(int argc, char **argv, struct llm_args *a, struct llm_diag *d)
{
	return llm_opt_parse(test_tables, "test", argc, argv, a, d);
}

static void options_parse_long_short_and_operands(void **state)
{
	char *argv[] = {"-n5", "--size=64M", "file1", "--mode", "b", "-t", "x", "--tag=y",
			"-qv", "--", "--not-an-option"};
	struct llm_args a;
	struct llm_diag d;
	unsetenv("LLMOPS_TEST_COUNT");
	assert_int_equal(parse(11, argv, &a, &d), LLM_OK);
	assert_int_equal(llm_args_int(&a, "count"), 5);
	assert_int_equal(llm_args_size(&a, "size"), 64u << 20);
	assert_string_equal(llm_args_str(&a, "mode"), "b");
	size_t n;
	char *const *tags = llm_args_strs(&a, "tag", &n);
	assert_int_equal(n, 2);
	assert_string_equal(tags[1], "y");
	assert_true(llm_args_flag(&a, "quiet"));
	assert_true(llm_args_flag(&a, "verbose"));
	assert_int_equal(a.noperands, 2);
	assert_string_equal(a.operands[1], "--not-an-option");
	llm_args_free(&a);
}

static void options_defaults_and_environment(void **state)
{
	struct llm_args a;
	struct llm_diag d;
	char *argv[] = {"-n", "7"};
	setenv("LLMOPS_TEST_COUNT", "3", 1);
	setenv("LLMOPS_TEST_MODE", "c", 1);
	assert_int_equal(parse(0, argv, &a, &d), LLM_OK);
	assert_int_equal(llm_args_int(&a, "count"), 3);
	assert_string_equal(llm_args_str(&a, "mode"), "c");
	assert_int_equal(llm_args_size(&a, "size"), 1024);
	assert_false(llm_args_given(&a, "size"));
	llm_args_free(&a);
	assert_int_equal(parse(2, argv, &a, &d), LLM_OK);
	assert_int_equal(llm_args_int(&a, "count"), 7); /* the command line wins */
	llm_args_free(&a);
	setenv("LLMOPS_TEST_COUNT", "many", 1);
	assert_int_equal(parse(0, argv, &a, &d), LLM_ERR_USAGE);
	assert_string_equal(d.msg, "LLMOPS_TEST_COUNT: not an integer: 'many'");
	llm_args_free(&a);
	unsetenv("LLMOPS_TEST_COUNT");
	unsetenv("LLMOPS_TEST_MODE");
}

static void options_reject_bad_values(void **state)
{
	struct {
		int argc;
		char *argv[2];
		const char *msg;
	} cases[] = {
		{1, {"--count=101"}, "--count: 101 is out of range (0 to 100)"},
		{1, {"--size=12Q"}, "--size: not a size: '12Q' (try 64M or 1G)"},
		{1, {"--mode=d"}, "--mode: 'd' is not one of a|b|c"},
		{1, {"--nope"}, "unknown option '--nope'"},
		{1, {"-x"}, "unknown option '-x'"},
		{1, {"--quiet=1"}, "option '--quiet' takes no argument"},
		{1, {"--count"}, "option '--count' needs an argument (N)"},
	};
	for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
		struct llm_args a;
		struct llm_diag d;
		assert_int_equal(parse(cases[i].argc, cases[i].argv, &a, &d), LLM_ERR_USAGE);
		assert_string_equal(d.msg, cases[i].msg);
		llm_args_free(&a);
	}
}

static void option_lists_split_at_commas_and_fall_back_to_the_default(void **state)
{
	static const struct llm_opt opts[] = {
		{"field", 'f', LLM_OPT_STRING, "F", "fields", "text,prompt", .repeat = true},
		{0},
	};
	static const struct llm_opt *const tables[] = {opts, NULL};
	struct llm_args a;
	struct llm_diag d;
	char **v;
	size_t n;
	char *none[] = {NULL};
	assert_int_equal(llm_opt_parse(tables, "test", 0, none, &a, &d), LLM_OK);
	assert_int_equal(llm_args_list(&a, "field", &v, &n), LLM_OK);
	assert_int_equal(n, 2);
	assert_string_equal(v[1], "prompt");
	assert_null(v[2]);
	llm_strv_free(v);
	llm_args_free(&a);
	char *argv[] = {"-f", "a,,b", "--field=c"};
	assert_int_equal(llm_opt_parse(tables, "test", 3, argv, &a, &d), LLM_OK);
	assert_int_equal(llm_args_list(&a, "field", &v, &n), LLM_OK);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "a");
	assert_string_equal(v[1], "b");
	assert_string_equal(v[2], "c");
	llm_strv_free(v);
	llm_args_free(&a);
}

static void option_help_shows_every_option(void **state)
{
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_opt_help(test_opts, &b), LLM_OK);
	assert_non_null(strstr(b.data, "  -n, --count N"));
	assert_non_null(strstr(b.data, "      --size SIZE"));
	assert_non_null(strstr(b.data, "(a|b|c) [default: a]"));
	assert_non_null(strstr(b.data, "(repeatable)"));
	llm_buf_free(&b);
	char env[64];
	llm_opt_env_name("prep", "max-record-bytes", env, sizeof env);
	assert_string_equal(env, "LLMOPS_PREP_MAX_RECORD_BYTES");
}

static void sizes_parse_with_binary_suffixes(void **state)
{
	uint64_t v;
	assert_true(llm_parse_size("0", &v) && v == 0);
	assert_true(llm_parse_size("2k", &v) && v == 2048);
	assert_true(llm_parse_size("3MiB", &v) && v == 3u << 20);
	assert_true(llm_parse_size("1G", &v) && v == 1u << 30);
	assert_false(llm_parse_size("-1", &v));
	assert_false(llm_parse_size("1X", &v));
	assert_false(llm_parse_size("99999999999T", &v));
}

static struct llm_record record_of(const char *text)
{
	struct llm_record r = {.file = "t.jsonl", .line = 1, .text = text, .len = strlen(text)};
	struct llm_json_fault f;
	r.status = llm_json_scan(text, r.len, &r.fields, &f);
	return r;
}

static void render_keeps_unknown_fields_and_their_bytes(void **state)
{
	struct llm_record r = record_of("{\"b\": 1.50, \"a\" :\"x\",  \"c\":[1 ,2]}");
	struct llm_buf b;
	llm_buf_init(&b, 0);
	struct llm_edit set = {"a", "\"y\""};
	assert_int_equal(llm_record_render(&r, &set, 1, &b), LLM_OK);
	assert_string_equal(b.data, "{\"b\": 1.50, \"a\" :\"y\",  \"c\":[1 ,2]}\n");
	llm_buf_clear(&b);
	struct llm_edit add[] = {{"z", "true"}, {"b", "2"}};
	assert_int_equal(llm_record_render(&r, add, 2, &b), LLM_OK);
	assert_string_equal(b.data, "{\"b\": 2, \"a\" :\"x\",  \"c\":[1 ,2],\"z\":true}\n");
	llm_buf_clear(&b);
	struct llm_edit del[] = {{"a", NULL}, {"new", "{}"}};
	assert_int_equal(llm_record_render(&r, del, 2, &b), LLM_OK);
	assert_string_equal(b.data, "{\"b\":1.50,\"c\":[1 ,2],\"new\":{}}\n");
	llm_buf_free(&b);
	llm_record_free(&r);
}

static void render_adds_to_an_empty_object(void **state)
{
	struct llm_record r = record_of("{ }");
	struct llm_buf b;
	llm_buf_init(&b, 0);
	struct llm_edit add = {"k", "1"};
	assert_int_equal(llm_record_render(&r, &add, 1, &b), LLM_OK);
	assert_string_equal(b.data, "{ \"k\":1}\n");
	llm_buf_free(&b);
	llm_record_free(&r);
}

static void error_records_carry_source_and_raw_text(void **state)
{
	struct llm_record r = record_of("{\"a\":");
	struct llm_buf b;
	struct llm_diag why;
	llm_buf_init(&b, 0);
	llm_diag_set(&why, LLM_ERR_JSON, "t.jsonl", 1, "expected a value at byte 6");
	assert_int_equal(llm_record_render_error(&r, &why, &b), LLM_OK);
	assert_string_equal(b.data, "{\"error\":{\"code\":\"invalid_json\",\"message\":\"expected a "
				    "value at byte 6\"},\"source\":{\"file\":\"t.jsonl\",\"line\":1},"
				    "\"raw\":\"{\\\"a\\\":\"}\n");
	llm_buf_free(&b);
	llm_record_free(&r);
}

static void sha256_matches_the_published_vectors(void **state)
{
	unsigned char d[LLM_SHA256_LEN];
	char hex[LLM_SHA256_HEX_LEN + 1];
	llm_sha256("abc", 3, d);
	llm_hex(d, sizeof d, hex);
	assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
	struct llm_sha256 h;
	assert_int_equal(llm_sha256_init(&h), LLM_OK);
	llm_sha256_update(&h, "", 0);
	llm_sha256_final(&h, d);
	llm_hex(d, sizeof d, hex);
	assert_string_equal(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
	assert_int_not_equal(llm_hash64("a", 1, 0), llm_hash64("b", 1, 0));
	assert_int_equal(llm_hash64("abcdefghij", 10, 7), llm_hash64("abcdefghij", 10, 7));
}

static void atomic_files_appear_whole_or_not_at_all(void **state)
{
	char dir[] = "/tmp/llmops-unit.XXXXXX";
	assert_non_null(mkdtemp(dir));
	char path[256];
	snprintf(path, sizeof path, "%s/out.json", dir);
	struct llm_atomic a;
	struct llm_diag d;
	assert_int_equal(llm_atomic_open(&a, path, &d), LLM_OK);
	fputs("half", a.fp);
	assert_int_equal(access(path, F_OK), -1); /* not there until commit */
	llm_atomic_abort(&a);
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(llm_atomic_write_file(path, "whole\n", 6, &d), LLM_OK);
	struct stat st;
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_size, 6);
	unlink(path);
	assert_int_equal(rmdir(dir), 0); /* no temporary left behind */
	assert_int_equal(llm_atomic_write_file("/nonexistent-dir/x", "x", 1, &d), LLM_ERR_NOT_FOUND);
}

static void rand_is_deterministic_and_in_range(void **state)
{
	struct llm_rand a, b;
	llm_rand_seed(&a, 42);
	llm_rand_seed(&b, 42);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(llm_rand_next(&a), llm_rand_next(&b));
	unsigned counts[6] = {0};
	for (int i = 0; i < 60000; i++)
		counts[llm_rand_below(&a, 6)]++;
	for (int i = 0; i < 6; i++)
		assert_in_range(counts[i], 9500, 10500);
	double x = llm_rand_double(&a);
	assert_true(x >= 0 && x < 1);
}

static void err_codes_map_to_exit_statuses(void **state)
{
	assert_int_equal(llm_err_exit_status(LLM_OK), 0);
	assert_int_equal(llm_err_exit_status(LLM_ERR_JSON), 1);
	assert_int_equal(llm_err_exit_status(LLM_ERR_USAGE), 2);
	assert_int_equal(llm_err_exit_status(LLM_ERR_IO), 3);
	assert_string_equal(llm_err_name(LLM_ERR_UTF8), "invalid_utf8");
	/* The numbers are part of the report format: they never change. */
	assert_int_equal(LLM_ERR_JSON, 4);
	assert_int_equal(LLM_ERR_CHECK, 13);
}

static void token_files_round_trip_with_document_boundaries(void **state)
{
	char dir[] = "/tmp/llmops-tok.XXXXXX", path[256], idx[260];
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof path, "%s/t.bin", dir);
	snprintf(idx, sizeof idx, "%s.idx", path);
	struct llm_diag d;
	for (uint32_t vocab = 50257; vocab <= 200000; vocab += 149743) {
		struct llm_tokfile_writer *w;
		assert_int_equal(llm_tokfile_create(&w, path, vocab, &d), LLM_OK);
		uint32_t a[] = {1, 2, 50256}, b[] = {7};
		assert_int_equal(llm_tokfile_append(w, a, 3, &d), LLM_OK);
		assert_int_equal(llm_tokfile_append(w, b, 1, &d), LLM_OK);
		if (vocab == 50257) /* the first round: nothing before commit */
			assert_int_equal(access(path, F_OK), -1);
		assert_int_equal(llm_tokfile_commit(w, &d), LLM_OK);
		struct llm_tokfile tf;
		assert_int_equal(llm_tokfile_open(&tf, path, &d), LLM_OK);
		assert_int_equal(tf.width, vocab == 50257 ? 2 : 4);
		assert_int_equal(tf.ntokens, 4);
		assert_int_equal(tf.ndocs, 2);
		assert_int_equal(tf.offsets[1], 3);
		assert_int_equal(llm_tokfile_get(&tf, 2), 50256);
		assert_int_equal(llm_tokfile_get(&tf, 3), 7);
		llm_tokfile_close(&tf);
	}
	/* A truncated file is refused, not read past its end. */
	assert_int_equal(truncate(path, 1024 + 5), 0);
	struct llm_tokfile tf;
	assert_int_equal(llm_tokfile_open(&tf, path, &d), LLM_ERR_JSON);
	unlink(path);
	unlink(idx);
	assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(json_strings_are_checked_at_every_offset),
		cmocka_unit_test(json_scanner_accepts_valid_objects),
		cmocka_unit_test(json_scanner_rejects_invalid_text),
		cmocka_unit_test(json_scanner_refuses_deep_nesting_without_recursion),
		cmocka_unit_test(json_scanner_records_member_spans_in_order),
		cmocka_unit_test(json_get_matches_escaped_keys),
		cmocka_unit_test(json_string_decode_handles_escapes_and_surrogates),
		cmocka_unit_test(utf8_prefix_stops_at_the_first_bad_byte),
		cmocka_unit_test(buf_refuses_to_grow_past_its_maximum),
		cmocka_unit_test(buf_printf_and_json_string),
		cmocka_unit_test(options_parse_long_short_and_operands),
		cmocka_unit_test(options_defaults_and_environment),
		cmocka_unit_test(options_reject_bad_values),
		cmocka_unit_test(option_lists_split_at_commas_and_fall_back_to_the_default),
		cmocka_unit_test(option_help_shows_every_option),
		cmocka_unit_test(sizes_parse_with_binary_suffixes),
		cmocka_unit_test(render_keeps_unknown_fields_and_their_bytes),
		cmocka_unit_test(render_adds_to_an_empty_object),
		cmocka_unit_test(error_records_carry_source_and_raw_text),
		cmocka_unit_test(sha256_matches_the_published_vectors),
		cmocka_unit_test(atomic_files_appear_whole_or_not_at_all),
		cmocka_unit_test(rand_is_deterministic_and_in_range),
		cmocka_unit_test(err_codes_map_to_exit_statuses),
		cmocka_unit_test(token_files_round_trip_with_document_boundaries),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
