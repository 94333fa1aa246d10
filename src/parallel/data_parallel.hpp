// Data parallelism over the ranks of a job, every ZeRO stage, in one object: the trainer attaches
// it to the model once, then per step asks it for the step's gradient (reduce), the parameters
// to update and the update's spread (after_update), and never asks which stage runs.
//
// Each optimizer step's global_batch samples are split over the ranks; rank r computes its
// share in micro_batch pieces. The micro-batch gradients (floats) are summed in double, over the
// micro-batches and over the ranks, so every rank count and every stage gives the same float
// gradient bit for bit (docs/numerics.md):
//   zero 0  every rank keeps the whole sum and all-reduces it once per step (overlap: the last
//           micro-batch's buckets are summed as the backward pass finishes them) and updates all
//           the parameters;
//   zero 1  the sum is reduce-scattered: each rank updates its slice (Slices) with its slice of
//           the AdamW moments, then the slices are all-gathered;
//   zero 2  as 1, but each micro-batch's buckets are reduce-scattered straight into this rank's
//           slice of the sum (SlicedGradientSum): no rank holds the whole sum;
//   zero 3  as 2, and the parameters too are only this rank's slice: each unit (ParamUnits) is
//           gathered just before the model computes with it.
// reduce = "fp32" rounds each rank's sum to float before the sum over the ranks (half the bytes;
// exact within a rank count, within 1e-6 across them). One micro-batch per step on one rank
// ("direct") keeps no sum: its gradient is the step's.
//
// Every collective goes through one Collectives (NCCL/RCCL on GPUs where built, else MPI).
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "app/run_config.hpp"
#include "model/gpt.hpp"
#include "parallel/collectives.hpp"
#include "parallel/param_units.hpp"
#include "parallel/sliced_gradients.hpp"

namespace rewarm {

// What the strategy allocates on one rank (bytes, each allocation padded as Kokkos pads it).
struct DataParallelMemory {
  bool sharded_model = false;  // zero 3: the model holds no parameters or gradients, the next two do
  std::size_t weights = 0, gradients = 0;  // zero 3: this rank's slices of them
  std::size_t gradient_sum = 0;   // double: the step's whole sum (zero <= 1) or this rank's slice of it
  std::size_t communication = 0;  // ZeRO-1's reduce-scatter target, ZeRO-2's range on its way
  std::size_t units = 0;          // ZeRO-3: two units' gathered parameters (and bf16 copies), one unit's gradients
  std::size_t adamw = 0;          // both AdamW moments of the part this rank updates (the trainer's)
};

class DataParallel {
 public:
  // Rank `rank` of `ranks` training `cfg`, with bf16 GEMMs or not: what the constructor and the
  // trainer's moments allocate. `rewarm plan` and the trainer's memory check use it.
  static DataParallelMemory memory(const RunConfig& cfg, int ranks, int rank, bool bf16);

  // Allocates the gradient sums, slices and (zero 3) the parameter shard; collectives over MPI
  // until attach().
  DataParallel(const RunConfig& cfg, Comm& comm, const ParamLayout& layout, bool bf16);
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  // Once, after the model is allocated (every rank: NCCL/RCCL's bootstrap is collective): the
  // collectives move to the device where they can, zero 3 supplies the model's units, and the
  // gradient hook that sums buckets during the backward pass is installed.
  void attach(Gpt<float>& model);

  // The flat parameters this rank holds: all of them (the model's buffer), or zero 3's slice,
  // starting at element held_offset() of the flat layout. Whoever writes them (a checkpoint read,
  // the initialisation) calls params_written(). After attach().
  View1<float> held_params() const { return units_ ? units_->shard() : model_->params; }
  Index held_offset() const { return units_ ? own_offset_ : 0; }
  void params_written();
  // Whether every forward pass is collective (zero 3 gathers each unit from every rank): then
  // every rank must make as many (evaluation).
  bool collective_passes() const { return units_ != nullptr; }
  // The flat parameters this rank updates: [owned_offset(), + owned_count()).
  Index owned_offset() const { return own_offset_; }
  Index owned_count() const { return own_count_; }
  // Whether the AdamW moments (zero >= 1) or the parameters too (zero 3) are only this rank's slice.
  bool moments_sliced() const { return zero_ > 0; }
  bool params_sliced() const { return units_ != nullptr; }
  const Slices& slices() const { return slices_; }

  // Micro-batch u of the step's micro_batches(): before its forward and backward pass, and after.
  Index micro_batches() const { return micro_; }
  void begin_micro_batch(Index u);
  void end_micro_batch();
  // After the last micro-batch: this rank's part of the step's gradient, summed over the
  // micro-batches and the ranks, in float (the model's gradient buffer or zero 3's shard).
  Vector<float> reduce();
  // The global gradient norm of reduce()'s result (summed over the ranks where it is a slice).
  double grad_norm(const Vector<float>& g) const;
  // What AdamW updates: this rank's parameters.
  Vector<float> owned_params() const;
  // After AdamW: every rank's updated parameters where the model reads them (all-gathered, or
  // zero 3's units gathered again as the next pass reaches them).
  void after_update();

  // For the log: "2 ranks, 4 samples each per step; AdamW state 1.2 MiB per rank (ZeRO-1);
  // gradients over MPI", and why overlap is off where it was asked for ("" if not).
  std::string description() const;
  std::string overlap_off() const;
  // Bytes handed to the gradient and parameter collectives so far (MPI and NCCL/RCCL).
  std::int64_t communication_bytes() const { return collectives_.payload_bytes(); }

 private:
  // How the step's gradient comes together (fixed at construction).
  enum class Sum { direct, sliced, scatter, scatter_fp32, overlapped, allreduce, allreduce_fp32 };
  void on_bucket(std::size_t b);  // the model's gradient hook

  Comm& comm_;
  Collectives collectives_;
  Gpt<float>* model_ = nullptr;
  Index zero_, micro_, samples_per_rank_;
  bool fp32_ = false;  // reduce = "fp32" over several ranks (Rules)
  Sum sum_ = Sum::direct;
  bool overlap_asked_;
  Slices slices_;
  Index own_offset_ = 0, own_count_ = 0;
  std::vector<std::vector<std::pair<Index, Index>>> buckets_;
  View1<double> grad_sum_;                     // Σ micro-batch gradients of the step (then over ranks); zero <= 1
  std::unique_ptr<SlicedGradientSum> sliced_;  // zero >= 2: only this rank's slice of that sum
  std::unique_ptr<ParamUnits> units_;          // zero 3: this rank's parameters, gathered unit by unit
  View1<float> grad_shard_;                    // zero 3: this rank's slice of the step's gradient
  View1<double> grad_slice_;                   // ZeRO-1: this rank's slice of the summed gradient
  View1<float> grad_slice32_;                  // the same, with reduce = "fp32"
  bool first_ = true;                          // the micro-batch under way is the step's first
  bool hooked_ = false;                        // its gradients are summed by the hook, bucket by bucket
};

}  // namespace rewarm
