// usage: node train.js PATTERN corpus.txt out.json  -- HF tokenizers' BpeTrainer (defaults) on the lines of corpus.txt
const { Tokenizer } = require("tokenizers");
const [pattern, corpus, out] = process.argv.slice(2);
const bl = { type: "ByteLevel", add_prefix_space: false, trim_offsets: true, use_regex: false };
const spec = {
  version: "1.0", truncation: null, padding: null,
  added_tokens: [{ id: 0, content: "<|endoftext|>", single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }],
  normalizer: null,
  pre_tokenizer: { type: "Sequence", pretokenizers: [{ type: "Split", pattern: { Regex: pattern }, behavior: "Isolated", invert: false }, bl] },
  post_processor: bl, decoder: bl,
  model: { type: "BPE", dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null, fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
};
const t = Tokenizer.fromString(JSON.stringify(spec));
t.train([corpus]);
t.save(out, true);
