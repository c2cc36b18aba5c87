#!/bin/sh
# llm-prep template: built-in chat formats, real Hugging Face chat templates (held to the
# strings Python's jinja2 renders, tests/data/template/goldens.jsonl, made by
# scripts/maint/make-template-goldens), {{field}} prompts, loss spans, bad input.
. "$top_srcdir/tests/cli/lib.sh"
T=$data/template
G=$T/goldens.jsonl

# golden CONFIG true|false ID: the text jinja2 rendered
golden() { jq -c "select(.template==\"$1\" and .generation_prompt==$2 and .id==\"$3\") | .text" "$G"; }

for cfg in gemma llama2 llama3 llama31 mistral qwen2 zephyr; do
	t "the $cfg chat template renders as jinja2 does, with and without the generation prompt" "
		llm-prep template -q --on-error skip --chat-template $T/$cfg.tokenizer_config.json $T/chat.jsonl > a.jsonl
		llm-prep template -q --on-error skip -g --chat-template $T/$cfg.tokenizer_config.json $T/chat.jsonl > b.jsonl
		jq -c '{id, prompt}' a.jsonl > got; jq -c 'select(.template==\"$cfg.tokenizer_config.json\" and .generation_prompt==false and .text) | {id, prompt: .text}' $G > want
		[ -s want ] && cmp got want
		jq -c '{id, prompt}' b.jsonl > got; jq -c 'select(.template==\"$cfg.tokenizer_config.json\" and .generation_prompt==true and .text) | {id, prompt: .text}' $G > want
		[ -s want ] && cmp got want
	"
done
t '--format llama3 renders what the Meta-Llama-3-8B-Instruct template renders' '
	llm-prep template -q -f llama3 -g $T/chat.jsonl | jq -c .prompt > got
	{ golden llama3.tokenizer_config.json true c1; golden llama3.tokenizer_config.json true c2; } > want
	cmp got want
'
t '--format llama2 renders what the Llama-2-chat template renders' '
	llm-prep template -q -f llama2 $T/chat.jsonl | jq -c .prompt > got
	{ golden llama2.tokenizer_config.json false c1; golden llama2.tokenizer_config.json false c2; } > want
	cmp got want
'
t '--format chatml renders what the Qwen2 template renders for a conversation with a system message' '
	llm-prep template -q -f chatml -g $T/chat.jsonl | head -n 1 | jq -c .prompt > got
	golden qwen2.tokenizer_config.json true c1 > want
	cmp got want
'
t '--format alpaca renders the Stanford Alpaca prompt from messages and from instruction/input fields' '
	printf "{\"messages\":[{\"role\":\"user\",\"content\":\"Add.\"}]}\n{\"instruction\":\"Add.\",\"input\":\"2 2\"}\n" > in.jsonl
	llm-prep template -q -f alpaca in.jsonl | jq -r .prompt > got
	printf "%s\n" "Below is an instruction that describes a task. Write a response that appropriately completes the request." "" "### Instruction:" "Add." "" "### Response:" "" \
		"Below is an instruction that describes a task, paired with an input that provides further context. Write a response that appropriately completes the request." "" "### Instruction:" "Add." "" "### Input:" "2 2" "" "### Response:" "" > want
	cmp got want
'
t 'other fields pass through byte for byte and in order; the prompt field is added at the end' '
	printf "{\"z\" : 1.50, \"messages\":[{\"role\":\"user\",\"content\":\"Hi\"}],\"a\":[ ]}\n" > in.jsonl
	llm-prep template -q -f chatml in.jsonl > out.jsonl
	grep -q "^{\"z\" : 1.50, \"messages\":\[{\"role\":\"user\",\"content\":\"Hi\"}\],\"a\":\[ \],\"prompt\":" out.jsonl
'
t '--mask spans cover each assistant answer and its end-of-turn marker, in UTF-8 bytes' '
	llm-prep template -q -f chatml --mask $T/chat.jsonl > m.jsonl
	[ "$(head -n 1 m.jsonl | jq -c .loss_spans)" = "[[138,176]]" ]
	head -n 1 m.jsonl | jq -j .text | head -c 176 | tail -c 38 > got
	printf "Paris — la Ville Lumière.<|im_end|>" > want; cmp got want
'
t '--mask gives the same spans for the built-in llama3 format and the real Llama 3 template' '
	llm-prep template -q -f llama3 --mask $T/chat.jsonl | jq -c "[.text, .loss_spans]" > a
	llm-prep template -q -c $T/llama3.tokenizer_config.json --mask $T/chat.jsonl | jq -c "[.text, .loss_spans]" > b
	cmp a b; [ "$(head -n 1 a | jq -c ".[1]")" = "[[228,266]]" ]
'
t '--mask with {% generation %} blocks in a bare .jinja template uses the blocks' '
	llm-prep template -q -c $T/chatml-generation.jinja --mask $T/chat.jsonl | jq -c .loss_spans > got
	printf "[[138,176]]\n[[52,86]]\n" > want; cmp got want
'
t '--mask finds trimmed answers in a template without generation blocks (Mistral)' '
	llm-prep template -q -c $T/mistral.tokenizer_config.json --mask $T/chat.jsonl > m.jsonl
	[ "$(sed -n 2p m.jsonl | jq -c .loss_spans)" = "[[20,46]]" ]
	sed -n 2p m.jsonl | jq -j .text | head -c 46 | tail -c 26 > got
	printf "Hello! How can I help?</s>" > want; cmp got want
'
t 'a prompt/completion pair renders as one user turn; --mask marks the completion' '
	printf "{\"prompt\":\"2+2?\",\"completion\":\"4\"}\n" > p.jsonl
	llm-prep template -q -f chatml p.jsonl | jq -j .prompt > got
	printf "<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n" > want; cmp got want
	llm-prep template -q -f chatml --mask p.jsonl > m.jsonl
	jq -e ".loss_spans == [[54,65]] and (.text | endswith(\"assistant\\n4<|im_end|>\\n\"))" m.jsonl
'
t '--template fills {{field}} with strings decoded and other values as JSON; {{{{ is a literal' '
	printf "Q: {{question}} ({{ n }}, {{tags}}) {{{{x}}}}\nA:\n" > q.txt
	printf "{\"question\":\"2+2\\\\n?\",\"n\":3.0,\"tags\":[\"a\", 1]}\n" > in.jsonl
	llm-prep template -q -t q.txt in.jsonl | jq -j .prompt > got
	printf "Q: 2+2\n? (3.0, [\"a\", 1]) {{x}}\nA:" > want; cmp got want
'
t '--template --mask appends the completion and marks it' '
	printf "Q: {{q}}\nA: " > q.txt; printf "{\"q\":\"1+1\",\"completion\":\"2\"}\n" > in.jsonl
	llm-prep template -q -t q.txt --mask in.jsonl | jq -e ".text == \"Q: 1+1\\nA: 2\" and .loss_spans == [[10,11]]"
'
t 'a missing field names the record and the template line, exit 1' '
	printf "Q:\n{{question}}\n" > q.txt; printf "{\"question\":\"a\"}\n{\"other\":1}\n" > in.jsonl
	run llm-prep template -t q.txt in.jsonl; expect_status 1
	expect_err "in.jsonl:2: missing field \"question\" (q.txt:2)"
	run llm-prep template -q -t q.txt --on-error skip in.jsonl; expect_status 0; [ "$(lines out)" = 1 ]
'
t 'a malformed prompt template names the file and line, exit 2' '
	printf "line one\nQ: {{ question\n" > q.txt
	run llm-prep template -t q.txt "$data/good.jsonl"; expect_status 2; expect_err "q.txt:2:"; expect_no_out
'
t 'a malformed chat template names the file and line, exit 2' '
	printf "{%% for m in messages %%}\n{{ m.content }}\n{%% endif %%}\n" > bad.jinja
	run llm-prep template -c bad.jinja "$T/chat.jsonl"; expect_status 2; expect_err "bad.jinja:3: unexpected '"'"'endif'"'"'"
	printf "{\"chat_template\": \"\\\\n{{ messages[0] + }}\"}\n" > cfg.json
	run llm-prep template -c cfg.json "$T/chat.jsonl"; expect_status 2; expect_err "cfg.json:2: unexpected '"'"'}}'"'"'"
'
t 'raise_exception in a template is a bad record naming the record and the message' '
	run llm-prep template -c "$T/gemma.tokenizer_config.json" "$T/chat.jsonl"; expect_status 1
	expect_err "chat.jsonl:1: the chat template refused it: System role not supported"
	run llm-prep template -q --on-error keep -c "$T/gemma.tokenizer_config.json" "$T/chat.jsonl"; expect_status 0
	[ "$(head -n 1 out | jq -r .error.code)" = check_failed ] || [ "$(head -n 1 out | jq -r ".error.message")" != null ]
'
t 'records without messages or prompt are bad records; counts add up in --report' '
	printf "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"}]}\n{\"text\":\"x\"}\n{\"messages\":\"no\"}\nnot json\n" > in.jsonl
	run llm-prep template -f chatml in.jsonl; expect_status 1; expect_err "in.jsonl:2: no \"messages\" field (nor \"prompt\")"
	run llm-prep template -q -f chatml --on-error skip --report rep.json in.jsonl; expect_status 0
	[ "$(lines out)" = 1 ]
	jq -e ".read == 4 and .written == 1 and .dropped == 3 and .read == .written + .dropped" rep.json
'
t 'llama2 refuses turns that do not alternate' '
	printf "{\"messages\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"user\",\"content\":\"b\"}]}\n" > in.jsonl
	run llm-prep template -f llama2 in.jsonl; expect_status 1; expect_err "in.jsonl:1: message 2: llama2 needs user and assistant turns alternating"
'
t 'field names are options: --messages-field, --prompt-field, --text-field, --spans-field' '
	printf "{\"conv\":[{\"role\":\"user\",\"content\":\"a\"},{\"role\":\"assistant\",\"content\":\"b\"}]}\n" > in.jsonl
	llm-prep template -q -f chatml --messages-field conv --prompt-field input in.jsonl | jq -e ".input | startswith(\"<|im_start|>user\")"
	llm-prep template -q -f chatml --messages-field conv --mask --text-field t --spans-field s in.jsonl | jq -e ".s == [[51,62]] and .t[51:62] == \"b<|im_end|>\""
'
t '--var, --bos-token and --eos-token set chat template variables' '
	printf "{{ bos_token }}{{ date_string }}|{{ flag }}|{{ eos_token }}" > v.jinja
	printf "{\"messages\":[]}\n" > in.jsonl
	llm-prep template -q -c v.jinja --var date_string="1 Jan 2025" --var flag=false --bos-token "<s>" --eos-token "</s>" in.jsonl | jq -j .prompt > got
	printf "<s>1 Jan 2025|False|</s>" > want; cmp got want
'
t 'exactly one of --format, --chat-template, --template; a bad format name is a usage error' '
	run llm-prep template "$T/chat.jsonl"; expect_status 2
	run llm-prep template -f chatml -t x.txt "$T/chat.jsonl"; expect_status 2
	run llm-prep template -f vicuna "$T/chat.jsonl"; expect_status 2
	run llm-prep template -f chatml --var a=1 "$T/chat.jsonl"; expect_status 2
'
t 'a missing template file fails with 3; bad JSON input is a bad record (exit 1)' '
	run llm-prep template -c nope.json "$T/chat.jsonl"; expect_status 3; expect_err "nope.json"
	run llm-prep template -f chatml "$data/bad-json.jsonl"; expect_status 1
'
t 'works in a pipe, reads stdin, and is deterministic' '
	cat "$T/chat.jsonl" | llm-prep template -q -c "$T/llama31.tokenizer_config.json" -g > a
	llm-prep template -q -c "$T/llama31.tokenizer_config.json" -g - < "$T/chat.jsonl" > b
	cmp a b; [ "$(lines a)" = 2 ]
	llm-prep template -q -f chatml "$T/chat.jsonl" | head -n 1 | jq -e .prompt >/dev/null
'
done_testing
