#!/bin/sh
# llm-prep head: the first N records, unchanged.
. "$top_srcdir/tests/cli/lib.sh"

t 'head prints 10 records by default' '
	seq 1 25 | sed "s/.*/{\"n\":&}/" > n.jsonl
	run llm-prep head n.jsonl; expect_status 0; [ "$(lines out)" = 10 ]
	head -n 10 n.jsonl | cmp - out
'
t 'head -n N prints N, -n 0 prints none' '
	seq 1 25 | sed "s/.*/{\"n\":&}/" > n.jsonl
	llm-prep head -n 3 n.jsonl > a; [ "$(lines a)" = 3 ]
	llm-prep head -n 0 n.jsonl > b; [ ! -s b ]
'
t 'head counts records across files' '
	printf "{\"a\":1}\n{\"a\":2}\n" > x.jsonl
	llm-prep head -n 3 x.jsonl x.jsonl > out; [ "$(lines out)" = 3 ]
'
t 'head stops reading once it has enough (bad records later are not seen)' '
	printf "{\"a\":1}\nnot json\n" > x.jsonl
	run llm-prep head -n 1 x.jsonl; expect_status 0
'
t 'a negative count is a usage error' '
	run llm-prep head -n -1 "$data/good.jsonl"; expect_status 2
'
done_testing
