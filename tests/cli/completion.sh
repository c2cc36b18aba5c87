#!/bin/sh
# Bash completion (data/completion/llmops.bash), for every program built in cmd/ and every verb
# of each: what TAB offers is checked against what the programs say themselves (their verb and
# option lists from --completion-helper, the choices and usage lines of --help), the way bash
# calls it: COMP_WORDS and COMP_CWORD set, the function called, COMPREPLY read.
. "$top_srcdir/tests/cli/lib.sh"
script=$top_srcdir/data/completion/llmops.bash

if ! command -v bash >/dev/null; then
	echo "ok 1 - # SKIP bash is not installed"
	echo "1..1"
	exit 0
fi

# The programs are whatever the build made, so a new one is covered without editing this.
programs=
for f in "$top_builddir"/cmd/llm-*; do
	case ${f##*/} in *.*) continue ;; esac
	[ -f "$f" ] && [ -x "$f" ] && programs="$programs ${f##*/}"
done

# comp WORD...: the completions bash would offer with the cursor at the end of the last word,
# sorted, one per line.  Anything the function writes to stderr fails the test.
cat > "$scratch/comp.bash" <<'EOF'
. "$LLMOPS_COMPLETION"
comp() {
	COMP_WORDS=("$@")
	COMP_CWORD=$(($# - 1))
	COMP_LINE="$*"
	COMP_POINT=${#COMP_LINE}
	COMPREPLY=()
	_llmops 2>"$LLMOPS_COMP_ERR" || { echo "_llmops failed"; return 1; }
	[ ! -s "$LLMOPS_COMP_ERR" ] || { cat "$LLMOPS_COMP_ERR"; return 1; }
	((${#COMPREPLY[@]})) && printf '%s\n' "${COMPREPLY[@]}" | LC_ALL=C sort -u
	return 0
}
# same NAME WANT GOT: the two lists must be equal.
same() {
	[ "$2" = "$3" ] && return 0
	echo "$1: expected:"; printf '%s\n' "$2" | sed 's/^/  /'
	echo "got:"; printf '%s\n' "$3" | sed 's/^/  /'
	return 1
}
sorted() { "$@" | LC_ALL=C sort -u; }
EOF
LLMOPS_COMPLETION=$script
LLMOPS_COMP_ERR=$scratch/comp-err
export LLMOPS_COMPLETION LLMOPS_COMP_ERR
cb=$scratch/comp.bash

t 'the script is valid bash and completes every program built in cmd/' '
	bash -n "$script"
	[ -n "$programs" ]
	for p in $programs; do
		bash -c ". \"\$1\"; complete -p $p" _ "$script" > spec
		grep -q -- "-F _llmops $p\$" spec || { echo "$p has no completion"; cat spec; false; }
	done
'

t 'after each program: its verbs, or its options after a dash when it has none' '
	for p in $programs; do
		bash -c ". \"$cb\"
			top=\$($p --completion-helper)
			case \$top in
			-*) same \"$p --\" \"\$(sorted $p --completion-helper)\" \"\$(comp $p --)\" ;;
			*) same \"$p\" \"\$(sorted $p --completion-helper)\" \"\$(comp $p \"\")\"
			   same \"$p --\" \"\$(printf \"%s\n\" --help --version)\" \"\$(comp $p --)\" ;;
			esac" || exit 1
	done
'

t 'after every verb of every program: exactly the options the verb lists' '
	n=0
	for p in $programs; do
		top=$($p --completion-helper)
		case $top in -*) verbs="-" ;; *) verbs=$top ;; esac
		for v in $verbs; do
			[ "$v" = - ] && v=
			bash -c ". \"$cb\"
				same \"$p $v --\" \"\$(sorted $p $v --completion-helper)\" \"\$(comp $p $v --)\"
				same \"$p $v --qui\" \"--quiet\" \"\$(comp $p $v --qui)\"" || exit 1
			n=$((n + 1))
		done
	done
	[ "$n" -ge 7 ]
'

t 'nested verbs: the words a verb takes first are offered, each followed by its options' '
	# PROGRAM VERB: WORDS, as the man pages and --help write them.
	cat > nested <<-EOF
	llm-gen batch: export import
	llm-prep tokenizer: train
	llm-tune runs: compare list show
	llm-pack alias: list rm set
	llm-monitor feedback: add import join
	EOF
	mkdir empty && cd empty
	while IFS=: read -r pv words; do
		set -- $pv; p=$1; v=$2
		echo " $programs " | grep -q " $p " || continue
		bash -c ". \"$cb\"
			same \"$pv\" \"\$(printf \"%s\n\" $words)\" \"\$(comp $p $v \"\")\"
			for w in $words; do
				same \"$pv \$w --\" \"\$(sorted $p $v \$w --completion-helper)\" \
					\"\$(comp $p $v \$w --)\"
				# After the word: files, not the words again.
				[ -z \"\$(comp $p $v \$w \"\")\" ] || { echo \"$pv \$w offers words again\"; exit 1; }
			done" || exit 1
	done < ../nested
'

t 'whatever a verb offers as its first word is in its usage line' '
	# In an empty folder, where file completion offers nothing.
	mkdir empty && cd empty
	n=0
	for p in $programs; do
		top=$($p --completion-helper)
		case $top in -*) verbs="-" ;; *) verbs=$top ;; esac
		for v in $verbs; do
			[ "$v" = - ] && v=
			bash -c ". \"$cb\"; comp $p $v \"\"" > ../words || { cat ../words; exit 1; }
			# The usage line and the lines that go on from it (llm-gen batch ...).
			$p $v --help | awk "NR == 1 || (go && /^ /) { print; go = 1; next } { exit }" > ../usage
			for w in $(cat ../words); do
				grep -qE "(^| |\\|)$w( |\\||\$)" ../usage ||
					{ echo "$p $v offers $w, not in its usage:"; cat ../usage; exit 1; }
				n=$((n + 1))
			done
		done
	done
	# tokenizer train, runs list|show|compare, alias set|rm|list, llm-gen batch at least.
	[ "$n" -ge 8 ]
'

t 'the values of every choice option of every verb, as its --help lists them' '
	n=0
	for p in $programs; do
		top=$($p --completion-helper)
		case $top in -*) verbs="-" ;; *) verbs=$top ;; esac
		for v in $verbs; do
			[ "$v" = - ] && v=
			# "      --on-error MODE    what to do (fail|skip|keep) [default: fail]"
			$p $v --help | sed -nE "s/^ +(-., )?(--[a-z0-9-]+) [A-Z][A-Z0-9=_-]* .*\\(([a-z0-9+|_.-]+\\|[a-z0-9+|_.-]+)\\).*/\\2 \\3/p" > choices
			while read -r o list; do
				want=$(echo "$list" | tr "|" "\\n" | LC_ALL=C sort -u)
				first=$(echo "$list" | cut -d"|" -f1)
				bash -c ". \"$cb\"
					same \"$p $v $o\" \"$want\" \"\$(comp $p $v $o \"\")\"
					# bash splits --opt=value at the =, and replaces only the value.
					comp $p $v $o = \"$first\" | grep -qx -- \"$first\" ||
						{ echo \"$p $v $o=$first\"; exit 1; }
					comp $p $v $o=\"$first\" | grep -qx -- \"$o=$first\" ||
						{ echo \"$p $v $o=$first as one word\"; exit 1; }" || exit 1
				n=$((n + 1))
			done < choices
		done
	done
	echo "$n choice options"
	[ "$n" -ge 10 ]
'

t '--on-error offers fail, skip and keep wherever a verb has it' '
	run llm-prep clean --completion-helper; grep -qx -- --on-error out
	bash -c ". \"$cb\"
		same on-error \"\$(printf \"%s\n\" fail keep skip)\" \"\$(comp llm-prep clean --on-error \"\")\"
		same on-error-s skip \"\$(comp llm-prep clean --on-error s)\"
		same on-error-eq skip \"\$(comp llm-prep clean --on-error = s)\""
'

t 'files for file operands and options, folders for folder options, nothing for numbers' '
	mkdir sub data.d
	: > a.jsonl; : > b.jsonl; : > report.json
	bash -c ". \"$cb\"
		same operand \"\$(printf \"%s\n\" a.jsonl)\" \"\$(comp llm-prep clean a)\"
		same operands \"\$(printf \"%s\n\" a.jsonl b.jsonl)\" \"\$(comp llm-prep clean a.jsonl -q \"\" | grep jsonl)\"
		same report \"report.json\" \"\$(comp llm-prep clean --report r)\"
		same dir \"\$(printf \"%s\n\" data.d sub)\" \"\$(comp llm-tune init --out \"\")\"
		same number \"\" \"\$(comp llm-prep head -n \"\")\"
		same after-dashdash \"\" \"\$(comp llm-prep clean -- --on)\""
'

t 'an option'"'"'s argument is not taken for a verb, and - is an operand' '
	bash -c ". \"$cb\"
		same subverb-after-value \"\$(printf \"%s\n\" compare list show)\" \
			\"\$(comp llm-tune runs --runs-dir list \"\")\"
		same subverb-after-short \"train\" \"\$(comp llm-prep tokenizer -o x tr)\"
		same after-stdin \"\" \"\$(comp llm-tune runs - \"\")\"
		same help-verb \"\$(printf \"%s\n\" split)\" \"\$(comp llm-prep help spl)\""
'

t 'a program named by its path completes the same; an unknown one offers nothing, quietly' '
	bash -c ". \"$cb\"
		same by-path \"\$(comp llm-prep to)\" \"\$(comp \"$top_builddir/cmd/llm-prep\" to)\"
		same missing \"\" \"\$(comp ./no-such-llm-prep to)\"
		same unknown-verb \"\" \"\$(comp llm-prep frobnicate --x)\""
'

done_testing
