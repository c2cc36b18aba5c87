#!/bin/sh
# llm-eval with models: perplexity and bits per byte through the embedded engine on a tiny
# model made here (the same numbers as the engine's own prompt scoring through llm-gen), from
# the log-probabilities llm-gen keeps, and an LLM judge on a fake OpenAI server started here on
# loopback (tests/cli/fake-openai.py answers "echo: PROMPT", so the rubric decides what the
# judge "says"): scores parsed, pass, the judge's prompt and answer kept, failures, the cache.
. "$top_srcdir/tests/cli/lib.sh"
fake=$top_srcdir/tests/cli/fake-openai.py
py=/usr/bin/python3
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_API_KEY OPENAI_API_KEY

trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

srv=$scratch/server
mkdir -p "$srv"
"$py" "$fake" --port-file "$srv/port" --log "$srv/log.jsonl" >/dev/null 2>"$srv/err" &
echo $! >>"$scratch/pids"
i=0
while [ ! -s "$srv/port" ]; do
	i=$((i + 1))
	[ $i -lt 200 ] || { echo "the fake server did not start" >&2; cat "$srv/err" >&2; exit 1; }
	sleep 0.05
done
touch "$srv/log.jsonl"
url=http://127.0.0.1:$(cat "$srv/port")/v1

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
model=$shared/model
texts=$scratch/texts.jsonl
cat > "$texts" <<'EOF'
{"id":"t1","text":"How do I reset my password?"}
{"id":"t2","text":"The order arrived late, and the box was damaged."}
{"id":"t3","text":"Café crème, s'il vous plaît."}
EOF

# near A B EPS: |A - B| <= EPS (relative to max(1, |B|)).
near() {
	awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; m = b < 0 ? -b : b;
		if (m < 1) m = 1; exit !(d <= e * m) }' || { echo "$1 is not $2 within $3"; return 1; }
}

t 'perplexity with --model through the engine equals the engine'\''s own prompt scoring (llm-gen echo)' '
	jq -c "{id, prompt: .text}" "$texts" |
		llm-gen -q -m "$model" --completions --temperature 0 --max-tokens 0 --logprobs 1 \
			--params "{\"echo\": true}" --no-cache > gen.jsonl
	# The sums straight from the engine'\''s answers.
	jq -s "map(.logprobs.token_logprobs | map(select(. != null))) | flatten" gen.jsonl > lp.json
	nll=$(jq "map(-.) | add" lp.json); tokens=$(jq length lp.json)
	bytes=$(jq -j .text "$texts" | wc -c)
	run llm-eval -m perplexity --model "$model" --no-cache --report m.json "$texts"; expect_status 0
	[ "$(lines out)" = 3 ]
	jq -e ".metrics.perplexity.details.tokens == $tokens and .metrics.bpb.details.bytes == $bytes" m.json
	near "$(jq .metrics.perplexity.details.nll m.json)" "$nll" 1e-9
	near "$(jq .metrics.perplexity.score m.json)" "$(awk -v n="$nll" -v t="$tokens" "BEGIN { printf \"%.17g\", exp(n / t) }")" 1e-9
	# Bits per byte: -sum(logprob) / ln 2 / bytes.
	near "$(jq .metrics.bpb.score m.json)" "$(awk -v n="$nll" -v b="$bytes" "BEGIN { printf \"%.17g\", n / log(2) / b }")" 1e-9
	jq -e ".metrics.perplexity.higher_is_better == false and (.metrics.perplexity.signature | test(\"source:model:\"))" m.json
'
t 'perplexity from the log-probabilities llm-gen keeps gives the same numbers' '
	jq -c "{id, prompt: .text}" "$texts" |
		llm-gen -q -m "$model" --completions --temperature 0 --max-tokens 0 --logprobs 1 \
			--params "{\"echo\": true}" --no-cache > gen.jsonl
	llm-eval -m perplexity --report g.json gen.jsonl > out.jsonl
	llm-eval -m perplexity --model "$model" --no-cache --report m.json "$texts" > /dev/null
	jq -e ".metrics.perplexity.details" g.json > a; jq -e ".metrics.perplexity.details" m.json > b
	cmp a b
	jq -s -e "map(.scores.perplexity > 1 and .scores.bpb > 0) | all" out.jsonl
	# The chat API'\''s shape, and a bare list, count the same way.
	echo "{\"output\":\"ab\",\"logprobs\":{\"content\":[{\"token\":\"a\",\"logprob\":-1},{\"token\":\"b\",\"logprob\":-3}]}}" > chat.jsonl
	llm-eval -m perplexity chat.jsonl > c
	near "$(jq .scores.perplexity c)" "$(awk "BEGIN { printf \"%.17g\", exp(2) }")" 1e-9
	near "$(jq .scores.bpb c)" "$(awk "BEGIN { printf \"%.17g\", 4 / log(2) / 2 }")" 1e-9
	echo "{\"output\":\"ab\",\"logprobs\":[-1,-3]}" | llm-eval -m perplexity | jq -c .scores > d
	jq -c .scores c | cmp - d
	echo "{\"output\":\"ab\"}" > none.jsonl
	run llm-eval -m perplexity none.jsonl; expect_status 1
	expect_err "none.jsonl:1: missing field \"logprobs\""
'
t '--model and --judge-model without their metric are usage errors' '
	run llm-eval -m bleu --model "$model" "$texts"; expect_status 2; expect_err "add perplexity to --metrics"
	run llm-eval -m judge "$texts"; expect_status 2; expect_err "needs --judge-model and --rubric"
	run llm-eval -m perplexity --model nowhere "$texts"; expect_status 3; expect_err "nowhere"
'

cat > "$scratch/rubric.txt" <<'EOF'
Grade the answer against the reference, from 1 to 10.
Answer: {{output}}
Reference: {{reference}}
Rating: [[{{grade}}]]
EOF
judge_recs() {
	for g in "$@"; do
		jq -cn --arg g "$g" '{id: ("j" + $g), output: ("answer " + $g), reference: "ref", grade: $g}'
	done
}

t 'the judge'\''s score, pass and reason come from its answer; its prompt and answer are kept' '
	judge_recs 7 3 10 > in.jsonl
	run llm-eval -m judge --judge-model "$url" --judge-model-name fake --rubric "$scratch/rubric.txt" \
		--no-cache --report r.json in.jsonl; expect_status 0
	[ "$(jq -c "[.scores.judge, .scores.judge_pass]" out | tr "\n" " ")" = "[7,1] [3,0] [10,1] " ]
	jq -s -e ".[] | select(.id == \"j7\") | .judge | .score == 7 and .pass == true and
		(.prompt | startswith(\"Grade the answer\") and contains(\"Answer: answer 7\")) and
		(.answer | startswith(\"echo: Grade the answer\")) and (.reason | length > 0)" out
	jq -e "(.metrics.judge.score * 1e6 | round) == 6666667 and (.metrics.judge_pass.score * 3 | round) == 2" r.json
	jq -e ".metrics.judge.signature | test(\"^model:http.*\\\\|rubric:[0-9a-f]{16}\\\\|scale:1-10\\\\|pass:5.5\$\")" r.json
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache \
		--judge-pass 8 in.jsonl; expect_status 0
	[ "$(jq -c .scores.judge_pass out | tr "\n" " ")" = "0 0 1 " ]
'
t 'a judge answering in JSON gives its score and reason' '
	printf "%s\n" "Answer: {{output}}" "{\"score\": {{grade}}, \"reason\": \"close enough\"}" > json-rubric.txt
	judge_recs 4 > in.jsonl
	llm-eval -m judge --judge-model "$url" --rubric json-rubric.txt --judge-scale 0-5 --no-cache in.jsonl > out
	jq -e ".scores.judge == 4 and .judge.reason == \"close enough\" and .judge.pass == true" out
'
t 'a judge answer without a score, or off the scale, is a bad record; a failed request exits 3' '
	judge_recs none 12 > in.jsonl
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache in.jsonl
	expect_status 1; expect_err "in.jsonl:1: the judge'\''s answer states no score"
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache \
		--on-error skip in.jsonl; expect_status 1
	expect_err "in.jsonl:2: the judge'\''s score 12 is outside the scale 1-10"
	expect_err "no records were scored"
	judge_recs 6 "@status=400" > in2.jsonl
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache \
		--max-record-bytes 1M --on-error keep in2.jsonl; expect_status 3
	expect_err "1 record failed at the model"
	[ "$(lines out)" = 2 ] && [ "$(jq -s "map(select(.error)) | length" out)" = 1 ]
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache in2.jsonl
	expect_status 3; expect_err "in2.jsonl:2: --judge-model: "
'
t 'a rubric field the record lacks names the record and the rubric line' '
	judge_recs 5 | jq -c "del(.grade)" > in.jsonl
	run llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" --no-cache in.jsonl
	expect_status 1; expect_err "in.jsonl:1: rubric: $scratch/rubric.txt:4:"
'
t 'the judge'\''s answers are cached, so a re-run asks nothing again' '
	judge_recs 8 9 > in.jsonl
	llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" in.jsonl > a
	n=$(lines "$srv/log.jsonl")
	llm-eval -m judge --judge-model "$url" --rubric "$scratch/rubric.txt" in.jsonl > b
	[ "$(lines "$srv/log.jsonl")" = "$n" ]
	cmp a b
	[ -d "$LLMOPS_HOME/cache/eval" ]
'
done_testing
