#pragma once
/// The black-box baselines of the paper (DESIGN.md 3.3) on a distillation config: random search
/// or TPE over (λ1, T), each trial one student training with fixed metaparameters, stored in a
/// resumable SQLite study (search/study.h); then the best metaparameters are retrained and tested.
///
/// Trials: `run_distill(method "fixed", λ1, T)` with the run seed (the same model initialization
/// and batch order in every trial, so that trials differ only in λ; the sampler is seeded with
/// the same seed). The objective is the best validation loss (minimized) or the best validation
/// accuracy (maximized) over the evaluated epochs — the paper's hyperopt scored the maximum
/// validation accuracy over checkpoints — and never touches test data: the search always
/// validates on the validation split, also where the config validates the synthetic data on its
/// test rows (data.val_is_test is ignored). The per-epoch validation values are stored as
/// intermediate values. With pruning the median rule judges them epoch by epoch *after* the run
/// (the trainer has no per-epoch callback): a pruned trial is recorded as pruned at the epoch
/// where the rule stopped it, as Optuna would, but no training time is saved.
///
/// Final retrain: the best metaparameters are trained once more on D_train ∪ D_val (the paper
/// retrains on the full training data) with the same seed and the student's full schedule, and
/// tested; the result is stored in the study (attribute "retrain"), so that running a finished
/// study again returns it without training again.
///
/// Equal-budget mode (`budget_seconds` > 0): trials run one after the other, each with the
/// trainer's time limit set to what is left of the budget, until the budget is spent (the trial
/// count is then not fixed); the best trial by the validation objective is reported with its own
/// test accuracy and nothing is retrained. Wall-clock budgets are not deterministic: the number
/// of trials and the steps of the last one depend on the machine's load.
///
/// Several processes may run one study at once; running it again after a crash resumes it.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/experiment/config.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/search/search.h"
#include "metadistill/search/study.h"

namespace metadistill {

class RunQueue;

/// The experiment methods that are searches, not MetaOptimizers: "random-search", "tpe".
std::vector<std::string> search_method_names();
/// True for a name of `search_method_names()`.
bool is_search_method(const std::string& name);

/// Options of `run_search`.
struct SearchRunOptions {
  /// Sampler, trials, TPE settings, objective, trial epochs, pruning, failure limit.
  SearchSettings search;
  /// Prior of T: "log-uniform" or "uniform" on [0.1, 10] (λ1 ~ U(0, 1) always).
  std::string temperature_prior = "log-uniform";
  /// Run seed of every trial and of the retrain, and seed of the sampler.
  uint64_t seed = 0;
  /// Name shown in the study's objective settings ("tpe", "random", "hyperopt-5 (= ...)").
  std::string label = "tpe";
  /// Retrain the best metaparameters once the study is complete.
  bool retrain = true;
  /// Equal-budget mode when > 0 (seconds of wall-clock for all trials); see the header comment.
  double budget_seconds = 0;
  /// The SQLite study file.
  std::filesystem::path study;
  /// Folder of the trials (trial-<n>/) and the retrain (retrain/).
  std::filesystem::path dir;
  /// Per-epoch lines from the trainer.
  bool verbose = false;
  /// Called after each trial this process ran, with its stored record.
  TrialEndFn on_trial_end;
  /// Called before each training starts: "trial <n>" or "retrain", its folder and its epochs.
  std::function<void(const std::string&, const std::filesystem::path&, int64_t)> on_training_start;
  /// The ranks of a group to share the trials with (experiment/run_queue.h), or null. Rank 0
  /// holds the study: besides its own trials, one thread per other rank asks the study for a
  /// trial, sends it to that rank through the store and tells the study its result once the
  /// rank delivers the trial's files (into `dir`), as a `--jobs` worker would on one machine. A
  /// rank lost mid-trial has that trial failed (and retried like any failed trial). The other
  /// ranks train the trials they are sent and return an empty result. Not with equal budgets.
  RunQueue* queue = nullptr;

  SearchRunOptions& with_search(SearchSettings v) { search = std::move(v); return *this; }
  SearchRunOptions& with_seed(uint64_t v) { seed = v; return *this; }
  SearchRunOptions& with_budget_seconds(double v) { budget_seconds = v; return *this; }
  SearchRunOptions& with_study(std::filesystem::path v) { study = std::move(v); return *this; }
  SearchRunOptions& with_dir(std::filesystem::path v) { dir = std::move(v); return *this; }

  /// Throws `Error` naming the option when a value is out of range.
  void validate() const;
};

/// The search options a config's `search` section gives for experiment method `method`
/// ("tpe" or "random-search"), run seed `seed`, study and trial folder `dir` (study `dir`/study.db).
SearchRunOptions search_options_for(const Config& config, const std::string& method, uint64_t seed,
                                    const std::filesystem::path& dir);

/// The sampler `options` describe (TPE or random, seeded with `options.seed`).
std::unique_ptr<Sampler> make_search_sampler(const SearchRunOptions& options);

/// The settings of the study a search of `config` with `options` stores and checks on resume.
/// `config` is taken as given (the caller's data.val_is_test is reported as false, as trials see
/// it).
StudySettings search_study_settings(const Config& config, const SearchRunOptions& options);

/// The final retrain (or, in equal-budget mode, the best trial) as stored in the study.
struct SearchRetrain {
  int64_t trial = -1;
  Metaparameters lambda;
  /// Rows the student trained on (D_train ∪ D_val for a retrain, D_train for a trial).
  int64_t train_rows = 0;
  uint64_t seed = 0;
  /// The training's outcome; `train.history` holds the test accuracy per evaluated epoch.
  TrainResult train;
  /// True when read back from the study instead of trained by this call.
  bool stored = false;
};

/// What `run_search` did.
struct SearchRunResult {
  SearchSpace space;
  Direction direction = Direction::kMinimize;
  /// The `optimize` summary (trials run by this call, study counts, best trial, done).
  SearchSummary summary;
  /// Every trial of the study, by number.
  std::vector<FrozenTrial> trials;
  /// The best complete trial's metaparameters (valid when `summary.best`).
  Metaparameters best;
  /// The retrain of `best` (or, in equal-budget mode, the best trial's own training); empty
  /// when the study is not complete, has no complete trial, or `retrain` was off.
  std::optional<SearchRetrain> retrain;
  /// Wall-clock of every finished or failed trial of the study (earlier processes included)
  /// plus the retrain's training seconds.
  double seconds = 0;
};

/// Runs (or resumes) the search of `config` on the prepared data and teacher (see the header
/// comment). Throws `Error` when the data has no validation split, the study file belongs to
/// another search, or too many trials fail.
SearchRunResult run_search(const Config& config, const Prepared& prepared,
                           const SearchRunOptions& options);

/// "λ1=0.25 T=3.1" for values of the metaparameter space.
std::string describe_params(const SearchSpace& space, const ParamValues& values);

}  // namespace metadistill
