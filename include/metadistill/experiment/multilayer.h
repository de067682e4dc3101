#pragma once
/// The multi-layer distillation experiment ("multilayer-vid-distillation", DESIGN.md 3.4):
/// methods × runs of `MultiLayerTrainer` on one data set and teacher, the results table, per-run
/// CSVs and the gnuplot figures (accuracy by epoch; the learned pair weights drawn as in the
/// paper's Fig. 7: teacher and student layers as two columns of points, λij as line widths).
///
/// Config: the usual YAML sections (data, teacher, student with its `train`, runs, seed, threads,
/// out, cache, preset; see experiment/config.h) plus a `multilayer:` section read here:
///   multilayer:
///     methods: [none, hinton, pairwise, all-pairs-random, all-pairs-fd]
///     teacher_taps: [conv1, conv2, conv3, fc1]
///     student_taps: [conv1, conv2, conv3, fc1]
///     beta: 0.5            random_beta: false
///     hinton_lambda1: 0.5  temperature: 4.0
///     meta_optimizer: adam  meta_lr: 0.01  beta_lr: 0.001  beta_min: 0.2  beta_max: 0.8
///     fd_scale: 0.01  hyper_every: 1  val_temperature: 1.0
///     vid_hidden: 0  vid_init_variance: 5.0  vid_eps: 1.0e-5  vid_weight_decay: false
///     sensitivity: {methods: [hinton], beta: [...], temperature: [...]}  (see below)
/// The loss keys (teacher_taps, student_taps, beta, random_beta, hinton_lambda1, temperature,
/// vid_hidden, vid_init_variance, vid_eps, vid_weight_decay) may stand in the one `loss:`
/// section instead, `loss: {kind: vid, teacher_taps: [...], beta: 0.5, ...}`, which alone makes
/// the config a multi-layer one (a key in both places is refused).
/// Every method trains on D_train only (unlike the Hinton experiment's `none`, which adds D_val),
/// so the rows differ only in the loss.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "metadistill/data/dataset.h"
#include "metadistill/experiment/config.h"
#include "metadistill/experiment/experiment.h"
#include "metadistill/train/multilayer.h"

namespace metadistill {

class RunQueue;  // experiment/run_queue.h

/// The sensitivity study of the paper's Figs. 5 and 6 (experiment/multilayer_sensitivity.h):
/// final test accuracy against β, the weight of CE (λ1 for "hinton"), and against the Hinton
/// temperature T, every other setting as in the `multilayer:` section:
///   multilayer:
///     sensitivity: {methods: [hinton, pairwise], beta: [0.1, 0.5, 0.9], temperature: [1, 4, 16]}
struct SensitivityConfig {
  /// Methods whose β is swept (not "none"; the learned methods start from each β).
  std::vector<std::string> methods = {"hinton"};
  /// β values in [0, 1]; empty = no β sweep.
  std::vector<double> beta;
  /// "hinton" temperatures (> 0); empty = no T sweep.
  std::vector<double> temperature;

  /// Throws `Error` naming the value: an unknown method or "none", β outside [0, 1], T ≤ 0.
  void validate() const;
};

/// A base config and the multi-layer settings.
struct MultiLayerConfig {
  Config base;
  /// Settings shared by every method; `method` is set per run.
  MultiLayerOptions options;
  /// Methods compared (default: none, hinton, pairwise, all-pairs-random, all-pairs-fd).
  std::vector<std::string> methods;
  SensitivityConfig sensitivity;
};

/// Reads a config with a `multilayer:` section; throws `Error` naming the file and key for an
/// unknown key, a wrong type or a bad value (the other sections as `load_config` checks them).
MultiLayerConfig load_multilayer_config(const std::filesystem::path& path);

/// True when the YAML file at `path` has a top-level `multilayer:` section or a `loss:` section
/// of kind vid (then `experiment` runs it as a multi-layer experiment); false for a file that is
/// missing or not YAML, which the config reader then reports.
bool has_multilayer_section(const std::filesystem::path& path);

/// Options of `run_multilayer_experiment` and `run_multilayer_sensitivity`.
struct MultiLayerExperimentOptions {
  /// Methods to run (empty = the config's).
  std::vector<std::string> methods;
  /// Runs per method, seeds base.seed .. base.seed + runs − 1 (0 = the config's `runs`).
  int64_t runs = 0;
  /// Per-epoch progress lines on stderr.
  bool verbose = true;
  /// Reuse a run whose folder holds a result.json written with the same settings (data, teacher
  /// file, student training, multilayer options, seed), so an interrupted experiment picks up
  /// where it stopped; false retrains every run.
  bool reuse = true;
  /// Processes that train runs at once, this one included; > 1 needs `worker_command`. As in
  /// `run_experiment` (experiment/experiment.h): a run is claimed through a lock file in its
  /// folder and trained by whichever process claims it; the numbers do not depend on which.
  int jobs = 1;
  /// argv of one worker: a process calling this function with `worker = true` and `reuse = true`.
  std::vector<std::string> worker_command;
  /// Worker mode: train the runs this process can claim, then return (no reports).
  bool worker = false;
  /// The ranks of a group to share the runs with, as in `ExperimentOptions::queue`.
  std::shared_ptr<RunQueue> queue;
};

/// What every run of one multi-layer config shares: the data with its splits and the teacher
/// (loaded, or trained and saved by `ensure_teacher`). Not movable: `data` points into it.
struct MultiLayerSession {
  DataBundle bundle;
  DataSet validation;
  LoadedModel teacher;
  ModelSpec student_spec;
  MultiLayerData data;
  torch::Device device{torch::kCPU};
  double teacher_test_accuracy = 0;
  /// Hash of the teacher file's bytes (part of each run's fingerprint).
  std::string teacher_hash;

  MultiLayerSession() = default;
  MultiLayerSession(const MultiLayerSession&) = delete;
  MultiLayerSession& operator=(const MultiLayerSession&) = delete;
};

/// Loads the data and the teacher of `config` and checks both models' taps (an `Error` lists the
/// taps a model offers), before any student trains.
std::unique_ptr<MultiLayerSession> open_multilayer_session(const MultiLayerConfig& config,
                                                           bool verbose);

/// Trains one student with `options` and `seed` into `dir` (the trainer's outputs plus
/// result.json), or, with `reuse`, returns the result a finished run with the same settings left
/// there (`*reused` says which). With `group`, every rank of it calls this with the same
/// arguments and the run is data-parallel (train/data_parallel.h); rank 0 writes the files.
MultiLayerResult train_multilayer_run(MultiLayerSession& session, const MultiLayerConfig& config,
                                      const MultiLayerOptions& options, uint64_t seed,
                                      const std::filesystem::path& dir, bool reuse, bool verbose,
                                      bool* reused = nullptr,
                                      std::shared_ptr<DataParallel> group = nullptr);

/// One run of one method.
struct MultiLayerRun {
  std::string method;
  uint64_t seed = 0;
  MultiLayerResult result;
};

/// Everything an experiment produced.
struct MultiLayerExperimentResult {
  std::string data, preset, teacher_model, student_model;
  double teacher_test_accuracy = 0;
  std::vector<std::string> methods;
  std::vector<MultiLayerRun> runs;
  /// The method the paired differences are taken against (config `reference`, default none).
  std::string reference = "none";
};

/// One run as a row of the experiment table every experiment shares (experiment/experiment.h):
/// accuracies, curve, cost and the last epoch's measurements (β is not a Hinton λ: it stays in
/// `multilayer_details`).
RunRow multilayer_run_row(const MultiLayerRun& run);

/// The runs as that table: the same summary, paired differences against `reference`, tests and
/// cost columns as a Hinton experiment's.
ExperimentResult multilayer_rows(const MultiLayerExperimentResult& r);

/// Runs every method `runs` times: loads the data, loads or trains the teacher
/// (`ensure_teacher`), trains the students; writes each run into
/// `<out>/runs/<method>/seed<k>/` and, at the end, results.csv, table.md and the plots (when
/// gnuplot is present) into `<out>`.
MultiLayerExperimentResult run_multilayer_experiment(const MultiLayerConfig& config,
                                                     const MultiLayerExperimentOptions& options);

/// The results table (Markdown): the shared experiment table of `multilayer_rows` followed by
/// `multilayer_details`.
std::string multilayer_table(const MultiLayerExperimentResult& r);

/// What only a multi-layer experiment has: the final β per method and, for the pair methods,
/// the final λij as a teacher × student matrix (means over runs).
std::string multilayer_details(const MultiLayerExperimentResult& r);

/// Writes results.csv (one row per run, with β), the shared tables (table.{md,csv,json},
/// curves.csv; experiment/experiment.h `write_tables`) into `dir` and draws the plots into
/// `dir`/plots; returns the plot files written (none without gnuplot).
std::vector<std::filesystem::path> write_multilayer_reports(const MultiLayerExperimentResult& r,
                                                            const std::filesystem::path& dir);

/// Draws the pair weights `lambda` of `pairs` as a two-column graph into `dir`/`name`.{gp,png,svg}
/// (teacher taps left, student taps right, line width ∝ λij / max λ); returns the PNG path.
/// Throws `Error` when gnuplot fails.
std::filesystem::path draw_pair_weights(const std::vector<TapPair>& pairs,
                                        const std::vector<double>& lambda,
                                        const std::vector<std::string>& teacher_taps,
                                        const std::vector<std::string>& student_taps,
                                        const std::filesystem::path& dir, const std::string& name,
                                        const std::string& title);

}  // namespace metadistill
