#!/bin/sh
# llm-gen batch export and import: the OpenAI Batch API's input file built from records as llm-gen
# would send them, and its output file joined back onto the records by custom_id.  The batch is
# "run" by posting each exported body to a fake OpenAI server (tests/cli/fake-openai.py).
. "$top_srcdir/tests/cli/lib.sh"
fake=$top_srcdir/tests/cli/fake-openai.py
py=/usr/bin/python3
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME

trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

mkdir -p "$scratch/server"
"$py" "$fake" --port-file "$scratch/server/port" >/dev/null 2>"$scratch/server/err" &
echo $! >>"$scratch/pids"
i=0
while [ ! -s "$scratch/server/port" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { echo "the fake server did not start" >&2; exit 1; }
	sleep 0.05
done
base="http://127.0.0.1:$(cat "$scratch/server/port")"

# run_batch IN OUT: what the Batch API does with a file: each line's body posted to its url,
# one result line per request (in reverse order: a batch's output is in no particular order).
run_batch() {
	"$py" - "$base" "$1" "$2" <<'EOF'
import json, sys, urllib.error, urllib.request
base, src, dst = sys.argv[1:4]
out = []
for n, line in enumerate(open(src)):
    req = json.loads(line)
    r = urllib.request.Request(base + req["url"], data=json.dumps(req["body"]).encode(),
                               headers={"Content-Type": "application/json"}, method=req["method"])
    try:
        with urllib.request.urlopen(r) as resp:
            status, body = resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        status, body = e.code, json.loads(e.read())
    out.append({"id": "batch_req_%d" % n, "custom_id": req["custom_id"],
                "response": {"status_code": status, "request_id": "req_%d" % n, "body": body},
                "error": None})
with open(dst, "w") as f:
    for o in reversed(out):
        f.write(json.dumps(o) + "\n")
EOF
}

cat > "$scratch/in.jsonl" <<'EOF'
{"id":"q1","prompt":"first question"}
{"id":"q2","messages":[{"role":"user","content":"second question"}],"keep":{"a":1}}
{"prompt":"no id here"}
{"prompt":"no id here"}
{"id":"q5","prompt":"fails @status=400"}
EOF

t 'export writes one request per record: custom_id, method, url and the body llm-gen sends' '
	run llm-gen batch export --model-name gpt-x --temperature 0 --max-tokens 5 "$scratch/in.jsonl"
	expect_status 0
	[ "$(lines out)" = 5 ]
	jq -s -e ".[0] == {custom_id: \"q1\", method: \"POST\", url: \"/v1/completions\",
		body: {prompt: \"first question\", model: \"gpt-x\", max_tokens: 5, temperature: 0}}" out
	jq -s -e ".[1].url == \"/v1/chat/completions\" and .[1].body.messages[0].content == \"second question\"" out
	# a record without an id is known by its content hash; a repeat gets #2
	a=$(jq -s -r ".[2].custom_id" out); b=$(jq -s -r ".[3].custom_id" out)
	echo "$a" | grep -qE "^[0-9a-f]{32}$"; [ "$b" = "$a#2" ]
	[ "$(jq -r .custom_id out | sort | uniq | wc -l)" = 5 ]
'
t 'export maps every sampling option and --params into the body' '
	echo "{\"id\":\"s\",\"prompt\":\"p\"}" > one.jsonl
	llm-gen batch export -q --model-name m --chat --system sys --temperature 0.5 --top-p 0.9 \
		--top-k 5 --min-p 0.1 --frequency-penalty 0.2 --presence-penalty -0.3 \
		--repetition-penalty 1.2 --seed 9 --stop "a,b\\,c" --stop "\\n" --n 2 --logprobs 3 \
		--max-tokens 7 --params "{\"user\":\"u\",\"max_tokens\":8}" one.jsonl > out
	jq -e ".body == {messages: [{role: \"system\", content: \"sys\"}, {role: \"user\", content: \"p\"}],
		model: \"m\", max_tokens: 8, temperature: 0.5, top_p: 0.9, top_k: 5, min_p: 0.1,
		frequency_penalty: 0.2, presence_penalty: -0.3, repetition_penalty: 1.2, seed: 9,
		stop: [\"a\", \"b,c\", \"\n\"], n: 2, logprobs: true, top_logprobs: 3, user: \"u\"}" out
'
t 'export needs --model-name, refuses keep, and names a bad record' '
	run llm-gen batch export "$scratch/in.jsonl"; expect_status 2; expect_err "--model-name"
	run llm-gen batch export --model-name m --on-error keep "$scratch/in.jsonl"; expect_status 2
	printf "%s\n" "{\"prompt\":\"ok\"}" "{\"text\":\"no prompt\"}" > bad.jsonl
	run llm-gen batch export --model-name m bad.jsonl; expect_status 1; expect_err "bad.jsonl:2:"
	run llm-gen batch export --model-name m --on-error skip bad.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
'
t 'import joins the results back onto the records in order, as llm-gen would have written them' '
	llm-gen batch export -q --model-name m --temperature 0 "$scratch/in.jsonl" > batch.jsonl
	run_batch batch.jsonl results.jsonl
	run llm-gen batch import --input "$scratch/in.jsonl" --report r.json results.jsonl
	expect_status 3
	[ "$(lines out)" = 5 ]
	jq -s -e ".[0:4] | map(.output) == [\"echo: first question\", \"echo: second question\",
		\"echo: no id here\", \"echo: no id here\"]" out
	jq -s -e ".[1].keep == {a: 1} and .[0].model == \"m\" and .[0].usage.completion_tokens == 3
		and .[0].latency_ms == null and .[0].finish_reason == \"stop\"" out
	jq -s -e ".[4].error.status == 400 and .[4].error.code == \"fake_400\"" out
	expect_err "in.jsonl:5:"
	jq -e ".answered == 4 and .failed == 1 and .missing == 0 and .unmatched_results == 0" r.json
	# the same answers llm-gen gives when it runs the records itself
	jq -c "del(.latency_ms, .ttft_ms)" out > o2
	run llm-gen -q --model "$base/v1" --model-name m --temperature 0 --no-cache "$scratch/in.jsonl"
	expect_status 3
	jq -c "del(.latency_ms, .ttft_ms)" out > d2
	head -n 4 d2 > d4; head -n 4 o2 > o4; cmp d4 o4
'
t 'import reports records without a result and results without a record' '
	llm-gen batch export -q --model-name m "$scratch/in.jsonl" > batch.jsonl
	run_batch batch.jsonl results.jsonl
	grep -v "\"q2\"" results.jsonl > part.jsonl
	echo "{\"id\":\"x\",\"custom_id\":\"stranger\",\"response\":null,\"error\":{\"code\":\"batch_expired\",\"message\":\"expired\"}}" >> part.jsonl
	run llm-gen batch import --input "$scratch/in.jsonl" part.jsonl; expect_status 3
	jq -s -e ".[1].error.code == \"missing_result\" and .[1].keep == {a: 1}" out
	expect_err "1 results match no record"
	expect_err "custom_id \"stranger\""
	run llm-gen batch import --input "$scratch/in.jsonl" --on-error skip part.jsonl
	expect_status 3; [ "$(lines out)" = 3 ]
'
t 'an error file result becomes the error field; an answer wins over an error for the same id' '
	echo "{\"id\":\"e1\",\"prompt\":\"p\"}" > one.jsonl
	echo "{\"id\":\"b1\",\"custom_id\":\"e1\",\"response\":null,\"error\":{\"code\":\"server_error\",\"message\":\"boom\"}}" > errors.jsonl
	run llm-gen batch import -i one.jsonl errors.jsonl; expect_status 3
	jq -e ".error == {code: \"server_error\", message: \"boom\"}" out
	echo "{\"id\":\"b2\",\"custom_id\":\"e1\",\"response\":{\"status_code\":200,\"body\":{\"model\":\"m\",\"choices\":[{\"index\":0,\"message\":{\"role\":\"assistant\",\"content\":\"fine\"},\"finish_reason\":\"stop\"}]}}}" > ok.jsonl
	run llm-gen batch import -i one.jsonl errors.jsonl ok.jsonl; expect_status 0
	jq -e ".output == \"fine\" and (has(\"error\") | not)" out
'
t 'import needs --input and results, and stops at a result without custom_id' '
	run llm-gen batch import results.jsonl; expect_status 2; expect_err "--input"
	run llm-gen batch import -i "$scratch/in.jsonl"; expect_status 2
	printf "%s\n" "{\"custom_id\":\"q1\",\"response\":null}" "{\"id\":\"x\"}" > odd.jsonl
	run llm-gen batch import -i "$scratch/in.jsonl" odd.jsonl; expect_status 1
	expect_err "odd.jsonl:2: not a Batch API result"
'
done_testing
