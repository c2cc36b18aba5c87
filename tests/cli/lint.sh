#!/bin/sh
# The house rules of scripts/lint hold for the whole tree.
. "$top_srcdir/tests/cli/lib.sh"

t 'no banned string functions, and the library neither prints nor exits' '
	"$top_srcdir/scripts/lint"
'
done_testing
