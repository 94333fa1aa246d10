#include "parallel/comm.hpp"

#include <algorithm>
#include <chrono>
#include <climits>
#include <thread>

#include "core/error.hpp"

namespace rewarm {

template <>
MPI_Datatype mpi_type<float>() {
  return MPI_FLOAT;
}
template <>
MPI_Datatype mpi_type<double>() {
  return MPI_DOUBLE;
}
template <>
MPI_Datatype mpi_type<std::int32_t>() {
  return MPI_INT32_T;
}
template <>
MPI_Datatype mpi_type<std::int64_t>() {
  return MPI_INT64_T;
}

Slices::Slices(Index n, int ranks) {
  const Index part = (n + ranks - 1) / ranks, aligned = (part + 15) / 16 * 16;
  for (int r = 0; r < ranks; ++r) {
    const Index begin = std::min(n, r * aligned), end = std::min(n, (r + 1) * aligned);
    offset.push_back(begin);
    count.push_back(end - begin);
  }
}

Slices Slices::within(Index begin, Index end) const {
  Slices s;
  for (std::size_t r = 0; r < offset.size(); ++r) {
    const Index lo = std::clamp(offset[r], begin, end), hi = std::clamp(offset[r] + count[r], begin, end);
    s.offset.push_back(lo - begin);
    s.count.push_back(hi - lo);
  }
  return s;
}

static void check(int err, const char* what) {
  if (err == MPI_SUCCESS) return;
  char msg[MPI_MAX_ERROR_STRING];
  int len = 0;
  MPI_Error_string(err, msg, &len);
  throw Error(std::string("MPI ") + what + " failed: " + std::string(msg, std::size_t(len)));
}

Comm::Comm(MPI_Comm world, bool gpu_aware) : gpu_aware_(gpu_aware) {
  check(MPI_Comm_dup(world, &comm_), "Comm_dup");
  MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN);  // errors become rewarm::Error, not an abort
  MPI_Comm_rank(comm_, &rank_);
  MPI_Comm_size(comm_, &size_);
  MPI_Comm node;  // the ranks that share this node's memory: the local rank picks the GPU
  check(MPI_Comm_split_type(comm_, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node), "Comm_split_type");
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  check(MPI_Comm_dup(comm_, &async_), "Comm_dup");
}

Comm::~Comm() {
  if (async_ != MPI_COMM_NULL) MPI_Comm_free(&async_);
  if (comm_ != MPI_COMM_NULL) MPI_Comm_free(&comm_);
}

template <class T>
void Comm::start_allreduce_sum(T* data, Index n) {
  if (size_ == 1) return;
  payload_bytes_ += n * Index(sizeof(T));
  const Index piece = INT_MAX / 2;
  for (Index first = 0; first < n; first += piece) {
    pending_.emplace_back();
    check(MPI_Iallreduce(MPI_IN_PLACE, data + first, int(std::min(piece, n - first)), mpi_type<T>(), MPI_SUM, async_,
                         &pending_.back()),
          "Iallreduce");
  }
}
template void Comm::start_allreduce_sum(float*, Index);
template void Comm::start_allreduce_sum(double*, Index);

template <class T>
void Comm::start_allgather(T* data, const Slices& slices) {
  if (size_ == 1) return;
  std::vector<int> counts, displs;
  for (int r = 0; r < size_; ++r) {
    if (slices.offset[std::size_t(r)] + slices.count[std::size_t(r)] > INT_MAX)
      throw Error("a range of more than INT_MAX elements is too large for MPI's int counts");
    counts.push_back(int(slices.count[std::size_t(r)]));
    displs.push_back(int(slices.offset[std::size_t(r)]));
  }
  payload_bytes_ += slices.total() * Index(sizeof(T));
  pending_counts_.push_back(std::move(counts));
  pending_counts_.push_back(std::move(displs));
  const auto& c = pending_counts_[pending_counts_.size() - 2];
  const auto& d = pending_counts_.back();
  pending_.emplace_back();
  check(MPI_Iallgatherv(MPI_IN_PLACE, 0, mpi_type<T>(), data, c.data(), d.data(), mpi_type<T>(), async_,
                        &pending_.back()),
        "Iallgatherv");
}
template void Comm::start_allgather(float*, const Slices&);

void Comm::wait_all() {
  if (pending_.empty()) return;
  check(MPI_Waitall(int(pending_.size()), pending_.data(), MPI_STATUSES_IGNORE), "Waitall");
  pending_.clear();
  pending_counts_.clear();
}

double Comm::sum(double x) const {
  if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_DOUBLE, MPI_SUM, comm_), "Allreduce");
  return x;
}

void Comm::sum(std::vector<double>& v) const {
  if (size_ > 1 && !v.empty())
    check(MPI_Allreduce(MPI_IN_PLACE, v.data(), int(v.size()), MPI_DOUBLE, MPI_SUM, comm_), "Allreduce");
}

bool Comm::any(bool flag) const {
  int v = flag;
  if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, &v, 1, MPI_INT, MPI_LOR, comm_), "Allreduce");
  return v != 0;
}

int Comm::min(int x) const {
  if (size_ > 1) check(MPI_Allreduce(MPI_IN_PLACE, &x, 1, MPI_INT, MPI_MIN, comm_), "Allreduce");
  return x;
}

std::string Comm::broadcast_string(const std::string& s, int from) const {
  if (size_ == 1) return s;
  std::int64_t n = std::int64_t(s.size());
  check(MPI_Bcast(&n, 1, MPI_INT64_T, from, comm_), "Bcast");
  std::string out = rank_ == from ? s : std::string(std::size_t(n), '\0');
  check(MPI_Bcast(out.data(), int(n), MPI_CHAR, from, comm_), "Bcast");
  return out;
}

std::vector<std::string> Comm::allgather_strings(const std::string& s) const {
  if (size_ == 1) return {s};
  const int n = int(s.size());
  const auto ranks = std::size_t(size_);
  std::vector<int> counts(ranks), offsets(ranks);
  check(MPI_Allgather(&n, 1, MPI_INT, counts.data(), 1, MPI_INT, comm_), "Allgather");
  for (std::size_t r = 1; r < counts.size(); ++r) offsets[r] = offsets[r - 1] + counts[r - 1];
  std::string all(std::size_t(offsets.back() + counts.back()), '\0');
  check(MPI_Allgatherv(s.data(), n, MPI_CHAR, all.data(), counts.data(), offsets.data(), MPI_CHAR, comm_),
        "Allgatherv");
  std::vector<std::string> out;
  for (std::size_t r = 0; r < counts.size(); ++r) out.push_back(all.substr(std::size_t(offsets[r]), std::size_t(counts[r])));
  return out;
}

void Comm::agree(const std::function<void()>& work) const { agree_within(work, -1, nullptr); }

void Comm::agree_within(const std::function<void()>& work, double seconds,
                        const std::function<void(const std::string&)>& stuck) const {
  std::string message;
  bool failed = false;
  try {
    work();
  } catch (const CollectiveError&) {  // agreed already, by a nested agree(): every rank throws it
    throw;
  } catch (const std::exception& e) {
    message = e.what(), failed = true;
  }
  if (size_ == 1) {
    if (failed) throw CollectiveError(message);
    return;
  }
  int mine = failed ? rank_ : size_, first = size_;  // the lowest failing rank speaks for all
  if (seconds < 0) {                                 // agree(): no deadline
    first = min(mine);
  } else {
    MPI_Request request;
    check(MPI_Iallreduce(&mine, &first, 1, MPI_INT, MPI_MIN, comm_, &request), "Iallreduce");
    const auto start = std::chrono::steady_clock::now();
    for (int done = 0;;) {
      check(MPI_Test(&request, &done, MPI_STATUS_IGNORE), "Test");
      if (done) break;
      if (failed && std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > seconds)
        stuck(message);
      std::this_thread::sleep_for(std::chrono::microseconds(100));
    }
  }
  if (first == size_) return;
  throw CollectiveError(
      broadcast_string(rank_ == first ? "rank " + std::to_string(first) + ": " + message : "", first));
}

void Comm::barrier() const {
  if (size_ > 1) check(MPI_Barrier(comm_), "Barrier");
}

void Comm::run(Op op, void* data, void* recv, Index n, MPI_Datatype type, const Slices* slices, int root) const {
  int elem = 0;
  MPI_Type_size(type, &elem);
  payload_bytes_ += n * elem;
  if (op == Op::Allreduce || op == Op::Broadcast) {  // in pieces: MPI counts are int
    const Index piece = INT_MAX / 2;
    for (Index first = 0; first < n; first += piece) {
      const int count = int(std::min(piece, n - first));
      char* p = static_cast<char*>(data) + first * elem;
      if (op == Op::Allreduce)
        check(MPI_Allreduce(MPI_IN_PLACE, p, count, type, MPI_SUM, comm_), "Allreduce");
      else
        check(MPI_Bcast(p, count, type, root, comm_), "Bcast");
    }
    return;
  }
  if (int(slices->count.size()) != size_)
    throw Error("a collective over " + std::to_string(slices->count.size()) + " slices on " + std::to_string(size_) +
                " ranks");
  std::vector<int> counts, displs;
  for (int r = 0; r < size_; ++r) {
    if (slices->offset[r] + slices->count[r] > INT_MAX)
      throw Error("a buffer of " + std::to_string(n) + " elements is too large for MPI's int counts");
    counts.push_back(int(slices->count[r]));
    displs.push_back(int(slices->offset[r]));
  }
  char* mine = static_cast<char*>(data) + slices->offset[rank_] * elem;
  switch (op) {
    case Op::ReduceScatter:
      check(MPI_Reduce_scatter(data, recv, counts.data(), type, MPI_SUM, comm_), "Reduce_scatter");
      break;
    case Op::Allgather:
      check(MPI_Allgatherv(MPI_IN_PLACE, 0, type, data, counts.data(), displs.data(), type, comm_), "Allgatherv");
      break;
    case Op::Gather:
      if (rank_ == 0)
        check(MPI_Gatherv(MPI_IN_PLACE, 0, type, data, counts.data(), displs.data(), type, 0, comm_), "Gatherv");
      else
        check(MPI_Gatherv(mine, counts[rank_], type, nullptr, nullptr, nullptr, type, 0, comm_), "Gatherv");
      break;
    default:
      break;
  }
}

}  // namespace rewarm
