/* A registry as llm-serve fills it, printed in the exposition format, for the shell test that
 * hands it to promtool (tests/cli/serve-metrics.sh).  Every kind of metric, label values that
 * need escaping or are not valid UTF-8, a family pushed past its series cap, and a histogram
 * with observations in every bucket and past the last bound. */
#include "config.h"

#include <stdio.h>

#include "core/buf.h"
#include "core/err.h"
#include "serve/metrics.h"

int main(void)
{
	struct llm_metrics *r;
	struct llm_serve_metrics m;
	struct llm_diag d = {0};
	if (llm_metrics_new(&r, 8) || llm_serve_metrics_register(r, &m, &d)) {
		fprintf(stderr, "metrics-cli: %s\n", d.msg);
		return 1;
	}
	const char *ok[] = {"tiny", "/v1/chat/completions", "200"};
	const char *odd[] = {"we\"ird\\model\nname", "/v1/completions", "429"};
	const char *utf8[] = {"mod\xc3\xa8le-\xe6\xa8\xa1\xe5\x9e\x8b", "/v1/completions", "500"};
	const char *bad[] = {"bad\xff", "/v1/completions", "200"};
	llm_metric_add(m.requests, ok, 41);
	llm_metric_add(m.requests, ok, 1);
	llm_metric_add(m.requests, odd, 1);
	llm_metric_add(m.requests, utf8, 2);
	llm_metric_add(m.requests, bad, 1);
	const char *model[] = {"tiny"};
	for (int i = 0; i < 200; i++) {
		double t = 0.0001 * (double)(i * i);
		llm_metric_observe(m.ttft, model, t);
		llm_metric_observe(m.tpot, model, t / 50);
		llm_metric_observe(m.e2e, model, t * 3);
		llm_metric_observe(m.queue, model, t / 10);
	}
	llm_metric_observe(m.e2e, model, 1e6);
	llm_metric_add(m.prompt_tokens, model, 12345);
	llm_metric_add(m.generation_tokens, model, 678);
	llm_metric_set(m.running, model, 3);
	llm_metric_set(m.waiting, model, 0);
	const char *up[] = {"127.0.0.1:8001"}, *ups[] = {"127.0.0.1:8001", "error"};
	llm_metric_add(m.upstream_requests, ups, 2);
	llm_metric_add(m.upstream_retries, up, 2);
	llm_metric_add(m.upstream_fallbacks, model, 1);
	llm_metric_set(m.upstream_healthy, up, 1);
	const char *why[] = {"rpm"};
	llm_metric_add(m.rate_limited, why, 4);
	/* Past the cap of 8 series: the rest go to the overflow series. */
	for (int i = 0; i < 20; i++) {
		char name[32];
		snprintf(name, sizeof name, "model-%d", i);
		const char *v[] = {name};
		llm_metric_add(m.prompt_tokens, v, 1);
	}
	struct llm_buf out;
	llm_buf_init(&out, 0);
	enum llm_err e = llm_metrics_write(r, &out);
	if (!e)
		fwrite(out.data, 1, out.len, stdout);
	llm_buf_free(&out);
	llm_metrics_free(r);
	if (e || fflush(stdout) || ferror(stdout)) {
		fprintf(stderr, "metrics-cli: cannot write the exposition\n");
		return 1;
	}
	return 0;
}
