/* Unit tests for lib/backend/sse: the incremental server-sent-events parser, against the
 * WHATWG "event stream interpretation" rules, fed in chunks cut at every byte. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "backend/sse.h"
#include "core/buf.h"

/* Each event as "type|id|retry|data" followed by a newline-free separator, for comparing. */
static enum llm_err record(void *ctx, const struct llm_sse_event *ev)
{
	struct llm_buf *out = ctx;
	assert_int_equal(strlen(ev->data), ev->data_len); /* NUL-terminated, no NUL inside here */
	llm_buf_printf(out, "%s|%s|%ld|", ev->type, ev->id, ev->retry_ms);
	llm_buf_append(out, ev->data, ev->data_len);
	llm_buf_puts(out, "\x1e");
	return LLM_OK;
}

/* Feed s in pieces cut at the given offsets (sorted, each in (0, n)). */
static enum llm_err feed_cut(const char *s, size_t n, const size_t *cuts, size_t ncuts,
			     size_t max_event, struct llm_buf *out)
{
	struct llm_sse p;
	llm_sse_init(&p, max_event);
	size_t at = 0;
	enum llm_err e = LLM_OK;
	for (size_t i = 0; i <= ncuts && e == LLM_OK; i++) {
		size_t end = i < ncuts ? cuts[i] : n;
		e = llm_sse_feed(&p, s + at, end - at, record, out);
		at = end;
	}
	llm_sse_free(&p);
	return e;
}

static void expect_events(const char *stream, const char *want)
{
	struct llm_buf out;
	llm_buf_init(&out, 0);
	assert_int_equal(feed_cut(stream, strlen(stream), NULL, 0, 0, &out), LLM_OK);
	assert_string_equal(out.data ? out.data : "", want);
	llm_buf_free(&out);
}

/* A stream with every feature: a BOM, all three line ends, comments, multi-line data, named
 * events, ids, retry, an event without data, fields without a colon, unknown fields. */
static const char rich[] =
    "\xef\xbb\xbf"
    ": a comment first\n"
    "data: one\n\n"
    "event: add\r\nid: 7\r\nretry: 1500\r\ndata: two\r\ndata:  spaced\r\ndata\r\n\r\n"
    "data:three\r\r"
    ":ping\rdata: {\"a\":1}\n\r\n"
    "event: empty\nid\n\n"
    "unknown: x\nretry: 12a\ndata: \xc3\xa9t\xc3\xa9\r\n\n"
    "data: last\n\n"
    "data: never dispatched\n";

static const char rich_events[] = "message||-1|one\x1e"
				  "add|7|1500|two\n spaced\n\x1e"
				  "message|7|1500|three\x1e"
				  "message|7|1500|{\"a\":1}\x1e"
				  "message||1500|\xc3\xa9t\xc3\xa9\x1e"
				  "message||1500|last\x1e";

static void whole_stream_gives_the_events_the_standard_says(void **state)
{
	expect_events(rich, rich_events);
}

static void chunks_cut_at_every_byte_give_the_same_events(void **state)
{
	size_t n = strlen(rich);
	struct llm_buf out;
	llm_buf_init(&out, 0);
	/* Two pieces, cut at every offset (inside the BOM, between CR and LF, inside UTF-8). */
	for (size_t cut = 1; cut < n; cut++) {
		llm_buf_clear(&out);
		assert_int_equal(feed_cut(rich, n, &cut, 1, 0, &out), LLM_OK);
		if (strcmp(out.data ? out.data : "", rich_events) != 0)
			fail_msg("cut at byte %zu gives different events", cut);
	}
	/* Three pieces, every pair of cuts. */
	for (size_t a = 1; a < n; a++)
		for (size_t b = a + 1; b < n; b++) {
			size_t cuts[2] = {a, b};
			llm_buf_clear(&out);
			assert_int_equal(feed_cut(rich, n, cuts, 2, 0, &out), LLM_OK);
			if (strcmp(out.data ? out.data : "", rich_events) != 0)
				fail_msg("cuts at %zu and %zu give different events", a, b);
		}
	/* One byte at a time. */
	size_t *cuts = malloc(n * sizeof *cuts);
	assert_non_null(cuts);
	for (size_t i = 1; i < n; i++)
		cuts[i - 1] = i;
	llm_buf_clear(&out);
	assert_int_equal(feed_cut(rich, n, cuts, n - 1, 0, &out), LLM_OK);
	assert_string_equal(out.data, rich_events);
	free(cuts);
	llm_buf_free(&out);
}

static void crlf_cr_and_lf_each_end_a_line(void **state)
{
	expect_events("data: a\r\n\r\ndata: b\r\rdata: c\n\n", "message||-1|a\x1emessage||-1|b\x1e"
							       "message||-1|c\x1e");
	/* CR LF is one line end, LF CR two: the second line is blank and dispatches. */
	expect_events("data: a\n\rdata: b\r\n\n", "message||-1|a\x1emessage||-1|b\x1e");
	/* A CR that ends one chunk and an LF that starts the next are one line end. */
	struct llm_buf out;
	llm_buf_init(&out, 0);
	const char s[] = "data: x\r\ndata: y\r\n\r\n";
	size_t cut = 8; /* between the first CR and its LF */
	assert_int_equal(feed_cut(s, strlen(s), &cut, 1, 0, &out), LLM_OK);
	assert_string_equal(out.data, "message||-1|x\ny\x1e");
	llm_buf_free(&out);
}

static void comments_are_ignored(void **state)
{
	expect_events(": ping\n\n:\n\n: data: no\ndata: yes\n\n", "message||-1|yes\x1e");
}

static void data_lines_join_with_newlines(void **state)
{
	expect_events("data: a\ndata: b\ndata\ndata:c\ndata: \n\n", "message||-1|a\nb\n\nc\n\x1e");
	/* Only one space after the colon is dropped. */
	expect_events("data:   three spaces\n\n", "message||-1|  three spaces\x1e");
}

static void event_id_and_retry_fields(void **state)
{
	/* The id persists across events; the type does not; a bad retry is ignored. */
	expect_events("event: add\nid: 42\nretry: 3000\ndata: x\n\nretry: 5s\ndata: y\n\n"
		      "id:\ndata: z\n\n",
		      "add|42|3000|x\x1emessage|42|3000|y\x1emessage||3000|z\x1e");
	/* An id holding a NUL is ignored. */
	struct llm_buf out;
	llm_buf_init(&out, 0);
	const char s[] = "id: 1\ndata: a\n\nid: 2\0x\ndata: b\n\n";
	assert_int_equal(feed_cut(s, sizeof s - 1, NULL, 0, 0, &out), LLM_OK);
	assert_string_equal(out.data, "message|1|-1|a\x1emessage|1|-1|b\x1e");
	llm_buf_free(&out);
}

static void an_event_without_data_is_not_dispatched(void **state)
{
	expect_events("event: ping\n\n", "");
	/* and its type does not leak into the next event */
	expect_events("event: ping\n\ndata: x\n\n", "message||-1|x\x1e");
	expect_events("\n\n\n", "");
}

static void the_bom_is_skipped_only_at_the_start(void **state)
{
	expect_events("\xef\xbb\xbf"
		      "data: a\n\n",
		      "message||-1|a\x1e");
	expect_events("data: \xef\xbb\xbf"
		      "b\n\n",
		      "message||-1|\xef\xbb\xbf"
		      "b\x1e");
	/* A stream that only starts like a BOM keeps those bytes (here a line of an unknown
	 * field), and a BOM later on is not skipped (it makes "data" an unknown field). */
	expect_events("\xef\xbb\n"
		      "data: c\n\n\xef\xbb\xbf"
		      "data: d\n\n",
		      "message||-1|c\x1e");
}

static void events_and_lines_over_the_cap_fail_the_stream(void **state)
{
	struct llm_buf out;
	llm_buf_init(&out, 0);
	/* 16 bytes of data in two lines (7 + "\n" + 8) is at the cap: fine. */
	const char ok[] = "data: 1234567\ndata: 12345678\n\n";
	assert_int_equal(feed_cut(ok, strlen(ok), NULL, 0, 16, &out), LLM_OK);
	assert_string_equal(out.data, "message||-1|1234567\n12345678\x1e");
	/* One more byte of data is over it. */
	const char big[] = "data: 1234567\ndata: 123456789\n\n";
	llm_buf_clear(&out);
	assert_int_equal(feed_cut(big, strlen(big), NULL, 0, 16, &out), LLM_ERR_TOO_BIG);
	/* So is a single long line, whole or cut into pieces, comment or not. */
	const char line[] = ": this comment is longer than sixteen bytes\n\ndata: x\n\n";
	size_t cuts[3] = {3, 10, 20};
	assert_int_equal(feed_cut(line, strlen(line), NULL, 0, 16, &out), LLM_ERR_TOO_BIG);
	assert_int_equal(feed_cut(line, strlen(line), cuts, 3, 16, &out), LLM_ERR_TOO_BIG);
	/* And the failure sticks. */
	struct llm_sse p;
	llm_sse_init(&p, 16);
	assert_int_equal(llm_sse_feed(&p, line, strlen(line), record, &out), LLM_ERR_TOO_BIG);
	assert_int_equal(llm_sse_feed(&p, "data: y\n\n", 9, record, &out), LLM_ERR_TOO_BIG);
	llm_sse_free(&p);
	llm_buf_free(&out);
}

static enum llm_err stop_at_first(void *ctx, const struct llm_sse_event *ev)
{
	int *count = ctx;
	(*count)++;
	return LLM_ERR_CHECK;
}

static void a_callback_can_stop_the_feed(void **state)
{
	struct llm_sse p;
	llm_sse_init(&p, 0);
	int count = 0;
	const char s[] = "data: a\n\ndata: b\n\n";
	assert_int_equal(llm_sse_feed(&p, s, strlen(s), stop_at_first, &count), LLM_ERR_CHECK);
	assert_int_equal(count, 1);
	assert_int_equal(llm_sse_feed(&p, s, strlen(s), stop_at_first, &count), LLM_ERR_CHECK);
	assert_int_equal(count, 1);
	llm_sse_free(&p);
}

static void partial_says_whether_the_stream_stopped_inside_an_event(void **state)
{
	struct llm_sse p;
	struct llm_buf out;
	llm_buf_init(&out, 0);
	llm_sse_init(&p, 0);
	assert_false(llm_sse_partial(&p));
	assert_int_equal(llm_sse_feed(&p, "dat", 3, record, &out), LLM_OK);
	assert_true(llm_sse_partial(&p));
	assert_int_equal(llm_sse_feed(&p, "a: x\n", 5, record, &out), LLM_OK);
	assert_true(llm_sse_partial(&p));
	assert_int_equal(llm_sse_feed(&p, "\n", 1, record, &out), LLM_OK);
	assert_false(llm_sse_partial(&p));
	assert_string_equal(out.data, "message||-1|x\x1e");
	/* reset forgets the id and the partial line */
	const char more[] = "id: 9\ndata: y\n\ndata: z";
	assert_int_equal(llm_sse_feed(&p, more, strlen(more), record, &out), LLM_OK);
	llm_sse_reset(&p);
	assert_false(llm_sse_partial(&p));
	llm_buf_clear(&out);
	assert_int_equal(llm_sse_feed(&p, "data: w\n\n", 9, record, &out), LLM_OK);
	assert_string_equal(out.data, "message||-1|w\x1e");
	llm_sse_free(&p);
	llm_buf_free(&out);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(whole_stream_gives_the_events_the_standard_says),
	    cmocka_unit_test(chunks_cut_at_every_byte_give_the_same_events),
	    cmocka_unit_test(crlf_cr_and_lf_each_end_a_line),
	    cmocka_unit_test(comments_are_ignored),
	    cmocka_unit_test(data_lines_join_with_newlines),
	    cmocka_unit_test(event_id_and_retry_fields),
	    cmocka_unit_test(an_event_without_data_is_not_dispatched),
	    cmocka_unit_test(the_bom_is_skipped_only_at_the_start),
	    cmocka_unit_test(events_and_lines_over_the_cap_fail_the_stream),
	    cmocka_unit_test(a_callback_can_stop_the_feed),
	    cmocka_unit_test(partial_says_whether_the_stream_stopped_inside_an_event),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
