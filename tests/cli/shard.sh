#!/bin/sh
# llm-prep shard: by count, by size, round-robin and by hash; all or nothing.
. "$top_srcdir/tests/cli/lib.sh"

mk() { seq 1 "$1" | sed "s/.*/{\"id\":\"r&\",\"n\":&}/" > n.jsonl; }

t 'shard --records N makes files of N records and keeps every record' '
	mk 25; run llm-prep shard --out "p-{n}.jsonl" --records 10 n.jsonl; expect_status 0
	[ "$(lines p-00000.jsonl)" = 10 ] && [ "$(lines p-00002.jsonl)" = 5 ]
	cat p-0000*.jsonl | cmp - n.jsonl
'
t 'shard --shards K round-robin deals records in turn' '
	mk 10; llm-prep shard -o "s{n}.jsonl" -k 3 n.jsonl
	[ "$(lines s00000.jsonl)" = 4 ] && [ "$(lines s00001.jsonl)" = 3 ] && [ "$(lines s00002.jsonl)" = 3 ]
	head -n 1 s00001.jsonl | grep -q "\"r2\""
'
t 'shard --bytes SIZE keeps each file at or under SIZE and never splits a record' '
	mk 100; llm-prep shard -o "b{n}.jsonl" --bytes 200 n.jsonl
	for f in b*.jsonl; do [ $(wc -c < $f) -le 200 ]; done
	cat b*.jsonl | cmp - n.jsonl
'
t 'shard --by hash puts equal keys in the same file, reproducibly' '
	mk 50; cat n.jsonl n.jsonl > twice.jsonl
	llm-prep shard -o "h{n}.jsonl" -k 4 --by hash --key id twice.jsonl
	for f in h*.jsonl; do jq -r .id $f | sort | uniq -c | awk "\$1 != 2 { exit 1 }"; done
	[ "$(cat h*.jsonl | wc -l)" = 100 ]
	mkdir again; llm-prep shard -o "again/h{n}.jsonl" -k 4 --by hash --key id twice.jsonl
	for f in h*.jsonl; do cmp $f again/$f; done
'
t 'the hash shard is sha256 of the value, first 8 bytes, modulo K' '
	printf "{\"id\":\"hello\"}\n" > one.jsonl
	llm-prep shard -o "x{n}.jsonl" -k 7 --by hash --key id one.jsonl
	want=$(printf hello | sha256sum | cut -c1-16 | tr a-f A-F)
	want=$(echo "ibase=16; $want % 7" | BC_LINE_LENGTH=0 bc)
	[ -s "x0000$want.jsonl" ]
'
t 'a record without the hash key is bad (and kept out under skip)' '
	printf "{\"id\":\"a\"}\n{\"other\":1}\n" > m.jsonl
	run llm-prep shard -o "y{n}.jsonl" -k 2 --by hash --key id m.jsonl; expect_status 1
	expect_err "m.jsonl:2: missing field \"id\" for --by hash"; ! ls y*.jsonl 2>/dev/null
	run llm-prep shard -o "y{n}.jsonl" -k 2 --by hash --key id --on-error skip m.jsonl
	expect_status 0; [ "$(cat y*.jsonl | wc -l)" = 1 ]
'
t 'on a bad record no shard file is left behind, not even a temporary' '
	cat "$data/good.jsonl" "$data/bad-json.jsonl" > mix.jsonl
	run llm-prep shard -o "z{n}.jsonl" -n 2 mix.jsonl; expect_status 1
	[ -z "$(ls -A)" ] || [ "$(ls -A | grep -v -e ^mix.jsonl -e ^out -e ^err)" = "" ]
'
t 'the pattern must contain {n}, and one mode is required' '
	run llm-prep shard -o "plain.jsonl" -k 2 "$data/good.jsonl"; expect_status 2
	run llm-prep shard -o "p{n}" "$data/good.jsonl"; expect_status 2
	run llm-prep shard -o "p{n}" -k 2 -n 3 "$data/good.jsonl"; expect_status 2
	run llm-prep shard -k 2 "$data/good.jsonl"; expect_status 2; expect_err "--out"
'
t 'a missing output directory fails with 3' '
	run llm-prep shard -o "nodir/p{n}.jsonl" -k 2 "$data/good.jsonl"; expect_status 3
	expect_err "nodir/p00000.jsonl: cannot create"
'
t '--report lists each shard with its counts' '
	mk 10; llm-prep shard -o "r{n}.jsonl" -k 2 --report rep.json n.jsonl
	jq -e ".records == 10 and (.shards | length) == 2 and .shards[0].records == 5" rep.json
'
t 'empty input with --shards K still makes K (empty) files' '
	llm-prep shard -o "e{n}.jsonl" -k 2 "$data/empty.jsonl"; [ -f e00000.jsonl ] && [ -f e00001.jsonl ]
'
done_testing
