#!/bin/sh
# llm-monitor drift: the statistics equal SciPy's (tests/cli/drift-scipy.py, live when SciPy is
# importable), a shifted log drifts and an identical one does not, the dataset-drift share,
# forced tests, extra fields, sampling, gzip, exit statuses, bad input named FILE:LINE, and
# the page.
. "$top_srcdir/tests/cli/lib.sh"
d=$data/monitor/drift
man=$top_srcdir/man
py=/usr/bin/python3
ref=$d/reference.jsonl
cur=$d/current.jsonl

# Compare our --format json (file $1) with the reference script's columns (file $2): the same
# columns, tests, sample sizes and verdicts, statistics and p-values within 1e-9 relative.
compare() {
	"$py" - "$1" "$2" <<'PY'
import json, math, sys
ours = {c["column"]: c for c in json.load(open(sys.argv[1]))["columns"]}
ref = json.load(open(sys.argv[2]))
bad = []
def close(a, b):
    if b is None or (isinstance(b, float) and math.isinf(b)):
        return a is None
    if a is None:
        return False
    return a == b or abs(a - b) <= 1e-9 * abs(b)
for name, r in ref.items():
    o = ours.get(name)
    if o is None:
        bad.append(f"{name}: missing"); continue
    for k in ("test", "n_ref", "n_cur", "drifted"):
        if o[k] != r[k]:
            bad.append(f"{name}: {k} {o[k]} != {r[k]}")
    for k in ("statistic", "p_value"):
        if not close(o[k], r[k]):
            bad.append(f"{name}: {k} {o[k]!r} != scipy {r[k]!r}")
if len(ours) != len(ref):
    bad.append(f"columns: ours {sorted(ours)} scipy {sorted(ref)}")
print("\n".join(bad))
sys.exit(1 if bad else 0)
PY
}

have_scipy() {
	[ -x "$py" ] && "$py" -c 'import scipy, numpy' 2>/dev/null
}

n=0
for pair in "reference.jsonl current.jsonl" "reference.jsonl current-same.jsonl" \
	"big-reference.jsonl.gz current.jsonl"; do
	set -- $pair
	n=$((n + 1))
	if ! have_scipy; then
		test_count=$((test_count + 1))
		echo "ok $test_count - # SKIP drift statistics against scipy ($1 vs $2): python3-scipy missing"
		continue
	fi
	t "drift statistics equal scipy's, column by column ($1 vs $2)" "
		run llm-monitor drift --reference '$d/$1' --current '$d/$2' --format json
		[ \$status = 0 ] || [ \$status = 1 ]
		'$py' '$top_srcdir/tests/cli/drift-scipy.py' columns '$d/$1' '$d/$2' > scipy.json
		compare out scipy.json
	"
done

t 'a shifted log drifts: the table says which columns, exit 1' '
	run llm-monitor drift --reference "$ref" --current "$cur"
	expect_status 1
	grep -q "^latency_ms  *numeric  *ks .* DRIFT$" out
	grep -q "^model  *categorical  *chisquare .* DRIFT$" out
	grep -q "^prompt_words  *words  *jensenshannon .* DRIFT$" out
	grep -q "^dataset drift: yes" out
	no_sanitizer_report
'
t 'a log compared with itself does not drift: every p-value 1, every distance 0, exit 0' '
	run llm-monitor drift --reference "$ref" --current "$ref" --format json
	expect_status 0
	"$py" -c "
import json, sys
r = json.load(open(\"out\"))
assert not r[\"dataset_drift\"] and r[\"drifted_columns\"] == 0, r
assert r[\"tested_columns\"] == 13, r[\"tested_columns\"]
for c in r[\"columns\"]:
    assert not c[\"drifted\"], c
    assert c[\"score\"] == (1.0 if c[\"p_value\"] is not None else 0.0), c
"
'
t 'dataset drift is a share of the columns (--drift-share)' '
	run llm-monitor drift -r "$ref" -c "$cur" --format json
	expect_status 1
	drifted=$("$py" -c "import json; r = json.load(open(\"out\")); print(r[\"drifted_columns\"], r[\"tested_columns\"])")
	[ "$drifted" = "11 13" ] || { echo "drifted: $drifted"; false; }
	run llm-monitor drift -r "$ref" -c "$cur" --drift-share 0.9
	expect_status 0; grep -q "^dataset drift: no (11 of 13 columns drifted; drift share 0.9)" out
	run llm-monitor drift -r "$ref" -c "$cur" --drift-share 0.84
	expect_status 1
	run llm-monitor drift -r "$ref" -c "$cur" --columns completion_tokens,status
	expect_status 0; [ "$(grep -c " ok$" out)" = 2 ]
'
t '--stattest forces a test where it applies; --threshold moves the verdict' '
	run llm-monitor drift -r "$ref" -c "$cur" --stattest psi --format json
	expect_status 1
	"$py" -c "
import json
r = json.load(open(\"out\"))
assert all(c[\"test\"] == \"psi\" for c in r[\"columns\"]), r
lat = [c for c in r[\"columns\"] if c[\"column\"] == \"latency_ms\"][0]
assert lat[\"bins\"] == 10 and lat[\"threshold\"] == 0.1 and lat[\"p_value\"] is None, lat
"
	run llm-monitor drift -r "$ref" -c "$cur" --stattest wasserstein --columns latency_ms,model
	grep -q "^latency_ms .* wasserstein " out
	grep -q "^model .* chisquare " out
	run llm-monitor drift -r "$ref" -c "$cur" --columns completion_tokens --threshold 0.99
	expect_status 1; grep -q " 0.9900 .* DRIFT$" out
'
t 'extra fields by name: --numeric, --categorical, --field detects numbers' '
	run llm-monitor drift -r "$ref" -c "$cur" --numeric team_size --categorical plan \
		--columns team_size,plan --format json
	"$py" -c "
import json
c = {x[\"column\"]: x for x in json.load(open(\"out\"))[\"columns\"]}
assert c[\"team_size\"][\"kind\"] == \"numeric\" and c[\"team_size\"][\"test\"] == \"ks\", c
assert c[\"plan\"][\"kind\"] == \"categorical\" and c[\"plan\"][\"bins\"] == 3, c
"
	run llm-monitor drift -r "$ref" -c "$cur" --field team_size --field plan --columns team_size,plan
	grep -q "^team_size  *numeric " out
	grep -q "^plan  *categorical " out
	run llm-monitor drift -r "$ref" -c "$cur" --columns nosuch
	expect_status 2; expect_err "no column '\''nosuch'\''"
'
t 'a reference over 1000 rows, gzip-compressed: normalized Wasserstein and Jensen-Shannon' '
	run llm-monitor drift -r "$d/big-reference.jsonl.gz" -c "$cur" --columns latency_ms,model,status
	grep -q "^latency_ms .* wasserstein .*  1100  *200 .* DRIFT$" out
	grep -q "^model .* jensenshannon .*  1100  *200  *3  DRIFT$" out
	grep -q "^status .* jensenshannon " out
'
t '--sample keeps N events per input, the same ones for the same seed' '
	run llm-monitor drift -r "$d/big-reference.jsonl.gz" -c "$cur" --sample 120 --seed 3 --format json
	cp out a.json
	run llm-monitor drift -r "$d/big-reference.jsonl.gz" -c "$cur" --sample 120 --seed 3 --format json
	cmp -s out a.json
	"$py" -c "
import json
r = json.load(open(\"a.json\"))
assert r[\"reference\"][\"rows\"] == 120 and r[\"reference\"][\"events\"] == 1100, r[\"reference\"]
assert r[\"reference\"][\"sampled\"] and r[\"current\"][\"rows\"] == 120
lat = [c for c in r[\"columns\"] if c[\"column\"] == \"latency_ms\"][0]
assert lat[\"n_ref\"] == 120 and lat[\"test\"] == \"ks\", lat
"
	run llm-monitor drift -r "$d/big-reference.jsonl.gz" -c "$cur" --sample 120 --seed 4 --format json
	! cmp -s out a.json
'
t '--report writes the JSON report and the table still goes to stdout' '
	run llm-monitor drift -r "$ref" -c "$d/current-same.jsonl" --report rep.json
	expect_status 0
	grep -q "^dataset drift: no" out
	"$py" -c "import json; r = json.load(open(\"rep.json\")); assert r[\"dataset_drift\"] is False"
'
t 'usage errors exit 2, unreadable inputs 3' '
	run llm-monitor drift --reference "$ref"; expect_status 2; expect_err "needs --reference FILE and --current FILE"
	run llm-monitor drift -r "$ref" -c "$cur" extra.jsonl; expect_status 2; expect_err "no FILE operands"
	run llm-monitor drift -r "$ref" -c "$cur" --stattest kl; expect_status 2
	run llm-monitor drift -r "$ref" -c "$cur" --drift-share 2; expect_status 2
	run llm-monitor drift -r - -c -; expect_status 2
	run llm-monitor drift -r "$ref" -c nosuch.jsonl; expect_status 3; expect_err "nosuch.jsonl"
	expect_no_out
'
t 'bad input is named FILE:LINE; --on-error=skip goes on' '
	head -n 3 "$cur" > bad.jsonl
	echo "{\"latency_ms\": 12," >> bad.jsonl
	tail -n 5 "$cur" >> bad.jsonl
	run llm-monitor drift -r "$ref" -c bad.jsonl
	expect_status 1; expect_err "bad.jsonl:4:"; expect_no_out
	run llm-monitor drift -r "$ref" -c bad.jsonl --on-error skip --columns latency_ms
	grep -q "^latency_ms .* 250  *7 " out
	printf "{\"team_size\": \"many\"}\n" > typed.jsonl
	run llm-monitor drift -r "$ref" -c typed.jsonl --numeric team_size
	expect_status 1; expect_err "typed.jsonl:1: field team_size is a string, not a number"
	printf "{\"status\": \"200\"}\n" > status.jsonl
	run llm-monitor drift -r status.jsonl -c "$cur"
	expect_status 1; expect_err "status.jsonl:1:"
	no_sanitizer_report
'
t 'llm-monitor-drift(1) passes mandoc -T lint, is up to date and documents every option' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor-drift.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	scdoc < "$man/llm-monitor-drift.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-monitor-drift.1" || { echo "llm-monitor-drift.1 is stale"; false; }
	llm-monitor drift --help > help
	for o in $(llm-monitor drift --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-monitor-drift.1.scd" || { echo "$o undocumented"; false; }
	done
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-monitor-drift.1.scd" || { echo "lacks status $s"; false; }; done
	grep -q "man/llm-monitor-drift.1" "$top_srcdir/mk/monitor-drift.am"
'
done_testing
