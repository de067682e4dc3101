// `metadistill search [CONFIG]`: the black-box baselines of the paper (DESIGN.md 3.3): random
// search or TPE over (λ1, T), each trial a full distillation run with fixed metaparameters, stored
// in a resumable SQLite study; then the best metaparameters are retrained and tested.
//
// Trials: `run_distill(method "fixed", λ1, T)` with the run seed --seed (the same model
// initialization and batch order in every trial, so that trials differ only in λ). The objective
// is the best validation loss (minimized) or the best validation accuracy (maximized) over the
// evaluated epochs — the paper's hyperopt scored the maximum validation accuracy over
// checkpoints — and never touches test data: the search always validates on the validation
// split, also where the config validates the synthetic data on its test rows (val_is_test).
// The per-epoch validation values are stored as intermediate values. With --prune the median
// rule judges them epoch by epoch *after* the run (the trainer has no per-epoch callback yet):
// a pruned trial is recorded as pruned at the epoch where the rule stopped it, as Optuna would,
// but no training time is saved.
//
// Final retrain: the best metaparameters are trained once more on D_train ∪ D_val (the paper
// retrains on the full training data) with the same seed, and tested; the result is stored in
// the study, so that re-running a finished study prints it without training again.
//
// Several processes may run the same command on one study at once; re-running it after a crash
// resumes the study (see metadistill/meta/study.h).
#include <iostream>

#include "commands.h"
#include "common.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/meta/search.h"
#include "metadistill/meta/study_history.h"
#include "metadistill/meta/tpe.h"
#include "metadistill/util/error.h"

namespace metadistill::cli {

namespace {

namespace fs = std::filesystem;

struct SearchCliOptions {
  CommonOptions common;
  std::string sampler = "tpe";
  int64_t trials = 20;
  std::string study;
  std::string objective = "val-loss";
  int64_t startup = 10;
  std::string gamma_rule = "optuna";
  bool prune = false;
  uint64_t seed = 0;
  bool paper_preset = false;
  std::string temperature_prior = "log-uniform";
  int64_t max_failures = 10;
  bool no_retrain = false;
  bool export_only = false;
};

// The paper's "hyperopt, 5 runs": hyperopt's TPE with its 20 start-up trials, so all 5 trials
// are prior draws.
constexpr const char* kPaperLabel = "hyperopt-5 (= random search)";

// A fixed-λ method that trains on D_train ∪ D_val, for the final retrain (the registry's `fixed`
// trains on D_train only). Registered here, by the one command that uses it.
void register_retrain_method() {
  register_meta_optimizer("fixed-train-val", [](const MethodOptions& o) {
    o.fixed.validate();
    return std::make_unique<FixedMetaOptimizer>("fixed-train-val", o.fixed, true);
  });
}

// λ1 and T as the paper writes them.
std::string short_name(const std::string& name) {
  if (name == "lambda1") return "λ1";
  if (name == "temperature") return "T";
  return name;
}

std::string describe(const SearchSpace& space, const ParamValues& x) {
  std::string s;
  for (size_t i = 0; i < space.size() && i < x.size(); ++i)
    s += fmt::format("{}{}={:.4g}", i ? " " : "", short_name(space[i].name), x[i]);
  return s;
}

int run(SearchCliOptions o) {
  Config c = resolve_config(o.common);
  if (o.paper_preset) {
    o.sampler = "tpe";
    o.trials = 5;
    o.startup = 20;
    o.gamma_rule = "hyperopt";
    o.objective = "val-accuracy";
  }
  const std::string label = o.paper_preset ? kPaperLabel : o.sampler;
  if (c.data.val_is_test) {
    // The authors validated the synthetic data on its test rows; a search that picks λ by test
    // accuracy would report an optimistic test accuracy, so it validates on the validation rows.
    std::cout << "note: the search scores trials on the validation split, never on test data "
                 "(the config's data.val_is_test is ignored)\n";
    c.data.val_is_test = false;
  }
  const SearchSpace space = metaparameter_space(o.temperature_prior);
  std::unique_ptr<Sampler> sampler;
  if (o.sampler == "random")
    sampler = std::make_unique<RandomSampler>(o.seed);
  else
    sampler = std::make_unique<TpeSampler>(
        TpeOptions().with_seed(o.seed).with_startup_trials(o.startup).with_gamma(
            gamma_rule_from_string(o.gamma_rule)));
  const fs::path study_path =
      o.study.empty()
          ? fs::path(c.out) / "search" / ((o.paper_preset ? "hyperopt-5" : o.sampler) + ".db")
          : fs::path(o.study);
  // Trial folders, the retrain and the history go under --out, wherever the study file lies.
  const fs::path dir = fs::path(c.out) / "search" / study_path.stem();

  nlohmann::json config = c.to_json();
  const Direction direction =
      o.objective == "val-loss" ? Direction::kMinimize : Direction::kMaximize;
  const auto settings =
      StudySettings()
          .with_name(study_path.stem().string())
          .with_direction(direction)
          .with_space(space)
          .with_sampler(sampler->to_json())
          .with_objective(
              {{"name", o.objective},
               {"selection", "best evaluated epoch"},
               {"label", label},
               {"run_seed", o.seed},
               {"data", config["data"]},
               {"teacher",
                {{"model", config["teacher"]["model"]}, {"train", config["teacher"]["train"]}}},
               {"student", config["student"]}});

  if (o.export_only) {
    Study study = Study::load(study_path);
    const auto files = export_history(study, dir);
    std::cout << fmt::format("history of {}: {}, {}\n", study_path.string(), files.csv.string(),
                             files.json.string());
    if (files.plot_warning.empty())
      std::cout << fmt::format("plots: {}, {}\n", files.png.string(), files.svg.string());
    else
      std::cout << "warning: " << files.plot_warning << "\n";
    return 0;
  }

  Study study = Study::open(study_path, settings);
  std::cout << fmt::format(
      "study {}: sampler {}{}; objective {} ({}, best over epochs); {} trials; "
      "{}, {}\n",
      study_path.string(), label,
      o.sampler == "tpe"
          ? fmt::format(" (TPE, {} start-up trials, γ rule {})", o.startup, o.gamma_rule)
          : "",
      o.objective, to_string(direction), o.trials, space[0].to_string(), space[1].to_string());
  if (o.sampler == "tpe" && o.trials <= o.startup)
    std::cout << fmt::format(
        "warning: --trials {} <= start-up trials {}: every trial is drawn from the prior, so this "
        "TPE is random search{}\n",
        o.trials, o.startup,
        o.paper_preset
            ? " — as in the paper's \"hyperopt, 5 runs\" (hyperopt starts with 20 random trials)"
            : "");
  const auto before = study.counts();
  if (before.total() > 0)
    std::cout << fmt::format(
        "resuming: {} complete, {} pruned, {} failed, {} running, {} waiting\n", before.complete,
        before.pruned, before.failed, before.running, before.waiting);

  Prepared p = prepare(c);
  std::cout << fmt::format(
      "data {}: {} train / {} val / {} test; teacher {} test accuracy {:.4f}\n", p.data.name,
      p.data.train_idx.numel(), p.data.val_idx.numel(), p.data.test.size(), p.teacher.spec.name,
      p.teacher_test_accuracy);
  check(p.data.val_idx.numel() > 0,
        "{}: the search needs a validation split, and data {} has none (set data.val_size > 0)",
        c.source, p.data.name);

  auto objective = [&](TrialContext& ctx) {
    Config tc = c;
    tc.method.method = "fixed";
    tc.method.fixed = Metaparameters{ctx.param("lambda1"), ctx.param("temperature")};
    tc.method.given_initial = true;
    const RunResult r =
        run_distill(tc, p, "fixed", o.seed, dir / fmt::format("trial-{}", ctx.number()), false,
                    !o.common.quiet);
    double best = direction == Direction::kMinimize ? INFINITY : -INFINITY;
    for (const auto& e : r.train.history) {
      const double v = o.objective == "val-loss" ? e.val_loss : e.val_accuracy;
      check(v >= 0, "trial {}: epoch {} has no validation {}", ctx.number(), e.epoch, o.objective);
      if (is_better(v, best, direction)) best = v;
      if (ctx.report(e.epoch, v)) break;  // judged after the run: no time saved (see top)
    }
    return best;
  };

  SearchOptions so;
  so.trials = o.trials;
  so.prune = o.prune;
  so.max_failures = o.max_failures;
  so.on_trial_end = [&](const FrozenTrial& t) {
    std::string outcome;
    if (t.state == TrialState::kComplete)
      outcome = fmt::format("{} {:.4f}", o.objective, *t.value);
    else
      outcome = fmt::format("{}: {}", to_string(t.state), t.message);
    std::cout << fmt::format("trial {}{}: {} -> {} ({:.1f}s)\n", t.number,
                             t.retry_of >= 0 ? fmt::format(" (retry of {})", t.retry_of) : "",
                             describe(space, t.params), outcome, t.finished - t.started)
              << std::flush;  // a killed process still shows the trials it finished
  };
  const SearchSummary s = optimize(study, *sampler, objective, so);
  std::cout << fmt::format(
      "study: {} complete, {} pruned, {} failed ({} trials run by this process)\n",
      s.counts.complete, s.counts.pruned, s.counts.failed, s.ran);

  if (s.best) {
    const auto& b = *s.best;
    std::cout << fmt::format("best: trial {}: {} -> {} {:.4f}\n", b.number,
                             describe(space, b.params), o.objective, *b.value);
    if (!s.done) {
      std::cout << fmt::format(
          "{} trials are still running in other processes: retrain once the "
          "study is complete (re-run this command)\n",
          s.counts.running + s.counts.waiting);
    } else if (!o.no_retrain) {
      const auto stored = study.attribute("retrain");
      nlohmann::json rt;
      if (stored && stored->value("trial", int64_t{-1}) == b.number) {
        rt = *stored;
        std::cout << "retrain (stored in the study):\n";
      } else {
        register_retrain_method();
        Config rc = c;
        rc.method.method = "fixed-train-val";
        rc.method.fixed = Metaparameters{b.params[0], b.params[1]};
        rc.method.given_initial = true;
        const RunResult r =
            run_distill(rc, p, "fixed-train-val", o.seed, dir / "retrain", false, !o.common.quiet);
        rt = {{"trial", b.number},
              {"lambda1", b.params[0]},
              {"temperature", b.params[1]},
              {"train_rows", p.data.train_idx.numel() + p.data.val_idx.numel()},
              {"seed", o.seed},
              {"final_test_accuracy", r.train.final_test_accuracy},
              {"best_epoch_test_accuracy", r.train.best_test_accuracy},
              {"best_epoch", r.train.best_epoch},
              {"seconds", r.train.seconds},
              {"label", label}};
        study.set_attribute("retrain", rt);
      }
      std::cout << fmt::format(
          "{}: retrained on train ∪ val ({} rows) with λ1={:.4g} T={:.4g}: test accuracy {:.4f} "
          "(final epoch; best epoch {:.4f} at epoch {}, selected on test, for reference only) in "
          "{:.1f}s\n",
          label, rt["train_rows"].get<int64_t>(), rt["lambda1"].get<double>(),
          rt["temperature"].get<double>(), rt["final_test_accuracy"].get<double>(),
          rt["best_epoch_test_accuracy"].get<double>(), rt["best_epoch"].get<int64_t>(),
          rt["seconds"].get<double>());
    }
  }
  const auto files = export_history(study, dir);
  std::cout << fmt::format("history: {}, {}\n", files.csv.string(), files.json.string());
  if (files.plot_warning.empty())
    std::cout << fmt::format("plots: {}, {}\n", files.png.string(), files.svg.string());
  else
    std::cout << "warning: " << files.plot_warning << "\n";
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
  sub->add_option("--sampler", o->sampler, "tpe or random (default tpe)")
      ->check(CLI::IsMember({"tpe", "random"}))
      ->excludes(preset);
  sub->add_option("--trials", o->trials, "finished trials the study should have (default 20)")
      ->check(CLI::PositiveNumber)
      ->excludes(preset);
  sub->add_option("--study", o->study, "SQLite study file (default <out>/search/<sampler>.db)");
  sub->add_option("--objective", o->objective, "val-loss (default) or val-accuracy")
      ->check(CLI::IsMember({"val-loss", "val-accuracy"}))
      ->excludes(preset);
  sub->add_option("--startup", o->startup, "TPE start-up trials drawn from the prior (default 10)")
      ->check(CLI::NonNegativeNumber)
      ->excludes(preset);
  sub->add_option("--gamma-rule", o->gamma_rule,
                  "TPE good/bad split: optuna (⌈0.1·n⌉, default) or hyperopt (⌈0.25·√n⌉)")
      ->check(CLI::IsMember({"optuna", "hyperopt"}))
      ->excludes(preset);
  sub->add_flag("--prune", o->prune,
                "median-rule pruning on the per-epoch validation values (judged after each run)");
  sub->add_option("--seed", o->seed, "run seed of every trial and seed of the sampler (default 0)");
  sub->add_option("--temperature-prior", o->temperature_prior,
                  "log-uniform (default) or uniform (the paper's text) on [0.1, 10]")
      ->check(CLI::IsMember({"log-uniform", "uniform"}));
  sub->add_option("--max-failures", o->max_failures,
                  "stop after this many failed trials (default 10)")
      ->check(CLI::PositiveNumber);
  sub->add_flag("--no-retrain", o->no_retrain, "skip the final retrain of the best metaparameters");
  sub->add_flag("--export-only", o->export_only,
                "only write the history (CSV, JSON, plots) of an existing --study");
  sub->callback([o]() { throw CommandResult(run(*o)); });
}

}  // namespace metadistill::cli
