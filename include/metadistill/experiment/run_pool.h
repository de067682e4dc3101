#pragma once
/// Who executes the runs of an experiment (DESIGN.md 3.9): this process alone, this process and
/// its `--jobs` workers (processes of one machine that claim runs through a lock file in each
/// run's folder), or the ranks of a group (experiment/run_queue.h: runs claimed through rank 0's
/// store, their files delivered to rank 0). A run is finished when its folder holds result.json;
/// its numbers never depend on who executed it (every run seeds itself).
///
/// Every runner of runs (the Hinton experiment, the multi-layer experiment) plans its runs,
/// describes how to execute one, and calls `execute_runs`; then, where it returns true, reads the
/// finished runs back in its table's order.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "metadistill/experiment/config.h"

namespace metadistill {

class RunQueue;

/// One planned run.
struct PoolRun {
  /// Its folder relative to the experiment's folder ("runs/gradient/seed3"): its name in a group.
  std::string key;
  std::filesystem::path dir;
  uint64_t seed = 0;
  /// Its position in the caller's plan.
  size_t index = 0;
};

struct RunPoolOptions {
  /// Processes executing runs at once on this machine, this one included; > 1 needs
  /// `worker_command`; not with `queue`.
  int jobs = 1;
  /// argv of one worker process (one that calls the same runner with `worker` set).
  std::vector<std::string> worker_command;
  /// This process is a worker: it executes what it can claim, then `execute_runs` returns false.
  bool worker = false;
  /// The group's queue; null = no group.
  RunQueue* queue = nullptr;
  /// A rank other than 0 discards what its folder holds for a run it claims (rank 0 and a
  /// process alone discard before, for the whole plan, where they check stored runs).
  bool fresh = false;

  /// Throws `Error` naming the value: jobs < 1, jobs > 1 without a worker command, jobs > 1 in a
  /// group. Runners call it before their teacher is trained.
  void validate() const;
};

struct RunPoolHooks {
  /// Executes a run: writes `dir`/result.json (required).
  std::function<void(const PoolRun&)> execute;
  /// Drops a run's stored files (--fresh on a rank other than 0).
  std::function<void(const PoolRun&)> discard;
  /// Checks a run another rank delivered; throws `Error` when it is not this experiment's (made
  /// with other settings). The pool then removes its result.
  std::function<void(const PoolRun&)> check_delivered;
  /// Called before a run starts and while this process waits for others (progress display).
  std::function<void()> waiting;
  /// A message for the user (a worker that failed, a lost rank).
  std::function<void(const std::string&)> say;
  /// One line about a finished run, printed by a rank other than 0.
  std::function<std::string(const PoolRun&)> summary;
};

/// Executes every run of `plan` without a result, seed by seed (an experiment stopped early has
/// every method at its first seeds). Returns true where the results are to be reported (alone,
/// the parent of `--jobs` workers, rank 0) once every run of `plan` is finished in its folder: a
/// run whose worker died is executed here, one whose rank was lost too. Returns false in a
/// worker and on a rank other than 0 once its part is done.
bool execute_runs(const std::vector<PoolRun>& plan, const RunPoolOptions& options,
                  const RunPoolHooks& hooks);

/// The file that makes the teacher of `config`: its precomputed logits, its TorchScript file or
/// the zoo teacher's file.
std::filesystem::path teacher_source(const Config& config);

/// Runs `prepare` (which loads the teacher, or trains and saves it) so that every rank of a
/// group distills from one teacher: rank 0 prepares first and hands its teacher file to the
/// others, which write it where their config expects it when they lack it (an existing file that
/// differs is refused, naming it) and then prepare. Without a group (`queue` null): `prepare`.
void prepare_teacher_in_group(RunQueue* queue, const Config& config,
                              const std::function<void()>& prepare);

}  // namespace metadistill
