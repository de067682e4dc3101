#include "metadistill/train/trainer.h"

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
using metadistill::testing::train_and_resume;
using metadistill::testing::train_student;

TEST(Trainer, SameSeedGivesSameNumbers) {
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2});
  FixedMetaOptimizer m1("naive", {0.5, 2.0}), m2("naive", {0.5, 2.0});
  auto o = TrainerOptions().with_epochs(30).with_batch_size(4).with_lr(0.5).with_seed(3);
  Classifier a, c;
  auto r1 = train_student(b, logits, m1, o, &a);
  auto r2 = train_student(b, logits, m2, o, &c);
  ASSERT_EQ(r1.history.size(), 30u);
  for (size_t i = 0; i < r1.history.size(); ++i)
    EXPECT_EQ(r1.history[i].train_loss, r2.history[i].train_loss);
  auto pa = a->parameters(), pc = c->parameters();
  for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pc[i]));
}

// The teacher's outputs are found by sample id: a cache whose row i is a one-hot of a label
// chosen per id must reach the loss unchanged under shuffling, whatever the batch order.
TEST(Trainer, TeacherOutputsAreLookedUpBySampleIdUnderShuffling) {
  auto b = small_synthetic();
  const int64_t n = b.pool.size();
  // Row i says "class (i mod 2)" with huge confidence.
  auto logits = torch::zeros({n, 2});
  for (int64_t i = 0; i < n; ++i) logits[i][i % 2] = 30.0;

  class Probe : public MetaOptimizer {
   public:
    std::string name() const override { return "probe"; }
    void before_step(const HyperStepContext& ctx) override {
      auto expected = (ctx.train->idx % 2);
      mismatches += (ctx.teacher_logits.argmax(1) != expected).sum().item<int64_t>();
      checked += ctx.train->idx.numel();
    }
    std::vector<double> values() const override { return {0.5, 1.0}; }
    TrajectoryPoint last_point() const override { return {}; }
    int64_t mismatches = 0, checked = 0;
  } probe;
  train_student(b, logits, probe, TrainerOptions().with_epochs(5).with_batch_size(4).with_lr(0.1));
  EXPECT_EQ(probe.checked, 5 * 15);
  EXPECT_EQ(probe.mismatches, 0);
}

// The online hypergradient's tangents and the sign meta-step's state travel in the checkpoint: a
// resumed run continues the same λ trajectory (through a learning-rate drop, which resets Z);
// also with the steps normalized to the cross-entropy's length (step_norm ce), whose tangent the
// online method carries (meta/online_hypergradient.h).
TEST(Trainer, OnlineGradientResumesToTheUninterruptedTrajectory) {
  for (const std::string norm : {"none", "ce"}) {
    SCOPED_TRACE("step_norm " + norm);
    auto b = small_synthetic();
    auto logits = 3 * torch::randn({b.pool.size(), 2});
    TempDir d1("full"), d2("part");
    auto o = TrainerOptions().with_epochs(8).with_batch_size(4).with_lr(0.3).with_lr_step(3, 0.5)
                 .with_optimizer("momentum").with_seed(4);
    o.step_norm = norm;
    auto method = [] {
      MethodOptions mo;
      mo.method = "gradient";
      mo.fixed = {0.5, 2.0};
      mo.given_initial = true;
      mo.extra = {{"hypergradient", "online"}, {"mu", 0.9}, {"meta_step", "sign"}, {"gamma", 0.05},
                  {"val_temperature", 0.1}};
      return make_meta_optimizer(mo);
    };
    auto runs = train_and_resume(b, logits, method, o, 5, d1.path(), d2.path());
    const auto& r_full = runs.full;
    const auto& r_part = runs.resumed;
    const auto& full = runs.full_model;
    const auto& part = runs.resumed_model;
    EXPECT_TRUE(r_part.resumed);
    ASSERT_EQ(r_part.trajectory.size(), r_full.trajectory.size());
    bool moved = false;
    for (size_t i = 0; i < r_full.trajectory.size(); ++i) {
      EXPECT_EQ(r_part.trajectory[i].value.lambda1, r_full.trajectory[i].value.lambda1) << i;
      EXPECT_EQ(r_part.trajectory[i].value.temperature, r_full.trajectory[i].value.temperature) << i;
      moved = moved || r_full.trajectory[i].value.lambda1 != 0.5;
    }
    EXPECT_TRUE(moved) << "the online method never moved λ1";
    auto pa = full->parameters(), pb = part->parameters();
    for (size_t i = 0; i < pa.size(); ++i) EXPECT_TRUE(pa[i].equal(pb[i])) << i;
  }
}

TEST(Trainer, RejectsInvalidOptions) {
  EXPECT_THROW(Trainer(TrainerOptions().with_lr(-1)), std::exception);
  EXPECT_THROW(Trainer(TrainerOptions().with_optimizer("rmsprop")), std::exception);
  EXPECT_THROW(Trainer(TrainerOptions().with_epochs(0)), std::exception);
}

// Five samples, confidences chosen away from bin edges, worked by hand with 15 bins:
// bin 13 (0.867, 0.933]: c = 0.90 right, 0.88 wrong -> 2/5·|0.5 − 0.89| = 0.156
// bin 14 (0.933, 1]:     c = 0.95 wrong            -> 1/5·|0 − 0.95|   = 0.190
// bin 9  (0.6, 0.667]:   c = 0.62 right            -> 1/5·|1 − 0.62|   = 0.076
// bin 10 (0.667, 0.733]: c = 0.70 right            -> 1/5·|1 − 0.70|   = 0.060;  ECE = 0.482
TEST(Evaluation, ExpectedCalibrationErrorMatchesAHandComputation) {
  auto p = torch::tensor({{0.90, 0.10}, {0.95, 0.05}, {0.62, 0.38}, {0.30, 0.70}, {0.88, 0.12}},
                         torch::kDouble);
  auto y = torch::tensor({0, 1, 0, 1, 1}, torch::kLong);
  EXPECT_NEAR(expected_calibration_error(p.log(), y), 0.482, 1e-12);
  // One bin: |accuracy − mean confidence| = |3/5 − 0.81|.
  EXPECT_NEAR(expected_calibration_error(p.log(), y, 1), 0.21, 1e-12);
  // Perfectly calibrated at confidence 1: zero.
  EXPECT_NEAR(expected_calibration_error(torch::tensor({{50.0, 0.0}, {0.0, 50.0}}),
                                         torch::tensor({0, 1}, torch::kLong)),
              0.0, 1e-12);
  EXPECT_THROW(expected_calibration_error(p, y.slice(0, 0, 3)), Error);
}

// A confidence on a bin edge belongs to the bin below: bins are (b/B, (b+1)/B]. Two classes with
// equal logits give a confidence of exactly 0.5 (argmax takes the first class): with 2 bins it
// falls in bin 0 with a correct prediction, beside a wrong one at confidence 0.9 in bin 1:
// ECE = (|1 − 0.5| + |0 − 0.9|) / 2 = 0.7 (a floor at the edge would put both in bin 1: 0.2).
TEST(Calibration, AConfidenceOnABinEdgeBelongsToTheBinBelow) {
  auto logits = torch::tensor({{0.0, 0.0}, {std::log(9.0), 0.0}}, torch::kDouble);
  auto labels = torch::tensor({0, 1}, torch::kLong);
  EXPECT_NEAR(expected_calibration_error(logits, labels, 2), 0.7, 1e-12);
}

// Every evaluated epoch logs test cross-entropy, both ECEs and the effective learning rate; for
// plain cross-entropy (λ1 = 1) the effective learning rate is the learning rate itself.
TEST(Trainer, EpochsLogCrossEntropyCalibrationAndEffectiveLearningRate) {
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2}) * 3;
  auto o = TrainerOptions().with_epochs(4).with_batch_size(4).with_lr(0.5).with_seed(3);
  FixedMetaOptimizer ce("none", {1.0, 1.0}), kd("fixed", {0.2, 4.0});
  for (const auto& e : train_student(b, logits, ce, o).history) {
    EXPECT_NEAR(e.effective_lr, 0.5, 1e-9) << e.epoch;
    EXPECT_GT(e.test_loss, 0);
    EXPECT_GE(e.test_ece, 0);
    EXPECT_LE(e.test_ece, 1);
    EXPECT_GE(e.val_ece, 0);
  }
  bool differs = false;
  for (const auto& e : train_student(b, logits, kd, o).history) {
    EXPECT_GT(e.effective_lr, 0) << e.epoch;
    differs = differs || std::abs(e.effective_lr - 0.5) > 1e-3;
  }
  EXPECT_TRUE(differs);
}

// step_norm ce: every step has the cross-entropy gradient's length, so the effective learning
// rate is the learning rate whatever λ; the run differs from the unnormalized one.
TEST(Trainer, StepNormCeGivesCrossEntropyStepLengths) {
  auto b = small_synthetic();
  auto logits = torch::randn({b.pool.size(), 2}) * 3;
  auto o = TrainerOptions().with_epochs(4).with_batch_size(4).with_lr(0.5).with_seed(3);
  FixedMetaOptimizer kd("fixed", {0.2, 4.0}), kd2("fixed", {0.2, 4.0});
  auto normed = train_student(b, logits, kd, TrainerOptions(o).with_step_norm("ce"));
  auto plain = train_student(b, logits, kd2, o);
  // float32 gradients: equal to rounding (the rescale and the norms are float32 sums).
  for (const auto& e : normed.history) EXPECT_NEAR(e.effective_lr, 0.5, 1e-6) << e.epoch;
  EXPECT_NE(normed.history.back().train_loss, plain.history.back().train_loss);
  EXPECT_THROW(TrainerOptions(o).with_step_norm("unit").validate(), Error);
}

// A learned method whose meta-steps are too small to move λ (γ = 1e-30, so λ + γ·g == λ in
// double) trains exactly as the fixed method at the same λ: its hyper-steps (virtual steps,
// extra forwards through BatchNorm in train mode, tangents, validation batches, trajectory fits)
// leave no trace on the weights, the BatchNorm statistics, the optimizer's state or the data
// order. A trace would make every learned row differ from a fixed row for reasons other than λ.
TEST(Trainer, HyperStepsThatDoNotMoveLambdaLeaveTrainingUntouched) {
  // 96 random 1×8×8 images of 3 classes (brightness tells the class): 64 train, 16 val, 16 test.
  torch::manual_seed(5);
  auto y = torch::randint(3, {112}, torch::kLong);
  auto x = torch::randn({112, 1, 8, 8}) + y.to(torch::kFloat).view({112, 1, 1, 1});
  DataSet pool, test;
  pool.x = x.slice(0, 0, 96);
  pool.y = y.slice(0, 0, 96);
  test.x = x.slice(0, 96);
  test.y = y.slice(0, 96);
  DataSet val = pool.select(torch::arange(64, 96, torch::kLong));
  const auto teacher = 2.0 * torch::randn({96, 3});
  struct Run {
    std::vector<torch::Tensor> state;  // parameters and buffers
    TrainResult result;
  };
  const auto run = [&](const std::string& method, nlohmann::json settings,
                       const std::string& optimizer) {
    MethodOptions mo;
    mo.method = method;
    mo.fixed = {0.5, 2.0};
    mo.given_initial = true;
    mo.extra = std::move(settings);
    auto meta = make_meta_optimizer(mo);
    seed_everything(9);
    auto model = make_model(ModelSpec("conv-tiny", 3, {1, 8, 8}));
    FitData fit;
    fit.train_set = &pool;
    fit.train_ids = torch::arange(64, torch::kLong);
    fit.val_set = &val;
    fit.test_set = &test;
    fit.teacher_logits = teacher;
    auto o = TrainerOptions().with_epochs(3).with_batch_size(16).with_lr(0.05).with_seed(9)
                 .with_optimizer(optimizer);
    o.weight_decay = 1e-3;
    o.val_batch_size = 8;
    Run r;
    r.result = Trainer(o).fit(*model, fit, *meta);
    for (const auto& p : model->parameters()) r.state.push_back(p.detach().clone());
    for (const auto& b : model->buffers()) r.state.push_back(b.detach().clone());
    return r;
  };
  const nlohmann::json online = {{"hypergradient", "online"}, {"mu", 1.0}, {"meta_step", "adam"},
                                 {"tangent_batch", 4},        {"gamma", 1e-30}};
  const std::vector<std::pair<std::string, nlohmann::json>> learned = {
      {"gradient", {{"hypergradient", "exact"}, {"order", "before"}, {"gamma", 1e-30}}},
      {"gradient", {{"hypergradient", "exact"}, {"order", "lagged"}, {"gamma", 1e-30}}},
      {"gradient", {{"hypergradient", "fd"}, {"fd_scheme", "central"}, {"gamma", 1e-30}}},
      {"gradient", online},
      {"proposed", {{"e1", 3}, {"e2", 2}, {"gamma", 1e-30}}},
      {"proposed", online},
  };
  for (const std::string optimizer : {"sgd", "momentum", "adam"}) {
    const Run fixed = run("fixed", nlohmann::json::object(), optimizer);
    for (const auto& [method, settings] : learned) {
      const Run r = run(method, settings, optimizer);
      const std::string what = optimizer + " " + method + " " + settings.dump();
      ASSERT_EQ(r.result.trajectory.size(), 12u) << what;
      EXPECT_EQ(r.result.trajectory.back().value.lambda1, 0.5) << what;
      EXPECT_EQ(r.result.trajectory.back().value.temperature, 2.0) << what;
      ASSERT_EQ(r.state.size(), fixed.state.size());
      for (size_t i = 0; i < r.state.size(); ++i)
        EXPECT_TRUE(r.state[i].equal(fixed.state[i])) << what << ": tensor " << i;
      for (size_t e = 0; e < r.result.history.size(); ++e)
        EXPECT_EQ(r.result.history[e].train_loss, fixed.result.history[e].train_loss) << what;
    }
  }
}
