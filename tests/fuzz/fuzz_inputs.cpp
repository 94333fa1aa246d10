// Fuzz-style robustness test: random truncations and bit flips of a valid Megatron .idx and a
// valid safetensors file must end in a clean rewarm::Error (or a successful parse), never a
// crash, a hang or another exception. CI also runs it under AddressSanitizer + UBSan.
//   rewarm_fuzz [iterations per file]   (default 400)
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <typeinfo>
#include <vector>

#include "core/error.hpp"
#include "data/megatron.hpp"
#include "io/safetensors.hpp"

namespace fs = std::filesystem;
using rewarm::Index;

static std::vector<char> slurp(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}
static void spit(const std::string& p, const std::vector<char>& d) {
  std::ofstream(p, std::ios::binary | std::ios::trunc).write(d.data(), std::streamsize(d.size()));
}

// A valid index: 5 sequences of 3 uint16 tokens in 2 documents.
static void write_megatron(const std::string& prefix) {
  std::vector<char> idx;
  auto put = [&](const void* p, std::size_t n) { idx.insert(idx.end(), (const char*)p, (const char*)p + n); };
  put("MMIDIDX\0\0", 9);
  const std::uint64_t version = 1, n = 5, d = 3;
  const std::uint8_t code = 8;
  put(&version, 8), put(&code, 1), put(&n, 8), put(&d, 8);
  for (int i = 0; i < 5; ++i) { const std::int32_t s = 3; put(&s, 4); }
  for (int i = 0; i < 5; ++i) { const std::int64_t p = 6 * i; put(&p, 8); }
  for (std::int64_t v : {0, 2, 5}) put(&v, 8);
  spit(prefix + ".idx", idx);
  std::vector<char> bin(30);
  for (int i = 0; i < 15; ++i) bin[2 * i] = char(i + 1);
  spit(prefix + ".bin", bin);
}

// Mutates `good` into `bad`: a truncation, 1-8 bit flips, or an overwritten byte range.
static std::vector<char> mutate(const std::vector<char>& good, std::mt19937& g) {
  auto bad = good;
  switch (g() % 3) {
    case 0: bad.resize(g() % good.size()); break;
    case 1:
      for (int k = 1 + int(g() % 8); k > 0; --k) bad[g() % bad.size()] ^= char(1 << (g() % 8));
      break;
    default: {
      const std::size_t at = g() % bad.size();
      for (std::size_t i = at; i < std::min(bad.size(), at + 8); ++i) bad[i] = char(g());
    }
  }
  return bad;
}

int main(int argc, char** argv) {
  const int iterations = argc > 1 ? std::atoi(argv[1]) : 400;
  const auto dir = fs::temp_directory_path() / ("rewarm_fuzz_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::mt19937 g(12345);
  int errors = 0, parsed = 0, failures = 0;
  auto run = [&](const char* what, auto&& body) {
    try {
      body();
      ++parsed;
    } catch (const rewarm::Error&) {
      ++errors;  // the expected, clean outcome for most mutations
    } catch (const std::exception& e) {
      ++failures;
      std::fprintf(stderr, "%s: escaped as %s: %s\n", what, typeid(e).name(), e.what());
    }
  };

  const std::string prefix = (dir / "corpus").string(), out = (dir / "out.h5").string();
  write_megatron(prefix);
  rewarm::MegatronOptions opt;
  opt.progress = false;
  opt.vocab_size = 64;
  opt.append_eod = true;
  const auto good_idx = slurp(prefix + ".idx");
  run("valid index", [&] { rewarm::convert_megatron(prefix + ".idx", {prefix + ".bin"}, out, opt); });
  if (parsed != 1) return std::fprintf(stderr, "the valid index did not convert\n"), 1;
  for (int i = 0; i < iterations; ++i) {
    spit(prefix + ".idx", mutate(good_idx, g));
    run(".idx", [&] { rewarm::convert_megatron(prefix + ".idx", {prefix + ".bin"}, out, opt); });
  }

  const std::string st = (dir / "model.safetensors").string();
  const std::vector<float> a(12, 1.5f), b(5, -2.0f);
  rewarm::safetensors_write(st, {"a", "b"}, {{3, 4}, {5}}, {a.data(), b.data()}, "BF16");
  const auto good_st = slurp(st);
  for (int i = 0; i < iterations; ++i) {
    spit(st, mutate(good_st, g));
    run("safetensors", [&] {
      for (const auto& [name, t] : rewarm::safetensors_index(st)) rewarm::safetensors_read_float(t);
    });
  }
  fs::remove_all(dir);
  std::printf("%d passed, %d failed: %d parsed, %d clean errors over %d mutated files\n", parsed + errors, failures,
              parsed, errors, 2 * iterations + 1);
  return failures ? 1 : 0;
}
