#include "metadistill/experiment/diagnose.h"

#include <gtest/gtest.h>

#include "metadistill/experiment/plots.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::TempDir;

namespace {

const char* kConfig = R"(preset: tiny
threads: 1
data: {name: synthetic, variant: reference}
teacher:
  model: logreg
  train: {epochs: 3000, batch_size: 0, lr: 0.01, lr_step: 0, eval_every: 1000, checkpoint_every: 0}
student:
  model: logreg
  train: {epochs: 120, batch_size: 0, lr: 1.0, lr_step: 40, lr_gamma: 0.5, eval_every: 1, checkpoint_every: 20}
method:
  lambda1: 1.0
  temperature: 2.0
  settings: {val_temperature: 0.1, gamma: 0.1}
)";

Config tiny(const TempDir& dir) {
  write_file_atomic(dir / "c.yaml", kConfig);
  Config c = load_config(dir / "c.yaml");
  c.out = (dir / "out").string();
  c.teacher_file.clear();
  c.cache.clear();
  c.resolve_paths();
  return c;
}

}  // namespace

// Plain cross-entropy as `fixed` (λ1 = 1): its effective learning rate is the schedule's, so the
// control trained with it is the nominal-schedule control and the run itself, number for number;
// T does not enter the loss, so ĝ for T is exactly 0.
TEST(Diagnose, IntegrationCrossEntropyRunIsItsOwnControl) {
  TempDir dir("diag");
  Config c = tiny(dir);
  c.method.given_initial = true;
  Prepared p = prepare(c);
  auto r = run_diagnose(c, p, DiagnoseOptions().with_method("fixed").with_at({0.25, 0.5}),
                        dir / "d");
  ASSERT_EQ(r.forks.size(), 4u);
  EXPECT_EQ(r.forks[0].epoch, 30);
  EXPECT_EQ(r.forks[2].epoch, 60);
  for (const auto& f : r.forks) {
    EXPECT_EQ(f.greedy_steps, 0);  // a fixed method takes no hyper-steps
    if (f.metaparameter == "temperature") {
      EXPECT_EQ(f.long_horizon, 0.0) << f.epoch;
      EXPECT_EQ(f.val_loss_plus, f.val_loss_minus);
    } else {
      EXPECT_EQ(f.value_plus, 1.0);  // clamped into [0, 1]
      EXPECT_NEAR(f.value_minus, 0.95, 1e-12);
      EXPECT_NE(f.long_horizon, 0.0);
    }
  }
  ASSERT_EQ(r.control.size(), 3u);
  const auto& run = r.control[0].history;
  for (size_t k = 1; k < 3; ++k) {
    ASSERT_EQ(r.control[k].history.size(), run.size()) << r.control[k].name;
    for (size_t e = 0; e < run.size(); ++e) {
      EXPECT_DOUBLE_EQ(r.control[k].history[e].lr, run[e].lr) << r.control[k].name << " " << e;
      EXPECT_EQ(r.control[k].history[e].val_loss, run[e].val_loss) << r.control[k].name << " " << e;
    }
  }
  for (auto f : {"report.md", "forks.csv", "control.csv"})
    EXPECT_TRUE(std::filesystem::exists(dir / "d" / f)) << f;
  // A second call reuses every training: the same numbers, no checkpoint written again.
  const auto stamp = std::filesystem::last_write_time(dir / "d" / "run" / "checkpoint.pt");
  auto again = run_diagnose(c, p, DiagnoseOptions().with_method("fixed").with_at({0.25, 0.5}),
                            dir / "d");
  EXPECT_EQ(again.forks[1].long_horizon, r.forks[1].long_horizon);
  EXPECT_EQ(stamp, std::filesystem::last_write_time(dir / "d" / "run" / "checkpoint.pt"));
}

// The gradient method: every step of the epoch after a fork has a greedy hypergradient to set
// beside ĝ, the report says how often the signs agree, and the plots are drawn.
TEST(Diagnose, IntegrationGradientRunHasGreedyHypergradientsAtEachFork) {
  TempDir dir("diag");
  Config c = tiny(dir);
  c.method.fixed = {0.5, 2.0};
  c.method.given_initial = true;
  Prepared p = prepare(c);
  auto r = run_diagnose(c, p, DiagnoseOptions().with_method("gradient").with_at({0.5}).with_control(false),
                        dir / "d");
  ASSERT_EQ(r.forks.size(), 2u);
  for (const auto& f : r.forks) {
    EXPECT_EQ(f.greedy_steps, 1);  // full-batch: one step per epoch
    EXPECT_TRUE(std::isfinite(f.long_horizon));
    EXPECT_GT(f.value_plus, f.value_minus);
  }
  const auto report = read_file(dir / "d" / "report.md");
  EXPECT_NE(report.find("signs agree"), std::string::npos);
  if (gnuplot_available())
    EXPECT_GT(std::filesystem::file_size(dir / "d" / "plots" / "sign-test.png"), 1000u);
  metadistill::testing::expect_error(
      [&] { run_diagnose(c, p, DiagnoseOptions().with_at({1.5}), dir / "x"); }, {"--at 1.5"});
  metadistill::testing::expect_error(
      [&] { run_diagnose(c, p, DiagnoseOptions().with_method("none"), dir / "x"); }, {"'none'"});
}
