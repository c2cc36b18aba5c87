#!/bin/sh
# The Prometheus registry of lib/serve/metrics (through tests/unit/metrics-cli) against
# Prometheus's own parser and linter: `promtool check metrics` (Debian's prometheus; scripts/deps
# test installs it) must accept what llm-serve's /metrics will serve, escapes and overflow
# series included, and must reject what breaks the rules, so the check is known to bite.
. "$top_srcdir/tests/cli/lib.sh"
cli=$top_builddir/tests/unit/metrics-cli

t 'promtool accepts the exposition of the standard serving metrics, with no lint warning' '
	"$cli" > metrics.txt
	run promtool check metrics < metrics.txt
	expect_status 0
	[ ! -s out ] && [ ! -s err ]
'

t 'the exposition holds every standard family, escaped values and the overflow series' '
	"$cli" > metrics.txt
	for f in llmops_requests_total llmops_time_to_first_token_seconds \
		llmops_time_per_output_token_seconds llmops_e2e_request_latency_seconds \
		llmops_queue_time_seconds llmops_prompt_tokens_total llmops_generation_tokens_total \
		llmops_requests_running llmops_requests_waiting llmops_upstream_requests_total \
		llmops_upstream_retries_total llmops_upstream_fallbacks_total \
		llmops_upstream_healthy llmops_rate_limited_total; do
		grep -q "^# TYPE $f " metrics.txt || { echo "no $f"; exit 1; }
	done
	grep -qF "model=\"we\\\"ird\\\\model\\nname\"" metrics.txt
	grep -qF "llmops_prompt_tokens_total{model=\"__overflow__\"} 13" metrics.txt
	grep -qF "llmops_e2e_request_latency_seconds_bucket{model=\"tiny\",le=\"+Inf\"} 201" metrics.txt
	grep -qF "llmops_e2e_request_latency_seconds_count{model=\"tiny\"} 201" metrics.txt
'

t 'promtool rejects a counter without _total and a raw newline in a label (the check bites)' '
	printf "# HELP a x\n# TYPE a counter\na{m=\"x\"} 1\n" > bad1.txt
	run promtool check metrics < bad1.txt
	[ "$status" != 0 ]
	printf "# HELP a_total x\n# TYPE a_total counter\na_total{m=\"x\ny\"} 1\n" > bad2.txt
	run promtool check metrics < bad2.txt
	[ "$status" != 0 ]
'

done_testing
