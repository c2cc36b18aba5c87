/* Unit tests for lib/monitor/event: llm-serve's log records (full and hash content), llm-gen's
 * records, OpenAI request/response pairs, feedback with and without an id; times (RFC 3339
 * with offsets and fractions, Unix seconds and milliseconds) and durations; strictness about
 * types, leniency about absence. */
#include "config.h"

#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "monitor/event.h"

struct fixture {
	struct llm_mon_parser *p;
	struct llm_record rec;
	struct llm_mon_event ev;
	struct llm_diag why;
};

static enum llm_err parse_with(struct fixture *f, const char *line, bool text)
{
	llm_mon_parser_free(f->p);
	assert_int_equal(llm_mon_parser_new(&f->p, NULL, text), LLM_OK);
	llm_json_members_free(&f->rec.fields);
	memset(&f->rec, 0, sizeof f->rec);
	f->rec.file = "log.jsonl";
	f->rec.line = 7;
	f->rec.text = line;
	f->rec.len = strlen(line);
	struct llm_json_fault fault;
	assert_int_equal(llm_json_scan(line, f->rec.len, &f->rec.fields, &fault), LLM_OK);
	return llm_mon_parse(f->p, &f->rec, &f->ev, &f->why);
}

static int setup(void **state)
{
	static struct fixture f;
	memset(&f, 0, sizeof f);
	*state = &f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;
	llm_mon_parser_free(f->p);
	llm_json_members_free(&f->rec.fields);
	return 0;
}

static void a_serve_log_record_is_read_whole(void **state)
{
	struct fixture *f = *state;
	const char *line =
	    "{\"ts\":\"2026-01-02T03:04:05.678Z\",\"request_id\":\"req-1\",\"endpoint\":"
	    "\"/v1/chat/completions\",\"model\":\"bot@3\",\"key_id\":\"team-a\",\"status\":200,"
	    "\"latency_ms\":812.4,\"ttft_ms\":95.1,\"usage\":{\"prompt_tokens\":31,"
	    "\"completion_tokens\":120},\"finish_reason\":\"stop\",\"messages\":[{\"role\":"
	    "\"system\",\"content\":\"be nice\"},{\"role\":\"user\",\"content\":\"h\\u00e9llo\"}],"
	    "\"output\":\"hi \\\"there\\\"\",\"flags\":[{\"kind\":\"pii\",\"type\":\"email\","
	    "\"field\":\"output\",\"span\":[1,2],\"score\":1}]}";
	assert_int_equal(parse_with(f, line, true), LLM_OK);
	struct llm_mon_event *e = &f->ev;
	assert_int_equal(e->kind, LLM_MON_REQUEST);
	assert_true(e->ts_ms == 1767323045678LL);
	assert_string_equal(e->request_id.p, "req-1");
	assert_string_equal(e->endpoint.p, "/v1/chat/completions");
	assert_string_equal(e->model.p, "bot@3");
	assert_string_equal(e->key_id.p, "team-a");
	assert_int_equal(e->status, 200);
	assert_false(e->failed);
	assert_true(e->latency_ms == 812.4 && e->ttft_ms == 95.1);
	assert_true(e->prompt_tokens == 31 && e->completion_tokens == 120);
	assert_string_equal(e->finish_reason.p, "stop");
	assert_true(e->chat);
	assert_string_equal(e->prompt.p, "be nice\nh\xc3\xa9llo");
	assert_string_equal(e->prompt_user.p, "h\xc3\xa9llo");
	assert_int_equal(e->prompt_chars, 13);
	assert_string_equal(e->output.p, "hi \"there\"");
	assert_int_equal(e->output_chars, 10);
	assert_int_equal(e->nflags, 1);
	assert_string_equal(e->flags[0].kind.p, "pii");
	assert_string_equal(e->flags[0].type.p, "email");
	assert_string_equal(e->flags[0].field.p, "output");
	assert_true(e->flags[0].score == 1);
	assert_true(e->score == LLM_MON_UNKNOWN);

	/* Without want_text the lengths are still known, the texts are not kept. */
	assert_int_equal(parse_with(f, line, false), LLM_OK);
	assert_null(f->ev.output.p);
	assert_int_equal(f->ev.output_chars, 10);
	assert_string_equal(f->ev.model.p, "bot@3");
}

static void hash_mode_lengths_errors_and_nulls(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(
	    parse_with(f,
		       "{\"ts\":\"2026-01-02T03:04:05Z\",\"request_id\":\"r\",\"status\":503,"
		       "\"latency_ms\":3.5,\"ttft_ms\":null,\"usage\":null,\"prompt_sha256\":\"ab\","
		       "\"prompt_len\":42,\"output_len\":0,\"error\":{\"code\":\"overloaded\","
		       "\"message\":\"busy\"}}",
		       true),
	    LLM_OK);
	assert_int_equal(f->ev.status, 503);
	assert_true(f->ev.failed);
	assert_string_equal(f->ev.error_code.p, "overloaded");
	assert_true(f->ev.ttft_ms == LLM_MON_UNKNOWN);
	assert_true(f->ev.prompt_tokens == -1 && f->ev.completion_tokens == -1);
	assert_int_equal(f->ev.prompt_chars, 42);
	assert_int_equal(f->ev.output_chars, 0);
	assert_null(f->ev.prompt.p);

	/* An llm-gen record: no status, an error counts as failed. */
	assert_int_equal(parse_with(f,
				    "{\"id\":\"q1\",\"prompt\":\"2+2?\",\"output\":null,\"error\":"
				    "{\"code\":\"timeout\",\"message\":\"x\"},\"model\":\"m\"}",
				    true),
			 LLM_OK);
	assert_int_equal(f->ev.status, 0);
	assert_true(f->ev.failed);
	assert_string_equal(f->ev.request_id.p, "q1");
	assert_string_equal(f->ev.prompt.p, "2+2?");
	assert_true(f->ev.ts_ms == INT64_MIN);
}

static void openai_pairs_fill_what_the_top_level_lacks(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(
	    parse_with(f,
		       "{\"status\":200,\"latency_ms\":10,\"request\":{\"model\":\"gpt-4o\","
		       "\"messages\":[{\"role\":\"user\",\"content\":[{\"type\":\"text\",\"text\":"
		       "\"a\"},{\"type\":\"text\",\"text\":\"b\"}]}]},\"response\":{\"id\":"
		       "\"chatcmpl-9\",\"created\":1767323045,\"model\":\"gpt-4o-2024\",\"choices\":"
		       "[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"yes\"},"
		       "\"finish_reason\":\"length\"}],\"usage\":{\"prompt_tokens\":5,"
		       "\"completion_tokens\":1}}}",
		       true),
	    LLM_OK);
	assert_string_equal(f->ev.model.p, "gpt-4o");
	assert_string_equal(f->ev.endpoint.p, "/v1/chat/completions");
	assert_string_equal(f->ev.prompt.p, "a\nb");
	assert_string_equal(f->ev.output.p, "yes");
	assert_string_equal(f->ev.finish_reason.p, "length");
	assert_string_equal(f->ev.request_id.p, "chatcmpl-9");
	assert_true(f->ev.ts_ms == 1767323045000LL);
	assert_true(f->ev.prompt_tokens == 5 && f->ev.completion_tokens == 1);
}

static void feedback_ids_are_given_or_derived_the_same_way_twice(void **state)
{
	struct fixture *f = *state;
	const char *fb = "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":2,\"comment\":"
			 "\"meh\",\"ts\":1767323045.5}";
	assert_int_equal(parse_with(f, fb, false), LLM_OK);
	assert_int_equal(f->ev.kind, LLM_MON_FEEDBACK);
	assert_true(f->ev.score == 2);
	assert_string_equal(f->ev.comment.p, "meh");
	assert_true(f->ev.ts_ms == 1767323045500LL);
	char id[64];
	snprintf(id, sizeof id, "%s", f->ev.feedback_id.p);
	assert_int_equal(strncmp(id, "fb-", 3), 0);
	assert_int_equal(parse_with(f, fb, false), LLM_OK);
	assert_string_equal(f->ev.feedback_id.p, id);
	/* Another score is another feedback. */
	assert_int_equal(parse_with(f,
				    "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":3,"
				    "\"comment\":\"meh\",\"ts\":1767323045.5}",
				    false),
			 LLM_OK);
	assert_string_not_equal(f->ev.feedback_id.p, id);
	assert_int_equal(parse_with(f,
				    "{\"kind\":\"feedback\",\"id\":\"fb-mine\",\"request_id\":\"r\","
				    "\"score\":-1}",
				    false),
			 LLM_OK);
	assert_string_equal(f->ev.feedback_id.p, "fb-mine");
	assert_true(f->ev.score == -1);
	assert_int_equal(parse_with(f, "{\"kind\":\"feedback\",\"request_id\":\"r\"}", false),
			 LLM_ERR_MISSING);
	assert_int_equal(parse_with(f, "{\"kind\":\"feedback\",\"score\":1}", false),
			 LLM_ERR_MISSING);
}

static void wrong_types_are_named_with_file_and_line(void **state)
{
	struct fixture *f = *state;
	assert_int_equal(parse_with(f, "{\"status\":\"200\"}", false), LLM_ERR_TYPE);
	assert_string_equal(f->why.file, "log.jsonl");
	assert_int_equal(f->why.line, 7);
	assert_non_null(strstr(f->why.msg, "status"));
	assert_int_equal(parse_with(f, "{\"latency_ms\":\"fast\"}", false), LLM_ERR_TYPE);
	assert_int_equal(parse_with(f, "{\"ts\":\"yesterday\"}", false), LLM_ERR_FORMAT);
	assert_non_null(strstr(f->why.msg, "RFC 3339"));
	assert_int_equal(parse_with(f, "{\"status\":200.5}", false), LLM_ERR_RANGE);
	assert_int_equal(parse_with(f, "{\"flags\":[1]}", false), LLM_ERR_TYPE);
	assert_int_equal(parse_with(f, "{\"messages\":\"hi\"}", false), LLM_ERR_TYPE);
	/* Absence is fine. */
	assert_int_equal(parse_with(f, "{}", false), LLM_OK);
	assert_int_equal(f->ev.kind, LLM_MON_REQUEST);
}

/* Numbers read by the fast path are the doubles strtod gives, bit for bit. */
static void numbers_are_read_as_strtod_reads_them(void **state)
{
	struct fixture *f = *state;
	static const char *nums[] = {"0", "-0", "1", "812.4", "95.1", "0.1", "0.30000000000000004",
				     "123456789012345", "1234567890123456789", "9007199254740993",
				     "1767323045.678", "1e3", "2.5E-3", "0.000000000000000000001",
				     "0.0000000000000000000000001", "179769313486231570000", "-3.75",
				     "4.35", "1.0000000000000002", "99999999999999.99"};
	char line[128];
	uint64_t x = 88172645463325252ull;
	for (size_t i = 0; i < sizeof nums / sizeof *nums + 2000; i++) {
		char buf[40];
		const char *num = buf;
		if (i < sizeof nums / sizeof *nums) {
			num = nums[i];
		} else { /* random decimals of 1-17 digits with 0-9 after the point */
			x ^= x << 13, x ^= x >> 7, x ^= x << 17;
			int d = 1 + (int)(x % 17), frac = (int)((x >> 8) % 10);
			unsigned long long v = (x >> 12) % 100000000000000000ull;
			int len = snprintf(buf, sizeof buf, "%llu", v);
			if (len > d)
				buf[d] = '\0', len = d;
			if (frac && frac < len) {
				memmove(buf + len - frac + 1, buf + len - frac, (size_t)frac + 1);
				buf[len - frac] = '.';
			}
		}
		snprintf(line, sizeof line, "{\"latency_ms\":%s}", num);
		assert_int_equal(parse_with(f, line, false), LLM_OK);
		double want = strtod(num, NULL);
		if (memcmp(&f->ev.latency_ms, &want, sizeof want))
			fail_msg("%s: read %.17g, strtod %.17g", num, f->ev.latency_ms, want);
	}
}

static void times_and_durations(void **state)
{
	(void)state;
	int64_t ms;
	assert_true(llm_mon_parse_time("1970-01-01T00:00:00Z", 20, &ms) && ms == 0);
	assert_true(llm_mon_parse_time("2026-01-02T04:04:05.5+01:00", 27, &ms) &&
		    ms == 1767323045500LL);
	assert_true(llm_mon_parse_time("2026-01-02 03:04:05.123456z", 27, &ms) &&
		    ms == 1767323045123LL);
	assert_true(llm_mon_parse_time("2024-02-29T00:00:00Z", 20, &ms));
	assert_false(llm_mon_parse_time("2023-02-29T00:00:00Z", 20, &ms));
	assert_false(llm_mon_parse_time("2026-13-02T03:04:05Z", 20, &ms));
	assert_false(llm_mon_parse_time("2026-01-02T03:04:05", 19, &ms));
	assert_false(llm_mon_parse_time("2026-01-02T03:04:05.Z", 21, &ms));
	assert_true(llm_mon_parse_duration("5m", &ms) && ms == 300000);
	assert_true(llm_mon_parse_duration("1h30m", &ms) && ms == 5400000);
	assert_true(llm_mon_parse_duration("250ms", &ms) && ms == 250);
	assert_true(llm_mon_parse_duration("1.5s", &ms) && ms == 1500);
	assert_true(llm_mon_parse_duration("2", &ms) && ms == 2000);
	assert_true(llm_mon_parse_duration("1w", &ms) && ms == 604800000LL);
	assert_false(llm_mon_parse_duration("5x", &ms));
	assert_false(llm_mon_parse_duration("", &ms));
	assert_false(llm_mon_parse_duration("-5m", &ms));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(a_serve_log_record_is_read_whole, setup, teardown),
	    cmocka_unit_test_setup_teardown(hash_mode_lengths_errors_and_nulls, setup, teardown),
	    cmocka_unit_test_setup_teardown(openai_pairs_fill_what_the_top_level_lacks, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(feedback_ids_are_given_or_derived_the_same_way_twice,
					    setup, teardown),
	    cmocka_unit_test_setup_teardown(wrong_types_are_named_with_file_and_line, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(numbers_are_read_as_strtod_reads_them, setup,
					    teardown),
	    cmocka_unit_test(times_and_durations),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
