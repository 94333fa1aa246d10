// One micro-batch of token windows on its way to the device: rows staged on the host (in
// page-locked memory on GPUs; the device's own memory on host backends), then uploaded.
#pragma once
#include <cstdint>

#include "core/types.hpp"

namespace rewarm {

class DeviceBatch {
 public:
  DeviceBatch(Index rows, Index seq_len);
  // What the constructor allocates (the memory estimate's "batch").
  static std::size_t memory_bytes(Index rows, Index seq_len) { return 2 * allocation_bytes(rows * seq_len, 4); }
  // Row j from a window of seq_len + 1 tokens: the inputs are its first seq_len tokens, the
  // targets its last seq_len.
  void stage(Index j, const std::int32_t* window);
  // Enqueued on the execution space's stream, so the host goes on reading. The host side is
  // rewritten only after the pass that reads this upload has returned its loss to the host,
  // which orders the copy before the rewrite.
  void upload();
  const View1<std::int32_t>& ids() const { return ids_; }
  const View1<std::int32_t>& targets() const { return targets_; }
  const std::int32_t* host_ids() const { return h_ids_.data(); }  // as staged

 private:
  Index seq_len_;
  View1<std::int32_t> ids_, targets_;
  using Host = decltype(Kokkos::create_mirror_view(PinnedSpace(), View1<std::int32_t>()));
  Host h_ids_, h_targets_;
};

}  // namespace rewarm
