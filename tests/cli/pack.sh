#!/bin/sh
# llm-prep pack: exact layouts for greedy and first-fit decreasing, the segment file, the
# end-of-text token, the report, bad token files and exit statuses.  Token files are made here
# with perl (Debian's perl-base): llm.c's header, 16-bit tokens, and the LLMOPSIX index.
. "$top_srcdir/tests/cli/lib.sh"

# mktok FILE DOC...: each DOC a space-separated list of ids ("" for an empty document).
mktok() {
	perl -e '
		my $f = shift; my @toks; my @off = (0);
		for my $d (@ARGV) { push @toks, grep { length } split / /, $d; push @off, scalar @toks; }
		open my $o, ">", $f or die; binmode $o;
		print $o pack("V256", 20240520, 1, scalar @toks, (0) x 253), pack("v*", @toks);
		close $o;
		open my $i, ">", "$f.idx" or die; binmode $i;
		print $i "LLMOPSIX", pack("VVQ<", 1, 0, scalar @ARGV), pack("Q<*", @off);
		close $i;' "$@"
}
# toks FILE: the 16-bit values after the 1024-byte header, on one line.
toks() { od -An -v -t u2 -j 1024 "$1" | tr -s " \n" "  " | sed "s/^ //; s/ $//"; }
# offs FILE: the document offsets of FILE.idx.
offs() { od -An -v -t u8 -j 24 "$1.idx" | tr -s " \n" "  " | sed "s/^ //; s/ $//"; }
docs() { mktok in.bin "1 2 3" "4 5" "6 7 8 9 10" "" "11"; }

t 'greedy keeps the order, pads, and splits a long document' '
	docs; llm-prep pack -q --seq-len 4 -o out.bin in.bin
	[ "$(toks out.bin)" = "1 2 3 0 4 5 0 0 6 7 8 9 10 11 0 0" ]
	[ "$(toks out.bin.seg)" = "1 1 1 0 1 1 0 0 1 1 1 1 1 2 0 0" ]
	[ "$(offs out.bin)" = "0 4 8 12 16" ] && [ "$(offs out.bin.seg)" = "0 4 8 12 16" ]
'
t 'ffd puts the longest first and fills the first sequence with room' '
	docs; llm-prep pack -q -L 4 --strategy ffd -o out.bin in.bin
	[ "$(toks out.bin)" = "6 7 8 9 1 2 3 10 4 5 11 0" ]
	[ "$(toks out.bin.seg)" = "1 1 1 1 1 1 1 2 1 1 2 0" ]
'
t '--eot-id follows each document inside its segment; --pad-id fills' '
	docs; llm-prep pack -q -L 4 --eot-id 99 --pad-id 7 -o out.bin in.bin
	[ "$(toks out.bin)" = "1 2 3 99 4 5 99 7 6 7 8 9 10 99 11 99" ]
	[ "$(toks out.bin.seg)" = "1 1 1 1 1 1 1 0 1 1 1 1 1 1 2 2" ]
'
t 'the output is an llm.c token file: magic, version 1, token count' '
	docs; llm-prep pack -q -L 4 -o out.bin in.bin
	[ "$(od -An -t u4 -N 12 out.bin | tr -s " " " " | sed "s/^ //")" = "20240520 1 16" ]
	[ "$(head -c 8 out.bin.idx)" = LLMOPSIX ]
'
t '--report gives sequences, padding and the split and empty documents' '
	docs; llm-prep pack -q -L 4 --report rep.json -o out.bin in.bin
	jq -e ".sequences == 4 and .padding == 5 and .tokens == 11 and .split == 1 and .pieces == 5 and .read == 5 and .written == 4 and .dropped == 1 and .read == .written + .dropped and .padding_fraction == 0.3125 and .efficiency == 0.6875 and .strategy == \"greedy\" and .seq_len == 4" rep.json
'
t 'a summary goes to stderr unless --quiet' '
	docs; run llm-prep pack -L 4 -o out.bin in.bin; expect_status 0; expect_no_out
	expect_err "llm-prep: pack: 5 documents into 4 sequences of 4 tokens, 31.25% padding, 1 split, 1 empty"
	run llm-prep pack -q -L 4 -o out.bin in.bin; [ ! -s err ]
'
t 'packing is deterministic' '
	mktok in.bin "1 2 3 4 5 6 7" "8" "9 10" "11 12 13" "14" "15 16 17 18 19" "20 21"
	llm-prep pack -q -L 5 --strategy ffd -o a.bin in.bin; llm-prep pack -q -L 5 --strategy ffd -o b.bin in.bin
	cmp a.bin b.bin && cmp a.bin.seg b.bin.seg && cmp a.bin.idx b.bin.idx
'
t 'not a token file fails with 1 and names it' '
	printf "hello\n" > bad.bin
	run llm-prep pack -o out.bin bad.bin; expect_status 1; expect_err "bad.bin: not a token file"
	[ ! -e out.bin ] && [ ! -e out.bin.seg ]
'
t 'a truncated token file fails with 1' '
	docs; head -c 1030 in.bin > cut.bin; cp in.bin.idx cut.bin.idx
	run llm-prep pack -o out.bin cut.bin; expect_status 1; expect_err "cut.bin: truncated"
	[ ! -e out.bin ]
'
t 'an index that does not match fails with 1' '
	docs; mktok other.bin "1 2"; cp other.bin.idx in.bin.idx
	run llm-prep pack -o out.bin in.bin; expect_status 1; expect_err "in.bin.idx: not a valid index"
'
t 'a missing input or output directory fails with 3' '
	run llm-prep pack -o out.bin nosuch.bin; expect_status 3; expect_err "nosuch.bin"
	docs; run llm-prep pack -o nodir/out.bin in.bin; expect_status 3; [ -z "$(ls nodir 2>/dev/null)" ]
'
t 'usage errors: no --out, not one operand, stdin, a zero length' '
	docs
	run llm-prep pack in.bin; expect_status 2; expect_err "--out"
	run llm-prep pack -o out.bin; expect_status 2
	run llm-prep pack -o out.bin in.bin in.bin; expect_status 2
	run llm-prep pack -o out.bin -; expect_status 2
	run llm-prep pack -o out.bin -L 0 in.bin; expect_status 2
	run llm-prep pack -o out.bin --strategy best in.bin; expect_status 2; expect_err "greedy|ffd"
'
done_testing
