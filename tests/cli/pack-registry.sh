#!/bin/sh
# llm-pack's directory registry (llmops-registry(5)): push, pull, list, show, alias, promote,
# lineage, history; immutable versions; atomic alias moves; concurrent pushes; kill -9 in the
# middle of changes; signatures required for promotion; a registry of 10,000 versions.
. "$top_srcdir/tests/cli/lib.sh"
py=/usr/bin/python3
# Relative: each test runs in a folder of its own, so each has its own registry.
LLMOPS_HOME=home
export LLMOPS_HOME
unset LLMOPS_PACK_REGISTRY LLMOPS_USER
REG=home/registry

# art NAME VERSION [CREATE-OPTIONS...]: pack a small model folder as NAME-VERSION.tar.gz here;
# the content depends on NAME and VERSION, so every version has its own identity.
art() {
	n=$1 v=$2
	shift 2
	rm -rf "src-$n-$v"
	mkdir -p "src-$n-$v/sub"
	printf '{"name": "%s", "version": "%s"}\n' "$n" "$v" > "src-$n-$v/config.json"
	printf 'weights of %s %s\n' "$n" "$v" > "src-$n-$v/sub/model.bin"
	llm-pack create -q "src-$n-$v" --name "$n" --version "$v" "$@" > /dev/null
}
# The identity of an artifact, as anyone computes it.
ident() {
	echo "sha256:$(tar -xOzf "$1" MANIFEST.json | sha256sum | cut -d" " -f1)"
}
# The registry is consistent: every version directory whole, its digest its manifest's.
consistent() {
	for vd in "$REG"/names/*/versions/*; do
		[ -e "$vd" ] || continue
		for f in artifact.tar.gz MANIFEST.json digest pushed.json; do
			[ -f "$vd/$f" ] || { echo "$vd lacks $f"; return 1; }
		done
		[ "$(cat "$vd/digest")" = "$(ident "$vd/artifact.tar.gz")" ] ||
			{ echo "$vd: digest differs"; return 1; }
		tar -xOzf "$vd/artifact.tar.gz" MANIFEST.json | cmp -s - "$vd/MANIFEST.json" ||
			{ echo "$vd: MANIFEST.json differs"; return 1; }
	done
	jq -e . "$REG/audit.log" > /dev/null || { echo "audit.log is not JSON lines"; return 1; }
}

t 'push stores a verified artifact, prints NAME@VERSION and its identity, and logs it' '
	art bot 1.0.0
	run llm-pack push bot-1.0.0.tar.gz --reason "first cut"; expect_status 0
	expect_out "bot@1.0.0 $(ident bot-1.0.0.tar.gz)"
	expect_err "pushed bot@1.0.0"
	cmp bot-1.0.0.tar.gz "$REG/names/bot/versions/1.0.0/artifact.tar.gz"
	[ "$(cat "$REG/names/bot/versions/1.0.0/digest")" = "$(ident bot-1.0.0.tar.gz)" ]
	[ "$(lines "$REG/audit.log")" = 1 ]
	jq -e "select(.action == \"push\" and .name == \"bot\" and .version == \"1.0.0\"
		and .why == \"first cut\" and (.who | test(\"@\"))
		and (.ts | test(\"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9:]{8}Z$\")))" "$REG/audit.log"
	consistent
'

t 'push refuses an artifact that does not verify, and a non-artifact, storing nothing' '
	art bot 1.0.0
	head -c 300 bot-1.0.0.tar.gz > cut-1.0.0.tar.gz
	run llm-pack push cut-1.0.0.tar.gz; [ "$status" = 1 ] || [ "$status" = 3 ]
	echo "not a tarball" > junk.tar.gz
	run llm-pack push junk.tar.gz; [ "$status" != 0 ]
	run llm-pack push nowhere.tar.gz; expect_status 3
	run llm-pack push; expect_status 2
	[ ! -e "$REG/names" ] || [ -z "$(ls "$REG/names")" ]
'

t 'versions are immutable: the same identity again is a no-op, another is refused (1)' '
	art bot 1.0.0
	llm-pack push -q bot-1.0.0.tar.gz
	run llm-pack push bot-1.0.0.tar.gz; expect_status 0; expect_err "nothing to do"
	expect_out "bot@1.0.0 $(ident bot-1.0.0.tar.gz)"
	[ "$(lines "$REG/audit.log")" = 1 ]
	mkdir other && mv bot-1.0.0.tar.gz other/
	art bot 1.0.0 --licence MIT
	[ "$(ident bot-1.0.0.tar.gz)" != "$(ident other/bot-1.0.0.tar.gz)" ]
	run llm-pack push bot-1.0.0.tar.gz; expect_status 1; expect_err "versions never change"
	cmp other/bot-1.0.0.tar.gz "$REG/names/bot/versions/1.0.0/artifact.tar.gz"
	[ "$(lines "$REG/audit.log")" = 1 ]
'

t 'pull writes the version verified, by version, alias or latest (SemVer precedence)' '
	for v in 1.2.0 1.10.0 1.9.0 1.10.0-rc.1 1.10.0-rc.2; do art bot $v; done
	llm-pack push -q bot-*.tar.gz
	run llm-pack pull bot@1.9.0; expect_status 0; expect_out "./bot-1.9.0.tar.gz"
	mkdir d && run llm-pack pull bot --out d; expect_status 0; expect_out "d/bot-1.10.0.tar.gz"
	cmp d/bot-1.10.0.tar.gz bot-1.10.0.tar.gz
	llm-pack alias set -q bot production 1.2.0
	run llm-pack pull bot@production -o prod.tar.gz; expect_status 0
	cmp prod.tar.gz bot-1.2.0.tar.gz
	run llm-pack pull bot@latest -o l.tar.gz; cmp l.tar.gz bot-1.10.0.tar.gz
	run llm-pack pull bot@3.0.0; expect_status 3; expect_err "bot@3.0.0: no such version"
	run llm-pack pull bot@canary; expect_status 3; expect_err "no such alias"
	run llm-pack pull nobody; expect_status 3; expect_err "nobody: no such model"
	run llm-pack pull "Bad@1.0.0"; expect_status 2
'

t 'pull refuses a stored artifact that was tampered with, and writes nothing' '
	art bot 1.0.0
	llm-pack push -q bot-1.0.0.tar.gz
	f=$REG/names/bot/versions/1.0.0/artifact.tar.gz
	chmod u+w "$f"
	head -c 600 bot-1.0.0.tar.gz > "$f"
	run llm-pack pull bot@1.0.0 -o x.tar.gz; [ "$status" = 1 ] || [ "$status" = 3 ]
	[ -z "$(ls -a | grep "x.tar.gz")" ]
'

t 'list and show: names, versions, aliases, identity, as text and JSON' '
	art bot 1.0.0; art bot 1.1.0; art util 0.1.0
	llm-pack push -q bot-1.0.0.tar.gz bot-1.1.0.tar.gz util-0.1.0.tar.gz
	llm-pack alias set -q bot production 1.0.0
	run llm-pack list; expect_status 0
	grep -E "^bot +2 +1\.1\.0 +production=1\.0\.0$" out
	grep -E "^util +1 +0\.1\.0 +-$" out
	run llm-pack list --json; expect_status 0
	jq -e "length == 2 and .[0].name == \"bot\" and .[0].versions == [\"1.0.0\", \"1.1.0\"]
		and .[0].latest == \"1.1.0\" and .[0].aliases == {production: \"1.0.0\"}" out
	run llm-pack list bot --json; expect_status 0
	jq -e ".versions | map(.version) == [\"1.1.0\", \"1.0.0\"]" out
	jq -e ".versions[1].aliases == [\"production\"] and .versions[0].aliases == [\"latest\"]" out
	jq -e --arg d "$(ident bot-1.0.0.tar.gz)" ".versions[1].digest == \$d" out
	run llm-pack show bot@production --json; expect_status 0
	jq -e --arg d "$(ident bot-1.0.0.tar.gz)" ".version == \"1.0.0\" and .digest == \$d
		and .manifest.name == \"bot\" and .signed == false and .aliases == [\"production\"]
		and .size == $(wc -c < bot-1.0.0.tar.gz)" out
	run llm-pack show bot; expect_status 0
	grep -q "^version: *1.1.0$" out; grep -q "^aliases: *latest$" out
	run llm-pack show bot@9.9.9; expect_status 3
	run llm-pack list nobody; expect_status 3
	rm -rf "$REG"; run llm-pack list; expect_status 0; expect_no_out; expect_err "holds no artifacts"
'

t 'alias set, list, rm: validated, logged with from and to, latest derived' '
	art bot 1.0.0; art bot 1.1.0
	llm-pack push -q bot-1.0.0.tar.gz bot-1.1.0.tar.gz
	run llm-pack alias set bot production 1.0.0 --reason "eval ok"; expect_status 0
	expect_err "bot@production: (none) -> 1.0.0"
	[ "$(cat "$REG/names/bot/aliases/production")" = 1.0.0 ]
	run llm-pack alias set bot production 1.1.0; expect_status 0
	run llm-pack alias set bot production 1.1.0; expect_status 0; expect_err "already names"
	run llm-pack alias list bot; expect_status 0
	printf "%-24s %s\n%-24s %s\n" latest 1.1.0 production 1.1.0 > want; expect_out_file want
	run llm-pack alias set bot latest 1.0.0; expect_status 2; expect_err "latest is derived"
	run llm-pack alias set bot staging 7.0.0; expect_status 3; expect_err "no such version"
	run llm-pack alias set bot 1bad 1.0.0; expect_status 2
	run llm-pack alias set bot; expect_status 2
	run llm-pack alias frob bot; expect_status 2
	run llm-pack alias rm bot production --reason retired; expect_status 0
	[ ! -e "$REG/names/bot/aliases/production" ]
	run llm-pack alias rm bot production; expect_status 3
	jq -se "map(select(.action == \"alias\")) | map([.from, .to, .why]) ==
		[[null, \"1.0.0\", \"eval ok\"], [\"1.0.0\", \"1.1.0\", null], [\"1.1.0\", null, \"retired\"]]" \
		"$REG/audit.log"
	jq -se --arg d "$(ident bot-1.1.0.tar.gz)" "map(select(.action == \"alias\"))[1].digest == \$d" \
		"$REG/audit.log"
'

t 'an alias move is atomic: a reader always sees one version or the other' '
	art bot 1.0.0; art bot 2.0.0
	llm-pack push -q bot-1.0.0.tar.gz bot-2.0.0.tar.gz
	llm-pack alias set -q bot production 1.0.0
	( i=0; while [ $i -lt 40 ]; do
		llm-pack alias set -q bot production 2.0.0; llm-pack alias set -q bot production 1.0.0
		i=$((i + 1)); done; touch flipper.done ) &
	n=0
	while [ ! -e flipper.done ]; do
		v=$(cat "$REG/names/bot/aliases/production")
		case $v in 1.0.0|2.0.0) ;; *) echo "read \"$v\""; exit 1 ;; esac
		n=$((n + 1))
		if [ $((n % 20)) = 0 ]; then
			llm-pack show bot@production --json > s.json
			jq -e ".version == \"1.0.0\" or .version == \"2.0.0\"" s.json > /dev/null
		fi
	done
	wait
	echo "# $n reads during 80 moves"
	[ "$(jq -s "map(select(.alias == \"production\")) | length" "$REG/audit.log")" = 81 ]
	[ -z "$(ls -a "$REG/names/bot" | grep tmp)" ]
'

t 'two pushes at once never corrupt the registry: both versions, both log lines' '
	for i in 1 2 3 4 5 6; do art bot 1.0.$i; art other$i 1.0.0; done
	for i in 1 2 3 4 5 6; do
		llm-pack push -q bot-1.0.$i.tar.gz > /dev/null &
		llm-pack push -q other$i-1.0.0.tar.gz > /dev/null &
	done
	wait
	run llm-pack list bot --json
	jq -e ".versions | length == 6" out
	[ "$(lines "$REG/audit.log")" = 12 ]
	jq -se "map(select(.action == \"push\")) | length == 12" "$REG/audit.log"
	consistent
'

t 'the same version pushed twice at once: one push stores it, the other is a no-op' '
	art bot 1.0.0
	llm-pack push -q bot-1.0.0.tar.gz > a & llm-pack push -q bot-1.0.0.tar.gz > b & wait
	cmp a b
	[ "$(lines "$REG/audit.log")" = 1 ]
	consistent
'

t 'kill -9 at any moment of a push or an alias move leaves the registry consistent' '
	# An incompressible payload, so that a push takes long enough to be cut anywhere.
	mkdir big && head -c 3000000 /dev/urandom > big/w.bin && echo "{}" > big/config.json
	i=0
	while [ $i -lt 16 ]; do
		llm-pack create -q big --name big --version 1.0.$i > /dev/null
		i=$((i + 1))
	done
	llm-pack push -q big-1.0.0.tar.gz > /dev/null
	i=1
	while [ $i -lt 16 ]; do
		llm-pack push -q big-1.0.$i.tar.gz > /dev/null &
		p=$!
		llm-pack alias set -q big production 1.0.$((i - 1)) 2> /dev/null &
		q=$!
		sleep "$(awk -v i=$i "BEGIN { srand(i); printf \"%.3f\", rand() * 0.25 }")"
		kill -9 $p $q 2> /dev/null || true
		wait $p $q 2> /dev/null || true
		# A reader between the kill and any repair: no half version is ever visible.
		run llm-pack list big --json; expect_status 0
		for v in $(jq -r ".versions[].version" out); do
			[ -f "$REG/names/big/versions/$v/digest" ] || { echo "half version $v"; exit 1; }
		done
		i=$((i + 1))
	done
	consistent
	art big 9.0.0
	llm-pack push -q big-9.0.0.tar.gz > /dev/null
	llm-pack alias set -q big production 9.0.0
	consistent
	[ -z "$(ls -a "$REG/names/big" | grep "^\.tmp")" ] || { ls -a "$REG/names/big"; exit 1; }
	[ ! -e "$REG/journal" ]
	# The log holds every version that is there exactly once, and nothing that is not.
	ls "$REG/names/big/versions" | sort > have
	jq -r "select(.action == \"push\") | .version" "$REG/audit.log" | sort > logged
	diff have logged
	echo "# $(lines have) of 17 pushes landed"
'

t 'a journal left by a change cut short after its rename is completed in the log, once' '
	art bot 1.0.0; art bot 1.1.0
	llm-pack push -q bot-1.0.0.tar.gz > /dev/null
	# As if a push died between its rename and its log line: the version is there, the
	# journal says so, the log does not.
	cp -r "$REG/names/bot/versions/1.0.0" "$REG/names/bot/.tmp-push-x"
	tail -n 1 "$REG/audit.log" | sed "s/1\.0\.0/1.0.1/" > "$REG/journal"
	mv "$REG/names/bot/.tmp-push-x" "$REG/names/bot/versions/1.0.1"
	# (1.0.1 holds the bytes of 1.0.0, whose digest the journal names.)  A torn last line
	# is cut off too.
	printf "{\"ts\":\"torn" >> "$REG/audit.log"
	llm-pack push -q bot-1.1.0.tar.gz > /dev/null
	jq -r ".version // empty" "$REG/audit.log" > got
	printf "1.0.0\n1.0.1\n1.1.0\n" > want
	diff want got
	[ ! -e "$REG/journal" ]
	# A journal whose change never landed is dropped, not logged.
	echo "{\"action\":\"push\",\"name\":\"bot\",\"version\":\"5.0.0\",\"digest\":\"sha256:00\"}" > "$REG/journal"
	llm-pack alias set -q bot production 1.1.0
	! grep -q 5.0.0 "$REG/audit.log"
	[ ! -e "$REG/journal" ]
'

t 'promote: verified, and signed by a listed key when the registry requires it' '
	llm-pack keygen -q --out release
	llm-pack keygen -q --out rogue
	art bot 1.0.0; art bot 1.1.0; art bot 1.2.0
	llm-pack sign -q bot-1.1.0.tar.gz --key release.pem
	llm-pack sign -q bot-1.2.0.tar.gz --key rogue.pem
	llm-pack push -q bot-1.0.0.tar.gz bot-1.1.0.tar.gz bot-1.2.0.tar.gz > /dev/null
	[ -f "$REG/names/bot/versions/1.1.0/artifact.tar.gz.sig" ]
	# No policy: an unsigned version verifies and is promoted.
	run llm-pack promote bot@1.0.0 --to production --reason "no policy yet"; expect_status 0
	mkdir -p "$REG/keys" && cp release.pub "$REG/keys/"
	echo "{\"require_signature\": true, \"pubkeys\": [\"keys/release.pub\"]}" > "$REG/registry.json"
	run llm-pack promote bot@1.0.0 --to staging; expect_status 1; expect_err "not signed"
	run llm-pack promote bot@1.2.0 --to production; expect_status 1
	expect_err "does not verify under any key"
	run llm-pack show bot@production --json; jq -e ".version == \"1.0.0\"" out
	run llm-pack promote bot@1.1.0 --to production --reason "signed release"; expect_status 0
	expect_err "promoted bot@1.1.0 to production (was 1.0.0)"
	run llm-pack promote bot@production --to stable; expect_status 0
	[ "$(cat "$REG/names/bot/aliases/stable")" = 1.1.0 ]
	jq -se "map(select(.action == \"promote\")) | map([.alias, .from, .to, .why]) ==
		[[\"production\", null, \"1.0.0\", \"no policy yet\"],
		 [\"production\", \"1.0.0\", \"1.1.0\", \"signed release\"], [\"stable\", null, \"1.1.0\", null]]" \
		"$REG/audit.log"
	# A tampered artifact is not promoted, signed or not.
	chmod u+w "$REG/names/bot/versions/1.1.0/artifact.tar.gz"
	head -c 700 bot-1.1.0.tar.gz > "$REG/names/bot/versions/1.1.0/artifact.tar.gz"
	run llm-pack promote bot@1.1.0 --to canary; [ "$status" = 1 ] || [ "$status" = 3 ]
	[ ! -e "$REG/names/bot/aliases/canary" ]
	run llm-pack promote bot@1.1.0; expect_status 2; expect_err "--to"
	run llm-pack promote bot --to x; expect_status 2
	echo "{\"require_signature\": true}" > "$REG/registry.json"
	run llm-pack promote bot@1.1.0 --to x; expect_status 1; expect_err "no pubkeys"
'

t 'lineage follows the parents through the registry, with digests' '
	art base 0.1.0
	art bot 1.0.0 --parent base-0.1.0.tar.gz
	art bot 1.1.0 --parent bot-1.0.0.tar.gz
	art bot 2.0.0 --parent elsewhere@3.0.0 2> /dev/null
	llm-pack push -q base-0.1.0.tar.gz bot-1.0.0.tar.gz bot-1.1.0.tar.gz bot-2.0.0.tar.gz > /dev/null
	run llm-pack lineage bot@1.1.0; expect_status 0
	printf "bot@1.1.0 %s\n<- bot@1.0.0 %s\n<- base@0.1.0 %s\n" "$(ident bot-1.1.0.tar.gz)" \
		"$(ident bot-1.0.0.tar.gz)" "$(ident base-0.1.0.tar.gz)" > want
	expect_out_file want
	run llm-pack lineage bot@2.0.0 --json; expect_status 0
	jq -e "length == 2 and .[1] == {ref: \"elsewhere@3.0.0\", missing: true}" out
	run llm-pack lineage base --json; jq -e "length == 1" out
	run llm-pack lineage bot@7.0.0; expect_status 3
'

t 'history: the whole log or one name, as text and JSON' '
	art bot 1.0.0; art util 0.1.0
	LLMOPS_USER=ci@runner llm-pack push -q bot-1.0.0.tar.gz util-0.1.0.tar.gz --reason nightly > /dev/null
	llm-pack alias set -q bot production 1.0.0 --reason go
	run llm-pack history; expect_status 0
	[ "$(lines out)" = 3 ]
	grep -E "ci@runner +push +bot@1\.0\.0 sha256:[0-9a-f]{12}  # nightly$" out
	grep -E "alias +bot@production \(none\) -> 1\.0\.0  # go$" out
	run llm-pack history bot --json; expect_status 0
	jq -e "length == 2 and .[0].who == \"ci@runner\" and .[1].to == \"1.0.0\"" out
	run llm-pack history nobody --json; expect_status 0; expect_out "[]"
	rm -rf "$REG"; run llm-pack history; expect_status 0; expect_no_out
'

t '--registry and LLMOPS_PACK_REGISTRY pick the registry' '
	art bot 1.0.0
	llm-pack push -q --registry r1 bot-1.0.0.tar.gz > /dev/null
	[ -d r1/names/bot/versions/1.0.0 ]
	LLMOPS_PACK_REGISTRY=$PWD/r2 llm-pack push -q bot-1.0.0.tar.gz > /dev/null
	[ -d r2/names/bot/versions/1.0.0 ]
	[ ! -e "$REG" ]
	run llm-pack push --registry oci://localhost:1/x --help; expect_status 0
'

t 'a registry of 10,000 versions across 1,000 names answers list, show and aliases' '
	# Written directly in the layout of llmops-registry(5), with only the files list, show
	# and resolution read: pushing 10,000 artifacts would take minutes and test nothing more.
	art seed 1.0.0
	"$py" - "$REG" seed-1.0.0.tar.gz <<-EOF
	import hashlib, json, os, shutil, sys
	reg, art = sys.argv[1], sys.argv[2]
	for i in range(1000):
	    name = "model-%04d" % i
	    for j in range(10):
	        v = "1.%d.%d" % (j // 3, j * 7 % 10) if j < 9 else "1.10.0"
	        vd = os.path.join(reg, "names", name, "versions", v)
	        os.makedirs(vd)
	        m = json.dumps({"created": "2026-01-01T00:00:00Z", "files": [], "format": 1,
	                        "name": name, "version": v}, separators=(",", ":"), sort_keys=True)
	        open(os.path.join(vd, "MANIFEST.json"), "w").write(m)
	        open(os.path.join(vd, "digest"), "w").write(
	            "sha256:" + hashlib.sha256(m.encode()).hexdigest() + "\n")
	    os.makedirs(os.path.join(reg, "names", name, "aliases"))
	    open(os.path.join(reg, "names", name, "aliases", "production"), "w").write("1.2.2\n")
	EOF
	ms() { date +%s%N | cut -c1-13; }
	t0=$(ms); run llm-pack list; t1=$(ms)
	expect_status 0
	[ "$(lines out)" = 1001 ]
	grep -E "^model-0500 +10 +1\.10\.0 +production=1\.2\.2$" out
	t2=$(ms); run llm-pack list --json; t3=$(ms)
	jq -e "length == 1000 and ([.[].versions | length] | add) == 10000" out
	t4=$(ms); run llm-pack show model-0999@production --json; t5=$(ms)
	expect_status 0
	jq -e ".version == \"1.2.2\" and .name == \"model-0999\" and (.digest | test(\"^sha256:\"))" out
	t6=$(ms); run llm-pack show model-0007 --json; t7=$(ms)
	jq -e ".version == \"1.10.0\"" out
	t8=$(ms); run llm-pack list model-0123 --json; t9=$(ms)
	jq -e "[.versions[].version] | .[0] == \"1.10.0\" and length == 10" out
	# A real push lands among them without a scan.
	t10=$(ms); llm-pack push -q seed-1.0.0.tar.gz > /dev/null; t11=$(ms)
	run llm-pack show seed; expect_status 0
	echo "# list $((t1 - t0)) ms, list --json $((t3 - t2)) ms, show @alias $((t5 - t4)) ms," \
		"show latest $((t7 - t6)) ms, list NAME $((t9 - t8)) ms, push $((t11 - t10)) ms"
'

t 'every verb rejects wrong operands with a usage error (2)' '
	run llm-pack show; expect_status 2
	run llm-pack show a b; expect_status 2
	run llm-pack show "a@b@c"; expect_status 2
	run llm-pack lineage; expect_status 2
	run llm-pack list a b; expect_status 2
	run llm-pack history a b; expect_status 2
	run llm-pack history BAD; expect_status 2
	run llm-pack pull; expect_status 2
'
done_testing
