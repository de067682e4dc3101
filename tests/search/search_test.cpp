#include "metadistill/search/search.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <iostream>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "metadistill/search/study_history.h"
#include "metadistill/search/tpe.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "search/golden.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::TempDir;

namespace {

const nlohmann::json& golden() { return metadistill::testing::tpe_golden(); }

// The closed-form objectives of scripts/optuna_golden.py, written the same way.
double quadratic(const ParamValues& x) {
  return std::pow(x[0] - 0.3, 2) + std::pow(std::log10(x[1]) - 0.5, 2);
}

double branin(const ParamValues& v) {
  const double x = v[0], y = v[1];
  const double b = 5.1 / (4 * M_PI * M_PI), c = 5 / M_PI, t = 1 / (8 * M_PI);
  return std::pow(y - b * x * x + c * x - 6, 2) + 10 * (1 - t) * std::cos(x) + 10;
}

struct Problem {
  std::string name;
  SearchSpace space;
  double (*f)(const ParamValues&);
};

std::vector<Problem> problems() {
  SearchSpace q, b;
  q.add_uniform("lambda1", 0.0, 1.0).add_log_uniform("temperature", 0.1, 10.0);
  b.add_uniform("x", -5.0, 10.0).add_uniform("y", 0.0, 15.0);
  return {{"quadratic", q, quadratic}, {"branin", b, branin}};
}

// The samplers of the golden file's variants, seeded as it seeds Optuna's.
std::unique_ptr<Sampler> variant_sampler(const std::string& variant, uint64_t seed) {
  if (variant == "random") return std::make_unique<RandomSampler>(seed);
  TpeOptions o = TpeOptions().with_seed(seed).with_startup_trials(10);
  if (variant == "tpe-hyperopt") o.gamma = GammaRule::kHyperopt;
  if (variant == "tpe-optuna31") o.normalized_kernels = false;
  return std::make_unique<TpeSampler>(o);
}

// A sequential study kept in memory (no SQLite): ask, evaluate, append.
std::vector<FrozenTrial> run_plain(Sampler& sampler, const Problem& p, int64_t n) {
  std::vector<FrozenTrial> trials;
  for (int64_t k = 0; k < n; ++k) {
    FrozenTrial t;
    t.number = k;
    t.params = sampler.ask(p.space, trials, Direction::kMinimize, k);
    t.value = p.f(t.params);
    t.state = TrialState::kComplete;
    trials.push_back(t);
  }
  return trials;
}

double best_of(const std::vector<FrozenTrial>& trials) {
  double best = INFINITY;
  for (const auto& t : trials) best = std::min(best, *t.value);
  return best;
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

}  // namespace

TEST(SearchClosedForm, SamplersReplayOptunaStudiesDrawForDraw) {
  // With the generators reseeded per trial as metadistill seeds them, Optuna's TPE (and random
  // search) and ours make the same proposals on whole 40-trial studies.
  const auto& g = golden()["trajectories"];
  const int64_t n = golden()["n_trials"];
  for (const auto& p : problems())
    for (const std::string variant : {"tpe-optuna", "tpe-hyperopt", "tpe-optuna31", "random"}) {
      const auto& want = g[p.name][variant];
      double max_rel = 0, max_best = 0;
      int same = 0;
      const auto bests = want["bests"].get<std::vector<double>>();
      for (size_t seed = 0; seed < bests.size(); ++seed) {
        auto sampler = variant_sampler(variant, seed);
        const auto trials = run_plain(*sampler, p, n);
        const double best = best_of(trials);
        max_best = std::max(max_best, std::abs(best - bests[seed]) / std::abs(bests[seed]));
        same += std::abs(best - bests[seed]) <= 1e-9 * std::abs(bests[seed]);
        if (seed < want["trials"].size()) {
          const auto& wt = want["trials"][seed];
          for (int64_t k = 0; k < n; ++k)
            for (size_t i = 0; i < p.space.size(); ++i) {
              const double w = wt[k]["params"][i];
              max_rel = std::max(max_rel, std::abs(trials[k].params[i] - w) / std::abs(w));
            }
        }
      }
      std::cout << fmt::format(
          "[parity] {} {}: params of {} whole studies max rel diff {:.3g}; "
          "best values equal in {}/{} seeds (max rel diff {:.3g})\n",
          p.name, variant, want["trials"].size(), max_rel, same, bests.size(), max_best);
      EXPECT_LT(max_rel, 1e-9) << p.name << " " << variant;
      EXPECT_EQ(same, static_cast<int>(bests.size())) << p.name << " " << variant;
    }
}

TEST(SearchClosedForm, TpeBeatsRandomSearchAndLiesWithinOptuna) {
  // Medians over 30 seeds of the best value after 40 trials (10 of them start-up draws).
  const auto& cmp = golden()["comparison"];
  for (const auto& p : problems()) {
    std::vector<double> tpe, random;
    for (uint64_t seed = 0; seed < 30; ++seed) {
      TpeSampler t(TpeOptions().with_seed(seed));
      RandomSampler r(seed);
      tpe.push_back(best_of(run_plain(t, p, 40)));
      random.push_back(best_of(run_plain(r, p, 40)));
    }
    const auto& opt = cmp[p.name]["tpe-optuna"];
    const double m_tpe = median(tpe), m_random = median(random);
    std::cout << fmt::format(
        "[closed-form] {}: median best after 40 trials: TPE {:.4g}, random {:.4g}; Optuna 3.1 TPE "
        "{:.4g} (quartiles {:.4g}..{:.4g}), Optuna random {:.4g}\n",
        p.name, m_tpe, m_random, opt["median"].get<double>(), opt["q25"].get<double>(),
        opt["q75"].get<double>(), cmp[p.name]["random"]["median"].get<double>());
    EXPECT_LT(m_tpe, m_random) << p.name;
    EXPECT_GE(m_tpe, opt["q25"].get<double>()) << p.name;
    EXPECT_LE(m_tpe, opt["q75"].get<double>()) << p.name;
  }
}

TEST(SearchClosedForm, StudyLoopGivesTheSameStudyAsThePlainLoop) {
  // The SQLite study and optimize() add storage, not randomness: same proposals as run_plain.
  const auto p = problems()[1];
  TpeSampler a(TpeOptions().with_seed(4)), b(TpeOptions().with_seed(4));
  const auto plain = run_plain(a, p, 25);
  Study study =
      Study::open(":memory:", StudySettings().with_space(p.space).with_sampler(b.to_json()));
  const auto summary = optimize(
      study, b, [&](TrialContext& ctx) { return p.f(ctx.trial().params); },
      SearchSettings().with_trials(25));
  EXPECT_TRUE(summary.done);
  EXPECT_EQ(summary.ran, 25);
  const auto stored = study.trials();
  ASSERT_EQ(stored.size(), 25u);
  for (size_t k = 0; k < stored.size(); ++k) EXPECT_EQ(stored[k].params, plain[k].params) << k;
  EXPECT_EQ(*summary.best->value, best_of(plain));
  // Asking again finds the study finished.
  EXPECT_EQ(optimize(
                study, b, [&](TrialContext&) -> double { throw std::runtime_error("ran"); },
                SearchSettings().with_trials(25))
                .ran,
            0);
}

TEST(SearchLoop, PrunesFailsAndCountsTrials) {
  // Learning curves v_t = target + 1/t with target = |x − 0.2|: far trials are pruned early.
  SearchSpace space;
  space.add_uniform("x", 0.0, 1.0);
  Study study = Study::open(":memory:", StudySettings().with_space(space));
  RandomSampler sampler(8);
  int64_t steps_run = 0;
  auto objective = [&](TrialContext& ctx) {
    const double target = std::abs(ctx.param("x") - 0.2);
    double v = 0;
    for (int t = 1; t <= 10; ++t) {
      ++steps_run;
      v = target + 1.0 / t;
      if (ctx.report(t, v)) return v;
    }
    return v;
  };
  SearchSettings o = SearchSettings().with_trials(30).with_prune(true);
  o.pruner.startup_trials = 5;
  std::vector<int64_t> seen;
  const auto s = optimize(study, sampler, objective, o,
                          [&](const FrozenTrial& t) { seen.push_back(t.number); });
  EXPECT_TRUE(s.done);
  EXPECT_EQ(s.complete + s.pruned, 30);
  EXPECT_GT(s.pruned, 5);
  EXPECT_LT(steps_run, 30 * 10);  // pruning saved steps
  EXPECT_EQ(seen.size(), 30u);
  for (const auto& t : study.trials())
    if (t.state == TrialState::kPruned) {
      EXPECT_LT(t.last_step(), 10);
      EXPECT_TRUE(contains_all(t.message, {"pruned at step", "median"}));
      EXPECT_FALSE(t.value.has_value());
    }
  EXPECT_NEAR(s.best->params[0], 0.2, 0.1);

  // Failures are recorded with their message, do not count as finished, and stop the loop at
  // the limit.
  Study failing = Study::open(":memory:", StudySettings().with_space(space));
  auto throws = [](TrialContext& ctx) -> double {
    if (ctx.param("x") > 0.5) throw Error("diverged at x = " + std::to_string(ctx.param("x")));
    return ctx.param("x");
  };
  const auto f =
      optimize(failing, sampler, throws, SearchSettings().with_trials(5).with_max_failures(50));
  EXPECT_EQ(f.complete, 5);
  EXPECT_EQ(f.failed, failing.counts().failed);
  for (const auto& t : failing.trials())
    if (t.state == TrialState::kFailed) EXPECT_TRUE(contains_all(t.message, {"diverged at x"}));
  Study nan_study = Study::open(":memory:", StudySettings().with_space(space));
  const std::string msg = [&] {
    try {
      optimize(
          nan_study, sampler, [](TrialContext&) { return NAN; },
          SearchSettings().with_trials(5).with_max_failures(3));
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_TRUE(contains_all(msg, {"3 trials failed", "limit 3", "not finite"}));
}
