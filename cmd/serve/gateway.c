/* llm-serve as a gateway to upstream OpenAI-compatible servers (a --model URL, --upstream or
 * --config).  The pools are lib/serve/upstream.h's and the forwarding lib/serve/proxy.h's;
 * here are the options, the model routes that hand requests over after the checks every
 * request goes through (key, model allowed, rate limits), and the log line, metrics and
 * settled limits of each request when the proxy is done with it.
 *
 * The hot path parses nothing it does not need: without keys and limits the body goes to the
 * proxy untouched (which scans it once); with them, one scan finds the model and max_tokens.
 * The prompt is read out of the body for the log only when there is a log. */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/json.h"
#include "serve/proxy.h"
#include "serve/serve.h"
#include "serve/upstream.h"

const struct llm_opt serve_gateway_opts[] = {
    {"upstream", 0, LLM_OPT_STRING, "URL[,WEIGHT]",
     "gateway: an upstream OpenAI-compatible server, http(s)://HOST[:PORT]/v1, with a weight "
     "from 1 to 1000 (repeatable)",
     .repeat = true},
    {"config", 0, LLM_OPT_STRING, "FILE",
     "gateway: model names mapped to pools of upstreams, with weights, model names, keys and "
     "fallbacks, from a JSON file"},
    {"upstream-key-env", 0, LLM_OPT_STRING, "NAME",
     "gateway: the environment variable holding the key for --upstream and a --model URL "
     "(default: LLMOPS_API_KEY, else OPENAI_API_KEY, when set)"},
    {"balance", 0, LLM_OPT_CHOICE, "POLICY",
     "gateway: least-busy (fewest requests in flight for the weight) or weighted (round robin "
     "by weight)",
     "least-busy", "least-busy|weighted"},
    {"retries", 0, LLM_OPT_INT, "N", "gateway: retries in a pool after a failed attempt", "2",
     .min = 0, .max = 100},
    {"retry-wait-max", 0, LLM_OPT_DOUBLE, "SECONDS",
     "gateway: the longest Retry-After an upstream may ask for and be waited for", "20", .min = 0,
     .max = 3600},
    {"upstream-timeout", 0, LLM_OPT_DOUBLE, "SECONDS",
     "gateway: an attempt's wait for its first token (or whole answer, not streamed), and "
     "the longest silence of a stream after it (0: none)",
     "600", .min = 0, .max = 86400},
    {"connect-timeout", 0, LLM_OPT_DOUBLE, "SECONDS", "gateway: connecting to an upstream", "10",
     .min = 0.001, .max = 3600},
    {"cooldown", 0, LLM_OPT_DOUBLE, "SECONDS",
     "gateway: how long an upstream rests after a failure, doubling with each one in a row", "1",
     .min = 0, .max = 86400},
    {"cooldown-max", 0, LLM_OPT_DOUBLE, "SECONDS", "gateway: the longest cooldown", "60", .min = 0,
     .max = 86400},
    {"health-interval", 0, LLM_OPT_DOUBLE, "SECONDS",
     "gateway: between health probes of an upstream (GET /v1/models, never a completion; 0: "
     "none)",
     "10", .min = 0, .max = 86400},
    {0},
};

/* The most output text a log line keeps. */
#define LOG_OUTPUT_MAX (1u << 20)

struct serve_gateway {
	struct serve *S;
	struct llm_upstreams *u;
	struct llm_proxy *proxy;
};

/* One request between the handler and the proxy's done callback. */
struct call {
	struct serve *S;
	struct serve_caller who;
	struct llm_limit_ticket ticket;
	int64_t ts_ms;
	bool chat;
	struct serve_guard *guard; /* guard.c: the findings for the log (NULL: none) */
};

/* The members of a scanned body, per thread (server threads, the proxy's), reused between
 * requests and freed when the thread ends. */
static pthread_key_t members_key;
static pthread_once_t members_once = PTHREAD_ONCE_INIT;

static void members_free(void *v)
{
	llm_json_members_free(v);
	free(v);
}

static void members_init(void)
{
	pthread_key_create(&members_key, members_free);
}

/* Scan body; the members are then member()'s.  False when it is not a JSON object (or memory
 * ran out). */
static bool scan(const char *body, size_t len)
{
	pthread_once(&members_once, members_init);
	struct llm_json_members *m = pthread_getspecific(members_key);
	if (!m && (m = calloc(1, sizeof *m)) && pthread_setspecific(members_key, m)) {
		free(m);
		m = NULL;
	}
	struct llm_json_fault fault;
	return m && llm_json_scan(body, len, m, &fault) == LLM_OK;
}

static const struct llm_json_member *member(const char *name)
{
	return llm_json_get(pthread_getspecific(members_key), name);
}

/* --- the end of a request ------------------------------------------------------------------- */

static void observe(struct serve *S, const struct llm_proxy_result *res)
{
	const char *labels[] = {res->model ? res->model : S->model_name};
	if (res->status >= 200 && res->status < 300) {
		if (res->ttft_ms >= 0)
			llm_metric_observe(S->m.ttft, labels, res->ttft_ms / 1e3);
		if (res->ttft_ms >= 0 && res->completion_tokens > 1)
			llm_metric_observe(S->m.tpot, labels,
					   (res->latency_ms - res->ttft_ms) / 1e3 /
					       (double)(res->completion_tokens - 1));
		llm_metric_observe(S->m.e2e, labels, res->latency_ms / 1e3);
	}
	if (res->prompt_tokens > 0)
		llm_metric_add(S->m.prompt_tokens, labels, (double)res->prompt_tokens);
	if (res->completion_tokens > 0)
		llm_metric_add(S->m.generation_tokens, labels, (double)res->completion_tokens);
}

static void done(void *ctx, struct llm_httpd_req *r, const struct llm_proxy_result *res)
{
	struct call *c = ctx;
	struct serve *S = c->S;
	if (S->limits) {
		int64_t used = (res->prompt_tokens > 0 ? res->prompt_tokens : 0) +
			       (res->completion_tokens > 0 ? res->completion_tokens : 0);
		llm_limits_settle(S->limits, &c->ticket, used);
	}
	observe(S, res);
	if (res->status >= 200 && res->status < 300 && !atomic_load(&S->ready))
		atomic_store(&S->ready, true);

	double now = llm_httpd_now_ms();
	struct llm_reqlog_record rec = {
	    .ts_ms = c->ts_ms,
	    .request_id = c->who.request_id,
	    .endpoint = llm_httpd_path(r),
	    .model = res->model ? res->model : S->model_name,
	    .key_id = c->who.has_key ? c->who.key.id : NULL,
	    .status = res->status,
	    .latency_ms = now - llm_httpd_t0(r),
	    /* The proxy's clock starts when it has the request: add the time before that. */
	    .ttft_ms = res->ttft_ms >= 0
			   ? res->ttft_ms + fmax(0, now - llm_httpd_t0(r) - res->latency_ms)
			   : -1,
	    .prompt_tokens = res->prompt_tokens,
	    .completion_tokens = res->prompt_tokens >= 0 ? res->completion_tokens : -1,
	    .finish_reason = res->finish_reason,
	    .output = res->output_len ? res->output : NULL,
	    .output_len = res->output_len,
	    .error_code = res->error_code,
	    .error_message = res->error_message,
	};
	if (res->prompt_tokens < 0 && res->completion_tokens >= 0)
		rec.prompt_tokens = 0;
	struct llm_buf prompt, extra;
	llm_buf_init(&prompt, 0);
	llm_buf_init(&extra, 4096);
	if (S->log) {
		size_t len;
		const char *body = llm_httpd_body(r, &len);
		if (scan(body, len)) {
			const struct llm_json_member *m = member(c->chat ? "messages" : "prompt");
			if (m && c->chat) {
				rec.messages_json = m->val;
				rec.messages_len = m->val_len;
			} else if (m && m->type == LLM_JSON_STRING &&
				   llm_json_string_decode(m->val, m->val_len, &prompt) == LLM_OK) {
				rec.prompt = prompt.data ? prompt.data : "";
				rec.prompt_len = prompt.len;
			} else if (m) {
				rec.prompt = m->val; /* a list of prompts or token ids, as sent */
				rec.prompt_len = m->val_len;
			}
		}
		/* Which upstream answered, and how hard it was. */
		bool ok = true;
		if (res->upstream) {
			ok = !llm_buf_puts(&extra, "\"upstream\":") &&
			     !llm_buf_json_string(&extra, res->upstream, strlen(res->upstream));
		}
		if (ok && res->upstream_model) {
			ok = !llm_buf_puts(&extra, extra.len ? ",\"upstream_model\":"
							     : "\"upstream_model\":") &&
			     !llm_buf_json_string(&extra, res->upstream_model,
						  strlen(res->upstream_model));
		}
		if (ok)
			ok = !llm_buf_printf(&extra, "%s\"attempts\":%d,\"fallbacks\":%d",
					     extra.len ? "," : "", res->attempts, res->fallbacks);
		if (ok && res->client_gone)
			ok = !llm_buf_puts(&extra, ",\"client_gone\":true");
		if (ok)
			rec.extra_json = extra.data;
	}
	/* guard.c: --guard-output flags the answer relayed (it has gone out already) */
	serve_guard_output_text(S, &c->guard, res->output, res->output_len);
	serve_guard_log(c->guard, &rec);
	serve_record(S, &rec);
	serve_guard_free(c->guard); /* guard.c */
	llm_buf_free(&prompt);
	llm_buf_free(&extra);
	free(c);
}

/* --- the routes ----------------------------------------------------------------------------- */

static int64_t estimate_tokens(size_t body_len, bool chat)
{
	const struct llm_json_member *m = member("max_tokens");
	if (!m && chat)
		m = member("max_completion_tokens");
	int64_t out = chat ? 256 : 16;
	if (m && m->type == LLM_JSON_NUMBER && m->is_integer) {
		char num[32];
		size_t n = m->val_len < sizeof num - 1 ? m->val_len : sizeof num - 1;
		memcpy(num, m->val, n);
		num[n] = '\0';
		long long v = strtoll(num, NULL, 10);
		out = v < 0 ? 0 : v;
	}
	return (int64_t)(body_len / 4) + out;
}

static void completions(struct llm_httpd_req *r, void *ctx)
{
	struct serve_gateway *G = ctx;
	struct serve *S = G->S;
	struct call *c = malloc(sizeof *c);
	if (!c) {
		llm_httpd_error(r, 500, "server_error", NULL, "out of memory");
		return;
	}
	c->S = S;
	c->chat = !strcmp(llm_httpd_path(r), "/v1/chat/completions");
	c->guard = NULL; /* guard.c */
	c->ts_ms = llm_reqlog_now_ms() - (int64_t)(llm_httpd_now_ms() - llm_httpd_t0(r));
	memset(&c->ticket, 0, sizeof c->ticket);
	if (!serve_admit(S, r, &c->who)) {
		free(c);
		return;
	}
	size_t len;
	const char *body = llm_httpd_body(r, &len);
	if (c->who.has_key || S->limits) {
		/* A body that does not scan goes on to the proxy, which says why (400). */
		if (scan(body, len)) {
			const struct llm_json_member *m = member("model");
			struct llm_buf name;
			llm_buf_init(&name, 4096);
			bool allowed = true;
			if (c->who.has_key && m && m->type == LLM_JSON_STRING &&
			    llm_json_string_decode(m->val, m->val_len, &name) == LLM_OK) {
				allowed =
				    llm_key_allows_model(&c->who.key, name.data ? name.data : "");
			} else if (c->who.has_key && (!m || m->type == LLM_JSON_NULL)) {
				struct llm_pool *p = llm_upstreams_pool(G->u, NULL, 0);
				allowed = llm_key_allows_model(&c->who.key, llm_pool_name(p));
			}
			if (!allowed) {
				serve_fail(S, r, &c->who, 403, "permission_error",
					   "model_not_allowed",
					   "This key may not call the model `%.200s`.",
					   name.data ? name.data : "");
				llm_buf_free(&name);
				free(c);
				return;
			}
			llm_buf_free(&name);
			if (!serve_limit(S, r, &c->who, estimate_tokens(len, c->chat),
					 &c->ticket)) {
				free(c);
				return;
			}
		}
	}
	/* guard.c: --guard-input (400 guard_refused, or a redacted body to forward) */
	char *guarded = NULL;
	if (!serve_guard_body(S, r, &c->who, c->chat, &body, &len, &c->guard, &guarded)) {
		if (S->limits)
			llm_limits_settle(S->limits, &c->ticket, 0);
		serve_guard_free(c->guard);
		free(c);
		return;
	}
	llm_httpd_add_header(r, "x-request-id", c->who.request_id);
	llm_proxy_forward(G->proxy, r, c->chat ? LLM_EP_CHAT : LLM_EP_COMPLETIONS, body, len,
			  c->who.request_id, done, c);
	free(guarded); /* guard.c: the proxy has its copy */
}

static void models(struct llm_httpd_req *r, void *ctx)
{
	struct serve_gateway *G = ctx;
	struct serve *S = G->S;
	struct serve_caller who;
	if (!serve_admit(S, r, &who))
		return;
	json_t *data = json_array();
	size_t n = llm_upstreams_npools(G->u);
	for (size_t i = 0; i < n; i++) {
		const char *name = llm_pool_name(llm_upstreams_pool_at(G->u, i));
		if (!strcmp(name, "*"))
			continue;
		json_array_append_new(data, json_pack("{s:s,s:s,s:I,s:s}", "id", name, "object",
						      "model", "created", (json_int_t)S->started,
						      "owned_by", "llmops-gateway"));
	}
	if (json_array_size(data) == 0)
		json_array_append_new(data,
				      json_pack("{s:s,s:s,s:I,s:s}", "id", S->model_name, "object",
						"model", "created", (json_int_t)S->started,
						"owned_by", "llmops-gateway"));
	json_t *res = json_pack("{s:s,s:o}", "object", "list", "data", data);
	llm_httpd_add_header(r, "x-request-id", who.request_id);
	llm_httpd_reply_json(r, 200, res);
	json_decref(res);
	struct llm_reqlog_record rec;
	serve_record_init(S, r, &who, 200, &rec);
	serve_record(S, &rec);
}

static void no_tokenizer(struct llm_httpd_req *r, void *ctx)
{
	struct serve_gateway *G = ctx;
	struct serve_caller who;
	if (!serve_admit(G->S, r, &who))
		return;
	serve_fail(G->S, r, &who, 501, "invalid_request_error", "not_supported",
		   "a gateway has no tokenizer: ask the upstream server");
}

static void on_probe(void *ctx, const char *label, bool passed)
{
	(void)label;
	struct serve_gateway *G = ctx;
	if (passed && !atomic_load(&G->S->ready))
		atomic_store(&G->S->ready, true);
}

/* --- setup ---------------------------------------------------------------------------------- */

static const char *default_key_env(void)
{
	const char *names[] = {"LLMOPS_API_KEY", "OPENAI_API_KEY"};
	for (size_t i = 0; i < 2; i++) {
		const char *v = getenv(names[i]);
		if (v && *v)
			return names[i];
	}
	return NULL;
}

static int setup_upstreams(struct serve_gateway *G)
{
	struct serve *S = G->S;
	struct llm_cli *c = S->c;
	struct llm_upstreams_opts uo;
	llm_upstreams_opts_init(&uo);
	uo.balance = !strcmp(llm_args_str(&c->args, "balance"), "weighted")
			 ? LLM_BALANCE_WEIGHTED
			 : LLM_BALANCE_LEAST_BUSY;
	uo.cooldown_s = llm_args_double(&c->args, "cooldown");
	uo.cooldown_max_s = llm_args_double(&c->args, "cooldown-max");
	uo.health_interval_s = llm_args_double(&c->args, "health-interval");
	if (uo.cooldown_max_s < uo.cooldown_s)
		return llm_cli_usage(c, "--cooldown-max must not be below --cooldown");
	struct llm_diag d;
	if (llm_upstreams_new(&G->u, &uo, &d))
		return llm_cli_fail(c, &d);
	const char *config = llm_args_str(&c->args, "config");
	if (config && llm_upstreams_load(G->u, config, &d)) {
		if (d.code == LLM_ERR_IO)
			return llm_cli_fail(c, &d);
		char msg[LLM_DIAG_FILE_MAX + LLM_DIAG_MSG_MAX + 8];
		llm_diag_format(&d, msg, sizeof msg);
		return llm_cli_usage(c, "%s", msg);
	}
	/* --upstream and a --model URL make one pool: the --model-name, else every name. */
	const char *key_env = llm_args_str(&c->args, "upstream-key-env");
	if (key_env && !*key_env)
		key_env = NULL;
	else if (!key_env)
		key_env = default_key_env();
	const char *pool = llm_args_str(&c->args, "model-name");
	if (!pool)
		pool = "*";
	const char *model = llm_args_str(&c->args, "model");
	if (model && (!strncasecmp(model, "http://", 7) || !strncasecmp(model, "https://", 8)) &&
	    llm_upstreams_add_spec(G->u, pool, model, key_env, &d))
		return llm_cli_usage(c, "--model: %s", d.msg);
	size_t n = 0;
	char *const *ups = llm_args_strs(&c->args, "upstream", &n);
	for (size_t i = 0; i < n; i++)
		if (llm_upstreams_add_spec(G->u, pool, ups[i], key_env, &d))
			return llm_cli_usage(c, "%s", d.msg);
	if (llm_upstreams_check(G->u, &d)) {
		if (config && !n)
			return llm_cli_usage(c, "%s: %s", config, d.msg);
		return llm_cli_usage(c, "%s", d.msg);
	}
	return 0;
}

int serve_gateway_start(struct serve *S)
{
	struct llm_cli *c = S->c;
	struct serve_gateway *G = calloc(1, sizeof *G);
	if (!G) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	S->gateway = G;
	G->S = S;
	int st = setup_upstreams(G);
	if (st)
		return st;
	struct llm_proxy_opts po;
	llm_proxy_opts_init(&po);
	po.upstreams = G->u;
	po.metrics = &S->m;
	po.max_retries = (int)llm_args_int(&c->args, "retries");
	po.max_retry_wait_s = llm_args_double(&c->args, "retry-wait-max");
	po.timeout_s = llm_args_double(&c->args, "upstream-timeout");
	po.connect_timeout_s = llm_args_double(&c->args, "connect-timeout");
	po.probe_timeout_s = fmin(5, fmax(0.5, llm_args_double(&c->args, "health-interval")));
	po.max_output = S->log ? LOG_OUTPUT_MAX : 0;
	po.seed = (uint64_t)S->started;
	po.on_probe = on_probe;
	po.on_probe_ctx = G;
	struct llm_diag d;
	if (llm_proxy_new(&G->proxy, &po, &d))
		return llm_cli_fail(c, &d);
	const struct llm_httpd_route routes[] = {
	    {"POST", "/v1/chat/completions", completions, G},
	    {"POST", "/v1/completions", completions, G},
	    {"GET", "/v1/models", models, G},
	    {"POST", "/tokenize", no_tokenizer, G},
	    {"POST", "/detokenize", no_tokenizer, G},
	};
	for (size_t i = 0; i < sizeof routes / sizeof *routes; i++)
		if (llm_httpd_add_route(S->httpd, &routes[i], &d))
			return llm_cli_fail(c, &d);
	return 0;
}

size_t serve_gateway_busy(struct serve *S)
{
	return S->gateway && S->gateway->proxy ? llm_proxy_inflight(S->gateway->proxy) : 0;
}

void serve_gateway_stop(struct serve *S)
{
	struct serve_gateway *G = S->gateway;
	if (!G)
		return;
	llm_proxy_free(G->proxy);
	llm_upstreams_free(G->u);
	free(G);
	S->gateway = NULL;
}
