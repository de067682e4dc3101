// Moving parameter lists in place (meta/parameter_ops.h): snapshots are copies, assignments are
// exact and leave no autograd record, gradients of an unreached parameter are zeros, and buffers
// come back after a guarded pass.
#include "metadistill/meta/parameter_ops.h"

#include <gtest/gtest.h>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

TEST(ParameterOps, TrainableParametersSkipFrozenOnes) {
  torch::nn::Linear a(2, 3), b(3, 1);
  torch::nn::Sequential net(a, b);
  a->bias.set_requires_grad(false);
  const auto params = trainable_parameters(*net);
  ASSERT_EQ(params.size(), 3u);
  for (const auto& p : params) EXPECT_TRUE(p.requires_grad());
}

TEST(ParameterOps, SnapshotsAreCopiesAndAssignmentsAreExact) {
  torch::manual_seed(3);
  std::vector<torch::Tensor> params = {torch::randn({4}, torch::kDouble).requires_grad_(),
                                       torch::randn({2, 2}, torch::kDouble).requires_grad_()};
  const auto saved = snapshot_parameters(params);
  const std::vector<torch::Tensor> dir = {torch::randn({4}, torch::kDouble),
                                          torch::randn({2, 2}, torch::kDouble)};
  assign_parameters_axpy(params, saved, 0.25, dir);
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_TRUE(torch::equal(params[i].detach(), saved[i] + 0.25 * dir[i])) << i;
    EXPECT_FALSE(torch::equal(params[i].detach(), saved[i])) << i;  // the snapshot did not move
    EXPECT_TRUE(params[i].is_leaf()) << i;                          // no autograd record
  }
  assign_parameters(params, saved);
  for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(torch::equal(params[i].detach(), saved[i]));
}

TEST(ParameterOps, GradientsOfAnUnreachedParameterAreZeros) {
  auto x = torch::tensor({1.0, 2.0}, torch::kDouble).requires_grad_();
  auto unused = torch::ones({3}, torch::kDouble).requires_grad_();
  const auto g = gradients_or_zeros((x * x).sum(), {x, unused});
  EXPECT_TRUE(torch::equal(g[0], torch::tensor({2.0, 4.0}, torch::kDouble)));
  EXPECT_TRUE(torch::equal(g[1], torch::zeros({3}, torch::kDouble)));
}

TEST(ParameterOps, BufferGuardRestoresRunningStatistics) {
  torch::nn::BatchNorm1d bn(2);
  bn->train();
  const auto mean_before = bn->running_mean.clone();
  {
    BufferGuard guard(*bn);
    bn->forward(torch::randn({8, 2}) + 5.0);
    EXPECT_FALSE(torch::equal(bn->running_mean, mean_before));
  }
  EXPECT_TRUE(torch::equal(bn->running_mean, mean_before));
  expect_error([] { BufferGuard({static_cast<torch::nn::Module*>(nullptr)}); }, {"null"});
}

}  // namespace
}  // namespace metadistill
