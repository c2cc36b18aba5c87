#!/bin/sh
# OCI registries (lib/artifact/oci.c) against real ones on loopback: Debian's docker-registry
# (Docker's distribution, the server GHCR and Harbor descend from) three times over: plain
# HTTP, token auth with a token server of our own (tests/cli/oci-token-server.py), and TLS
# with Basic auth (htpasswd).  tests/unit/oci-cli drives the client with any bytes; llm-pack
# push/pull/list/show/alias/promote drive the oci:// registry kind; skopeo reads what we
# pushed.  Every server is started here and stopped when the script ends.
. "$top_srcdir/tests/cli/lib.sh"
cli=$top_builddir/tests/unit/oci-cli
py=/usr/bin/python3
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

# Nothing from the user's own setup: no Docker or Podman logins, no LLMOPS_OCI_* settings.
mkdir -p "$scratch/docker" "$scratch/home"
DOCKER_CONFIG=$scratch/docker
LLMOPS_HOME=$scratch/home
export DOCKER_CONFIG LLMOPS_HOME
unset REGISTRY_AUTH_FILE XDG_RUNTIME_DIR LLMOPS_OCI_INSECURE LLMOPS_OCI_USER LLMOPS_OCI_PASSWORD \
	LLMOPS_OCI_CA_FILE LLMOPS_OCI_CHUNK_SIZE LLMOPS_PACK_REGISTRY

missing=
for tool in docker-registry skopeo openssl jq; do
	command -v "$tool" >/dev/null 2>&1 || missing="$missing $tool"
done
[ -x "$py" ] || missing="$missing python3"

free_port() {
	"$py" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

# wait_port PORT: until something listens there (at most 20 s).
wait_port() {
	"$py" - "$1" <<'EOF'
import socket, sys, time
for _ in range(400):
    try:
        socket.create_connection(("127.0.0.1", int(sys.argv[1])), 0.2).close()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit(1)
EOF
}

# start_registry DIR PORT [HTTP_YAML [YAML]]: docker-registry on 127.0.0.1:PORT storing under
# DIR, with HTTP_YAML added under http (tls) and YAML at the top (auth); its access log goes
# to DIR/access.log.
start_registry() {
	_rdir=$1
	_rport=$2
	mkdir -p "$_rdir/data"
	cat >"$_rdir/config.yml" <<EOF
version: 0.1
log:
  level: warn
storage:
  filesystem:
    rootdirectory: $_rdir/data
  delete:
    enabled: true
http:
  addr: 127.0.0.1:$_rport
  secret: llmops-test
${3-}
catalog:
  maxentries: 2
${4-}
EOF
	docker-registry serve "$_rdir/config.yml" >"$_rdir/access.log" 2>"$_rdir/err.log" &
	echo $! >>"$scratch/pids"
	wait_port "$_rport" ||
		{ echo "docker-registry did not start:" >&2; cat "$_rdir/err.log" >&2; return 1; }
}

if [ -z "$missing" ]; then
	# The plain registry: HTTP, anonymous, catalog pages of 2 (so the Link header is followed).
	port=$(free_port)
	start_registry "$scratch/reg" "$port"
	R=oci://127.0.0.1:$port

	# Token auth: a token server signing with a key whose certificate the registry trusts.
	tok=$scratch/tok
	mkdir -p "$tok"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tok/key.pem" -out "$tok/cert.pem" \
		-days 2 -subj /CN=llmops-token 2>/dev/null
	"$py" "$top_srcdir/tests/cli/oci-token-server.py" --port-file "$tok/port" --log "$tok/log" \
		--key "$tok/key.pem" --cert "$tok/cert.pem" --issuer llmops-test-issuer \
		--user alice --password 's3cret pass' 2>"$tok/err" &
	echo $! >>"$scratch/pids"
	i=0
	while [ ! -s "$tok/port" ] && [ $i -lt 200 ]; do i=$((i + 1)); sleep 0.05; done
	tport=$(free_port)
	start_registry "$scratch/treg" "$tport" "" "auth:
  token:
    realm: http://127.0.0.1:$(cat "$tok/port")/token
    service: llmops-test
    issuer: llmops-test-issuer
    rootcertbundle: $tok/cert.pem"
	T=oci://127.0.0.1:$tport

	# TLS with Basic auth: a certificate for 127.0.0.1 and a bcrypt htpasswd.
	tls=$scratch/tls
	mkdir -p "$tls"
	openssl req -x509 -newkey rsa:2048 -nodes -keyout "$tls/key.pem" -out "$tls/cert.pem" \
		-days 2 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 2>/dev/null
	"$py" -W ignore -c 'import crypt; print("bob:" + crypt.crypt("pw2", crypt.mksalt(crypt.METHOD_BLOWFISH)))' \
		>"$tls/htpasswd"
	sport=$(free_port)
	start_registry "$scratch/sreg" "$sport" "  tls:
    certificate: $tls/cert.pem
    key: $tls/key.pem" "auth:
  htpasswd:
    realm: llmops-basic
    path: $tls/htpasswd"
	S=oci://127.0.0.1:$sport
fi

t 'the test has docker-registry, skopeo, openssl, jq and Debian'"'"'s python3' '
	[ -z "$missing" ] || { echo "missing:$missing (scripts/deps test installs them)"; false; }
'

# Bytes to push: a "tarball" and a "MANIFEST.json" (the client does not look inside).
head -c 300001 /dev/urandom >"$scratch/blob.bin"
printf '{"name":"bot","version":"1.0.0"}' >"$scratch/cfg.json"
blob=$scratch/blob.bin
cfg=$scratch/cfg.json
created=2026-11-27T00:00:00Z

t 'a loopback registry is spoken to over plain HTTP by default' '
	run "$cli" "$R" ping; expect_status 0
	run "$cli" --transport https "$R" ping; expect_status 3; expect_err "oci://127.0.0.1:$port"
'

t 'bytes pushed as an artifact come back byte-identical, by tag and by digest' '
	run "$cli" "$R/ns" push ns/bot "$blob" "$cfg" bot 1.0.0 "$created" 1.0.0; expect_status 0
	dg=$(cat out)
	case $dg in sha256:????????????????????????????????????????????????????????????????) ;; *) false ;; esac
	run "$cli" "$R/ns" pull ns/bot 1.0.0 t.bin c.json; expect_status 0
	cmp t.bin "$blob"; cmp c.json "$cfg"
	jq -e --arg d "$dg" ".digest == \$d and .layer_size == 300001 and .signed == false" out
	run "$cli" "$R/ns" pull ns/bot "$dg" d.bin; expect_status 0
	cmp d.bin "$blob"
'

t 'the manifest is an OCI image manifest with our artifactType, config and layer types' '
	run "$cli" "$R" manifest ns/bot 1.0.0; expect_status 0
	jq -e ".schemaVersion == 2 and .mediaType == \"application/vnd.oci.image.manifest.v1+json\"" out
	jq -e ".artifactType == \"application/vnd.llmops.model.v1\"" out
	jq -e ".config.mediaType == \"application/vnd.llmops.model.config.v1+json\" and .config.size == $(wc -c < "$cfg")" out
	jq -e "[.layers[].mediaType] == [\"application/vnd.llmops.model.layer.v1.tar+gzip\"]" out
	jq -e ".layers[0].size == 300001 and .layers[0].digest == \"sha256:$(sha256sum "$blob" | cut -c1-64)\"" out
	jq -e ".annotations[\"org.opencontainers.image.version\"] == \"1.0.0\" and .annotations[\"org.opencontainers.image.title\"] == \"bot\" and .annotations[\"org.opencontainers.image.created\"] == \"$created\"" out
'

t 'skopeo reads what we pushed: the manifest, the config, and our type named' '
	run skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/ns/bot:1.0.0"; expect_status 0
	jq -e ".artifactType == \"application/vnd.llmops.model.v1\" and .layers[0].mediaType == \"application/vnd.llmops.model.layer.v1.tar+gzip\"" out
	run skopeo inspect --config --raw --tls-verify=false "docker://127.0.0.1:$port/ns/bot:1.0.0"; expect_status 0
	cmp out "$cfg"
	# Plain inspect reads the manifest and declines, as for any artifact that is not an image.
	run skopeo inspect --tls-verify=false "docker://127.0.0.1:$port/ns/bot:1.0.0"
	expect_err "application/vnd.llmops.model.config.v1+json"
'

t 'skopeo copies the artifact to a directory: the layer is our tarball, byte for byte' '
	printf "{\"default\":[{\"type\":\"insecureAcceptAnything\"}]}" > policy.json
	run skopeo --policy policy.json copy --src-tls-verify=false \
		"docker://127.0.0.1:$port/ns/bot:1.0.0" "dir:$PWD/copy"; expect_status 0
	cmp "copy/$(sha256sum "$blob" | cut -c1-64)" "$blob"
	jq -e ".artifactType == \"application/vnd.llmops.model.v1\"" copy/manifest.json
'

t 'a blob larger than the chunk size goes up in PATCH chunks and comes back identical' '
	head -c 250001 /dev/urandom > c.bin
	run "$cli" --chunk 100000 "$R" blob-push ns/chunked c.bin; expect_status 0
	dg=$(cat out)
	[ "$(grep -c "\"PATCH /v2/ns/chunked/blobs/uploads/" "$scratch/reg/access.log")" = 3 ]
	run "$cli" "$R" blob-exists ns/chunked "$dg"; expect_out "yes 250001"
	run "$cli" "$R" blob-pull ns/chunked "$dg" 250001 back.bin; expect_status 0
	cmp back.bin c.bin
'

t 'pushing the same artifact again uploads no blob' '
	before=$(grep -c "\"POST /v2/ns/bot/blobs/uploads/" "$scratch/reg/access.log")
	[ "$before" = 2 ]
	run "$cli" "$R" push ns/bot "$blob" "$cfg" bot 1.0.0 "$created" 1.0.0; expect_status 0
	[ "$(grep -c "\"POST /v2/ns/bot/blobs/uploads/" "$scratch/reg/access.log")" = 2 ]
'

t 'tags list every tag; an alias tag moves by re-putting the manifest under it' '
	printf "{\"name\":\"bot\",\"version\":\"2.0.0\"}" > c2.json
	run "$cli" "$R" push ns/bot "$blob" c2.json bot 2.0.0 "$created" 2.0.0; expect_status 0
	d2=$(cat out)
	run "$cli" "$R" head ns/bot 1.0.0; d1=$(cat out)
	[ "$d1" != "$d2" ]
	run "$cli" "$R" tag ns/bot 1.0.0 production; expect_out "$d1"
	run "$cli" "$R" head ns/bot production; expect_out "$d1"
	run "$cli" "$R" tag ns/bot 2.0.0 production; expect_out "$d2"
	run "$cli" "$R" head ns/bot production; expect_out "$d2"
	run "$cli" "$R" tags ns/bot; expect_status 0
	sort out > got; printf "1.0.0\n2.0.0\nproduction\n" > want; cmp got want
	run "$cli" "$R" head ns/bot staging; expect_out "absent"
	run "$cli" "$R" tags ns/nothing-here; expect_status 0; expect_no_out
'

t 'the catalog follows Link pages and keeps the namespace'"'"'s repositories only' '
	for n in a b c d e; do
		run "$cli" "$R" push "ns2/$n" "$blob" "$cfg" "$n" 1.0.0 "$created" 1.0.0; expect_status 0
	done
	run "$cli" "$R" push other/f "$blob" "$cfg" f 1.0.0 "$created" 1.0.0; expect_status 0
	before=$(grep -c "\"GET /v2/_catalog" "$scratch/reg/access.log" || true)
	run "$cli" "$R/ns2" catalog; expect_status 0
	printf "a\nb\nc\nd\ne\n" > want; cmp out want
	# Pages of 2 over at least 7 repositories: 4 requests or more.
	after=$(grep -c "\"GET /v2/_catalog" "$scratch/reg/access.log")
	[ $((after - before)) -ge 4 ]
'

t 'a blob altered in the registry is refused on pull, and nothing is left behind' '
	run "$cli" "$R" push ns/evil "$blob" "$cfg" evil 1.0.0 "$created" 1.0.0; expect_status 0
	hex=$(sha256sum "$blob" | cut -c1-64)
	f=$scratch/reg/data/docker/registry/v2/blobs/sha256/$(printf %s "$hex" | cut -c1-2)/$hex/data
	cp "$f" saved
	printf X | dd of="$f" bs=1 seek=4096 conv=notrunc 2>/dev/null
	run "$cli" "$R" pull ns/evil 1.0.0 got.bin; cp saved "$f"
	expect_status 1; expect_err "check_failed"; expect_err "refusing them"
	[ ! -e got.bin ] && [ -z "$(ls -A | grep -v -e ^out$ -e ^err$ -e ^saved$)" ]
'

t 'a missing tag is not found, with the registry'"'"'s own error code' '
	run "$cli" "$R" pull ns/bot 9.9.9 x.bin; expect_status 3
	expect_err "not_found"; expect_err "oci://127.0.0.1:$port/ns/bot"; expect_err "HTTP 404"
	expect_err "MANIFEST_UNKNOWN"
	run "$cli" "$R" tag ns/bot 9.9.9 production; expect_status 3
	run "$cli" "$R" pull ns/bot bad/tag x.bin; expect_status 2
	[ ! -e x.bin ]
'

t 'a manifest that is not an llmops artifact is refused on pull' '
	printf "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s},\"layers\":[]}" \
		"$(sha256sum "$cfg" | cut -c1-64)" "$(wc -c < "$cfg")" > m.json
	run "$cli" "$R" blob-push ns/image "$cfg"; expect_status 0
	run "$cli" "$R" manifest-put ns/image 1.0 m.json application/vnd.oci.image.manifest.v1+json; expect_status 0
	run "$cli" "$R" pull ns/image 1.0 x.bin; expect_status 1
	expect_err "not an llmops artifact"
'

t 'token auth: anonymous is refused by the token server, a login gets scoped tokens' '
	run "$cli" "$T" push bot "$blob" "$cfg" bot 1.0.0 "$created" 1.0.0; expect_status 3
	expect_err "token server"; expect_err "HTTP 401"; expect_err "LLMOPS_OCI_USER"
	export LLMOPS_OCI_USER=alice LLMOPS_OCI_PASSWORD="s3cret pass"
	run "$cli" "$T" push bot "$blob" "$cfg" bot 1.0.0 "$created" 1.0.0; expect_status 0
	run "$cli" "$T" pull bot 1.0.0 t.bin
	expect_status 0; cmp t.bin "$blob"
	# Pull for the HEADs, push and pull for the uploads; the login went to the token server.
	jq -se "map(select(.granted)) | (map(.scopes[]) | index(\"repository:bot:pull\") != null) and any(.scopes[] | test(\"^repository:bot:(push,pull|pull,push)$\")) and all(.service == \"llmops-test\" and .user == \"alice\")" "$tok/log"
'

t 'token auth: a wrong password is refused, naming the token server' '
	run "$cli" --user alice --password wrong "$T" tags bot; expect_status 3
	expect_err "refused the login"; expect_err "UNAUTHORIZED"
'

t 'TLS: a certificate the system does not trust is refused; with its CA, Basic auth works' '
	run env LLMOPS_OCI_INSECURE=0 "$cli" "$S" ping; expect_status 3; expect_err "certificate"
	export LLMOPS_OCI_INSECURE=0 LLMOPS_OCI_CA_FILE="$tls/cert.pem"
	run "$cli" "$S" ping; expect_status 3; expect_err "HTTP 401"; expect_err "log in"
	run env LLMOPS_OCI_USER=bob LLMOPS_OCI_PASSWORD=pw2 \
		"$cli" "$S" push m/bot "$blob" "$cfg" bot 1.0.0 "$created" 1.0.0
	expect_status 0
	run env LLMOPS_OCI_USER=bob LLMOPS_OCI_PASSWORD=nope "$cli" "$S" tags m/bot; expect_status 3
	expect_err "HTTP 401"
	# Plain HTTP to a TLS port is no registry at all.
	run env LLMOPS_OCI_INSECURE=1 "$cli" "$S" ping; expect_status 3
'

t 'Basic credentials come from a Docker config.json when none are given' '
	mkdir dc
	printf "{\"auths\":{\"https://127.0.0.1:%s/v1/\":{\"auth\":\"%s\"}}}" "$sport" "$(printf bob:pw2 | base64)" > dc/config.json
	export DOCKER_CONFIG="$PWD/dc" LLMOPS_OCI_INSECURE=0 LLMOPS_OCI_CA_FILE="$tls/cert.pem"
	run "$cli" "$S" tags m/bot; expect_status 0; expect_out "1.0.0"
	run "$cli" --no-auth-files "$S" tags m/bot; expect_status 3
'

t 'a signature travels as a second layer and comes back' '
	printf "signature bytes" > s.sig
	run "$cli" "$R" push ns/signed "$blob" "$cfg" signed 1.0.0 "$created" 1.0.0 --sig s.sig; expect_status 0
	run "$cli" "$R" manifest ns/signed 1.0.0
	jq -e "[.layers[].mediaType] == [\"application/vnd.llmops.model.layer.v1.tar+gzip\", \"application/vnd.llmops.model.signature.v1\"]" out
	run "$cli" "$R" pull ns/signed 1.0.0 t.bin c.json t.sig; expect_status 0
	cmp t.sig s.sig; cmp t.bin "$blob"
	jq -e ".signed == true" out
'

# --- the oci:// registry kind, through llm-pack ----------------------------------------------
mkdir -p "$scratch/model"
printf '{"hidden_size": 8}\n' >"$scratch/model/config.json"
head -c 50000 /dev/urandom >"$scratch/model/model.safetensors"
(cd "$scratch" && llm-pack create model --name bot --version 1.0.0 --created "$created" -q &&
	llm-pack create model --name bot --version 1.1.0+build.7 --created "$created" -q) >/dev/null
a1=$scratch/bot-1.0.0.tar.gz
a2=$scratch/bot-1.1.0+build.7.tar.gz
P=$R/team

t 'llm-pack pushes to oci:// and pulls back the same bytes' '
	run llm-pack push --registry "$P" "$a1" "$a2"; expect_status 0
	grep -q "^bot@1.0.0 sha256:" out; grep -q "^bot@1.1.0+build.7 sha256:" out
	run llm-pack pull --registry "$P" bot@1.0.0 -o got.tar.gz; expect_status 0
	cmp got.tar.gz "$a1"
	run "$cli" "$R" tags team/bot; sort out > got; printf "1.0.0\n1.1.0_build.7\n" > want; cmp got want
	run skopeo inspect --raw --tls-verify=false "docker://127.0.0.1:$port/team/bot:1.1.0_build.7"
	jq -e ".artifactType == \"application/vnd.llmops.model.v1\" and .annotations[\"org.opencontainers.image.version\"] == \"1.1.0+build.7\" and .layers[0].annotations[\"org.opencontainers.image.title\"] == \"bot-1.1.0+build.7.tar.gz\"" out
'

t 'llm-pack show and list read versions, identity and pusher from the OCI registry' '
	id=$(tar -xOzf "$a1" MANIFEST.json | sha256sum | cut -c1-64)
	run llm-pack show --registry "$P" bot@1.0.0; expect_status 0
	grep -q "sha256:$id" out
	run skopeo inspect --config --raw --tls-verify=false "docker://127.0.0.1:$port/team/bot:1.0.0"
	tar -xOzf "$a1" MANIFEST.json | cmp - out
	run llm-pack list --registry "$P" --json; expect_status 0
	jq -e ".[0].name == \"bot\" and .[0].versions == [\"1.0.0\", \"1.1.0+build.7\"] and .[0].latest == \"1.1.0+build.7\"" out
'

t 'pushing a version again is a no-op; another artifact under it is refused' '
	run llm-pack push --registry "$P" "$a1"; expect_status 0
	mkdir m2; printf x > m2/other.bin
	llm-pack create m2 --name bot --version 1.0.0 --created "$created" -q >/dev/null
	run llm-pack push --registry "$P" bot-1.0.0.tar.gz; expect_status 1
	run llm-pack pull --registry "$P" bot@1.0.0 -o again.tar.gz; cmp again.tar.gz "$a1"
'

t 'llm-pack alias and promote move an OCI tag; pull by alias follows it' '
	run llm-pack alias set --registry "$P" bot production 1.0.0; expect_status 0
	run "$cli" "$R" head team/bot production; p1=$(cat out)
	run "$cli" "$R" head team/bot 1.0.0; expect_out "$p1"
	run llm-pack promote --registry "$P" bot@1.1.0+build.7 --to production; expect_status 0
	run "$cli" "$R" head team/bot 1.1.0_build.7; v2=$(cat out)
	run "$cli" "$R" head team/bot production; expect_out "$v2"
	run llm-pack pull --registry "$P" bot@production -o p.tar.gz; expect_status 0
	cmp p.tar.gz "$a2"
	# A tag on something that is not ours (a container image) is no alias.
	run "$cli" "$R" blob-push team/bot "$cfg"; expect_status 0
	printf "{\"schemaVersion\":2,\"mediaType\":\"application/vnd.oci.image.manifest.v1+json\",\"config\":{\"mediaType\":\"application/vnd.oci.image.config.v1+json\",\"digest\":\"sha256:%s\",\"size\":%s},\"layers\":[]}" \
		"$(sha256sum "$cfg" | cut -c1-64)" "$(wc -c < "$cfg")" > m.json
	run "$cli" "$R" manifest-put team/bot main m.json application/vnd.oci.image.manifest.v1+json
	expect_status 0
	run llm-pack list --registry "$P" --json; expect_status 0
	jq -e ".[0].aliases == {\"production\": \"1.1.0+build.7\"}" out
	run llm-pack alias set --registry "$P" bot staging 7.7.7; expect_status 3
	# distribution 2.x cannot delete a tag alone: said plainly, and the alias stays.
	run llm-pack alias rm --registry "$P" bot production; expect_status 3
	expect_err "cannot delete a tag"
	run "$cli" "$R" head team/bot production; expect_out "$v2"
'

t 'an OCI registry keeps no audit log: history says so' '
	run llm-pack history --registry "$P"; expect_status 2
	expect_err "history"; expect_err "oci"
'

done_testing
