#pragma once
/// The e1/e2 sweep of the proposed method (paper Fig. 6): accuracy for e1 = e2 swept over a list,
/// and for e2 swept with e1 fixed. Each point is R runs of `proposed` with those settings; runs are
/// stored and resumed like an experiment's.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "metadistill/experiment/config.h"
#include "metadistill/experiment/statistics.h"

namespace metadistill {

class RunQueue;  // experiment/run_queue.h

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
  /// Processes that train runs at once, this one included (as in ExperimentOptions: each run's
  /// folder is claimed with a lock, so the results equal a serial sweep's); > 1 needs
  /// `worker_command`, the command line of a worker (the same sweep with `worker` set).
  int jobs = 1;
  /// A worker trains the runs nobody holds and returns without tables or plots.
  bool worker = false;
  std::vector<std::string> worker_command;
  /// The ranks of a group to share the runs with, as in `ExperimentOptions::queue`.
  std::shared_ptr<RunQueue> queue;
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
