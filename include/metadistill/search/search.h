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

/// The settings of a search, one struct with one set of defaults: the config's `search:`
/// section, the `search` command's flags and the experiment's tpe / random-search methods all
/// fill it (experiment/config.h, experiment/search_run.h).
struct SearchSettings {
  /// "tpe" or "random".
  std::string sampler = "tpe";
  /// Finished (complete or pruned) trials the study should have when the loop ends (the paper's
  /// hyperopt: 5).
  int64_t trials = 10;
  /// TPE start-up trials drawn from the prior. An honest count is below `trials` (DESIGN.md 3.5):
  /// with trials ≤ startup every trial is a prior draw and TPE is random search (the paper's
  /// hyperopt had 20 start-up trials for 5 trials).
  int64_t startup = 5;
  /// TPE good/bad split: "optuna" (⌈0.1·n⌉) or "hyperopt" (⌈0.25·√n⌉).
  std::string gamma_rule = "optuna";
  /// TPE candidates drawn per parameter.
  int64_t candidates = 24;
  /// "val-loss" (minimized) or "val-accuracy" (maximized), best over the evaluated epochs, on the
  /// validation split (never test data).
  std::string objective = "val-loss";
  /// Training epochs of one trial, at most the schedule's; 0 = the schedule's (a retrain always
  /// uses the full schedule).
  int64_t trial_epochs = 0;
  /// Prune with the median rule on the intermediate values the objective reports.
  bool prune = false;
  MedianPrunerOptions pruner;
  /// Stop with an error once the study holds this many failed trials (crashes included).
  int64_t max_failures = 10;

  SearchSettings& with_sampler(std::string v) { sampler = std::move(v); return *this; }
  SearchSettings& with_trials(int64_t v) { trials = v; return *this; }
  SearchSettings& with_startup(int64_t v) { startup = v; return *this; }
  SearchSettings& with_objective(std::string v) { objective = std::move(v); return *this; }
  SearchSettings& with_trial_epochs(int64_t v) { trial_epochs = v; return *this; }
  SearchSettings& with_prune(bool v) { prune = v; return *this; }
  SearchSettings& with_max_failures(int64_t v) { max_failures = v; return *this; }
  /// Throws `Error` naming the setting as `search.<key>` when a value is out of range.
  void validate() const;
  /// True when TPE has no trial left after its start-up draws: it is random search.
  bool tpe_is_random_search() const { return sampler == "tpe" && trials <= startup; }
};

/// Called after each trial this process ran, with its stored record.
using TrialEndFn = std::function<void(const FrozenTrial&)>;

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

/// Runs trials until the study holds `settings.trials` finished ones (counting those of earlier
/// runs and of other processes), asking `sampler` for parameters (the settings' sampler fields
/// are the caller's to honour when it builds `sampler`). Throws `Error` when the study reaches
/// `settings.max_failures` failed trials.
SearchSummary optimize(Study& study, Sampler& sampler, const Objective& objective,
                       const SearchSettings& settings, const TrialEndFn& on_trial_end = {});

}  // namespace metadistill
