// `metadistill search [CONFIG]`: the black-box baselines of the paper (DESIGN.md 3.3): random
// search or TPE over (λ1, T), each trial a full distillation run with fixed metaparameters, stored
// in a resumable SQLite study; then the best metaparameters are retrained and tested. The search
// itself is `run_search` (metadistill/experiment/search_run.h, which describes trials, objective,
// pruning and retrain); this file parses the flags and prints.
//
// Several processes may run the same command on one study at once (`--jobs N` starts N - 1
// workers that do so); re-running it after a crash resumes the study (see
// metadistill/search/study.h). Started as ranks of a group (`launch`, torchrun), rank 0 holds the
// study and the other ranks, on any machine, train the trials it sends them. With --jobs the random sampler proposes what a serial search
// proposes (its draws depend on the trial number only); TPE's proposals depend on which trials
// have finished when a trial starts, so they differ from a serial search's, as in Optuna.
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/run_pool.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/experiment/search_run.h"
#include "metadistill/search/study_history.h"
#include "metadistill/util/error.h"
#include "metadistill/util/process.h"

namespace metadistill::cli {

namespace {

namespace fs = std::filesystem;

struct SearchCliOptions {
  CommonOptions common;
  /// The flags' values; a flag that is not given leaves the config's `search:` setting.
  SearchSettings flags;
  CLI::App* command = nullptr;
  std::string study;
  uint64_t seed = 0;
  bool paper_preset = false;
  std::string temperature_prior = "log-uniform";
  int64_t max_failures = 10;
  bool no_retrain = false;
  bool export_only = false;
  int jobs = 1;
  bool worker = false;
};

// The paper's "hyperopt, 5 runs": hyperopt's TPE with its 20 start-up trials, so all 5 trials
// are prior draws.
constexpr const char* kPaperLabel = "hyperopt-5 (= random search)";

void print_history(const Study& study, const fs::path& dir) {
  const auto files = export_history(study, dir);
  std::cout << fmt::format("history: {}, {}\n", files.csv.string(), files.json.string());
  if (files.plot_warning.empty())
    std::cout << fmt::format("plots: {}, {}\n", files.png.string(), files.svg.string());
  else
    std::cout << "warning: " << files.plot_warning << "\n";
}

int run(SearchCliOptions o) {
  Config c = resolve_config(o.common);
  if (o.jobs > 1 && !o.common.threads) c.threads = threads_per_job(c.threads, o.jobs);
  // The config's `search:` section, then the flags given.
  SearchSettings settings = c.search;
  const auto given = [&](const char* flag) { return o.command->count(flag) > 0; };
  settings.sampler = o.flags.sampler;
  if (given("--trials")) settings.trials = o.flags.trials;
  if (given("--startup")) settings.startup = o.flags.startup;
  if (given("--objective")) settings.objective = o.flags.objective;
  if (given("--gamma-rule")) settings.gamma_rule = o.flags.gamma_rule;
  if (given("--prune")) settings.prune = true;
  if (given("--max-failures")) settings.max_failures = o.flags.max_failures;
  if (o.paper_preset) {
    settings.sampler = "tpe";
    settings.trials = 5;
    settings.startup = 20;
    settings.gamma_rule = "hyperopt";
    settings.objective = "val-accuracy";
    settings.trial_epochs = 0;  // hyperopt trained every trial on the full schedule
  }
  const std::string label = o.paper_preset ? kPaperLabel : settings.sampler;
  if (c.data.val_is_test) {
    // The authors validated the synthetic data on its test rows; a search that picks λ by test
    // accuracy would report an optimistic test accuracy, so it validates on the validation rows.
    std::cout << "note: the search scores trials on the validation split, never on test data "
                 "(the config's data.val_is_test is ignored)\n";
    c.data.val_is_test = false;
  }
  SearchRunOptions so;
  so.search = settings;
  so.temperature_prior = o.temperature_prior;
  so.seed = o.seed;
  so.label = label;
  so.retrain = !o.no_retrain && !o.worker;  // the process that started the workers retrains
  so.verbose = !o.common.quiet;
  so.study = o.study.empty()
                 ? fs::path(c.out) / "search" / ((o.paper_preset ? "hyperopt-5" : settings.sampler) + ".db")
                 : fs::path(o.study);
  // Trial folders, the retrain and the history go under --out, wherever the study file lies.
  const fs::path dir = fs::path(c.out) / "search" / so.study.stem();
  so.dir = dir;

  if (o.export_only) {
    Study study = Study::load(so.study);
    const auto files = export_history(study, dir);
    std::cout << fmt::format("history of {}: {}, {}\n", so.study.string(), files.csv.string(),
                             files.json.string());
    if (files.plot_warning.empty())
      std::cout << fmt::format("plots: {}, {}\n", files.png.string(), files.svg.string());
    else
      std::cout << "warning: " << files.plot_warning << "\n";
    return 0;
  }

  // Models, output folder: before the study is created and the teacher trained.
  check_before_start(c, {});
  const StudySettings study_settings = search_study_settings(c, so);
  const SearchSpace& space = study_settings.space;
  // A rank of a group: rank 0 holds the study and sends trials to the others
  // (experiment/search_run.h); every rank distills from rank 0's teacher.
  const std::shared_ptr<RunQueue> queue = RunQueue::from_environment();
  if (queue) {
    check(o.jobs == 1 && !o.worker,
          "--jobs {} as a rank of a group: a rank runs one trial at a time; start more ranks "
          "instead", o.jobs);
    so.queue = queue.get();
  }
  if (!queue || queue->root()) {
    // Opened here first so that a mismatching study fails before the data and teacher load.
    Study study = Study::open(so.study, study_settings);
    std::cout << fmt::format(
        "study {}: sampler {}{}; objective {} ({}, best over epochs); {} trials; "
        "{}, {}\n",
        so.study.string(), label,
        settings.sampler == "tpe"
            ? fmt::format(" (TPE, {} start-up trials, γ rule {})", settings.startup,
                          settings.gamma_rule)
            : "",
        settings.objective, to_string(study_settings.direction), settings.trials,
        space[0].to_string(), space[1].to_string());
    if (settings.tpe_is_random_search())
      std::cout << fmt::format(
          "warning: --trials {} <= start-up trials {}: every trial is drawn from the prior, so "
          "this TPE is random search{}\n",
          settings.trials, settings.startup,
          o.paper_preset
              ? " — as in the paper's \"hyperopt, 5 runs\" (hyperopt starts with 20 random trials)"
              : "");
    const auto before = study.counts();
    if (before.total() > 0)
      std::cout << fmt::format(
          "resuming: {} complete, {} pruned, {} failed, {} running, {} waiting\n",
          before.complete, before.pruned, before.failed, before.running, before.waiting);
  }

  Prepared p;
  prepare_teacher_in_group(queue.get(), c, [&] { p = prepare(c); });
  if (o.worker || (queue && !queue->root())) {
    run_search(c, p, so);
    return 0;
  }
  // Workers start once the teacher and its cached outputs exist, so that they only load them;
  // they share the study (search/study.h) and this process retrains once all trials are done.
  std::vector<ChildProcess> workers;
  for (int k = 1; k < o.jobs; ++k) workers.emplace_back(worker_command_line(c.threads));
  if (!workers.empty()) std::cout << fmt::format("{} worker processes started\n", workers.size());
  std::cout << fmt::format(
      "data {}: {} train / {} val / {} test; teacher {} test accuracy {:.4f}\n", p.data.name,
      p.data.train_idx.numel(), p.data.val_idx.numel(), p.data.test.size(), p.teacher.spec.name,
      p.teacher_test_accuracy);

  so.on_trial_end = [&](const FrozenTrial& t) {
    std::string outcome;
    if (t.state == TrialState::kComplete)
      outcome = fmt::format("{} {:.4f}", settings.objective, *t.value);
    else
      outcome = fmt::format("{}: {}", to_string(t.state), t.message);
    std::cout << fmt::format("trial {}{}: {} -> {} ({:.1f}s)\n", t.number,
                             t.retry_of >= 0 ? fmt::format(" (retry of {})", t.retry_of) : "",
                             describe_params(space, t.params), outcome, t.finished - t.started)
              << std::flush;  // a killed process still shows the trials it finished
  };
  SearchRunResult r = run_search(c, p, so);
  if (!workers.empty()) {
    const int64_t ran_here = r.summary.ran;
    for (auto& w : workers)
      if (const int code = w.wait(); code != 0)
        std::cout << fmt::format(
            "warning: worker process {} ended with code {} (its trials are redone here)\n",
            w.pid(), code);
    // Trials of a worker that died are failed and retried now; then the retrain.
    if (!r.summary.done) {
      r = run_search(c, p, so);
      r.summary.ran += ran_here;
    }
  }
  const SearchSummary& s = r.summary;
  std::cout << fmt::format(
      "study: {} complete, {} pruned, {} failed ({} trials run by this process)\n",
      s.counts.complete, s.counts.pruned, s.counts.failed, s.ran);

  if (s.best) {
    const auto& b = *s.best;
    std::cout << fmt::format("best: trial {}: {} -> {} {:.4f}\n", b.number,
                             describe_params(space, b.params), settings.objective, *b.value);
    if (!s.done) {
      std::cout << fmt::format(
          "{} trials are still running in other processes: retrain once the "
          "study is complete (re-run this command)\n",
          s.counts.running + s.counts.waiting);
    } else if (r.retrain) {
      const SearchRetrain& rt = *r.retrain;
      if (rt.stored) std::cout << "retrain (stored in the study):\n";
      std::cout << fmt::format(
          "{}: retrained on train ∪ val ({} rows) with λ1={:.4g} T={:.4g}: test accuracy {:.4f} "
          "(final epoch; best epoch {:.4f} at epoch {}, selected on test, for reference only) in "
          "{:.1f}s\n",
          label, rt.train_rows, rt.lambda.lambda1, rt.lambda.temperature,
          rt.train.final_test_accuracy, rt.train.best_test_accuracy, rt.train.best_epoch,
          rt.train.seconds);
    }
  }
  print_history(Study::load(so.study), dir);
  return 0;
}

}  // namespace

void setup_search(CLI::App& app) {
  auto o = std::make_shared<SearchCliOptions>();
  auto* sub = app.add_subcommand(
      "search", "black-box search of (λ1, T) with random search or TPE; retrain the best, test it");
  add_common_options(*sub, o->common);
  auto* preset = sub->add_flag(
      "--paper-preset", o->paper_preset,
      fmt::format("the paper's hyperopt baseline: TPE, 5 trials, hyperopt's 20 start-up trials and "
                  "γ rule, val accuracy — labelled \"{}\"",
                  kPaperLabel));
  const SearchSettings defaults;
  sub->add_option("--sampler", o->flags.sampler, "tpe or random (default tpe)")
      ->check(CLI::IsMember({"tpe", "random"}))
      ->excludes(preset);
  sub->add_option("--trials", o->flags.trials,
                  fmt::format("finished trials the study should have (default: the config's "
                              "search.trials, else {})",
                              defaults.trials))
      ->check(CLI::PositiveNumber)
      ->excludes(preset);
  sub->add_option("--study", o->study, "SQLite study file (default <out>/search/<sampler>.db)");
  sub->add_option("--objective", o->flags.objective,
                  "val-loss or val-accuracy (default: the config's search.objective, else val-loss)")
      ->check(CLI::IsMember({"val-loss", "val-accuracy"}))
      ->excludes(preset);
  sub->add_option("--startup", o->flags.startup,
                  fmt::format("TPE start-up trials drawn from the prior (default: the config's "
                              "search.startup, else {})",
                              defaults.startup))
      ->check(CLI::NonNegativeNumber)
      ->excludes(preset);
  sub->add_option("--gamma-rule", o->flags.gamma_rule,
                  "TPE good/bad split: optuna (⌈0.1·n⌉) or hyperopt (⌈0.25·√n⌉) (default: the "
                  "config's search.gamma_rule, else optuna)")
      ->check(CLI::IsMember({"optuna", "hyperopt"}))
      ->excludes(preset);
  sub->add_flag("--prune", o->flags.prune,
                "median-rule pruning on the per-epoch validation values (judged after each run)");
  sub->add_option("--seed", o->seed, "run seed of every trial and seed of the sampler (default 0)")
      ->check(seed_validator());
  sub->add_option("--temperature-prior", o->temperature_prior,
                  "log-uniform (default) or uniform (the paper's text) on [0.1, 10]")
      ->check(CLI::IsMember({"log-uniform", "uniform"}));
  sub->add_option("--max-failures", o->flags.max_failures,
                  fmt::format("stop after this many failed trials (default: the config's "
                              "search.max_failures, else {})",
                              defaults.max_failures))
      ->check(CLI::PositiveNumber);
  sub->add_flag("--no-retrain", o->no_retrain, "skip the final retrain of the best metaparameters");
  sub->add_flag("--export-only", o->export_only,
                "only write the history (CSV, JSON, plots) of an existing --study");
  add_jobs_options(*sub, o->jobs, o->worker);
  o->common.data_parallel = true;  // its ranks share out the trials (experiment/search_run.h)
  o->command = sub;
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
