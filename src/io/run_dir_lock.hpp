// One run directory, one process tree: `rewarm train` holds run_dir/rewarm.lock while it runs.
//
// The lock file is made by link(2) of a file of our own to the lock's name, which is atomic on
// local file systems, NFS (v2 and later: a retried link is recognised by the link count) and
// Lustre alike; flock/fcntl locks are not used (NFS and Lustre mounts may lack them or lose
// them). It holds who took it (host, pid and the pid's start time, SLURM job, since when) and
// a token of its own; its modification time is the heartbeat, touched by a thread every
// stale_after/10. A lock is stale when its holder is gone: on this host, when that pid is not
// running or started at another time (a reused pid); from another host, when its heartbeat is
// older than stale_after (clocks of a cluster's nodes agree to far less than that). A stale
// lock is taken over with a message; taking over goes through a second lock (rewarm.lock.takeover),
// so that two starts that both find the lock stale cannot both take it.
#pragma once
#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace rewarm {

// Seconds after which another host's lock is stale: REWARM_LOCK_STALE_SECONDS, default 300.
double lock_stale_seconds();

// Who holds run_dir's lock, read without taking it (`rewarm sweep --status`).
struct LockState {
  bool present = false;  // run_dir/rewarm.lock exists
  bool alive = false;    // and its holder may be running
  std::string holder;    // "pid 8925 on host n017, SLURM job 42_3, since ..., heartbeat 3 s ago"
  std::string gone;      // why the holder is gone, when it is
};
LockState read_lock_state(const std::string& run_dir, double stale_after);

class RunDirLock {
 public:
  // Takes run_dir/rewarm.lock (creating run_dir) or fails with one line naming the holder.
  // `note` receives the takeover message, if a stale lock was taken over.
  RunDirLock(const std::string& run_dir, double stale_after, std::string* note = nullptr);
  ~RunDirLock();  // stops the heartbeat; removes the lock if it is still ours
  RunDirLock(const RunDirLock&) = delete;
  RunDirLock& operator=(const RunDirLock&) = delete;
  const std::string& path() const { return path_; }
  // True once the heartbeat found the lock gone or someone else's: the run must stop.
  bool lost() const { return lost_; }
  std::string lost_message() const;

 private:
  void heartbeat();
  std::string path_, token_;
  double interval_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  std::atomic<bool> lost_{false};
  std::thread thread_;
};

}  // namespace rewarm
