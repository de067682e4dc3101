#pragma once
/// The sensitivity study of the multi-layer paper ("multilayer-vid-distillation", Figs. 5 and 6):
/// the final test accuracy of students trained with one setting changed at a time, β (the weight
/// of CE; λ1 for "hinton") for each method of `SensitivityConfig::methods`, and the Hinton
/// temperature T; mean and max over the config's runs, as a table, CSV and two gnuplot figures.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "metadistill/experiment/multilayer.h"

namespace metadistill {

/// One trained student of the study.
struct SensitivityPoint {
  std::string method;
  /// "beta" or "temperature".
  std::string parameter;
  double value = 0;
  uint64_t seed = 0;
  double final_test_accuracy = 0, best_test_accuracy = 0, seconds = 0;
};

/// Everything a study produced.
struct SensitivityResult {
  std::string data, teacher_model, student_model;
  double teacher_test_accuracy = 0;
  std::vector<SensitivityPoint> points;
};

/// The options one point of the study trains with: `base` with its method, and β (λ1 for
/// "hinton") or T set to `value`. Throws `Error` for an unknown parameter.
MultiLayerOptions sensitivity_options(const MultiLayerOptions& base, const std::string& method,
                                      const std::string& parameter, double value);

/// Trains every point of `config.sensitivity` `runs` times (the session, seeds and run reuse of
/// `run_multilayer_experiment`) into `<out>/sensitivity/runs/<method>-<parameter>-<value>/seed<k>`
/// and writes the reports into `<out>/sensitivity` after every run. `options.methods`, when set,
/// replaces `config.sensitivity.methods`. Throws `Error` when the config asks for no sweep.
SensitivityResult run_multilayer_sensitivity(const MultiLayerConfig& config,
                                             const MultiLayerExperimentOptions& options);

/// The study as Markdown: one row per (method, parameter, value), final test accuracy mean (max)
/// over runs and its standard deviation.
std::string sensitivity_table(const SensitivityResult& r);

/// Writes sensitivity.csv (one row per run) and sensitivity.md into `dir` and draws
/// plots/sensitivity-beta and plots/sensitivity-temperature (mean over runs, one line per method)
/// when gnuplot is present; returns the plots written.
std::vector<std::filesystem::path> write_sensitivity_reports(const SensitivityResult& r,
                                                             const std::filesystem::path& dir);

}  // namespace metadistill
