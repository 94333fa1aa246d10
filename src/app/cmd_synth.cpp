// rewarm synth --out FILE: a synthetic token shard with an exactly known entropy rate.
#include <cstdio>

#include "app/commands.hpp"
#include "data/synth.hpp"
#include "data/token_shard.hpp"

namespace rewarm {

void register_synth(CLI::App& app) {
  auto* cmd = app.add_subcommand("synth", "write a synthetic order-2 token shard with a known entropy rate");
  auto out = std::make_shared<std::string>();
  auto spec = std::make_shared<SynthSpec>();
  cmd->add_option("--out", *out, "output token shard (.h5)")->required();
  cmd->add_option("--vocab", spec->vocab, "token ids [0, vocab)")->capture_default_str();
  cmd->add_option("--tokens", spec->tokens, "number of tokens")->capture_default_str();
  cmd->add_option("--decay", spec->decay, "p_i ∝ decay^i; smaller is more predictable")->capture_default_str();
  cmd->add_option("--seed", spec->seed, "seed of the source (its permutations)")->capture_default_str();
  cmd->add_option("--stream-seed", spec->stream_seed, "seed of the sampled stream")->capture_default_str();
  cmd->add_option("--share", spec->share, "fraction of contexts taken from --shared-seed (related corpora)")
      ->capture_default_str();
  cmd->add_option("--shared-seed", spec->shared_seed, "the structure that related corpora share")
      ->capture_default_str();
  auto* weights = cmd->add_option("--weights", spec->weights,
                                  "a mixture of domains: each one's share of the documents (comma-separated)")
                      ->delimiter(',');
  cmd->add_option("--private", spec->private_tokens, "with --weights: tokens of each domain's alphabet that are its own")
      ->capture_default_str()
      ->needs(weights);
  cmd->add_option("--doc-length", spec->doc_length, "with --weights: mean document length in tokens")
      ->capture_default_str()
      ->needs(weights);
  cmd->callback([out, spec] {
    const double h = synth_entropy_rate(*spec);
    const Index vocab = synth_vocab(*spec);
    std::string source = "rewarm synth order-2 vocab=" + std::to_string(spec->vocab) +
                         " decay=" + std::to_string(spec->decay) + " seed=" + std::to_string(spec->seed) +
                         " share=" + std::to_string(spec->share) + " shared_seed=" + std::to_string(spec->shared_seed);
    if (!spec->weights.empty()) {
      source += " weights=";
      for (std::size_t i = 0; i < spec->weights.size(); ++i) source += (i ? "," : "") + std::to_string(spec->weights[i]);
      source += " private=" + std::to_string(spec->private_tokens) + " doc_length=" + std::to_string(spec->doc_length);
    }
    write_token_shard(*out, synth_tokens(*spec), vocab, spec->weights.empty() ? -1 : vocab - 1, "synthetic", source, h);
    std::printf("%s: %lld tokens, vocab %lld, entropy rate %.6f nats/token", out->c_str(),
                static_cast<long long>(spec->tokens), static_cast<long long>(vocab), h);
    if (!spec->weights.empty())
      std::printf(" given each document's domain (at most %.6f more: the domains' choice)",
                  synth_domain_choice_bound(*spec));
    std::printf("\n");
  });
}

}  // namespace rewarm
