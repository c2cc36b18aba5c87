#!/bin/sh
# llm-tune export against llama.cpp itself: a model trained here and exported with --gguf gives
# the same greedy tokens in llama.cpp as in our engine, and so does a LoRA adapter exported with
# --gguf-lora, applied by llama.cpp, against the adapter merged by our engine.  llama.cpp runs
# through the prebuilt bindings of the npm package node-llama-cpp (nothing is compiled), on one
# thread.  The package is installed once into $LLMOPS_NODE_LLAMA_CPP, by default
# $top_builddir/build-cache/node-llama-cpp; that needs npm and the npm registry.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
sample=$top_srcdir/data/sample/support.jsonl
greedy=$top_builddir/tests/unit/greedy
nlc=${LLMOPS_NODE_LLAMA_CPP:-$top_builddir/build-cache/node-llama-cpp}
N=24
prompt='Hello! The router needs a firmware update'
# What the tests found, printed as TAP comments at the end.
notes=$scratch/notes
: > "$notes"

# A byte-level BPE tokenizer of 512 tokens, and a small model trained on the sample data for a
# few steps: tied embeddings (as the presets), and a variant with its own output matrix.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
for tie in true false; do
	cat > "$shared/cfg-$tie.json" <<EOF
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 64,
 "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 128, "vocab_size": 512,
 "tie_word_embeddings": $tie, "rms_norm_eps": 1e-05}
EOF
	llm-tune init -q --preset "$shared/cfg-$tie.json" --tokenizer "$shared/tok.json" \
		--out "$shared/init-$tie"
done
T="--threads 2 --batch-size 4 --seq-len 48 --lr 0.01 --warmup 2 -q"
llm-tune train --base "$shared/init-true" --data "$sample" --steps 60 $T --out "$shared/tied"
llm-tune train --base "$shared/init-false" --data "$sample" --steps 30 $T --out "$shared/untied"
# LoRA on every linear layer of the trained model; a larger learning rate so that the adapter
# changes the continuation (and not into one token over and over).
llm-tune train --base "$shared/tied" --data "$sample" --steps 30 $T --lr 0.02 \
	--lora r=4,alpha=8,targets=all-linear --out "$shared/lora"
"$greedy" --ids "$shared/tied" "$prompt" > "$shared/prompt.ids"

# llama_greedy MODEL LORA|-: llama.cpp's greedy continuation of the prompt's ids, N of them, one
# id per line.  llama_tokenize MODEL TEXT: llama.cpp's ids of TEXT.
cat > "$shared/llama.mjs" <<'JS'
import { pathToFileURL } from "node:url";
const [nlc, mode, modelPath, arg, n, ...ids] = process.argv.slice(2);
const { getLlama, LlamaLogLevel } = await import(
	pathToFileURL(nlc + "/node_modules/node-llama-cpp/dist/index.js").href);
const llama = await getLlama({ gpu: false, build: "never", logLevel: LlamaLogLevel.warn });
const model = await llama.loadModel({ modelPath });
if (mode === "tokenize") {
	console.log(model.tokenize(arg).join("\n"));
} else {
	const context = await model.createContext({
		contextSize: 128, threads: 1,
		...(arg !== "-" ? { lora: { adapters: [{ filePath: arg }] } } : {}),
	});
	const out = [];
	const it = context.getSequence().evaluate(ids.map(Number),
		{ temperature: 0, yieldEogToken: true });
	for await (const t of it) {
		out.push(t);
		if (out.length >= Number(n))
			break;
	}
	console.log(out.join("\n"));
	await context.dispose();
}
await model.dispose();
await llama.dispose();
JS
llama_greedy() {
	node "$shared/llama.mjs" "$nlc" greedy "$1" "$2" "$N" $(cat "$shared/prompt.ids")
}
llama_tokenize() {
	node "$shared/llama.mjs" "$nlc" tokenize "$1" "$2"
}
# same WHAT OURS THEIRS [LABEL1 LABEL2]: the two id lists are equal (labels: llmops and
# llama.cpp unless given); either way both go to the notes, and
# when they differ, our top-2 logit gaps (./margins, from greedy --margins) show whether the
# step where they part was a near tie.
same() {
	printf "%s: %-10s %s\n" "$1" "${4:-llmops}" "$(tr '\n' ' ' < "$2")" | tee -a "$notes"
	printf "%s: %-10s %s\n" "$1" "${5:-llama.cpp}" "$(tr '\n' ' ' < "$3")" | tee -a "$notes"
	[ -s "$2" ] && cmp -s "$2" "$3" || {
		echo "$1: they differ"; cat margins 2>/dev/null; false; }
}

t 'node-llama-cpp 3.21.1 is installed from npm once and then reused' '
	command -v node >/dev/null && command -v npm >/dev/null || {
		echo "this test runs llama.cpp through node-llama-cpp: it needs node and npm"
		echo "(Debian: apt-get install nodejs npm; scripts/deps test does)"; false; }
	pkg="$nlc/node_modules/node-llama-cpp/package.json"
	if [ "$(jq -r .version "$pkg" 2>/dev/null)" != 3.21.1 ] ||
	   [ ! -d "$nlc/node_modules/@node-llama-cpp/linux-x64" ]; then
		# Into a sibling first, so that an interrupted install is never taken for a cache.
		tmp="$nlc.tmp.$$"
		rm -rf "$tmp"; mkdir -p "$tmp"
		echo "{\"private\": true}" > "$tmp/package.json"
		(cd "$tmp" && npm i -E --omit=optional --no-audit --no-fund \
			node-llama-cpp@3.21.1 @node-llama-cpp/linux-x64@3.21.1) ||
			{ echo "npm could not install node-llama-cpp@3.21.1"; rm -rf "$tmp"; false; }
		rm -rf "$nlc"; mv "$tmp" "$nlc"
	fi
	[ "$(jq -r .version "$pkg")" = 3.21.1 ]
'
t 'llama.cpp tokenizes the prompt as our tokenizer does, from the exported metadata' '
	llm-tune export -q --gguf m.gguf "$shared/tied"
	llama_tokenize m.gguf "$prompt" > theirs
	same "prompt ids" "$shared/prompt.ids" theirs
'
t 'an F32 export gives the same greedy tokens in llama.cpp as in llmops (tied embeddings)' '
	llm-tune export -q --gguf m.gguf "$shared/tied"
	"$greedy" -n $N --margins "$shared/tied" "$prompt" > ours 2> margins
	llama_greedy m.gguf - > theirs
	same "F32, tied" ours theirs
	# The continuation is not one token over and over: positions and attention matter.
	[ "$(sort -u ours | wc -l)" -ge 3 ]
'
t 'an F32 export with its own output matrix gives the same greedy tokens' '
	llm-tune export -q --gguf m.gguf "$shared/untied"
	"$greedy" -n $N --margins "$shared/untied" "$prompt" > ours 2> margins
	llama_greedy m.gguf - > theirs
	same "F32, untied" ours theirs
'
# F16: rounding the weights to F16 moves the logits a little, and llama.cpp rounds the
# activations it multiplies F16 weights with too, so where two logits are nearly tied the
# choice may change.  So two comparisons, each allowed to part only at a near tie (a top-2 gap
# under 0.05 in the first list's run, some tens of times the rounding error of a logit here):
# our engine on the original weights against our engine on the F16 file read back (which ties
# the file to the model: reading back alone would not notice a wrong layout that the reader
# undoes), and that against llama.cpp on the F16 file.  So far neither has parted at all.
# near MARGINS OURS THEIRS WHAT [LABEL1 LABEL2]: equal, or parting first at a step where
# MARGINS (greedy --margins of OURS) shows a gap under 0.05.
near() {
	cp "$1" margins
	same "$4" "$2" "$3" ${5:+"$5"} ${6:+"$6"} && return 0
	step=$(paste "$2" "$3" | awk "\$1 != \$2 { print NR - 1; exit }")
	gap=$(sed -n "s/^step $step: .* gap //p" "$1")
	echo "$4: parts at step $step, where the top-2 gap is $gap" | tee -a "$notes"
	[ -n "$gap" ] && awk -v g="$gap" "BEGIN { exit !(g < 0.05) }"
}

t 'an F16 export gives in llama.cpp the greedy tokens llmops gives, but for near ties' '
	llm-tune export -q --gguf m.gguf --f16 "$shared/tied"
	"$greedy" -n $N --margins "$shared/tied" "$prompt" > f32 2> f32.margins
	"$greedy" -n $N --margins --tokenizer "$shared/tok.json" m.gguf "$prompt" > ours \
		2> ours.margins
	llama_greedy m.gguf - > theirs
	near f32.margins f32 ours "F16 read back, against F32" "F32 model" "F16 file"
	near ours.margins ours theirs "F16"
'
t 'a LoRA adapter exported with --gguf-lora gives in llama.cpp what the merged adapter gives' '
	llm-tune export -q --gguf m.gguf --gguf-lora lora.gguf "$shared/lora"
	"$greedy" -n $N --margins --lora "$shared/lora" "$shared/lora" "$prompt" > ours 2> margins
	"$greedy" -n $N "$shared/lora" "$prompt" > base
	llama_greedy m.gguf lora.gguf > theirs
	same "F32 + LoRA" ours theirs
	# The adapter changes the continuation, so llama.cpp did apply it.
	! cmp -s ours base
	[ "$(sort -u ours | wc -l)" -ge 3 ]
	llama_greedy m.gguf - > theirs-base
	cmp -s base theirs-base
'
t 'export --gguf-lora takes the base from --base and refuses what it cannot do' '
	mkdir adapter
	cp "$shared/lora/adapter_config.json" "$shared/lora/adapter_model.safetensors" adapter/
	llm-tune export -q --gguf-lora a.gguf --base "$shared/tied" adapter
	llm-tune export -q --gguf-lora b.gguf "$shared/lora"
	cmp a.gguf b.gguf
	run llm-tune export --gguf-lora c.gguf adapter; expect_status 3
	run llm-tune export --gguf-lora c.gguf "$shared/tied"; expect_status 3
	expect_err "adapter_config.json"
	run llm-tune export --base "$shared/tied" --gguf c.gguf adapter; expect_status 2
	expect_err "--base goes with --gguf-lora"
	run llm-tune export adapter; expect_status 2
	no_sanitizer_report
'
sed 's/^/# /' "$notes"
done_testing
