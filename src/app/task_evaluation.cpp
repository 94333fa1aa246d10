#include "app/task_evaluation.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "app/evaluation.hpp"
#include "core/error.hpp"

namespace rewarm {

TaskEvaluation::TaskEvaluation(const RunConfig& cfg)
    : seq_len_(cfg.data.seq_len), micro_batch_(cfg.data.micro_batch), sets_(cfg.data.tasks) {
  for (std::size_t i = 0; i < sets_.size(); ++i) {
    const auto& set = sets_[i];
    const std::string role = "data.tasks[" + std::to_string(i) + "]";
    files_.push_back(TaskFile::read(set.path));
    const auto& f = files_.back();
    if (f.vocab_size > cfg.model.vocab_size)
      fail(set.path, "vocab_size " + std::to_string(f.vocab_size) + " (" + role + ") exceeds the model's vocab_size " +
                         std::to_string(cfg.model.vocab_size));
    if (set.max_examples > f.examples())
      fail(set.path, role + ".max_examples = " + std::to_string(set.max_examples) + " but the file has only " +
                         std::to_string(f.examples()) + " examples");
  }
}

TaskScore TaskEvaluation::score(std::size_t i, Gpt<float>& model, DeviceBatch& batch, Comm& comm,
                                bool same_passes) {
  const TaskFile& f = files_.at(i);
  const Index T = seq_len_, B = micro_batch_;
  const Index n = sets_[i].max_examples > 0 ? sets_[i].max_examples : f.examples();
  const Index choices = f.example_choices[std::size_t(n)];
  const auto mine = eval_batches(choices, B, comm, same_passes);
  std::vector<double> loglik(std::size_t(choices), 0.0);
  std::vector<double> greedy(std::size_t(choices), 0.0);
  // choice c's row: context + choice, the last T + 1 tokens; scored: the choice's positions
  auto row_of = [&](Index c, std::vector<std::int32_t>& window) -> std::pair<Index, Index> {
    Index e = std::upper_bound(f.example_choices.begin(), f.example_choices.end(), std::int64_t(c)) -
              f.example_choices.begin() - 1;
    std::vector<std::int32_t> seq(f.context_tokens.begin() + f.context_offsets[std::size_t(e)],
                                  f.context_tokens.begin() + f.context_offsets[std::size_t(e + 1)]);
    seq.insert(seq.end(), f.choice_tokens.begin() + f.choice_offsets[std::size_t(c)],
               f.choice_tokens.begin() + f.choice_offsets[std::size_t(c + 1)]);
    const Index cont = f.choice_offsets[std::size_t(c + 1)] - f.choice_offsets[std::size_t(c)];
    const Index len = std::min<Index>(Index(seq.size()), T + 1), drop = Index(seq.size()) - len;
    std::fill(window.begin(), window.end(), 0);
    std::copy(seq.begin() + drop, seq.end(), window.begin());
    const Index scored = std::min(cont, len - 1);  // the positions that predict the choice's tokens
    return {len - 1 - scored, len - 1};
  };
  View1<std::int32_t> hit("rewarm::task_hits", std::size_t(B * T));
  auto h_hit = Kokkos::create_mirror_view(hit);
  auto h_loss = Kokkos::create_mirror_view(model.token_losses());
  std::vector<std::int32_t> window(std::size_t(T + 1));
  std::vector<std::pair<Index, Index>> spans(static_cast<std::size_t>(B));
  comm.agree([&] {
    for (Index k = 0; k < mine.passes; ++k) {
      const Index first = (mine.first + k) * B;  // passes past this rank's batches are all padding
      const Index count = k < mine.count ? std::min(B, choices - first) : 0;
      for (Index j = 0; j < B; ++j) {  // rows past `count` are padding: scored by no one
        spans[std::size_t(j)] = j < count ? row_of(first + j, window) : std::pair<Index, Index>{0, 0};
        if (j >= count) std::fill(window.begin(), window.end(), 0);
        batch.stage(j, window.data());
      }
      batch.upload();
      model.loss(batch.ids(), batch.targets());
      model.targets_are_argmax(batch.targets(), hit);
      Kokkos::deep_copy(h_loss, model.token_losses());
      Kokkos::deep_copy(h_hit, hit);
      for (Index j = 0; j < count; ++j) {
        double ll = 0;
        bool all = true;
        for (Index p = spans[std::size_t(j)].first; p < spans[std::size_t(j)].second; ++p) {
          ll -= h_loss(j * T + p);
          all = all && h_hit(j * T + p) == 1;
        }
        loglik[std::size_t(first + j)] = ll;
        greedy[std::size_t(first + j)] = all ? 1.0 : 0.0;
      }
    }
  });
  // every choice's score comes from one rank: the sums over ranks are exact copies
  View1<double> all("rewarm::task_scores", std::size_t(2 * choices));
  auto h_all = Kokkos::create_mirror_view(all);
  for (Index c = 0; c < choices; ++c) h_all(c) = loglik[std::size_t(c)], h_all(choices + c) = greedy[std::size_t(c)];
  Kokkos::deep_copy(all, h_all);
  comm.allreduce_sum(all);
  Kokkos::deep_copy(h_all, all);
  TaskScore s;
  s.examples = n;
  s.single_choice = true;
  Index acc = 0, acc_norm = 0;
  auto bytes = [&](Index c) { return double(std::max<std::int64_t>(f.choice_bytes[std::size_t(c)], 1)); };
  for (Index e = 0; e < n; ++e) {
    const Index c0 = f.example_choices[std::size_t(e)], m = f.choices(e), answer = f.answer[std::size_t(e)];
    if (m == 1) {
      acc += h_all(choices + c0) == 1.0;
      continue;
    }
    s.single_choice = false;
    Index best = 0, best_norm = 0;  // the first of equal scores, as numpy's argmax
    for (Index c = 1; c < m; ++c) {
      if (h_all(c0 + c) > h_all(c0 + best)) best = c;
      if (h_all(c0 + c) / bytes(c0 + c) > h_all(c0 + best_norm) / bytes(c0 + best_norm)) best_norm = c;
    }
    acc += best == answer;
    acc_norm += best_norm == answer;
  }
  s.acc = double(acc) / double(n);
  s.acc_norm = s.single_choice ? std::numeric_limits<double>::quiet_NaN() : double(acc_norm) / double(n);
  for (Index c = 0; c < choices; ++c) {
    s.choice_loglik.push_back(h_all(c));
    s.choice_greedy.push_back(int(h_all(choices + c)));
  }
  return s;
}

}  // namespace rewarm
