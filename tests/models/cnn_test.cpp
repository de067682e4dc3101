#include <gtest/gtest.h>
#include <torch/torch.h>

#include "metadistill/models/cnn.h"
#include "metadistill/util/error.h"

namespace metadistill {
namespace {

std::vector<std::vector<int64_t>> tap_shapes(CnnImpl& model, const std::vector<int64_t>& input) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& [name, t] : model.forward_features(torch::randn(input)))
    shapes.push_back(t.sizes().vec());
  return shapes;
}

TEST(Cnn, FashionMnistLayoutAndSize) {
  Cnn model(CnnOptions({1, 28, 28}, 10));
  const int64_t n = count_parameters(*model);
  std::printf("cnn on [1, 28, 28]: %lld parameters\n", static_cast<long long>(n));
  EXPECT_NEAR(n, 29000, 1000);  // the paper's "about 29k"
  EXPECT_EQ(n, 28866);
  const std::vector<std::vector<int64_t>> expected{
      {2, 8, 13, 13}, {2, 16, 5, 5}, {2, 128, 1, 1}, {2, 64}, {2, 10}};
  EXPECT_EQ(tap_shapes(*model, {2, 1, 28, 28}), expected);
}

TEST(Cnn, Cifar10LayoutAndSize) {
  Cnn model(CnnOptions({3, 32, 32}, 10));
  const int64_t n = count_parameters(*model);
  std::printf("cnn on [3, 32, 32]: %lld parameters\n", static_cast<long long>(n));
  EXPECT_NEAR(n, 15000, 1000);  // the paper's "about 15k"
  EXPECT_EQ(n, 14994);
  const std::vector<std::vector<int64_t>> expected{
      {2, 8, 15, 15}, {2, 16, 6, 6}, {2, 32, 2, 2}, {2, 64}, {2, 10}};
  EXPECT_EQ(tap_shapes(*model, {2, 3, 32, 32}), expected);
}

// Unpadded 3x3 kernels show in the tap shapes above; the bias is left out because BatchNorm
// follows.
TEST(Cnn, ConvolutionsHaveThreeByThreeKernelsWithoutBias) {
  Cnn model(CnnOptions({1, 28, 28}, 10));
  for (const auto& conv : {model->conv1, model->conv2, model->conv3}) {
    EXPECT_FALSE(conv->bias.defined());
    EXPECT_EQ(conv->weight.size(2), 3);
    EXPECT_EQ(conv->weight.size(3), 3);
  }
}

TEST(Cnn, PoolingBeforeReluEqualsTheTextbookOrder) {
  torch::manual_seed(0);
  Cnn model(CnnOptions({1, 28, 28}, 10));
  auto x = torch::randn({2, 1, 28, 28});
  auto h = torch::max_pool2d(torch::relu(model->bn1->forward(model->conv1->forward(x))), 2);
  h = torch::max_pool2d(torch::relu(model->bn2->forward(model->conv2->forward(h))), 2);
  h = torch::max_pool2d(torch::relu(model->bn3->forward(model->conv3->forward(h))), 2);
  auto logits = model->fc2->forward(torch::relu(model->fc1->forward(h.flatten(1))));
  EXPECT_TRUE(torch::allclose(model->forward(x), logits, 1e-5, 1e-6));
}

// Other images (a user's folder of 8x8 digits, 64x48 photos): padded convolutions and a global
// max pool give 128 features before fc1, whatever the size; it trains (gradients reach conv1).
TEST(Cnn, OtherImageSizesGetPaddedConvolutionsAndAGlobalPool) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{
           {1, 8, 8}, {3, 28, 28}, {1, 32, 32}, {3, 48, 64}, {2, 9, 13}}) {
    torch::manual_seed(0);
    Cnn model(CnnOptions(shape, 7));
    std::vector<int64_t> input = {3};
    input.insert(input.end(), shape.begin(), shape.end());
    const auto taps = tap_shapes(*model, input);
    ASSERT_EQ(taps.size(), 5u);
    EXPECT_EQ(taps[0], (std::vector<int64_t>{3, 8, shape[1] / 2, shape[2] / 2}));
    EXPECT_EQ(taps[2], (std::vector<int64_t>{3, 128, 1, 1}));
    EXPECT_EQ(taps[4], (std::vector<int64_t>{3, 7}));
    model->train();
    auto x = torch::randn(input);
    model->forward(x).pow(2).sum().backward();
    EXPECT_GT(model->conv1->weight.grad().abs().sum().item<double>(), 0.0);
    // The pool is a maximum over all positions: the logits equal those of the textbook order.
    model->eval();
    auto h = torch::max_pool2d(torch::relu(model->bn1->forward(model->conv1->forward(x))), 2);
    h = torch::max_pool2d(torch::relu(model->bn2->forward(model->conv2->forward(h))), 2);
    h = torch::max_pool2d(torch::relu(model->bn3->forward(model->conv3->forward(h))), 2);
    h = std::get<0>(torch::adaptive_max_pool2d(h, {1, 1}));
    auto logits = model->fc2->forward(torch::relu(model->fc1->forward(h.flatten(1))));
    EXPECT_TRUE(torch::allclose(model->forward(x), logits, 1e-5, 1e-6));
  }
}

TEST(Cnn, ImagesSmallerThanEightOrNotImagesAreRefusedWithTheirShape) {
  for (const auto& shape :
       std::vector<std::vector<int64_t>>{{1, 7, 28}, {3, 32, 4}, {1, 28}, {784}}) {
    try {
      Cnn model(CnnOptions(shape, 10));
      ADD_FAILURE() << "accepted " << c10::IntArrayRef(shape);
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(fmt::format("{}", c10::IntArrayRef(shape))),
                std::string::npos)
          << e.what();
      EXPECT_NE(std::string(e.what()).find("cnn"), std::string::npos) << e.what();
    }
  }
}

}  // namespace
}  // namespace metadistill
