#include "io/run_dir_lock.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>

#include "core/env.hpp"
#include "core/error.hpp"

namespace rewarm {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string first_line(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  return line;
}

// Field `n` of /proc/PID/stat (3: the state, 22: when it started, in clock ticks since boot);
// "" if the process is not there.
static std::string process_stat(long pid, int n) {
  const std::string stat = first_line("/proc/" + std::to_string(pid) + "/stat");
  const auto close = stat.rfind(')');  // the command name may hold spaces and parentheses
  if (close == std::string::npos) return "";
  std::istringstream rest(stat.substr(close + 2));
  std::string field;
  for (int i = 3; i <= n && rest >> field; ++i) {
  }
  return field;
}

std::string process_start(long pid) { return process_stat(pid, 22); }

std::string utc_now() {
  const std::time_t t = std::time(nullptr);
  char s[32];
  std::strftime(s, sizeof s, "%Y-%m-%d %H:%M:%S UTC", std::gmtime(&t));
  return s;
}

std::string slurm_job() {
  const char* array = std::getenv("SLURM_ARRAY_JOB_ID");
  const char* task = std::getenv("SLURM_ARRAY_TASK_ID");
  if (array && task) return std::string(array) + "_" + task;
  const char* job = std::getenv("SLURM_JOB_ID");
  return job ? job : "";
}

std::string random_token() {
  std::random_device rd;
  char s[17];
  std::snprintf(s, sizeof s, "%08x%08x", rd(), rd());
  return s;
}

// Writes `text` to a new file `path` and syncs it; false (errno set) on failure.
bool write_new_file(const std::string& path, const std::string& text) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) return false;
  const bool ok = ::write(fd, text.data(), text.size()) == ssize_t(text.size()) && ::fsync(fd) == 0;
  const int err = errno;
  ::close(fd);
  errno = err;
  return ok;
}

// The holder recorded in a lock file; null if the file is gone.
json read_holder(const std::string& path) {
  std::ifstream in(path);
  if (!in) return nullptr;
  std::stringstream text;
  text << in.rdbuf();
  const json j = json::parse(text.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object())
    fail(path, "is not a rewarm lock (unreadable); if no rewarm runs in this run_dir, remove the file");
  return j;
}

double age_seconds(const std::string& path) {  // since the last heartbeat
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return 0;
  return std::difftime(std::time(nullptr), st.st_mtime);
}

std::string describe(const json& h, double heartbeat_age) {
  std::string s = "pid " + std::to_string(h.value("pid", 0L)) + " on host " + h.value("host", std::string("?"));
  const std::string job = h.value("slurm_job", std::string());
  if (!job.empty()) s += ", SLURM job " + job;
  s += ", since " + h.value("since", std::string("?"));
  return s + ", heartbeat " + std::to_string(long(heartbeat_age)) + " s ago";
}

// Why the holder is gone, or "" while it may be alive.
std::string gone_because(const json& h, double heartbeat_age, double stale_after) {
  if (h.value("host", std::string()) == host_name()) {
    if (h.value("boot_id", std::string()) != first_line("/proc/sys/kernel/random/boot_id"))
      return "its host has restarted since";
    const long pid = h.value("pid", 0L);
    if (pid <= 0 || (::kill(pid_t(pid), 0) != 0 && errno == ESRCH)) return "that process has exited";
    const std::string state = process_stat(pid, 3);
    if (state == "Z" || state == "X") return "that process has exited";  // not yet reaped (MPI_Abort's ranks)
    const std::string start = process_start(pid);
    if (!start.empty() && start != h.value("pid_start", std::string()))
      return "that process has exited (its pid is reused)";
    return "";
  }
  if (heartbeat_age > stale_after)
    return "its heartbeat is " + std::to_string(long(heartbeat_age)) + " s old (stale after " +
           std::to_string(long(stale_after)) + " s)";
  return "";
}

}  // namespace

double lock_stale_seconds() { return env_seconds("REWARM_LOCK_STALE_SECONDS", 300); }

LockState read_lock_state(const std::string& run_dir, double stale_after) {
  LockState st;
  const std::string path = (fs::path(run_dir) / "rewarm.lock").string();
  json holder;
  try {
    holder = read_holder(path);
  } catch (const Error&) {  // unreadable: someone's, alive or not; say so
    st.present = st.alive = true;
    st.holder = "an unreadable lock";
    return st;
  }
  if (holder.is_null()) return st;
  const double age = age_seconds(path);
  st.present = true;
  st.holder = describe(holder, age);
  st.gone = gone_because(holder, age, stale_after);
  st.alive = st.gone.empty();
  return st;
}

RunDirLock::RunDirLock(const std::string& run_dir, double stale_after, std::string* note)
    : path_((fs::path(run_dir) / "rewarm.lock").string()), token_(random_token()), interval_(stale_after / 10) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) fail(run_dir, "cannot create run_dir: " + ec.message());
  const json me = {{"host", host_name()},
                   {"pid", long(::getpid())},
                   {"pid_start", process_start(long(::getpid()))},
                   {"boot_id", first_line("/proc/sys/kernel/random/boot_id")},
                   {"slurm_job", slurm_job()},
                   {"since", utc_now()},
                   {"token", token_}};
  const std::string mine = path_ + "." + token_;  // our lock's content, linked to path_ when free
  if (!write_new_file(mine, me.dump() + "\n"))
    fail(run_dir, std::string("run_dir is not writable: ") + std::strerror(errno));
  struct Remove {  // the file of our own goes whatever happens; the link keeps its content
    std::string p;
    ~Remove() { ::unlink(p.c_str()); }
  } remove_mine{mine};
  for (int attempt = 0;; ++attempt) {
    if (::link(mine.c_str(), path_.c_str()) == 0) break;
    const int err = errno;
    struct stat st {};
    if (err == EEXIST && ::stat(mine.c_str(), &st) == 0 && st.st_nlink == 2)
      break;  // NFS: a retried link that succeeded
    if (err != EEXIST) fail(path_, std::string("cannot create the run_dir lock: ") + std::strerror(err));
    const json holder = read_holder(path_);
    if (holder.is_null()) continue;  // released meanwhile
    const double age = age_seconds(path_);
    const std::string gone = gone_because(holder, age, stale_after);
    if (gone.empty())
      fail(run_dir, "in use by another rewarm train (" + describe(holder, age) +
                        "); two runs in one run_dir destroy each other's files. Wait for it to end or stop it; "
                        "a lock whose holder is gone is taken over (at once on its own host, after " +
                        std::to_string(long(stale_after)) + " s without heartbeat from another)");
    if (attempt > 3) fail(path_, "the run_dir lock keeps changing hands; is another rewarm starting here?");
    // Take over through a second lock, so that only one of several starters replaces the stale one.
    const std::string guard = path_ + ".takeover", guard_mine = guard + "." + token_;
    if (!write_new_file(guard_mine, token_ + "\n"))
      fail(run_dir, std::string("run_dir is not writable: ") + std::strerror(errno));
    const bool guarded = ::link(guard_mine.c_str(), guard.c_str()) == 0;
    ::unlink(guard_mine.c_str());
    if (!guarded) {
      if (age_seconds(guard) > 60) ::unlink(guard.c_str());  // a starter died while taking over
      continue;
    }
    const json still = read_holder(path_);
    bool taken = false;
    if (!still.is_null() && still.value("token", std::string()) == holder.value("token", std::string()))
      taken = ::unlink(path_.c_str()) == 0 && ::link(mine.c_str(), path_.c_str()) == 0;
    ::unlink(guard.c_str());
    if (taken) {
      if (note) *note = "taking over " + path_ + " from " + describe(holder, age) + ": " + gone;
      break;
    }
  }
  thread_ = std::thread([this] { heartbeat(); });
}

RunDirLock::~RunDirLock() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  try {
    const json holder = read_holder(path_);
    if (!holder.is_null() && holder.value("token", std::string()) == token_) ::unlink(path_.c_str());
  } catch (const Error&) {  // not ours to remove
  }
}

void RunDirLock::heartbeat() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!wake_.wait_for(lock, std::chrono::duration<double>(interval_), [this] { return stopping_; })) {
    ::utimensat(AT_FDCWD, path_.c_str(), nullptr, 0);  // mtime = now (the server's clock on NFS)
    try {
      const json holder = read_holder(path_);
      if (holder.is_null() || holder.value("token", std::string()) != token_) lost_ = true;
    } catch (const Error&) {
      lost_ = true;
    }
  }
}

std::string RunDirLock::lost_message() const {
  return path_ + ": this run's lock was removed or taken over by another process (a heartbeat older than " +
         std::to_string(long(interval_ * 10)) + " s, or a hand); stopping so that two runs do not write one run_dir";
}

}  // namespace rewarm
