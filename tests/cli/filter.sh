#!/bin/sh
# llm-prep filter: --drop and --tag, --rules, --set, --regex, the report and bad input.
. "$top_srcdir/tests/cli/lib.sh"
docs=$data/filter/docs.jsonl
c4doc() {
	printf "%s" "{\"text\":\"First sentence here is fine.\\nno terminal punctuation here\\n" \
		"Javascript must be enabled.\\nWe use cookies on this site.\\nShort line.\\n" \
		"This has a citation[12] in it. Another one follows!\\nAn end...\",\"id\":7}"
	echo
}

t 'by default filter keeps prose and drops short and repetitive documents unchanged' '
	run llm-prep filter "$docs"; expect_status 0
	sed -n 1p "$docs" > want; expect_out_file want
	expect_err "4 records, 1 passed, 3 dropped"
'
t 'the report gives drops per rule and per check, and read = written + dropped' '
	llm-prep filter --report rep.json "$docs" > /dev/null
	jq -e ".read == 4 and .written == 1 and .dropped == 3 and .passed == 1" rep.json
	jq -e ".dropped_by_rule == {\"gopher_quality\": 2, \"gopher_repetition\": 1}" rep.json
	jq -e ".dropped_by_check[\"gopher_quality.min_words\"] == 2" rep.json
	jq -e ".dropped_by_check[\"gopher_repetition.dup_line_frac\"] == 1" rep.json
'
t '--tag keeps every record and adds a flag per failed check, with value and threshold' '
	llm-prep filter --tag "$docs" > out
	[ "$(lines out)" = 4 ]
	[ "$(sed -n 1p out)" = "$(sed -n 1p "$docs")" ]
	sed -n 2p out | jq -e ".flags[0] == {\"kind\":\"quality\",\"rule\":\"gopher_quality.min_words\",\"value\":2,\"threshold\":50}"
	sed -n 3p out | jq -e "[.flags[].rule] | index(\"gopher_repetition.dup_line_frac\") != null"
'
t '--tag appends to an existing flags array and keeps its entries' '
	llm-prep filter --tag "$docs" | sed -n 4p > out
	jq -e ".flags[0] == {\"kind\":\"pii\",\"span\":[0,4]} and .flags[1].kind == \"quality\"" out
	jq -e "[.flags[].rule] | index(\"gopher_quality.min_words\") != null" out
'
t '--tag flags exactly the records --drop drops' '
	llm-prep filter --rules gopher_quality,gopher_repetition,fineweb "$docs" | jq -r .id > kept
	llm-prep filter --tag --rules gopher_quality,gopher_repetition,fineweb "$docs" |
		jq -r "select(([.flags[]?.kind] | index(\"quality\")) == null) .id" > unflagged
	cmp unflagged kept
'
t '--rules chooses the rules; an unknown rule is a usage error that lists the valid ones' '
	run llm-prep filter --rules length "$docs"; expect_status 0
	[ "$(jq -r .id out | tr "\n" " ")" = "good repeat " ]
	run llm-prep filter --rules gopher,c4 "$docs"; expect_status 2
	expect_err "unknown rule '"'"'gopher'"'"'"; expect_err "gopher_repetition"
'
t '--set changes a threshold; off switches a check off; unknown names list the valid ones' '
	run llm-prep filter --rules length --set length.min_words=3 "$docs"; expect_status 0
	[ "$(jq -r .id out | tr "\n" " ")" = "good repeat flagged " ]
	run llm-prep filter --rules length --set length.min_words=off "$docs"; expect_status 0
	[ "$(lines out)" = 4 ]
	run llm-prep filter --set gopher_quality.min_wordz=3 "$docs"; expect_status 2
	expect_err "min_words"; expect_err "min_stop_words"
	run llm-prep filter --set gopher_quality.min_words=lots "$docs"; expect_status 2
	run llm-prep filter --set min_words "$docs"; expect_status 2
'
t 'a value exactly at a threshold passes where the comparison is strict' '
	printf "{\"text\":\"one two three\"}\n" > three.jsonl
	run llm-prep filter --rules length --set length.min_words=3 three.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
	run llm-prep filter --rules length --set length.min_words=4 three.jsonl; [ ! -s out ]
'
t '--regex drops matching documents and is repeatable; a bad pattern is a usage error' '
	llm-prep filter --rules length --set length.min_words=off --regex "(?i)buy\\s+now" --regex "^Too" \
		--report rep.json "$docs" > out
	[ "$(jq -r .id out | tr "\n" " ")" = "good flagged " ]
	jq -e ".dropped_by_rule.regex == 2" rep.json
	llm-prep filter --rules regex --regex "Also" --tag "$docs" | sed -n 4p |
		jq -e ".flags[1] == {\"kind\":\"quality\",\"rule\":\"regex.match\",\"value\":1,\"threshold\":0,\"pattern\":\"Also\"}"
	run llm-prep filter --regex "([a-z" "$docs"; expect_status 2; expect_err "([a-z"
	run llm-prep filter --rules regex "$docs"; expect_status 2; expect_err "--regex"
'
t 'c4 removes lines from the text it keeps under --drop, and leaves the text under --tag' '
	c4doc > c4.jsonl
	llm-prep filter --rules c4 --set c4.min_sentences=3 --report rep.json c4.jsonl > out
	jq -e ".text == \"First sentence here is fine.\nThis has a citation in it. Another one follows!\" and .id == 7" out
	jq -e ".c4_lines_removed == 5 and .text_changed == 1" rep.json
	llm-prep filter --rules c4 --tag c4.jsonl | jq -e ".flags[0].rule == \"c4.min_sentences\" and .flags[0].value == 3"
	llm-prep filter --rules c4 --set c4.min_sentences=3 --tag c4.jsonl | cmp - c4.jsonl
	llm-prep filter --rules c4 --set c4.min_sentences=3 --set c4.remove_lines=false c4.jsonl | cmp - c4.jsonl
'
t '--text-field and --flags-field rename the fields' '
	printf "{\"body\":\"Too short.\",\"marks\":[]}\n" > r.jsonl
	llm-prep filter --tag --text-field body --flags-field marks r.jsonl |
		jq -e ".marks[0].rule == \"gopher_quality.min_words\" and (has(\"flags\") | not)"
'
t 'bad records: missing text, text not a string, flags not an array' '
	printf "{\"id\":1}\n" > m.jsonl
	run llm-prep filter m.jsonl; expect_status 1; expect_err "m.jsonl:1: missing field \"text\""
	printf "{\"text\":\"x\",\"flags\":{}}\n" > f.jsonl
	run llm-prep filter --tag f.jsonl; expect_status 1; expect_err "not an array"
	run llm-prep filter --tag --on-error keep --report rep.json f.jsonl; expect_status 0
	jq -e ".error.code == \"wrong_type\"" out || jq -e ".error != null" out
	jq -e ".read == 1 and .written == 1 and .dropped == 0" rep.json
	run llm-prep filter "$data/bad-utf8.jsonl"; expect_status 1; no_sanitizer_report
'
t '--drop and --tag together are a usage error; a missing file is an I/O error' '
	run llm-prep filter --drop --tag "$docs"; expect_status 2
	run llm-prep filter nowhere.jsonl; expect_status 3
'
t 'filter works in a pipe and ends quietly when the reader stops' '
	cat "$docs" "$docs" "$docs" | llm-prep filter --rules length --set length.min_words=off | head -n 1 > out
	[ "$(lines out)" = 1 ]
'
done_testing
