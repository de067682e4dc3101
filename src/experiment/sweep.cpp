#include "metadistill/experiment/sweep.h"

#include <iostream>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/plots.h"
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
  fs::create_directories(dir);
  Prepared prepared = prepare(config);

  std::vector<std::tuple<std::string, int64_t, int64_t>> points;
  for (auto v : o.equal) points.emplace_back("e1=e2", v, v);
  for (auto v : o.e2_values)
    points.emplace_back(fmt::format("e2 (e1={})", o.fixed_e1), o.fixed_e1, v);

  std::vector<SweepPoint> out;
  for (const auto& [curve, e1, e2] : points) {
    Config c = config;
    c.method.extra["e1"] = e1;
    c.method.extra["e2"] = e2;
    SweepPoint p;
    p.curve = curve;
    p.e1 = e1;
    p.e2 = e2;
    std::vector<double> acc;
    double share = 0;
    for (int64_t s = 0; s < runs; ++s) {
      const fs::path run_dir = dir / fmt::format("e1-{}-e2-{}", e1, e2) / fmt::format("seed{}", s);
      double final_acc = 0, steps = 0, hyper = 0;
      if (fs::exists(run_dir / "result.json")) {
        auto j = nlohmann::json::parse(read_file(run_dir / "result.json"));
        // Reused only when stored with this point's settings (util/settings_key.h).
        const std::string file = (run_dir / "result.json").string();
        if (check_stored_settings(j, run_settings(c, prepared, "proposed", static_cast<uint64_t>(s)),
                                  file) == StoredSettings::kLegacy)
          std::cerr << legacy_settings_warning(file) << "\n";
        final_acc = j.at("final_test_accuracy");
        steps = j.at("steps");
        hyper = j.at("hyper_steps");
      } else {
        auto r = run_distill(c, prepared, "proposed", static_cast<uint64_t>(s), run_dir, true);
        final_acc = r.train.final_test_accuracy;
        steps = static_cast<double>(r.train.steps);
        hyper = static_cast<double>(r.train.hyper_steps);
      }
      acc.push_back(final_acc);
      share += steps > 0 ? hyper / steps : 0;
    }
    p.final_accuracy = summarize(acc);
    p.hyper_step_share = share / static_cast<double>(runs);
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
