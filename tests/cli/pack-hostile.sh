#!/bin/sh
# llm-pack verify and unpack against hostile and damaged archives (made by Python's tarfile in
# pack-hostile.py): each refused with status 1 and a message naming the fault, nothing written
# outside the target, no half-unpacked folder left behind.
. "$top_srcdir/tests/cli/lib.sh"
py=/usr/bin/python3
hostile=$top_srcdir/tests/cli/pack-hostile.py

# refused KIND MESSAGE: verify and unpack both refuse the KIND archive, saying MESSAGE; unpack
# leaves no target, no temporary folder and nothing outside.
refused() {
	mkdir -p "w/$1" && cd "w/$1"
	$py "$hostile" "$1" a.tar.gz
	run llm-pack verify a.tar.gz
	expect_status 1
	expect_err "$2"
	expect_no_out
	no_sanitizer_report
	run llm-pack unpack a.tar.gz target
	expect_status 1
	expect_err "$2"
	[ "$(ls -A)" = "$(printf "a.tar.gz\nerr\nout")" ] || { ls -A; false; }
	[ ! -e ../evil ] && [ ! -e ../../evil ] && [ ! -e /tmp/llmops-evil ]
	cd ../..
}

t 'the archive Python makes without faults verifies and unpacks' '
	$py "$hostile" good a.tar.gz
	llm-pack verify a.tar.gz > out
	grep -q "^a.tar.gz: ok, evil 1.0.0, 2 files" out
	llm-pack unpack -q a.tar.gz t > /dev/null
	[ "$(ls t)" = "$(printf "MANIFEST.json\nconfig.json\nmodel.bin")" ]
'

t 'an entry with .. is refused' 'refused dotdot "path '"'"'../evil'"'"' has a '"'"'.'"'"' or '"'"'..'"'"' component"'
t 'an entry with .. inside its path is refused' 'refused dotdot-inner "a/../../evil"'
t 'an absolute path is refused' 'refused absolute "is absolute"'
t 'a symbolic link is refused' 'refused symlink "entry '"'"'link'"'"' is a symbolic link"'
t 'a hard link is refused' 'refused hardlink "entry '"'"'hard'"'"' is a hard link"'
t 'a device file is refused' 'refused device "is a device file"'
t 'a FIFO is refused' 'refused fifo "is a FIFO"'
t 'a folder entry is refused' 'refused folder "is a folder entry"'
t 'a duplicate entry is refused' 'refused duplicate "entry '"'"'model.bin'"'"' appears twice"'
t 'an entry the manifest does not list is refused' 'refused extra "entry '"'"'zz-extra.txt'"'"' is not in the manifest"'
t 'a file the manifest lists but the archive lacks is refused' 'refused missing "'"'"'model.bin'"'"' is missing from the archive"'
t 'entries out of manifest order are refused' 'refused out-of-order "out of order"'
t 'a manifest that lies about a digest is refused' 'refused lying-digest "'"'"'model.bin'"'"': sha256 "'
t 'a manifest that lies about a size is refused' 'refused lying-size "'"'"'config.json'"'"': 20 bytes, but the manifest says 19"'
t 'an archive whose first entry is not MANIFEST.json is refused' 'refused manifest-second "the first entry is '"'"'config.json'"'"'"'
t 'a manifest listing an unsafe path is refused' 'refused manifest-bad-path "files[0]: path '"'"'../x'"'"'"'
t 'a manifest not in canonical form is refused' 'refused manifest-not-canonical "not in canonical form"'
t 'a manifest of a newer format is refused' 'refused manifest-newer-format "format 2 is not one this llm-pack reads"'
t 'a manifest claiming more than deflate can expand to is refused as a bomb' 'refused claims-huge "decompression bomb: the manifest lists"'
t 'a stream expanding past what the manifest accounts for is refused as a bomb' 'refused bomb "decompression bomb: the archive expands past"'
t 'a truncated gzip stream is refused' 'refused truncated "truncated: the gzip stream ends early"'
t 'a corrupt gzip CRC is refused' 'refused crc "corrupt gzip stream"'
t 'bytes after the gzip stream are refused' 'refused garbage "bytes after the end of the gzip stream"'
t 'a file that is not gzip is refused' 'refused not-gzip "not a gzip file"'
t 'an empty file is refused' 'refused empty "empty file"'

t 'a corrupted byte in an llm-pack tarball is caught' '
	mkdir m && printf "{}\n" > m/config.json && head -c 200000 /dev/urandom > m/model.bin
	llm-pack create m --name m --version 1.0.0 -q > /dev/null
	size=$(wc -c < m-1.0.0.tar.gz)
	cp m-1.0.0.tar.gz bad.tar.gz
	printf "\\377" | dd of=bad.tar.gz bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	cmp -s m-1.0.0.tar.gz bad.tar.gz && printf "\\000" | dd of=bad.tar.gz bs=1 seek=$((size / 2)) conv=notrunc 2>/dev/null
	run llm-pack verify bad.tar.gz
	expect_status 1
	run llm-pack unpack bad.tar.gz t
	expect_status 1
	[ ! -e t ]
	! ls -A | grep -q unpack
'

t 'unpack refuses a target that is a file, a link or a folder with something in it' '
	$py "$hostile" good a.tar.gz
	touch file
	run llm-pack unpack a.tar.gz file
	expect_status 2
	expect_err "exists and is not a folder"
	mkdir full && touch full/x
	run llm-pack unpack a.tar.gz full
	expect_status 2
	expect_err "is not empty"
	[ "$(ls full)" = x ]
	mkdir empty && ln -s empty link
	run llm-pack unpack a.tar.gz link
	expect_status 2
	mkdir empty2
	llm-pack unpack -q a.tar.gz empty2 > /dev/null
	[ -f empty2/model.bin ]
'

t 'unpack keeps the executable bit and applies the umask' '
	mkdir m && printf "#!/bin/sh\n" > m/run.sh && chmod 755 m/run.sh && echo x > m/data
	llm-pack create m --name m --version 1.0.0 -q > /dev/null
	(umask 027 && llm-pack unpack -q m-1.0.0.tar.gz t > /dev/null)
	[ "$(stat -c %a t/run.sh)" = 750 ]
	[ "$(stat -c %a t/data)" = 640 ]
	[ "$(stat -c %a t)" = 750 ]
'

t '--max-size refuses an artifact whose files add up to more' '
	$py "$hostile" good a.tar.gz
	run llm-pack verify --max-size 1K a.tar.gz
	expect_status 1
	expect_err "more than the 1024 allowed"
	llm-pack verify -q --max-size 1M a.tar.gz > /dev/null
'

t 'verify goes on to the next artifact and fails at the end' '
	$py "$hostile" good a.tar.gz
	$py "$hostile" extra b.tar.gz
	run llm-pack verify b.tar.gz a.tar.gz
	expect_status 1
	grep -q "^a.tar.gz: ok" out
	llm-pack verify --json b.tar.gz a.tar.gz > j || true
	jq -e ".[0].ok == false and (.[0].error | test(\"not in the manifest\")) and .[1].ok == true" j
'

done_testing
