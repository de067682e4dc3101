#include "metadistill/experiment/experiment.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <sstream>

#include <fmt/format.h>
#include <unistd.h>

#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/plots.h"
#include "metadistill/experiment/progress.h"
#include "metadistill/experiment/run_pool.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/experiment/search_run.h"
#include "metadistill/experiment/trajectory_summary.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace fs = std::filesystem;

std::vector<std::string> default_methods() {
  return {"none", "naive", "random", "gradient", "proposed", "tpe"};
}

std::vector<std::string> experiment_method_names() {
  auto names = method_names();
  for (const auto& m : search_method_names()) names.push_back(m);
  std::sort(names.begin(), names.end());
  return names;
}

std::string budget_folder_name(double seconds) { return fmt::format("budget-{:g}s", seconds); }

void RunRow::add_epoch(const EpochRecord& e) {
  curve.emplace_back(e.epoch, e.test_accuracy);
  val_loss = e.val_loss;
  test_loss = e.test_loss;
  test_ece = e.test_ece;
  effective_lr = e.effective_lr;
}

nlohmann::json RunRow::to_json() const {
  nlohmann::json j = {{"method", method},
                      {"seed", seed},
                      {"final_test_accuracy", final_accuracy},
                      {"best_test_accuracy", best_accuracy},
                      {"best_epoch", best_epoch},
                      {"seconds", seconds},
                      {"steps", steps},
                      {"hyper_steps", hyper_steps},
                      {"trainings", trainings},
                      {"initial", {{"lambda1", initial.lambda1}, {"temperature", initial.temperature}}},
                      {"final", {{"lambda1", final.lambda1}, {"temperature", final.temperature}}}};
  for (const auto& [e, a] : curve) j["test_accuracy_by_epoch"].push_back({e, a});
  j["final_val_loss"] = val_loss;
  j["final_test_loss"] = test_loss;
  j["final_test_ece"] = test_ece;
  j["final_effective_lr"] = effective_lr;
  return j;
}

RunRow RunRow::from_json(const nlohmann::json& j) {
  RunRow r;
  r.method = j.at("method");
  r.seed = j.at("seed");
  r.final_accuracy = j.at("final_test_accuracy");
  r.best_accuracy = j.at("best_test_accuracy");
  r.best_epoch = j.at("best_epoch");
  r.seconds = j.at("seconds");
  r.steps = j.at("steps");
  r.hyper_steps = j.at("hyper_steps");
  r.trainings = j.value("trainings", int64_t{1});
  r.initial = {j.at("initial").at("lambda1"), j.at("initial").at("temperature")};
  r.final = {j.at("final").at("lambda1"), j.at("final").at("temperature")};
  if (j.contains("test_accuracy_by_epoch"))
    for (const auto& p : j["test_accuracy_by_epoch"]) r.curve.emplace_back(p[0], p[1]);
  r.val_loss = j.value("final_val_loss", -1.0);
  r.test_loss = j.value("final_test_loss", -1.0);
  r.test_ece = j.value("final_test_ece", -1.0);
  r.effective_lr = j.value("final_effective_lr", -1.0);
  return r;
}

namespace {

std::string method_note(const std::string& method, const std::string& data_name) {
  if (data_name.rfind("synthetic", 0) == 0 && (method == "naive" || method == "random"))
    return "same student features as every method; the paper's 0.63/0.64 gave these two the "
           "teacher's feature 2 (DESIGN.md 3.7)";
  if (method == "none")
    return data_name.rfind("synthetic", 0) == 0 ? "trained on the student rows only (D_val = D_test)"
                                                 : "trained on D_train ∪ D_val, as in the paper";
  return "";
}

// Writes the synthetic data set for the Fig. 5 plot: split (0 teacher, 1 student, 2 test), x1, x2, y.
void write_synthetic_points(const DataBundle& d, const fs::path& path) {
  std::ostringstream s;
  auto rows = [&](const torch::Tensor& x, const torch::Tensor& y, int split) {
    for (int64_t i = 0; i < y.size(0); ++i)
      s << split << "," << x[i][0].item<float>() << "," << x[i][1].item<float>() << ","
        << y[i].item<int64_t>() << "\n";
  };
  rows(d.teacher_train.x, d.teacher_train.y, 0);
  auto student = d.pool.select(d.train_idx);
  rows(student.x, student.y, 1);
  rows(d.test.x, d.test.y, 2);
  write_file_atomic(path, s.str());
}

RunRow row_from(const RunResult& r) {
  RunRow row;
  row.method = r.method;
  row.seed = r.seed;
  row.final_accuracy = r.train.final_test_accuracy;
  row.best_accuracy = r.train.best_test_accuracy;
  row.best_epoch = r.train.best_epoch;
  row.seconds = r.train.seconds;
  row.steps = r.train.steps;
  row.hyper_steps = r.train.hyper_steps;
  row.initial = r.initial;
  row.final = r.final;
  for (const auto& e : r.train.history) row.add_epoch(e);
  return row;
}

std::string fmt_duration(double s) { return format_duration(s); }

// Notes on the search methods that depend on the config.
std::string search_note(const Config& c, const std::string& method, double budget) {
  const SearchSettings& s = c.search;
  const std::string sampler =
      method == "tpe" ? fmt::format("TPE ({} start-up trials, γ rule {})", s.startup, s.gamma_rule)
                      : std::string("random search");
  const std::string epochs =
      s.trial_epochs > 0 ? fmt::format(", {} epochs per trial", s.trial_epochs) : "";
  std::string note;
  if (budget > 0)
    note = fmt::format("{}: trials until the budget is spent{}, each scored by the best {} on "
                       "the validation split; the best trial's own test accuracy, no retrain; "
                       "trainings = trials",
                       sampler, epochs, s.objective);
  else
    note = fmt::format("{}: {} trials{}, each scored by the best {} on the validation split "
                       "(never test data); the best λ retrained on D_train ∪ D_val with the full "
                       "schedule; trainings = trials + 1, time = all of them",
                       sampler, s.trials, epochs, s.objective);
  if (method == "tpe" && budget <= 0 && s.trials <= s.startup)
    note += fmt::format(" — with trials {} <= start-up {} every trial is a prior draw: this TPE "
                        "is random search",
                        s.trials, s.startup);
  return note;
}

// One run of a search method: the study in `run_dir`, its result row written to result.json.
RunRow run_search_method(const Config& config, const Prepared& prepared, const std::string& method,
                         uint64_t seed, const fs::path& run_dir, bool verbose,
                         ExperimentProgress* progress) {
  SearchRunOptions so = search_options_for(config, method, seed, run_dir);
  so.verbose = verbose;
  if (progress != nullptr)
    so.on_training_start = [progress](const std::string& phase, const fs::path& d, int64_t epochs) {
      progress->start_training(phase, d, epochs);
    };
  const SearchRunResult r = run_search(config, prepared, so);
  check(r.retrain.has_value(),
        "{}: {} seed {} ended without a result ({} complete, {} pruned, {} failed, {} running "
        "elsewhere)",
        so.study.string(), method, seed, r.summary.counts.complete, r.summary.counts.pruned,
        r.summary.counts.failed, r.summary.counts.running + r.summary.counts.waiting);
  int64_t trials = 0;
  for (const auto& t : r.trials)
    if (t.state != TrialState::kRunning && t.state != TrialState::kWaiting) ++trials;
  const SearchRetrain& rt = *r.retrain;
  RunRow row;
  row.method = method;
  row.seed = seed;
  row.final_accuracy = rt.train.final_test_accuracy;
  row.best_accuracy = rt.train.best_test_accuracy;
  row.best_epoch = rt.train.best_epoch;
  row.seconds = r.seconds;
  row.steps = rt.train.steps;
  row.hyper_steps = 0;
  row.trainings = trials + (so.budget_seconds > 0 ? 0 : 1);
  row.initial = row.final = r.best;  // the λ the reported student trained with
  for (const auto& e : rt.train.history) row.add_epoch(e);
  nlohmann::json j = row.to_json();
  j.update(settings_record(run_settings(config, prepared, method, seed)));
  j["search"] = {{"sampler", so.search.sampler},
                 {"trials", trials},
                 {"best_trial", rt.trial},
                 {"objective", so.search.objective},
                 {"best_value", r.summary.best ? *r.summary.best->value : 0.0},
                 {"train_rows", rt.train_rows},
                 {"retrained", so.budget_seconds <= 0},
                 {"study", so.study.string()}};
  write_file_atomic(run_dir / "result.json", j.dump(2));
  return row;
}

}  // namespace

std::vector<MethodRow> summarize_methods(const std::vector<RunRow>& runs,
                                         const std::vector<std::string>& methods,
                                         const std::string& data_name,
                                         const std::map<std::string, std::string>& notes,
                                         const std::string& reference) {
  std::map<std::string, std::vector<const RunRow*>> by;
  for (const auto& r : runs) by[r.method].push_back(&r);
  auto finals = [&](const std::string& m) {
    std::vector<double> v;
    for (const auto* r : by[m]) v.push_back(r->final_accuracy);
    return v;
  };
  double none_seconds = 0;
  if (by.count("none")) {
    for (const auto* r : by["none"]) none_seconds += r->seconds;
    none_seconds /= static_cast<double>(by["none"].size());
  }
  std::vector<MethodRow> table;
  for (const auto& m : methods) {
    if (!by.count(m)) continue;
    MethodRow row;
    row.method = m;
    std::vector<double> best;
    for (const auto* r : by[m]) {
      best.push_back(r->best_accuracy);
      row.seconds += r->seconds;
      row.trainings += static_cast<double>(r->trainings);
      row.hyper_steps += static_cast<double>(r->hyper_steps);
      row.steps += static_cast<double>(r->steps);
      if (!r->curve.empty()) row.epochs += static_cast<double>(r->curve.back().first);
    }
    const double n = static_cast<double>(by[m].size());
    row.seconds /= n;
    row.trainings /= n;
    row.hyper_steps /= n;
    row.steps /= n;
    row.epochs /= n;
    row.final_accuracy = summarize(finals(m));
    row.best_accuracy = summarize(best);
    row.cost_ratio = none_seconds > 0 ? row.seconds / none_seconds : 0;
    row.p_vs_none = m != "none" && by.count("none") ? welch_p_value(finals(m), finals("none")) : 1.0;
    row.p_vs_gradient =
        m != "gradient" && by.count("gradient") ? welch_p_value(finals(m), finals("gradient")) : 1.0;
    auto mean_measured = [&](double RunRow::*field) {
      double sum = 0;
      int count = 0;
      for (const auto* r : by[m])
        if (r->*field >= 0) sum += r->*field, ++count;
      return count > 0 ? sum / count : -1.0;
    };
    row.val_loss = mean_measured(&RunRow::val_loss);
    row.test_loss = mean_measured(&RunRow::test_loss);
    row.test_ece = mean_measured(&RunRow::test_ece);
    row.effective_lr = mean_measured(&RunRow::effective_lr);
    if (m != reference && by.count(reference)) {
      // Pairs by seed: a seed gives every method the same initialization and data order.
      std::map<uint64_t, double> ref;
      for (const auto* r : by[reference]) ref[r->seed] = r->final_accuracy;
      std::vector<double> a, b;
      for (const auto* r : by[m])
        if (auto it = ref.find(r->seed); it != ref.end()) {
          a.push_back(r->final_accuracy);
          b.push_back(it->second);
        }
      row.paired = paired_difference(a, b);
    }
    row.note = method_note(m, data_name);
    if (auto it = notes.find(m); it != notes.end() && !it->second.empty())
      row.note += (row.note.empty() ? "" : "; ") + it->second;
    table.push_back(row);
  }
  return table;
}

std::string table_markdown(const ExperimentResult& r) {
  std::ostringstream s;
  const bool budget = r.budget_seconds > 0;
  s << fmt::format("## {} — preset `{}` (teacher test accuracy {:.4f}){}\n\n", r.data, r.preset,
                   r.teacher_accuracy,
                   budget ? fmt::format(" — equal budget {:g} s per run", r.budget_seconds) : "");
  if (budget)
    s << fmt::format(
        "Budget: every run of every method had {:g} s of wall-clock. Single trainings stopped when "
        "it was spent (epochs and steps reached below; the last epoch may be partial); searches ran "
        "trials until it was spent and report their best trial by validation objective, tested, "
        "without retrain. Wall-clock budgets are not deterministic: the steps reached depend on "
        "the machine and its load.\n\n",
        r.budget_seconds);
  s << "| method | runs | final acc: mean (max) ± std | best-epoch acc: mean (max) | p vs none | "
       "p vs gradient | time/run | ×none | trainings | hyper-steps |"
    << (budget ? " epochs | steps |" : "") << "\n";
  s << "|---|---|---|---|---|---|---|---|---|---|" << (budget ? "---|---|" : "") << "\n";
  auto p = [](double v, bool self) {
    if (self) return std::string("—");
    return v < 1e-4 ? std::string("<1e-4") : fmt::format("{:.3g}", v);
  };
  // A p-value column against a method the table does not have shows dashes.
  bool has_none = false, has_gradient = false;
  for (const auto& m : r.table) {
    has_none = has_none || m.method == "none";
    has_gradient = has_gradient || m.method == "gradient";
  }
  for (const auto& m : r.table)
    s << fmt::format("| {} | {} | {:.3f} ({:.3f}) ± {:.3f} | {:.3f} ({:.3f}) | {} | {} | {} | {} | "
                     "{:.0f} | {:.0f} |{}\n",
                     m.method, m.final_accuracy.n, m.final_accuracy.mean, m.final_accuracy.max,
                     m.final_accuracy.std, m.best_accuracy.mean, m.best_accuracy.max,
                     p(m.p_vs_none, !has_none || m.method == "none"),
                     p(m.p_vs_gradient, !has_gradient || m.method == "gradient"),
                     fmt_duration(m.seconds),
                     m.cost_ratio > 0 ? fmt::format("{:.2f}", m.cost_ratio) : std::string("—"),
                     m.trainings, m.hyper_steps,
                     budget ? fmt::format(" {:.1f} | {:.0f} |", m.epochs, m.steps) : "");
  s << "\nFinal = test accuracy after the last epoch; best-epoch = the maximum over evaluated "
       "epochs (optimistic: chosen on test data, reported because the paper's code read it so). "
       "p: Welch's t-test on final accuracy over runs.\n";
  for (const auto& m : r.table)
    if (!m.note.empty()) s << "- " << m.method << ": " << m.note << "\n";
  bool paired = false;
  for (const auto& m : r.table) paired = paired || m.paired.n > 0;
  if (paired) {
    s << fmt::format("\nPaired by seed against `{}`: mean difference of final test accuracy, its 95% "
                     "interval (t with n − 1 degrees of freedom) and the paired t-test's p.\n\n"
                     "| method | pairs | difference | 95% interval | p |\n|---|---|---|---|---|\n",
                     r.reference);
    for (const auto& m : r.table)
      if (m.paired.n > 0)
        s << fmt::format("| {} | {} | {:+.4f} | [{:+.4f}, {:+.4f}] | {} |\n", m.method, m.paired.n,
                         m.paired.mean, m.paired.low, m.paired.high,
                         p(m.paired.p, m.paired.n < 2));
  }
  bool measured = false;
  for (const auto& m : r.table)
    measured = measured || m.val_loss >= 0 || m.test_loss >= 0 || m.test_ece >= 0 ||
               m.effective_lr >= 0;
  if (measured) {
    auto v = [](double x) { return x >= 0 ? fmt::format("{:.4g}", x) : std::string("—"); };
    s << "\nAt the last epoch, mean over runs: cross-entropy on D_val (D_val = D_test for "
         "synthetic data) and D_test, expected calibration error on D_test (15 bins), effective "
         "learning rate η·‖∇L‖/‖∇CE‖ at the last step.\n\n";
    s << "| method | val CE | test CE | test ECE | effective lr |\n|---|---|---|---|---|\n";
    for (const auto& m : r.table)
      s << fmt::format("| {} | {} | {} | {} | {} |\n", m.method, v(m.val_loss), v(m.test_loss),
                       v(m.test_ece), v(m.effective_lr));
  }
  return s.str();
}

std::string table_csv(const ExperimentResult& r) {
  std::ostringstream s;
  s << "method,runs,final_mean,final_max,final_std,best_mean,best_max,p_vs_none,p_vs_gradient,"
       "seconds_per_run,cost_ratio_vs_none,trainings,hyper_steps,steps,epochs,budget_seconds,"
       "val_loss,test_loss,test_ece,effective_lr,paired_n,paired_mean,paired_low,paired_high,"
       "paired_p\n";
  for (const auto& m : r.table)
    s << fmt::format(
        "{},{},{:.6f},{:.6f},{:.6f},{:.6f},{:.6f},{:.6g},{:.6g},{:.3f},{:.4f},{},{},{},{},{},{:.6g},"
        "{:.6g},{:.6g},{:.6g},{},{:.6g},{:.6g},{:.6g},{:.6g}\n",
        m.method, m.final_accuracy.n, m.final_accuracy.mean, m.final_accuracy.max,
        m.final_accuracy.std, m.best_accuracy.mean, m.best_accuracy.max, m.p_vs_none,
        m.p_vs_gradient, m.seconds, m.cost_ratio, m.trainings, m.hyper_steps, m.steps, m.epochs,
        r.budget_seconds, m.val_loss, m.test_loss, m.test_ece, m.effective_lr, m.paired.n,
        m.paired.mean, m.paired.low, m.paired.high, m.paired.p);
  return s.str();
}

nlohmann::json table_json(const ExperimentResult& r) {
  nlohmann::json j = {{"data", r.data}, {"preset", r.preset}, {"source", r.source},
                      {"teacher_accuracy", r.teacher_accuracy},
                      {"budget_seconds", r.budget_seconds}};
  for (const auto& m : r.table)
    j["table"].push_back({{"method", m.method},
                          {"runs", m.final_accuracy.n},
                          {"final", {{"mean", m.final_accuracy.mean}, {"max", m.final_accuracy.max},
                                     {"std", m.final_accuracy.std}}},
                          {"best_epoch", {{"mean", m.best_accuracy.mean}, {"max", m.best_accuracy.max}}},
                          {"p_vs_none", m.p_vs_none},
                          {"p_vs_gradient", m.p_vs_gradient},
                          {"seconds_per_run", m.seconds},
                          {"cost_ratio_vs_none", m.cost_ratio},
                          {"trainings", m.trainings},
                          {"hyper_steps", m.hyper_steps},
                          {"steps", m.steps},
                          {"epochs", m.epochs},
                          {"val_loss", m.val_loss},
                          {"test_loss", m.test_loss},
                          {"test_ece", m.test_ece},
                          {"effective_lr", m.effective_lr},
                          {"note", m.note}});
  return j;
}

void write_tables(const ExperimentResult& r, const fs::path& dir, const std::string& more_markdown) {
  write_file_atomic(dir / "table.md", table_markdown(r) + more_markdown);
  write_file_atomic(dir / "table.csv", table_csv(r));
  write_file_atomic(dir / "table.json", table_json(r).dump(2));
  std::ostringstream curves;
  curves << "method,seed,epoch,test_accuracy\n";
  for (const auto& x : r.runs)
    for (const auto& [e, a] : x.curve) curves << fmt::format("{},{},{},{}\n", x.method, x.seed, e, a);
  write_file_atomic(dir / "curves.csv", curves.str());
}

void write_reports(const ExperimentResult& r, const fs::path& dir) {
  write_tables(r, dir);
  std::ostringstream runs;
  runs << "method,seed,final_accuracy,best_accuracy,best_epoch,seconds,steps,hyper_steps,"
          "trainings,lambda1_initial,temperature_initial,lambda1_final,temperature_final\n";
  for (const auto& x : r.runs)
    runs << fmt::format("{},{},{},{},{},{:.3f},{},{},{},{},{},{},{}\n", x.method, x.seed,
                        x.final_accuracy, x.best_accuracy, x.best_epoch, x.seconds, x.steps,
                        x.hyper_steps, x.trainings, x.initial.lambda1, x.initial.temperature,
                        x.final.lambda1, x.final.temperature);
  write_file_atomic(dir / "runs.csv", runs.str());
  const auto trajectories = summarize_trajectories(dir);
  if (!trajectories.empty()) write_file_atomic(dir / "trajectories.md", trajectory_table(trajectories));
  draw_experiment_plots(r, dir);
}

ExperimentResult load_experiment(const fs::path& dir) {
  const fs::path meta = dir / "experiment.json";
  check(fs::exists(meta), "{}: not an experiment folder (no experiment.json)", dir.string());
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(read_file(meta));
  } catch (const nlohmann::json::exception& e) {
    fail("{}: corrupt ({})", meta.string(), e.what());
  }
  ExperimentResult r;
  r.data = j.value("data", "");
  r.preset = j.value("preset", "");
  r.source = j.value("source", "");
  // null: a teacher without test outputs (a logits file of the pool rows only) wrote NaN.
  r.teacher_accuracy = j.contains("teacher_accuracy") && j.at("teacher_accuracy").is_null()
                           ? std::nan("")
                           : j.value("teacher_accuracy", 0.0);
  r.budget_seconds = j.value("budget_seconds", 0.0);
  if (j.contains("notes")) r.notes = j.at("notes").get<std::map<std::string, std::string>>();
  r.methods = j.at("methods").get<std::vector<std::string>>();
  const int64_t runs = j.at("runs");
  const int64_t first_seed = j.value("first_seed", int64_t{0});
  for (const auto& m : r.methods)
    for (int64_t s = first_seed; s < first_seed + runs; ++s) {
      auto f = dir / "runs" / m / fmt::format("seed{}", s) / "result.json";
      if (!fs::exists(f)) continue;
      try {
        r.runs.push_back(RunRow::from_json(nlohmann::json::parse(read_file(f))));
      } catch (const nlohmann::json::exception& e) {
        fail("{}: corrupt result ({})", f.string(), e.what());
      }
    }
  r.reference = j.value("reference", std::string("none"));
  r.table = summarize_methods(r.runs, r.methods, r.data, r.notes, r.reference);
  return r;
}

ExperimentResult run_experiment(const Config& config_in, const ExperimentOptions& options) {
  Config config = config_in;
  if (!options.out.empty()) {
    config.out = options.out.string();
    config.resolve_paths();  // fills only what the config left empty
  }
  const double budget = options.budget_seconds ? *options.budget_seconds : config.budget.seconds;
  check(std::isfinite(budget) && budget >= 0,
        "budget of {} seconds: expected seconds >= 0 (0 = no budget)", budget);
  config.budget.seconds = budget;
  // Budget results never mix with unlimited ones; the teacher and its cache stay shared.
  const fs::path dir = budget > 0 ? fs::path(config.out) / budget_folder_name(budget)
                                  : fs::path(config.out);
  ExperimentResult result;
  result.budget_seconds = budget;
  result.methods = !options.methods.empty() ? options.methods
                   : !config.methods.empty() ? config.methods
                                             : default_methods();
  const int64_t runs = options.runs > 0 ? options.runs : config.runs;
  const auto known = experiment_method_names();
  for (const auto& m : result.methods)
    check(std::find(known.begin(), known.end(), m) != known.end() || config.variants.count(m) > 0,
          "unknown method '{}': expected one of {}{}", m, fmt::join(known, ", "),
          config.variants.empty() ? "" : " or a name under variants");
  for (const auto& m : result.methods)
    if (is_search_method(m)) result.notes[m] = search_note(config, m, budget);

  RunQueue* const queue = options.queue.get();
  RunPoolOptions po;
  po.jobs = options.jobs;
  po.worker_command = options.worker_command;
  po.worker = options.worker;
  po.queue = queue;
  po.fresh = options.fresh;
  po.validate();
  // Rank 0 (or the only process) decides, reports and writes the experiment's files.
  const bool root = queue == nullptr || queue->root();
  // Everything that can be checked is, before the teacher is trained or data decoded.
  check_before_start(config, result.methods);
  fs::create_directories(dir);
  // The teacher is trained (or loaded) here, before any worker starts, so workers only load it;
  // the other ranks of a group take rank 0's.
  Prepared prepared;
  prepare_teacher_in_group(queue, config, [&] { prepared = prepare(config); });
  result.data = prepared.data.name;
  result.reference = config.reference;
  result.preset = config.preset;
  result.source = config.source;
  result.teacher_accuracy = prepared.teacher_test_accuracy;

  struct PlannedRun {
    std::string method;
    int64_t seed;
    size_t index;
    fs::path dir;
  };
  std::vector<PlannedRun> plan_runs;
  std::vector<std::string> plan;
  for (const auto& m : result.methods)
    for (int64_t s = config.first_seed; s < config.first_seed + runs; ++s) {
      plan_runs.push_back({m, s, plan.size(), dir / "runs" / m / fmt::format("seed{}", s)});
      plan.push_back(m);
    }
  std::unique_ptr<ExperimentProgress> progress;
  if (options.progress && !options.worker && root)
    progress = std::make_unique<ExperimentProgress>(plan, std::cerr, ::isatty(STDERR_FILENO) != 0);
  auto say = [&](const std::string& line) {
    if (progress) progress->message(line);
  };
  // Warnings reach the user with or without the progress display (a worker's are its parent's).
  auto warn = [&](const std::string& line) {
    if (progress) progress->message(line);
    else if (!options.worker) std::cerr << line << "\n";
  };
  if (budget > 0)
    say(fmt::format("equal budget: {:g} s of wall-clock per run; results in {} (not "
                    "deterministic: they depend on the machine's load)",
                    budget, dir.string()));
  if (std::find(result.methods.begin(), result.methods.end(), "tpe") != result.methods.end() &&
      config.search.trials <= config.search.startup && budget <= 0)
    say(fmt::format("warning: search.trials {} <= search.startup {}: every TPE trial is drawn "
                    "from the prior, so `tpe` is random search here",
                    config.search.trials, config.search.startup));

  // Single trainings get the budget as their trainer's time limit; searches share it out.
  Config single = config;
  single.student.trainer.time_limit = budget;
  auto read_row = [](const fs::path& result_file) {
    try {
      return RunRow::from_json(nlohmann::json::parse(read_file(result_file)));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: corrupt result ({}); delete it to run again", result_file.string(), e.what());
    }
  };
  auto summary_of = [](const RunRow& row) {
    return fmt::format("{} seed {}: final {:.4f}, best {:.4f}, {} -> {}", row.method, row.seed,
                       row.final_accuracy, row.best_accuracy, row.initial.to_string(),
                       row.final.to_string());
  };
  // Runs already reported on the progress line (finished here, earlier, or by another process).
  std::vector<char> reported(plan_runs.size(), 0);
  auto report_finished_elsewhere = [&](const std::string& origin) {
    if (!progress) return;
    for (const auto& pr : plan_runs) {
      if (reported[pr.index] || !fs::exists(pr.dir / "result.json")) continue;
      const RunRow row = read_row(pr.dir / "result.json");
      progress->finished_earlier(pr.index, static_cast<uint64_t>(pr.seed), row.seconds,
                                 summary_of(row), origin);
      reported[pr.index] = 1;
    }
  };
  // Executes one run; the caller holds its lock and has seen no result.json.
  auto execute = [&](const PlannedRun& pr) {
    const uint64_t seed = static_cast<uint64_t>(pr.seed);
    if (progress) progress->start_run(pr.index, seed);
    RunRow row;
    if (is_search_method(pr.method)) {
      row = run_search_method(config, prepared, pr.method, seed, pr.dir, options.verbose,
                              progress.get());
    } else {
      if (progress) progress->start_training("", pr.dir, single.student.trainer.epochs);
      RunResult rr = run_distill(single, prepared, pr.method, seed, pr.dir, /*resume=*/true,
                                 options.verbose);
      row = row_from(rr);  // run_distill wrote the same fields to result.json
    }
    if (progress) progress->finish_run(row.seconds, summary_of(row));
    reported[pr.index] = 1;
  };

  // --fresh: what it discards goes before any process looks, so workers always start afresh.
  auto discard = [](const PlannedRun& pr) {
    std::error_code ignored;
    for (const char* f : {"result.json", "checkpoint.pt", "study.db", "study.db-wal", "study.db-shm"})
      fs::remove(pr.dir / f, ignored);
    fs::remove_all(pr.dir / "retrain", ignored);
    for (const auto& e : fs::directory_iterator(pr.dir, ignored))
      if (e.path().filename().string().rfind("trial-", 0) == 0) fs::remove_all(e.path(), ignored);
  };
  // (The other ranks of a group discard a run when they claim it.)
  if (options.fresh && !options.worker && root)
    for (const auto& pr : plan_runs) discard(pr);
  // A stored run is reused (or continued) only when it was made with this run's settings: a
  // mismatch stops the experiment before anything is trained, naming what differs (never a
  // stale result shown as the new one). Runs stored before settings keys are taken as they are.
  auto settings_of = [&](const PlannedRun& pr) {
    return run_settings(is_search_method(pr.method) ? config : single, prepared, pr.method,
                        static_cast<uint64_t>(pr.seed));
  };
  if (root) {
    std::vector<std::string> mismatches;
    for (const auto& pr : plan_runs) {
      const fs::path result_file = pr.dir / "result.json", checkpoint = pr.dir / "checkpoint.pt";
      try {
        if (fs::exists(result_file)) {
          nlohmann::json stored;
          try {
            stored = nlohmann::json::parse(read_file(result_file));
          } catch (const nlohmann::json::exception& e) {
            fail("{}: corrupt result ({}); delete it or use --fresh to run again",
                 result_file.string(), e.what());
          }
          if (check_stored_settings(stored, settings_of(pr), result_file.string()) ==
                  StoredSettings::kLegacy &&
              !options.worker)
            warn(legacy_settings_warning(result_file.string()));
        } else if (!is_search_method(pr.method) && fs::exists(checkpoint)) {
          // A checkpoint without a key is resumed with the trainer's warning.
          const auto stored = checkpoint_settings(checkpoint);
          if (!stored.is_null()) check_stored_settings(stored, settings_of(pr), checkpoint.string());
        }
      } catch (const Error& e) {
        mismatches.push_back(e.what());
      }
    }
    check(mismatches.empty(), "{} stored run(s) do not fit this experiment:\n  {}",
          mismatches.size(), fmt::join(mismatches, "\n  "));
  }
  // The folder describes this experiment only once its stored runs are known to fit it.
  if (!options.worker && root) {
    write_file_atomic(dir / "config.json", config.to_json().dump(2));
    write_file_atomic(dir / "experiment.json",
                      nlohmann::json{{"data", result.data},
                                     {"preset", result.preset},
                                     {"source", result.source},
                                     {"teacher_accuracy", result.teacher_accuracy},
                                     {"methods", result.methods},
                                     {"runs", runs},
                                     {"first_seed", config.first_seed},
                                     {"reference", config.reference},
                                     {"budget_seconds", budget},
                                     {"notes", result.notes}}
                          .dump(2));
    if (prepared.data.name.rfind("synthetic", 0) == 0)
      write_synthetic_points(prepared.data, dir / "synthetic.dat");
  }
  // Results found at the start were computed earlier (a resumed experiment); those that appear
  // later come from the other processes of this one (--jobs workers, other ranks).
  report_finished_elsewhere("stored");
  std::vector<PoolRun> pool;
  for (const auto& pr : plan_runs)
    pool.push_back({pr.dir.lexically_relative(dir).generic_string(), pr.dir,
                    static_cast<uint64_t>(pr.seed), pr.index});
  RunPoolHooks hooks;
  hooks.execute = [&](const PoolRun& run) { execute(plan_runs[run.index]); };
  hooks.discard = [&](const PoolRun& run) { discard(plan_runs[run.index]); };
  hooks.check_delivered = [&](const PoolRun& run) {
    const fs::path file = run.dir / "result.json";
    check_stored_settings(nlohmann::json::parse(read_file(file)), settings_of(plan_runs[run.index]),
                          file.string() + " (delivered by another rank)");
  };
  hooks.waiting = [&] { report_finished_elsewhere("by another process"); };
  hooks.say = say;
  hooks.summary = [&](const PoolRun& run) { return summary_of(read_row(run.dir / "result.json")); };
  if (!execute_runs(pool, po, hooks)) return result;
  report_finished_elsewhere("by another process");
  for (const auto& pr : plan_runs) result.runs.push_back(read_row(pr.dir / "result.json"));
  progress.reset();  // ends the status line before the table is printed
  result.table = summarize_methods(result.runs, result.methods, result.data, result.notes,
                                   result.reference);
  write_reports(result, dir);
  return result;
}

}  // namespace metadistill
