#!/bin/sh
# llm-pack's man pages: lint clean, and in agreement with --help (every verb the table has,
# every option), llmops-manifest(5) included.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'the llm-pack pages and llmops-manifest(5) pass mandoc -T lint' '
	for p in "$man"/llm-pack.1 "$man"/llm-pack-*.1 "$man"/llmops-manifest.5; do
		"${MANDOC:-mandoc}" -T lint -W warning "$p" > lint.txt 2>&1 || true
		grep -v "STYLE:" lint.txt > real.txt || true
		[ ! -s real.txt ] || { cat real.txt; false; }
	done
'
t 'llm-pack(1) lists every verb and each has its own page' '
	for v in $(llm-pack --completion-helper); do
		grep -q "^\*$v\*" "$man/llm-pack.1.scd" || { echo "verb $v not in llm-pack(1)"; false; }
		[ -f "$man/llm-pack-$v.1" ] || { echo "no llm-pack-$v(1)"; false; }
	done
'
t 'every option of every verb is documented in its page or with the common options' '
	for v in $(llm-pack --completion-helper); do
		for o in $(llm-pack $v --completion-helper); do
			grep -qe "\*$o\*" "$man/llm-pack-$v.1.scd" "$man/llm-pack.1.scd" ||
				{ echo "$v $o undocumented"; false; }
		done
	done
'
t 'every llm-pack page lists the exit statuses' '
	for p in "$man"/llm-pack.1.scd "$man"/llm-pack-*.1.scd; do
		for s in 0 1 2 3; do grep -q "^\*$s\*" "$p" || { echo "$p lacks status $s"; false; }; done
	done
'
t 'every llm-pack page is installed and up to date with its source' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	for src in "$man"/llm-pack.1.scd "$man"/llm-pack-*.1.scd "$man"/llmops-manifest.5.scd; do
		page=$(basename "${src%.scd}")
		cat "$top_srcdir"/mk/pack*.am | grep -q "man/$page" || { echo "$page not in mk/pack*.am"; false; }
		scdoc < "$src" | awk -f "$man/tidy.awk" > page
		cmp -s page "${src%.scd}" || { echo "${src%.scd} is stale"; false; }
	done
'
t 'llmops-manifest(5) documents every manifest field and the signature file' '
	for f in format name version created files path size sha256 executable parent base_model \
		datasets params run metrics licence tags alg digest key_id sig; do
		grep -q "\*$f\*" "$man/llmops-manifest.5.scd" || { echo "$f undocumented"; false; }
	done
	grep -q "llmops-artifact-v1" "$man/llmops-manifest.5.scd"
'
done_testing
