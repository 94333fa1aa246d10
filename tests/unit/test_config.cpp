// Run config parsing: defaults, overrides, and one clear error per bad input.
#include "app/run_config.hpp"
#include "testing.hpp"

using namespace rewarm;

static const char* kBase = R"(
run_dir = "runs/x"
[model]
vocab_size = 64
hidden_size = 32
num_hidden_layers = 2
num_attention_heads = 4
intermediate_size = 128
max_position_embeddings = 128
[data]
seq_len = 64
micro_batch = 2
global_batch = 8
[[data.train]]
name = "up"
path = "up.h5"
[[data.eval]]
name = "up"
path = "up_val.h5"
max_sequences = 16
[optimizer]
lr = 1e-3
betas = [0.9, 0.99]
[schedule]
kind = "cosine"
warmup = 0.1
total_steps = 200
)";

static RunConfig parse(const std::vector<std::string>& sets = {}, const std::string& extra = "") {
  return parse_run_config(std::string(kBase) + extra, "run.toml", sets);
}

TEST_CASE("a valid config parses with defaults and derived values", "[config]") {
  const auto c = parse();
  CHECK(c.model.hidden_size == 32);
  CHECK(c.accumulation_steps() == 4);
  CHECK(c.schedule.warmup_steps == 20);
  CHECK(c.optimizer.beta2 == 0.99);
  CHECK(c.optimizer.weight_decay == 0.1);
  CHECK(c.data.eval.at(0).max_sequences == 16);
  // the resolved TOML parses back to the same run
  const auto again = parse_run_config(c.to_toml(), "resolved", {});
  CHECK(again.to_toml() == c.to_toml());
  CHECK(again.schedule.warmup_steps == 20);
}

TEST_CASE("--set overrides any key with a TOML value", "[config]") {
  const auto c = parse({"optimizer.lr=3e-4", "schedule.kind=linear", "model.use_parallel_residual=false",
                        "data.train.0.path=other.h5", "optimizer.betas=[0.8, 0.9]", "run_dir=runs/y"});
  CHECK(c.schedule.lr == 3e-4);
  CHECK(c.schedule.kind == "linear");
  CHECK_FALSE(c.model.use_parallel_residual);
  CHECK(c.data.train[0].path == "other.h5");
  CHECK(c.optimizer.beta1 == 0.8);
  CHECK(c.run_dir == "runs/y");
}

TEST_CASE("bad configs fail with one line naming the key", "[config]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(parse({"model.hiden_size=3"}),
                    Contains("run.toml: unknown key model.hiden_size (did you mean model.hidden_size?)"));
  CHECK_THROWS_WITH(parse({}, "[train]\neval_intervall = 3\n"), Contains("did you mean train.eval_interval?"));
  CHECK_THROWS_WITH(parse({"model.hidden_size=\"big\""}),
                    Contains("model.hidden_size must be an integer, not a string"));
  CHECK_THROWS_WITH(parse({"data.global_batch=7"}),
                    Contains("data.global_batch = 7 is not a multiple of data.micro_batch = 2"));
  CHECK_THROWS_WITH(parse({"data.seq_len=256"}),
                    Contains("data.seq_len = 256 exceeds model.max_position_embeddings = 128"));
  CHECK_THROWS_WITH(parse({"model.num_attention_heads=5"}), Contains("does not divide hidden_size"));
  CHECK_THROWS_WITH(parse({"schedule.kind=cosin"}), Contains("did you mean \"cosine\""));
  CHECK_THROWS_WITH(parse({"init.load=partial"}), Contains("init.load"));
  CHECK_THROWS_WITH(parse({"model.preset=pythia-41m"}), Contains("did you mean \"pythia-410m\""));
  CHECK_THROWS_WITH(parse_run_config("x = [", "bad.toml", {}), Contains("bad.toml: line 1"));
  CHECK_THROWS_WITH(load_run_config("/nonexistent/run.toml", {}), Contains("/nonexistent/run.toml: cannot open"));
}

TEST_CASE("presets give Pythia sizes; explicit keys override", "[config]") {
  const auto c = parse_run_config(
      "[model]\npreset = \"pythia-410m\"\nnum_hidden_layers = 2\n[data]\nseq_len = 2048\n"
      "[[data.train]]\npath = \"x.h5\"\n[schedule]\ntotal_steps = 10\n",
      "p.toml", {});
  CHECK(c.model.hidden_size == 1024);
  CHECK(c.model.num_attention_heads == 16);
  CHECK(c.model.num_hidden_layers == 2);
  CHECK(c.model.vocab_size == 50304);
}

TEST_CASE("the shipped configs in inputs/ parse", "[config]") {
  for (const char* name : {"demo.toml", "pythia-410m-rewarm.toml", "pythia-410m-replay5.toml", "study/pretrain.toml",
                           "study/rewarm.toml"}) {
    INFO(name);
    const auto c = load_run_config(std::string(REWARM_SOURCE_DIR) + "/inputs/" + name, {});
    CHECK(c.schedule.total_steps > 0);
    if (std::string(name) == "pythia-410m-replay5.toml") CHECK(c.data.train.at(1).weight == 0.05);
    if (std::string(name).rfind("pythia", 0) == 0) CHECK(c.schedule.total_steps == 23842);  // 50e9 / 2^21, rounded up
  }
}
