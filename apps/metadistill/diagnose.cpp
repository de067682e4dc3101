// `metadistill diagnose [CONFIG] --method gradient --at 0.1,0.25,0.5`: the long-horizon sign test
// and the learning-rate control of one run (experiment/diagnose.h); prints the report.
#include <algorithm>
#include <iostream>

#include <fmt/ranges.h>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/diagnose.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/util/error.h"

namespace metadistill::cli {

namespace {

struct DiagnoseCliOptions {
  CommonOptions common;
  DiagnoseOptions diagnose;
  bool no_control = false;
};

int run(const DiagnoseCliOptions& o) {
  Config c = resolve_config(o.common);
  DiagnoseOptions d = o.diagnose;
  d.control = !o.no_control;
  d.verbose = !o.common.quiet;
  const auto names = method_names();
  check(std::find(names.begin(), names.end(), d.method) != names.end(),
        "--method '{}': expected one of {}", d.method, fmt::join(names, ", "));
  d.validate();  // before the teacher or any run is trained
  check_before_start(c, {d.method});
  const auto out = o.common.out ? std::filesystem::path(*o.common.out)
                                : std::filesystem::path(c.out) /
                                      fmt::format("diagnose-{}-seed{}", d.method, d.seed);
  Prepared p = prepare(c);
  auto r = run_diagnose(c, p, d, out);
  std::cout << diagnose_report(r) << "\nreport, CSVs and plots in " << out.string() << "\n";
  return 0;
}

}  // namespace

void setup_diagnose(CLI::App& app) {
  auto o = std::make_shared<DiagnoseCliOptions>();
  auto* sub = app.add_subcommand(
      "diagnose",
      "long-horizon sign test (forks held at lambda +- delta) and learning-rate control of a run");
  add_common_options(*sub, o->common);
  sub->add_option("--method", o->diagnose.method, "method of the run (default gradient)");
  sub->add_option("--at", o->diagnose.at, "fork points, fractions of the run (default 0.1,0.25,0.5)")
      ->delimiter(',');
  sub->add_option("--delta-lambda1", o->diagnose.delta_lambda1, "lambda1 +- this (default 0.05)");
  sub->add_option("--delta-temperature", o->diagnose.delta_temperature, "T +- this (default 0.5)");
  sub->add_option("--seed", o->diagnose.seed, "seed of the run and its forks (default 0)")
      ->check(seed_validator());
  sub->add_flag("--no-control", o->no_control, "skip the learning-rate control trainings");
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
