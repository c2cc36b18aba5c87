#!/bin/sh
# llm-prep stats: the summary as a table, JSON and HTML; tokens, flags, clusters and splits.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_TOKENIZER_DIR=$top_srcdir/data/tokenizers
export LLMOPS_TOKENIZER_DIR

# A real pipeline over the fixtures: PII and quality flags, near-duplicate clusters, splits.
prepared() {
	cat "$data/dedup/near.jsonl" "$data/good.jsonl" > raw.jsonl
	cat >> raw.jsonl <<'J'
{"id":"p1","text":"Mail john.doe@example.com or call +44 20 7946 0958, host 10.0.0.1."}
{"id":"p2","text":"a<|endoftext|>b and the rest of it"}
J
	llm-prep redact --tag -q raw.jsonl | llm-prep filter --tag -q | llm-prep dedup --tag -q |
		llm-prep split -q --key text > prepared.jsonl
	[ "$(lines prepared.jsonl)" = 19 ]
}

t 'stats counts records, fields and duplicates' '
	run llm-prep stats --json "$data/good.jsonl"; expect_status 0
	jq -e ".records == 5 and .bad == 0" out
	jq -e "(.fields[] | select(.name == \"lang\") | .present) == 4" out
	jq -e ".duplicates.text.duplicates == 1 and .duplicates.records.duplicates == 0" out
'
t 'stats measures characters as code points, after unescaping' '
	printf "{\"text\":\"h\\\\u00e9llo w\\\\u00f6rld\"}\n{\"text\":\"ab\"}\n" > e.jsonl
	llm-prep stats --json e.jsonl > out
	jq -e "(.fields[] | select(.name == \"text\") | .length.chars | .max == 11 and .min == 2)" out
	jq -e "(.fields[] | select(.name == \"text\") | .length.bytes.max) == 13" out
	jq -e "(.fields[] | select(.name == \"text\") | .length.words.max) == 2" out
'
t 'stats agrees with jq on character lengths' '
	llm-prep stats --json "$data/good.jsonl" > out
	want=$(jq -s "[.[].text | length] | max" "$data/good.jsonl")
	jq -e "(.fields[] | select(.name == \"text\") | .length.chars.max) == $want" out
'
t 'stats counts empty strings' '
	llm-prep stats --json "$data/good.jsonl" > out
	jq -e "(.fields[] | select(.name == \"text\") | .empty) == 1" out
'
t 'stats reports the script mix of the text field' '
	llm-prep stats --json "$data/good.jsonl" > out
	jq -e "[.scripts.by_records[] | select(.script == \"Cyrillic\") | .records] == [1]" out
	jq -e "[.scripts.by_records[] | select(.script == \"Latin\") | .records] == [3]" out
'
t '--report writes JSON and the table still goes to stdout' '
	run llm-prep stats --report rep.json "$data/good.jsonl"; expect_status 0
	jq -e ".records == 5" rep.json; grep -q "text" out
'
t '--html writes a self-contained page with SVG charts' '
	run llm-prep stats --html r.html --no-table "$data/good.jsonl"; expect_status 0
	expect_no_out; grep -q "<svg" r.html; grep -q "</html>" r.html
	! grep -qiE "<script|https?://[a-z]" r.html
'
t 'bad records are counted by reason under --on-error=skip' '
	cat "$data/good.jsonl" "$data/bad-json.jsonl" "$data/bad-utf8.jsonl" > mix.jsonl
	run llm-prep stats --json --on-error=skip -q mix.jsonl; expect_status 0
	jq -e ".records == 9 and .bad == 2" out
	jq -e ".bad_by_reason.invalid_json == 1 and .bad_by_reason.invalid_utf8 == 1" out
'
t 'a bad record stops stats by default, and no report file is written' '
	run llm-prep stats --report rep.json "$data/bad-json.jsonl"; expect_status 1
	[ ! -e rep.json ]
'
t '--field restricts length statistics to the named fields' '
	llm-prep stats --json --field id "$data/good.jsonl" > out
	jq -e "[.fields[] | select(.length) | .name] == [\"id\"]" out
'
t 'stats of an empty input is a valid report' '
	run llm-prep stats --json "$data/empty.jsonl"; expect_status 0; jq -e ".records == 0" out
'
t 'a report to an unwritable place fails with 3' '
	run llm-prep stats --report /dev/full "$data/good.jsonl"; expect_status 3
	expect_err "/dev/full: write error"
'
t 'records without flags, clusters or splits add no new keys' '
	llm-prep stats --json "$data/good.jsonl" > out
	jq -e "has(\"tokens\") or has(\"flags\") or has(\"clusters\") or has(\"splits\") | not" out
'
t 'flags after redact and filter are counted by kind and by type or rule, as jq counts them' '
	prepared; run llm-prep stats --json prepared.jsonl; expect_status 0
	jq -e ".flags.records == 19 and .flags.not_array == 0" out
	want=$(jq -s "[.[] | select((.flags | length) > 0)] | length" prepared.jsonl)
	jq -e ".flags.flagged == $want" out
	want=$(jq -s "[.[].flags[]] | length" prepared.jsonl)
	jq -e ".flags.flags == $want" out
	jq -s -c "[.[].flags[]] | group_by(.kind) | map({kind: .[0].kind, flags: length}) | sort_by(.kind)" prepared.jsonl > want
	jq -c ".flags.by_kind | map({kind, flags}) | sort_by(.kind)" out > got; cmp want got
	jq -s -c "[.[].flags[] | {kind, name: (.rule // .type)}] | group_by([.kind, .name]) | map(.[0] + {flags: length}) | sort_by([.kind, .name])" prepared.jsonl > want
	jq -c ".flags.by_name | map({kind, name, flags}) | sort_by([.kind, .name])" out > got; cmp want got
	jq -e "[.flags.by_name[] | select(.kind == \"pii\") | .name] | sort == [\"email\", \"ip_address\", \"phone\"]" out
	jq -s -c "[.[] | select(any(.flags[]; .kind == \"pii\"))] | length" prepared.jsonl > want
	jq -c ".flags.by_kind[] | select(.kind == \"pii\") | .records" out > got; cmp want got
'
t 'clusters and duplicates after dedup --tag agree with jq' '
	prepared; llm-prep stats --json prepared.jsonl > out
	jq -e ".clusters.records == 19 and .clusters.estimated == false" out
	want=$(jq -s "[.[].cluster_id] | unique | length" prepared.jsonl)
	jq -e ".clusters.clusters == $want" out
	want=$(jq -s "[group_by(.cluster_id)[] | select(length > 1)] | length" prepared.jsonl)
	jq -e ".clusters.multi == $want and $want > 1" out
	want=$(jq -s "[group_by(.cluster_id)[] | select(length > 1) | length] | add" prepared.jsonl)
	jq -e ".clusters.in_multi == $want" out
	jq -s -c "[group_by(.cluster_id)[] | select(length > 1) | length] | sort | reverse" prepared.jsonl > want
	jq -c "[.clusters.largest[].records]" out > got; cmp want got
	want=$(jq -s "[.[] | select(.duplicate == true)] | length" prepared.jsonl)
	jq -e ".clusters.duplicates == $want and $want > 0" out
	big=$(jq -r ".clusters.largest[0].id" out)
	jq -c --arg id "$big" "select(.cluster_id == \$id)" prepared.jsonl > members
	jq -e "(.clusters.largest[0].records) == $(lines members)" out
'
t 'splits are counted per name with the median text length, as jq computes them' '
	prepared; llm-prep stats --json prepared.jsonl > out
	jq -s -c "group_by(.split) | map({split: .[0].split, records: length}) | sort_by(.split)" prepared.jsonl > want
	jq -c ".splits.by_split | map({split, records}) | sort_by(.split)" out > got; cmp want got
	jq -e ".splits.records == 19 and ([.splits.by_split[].fraction] | add | . > 0.999 and . < 1.001)" out
	for sp in $(jq -r ".splits.by_split[].split" out); do
		want=$(jq -s --arg s "$sp" "[.[] | select(.split == \$s) | .text | length] | sort | .[((length + 1) / 2 | ceil) - 1]" prepared.jsonl)
		jq -e --arg s "$sp" "(.splits.by_split[] | select(.split == \$s) | .chars_p50) == $want" out
	done
'
t '--encoding counts tokens as tokenize --count does, special tokens as text' '
	prepared; run llm-prep stats --json --encoding cl100k_base prepared.jsonl; expect_status 0
	llm-prep tokenize -q --count -e cl100k_base prepared.jsonl > counted.jsonl
	want=$(jq -s "map(.n_tokens) | add" counted.jsonl)
	jq -e ".tokens | length == 1 and .[0].name == \"cl100k_base\" and .[0].records == 19" out
	jq -e ".tokens[0].tokens == $want" out
	want=$(jq -s "map(.n_tokens) | max" counted.jsonl)
	jq -e ".tokens[0].per_record.max == $want and .tokens[0].per_record.count == 19" out
	want=$(jq -s "map(.n_tokens) | min" counted.jsonl)
	jq -e ".tokens[0].per_record.min == $want" out
	chars=$(jq -s "map(.text | length) | add" prepared.jsonl)
	jq -e ".tokens[0].chars == $chars" out
	jq -e ".tokens[0].tokens_per_char - (.tokens[0].tokens / $chars) | fabs < 0.000001" out
	printf "{\"text\":\"a<|endoftext|>b\"}\n" | llm-prep stats --json -e gpt2 > sp
	jq -e ".tokens[0].tokens == 9" sp
'
t '--encoding takes a comma list and repeats, in order, each once; --tokenizer a file' '
	run llm-prep stats --json -e gpt2,o200k_base -e gpt2 --tokenizer "$data/tokenize/tiny-gpt2.json" "$data/good.jsonl"
	expect_status 0
	jq -e "[.tokens[].name] == [\"gpt2\", \"o200k_base\", \"$data/tokenize/tiny-gpt2.json\"]" out
	want=$(llm-prep tokenize -q --count -e o200k_base "$data/good.jsonl" | jq -s "map(.n_tokens) | add")
	jq -e ".tokens[1].tokens == $want" out
'
t 'an unknown encoding is a usage error, a missing tokenizer file an I/O error' '
	run llm-prep stats -e cl200k "$data/good.jsonl"; expect_status 2; expect_err "the encodings are"
	run llm-prep stats --tokenizer nothere.json "$data/good.jsonl"; expect_status 3
'
t 'the field names are options' '
	printf "%s\n" "{\"t\":\"x\",\"f\":[{\"kind\":\"k\",\"rule\":\"r\"},\"bare\",{\"x\":1}],\"c\":7,\"d\":true,\"s\":\"a\"}" \
		"{\"t\":\"yy\",\"f\":{},\"c\":7,\"s\":\"b\"}" > f.jsonl
	llm-prep stats --json --text-field t --flags-field f --cluster-field c --duplicate-field d --split-field s f.jsonl > out
	jq -e ".flags.flagged == 1 and .flags.flags == 3 and .flags.not_array == 1" out
	jq -e "[.flags.by_kind[].kind] == [\"k\", \"bare\", \"(none)\"]" out
	jq -e ".flags.by_name == [{\"kind\": \"k\", \"name\": \"r\", \"flags\": 1, \"records\": 1}]" out
	jq -e ".clusters.clusters == 1 and .clusters.largest == [{\"id\": \"7\", \"records\": 2}] and .clusters.duplicates == 1" out
	jq -e "[.splits.by_split[] | [.split, .chars_p50]] == [[\"a\", 1], [\"b\", 2]]" out
'
t 'the table has a short line for each new section' '
	prepared; llm-prep stats --encoding cl100k_base prepared.jsonl > out
	grep -q "^tokens  *cl100k_base " out; grep -q "^flags  *[0-9]* records flagged" out
	grep -q "^clusters  *[0-9]* in 19 records" out; grep -q "^splits  *" out
	! awk "length > 100" out | grep .
'
t 'the HTML page has token histograms, flag bars, cluster cards and the split bar' '
	prepared; run llm-prep stats --html r.html --no-table -e cl100k_base prepared.jsonl; expect_status 0
	grep -q "Tokens in <code>text</code>" r.html; grep -q "histogram of token counts" r.html
	grep -q "Flags in <code>flags</code>" r.html; grep -q "aria-label=\"flags by kind\"" r.html
	grep -q "<h2>Clusters</h2>" r.html; grep -q "Largest cluster" r.html
	grep -q "Splits in <code>split</code>" r.html
	! grep -qiE "<script|https?://[a-z]" r.html
	llm-prep stats --html plain.html --no-table "$data/good.jsonl"
	! grep -qE "Tokens in|Flags in|<h2>Clusters|Splits in" plain.html
'
done_testing
