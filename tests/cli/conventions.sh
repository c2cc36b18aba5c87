#!/bin/sh
# The conventions every program keeps (DESIGN.md section 6): help, version, usage errors,
# environment variables, quiet pipes, stdout errors.
. "$top_srcdir/tests/cli/lib.sh"

t 'llm-prep --help lists every verb and exits 0' '
	run llm-prep --help; expect_status 0
	for v in validate stats head sample shard; do grep -q "^  $v " out; done
'
t 'llm-prep --version prints the package version' '
	run llm-prep --version; expect_status 0
	grep -qE "^llm-prep \(llmops\) [0-9]+\.[0-9]+\.[0-9]+$" out
'
t 'every verb has --help on stdout with exit 0 and lists its options' '
	for v in validate stats head sample shard; do
		run llm-prep $v --help; expect_status 0
		grep -q "^usage: llm-prep $v" out
		for o in $(llm-prep $v --completion-helper); do grep -qe "$o" out; done
	done
'
t 'llm-prep help VERB is the same as VERB --help' '
	llm-prep help head > a; llm-prep head --help > b; cmp a b
'
t 'no verb is a usage error (2)' '
	run llm-prep; expect_status 2; expect_err "llm-prep: a verb is needed"
'
t 'an unknown verb is a usage error (2)' '
	run llm-prep frobnicate; expect_status 2; expect_err "unknown verb '\''frobnicate'\''"
'
t 'an unknown option is a usage error naming it' '
	run llm-prep head --frob; expect_status 2; expect_err "unknown option '\''--frob'\''"
	expect_no_out
'
t 'a malformed number is a usage error naming the option' '
	run llm-prep head -n ten; expect_status 2; expect_err "--records: not an integer"
'
t 'a bad choice is a usage error listing the choices' '
	run llm-prep head --on-error=maybe; expect_status 2; expect_err "fail|skip|keep"
'
t 'an option missing its argument is a usage error' '
	run llm-prep head -n; expect_status 2; expect_err "needs an argument"
'
t 'options may come after operands and -- ends options' '
	cp "$data/good.jsonl" ./-n
	llm-prep head "$data/good.jsonl" -n 1 > a; [ "$(lines a)" = 1 ]
	llm-prep head -n 2 -- -n > b; [ "$(lines b)" = 2 ]
'
t 'LLMOPS_PREP_<OPTION> sets an option; the command line wins' '
	LLMOPS_PREP_RECORDS=2 llm-prep head "$data/good.jsonl" > a; [ "$(lines a)" = 2 ]
	LLMOPS_PREP_RECORDS=2 llm-prep head -n 3 "$data/good.jsonl" > b; [ "$(lines b)" = 3 ]
'
t 'a bad value in the environment names the variable' '
	LLMOPS_PREP_RECORDS=x run llm-prep head "$data/good.jsonl"; expect_status 2
	expect_err "LLMOPS_PREP_RECORDS: not an integer"
'
t 'flags from the environment take 1/0/true/false' '
	LLMOPS_PREP_QUIET=maybe run llm-prep head "$data/good.jsonl"; expect_status 2
	LLMOPS_PREP_QUIET=true run llm-prep head "$data/good.jsonl"; expect_status 0
'
t 'head -1 on a closed pipe ends quietly with 0 or 141' '
	yes "{\"text\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\"}" | head -n 200000 > big.jsonl
	( set +e; llm-prep head -n 1000000 big.jsonl 2>err; echo $? > st ) | head -n 1 > first
	st=$(cat st); [ "$st" = 0 ] || [ "$st" = 141 ]
	[ ! -s err ] || { cat err; false; }
	[ "$(lines first)" = 1 ]
'
t 'a write error on stdout (full disk) fails with 3 and says so' '
	run sh -c "llm-prep head -n 5 \"$data/good.jsonl\" > /dev/full"
	expect_status 3; expect_err "llm-prep: write error on standard output: No space left on device"
'
t 'a quiet pipe: nothing on stderr when all is well and stderr is not a terminal' '
	yes "{\"text\":\"abc\"}" | head -n 100000 | llm-prep head -n 100000 > /dev/null 2> err
	[ ! -s err ]
'
t 'progress shows on a terminal, and never with --quiet' '
	command -v script >/dev/null || { echo "script(1) missing"; false; }
	yes "{\"text\":\"abcdefghijklmnopqrstuvwxyz\"}" | head -n 3000000 > big.jsonl
	script -qec "llm-prep stats --no-table big.jsonl" /dev/null > tty.txt
	grep -q "records" tty.txt
	script -qec "llm-prep stats --no-table --quiet big.jsonl" /dev/null > tty2.txt
	! grep -q "records," tty2.txt
'
t 'NO_COLOR keeps escape codes out even on a terminal' '
	yes "{\"text\":\"abcdefghijklmnopqrstuvwxyz\"}" | head -n 3000000 > big.jsonl
	NO_COLOR=1 script -qec "llm-prep stats big.jsonl" /dev/null > tty.txt
	! grep -q "$(printf "\033")\[" tty.txt
	script -qec "llm-prep stats big.jsonl" /dev/null > tty2.txt
	grep -q "$(printf "\033")\[" tty2.txt
'
t 'a program that multiplies no matrix starts no BLAS threads (OpenBLAS is opened by the engine)' '
	# Linked, OpenBLAS would start a spinning thread per core in every program at load.
	printf "{\"output\":\"a b c\",\"reference\":\"a b c\"}\n" > one.jsonl
	LD_DEBUG=libs llm-eval -q one.jsonl > /dev/null 2> ld.txt
	grep -q "libjansson" ld.txt
	! grep -q "libopenblas" ld.txt
'
done_testing
