#include "parallel/param_units.hpp"

#include "core/error.hpp"

namespace rewarm {

namespace {
template <class T>
View1<T> buffer(const char* name, Index n) {
  return View1<T>(Kokkos::view_alloc(std::string(name), Kokkos::WithoutInitializing), n);
}
// The GEMMs read the weights in bf16: once per gather.
void to_bf16(const View1<float>& src, const View1<Bf16Storage>& dst, Index n) {
  Kokkos::parallel_for(
      "rewarm::unit_to_bf16", Range(0, n), KOKKOS_LAMBDA(Index i) { dst(i) = to_bf16_storage(src(i)); });
}
}  // namespace

ParamUnits::ParamUnits(const ParamLayout& layout, const Slices& slices, Collectives& collectives, bool bf16)
    : units_(layout.gradient_buckets()),
      slices_(slices),
      collectives_(collectives),
      shard_("rewarm::param_shard", slices.count[std::size_t(collectives.comm().rank())]) {
  const Index largest = layout.largest_bucket();
  for (auto& s : slots_) {
    s.params = buffer<float>("rewarm::unit_params", largest);
    if (bf16) s.params16 = buffer<Bf16Storage>("rewarm::unit_params_bf16", largest);
  }
  grads_ = buffer<float>("rewarm::unit_grads", largest);
}

std::size_t ParamUnits::memory_bytes(const ParamLayout& layout, const Slices& slices, int rank, bool bf16) {
  const Index largest = layout.largest_bucket();
  return allocation_bytes(slices.count[std::size_t(rank)], 4) + 2 * allocation_bytes(largest, 4) +
         (bf16 ? 2 * allocation_bytes(largest, sizeof(Bf16Storage)) : 0) + allocation_bytes(largest, 4);
}

Index ParamUnits::unit_size(std::size_t unit) const {
  Index n = 0;
  for (const auto& [begin, end] : units_.at(unit)) n += end - begin;
  return n;
}

ParamUnits::Slot* ParamUnits::holding(std::ptrdiff_t unit) {
  for (auto& s : slots_)
    if (s.unit == unit) return &s;
  return nullptr;
}

// Range by range: this rank's part of the range copied from the shard into its place, then
// every rank's part gathered in place (done at land(), or at once for device memory over MPI).
void ParamUnits::start_gather(Slot& slot, std::size_t unit) {
  const int rank = collectives_.comm().rank();
  Index pos = 0;
  for (const auto& [begin, end] : units_[unit]) {
    const Index n = end - begin;
    const Slices part = slices_.within(begin, end);
    const Index at = part.offset[std::size_t(rank)], mine = part.count[std::size_t(rank)];
    const Index from = begin + at - slices_.offset[std::size_t(rank)];  // in the shard
    if (mine > 0)
      Kokkos::deep_copy(ExecSpace(), Kokkos::subview(slot.params, std::make_pair(pos + at, pos + at + mine)),
                        Kokkos::subview(shard_, std::make_pair(from, from + mine)));
    if (collectives_.comm().size() > 1) collectives_.start_allgather(slot.params.data() + pos, part);
    gathered_ += n;
    pos += n;
  }
  slot.unit = std::ptrdiff_t(unit);
  slot.pending = true;
}

void ParamUnits::land(Slot& slot) {
  if (!slot.pending) return;
  collectives_.wait();
  if (slot.params16.data()) to_bf16(slot.params, slot.params16, unit_size(std::size_t(slot.unit)));
  slot.pending = false;
}

void ParamUnits::changed() {
  for (auto& s : slots_) {
    land(s);
    s.unit = -1;
  }
}

UnitBuffers<float> ParamUnits::use(std::size_t unit, UnitUse use, std::ptrdiff_t next) {
  if (unit >= units_.size()) throw Error("ParamUnits: no unit " + std::to_string(unit));
  UnitBuffers<float> b;
  if (use != UnitUse::gradients) {
    Slot* s = holding(std::ptrdiff_t(unit));
    if (!s) {  // not prefetched: into the slot that does not hold the unit asked for before
      s = &slots_[0];
      for (auto& o : slots_)
        if (o.unit != last_) s = &o;
      land(*s);  // a gather into it still in flight
      start_gather(*s, unit);
    }
    land(*s);
    last_ = std::ptrdiff_t(unit);
    b.params = s->params.data();
    b.params16 = s->params16.data();
    if (next >= 0 && !holding(next)) {  // the other slot: its unit is done with
      Slot& o = s == &slots_[0] ? slots_[1] : slots_[0];
      land(o);
      start_gather(o, std::size_t(next));
    }
  }
  if (use != UnitUse::forward) {
    Kokkos::deep_copy(ExecSpace(), Kokkos::subview(grads_, std::make_pair(Index(0), unit_size(unit))), 0.0f);
    grads_unit_ = std::ptrdiff_t(unit);
    b.grads = grads_.data();
  }
  return b;
}

const float* ParamUnits::grads(std::size_t unit, std::size_t range) const {
  if (std::ptrdiff_t(unit) != grads_unit_)
    throw Error("ParamUnits: unit " + std::to_string(unit) + "'s gradients are gone");
  Index pos = 0;
  for (std::size_t k = 0; k < range; ++k) pos += units_[unit][k].second - units_[unit][k].first;
  return grads_.data() + pos;
}

}  // namespace rewarm
