#!/bin/sh
# The man pages: lint clean, and in agreement with --help (every verb, every option).
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'the man pages pass mandoc -T lint' '
	for p in "$man"/*.[157]; do
		"${MANDOC:-mandoc}" -T lint -W warning "$p" > lint.txt 2>&1 || true
		grep -v "STYLE:" lint.txt > real.txt || true
		[ ! -s real.txt ] || { cat real.txt; false; }
	done
'
t 'llm-prep(1) documents every verb' '
	for v in $(llm-prep --completion-helper); do
		grep -q "^\*$v\*" "$man/llm-prep.1.scd" || { echo "verb $v undocumented"; false; }
	done
'
t 'llm-prep(1) documents every option of every verb' '
	for v in $(llm-prep --completion-helper); do
		for o in $(llm-prep $v --completion-helper); do
			grep -qe "\*$o\*" "$man/llm-prep.1.scd" || { echo "$v $o undocumented"; false; }
		done
	done
'
t 'llm-prep(1) lists the exit statuses' '
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-prep.1.scd"; done
'
t 'the generated pages are up to date with their sources' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	for src in "$man"/*.scd; do
		scdoc < "$src" > page; cmp -s page "${src%.scd}" || { echo "${src%.scd} is stale"; false; }
	done
'
done_testing
