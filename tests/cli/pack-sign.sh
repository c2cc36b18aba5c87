#!/bin/sh
# llm-pack keygen, sign, and verify/unpack --pubkey: good and wrong keys, tampered artifacts
# and signature files; signing never changes the tarball or its identity; OpenSSL alone
# checks the signature.
. "$top_srcdir/tests/cli/lib.sh"
export SOURCE_DATE_EPOCH=1700000000

setup() {
	mkdir m && printf "{}\n" > m/config.json && head -c 50000 /dev/urandom > m/model.bin
	llm-pack create m --name m --version 1.0.0 -q > /dev/null
	llm-pack keygen --out k -q > kid
	llm-pack keygen --out other -q > /dev/null
}

t 'keygen writes a 0600 private key and a public key, and prints the key id' '
	setup
	[ "$(stat -c %a k.pem)" = 600 ]
	grep -q "BEGIN PRIVATE KEY" k.pem
	grep -q "BEGIN PUBLIC KEY" k.pub
	grep -qE "^sha256:[0-9a-f]{64}$" kid
	[ "$(cat kid)" = "sha256:$(openssl pkey -pubin -in k.pub -outform DER | tail -c 32 | sha256sum | cut -c1-64)" ]
'

t 'keygen never overwrites a key' '
	setup
	cp k.pem k.before
	run llm-pack keygen --out k
	expect_status 2
	expect_err "exists already"
	cmp k.pem k.before
'

t 'sign writes a canonical signature file and changes neither the tarball nor the identity' '
	setup
	cp m-1.0.0.tar.gz before.tar.gz
	id=$(llm-pack inspect --json m-1.0.0.tar.gz | jq -r .identity)
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > out
	[ "$(cat out)" = m-1.0.0.tar.gz.sig ]
	cmp before.tar.gz m-1.0.0.tar.gz
	[ "$(llm-pack inspect --json m-1.0.0.tar.gz | jq -r .identity)" = "$id" ]
	jq -e ".alg == \"ed25519\" and .format == 1 and .digest == \"$id\" and .key_id == \"$(cat kid)\"" m-1.0.0.tar.gz.sig
	jq -c -S . m-1.0.0.tar.gz.sig | cmp - m-1.0.0.tar.gz.sig
	cp m-1.0.0.tar.gz.sig first.sig
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	cmp first.sig m-1.0.0.tar.gz.sig
'

t 'verify --pubkey accepts the right key and refuses another' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	llm-pack verify --pubkey k.pub m-1.0.0.tar.gz > out
	grep -q "signed by $(cat kid)" out
	run llm-pack verify --pubkey other.pub m-1.0.0.tar.gz
	expect_status 1
	expect_err "signed with key $(cat kid)"
	llm-pack verify -q --pubkey k.pem m-1.0.0.tar.gz > /dev/null
'

t 'verify --pubkey refuses an unsigned artifact' '
	setup
	run llm-pack verify --pubkey k.pub m-1.0.0.tar.gz
	expect_status 1
	expect_err "not signed"
'

t 'a signature moved to another artifact is refused' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	echo more > m/extra.txt
	mkdir o && llm-pack create m --name m --version 1.0.0 --out o -q > /dev/null
	cp m-1.0.0.tar.gz.sig o/
	run llm-pack verify --pubkey k.pub o/m-1.0.0.tar.gz
	expect_status 1
	expect_err "signs another artifact"
'

t 'a signature file whose digest was edited to match is refused as a bad signature' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	mkdir o && echo more > m/extra.txt && llm-pack create m --name m --version 1.0.0 --out o -q > /dev/null
	id=$(llm-pack inspect --json o/m-1.0.0.tar.gz | jq -r .identity)
	jq -c -S ".digest = \"$id\"" m-1.0.0.tar.gz.sig > o/m-1.0.0.tar.gz.sig
	run llm-pack verify --pubkey k.pub o/m-1.0.0.tar.gz
	expect_status 1
	expect_err "bad signature"
'

t 'a tampered artifact fails verification even with a good signature file' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	size=$(wc -c < m-1.0.0.tar.gz)
	printf "\\001\\002\\003" | dd of=m-1.0.0.tar.gz bs=1 seek=$((size - 2000)) conv=notrunc 2>/dev/null
	run llm-pack verify --pubkey k.pub m-1.0.0.tar.gz
	expect_status 1
	run llm-pack unpack --pubkey k.pub m-1.0.0.tar.gz t
	expect_status 1
	[ ! -e t ]
'

t 'sign refuses a damaged artifact and writes no signature' '
	setup
	head -c 3000 m-1.0.0.tar.gz > cut.tar.gz
	run llm-pack sign --key k.pem cut.tar.gz
	expect_status 1
	[ ! -e cut.tar.gz.sig ]
'

t 'unpack --pubkey unpacks only with a good signature' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	run llm-pack unpack --pubkey other.pub m-1.0.0.tar.gz t
	expect_status 1
	[ ! -e t ]
	llm-pack unpack -q --pubkey k.pub m-1.0.0.tar.gz t > /dev/null
	cmp t/model.bin m/model.bin
'

t '--sig names another signature file; sign --out writes one' '
	setup
	llm-pack sign --key other.pem --out other.sig m-1.0.0.tar.gz -q > /dev/null
	[ ! -e m-1.0.0.tar.gz.sig ]
	llm-pack verify -q --pubkey other.pub --sig other.sig m-1.0.0.tar.gz > /dev/null
	run llm-pack verify --sig other.sig m-1.0.0.tar.gz
	expect_status 2
'

t 'OpenSSL alone verifies the signature over the documented message' '
	setup
	llm-pack sign --key k.pem m-1.0.0.tar.gz -q > /dev/null
	id=$(tar xOzf m-1.0.0.tar.gz MANIFEST.json | sha256sum | cut -c1-64)
	printf "llmops-artifact-v1 sha256:%s" "$id" > msg
	jq -r .sig m-1.0.0.tar.gz.sig | base64 -d > sig.bin
	openssl pkeyutl -verify -pubin -inkey k.pub -rawin -in msg -sigfile sig.bin > v
	grep -q "Signature Verified Successfully" v
	printf "x" >> msg
	! openssl pkeyutl -verify -pubin -inkey k.pub -rawin -in msg -sigfile sig.bin > v 2>&1
'

t 'keys made by openssl genpkey sign and verify too; a non-Ed25519 key is refused' '
	setup
	openssl genpkey -algorithm ed25519 -out o.pem 2>/dev/null
	openssl pkey -in o.pem -pubout -out o.pub
	llm-pack sign --key o.pem m-1.0.0.tar.gz -q > /dev/null
	llm-pack verify -q --pubkey o.pub m-1.0.0.tar.gz > /dev/null
	openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out ec.pem 2>/dev/null
	run llm-pack sign --key ec.pem m-1.0.0.tar.gz
	expect_status 1
	expect_err "not an Ed25519 key"
	run llm-pack sign --key missing.pem m-1.0.0.tar.gz
	expect_status 3
	run llm-pack sign m-1.0.0.tar.gz
	expect_status 2
'

done_testing
