#pragma once
/// A study's history as data (STYLE.md item 8): one row per trial with the best value so far,
/// written as CSV and JSON, and plotted from the CSV by gnuplot (best value so far against trial).
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/search/study.h"

namespace metadistill {

/// One trial of the history.
struct HistoryRow {
  int64_t number = 0;
  std::string state;
  std::optional<double> value;
  /// Best complete value among trials 0..number (by number), if any yet.
  std::optional<double> best_so_far;
  ParamValues params;
  int64_t retry_of = -1;
  /// Last reported step and value (pruned trials end there).
  int64_t last_step = -1;
  std::optional<double> last_intermediate;
  double started = 0, finished = 0, seconds = 0;
  std::string worker, message;
};

/// The rows of `trials` in number order, for a study optimizing in `direction`.
std::vector<HistoryRow> study_history(const std::vector<FrozenTrial>& trials, Direction direction);

/// CSV with a header: number,state,value,best_so_far,<parameters>,retry_of,last_step,
/// last_intermediate,started,finished,seconds,worker,message (empty cells for missing values).
std::string history_csv(const SearchSpace& space, const std::vector<HistoryRow>& rows);
/// {"study": {...settings}, "trials": [{...}, ...]}.
nlohmann::json history_json(const StudySettings& settings, const std::vector<HistoryRow>& rows);

/// Files written by `export_history`.
struct HistoryFiles {
  std::filesystem::path csv, json, script, png, svg;
  /// Empty when the plots were drawn; otherwise why not (gnuplot missing or failing).
  std::string plot_warning;
};

/// Writes <dir>/history.csv and history.json (atomically), then best_so_far.gp and, by running
/// gnuplot on it, best_so_far.png and best_so_far.svg. Without gnuplot the plots are skipped and
/// `plot_warning` says so.
HistoryFiles export_history(const Study& study, const std::filesystem::path& dir);

/// The gnuplot script that draws the best value so far (and every complete trial's value)
/// against trial number from `csv` into `png` and `svg`; `n_trials` sets the tick spacing.
std::string best_so_far_script(const std::filesystem::path& csv, const std::filesystem::path& png,
                               const std::filesystem::path& svg, const std::string& title,
                               const std::string& objective_label, int64_t n_trials);

}  // namespace metadistill
