/* Unit tests of llm_backend_cancel and of calling the backend from inside on_delta, as
 * llm-serve's worker does: the engine ends a cancelled request at its next step with what it
 * generated and finish_reason "abort" (a waiting one with nothing), new requests submitted from
 * on_delta are answered as if submitted alone, and the HTTP backend drops the transfer of a
 * cancelled request (the server sees its connection closed) and answers "cancelled".
 *
 * The model is a tiny random one saved here with a byte-level BPE tokenizer trained here; the
 * HTTP server is a thread that streams chunks until its client goes away. */
#include "config.h"

#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>
#include <jansson.h>

#include "backend/backend.h"
#include "core/buf.h"
#include "engine/model.h"
#include "engine/modeldir.h"
#include "text/bpe.h"
#include "text/bpe_train.h"

static char dir[] = "/tmp/llmops-backend-cancel-XXXXXX";
static char model_dir[256], tok_path[256];

static int setup(void **state)
{
	(void)state;
	assert_non_null(mkdtemp(dir));
	static const char *const specials[] = {"<|endoftext|>"};
	struct llm_bpe_train_opts o = {
	    .vocab_size = 300, .min_frequency = 1, .specials = specials, .nspecials = 1};
	struct llm_bpe_trainer *t;
	struct llm_diag d;
	assert_int_equal(llm_bpe_trainer_new(&t, &o, &d), LLM_OK);
	const char *text = "The cat sat on the mat. Hello there, how are you today? 12 345 6789.";
	for (int i = 0; i < 4; i++)
		assert_int_equal(llm_bpe_trainer_feed(t, text, strlen(text), &d), LLM_OK);
	assert_int_equal(llm_bpe_trainer_train(t, &d), LLM_OK);
	json_t *j = llm_bpe_trainer_json(t);
	snprintf(tok_path, sizeof tok_path, "%s/tokenizer.json", dir);
	assert_int_equal(json_dump_file(j, tok_path, 0), 0);
	json_decref(j);
	llm_bpe_trainer_free(t);
	struct llm_bpe *bpe;
	assert_int_equal(llm_bpe_open_file(&bpe, tok_path, &d), LLM_OK);
	uint32_t eos;
	assert_true(llm_bpe_special_id(bpe, "<|endoftext|>", &eos));
	struct llm_model_config c = {
	    .vocab_size = (int)llm_bpe_vocab_size(bpe),
	    .hidden_size = 32,
	    .intermediate_size = 48,
	    .num_hidden_layers = 2,
	    .num_attention_heads = 4,
	    .num_key_value_heads = 2,
	    .max_position_embeddings = 256,
	    .rms_norm_eps = 1e-5,
	    .rope_theta = 10000.0,
	    .tie_word_embeddings = true,
	    .bos_token_id = -1,
	    .eos_token_id = (int)eos,
	};
	llm_bpe_free(bpe);
	struct llm_model *m;
	assert_int_equal(llm_model_new(&m, &c, &d), LLM_OK);
	llm_model_init_random(m, 11, 0.02f);
	struct llm_modeldir_save_opts so = {.tokenizer = tok_path};
	snprintf(model_dir, sizeof model_dir, "%s/model", dir);
	assert_int_equal(llm_modeldir_save(m, model_dir, &so, &d), LLM_OK);
	llm_model_free(m);
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

/* What on_delta does: count pieces per tag, cancel or submit when told. */
struct ctl {
	struct llm_backend *b;
	struct llm_buf text[4]; /* per tag 0..3 */
	int pieces[4];
	uint64_t cancel_tag;
	int cancel_after;	 /* pieces of cancel_tag; 0: never */
	const char *submit_body; /* submitted as tag 2 after the first piece of tag 1 */
	bool submitted;
};

static void on_delta(void *ctx, uint64_t tag, int choice, const char *text, size_t n)
{
	struct ctl *c = ctx;
	assert_int_equal(choice, 0);
	assert_true(tag < 4);
	llm_buf_append(&c->text[tag], text, n);
	c->pieces[tag]++;
	if (c->cancel_after && tag == c->cancel_tag && c->pieces[tag] == c->cancel_after)
		assert_int_equal(llm_backend_cancel(c->b, tag), LLM_OK);
	if (c->submit_body && !c->submitted && tag == 1) {
		c->submitted = true;
		assert_int_equal(llm_backend_submit(c->b, 2, LLM_EP_COMPLETIONS, c->submit_body,
						    strlen(c->submit_body), NULL),
				 LLM_OK);
	}
}

static struct llm_backend *open_engine(struct ctl *c, int concurrency)
{
	memset(c, 0, sizeof *c);
	for (int i = 0; i < 4; i++)
		llm_buf_init(&c->text[i], 0);
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = model_dir;
	o.concurrency = concurrency;
	o.threads = 1;
	o.on_delta = on_delta;
	o.on_delta_ctx = c;
	struct llm_diag d;
	if (llm_backend_open(&c->b, &o, &d))
		fail_msg("llm_backend_open: %s", d.msg);
	return c->b;
}

static void close_engine(struct ctl *c)
{
	llm_backend_close(c->b);
	for (int i = 0; i < 4; i++)
		llm_buf_free(&c->text[i]);
}

static void submit(struct llm_backend *b, uint64_t tag, const char *body)
{
	struct llm_diag d;
	if (llm_backend_submit(b, tag, LLM_EP_COMPLETIONS, body, strlen(body), &d))
		fail_msg("submit: %s", d.msg);
}

static json_t *result_json(const struct llm_result *r)
{
	assert_int_equal(r->err, LLM_OK);
	json_t *o = json_loadb(r->body, r->body_len, 0, NULL);
	assert_non_null(o);
	return o;
}

static const char *choice_field(json_t *o, const char *k)
{
	return json_string_value(
	    json_object_get(json_array_get(json_object_get(o, "choices"), 0), k));
}

static json_int_t completion_tokens(json_t *o)
{
	return json_integer_value(
	    json_object_get(json_object_get(o, "usage"), "completion_tokens"));
}

#define LONG                                                                                       \
	"{\"prompt\": \"The cat\", \"max_tokens\": 200, \"ignore_eos\": true, \"temperature\": 0}"

static void a_running_request_cancelled_from_on_delta_ends_with_abort(void **state)
{
	(void)state;
	struct ctl c;
	struct llm_backend *b = open_engine(&c, 2);
	c.cancel_tag = 1;
	c.cancel_after = 5;
	submit(b, 1, LONG);
	submit(b, 0, "{\"prompt\": \"Hello\", \"max_tokens\": 30, \"ignore_eos\": true}");
	struct llm_result r;
	int seen = 0;
	while (llm_backend_next(b, &r, NULL) == 1) {
		json_t *o = result_json(&r);
		if (r.tag == 1) {
			assert_string_equal(choice_field(o, "finish_reason"), "abort");
			/* Ended at the next step: no more than a step past the cancel. */
			assert_true(completion_tokens(o) >= 5 && completion_tokens(o) < 20);
			assert_string_equal(choice_field(o, "text"), c.text[1].data);
		} else {
			/* The other request of the batch is untouched. */
			assert_string_equal(choice_field(o, "finish_reason"), "length");
			assert_int_equal(completion_tokens(o), 30);
		}
		seen++;
		json_decref(o);
		llm_result_clear(&r);
	}
	assert_int_equal(seen, 2);
	close_engine(&c);
}

static void a_waiting_request_cancelled_ends_with_nothing(void **state)
{
	(void)state;
	struct ctl c;
	struct llm_backend *b = open_engine(&c, 1);
	submit(b, 0, "{\"prompt\": \"The cat\", \"max_tokens\": 20, \"ignore_eos\": true}");
	submit(b, 1, LONG);
	assert_int_equal(llm_backend_cancel(b, 1), LLM_OK);
	assert_int_equal(llm_backend_cancel(b, 1), LLM_OK); /* twice is fine */
	assert_int_equal(llm_backend_cancel(b, 3), LLM_ERR_NOT_FOUND);
	struct llm_result r;
	assert_int_equal(llm_backend_next(b, &r, NULL), 1);
	assert_int_equal(r.tag, 1); /* at once, before the one decoding */
	json_t *o = result_json(&r);
	assert_string_equal(choice_field(o, "finish_reason"), "abort");
	assert_int_equal(completion_tokens(o), 0);
	assert_string_equal(choice_field(o, "text"), "");
	assert_int_equal(c.pieces[1], 0);
	json_decref(o);
	llm_result_clear(&r);
	assert_int_equal(llm_backend_next(b, &r, NULL), 1);
	assert_int_equal(r.tag, 0);
	o = result_json(&r);
	assert_int_equal(completion_tokens(o), 20);
	json_decref(o);
	llm_result_clear(&r);
	/* Finished and returned: nothing left to cancel. */
	assert_int_equal(llm_backend_cancel(b, 0), LLM_ERR_NOT_FOUND);
	close_engine(&c);
}

static void a_request_submitted_from_on_delta_answers_as_alone(void **state)
{
	(void)state;
	const char *second =
	    "{\"prompt\": \"Hello there\", \"max_tokens\": 12, \"temperature\": 0, "
	    "\"ignore_eos\": true}";
	struct ctl c;
	struct llm_backend *b = open_engine(&c, 1);
	submit(b, 2, second);
	struct llm_result r;
	assert_int_equal(llm_backend_next(b, &r, NULL), 1);
	json_t *alone = result_json(&r);
	llm_result_clear(&r);
	close_engine(&c);

	b = open_engine(&c, 2);
	c.submit_body = second;
	submit(b, 1, "{\"prompt\": \"The cat\", \"max_tokens\": 40, \"ignore_eos\": true}");
	int seen = 0;
	while (llm_backend_next(b, &r, NULL) == 1) {
		json_t *o = result_json(&r);
		if (r.tag == 2) {
			assert_string_equal(choice_field(o, "text"), choice_field(alone, "text"));
			assert_int_equal(completion_tokens(o), 12);
		}
		seen++;
		json_decref(o);
		llm_result_clear(&r);
	}
	assert_true(c.submitted);
	assert_int_equal(seen, 2);
	json_decref(alone);
	close_engine(&c);
}

/* --- HTTP: a server that streams until its client goes away ---------------------------------- */

struct streamer {
	int lfd, port;
	atomic_bool client_gone;
	atomic_int chunks;
};

static void *streamer_main(void *arg)
{
	struct streamer *s = arg;
	int fd = accept(s->lfd, NULL, NULL);
	if (fd < 0)
		return NULL;
	char buf[4096];
	ssize_t n = read(fd, buf, sizeof buf); /* the request (small enough for one read) */
	(void)n;
	const char *head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
			   "Connection: close\r\n\r\n";
	const char *ev = "data: {\"id\":\"x\",\"object\":\"chat.completion.chunk\",\"created\":1,"
			 "\"model\":\"m\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"},"
			 "\"finish_reason\":null}]}\n\n";
	bool ok = send(fd, head, strlen(head), MSG_NOSIGNAL) > 0;
	for (int i = 0; ok && i < 2000; i++) {
		ok = send(fd, ev, strlen(ev), MSG_NOSIGNAL) > 0;
		if (ok)
			atomic_fetch_add(&s->chunks, 1);
		struct timespec ts = {0, 10 * 1000000L};
		nanosleep(&ts, NULL);
	}
	atomic_store(&s->client_gone, !ok);
	close(fd);
	return NULL;
}

struct http_ctl {
	struct llm_backend *b;
	int pieces;
};

static void on_delta_http(void *ctx, uint64_t tag, int choice, const char *text, size_t n)
{
	(void)choice;
	(void)text;
	(void)n;
	struct http_ctl *c = ctx;
	if (++c->pieces == 3)
		assert_int_equal(llm_backend_cancel(c->b, tag), LLM_OK);
}

static void an_http_transfer_cancelled_is_dropped(void **state)
{
	(void)state;
	struct streamer s = {0};
	s.lfd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	assert_int_equal(bind(s.lfd, (struct sockaddr *)&a, sizeof a), 0);
	assert_int_equal(listen(s.lfd, 4), 0);
	socklen_t len = sizeof a;
	getsockname(s.lfd, (struct sockaddr *)&a, &len);
	s.port = ntohs(a.sin_port);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, streamer_main, &s), 0);

	char url[64];
	snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", s.port);
	struct http_ctl c = {0};
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	o.ref = url;
	o.model_name = "m";
	o.stream = true;
	o.on_delta = on_delta_http;
	o.on_delta_ctx = &c;
	struct llm_diag d;
	assert_int_equal(llm_backend_open(&c.b, &o, &d), LLM_OK);
	const char *body = "{\"messages\": [{\"role\": \"user\", \"content\": \"hi\"}]}";
	assert_int_equal(llm_backend_submit(c.b, 7, LLM_EP_CHAT, body, strlen(body), &d), LLM_OK);
	struct llm_result r;
	assert_int_equal(llm_backend_next(c.b, &r, &d), 1);
	assert_int_equal(r.tag, 7);
	assert_int_not_equal(r.err, LLM_OK);
	assert_string_equal(r.error_code, "cancelled");
	assert_int_equal(r.attempts, 1); /* never retried */
	llm_result_clear(&r);
	assert_int_equal(llm_backend_pending(c.b), 0);
	/* The server sees its client go: the transfer was dropped, not left to run. */
	pthread_join(t, NULL);
	assert_true(atomic_load(&s.client_gone));
	assert_true(atomic_load(&s.chunks) < 2000);
	llm_backend_close(c.b);
	close(s.lfd);

	/* A request still waiting (never started) is answered at once. */
	assert_int_equal(llm_backend_open(&c.b, &o, &d), LLM_OK);
	assert_int_equal(llm_backend_submit(c.b, 8, LLM_EP_CHAT, body, strlen(body), &d), LLM_OK);
	assert_int_equal(llm_backend_cancel(c.b, 8), LLM_OK);
	assert_int_equal(llm_backend_cancel(c.b, 9), LLM_ERR_NOT_FOUND);
	assert_int_equal(llm_backend_next(c.b, &r, &d), 1);
	assert_string_equal(r.error_code, "cancelled");
	llm_result_clear(&r);
	llm_backend_close(c.b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(a_running_request_cancelled_from_on_delta_ends_with_abort),
	    cmocka_unit_test(a_waiting_request_cancelled_ends_with_nothing),
	    cmocka_unit_test(a_request_submitted_from_on_delta_answers_as_alone),
	    cmocka_unit_test(an_http_transfer_cancelled_is_dropped),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
