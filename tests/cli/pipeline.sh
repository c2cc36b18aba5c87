#!/bin/sh
# The README's pipeline, from raw JSONL to packed training tokens, on the shipped sample data.
. "$top_srcdir/tests/cli/lib.sh"
raw=$top_srcdir/data/sample/support.jsonl

prepare() {
	head -n 3 "$raw" > eval.jsonl
	printf 'Customer: {{text}}\nAgent:' > prompt.txt
	llm-prep validate --require id:string,text:string --pass "$raw" 2>/dev/null |
		llm-prep clean -q |
		llm-prep filter -q --rules length --set length.min_words=3 |
		llm-prep dedup -q |
		llm-prep redact -q |
		llm-prep decontaminate -q --eval eval.jsonl --eval-field text 2>/dev/null |
		llm-prep split -q --out data --report split.json
}

t 'the cleaning stages run as one pipe and every record is accounted for' '
	prepare
	total=$(cat data/*.jsonl | wc -l)
	[ "$total" -gt 100 ] && [ "$total" -lt 243 ]
	jq -e ".written == $total" split.json >/dev/null || jq -e ".read == $total" split.json
	! grep -q "jane.doe@example.com" data/*.jsonl
	[ "$(cat data/*.jsonl | jq -r .cluster_id | sort | uniq -d | wc -l)" = 0 ]
'
t 'the training split becomes chat text with loss spans, a tokenizer, a token file and packed sequences' '
	prepare
	llm-prep template -q --template prompt.txt data/train.jsonl |
		llm-prep template -q --format chatml --mask > train.chat.jsonl
	[ "$(lines train.chat.jsonl)" = "$(lines data/train.jsonl)" ]
	jq -e ".loss_spans | length == 1" train.chat.jsonl >/dev/null
	llm-prep tokenizer train -q --vocab-size 1024 \
		--special-tokens "<|endoftext|>,<|im_start|>,<|im_end|>" --out tokenizer.json data/train.jsonl
	llm-prep tokenize -q --tokenizer tokenizer.json --allow-special all --out train.bin train.chat.jsonl
	llm-prep pack -q --seq-len 256 --out train.packed.bin --report pack.json train.bin
	n=$(jq .sequences pack.json); [ "$n" -gt 0 ]
	# llm.c token files: a 1024-byte header, then 2-byte tokens; every sequence is 256 long.
	[ $(( $(wc -c < train.packed.bin) - 1024 )) = $(( n * 256 * 2 )) ]
	[ "$(jq .read pack.json)" = "$(lines train.chat.jsonl)" ] && [ "$(jq .dropped pack.json)" = 0 ]
'
t 'the trained tokenizer gives the text back exactly' '
	prepare
	llm-prep tokenizer train -q --vocab-size 512 --out tokenizer.json data/train.jsonl
	llm-prep tokenize -q --tokenizer tokenizer.json data/train.jsonl |
		jq -c "{tokens, want: .text}" |
		llm-prep tokenize -q --decode --tokenizer tokenizer.json > back.jsonl
	jq -e "select(.text != .want)" back.jsonl > diff.jsonl || true
	[ ! -s diff.jsonl ]
'
done_testing
