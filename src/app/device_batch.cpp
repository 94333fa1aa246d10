#include "app/device_batch.hpp"

namespace rewarm {

DeviceBatch::DeviceBatch(Index rows, Index seq_len)
    : seq_len_(seq_len),
      ids_("rewarm::ids", rows * seq_len),
      targets_("rewarm::targets", rows * seq_len),
      h_ids_(Kokkos::create_mirror_view(PinnedSpace(), ids_)),
      h_targets_(Kokkos::create_mirror_view(PinnedSpace(), targets_)) {}

void DeviceBatch::stage(Index j, const std::int32_t* window) {
  for (Index t = 0; t < seq_len_; ++t) {
    h_ids_(j * seq_len_ + t) = window[t];
    h_targets_(j * seq_len_ + t) = window[t + 1];
  }
}

void DeviceBatch::upload() {
  Kokkos::deep_copy(ExecSpace(), ids_, h_ids_);
  Kokkos::deep_copy(ExecSpace(), targets_, h_targets_);
}

}  // namespace rewarm
