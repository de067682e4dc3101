#include "metadistill/experiment/run_pool.h"

#include <algorithm>
#include <iostream>
#include <set>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "metadistill/experiment/run_queue.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "metadistill/util/process.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

bool finished(const PoolRun& run) { return fs::exists(run.dir / "result.json"); }

void call(const std::function<void()>& f) {
  if (f) f();
}

// A group: every rank claims runs of rank 0's list through the store; rank 0 collects the others'.
bool execute_in_group(const std::vector<PoolRun>& work, const std::vector<PoolRun>& plan,
                      const RunPoolOptions& options, const RunPoolHooks& hooks) {
  RunQueue& queue = *options.queue;
  nlohmann::json list = nlohmann::json::array();
  if (queue.root())
    for (const auto& run : work)
      if (!finished(run)) list.push_back(run.key);
  std::set<std::string> pending;
  for (const auto& k : nlohmann::json::parse(queue.share("plan", list.dump())))
    pending.insert(k.get<std::string>());
  for (const auto& run : work) {
    if (pending.count(run.key) == 0 || !queue.claim(run.key)) continue;
    fs::create_directories(run.dir);
    if (queue.root()) {
      call(hooks.waiting);
      hooks.execute(run);
      continue;
    }
    // Rank 0 has no result for it: whatever this rank's folder holds is stale.
    if (options.fresh && hooks.discard) hooks.discard(run);
    std::error_code ignored;
    fs::remove(run.dir / "result.json", ignored);
    try {
      hooks.execute(run);
    } catch (const std::exception& e) {
      queue.report_failure(run.key, e.what());
      throw;
    }
    queue.deliver(run.key, run.dir);
    if (hooks.summary) std::cerr << fmt::format("rank {}: {}\n", queue.rank(), hooks.summary(run));
  }
  if (!queue.root()) {
    queue.finish();
    return false;
  }
  for (const auto& run : plan) {
    if (finished(run) || pending.count(run.key) == 0) continue;
    if (queue.collect(run.key, run.dir, hooks.waiting) == RunQueue::Collected::kTakenOver) {
      if (hooks.say) hooks.say(fmt::format("{}: the rank that ran it is lost; running it here", run.key));
      call(hooks.waiting);
      hooks.execute(run);
      continue;
    }
    // A rank started with another config or other flags made another run: refused, not mixed.
    if (!hooks.check_delivered) continue;
    try {
      hooks.check_delivered(run);
    } catch (const Error& e) {
      std::error_code ignored;
      fs::remove(run.dir / "result.json", ignored);
      fail("{}\nStart every rank with the same config and flags.", e.what());
    }
  }
  queue.finish();
  return true;
}

}  // namespace

void RunPoolOptions::validate() const {
  check(jobs >= 1, "jobs = {}: expected >= 1", jobs);
  check(jobs == 1 || worker || !worker_command.empty(), "jobs = {} needs a worker command", jobs);
  check(queue == nullptr || jobs == 1,
        "--jobs {} as a rank of a group: a rank runs one run at a time; start more ranks instead",
        jobs);
}

bool execute_runs(const std::vector<PoolRun>& plan, const RunPoolOptions& options,
                  const RunPoolHooks& hooks) {
  check(static_cast<bool>(hooks.execute), "execute_runs: no execute hook");
  options.validate();
  std::vector<PoolRun> work = plan;
  std::stable_sort(work.begin(), work.end(),
                   [](const PoolRun& a, const PoolRun& b) { return a.seed < b.seed; });
  if (options.queue != nullptr) return execute_in_group(work, plan, options, hooks);

  std::vector<ChildProcess> workers;
  if (!options.worker && options.jobs > 1) {
    const size_t pending = static_cast<size_t>(
        std::count_if(plan.begin(), plan.end(), [](const PoolRun& r) { return !finished(r); }));
    const size_t extra = std::min<size_t>(static_cast<size_t>(options.jobs - 1),
                                          pending > 0 ? pending - 1 : 0);
    for (size_t k = 0; k < extra; ++k) workers.emplace_back(options.worker_command);
    if (extra > 0 && hooks.say) hooks.say(fmt::format("{} worker processes started", extra));
  }
  // Work: every run that is neither finished nor claimed by another process.
  for (const auto& run : work) {
    if (finished(run)) continue;
    fs::create_directories(run.dir);
    auto lock = FileLock::try_acquire(run.dir / ".lock");
    if (!lock) continue;       // another process runs it
    if (finished(run)) continue;  // finished between our look and our claim
    call(hooks.waiting);
    hooks.execute(run);
  }
  if (options.worker) return false;
  // Collect: wait for the runs other processes hold; a run whose process died is done here.
  for (const auto& run : plan) {
    if (finished(run)) continue;
    FileLock lock = FileLock::acquire(run.dir / ".lock");
    call(hooks.waiting);
    if (!finished(run)) hooks.execute(run);
  }
  for (auto& w : workers)
    if (const int code = w.wait(); code != 0 && hooks.say)
      hooks.say(fmt::format("warning: worker process {} ended with code {} (its runs were redone "
                            "here)", w.pid(), code));
  return true;
}

fs::path teacher_source(const Config& config) {
  if (!config.teacher_logits.empty()) return config.teacher_logits;
  if (!config.teacher_torchscript.empty()) return config.teacher_torchscript;
  return config.teacher_file;
}

void prepare_teacher_in_group(RunQueue* queue, const Config& config,
                              const std::function<void()>& prepare) {
  if (queue == nullptr) return prepare();
  if (queue->root()) {
    prepare();
    queue->share("teacher", read_file(teacher_source(config)));
    return;
  }
  const std::string contents = queue->share("teacher", "");
  const fs::path path = teacher_source(config);
  if (!fs::exists(path)) {
    if (path.has_parent_path()) fs::create_directories(path.parent_path());
    write_file_atomic(path, contents);
  } else {
    check(hash_string(read_file(path)) == hash_string(contents),
          "{}: this rank's teacher differs from rank 0's; remove it (or give this rank the same "
          "file) so that every rank distills from one teacher", path.string());
  }
  prepare();
}

}  // namespace metadistill
