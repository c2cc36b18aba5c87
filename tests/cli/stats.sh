#!/bin/sh
# llm-prep stats: the summary as a table, JSON and HTML.
. "$top_srcdir/tests/cli/lib.sh"

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
done_testing
