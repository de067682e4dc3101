#include "metadistill/experiment/diagnose.h"

#include <algorithm>
#include <cmath>
#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/experiment/plots.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

void DiagnoseOptions::validate() const {
  check(method != "none",
        "diagnose: method 'none' trains on D_train ∪ D_val with no metaparameters to test");
  check(!at.empty(), "diagnose: --at needs at least one fraction");
  for (double f : at)
    check(std::isfinite(f) && f > 0 && f < 1, "diagnose: --at {}: expected fractions in (0, 1)", f);
  check(std::isfinite(delta_lambda1) && delta_lambda1 > 0 && delta_lambda1 <= 0.5,
        "diagnose: delta_lambda1 = {}: expected a value in (0, 0.5]", delta_lambda1);
  check(std::isfinite(delta_temperature) && delta_temperature > 0 && delta_temperature <= 5,
        "diagnose: delta_temperature = {}: expected a value in (0, 5]", delta_temperature);
}

namespace {

double component(const Metaparameters& m, const std::string& which) {
  return which == "lambda1" ? m.lambda1 : m.temperature;
}

Metaparameters with_component(Metaparameters m, const std::string& which, double v) {
  if (which == "lambda1") m.lambda1 = std::clamp(v, 0.0, 1.0);
  else m.temperature = std::clamp(v, Metaparameters::kMinTemperature, Metaparameters::kMaxTemperature);
  return m;
}

double final_val_loss(const RunResult& r, const fs::path& dir) {
  check(!r.train.history.empty() && r.train.history.back().val_loss >= 0,
        "diagnose: {} has no validation loss at its last epoch", dir.string());
  return r.train.history.back().val_loss;
}

std::string fmt_g(double v) { return fmt::format("{:.4g}", v); }

void write_forks_csv(const DiagnoseResult& r, const fs::path& path) {
  std::ostringstream s;
  s << "fraction,epoch,metaparameter,value,value_minus,value_plus,val_loss_minus,val_loss_plus,"
       "long_horizon,greedy_mean,greedy_agree,greedy_steps\n";
  for (const auto& f : r.forks)
    s << fmt::format("{},{},{},{},{},{},{},{},{},{},{},{}\n", f.fraction, f.epoch, f.metaparameter,
                     f.value, f.value_minus, f.value_plus, f.val_loss_minus, f.val_loss_plus,
                     f.long_horizon, f.greedy_mean, f.greedy_agree, f.greedy_steps);
  write_file_atomic(path, s.str());
}

void write_control_csv(const DiagnoseResult& r, const fs::path& path) {
  std::ostringstream s;
  s << "name,epoch,lr,effective_lr,val_loss,test_loss,test_accuracy,test_ece\n";
  for (const auto& c : r.control)
    for (const auto& e : c.history)
      s << fmt::format("{},{},{},{},{},{},{},{}\n", c.name, e.epoch, e.lr, e.effective_lr,
                       e.val_loss, e.test_loss, e.test_accuracy, e.test_ece);
  write_file_atomic(path, s.str());
}

void draw_plots(const DiagnoseResult& r, const fs::path& out) {
  const auto folder = plots_folder(out);
  if (!folder) return;
  // Sign test: one data block per metaparameter (fraction, ĝ, greedy mean).
  std::ostringstream forks;
  for (const std::string which : {"lambda1", "temperature"}) {
    forks << "# " << which << "\n";
    for (const auto& f : r.forks)
      if (f.metaparameter == which)
        forks << f.fraction << "," << f.long_horizon << "," << f.greedy_mean << "\n";
    forks << "\n\n";
  }
  write_file_atomic(*folder / "sign-test.dat", forks.str());
  std::string body;
  for (const auto& [i, name] : {std::pair<int, std::string>{0, "lambda1"}, {1, "T"}})
    body += fmt::format("{}'sign-test.dat' index {} using 1:2 axes x1y1 with linespoints title "
                        "'{}: long-horizon (left axis)', 'sign-test.dat' index {} using 1:3 axes "
                        "x1y2 with points title '{}: greedy one-step (right axis)'",
                        body.empty() ? "plot " : ", ", i, name, i, name);
  run_gnuplot(write_gnuplot_script(
      *folder, "sign-test",
      fmt::format("set title 'dL_val/dm: to the end of the run vs one step ({}, seed {})'\n"
                  "set xlabel 'fork (fraction of the run)'\nset ylabel 'long-horizon'\n"
                  "set y2label 'greedy'\nset y2tics\nset ytics nomirror\nset xzeroaxis\n"
                  "set key outside bottom center\nset grid\nset datafile separator ','",
                  r.method, r.seed),
      body));
  if (r.control.empty()) return;
  std::ostringstream curves;
  for (const auto& c : r.control) {
    curves << "# " << c.name << "\n";
    for (const auto& e : c.history)
      curves << e.epoch << "," << e.test_accuracy << "," << e.val_loss << "\n";
    curves << "\n\n";
  }
  write_file_atomic(*folder / "control.dat", curves.str());
  for (const auto& [column, label] :
       {std::pair<int, std::string>{2, "test accuracy"}, {3, "validation cross-entropy"}}) {
    std::string plot;
    for (size_t i = 0; i < r.control.size(); ++i)
      plot += fmt::format("{}'control.dat' index {} using 1:{} with lines lw 2 title '{}'",
                          plot.empty() ? "plot " : ", ", i, column, r.control[i].name);
    run_gnuplot(write_gnuplot_script(
        *folder, column == 2 ? "control-accuracy" : "control-val-loss",
        fmt::format("set title 'The run ({}) against cross-entropy with its effective learning "
                    "rate'\nset xlabel 'epoch'\nset ylabel '{}'\nset key outside bottom center\n"
                    "set grid\nset datafile separator ','",
                    r.method, label),
        plot));
  }
}

}  // namespace

DiagnoseResult run_diagnose(const Config& config, const Prepared& prepared,
                            const DiagnoseOptions& options, const fs::path& out) {
  options.validate();
  const int64_t epochs = config.student.trainer.epochs;
  check(epochs >= 2, "diagnose: the run has {} epoch(s): forks need at least 2", epochs);
  std::vector<int64_t> fork_epochs;
  for (double f : options.at)
    fork_epochs.push_back(std::clamp<int64_t>(std::llround(f * static_cast<double>(epochs)), 1,
                                              epochs - 1));
  DiagnoseResult r;
  r.method = options.method;
  r.data = prepared.data.name;
  r.seed = options.seed;
  fs::create_directories(out);

  Config base = config;
  base.student.trainer.keep_checkpoints = fork_epochs;
  base.student.trainer.trajectory_every = 1;
  base.student.trainer.time_limit = 0;
  const fs::path run_dir = out / "run";
  r.run = run_distill(base, prepared, options.method, options.seed, run_dir, /*resume=*/true,
                      options.verbose);
  const auto& run = r.run.train;
  check(run.steps % epochs == 0, "diagnose: the run took {} steps in {} epochs", run.steps, epochs);
  const int64_t per_epoch = run.steps / epochs;

  for (size_t k = 0; k < fork_epochs.size(); ++k) {
    const int64_t e = fork_epochs[k];
    const fs::path checkpoint = run_dir / fmt::format("checkpoint-epoch{}.pt", e);
    check(fs::exists(checkpoint), "diagnose: {} is missing (a run folder from before forks were "
          "asked for?); delete {} to train the run again", checkpoint.string(), run_dir.string());
    // λ at the fork: the value the epoch's last step used.
    Metaparameters at = r.run.initial;
    for (const auto& p : run.trajectory)
      if (p.step == e * per_epoch - 1) at = p.value;
    for (const std::string which : {"lambda1", "temperature"}) {
      ForkRow row;
      row.fraction = options.at[k];
      row.epoch = e;
      row.metaparameter = which;
      row.value = component(at, which);
      const double delta = which == "lambda1" ? options.delta_lambda1 : options.delta_temperature;
      double loss[2];
      double value[2];
      for (int side = 0; side < 2; ++side) {
        const Metaparameters held = with_component(at, which, row.value + (side ? delta : -delta));
        value[side] = component(held, which);
        Config fc = config;
        fc.method.fixed = held;
        fc.method.given_initial = true;
        fc.student.trainer.fork_from = checkpoint;
        fc.student.trainer.time_limit = 0;
        const fs::path dir = out / fmt::format("fork-epoch{}", e) /
                             fmt::format("{}-{}", which, side ? "plus" : "minus");
        loss[side] = final_val_loss(
            run_distill(fc, prepared, "fixed", options.seed, dir, /*resume=*/true, options.verbose),
            dir);
      }
      row.value_minus = value[0];
      row.value_plus = value[1];
      row.val_loss_minus = loss[0];
      row.val_loss_plus = loss[1];
      check(value[1] > value[0], "diagnose: {} = {} leaves no room for ±{}", which, row.value, delta);
      row.long_horizon = (loss[1] - loss[0]) / (value[1] - value[0]);
      // The greedy hypergradients of the epoch after the fork.
      const size_t index = which == "lambda1" ? 0 : 1;
      double sum = 0;
      int64_t agree = 0;
      for (const auto& p : run.trajectory) {
        if (p.step < e * per_epoch || p.step >= (e + 1) * per_epoch) continue;
        if (p.hypergradient.size() <= index || !std::isfinite(p.hypergradient[index])) continue;
        sum += p.hypergradient[index];
        agree += (p.hypergradient[index] > 0) == (row.long_horizon > 0);
        ++row.greedy_steps;
      }
      if (row.greedy_steps > 0) {
        row.greedy_mean = sum / static_cast<double>(row.greedy_steps);
        row.greedy_agree = static_cast<double>(agree) / static_cast<double>(row.greedy_steps);
      }
      r.forks.push_back(row);
    }
  }

  if (options.control) {
    r.control.push_back({"run", run.history});
    std::vector<double> effective;
    for (int64_t e = 0; e < epochs; ++e) {
      double lr = -1;
      for (const auto& m : run.history)
        if (m.epoch == e + 1) lr = m.effective_lr;
      effective.push_back(lr >= 0 ? lr : scheduled_lr(config.student.trainer, e));
    }
    for (const bool follow : {true, false}) {
      Config cc = config;
      cc.method.fixed = {1.0, 1.0};  // plain cross-entropy on D_train, as the run sees
      cc.method.given_initial = true;
      cc.student.trainer.time_limit = 0;
      if (follow) cc.student.trainer.lr_by_epoch = effective;
      const std::string name = follow ? "ce-effective-lr" : "ce-nominal-lr";
      auto c = run_distill(cc, prepared, "fixed", options.seed, out / name, /*resume=*/true,
                           options.verbose);
      r.control.push_back({name, c.train.history});
    }
  }

  write_forks_csv(r, out / "forks.csv");
  if (!r.control.empty()) write_control_csv(r, out / "control.csv");
  write_file_atomic(out / "report.md", diagnose_report(r));
  draw_plots(r, out);
  return r;
}

std::string diagnose_report(const DiagnoseResult& r) {
  std::ostringstream s;
  s << fmt::format("# Diagnosis of `{}` on {} (seed {})\n\n", r.method, r.data, r.seed);
  const auto& h = r.run.train.history;
  if (!h.empty())
    s << fmt::format("The run: final test accuracy {:.4f}, validation CE {}, λ {} -> {}.\n\n",
                     h.back().test_accuracy, fmt_g(h.back().val_loss), r.run.initial.to_string(),
                     r.run.final.to_string());
  s << "## Long-horizon sign test\n\n"
       "From the run's checkpoint after each fork epoch, the rest of the run is trained twice per "
       "metaparameter, holding it at its value there ± δ (the other at its value). ĝ = ΔL_val(end) "
       "/ Δvalue, with L_val the cross-entropy on all of D_val at the end. Beside it, the greedy "
       "one-step hypergradient of the epoch after the fork: its mean, and the share of its steps "
       "whose sign is ĝ's (greedy and ĝ are derivatives of different objectives; their signs say "
       "which way each would move the value).\n\n";
  s << "| fork | metaparameter | value | held at | L_val(end) | ĝ | greedy mean | signs agree |\n"
       "|---|---|---|---|---|---|---|---|\n";
  int64_t agree = 0, total = 0;
  for (const auto& f : r.forks) {
    const bool has = f.greedy_steps > 0;
    s << fmt::format("| {:g} (epoch {}) | {} | {} | {} / {} | {} / {} | {} | {} | {} |\n",
                     f.fraction, f.epoch, f.metaparameter, fmt_g(f.value), fmt_g(f.value_minus),
                     fmt_g(f.value_plus), fmt_g(f.val_loss_minus), fmt_g(f.val_loss_plus),
                     fmt_g(f.long_horizon), has ? fmt_g(f.greedy_mean) : "—",
                     has ? fmt::format("{:.0f}% of {}", 100 * f.greedy_agree, f.greedy_steps)
                         : "—");
    if (has) {
      ++total;
      agree += (f.greedy_mean > 0) == (f.long_horizon > 0);
    }
  }
  if (total > 0)
    s << fmt::format("\nThe greedy mean has the sign of ĝ at {} of {} (fork, metaparameter) "
                     "points.\n",
                     agree, total);
  if (!r.control.empty()) {
    s << "\n## Learning-rate control\n\n"
         "Plain cross-entropy on D_train with the run's per-epoch effective learning rate "
         "η·‖∇L‖/‖∇CE‖ as its schedule (`ce-effective-lr`), and with the nominal schedule "
         "(`ce-nominal-lr`).\n\n| training | final test acc | best test acc | final val CE | "
         "final test CE | final test ECE |\n|---|---|---|---|---|---|\n";
    for (const auto& c : r.control) {
      if (c.history.empty()) continue;
      double best = 0;
      for (const auto& e : c.history) best = std::max(best, e.test_accuracy);
      const auto& last = c.history.back();
      s << fmt::format("| {} | {:.4f} | {:.4f} | {} | {} | {} |\n", c.name, last.test_accuracy,
                       best, fmt_g(last.val_loss), fmt_g(last.test_loss), fmt_g(last.test_ece));
    }
  }
  s << "\nFiles: forks.csv, control.csv, plots/sign-test.png, plots/control-accuracy.png, "
       "plots/control-val-loss.png; each training in its own folder.\n";
  return s.str();
}

}  // namespace metadistill
