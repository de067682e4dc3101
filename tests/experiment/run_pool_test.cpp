// The run pool (experiment/run_pool.h) with `--jobs N` and as ranks: runs, sweeps and searches executed
// by several processes give what a serial run gives.
#include <gtest/gtest.h>

#include <set>

#include "metadistill/experiment/experiment.h"
#include "metadistill/search/study.h"
#include "metadistill/util/files.h"
#include "cli_runner.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::describe;
using metadistill::testing::run_cli;
using metadistill::testing::TempDir;

namespace {

const char* kJobsConfig = R"(preset: tiny
runs: 3
threads: 1
methods: [none, gradient, proposed]
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: logreg
  train: {epochs: 3000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 300, batch_size: 0, lr: 1.0, lr_step: 0, eval_every: 20, checkpoint_every: 10}
method:
  settings: {val_temperature: 0.1, gamma: 0.1}
)";

}  // namespace

// Same seeds, same thread count: every run's numbers are those of the serial experiment, whichever
// process ran it; and a second `--jobs` call on the finished folder trains nothing.
TEST(ExperimentJobs, IntegrationTwoJobsGiveTheSerialResults) {
  TempDir dir("jobs");
  write_file_atomic(dir / "c.yaml", kJobsConfig);
  const std::string cfg = (dir / "c.yaml").string();
  const std::vector<std::string> serial_args = {"experiment", cfg, "--out", (dir / "serial").string()};
  const std::vector<std::string> jobs_args = {"experiment", cfg, "--jobs", "2", "--out",
                                              (dir / "jobs").string()};
  const auto s1 = run_cli(serial_args);
  ASSERT_EQ(s1.exit_code, 0) << describe(serial_args, s1);
  const auto j1 = run_cli(jobs_args);
  ASSERT_EQ(j1.exit_code, 0) << describe(jobs_args, j1);
  const auto serial = load_experiment(dir / "serial"), jobs = load_experiment(dir / "jobs");
  ASSERT_EQ(jobs.runs.size(), 9u);
  std::set<std::string> seen;
  for (const auto& a : serial.runs)
    for (const auto& b : jobs.runs)
      if (a.method == b.method && a.seed == b.seed) {
        seen.insert(a.method + std::to_string(a.seed));
        EXPECT_EQ(a.final_accuracy, b.final_accuracy) << a.method << " " << a.seed;
        EXPECT_EQ(a.final.lambda1, b.final.lambda1) << a.method << " " << a.seed;
        EXPECT_EQ(a.final.temperature, b.final.temperature) << a.method << " " << a.seed;
        EXPECT_EQ(a.curve, b.curve) << a.method << " " << a.seed;
      }
  EXPECT_EQ(seen.size(), 9u);
  EXPECT_EQ(read_file(dir / "serial" / "runs" / "proposed" / "seed2" / "trajectory.csv"),
            read_file(dir / "jobs" / "runs" / "proposed" / "seed2" / "trajectory.csv"));
  // The workers were started (the progress lines say so).
  EXPECT_NE(j1.err.find("worker process"), std::string::npos) << describe(jobs_args, j1);
  // Finished: a second call only reads.
  const auto before = std::filesystem::last_write_time(dir / "jobs" / "runs" / "none" / "seed0" /
                                                       "result.json");
  const auto j2 = run_cli(jobs_args);
  ASSERT_EQ(j2.exit_code, 0) << describe(jobs_args, j2);
  EXPECT_EQ(before, std::filesystem::last_write_time(dir / "jobs" / "runs" / "none" / "seed0" /
                                                     "result.json"));
  EXPECT_EQ(j2.err.find("worker process"), std::string::npos);
}

// `sweep --jobs 2`: the runs of the points are shared out; the table equals the serial sweep's.
namespace {

// Two sweeps of the same points: the same table and the same trajectories.
void expect_same_sweep(const std::filesystem::path& a, const std::filesystem::path& b) {
  EXPECT_EQ(read_file(a / "sweep" / "sweep.csv"), read_file(b / "sweep" / "sweep.csv"));
  for (const char* run : {"e1-2-e2-2/seed1", "e1-8-e2-8/seed0", "e1-3-e2-4/seed1"})
    EXPECT_EQ(read_file(a / "sweep" / run / "trajectory.csv"),
              read_file(b / "sweep" / run / "trajectory.csv"))
        << run;
}

}  // namespace

TEST(SweepJobs, IntegrationTwoJobsGiveTheSerialSweep) {
  TempDir dir("sweep-jobs");
  write_file_atomic(dir / "c.yaml", kJobsConfig);
  const std::string cfg = (dir / "c.yaml").string();
  const auto args = [&](const std::string& out, bool jobs) {
    std::vector<std::string> a = {"sweep", cfg, "--equal", "2,8", "--e2", "4", "--e1", "3",
                                  "--runs", "2", "--out", (dir / out).string(), "-q"};
    if (jobs) a.insert(a.end(), {"--jobs", "2"});
    return a;
  };
  const auto s = run_cli(args("serial", false));
  ASSERT_EQ(s.exit_code, 0) << describe(args("serial", false), s);
  const auto j = run_cli(args("jobs", true));
  ASSERT_EQ(j.exit_code, 0) << describe(args("jobs", true), j);
  EXPECT_NE(j.err.find("1 worker processes started"), std::string::npos) << j.err;
  expect_same_sweep(dir / "serial", dir / "jobs");
  // Finished: a second call trains nothing and starts no worker.
  const auto stamp = [&] {
    return std::filesystem::last_write_time(dir / "jobs" / "sweep" / "e1-2-e2-2" / "seed0" /
                                            "result.json");
  };
  const auto before = stamp();
  const auto j2 = run_cli(args("jobs", true));
  ASSERT_EQ(j2.exit_code, 0) << describe(args("jobs", true), j2);
  EXPECT_EQ(before, stamp());
  EXPECT_EQ(j2.err.find("worker process"), std::string::npos) << j2.err;
}

// The sweep's runs shared out by two ranks of a group (experiment/run_pool.h): the serial sweep.
TEST(SweepJobs, IntegrationTwoRanksGiveTheSerialSweep) {
  TempDir dir("sweep-ranks");
  write_file_atomic(dir / "c.yaml", kJobsConfig);
  const std::string cfg = (dir / "c.yaml").string();
  const auto args = [&](const std::string& out) {
    return std::vector<std::string>{"sweep", cfg, "--equal", "2,8", "--e2", "4", "--e1", "3",
                                    "--runs", "2", "--out", (dir / out).string(), "-q"};
  };
  const auto s = run_cli(args("serial"));
  ASSERT_EQ(s.exit_code, 0) << describe(args("serial"), s);
  std::vector<std::string> launch = {"launch", "--nproc", "2", "--"};
  const auto ranks_args = args("ranks");
  launch.insert(launch.end(), ranks_args.begin(), ranks_args.end());
  const auto r = run_cli(launch);
  ASSERT_EQ(r.exit_code, 0) << describe(launch, r);
  EXPECT_NE(r.err.find("rank 1: "), std::string::npos) << r.err;
  expect_same_sweep(dir / "serial", dir / "ranks");
}

// `search --jobs 2` on the random sampler: the processes share one study; trial by trial the
// parameters and values are the serial search's (random draws depend on the trial number only),
// and the retrain is done once, by the process that started the worker.
TEST(SearchJobs, IntegrationTwoJobsShareTheStudyAndGiveTheSerialTrials) {
  TempDir dir("search-jobs");
  write_file_atomic(dir / "c.yaml", kJobsConfig);
  const std::string cfg = (dir / "c.yaml").string();
  const auto args = [&](const std::string& out, bool jobs) {
    std::vector<std::string> a = {"search", cfg, "--sampler", "random", "--trials", "6",
                                  "--out", (dir / out).string(), "-q"};
    if (jobs) a.insert(a.end(), {"--jobs", "2"});
    return a;
  };
  const auto s = run_cli(args("serial", false));
  ASSERT_EQ(s.exit_code, 0) << describe(args("serial", false), s);
  const auto j = run_cli(args("jobs", true));
  ASSERT_EQ(j.exit_code, 0) << describe(args("jobs", true), j);
  EXPECT_NE(j.out.find("1 worker processes started"), std::string::npos) << j.out;
  const auto serial = Study::load(dir / "serial" / "search" / "random.db").trials();
  const auto jobs = Study::load(dir / "jobs" / "search" / "random.db").trials();
  ASSERT_EQ(serial.size(), 6u);
  ASSERT_EQ(jobs.size(), 6u);
  for (size_t i = 0; i < serial.size(); ++i) {
    EXPECT_EQ(jobs[i].state, TrialState::kComplete) << i;
    EXPECT_EQ(jobs[i].params, serial[i].params) << i;
    ASSERT_TRUE(jobs[i].value && serial[i].value) << i;
    EXPECT_EQ(*jobs[i].value, *serial[i].value) << i;
  }
  const auto retrain = [](const std::string& out) {
    const auto at = out.find("retrained on train");
    // Up to the timing, which differs.
    return at == std::string::npos ? std::string() : out.substr(at, out.find(") in ", at) - at);
  };
  EXPECT_FALSE(retrain(s.out).empty()) << s.out;
  EXPECT_EQ(retrain(s.out), retrain(j.out)) << j.out;
  EXPECT_EQ(j.out.find("retrain (stored in the study)"), std::string::npos) << j.out;
}

TEST(ExperimentJobs, JobsNeedAWorkerCommand) {
  Config c = default_config();
  ExperimentOptions o;
  o.jobs = 2;
  metadistill::testing::expect_error([&] { run_experiment(c, o); }, {"jobs = 2", "worker command"});
  o.jobs = 0;
  metadistill::testing::expect_error([&] { run_experiment(c, o); }, {"jobs = 0"});
}

// Two processes needing the same missing teacher (and teacher-output cache): the first to take
// the lock beside the file trains it, the other waits and loads it; both finish.
TEST(SharedWork, IntegrationTwoProcessesTrainAMissingTeacherOnce) {
  TempDir dir("shared");
  const auto shared = dir / "shared";
  write_file_atomic(dir / "c.yaml", R"(preset: tiny
threads: 1
cache: )" + (shared / "cache").string() + R"(
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: logreg
  file: )" + (shared / "teacher.pt").string() + R"(
  train: {epochs: 40000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 50, batch_size: 0, lr: 1.0, lr_step: 0, eval_every: 10, checkpoint_every: 0}
)");
  const std::string cfg = (dir / "c.yaml").string();
  const std::vector<std::string> a = {"distill", cfg, "--out", (dir / "a").string(), "--method",
                                      "naive", "-q"};
  const std::vector<std::string> b = {"distill", cfg, "--out", (dir / "b").string(), "--method",
                                      "naive", "--seed", "1", "-q"};
  const pid_t first = metadistill::testing::spawn_cli(a, (dir / "a.out").string(),
                                                      (dir / "a.err").string());
  // The second starts once the first holds the teacher's lock (the lock file appears as it is
  // taken), so it finds the teacher missing and the lock held.
  const auto lock = shared / "teacher.pt.lock";
  for (int i = 0; i < 600 && !std::filesystem::exists(lock); ++i)
    ::usleep(50 * 1000);
  ASSERT_TRUE(std::filesystem::exists(lock)) << read_file(dir / "a.err");
  const pid_t second = metadistill::testing::spawn_cli(b, (dir / "b.out").string(),
                                                       (dir / "b.err").string());
  const int code_a = metadistill::testing::wait_exit(first);
  const int code_b = metadistill::testing::wait_exit(second);
  const std::string err_a = read_file(dir / "a.err"), err_b = read_file(dir / "b.err");
  EXPECT_EQ(code_a, 0) << err_a;
  EXPECT_EQ(code_b, 0) << err_b;
  const auto count = [](const std::string& s, const std::string& what) {
    size_t n = 0;
    for (size_t at = s.find(what); at != std::string::npos; at = s.find(what, at + 1)) ++n;
    return n;
  };
  EXPECT_EQ(count(err_a, "is missing: training"), 1u) << err_a;
  EXPECT_EQ(count(err_b, "is missing: training"), 0u) << err_b;
  EXPECT_NE(err_b.find("is being made by another process"), std::string::npos) << err_b;
  EXPECT_TRUE(std::filesystem::exists(shared / "teacher.pt"));
  // Both read the one teacher-output cache.
  size_t caches = 0;
  for (const auto& e : std::filesystem::directory_iterator(shared / "cache"))
    caches += e.path().extension() == ".pt";
  EXPECT_EQ(caches, 1u);
}
