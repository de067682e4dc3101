#include "metadistill/search/study_history.h"

#include <algorithm>
#include <cstdlib>
#include <sstream>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

std::string num(double v) { return fmt::format("{:.17g}", v); }
std::string num(const std::optional<double>& v) { return v ? num(*v) : std::string(); }

// RFC 4180 quoting when a cell holds a separator, a quote or a line break.
std::string csv_cell(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string out = "\"";
  for (char c : s) {
    if (c == '"') out += '"';
    out += c;
  }
  return out + "\"";
}

nlohmann::json opt_json(const std::optional<double>& v) {
  return v ? nlohmann::json(*v) : nlohmann::json();
}

// Single-quoted gnuplot string: backslashes are literal, a quote is written twice.
std::string gp_string(const std::string& s) {
  std::string out = "'";
  for (char c : s) {
    if (c == '\'') out += '\'';
    out += c;
  }
  return out + "'";
}

bool have_gnuplot() { return std::system("command -v gnuplot >/dev/null 2>&1") == 0; }

}  // namespace

std::vector<HistoryRow> study_history(const std::vector<FrozenTrial>& trials, Direction direction) {
  std::vector<HistoryRow> rows;
  std::optional<double> best;
  for (const auto& t : trials) {
    HistoryRow r;
    r.number = t.number;
    r.state = to_string(t.state);
    r.value = t.value;
    if (t.state == TrialState::kComplete && t.value &&
        (!best || is_better(*t.value, *best, direction)))
      best = t.value;
    r.best_so_far = best;
    r.params = t.params;
    r.retry_of = t.retry_of;
    r.last_step = t.last_step();
    if (!t.intermediate.empty()) r.last_intermediate = t.intermediate.rbegin()->second;
    r.started = t.started;
    r.finished = t.finished;
    r.seconds = t.finished > 0 && t.started > 0 ? t.finished - t.started : 0.0;
    r.worker = t.worker;
    r.message = t.message;
    rows.push_back(std::move(r));
  }
  return rows;
}

std::string history_csv(const SearchSpace& space, const std::vector<HistoryRow>& rows) {
  std::ostringstream out;
  out << "number,state,value,best_so_far";
  for (const auto& p : space.params()) out << "," << csv_cell(p.name);
  out << ",retry_of,last_step,last_intermediate,started,finished,seconds,worker,message\n";
  for (const auto& r : rows) {
    out << r.number << "," << r.state << "," << num(r.value) << "," << num(r.best_so_far);
    for (size_t p = 0; p < space.size(); ++p)
      out << "," << (p < r.params.size() ? num(r.params[p]) : std::string());
    out << "," << (r.retry_of >= 0 ? std::to_string(r.retry_of) : std::string()) << ","
        << (r.last_step >= 0 ? std::to_string(r.last_step) : std::string()) << ","
        << num(r.last_intermediate) << "," << fmt::format("{:.3f}", r.started) << ","
        << fmt::format("{:.3f}", r.finished) << "," << fmt::format("{:.3f}", r.seconds) << ","
        << csv_cell(r.worker) << "," << csv_cell(r.message) << "\n";
  }
  return out.str();
}

nlohmann::json history_json(const StudySettings& settings, const std::vector<HistoryRow>& rows) {
  nlohmann::json trials = nlohmann::json::array();
  for (const auto& r : rows)
    trials.push_back(
        {{"number", r.number},
         {"state", r.state},
         {"value", opt_json(r.value)},
         {"best_so_far", opt_json(r.best_so_far)},
         {"params", settings.space.values_to_json(r.params)},
         {"retry_of", r.retry_of >= 0 ? nlohmann::json(r.retry_of) : nlohmann::json()},
         {"last_step", r.last_step >= 0 ? nlohmann::json(r.last_step) : nlohmann::json()},
         {"last_intermediate", opt_json(r.last_intermediate)},
         {"started", r.started},
         {"finished", r.finished},
         {"seconds", r.seconds},
         {"worker", r.worker},
         {"message", r.message}});
  return {{"study",
           {{"name", settings.name},
            {"direction", to_string(settings.direction)},
            {"space", settings.space.to_json()},
            {"sampler", settings.sampler},
            {"objective", settings.objective}}},
          {"trials", trials}};
}

std::string best_so_far_script(const fs::path& csv, const fs::path& png, const fs::path& svg,
                               const std::string& title, const std::string& objective_label,
                               int64_t n_trials) {
  // Columns of history.csv: 1 number, 3 value, 4 best_so_far; empty cells are missing points.
  std::ostringstream gp;
  gp << "# Best value so far against trial, from " << csv.filename().string() << "\n"
     << "set datafile separator ','\n"
     << "set key autotitle columnhead\n"
     << "set title " << gp_string(title) << " noenhanced\n"
     << "set xlabel 'trial'\n"
     << "set xtics " << std::max<int64_t>(1, (n_trials + 9) / 10) << "\n"
     << "set offsets 0.5, 0.5, graph 0.05, graph 0.05\n"
     << "set ylabel " << gp_string(objective_label) << " noenhanced\n"
     << "set grid\n"
     << "set key outside bottom center horizontal\n"
     << "set terminal pngcairo size 800,500\n"
     << "set output " << gp_string(png.string()) << "\n"
     << "plot " << gp_string(csv.string())
     << " using 1:4 with steps lw 2 title 'best so far', '' using 1:3 with points pt 7 ps 0.6 "
        "title 'trial value'\n"
     << "set terminal svg size 800,500 dynamic\n"
     << "set output " << gp_string(svg.string()) << "\n"
     << "replot\n"
     << "unset output\n";
  return gp.str();
}

HistoryFiles export_history(const Study& study, const fs::path& dir) {
  HistoryFiles f;
  f.csv = dir / "history.csv";
  f.json = dir / "history.json";
  f.script = dir / "best_so_far.gp";
  f.png = dir / "best_so_far.png";
  f.svg = dir / "best_so_far.svg";
  const auto rows = study_history(study.trials(), study.direction());
  write_file_atomic(f.csv, history_csv(study.space(), rows));
  write_file_atomic(f.json, history_json(study.settings(), rows).dump(2));
  const std::string label = study.settings().objective.value("name", std::string("objective")) +
                            " (" + to_string(study.direction()) + ")";
  write_file_atomic(
      f.script, best_so_far_script(fs::absolute(f.csv), fs::absolute(f.png), fs::absolute(f.svg),
                                   "study " + study.settings().name, label,
                                   static_cast<int64_t>(rows.size())));
  bool any_complete = false;
  for (const auto& r : rows) any_complete = any_complete || r.value.has_value();
  if (!any_complete) {
    f.plot_warning = "no complete trial yet: nothing to plot";
  } else if (!have_gnuplot()) {
    f.plot_warning = fmt::format(
        "gnuplot not found (Debian package gnuplot-nox): plots skipped; "
        "run `gnuplot {}` once it is installed",
        f.script.string());
  } else {
    const std::string cmd = fmt::format("gnuplot '{}' 2>'{}'", fs::absolute(f.script).string(),
                                        fs::absolute(dir / "best_so_far.log").string());
    if (std::system(cmd.c_str()) != 0)
      f.plot_warning = fmt::format("gnuplot failed on {}; see {}", f.script.string(),
                                   (dir / "best_so_far.log").string());
    else
      fs::remove(dir / "best_so_far.log");
  }
  return f;
}

}  // namespace metadistill
