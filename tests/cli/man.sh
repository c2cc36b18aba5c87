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
t 'llm-prep(1) lists every verb and each has its own page' '
	for v in $(llm-prep --completion-helper); do
		grep -q "^\*$v\*" "$man/llm-prep.1.scd" || { echo "verb $v not in llm-prep(1)"; false; }
		[ -f "$man/llm-prep-$v.1" ] || { echo "no llm-prep-$v(1)"; false; }
	done
'
t 'every option of every verb is documented in its page or with the common options' '
	for v in $(llm-prep --completion-helper); do
		for o in $(llm-prep $v --completion-helper); do
			grep -qe "\*$o\*" "$man/llm-prep-$v.1.scd" "$man/llm-prep.1.scd" ||
				{ echo "$v $o undocumented"; false; }
		done
	done
'
t 'every page of a program lists the exit statuses' '
	for p in "$man"/llm-*.1.scd; do
		for s in 0 1 2 3; do grep -q "^\*$s\*" "$p" || { echo "$p lacks status $s"; false; }; done
	done
'
t 'every man page is installed' '
	for p in "$man"/*.scd; do
		page=$(basename "${p%.scd}")
		grep -q "man/$page" "$top_srcdir/Makefile.am" "$top_srcdir"/mk/*.am ||
			{ echo "$page not in Makefile.am"; false; }
	done
'
t 'the generated pages are up to date with their sources' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	for src in "$man"/*.scd; do
		scdoc < "$src" | awk -f "$man/tidy.awk" > page; cmp -s page "${src%.scd}" || { echo "${src%.scd} is stale"; false; }
	done
'
done_testing
