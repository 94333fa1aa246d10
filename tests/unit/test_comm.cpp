// The communicator's collectives against what they must compute, on however many ranks ctest
// starts this binary with (1, and 2 and 3 under mpirun); and agree(): an error on one rank reaches all.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/env.hpp"
#include "core/error.hpp"
#include "io/hdf5.hpp"
#include "model/param_layout.hpp"
#include "comm_world.hpp"
#include "parallel/collectives.hpp"
#include "parallel/comm.hpp"
#include "parallel/device_collectives.hpp"
#include "parallel/param_units.hpp"
#include "parallel/runtime.hpp"
#include "parallel/sliced_checkpoint.hpp"

using namespace rewarm;

Comm* world = nullptr;

template <class T>
static std::vector<T> to_host(const View1<T>& v) {
  auto h = host_copy(v);
  return std::vector<T>(h.data(), h.data() + h.extent(0));
}

TEST_CASE("slices cover the buffer in order, 16-aligned", "[comm]") {
  for (Index n : {0, 1, 15, 17, 1000, 1001})
    for (int ranks : {1, 2, 3, 8}) {
      const Slices s(n, ranks);
      Index next = 0;
      for (int r = 0; r < ranks; ++r) {
        CHECK(s.offset[r] == next);
        CHECK((s.offset[r] % 16 == 0 || s.count[r] == 0));  // empty slices sit at the end
        next += s.count[r];
      }
      CHECK(next == n);
    }
}

TEST_CASE("the parts of a range in each rank's slice (ZeRO-2's reduce-scatter of one bucket)", "[comm]") {
  const Slices s(100, 3);  // [0, 48), [48, 96), [96, 100)
  auto parts = [](const Slices& p) {
    std::vector<std::pair<Index, Index>> v;
    for (std::size_t r = 0; r < p.offset.size(); ++r) v.emplace_back(p.offset[r], p.count[r]);
    return v;
  };
  using P = std::vector<std::pair<Index, Index>>;
  CHECK(parts(s.within(40, 98)) == P{{0, 8}, {8, 48}, {56, 2}});
  CHECK(parts(s.within(50, 60)) == P{{0, 0}, {0, 10}, {10, 0}});  // empty parts, offsets in order
  CHECK(parts(s.within(0, 100)) == P{{0, 48}, {48, 48}, {96, 4}});
  CHECK(parts(s.within(96, 100)) == P{{0, 0}, {0, 0}, {0, 4}});
}

TEST_CASE("all-reduce, reduce-scatter, all-gather, gather and broadcast", "[comm]") {
  Comm& c = *world;
  const int N = c.size(), r = c.rank();
  const Index n = 1001;
  const Slices s(n, N);
  View1<double> v("v", n);
  // payload_bytes: each call's whole buffer, none on one rank (no MPI call is made)
  std::int64_t payload = c.payload_bytes();
  auto handed = [&] {
    const std::int64_t now = c.payload_bytes(), d = now - payload;
    payload = now;
    return d;
  };
  auto fill = [&](auto f) {
    auto h = Kokkos::create_mirror_view(v);
    for (Index i = 0; i < n; ++i) h(i) = f(i);
    Kokkos::deep_copy(v, h);
  };
  fill([&](Index i) { return double(r + 1) * double(i) + 0.5; });
  c.allreduce_sum(v);
  CHECK(handed() == (N > 1 ? 8 * n : 0));
  auto got = to_host(v);
  for (Index i = 0; i < n; ++i) REQUIRE(got[i] == double(N * (N + 1) / 2) * double(i) + 0.5 * N);

  fill([&](Index i) { return double(r + 1) * double(i); });
  View1<double> mine("mine", s.count[r]);
  c.reduce_scatter_sum(v, mine, s);
  CHECK(handed() == (N > 1 ? 8 * n : 0));
  got = to_host(mine);
  for (Index j = 0; j < s.count[r]; ++j) REQUIRE(got[j] == double(N * (N + 1) / 2) * double(s.offset[r] + j));

  View1<float> p("p", n);  // each rank fills its slice with its rank; the rest stays -1
  auto hp = Kokkos::create_mirror_view(p);
  for (Index i = 0; i < n; ++i) hp(i) = i >= s.offset[r] && i < s.offset[r] + s.count[r] ? float(r) : -1.f;
  Kokkos::deep_copy(p, hp);
  View1<float> q("q", n);
  Kokkos::deep_copy(q, p);
  c.allgather(p, s);
  CHECK(handed() == (N > 1 ? 4 * n : 0));
  c.gather_to_root(q, s);
  CHECK(handed() == (N > 1 ? 4 * n : 0));
  const auto all = to_host(p), root = to_host(q);
  for (int owner = 0; owner < N; ++owner)
    for (Index i = s.offset[owner]; i < s.offset[owner] + s.count[owner]; ++i) {
      REQUIRE(all[i] == float(owner));
      REQUIRE(root[i] == (r == 0 || owner == r ? float(owner) : -1.f));
    }

  fill([&](Index i) { return r == N - 1 ? double(i) : -7.0; });
  c.broadcast(v, N - 1);
  CHECK(handed() == (N > 1 ? 8 * n : 0));
  got = to_host(v);
  for (Index i = 0; i < n; ++i) REQUIRE(got[i] == double(i));

  CHECK(c.sum(double(r)) == double(N * (N - 1) / 2));
  std::vector<double> places(std::size_t(2 * N), 0.0), empty;  // each place filled by one rank
  places[std::size_t(2 * r)] = 0.1 * r, places[std::size_t(2 * r + 1)] = -1.5;
  c.sum(places);
  c.sum(empty);
  for (int q = 0; q < N; ++q) REQUIRE((places[std::size_t(2 * q)] == 0.1 * q && places[std::size_t(2 * q + 1)] == -1.5));
  CHECK(c.any(r == N - 1));
  CHECK_FALSE(c.any(false));
  CHECK(c.min(10 - r) == 10 - (N - 1));
  CHECK(c.broadcast_string(r == 0 ? std::string("from root") : std::string(), 0) == "from root");
  CHECK(handed() == 0);  // the scalar collectives are not counted
}

TEST_CASE("agree: an error on one rank is every rank's, naming that rank", "[comm]") {
  Comm& c = *world;
  const int bad = c.size() - 1;
  try {
    c.agree([&] {
      if (c.rank() == bad) fail("shard.h5", "cannot open");
    });
    FAIL("no rank threw");
  } catch (const CollectiveError& e) {
    const std::string expect =
        c.size() > 1 ? "rank " + std::to_string(bad) + ": shard.h5: cannot open" : "shard.h5: cannot open";
    CHECK(std::string(e.what()) == expect);
  }
  CHECK_NOTHROW(c.agree([] {}));
}

TEST_CASE("NCCL's bootstrap: rank 0's unique id reaches every rank, byte for byte", "[comm]") {
  Comm& c = *world;
  int made = 0;
  std::string id(128, '\0');  // an ncclUniqueId: 128 bytes, zeros among them
  for (int i = 0; i < 128; i += 3) id[std::size_t(i)] = char(i * 7 + 1);
  const auto got = broadcast_unique_id(c, [&] {
    ++made;
    return id;
  });
  CHECK(got == id);
  CHECK(made == (c.root() ? 1 : 0));  // made once, on rank 0
  // a failure to make it (no GPU, no NCCL) is every rank's, not a hang
  CHECK_THROWS_AS(broadcast_unique_id(c, []() -> std::string { throw Error("ncclGetUniqueId failed"); }),
                  CollectiveError);
  // this build (host memory, or a GPU build without NCCL/RCCL) reduces over MPI
  std::string why;
  if (kHostMemory) {
    CHECK(DeviceCollectives::create(c, &why) == nullptr);
    CHECK(why == (c.size() == 1 ? "one rank" : "host memory: MPI"));
  }
}

TEST_CASE("every rank's string, by rank; ranks that share a GPU are found (NCCL refuses them)", "[comm]") {
  Comm& c = *world;
  const auto all = c.allgather_strings(std::string(std::size_t(c.rank()), char('a' + c.rank())));  // "", "b", "cc"
  REQUIRE(all.size() == std::size_t(c.size()));
  for (int r = 0; r < c.size(); ++r) CHECK(all[std::size_t(r)] == std::string(std::size_t(r), char('a' + r)));
  CHECK(ranks_sharing_a_gpu(c, "0000:" + std::to_string(c.rank()) + "9:00.0").empty());
  // ranks 0 and 1 on one GPU, any others on their own (all on this host)
  const auto shared = ranks_sharing_a_gpu(c, c.rank() < 2 ? "0000:19:00.0" : "0000:" + std::to_string(c.rank()) + ":00.0");
  CHECK(shared == (c.size() > 1 ? "ranks 0 and 1 share GPU 0000:19:00.0 on " + host_name() : ""));
}

// ---- checkpoints written in slices ---------------------------------------------------------

// A folder of this test's, the same on every rank (rank 0 names it).
static std::string shared_dir(const Comm& c, const std::string& name) {
  std::string dir;
  if (c.root()) {
    dir =
        (std::filesystem::temp_directory_path() / ("rewarm-comm-" + name + "-" + std::to_string(::getpid()))).string();
    std::filesystem::remove_all(dir);
    std::filesystem::create_directories(dir);
  }
  return c.broadcast_string(dir, 0);
}

static ModelConfig small_model(Index vocab, Index hidden, Index inner) {
  ModelConfig m;
  m.vocab_size = vocab;
  m.hidden_size = hidden;
  m.num_hidden_layers = 2;
  m.num_attention_heads = 2;
  m.intermediate_size = inner;
  m.rotary_pct = 0.5;
  return m;
}

// Element i of a made-up flat state (array a), 0 in the padding between tensors.
static float state_value(const ParamLayout& layout, int a, Index i) {
  for (const auto& e : layout.entries)
    if (i >= e.offset && i < e.offset + e.size()) return float(std::sin(0.37 * double(i) + a)) + float(a);
  return 0.0f;
}

TEST_CASE("a checkpoint written in slices by every rank is the serial writer's, and reads back in slices", "[comm]") {
  Comm& c = *world;
  const ModelConfig m = small_model(50, 24, 40);  // rows of 24 and 40: the slices end mid-row
  const ParamLayout layout(m);
  const Index P = layout.total;
  CheckpointData full;
  full.model = m;
  full.config_text = "run_dir = 'x'";
  full.world_size = c.size();
  full.state.step = 7, full.state.tokens_seen = 700, full.state.samples_seen = 70, full.state.set_samples = {40, 30};
  for (Index i = 0; i < P; ++i) {
    full.params.push_back(state_value(layout, 0, i));
    full.exp_avg.push_back(state_value(layout, 1, i));
    full.exp_avg_sq.push_back(state_value(layout, 2, i));
  }
  const std::string dir = shared_dir(c, "ckpt");
  const std::string serial = dir + "/serial.h5", parallel = dir + "/parallel.h5";
  if (c.root()) write_checkpoint(serial, full);
  const Slices parts(P, c.size());
  FlatPart mine;
  mine.offset = parts.offset[c.rank()], mine.count = parts.count[c.rank()], mine.state = c.root();
  mine.params = full.params.data() + mine.offset;  // only this rank's part is passed on
  mine.exp_avg = full.exp_avg.data() + mine.offset;
  mine.exp_avg_sq = full.exp_avg_sq.data() + mine.offset;
  write_checkpoint_sliced(c, parallel, full, mine, "");
  c.barrier();
  CHECK_FALSE(std::filesystem::exists(parallel + ".tmp"));
  {  // dataset for dataset, attribute for attribute
    h5::File a(serial, h5::File::ReadOnly), b(parallel, h5::File::ReadOnly);
    REQUIRE(a.datasets() == b.datasets());
    for (const auto& name : a.datasets()) {
      INFO(name);
      CHECK(a.shape(name) == b.shape(name));
      CHECK(a.type_name(name) == b.type_name(name));
      CHECK(b.has_checksum(name));
      if (a.type_name(name) == "float32")
        CHECK(a.read<float>(name) == b.read<float>(name));
      else
        CHECK(a.read<std::int64_t>(name) == b.read<std::int64_t>(name));
    }
    for (const char* attr : {"format", "config", "model_config"}) CHECK(a.attr_string(attr) == b.attr_string(attr));
    for (const char* attr : {"format_version", "step", "tokens_seen", "world_size"})
      CHECK(a.attr_int(attr) == b.attr_int(attr));
  }
  const CheckpointReader r(parallel, &m);                         // a resume reads only its slice of the moments
  std::vector<float> m1(std::size_t(mine.count), 0.0f), m2 = m1;  // padding stays 0, as in `full`
  r.read_moments_part(mine.offset, mine.count, m1.data(), m2.data());
  CHECK(std::equal(m1.begin(), m1.end(), full.exp_avg.begin() + mine.offset));
  CHECK(std::equal(m2.begin(), m2.end(), full.exp_avg_sq.begin() + mine.offset));
  CHECK(read_checkpoint(parallel, &m, true).params == full.params);
  c.barrier();
  if (c.root()) std::filesystem::remove_all(dir);
}

static std::size_t status_kib(const char* key) {  // a line of /proc/self/status, in KiB
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line))
    if (line.rfind(key, 0) == 0) return std::size_t(std::stoull(line.substr(std::string(key).size())));
  return 0;
}

TEST_CASE("writing a checkpoint in slices takes no rank's host memory up to the whole state", "[comm]") {
  Comm& c = *world;
  const ModelConfig m = small_model(8000, 512, 2048);  // 14.5 M parameters: the state is 174 MB
  const ParamLayout layout(m);
  const Index P = layout.total;
  const Slices parts(P, c.size());
  FlatPart mine;
  mine.offset = parts.offset[c.rank()], mine.count = parts.count[c.rank()], mine.state = c.root();
  std::vector<float> p(std::size_t(mine.count)), m1(p.size()), m2(p.size());
  for (Index i = 0; i < mine.count; ++i) p[i] = m1[i] = m2[i] = state_value(layout, 0, mine.offset + i);
  mine.params = p.data(), mine.exp_avg = m1.data(), mine.exp_avg_sq = m2.data();
  CheckpointHeader h;
  h.model = m;
  h.world_size = c.size();
  const std::string dir = shared_dir(c, "rss");
  if (!std::ofstream("/proc/self/clear_refs").put('5')) {
    WARN("this kernel cannot reset the peak RSS: not measured");
    return;
  }
  const double before = double(status_kib("VmRSS:")) * 1024;
  write_checkpoint_sliced(c, dir + "/c.h5", h, mine, "");
  const double grew = double(status_kib("VmHWM:")) * 1024 - before;
  const double state = 12.0 * double(P), slices = 12.0 * double(mine.count);
  INFO("peak RSS grew by " << grew / 1e6 << " MB writing " << slices / 1e6 << " MB of a " << state / 1e6
                           << " MB state");
  // A gather to rank 0 takes the whole state there; the slices take HDF5's and MPI-IO's buffers
  // (measured: up to 0.28 of the state on 3 ranks, where MPI-IO's aggregators collect others' parts).
  CHECK(grew < 0.5 * state);
  c.barrier();
  if (c.root()) std::filesystem::remove_all(dir);
}

int main(int argc, char** argv) {
  int status = 0;
  try {
    run_on_device({}, [&](Comm& comm) {
      world = &comm;
      status = Catch::Session().run(argc, argv);
      status = comm.sum(status) > 0 ? 1 : 0;  // fail on every rank if any failed
    });
  } catch (const ExitStatus& e) {
    return e.code;
  }
  return status;
}

TEST_CASE("ZeRO-3's units: each gathered whole from every rank's slice, the next one prefetched", "[comm]") {
  Comm& c = *world;
  const ModelConfig m = small_model(50, 24, 40);  // 2 layers: units 0 (head), 1, 2 (layers), 3 (embedding)
  const ParamLayout layout(m);
  const auto units = layout.gradient_buckets();
  const Slices slices(layout.total, c.size());
  Collectives collectives(c);  // MPI here: the facade's MPI path
  for (const bool bf16 : {false, true}) {
    ParamUnits pu(layout, slices, collectives, bf16);
    const Index own = slices.offset[c.rank()];
    auto value = [](Index flat, int version) { return float(flat) * 0.5f + float(version); };
    auto fill = [&](int version) {
      auto h = Kokkos::create_mirror_view(pu.shard());
      for (Index i = 0; i < Index(h.extent(0)); ++i) h(i) = value(own + i, version);
      Kokkos::deep_copy(pu.shard(), h);
      pu.changed();
    };
    // what the model asks for: the forward pass from the embedding up, the backward pass down
    // (the head again, then each layer; the embedding's gradients only)
    const std::vector<std::pair<std::size_t, std::ptrdiff_t>> forward{{3, 2}, {2, 1}, {1, 0}, {0, 1}},
        backward{{0, 1}, {1, 2}, {2, -1}};
    auto check_unit = [&](std::size_t u, const UnitBuffers<float>& b, int version) {
      Index pos = 0, wrong = 0, wrong16 = 0;
      std::vector<float> got(std::size_t(layout.largest_bucket()));
      std::vector<Bf16Storage> got16(got.size());
      Kokkos::deep_copy(Kokkos::View<float*, Kokkos::HostSpace>(got.data(), got.size()),
                        Kokkos::View<float*, MemSpace, Kokkos::MemoryUnmanaged>(b.params, got.size()));
      if (bf16)
        Kokkos::deep_copy(Kokkos::View<Bf16Storage*, Kokkos::HostSpace>(got16.data(), got16.size()),
                          Kokkos::View<Bf16Storage*, MemSpace, Kokkos::MemoryUnmanaged>(b.params16, got16.size()));
      for (const auto& [begin, end] : units[u])
        for (Index i = begin; i < end; ++i, ++pos) {
          wrong += got[std::size_t(pos)] != value(i, version);
          if (bf16) wrong16 += !(got16[std::size_t(pos)] == to_bf16_storage(value(i, version)));
        }
      CHECK(wrong == 0);
      CHECK(wrong16 == 0);
      CHECK((b.params16 != nullptr) == bf16);
    };
    for (int version : {0, 1}) {  // after changed(), nothing stale is used
      fill(version);
      const Index before = pu.gathered();
      const std::int64_t handed = c.payload_bytes();
      for (const auto& [u, next] : forward) check_unit(u, pu.use(u, UnitUse::forward, next), version);
      for (const auto& [u, next] : backward) {
        const auto b = pu.use(u, UnitUse::backward, next);
        check_unit(u, b, version);
        CHECK(b.grads == pu.grads(u, 0));
      }
      CHECK(pu.use(3, UnitUse::gradients, -1).params == nullptr);
      CHECK_THROWS_WITH(pu.grads(2, 0), Catch::Contains("unit 2's gradients are gone"));
      // every unit once on the way up; on the way down the head and layer 1 were still there
      Index all = 0, again = 0;
      for (std::size_t u = 0; u < units.size(); ++u)
        for (const auto& [begin, end] : units[u]) (u == 2 ? again : all) += end - begin;
      CHECK(pu.gathered() - before == all + 2 * again);
      CHECK(c.payload_bytes() - handed == (c.size() > 1 ? 4 * (all + 2 * again) : 0));  // what bench reports
    }
  }
}
