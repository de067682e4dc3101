#include "metadistill/experiment/progress.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include <fmt/format.h>

namespace metadistill {

namespace fs = std::filesystem;

namespace {

double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// The last row's epoch and test accuracy of a trainer's metrics.csv; false when there is none
// yet. The trainer replaces the file atomically, so a read never sees half a file.
bool read_last_epoch(const fs::path& file, int64_t& epoch, double& accuracy) {
  std::ifstream in(file);
  if (!in) return false;
  std::string header, line, last;
  if (!std::getline(in, header)) return false;
  while (std::getline(in, line))
    if (!line.empty()) last = line;
  if (last.empty()) return false;
  auto split = [](const std::string& s) {
    std::vector<std::string> cells;
    std::istringstream ss(s);
    std::string c;
    while (std::getline(ss, c, ',')) cells.push_back(c);
    return cells;
  };
  const auto names = split(header), cells = split(last);
  int epoch_col = -1, acc_col = -1;
  for (size_t i = 0; i < names.size(); ++i) {
    if (names[i] == "epoch") epoch_col = static_cast<int>(i);
    if (names[i] == "test_accuracy") acc_col = static_cast<int>(i);
  }
  if (epoch_col < 0 || acc_col < 0 || static_cast<int>(cells.size()) <= std::max(epoch_col, acc_col))
    return false;
  try {
    epoch = std::stoll(cells[epoch_col]);
    accuracy = std::stod(cells[acc_col]);
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

}  // namespace

std::string format_duration(double s) {
  if (s < 90) return fmt::format("{:.0f}s", s);
  if (s < 5400) return fmt::format("{:.1f}min", s / 60);
  return fmt::format("{:.1f}h", s / 3600);
}

std::string format_progress(const ProgressSnapshot& s) {
  std::string line = fmt::format("[{}/{}]", s.done, s.total);
  if (!s.method.empty()) {
    line += fmt::format(" {} seed {}", s.method, s.seed);
    if (!s.phase.empty()) line += ", " + s.phase;
    if (s.epoch > 0)
      line += s.epochs > 0 ? fmt::format(", epoch {}/{}", s.epoch, s.epochs)
                           : fmt::format(", epoch {}", s.epoch);
    if (s.accuracy >= 0) line += fmt::format(", test {:.4f}", s.accuracy);
  } else if (!s.last.empty()) {
    line += " " + s.last;
  }
  if (s.eta_seconds >= 0) line += ", ETA " + format_duration(s.eta_seconds);
  return line;
}

void EtaEstimator::add(const std::string& method, double seconds) {
  auto& m = by_method_[method];
  m.first += seconds;
  m.second += 1;
  sum_ += seconds;
  count_ += 1;
}

double EtaEstimator::per_run(const std::string& method) const {
  auto it = by_method_.find(method);
  if (it != by_method_.end() && it->second.second > 0)
    return it->second.first / static_cast<double>(it->second.second);
  return count_ > 0 ? sum_ / static_cast<double>(count_) : -1.0;
}

double EtaEstimator::remaining(const std::vector<std::string>& remaining, double elapsed) const {
  if (count_ == 0) return -1.0;
  double total = 0;
  for (size_t i = 0; i < remaining.size(); ++i) {
    const double est = per_run(remaining[i]);
    total += i == 0 ? std::max(0.0, est - elapsed) : est;
  }
  return total;
}

ExperimentProgress::ExperimentProgress(std::vector<std::string> plan, std::ostream& out,
                                       bool interactive)
    : plan_(std::move(plan)), out_(out), interactive_(interactive) {
  state_.total = static_cast<int64_t>(plan_.size());
  if (interactive_) watcher_ = std::thread([this] { poll_metrics(); });
}

ExperimentProgress::~ExperimentProgress() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  if (watcher_.joinable()) watcher_.join();
  if (interactive_) out_ << "\n" << std::flush;
}

ProgressSnapshot ExperimentProgress::snapshot_locked() const {
  ProgressSnapshot s = state_;
  std::vector<std::string> left;
  if (!s.method.empty() && index_ < plan_.size()) {
    left.assign(plan_.begin() + static_cast<std::ptrdiff_t>(index_), plan_.end());
    s.eta_seconds = eta_.remaining(left, now_seconds() - run_start_);
  } else {
    const size_t next = static_cast<size_t>(std::min<int64_t>(s.done, state_.total));
    left.assign(plan_.begin() + static_cast<std::ptrdiff_t>(next), plan_.end());
    s.eta_seconds = eta_.remaining(left, 0.0);
  }
  return s;
}

ProgressSnapshot ExperimentProgress::snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return snapshot_locked();
}

void ExperimentProgress::redraw_locked() {
  if (!interactive_) return;
  out_ << "\r\033[K" << format_progress(snapshot_locked()) << std::flush;
}

void ExperimentProgress::start_run(size_t index, uint64_t seed) {
  std::lock_guard<std::mutex> lock(mutex_);
  index_ = index;
  state_.method = index < plan_.size() ? plan_[index] : "?";
  state_.seed = seed;
  state_.phase.clear();
  state_.epoch = state_.epochs = 0;
  state_.accuracy = -1;
  watched_.clear();
  run_start_ = now_seconds();
  if (interactive_) {
    redraw_locked();
  } else {
    const auto s = snapshot_locked();
    out_ << fmt::format("[{}/{}] {} seed {}: started{}\n", s.done, s.total, s.method, s.seed,
                        s.eta_seconds >= 0 ? ", ETA " + format_duration(s.eta_seconds) : "")
         << std::flush;
  }
}

void ExperimentProgress::start_training(const std::string& phase, const fs::path& dir,
                                        int64_t epochs) {
  std::lock_guard<std::mutex> lock(mutex_);
  state_.phase = phase;
  state_.epoch = 0;
  state_.epochs = epochs;
  state_.accuracy = -1;
  watched_ = dir / "metrics.csv";
  redraw_locked();
}

void ExperimentProgress::finish_run(double seconds, const std::string& summary) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!state_.method.empty()) eta_.add(state_.method, seconds);
  state_.done += 1;
  state_.method.clear();
  state_.phase.clear();
  state_.last = summary;
  watched_.clear();
  if (interactive_) redraw_locked();
  else out_ << format_progress(snapshot_locked()) << "\n" << std::flush;
}

void ExperimentProgress::finished_earlier(size_t index, uint64_t seed, double seconds,
                                          const std::string& summary, const std::string& origin) {
  std::lock_guard<std::mutex> lock(mutex_);
  index_ = index;
  state_.method = index < plan_.size() ? plan_[index] : "?";
  state_.seed = seed;
  eta_.add(state_.method, seconds);
  state_.done += 1;
  state_.method.clear();
  state_.phase.clear();
  state_.last = summary + " (" + origin + ")";
  watched_.clear();
  if (interactive_) redraw_locked();
  else out_ << format_progress(snapshot_locked()) << "\n" << std::flush;
}

void ExperimentProgress::message(const std::string& line) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (interactive_) out_ << "\r\033[K";
  out_ << line << "\n";
  redraw_locked();
  out_ << std::flush;
}

void ExperimentProgress::poll_metrics() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_) {
    wake_.wait_for(lock, std::chrono::milliseconds(500));
    if (stop_) break;
    if (!state_.method.empty() && !watched_.empty()) {
      const fs::path file = watched_;
      lock.unlock();  // file reading without the lock
      int64_t epoch = 0;
      double accuracy = -1;
      const bool ok = read_last_epoch(file, epoch, accuracy);
      lock.lock();
      if (ok && watched_ == file) {
        state_.epoch = epoch;
        state_.accuracy = accuracy;
      }
    }
    redraw_locked();
  }
}

}  // namespace metadistill
