#pragma once
/// Where the metaparameters went: a per-method summary of the trajectory.csv files of an
/// experiment folder (start and end values, how often the domain bounds were hit, the share of
/// hyper-steps and extrapolated steps), as a Markdown table.
#include <filesystem>
#include <string>
#include <vector>

namespace metadistill {

/// Summary of one method's trajectories over its runs.
struct TrajectorySummary {
  std::string method;
  int64_t runs = 0;
  /// Means over runs of the first and the last recorded value.
  double lambda1_start = 0, lambda1_end = 0, temperature_start = 0, temperature_end = 0;
  /// Ranges over runs of the last value.
  double lambda1_end_min = 0, lambda1_end_max = 0, temperature_end_min = 0, temperature_end_max = 0;
  /// Share of recorded steps (over all runs) with λ1 at 0 or 1, and T at 0.1 or 10.
  double lambda1_at_bound = 0, temperature_at_bound = 0;
  /// Share of recorded steps in each phase ("hyper", "predict", ...), as "phase share" pairs.
  std::vector<std::pair<std::string, double>> phases;
};

/// Reads `<dir>/runs/<method>/seed*/trajectory.csv` for every method folder that has them;
/// methods in folder-name order. Throws `Error` naming the file for a malformed CSV.
std::vector<TrajectorySummary> summarize_trajectories(const std::filesystem::path& dir);

/// The summaries as a Markdown table with a one-line legend.
std::string trajectory_table(const std::vector<TrajectorySummary>& rows);

}  // namespace metadistill
