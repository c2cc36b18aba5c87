/* Unit tests for lib/monitor/join: feedback meets its request in either order, counts once by
 * id, and is released by the documented policy (at the end in read order; on feedback under
 * emit_on_feedback; after wait_ms; the oldest first past max_pending).  The feedback line is
 * the request log's (llm_reqlog_format_feedback's, with "id"), and a derived id is the one
 * lib/monitor/event.c derives when it reads the record without an id. */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "core/jsonl.h"
#include "monitor/event.h"
#include "monitor/join.h"
#include "serve/reqlog.h"

static struct llm_mon_join *mk(size_t max_pending, int64_t wait_ms, bool emit)
{
	struct llm_mon_join_opts o = {max_pending, wait_ms, emit};
	struct llm_mon_join *j;
	assert_int_equal(llm_mon_join_new(&j, &o), LLM_OK);
	return j;
}

static void req(struct llm_mon_join *j, const char *id, int64_t now)
{
	char text[64];
	snprintf(text, sizeof text, "{\"request_id\":\"%s\"}", id);
	assert_int_equal(llm_mon_join_request(j, id, strlen(id), text, strlen(text), "f", 1, now),
			 LLM_OK);
}

static void fb(struct llm_mon_join *j, const char *rid, const char *fid, double score, int64_t now)
{
	assert_int_equal(llm_mon_join_feedback(j, rid, strlen(rid), fid, score, NULL, NULL,
					       INT64_MIN, now, NULL),
			 LLM_OK);
}

static void either_order_and_once_by_id(void **state)
{
	(void)state;
	struct llm_mon_join *j = mk(0, 0, false);
	fb(j, "b", "f1", 1, 0);
	req(j, "a", 0);
	req(j, "b", 0);
	fb(j, "b", "f2", 3, 0);
	bool dup = false;
	assert_int_equal(
	    llm_mon_join_feedback(j, "b", 1, "f1", 1, "again", NULL, INT64_MIN, 0, &dup), LLM_OK);
	assert_true(dup);
	fb(j, "z", "f3", 5, 0);
	struct llm_mon_joined r;
	assert_false(llm_mon_join_next(j, 1000000, false, &r)); /* nothing due before the end */
	assert_true(llm_mon_join_next(j, 0, true, &r));
	assert_string_equal(r.request_id, "a"); /* read order, though b's feedback came first */
	assert_int_equal(r.nfb, 0);
	assert_true(llm_mon_join_next(j, 0, true, &r));
	assert_string_equal(r.request_id, "b");
	assert_int_equal(r.nfb, 2);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_mon_join_render(&r, &b), LLM_OK);
	assert_string_equal(b.data, "{\"count\":2,\"mean\":2,\"min\":1,\"max\":3,\"scores\":[1,3],"
				    "\"comments\":[],\"ids\":[\"f1\",\"f2\"]}");
	llm_buf_free(&b);
	assert_true(llm_mon_join_next(j, 0, true, &r));
	assert_null(r.text); /* z's feedback: an orphan */
	assert_false(llm_mon_join_next(j, 0, true, &r));
	struct llm_mon_join_counts c;
	llm_mon_join_counts(j, &c);
	assert_int_equal(c.duplicates, 1);
	assert_int_equal(c.orphan_feedback, 1);
	assert_int_equal(c.rated, 1);
	assert_int_equal(c.pending, 0);
	llm_mon_join_free(j);
}

static void a_stream_releases_on_feedback_or_after_the_wait(void **state)
{
	(void)state;
	struct llm_mon_join *j = mk(0, 100, true);
	struct llm_mon_joined r;
	req(j, "a", 0);
	req(j, "b", 10);
	assert_false(llm_mon_join_next(j, 50, false, &r));
	fb(j, "b", "f", 1, 60);
	assert_true(llm_mon_join_next(j, 60, false, &r));
	assert_string_equal(r.request_id, "b");
	assert_false(llm_mon_join_next(j, 99, false, &r));
	assert_true(llm_mon_join_next(j, 100, false, &r));
	assert_string_equal(r.request_id, "a");
	assert_int_equal(r.nfb, 0);
	/* Early feedback: released when the request comes. */
	fb(j, "c", "g", 2, 200);
	req(j, "c", 250);
	assert_true(llm_mon_join_next(j, 250, false, &r));
	assert_string_equal(r.request_id, "c");
	assert_int_equal(r.nfb, 1);
	llm_mon_join_free(j);
}

static void past_max_pending_the_oldest_goes_as_it_stands(void **state)
{
	(void)state;
	struct llm_mon_join *j = mk(2, 0, false);
	struct llm_mon_joined r;
	req(j, "a", 0);
	req(j, "b", 0);
	fb(j, "a", "f", 1, 0);
	req(j, "c", 0); /* three held: a goes, with its feedback */
	assert_true(llm_mon_join_next(j, 0, false, &r));
	assert_string_equal(r.request_id, "a");
	assert_int_equal(r.nfb, 1);
	assert_true(r.evicted);
	assert_false(llm_mon_join_next(j, 0, false, &r));
	fb(j, "a", "f2", 2, 0); /* too late: held as early feedback, then an orphan */
	assert_true(llm_mon_join_next(j, 0, false, &r));
	assert_string_equal(r.request_id, "b");
	struct llm_mon_join_counts c;
	llm_mon_join_counts(j, &c);
	assert_int_equal(c.evicted, 2);
	assert_int_equal(c.pending, 2);
	llm_mon_join_free(j);
}

static void the_line_is_the_request_logs_with_an_id(void **state)
{
	(void)state;
	struct llm_buf want, got;
	llm_buf_init(&want, 0);
	llm_buf_init(&got, 0);
	int64_t ts = 1767323045678;
	assert_int_equal(llm_reqlog_format_feedback("req-1", 2.5, "so \"so\"", ts, &want), LLM_OK);
	assert_int_equal(llm_mon_feedback_format("req-1", 2.5, "so \"so\"", NULL, ts, "fb-x", &got),
			 LLM_OK);
	/* The same line with ,"id":"fb-x" before the closing brace. */
	want.len -= 2;
	llm_buf_puts(&want, ",\"id\":\"fb-x\"}\n");
	assert_string_equal(got.data, want.data);
	llm_buf_free(&want);
	llm_buf_free(&got);
}

static void a_derived_id_is_the_one_a_reader_derives(void **state)
{
	(void)state;
	const char *text = "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":4,"
			   "\"comment\":\"caf\\u00e9\",\"ts\":\"2026-01-02T03:04:05.678Z\"}";
	struct llm_record rec = {.file = "x", .line = 1, .text = text, .len = strlen(text)};
	struct llm_json_fault fault;
	assert_int_equal(llm_json_scan(text, rec.len, &rec.fields, &fault), LLM_OK);
	struct llm_mon_parser *p;
	assert_int_equal(llm_mon_parser_new(&p, NULL, false), LLM_OK);
	struct llm_mon_event ev;
	struct llm_diag d;
	assert_int_equal(llm_mon_parse(p, &rec, &ev, &d), LLM_OK);
	char id[LLM_MON_FB_ID_MAX];
	llm_mon_feedback_id("req-1", 5, 4, 1767323045678, "caf\xc3\xa9", 5, id);
	assert_string_equal(ev.feedback_id.p, id);
	llm_mon_feedback_id("req-1", 5, 4, INT64_MIN, "caf\xc3\xa9", 5, id);
	assert_string_not_equal(ev.feedback_id.p, id);
	llm_mon_parser_free(p);
	llm_json_members_free(&rec.fields);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(either_order_and_once_by_id),
	    cmocka_unit_test(a_stream_releases_on_feedback_or_after_the_wait),
	    cmocka_unit_test(past_max_pending_the_oldest_goes_as_it_stands),
	    cmocka_unit_test(the_line_is_the_request_logs_with_an_id),
	    cmocka_unit_test(a_derived_id_is_the_one_a_reader_derives),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
