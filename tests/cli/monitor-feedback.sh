#!/bin/sh
# llm-monitor feedback: add (the request log's line with an id, one O_APPEND write, mode 0600),
# import (field mapping, bad records), join (feedback before or after its request, counted once
# by id, orphans, --only-rated, --max-pending's policy, --follow streaming with --join-wait),
# and the real path: llm-serve on loopback writes requests and POST /v1/feedback records, in
# either order, and feedback join attaches them.  Also the man page against --help.
. "$top_srcdir/tests/cli/lib.sh"
. "$top_srcdir/tests/cli/serve-lib.sh"
man=$top_srcdir/man
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_SERVE_TEST_DELAY_MS
# Every process started here is stopped at the end, by its id.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# A small log: feedback for req-2 before its request and after it, the same feedback twice,
# feedback for a request that is not there, and a record without a request id.
mklog() {
	cat > log.jsonl <<'EOF'
{"kind":"feedback","request_id":"req-2","score":1,"comment":"wrong","ts":"2026-01-02T03:00:00.000Z"}
{"ts":"2026-01-02T03:04:05.678Z","request_id":"req-1","model":"m","status":200,"latency_ms":10,"prompt":"hi","output":"hello"}
{"ts":"2026-01-02T03:04:06.000Z","request_id":"req-2","model":"m","status":200,"latency_ms":2000,"prompt":"2+2?","output":"5"}
{"kind":"feedback","request_id":"req-2","score":2,"comment":"correction: 4","ts":"2026-01-02T03:05:00.000Z"}
{"kind":"feedback","request_id":"req-2","score":1,"comment":"wrong","ts":"2026-01-02T03:00:00.000Z"}
{"kind":"feedback","request_id":"req-9","score":5}
{"prompt":"no id here","output":"ok"}
EOF
}

t 'feedback add appends the request log line with an id, in one write, mode 0600' '
	llm-monitor feedback add --log new.jsonl --request req-1 --score 4 --comment "good \"one\"" \
		--ts 2026-01-02T03:04:05Z
	[ "$(stat -c %a new.jsonl)" = 600 ]
	[ "$(lines new.jsonl)" = 1 ]
	jq -e "(keys_unsorted == [\"kind\",\"request_id\",\"score\",\"comment\",\"ts\",\"id\"]) and
		.kind == \"feedback\" and .score == 4 and .comment == \"good \\\"one\\\"\" and
		.ts == \"2026-01-02T03:04:05.000Z\" and (.id | test(\"^fb-[0-9a-f]{24}$\"))" new.jsonl
	# Appending keeps what is there, and without --log the line goes to stdout.
	llm-monitor feedback add --log new.jsonl --request req-2 --score 1
	[ "$(lines new.jsonl)" = 2 ]
	llm-monitor feedback add --request req-3 --score 0.5 > out
	jq -e ".request_id == \"req-3\" and .score == 0.5 and (has(\"comment\") | not)" out
'
t 'the same feedback added twice has one id and is joined once' '
	echo "{\"request_id\":\"req-1\",\"prompt\":\"p\",\"output\":\"o\"}" > log.jsonl
	llm-monitor feedback add --log log.jsonl --request req-1 --score 2 --comment same
	llm-monitor feedback add --log log.jsonl --request req-1 --score 2 --comment same
	llm-monitor feedback add --log log.jsonl --request req-1 --score 2 --comment other
	[ "$(jq -r "select(.kind) | .id" log.jsonl | sort -u | wc -l)" = 2 ]
	llm-monitor feedback join log.jsonl > out 2> err
	jq -e ".feedback.count == 2 and .feedback.scores == [2,2] and
		.feedback.comments == [\"same\",\"other\"]" out
	grep -q "(1 duplicates)" err
	# An id given is kept; the derived one matches what a reader derives for a record with
	# the same ts and no id.
	llm-monitor feedback add --request r --score 1 --id mine | jq -e ".id == \"mine\""
	llm-monitor feedback add --request r --score 1 --ts 1767323045 | jq -c "del(.id)" > noid.jsonl
	llm-monitor feedback add --request r --score 1 --ts 1767323045 >> noid.jsonl
	echo "{\"request_id\":\"r\",\"prompt\":\"x\"}" >> noid.jsonl
	llm-monitor feedback join -q noid.jsonl | jq -e ".feedback.count == 1"
'
t 'feedback add refuses what it cannot write' '
	run llm-monitor feedback add --score 1; expect_status 2; expect_err "needs --request"
	run llm-monitor feedback add --request r; expect_status 2; expect_err "needs --score"
	run llm-monitor feedback add --request r --score good; expect_status 2; expect_err "--score: expected a number"
	run llm-monitor feedback add --request r --score nan; expect_status 2
	run llm-monitor feedback add --request r --score 1 --ts yesterday; expect_status 2; expect_err "--ts"
	run llm-monitor feedback add --request r --score 1 --log "$PWD/no/such/dir/log"; expect_status 3
	expect_err "cannot append"
	run llm-monitor feedback add --request r --score 1 extra.jsonl; expect_status 2
	run llm-monitor feedback; expect_status 2; expect_err "a sub-verb is needed"
	run llm-monitor feedback frob; expect_status 2; expect_err "unknown sub-verb"
	run llm-monitor feedback join --score 1; expect_status 2; expect_err "--score is an option of '\''feedback add'\''"
	run llm-monitor feedback import --only-rated; expect_status 2; expect_err "option of '\''feedback join'\''"
'
t 'feedback import maps other tools'\'' fields and writes normalized records' '
	cat > in.jsonl <<-EOF
	{"trace":{"request":"req-1"},"value":true,"note":"thumbs up","at":1767323045}
	{"trace":{"request":"req-2"},"value":"2","note":null,"at":"2026-01-02T03:04:05+02:00"}
	{"trace":{"request":"req-3"},"value":0.25,"uid":"x-1","fix":"better"}
	EOF
	llm-monitor feedback import --request-id-field trace.request --score-field value \
		--comment-field note --ts-field at --id-field uid --correction-field fix in.jsonl > out
	[ "$(lines out)" = 3 ]
	jq -se ".[0] == {kind:\"feedback\",request_id:\"req-1\",score:1,comment:\"thumbs up\",
		ts:\"2026-01-02T03:04:05.000Z\",id:.[0].id} and
		.[1].score == 2 and .[1].ts == \"2026-01-02T01:04:05.000Z\" and (.[1] | has(\"comment\") | not) and
		.[2].id == \"x-1\" and .[2].correction == \"better\" and (.[2] | has(\"ts\") | not)" out
	# What import writes, join reads.
	echo "{\"request_id\":\"req-3\",\"prompt\":\"p\",\"output\":\"o\"}" | cat - out > both.jsonl
	llm-monitor feedback join -q both.jsonl | jq -e ".feedback.corrections == [\"better\"]"
	# Importing twice is harmless: the ids are the same.
	llm-monitor feedback import --request-id-field trace.request --score-field value in.jsonl > a
	llm-monitor feedback import --request-id-field trace.request --score-field value in.jsonl > b
	cmp a b
'
t 'feedback import reports a bad record with its line and follows --on-error' '
	printf "%s\n" "{\"request_id\":\"a\",\"score\":1}" "{\"request_id\":\"b\",\"score\":\"good\"}" \
		"{\"score\":3}" > in.jsonl
	run llm-monitor feedback import in.jsonl; expect_status 1
	expect_err "in.jsonl:2: field '\''score'\'' is not a number"
	run llm-monitor feedback import --on-error=skip --report rep.json in.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
	jq -e ".written == 1 and .bad == 2 and .read == 3" rep.json
	expect_err "in.jsonl:3: field '\''request_id'\'' is missing"
'
t 'feedback join attaches feedback whichever came first, each once, and counts orphans' '
	mklog
	run llm-monitor feedback join --report rep.json log.jsonl; expect_status 0
	[ "$(lines out)" = 3 ]
	# Requests in the order they were read; unrated ones byte for byte as they were.
	jq -r ".request_id // .prompt" out | tr "\n" " " | grep -qx "req-1 req-2 no id here "
	sed -n 2p log.jsonl > want; sed -n 1p out > got; cmp want got
	sed -n 7p log.jsonl > want; sed -n 3p out > got; cmp want got
	sed -n 2p out | jq -e ".feedback == {count:2,mean:1.5,min:1,max:2,scores:[1,2],
		comments:[\"wrong\",\"correction: 4\"],ids:.feedback.ids,corrections:[\"4\"]} and
		(.feedback.ids | length == 2) and .output == \"5\""
	jq -e ".requests == 3 and .feedback == 4 and .written == 3 and .rated == 1 and
		.duplicate_feedback == 1 and .orphan_feedback == 1 and .orphan_request_ids == 1" rep.json
	expect_err "1 orphan feedback for 1 request ids"
	run llm-monitor feedback join --only-rated log.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
	jq -e ".request_id == \"req-2\"" out
	# From standard input too, and a joined record joined again keeps one summary.
	llm-monitor feedback join -q < log.jsonl | llm-monitor feedback join -q > again
	[ "$(jq -c .feedback again | grep -c count)" = 1 ]
'
t 'feedback join --max-pending releases the oldest as it stands (bounded memory)' '
	mklog
	run llm-monitor feedback join --max-pending 1 --report rep.json log.jsonl; expect_status 0
	# The early feedback for req-2 is pushed out by req-1 before req-2 arrives: an orphan.
	# req-2 then takes the feedback that comes after it (its repeat of the early one counts,
	# since the first was released), and is pushed out by the feedback for req-9.
	jq -se "map(select(.request_id == \"req-2\"))[0].feedback.scores == [2,1]" out
	jq -e ".released_early > 0 and .orphan_feedback == 2 and .duplicate_feedback == 0" rep.json
	# Without the bound, the repeat is a duplicate and the early feedback is joined.
	llm-monitor feedback join -q log.jsonl |
		jq -se "map(select(.request_id == \"req-2\"))[0].feedback.scores == [1,2]"
	expect_err "--max-pending reached"
	run llm-monitor feedback join --max-pending 0 log.jsonl; expect_status 2
'
t 'feedback join reports bad records by --on-error, and an unreadable file is status 3' '
	mklog
	echo "{\"kind\":\"feedback\",\"request_id\":\"req-1\",\"score\":\"bad\"}" >> log.jsonl
	run llm-monitor feedback join log.jsonl; expect_status 1; expect_err "log.jsonl:8:"
	run llm-monitor feedback join --on-error=skip log.jsonl; expect_status 0
	[ "$(lines out)" = 3 ]
	run llm-monitor feedback join no-such.jsonl; expect_status 3
'

# wait_for COMMAND...: until it succeeds (at most 30 s).
wait_for() {
	i=0
	until "$@"; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "gave up waiting for: $*"; return 1; }
		sleep 0.05
	done
}
has_lines() {
	[ -e "$1" ] && [ "$(lines "$1")" = "$2" ]
}

t 'feedback join --follow writes a request when its feedback comes, or after --join-wait' '
	: > live.jsonl
	llm-monitor feedback join --follow --poll 20ms --join-wait 1s live.jsonl > joined 2> err &
	pid=$!
	echo $pid >> "$scratch/pids"
	echo "{\"request_id\":\"a\",\"prompt\":\"p\",\"output\":\"o\"}" >> live.jsonl
	echo "{\"request_id\":\"b\",\"prompt\":\"p\",\"output\":\"o\"}" >> live.jsonl
	llm-monitor feedback add --log live.jsonl --request b --score 1
	# b is joined at once; a waits for its feedback until --join-wait has passed.
	wait_for has_lines joined 1
	jq -e ".request_id == \"b\" and .feedback.count == 1" joined
	wait_for has_lines joined 2
	sed -n 2p joined | jq -e ".request_id == \"a\" and (has(\"feedback\") | not)"
	# Feedback before its request, then the request: joined when the request comes.
	llm-monitor feedback add --log live.jsonl --request c --score 5
	echo "{\"request_id\":\"c\",\"prompt\":\"p\",\"output\":\"o\"}" >> live.jsonl
	wait_for has_lines joined 3
	sed -n 3p joined | jq -e ".request_id == \"c\" and .feedback.scores == [5]"
	# Rotation by rename and create: the new file is followed.
	mv live.jsonl live.jsonl.1
	echo "{\"request_id\":\"d\",\"prompt\":\"p\",\"output\":\"o\"}" >> live.jsonl
	llm-monitor feedback add --log live.jsonl --request d --score 3
	wait_for has_lines joined 4
	sed -n 4p joined | jq -e ".request_id == \"d\""
	kill $pid
	! grep -E "AddressSanitizer|runtime error:" err
'

# --- the real path: llm-serve writes the log -------------------------------------------------
sample=$top_srcdir/data/sample/support.jsonl
shared=$scratch/shared
mkdir -p "$shared"
serve_ok=yes
command -v curl >/dev/null && command -v llm-serve >/dev/null || serve_ok=no
if [ $serve_ok = yes ]; then
	llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
	serve_model_config "$shared/cfg.json"
	llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out "$shared/model"
fi

# start DIR [ARGS...]: llm-serve on the tiny model, logging to DIR/log.jsonl; sets $url, $spid.
start() {
	sdir=$1
	shift
	serve_start "$sdir" "$shared/model" --model-name tiny "$@"
}
post() {
	curl -s -o "$2" -w "%{http_code}" -H "Content-Type: application/json" --data-binary "$1" "$url$3"
}

if [ $serve_ok = yes ]; then
t 'llm-serve'\''s log: POST /v1/feedback is joined with its request, before or after it' '
	LLMOPS_SERVE_TEST_DELAY_MS=150 start "$PWD/s"
	# After: a request, then its feedback.
	[ "$(post "{\"prompt\":\"Hello\",\"max_tokens\":2}" r1 /v1/completions)" = 200 ]
	id1=$(jq -r .id r1)
	[ "$(post "{\"request_id\":\"$id1\",\"score\":1,\"comment\":\"unhelpful\"}" f1 /v1/feedback)" = 200 ]
	# Before: a streamed request is still running when its feedback is posted, so the
	# feedback record is written first.
	curl -sN -H "Content-Type: application/json" --data-binary \
		"{\"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"max_tokens\":6,\"stream\":true}" \
		"$url/v1/chat/completions" > stream.txt &
	cpid=$!
	wait_for grep -q "^data: {" stream.txt
	id2=$(sed -n "s/^data: //p" stream.txt | head -1 | jq -r .id)
	[ "$(post "{\"request_id\":\"$id2\",\"score\":2,\"comment\":\"correction: Hello!\"}" f2 /v1/feedback)" = 200 ]
	wait $cpid
	rid2=$(jq -r .request_id f2)
	wait_for grep -q "\"request_id\":\"$rid2\",\"endpoint\"" s/log.jsonl
	# The feedback line is before the request line in the file.
	[ "$(grep -n "\"request_id\":\"$rid2\"" s/log.jsonl | head -1 | grep -c feedback)" = 1 ]
	llm-monitor feedback join --only-rated s/log.jsonl > joined 2> err
	[ "$(lines joined)" = 2 ]
	jq -se --arg a "$(jq -r .request_id f1)" --arg b "$rid2" "
		(.[] | select(.request_id == \$a) | .feedback.scores == [1] and .feedback.comments == [\"unhelpful\"]) and
		(.[] | select(.request_id == \$b) | .feedback.corrections == [\"Hello!\"] and has(\"messages\"))" joined
	grep -q "0 orphan feedback" err
	kill -TERM "$spid"
	wait "$spid"
'
else
	test_count=$((test_count + 1))
	echo "ok $test_count - # SKIP llm-serve or curl missing"
fi

t 'llm-monitor-feedback(1): lint clean, up to date, every option and status documented' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor-feedback.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	llm-monitor feedback --help > help
	for o in $(llm-monitor feedback --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-feedback.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-feedback.1.scd" || { echo "lacks status $s"; false; }; done
	grep -q "man/llm-monitor-feedback.1" "$top_srcdir/mk/monitor-feedback.am"
	scdoc < "$man/llm-monitor-feedback.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-monitor-feedback.1" || { echo "llm-monitor-feedback.1 is stale"; false; }
'
done_testing
