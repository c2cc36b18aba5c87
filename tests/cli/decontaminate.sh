#!/bin/sh
# llm-prep decontaminate: a planted leak, a clean case, the three modes, loud failures.
. "$top_srcdir/tests/cli/lib.sh"

q1="Which river is the longest in Africa and flows north into the Mediterranean Sea?"
evals() {
	cat > eval.jsonl <<J
{"id":"q1","prompt":"$q1","reference":["The Nile"]}
{"id":"q2","prompt":"What is the boiling point of water at sea level in degrees Celsius under normal pressure?","reference":"100"}
{"id":"q3","prompt":"Is the sky blue?","reference":"yes"}
J
}
# Training: t1 copies q1 (other case and punctuation) inside filler; t2 and t3 are clean.
train() {
	python3 -c "
import json
pad = \"lorem ipsum dolor sit amet \" * 20
print(json.dumps({\"id\": \"t1\", \"text\": pad + \"Quiz: which RIVER is the longest in Africa, and flows north into the Mediterranean sea? \" + pad}))
print(json.dumps({\"id\": \"t2\", \"text\": \"Cooking pasta with tomatoes and basil in the summer with friends is fun.\"}))
print(json.dumps({\"id\": \"t3\", \"text\": \"The Nile flows north. Which river is longest? The Mediterranean Sea.\"}))
" > train.jsonl
}

t 'a planted eval question is dropped and the clean records pass unchanged' '
	evals; train; run llm-prep decontaminate --eval eval.jsonl train.jsonl; expect_status 0
	tail -n 2 train.jsonl > want.jsonl; expect_out_file want.jsonl
	expect_err "1 contaminated"
'
t '--report names the leaked eval record and how many training records touched it' '
	evals; train; { cat train.jsonl; head -n 1 train.jsonl; } > two.jsonl
	llm-prep decontaminate -q -e eval.jsonl --report rep.json two.jsonl > /dev/null
	jq -e ".leaked_eval_records == 1 and .leaked[0].id == \"q1\" and .leaked[0].training_records == 2 and .leaked[0].line == 1" rep.json
	jq -e ".read == 4 and .written == 2 and .dropped == 2 and .contaminated == 2 and .eval.records == 3 and .eval.too_short == 1" rep.json
'
t 'a clean training set passes whole and the report says nothing leaked' '
	evals; train; tail -n 2 train.jsonl > clean.jsonl
	run llm-prep decontaminate -e eval.jsonl --report rep.json clean.jsonl; expect_status 0
	expect_out_file clean.jsonl
	jq -e ".leaked == [] and .contaminated == 0 and .eval.ngrams > 0" rep.json
'
t 'eval texts shorter than n words are announced, not silently ignored' '
	evals; train; run llm-prep decontaminate -q -e eval.jsonl train.jsonl; expect_status 0
	expect_err "warning: 1 of 3 eval records have fewer than 13 words"
'
t 'eval files that yield no n-gram at all stop the run with status 1' '
	printf "%s\n" "{\"prompt\":\"Is the sky blue?\"}" > short.jsonl; train
	run llm-prep decontaminate -e short.jsonl train.jsonl; expect_status 1; expect_no_out
	expect_err "yield no 13-grams"
	evals; run llm-prep decontaminate -e eval.jsonl --eval-field reference train.jsonl; expect_status 1
'
t '--ngram sets the n-gram length' '
	printf "%s\n" "{\"prompt\":\"Is the sky blue?\"}" > short.jsonl
	printf "%s\n" "{\"text\":\"They asked: is the SKY blue? Yes.\"}" "{\"text\":\"the sky is blue\"}" > t.jsonl
	run llm-prep decontaminate -n 4 -e short.jsonl t.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]; grep -q "the sky is blue" out
'
t '--mode tag keeps every record and flags the span in code points with the eval ids' '
	evals; train; llm-prep decontaminate -q -m tag -e eval.jsonl train.jsonl > out
	[ "$(lines out)" = 3 ]
	python3 -c "
import json
r = [json.loads(l) for l in open(\"out\")]
f = r[0][\"flags\"]
assert len(f) == 1 and f[0][\"kind\"] == \"contamination\" and f[0][\"eval_ids\"] == [\"q1\"], f
s, e = f[0][\"span\"]
assert r[0][\"text\"][s:e] == \"which RIVER is the longest in Africa, and flows north into the Mediterranean sea\", r[0][\"text\"][s:e]
assert \"flags\" not in r[1] and \"flags\" not in r[2]
"
'
t '--mode cut removes the match with 200 characters either side (the GPT-3 recipe)' '
	evals; train; llm-prep decontaminate -q -m cut -e eval.jsonl --report rep.json train.jsonl > out
	python3 -c "
import json
src = json.loads(open(\"train.jsonl\").readline())[\"text\"]
s = src.index(\"which\"); e = src.index(\" sea?\") + 4
want = src[:s - 200] + \"\n\n\" + src[e + 200:]
got = json.loads(open(\"out\").readline())[\"text\"]
assert got == want, (len(got), len(want))
"
	jq -e ".cut == 1 and .written == 3" rep.json
'
t '--mode cut drops a text split into more than --max-pieces pieces' '
	evals; python3 -c "
import json
pad = \"x\" * 450
print(json.dumps({\"id\": \"many\", \"text\": (pad + \" $q1 \") * 11 + pad}))
" > many.jsonl
	run llm-prep decontaminate -m cut -e eval.jsonl --report rep.json many.jsonl; expect_status 0; expect_no_out
	jq -e ".dropped_contaminated == 1 and .dropped == 1" rep.json
	run llm-prep decontaminate -m cut --max-pieces 12 -e eval.jsonl many.jsonl; expect_status 0
	[ "$(jq -r .text out | grep -c .)" = 2 ] # the 10 inner pieces are under 200 characters
	run llm-prep decontaminate -m cut --max-pieces 12 --min-piece 10 -e eval.jsonl many.jsonl
	[ "$(jq -r .text out | grep -c .)" = 12 ]
'
t 'references as arrays and chat messages count as eval text' '
	printf "%s\n" "{\"id\":\"m\",\"messages\":[{\"role\":\"user\",\"content\":\"$q1\"}]}" > chat.jsonl
	train; run llm-prep decontaminate -q -e chat.jsonl --eval-field messages train.jsonl; expect_status 0
	[ "$(lines out)" = 2 ]
'
t 'a bad eval record stops the run with FILE:LINE; a missing --eval is a usage error' '
	train; printf "%s\n" "{\"prompt\":\"$q1\"}" "{oops" > e.jsonl
	run llm-prep decontaminate -e e.jsonl train.jsonl; expect_status 1; expect_err "e.jsonl:2:"
	run llm-prep decontaminate train.jsonl; expect_status 2; expect_err "--eval"
	run llm-prep decontaminate -e missing.jsonl train.jsonl; expect_status 3
	printf "%s\n" "{\"id\":1}" > nofield.jsonl
	run llm-prep decontaminate -e nofield.jsonl train.jsonl; expect_status 1; expect_err "nofield.jsonl:1:"
'
t 'a training text that is not a string is a bad record' '
	evals; printf "%s\n" "{\"text\":[\"a\"]}" "{\"text\":\"fine\"}" > b.jsonl
	run llm-prep decontaminate -e eval.jsonl b.jsonl; expect_status 1; expect_err "b.jsonl:1: field \"text\""
	run llm-prep decontaminate --on-error skip -e eval.jsonl --report rep.json b.jsonl; expect_status 0
	jq -e ".read == 2 and .written == 1 and .dropped == 1" rep.json
'
done_testing
