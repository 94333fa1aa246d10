// Downstream tasks scored during training: each [[data.tasks]] file's first max_examples examples
// (all when 0), by lm-evaluation-harness's rules. A choice's score is the sum of its tokens'
// log-likelihoods given the context; acc: the best-scoring choice is the answer; acc_norm: the
// best score divided by the choice's UTF-8 byte length is; a single choice (LAMBADA): acc = every
// choice token is the model's greedy choice. Context and choice that exceed seq_len + 1 tokens
// lose the context's first tokens (the harness truncates on the left too).
//
// One (context, choice) pair per row of a micro-batch, the examples' choices in batches split
// over the ranks by eval_batches (app/evaluation.hpp; the last one padded). So every choice is computed in the same batch at the same place on any rank count (a
// multi-threaded BLAS rounds a row by its place in the product); the per-choice scores are
// summed over the ranks (each comes from one rank: exact copies), then counted: the same scores
// and accuracy to the bit on any rank count.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "app/device_batch.hpp"
#include "app/run_config.hpp"
#include "data/task_file.hpp"
#include "model/gpt.hpp"
#include "parallel/comm.hpp"

namespace rewarm {

struct TaskScore {
  Index examples = 0;
  double acc = 0, acc_norm = 0;  // fractions; acc_norm is NaN for single-choice tasks
  bool single_choice = false;
  std::vector<double> choice_loglik;  // per choice of the scored examples, in file order
  std::vector<int> choice_greedy;     // per choice: 1 where every token is the greedy choice
};

class TaskEvaluation {
 public:
  // Reads and checks every [[data.tasks]] file of `cfg` (its token ids against the model's
  // vocabulary, max_examples against its size): one line naming the task and file otherwise.
  explicit TaskEvaluation(const RunConfig& cfg);
  std::size_t size() const { return sets_.size(); }
  const std::string& name(std::size_t i) const { return sets_.at(i).name; }
  // Every rank calls it; same_passes as Evaluation::loss.
  TaskScore score(std::size_t i, Gpt<float>& model, DeviceBatch& batch, Comm& comm, bool same_passes);

 private:
  Index seq_len_, micro_batch_;
  std::vector<TaskSet> sets_;
  std::vector<TaskFile> files_;
};

}  // namespace rewarm
