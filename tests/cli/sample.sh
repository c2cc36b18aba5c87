#!/bin/sh
# llm-prep sample: seeded reservoir and Bernoulli samples, in input order.
. "$top_srcdir/tests/cli/lib.sh"

t 'sample -n N gives N distinct records in input order' '
	seq 1 1000 | sed "s/.*/{\"n\":&}/" > n.jsonl
	llm-prep sample -n 50 n.jsonl > out; [ "$(lines out)" = 50 ]
	[ "$(sort -u out | wc -l)" = 50 ]
	jq .n out > nums; sort -n nums | cmp - nums
'
t 'the same seed gives the same sample; another seed another' '
	seq 1 1000 | sed "s/.*/{\"n\":&}/" > n.jsonl
	llm-prep sample -n 20 --seed 7 n.jsonl > a; llm-prep sample -n 20 --seed 7 n.jsonl > b
	llm-prep sample -n 20 --seed 8 n.jsonl > c; cmp a b; ! cmp -s a c
'
t 'asking for more records than there are gives them all' '
	llm-prep sample -n 100 "$data/good.jsonl" > out; cmp out "$data/good.jsonl"
'
t 'the reservoir is uniform: each of 10 records is chosen about equally often' '
	seq 1 10 | sed "s/.*/{\"n\":&}/" > n.jsonl
	s=0; : > all
	while [ $s -lt 400 ]; do llm-prep sample -n 1 -s $s n.jsonl >> all; s=$((s+1)); done
	# 400 draws over 10 values: expect 40 each; allow 15..70 (well beyond 4 sigma).
	jq .n all | sort | uniq -c | awk "{ if (\$1 < 15 || \$1 > 70) bad=1; n++ } END { exit bad || n != 10 }"
'
t '--fraction keeps about that share of records' '
	seq 1 10000 | sed "s/.*/{\"n\":&}/" > n.jsonl
	llm-prep sample --fraction 0.1 n.jsonl > out
	c=$(lines out); [ "$c" -gt 850 ] && [ "$c" -lt 1150 ]
'
t '--records and --fraction together is a usage error' '
	run llm-prep sample -n 3 --fraction 0.5 "$data/good.jsonl"; expect_status 2
'
t 'a fraction outside 0..1 is a usage error' '
	run llm-prep sample --fraction 1.5 "$data/good.jsonl"; expect_status 2
	expect_err "out of range"
'
done_testing
