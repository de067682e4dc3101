#pragma once
/// The e1/e2 sweep of the proposed method (paper Fig. 6): accuracy for e1 = e2 swept over a list,
/// and for e2 swept with e1 fixed. Each point is R runs of `proposed` with those settings; runs are
/// stored and resumed like an experiment's.
#include <filesystem>
#include <vector>

#include "metadistill/experiment/config.h"
#include "metadistill/experiment/statistics.h"

namespace metadistill {

/// Options of `run_sweep`.
struct SweepOptions {
  /// Values for the e1 = e2 curve.
  std::vector<int64_t> equal = {10, 100, 500};
  /// Values of e2 for the second curve, with e1 = `fixed_e1`.
  std::vector<int64_t> e2_values = {10, 50, 100, 500};
  int64_t fixed_e1 = 10;
  /// Runs per point; <= 0 = the config's.
  int64_t runs = 0;
  /// Output folder; empty = <config out>/sweep.
  std::filesystem::path out;
};

/// One point of a sweep curve.
struct SweepPoint {
  std::string curve;  // "e1=e2" or "e2 (e1=10)"
  int64_t e1 = 0, e2 = 0;
  Summary final_accuracy;
  double hyper_step_share = 0;  // hyper-steps / steps, mean over runs
};

/// Runs (or resumes) the sweep; writes sweep.csv, sweep.md and plots/sweep.{png,svg}.
std::vector<SweepPoint> run_sweep(const Config& config, const SweepOptions& options);

}  // namespace metadistill
