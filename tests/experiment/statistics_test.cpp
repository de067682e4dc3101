#include "metadistill/experiment/statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <iostream>
#include <string>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

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

// SciPy's ttest_ind(a, b, equal_var=False) on samples of unequal sizes and variances, with
// p-values from 4e-8 to 0.84 (scripts/welch_golden.py). Pooled degrees of freedom (n_a + n_b − 2)
// or a pooled variance change these p-values by far more than the tolerance.
TEST(Statistics, WelchMatchesScipy) {
  const std::string path =
      std::string(METADISTILL_SOURCE_DIR) + "/tests/experiment/golden/welch_scipy.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path << ": run scripts/welch_golden.py";
  const auto golden = nlohmann::json::parse(in);
  int cases = 0, moderate = 0;
  double max_rel = 0;
  for (const auto& c : golden["cases"]) {
    const auto a = c["a"].get<std::vector<double>>(), b = c["b"].get<std::vector<double>>();
    const double want = c["p"], got = welch_p_value(a, b);
    const double rel = std::abs(got - want) / want;
    EXPECT_LT(rel, 1e-6) << c["name"].get<std::string>() << " (n " << a.size() << " vs "
                         << b.size() << ", t " << c["t"].get<double>() << ", Welch df "
                         << c["df"].get<double>() << "): p " << got << ", SciPy " << want;
    max_rel = std::isnan(rel) ? INFINITY : std::max(max_rel, rel);
    moderate += want >= 0.01 && want <= 0.5;
    ++cases;
  }
  EXPECT_GE(cases, 10);
  EXPECT_GE(moderate, 5);
  std::cout << fmt::format("[parity] Welch p-values of {} cases ({} in 0.01..0.5): max rel diff "
                           "{:.3g} against SciPy {}\n",
                           cases, moderate, max_rel, golden["scipy_version"].get<std::string>());
}

// The paired comparison of the experiment tables (mean difference over seeds, its 95% interval
// and the paired t-test) against SciPy: scripts/paired_golden.py writes the golden file.
TEST(Statistics, PairedDifferenceMatchesScipy) {
  const std::string path =
      std::string(METADISTILL_SOURCE_DIR) + "/tests/experiment/golden/paired_scipy.json";
  std::ifstream in(path);
  ASSERT_TRUE(in) << "missing " << path << ": run scripts/paired_golden.py";
  const auto golden = nlohmann::json::parse(in);
  int cases = 0;
  for (const auto& c : golden["cases"]) {
    const auto a = c["a"].get<std::vector<double>>(), b = c["b"].get<std::vector<double>>();
    const auto d = paired_difference(a, b);
    const std::string name = c["name"];
    EXPECT_EQ(d.n, a.size()) << name;
    EXPECT_NEAR(d.mean, c["mean"].get<double>(), 1e-12) << name;
    EXPECT_NEAR(d.low, c["low"].get<double>(), 1e-9) << name;
    EXPECT_NEAR(d.high, c["high"].get<double>(), 1e-9) << name;
    EXPECT_NEAR(d.p, c["p"].get<double>(), 1e-6 * c["p"].get<double>()) << name;
    ++cases;
  }
  EXPECT_GE(cases, 5);
  // One pair has no spread to estimate: the interval is the difference itself and p is 1.
  const auto one = paired_difference({0.9}, {0.8});
  EXPECT_EQ(one.n, 1u);
  EXPECT_NEAR(one.low, 0.1, 1e-15);
  EXPECT_EQ(one.p, 1.0);
}
