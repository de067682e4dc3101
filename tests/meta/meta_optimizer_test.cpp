#include "metadistill/meta/meta_optimizer.h"

#include <gtest/gtest.h>

#include <algorithm>

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
  Metaparameters before_step(const HyperStepContext& ctx) override {
    value_.lambda1 *= 0.5;
    return value_;
  }
  Metaparameters current() const override { return value_; }
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
  EXPECT_DOUBLE_EQ(m->before_step(ctx).lambda1, 0.4);
  EXPECT_DOUBLE_EQ(m->before_step(ctx).lambda1, 0.2);
  EXPECT_EQ(method_given_lambda("halving"), GivenLambda::kInitial);
  o.method = "halvin";
  expect_error([&] { make_meta_optimizer(o); }, {"unknown method 'halvin'", "halving"});
}

}  // namespace
}  // namespace metadistill
