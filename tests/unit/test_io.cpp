// safetensors validation, checkpoint round trip and atomicity, metrics series, direct chunk
// writes, the background writer.
#include <cstring>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>

#include "core/error.hpp"
#include "io/background_writer.hpp"
#include "io/checkpoint.hpp"
#include "io/hdf5.hpp"
#include "io/metrics.hpp"
#include "io/safetensors.hpp"
#include "model/param_layout.hpp"
#include "testing.hpp"

using namespace rewarm;
namespace fs = std::filesystem;

static std::string tmpdir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("rewarm_test_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

static void write_raw(const std::string& path, const std::string& header, std::size_t data_bytes) {
  std::ofstream f(path, std::ios::binary);
  const std::uint64_t n = header.size();
  f.write(reinterpret_cast<const char*>(&n), 8);
  f << header << std::string(data_bytes, '\0');
}

TEST_CASE("safetensors round trip in F32, F16, BF16", "[io]") {
  const auto dir = tmpdir("st");
  const std::vector<float> a{1.0f, -2.5f, 3.140625f, 65504.0f, 1e-7f, 0.0f}, b{0.5f, 0.25f};
  for (const std::string dt : {"F32", "F16", "BF16"}) {
    const auto path = dir + "/m_" + dt + ".safetensors";
    safetensors_write(path, {"a", "b"}, {{2, 3}, {2}}, {a.data(), b.data()}, dt);
    const auto idx = safetensors_index(path);
    REQUIRE(idx.size() == 2);
    CHECK(idx.at("a").shape == std::vector<std::int64_t>{2, 3});
    const auto ra = safetensors_read_float(idx.at("a"));
    CHECK(ra[1] == -2.5f);
    CHECK(ra[2] == 3.140625f);
    if (dt == "F32") CHECK(ra == a);
    if (dt == "F16") CHECK(ra[3] == 65504.0f);
    if (dt == "BF16") CHECK(ra[3] == 65536.0f);  // 65504 rounds to the nearest bf16
    CHECK(safetensors_read_float(idx.at("b")) == b);
  }
}

TEST_CASE("safetensors headers that lie are rejected with the file named", "[io]") {
  const auto dir = tmpdir("st_bad");
  const auto p = dir + "/bad.safetensors";
  auto rejects = [&](const std::string& why) {
    CHECK_THROWS_WITH(safetensors_index(p), Catch::Contains(p) && Catch::Contains(why));
  };
  std::ofstream(p, std::ios::binary) << "abc";
  rejects("shorter than");
  write_raw(p, "{}", 0);
  {  // header length past the end
    std::ofstream f(p, std::ios::binary);
    const std::uint64_t n = 1000;
    f.write(reinterpret_cast<const char*>(&n), 8);
    f << "{}";
  }
  rejects("exceeds the file size");
  write_raw(p, "{not json", 0);
  rejects("not valid JSON");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2,2],"data_offsets":[0,16]}})", 8);
  rejects("past the data");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2,3],"data_offsets":[0,16]}})", 16);
  rejects("do not hold");
  write_raw(
      p,
      R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"v":{"dtype":"F32","shape":[2],"data_offsets":[4,12]}})",
      16);
  rejects("overlap");
  write_raw(p, R"({"w":{"dtype":"Q4","shape":[2],"data_offsets":[0,8]}})", 8);
  rejects("unknown dtype");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8);
  rejects("negative");
  write_raw(p, R"({"w":{"dtype":"F32","shape":[2],"data_offsets":[8,0]}})", 8);
  rejects("begin > end");
}

TEST_CASE("any range of a dataset's row-major order is written and read as such, in any rank", "[io]") {
  const auto dir = tmpdir("parts");
  const std::vector<std::vector<std::int64_t>> shapes{{37}, {5, 7}, {3, 4, 6}, {1, 9}, {9, 1}};
  std::mt19937 rng(7);
  for (const auto& shape : shapes) {
    std::int64_t n = 1;
    for (auto d : shape) n *= d;
    for (int trial = 0; trial < 30; ++trial) {
      std::int64_t first = std::int64_t(rng() % std::uint32_t(n)),
                   count = std::int64_t(rng() % std::uint32_t(n - first + 1));
      if (trial == 0) first = 0, count = n;
      std::vector<double> data(static_cast<std::size_t>(count));
      for (std::int64_t i = 0; i < count; ++i) data[std::size_t(i)] = double(first + i) + 0.5;
      const std::string path = dir + "/p.h5";
      {
        h5::File f(path, h5::File::Create);
        f.write_checksummed_part("/x", shape, first, count, data.data());
      }
      h5::File f(path, h5::File::ReadOnly);
      const auto all = f.read<double>("/x");  // the rest is HDF5's fill value, 0
      INFO("shape rank " << shape.size() << ", [" << first << ", " << first + count << ")");
      for (std::int64_t i = 0; i < n; ++i)
        REQUIRE(all[std::size_t(i)] == (i >= first && i < first + count ? double(i) + 0.5 : 0.0));
      const std::int64_t a = first + count / 3,
                         b = std::max(a, first + count - count / 4);  // a range of it, read alone
      std::vector<double> part(std::size_t(b - a), -1.0);
      f.read_part("/x", a, b - a, part.data());
      for (std::int64_t i = a; i < b; ++i) REQUIRE(part[std::size_t(i - a)] == double(i) + 0.5);
    }
  }
}

TEST_CASE("checkpoints round trip and are written atomically", "[io]") {
  const auto dir = tmpdir("ckpt");
  ModelConfig m;
  m.vocab_size = 17;
  m.hidden_size = 8;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 2;
  m.intermediate_size = 12;
  m.rotary_pct = 0.5;
  const ParamLayout layout(m);
  CheckpointData c;
  c.model = m;
  c.config_text = "run_dir = 'x'";
  c.state.step = 5;
  c.state.tokens_seen = 500;
  c.state.samples_seen = 50;
  c.state.set_samples = {30, 20};
  for (Index i = 0; i < layout.total; ++i) {
    c.params.push_back(float(i) * 0.5f);
    c.exp_avg.push_back(float(i));
    c.exp_avg_sq.push_back(float(i) * 2);
  }
  for (const auto& e : layout.entries)  // padding between tensors is not stored
    for (Index i = e.offset + e.size(); i < layout.total && i < (e.offset + e.size() + 15) / 16 * 16; ++i)
      c.params[i] = c.exp_avg[i] = c.exp_avg_sq[i] = 0;
  fs::create_directories(dir + "/checkpoints");
  const auto path = checkpoint_path(dir, 5);
  write_checkpoint(path, c);
  std::ofstream(checkpoint_path(dir, 9) + ".tmp") << "half a checkpoint";  // a crash mid-write
  const auto list = list_checkpoints(dir);
  REQUIRE(list.size() == 1);
  CHECK(list[0] == path);
  const auto r = read_checkpoint(path, &m, true);
  CHECK(r.params == c.params);
  CHECK(r.exp_avg == c.exp_avg);
  CHECK(r.exp_avg_sq == c.exp_avg_sq);
  CHECK(r.state.samples_seen == 50);
  CHECK(r.state.set_samples == std::vector<Index>{30, 20});
  CHECK(r.config_text == c.config_text);
  ModelConfig other = m;
  other.hidden_size = 10;
  other.num_attention_heads = 2;
  CHECK_THROWS_WITH(read_checkpoint(path, &other, false),
                    Catch::Contains("has shape [17,8]") && Catch::Contains("needs [17,10]"));
}

TEST_CASE("metrics drop the steps a resumed run redoes", "[io]") {
  const auto dir = tmpdir("metrics");
  const auto path = dir + "/metrics.h5";
  {
    Metrics m(path, "cfg", {"Serial", 1, "fp32"}, -1, {}, {"up"});
    for (Index s = 1; s <= 6; ++s) m.log_train({s, s * 10, 1e-3, 1.0 / double(s), 0.5, 100, 1});
    m.log_eval("up", 0, 0, 2.0);
    m.log_eval("up", 4, 40, 1.5);
  }
  {
    Metrics m(path, "cfg", {"Serial", 3, "bf16"}, 4, {}, {"up"});  // resumed from the step-4 checkpoint, on 3 ranks
    m.log_train({5, 50, 1e-3, 0.3, 0.5, 100, 1});
  }
  h5::File f(path, h5::File::ReadOnly);
  CHECK(f.read<std::int64_t>("/train/step") == std::vector<std::int64_t>{1, 2, 3, 4, 5});
  CHECK(f.read<double>("/train/loss").back() == 0.3);
  CHECK(f.read<std::int64_t>("/eval/up/step") == std::vector<std::int64_t>{0, 4});
  CHECK(f.attr_string("format") == "rewarm-metrics");
  CHECK(f.attr_int("world_size") == 3);
  CHECK(f.attr_string("precision") == "bf16");
}

TEST_CASE("direct writer: pieces of any size land where HDF5 reads them back", "[io]") {
  const auto dir = tmpdir("direct");
  std::mt19937 rng(3);
  for (const std::int64_t chunk : {1, 7, 64, 5000}) {
    for (const std::int64_t size : {1, 100, 10007}) {
      const auto path = dir + "/d.h5";
      std::vector<std::uint16_t> want(static_cast<std::size_t>(size));
      for (auto& v : want) v = std::uint16_t(rng());
      {
        h5::File f(path, h5::File::Create);
        h5::AppendWriter<std::int64_t> before(f, "/before", 4, 0);  // other datasets around it
        h5::DirectWriter<std::uint16_t> w(f, "/tokens", size, chunk);
        h5::AppendWriter<std::int64_t> after(f, "/after", 4, 0);
        CHECK(w.direct());  // HDF5 1.10's fixed-array index keeps the chunks in one extent
        for (std::int64_t at = 0; at < size;) {
          const std::int64_t n = std::min<std::int64_t>(size - at, 1 + std::int64_t(rng() % 3000));
          w.write(at, want.data() + at, n);
          const std::int64_t marks[2] = {at, n};
          before.append(marks, 2);
          after.append(marks, 1);
          at += n;
        }
        REQUIRE_THROWS_WITH(w.write(size - 1, want.data(), 2), Catch::Contains("outside the dataset"));
      }
      h5::File f(path, h5::File::ReadOnly);
      CHECK(f.shape("/tokens") == std::vector<std::int64_t>{size});
      CHECK(f.read<std::uint16_t>("/tokens") == want);
      CHECK(f.read<std::int64_t>("/after").front() == 0);
    }
  }
}

TEST_CASE("background writer: writes every buffer once, in order, and passes its errors on", "[io]") {
  struct Buf {
    std::vector<int> v;
    void clear() { v.clear(); }
  };
  std::vector<int> seen;
  {
    BackgroundWriter<Buf> w([&](Buf& b) { seen.insert(seen.end(), b.v.begin(), b.v.end()); }, 2);
    for (int i = 0; i < 1000; ++i) {
      w.current().v.push_back(i);
      if (i % 7 == 6) w.hand_off();
    }
    w.finish();
  }
  std::vector<int> want(1000);
  std::iota(want.begin(), want.end(), 0);
  CHECK(seen == want);

  int calls = 0;
  BackgroundWriter<Buf> failing(
      [&](Buf&) {
        if (++calls == 3) throw Error("disk full");
      },
      1);
  auto run = [&] {
    for (int i = 0; i < 100; ++i) failing.hand_off();
    failing.finish();
  };
  REQUIRE_THROWS_WITH(run(), "disk full");
  CHECK(calls == 3);  // nothing is written after the failure
}
