#!/bin/sh
# The HTTP backend (lib/backend/http.c) against a fake OpenAI server (tests/cli/fake-openai.py):
# answers and streams assembled, openai-python's retry policy, timeouts, concurrency, the key.
# The driver tests/unit/backend-cli prints one JSON line per result.  Each test uses prompts
# of its own, because the server counts attempts (and applies its fault markers) per prompt.
. "$top_srcdir/tests/cli/lib.sh"
cli=$top_builddir/tests/unit/backend-cli
fake=$top_srcdir/tests/cli/fake-openai.py
py=/usr/bin/python3

# Servers started here are stopped when the script ends.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# serve DIR [ARGS...]: start a server logging to DIR/log.jsonl; prints its base URL.
serve() {
	sdir=$1
	shift
	mkdir -p "$sdir"
	"$py" "$fake" --port-file "$sdir/port" --log "$sdir/log.jsonl" "$@" >/dev/null 2>"$sdir/err" &
	echo $! >>"$scratch/pids"
	i=0
	while [ ! -s "$sdir/port" ]; do
		i=$((i + 1))
		[ $i -lt 200 ] || { echo "the fake server did not start" >&2; cat "$sdir/err" >&2; return 1; }
		sleep 0.05
	done
	touch "$sdir/log.jsonl"
	echo "http://127.0.0.1:$(cat "$sdir/port")/v1"
}

srv=$scratch/server
url=$(serve "$srv")

# chat PROMPT [JSON fields]: one chat request body.
chat() {
	extra=${2-}
	[ -n "$extra" ] || extra="{}"
	jq -cn --arg p "$1" "{messages: [{role: \"user\", content: \$p}]} + $extra"
}
# attempts PROMPT: how many attempts the server saw for the prompt.
attempts() {
	jq -s --arg p "$1" '[.[] | select(.prompt == $p)] | length' "$srv/log.jsonl"
}
# gap_at_least PROMPT SECONDS: the server saw the second attempt that long after the first.
gap_at_least() {
	jq -se --arg p "$1" --argjson s "$2" '[.[] | select(.prompt == $p) | .t] | .[1] - .[0] >= $s' \
		"$srv/log.jsonl" >/dev/null
}
# arrived_apart FIRST SECOND SECONDS: the server saw prompt SECOND that long after FIRST.
arrived_apart() {
	jq -se --arg a "$1" --arg b "$2" --argjson s "$3" \
		'(map(select(.prompt == $b))[0].t) - (map(select(.prompt == $a))[0].t) >= $s' \
		"$srv/log.jsonl" >/dev/null
}
# stats URL: the server's /stats.
stats() {
	"$py" -c 'import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())' \
		"${1%/v1}/stats"
}
# one FILTER: the single result line must satisfy the jq filter.
one() {
	[ "$(lines out)" = 1 ] || { echo "want one result line:"; cat out err; return 1; }
	jq -e "$1" out >/dev/null || { echo "result fails $1:"; cat out; return 1; }
}

t 'a chat request gets the echo, its usage and the model, in one attempt' '
	chat "plain hello world" > in.jsonl
	run "$cli" --ref "$url" --model-name m1 < in.jsonl; expect_status 0
	one ".err == \"ok\" and .status == 200 and .attempts == 1 and .ttft == false and .latency_ok"
	one ".content == \"echo: plain hello world\" and .finish_reason == \"stop\""
	one ".usage == {prompt_tokens: 3, completion_tokens: 4, total_tokens: 7}"
	one ".response.object == \"chat.completion\" and .response.model == \"m1\""
	jq -se "[.[] | select(.prompt == \"plain hello world\")] | .[0].model == \"m1\" and .[0].stream == false and .[0].path == \"/v1/chat/completions\"" "$srv/log.jsonl"
'

t 'the model of the body wins over --model-name, and stream fields are the backend'"'"'s' '
	chat "own model" "{model: \"mine\", stream: true, stream_options: {include_usage: true}}" > in.jsonl
	run "$cli" --ref "$url/" --model-name m1 < in.jsonl; expect_status 0
	one ".err == \"ok\" and .ttft == false and .content == \"echo: own model\""
	jq -se "[.[] | select(.prompt == \"own model\")] | .[0].model == \"mine\" and .[0].stream == false and .[0].include_usage == false" "$srv/log.jsonl"
'

t 'a completions request goes to /v1/completions' '
	echo "{\"prompt\":\"complete this\",\"max_tokens\":2}" > in.jsonl
	run "$cli" --ref "$url" --endpoint completions < in.jsonl; expect_status 0
	one ".err == \"ok\" and .content == \"echo: complete\" and .finish_reason == \"length\""
	one ".response.object == \"text_completion\" and .usage.completion_tokens == 2"
	jq -se "[.[] | select(.prompt == \"complete this\")] | .[0].path == \"/v1/completions\"" "$srv/log.jsonl"
'

t 'a streamed chat answer is assembled into the non-streamed one, with ttft measured' '
	chat "stream me please" "{logprobs: true}" > in.jsonl
	run "$cli" --ref "$url" --model-name m1 < in.jsonl; expect_status 0
	mv out plain
	run "$cli" --ref "$url" --model-name m1 --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 1 and .ttft == true and .ttft_ok"
	one ".content == \"echo: stream me please\" and .deltas == .content and .finish_reason == \"stop\""
	one ".usage == {prompt_tokens: 3, completion_tokens: 4, total_tokens: 7}"
	one ".response.choices[0].message.role == \"assistant\" and .response.object == \"chat.completion\""
	# The same body as the server answers without streaming, but for the id.
	jq -e --slurpfile p plain "(.response | del(.id)) == (\$p[0].response | del(.id))" out
	jq -se "[.[] | select(.prompt == \"stream me please\")] | .[1].stream == true and .[1].include_usage == true" "$srv/log.jsonl"
'

t 'streamed completions with logprobs and two choices assemble like the non-streamed answer' '
	echo "{\"prompt\":\"several words to stream here\",\"logprobs\":1,\"n\":2}" > in.jsonl
	run "$cli" --ref "$url" --endpoint completions < in.jsonl; expect_status 0
	mv out plain
	run "$cli" --ref "$url" --endpoint completions --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .ttft and (.response.choices | length) == 2"
	one ".response.choices[1].text == \"echo: several words to stream here\""
	one ".response.choices[0].logprobs.text_offset == [0, 5, 13, 19, 22, 29]"
	jq -e --slurpfile p plain "(.response | del(.id)) == (\$p[0].response | del(.id))" out
'

t 'CRLF line ends and comments in the stream, and a finish_reason without [DONE], are fine' '
	chat "crlf and ping @crlf @no-done" > in.jsonl
	run "$cli" --ref "$url" --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 1 and .content == \"echo: crlf and ping @crlf @no-done\""
'

t '429 with retry-after is retried after the hint' '
	p="limited once @status=429*1 @retry-after=1"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .status == 200 and .attempts == 2 and .content == \"echo: $p\""
	[ "$(attempts "$p")" = 2 ]
	gap_at_least "$p" 0.9
'

t 'a hint of zero or less, or not a number, falls back to the backoff' '
	{ chat "hint negative @status=429*1 @retry-after=-5"; chat "hint junk @status=429*1 @retry-after=soon"; } > in.jsonl
	run "$cli" --ref "$url" --concurrency 2 < in.jsonl; expect_status 0
	jq -se "length == 2 and all(.err == \"ok\" and .attempts == 2)" out
'

t 'retry-after-ms is preferred to retry-after' '
	p="limited ms @status=429*1 @retry-after-ms=1200 @retry-after=0"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	gap_at_least "$p" 1.1
'

t 'retry-after as an HTTP date is honoured' '
	p="limited date @status=503*1 @retry-after=date+2"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	gap_at_least "$p" 0.9
'

t 'a retry-after longer than the maximum is not waited for: the request fails at once' '
	p="limited long @status=429 @retry-after=1000"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .status == 429 and .attempts == 1 and .error_code == \"rate_limit_exceeded\""
	one ".error_message == \"HTTP 429: Rate limit reached (fake)\" and .content == null"
	[ "$(attempts "$p")" = 1 ]
	# A number too large for a double is a very long hint, as in openai-python.
	chat "limited huge @status=429 @retry-after-ms=1e400" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .attempts == 1"
	p="limited short @status=429 @retry-after=2"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" --max-retry-after 1 < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .attempts == 1"
'

t '500 is retried and then succeeds; a 503 every time fails after the retries' '
	chat "server error once @status=500*1" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	p="server error always @status=503"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" --max-retries 1 < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .status == 503 and .attempts == 2 and .error_code == \"server_error\""
	[ "$(attempts "$p")" = 2 ]
'

t 'x-should-retry overrides the status: false stops a 500, true retries a 400' '
	p="told not to @status=500 @should-retry=false"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .attempts == 1"
	chat "told to @status=400*1 @should-retry=true" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	chat "bad request @status=400" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .attempts == 1 and .status == 400 and .error_code == \"fake_400\""
'

t 'insufficient_quota is never retried' '
	p="no money @quota @retry-after=1 @should-retry=true"
	chat "$p" > in.jsonl
	run "$cli" --ref "$url" --stream < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .status == 429 and .attempts == 1 and .error_code == \"insufficient_quota\""
	[ "$(attempts "$p")" = 1 ]
'

t 'a connection dropped mid-stream, before or after the first token, is retried' '
	{ chat "dropped before @drop=before*1"; chat "dropped after @drop=after*1"; } > in.jsonl
	run "$cli" --ref "$url" --stream --concurrency 2 < in.jsonl; expect_status 0
	[ "$(lines out)" = 2 ]
	jq -se "length == 2 and all(.err == \"ok\" and .attempts == 2 and .ttft and .finish_reason == \"stop\")" out
	jq -se "map(select(.tag == 1))[0] | .content == \"echo: dropped after @drop=after*1\"" out
	[ "$(attempts "dropped after @drop=after*1")" = 2 ]
	chat "dropped plain @drop=before*1" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	chat "dropped for good @drop=after" > in.jsonl
	run "$cli" --ref "$url" --stream --max-retries 0 < in.jsonl; expect_status 0
	one ".err == \"io_error\" and .attempts == 1 and .error_code == \"connection\" and .status == 200"
'

t 'an error event in the stream fails the attempt; the retry succeeds' '
	chat "event error once @error-event*1" > in.jsonl
	run "$cli" --ref "$url" --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2 and .content == \"echo: event error once @error-event*1\""
	chat "event error always @error-event" > in.jsonl
	run "$cli" --ref "$url" --stream --max-retries 0 < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .attempts == 1 and .error_code == \"server_error\" and .content == null"
	one ".error_message | test(\"fake failure in the middle of the stream\")"
'

t 'a stream that ends without [DONE] and without finish_reason is a failed attempt' '
	chat "cut short once @truncate*1" > in.jsonl
	run "$cli" --ref "$url" --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
	chat "cut short always @truncate" > in.jsonl
	run "$cli" --ref "$url" --stream --max-retries 0 < in.jsonl; expect_status 0
	one ".err == \"io_error\" and .error_code == \"connection\" and .attempts == 1"
'

t 'a slow answer times out per attempt, and the retry gets the answer' '
	chat "too slow @slow=5" > in.jsonl
	run "$cli" --ref "$url" --timeout 0.5 --max-retries 0 < in.jsonl; expect_status 0
	one ".err == \"io_error\" and .error_code == \"timeout\" and .attempts == 1 and .status == 0"
	chat "slow once @slow=4*1" > in.jsonl
	run "$cli" --ref "$url" --timeout 2 --stream < in.jsonl; expect_status 0
	one ".err == \"ok\" and .attempts == 2"
'

t 'a refused connection is retried, then fails as an I/O error' '
	chat "nobody home" > in.jsonl
	run "$cli" --ref http://127.0.0.1:1/v1 --max-retries 1 < in.jsonl; expect_status 0
	one ".err == \"io_error\" and .error_code == \"connection\" and .attempts == 2 and .status == 0"
'

t 'concurrency: requests run in parallel up to the limit, each answered once' '
	u=$(serve conc)
	i=0; while [ $i -lt 12 ]; do chat "parallel $i @hold=4"; i=$((i + 1)); done > in.jsonl
	run "$cli" --ref "$u" --concurrency 4 --stream < in.jsonl; expect_status 0
	[ "$(lines out)" = 12 ]
	jq -se "length == 12 and all(.err == \"ok\" and .attempts == 1 and (.content | startswith(\"echo: parallel \")))" out
	jq -se "[.[].tag] | sort == [range(12)]" out
	jq -se "all(.content == \"echo: parallel \(.tag) @hold=4\")" out
	stats "$u" > stats.json
	jq -e ".requests == 12 and .max_inflight == 4 and (.attempts | length) == 12 and all(.attempts[]; . == 1)" stats.json
'

t 'concurrency 1 keeps one request in flight' '
	u=$(serve one)
	i=0; while [ $i -lt 5 ]; do chat "serial $i @slow=0.1"; i=$((i + 1)); done > in.jsonl
	run "$cli" --ref "$u" < in.jsonl; expect_status 0
	jq -se "length == 5 and all(.err == \"ok\")" out
	stats "$u" > stats.json
	jq -e ".requests == 5 and .max_inflight == 1" stats.json
'

t 'requests per minute are paced: at 60 a minute, one a second' '
	{ chat "rpm first"; chat "rpm second"; chat "rpm third"; } > in.jsonl
	run "$cli" --ref "$url" --rpm 60 --concurrency 3 < in.jsonl; expect_status 0
	jq -se "length == 3 and all(.err == \"ok\" and .attempts == 1)" out
	arrived_apart "rpm first" "rpm third" 1.8
'

t 'tokens per minute are paced, charged by the usage the server reports' '
	# 600 a minute is 10 a second, in a bucket of 10.  The first request is estimated at 7
	# tokens but uses 28, so the second (13, so it waits for a full bucket) waits about 2.8 s;
	# charged by the estimate alone it would wait under 1 s.
	{ chat "tpm heavy @usage=25" "{max_tokens: 1}"; chat "tpm next" "{max_tokens: 10}"; } > in.jsonl
	run "$cli" --ref "$url" --tpm 600 < in.jsonl; expect_status 0
	jq -se "length == 2 and all(.err == \"ok\")" out
	arrived_apart "tpm heavy @usage=25" "tpm next" 2
'

t 'the API key goes in an Authorization header and is never printed' '
	u=$(serve keyed --key sk-test-0123456789)
	chat "with key" > in.jsonl
	run "$cli" --ref "$u" --key sk-test-0123456789 < in.jsonl; expect_status 0
	one ".err == \"ok\""
	chat "wrong key" > in.jsonl
	run "$cli" --ref "$u" --key sk-wrong-0123456789 < in.jsonl; expect_status 0
	one ".err == \"remote_error\" and .status == 401 and .attempts == 1 and .error_code == \"invalid_api_key\""
	if grep -q "sk-" out err; then echo "the key was printed"; exit 1; fi
	chat "no key" > in.jsonl
	run "$cli" --ref "$u" < in.jsonl; expect_status 0
	one ".status == 401"
	jq -se "map(.auth) == [\"ok\", \"wrong\", \"missing\"]" keyed/log.jsonl
'

t 'references the backend cannot open are refused, naming them' '
	echo "{}" > in.jsonl
	LLMOPS_PACK_REGISTRY=$PWD/no-registry; export LLMOPS_PACK_REGISTRY
	run "$cli" --ref registry:support-bot@production < in.jsonl; expect_status 3
	expect_err "support-bot: no such model in $PWD/no-registry"
	run "$cli" --ref registry:Bad < in.jsonl; expect_status 2; expect_err "not a model name"
	run "$cli" --ref bot-1.0.0.tar.gz < in.jsonl; expect_status 3; expect_err "bot-1.0.0.tar.gz"
	run "$cli" --ref ./no-such-model < in.jsonl; expect_status 3; expect_err "./no-such-model: no such"
	run "$cli" --ref in.jsonl < in.jsonl; expect_status 2; expect_err "in.jsonl: not a model reference"
	run "$cli" --ref "http://exa mple/v1" < in.jsonl; expect_status 2; expect_err "not a valid server URL"
	run "$cli" --ref "$url" --concurrency 0 < in.jsonl; expect_status 2; expect_err "concurrency"
'

t 'a request body that is not a JSON object is refused' '
	echo "[1, 2]" > in.jsonl
	run "$cli" --ref "$url" < in.jsonl; expect_status 2; expect_err "not a JSON object"
	no_sanitizer_report
'

done_testing
