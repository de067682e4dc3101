#include "metadistill/meta/trajectory.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/data/synthetic.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/train/teacher.h"
#include "metadistill/train/trainer.h"
#include "metadistill/util/error.h"
#include "metadistill/util/runtime.h"

using namespace metadistill;

TEST(LineFit, RecoversAKnownLineWithRSquaredOne) {
  std::vector<double> v;
  for (int z = 1; z <= 10; ++z) v.push_back(0.25 * z - 1.5);
  auto f = fit_line(v);
  EXPECT_NEAR(f.slope, 0.25, 1e-12);
  EXPECT_NEAR(f.intercept, -1.5, 1e-12);
  EXPECT_NEAR(f.r2, 1.0, 1e-12);
  EXPECT_NEAR(f.at(15), 0.25 * 15 - 1.5, 1e-12);
  auto flat = fit_line(std::vector<double>(5, 0.3));
  EXPECT_NEAR(flat.slope, 0.0, 1e-15);
  EXPECT_EQ(flat.r2, 1.0);
}

TEST(LineFit, NoisyWindowHasLowRSquared) {
  auto f = fit_line({1, -1, 1, -1, 1, -1, 1, -1});
  EXPECT_LT(f.r2, 0.2);
  EXPECT_THROW(fit_line({1.0}), std::exception);
}

// The schedule over a three-coordinate space: e1 recorded points, then e2 points on the lines
// at z = e1 + 1..e1 + e2, repeated on the global step counter; guarded, a projected coordinate's
// line leaving its interval cuts the phase short, and a state taken mid-phase continues it.
TEST(TrajectoryPredictor, AlternatesRecordsAndExtrapolationsOverAnySpace) {
  const auto space = MetaSpace().simplex({"p", "q"}).interval("beta", 0.0, 1.0);
  TrajectoryPredictor tp(TrajectoryPredictorOptions().e1(3).e2(2), space);
  auto coords = [](double z) { return std::vector<double>{0.5 * z, -z, 0.1 + 0.05 * z}; };
  int64_t step = 0;
  for (int window = 0; window < 2; ++window) {
    for (int k = 1; k <= 3; ++k, ++step) {
      EXPECT_FALSE(tp.predict(step).has_value()) << step;
      EXPECT_EQ(tp.record(coords(k), step), k == 3) << step;
    }
    ASSERT_EQ(tp.fits().size(), 3u);
    EXPECT_NEAR(tp.fits()[2].r2, 1.0, 1e-12);
    for (int k = 1; k <= 2; ++k, ++step) {
      auto c = tp.predict(step);
      ASSERT_TRUE(c.has_value()) << step;
      for (size_t i = 0; i < 3; ++i) EXPECT_NEAR((*c)[i], coords(3 + k)[i], 1e-12) << step;
    }
  }
  EXPECT_FALSE(tp.predict(step).has_value());

  // Guarded: β = 0.3 z reaches 1.2 > 1 at z = 4, so no step is extrapolated; a poor fit neither.
  TrajectoryPredictor guarded(TrajectoryPredictorOptions().e1(3).e2(2).guarded(true), space);
  for (int k = 1; k <= 3; ++k) guarded.record({0, 0, 0.3 * k}, k - 1);
  EXPECT_FALSE(guarded.predict(3).has_value());
  for (int k = 1; k <= 3; ++k) guarded.record({k % 2 * 1.0, 0, 0.5}, 3 + k - 1);
  EXPECT_LT(guarded.fits()[0].r2, 0.5);
  EXPECT_FALSE(guarded.predict(6).has_value());

  // Mid-phase state: the copy extrapolates what the original does.
  TrajectoryPredictor a(TrajectoryPredictorOptions().e1(2).e2(3), space);
  a.record(coords(1), 0);
  a.record(coords(2), 1);
  ASSERT_TRUE(a.predict(2).has_value());
  TrajectoryPredictor b(TrajectoryPredictorOptions().e1(2).e2(3), space);
  b.load_state(nlohmann::json::parse(a.state().dump()));
  for (int64_t s = 3; s < 6; ++s) EXPECT_EQ(a.predict(s), b.predict(s)) << s;
  EXPECT_THROW(TrajectoryPredictor(TrajectoryPredictorOptions().e1(2), hinton_space())
                   .load_state(a.state()),
               Error);
}

// `proposed` checkpoints written before the predictor kept its state at the top level, as
// window1/window2 and fit1/fit2 (the 50-epoch runs in results/ hold such checkpoints): read
// back, they continue the extrapolation they were in.
TEST(TrajectoryPredictor, ReadsTheTwoCoordinateStateOfOlderCheckpoints) {
  const nlohmann::json old = {{"lambda1", 0.4}, {"temperature", 2.0},
                              {"window1", {0.5}}, {"window2", {3.0}},
                              {"fit1", {0.1, 0.2, 0.9}}, {"fit2", {-0.5, 4.0, 1.0}},
                              {"predict_len", 3}, {"phase_start", 10}, {"predicting", true}};
  TrajectoryPredictor tp(TrajectoryPredictorOptions().e1(4).e2(3), hinton_space());
  tp.load_state(old);
  ASSERT_EQ(tp.fits().size(), 2u);
  EXPECT_EQ(tp.fits()[0].r2, 0.9);
  const auto c = tp.predict(11);  // k = 2, z = e1 + 2 = 6
  ASSERT_TRUE(c.has_value());
  EXPECT_DOUBLE_EQ((*c)[0], 0.1 * 6 + 0.2);
  EXPECT_DOUBLE_EQ((*c)[1], -0.5 * 6 + 4.0);
  // One recorded point is kept: three more fill the window of 4 after the phase.
  EXPECT_TRUE(tp.predict(12).has_value());
  EXPECT_FALSE(tp.predict(13).has_value());
  EXPECT_FALSE(tp.record({0.5, 3.0}, 13));
  EXPECT_FALSE(tp.record({0.5, 3.0}, 14));
  EXPECT_TRUE(tp.record({0.5, 3.0}, 15));
}

namespace {

struct Run {
  TrainResult result;
  Metaparameters initial, final;
};

Run synthetic_run(const std::string& method, nlohmann::json settings, int64_t steps,
                  Metaparameters initial = {0.9, 2.0}) {
  static const DataBundle b = make_synthetic(SyntheticOptions::reference_preset());
  // The paper's teacher: logistic regression on the teacher's features, full-batch SGD.
  static const torch::Tensor teacher = [] {
    seed_everything(0);
    auto t = make_model(ModelSpec("logreg", 2, {3}));
    FitData fit;
    fit.train_set = &b.teacher_train;
    fit.train_ids = torch::arange(b.teacher_train.size(), torch::kLong);
    DataSet test = teacher_view(b.test);
    fit.test_set = &test;
    FixedMetaOptimizer plain("teacher", {1.0, 1.0});
    Trainer(TrainerOptions().with_epochs(5000).with_batch_size(0).with_lr(0.01).with_lr_step(0, 1.0)
                .with_eval_every(5000))
        .fit(*t, fit, plain);
    return predict_logits(*t, b.pool.x_teacher);
  }();
  MethodOptions mo;
  mo.method = method;
  mo.fixed = initial;
  mo.given_initial = true;
  mo.extra = std::move(settings);
  auto meta = make_meta_optimizer(mo);
  seed_everything(0);
  auto model = make_model(ModelSpec("logreg", 2, {3}));
  FitData fit;
  fit.train_set = &b.pool;
  fit.train_ids = b.train_idx;
  DataSet val = b.validation();
  fit.val_set = &val;
  fit.test_set = &b.test;
  fit.teacher_logits = teacher;
  Trainer trainer(TrainerOptions().with_epochs(steps).with_batch_size(0).with_lr(1.0).with_lr_step(0, 1.0));
  Run r;
  r.initial = meta->current();
  r.result = trainer.fit(*model, fit, *meta);
  r.final = meta->current();
  return r;
}

}  // namespace

// The proposed method alternates e1 hyper-steps with e2 extrapolated steps on a global counter,
// extrapolates along the fitted line and keeps every value inside the domain.
TEST(ProposedMethod, AlternatesPhasesAndExtrapolatesInsideTheDomain) {
  auto r = synthetic_run("proposed", {{"e1", 4}, {"e2", 3}, {"gamma", 5.0}, {"val_temperature", 0.1}}, 70);
  const auto& t = r.result.trajectory;
  ASSERT_EQ(t.size(), 70u);
  int64_t hyper = 0;
  for (size_t s = 0; s < t.size(); ++s) {
    const bool expect_hyper = (s % 7) < 4;
    EXPECT_EQ(t[s].phase, expect_hyper ? "hyper" : "predict") << s;
    hyper += t[s].phase == "hyper";
    EXPECT_GE(t[s].value.lambda1, 0.0);
    EXPECT_LE(t[s].value.lambda1, 1.0);
    EXPECT_GE(t[s].value.temperature, 0.1);
    EXPECT_LE(t[s].value.temperature, 10.0);
  }
  EXPECT_EQ(r.result.hyper_steps, hyper);
  // Within a prediction phase, unclamped values lie on one line: equal increments.
  for (size_t s = 0; s + 2 < t.size(); ++s) {
    if (t[s].phase == "predict" && t[s + 1].phase == "predict" && t[s + 2].phase == "predict") {
      const auto& a = t[s].value; const auto& b = t[s + 1].value; const auto& c = t[s + 2].value;
      if (a.lambda1 > 0 && c.lambda1 > 0 && a.lambda1 < 1 && c.lambda1 < 1)
        EXPECT_NEAR(b.lambda1 - a.lambda1, c.lambda1 - b.lambda1, 1e-9) << s;
    }
  }
}

// Each prediction phase follows the least-squares line through the e1 values the window recorded,
// at z = e1 + 1 .. e1 + e2 (paper Algorithm 1): the line is fitted here in closed form, apart from
// fit_line, so an extrapolation run backwards (z = e1 − k) or off by one (z = e1 + k − 1) fails.
TEST(ProposedMethod, PredictionsFollowTheWindowsLeastSquaresLine) {
  const int64_t e1 = 5, e2 = 4;
  auto r = synthetic_run("proposed", {{"e1", e1}, {"e2", e2}, {"gamma", 2.0}, {"val_temperature", 0.1}},
                         5 * (e1 + e2), {0.6, 3.0});
  const auto& t = r.result.trajectory;
  ASSERT_EQ(t.size(), static_cast<size_t>(5 * (e1 + e2)));
  auto line_at = [&](size_t window_start, double z, bool temperature) {
    double zbar = (e1 + 1) / 2.0, vbar = 0;
    for (int64_t k = 0; k < e1; ++k)
      vbar += temperature ? t[window_start + k].value.temperature : t[window_start + k].value.lambda1;
    vbar /= static_cast<double>(e1);
    double sxy = 0, sxx = 0;
    for (int64_t k = 0; k < e1; ++k) {
      const double v =
          temperature ? t[window_start + k].value.temperature : t[window_start + k].value.lambda1;
      sxy += (k + 1 - zbar) * (v - vbar);
      sxx += (k + 1 - zbar) * (k + 1 - zbar);
    }
    return vbar + sxy / sxx * (z - zbar);
  };
  int64_t checked = 0;
  for (size_t start = 0; start + e1 + e2 <= t.size(); start += e1 + e2) {
    for (int64_t k = 0; k < e1; ++k) ASSERT_EQ(t[start + k].phase, "hyper") << start + k;
    for (int64_t k = 1; k <= e2; ++k) {
      const auto& row = t[start + e1 + k - 1];
      ASSERT_EQ(row.phase, "predict") << start + e1 + k - 1;
      const double l1 = line_at(start, static_cast<double>(e1 + k), false);
      const double tt = line_at(start, static_cast<double>(e1 + k), true);
      // Outside the domain the value is projected; only the unclamped points pin the line.
      if (l1 > 0 && l1 < 1) {
        EXPECT_NEAR(row.value.lambda1, l1, 1e-9) << "window at " << start << ", k " << k;
        ++checked;
      }
      if (tt > Metaparameters::kMinTemperature && tt < Metaparameters::kMaxTemperature) {
        EXPECT_NEAR(row.value.temperature, tt, 1e-9) << "window at " << start << ", k " << k;
        ++checked;
      }
    }
  }
  EXPECT_GE(checked, 20);
  // The line moves: a constant window would not tell the directions of z apart.
  EXPECT_GT(std::abs(t[e1 - 1].value.lambda1 - t[0].value.lambda1) +
                std::abs(t[e1 - 1].value.temperature - t[0].value.temperature),
            1e-3);
}

TEST(ProposedMethod, GuardedVariantFallsBackOnPoorFits) {
  auto plain = synthetic_run("proposed", {{"e1", 5}, {"e2", 5}, {"val_temperature", 0.1}}, 60);
  auto guarded = synthetic_run("proposed-guarded",
                               {{"e1", 5}, {"e2", 5}, {"r2_threshold", 1.0}, {"val_temperature", 0.1}}, 60);
  // With an unreachable R² threshold the guarded variant never extrapolates.
  EXPECT_EQ(guarded.result.hyper_steps, 60);
  EXPECT_EQ(plain.result.hyper_steps, 30);
}

// On the authors' synthetic data (reference variant, T_val = 0.1, full-batch SGD lr 1.0), the
// gradient method moves λ1 towards the distillation term and beats `none`.
TEST(GradientMethod, IntegrationSyntheticMovesTowardsDistillationAndBeatsNone) {
  auto none = synthetic_run("none", nlohmann::json::object(), 2000, {1.0, 1.0});
  auto grad = synthetic_run("gradient", {{"gamma", 0.1}, {"val_temperature", 0.1}}, 2000, {0.9, 1.0});
  EXPECT_LT(grad.final.lambda1, grad.initial.lambda1 - 0.2);
  EXPECT_GT(grad.result.final_test_accuracy, none.result.final_test_accuracy + 0.05);
}
