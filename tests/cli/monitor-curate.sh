#!/bin/sh
# llm-monitor curate: feedback joined, interactions chosen by --where (feedback, flags, any
# field), written as records with id, source_request_id, prompt or messages, rejected/output,
# feedback, flags and a completion when a corrected answer is known; --dedup by prompt,
# --require-completion, --append-completion; counts on stderr and in --report; and the loop
# closed: what curate writes, llm-prep template --mask renders and llm-tune train trains on.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
# Every process started here is stopped at the end, by its id.
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

mklog() {
	cat > log.jsonl <<'EOF'
{"kind":"feedback","request_id":"req-2","score":1,"comment":"wrong","ts":"2026-01-02T03:00:00.000Z"}
{"ts":"2026-01-02T03:04:05.000Z","request_id":"req-1","model":"m","status":200,"latency_ms":10,"prompt":"Say hi","output":"hello"}
{"ts":"2026-01-02T03:04:06.000Z","request_id":"req-2","model":"m","status":200,"latency_ms":2000,"messages":[{"role":"user","content":"2+2?"}],"output":"5","flags":[{"kind":"refusal","score":0.9}]}
{"kind":"feedback","request_id":"req-2","score":2,"comment":"correction: 4","ts":"2026-01-02T03:05:00.000Z"}
{"kind":"feedback","request_id":"req-1","score":5,"comment":"fine"}
{"ts":"2026-01-02T03:04:07.000Z","request_id":"req-3","model":"m","status":503,"latency_ms":5,"prompt":"Say hi","output":"","error":{"code":"overloaded"}}
{"kind":"feedback","request_id":"req-3","score":1}
{"ts":"2026-01-02T03:04:08.000Z","request_id":"req-4","model":"m","status":200,"prompt_sha256":"ab","prompt_len":3,"output_sha256":"cd","output_len":2}
{"kind":"feedback","request_id":"req-4","score":1}
{"request":{"model":"gpt-x","messages":[{"role":"user","content":"Capital of France?"}]},"response":{"choices":[{"message":{"role":"assistant","content":"Lyon"}}]},"status":200,"request_id":"req-5","fix":"Paris"}
{"kind":"feedback","request_id":"req-5","score":1,"comment":"wrong city"}
EOF
}

t 'curate writes the low-rated interactions as training records' '
	mklog
	run llm-monitor curate --where "feedback.score<=2" --report rep.json log.jsonl
	expect_status 0
	# req-2, req-3 and req-5 (req-4 has no prompt text: logged with --log-content=hash).
	[ "$(lines out)" = 3 ]
	jq -r .source_request_id out | tr "\n" " " | grep -qx "req-2 req-3 req-5 "
	sed -n 1p out | jq -e "keys_unsorted == [\"id\",\"source_request_id\",\"messages\",\"completion\",
		\"rejected\",\"output\",\"feedback\",\"flags\",\"model\",\"ts\"] and
		.messages == [{role:\"user\",content:\"2+2?\"}] and .completion == \"4\" and
		.rejected == \"5\" and .output == \"5\" and
		.feedback == {score:1.5,count:2,min:1,scores:[1,2],comments:[\"wrong\",\"correction: 4\"]} and
		.flags == [{kind:\"refusal\",score:0.9}] and (.id | test(\"^cur-[0-9a-f]{24}$\"))"
	# No corrected answer: no completion.  A proxy log record: prompt from the request.
	sed -n 2p out | jq -e ".prompt == \"Say hi\" and (has(\"completion\") | not) and .flags == []"
	sed -n 3p out | jq -e ".messages[0].content == \"Capital of France?\" and .rejected == \"Lyon\" and .model == \"gpt-x\""
	jq -e ".requests == 5 and .matched == 4 and .written == 3 and .no_prompt == 1 and .not_matched == 1" rep.json
	expect_err "5 requests read, 4 matched, 3 written"
	# The same input gives the same ids.
	llm-monitor curate -q --where "feedback.score<=2" log.jsonl > again
	cmp out again
'
t 'curate selects by flags, any field, and and/or/not; repeated --where must all hold' '
	mklog
	llm-monitor curate -q --where "flags.kind=refusal" log.jsonl | jq -se "map(.source_request_id) == [\"req-2\"]"
	llm-monitor curate -q --where "status>=500 or latency_ms>1000" log.jsonl |
		jq -se "map(.source_request_id) == [\"req-2\",\"req-3\"]"
	llm-monitor curate -q --where "model=m" --where "not exists(feedback.comments)" log.jsonl > o1
	jq -se "map(.source_request_id) == [\"req-3\"]" o1
	llm-monitor curate -q --where "model=m and not feedback.comments=fine" log.jsonl > o2
	jq -se "map(.source_request_id) == [\"req-2\",\"req-3\"]" o2
	# An unrated request has no feedback: a --where on it never holds, its negation does.
	echo "{\"request_id\":\"req-6\",\"prompt\":\"q\",\"output\":\"a\"}" >> log.jsonl
	llm-monitor curate -q --where "not exists(feedback)" log.jsonl |
		jq -se "map(.source_request_id) == [\"req-6\"] and .[0].feedback == {score:null,count:0,comments:[]}"
'
t 'a corrected answer comes from --completion-field or a correction; --require-completion keeps only those' '
	mklog
	llm-monitor curate -q --where "feedback.score<=2" --completion-field fix --require-completion \
		--report rep.json log.jsonl > out
	jq -se "map([.source_request_id, .completion]) == [[\"req-2\",\"4\"],[\"req-5\",\"Paris\"]]" out
	jq -e ".no_completion == 1" rep.json
	# --append-completion: the chat gains the answer as its last assistant turn.
	llm-monitor curate -q --where "feedback.score<=2" --completion-field fix --require-completion \
		--append-completion log.jsonl | sed -n 2p |
		jq -e ".messages[-1] == {role:\"assistant\",content:\"Paris\"} and .completion == \"Paris\""
	# A correction given with feedback add.
	echo "{\"request_id\":\"req-7\",\"prompt\":\"Spell cat\",\"output\":\"kat\"}" > l2.jsonl
	llm-monitor feedback add --log l2.jsonl --request req-7 --score 1 --correction cat
	llm-monitor curate -q --where "feedback.score<2" l2.jsonl | jq -e ".completion == \"cat\" and .rejected == \"kat\""
'
t 'curate --dedup keeps the first interaction of each prompt' '
	mklog
	llm-monitor curate -q --where "exists(feedback)" log.jsonl > all
	run llm-monitor curate --where "exists(feedback)" --dedup --report rep.json log.jsonl
	[ "$(lines all)" = 4 ]
	[ "$(lines out)" = 3 ]
	jq -se "map(.source_request_id) == [\"req-1\",\"req-2\",\"req-5\"]" out
	jq -e ".duplicates == 1" rep.json
'
t 'curate reads the output of feedback join, and bad --where expressions say where' '
	mklog
	llm-monitor feedback join -q log.jsonl | llm-monitor curate -q --where "feedback.score<=2" > a
	llm-monitor curate -q --where "feedback.score<=2" log.jsonl > b
	cmp a b
	run llm-monitor curate log.jsonl; expect_status 2; expect_err "curate needs --where"
	run llm-monitor curate --where "feedback.score<=" log.jsonl; expect_status 2
	expect_err "--where: column 17: expected a value"
	run llm-monitor curate --where "(status=1" log.jsonl; expect_status 2
	expect_err "to close the '\''('\'' of column 1"
	run llm-monitor curate --where "status=1" missing.jsonl; expect_status 3
'

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
t 'curate --follow curates a request when its feedback arrives' '
	: > live.jsonl
	llm-monitor curate --follow --poll 20ms --join-wait 1s --where "feedback.score<=2" \
		live.jsonl > got 2> err &
	pid=$!
	echo $pid >> "$scratch/pids"
	echo "{\"request_id\":\"a\",\"prompt\":\"p\",\"output\":\"o\"}" >> live.jsonl
	echo "{\"request_id\":\"b\",\"prompt\":\"q\",\"output\":\"bad\"}" >> live.jsonl
	llm-monitor feedback add --log live.jsonl --request b --score 1 --correction good
	wait_for has_lines got 1
	jq -e ".source_request_id == \"b\" and .completion == \"good\" and .rejected == \"bad\"" got
	# a, unrated, is let go after --join-wait and does not match.
	llm-monitor feedback add --log live.jsonl --request c --score 2
	echo "{\"request_id\":\"c\",\"prompt\":\"r\",\"output\":\"o\"}" >> live.jsonl
	wait_for has_lines got 2
	sed -n 2p got | jq -e ".source_request_id == \"c\""
	kill $pid
	! grep -E "AddressSanitizer|runtime error:" err
'

# The loop closed: a curated dataset is what llm-prep template and llm-tune train read.
sample=$top_srcdir/data/sample/support.jsonl
t 'what curate writes, llm-prep template --mask renders and llm-tune train trains on' '
	mklog
	llm-monitor curate -q --where "feedback.score<=2" --completion-field fix --require-completion \
		--append-completion log.jsonl > data.jsonl
	llm-prep template -q --format chatml --mask data.jsonl > rendered.jsonl
	[ "$(lines rendered.jsonl)" = 2 ]
	jq -e "(.text | contains(\"<|im_start|>assistant\")) and (.loss_spans | length) >= 1" rendered.jsonl
	# A text prompt with a completion: the prompt/completion records llm-tune reads.
	echo "{\"request_id\":\"req-7\",\"prompt\":\"Spell cat\",\"output\":\"kat\"}" > l2.jsonl
	llm-monitor feedback add --log l2.jsonl --request req-7 --score 1 --correction cat
	llm-monitor curate -q --where "feedback.score<2" --require-completion l2.jsonl >> data.jsonl
	llm-prep tokenizer train -q -V 300 --out tok.json "$sample"
	cat > cfg.json <<-EOF
	{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16,
	 "intermediate_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
	 "num_key_value_heads": 1, "max_position_embeddings": 64, "vocab_size": 300,
	 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
	EOF
	llm-tune init -q --preset cfg.json --tokenizer tok.json --out base
	run llm-tune train --base base --data data.jsonl --out tuned --steps 2 --batch-size 2 \
		--seq-len 48 --threads 1 --runs-dir runs
	expect_status 0
	[ -f tuned/model.safetensors ]
'
t 'llm-monitor-curate(1): lint clean, up to date, every option and status documented' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor-curate.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	llm-monitor curate --help > help
	for o in $(llm-monitor curate --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-curate.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-curate.1.scd" || { echo "lacks status $s"; false; }; done
	grep -q "man/llm-monitor-curate.1" "$top_srcdir/mk/monitor-feedback.am"
	scdoc < "$man/llm-monitor-curate.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-monitor-curate.1" || { echo "llm-monitor-curate.1 is stale"; false; }
'
done_testing
