// The random sampler (search/sampler.h): numpy's generator draw for draw, and draws from the
// prior that depend on the trial number only.
#include "metadistill/search/sampler.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/search/search_space.h"
#include "metadistill/util/error.h"
#include "test_util.h"

using namespace metadistill;

TEST(RandomSampler, GeneratorMatchesNumpy) {
  // numpy.random.RandomState(7).random_sample(3) and RandomState(0).random_sample(2).
  SamplerRandom r7(7), r0(0);
  EXPECT_EQ(r7.uniform(), 0.07630828937395717);
  EXPECT_EQ(r7.uniform(), 0.7799187922401146);
  EXPECT_EQ(r7.uniform(), 0.4384092314408935);
  EXPECT_EQ(r0.uniform(), 0.5488135039273248);
  EXPECT_EQ(r0.uniform(), 0.7151893663724195);
  // Per-trial seeds differ between trials and between study seeds.
  EXPECT_NE(trial_seed(0, 0), trial_seed(0, 1));
  EXPECT_NE(trial_seed(0, 0), trial_seed(1, 0));
  EXPECT_EQ(trial_seed(3, 5), trial_seed(3, 5));
}

TEST(RandomSampler, DrawsFromThePriorDeterministicallyPerTrial) {
  const SearchSpace s = metaparameter_space();
  RandomSampler a(1), b(1), c(2);
  const std::vector<FrozenTrial> none;
  EXPECT_EQ(a.ask(s, none, Direction::kMinimize, 7), b.ask(s, none, Direction::kMinimize, 7));
  EXPECT_NE(a.ask(s, none, Direction::kMinimize, 7), c.ask(s, none, Direction::kMinimize, 7));
  // λ1 ~ U(0, 1): mean 1/2; T log-uniform on [0.1, 10]: log10 T ~ U(−1, 1), so half below 1.
  const int n = 4000;
  double mean = 0, below_one = 0, below_half_decade = 0;
  for (int k = 0; k < n; ++k) {
    const auto x = a.ask(s, none, Direction::kMinimize, k);
    ASSERT_NO_THROW(s.check(x, "draw"));
    mean += x[0] / n;
    below_one += x[1] < 1.0 ? 1.0 / n : 0.0;
    below_half_decade += std::log10(x[1]) < -0.5 ? 1.0 / n : 0.0;
  }
  EXPECT_NEAR(mean, 0.5, 0.02);
  EXPECT_NEAR(below_one, 0.5, 0.03);
  EXPECT_NEAR(below_half_decade, 0.25, 0.03);
  // The uniform prior of the paper's text puts only 0.9/9.9 of T below 1.
  const SearchSpace u = metaparameter_space("uniform");
  double u_below_one = 0;
  for (int k = 0; k < n; ++k)
    u_below_one += a.ask(u, none, Direction::kMinimize, k)[1] < 1.0 ? 1.0 / n : 0.0;
  EXPECT_NEAR(u_below_one, 0.9 / 9.9, 0.02);
  EXPECT_EQ(make_sampler(a.to_json())->to_json(), a.to_json());
  EXPECT_THROW(make_sampler({{"name", "grid"}}), Error);
}
