#!/bin/sh
# llm-pack create: the same bytes from the same files whatever their times, modes, owners and
# order of creation; GNU tar, gzip and Python's tarfile read the result; the manifest lists
# every file with sha256sum's digest; lineage, data, parameters and metrics recorded.
. "$top_srcdir/tests/cli/lib.sh"
py=/usr/bin/python3
unset SOURCE_DATE_EPOCH

skip() {
	test_count=$((test_count + 1))
	echo "ok $test_count - $1 # SKIP $2"
}

long=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa
long=$long/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb.bin

# make_model DIR forward|reverse MTIME FILEMODE: a small model folder, its files made in the
# given order, dated MTIME, non-executable files with FILEMODE.
make_model() {
	mkdir -p "$1"
	set -- "$1" "$2" "$3" "$4" "config.json tokenizer.json model.safetensors sub/dir/nested.bin run.sh données.txt $long"
	files=$5
	[ "$2" = reverse ] && files=$(printf '%s\n' $5 | sort -r)
	for f in $files; do
		mkdir -p "$1/$(dirname "$f")"
		case $f in
		config.json) printf '{"hidden_size": 64, "num_hidden_layers": 2}\n' > "$1/$f" ;;
		tokenizer.json) printf '{"model": {"type": "BPE"}}\n' > "$1/$f" ;;
		model.safetensors)
			$py -c 'import random,sys; sys.stdout.buffer.write(random.Random(7).randbytes(300000))' > "$1/$f" ;;
		run.sh) printf '#!/bin/sh\necho hi\n' > "$1/$f" ;;
		*) printf '%s\n' "$f" > "$1/$f" ;;
		esac
		touch -d "$3" "$1/$f"
		chmod "$4" "$1/$f"
	done
	chmod 0755 "$1/run.sh"
	touch -d "$3" "$1/sub" "$1/sub/dir"
}

t 'packing the same folder twice gives the same bytes (times, modes, creation order differ)' '
	make_model a forward "2020-01-01 00:00" 0644
	make_model b reverse "2024-06-30 12:34" 0600
	chmod 0700 b/run.sh
	mkdir out1 out2
	SOURCE_DATE_EPOCH=1700000000 llm-pack create a --name m --version 1.0.0 --out out1 -q > p1
	sleep 1
	SOURCE_DATE_EPOCH=1700000000 llm-pack create b --name m --version 1.0.0 --out out2 -q > p2
	[ "$(cat p1)" = out1/m-1.0.0.tar.gz ]
	cmp out1/m-1.0.0.tar.gz out2/m-1.0.0.tar.gz
'

if [ "$(id -u)" = 0 ]; then
	t 'files owned by another user pack to the same bytes' '
		make_model a forward "2020-01-01 00:00" 0644
		make_model b forward "2020-01-01 00:00" 0644
		chown -R 12345:54321 b
		mkdir out1 out2
		SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --out out1 -q > /dev/null
		SOURCE_DATE_EPOCH=1 llm-pack create b --name m --version 1.0.0 --out out2 -q > /dev/null
		cmp out1/m-1.0.0.tar.gz out2/m-1.0.0.tar.gz
	'
else
	skip 'files owned by another user pack to the same bytes' 'chown needs root'
fi

t '--out makes the folder and its parents; a file in the way is an I/O error' '
	make_model a forward "2020-01-01 00:00" 0644
	llm-pack create a --name m --version 1.0.0 --out new/sub -q > /dev/null
	test -f new/sub/m-1.0.0.tar.gz
	touch plain
	run llm-pack create a --name m --version 1.0.0 --out plain/x -q
	expect_status 3
	grep -q "plain" err
'
t 'the bytes do not depend on the thread count or the locale' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir o1 o2 o3
	SOURCE_DATE_EPOCH=5 llm-pack create a --name m --version 1.0.0 --out o1 -q -j 1 > /dev/null
	SOURCE_DATE_EPOCH=5 llm-pack create a --name m --version 1.0.0 --out o2 -q -j 7 > /dev/null
	LC_ALL=C SOURCE_DATE_EPOCH=5 llm-pack create a --name m --version 1.0.0 --out o3 -q > /dev/null
	cmp o1/m-1.0.0.tar.gz o2/m-1.0.0.tar.gz
	cmp o1/m-1.0.0.tar.gz o3/m-1.0.0.tar.gz
'

t 'the creation time comes from --created, else SOURCE_DATE_EPOCH, and dates every entry' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir o1 o2 o3
	SOURCE_DATE_EPOCH=1700000000 llm-pack create a --name m --version 1.0.0 --out o1 -q > /dev/null
	llm-pack create a --name m --version 1.0.0 --created 2023-11-14T22:13:20Z --out o2 -q > /dev/null
	SOURCE_DATE_EPOCH=1700000001 llm-pack create a --name m --version 1.0.0 --out o3 -q > /dev/null
	cmp o1/m-1.0.0.tar.gz o2/m-1.0.0.tar.gz
	! cmp -s o1/m-1.0.0.tar.gz o3/m-1.0.0.tar.gz
	TZ=UTC tar tzvf o1/m-1.0.0.tar.gz > list
	[ "$(grep -c "2023-11-14 22:13" list)" = "$(lines list)" ]
	tar xOzf o1/m-1.0.0.tar.gz MANIFEST.json | grep -q "\"created\":\"2023-11-14T22:13:20Z\""
'

t 'GNU tar lists MANIFEST.json first, then the files sorted bytewise, owned by 0/0' '
	make_model a forward "2020-01-01 00:00" 0644
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 -q > /dev/null
	tar tzvf m-1.0.0.tar.gz --numeric-owner > list
	tar tzf m-1.0.0.tar.gz > names
	[ "$(head -1 names)" = MANIFEST.json ]
	tail -n +2 names > rest
	LC_ALL=C sort rest > sorted
	cmp rest sorted
	[ "$(lines rest)" = 7 ]
	! grep -v " 0/0 " list
	grep -q "^-rwxr-xr-x 0/0 .* run.sh$" list
	grep -q "^-rw-r--r-- 0/0 .* config.json$" list
	! grep -q "^d" list
'

t 'tar xzf unpacks it and the files equal the originals; gzip -t passes' '
	make_model a forward "2020-01-01 00:00" 0600
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 -q > /dev/null
	gzip -t m-1.0.0.tar.gz
	mkdir x
	tar xzf m-1.0.0.tar.gz -C x
	rm x/MANIFEST.json
	diff -r a x
	[ -x x/run.sh ]
'

t 'Python tarfile reads the same entries' '
	make_model a forward "2020-01-01 00:00" 0644
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 -q > /dev/null
	$py -c "import tarfile; print(\"\\n\".join(tarfile.open(\"m-1.0.0.tar.gz\").getnames()))" > py
	tar tzf m-1.0.0.tar.gz > gnu
	cmp py gnu
'

t 'the identity is the sha256 of MANIFEST.json, and the manifest has sha256sum digests' '
	make_model a forward "2020-01-01 00:00" 0644
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --json > j
	id=$(jq -r .identity j)
	[ "$id" = "sha256:$(tar xOzf m-1.0.0.tar.gz MANIFEST.json | sha256sum | cut -c1-64)" ]
	[ "$(jq -r .path j)" = m-1.0.0.tar.gz ]
	[ "$(jq .files j)" = 7 ]
	tar xOzf m-1.0.0.tar.gz MANIFEST.json > man.json
	jq -r ".files[] | \"\(.sha256)  \(.path)\"" man.json > listed
	(cd a && find . -type f | sed "s|^\./||" | LC_ALL=C sort | while read -r f; do sha256sum "$f"; done) > real
	cmp listed real
	jq -r ".files[] | \"\(.size) \(.path)\"" man.json | grep -q "^300000 model.safetensors$"
	[ "$(jq -r ".files[] | select(.path == \"run.sh\") | .executable" man.json)" = true ]
	[ "$(jq -r ".files[] | select(.path == \"config.json\") | .executable" man.json)" = null ]
'

t 'the manifest is canonical: one line, sorted keys, no whitespace' '
	make_model a forward "2020-01-01 00:00" 0644
	printf "{\"lr\": 3e-4, \"steps\": 10, \"warm\": 1.0}\n" > p.json
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --params p.json -q > /dev/null
	tar xOzf m-1.0.0.tar.gz MANIFEST.json > man.json
	jq -c -S . man.json | tr -d "\n" > resorted
	cmp man.json resorted
	grep -q "\"params\":{\"lr\":0.0003,\"steps\":10,\"warm\":1}" man.json
'

t 'a top-level MANIFEST.json is left out, so an unpacked artifact packs again the same' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir o1 o2
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --out o1 -q > /dev/null
	llm-pack unpack -q o1/m-1.0.0.tar.gz u > /dev/null
	run env SOURCE_DATE_EPOCH=1 llm-pack create u --name m --version 1.0.0 --out o2
	expect_status 0
	expect_err "MANIFEST.json left out"
	cmp o1/m-1.0.0.tar.gz o2/m-1.0.0.tar.gz
'

t 'links to files are followed; links to folders, dangling links and FIFOs are refused' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir b
	cp -r a/. b/
	rm b/config.json
	ln -s ../a/config.json b/config.json
	mkdir o1 o2
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --out o1 -q > /dev/null
	SOURCE_DATE_EPOCH=1 llm-pack create b --name m --version 1.0.0 --out o2 -q > /dev/null
	cmp o1/m-1.0.0.tar.gz o2/m-1.0.0.tar.gz
	ln -s /nowhere b/dangling
	run llm-pack create b --name m --version 1.0.0 --out o2
	expect_status 1
	expect_err "leads nowhere"
	rm b/dangling
	ln -s ../a/sub b/folder-link
	run llm-pack create b --name m --version 1.0.0 --out o2
	expect_status 1
	expect_err "only links to files are followed"
	rm b/folder-link
	mkfifo b/fifo
	run llm-pack create b --name m --version 1.0.0 --out o2
	expect_status 1
	expect_err "not a regular file"
'

t 'a failed create leaves no tarball and no temporary file' '
	make_model a forward "2020-01-01 00:00" 0644
	ln -s /nowhere a/zz-dangling
	mkdir dest
	run llm-pack create a --name m --version 1.0.0 --out dest
	expect_status 1
	[ -z "$(ls -A dest)" ]
'

t '--exclude leaves out files and folders by path or base name' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir a/.git && echo x > a/.git/HEAD
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 -x .git -x "*.bin" -x sub -q > /dev/null
	tar tzf m-1.0.0.tar.gz > names
	! grep -e "\.git" -e "\.bin$" -e "^sub" names
	grep -q "^run.sh$" names
'

t 'lineage, data, parameters, metrics, licence and tags are recorded' '
	make_model a forward "2020-01-01 00:00" 0644
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 -q > /dev/null
	mkdir run
	printf "{\"format\":1,\"id\":\"run-7\",\"status\":\"finished\",\"llmops_version\":\"0.1\",\"data\":[{\"path\":\"data/train.jsonl\",\"bytes\":12,\"sha256\":\"%s\"}]}\n" \
		"$(printf "%064d" 0 | tr 0 a)" > run/meta.json
	printf "{\"base\":\"base/\",\"lr\":0.001,\"lora\":{\"r\":8}}\n" > run/params.json
	printf "{\"text\":\"a\"}\n{\"text\":\"b\"}\n" > eval.jsonl
	printf "{\"output\":\"the cat sat\",\"reference\":\"the cat sat\"}\n{\"output\":\"a dog\",\"reference\":\"the dog\"}\n" |
		llm-eval -m exact,bleu --report report.json > /dev/null
	SOURCE_DATE_EPOCH=2 llm-pack create a --name m --version 1.1.0-rc.1 --parent m-1.0.0.tar.gz \
		--params run --metrics report.json --data eval=eval.jsonl --licence Apache-2.0 \
		--tag chat,support --tag en -q > /dev/null
	llm-pack inspect --json m-1.1.0-rc.1.tar.gz > j
	jq -e ".manifest.parent.name == \"m\" and .manifest.parent.version == \"1.0.0\"" j
	[ "$(jq -r .manifest.parent.digest j)" = "sha256:$(tar xOzf m-1.0.0.tar.gz MANIFEST.json | sha256sum | cut -c1-64)" ]
	jq -e ".manifest.base_model.ref == \"base/\"" j
	jq -e ".manifest.run == {\"id\":\"run-7\",\"status\":\"finished\",\"llmops_version\":\"0.1\"}" j
	jq -e ".manifest.params.lora.r == 8 and .manifest.params.lr == 0.001" j
	jq -e ".manifest.datasets == [{\"name\":\"eval\",\"sha256\":\"$(sha256sum eval.jsonl | cut -c1-64)\",\"size\":26,\"records\":2}]" j
	jq -e ".manifest.metrics.exact.score == $(jq .metrics.exact.score report.json)" j
	jq -e ".manifest.metrics.bleu.signature == $(jq .metrics.bleu.signature report.json)" j
	jq -e ".manifest.licence == \"Apache-2.0\" and .manifest.tags == [\"chat\",\"support\",\"en\"]" j
'

t 'without --data, a run folder gives its data digests' '
	make_model a forward "2020-01-01 00:00" 0644
	mkdir run
	h=$(printf "%064d" 0 | tr 0 b)
	printf "{\"id\":\"r\",\"data\":[{\"path\":\"/data/train.jsonl\",\"bytes\":12,\"sha256\":\"%s\"}]}\n" "$h" > run/meta.json
	printf "{}\n" > run/params.json
	llm-pack create a --name m --version 1.0.0 --params run -q > /dev/null
	llm-pack inspect --json m-1.0.0.tar.gz |
		jq -e ".manifest.datasets == [{\"name\":\"train.jsonl\",\"sha256\":\"$h\",\"size\":12}]"
'

t 'a parent named NAME@VERSION is looked up in the registry, else recorded without a digest' '
	make_model a forward "2020-01-01 00:00" 0644
	export LLMOPS_HOME=$PWD/home
	run llm-pack create a --name m --version 2.0.0 --parent m@1.0.0
	expect_status 0
	expect_err "recorded without a digest"
	llm-pack inspect --json m-2.0.0.tar.gz | jq -e ".manifest.parent == {\"name\":\"m\",\"version\":\"1.0.0\"}"
	SOURCE_DATE_EPOCH=1 llm-pack create a --name m --version 1.0.0 --base hf:org/base -q > /dev/null
	llm-pack push -q --registry reg m-1.0.0.tar.gz > /dev/null
	id=$(llm-pack inspect --json m-1.0.0.tar.gz | jq -r .identity)
	llm-pack create a --name m --version 2.0.0 --parent m@1.0.0 --registry reg -q > /dev/null
	llm-pack inspect --json m-2.0.0.tar.gz > j
	jq -e ".manifest.parent == {\"name\":\"m\",\"version\":\"1.0.0\",\"digest\":\"$id\"}" j
	jq -e ".manifest.base_model.ref == \"hf:org/base\"" j
	LLMOPS_PACK_REGISTRY=reg llm-pack create a --name m --version 2.0.1 --parent registry:m -q > /dev/null
	llm-pack inspect --json m-2.0.1.tar.gz | jq -e ".manifest.parent.digest == \"$id\""
	run llm-pack create a --name m --version 2.0.2 --parent registry:nope@1.0.0 --registry reg
	expect_status 3
'

t 'usage errors: no name, no version, bad name, bad version, bad time, no folder' '
	make_model a forward "2020-01-01 00:00" 0644
	run llm-pack create a --version 1.0.0
	expect_status 2
	expect_err "--name is required"
	run llm-pack create a --name m
	expect_status 2
	expect_err "--version is required"
	run llm-pack create a --name m --version
	expect_status 2
	expect_err "needs an argument"
	run llm-pack create a --name Big --version 1.0.0
	expect_status 2
	expect_err "name '"'"'Big'"'"'"
	run llm-pack create a --name m --version 1.0
	expect_status 2
	expect_err "not a SemVer 2.0 version"
	run llm-pack create a --name m --version 1.0.0 --created yesterday
	expect_status 2
	run llm-pack create --name m --version 1.0.0
	expect_status 2
	run llm-pack create nowhere --name m --version 1.0.0
	expect_status 3
	mkdir empty
	run llm-pack create empty --name m --version 1.0.0
	expect_status 2
	expect_err "no files to pack"
	[ ! -e m-1.0.0.tar.gz ]
'

t 'create --version=X works, and llm-pack --version still prints the program version' '
	make_model a forward "2020-01-01 00:00" 0644
	llm-pack create a --name m --version=3.0.0 -q > out
	[ "$(cat out)" = m-3.0.0.tar.gz ]
	llm-pack --version | grep -q "^llm-pack (llmops) "
	llm-pack create --help | grep -q -- "--version SEMVER"
'

done_testing
