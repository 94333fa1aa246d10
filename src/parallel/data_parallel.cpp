#include "parallel/data_parallel.hpp"

#include <cmath>
#include <cstdio>

#include "optim/adamw.hpp"
#include "optim/gradients.hpp"

namespace rewarm {

namespace {
// The rules of the strategy, for the object and for `rewarm plan` alike.
struct Rules {
  int zero;
  bool direct;  // one micro-batch per step on one rank: no sum kept (not zero 3: it steps from its shard)
  bool sliced;  // zero 2 (unless direct), 3: the sum kept in slices, bucket by bucket
  bool fp32;    // reduce = "fp32" over several ranks
  Slices slices;
  Index own_offset, own_count;
  Rules(const RunConfig& cfg, int ranks, int rank)
      : zero(int(cfg.parallel.zero)),
        direct(cfg.data.global_batch == cfg.data.micro_batch && ranks == 1 && zero < 3),
        sliced(zero >= 3 || (zero >= 2 && !direct)),
        fp32(cfg.parallel.reduce == GradientReduce::fp32 && ranks > 1),
        slices(ParamLayout(cfg.model).total, zero ? ranks : 1),
        own_offset(slices.offset[std::size_t(zero ? rank : 0)]),
        own_count(slices.count[std::size_t(zero ? rank : 0)]) {}
};

template <class T>
View1<T> uninitialized(const char* name, Index n) {
  return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), n);
}
}  // namespace

DataParallelMemory DataParallel::memory(const RunConfig& cfg, int ranks, int rank, bool bf16) {
  const Rules r(cfg, ranks, rank);
  const ParamLayout layout(cfg.model);
  DataParallelMemory m;
  if (r.zero == 3) {  // this rank's parameters and gradient (its slices), the gathered units
    m.sharded_model = true;
    m.weights = m.gradients = allocation_bytes(r.own_count, 4);
    m.units = ParamUnits::memory_bytes(layout, r.slices, rank, bf16) - m.weights;
  }
  if (r.sliced) {
    m.gradient_sum = allocation_bytes(r.own_count, 8);
    m.communication =
        SlicedGradientSum::memory_bytes(r.slices, rank, layout.largest_bucket_range()) - m.gradient_sum;
  } else if (!r.direct) {
    m.gradient_sum = allocation_bytes(layout.total, 8);
  }
  if (r.zero == 1 && !r.direct) m.communication = allocation_bytes(r.own_count, r.fp32 ? 4 : 8);  // the slice of the sum
  m.adamw = 2 * allocation_bytes(r.own_count, 4);
  return m;
}

DataParallel::DataParallel(const RunConfig& cfg, Comm& comm, const ParamLayout& layout, bool bf16)
    : comm_(comm),
      collectives_(comm),
      zero_(cfg.parallel.zero),
      micro_(cfg.data.global_batch / (cfg.data.micro_batch * comm.size())),
      samples_per_rank_(cfg.data.global_batch / comm.size()),
      overlap_asked_(cfg.parallel.overlap),
      slices_(layout.total, 1),
      buckets_(layout.gradient_buckets()) {
  const Rules r(cfg, comm.size(), comm.rank());
  slices_ = r.slices;
  own_offset_ = r.own_offset, own_count_ = r.own_count;
  fp32_ = r.fp32;
  if (r.direct)
    sum_ = Sum::direct;
  else if (r.sliced)
    sum_ = Sum::sliced;
  else if (zero_)
    sum_ = fp32_ ? Sum::scatter_fp32 : Sum::scatter;
  else
    sum_ = fp32_ ? Sum::allreduce_fp32 : Sum::allreduce;  // overlapped, where it can be (attach)
  if (zero_ == 3) {
    units_ = std::make_unique<ParamUnits>(layout, slices_, collectives_, bf16);
    grad_shard_ = uninitialized<float>("rewarm::grad_shard", own_count_);
  }
  if (sum_ == Sum::sliced)
    sliced_ = std::make_unique<SlicedGradientSum>(slices_, comm.rank(), layout.largest_bucket_range());
  else if (sum_ != Sum::direct)
    grad_sum_ = View1<double>("rewarm::grad_sum", layout.total);
  if (sum_ == Sum::scatter) grad_slice_ = View1<double>("rewarm::grad_slice", own_count_);
  if (sum_ == Sum::scatter_fp32) grad_slice32_ = View1<float>("rewarm::grad_slice32", own_count_);
}

DataParallel::~DataParallel() {
  if (model_) model_->on_gradients = nullptr, model_->units = nullptr;
}

void DataParallel::attach(Gpt<float>& model) {
  model_ = &model;
  collectives_.use_device();
  if (units_)
    model.units = [this](std::size_t u, UnitUse use, std::ptrdiff_t next) { return units_->use(u, use, next); };
  // Data parallel without ZeRO: the last micro-batch's gradients are summed over the ranks bucket
  // by bucket while its backward pass goes on.
  if (overlap_asked_ && comm_.size() > 1 && !zero_ && collectives_.overlaps()) sum_ = Sum::overlapped;
  model.on_gradients = [this](std::size_t b) {
    if (hooked_) on_bucket(b);
  };
}

void DataParallel::begin_micro_batch(Index u) {
  first_ = u == 0;
  hooked_ = sum_ == Sum::sliced || (sum_ == Sum::overlapped && u == micro_ - 1);
}

// Bucket b's gradients are final: ZeRO-2, 3 sum them over the ranks into this rank's slice;
// overlapped, they go into the step's sum, which starts its way over the ranks.
void DataParallel::on_bucket(std::size_t b) {
  if (sum_ == Sum::sliced) {
    for (std::size_t k = 0; k < buckets_[b].size(); ++k) {
      const auto [begin, end] = buckets_[b][k];
      const float* range = units_ ? units_->grads(b, k) : model_->grads.data() + begin;
      sliced_->add(collectives_, range, begin, end, first_);
    }
    return;
  }
  for (const auto& [begin, end] : buckets_[b]) {
    const auto sum = as_vector(grad_sum_.data() + begin, end - begin);
    const auto grad = as_vector(model_->grads.data() + begin, end - begin);
    accumulate_gradient(sum, grad, first_);
    if (fp32_) round_gradient(grad, sum);  // this rank's sum, reduced in float
  }
  for (const auto& [begin, end] : buckets_[b]) {
    if (fp32_)
      collectives_.start_allreduce_sum(model_->grads.data() + begin, end - begin);
    else
      collectives_.start_allreduce_sum(grad_sum_.data() + begin, end - begin);
  }
}

void DataParallel::end_micro_batch() {
  if (sum_ != Sum::direct && !hooked_) accumulate_gradient(flat(grad_sum_), flat(model_->grads), first_);
}

Vector<float> DataParallel::reduce() {
  const auto g = as_vector(units_ ? grad_shard_.data() : model_->grads.data() + own_offset_, own_count_);
  switch (sum_) {
    case Sum::direct:  // the micro-batch's gradient is the step's, on the only rank
      break;
    case Sum::sliced:
      round_gradient(g, flat(sliced_->sum()));
      break;
    case Sum::scatter_fp32:
      round_gradient(flat(model_->grads), flat(grad_sum_));
      collectives_.reduce_scatter_sum(model_->grads, grad_slice32_, slices_);
      Kokkos::deep_copy(ExecSpace(), g, grad_slice32_);
      break;
    case Sum::scatter:
      collectives_.reduce_scatter_sum(grad_sum_, grad_slice_, slices_);
      round_gradient(g, flat(grad_slice_));
      break;
    case Sum::overlapped:
      collectives_.wait();
      if (!fp32_) round_gradient(g, flat(grad_sum_));
      break;
    case Sum::allreduce_fp32:
      round_gradient(g, flat(grad_sum_));
      collectives_.allreduce_sum(model_->grads);
      break;
    case Sum::allreduce:
      collectives_.allreduce_sum(grad_sum_);
      round_gradient(g, flat(grad_sum_));
      break;
  }
  return g;
}

double DataParallel::grad_norm(const Vector<float>& g) const {
  return std::sqrt(zero_ ? comm_.sum(sum_of_squares(g)) : sum_of_squares(g));
}

Vector<float> DataParallel::owned_params() const {
  return as_vector(units_ ? units_->shard().data() : model_->params.data() + own_offset_, own_count_);
}

void DataParallel::params_written() {
  if (units_) units_->changed();
  model_->params_changed();
}

void DataParallel::after_update() {
  if (units_)
    units_->changed();  // each unit is gathered again as the next forward pass reaches it
  else if (zero_)
    collectives_.allgather(model_->params, slices_);
  model_->params_changed();
}

std::string DataParallel::description() const {
  char line[256];
  std::snprintf(line, sizeof line, "%d ranks, %lld samples each per step; AdamW state %.1f MiB per rank%s; gradients over %s",
                comm_.size(), static_cast<long long>(samples_per_rank_), double(2 * sizeof(float) * own_count_) / (1 << 20),
                zero_ ? (" (ZeRO-" + std::to_string(zero_) + ")").c_str() : "", collectives_.description().c_str());
  return line;
}

std::string DataParallel::overlap_off() const {
  if (!overlap_asked_ || comm_.size() == 1 || sum_ == Sum::overlapped || zero_ >= 2) return "";  // zero 2: always by bucket
  return zero_ ? "not with zero = 1" : "nonblocking MPI collectives take host memory only (and there is no NCCL/RCCL)";
}

}  // namespace rewarm
