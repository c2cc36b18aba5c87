#!/bin/sh
# llm-prep tokenizer train: the merges Hugging Face tokenizers learns on the same text
# (tests/data/train/hf-merges-*.json, from hf-train.js), the tokenizer.json layout, options,
# bad input and exit statuses.
. "$top_srcdir/tests/cli/lib.sh"
train=$data/train

t 'the merges are those Hugging Face BpeTrainer learns (cl100k pattern)' '
	llm-prep tokenizer train -q --vocab-size 100000 --min-frequency 0 -o tok.json "$train/corpus.jsonl"
	jq -c .model.merges tok.json | cmp - "$train/hf-merges-cl100k.json"
'
t 'the merges are those Hugging Face BpeTrainer learns (gpt2 pattern)' '
	llm-prep tokenizer train -q --pattern gpt2 -V 100000 --min-frequency 0 -o tok.json "$train/corpus.jsonl"
	jq -c .model.merges tok.json | cmp - "$train/hf-merges-gpt2.json"
'
t '--vocab-size stops at that many tokens, the merges a prefix of the full run' '
	llm-prep tokenizer train -q -V 300 --min-frequency 0 -o tok.json "$train/corpus.jsonl"
	[ "$(jq ".model.vocab | length" tok.json)" = 300 ]
	[ "$(jq ".model.merges | length" tok.json)" = 43 ]
	jq -c ".[0:43]" "$train/hf-merges-cl100k.json" > want.json
	jq -c .model.merges tok.json | cmp - want.json
'
t 'the tokenizer.json has the Hugging Face layout' '
	llm-prep tokenizer train -q -V 400 -o tok.json "$train/corpus.jsonl"
	[ "$(jq -r .version tok.json)" = 1.0 ]
	jq -e ".normalizer == null and .truncation == null and .padding == null" tok.json
	jq -e ".added_tokens == [{\"id\":0,\"content\":\"<|endoftext|>\",\"single_word\":false,\"lstrip\":false,\"rstrip\":false,\"normalized\":false,\"special\":true}]" tok.json
	jq -e ".pre_tokenizer.type == \"Sequence\" and .pre_tokenizer.pretokenizers[0].type == \"Split\" and .pre_tokenizer.pretokenizers[0].behavior == \"Isolated\" and .pre_tokenizer.pretokenizers[0].invert == false and (.pre_tokenizer.pretokenizers[0].pattern.Regex | startswith(\"(?i:\"))" tok.json
	jq -e ".pre_tokenizer.pretokenizers[1] == {\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":false}" tok.json
	jq -e ".decoder.type == \"ByteLevel\" and .post_processor.type == \"ByteLevel\"" tok.json
	jq -e ".model | .type == \"BPE\" and .dropout == null and .unk_token == null and .continuing_subword_prefix == null and .end_of_word_suffix == null and .fuse_unk == false and .byte_fallback == false and .ignore_merges == false" tok.json
	# byte tokens in code-point order after the special token: "!" is 1, newline (Ċ) 199, space (Ġ) 221
	jq -e ".model.vocab[\"!\"] == 1 and .model.vocab[\"Ġ\"] == 221 and .model.vocab[\"Ċ\"] == 199 and .model.vocab[\"<|endoftext|>\"] == 0" tok.json
	# every merge yields a token of the vocabulary, ids 257 upward in merge order
	jq -e ".model as \$m | [\$m.merges[] | add | \$m.vocab[.]] == [range(257; 257 + (\$m.merges | length))]" tok.json
'
t 'training is deterministic: the same input gives the same bytes' '
	llm-prep tokenizer train -q -V 500 -o a.json "$train/corpus.jsonl"
	cat "$train/corpus.jsonl" | llm-prep tokenizer train -q -V 500 -o b.json
	cmp a.json b.json
'
t '--special-tokens take the first ids and are never split or counted' '
	printf "{\"text\":\"ab<|pad|>ab<|pad|>ab\"}\n" > s.jsonl
	llm-prep tokenizer train -q --special-tokens "<|endoftext|>,<|pad|>" --min-frequency 1 -o tok.json s.jsonl
	jq -e ".added_tokens | map(.id) == [0, 1]" tok.json
	jq -e ".model.vocab[\"<|pad|>\"] == 1 and .model.merges == [[\"a\",\"b\"]]" tok.json
	llm-prep tokenizer train -q --special-tokens "" -V 256 -o none.json s.jsonl
	jq -e ".added_tokens == [] and (.model.vocab | length) == 256" none.json
'
t 'a --vocab-size below 256 plus the special tokens is a usage error' '
	run llm-prep tokenizer train -V 256 -o tok.json "$train/corpus.jsonl"; expect_status 2
	expect_err "--vocab-size 256 is below"; [ ! -e tok.json ]
	run llm-prep tokenizer train -V 257 -o tok.json "$train/corpus.jsonl"; expect_status 0
'
t '--min-frequency stops when the best pair is rarer' '
	llm-prep tokenizer train -q --min-frequency 1000000 -o tok.json "$train/corpus.jsonl"
	jq -e ".model.merges == [] and (.model.vocab | length) == 257" tok.json
'
t 'the sub-verb must be train' '
	run llm-prep tokenizer -o tok.json; expect_status 2; expect_err "a sub-verb is needed: train"
	run llm-prep tokenizer encode -o tok.json; expect_status 2
	expect_err "unknown sub-verb '\''encode'\'' (sub-verbs: train)"
'
t '--out is required; a bad --pattern is a usage error' '
	run llm-prep tokenizer train "$train/corpus.jsonl"; expect_status 2; expect_err "--out"
	run llm-prep tokenizer train --pattern "(oops" -o t.json "$train/corpus.jsonl"; expect_status 2
	expect_err "--pattern"
'
t 'a record without the text field fails with FILE:LINE, or is dropped under skip' '
	printf "{\"text\":\"hello\"}\n{\"body\":\"x\"}\n{\"text\":3}\n" > m.jsonl
	run llm-prep tokenizer train -o tok.json m.jsonl; expect_status 1
	expect_err "m.jsonl:2: missing field \"text\""; [ ! -e tok.json ]
	run llm-prep tokenizer train --on-error skip --report rep.json -o tok.json m.jsonl
	expect_status 0; expect_err "m.jsonl:3: field \"text\" is a number"
	jq -e ".read == 3 and .written == 1 and .dropped == 2 and .read == .written + .dropped" rep.json
'
t '--text-field names the field' '
	printf "{\"body\":\"abab abab\"}\n" > b.jsonl
	llm-prep tokenizer train -q --text-field body --min-frequency 1 -o tok.json b.jsonl
	jq -e ".model.merges[0] == [\"a\",\"b\"]" tok.json
'
t '--report counts words, merges and the vocabulary' '
	llm-prep tokenizer train -q -V 300 --report rep.json -o tok.json "$train/corpus.jsonl"
	jq -e ".read == 400 and .written == 400 and .dropped == 0 and .merges == 43 and .vocab_size == 300 and .distinct_words > 0 and .words >= .distinct_words and .pruned_words == 0" rep.json
'
t '--max-words prunes rare words and says so' '
	llm-prep tokenizer train -q --max-words 50 --report rep.json -o tok.json "$train/corpus.jsonl"
	jq -e ".pruned_words > 0 and .distinct_words <= 50" rep.json
'
t 'a missing input fails with 3 and writes nothing' '
	run llm-prep tokenizer train -o tok.json nosuch.jsonl; expect_status 3; [ ! -e tok.json ]
	run llm-prep tokenizer train -o nodir/tok.json "$train/corpus.jsonl"; expect_status 3
'
t 'a bad JSON record fails with 1' '
	run llm-prep tokenizer train -o tok.json "$data/bad-json.jsonl"; expect_status 1
	[ ! -e tok.json ]; no_sanitizer_report
'
t 'tokenizer --help lists its options and the sub-verb' '
	run llm-prep tokenizer --help; expect_status 0
	grep -q "^usage: llm-prep tokenizer train" out
	for o in --vocab-size --min-frequency --special-tokens --pattern --max-words --text-field; do grep -qe "$o" out; done
'
done_testing
