#!/bin/sh
# Model references to packed artifacts (DESIGN.md section 4, lib/artifact/resolve.h):
# path/NAME-VERSION.tar.gz and registry:NAME@VERSION|ALIAS, verified, unpacked once into
# $LLMOPS_HOME/cache/artifacts/<identity>/, and answered by the embedded engine.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
unset LLMOPS_PACK_REGISTRY
cache=$LLMOPS_HOME/cache/artifacts

# A model much smaller than the tiny preset (as tests/cli/gen.sh makes one), packed twice:
# 1.0.0 and 1.1.0 with other weights.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$top_srcdir/data/sample/support.jsonl"
cat > "$shared/cfg.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 64, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
EOF
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --seed 1 --out "$shared/m1"
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --seed 2 --out "$shared/m2"
(cd "$shared" && llm-pack create -q m1 --name tiny --version 1.0.0 > /dev/null &&
	llm-pack create -q m2 --name tiny --version 1.1.0 > /dev/null)
ident() {
	tar -xOzf "$1" MANIFEST.json | sha256sum | cut -d" " -f1
}
printf '%s\n' '{"id":"a","prompt":"how do I reset my password"}' '{"id":"b","prompt":"hello"}' \
	> "$shared/in.jsonl"
GEN="-q --no-cache --temperature 0 --max-tokens 4"

t 'llm-gen answers from registry:NAME@production after push and alias set, as the folder does' '
	REG=$PWD/reg; export LLMOPS_PACK_REGISTRY=$REG
	llm-pack push -q "$shared/tiny-1.0.0.tar.gz" "$shared/tiny-1.1.0.tar.gz" > /dev/null
	llm-pack alias set -q tiny production 1.0.0
	llm-gen -m registry:tiny@production $GEN "$shared/in.jsonl" > got
	llm-gen -m "$shared/m1" $GEN "$shared/in.jsonl" > want
	jq -c "{id, output}" got > g; jq -c "{id, output}" want > w; cmp g w
	jq -e "select(.model != \"registry:tiny@production\")" got && exit 1
	[ -f "$cache/$(ident "$shared/tiny-1.0.0.tar.gz")/config.json" ]
	# latest and a version name the other one
	llm-gen -m registry:tiny $GEN "$shared/in.jsonl" | jq -c "{id, output}" > l
	llm-gen -m "$shared/m2" $GEN "$shared/in.jsonl" | jq -c "{id, output}" > w2
	cmp l w2
	! cmp -s w w2 # the two versions answer differently, or this would show nothing
	# the alias moves: the reference follows it
	llm-pack alias set -q tiny production 1.1.0
	llm-gen -m registry:tiny@production $GEN "$shared/in.jsonl" | jq -c "{id, output}" > p
	cmp p w2
'

t 'an artifact path is verified, unpacked once into the cache, and reused' '
	cp "$shared/tiny-1.0.0.tar.gz" .
	id=$(ident tiny-1.0.0.tar.gz)
	rm -rf "$cache/$id"
	llm-gen -m ./tiny-1.0.0.tar.gz $GEN "$shared/in.jsonl" | jq -c "{id, output}" > a
	llm-gen -m "$shared/m1" $GEN "$shared/in.jsonl" | jq -c "{id, output}" > w
	cmp a w
	[ -f "$cache/$id/MANIFEST.json" ] && [ -f "$cache/$id/model.safetensors" ]
	touch -d @1000000000 "$cache/$id"
	llm-gen -m ./tiny-1.0.0.tar.gz $GEN "$shared/in.jsonl" > /dev/null
	[ "$(stat -c %Y "$cache/$id")" = 1000000000 ]
	[ -z "$(ls -a "$cache" | grep -v "^[.][.]*$" | grep -v "^[0-9a-f]\{64\}$")" ]
'

t 'a damaged artifact is refused and leaves nothing in the cache' '
	head -c 5000 "$shared/tiny-1.1.0.tar.gz" > tiny-1.1.0.tar.gz
	id=$(ident "$shared/tiny-1.1.0.tar.gz")
	rm -rf "$cache/$id"
	run llm-gen -m ./tiny-1.1.0.tar.gz $GEN "$shared/in.jsonl"
	[ "$status" = 1 ] || [ "$status" = 3 ]; expect_no_out
	[ ! -e "$cache/$id" ]
	[ -z "$(ls -a "$cache" | grep -v "^[.][.]*$" | grep -v "^[0-9a-f]\{64\}$")" ]
'

t 'registry references that do not resolve are refused, naming what is missing' '
	export LLMOPS_PACK_REGISTRY=$PWD/reg
	llm-pack push -q "$shared/tiny-1.0.0.tar.gz" > /dev/null
	run llm-gen -m registry:tiny@staging $GEN "$shared/in.jsonl"; expect_status 3
	expect_err "tiny@staging: no such alias"
	run llm-gen -m registry:tiny@9.0.0 $GEN "$shared/in.jsonl"; expect_status 3
	expect_err "tiny@9.0.0: no such version"
	run llm-gen -m registry:ghost $GEN "$shared/in.jsonl"; expect_status 3; expect_err "ghost: no such model"
	run llm-gen -m "registry:Tiny@1.0.0" $GEN "$shared/in.jsonl"; expect_status 2
	run llm-gen -m ./missing-1.0.0.tar.gz $GEN "$shared/in.jsonl"; expect_status 3
'
done_testing
