// The gradient method's meta-step (meta/gradient_method.h): on [λ1, T] through its domain's chain
// rule and clipping, and on another head's space, each against the step written out here.
#include "metadistill/meta/gradient_method.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace metadistill {

using metadistill::testing::expect_error;

// The gradient method's meta-step on a known hypergradient (`apply` is protected: a probe
// subclass feeds it), against the step written out here independently.
class GradientProbe : public GradientMetaOptimizer {
 public:
  using GradientMetaOptimizer::GradientMetaOptimizer;
  void step_with(double d_lambda1, double d_temperature) {
    Hypergradient h;
    h.lambda1 = d_lambda1;
    h.temperature = d_temperature;
    apply(h, 0);
  }
  void step_coordinates(const std::vector<double>& h) { apply(h, false, 0); }
};

GradientProbe probe(nlohmann::json settings) {
  MethodOptions mo;
  mo.method = "gradient";
  mo.fixed = {0.3, 2.0};
  mo.given_initial = true;
  return GradientProbe(mo, GradientMethodOptions::from_json(settings));
}

// domain reparametrized: λ1 = σ(a), T = T_min + softplus(b); the SGD step is taken on (a, b) with
// the chain rule dλ1/da, dT/db, here by central differences of the maps themselves.
TEST(GradientMethod, ReparametrizedDomainStepsThroughTheChainRule) {
  const double gamma = 0.1, h1 = 0.8, h2 = -0.5, tmin = Metaparameters::kMinTemperature;
  auto sigma = [](double a) { return 1 / (1 + std::exp(-a)); };
  auto temperature = [&](double b) { return tmin + std::log1p(std::exp(b)); };
  const double a = std::log(0.3 / 0.7), b = std::log(std::expm1(2.0 - tmin)), e = 1e-6;
  const double da = (sigma(a + e) - sigma(a - e)) / (2 * e);
  const double db = (temperature(b + e) - temperature(b - e)) / (2 * e);
  auto m = probe({{"domain", "reparametrized"}, {"gamma", gamma}});
  ASSERT_NEAR(m.current().lambda1, 0.3, 1e-12);
  ASSERT_NEAR(m.current().temperature, 2.0, 1e-12);
  m.step_with(h1, h2);
  EXPECT_NEAR(m.current().lambda1, sigma(a - gamma * h1 * da), 1e-8);
  EXPECT_NEAR(m.current().temperature, temperature(b - gamma * h2 * db), 1e-8);
}

// clip bounds each component of the hypergradient to [−clip, clip], both signs.
TEST(GradientMethod, ClipBoundsBothSignsOfTheHypergradient) {
  auto m = probe({{"clip", 0.05}, {"gamma", 1.0}});
  m.step_with(-0.8, 0.3);
  EXPECT_NEAR(m.current().lambda1, 0.3 + 0.05, 1e-12);
  EXPECT_NEAR(m.current().temperature, 2.0 - 0.05, 1e-12);
  m.step_with(0.01, -0.02);  // inside the bound: unchanged
  EXPECT_NEAR(m.current().lambda1, 0.35 - 0.01, 1e-12);
  EXPECT_NEAR(m.current().temperature, 1.95 + 0.02, 1e-12);
}

// The gradient method over another head's space (multi-layer VID, [λ_1, λ_2, β] with β in
// [0.2, 0.8]) steps the coordinates themselves: each by its own step size, the simplex logits
// freely, β clamped back into its interval; the values follow from the coordinates.
GradientProbe vid_probe() {
  MethodOptions mo;
  mo.method = "all-pairs-fd";
  mo.space = vid_space(2, 0.2, 0.8);
  mo.initial_coordinates = {0.0, 0.0, 0.5};
  GradientMethodOptions g;
  g.step_sizes = {1.0, 1.0, 0.1};
  return GradientProbe(mo, g);
}

TEST(GradientMethod, OverAnotherSpaceStepsItsCoordinatesEachByItsSize) {
  auto m = vid_probe();
  EXPECT_EQ(m.values(), (std::vector<double>{0.5, 0.5, 0.5}));
  m.step_coordinates({0.3, -0.3, 1.0});
  const auto c = m.coordinates();
  ASSERT_EQ(c.size(), 3u);
  EXPECT_DOUBLE_EQ(c[0], -0.3);
  EXPECT_DOUBLE_EQ(c[1], 0.3);
  EXPECT_DOUBLE_EQ(c[2], 0.4);
  const auto v = m.values();
  const double e = std::exp(0.6);  // λ = softmax(−0.3, 0.3)
  EXPECT_NEAR(v[0], 1 / (1 + e), 1e-15);
  EXPECT_NEAR(v[1], e / (1 + e), 1e-15);
  EXPECT_DOUBLE_EQ(v[2], 0.4);
  EXPECT_EQ(m.last_point().hypergradient, (std::vector<double>{0.3, -0.3, 1.0}));
  m.step_coordinates({0.0, 0.0, 10.0});  // β = 0.4 − 1.0, back to 0.2
  EXPECT_DOUBLE_EQ(m.values()[2], 0.2);
  EXPECT_DOUBLE_EQ(m.coordinates()[2], 0.2);
  // No (λ1, T) view of another space; a state restores the coordinates exactly.
  expect_error([&] { m.current(); }, {"gradient", "lambda_1, lambda_2, beta", "Hinton"});
  auto other = vid_probe();
  other.load_state(m.state());
  EXPECT_EQ(other.coordinates(), m.coordinates());
  EXPECT_EQ(other.values(), m.values());
  expect_error([&] { m.step_coordinates({1.0}); }, {"1 components", "lambda_1, lambda_2, beta"});
}

}  // namespace metadistill
