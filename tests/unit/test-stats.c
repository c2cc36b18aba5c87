/* Unit tests of lib/data/stats: what the report says for small inputs whose answers are known
 * exactly, and what the renderers make of it. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/json.h"
#include "data/stats.h"
#include "text/bpe.h"

/* --- helpers -------------------------------------------------------------------------------- */

static long line_no;

/* Scan line as a record and add it, as the reader would. */
static void add(struct llm_stats *s, const char *line)
{
	struct llm_record rec = {
	    .file = "test.jsonl",
	    .line = ++line_no,
	    .text = line,
	    .len = strlen(line),
	    .status = LLM_OK,
	};
	struct llm_json_fault fault;
	assert_int_equal(llm_json_scan(line, rec.len, &rec.fields, &fault), LLM_OK);
	assert_int_equal(llm_stats_add(s, &rec), LLM_OK);
	llm_json_members_free(&rec.fields);
}

static struct llm_stats *new_stats(const struct llm_stats_config *cfg)
{
	struct llm_stats *s = NULL;
	assert_int_equal(llm_stats_new(&s, cfg), LLM_OK);
	assert_non_null(s);
	return s;
}

/* The report of lines, with the default configuration. */
static json_t *report_of(const char *const *lines, size_t n)
{
	struct llm_stats *s = new_stats(NULL);
	for (size_t i = 0; i < n; i++)
		add(s, lines[i]);
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_non_null(r);
	return r;
}

#define REPORT(...)                                                                                \
	report_of((const char *const[]){__VA_ARGS__},                                              \
		  sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *))

/* A member reached by a path such as "fields/0/length/chars/p50" (numbers index arrays). */
static json_t *at(json_t *v, const char *path)
{
	char buf[256];
	snprintf(buf, sizeof buf, "%s", path);
	for (char *seg = buf, *next; seg && v; seg = next) {
		next = strchr(seg, '/');
		if (next)
			*next++ = '\0';
		if (json_is_array(v))
			v = json_array_get(v, strtoul(seg, NULL, 10));
		else
			v = json_object_get(v, seg);
	}
	return v;
}

static long long num(json_t *v, const char *path)
{
	json_t *x = at(v, path);
	if (!json_is_integer(x))
		fail_msg("%s is not an integer", path);
	return json_integer_value(x);
}

static double real(json_t *v, const char *path)
{
	json_t *x = at(v, path);
	if (!json_is_number(x))
		fail_msg("%s is not a number", path);
	return json_number_value(x);
}

static const char *str(json_t *v, const char *path)
{
	json_t *x = at(v, path);
	if (!json_is_string(x))
		fail_msg("%s is not a string", path);
	return json_string_value(x);
}

/* The entry of "fields" named name. */
static json_t *field(json_t *report, const char *name)
{
	json_t *fields = json_object_get(report, "fields"), *f;
	size_t i;
	json_array_foreach(fields, i, f) if (!strcmp(json_string_value(json_object_get(f, "name")),
						     name)) return f;
	fail_msg("no field %s", name);
	return NULL;
}

/* The count of script name in a by_letters or by_records list (0 when absent). */
static long long script_count(json_t *report, const char *list, const char *name)
{
	json_t *arr = at(report, list), *e;
	size_t i;
	json_array_foreach(
	    arr, i,
	    e) if (!strcmp(json_string_value(json_object_get(e, "script")),
			   name)) return json_integer_value(json_object_get(e,
									    strstr(list, "letters")
										? "letters"
										: "records"));
	return 0;
}

/* --- records and fields --------------------------------------------------------------------- */

static void test_counts_presence_and_types(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"id\":1,\"text\":\"a\",\"tags\":[1]}",
			   "{\"id\":2.5,\"text\":null,\"ok\":true}",
			   "{\"id\":\"3\",\"meta\":{\"k\":1},\"ok\":false}", "{\"text\":\"b\"}");
	assert_int_equal(num(r, "records"), 4);
	assert_int_equal(num(r, "bad"), 0);
	assert_int_equal(json_object_size(at(r, "bad_by_reason")), 0);
	/* first-seen order */
	assert_string_equal(str(r, "fields/0/name"), "id");
	assert_string_equal(str(r, "fields/1/name"), "text");
	assert_string_equal(str(r, "fields/2/name"), "tags");
	assert_string_equal(str(r, "fields/3/name"), "ok");
	assert_string_equal(str(r, "fields/4/name"), "meta");
	assert_null(at(r, "fields/5"));

	json_t *id = field(r, "id");
	assert_int_equal(num(id, "present"), 3);
	assert_true(real(id, "fraction") == 0.75);
	assert_int_equal(num(id, "types/number"), 2);
	assert_int_equal(num(id, "types/string"), 1);
	assert_int_equal(num(id, "types/null"), 0);
	json_t *text = field(r, "text");
	assert_int_equal(num(text, "present"), 3);
	assert_int_equal(num(text, "types/string"), 2);
	assert_int_equal(num(text, "types/null"), 1);
	assert_int_equal(num(field(r, "ok"), "types/boolean"), 2);
	assert_int_equal(num(field(r, "tags"), "types/array"), 1);
	assert_int_equal(num(field(r, "meta"), "types/object"), 1);
	assert_true(real(field(r, "meta"), "fraction") == 0.25);
	/* non-string fields have no lengths */
	assert_null(at(field(r, "ok"), "length"));
	assert_null(at(field(r, "ok"), "empty"));
	json_decref(r);
}

static void test_escaped_key_is_the_same_field(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"text\":\"a\"}", "{\"t\\u0065xt\":\"bb\"}");
	assert_null(at(r, "fields/1"));
	assert_int_equal(num(field(r, "text"), "present"), 2);
	assert_int_equal(num(field(r, "text"), "length/chars/max"), 2);
	json_decref(r);
}

static void test_repeated_key_counts_once_per_record(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"a\":\"x\",\"a\":\"yyy\"}", "{\"a\":1}");
	json_t *a = field(r, "a");
	assert_int_equal(num(a, "present"), 2);
	assert_int_equal(num(a, "types/string"), 1);
	assert_int_equal(num(a, "types/number"), 1);
	assert_int_equal(num(a, "length/chars/max"), 1); /* the first one */
	json_decref(r);
}

static void test_fields_past_max_fields_go_to_other(void **state)
{
	(void)state;
	struct llm_stats_config cfg = {.max_fields = 2};
	struct llm_stats *s = new_stats(&cfg);
	add(s, "{\"a\":1,\"b\":2,\"c\":3,\"d\":\"x\"}");
	add(s, "{\"a\":1,\"e\":null}");
	add(s, "{\"a\":1,\"text\":\"kept though past the limit\"}");
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_string_equal(str(r, "fields/0/name"), "a");
	assert_string_equal(str(r, "fields/1/name"), "b");
	assert_string_equal(str(r, "fields/2/name"), "text");
	json_t *other = at(r, "fields/3");
	assert_string_equal(str(other, "name"), "(other)");
	assert_true(json_is_true(at(other, "other")));
	assert_int_equal(num(other, "present"), 2);
	assert_int_equal(num(other, "types/number"), 1);
	assert_int_equal(num(other, "types/string"), 1);
	assert_int_equal(num(other, "types/null"), 1);
	assert_null(at(r, "fields/4"));
	assert_int_equal(num(field(r, "text"), "length/words/max"), 5);
	json_decref(r);
}

static void test_only_named_fields_are_measured(void **state)
{
	(void)state;
	char *want[] = {"title", "never"};
	struct llm_stats_config cfg = {.fields = want, .nfields = 2};
	struct llm_stats *s = new_stats(&cfg);
	add(s, "{\"text\":\"one two\",\"title\":\"abc\"}");
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_int_equal(num(field(r, "title"), "length/chars/max"), 3);
	assert_null(at(field(r, "text"), "length"));
	/* the text field still feeds duplicates and scripts */
	assert_int_equal(num(r, "duplicates/text/counted"), 1);
	assert_int_equal(num(r, "scripts/letters"), 6);
	/* a field asked for and never seen is reported as absent */
	assert_int_equal(num(field(r, "never"), "present"), 0);
	json_decref(r);
}

static void test_names_given_that_are_not_utf8_still_report(void **state)
{
	(void)state;
	char *want[] = {"ok\xff", "ok\xff"};
	struct llm_stats_config cfg = {.text_field = "t\xe9", .fields = want, .nfields = 2};
	struct llm_stats *s = new_stats(&cfg);
	add(s, "{\"text\":\"x\"}");
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_non_null(r);
	assert_string_equal(str(r, "text_field"), "t\xef\xbf\xbd");
	assert_string_equal(str(r, "fields/1/name"), "ok\xef\xbf\xbd");
	assert_null(at(r, "fields/2")); /* named twice, reported once */
	json_decref(r);
}

static void test_bad_records_by_reason(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	add(s, "{\"text\":\"ok\"}");
	llm_stats_add_bad(s, LLM_ERR_JSON, 2);
	llm_stats_add_bad(s, LLM_ERR_UTF8, 1);
	llm_stats_add_bad(s, LLM_ERR_TOO_BIG, 0);
	struct llm_record rec = {.text = "{", .len = 1, .status = LLM_ERR_JSON};
	assert_int_equal(llm_stats_add(s, &rec), LLM_OK);
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_int_equal(num(r, "records"), 1);
	assert_int_equal(num(r, "bad"), 4);
	assert_int_equal(num(r, "bad_by_reason/invalid_json"), 3);
	assert_int_equal(num(r, "bad_by_reason/invalid_utf8"), 1);
	assert_null(at(r, "bad_by_reason/too_big"));
	json_decref(r);
}

/* --- lengths -------------------------------------------------------------------------------- */

static void test_lengths_count_decoded_characters(void **state)
{
	(void)state;
	/* one string per record, so min and max give each one's lengths */
	static const struct {
		const char *line;
		long long chars, words, bytes;
	} cases[] = {
	    {"{\"s\":\"h\\u00e9llo\"}", 5, 1, 6},	 /* escaped e-acute: 2 bytes */
	    {"{\"s\":\"h\xc3\xa9llo\"}", 5, 1, 6},	 /* the same, literal */
	    {"{\"s\":\"a\\nb\"}", 3, 2, 3},		 /* newline is whitespace */
	    {"{\"s\":\"\\ud83d\\ude00\"}", 1, 1, 4},	 /* surrogate pair: one character */
	    {"{\"s\":\"\xf0\x9f\x98\x80 x\"}", 3, 2, 6}, /* the same, literal */
	    {"{\"s\":\"\\\"q\\\" \\\\\"}", 5, 2, 5},	 /* escaped quote and backslash */
	    {"{\"s\":\"\xe4\xb8\xad\xe6\x96\x87\"}", 2, 1, 6},
	    {"{\"s\":\"a\\u00a0b\\u3000c\\u2028d\"}", 7, 4, 12}, /* Unicode spaces split words */
	    {"{\"s\":\"a\\u200bb\"}", 3, 1, 5}, /* zero-width space is not a space */
	    {"{\"s\":\"a\\u0000b\"}", 3, 1, 3},
	    {"{\"s\":\"  lead  and   trail  \"}", 21, 3, 21},
	    {"{\"s\":\"abcdefghijklmnopqrstuvwxyz0123456789\"}", 36, 1, 36},
	    {"{\"s\":\"aaaa bbbb\\tcccc dddd eeee ffff\\u00e9gggg hhhh\"}", 39, 7, 40},
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		json_t *r = report_of(&cases[i].line, 1);
		json_t *len = at(field(r, "s"), "length");
		if (num(len, "chars/max") != cases[i].chars ||
		    num(len, "words/max") != cases[i].words ||
		    num(len, "bytes/max") != cases[i].bytes)
			fail_msg("%s: chars %lld words %lld bytes %lld, want %lld %lld %lld",
				 cases[i].line, num(len, "chars/max"), num(len, "words/max"),
				 num(len, "bytes/max"), cases[i].chars, cases[i].words,
				 cases[i].bytes);
		assert_int_equal(num(len, "chars/min"), cases[i].chars);
		json_decref(r);
	}
}

static void test_words_across_the_eight_byte_blocks(void **state)
{
	(void)state;
	/* Word boundaries at every offset around the 8-byte fast path, checked against a plain
	 * count. */
	char line[256], text[160];
	for (int gap = 1; gap < 20; gap++) {
		size_t n = 0;
		long long words = 0;
		bool space = true;
		for (int i = 0; i < 150; i++) {
			/* tabs (escaped, so decoded first) for odd gaps; raw text for even */
			char c = (i % gap == gap - 1) ? ' ' : (gap % 2 && i % 7 == 3 ? '\t' : 'x');
			if (i % 11 == 5)
				c = ' ';
			text[n++] = c;
			bool sp = c == ' ' || c == '\t';
			words += space && !sp;
			space = sp;
		}
		text[n] = '\0';
		/* a tab in JSON must be escaped */
		size_t o = (size_t)snprintf(line, sizeof line, "{\"s\":\"");
		for (size_t i = 0; i < n && o + 4 < sizeof line; i++) {
			if (text[i] == '\t') {
				line[o++] = '\\';
				line[o++] = 't';
			} else {
				line[o++] = text[i];
			}
		}
		snprintf(line + o, sizeof line - o, "\"}");
		const char *lines[] = {line};
		json_t *r = report_of(lines, 1);
		assert_int_equal(num(field(r, "s"), "length/words/max"), words);
		assert_int_equal(num(field(r, "s"), "length/chars/max"), 150);
		json_decref(r);
	}
}

/* Append code point cp to a JSON string literal being built, raw or as a \u escape. */
static void put_cp(struct llm_buf *b, uint32_t cp, bool escape)
{
	char o[4];
	size_t n;
	if (escape || cp < 0x20) {
		if (cp < 0x10000) {
			llm_buf_printf(b, "\\u%04x", cp);
		} else {
			cp -= 0x10000;
			llm_buf_printf(b, "\\u%04x\\u%04x", 0xD800 + (cp >> 10),
				       0xDC00 + (cp & 0x3FF));
		}
		return;
	}
	if (cp < 0x80) {
		o[0] = (char)cp;
		n = 1;
	} else if (cp < 0x800) {
		o[0] = (char)(0xC0 | cp >> 6);
		o[1] = (char)(0x80 | (cp & 0x3F));
		n = 2;
	} else if (cp < 0x10000) {
		o[0] = (char)(0xE0 | cp >> 12);
		o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[2] = (char)(0x80 | (cp & 0x3F));
		n = 3;
	} else {
		o[0] = (char)(0xF0 | cp >> 18);
		o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
		o[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
		o[3] = (char)(0x80 | (cp & 0x3F));
		n = 4;
	}
	llm_buf_append(b, o, n);
}

/* Characters to build random strings from, with what a plain count says of each. */
struct sample_char {
	uint32_t cp;
	bool space;
	int script; /* 0 none, 1 Latin, 2 Cyrillic, 3 Han */
};

/* clang-format off */
static const struct sample_char pool[] = {
	{'a', 0, 1}, {'Z', 0, 1}, {'q', 0, 1}, {'0', 0, 0}, {'!', 0, 0}, {'@', 0, 0},
	{'[', 0, 0}, {'`', 0, 0}, {'{', 0, 0}, {' ', 1, 0}, {'\t', 1, 0}, {'\n', 1, 0},
	{'\r', 1, 0}, {0x0B, 1, 0}, {0x0C, 1, 0}, {0x01, 0, 0}, {0x1F, 0, 0}, {0x7F, 0, 0},
	{0x85, 1, 0}, {0xA0, 1, 0}, {0xE9, 0, 1}, {0x416, 0, 2}, {0x4E2D, 0, 3},
	{0x3000, 1, 0}, {0x2028, 1, 0}, {0x200B, 0, 0}, {0x1F600, 0, 0}, {0x20000, 0, 3},
};
/* clang-format on */

static void test_random_strings_match_a_plain_count(void **state)
{
	(void)state;
	/* The fast paths (16 and 8 ASCII bytes at a time, masked runs, decoded runs) against a
	 * character-by-character count, on strings that mix every kind of character at every
	 * offset, raw and escaped. */
	const size_t npool = sizeof pool / sizeof pool[0];
	uint64_t rng = 12345;
	struct llm_buf line;
	llm_buf_init(&line, 0);
	for (int round = 0; round < 400; round++) {
		size_t len = (size_t)(round % 97);
		long long chars = 0, words = 0, bytes = 0, latin = 0, cyrillic = 0, han = 0;
		bool space = true, escape_all = round % 5 == 0;
		llm_buf_clear(&line);
		llm_buf_puts(&line, "{\"text\":\"");
		for (size_t k = 0; k < len; k++) {
			rng = rng * 6364136223846793005ULL + 1442695040888963407ULL;
			/* mostly ASCII letters, in long runs every other round; sometimes anything
			 */
			size_t pick = (rng >> 33) % (round % 2 ? 32 : 4) ? (rng >> 40) % 3
									 : (rng >> 40) % npool;
			if ((rng >> 20) % 7 == 0)
				pick = 9; /* a space */
			const struct sample_char *c = &pool[pick];
			put_cp(&line, c->cp, escape_all || (rng >> 50) % 13 == 0);
			chars++;
			bytes += c->cp < 0x80 ? 1 : c->cp < 0x800 ? 2 : c->cp < 0x10000 ? 3 : 4;
			words += space && !c->space;
			space = c->space;
			latin += c->script == 1;
			cyrillic += c->script == 2;
			han += c->script == 3;
		}
		llm_buf_puts(&line, "\"}");
		const char *lines[] = {line.data};
		json_t *r = report_of(lines, 1);
		json_t *len_ = at(field(r, "text"), "length");
		if (num(len_, "chars/max") != chars || num(len_, "words/max") != words ||
		    num(len_, "bytes/max") != bytes ||
		    script_count(r, "scripts/by_letters", "Latin") != latin ||
		    script_count(r, "scripts/by_letters", "Cyrillic") != cyrillic ||
		    script_count(r, "scripts/by_letters", "Han") != han ||
		    num(r, "scripts/letters") != latin + cyrillic + han)
			fail_msg("%s: chars %lld/%lld words %lld/%lld bytes %lld/%lld "
				 "letters %lld/%lld",
				 line.data, num(len_, "chars/max"), chars, num(len_, "words/max"),
				 words, num(len_, "bytes/max"), bytes, num(r, "scripts/letters"),
				 latin + cyrillic + han);
		assert_int_equal(num(field(r, "text"), "empty"), words == 0);
		json_decref(r);
	}
	llm_buf_free(&line);
}

static void test_long_ascii_runs_count_every_word(void **state)
{
	(void)state;
	/* A word every 16 bytes for 5,000 bytes: the same byte position of every block, past
	 * the point where a per-position byte counter would wrap. */
	struct llm_buf line;
	llm_buf_init(&line, 0);
	llm_buf_puts(&line, "{\"text\":\"");
	for (int k = 0; k < 312; k++)
		llm_buf_puts(&line, "x\\t              ");
	llm_buf_puts(&line, "\"}");
	const char *lines[] = {line.data};
	json_t *r = report_of(lines, 1);
	llm_buf_free(&line);
	assert_int_equal(num(field(r, "text"), "length/words/max"), 312);
	assert_int_equal(num(field(r, "text"), "length/chars/max"), 312 * 16);
	assert_int_equal(num(r, "scripts/letters"), 312);
	json_decref(r);
}

static void test_empty_means_empty_or_whitespace(void **state)
{
	(void)state;
	json_t *r =
	    REPORT("{\"s\":\"\"}", "{\"s\":\"   \"}", "{\"s\":\"\\t\\n\\r\"}",
		   "{\"s\":\"\\u3000\\u00a0\"}", "{\"s\":\"x\"}", "{\"s\":\" .\"}", "{\"s\":1}");
	json_t *s = field(r, "s");
	assert_int_equal(num(s, "empty"), 4);
	assert_int_equal(num(s, "length/chars/count"), 6);
	assert_int_equal(num(s, "length/chars/min"), 0);
	assert_int_equal(num(s, "length/words/min"), 0);
	json_decref(r);
}

static void test_percentiles_exact_for_small_values(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	char line[256], text[128];
	/* lengths 1..100, in a scrambled order */
	for (int i = 0; i < 100; i++) {
		int len = (i * 37) % 100 + 1;
		memset(text, 'a', (size_t)len);
		text[len] = '\0';
		snprintf(line, sizeof line, "{\"s\":\"%s\"}", text);
		add(s, line);
	}
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	json_t *c = at(field(r, "s"), "length/chars");
	assert_int_equal(num(c, "count"), 100);
	assert_int_equal(num(c, "min"), 1);
	assert_int_equal(num(c, "max"), 100);
	assert_true(real(c, "mean") == 50.5);
	assert_int_equal(num(c, "p50"), 50);
	assert_int_equal(num(c, "p90"), 90);
	assert_int_equal(num(c, "p99"), 99);
	json_decref(r);
}

static void test_percentile_is_nearest_rank(void **state)
{
	(void)state;
	/* 3, 3, 3, 10: p50 is the second value, p90 and p99 the fourth */
	json_t *r = REPORT("{\"s\":\"abc\"}", "{\"s\":\"abc\"}", "{\"s\":\"abc\"}",
			   "{\"s\":\"abcdefghij\"}");
	json_t *c = at(field(r, "s"), "length/chars");
	assert_int_equal(num(c, "p50"), 3);
	assert_int_equal(num(c, "p90"), 10);
	assert_int_equal(num(c, "p99"), 10);
	assert_true(real(c, "mean") == 4.75);
	json_decref(r);
}

static void test_percentiles_of_long_values_within_bounds(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	size_t max = 40000;
	char *line = malloc(max + 16), *text = malloc(max + 1);
	assert_non_null(line);
	assert_non_null(text);
	memset(text, 'w', max);
	/* lengths 1000, 2000, ..., 40000 */
	for (size_t len = 1000; len <= max; len += 1000) {
		text[len] = '\0';
		snprintf(line, max + 16, "{\"s\":\"%s\"}", text);
		text[len] = 'w';
		add(s, line);
	}
	free(line);
	free(text);
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	json_t *c = at(field(r, "s"), "length/chars");
	assert_int_equal(num(c, "min"), 1000);
	assert_int_equal(num(c, "max"), 40000);
	long long p50 = num(c, "p50"), p90 = num(c, "p90");
	assert_true(p50 <= 20000 && p50 >= 20000 - 20000 / 256);
	assert_true(p90 <= 36000 && p90 >= 36000 - 36000 / 256);
	assert_true(num(c, "p99") <= 40000 && num(c, "p99") >= 40000 - 40000 / 256);
	json_decref(r);
}

static void test_histogram_bins_cover_every_value(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	char line[64];
	/* lengths 0..40, each about 73 times */
	for (int i = 0; i < 3000; i++) {
		snprintf(line, sizeof line, "{\"s\":\"%.*s\"}", i % 41,
			 "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopq");
		add(s, line);
	}
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	json_t *h = at(field(r, "s"), "length/chars/histogram"), *b;
	size_t i;
	long long total = 0, prev_hi = 0;
	assert_true(json_array_size(h) >= 10 && json_array_size(h) <= 40);
	json_array_foreach(h, i, b)
	{
		long long lo = num(b, "lo"), hi = num(b, "hi");
		assert_true(lo < hi);
		if (i)
			assert_int_equal(lo, prev_hi);
		else
			assert_int_equal(lo, 0);
		prev_hi = hi;
		total += num(b, "count");
	}
	assert_int_equal(prev_hi, 41);
	assert_int_equal(total, 3000);
	/* zero has a bin of its own */
	assert_int_equal(num(h, "0/hi"), 1);
	assert_int_equal(num(h, "0/count"), 3000 / 41 + 1);
	json_decref(r);
}

/* --- duplicates ----------------------------------------------------------------------------- */

static void test_duplicates_of_records_and_text(void **state)
{
	(void)state;
	json_t *r =
	    REPORT("{\"id\":1,\"text\":\"caf\\u00e9\"}", "{\"id\":2,\"text\":\"caf\xc3\xa9\"}",
		   "{\"id\":2,\"text\":\"caf\xc3\xa9\"}", "{\"id\":3,\"text\":\"other\"}",
		   "{\"id\":4}", "{\"id\":4}", "{\"id\":5,\"text\":7}");
	assert_int_equal(num(r, "duplicates/records/counted"), 7);
	assert_int_equal(num(r, "duplicates/records/distinct"), 5);
	assert_int_equal(num(r, "duplicates/records/duplicates"), 2);
	assert_false(json_is_true(at(r, "duplicates/records/estimated")));
	/* an escape and the literal are the same text; records without a string text are out */
	assert_int_equal(num(r, "duplicates/text/counted"), 4);
	assert_int_equal(num(r, "duplicates/text/distinct"), 2);
	assert_int_equal(num(r, "duplicates/text/duplicates"), 2);
	assert_string_equal(str(r, "text_field"), "text");
	json_decref(r);
}

static void test_text_field_is_configurable(void **state)
{
	(void)state;
	struct llm_stats_config cfg = {.text_field = "body"};
	struct llm_stats *s = new_stats(&cfg);
	add(s, "{\"text\":\"same\",\"body\":\"one\"}");
	add(s, "{\"text\":\"same\",\"body\":\"two\"}");
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_string_equal(str(r, "text_field"), "body");
	assert_int_equal(num(r, "duplicates/text/duplicates"), 0);
	assert_int_equal(num(r, "scripts/letters"), 6);
	json_decref(r);
}

static void test_duplicates_estimated_past_the_exact_limit(void **state)
{
	(void)state;
	struct llm_stats_config cfg = {.max_exact_distinct = 1000};
	struct llm_stats *s = new_stats(&cfg);
	char line[64];
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 20000; i++) {
			snprintf(line, sizeof line, "{\"text\":\"t%d\"}", i);
			add(s, line);
		}
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_true(json_is_true(at(r, "duplicates/text/estimated")));
	assert_true(json_is_true(at(r, "duplicates/records/estimated")));
	assert_int_equal(num(r, "duplicates/text/counted"), 40000);
	long long d = num(r, "duplicates/text/distinct");
	assert_true(d > 19400 && d < 20600); /* HyperLogLog, p = 14: about 0.8 % */
	assert_int_equal(num(r, "duplicates/text/duplicates"), 40000 - d);
	json_decref(r);
}

static void test_duplicates_exact_below_the_limit(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	char line[64];
	for (int i = 0; i < 50000; i++) {
		snprintf(line, sizeof line, "{\"text\":\"t%d\"}", i % 30011);
		add(s, line);
	}
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_false(json_is_true(at(r, "duplicates/text/estimated")));
	assert_int_equal(num(r, "duplicates/text/distinct"), 30011);
	assert_int_equal(num(r, "duplicates/text/duplicates"), 50000 - 30011);
	json_decref(r);
}

/* --- scripts -------------------------------------------------------------------------------- */

static void test_script_mix_by_letters_and_records(void **state)
{
	(void)state;
	json_t *r = REPORT(
	    /* Latin 10 */
	    "{\"text\":\"Hello, world! 123\"}",
	    /* Cyrillic 6, Latin 2 */
	    "{\"text\":\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 ok\"}",
	    /* Han 2, and an ideographic full stop that is no letter */
	    "{\"text\":\"\xe4\xb8\xad\xe6\x96\x87\xe3\x80\x82\"}",
	    /* Greek 2 */
	    "{\"text\":\"\\u03b1\\u03b2\"}",
	    /* Arabic 4, and Arabic-Indic digits that are no letters */
	    "{\"text\":\"\xd8\xb9\xd8\xb1\xd8\xa8\xd9\x8a \xd9\xa1\xd9\xa2\"}",
	    /* Hangul 2, Hiragana 1, Katakana 1 */
	    "{\"text\":\"\xed\x95\x9c\xea\xb8\x80 \xe3\x81\x8b\xe3\x82\xab\"}",
	    /* no letters */
	    "{\"text\":\"123 !!! \xf0\x9f\x98\x80\"}",
	    /* Latin 3, Cyrillic 2 */
	    "{\"text\":\"\xc3\xa9t\xc3\xa9 \xd0\xb4\xd0\xb0\"}");
	assert_int_equal(script_count(r, "scripts/by_letters", "Latin"), 15);
	assert_int_equal(script_count(r, "scripts/by_letters", "Cyrillic"), 8);
	assert_int_equal(script_count(r, "scripts/by_letters", "Han"), 2);
	assert_int_equal(script_count(r, "scripts/by_letters", "Greek"), 2);
	assert_int_equal(script_count(r, "scripts/by_letters", "Arabic"), 4);
	assert_int_equal(script_count(r, "scripts/by_letters", "Hangul"), 2);
	assert_int_equal(script_count(r, "scripts/by_letters", "Hiragana"), 1);
	assert_int_equal(script_count(r, "scripts/by_letters", "Katakana"), 1);
	assert_int_equal(script_count(r, "scripts/by_letters", "Other"), 0);
	assert_int_equal(num(r, "scripts/letters"), 35);
	/* sorted by count, largest first, with fractions */
	assert_string_equal(str(r, "scripts/by_letters/0/script"), "Latin");
	assert_string_equal(str(r, "scripts/by_letters/1/script"), "Cyrillic");
	assert_true(real(r, "scripts/by_letters/0/fraction") == 0.428571);
	/* records by majority */
	assert_int_equal(script_count(r, "scripts/by_records", "Latin"), 2);
	assert_int_equal(script_count(r, "scripts/by_records", "Cyrillic"), 1);
	assert_int_equal(script_count(r, "scripts/by_records", "Han"), 1);
	assert_int_equal(script_count(r, "scripts/by_records", "Greek"), 1);
	assert_int_equal(script_count(r, "scripts/by_records", "Arabic"), 1);
	assert_int_equal(script_count(r, "scripts/by_records", "Hangul"), 1);
	assert_int_equal(script_count(r, "scripts/by_records", "none"), 1);
	assert_string_equal(str(r, "scripts/by_records/0/script"), "Latin");
	json_decref(r);
}

static void test_scripts_of_more_writing_systems(void **state)
{
	(void)state;
	static const struct {
		const char *text, *script;
		long long letters;
	} cases[] = {
	    {"\xd5\x80\xd5\xa1\xd5\xb5", "Armenian", 3},
	    {"\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "Hebrew", 4},
	    {"\xe0\xa4\xa8\xe0\xa4\xae\xe0\xa4\xb8\xe0\xa5\x8d\xe0\xa4\xa4\xe0\xa5\x87",
	     "Devanagari", 5}, /* the virama is not a letter */
	    {"\xe0\xa6\xac\xe0\xa6\xbe\xe0\xa6\x82", "Bengali", 3},
	    {"\xe0\xae\xa4\xe0\xae\xae\xe0\xae\xbf", "Tamil", 3},
	    {"\xe0\xb9\x84\xe0\xb8\x97\xe0\xb8\xa2", "Thai", 3},
	    {"\xe1\x83\xa5\xe1\x83\x90", "Georgian", 2},
	    {"\xe1\x88\xb0\xe1\x88\x8b", "Ethiopic", 2},
	    {"\xe0\xb2\x95\xe0\xb2\xa8", "Other", 2}, /* Kannada */
	    {"\xef\xbc\xa1\xef\xbd\x82", "Latin", 2}, /* fullwidth */
	    {"\xf0\xa0\x80\x80", "Han", 1},	      /* CJK extension B */
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char line[128];
		snprintf(line, sizeof line, "{\"text\":\"%s 42!\"}", cases[i].text);
		const char *lines[] = {line};
		json_t *r = report_of(lines, 1);
		if (num(r, "scripts/letters") != cases[i].letters ||
		    script_count(r, "scripts/by_letters", cases[i].script) != cases[i].letters)
			fail_msg("%s: %lld letters, %lld %s", cases[i].script,
				 num(r, "scripts/letters"),
				 script_count(r, "scripts/by_letters", cases[i].script),
				 cases[i].script);
		assert_int_equal(script_count(r, "scripts/by_records", cases[i].script), 1);
		json_decref(r);
	}
}

static void test_no_text_field_means_no_scripts(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"id\":1}");
	assert_int_equal(num(r, "scripts/letters"), 0);
	assert_int_equal(json_array_size(at(r, "scripts/by_letters")), 0);
	assert_int_equal(json_array_size(at(r, "scripts/by_records")), 0);
	assert_int_equal(num(r, "duplicates/text/counted"), 0);
	json_decref(r);
}

/* --- what other verbs wrote: flags, clusters, splits; and tokens ----------------------------- */

/* The report of lines under cfg. */
static json_t *report_with(const struct llm_stats_config *cfg, const char *const *lines, size_t n)
{
	struct llm_stats *s = new_stats(cfg);
	for (size_t i = 0; i < n; i++)
		add(s, lines[i]);
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_non_null(r);
	return r;
}

static void test_no_new_sections_without_their_fields(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"text\":\"a\",\"flag\":[1],\"cluster\":1,\"splits\":\"x\"}");
	assert_null(json_object_get(r, "tokens"));
	assert_null(json_object_get(r, "flags"));
	assert_null(json_object_get(r, "clusters"));
	assert_null(json_object_get(r, "splits"));
	json_decref(r);
}

static void test_flags_by_kind_and_name(void **state)
{
	(void)state;
	json_t *r = REPORT(
	    "{\"text\":\"a\",\"flags\":[{\"kind\":\"pii\",\"type\":\"email\",\"span\":[0,1]},"
	    "{\"kind\":\"pii\",\"type\":\"email\"},{\"kind\":\"pii\",\"type\":\"phone\"}]}",
	    "{\"flags\":[{\"kind\":\"quality\",\"rule\":\"c4.lorem_ipsum\",\"type\":\"x\"},"
	    "{\"kind\":\"pii\",\"type\":\"ip\\u005faddress\"}]}",
	    "{\"flags\":[]}", "{\"flags\":[ ]}", "{\"flags\":null}", "{\"text\":\"b\"}",
	    "{\"flags\":[\"injection\",{\"type\":\"orphan\"},{\"kind\":\"quality\"},7]}",
	    "{\"flags\":[{\"kind\":\"pii\",\"type\":\"email\"}],\"flags\":[\"second\"]}");
	assert_int_equal(num(r, "flags/records"), 7);
	assert_int_equal(num(r, "flags/flagged"), 4);
	assert_int_equal(num(r, "flags/flags"), 10);
	assert_int_equal(num(r, "flags/not_array"), 1);
	assert_string_equal(str(r, "flags/field"), "flags");
	/* kinds: pii 5 flags in 3 records, then by first seen: quality 2, injection 1, (none) 2 */
	assert_int_equal(json_array_size(at(r, "flags/by_kind")), 4);
	assert_string_equal(str(r, "flags/by_kind/0/kind"), "pii");
	assert_int_equal(num(r, "flags/by_kind/0/flags"), 5);
	assert_int_equal(num(r, "flags/by_kind/0/records"), 3);
	assert_string_equal(str(r, "flags/by_kind/1/kind"), "quality");
	assert_int_equal(num(r, "flags/by_kind/1/flags"), 2);
	assert_int_equal(num(r, "flags/by_kind/1/records"), 2);
	assert_string_equal(str(r, "flags/by_kind/2/kind"), "(none)");
	assert_int_equal(num(r, "flags/by_kind/2/flags"), 2);
	assert_int_equal(num(r, "flags/by_kind/2/records"), 1);
	assert_string_equal(str(r, "flags/by_kind/3/kind"), "injection");
	/* names: the rule before the type; escapes decoded */
	assert_int_equal(json_array_size(at(r, "flags/by_name")), 5);
	assert_string_equal(str(r, "flags/by_name/0/name"), "email");
	assert_int_equal(num(r, "flags/by_name/0/flags"), 3);
	assert_int_equal(num(r, "flags/by_name/0/records"), 2);
	assert_string_equal(str(r, "flags/by_name/1/name"), "phone");
	assert_string_equal(str(r, "flags/by_name/2/kind"), "quality");
	assert_string_equal(str(r, "flags/by_name/2/name"), "c4.lorem_ipsum");
	assert_string_equal(str(r, "flags/by_name/3/name"), "ip_address");
	assert_string_equal(str(r, "flags/by_name/4/kind"), "(none)");
	assert_string_equal(str(r, "flags/by_name/4/name"), "orphan");
	json_decref(r);
}

static void test_flag_names_past_the_limit_go_to_other(void **state)
{
	(void)state;
	struct llm_stats_config cfg = {.max_names = 2, .flags_field = "f"};
	json_t *r = report_with(
	    &cfg,
	    (const char *const[]){
		"{\"f\":[{\"kind\":\"a\",\"type\":\"1\"},{\"kind\":\"b\",\"type\":\"2\"}]}",
		"{\"f\":[{\"kind\":\"c\",\"type\":\"3\"},{\"kind\":\"d\",\"type\":\"4\"},"
		"{\"kind\":\"a\",\"type\":\"1\"}]}",
	    },
	    2);
	assert_string_equal(str(r, "flags/field"), "f");
	assert_int_equal(json_array_size(at(r, "flags/by_kind")), 3);
	assert_string_equal(str(r, "flags/by_kind/0/kind"), "a");
	assert_int_equal(num(r, "flags/by_kind/0/flags"), 2);
	assert_string_equal(str(r, "flags/by_kind/2/kind"), "(other)");
	assert_int_equal(num(r, "flags/by_kind/2/flags"), 2);
	assert_int_equal(num(r, "flags/by_kind/2/records"), 1);
	assert_string_equal(str(r, "flags/by_name/2/kind"), "(other)");
	assert_string_equal(str(r, "flags/by_name/2/name"), "(other)");
	assert_int_equal(num(r, "flags/by_name/2/flags"), 2);
	json_decref(r);
}

static void test_clusters_sizes_largest_and_duplicates(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"cluster_id\":\"a\"}", "{\"cluster_id\":\"b\",\"duplicate\":false}",
			   "{\"cluster_id\":\"c\"}", "{\"cluster_id\":\"b\",\"duplicate\":true}",
			   "{\"cluster_id\":\"\\u0062\",\"duplicate\":true}",
			   "{\"cluster_id\":\"a\",\"duplicate\":true}", "{\"cluster_id\":null}",
			   "{\"cluster_id\":3}", "{\"cluster_id\":\"3\"}", "{\"cluster_id\":3}",
			   "{\"other\":1}");
	assert_int_equal(num(r, "clusters/records"), 9); /* not the null */
	assert_int_equal(num(r, "clusters/clusters"), 5); /* a b c 3 "3" */
	assert_int_equal(num(r, "clusters/multi"), 3);
	assert_int_equal(num(r, "clusters/in_multi"), 7);
	assert_true(json_is_false(at(r, "clusters/estimated")));
	assert_int_equal(json_array_size(at(r, "clusters/largest")), 3);
	assert_string_equal(str(r, "clusters/largest/0/id"), "b");
	assert_int_equal(num(r, "clusters/largest/0/records"), 3);
	assert_string_equal(str(r, "clusters/largest/1/id"), "a"); /* reached two before 3 */
	assert_string_equal(str(r, "clusters/largest/2/id"), "3");
	assert_int_equal(num(r, "clusters/largest/2/records"), 2);
	assert_int_equal(num(r, "clusters/duplicates"), 3);
	assert_string_equal(str(r, "clusters/duplicate_field"), "duplicate");
	json_decref(r);
	/* the mark alone is enough for the section */
	r = REPORT("{\"duplicate\":true}", "{\"duplicate\":1}");
	assert_int_equal(num(r, "clusters/records"), 0);
	assert_int_equal(num(r, "clusters/duplicates"), 1);
	json_decref(r);
}

static void test_largest_keeps_the_ten_biggest(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	char line[64];
	/* cluster k has k records, k = 1..15 */
	for (int k = 1; k <= 15; k++)
		for (int j = 0; j < k; j++) {
			snprintf(line, sizeof line, "{\"cluster_id\":\"c%d\"}", k);
			add(s, line);
		}
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_int_equal(num(r, "clusters/records"), 120);
	assert_int_equal(num(r, "clusters/clusters"), 15);
	assert_int_equal(num(r, "clusters/multi"), 14);
	assert_int_equal(num(r, "clusters/in_multi"), 119);
	assert_int_equal(json_array_size(at(r, "clusters/largest")), 10);
	assert_string_equal(str(r, "clusters/largest/0/id"), "c15");
	assert_int_equal(num(r, "clusters/largest/9/records"), 6);
	json_decref(r);
}

static void test_clusters_estimated_past_the_exact_limit(void **state)
{
	(void)state;
	struct llm_stats_config cfg = {.max_exact_distinct = 1000};
	struct llm_stats *s = new_stats(&cfg);
	char line[64];
	/* 5000 clusters of two records, in two passes; the first is the largest */
	for (int round = 0; round < 2; round++)
		for (int i = 0; i < 5000; i++) {
			snprintf(line, sizeof line, "{\"cluster_id\":\"k%d\"}", i);
			add(s, line);
		}
	add(s, "{\"cluster_id\":\"k0\"}");
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_true(json_is_true(at(r, "clusters/estimated")));
	assert_int_equal(num(r, "clusters/records"), 10001);
	long long d = num(r, "clusters/clusters");
	assert_true(d > 4850 && d < 5150);
	assert_int_equal(num(r, "clusters/multi"), 1000); /* those tracked exactly */
	long long in = num(r, "clusters/in_multi");
	assert_true(in >= 2001 + 4000 - 150 && in <= 10001); /* a lower bound */
	assert_string_equal(str(r, "clusters/largest/0/id"), "k0");
	assert_int_equal(num(r, "clusters/largest/0/records"), 3);
	json_decref(r);
}

static void test_splits_with_the_median_text_length(void **state)
{
	(void)state;
	json_t *r = REPORT("{\"split\":\"train\",\"text\":\"abc\"}",
			   "{\"text\":\"abcde\",\"split\":\"train\"}",
			   "{\"text\":\"abcdefg\",\"split\":\"train\"}",
			   "{\"split\":\"val\",\"text\":\"\\u00e9\"}", "{\"split\":\"test\"}",
			   "{\"split\":\"val\",\"text\":7}", "{\"split\":null}",
			   "{\"split\":2,\"text\":\"xy\"}", "{\"text\":\"no split\"}");
	assert_string_equal(str(r, "splits/field"), "split");
	assert_int_equal(num(r, "splits/records"), 7);
	assert_int_equal(json_array_size(at(r, "splits/by_split")), 4);
	assert_string_equal(str(r, "splits/by_split/0/split"), "train");
	assert_int_equal(num(r, "splits/by_split/0/records"), 3);
	assert_int_equal(num(r, "splits/by_split/0/chars_p50"), 5);
	assert_true(real(r, "splits/by_split/0/fraction") == 0.428571);
	assert_string_equal(str(r, "splits/by_split/1/split"), "val");
	assert_int_equal(num(r, "splits/by_split/1/records"), 2);
	assert_int_equal(num(r, "splits/by_split/1/chars_p50"), 1); /* the one string text */
	assert_string_equal(str(r, "splits/by_split/2/split"), "test");
	assert_null(at(r, "splits/by_split/2/chars_p50")); /* no text at all */
	assert_string_equal(str(r, "splits/by_split/3/split"), "2"); /* its JSON text */
	assert_int_equal(num(r, "splits/by_split/3/chars_p50"), 2);
	json_decref(r);
}

/* The gpt2 encoding shipped in data/tokenizers (top_srcdir is set by the test harness). */
static struct llm_bpe *gpt2(void)
{
	const char *top = getenv("top_srcdir");
	char dir[4096];
	snprintf(dir, sizeof dir, "%s/data/tokenizers", top ? top : ".");
	struct llm_bpe *b = NULL;
	struct llm_diag d;
	if (llm_bpe_open_encoding(&b, dir, "gpt2", &d))
		fail_msg("cannot open gpt2 in %s: %s", dir, d.msg);
	return b;
}

static void test_tokens_per_encoding(void **state)
{
	(void)state;
	struct llm_bpe *b = gpt2();
	struct llm_bpe *toks[] = {b, b};
	const char *names[] = {"gpt2", "again"};
	struct llm_stats_config cfg = {.tokenizers = toks, .tokenizer_names = names,
				       .ntokenizers = 2};
	/* [31373, 995]; "<|endoftext|>" as text: 9 ids in all; none; not a string */
	json_t *r = report_with(&cfg,
				(const char *const[]){
				    "{\"text\":\"hello world\"}",
				    "{\"text\":\"a<|endoftext|>b\"}",
				    "{\"text\":\"\"}",
				    "{\"text\":5}",
				    "{\"id\":1}",
				},
				5);
	llm_bpe_free(b);
	assert_int_equal(json_array_size(at(r, "tokens")), 2);
	assert_string_equal(str(r, "tokens/0/name"), "gpt2");
	assert_string_equal(str(r, "tokens/1/name"), "again");
	assert_int_equal(num(r, "tokens/0/records"), 3);
	assert_int_equal(num(r, "tokens/0/tokens"), 11);
	assert_int_equal(num(r, "tokens/0/chars"), 26);
	assert_int_equal(num(r, "tokens/0/words"), 3);
	assert_true(real(r, "tokens/0/tokens_per_char") == 0.423077);
	assert_true(real(r, "tokens/0/tokens_per_word") == 3.666667);
	assert_int_equal(num(r, "tokens/0/per_record/min"), 0);
	assert_int_equal(num(r, "tokens/0/per_record/p50"), 2);
	assert_int_equal(num(r, "tokens/0/per_record/max"), 9);
	assert_int_equal(num(r, "tokens/1/tokens"), 11);
	json_decref(r);
	/* asked for, and no text: the encoding is listed with no distribution */
	b = gpt2();
	cfg.tokenizers = toks;
	toks[0] = b;
	cfg.ntokenizers = 1;
	r = report_with(&cfg, (const char *const[]){"{\"id\":1}"}, 1);
	llm_bpe_free(b);
	assert_int_equal(num(r, "tokens/0/records"), 0);
	assert_null(at(r, "tokens/0/per_record"));
	json_decref(r);
}

static void test_new_sections_render_as_text_and_html(void **state)
{
	(void)state;
	struct llm_bpe *b = gpt2();
	struct llm_bpe *toks[] = {b};
	const char *names[] = {"gpt2"};
	struct llm_stats_config cfg = {.tokenizers = toks, .tokenizer_names = names,
				       .ntokenizers = 1};
	json_t *r = report_with(
	    &cfg,
	    (const char *const[]){
		"{\"text\":\"hello world\",\"flags\":[{\"kind\":\"pii\",\"type\":\"<email>\"}],"
		"\"cluster_id\":\"x<y\",\"split\":\"train\"}",
		"{\"text\":\"hello\",\"cluster_id\":\"x<y\",\"duplicate\":true,\"split\":\"val\"}",
	    },
	    2);
	llm_bpe_free(b);
	struct llm_buf t;
	llm_buf_init(&t, 0);
	assert_int_equal(llm_stats_render_text(r, false, &t), LLM_OK);
	assert_non_null(strstr(t.data, "\ntokens      gpt2 3 tokens, per text p50 1 p90 2 max 2"));
	assert_non_null(strstr(t.data, "\nflags       1 records flagged (50.0%), 1 flag: pii 1\n"));
	assert_non_null(strstr(t.data, "\n            pii/<email> 1\n"));
	assert_non_null(strstr(t.data,
			       "\nclusters    1 in 2 records, 2 records in 1 clusters of 2+, "
			       "1 marked duplicate\n"));
	assert_non_null(strstr(t.data, "\n            largest: x<y 2\n"));
	assert_non_null(strstr(t.data, "\nsplits      train 1 (50.0%), val 1 (50.0%)\n"));
	assert_null(strstr(t.data, " \n"));
	struct llm_buf h;
	llm_buf_init(&h, 0);
	assert_int_equal(llm_stats_render_html(r, "t", &h), LLM_OK);
	assert_non_null(strstr(h.data, "Tokens in <code>text</code>"));
	assert_non_null(strstr(h.data, "histogram of token counts"));
	assert_non_null(strstr(h.data, "Flags in <code>flags</code>"));
	assert_non_null(strstr(h.data, "pii &#183; &lt;email&gt;"));
	assert_non_null(strstr(h.data, "<h2>Clusters</h2>"));
	assert_non_null(strstr(h.data, "<code>x&lt;y</code>"));
	assert_non_null(strstr(h.data, "Splits in <code>split</code>"));
	assert_non_null(strstr(h.data, "fill=\"#2f6fde\"><title>train: 1 records"));
	assert_null(strstr(h.data, "<email>"));
	assert_null(strstr(h.data, "x<y"));
	llm_buf_free(&t);
	llm_buf_free(&h);
	json_decref(r);
}

/* --- rendering ------------------------------------------------------------------------------ */

static json_t *sample_report(void)
{
	return REPORT("{\"text\":\"Hello world, this is a test.\",\"id\":1,\"<b>\":\"x&y\"}",
		      "{\"text\":\"\xd0\x9f\xd1\x80\xd0\xb8\xd0\xb2\xd0\xb5\xd1\x82 "
		      "\xd0\xbc\xd0\xb8\xd1\x80\",\"id\":2}",
		      "{\"text\":\"Hello world, this is a test.\",\"id\":3,\"tags\":null}",
		      "{\"text\":\"\",\"id\":4,\"esc\\u001b[31m\":1}");
}

static void test_text_table_shows_fields_and_numbers(void **state)
{
	(void)state;
	json_t *r = sample_report();
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_stats_render_text(r, false, &b), LLM_OK);
	assert_non_null(strstr(b.data, "records     4, bad 0\n"));
	assert_non_null(strstr(b.data, "text 1 of 4 (25.0%)"));
	assert_non_null(strstr(b.data, "Latin"));
	assert_non_null(strstr(b.data, "Cyrillic"));
	assert_non_null(strstr(b.data, "field "));
	assert_non_null(strstr(b.data, "chars p50"));
	assert_non_null(strstr(b.data, "\ntext   "));
	assert_non_null(strstr(b.data, "100%  string"));
	assert_non_null(strstr(b.data, "\n<b>  "));
	assert_null(strstr(b.data, "\033")); /* no colour, and the escape in a key is shown as ? */
	assert_non_null(strstr(b.data, "esc?[31m"));
	assert_null(strstr(b.data, " \n")); /* no trailing spaces */
	/* the columns line up: "present" ends where each percentage ends */
	const char *hdr = strstr(b.data, "field "), *row = strstr(b.data, "\ntext ") + 1;
	size_t end_hdr = (size_t)(strstr(hdr, "present") + 7 - hdr);
	size_t end_row = (size_t)(strstr(row, "100%") + 4 - row);
	assert_int_equal(end_hdr, end_row);
	llm_buf_clear(&b);
	assert_int_equal(llm_stats_render_text(r, true, &b), LLM_OK);
	assert_non_null(strstr(b.data, "\033[1m"));
	llm_buf_free(&b);
	json_decref(r);
}

static void test_html_page_is_self_contained_and_escaped(void **state)
{
	(void)state;
	json_t *r = sample_report();
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_stats_render_html(r, "data/<train>&.jsonl", &b), LLM_OK);
	assert_true(!strncmp(b.data, "<!DOCTYPE html>", 15));
	assert_non_null(strstr(b.data, "</html>\n"));
	assert_non_null(strstr(b.data, "<title>data/&lt;train&gt;&amp;.jsonl"));
	assert_null(strstr(b.data, "<train>"));
	assert_non_null(strstr(b.data, "<svg"));
	assert_non_null(strstr(b.data, "<style>"));
	/* a field named <b> is text, never markup */
	assert_non_null(strstr(b.data, "&lt;b&gt;"));
	assert_null(strstr(b.data, "<b>"));
	assert_null(strstr(b.data, "\033"));
	/* nothing runs, nothing is fetched */
	assert_null(strstr(b.data, "<script"));
	assert_null(strstr(b.data, "http://"));
	assert_null(strstr(b.data, "https://"));
	assert_null(strstr(b.data, "src="));
	/* the cards, the charts and the table */
	assert_non_null(strstr(b.data, "Duplicate records"));
	assert_non_null(strstr(b.data, "Duplicate texts"));
	assert_non_null(strstr(b.data, "histogram of lengths"));
	assert_non_null(strstr(b.data, "Writing systems"));
	assert_non_null(strstr(b.data, "<table>"));
	llm_buf_free(&b);
	json_decref(r);
}

static void test_a_saved_report_renders_the_same(void **state)
{
	(void)state;
	json_t *r = sample_report();
	char *saved = json_dumps(r, JSON_REAL_PRECISION(10));
	json_t *again = json_loads(saved, 0, NULL);
	assert_non_null(again);
	struct llm_buf a, b;
	llm_buf_init(&a, 0);
	llm_buf_init(&b, 0);
	assert_int_equal(llm_stats_render_html(r, "t", &a), LLM_OK);
	assert_int_equal(llm_stats_render_html(again, "t", &b), LLM_OK);
	assert_string_equal(a.data, b.data);
	llm_buf_clear(&a);
	llm_buf_clear(&b);
	assert_int_equal(llm_stats_render_text(r, false, &a), LLM_OK);
	assert_int_equal(llm_stats_render_text(again, false, &b), LLM_OK);
	assert_string_equal(a.data, b.data);
	llm_buf_free(&a);
	llm_buf_free(&b);
	free(saved);
	json_decref(again);
	json_decref(r);
}

static void test_renderers_survive_odd_reports(void **state)
{
	(void)state;
	static const char *const odd[] = {
	    "{}",
	    "{\"records\":0,\"fields\":[]}",
	    "{\"records\":\"x\",\"fields\":[1,{\"name\":5},{\"length\":{\"chars\":"
	    "{\"histogram\":[{\"lo\":9,\"hi\":2,\"count\":-1}]}}}],\"scripts\":[]}",
	};
	for (size_t i = 0; i < sizeof odd / sizeof odd[0]; i++) {
		json_t *r = json_loads(odd[i], 0, NULL);
		assert_non_null(r);
		struct llm_buf b;
		llm_buf_init(&b, 0);
		assert_int_equal(llm_stats_render_text(r, true, &b), LLM_OK);
		llm_buf_clear(&b);
		assert_int_equal(llm_stats_render_html(r, NULL, &b), LLM_OK);
		llm_buf_free(&b);
		json_decref(r);
	}
	json_t *arr = json_array();
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_stats_render_text(arr, false, &b), LLM_ERR_TYPE);
	assert_int_equal(llm_stats_render_html(arr, "x", &b), LLM_ERR_TYPE);
	llm_buf_free(&b);
	json_decref(arr);
}

static void test_empty_input_reports_zeros(void **state)
{
	(void)state;
	struct llm_stats *s = new_stats(NULL);
	json_t *r = llm_stats_report(s);
	llm_stats_free(s);
	assert_int_equal(num(r, "records"), 0);
	assert_int_equal(json_array_size(at(r, "fields")), 0);
	assert_int_equal(num(r, "duplicates/records/distinct"), 0);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_stats_render_text(r, false, &b), LLM_OK);
	assert_non_null(strstr(b.data, "no fields"));
	llm_buf_free(&b);
	json_decref(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_counts_presence_and_types),
	    cmocka_unit_test(test_escaped_key_is_the_same_field),
	    cmocka_unit_test(test_repeated_key_counts_once_per_record),
	    cmocka_unit_test(test_fields_past_max_fields_go_to_other),
	    cmocka_unit_test(test_only_named_fields_are_measured),
	    cmocka_unit_test(test_names_given_that_are_not_utf8_still_report),
	    cmocka_unit_test(test_bad_records_by_reason),
	    cmocka_unit_test(test_lengths_count_decoded_characters),
	    cmocka_unit_test(test_words_across_the_eight_byte_blocks),
	    cmocka_unit_test(test_random_strings_match_a_plain_count),
	    cmocka_unit_test(test_long_ascii_runs_count_every_word),
	    cmocka_unit_test(test_empty_means_empty_or_whitespace),
	    cmocka_unit_test(test_percentiles_exact_for_small_values),
	    cmocka_unit_test(test_percentile_is_nearest_rank),
	    cmocka_unit_test(test_percentiles_of_long_values_within_bounds),
	    cmocka_unit_test(test_histogram_bins_cover_every_value),
	    cmocka_unit_test(test_duplicates_of_records_and_text),
	    cmocka_unit_test(test_text_field_is_configurable),
	    cmocka_unit_test(test_duplicates_estimated_past_the_exact_limit),
	    cmocka_unit_test(test_duplicates_exact_below_the_limit),
	    cmocka_unit_test(test_script_mix_by_letters_and_records),
	    cmocka_unit_test(test_scripts_of_more_writing_systems),
	    cmocka_unit_test(test_no_text_field_means_no_scripts),
	    cmocka_unit_test(test_no_new_sections_without_their_fields),
	    cmocka_unit_test(test_flags_by_kind_and_name),
	    cmocka_unit_test(test_flag_names_past_the_limit_go_to_other),
	    cmocka_unit_test(test_clusters_sizes_largest_and_duplicates),
	    cmocka_unit_test(test_largest_keeps_the_ten_biggest),
	    cmocka_unit_test(test_clusters_estimated_past_the_exact_limit),
	    cmocka_unit_test(test_splits_with_the_median_text_length),
	    cmocka_unit_test(test_tokens_per_encoding),
	    cmocka_unit_test(test_new_sections_render_as_text_and_html),
	    cmocka_unit_test(test_text_table_shows_fields_and_numbers),
	    cmocka_unit_test(test_html_page_is_self_contained_and_escaped),
	    cmocka_unit_test(test_a_saved_report_renders_the_same),
	    cmocka_unit_test(test_renderers_survive_odd_reports),
	    cmocka_unit_test(test_empty_input_reports_zeros),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
