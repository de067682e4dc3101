#pragma once
/// Experiments across machines (DESIGN.md 3.9): the ranks of one group (torchrun's environment,
/// or `metadistill launch`) share out the runs of an experiment through rank 0's rendezvous store
/// (train/rendezvous.h), without a shared file system.
///
/// - Rank 0 decides what is to be done (the runs without a result in its folder) and `share`s it.
/// - Every rank `claim`s runs in the plan's order; the store's compare-and-set gives each run to
///   exactly one rank. A rank runs what it claims in its own folder and `deliver`s the run's files
///   (result, metrics, trajectory, student, checkpoint) to the store.
/// - Rank 0 `collect`s every run it did not run itself into its folder. A rank whose heartbeat
///   stops for the group's timeout (METADISTILL_DIST_TIMEOUT, default 60 s) is lost: rank 0
///   takes its runs over and runs them itself. A run that failed on its rank fails the experiment
///   on rank 0 with that rank's message.
/// - Every rank ends with `finish`; rank 0 (which hosts the store) returns once every other rank
///   has finished or is lost, so no rank loses the store while it still delivers.
#include <atomic>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "metadistill/train/rendezvous.h"

namespace metadistill {

class RunQueue {
 public:
  /// Joins the group of `options` (see `meet`).
  static std::unique_ptr<RunQueue> join(const DataParallelOptions& options);
  /// The group of the environment, or null when WORLD_SIZE is unset or 1.
  static std::unique_ptr<RunQueue> from_environment();
  /// Stops the heartbeat. A rank destroyed before `finish` looks lost to rank 0 after the timeout.
  ~RunQueue();
  RunQueue(const RunQueue&) = delete;
  RunQueue& operator=(const RunQueue&) = delete;

  const DataParallelOptions& options() const { return options_; }
  int rank() const { return options_.rank; }
  int world_size() const { return options_.world_size; }
  bool root() const { return options_.rank == 0; }

  /// Rank 0 publishes `value` under `name` and returns it; every other rank waits for it (for as
  /// long as rank 0 answers: a teacher may take hours to train) and returns rank 0's value.
  std::string share(const std::string& name, const std::string& value);
  /// True for exactly one rank of the group per `key`: the first to ask (and again whenever it
  /// asks), or rank 0 once it has taken the run over.
  bool claim(const std::string& key);
  /// Sends every file under `dir` (recursively; lock files excepted) as the result of run `key`.
  void deliver(const std::string& key, const std::filesystem::path& dir);
  /// Reports that run `key` failed here with `message` (rank 0 fails the experiment with it).
  void report_failure(const std::string& key, const std::string& message);

  /// Rank 0: gives run `key` to `rank` (instead of the first to claim it), as a search gives a
  /// trial to the rank it sends it to.
  void assign(const std::string& key, int rank);

  enum class Collected { kDelivered, kTakenOver };
  /// Rank 0: waits until run `key` is delivered and writes its files into `dir` (atomically,
  /// file by file; result.json last) → kDelivered; or, when the rank that claimed it is lost (or
  /// nobody claimed it), claims it for rank 0 → kTakenOver, and the caller runs it. Throws
  /// `Error` with the rank's message when the run failed there. `waiting` is called about every
  /// second while it waits.
  Collected collect(const std::string& key, const std::filesystem::path& dir,
                    const std::function<void()>& waiting = {});
  /// One look of `collect`: nothing while the run is still running on a live rank.
  std::optional<Collected> try_collect(const std::string& key, const std::filesystem::path& dir);
  /// Ends this rank's part (see the header comment).
  void finish();

 private:
  explicit RunQueue(const DataParallelOptions& options);
  bool lost(int rank);
  void beat();

  DataParallelOptions options_;
  Rendezvous rendezvous_;
  std::atomic<bool> stop_{false};
  std::thread heartbeat_;
  // Rank 0's view of every rank's heartbeat: last counter seen and when it changed.
  std::vector<int64_t> beats_;
  std::vector<std::chrono::steady_clock::time_point> beat_seen_;
};

}  // namespace metadistill
