#include "metadistill/meta/meta_optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "metadistill/meta/gradient_method.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

// Each method declares what a given λ means to it; the CLI asks instead of matching names.
TEST(MetaOptimizerRegistry, MethodsDeclareWhatAGivenLambdaMeans) {
  EXPECT_EQ(method_given_lambda("fixed"), GivenLambda::kFixed);
  for (const char* m : {"gradient", "proposed", "proposed-guarded"})
    EXPECT_EQ(method_given_lambda(m), GivenLambda::kInitial) << m;
  for (const char* m : {"none", "naive", "random"})
    EXPECT_EQ(method_given_lambda(m), GivenLambda::kIgnored) << m;
  expect_error([] { method_given_lambda("bogus"); }, {"unknown method 'bogus'", "gradient"});
}

// A method that halves λ1 every step: one class ...
class HalvingMethod : public MetaOptimizer {
 public:
  explicit HalvingMethod(Metaparameters start) : value_(start) {}
  std::string name() const override { return "halving"; }
  void before_step(const HyperStepContext& ctx) override { value_.lambda1 *= 0.5; }
  std::vector<double> values() const override { return value_.to_vector(); }
  TrajectoryPoint last_point() const override {
    TrajectoryPoint p;
    p.value = value_;
    p.phase = "halving";
    return p;
  }

 private:
  Metaparameters value_;
};

// ... and one registration line make it a method like the built-in ones.
TEST(MetaOptimizerRegistry, AMethodIsOneClassAndOneRegistrationLine) {
  register_meta_optimizer(
      "halving", [](const MethodOptions& o) { return std::make_unique<HalvingMethod>(o.fixed); },
      GivenLambda::kInitial);
  const auto names = method_names();
  EXPECT_NE(std::find(names.begin(), names.end(), "halving"), names.end());
  EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
  MethodOptions o;
  o.method = "halving";
  o.fixed = {0.8, 2.0};
  auto m = make_meta_optimizer(o);
  EXPECT_EQ(m->name(), "halving");
  HyperStepContext ctx;
  m->before_step(ctx);
  EXPECT_DOUBLE_EQ(m->current().lambda1, 0.4);
  m->before_step(ctx);
  EXPECT_DOUBLE_EQ(m->current().lambda1, 0.2);
  EXPECT_EQ(method_given_lambda("halving"), GivenLambda::kInitial);
  o.method = "halvin";
  expect_error([&] { make_meta_optimizer(o); }, {"unknown method 'halvin'", "halving"});
}

}  // namespace

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

// The paper's initial draw of T: log10 T ~ U(−1, 1), so T spans [0.1, 10] with log-mean 0.
TEST(MetaOptimizerRegistry, LogUniformTemperatureDrawsSpanATenthToTen) {
  double lo = 1e9, hi = 0, log_sum = 0;
  const int n = 400;
  for (int s = 0; s < n; ++s) {
    const Metaparameters m = draw_metaparameters(static_cast<uint64_t>(s), "log-uniform");
    lo = std::min(lo, m.temperature);
    hi = std::max(hi, m.temperature);
    log_sum += std::log10(m.temperature);
  }
  EXPECT_GE(lo, 0.1);
  EXPECT_LT(lo, 0.15);
  EXPECT_LE(hi, 10.0);
  EXPECT_GT(hi, 7.0);
  EXPECT_NEAR(log_sum / n, 0.0, 0.1);  // standard error of the mean: 0.58 / 20
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

TEST(FixedMethod, OverAnotherSpaceHoldsTheValuesOfItsCoordinates) {
  FixedMetaOptimizer m("all-pairs-fixed", vid_space(3), {0.0, 0.0, 0.0, 0.7});
  const auto v = m.values();
  ASSERT_EQ(v.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(v[i], 1.0 / 3, 1e-15);
  EXPECT_DOUBLE_EQ(v[3], 0.7);
  EXPECT_TRUE(m.uses_teacher());
  expect_error([] { FixedMetaOptimizer("x", vid_space(3), {0.0, 0.5}); },
               {"2 coordinates", "lambda_1, lambda_2, lambda_3, beta"});
}

}  // namespace metadistill
