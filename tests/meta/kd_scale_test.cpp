// The two ways to close the learning-rate channel of the metaparameters: the T² scale of the
// distillation term (kd_scale: t_squared) and the step rescaled to the cross-entropy gradient's
// length (step_norm: ce), in the loss and the hypergradients, against a hand computation and
// float64 brute force through the optimizer's real step.
#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/models/classifier.h"
#include "test_util.h"

using namespace metadistill;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

struct Problem {
  Classifier model;
  std::unique_ptr<torch::optim::Optimizer> opt;
  Batch train, val;
  torch::Tensor teacher;
};

Problem make_problem(const std::string& kind) {
  torch::manual_seed(5);
  Problem p;
  // Smooth in w: with ReLU units the fd differences, taken along Adam's P·v (huge where a dead
  // unit's second moment is 0), would cross kinks.
  p.model = make_model(ModelSpec("logreg", 3, {4}));
  p.model->to(torch::kDouble);
  p.train.x = torch::randn({8, 4}, kF64);
  p.train.y = torch::randint(3, {8}, torch::kLong);
  p.val.x = torch::randn({10, 4}, kF64);
  p.val.y = torch::randint(3, {10}, torch::kLong);
  p.teacher = 2 * torch::randn({8, 3}, kF64);
  auto params = p.model->parameters();
  if (kind == "adam")
    p.opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(0.05));
  else
    p.opt = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(0.3).momentum(kind == "momentum" ? 0.9 : 0.0));
  for (int i = 0; i < 2; ++i) {
    p.opt->zero_grad();
    functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, 0.6, 2.0,
                            KdScale::kTSquared)
        .backward();
    p.opt->step();
  }
  return p;
}

double val_after_step(const std::string& kind, Metaparameters m, KdScale scale) {
  auto p = make_problem(kind);
  p.opt->zero_grad();
  functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, m.lambda1,
                          m.temperature, scale)
      .backward();
  p.opt->step();
  return validation_loss(*p.model, p.val, 1.0).item<double>();
}

// exact (JVP and double backward) and fd hypergradients with `base`'s loss options against the
// brute-force derivatives (fd: ε = 0.01/‖u‖, error O(ε²)).
void expect_hypergradients_match(const std::string& kind, Metaparameters at,
                                 const HypergradientOptions& base, double bf_l1, double bf_t) {
  const double lr = kind == "adam" ? 0.05 : 0.3;
  for (const auto& [mode, product, tol] :
       {std::tuple<std::string, std::string, double>{"exact", "jvp", 1e-6},
        {"exact", "reverse", 1e-6},
        {"fd", "jvp", 1e-4}}) {
    auto p = make_problem(kind);
    auto h = greedy_hypergradient(
        *p.model, *p.opt, kind, lr, p.train, p.teacher, p.val, at,
        HypergradientOptions(base).with_mode(mode).with_exact_product(product).with_val_temperature(1.0));
    EXPECT_NEAR(h.lambda1, bf_l1, tol * std::max(1.0, std::abs(bf_l1)) + 1e-9) << mode << " " << product;
    EXPECT_NEAR(h.temperature, bf_t, tol * std::max(1.0, std::abs(bf_t)) + 1e-9)
        << mode << " " << product;
  }
}

}  // namespace

// L = λ1·CE + (1 − λ1)·T²·KD, by hand on one sample: z = (1, 0), teacher (0, 2), y = 0, λ1 = 0.25,
// T = 2. CE = log(1 + e^−1); KD = −Σ σ(f/T)·log σ(z/T) with σ(f/T) = (1, e)/(1 + e) and
// log σ(z/T) = (−log(1 + e^−½), −½ − log(1 + e^−½)).
TEST(KdScale, TSquaredMultipliesTheDistillationTermByTSquared) {
  auto z = torch::tensor({{1.0, 0.0}}, kF64), f = torch::tensor({{0.0, 2.0}}, kF64);
  auto y = torch::tensor({0}, torch::kLong);
  const double ce = std::log1p(std::exp(-1.0));
  const double e = std::exp(1.0), a = std::log1p(std::exp(-0.5));
  const double kd = (1 / (1 + e)) * a + (e / (1 + e)) * (0.5 + a);
  EXPECT_NEAR(functional::hinton_loss(z, f, y, 0.25, 2.0).item<double>(), 0.25 * ce + 0.75 * kd,
              1e-14);
  EXPECT_NEAR(functional::hinton_loss(z, f, y, 0.25, 2.0, KdScale::kTSquared).item<double>(),
              0.25 * ce + 0.75 * 4.0 * kd, 1e-14);
  EXPECT_EQ(parse_kd_scale("t_squared"), KdScale::kTSquared);
  EXPECT_EQ(parse_kd_scale("none"), KdScale::kNone);
  metadistill::testing::expect_error([] { parse_kd_scale("T2"); }, {"kd_scale 'T2'"});
}

class KdScaleHypergradient : public ::testing::TestWithParam<std::string> {};

// With the T² scale, exact (JVP and double backward) and fd hypergradients equal the brute-force
// derivative of L_val(U(w, λ)) through the optimizer's real step.
TEST_P(KdScaleHypergradient, MatchesBruteForceWithTheTSquaredScale) {
  const std::string kind = GetParam();
  const Metaparameters at{0.4, 2.5};
  const double d = 1e-5;
  const double bf_l1 = (val_after_step(kind, {at.lambda1 + d, at.temperature}, KdScale::kTSquared) -
                        val_after_step(kind, {at.lambda1 - d, at.temperature}, KdScale::kTSquared)) /
                       (2 * d);
  const double bf_t = (val_after_step(kind, {at.lambda1, at.temperature + d}, KdScale::kTSquared) -
                       val_after_step(kind, {at.lambda1, at.temperature - d}, KdScale::kTSquared)) /
                      (2 * d);
  // The unscaled loss has another derivative: the check can tell the two apart.
  const double bf_t_none = (val_after_step(kind, {at.lambda1, at.temperature + d}, KdScale::kNone) -
                            val_after_step(kind, {at.lambda1, at.temperature - d}, KdScale::kNone)) /
                           (2 * d);
  EXPECT_GT(std::abs(bf_t - bf_t_none), 1e-3 * std::abs(bf_t));
  expect_hypergradients_match(kind, at, HypergradientOptions().with_kd_scale(KdScale::kTSquared),
                              bf_l1, bf_t);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, KdScaleHypergradient,
                         ::testing::Values("sgd", "momentum", "adam"));

namespace {

// L_val after one real step whose gradient is rescaled to the length of ∇CE (step_norm: ce),
// written out here independently of the trainer.
double val_after_normed_step(const std::string& kind, Metaparameters m) {
  auto p = make_problem(kind);
  p.opt->zero_grad();
  auto z = p.model->forward(p.train.x);
  functional::hinton_loss(z, p.teacher, p.train.y, m.lambda1, m.temperature)
      .backward({}, /*retain_graph=*/true);
  std::vector<torch::Tensor> params = p.model->parameters();
  auto ce_grads = torch::autograd::grad({torch::nn::functional::cross_entropy(z, p.train.y)}, params);
  double ce2 = 0, g2 = 0;
  for (size_t i = 0; i < params.size(); ++i) {
    ce2 += ce_grads[i].pow(2).sum().item<double>();
    g2 += params[i].grad().pow(2).sum().item<double>();
  }
  {
    torch::NoGradGuard no_grad;
    for (auto& w : params) w.grad().mul_(std::sqrt(ce2 / g2));
  }
  p.opt->step();
  return validation_loss(*p.model, p.val, 1.0).item<double>();
}

}  // namespace

class StepNormHypergradient : public ::testing::TestWithParam<std::string> {};

// step_norm ce: the hypergradient through the normalized step, exact and fd, against brute force;
// the normalization changes the derivative (so the check can tell).
TEST_P(StepNormHypergradient, MatchesBruteForceThroughTheNormalizedStep) {
  const std::string kind = GetParam();
  const Metaparameters at{0.4, 2.5};
  const double d = 1e-5;
  const double bf_l1 = (val_after_normed_step(kind, {at.lambda1 + d, at.temperature}) -
                        val_after_normed_step(kind, {at.lambda1 - d, at.temperature})) / (2 * d);
  const double bf_t = (val_after_normed_step(kind, {at.lambda1, at.temperature + d}) -
                       val_after_normed_step(kind, {at.lambda1, at.temperature - d})) / (2 * d);
  const double plain_l1 = (val_after_step(kind, {at.lambda1 + d, at.temperature}, KdScale::kNone) -
                           val_after_step(kind, {at.lambda1 - d, at.temperature}, KdScale::kNone)) /
                          (2 * d);
  EXPECT_GT(std::abs(bf_l1 - plain_l1), 1e-3 * std::abs(bf_l1));
  expect_hypergradients_match(kind, at,
                              HypergradientOptions().with_step_norm(StepNorm::kCrossEntropy),
                              bf_l1, bf_t);
  metadistill::testing::expect_error([] { parse_step_norm("length"); }, {"step_norm 'length'"});
}

INSTANTIATE_TEST_SUITE_P(Optimizers, StepNormHypergradient,
                         ::testing::Values("sgd", "momentum", "adam"));
