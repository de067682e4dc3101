// `metadistill sweep [CONFIG]`: the e1/e2 sweep of the proposed method (paper Fig. 6); for a
// config with a `multilayer:` section, its sensitivity study (accuracy against β and T, the
// config's `multilayer.sensitivity`), as `multilayer --sensitivity` runs it.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/experiment/sweep.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill::cli {

namespace {

struct SweepCliOptions {
  CommonOptions common;
  SweepOptions sweep;
  CLI::App* command = nullptr;
};

int run(const SweepCliOptions& o) {
  if (!o.common.config_path.empty() && has_multilayer_section(o.common.config_path)) {
    for (const char* flag : {"--equal", "--e2", "--e1", "--sweep-out"})
      check(o.command->count(flag) == 0,
            "{} belongs to the e1/e2 sweep of `proposed`; {} has a multilayer: section, whose "
            "sweep is its sensitivity study (multilayer.sensitivity: methods, beta, temperature; "
            "results in <out>/sensitivity)",
            flag, o.common.config_path);
    MultiLayerRun run;
    run.sensitivity = true;
    run.runs = o.sweep.runs;
    run.jobs = o.sweep.jobs;
    run.worker = o.sweep.worker;
    return run_multilayer(o.common, run);
  }
  Config c = resolve_config(o.common);
  SweepOptions so = o.sweep;
  if (so.jobs > 1 && !o.common.threads) c.threads = threads_per_job(c.threads, so.jobs);
  if (so.jobs > 1) so.worker_command = worker_command_line(c.threads);
  so.queue = RunQueue::from_environment();  // a rank of a group: the ranks share out the runs
  run_sweep(c, so);
  if (so.worker || (so.queue && !so.queue->root())) return 0;
  const auto dir = o.sweep.out.empty() ? std::filesystem::path(c.out) / "sweep" : o.sweep.out;
  std::cout << read_file(dir / "sweep.md") << "\nresults and plots in " << dir.string() << "\n";
  return 0;
}

}  // namespace

void setup_sweep(CLI::App& app) {
  auto o = std::make_shared<SweepCliOptions>();
  auto* sub = app.add_subcommand(
      "sweep",
      "accuracy of `proposed` against e1 = e2 and against e2; for a multi-layer config, "
      "accuracy against beta and T (its sensitivity study)");
  add_common_options(*sub, o->common);
  sub->add_option("--equal", o->sweep.equal, "values for the e1 = e2 curve")->delimiter(',');
  sub->add_option("--e2", o->sweep.e2_values, "values of e2 for the second curve")->delimiter(',');
  sub->add_option("--e1", o->sweep.fixed_e1, "e1 of the second curve");
  sub->add_option("--runs", o->sweep.runs, "runs per point (default: the config's)");
  sub->add_option("--sweep-out", o->sweep.out, "output folder (default: <out>/sweep)");
  add_jobs_options(*sub, o->sweep.jobs, o->sweep.worker);
  o->common.data_parallel = true;  // its ranks share out the runs (experiment/run_queue.h)
  o->command = sub;
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
