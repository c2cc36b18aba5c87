#!/bin/sh
# llm-serve on a tiny model made here, on loopback with a free port, spoken to by real clients:
# curl (every route, the SSE format line by line, errors and limits), the official openai npm
# SDK (chat, streaming, an error), and promtool (the /metrics exposition).  Faults: a full
# queue, a client that leaves mid-stream, SIGTERM under load, SIGHUP with the log moved away.
#
# Requests that must last (a full queue, a client that leaves, a drain) use the test hook
# LLMOPS_SERVE_TEST_DELAY_MS, a pause after each piece of text, so nothing depends on how fast
# the machine is.  The openai package is installed once into $LLMOPS_NPM_OPENAI, by default
# $top_builddir/build-cache/openai; that needs npm and the npm registry.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/serve-lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_API_KEY OPENAI_API_KEY LLMOPS_SERVE_TEST_DELAY_MS
npm_openai=${LLMOPS_NPM_OPENAI:-$top_builddir/build-cache/openai}
sample=$top_srcdir/data/sample/support.jsonl

# Every process started here is stopped at the end, by its id.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# A tokenizer and a model much smaller than the tiny preset, with room for a chat prompt.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
serve_model_config "$shared/cfg.json"
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out "$shared/model"

# start DIR [ARGS...]: start llm-serve on the model with its files in DIR, and wait until it is
# ready.  Sets $url and $spid.  The server is a child of the shell that calls this, so that
# shell can `wait` for its exit status.
start() {
	sdir=$1
	shift
	serve_start "$sdir" "$shared/model" --model-name tiny "$@"
}
# stop: SIGTERM to $spid; its exit status must be 0.
stop() {
	kill -TERM "$spid"
	set +e
	wait "$spid"
	st=$?
	set -e
	[ "$st" = 0 ] || { echo "llm-serve exited $st"; cat "$sdir/err"; return 1; }
	! grep -E 'AddressSanitizer|runtime error:|LeakSanitizer' "$sdir/err"
}
# post PATH JSON [CURL ARGS...]: POST to the server; body in ./body, headers in ./headers,
# the status in $code.
post() {
	p=$1
	j=$2
	shift 2
	code=$(curl -s -o body -D headers -w '%{http_code}' -H 'Content-Type: application/json' \
		"$@" --data-binary "$j" "$url$p")
}
# expect_code N: $code must be N.
expect_code() {
	[ "$code" = "$1" ] || { echo "expected HTTP $1, got $code:"; cat body; echo; return 1; }
}
# header NAME: a header's value from ./headers.
header() {
	tr -d '\r' < headers | awk -v n="$1" 'BEGIN { n = tolower(n) }
		{ i = index($0, ":"); if (tolower(substr($0, 1, i - 1)) == n) { print substr($0, i + 2); exit } }'
}
# metric NAME: a sample's value from /metrics (the whole line's name with labels).
metric() {
	curl -s "$url/metrics" | awk -v n="$1" '$1 == n { print $2 }'
}
# metric_is NAME VALUE: the sample has that value now.
metric_is() {
	[ "$(metric "$1")" = "$2" ]
}
# wait_for COMMAND...: until it succeeds (at most 30 s).
# has_lines FILE N: FILE exists and has N lines (for wait_for, which re-runs its words).
has_lines() {
	[ -e "$1" ] && [ "$(lines "$1")" = "$2" ]
}

wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "gave up waiting for: $*"; return 1; }
		sleep 0.05
	done
}
# sse_check FILE: the stream is events of "data: " lines each followed by a blank line (":"
# comments allowed), ending with data: [DONE].
sse_check() {
	tr -d '\r' < "$1" | awk '
		/^data: / { if (want_blank) { print "two data lines in one event"; exit 1 } want_blank = 1; last = $0; next }
		/^$/ { want_blank = 0; next }
		/^:/ { next }
		{ print "not SSE: " $0; exit 1 }
		END { if (last != "data: [DONE]") { print "the last event is not [DONE]: " last; exit 1 } }'
}
# events FILE: the JSON of each event but [DONE], one per line.
events() {
	tr -d '\r' < "$1" | sed -n 's/^data: //p' | grep -v '^\[DONE\]$'
}

# The server most tests share runs from the top level, in a subshell that waits for it and
# keeps its exit status for the last test.
main=$scratch/main
mkdir -p "$main"
(
	llm-serve --model "$shared/model" --model-name tiny --port 0 --port-file "$main/port" \
		--log "$main/log.jsonl" --engine-threads 1 --parallel 2 --queue 8 --max-body 4K \
		>"$main/out" 2>"$main/err" &
	echo $! > "$main/pid"
	wait $!
	echo $? > "$main/status"
) &
echo $! >>"$scratch/pids"
i=0
until [ -s "$main/pid" ] && [ -s "$main/port" ] &&
	curl -sf "http://127.0.0.1:$(cat "$main/port")/ready" >/dev/null 2>&1; do
	i=$((i + 1))
	[ $i -lt 600 ] && [ ! -e "$main/status" ] || { echo "Bail out! llm-serve did not start"; cat "$main/err"; exit 1; }
	sleep 0.05
done
cat "$main/pid" >>"$scratch/pids"
url=http://127.0.0.1:$(cat "$main/port")
chat='{"model":"tiny","messages":[{"role":"user","content":"Hello, the router"}],"max_tokens":12,"temperature":0}'

t 'GET /health answers ok without touching the model' '
	[ "$(curl -s "$url/health")" = "{\"status\":\"ok\"}" ]
'
t 'GET /ready is 200 once the model is loaded' '
	[ "$(curl -s -o /dev/null -w "%{http_code}" "$url/ready")" = 200 ]
'
t 'GET /v1/models lists the served model with its context length' '
	curl -s "$url/v1/models" > m.json
	jq -e ".object == \"list\" and .data[0].id == \"tiny\" and .data[0].object == \"model\"
		and .data[0].max_model_len == 256" m.json
'
t 'a chat completion, not streamed, in the OpenAI shape with x-request-id' '
	post /v1/chat/completions "$chat"
	expect_code 200
	jq -e ".object == \"chat.completion\" and (.id | startswith(\"chatcmpl-\"))
		and .model == \"tiny\" and .choices[0].message.role == \"assistant\"
		and (.choices[0].message.content | type) == \"string\"
		and (.choices[0].finish_reason == \"length\" or .choices[0].finish_reason == \"stop\")
		and .usage.prompt_tokens > 0 and .usage.total_tokens ==
		    .usage.prompt_tokens + .usage.completion_tokens" body
	id=$(jq -r .id body)
	[ "$(header x-request-id)" = "req-${id#chatcmpl-}" ]
'
t 'a chat stream: role first, then content, then finish_reason, then [DONE]' '
	post /v1/chat/completions "$chat"
	jq -r ".choices[0].message.content" body > whole.txt
	req=$(printf "%s" "$chat" | jq -c ". + {stream: true}")
	curl -sN -D headers "$url/v1/chat/completions" --data-binary "$req" > s.txt
	header content-type | grep -q "^text/event-stream"
	sse_check s.txt
	events s.txt > ev.jsonl
	n=$(lines ev.jsonl)
	[ "$n" -ge 3 ]
	# Every chunk: the same id, chat.completion.chunk, one choice, no usage member.
	jq -se "all(.object == \"chat.completion.chunk\" and .model == \"tiny\"
		and (.id | startswith(\"chatcmpl-\")) and (.choices | length) == 1
		and (has(\"usage\") | not)) and (map(.id) | unique | length) == 1" ev.jsonl
	head -1 ev.jsonl | jq -e ".choices[0].delta == {\"role\": \"assistant\", \"content\": \"\"}
		and .choices[0].finish_reason == null"
	sed -n "2,$((n - 1))p" ev.jsonl | jq -se "all(.choices[0].delta | keys == [\"content\"])
		and all(.choices[0].finish_reason == null)"
	tail -1 ev.jsonl | jq -e ".choices[0].delta == {} and
		(.choices[0].finish_reason == \"length\" or .choices[0].finish_reason == \"stop\")"
	# Greedy: the pieces make the same answer as the request not streamed.
	jq -rj ".choices[0].delta.content // empty" ev.jsonl > streamed.txt
	printf "\n" >> streamed.txt
	cmp whole.txt streamed.txt
'
t 'stream_options.include_usage: usage null on each chunk, then a usage chunk before [DONE]' '
	req=$(printf "%s" "$chat" | jq -c ". + {stream: true, stream_options: {include_usage: true}}")
	curl -sN "$url/v1/chat/completions" --data-binary "$req" > s.txt
	sse_check s.txt
	events s.txt > ev.jsonl
	n=$(lines ev.jsonl)
	head -$((n - 1)) ev.jsonl | jq -se "all(has(\"usage\") and .usage == null)"
	tail -1 ev.jsonl | jq -e ".choices == [] and .usage.completion_tokens == 12
		and .usage.total_tokens == .usage.prompt_tokens + 12"
	[ "$(sed -n "$((n - 1))p" ev.jsonl | jq -r ".choices[0].finish_reason")" = length ]
'
t 'completions with echo and logprobs: the prompt scored, one entry per token' '
	post /v1/completions "{\"prompt\":\"Hello there, the router\",\"max_tokens\":3,\"echo\":true,\"logprobs\":2,\"temperature\":0}"
	expect_code 200
	jq -e ".object == \"text_completion\" and (.id | startswith(\"cmpl-\"))
		and (.choices[0].text | startswith(\"Hello there, the router\"))
		and .choices[0].logprobs.token_logprobs[0] == null
		and (.choices[0].logprobs.tokens | length) == .usage.prompt_tokens + .usage.completion_tokens
		and (.choices[0].logprobs.token_logprobs[1:] | all(. < 0))
		and (.choices[0].logprobs.top_logprobs[1:] | all(length >= 1 and length <= 3))" body
'
t 'completions streamed: text_completion chunks, the echo first, then [DONE]' '
	post /v1/completions "{\"prompt\":\"Hello there\",\"max_tokens\":4,\"temperature\":0}"
	jq -r ".choices[0].text" body > whole.txt
	curl -sN "$url/v1/completions" --data-binary "{\"prompt\":\"Hello there\",\"max_tokens\":4,\"temperature\":0,\"stream\":true,\"echo\":true}" > s.txt
	sse_check s.txt
	events s.txt > ev.jsonl
	jq -se "all(.object == \"text_completion\" and (.choices[0] | has(\"text\")))" ev.jsonl
	[ "$(head -1 ev.jsonl | jq -r ".choices[0].text")" = "Hello there" ]
	[ "$(tail -1 ev.jsonl | jq -r ".choices[0].finish_reason")" = length ]
	sed 1d ev.jsonl | jq -rj ".choices[0].text" > streamed.txt
	printf "\n" >> streamed.txt
	cmp whole.txt streamed.txt
'
t 'tokenize and detokenize: a round trip, counted as the engine counts the prompt' '
	text="Hello there, the router needs a firmware update"
	post /tokenize "$(jq -cn --arg p "$text" "{prompt: \$p}")"
	expect_code 200
	jq -e "(.tokens | length) == .count and .max_model_len == 256 and .count > 3" body
	jq -c "{tokens: .tokens}" body > toks.json
	n=$(jq .count body)
	post /v1/completions "$(jq -cn --arg p "$text" "{prompt: \$p, max_tokens: 1}")"
	[ "$(jq .usage.prompt_tokens body)" = "$n" ]
	post /detokenize "$(cat toks.json)"
	expect_code 200
	[ "$(jq -r .prompt body)" = "$text" ]
	post /detokenize "{\"tokens\":[1,99999]}"
	expect_code 400
	jq -e ".error.code == \"invalid_tokens\"" body
'
t 'bad JSON is 400 invalid_request_error' '
	post /v1/chat/completions "{\"messages\": ["
	expect_code 400
	jq -e ".error.type == \"invalid_request_error\" and .error.code == \"invalid_json\"
		and (.error.message | test(\"parse\")) and .error.param == null" body
	post /v1/completions "[1,2]"
	expect_code 400
'
t 'a bad request field is 400 with the engine'"'"'s message' '
	post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"temperature\":\"hot\"}"
	expect_code 400
	jq -e ".error.type == \"invalid_request_error\" and (.error.message | test(\"temperature\"))" body
	post /v1/chat/completions "{\"messages\":\"hi\",\"stream\":true}"
	expect_code 400
'
t 'a prompt past the context is 400 context_length_exceeded with both numbers' '
	post /v1/completions "{\"prompt\":\"Hello there\",\"max_tokens\":1000}"
	expect_code 400
	jq -e ".error.code == \"context_length_exceeded\" and (.error.message | test(\"256\"))
		and (.error.message | test(\"1002|1003|1004|1005\"))" body
'
t 'an unknown route is 404, a wrong method 405, an unknown model 404 model_not_found' '
	code=$(curl -s -o body -w "%{http_code}" "$url/v2/nothing")
	expect_code 404
	jq -e ".error.code == \"not_found\"" body
	code=$(curl -s -o body -w "%{http_code}" "$url/v1/chat/completions")
	expect_code 405
	post /v1/chat/completions "{\"model\":\"gpt-5\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}"
	expect_code 404
	jq -e ".error.code == \"model_not_found\" and (.error.message | test(\"gpt-5\"))" body
'
t 'a body over --max-body is 413, with a length or chunked' '
	big=$(head -c 6000 /dev/zero | tr "\0" a)
	post /v1/completions "{\"prompt\":\"$big\"}"
	expect_code 413
	jq -e ".error.code == \"request_too_large\"" body
	printf "{\"prompt\":\"%s\"}" "$big" > big.json
	code=$(curl -s -o body -w "%{http_code}" -H "Transfer-Encoding: chunked" \
		--data-binary @big.json "$url/v1/completions")
	expect_code 413
'
t 'POST /v1/feedback writes a feedback record for the request id' '
	post /v1/chat/completions "$chat"
	id=$(jq -r .id body)
	post /v1/feedback "$(jq -cn --arg id "$id" "{request_id: \$id, score: 1, comment: \"right answer\"}")"
	expect_code 200
	jq -e ".recorded == true and .request_id == \"req-${id#chatcmpl-}\"" body
	jq -se --arg r "req-${id#chatcmpl-}" "map(select(.kind == \"feedback\" and .request_id == \$r
		and .score == 1 and .comment == \"right answer\")) | length == 1" "$main/log.jsonl"
	post /v1/feedback "{\"request_id\":\"x\",\"score\":\"good\"}"
	expect_code 400
'
t 'a stream silent for --ping seconds carries ": ping" comments' '
	LLMOPS_SERVE_TEST_DELAY_MS=300 start "$PWD/s" --ping 0.1
	curl -sN "$url/v1/completions" --data-binary "{\"prompt\":\"Hi\",\"max_tokens\":3,\"stream\":true}" > s.txt
	grep -qx ": ping" s.txt
	sse_check s.txt
	stop
'
t 'promtool check metrics accepts /metrics' '
	command -v promtool >/dev/null || { echo "promtool missing (Debian: apt-get install prometheus)"; false; }
	curl -s "$url/metrics" > m.txt
	grep -q "^llmops_requests_total{model=\"tiny\",endpoint=\"/v1/chat/completions\",status=\"200\"}" m.txt
	grep -q "^llmops_time_to_first_token_seconds_bucket{model=\"tiny\",le=\"+Inf\"}" m.txt
	promtool check metrics < m.txt
'
t 'the openai npm SDK: chat, a stream with usage, and errors as exceptions' '
	command -v node >/dev/null && command -v npm >/dev/null || {
		echo "this test needs node and npm (Debian: apt-get install nodejs npm)"; false; }
	if [ "$(jq -r .version "$npm_openai/node_modules/openai/package.json" 2>/dev/null)" != 4.104.0 ]; then
		# Into a sibling first, so that an interrupted install is never taken for a cache.
		tmp="$npm_openai.tmp.$$"
		rm -rf "$tmp"; mkdir -p "$tmp"
		npm i -E --prefix "$tmp" --no-audit --no-fund openai@4.104.0 >npm.log 2>&1 ||
			{ cat npm.log; echo "npm could not install openai@4.104.0"; rm -rf "$tmp"; false; }
		rm -rf "$npm_openai"; mv "$tmp" "$npm_openai"
	fi
	cat > sdk.mjs <<-"JS"
	import { pathToFileURL } from "node:url";
	import assert from "node:assert/strict";
	const [dir, base] = process.argv.slice(2);
	const { default: OpenAI } = await import(
		pathToFileURL(dir + "/node_modules/openai/index.mjs").href);
	const client = new OpenAI({ baseURL: base + "/v1", apiKey: "none", maxRetries: 0 });
	const messages = [{ role: "user", content: "Hello, the router" }];
	const r = await client.chat.completions.create(
		{ model: "tiny", messages, max_tokens: 10, temperature: 0 });
	assert.equal(r.object, "chat.completion");
	assert.equal(r.choices[0].message.role, "assistant");
	assert.equal(r.usage.completion_tokens, 10);
	const s = await client.chat.completions.create({ model: "tiny", messages, max_tokens: 10,
		temperature: 0, stream: true, stream_options: { include_usage: true } });
	let text = "", finish = null, usage = null, role = null;
	for await (const c of s) {
		if (c.usage) usage = c.usage;
		const ch = c.choices[0];
		if (!ch) continue;
		role = role ?? ch.delta.role ?? null;
		text += ch.delta.content ?? "";
		finish = ch.finish_reason ?? finish;
	}
	assert.equal(role, "assistant");
	assert.equal(text, r.choices[0].message.content);
	assert.equal(finish, r.choices[0].finish_reason);
	assert.deepEqual(usage, r.usage);
	const list = await client.models.list();
	assert.equal(list.data[0].id, "tiny");
	await assert.rejects(client.chat.completions.create({ model: "nope", messages }),
		(e) => e instanceof OpenAI.NotFoundError && e.status === 404 && e.code === "model_not_found");
	await assert.rejects(client.completions.create({ model: "tiny", prompt: "Hi", max_tokens: 5000 }),
		(e) => e instanceof OpenAI.BadRequestError && e.code === "context_length_exceeded");
	console.log("sdk ok");
	JS
	node sdk.mjs "$npm_openai" "$url" > out
	grep -qx "sdk ok" out
'
t 'a full queue answers 429 overloaded with Retry-After (--parallel 1 --queue 1)' '
	LLMOPS_SERVE_TEST_DELAY_MS=50 start "$PWD/s" --parallel 1 --queue 1
	long="{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":200,\"ignore_eos\":true,\"stream\":true}"
	curl -sN --max-time 60 "$url/v1/chat/completions" --data-binary "$long" > a.txt 2>/dev/null &
	a=$!; echo $a >> "$scratch/pids"
	wait_for grep -q "\"content\":\"[^\"]" a.txt
	curl -sN --max-time 60 "$url/v1/chat/completions" --data-binary "$long" > b.txt 2>/dev/null &
	b=$!; echo $b >> "$scratch/pids"
	wait_for metric_is "llmops_requests_waiting{model=\"tiny\"}" 1
	post /v1/chat/completions "$chat"
	expect_code 429
	jq -e ".error.type == \"overloaded\" and .error.code == \"overloaded\"" body
	[ "$(header retry-after)" = 1 ]
	# Both clients leave: their work stops (the queued one is found gone when its first
	# token cannot be sent), and the server takes requests again.
	kill $a $b
	wait $a $b || true
	wait_for metric_is "llmops_requests_running{model=\"tiny\"}" 0
	[ "$(metric "llmops_requests_waiting{model=\"tiny\"}")" = 0 ]
	post /v1/chat/completions "$chat" --max-time 30
	expect_code 200
	stop
	jq -se "map(select(.status == 429 and .error.code == \"overloaded\")) | length == 1" "$sdir/log.jsonl"
	[ "$(lines "$sdir/log.jsonl")" = 4 ]
'
t 'a client that disconnects mid-stream stops its generation and frees its slot' '
	LLMOPS_SERVE_TEST_DELAY_MS=20 start "$PWD/s" --parallel 1 --queue 4
	long="{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":200,\"ignore_eos\":true,\"stream\":true}"
	run curl -sN --max-time 1 "$url/v1/chat/completions" --data-binary "$long"
	expect_status 28
	grep -q "\"content\":\"[^\"]" out
	# 200 tokens take 4 s at 20 ms each: an answer within 3 s means the slot came free.
	post /v1/chat/completions "{\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}],\"max_tokens\":2}" --max-time 3
	expect_code 200
	stop
	[ "$(lines "$sdir/log.jsonl")" = 2 ]
	jq -se "map(select(.finish_reason == \"abort\" and .status == 200
		and .error.code == \"client_closed\" and .usage.completion_tokens < 200)) | length == 1"  \
		"$sdir/log.jsonl"
	jq -se "map(select(.usage.completion_tokens == 2 and .status == 200)) | length == 1" \
		"$sdir/log.jsonl"
'
t 'SIGTERM under load: requests under way and queued complete, one log line each, exit 0' '
	LLMOPS_SERVE_TEST_DELAY_MS=40 start "$PWD/s" --parallel 2 --queue 8
	pids=
	for i in 1 2 3 4; do
		curl -sN --max-time 60 "$url/v1/chat/completions" --data-binary \
			"{\"messages\":[{\"role\":\"user\",\"content\":\"hi $i\"}],\"max_tokens\":30,\"ignore_eos\":true,\"stream\":true}" > s$i.txt &
		pids="$pids $!"; echo $! >> "$scratch/pids"
	done
	for i in 5 6; do
		curl -s --max-time 60 "$url/v1/completions" --data-binary \
			"{\"prompt\":\"hi $i\",\"max_tokens\":30,\"ignore_eos\":true}" > c$i.json &
		pids="$pids $!"; echo $! >> "$scratch/pids"
	done
	# All six have reached the server: two decoding, four queued.
	wait_for metric_is "llmops_requests_waiting{model=\"tiny\"}" 4
	kill -TERM "$spid"
	set +e; wait "$spid"; st=$?; set -e
	[ "$st" = 0 ] || { echo "llm-serve exited $st"; cat "$sdir/err"; false; }
	wait $pids
	for i in 1 2 3 4; do
		sse_check s$i.txt
		[ "$(events s$i.txt | tail -1 | jq -r .choices[0].finish_reason)" = length ]
		events s$i.txt | head -1 | jq -r .id | sed "s/^chatcmpl-/req-/" >> ids
	done
	for i in 5 6; do
		jq -e ".usage.completion_tokens == 30" c$i.json
		jq -r .id c$i.json | sed "s/^cmpl-/req-/" >> ids
	done
	[ "$(lines "$sdir/log.jsonl")" = 6 ]
	jq -r .request_id "$sdir/log.jsonl" | sort > logged
	sort ids | cmp - logged
	jq -se "all(.status == 200 and .finish_reason == \"length\" and .usage.completion_tokens == 30)" "$sdir/log.jsonl"
'
t 'SIGHUP reopens the log: lines after it go to a new file' '
	start "$PWD/s"
	post /v1/completions "{\"prompt\":\"one\",\"max_tokens\":1}"
	# The line is written when the response completes, which may be just after curl returns.
	wait_for has_lines "$sdir/log.jsonl" 1
	mv "$sdir/log.jsonl" "$sdir/log.1"
	kill -HUP "$spid"
	wait_for [ -e "$sdir/log.jsonl" ]
	post /v1/completions "{\"prompt\":\"two\",\"max_tokens\":1}"
	stop
	[ "$(lines "$sdir/log.1")" = 1 ] && [ "$(jq -r .prompt "$sdir/log.1")" = one ]
	[ "$(lines "$sdir/log.jsonl")" = 1 ] && [ "$(jq -r .prompt "$sdir/log.jsonl")" = two ]
'
t 'API keys: 401 without one or with a wrong one; the log names the key id, never the key' '
	printf "# keys\nsk-test-0123456789 name=team-a\n" > keys.txt
	start "$PWD/s" --api-keys keys.txt --log-content hash
	post /v1/models "" -X GET
	expect_code 401
	jq -e ".error.code == \"invalid_api_key\"" body
	post /v1/chat/completions "$chat" -H "Authorization: Bearer sk-wrong-0123456789"
	expect_code 401
	post /v1/chat/completions "$chat" -H "Authorization: Bearer sk-test-0123456789"
	expect_code 200
	code=$(curl -s -o /dev/null -w "%{http_code}" "$url/health")
	expect_code 200
	stop
	! grep -q "sk-test\|sk-wrong\|Hello, the router" "$sdir/log.jsonl"
	jq -se "map(.status) == [401, 401, 200] and .[2].key_id == \"team-a\"
		and (.[2].prompt_sha256 | length) == 64" "$sdir/log.jsonl"
'
t 'rate limits: past --rpm the answer is 429 with Retry-After' '
	start "$PWD/s" --rpm 1
	post /v1/completions "{\"prompt\":\"one\",\"max_tokens\":1}"
	expect_code 200
	[ "$(header x-ratelimit-limit-requests)" = 1 ]
	post /v1/completions "{\"prompt\":\"two\",\"max_tokens\":1}"
	expect_code 429
	jq -e ".error.code == \"rate_limit_exceeded\"" body
	[ "$(header retry-after)" -ge 1 ]
	stop
'
t 'HTTPS with --tls-cert and --tls-key' '
	command -v openssl >/dev/null || { echo "openssl missing"; false; }
	openssl req -x509 -newkey rsa:2048 -nodes -keyout key.pem -out cert.pem -days 2 \
		-subj /CN=localhost 2>/dev/null
	mkdir -p s
	llm-serve --model "$shared/model" --port 0 --port-file s/port --tls-cert cert.pem \
		--tls-key key.pem 2>s/err &
	spid=$!; sdir=$PWD/s; echo $spid >> "$scratch/pids"
	wait_for [ -s s/port ]
	wait_for curl -sf --cacert cert.pem "https://localhost:$(cat s/port)/ready" -o /dev/null
	[ "$(curl -s --cacert cert.pem "https://localhost:$(cat s/port)/health")" = "{\"status\":\"ok\"}" ]
	stop
'
t 'a client that stalls in the middle of its request is cut off after --timeout' '
	start "$PWD/s" --timeout 1
	cat > slow.py <<-"PY"
	import socket, sys
	s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
	s.sendall(b"POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{")
	s.settimeout(20)
	print("closed" if s.recv(1024) == b"" else "answered")
	PY
	/usr/bin/python3 slow.py "${url##*:}" > out
	[ "$(cat out)" = closed ]
	# The server goes on serving.
	[ "$(curl -s "$url/health")" = "{\"status\":\"ok\"}" ]
	stop
'
t 'usage errors exit 2; a port in use or a model that cannot load exits 3' '
	run llm-serve
	expect_status 2
	expect_err "llm-serve: --model is required"
	run llm-serve --model "$shared/model" --tls-cert x.pem
	expect_status 2
	run llm-serve --model "$shared/model" --port "${url##*:}"
	expect_status 3
	expect_err "llm-serve: cannot listen"
	run llm-serve --model nowhere/model --port 0
	expect_status 3
	expect_err "nowhere/model"
	no_sanitizer_report
'
t 'the shared server stops on SIGTERM with exit 0 and one log line per request' '
	kill -TERM "$(cat "$main/pid")"
	wait_for [ -s "$main/status" ]
	[ "$(cat "$main/status")" = 0 ] || { echo "exit status $(cat "$main/status")"; cat "$main/err"; false; }
	! grep -E "AddressSanitizer|runtime error:|LeakSanitizer" "$main/err"
	jq -e . "$main/log.jsonl" > /dev/null
	# Request ids are unique: no request was logged twice.
	[ "$(jq -r "select(.kind != \"feedback\") | .request_id" "$main/log.jsonl" | sort | uniq -d | wc -l)" = 0 ]
'
done_testing
