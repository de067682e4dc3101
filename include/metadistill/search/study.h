#pragma once
/// A persistent, resumable search study in one SQLite file (DESIGN.md 3.3, the search baselines).
///
/// The file holds the study's settings (search space, direction, sampler, what the objective
/// computes), every trial's parameters, state (waiting, running, complete, pruned, failed),
/// objective value, per-step intermediate values and timings, and free-form attributes.
///
/// Durability and sharing: WAL journal, a busy timeout, and every change in a `BEGIN IMMEDIATE`
/// transaction, so that several processes on one machine can work on the same study: trial
/// numbers are claimed under the write lock, never twice. A process killed mid-trial leaves its
/// trial `running`; the next `ask` (from any process on the same machine) notices that the
/// worker is gone — its pid has exited or now belongs to another process — marks the trial
/// `failed` and queues a retry with the same parameters (up to `max_retries` per trial).
/// Running trials of workers on other machines are never declared dead.
///
/// The format is marked by a `metadistill_study` table (format name and version) and SQLite's
/// application_id; any other file is refused with an error naming it.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/search/sampler.h"
#include "metadistill/search/search_space.h"

namespace metadistill {

/// What a study is, fixed at creation and checked when it is resumed.
struct StudySettings {
  std::string name = "study";
  Direction direction = Direction::kMinimize;
  SearchSpace space;
  /// The sampler's `to_json()`: a resumed study continues with the same sampler.
  nlohmann::json sampler = nlohmann::json::object();
  /// What a trial computes (objective name, the training config, ...): trials of a resumed
  /// study must be comparable with the stored ones.
  nlohmann::json objective = nlohmann::json::object();

  StudySettings& with_name(std::string v) { name = std::move(v); return *this; }
  StudySettings& with_direction(Direction v) { direction = v; return *this; }
  StudySettings& with_space(SearchSpace v) { space = std::move(v); return *this; }
  StudySettings& with_sampler(nlohmann::json v) { sampler = std::move(v); return *this; }
  StudySettings& with_objective(nlohmann::json v) { objective = std::move(v); return *this; }
};

/// Run-time options of a `Study` connection.
struct StudyOptions {
  /// How long to wait for another process's write lock before giving up (ms).
  int busy_timeout_ms = 60000;
  /// How many times a crashed trial is retried with the same parameters.
  int64_t max_retries = 2;

  StudyOptions& with_busy_timeout_ms(int v) { busy_timeout_ms = v; return *this; }
  StudyOptions& with_max_retries(int64_t v) { max_retries = v; return *this; }
};

/// Trial counts by state.
struct StudyCounts {
  int64_t waiting = 0, running = 0, complete = 0, pruned = 0, failed = 0;
  int64_t finished() const { return complete + pruned; }
  int64_t total() const { return waiting + running + complete + pruned + failed; }
};

/// A study stored in SQLite; one connection, used from one thread.
class Study {
 public:
  /// File format version written by this code.
  static constexpr int kFormatVersion = 1;

  /// Opens the study in `path`, creating the file (and its folder) when missing, or resumes the
  /// study stored there. `path` ":memory:" keeps it in memory. Throws `Error` naming the file
  /// when it cannot be read or written, is not an SQLite database, is an SQLite database but not
  /// a metadistill study, has a newer format, or holds a study whose settings differ from
  /// `settings` (the message names the first differing setting).
  static Study open(const std::filesystem::path& path, const StudySettings& settings,
                    StudyOptions options = {});
  /// Opens an existing study whatever its settings (export, inspection); the same file checks.
  static Study load(const std::filesystem::path& path, StudyOptions options = {});

  Study(Study&&) noexcept;
  Study& operator=(Study&&) noexcept;
  ~Study();

  const std::filesystem::path& path() const;
  const StudySettings& settings() const;
  const SearchSpace& space() const { return settings().space; }
  Direction direction() const { return settings().direction; }

  /// Claims a trial for this process (one write transaction): first recovers crashed trials
  /// (see the header comment), then takes the oldest waiting retry, or else — while finished +
  /// running + waiting trials number fewer than `n_trials` — creates trial max+1 with the
  /// parameters `sampler` proposes from all stored trials. Returns the trial, `running`, or
  /// nullopt when the study needs no more trials from this process.
  std::optional<FrozenTrial> ask(Sampler& sampler, int64_t n_trials);
  /// Records the intermediate value of running trial `number` at `step` (NaN allowed).
  void report(int64_t number, int64_t step, double value);
  /// Ends running trial `number`: complete (with a finite `value`), pruned or failed (`message`
  /// says why). Throws `Error` when the trial is not running.
  void tell(int64_t number, TrialState state, std::optional<double> value = std::nullopt,
            const std::string& message = "");

  /// Every trial, by number.
  std::vector<FrozenTrial> trials() const;
  /// Trial `number`; throws `Error` when there is none.
  FrozenTrial trial(int64_t number) const;
  /// The complete trial with the best value (the lowest number among equals), if any.
  std::optional<FrozenTrial> best_trial() const;
  StudyCounts counts() const;

  /// Marks the running trials of dead workers failed and queues their retries; returns how
  /// many were recovered. `ask` does this itself.
  int64_t recover_crashed();

  /// A free-form attribute (e.g. the final retrain's result), or nullopt.
  std::optional<nlohmann::json> attribute(const std::string& key) const;
  void set_attribute(const std::string& key, const nlohmann::json& value);

  /// This process as a worker: "host:pid:start-ticks" (start time from /proc, so that a reused
  /// pid is told apart).
  static std::string current_worker();
  /// False when `worker` ran on this host and its process is gone (exited, zombie or pid
  /// reused); true otherwise, including every worker of another host.
  static bool worker_alive(const std::string& worker);

  /// The connection's internals (defined in study.cpp).
  struct Impl;

 private:
  explicit Study(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace metadistill
