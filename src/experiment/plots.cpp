#include "metadistill/experiment/plots.h"

#include <sys/wait.h>

#include <cstdlib>
#include <iostream>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/experiment/experiment.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

bool gnuplot_available() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

void run_gnuplot(const fs::path& script) {
  const std::string cmd = fmt::format("cd '{}' && gnuplot '{}' 2>&1", script.parent_path().string(),
                                      script.filename().string());
  const int rc = std::system(cmd.c_str());
  // std::system returns a wait status: the exit status is in its high byte.
  check(rc == 0, "gnuplot failed on {} (exit status {})", script.string(),
        rc != -1 && WIFEXITED(rc) ? WEXITSTATUS(rc) : rc);
}

fs::path write_gnuplot_script(const fs::path& dir, const std::string& name,
                              const std::string& setup, const std::string& body) {
  std::ostringstream s;
  s << "# drawn by metadistill; edit and rerun with: gnuplot " << name << ".gp\n"
    << "set datafile separator ','\n" << setup << "\n";
  s << "set terminal pngcairo size 900,560 noenhanced\nset output '" << name << ".png'\n" << body
    << "\n";
  s << "set terminal svg size 900,560 noenhanced\nset output '" << name << ".svg'\n" << body
    << "\nunset output\n";
  const fs::path path = dir / (name + ".gp");
  write_file_atomic(path, s.str());
  return path;
}

std::optional<fs::path> plots_folder(const fs::path& dir) {
  if (!gnuplot_available()) {
    std::cerr << "warning: gnuplot not found; plots not drawn (scripts/setup.sh installs it)\n";
    return std::nullopt;
  }
  fs::create_directories(dir / "plots");
  return dir / "plots";
}

std::vector<fs::path> draw_experiment_plots(const ExperimentResult& r, const fs::path& dir) {
  std::vector<fs::path> written;
  const auto folder = plots_folder(dir);
  if (!folder) return written;
  const fs::path& plots = *folder;

  // Fig. 4: mean test accuracy against epoch, one line per method.
  std::map<std::string, std::map<int64_t, std::pair<double, int>>> curves;
  for (const auto& run : r.runs)
    for (const auto& [epoch, acc] : run.curve) {
      auto& c = curves[run.method][epoch];
      c.first += acc;
      c.second += 1;
    }
  std::ostringstream data;
  std::vector<std::string> plotted;
  for (const auto& m : r.methods) {
    if (!curves.count(m)) continue;
    data << "# " << m << "\n";
    for (const auto& [epoch, c] : curves[m]) data << epoch << "," << c.first / c.second << "\n";
    data << "\n\n";
    plotted.push_back(m);
  }
  write_file_atomic(plots / "accuracy.dat", data.str());
  std::string body = "plot ";
  for (size_t i = 0; i < plotted.size(); ++i)
    body += fmt::format("{}'accuracy.dat' index {} using 1:2 with linespoints title '{}'",
                        i ? ", \\\n     " : "", i, plotted[i]);
  auto script = write_gnuplot_script(
      plots, "accuracy",
      fmt::format("set title 'Test accuracy by epoch, mean over runs ({}, {})'\nset xlabel "
                  "'epoch'\nset ylabel 'test accuracy'\nset key bottom right\nset grid",
                  r.data, r.preset),
      body);
  run_gnuplot(script);
  written.push_back(plots / "accuracy.png");

  // λ1 and T trajectories of every run of each optimizing method.
  for (const auto& m : r.methods) {
    std::vector<std::string> files;
    for (const auto& run : r.runs) {
      if (run.method != m) continue;
      auto f = dir / "runs" / m / fmt::format("seed{}", run.seed) / "trajectory.csv";
      if (fs::exists(f) && run.hyper_steps > 0) files.push_back(fs::relative(f, plots).string());
    }
    if (files.empty()) continue;
    std::string b1 = "plot ", b2 = "plot ";
    for (size_t i = 0; i < files.size(); ++i) {
      b1 += fmt::format("{}'{}' skip 1 using 1:2 with lines title 'run {}'", i ? ", " : "", files[i], i);
      b2 += fmt::format("{}'{}' skip 1 using 1:3 with lines title 'run {}'", i ? ", " : "", files[i], i);
    }
    const std::string name = "trajectory-" + m;
    auto s = write_gnuplot_script(
        plots, name, "",
        fmt::format("set multiplot layout 2,1 title 'Metaparameter trajectories: {}'\n"
                    "set xlabel 'step'\nset ylabel 'lambda1'\nset yrange [0:1]\nset key off\n{}\n"
                    "set ylabel 'T'\nset logscale y\nset yrange [0.1:10]\n{}\nunset logscale y\n"
                    "set yrange [*:*]\nunset multiplot",
                    m, b1, b2));
    run_gnuplot(s);
    written.push_back(plots / (name + ".png"));
  }

  // Fig. 5: the synthetic data (x1, x2 coloured by label), when the experiment wrote it.
  if (fs::exists(dir / "synthetic.dat")) {
    auto s = write_gnuplot_script(
        plots, "synthetic",
        "set title 'Synthetic data: y = [x1*x2 + 0.5 e > 0]'\nset xlabel 'x1'\nset ylabel 'x2'\n"
        "set size ratio -1\nset key outside",
        "plot '../synthetic.dat' using 2:($4==0 && $1==0 ? $3 : 1/0) with points pt 7 ps 0.6 "
        "title 'teacher-train y=0', '' using 2:($4==1 && $1==0 ? $3 : 1/0) with points pt 7 ps 0.6 "
        "title 'teacher-train y=1', '' using 2:($1==1 ? $3 : 1/0) with points pt 6 ps 1.5 lw 2 "
        "title 'student-train', '' using 2:($4==1 && $1==2 ? $3 : 1/0) with points pt 2 ps 0.6 "
        "title 'test y=1'");
    run_gnuplot(s);
    written.push_back(plots / "synthetic.png");
  }
  return written;
}

}  // namespace metadistill
