#include "app/run_config.hpp"

#include <toml++/toml.h>

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "core/error.hpp"

namespace rewarm {
namespace {

template <class X>
struct is_optional : std::false_type {};
template <class X>
struct is_optional<std::optional<X>> : std::true_type {};
template <class X>
struct is_vector : std::false_type {};
template <class X>
struct is_vector<std::vector<X>> : std::true_type {};

// A key's value into a TOML table, by its type (the parser's Section::get reads it back).
template <class X>
void insert(toml::table& t, const std::string& key, const X& v) {
  if constexpr (is_optional<X>::value) {
    if (v) insert(t, key, *v);
  } else if constexpr (std::is_same_v<X, NumberPair<const double>>) {
    t.insert(key, toml::array{v.first, v.second});
  } else if constexpr (is_vector<X>::value) {
    toml::array a;
    for (const auto& item : v) {
      toml::table entry;
      item.for_each_field(key, [&](const char* k, const auto& field) { insert(entry, k, field); });
      a.push_back(entry);
    }
    t.insert(key, a);
  } else if constexpr (is_option<X>::value) {
    t.insert(key, option_name(v));
  } else if constexpr (std::is_same_v<X, std::uint64_t>) {
    t.insert(key, std::int64_t(v));
  } else {
    t.insert(key, v);
  }
}

// Reads the keys of one table; every key asked for is known, any other key is an error.
class Section {
 public:
  // `record`, if given, collects the name of every key this section accepts (for the docs test).
  Section(const toml::table* t, std::string prefix, const std::string& source, std::vector<std::string>* record)
      : t_(t), prefix_(std::move(prefix)), source_(source), record_(record) {}

  template <class X>
  bool get(const std::string& key, X& out) {
    known_.push_back(key);
    if (record_ && !is_vector<X>::value) record_->push_back(generic_name(prefix_ + key));  // an array: its keys
    if (!t_) return false;
    const toml::node* n = t_->get(key);
    if (!n) return false;
    const std::string full = prefix_ + key;
    if constexpr (is_optional<X>::value) {
      typename X::value_type v{};
      get(key, v);
      out = v;
    } else if constexpr (std::is_same_v<X, NumberPair<double>>) {
      const auto* a = n->as_array();
      if (!a || a->size() != 2 || !(*a)[0].is_number() || !(*a)[1].is_number())
        fail(where(*n, full), full + " must be an array of two numbers");
      auto number = [](const toml::node& x) { return x.is_integer() ? double(x.as_integer()->get()) : x.as_floating_point()->get(); };
      out.first = number((*a)[0]);
      out.second = number((*a)[1]);
    } else if constexpr (is_vector<X>::value) {  // [[data.train]]: an array of tables, each read by its fields
      const auto* a = n->as_array();
      if (!a) fail(where(*n, full), full + " must be an array of tables ([[" + full + "]])");
      out.clear();
      for (std::size_t i = 0; i < a->size(); ++i) {
        const std::string element = full + "[" + std::to_string(i) + "]";
        const auto* t = a->get(i)->as_table();
        if (!t) fail(where(*a->get(i), element), element + " must be a table");
        Section s(t, element + ".", source_, record_);
        typename X::value_type item;
        item.name = key + std::to_string(i);
        item.for_each_field(key, [&](const char* k, auto& field) { s.get(k, field); });
        if (!t->contains("path")) fail(source_, element + ".path is required");
        s.finish();
        out.push_back(item);
      }
    } else if constexpr (is_option<X>::value) {  // a fixed set of names, parsed into its enum here, once
      if (!n->is_string()) type_error(full, "a string", *n);
      out = parse_option<X>(n->as_string()->get(), full, source_);
    } else if constexpr (std::is_same_v<X, bool>) {
      if (!n->is_boolean()) type_error(full, "a boolean", *n);
      out = n->as_boolean()->get();
    } else if constexpr (std::is_integral_v<X>) {
      if (!n->is_integer()) type_error(full, "an integer", *n);
      const auto v = n->as_integer()->get();
      if (v < 0) fail(where(*n, full), full + " = " + std::to_string(v) + " must not be negative");
      out = X(v);
    } else if constexpr (std::is_floating_point_v<X>) {
      if (!n->is_number()) type_error(full, "a number", *n);
      out = n->is_integer() ? X(n->as_integer()->get()) : X(n->as_floating_point()->get());
    } else {
      if (!n->is_string()) type_error(full, "a string", *n);
      out = n->as_string()->get();
    }
    return true;
  }
  void finish() const {
    if (!t_) return;
    for (const auto& [k, v] : *t_) {
      const std::string key(k.str());
      if (std::find(known_.begin(), known_.end(), key) != known_.end()) continue;
      fail(where(v, prefix_ + key), "unknown key " + prefix_ + key + did_you_mean(key, known_, prefix_));
    }
  }
  std::string where_of(const std::string& key) const { return where(*t_->get(key), prefix_ + key); }
  void expect(const std::vector<std::string>& tables) { known_.insert(known_.end(), tables.begin(), tables.end()); }

 private:
  [[noreturn]] void type_error(const std::string& key, const char* want, const toml::node& n) const {
    std::ostringstream got;
    got << n.type();
    const std::string type = got.str();
    const bool vowel = !type.empty() && std::string("aeiou").find(type[0]) != std::string::npos;
    fail(where(n, key), key + " must be " + want + ", not " + (vowel ? "an " : "a ") + type);
  }
  // Where a value came from, for its error: "run.toml:12", or "--set KEY" for an override.
  std::string where(const toml::node& n, const std::string& key) const {
    const auto& src = n.source();
    if (!src.path || *src.path != source_) return "--set " + key;  // overrides carry no source file
    return source_ + ":" + std::to_string(src.begin.line);
  }
  static std::string generic_name(std::string k) {  // data.train[2].path -> data.train.path
    const auto a = k.find('['), b = k.find(']');
    return a == std::string::npos ? k : k.substr(0, a) + k.substr(b + 1);
  }
  const toml::table* t_;
  std::string prefix_;
  const std::string& source_;
  std::vector<std::string>* record_;
  std::vector<std::string> known_;
};

// "a.b.c=value": value is TOML if it parses as such (3e-4, true, "x", [0.9, 0.95]), else a string.
// "a.b.c=" (no value) removes the key, so that its default holds, or "data.train.1=" the element.
void apply_override(toml::table& root, const std::string& spec, const std::string& source) {
  const auto eq = spec.find('=');
  if (eq == std::string::npos || eq == 0) fail(source, "--set " + spec + ": expected key=value");
  const std::string key = spec.substr(0, eq), text = spec.substr(eq + 1);
  auto index_of = [&](const std::string& part, const toml::array& a) {
    const std::size_t idx = std::strtoul(part.c_str(), nullptr, 10);
    if (part.empty() || part.find_first_not_of("0123456789") != std::string::npos || idx >= a.size())
      fail(source, "--set " + key + ": no element " + part + " (the array has " + std::to_string(a.size()) + ")");
    return idx;
  };
  toml::table parsed;
  try {
    parsed = toml::parse("v = " + text);
  } catch (const toml::parse_error&) {
    parsed.insert_or_assign("v", text);
  }
  std::vector<std::string> parts;
  std::stringstream ss(key);
  for (std::string p; std::getline(ss, p, '.');) parts.push_back(p);
  toml::node* cur = &root;
  for (std::size_t i = 0; i + 1 < parts.size(); ++i) {
    if (auto* t = cur->as_table()) {
      if (!t->contains(parts[i])) t->insert(parts[i], toml::table{});
      cur = t->get(parts[i]);
    } else if (auto* a = cur->as_array()) {  // data.train.0.path
      cur = a->get(index_of(parts[i], *a));
    } else {
      fail(source, "--set " + key + ": " + parts[i] + " is not a table");
    }
  }
  if (text.empty()) {  // removal
    if (auto* a = cur->as_array()) {
      a->erase(a->begin() + std::ptrdiff_t(index_of(parts.back(), *a)));
    } else if (auto* t = cur->as_table(); t && t->contains(parts.back())) {
      t->erase(parts.back());
    } else {
      fail(source, "--set " + key + "=: nothing to remove (the config has no " + key + ")");
    }
    return;
  }
  auto* t = cur->as_table();
  if (!t) fail(source, "--set " + key + ": parent is not a table");
  t->insert_or_assign(parts.back(), *parsed.get("v"));
}

// The parser behind parse_run_config; `record` collects every accepted key. `written` (a config a
// person wrote, not one rewarm resolved, which holds every key): a key that has no effect is an error.
RunConfig parse(const std::string& text, const std::string& source, const std::vector<std::string>& overrides,
                std::vector<std::string>* record, bool written = false) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    fail(source, "line " + std::to_string(e.source().begin.line) + ": " + std::string(e.description()));
  }
  for (const auto& o : overrides) apply_override(root, o, source);

  RunConfig c;
  c.source = source;
  auto table = [&](const char* name) -> const toml::table* {
    const toml::node* n = root.get(name);
    if (n && !n->is_table()) fail(source, std::string(name) + " must be a table ([" + name + "])");
    return n ? n->as_table() : nullptr;
  };
  const char* tables[] = {"model", "init", "data", "optimizer", "schedule", "parallel", "precision", "memory", "train"};
  Section top(&root, "", source, record);
  top.expect(std::vector<std::string>(std::begin(tables), std::end(tables)));
  std::map<std::string, Section> sections;  // every table's keys, by table
  sections.emplace("", std::move(top));
  for (const char* name : tables)
    if (std::string(name) != "model") sections.emplace(name, Section(table(name), name + std::string("."), source, record));
  c.schedule.total_steps = c.schedule.warmup_steps = -1;  // not given (a negative value is refused when read)
  c.for_each_key([&](const char* t, const char* key, auto& field) { sections.at(t).get(key, field); });

  const toml::table* mt = table("model");
  c.model_given = mt != nullptr;
  Section m(mt, "model.", source, record);
  std::string preset;
  if (m.get("preset", preset) && preset != "none") c.model = ModelConfig::preset(preset, source);
  c.model.for_each_field([&](const char* key, auto& field) { m.get(key, field); });
  m.finish();
  for (const auto& [name, section] : sections) section.finish();

  if (c.init.from == "random" && c.init.load == InitLoad::full)
    fail(source, "init.load = \"full\" needs init.from = a checkpoint");
  if (c.data.train.empty()) fail(source, "at least one [[data.train]] set is required");
  for (std::size_t i = 0; i < c.data.train.size(); ++i)
    if (c.data.train[i].weight <= 0) fail(source, "data.train[" + std::to_string(i) + "].weight must be positive");
  if (c.data.seq_len < 1 || c.data.micro_batch < 1 || c.data.global_batch < 1)
    fail(source, "data.seq_len, data.micro_batch and data.global_batch must be at least 1");
  if (c.data.global_batch % c.data.micro_batch != 0)
    fail(source, "data.global_batch = " + std::to_string(c.data.global_batch) +
                     " is not a multiple of data.micro_batch = " + std::to_string(c.data.micro_batch));
  if (!(c.optimizer.beta1 >= 0 && c.optimizer.beta1 < 1 && c.optimizer.beta2 >= 0 && c.optimizer.beta2 < 1))
    fail(source, "optimizer.betas must lie in [0, 1)");
  if (c.optimizer.lr < 0 || c.optimizer.min_lr < 0)
    fail(source, "optimizer.lr and optimizer.min_lr must be non-negative");
  if (written) {  // the shape parameters of one kind of schedule, given with another
    const std::vector<std::string> infinite{"infinite_cosine", "infinite_inv_sqrt", "infinite_linear"};
    const std::vector<std::pair<std::string, std::vector<std::string>>> read_by{{"const_lr", infinite},
                                                                                {"cooldown", infinite},
                                                                                {"constant", infinite},
                                                                                {"timescale", {"infinite_inv_sqrt"}},
                                                                                {"decay", {"wsd"}},
                                                                                {"decay_steps", {"wsd"}}};
    const auto* st = table("schedule");
    if (st && st->contains("decay") && st->contains("decay_steps"))
      fail(sections.at("schedule").where_of("decay_steps"), "set schedule.decay or schedule.decay_steps, not both");
    for (const auto& [key, kinds] : read_by)
      if (st && st->contains(key) && std::find(kinds.begin(), kinds.end(), c.schedule.kind) == kinds.end())
        fail(sections.at("schedule").where_of(key), "schedule." + key + " is read only by kind = " + join(kinds, " or ") + ", not by \"" +
                                  c.schedule.kind + "\": remove it, or choose such a kind");
  }
  auto& as_given = c.schedule_as_given;  // the length and the warmup, each in one of two forms
  Index& total_steps = c.schedule.total_steps;
  if (total_steps >= 0 && as_given.total_tokens)
    fail(source, "set schedule.total_steps or schedule.total_tokens, not both");
  if (as_given.total_tokens) total_steps = Index(std::ceil(*as_given.total_tokens / double(c.tokens_per_step())));
  if (total_steps < 0) fail(source, "schedule.total_steps (or schedule.total_tokens) is required");
  if (as_given.warmup && c.schedule.warmup_steps >= 0)
    fail(source, "set schedule.warmup or schedule.warmup_steps, not both");
  if (as_given.warmup && *as_given.warmup > 1)
    fail(source, "schedule.warmup = " + std::to_string(*as_given.warmup) +
                     " is a fraction of total_steps and must be <= 1");
  if (as_given.warmup) c.schedule.warmup_steps = Index(std::llround(*as_given.warmup * total_steps));
  if (c.schedule.warmup_steps < 0) c.schedule.warmup_steps = 0;
  as_given = {};
  c.schedule.validate(source);
  if (c.parallel.zero < 0 || c.parallel.zero > 3)
    fail(source, "parallel.zero = " + std::to_string(c.parallel.zero) + " must be 0, 1, 2 or 3");
  if (c.parallel.zero >= 2 && c.parallel.reduce == GradientReduce::fp32)  // its sums over ranks are per micro-batch: in double
    fail(source, "parallel.reduce = \"fp32\" is for zero = 0 or 1: zero = " + std::to_string(c.parallel.zero) +
                     " sums each micro-batch's gradients over the ranks in double");
  if (c.train.log_interval < 1) fail(source, "train.log_interval must be at least 1");
  if (c.model_given) {
    c.model.validate(source);
    c.validate_model();
  }
  return c;
}

}  // namespace

RunConfig parse_run_config(const std::string& text, const std::string& source,
                           const std::vector<std::string>& overrides) {
  return parse(text, source, overrides, nullptr);
}

std::vector<std::string> run_config_keys() {
  std::vector<std::string> keys;
  parse("[[data.train]]\npath = \"x\"\n[[data.eval]]\npath = \"x\"\n[[data.tasks]]\npath = \"x\"\n[schedule]\ntotal_steps = 1\n", "keys", {},
        &keys);
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

const std::vector<std::string>& resume_may_change() {
  static const std::vector<std::string> keys{"run_dir", "parallel",
                                             // fused or GEMM attention: the same function within
                                             // bf16 rounding; a run may resume where cuDNN is not
                                             "precision.attention",
                                             // recomputed activations are bitwise the stored ones
                                             "memory", "data.micro_batch", "data.eval", "data.tasks", "train.eval_interval",
                                             "train.eval_at_start", "train.log_interval", "train.checkpoint_interval",
                                             "train.keep_checkpoints"};
  return keys;
}

// A TOML value as a user reads it: "text", 0.0006, [0.9, 0.95].
static std::string value_text(const toml::node& n) {
  if (const auto* s = n.as_string()) return "\"" + s->get() + "\"";
  if (const auto* f = n.as_floating_point()) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.9g", f->get());
    return buf;
  }
  if (const auto* a = n.as_array()) {
    std::string out = "[";
    for (std::size_t i = 0; i < a->size(); ++i) out += (i ? ", " : "") + value_text(*a->get(i));
    return out + "]";
  }
  std::ostringstream ss;  // integers, booleans
  n.visit([&](const auto& v) { ss << v; });
  return ss.str();
}

// Every leaf of a TOML document as "a.b[2].c" -> value text.
static void flatten(const toml::node& n, const std::string& key, std::map<std::string, std::string>& out) {
  if (const auto* t = n.as_table()) {
    for (const auto& [k, v] : *t)
      flatten(v, key.empty() ? std::string(k.str()) : key + "." + std::string(k.str()), out);
  } else if (const auto* a = n.as_array(); a && a->is_array_of_tables()) {
    for (std::size_t i = 0; i < a->size(); ++i) flatten(*a->get(i), key + "[" + std::to_string(i) + "]", out);
  } else {
    out[key] = value_text(n);
  }
}

std::vector<std::string> changes_refused_on_resume(const std::string& stored, const std::string& now) {
  return config_differences(stored, now, resume_may_change());
}

std::vector<std::string> config_differences(const std::string& stored, const std::string& now,
                                            const std::vector<std::string>& ignore) {
  std::map<std::string, std::string> a, b;
  try {
    flatten(toml::parse(stored), "", a);
    flatten(toml::parse(now), "", b);
  } catch (const toml::parse_error& e) {
    throw Error(std::string("a stored run config is not TOML: ") + std::string(e.description()));
  }
  auto may_change = [&](const std::string& key) {
    for (const auto& p : ignore)
      if (key == p || key.rfind(p + ".", 0) == 0 || key.rfind(p + "[", 0) == 0) return true;
    return false;
  };
  std::set<std::string> keys;
  for (const auto& kv : a) keys.insert(kv.first);
  for (const auto& kv : b) keys.insert(kv.first);
  std::vector<std::string> out;
  for (const auto& k : keys) {
    const std::string x = a.count(k) ? a[k] : "(none)", y = b.count(k) ? b[k] : "(none)";
    if (x != y && !may_change(k)) out.push_back(k + ": " + x + " -> " + y);
  }
  return out;
}

void RunConfig::validate_model() const {
  if (data.seq_len > model.max_position_embeddings)
    fail(source, "data.seq_len = " + std::to_string(data.seq_len) +
                     " exceeds model.max_position_embeddings = " + std::to_string(model.max_position_embeddings));
}

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  std::ifstream f(path);
  if (!f) fail(path, "cannot open run config");
  std::stringstream ss;
  ss << f.rdbuf();
  return parse(ss.str(), path, overrides, nullptr, true);
}

std::string RunConfig::to_toml() const {
  toml::table root;
  for_each_key([&](const char* t, const char* key, const auto& v) {
    if (*t && !root.contains(t)) root.insert(t, toml::table{});
    insert(*t ? *root.get(t)->as_table() : root, key, v);
  });
  toml::table model_table;
  model.for_each_field([&](const char* key, const auto& v) { model_table.insert(key, v); });
  root.insert("model", model_table);
  std::ostringstream ss;
  ss << root;
  return ss.str();
}

}  // namespace rewarm
