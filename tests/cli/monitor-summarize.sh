#!/bin/sh
# llm-monitor summarize: rows per window and group checked against jq's own count of the
# fixture, percentiles within 1 % of exact ones, feedback joined and counted once, cost, shards
# merged equal to one pass, the table, the HTML report, --follow, errors; and its man page.
. "$top_srcdir/tests/cli/lib.sh"
log=$data/monitor/summarize/requests.jsonl
prices=$data/monitor/summarize/prices.json
man=$top_srcdir/man

t 'requests, errors and statuses per 5m window and model equal jq counting the log' '
	llm-monitor summarize --window 5m --by model "$log" > rows.jsonl
	jq -c "{w: .window_start, model, requests, errors, s500: (.status_500 // 0)}" rows.jsonl > got
	jq -s -c "[.[] | select(.kind != \"feedback\")
		| . + {w: (.ts[0:14] + (((.ts[14:16] | tonumber) / 5 | floor) * 5 | tostring
			| if length == 1 then \"0\" + . else . end) + \":00Z\")}]
		| group_by([.w, .model])[]
		| {w: .[0].w, model: .[0].model, requests: length,
		   errors: map(select(.status >= 400)) | length,
		   s500: map(select(.status == 500)) | length}" "$log" > want
	diff want got
	[ "$(lines got)" = 6 ]
'

t 'latency percentiles are within 1% of the exact value of rank floor(q(n-1))' '
	llm-monitor summarize --by model "$log" > rows.jsonl
	for q in 50 90 99; do
		jq -s -r --argjson q $q "[.[] | select(.latency_ms != null)] | group_by(.model)[]
			| (map(.latency_ms) | sort) as \$v
			| \"\\(.[0].model) \\(\$v[((\$v | length) - 1) * \$q / 100 | floor])\"" "$log" > exact
		while read -r model want; do
			got=$(jq -r --arg m "$model" "select(.model == \$m) | .latency_p$q" rows.jsonl)
			awk -v g="$got" -v w="$want" "BEGIN { d = g - w; if (d < 0) d = -d; exit !(d <= 0.01 * w) }" ||
				{ echo "$model p$q: $got vs exact $want"; false; }
		done < exact
	done
'

t 'feedback joins its request either way round, a repeated feedback id counts once' '
	llm-monitor summarize --by model "$log" > rows.jsonl
	# Distinct feedback ids on support-bot requests, from the log itself.
	want=$(jq -s "(map(select(.kind != \"feedback\") | {key: .request_id, value: .model}) | from_entries) as \$m
		| [.[] | select(.kind == \"feedback\" and \$m[.request_id] == \"support-bot@3\") | .id] | unique | length" "$log")
	[ "$want" = 4 ]
	[ "$(jq "select(.model == \"support-bot@3\") | .feedback_count" rows.jsonl)" = "$want" ]
	[ "$(jq "select(.model == \"support-bot@3\") | .feedback_negative" rows.jsonl)" = 1 ]
	# The feedback that came first (req-033) is in its request'\''s window, not its own.
	llm-monitor summarize --window 5m --by model "$log" > w.jsonl
	[ "$(jq -r "select(.feedback_count > 0) | .window_start" w.jsonl | sort | uniq | wc -l)" = 3 ]
'

t 'cost from the price table, by prefix before @; refusals and flags counted' '
	llm-monitor summarize --by model --prices "$prices" "$log" > rows.jsonl
	want=$(jq -s "[.[] | select(.model == \"support-bot@3\" and .usage != null)
		| .usage.prompt_tokens * 0.5 + .usage.completion_tokens * 1.5] | add / 1000000" "$log")
	got=$(jq "select(.model == \"support-bot@3\") | .cost" rows.jsonl)
	awk -v g="$got" -v w="$want" "BEGIN { d = g - w; if (d < 0) d = -d; exit !(d < 1e-9) }"
	[ "$(jq -r "select(.model == \"gpt-4o\") | .currency" rows.jsonl)" = USD ]
	[ "$(jq -s "map(.refusals) | add" rows.jsonl)" = 1 ]
	[ "$(jq -s "map(.\"flags.pii\" // 0) | add" rows.jsonl)" = 2 ]
'

t 'shards summarized with --state and merged equal one pass' '
	llm-monitor summarize --window 5m --by model,key_id "$log" > one.jsonl
	llm-monitor summarize --window 5m --by model,key_id --state --shard 1/3 "$log" > a.jsonl
	llm-monitor summarize --window 5m --by model,key_id --state --shard 2/3 "$log" > b.jsonl
	llm-monitor summarize --window 5m --by model,key_id --state --shard 3/3 "$log" > c.jsonl
	jq -e .state a.jsonl > /dev/null
	llm-monitor summarize --merge a.jsonl b.jsonl c.jsonl > merged.jsonl
	# Feedback joins its request (and a repeated id is known) within a shard only: every
	# other metric is equal row for row, and feedback adds up over the shards.
	pick="select(.requests > 0) | {window_start, model, key_id, requests, errors, status_500, latency_p50, latency_p99, ttft_p90, total_tokens, flags}"
	jq -c "$pick" one.jsonl > want
	jq -c "$pick" merged.jsonl > got
	diff want got
	[ "$(jq -s "map(.feedback_count) | add" merged.jsonl)" = "$(cat a.jsonl b.jsonl c.jsonl | jq -s "map(.feedback_count) | add")" ]
	# Fewer keys sum over the rest.
	llm-monitor summarize --merge --by model a.jsonl b.jsonl c.jsonl > bymodel.jsonl
	[ "$(jq -s "map(.requests) | add" bymodel.jsonl)" = 40 ]
	run llm-monitor summarize --merge one.jsonl
	expect_status 1
	expect_err "one.jsonl:1: "
	expect_err "--state"
'

t 'the table has a header and no colour off a terminal; --state refuses the table' '
	run llm-monitor summarize --format table --window 5m --by model "$log"
	expect_status 0
	head -1 out | grep -q "window (UTC) *model *requests"
	[ "$(lines out)" = 7 ]
	! grep -q "$(printf "\033")" out
	run llm-monitor summarize --format table --state "$log"
	expect_status 2
'

t 'the HTML report is self-contained, with four SVG charts' '
	llm-monitor summarize --window 5m --by model --html r.html "$log" > /dev/null
	[ "$(grep -c "<svg" r.html)" = 4 ]
	grep -q "<polyline" r.html
	grep -q "support-bot@3" r.html
	! grep -qiE "<script|https?://[a-z]" r.html
'

t 'usage and input errors exit 2, 1 and 3 with a diagnostic' '
	run llm-monitor summarize --window 5parsecs "$log"
	expect_status 2; expect_err "llm-monitor: --window"
	echo "{\"models\":{\"m\":{\"prompt\":\"x\"}}}" > bad.json
	run llm-monitor summarize --prices bad.json "$log"
	expect_status 2; expect_err "bad.json"
	run llm-monitor summarize --prices missing.json "$log"
	expect_status 3
	printf "%s\n" "{\"model\":\"m\",\"status\":200}" "{\"model\":\"m\",\"status\":\"200\"}" > bad.jsonl
	run llm-monitor summarize bad.jsonl
	expect_status 1; expect_err "bad.jsonl:2:"
	run llm-monitor summarize --on-error skip bad.jsonl
	expect_status 0
	[ "$(jq .requests out)" = 1 ]
	run llm-monitor summarize nothere.jsonl
	expect_status 3
	no_sanitizer_report
'

t 'under --follow a window is printed when it closes, without waiting for the end' '
	now=$(date +%s)
	old=$(( (now / 60 - 2) * 60 ))
	: > live.jsonl
	llm-monitor summarize --follow --window 1m --grace 0s --format jsonl live.jsonl > rows 2> err &
	pid=$!
	for i in 1 2 3; do
		printf "{\"ts\":%s,\"model\":\"m\",\"status\":200,\"latency_ms\":%s}\n" $((old + i)) $((i * 10)) >> live.jsonl
	done
	i=0
	until [ -s rows ]; do
		i=$((i + 1)); [ $i -lt 200 ] || { kill $pid; echo "no row printed"; cat err; false; }
		sleep 0.1
	done
	kill $pid
	wait $pid || true
	[ "$(jq .requests rows)" = 3 ]
'

t 'llm-monitor-summarize(1) is lint clean, current, and documents every option and status' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor-summarize.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	scdoc < "$man/llm-monitor-summarize.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-monitor-summarize.1" || { echo "llm-monitor-summarize.1 is stale"; false; }
	llm-monitor summarize --help > help
	for o in $(llm-monitor summarize --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-summarize.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-summarize.1.scd"; done
'

done_testing
