#include "metadistill/models/students.h"

#include <gtest/gtest.h>

namespace metadistill {
namespace {

// students.h alone gives every student of the papers, each mapping a batch to logits [B, K]:
// the CNN on both image shapes, ConvTiny and ConvVeryTiny, logistic regression and the MLP.
TEST(Students, TheOneIncludeBuildsEveryStudent) {
  torch::manual_seed(3);
  auto logits_shape = [](ClassifierImpl& m, const std::vector<int64_t>& input) {
    std::vector<int64_t> shape{4};
    shape.insert(shape.end(), input.begin(), input.end());
    m.eval();
    return m.forward(torch::randn(shape)).sizes().vec();
  };
  const std::vector<int64_t> expected{4, 10};
  for (const std::vector<int64_t> input : {std::vector<int64_t>{1, 28, 28}, {3, 32, 32}}) {
    Cnn cnn(CnnOptions(input, 10));
    EXPECT_EQ(logits_shape(*cnn, input), expected);
    ConvTiny tiny(ConvTinyOptions(input, 10));
    EXPECT_EQ(logits_shape(*tiny, input), expected);
    ConvTiny very_tiny(ConvTinyOptions::very_tiny(input, 10));
    EXPECT_EQ(logits_shape(*very_tiny, input), expected);
  }
  LogReg logreg(LogRegOptions(2, 3));
  EXPECT_EQ(logits_shape(*logreg, {2}), (std::vector<int64_t>{4, 3}));
  Mlp mlp(MlpOptions(2, 3));
  EXPECT_EQ(logits_shape(*mlp, {2}), (std::vector<int64_t>{4, 3}));
}

// The multi-layer paper's pair keeps its order of size: ConvVeryTiny is the smaller student
// (widths 8, 16, 32 and hidden 64 against 16, 32, 64 and 128).
TEST(Students, ConvVeryTinyIsSmallerThanConvTiny) {
  const std::vector<int64_t> input{1, 28, 28};
  ConvTiny tiny(ConvTinyOptions(input, 10));
  ConvTiny very_tiny(ConvTinyOptions::very_tiny(input, 10));
  EXPECT_LT(count_parameters(*very_tiny), count_parameters(*tiny));
  EXPECT_GT(count_parameters(*very_tiny), 0);
}

}  // namespace
}  // namespace metadistill
