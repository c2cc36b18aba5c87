#!/bin/sh
# llm-serve as a gateway (--upstream, --config): balancing, retries honouring Retry-After,
# fallbacks when a stream breaks before its first token (and an error event after it), a hung
# upstream, cooldown and recovery through the health probe, probes that never call a
# completion, a client that leaves cancelling the upstream transfer, and a log that has every
# request once.  Upstreams are tests/cli/fake-openai.py (fault markers in the prompt, counts per
# prompt) and tests/unit/fast-upstream (a fixed answer whatever the prompt; aborted streams
# counted; SIGUSR1 makes it sick).  Nothing here measures time: a wait is bounded, never timed.
. "$top_srcdir/tests/cli/lib.sh"
fake=$top_srcdir/tests/cli/fake-openai.py
fast=$top_builddir/tests/unit/fast-upstream
py=/usr/bin/python3

# Servers started here are stopped when the script ends.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# wait_file FILE: until it is there and not empty (at most 10 s).
wait_file() {
	i=0
	while [ ! -s "$1" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || { echo "no $1 after 10 s" >&2; return 1; }
		sleep 0.05
	done
}

# fake_up DIR [ARGS...]: a fake OpenAI server logging to DIR/log.jsonl; its URL in DIR/url.
fake_up() {
	d=$1
	shift
	mkdir -p "$d"
	"$py" "$fake" --port-file "$d/port" --log "$d/log.jsonl" "$@" >/dev/null 2>"$d/err" &
	echo $! >>"$scratch/pids"
	wait_file "$d/port"
	touch "$d/log.jsonl"
	echo "http://127.0.0.1:$(cat "$d/port")/v1" >"$d/url"
}

# fast_up DIR: a fast upstream; URL in DIR/url, pid in DIR/pid.
fast_up() {
	mkdir -p "$1"
	"$fast" --port-file "$1/port" >/dev/null 2>"$1/err" &
	echo $! >"$1/pid"
	echo $! >>"$scratch/pids"
	wait_file "$1/port"
	echo "http://127.0.0.1:$(cat "$1/port")/v1" >"$1/url"
}

# gw_up DIR ARGS...: llm-serve as a gateway, logging to DIR/log.jsonl; base URL in DIR/url.
# Call it from the test's own shell (not in $(...)) so that gw_down can wait for it.
gw_up() {
	d=$1
	shift
	mkdir -p "$d"
	llm-serve --port 0 --port-file "$d/port" --log "$d/log.jsonl" --health-interval 0.2 \
		"$@" >/dev/null 2>"$d/err" &
	gw_pid=$!
	echo $gw_pid >"$d/pid"
	echo $gw_pid >>"$scratch/pids"
	wait_file "$d/port" || { cat "$d/err"; return 1; }
	echo "http://127.0.0.1:$(cat "$d/port")" >"$d/url"
}

# gw_down DIR: SIGTERM (requests under way finish), wait for the exit; it must exit 0 with no
# sanitizer report.
gw_down() {
	kill -TERM "$(cat "$1/pid")"
	set +e
	wait "$(cat "$1/pid")"
	st=$?
	set -e
	if [ "$st" != 0 ] || grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' "$1/err"; then
		echo "the gateway exited $st:"
		cat "$1/err"
		return 1
	fi
}

# chat_body PROMPT [JSON fields]: a chat request for the model $model (default m).
chat_body() {
	extra=${2-}
	[ -n "$extra" ] || extra="{}"
	jq -cn --arg p "$1" --arg m "${model:-m}" \
		"{model: \$m, messages: [{role: \"user\", content: \$p}]} + $extra"
}

# post GW PROMPT [JSON fields]: POST a chat request; the body to ./out, the status to ./code.
post() {
	chat_body "$2" "${3-}" >body.json
	curl -sS -o out -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary @body.json "$(cat "$1/url")/v1/chat/completions" >code
}

# stream GW PROMPT [CURL ARGS...]: the same, streamed, the events to ./out.
stream() {
	g=$1
	p=$2
	shift 2
	chat_body "$p" '{stream: true}' >body.json
	set +e
	curl -sSN -o out -w '%{http_code}' -H 'Content-Type: application/json' "$@" \
		--data-binary @body.json "$(cat "$g/url")/v1/chat/completions" >code
	curl_status=$?
	set -e
}

# attempts DIR PROMPT: attempts a fake server saw for the prompt.
attempts() {
	jq -s --arg p "$2" '[.[] | select(.prompt == $p)] | length' "$1/log.jsonl"
}

# stats DIR: a fast upstream's /stats.
stats() {
	curl -sS "$(cat "$1/url" | sed 's|/v1$||')/stats"
}

# metric GW NAME_AND_LABELS: the value of one series of the gateway's /metrics (0 if absent).
metric() {
	curl -sS "$(cat "$1/url")/metrics" | awk -v k="$2" 'index($0, k " ") == 1 { v = $2 } END { print v + 0 }'
}

# logged GW FILTER: the gateway's log (after gw_down) must satisfy the jq filter (on the array
# of its records).
logged() {
	jq -se "$2" "$1/log.jsonl" >/dev/null || { echo "log fails $2:"; cat "$1/log.jsonl"; return 1; }
}

t 'an idle pool spreads requests by weight exactly: 40 requests over weights 3 and 1 give 30 and 10' '
	fake_up a; fake_up b
	gw_up gw --upstream "$(cat a/url),3" --upstream "$(cat b/url),1"
	for i in $(seq 1 40); do
		post gw "spread $i"
		[ "$(cat code)" = 200 ]
	done
	gw_down gw
	[ "$(jq -s length a/log.jsonl)" = 30 ]
	[ "$(jq -s length b/log.jsonl)" = 10 ]
	logged gw "length == 40 and all(.status == 200 and .attempts == 1)"
'

t 'least-busy sends new requests away from the upstream that holds one in flight' '
	fake_up a; fake_up b
	gw_up gw --upstream "$(cat a/url)" --upstream "$(cat b/url)"
	chat_body "hold @slow=5" >slow.json
	curl -sS -o slow.out --data-binary @slow.json "$(cat gw/url)/v1/chat/completions" &
	slow_pid=$!
	i=0
	until grep -q "hold @slow" a/log.jsonl b/log.jsonl; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	busy=$(grep -l "hold @slow" a/log.jsonl b/log.jsonl | xargs dirname)
	idle=a; [ "$busy" = a ] && idle=b
	for i in 1 2 3 4 5 6; do
		post gw "quick $i"
		[ "$(cat code)" = 200 ]
	done
	[ "$(grep -c quick "$idle/log.jsonl")" = 6 ]
	[ "$(grep -c quick "$busy/log.jsonl" || true)" = 0 ]
	wait $slow_pid
	grep -q "echo: hold @slow=5" slow.out
	gw_down gw
'

t 'the weighted policy ignores what is in flight' '
	fake_up a; fake_up b
	gw_up gw --balance weighted --upstream "$(cat a/url)" --upstream "$(cat b/url)"
	chat_body "hold weighted @slow=4" >slow.json
	curl -sS -o slow.out --data-binary @slow.json "$(cat gw/url)/v1/chat/completions" &
	slow_pid=$!
	i=0
	until grep -q "hold weighted" a/log.jsonl b/log.jsonl; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	for i in 1 2 3 4 5 6; do
		post gw "w quick $i"
		[ "$(cat code)" = 200 ]
	done
	[ "$(grep -c "w quick" a/log.jsonl)" = 3 ]
	[ "$(grep -c "w quick" b/log.jsonl)" = 3 ]
	wait $slow_pid
	gw_down gw
'

t 'a 429 is retried after its retry-after-ms hint, and the client sees one answer' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)"
	p="limited @status=429*1 @retry-after-ms=400"
	post gw "$p"
	[ "$(cat code)" = 200 ]
	jq -e --arg p "echo: $p" ".choices[0].message.content == \$p" out
	[ "$(attempts a "$p")" = 2 ]
	jq -se --arg p "$p" "[.[] | select(.prompt == \$p) | .t] | .[1] - .[0] >= 0.4" a/log.jsonl
	[ "$(metric gw "llmops_upstream_retries_total{upstream=\"$(cat a/url | sed "s|/v1$||")\"}")" = 1 ]
	gw_down gw
	logged gw "length == 1 and .[0].status == 200 and .[0].attempts == 2"
'

t 'a Retry-After longer than --retry-wait-max is not waited for: the 429 goes to the client' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)" --retry-wait-max 5
	p="limited long @status=429 @retry-after=60"
	post gw "$p"
	[ "$(cat code)" = 429 ]
	jq -e ".error.code == \"rate_limit_exceeded\"" out
	[ "$(attempts a "$p")" = 1 ]
	gw_down gw
	logged gw "length == 1 and .[0].status == 429"
'

# A config with the fake server of the test as model main and the fast upstream as its
# fallback, backup (@A@ and @F@ are replaced by their URLs).
pools_in=$scratch/pools.json.in
cat >"$pools_in" <<'EOF'
{"models": {"main": {"upstreams": [{"url": "@A@"}], "fallback": ["backup"]},
            "backup": {"upstreams": [{"url": "@F@"}]}}}
EOF

t 'a stream that breaks before its first token falls back, unseen by the client' '
	fake_up a; fast_up f
	sed -e "s|@A@|$(cat a/url)|" -e "s|@F@|$(cat f/url)|" "$pools_in" >gw.json
	gw_up gw --config gw.json --retries 1
	model=main
	p="drop early @drop=before"
	stream gw "$p"
	[ "$(cat code)" = 200 ]
	grep -q "\"content\":\"fast\"" out
	grep -q "^data: \[DONE\]" out
	! grep -q "\"error\"" out
	[ "$(grep -c "^data: \[DONE\]" out)" = 1 ]
	[ "$(attempts a "$p")" = 2 ]
	[ "$(stats f | jq .streams)" = 1 ]
	[ "$(metric gw "llmops_upstream_fallbacks_total{model=\"main\"}")" = 1 ]
	gw_down gw
	logged gw "length == 1 and .[0].status == 200 and .[0].fallbacks == 1 and .[0].model == \"backup\" and .[0].output == \"fast answer\""
'

t 'a stream that breaks after its first token ends with an error event, not a second answer' '
	fake_up a; fast_up f
	sed -e "s|@A@|$(cat a/url)|" -e "s|@F@|$(cat f/url)|" "$pools_in" >gw.json
	# No cooldown: the second case must reach the same upstream as the first.
	gw_up gw --config gw.json --cooldown 0
	model=main
	p="drop late @drop=after"
	stream gw "$p"
	[ "$(cat code)" = 200 ]
	grep -q "\"content\": \"echo:\"" out
	grep -q "^data: {\"error\"" out
	! grep -q "^data: \[DONE\]" out
	[ "$(attempts a "$p")" = 1 ]
	[ "$(stats f | jq .completions)" = 0 ]
	p2="event late @error-event"
	stream gw "$p2"
	grep -q "^data: {\"error\"" out
	! grep -q "^data: \[DONE\]" out
	[ "$(attempts a "$p2")" = 1 ]
	[ "$(stats f | jq .completions)" = 0 ]
	gw_down gw
	logged gw "length == 2 and all(.status == 200 and .error.code == \"upstream_stream_broken\" and .attempts == 1 and .fallbacks == 0)"
'

t 'an upstream that hangs times out and the fallback answers' '
	fake_up a; fast_up f
	sed -e "s|@A@|$(cat a/url)|" -e "s|@F@|$(cat f/url)|" "$pools_in" >gw.json
	gw_up gw --config gw.json --upstream-timeout 1 --retries 0
	post gw "hang here @slow=30" "{model: \"main\"}"
	[ "$(cat code)" = 200 ]
	jq -e ".choices[0].message.content == \"fast answer\"" out
	[ "$(attempts a "hang here @slow=30")" = 1 ]
	gw_down gw
	logged gw "length == 1 and .[0].status == 200 and .[0].attempts == 2 and .[0].fallbacks == 1"
'

t 'with no fallback a hung upstream is a 504 after the timeout' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)" --upstream-timeout 1 --retries 0
	post gw "hang alone @slow=30"
	[ "$(cat code)" = 504 ]
	jq -e ".error.code == \"upstream_timeout\"" out
	gw_down gw
'

t 'a failing upstream cools down, and the health probe brings it back' '
	fake_up a; fast_up f
	gw_up gw --upstream "$(cat a/url)" --upstream "$(cat f/url)" --cooldown 30 --retries 1
	label=$(sed "s|/v1$||" f/url)
	i=0
	until [ "$(metric gw "llmops_upstream_healthy{upstream=\"$label\"}")" = 1 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	kill -USR1 "$(cat f/pid)"
	for i in 1 2 3 4 5 6; do
		post gw "cool $i"
		[ "$(cat code)" = 200 ]
	done
	# At most one attempt hit the sick upstream (none if a probe saw it first); then it rested
	# (30 s), and the rest went elsewhere.
	[ "$(stats f | jq .completions)" -le 1 ]
	[ "$(grep -c "cool " a/log.jsonl)" = 6 ]
	i=0
	until [ "$(metric gw "llmops_upstream_healthy{upstream=\"$label\"}")" = 0 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	kill -USR1 "$(cat f/pid)"
	i=0
	until [ "$(metric gw "llmops_upstream_healthy{upstream=\"$label\"}")" = 1 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	# Well again long before the 30 s cooldown ends: only the probe can have ended it.
	for i in 1 2 3 4 5 6; do
		post gw "back $i"
		[ "$(cat code)" = 200 ]
	done
	[ "$(stats f | jq .completions)" -ge 3 ]
	gw_down gw
	logged gw "length == 12 and all(.status == 200)"
'

t 'health probes never call a completion endpoint' '
	fake_up a; fast_up f
	gw_up gw --upstream "$(cat a/url)" --upstream "$(cat f/url)" --health-interval 0.05
	i=0
	until [ "$(stats f | jq .probes)" -ge 10 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	[ "$(stats f | jq .completions)" = 0 ]
	[ "$(curl -sS "$(sed "s|/v1$||" a/url)/stats" | jq .requests)" = 0 ]
	curl -sS "$(cat gw/url)/ready" | jq -e ".status == \"ready\""
	gw_down gw
'

t 'a client that leaves mid-stream cancels the upstream transfer' '
	fast_up f
	gw_up gw --upstream "$(cat f/url)"
	stream gw "long one @slowstream" --max-time 1
	[ "$curl_status" = 28 ]
	grep -q "\"content\":\"fast\"" out
	# The upstream stream would last 60 s; the gateway drops it as soon as the client is gone.
	i=0
	until [ "$(stats f | jq .aborted)" = 1 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	gw_down gw
	logged gw "length == 1 and .[0].status == 499 and .[0].client_gone == true"
'

t 'the model is rewritten per upstream, and the upstream key from key_env goes only upstream' '
	fake_up a --key sk-upstream-secret-1
	cat >gw.json <<EOF
{"models": {"alias": {"upstreams": [{"url": "$(cat a/url)", "model": "real-name",
                                     "key_env": "GW_TEST_KEY"}]}}}
EOF
	GW_TEST_KEY=sk-upstream-secret-1 gw_up gw --config gw.json
	chat_body "rewrite me" "{model: \"alias\"}" >body.json
	curl -sS -o out -H "Authorization: Bearer client-key" --data-binary @body.json \
		"$(cat gw/url)/v1/chat/completions"
	jq -e ".model == \"real-name\" and .choices[0].message.content == \"echo: rewrite me\"" out
	jq -se "length == 1 and .[0].model == \"real-name\" and .[0].auth == \"ok\"" a/log.jsonl
	post gw "unknown model" "{model: \"other\"}"
	[ "$(cat code)" = 404 ]
	jq -e ".error.code == \"model_not_found\"" out
	curl -sS "$(cat gw/url)/v1/models" | jq -e "[.data[].id] == [\"alias\"]"
	gw_down gw
	! grep -q sk-upstream-secret gw/log.jsonl gw/err
	logged gw "map(select(.endpoint == \"/v1/chat/completions\")) | length == 2 and .[0].upstream_model == \"real-name\""
'

t 'completions stream through, and the usage chunk reaches only a client that asked for it' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)"
	base=$(cat gw/url)
	curl -sSN -o with.out --data-binary "{\"model\": \"m\", \"prompt\": \"two words here\", \"max_tokens\": 2, \"stream\": true, \"stream_options\": {\"include_usage\": true}}" "$base/v1/completions"
	curl -sSN -o without.out --data-binary "{\"model\": \"m\", \"prompt\": \"two words there\", \"max_tokens\": 2, \"stream\": true}" "$base/v1/completions"
	grep -q "\"text\": \" two\"" with.out
	grep -q "\"usage\": {\"prompt_tokens\": 3, \"completion_tokens\": 2" with.out
	! grep -q "\"usage\"" without.out
	[ "$(grep -c "^data: \[DONE\]" without.out)" = 1 ]
	# Upstream, both asked for the usage: the log has it either way.
	jq -se "length == 2 and all(.include_usage and .path == \"/v1/completions\")" a/log.jsonl
	gw_down gw
	logged gw "length == 2 and all(.usage == {prompt_tokens: 3, completion_tokens: 2} and .finish_reason == \"length\" and .output == \"echo: two\")"
'

t 'a body that is not a JSON object is a 400, logged once' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)"
	code=$(curl -sS -o out -w "%{http_code}" --data-binary "{\"model\": " "$(cat gw/url)/v1/chat/completions")
	[ "$code" = 400 ]
	jq -e ".error.code == \"invalid_json\"" out
	[ "$(jq -s length a/log.jsonl)" = 0 ]
	gw_down gw
	logged gw "length == 1 and .[0].status == 400"
'

t 'under concurrent faults every request is answered once and logged once' '
	fake_up a; fake_up b
	gw_up gw --upstream "$(cat a/url)" --upstream "$(cat b/url)"
	: >prompts
	for i in $(seq 1 40); do
		case $((i % 5)) in
		0) echo "mix $i @status=429*1 @retry-after-ms=50" ;;
		1) echo "mix $i @drop=before*1" ;;
		2) echo "mix $i @status=503*1" ;;
		*) echo "mix $i" ;;
		esac >>prompts
	done
	base=$(cat gw/url)
	n=0
	while IFS= read -r p; do
		n=$((n + 1))
		s=false; [ $((n % 2)) = 0 ] && s=true
		jq -cn --arg p "$p" --argjson s $s "{model: \"m\", stream: \$s, messages: [{role: \"user\", content: \$p}]}" >"req$n.json"
	done <prompts
	seq 1 40 | xargs -P 8 -I XX sh -c "curl -sS -N -o res.XX -w \"%{http_code}\" --data-binary @reqXX.json $base/v1/chat/completions > code.XX"
	for i in $(seq 1 40); do
		[ "$(cat code.$i)" = 200 ] || { echo "request $i: $(cat code.$i)"; cat res.$i; exit 1; }
		if [ $((i % 2)) = 0 ]; then
			[ "$(grep -c "^data: \[DONE\]" res.$i)" = 1 ]
			! grep -q "\"error\"" res.$i
		else
			jq -e ".choices | length == 1" res.$i >/dev/null
		fi
	done
	gw_down gw
	logged gw "length == 40 and ([.[].request_id] | unique | length) == 40 and all(.status == 200)"
	# Each answer is its own prompt echoed, once.
	jq -sr ".[].output" gw/log.jsonl | sort >outputs
	sed "s/^/echo: /" prompts | sort >want
	cmp outputs want
'

t 'SIGTERM under load: requests under way finish, each logged once, and the exit is 0' '
	fake_up a
	gw_up gw --upstream "$(cat a/url)"
	for i in 1 2 3 4 5 6; do
		chat_body "drain $i @slow=1" >"d$i.json"
		curl -sS -o "d$i.out" -w "%{http_code}" --data-binary "@d$i.json" \
			"$(cat gw/url)/v1/chat/completions" >"d$i.code" &
		echo $! >>curls
	done
	i=0
	until [ "$(grep -c drain a/log.jsonl)" = 6 ]; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	gw_down gw
	for p in $(cat curls); do wait "$p"; done
	for i in 1 2 3 4 5 6; do
		[ "$(cat d$i.code)" = 200 ]
		jq -e --arg p "echo: drain $i @slow=1" ".choices[0].message.content == \$p" "d$i.out"
	done
	logged gw "length == 6 and ([.[].request_id] | unique | length) == 6 and all(.status == 200)"
'

t '/ready is 503 while no upstream has answered' '
	gw_up gw --upstream http://127.0.0.1:9/v1 --connect-timeout 1
	label=http://127.0.0.1:9
	i=0
	until curl -sS "$(cat gw/url)/metrics" | grep -q "^llmops_upstream_healthy{upstream=\"$label\"} 0"; do
		i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05
	done
	code=$(curl -sS -o out -w "%{http_code}" "$(cat gw/url)/ready")
	[ "$code" = 503 ]
	post gw "nobody home"
	[ "$(cat code)" = 502 ]
	jq -e ".error.code == \"upstream_unavailable\"" out
	gw_down gw
'

t 'configuration mistakes are usage errors that name the field' '
	echo "{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://127.0.0.1:9/v1\", \"wieght\": 2}]}}}" >bad.json
	run llm-serve --config bad.json --port 0
	expect_status 2
	expect_err "unknown field '"'"'wieght'"'"'"
	echo "{\"models\": {\"a\": {\"upstreams\": [{\"url\": \"http://127.0.0.1:9/v1\", \"key_env\": \"GW_TEST_UNSET\"}]}}}" >bad.json
	run env -u GW_TEST_UNSET llm-serve --config bad.json --port 0
	expect_status 2
	expect_err "GW_TEST_UNSET is not set"
	run llm-serve --upstream "http://127.0.0.1:9/v1,0" --port 0
	expect_status 2
	expect_err "weight"
'

done_testing
