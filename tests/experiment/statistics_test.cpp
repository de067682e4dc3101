#include "metadistill/experiment/statistics.h"

#include <gtest/gtest.h>

using namespace metadistill;

TEST(Statistics, SummaryMatchesHandValues) {
  auto s = summarize({0.6, 0.7, 0.8, 0.9});
  EXPECT_NEAR(s.mean, 0.75, 1e-15);
  EXPECT_NEAR(s.std, std::sqrt(0.05 / 3), 1e-15);
  EXPECT_EQ(s.max, 0.9);
  EXPECT_EQ(s.min, 0.6);
}

// Table values: P(|T| > 2.228139) with 10 dof = 0.05; P(|T| > 1) with 1 dof = 0.5 (Cauchy).
TEST(Statistics, StudentTTailsMatchTables) {
  EXPECT_NEAR(student_t_two_sided(2.228138851986, 10), 0.05, 1e-9);
  EXPECT_NEAR(student_t_two_sided(1.0, 1), 0.5, 1e-12);
  EXPECT_NEAR(student_t_two_sided(0.0, 7), 1.0, 1e-12);
  EXPECT_NEAR(incomplete_beta(2, 3, 0.4), 0.5248, 1e-12);  // = P(Binomial(4, 0.4) >= 2)
}

TEST(Statistics, WelchTestSeparatesClearlyDifferentSamples) {
  std::vector<double> a = {0.63, 0.64, 0.62, 0.63, 0.65}, b = {0.77, 0.78, 0.76, 0.77, 0.79};
  EXPECT_LT(welch_p_value(a, b), 1e-6);
  std::vector<double> c = {0.70, 0.72, 0.68, 0.71}, d = {0.71, 0.69, 0.72, 0.70};
  EXPECT_GT(welch_p_value(c, d), 0.5);
  EXPECT_EQ(welch_p_value({0.5}, {0.6, 0.7}), 1.0);
  EXPECT_EQ(welch_p_value({0.5, 0.5}, {0.6, 0.6}), 0.0);
}
