#include <gtest/gtest.h>
#include <torch/torch.h>

#include "metadistill/models/resnet.h"
#include "metadistill/util/error.h"

namespace metadistill {
namespace {

std::vector<std::vector<int64_t>> tap_shapes(ResNetImpl& model, std::vector<int64_t> input) {
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& [name, t] : model.forward_features(torch::randn(input)))
    shapes.push_back(t.sizes().vec());
  return shapes;
}

TEST(ResNet, ParameterCounts) {
  const int64_t r20 = count_parameters(*ResNet(ResNetOptions::resnet20({3, 32, 32}, 10)));
  const int64_t r8 = count_parameters(*ResNet(ResNetOptions::resnet8({1, 28, 28}, 10)));
  const int64_t r18 = count_parameters(*ResNet(ResNetOptions::resnet18({3, 32, 32}, 10)));
  std::printf("resnet20 %lld, resnet8 (fmnist) %lld, resnet18 %lld\n", static_cast<long long>(r20),
              static_cast<long long>(r8), static_cast<long long>(r18));
  EXPECT_NEAR(r20, 270000, 20000);  // He et al. 2016, table 6: 0.27M
  EXPECT_NEAR(r8, 78000, 1000);
  EXPECT_NEAR(r18, 11170000, 10000);  // torchvision's resnet18 with a 3x3 stem and 10 classes
}

TEST(ResNet, TapShapesOfResNet18) {
  ResNet model(ResNetOptions::resnet18({3, 32, 32}, 10));
  EXPECT_EQ(model->tap_names(), (std::vector<std::string>{"stem", "layer1", "layer2", "layer3",
                                                          "layer4", "pool", "logits"}));
  const std::vector<std::vector<int64_t>> expected{{2, 64, 32, 32}, {2, 64, 32, 32},
                                                   {2, 128, 16, 16}, {2, 256, 8, 8},
                                                   {2, 512, 4, 4}, {2, 512}, {2, 10}};
  EXPECT_EQ(tap_shapes(*model, {2, 3, 32, 32}), expected);
}

TEST(ResNet, TapShapesOfResNet20OnOddSizes) {
  ResNet model(ResNetOptions::resnet20({1, 27, 28}, 10));
  EXPECT_EQ(model->tap_names(),
            (std::vector<std::string>{"stem", "layer1", "layer2", "layer3", "pool", "logits"}));
  const std::vector<std::vector<int64_t>> expected{{2, 16, 27, 28}, {2, 16, 27, 28},
                                                   {2, 32, 14, 14}, {2, 64, 7, 7},
                                                   {2, 64}, {2, 10}};
  EXPECT_EQ(tap_shapes(*model, {2, 1, 27, 28}), expected);
}

TEST(ResNet, ProjectionShortcutsOnlyWhereTheShapeChanges) {
  ResNet model(ResNetOptions::resnet20({3, 32, 32}, 10));
  int projections = 0;
  for (const auto& item : model->named_modules())
    if (item.key().find("downsample") != std::string::npos && item.value()->as<torch::nn::Conv2d>())
      ++projections;
  EXPECT_EQ(projections, 2);  // first block of layer2 and of layer3 (option B)
}

TEST(ResNet, BasicBlockIsResidual) {
  torch::manual_seed(0);
  BasicBlock block(4, 4, 1);
  auto x = torch::randn({2, 4, 6, 6});
  auto branch = block->bn2->forward(
      block->conv2->forward(torch::relu(block->bn1->forward(block->conv1->forward(x)))));
  EXPECT_TRUE(torch::allclose(block->forward(x), torch::relu(branch + x), 1e-5, 1e-6));
  EXPECT_EQ(BasicBlock(4, 8, 2)->forward(x).sizes(), (std::vector<int64_t>{2, 8, 3, 3}));
}

TEST(ResNet, PreActBlockIsResidual) {
  torch::manual_seed(0);
  PreActBlock block(4, 4, 1);
  auto x = torch::randn({2, 4, 6, 6});
  auto a = torch::relu(block->bn1->forward(x));
  auto branch = block->conv2->forward(torch::relu(block->bn2->forward(block->conv1->forward(a))));
  EXPECT_TRUE(torch::allclose(block->forward(x), branch + x, 1e-5, 1e-6));
  EXPECT_EQ(PreActBlock(4, 8, 2)->forward(x).sizes(), (std::vector<int64_t>{2, 8, 3, 3}));
}

TEST(ResNet, PreActNormalizesAfterTheLastStage) {
  ResNet model(ResNetOptions::preact_resnet18({3, 16, 16}, 10));
  EXPECT_EQ(model->kind(), "preact-resnet18");
  EXPECT_EQ(model->bn1->options.num_features(), 512);
  EXPECT_TRUE(model->layers[0]->ptr(0)->as<PreActBlock>() != nullptr);
}

TEST(ResNet, RejectsVectorsAndTinyImages) {
  EXPECT_THROW(ResNet(ResNetOptions::resnet18({20}, 10)), Error);
  EXPECT_THROW(ResNet(ResNetOptions::resnet18({3, 4, 4}, 10)), Error);
  EXPECT_THROW(ResNet(ResNetOptions::resnet18({3, 32, 32}, 10).blocks({2, 2})), Error);
}

}  // namespace
}  // namespace metadistill
