// The optimizer's virtual step (meta/virtual_step.h): the step it predicts is the one the optimizer
// then takes, and its diagonal Jacobian P agrees with central differences of the step in the
// gradient, for SGD, momentum and Adam with weight decay, in float64.
#include "metadistill/meta/virtual_step.h"

#include <gtest/gtest.h>

#include <memory>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

// Two float64 parameters and an optimizer of `kind` that has taken two steps (so that momentum
// buffers and Adam's moments hold something).
struct Setup {
  std::vector<torch::Tensor> params;
  std::unique_ptr<torch::optim::Optimizer> opt;
  double lr = 0.05;
};

Setup setup(const std::string& kind) {
  torch::manual_seed(5);
  Setup s;
  s.params = {torch::randn({3, 2}, torch::kDouble).requires_grad_(),
              torch::randn({4}, torch::kDouble).requires_grad_()};
  if (kind == "adam")
    s.opt = std::make_unique<torch::optim::Adam>(
        s.params, torch::optim::AdamOptions(s.lr).weight_decay(0.01));
  else
    s.opt = std::make_unique<torch::optim::SGD>(
        s.params,
        torch::optim::SGDOptions(s.lr).momentum(kind == "momentum" ? 0.9 : 0.0).weight_decay(0.01));
  for (int k = 0; k < 2; ++k) {
    s.opt->zero_grad();
    (s.params[0].pow(2).sum() + s.params[1].sin().sum()).backward();
    s.opt->step();
  }
  return s;
}

std::vector<torch::Tensor> random_gradients(const Setup& s) {
  std::vector<torch::Tensor> g;
  for (const auto& p : s.params) g.push_back(torch::randn_like(p));
  return g;
}

TEST(VirtualStep, PredictsTheOptimizersNextStep) {
  for (const std::string kind : {"sgd", "momentum", "adam"}) {
    auto s = setup(kind);
    const auto g = random_gradients(s);
    const auto vs = virtual_step(s.params, g, *s.opt, kind, s.lr);
    std::vector<torch::Tensor> before;
    for (size_t i = 0; i < s.params.size(); ++i) {
      before.push_back(s.params[i].detach().clone());
      s.params[i].mutable_grad() = g[i].clone();
    }
    s.opt->step();
    for (size_t i = 0; i < s.params.size(); ++i)
      EXPECT_TRUE(torch::allclose(before[i] - vs.step[i], s.params[i], 1e-12, 1e-14))
          << kind << " " << i;
  }
}

TEST(VirtualStep, PreconditionerIsTheStepsDiagonalJacobianInTheGradient) {
  const double delta = 1e-6;
  for (const std::string kind : {"sgd", "momentum", "adam"}) {
    auto s = setup(kind);
    const auto g = random_gradients(s);
    const auto vs = virtual_step(s.params, g, *s.opt, kind, s.lr);
    for (size_t i = 0; i < s.params.size(); ++i)
      for (int64_t j = 0; j < s.params[i].numel(); ++j) {
        auto gp = g, gm = g;
        gp[i] = g[i].clone();
        gm[i] = g[i].clone();
        gp[i].view(-1)[j] += delta;
        gm[i].view(-1)[j] -= delta;
        const auto plus = virtual_step(s.params, gp, *s.opt, kind, s.lr).step[i].view(-1)[j];
        const auto minus = virtual_step(s.params, gm, *s.opt, kind, s.lr).step[i].view(-1)[j];
        // w' = w − step, so P = −(1/γ) ∂w'/∂g = (1/γ) ∂step/∂g.
        const double fd = ((plus - minus) / (2 * delta * s.lr)).item<double>();
        const double p = vs.preconditioner.empty() ? 1.0
                                                   : vs.preconditioner[i].view(-1)[j].item<double>();
        EXPECT_NEAR(p, fd, 1e-6 * std::max(1.0, std::abs(fd))) << kind << " " << i << " " << j;
      }
  }
}

TEST(VirtualStep, WeightDecaysComeFromEachParametersGroup) {
  auto a = torch::zeros({2}, torch::kDouble).requires_grad_();
  auto b = torch::zeros({3}, torch::kDouble).requires_grad_();
  std::vector<torch::optim::OptimizerParamGroup> groups;
  groups.emplace_back(std::vector<torch::Tensor>{a},
                      std::make_unique<torch::optim::SGDOptions>(
                          torch::optim::SGDOptions(0.1).weight_decay(0.5)));
  groups.emplace_back(std::vector<torch::Tensor>{b},
                      std::make_unique<torch::optim::SGDOptions>(
                          torch::optim::SGDOptions(0.1).weight_decay(0.0)));
  torch::optim::SGD sgd(groups, torch::optim::SGDOptions(0.1));
  EXPECT_EQ(parameter_weight_decays({b, a}, sgd, "sgd"), (std::vector<double>{0.0, 0.5}));
  auto stranger = torch::zeros({1}, torch::kDouble).requires_grad_();
  expect_error([&] { parameter_weight_decays({stranger}, sgd, "sgd"); }, {"group"});
}

}  // namespace
}  // namespace metadistill
