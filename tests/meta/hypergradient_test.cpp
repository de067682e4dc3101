#include "metadistill/meta/hypergradient.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/virtual_step.h"

using namespace metadistill;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// A small network with BatchNorm, so that the extra passes' effect on running statistics and
// batch-statistics gradients are both exercised.
class TinyBnNetImpl : public ClassifierImpl {
 public:
  TinyBnNetImpl() {
    fc1 = register_module("fc1", torch::nn::Linear(4, 6));
    bn = register_module("bn", torch::nn::BatchNorm1d(6));
    fc2 = register_module("fc2", torch::nn::Linear(6, 3));
  }
  torch::Tensor forward(torch::Tensor x) override { return fc2(torch::tanh(bn(fc1(x)))); }
  Features forward_features(torch::Tensor x) override { return {{"logits", forward(x)}}; }
  std::vector<std::string> tap_names() const override { return {"logits"}; }
  std::string kind() const override { return "tiny-bn"; }
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
  torch::nn::BatchNorm1d bn{nullptr};
};

struct Problem {
  Classifier model;
  std::unique_ptr<torch::optim::Optimizer> opt;
  Batch train, val;
  torch::Tensor teacher;
};

// Builds the same model and optimizer state every time: two warm-up steps give momentum
// buffers and Adam moments that are not trivial.
Problem make_problem(const std::string& net, const std::string& kind, uint64_t seed = 0) {
  torch::manual_seed(seed);
  Problem p;
  const int64_t in = net == "logreg" ? 3 : 4, k = net == "logreg" ? 2 : 3;
  if (net == "logreg") p.model = make_model(ModelSpec("logreg", k, {in}));
  else p.model = std::make_shared<TinyBnNetImpl>();
  p.model->to(torch::kDouble);
  p.model->train();
  p.train.x = torch::randn({8, in}, kF64);
  p.train.y = torch::randint(k, {8}, torch::kLong);
  p.val.x = torch::randn({10, in}, kF64);
  p.val.y = torch::randint(k, {10}, torch::kLong);
  p.teacher = 2 * torch::randn({8, k}, kF64);
  auto params = p.model->parameters();
  if (kind == "adam")
    p.opt = std::make_unique<torch::optim::Adam>(params, torch::optim::AdamOptions(0.05).weight_decay(1e-3));
  else
    p.opt = std::make_unique<torch::optim::SGD>(
        params, torch::optim::SGDOptions(0.3).momentum(kind == "momentum" ? 0.9 : 0.0).weight_decay(1e-3));
  for (int i = 0; i < 2; ++i) {
    p.opt->zero_grad();
    functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, 0.6, 2.0).backward();
    p.opt->step();
  }
  return p;
}

// L_val(U(w, λ)) with U the optimizer's real step, on a fresh copy of the problem.
double val_after_real_step(const std::string& net, const std::string& kind, double lr,
                           Metaparameters lambda, double t_val) {
  auto p = make_problem(net, kind);
  for (auto& g : p.opt->param_groups()) g.options().set_lr(lr);
  p.opt->zero_grad();
  functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, lambda.lambda1,
                          lambda.temperature)
      .backward();
  p.opt->step();
  return validation_loss(*p.model, p.val, t_val).item<double>();
}

Hypergradient compute(const std::string& net, const std::string& kind, const std::string& mode,
                      double lr, Metaparameters lambda, double t_val, double fd_scale = 0.01,
                      const std::string& exact_product = "jvp") {
  auto p = make_problem(net, kind);
  return greedy_hypergradient(*p.model, *p.opt, kind, lr, p.train, p.teacher, p.val, lambda,
                              HypergradientOptions().with_mode(mode).with_fd_scale(fd_scale)
                                  .with_val_temperature(t_val).with_exact_product(exact_product));
}

double rel_err(double a, double b) { return std::abs(a - b) / std::max(1e-12, std::abs(b)); }

struct Case {
  std::string net, kind;
};

class HypergradientAgreement : public ::testing::TestWithParam<Case> {};

// A "network" whose logits are its input, so that the validation loss can be written out by hand.
class LogitsAreInputImpl : public ClassifierImpl {
 public:
  torch::Tensor forward(torch::Tensor x) override { return x; }
  Features forward_features(torch::Tensor x) override { return {{"logits", x}}; }
  std::vector<std::string> tap_names() const override { return {"logits"}; }
  std::string kind() const override { return "identity"; }
};

}  // namespace

// L_val = CE(z/T_val, y), independently of the hypergradient references (which call
// validation_loss themselves): mean over the batch of log Σ_k exp(z_k/T) − z_y/T, written out.
TEST(ValidationLoss, IsCrossEntropyOfLogitsDividedByTheTemperature) {
  LogitsAreInputImpl model;
  // Two classes, by the closed form log(1 + exp(−(z_y − z_other)/T)): margins 2 and 1 at T = 2.
  Batch two;
  two.x = torch::tensor({2.0, 0.0, 0.0, 1.0}, kF64).reshape({2, 2});
  two.y = torch::tensor({0, 1}, torch::kLong);
  const double want_two = 0.5 * (std::log1p(std::exp(-1.0)) + std::log1p(std::exp(-0.5)));
  EXPECT_NEAR(validation_loss(model, two, 2.0).item<double>(), want_two, 1e-14);
  EXPECT_NEAR(want_two, 0.39366933584916475, 1e-15);  // the same by hand

  // Three classes, log-softmax written out, at temperatures below, at and above 1.
  const std::vector<std::vector<double>> z = {{1.0, -0.5, 2.0}, {0.3, 0.3, -1.2}, {-2.0, 1.5, 0.0}};
  const std::vector<int64_t> y = {2, 0, 1};
  Batch three;
  three.x = torch::tensor({1.0, -0.5, 2.0, 0.3, 0.3, -1.2, -2.0, 1.5, 0.0}, kF64).reshape({3, 3});
  three.y = torch::tensor({2, 0, 1}, torch::kLong);
  for (double t : {0.5, 1.0, 3.0, 7.5}) {
    double want = 0;
    for (size_t i = 0; i < z.size(); ++i) {
      double sum = 0;
      for (double zk : z[i]) sum += std::exp(zk / t);
      want += std::log(sum) - z[i][y[i]] / t;
    }
    want /= static_cast<double>(z.size());
    EXPECT_NEAR(validation_loss(model, three, t).item<double>(), want, 1e-13) << "T_val " << t;
  }
}

// exact, fd and a brute-force central difference of L_val(U(w, λ ± δ)) agree, for each
// metaparameter, in float64. Relative errors: exact vs brute force < 1e-6; fd (ε = 0.01/‖u‖)
// vs exact < 1e-3, and < 1e-6 with a smaller ε.
TEST_P(HypergradientAgreement, ExactFdAndBruteForceAgree) {
  const auto c = GetParam();
  const double lr = c.kind == "adam" ? 0.05 : 0.3, t_val = 0.5;
  for (Metaparameters lambda : {Metaparameters{0.3, 2.0}, Metaparameters{0.8, 0.7}}) {
    auto exact = compute(c.net, c.kind, "exact", lr, lambda, t_val);
    auto reverse = compute(c.net, c.kind, "exact", lr, lambda, t_val, 0.01, "reverse");
    auto fd = compute(c.net, c.kind, "fd", lr, lambda, t_val);
    auto fd_fine = compute(c.net, c.kind, "fd", lr, lambda, t_val, 1e-5);
    const double d = 1e-5;
    const double brute1 =
        (val_after_real_step(c.net, c.kind, lr, {lambda.lambda1 + d, lambda.temperature}, t_val) -
         val_after_real_step(c.net, c.kind, lr, {lambda.lambda1 - d, lambda.temperature}, t_val)) / (2 * d);
    const double brute2 =
        (val_after_real_step(c.net, c.kind, lr, {lambda.lambda1, lambda.temperature + d}, t_val) -
         val_after_real_step(c.net, c.kind, lr, {lambda.lambda1, lambda.temperature - d}, t_val)) / (2 * d);
    SCOPED_TRACE(c.net + "/" + c.kind + " " + lambda.to_string());
    ASSERT_GT(std::abs(brute1), 1e-6);
    ASSERT_GT(std::abs(brute2), 1e-7);
    EXPECT_LT(rel_err(exact.lambda1, brute1), 1e-6) << exact.lambda1 << " vs " << brute1;
    EXPECT_LT(rel_err(exact.temperature, brute2), 1e-6) << exact.temperature << " vs " << brute2;
    EXPECT_LT(rel_err(reverse.lambda1, brute1), 1e-6) << reverse.lambda1 << " vs " << brute1;
    EXPECT_LT(rel_err(reverse.temperature, brute2), 1e-6);
    EXPECT_LT(rel_err(fd.lambda1, exact.lambda1), 1e-3) << fd.lambda1 << " vs " << exact.lambda1;
    EXPECT_LT(rel_err(fd.temperature, exact.temperature), 1e-3);
    EXPECT_LT(rel_err(fd_fine.lambda1, exact.lambda1), 1e-6);
    EXPECT_LT(rel_err(fd_fine.temperature, exact.temperature), 1e-6);
    EXPECT_NEAR(exact.val_loss, fd.val_loss, 1e-12);
  }
}

INSTANTIATE_TEST_SUITE_P(AllOperators, HypergradientAgreement,
                         ::testing::Values(Case{"logreg", "sgd"}, Case{"logreg", "momentum"},
                                           Case{"logreg", "adam"}, Case{"tiny", "sgd"},
                                           Case{"tiny", "momentum"}, Case{"tiny", "adam"}),
                         [](const auto& info) { return info.param.net + "_" + info.param.kind; });

// The forward-mode product covers every op of the zoo's image students (convolutions,
// BatchNorm2d in training mode, max pooling, ReLU): JVP and double backward agree in float64.
TEST(Hypergradient, JvpAndDoubleBackwardAgreeOnTheImageStudents) {
  for (const std::string name : {"cnn", "conv-tiny", "conv-very-tiny", "resnet8"}) {
    SCOPED_TRACE(name);
    torch::manual_seed(3);
    auto model = make_model(ModelSpec(name, 10, {1, 28, 28}));
    model->to(torch::kDouble);
    model->train();
    torch::optim::SGD opt(model->parameters(), torch::optim::SGDOptions(0.1).momentum(0.9));
    Batch train, val;
    train.x = torch::randn({6, 1, 28, 28}, kF64);
    train.y = torch::randint(10, {6}, torch::kLong);
    val.x = torch::randn({5, 1, 28, 28}, kF64);
    val.y = torch::randint(10, {5}, torch::kLong);
    auto teacher = 2 * torch::randn({6, 10}, kF64);
    auto run = [&](const std::string& product) {
      return greedy_hypergradient(*model, opt, "momentum", 0.1, train, teacher, val, {0.4, 3.0},
                                  HypergradientOptions().with_mode("exact").with_exact_product(product));
    };
    auto jvp = run("jvp"), reverse = run("reverse");
    ASSERT_GT(std::abs(reverse.lambda1), 1e-12);
    EXPECT_LT(rel_err(jvp.lambda1, reverse.lambda1), 1e-9) << jvp.lambda1 << " vs " << reverse.lambda1;
    EXPECT_LT(rel_err(jvp.temperature, reverse.temperature), 1e-9);
  }
}

// A hyper-step leaves parameters, BatchNorm buffers and the optimizer state exactly as they were.
TEST(Hypergradient, LeavesModelBuffersAndOptimizerStateUntouched) {
  for (std::string kind : {"sgd", "momentum", "adam"})
    for (std::string mode : {"exact", "fd"}) {
      auto p = make_problem("tiny", kind);
      auto ref = make_problem("tiny", kind);
      greedy_hypergradient(*p.model, *p.opt, kind, 0.3, p.train, p.teacher, p.val, {0.5, 2.0},
                           HypergradientOptions().with_mode(mode));
      auto a = p.model->parameters(), b = ref.model->parameters();
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << kind << mode;
      auto ba = p.model->buffers(), bb = ref.model->buffers();
      ASSERT_EQ(ba.size(), 3u);  // running mean, var, count
      for (size_t i = 0; i < ba.size(); ++i) EXPECT_TRUE(ba[i].equal(bb[i])) << kind << mode;
      // Optimizer state: the next real step from both gives identical weights.
      for (auto* q : {&p, &ref}) {
        q->opt->zero_grad();
        functional::hinton_loss(q->model->forward(q->train.x), q->teacher, q->train.y, 0.5, 2.0).backward();
        q->opt->step();
      }
      a = p.model->parameters();
      b = ref.model->parameters();
      for (size_t i = 0; i < a.size(); ++i) EXPECT_TRUE(a[i].equal(b[i])) << kind << mode;
    }
}

TEST(Hypergradient, FirstOrderShortcutIsRejectedWithTheReason) {
  try {
    GradientMethodOptions::from_json({{"hypergradient", "first-order"}});
    FAIL();
  } catch (const std::exception& e) {
    EXPECT_NE(std::string(e.what()).find("exactly zero"), std::string::npos) << e.what();
  }
  EXPECT_THROW(GradientMethodOptions::from_json({{"hypergradient", "magic"}}), std::exception);
  EXPECT_THROW(GradientMethodOptions::from_json({{"gamma", -1}}), std::exception);
  EXPECT_THROW(GradientMethodOptions::from_json({{"e1", 1}}), std::exception);
  EXPECT_THROW(GradientMethodOptions::from_json({{"domain", "box"}}), std::exception);
  EXPECT_THROW(GradientMethodOptions::from_json({{"gama", 0.1}}), std::exception);
}

// The lagged order computes the same hypergradient from the step already taken: the student step
// is the virtual step. Checked against the greedy form for every operator, exact and fd; the
// one-sided scheme agrees to O(ε).
TEST(LaggedHypergradient, EqualsTheGreedyHypergradientOfTheStepTaken) {
  for (std::string kind : {"sgd", "momentum", "adam"})
    for (std::string mode : {"exact", "fd"}) {
      const double lr = kind == "adam" ? 0.05 : 0.3;
      const Metaparameters lambda{0.4, 1.5};
      auto opts = HypergradientOptions().with_mode(mode).with_val_temperature(0.5);
      auto g = compute("tiny", kind, mode, lr, lambda, 0.5);
      auto p = make_problem("tiny", kind);
      for (auto& group : p.opt->param_groups()) group.options().set_lr(lr);
      auto params = p.model->parameters();
      std::vector<torch::Tensor> w, grads;
      for (auto& q : params) w.push_back(q.detach().clone());
      p.opt->zero_grad();
      auto logits = p.model->forward(p.train.x);
      functional::hinton_loss(logits, p.teacher, p.train.y, lambda.lambda1, lambda.temperature).backward();
      for (auto& q : params) grads.push_back(q.grad().detach().clone());
      p.opt->step();
      std::vector<torch::Tensor> after;
      for (auto& q : params) after.push_back(q.detach().clone());
      auto l = lagged_hypergradient(*p.model, *p.opt, kind, lr, w, grads, logits.detach(), p.train,
                                    p.teacher, p.val, lambda, opts);
      SCOPED_TRACE(kind + "/" + mode);
      EXPECT_LT(rel_err(l.lambda1, g.lambda1), 1e-6) << l.lambda1 << " vs " << g.lambda1;
      EXPECT_LT(rel_err(l.temperature, g.temperature), 1e-6);
      EXPECT_NEAR(l.val_loss, g.val_loss, 1e-12);
      for (size_t i = 0; i < params.size(); ++i) EXPECT_TRUE(params[i].equal(after[i]));
      if (mode == "fd") {
        auto one_sided = lagged_hypergradient(*p.model, *p.opt, kind, lr, w, grads, logits.detach(),
                                              p.train, p.teacher, p.val, lambda,
                                              HypergradientOptions(opts).with_fd_scheme("forward"));
        EXPECT_LT(rel_err(one_sided.lambda1, g.lambda1), 5e-2);  // O(ε) error
        EXPECT_LT(rel_err(one_sided.temperature, g.temperature), 5e-2);
      }
    }
}
