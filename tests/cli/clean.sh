#!/bin/sh
# llm-prep clean: each step, the switches, pass-through, the report and bad input.
. "$top_srcdir/tests/cli/lib.sh"
messy=$data/clean/messy.jsonl

t 'clean applies the default steps and leaves other fields and clean records byte for byte' '
	run llm-prep clean "$messy"; expect_status 0
	printf "{\"id\":1,\"text\":\"Caf\303\251 au lait\\\\n\\\\nfin\",\"n\":1.50}\n" > want
	sed -n 2p "$messy" >> want
	sed -n 3p "$messy" >> want
	expect_out_file want
'
t 'clean keeps zero-width joiners unless --strip-joiners' '
	sed -n 3p "$messy" > j.jsonl
	llm-prep clean j.jsonl | cmp - j.jsonl
	llm-prep clean --strip-joiners j.jsonl | jq -e ".text == \"ZeroWidthJoiners\tstay\""
'
t 'clean --form nfkc folds compatibility characters; --form none leaves them' '
	printf "{\"text\":\"\\\\ufb01ne \\\\uff21\"}\n" > k.jsonl
	llm-prep clean --form nfkc k.jsonl | jq -e ".text == \"fine A\""
	llm-prep clean --form none k.jsonl | cmp - k.jsonl
	llm-prep clean k.jsonl | cmp - k.jsonl
'
t 'clean --lowercase lowercases beyond ASCII' '
	printf "{\"text\":\"\\\\u00c0BC \\\\u0394\"}\n" | llm-prep clean --lowercase | jq -e ".text == \"\\u00e0bc \\u03b4\""
'
t 'clean --skip switches steps off' '
	printf "{\"text\":\"a  b \\\\r\\\\n\\\\n\\\\n\\\\nc\"}\n" > s.jsonl
	llm-prep clean s.jsonl | jq -e ".text == \"a b\n\nc\""
	llm-prep clean --skip collapse s.jsonl | jq -e ".text == \"a  b\n\nc\""
	llm-prep clean --skip blank-lines,trim s.jsonl | jq -e ".text == \"a b \n\n\n\nc\""
	llm-prep clean --skip newlines --skip controls s.jsonl | jq -e ".text == \"a b \r\n\nc\""
	run llm-prep clean --skip nonsense s.jsonl; expect_status 2; expect_err "blank-lines"
'
t 'clean --report counts records changed by each step, and read = written + dropped' '
	llm-prep clean --report rep.json "$messy" > /dev/null
	jq -e ".read == 3 and .written == 3 and .dropped == 0 and .changed == 1" rep.json
	jq -e ".changed_by_step | .invisible == 1 and .normalize == 1 and .newlines == 1 and .controls == 1 and .spaces == 1 and .collapse == 1 and .trim == 1 and .[\"blank-lines\"] == 1" rep.json
	jq -e ".changed_by_step | has(\"lowercase\") | not" rep.json
'
t 'clean --drop-empty drops records left empty and counts them' '
	printf "{\"text\":\" \\\\u200b \"}\n{\"text\":\"x\"}\n" > e.jsonl
	llm-prep clean --drop-empty --report rep.json e.jsonl > out
	[ "$(lines out)" = 1 ]
	jq -e ".read == 2 and .written == 1 and .dropped == 1 and .dropped_empty == 1" rep.json
'
t 'clean --text-field cleans another field' '
	printf "{\"text\":\"a  b\",\"body\":\"c  d\"}\n" | llm-prep clean --text-field body > out
	jq -e ".text == \"a  b\" and .body == \"c d\"" out
'
t 'clean output is a properly escaped JSON string' '
	printf "{\"text\":\"q\\\\\"uote\\\\\\\\ \\\\t tab  x\"}\n" | llm-prep clean | jq -e ".text == \"q\\\"uote\\\\ tab x\""
'
t 'a record without the text field is bad: exit 1, or skipped, or kept with an error' '
	printf "{\"text\":\"ok\"}\n{\"id\":2}\n{\"text\":3}\n" > m.jsonl
	run llm-prep clean m.jsonl; expect_status 1; expect_err "m.jsonl:2: missing field \"text\""
	run llm-prep clean --on-error skip m.jsonl; expect_status 0; [ "$(lines out)" = 1 ]
	expect_err "m.jsonl:3: field \"text\" is a number, not a string"
	run llm-prep clean --on-error keep m.jsonl; expect_status 0; [ "$(lines out)" = 3 ]
	sed -n 2p out | jq -e ".error.code == \"missing_field\""
'
t 'invalid JSON is reported with file and line' '
	run llm-prep clean "$data/bad-json.jsonl"; expect_status 1; expect_err "bad-json.jsonl:"
	no_sanitizer_report
'
t 'clean reads stdin in a pipe and a missing file fails with 3' '
	sed -n 2p "$messy" > two.jsonl; cat two.jsonl | llm-prep clean | cmp - two.jsonl
	run llm-prep clean nowhere.jsonl; expect_status 3
	run llm-prep clean --form nfd "$messy"; expect_status 2
'
done_testing
