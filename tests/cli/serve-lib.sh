# Helpers for the command-line tests that start llm-serve (sourced after lib.sh): the config of a
# model small enough to load and answer in a blink, and a server on a free port, waited for.

# serve_model_config FILE: a 2-layer, 32-wide Llama with a 512-token vocabulary and room for a
# chat prompt, for `llm-tune init --preset FILE`.
serve_model_config() {
	cat > "$1" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 256, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
JSON
}

# serve_start DIR MODEL [ARGS...]: start llm-serve on MODEL with its files in DIR (port,
# log.jsonl, out, err) and one engine thread, and wait until it is ready.  Sets $url and $spid;
# the pid also goes to $scratch/pids.  The server is a child of the calling shell, so that shell
# can `wait` for its exit status.
serve_start() {
	sdir=$1
	serve_model=$2
	shift 2
	mkdir -p "$sdir"
	rm -f "$sdir/port"
	llm-serve --model "$serve_model" --port 0 --port-file "$sdir/port" --log "$sdir/log.jsonl" \
		--engine-threads 1 "$@" >"$sdir/out" 2>"$sdir/err" &
	spid=$!
	echo "$spid" >>"$scratch/pids"
	i=0
	while [ ! -s "$sdir/port" ] ||
		! curl -sf "http://127.0.0.1:$(cat "$sdir/port")/ready" >/dev/null 2>&1; do
		i=$((i + 1))
		[ $i -lt 600 ] || { echo "llm-serve did not become ready"; cat "$sdir/err"; return 1; }
		kill -0 "$spid" 2>/dev/null || { echo "llm-serve exited"; cat "$sdir/err"; return 1; }
		sleep 0.05
	done
	url=http://127.0.0.1:$(cat "$sdir/port")
}
