#!/bin/sh
# llm-monitor check: rules held against a log's aggregates (window, groups, where, thresholds,
# no data), its table and JSON, its exit statuses, bad rules files named with the rule; and
# llm-monitor-check(1) and llmops-rules(5) in step with --help.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

# Two models over two 5-minute windows: m1 fails half its requests in the first one.
cat >"$scratch/log.jsonl" <<'EOF'
{"ts":"2026-01-01T10:00:10Z","model":"m1","status":200,"latency_ms":100}
{"ts":"2026-01-01T10:01:10Z","model":"m1","status":500,"latency_ms":200}
{"ts":"2026-01-01T10:02:10Z","model":"m2","status":200,"latency_ms":300}
{"ts":"2026-01-01T10:03:10Z","model":"m2","status":200,"latency_ms":400}
{"ts":"2026-01-01T10:06:10Z","model":"m1","status":200,"latency_ms":100}
{"ts":"2026-01-01T10:07:10Z","model":"m2","status":200,"latency_ms":100}
EOF
log=$scratch/log.jsonl

t 'a failing rule is shown with its value, and the status is 1' '
	cat > r.json <<EOF
{"rules":[{"name":"error-rate","metric":"error_rate","op":"lt","value":0.05,"window":"5m","by":["model"]},
          {"name":"volume","metric":"requests","op":"gte","value":6}]}
EOF
	run llm-monitor check --rules r.json --now 2026-01-01T10:05:30Z "$log"; expect_status 1
	grep -E "^error-rate +model=m1 +error_rate +0.5 +lt 0.05 +5m +fails$" out
	grep -E "^error-rate +model=m2 +error_rate +0 +lt 0.05 +5m +holds$" out
	grep -E "^volume +- +requests +6 +gte 6 +all +holds$" out
	expect_err "2 holding, 0 warning, 1 failing, 0 without data"
'
t 'the last complete window is the one evaluated: later, the same rules hold' '
	cat > r.json <<EOF
{"rules":[{"name":"error-rate","metric":"error_rate","op":"lt","value":0.05,"window":"5m","by":["model"]}]}
EOF
	run llm-monitor check --rules r.json --now 2026-01-01T10:10:00Z "$log"; expect_status 0
	[ "$(grep -c holds out)" = 2 ]
	# Without --now the clock is the newest record (10:07:10): the window 10:00-10:05.
	run llm-monitor check --rules r.json "$log"; expect_status 1
	llm-monitor check --rules r.json --format json "$log" > j.json || true
	/usr/bin/python3 - <<EOF
import json
j = json.load(open("j.json"))
r = j["rules"][0]
assert r["window_start"] == "2026-01-01T10:00:00.000Z", r
assert r["window_end"] == "2026-01-01T10:05:00.000Z", r
assert j["ok"] is False and j["summary"]["fails"] == 1, j
g = {x["labels"]["model"]: x for x in r["groups"]}
assert g["m1"]["value"] == 0.5 and g["m1"]["status"] == "fails" and g["m1"]["threshold"] == 0.05
assert g["m2"]["status"] == "holds"
assert j["input"]["events"] == 6, j["input"]
EOF
'
t 'where picks one group; ops gt, lte, eq, ne and in' '
	cat > r.json <<EOF
{"rules":[
 {"name":"m2-only","metric":"error_rate","op":"eq","value":0,"where":{"model":"m2"}},
 {"name":"gt","metric":"requests","op":"gt","value":5},
 {"name":"lte","metric":"latency_max","op":"lte","value":400},
 {"name":"ne","metric":"errors","op":"ne","value":0},
 {"name":"in","metric":"status_500","op":"in","value":[1,2]},
 {"name":"unseen","metric":"status_429","op":"eq","value":0}]}
EOF
	run llm-monitor check --rules r.json "$log"; expect_status 0
	grep -E "^m2-only +model=m2 +error_rate +0 +eq 0 +all +holds$" out
	grep -E "^in +- +status_500 +1 +in \[1, 2\] +all +holds$" out
	grep -E "^unseen +- +status_429 +0 +eq 0 +all +holds$" out
	[ "$(grep -c " holds$" out)" = 6 ]
	sed "s/\"value\":5}/\"value\":6}/" r.json > r2.json
	run llm-monitor check --rules r2.json "$log"; expect_status 1
	grep -E "^gt +- +requests +6 +gt 6 +all +fails$" out
'
t 'a warning threshold missed is reported but does not fail; a critical one fails' '
	cat > r.json <<EOF
{"rules":[{"name":"lat","metric":"latency_max","op":"lte","warning":300,"critical":1000}]}
EOF
	run llm-monitor check --rules r.json "$log"; expect_status 0
	grep -E "^lat +- +latency_max +400 +lte 300 +all +warns$" out
	sed "s/1000/350/" r.json > r2.json
	run llm-monitor check --rules r2.json "$log"; expect_status 1
	grep -E "^lat +- +latency_max +400 +lte 350 +all +fails$" out
'
t 'no data fails unless the rule says no_data ok' '
	cat > r.json <<EOF
{"rules":[{"name":"quiet","metric":"error_rate","op":"lt","value":0.05,"window":"5m"}]}
EOF
	run llm-monitor check --rules r.json --now 2026-01-02T00:00:00Z "$log"; expect_status 1
	grep -E "^quiet +- +error_rate +- +lt 0.05 +5m +nodata$" out
	sed "s/\"5m\"/\"5m\",\"no_data\":\"ok\"/" r.json > r2.json
	run llm-monitor check --rules r2.json --now 2026-01-02T00:00:00Z "$log"; expect_status 0
	grep -E " holds$" out
	# No input at all is no data too.
	run llm-monitor check --rules r.json < /dev/null; expect_status 1
	grep -E "^quiet +- +error_rate +- +lt 0.05 +5m +nodata$" out
'
t '--report writes the JSON, --format json prints it' '
	cat > r.json <<EOF
{"rules":[{"name":"volume","metric":"requests","op":"gte","value":1}]}
EOF
	run llm-monitor check --rules r.json --report rep.json "$log"; expect_status 0
	run llm-monitor check --rules r.json --format json "$log"; expect_status 0
	cmp out rep.json
	grep -q "\"ok\": true" rep.json
'
t 'a bad rules file is refused with status 2, naming the file and the rule' '
	printf "{\"rules\":[{\"name\":\"a\",\"metric\":\"requests\",\"op\":\"gte\",\"value\":1},{\"name\":\"b\",\"metric\":\"erors\",\"op\":\"lt\",\"value\":1}]}" > r.json
	run llm-monitor check --rules r.json "$log"; expect_status 2
	expect_err "llm-monitor: r.json: rules[1] (b): unknown metric '\''erors'\''"
	printf "{\"rules\":[{\"name\":\"a\",\"metric\":\"requests\",\"op\":\"above\",\"value\":1}]}" > r.json
	run llm-monitor check --rules r.json "$log"; expect_status 2; expect_err "rules[0] (a): unknown op '\''above'\''"
	printf "{\"rules\":[\n{\"name\":\"a\",}]}" > r.json
	run llm-monitor check --rules r.json "$log"; expect_status 2; expect_err "llm-monitor: r.json:2:"
	run llm-monitor check "$log"; expect_status 2; expect_err "--rules FILE is required"
	run llm-monitor check --rules missing.json "$log"; expect_status 3; expect_err "missing.json"
	run llm-monitor check --rules r.json --now yesterday "$log"; expect_status 2
'
t 'a bad record stops the run under --on-error=fail and is skipped under skip' '
	cat > r.json <<EOF
{"rules":[{"name":"volume","metric":"requests","op":"gte","value":6}]}
EOF
	{ cat "$log"; echo "{\"status\":\"oops\"}"; } > bad.jsonl
	run llm-monitor check --rules r.json bad.jsonl; expect_status 1; expect_err "bad.jsonl:7:"
	run llm-monitor check --rules r.json --on-error skip bad.jsonl; expect_status 0
'
t 'llm-monitor-check(1) and llmops-rules(5) pass mandoc -T lint and are up to date' '
	for p in llm-monitor-check.1 llmops-rules.5; do
		"${MANDOC:-mandoc}" -T lint -W warning "$man/$p" > lint.txt 2>&1 || true
		grep -v "STYLE:" lint.txt > real.txt || true
		[ ! -s real.txt ] || { cat real.txt; false; }
		grep -q "man/$p" "$top_srcdir/mk/monitor-alert.am"
		command -v scdoc >/dev/null || continue
		scdoc < "$man/$p.scd" | awk -f "$man/tidy.awk" > page
		cmp -s page "$man/$p" || { echo "$p is stale"; false; }
	done
'
t 'every option of check is in --help and in llm-monitor-check(1), with the exit statuses' '
	llm-monitor check --help > help
	for o in $(llm-monitor check --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-check.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-check.1.scd"; done
	for m in requests error_rate latency_p99 status_NNN feedback_mean cost; do
		grep -qF "*$m*" "$man/llmops-rules.5.scd" || { echo "$m undocumented"; false; }
	done
'
done_testing
