#include "metadistill/losses/hinton.h"

#include <gtest/gtest.h>

#include <cmath>

using namespace metadistill;

namespace {
auto f64 = torch::TensorOptions().dtype(torch::kDouble);

// Hand computation of the paper's formula with plain loops.
double hand_hinton(const std::vector<std::vector<double>>& g, const std::vector<std::vector<double>>& f,
                   const std::vector<int64_t>& y, double l1, double T) {
  double ce = 0, kd = 0;
  for (size_t b = 0; b < g.size(); ++b) {
    double zg = 0, zgT = 0, zfT = 0;
    for (size_t k = 0; k < g[b].size(); ++k) {
      zg += std::exp(g[b][k]);
      zgT += std::exp(g[b][k] / T);
      zfT += std::exp(f[b][k] / T);
    }
    ce += -(g[b][y[b]] - std::log(zg));
    for (size_t k = 0; k < g[b].size(); ++k)
      kd += -(std::exp(f[b][k] / T) / zfT) * (g[b][k] / T - std::log(zgT));
  }
  const double n = static_cast<double>(g.size());
  return l1 * ce / n + (1 - l1) * kd / n;
}
}  // namespace

TEST(Hinton, MatchesHandComputationInFloat64) {
  std::vector<std::vector<double>> g = {{1.0, -2.0, 0.5}, {0.3, 0.2, -1.0}};
  std::vector<std::vector<double>> f = {{2.0, 0.0, -1.0}, {-0.5, 1.5, 0.1}};
  std::vector<int64_t> y = {0, 2};
  auto G = torch::tensor({1.0, -2.0, 0.5, 0.3, 0.2, -1.0}, f64).view({2, 3});
  auto F = torch::tensor({2.0, 0.0, -1.0, -0.5, 1.5, 0.1}, f64).view({2, 3});
  auto Y = torch::tensor({0, 2}, torch::kLong);
  for (double l1 : {0.0, 0.3, 1.0})
    for (double T : {0.1, 1.0, 4.0}) {
      const double got = functional::hinton_loss(G, F, Y, l1, T).item<double>();
      EXPECT_NEAR(got, hand_hinton(g, f, y, l1, T), 1e-12) << "lambda1=" << l1 << " T=" << T;
    }
}

TEST(Hinton, LambdaOneIsPlainCrossEntropyWithoutTeacher) {
  torch::manual_seed(0);
  auto G = torch::randn({5, 4}, f64);
  auto Y = torch::tensor({0, 1, 2, 3, 0}, torch::kLong);
  auto ce = torch::nn::functional::cross_entropy(G, Y);
  EXPECT_NEAR(functional::hinton_loss(G, torch::Tensor(), Y, 1.0, 3.0).item<double>(),
              ce.item<double>(), 1e-14);
}

TEST(Hinton, LambdaZeroIsKlDivergencePlusTeacherEntropy) {
  torch::manual_seed(1);
  auto G = torch::randn({6, 5}, f64), F = torch::randn({6, 5}, f64);
  auto Y = torch::zeros({6}, torch::kLong);
  const double T = 2.5;
  auto p = torch::softmax(F / T, 1);
  auto kl = (p * (torch::log(p) - torch::log_softmax(G / T, 1))).sum(1).mean();
  auto entropy = -(p * torch::log(p)).sum(1).mean();
  EXPECT_NEAR(functional::hinton_loss(G, F, Y, 0.0, T).item<double>(),
              (kl + entropy).item<double>(), 1e-12);
}

TEST(Hinton, StableForExtremeLogitsAndSmallTemperature) {
  auto G = torch::tensor({1000.0, -1000.0, 0.0}, f64).view({1, 3});
  auto F = torch::tensor({-800.0, 900.0, 0.0}, f64).view({1, 3});
  auto Y = torch::tensor({1}, torch::kLong);
  auto loss = functional::hinton_loss(G, F, Y, 0.5, 0.1);
  EXPECT_TRUE(std::isfinite(loss.item<double>()));
}

TEST(Hinton, GradientWithRespectToMetaparametersMatchesCentralDifference) {
  torch::manual_seed(2);
  auto G = torch::randn({4, 3}, f64), F = torch::randn({4, 3}, f64);
  auto Y = torch::tensor({0, 1, 2, 1}, torch::kLong);
  auto l1 = torch::tensor(0.4, f64).requires_grad_(), T = torch::tensor(1.7, f64).requires_grad_();
  auto loss = functional::hinton_loss(G, F, Y, l1, T);
  auto grads = torch::autograd::grad({loss}, {l1, T});
  const double d = 1e-6;
  auto at = [&](double a, double t) { return functional::hinton_loss(G, F, Y, a, t).item<double>(); };
  EXPECT_NEAR(grads[0].item<double>(), (at(0.4 + d, 1.7) - at(0.4 - d, 1.7)) / (2 * d), 1e-8);
  EXPECT_NEAR(grads[1].item<double>(), (at(0.4, 1.7 + d) - at(0.4, 1.7 - d)) / (2 * d), 1e-8);
}

TEST(Hinton, RejectsInvalidMetaparameters) {
  auto G = torch::zeros({1, 2}), Y = torch::zeros({1}, torch::kLong);
  for (auto [l1, T] : std::vector<std::pair<double, double>>{
           {-0.1, 1.0}, {1.5, 1.0}, {0.5, 0.0}, {0.5, -2.0}, {NAN, 1.0}, {0.5, INFINITY}}) {
    try {
      functional::hinton_loss(G, G, Y, l1, T);
      ADD_FAILURE() << "accepted lambda1=" << l1 << " T=" << T;
    } catch (const std::exception& e) {
      const std::string msg = e.what();
      EXPECT_TRUE(msg.find("lambda1") != std::string::npos || msg.find("temperature") != std::string::npos)
          << msg;
    }
  }
}
