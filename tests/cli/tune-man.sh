#!/bin/sh
# llm-tune's man pages: lint clean, and in agreement with --help (every verb, every option).
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'the llm-tune pages pass mandoc -T lint' '
	for p in "$man"/llm-tune.1 "$man"/llm-tune-*.1; do
		"${MANDOC:-mandoc}" -T lint -W warning "$p" > lint.txt 2>&1 || true
		grep -v "STYLE:" lint.txt > real.txt || true
		[ ! -s real.txt ] || { cat real.txt; false; }
	done
'
t 'llm-tune(1) lists every verb and each has its own page' '
	for v in $(llm-tune --completion-helper); do
		grep -q "^\*$v\*" "$man/llm-tune.1.scd" || { echo "verb $v not in llm-tune(1)"; false; }
		[ -f "$man/llm-tune-$v.1" ] || { echo "no llm-tune-$v(1)"; false; }
	done
'
t 'every option of every verb is documented in its page or with the common options' '
	for v in $(llm-tune --completion-helper); do
		for o in $(llm-tune $v --completion-helper); do
			grep -qe "\*$o\*" "$man/llm-tune-$v.1.scd" "$man/llm-tune.1.scd" ||
				{ echo "$v $o undocumented"; false; }
		done
	done
'
t 'every llm-tune page lists the exit statuses' '
	for p in "$man"/llm-tune.1.scd "$man"/llm-tune-*.1.scd; do
		for s in 0 1 2 3; do grep -q "^\*$s\*" "$p" || { echo "$p lacks status $s"; false; }; done
	done
'
t 'every llm-tune page is installed and up to date with its source' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	for src in "$man"/llm-tune.1.scd "$man"/llm-tune-*.1.scd; do
		page=$(basename "${src%.scd}")
		grep -q "man/$page" "$top_srcdir/mk/tune.am" || { echo "$page not in mk/tune.am"; false; }
		scdoc < "$src" | awk -f "$man/tidy.awk" > page
		cmp -s page "${src%.scd}" || { echo "${src%.scd} is stale"; false; }
	done
'
done_testing
