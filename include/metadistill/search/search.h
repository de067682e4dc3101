#pragma once
/// The search loop of the black-box baselines (DESIGN.md 3.3): claim a trial from a `Study`,
/// evaluate the objective at its parameters, store the outcome; repeat until the study has the
/// requested number of finished trials. Several processes may run it on one study at once, and
/// re-running it after a crash resumes the study.
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "metadistill/search/pruner.h"
#include "metadistill/search/sampler.h"
#include "metadistill/search/study.h"

namespace metadistill {

/// What an objective sees of its trial: the parameters, and a channel for intermediate values.
class TrialContext {
 public:
  TrialContext(Study& study, FrozenTrial trial, const MedianPruner* pruner);

  const FrozenTrial& trial() const { return trial_; }
  int64_t number() const { return trial_.number; }
  /// The value of parameter `name`; throws `Error` listing the known names when absent.
  double param(const std::string& name) const;

  /// Stores the intermediate value at `step` (steps increasing) and asks the pruner, if any;
  /// returns true when the trial should stop. The objective should then return at once (its
  /// return value is ignored) and the trial ends `pruned`.
  bool report(int64_t step, double value);
  /// True once `report` has returned true.
  bool pruned() const { return pruned_; }

 private:
  Study& study_;
  FrozenTrial trial_;
  const MedianPruner* pruner_;
  bool pruned_ = false;
};

/// An objective: the value to optimize at `ctx.trial().params`. Throwing marks the trial failed;
/// a non-finite value too.
using Objective = std::function<double(TrialContext& ctx)>;

/// Options of `optimize`.
struct SearchOptions {
  /// Finished (complete or pruned) trials the study should have when the loop ends.
  int64_t trials = 20;
  /// Prune with the median rule when the objective reports intermediate values.
  bool prune = false;
  MedianPrunerOptions pruner;
  /// Stop with an error once the study holds this many failed trials (crashes included).
  int64_t max_failures = 10;
  /// Called after each trial this process ran, with its stored record.
  std::function<void(const FrozenTrial&)> on_trial_end;

  SearchOptions& with_trials(int64_t v) { trials = v; return *this; }
  SearchOptions& with_prune(bool v) { prune = v; return *this; }
  SearchOptions& with_max_failures(int64_t v) { max_failures = v; return *this; }
  /// Throws `Error` naming the option when a value is out of range.
  void validate() const;
};

/// What one `optimize` call did, and where the study stands.
struct SearchSummary {
  /// Trials this process ran, by how they ended.
  int64_t ran = 0, complete = 0, pruned = 0, failed = 0;
  /// The study's counts at the end (other processes included).
  StudyCounts counts;
  /// The study's best complete trial.
  std::optional<FrozenTrial> best;
  /// True when the study has `trials` finished trials and nothing running or waiting.
  bool done = false;
};

/// Runs trials until the study holds `options.trials` finished ones (counting those of earlier
/// runs and of other processes), asking `sampler` for parameters. Throws `Error` when the study
/// reaches `options.max_failures` failed trials.
SearchSummary optimize(Study& study, Sampler& sampler, const Objective& objective,
                       const SearchOptions& options);

}  // namespace metadistill
