#!/bin/sh
# llm-monitor as a program: its verbs, --help and --version, usage errors, the input every verb
# shares (field mapping, gzip, bad records by --on-error), and its overview page.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'llm-monitor --help lists every verb, --version prints the version' '
	llm-monitor --help > help
	for v in summarize drift scan check alert feedback curate; do
		grep -q "^  $v " help || { echo "$v not listed"; false; }
		grep -qF "*$v*" "$man/llm-monitor.1.scd" || { echo "$v not in llm-monitor(1)"; false; }
	done
	llm-monitor --version | grep -q "^llm-monitor "
'
t 'an unknown verb or option is a usage error' '
	run llm-monitor frobnicate; expect_status 2
	run llm-monitor summarize --frobnicate; expect_status 2
'
t 'llm-monitor(1) passes mandoc -T lint and names every field option of the verbs' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-monitor.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
	for o in $(llm-monitor summarize --completion-helper | grep -- "-field\$"); do
		grep -qe "\*$o\*" "$man/llm-monitor.1.scd" || { echo "$o undocumented"; false; }
	done
'
done_testing
