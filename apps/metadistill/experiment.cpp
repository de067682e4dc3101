// `metadistill experiment [CONFIG]`: every method × runs, the results table and the plots.
// `metadistill report DIR`: the table and plots again from a finished (or partial) folder.
#include <filesystem>
#include <iostream>
#include <optional>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/experiment.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill::cli {

namespace {

struct ExperimentCliOptions {
  CommonOptions common;
  std::vector<std::string> methods;
  int64_t runs = 0;
  std::optional<double> budget_seconds;
  int jobs = 1;
  bool worker = false;
  bool fresh = false;
};

int run_experiment_command(const ExperimentCliOptions& o) {
  // One experiment command: a config with a `multilayer:` section is a multi-layer experiment.
  if (!o.common.config_path.empty() && has_multilayer_section(o.common.config_path)) {
    check(!o.budget_seconds, "--budget-seconds: multi-layer experiments ({}) have no "
          "equal-budget mode; give `time_limit` in the student's train: section instead",
          o.common.config_path);
    MultiLayerRun run;
    run.methods = o.methods;
    run.runs = o.runs;
    run.fresh = o.fresh;
    run.jobs = o.jobs;
    run.worker = o.worker;
    return run_multilayer(o.common, run);
  }
  Config c = resolve_config(o.common);
  if (o.jobs > 1 && !o.common.threads) c.threads = threads_per_job(c.threads, o.jobs);
  ExperimentOptions eo;
  eo.jobs = o.jobs;
  eo.worker = o.worker;
  if (o.jobs > 1) eo.worker_command = worker_command_line(c.threads);
  eo.methods = o.methods;
  eo.runs = o.runs;
  eo.verbose = false;
  eo.budget_seconds = o.budget_seconds;
  eo.fresh = o.fresh;
  // A rank of a group (WORLD_SIZE > 1: `metadistill launch`, torchrun, Slurm): the ranks share
  // out the runs; rank 0 writes the folder and prints the table.
  eo.queue = RunQueue::from_environment();
  auto r = run_experiment(c, eo);
  if (o.worker || (eo.queue && !eo.queue->root())) return 0;
  const std::string dir = r.budget_seconds > 0
                              ? (std::filesystem::path(c.out) / budget_folder_name(r.budget_seconds)).string()
                              : c.out;
  std::cout << table_markdown(r) << "\nresults, plots and per-run files in " << dir << "\n";
  return 0;
}

struct ReportOptions {
  std::string dir;
};

int run_report(const ReportOptions& o) {
  auto r = load_experiment(o.dir);
  write_reports(r, o.dir);
  std::cout << table_markdown(r);
  const auto trajectories = std::filesystem::path(o.dir) / "trajectories.md";
  if (std::filesystem::exists(trajectories))
    std::cout << "\nMetaparameter trajectories\n\n" << read_file(trajectories);
  return 0;
}

}  // namespace

void setup_experiment(CLI::App& app) {
  auto o = std::make_shared<ExperimentCliOptions>();
  auto* sub = app.add_subcommand(
      "experiment", "run every method of a config for R runs; print the table, draw the plots");
  add_common_options(*sub, o->common);
  sub->add_option("--methods", o->methods,
                  "methods to compare: MetaOptimizers (none, naive, random, gradient, proposed, "
                  "...) and the searches tpe, random-search (default: the config's, or "
                  "none,naive,random,gradient,proposed,tpe); for a config with a multilayer: "
                  "section the multi-layer methods (none, hinton, pairwise, all-pairs-*)")
      ->delimiter(',');
  sub->add_option("--budget-seconds", o->budget_seconds,
                  "equal wall-clock budget per run and method (overrides the config's "
                  "budget.seconds; 0 = none); results go to <out>/budget-<S>s/")
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--runs", o->runs, "runs per method (default: the config's)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--fresh", o->fresh,
                "discard the stored runs of these methods and seeds (results, checkpoints, "
                "studies) and train them afresh; without it, a run stored with other settings "
                "is refused");
  add_jobs_options(*sub, o->jobs, o->worker);
  o->common.data_parallel = true;  // its ranks share out the runs (experiment/run_queue.h)
  sub->callback([o]() { throw CommandResult(run_experiment_command(*o)); });

  auto r = std::make_shared<ReportOptions>();
  auto* rep = app.add_subcommand("report", "redraw the table and plots of an experiment folder");
  rep->add_option("dir", r->dir, "experiment folder")->required();
  rep->callback([r]() { throw CommandResult(run_report(*r)); });
}

}  // namespace metadistill::cli
