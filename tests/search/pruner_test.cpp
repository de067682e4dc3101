// The median pruner (search/pruner.h) against Optuna's MedianPruner rule.
#include "metadistill/search/pruner.h"

#include <gtest/gtest.h>

#include <map>

#include "metadistill/search/search.h"
#include "metadistill/util/error.h"

using namespace metadistill;

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
