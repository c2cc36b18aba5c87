#!/bin/sh
# llm-prep tokenize: ids identical to tiktoken and Hugging Face tokenizers on the golden corpus
# (tests/data/tokenize, made by scripts/maint/make-token-fixtures), counts, truncation, token
# files, special tokens, decoding, long runs and bad input.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_TOKENIZER_DIR=$top_srcdir/data/tokenizers
export LLMOPS_TOKENIZER_DIR
tok=$data/tokenize

for enc in gpt2 cl100k_base o200k_base; do
	t "--encoding $enc gives the ids tiktoken gives on the golden corpus" '
		run llm-prep tokenize -q --encoding '$enc' "$tok/corpus.jsonl"; expect_status 0
		jq -c .tokens out > ids.txt; cmp ids.txt "$tok/expected-'$enc'.txt"
	'
done
for hf in tiny-gpt2 tiny-split; do
	t "--tokenizer $hf.json gives the ids Hugging Face tokenizers gives" '
		run llm-prep tokenize -q --allow-special all --tokenizer "$tok/'$hf'.json" "$tok/corpus-hf.jsonl"
		expect_status 0; jq -c .tokens out > ids.txt; cmp ids.txt "$tok/expected-'$hf'.txt"
	'
done
t 'tiktoken published values: hello world in gpt2 and cl100k_base, a thumbs up' '
	printf "{\"text\":\"hello world\"}\n{\"text\":\"\\ud83d\\udc4d\"}\n" > in.jsonl
	llm-prep tokenize -q -e gpt2 in.jsonl | jq -c .tokens | head -1 | grep -qx "\[31373,995\]"
	llm-prep tokenize -q -e cl100k_base in.jsonl | jq -c .tokens > got
	printf "[15339,1917]\n[9468,239,235]\n" | cmp - got
'
t 'the ids are added at the end and every other field passes through byte for byte' '
	printf "{\"id\": \"a\",  \"text\":\"hi\",\"n\":1.50}\n" > in.jsonl
	run llm-prep tokenize -q -e gpt2 in.jsonl; expect_status 0
	expect_out "{\"id\": \"a\",  \"text\":\"hi\",\"n\":1.50,\"tokens\":[5303]}"
'
t '--text-field and --tokens-field rename the fields; stdin is read' '
	printf "{\"body\":\"hello world\"}\n" | llm-prep tokenize -q -e gpt2 --text-field body --tokens-field ids > o
	jq -ce .ids o | grep -qx "\[31373,995\]"
'
t 'special tokens are text by default and one id when allowed' '
	printf "{\"text\":\"a<|endoftext|>b\"}\n" > in.jsonl
	llm-prep tokenize -q -e gpt2 in.jsonl | jq -c .tokens > plain
	grep -qx "\[64,27,91,437,1659,5239,91,29,65\]" plain
	llm-prep tokenize -q -e gpt2 --allow-special "<|endoftext|>" in.jsonl | jq -c .tokens > allowed
	grep -qx "\[64,50256,65\]" allowed
	llm-prep tokenize -q -e cl100k_base --allow-special all in.jsonl | jq -c .tokens | grep -qx "\[64,100257,65\]"
'
t 'an unknown special token is a usage error' '
	run llm-prep tokenize -e gpt2 --allow-special "<|fim_prefix|>" "$tok/corpus.jsonl"
	expect_status 2; expect_err "no special token"
'
t '--count adds n_tokens (or --count-field) and the report totals them' '
	run llm-prep tokenize -q -e cl100k_base --count --report rep.json "$tok/corpus.jsonl"
	expect_status 0
	want=$(jq -s "map(length) | add" "$tok/expected-cl100k_base.txt")
	[ "$(jq -s "map(.n_tokens) | add" out)" = "$want" ]
	jq -e ".tokens == $want and .documents == 36 and .read == 36 and .written == 36 and .dropped == 0" rep.json
	! grep -q "\"tokens\"" out
	llm-prep tokenize -q -e gpt2 --count --count-field budget "$tok/corpus.jsonl" | jq -e ".budget" > /dev/null
'
t '--max-tokens N keeps the first N ids and counts the truncated records' '
	run llm-prep tokenize -q -e o200k_base --max-tokens 5 --report rep.json "$tok/corpus.jsonl"
	expect_status 0
	jq -c .tokens out > got
	jq -c ".[:5]" "$tok/expected-o200k_base.txt" > want
	cmp got want
	n=$(jq -s "map(select(length > 5)) | length" "$tok/expected-o200k_base.txt")
	jq -e ".truncated == $n" rep.json
'
t '--out writes an llm.c token file and index that hold the golden ids' '
	run llm-prep tokenize -q -e gpt2 --out train.bin "$tok/corpus.jsonl"; expect_status 0
	expect_no_out
	[ "$(od -An -tu4 -N12 train.bin | tr -s " " | sed "s/^ //")" = "20240520 1 $(jq -s "map(length) | add" "$tok/expected-gpt2.txt")" ]
	od -An -tu2 -v -j1024 train.bin | tr -s " \n" "\n\n" | grep . > got
	jq ".[]" "$tok/expected-gpt2.txt" > want
	cmp got want
	[ "$(head -c 8 train.bin.idx)" = LLMOPSIX ]
	[ "$(od -An -tu8 -j16 -N8 train.bin.idx | tr -d " ")" = 36 ]
'
t '--eot puts the end-of-text token before each document; cl100k_base needs 32-bit ids' '
	llm-prep tokenize -q -e cl100k_base --eot --out t.bin --report rep.json "$tok/corpus.jsonl"
	[ "$(od -An -tu4 -j4 -N4 t.bin | tr -d " ")" = 2 ]
	[ "$(od -An -tu4 -j1024 -N4 t.bin | tr -d " ")" = 100257 ]
	jq -e ".eot_tokens == 36" rep.json
	printf "{\"text\":\"hi\"}\n" | llm-prep tokenize -q -e gpt2 --eot | jq -c .tokens | grep -qx "\[50256,5303\]"
'
t '--eot with a tokenizer that lacks the token is a usage error' '
	run llm-prep tokenize -e gpt2 --eot --eot-token "<|end_of_text|>" "$tok/corpus.jsonl"
	expect_status 2; expect_err "<|end_of_text|>"
'
t '--decode turns the ids back into the text' '
	llm-prep tokenize -q -e o200k_base "$tok/corpus.jsonl" | jq -c "del(.text)" > ids.jsonl
	run llm-prep tokenize -q -e o200k_base --decode ids.jsonl; expect_status 0
	jq -c .text out > got; jq -c .text "$tok/corpus.jsonl" > want; cmp got want
	printf "{\"tokens\":[9468,239]}\n" | llm-prep tokenize -q --decode | jq -r .text | grep -q "$(printf "\357\277\275")"
'
t '--decode: an id outside the vocabulary is a bad record' '
	printf "{\"tokens\":[1]}\n{\"tokens\":[999999]}\n" > ids.jsonl
	run llm-prep tokenize -e gpt2 --decode ids.jsonl; expect_status 1
	expect_err "ids.jsonl:2: token id 999999 is not in the vocabulary"
'
t 'a 10 MB run of one character finishes with the right count' '
	{ printf "{\"text\":\""; head -c 10485760 /dev/zero | tr "\\000" x; printf "\"}\n"; } > x.jsonl
	[ $(wc -c < x.jsonl) = 10485772 ]
	run llm-prep tokenize -q -e gpt2 --count x.jsonl; expect_status 0
	# tiktoken gives "x" * n as n / 8 tokens "xxxxxxxx" (24223) at n = 10,000 and 100,000.
	cut -c 10485760- out | grep -q "\"n_tokens\":1310720}"
	run llm-prep tokenize -q -e gpt2 --out x.bin x.jsonl; expect_status 0
	od -An -tu2 -v -j1024 x.bin | tr -s " \n" "\n\n" | grep . | sort -u | grep -qx 24223
'
t 'a record without the text field fails with FILE:LINE, or is dropped under skip' '
	printf "{\"text\":\"a\"}\n{\"body\":\"b\"}\n{\"text\":3}\n" > m.jsonl
	run llm-prep tokenize -e gpt2 m.jsonl; expect_status 1
	expect_err "m.jsonl:2: missing field \"text\""
	run llm-prep tokenize -e gpt2 --on-error skip --report rep.json m.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]; expect_err "m.jsonl:3: field \"text\" is a number, not a string"
	jq -e ".read == 3 and .written == 1 and .dropped == 2 and .read == .written + .dropped" rep.json
	run llm-prep tokenize -e gpt2 --on-error keep m.jsonl; expect_status 0
	[ "$(lines out)" = 3 ]; [ "$(jq -c "select(.error) | .error.code" out | wc -l)" = 2 ]
'
t 'an unknown encoding is a usage error' '
	run llm-prep tokenize -e p50k_nope "$tok/corpus.jsonl"; expect_status 2
	expect_err "unknown encoding '\''p50k_nope'\''"; expect_no_out
	LLMOPS_TOKENIZER_DIR=$PWD run llm-prep tokenize -e gpt2 "$tok/corpus.jsonl"; expect_status 2
'
t 'a missing or unreadable tokenizer file fails with 3' '
	run llm-prep tokenize --tokenizer nowhere.json "$tok/corpus.jsonl"; expect_status 3
	expect_err "nowhere.json: cannot open"
	mkdir d.json; run llm-prep tokenize --tokenizer d.json "$tok/corpus.jsonl"; expect_status 3
	printf "{\"model\":" > broken.json
	run llm-prep tokenize --tokenizer broken.json "$tok/corpus.jsonl"; expect_status 3
'
t 'a vocabulary that fails its sha256 is refused with 3' '
	mkdir v; cp "$LLMOPS_TOKENIZER_DIR"/gpt2.* v/
	chmod u+w v/gpt2.tiktoken; printf "Ig== 0\n" | dd of=v/gpt2.tiktoken conv=notrunc 2>/dev/null
	LLMOPS_TOKENIZER_DIR=$PWD/v run llm-prep tokenize -e gpt2 "$tok/corpus.jsonl"
	expect_status 3; expect_err "gpt2.tiktoken: sha256"; expect_no_out
'
t 'a tokenizer.json that is not byte-level BPE is a usage error' '
	printf "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{}}}\n" > wp.json
	run llm-prep tokenize --tokenizer wp.json "$tok/corpus.jsonl"; expect_status 2
	expect_err "unsupported tokenizer"
'
t 'a .tiktoken file with its meta file works as --tokenizer' '
	cp "$LLMOPS_TOKENIZER_DIR"/o200k_base.* .
	llm-prep tokenize -q --tokenizer o200k_base.tiktoken "$tok/corpus.jsonl" | jq -c .tokens | cmp - "$tok/expected-o200k_base.txt"
'
t 'options that do not go together are usage errors' '
	run llm-prep tokenize --count --decode "$tok/corpus.jsonl"; expect_status 2
	run llm-prep tokenize --count --out x.bin "$tok/corpus.jsonl"; expect_status 2; [ ! -e x.bin ]
	run llm-prep tokenize -e gpt2 --tokenizer "$tok/tiny-gpt2.json" "$tok/corpus.jsonl"; expect_status 2
	run llm-prep tokenize --max-tokens 0 "$tok/corpus.jsonl"; expect_status 2
'
t 'on a bad record no token file is left behind' '
	printf "{\"text\":\"a\"}\nnot json\n" > bad.jsonl
	run llm-prep tokenize -e gpt2 --out t.bin bad.jsonl; expect_status 1
	[ ! -e t.bin ] && [ ! -e t.bin.idx ] && [ "$(ls | grep -c tmp)" = 0 ]
'
# 50,000 records of prose for the --resume tests: long enough that a run is still going when its
# first checkpoint appears.
make_long_input() {
	awk "BEGIN { srand(3); split(\"the of and to in a is that for it as was with be by on not he this are or his from at\", w, \" \");
		for (i = 1; i <= 50000; i++) { s = \"\"; n = 5 + int(rand() * 40);
			for (j = 0; j < n; j++) s = s (j ? \" \" : \"\") w[1 + int(rand() * 25)];
			printf \"{\\\"id\\\":%d,\\\"text\\\":\\\"%s\\\"}\\n\", i, s } }" > long.jsonl
}
t '--resume: a run killed with kill -9 after a checkpoint, resumed, gives the same files' '
	make_long_input
	llm-prep tokenize -q --eot --out full.bin long.jsonl
	llm-prep tokenize -q --eot --resume --checkpoint-records 500 --out r.bin long.jsonl &
	pid=$!
	while [ ! -e r.bin.partial.state ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
	kill -9 $pid; wait $pid || :
	[ ! -e r.bin ] && [ -e r.bin.partial ] && [ -e r.bin.partial.idx ]
	jq -e ".records >= 500 and .records < 50000" r.bin.partial.state
	run llm-prep tokenize --eot --resume --checkpoint-records 500 --out r.bin --report rep.json long.jsonl
	expect_status 0; expect_err "resuming after"
	cmp full.bin r.bin; cmp full.bin.idx r.bin.idx
	[ ! -e r.bin.partial ] && [ ! -e r.bin.partial.idx ] && [ ! -e r.bin.partial.state ]
	jq -e ".read == 50000 and .documents == 50000 and .eot_tokens == 50000" rep.json
'
t '--resume without a checkpoint starts afresh and gives what --out alone gives' '
	llm-prep tokenize -q -e gpt2 --out a.bin "$tok/corpus.jsonl"
	printf "junk" > b.bin.partial
	llm-prep tokenize -q -e gpt2 --resume --out b.bin "$tok/corpus.jsonl"
	cmp a.bin b.bin; cmp a.bin.idx b.bin.idx; [ ! -e b.bin.partial ]
'
t '--resume with other options or a changed input is refused with 2, naming the difference' '
	make_long_input
	llm-prep tokenize -q --eot --resume --checkpoint-records 500 --out r.bin long.jsonl &
	pid=$!
	while [ ! -e r.bin.partial.state ] && kill -0 $pid 2>/dev/null; do sleep 0.01; done
	kill -9 $pid; wait $pid || :
	run llm-prep tokenize --resume --out r.bin long.jsonl; expect_status 2; expect_err "--eot differs"
	run llm-prep tokenize --eot --max-tokens 9 --resume --out r.bin long.jsonl
	expect_status 2; expect_err "--max-tokens differs"
	run llm-prep tokenize --eot -e gpt2 --resume --out r.bin long.jsonl
	expect_status 2; expect_err "--encoding or --tokenizer differs"
	printf "{\"text\":\"one more\"}\n" >> long.jsonl
	run llm-prep tokenize --eot --resume --out r.bin long.jsonl
	expect_status 2; expect_err "the input long.jsonl is not the one checkpointed"
	[ -e r.bin.partial.state ] && [ ! -e r.bin ]
'
t '--resume without --out, or reading standard input, is a usage error' '
	run llm-prep tokenize --resume "$tok/corpus.jsonl"; expect_status 2; expect_err "needs --out"
	run llm-prep tokenize --resume --out x.bin < "$tok/corpus.jsonl"; expect_status 2
	expect_err "standard input"; [ ! -e x.bin.partial ]
'
t 'a closed pipe ends quietly' '
	llm-prep tokenize -q -e gpt2 "$tok/corpus.jsonl" "$tok/corpus.jsonl" 2>err | head -1 > /dev/null
	! grep -q . err
'
done_testing
