#!/bin/sh
# llm-prep split: assignment by SHA-256 of the key, order independence, ratios, --out.
. "$top_srcdir/tests/cli/lib.sh"

mk() { seq 1 "$1" | awk '{ printf "{\"id\":\"doc-%d\",\"lang\":\"%s\",\"n\":%d}\n", $1, ($1 % 10 == 0) ? "fr" : "en", $1 }' > n.jsonl; }

# The split each id should get, computed with Python's hashlib: the reference.
expected() {
	python3 -c "
import hashlib, json, sys
salt = sys.argv[1]
cum = [0.8, 0.9, 1.0]; names = [\"train\", \"val\", \"test\"]
for line in open(sys.argv[2]):
    k = json.loads(line)[\"id\"]
    d = hashlib.sha256(((salt + \":\") if salt else \"\").encode() + k.encode()).digest()
    u = (int.from_bytes(d[:8], \"big\") >> 11) / 2**53
    print(k, names[next(i for i, c in enumerate(cum) if u < c or i == 2)])
" "$1" "$2"
}

t 'each record gets the split that SHA-256 of its id gives' '
	mk 500; run llm-prep split n.jsonl; expect_status 0
	jq -r "\"\(.id) \(.split)\"" out > got.txt; expected "" n.jsonl > want.txt; cmp got.txt want.txt
	[ "$(jq -c "del(.split)" out | md5sum)" = "$(jq -c . n.jsonl | md5sum)" ]
'
t 'the same ids get the same splits whatever the input order' '
	mk 2000; llm-prep split -q n.jsonl | jq -r "\"\(.id) \(.split)\"" | sort > a.txt
	python3 -c "import random,sys; l=open(\"n.jsonl\").readlines(); random.Random(7).shuffle(l); sys.stdout.writelines(l)" > shuf.jsonl
	! cmp -s n.jsonl shuf.jsonl
	llm-prep split -q shuf.jsonl | jq -r "\"\(.id) \(.split)\"" | sort > b.txt
	cmp a.txt b.txt
'
t 'on 10000 records each split is within four standard deviations of its ratio' '
	mk 10000; llm-prep split -q --report rep.json n.jsonl > /dev/null
	jq -e ".splits.train > 7840 and .splits.train < 8160 and .splits.val > 880 and .splits.val < 1120 and .splits.test > 880 and .splits.test < 1120" rep.json
	jq -e ".read == 10000 and .written == 10000 and .dropped == 0" rep.json
'
t '--seed salts the hash: another split, as reproducible and as checkable' '
	mk 300; llm-prep split -q --seed 7 n.jsonl | jq -r "\"\(.id) \(.split)\"" > got.txt
	expected 7 n.jsonl > want.txt; cmp got.txt want.txt
	llm-prep split -q n.jsonl | jq -r "\"\(.id) \(.split)\"" > plain.txt; ! cmp -s got.txt plain.txt
'
t '--ratios and --names make other splits; --split-field renames the field' '
	mk 1000; llm-prep split -q -r 0.5,0.5 -n a,b --split-field part n.jsonl > out
	[ "$(jq -r .part out | sort -u | tr "\n" " ")" = "a b " ]
	! grep -q "\"split\"" out
'
t 'bad ratios or names are usage errors' '
	mk 3
	run llm-prep split -r 0.8,0.1 n.jsonl; expect_status 2; expect_err "add up to 1"
	run llm-prep split -r 0.5,0.5 -n a,b,c n.jsonl; expect_status 2
	run llm-prep split -r 0.5,0.5 -n a,a n.jsonl; expect_status 2
	run llm-prep split -r 0.5,0.5 -n a,b/c n.jsonl; expect_status 2
	run llm-prep split -r x n.jsonl; expect_status 2
'
t 'a record without the key is bad: status 1 with FILE:LINE, dropped under skip' '
	printf "%s\n" "{\"id\":\"a\"}" "{\"name\":\"b\"}" > m.jsonl
	run llm-prep split m.jsonl; expect_status 1; expect_err "m.jsonl:2: missing field \"id\" (the --key)"
	run llm-prep split --on-error skip --report rep.json m.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]; jq -e ".read == 2 and .written == 1 and .dropped == 1" rep.json
'
t '--key names another field; a number key is hashed as its JSON text' '
	printf "%s\n" "{\"u\":17}" > k.jsonl
	llm-prep split -q --key u k.jsonl > out
	want=$(python3 -c "
import hashlib; d = hashlib.sha256(b\"17\").digest(); u = (int.from_bytes(d[:8], \"big\") >> 11) / 2**53
print(\"train\" if u < 0.8 else \"val\" if u < 0.9 else \"test\")")
	[ "$(jq -r .split out)" = "$want" ]
'
t '--out DIR writes one file per split, records unchanged, and creates DIR' '
	mk 1000; run llm-prep split --out data n.jsonl; expect_status 0; expect_no_out
	[ -f data/train.jsonl ] && [ -f data/val.jsonl ] && [ -f data/test.jsonl ]
	cat data/*.jsonl | sort | cmp - "$(sort n.jsonl > s.jsonl; echo s.jsonl)"
	llm-prep split -q n.jsonl | jq -c "select(.split == \"val\") | del(.split)" > val.jsonl
	jq -c . data/val.jsonl | cmp - val.jsonl
'
t '--out is all or nothing: a bad record leaves no file, no temporary, no new directory' '
	mk 50; { cat n.jsonl; echo "{\"no_id\":1}"; cat n.jsonl; } > bad.jsonl
	run llm-prep split --out data bad.jsonl; expect_status 1; [ ! -e data ]
	mkdir old; run llm-prep split --out old bad.jsonl; expect_status 1
	[ -z "$(ls -A old)" ]
'
t '--out into a path that is a file fails with 3' '
	mk 3; : > afile; run llm-prep split --out afile n.jsonl; expect_status 3
'
t '--stratify reports the counts per split for each value' '
	mk 2000; llm-prep split -q --stratify lang --report rep.json n.jsonl > /dev/null
	jq -e ".strata.en.train + .strata.en.val + .strata.en.test == 1800 and .strata.fr.train + .strata.fr.val + .strata.fr.test == 200" rep.json
	jq -e ".strata.fr.train > 130 and .strata.fr.train < 190" rep.json
	printf "%s\n" "{\"id\":\"x\"}" > nolang.jsonl
	run llm-prep split --stratify lang nolang.jsonl; expect_status 1; expect_err "missing field \"lang\""
'
t 'reads stdin and ends quietly on a closed pipe' '
	mk 5000; llm-prep split < n.jsonl 2>err | head -n 1 > one.jsonl; no_sanitizer_report
	jq -e ".split" one.jsonl
'
done_testing
