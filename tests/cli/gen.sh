#!/bin/sh
# llm-gen against a fake OpenAI server (tests/cli/fake-openai.py) started here on loopback, and
# against the embedded engine on a tiny model made here: records kept whole and in order,
# templates and chains, the cache, --resume, retries, failures written as error fields, bad
# input, the key.  The server counts attempts per prompt, so each test uses prompts of its own.
. "$top_srcdir/tests/cli/lib.sh"
fake=$top_srcdir/tests/cli/fake-openai.py
py=/usr/bin/python3
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_API_KEY OPENAI_API_KEY

trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# serve DIR [ARGS...]: start a fake server logging to DIR/log.jsonl; prints its base URL.
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
G="--model $url --model-name m"

# attempts PROMPT: how many attempts the server saw for the prompt.
attempts() {
	jq -s --arg p "$1" '[.[] | select(.prompt == $p)] | length' "$srv/log.jsonl"
}
# recs PROMPT...: one record per prompt, with ids r1, r2, ...
recs() {
	i=0
	for p in "$@"; do
		i=$((i + 1))
		jq -cn --arg p "$p" --arg id "r$i" '{id: $id, prompt: $p}'
	done
}

# A tokenizer and a model much smaller than the tiny preset, for the embedded engine.
shared=$scratch/shared
mkdir -p "$shared"
sample=$top_srcdir/data/sample/support.jsonl
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
cat > "$shared/cfg.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 64, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
EOF
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out "$shared/model"

t '--help and --version on stdout with 0; batch --help lists its verbs' '
	run llm-gen --help; expect_status 0
	grep -q "^usage: llm-gen --model REF" out
	for o in $(llm-gen --completion-helper); do grep -qe "$o" out; done
	run llm-gen --version; expect_status 0
	grep -qE "^llm-gen \(llmops\) [0-9]+\.[0-9]+\.[0-9]+$" out
	run llm-gen batch --help; expect_status 0
	grep -q "batch export" out; grep -q "batch import" out
	run llm-gen batch export --help; expect_status 0; grep -q "^usage: llm-gen batch export" out
'
t 'no --model, an unknown reference, clashing options: usage errors (2)' '
	echo "{\"prompt\":\"x\"}" > in.jsonl
	run llm-gen in.jsonl; expect_status 2; expect_err "llm-gen: --model REF is needed"
	expect_err "Try '\''llm-gen --help'\''"
	run llm-gen --model registry:Bot@production in.jsonl; expect_status 2; expect_no_out
	run llm-gen --model registry:bot@production in.jsonl; expect_status 3; expect_err "no such model"
	run llm-gen --model nowhere/at/all in.jsonl; expect_status 3; expect_err "nowhere/at/all"
	run llm-gen $G --chat --completions in.jsonl; expect_status 2
	run llm-gen $G --stream --no-stream in.jsonl; expect_status 2
	run llm-gen $G --params "[1]" in.jsonl; expect_status 2; expect_err "--params: not a JSON object"
	run llm-gen $G --resume in.jsonl; expect_status 2; expect_err "--resume needs --output"
	run llm-gen batch; expect_status 2
'
t 'an answer keeps every field in its place and adds output, usage, timings, model, finish_reason' '
	printf "%s\n" "{\"a\": 1, \"prompt\": \"keep me whole\", \"z\": [1, {\"b\": null}]}" > in.jsonl
	run llm-gen $G --temperature 0 --no-cache in.jsonl; expect_status 0
	jq -e "keys_unsorted == [\"a\",\"prompt\",\"z\",\"output\",\"usage\",\"latency_ms\",\"ttft_ms\",\"model\",\"finish_reason\"]" out
	jq -e ".output == \"echo: keep me whole\" and .usage == {prompt_tokens: 3, completion_tokens: 4}
		and .model == \"m\" and .finish_reason == \"stop\" and .latency_ms >= 0 and .ttft_ms >= 0" out
	# the input bytes come through unchanged, the new fields spliced before the last brace
	n=$(($(wc -c < in.jsonl) - 2))
	head -c $n out > head.txt; head -c $n in.jsonl > want.txt; cmp head.txt want.txt
	[ ! -s err ] || grep -q "1 records: 1 answered, 0 failed" err
'
t 'messages go to chat, prompts to completions (or chat with --chat), output replaced in place' '
	printf "%s\n" "{\"messages\":[{\"role\":\"user\",\"content\":\"via chat\"}]}" \
		"{\"prompt\":\"via completions\",\"output\":\"old\",\"n\":1}" > in.jsonl
	llm-gen $G -q --no-cache in.jsonl > out
	jq -s -e ".[0].output == \"echo: via chat\" and .[1].output == \"echo: via completions\"" out
	jq -s -e ".[1] | keys_unsorted | .[0:3] == [\"prompt\",\"output\",\"n\"]" out
	n=$(jq -s "[.[] | select(.path == \"/v1/completions\" and .prompt == \"via completions\")] | length" "$srv/log.jsonl")
	[ "$n" = 1 ]
	echo "{\"prompt\":\"via chat please\"}" | llm-gen $G -q --no-cache --chat > out2
	n=$(jq -s "[.[] | select(.path == \"/v1/chat/completions\" and .prompt == \"via chat please\")] | length" "$srv/log.jsonl")
	[ "$n" = 1 ]
	echo "{\"prompt\":\"a system too\"}" | llm-gen $G -q --no-cache --system "be brief" > out3
	n=$(jq -s "[.[] | select(.path == \"/v1/chat/completions\" and .prompt == \"a system too\")] | length" "$srv/log.jsonl")
	[ "$n" = 1 ]
'
t 'records come out in input order under concurrency, and as they finish with --unordered' '
	# all four in flight at once (the @hold barrier), the first one answered last
	recs "ord-a @hold=4 @slow=0.5" "ord-b @hold=4" "ord-c @hold=4" "ord-d @hold=4" > in.jsonl
	llm-gen $G -q -j 4 --no-cache in.jsonl > out
	[ "$(jq -r .id out | tr "\n" " ")" = "r1 r2 r3 r4 " ]
	! grep -q "barrier timeout" out
	recs "uno-a @hold=4 @slow=0.5" "uno-b @hold=4" "uno-c @hold=4" "uno-d @hold=4" > in2.jsonl
	llm-gen $G -q -j 4 --no-cache --unordered in2.jsonl > out2
	[ "$(lines out2)" = 4 ]; [ "$(tail -n 1 out2 | jq -r .id)" = r1 ]
	[ "$(jq -r .id out2 | sort | tr "\n" " ")" = "r1 r2 r3 r4 " ]
'
t 'many records through a small window stay in order, none lost or doubled' '
	i=0; while [ $i -lt 60 ]; do i=$((i + 1)); echo "{\"id\":\"w$i\",\"prompt\":\"window $i\"}"; done > in.jsonl
	llm-gen $G -q -j 3 --no-cache in.jsonl > out
	jq -r .id in.jsonl > want; jq -r .id out > got; cmp want got
	jq -s -e "all(.[]; .output == \"echo: \" + .prompt)" out
'
t 'a template builds the prompt from the record, and a missing field is FILE:LINE' '
	printf "Question: {{q}}\nContext: {{ctx}}\n" > t.txt
	printf "%s\n" "{\"q\":\"why\",\"ctx\":[1,2]}" "{\"q\":\"what\"}" > in.jsonl
	run llm-gen $G --no-cache -t t.txt in.jsonl; expect_status 1
	jq -e ".output == \"echo: Question: why\nContext: [1,2]\"" out
	expect_err "in.jsonl:2:"; expect_err "ctx"
'
t 'a chain is a pipe of llm-gen with different templates and output fields' '
	echo "Draft: {{question}}" > draft.txt
	echo "Check: {{draft}}" > check.txt
	printf "%s\n" "{\"id\":\"c1\",\"question\":\"two plus two\"}" "{\"id\":\"c2\",\"question\":\"three\"}" > in.jsonl
	llm-gen $G -q --no-cache -t draft.txt --output-field draft in.jsonl |
		llm-gen $G -q --no-cache -t check.txt --output-field check > out
	[ "$(lines out)" = 2 ]
	jq -s -e ".[0].draft == \"echo: Draft: two plus two\" and .[0].check == \"echo: Check: echo: Draft: two plus two\"" out
	jq -s -e "[.[].id] == [\"c1\",\"c2\"]" out
'
t '--n gives arrays of answers; --max-tokens cuts them; --logprobs adds logprobs' '
	echo "{\"prompt\":\"several answers here\"}" > in.jsonl
	llm-gen $G -q --no-cache --n 3 --max-tokens 2 --logprobs 1 in.jsonl > out
	jq -e ".output == [\"echo: several\",\"echo: several\",\"echo: several\"]" out
	jq -e ".finish_reason == [\"length\",\"length\",\"length\"] and (.logprobs | length) == 3" out
	echo "{\"prompt\":\"just one answer\"}" | llm-gen $G -q --no-cache --logprobs 0 > one
	jq -e "(.output | type) == \"string\" and (.logprobs | type) == \"object\"" one
'
t '--params is merged into the body last; --model-name is the model sent' '
	echo "{\"prompt\":\"params merged\"}" > in.jsonl
	llm-gen $G -q --no-cache --params "{\"model\":\"other\"}" in.jsonl > out
	jq -e ".model == \"other\"" out
	jq -s -e "[.[] | select(.prompt == \"params merged\")][0].model == \"other\"" "$srv/log.jsonl"
'
t 'a greedy or seeded request is answered from the cache the second time; a sampled one never' '
	recs "cache greedy" > g.jsonl
	llm-gen $G -q --temperature 0 g.jsonl > first
	llm-gen $G -q --temperature 0 --report r.json g.jsonl > second
	[ "$(attempts "cache greedy")" = 1 ]
	jq -e ".cached == true and .output == \"echo: cache greedy\"" second
	jq -e "has(\"cached\") | not" first
	jq -e ".cached == 1 and .requests == 0 and .answered == 1" r.json
	recs "cache seeded" > s.jsonl
	llm-gen $G -q --seed 7 s.jsonl > /dev/null; llm-gen $G -q --seed 7 s.jsonl > /dev/null
	[ "$(attempts "cache seeded")" = 1 ]
	recs "cache sampled" > p.jsonl
	llm-gen $G -q p.jsonl > /dev/null; llm-gen $G -q --temperature 0.7 p.jsonl > /dev/null
	[ "$(attempts "cache sampled")" = 2 ]
	# a different option is a different request; --no-cache neither reads nor writes
	llm-gen $G -q --temperature 0 --max-tokens 1 g.jsonl > /dev/null
	llm-gen $G -q --temperature 0 --no-cache g.jsonl > /dev/null
	[ "$(attempts "cache greedy")" = 3 ]
	ls "$LLMOPS_HOME/cache/gen"/*/*.json > /dev/null
	llm-gen $G -q --temperature 0 --cache mine g.jsonl > /dev/null
	[ "$(attempts "cache greedy")" = 4 ]; ls mine/*/*.json > /dev/null
'
t 'the cache of a local model is missed once the model changes' '
	cp -r "$shared/model" model
	echo "{\"prompt\":\"hello\"}" > in.jsonl
	llm-gen -m model -q --temperature 0 --max-tokens 3 --cache c in.jsonl > a
	llm-gen -m model -q --temperature 0 --max-tokens 3 --cache c in.jsonl > b
	jq -e ".cached == true" b
	touch -d "2001-01-01" model/model.safetensors
	llm-gen -m model -q --temperature 0 --max-tokens 3 --cache c in.jsonl > d
	jq -e "has(\"cached\") | not" d
'
t '--resume skips the ids already written, cuts a torn last line and says so' '
	recs "res one" "res two" > first.jsonl
	llm-gen $G -q --temperature 0 --no-cache -o out.jsonl first.jsonl
	[ "$(lines out.jsonl)" = 2 ]
	printf "{\"id\":\"r3\",\"prompt\":\"res thr" >> out.jsonl
	recs "res one" "res two" "res three" "res four" > all.jsonl
	run llm-gen $G --temperature 0 --no-cache -o out.jsonl --resume --report r.json all.jsonl
	expect_status 0; expect_no_out
	expect_err "out.jsonl: cut off a partial last line"
	[ "$(lines out.jsonl)" = 4 ]
	[ "$(jq -r .id out.jsonl | sort | tr "\n" " ")" = "r1 r2 r3 r4 " ]
	jq -s -e "all(.[]; .output | type == \"string\")" out.jsonl
	[ "$(attempts "res one")" = 1 ]; [ "$(attempts "res three")" = 1 ]
	jq -e ".skipped_done == 2 and .answered == 2 and .read == 4" r.json
	# nothing left to do: nothing sent, nothing written
	llm-gen $G -q --temperature 0 --no-cache -o out.jsonl --resume all.jsonl
	[ "$(lines out.jsonl)" = 4 ]; [ "$(attempts "res four")" = 1 ]
'
t '--resume finds records without ids by their content, repeats counted' '
	printf "%s\n" "{\"prompt\":\"noid a\"}" "{\"prompt\":\"noid a\"}" "{\"prompt\":\"noid b\"}" > in.jsonl
	head -n 1 in.jsonl > part.jsonl
	llm-gen $G -q --no-cache -o out.jsonl part.jsonl
	llm-gen $G -q --no-cache -o out.jsonl --resume in.jsonl
	[ "$(lines out.jsonl)" = 3 ]
	[ "$(attempts "noid a")" = 2 ]; [ "$(attempts "noid b")" = 1 ]
'
t '--resume runs failed records again and leaves one line per id' '
	recs "redo fine" "redo @status=400*1" > in.jsonl
	run llm-gen $G --no-cache -o out.jsonl in.jsonl; expect_status 3
	jq -s -e "map(select(.id == \"r2\"))[0].error.status == 400" out.jsonl
	run llm-gen $G --no-cache -o out.jsonl --resume in.jsonl; expect_status 0
	expect_err "removed 1 failed records"
	[ "$(lines out.jsonl)" = 2 ]
	jq -s -e "map(select(has(\"error\"))) | length == 0" out.jsonl
	[ "$(attempts "redo fine")" = 1 ]; [ "$(attempts "redo @status=400*1")" = 2 ]
'
t 'a 429 with retry-after is waited for and retried, then answered' '
	recs "rate limited @status=429*1 @retry-after=1" > in.jsonl
	run llm-gen $G --no-cache --report r.json in.jsonl; expect_status 0
	jq -e ".output == \"echo: rate limited @status=429*1 @retry-after=1\"" out
	[ "$(attempts "rate limited @status=429*1 @retry-after=1")" = 2 ]
	jq -e ".retries == 1 and .failed == 0 and .requests == 1" r.json
	jq -s -e "[.[] | select(.prompt | startswith(\"rate limited\")) | .t] | .[1] - .[0] >= 0.9" "$srv/log.jsonl"
'
t 'connections dropped mid-stream: every record ends with an output or an error, none lost or doubled' '
	i=0
	while [ $i -lt 12 ]; do
		i=$((i + 1))
		case $((i % 4)) in
		0) p="drop $i @drop=after*1" ;;
		1) p="drop $i @drop=before*2" ;;
		2) p="drop $i @drop=after" ;;
		3) p="drop $i fine" ;;
		esac
		jq -cn --arg p "$p" --arg id "d$i" "{id: \$id, prompt: \$p}"
	done > in.jsonl
	run llm-gen $G --no-cache -j 4 --max-retries 2 --report r.json in.jsonl; expect_status 3
	[ "$(lines out)" = 12 ]
	[ "$(jq -r .id out | sort | uniq | wc -l)" = 12 ]
	jq -r .id in.jsonl > want; jq -r .id out > got; cmp want got
	[ "$(jq -c "select(has(\"output\") and (.output | type) == \"string\")" out | wc -l)" = 9 ]
	[ "$(jq -c "select(has(\"error\"))" out | wc -l)" = 3 ]
	jq -s -e "map(select(has(\"error\")) | .prompt | test(\"@drop=after$\")) | all" out
	jq -e ".failed == 3 and .answered == 9 and .written == 12" r.json
	grep -q "in.jsonl:2: request failed after 3 attempts" err
'
t 'a request that fails after its retries is an error field and status 3; --on-error decides' '
	recs "fails ok" "fails always @status=500" "fails too" > in.jsonl
	run llm-gen $G --no-cache --max-retries 1 in.jsonl; expect_status 3
	[ "$(lines out)" = 3 ]
	jq -s -e ".[1].error.status == 500 and (.[1].error.code | type) == \"string\" and (.[1].error.message | length) > 0" out
	jq -s -e ".[1] | has(\"output\") | not" out
	expect_err "in.jsonl:2: request failed after 2 attempts"
	run llm-gen $G --no-cache --max-retries 0 --on-error skip in.jsonl; expect_status 3
	[ "$(lines out)" = 2 ]
	run llm-gen $G --no-cache --max-retries 0 --on-error fail -j 1 in.jsonl; expect_status 3
	expect_err "in.jsonl:2: request failed"
	! grep -q "fails too" out
'
t 'a 400 is not retried; insufficient_quota is not retried' '
	recs "bad request @status=400" "no money @quota" > in.jsonl
	run llm-gen $G --no-cache in.jsonl; expect_status 3
	[ "$(attempts "bad request @status=400")" = 1 ]; [ "$(attempts "no money @quota")" = 1 ]
	jq -s -e ".[1].error.code == \"insufficient_quota\"" out
'
t 'a bad input record is FILE:LINE and status 1; skip and keep as everywhere' '
	printf "%s\n" "{\"id\":\"b1\",\"prompt\":\"bad one\"}" "{not json" "{\"prompt\": 5}" \
		"{\"id\":\"b4\",\"prompt\":\"bad four\"}" > in.jsonl
	run llm-gen $G --no-cache in.jsonl; expect_status 1; expect_err "in.jsonl:2:"
	run llm-gen $G --no-cache --on-error skip in.jsonl; expect_status 0
	[ "$(jq -r .id out | tr "\n" " ")" = "b1 b4 " ]
	expect_err "in.jsonl:3: field \"prompt\" is a number, not a string"
	run llm-gen $G --no-cache --on-error keep --report r.json in.jsonl; expect_status 0
	[ "$(lines out)" = 4 ]
	jq -s -e ".[1].error.code == \"invalid_json\" and .[2].error.code == \"wrong_type\" and .[3].id == \"b4\"" out
	jq -e ".read == 4 and .bad == 2 and .written == 4" r.json
'
t 'the key comes from LLMOPS_API_KEY or OPENAI_API_KEY and is never printed' '
	ks=$scratch/keyed; kurl=$(serve "$ks" --key sekrit-key-123)
	echo "{\"prompt\":\"with a key\"}" > in.jsonl
	LLMOPS_API_KEY=sekrit-key-123 run llm-gen -m "$kurl" --model-name m --no-cache --report r.json in.jsonl
	expect_status 0; jq -e ".output == \"echo: with a key\"" out
	OPENAI_API_KEY=sekrit-key-123 run llm-gen -m "$kurl" --model-name m --no-cache in.jsonl
	expect_status 0
	LLMOPS_API_KEY=wrong-key-456 run llm-gen -m "$kurl" --model-name m --no-cache in.jsonl
	expect_status 3; jq -e ".error.status == 401" out
	! grep -r "sekrit-key-123\|wrong-key-456" out err r.json "$ks/log.jsonl"
	grep -q "\"auth\": *\"ok\"" "$ks/log.jsonl"
'
t 'without --stream a URL is asked for whole responses and ttft_ms is null' '
	echo "{\"prompt\":\"not streamed\"}" > in.jsonl
	llm-gen $G -q --no-cache --no-stream in.jsonl > out
	jq -e ".ttft_ms == null and .output == \"echo: not streamed\"" out
	jq -s -e "[.[] | select(.prompt == \"not streamed\")][0].stream == false" "$srv/log.jsonl"
'
t 'the report counts records, requests, tokens and latency percentiles' '
	recs "rep a" "rep b" "rep c" > in.jsonl
	llm-gen $G -q --no-cache --report r.json in.jsonl > /dev/null
	jq -e ".read == 3 and .written == 3 and .dropped == 0 and .answered == 3 and .requests == 3" r.json
	jq -e ".tokens == {prompt: 6, completion: 9} and .latency_ms.count == 3 and .latency_ms.p50 > 0" r.json
	jq -e ".latency_ms.p99 <= .latency_ms.max and .model == \"m\"" r.json
'
t 'the embedded engine answers prompts and messages in order, deterministically' '
	printf "%s\n" "{\"id\":\"e1\",\"prompt\":\"hello\"}" \
		"{\"id\":\"e2\",\"messages\":[{\"role\":\"user\",\"content\":\"hi\"}]}" \
		"{\"id\":\"e3\",\"prompt\":\"how do I reset my password\"}" > in.jsonl
	llm-gen -m "$shared/model" -q --no-cache -j 2 --temperature 0 --max-tokens 4 in.jsonl > a
	llm-gen -m "$shared/model" -q --no-cache -j 1 --temperature 0 --max-tokens 4 in.jsonl > b
	[ "$(jq -r .id a | tr "\n" " ")" = "e1 e2 e3 " ]
	jq -s -e "all(.[]; (.output | type) == \"string\" and .usage.completion_tokens == 4 and .finish_reason == \"length\")" a
	jq -c "del(.latency_ms, .ttft_ms)" a > a2; jq -c "del(.latency_ms, .ttft_ms)" b > b2; cmp a2 b2
	llm-gen -m "$shared/model" -q --no-cache --n 2 --seed 3 --temperature 1 --max-tokens 3 in.jsonl > c
	jq -s -e "all(.[]; (.output | length) == 2)" c
'
t 'a closed pipe ends quietly' '
	i=0; while [ $i -lt 40 ]; do i=$((i + 1)); echo "{\"prompt\":\"pipe $i\"}"; done > in.jsonl
	( set +e; llm-gen $G --no-cache -q in.jsonl 2>err; echo $? > st ) | head -n 1 > first
	st=$(cat st); [ "$st" = 0 ] || [ "$st" = 141 ]
	[ ! -s err ] || { cat err; false; }
	[ "$(lines first)" = 1 ]
'
t 'progress shows on a terminal only' '
	command -v script >/dev/null || { echo "script(1) missing"; false; }
	recs "tty a @slow=0.3" "tty b @slow=0.3" "tty c @slow=0.3" > in.jsonl
	script -qec "llm-gen $G --no-cache -j 1 in.jsonl > /dev/null" /dev/null > tty.txt
	grep -q "gen" tty.txt
	llm-gen $G --no-cache -j 1 in.jsonl > /dev/null 2> err
	! grep -q "$(printf "\r")" err
'
done_testing
