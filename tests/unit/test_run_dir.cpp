// What keeps a run directory safe: the run_dir lock, checksummed checkpoints, the SWMR metrics
// writer, and the host memory budget read from /proc and cgroup files.
#include <fcntl.h>
#include <hdf5.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "core/error.hpp"
#include "core/host_memory.hpp"
#include "io/checkpoint.hpp"
#include "io/hdf5.hpp"
#include "io/metrics.hpp"
#include "io/run_dir_lock.hpp"
#include "model/param_layout.hpp"
#include "testing.hpp"

using namespace rewarm;
namespace fs = std::filesystem;
using Catch::Contains;

static std::string fresh_dir(const std::string& name) {
  auto d = fs::temp_directory_path() / ("rewarm_test_" + name);
  fs::remove_all(d);
  fs::create_directories(d);
  return d.string();
}

static void write_file(const std::string& path, const std::string& text) {
  fs::create_directories(fs::path(path).parent_path());
  std::ofstream(path) << text;
}

// A lock file as another rewarm would have left it.
static void write_lock(const std::string& run_dir, const std::string& host, long pid, double age_seconds) {
  const nlohmann::json j = {{"host", host},      {"pid", pid},           {"pid_start", "1"}, {"boot_id", "x"},
                            {"slurm_job", "77"}, {"since", "yesterday"}, {"token", "theirs"}};
  const std::string path = run_dir + "/rewarm.lock";
  write_file(path, j.dump());
  const timespec t{std::time(nullptr) - std::time_t(age_seconds), 0};
  const timespec times[2] = {t, t};
  REQUIRE(utimensat(AT_FDCWD, path.c_str(), times, 0) == 0);
}

static std::string host() {
  char name[256] = {};
  gethostname(name, sizeof name - 1);
  return name;
}

TEST_CASE("run_dir lock: one holder, named to the next; released at the end", "[lock]") {
  const auto dir = fresh_dir("lock");
  {
    RunDirLock held(dir, 300);
    CHECK(fs::exists(dir + "/rewarm.lock"));
    CHECK_THROWS_WITH(RunDirLock(dir, 300), Contains("in use by another rewarm train (pid " + std::to_string(getpid()) +
                                                     " on host " + host()) &&
                                                Contains("since ") && Contains(" s ago)"));
    CHECK(!held.lost());
  }
  CHECK(!fs::exists(dir + "/rewarm.lock"));
  for (const auto& e : fs::directory_iterator(dir)) FAIL("left behind: " << e.path());  // no temporary files
  RunDirLock again(dir, 300);                                                           // free again
}

TEST_CASE("run_dir lock: a holder that is gone is taken over, a live one is not", "[lock]") {
  const auto dir = fresh_dir("lock_stale");
  SECTION("another host, heartbeat older than the limit") {
    write_lock(dir, "elsewhere", 1, 400);
    std::string note;
    RunDirLock l(dir, 300, &note);
    CHECK_THAT(note, Contains("from pid 1 on host elsewhere, SLURM job 77, since yesterday") &&
                         Catch::Matches(".*its heartbeat is 40[0-9] s old \\(stale after 300 s\\).*"));
  }
  SECTION("another host, recent heartbeat") {
    write_lock(dir, "elsewhere", 1, 100);
    CHECK_THROWS_WITH(RunDirLock(dir, 300), Contains("pid 1 on host elsewhere, SLURM job 77") &&
                                                Catch::Matches(".*heartbeat 10[0-9] s ago.*") &&
                                                Contains("after 300 s"));
    CHECK(fs::exists(dir + "/rewarm.lock"));  // untouched
  }
  SECTION("this host, a pid that is not running") {
    pid_t dead = fork();
    if (dead == 0) _exit(0);
    waitpid(dead, nullptr, 0);
    write_lock(dir, host(), dead, 0);
    std::string note;
    RunDirLock l(dir, 300, &note);
    CHECK_THAT(note, Contains("that process has exited") || Contains("its host has restarted"));
  }
  SECTION("this host, a process that has exited but is not yet reaped (a rank MPI_Abort ended)") {
    auto line = [](const std::string& path) {
      std::string l;
      std::getline(std::ifstream(path), l);
      return l;
    };
    int go[2];
    REQUIRE(pipe(go) == 0);
    pid_t zombie = fork();
    if (zombie == 0) {
      char c;
      (void)!read(go[0], &c, 1);
      _exit(0);
    }
    const std::string stat_path = "/proc/" + std::to_string(zombie) + "/stat";
    std::istringstream fields(line(stat_path).substr(line(stat_path).rfind(')') + 2));
    std::string start, state;
    for (int i = 3; i <= 22 && fields >> start; ++i)
      if (i == 3) state = start;
    REQUIRE(state != "Z");
    (void)!write(go[1], "x", 1);
    for (int i = 0; i < 1000 && state != "Z"; ++i) {  // until it has exited, unreaped
      usleep(1000);
      state = line(stat_path).substr(line(stat_path).rfind(')') + 2, 1);
    }
    REQUIRE(state == "Z");
    const nlohmann::json j = {
        {"host", host()},  {"pid", zombie},  {"pid_start", start}, {"boot_id", line("/proc/sys/kernel/random/boot_id")},
        {"slurm_job", ""}, {"since", "now"}, {"token", "theirs"}};
    write_file(dir + "/rewarm.lock", j.dump());
    std::string note;
    RunDirLock l(dir, 300, &note);
    CHECK_THAT(note, Contains("that process has exited"));
    waitpid(zombie, nullptr, 0);
    close(go[0]), close(go[1]);
  }
  SECTION("an unreadable lock is not removed") {
    write_file(dir + "/rewarm.lock", "{garbage");
    CHECK_THROWS_WITH(RunDirLock(dir, 300), Contains("rewarm.lock: is not a rewarm lock"));
  }
}

TEST_CASE("run_dir lock: the heartbeat moves the lock's time and notices a lost lock", "[lock]") {
  const auto dir = fresh_dir("lock_beat");
  RunDirLock l(dir, 0.5);  // a beat every 0.05 s
  const std::string path = dir + "/rewarm.lock";
  struct stat before {};
  stat(path.c_str(), &before);
  std::this_thread::sleep_for(std::chrono::milliseconds(1100));
  struct stat after {};
  stat(path.c_str(), &after);
  CHECK(after.st_mtime > before.st_mtime);
  CHECK(!l.lost());
  write_lock(dir, "elsewhere", 1, 0);  // someone took it
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  CHECK(l.lost());
  CHECK_THAT(l.lost_message(), Contains("removed or taken over by another process"));
}

// Flips one bit of the first chunk of `dataset` in the file.
static void flip_in(const std::string& path, const std::string& dataset, std::uint64_t at = 8) {
  haddr_t address = HADDR_UNDEF;
  {
    h5::File f(path, h5::File::ReadOnly);
    h5::Id d = f.open_dataset(dataset);
    hsize_t coord[2] = {0, 0}, bytes = 0;
    unsigned filters = 0;
    REQUIRE(H5Dget_chunk_info_by_coord(d, coord, &filters, &address, &bytes) >= 0);
  }
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  f.seekg(std::streamoff(address + at));
  char c = 0;
  f.get(c);
  f.seekp(std::streamoff(address + at));
  f.put(char(c ^ 0x10));
}

static CheckpointData small_checkpoint() {
  CheckpointData c;
  c.model.vocab_size = 11, c.model.hidden_size = 8, c.model.num_hidden_layers = 1;
  c.model.num_attention_heads = 2, c.model.intermediate_size = 12, c.model.rotary_pct = 0.5;
  const Index n = ParamLayout(c.model).total;
  for (Index i = 0; i < n; ++i) {
    c.params.push_back(0.25f * float(i % 7));
    c.exp_avg.push_back(0.5f * float(i % 5));
    c.exp_avg_sq.push_back(float(i % 3));
  }
  std::vector<char> stored(static_cast<std::size_t>(n), 0);  // padding between tensors is not stored: zero it
  for (const auto& e : ParamLayout(c.model).entries) std::fill_n(stored.begin() + e.offset, e.size(), 1);
  for (Index i = 0; i < n; ++i)
    if (!stored[std::size_t(i)])
      c.params[std::size_t(i)] = c.exp_avg[std::size_t(i)] = c.exp_avg_sq[std::size_t(i)] = 0;
  c.state.step = 3, c.state.set_samples = {12};
  return c;
}

TEST_CASE("checkpoints carry a checksum on every dataset; a flipped bit names file and dataset", "[io]") {
  const auto dir = fresh_dir("checksum");
  const auto c = small_checkpoint();
  const std::string good = dir + "/good.h5";
  write_checkpoint(good, c);
  {
    h5::File f(good, h5::File::ReadOnly);
    CHECK(f.metadata_checksummed());
    for (const auto& name : f.datasets()) CHECK(f.has_checksum(name));
  }
  for (const std::string name : {"/model/embed_out.weight", "/model/gpt_neox.layers.0.attention.query_key_value.bias",
                                 "/optimizer/exp_avg/gpt_neox.embed_in.weight",
                                 "/optimizer/exp_avg_sq/gpt_neox.final_layer_norm.weight", "/state/set_samples"}) {
    const std::string bad = dir + "/bad.h5";
    fs::copy_file(good, bad, fs::copy_options::overwrite_existing);
    flip_in(bad, name, 0);
    CAPTURE(name);
    const auto expect = Contains("bad.h5: cannot read dataset '" + name + "': checksum mismatch: the data is damaged");
    if (name == "/state/set_samples") {
      CHECK_THROWS_WITH(CheckpointReader(bad), expect);  // the header reads the state
    } else {
      const CheckpointReader r(bad);  // shapes and names are metadata: fine
      CHECK_THROWS_WITH(read_checkpoint(bad, nullptr, true), expect);
    }
    h5::File f(bad, h5::File::ReadOnly);
    CHECK_THROWS_WITH(f.read_through(name), expect);
  }
  const auto back = read_checkpoint(good, nullptr, true);  // the original still reads
  CHECK(back.params == c.params);
  CHECK(back.exp_avg_sq == c.exp_avg_sq);
}

TEST_CASE("a checkpoint without checksums still loads, marked unverified", "[io]") {
  const auto dir = fresh_dir("old_ckpt");
  const auto c = small_checkpoint();
  const std::string path = dir + "/old.h5";
  {
    h5::File f(path, h5::File::Create);
    f.set_attr("format", std::string("rewarm-checkpoint"));
    f.set_attr("step", std::int64_t(3));
    f.set_attr("tokens_seen", std::int64_t(0));
    f.set_attr("model_config", c.model.to_hf_json().dump());
    for (const auto& e : ParamLayout(c.model).entries) f.write("/model/" + e.name, c.params.data() + e.offset, e.shape);
  }
  const CheckpointReader r(path);
  CHECK(!r.checksummed());
  CHECK_THAT(unverified_note(r), Contains("old.h5 has no checksums") && Contains("loaded unverified"));
  std::vector<float> p(static_cast<std::size_t>(ParamLayout(c.model).total), 0.0f);
  r.read_params(p.data());
  CHECK(p == c.params);
}

TEST_CASE("a truncated or foreign file says what it is and what was expected", "[io]") {
  const auto dir = fresh_dir("truncated");
  const std::string path = dir + "/step_00000003.h5";
  write_checkpoint(path, small_checkpoint());
  const auto size = fs::file_size(path);
  fs::resize_file(path, size / 2);
  CHECK_THROWS_WITH(
      CheckpointReader(path),
      Contains("step_00000003.h5: cannot open HDF5 file (" + std::to_string(size / 2) +
               " bytes, HDF5 signature at byte 0): truncated: " + std::to_string(size / 2) + " bytes of the " +
               std::to_string(size) + " its HDF5 superblock records; expected a rewarm checkpoint"));
  write_file(dir + "/text.h5", "not hdf5 at all");
  CHECK_THROWS_WITH(CheckpointReader(dir + "/text.h5"),
                    Contains("text.h5: not an HDF5 file (15 bytes, no HDF5 signature); expected a rewarm checkpoint"));
  CHECK_THROWS_WITH(CheckpointReader(dir + "/none.h5"), Contains("none.h5: cannot open: No such file or directory"));
}

TEST_CASE("the cause of an HDF5 failure outlives the cleanup after it", "[io]") {
  const auto dir = fresh_dir("cause");
  const std::string path = dir + "/c.h5";
  write_checkpoint(path, small_checkpoint());
  fs::resize_file(path, fs::file_size(path) / 2);
  H5Eset_auto2(H5E_DEFAULT, nullptr, nullptr);
  {
    h5::Id fapl(H5Pcreate(H5P_FILE_ACCESS), H5Pclose);
    CHECK(H5Fopen(path.c_str(), H5F_ACC_RDONLY, fapl) < 0);
  }  // its close, an API call, would clear the error stack
  CHECK_THAT(h5::failure_cause(), Contains("truncated: "));
}

TEST_CASE("metrics: appends stay readable while written, and a resume drops redone steps", "[io]") {
  const auto dir = fresh_dir("metrics_swmr");
  const std::string path = dir + "/metrics.h5";
  {
    Metrics m(path, "cfg", {"Serial", 1, "fp32"}, -1, {"up"}, {"val"});
    for (Index s = 1; s <= 3; ++s) m.log_train({s, 10 * s, 1e-3, 2.0, 0.5, 100, 1}, {{"up", 4 * s}});
    m.log_eval("val", 0, 0, 1.5);
    const auto live = read_metrics(path);  // while the writer holds the file open
    CHECK(live.at("train").step == std::vector<std::int64_t>{1, 2, 3});
    CHECK(live.at("train").values.at("samples_up") == std::vector<double>{4, 8, 12});
    CHECK(live.at("eval/val").values.at("perplexity") == std::vector<double>{std::exp(1.5)});
    CHECK_THROWS_WITH(m.log_eval("other", 1, 1, 1.0), Contains("no eval set 'other'"));
  }
  {  // resumed at step 2 with a new eval set: old rows past 2 go, the new group starts empty
    Metrics m(path, "cfg", {"Serial", 2, "fp32"}, 2, {"up"}, {"val", "new"});
    m.log_train({3, 30, 1e-3, 1.0, 0.5, 100, 1}, {{"up", 13}});
    m.log_eval("new", 3, 30, 1.0);
  }
  h5::File f(path, h5::File::ReadOnly);  // closed: any reader opens it
  CHECK(f.read<std::int64_t>("/train/step") == std::vector<std::int64_t>{1, 2, 3});
  CHECK(f.read<double>("/train/samples_up") == std::vector<double>{4, 8, 13});
  CHECK(f.read<std::int64_t>("/eval/new/step") == std::vector<std::int64_t>{3});
  CHECK(f.attr_int("world_size") == 2);
  CHECK(f.metadata_checksummed());
  CHECK(!f.has_checksum("/train/loss"));  // appended under SWMR readers: no chunk checksums
}

TEST_CASE("metrics: a group reads as many rows as its shortest series", "[io]") {
  const auto dir = fresh_dir("metrics_rows");
  const std::string path = dir + "/metrics.h5";
  {  // as a kill between two series' appends leaves it
    h5::File f(path, h5::File::Create);
    f.set_attr("format", std::string("rewarm-metrics"));
    const std::int64_t steps[3] = {1, 2, 3};
    const double loss[2] = {2.0, 1.5};
    f.write("/train/step", steps, {3}, 4);
    f.write("/train/tokens", steps, {3}, 4);
    f.write("/train/loss", loss, {2}, 4);
  }
  const auto g = read_metrics(path).at("train");
  CHECK(g.step == std::vector<std::int64_t>{1, 2});
  CHECK(g.values.at("loss") == std::vector<double>{2.0, 1.5});
}

TEST_CASE("host memory: MemAvailable, or a cgroup limit when tighter", "[memory]") {
  const auto root = fresh_dir("host_memory");
  write_file(root + "/proc/meminfo", "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   20000000 kB\n");
  SECTION("no cgroup limit") {
    write_file(root + "/proc/self/cgroup", "0::/user.slice\n");
    write_file(root + "/sys/fs/cgroup/user.slice/memory.max", "max\n");
    const auto m = host_memory(root);
    CHECK(m.available == 20000000ull * 1024);
    CHECK(m.total == 24000000ull * 1024);
    CHECK(m.limited_by == "MemAvailable");
  }
  SECTION("cgroup v2: a SLURM job's limit, page cache not counted as used") {
    write_file(root + "/proc/self/cgroup", "0::/slurm/job_42/step_0\n");
    write_file(root + "/sys/fs/cgroup/slurm/job_42/memory.max", "8589934592\n");
    write_file(root + "/sys/fs/cgroup/slurm/job_42/memory.current", "3221225472\n");
    write_file(root + "/sys/fs/cgroup/slurm/job_42/memory.stat", "anon 1\ninactive_file 1073741824\n");
    write_file(root + "/sys/fs/cgroup/slurm/job_42/step_0/memory.max", "max\n");
    const auto m = host_memory(root);
    CHECK(m.available == (8ull << 30) - (2ull << 30));
    CHECK(m.total == 8ull << 30);
    CHECK(m.limited_by == "the cgroup limit of /slurm/job_42");
  }
  SECTION("cgroup v1") {
    write_file(root + "/proc/self/cgroup", "5:cpu,cpuacct:/x\n4:memory:/slurm/uid_0/job_7\n");
    write_file(root + "/sys/fs/cgroup/memory/slurm/uid_0/job_7/memory.limit_in_bytes", "4294967296\n");
    write_file(root + "/sys/fs/cgroup/memory/slurm/uid_0/job_7/memory.usage_in_bytes", "1073741824\n");
    write_file(root + "/sys/fs/cgroup/memory/slurm/memory.limit_in_bytes", "9223372036854771712\n");  // unlimited
    const auto m = host_memory(root);
    CHECK(m.available == 3ull << 30);
    CHECK(m.limited_by == "the cgroup limit of /slurm/uid_0/job_7");
  }
  CHECK(host_memory().available > 0);  // this machine
}
