#include "metadistill/search/tpe.h"

#include <gtest/gtest.h>

#include "search/golden.h"

#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

using namespace metadistill;

namespace {

const nlohmann::json& golden() { return metadistill::testing::tpe_golden(); }
using metadistill::testing::Diff;

// A number of the golden file, where infinities are written "inf" and "-inf".
double num(const nlohmann::json& j) {
  if (j.is_string()) return j.get<std::string>() == "-inf" ? -INFINITY : INFINITY;
  return j.get<double>();
}

std::vector<double> doubles(const nlohmann::json& j) { return j.get<std::vector<double>>(); }

}  // namespace

TEST(TpeMath, GoodCountFollowsBothRules) {
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 0), 0);
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 1), 1);
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 16), 1);  // ⌈0.25·4⌉
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 17), 2);
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 100), 3);
  EXPECT_EQ(good_count(GammaRule::kHyperopt, 1000000), 25);
  EXPECT_EQ(good_count(GammaRule::kOptuna, 1), 1);
  EXPECT_EQ(good_count(GammaRule::kOptuna, 10), 1);
  EXPECT_EQ(good_count(GammaRule::kOptuna, 11), 2);
  EXPECT_EQ(good_count(GammaRule::kOptuna, 30), 3);
  EXPECT_EQ(good_count(GammaRule::kOptuna, 1000), 25);
}

TEST(TpeMath, ForgettingWeightsRampPastTwentyFive) {
  EXPECT_TRUE(forgetting_weights(0).empty());
  EXPECT_EQ(forgetting_weights(24), std::vector<double>(24, 1.0));
  EXPECT_EQ(forgetting_weights(25), std::vector<double>(25, 1.0));
  const auto w = forgetting_weights(30);  // a ramp 1/30 .. 1 over the 5 oldest, then 25 ones
  ASSERT_EQ(w.size(), 30u);
  EXPECT_DOUBLE_EQ(w[0], 1.0 / 30);
  EXPECT_DOUBLE_EQ(w[2], 1.0 / 30 + 2 * (1 - 1.0 / 30) / 4);
  EXPECT_EQ(w[4], 1.0);
  for (int i = 5; i < 30; ++i) EXPECT_EQ(w[i], 1.0);
}

TEST(TpeMath, TruncatedNormalAgainstClosedForms) {
  using namespace truncnorm;
  // Mass of [−1, 1] is erf(1/√2); of [a, ∞) far in the tail, log Φ(−a) ≈ −a²/2 − log(a√(2π)).
  EXPECT_NEAR(log_gauss_mass(-1, 1), std::log(std::erf(1 / std::sqrt(2.0))), 1e-15);
  EXPECT_NEAR(log_ndtr(-30),
              -450 - std::log(30 * std::sqrt(2 * M_PI)) + std::log1p(-1.0 / 900 + 3.0 / 810000),
              1e-7);
  EXPECT_NEAR(log_gauss_mass(25, 30), log_ndtr(-25), 1e-9);
  // The quantile inverts the truncated CDF, including both tails.
  for (auto [a, b] : std::vector<std::pair<double, double>>{
           {-1, 1}, {-30, -25}, {25, 30}, {-0.5, 40}, {0.2, 0.9}})
    for (double q : {0.001, 0.25, 0.5, 0.75, 0.999}) {
      const double x = ppf(q, a, b);
      EXPECT_GE(x, a);
      EXPECT_LE(x, b);
      const double cdf = std::exp(log_gauss_mass(a, x) - log_gauss_mass(a, b));
      EXPECT_NEAR(cdf, q, 1e-9) << "a " << a << " b " << b << " q " << q;
    }
  EXPECT_EQ(ppf(0.0, -1, 2), -1);
  // The normalized density integrates to 1 over its support; Optuna 3.1's lacks the 1/σ.
  const double loc = 0.3, scale = 0.05, lo = 0.0, hi = 1.0;
  double sum = 0, sum31 = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) {
    const double x = lo + (i + 0.5) * (hi - lo) / n;
    sum += std::exp(log_pdf(x, (lo - loc) / scale, (hi - loc) / scale, loc, scale)) * (hi - lo) / n;
    sum31 += std::exp(log_pdf(x, (lo - loc) / scale, (hi - loc) / scale, loc, scale, false)) *
             (hi - lo) / n;
  }
  EXPECT_NEAR(sum, 1.0, 1e-6);
  EXPECT_NEAR(sum31, scale, 1e-6);
  EXPECT_EQ(log_pdf(1.5, (lo - loc) / scale, (hi - loc) / scale, loc, scale), -INFINITY);
}

TEST(TpeMath, ParzenEstimatorByHand) {
  // Observations 0.2 and 0.8 on [0, 1] plus the prior at 0.5: every neighbour gap is 0.3, above
  // the clip 1/min(100, 2 + 2) = 0.25; the prior spans the range; weights 1/3 each.
  ParzenEstimator e({0.2, 0.8}, 0.0, 1.0, TpeOptions());
  EXPECT_EQ(e.mus(), (std::vector<double>{0.2, 0.8, 0.5}));
  for (double w : e.weights()) EXPECT_DOUBLE_EQ(w, 1.0 / 3);
  EXPECT_NEAR(e.sigmas()[0], 0.3, 1e-15);
  EXPECT_NEAR(e.sigmas()[1], 0.3, 1e-15);
  EXPECT_EQ(e.sigmas()[2], 1.0);
  // Close observations get the clipped width; the outermost ones use their inner gap only.
  ParzenEstimator c({0.50, 0.51, 0.52}, 0.0, 1.0, TpeOptions());
  EXPECT_NEAR(c.sigmas()[0], 1.0 / 5, 1e-15);  // clip: 1/min(100, 3 + 2)
  // No observation: the prior alone, weight 1.
  ParzenEstimator p({}, -2.0, 3.0, TpeOptions());
  EXPECT_EQ(p.weights(), std::vector<double>{1.0});
  EXPECT_EQ(p.mus(), std::vector<double>{0.5});
  EXPECT_EQ(p.sigmas(), std::vector<double>{5.0});
  // A normalized mixture integrates to 1 over the range.
  double sum = 0;
  const int n = 20000;
  for (int i = 0; i < n; ++i) sum += std::exp(c.log_pdf((i + 0.5) / n)) / n;
  EXPECT_NEAR(sum, 1.0, 1e-6);
  // Draws stay in the range, and the same generator seed gives the same draws.
  SamplerRandom r1(3), r2(3);
  const auto d1 = c.sample(r1, 200), d2 = c.sample(r2, 200);
  EXPECT_EQ(d1, d2);
  for (double x : d1) {
    EXPECT_GE(x, 0.0);
    EXPECT_LE(x, 1.0);
  }
}

TEST(TpeMath, TheChoiceMaximizesTheDensityRatio) {
  // Good trials near 0.2, bad ones near 0.8: the chosen value lies on the good side, and it is
  // the candidate with the largest log l − log g.
  TpeOptions o;
  ParzenEstimator l({0.18, 0.2, 0.22}, 0.0, 1.0, o), g({0.7, 0.75, 0.8, 0.85, 0.9}, 0.0, 1.0, o);
  ParamSpec spec{"x", 0.0, 1.0, false};
  SamplerRandom rng(11), replay(11);
  const double x = TpeSampler::choose(l, g, 24, spec, rng);
  const auto candidates = l.sample(replay, 24);
  double best = -INFINITY;
  for (double c : candidates) best = std::max(best, l.log_pdf(c) - g.log_pdf(c));
  EXPECT_DOUBLE_EQ(l.log_pdf(x) - g.log_pdf(x), best);
  EXPECT_LT(x, 0.5);
}

TEST(TpeMath, SplitRanksCompleteBeforePrunedAndKeepsChronology) {
  const double inf = INFINITY;
  std::vector<TpeScore> s = {{-inf, 0.5}, {-3, 0.1}, {-inf, 0.2}, {1, 0}, {-inf, -1.0}};
  auto [good, bad] = split_good_bad(s, 2);
  EXPECT_EQ(good, (std::vector<size_t>{2, 4}));
  EXPECT_EQ(bad, (std::vector<size_t>{0, 1, 3}));
  // Maximizing flips the sign; pruned trials rank by their last step, then value.
  std::vector<FrozenTrial> trials(3);
  trials[0].state = TrialState::kComplete, trials[0].value = 0.9;
  trials[1].state = TrialState::kPruned, trials[1].intermediate = {{1, 0.5}, {4, 0.95}};
  trials[2].state = TrialState::kFailed;
  const auto scores = tpe_scores(trials, Direction::kMaximize);
  ASSERT_EQ(scores.size(), 2u);
  EXPECT_EQ(scores[0].second, (TpeScore{-inf, -0.9}));
  EXPECT_EQ(scores[1].second, (TpeScore{-4.0, -0.95}));
}

TEST(TpeMath, StartupTrialsComeFromThePriorAndOptionsAreChecked) {
  SearchSpace space;
  space.add_uniform("x", -1, 1);
  TpeSampler tpe(TpeOptions().with_seed(5).with_startup_trials(3));
  RandomSampler random(5);
  std::vector<FrozenTrial> history;
  for (int64_t k = 0; k < 3; ++k) {
    // Below the start-up count TPE draws exactly what random search draws.
    EXPECT_EQ(tpe.ask(space, history, Direction::kMinimize, k),
              random.ask(space, history, Direction::kMinimize, k));
    FrozenTrial t;
    t.number = k, t.state = TrialState::kComplete, t.value = double(k), t.params = {0.1 * k};
    history.push_back(t);
  }
  EXPECT_NE(tpe.ask(space, history, Direction::kMinimize, 3),
            random.ask(space, history, Direction::kMinimize, 3));
  EXPECT_THROW(TpeSampler(TpeOptions().with_candidates(0)), std::exception);
  EXPECT_THROW(TpeSampler(TpeOptions().with_startup_trials(-1)), std::exception);
  EXPECT_THROW(gamma_rule_from_string("median"), std::exception);
  const auto o = TpeOptions::from_json(TpeOptions::hyperopt().with_seed(9).to_json());
  EXPECT_EQ(o.startup_trials, 20);
  EXPECT_EQ(o.gamma, GammaRule::kHyperopt);
  EXPECT_EQ(o.seed, 9u);
}

TEST(TpeParity, GammaAndWeightsMatchOptuna) {
  const auto& g = golden();
  for (const auto& [rule, f] :
       {std::pair{"optuna", GammaRule::kOptuna}, std::pair{"hyperopt", GammaRule::kHyperopt}}) {
    const auto want = g["gamma"][rule].get<std::vector<int64_t>>();
    for (size_t n = 0; n < want.size(); ++n)
      EXPECT_EQ(good_count(f, n), want[n]) << rule << " n=" << n;
  }
  Diff d;
  for (const auto& [m, w] : g["weights"].items()) {
    const auto got = forgetting_weights(std::stoll(m));
    const auto want = doubles(w);
    ASSERT_EQ(got.size(), want.size()) << m;
    for (size_t i = 0; i < got.size(); ++i) d.add(got[i], want[i]);
  }
  EXPECT_LT(d.abs, 1e-15);
  d.print("forgetting weights");
}

TEST(TpeParity, TruncatedNormalMatchesOptuna) {
  const auto& g = golden()["truncnorm"];
  Diff dn, dm, dq;
  for (const auto& p : g["log_ndtr"])
    dn.add(truncnorm::log_ndtr(p[0].get<double>()), p[1].get<double>());
  for (const auto& c : g["cases"]) {
    const double a = c["a"], b = c["b"], q = c["q"];
    dm.add(truncnorm::log_gauss_mass(a, b), c["log_mass"].get<double>());
    dq.add(truncnorm::ppf(q, a, b), c["ppf"].get<double>());
  }
  EXPECT_LT(dn.rel, 1e-13);
  EXPECT_LT(dm.rel, 1e-12);
  EXPECT_LT(dq.rel, 1e-12);
  dn.print("log Φ");
  dm.print("log mass");
  dq.print("truncated quantile");
}

TEST(TpeParity, SplitMatchesOptuna) {
  const auto& g = golden()["split"];
  std::vector<TpeScore> scores;
  for (const auto& s : g["scores"]) scores.push_back({num(s[0]), num(s[1])});
  for (const auto& c : g["cases"]) {
    auto [good, bad] = split_good_bad(scores, c["n_below"].get<int64_t>());
    EXPECT_EQ(good, c["below"].get<std::vector<size_t>>()) << "n_below " << c["n_below"];
    EXPECT_EQ(bad, c["above"].get<std::vector<size_t>>()) << "n_below " << c["n_below"];
  }
}

TEST(TpeParity, ParzenEstimatorsMatchOptuna) {
  Diff params, density, density31, draws, scores;
  int cases = 0, choices = 0;
  for (const auto& c : golden()["estimators"]) {
    const ParamSpec spec{"x", c["low"], c["high"], c["log"]};
    const std::string label = fmt::format("{} n={} {}", c["space"].get<std::string>(),
                                          c["n"].get<int>(), c["rule"].get<std::string>());
    const auto values = doubles(c["values"]), losses = doubles(c["losses"]),
               grid = doubles(c["grid"]);
    std::vector<TpeScore> s;
    for (double v : losses) s.push_back({-INFINITY, v});
    const auto rule = gamma_rule_from_string(c["rule"]);
    auto [good, bad] = split_good_bad(s, good_count(rule, static_cast<int64_t>(values.size())));
    ASSERT_EQ(good, c["below"].get<std::vector<size_t>>()) << label;
    ASSERT_EQ(bad, c["above"].get<std::vector<size_t>>()) << label;
    std::vector<double> below, above;
    for (size_t i : good) below.push_back(spec.to_internal(values[i]));
    for (size_t i : bad) above.push_back(spec.to_internal(values[i]));
    for (bool normalized : {true, false}) {
      const auto& want = c[normalized ? "normalized" : "optuna31"];
      TpeOptions o;
      o.normalized_kernels = normalized;
      ParzenEstimator l(below, spec.internal_low(), spec.internal_high(), o);
      ParzenEstimator gg(above, spec.internal_low(), spec.internal_high(), o);
      for (const auto& [est, key] : {std::pair{&l, "l"}, std::pair{&gg, "g"}}) {
        const auto w = doubles(want[key]["weights"]), m = doubles(want[key]["mus"]),
                   sg = doubles(want[key]["sigmas"]);
        ASSERT_EQ(est->weights().size(), w.size()) << label << " " << key;
        for (size_t k = 0; k < w.size(); ++k) {
          params.add(est->weights()[k], w[k]);
          params.add(est->mus()[k], m[k]);
          params.add(est->sigmas()[k], sg[k]);
        }
      }
      const auto log_l = doubles(want["log_l"]), log_g = doubles(want["log_g"]);
      for (size_t i = 0; i < grid.size(); ++i) {
        (normalized ? density : density31).add(l.log_pdf(spec.to_internal(grid[i])), log_l[i]);
        (normalized ? density : density31).add(gg.log_pdf(spec.to_internal(grid[i])), log_g[i]);
      }
      // The same numpy seed gives the same 24 candidates, scores and choice as Optuna.
      SamplerRandom rng(want["sample_seed"].get<uint32_t>());
      const auto cand = l.sample(rng, 24);
      const auto want_cand = doubles(want["candidates"]), want_score = doubles(want["score"]);
      size_t best = 0;
      std::vector<double> sc;
      for (size_t i = 0; i < cand.size(); ++i) {
        const double x = spec.from_internal(cand[i]);
        draws.add(x, want_cand[i]);
        sc.push_back(l.log_pdf(spec.to_internal(x)) - gg.log_pdf(spec.to_internal(x)));
        scores.add(sc[i], want_score[i]);
        if (sc[i] > sc[best]) best = i;
      }
      EXPECT_EQ(best, want["best"].get<size_t>()) << label;
      ++choices;
    }
    ++cases;
  }
  EXPECT_GE(cases, 20);
  EXPECT_LT(params.rel, 1e-12);
  EXPECT_LT(density.abs, 1e-9);
  EXPECT_LT(density31.abs, 1e-9);
  EXPECT_LT(draws.rel, 1e-9);
  EXPECT_LT(scores.abs, 1e-9);
  params.print(fmt::format("estimator weights, means, widths ({} cases)", cases));
  density.print("log densities, normalized kernels");
  density31.print("log densities, Optuna 3.1 kernels");
  draws.print(fmt::format("candidates drawn from l ({} draws of 24)", choices));
  scores.print("log l − log g of the candidates");
}

TEST(TpeParity, DiffCountsNanAsAMismatch) {
  // A NaN output must fail a parity check, not vanish in std::max.
  Diff d;
  d.add(1.0, 1.0);
  d.add(std::nan(""), 0.5);
  d.add(2.0, 2.0);
  EXPECT_FALSE(d.abs < 1e-9);
  EXPECT_FALSE(d.rel < 1e-9);
  Diff inf;
  inf.add(INFINITY, INFINITY);
  inf.add(-INFINITY, -INFINITY);
  EXPECT_EQ(inf.abs, 0.0);
  inf.add(-INFINITY, INFINITY);
  EXPECT_FALSE(inf.abs < 1e-9);
}

namespace {

// The search space of the golden file's `quadratic` objective.
SearchSpace golden_space(const std::string& name) {
  SearchSpace space;
  for (const auto& p : golden()["spaces"][name]) {
    if (p[3].get<bool>())
      space.add_log_uniform(p[0].get<std::string>(), p[1].get<double>(), p[2].get<double>());
    else
      space.add_uniform(p[0].get<std::string>(), p[1].get<double>(), p[2].get<double>());
  }
  return space;
}

// A trial of the golden `mixed` studies with our own proposal `params` and Optuna's outcome.
FrozenTrial mixed_trial(int64_t number, ParamValues params, const nlohmann::json& want) {
  FrozenTrial t;
  t.number = number;
  t.params = std::move(params);
  const auto state = want["state"].get<std::string>();
  if (state == "fail") {
    t.state = TrialState::kFailed;
  } else if (state == "prune") {
    t.state = TrialState::kPruned;
    for (const auto& sv : want["intermediate"]) t.intermediate[sv[0].get<int64_t>()] = sv[1];
  } else {
    t.state = TrialState::kComplete;
    t.value = want["value"].get<double>();
  }
  return t;
}

}  // namespace

TEST(TpeParity, ReplaysOptunaStudiesWithFailedAndPrunedTrials) {
  // Every sixth trial fails and every sixth is pruned (after 0–3 reports), from trial 1 on: the
  // scored trials sit at other positions than in the history, and each good or bad observation
  // must be that scored trial's own parameters. Optuna ignores failed trials, ranks pruned ones
  // after complete ones; the proposals must agree draw for draw.
  const auto& g = golden()["mixed"];
  const auto space = golden_space("quadratic");
  const int64_t n = golden()["n_trials"];
  Diff d;
  int studies = 0, failed = 0, pruned = 0;
  for (const std::string dir : {"minimize", "maximize"}) {
    const Direction direction = dir == "minimize" ? Direction::kMinimize : Direction::kMaximize;
    for (size_t seed = 0; seed < g[dir].size(); ++seed) {
      const auto& want = g[dir][seed];
      ASSERT_EQ(static_cast<int64_t>(want.size()), n);
      TpeSampler tpe(TpeOptions().with_seed(seed).with_startup_trials(10));
      std::vector<FrozenTrial> history;
      for (int64_t k = 0; k < n; ++k) {
        const auto x = tpe.ask(space, history, direction, k);
        const auto w = doubles(want[k]["params"]);
        ASSERT_EQ(x.size(), w.size());
        Diff step;
        for (size_t i = 0; i < x.size(); ++i) {
          step.add(x[i], w[i]);
          d.add(x[i], w[i]);
        }
        EXPECT_LT(step.rel, 1e-9) << dir << " seed " << seed << " trial " << k << ": proposed ("
                                  << x[0] << ", " << x[1] << "), Optuna (" << w[0] << ", " << w[1]
                                  << ")";
        if (!(step.rel < 1e-9)) break;  // the rest of this study follows from a different history
        history.push_back(mixed_trial(k, x, want[k]));
        failed += history.back().state == TrialState::kFailed;
        pruned += history.back().state == TrialState::kPruned;
      }
      ++studies;
    }
  }
  EXPECT_GE(studies, 6);
  EXPECT_GT(failed, 0);
  EXPECT_GT(pruned, 0);
  d.print(fmt::format("proposals of {} studies with {} failed and {} pruned trials", studies,
                      failed, pruned));
}

TEST(TpeMath, FailedTrialsAreInvisible) {
  // Failed trials carry parameters but no score: the history with them interleaved must give
  // the proposal of the history without them, trial number for trial number.
  SearchSpace space;
  space.add_uniform("x", -1, 1).add_log_uniform("y", 0.01, 1.0);
  TpeSampler tpe(TpeOptions().with_seed(3).with_startup_trials(4));
  std::vector<FrozenTrial> with_failed, scored_only;
  for (int64_t k = 0; k < 24; ++k) {
    FrozenTrial t;
    t.number = k;
    t.params = {std::sin(1.7 * k), 0.01 + 0.9 * (0.5 + 0.5 * std::cos(2.3 * k))};
    if (k % 3 == 1) {
      t.state = TrialState::kFailed;  // its parameters are far from every scored trial's
      t.params = {0.999, 0.0101};
    } else if (k % 5 == 3) {
      t.state = TrialState::kPruned;
      t.intermediate = {{1, t.params[0] * t.params[0]}};
    } else {
      t.state = TrialState::kComplete;
      t.value = t.params[0] * t.params[0] + std::log(t.params[1]) * std::log(t.params[1]);
    }
    with_failed.push_back(t);
    if (t.state != TrialState::kFailed) scored_only.push_back(t);
    if (scored_only.size() >= 4)
      ASSERT_EQ(tpe.ask(space, with_failed, Direction::kMinimize, 100 + k),
                tpe.ask(space, scored_only, Direction::kMinimize, 100 + k))
          << "after trial " << k;
  }
}
