#pragma once
/// Diagnostics of a metaparameter method over a whole run (issue "The paper's horizon"):
///
/// - the long-horizon sign test: the run keeps a checkpoint at each given fraction of its epochs;
///   from each, forks train to the end with one metaparameter held at its value there ± δ (the
///   other held at its value; same seed, same data order). ĝ = (L_val(end; +δ) − L_val(end; −δ))
///   / (actual distance between the two values), the derivative the whole remaining run sees,
///   stands beside the greedy one-step hypergradient of the steps of the epoch after the fork
///   (mean, and the share of those steps whose sign agrees with ĝ);
/// - the learning-rate control: plain cross-entropy (λ1 = 1) on the same split, trained with the
///   run's per-epoch effective learning rate η·‖∇L‖/‖∇CE‖ as its schedule, beside the run and
///   beside cross-entropy at the nominal schedule. If the control follows the run's curve, the
///   metaparameters acted as a learning-rate schedule.
///
/// L_val is the cross-entropy (T = 1) on all of D_val at the end of the run. Every training is a
/// folder under `out` that a second call reuses (forks resume from their final checkpoints).
#include <filesystem>
#include <string>
#include <vector>

#include "metadistill/experiment/distill.h"

namespace metadistill {

/// Options of `run_diagnose`.
struct DiagnoseOptions {
  /// The method whose run is diagnosed (a method that trains on D_train, not `none`).
  std::string method = "gradient";
  /// Fork points as fractions of the run's epochs, each in (0, 1).
  std::vector<double> at = {0.1, 0.25, 0.5};
  /// Half-widths of the held values: λ1 ± delta_lambda1 (kept inside [0, 1]) and T ± δ_T (kept
  /// inside [0.1, 10]).
  double delta_lambda1 = 0.05, delta_temperature = 0.5;
  /// Seed of the run and its forks.
  uint64_t seed = 0;
  /// Train the learning-rate control runs.
  bool control = true;
  /// Per-epoch lines.
  bool verbose = false;

  DiagnoseOptions& with_method(std::string v) { method = std::move(v); return *this; }
  DiagnoseOptions& with_at(std::vector<double> v) { at = std::move(v); return *this; }
  DiagnoseOptions& with_seed(uint64_t v) { seed = v; return *this; }
  DiagnoseOptions& with_deltas(double l1, double t) { delta_lambda1 = l1; delta_temperature = t; return *this; }
  DiagnoseOptions& with_control(bool v) { control = v; return *this; }
  /// Throws `Error` naming the value when a fraction or δ is out of range or the method is `none`.
  void validate() const;
};

/// One metaparameter at one fork.
struct ForkRow {
  double fraction = 0;
  int64_t epoch = 0;              // the fork's checkpoint: after this many epochs
  std::string metaparameter;      // "lambda1" or "temperature"
  double value = 0;               // the run's value at the fork
  double value_minus = 0, value_plus = 0;
  double val_loss_minus = 0, val_loss_plus = 0;  // L_val at the end of each fork
  double long_horizon = 0;        // ĝ
  double greedy_mean = 0;         // mean greedy hypergradient over the next epoch's hyper-steps
  double greedy_agree = 0;        // share of those hyper-steps whose sign is ĝ's
  int64_t greedy_steps = 0;       // how many there were (0: the method took none there)
};

/// The control: one curve per training, by epoch.
struct ControlCurve {
  std::string name;  // "run", "ce-effective-lr", "ce-nominal-lr"
  std::vector<EpochMetrics> history;
};

/// Everything `run_diagnose` measured.
struct DiagnoseResult {
  std::string method, data;
  uint64_t seed = 0;
  RunResult run;
  std::vector<ForkRow> forks;
  std::vector<ControlCurve> control;
};

/// Trains (or reuses) the run, its forks and the control in `out`; writes report.md, forks.csv,
/// control.csv and plots/ (sign test, control curves).
DiagnoseResult run_diagnose(const Config& config, const Prepared& prepared,
                            const DiagnoseOptions& options, const std::filesystem::path& out);

/// The Markdown report of a diagnosis.
std::string diagnose_report(const DiagnoseResult& r);

}  // namespace metadistill
