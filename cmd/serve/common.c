/* What every request of llm-serve goes through whatever answers it: the key, the model name,
 * the rate limits, error answers and their log records; and the routes of every mode
 * (/health, /ready, /metrics, /v1/feedback). */
#include "config.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "serve/serve.h"

void serve_record_init(const struct serve *S, struct llm_httpd_req *r,
		       const struct serve_caller *who, int status, struct llm_reqlog_record *rec)
{
	double now = llm_httpd_now_ms();
	*rec = (struct llm_reqlog_record){
	    .ts_ms = llm_reqlog_now_ms() - (int64_t)(now - llm_httpd_t0(r)),
	    .request_id = who->request_id,
	    .endpoint = llm_httpd_path(r),
	    .model = S->model_name,
	    .key_id = who->has_key ? who->key.id : NULL,
	    .status = status,
	    .latency_ms = now - llm_httpd_t0(r),
	    .ttft_ms = -1,
	    .prompt_tokens = -1,
	    .completion_tokens = -1,
	};
}

void serve_record(struct serve *S, const struct llm_reqlog_record *rec)
{
	char status[16];
	snprintf(status, sizeof status, "%d", rec->status);
	const char *labels[] = {S->model_name, rec->endpoint, status};
	llm_metric_add(S->m.requests, labels, 1);
	if (S->log) {
		struct llm_diag d;
		/* A failed write is counted by the log (llm_reqlog_counts); the request itself
		 * has been answered, and saying so on stderr per request would flood it. */
		llm_reqlog_write(S->log, rec, &d);
	}
}

static void vfail(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		  int status, const char *type, const char *code, const char *fmt, va_list ap)
{
	char msg[1024];
	vsnprintf(msg, sizeof msg, fmt, ap);
	llm_httpd_add_header(r, "x-request-id", who->request_id);
	llm_httpd_error(r, status, type, code, "%s", msg);
	struct llm_reqlog_record rec;
	serve_record_init(S, r, who, status, &rec);
	rec.error_code = code ? code : type;
	rec.error_message = msg;
	serve_record(S, &rec);
}

void serve_fail(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		int status, const char *type, const char *code, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(S, r, who, status, type, code, fmt, ap);
	va_end(ap);
}

bool serve_admit(struct serve *S, struct llm_httpd_req *r, struct serve_caller *who)
{
	memset(who, 0, sizeof *who);
	llm_reqlog_request_id(who->request_id);
	snprintf(who->client, sizeof who->client, "ip:%s", llm_httpd_client(r));
	if (S->keys) {
		const char *auth = llm_httpd_header(r, "Authorization");
		size_t n = 0;
		const char *key = auth ? llm_keys_bearer(auth, &n) : NULL;
		if (!key) {
			serve_fail(S, r, who, 401, "invalid_request_error", "invalid_api_key",
				   "You didn't provide an API key. Provide it in the "
				   "Authorization header as 'Bearer KEY'.");
			return false;
		}
		if (!llm_keys_check(S->keys, key, n, &who->key)) {
			serve_fail(S, r, who, 401, "invalid_request_error", "invalid_api_key",
				   "Incorrect API key provided.");
			return false;
		}
		who->has_key = true;
		snprintf(who->client, sizeof who->client, "%s", who->key.id);
	}
	return true;
}

bool serve_check_model(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		       const json_t *body)
{
	json_t *m = body ? json_object_get(body, "model") : NULL;
	if (m && !json_is_null(m)) {
		if (!json_is_string(m)) {
			serve_fail(S, r, who, 400, "invalid_request_error", "invalid_type",
				   "'model' must be a string");
			return false;
		}
		const char *name = json_string_value(m);
		if (*name && strcmp(name, S->model_name) != 0) {
			serve_fail(
			    S, r, who, 404, "invalid_request_error", "model_not_found",
			    "The model `%.200s` does not exist; this server serves `%.200s`.", name,
			    S->model_name);
			return false;
		}
	}
	if (who->has_key && !llm_key_allows_model(&who->key, S->model_name)) {
		serve_fail(S, r, who, 403, "permission_error", "model_not_allowed",
			   "This key may not call the model `%.200s`.", S->model_name);
		return false;
	}
	return true;
}

/* OpenAI's x-ratelimit-* reset values are durations such as "6m0s" or "1.5s". */
static void duration(char *out, size_t n, double s)
{
	if (s >= 60)
		snprintf(out, n, "%dm%ds", (int)(s / 60), (int)fmod(s, 60));
	else
		snprintf(out, n, "%.3gs", s);
}

static void rate_headers(struct llm_httpd_req *r, const struct llm_limit_result *res)
{
	char v[64];
	if (res->limit_requests > 0) {
		snprintf(v, sizeof v, "%lld", (long long)res->limit_requests);
		llm_httpd_add_header(r, "x-ratelimit-limit-requests", v);
		snprintf(v, sizeof v, "%lld", (long long)res->remaining_requests);
		llm_httpd_add_header(r, "x-ratelimit-remaining-requests", v);
		duration(v, sizeof v, res->reset_requests);
		llm_httpd_add_header(r, "x-ratelimit-reset-requests", v);
	}
	if (res->limit_tokens > 0) {
		snprintf(v, sizeof v, "%lld", (long long)res->limit_tokens);
		llm_httpd_add_header(r, "x-ratelimit-limit-tokens", v);
		snprintf(v, sizeof v, "%lld", (long long)res->remaining_tokens);
		llm_httpd_add_header(r, "x-ratelimit-remaining-tokens", v);
		duration(v, sizeof v, res->reset_tokens);
		llm_httpd_add_header(r, "x-ratelimit-reset-tokens", v);
	}
}

bool serve_limit(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who,
		 int64_t est_tokens, struct llm_limit_ticket *ticket)
{
	memset(ticket, 0, sizeof *ticket);
	if (!S->limits)
		return true;
	struct llm_limit_rule rule = {LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT, LLM_LIMIT_DEFAULT};
	if (who->has_key) {
		rule.rpm = who->key.rpm;
		rule.tpm = who->key.tpm;
		rule.budget_tokens = who->key.budget_tokens;
	}
	struct llm_limit_result res;
	if (llm_limits_acquire(S->limits, who->client, &rule, est_tokens < 0 ? 0 : est_tokens,
			       ticket, &res) != LLM_OK) {
		serve_fail(S, r, who, 500, "server_error", NULL, "the rate limiter failed");
		return false;
	}
	rate_headers(r, &res);
	if (res.verdict == LLM_LIMIT_OK)
		return true;
	const char *code = llm_limit_verdict_code(res.verdict);
	const char *labels[] = {code};
	llm_metric_add(S->m.rate_limited, labels, 1);
	if (res.retry_after >= 0) {
		char v[32];
		snprintf(v, sizeof v, "%.0f", ceil(res.retry_after));
		llm_httpd_add_header(r, "Retry-After", v);
	}
	bool budget = res.verdict == LLM_LIMIT_BUDGET;
	const char *type = budget ? "insufficient_quota"
			   : (res.verdict == LLM_LIMIT_TPM || res.verdict == LLM_LIMIT_GLOBAL_TPM)
			       ? "tokens"
			       : "requests";
	if (budget)
		serve_fail(S, r, who, 429, type, code,
			   "You exceeded your token budget (%lld of %lld used).",
			   (long long)res.budget_used, (long long)res.budget_tokens);
	else
		serve_fail(S, r, who, 429, type, code,
			   "Rate limit reached (%s). Please try again in %.3gs.",
			   llm_limit_verdict_reason(res.verdict), res.retry_after);
	return false;
}

json_t *serve_body_json(struct serve *S, struct llm_httpd_req *r, const struct serve_caller *who)
{
	size_t len;
	const char *body = llm_httpd_body(r, &len);
	json_error_t je;
	json_t *o = json_loadb(body, len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
	if (!json_is_object(o)) {
		if (o)
			serve_fail(S, r, who, 400, "invalid_request_error", "invalid_json",
				   "The request body must be a JSON object.");
		else
			serve_fail(S, r, who, 400, "invalid_request_error", "invalid_json",
				   "We could not parse the JSON body of your request: %s (line %d, "
				   "column %d).",
				   je.text, je.line, je.column);
		json_decref(o);
		return NULL;
	}
	return o;
}

/* --- the routes of every mode ---------------------------------------------------------------- */

static void reply_text_json(struct llm_httpd_req *r, int status, const char *text)
{
	llm_httpd_reply(r, status, "application/json", text, strlen(text));
}

static void health(struct llm_httpd_req *r, void *ctx)
{
	(void)ctx;
	/* Liveness only: nothing here touches the model or an upstream. */
	reply_text_json(r, 200, "{\"status\":\"ok\"}");
}

static void ready(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	if (atomic_load(&S->draining))
		reply_text_json(r, 503, "{\"status\":\"draining\"}");
	else if (!atomic_load(&S->ready))
		reply_text_json(r, 503, "{\"status\":\"loading\"}");
	else
		reply_text_json(r, 200, "{\"status\":\"ready\"}");
}

static void metrics(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	struct llm_buf b;
	llm_buf_init(&b, 0);
	if (llm_metrics_write(S->registry, &b) == LLM_OK)
		llm_httpd_reply(r, 200, LLM_METRICS_CONTENT_TYPE, b.data ? b.data : "", b.len);
	else
		llm_httpd_error(r, 500, "server_error", NULL, "out of memory");
	llm_buf_free(&b);
}

/* A response id ("chatcmpl-X", "cmpl-X") names the same request as its log id ("req-X"). */
static void log_id(const char *id, char *out, size_t n)
{
	const char *prefixes[] = {"chatcmpl-", "cmpl-"};
	for (size_t i = 0; i < 2; i++) {
		size_t k = strlen(prefixes[i]);
		if (!strncmp(id, prefixes[i], k)) {
			snprintf(out, n, "req-%s", id + k);
			return;
		}
	}
	snprintf(out, n, "%s", id);
}

static void feedback(struct llm_httpd_req *r, void *ctx)
{
	struct serve *S = ctx;
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	json_t *o = serve_body_json(S, r, &who);
	if (!o)
		return;
	json_t *id = json_object_get(o, "request_id");
	json_t *score = json_object_get(o, "score");
	json_t *comment = json_object_get(o, "comment");
	if (!json_is_string(id) || json_string_length(id) == 0 || json_string_length(id) > 200)
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_request_id",
			   "'request_id' must be the id of a response (a string)");
	else if (!json_is_number(score) || !isfinite(json_number_value(score)))
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_score",
			   "'score' must be a number");
	else if (comment && !json_is_null(comment) &&
		 (!json_is_string(comment) || json_string_length(comment) > 65536))
		serve_fail(S, r, &who, 400, "invalid_request_error", "invalid_comment",
			   "'comment' must be a string of at most 65536 bytes");
	else if (!S->log)
		serve_fail(S, r, &who, 503, "unavailable", "no_log",
			   "feedback is written to the request log: start llm-serve with --log");
	else {
		char rid[256];
		log_id(json_string_value(id), rid, sizeof rid);
		struct llm_diag d;
		if (llm_reqlog_feedback(S->log, rid, json_number_value(score),
					json_is_string(comment) ? json_string_value(comment) : NULL,
					0, &d)) {
			serve_fail(S, r, &who, 500, "server_error", "log_failed",
				   "the feedback could not be written: %s", d.msg);
		} else {
			json_t *ok = json_pack("{s:s,s:s,s:b}", "object", "feedback", "request_id",
					       rid, "recorded", 1);
			llm_httpd_add_header(r, "x-request-id", who.request_id);
			llm_httpd_reply_json(r, 200, ok);
			json_decref(ok);
		}
	}
	json_decref(o);
}

int serve_common_routes(struct serve *S)
{
	const struct llm_httpd_route routes[] = {
	    {"GET", "/health", health, S},
	    {"GET", "/ready", ready, S},
	    {"GET", "/metrics", metrics, S},
	    {"POST", "/v1/feedback", feedback, S},
	};
	struct llm_diag d;
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (llm_httpd_add_route(S->httpd, &routes[i], &d))
			return llm_cli_fail(S->c, &d);
	return 0;
}
