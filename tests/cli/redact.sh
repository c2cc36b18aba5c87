#!/bin/sh
# llm-prep redact: placeholders, --tag flags with code-point spans, --types, bad records.
. "$top_srcdir/tests/cli/lib.sh"

pii() {
	cat > pii.jsonl <<'J'
{"id":"a","meta":{"k":[1, 2]},"text":"Mail john.doe+x@mail.example.co.uk or +44 20 7946 0958, host 192.168.1.20, card 4111 1111 1111 1111."}
{"id":"b","text":"IBAN GB82 WEST 1234 5698 7654 32, v6 2001:db8::1, key AKIAIOSFODNN7EXAMPLE","n":1}
J
}

t 'each finding becomes its typed placeholder and the other fields stay byte for byte' '
	pii; run llm-prep redact pii.jsonl; expect_status 0
	cat > want.jsonl <<J
{"id":"a","meta":{"k":[1, 2]},"text":"Mail <EMAIL> or <PHONE>, host <IP_ADDRESS>, card <CREDIT_CARD>."}
{"id":"b","text":"IBAN <IBAN>, v6 <IP_ADDRESS>, key <SECRET>","n":1}
J
	expect_out_file want.jsonl
'
t 'look-alikes stay: versions, dates, times, failed Luhn, bad IBAN check digits' '
	printf "%s\n" "{\"text\":\"version 1.2.3.4 on 2024-03-15 at 10:30:00, card 4111 1111 1111 1112, GB82WEST12345698765431, std::vector\"}" > same.jsonl
	run llm-prep redact same.jsonl; expect_status 0; expect_out_file same.jsonl
'
t '--tag keeps the text and lists findings with spans in code points (Python slicing)' '
	printf "%s\n" "{\"text\":\"Grüße aus 東京 — schreib an jürgen@example.de oder 10.0.0.1\"}" > u.jsonl
	run llm-prep redact --tag u.jsonl; expect_status 0
	python3 -c "
import json, sys
r = json.loads(open(\"out\").read())
assert r[\"text\"] == json.loads(open(\"u.jsonl\").read())[\"text\"]
got = [(f[\"kind\"], f[\"type\"], r[\"text\"][f[\"span\"][0]:f[\"span\"][1]]) for f in r[\"flags\"]]
assert got == [(\"pii\", \"email\", \"jürgen@example.de\"), (\"pii\", \"ip_address\", \"10.0.0.1\")], got
assert r[\"flags\"][0][\"span\"] == [26, 43], r[\"flags\"][0]
"
'
t '--tag appends to an existing flags array and creates one where absent' '
	printf "%s\n" "{\"text\":\"a@b.co\",\"flags\":[{\"kind\":\"quality\"}]}" "{\"text\":\"a@b.co\",\"flags\":[ ]}" > f.jsonl
	llm-prep redact --tag -q f.jsonl > out
	jq -e -s ".[0].flags | length == 2 and .[0].kind == \"quality\" and .[1].type == \"email\"" out
	jq -e -s ".[1].flags | length == 1 and .[0].span == [0,6] and .[0].score == 1" out
'
t '--types picks the detectors; an unknown type is a usage error' '
	pii; run llm-prep redact --types email,secret pii.jsonl; expect_status 0
	grep -q "<EMAIL> or +44 20 7946 0958, host 192.168.1.20" out
	grep -q "key <SECRET>" out; grep -q "GB82 WEST" out
	run llm-prep redact --types email,ssn pii.jsonl; expect_status 2; expect_err "unknown type '\''ssn'\''"
'
t '--text-field scans the fields named, and records without them pass unchanged' '
	printf "%s\n" "{\"prompt\":\"a@b.co\",\"completion\":\"c@d.io\",\"text\":\"e@f.io\"}" "{\"other\":\"g@h.io\"}" > m.jsonl
	llm-prep redact -q -f prompt,completion m.jsonl > out
	head -n 1 out | jq -e ".prompt == \"<EMAIL>\" and .completion == \"<EMAIL>\" and .text == \"e@f.io\""
	tail -n 1 out | cmp - /dev/stdin <<J
{"other":"g@h.io"}
J
'
t 'a text field that is not a string is a bad record: status 1, or dropped under skip' '
	printf "%s\n" "{\"text\":\"a@b.co\"}" "{\"text\":42}" > bad.jsonl
	run llm-prep redact bad.jsonl; expect_status 1; expect_err "bad.jsonl:2: field \"text\" is a number, not a string"
	run llm-prep redact --on-error skip --report rep.json bad.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
	jq -e ".read == 2 and .written == 1 and .dropped == 1 and .read == .written + .dropped" rep.json
'
t '--on-error keep passes the bad record on with an error field' '
	printf "%s\n" "{\"text\":[1]}" > k.jsonl
	run llm-prep redact --on-error keep k.jsonl; expect_status 0
	jq -e ".error.code == \"wrong_type\" and .text == [1]" out
'
t '--report counts findings by type and records with PII' '
	pii; llm-prep redact -q --report rep.json pii.jsonl > /dev/null
	jq -e ".records_with_pii == 2 and .spans == 7 and .by_type.email == 1 and .by_type.ip_address == 2 and .by_type.iban == 1 and .by_type.secret == 1 and .mode == \"replace\"" rep.json
'
t 'the entropy test follows --entropy-bits and --entropy-min-length' '
	printf "%s\n" "{\"text\":\"tok Zx9Qm2Lp7Rt4Vb8Nc3Kd6 end\"}" > e.jsonl
	run llm-prep redact e.jsonl; expect_out_file e.jsonl
	run llm-prep redact --entropy-bits 4.3 e.jsonl; grep -q "tok <SECRET> end" out
	run llm-prep redact --entropy-bits 4.3 --entropy-min-length 22 e.jsonl; expect_out_file e.jsonl
'
t 'reads stdin, and a closed pipe ends quietly' '
	pii; llm-prep redact -q < pii.jsonl | head -n 1 > first.jsonl; grep -q "<EMAIL>" first.jsonl
	cat pii.jsonl pii.jsonl pii.jsonl | llm-prep redact 2>err | head -n 1 > /dev/null; no_sanitizer_report
'
t 'invalid JSON is status 1 with FILE:LINE, a missing file status 3' '
	run llm-prep redact "$data/bad-json.jsonl"; expect_status 1; expect_err "bad-json.jsonl:"
	run llm-prep redact nonexistent.jsonl; expect_status 3
'
done_testing
