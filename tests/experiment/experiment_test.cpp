#include "metadistill/experiment/experiment.h"

#include <gtest/gtest.h>

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "metadistill/experiment/plots.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::TempDir;

namespace {

const char* kTinyConfig = R"(preset: tiny
runs: 2
threads: 1
methods: [none, gradient, proposed]
data: {name: synthetic, variant: reference, val_is_test: true}
teacher:
  model: logreg
  train: {epochs: 3000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 400, batch_size: 0, lr: 1.0, lr_step: 0, eval_every: 20, checkpoint_every: 10}
method:
  settings: {val_temperature: 0.1, gamma: 0.1}
)";

std::string accuracy_columns(const std::filesystem::path& table_csv) {
  // method, runs, final mean/max/std, best mean/max: the columns that must not depend on timing.
  std::istringstream in(read_file(table_csv));
  std::string line, out;
  while (std::getline(in, line)) {
    std::istringstream cells(line);
    std::string cell;
    for (int i = 0; i < 7 && std::getline(cells, cell, ','); ++i) out += cell + ",";
    out += "\n";
  }
  return out;
}

pid_t spawn_cli(const std::vector<std::string>& args) {
  pid_t pid = fork();
  if (pid == 0) {
    std::vector<char*> argv;
    static std::string bin = std::string(METADISTILL_BINARY_DIR) + "/metadistill";
    argv.push_back(bin.data());
    for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
    argv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execv(bin.c_str(), argv.data());
    _exit(127);
  }
  return pid;
}

int wait_exit(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

}  // namespace

TEST(Experiment, IntegrationTinyExperimentWritesTableAndPlots) {
  TempDir dir("exp");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  Config c = load_config(dir / "tiny.yaml");
  ExperimentOptions o;
  o.out = dir / "out";
  o.methods = {"none", "gradient"};
  auto r = run_experiment(c, o);
  ASSERT_EQ(r.runs.size(), 4u);
  ASSERT_EQ(r.table.size(), 2u);
  EXPECT_EQ(r.table[0].method, "none");
  EXPECT_NEAR(r.table[0].final_accuracy.mean, 0.63, 0.05);
  EXPECT_EQ(r.table[1].hyper_steps, 400);
  EXPECT_GT(r.table[1].final_accuracy.mean, r.table[0].final_accuracy.mean);
  for (auto f : {"table.md", "table.csv", "table.json", "runs.csv", "curves.csv", "config.json"})
    EXPECT_TRUE(std::filesystem::exists(dir / "out" / f)) << f;
  const auto md = read_file(dir / "out" / "table.md");
  EXPECT_NE(md.find("| gradient | 2 |"), std::string::npos) << md;
  if (gnuplot_available()) {
    for (auto f : {"accuracy.png", "accuracy.svg", "trajectory-gradient.png", "synthetic.png"}) {
      auto p = dir / "out" / "plots" / f;
      EXPECT_TRUE(std::filesystem::exists(p) && std::filesystem::file_size(p) > 1000) << f;
    }
  }
  // `report` reads the folder back to the same table.
  auto again = load_experiment(dir / "out");
  EXPECT_EQ(table_csv(again), table_csv(r));
}

// Killing an experiment (SIGKILL, mid-run) and running the same command again gives the same
// table as an uninterrupted experiment with the same seeds.
TEST(Experiment, IntegrationResumeAfterKillGivesTheSameTable) {
  TempDir dir("resume");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  const std::string cfg = (dir / "tiny.yaml").string();
  const auto full = dir / "full", killed = dir / "killed";
  ASSERT_EQ(wait_exit(spawn_cli({"experiment", cfg, "--out", full.string(), "-q"})), 0);

  pid_t pid = spawn_cli({"experiment", cfg, "--out", killed.string(), "-q"});
  const auto mid = killed / "runs" / "gradient" / "seed1" / "checkpoint.pt";
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (!std::filesystem::exists(mid) && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  ASSERT_TRUE(std::filesystem::exists(mid)) << "the run never reached gradient seed 1";
  kill(pid, SIGKILL);
  wait_exit(pid);
  EXPECT_TRUE(std::filesystem::exists(killed / "runs" / "none" / "seed0" / "result.json"));
  EXPECT_FALSE(std::filesystem::exists(killed / "table.csv"));

  ASSERT_EQ(wait_exit(spawn_cli({"experiment", cfg, "--out", killed.string(), "-q"})), 0);
  EXPECT_EQ(accuracy_columns(killed / "table.csv"), accuracy_columns(full / "table.csv"));
  EXPECT_EQ(read_file(killed / "runs" / "gradient" / "seed1" / "trajectory.csv"),
            read_file(full / "runs" / "gradient" / "seed1" / "trajectory.csv"));
}
