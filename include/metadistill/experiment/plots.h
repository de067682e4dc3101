#pragma once
/// Plots of an experiment folder, drawn by gnuplot from the CSV/data files (STYLE.md item 8):
/// each plot is a .gp script written next to its data, then run; PNG and SVG.
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace metadistill {

struct ExperimentResult;

/// True when a `gnuplot` program is on PATH.
bool gnuplot_available();

/// `dir`/plots, created, when gnuplot is present; otherwise prints a warning (once per call) and
/// returns nothing, and the caller draws nothing.
std::optional<std::filesystem::path> plots_folder(const std::filesystem::path& dir);

/// Runs gnuplot on `script` (in the script's folder); throws `Error` with gnuplot's exit status.
void run_gnuplot(const std::filesystem::path& script);

/// Writes `dir/name.gp`, a gnuplot script that draws `body` (after `setup`) to name.png and
/// name.svg, CSV input; returns its path. Draw it with `run_gnuplot`.
std::filesystem::path write_gnuplot_script(const std::filesystem::path& dir, const std::string& name,
                                           const std::string& setup, const std::string& body);

/// Draws into `dir`/plots: accuracy against epoch per method (paper Fig. 4), λ1 and T
/// trajectories of every run of the optimizing methods, and the synthetic data set (Fig. 5) when
/// `dir`/synthetic.dat exists. Returns the files written; prints a warning and draws nothing when
/// gnuplot is missing.
std::vector<std::filesystem::path> draw_experiment_plots(const ExperimentResult& r,
                                                         const std::filesystem::path& dir);

}  // namespace metadistill
