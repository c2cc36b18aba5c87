#!/bin/sh
# Our corpus BLEU (lib/metrics/bleu through tests/unit/bleu-cli) against NLTK's corpus_bleu on
# 10,000 generated pairs, where the two definitions agree: pre-tokenized text (tokenizer none),
# one reference, no smoothing, hypotheses of at least max-order tokens (NLTK counts a missing
# n-gram order as one n-gram), every order with some match (NLTK turns a zero precision into
# the smallest float, sacreBLEU into a score of 0).  With one reference NLTK's closest
# reference length and brevity penalty are sacreBLEU's.  NLTK is Debian's python3-nltk
# (scripts/deps test installs it); the pairs come from a seeded generator, so every run
# compares the same corpus.  Scores must agree to 1e-9, relative.
. "$top_srcdir/tests/cli/lib.sh"
bleu=$top_builddir/tests/unit/bleu-cli
py=/usr/bin/python3

# gen SEED SHORTEN ORDERS...: writes pairs.tsv (hypothesis TAB reference) and prints NLTK's
# score (×100) for each max order, and its brevity penalty into bp.txt.  SHORTEN 1 cuts hypotheses so the brevity penalty bites.
cat > "$scratch/gen.py" <<'PY'
import random, sys, warnings
from nltk.translate.bleu_score import brevity_penalty, corpus_bleu
warnings.simplefilter("ignore")
seed, shorten, orders = int(sys.argv[1]), sys.argv[2] == "1", [int(x) for x in sys.argv[3:]]
rng = random.Random(seed)
# A Zipf-like vocabulary, so that common words repeat (clipping matters) and longer n-grams
# match often enough.
vocab = ["w%d" % i for i in range(400)] + list(".,;:!?'\"()-") + ["é", "ß", "中文", "1,000"]
weights = [1.0 / (i + 1) for i in range(len(vocab))]
hyps, refs = [], []
with open("pairs.tsv", "w", encoding="utf-8") as f:
    for _ in range(10000):
        ref = rng.choices(vocab, weights, k=rng.randint(1, 40))
        hyp = []
        for w in ref:  # edit the reference: keep, drop, replace, or insert
            r = rng.random()
            if r < 0.6:
                hyp.append(w)
            elif r < 0.75:
                hyp.append(rng.choices(vocab, weights)[0])
            elif r < 0.9:
                hyp += [w, rng.choices(vocab, weights)[0]]
        if shorten:
            hyp = hyp[: max(1, int(len(hyp) * 0.8))]
        while len(hyp) < 4:
            hyp.append(rng.choices(vocab, weights)[0])
        hyps.append(hyp)
        refs.append([ref])
        f.write(" ".join(hyp) + "\t" + " ".join(ref) + "\n")
for n in orders:
    print("%.17g" % (100 * corpus_bleu(refs, hyps, weights=tuple([1.0 / n] * n))))
with open("bp.txt", "w") as f:
    c, r = sum(len(h) for h in hyps), sum(len(r[0]) for r in refs)
    f.write("%.17g\n" % brevity_penalty(r, c))
PY

# compare WANT GOT: equal to 1e-9, relative.
same() {
	awk -v a="$1" -v b="$2" 'BEGIN { d = a - b; if (d < 0) d = -d; m = a < 0 ? -a : a;
		if (d <= 1e-9 * m && a > 0) exit 0; print "NLTK " a ", ours " b; exit 1 }'
}

t 'python3-nltk is installed (scripts/deps test)' '
	$py -c "import nltk.translate.bleu_score"
'
t 'corpus BLEU of 10,000 pairs equals NLTK corpus_bleu at max order 1 to 4' '
	$py "$scratch/gen.py" 20240601 0 1 2 3 4 > nltk.txt
	[ "$(lines pairs.tsv)" = 10000 ]
	n=0
	while read -r want; do
		n=$((n + 1))
		got=$("$bleu" --tokenize none --smooth none --max-order $n pairs.tsv)
		same "$want" "$got"
	done < nltk.txt
	[ $n = 4 ]
'
t 'with hypotheses shorter than references the brevity penalty agrees with NLTK' '
	$py "$scratch/gen.py" 7 1 4 > nltk.txt
	awk "BEGIN { exit !($(cat bp.txt) < 0.95) }"
	same "$(cat nltk.txt)" "$("$bleu" --tokenize none --smooth none pairs.tsv)"
'
t 'exp smoothing changes nothing when every order matches' '
	$py "$scratch/gen.py" 99 0 4 > nltk.txt
	same "$(cat nltk.txt)" "$("$bleu" --tokenize none pairs.tsv)"
'
done_testing
