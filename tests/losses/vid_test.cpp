#include "metadistill/losses/vid.h"

#include <cmath>
#include <set>

#include <gtest/gtest.h>

#include "metadistill/models/classifier.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;
const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// ½ · mean((m − t)² / v_c + log v_c), by loops over plain numbers.
double hand_nll(const torch::Tensor& m, const torch::Tensor& t, const std::vector<double>& v) {
  auto mc = m.contiguous().to(torch::kDouble), tc = t.contiguous().to(torch::kDouble);
  const int64_t B = m.size(0), C = m.size(1), S = m.numel() / (B * C);
  const double* mp = mc.data_ptr<double>();
  const double* tp = tc.data_ptr<double>();
  double sum = 0;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c)
      for (int64_t s = 0; s < S; ++s) {
        const int64_t k = (b * C + c) * S + s;
        const double d = mp[k] - tp[k];
        sum += d * d / v[c] + std::log(v[c]);
      }
  return 0.5 * sum / static_cast<double>(B * C * S);
}

TEST(VidNll, MatchesAHandComputedExample) {
  auto m = torch::tensor({{1.0, 2.0}, {3.0, 4.0}}, kF64);
  auto t = torch::tensor({{0.0, 2.0}, {1.0, 1.0}}, kF64);
  auto v = torch::tensor({1.0, 4.0}, kF64);
  // Elements: 1 + 0, 0 + log 4, 4 + 0, 9/4 + log 4 → sum 7.25 + 2 log 4, mean /4, times ½.
  const double expected = 0.5 * (7.25 + 2 * std::log(4.0)) / 4.0;
  EXPECT_NEAR(functional::vid_nll(m, t, v).item<double>(), expected, 1e-15);
  EXPECT_NEAR(expected, 1.2528235902799726, 1e-15);
}

TEST(VidNll, MatchesLoopsOnFeatureMaps) {
  torch::manual_seed(1);
  auto m = torch::randn({3, 4, 2, 5}, kF64), t = torch::randn({3, 4, 2, 5}, kF64);
  std::vector<double> v = {0.5, 1.0, 2.5, 7.0};
  EXPECT_NEAR(functional::vid_nll(m, t, torch::tensor(v, kF64)).item<double>(), hand_nll(m, t, v),
              1e-13);
}

TEST(VidNll, RejectsMismatchedShapes) {
  auto m = torch::zeros({2, 3}), t = torch::zeros({2, 4});
  expect_error([&] { functional::vid_nll(m, t, torch::ones({3})); }, {"[2, 3]", "[2, 4]"});
  expect_error([&] { functional::vid_nll(m, m, torch::ones({4})); }, {"one value per channel"});
}

TEST(VidTerm, StartsAtVarianceFive) {
  VID vid(VIDOptions({4, 6, 6}, {3, 3, 3}));
  vid->to(torch::kDouble);
  auto v = vid->variance();
  ASSERT_EQ(v.sizes(), torch::IntArrayRef({3}));
  for (int64_t c = 0; c < 3; ++c) EXPECT_NEAR(v[c].item<double>(), 5.0, 1e-6);
  EXPECT_NEAR(functional::softplus_inverse_for(5.0, 1e-5), std::log(std::expm1(5.0 - 1e-5)), 1e-12);
}

TEST(VidTerm, RegressorIsThreeOneByOneConvolutionsOrOneLinear) {
  VID maps(VIDOptions({4, 6, 6}, {3, 3, 3}));
  ASSERT_EQ(maps->regressor->size(), 5u);  // conv, relu, conv, relu, conv
  int convs = 0;
  for (const auto& p : maps->named_parameters())
    if (p.key().find("weight") != std::string::npos) {
      ++convs;
      EXPECT_EQ(p.value().size(2), 1);
      EXPECT_EQ(p.value().size(3), 1);
    }
  EXPECT_EQ(convs, 3);
  VID vec(VIDOptions({8}, {5}));
  ASSERT_EQ(vec->regressor->size(), 1u);
  EXPECT_EQ(vec->forward(torch::randn({2, 8}), torch::randn({2, 5})).dim(), 0);
}

// The student map is larger: pooled 2×2 → 1 before the regressor; the loss is the NLL of the
// regressor's output against the teacher's map, computed here by loops.
TEST(VidTerm, ForwardMatchesHandComputationWithPooling) {
  torch::manual_seed(2);
  VID vid(VIDOptions({2, 4, 4}, {3, 2, 2}));
  vid->to(torch::kDouble);
  auto s = torch::randn({2, 2, 4, 4}, kF64), t = torch::randn({2, 3, 2, 2}, kF64);
  auto pooled = torch::zeros({2, 2, 2, 2}, kF64);
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t c = 0; c < 2; ++c)
      for (int64_t i = 0; i < 2; ++i)
        for (int64_t j = 0; j < 2; ++j)
          pooled[b][c][i][j] = (s[b][c][2 * i][2 * j] + s[b][c][2 * i + 1][2 * j] +
                                s[b][c][2 * i][2 * j + 1] + s[b][c][2 * i + 1][2 * j + 1]) /
                               4.0;
  torch::NoGradGuard no_grad;
  auto mu = vid->regressor->forward(pooled);
  const double expected = hand_nll(mu, t, {5.0, 5.0, 5.0});
  EXPECT_NEAR(vid->forward(s, t).item<double>(), expected, 1e-6);  // σ² = 5 up to softplus ε
}

TEST(VidTerm, AlignsNonSquareMapsDimensionByDimension) {
  auto s = torch::arange(2 * 1 * 6 * 4, kF64).view({2, 1, 6, 4});
  auto t = torch::arange(2 * 1 * 3 * 8, kF64).view({2, 1, 3, 8});
  auto [sa, ta] = functional::align_spatial(s, t);
  ASSERT_EQ(sa.sizes(), torch::IntArrayRef({2, 1, 3, 4}));
  ASSERT_EQ(ta.sizes(), torch::IntArrayRef({2, 1, 3, 4}));
  // Student: pairs of rows averaged; teacher: pairs of columns averaged.
  EXPECT_DOUBLE_EQ(sa[0][0][0][0].item<double>(), (s[0][0][0][0] + s[0][0][1][0]).item<double>() / 2);
  EXPECT_DOUBLE_EQ(ta[1][0][2][3].item<double>(), (t[1][0][2][6] + t[1][0][2][7]).item<double>() / 2);
  VID vid(VIDOptions({1, 6, 4}, {1, 3, 8}));
  vid->to(torch::kDouble);
  EXPECT_TRUE(std::isfinite(vid->forward(s, t).item<double>()));
}

TEST(VidTerm, GradientMatchesCentralDifferences) {
  torch::manual_seed(3);
  VID vid(VIDOptions({2, 3, 3}, {3, 3, 3}).hidden(4));
  vid->to(torch::kDouble);
  {
    torch::NoGradGuard no_grad;
    vid->alpha.copy_(torch::tensor({-0.3, 0.4, 1.2}, kF64));  // unequal variances
  }
  auto s = torch::randn({2, 2, 3, 3}, kF64).requires_grad_();
  auto t = torch::randn({2, 3, 3, 3}, kF64);
  std::vector<torch::Tensor> wrt = {s, vid->alpha};
  for (auto& p : vid->regressor->parameters()) wrt.push_back(p);
  auto grads = torch::autograd::grad({vid->forward(s, t)}, wrt);
  const double eps = 1e-6;
  int checked = 0;
  for (size_t k = 0; k < wrt.size(); ++k) {
    auto flat = wrt[k].detach().view({-1});
    for (int64_t i = 0; i < flat.numel(); i += std::max<int64_t>(1, flat.numel() / 7)) {
      const double orig = flat[i].item<double>();
      double lp, lm;
      {
        torch::NoGradGuard no_grad;
        flat[i] = orig + eps;
        lp = vid->forward(s, t).item<double>();
        flat[i] = orig - eps;
        lm = vid->forward(s, t).item<double>();
        flat[i] = orig;
      }
      const double fd = (lp - lm) / (2 * eps);
      const double an = grads[k].view({-1})[i].item<double>();
      EXPECT_NEAR(an, fd, 1e-7 + 1e-6 * std::abs(fd)) << "tensor " << k << " entry " << i;
      ++checked;
    }
  }
  EXPECT_GT(checked, 20);
}

TEST(VidTerm, RejectsAMapAgainstAVector) {
  expect_error([] { VID(VIDOptions({8, 4, 4}, {16})); },
               {"[8, 4, 4]", "[16]", "cannot be aligned"});
  expect_error([] { functional::align_spatial(torch::zeros({2, 8, 4, 4}), torch::zeros({2, 16})); },
               {"[2, 8, 4, 4]", "[2, 16]", "cannot be aligned"});
}

Features fake_features(const std::vector<std::pair<std::string, std::vector<int64_t>>>& taps) {
  Features f;
  for (const auto& [name, shape] : taps) f.emplace_back(name, torch::randn(shape));
  return f;
}

TEST(MultiVid, RegistersOneTermPerPairAndWeightsTheirSum) {
  torch::manual_seed(4);
  auto teacher = fake_features({{"a", {2, 4, 4, 4}}, {"b", {2, 6}}, {"logits", {2, 3}}});
  auto student = fake_features({{"x", {2, 2, 8, 8}}, {"y", {2, 5}}, {"logits", {2, 3}}});
  MultiVID vid(std::vector<TapPair>{{"a", "x"}, {"b", "y"}}, teacher, student);
  std::set<std::string> names;
  for (const auto& p : vid->named_parameters()) names.insert(p.key());
  EXPECT_TRUE(names.count("pair0.alpha"));
  EXPECT_TRUE(names.count("pair1.alpha"));
  EXPECT_TRUE(names.count("pair0.regressor.4.weight"));
  EXPECT_TRUE(names.count("pair1.regressor.0.weight"));
  auto terms = vid->pair_losses(teacher, student);
  ASSERT_EQ(terms.sizes(), torch::IntArrayRef({2}));
  auto w = torch::tensor({0.25, 0.75});
  EXPECT_NEAR(vid->forward(teacher, student, w).item<double>(),
              (0.25 * terms[0] + 0.75 * terms[1]).item<double>(), 1e-5);
  EXPECT_NEAR(terms[0].item<double>(), vid->term(0)->forward(student[0].second, teacher[0].second).item<double>(), 1e-6);
}

TEST(MultiVid, NamesAMissingTapAndWhatIsOffered) {
  auto teacher = fake_features({{"a", {2, 4, 4, 4}}, {"logits", {2, 3}}});
  auto student = fake_features({{"x", {2, 2, 8, 8}}, {"logits", {2, 3}}});
  expect_error([&] { MultiVID(std::vector<TapPair>{{"a", "nope"}}, teacher, student); }, {"'nope'", "x, logits"});
  expect_error([&] { MultiVID(std::vector<TapPair>{{"a", "logits"}}, teacher, student); },
               {"teacher 'a'", "student 'logits'", "cannot be aligned"});
}

TEST(CheckTaps, ListsTheTapsTheModelOffers) {
  auto model = make_model(ModelSpec("conv-tiny", 10, {1, 28, 28}));
  check_taps(*model, {"conv1", "fc1"}, "teacher");
  expect_error([&] { check_taps(*model, {"conv1", "conv9"}, "teacher"); },
               {"teacher", "conv-tiny", "'conv9'", "conv1, conv2, conv3, fc1, logits"});
}

}  // namespace
}  // namespace metadistill
