#include "metadistill/experiment/trajectory_summary.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <sstream>

#include <fmt/format.h>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

struct Row {
  double lambda1 = 0, temperature = 0;
  std::string phase;
};

std::vector<std::string> split_csv_line(const std::string& line) {
  std::vector<std::string> out;
  std::string cell;
  std::istringstream in(line);
  while (std::getline(in, cell, ',')) out.push_back(cell);
  if (!line.empty() && line.back() == ',') out.emplace_back();
  return out;
}

std::vector<Row> read_trajectory(const fs::path& path) {
  std::istringstream in(read_file(path));
  std::string line;
  check(static_cast<bool>(std::getline(in, line)), "{}: empty trajectory file", path.string());
  const auto header = split_csv_line(line);
  auto column = [&](const std::string& name) {
    auto it = std::find(header.begin(), header.end(), name);
    check(it != header.end(), "{}: no column '{}' in the header", path.string(), name);
    return static_cast<size_t>(it - header.begin());
  };
  const size_t c_l1 = column("lambda1"), c_t = column("temperature"), c_phase = column("phase");
  std::vector<Row> rows;
  int64_t number = 1;
  while (std::getline(in, line)) {
    ++number;
    if (line.empty()) continue;
    const auto cells = split_csv_line(line);
    check(cells.size() == header.size(), "{}: line {} has {} fields, the header {}",
          path.string(), number, cells.size(), header.size());
    Row r;
    try {
      r.lambda1 = std::stod(cells[c_l1]);
      r.temperature = std::stod(cells[c_t]);
    } catch (const std::exception&) {
      fail("{}: line {}: lambda1 '{}' or temperature '{}' is not a number", path.string(),
           number, cells[c_l1], cells[c_t]);
    }
    r.phase = cells[c_phase];
    rows.push_back(std::move(r));
  }
  return rows;
}

bool near(double a, double b) { return std::abs(a - b) <= 1e-6 * std::max(1.0, std::abs(b)); }

}  // namespace

std::vector<TrajectorySummary> summarize_trajectories(const fs::path& dir) {
  std::vector<TrajectorySummary> out;
  const fs::path runs = dir / "runs";
  if (!fs::is_directory(runs)) return out;
  std::vector<fs::path> methods;
  for (const auto& e : fs::directory_iterator(runs))
    if (e.is_directory()) methods.push_back(e.path());
  std::sort(methods.begin(), methods.end());
  for (const auto& m : methods) {
    std::vector<fs::path> files;
    for (const auto& e : fs::directory_iterator(m))
      if (e.is_directory() && fs::exists(e.path() / "trajectory.csv"))
        files.push_back(e.path() / "trajectory.csv");
    if (files.empty()) continue;
    std::sort(files.begin(), files.end());
    TrajectorySummary s;
    s.method = m.filename().string();
    int64_t steps = 0, l1_bound = 0, t_bound = 0;
    std::map<std::string, int64_t> phases;
    s.lambda1_end_min = s.temperature_end_min = INFINITY;
    s.lambda1_end_max = s.temperature_end_max = -INFINITY;
    for (const auto& f : files) {
      const auto rows = read_trajectory(f);
      if (rows.empty()) continue;
      ++s.runs;
      s.lambda1_start += rows.front().lambda1;
      s.temperature_start += rows.front().temperature;
      s.lambda1_end += rows.back().lambda1;
      s.temperature_end += rows.back().temperature;
      s.lambda1_end_min = std::min(s.lambda1_end_min, rows.back().lambda1);
      s.lambda1_end_max = std::max(s.lambda1_end_max, rows.back().lambda1);
      s.temperature_end_min = std::min(s.temperature_end_min, rows.back().temperature);
      s.temperature_end_max = std::max(s.temperature_end_max, rows.back().temperature);
      for (const auto& r : rows) {
        ++steps;
        l1_bound += near(r.lambda1, 0.0) || near(r.lambda1, 1.0);
        t_bound += near(r.temperature, 0.1) || near(r.temperature, 10.0);
        ++phases[r.phase];
      }
    }
    if (s.runs == 0) continue;
    const double n = static_cast<double>(s.runs);
    s.lambda1_start /= n;
    s.temperature_start /= n;
    s.lambda1_end /= n;
    s.temperature_end /= n;
    s.lambda1_at_bound = static_cast<double>(l1_bound) / static_cast<double>(steps);
    s.temperature_at_bound = static_cast<double>(t_bound) / static_cast<double>(steps);
    for (const auto& [phase, count] : phases)
      s.phases.emplace_back(phase, static_cast<double>(count) / static_cast<double>(steps));
    out.push_back(std::move(s));
  }
  return out;
}

std::string trajectory_table(const std::vector<TrajectorySummary>& rows) {
  std::string md =
      "| method | runs | λ1 start → end (end range) | T start → end (end range) | steps with λ1 at "
      "0 or 1 | steps with T at 0.1 or 10 | phases |\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : rows) {
    std::vector<std::string> phases;
    for (const auto& [p, share] : r.phases) phases.push_back(fmt::format("{} {:.0f}%", p, 100 * share));
    md += fmt::format("| {} | {} | {:.3f} → {:.3f} ({:.3f}–{:.3f}) | {:.3f} → {:.3f} ({:.3f}–{:.3f}) "
                      "| {:.1f}% | {:.1f}% | {} |\n",
                      r.method, r.runs, r.lambda1_start, r.lambda1_end, r.lambda1_end_min,
                      r.lambda1_end_max, r.temperature_start, r.temperature_end,
                      r.temperature_end_min, r.temperature_end_max, 100 * r.lambda1_at_bound,
                      100 * r.temperature_at_bound, fmt::join(phases, ", "));
  }
  md += "\nStart and end: means over runs of the first and last recorded values; bounds: the "
        "domain λ1 ∈ [0, 1], T ∈ [0.1, 10].\n";
  return md;
}

}  // namespace metadistill
