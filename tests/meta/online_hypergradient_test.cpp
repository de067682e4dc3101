// The online forward-mode hypergradient (RTHO with MARTHE's decay μ) in float64: with μ = 1 it is
// the derivative of L_val after K real optimizer steps, checked against the brute-force central
// difference of K unrolled steps at m ± δ; with μ = 0 it is the lagged greedy hypergradient.
#include <gtest/gtest.h>

#include <cmath>
#include <sstream>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/online_hypergradient.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/models/classifier.h"
#include "metadistill/util/error.h"

using namespace metadistill;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// A run of K steps on a fixed problem: logistic regression ("logreg") or a small net with
// BatchNorm ("bn": Linear → BatchNorm1d → tanh → Linear), trained with the Hinton loss at m.
struct Unrolled {
  std::string net, kind;
  torch::nn::Sequential model{nullptr};
  std::unique_ptr<torch::optim::Optimizer> opt;
  std::vector<torch::Tensor> xs, ys, teachers;
  torch::Tensor x_val, y_val;
  double lr = 0;
  // step_norm ce: each step's gradient rescaled to the length of the cross-entropy's on the same
  // logits, as the trainer does (train/trainer.cpp).
  bool normed = false;

  Unrolled(std::string net_, std::string kind_, int64_t steps) : net(std::move(net_)), kind(std::move(kind_)) {
    torch::manual_seed(11);
    if (net == "logreg") {
      model = torch::nn::Sequential(torch::nn::Linear(4, 3));
    } else {
      model = torch::nn::Sequential(torch::nn::Linear(4, 6), torch::nn::BatchNorm1d(6),
                                    torch::nn::Functional(torch::tanh), torch::nn::Linear(6, 3));
    }
    model->to(torch::kDouble);
    model->train();
    for (int64_t t = 0; t < steps; ++t) {
      xs.push_back(torch::randn({8, 4}, kF64));
      ys.push_back(torch::randint(3, {8}, torch::kLong));
      teachers.push_back(2 * torch::randn({8, 3}, kF64));
    }
    x_val = torch::randn({12, 4}, kF64);
    y_val = torch::randint(3, {12}, torch::kLong);
    auto params = model->parameters();
    make_optimizer(params);
    warm_up();
  }

  // Three steps at a fixed m before the unrolled ones (Z_t0 = 0 at their end): the optimizer's
  // state is warm, so Adam's steps are not the sign-like first ones, whose derivative in m is ~0.
  void warm_up() {
    const auto m0 = torch::tensor({0.5, 2.0}, kF64);
    for (int t = 0; t < 3; ++t) {
      auto x = torch::randn({8, 4}, kF64);
      auto y = torch::randint(3, {8}, torch::kLong);
      auto teacher = 2 * torch::randn({8, 3}, kF64);
      opt->zero_grad();
      functional::hinton_loss(model->forward(x), teacher, y, m0[0], m0[1], KdScale::kNone).backward();
      opt->step();
    }
  }

  void make_optimizer(const std::vector<torch::Tensor>& params) {
    if (kind == "adam") {
      lr = 0.02;
      opt = std::make_unique<torch::optim::Adam>(params,
                                                 torch::optim::AdamOptions(lr).weight_decay(1e-3));
    } else {
      lr = 0.2;
      opt = std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(lr)
                      .momentum(kind == "momentum" ? 0.9 : 0.0)
                      .weight_decay(kind == "momentum" ? 1e-3 : 0.0));
    }
  }

  torch::Tensor train_loss(int64_t t, const torch::Tensor& m) {
    return functional::hinton_loss(model->forward(xs[t]), teachers[t], ys[t], m[0], m[1],
                                   KdScale::kNone);
  }
  torch::Tensor val_loss() {
    return torch::nn::functional::cross_entropy(model->forward(x_val), y_val);
  }

  // K real optimizer steps at m; the tangents carried by `online` when given.
  void unroll(const torch::Tensor& m, OnlineHypergradient* online) {
    auto params = model->parameters();
    std::vector<torch::nn::Module*> modules{model.get()};
    for (size_t t = 0; t < xs.size(); ++t) {
      auto w_before = snapshot_parameters(params);
      opt->zero_grad();
      if (normed) {
        auto logits = model->forward(xs[t]);
        auto g = torch::autograd::grad(
            {functional::hinton_loss(logits, teachers[t], ys[t], m[0], m[1], KdScale::kNone)},
            params, {}, /*retain_graph=*/true);
        auto c = torch::autograd::grad(
            {torch::nn::functional::cross_entropy(logits, ys[t])}, params);
        double g2 = 0, c2 = 0;
        for (size_t i = 0; i < params.size(); ++i) {
          g2 += g[i].pow(2).sum().item<double>();
          c2 += c[i].pow(2).sum().item<double>();
        }
        for (size_t i = 0; i < params.size(); ++i)
          params[i].mutable_grad() = g[i].detach() * std::sqrt(c2 / g2);
      } else {
        train_loss(static_cast<int64_t>(t), m).backward();
      }
      std::vector<torch::Tensor> grads;
      for (auto& p : params) grads.push_back(p.grad().detach().clone());
      opt->step();
      if (online)
        online->carry(
            params, w_before, grads, *opt, kind, lr,
            [&](const torch::Tensor& mm) { return train_loss(static_cast<int64_t>(t), mm); }, m,
            modules, {}, 0,
            normed ? ValLossFn([&] {
              return torch::nn::functional::cross_entropy(model->forward(xs[t]), ys[t]);
            })
                   : ValLossFn());
    }
  }
};

torch::Tensor brute_force(const std::string& net, const std::string& kind, int64_t steps,
                          const torch::Tensor& m, double delta, bool normed = false) {
  auto g = torch::zeros({m.size(0)}, kF64);
  for (int64_t j = 0; j < m.size(0); ++j) {
    double at[2];
    for (int s = 0; s < 2; ++s) {
      Unrolled run(net, kind, steps);
      run.normed = normed;
      auto mj = m.clone();
      mj[j] += (s == 0 ? delta : -delta);
      run.unroll(mj, nullptr);
      torch::NoGradGuard no_grad;
      at[s] = run.val_loss().item<double>();
    }
    g[j] = (at[0] - at[1]) / (2 * delta);
  }
  return g;
}

torch::Tensor online_gradient(const std::string& net, const std::string& kind, int64_t steps,
                              const torch::Tensor& m, const OnlineHypergradientOptions& options,
                              bool normed = false) {
  Unrolled run(net, kind, steps);
  run.normed = normed;
  OnlineHypergradient online(options);
  run.unroll(m, &online);
  return online
      .hypergradient(run.model->parameters(), [&] { return run.val_loss(); }, {run.model.get()})
      .gradient;
}

double relative_error(const torch::Tensor& a, const torch::Tensor& b) {
  return (a - b).norm().item<double>() / b.norm().item<double>();
}

struct Case {
  std::string net, kind;
  int64_t steps;
};

class OnlineUnrolled : public ::testing::TestWithParam<Case> {};

TEST_P(OnlineUnrolled, ExactProductWithMuOneIsTheDerivativeOfTheUnrolledValidationLoss) {
  const auto& c = GetParam();
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  const auto reference = brute_force(c.net, c.kind, c.steps, m, 1e-5);
  const auto g = online_gradient(c.net, c.kind, c.steps, m,
                                 OnlineHypergradientOptions().mu(1.0).product("exact"));
  ASSERT_GT(reference.norm().item<double>(), 1e-6) << "a flat problem checks nothing";
  EXPECT_LT(relative_error(g, reference), 1e-6)
      << c.net << " " << c.kind << " K=" << c.steps << ": online " << g << " brute force " << reference;
}

TEST_P(OnlineUnrolled, FiniteDifferenceProductsApproachTheExactOne) {
  const auto& c = GetParam();
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  const auto exact = online_gradient(c.net, c.kind, c.steps, m,
                                     OnlineHypergradientOptions().mu(1.0).product("exact"));
  const auto central = online_gradient(
      c.net, c.kind, c.steps, m,
      OnlineHypergradientOptions().mu(1.0).product("fd").fd_scheme("central").fd_scale(1e-4));
  const auto forward = online_gradient(
      c.net, c.kind, c.steps, m,
      OnlineHypergradientOptions().mu(1.0).product("fd").fd_scheme("forward").fd_scale(1e-6));
  EXPECT_LT(relative_error(central, exact), 1e-6) << c.net << " " << c.kind << " K=" << c.steps;
  EXPECT_LT(relative_error(forward, exact), 1e-4) << c.net << " " << c.kind << " K=" << c.steps;
}

// step_norm ce: the tangent of the normalized step d = ‖∇CE‖·∇L/‖∇L‖ is carried (one more
// Hessian-vector product); with μ = 1 the hypergradient is again the derivative of L_val after K
// unrolled normalized steps, and it differs from the unnormalized run's.
TEST(OnlineHypergradient, NormalizedStepsCarryTheTangentOfTheNormalization) {
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  for (const std::string net : {"logreg", "bn"})
    for (const std::string kind : {"sgd", "momentum", "adam"}) {
      const auto reference = brute_force(net, kind, 5, m, 1e-5, /*normed=*/true);
      const auto g = online_gradient(net, kind, 5, m,
                                     OnlineHypergradientOptions().mu(1.0).product("exact"),
                                     /*normed=*/true);
      ASSERT_GT(reference.norm().item<double>(), 1e-6) << net << " " << kind;
      EXPECT_LT(relative_error(g, reference), 1e-6)
          << net << " " << kind << ": online " << g << " brute force " << reference;
      const auto plain = online_gradient(net, kind, 5, m,
                                         OnlineHypergradientOptions().mu(1.0).product("exact"));
      EXPECT_GT(relative_error(plain, reference), 1e-3) << net << " " << kind;
    }
  // Only the exact product forms the normalization's tangent.
  Unrolled run("logreg", "sgd", 1);
  run.normed = true;
  OnlineHypergradient fd(OnlineHypergradientOptions().product("fd"));
  EXPECT_THROW(run.unroll(m, &fd), metadistill::Error);
}

std::vector<Case> cases() {
  std::vector<Case> out;
  for (const std::string net : {"logreg", "bn"})
    for (const std::string kind : {"sgd", "momentum", "adam"})
      for (int64_t k : {1, 5, 20}) out.push_back({net, kind, k});
  return out;
}

INSTANTIATE_TEST_SUITE_P(NetsOptimizersHorizons, OnlineUnrolled, ::testing::ValuesIn(cases()),
                         [](const auto& info) {
                           return info.param.net + "_" + info.param.kind + "_" +
                                  std::to_string(info.param.steps);
                         });

// μ = 0 keeps only the last step's tangent −γ P ∂g/∂m, so the online hypergradient must be the
// greedy hypergradient of that step in its lagged order, computed independently by
// `lagged_hypergradient`.
TEST(OnlineHypergradient, MuZeroEqualsTheLaggedGreedyHypergradient) {
  for (const std::string kind : {"sgd", "momentum", "adam"}) {
    torch::manual_seed(3);
    auto model = make_model(ModelSpec("logreg", 3, {4}));
    model->to(torch::kDouble);
    auto params = model->parameters();
    std::unique_ptr<torch::optim::Optimizer> opt;
    const double lr = kind == "adam" ? 0.05 : 0.3;
    if (kind == "adam")
      opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(lr));
    else
      opt = std::make_unique<torch::optim::SGD>(
          params, torch::optim::SGDOptions(lr).momentum(kind == "momentum" ? 0.9 : 0.0));
    Batch train{torch::randn({8, 4}, kF64), torch::randint(3, {8}, torch::kLong)};
    Batch val{torch::randn({10, 4}, kF64), torch::randint(3, {10}, torch::kLong)};
    auto teacher = 2 * torch::randn({8, 3}, kF64);
    const Metaparameters lambda{0.4, 3.0};
    auto m = torch::tensor({lambda.lambda1, lambda.temperature}, kF64);
    auto loss_at = [&](const torch::Tensor& mm) {
      return functional::hinton_loss(model->forward(train.x), teacher, train.y, mm[0], mm[1],
                                     KdScale::kNone);
    };
    OnlineHypergradient online(OnlineHypergradientOptions().mu(0.0).product("exact"));
    for (int step = 0; step < 4; ++step) {
      auto w_before = snapshot_parameters(params);
      opt->zero_grad();
      auto logits = model->forward(train.x);
      functional::hinton_loss(logits, teacher, train.y, lambda.lambda1, lambda.temperature,
                              KdScale::kNone)
          .backward();
      std::vector<torch::Tensor> grads;
      for (auto& p : params) grads.push_back(p.grad().detach().clone());
      opt->step();
      online.carry(params, w_before, grads, *opt, kind, lr, loss_at, m, {model.get()});
      auto g = online.hypergradient(params, [&] { return validation_loss(*model, val, 1.0); },
                                    {model.get()});
      auto lagged = lagged_hypergradient(*model, *opt, kind, lr, w_before, grads, logits.detach(),
                                         train, teacher, val, lambda,
                                         HypergradientOptions().with_mode("exact"));
      EXPECT_NEAR(g.gradient[0].item<double>(), lagged.lambda1, 1e-12 * (1 + std::abs(lagged.lambda1)))
          << kind << " step " << step;
      EXPECT_NEAR(g.gradient[1].item<double>(), lagged.temperature,
                  1e-12 * (1 + std::abs(lagged.temperature)))
          << kind << " step " << step;
      EXPECT_NEAR(g.val_loss, lagged.val_loss, 1e-12);
    }
  }
}

// The tangents survive a checkpoint: saved and loaded, they give the same hypergradient and go
// on identically.
TEST(OnlineHypergradient, SaveAndLoadKeepTheTangents) {
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  Unrolled run("bn", "adam", 3);
  OnlineHypergradient online(OnlineHypergradientOptions().mu(0.9).product("exact"));
  run.unroll(m, &online);
  torch::serialize::OutputArchive out;
  online.save(out);
  std::ostringstream bytes;
  out.save_to(bytes);
  torch::serialize::InputArchive in;
  std::istringstream source(bytes.str());
  in.load_from(source);
  OnlineHypergradient loaded(OnlineHypergradientOptions().mu(0.9).product("exact"));
  loaded.load(in);
  auto params = run.model->parameters();
  auto val = [&] { return run.val_loss(); };
  auto a = online.hypergradient(params, val, {run.model.get()}).gradient;
  auto b = loaded.hypergradient(params, val, {run.model.get()}).gradient;
  EXPECT_TRUE(torch::equal(a, b)) << a << " vs " << b;
  EXPECT_GT(a.norm().item<double>(), 0.0);
}

TEST(OnlineHypergradient, MuBetweenZeroAndOneDiffersFromBothEnds) {
  // μ is applied: with 0 < μ < 1 older steps count less than at μ = 1 but more than at μ = 0, so
  // the hypergradient differs from both ends.
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  auto at = [&](double mu) {
    return online_gradient("logreg", "sgd", 20, m, OnlineHypergradientOptions().mu(mu).product("exact"));
  };
  auto g0 = at(0.0), g9 = at(0.9), g1 = at(1.0);
  EXPECT_GT(relative_error(g9, g1), 1e-3);
  EXPECT_GT(relative_error(g9, g0), 1e-3);
}

TEST(OnlineHypergradient, RejectsBadOptionsByName) {
  auto message = [](const OnlineHypergradientOptions& o) {
    try {
      OnlineHypergradient h(o);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message(OnlineHypergradientOptions().mu(1.5)).find("mu = 1.5"), std::string::npos);
  EXPECT_NE(message(OnlineHypergradientOptions().mu(std::nan(""))).find("mu"), std::string::npos);
  EXPECT_NE(message(OnlineHypergradientOptions().product("jvp")).find("'jvp'"), std::string::npos);
  EXPECT_NE(message(OnlineHypergradientOptions().fd_scheme("back")).find("'back'"), std::string::npos);
  EXPECT_NE(message(OnlineHypergradientOptions().fd_scale(0)).find("fd_scale"), std::string::npos);
}

}  // namespace

namespace {

// Exposes the meta-step of the gradient methods to check each rule against its closed form.
class ExposedGradientMethod : public GradientMetaOptimizer {
 public:
  ExposedGradientMethod(nlohmann::json settings)
      : GradientMetaOptimizer(initial(), GradientMethodOptions::from_json(settings)) {}
  void step_with(double h_lambda1, double h_temperature) {
    Hypergradient h;
    h.lambda1 = h_lambda1;
    h.temperature = h_temperature;
    apply(h, 0);
  }

 private:
  static MethodOptions initial() {
    MethodOptions mo;
    mo.method = "gradient";
    mo.fixed = {0.5, 5.0};
    mo.given_initial = true;
    return mo;
  }
};

TEST(MetaStep, SignStepsAreHalvedWhenTheSignFlips) {
  ExposedGradientMethod m({{"meta_step", "sign"}, {"gamma", 0.1}});
  // λ1: +, +, −, −, +  →  −0.1, −0.1, +0.05, +0.05, −0.025; T: always − → +0.1 each time.
  const double h1[] = {3.0, 1e-6, -2.0, -5.0, 0.5};
  const double expected[] = {0.4, 0.3, 0.35, 0.4, 0.375};
  for (int i = 0; i < 5; ++i) {
    m.step_with(h1[i], -1e-3);
    EXPECT_NEAR(m.current().lambda1, expected[i], 1e-12) << "step " << i;
    EXPECT_NEAR(m.current().temperature, 5.0 + 0.1 * (i + 1), 1e-12) << "step " << i;
  }
}

TEST(MetaStep, AdamMovesByGammaTimesTheBiasCorrectedRatio) {
  ExposedGradientMethod m({{"meta_step", "adam"}, {"gamma", 0.1}});
  // First step: m̂ = g, v̂ = g², so each coordinate moves by γ·g/(|g| + ε) ≈ γ·sign(g).
  m.step_with(4.0, -0.02);
  EXPECT_NEAR(m.current().lambda1, 0.4, 1e-8);
  EXPECT_NEAR(m.current().temperature, 5.1, 1e-6);
  // Second step with g = 1 after 4: m = 0.9·0.4 + 0.1 = 0.46 → m̂ = 0.46/0.19; v = 0.999·0.016·…
  const double m1 = 0.1 * 4.0, v1 = 0.001 * 16.0;
  const double m2 = 0.9 * m1 + 0.1 * 1.0, v2 = 0.999 * v1 + 0.001 * 1.0;
  const double step = 0.1 * (m2 / (1 - 0.81)) / (std::sqrt(v2 / (1 - 0.999 * 0.999)) + 1e-8);
  m.step_with(1.0, 0.0);
  const double first = 0.1 * 4.0 / (4.0 + 1e-8);
  EXPECT_NEAR(m.current().lambda1, 0.5 - first - step, 1e-12);
}

TEST(GradientMethodOptions, OnlineSettingsAreReadAndCheckedByName) {
  auto o = GradientMethodOptions::from_json(
      {{"hypergradient", "online"}, {"mu", 0.5}, {"product", "exact"}, {"every", 3}});
  EXPECT_TRUE(o.online);
  EXPECT_EQ(o.online_options.mu(), 0.5);
  EXPECT_EQ(o.online_options.product(), "exact");
  EXPECT_EQ(o.online_options.fd_scheme(), "forward");
  EXPECT_EQ(o.every, 3);
  auto message = [](nlohmann::json j) {
    try {
      GradientMethodOptions::from_json(j);
    } catch (const std::exception& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_NE(message({{"hypergradient", "online"}, {"mu", 1.5}}).find("mu = 1.5"), std::string::npos);
  EXPECT_NE(message({{"meta_step", "rmsprop"}}).find("meta_step 'rmsprop'"), std::string::npos);
  EXPECT_NE(message({{"hypergradient", "online"}, {"product", "jvp"}}).find("'jvp'"),
            std::string::npos);
  EXPECT_EQ(GradientMethodOptions::from_json({{"hypergradient", "online"}}).online_options.product(),
            "exact");
  EXPECT_EQ(GradientMethodOptions::from_json({{"hypergradient", "online"}, {"tangent_batch", 32}})
                .tangent_batch,
            32);
  EXPECT_NE(message({{"hypergradient", "online"}, {"product", "fd"}, {"tangent_batch", 32}})
                .find("tangent_batch needs product: exact"),
            std::string::npos);
  EXPECT_NE(message({{"hypergradient", "online"}, {"tangent_batch", -1}}).find("tangent_batch = -1"),
            std::string::npos);
}

}  // namespace

namespace {

// tangent_clip bounds ‖Z_j‖ by tangent_clip·‖w‖ after every step and keeps Z's direction: with a
// cap far below the free tangents' length the clipped hypergradient is the free one rescaled
// per metaparameter, so its components keep their signs.
TEST(OnlineHypergradient, TangentClipBoundsTheTangentsAndKeepsTheirSigns) {
  const auto m = torch::tensor({0.6, 2.5}, kF64);
  auto free = online_gradient("logreg", "sgd", 1, m, OnlineHypergradientOptions().mu(1.0));
  Unrolled run("logreg", "sgd", 1);
  OnlineHypergradient clipped(OnlineHypergradientOptions().mu(1.0).tangent_clip(1e-6));
  run.unroll(m, &clipped);
  EXPECT_EQ(clipped.clipped(), 2);  // both columns, at the one step
  auto g = clipped.hypergradient(run.model->parameters(), [&] { return run.val_loss(); },
                                 {run.model.get()}).gradient;
  for (int64_t j = 0; j < 2; ++j) {
    EXPECT_GT(g[j].item<double>() * free[j].item<double>(), 0.0) << j;
    EXPECT_LT(std::abs(g[j].item<double>()), 1e-3 * std::abs(free[j].item<double>())) << j;
  }
  EXPECT_NO_THROW(OnlineHypergradient(OnlineHypergradientOptions().tangent_clip(0)));
  EXPECT_THROW(OnlineHypergradient(OnlineHypergradientOptions().tangent_clip(-1)), std::exception);
}

}  // namespace
