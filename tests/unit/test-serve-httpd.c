/* Unit tests for lib/serve/httpd: a server on a free loopback port, spoken to with libcurl:
 * routes and the errors the server gives itself, body and header caps, answers given later
 * from another thread, event streams fed from another thread (in order, with pings, without
 * spinning while they wait), a client that leaves, and a server that drains. */
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
#include <sys/resource.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "core/buf.h"
#include "serve/httpd.h"

/* What the handlers saw, and what the close callbacks said. */
static atomic_int closed_ok, closed_gone, rejected;
static atomic_int last_reject_status;
static char seen_body[256];
static size_t seen_len;

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static void on_close(struct llm_httpd_req *r, void *data, bool completed)
{
	(void)r;
	(void)data;
	if (completed)
		atomic_fetch_add(&closed_ok, 1);
	else
		atomic_fetch_add(&closed_gone, 1);
}

static void on_reject(void *ctx, struct llm_httpd_req *r)
{
	(void)ctx;
	atomic_fetch_add(&rejected, 1);
	atomic_store(&last_reject_status, llm_httpd_status(r));
}

static void hello(struct llm_httpd_req *r, void *ctx)
{
	(void)ctx;
	size_t n;
	const char *b = llm_httpd_body(r, &n);
	seen_len = n < sizeof seen_body ? n : sizeof seen_body - 1;
	memcpy(seen_body, b, seen_len);
	seen_body[seen_len] = '\0';
	llm_httpd_set_data(r, NULL, on_close);
	llm_httpd_add_header(r, "x-test", "yes");
	json_t *v = json_pack("{s:s,s:I}", "path", llm_httpd_path(r), "len", (json_int_t)n);
	llm_httpd_reply_json(r, 200, v);
	json_decref(v);
}

/* Answers 202 from another thread, 100 ms later. */
static void *later_thread(void *arg)
{
	struct llm_httpd_req *r = arg;
	sleep_ms(100);
	llm_httpd_reply(r, 202, "text/plain", "later", 5);
	llm_httpd_req_unref(r);
	return NULL;
}

static void later(struct llm_httpd_req *r, void *ctx)
{
	(void)ctx;
	llm_httpd_set_data(r, NULL, on_close);
	llm_httpd_req_ref(r);
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, later_thread, r), 0);
	pthread_detach(t);
}

/* A stream fed from another thread: ?n=N events "i", ?gap=MS between them (the first after
 * the gap too); until the client leaves when ?n=0.  Each feeder has its own request, count and
 * gap (a feeder of the last test may still be finishing when the next test's stream starts);
 * what the tests look at is the latest stream's pushed and refused. */
struct feed {
	atomic_int pushed;
	atomic_bool refused;
};

static struct feed feed_state;

struct feeder {
	struct llm_httpd_req *r;
	int n, gap;
};

static void *feed_thread(void *arg)
{
	struct feeder *fd = arg;
	struct feed *f = &feed_state;
	char ev[32];
	bool refused = false;
	for (int i = 0; fd->n == 0 || i < fd->n; i++) {
		sleep_ms(fd->gap);
		int k = snprintf(ev, sizeof ev, "%d", i);
		if (!llm_httpd_sse_data(fd->r, ev, (size_t)k)) {
			refused = true;
			atomic_store(&f->refused, true);
			break;
		}
		atomic_fetch_add(&f->pushed, 1);
	}
	if (!refused) {
		llm_httpd_sse_raw(fd->r, "data: [DONE]\n\n", 14);
		llm_httpd_sse_end(fd->r);
	}
	llm_httpd_req_unref(fd->r);
	free(fd);
	return NULL;
}

static void stream(struct llm_httpd_req *r, void *ctx)
{
	(void)ctx;
	const char *n = llm_httpd_query(r, "n"), *gap = llm_httpd_query(r, "gap");
	struct feeder *fd = malloc(sizeof *fd);
	assert_non_null(fd);
	fd->r = r;
	fd->n = n ? (int)strtol(n, NULL, 10) : 3;
	fd->gap = gap ? (int)strtol(gap, NULL, 10) : 0;
	atomic_store(&feed_state.pushed, 0);
	atomic_store(&feed_state.refused, false);
	llm_httpd_set_data(r, NULL, on_close);
	llm_httpd_req_ref(r);
	assert_true(llm_httpd_sse_start(r));
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, feed_thread, fd), 0);
	pthread_detach(t);
}

static struct llm_httpd *h;
static char base[64];

static int setup(void **state)
{
	(void)state;
	curl_global_init(CURL_GLOBAL_DEFAULT);
	struct llm_httpd_opts o;
	llm_httpd_opts_init(&o);
	o.threads = 2;
	o.max_body = 100;
	o.max_header = 1024;
	o.ping_s = 0.1;
	o.on_reject = on_reject;
	struct llm_diag d;
	assert_int_equal(llm_httpd_new(&h, &o, &d), LLM_OK);
	const struct llm_httpd_route routes[] = {
	    {"GET", "/hello", hello, NULL},    {"POST", "/hello", hello, NULL},
	    {"GET", "/later", later, NULL},    {"GET", "/stream", stream, NULL},
	    {"PUT", "/only-put", hello, NULL}, {NULL, "/any/*", hello, NULL},
	};
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		assert_int_equal(llm_httpd_add_route(h, &routes[i], &d), LLM_OK);
	assert_int_equal(llm_httpd_start(h, &d), LLM_OK);
	assert_true(llm_httpd_port(h) > 0);
	snprintf(base, sizeof base, "http://127.0.0.1:%d", llm_httpd_port(h));
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	llm_httpd_free(h);
	curl_global_cleanup();
	return 0;
}

/* --- a client -------------------------------------------------------------------------------- */

struct reply {
	long status;
	struct llm_buf body, headers;
	size_t abort_after; /* stop reading after this many body bytes; 0: never */
	CURLcode rc;
};

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;
	llm_buf_append(&r->body, p, size * n);
	if (r->abort_after && r->body.len >= r->abort_after)
		return 0;
	return size * n;
}

static size_t on_header(char *p, size_t size, size_t n, void *ud)
{
	struct reply *r = ud;
	llm_buf_append(&r->headers, p, size * n);
	return size * n;
}

/* method NULL: GET, or POST when body is given. */
static void request(struct reply *r, const char *method, const char *path, const char *body,
		    long body_len, struct curl_slist *hdrs)
{
	char url[256];
	snprintf(url, sizeof url, "%s%s", base, path);
	llm_buf_init(&r->body, 0);
	llm_buf_init(&r->headers, 0);
	CURL *c = curl_easy_init();
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, r);
	curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(c, CURLOPT_HEADERDATA, r);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	if (body) {
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, body_len);
	}
	if (method)
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
	if (hdrs)
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
	r->rc = curl_easy_perform(c);
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r->status);
	curl_easy_cleanup(c);
}

static void reply_free(struct reply *r)
{
	llm_buf_free(&r->body);
	llm_buf_free(&r->headers);
}

static void assert_error(struct reply *r, const char *code)
{
	json_t *o = json_loads(r->body.data ? r->body.data : "", 0, NULL);
	json_t *e = json_object_get(o, "error");
	assert_true(json_is_string(json_object_get(e, "message")));
	assert_true(json_is_string(json_object_get(e, "type")));
	assert_true(json_is_null(json_object_get(e, "param")));
	assert_string_equal(json_string_value(json_object_get(e, "code")), code);
	json_decref(o);
}

/* Wait (at most 5 s) until *v reaches want. */
static void wait_int(atomic_int *v, int want)
{
	for (int i = 0; i < 500 && atomic_load(v) < want; i++)
		sleep_ms(10);
	assert_true(atomic_load(v) >= want);
}

/* --- tests ---------------------------------------------------------------------------------- */

static void routes_by_method_and_path(void **state)
{
	(void)state;
	struct reply r = {0};
	int ok0 = atomic_load(&closed_ok);
	request(&r, NULL, "/hello?x=1", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body.data, "\"path\":\"/hello\""));
	assert_non_null(strstr(r.headers.data, "x-test: yes"));
	assert_non_null(strstr(r.headers.data, "Content-Type: application/json"));
	reply_free(&r);
	wait_int(&closed_ok, ok0 + 1);

	request(&r, NULL, "/any/thing/at/all", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	reply_free(&r);
}

static void the_server_answers_404_and_405_itself(void **state)
{
	(void)state;
	struct reply r = {0};
	int rej0 = atomic_load(&rejected);
	request(&r, NULL, "/nothing", NULL, 0, NULL);
	assert_int_equal(r.status, 404);
	assert_error(&r, "not_found");
	reply_free(&r);
	wait_int(&rejected, rej0 + 1);
	assert_int_equal(atomic_load(&last_reject_status), 404);

	request(&r, NULL, "/only-put", NULL, 0, NULL);
	assert_int_equal(r.status, 405);
	assert_error(&r, "method_not_allowed");
	assert_non_null(strstr(r.headers.data, "Allow: PUT"));
	reply_free(&r);
}

static void bodies_reach_the_handler_whole_and_capped(void **state)
{
	(void)state;
	struct reply r = {0};
	request(&r, NULL, "/hello", "{\"a\": 1}", 8, NULL);
	assert_int_equal(r.status, 200);
	assert_int_equal(seen_len, 8);
	assert_string_equal(seen_body, "{\"a\": 1}");
	reply_free(&r);

	char big[300];
	memset(big, 'x', sizeof big);
	request(&r, NULL, "/hello", big, 101, NULL);
	assert_int_equal(r.status, 413);
	assert_error(&r, "request_too_large");
	reply_free(&r);

	/* Chunked: no length to refuse early, so the cap applies while reading. */
	struct curl_slist *hdrs = curl_slist_append(NULL, "Transfer-Encoding: chunked");
	request(&r, NULL, "/hello", big, sizeof big, hdrs);
	assert_int_equal(r.status, 413);
	reply_free(&r);
	request(&r, NULL, "/hello", big, 100, hdrs);
	assert_int_equal(r.status, 200);
	assert_int_equal(seen_len, 100);
	reply_free(&r);
	curl_slist_free_all(hdrs);
}

static void headers_over_the_cap_are_431(void **state)
{
	(void)state;
	char line[2048];
	memset(line, 'a', sizeof line);
	memcpy(line, "X-Big: ", 7);
	line[sizeof line - 1] = '\0';
	struct curl_slist *hdrs = curl_slist_append(NULL, line);
	struct reply r = {0};
	request(&r, NULL, "/hello", NULL, 0, hdrs);
	assert_int_equal(r.status, 431);
	reply_free(&r);
	curl_slist_free_all(hdrs);
}

static void an_answer_may_come_later_from_another_thread(void **state)
{
	(void)state;
	struct reply r = {0};
	int ok0 = atomic_load(&closed_ok);
	request(&r, NULL, "/later", NULL, 0, NULL);
	assert_int_equal(r.status, 202);
	assert_string_equal(r.body.data, "later");
	reply_free(&r);
	wait_int(&closed_ok, ok0 + 1);
}

static void a_stream_carries_every_event_in_order(void **state)
{
	(void)state;
	struct reply r = {0};
	request(&r, NULL, "/stream?n=200&gap=0", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.headers.data, "Content-Type: text/event-stream"));
	struct llm_buf want;
	llm_buf_init(&want, 0);
	for (int i = 0; i < 200; i++)
		llm_buf_printf(&want, "data: %d\n\n", i);
	llm_buf_puts(&want, "data: [DONE]\n\n");
	assert_string_equal(r.body.data, want.data);
	llm_buf_free(&want);
	reply_free(&r);
}

static double cpu_seconds(void)
{
	struct rusage u;
	getrusage(RUSAGE_SELF, &u);
	return (double)u.ru_utime.tv_sec + u.ru_utime.tv_usec / 1e6 + (double)u.ru_stime.tv_sec +
	       u.ru_stime.tv_usec / 1e6;
}

static void a_waiting_stream_is_pinged_and_does_not_spin(void **state)
{
	(void)state;
	struct reply r = {0};
	double cpu0 = cpu_seconds();
	/* Two events 600 ms apart: the connection waits suspended in between. */
	request(&r, NULL, "/stream?n=2&gap=600", NULL, 0, NULL);
	double cpu = cpu_seconds() - cpu0;
	assert_int_equal(r.status, 200);
	const char *ping = strstr(r.body.data, ": ping\n\n");
	const char *e0 = strstr(r.body.data, "data: 0\n\n"),
		   *e1 = strstr(r.body.data, "data: 1\n\n");
	assert_non_null(ping);
	assert_non_null(e0);
	assert_non_null(e1);
	assert_true(e0 < e1);
	/* 1.2 s of waiting; a loop that polled would burn about as much CPU. */
	assert_true(cpu < 0.6);
	reply_free(&r);
}

static void a_client_that_leaves_ends_the_stream_for_the_producer(void **state)
{
	(void)state;
	struct reply r = {.abort_after = 20};
	int gone0 = atomic_load(&closed_gone);
	request(&r, NULL, "/stream?n=0&gap=5", NULL, 0, NULL);
	assert_int_equal(r.rc, CURLE_WRITE_ERROR);
	wait_int(&closed_gone, gone0 + 1);
	/* The producer is told within a few pushes, and stops. */
	for (int i = 0; i < 500 && !atomic_load(&feed_state.refused); i++)
		sleep_ms(10);
	assert_true(atomic_load(&feed_state.refused));
	reply_free(&r);
}

static void error_bodies_have_openais_shape(void **state)
{
	(void)state;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	assert_int_equal(llm_httpd_error_body(&b, "invalid_request_error", NULL, "bad \"x\""),
			 LLM_OK);
	assert_string_equal(b.data, "{\"error\":{\"message\":\"bad \\\"x\\\"\",\"type\":"
				    "\"invalid_request_error\",\"param\":null,\"code\":null}}");
	llm_buf_free(&b);
}

static void options_that_cannot_work_are_usage_errors(void **state)
{
	(void)state;
	struct llm_httpd_opts o;
	llm_httpd_opts_init(&o);
	struct llm_httpd *x;
	struct llm_diag d;
	o.threads = 0;
	assert_int_equal(llm_httpd_new(&x, &o, &d), LLM_ERR_USAGE);
	o.threads = 1;
	o.tls_cert = "cert.pem";
	assert_int_equal(llm_httpd_new(&x, &o, &d), LLM_ERR_USAGE);
	o.tls_key = "/nonexistent/key.pem";
	o.tls_cert = "/nonexistent/cert.pem";
	assert_int_equal(llm_httpd_new(&x, &o, &d), LLM_ERR_IO);
	assert_non_null(strstr(d.file, "/nonexistent/cert.pem"));
	/* The port the shared server holds cannot be bound again. */
	o.tls_cert = o.tls_key = NULL;
	o.port = llm_httpd_port(h);
	assert_int_equal(llm_httpd_new(&x, &o, &d), LLM_OK);
	assert_int_equal(llm_httpd_start(x, &d), LLM_ERR_IO);
	llm_httpd_free(x);
}

static void a_quiesced_server_takes_no_new_connection(void **state)
{
	(void)state;
	struct llm_httpd_opts o;
	llm_httpd_opts_init(&o);
	o.threads = 1;
	struct llm_httpd *x;
	struct llm_diag d;
	assert_int_equal(llm_httpd_new(&x, &o, &d), LLM_OK);
	const struct llm_httpd_route rt = {"GET", "/hello", hello, NULL};
	assert_int_equal(llm_httpd_add_route(x, &rt, &d), LLM_OK);
	assert_int_equal(llm_httpd_start(x, &d), LLM_OK);
	char saved[64];
	memcpy(saved, base, sizeof saved);
	snprintf(base, sizeof base, "http://127.0.0.1:%d", llm_httpd_port(x));
	struct reply r = {0};
	request(&r, NULL, "/hello", NULL, 0, NULL);
	assert_int_equal(r.status, 200);
	reply_free(&r);
	/* The request ends on the server just after the client has the answer. */
	for (int i = 0; i < 500 && llm_httpd_inflight(x) > 0; i++)
		sleep_ms(10);
	assert_int_equal(llm_httpd_inflight(x), 0);
	llm_httpd_quiesce(x);
	request(&r, NULL, "/hello", NULL, 0, NULL);
	assert_int_equal(r.rc, CURLE_COULDNT_CONNECT);
	reply_free(&r);
	memcpy(base, saved, sizeof saved);
	llm_httpd_free(x);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(routes_by_method_and_path),
	    cmocka_unit_test(the_server_answers_404_and_405_itself),
	    cmocka_unit_test(bodies_reach_the_handler_whole_and_capped),
	    cmocka_unit_test(headers_over_the_cap_are_431),
	    cmocka_unit_test(an_answer_may_come_later_from_another_thread),
	    cmocka_unit_test(a_stream_carries_every_event_in_order),
	    cmocka_unit_test(a_waiting_stream_is_pinged_and_does_not_spin),
	    cmocka_unit_test(a_client_that_leaves_ends_the_stream_for_the_producer),
	    cmocka_unit_test(error_bodies_have_openais_shape),
	    cmocka_unit_test(options_that_cannot_work_are_usage_errors),
	    cmocka_unit_test(a_quiesced_server_takes_no_new_connection),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
