#include "metadistill/experiment/sweep.h"

#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/plots.h"
#include "metadistill/experiment/run_pool.h"
#include "metadistill/experiment/run_queue.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/settings_key.h"

namespace metadistill {

namespace fs = std::filesystem;

std::vector<SweepPoint> run_sweep(const Config& config_in, const SweepOptions& o) {
  Config config = config_in;
  const fs::path dir = o.out.empty() ? fs::path(config.out) / "sweep" : o.out;
  const int64_t runs = o.runs > 0 ? o.runs : config.runs;
  check(!o.equal.empty() || !o.e2_values.empty(), "sweep: no values to sweep");
  for (auto v : o.equal) check(v >= 2, "sweep: e1 = e2 = {}: expected >= 2", v);
  for (auto v : o.e2_values) check(v >= 0, "sweep: e2 = {}: expected >= 0", v);
  check(o.fixed_e1 >= 2, "sweep: e1 = {}: expected >= 2", o.fixed_e1);
  check_before_start(config, {"proposed"});
  RunPoolOptions po;
  po.jobs = o.jobs;
  po.worker_command = o.worker_command;
  po.worker = o.worker;
  po.queue = o.queue.get();
  po.validate();
  fs::create_directories(dir);
  Prepared prepared;
  prepare_teacher_in_group(o.queue.get(), config, [&] { prepared = prepare(config); });

  std::vector<std::tuple<std::string, int64_t, int64_t>> points;
  for (auto v : o.equal) points.emplace_back("e1=e2", v, v);
  for (auto v : o.e2_values)
    points.emplace_back(fmt::format("e2 (e1={})", o.fixed_e1), o.fixed_e1, v);

  // Every run of every point; each writes its own folder, so runs may go in any process.
  struct SweepRun {
    size_t point;
    int64_t seed;
    Config config;
    fs::path dir;
  };
  std::vector<SweepRun> plan;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& [curve, e1, e2] = points[i];
    Config c = config;
    c.method.extra["e1"] = e1;
    c.method.extra["e2"] = e2;
    for (int64_t s = 0; s < runs; ++s)
      plan.push_back({i, s, c, dir / fmt::format("e1-{}-e2-{}", e1, e2) / fmt::format("seed{}", s)});
  }
  auto execute = [&](const SweepRun& r) {
    run_distill(r.config, prepared, "proposed", static_cast<uint64_t>(r.seed), r.dir, true);
  };
  const auto settings_of = [&](const SweepRun& r) {
    return run_settings(r.config, prepared, "proposed", static_cast<uint64_t>(r.seed));
  };
  std::vector<PoolRun> pool;
  for (size_t i = 0; i < plan.size(); ++i)
    pool.push_back({plan[i].dir.lexically_relative(dir).generic_string(), plan[i].dir,
                    static_cast<uint64_t>(plan[i].seed), i});
  RunPoolHooks hooks;
  hooks.execute = [&](const PoolRun& run) { execute(plan[run.index]); };
  hooks.check_delivered = [&](const PoolRun& run) {
    const fs::path file = run.dir / "result.json";
    check_stored_settings(nlohmann::json::parse(read_file(file)), settings_of(plan[run.index]),
                          file.string() + " (delivered by another rank)");
  };
  hooks.say = [](const std::string& line) { std::cerr << line << "\n"; };
  hooks.summary = [&](const PoolRun& run) {
    return fmt::format("{} seed {}: done", run.key, run.seed);
  };
  if (!execute_runs(pool, po, hooks)) return {};
  // Every run is finished: read them back.
  std::vector<std::vector<double>> acc(points.size());
  std::vector<double> share(points.size(), 0.0);
  for (const auto& r : plan) {
    const fs::path file = r.dir / "result.json";
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(read_file(file));
    } catch (const nlohmann::json::exception& e) {
      fail("{}: corrupt result ({}); delete it to train the run again", file.string(), e.what());
    }
    // Reused only when stored with this point's settings (util/settings_key.h).
    if (check_stored_settings(j, settings_of(r), file.string()) == StoredSettings::kLegacy)
      std::cerr << legacy_settings_warning(file.string()) << "\n";
    const double steps = j.at("steps");
    const double hyper = j.at("hyper_steps");
    acc[r.point].push_back(j.at("final_test_accuracy").get<double>());
    share[r.point] += steps > 0 ? hyper / steps : 0;
  }
  std::vector<SweepPoint> out;
  for (size_t i = 0; i < points.size(); ++i) {
    const auto& [curve, e1, e2] = points[i];
    SweepPoint p;
    p.curve = curve;
    p.e1 = e1;
    p.e2 = e2;
    p.final_accuracy = summarize(acc[i]);
    p.hyper_step_share = share[i] / static_cast<double>(runs);
    std::cerr << fmt::format("sweep {} e1={} e2={}: {:.4f} (max {:.4f}), hyper-steps {:.0f}%\n",
                             curve, e1, e2, p.final_accuracy.mean, p.final_accuracy.max,
                             100 * p.hyper_step_share);
    out.push_back(p);
  }

  std::ostringstream csv, md, dat_eq, dat_e2;
  csv << "curve,e1,e2,runs,final_mean,final_max,final_std,hyper_step_share\n";
  md << fmt::format("## e1/e2 sweep of `proposed` on {} ({} runs per point)\n\n", prepared.data.name, runs);
  md << "| curve | e1 | e2 | final acc: mean (max) ± std | hyper-steps |\n|---|---|---|---|---|\n";
  for (const auto& p : out) {
    csv << fmt::format("{},{},{},{},{:.6f},{:.6f},{:.6f},{:.4f}\n", p.curve, p.e1, p.e2,
                       p.final_accuracy.n, p.final_accuracy.mean, p.final_accuracy.max,
                       p.final_accuracy.std, p.hyper_step_share);
    md << fmt::format("| {} | {} | {} | {:.3f} ({:.3f}) ± {:.3f} | {:.0f}% |\n", p.curve, p.e1, p.e2,
                      p.final_accuracy.mean, p.final_accuracy.max, p.final_accuracy.std,
                      100 * p.hyper_step_share);
    (p.curve == "e1=e2" ? dat_eq : dat_e2)
        << fmt::format("{},{},{}\n", p.curve == "e1=e2" ? p.e1 : p.e2, p.final_accuracy.mean,
                       p.final_accuracy.std);
  }
  write_file_atomic(dir / "sweep.csv", csv.str());
  write_file_atomic(dir / "sweep.md", md.str());
  if (gnuplot_available()) {
    fs::create_directories(dir / "plots");
    write_file_atomic(dir / "plots" / "sweep-equal.dat", dat_eq.str());
    write_file_atomic(dir / "plots" / "sweep-e2.dat", dat_e2.str());
    std::string body = fmt::format(
        "set multiplot layout 1,2 title 'Proposed method: accuracy against e1, e2 ({})'\n"
        "set logscale x\nset xlabel 'e1 = e2'\nset ylabel 'test accuracy'\nset key off\nset grid\n"
        "plot 'sweep-equal.dat' using 1:2:3 with yerrorlines pt 7\n"
        "set xlabel 'e2 (e1 = {})'\nplot 'sweep-e2.dat' using 1:2:3 with yerrorlines pt 7\n"
        "unset multiplot",
        prepared.data.name, o.fixed_e1);
    std::ostringstream gp;
    gp << "set datafile separator ','\n";
    gp << "set terminal pngcairo size 1000,450 noenhanced\nset output 'sweep.png'\n" << body << "\n";
    gp << "set terminal svg size 1000,450 noenhanced\nset output 'sweep.svg'\n" << body << "\nunset output\n";
    write_file_atomic(dir / "plots" / "sweep.gp", gp.str());
    run_gnuplot(dir / "plots" / "sweep.gp");
  }
  return out;
}

}  // namespace metadistill
