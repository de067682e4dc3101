#pragma once
/// The median stopping rule for unpromising trials (Golovin et al., "Google Vizier", KDD 2017;
/// Optuna's MedianPruner): stop a trial at step s when its best intermediate value so far is
/// worse than the median of the complete trials' intermediate values at step s.
#include <cstdint>
#include <vector>

#include "metadistill/search/sampler.h"

namespace metadistill {

/// Options of `MedianPruner` (Optuna's defaults).
struct MedianPrunerOptions {
  /// No pruning until this many trials are complete.
  int64_t startup_trials = 5;
  /// No pruning before this step.
  int64_t warmup_steps = 0;
  /// Check at most once per this many steps (after the warm-up).
  int64_t interval_steps = 1;
  /// No pruning at a step that fewer complete trials reported.
  int64_t min_trials = 1;

  MedianPrunerOptions& with_startup_trials(int64_t v) { startup_trials = v; return *this; }
  MedianPrunerOptions& with_warmup_steps(int64_t v) { warmup_steps = v; return *this; }
  MedianPrunerOptions& with_interval_steps(int64_t v) { interval_steps = v; return *this; }
  MedianPrunerOptions& with_min_trials(int64_t v) { min_trials = v; return *this; }
  /// Throws `Error` naming the option when a value is out of range.
  void validate() const;
};

/// Median of the values (linear interpolation between the two middle ones, as numpy's
/// percentile 50); NaN values are ignored; NaN when none is left.
double nan_median(std::vector<double> values);

/// The median pruning rule.
class MedianPruner {
 public:
  explicit MedianPruner(MedianPrunerOptions options = {});
  /// Whether `trial` (running, with intermediate values up to its last step s) should stop:
  /// with b its best intermediate value so far (min or max by `direction`) and m the median of
  /// the complete trials' values at step s, prune when b is worse than m. A trial whose values
  /// are all NaN is pruned. Follows Optuna's PercentilePruner(50) step for step.
  bool should_prune(const std::vector<FrozenTrial>& trials, const FrozenTrial& trial,
                    Direction direction) const;
  const MedianPrunerOptions& options() const { return options_; }

 private:
  MedianPrunerOptions options_;
};

}  // namespace metadistill
