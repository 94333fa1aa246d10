#include "parallel/collectives.hpp"

namespace rewarm {

Collectives::~Collectives() = default;

void Collectives::use_device() {
  if (!kHostMemory && comm_.size() > 1 && !device_) device_ = DeviceCollectives::create(comm_, &why_not_);
}

std::string Collectives::description() const {
  if (device_) return device_->description();
  return why_not_.empty() ? std::string("MPI") : "MPI (" + why_not_ + ")";
}

std::int64_t Collectives::payload_bytes() const {
  return comm_.payload_bytes() + (device_ ? device_->payload_bytes() : 0);
}

void Collectives::allgather(const View1<float>& v, const Slices& slices) {
  if (!device_) return comm_.allgather(v, slices);
  device_->start_allgather(v.data(), slices);
  device_->join();
}

void Collectives::start_allgather(float* data, const Slices& slices) {
  if (device_) return device_->start_allgather(data, slices);  // ordered after the compute stream (an event)
  if (kHostMemory) {
    kx::fence("rewarm::collective");  // MPI reads what the kernels wrote
    return comm_.start_allgather(data, slices);
  }
  comm_.allgather(Vector<float>(data, slices.total()), slices);  // device memory over MPI: staged, blocking
}

void Collectives::wait() {
  if (device_)
    device_->join();  // the compute stream waits; the host does not
  else
    comm_.wait_all();
}

}  // namespace rewarm
