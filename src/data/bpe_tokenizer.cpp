#include "data/bpe_tokenizer.hpp"

#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/unistr.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "core/error.hpp"
#include "core/json.hpp"

namespace rewarm {
namespace {

void append_utf8(std::string& s, std::uint32_t c) {
  if (c < 0x80) {
    s += char(c);
  } else if (c < 0x800) {
    s += char(0xC0 | (c >> 6)), s += char(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    s += char(0xE0 | (c >> 12)), s += char(0x80 | ((c >> 6) & 0x3F)), s += char(0x80 | (c & 0x3F));
  } else {
    s += char(0xF0 | (c >> 18)), s += char(0x80 | ((c >> 12) & 0x3F)), s += char(0x80 | ((c >> 6) & 0x3F)),
        s += char(0x80 | (c & 0x3F));
  }
}

// Code point at s[i] of valid UTF-8; advances i.
std::uint32_t next_cp(std::string_view s, std::size_t& i) {
  const auto b = static_cast<unsigned char>(s[i]);
  int n = b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4;
  std::uint32_t c = n == 1 ? b : n == 2 ? (b & 0x1F) : n == 3 ? (b & 0x0F) : (b & 0x07);
  for (int k = 1; k < n; ++k) c = (c << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
  i += n;
  return c;
}

enum Class : std::uint8_t { Letter, Number, Space, Other };

Class classify(std::uint32_t c) {
  if (c < 0x80) {
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return Letter;
    if (c >= '0' && c <= '9') return Number;
    if (c == ' ' || (c >= 0x09 && c <= 0x0D)) return Space;
    return Other;
  }
  if (u_isUWhiteSpace(UChar32(c))) return Space;  // Oniguruma's \s: 9-D, 85, Zs, Zl, Zp
  switch (u_charType(UChar32(c))) {
    case U_UPPERCASE_LETTER:
    case U_LOWERCASE_LETTER:
    case U_TITLECASE_LETTER:
    case U_MODIFIER_LETTER:
    case U_OTHER_LETTER:
      return Letter;
    case U_DECIMAL_DIGIT_NUMBER:
    case U_LETTER_NUMBER:
    case U_OTHER_NUMBER:
      return Number;
    default:
      return Other;
  }
}

// GPT-2's byte <-> printable character table (bytes_to_unicode).
void byte_symbols(std::string* table) {
  std::uint32_t extra = 0;
  for (std::uint32_t b = 0; b < 256; ++b) {
    const bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
    table[b].clear();
    append_utf8(table[b], printable ? b : 256 + extra++);
  }
}

std::string fnv1a64(const std::string& bytes) {
  std::uint64_t h = 0xcbf29ce484222325ull;
  for (unsigned char c : bytes) h = (h ^ c) * 0x100000001b3ull;
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

bool is_type(const nlohmann::json& j, const char* type) {
  return j.is_object() && j.value("type", std::string()) == type;
}

}  // namespace

BpeTokenizer BpeTokenizer::from_file(const std::string& path) {
  std::string bytes;
  const nlohmann::json j = read_json_file(path, &bytes);
  return from_json(j, bytes, path);
}

BpeTokenizer BpeTokenizer::from_text(const std::string& text, const std::string& where) {
  return from_json(parse_json(text, where, "not a tokenizer.json (not valid JSON)"), text, where);
}

BpeTokenizer BpeTokenizer::from_json(const nlohmann::json& j, const std::string& bytes, const std::string& path) {
  auto unsupported = [&](const std::string& what) {
    fail(path, what + " is not supported (byte-level BPE as in GPT-NeoX-20B only)");
  };
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object())
    fail(path, "has no \"model\": not a tokenizer.json");
  const auto& m = j["model"];
  const std::string type = m.value("type", std::string("?"));
  if (type != "BPE") unsupported("model type \"" + type + "\"");
  BpeTokenizer t;
  t.fingerprint_ = path.substr(path.find_last_of('/') + 1) + " fnv1a64:" + fnv1a64(bytes);
  t.text_ = bytes;
  // normaliser: none, NFC, or a sequence of NFC
  const auto& n = j.contains("normalizer") ? j["normalizer"] : nlohmann::json();
  if (is_type(n, "NFC") ||
      (is_type(n, "Sequence") && n["normalizers"].size() == 1 && is_type(n["normalizers"][0], "NFC")))
    t.nfc_ = true;
  else if (!n.is_null())
    unsupported("normalizer " + n.dump());
  auto p = j.contains("pre_tokenizer") ? j["pre_tokenizer"] : nlohmann::json();
  if (is_type(p, "Sequence") && p["pretokenizers"].size() == 1) p = p["pretokenizers"][0];
  if (!is_type(p, "ByteLevel") || p.value("add_prefix_space", true) || !p.value("use_regex", true))
    unsupported("pre_tokenizer " + p.dump() + " (need ByteLevel without prefix space, with the regex)");
  for (const char* key : {"dropout", "continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(key) && !m[key].is_null() && m[key] != "") unsupported(std::string("model.") + key);
  if (m.value("byte_fallback", false) || m.value("ignore_merges", false)) unsupported("byte_fallback / ignore_merges");
  try {
    for (auto& [tok, id] : m.at("vocab").items()) {
      t.vocab_[tok] = id.get<std::uint32_t>();
      t.vocab_size_ = std::max(t.vocab_size_, id.get<std::uint32_t>() + 1);
    }
    std::uint32_t rank = 0;
    for (const auto& merge : m.at("merges")) {
      std::string a, b;
      if (merge.is_string()) {  // "a b" (tokenizers < 0.20)
        const std::string s = merge;
        const auto sp = s.find(' ');
        if (sp == std::string::npos) fail(path, "merge \"" + s + "\" is not two symbols");
        a = s.substr(0, sp), b = s.substr(sp + 1);
      } else {  // ["a", "b"]
        a = merge.at(0), b = merge.at(1);
      }
      if (!t.vocab_.count(a + b)) fail(path, "merge result \"" + a + b + "\" is not in the vocabulary");
      t.merge_rank_.emplace(a + " " + b, rank++);
    }
    for (const auto& a : j.value("added_tokens", nlohmann::json::array())) {
      if (a.value("single_word", false) || a.value("lstrip", false) || a.value("rstrip", false))
        unsupported("added token option single_word/lstrip/rstrip");
      Added x{a.at("content").get<std::string>(), a.at("id").get<std::uint32_t>(), a.value("normalized", false)};
      if (x.content.empty()) fail(path, "an added token is empty");
      (x.normalized ? t.added_normalized_ : t.added_raw_).push_back(x);
      t.vocab_size_ = std::max(t.vocab_size_, x.id + 1);
    }
  } catch (const nlohmann::json::exception& e) {
    fail(path, std::string("malformed BPE model: ") + e.what());
  }
  byte_symbols(t.byte_symbol_);
  for (const auto& s : t.byte_symbol_)
    if (!t.vocab_.count(s)) fail(path, "the vocabulary lacks byte symbol \"" + s + "\": not a byte-level BPE");
  return t;
}

std::uint32_t BpeTokenizer::token_id(const std::string& token) const {
  for (const auto* list : {&added_raw_, &added_normalized_})
    for (const auto& a : *list)
      if (a.content == token) return a.id;
  auto it = vocab_.find(token);
  if (it == vocab_.end()) throw Error("the tokenizer has no token \"" + token + "\"");
  return it->second;
}

// Splits `text` at the leftmost-longest occurrences of `added`; `rest` handles the pieces between.
template <class F>
static void split_added(std::string_view text, const std::vector<BpeTokenizer::Added>& added,
                        std::vector<std::uint32_t>& out, F&& rest) {
  std::size_t start = 0, i = 0;
  while (i < text.size() && !added.empty()) {
    const BpeTokenizer::Added* best = nullptr;
    for (const auto& a : added)
      if (text.compare(i, a.content.size(), a.content) == 0 && (!best || a.content.size() > best->content.size()))
        best = &a;
    if (!best) {
      ++i;
      continue;
    }
    if (i > start) rest(text.substr(start, i - start));
    out.push_back(best->id);
    i += best->content.size();
    start = i;
  }
  if (start < text.size()) rest(text.substr(start));
}

std::vector<std::uint32_t> BpeTokenizer::encode(std::string_view text) const {
  std::vector<std::uint32_t> out;
  split_added(text, added_raw_, out, [&](std::string_view piece) {
    bool ascii = true;
    for (char c : piece) ascii &= static_cast<unsigned char>(c) < 0x80;
    if (!nfc_ || ascii) {  // ASCII is always NFC
      split_added(piece, added_normalized_, out, [&](std::string_view p) { encode_normalized(p, out); });
      return;
    }
    UErrorCode st = U_ZERO_ERROR;
    const icu::Normalizer2* nfc = icu::Normalizer2::getNFCInstance(st);
    icu::UnicodeString u = icu::UnicodeString::fromUTF8(icu::StringPiece(piece.data(), std::int32_t(piece.size())));
    std::string normalized;
    nfc->normalize(u, st).toUTF8String(normalized);
    if (U_FAILURE(st)) throw Error(std::string("NFC normalisation failed: ") + u_errorName(st));
    split_added(normalized, added_normalized_, out, [&](std::string_view p) { encode_normalized(p, out); });
  });
  return out;
}

// The GPT-2 split regex, by hand (see the header), then BPE on each piece.
void BpeTokenizer::encode_normalized(std::string_view s, std::vector<std::uint32_t>& out) const {
  std::vector<std::uint32_t> cps;
  std::vector<std::size_t> at;  // byte offset of each code point, and the end
  for (std::size_t i = 0; i < s.size();) {
    at.push_back(i);
    cps.push_back(next_cp(s, i));
  }
  at.push_back(s.size());
  const std::size_t n = cps.size();
  std::vector<Class> cls(n);
  for (std::size_t i = 0; i < n; ++i) cls[i] = classify(cps[i]);
  std::size_t i = 0;
  auto emit = [&](std::size_t from, std::size_t to) {
    encode_word(s.substr(at[from], at[to] - at[from]), out);
    i = to;
  };
  while (i < n) {
    if (cps[i] == '\'' && i + 1 < n) {  // 's 't 're 've 'm 'll 'd, case-sensitive
      const auto c1 = cps[i + 1], c2 = i + 2 < n ? cps[i + 2] : 0;
      if (c1 == 's' || c1 == 't' || c1 == 'm' || c1 == 'd') {
        emit(i, i + 2);
        continue;
      }
      if ((c1 == 'r' && c2 == 'e') || (c1 == 'v' && c2 == 'e') || (c1 == 'l' && c2 == 'l')) {
        emit(i, i + 3);
        continue;
      }
    }
    const std::size_t sp = (cps[i] == ' ' && i + 1 < n && cls[i + 1] != Space) ? 1 : 0;
    const Class k = cls[i + sp];
    std::size_t j = i + sp;
    if (k != Space) {  // ' ?\p{L}+', ' ?\p{N}+', ' ?[^\s\p{L}\p{N}]+'
      while (j < n && cls[j] == k) ++j;
      emit(i, j);
      continue;
    }
    while (j < n && cls[j] == Space) ++j;  // '\s+(?!\S)', else '\s+'
    emit(i, (j < n && j - 1 > i) ? j - 1 : j);
  }
}

void BpeTokenizer::encode_word(std::string_view word, std::vector<std::uint32_t>& out) const {
  thread_local const BpeTokenizer* owner = nullptr;
  thread_local std::unordered_map<std::string, std::vector<std::uint32_t>> cache;
  if (owner != this || cache.size() > (1u << 20)) cache.clear(), owner = this;
  const std::string key(word);
  if (auto it = cache.find(key); it != cache.end()) {
    out.insert(out.end(), it->second.begin(), it->second.end());
    return;
  }
  std::vector<std::string> sym;
  for (unsigned char b : word) sym.push_back(byte_symbol_[b]);
  std::string pair;
  while (sym.size() > 1) {  // merge the lowest-ranked adjacent pair, everywhere, left to right
    std::uint32_t best = UINT32_MAX;
    std::size_t best_at = 0;
    for (std::size_t k = 0; k + 1 < sym.size(); ++k) {
      pair.assign(sym[k]).append(" ").append(sym[k + 1]);
      auto it = merge_rank_.find(pair);
      if (it != merge_rank_.end() && it->second < best) best = it->second, best_at = k;
    }
    if (best == UINT32_MAX) break;
    const std::string left = sym[best_at], right = sym[best_at + 1];
    std::vector<std::string> next;
    for (std::size_t k = 0; k < sym.size(); ++k) {
      if (k + 1 < sym.size() && sym[k] == left && sym[k + 1] == right) {
        next.push_back(left + right);
        ++k;
      } else {
        next.push_back(sym[k]);
      }
    }
    sym.swap(next);
  }
  std::vector<std::uint32_t> ids;
  for (const auto& s : sym) ids.push_back(vocab_.at(s));
  out.insert(out.end(), ids.begin(), ids.end());
  cache.emplace(key, std::move(ids));
}

std::string repair_utf8(std::string_view in) {
  std::string out;
  out.reserve(in.size());
  std::size_t i = 0;
  while (i < in.size()) {
    const auto b = static_cast<unsigned char>(in[i]);
    if (b < 0x80) {
      out += char(b), ++i;
      continue;
    }
    int need = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF)
      need = 1;
    else if (b >= 0xE0 && b <= 0xEF)
      need = 2, lo = b == 0xE0 ? 0xA0 : 0x80, hi = b == 0xED ? 0x9F : 0xBF;
    else if (b >= 0xF0 && b <= 0xF4)
      need = 3, lo = b == 0xF0 ? 0x90 : 0x80, hi = b == 0xF4 ? 0x8F : 0xBF;
    std::size_t k = 1;
    bool ok = need > 0;
    for (; ok && k <= std::size_t(need); ++k) {  // WHATWG: stop at the first byte out of range
      if (i + k >= in.size()) {
        ok = false;
        break;
      }
      const auto c = static_cast<unsigned char>(in[i + k]);
      if (c < lo || c > hi) {
        ok = false;
        break;
      }
      lo = 0x80, hi = 0xBF;
    }
    if (ok) {
      out.append(in.substr(i, std::size_t(need) + 1));
      i += std::size_t(need) + 1;
    } else {
      out += "\xEF\xBF\xBD";  // one U+FFFD for the maximal subpart, then resume at the offending byte
      i += need > 0 ? k : 1;
    }
  }
  return out;
}

}  // namespace rewarm
