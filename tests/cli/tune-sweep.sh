#!/bin/sh
# llm-tune sweep: grid and random search over train's options, trials run --jobs at a time as
# child processes, a leaderboard by validation loss with the best trial marked, failed trials
# recorded without stopping the others, and a rerun that skips the trials that finished.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME
sample=$top_srcdir/data/sample/support.jsonl

# The tiny model of tune-train.sh: a 512-token tokenizer, 2 layers of 32.
shared=$scratch/shared
mkdir -p "$shared"
llm-prep tokenizer train -q -V 512 --out "$shared/tok.json" "$sample"
cat > "$shared/cfg.json" <<'CFG'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 64, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
CFG
head -n 40 "$sample" > "$shared/train.jsonl"
tail -n 12 "$sample" > "$shared/val.jsonl"
llm-tune init -q --preset "$shared/cfg.json" --tokenizer "$shared/tok.json" --out "$shared/base"
common="--base $shared/base --data $shared/train.jsonl --val $shared/val.jsonl --seq-len 32"
# Four trials: three learning rates train, and 20 is beyond what train accepts (at most 10).
cat > "$shared/space.json" <<'SPACE'
{"method": "grid",
 "params": {"lr": [0.001, 0.03, 20, 0.01], "batch-size": [2]},
 "fixed": {"steps": 3, "warmup": 1}}
SPACE

t 'a grid sweep of four trials, two at once, ranks the three that train by val loss' '
	run llm-tune sweep --space "$shared/space.json" --out "$shared/sw" --jobs 2 --name sw1 \
		-- $common
	expect_status 1; no_sanitizer_report
	expect_err "trial 003 failed with status 2"
	expect_err "3 of 4 trials finished"
	cp out "$shared/table.txt"; cat out
	head -n 1 out | grep -E "rank +trial +lr +best_val_loss +train_loss +tokens +seconds +status"
	! grep -q batch-size out
	[ "$(grep -c finished out)" = 3 ] && [ "$(grep -c failed out)" = 1 ]
	tail -n 1 out | grep -E "^  4 +003 +20 .* failed$"
	jq -e ".trials | length == 4" "$shared/sw/leaderboard.json"
	jq -e "[.trials[] | select(.status == \"finished\") | .best_val_loss] as \$v | \$v == (\$v | sort) and (\$v | length) == 3" \
		"$shared/sw/leaderboard.json"
	jq -e ".trials[0].best == true and ([.trials[] | select(.best)] | length) == 1" \
		"$shared/sw/leaderboard.json"
	jq -e ".trials[3] | .trial == 3 and .status == \"failed\" and .exit_status == 2 and .params.lr == \"20\"" \
		"$shared/sw/leaderboard.json"
	jq -e ".varying == [\"lr\"] and .sweep == \"sw1\" and .sort == \"val_loss\"" "$shared/sw/leaderboard.json"
'
t 'the best trial is marked in the table and linked as OUT/best' '
	best=$(jq -r .best "$shared/sw/leaderboard.json")
	[ "$(readlink "$shared/sw/best")" = "$best" ]
	[ -f "$shared/sw/best/model.safetensors" ]
	grep -E "^\* 1 +${best#trial-} " "$shared/table.txt"
'
t 'each trial has its folder, its log and its run folder in llm-tune runs list' '
	for n in 001 002 004; do
		[ -f "$shared/sw/trial-$n/model.safetensors" ]
		jq -e ".status == \"finished\" and .run == \"sw1-t$n\"" "$shared/sw/trial-$n/trial.json"
		jq -e ".status == \"finished\" and .steps == 3" "$LLMOPS_HOME/runs/sw1-t$n/meta.json"
	done
	grep -q -- "--lr: 20 is out of range" "$shared/sw/trial-003/log.txt"
	jq -e ".status == \"failed\" and .exit_status == 2" "$shared/sw/trial-003/trial.json"
	llm-tune runs list > list.txt
	for n in 001 002 004; do grep -q "^sw1-t$n" list.txt || { cat list.txt; false; }; done
	jq -e ".lr == 0.03 and .batch_size == 2 and .steps == 3 and .warmup == 1" \
		"$LLMOPS_HOME/runs/sw1-t002/params.json"
'
t 'running the same sweep again skips the finished trials and reruns the failed one' '
	run llm-tune sweep --space "$shared/space.json" --out "$shared/sw" --jobs 2 -- $common
	expect_status 1
	expect_err "3 of 4 trials finished before; running the other 1"
	! grep -q "trial 001 started" err
	expect_err "trial 003 started (sw1-t003-a2)"
	jq -e ".attempt == 2" "$shared/sw/trial-003/trial.json"
	jq -e "[.trials[] | select(.skipped)] | length == 3" "$shared/sw/leaderboard.json"
	jq -e ".attempt == 1" "$shared/sw/trial-001/trial.json"
'
t '--sort cost ranks by tokens and seconds; --json writes the leaderboard object' '
	run llm-tune sweep --space "$shared/space.json" --out "$shared/sw" --sort cost --json -- $common
	expect_status 1
	jq -e ".sort == \"cost\" and (.trials | length) == 4" out
	jq -e "[.trials[0:3][] | .tokens] as \$t | \$t == (\$t | sort)" out
	cmp out "$shared/sw/leaderboard.json"
'
t 'a random sweep draws the same trials for the same seed, within the ranges' '
	cat > space.json <<SPACE
{"method": "random", "params": {"lr": {"min": 0.001, "max": 0.01, "log": true},
 "warmup": {"min": 0, "max": 2}}, "fixed": {"steps": 1, "batch-size": 2}}
SPACE
	llm-tune sweep -q --space space.json --out a --trials 2 --seed 5 --jobs 2 -- $common > /dev/null
	llm-tune sweep -q --space space.json --out b --trials 2 --seed 5 --jobs 2 -- $common > /dev/null
	jq -c "[.trials[] | [.trial, .params]] | sort" a/leaderboard.json > pa
	jq -c "[.trials[] | [.trial, .params]] | sort" b/leaderboard.json > pb
	cmp pa pb; cat pa
	jq -e "[.trials[].params.lr | tonumber | select(. >= 0.001 and . <= 0.01)] | length == 2" a/leaderboard.json
	jq -e "[.trials[].params.warmup | tonumber | select(. >= 0 and . <= 2)] | length == 2" a/leaderboard.json
	[ "$(jq -r .sweep a/leaderboard.json)" != "$(jq -r .sweep b/leaderboard.json)" ]
'
t 'unknown parameters, options the sweep sets and a random search without --trials are usage errors' '
	echo "{\"params\": {\"lrr\": [1]}}" > typo.json
	run llm-tune sweep --space typo.json --out o -- $common; expect_status 2
	expect_err "unknown parameter '\''lrr'\'' (not an option of llm-tune train)"
	[ ! -e o ]
	run llm-tune sweep --space "$shared/space.json" --out o -- $common --out x; expect_status 2
	expect_err "--out after '\''--'\''"
	echo "{\"method\": \"random\", \"params\": {\"lr\": [1]}}" > r.json
	run llm-tune sweep --space r.json --out o -- $common; expect_status 2
	expect_err "needs --trials"
	run llm-tune sweep --space missing.json --out o -- $common; expect_status 3
	run llm-tune sweep --out o -- $common; expect_status 2
'
t 'a grid larger than --trials runs its first points and says so' '
	echo "{\"params\": {\"lr\": [0.01, 0.02, 0.03]}, \"fixed\": {\"steps\": 1, \"batch-size\": 2}}" > g.json
	run llm-tune sweep --space g.json --out o --trials 1 -- $common
	expect_status 0; expect_err "the grid has 3 points; running the first 1 (--trials)"
	jq -e ".trials | length == 1" o/leaderboard.json
'
t 'Ctrl-C stops the trials and keeps the finished ones in the leaderboard' '
	echo "{\"params\": {\"lr\": [0.01, 0.02]}, \"fixed\": {\"steps\": 100000, \"batch-size\": 2, \"save-every\": 0}}" > long.json
	llm-tune sweep --space long.json --out o --jobs 2 -- $common > out 2> err & pid=$!
	i=0; while [ "$(cat o/trial-00*/metrics.jsonl 2>/dev/null | wc -l)" -lt 2 ] && [ $i -lt 600 ]; do
		sleep 0.05; i=$((i + 1)); done
	kill -INT $pid; set +e; wait $pid; s=$?; set -e
	echo "status $s"; cat err
	[ "$s" = 130 ]
	jq -e "[.trials[].status] == [\"interrupted\", \"interrupted\"]" o/leaderboard.json
	jq -e ".status == \"interrupted\"" o/trial-001/trial.json
	[ ! -e o/best ]
'
done_testing
