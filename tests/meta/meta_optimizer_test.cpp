#include "metadistill/meta/meta_optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

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
