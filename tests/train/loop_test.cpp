// The one epoch loop (train/loop.h) as every trainer runs it: schedule, NaN guard, checkpoints,
// resume, forks and the time limit, through the Hinton trainer.
#include "metadistill/train/loop.h"

#include <gtest/gtest.h>

#include "metadistill/data/synthetic.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/train/teacher.h"
#include "metadistill/util/files.h"
#include "metadistill/util/runtime.h"
#include "test_util.h"
#include "train/train_student.h"

using namespace metadistill;
using metadistill::testing::small_synthetic;
using metadistill::testing::TempDir;
using metadistill::testing::train_student;

TEST(Trainer, NanLossStopsWithClearErrorAndKeepsLastCheckpoint) {
  auto b = small_synthetic();
  TempDir dir("nan");
  auto logits = torch::randn({b.pool.size(), 2});
  FixedMetaOptimizer meta("naive", {0.5, 1.0});
  auto o = TrainerOptions().with_epochs(6).with_batch_size(0).with_lr(0.1).with_out_dir(dir.path());
  // First run cleanly for 3 epochs to leave a checkpoint.
  o.epochs = 3;
  train_student(b, logits, meta, o);
  ASSERT_TRUE(std::filesystem::exists(dir / "checkpoint.pt"));
  const auto before = std::filesystem::last_write_time(dir / "checkpoint.pt");
  auto bad = logits.clone();
  // A teacher logit that is NaN for one training sample poisons the loss when it is used.
  bad[b.train_idx[0].item<int64_t>()][0] = std::nan("");
  o.epochs = 6;
  o.resume = true;
  try {
    train_student(b, bad, meta, o);
    FAIL() << "NaN loss was not reported";
  } catch (const std::exception& e) {
    const std::string msg = e.what();
    EXPECT_TRUE(metadistill::testing::contains_all(msg, {"nan", "step", "checkpoint"})) << msg;
  }
  EXPECT_EQ(std::filesystem::last_write_time(dir / "checkpoint.pt"), before);
}

TEST(Trainer, ResumeFromCheckpointEqualsUninterruptedRun) {
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2});
  TempDir d1("full"), d2("part");
  auto o = TrainerOptions().with_epochs(8).with_batch_size(4).with_lr(0.3).with_lr_step(3, 0.5)
               .with_optimizer("momentum").with_seed(4);
  FixedMetaOptimizer m("naive", {0.5, 1.0});
  Classifier full, part;
  auto r_full = train_student(b, logits, m, TrainerOptions(o).with_out_dir(d1.path()), &full);
  auto o_part = TrainerOptions(o).with_out_dir(d2.path());
  o_part.epochs = 5;
  train_student(b, logits, m, o_part);
  o_part.epochs = 8;
  o_part.resume = true;
  auto r_part = train_student(b, logits, m, o_part, &part);
  EXPECT_TRUE(r_part.resumed);
  ASSERT_EQ(r_part.history.size(), r_full.history.size());
  EXPECT_EQ(r_part.final_test_accuracy, r_full.final_test_accuracy);
  auto pa = full->parameters(), pb = part->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << i;
  EXPECT_TRUE(std::filesystem::exists(d2 / "metrics.csv"));
}

// A checkpoint carries the settings of its run: a resume with other settings is refused naming
// them, the same settings resume, and a checkpoint stored before settings keys resumes (with a
// warning) and is keyed from then on.
TEST(Trainer, ResumeContinuesOnlyACheckpointOfTheSameSettings) {
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2});
  TempDir dir("keyed");
  FixedMetaOptimizer m("naive", {0.5, 1.0});
  auto o = TrainerOptions().with_epochs(3).with_batch_size(4).with_lr(0.3).with_out_dir(dir.path());
  // Stored without settings, as before settings keys existed.
  train_student(b, logits, m, o);
  EXPECT_TRUE(checkpoint_settings(dir / "checkpoint.pt").is_null());
  o.resume = true;
  o.epochs = 4;
  o.settings = {{"method", {{"settings", {{"gamma", 0.1}}}}}};
  ::testing::internal::CaptureStderr();
  auto legacy = train_student(b, logits, m, o);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_TRUE(legacy.resumed);
  EXPECT_NE(warning.find("stored before settings keys"), std::string::npos) << warning;
  EXPECT_EQ(checkpoint_settings(dir / "checkpoint.pt").at("settings"), o.settings);
  // Other settings: refused, naming the setting, its stored and its new value.
  auto changed = o;
  changed.epochs = 5;
  changed.settings["method"]["settings"]["gamma"] = 0.2;
  metadistill::testing::expect_error(
      [&] { train_student(b, logits, m, changed); },
      {(dir / "checkpoint.pt").string(), "method.settings.gamma: 0.1 -> 0.2", "--fresh"});
  // The same settings: resumed.
  o.epochs = 5;
  auto same = train_student(b, logits, m, o);
  EXPECT_TRUE(same.resumed);
  EXPECT_EQ(same.history.size(), 5u);
}

TEST(Trainer, CosineScheduleFollowsTheFormula) {
  auto b = small_synthetic();
  FixedMetaOptimizer m("none", {1.0, 1.0});
  auto o = TrainerOptions().with_epochs(8).with_batch_size(0).with_lr(0.4).with_lr_schedule("cosine");
  auto r = train_student(b, torch::Tensor(), m, o);
  ASSERT_EQ(r.history.size(), 8u);
  for (int64_t e = 0; e < 8; ++e)
    EXPECT_NEAR(r.history[e].lr, 0.4 * 0.5 * (1 + std::cos(M_PI * e / 8.0)), 1e-12) << e;
  EXPECT_THROW(Trainer(TrainerOptions().with_lr_schedule("linear")), std::exception);
}

TEST(Trainer, TimeLimitStopsAfterTheStepThatExhaustsIt) {
  auto b = small_synthetic();
  FixedMetaOptimizer m("none", {1.0, 1.0});
  auto o = TrainerOptions().with_epochs(50).with_batch_size(4).with_lr(0.1).with_time_limit(1e-9);
  auto r = train_student(b, torch::Tensor(), m, o);
  EXPECT_TRUE(r.stopped_by_time_limit);
  EXPECT_EQ(r.steps, 1);
  ASSERT_EQ(r.history.size(), 1u);  // the partial epoch is evaluated
  EXPECT_GT(r.final_test_accuracy, 0.0);
  FixedMetaOptimizer m2("none", {1.0, 1.0});
  auto unlimited = train_student(b, torch::Tensor(), m2, TrainerOptions(o).with_time_limit(0));
  EXPECT_FALSE(unlimited.stopped_by_time_limit);
  EXPECT_EQ(unlimited.history.size(), 50u);
  EXPECT_THROW(Trainer(TrainerOptions().with_time_limit(-1)), std::exception);
}

// A fork from a kept checkpoint, held at the run's own (fixed) λ, reproduces the unforked run:
// same weights, optimizer state, step count and data order from the fork's epoch on.
TEST(Trainer, ForkFromAKeptCheckpointAtTheSameLambdaReproducesTheRun) {
  TempDir dir("fork");
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2}) * 2;
  auto o = TrainerOptions().with_epochs(6).with_batch_size(4).with_lr(0.5).with_seed(7)
               .with_lr_step(2, 0.5).with_optimizer("momentum");
  FixedMetaOptimizer whole("naive", {0.3, 2.0});
  Classifier a, c;
  auto full = train_student(b, logits, whole, TrainerOptions(o).with_out_dir(dir / "full")
                                                  .with_keep_checkpoints({2, 4}), &a);
  ASSERT_TRUE(std::filesystem::exists(dir / "full" / "checkpoint-epoch2.pt"));
  ASSERT_TRUE(std::filesystem::exists(dir / "full" / "checkpoint-epoch4.pt"));
  FixedMetaOptimizer held("fixed", {0.3, 2.0});  // another method name: a fork may change it
  auto fork = train_student(b, logits, held, TrainerOptions(o).with_out_dir(dir / "fork")
                                                  .with_fork_from(dir / "full" / "checkpoint-epoch2.pt"), &c);
  ASSERT_EQ(fork.history.size(), full.history.size());
  EXPECT_EQ(fork.steps, full.steps);
  EXPECT_EQ(fork.history.back().val_loss, full.history.back().val_loss);
  EXPECT_EQ(fork.final_test_accuracy, full.final_test_accuracy);
  auto pa = a->parameters(), pc = c->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pc[i]));
  // Held elsewhere, the fork ends elsewhere.
  FixedMetaOptimizer other("fixed", {0.6, 2.0});
  auto moved = train_student(b, logits, other, TrainerOptions(o).with_out_dir(dir / "other")
                                                   .with_fork_from(dir / "full" / "checkpoint-epoch2.pt"));
  EXPECT_NE(moved.history.back().val_loss, full.history.back().val_loss);
  // lr_by_epoch replaces the schedule.
  FixedMetaOptimizer plain("none", {1.0, 1.0});
  auto r = train_student(b, logits, plain, TrainerOptions(o).with_lr_by_epoch({0.1, 0.2, 0.3}));
  EXPECT_DOUBLE_EQ(r.history[0].lr, 0.1);
  EXPECT_DOUBLE_EQ(r.history[2].lr, 0.3);
  EXPECT_DOUBLE_EQ(r.history[3].lr, 0.5 * 0.5);  // the schedule again: lr 0.5 halved every 2
}
