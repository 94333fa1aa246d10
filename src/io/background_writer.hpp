// Writes buffers in a second thread, in the order they were filled, while the caller fills
// the next ones: reading, checking and writing a large file overlap. Up to `depth` filled
// buffers wait for the writer, so a slow moment of the disk does not stall the reader.
// An exception thrown by `write` reaches the caller at its next hand_off() or at finish().
#pragma once
#include <condition_variable>
#include <deque>
#include <exception>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

namespace rewarm {

template <class Buffer>
class BackgroundWriter {
 public:
  BackgroundWriter(std::function<void(Buffer&)> write, int depth) : write_(std::move(write)), pool_(depth + 1) {
    for (std::size_t i = 1; i < pool_.size(); ++i) free_.push_back(&pool_[i]);
    current_ = &pool_[0];
    thread_ = std::thread([this] { run(); });
  }
  ~BackgroundWriter() { stop(); }
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  Buffer& current() { return *current_; }  // fill this, then hand_off()

  // Queues current() for writing and makes an empty buffer current (reused: its capacity stays).
  void hand_off() {
    std::unique_lock<std::mutex> lock(mutex_);
    rethrow();
    queued_.push_back(current_);
    changed_.notify_all();
    changed_.wait(lock, [this] { return !free_.empty() || error_; });
    rethrow();
    current_ = free_.front();
    free_.pop_front();
    current_->clear();
  }

  // Writes current() too, waits until everything is written, and rethrows a writer error.
  void finish() {
    hand_off();
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [this] { return (queued_.empty() && !busy_) || error_; });
    rethrow();
  }

 private:
  void rethrow() {
    if (error_) std::rethrow_exception(error_);
  }
  void run() {
    std::unique_lock<std::mutex> lock(mutex_);
    for (;;) {
      changed_.wait(lock, [this] { return !queued_.empty() || stopping_; });
      if (queued_.empty() || error_) return;
      Buffer* b = queued_.front();
      queued_.pop_front();
      busy_ = true;
      lock.unlock();
      std::exception_ptr error;
      try {
        write_(*b);
      } catch (...) {
        error = std::current_exception();
      }
      lock.lock();
      busy_ = false;
      if (error) error_ = error;
      free_.push_back(b);
      changed_.notify_all();
    }
  }
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      queued_.clear();  // unwinding after an error: drop what was not written
    }
    changed_.notify_all();
    if (thread_.joinable()) thread_.join();
  }

  std::function<void(Buffer&)> write_;
  std::vector<Buffer> pool_;
  Buffer* current_ = nullptr;
  std::deque<Buffer*> queued_, free_;
  bool busy_ = false, stopping_ = false;
  std::exception_ptr error_;
  std::mutex mutex_;
  std::condition_variable changed_;
  std::thread thread_;
};

}  // namespace rewarm
