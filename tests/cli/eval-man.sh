#!/bin/sh
# llm-eval's man page: lint clean, up to date, in agreement with --help (every option, every
# metric), with its exit statuses; and llmops(7) names it.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'llm-eval(1) passes mandoc -T lint' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-eval.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
'
t 'every option of llm-eval is in --help and documented in llm-eval(1)' '
	llm-eval --help > help
	for o in $(llm-eval --completion-helper); do
		grep -qe "$o " help || { echo "$o not in --help"; false; }
		grep -qe "\*$o\*" "$man/llm-eval.1.scd" || { echo "$o undocumented"; false; }
	done
	[ "$(llm-eval --completion-helper | wc -l)" -gt 60 ]
'
t 'every metric that --metrics takes is documented, and an unknown one is refused' '
	llm-eval --help > help
	for m in bleu chrf chrf++ ter rouge1 rougeL rougeLsum exact f1 contains regex json \
		json-schema pass@k perplexity bpb judge judge_pass; do
		grep -qF "*$m*" "$man/llm-eval.1.scd" || { echo "$m undocumented"; false; }
		case $m in bpb|judge_pass) ;; *) grep -qF " $m," help || grep -qF " $m " help ||
			{ echo "$m not in --help"; false; } ;; esac
	done
	run llm-eval -m frobnicate; expect_status 2; expect_err "unknown metric"
'
t 'llm-eval(1) lists the exit statuses' '
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-eval.1.scd" || { echo "lacks status $s"; false; }; done
'
t 'llm-eval(1) is installed and up to date with its source' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	grep -q "man/llm-eval.1" "$top_srcdir/mk/eval.am"
	scdoc < "$man/llm-eval.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-eval.1" || { echo "llm-eval.1 is stale"; false; }
'
t 'llmops(7) names llm-eval(1)' '
	grep -q "llm-eval(1)" "$man/llmops.7.scd"
'
t 'llm-eval --help and --version go to stdout with 0; a usage error says where to look' '
	run llm-eval --help; expect_status 0; grep -q "^usage: llm-eval \[OPTIONS\] \[FILE...\]" out
	run llm-eval --version; expect_status 0; grep -qE "^llm-eval \(llmops\) [0-9]+\.[0-9]+\.[0-9]+$" out
	run llm-eval --frob; expect_status 2; expect_err "unknown option"; expect_err "Try '\''llm-eval --help'\''."
	LLMOPS_EVAL_METRICS=exact llm-eval < "$data/empty.jsonl" > /dev/null 2> err || true
	grep -q "no records were scored" err
'
done_testing
