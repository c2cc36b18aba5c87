#!/bin/sh
# examples/: the GitHub Actions workflow is parsed and checked, then run locally (its steps'
# commands, with the built programs, a tiny model made here, and a docker-registry on loopback
# for the push) as a push to main, a pull request against main's report, a pull request that
# misses its thresholds, and a version tag; the crontab's lines and the commands they run; the
# rules file; the systemd unit (systemd-analyze verify); the logrotate snippet; nginx.conf
# (nginx -t); prometheus.yml and its rules (promtool); the gateway pools (llm-serve --config).
. "$top_srcdir/tests/cli/lib.sh"
ex=$top_srcdir/examples
py=/usr/bin/python3
wfpy=$top_srcdir/tests/cli/examples-workflow.py
wf=$ex/github-actions/llmops-eval.yml
trap 'for p in $(cat "$scratch/pids" 2>/dev/null); do kill "$p" 2>/dev/null; done; rm -rf "$scratch"' EXIT

mkdir -p "$scratch/docker" "$scratch/home"
DOCKER_CONFIG=$scratch/docker
LLMOPS_HOME=$scratch/home
export DOCKER_CONFIG LLMOPS_HOME
unset REGISTRY_AUTH_FILE XDG_RUNTIME_DIR LLMOPS_OCI_INSECURE LLMOPS_OCI_USER LLMOPS_OCI_PASSWORD \
	LLMOPS_PACK_REGISTRY LLMOPS_API_KEY OPENAI_API_KEY GITHUB_STEP_SUMMARY GITHUB_OUTPUT \
	GITHUB_ENV GITHUB_PATH GITHUB_WORKSPACE

# skip NAME REASON: a test whose tool is missing.
skip() {
	test_count=$((test_count + 1))
	echo "ok $test_count - $1 # SKIP $2"
}

have_yaml=no
"$py" -c 'import yaml' 2>/dev/null && have_yaml=yes

# A workspace as the workflow expects it: a model (the tiny engine's, untrained), an eval set
# of support questions with references, and a git that knows the commit's time.
ws0=$scratch/ws0
mkdir -p "$ws0/model" "$ws0/eval" "$scratch/bin"
llm-prep tokenizer train -q -V 512 --out "$scratch/tok.json" "$top_srcdir/data/sample/support.jsonl"
cat > "$scratch/cfg.json" <<'EOF'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 32,
 "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
 "num_key_value_heads": 2, "max_position_embeddings": 256, "vocab_size": 512,
 "tie_word_embeddings": true, "rms_norm_eps": 1e-05}
EOF
rm -rf "$ws0/model"
llm-tune init -q --preset "$scratch/cfg.json" --tokenizer "$scratch/tok.json" --out "$ws0/model"
head -n 6 "$top_srcdir/data/sample/support.jsonl" |
	jq -c '{id, prompt: .text, reference: .completion}' > "$ws0/eval/questions.jsonl"
cat > "$scratch/bin/git" <<'EOF'
#!/bin/sh
# The one git command the workflow runs: the commit's time.
[ "$*" = "log -1 --format=%ct" ] || { echo "git stand-in: $*" >&2; exit 1; }
echo 1795737600
EOF
chmod +x "$scratch/bin/git"

# workflow EVENT REF NAME [--env/--secret ...]: run the workflow in a fresh copy of the
# workspace ($scratch/NAME), its artifacts in $scratch/NAME.art; log in ./log.
workflow() {
	_ev=$1 _ref=$2 _name=$3
	shift 3
	rm -rf "$scratch/$_name" "$scratch/$_name.art"
	cp -r "$ws0" "$scratch/$_name"
	set +e
	PATH=$scratch/bin:$PATH "$py" "$wfpy" run "$wf" --event "$_ev" --ref "$_ref" \
		--workspace "$scratch/$_name" --artifacts "$scratch/$_name.art" "$@" > log 2>&1
	status=$?
	set -e
	cat log
}

if [ $have_yaml = yes ]; then
t 'the workflow parses and has the structure GitHub accepts (triggers, jobs, steps, actions)' '
	"$py" "$wfpy" check "$wf"
	# The checker finds what is wrong: an unknown action, a step with run and uses, bad bash.
	sed "s|actions/checkout@v4|actions/checkout@v9|" "$wf" > bad1.yml
	! "$py" "$wfpy" check bad1.yml > out1 && grep -q "unknown action" out1
	sed "s|^      - uses: actions/checkout@v4|      - uses: actions/checkout@v4\n        run: make|" "$wf" > bad2.yml
	! "$py" "$wfpy" check bad2.yml > out2 && grep -q "exactly one of run and uses" out2
	sed "s|for t in \$THRESHOLDS; do|for t in \$THRESHOLDS do|" "$wf" > bad3.yml
	! "$py" "$wfpy" check bad3.yml > out3 && grep -q "bash -n" out3
'

t 'a push to main: the eval set answered and scored, the report kept, JUnit and the step summary written' '
	workflow push refs/heads/main main --env "THRESHOLDS=chrf=0 rougeL=0"
	[ "$status" = 0 ]
	grep -q "job eval: Score the answers: ran, exit 0" log
	grep -q "job eval: Fetch the report of main.*: skipped (if)" log
	grep -q "job release: skipped" log
	# The steps that need the network are the only ones not run.
	[ "$(grep -c "not run (examples-test: skip)" log)" = 3 ]
	art=$scratch/main.art/eval-report
	jq -e ".metrics.rougeL and .metrics.chrf and (.baseline == null)" "$art/eval.json"
	[ "$(lines "$art/scored.jsonl")" = 6 ]
	xmllint --noout "$art/junit.xml"
	grep -q "<testcase" "$art/junit.xml"
	grep -q "rougeL" "$scratch/main.art/eval-step-summary.md"
	jq -e . "$art/eval-set-stats.json" > /dev/null
'

t 'a pull request is compared with main'"'"'s report (--baseline), and passes with the same model' '
	[ -f "$scratch/main.art/eval-report/eval.json" ]
	mkdir -p "$ws0/baseline"
	# What the skipped step fetches: main'"'"'s eval-report artifact.
	cp "$scratch/main.art/eval-report/eval.json" "$ws0/baseline/eval.json"
	workflow pull_request refs/pull/7/merge pr --env "THRESHOLDS=chrf=0"
	rm -rf "$ws0/baseline"
	[ "$status" = 0 ]
	jq -e ".baseline" "$scratch/pr.art/eval-report/eval.json" > /dev/null
	grep -qi "baseline" "$scratch/pr.art/eval-step-summary.md"
	grep -q "job release: skipped" log
'

t 'a missed threshold fails the job, and the report, JUnit and summary are still kept' '
	workflow pull_request refs/pull/8/merge fail --env "THRESHOLDS=chrf=99.5"
	[ "$status" = 1 ]
	grep -q "job eval: Score the answers: ran, exit 1" log
	grep -q "job eval: Keep the report.*action, ok" log
	grep -q "job eval: Publish the JUnit results: action, ok" log
	grep -q "job eval: failure" log
	grep -q "<failure" "$scratch/fail.art/eval-report/junit.xml"
'

if command -v docker-registry > /dev/null && command -v openssl > /dev/null; then
t 'a version tag: packed with its metrics, signed, pushed to an OCI registry (on loopback)' '
	port=$("$py" -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
	mkdir -p "$scratch/reg/data"
	printf "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: 127.0.0.1:%s\n  secret: llmops-test\n" \
		"$scratch/reg/data" "$port" > "$scratch/reg/config.yml"
	docker-registry serve "$scratch/reg/config.yml" > "$scratch/reg/log" 2>&1 &
	echo $! >> "$scratch/pids"
	i=0
	until curl -sf "http://127.0.0.1:$port/v2/" > /dev/null; do
		i=$((i + 1)); [ $i -lt 200 ] || { cat "$scratch/reg/log"; false; }; sleep 0.05
	done
	llm-pack keygen --out release > /dev/null
	workflow push refs/tags/v1.2.0 tag --env "THRESHOLDS=chrf=0" \
		--env "REGISTRY=oci://127.0.0.1:$port/models" --secret "LLMOPS_SIGNING_KEY=$(cat release.pem)"
	[ "$status" = 0 ]
	grep -q "job release: success" log
	a=$scratch/tag.art/model-artifact/support-bot-1.2.0.tar.gz
	llm-pack verify --pubkey release.pub "$a"
	llm-pack inspect --json "$a" | jq -e ".manifest.metrics.rougeL or .manifest.metrics.chrf" > /dev/null
	llm-pack show support-bot@1.2.0 --registry "oci://127.0.0.1:$port/models" > shown
	grep -q "1.2.0" shown
	# The key was written for the signing only, and removed.
	! ls "$scratch"/tag.art/runner-release-*/release.pem 2> /dev/null
'
else
	skip 'a version tag: packed, signed, pushed to an OCI registry' 'docker-registry or openssl missing'
fi
else
	skip 'the GitHub Actions workflow' 'python3-yaml missing (apt-get install python3-yaml)'
fi

# The crontab: environment lines and five time fields each in range, no bare % in a command.
t 'every line of the crontab is a comment, a setting, or five valid time fields and a command' '
	cat > cron-check.py <<-"EOF"
	import re, sys
	ranges = [(0, 59), (0, 23), (1, 31), (1, 12), (0, 7)]
	names = [{}, {}, {}, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())},
	         {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}]
	def value(s, k):
	    s = s.lower()
	    if s in names[k]:
	        return names[k][s]
	    if not s.isdigit():
	        raise ValueError(s)
	    v = int(s)
	    if not ranges[k][0] <= v <= ranges[k][1]:
	        raise ValueError(s)
	    return v
	def field(f, k):
	    for part in f.split(","):
	        base, _, step = part.partition("/")
	        if step and (not step.isdigit() or int(step) == 0):
	            raise ValueError(part)
	        if base == "*":
	            continue
	        lo, _, hi = base.partition("-")
	        a = value(lo, k)
	        if hi and value(hi, k) < a:
	            raise ValueError(part)
	jobs = 0
	for n, line in enumerate(open(sys.argv[1]), 1):
	    line = line.rstrip("\n")
	    if not line.strip() or line.lstrip().startswith("#"):
	        continue
	    if re.match(r"^[A-Za-z_][A-Za-z0-9_]*=", line):
	        continue
	    parts = line.split(None, 5)
	    if len(parts) < 6:
	        sys.exit(f"line {n}: not five fields and a command")
	    try:
	        for k in range(5):
	            field(parts[k], k)
	    except ValueError as e:
	        sys.exit(f"line {n}: bad field {e}")
	    if re.search(r"(?<!\\)%", parts[5]):
	        sys.exit(f"line {n}: a bare % ends the command in cron")
	    jobs += 1
	if jobs < 4:
	    sys.exit(f"{jobs} jobs")
	EOF
	"$py" cron-check.py "$ex/cron/llmops.crontab"
	# The checker refuses what cron would: a minute of 60, a bare %.
	sed "s|^5 \* \* \* \*|60 * * * *|" "$ex/cron/llmops.crontab" > bad1
	! "$py" cron-check.py bad1
	sed "s|date +\\\\%s|date +%s|" "$ex/cron/llmops.crontab" > bad2
	! cmp -s bad2 "$ex/cron/llmops.crontab"
	! "$py" cron-check.py bad2
'

# A request log of two hours, a request a minute: a few errors, feedback, two models.
mklog() {
	"$py" -c '
import json, time
# The two hours before the last full hour of the clock: what an hourly job sees live.
start = (int(time.time()) // 3600 - 2) * 3600
for i in range(120):
    t = start + i * 60
    ts = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))
    print(json.dumps({"ts": ts, "request_id": "req-%03d" % i, "endpoint": "/v1/chat/completions",
        "model": "support-bot@2" if i % 3 == 0 else "support-bot@3", "key_id": "k1",
        "status": 500 if i in (7, 67) else 200, "latency_ms": 300 + (i * 37) % 900,
        "ttft_ms": 40 + i % 50, "usage": {"prompt_tokens": 20, "completion_tokens": 10},
        "finish_reason": "stop"}))
    if i % 10 == 0:
        print(json.dumps({"kind": "feedback", "request_id": "req-%03d" % i, "score": 3 + i % 3,
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t + 5))}))
'
}

# The crontab's commands, with its paths moved into a scratch folder.
cronjobs() {
	grep -E "^[0-9*]" "$ex/cron/llmops.crontab" | cut -d" " -f6- |
		sed -e "s|/etc/llmops/|$PWD/etc/|g" -e "s|/var/lib/llmops/|$PWD/lib/|g" \
			-e "s|/var/log/llmops/|$PWD/log/|g" \
			-e "s|/var/lib/prometheus/node-exporter/|$PWD/textfile/|g" -e "s|\\\\%|%|g"
}

t 'the hourly jobs run as written: check, alert (delivered to a webhook here) and the textfile' '
	mkdir -p etc lib/alert-state lib/nightly log textfile
	# The log was rotated during the hour: its end is in the live file.
	mklog > all.jsonl
	head -n 100 all.jsonl > log/requests.jsonl.1
	tail -n +101 all.jsonl > log/requests.jsonl
	# The rules file, with its targets pointed at a receiver that takes everything.
	port=$("$py" -c "import socket; s = socket.socket(); s.bind((\"127.0.0.1\", 0)); print(s.getsockname()[1])")
	"$py" -c "
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        n = int(self.headers.get(\"content-length\", 0)); body = self.rfile.read(n)
        with open(\"received\", \"ab\") as f: f.write(self.path.encode() + b\" \" + body + b\"\\n\")
        self.send_response(200); self.end_headers()
    def log_message(self, *a): pass
http.server.HTTPServer((\"127.0.0.1\", $port), H).serve_forever()" &
	echo $! >> "$scratch/pids"
	jq --arg u "http://127.0.0.1:$port" ".notify |= map(.url = \$u)" "$ex/cron/rules.json" > etc/rules.json
	cp "$ex/cron/alert.env" etc/alert.env
	i=0
	until curl -s -o /dev/null "http://127.0.0.1:$port/"; do i=$((i + 1)); [ $i -lt 200 ]; sleep 0.05; done
	cronjobs | grep "llm-monitor" > jobs
	[ "$(lines jobs)" = 3 ]
	while IFS= read -r job; do
		echo "\$ $job"
		sh -c "$job" || { echo "status $?"; false; }
	done < jobs
	# An error rate of 1/40 on one model: a warning, not a failure; and traffic is there.
	jq -e ".rules | length == 6" lib/check.json
	jq -e ".summary.fails == 0 and .summary.warns >= 1" lib/check.json
	jq -e "[.alerts[] | select(.state == \"firing\")] | length >= 1" lib/alert.json
	jq -e ".delivery" lib/alert.json
	grep -q "/api/v2/alerts" received
	grep -q "error-rate" received
	ls lib/alert-state | grep -q .
	grep -q "^llmops_" textfile/llmops.prom
	! command -v promtool > /dev/null || promtool check metrics < textfile/llmops.prom
'

t 'the rules file loads (status 0 or 1, never 2) and a broken one is refused' '
	mklog > req.jsonl
	run llm-monitor check --rules "$ex/cron/rules.json" --now "$(date +%s)" req.jsonl
	[ "$status" = 0 ] || [ "$status" = 1 ]
	LLMOPS_HOOK_SECRET=x run llm-monitor alert --dry-run --rules "$ex/cron/rules.json" --state st req.jsonl
	[ "$status" = 0 ]
	[ ! -e st ] || [ -z "$(ls st)" ]
	sed "s/\"op\": \"lt\"/\"op\": \"less\"/" "$ex/cron/rules.json" > bad.json
	run llm-monitor check --rules bad.json req.jsonl; expect_status 2
'

t 'the nightly eval runs as the crontab runs it, keeps its history and moves the baseline' '
	mkdir nightly
	env MODEL="$ws0/model" EVAL_SET="$ws0/eval/questions.jsonl" OUT=$PWD/nightly \
		NIGHTLY_ENV=/nonexistent THRESHOLDS="chrf=0" DAY=2026-01-01 "$ex/cron/nightly-eval" > out1
	[ -f nightly/2026-01-01/eval.json ] && [ -f nightly/2026-01-01/junit.xml ]
	[ "$(readlink nightly/latest.json)" = 2026-01-01/eval.json ]
	grep -q "rougeL" out1
	# The next night is compared with it; a failing night does not become the baseline.
	run env MODEL="$ws0/model" EVAL_SET="$ws0/eval/questions.jsonl" OUT=$PWD/nightly \
		NIGHTLY_ENV=/nonexistent THRESHOLDS="chrf=99.5" DAY=2026-01-02 "$ex/cron/nightly-eval"
	expect_status 1
	jq -e ".baseline" nightly/2026-01-02/eval.json > /dev/null
	[ "$(readlink nightly/latest.json)" = 2026-01-01/eval.json ]
'

if command -v systemd-analyze > /dev/null; then
t 'the systemd unit verifies clean (systemd-analyze verify), and its environment file is llm-serve'"'"'s' '
	sed "s|^ExecStart=.*|ExecStart=$(command -v llm-serve)|" "$ex/systemd/llm-serve.service" > llm-serve.service
	systemd-analyze verify --man=no ./llm-serve.service > v.out 2>&1 || { cat v.out; false; }
	# verify only warns about an unknown or misspelt key: none may be reported.
	[ ! -s v.out ] || { cat v.out; false; }
	grep -q "^ExecReload=/bin/kill -HUP \$MAINPID$" llm-serve.service
	grep -q "^KillSignal=SIGTERM$" llm-serve.service
	# Every LLMOPS_SERVE_ variable of the environment file is an option of llm-serve.
	llm-serve --completion-helper > opts
	for v in $(sed -n "s/^LLMOPS_SERVE_\([A-Z_]*\)=.*/\1/p" "$ex/systemd/llm-serve.env"); do
		o=--$(echo "$v" | tr "A-Z_" "a-z-")
		grep -qx -- "$o" opts || { echo "$v: no option $o"; false; }
	done
	# Longer than the drain: systemd must not kill a draining server.
	d=$(sed -n "s/^LLMOPS_SERVE_DRAIN_TIMEOUT=//p" "$ex/systemd/llm-serve.env")
	s=$(sed -n "s/^TimeoutStopSec=\([0-9]*\)s$/\1/p" llm-serve.service)
	[ "$s" -gt "$d" ]
'
else
	skip 'the systemd unit verifies clean' 'systemd-analyze missing'
fi

if command -v logrotate > /dev/null; then
t 'the logrotate snippet rotates the log, keeps yesterday'"'"'s plain, and asks for a reload' '
	mkdir log
	echo "{\"n\":1}" > log/requests.jsonl
	sed -e "s|/var/log/llmops/|$PWD/log/|" -e "s|create 0600 llmops llmops|create 0600|" \
		-e "s|systemctl reload llm-serve.service.*|echo reloaded > $PWD/reloaded|" \
		"$ex/systemd/llm-serve.logrotate" > rotate.conf
	logrotate -f -s state rotate.conf
	[ -f log/requests.jsonl.1 ] && [ -f log/requests.jsonl ] && [ ! -s log/requests.jsonl ]
	grep -q "\"n\":1" log/requests.jsonl.1
	grep -q reloaded reloaded
'
else
	skip 'the logrotate snippet' 'logrotate missing (apt-get install logrotate)'
fi

if command -v nginx > /dev/null && command -v openssl > /dev/null; then
t 'nginx.conf passes nginx -t' '
	openssl req -x509 -newkey rsa:2048 -nodes -days 1 -subj /CN=llm.example.com \
		-keyout key.pem -out cert.pem 2> /dev/null
	mkdir -p logs
	sed -e "s|/etc/ssl/certs/ssl-cert-snakeoil.pem|$PWD/cert.pem|" \
		-e "s|/etc/ssl/private/ssl-cert-snakeoil.key|$PWD/key.pem|" \
		-e "s|/var/log/nginx/|$PWD/logs/|" -e "/^user /d" "$ex/multi-machine/nginx.conf" > nginx.conf
	nginx -t -c "$PWD/nginx.conf" -p "$PWD/" -g "pid $PWD/nginx.pid; error_log $PWD/logs/error.log;" 2> t.out ||
		{ cat t.out; false; }
	grep -q "test is successful" t.out
'
else
	skip 'nginx.conf passes nginx -t' 'nginx missing (apt-get install nginx-light)'
fi

if command -v promtool > /dev/null; then
t 'prometheus.yml and its alerting rules pass promtool' '
	promtool check config "$ex/multi-machine/prometheus.yml"
	promtool check rules "$ex/multi-machine/llmops-alerts.yml"
	# The rules name metrics llm-serve exposes.
	for m in $(grep -o "llmops_[a-z_]*" "$ex/multi-machine/llmops-alerts.yml" | sed "s/_bucket$//" | sort -u); do
		grep -q "$m" "$top_srcdir/man/llm-serve.1.scd" || { echo "$m is not a metric of llm-serve"; false; }
	done
'
else
	skip 'prometheus.yml passes promtool' 'promtool missing (apt-get install prometheus)'
fi

t 'the gateway pools load in llm-serve (--config)' '
	llm-serve --config "$ex/multi-machine/pools.json" --host 127.0.0.1 --port 0 \
		--port-file port --health-interval 3600 > serve.out 2> serve.err &
	pid=$!
	echo $pid >> "$scratch/pids"
	i=0
	while [ ! -s port ] && kill -0 $pid 2> /dev/null; do
		i=$((i + 1)); [ $i -lt 400 ] || break; sleep 0.05
	done
	[ -s port ] || { cat serve.err; false; }
	curl -s "http://127.0.0.1:$(cat port)/v1/models" > models
	kill -TERM $pid; wait $pid || true
	jq -e "[.data[].id] | index(\"chat\") != null and index(\"small\") != null" models
'

t 'the multi-machine recipe uses only options the programs have' '
	# Each llm-* command of the recipe'"'"'s code blocks, its verb and its long options, checked
	# against the program (lines joined at their backslashes).
	awk "/^\\\`\\\`\\\`/ { code = !code; next } code" "$ex/multi-machine/README.md" |
		sed -e ":a" -e "/\\\\$/N; s/\\\\\n//; ta" |
		grep -oE "llm-[a-z]+( [a-z]+)?( [^|;>&'"'"'()\`]*)?" > cmds
	n=0
	while read -r prog rest; do
		command -v "$prog" > /dev/null || continue
		set -- $rest
		verb=
		case $($prog --completion-helper | head -1) in -*) ;; *) verb=${1-} ;; esac
		$prog $verb --completion-helper > opts
		for w in $rest; do
			case $w in --*) o=${w%%=*}; grep -qx -- "$o" opts ||
				{ echo "$prog $verb: no option $o"; false; } ;; esac
		done
		n=$((n + 1))
	done < cmds
	[ "$n" -gt 10 ]
'

done_testing
