// Run config parsing: defaults, overrides, and one clear error per bad input.
#include "app/run_config.hpp"
#include "app/study.hpp"
#include "core/gemm_precision.hpp"
#include "model/param_layout.hpp"
#include "testing.hpp"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

using namespace rewarm;
using rewarm::testing::source_dir;

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
  CHECK(c.optimizer.lr == 3e-4);
  CHECK(c.schedule.kind == "linear");
  CHECK_FALSE(c.model.use_parallel_residual);
  CHECK(c.data.train[0].path == "other.h5");
  CHECK(c.optimizer.beta1 == 0.8);
  CHECK(c.run_dir == "runs/y");
}

TEST_CASE("--set key= removes a key (its default holds) or an array element", "[config]") {
  const std::string two_sets = "[[data.train]]\nname = \"replay\"\npath = \"pile.h5\"\nweight = 0.05\n";
  const auto both = parse({}, two_sets);
  REQUIRE(both.data.train.size() == 2);
  const auto one = parse({"data.train.1="}, two_sets);
  REQUIRE(one.data.train.size() == 1);
  CHECK(one.data.train[0].name == "up");
  CHECK(parse({"data.train.0="}, two_sets).data.train.at(0).name == "replay");
  CHECK(parse({"optimizer.betas="}).optimizer.beta2 == 0.95);  // back to the default
  CHECK(parse({"data.eval.0="}).data.eval.empty());
  CHECK_THROWS_WITH(parse({"data.train.2="}, two_sets), Catch::Contains("--set data.train.2: no element 2 (the array has 2)"));
  CHECK_THROWS_WITH(parse({"optimizer.eps="}), Catch::Contains("--set optimizer.eps=: nothing to remove"));
  CHECK_THROWS_WITH(parse({"data.train.0="}), Catch::Contains("at least one [[data.train]] set is required"));
}

TEST_CASE("a schedule key that the chosen kind does not read is an error in a written config", "[config]") {
  const auto path = (std::filesystem::temp_directory_path() / "rewarm_schedule_keys.toml").string();
  std::ofstream(path) << kBase << "cooldown = 0.6\n";  // under [schedule], kind = "cosine"
  CHECK_THROWS_WITH(load_run_config(path, {}),
                    Catch::Contains("rewarm_schedule_keys.toml:28: schedule.cooldown is read only by kind = "
                                    "infinite_cosine or infinite_inv_sqrt or infinite_linear, not by \"cosine\""));
  CHECK_NOTHROW(load_run_config(path, {"schedule.kind=infinite_cosine", "schedule.const_lr=1e-4"}));
  CHECK_THROWS_WITH(load_run_config(path, {"schedule.kind=infinite_cosine", "schedule.const_lr=1e-4", "schedule.decay=0.1"}),
                    Catch::Contains("--set schedule.decay: schedule.decay is read only by kind = wsd"));
  CHECK_NOTHROW(parse({}, "cooldown = 0.6\n"));  // a resolved config (every key) still parses
}

TEST_CASE("bad configs fail with one line naming the key", "[config]") {
  using Catch::Contains;
  CHECK_THROWS_WITH(parse({"model.hiden_size=3"}),
                    Contains("--set model.hiden_size: unknown key model.hiden_size (did you mean model.hidden_size?)"));
  // a key of the file is named with its line; one from --set as such
  CHECK_THROWS_WITH(parse({}, "[train]\neval_intervall = 3\n"),
                    Contains("run.toml:29: unknown key train.eval_intervall (did you mean train.eval_interval?)"));
  CHECK_THROWS_WITH(parse({"model.hidden_size=\"big\""}),
                    Contains("--set model.hidden_size: model.hidden_size must be an integer, not a string"));
  CHECK_THROWS_WITH(parse({}, "[train]\nlog_interval = [3]\n"),
                    Contains("run.toml:29: train.log_interval must be an integer, not an array"));
  CHECK_THROWS_WITH(parse({"train.log_interval=-1"}), Contains("--set train.log_interval: train.log_interval = -1 must not be negative"));
  CHECK_THROWS_WITH(parse({"data.global_batch=7"}),
                    Contains("data.global_batch = 7 is not a multiple of data.micro_batch = 2"));
  CHECK_THROWS_WITH(parse({"data.seq_len=256"}),
                    Contains("data.seq_len = 256 exceeds model.max_position_embeddings = 128"));
  CHECK_THROWS_WITH(parse({"model.num_attention_heads=5"}), Contains("does not divide hidden_size"));
  CHECK_THROWS_WITH(parse({"schedule.kind=cosin"}), Contains("did you mean \"cosine\""));
  CHECK_THROWS_WITH(parse({"init.load=partial"}), Contains("init.load"));
  CHECK_THROWS_WITH(parse({"model.preset=pythia-41m"}), Contains("did you mean \"pythia-410m\""));
  CHECK(to_string(GemmPrecision::fp32) == "fp32");
  CHECK(to_string(GemmPrecision::tf32) == "tf32");
  CHECK(to_string(GemmPrecision::bf16) == "bf16");
  CHECK_THROWS_WITH(parse({"precision.gemm=\"fp16\""}),
                    Contains("run.toml: precision.gemm = \"fp16\" is not one of fp32, tf32, bf16"));
  CHECK_NOTHROW(parse({"precision.gemm=\"tf32\""}));  // any build parses it; a CUDA build runs it
  CHECK_THROWS_WITH(parse({"parallel.zero=4"}), Contains("parallel.zero = 4 must be 0, 1, 2 or 3"));
  CHECK_THROWS_WITH(parse({"memory.recompute=\"all\""}), Contains("memory.recompute = \"all\" is not one of none, selective, full"));
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
  for (const char* name : {"demo.toml", "pythia-410m-rewarm.toml", "pythia-410m-replay5.toml", "studies/tiny-base.toml"}) {
    INFO(name);
    const auto c = load_run_config(source_dir() + "/inputs/" + name, {});
    CHECK(c.schedule.total_steps > 0);
    if (std::string(name) == "pythia-410m-replay5.toml") CHECK(c.data.train.at(1).weight == 0.05);
    if (std::string(name).rfind("pythia", 0) == 0) CHECK(c.schedule.total_steps == 131296);  // 297B tokens / (1104 × 2048)
  }
}

// config.json of EleutherAI/pythia-{14m,...,12b} on the Hugging Face hub (the keys convert hf reads).
static const char* kPythiaConfigs[][2] = {
    {"pythia-14m", R"({"hidden_size": 128, "num_attention_heads": 4, "num_hidden_layers": 6, "intermediate_size": 512})"},
    {"pythia-70m", R"({"hidden_size": 512, "num_attention_heads": 8, "num_hidden_layers": 6, "intermediate_size": 2048})"},
    {"pythia-160m", R"({"hidden_size": 768, "num_attention_heads": 12, "num_hidden_layers": 12, "intermediate_size": 3072})"},
    {"pythia-410m", R"({"hidden_size": 1024, "num_attention_heads": 16, "num_hidden_layers": 24, "intermediate_size": 4096})"},
    {"pythia-1b", R"({"hidden_size": 2048, "num_attention_heads": 8, "num_hidden_layers": 16, "intermediate_size": 8192})"},
    {"pythia-1.4b", R"({"hidden_size": 2048, "num_attention_heads": 16, "num_hidden_layers": 24, "intermediate_size": 8192})"},
    {"pythia-2.8b", R"({"hidden_size": 2560, "num_attention_heads": 32, "num_hidden_layers": 32, "intermediate_size": 10240})"},
    {"pythia-6.9b", R"({"hidden_size": 4096, "num_attention_heads": 32, "num_hidden_layers": 32, "intermediate_size": 16384,
        "vocab_size": 50432})"},
    {"pythia-12b", R"({"hidden_size": 5120, "num_attention_heads": 40, "num_hidden_layers": 36, "intermediate_size": 20480,
        "vocab_size": 50688})"},
};

TEST_CASE("presets and inputs/pythia-410m-rewarm.toml agree with Pythia's config.json", "[config]") {
  for (const auto& [name, sizes] : kPythiaConfigs) {
    auto j = nlohmann::json::parse(R"({"architectures": ["GPTNeoXForCausalLM"], "bos_token_id": 0, "eos_token_id": 0,
        "hidden_act": "gelu", "initializer_range": 0.02, "layer_norm_eps": 1e-05, "max_position_embeddings": 2048,
        "model_type": "gpt_neox", "rotary_emb_base": 10000, "rotary_pct": 0.25, "tie_word_embeddings": false,
        "torch_dtype": "float16", "use_cache": true, "use_parallel_residual": true, "vocab_size": 50304})");
    j.update(nlohmann::json::parse(sizes));  // the sizes, and the vocabularies padded otherwise (6.9b, 12b)
    const auto hf = ModelConfig::from_hf_json(j, name);
    INFO(name);
    CHECK(ModelConfig::preset(name, "test").differences(hf).empty());
    if (std::string(name) == "pythia-410m") {
      const auto c = load_run_config(source_dir() + "/inputs/pythia-410m-rewarm.toml", {});
      CHECK(c.model.differences(hf).empty());
    }
  }
  // a difference names the key and both values
  auto other = ModelConfig::preset("pythia-70m", "test");
  other.rotary_pct = 0.5;
  other.hidden_act = "gelu_fast";
  const auto d = ModelConfig::preset("pythia-70m", "test").differences(other);
  REQUIRE(d.size() == 2);
  CHECK(d[0].key == "rotary_pct");
  CHECK(d[0].ours == "0.25");
  CHECK(d[0].theirs == "0.5");
  CHECK(d[1].key == "hidden_act");
  CHECK(d[1].theirs == "\"gelu_fast\"");
}

TEST_CASE("hidden_act errors list every accepted name", "[config]") {
  CHECK_THROWS_WITH(parse({"model.hidden_act=relu"}),
                    Catch::Contains("gelu (exact erf), gelu_fast, gelu_new, gelu_pytorch_tanh"));
  for (const char* act : {"gelu", "gelu_fast", "gelu_new", "gelu_pytorch_tanh"})
    CHECK(parse({std::string("model.hidden_act=") + act}).model.hidden_act == act);
}

TEST_CASE("a resumed run may change only keys that leave training alone", "[config]") {
  const auto base = parse().to_toml();
  CHECK(changes_refused_on_resume(base, base).empty());
  const auto allowed = parse({"train.eval_interval=7", "train.log_interval=3", "train.checkpoint_interval=5",
                              "train.keep_checkpoints=9", "train.eval_at_start=false", "run_dir=elsewhere",
                              "data.micro_batch=4", "data.eval.0.path=moved.h5", "data.eval.0.max_sequences=3"});
  CHECK(changes_refused_on_resume(base, allowed.to_toml()).empty());
  const auto refused = changes_refused_on_resume(
      base, parse({"optimizer.lr=6e-4", "data.train.0.path=other.h5", "schedule.total_steps=300"}).to_toml());
  REQUIRE(refused.size() == 4);  // warmup = 0.1 of total_steps moves too
  CHECK(refused[0] == "data.train[0].path: \"up.h5\" -> \"other.h5\"");
  CHECK(refused[1] == "optimizer.lr: 0.001 -> 0.0006");
  CHECK(refused[2] == "schedule.total_steps: 200 -> 300");
  CHECK(refused[3] == "schedule.warmup_steps: 20 -> 30");
  // a set added or removed is a change too
  const auto two = parse({}, "[[data.train]]\npath = \"b.h5\"\n").to_toml();
  CHECK(changes_refused_on_resume(base, two).size() == 3);  // data.train[1].name, .path, .weight
}

// The rows of the key tables in docs/config.md: "| `section.key` | ...".
static std::vector<std::string> documented_keys() {
  std::ifstream f(source_dir() + "/docs/config.md");
  REQUIRE(f);
  std::vector<std::string> keys;
  for (std::string line; std::getline(f, line);)
    if (line.rfind("| `", 0) == 0) keys.push_back(line.substr(3, line.find('`', 3) - 3));
  std::sort(keys.begin(), keys.end());
  return keys;
}

TEST_CASE("docs/config.md documents every key the parser accepts, and no other", "[config][docs]") {
  const auto accepted = run_config_keys(), documented = documented_keys();
  CHECK(accepted.size() > 40);
  for (const auto& k : accepted) {
    INFO("accepted but not documented: " << k);
    CHECK(std::binary_search(documented.begin(), documented.end(), k));
  }
  for (const auto& k : documented) {
    INFO("documented but not accepted: " << k);
    CHECK(std::binary_search(accepted.begin(), accepted.end(), k));
  }
}

TEST_CASE("the shipped studies resolve: every run's config parses", "[config][study]") {
  struct Expect {
    const char* name;
    std::size_t runs;
    int stages;
  };
  for (const auto& e : {Expect{"tiny.toml", 13, 2}, Expect{"pythia-410m-rewarm.toml", 39, 1},
                        Expect{"pythia-410m-replay.toml", 9, 1}}) {
    INFO(e.name);
    const auto s = load_study(source_dir() + "/inputs/studies/" + e.name, {}, "");
    CHECK(s.runs.size() == e.runs);
    CHECK(s.stages == e.stages);
    CHECK(!s.upstream.empty());
    CHECK(!s.downstream.empty());
  }
  const auto g = load_study(source_dir() + "/inputs/studies/pythia-410m-rewarm.toml", {}, "45b");
  const auto& r = g.run("rewarm-lr6e-4-start27k-warmup2");
  CHECK(r.config.optimizer.lr == 6e-4);
  CHECK(r.config.optimizer.min_lr == 6e-5);
  CHECK(r.config.schedule.total_steps == 19903);
  CHECK(r.config.schedule.warmup_steps == 398);  // 2% of 19903
  CHECK(r.config.init.from == "ckpt/pythia-410m-step27000.h5");
  CHECK(r.config.data.global_batch == 1104);
  CHECK(r.tags.at("start") == "27k");
  const auto t = load_study(source_dir() + "/inputs/studies/tiny.toml", {}, "");
  CHECK(t.run("constant").config.init.from == "runs/tiny/pretrain/checkpoints/step_00001200.h5");  // @pretrain
  CHECK(t.run("constant").after == std::vector<std::string>{"pretrain"});
  CHECK(t.run("constant").stage == 1);
  CHECK_THROWS_WITH(t.run("pretrian"), Catch::EndsWith("tiny.toml: no run named pretrian (did you mean pretrain?)"));
  CHECK_THROWS_WITH(t.run("zzz"), Catch::EndsWith("tiny.toml: no run named zzz"));
  // --run-root: the same study elsewhere (another seed), its run dirs and @run paths there
  const auto seed2 = load_study(source_dir() + "/inputs/studies/tiny.toml", {"init.seed=2"}, "", "runs/tiny-seed2");
  CHECK(seed2.run_root == "runs/tiny-seed2");
  CHECK(seed2.run("constant").config.run_dir == "runs/tiny-seed2/constant");
  CHECK(seed2.run("constant").config.init.from == "runs/tiny-seed2/pretrain/checkpoints/step_00001200.h5");
  CHECK(seed2.run("pretrain").config.init.seed == 2);
  CHECK_THROWS_WITH(load_study(source_dir() + "/inputs/studies/tiny.toml", {}, "shrot"),
                    Catch::Contains("no budget \"shrot\" in [budgets] (did you mean \"short\"?)"));
}

TEST_CASE("bad studies fail with one line naming the study and the run", "[config][study]") {
  const auto dir = std::filesystem::temp_directory_path() / "rewarm_study_test";
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "base.toml") << kBase; }
  auto study = [&](const std::string& body) {
    std::ofstream(dir / "s.toml") << "base = \"base.toml\"\n" << body;
    return (dir / "s.toml").string();
  };
  using Catch::Contains;
  CHECK_THROWS_WITH(load_study(study("[runs.a]\nset = [\"optimizer.lr=1\"]\nrol = \"x\"\n"), {}, ""),
                    Contains("unknown key runs.a.rol (did you mean runs.a.role?)"));
  CHECK_THROWS_WITH(load_study(study("[runs.a]\nset = [\"init.from=@b\"]\n"), {}, ""),
                    Contains("run a starts after \"b\", which is not a run of the study"));
  CHECK_THROWS_WITH(load_study(study("[runs.a]\nafter = [\"b\"]\n[runs.b]\nafter = [\"a\"]\n"), {}, ""),
                    Contains("in a cycle"));
  CHECK_THROWS_WITH(load_study(study("[runs.a]\nset = [\"init.from=${nope}\"]\n"), {}, ""),
                    Contains("run a: ${nope} is not in [paths]"));
  CHECK_THROWS_WITH(load_study(study("[runs.a]\nset = [\"optimizer.lrr=1\"]\n"), {}, ""),
                    Contains("s.toml: run a: ") && Contains("--set optimizer.lrr: unknown key optimizer.lrr"));
  CHECK_THROWS_WITH(load_study(study("[grids.g]\nset = []\n"), {}, ""), Contains("grids.g.axes must be a table"));
  CHECK_THROWS_WITH(load_study((dir / "none.toml").string(), {}, ""), Contains("none.toml: cannot open study file"));
  const auto ok = load_study(study("[grids.g.axes.x]\n\"1\" = [\"optimizer.lr=1e-3\"]\n\"b\" = [\"optimizer.lr=2e-3\"]\n"),
                             {"data.seed=7"}, "");
  REQUIRE(ok.runs.size() == 2);
  CHECK(ok.run("g-x1").config.optimizer.lr == 1e-3);
  CHECK(ok.run("g-b").config.data.seed == 7);  // a value starting with a letter names the run alone
  CHECK(ok.run("g-b").config.run_dir == "runs/s/g-b");
}

TEST_CASE("the Pythia presets have the model card's exact parameter counts", "[config]") {
  // "exact parameter counts" of the Pythia model card (EleutherAI/pythia-*), embeddings included
  const std::pair<const char*, Index> counts[] = {
      {"pythia-70m", 70426624},       {"pythia-160m", 162322944},     {"pythia-410m", 405334016},
      {"pythia-1b", 1011781632},      {"pythia-1.4b", 1414647808},    {"pythia-2.8b", 2775208960},
      {"pythia-6.9b", 6857302016},    {"pythia-12b", 11846072320}};
  for (const auto& [name, n] : counts) {
    INFO(name);
    CHECK(ParamLayout(ModelConfig::preset(name, "test")).total == n);
  }
}
