#!/bin/sh
# llm-monitor summarize --prom against Prometheus's own tools: promtool's linter accepts the
# textfile; and a real Prometheus, started here on loopback, scrapes llm-serve's /metrics and
# reads the textfile through prometheus-node-exporter's textfile collector, until both the
# serving series and the llmops_monitor_ series can be queried from its HTTP API.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_API_KEY OPENAI_API_KEY LLMOPS_SERVE_TEST_DELAY_MS
log=$data/monitor/summarize/requests.jsonl
sample=$top_srcdir/data/sample/support.jsonl

# Every process started here is stopped at the end, by its id.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# wait_for COMMAND...: until it succeeds (at most 60 s).
wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "gave up waiting for: $*"; return 1; }
		sleep 0.1
	done
}

# A free loopback port (for servers that cannot be told to pick one themselves).
free_port() {
	/usr/bin/python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

t 'promtool accepts the textfile with no lint warning' '
	llm-monitor summarize --by model,key_id,status --window 5m \
		--prices "$data/monitor/summarize/prices.json" --prom m.prom "$log" > rows.jsonl
	run promtool check metrics < m.prom
	expect_status 0
	[ ! -s out ] && [ ! -s err ]
	for f in requests_total errors_total responses_total error_codes_total \
		request_latency_seconds time_to_first_token_seconds prompt_tokens_total \
		completion_tokens_total cost_total refusals_total flags_total feedback_total \
		feedback_negative_total feedback_score_mean last_event_timestamp_seconds; do
		grep -q "^# TYPE llmops_monitor_$f " m.prom || { echo "no $f"; false; }
	done
	# Totals over the whole log, whatever the window; seconds, not milliseconds.
	total=$(jq -s "[.[] | select(.kind != \"feedback\")] | length" "$log")
	sum=$(awk "/^llmops_monitor_requests_total/ { s += \$2 } END { print s }" m.prom)
	[ "$sum" = "$total" ]
	max=$(jq -s "[.[] | .latency_ms // empty] | max / 1000" "$log")
	awk -v max="$max" "/^llmops_monitor_request_latency_seconds\\{/ { if (\$2 > max * 1.01) bad = 1 } END { exit bad }" m.prom
	# No timestamps: one value after the series.
	grep -v "^#" m.prom | awk "{ if (index(\$0, \"}\")) { sub(/.*}/, \"\"); if (NF != 1) bad = 1 } else if (NF != 2) bad = 1 } END { exit bad }"
'

t 'key_id is summed over unless --prom-key-id; status stays a label; no temporary is left' '
	llm-monitor summarize --by model,key_id --prom m.prom "$log" > /dev/null
	! grep -q key_id m.prom
	grep -q "llmops_monitor_requests_total{model=\"gpt-4o\"} 10$" m.prom
	llm-monitor summarize --by model,key_id --prom m.prom --prom-key-id "$log" > /dev/null
	grep -q "llmops_monitor_requests_total{model=\"gpt-4o\",key_id=\"team-b\"}" m.prom
	grep -q "llmops_monitor_responses_total{model=\"support-bot@3\",key_id=\"team-a\",code=\"500\"} 2" m.prom
	[ "$(ls -A | grep -cv "^m.prom$")" = 0 ]
	promtool check metrics < m.prom
'

t 'a label value with quotes, a backslash and a newline is escaped' '
	printf "%s\n" "{\"model\":\"we\\\"ird\\\\m\\nx\",\"status\":200,\"latency_ms\":5}" > odd.jsonl
	llm-monitor summarize --by model --prom m.prom odd.jsonl > /dev/null
	grep -qF "model=\"we\\\"ird\\\\m\\nx\"" m.prom
	promtool check metrics < m.prom
'

t 'Prometheus scrapes llm-serve and reads the textfile through node_exporter' '
	for tool in prometheus prometheus-node-exporter curl; do
		command -v $tool > /dev/null || { echo "$tool missing"; false; }
	done
	# A model far smaller than the tiny preset, served on a free port.
	llm-prep tokenizer train -q -V 512 --out tok.json "$sample"
	printf "%s" "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":2,\"num_attention_heads\":4,\"num_key_value_heads\":2,\"max_position_embeddings\":256,\"vocab_size\":512,\"tie_word_embeddings\":true,\"rms_norm_eps\":1e-05}" > cfg.json
	llm-tune init -q --preset cfg.json --tokenizer tok.json --out model
	llm-serve --model model --model-name tiny --port 0 --port-file serve.port \
		--log serve.jsonl --engine-threads 1 > serve.out 2> serve.err &
	echo $! >> "$scratch/pids"
	wait_for test -s serve.port
	url=http://127.0.0.1:$(cat serve.port)
	wait_for curl -sf "$url/ready" -o /dev/null
	for i in 1 2 3; do
		curl -sf -H "Content-Type: application/json" -d "{\"model\":\"tiny\",\"prompt\":\"Hello $i\",\"max_tokens\":4}" "$url/v1/completions" > /dev/null
	done
	curl -s -H "Content-Type: application/json" -d "{\"model\":\"tiny\"" "$url/v1/completions" > /dev/null || true
	wait_for test -s serve.jsonl
	# The request log summarized into the collector folder.
	mkdir textfiles
	llm-monitor summarize --by model,status --prom textfiles/llm-monitor.prom serve.jsonl > rows.jsonl
	grep -q "llmops_monitor_requests_total{model=\"tiny\",status=\"200\"} 3" textfiles/llm-monitor.prom
	nport=$(free_port)
	prometheus-node-exporter --collector.disable-defaults --collector.textfile \
		--collector.textfile.directory="$PWD/textfiles" \
		--web.listen-address="127.0.0.1:$nport" > ne.out 2> ne.err &
	echo $! >> "$scratch/pids"
	wait_for curl -sf "http://127.0.0.1:$nport/metrics" -o ne.metrics
	wait_for grep -q "^llmops_monitor_requests_total" ne.metrics
	! grep -q "node_textfile_scrape_error 1" ne.metrics
	pport=$(free_port)
	cat > prometheus.yml <<-EOF
	global:
	  scrape_interval: 1s
	scrape_configs:
	  - job_name: serve
	    static_configs: [{targets: ["127.0.0.1:${url##*:}"]}]
	  - job_name: textfile
	    static_configs: [{targets: ["127.0.0.1:$nport"]}]
	EOF
	promtool check config prometheus.yml > /dev/null
	prometheus --config.file=prometheus.yml --storage.tsdb.path="$PWD/tsdb" \
		--web.listen-address="127.0.0.1:$pport" > prom.out 2> prom.err &
	echo $! >> "$scratch/pids"
	q() {
		curl -sf "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" > q.json &&
			[ "$(jq ".data.result | length" q.json)" -gt 0 ]
	}
	wait_for q "llmops_monitor_requests_total{job=\"textfile\",model=\"tiny\",status=\"200\"}"
	[ "$(jq -r ".data.result[0].value[1]" q.json)" = 3 ]
	wait_for q "llmops_monitor_request_latency_seconds{job=\"textfile\",quantile=\"0.99\"}"
	wait_for q "llmops_requests_total{job=\"serve\"}"
	wait_for q "up{job=\"serve\"} == 1"
'

done_testing
