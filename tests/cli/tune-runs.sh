#!/bin/sh
# llm-tune runs list|show|compare over run folders made by the library (tests/unit/make-run).
. "$top_srcdir/tests/cli/lib.sh"
make_run=$top_builddir/tests/unit/make-run
# Runs go under ./runs unless a test says otherwise; nothing reads the real ~/.llmops.
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME

# curve N SCALE: N steps of a falling train loss, with a val_loss line every 5 steps.
curve() {
	awk -v n="$1" -v s="$2" 'BEGIN {
		for (i = 1; i <= n; i++) {
			printf "{\"step\":%d,\"tokens\":%d,\"train_loss\":%.4f,\"lr\":0.001,\"elapsed_s\":%d}\n", i, i * 4096, s * (1 + 4 / i), i
			if (i % 5 == 0) printf "{\"step\":%d,\"val_loss\":%.4f}\n", i, s * (1.2 + 4 / i)
		}
	}'
}
# mk NAME SCALE PARAMS [make-run options]: a finished run in ./runs.
mk() {
	name=$1 scale=$2 params=$3; shift 3
	curve 20 "$scale" | "$make_run" runs --name "$name" --params "$params" "$@" > /dev/null
}
two() {
	mk alpha 1 '{"lr":0.001,"batch_size":8,"lora":{"r":8}}'
	mk beta 0.5 '{"lr":0.002,"batch_size":8,"lora":{"r":16}}'
}

t 'list with no runs says so on stderr and exits 0' '
	run llm-tune runs list; expect_status 0; expect_no_out; expect_err "no runs in $LLMOPS_HOME/runs"
	run llm-tune runs list --json; expect_status 0; expect_out "[]"
'
t 'list shows one row per run with its status, steps, losses and differing params' '
	two; run llm-tune runs list --runs-dir runs; expect_status 0
	[ "$(lines out)" = 3 ]; head -1 out | grep -q "^ID  *STATUS  *CREATED  *STEPS  *BEST VAL"
	grep -E "^alpha +finished .* 20 +1\.4000 +1\.2000 +81\.9k +.*lr=0\.001 lora\.r=8$" out
	grep -E "^beta +finished .* 20 +0\.7000 +0\.6000 .*lr=0\.002 lora\.r=16$" out
	! grep -q batch_size out
'
t 'list is by creation time, and --sort val_loss puts the best first' '
	two
	jq ".created = \"2030-01-01T00:00:00Z\"" runs/alpha/meta.json > m && mv m runs/alpha/meta.json
	llm-tune runs list --runs-dir runs | awk "NR > 1 { print \$1 }" | tr "\n" " " > order
	[ "$(cat order)" = "beta alpha " ]
	llm-tune runs list --runs-dir runs --sort id | awk "NR == 2 { print \$1 }" | grep -qx alpha
	llm-tune runs list --runs-dir runs --sort val_loss | awk "NR == 2 { print \$1 }" | grep -qx beta
'
t 'list --json has every run with its summary, and null for what is unknown' '
	two; printf "" | "$make_run" runs --name empty --status running > /dev/null
	llm-tune runs list --runs-dir runs --json > j
	jq -e "length == 3" j
	jq -e ".[] | select(.id == \"alpha\") | .best_val_loss == 1.4 and .best_step == 20 and .steps == 20 and .tokens == 81920 and .params.lora.r == 8 and .status == \"finished\"" j
	jq -e ".[] | select(.id == \"empty\") | .status == \"running\" and .best_val_loss == null and .steps == null" j
'
t 'runs live in $LLMOPS_HOME/runs, and LLMOPS_TUNE_RUNS_DIR or --runs-dir move them' '
	curve 3 1 | "$make_run" "$LLMOPS_HOME/runs" --name home > /dev/null
	llm-tune runs list | grep -q "^home "
	two; LLMOPS_TUNE_RUNS_DIR=runs llm-tune runs list | grep -q "^alpha "
'
t 'a generated id is the UTC time and a random suffix' '
	id=$(curve 2 1 | "$make_run" runs); id=${id#runs/}
	echo "$id" | grep -qE "^[0-9]{8}-[0-9]{6}-[0-9a-f]{6}$"
	jq -e ".id == \"$id\" and (.created | test(\"^[0-9-]{10}T[0-9:]{8}Z$\"))" "runs/$id/meta.json"
'
t 'meta.json records the version, host, command and a sha256 of each data file' '
	printf "{\"text\":\"a\"}\n" > train.jsonl
	mk alpha 1 "{}" --data train.jsonl --command "llm-tune train --data train.jsonl"
	sum=$(sha256sum train.jsonl | cut -c1-64)
	jq -e ".data[0].sha256 == \"$sum\" and .data[0].bytes == 13 and .data[0].path == \"train.jsonl\"" runs/alpha/meta.json
	jq -e ".llmops_version == \"$(llm-tune --version | cut -d" " -f3)\" and (.hostname | length > 0)" runs/alpha/meta.json
	llm-tune runs show alpha --runs-dir runs > out; grep -q "^command  *llm-tune train --data train.jsonl" out
	grep -q "sha256:$(echo $sum | cut -c1-16)" out
'
t 'show gives the params, final and best metrics and a sparkline' '
	two; run llm-tune runs show alpha --runs-dir runs; expect_status 0
	grep -q "^status  *finished" out; grep -qE "^  lora\.r +8$" out
	grep -qE "^  val_loss +1\.4 +20 +1\.4 +20$" out; grep -qE "^  train_loss +1\.2 +20 +1\.2 +20$" out
	grep -q "^  train_loss  .*5\.0000 \.\. 1\.2000$" out
'
t 'a run is found by a unique prefix or by the path of its folder' '
	two; llm-tune runs show al --runs-dir runs | grep -q "^run  *alpha$"
	mv runs elsewhere; llm-tune runs show elsewhere/beta | grep -q "^run  *beta$"
	cd elsewhere/beta && llm-tune runs show . | grep -q "^run  *beta$"
'
t 'an exact id wins over a longer id it is a prefix of' '
	mk a 1 "{}"; mk ab 1 "{}"; llm-tune runs show a --runs-dir runs | grep -q "^run  *a$"
'
t 'an ambiguous prefix is a usage error listing the candidates' '
	mk run-1 1 "{}"; mk run-2 1 "{}"
	run llm-tune runs show run --runs-dir runs; expect_status 2
	expect_err "llm-tune: '\''run'\'' matches 2 runs: run-1, run-2"; expect_no_out
'
t 'an unknown run fails with 3 and names the runs directory' '
	two; run llm-tune runs show gamma --runs-dir runs; expect_status 3
	expect_err "llm-tune: no run '\''gamma'\'' in runs"
	run llm-tune runs show ./nowhere; expect_status 3; expect_err "./nowhere: not a run folder"
	run llm-tune runs compare alpha gamma --runs-dir runs; expect_status 3; expect_no_out
'
t 'show --json has the meta, the params and each metric final and best' '
	two; llm-tune runs show beta --runs-dir runs --json > j
	jq -e ".id == \"beta\" and .params.lr == 0.002 and .meta.status == \"finished\"" j
	jq -e ".metrics.val_loss.best == 0.7 and .metrics.val_loss.best_step == 20 and .metrics.lr.final == 0.001 and (.metrics.lr | has(\"best\") | not)" j
	jq -e ".skipped_lines == 0" j
'
t 'compare marks the params that differ and gives deltas from the first run' '
	two; run llm-tune runs compare alpha beta --runs-dir runs; expect_status 0
	head -1 out | grep -qE "^ +alpha +beta$"
	grep -qE "^\* +lr +0\.001 +0\.002$" out; grep -qE "^ +batch_size +8 +8$" out
	grep -qE "^\* +lora\.r +8 +16$" out
	grep -qE "^\* +val_loss +1\.4 @20 +0\.7 @20 \(-0\.7\)$" out
'
t 'compare --json has rows of values with differences and deltas' '
	two; llm-tune runs compare alpha beta --runs-dir runs --json > j
	jq -e "[.runs[].id] == [\"alpha\",\"beta\"]" j
	jq -e ".params[] | select(.name == \"lr\") | .differs and .values == [0.001, 0.002]" j
	jq -e ".params[] | select(.name == \"batch_size\") | .differs | not" j
	jq -e ".best[] | select(.name == \"val_loss\") | .values == [1.4, 0.7] and .delta[0] == null and (.delta[1] + 0.7 | fabs) < 1e-9" j
	jq -e "[.best[].name] == [\"train_loss\", \"val_loss\"]" j
'
t 'compare --svg writes a well-formed chart with a curve per run and loss' '
	two; mk gamma 2 "{}"; sed -i "/val_loss/d" runs/gamma/metrics.jsonl
	llm-tune runs compare alpha beta gamma --runs-dir runs --svg loss.svg > /dev/null
	if command -v xmllint > /dev/null; then xmllint --noout loss.svg; fi
	head -2 loss.svg | grep -q "^<svg xmlns=\"http://www.w3.org/2000/svg\""; tail -1 loss.svg | grep -qx "</svg>"
	[ "$(grep -c "<path class=\"train\"" loss.svg)" = 3 ]; [ "$(grep -c "<path class=\"val\"" loss.svg)" = 2 ]
	grep -q ">alpha</text>" loss.svg; grep -q ">validation loss</text>" loss.svg; grep -q ">step</text>" loss.svg
'
t 'compare --svg --x tokens puts the tokens on the x axis, evaluations at their step' '
	two; llm-tune runs compare alpha beta --runs-dir runs --svg t.svg --x tokens > /dev/null
	grep -q ">tokens</text>" t.svg; grep -q ">80k</text>" t.svg
	[ "$(grep -c "<path class=\"train\"" t.svg)" = 2 ]
	[ "$(grep -c "<path class=\"val\"" t.svg)" = 2 ]
'
t 'a torn last metrics line is skipped with a warning naming FILE:LINE' '
	two; printf "{\"step\":21,\"train_lo" >> runs/alpha/metrics.jsonl
	run llm-tune runs show alpha --runs-dir runs; expect_status 0
	expect_err "llm-tune: runs/alpha/metrics.jsonl:25: warning: torn last line"
	grep -qE "^  train_loss +1\.2 +20 " out
	run llm-tune runs list --runs-dir runs -q; expect_status 0; [ ! -s err ]
'
t 'a resumed run replaces the steps it logs again, and its torn line is cut first' '
	curve 10 1 | "$make_run" runs --name r --status interrupted > /dev/null
	printf "{\"step\":11,\"tr" >> runs/r/metrics.jsonl
	awk "BEGIN { for (i = 6; i <= 8; i++) printf \"{\\\"step\\\":%d,\\\"train_loss\\\":0.5}\\n\", i }" |
		"$make_run" runs --resume r > /dev/null
	run llm-tune runs show r --runs-dir runs --json; expect_status 0; [ ! -s err ]
	jq -e ".steps == 8 and .train_loss == 0.5 and .status == \"finished\" and .best_step == 5" out
	! grep -q "\"step\":11" runs/r/metrics.jsonl; jq -c . runs/r/metrics.jsonl > /dev/null
'
t 'a malformed params.json fails show with 1 naming the file; list lists the others' '
	two; printf "{\"lr\": 0.1,\n" > runs/beta/params.json
	run llm-tune runs show beta --runs-dir runs; expect_status 1
	expect_err "llm-tune: runs/beta/params.json:"; expect_err "invalid JSON"; expect_no_out
	run llm-tune runs list --runs-dir runs; expect_status 1
	expect_err "runs/beta/params.json"; grep -q "^alpha " out; ! grep -q "^beta " out
	echo "[1]" > runs/beta/params.json
	run llm-tune runs show beta --runs-dir runs; expect_status 1; expect_err "params.json: not a JSON object"
'
t 'a folder without meta.json is not a run' '
	two; mkdir runs/junk; llm-tune runs list --runs-dir runs --json | jq -e "length == 2"
'
t 'runs needs a known sub-verb, and its options belong to their sub-verbs' '
	run llm-tune runs; expect_status 2; expect_err "a sub-verb is needed"
	run llm-tune runs frob; expect_status 2; expect_err "unknown sub-verb '\''frob'\''"
	run llm-tune runs list --svg x.svg; expect_status 2; expect_err "--svg and --x are options of"
	run llm-tune runs show a --sort val_loss; expect_status 2
	run llm-tune runs compare alpha; expect_status 2; expect_err "two runs or more"
	run llm-tune runs show; expect_status 2
	run llm-tune runs list --sort size; expect_status 2; expect_err "created|id|val_loss"
'
t 'llm-tune --help lists runs, and runs --help lists its options' '
	run llm-tune --help; expect_status 0; grep -q "^  runs " out
	llm-tune runs --help > h; for o in runs-dir json sort svg x; do grep -q -- "--$o" h; done
	llm-tune --version | grep -qE "^llm-tune \(llmops\) [0-9]+\.[0-9]+\.[0-9]+$"
'
t 'a write error on the chart fails with 3' '
	two; run llm-tune runs compare alpha beta --runs-dir runs --svg nodir/x.svg; expect_status 3
	expect_err "nodir/x.svg"
'
done_testing
