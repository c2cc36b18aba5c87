/* Unit tests for what llm-gen builds on: request bodies and responses (backend/request), the
 * answer cache (backend/cache), record ids and resumable output files (data/recid). */
#include "config.h"

#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <unistd.h>

#include <cmocka.h>

#include "backend/cache.h"
#include "backend/request.h"
#include "core/jsonl.h"
#include "data/recid.h"

static char root[64];

static int setup(void **state)
{
	(void)state;
	snprintf(root, sizeof root, "/tmp/llmops-test-gen.XXXXXX");
	return mkdtemp(root) ? 0 : -1;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static char *path(const char *rel)
{
	static char p[4][256];
	static int k;
	k = (k + 1) % 4;
	snprintf(p[k], sizeof p[k], "%s/%s", root, rel);
	return p[k];
}

static void write_file(const char *p, const char *s)
{
	FILE *f = fopen(p, "wb");
	assert_non_null(f);
	fputs(s, f);
	fclose(f);
}

static char *read_file(const char *p)
{
	FILE *f = fopen(p, "rb");
	assert_non_null(f);
	static char buf[8192];
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static json_t *parse(const char *s)
{
	json_t *v = json_loads(s, 0, NULL);
	assert_non_null(v);
	return v;
}

/* ---- requests --------------------------------------------------------------------------- */

static void unset_options_are_not_sent(void **state)
{
	(void)state;
	struct llm_sampling s;
	llm_sampling_init(&s);
	json_t *body;
	assert_int_equal(llm_request_completion(&s, "hi", 2, &body, NULL), LLM_OK);
	char *t = json_dumps(body, JSON_COMPACT);
	assert_string_equal(t, "{\"prompt\":\"hi\"}");
	free(t);
	assert_false(llm_request_deterministic(body)); /* the API's default temperature is 1 */
	json_decref(body);
}

static void sampling_options_map_onto_openai_fields(void **state)
{
	(void)state;
	struct llm_sampling s;
	llm_sampling_init(&s);
	char *stops[] = {"\n", "END", NULL};
	s.model = "m";
	s.max_tokens = 16;
	s.temperature = 0.5;
	s.top_p = 0.9;
	s.top_k = 40;
	s.min_p = 0.05;
	s.frequency_penalty = 0.1;
	s.presence_penalty = -0.2;
	s.repetition_penalty = 1.1;
	s.has_seed = true;
	s.seed = 42;
	s.stop = stops;
	s.nstop = 2;
	s.n = 3;
	s.logprobs = 2;
	json_t *body;
	json_t *msgs = parse("[{\"role\":\"user\",\"content\":\"q\"}]");
	assert_int_equal(llm_request_chat(&s, msgs, &body, NULL), LLM_OK);
	json_t *want =
	    parse("{\"messages\":[{\"role\":\"user\",\"content\":\"q\"}],\"model\":\"m\",\"max_"
		  "tokens\":16,"
		  "\"temperature\":0.5,\"top_p\":0.9,\"top_k\":40,\"min_p\":0.05,\"frequency_"
		  "penalty\":0.1,"
		  "\"presence_penalty\":-0.2,\"repetition_penalty\":1.1,\"seed\":42,"
		  "\"stop\":[\"\\n\",\"END\"],\"n\":3,\"logprobs\":true,\"top_logprobs\":2}");
	assert_true(json_equal(body, want));
	assert_true(llm_request_deterministic(body)); /* seeded */
	json_decref(body);
	json_decref(want);
	/* completions: logprobs is the number of alternatives */
	assert_int_equal(llm_request_completion(&s, "p", 1, &body, NULL), LLM_OK);
	assert_int_equal(json_integer_value(json_object_get(body, "logprobs")), 2);
	assert_null(json_object_get(body, "top_logprobs"));
	json_decref(body);
	json_decref(msgs);
}

static void params_are_merged_last_and_system_goes_first(void **state)
{
	(void)state;
	struct llm_sampling s;
	llm_sampling_init(&s);
	s.temperature = 0.7;
	s.system = "be brief";
	json_t *params =
	    parse("{\"temperature\":0,\"response_format\":{\"type\":\"json_object\"}}");
	s.params = params;
	json_t *body;
	assert_int_equal(llm_request_chat_prompt(&s, "q", 1, &body, NULL), LLM_OK);
	json_t *want = parse("{\"messages\":[{\"role\":\"system\",\"content\":\"be brief\"},"
			     "{\"role\":\"user\",\"content\":\"q\"}],\"temperature\":0,"
			     "\"response_format\":{\"type\":\"json_object\"}}");
	assert_true(json_equal(body, want));
	assert_true(llm_request_deterministic(body)); /* temperature 0 after the merge */
	json_decref(body);
	json_decref(want);
	/* messages with their own system message keep it, and only it */
	json_t *msgs = parse("[{\"role\":\"system\",\"content\":\"mine\"},{\"role\":\"user\","
			     "\"content\":\"q\"}]");
	assert_int_equal(llm_request_chat(&s, msgs, &body, NULL), LLM_OK);
	assert_int_equal(json_array_size(json_object_get(body, "messages")), 2);
	json_decref(body);
	json_decref(msgs);
	json_decref(params);
}

static void malformed_messages_are_refused(void **state)
{
	(void)state;
	struct llm_sampling s;
	llm_sampling_init(&s);
	json_t *body;
	struct llm_diag d;
	json_t *bad = parse("[{\"role\":\"user\",\"content\":\"a\"},{\"content\":\"b\"}]");
	assert_int_equal(llm_request_chat(&s, bad, &body, &d), LLM_ERR_TYPE);
	assert_non_null(strstr(d.msg, "message 2"));
	assert_null(body);
	json_decref(bad);
	json_t *empty = json_array();
	assert_int_equal(llm_request_chat(&s, empty, &body, &d), LLM_ERR_MISSING);
	json_decref(empty);
}

static void the_canonical_form_ignores_member_order(void **state)
{
	(void)state;
	json_t *a = parse("{\"b\":1,\"a\":{\"y\":[1,2],\"x\":0.1},\"temperature\":0}");
	json_t *b = parse("{\"temperature\":0,\"a\":{\"x\":0.1,\"y\":[1,2]},\"b\":1}");
	char *ca = llm_request_canonical(a), *cb = llm_request_canonical(b);
	assert_string_equal(ca, cb);
	assert_string_equal(ca, "{\"a\":{\"x\":0.10000000000000001,\"y\":[1,2]},\"b\":1,"
				"\"temperature\":0}");
	free(ca);
	free(cb);
	json_decref(a);
	json_decref(b);
	json_t *hot = parse("{\"temperature\":0.2}");
	json_t *seeded = parse("{\"temperature\":1,\"seed\":0}");
	json_t *nullseed = parse("{\"seed\":null}");
	assert_false(llm_request_deterministic(hot));
	assert_true(llm_request_deterministic(seeded));
	assert_false(llm_request_deterministic(nullseed));
	json_decref(hot);
	json_decref(seeded);
	json_decref(nullseed);
}

static void responses_are_read_choice_by_choice(void **state)
{
	(void)state;
	const char *chat =
	    "{\"id\":\"x\",\"model\":\"gpt\",\"choices\":["
	    "{\"index\":1,\"message\":{\"role\":\"assistant\",\"content\":\"second\"},"
	    "\"finish_reason\":\"length\",\"logprobs\":null},"
	    "{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"first\"},"
	    "\"finish_reason\":\"stop\",\"logprobs\":{\"content\":[]}}],"
	    "\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":7,\"total_tokens\":12}}";
	struct llm_response r;
	assert_int_equal(llm_response_parse(chat, strlen(chat), &r, NULL), LLM_OK);
	assert_int_equal(r.ep, LLM_EP_CHAT);
	assert_int_equal(r.n, 2);
	assert_string_equal(json_string_value(json_array_get(r.outputs, 0)), "first");
	assert_string_equal(json_string_value(json_array_get(r.outputs, 1)), "second");
	assert_string_equal(json_string_value(json_array_get(r.finish_reasons, 0)), "stop");
	assert_true(r.has_logprobs);
	assert_string_equal(r.model, "gpt");
	char *u = json_dumps(r.usage, JSON_COMPACT);
	assert_string_equal(u, "{\"prompt_tokens\":5,\"completion_tokens\":7}");
	free(u);
	llm_response_free(&r);

	/* A model may well emit the byte 0 (byte-level vocabularies hold all 256): JSON writes it
	 * as \u0000 and the answer keeps it, whole. */
	const char *comp = "{\"choices\":[{\"index\":0,\"text\":\" o\\u0000k\",\"finish_reason\":null}]}";
	assert_int_equal(llm_response_parse(comp, strlen(comp), &r, NULL), LLM_OK);
	assert_int_equal(r.ep, LLM_EP_COMPLETIONS);
	assert_int_equal(json_string_length(json_array_get(r.outputs, 0)), 4);
	assert_memory_equal(json_string_value(json_array_get(r.outputs, 0)), " o\0k", 4);
	assert_null(r.usage);
	assert_null(r.model);
	assert_false(r.has_logprobs);
	llm_response_free(&r);

	struct llm_diag d;
	const char *err = "{\"error\":{\"message\":\"nope\",\"type\":\"server_error\"}}";
	assert_int_equal(llm_response_parse(err, strlen(err), &r, &d), LLM_ERR_REMOTE);
	assert_string_equal(d.msg, "nope");
	const char *none = "{\"choices\":[]}";
	assert_int_equal(llm_response_parse(none, strlen(none), &r, &d), LLM_ERR_FORMAT);
	assert_int_equal(llm_response_parse("[1]", 3, &r, &d), LLM_ERR_FORMAT);
}

/* ---- the cache -------------------------------------------------------------------------- */

static void the_key_is_the_sha256_of_identity_endpoint_and_body(void **state)
{
	(void)state;
	struct llm_buf id;
	llm_buf_init(&id, 0);
	assert_int_equal(llm_cache_model_identity("http://h/v1/", "m", &id, NULL), LLM_OK);
	assert_string_equal(id.data, "url http://h/v1\nmodel m");
	char key[LLM_CACHE_KEY_LEN + 1];
	assert_int_equal(llm_cache_key(id.data, LLM_EP_COMPLETIONS,
				       "{\"prompt\":\"p\",\"temperature\":0.0}", key),
			 LLM_OK);
	/* hashlib.sha256(b"llmops cache 1\nurl http://h/v1\nmodel m\0completions\0" + body) */
	assert_string_equal(key,
			    "a9a59fefd18465f5ff7f8827b184a8a14225de46737c34b44d99a6717ccadb23");
	char other[LLM_CACHE_KEY_LEN + 1];
	assert_int_equal(
	    llm_cache_key(id.data, LLM_EP_CHAT, "{\"prompt\":\"p\",\"temperature\":0.0}", other),
	    LLM_OK);
	assert_string_not_equal(key, other);
	llm_buf_free(&id);
}

static void a_stored_answer_comes_back_and_a_bad_entry_is_a_miss(void **state)
{
	(void)state;
	struct llm_cache *c;
	assert_int_equal(llm_cache_open(&c, path("cache/deep/er"), NULL), LLM_OK);
	char key[LLM_CACHE_KEY_LEN + 1];
	assert_int_equal(llm_cache_key("url x\nmodel m", LLM_EP_CHAT, "{}", key), LLM_OK);
	struct llm_cache_hit hit;
	assert_false(llm_cache_get(c, key, &hit));
	const char *resp = "{\"choices\":[{\"index\":0,\"text\":\"a\"}]}";
	assert_int_equal(llm_cache_put(c, key, "url x\nmodel m", LLM_EP_CHAT, "{\"temperature\":0}",
				       resp, strlen(resp), 12.5, -1, NULL),
			 LLM_OK);
	assert_true(llm_cache_get(c, key, &hit));
	assert_string_equal(hit.response, resp);
	assert_true(hit.latency_ms == 12.5);
	assert_true(hit.ttft_ms < 0);
	llm_cache_hit_clear(&hit);
	/* the entry is a file under its key's first two digits, with no temporary left */
	char rel[128];
	snprintf(rel, sizeof rel, "cache/deep/er/%.2s/%s.json", key, key);
	struct stat st;
	assert_int_equal(stat(path(rel), &st), 0);
	write_file(path(rel), "{\"key\":\"not this one\",\"response\":{}}\n");
	assert_false(llm_cache_get(c, key, &hit));
	write_file(path(rel), "garbage");
	assert_false(llm_cache_get(c, key, &hit));
	assert_false(llm_cache_get(c, "../../etc/passwd", &hit));
	assert_int_equal(llm_cache_put(c, "nothex", "x", LLM_EP_CHAT, "{}", "{}", 2, 0, 0, NULL),
			 LLM_ERR_USAGE);
	llm_cache_close(c);
}

static void a_local_model_changes_identity_when_its_files_change(void **state)
{
	(void)state;
	mkdir(path("model"), 0777);
	write_file(path("model/config.json"), "{}");
	write_file(path("model/model.safetensors"), "weights");
	struct llm_buf a, b;
	llm_buf_init(&a, 0);
	llm_buf_init(&b, 0);
	assert_int_equal(llm_cache_model_identity(path("model"), NULL, &a, NULL), LLM_OK);
	assert_non_null(strstr(a.data, "\nmodel.safetensors 7 "));
	struct timeval tv[2] = {{1000000000, 0}, {1000000000, 0}};
	utimes(path("model/model.safetensors"), tv);
	assert_int_equal(llm_cache_model_identity(path("model"), NULL, &b, NULL), LLM_OK);
	assert_string_not_equal(a.data, b.data);
	llm_buf_free(&a);
	llm_buf_free(&b);
	struct llm_diag d;
	llm_buf_init(&a, 0);
	assert_int_equal(llm_cache_model_identity(path("none"), NULL, &a, &d), LLM_ERR_NOT_FOUND);
	llm_buf_free(&a);
}

/* ---- ids ------------------------------------------------------------------------------- */

static const char *const excl[] = {"output", "usage", "error"};

static void id_of(const char *line, char *out, size_t n, bool *derived)
{
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	assert_int_equal(llm_json_scan(line, strlen(line), &ms, &f), LLM_OK);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_record_id(&ms, "id", excl, 3, &b, derived), LLM_OK);
	snprintf(out, n, "%s", b.data ? b.data : "");
	llm_buf_free(&b);
	llm_json_members_free(&ms);
}

static void an_id_is_the_field_or_a_hash_of_the_other_fields(void **state)
{
	(void)state;
	char id[80];
	bool derived;
	id_of("{\"id\":\"a\\u0062\",\"prompt\":\"x\"}", id, sizeof id, &derived);
	assert_string_equal(id, "ab");
	assert_false(derived);
	id_of("{\"id\":17}", id, sizeof id, &derived);
	assert_string_equal(id, "17");
	/* hashlib.sha256(b'"prompt":"x","n":[1, 2],').hexdigest()[:32] */
	id_of("{\"prompt\":\"x\",\"n\": [1, 2]}", id, sizeof id, &derived);
	assert_true(derived);
	assert_string_equal(id, "554747143a87623f9fd1ccace2436bfe");
	/* the same record with what a tool wrote: the same id */
	char id2[80];
	id_of("{\"prompt\":\"x\",\"output\":\"y\",\"n\": [1, 2],\"usage\":{},\"error\":null}", id2,
	      sizeof id2, &derived);
	assert_string_equal(id, id2);
	id_of("{\"id\":null,\"prompt\":\"x\"}", id2, sizeof id2, &derived);
	assert_true(derived);
	struct llm_json_members ms = {0};
	struct llm_json_fault f;
	const char *bad = "{\"id\":[1]}";
	assert_int_equal(llm_json_scan(bad, strlen(bad), &ms, &f), LLM_OK);
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_record_id(&ms, "id", NULL, 0, &b, &derived), LLM_ERR_TYPE);
	llm_buf_free(&b);
	llm_json_members_free(&ms);
}

static void the_idset_is_a_multiset(void **state)
{
	(void)state;
	struct llm_idset *s;
	assert_int_equal(llm_idset_new(&s), LLM_OK);
	uint64_t k;
	char id[16];
	for (int i = 0; i < 1000; i++) {
		snprintf(id, sizeof id, "id%d", i % 500);
		assert_int_equal(llm_idset_add(s, id, strlen(id), &k), LLM_OK);
		assert_int_equal(k, i < 500 ? 1 : 2);
	}
	assert_int_equal(llm_idset_total(s), 1000);
	assert_int_equal(llm_idset_count(s, "id7", 3), 2);
	assert_true(llm_idset_take(s, "id7", 3));
	assert_true(llm_idset_take(s, "id7", 3));
	assert_false(llm_idset_take(s, "id7", 3));
	assert_false(llm_idset_take(s, "nope", 4));
	assert_int_equal(llm_idset_total(s), 998);
	llm_idset_free(s);
}

static void resuming_cuts_a_torn_line_and_drops_failed_records(void **state)
{
	(void)state;
	const char *p = path("out.jsonl");
	write_file(p, "{\"id\":\"a\",\"output\":\"1\"}\n"
		      "{\"id\":\"b\",\"error\":{\"code\":\"x\",\"message\":\"y\"}}\n"
		      "{\"prompt\":\"c\",\"output\":\"3\"}\n"
		      "{\"id\":\"a\",\"output\":\"1\"}\n"
		      "{\"id\":\"d\",\"outp");
	struct llm_idset *done;
	assert_int_equal(llm_idset_new(&done), LLM_OK);
	struct llm_resume res;
	assert_int_equal(llm_resume_scan(p, "id", excl, 3, "error", 1 << 20, done, &res, NULL),
			 LLM_OK);
	assert_true(res.existed);
	assert_int_equal(res.done, 3);
	assert_int_equal(res.redo, 1);
	assert_int_equal(res.torn_bytes, 15);
	assert_int_equal(llm_idset_count(done, "a", 1), 2);
	assert_int_equal(llm_idset_count(done, "b", 1), 0);
	char cid[80];
	bool derived;
	id_of("{\"prompt\":\"c\"}", cid, sizeof cid, &derived);
	assert_int_equal(llm_idset_count(done, cid, strlen(cid)), 1);
	assert_string_equal(read_file(p), "{\"id\":\"a\",\"output\":\"1\"}\n"
					  "{\"prompt\":\"c\",\"output\":\"3\"}\n"
					  "{\"id\":\"a\",\"output\":\"1\"}\n");
	llm_idset_free(done);

	/* a missing file is a fresh start; a line that is not a record names its line */
	assert_int_equal(llm_idset_new(&done), LLM_OK);
	assert_int_equal(
	    llm_resume_scan(path("absent.jsonl"), "id", NULL, 0, NULL, 1 << 20, done, &res, NULL),
	    LLM_OK);
	assert_false(res.existed);
	write_file(p, "{\"id\":\"a\"}\nnot json\n{\"id\":\"b\"}\n");
	struct llm_diag d;
	assert_int_equal(llm_resume_scan(p, "id", NULL, 0, NULL, 1 << 20, done, &res, &d),
			 LLM_ERR_JSON);
	assert_int_equal(d.line, 2);
	llm_idset_free(done);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(unset_options_are_not_sent),
	    cmocka_unit_test(sampling_options_map_onto_openai_fields),
	    cmocka_unit_test(params_are_merged_last_and_system_goes_first),
	    cmocka_unit_test(malformed_messages_are_refused),
	    cmocka_unit_test(the_canonical_form_ignores_member_order),
	    cmocka_unit_test(responses_are_read_choice_by_choice),
	    cmocka_unit_test(the_key_is_the_sha256_of_identity_endpoint_and_body),
	    cmocka_unit_test(a_stored_answer_comes_back_and_a_bad_entry_is_a_miss),
	    cmocka_unit_test(a_local_model_changes_identity_when_its_files_change),
	    cmocka_unit_test(an_id_is_the_field_or_a_hash_of_the_other_fields),
	    cmocka_unit_test(the_idset_is_a_multiset),
	    cmocka_unit_test(resuming_cuts_a_torn_line_and_drops_failed_records),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
