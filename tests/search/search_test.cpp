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

TEST(SearchPruner, MedianRuleAsOptuna) {
  auto trial = [](int64_t number, TrialState state, std::map<int64_t, double> curve) {
    FrozenTrial t;
    t.number = number;
    t.state = state;
    t.intermediate = std::move(curve);
    if (state == TrialState::kComplete) t.value = t.intermediate.rbegin()->second;
    return t;
  };
  std::vector<FrozenTrial> done = {trial(0, TrialState::kComplete, {{1, 1.0}, {2, 0.8}}),
                                   trial(1, TrialState::kComplete, {{1, 2.0}, {2, 0.6}}),
                                   trial(2, TrialState::kComplete, {{1, 3.0}, {2, 0.4}}),
                                   trial(3, TrialState::kPruned, {{1, 0.1}})};
  MedianPruner p(MedianPrunerOptions().with_startup_trials(3));
  // Step 1: median of complete trials 2.0 (the pruned one does not count).
  EXPECT_FALSE(
      p.should_prune(done, trial(4, TrialState::kRunning, {{1, 1.9}}), Direction::kMinimize));
  EXPECT_TRUE(
      p.should_prune(done, trial(4, TrialState::kRunning, {{1, 2.1}}), Direction::kMinimize));
  // The best value so far counts, not the last one: 0.5 at step 1 beats the median 0.6 at step 2.
  EXPECT_FALSE(p.should_prune(done, trial(4, TrialState::kRunning, {{1, 0.5}, {2, 0.9}}),
                              Direction::kMinimize));
  // Maximizing turns the comparison around.
  EXPECT_TRUE(
      p.should_prune(done, trial(4, TrialState::kRunning, {{1, 1.9}}), Direction::kMaximize));
  // All-NaN curves are pruned; steps nobody else reached are not judged.
  EXPECT_TRUE(
      p.should_prune(done, trial(4, TrialState::kRunning, {{1, NAN}}), Direction::kMinimize));
  EXPECT_FALSE(
      p.should_prune(done, trial(4, TrialState::kRunning, {{7, 9.0}}), Direction::kMinimize));
  // Too few complete trials, warm-up steps and intervals disable pruning.
  EXPECT_FALSE(
      MedianPruner(MedianPrunerOptions().with_startup_trials(4))
          .should_prune(done, trial(4, TrialState::kRunning, {{1, 9.0}}), Direction::kMinimize));
  EXPECT_FALSE(
      MedianPruner(MedianPrunerOptions().with_startup_trials(1).with_warmup_steps(2))
          .should_prune(done, trial(4, TrialState::kRunning, {{1, 9.0}}), Direction::kMinimize));
  const std::vector<FrozenTrial> longer = {trial(0, TrialState::kComplete, {{2, 1.0}, {3, 1.0}})};
  const MedianPruner every1(MedianPrunerOptions().with_startup_trials(1));
  const MedianPruner every2(MedianPrunerOptions().with_startup_trials(1).with_interval_steps(2));
  EXPECT_TRUE(every2.should_prune(longer, trial(4, TrialState::kRunning, {{2, 9.0}}),
                                  Direction::kMinimize));
  // Step 3 falls in the interval [2, 4) already judged at step 2.
  EXPECT_FALSE(every2.should_prune(longer, trial(4, TrialState::kRunning, {{2, 9.0}, {3, 9.0}}),
                                   Direction::kMinimize));
  EXPECT_TRUE(every1.should_prune(longer, trial(4, TrialState::kRunning, {{2, 9.0}, {3, 9.0}}),
                                  Direction::kMinimize));
  EXPECT_EQ(nan_median({3, NAN, 1, 2}), 2);
  EXPECT_EQ(nan_median({4, 1, 2, 3}), 2.5);
  EXPECT_TRUE(std::isnan(nan_median({NAN})));
  EXPECT_THROW(MedianPruner(MedianPrunerOptions().with_interval_steps(0)), Error);
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

TEST(SearchHistory, ExportsCsvJsonAndPlots) {
  TempDir dir("search-history");
  SearchSpace space = metaparameter_space();
  Study study = Study::open(dir / "h.db", StudySettings()
                                              .with_name("h")
                                              .with_space(space)
                                              .with_direction(Direction::kMaximize)
                                              .with_objective({{"name", "val-accuracy"}}));
  RandomSampler sampler(2);
  optimize(
      study, sampler,
      [](TrialContext& ctx) {
        if (ctx.number() == 2) throw Error("boom, with a comma");
        return ctx.param("lambda1");
      },
      SearchSettings().with_trials(5));
  const auto rows = study_history(study.trials(), study.direction());
  ASSERT_EQ(rows.size(), 6u);
  // The best so far only rises when maximizing, and skips failed trials.
  for (size_t i = 1; i < rows.size(); ++i)
    if (rows[i].best_so_far && rows[i - 1].best_so_far)
      EXPECT_GE(*rows[i].best_so_far, *rows[i - 1].best_so_far);
  EXPECT_EQ(rows[2].state, "failed");
  EXPECT_EQ(rows[2].best_so_far, rows[1].best_so_far);

  const auto files = export_history(study, dir / "out");
  const std::string csv = read_file(files.csv);
  EXPECT_TRUE(contains_all(csv, {"number,state,value,best_so_far,lambda1,temperature,retry_of",
                                 "\"boom, with a comma\""}));
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 7);
  const auto j = nlohmann::json::parse(read_file(files.json));
  EXPECT_EQ(j["study"]["direction"], "maximize");
  EXPECT_EQ(j["trials"].size(), 6u);
  EXPECT_TRUE(j["trials"][2]["value"].is_null());
  EXPECT_TRUE(contains_all(read_file(files.script),
                           {"set terminal pngcairo", "set terminal svg", "using 1:4"}));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0) {
    EXPECT_TRUE(contains_all(files.plot_warning, {"gnuplot not found"}));
    GTEST_SKIP() << "gnuplot is not installed: plots not checked";
  }
  EXPECT_EQ(files.plot_warning, "");
  EXPECT_GT(std::filesystem::file_size(files.png), 1000u);
  EXPECT_TRUE(contains_all(read_file(files.svg), {"<svg"}));
}
