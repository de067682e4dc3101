#include "metadistill/meta/meta_step.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace metadistill {
namespace {

TEST(MetaStepRule, SgdStepsEachCoordinateByItsOwnSize) {
  MetaStepRule rule("sgd", {0.1, 2.0});
  const auto d = rule.delta({3.0, -0.5});
  EXPECT_DOUBLE_EQ(d[0], 0.3);
  EXPECT_DOUBLE_EQ(d[1], -1.0);
  EXPECT_EQ(rule.steps(), 1);
}

TEST(MetaStepRule, AdamStepsAreAboutTheSizeWhateverTheScaleOfH) {
  // First step: m̂ = h, v̂ = h², so Δ = s·h/(|h| + ε) ≈ s·sign h for a hypergradient of 1e-7
  // as for one of 1e3.
  MetaStepRule rule("adam", {0.01, 0.5}, 1e-12);
  const auto d = rule.delta({1e-7, -1e3});
  EXPECT_NEAR(d[0], 0.01, 1e-6);
  EXPECT_NEAR(d[1], -0.5, 1e-12);
  // Second step by the formulas: m = 0.9·m + 0.1·h, v = 0.999·v + 0.001·h², bias-corrected.
  const double h1 = 1e-7, h2 = 3e-7;
  const double m = 0.9 * (0.1 * h1) + 0.1 * h2, v = 0.999 * (0.001 * h1 * h1) + 0.001 * h2 * h2;
  const double want = 0.01 * (m / (1 - 0.81)) / (std::sqrt(v / (1 - 0.999 * 0.999)) + 1e-12);
  EXPECT_NEAR(rule.delta({h2, -1e3})[0], want, 1e-12);
}

TEST(MetaStepRule, SignStepsHalveWhenTheSignFlipsAndHoldAtZero) {
  MetaStepRule rule("sign", {0.4});
  EXPECT_DOUBLE_EQ(rule.delta({5.0})[0], 0.4);
  EXPECT_DOUBLE_EQ(rule.delta({1e-9})[0], 0.4);  // same sign: same step
  EXPECT_DOUBLE_EQ(rule.delta({-2.0})[0], -0.2);  // flip: halved
  EXPECT_DOUBLE_EQ(rule.delta({0.0})[0], 0.0);    // no signal: no step, no flip recorded
  EXPECT_DOUBLE_EQ(rule.delta({-1.0})[0], -0.2);
  EXPECT_DOUBLE_EQ(rule.delta({1.0})[0], 0.1);
}

TEST(MetaStepRule, StateRoundTripContinuesTheSameSteps) {
  for (const std::string kind : {"sgd", "adam", "sign"}) {
    MetaStepRule a(kind, {0.1, 0.2});
    a.delta({1.0, -2.0});
    a.delta({-0.5, -1.0});
    MetaStepRule b(kind, {0.1, 0.2});
    b.load_state(a.state());
    EXPECT_EQ(b.steps(), 2);
    EXPECT_EQ(a.delta({0.3, 4.0}), b.delta({0.3, 4.0})) << kind;
  }
  // The form multi-layer checkpoints had before the rule was shared: Adam's m, v and t.
  MetaStepRule adam("adam", {1.0, 1.0}, 1e-12);
  adam.load_state(nlohmann::json{{"m", {0.1, 0.2}}, {"v", {0.01, 0.04}}, {"t", 3}});
  EXPECT_EQ(adam.steps(), 3);
  MetaStepRule fresh("adam", {1.0, 1.0}, 1e-12);
  EXPECT_NE(adam.delta({1.0, 1.0}), fresh.delta({1.0, 1.0}));
}

TEST(MetaStepRule, BadKindSizeOrStateIsAnErrorNamingIt) {
  testing::expect_error([] { MetaStepRule("momentum", {1.0}); }, {"'momentum'", "sgd, adam or sign"});
  MetaStepRule rule("sgd", {1.0, 1.0});
  testing::expect_error([&] { rule.delta({1.0}); }, {"1 entries", "2 coordinates"});
  testing::expect_error([&] { rule.load_state(MetaStepRule("sgd", {1.0}).state()); },
                        {"adam_m", "1 entries", "2 coordinates"});
}

}  // namespace
}  // namespace metadistill
