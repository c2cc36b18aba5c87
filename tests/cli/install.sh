#!/bin/sh
# make install and make uninstall, into a scratch DESTDIR from this build tree: the programs
# (and that they run from there), the man pages in man1, man5 and man7, the bash completion
# under every program's name where bash-completion looks, llmops.pc that compiles and links a
# program against the installed headers and library, the headers, the sample data and the
# tokenizers; then uninstall leaves no file behind.
. "$top_srcdir/tests/cli/lib.sh"

# A make of its own: not the jobs of the make check that runs this test.
mk() {
	env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL -u MAKEOVERRIDES -u GNUMAKEFLAGS \
		"${MAKE:-make}" --no-print-directory -C "$top_builddir" "$@"
}
# var NAME: a variable of the build's Makefile, expanded (bindir, mandir, ...).
var() {
	printf 'llmops-print-var:\n\t@echo $(%s)\n' "$1" |
		mk -s -f Makefile -f - llmops-print-var
}

dest=$scratch/dest
for v in prefix bindir libdir includedir mandir datadir pkgdatadir bashcompletiondir EXEEXT; do
	eval "$v=\$(var $v)"
done
programs=
for f in "$top_builddir"/cmd/llm-*; do
	case ${f##*/} in *.*) continue ;; esac
	[ -f "$f" ] && [ -x "$f" ] && programs="$programs ${f##*/}"
done

t 'make install DESTDIR=... succeeds from the build tree' '
	[ -n "$prefix" ] && [ -n "$bindir" ] && [ -n "$bashcompletiondir" ]
	mk install DESTDIR="$dest" > "$scratch/install.log" 2>&1 ||
		{ tail -30 "$scratch/install.log"; false; }
	[ -d "$dest$prefix" ]
'

t 'every program built in cmd/ is installed in bindir and runs from there' '
	[ -n "$programs" ]
	for p in $programs; do
		[ -x "$dest$bindir/$p$EXEEXT" ] || { echo "$p is not in $bindir"; false; }
		LD_LIBRARY_PATH=$dest$libdir "$dest$bindir/$p" --version > out
		grep -q "^$p (llmops) " out
	done
'

t 'the library is installed, and the programs load that copy' '
	ls "$dest$libdir"/libllmops.so* > /dev/null
	LD_LIBRARY_PATH=$dest$libdir ldd "$dest$bindir/llm-prep" > ldd
	grep -F "$dest$libdir/libllmops.so" ldd || { cat ldd; false; }
'

t 'every man page goes to its section: man1, man5, man7' '
	n=0
	for page in "$top_srcdir"/man/*.[157].scd; do
		page=${page##*/}; page=${page%.scd}; s=${page##*.}
		[ -f "$dest$mandir/man$s/$page" ] || { echo "$page is not in man$s"; false; }
		n=$((n + 1))
	done
	for p in $programs; do [ -f "$dest$mandir/man1/$p.1" ] || { echo "no $p(1)"; false; }; done
	[ -f "$dest$mandir/man7/llmops.7" ]
	[ -f "$dest$mandir/man5/llmops-records.5" ]
	echo "$n pages"
'

t 'the bash completion is installed under every program'"'"'s name, and completes it' '
	command -v bash > /dev/null || { echo "bash missing"; false; }
	for p in $programs; do
		f=$dest$bashcompletiondir/$p
		[ -f "$f" ] || { echo "no completion for $p"; false; }
		# A link must still point at the file once DESTDIR is gone.
		if [ -h "$f" ]; then case $(readlink "$f") in /*) echo "$f: absolute link"; false ;; esac; fi
		cmp -s "$f" "$top_srcdir/data/completion/llmops.bash"
		bash -c ". \"\$1\"; complete -p $p" _ "$f" | grep -q -- "-F _llmops $p\$"
	done
'

t 'bash-completion itself finds the installed completion by the program'"'"'s name' '
	bc=/usr/share/bash-completion/bash_completion
	[ -f "$bc" ] || { echo "$bc is missing: apt-get install bash-completion"; false; }
	# It looks in DIR/bash-completion/completions for each DIR of XDG_DATA_DIRS.
	root=${bashcompletiondir%/bash-completion/completions}
	[ "$root" != "$bashcompletiondir" ] || { echo "$bashcompletiondir: not a completions dir"; false; }
	for p in $programs; do
		HOME=$PWD XDG_DATA_DIRS=$dest$root bash -c ". \"$bc\"; __load_completion $p;
			complete -p $p" > spec 2>&1 || true
		grep -q -- "-F _llmops $p\$" spec || { echo "$p:"; cat spec; false; }
	done
'

t 'llmops.pc gives the flags that compile and link a program against the installed library' '
	pc=$dest$libdir/pkgconfig
	[ -f "$pc/llmops.pc" ]
	cflags=$(PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags llmops)
	libs=$(PKG_CONFIG_PATH=$pc PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --libs llmops)
	echo "$cflags" | grep -qF -- "-I$dest$includedir/llmops"
	echo "$libs" | grep -qF -- "-L$dest$libdir"
	echo "$libs" | grep -qF -- "-lllmops"
	cat > use.c <<-EOF
	#include <stdio.h>
	#include <string.h>
	#include "core/err.h"
	#include "core/hash.h"
	int main(void)
	{
		puts(llm_err_name(LLM_ERR_USAGE));
		return 0;
	}
	EOF
	# A library built with the sanitizers needs their runtime in the program too.
	san=
	if ldd "$dest$libdir/libllmops.so" | grep -q libasan; then san=-fsanitize=address,undefined; fi
	${CC:-cc} $san $cflags -o use use.c $libs
	LD_LIBRARY_PATH=$dest$libdir ./use > out
	[ -s out ]
'

t 'every header of lib/ is installed, and each compiles on its own' '
	inc=$dest$includedir/llmops
	n=0
	for h in $(cd "$top_srcdir/lib" && find . -name "*.h" | sed "s|^\./||" | LC_ALL=C sort); do
		[ -f "$inc/$h" ] || { echo "lib/$h is not installed"; false; }
		cmp -s "$inc/$h" "$top_srcdir/lib/$h"
		printf "#include \"%s\"\n" "$h" > one.c
		${CC:-cc} -fsyntax-only -I"$inc" $(PKG_CONFIG_PATH=$dest$libdir/pkgconfig \
			PKG_CONFIG_SYSROOT_DIR=$dest pkg-config --cflags llmops) one.c ||
			{ echo "$h does not compile alone"; false; }
		n=$((n + 1))
	done
	echo "$n headers"
	[ "$n" -gt 10 ]
'

t 'the sample data and the tokenizers are installed, and the tokenizers work from there' '
	cmp "$dest$pkgdatadir/sample/support.jsonl" "$top_srcdir/data/sample/support.jsonl"
	for f in "$top_srcdir"/data/tokenizers/*.tiktoken "$top_srcdir"/data/tokenizers/*.meta.json; do
		cmp "$dest$pkgdatadir/tokenizers/${f##*/}" "$f"
	done
	echo "{\"text\": \"hello world\"}" > in.jsonl
	LLMOPS_TOKENIZER_DIR=$dest$pkgdatadir/tokenizers LD_LIBRARY_PATH=$dest$libdir \
		"$dest$bindir/llm-prep" tokenize --encoding gpt2 in.jsonl > out
	grep -q "31373, *995" out || { cat out; false; }
'

t 'make uninstall DESTDIR=... leaves no file behind' '
	mk uninstall DESTDIR="$dest" > "$scratch/uninstall.log" 2>&1 ||
		{ tail -30 "$scratch/uninstall.log"; false; }
	find "$dest" ! -type d > left
	[ ! -s left ] || { echo "left behind:"; cat left; false; }
'

done_testing
