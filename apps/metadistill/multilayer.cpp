// `metadistill multilayer [CONFIG]`: multi-layer VID distillation, every method × runs; prints
// the results table, writes per-run CSVs and the plots into the output folder.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/multilayer.h"
#include "metadistill/experiment/multilayer_sensitivity.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/train/data_parallel.h"
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

namespace {

// The config with the shared flags applied, as `resolve_config` applies them to an ordinary one.
MultiLayerConfig resolve_multilayer_config(const CommonOptions& common,
                                           std::optional<uint64_t> seed) {
  const std::string path = common.config_path.empty() ? kDefaultConfig : common.config_path;
  MultiLayerConfig c = load_multilayer_config(path);
  if (common.threads) c.base.threads = *common.threads;
  if (common.device) c.base.device = *common.device;
  if (common.out) c.base.out = *common.out;
  if (common.epochs) c.base.student.trainer.epochs = *common.epochs;
  if (common.data_root) c.base.data.root = *common.data_root;
  if (seed) c.base.seed = *seed;
  c.base.resolve_paths();
  c.base.validate();
  parse_device(c.base.device);
  set_threads(c.base.threads);
  return c;
}

}  // namespace

int run_multilayer(const CommonOptions& common, const MultiLayerRun& run) {
  refuse_ranks(common);
  const MultiLayerCliOptions o{common, run};
  MultiLayerConfig c = resolve_multilayer_config(o.common, o.run.seed);
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

int run_multilayer_distill(const CommonOptions& common, const MultiLayerDistill& run) {
  MultiLayerConfig c = resolve_multilayer_config(common, std::nullopt);
  const std::string method = run.method ? *run.method : c.methods.front();
  multilayer_method(method);  // an unknown name fails here, listing the known ones
  MultiLayerOptions options = c.options;
  options.method(method);
  options.validate();
  const std::filesystem::path dir =
      std::filesystem::path(c.base.out) / "distill" / fmt::format("{}-seed{}", method, run.seed);
  // A rank of a data-parallel group (`metadistill launch`, torchrun): joins it before the data are
  // read, so that a wrong address or world size fails first. Every rank reads the teacher file,
  // so it must exist (one process trains it: `metadistill multilayer` or `experiment`).
  const auto group = DataParallel::from_environment();
  if (group) {
    c.base.device = rank_device(c.base.device);
    check(!c.base.teacher_torchscript.empty() || !c.base.teacher_logits.empty() ||
              std::filesystem::exists(c.base.teacher_file),
          "teacher {} is missing: a data-parallel run reads it on every rank; train it first in "
          "one process (metadistill experiment {})",
          c.base.teacher_file, common.config_path.empty() ? kDefaultConfig : common.config_path);
  }
  const bool rank0 = !group || group->rank() == 0;
  if (run.fresh && rank0) {
    std::error_code ignored;
    std::filesystem::remove(dir / "checkpoint.pt", ignored);
    std::filesystem::remove(dir / "result.json", ignored);
  }
  auto session = open_multilayer_session(c, !common.quiet && rank0);
  if (group && rank0) {
    const int64_t batch = c.base.student.trainer.batch_size;
    std::cout << fmt::format(
        "data parallel: {} ranks, each on its part of every {}\n", group->world_size(),
        batch > 0 ? fmt::format("batch of {}", batch) : std::string("full batch"));
  }
  const auto r = train_multilayer_run(*session, c, options, run.seed, dir, run.resume,
                                      !common.quiet && rank0, nullptr, group);
  if (!rank0) return 0;
  std::cout << fmt::format("{} (seed {}): test accuracy final {:.4f}, best {:.4f}; beta {:.4f}; "
                           "{:.1f}s\nresults in {}\n",
                           method, run.seed, r.final_test_accuracy, r.best_test_accuracy, r.beta,
                           r.seconds, dir.string());
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
