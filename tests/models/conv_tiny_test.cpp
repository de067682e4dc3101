#include <gtest/gtest.h>
#include <torch/torch.h>

#include "metadistill/models/conv_tiny.h"
#include "metadistill/util/error.h"

namespace metadistill {
namespace {

TEST(ConvTiny, FlattenedSizeFollowsTheInput) {
  EXPECT_EQ(ConvTiny(ConvTinyOptions({3, 32, 32}, 10))->fc1->options.in_features(), 64 * 4 * 4);
  EXPECT_EQ(ConvTiny(ConvTinyOptions({1, 28, 28}, 10))->fc1->options.in_features(), 64 * 3 * 3);
  EXPECT_EQ(ConvTiny(ConvTinyOptions::very_tiny({3, 32, 32}, 10))->fc1->options.in_features(),
            32 * 4 * 4);
  EXPECT_EQ(ConvTiny(ConvTinyOptions::very_tiny({1, 9, 17}, 10))->fc1->options.in_features(),
            32 * 1 * 2);
}

TEST(ConvTiny, TapShapesOnCifar) {
  ConvTiny model(ConvTinyOptions({3, 32, 32}, 10));
  EXPECT_EQ(model->kind(), "conv-tiny");
  const std::vector<std::vector<int64_t>> expected{
      {2, 16, 16, 16}, {2, 32, 8, 8}, {2, 64, 4, 4}, {2, 128}, {2, 10}};
  std::vector<std::vector<int64_t>> shapes;
  for (const auto& [name, t] : model->forward_features(torch::randn({2, 3, 32, 32})))
    shapes.push_back(t.sizes().vec());
  EXPECT_EQ(shapes, expected);
}

TEST(ConvTiny, VeryTinyIsNarrower) {
  ConvTiny tiny(ConvTinyOptions({3, 32, 32}, 10));
  ConvTiny very(ConvTinyOptions::very_tiny({3, 32, 32}, 10));
  EXPECT_EQ(very->kind(), "conv-very-tiny");
  EXPECT_EQ(very->conv3->options.out_channels(), 32);
  EXPECT_EQ(very->fc1->options.out_features(), 64);
  EXPECT_LT(count_parameters(*very), count_parameters(*tiny) / 3);
}

TEST(ConvTiny, RejectsImagesSmallerThanEight) {
  EXPECT_THROW(ConvTiny(ConvTinyOptions({3, 7, 32}, 10)), Error);
  EXPECT_THROW(ConvTiny(ConvTinyOptions({3, 32, 32}, 10).channels({8, 16})), Error);
}

}  // namespace
}  // namespace metadistill
