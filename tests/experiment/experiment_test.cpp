#include "metadistill/experiment/experiment.h"

#include <gtest/gtest.h>

#include <sys/stat.h>

#include <chrono>
#include <sstream>
#include <thread>

#include "cli_runner.h"
#include "metadistill/data/npy.h"
#include "metadistill/experiment/distill.h"
#include "metadistill/experiment/plots.h"
#include "metadistill/search/study.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::TempDir;
using metadistill::testing::spawn_cli;
using metadistill::testing::wait_exit;

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
  for (auto f : {"table.md", "table.csv", "table.json", "runs.csv", "curves.csv", "config.json",
                 "trajectories.md"})
    EXPECT_TRUE(std::filesystem::exists(dir / "out" / f)) << f;
  const auto md = read_file(dir / "out" / "table.md");
  EXPECT_NE(md.find("| gradient | 2 |"), std::string::npos) << md;
  const auto traj = read_file(dir / "out" / "trajectories.md");
  EXPECT_NE(traj.find("| gradient | 2 |"), std::string::npos) << traj;
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

  // The process to kill can never finish gradient seed 1: the temporary file its result.json is
  // written through (`result.json.tmp.<pid>`, see write_file_atomic) is a FIFO that nobody reads,
  // so opening it blocks for good. It is killed once that run has written a checkpoint: wherever
  // it is then, the run is checkpointed and unfinished, and no later run has started. The child
  // waits at a gate until the FIFO named after its pid exists.
  int gate[2];
  ASSERT_EQ(::pipe2(gate, O_CLOEXEC), 0);
  const pid_t pid = spawn_cli({"experiment", cfg, "--out", killed.string(), "-q"}, "", "", gate[0]);
  ::close(gate[0]);
  const auto run_dir = killed / "runs" / "gradient" / "seed1";
  const auto stop = run_dir / ("result.json.tmp." + std::to_string(pid));
  std::filesystem::create_directories(run_dir);
  const bool made = ::mkfifo(stop.c_str(), 0600) == 0;
  const bool started = ::write(gate[1], "g", 1) == 1;  // the child starts
  ::close(gate[1]);
  const auto mid = run_dir / "checkpoint.pt";
  // The deadline only ends a hung test; the kill point does not depend on it.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(5);
  bool exited = false;
  while (made && started && !exited && !std::filesystem::exists(mid) &&
         std::chrono::steady_clock::now() < deadline) {
    int status = 0;
    exited = ::waitpid(pid, &status, WNOHANG) == pid;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!exited) {
    ::kill(pid, SIGKILL);
    EXPECT_EQ(wait_exit(pid), -1);
  }
  ASSERT_TRUE(made) << "mkfifo " << stop;
  ASSERT_TRUE(started);
  ASSERT_FALSE(exited) << "the experiment ended before gradient seed 1 wrote a checkpoint";
  ASSERT_TRUE(std::filesystem::exists(mid)) << "gradient seed 1 wrote no checkpoint in 5 min";
  std::filesystem::remove(stop);
  EXPECT_TRUE(std::filesystem::exists(killed / "runs" / "none" / "seed0" / "result.json"));
  EXPECT_TRUE(std::filesystem::exists(killed / "runs" / "gradient" / "seed0" / "result.json"));
  EXPECT_FALSE(std::filesystem::exists(run_dir / "result.json"));
  // Runs go seed by seed: every method's seed 0 is done, no seed-1 run after gradient's begun.
  EXPECT_TRUE(std::filesystem::exists(killed / "runs" / "proposed" / "seed0" / "result.json"));
  EXPECT_FALSE(std::filesystem::exists(killed / "runs" / "proposed" / "seed1"));
  EXPECT_FALSE(std::filesystem::exists(killed / "table.csv"));

  ASSERT_EQ(wait_exit(spawn_cli({"experiment", cfg, "--out", killed.string(), "-q"})), 0);
  EXPECT_EQ(accuracy_columns(killed / "table.csv"), accuracy_columns(full / "table.csv"));
  EXPECT_EQ(read_file(killed / "runs" / "gradient" / "seed1" / "trajectory.csv"),
            read_file(full / "runs" / "gradient" / "seed1" / "trajectory.csv"));
}

// The searches as experiment methods: one study per run (sampler seed = run seed), trials + 1
// trainings, the retrain's accuracy and curve; a run whose result.json is gone is rebuilt from its
// study without training a trial again.
TEST(Experiment, IntegrationSearchMethodsRunAsExperimentMethods) {
  TempDir dir("expsearch");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  Config c = load_config(dir / "tiny.yaml");
  c.search.trials = 3;
  c.search.startup = 2;
  c.search.trial_epochs = 200;
  ExperimentOptions o;
  o.out = dir / "out";
  o.methods = {"none", "tpe", "random-search"};
  auto r = run_experiment(c, o);
  ASSERT_EQ(r.runs.size(), 6u);
  ASSERT_EQ(r.table.size(), 3u);
  for (const auto& row : r.runs) {
    if (row.method == "none") continue;
    EXPECT_EQ(row.trainings, 4) << row.method;
    EXPECT_EQ(row.steps, 400) << row.method;  // the retrain's full schedule
    ASSERT_FALSE(row.curve.empty());
    EXPECT_EQ(row.curve.back().first, 400);
    EXPECT_DOUBLE_EQ(row.curve.back().second, row.final_accuracy);
    EXPECT_EQ(row.initial.lambda1, row.final.lambda1);
    const auto run_dir = dir / "out" / "runs" / row.method / ("seed" + std::to_string(row.seed));
    Study study = Study::load(run_dir / "study.db");
    EXPECT_EQ(study.trials().size(), 3u);
    EXPECT_EQ(study.settings().sampler.at("seed").get<uint64_t>(), row.seed);
    const auto best = study.best_trial();
    ASSERT_TRUE(best.has_value());
    EXPECT_DOUBLE_EQ(best->params[0], row.final.lambda1);
    EXPECT_DOUBLE_EQ(study.attribute("retrain")->at("final_test_accuracy").get<double>(),
                     row.final_accuracy);
    // The row's time is every trial's plus the retrain's.
    double seconds = study.attribute("retrain")->at("seconds").get<double>();
    for (const auto& t : study.trials()) seconds += t.finished - t.started;
    EXPECT_NEAR(row.seconds, seconds, 1e-6) << row.method;
    EXPECT_GT(row.seconds, study.attribute("retrain")->at("seconds").get<double>());
  }
  EXPECT_EQ(r.table[1].trainings, 4);
  EXPECT_NE(r.table[1].note.find("3 trials"), std::string::npos) << r.table[1].note;
  EXPECT_NE(r.table[2].note.find("random search"), std::string::npos) << r.table[2].note;
  const auto md = read_file(dir / "out" / "table.md");
  EXPECT_NE(md.find("| tpe | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| random-search | 2 |"), std::string::npos) << md;
  EXPECT_EQ(table_csv(load_experiment(dir / "out")), table_csv(r));

  const auto seed1 = dir / "out" / "runs" / "tpe" / "seed1";
  const auto trial_time = std::filesystem::last_write_time(seed1 / "trial-0" / "metrics.csv");
  const auto table_before = accuracy_columns(dir / "out" / "table.csv");
  std::filesystem::remove(seed1 / "result.json");
  auto again = run_experiment(c, o);
  EXPECT_EQ(std::filesystem::last_write_time(seed1 / "trial-0" / "metrics.csv"), trial_time);
  EXPECT_TRUE(std::filesystem::exists(seed1 / "result.json"));
  EXPECT_EQ(accuracy_columns(dir / "out" / "table.csv"), table_before);
  ASSERT_EQ(again.runs.size(), r.runs.size());
  for (size_t i = 0; i < r.runs.size(); ++i) {
    EXPECT_DOUBLE_EQ(again.runs[i].final_accuracy, r.runs[i].final_accuracy) << i;
    EXPECT_EQ(again.runs[i].trainings, r.runs[i].trainings) << i;
  }
  // A search method with unknown name is refused with the list of the known ones.
  o.methods = {"tpe", "hyperopt"};
  metadistill::testing::expect_error([&] { run_experiment(c, o); },
                                     {"hyperopt", "random-search", "tpe", "gradient"});
}

// Equal-budget mode: the same wall-clock for every run, its own folder, the steps reached shown.
TEST(Experiment, IntegrationEqualBudgetStopsEveryMethodAtTheBudget) {
  TempDir dir("expbudget");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  Config c = load_config(dir / "tiny.yaml");
  c.student.trainer.epochs = 1000000;  // far more than fits in the budget
  c.student.trainer.eval_every = 1000;
  c.student.trainer.checkpoint_every = 0;
  c.search.trial_epochs = 200;  // several trials fit
  c.search.startup = 2;
  ExperimentOptions o;
  o.out = dir / "out";
  o.methods = {"none", "gradient", "tpe"};
  o.runs = 1;
  o.budget_seconds = 0.6;
  auto r = run_experiment(c, o);
  const auto bdir = dir / "out" / "budget-0.6s";
  EXPECT_TRUE(std::filesystem::exists(bdir / "table.md"));
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "table.md"));
  EXPECT_TRUE(std::filesystem::exists(dir / "out" / "teacher.pt"));  // shared with unlimited runs
  EXPECT_DOUBLE_EQ(r.budget_seconds, 0.6);
  ASSERT_EQ(r.runs.size(), 3u);
  for (const auto& row : r.runs) {
    EXPECT_GE(row.seconds, 0.6) << row.method;
    EXPECT_LT(row.seconds, 10.0) << row.method;
  }
  // Single trainings stopped early; the partial last epoch is evaluated.
  EXPECT_LT(r.runs[0].steps, 1000000);
  EXPECT_GT(r.runs[0].steps, 0);
  EXPECT_EQ(r.runs[0].curve.back().first, r.runs[0].steps);  // full batch: one step per epoch
  EXPECT_EQ(r.runs[1].hyper_steps, r.runs[1].steps);
  EXPECT_LT(r.runs[1].steps, 1000000);
  // The search ran trials until the budget was spent and reports its best trial, unretrained:
  // a trial starts only while time is left (how many fit depends on the machine's load).
  Study study = Study::load(bdir / "runs" / "tpe" / "seed0" / "study.db");
  const auto trials = study.trials();
  ASSERT_FALSE(trials.empty());
  EXPECT_EQ(r.runs[2].trainings, static_cast<int64_t>(trials.size()));
  double before_last = 0;
  for (size_t i = 0; i + 1 < trials.size(); ++i)
    before_last += trials[i].finished - trials[i].started;
  const double last = trials.back().finished - trials.back().started;
  EXPECT_LT(before_last, 0.6);
  EXPECT_GE(before_last + last, 0.6);
  EXPECT_NEAR(r.runs[2].seconds, before_last + last, 1e-6);
  EXPECT_LE(r.runs[2].steps, 200);
  EXPECT_FALSE(std::filesystem::exists(bdir / "runs" / "tpe" / "seed0" / "retrain"));
  const auto md = read_file(bdir / "table.md");
  EXPECT_NE(md.find("equal budget 0.6 s per run"), std::string::npos) << md;
  EXPECT_NE(md.find("not deterministic"), std::string::npos) << md;
  EXPECT_NE(md.find("| epochs | steps |"), std::string::npos) << md;
  auto loaded = load_experiment(bdir);
  EXPECT_DOUBLE_EQ(loaded.budget_seconds, 0.6);
  EXPECT_EQ(table_markdown(loaded), table_markdown(r));
}

TEST(Experiment, IntegrationCliBudgetFlagWritesItsOwnFolder) {
  TempDir dir("expcli");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  const auto out = dir / "out";
  ASSERT_EQ(wait_exit(spawn_cli({"experiment", (dir / "tiny.yaml").string(), "--out", out.string(),
                                 "--methods", "none", "--runs", "1", "--budget-seconds", "0.3",
                                 "-q"})),
            0);
  EXPECT_TRUE(std::filesystem::exists(out / "budget-0.3s" / "table.md"));
  EXPECT_FALSE(std::filesystem::exists(out / "table.md"));
  const std::vector<std::string> negative = {"experiment", (dir / "tiny.yaml").string(), "--out",
                                             out.string(), "--budget-seconds", "-1"};
  const auto refused = metadistill::testing::run_cli(negative);
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_TRUE(metadistill::testing::contains_all(refused.err, {"--budget-seconds", "-1"}))
      << metadistill::testing::describe(negative, refused);
}

// A teacher given as logits of the pool rows only has no test accuracy: the table says nan, and
// `report` reads the folder back (the JSON holds null there).
TEST(Experiment, IntegrationLogitsTeacherWithoutTestRows) {
  TempDir dir("exp-logits");
  write_file_atomic(dir / "tiny.yaml", kTinyConfig);
  Config c = load_config(dir / "tiny.yaml");
  c.runs = 1;
  c.student.trainer.epochs = 50;
  const DataBundle data = load_data(c.data);
  c.teacher_logits = (dir / "logits.npy").string();
  write_npy(torch::randn({data.pool.size(), 2}), c.teacher_logits);
  ExperimentOptions o;
  o.out = dir / "out";
  o.methods = {"fixed"};
  auto r = run_experiment(c, o);
  EXPECT_TRUE(std::isnan(r.teacher_accuracy));
  EXPECT_FALSE(std::filesystem::exists(dir / "out" / "teacher.pt"));
  auto again = load_experiment(dir / "out");
  EXPECT_TRUE(std::isnan(again.teacher_accuracy));
  EXPECT_EQ(table_csv(again), table_csv(r));
}
