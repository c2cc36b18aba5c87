#!/bin/sh
# llm-prep validate: every bad record reported as FILE:LINE: reason, counts, exit 1.
. "$top_srcdir/tests/cli/lib.sh"

t 'good records validate with exit 0 and counts on stderr' '
	run llm-prep validate "$data/good.jsonl"; expect_status 0; expect_no_out
	expect_err "validate: 5 records, 5 valid, 0 invalid"
'
t 'every bad record is reported, not just the first, and the exit is 1' '
	cat "$data/bad-json.jsonl" "$data/bad-utf8.jsonl" > mix.jsonl
	run llm-prep validate mix.jsonl; expect_status 1
	expect_err "mix.jsonl:2: unexpected end of input"; expect_err "mix.jsonl:5: invalid UTF-8"
	expect_err "6 records, 4 valid, 2 invalid"
'
t '--require reports a missing field' '
	run llm-prep validate --require lang "$data/good.jsonl"; expect_status 1
	expect_err "good.jsonl:3: missing required field \"lang\""
	expect_err "5 records, 4 valid, 1 invalid"
'
t '--require FIELD:TYPE checks the type' '
	run llm-prep validate --require score:number "$data/good.jsonl"; expect_status 1
	expect_err "good.jsonl:4: missing required field \"score\""
	printf "{\"score\":\"high\"}\n" > s.jsonl
	run llm-prep validate -r score:number s.jsonl; expect_status 1
	expect_err "s.jsonl:1: field \"score\" is a string, not the required type"
'
t 'integer is stricter than number' '
	printf "{\"n\":1}\n{\"n\":1.5}\n{\"n\":2e3}\n" > n.jsonl
	run llm-prep validate -r n:integer n.jsonl; expect_status 1
	expect_err "n.jsonl:2: field \"n\" is a non-integer number"
	expect_err "n.jsonl:3:"; expect_err "3 records, 1 valid, 2 invalid"
'
t 'a type union a|b and a comma list both work' '
	printf "{\"id\":1,\"reference\":\"x\"}\n{\"id\":2,\"reference\":[\"x\",\"y\"]}\n" > r.jsonl
	run llm-prep validate --require "id:integer,reference:string|array" r.jsonl; expect_status 0
'
t 'an unknown type is a usage error' '
	run llm-prep validate -r x:text "$data/good.jsonl"; expect_status 2
	expect_err "unknown type '\''text'\''"
'
t 'a field given twice in one record is reported' '
	printf "{\"a\":1,\"a\":2}\n" > d.jsonl
	run llm-prep validate d.jsonl; expect_status 1; expect_err "d.jsonl:1: field \"a\" appears twice"
'
t 'keys written with escapes match their decoded names' '
	printf "{\"t\\\\u0065xt\":\"hi\"}\n" > e.jsonl
	run llm-prep validate -r text:string e.jsonl; expect_status 0
'
t '--pass writes the valid records unchanged' '
	cat "$data/good.jsonl" "$data/bad-json.jsonl" > mix.jsonl
	run llm-prep validate --pass mix.jsonl; expect_status 1
	[ "$(lines out)" = 7 ]; head -n 5 out | cmp - "$data/good.jsonl"
'
t '--pass with --on-error=keep passes bad records on with an error field' '
	run llm-prep validate --pass --on-error keep -r lang "$data/good.jsonl"; expect_status 1
	[ "$(lines out)" = 5 ]
	sed -n 3p out | jq -e ".error.code == \"missing_field\" and .id == \"a3\""
'
t '--on-error=fail stops at the first bad record' '
	cat "$data/bad-json.jsonl" "$data/bad-utf8.jsonl" > mix.jsonl
	run llm-prep validate --on-error fail mix.jsonl; expect_status 1
	expect_err "mix.jsonl:2:"; ! grep -q "mix.jsonl:5:" err
'
t '--report writes the counts as JSON' '
	run llm-prep validate --report rep.json "$data/bad-json.jsonl"; expect_status 1
	jq -e ".records == 3 and .valid == 2 and .invalid == 1 and .ok == false" rep.json
'
done_testing
