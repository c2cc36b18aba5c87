# TAP helpers for the command-line tests.  Each test script sources this, calls `t NAME BODY`
# once per behaviour, and ends with `done_testing`.  A body runs in a subshell with `set -e`
# inside a fresh scratch directory; `run` records a command's status, stdout and stderr.
set -u
test_count=0
scratch=$(mktemp -d "${TMPDIR:-/tmp}/llmops-test.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
data=$top_srcdir/tests/data
# The shipped vocabularies, from the source tree (not a copy installed earlier).
LLMOPS_TOKENIZER_DIR=$top_srcdir/data/tokenizers
export LLMOPS_TOKENIZER_DIR

t() {
	test_count=$((test_count + 1))
	dir=$scratch/$test_count
	mkdir -p "$dir"
	# Not in an `if` condition: the shell ignores set -e there, and every command of the
	# body must count, not only the last.
	(cd "$dir" || exit 1; set -e; eval "$2") >"$scratch/log" 2>&1
	if [ $? = 0 ]; then
		echo "ok $test_count - $1"
	else
		echo "not ok $test_count - $1"
		sed 's/^/# /' "$scratch/log" | head -n 40
	fi
}

done_testing() {
	echo "1..$test_count"
}

# run CMD...: status in $status, stdout in ./out, stderr in ./err; never fails itself.
run() {
	set +e
	"$@" >out 2>err
	status=$?
	set -e
	return 0
}

# The command's exit status must be $1.
expect_status() {
	if [ "$status" != "$1" ]; then
		echo "expected status $1, got $status"
		echo "--- stderr:"; cat err
		return 1
	fi
}

# stderr must contain the fixed string $1.
expect_err() {
	grep -qF -- "$1" err || { echo "stderr lacks: $1"; echo "--- stderr:"; cat err; return 1; }
}

# stdout must equal the file $1.
expect_out_file() {
	cmp -s out "$1" || { echo "stdout differs from $1:"; diff "$1" out | head -20; return 1; }
}

# stdout must be exactly the text $1 (a trailing newline added).
expect_out() {
	printf '%s\n' "$1" > expected.txt
	expect_out_file expected.txt
}

# Nothing on stdout; stderr must not mention the sanitizers.
expect_no_out() {
	[ ! -s out ] || { echo "unexpected stdout:"; head -5 out; return 1; }
}

no_sanitizer_report() {
	! grep -qE 'AddressSanitizer|runtime error:|LeakSanitizer' err
}

# Number of lines of file $1.
lines() {
	wc -l < "$1" | tr -d ' '
}
