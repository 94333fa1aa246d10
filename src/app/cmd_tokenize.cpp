// rewarm tokenize --tokenizer tokenizer.json --jsonl FILE... --out shard.h5
// JSON lines (plain or .zst) -> token shard, each document followed by EOD, in parallel.
// rewarm tokenize --tokenizer tokenizer.json --task FILE --out task.h5: a multiple-choice task
// (data/task_tokenize.hpp).
//
// Invalid UTF-8 in the input is replaced (one U+FFFD per maximal invalid subpart, as the
// WHATWG decoder of browsers and Node.js does) rather than rejected: web-scale corpora carry
// stray bytes, and dropping whole documents would bias the data. A line that is not valid
// JSON, not an object, or lacks the text field is an error naming the file and line.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/commands.hpp"
#include "core/error.hpp"
#include "core/index.hpp"
#include "data/bpe_tokenizer.hpp"
#include "data/task_tokenize.hpp"
#include "io/stored_tokenizer.hpp"
#include "data/text_reader.hpp"
#include "data/token_shard.hpp"
#include "io/atomic_file.hpp"
#include "io/hdf5.hpp"

namespace rewarm {
namespace {

struct TokenizeOptions {
  std::string tokenizer, out, field = "text", eod = "<|endoftext|>", task;
  std::vector<std::string> inputs;
  Index vocab_size = 0, threads = 0, chunk = 1 << 16;
  int deflate = 0;
  bool quiet = false;
};

struct Doc {
  std::vector<std::uint32_t> ids;
  std::string error;  // non-empty: this line is bad
};

// Parses and tokenizes one line (already UTF-8 repaired).
void tokenize_line(const BpeTokenizer& tok, const std::string& field, const std::string& line, Doc& d) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(line);
  } catch (const nlohmann::json::parse_error& e) {
    d.error = std::string("malformed JSON (") + e.what() + ")";
    return;
  }
  if (!j.is_object()) {
    d.error = "not a JSON object";
    return;
  }
  auto it = j.find(field);
  if (it == j.end() || !it->is_string()) {
    d.error = it == j.end() ? "no \"" + field + "\" field" : "\"" + field + "\" is not a string";
    return;
  }
  d.ids = tok.encode(it->get_ref<const std::string&>());
}

template <class Out>
void run(const TokenizeOptions& o, const BpeTokenizer& tok, std::uint32_t eod, Index vocab, h5::File& f) {
  h5::AppendWriter<Out> tokens(f, "/tokens", o.chunk, o.deflate);
  h5::AppendWriter<std::int64_t> offsets(f, "/document_offsets", 1 << 16, o.deflate);
  const std::int64_t zero = 0;
  offsets.append(&zero, 1);
  const unsigned threads = o.threads > 0 ? unsigned(o.threads) : std::max(1u, std::thread::hardware_concurrency());
  std::size_t total_bytes = 0, done_bytes = 0, text_bytes = 0;
  for (const auto& p : o.inputs) total_bytes += LineReader(p).file_size();
  const auto t0 = std::chrono::steady_clock::now();
  auto last = t0;
  Index docs = 0;
  for (const auto& path : o.inputs) {
    LineReader reader(path);
    std::vector<std::string> lines;
    std::vector<Index> numbers;
    Index line_no = 0;
    std::string line;
    bool more = true;
    while (more) {
      lines.clear(), numbers.clear();
      std::size_t batch_bytes = 0;
      while (batch_bytes < (8u << 20) && (more = reader.next(line))) {
        ++line_no;
        if (line.find_first_not_of(" \t\r") == std::string::npos) continue;  // blank lines carry no document
        batch_bytes += line.size();
        lines.push_back(repair_utf8(line));
        numbers.push_back(line_no);
      }
      std::vector<Doc> out(lines.size());
      std::vector<std::thread> pool;
      for (unsigned t = 0; t < threads; ++t)
        pool.emplace_back([&, t] {
          for (std::size_t i = t; i < lines.size(); i += threads) tokenize_line(tok, o.field, lines[i], out[i]);
        });
      for (auto& th : pool) th.join();
      std::vector<Out> buf;
      std::vector<std::int64_t> starts;
      for (std::size_t i = 0; i < out.size(); ++i) {
        if (!out[i].error.empty()) fail(path, "line " + std::to_string(numbers[i]) + ": " + out[i].error);
        for (auto id : out[i].ids) {
          if (id >= vocab) fail(o.tokenizer, "token id " + std::to_string(id) + " is not below the vocabulary size");
          buf.push_back(Out(id));
        }
        buf.push_back(Out(eod));
        starts.push_back(tokens.size() + std::int64_t(buf.size()));
      }
      tokens.append(buf.data(), std::int64_t(buf.size()));
      offsets.append(starts.data(), std::int64_t(starts.size()));
      docs += Index(out.size());
      text_bytes += batch_bytes;
      const auto now = std::chrono::steady_clock::now();
      if (!o.quiet && std::chrono::duration<double>(now - last).count() > 1) {
        const double s = std::chrono::duration<double>(now - t0).count();
        std::fprintf(
            stderr, "\rtokenize: %.1f%% of the input, %lld documents, %.1f MB/s of text   ",
            100.0 * double(done_bytes + reader.compressed_bytes_read()) / double(std::max<std::size_t>(total_bytes, 1)),
            static_cast<long long>(docs), text_bytes / 1e6 / s);
        last = now;
      }
    }
    done_bytes += reader.file_size();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  if (!o.quiet) std::fprintf(stderr, "\r%80s\r", "");
  std::printf("%s: %lld documents, %lld tokens, %.1f MB of text at %.2f MB/s (%u threads, %.2f MB/s per thread)\n",
              o.out.c_str(), static_cast<long long>(docs), static_cast<long long>(tokens.size()), text_bytes / 1e6,
              text_bytes / 1e6 / s, threads, text_bytes / 1e6 / s / threads);
}

}  // namespace

void register_tokenize(CLI::App& app) {
  auto* cmd =
      app.add_subcommand("tokenize", "JSON lines (plain or .zst) -> token shard with a HF byte-level BPE tokenizer");
  auto o = std::make_shared<TokenizeOptions>();
  cmd->add_option("--tokenizer", o->tokenizer, "HF tokenizer.json (byte-level BPE, e.g. GPT-NeoX-20B's)")->required();
  auto* jsonl = cmd->add_option("--jsonl", o->inputs, "input files, .jsonl or .jsonl.zst");
  cmd->add_option("--task", o->task,
                  "a multiple-choice task instead: JSON lines {\"context\", \"choices\", \"answer\"} -> task file")
      ->excludes(jsonl);
  cmd->add_option("--out", o->out, "output token shard (.h5)")->required();
  cmd->add_option("--field", o->field, "JSON field holding the text")->capture_default_str();
  cmd->add_option("--eod", o->eod, "token appended after each document")->capture_default_str();
  cmd->add_option("--vocab-size", o->vocab_size, "vocab_size stored in the shard (at least the tokenizer's)");
  cmd->add_option("--jobs", o->threads, "worker threads (default: all cores; not --threads, which Kokkos takes)");
  cmd->add_option("--compress", o->deflate, "gzip level 1-9 (0: none)")->check(CLI::Range(0, 9));
  cmd->add_flag("--quiet", o->quiet, "no progress line");
  cmd->callback([o] {
    if (o->inputs.empty() && o->task.empty()) fail("rewarm tokenize", "give --jsonl FILE... (a token shard) or --task FILE (a task file)");
    const auto tok = BpeTokenizer::from_file(o->tokenizer);
    const Index vocab = std::max<Index>(o->vocab_size, tok.vocab_size());
    const std::uint32_t eod = tok.token_id(o->eod);
    if (!o->task.empty()) {
      const auto t = tokenize_task(tok, o->task, eod, vocab);
      t.write(o->out);
      std::printf("%s: %lld examples, %zu choices, %zu context and %zu choice tokens\n", o->out.c_str(),
                  static_cast<long long>(t.examples()), t.choice_bytes.size(), t.context_tokens.size(),
                  t.choice_tokens.size());
      return;
    }
    AtomicFile file(o->out);
    {
      h5::File f(file.tmp(), h5::File::Create);
      std::string src = "tokenize";
      for (const auto& p : o->inputs) src += " " + p;
      set_token_shard_attrs(f, vocab, eod, tok.fingerprint(), src);
      write_tokenizer(f, tok.text(), true, [](const std::function<void()>& write) { write(); });
      if (vocab <= 65536)
        run<std::uint16_t>(*o, tok, eod, vocab, f);
      else
        run<std::uint32_t>(*o, tok, eod, vocab, f);
      f.close();  // a failure here (a full disk) is reported; the shard is not put in place
    }
    file.commit();
  });
}

}  // namespace rewarm
