#include "metadistill/meta/lstm_optimizer.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/online_hypergradient.h"
#include "metadistill/meta/virtual_step.h"
#include "metadistill/train/trainer.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

LstmOptimizerNet make_net(uint64_t seed, torch::Dtype dtype = torch::kDouble) {
  torch::manual_seed(seed);
  LstmOptimizerNet net(LstmOptimizerNetOptions{});
  net->to(dtype);
  return net;
}

// Gradients spanning both branches of the preprocessing, away from its threshold e^{-10}.
torch::Tensor mixed_gradients(int64_t n, uint64_t seed) {
  torch::manual_seed(seed);
  auto sign = torch::randint(0, 2, {n}, kF64) * 2 - 1;
  auto log10_mag = torch::rand({n}, kF64) * 8 - 7;  // |d| in [1e-7, 10]
  auto d = sign * torch::pow(10.0, log10_mag);
  // keep clear of the branch boundary at e^{-10} ≈ 4.54e-5
  auto near = (d.abs() - std::exp(-10.0)).abs() < 1e-5;
  return torch::where(near, 10 * d, d);
}

// A state reached by a few steps on other gradients, so that the Jacobian is not the one of the
// zero state only.
LstmState warm_state(LstmOptimizerNetImpl& net, int64_t n) {
  torch::NoGradGuard no_grad;
  auto s = net.initial_state(n);
  for (int i = 0; i < 3; ++i) s = net.forward(mixed_gradients(n, 100 + i), s).second;
  return s;
}

double rel_err(double a, double b) { return std::abs(a - b) / std::max(1e-12, std::abs(b)); }

}  // namespace

// The paper's preprocessing written out: (log|d|/p, sign d) above e^{-p}, (−1, e^p d) below.
TEST(LstmPreprocessing, MatchesThePapersFormula) {
  const double p = 10;
  auto d = torch::tensor({0.5, -3.0, 1e-3, -2e-5, 1e-6, 0.0}, kF64);
  auto x = functional::preprocess_gradient(d, p);
  ASSERT_EQ(x.sizes(), (std::vector<int64_t>{6, 2}));
  const std::vector<std::pair<double, double>> want = {
      {std::log(0.5) / p, 1}, {std::log(3.0) / p, -1}, {std::log(1e-3) / p, 1},
      {-1, std::exp(p) * -2e-5}, {-1, std::exp(p) * 1e-6}, {-1, 0}};
  for (int64_t i = 0; i < 6; ++i) {
    EXPECT_NEAR(x[i][0].item<double>(), want[i].first, 1e-15) << i;
    EXPECT_NEAR(x[i][1].item<double>(), want[i].second, 1e-12) << i;
  }
}

// The step of a coordinate depends on that coordinate only, and P = ∂direction/∂d from autograd
// equals a float64 central difference per coordinate.
TEST(LstmOptimizer, StepJacobianMatchesFiniteDifferences) {
  auto net = make_net(1);
  const int64_t n = 40;
  auto state = warm_state(*net, n);
  auto param = torch::zeros({n}, kF64);
  LstmOptimizer opt(std::vector<torch::Tensor>{param}, net);
  auto d = mixed_gradients(n, 7);
  // P through the optimizer's own path: a fresh optimizer peeks from the zero state, so compare
  // against the network with the zero state first, then the warm state through the network.
  for (bool warm : {false, true}) {
    const LstmState s = warm ? state : net->initial_state(n);
    torch::Tensor P;
    if (!warm) {
      P = opt.peek(param, d, true).preconditioner;
    } else {
      auto dv = d.clone().requires_grad_();
      P = torch::autograd::grad({net->forward(dv, s).first.sum()}, {dv})[0];
    }
    torch::NoGradGuard no_grad;
    // Relative steps in the log branch; in the linear branch (|d| < e^{-10}) a step of 1e-8 keeps
    // the rounding error (~1e-16·|direction|/h) far below the tolerance.
    auto h = torch::max(1e-6 * d.abs(), torch::full_like(d, 1e-8));
    auto plus = net->forward(d + h, s).first, minus = net->forward(d - h, s).first;
    auto fd = (plus - minus) / (2 * h);
    for (int64_t i = 0; i < n; ++i) {
      const double a = P[i].item<double>(), b = fd[i].item<double>();
      EXPECT_LT(std::abs(a - b), 1e-6 * std::max(1.0, std::abs(b)))
          << (warm ? "warm" : "zero") << " state, coordinate " << i << " d " << d[i].item<double>();
    }
    // Coordinatewise: moving coordinate 0 leaves every other coordinate's step unchanged.
    auto moved = d.clone();
    moved[0] = moved[0] * 3;
    auto base = net->forward(d, s).first, other = net->forward(moved, s).first;
    EXPECT_TRUE(torch::equal(base.slice(0, 1), other.slice(0, 1)));
    EXPECT_NE(base[0].item<double>(), other[0].item<double>());
  }
}

// The optimizer's step is w − γ·direction with the state carried, and `peek` predicts it.
TEST(LstmOptimizer, StepIsLearningRateTimesDirectionAndCarriesTheState) {
  auto net = make_net(2);
  auto w = torch::randn({3, 4}, kF64).requires_grad_();
  LstmOptimizer opt(std::vector<torch::Tensor>{w}, net, LstmOptimizerOptions(0.7).weight_decay(0.01));
  auto state = net->initial_state(12);
  for (int step = 0; step < 4; ++step) {
    auto g = torch::randn({3, 4}, kF64);
    w.mutable_grad() = g.clone();
    auto before = w.detach().clone();
    auto predicted = opt.peek(w, g + 0.01 * before, false).direction;
    torch::Tensor want;
    {
      torch::NoGradGuard no_grad;
      auto [direction, next] = net->forward((g + 0.01 * before).reshape({-1}), state);
      state = next;
      want = before - 0.7 * direction.reshape({3, 4});
    }
    opt.step();
    EXPECT_TRUE(torch::allclose(w.detach(), want, 0, 1e-15)) << "step " << step;
    EXPECT_TRUE(torch::allclose(w.detach(), before - 0.7 * predicted, 0, 1e-15)) << "step " << step;
  }
}

// A saved and loaded optimizer file, and a checkpointed and restored optimizer state, give the
// same steps bit for bit.
TEST(LstmOptimizer, SaveAndLoadGiveBitIdenticalSteps) {
  TempDir dir("lstm-io");
  auto net = make_net(3, torch::kFloat32);
  save_lstm_optimizer(*net, dir / "opt.pt");
  auto loaded = load_lstm_optimizer(dir / "opt.pt");
  auto a = net->named_parameters(), b = loaded->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    EXPECT_TRUE(torch::equal(a.values()[i], b.values()[i])) << a.keys()[i];

  torch::manual_seed(11);
  auto w0 = torch::randn({5, 3});
  std::vector<torch::Tensor> grads;
  for (int i = 0; i < 6; ++i) grads.push_back(torch::randn({5, 3}));
  auto run = [&](const LstmOptimizerNet& n, int checkpoint_at) {
    auto w = w0.clone().requires_grad_();
    auto opt = std::make_unique<LstmOptimizer>(std::vector<torch::Tensor>{w}, n);
    for (int i = 0; i < 6; ++i) {
      if (i == checkpoint_at) {
        torch::serialize::OutputArchive out;
        opt->save(out);
        std::ostringstream bytes;
        out.save_to(bytes);
        opt = std::make_unique<LstmOptimizer>(std::vector<torch::Tensor>{w}, n);
        torch::serialize::InputArchive in;
        std::istringstream read(bytes.str());
        in.load_from(read);
        opt->load(in);
      }
      w.mutable_grad() = grads[i].clone();
      opt->step();
    }
    return w.detach().clone();
  };
  auto original = run(net, -1);
  EXPECT_TRUE(torch::equal(run(loaded, -1), original));
  EXPECT_TRUE(torch::equal(run(loaded, 3), original));
  EXPECT_FALSE(torch::equal(run(make_net(4, torch::kFloat32), -1), original));
}

TEST(LstmOptimizer, BadFilesAndMissingSettingsAreNamed) {
  TempDir dir("lstm-err");
  const auto missing = (dir / "nowhere.pt").string();
  expect_error([&] { load_lstm_optimizer(missing); }, {missing, "not found", "train-optimizer"});
  {
    std::ofstream f(dir / "garbage.pt", std::ios::binary);
    f << "this is not an archive";
  }
  expect_error([&] { load_lstm_optimizer(dir / "garbage.pt"); },
               {(dir / "garbage.pt").string(), "not a learned-optimizer file"});
  // A torch archive that is something else (a saved tensor).
  torch::save(torch::ones({3}), (dir / "tensor.pt").string());
  expect_error([&] { load_lstm_optimizer(dir / "tensor.pt"); },
               {(dir / "tensor.pt").string(), "not a learned-optimizer file"});
  // `lstm` without a file.
  expect_error([] { TrainerOptions().with_optimizer("lstm").validate(); },
               {"optimizer 'lstm'", "file", "train-optimizer"});
  expect_error([] { TrainerOptions().with_optimizer("lion").validate(); }, {"lion", "lstm"});
  // A trainer given a missing file names it when the optimizer is made... validated options with
  // a file pass.
  EXPECT_NO_THROW(TrainerOptions().with_optimizer("lstm").with_optimizer_file(missing).validate());
}

// The online hypergradient refuses the learned operator instead of ignoring its state.
TEST(LstmOptimizer, OnlineHypergradientRefusesLstm) {
  auto net = make_net(5);
  auto w = torch::randn({4}, kF64).requires_grad_();
  LstmOptimizer opt(std::vector<torch::Tensor>{w}, net);
  OnlineHypergradient online(OnlineHypergradientOptions{});
  auto m = torch::tensor({0.5}, kF64);
  auto loss = [&](const torch::Tensor& mm) { return (mm[0] * w * w).sum(); };
  expect_error(
      [&] {
        online.carry({w}, {w.detach().clone()}, {torch::zeros({4}, kF64)}, opt, "lstm", 0.1, loss,
                     m, {});
      },
      {"lstm", "not carried", "greedy"});
}

// ---------------------------------------------------------------------------------------------
// The greedy hypergradient through an lstm step against a brute-force central difference of
// L_val after the real step (the pattern of hypergradient_test.cpp).

namespace {

struct Problem {
  Classifier model;
  std::unique_ptr<LstmOptimizer> opt;
  Batch train, val;
  torch::Tensor teacher;
};

Problem make_problem(const std::string& net_name) {
  torch::manual_seed(0);
  Problem p;
  const int64_t in = 4, k = 3;
  p.model = make_model(ModelSpec(net_name, k, {in}));
  p.model->to(torch::kDouble);
  p.model->train();
  p.train.x = torch::randn({8, in}, kF64);
  p.train.y = torch::randint(k, {8}, torch::kLong);
  p.val.x = torch::randn({10, in}, kF64);
  p.val.y = torch::randint(k, {10}, torch::kLong);
  p.teacher = 2 * torch::randn({8, k}, kF64);
  p.opt = std::make_unique<LstmOptimizer>(p.model->parameters(), make_net(9),
                                          LstmOptimizerOptions(0.5).weight_decay(1e-3));
  for (int i = 0; i < 2; ++i) {  // warm-up steps: a non-trivial LSTM state
    p.opt->zero_grad();
    functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, 0.6, 2.0).backward();
    p.opt->step();
  }
  return p;
}

double val_after_real_step(const std::string& net, double lr, Metaparameters lambda, double t_val) {
  auto p = make_problem(net);
  for (auto& g : p.opt->param_groups()) g.options().set_lr(lr);
  p.opt->zero_grad();
  functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, lambda.lambda1,
                          lambda.temperature)
      .backward();
  p.opt->step();
  return validation_loss(*p.model, p.val, t_val).item<double>();
}

}  // namespace

TEST(LstmHypergradient, VirtualStepMatchesTheRealStep) {
  auto p = make_problem("mlp");
  auto params = p.model->parameters();
  p.opt->zero_grad();
  functional::hinton_loss(p.model->forward(p.train.x), p.teacher, p.train.y, 0.4, 3.0).backward();
  std::vector<torch::Tensor> grads, before;
  for (auto& w : params) {
    grads.push_back(w.grad().detach().clone());
    before.push_back(w.detach().clone());
  }
  auto vs = virtual_step(params, grads, *p.opt, "lstm", 0.5);
  ASSERT_EQ(vs.preconditioner.size(), params.size());
  p.opt->step();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::allclose(before[i] - vs.step[i], params[i], 0, 1e-14)) << i;
  // After the step, the lagged order's P (from the state before the step) is the same P.
  auto after = preconditioner_after_step(before, grads, params, *p.opt, "lstm");
  ASSERT_EQ(after.size(), params.size());
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_TRUE(torch::equal(after[i], vs.preconditioner[i])) << i;
}

TEST(LstmHypergradient, ExactAndFdAgreeWithBruteForce) {
  // γ = 3 makes the step, and so the derivatives, large against the brute force's rounding
  // error (~1e-16 · L_val / δ ≈ 1e-11 absolute), which is allowed for below.
  const double lr = 3.0, t_val = 0.5;
  auto close = [](double a, double b) { return std::abs(a - b) < 1e-6 * std::abs(b) + 3e-11; };
  for (std::string net : {"logreg", "mlp"}) {
    for (Metaparameters lambda : {Metaparameters{0.3, 2.0}, Metaparameters{0.8, 0.7}}) {
      auto hyper = [&](const std::string& mode, double fd_scale) {
        auto p = make_problem(net);
        return greedy_hypergradient(*p.model, *p.opt, "lstm", lr, p.train, p.teacher, p.val, lambda,
                                    HypergradientOptions().with_mode(mode).with_fd_scale(fd_scale)
                                        .with_val_temperature(t_val));
      };
      auto exact = hyper("exact", 0.01);
      auto fd_fine = hyper("fd", 1e-5);
      // Central differences of L_val after the real step, Richardson-extrapolated from δ and δ/2
      // (error O(δ⁴)): the LSTM's step is strongly non-linear in the gradient (log|d|), so a plain
      // central difference's O(δ²) term is visible at the 1e-6 level.
      auto brute = [&](int which) {
        auto diff = [&](double d) {
          Metaparameters plus = lambda, minus = lambda;
          (which == 0 ? plus.lambda1 : plus.temperature) += d;
          (which == 0 ? minus.lambda1 : minus.temperature) -= d;
          return (val_after_real_step(net, lr, plus, t_val) - val_after_real_step(net, lr, minus, t_val)) /
                 (2 * d);
        };
        const double d = 1e-4;
        return (4 * diff(d / 2) - diff(d)) / 3;
      };
      const double brute1 = brute(0), brute2 = brute(1);
      SCOPED_TRACE(net + " " + lambda.to_string());
      ASSERT_GT(std::abs(brute1), 1e-7);
      ASSERT_GT(std::abs(brute2), 1e-8);
      EXPECT_TRUE(close(exact.lambda1, brute1)) << exact.lambda1 << " vs " << brute1;
      EXPECT_TRUE(close(exact.temperature, brute2)) << exact.temperature << " vs " << brute2;
      EXPECT_LT(rel_err(fd_fine.lambda1, exact.lambda1), 1e-6);
      EXPECT_LT(rel_err(fd_fine.temperature, exact.temperature), 1e-6);
      // The same hypergradient with P = identity (as if the step were SGD's) is measurably
      // different: the preconditioner matters.
      auto p = make_problem(net);
      torch::optim::SGD sgd(p.model->parameters(), torch::optim::SGDOptions(lr));
      auto plain = greedy_hypergradient(*p.model, sgd, "sgd", lr, p.train, p.teacher, p.val, lambda,
                                        HypergradientOptions().with_mode("exact").with_val_temperature(t_val));
      EXPECT_GT(rel_err(plain.lambda1, brute1), 1e-3);
    }
  }
}
