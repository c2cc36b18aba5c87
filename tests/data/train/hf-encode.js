// usage: node enc.js tokenizer.json TEXT... -- ids from HF tokenizers for each text, one JSON array a line
const { Tokenizer } = require("tokenizers");
const [file, ...texts] = process.argv.slice(2);
const t = Tokenizer.fromFile(file);
(async () => {
  for (const s of texts) {
    const e = await t.encode(s, null, { addSpecialTokens: false });
    const back = await t.decode(e.getIds(), false);
    console.log(JSON.stringify(e.getIds()), back === s ? "roundtrip" : "DIFF:" + JSON.stringify(back));
  }
})();
