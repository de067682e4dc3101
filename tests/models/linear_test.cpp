#include <gtest/gtest.h>
#include <torch/torch.h>

#include "metadistill/models/linear.h"

namespace metadistill {
namespace {

TEST(LogReg, IsAnAffineMap) {
  LogReg model(LogRegOptions(3, 2));
  auto x = torch::randn({4, 3});
  auto expected = x.matmul(model->fc->weight.t()) + model->fc->bias;
  EXPECT_TRUE(torch::allclose(model->forward(x), expected));
  EXPECT_EQ(count_parameters(*model), 3 * 2 + 2);
}

TEST(Mlp, HiddenTapIsTheActivation) {
  Mlp model(MlpOptions(3, 2).hidden(5));
  auto x = torch::randn({4, 3});
  auto features = model->forward_features(x);
  ASSERT_EQ(features.size(), 2u);
  auto hidden = torch::relu(model->fc1->forward(x));
  EXPECT_TRUE(torch::allclose(features[0].second, hidden));
  EXPECT_TRUE(torch::allclose(features[1].second, model->fc2->forward(hidden)));
  EXPECT_EQ(count_parameters(*model), (3 * 5 + 5) + (5 * 2 + 2));
}

}  // namespace
}  // namespace metadistill
