#include "metadistill/data/synthetic.h"

#include <gtest/gtest.h>

using namespace metadistill;

// Check values of DESIGN.md 3.7: numpy.random.seed(42), x = randn(430, 2), e = randn(430).
TEST(Synthetic, DrawMatchesNumpyLegacyGenerator) {
  auto [x, e] = synthetic_raw(42, 430);
  EXPECT_DOUBLE_EQ(x[0][0].item<double>(), 0.4967141530112327);
  EXPECT_DOUBLE_EQ(x[0][1].item<double>(), -0.13826430117118466);
  EXPECT_DOUBLE_EQ(x[1][0].item<double>(), 0.6476885381006925);
  EXPECT_DOUBLE_EQ(x[1][1].item<double>(), 1.5230298564080254);
  EXPECT_DOUBLE_EQ(x[429][0].item<double>(), -0.5522230442809712);
  EXPECT_DOUBLE_EQ(x[429][1].item<double>(), 0.6329318177555108);
  EXPECT_DOUBLE_EQ(0.5 * e[0].item<double>(), 0.10146151042564985);
  EXPECT_DOUBLE_EQ(0.5 * e[429].item<double>(), -1.0764452964762414);
}

TEST(Synthetic, ReferencePresetReproducesTheAuthorsLabelsAndLayout) {
  auto b = make_synthetic(SyntheticOptions::reference_preset());
  EXPECT_EQ(b.teacher_train.size(), 200);
  EXPECT_EQ(b.train_idx.numel(), 15);
  EXPECT_EQ(b.val_idx.numel(), 15);
  EXPECT_EQ(b.test.size(), 200);
  EXPECT_TRUE(b.val_is_test);
  const int64_t total = b.teacher_train.y.sum().item<int64_t>() + b.pool.y.sum().item<int64_t>() +
                        b.test.y.sum().item<int64_t>();
  EXPECT_EQ(total, 230);
  auto student_y = b.pool.y.index_select(0, b.train_idx);
  std::vector<int64_t> expected = {1, 0, 1, 0, 0, 0, 0, 1, 0, 1, 1, 0, 1, 0, 0};
  for (int64_t i = 0; i < 15; ++i) EXPECT_EQ(student_y[i].item<int64_t>(), expected[i]) << i;
  EXPECT_EQ(b.test.y.sum().item<int64_t>(), 101);
  // Validation for the meta-level is the test set in the authors' setting.
  EXPECT_TRUE(b.validation().y.equal(b.test.y));
}

TEST(Synthetic, FeaturesFollowTheVariant) {
  for (const std::string variant : {"reference", "paper"}) {
    auto b = make_synthetic(SyntheticOptions().with_variant(variant));
    auto x = b.test.x, xt = b.test.x_teacher;
    ASSERT_EQ(x.sizes(), (std::vector<int64_t>{200, 3}));
    ASSERT_EQ(xt.sizes(), (std::vector<int64_t>{200, 3}));
    for (int64_t i = 0; i < 200; ++i) {
      const float x1 = x[i][0].item<float>(), x2 = x[i][1].item<float>();
      const float s = (x1 > 0 ? 1.f : -1.f) + (x2 > 0 ? 1.f : -1.f);
      EXPECT_EQ(xt[i][0].item<float>(), x1);
      if (variant == "reference") {
        EXPECT_EQ(x[i][2].item<float>(), x1 * x2 > 0 ? 1.f : -1.f);
        EXPECT_EQ(xt[i][2].item<float>(), s > 0.1f ? 1.f : 0.f);
      } else {
        EXPECT_EQ(x[i][2].item<float>(), s > 0 ? 1.f : 0.f);
        EXPECT_EQ(xt[i][2].item<float>(), s + 0.1f > 0 ? 1.f : 0.f);
      }
    }
  }
}

TEST(Synthetic, SeparateValidationSplitAndSeeds) {
  auto a = make_synthetic(SyntheticOptions());
  EXPECT_FALSE(a.val_is_test);
  EXPECT_EQ(a.val_idx.numel(), 200);
  EXPECT_FALSE(a.validation().y.equal(a.test.y));
  auto b = make_synthetic(SyntheticOptions());
  EXPECT_TRUE(a.pool.x.equal(b.pool.x));
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  auto c = make_synthetic(SyntheticOptions().seeded(7));
  EXPECT_FALSE(a.pool.x.equal(c.pool.x));
  EXPECT_NE(a.fingerprint, c.fingerprint);
}

TEST(Synthetic, RejectsBadOptions) {
  EXPECT_THROW(make_synthetic(SyntheticOptions().with_variant("other")), std::exception);
  EXPECT_THROW(make_synthetic(SyntheticOptions().student_rows(0)), std::exception);
}
