#!/bin/sh
# llm-serve's man page: lint clean, up to date, and in agreement with --help (every option, the
# routes the server has), with its exit statuses and signals.
. "$top_srcdir/tests/cli/lib.sh"
man=$top_srcdir/man

t 'llm-serve(1) passes mandoc -T lint' '
	"${MANDOC:-mandoc}" -T lint -W warning "$man/llm-serve.1" > lint.txt 2>&1 || true
	grep -v "STYLE:" lint.txt > real.txt || true
	[ ! -s real.txt ] || { cat real.txt; false; }
'
t 'every option of llm-serve is documented' '
	llm-serve --completion-helper > opts
	[ "$(lines opts)" -gt 30 ]
	for o in $(cat opts); do
		grep -qe "\*$o\*" "$man/llm-serve.1.scd" || { echo "$o undocumented"; false; }
	done
'
t 'every option the page documents exists' '
	llm-serve --completion-helper > opts
	grep -o "^\*\(-[a-z], \)\?--[a-z-]*\*" "$man/llm-serve.1.scd" | sed "s/.*\(--[a-z-]*\)\*/\1/" |
		sort -u > documented
	for o in $(cat documented); do grep -qx -- "$o" opts || { echo "$o is not an option"; false; }; done
'
t 'llm-serve(1) names every route that --help names' '
	llm-serve --help > help
	for r in /v1/chat/completions /v1/completions /v1/models /tokenize /detokenize \
		/v1/feedback /health /ready /metrics; do
		grep -qF "$r" help || { echo "--help lacks $r"; false; }
		grep -qF "*POST $r*" "$man/llm-serve.1.scd" || grep -qF "*GET $r*" "$man/llm-serve.1.scd" ||
			{ echo "the page has no entry for $r"; false; }
	done
'
t 'llm-serve(1) lists the exit statuses and the signals' '
	for s in 0 1 2 3; do grep -q "^\*$s\*" "$man/llm-serve.1.scd" || { echo "lacks status $s"; false; }; done
	for s in SIGTERM SIGHUP; do grep -q "^\*$s\*" "$man/llm-serve.1.scd" || { echo "lacks $s"; false; }; done
'
t 'llm-serve(1) names each metric the server exposes' '
	for m in $(grep -o "llmops_[a-z0-9_]*" "$top_srcdir/lib/serve/metrics.h" | sort -u); do
		grep -q "\*$m\*" "$man/llm-serve.1.scd" || { echo "$m undocumented"; false; }
	done
'
t 'llm-serve(1) is installed and up to date with its source' '
	command -v scdoc >/dev/null || { echo "scdoc missing"; false; }
	grep -q "man/llm-serve.1" "$top_srcdir/mk/serve.am"
	scdoc < "$man/llm-serve.1.scd" | awk -f "$man/tidy.awk" > page
	cmp -s page "$man/llm-serve.1" || { echo "llm-serve.1 is stale"; false; }
'
done_testing
