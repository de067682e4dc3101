#pragma once
/// Progress of an experiment: runs done/total, the current method, seed and epoch, the current
/// test accuracy and an ETA from the finished runs' seconds. On a terminal one status line is
/// redrawn in place (a watcher thread reads the current training's metrics.csv twice a second);
/// elsewhere (a log file, a pipe) plain lines are written when a run starts and ends.
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <mutex>
#include <ostream>
#include <string>
#include <thread>
#include <vector>

namespace metadistill {

/// What one progress line shows.
struct ProgressSnapshot {
  /// Runs finished (computed or read back) and all runs of the experiment.
  int64_t done = 0, total = 0;
  /// The run in progress; empty method = none.
  std::string method;
  uint64_t seed = 0;
  /// Part of the run ("trial 3", "retrain"); empty for single-training methods.
  std::string phase;
  /// Last evaluated epoch and the epochs of the training; 0 = unknown.
  int64_t epoch = 0, epochs = 0;
  /// Test accuracy after `epoch`; < 0 = unknown.
  double accuracy = -1;
  /// Estimated seconds until the experiment ends; < 0 = unknown.
  double eta_seconds = -1;
  /// Between runs: the result of the run that ended last.
  std::string last;
};

/// "45s", "12.5min", "2.3h".
std::string format_duration(double seconds);

/// The status line: "[3/20] gradient seed 2, trial 1, epoch 4/5, test 0.8712, ETA 3.5min"
/// (unknown parts are left out); between runs "[3/20] <last>, ETA 3.5min".
std::string format_progress(const ProgressSnapshot& s);

/// The ETA arithmetic: seconds of the finished runs by method; an unfinished run of method m is
/// estimated by the mean of m's finished runs, or by the mean of all finished runs when m has
/// none yet (methods differ in cost: a search is many trainings).
class EtaEstimator {
 public:
  void add(const std::string& method, double seconds);
  /// Estimated seconds of one run of `method`; < 0 when no run has finished.
  double per_run(const std::string& method) const;
  /// Seconds left for `remaining` runs (the current one first, `elapsed` seconds into it, never
  /// less than 0 for it); < 0 when no run has finished yet.
  double remaining(const std::vector<std::string>& remaining, double elapsed) const;

 private:
  std::map<std::string, std::pair<double, int64_t>> by_method_;  // (sum, count)
  double sum_ = 0;
  int64_t count_ = 0;
};

/// The display: see the header comment. Thread-safe; one instance per experiment.
class ExperimentProgress {
 public:
  /// `plan`: the method of every run in the order they run. `interactive`: redraw one line
  /// (a terminal) instead of writing log lines.
  ExperimentProgress(std::vector<std::string> plan, std::ostream& out, bool interactive);
  ~ExperimentProgress();
  ExperimentProgress(const ExperimentProgress&) = delete;
  ExperimentProgress& operator=(const ExperimentProgress&) = delete;

  /// Run `index` of the plan (method, seed) starts.
  void start_run(size_t index, uint64_t seed);
  /// A training of the current run starts: its phase label, its output folder (whose
  /// metrics.csv is watched) and its epochs.
  void start_training(const std::string& phase, const std::filesystem::path& dir, int64_t epochs);
  /// The current run ended after `seconds` (its recorded run time); `summary` is its result.
  void finish_run(double seconds, const std::string& summary);
  /// Run `index` of the plan was finished elsewhere: by an earlier command (`origin` "stored",
  /// its result read back at the start) or, during this one, by another process (a `--jobs`
  /// worker, another rank). The line ends with " (origin)".
  void finished_earlier(size_t index, uint64_t seed, double seconds, const std::string& summary,
                        const std::string& origin = "stored");
  /// A message line (warnings); on a terminal the status line is cleared first and redrawn.
  void message(const std::string& line);
  /// The current snapshot (ETA included).
  ProgressSnapshot snapshot() const;

 private:
  void poll_metrics();
  void redraw_locked();
  ProgressSnapshot snapshot_locked() const;

  std::vector<std::string> plan_;
  std::ostream& out_;
  bool interactive_;
  mutable std::mutex mutex_;
  std::condition_variable wake_;
  bool stop_ = false;
  ProgressSnapshot state_;
  size_t index_ = 0;
  std::filesystem::path watched_;
  double run_start_ = 0;  // steady-clock seconds
  EtaEstimator eta_;
  std::thread watcher_;
};

}  // namespace metadistill
