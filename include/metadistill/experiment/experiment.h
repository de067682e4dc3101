#pragma once
/// Experiments: every method of a config for R runs each (seeds 0..R−1), sharing one teacher and
/// its cached outputs; results as rows, summarized into the paper's Table 2 with cost and
/// significance columns (DESIGN.md section 4). Interrupt-safe: a finished run (its result.json)
/// is never recomputed, an unfinished one resumes from its checkpoint; both only when stored with
/// the same settings (ExperimentOptions::fresh).
///
/// Methods are the MetaOptimizers of the registry (meta/meta_optimizer.h) and the two search
/// baselines `tpe` and `random-search` (experiment/search_run.h): one run of a search is one
/// study of `search.trials` trials (sampler seed = run seed) in the run's folder, then a retrain
/// of the best λ on D_train ∪ D_val; its row counts trials + 1 trainings and their summed
/// seconds, and its accuracies and curve are the retrain's. A search resumes from its study.
///
/// Equal-budget mode (`budget.seconds` or `ExperimentOptions::budget_seconds` > 0): every run of
/// every method gets the same wall-clock budget. Single trainings stop when it is spent (the
/// table shows the epochs and steps they reached); searches run trials, each limited to what is
/// left, until it is spent, and report their best trial by the validation objective with its own
/// test accuracy (no retrain). Results go to <out>/budget-<S>s/, apart from unlimited runs.
/// Wall-clock budgets are not deterministic: how far a run gets depends on the machine and its
/// load, so budget tables differ between machines and between repetitions.
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/experiment/config.h"
#include "metadistill/experiment/statistics.h"

namespace metadistill {

class RunQueue;  // experiment/run_queue.h

/// One run of one method: a result row.
struct RunRow {
  std::string method;
  uint64_t seed = 0;
  double final_accuracy = 0, best_accuracy = 0;
  int64_t best_epoch = 0;
  double seconds = 0;
  int64_t steps = 0, hyper_steps = 0;
  /// Full trainings this run cost (1, or trials + 1 for a search).
  int64_t trainings = 1;
  Metaparameters initial, final;
  std::vector<std::pair<int64_t, double>> curve;  // (epoch, test accuracy)
  /// At the last evaluated epoch: validation and test cross-entropy, test ECE (15 bins) and the
  /// effective learning rate (train/trainer.h EpochMetrics); -1 where not measured.
  double val_loss = -1, test_loss = -1, test_ece = -1, effective_lr = -1;

  /// Appends an evaluated epoch of any trainer: its test accuracy to the curve, its
  /// measurements as the last epoch's.
  void add_epoch(const EpochRecord& e);

  nlohmann::json to_json() const;
  static RunRow from_json(const nlohmann::json& j);
};

/// One line of the results table.
struct MethodRow {
  std::string method;
  Summary final_accuracy, best_accuracy;
  double seconds = 0;        // mean wall-clock per run
  double trainings = 0;      // mean full trainings per run
  double hyper_steps = 0;    // mean hyper-steps per run
  double cost_ratio = 0;     // seconds / seconds of `none` (0 when `none` is absent)
  double steps = 0;          // mean student steps of the reported training per run
  double epochs = 0;         // mean last evaluated epoch of the reported training per run
  double p_vs_none = 1, p_vs_gradient = 1;  // Welch's t-test on final accuracy
  /// Final accuracy minus the reference method's on the same seeds (the experiment's
  /// `reference`; n = 0 when there are no common seeds or this is the reference).
  PairedDifference paired;
  /// Means over the runs that measured them (RunRow); -1 when none did.
  double val_loss = -1, test_loss = -1, test_ece = -1, effective_lr = -1;
  std::string note;
};

/// Everything an experiment produced.
struct ExperimentResult {
  std::string data, preset, source;
  double teacher_accuracy = 0;
  std::vector<std::string> methods;
  std::vector<RunRow> runs;
  std::vector<MethodRow> table;
  /// Wall-clock budget per run (0 = none, see the header comment).
  double budget_seconds = 0;
  /// Notes by method that depend on the config (search settings), added to the table's notes.
  std::map<std::string, std::string> notes;
  /// The method the paired differences are taken against (config `reference`, default none).
  std::string reference = "none";
};

/// Options of `run_experiment`.
struct ExperimentOptions {
  /// Methods to compare; empty = the config's `methods`, else all fixed and gradient methods.
  std::vector<std::string> methods;
  /// Runs per method; <= 0 = the config's `runs`.
  int64_t runs = 0;
  /// Output folder; empty = the config's `out`.
  std::filesystem::path out;
  /// Per-epoch lines from the trainer.
  bool verbose = false;
  /// Wall-clock budget per run in seconds; unset = the config's `budget.seconds` (0 = none).
  std::optional<double> budget_seconds;
  /// Progress on stderr (experiment/progress.h).
  bool progress = true;
  /// Processes that execute runs at once (this one included). Each run is claimed through a lock
  /// file in its folder, so a run is executed once, by whichever process claims it first, and
  /// its numbers do not depend on which one (every run seeds itself; give every process the
  /// same thread count). > 1 needs `worker_command`.
  int jobs = 1;
  /// The command that starts one worker process (argv; argv[0] the program): a process that calls
  /// `run_experiment` on the same config and options with `worker = true`. The CLI passes its
  /// own command line with `--worker`.
  std::vector<std::string> worker_command;
  /// Discard the stored runs of the planned methods and seeds (results, checkpoints, studies)
  /// and train them afresh. Without it, a stored run is reused (or continued) only when it was
  /// made with the same settings (its settings key, util/settings_key.h), and a run stored with
  /// other settings stops the experiment before anything is trained, naming what differs.
  bool fresh = false;
  /// Worker mode: execute the runs this process can claim, then return without tables, reports or
  /// progress (the process that started the workers writes them).
  bool worker = false;
  /// The ranks of a group (experiment/run_queue.h) to share the runs with, across machines; null
  /// = this process alone. Every rank calls `run_experiment` with the same config and options;
  /// rank 0 gives the others its teacher, collects their runs into its folder and writes the
  /// tables; the others return after their last run, without tables. Not with `jobs` > 1.
  std::shared_ptr<RunQueue> queue;
};

/// The default method list: none, naive, random, gradient, proposed, tpe.
std::vector<std::string> default_methods();

/// Every method an experiment accepts: the MetaOptimizer registry's and the searches, sorted.
std::vector<std::string> experiment_method_names();

/// The folder of an equal-budget experiment inside `out`: "budget-<S>s" ("budget-60s").
std::string budget_folder_name(double seconds);

/// Runs (or resumes) the experiment and writes its reports; see the header comment.
ExperimentResult run_experiment(const Config& config, const ExperimentOptions& options);

/// Summarizes rows into the table (methods in the given order); `notes` are appended to the
/// methods' built-in notes.
std::vector<MethodRow> summarize_methods(const std::vector<RunRow>& runs,
                                         const std::vector<std::string>& methods,
                                         const std::string& data_name,
                                         const std::map<std::string, std::string>& notes = {},
                                         const std::string& reference = "none");

/// Reads an experiment folder written by `run_experiment` (its runs' result rows).
ExperimentResult load_experiment(const std::filesystem::path& dir);

/// The table as Markdown (mean (max) ± std, as the paper prints it), CSV and JSON.
std::string table_markdown(const ExperimentResult& r);
std::string table_csv(const ExperimentResult& r);
nlohmann::json table_json(const ExperimentResult& r);

/// Writes table.{md,csv,json} and curves.csv into `dir` (atomically), with `more_markdown`
/// appended to table.md: the tables every experiment shares (the multi-layer one adds its own).
void write_tables(const ExperimentResult& r, const std::filesystem::path& dir,
                  const std::string& more_markdown = "");

/// `write_tables`, runs.csv (with each run's initial and final λ1, T) and trajectories.md, and
/// draws the plots.
void write_reports(const ExperimentResult& r, const std::filesystem::path& dir);

}  // namespace metadistill
