#!/bin/sh
# llm-monitor alert against real receivers on loopback: a webhook receiver of our own
# (tests/cli/webhook-receiver.py: fails the first N requests, checks the HMAC signature, logs
# every request) and Debian's prometheus-alertmanager, which itself forwards to the receiver.
# One delivery per transition across runs (fire, nothing, renotify, resolve, with a fake clock
# through --now), "for" durations across runs, retries, the outbox when a receiver stays down,
# the lock, and llm-monitor-alert(1) in step with --help.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man
py=/usr/bin/python3
recv=$top_srcdir/tests/cli/webhook-receiver.py
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT
unset LLMOPS_MONITOR_NOW LLMOPS_MONITOR_STATE LLMOPS_MONITOR_RULES

HOOK_SECRET=s3cret-for-tests
export HOOK_SECRET

# start_receiver DIR [ARGS...]: the receiver, logging to DIR/hook.log; its port in $port.
start_receiver() {
	_d=$1
	shift
	rm -f "$_d/port"
	"$py" "$recv" --port-file "$_d/port" --log "$_d/hook.log" "$@" &
	echo $! >> "$scratch/pids"
	for _i in $(seq 200); do [ -s "$_d/port" ] && break; sleep 0.05; done
	port=$(cat "$_d/port")
}

# The requests the receiver logged: "n answered signature_ok status alertname severity model".
hook_summary() {
	"$py" - "$1" <<'EOF'
import json, sys
for line in open(sys.argv[1]):
    d = json.loads(line)
    b = d["body"] or {}
    a = (b.get("alerts") or [{}])[0]
    l = a.get("labels", {})
    print(d["n"], d["answered"], d["signature_ok"], b.get("status"), l.get("alertname"),
          l.get("severity"), l.get("model", "-"))
EOF
}

# A log of 4 requests at 10:00-10:04 on 2026-01-01; $1 of them failed, on model m1.
make_log() {
	_i=0
	while [ $_i -lt 4 ]; do
		_st=200
		[ $_i -lt "$1" ] && _st=500
		printf '{"ts":"2026-01-01T10:0%d:00Z","model":"m1","status":%d,"latency_ms":100}\n' $_i $_st
		_i=$((_i + 1))
	done
}

rules() { # rules URL [EXTRA-RULE-MEMBERS [EXTRA-TARGET-MEMBERS]]
	cat <<EOF
{"rules":[{"name":"error-rate","metric":"error_rate","op":"lt","value":0.05,"by":["model"],
           "annotations":{"summary":"error rate {{value}} on {{labels.model}}"}${2:-}}],
 "notify":[{"name":"hook","type":"webhook","url":"$1","secret_env":"HOOK_SECRET"${3:-}}]}
EOF
}

missing=
[ -x "$py" ] || missing="python3"

t 'one signed delivery per transition: fire once across runs, renotify, resolve' '
	[ -z "$missing" ] || { echo "# SKIP $missing"; exit 0; }
	start_receiver . --secret "$HOOK_SECRET" --fail 2
	rules "http://127.0.0.1:$port/hook" ",\"renotify\":\"1h\"" > r.json
	make_log 2 > bad.jsonl
	make_log 0 > good.jsonl
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:05:00Z bad.jsonl
	expect_status 0
	grep -E "^error-rate +model=m1 +firing +critical +0.5 +fire$" out
	# The first two answers were 500: retried, then delivered once.
	hook_summary hook.log > h1
	[ "$(cat h1)" = "1 500 True firing error-rate critical m1
2 500 True firing error-rate critical m1
3 200 True firing error-rate critical m1" ] || { cat h1; false; }
	# A run later: still firing, nothing new to say.
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:10:00Z bad.jsonl
	expect_status 0
	grep -E "^error-rate +model=m1 +firing +critical +0.5 +-$" out
	[ "$(wc -l < hook.log)" = 3 ]
	# An hour after the first notice: renotified.
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T11:05:00Z bad.jsonl
	expect_status 0
	grep -E " renotify$" out
	[ "$(wc -l < hook.log)" = 4 ]
	# The errors stop: one resolve, with the labels of the firing.
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T11:06:00Z good.jsonl
	expect_status 0
	grep -E "^error-rate +model=m1 +inactive +- +0 +resolve$" out
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T11:07:00Z good.jsonl
	expect_status 0
	hook_summary hook.log | tail -n 2 > h2
	[ "$(cat h2)" = "4 200 True firing error-rate critical m1
5 200 True resolved error-rate critical m1" ] || { cat h2; false; }
	"$py" - hook.log <<EOF
import json
reqs = [json.loads(l) for l in open("hook.log")]
fire, resolve = reqs[2]["body"], reqs[4]["body"]
assert fire["version"] == "4" and fire["groupKey"] == "{}:{alertname=\"error-rate\"}", fire
assert fire["commonLabels"] == {"alertname": "error-rate", "severity": "critical", "model": "m1"}
a = fire["alerts"][0]
assert a["annotations"]["summary"] == "error rate 0.5 on m1", a
assert a["startsAt"] == "2026-01-01T10:05:00.000Z" and a["endsAt"] == "0001-01-01T00:00:00Z", a
r = resolve["alerts"][0]
assert r["status"] == "resolved" and r["startsAt"] == a["startsAt"], r
assert r["endsAt"] == "2026-01-01T11:06:00.000Z", r
assert r["fingerprint"] == a["fingerprint"]
assert all(q["content_type"] == "application/json" for q in reqs)
assert all(abs(q["signature_age_s"]) < 300 for q in reqs)
EOF
	no_sanitizer_report
'
t 'a receiver that refuses a bad signature gets nothing accepted' '
	[ -z "$missing" ] || { echo "# SKIP $missing"; exit 0; }
	start_receiver . --secret "not-$HOOK_SECRET"
	rules "http://127.0.0.1:$port/hook" "" ",\"retries\":0" > r.json
	make_log 2 > bad.jsonl
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:05:00Z bad.jsonl
	expect_status 3
	expect_err "HTTP 401"
	hook_summary hook.log > h; grep -q "^1 401 False firing" h
'
t 'for: pending across runs until the condition has failed that long' '
	[ -z "$missing" ] || { echo "# SKIP $missing"; exit 0; }
	start_receiver . --secret "$HOOK_SECRET"
	rules "http://127.0.0.1:$port/hook" ",\"for\":\"10m\"" > r.json
	make_log 2 > bad.jsonl
	make_log 0 > good.jsonl
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:05:00Z bad.jsonl
	expect_status 0; grep -E " pending .* -$" out
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:14:59Z bad.jsonl
	expect_status 0; grep -E " pending " out
	[ ! -e hook.log ]
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:15:00Z bad.jsonl
	expect_status 0; grep -E " firing .* fire$" out
	[ "$(wc -l < hook.log)" = 1 ]
	# A break resets it: pending again, from scratch.
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:16:00Z good.jsonl
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:17:00Z bad.jsonl
	grep -E " pending " out
	[ "$(wc -l < hook.log)" = 2 ]
'
t 'a delivery that keeps failing exits 3, is kept in the outbox and goes first next run' '
	[ -z "$missing" ] || { echo "# SKIP $missing"; exit 0; }
	start_receiver . --secret "$HOOK_SECRET" --fail 1000
	rules "http://127.0.0.1:$port/hook" "" ",\"retries\":1" > r.json
	make_log 2 > bad.jsonl
	make_log 0 > good.jsonl
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:05:00Z bad.jsonl
	expect_status 3
	expect_err "notify hook: http://127.0.0.1:$port/hook: HTTP 500"
	expect_err "kept in st/outbox for the next run"
	[ "$(ls st/outbox | wc -l)" = 1 ]
	[ "$(wc -l < hook.log)" = 2 ]
	# The state moved on regardless: the next run does not fire again, it resolves.
	kill $(cat "$scratch/pids"); : > "$scratch/pids"; rm hook.log
	start_receiver . --secret "$HOOK_SECRET"
	rules "http://127.0.0.1:$port/hook" "" ",\"retries\":1" > r.json
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:06:00Z good.jsonl
	expect_status 0
	[ "$(ls st/outbox | wc -l)" = 0 ]
	hook_summary hook.log > h
	[ "$(cat h)" = "1 200 True firing error-rate critical m1
2 200 True resolved error-rate critical m1" ] || { cat h; false; }
	# An unreachable receiver is a failure too.
	rules "http://127.0.0.1:1/hook" "" ",\"retries\":0" > r.json
	run llm-monitor alert --rules r.json --state st --now 2026-01-01T10:07:00Z bad.jsonl
	expect_status 3; [ "$(ls st/outbox | wc -l)" = 1 ]
	grep -q "\"last_error\"" st/outbox/*.json
	grep -q "\"attempts\": 1" st/outbox/*.json
'
t 'a missing secret, a missing --state and a bad rules file are usage errors' '
	rules "http://127.0.0.1:1/hook" > r.json
	make_log 2 > bad.jsonl
	(unset HOOK_SECRET; run llm-monitor alert --rules r.json --state st bad.jsonl; expect_status 2;
	 expect_err "r.json: notify[0] (hook): the environment variable HOOK_SECRET is not set")
	run llm-monitor alert --rules r.json bad.jsonl; expect_status 2; expect_err "--state DIR is required"
	echo "{\"rules\":[{\"name\":\"x\",\"metric\":\"error_rate\",\"op\":\"lt\",\"value\":1,\"for\":\"a while\"}]}" > b.json
	run llm-monitor alert --rules b.json --state st bad.jsonl; expect_status 2
	expect_err "b.json: rules[0] (x): for: '\''a while'\'' is not a duration"
	[ ! -e st/state.json ]
'
t '--dry-run tells what it would notify and changes nothing' '
	rules "http://127.0.0.1:1/hook" > r.json
	make_log 2 > bad.jsonl
	run llm-monitor alert --dry-run --rules r.json --state st --now 2026-01-01T10:05:00Z bad.jsonl
	expect_status 0
	grep -q "would notify: firing {\"alertname\":\"error-rate\",\"model\":\"m1\",\"severity\":\"critical\"}" out
	[ ! -e st ]
'
t 'two runs never interleave: a run waits for the lock, then gives up with 3' '
	command -v flock >/dev/null || { echo "# SKIP flock missing"; exit 0; }
	echo "{\"rules\":[{\"name\":\"v\",\"metric\":\"requests\",\"op\":\"gte\",\"value\":1}]}" > r.json
	mkdir st
	flock st/lock sleep 3 &
	sleep 0.5
	echo "{\"status\":200}" > one.jsonl
	run llm-monitor alert --rules r.json --state st --lock-timeout 1 one.jsonl
	expect_status 3; expect_err "another run holds the lock"
	[ ! -e st/state.json ]
	wait
	run llm-monitor alert --rules r.json --state st one.jsonl; expect_status 0
	[ -e st/state.json ]
'
t '--fail-on-firing exits 1 while an alert fires; --report has the alerts and deliveries' '
	echo "{\"rules\":[{\"name\":\"v\",\"metric\":\"requests\",\"op\":\"gte\",\"value\":10}]}" > r.json
	make_log 0 > good.jsonl
	run llm-monitor alert --rules r.json --state st --fail-on-firing --report rep.json good.jsonl
	expect_status 1
	"$py" -c "import json; j = json.load(open(\"rep.json\")); a = j[\"alerts\"][0]; assert a[\"rule\"] == \"v\" and a[\"state\"] == \"firing\" and a[\"action\"] == \"fire\" and a[\"value\"] == 4, j"
	run llm-monitor alert --rules r.json --state st good.jsonl; expect_status 0
'

# --- prometheus-alertmanager ---
have_am=yes
command -v prometheus-alertmanager >/dev/null 2>&1 || have_am=
command -v curl >/dev/null 2>&1 || have_am=

free_port() {
	"$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

if [ -z "$have_am" ] || [ -n "$missing" ]; then
	test_count=$((test_count + 1))
	echo "ok $test_count - # SKIP prometheus-alertmanager, curl or python3 missing"
else
t 'alerts reach a real Alertmanager, which shows their labels and forwards the resolve' '
	start_receiver .
	hport=$port
	cat > am.yml <<EOF
route:
  receiver: hook
  group_by: [alertname]
  group_wait: 0s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: hook
    webhook_configs:
      - url: http://127.0.0.1:$hport/am
        send_resolved: true
EOF
	am=$(free_port)
	prometheus-alertmanager --config.file=am.yml --storage.path=amdata \
		--web.listen-address=127.0.0.1:$am --cluster.listen-address= --log.level=warn \
		> am.log 2>&1 &
	echo $! >> "$scratch/pids"
	for i in $(seq 200); do curl -sf "http://127.0.0.1:$am/-/ready" >/dev/null && break; sleep 0.05; done
	cat > r.json <<EOF
{"rules":[{"name":"error-rate","metric":"error_rate","op":"lt","value":0.05,"by":["model"],
           "labels":{"team":"ml"},"annotations":{"summary":"errors on {{labels.model}}"}}],
 "notify":[{"type":"alertmanager","url":"http://127.0.0.1:$am"}],
 "external_url":"http://monitor.example/"}
EOF
	# The real clock: Alertmanager judges startsAt and endsAt by its own.
	printf "{\"model\":\"m1\",\"status\":500}\n{\"model\":\"m1\",\"status\":200}\n" > bad.jsonl
	printf "{\"model\":\"m1\",\"status\":200}\n" > good.jsonl
	run llm-monitor alert --rules r.json --state st bad.jsonl; expect_status 0
	curl -sf "http://127.0.0.1:$am/api/v2/alerts" > alerts.json
	"$py" - <<EOF
import json
a = json.load(open("alerts.json"))
assert len(a) == 1, a
assert a[0]["labels"] == {"alertname": "error-rate", "severity": "critical", "model": "m1", "team": "ml"}, a
assert a[0]["annotations"]["summary"] == "errors on m1", a
assert a[0]["status"]["state"] == "active" and a[0]["generatorURL"] == "http://monitor.example/"
EOF
	# A second run resends the firing alert (as Prometheus does), and Alertmanager keeps one.
	run llm-monitor alert --rules r.json --state st bad.jsonl; expect_status 0
	[ "$(curl -sf "http://127.0.0.1:$am/api/v2/alerts" | "$py" -c "import json,sys; print(len(json.load(sys.stdin)))")" = 1 ]
	run llm-monitor alert --rules r.json --state st good.jsonl; expect_status 0
	grep -E " resolve$" out
	curl -sf "http://127.0.0.1:$am/api/v2/alerts" > after.json
	[ "$(cat after.json)" = "[]" ] || { cat after.json; false; }
	# Alertmanager told our receiver: firing, then resolved with an end time.
	for i in $(seq 400); do grep -q "\"status\": \"resolved\"" hook.log 2>/dev/null && break; sleep 0.05; done
	"$py" - <<EOF
import json
reqs = [json.loads(l)["body"] for l in open("hook.log")]
assert reqs[0]["status"] == "firing" and reqs[0]["alerts"][0]["labels"]["model"] == "m1", reqs
res = [r for r in reqs if r["status"] == "resolved"]
assert len(res) == 1, reqs
a = res[0]["alerts"][0]
assert a["endsAt"] > a["startsAt"] and not a["endsAt"].startswith("0001"), a
# Our own webhook body has every member Alertmanager puts in its own.
assert {"version", "groupKey", "status", "receiver", "groupLabels", "commonLabels",
        "commonAnnotations", "externalURL", "alerts", "truncatedAlerts"} <= set(reqs[0]), reqs[0]
EOF
'
fi

t 'llm-monitor-alert(1) passes mandoc -T lint, is up to date, and documents every option' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor-alert.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	grep -q "man/llm-monitor-alert.1" "$top_srcdir/mk/monitor-alert.am"
	if command -v scdoc >/dev/null; then
		scdoc < "$man/llm-monitor-alert.1.scd" | awk -f "$man/tidy.awk" > page
		cmp -s page "$man/llm-monitor-alert.1" || { echo "stale"; false; }
	fi
	llm-monitor alert --help > help
	for o in $(llm-monitor alert --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-alert.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-alert.1.scd"; done
'
done_testing
