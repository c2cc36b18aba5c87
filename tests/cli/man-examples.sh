#!/bin/sh
# Every example of every man page, run as written in a scratch folder with the files a reader
# would have (tests/cli/man-examples.py says which, and how a page marks an example that cannot
# run here); every page has EXAMPLES and, for a program, EXIT STATUS; every option of every
# program and verb is in its page.
. "$top_srcdir/tests/cli/lib.sh"
export scratch
for tool in scdoc "${MANDOC:-mandoc}" /usr/bin/python3 curl jq; do
	command -v "$tool" >/dev/null 2>&1 || { echo "1..0 # SKIP $tool is missing"; exit 0; }
done
/usr/bin/python3 "$top_srcdir/tests/cli/man-examples.py"
