// `metadistill multilayer [CONFIG]`: multi-layer VID distillation, every method × runs; prints
// the results table, writes per-run CSVs and the plots into the output folder.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/experiment/multilayer_sensitivity.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"

namespace metadistill::cli {

namespace {

struct MultiLayerCliOptions {
  CommonOptions common;
  MultiLayerRun run;
};

constexpr const char* kDefaultConfig = "configs/multilayer-fmnist.yaml";

}  // namespace

int run_multilayer(const CommonOptions& common, const MultiLayerRun& run) {
  refuse_ranks(common);
  const MultiLayerCliOptions o{common, run};
  const std::string path = o.common.config_path.empty() ? kDefaultConfig : o.common.config_path;
  MultiLayerConfig c = load_multilayer_config(path);
  // The shared flags, as `resolve_config` applies them to an ordinary config.
  if (o.common.threads) c.base.threads = *o.common.threads;
  if (o.common.device) c.base.device = *o.common.device;
  if (o.common.out) c.base.out = *o.common.out;
  if (o.common.epochs) c.base.student.trainer.epochs = *o.common.epochs;
  if (o.common.data_root) c.base.data.root = *o.common.data_root;
  if (o.run.seed) c.base.seed = *o.run.seed;
  c.base.resolve_paths();
  c.base.validate();
  parse_device(c.base.device);
  set_threads(c.base.threads);
  if (o.run.jobs > 1 && !o.common.threads)
    c.base.threads = threads_per_job(c.base.threads, o.run.jobs);

  MultiLayerExperimentOptions eo;
  eo.jobs = o.run.jobs;
  eo.worker = o.run.worker;
  if (o.run.jobs > 1) eo.worker_command = worker_command_line(c.base.threads);
  eo.methods = o.run.methods;
  eo.runs = o.run.runs;
  eo.verbose = !o.common.quiet;
  eo.reuse = !o.run.fresh;
  if (o.run.sensitivity) {
    refuse_ranks(CommonOptions());  // the sensitivity study runs in one process
    check(o.run.jobs == 1, "--jobs {}: the sensitivity study runs in one process", o.run.jobs);
    auto r = run_multilayer_sensitivity(c, eo);
    std::cout << sensitivity_table(r) << "\nsensitivity.csv, sensitivity.md and plots in "
              << (std::filesystem::path(c.base.out) / "sensitivity").string() << "\n";
    return 0;
  }
  // A rank of a group: the ranks share out the runs; rank 0 writes the folder and the table.
  eo.queue = RunQueue::from_environment();
  auto r = run_multilayer_experiment(c, eo);
  if (o.run.worker || (eo.queue && !eo.queue->root())) return 0;
  std::cout << multilayer_table(r) << "\nper-run CSVs, results.csv, table.md and plots in "
            << c.base.out << "\n";
  return 0;
}

void setup_multilayer(CLI::App& app) {
  auto o = std::make_shared<MultiLayerCliOptions>();
  auto* sub = app.add_subcommand(
      "multilayer",
      "multi-layer VID distillation (none, hinton, pairwise, all-pairs fixed/random/learned); "
      "prints the table, writes CSVs and plots");
  add_common_options(*sub, o->common);
  sub->add_option("--methods", o->run.methods,
                  "methods: none, hinton, pairwise, all-pairs-fixed, all-pairs-random, "
                  "all-pairs-exact, all-pairs-fd, all-pairs-online, all-pairs-proposed, "
                  "all-pairs-online-proposed (default: the config's)")
      ->delimiter(',');
  sub->add_option("--runs", o->run.runs, "runs per method (default: the config's)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--seed", o->run.seed, "seed of the first run (default: the config's)")
      ->check(seed_validator());
  sub->add_flag("--sensitivity", o->run.sensitivity,
                "run the config's sensitivity study (accuracy against beta and T) instead; "
                "--methods then names the methods whose beta is swept");
  sub->add_flag("--fresh", o->run.fresh,
                "retrain every run (default: reuse runs finished with the same settings)");
  add_jobs_options(*sub, o->run.jobs, o->run.worker);
  o->common.data_parallel = true;  // its ranks share out the runs (experiment/run_queue.h)
  sub->callback([o]() { throw CommandResult(run_multilayer(o->common, o->run)); });
}

}  // namespace metadistill::cli
