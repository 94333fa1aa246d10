// Hugging Face `tokenizers` byte-level BPE, as GPT-NeoX-20B's tokenizer.json (Pythia's) uses it:
// added tokens split out first (leftmost-longest; special ones on the raw text, "normalized"
// ones after normalisation), NFC normalisation, the GPT-2 split regex
//   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
// on the result, bytes mapped to printable characters, then BPE merges by rank.
// Anything else in a tokenizer.json (other models, prefix spaces, dropout, ...) is rejected.
#pragma once
#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace rewarm {

class BpeTokenizer {
 public:
  static BpeTokenizer from_file(const std::string& path);
  // Parses tokenizer.json text; `where` names it in errors.
  static BpeTokenizer from_text(const std::string& text, const std::string& where);
  // Ids of valid UTF-8 text (no special handling beyond the added tokens).
  std::vector<std::uint32_t> encode(std::string_view text) const;
  std::uint32_t token_id(const std::string& token) const;   // throws if absent
  std::uint32_t vocab_size() const { return vocab_size_; }  // largest id + 1
  const std::string& fingerprint() const { return fingerprint_; }
  const std::string& text() const { return text_; }  // the tokenizer.json it was read from

  struct Added {  // a token matched in the text before the regex ("<|endoftext|>", space runs)
    std::string content;
    std::uint32_t id;
    bool normalized;  // matched after normalisation (else on the raw text)
  };

 private:
  static BpeTokenizer from_json(const nlohmann::json& j, const std::string& text, const std::string& where);
  void encode_normalized(std::string_view text, std::vector<std::uint32_t>& out) const;
  void encode_word(std::string_view word, std::vector<std::uint32_t>& out) const;

  std::unordered_map<std::string, std::uint32_t> vocab_;
  std::unordered_map<std::string, std::uint32_t> merge_rank_;  // "left right" -> rank
  std::vector<Added> added_raw_, added_normalized_;
  bool nfc_ = false;
  std::string byte_symbol_[256];  // byte -> its printable stand-in (UTF-8)
  std::uint32_t vocab_size_ = 0;
  std::string fingerprint_, text_;
};

// Text with invalid UTF-8 sequences replaced by U+FFFD, exactly as the WHATWG Encoding
// standard's decoder (and so Node.js and browsers) does: one U+FFFD per maximal subpart.
std::string repair_utf8(std::string_view bytes);

}  // namespace rewarm
