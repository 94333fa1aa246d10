// The communicator's collectives against what they must compute, on however many ranks ctest
// starts this binary with (1, and 2 under mpirun); and agree(): an error on one rank reaches all.
#define CATCH_CONFIG_RUNNER
#include <catch2/catch.hpp>

#include "core/error.hpp"
#include "parallel/comm.hpp"
#include "parallel/device_collectives.hpp"
#include "parallel/runtime.hpp"

using namespace rewarm;

static Comm* world = nullptr;

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
  auto fill = [&](auto f) {
    auto h = Kokkos::create_mirror_view(v);
    for (Index i = 0; i < n; ++i) h(i) = f(i);
    Kokkos::deep_copy(v, h);
  };
  fill([&](Index i) { return double(r + 1) * double(i) + 0.5; });
  c.allreduce_sum(v);
  auto got = to_host(v);
  for (Index i = 0; i < n; ++i) REQUIRE(got[i] == double(N * (N + 1) / 2) * double(i) + 0.5 * N);

  fill([&](Index i) { return double(r + 1) * double(i); });
  View1<double> mine("mine", s.count[r]);
  c.reduce_scatter_sum(v, mine, s);
  got = to_host(mine);
  for (Index j = 0; j < s.count[r]; ++j) REQUIRE(got[j] == double(N * (N + 1) / 2) * double(s.offset[r] + j));

  View1<float> p("p", n);  // each rank fills its slice with its rank; the rest stays -1
  auto hp = Kokkos::create_mirror_view(p);
  for (Index i = 0; i < n; ++i) hp(i) = i >= s.offset[r] && i < s.offset[r] + s.count[r] ? float(r) : -1.f;
  Kokkos::deep_copy(p, hp);
  View1<float> q("q", n);
  Kokkos::deep_copy(q, p);
  c.allgather(p, s);
  c.gather_to_root(q, s);
  const auto all = to_host(p), root = to_host(q);
  for (int owner = 0; owner < N; ++owner)
    for (Index i = s.offset[owner]; i < s.offset[owner] + s.count[owner]; ++i) {
      REQUIRE(all[i] == float(owner));
      REQUIRE(root[i] == (r == 0 || owner == r ? float(owner) : -1.f));
    }

  fill([&](Index i) { return r == N - 1 ? double(i) : -7.0; });
  c.broadcast(v, N - 1);
  got = to_host(v);
  for (Index i = 0; i < n; ++i) REQUIRE(got[i] == double(i));

  CHECK(c.sum(double(r)) == double(N * (N - 1) / 2));
  CHECK(c.any(r == N - 1));
  CHECK_FALSE(c.any(false));
  CHECK(c.min(10 - r) == 10 - (N - 1));
  CHECK(c.broadcast_string(r == 0 ? std::string("from root") : std::string(), 0) == "from root");
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
