#!/bin/sh
# llm-tune init, train and export: model directories in transformers' layout, training that
# lowers the loss, validation and early stopping, --resume after kill -9 or Ctrl-C bit for bit,
# loss on answers only, GGUF export that loads back, and clear errors for bad input.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
sample=$top_srcdir/data/sample/support.jsonl

# A tokenizer of 512 tokens and a model much smaller than the tiny preset, shared by the tests.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
cat > "$shared/cfg.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 64, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
EOF
head -n 200 "$sample" > "$shared/train.jsonl"
tail -n 43 "$sample" > "$shared/val.jsonl"
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out "$shared/base"
T="--threads 2 --batch-size 4 --seq-len 48 --lr 0.003 --warmup 2"

# header FILE: the JSON header of a safetensors file.
header() {
	n=$(od -An -tu8 -N8 "$1" | tr -d ' ')
	dd if="$1" bs=1 skip=8 count="$n" 2>/dev/null
}

t 'init writes a model directory in transformers layout, the same for the same seed' '
	llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out a
	llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out b
	for f in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json; do
		[ -f a/$f ] || { echo "no $f"; false; }
	done
	cmp a/model.safetensors b/model.safetensors
	jq -e ".model_type == \"llama\" and .vocab_size == 512 and .hidden_size == 32" a/config.json
	jq -e ".eos_token_id == 0" a/generation_config.json
	cmp a/tokenizer.json "$shared/tok.json"
'
t 'model.safetensors has the state_dict names and shapes of LlamaForCausalLM' '
	header "$shared/base/model.safetensors" > h.json
	jq -e ".\"model.embed_tokens.weight\".shape == [512, 32] and .\"model.embed_tokens.weight\".dtype == \"F32\"" h.json
	jq -e ".\"model.layers.1.self_attn.q_proj.weight\".shape == [32, 32]" h.json
	jq -e ".\"model.layers.1.self_attn.k_proj.weight\".shape == [16, 32]" h.json
	jq -e ".\"model.layers.0.mlp.gate_proj.weight\".shape == [64, 32]" h.json
	jq -e ".\"model.layers.0.mlp.down_proj.weight\".shape == [32, 64]" h.json
	jq -e ".\"model.layers.0.input_layernorm.weight\".shape == [32]" h.json
	jq -e ".\"model.norm.weight\".shape == [32] and (has(\"lm_head.weight\") | not)" h.json
	jq -e ".__metadata__.format == \"pt\" and (keys | length) == 21" h.json
'
t 'init refuses an existing directory without --force, and an unknown preset' '
	run llm-tune init --tokenizer "$shared/tok.json" --out "$shared/base"; expect_status 2
	expect_err "exists; --force replaces it"
	run llm-tune init --preset huge --tokenizer "$shared/tok.json" --out x; expect_status 2
	expect_err "unknown model preset"
'
t 'training on the sample data lowers the loss below the unigram baseline' '
	run llm-tune train --base "$shared/base" --data "$shared/train.jsonl" --val "$shared/val.jsonl" \
		--out m --steps 60 --eval-every 15 $T --lr 0.01
	expect_status 0; expect_no_out
	first=$(jq -s "map(select(.train_loss))[0].train_loss" m/metrics.jsonl)
	best=$(jq -s "map(select(.val_loss)) | min_by(.val_loss).val_loss" m/metrics.jsonl)
	echo "first train loss $first, best val loss $best"
	awk -v a="$first" -v b="$best" "BEGIN { exit !(b < a - 1) }"
	grep -E "best val loss [0-9.]+ at step [0-9]+ \(unigram baseline [0-9.]+\)" err
	awk "/unigram baseline/ { v = \$0; sub(/.*best val loss /, \"\", v); sub(/ .*/, \"\", v);
		u = \$0; sub(/.*baseline /, \"\", u); sub(/\).*/, \"\", u); exit !(v + 0 < u + 0) }" err
	[ "$(jq -s "map(select(.val_loss)) | length" m/metrics.jsonl)" = 4 ]
	for d in m m/best m/checkpoints/last; do [ -f $d/model.safetensors ]; done
	jq -e ".step == 60 and .adam_step == 60" m/checkpoints/last/trainer_state.json
'
t 'each run has a run folder that llm-tune runs shows' '
	llm-tune train -q --base "$shared/base" --data "$shared/train.jsonl" --val "$shared/val.jsonl" \
		--out m --steps 6 --eval-every 3 --run-name r1 $T
	llm-tune runs show r1 > show.txt
	jq -e ".status == \"finished\" and .steps == 6" "$LLMOPS_HOME/runs/r1/meta.json"
	[ "$(grep -c val_loss "$LLMOPS_HOME/runs/r1/metrics.jsonl")" = 2 ]
'
t 'early stopping ends the run after --patience evaluations without progress' '
	run llm-tune train --base "$shared/base" --data "$shared/train.jsonl" --val "$shared/val.jsonl" \
		--out m --steps 50 --eval-every 2 --patience 2 $T --lr 0
	expect_status 0; expect_err "stopped early"
	jq -e ".step == 6" m/checkpoints/last/trainer_state.json
	jq -e ".best_step == 2" m/checkpoints/last/trainer_state.json
'
t '--resume after kill -9 gives the same weights as an uninterrupted run' '
	args="--base $shared/base --data $shared/train.jsonl --val $shared/val.jsonl --steps 60 --eval-every 10 --save-every 5 -q $T"
	llm-tune train $args --out full
	llm-tune train $args --out part & pid=$!
	i=0; while [ ! -f part/checkpoints/last/trainer_state.json ] && [ $i -lt 600 ]; do
		sleep 0.05; i=$((i + 1)); done
	kill -9 $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
	step=$(jq .step part/checkpoints/last/trainer_state.json); echo "killed after step $step"
	! cmp -s full/model.safetensors part/checkpoints/last/model.safetensors || [ "$step" = 60 ]
	llm-tune train $args --out part --resume
	cmp full/model.safetensors part/model.safetensors
	cmp full/best/model.safetensors part/best/model.safetensors
	[ "$(jq -s "map(select(.train_loss)) | length" part/metrics.jsonl)" = 60 ]
'
t 'Ctrl-C saves a checkpoint, and --resume finishes as an uninterrupted run would' '
	args="--base $shared/base --data $shared/train.jsonl --steps 200 --save-every 1000 -q $T"
	llm-tune train $args --out full
	llm-tune train $args --out part & pid=$!
	i=0; while [ ! -s part/metrics.jsonl ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i + 1)); done
	kill -INT $pid; set +e; wait $pid; s=$?; set -e
	echo "status $s"
	jq -e ".step >= 1" part/checkpoints/last/trainer_state.json
	llm-tune train $args --out part --resume
	cmp full/model.safetensors part/model.safetensors
'
t '--resume refuses other options and a missing checkpoint; a checkpoint needs --force' '
	args="--base $shared/base --data $shared/train.jsonl -q $T"
	llm-tune train $args --out m --steps 4
	run llm-tune train $args --out m --steps 5 --resume; expect_status 2; expect_err "steps was 4"
	run llm-tune train $args --out none --steps 5 --resume; expect_status 2
	expect_err "has no checkpoint"
	run llm-tune train $args --out m --steps 4; expect_status 2; expect_err "--force starts over"
	llm-tune train $args --out m --steps 4 --force
'
t 'only answers count: a record whose answer is masked entirely changes nothing' '
	jq -c "{text: (.text + \" \" + .completion), loss_spans: [[(.text | utf8bytelength) + 1, (.text | utf8bytelength) + 1 + (.completion | utf8bytelength)]]}" \
		"$shared/train.jsonl" > spans.jsonl
	cp spans.jsonl more.jsonl
	echo "{\"text\": \"an answer that is never trained on\", \"loss_spans\": []}" >> more.jsonl
	args="--base $shared/base --steps 8 -q $T"
	llm-tune train $args --data spans.jsonl --out a
	run llm-tune train $args --data more.jsonl --out b; expect_status 0
	cmp a/model.safetensors b/model.safetensors
	jq -c "{prompt: .text, completion: .completion}" "$shared/train.jsonl" > pc.jsonl
	llm-tune train $args --data pc.jsonl --out c
	jq -c "{text: (.text + \" \" + .completion)}" "$shared/train.jsonl" > whole.jsonl
	llm-tune train $args --data whole.jsonl --out d
	la=$(jq -s ".[0].train_loss" a/metrics.jsonl); ld=$(jq -s ".[0].train_loss" d/metrics.jsonl)
	echo "answers only $la, everything $ld"; [ "$la" != "$ld" ]
'
t 'token files train, and a packed file with its .seg trains on each segment alone' '
	llm-prep tokenize -q --tokenizer "$shared/tok.json" --out tok.bin "$shared/train.jsonl"
	run llm-tune train --base "$shared/base" --data tok.bin --out a --steps 5 $T
	expect_status 0
	llm-prep pack -q --seq-len 48 --out packed.bin tok.bin
	run llm-tune train --base "$shared/base" --data packed.bin --out b --steps 5 $T
	expect_status 0
	jq -e ".train_loss > 0" b/metrics.jsonl > /dev/null
'
t '--pack fills rows with several documents and scores each as alone in a row' '
	common="--base $shared/base --data $shared/train.jsonl --val $shared/val.jsonl -q $T"
	# With a zero learning rate the weights stay put: packed and unpacked validation agree.
	llm-tune train $common --out a --steps 1 --lr 0
	llm-tune train $common --out b --steps 1 --lr 0 --pack
	va=$(jq -s "map(select(.val_loss))[0].val_loss" a/metrics.jsonl)
	vb=$(jq -s "map(select(.val_loss))[0].val_loss" b/metrics.jsonl)
	echo "val loss $va unpacked, $vb packed"
	awk -v a="$va" -v b="$vb" "BEGIN { d = a - b; if (d < 0) d = -d; exit !(d < 1e-4 * a) }"
	# A packed step holds more documents: more tokens per step.
	ta=$(jq -s "map(select(.train_loss))[0].tokens" a/metrics.jsonl)
	tb=$(jq -s "map(select(.train_loss))[0].tokens" b/metrics.jsonl)
	[ "$tb" -gt "$ta" ]
	jq -e ".params.pack == true" b/checkpoints/last/trainer_state.json
	llm-tune train $common --out c --steps 30 --lr 0.01 --pack --eval-every 30
	jq -e "select(.val_loss) | .val_loss < $vb - 1" c/metrics.jsonl
	run llm-tune train $common --out c --steps 30 --lr 0.01 --resume
	expect_status 2; expect_err "pack was true in the checkpoint"
'
t 'chat records train on the assistant turns' '
	jq -c "{messages: [{role: \"user\", content: .text}, {role: \"assistant\", content: .completion}]}" \
		"$shared/train.jsonl" > chat.jsonl
	run llm-tune train --base "$shared/base" --data chat.jsonl --out a --steps 3 $T
	expect_status 0
'
t 'export --gguf writes a llama GGUF that loads back with the same parameters' '
	llm-tune export -q --gguf a.gguf --name m "$shared/base"
	llm-tune export -q --gguf b.gguf --name m --tokenizer "$shared/tok.json" a.gguf
	cmp a.gguf b.gguf
	llm-tune export -q --gguf h.gguf --f16 "$shared/base"
	[ $(wc -c < h.gguf) -lt $(wc -c < a.gguf) ]
'
t 'bad input gets a clear error and the documented status' '
	run llm-tune train --base nowhere --data "$shared/train.jsonl" --out m; expect_status 3
	expect_err "nowhere: cannot open model directory"
	mkdir bad; cp "$shared/base"/* bad/
	jq ".model_type = \"gpt2\"" "$shared/base/config.json" > bad/config.json
	run llm-tune train --base bad --data "$shared/train.jsonl" --out m; expect_status 1
	expect_err "model_type"
	echo "{\"body\": \"no text here\"}" > notext.jsonl
	run llm-tune train --base "$shared/base" --data notext.jsonl --out m; expect_status 1
	expect_err "notext.jsonl:1: no field '"'"'text'"'"'"
	mkdir trunc; cp "$shared/base"/* trunc/
	head -c 5000 "$shared/base/model.safetensors" > trunc/model.safetensors
	run llm-tune train --base trunc --data "$shared/train.jsonl" --out m; expect_status 1
	expect_err "trunc/model.safetensors"
	run llm-tune export --gguf x.gguf trunc; expect_status 1
	run llm-tune train --base "$shared/base" --data missing.jsonl --out m; expect_status 3
	run llm-tune train --data "$shared/train.jsonl" --out m; expect_status 2
	no_sanitizer_report
'
t 'LoRA training freezes the base and writes a PEFT adapter; --merge writes merged weights' '
	llm-tune train -q --base "$shared/base" --data "$shared/train.jsonl" --steps 6 $T \
		--lora r=4,alpha=8,targets=q,v --out lora
	[ -f lora/adapter_config.json ] && [ -f lora/adapter_model.safetensors ]
	jq -e ".peft_type == \"LORA\" and .r == 4 and .lora_alpha == 8" lora/adapter_config.json
	jq -e "(.target_modules | sort) == [\"q_proj\", \"v_proj\"]" lora/adapter_config.json
	header lora/adapter_model.safetensors > h.json
	jq -e ".\"base_model.model.model.layers.1.self_attn.q_proj.lora_A.weight\".shape == [4, 32]" h.json
	jq -e ".\"base_model.model.model.layers.1.self_attn.v_proj.lora_B.weight\".shape == [16, 4]" h.json
	jq -e "[keys[] | select(endswith(\"weight\"))] | length == 8" h.json
	# The base weights are not trained: any model.safetensors written beside the adapter is the base.
	if [ -f lora/model.safetensors ]; then cmp lora/model.safetensors "$shared/base/model.safetensors"; fi
	llm-tune train -q --base "$shared/base" --data "$shared/train.jsonl" --steps 6 $T \
		--lora r=4,alpha=8,targets=q,v --merge --out merged
	[ -f merged/model.safetensors ] && ! cmp -s merged/model.safetensors "$shared/base/model.safetensors"
	run llm-tune train --base "$shared/base" --data "$shared/train.jsonl" --steps 2 --lora r=0 --out bad
	expect_status 2
'
done_testing
