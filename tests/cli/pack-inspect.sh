#!/bin/sh
# llm-pack inspect, diff and card: what the manifest says, shown on a terminal and as JSON;
# two artifacts compared (files, fields, parameters and metrics with deltas); a Hugging Face
# model card whose YAML front matter holds the licence, base model, datasets, tags and
# model-index results.
. "$top_srcdir/tests/cli/lib.sh"
py=/usr/bin/python3
export SOURCE_DATE_EPOCH=1700000000

# Two versions of a model: v2 changes model.bin, drops old.txt, adds new.txt, and has other
# parameters and metrics.
setup() {
	mkdir v1 v2
	printf "{}\n" > v1/config.json && cp v1/config.json v2/
	head -c 1000 /dev/zero > v1/model.bin && head -c 2000 /dev/zero > v2/model.bin
	echo old > v1/old.txt && echo new > v2/new.txt
	printf "{\"lr\":0.001,\"steps\":100,\"lora\":{\"r\":8},\"schedule\":\"cosine\"}\n" > p1.json
	printf "{\"lr\":0.0005,\"steps\":100,\"lora\":{\"r\":16},\"schedule\":\"cosine\"}\n" > p2.json
	printf "{\"format\":1,\"metrics\":{\"bleu\":{\"score\":20.5,\"signature\":\"s1\",\"ci\":{\"lo\":19,\"hi\":22,\"level\":0.95}},\"chrf\":{\"score\":50}}}\n" > r1.json
	printf "{\"format\":1,\"metrics\":{\"bleu\":{\"score\":23,\"signature\":\"s1\"},\"chrf\":{\"score\":49.5,\"signature\":\"other\"}}}\n" > r2.json
	printf "{\"text\":\"x\"}\n" > train.jsonl
	llm-pack create v1 --name bot --version 1.0.0 --params p1.json --metrics r1.json \
		--licence MIT -q > /dev/null
	llm-pack create v2 --name bot --version 1.1.0 --params p2.json --metrics r2.json \
		--licence Apache-2.0 --parent bot-1.0.0.tar.gz --base hf:org/base-7b \
		--data train.jsonl --tag chat -q > /dev/null
}

t 'inspect shows name, identity, files, parameters and metrics' '
	setup
	llm-pack inspect bot-1.1.0.tar.gz > out
	[ "$(head -1 out)" = "bot 1.1.0" ]
	grep -q "^identity   sha256:[0-9a-f]\{64\}$" out
	grep -q "^created    2023-11-14T22:13:20Z$" out
	grep -q "^licence    Apache-2.0$" out
	grep -q "^parent     bot@1.0.0  sha256:" out
	grep -q "^base       hf:org/base-7b$" out
	grep -q "^files (3, 2.01 kB)$" out
	grep -q "model.bin$" out
	grep -q "^  lr  *0.0005$" out
	grep -q "^  bleu  *23  s1$" out
	grep -q "^  train.jsonl  [0-9a-f]\{12\}  1 record$" out
'

t 'inspect --json gives the identity, the size and the whole manifest' '
	setup
	llm-pack inspect --json bot-1.1.0.tar.gz > j
	jq -e "(.identity | test(\"^sha256:[0-9a-f]{64}$\")) and .size == 2007 and .path == \"bot-1.1.0.tar.gz\"" j
	jq -e ".manifest.format == 1 and .manifest.name == \"bot\" and .manifest.version == \"1.1.0\"" j
	jq -e "[.manifest.files[].path] == [\"config.json\",\"model.bin\",\"new.txt\"]" j
	jq -e ".manifest.created == \"2023-11-14T22:13:20Z\" and .manifest.licence == \"Apache-2.0\"" j
	jq -e ".manifest.metrics.bleu == {\"score\":23,\"signature\":\"s1\"}" j
	[ "$(jq -r .identity j)" = "sha256:$(tar xOzf bot-1.1.0.tar.gz MANIFEST.json | sha256sum | cut -c1-64)" ]
'

t 'inspect reads an unpacked folder and a MANIFEST.json the same' '
	setup
	llm-pack unpack -q bot-1.1.0.tar.gz u > /dev/null
	llm-pack inspect --json bot-1.1.0.tar.gz | jq -S "del(.path)" > a
	llm-pack inspect --json u | jq -S "del(.path)" > b
	llm-pack inspect --json u/MANIFEST.json | jq -S "del(.path)" > c
	cmp a b
	cmp a c
	run llm-pack inspect nothing.tar.gz
	expect_status 3
	echo "{}" > bad.json
	run llm-pack inspect bad.json
	expect_status 1
	expect_err "not an llmops manifest"
'

t 'diff shows files added, removed and changed, fields, and deltas' '
	setup
	llm-pack diff bot-1.0.0.tar.gz bot-1.1.0.tar.gz > out
	grep -q "^--- bot 1.0.0 sha256:" out
	grep -q "^+++ bot 1.1.0 sha256:" out
	grep -q "^files: 1 added, 1 removed, 1 changed, 1 unchanged$" out
	grep -q "^+ new.txt  4 B$" out
	grep -q "^- old.txt  4 B$" out
	grep -q "^~ model.bin  1.00 kB -> 2.00 kB$" out
	grep -q "^\* version  *1.0.0  *1.1.0$" out
	grep -q "^\* licence  *MIT  *Apache-2.0$" out
	grep -q "^\* lr  *0.001  *0.0005  *-0.0005$" out
	grep -q "^\* lora.r  *8  *16  *+8$" out
	! grep -q "schedule" out
	grep -q "^\* bleu  *20.5  *23  *+2.5$" out
	grep -q "^\* chrf  *50  *49.5  *-0.5$" out
	llm-pack diff --all bot-1.0.0.tar.gz bot-1.1.0.tar.gz | grep -q "^  schedule  *cosine  *cosine$"
'

t 'diff --json has the same rows; --exit-code says whether they differ' '
	setup
	llm-pack diff --json bot-1.0.0.tar.gz bot-1.1.0.tar.gz > j
	jq -e ".same == false and .a.version == \"1.0.0\" and .b.version == \"1.1.0\"" j
	jq -e ".files.added == [{\"path\":\"new.txt\",\"size\":4,\"sha256\":\"$(sha256sum v2/new.txt | cut -c1-64)\"}]" j
	jq -e "[.files.removed[].path] == [\"old.txt\"] and [.files.changed[].path] == [\"model.bin\"] and .files.unchanged == 1" j
	jq -e ".files.changed[0].size_a == 1000 and .files.changed[0].size_b == 2000" j
	jq -e ".params[] | select(.name == \"lora.r\") | .delta == 8 and .differs" j
	jq -e ".params[] | select(.name == \"schedule\") | .differs == false" j
	jq -e ".metrics[] | select(.name == \"bleu\") | .a == 20.5 and .b == 23 and .delta == 2.5" j
	jq -e ".metrics[] | select(.name == \"chrf\") | .signature_differs == null" j
	jq -e ".fields[] | select(.name == \"parent\") | .a == null and .b.name == \"bot\"" j
	run llm-pack diff --exit-code bot-1.0.0.tar.gz bot-1.1.0.tar.gz
	expect_status 1
	llm-pack diff --exit-code bot-1.1.0.tar.gz bot-1.1.0.tar.gz > out
	grep -q "^files: 0 added, 0 removed, 0 changed, 3 unchanged$" out
	run llm-pack diff bot-1.0.0.tar.gz
	expect_status 2
'

t 'diff marks metrics whose signatures differ as not comparable' '
	setup
	printf "{\"metrics\":{\"bleu\":{\"score\":21,\"signature\":\"s2\"}}}\n" > r3.json
	llm-pack create v2 --name bot --version 1.2.0 --metrics r3.json -q > /dev/null
	llm-pack diff bot-1.0.0.tar.gz bot-1.2.0.tar.gz | grep -q "^\* bleu .*(signatures differ: not comparable)$"
	llm-pack diff --json bot-1.0.0.tar.gz bot-1.2.0.tar.gz |
		jq -e ".metrics[] | select(.name == \"bleu\") | .signature_differs"
'

# A reader for the YAML the card writes (block mappings and sequences, JSON-quoted or plain
# scalars); PyYAML, when Debian has it installed, must read the same.
cat > "$scratch/yaml_subset.py" <<'EOF'
import json, sys

def scalar(s):
    if s.startswith('"'):
        return json.loads(s)
    if s in ("true", "false"):
        return s == "true"
    try:
        return int(s)
    except ValueError:
        try:
            return float(s)
        except ValueError:
            return s

def parse(lines, i, indent):
    """Parse the block starting at lines[i] indented by indent; return (value, next i)."""
    if lines[i][indent:].startswith("- "):
        out = []
        while i < len(lines) and lines[i].startswith(" " * indent + "- "):
            rest = lines[i][indent + 2:]
            if ": " in rest or rest.endswith(":"):
                lines[i] = " " * (indent + 2) + rest
                v, i = parse(lines, i, indent + 2)
            else:
                v, i = scalar(rest), i + 1
            out.append(v)
        return out, i
    out = {}
    while i < len(lines) and lines[i].startswith(" " * indent) and lines[i][indent] != " " \
            and not lines[i][indent:].startswith("- "):
        key, _, rest = lines[i][indent:].partition(":")
        rest = rest.strip()
        if rest:
            out[key], i = scalar(rest), i + 1
        else:
            nxt = lines[i + 1]
            sub = len(nxt) - len(nxt.lstrip(" "))
            out[key], i = parse(lines, i + 1, sub)
    return out, i

text = open(sys.argv[1], encoding="utf-8").read()
assert text.startswith("---\n"), "no front matter"
front = text[4:text.index("\n---\n")]
value, _ = parse(front.split("\n"), 0, 0)
try:
    import yaml
    assert yaml.safe_load(front) == value, "PyYAML reads it otherwise"
except ImportError:
    pass
json.dump(value, sys.stdout, sort_keys=True)
EOF

t 'card writes YAML front matter with licence, base model, datasets, tags and model-index' '
	setup
	llm-pack card bot-1.1.0.tar.gz > README.md
	$py "$scratch/yaml_subset.py" README.md > front.json
	jq -e ".license == \"apache-2.0\" and .base_model == \"hf:org/base-7b\"" front.json
	jq -e ".datasets == [\"train.jsonl\"] and .tags == [\"llmops\",\"chat\"]" front.json
	jq -e ".pipeline_tag == \"text-generation\"" front.json
	jq -e ".\"model-index\"[0].name == \"bot\"" front.json
	jq -e ".\"model-index\"[0].results[0].task.type == \"text-generation\"" front.json
	jq -e ".\"model-index\"[0].results[0].dataset == {\"name\":\"train.jsonl\",\"type\":\"train.jsonl\"}" front.json
	jq -e "[.\"model-index\"[0].results[0].metrics[] | {type, value}] == [{\"type\":\"bleu\",\"value\":23},{\"type\":\"chrf\",\"value\":49.5}]" front.json
	jq -e ".\"model-index\"[0].results[0].metrics[0].args.signature == \"s1\"" front.json
	jq -e ".\"model-index\"[0].results[0].metrics[0].verified == false" front.json
	grep -q "^# bot 1.1.0$" README.md
	grep -q "^| bleu | 23 |  | s1 |$" README.md
	grep -q "^| lr | 0.0005 |$" README.md
	grep -q "llm-pack verify bot-1.1.0.tar.gz" README.md
'

t 'card writes an SPDX expression as license other, and --out writes a file' '
	setup
	llm-pack create v1 --name bot --version 2.0.0 --licence "Apache-2.0 OR MIT" -q > /dev/null
	llm-pack card --out card.md --eval-dataset squad bot-2.0.0.tar.gz > out
	[ ! -s out ]
	$py "$scratch/yaml_subset.py" card.md > front.json
	jq -e ".license == \"other\" and .license_name == \"Apache-2.0 OR MIT\"" front.json
	jq -e "has(\"model-index\") | not" front.json
	llm-pack card --eval-dataset squad bot-1.0.0.tar.gz > c1.md
	$py "$scratch/yaml_subset.py" c1.md | jq -e ".\"model-index\"[0].results[0].dataset.name == \"squad\""
'

done_testing
