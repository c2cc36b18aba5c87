#!/bin/sh
# llm-eval in CI: thresholds and their exit codes, zero records, the --report (intervals,
# signatures, slices, per-record statistics), a --baseline comparison that passes an identical
# run and fails a clearly worse one, JUnit XML that validates, Markdown and the GitHub step
# summary.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset GITHUB_STEP_SUMMARY
xsd=$data/eval/junit.xsd

# 60 records in three slices, with answers right, half right and wrong, and no id field, so
# the baseline pairs records by their derived ids.
sys=$scratch/sys.jsonl
awk 'BEGIN {
	split("the cat sat on the mat|a quick brown fox jumps|rain falls on the plain|we ship the release today|the model answers questions", ref, "|")
	for (i = 0; i < 60; i++) {
		r = ref[i % 5 + 1]
		if (i % 3 == 0) o = r
		else if (i % 3 == 1) { n = split(r, w, " "); o = w[1] " " w[2] " " w[3] " something else" }
		else o = "nothing like it at all " i
		printf "{\"q\":\"question %d\",\"topic\":\"%s\",\"output\":\"%s\",\"reference\":\"%s\"}\n", i, substr("abc", i % 3 + 1, 1), o, r
	}
}' > "$sys"
# The same questions answered worse: every right answer replaced by a wrong one.
worse=$scratch/worse.jsonl
jq -c 'if .output == .reference then .output = "no idea" else . end' "$sys" > "$worse"

t '--fail-under passes at or below the score and fails with 1 above it, naming the metric' '
	llm-eval -m bleu,rougeL --report r.json "$sys" > /dev/null
	b=$(jq .metrics.bleu.score r.json)
	run llm-eval -m bleu,rougeL --fail-under "bleu=$b" --fail-under rougeL=0.1 "$sys"; expect_status 0
	[ "$(lines out)" = 60 ]
	run llm-eval -m bleu,rougeL --fail-under bleu=99 "$sys"; expect_status 1
	expect_err "llm-eval: bleu is "; expect_err "under the threshold 99 (--fail-under)"
	[ "$(lines out)" = 60 ]
'
t '--fail-over is the threshold of lower-is-better metrics such as ter' '
	run llm-eval -m ter --fail-over ter=100 "$sys"; expect_status 0
	run llm-eval -m ter --fail-over ter=1 "$sys"; expect_status 1
	expect_err "over the threshold 1 (--fail-over)"
'
t 'a threshold on a metric not computed, or malformed, is a usage error' '
	run llm-eval -m bleu --fail-under rougeL=0.3 "$sys"; expect_status 2
	expect_err "'\''rougeL'\'' is not one of the metrics computed"; expect_no_out
	run llm-eval -m bleu --fail-under bleu "$sys"; expect_status 2; expect_err "METRIC=VALUE"
	run llm-eval -m bleu --fail-under bleu=high "$sys"; expect_status 2; expect_err "not a number"
'
t 'zero records scored is a failure (1), also when every record was bad and skipped' '
	run llm-eval -m bleu "$data/empty.jsonl"; expect_status 1
	expect_err "llm-eval: no records were scored"
	echo "{\"output\":\"x\"}" > bad.jsonl
	run llm-eval -m bleu --on-error skip bad.jsonl; expect_status 1
	expect_err "no records were scored"
'
t 'the report has scores, intervals, signatures, counts and per-record statistics by id' '
	llm-eval -m bleu,chrf,rougeL,exact --report r.json "$sys" > /dev/null
	jq -e ".tool == \"llm-eval\" and .records == 60 and .input.read == 60 and
		.bootstrap.resamples == 1000 and .bootstrap.seed == 12345" r.json
	jq -e ".metrics | keys == [\"bleu\", \"chrf\", \"exact\", \"rougeL\"]" r.json
	jq ".metrics[] | .ci.lo <= .ci.mean and .ci.mean <= .ci.hi and .ci.level == 0.95" r.json > ok
	[ -s ok ] && ! grep -q false ok
	jq -e ".metrics.bleu.signature | startswith(\"nrefs:1|case:mixed|eff:no|tok:13a|smooth:exp|\")" r.json
	jq -e "(.metrics.exact.score * 1e6 | round) == 333333" r.json
	jq -e "(.per_record.records | length) == 60" r.json
	jq -e "[.per_record.records[] | .bleu | length] | all(. == 10)" r.json
	jq -e "[.per_record.records[] | .exact[0]] | add == 20" r.json
'
t 'the same seed gives the same report; another seed other intervals; --bootstrap 0 none' '
	llm-eval -m bleu --report a.json "$sys" > /dev/null
	llm-eval -m bleu --report b.json "$sys" > /dev/null
	cmp a.json b.json
	llm-eval -m bleu --seed 7 --report c.json "$sys" > /dev/null
	jq -e ".metrics.bleu.ci" c.json > ci7; jq -e ".metrics.bleu.ci" a.json > ci0
	! cmp -s ci0 ci7
	llm-eval -m bleu --bootstrap 0 --report d.json "$sys" > /dev/null
	jq -e ".metrics.bleu.ci == null and .metrics.bleu.score == $(jq .metrics.bleu.score a.json)" d.json
'
t '--by scores each slice apart, in the report and on the table' '
	run llm-eval -m exact --by topic --summary --report r.json "$sys"; expect_status 0
	jq -e ".slices.topic | map(.value) == [\"a\", \"b\", \"c\"]" r.json
	jq -e ".slices.topic | map(.records) == [20, 20, 20]" r.json
	jq -e ".slices.topic | map(.metrics.exact.score) == [1, 0, 0]" r.json
	grep -q "^by topic:" err
	run llm-eval -m exact --by nosuch --report r.json "$sys"; expect_status 0
	jq -e ".slices.nosuch == [{\"value\": \"(none)\", \"records\": 60, \"metrics\": .slices.nosuch[0].metrics}]" r.json
'
t 'a baseline of an identical run is no regression (0); a clearly worse run fails with 1' '
	llm-eval -m bleu,exact,ter --report base.json "$sys" > /dev/null
	run llm-eval -m bleu,exact,ter --baseline base.json --report r.json "$sys"; expect_status 0
	jq -e ".baseline.comparisons | length == 3 and all(.compared and (.regression | not) and .paired == 60 and .delta == 0)" r.json
	run llm-eval -m bleu,exact,ter --baseline base.json --report r.json "$worse"; expect_status 1
	expect_err "llm-eval: bleu regressed from "; expect_err "exact regressed from 0.3333 to 0.0000"
	expect_err "ter regressed from"
	jq -e ".baseline.comparisons | all(.regression and .p_randomization < 0.05 and .p_bootstrap < 0.05)" r.json
	jq -e ".baseline.comparisons[] | select(.metric == \"ter\") | .delta > 0" r.json
	[ "$(lines out)" = 60 ]
'
t 'a better run is no regression, whichever test decides' '
	llm-eval -m exact --report base.json "$worse" > /dev/null
	run llm-eval -m exact --baseline base.json "$sys"; expect_status 0
	run llm-eval -m exact --baseline base.json --baseline-test bootstrap "$sys"; expect_status 0
'
t 'a metric computed differently from the baseline is not compared, and said so' '
	llm-eval -m bleu --report base.json "$sys" > /dev/null
	run llm-eval -m bleu --bleu-tokenize char --baseline base.json --junit j.xml "$worse"; expect_status 0
	expect_err "warning: bleu not compared with the baseline: computed differently"
	xmllint --noout --schema "$xsd" j.xml
	grep -q "<skipped message=\"bleu: not compared" j.xml
	run llm-eval -m rougeL --baseline base.json "$worse"; expect_status 0
	expect_err "rougeL not compared with the baseline: not in the baseline"
'
t 'a baseline that is not a report is a usage error, a missing one an I/O error' '
	echo "{\"a\":1}" > x.json
	run llm-eval -m bleu --baseline x.json "$sys"; expect_status 2
	expect_err "is not an llm-eval report"; expect_no_out
	run llm-eval -m bleu --baseline nope.json "$sys"; expect_status 3; expect_no_out
	run llm-eval -m bleu --baseline x.json --bootstrap 0 "$sys"; expect_status 2
'
t 'JUnit XML validates, with a test case per threshold and per baseline comparison' '
	llm-eval -m bleu,exact --report base.json "$sys" > /dev/null
	run llm-eval -m bleu,exact --fail-under exact=0.3 --fail-under bleu=99 --baseline base.json \
		--junit j.xml "$worse"; expect_status 1
	xmllint --noout --schema "$xsd" j.xml
	[ "$(xmllint --xpath "count(//testcase)" j.xml)" = 5 ]
	[ "$(xmllint --xpath "string(/testsuites/testsuite/@failures)" j.xml)" = 4 ]
	[ "$(xmllint --xpath "count(//testcase[@classname=\"llm-eval.threshold\"]/failure)" j.xml)" = 2 ]
	[ "$(xmllint --xpath "count(//testcase[@classname=\"llm-eval.baseline\"]/failure)" j.xml)" = 2 ]
	xmllint --xpath "string(//testcase[@name=\"exact >= 0.3\"]/failure/@message)" j.xml | grep -q "exact is 0.0000, under 0.3"
	run llm-eval -m exact --junit ok.xml "$sys"; expect_status 0
	xmllint --noout --schema "$xsd" ok.xml
	[ "$(xmllint --xpath "string(/testsuites/@failures)" ok.xml)" = 0 ]
	run llm-eval -m exact --junit none.xml "$data/empty.jsonl"; expect_status 1
	xmllint --noout --schema "$xsd" none.xml
	grep -q "<failure type=\"llm-eval\" message=\"no records were scored\"" none.xml
'
t '--markdown writes a table and appends it to $GITHUB_STEP_SUMMARY when that is set' '
	llm-eval -m bleu,exact --report base.json "$sys" > /dev/null
	llm-eval -m bleu,exact --markdown m.md --fail-under exact=0.2 --by topic "$sys" > /dev/null
	grep -q "^| metric | score | 95% CI |\$" m.md
	grep -q "^| exact | 0.3333 | " m.md
	grep -q "^| exact ≥ 0.2 | 0.3333 | ✅ pass |\$" m.md
	grep -q "^| topic | records | bleu | exact |\$" m.md
	[ ! -e summary.md ]
	echo "# earlier step" > summary.md
	GITHUB_STEP_SUMMARY=$PWD/summary.md llm-eval -m bleu,exact --markdown m2.md --baseline base.json "$worse" > /dev/null || true
	head -1 summary.md | grep -qx "# earlier step"
	grep -q "^| exact | 0.0000 | .* | 0.3333 | -0.3333 | .* | ❌ regression |\$" summary.md
	tail -n +2 summary.md | head -n -1 | cmp - m2.md
'
t 'outputs that cannot be written fail with 3' '
	run llm-eval -m bleu --report /nonexistent/dir/r.json "$sys"; expect_status 3
	run llm-eval -m bleu --junit /nonexistent/j.xml "$sys"; expect_status 3
	set +e; llm-eval -m bleu "$sys" > /dev/full 2> err; status=$?; set -e
	expect_status 3; expect_err "write error on standard output"
'
done_testing
