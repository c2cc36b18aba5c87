#!/bin/sh
# llm-gen's man page: lint clean, up to date, and in agreement with --help (every option of the
# run and of batch export and import), with its exit statuses.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'llm-gen(1) passes mandoc -T lint' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-gen.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
'
t 'every option of llm-gen and of batch export and import is documented' '
	for o in $(llm-gen --completion-helper) $(llm-gen batch export --completion-helper) \
		$(llm-gen batch import --completion-helper); do
		grep -qe "\*$o\*" "$man/llm-gen.1.scd" || { echo "$o undocumented"; false; }
	done
'
t 'llm-gen(1) describes both batch verbs' '
	llm-gen batch --completion-helper > verbs
	[ "$(lines verbs)" = 2 ]
	while read -r v; do grep -q "^\*llm-gen $v\*" "$man/llm-gen.1.scd" || { echo "no $v"; false; }; done < verbs
'
t 'llm-gen(1) lists the exit statuses' '
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-gen.1.scd" || { echo "lacks status $s"; false; }; done
'
t 'llm-gen(1) is installed and up to date with its source' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	grep -q "man/llm-gen.1" "$top_srcdir/mk/gen.am"
	scdoc < "$man/llm-gen.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-gen.1" || { echo "llm-gen.1 is stale"; false; }
'
t 'llmops(7) names llm-gen(1)' '
	grep -q "llm-gen(1)" "$man/llmops.7.scd"
'
done_testing
