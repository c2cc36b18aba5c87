#!/bin/sh
# Reading records: files, stdin, gzip, bad input of every kind, and --on-error.
. "$top_srcdir/tests/cli/lib.sh"

t 'several files and - for stdin are read in order' '
	printf "{\"n\":1}\n" > a.jsonl; printf "{\"n\":3}\n" > c.jsonl
	printf "{\"n\":2}\n" | llm-prep head -n 9 a.jsonl - c.jsonl > out
	printf "{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n" > want; cmp out want
'
t 'no operand reads stdin' '
	llm-prep head -n 2 < "$data/good.jsonl" > out; [ "$(lines out)" = 2 ]
'
t 'gzip input is read transparently, from a file and from stdin' '
	gzip -c "$data/good.jsonl" > g.jsonl.gz
	llm-prep head -n 100 g.jsonl.gz > a; cmp a "$data/good.jsonl"
	llm-prep head -n 100 < g.jsonl.gz > b; cmp b "$data/good.jsonl"
'
t 'concatenated gzip members are all read' '
	printf "{\"n\":1}\n" | gzip > two.gz; printf "{\"n\":2}\n" | gzip >> two.gz
	[ "$(llm-prep head -n 9 two.gz | wc -l)" = 2 ]
'
t 'a corrupt gzip file fails with 3 naming the file' '
	gzip -c "$data/good.jsonl" > g.gz; head -c 40 g.gz > cut.gz
	run llm-prep head cut.gz; expect_status 3; expect_err "llm-prep: cut.gz:"
	expect_err "truncated gzip data"; no_sanitizer_report
'
t 'garbage after gzip magic is corrupt gzip, exit 3' '
	printf "\037\213\010\000garbage-garbage-garbage" > bad.gz
	run llm-prep head bad.gz; expect_status 3; expect_err "bad.gz:"; no_sanitizer_report
'
t 'records pass through byte for byte: spacing, escapes and number forms kept' '
	llm-prep head -n 100 "$data/good.jsonl" > out; cmp out "$data/good.jsonl"
'
t 'records crossing read-buffer boundaries come through whole, from files and pipes' '
	awk "BEGIN { for (i = 0; i < 40000; i++) { s = sprintf(\"%0*d\", i % 397, 0); printf \"{\\\"i\\\":%d,\\\"s\\\":\\\"%s\\\"}\\n\", i, s } }" > many.jsonl
	[ "$(wc -c < many.jsonl)" -gt 5000000 ]
	llm-prep head -n 1000000 many.jsonl | cmp - many.jsonl
	cat many.jsonl | llm-prep head -n 1000000 | cmp - many.jsonl
	gzip -c many.jsonl | llm-prep head -n 1000000 | cmp - many.jsonl
'
t 'a missing file fails with 3 before any output' '
	run llm-prep head "$data/good.jsonl" nope.jsonl; expect_status 3
	expect_err "llm-prep: nope.jsonl: cannot open: No such file or directory"; expect_no_out
'
t 'a directory as input fails with 3 before any output' '
	mkdir d; run llm-prep head d; expect_status 3
	expect_err "llm-prep: d: is a directory"; expect_no_out
'
t 'an empty file gives no records and exit 0' '
	run llm-prep head "$data/empty.jsonl"; expect_status 0; expect_no_out
	run llm-prep validate "$data/empty.jsonl"; expect_status 0
'
t 'invalid JSON fails with 1 naming file and line' '
	run llm-prep head -n 9 "$data/bad-json.jsonl"; expect_status 1
	expect_err "llm-prep: $data/bad-json.jsonl:2: unexpected end of input at byte 27"
	[ "$(lines out)" = 1 ]
'
t 'invalid UTF-8 fails with 1 naming file, line and byte' '
	run llm-prep head -n 9 "$data/bad-utf8.jsonl"; expect_status 1
	expect_err "bad-utf8.jsonl:2: invalid UTF-8 at byte 24"
'
t 'a truncated last line is reported as such' '
	run llm-prep head -n 9 "$data/truncated.jsonl"; expect_status 1
	expect_err "truncated.jsonl:2: unterminated string at byte"
	expect_err "the file ends in the middle of this record"
'
t 'a last line without a newline is still a record' '
	printf "{\"a\":1}\n{\"a\":2}" > nonl.jsonl
	run llm-prep head nonl.jsonl; expect_status 0; [ "$(lines out)" = 2 ]
'
t 'a BOM, CRLF line ends and blank lines are tolerated' '
	run llm-prep head "$data/bom-crlf.jsonl"; expect_status 0
	printf "{\"id\":\"e1\",\"text\":\"bom\"}\n{\"id\":\"e2\",\"text\":\"crlf\"}\n" > want
	expect_out_file want
'
t 'a record that is not an object is bad' '
	printf "[1,2]\n" > arr.jsonl; run llm-prep head arr.jsonl; expect_status 1
	expect_err "arr.jsonl:1: a record must be a JSON object"
'
t 'trailing garbage after the object is bad' '
	printf "{\"a\":1} x\n" > g.jsonl; run llm-prep head g.jsonl; expect_status 1
	expect_err "g.jsonl:1: trailing characters after the object"
'
t 'lone surrogate escapes are bad' '
	printf "{\"a\":\"\\\\ud800\"}\n" > s.jsonl; run llm-prep head s.jsonl; expect_status 1
	expect_err "s.jsonl:1: lone high surrogate escape"
'
t 'deep nesting is refused, not a crash' '
	{ printf "{\"a\":"; i=0; while [ $i -lt 2000 ]; do printf "["; i=$((i+1)); done; printf "\n"; } > deep.jsonl
	run llm-prep head deep.jsonl; expect_status 1; expect_err "nesting too deep"; no_sanitizer_report
'
t 'a 50 MB line is read whole' '
	{ printf "{\"text\":\""; head -c 50000000 /dev/zero | tr "\0" a; printf "\"}\n{\"text\":\"b\"}\n"; } > big.jsonl
	run llm-prep head -n 5 big.jsonl; expect_status 0; cmp out big.jsonl
'
t 'a line over --max-record-bytes is bad, and reading goes on after it' '
	{ printf "{\"text\":\""; head -c 3000000 /dev/zero | tr "\0" a; printf "\"}\n{\"text\":\"b\"}\n"; } > big.jsonl
	run llm-prep head --max-record-bytes 1M big.jsonl; expect_status 1
	expect_err "big.jsonl:1: record of 3000011 bytes is over --max-record-bytes (1048576)"
	run llm-prep head --max-record-bytes 1M --on-error skip big.jsonl; expect_status 0
	expect_out "{\"text\":\"b\"}"
'
t '--on-error=skip drops bad records, reports each, and goes on' '
	run llm-prep head -n 9 --on-error=skip "$data/bad-json.jsonl"; expect_status 0
	[ "$(lines out)" = 2 ]; expect_err "bad-json.jsonl:2:"
'
t '--on-error=skip with --quiet reports nothing' '
	run llm-prep head -n 9 --on-error=skip -q "$data/bad-json.jsonl"; expect_status 0
	[ ! -s err ]
'
t '--on-error=keep passes bad lines on as error records with the raw text' '
	run llm-prep head -n 9 --on-error=keep "$data/bad-json.jsonl"; expect_status 0
	[ "$(lines out)" = 3 ]
	sed -n 2p out | jq -e ".error.code == \"invalid_json\" and .source.line == 2 and .raw == \"{\\\"id\\\":\\\"b2\\\",\\\"text\\\":\\\"broken\\\"\""
'
t '--on-error=keep keeps invalid UTF-8 as base64 so nothing is lost' '
	run llm-prep head -n 9 --on-error=keep "$data/bad-utf8.jsonl"; expect_status 0
	sed -n 2p out | jq -r .raw_base64 | base64 -d > raw
	sed -n 2p "$data/bad-utf8.jsonl" | tr -d "\n" > want; cmp raw want
'
t 'counts add up: records in = out + dropped' '
	cat "$data/good.jsonl" "$data/bad-json.jsonl" "$data/bad-utf8.jsonl" > mix.jsonl
	llm-prep head -n 100 --on-error=skip -q mix.jsonl > out
	[ "$(lines out)" = $(( $(lines mix.jsonl) - 2 )) ]
'
t '--shard K/N slices the input; the N slices together are the whole, in order' '
	seq 1 100 | sed "s/.*/{\"n\":&}/" > n.jsonl
	for k in 1 2 3; do llm-prep head -n 1000 --shard $k/3 n.jsonl > s$k; done
	[ "$(lines s1)" = 34 ] && [ "$(lines s2)" = 33 ] && [ "$(lines s3)" = 33 ]
	head -n 1 s2 | grep -qx "{\"n\":2}"
	cat s1 s2 s3 | jq .n | sort -n > all; seq 1 100 | cmp - all
'
t '--shard keeps the line numbers of the file in messages' '
	printf "{\"a\":1}\n{\"a\":2}\n{bad\n{\"a\":4}\n" > b.jsonl
	run llm-prep head --shard 1/2 b.jsonl; expect_status 1; expect_err "b.jsonl:3:"
	run llm-prep head --shard 2/2 b.jsonl; expect_status 0
'
t 'a malformed --shard is a usage error' '
	run llm-prep head --shard 3/2 "$data/good.jsonl"; expect_status 2; expect_err "--shard: expected K/N"
	run llm-prep head --shard 0/2 "$data/good.jsonl"; expect_status 2
'
done_testing
