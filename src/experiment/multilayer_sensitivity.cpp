#include "metadistill/experiment/multilayer_sensitivity.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "metadistill/experiment/plots.h"
#include "metadistill/experiment/statistics.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

void SensitivityConfig::validate() const {
  const auto names = multilayer_method_names();
  for (const auto& m : methods) {
    check(std::find(names.begin(), names.end(), m) != names.end(),
          "sensitivity method '{}': expected one of {}", m, fmt::join(names, ", "));
    check(m != "none", "sensitivity method 'none' has no beta to vary (CE only)");
  }
  for (double b : beta)
    check(std::isfinite(b) && b >= 0 && b <= 1, "sensitivity beta = {}: expected values in [0, 1]",
          b);
  for (double t : temperature)
    check(std::isfinite(t) && t > 0, "sensitivity temperature = {}: expected values > 0", t);
}

MultiLayerOptions sensitivity_options(const MultiLayerOptions& base, const std::string& method,
                                      const std::string& parameter, double value) {
  MultiLayerOptions o = base;
  o.method(method);
  if (parameter == "beta") {
    if (method == "hinton")
      o.hinton_lambda1(value);
    else
      o.beta(value);
    // A learned β starts from `value`; widen its range when the value lies outside it.
    o.beta_min(std::min(o.beta_min(), value));
    o.beta_max(std::max(o.beta_max(), value));
  } else if (parameter == "temperature") {
    o.temperature(value);
  } else {
    fail("sensitivity parameter '{}': expected beta or temperature", parameter);
  }
  o.validate();
  return o;
}

SensitivityResult run_multilayer_sensitivity(const MultiLayerConfig& config,
                                             const MultiLayerExperimentOptions& options) {
  SensitivityConfig sweep = config.sensitivity;
  if (!options.methods.empty()) sweep.methods = options.methods;
  sweep.validate();
  check(!sweep.beta.empty() || !sweep.temperature.empty(),
        "{}: no sensitivity study configured: add multilayer.sensitivity.beta and/or "
        "multilayer.sensitivity.temperature", config.base.source);
  // Every point's options, built (and so checked) before anything trains. The T sweep is of
  // the Hinton loss, the one term with a temperature.
  struct Point {
    std::string method, parameter;
    double value;
    MultiLayerOptions options;
  };
  std::vector<Point> points;
  auto add = [&](const std::string& method, const std::string& parameter, double value) {
    points.push_back({method, parameter, value,
                      sensitivity_options(config.options, method, parameter, value)});
  };
  for (const auto& m : sweep.methods)
    for (double b : sweep.beta) add(m, "beta", b);
  for (double t : sweep.temperature) add("hinton", "temperature", t);

  const Config& c = config.base;
  const int64_t runs = options.runs > 0 ? options.runs : c.runs;
  auto session = open_multilayer_session(config, options.verbose);
  SensitivityResult r;
  r.data = session->bundle.name;
  r.teacher_model = c.teacher.model;
  r.student_model = c.student.model;
  r.teacher_test_accuracy = session->teacher_test_accuracy;
  const fs::path dir = fs::path(c.out) / "sensitivity";
  for (const auto& p : points) {
    for (int64_t k = 0; k < runs; ++k) {
      SensitivityPoint sp{p.method, p.parameter, p.value, c.seed + static_cast<uint64_t>(k)};
      const fs::path run_dir = dir / "runs" /
                               fmt::format("{}-{}-{:g}", p.method, p.parameter, p.value) /
                               fmt::format("seed{}", sp.seed);
      const auto result = train_multilayer_run(*session, config, p.options, sp.seed, run_dir,
                                               options.reuse, options.verbose);
      sp.final_test_accuracy = result.final_test_accuracy;
      sp.best_test_accuracy = result.best_test_accuracy;
      sp.seconds = result.seconds;
      if (options.verbose)
        std::cerr << fmt::format("sensitivity {} {} = {:g} seed {}: final test accuracy {:.4f}\n",
                                 p.method, p.parameter, p.value, sp.seed, sp.final_test_accuracy);
      r.points.push_back(sp);
      write_sensitivity_reports(r, dir);
    }
  }
  return r;
}

namespace {

// (method, parameter, value) → the final accuracies of its runs, in first-seen order.
struct Group {
  std::string method, parameter;
  double value;
  std::vector<double> accuracy;
};

std::vector<Group> groups_of(const SensitivityResult& r) {
  std::vector<Group> out;
  for (const auto& p : r.points) {
    auto it = std::find_if(out.begin(), out.end(), [&](const Group& g) {
      return g.method == p.method && g.parameter == p.parameter && g.value == p.value;
    });
    if (it == out.end()) it = out.insert(out.end(), Group{p.method, p.parameter, p.value, {}});
    it->accuracy.push_back(p.final_test_accuracy);
  }
  return out;
}

}  // namespace

std::string sensitivity_table(const SensitivityResult& r) {
  std::ostringstream s;
  s << fmt::format("Sensitivity on {}: teacher {} (test accuracy {:.4f}) -> student {}\n\n",
                   r.data, r.teacher_model, r.teacher_test_accuracy, r.student_model);
  s << "| method | parameter | value | runs | final test acc, mean (max) | std |\n"
       "|---|---|---|---|---|---|\n";
  for (const auto& g : groups_of(r)) {
    const auto f = summarize(g.accuracy);
    s << fmt::format("| {} | {} | {:g} | {} | {:.4f} ({:.4f}) | {:.4f} |\n", g.method,
                     g.parameter == "beta" && g.method == "hinton" ? "beta (lambda1)" : g.parameter,
                     g.value, f.n, f.mean, f.max, f.std);
  }
  return s.str();
}

std::vector<fs::path> write_sensitivity_reports(const SensitivityResult& r, const fs::path& dir) {
  fs::create_directories(dir);
  std::ostringstream csv;
  csv << "method,parameter,value,seed,final_test_accuracy,best_test_accuracy,seconds\n";
  for (const auto& p : r.points)
    csv << fmt::format("{},{},{:g},{},{:.6f},{:.6f},{:.3f}\n", p.method, p.parameter, p.value,
                       p.seed, p.final_test_accuracy, p.best_test_accuracy, p.seconds);
  write_file_atomic(dir / "sensitivity.csv", csv.str());
  write_file_atomic(dir / "sensitivity.md", sensitivity_table(r));

  std::vector<fs::path> written;
  const auto folder = plots_folder(dir);
  if (!folder) return written;
  const fs::path& plots = *folder;
  const auto groups = groups_of(r);
  for (const std::string parameter : {"beta", "temperature"}) {
    // One data block per method: value, mean, min, max of the final test accuracy.
    std::map<std::string, std::map<double, Summary>> curves;
    for (const auto& g : groups)
      if (g.parameter == parameter) curves[g.method][g.value] = summarize(g.accuracy);
    if (curves.empty()) continue;
    std::ostringstream data;
    std::string body = "plot ";
    size_t index = 0;
    for (const auto& [method, curve] : curves) {
      data << "# " << method << "\n";
      for (const auto& [value, f] : curve)
        data << fmt::format("{:g},{:.6f},{:.6f},{:.6f}\n", value, f.mean, f.min, f.max);
      data << "\n\n";
      body += fmt::format(
          "{}'sensitivity-{}.dat' index {} using 1:2:3:4 with yerrorlines title '{}'",
          index ? ", \\\n     " : "", parameter, index, method);
      ++index;
    }
    write_file_atomic(plots / fmt::format("sensitivity-{}.dat", parameter), data.str());
    const bool temperature = parameter == "temperature";
    const std::string name = fmt::format("sensitivity-{}", parameter);
    run_gnuplot(write_gnuplot_script(
        plots, name,
        fmt::format("set title 'Test accuracy against {} (mean, min-max over runs; {}: {} -> {})'\n"
                    "set xlabel '{}'\nset ylabel 'test accuracy'\nset key bottom right\nset grid\n{}",
                    temperature ? "T" : "beta", r.data, r.teacher_model, r.student_model,
                    temperature ? "temperature T (Hinton loss)"
                                : "beta (weight of CE; lambda1 for hinton)",
                    temperature ? "set logscale x 2" : "set xrange [-0.05:1.05]"),
        body));
    written.push_back(plots / (name + ".png"));
  }
  return written;
}

}  // namespace metadistill
