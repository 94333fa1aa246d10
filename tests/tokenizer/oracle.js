// Hugging Face's own tokenizers library as the oracle for `rewarm tokenize`.
//   node oracle.js train OUT.json VOCAB_SIZE FILE...     byte-level BPE of the GPT-NeoX-20B structure
//   node oracle.js encode TOKENIZER.json IN.jsonl OUT.bin [FIELD]
//        ids of each line's FIELD (default "text") + EOD (<|endoftext|>), as little-endian uint32
const fs = require("fs");
const tk = require("tokenizers");

function train(out, vocabSize, files) {
  const tok = new tk.Tokenizer(tk.BPE.empty());
  tok.setNormalizer(tk.nfcNormalizer());
  tok.setPreTokenizer(tk.byteLevelPreTokenizer(false, true));
  tok.addSpecialTokens(["<|endoftext|>", "<|padding|>"]);
  tok.train(files);
  tok.save(out, true);
  // GPT-NeoX-20B's layout: <|endoftext|> = 0 and <|padding|> = 1 in the model vocabulary too,
  // the full byte alphabet, merges as trained, and whitespace runs as normalised (non-special)
  // added tokens at the end of the vocabulary.
  const j = JSON.parse(fs.readFileSync(out, "utf8"));
  const vocab = { "<|endoftext|>": 0, "<|padding|>": 1 };
  const byId = Object.entries(j.model.vocab).sort((a, b) => a[1] - b[1]);
  let next = 2;
  for (const [tokStr] of byId) vocab[tokStr] = next++;
  for (const ch of tk.byteLevelAlphabet()) if (!(ch in vocab)) vocab[ch] = next++;
  j.added_tokens = j.added_tokens.filter((t) => t.special);  // ids 0 and 1
  j.added_tokens.forEach((t) => { t.id = vocab[t.content]; });
  for (const run of ["  ", "    ", "        "]) {
    vocab[run] = next;
    j.added_tokens.push({ id: next++, content: run, single_word: false, lstrip: false, rstrip: false,
                          normalized: true, special: false });
  }
  j.model.vocab = vocab;
  fs.writeFileSync(out, JSON.stringify(j, null, 2));
  const check = tk.Tokenizer.fromFile(out);  // loads: the file is a valid tokenizer
  console.log(`${out}: vocab ${check.getVocabSize(true)}`);
}

async function encode(tokFile, inFile, outFile, field) {
  const tok = tk.Tokenizer.fromFile(tokFile);
  const eod = tok.tokenToId("<|endoftext|>");
  // Buffer -> string decoding replaces invalid UTF-8 with U+FFFD (WHATWG), like rewarm.
  const lines = fs.readFileSync(inFile).toString("utf8").split("\n").filter((l) => l.length > 0);
  const ids = [];
  for (const line of lines) {
    const enc = await tok.encode(JSON.parse(line)[field], null, { addSpecialTokens: false });
    for (const id of enc.getIds()) ids.push(id);
    ids.push(eod);
  }
  fs.writeFileSync(outFile, Buffer.from(new Uint32Array(ids).buffer));
}

const [cmd, ...args] = process.argv.slice(2);
if (cmd === "train") train(args[0], Number(args[1]), args.slice(2));
else if (cmd === "encode") encode(args[0], args[1], args[2], args[3] || "text").catch((e) => { console.error(e); process.exit(1); });
else { console.error("usage: oracle.js train|encode ..."); process.exit(2); }
