#!/bin/sh
# llm-serve following a registry:NAME@ALIAS model.  A promotion, seen on SIGHUP or with --watch,
# is loaded beside the version that answers and switched to while clients keep sending: no
# request fails, one under way finishes on the old version, those that arrive after the switch
# get the new one; /v1/models and each log line name the version that answered; an alias moved
# to a version that cannot load keeps the old one serving, with a warning.
#
# Requests last thanks to LLMOPS_SERVE_TEST_DELAY_MS (a pause after each piece of text).  The
# versions are told apart by their answers: sampled with a fixed seed, two models with other
# weights write other text, and the answer of each version is taken beforehand from a server
# of its model folder.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/serve-lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_API_KEY OPENAI_API_KEY LLMOPS_SERVE_TEST_DELAY_MS LLMOPS_PACK_REGISTRY

# Every process started here is stopped at the end, by its id.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# Three versions of a model much smaller than the tiny preset, with other weights.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$top_srcdir/data/sample/support.jsonl"
serve_model_config "$shared/cfg.json"
for i in 0 1 2; do
	llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --seed $((i + 1)) \
		--out "$shared/m$i"
	(cd "$shared" && llm-pack create -q "m$i" --name tiny --version "1.$i.0" > /dev/null)
done
ident() {
	tar -xOzf "$shared/tiny-$1.tar.gz" MANIFEST.json | sha256sum | cut -d" " -f1
}

# The requests: a chat, the same chat streamed, a completion streamed, and a long chat stream.
# Sampled (temperature 1, a seed) so that each version answers its own way.
chat='{"model":"registry:tiny@production","messages":[{"role":"user","content":"Hello"}],"max_tokens":8,"temperature":1,"seed":7,"ignore_eos":true}'
chat_stream=$(printf '%s' "$chat" | jq -c '. + {stream: true}')
text_stream='{"prompt":"how do I reset my password","max_tokens":8,"temperature":1,"seed":3,"ignore_eos":true,"stream":true}'
long=$(printf '%s' "$chat" | jq -c '. + {stream: true, max_tokens: 150}')

# start DIR MODEL [ARGS...]: start llm-serve on MODEL with its files in DIR, and wait until it
# is ready.  Sets $url and $spid.
start() {
	sdir=$1
	model=$2
	shift 2
	serve_start "$sdir" "$model" --parallel 8 "$@"
}
# stop: SIGTERM to $spid; its exit status must be 0, with no sanitizer report.
stop() {
	kill -TERM "$spid"
	set +e
	wait "$spid"
	st=$?
	set -e
	[ "$st" = 0 ] || { echo "llm-serve exited $st"; cat "$sdir/err"; return 1; }
	! grep -E 'AddressSanitizer|runtime error:|LeakSanitizer' "$sdir/err"
}
# wait_for COMMAND...: until it succeeds (at most 60 s).
wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 1200 ] || { echo "gave up waiting for: $*"; return 1; }
		sleep 0.05
	done
}
# send KIND OUT HEADERS: one request of KIND (chat, chat_stream, text_stream, long) to $url;
# prints curl's exit status and the HTTP status.
send() {
	case $1 in
	chat) b=$chat p=chat/completions ;;
	chat_stream) b=$chat_stream p=chat/completions ;;
	text_stream) b=$text_stream p=completions ;;
	long) b=$long p=chat/completions ;;
	esac
	set +e
	code=$(curl -sS -N -o "$2" -D "$3" -w '%{http_code}' -H 'Content-Type: application/json' \
		--data-binary "$b" "$url/v1/$p")
	rc=$?
	set -e
	echo "$rc $code"
}
# text KIND FILE: the answer's text, as a JSON string (a stream's pieces put together).
text() {
	case $1 in
	chat) jq -c '.choices[0].message.content' "$2" ;;
	*) tr -d '\r' < "$2" | sed -n 's/^data: //p' | grep -v '^\[DONE\]$' |
		jq -sc 'map(.choices[0] | (.delta.content // .text // "")) | add' ;;
	esac
}
# request_id HEADERS
request_id() {
	tr -d '\r' < "$1" | awk 'tolower($1) == "x-request-id:" { print $2 }'
}
# client KIND N: requests of KIND one after another until ./stop exists (or the server is
# gone: a test that failed half-way); a line for each in ./res.KIND.N: curl's exit status, the
# HTTP status, the request id, the answer's text.
client() {
	while [ ! -e stop ] && kill -0 "$spid" 2>/dev/null; do
		st=$(send "$1" "o.$1.$2" "h.$1.$2")
		printf '%s %s %s\n' "$st" "$(request_id "h.$1.$2")" "$(text "$1" "o.$1.$2")" >> "res.$1.$2"
	done
}
# clients KIND...: start one client of each KIND in the background; $clients has their ids.
clients() {
	clients=
	n=0
	rm -f stop
	for k in "$@"; do
		n=$((n + 1))
		client "$k" "$n" &
		clients="$clients $!"
		echo $! >>"$scratch/pids"
	done
}
# end_clients: stop them and wait until their last requests are done.
end_clients() {
	touch stop
	for p in $clients; do wait "$p"; done
}
# answered: the requests the clients have had answered so far.
answered() {
	cat res.* 2>/dev/null | wc -l | tr -d ' '
}
# answered_ge N: at least N so far.
answered_ge() {
	[ "$(answered)" -ge "$1" ]
}
# count_is N PATTERN FILE: N lines of FILE match PATTERN now.
count_is() {
	[ "$(grep -c -- "$2" "$3")" = "$1" ]
}
# serves VERSION: /v1/models names it as the version that answers.
serves() {
	curl -s "$url/v1/models" | jq -e --arg v "$1" '.data[0].version == $v' > /dev/null
}
# now_ms: the wall clock in milliseconds, as the log's ts.
now_ms() {
	date +%s%3N
}
# versions LOG...: "request_id version arrival_ms end_ms" for each request line of the logs.
versions() {
	jq -r 'select(.request_id and .version) |
		((.ts[0:19] + "Z" | fromdate) * 1000 + (.ts[20:23] | tonumber)) as $t |
		"\(.request_id) \(.version) \($t) \($t + .latency_ms)"' "$@"
}
# check_answers LOG...: every request of the clients succeeded, and its answer is the one of
# the version its log line names.  Writes ./by-version: "version arrival_ms end_ms" each.
check_answers() {
	versions "$@" > v.txt
	: > by-version
	for f in res.*; do
		kind=${f#res.}
		kind=${kind%.*}
		while read -r rc code id answer; do
			[ "$rc" = 0 ] && [ "$code" = 200 ] ||
				{ echo "$f: a request failed: curl $rc, HTTP $code"; return 1; }
			set -- $(awk -v id="$id" '$1 == id { print $2, $3, $4 }' v.txt)
			[ $# = 3 ] || { echo "$id is not in the log with a version"; return 1; }
			[ "$answer" = "$(cat "$shared/want.$1.$kind")" ] ||
				{ echo "$f: $id was answered $answer, not as $1 answers"; return 1; }
			echo "$1 $2 $3" >> by-version
		done < "$f"
	done
}

# What each version answers, from servers of the model folders.  In a subshell: send and stop
# turn set -e on, which the test bodies want and the top level must not have.
for minor in 0 1; do
	(
		start "$shared/ref$minor" "$shared/m$minor" --model-name registry:tiny@production ||
			exit 1
		for k in chat chat_stream text_stream long; do
			st=$(send $k "$shared/o" "$shared/h")
			[ "$st" = "0 200" ] || exit 1
			text $k "$shared/o" > "$shared/want.1.$minor.0.$k"
		done
		stop
	) || { echo "Bail out! the reference server for 1.$minor.0 failed"; exit 1; }
done
cmp -s "$shared/want.1.0.0.chat" "$shared/want.1.1.0.chat" &&
	{ echo "Bail out! the two versions answer alike"; exit 1; }

t 'a promotion seen on SIGHUP: loaded beside, switched with no request failed or dropped' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz "$shared"/tiny-1.1.0.tar.gz > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	LLMOPS_SERVE_TEST_DELAY_MS=30 start "$PWD/s" registry:tiny@production
	serves 1.0.0
	clients chat chat_stream text_stream chat
	wait_for answered_ge 4
	# A long stream under way on 1.0.0 when the alias moves.
	send long long.out long.h > long.st &
	echo $! >> "$scratch/pids"
	wait_for grep -q "\"content\":\"[^\"]" long.out
	llm-pack promote -q tiny@1.1.0 --to production
	kill -HUP "$spid"
	wait_for serves 1.1.0
	switched=$(now_ms)
	before=$(answered)
	wait_for [ -s long.st ]
	wait_for answered_ge $((before + 8))
	end_clients
	stop
	check_answers "$sdir/log.jsonl"
	# Answered by both; every request that arrived after the switch by 1.1.0.
	grep -q "^1.0.0 " by-version && grep -q "^1.1.0 " by-version
	! awk -v t="$switched" "\$2 > t && \$1 != \"1.1.0\"" by-version | grep .
	# The long stream finished on 1.0.0, complete, after 1.1.0 had begun to answer.
	[ "$(cat long.st)" = "0 200" ]
	tail -c 200 long.out | grep -q "data: \[DONE\]"
	[ "$(text long long.out)" = "$(cat "$shared/want.1.0.0.long")" ]
	set -- $(awk -v id="$(request_id long.h)" "\$1 == id { print \$2, \$4 }" v.txt)
	[ "$1" = 1.0.0 ]
	first_new=$(awk "\$1 == \"1.1.0\" { print \$2 }" by-version | sort -n | head -1)
	awk -v e="$2" -v f="$first_new" "BEGIN { exit !(e > f) }"
	# What the server said, and the old model closed after its last request.
	grep -q "loading it beside tiny@1.0.0" "$sdir/err"
	grep -q "now serving tiny@1.1.0 (sha256:$(ident 1.1.0))" "$sdir/err"
	grep -q "tiny@1.0.0: closed after its last request" "$sdir/err"
'

t '/v1/models, the log and the metrics name the version that answers' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz "$shared"/tiny-1.1.0.tar.gz > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	start "$PWD/s" registry:tiny@production
	curl -s "$url/v1/models" > m0.json
	jq -e --arg a "sha256:$(ident 1.0.0)" ".data[0] | .id == \"registry:tiny@production\" and
		.root == \"tiny@1.0.0\" and .version == \"1.0.0\" and .artifact == \$a" m0.json
	send chat o h > /dev/null
	llm-pack alias set -q tiny production 1.1.0
	kill -HUP "$spid"
	wait_for serves 1.1.0
	curl -s "$url/v1/models" > m1.json
	jq -e --arg a "sha256:$(ident 1.1.0)" ".data[0] | .id == \"registry:tiny@production\" and
		.root == \"tiny@1.1.0\" and .version == \"1.1.0\" and .artifact == \$a" m1.json
	send chat o h > /dev/null
	send text_stream o h > /dev/null
	wait_for count_is 1 "\"endpoint\":\"/v1/completions\"" "$sdir/log.jsonl"
	# Every line of an answered request: the model as called, the version and the artifact.
	jq -e --arg a0 "sha256:$(ident 1.0.0)" --arg a1 "sha256:$(ident 1.1.0)" -s "
		map(select(.endpoint != \"/v1/models\")) | length == 3 and
		(.[0] | .model == \"registry:tiny@production\" and .version == \"1.0.0\" and .artifact == \$a0) and
		(.[1:] | all(.model == \"registry:tiny@production\" and .version == \"1.1.0\" and .artifact == \$a1))" \
		"$sdir/log.jsonl"
	# Both models counted under one name; nothing left running.
	curl -s "$url/metrics" | grep -q "^llmops_requests_total{model=\"registry:tiny@production\",endpoint=\"/v1/chat/completions\",status=\"200\"} 2"
	curl -s "$url/metrics" | grep -q "^llmops_requests_running{model=\"registry:tiny@production\"} 0"
	# A SIGHUP still reopens the log.
	mv "$sdir/log.jsonl" "$sdir/log.1"
	kill -HUP "$spid"
	wait_for [ -e "$sdir/log.jsonl" ]
	send chat o h > /dev/null
	stop
	[ "$(lines "$sdir/log.jsonl")" = 1 ] && jq -e ".version == \"1.1.0\"" "$sdir/log.jsonl"
	grep -q "registry:tiny@production is still tiny@1.1.0" "$sdir/err"
'

t '--watch picks up a promotion with no signal, and no request fails' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz "$shared"/tiny-1.1.0.tar.gz > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	LLMOPS_SERVE_TEST_DELAY_MS=20 start "$PWD/s" registry:tiny@production --watch 0.2
	clients chat text_stream chat_stream
	wait_for answered_ge 3
	llm-pack promote -q tiny@1.1.0 --to production
	wait_for serves 1.1.0
	switched=$(now_ms)
	before=$(answered)
	wait_for answered_ge $((before + 6))
	end_clients
	stop
	check_answers "$sdir/log.jsonl"
	grep -q "^1.0.0 " by-version && grep -q "^1.1.0 " by-version
	! awk -v t="$switched" "\$2 > t && \$1 != \"1.1.0\"" by-version | grep .
'

t 'an alias moved to a damaged or missing version keeps the old one serving, with a warning' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz "$shared"/tiny-1.1.0.tar.gz \
		"$shared"/tiny-1.2.0.tar.gz > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	# 1.2.0 stored damaged (never loaded, so not in the cache either).
	head -c 3000 "$shared/tiny-1.2.0.tar.gz" > reg/names/tiny/versions/1.2.0/artifact.tar.gz
	LLMOPS_SERVE_TEST_DELAY_MS=10 start "$PWD/s" registry:tiny@production --watch 0.1
	clients chat text_stream
	llm-pack alias set -q tiny production 1.2.0
	wait_for grep -q "warning: cannot serve tiny@1.2.0: .*; still serving tiny@1.0.0" "$sdir/err"
	serves 1.0.0
	# --watch does not load it again at every round; a SIGHUP does.
	sleep 1
	[ "$(grep -c "cannot serve tiny@1.2.0" "$sdir/err")" = 1 ]
	kill -HUP "$spid"
	wait_for count_is 2 "cannot serve tiny@1.2.0" "$sdir/err"
	# An alias that names a version the registry does not have.
	echo 9.9.9 > reg/names/tiny/aliases/production.new
	mv reg/names/tiny/aliases/production.new reg/names/tiny/aliases/production
	wait_for grep -q "warning: registry:tiny@production: .*9.9.9.*; still serving tiny@1.0.0" "$sdir/err"
	sleep 1
	[ "$(grep -c "9.9.9" "$sdir/err")" = 1 ]
	serves 1.0.0
	before=$(answered)
	wait_for answered_ge $((before + 4))
	# Back to a good version: served.
	llm-pack alias set -q tiny production 1.1.0
	wait_for serves 1.1.0
	before=$(answered)
	wait_for answered_ge $((before + 4))
	end_clients
	stop
	check_answers "$sdir/log.jsonl"
	grep -q "^1.0.0 " by-version && grep -q "^1.1.0 " by-version
	! grep -q "^1.2.0 " by-version
'

t 'a version named in the reference is pinned: reported, and a SIGHUP moves nothing' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz "$shared"/tiny-1.1.0.tar.gz > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	start "$PWD/s" registry:tiny@1.0.0 --model-name registry:tiny@production
	serves 1.0.0
	llm-pack alias set -q tiny production 1.1.0
	kill -HUP "$spid"
	send chat o h > /dev/null
	stop
	[ "$(text chat o)" = "$(cat "$shared/want.1.0.0.chat")" ]
	! grep -q "moved\|still" "$sdir/err"
'

t '--watch needs a model that can move; a registry name that does not resolve exits 3' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared"/tiny-1.0.0.tar.gz > /dev/null
	run llm-serve --model "$shared/m0" --port 0 --watch 5
	expect_status 2; expect_err "--watch needs a model that can move"
	run llm-serve --model registry:tiny@1.0.0 --port 0 --watch 5
	expect_status 2; expect_err "--watch needs a model that can move"
	run llm-serve --model registry:tiny@production --port 0 --watch 5
	expect_status 3; expect_err "production"
	run llm-serve --model registry:tiny --port 0 --watch -1
	expect_status 2
'

done_testing
