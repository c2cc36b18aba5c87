/* A test helper that drives lib/backend/backend.h as llm-gen will, so the shell tests check
 * the library against a server (tests/cli/fake-openai.py):
 *
 *     backend-cli --ref REF [--model-name M] [--key K] [--endpoint chat|completions]
 *                 [--stream] [--concurrency N] [--max-retries N] [--max-retry-after S]
 *                 [--timeout S] [--rpm N] [--tpm N] < bodies.jsonl
 *
 * Each line of standard input is one request body, submitted with its line number (from 0)
 * as the tag; all are submitted first, then the results are taken as they finish.  One JSON
 * line per result: tag, err (the llm_err name), status, attempts, ttft (measured or not),
 * ttft_ok (0 <= ttft <= latency), error_code, error_message, content (the first choice's
 * message content or text), finish_reason, usage, deltas (the text the on_delta callback saw
 * for choice 0) and response (the whole body).  Exit 0 when the backend itself worked (the
 * requests may have failed), 2 on bad usage, 3 when opening or the backend failed. */
#include "config.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "core/buf.h"

#define MAX_REQUESTS 4096

struct deltas {
	struct llm_buf text[MAX_REQUESTS];
};

static void on_delta(void *ctx, uint64_t tag, int choice, const char *text, size_t n)
{
	struct deltas *d = ctx;
	if (tag < MAX_REQUESTS && choice == 0)
		llm_buf_append(&d->text[tag], text, n);
}

static int fail(const struct llm_diag *d)
{
	char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 32];
	llm_diag_format(d, msg, sizeof msg);
	fprintf(stderr, "backend-cli: %s\n", msg);
	return 3;
}

static bool num(const char *s, double *out)
{
	char *end;
	*out = strtod(s, &end);
	return end != s && !*end;
}

static void print_result(const struct llm_result *r, struct deltas *d)
{
	json_t *o = json_object();
	json_object_set_new(o, "tag", json_integer((json_int_t)r->tag));
	json_object_set_new(o, "err", json_string(llm_err_name(r->err)));
	json_object_set_new(o, "status", json_integer(r->status));
	json_object_set_new(o, "attempts", json_integer(r->attempts));
	json_object_set_new(o, "ttft", json_boolean(r->ttft_ms >= 0));
	json_object_set_new(o, "ttft_ok",
			    json_boolean(r->ttft_ms < 0 || r->ttft_ms <= r->latency_ms));
	json_object_set_new(o, "latency_ok", json_boolean(r->latency_ms >= 0));
	json_object_set_new(o, "error_code", json_string(r->error_code));
	json_object_set_new(o, "error_message",
			    r->error_message ? json_string(r->error_message) : json_null());
	json_t *body = r->body ? json_loadb(r->body, r->body_len, 0, NULL) : NULL;
	json_t *c0 = json_array_get(json_object_get(body, "choices"), 0);
	json_t *content = json_object_get(json_object_get(c0, "message"), "content");
	if (!content)
		content = json_object_get(c0, "text");
	json_object_set(o, "content", content ? content : json_null());
	json_t *fr = json_object_get(c0, "finish_reason");
	json_object_set(o, "finish_reason", fr ? fr : json_null());
	json_t *usage = json_object_get(body, "usage");
	json_object_set(o, "usage", usage ? usage : json_null());
	if (r->tag < MAX_REQUESTS)
		json_object_set_new(o, "deltas",
				    json_stringn(d->text[r->tag].data ? d->text[r->tag].data : "",
						 d->text[r->tag].len));
	json_object_set_new(o, "response", body ? body : json_null());
	char *s = json_dumps(o, JSON_COMPACT);
	puts(s);
	free(s);
	json_decref(o);
}

int main(int argc, char **argv)
{
	struct llm_backend_opts o;
	llm_backend_opts_init(&o);
	enum llm_endpoint ep = LLM_EP_CHAT;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
		double x;
		if (!strcmp(a, "--stream")) {
			o.stream = true;
			continue;
		}
		if (!v) {
			fprintf(stderr, "backend-cli: %s wants a value\n", a);
			return 2;
		}
		i++;
		if (!strcmp(a, "--ref"))
			o.ref = v;
		else if (!strcmp(a, "--model-name"))
			o.model_name = v;
		else if (!strcmp(a, "--key"))
			o.api_key = v;
		else if (!strcmp(a, "--endpoint") &&
			 (!strcmp(v, "chat") || !strcmp(v, "completions")))
			ep = !strcmp(v, "chat") ? LLM_EP_CHAT : LLM_EP_COMPLETIONS;
		else if (!strcmp(a, "--concurrency") && num(v, &x))
			o.concurrency = (int)x;
		else if (!strcmp(a, "--max-retries") && num(v, &x))
			o.max_retries = (int)x;
		else if (!strcmp(a, "--max-retry-after") && num(v, &x))
			o.max_retry_after_s = x;
		else if (!strcmp(a, "--timeout") && num(v, &x))
			o.timeout_s = x;
		else if (!strcmp(a, "--rpm") && num(v, &x))
			o.rpm = x;
		else if (!strcmp(a, "--tpm") && num(v, &x))
			o.tpm = x;
		else {
			fprintf(stderr, "backend-cli: bad option %s %s\n", a, v);
			return 2;
		}
	}
	struct deltas *d = calloc(1, sizeof *d);
	if (!d)
		return 3;
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		llm_buf_init(&d->text[i], 1u << 20);
	o.on_delta = on_delta;
	o.on_delta_ctx = d;

	struct llm_diag diag;
	struct llm_backend *b;
	int rc = 0;
	if (llm_backend_open(&b, &o, &diag) != LLM_OK) {
		fail(&diag);
		rc = diag.code == LLM_ERR_USAGE ? 2 : 3;
		goto out;
	}
	char line[65536];
	uint64_t tag = 0;
	while (fgets(line, sizeof line, stdin) && tag < MAX_REQUESTS) {
		size_t n = strlen(line);
		while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
			line[--n] = '\0';
		if (llm_backend_submit(b, tag++, ep, line, n, &diag) != LLM_OK) {
			fail(&diag);
			rc = diag.code == LLM_ERR_USAGE ? 2 : 3;
			break;
		}
	}
	struct llm_result r = {0};
	int got = 0;
	while (!rc && (got = llm_backend_next(b, &r, &diag)) == 1) {
		print_result(&r, d);
		llm_result_clear(&r);
	}
	if (!rc && got < 0)
		rc = fail(&diag);
	if (!rc && llm_backend_pending(b) != 0) {
		fprintf(stderr, "backend-cli: %zu requests still pending\n",
			llm_backend_pending(b));
		rc = 3;
	}
	llm_backend_close(b);
out:
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		llm_buf_free(&d->text[i]);
	free(d);
	return rc;
}
