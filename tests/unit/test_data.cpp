// Samplers, synthetic sources and token shards.
#include <algorithm>
#include <filesystem>
#include <map>
#include <set>
#include <tuple>

#include "data/mixture.hpp"
#include "data/sampler.hpp"
#include "data/synth.hpp"
#include "data/token_shard.hpp"
#include "testing.hpp"

using namespace rewarm;

TEST_CASE("the shuffle is a bijection per epoch and differs between epochs", "[data]") {
  for (Index n : {1, 2, 3, 17, 64, 1000, 4097}) {
    WindowSampler s(n, true, 1234);
    std::set<Index> e0, e1;
    bool differs = false;
    for (Index k = 0; k < n; ++k) {
      e0.insert(s(k));
      e1.insert(s(n + k));
      differs |= s(k) != s(n + k);
    }
    CHECK(Index(e0.size()) == n);
    CHECK(Index(e1.size()) == n);
    CHECK(*e0.rbegin() == n - 1);
    if (n > 16) CHECK(differs);
  }
  WindowSampler in_order(10, false, 1);
  CHECK(in_order(13) == 3);
  CHECK(WindowSampler(100, true, 1)(5) != WindowSampler(100, true, 2)(5));
}

TEST_CASE("synthetic source has the stated entropy rate", "[data]") {
  SynthSpec s;
  s.vocab = 8;
  s.tokens = 400000;
  s.decay = 0.4;
  const auto p = synth_distribution(s);
  double h = 0;
  for (double x : p) h -= x * std::log(x);
  CHECK(synth_entropy_rate(s) == Approx(h));
  // empirical conditional entropy of token t given (t-2, t-1)
  const auto tok = synth_tokens(s);
  std::map<std::pair<int, int>, std::map<int, double>> counts;
  for (std::size_t i = 2; i < tok.size(); ++i) counts[{int(tok[i - 2]), int(tok[i - 1])}][int(tok[i])] += 1;
  double H = 0, total = double(tok.size() - 2);
  for (auto& [ctx, next] : counts) {
    double n = 0;
    for (auto& [t, c] : next) n += c;
    for (auto& [t, c] : next) H -= c / total * std::log(c / n);
  }
  CHECK(H == Approx(h).epsilon(0.02));
}

TEST_CASE("token shards give windows of seq_len + 1 and reject ids >= vocab", "[data]") {
  const auto path = (std::filesystem::temp_directory_path() / "rewarm_test_shard.h5").string();
  std::vector<std::uint32_t> tok(101);
  for (std::size_t i = 0; i < tok.size(); ++i) tok[i] = std::uint32_t(i % 50);
  tok[77] = 70;
  write_token_shard(path, tok, 64, 0, "test", "unit test");
  TokenShard s(path);
  CHECK(s.num_tokens() == 101);
  CHECK(s.num_windows(10) == 10);
  std::vector<std::int32_t> w(11);
  s.read_window(2, 10, 64, w.data());
  CHECK(w.front() == 20);
  CHECK(w.back() == 30);
  CHECK_THROWS_WITH(s.read_window(7, 10, 64, w.data()),
                    Catch::Contains("token id 70 at position 77 is >= vocab_size 64") && Catch::Contains(path));
  CHECK_THROWS_WITH(TokenShard("/nonexistent.h5"), Catch::Contains("/nonexistent.h5: cannot open"));
  // in-order reading goes through the read-ahead block; jumps read the window alone: same tokens
  std::vector<std::uint32_t> seq(300007);
  for (std::size_t i = 0; i < seq.size(); ++i) seq[i] = std::uint32_t((i * 7919) % 70000);
  write_token_shard(path, seq, 70000, 0, "test", "unit test");  // uint32 on disk
  TokenShard big(path);
  std::vector<std::int32_t> win(2050);
  for (Index k : {0, 1, 2, 3, 100, 7, 8, 144, 145, 0}) {
    big.read_window(k, 2049, 70000, win.data());
    for (Index i = 0; i <= 2049; ++i) REQUIRE(win[i] == std::int32_t(seq[k * 2049 + i]));
  }
}

TEST_CASE("mixtures follow their weights in every prefix and resume from counts", "[data]") {
  const auto dir = std::filesystem::temp_directory_path();
  std::vector<std::uint32_t> up(161), down(321);
  for (std::size_t i = 0; i < up.size(); ++i) up[i] = 1;  // set 0 holds only token 1, set 1 only token 2
  for (std::size_t i = 0; i < down.size(); ++i) down[i] = 2;
  write_token_shard((dir / "rewarm_mix_up.h5").string(), up, 4, 0, "test", "unit test");
  write_token_shard((dir / "rewarm_mix_down.h5").string(), down, 4, 0, "test", "unit test");
  const std::vector<DataSet> sets{{"down", (dir / "rewarm_mix_down.h5").string(), 0.9, 0},
                                  {"up", (dir / "rewarm_mix_up.h5").string(), 0.1, 0}};
  Mixture a(sets, 16, true, 7, 4);
  std::vector<std::int32_t> w(17);
  std::vector<std::size_t> order;
  for (int k = 0; k < 200; ++k) {
    order.push_back(a.next_set());
    a.next(w.data());
    CHECK(w[0] == (order.back() == 0 ? 2 : 1));  // the window came from the chosen set
    CHECK(std::abs(double(a.counts()[1]) - 0.1 * (k + 1)) < 1.0);
  }
  CHECK(a.counts() == std::vector<Index>{180, 20});
  Mixture b(sets, 16, true, 7, 4);  // a resumed stream continues identically
  b.set_counts({90, 10});
  for (int k = 100; k < 200; ++k) {
    CHECK(b.next_set() == order[k]);
    b.next(w.data());
  }
  CHECK_THROWS_WITH(b.set_counts({1}), Catch::Contains("covers 1 training sets, the config has 2"));
}

TEST_CASE("new replay weights over carried counts: every set continues its own window order", "[data]") {
  // init.load = "full" with changed [[data.train]] weights (Megatron-LM's issue 457: a blend
  // changed on resume repeated and skipped samples): each set's c-th sample is still its
  // sampler's c-th window, so across the change no set repeats or skips one; and the new
  // weights hold in every prefix of the continuation (the trainer sets the origin there).
  const auto dir = std::filesystem::temp_directory_path();
  std::vector<DataSet> sets;
  for (int i = 0; i < 3; ++i) {
    const auto path = (dir / ("rewarm_reweigh_" + std::to_string(i) + ".h5")).string();
    write_token_shard(path, std::vector<std::uint32_t>(std::size_t(16 * (20 + 7 * i) + 1), std::uint32_t(i)), 4, 0,
                      "test", "unit test");
    sets.push_back({"s" + std::to_string(i), path, std::vector<double>{0.5, 0.3, 0.2}[std::size_t(i)], 0});
  }
  auto per_set = [](std::vector<std::vector<Index>>& into, Mixture& m, int n) {
    for (int k = 0; k < n; ++k) {
      const auto d = m.draw();
      into[d.set].push_back(d.window);
    }
  };
  std::vector<std::vector<Index>> reference(3), changed(3);
  Mixture ref(sets, 16, true, 11, 4);
  per_set(reference, ref, 2000);  // each set's own window order, far enough
  Mixture before(sets, 16, true, 11, 4);
  per_set(changed, before, 100);
  auto reweighed = sets;
  reweighed[1].weight = 0.1, reweighed[2].weight = 0.4;  // set 0's weight stays
  Mixture after(reweighed, 16, true, 11, 4);
  after.set_counts(before.counts(), before.counts());  // as the trainer does: the new weights apply from here
  per_set(changed, after, 300);
  for (std::size_t i = 0; i < 3; ++i)  // in the continuation, not caught up over the whole stream
    CHECK(std::abs(double(after.counts()[i] - before.counts()[i]) - 300 * reweighed[i].weight) < 1.0);
  for (std::size_t i = 0; i < 3; ++i) {
    INFO("set " << i);
    REQUIRE(changed[i].size() <= reference[i].size());
    CHECK(std::equal(changed[i].begin(), changed[i].end(), reference[i].begin()));
  }
}

TEST_CASE("a synthetic domain mixture: documents by weight, each in its domain's alphabet, the stated rate", "[data]") {
  SynthSpec s;
  s.vocab = 8, s.private_tokens = 2, s.decay = 0.5, s.share = 0.65, s.shared_seed = 7;
  s.weights = {0.5, 0.1, 0.4, 0.0};
  s.doc_length = 64;
  s.tokens = 600000;
  const Index S = 6, V = synth_vocab(s), eot = V - 1;
  REQUIRE(V == S + 4 * 2 + 1);
  const double q = 1 / s.doc_length, h = [&] {
    double e = 0;
    for (double x : synth_distribution(s)) e -= x * std::log(x);
    return e;
  }();
  CHECK(synth_entropy_rate(s) == Approx(-q * std::log(q) - (1 - q) * std::log(1 - q) + (1 - q) * h));
  const auto tok = synth_tokens(s);
  // documents: the tokens between two EOTs; each uses one domain's private tokens only
  std::vector<double> docs(4, 0);
  double ndocs = 0, in_docs = 0;
  std::map<std::tuple<int, int, int>, std::map<int, double>> next;  // (domain, a, b) -> next-token counts
  std::vector<std::uint32_t> doc;
  const auto end_doc = [&] {
    int domain = -1;
    for (auto t : doc)
      if (Index(t) >= S) {
        const int d = int((Index(t) - S) / 2);
        if (domain >= 0) REQUIRE(d == domain);  // one domain per document
        domain = d;
      }
    if (domain >= 0 && doc.size() >= 2) {
      docs[std::size_t(domain)] += 1, ndocs += 1;
      for (std::size_t i = 0; i < doc.size(); ++i) {
        const int a = i >= 2 ? int(doc[i - 2]) : int(eot), b = i >= 1 ? int(doc[i - 1]) : int(eot);
        next[{domain, a, b}][int(doc[i])] += 1;
        in_docs += 1;
      }
    }
    doc.clear();
  };
  for (auto t : tok) {
    REQUIRE(Index(t) < V);
    if (Index(t) == eot) end_doc();
    else doc.push_back(t);
  }
  CHECK(docs[3] == 0);  // a domain of weight 0 never appears
  for (int d : {0, 1, 2}) CHECK(docs[std::size_t(d)] / ndocs == Approx(s.weights[std::size_t(d)]).margin(0.04));
  CHECK(double(tok.size()) / (ndocs + 1) == Approx(s.doc_length).epsilon(0.1));  // geometric lengths, mean L
  double H = 0;  // conditional entropy given the domain and the two tokens before
  for (auto& [ctx, counts] : next) {
    double n = 0;
    for (auto& [t, c] : counts) n += c;
    for (auto& [t, c] : counts) H -= c / in_docs * std::log(c / n);
  }
  CHECK(H == Approx(h).epsilon(0.02));
  // a context of common tokens is the same in every domain (its private slots renamed) with
  // probability `share`; a context holding a domain's own token is that domain's alone
  int same = 0, common = 0;
  const auto slots = [&](std::vector<std::uint32_t> v) {
    for (auto& t : v) t = Index(t) >= S ? std::uint32_t(S + (Index(t) - S) % 2) : t;
    return v;
  };
  for (Index a = 0; a < V; ++a)
    for (Index b = 0; b < V; ++b) {
      const bool is_common = (a < S || a == eot) && (b < S || b == eot);
      if (!is_common) continue;
      ++common;
      same += slots(synth_domain_permutation(s, 0, a, b)) == slots(synth_domain_permutation(s, 2, a, b));
    }
  CHECK(std::abs(double(same) / common - s.share) < 0.15);  // 49 contexts: sd ≈ 0.07
  auto own = synth_domain_permutation(s, 2, S + 4, 0);  // a context holding domain 2's first token
  CHECK(slots(own) != slots(synth_domain_permutation(s, 0, S, 0)));
  std::sort(own.begin(), own.end());
  CHECK(own == std::vector<std::uint32_t>{0, 1, 2, 3, 4, 5, 10, 11});  // its alphabet: common tokens, its own two
}

TEST_CASE("related synthetic corpora share the chosen fraction of contexts", "[data]") {
  SynthSpec up, down;
  up.vocab = down.vocab = 16;
  up.seed = 1, down.seed = 2;
  up.shared_seed = down.shared_seed = 77;
  for (double share : {0.0, 0.3, 1.0}) {
    up.share = down.share = share;
    int same = 0;
    for (Index a = 0; a < 16; ++a)
      for (Index b = 0; b < 16; ++b) same += synth_permutation(up, a, b) == synth_permutation(down, a, b);
    INFO("share " << share);
    CHECK(std::abs(same / 256.0 - share) < 0.1);  // binomial: sd ≈ 0.03
    if (share == 0.0) CHECK(same == 0);
    if (share == 1.0) CHECK(same == 256);
  }
  // sharing leaves every context a permutation of p: the entropy rate is unchanged
  up.share = 0.5;
  auto q = synth_permutation(up, 3, 4);
  std::sort(q.begin(), q.end());
  for (std::uint32_t i = 0; i < 16; ++i) CHECK(q[i] == i);
}
