// The Hinton metaparameters [λ1, T] (meta/metaparameters.h): validation names the bad value,
// clamping is the projection onto [0, 1] × [0.1, 10], and the vector form round-trips.
#include "metadistill/meta/metaparameters.h"

#include <gtest/gtest.h>

#include <cmath>

#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

TEST(Metaparameters, ValidationNamesTheBadValue) {
  Metaparameters{0.0, 0.5}.validate();
  Metaparameters{1.0, 25.0}.validate();  // T > 0 is all a fixed setting needs
  expect_error([] { Metaparameters{1.5, 1.0}.validate(); }, {"1.5"});
  expect_error([] { Metaparameters{0.5, 0.0}.validate(); }, {"0"});
  expect_error([] { Metaparameters{0.5, std::nan("")}.validate(); }, {"nan"});
}

TEST(Metaparameters, ClampedIsTheProjectionOntoTheOptimizingDomain) {
  const auto c = Metaparameters{-0.2, 40.0}.clamped();
  EXPECT_EQ(c.lambda1, 0.0);
  EXPECT_EQ(c.temperature, Metaparameters::kMaxTemperature);
  const auto d = Metaparameters{1.3, 0.01}.clamped();
  EXPECT_EQ(d.lambda1, 1.0);
  EXPECT_EQ(d.temperature, Metaparameters::kMinTemperature);
  const auto inside = Metaparameters{0.3, 2.0}.clamped();
  EXPECT_EQ(inside.lambda1, 0.3);
  EXPECT_EQ(inside.temperature, 2.0);
}

TEST(Metaparameters, VectorFormRoundTripsAndPlainCeIsLambdaOne) {
  const Metaparameters m{0.25, 3.5};
  const auto back = Metaparameters::from_vector(m.to_vector());
  EXPECT_EQ(back.lambda1, 0.25);
  EXPECT_EQ(back.temperature, 3.5);
  expect_error([] { Metaparameters::from_vector({0.5}); }, {"1 values"});
  EXPECT_TRUE((Metaparameters{1.0, 7.0}.is_plain_ce()));
  EXPECT_FALSE((Metaparameters{0.999, 1.0}.is_plain_ce()));
  EXPECT_EQ(m.to_string(), "lambda1=0.25 T=3.5");
}

}  // namespace
}  // namespace metadistill
