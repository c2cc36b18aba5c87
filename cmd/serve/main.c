/* llm-serve's run: the options, the pieces put together (log, keys, limits, metrics, the HTTP
 * server), the mode that answers the model routes, and the signals: SIGHUP reopens the log
 * (and reloads the key file, and looks at a registry alias again), SIGTERM or SIGINT drains
 * (no new requests, those under way finish) and exits 0; a second one, or --drain-timeout,
 * cancels what is left.
 *
 * Signals are blocked in every thread and taken by the main thread with sigtimedwait, so no
 * handler runs in the middle of anything. */
#include "config.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include "core/atomic.h"
#include "serve/serve.h"

static const struct llm_opt server_opts[] = {
    {"model", 'm', LLM_OPT_STRING, "REF",
     "what to serve: a model directory, a .gguf file, a NAME-VERSION.tar.gz artifact, a "
     "registry:NAME@REF, or an http(s)://HOST[:PORT]/v1 URL (gateway)"},
    {"model-name", 0, LLM_OPT_STRING, "NAME",
     "the model name clients call and responses carry (default: the reference as given)"},
    {"host", 0, LLM_OPT_STRING, "ADDR", "the address to listen on (0.0.0.0 or :: for all)",
     "127.0.0.1"},
    {"port", 'p', LLM_OPT_INT, "N", "the port to listen on (0: any free port)", "8000", .min = 0,
     .max = 65535},
    {"port-file", 0, LLM_OPT_STRING, "FILE", "write the port listened on to FILE once listening"},
    {"threads", 't', LLM_OPT_INT, "N", "HTTP threads, each with its own epoll loop", "4", .min = 1,
     .max = 1024},
    {"tls-cert", 0, LLM_OPT_STRING, "FILE", "serve HTTPS with this PEM certificate (chain)"},
    {"tls-key", 0, LLM_OPT_STRING, "FILE", "the PEM private key of --tls-cert"},
    {"max-body", 0, LLM_OPT_SIZE, "SIZE", "the largest request body (413 beyond)", "8M"},
    {"max-header", 0, LLM_OPT_SIZE, "SIZE", "the largest request line and headers (431 beyond)",
     "32K"},
    {"timeout", 0, LLM_OPT_INT, "SECONDS",
     "close a connection idle this long (a slow client; 0: never)", "60", .min = 0, .max = 86400},
    {"max-connections", 0, LLM_OPT_INT, "N",
     "open connections at most (0: libmicrohttpd's default)", "0", .min = 0, .max = 1000000},
    {"ping", 0, LLM_OPT_DOUBLE, "SECONDS",
     "a \": ping\" comment on an event stream silent this long (0: none)", "15", .min = 0,
     .max = 3600},
    {"api-keys", 0, LLM_OPT_STRING, "FILE",
     "require a key from FILE (one per line, with optional name, rpm, tpm, budget_tokens, "
     "models settings)"},
    {"rpm", 0, LLM_OPT_INT, "N",
     "requests per minute per key (or per address without keys; 0: none)", "0", .min = 0,
     .max = 1000000000},
    {"tpm", 0, LLM_OPT_INT, "N", "tokens per minute per key (or per address; 0: none)", "0",
     .min = 0, .max = 1000000000000},
    {"budget-tokens", 0, LLM_OPT_INT, "N", "tokens a key may use in all (0: none)", "0", .min = 0,
     .max = 1000000000000000},
    {"global-rpm", 0, LLM_OPT_INT, "N", "requests per minute for the whole server (0: none)", "0",
     .min = 0, .max = 1000000000},
    {"global-tpm", 0, LLM_OPT_INT, "N", "tokens per minute for the whole server (0: none)", "0",
     .min = 0, .max = 1000000000000},
    {"log", 0, LLM_OPT_STRING, "FILE",
     "append one JSON line per request (and per feedback) to FILE ('-': standard output)"},
    {"log-content", 0, LLM_OPT_CHOICE, "MODE",
     "prompts and outputs in the log: full, hash (SHA-256 and length) or none", "full",
     "full|hash|none"},
    {"log-sync", 0, LLM_OPT_CHOICE, "MODE",
     "when log lines reach the disk: none (the kernel decides), interval (every second), every",
     "none", "none|interval|every"},
    {"drain-timeout", 0, LLM_OPT_DOUBLE, "SECONDS",
     "on SIGTERM, how long requests under way may take before they are cancelled", "60", .min = 0,
     .max = 86400},
    {0},
};

static bool is_url(const char *s)
{
	return s && (strncasecmp(s, "http://", 7) == 0 || strncasecmp(s, "https://", 8) == 0);
}

static double mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int setup_log(struct serve *S)
{
	struct llm_cli *c = S->c;
	const char *path = llm_args_str(&c->args, "log");
	if (!path)
		return 0;
	struct llm_reqlog_config cfg = {.path = path};
	llm_reqlog_content_parse(llm_args_str(&c->args, "log-content"), &cfg.content);
	const char *sync = llm_args_str(&c->args, "log-sync");
	cfg.sync = !strcmp(sync, "every")      ? LLM_REQLOG_SYNC_EVERY
		   : !strcmp(sync, "interval") ? LLM_REQLOG_SYNC_INTERVAL
					       : LLM_REQLOG_SYNC_NONE;
	struct llm_diag d;
	if (llm_reqlog_open(&S->log, &cfg, &d))
		return llm_cli_fail(c, &d);
	return 0;
}

static int setup_limits(struct serve *S)
{
	struct llm_cli *c = S->c;
	struct llm_diag d;
	const char *keys = llm_args_str(&c->args, "api-keys");
	if (keys && llm_keys_open(&S->keys, keys, &d))
		return llm_cli_fail(c, &d);
	struct llm_limits_config cfg = {0};
	/* 0 on the command line means no limit; the module's "none" for a default is < 0. */
	int64_t rpm = llm_args_int(&c->args, "rpm"), tpm = llm_args_int(&c->args, "tpm");
	int64_t budget = llm_args_int(&c->args, "budget-tokens");
	cfg.defaults.rpm = rpm > 0 ? rpm : -1;
	cfg.defaults.tpm = tpm > 0 ? tpm : -1;
	cfg.defaults.budget_tokens = budget > 0 ? budget : -1;
	cfg.global_rpm = llm_args_int(&c->args, "global-rpm");
	cfg.global_tpm = llm_args_int(&c->args, "global-tpm");
	bool any = S->keys || rpm || tpm || budget || cfg.global_rpm || cfg.global_tpm;
	if (!any)
		return 0;
	if (llm_limits_new(&S->limits, &cfg)) {
		llm_cli_error(c, "out of memory");
		return LLM_EXIT_IO;
	}
	return 0;
}

static void on_reject(void *ctx, struct llm_httpd_req *r)
{
	struct serve *S = ctx;
	const char *path = llm_httpd_path(r);
	/* Probes are not requests worth a log line. */
	if (!strcmp(path, "/health") || !strcmp(path, "/ready") || !strcmp(path, "/metrics"))
		return;
	char id[LLM_REQLOG_ID_MAX];
	llm_reqlog_request_id(id);
	int status = llm_httpd_status(r);
	struct llm_reqlog_record rec = {
	    .ts_ms = llm_reqlog_now_ms() - (int64_t)(llm_httpd_now_ms() - llm_httpd_t0(r)),
	    .request_id = id,
	    .endpoint = path,
	    .model = S->model_name,
	    .status = status,
	    .latency_ms = llm_httpd_now_ms() - llm_httpd_t0(r),
	    .ttft_ms = -1,
	    .prompt_tokens = -1,
	    .completion_tokens = -1,
	    .error_code = status == 404	  ? "not_found"
			  : status == 405 ? "method_not_allowed"
			  : status == 413 ? "request_too_large"
			  : status == 431 ? "headers_too_large"
					  : "shutting_down",
	    .error_message = "answered by the server before any handler",
	};
	serve_record(S, &rec);
}

static int write_port_file(struct serve *S, const char *path)
{
	char text[32];
	int n = snprintf(text, sizeof text, "%d\n", llm_httpd_port(S->httpd));
	struct llm_diag d;
	if (llm_atomic_write_file(path, text, (size_t)n, &d))
		return llm_cli_fail(S->c, &d);
	return 0;
}

static int setup_httpd(struct serve *S)
{
	struct llm_cli *c = S->c;
	struct llm_httpd_opts o;
	llm_httpd_opts_init(&o);
	o.host = llm_args_str(&c->args, "host");
	o.port = (int)llm_args_int(&c->args, "port");
	o.threads = (int)llm_args_int(&c->args, "threads");
	o.max_body = (size_t)llm_args_size(&c->args, "max-body");
	o.max_header = (size_t)llm_args_size(&c->args, "max-header");
	o.timeout_s = (unsigned)llm_args_int(&c->args, "timeout");
	o.max_connections = (unsigned)llm_args_int(&c->args, "max-connections");
	o.ping_s = llm_args_double(&c->args, "ping");
	o.tls_cert = llm_args_str(&c->args, "tls-cert");
	o.tls_key = llm_args_str(&c->args, "tls-key");
	o.on_reject = on_reject;
	o.on_reject_ctx = S;
	struct llm_diag d;
	if (llm_httpd_new(&S->httpd, &o, &d))
		return llm_cli_fail(c, &d);
	return 0;
}

enum { SIG_NONE, SIG_STOP, SIG_HUP };

static int wait_signal(const sigset_t *set, double seconds)
{
	struct timespec ts = {(time_t)seconds, (long)((seconds - (double)(time_t)seconds) * 1e9)};
	siginfo_t info;
	int s = sigtimedwait(set, &info, &ts);
	if (s == SIGHUP)
		return SIG_HUP;
	if (s == SIGTERM || s == SIGINT)
		return SIG_STOP;
	return SIG_NONE;
}

static void reopen(struct serve *S)
{
	struct llm_diag d;
	if (S->log && llm_reqlog_reopen(S->log, &d))
		llm_cli_fail(S->c, &d);
	if (S->keys && llm_keys_reload(S->keys, &d))
		llm_cli_fail(S->c, &d);
	serve_refresh_poke(S); /* a registry alias may have moved */
}

static size_t busy(struct serve *S)
{
	return llm_httpd_inflight(S->httpd) + (S->local ? serve_local_busy(S) : 0) +
	       (S->gateway ? serve_gateway_busy(S) : 0);
}

static int run_serve(struct llm_cli *c)
{
	struct serve S = {.c = c};
	S.started = (int64_t)time(NULL);
	const char *model = llm_args_str(&c->args, "model");
	bool gateway = is_url(model) || llm_args_given(&c->args, "upstream") ||
		       llm_args_given(&c->args, "config");
	if (!model && !gateway)
		return llm_cli_usage(c, "--model is required (a model, or a URL with --upstream)");
	if (c->args.noperands)
		return llm_cli_usage(c, "unexpected operand '%s'", c->args.operands[0]);
	if (!llm_args_str(&c->args, "tls-cert") != !llm_args_str(&c->args, "tls-key"))
		return llm_cli_usage(c, "--tls-cert and --tls-key go together");
	S.model_name = llm_args_str(&c->args, "model-name");
	if (!S.model_name)
		S.model_name = model ? model : "gateway";

	/* Signals: blocked here, before any thread exists, so every thread inherits the mask and
	 * only sigtimedwait below takes them.  A client that goes away must not kill us. */
	sigset_t set;
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	int st = 0;
	struct llm_diag d;
	if (llm_metrics_new(&S.registry, 0) || llm_serve_metrics_register(S.registry, &S.m, &d)) {
		llm_cli_error(c, "cannot set up the metrics");
		st = LLM_EXIT_IO;
	}
	if (!st)
		st = setup_log(&S);
	if (!st)
		st = setup_limits(&S);
	if (!st)
		st = serve_guard_setup(&S); /* guard.c */
	if (!st)
		st = setup_httpd(&S);
	if (!st)
		st = serve_common_routes(&S);
	if (!st)
		st = gateway ? serve_gateway_start(&S) : serve_local_start(&S);
	if (!st && llm_httpd_start(S.httpd, &d))
		st = llm_cli_fail(c, &d);
	const char *port_file = llm_args_str(&c->args, "port-file");
	if (!st && port_file)
		st = write_port_file(&S, port_file);
	if (!st && !c->quiet)
		llm_cli_error(c, "listening on %s://%s:%d",
			      llm_args_str(&c->args, "tls-cert") ? "https" : "http",
			      llm_args_str(&c->args, "host"), llm_httpd_port(S.httpd));

	/* Serve until a signal (or a model that fails to load). */
	while (!st) {
		int sig = wait_signal(&set, 0.2);
		if (sig == SIG_HUP)
			reopen(&S);
		if (atomic_load(&S.failed)) {
			st = llm_cli_fail(c, &S.fail_diag);
			break;
		}
		if (sig == SIG_STOP)
			break;
	}
	if (!st && S.httpd) {
		/* Drain: no new connection or request; what is under way finishes. */
		atomic_store(&S.draining, true);
		llm_httpd_quiesce(S.httpd);
		double until = mono_s() + llm_args_double(&c->args, "drain-timeout");
		bool forced = false;
		while (busy(&S) > 0) {
			int sig = wait_signal(&set, 0.05);
			if (sig == SIG_HUP)
				reopen(&S);
			if (sig == SIG_STOP || mono_s() > until) {
				if (!c->quiet)
					llm_cli_error(c, "%s: cancelling %zu requests",
						      sig == SIG_STOP ? "second signal"
								      : "drain timeout",
						      busy(&S));
				forced = true;
				break;
			}
		}
		if (forced && S.local)
			serve_local_abort(&S);
	}
	/* The HTTP server goes first (its close callbacks still reach the modes), then the
	 * modes, then what they log to. */
	llm_httpd_free(S.httpd);
	if (S.local)
		serve_local_stop(&S);
	if (S.gateway)
		serve_gateway_stop(&S);
	llm_reqlog_close(S.log);
	llm_limits_free(S.limits);
	llm_keys_free(S.keys);
	serve_guard_stop(&S); /* guard.c */
	llm_metrics_free(S.registry);
	return st;
}

const struct llm_verb llm_serve_verb = {
    "serve",
    "Serve a model over the OpenAI API, or front upstream OpenAI-compatible servers.",
    "--model REF [OPTIONS]",
    "Serves POST /v1/chat/completions and /v1/completions (streamed as server-sent events\n"
    "when asked), GET /v1/models, POST /tokenize and /detokenize, POST /v1/feedback, and the\n"
    "probes GET /health, /ready and /metrics.  A local model (a directory, a .gguf file, an\n"
    "artifact or a registry: reference) is decoded by the embedded engine, --parallel requests\n"
    "together; a URL, --upstream or --config makes a gateway to other servers instead.  Each\n"
    "request is a JSON line in --log.  SIGHUP reopens the log; SIGTERM finishes the requests\n"
    "under way and exits 0.",
    {server_opts, serve_local_opts, serve_gateway_opts, serve_guard_opts, llm_cli_opts_base},
    run_serve,
};
