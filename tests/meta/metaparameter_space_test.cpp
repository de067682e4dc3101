#include "metadistill/meta/metaparameter_space.h"

#include <cmath>
#include <random>

#include <gtest/gtest.h>

#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/util/error.h"

using namespace metadistill;

namespace {

// A space with every domain and both steppings: [a, t, w1, w2, w3, beta, s].
MetaSpace mixed_space() {
  return MetaSpace()
      .interval("a", -2.0, 3.0, true)
      .log_interval("t", 0.1, 10.0, true)
      .simplex({"w1", "w2", "w3"})
      .interval("beta", 0.2, 0.9)
      .log_interval("s", 0.5, 4.0);
}

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

// The Hinton space draws what the paper draws: λ1 ~ U(0, 1), log10 T ~ U(−1, 1), bit for bit.
TEST(MetaSpace, HintonDrawIsThePapersDraw) {
  const auto space = hinton_space();
  for (double u1 : {0.0, 0.123, 0.5, 0.77, 0.999}) {
    const auto v = space.draw({u1, 1 - u1});
    EXPECT_EQ(v[0], u1);
    EXPECT_EQ(v[1], std::pow(10.0, -1.0 + 2.0 * (1 - u1)));
  }
  EXPECT_EQ(space.names(), (std::vector<std::string>{"lambda1", "temperature"}));
}

// A simplex draw normalizes the uniforms; interval draws are affine in u.
TEST(MetaSpace, DrawsLieInTheirDomains) {
  const auto space = mixed_space();
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<double> u(0, 1);
  for (int k = 0; k < 50; ++k) {
    std::vector<double> us(space.size());
    for (auto& x : us) x = u(rng);
    const auto v = space.draw(us);
    EXPECT_NO_THROW(space.validate(v, "draw"));
    const double sum = us[2] + us[3] + us[4];
    EXPECT_NEAR(v[3], us[3] / sum, 1e-15);
    EXPECT_NEAR(v[5], 0.2 + 0.7 * us[5], 1e-15);
    // The coordinates of a draw map back to it.
    const auto back = space.from_coordinates(space.draw_coordinates(us));
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(back[i], v[i], 1e-12) << space[i].name;
  }
}

// from_coordinates ∘ to_coordinates is the identity inside every domain.
TEST(MetaSpace, CoordinatesRoundTrip) {
  const auto space = mixed_space();
  const std::vector<double> v = {0.4, 2.5, 0.2, 0.5, 0.3, 0.35, 1.7};
  const auto back = space.from_coordinates(space.to_coordinates(v));
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(back[i], v[i], 1e-12) << space[i].name;
  // The Hinton maps of the gradient method: λ1 = σ(a), T = 0.1 + softplus(b).
  const auto c = hinton_space(true).to_coordinates({0.3, 2.0});
  EXPECT_NEAR(c[0], std::log(0.3 / 0.7), 1e-14);
  EXPECT_NEAR(c[1], std::log(std::expm1(2.0 - 0.1)), 1e-14);
}

// Reparametrized values never leave their domain, whatever the coordinates; projected ones are
// clamped.
TEST(MetaSpace, ValuesOfAnyCoordinatesAreInTheDomain) {
  const auto space = mixed_space();
  for (double c : {-1e3, -30.0, -1.0, 0.0, 2.0, 40.0, 1e3}) {
    const auto v = space.from_coordinates(std::vector<double>(space.size(), c));
    EXPECT_NO_THROW(space.validate(v, "values")) << c;
  }
  const auto v = space.from_coordinates({0, 0, 0, 0, 0, 5.0, -3.0});
  EXPECT_EQ(v[5], 0.9);
  EXPECT_EQ(v[6], 0.5);
}

// The chain rule against float64 central differences of the maps themselves, for a linear f
// with gradient g with respect to the values.
TEST(MetaSpace, ChainRuleMatchesCentralDifferences) {
  const auto space = mixed_space();
  const std::vector<double> v = {1.1, 0.7, 0.6, 0.1, 0.3, 0.5, 3.0};
  const std::vector<double> g = {0.3, -1.2, 0.8, -0.4, 2.0, 0.7, -0.25};
  const auto c = space.to_coordinates(v);
  const auto gc = space.chain_rule(v, g);
  auto f = [&](const std::vector<double>& coords) {
    const auto x = space.from_coordinates(coords);
    double s = 0;
    for (size_t i = 0; i < x.size(); ++i) s += g[i] * x[i];
    return s;
  };
  const double e = 1e-6;
  for (size_t i = 0; i < c.size(); ++i) {
    auto up = c, down = c;
    up[i] += e;
    down[i] -= e;
    EXPECT_NEAR(gc[i], (f(up) - f(down)) / (2 * e), 1e-8) << space[i].name;
  }
}

// The tensor map equals the double one, and autograd through it gives the chain rule.
TEST(MetaSpace, TensorMapAgreesAndDifferentiates) {
  const auto space = mixed_space();
  const std::vector<double> c = {0.3, -0.4, 1.0, -0.5, 0.2, 0.5, 2.0};
  const std::vector<double> g = {0.3, -1.2, 0.8, -0.4, 2.0, 0.7, -0.25};
  auto ct = torch::tensor(c, torch::kDouble).requires_grad_(true);
  auto vt = space.from_coordinates(ct);
  const auto v = space.from_coordinates(c);
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_NEAR(vt[static_cast<int64_t>(i)].item<double>(), v[i], 1e-14) << space[i].name;
  (vt * torch::tensor(g, torch::kDouble)).sum().backward();
  const auto gc = space.chain_rule(v, g);
  for (size_t i = 0; i < c.size(); ++i)
    EXPECT_NEAR(ct.grad()[static_cast<int64_t>(i)].item<double>(), gc[i], 1e-12) << space[i].name;
}

// Projection: intervals clamp; a simplex group goes to the nearest point of the simplex (checked
// on known cases and against random points of the simplex, none of which is nearer).
TEST(MetaSpace, ProjectionFindsTheNearestPoint) {
  const auto space = MetaSpace().simplex({"p", "q", "r"}).interval("beta", 0, 1);
  auto p = space.project({0.5, 0.5, 0.5, 1.5});
  for (int i = 0; i < 3; ++i) EXPECT_NEAR(p[i], 1.0 / 3, 1e-15);
  EXPECT_EQ(p[3], 1.0);
  p = space.project({0.6, 0.6, -1.0, -0.2});
  EXPECT_NEAR(p[0], 0.5, 1e-15);
  EXPECT_NEAR(p[1], 0.5, 1e-15);
  EXPECT_EQ(p[2], 0.0);
  EXPECT_EQ(p[3], 0.0);
  std::mt19937_64 rng(5);
  std::normal_distribution<double> n(0, 1);
  std::uniform_real_distribution<double> u(0, 1);
  for (int k = 0; k < 20; ++k) {
    const std::vector<double> x = {n(rng), n(rng), n(rng), 0.5};
    const auto px = space.project(x);
    EXPECT_NO_THROW(space.validate(px, "projection"));
    auto dist = [&](const std::vector<double>& q) {
      double s = 0;
      for (int i = 0; i < 3; ++i) s += (x[i] - q[i]) * (x[i] - q[i]);
      return s;
    };
    for (int j = 0; j < 200; ++j) {
      const auto q = space.draw({u(rng), u(rng), u(rng), 0.5});
      EXPECT_LE(dist(px), dist(q) + 1e-12);
    }
  }
}

// Bad values and bad spaces are named.
TEST(MetaSpace, ErrorsNameTheComponentAndTheValue) {
  const auto space = mixed_space();
  auto v = std::vector<double>{0.4, 2.5, 0.2, 0.5, 0.3, 0.35, 1.7};
  v[1] = 11.0;
  auto msg = error_of([&] { space.validate(v, "config x.yaml"); });
  EXPECT_NE(msg.find("config x.yaml"), std::string::npos) << msg;
  EXPECT_NE(msg.find("t = 11"), std::string::npos) << msg;
  v[1] = 2.5;
  v[2] = 0.3;
  msg = error_of([&] { space.validate(v, "weights"); });
  EXPECT_NE(msg.find("w1..w3 sum to 1.1"), std::string::npos) << msg;
  v[2] = std::nan("");
  EXPECT_NE(error_of([&] { space.validate(v, "w"); }).find("w1 = nan"), std::string::npos);
  EXPECT_NE(error_of([&] { space.validate({0.1}, "w"); }).find("1 values for the 7"),
            std::string::npos);
  EXPECT_NE(error_of([&] { space.index("gamma"); }).find("expected one of a, t, w1"),
            std::string::npos);
  EXPECT_NE(error_of([] { MetaSpace().interval("a", 0, 1).interval("a", 0, 2); })
                .find("'a' given twice"),
            std::string::npos);
  EXPECT_NE(error_of([] { MetaSpace().log_interval("t", 0, 1); }).find("lo > 0"),
            std::string::npos);
  EXPECT_NE(error_of([] { MetaSpace().interval("b", 0.5, 0.5, true); }).find("lo < hi"),
            std::string::npos);
  EXPECT_EQ(error_of([] { MetaSpace().interval("b", 0.5, 0.5); }), "");
  EXPECT_EQ(space.index("beta"), 5u);
}

// The VID space: P pair weights on one simplex, then β.
// What a stepping method keeps: projected components clamped, a reparametrized interval back at
// the coordinate of its capped value, a simplex group untouched (its values do not see a shift).
TEST(MetaSpace, SettleKeepsCoordinatesInReach) {
  auto s = MetaSpace().interval("p", 0, 1).interval("r", 0, 1, true).simplex({"a", "b"});
  const std::vector<double> c = {1.7, 100.0, 40.0, 42.0};
  const auto settled = s.settle(c);
  EXPECT_DOUBLE_EQ(settled[0], 1.0);
  EXPECT_LT(settled[1], 20.0);  // logit(1 − 1e-6) ≈ 13.8
  EXPECT_GT(settled[1], 10.0);
  EXPECT_EQ(settled[2], 40.0);
  EXPECT_EQ(settled[3], 42.0);
  const auto a = s.from_coordinates(c), b = s.from_coordinates(settled);
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], b[i], 1e-15) << i;
}

TEST(MetaSpace, VidSpaceHoldsThePairsThenBeta) {
  const auto space = vid_space(3, 0.1, 0.9);
  EXPECT_EQ(space.names(), (std::vector<std::string>{"lambda_1", "lambda_2", "lambda_3", "beta"}));
  const auto v = space.from_coordinates({0.0, 0.0, std::log(2.0), 0.5});
  EXPECT_NEAR(v[0], 0.25, 1e-15);
  EXPECT_NEAR(v[2], 0.5, 1e-15);
  EXPECT_EQ(v[3], 0.5);
  EXPECT_EQ(vid_space(0).names(), (std::vector<std::string>{"beta"}));
}
