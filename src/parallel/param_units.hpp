// ZeRO-3's parameters ([parallel] zero = 3). Each rank keeps only its slice of the flat
// parameters, Slices(P, N)[rank]: the part whose gradient sum and AdamW moments it keeps and
// whose update it computes. The model asks for a unit's buffers just before it computes with it
// (Gpt::units; the units are ParamLayout::gradient_buckets()): the unit's parameters are
// all-gathered into one of two slots, range by range, while the unit the model names as next is
// gathered into the other slot (NCCL/RCCL on their own stream, or nonblocking MPI on host
// memory; blocking MPI where device memory is staged through the host). A slot keeps its unit
// until another is gathered into it, so the backward pass finds the output layer and the last
// layer still there. With bf16 GEMMs each slot also holds its unit in bf16, converted once per
// gather. One more buffer holds a unit's gradients until the reduce-scatter has taken them
// (SlicedGradientSum, which the trainer calls from Gpt::on_gradients).
//
// Per rank: 4·P/N bytes of parameters here, plus two units' parameters (and their bf16 copies)
// and one unit's gradients, whatever N.
#pragma once
#include <array>
#include <vector>

#include "model/gpt.hpp"
#include "parallel/collectives.hpp"

namespace rewarm {

class ParamUnits {
 public:
  // The gathers go through `collectives` (NCCL/RCCL once it uses the device).
  ParamUnits(const ParamLayout& layout, const Slices& slices, Collectives& collectives, bool bf16);
  // What the constructor allocates (the trainer's memory estimate, `rewarm plan`).
  static std::size_t memory_bytes(const ParamLayout& layout, const Slices& slices, int rank, bool bf16);

  // This rank's parameters, flat elements [slices.offset[rank], + count): AdamW updates them and
  // checkpoints hold them. Whoever writes them calls changed().
  const View1<float>& shard() const { return shard_; }
  void changed();  // every slot is stale (after a gather in flight has landed)

  // Gpt::units: unit `unit`'s buffers for `use`, and the gather of `next` (-1: none) started.
  UnitBuffers<float> use(std::size_t unit, UnitUse use, std::ptrdiff_t next);
  // Where range `range` of unit `unit`'s gradients starts (the buffer use() gave for it).
  const float* grads(std::size_t unit, std::size_t range) const;
  // Elements all-gathered so far (every rank's parts, this rank's included): bytes = 4 × this.
  Index gathered() const { return gathered_; }

 private:
  struct Slot {
    std::ptrdiff_t unit = -1;  // the unit it holds or is receiving
    bool pending = false;      // a gather in flight, or its bf16 copy not made yet
    View1<float> params;
    View1<Bf16Storage> params16;
  };
  void start_gather(Slot& slot, std::size_t unit);
  void land(Slot& slot);  // the slot's gather completes; its bf16 copy is made
  Slot* holding(std::ptrdiff_t unit);
  Index unit_size(std::size_t unit) const;

  std::vector<std::vector<std::pair<Index, Index>>> units_;
  Slices slices_;
  Collectives& collectives_;
  View1<float> shard_, grads_;
  std::array<Slot, 2> slots_;
  std::ptrdiff_t last_ = -1;        // the unit whose parameters were asked for last
  std::ptrdiff_t grads_unit_ = -1;  // whose gradients grads_ holds
  Index gathered_ = 0;
};

}  // namespace rewarm
