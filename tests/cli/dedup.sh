#!/bin/sh
# llm-prep dedup: exact and MinHash-LSH clusters, --drop and --tag, the staged pipeline joined by
# sort, spills under a tiny --memory, --resume, reports, bad input and usage errors.
. "$top_srcdir/tests/cli/lib.sh"

# near.jsonl (tests/data/dedup): r1, r3 (last word changed: word-5-gram Jaccard 0.965) and r4
# (r1 with upper case and punctuation: equal after normalization) are one cluster; r2 and r6 (two
# words changed near the end: Jaccard 0.898) another; r5 and r7 (equal texts) a third; r9 and
# r10 ("hello world", "Hello,  World!") a fourth.  r1, r2, r5 and line 8 (no id) share no 5-gram.
# r11 and r12 are empty texts: equal for exact dedup, never clustered by MinHash.
near=$data/dedup/near.jsonl

# ids and cluster ids of the output, one "id cluster_id duplicate" line per record
summary() {
	jq -r '[(.id // "-"), (.cluster_id | tostring), (.duplicate // false | tostring)] | join(" ")' "$1"
}

# A corpus of N generated documents of 40 random words, every fifth one a copy of the one before
# with its last word changed (word-5-gram Jaccard 35/37).
corpus() {
	awk -v n="$1" '
	function word(  w, x) {   # letters only: normalization turns digits into 0
		w = "w"; x = int(rand() * 200000)
		while (x > 0) { w = w substr("abcdefghijklmnopqrstuvwxyz", x % 26 + 1, 1); x = int(x / 26) }
		return w
	}
	BEGIN {
		srand(7)
		for (i = 1; i <= n; i++) {
			if (i % 5 == 0) { sub(/ [a-z0-9]+$/, " changed", t) }
			else { t = ""; for (k = 0; k < 40; k++) t = t (k ? " " : "") word() }
			printf "{\"id\":\"g%d\",\"text\":\"%s\"}\n", i, t
		}
	}'
}

t 'dedup drops near duplicates and keeps the first record of each cluster' '
	run llm-prep dedup "$near"; expect_status 0
	summary out > got
	printf "%s\n" "r1 r1 false" "r2 r2 false" "r5 r5 false" "- \"$near:8\" false" \
		"r9 r9 false" "r11 r11 false" "r12 r12 false" | sed "s/\"\\(.*\\)\"/\\1/" > want
	diff want got
'
t 'dedup --tag keeps every record, names its cluster and marks the later members' '
	run llm-prep dedup --tag "$near"; expect_status 0
	summary out > got
	printf "%s\n" "r1 r1 false" "r2 r2 false" "r3 r1 true" "r4 r1 true" "r5 r5 false" \
		"r6 r2 true" "r7 r5 true" "- $near:8 false" "r9 r9 false" "r10 r9 true" \
		"r11 r11 false" "r12 r12 false" > want
	diff want got
'
t 'every other field passes through byte for byte; cluster_id and duplicate are appended' '
	llm-prep dedup --tag "$near" > out
	sed -e "s/,\"cluster_id\":[^{}]*}\$/}/" out | cmp - "$near"
	grep -c "\"cluster_id\":\"r1\",\"duplicate\":true}\$" out | grep -qx 2
'
t 'exact dedup keeps the first of equal normalized texts only' '
	llm-prep dedup --method exact --tag "$near" > out
	summary out | awk "\$3 == \"true\" { print \$1, \$2 }" > got
	printf "%s\n" "r4 r1" "r7 r5" "r10 r9" "r12 r11" > want
	diff want got
'
t 'exact dedup with --no-normalize compares the texts as they are' '
	llm-prep dedup --method exact --no-normalize --tag "$near" > out
	summary out | awk "\$3 == \"true\" { print \$1, \$2 }" > got
	printf "%s\n" "r7 r5" "r12 r11" > want
	diff want got
'
t 'exact dedup with --fields compares those fields instead of the text' '
	llm-prep dedup --method exact --fields src "$near" > out
	jq -r .src out | tr "\n" " " > got
	[ "$(cat got)" = "web books forum news chat " ]
	run llm-prep dedup --method exact --fields src,nope "$near"; expect_status 1
	expect_err "near.jsonl:1: missing field \"nope\""
'
t 'the staged pipeline joined by sort gives the one-shot result' '
	llm-prep dedup "$near" > oneshot
	llm-prep dedup --stage signatures "$near" > bands.txt
	LC_ALL=C sort bands.txt | llm-prep dedup --stage clusters > map.txt
	llm-prep dedup --stage filter --clusters map.txt "$near" > staged
	cmp oneshot staged
	head -n 1 bands.txt | grep -Eqx "[0-9a-f]{4}	[0-9a-f]{24}	[0-9a-f]{16}"
	grep -qx "0000000000000002	0000000000000000" map.txt   # r3 (ordinal 2) joins r1 (0)
	[ "$(lines map.txt)" = 9 ]                                 # 4 clusters, 9 records
'
t 'signatures run sharded on several machines merge into the same clusters' '
	corpus 400 > c.jsonl
	llm-prep dedup --tag c.jsonl > oneshot
	for k in 1 2 3; do llm-prep dedup --stage signatures --shard $k/3 c.jsonl | LC_ALL=C sort > s$k; done
	LC_ALL=C sort -m s1 s2 s3 | llm-prep dedup --stage clusters > map.txt
	llm-prep dedup --tag --stage filter --clusters map.txt c.jsonl > staged
	cmp oneshot staged
	[ "$(grep -c "\"duplicate\":true" staged)" = 80 ]
'
t 'the clusters stage sorts unsorted band lines itself' '
	llm-prep dedup --stage signatures "$near" | sort -r > rev.txt
	llm-prep dedup --stage clusters rev.txt > a
	llm-prep dedup --stage signatures "$near" | llm-prep dedup --stage clusters > b
	cmp a b
'
t 'a tiny --memory spills sorted runs to --tmp-dir and gives the same result' '
	corpus 600 > c.jsonl
	mkdir tmp
	llm-prep dedup --tag c.jsonl > big
	llm-prep dedup --tag --memory 1K --tmp-dir tmp --report rep.json c.jsonl > small
	cmp big small
	jq -e ".spill_runs > 1 and .band_records == 600 * .bands" rep.json
	[ -z "$(ls -A tmp)" ]   # runs are unnamed files: nothing is left behind
	[ "$(grep -c "\"duplicate\":true" small)" = 120 ]
'
t 'the SIMD and the portable permutation code compute the same signatures' '
	corpus 200 > c.jsonl
	llm-prep dedup --stage signatures --num-perm 100 c.jsonl > a
	LLMOPS_NO_SIMD=1 llm-prep dedup --stage signatures --num-perm 100 c.jsonl > b
	cmp a b
'
t '--report counts read = written + dropped, clusters and the largest ones' '
	llm-prep dedup --report rep.json "$near" > out
	jq -e ".read == 12 and .written == 7 and .dropped == 5 and .read == .written + .dropped" rep.json
	jq -e ".clusters == 4 and .duplicates == 5 and .largest_clusters[0] == {\"cluster_id\":\"r1\",\"size\":3}" rep.json
	jq -e ".method == \"minhash\" and .num_perm == 128 and .bands == 14 and .rows == 9" rep.json
	jq -e ".empty_texts == 2 and .resumed == false" rep.json
'
t 'bands and rows follow --threshold and --num-perm as text-dedup chooses them' '
	llm-prep dedup --num-perm 256 --threshold 0.7 --report rep.json "$near" > /dev/null
	jq -e ".bands == 25 and .rows == 10" rep.json
	llm-prep dedup --bands 16 --rows 8 --report rep.json "$near" > /dev/null
	jq -e ".bands == 16 and .rows == 8" rep.json
	llm-prep dedup --bands 32 --report rep.json "$near" > /dev/null
	jq -e ".bands == 32 and .rows == 4" rep.json
'
t 'standard input works like a file (records without an id are named <stdin>:LINE)' '
	llm-prep dedup --tag < "$near" > out
	llm-prep dedup --tag "$near" | sed "s|$near:|<stdin>:|" | cmp - out
	grep -q "\"cluster_id\":\"<stdin>:8\"" out
'
t 'the same input and --seed give the same output; another seed still finds the clusters' '
	llm-prep dedup --seed 5 --tag "$near" > a; llm-prep dedup --seed 5 --tag "$near" > b; cmp a b
	llm-prep dedup --seed 99 --tag "$near" > c
	[ "$(summary a)" = "$(summary c)" ]
'
t '--resume reuses the cluster map of a finished run with the same input and options' '
	corpus 100 > c.jsonl; mkdir tmp
	llm-prep dedup --resume --tmp-dir tmp --report r1.json c.jsonl > a
	ls tmp/llmops-dedup-*.map >/dev/null
	llm-prep dedup --resume --tmp-dir tmp --report r2.json c.jsonl > b
	cmp a b
	jq -e ".resumed == false" r1.json; jq -e ".resumed == true" r2.json
	llm-prep dedup --resume --tmp-dir tmp --threshold 0.5 --report r3.json c.jsonl > /dev/null
	jq -e ".resumed == false" r3.json
'
t 'renamed fields: --text-field, --id-field, --cluster-field, --duplicate-field' '
	jq -c "{key: .id, body: .text}" "$near" > renamed.jsonl
	llm-prep dedup --tag --text-field body --id-field key --cluster-field group \
		--duplicate-field dup renamed.jsonl > out
	jq -r "select(.dup) | .key + \" \" + .group" out | tr "\n" " " > got
	[ "$(cat got)" = "r3 r1 r4 r1 r6 r2 r7 r5 r10 r9 " ]
'
t 'a bad record stops the run with FILE:LINE and status 1; --on-error skip drops it' '
	{ head -n 3 "$near"; echo "{not json"; tail -n 9 "$near"; } > bad.jsonl
	run llm-prep dedup bad.jsonl; expect_status 1; expect_err "bad.jsonl:4:"; expect_no_out
	run llm-prep dedup --on-error skip --report rep.json bad.jsonl; expect_status 0
	[ "$(lines out)" = 7 ]
	jq -e ".read == 13 and .bad_dropped == 1 and .read == .written + .dropped" rep.json
	run llm-prep dedup --on-error keep --tag bad.jsonl; expect_status 0
	[ "$(lines out)" = 13 ]; sed -n 4p out | grep -q "\"error\""
'
t 'a record without the text, or with a non-string text, is a bad record' '
	printf "%s\n" "{\"id\":\"a\",\"text\":\"x y\"}" "{\"id\":\"b\"}" "{\"id\":\"c\",\"text\":3}" > m.jsonl
	run llm-prep dedup m.jsonl; expect_status 1; expect_err "m.jsonl:2: missing field \"text\""
	run llm-prep dedup --on-error skip m.jsonl; expect_status 0; [ "$(lines out)" = 1 ]
	expect_err "m.jsonl:3: field \"text\" is a number, not a string"
'
t 'malformed band lines and cluster maps are named by FILE:LINE with status 1' '
	printf "001f\tnothex\t0000000000000001\n" > bad.txt
	run llm-prep dedup --stage clusters bad.txt; expect_status 1
	expect_err "bad.txt:1: not a band record"
	printf "%s\n" "0000000000000003	0000000000000001" "0000000000000002	0000000000000001" > map.txt
	run llm-prep dedup --stage filter --clusters map.txt "$near"; expect_status 1
	expect_err "map.txt:2: the cluster map is not sorted"
'
t 'usage errors exit 2' '
	run llm-prep dedup --tag --drop "$near"; expect_status 2; expect_err "not both"
	run llm-prep dedup --fields src "$near"; expect_status 2; expect_err "--method exact"
	run llm-prep dedup --stage filter "$near"; expect_status 2; expect_err "--clusters"
	run llm-prep dedup --bands 20 --rows 10 "$near"; expect_status 2
	run llm-prep dedup --num-perm 0 "$near"; expect_status 2
	run llm-prep dedup --threshold 1.5 "$near"; expect_status 2
	run llm-prep dedup --resume < "$near"; expect_status 2; expect_err "--resume"
'
t 'missing input, missing cluster map and an unwritable --tmp-dir exit 3' '
	run llm-prep dedup nope.jsonl; expect_status 3; expect_err "nope.jsonl"
	run llm-prep dedup --stage filter --clusters nope.txt "$near"; expect_status 3
	run llm-prep dedup --tmp-dir /nonexistent/dir < "$near"; expect_status 3
	expect_err "/nonexistent/dir"
'
t 'runs clean under the sanitizers' '
	run llm-prep dedup --tag --memory 1K "$near"; expect_status 0; no_sanitizer_report
'
done_testing
