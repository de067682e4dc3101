#include "metadistill/experiment/search_run.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
#include <thread>

#include <fmt/format.h>

#include "metadistill/experiment/run_queue.h"
#include "metadistill/search/tpe.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

// A fixed-λ method that trains on D_train ∪ D_val, for the final retrain (the registry's `fixed`
// trains on D_train only). Registered on first use, so that it is no method of `experiment`.
void register_retrain_method() {
  static std::once_flag once;
  std::call_once(once, [] {
    register_meta_optimizer("fixed-train-val", [](const MethodOptions& o) {
      o.fixed.validate();
      return std::make_unique<FixedMetaOptimizer>("fixed-train-val", o.fixed, true);
    });
  });
}

// λ1 and T as the paper writes them.
std::string short_name(const std::string& name) {
  if (name == "lambda1") return "λ1";
  if (name == "temperature") return "T";
  return name;
}

// The trial config: fixed λ, the trial epochs, validation on the validation split.
Config trial_config(const Config& config, const SearchRunOptions& o) {
  Config c = config;
  c.data.val_is_test = false;
  if (o.search.trial_epochs > 0)
    c.student.trainer.epochs = std::min(o.search.trial_epochs, c.student.trainer.epochs);
  return c;
}

TrainResult train_from_json(const nlohmann::json& j) {
  TrainResult t;
  t.final_test_accuracy = j.value("final_test_accuracy", 0.0);
  t.best_test_accuracy = j.contains("best_test_accuracy") ? j.at("best_test_accuracy").get<double>()
                                                          : j.value("best_epoch_test_accuracy", 0.0);
  t.best_epoch = j.value("best_epoch", int64_t{0});
  t.seconds = j.value("seconds", 0.0);
  t.steps = j.value("steps", int64_t{0});
  t.hyper_steps = j.value("hyper_steps", int64_t{0});
  if (j.contains("test_accuracy_by_epoch"))
    for (const auto& p : j.at("test_accuracy_by_epoch")) {
      EpochMetrics e;
      e.epoch = p.at(0);
      e.test_accuracy = p.at(1);
      t.history.push_back(e);
    }
  return t;
}

nlohmann::json curve_json(const TrainResult& t) {
  nlohmann::json curve = nlohmann::json::array();
  for (const auto& e : t.history) curve.push_back({e.epoch, e.test_accuracy});
  return curve;
}

// Wall-clock of the trials that ran to an end (a crashed trial's lost time is unknown).
double trial_seconds(const std::vector<FrozenTrial>& trials) {
  double s = 0;
  for (const auto& t : trials)
    if (t.finished > 0 && t.started > 0 && t.state != TrialState::kRunning)
      s += std::max(0.0, t.finished - t.started);
  return s;
}

// The objective's value per evaluated epoch of a trial's training (validation loss or accuracy).
using EpochValues = std::vector<std::pair<int64_t, double>>;

EpochValues trial_values(const TrainResult& train, const SearchRunOptions& o, int64_t number) {
  EpochValues out;
  for (const auto& e : train.history) {
    const double v = o.search.objective == "val-loss" ? e.val_loss : e.val_accuracy;
    check(v >= 0, "trial {}: epoch {} has no validation {}", number, e.epoch, o.search.objective);
    out.emplace_back(e.epoch, v);
  }
  return out;
}

// The best value over the epochs, each reported to the study (the pruner judges them after the
// run: no time is saved, see the header).
double score_trial(const EpochValues& values, TrialContext& ctx, Direction direction) {
  double best = direction == Direction::kMinimize ? INFINITY : -INFINITY;
  for (const auto& [epoch, v] : values) {
    if (is_better(v, best, direction)) best = v;
    if (ctx.report(epoch, v)) break;
  }
  return best;
}

// The trial config with the trial's fixed λ (and, in equal-budget mode, what is left of it).
Config trial_run_config(const Config& tc, const ParamValues& params, double time_limit) {
  Config c = tc;
  c.method.method = "fixed";
  c.method.fixed = Metaparameters{params.at(0), params.at(1)};
  c.method.given_initial = true;
  if (time_limit > 0) c.student.trainer.time_limit = time_limit;
  return c;
}

// A rank of a group that trains the trials rank 0 sends it (see SearchRunOptions::queue).
std::string task_name(int rank, int64_t k) { return fmt::format("search-task-{}-{}", rank, k); }

void serve_trials(const Config& tc, const Prepared& prepared, const SearchRunOptions& o) {
  RunQueue& queue = *o.queue;
  for (int64_t k = 0;; ++k) {
    const std::string task = queue.share(task_name(queue.rank(), k), "");
    if (task == "done") break;
    const auto j = nlohmann::json::parse(task);
    const int64_t number = j.at("number").get<int64_t>();
    const std::string run = fmt::format("trial-{}", number);
    const fs::path trial_dir = o.dir / run;
    try {
      const Config c = trial_run_config(tc, j.at("params").get<ParamValues>(), 0);
      if (o.on_training_start) o.on_training_start(run, trial_dir, c.student.trainer.epochs);
      const RunResult r = run_distill(c, prepared, "fixed", o.seed, trial_dir, false, o.verbose);
      write_file_atomic(trial_dir / "trial.json",
                        nlohmann::json{{"values", trial_values(r.train, o, number)}}.dump());
      queue.deliver(run, trial_dir);
    } catch (const std::exception& e) {
      queue.report_failure(run, e.what());
    }
  }
  queue.finish();
}

// Not derived from std::exception, so that `optimize` lets it through: the rank is lost.
struct RankLost {};

// Rank 0's thread for rank `rank`: trials from the study, trained there.
void drive_rank(int rank, RunQueue& queue, std::mutex& queue_mutex, const StudySettings& settings,
                const SearchRunOptions& o, const TrialEndFn& on_trial_end) {
  Study study = Study::open(o.study, settings);
  auto sampler = make_search_sampler(o);
  int64_t k = 0;
  auto objective = [&](TrialContext& ctx) {
    const std::string run = fmt::format("trial-{}", ctx.number());
    const fs::path trial_dir = o.dir / run;
    {
      std::lock_guard<std::mutex> lock(queue_mutex);
      queue.assign(run, rank);
      queue.share(task_name(rank, k++),
                  nlohmann::json{{"number", ctx.number()}, {"params", ctx.trial().params}}.dump());
    }
    for (;;) {
      std::optional<RunQueue::Collected> c;
      {
        std::lock_guard<std::mutex> lock(queue_mutex);
        c = queue.try_collect(run, trial_dir);  // throws the rank's error: the trial failed
      }
      if (c == RunQueue::Collected::kDelivered) break;
      if (c == RunQueue::Collected::kTakenOver) {
        study.tell(ctx.number(), TrialState::kFailed, std::nullopt,
                   fmt::format("rank {} was lost while it ran the trial", rank));
        throw RankLost{};
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    const auto j = nlohmann::json::parse(read_file(trial_dir / "trial.json"));
    return score_trial(j.at("values").get<EpochValues>(), ctx, settings.direction);
  };
  auto done = [&] {
    std::lock_guard<std::mutex> lock(queue_mutex);
    queue.share(task_name(rank, k), "done");
  };
  try {
    optimize(study, *sampler, objective, o.search, on_trial_end);
  } catch (const RankLost&) {
    return;  // the rank is gone: nothing more is sent to it
  } catch (...) {
    done();  // the rank waits for its next task: it ends instead
    throw;
  }
  done();
}

}  // namespace

std::vector<std::string> search_method_names() { return {"random-search", "tpe"}; }

bool is_search_method(const std::string& name) { return name == "tpe" || name == "random-search"; }

void SearchRunOptions::validate() const {
  search.validate();
  check(temperature_prior == "log-uniform" || temperature_prior == "uniform",
        "temperature_prior '{}': expected log-uniform or uniform", temperature_prior);
  check(std::isfinite(budget_seconds) && budget_seconds >= 0,
        "search budget_seconds = {}: expected seconds >= 0 (0 = none)", budget_seconds);
  check(!study.empty(), "search: no study file given");
  check(!dir.empty(), "search: no trial folder given");
}

SearchRunOptions search_options_for(const Config& config, const std::string& method,
                                    uint64_t seed, const fs::path& dir) {
  check(method == "tpe" || method == "random-search",
        "search method '{}': expected tpe or random-search", method);
  SearchRunOptions o;
  o.search = config.search;
  o.search.sampler = method == "tpe" ? "tpe" : "random";
  o.label = method;
  o.temperature_prior = config.method.temperature_prior;
  o.seed = seed;
  o.budget_seconds = config.budget.seconds;
  o.study = dir / "study.db";
  o.dir = dir;
  return o;
}

std::unique_ptr<Sampler> make_search_sampler(const SearchRunOptions& o) {
  if (o.search.sampler == "random") return std::make_unique<RandomSampler>(o.seed);
  return std::make_unique<TpeSampler>(TpeOptions()
                                          .with_seed(o.seed)
                                          .with_startup_trials(o.search.startup)
                                          .with_candidates(o.search.candidates)
                                          .with_gamma(gamma_rule_from_string(o.search.gamma_rule)));
}

StudySettings search_study_settings(const Config& config, const SearchRunOptions& o) {
  const Config c = trial_config(config, o);
  const nlohmann::json cj = c.to_json();
  nlohmann::json objective = {
      {"name", o.search.objective},
      {"selection", "best evaluated epoch"},
      {"label", o.label},
      {"run_seed", o.seed},
      {"data", cj["data"]},
      {"teacher", {{"model", cj["teacher"]["model"]}, {"train", cj["teacher"]["train"]}}},
      {"student", cj["student"]}};
  // Only where it applies, so that studies written before these settings existed still resume.
  if (o.budget_seconds > 0) objective["budget_seconds"] = o.budget_seconds;
  return StudySettings()
      .with_name(o.study.stem().string())
      .with_direction(o.search.objective == "val-loss" ? Direction::kMinimize : Direction::kMaximize)
      .with_space(metaparameter_space(o.temperature_prior))
      .with_sampler(make_search_sampler(o)->to_json())
      .with_objective(objective);
}

std::string describe_params(const SearchSpace& space, const ParamValues& x) {
  std::string s;
  for (size_t i = 0; i < space.size() && i < x.size(); ++i)
    s += fmt::format("{}{}={:.4g}", i ? " " : "", short_name(space[i].name), x[i]);
  return s;
}

SearchRunResult run_search(const Config& config, const Prepared& prepared_in,
                           const SearchRunOptions& o) {
  o.validate();
  check(prepared_in.data.val_idx.numel() > 0,
        "{}: the search needs a validation split, and data {} has none (set data.val_size > 0)",
        config.source, prepared_in.data.name);
  // Trials score λ on the validation rows even where the config validates on the test rows.
  Prepared prepared = prepared_in;
  prepared.data.val_is_test = false;
  const Config tc = trial_config(config, o);
  Config rc = config;  // the retrain: the full schedule
  rc.data.val_is_test = false;

  check(o.queue == nullptr || o.budget_seconds == 0,
        "search: equal-budget mode runs its trials one after the other; run it as one process "
        "(or with --jobs), not as ranks");
  if (o.queue != nullptr && !o.queue->root()) {
    serve_trials(tc, prepared, o);
    return {};
  }
  const StudySettings settings = search_study_settings(config, o);
  Study study = Study::open(o.study, settings);
  auto sampler = make_search_sampler(o);
  const Direction direction = settings.direction;
  const SearchSpace& space = settings.space;

  SearchRunResult result;
  result.space = space;
  result.direction = direction;

  double budget_left = 0;  // equal-budget mode: set before each trial
  auto objective = [&](TrialContext& ctx) {
    const Config c = trial_run_config(tc, ctx.trial().params,
                                      o.budget_seconds > 0 ? std::max(budget_left, 1e-3) : 0);
    const fs::path trial_dir = o.dir / fmt::format("trial-{}", ctx.number());
    if (o.on_training_start)
      o.on_training_start(fmt::format("trial {}", ctx.number()), trial_dir,
                          c.student.trainer.epochs);
    const RunResult r = run_distill(c, prepared, "fixed", o.seed, trial_dir, false, o.verbose);
    return score_trial(trial_values(r.train, o, ctx.number()), ctx, direction);
  };

  SearchSettings so = o.search;
  if (o.budget_seconds > 0) {
    // One trial at a time until the budget is spent; earlier processes' trials count.
    SearchSummary total;
    while (true) {
      const auto counts = study.counts();
      budget_left = o.budget_seconds - trial_seconds(study.trials());
      if (budget_left <= 0) break;
      so.trials = counts.finished() + 1;
      const SearchSummary s = optimize(study, *sampler, objective, so, o.on_trial_end);
      total.ran += s.ran;
      total.complete += s.complete;
      total.pruned += s.pruned;
      total.failed += s.failed;
      if (s.ran == 0) break;  // other processes hold the remaining trials
    }
    total.counts = study.counts();
    total.best = study.best_trial();
    total.done = total.counts.running == 0 && total.counts.waiting == 0;
    result.summary = total;
  } else if (o.queue != nullptr) {
    // Rank 0: its own trials here, the other ranks' from one thread each (see the options).
    std::mutex queue_mutex, print_mutex;
    const TrialEndFn on_trial_end = [&](const FrozenTrial& t) {
      std::lock_guard<std::mutex> lock(print_mutex);
      if (o.on_trial_end) o.on_trial_end(t);
    };
    std::vector<std::thread> drivers;
    std::vector<std::string> errors(static_cast<size_t>(o.queue->world_size()));
    for (int r = 1; r < o.queue->world_size(); ++r)
      drivers.emplace_back([&, r] {
        try {
          drive_rank(r, *o.queue, queue_mutex, settings, o, on_trial_end);
        } catch (const std::exception& e) {
          errors[static_cast<size_t>(r)] = e.what();
        }
      });
    std::string local_error;
    try {
      result.summary = optimize(study, *sampler, objective, so, on_trial_end);
    } catch (const std::exception& e) {
      local_error = e.what();
    }
    for (auto& d : drivers) d.join();
    o.queue->finish();
    if (!local_error.empty()) fail("{}", local_error);
    for (const auto& e : errors)
      if (!e.empty()) fail("{}", e);
    const int64_t ran = result.summary.ran;
    result.summary.counts = study.counts();
    result.summary.best = study.best_trial();
    result.summary.done = result.summary.counts.finished() >= so.trials &&
                          result.summary.counts.running == 0 && result.summary.counts.waiting == 0;
    result.summary.ran = ran;
  } else {
    result.summary = optimize(study, *sampler, objective, so, o.on_trial_end);
  }
  result.trials = study.trials();
  result.seconds = trial_seconds(result.trials);
  if (!result.summary.best) return result;
  const FrozenTrial& b = *result.summary.best;
  result.best = Metaparameters{b.params[0], b.params[1]};

  if (o.budget_seconds > 0) {
    // No retrain beyond the budget: the best trial's own training, tested after each epoch.
    const fs::path file = o.dir / fmt::format("trial-{}", b.number) / "result.json";
    check(fs::exists(file), "{}: missing: the best trial's result is needed in equal-budget mode",
          file.string());
    SearchRetrain r;
    r.trial = b.number;
    r.lambda = result.best;
    r.train_rows = prepared.data.train_idx.numel();
    r.seed = o.seed;
    try {
      r.train = train_from_json(nlohmann::json::parse(read_file(file)));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: corrupt result ({})", file.string(), e.what());
    }
    r.stored = true;
    result.retrain = r;
    return result;
  }
  if (!result.summary.done || !o.retrain) return result;

  SearchRetrain r;
  const auto stored = study.attribute("retrain");
  if (stored && stored->value("trial", int64_t{-1}) == b.number) {
    r.trial = b.number;
    r.lambda = Metaparameters{stored->at("lambda1").get<double>(),
                              stored->at("temperature").get<double>()};
    r.train_rows = stored->value("train_rows", int64_t{0});
    r.seed = stored->value("seed", uint64_t{0});
    r.train = train_from_json(*stored);
    r.stored = true;
  } else {
    register_retrain_method();
    rc.method.method = "fixed-train-val";
    rc.method.fixed = result.best;
    rc.method.given_initial = true;
    if (o.on_training_start)
      o.on_training_start("retrain", o.dir / "retrain", rc.student.trainer.epochs);
    const RunResult run =
        run_distill(rc, prepared, "fixed-train-val", o.seed, o.dir / "retrain", false, o.verbose);
    r.trial = b.number;
    r.lambda = result.best;
    r.train_rows = prepared.data.train_idx.numel() + prepared.data.val_idx.numel();
    r.seed = o.seed;
    r.train = run.train;
    study.set_attribute("retrain", {{"trial", b.number},
                                    {"lambda1", b.params[0]},
                                    {"temperature", b.params[1]},
                                    {"train_rows", r.train_rows},
                                    {"seed", o.seed},
                                    {"final_test_accuracy", run.train.final_test_accuracy},
                                    {"best_epoch_test_accuracy", run.train.best_test_accuracy},
                                    {"best_epoch", run.train.best_epoch},
                                    {"seconds", run.train.seconds},
                                    {"steps", run.train.steps},
                                    {"test_accuracy_by_epoch", curve_json(run.train)},
                                    {"label", o.label}});
  }
  result.seconds += r.train.seconds;
  result.retrain = r;
  return result;
}

}  // namespace metadistill
