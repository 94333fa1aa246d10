#include "app/study.hpp"

#include <toml++/toml.h>

#include <cctype>
#include <filesystem>
#include <functional>
#include <nlohmann/json.hpp>
#include <set>

#include "core/error.hpp"
#include "io/checkpoint.hpp"

namespace rewarm {
namespace fs = std::filesystem;
namespace {

// What the file says of one run, before resolution.
struct RunSpec {
  std::string name, role;
  std::map<std::string, std::string> tags;
  std::vector<std::string> set, after;
};

std::vector<std::string> strings(const toml::node* n, const std::string& path, const std::string& key) {
  std::vector<std::string> out;
  if (!n) return out;
  const auto* a = n->as_array();
  if (!a) fail(path, key + " must be an array of strings");
  for (const auto& e : *a) {
    if (!e.is_string()) fail(path, key + " must be an array of strings");
    out.push_back(e.as_string()->get());
  }
  return out;
}

// A table of strings (tags, paths); empty when absent.
std::map<std::string, std::string> string_table(const toml::node* n, const std::string& path, const std::string& key) {
  std::map<std::string, std::string> out;
  if (!n) return out;
  if (!n->is_table()) fail(path, key + " must be a table of strings");
  for (const auto& [k, v] : *n->as_table()) {
    if (!v.is_string()) fail(path, key + "." + std::string(k.str()) + " must be a string");
    out[std::string(k.str())] = v.as_string()->get();
  }
  return out;
}

std::string string_value(const toml::table& t, const char* key, const std::string& path, const std::string& where,
                         const std::string& fallback = "") {
  const auto* n = t.get(key);
  if (!n) return fallback;
  if (!n->is_string()) fail(path, where + key + " must be a string");
  return n->as_string()->get();
}

void check_keys(const toml::table& t, const std::set<std::string>& known, const std::string& path,
                const std::string& where) {
  for (const auto& [k, v] : t) {
    const std::string key(k.str());
    if (known.count(key)) continue;
    fail(path, "unknown key " + where + key + did_you_mean(key, {known.begin(), known.end()}, where));
  }
}

RunSpec read_run(const toml::table& t, const std::string& name, const std::string& path, const std::string& where) {
  check_keys(t, {"role", "tags", "set", "after", "axes"}, path, where);
  RunSpec r;
  r.name = name;
  r.role = string_value(t, "role", path, where, "run");
  r.tags = string_table(t.get("tags"), path, where + "tags");
  r.set = strings(t.get("set"), path, where + "set");
  r.after = strings(t.get("after"), path, where + "after");
  return r;
}

// One run per combination of the grid's axis values: NAME-<axis><value>-... (NAME-<value> for a
// value that starts with a letter), axes in name order.
std::vector<RunSpec> expand_grid(const toml::table& t, const std::string& name, const std::string& path) {
  const std::string where = "grids." + name + ".";
  const RunSpec proto = read_run(t, name, path, where);
  const auto* axes = t.get("axes") ? t.get("axes")->as_table() : nullptr;
  if (!axes || axes->empty()) fail(path, where + "axes must be a table of axes (axis = { value = [overrides] })");
  std::vector<RunSpec> out{proto};
  for (const auto& [axis_key, values_node] : *axes) {
    const std::string axis(axis_key.str());
    const auto* values = values_node.as_table();
    if (!values || values->empty()) fail(path, where + "axes." + axis + " must map each value to a list of overrides");
    std::vector<RunSpec> next;
    for (const auto& r : out)
      for (const auto& [value_key, sets] : *values) {
        const std::string value(value_key.str());
        RunSpec x = r;
        x.name += "-" + (std::isalpha(static_cast<unsigned char>(value[0])) ? value : axis + value);
        x.tags[axis] = value;
        for (auto& s : strings(&sets, path, where + "axes." + axis + "." + value)) x.set.push_back(s);
        next.push_back(std::move(x));
      }
    out = std::move(next);
  }
  return out;
}

// "${name}" → the [paths] entry.
std::string substitute(std::string s, const std::map<std::string, std::string>& paths, const std::string& path,
                       const std::string& run) {
  for (std::size_t at; (at = s.find("${")) != std::string::npos;) {
    const auto end = s.find('}', at);
    if (end == std::string::npos) fail(path, "run " + run + ": unclosed ${ in \"" + s + "\"");
    const std::string key = s.substr(at + 2, end - at - 2);
    const auto it = paths.find(key);
    if (it == paths.end()) fail(path, "run " + run + ": ${" + key + "} is not in [paths]");
    s.replace(at, end - at + 1, it->second);
  }
  return s;
}

// The run an override "key=@run" refers to (its final checkpoint), or "" for any other override.
std::string run_reference(const std::string& set) {
  const auto eq = set.find('=');
  return eq != std::string::npos && set.compare(eq + 1, 1, "@") == 0 ? set.substr(eq + 2) : "";
}

std::string shell_quote(const std::string& s) {
  if (s.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.,/=:+@%") ==
      std::string::npos)
    return s;
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

}  // namespace

Study load_study(const std::string& path, const std::vector<std::string>& overrides, const std::string& budget,
                 const std::string& run_root) {
  toml::table root;
  try {
    root = toml::parse_file(path);
  } catch (const toml::parse_error& e) {
    if (!fs::exists(path)) fail(path, "cannot open study file");
    fail(path, "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  check_keys(root, {"description", "base", "run_root", "set", "upstream", "downstream", "paths", "budgets", "runs", "grids"},
             path, "");
  Study s;
  s.path = path;
  s.name = fs::path(path).stem().string();
  s.description = string_value(root, "description", path, "");
  const std::string base = string_value(root, "base", path, "");
  if (base.empty()) fail(path, "base (the run config every run starts from) is required");
  s.base = (fs::path(path).parent_path() / base).lexically_normal().string();
  s.run_root = !run_root.empty() ? run_root : string_value(root, "run_root", path, "", "runs/" + s.name);
  s.upstream = string_value(root, "upstream", path, "");
  s.downstream = string_value(root, "downstream", path, "");
  std::vector<std::string> common = strings(root.get("set"), path, "set");
  std::vector<std::string> budget_set;  // applied last: a budget holds for every run
  const auto paths = string_table(root.get("paths"), path, "paths");
  if (!budget.empty()) {
    const auto* b = root.get("budgets") ? root.get("budgets")->as_table() : nullptr;
    if (!b || !b->get(budget)) {
      std::vector<std::string> names;
      if (b)
        for (const auto& [k, v] : *b) names.emplace_back(k.str());
      fail(path, "no budget \"" + budget + "\" in [budgets]" + did_you_mean(budget, names, "", true));
    }
    for (auto& x : strings(b->get(budget), path, "budgets." + budget)) budget_set.push_back(substitute(x, paths, path, "(budget)"));
    s.budget = budget;
  }
  common.insert(common.end(), overrides.begin(), overrides.end());
  for (auto& x : common) x = substitute(x, paths, path, "(every run)");

  std::vector<RunSpec> specs;
  if (const auto* runs = root.get("runs")) {
    if (!runs->is_table()) fail(path, "runs must be a table of runs ([runs.NAME])");
    for (const auto& [k, v] : *runs->as_table()) {
      if (!v.is_table()) fail(path, "runs." + std::string(k.str()) + " must be a table");
      specs.push_back(read_run(*v.as_table(), std::string(k.str()), path, "runs." + std::string(k.str()) + "."));
    }
  }
  if (const auto* grids = root.get("grids")) {
    if (!grids->is_table()) fail(path, "grids must be a table of grids ([grids.NAME])");
    for (const auto& [k, v] : *grids->as_table()) {
      if (!v.is_table()) fail(path, "grids." + std::string(k.str()) + " must be a table");
      for (auto& r : expand_grid(*v.as_table(), std::string(k.str()), path)) specs.push_back(std::move(r));
    }
  }
  if (specs.empty()) fail(path, "defines no run ([runs.NAME] or [grids.NAME])");
  std::map<std::string, std::size_t> index;
  for (std::size_t i = 0; i < specs.size(); ++i)
    if (!index.emplace(specs[i].name, i).second) fail(path, "two runs are named " + specs[i].name);

  // Dependencies: `after`, and every "@run" value (that run's final checkpoint).
  for (auto& r : specs) {
    for (auto& x : r.set) {
      x = substitute(x, paths, path, r.name);
      if (const auto parent = run_reference(x); !parent.empty()) r.after.push_back(parent);
    }
    for (const auto& a : r.after)
      if (!index.count(a)) fail(path, "run " + r.name + " starts after \"" + a + "\", which is not a run of the study");
  }
  // Resolve in dependency order (stage = longest chain of parents), refusing cycles.
  std::vector<int> stage(specs.size(), -1), visiting(specs.size(), 0);
  std::function<int(std::size_t)> depth = [&](std::size_t i) {
    if (stage[i] >= 0) return stage[i];
    if (visiting[i]) fail(path, "runs depend on each other in a cycle through " + specs[i].name);
    visiting[i] = 1;
    int d = 0;
    for (const auto& a : specs[i].after) d = std::max(d, depth(index[a]) + 1);
    visiting[i] = 0;
    return stage[i] = d;
  };
  for (std::size_t i = 0; i < specs.size(); ++i) s.stages = std::max(s.stages, depth(i) + 1);
  std::map<std::string, std::string> final_checkpoint;
  for (int k = 0; k < s.stages; ++k)
    for (std::size_t i = 0; i < specs.size(); ++i) {
      if (stage[i] != k) continue;
      const auto& spec = specs[i];
      StudyRun r;
      r.name = spec.name, r.role = spec.role, r.tags = spec.tags, r.after = spec.after, r.stage = k;
      r.overrides = common;
      for (const auto& x : spec.set) {
        const auto parent = run_reference(x);
        r.overrides.push_back(parent.empty() ? x : x.substr(0, x.find('=') + 1) + final_checkpoint[parent]);
      }
      r.overrides.insert(r.overrides.end(), budget_set.begin(), budget_set.end());
      r.overrides.push_back("run_dir=" + (fs::path(s.run_root) / r.name).string());
      try {
        r.config = load_run_config(s.base, r.overrides);
      } catch (const Error& e) {
        fail(path, "run " + r.name + ": " + e.what());
      }
      final_checkpoint[r.name] = checkpoint_path(r.config.run_dir, r.config.total_steps());
      s.runs.push_back(std::move(r));
    }
  return s;
}

const StudyRun& Study::run(const std::string& name) const {
  std::vector<std::string> names;
  for (const auto& r : runs) {
    if (r.name == name) return r;
    names.push_back(r.name);
  }
  fail(path, "no run named " + name + did_you_mean(name, names));
}

std::vector<const StudyRun*> Study::stage(int k) const {
  std::vector<const StudyRun*> out;
  for (const auto& r : runs)
    if (r.stage == k) out.push_back(&r);
  return out;
}

std::string Study::command(const StudyRun& r) const {
  std::string c = "rewarm train " + shell_quote(base);
  for (const auto& o : r.overrides) c += " --set " + shell_quote(o);
  return c;
}

std::vector<std::string> Study::differences(const StudyRun& r) const {
  const auto plain = load_run_config(base, {});
  return config_differences(plain.to_toml(), r.config.to_toml(), {"run_dir"});
}

std::string Study::manifest_json() const {
  nlohmann::json runs_json = nlohmann::json::array();
  for (const auto& r : runs)
    runs_json.push_back({{"name", r.name},
                         {"role", r.role},
                         {"tags", r.tags},
                         {"stage", r.stage},
                         {"after", r.after},
                         {"run_dir", r.config.run_dir},
                         {"total_steps", r.config.total_steps()},
                         {"global_batch", r.config.data.global_batch},
                         {"micro_batch", r.config.data.micro_batch},
                         {"command", command(r)}});
  const nlohmann::json j = {{"format", "rewarm-study"}, {"study", name},       {"description", description},
                            {"study_file", path},       {"base", base},       {"run_root", run_root},
                            {"budget", budget},         {"upstream", upstream}, {"downstream", downstream},
                            {"stages", stages},         {"runs", runs_json}};
  return j.dump(2);
}

}  // namespace rewarm
