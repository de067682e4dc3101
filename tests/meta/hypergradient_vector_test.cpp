#include "metadistill/meta/hypergradient.h"

#include <gtest/gtest.h>

#include <cmath>

#include "metadistill/losses/vid.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/models/classifier.h"
#include "test_util.h"

namespace metadistill {
namespace {

const auto kF64 = torch::TensorOptions().dtype(torch::kDouble);

// A tiny multi-layer problem in float64: teacher conv-tiny and student conv-very-tiny on 8×8
// images, four VID pairs (map↔map with and without pooling, vector↔vector), the metaparameters
// m = [λ1..λ4, β] used raw: L = β·CE + (1 − β)·Σ λp·VIDp. Two optimizer groups (the student's
// first layers with weight decay; its last layer and the VID terms without), and two real
// warm-up steps so that momentum buffers and Adam moments are not trivial. Building it twice
// gives the same state.
struct Problem {
  Classifier teacher, student;
  MultiVID vid{nullptr};
  std::unique_ptr<torch::optim::Optimizer> opt;
  torch::Tensor x, y, xv, yv;
  Features teacher_features;
  std::vector<torch::Tensor> params;
  torch::Tensor m;

  torch::Tensor train_loss(const torch::Tensor& meta) {
    auto sf = student->forward_features(x);
    auto ce = torch::nn::functional::cross_entropy(sf.back().second, y);
    auto lambda = meta.slice(0, 0, 4);
    auto beta = meta[4];
    return beta * ce + (1 - beta) * vid->forward(teacher_features, sf, lambda);
  }
  torch::Tensor val_loss() {
    return torch::nn::functional::cross_entropy(student->forward(xv), yv);
  }
};

Problem make_problem(const std::string& kind) {
  torch::manual_seed(5);
  Problem p;
  p.teacher = make_model(ModelSpec("conv-tiny", 3, {1, 8, 8}));
  p.student = make_model(ModelSpec("conv-very-tiny", 3, {1, 8, 8}));
  p.teacher->to(torch::kDouble);
  p.student->to(torch::kDouble);
  p.teacher->eval();
  p.student->train();
  p.x = torch::randn({6, 1, 8, 8}, kF64);
  p.y = torch::randint(3, {6}, torch::kLong);
  p.xv = torch::randn({7, 1, 8, 8}, kF64);
  p.yv = torch::randint(3, {7}, torch::kLong);
  {
    torch::NoGradGuard no_grad;
    p.teacher_features = p.teacher->forward_features(p.x);
  }
  Features sf;
  {
    torch::NoGradGuard no_grad;
    p.student->eval();
    sf = p.student->forward_features(p.x);
    p.student->train();
  }
  p.vid = MultiVID(std::vector<TapPair>{{"conv1", "conv1"}, {"conv2", "conv2"}, {"conv1", "conv2"},
                                        {"fc1", "fc1"}},
                   p.teacher_features, sf, MultiVIDOptions().hidden(4));
  p.vid->to(torch::kDouble);
  // Groups: the student's first layers with weight decay; its last layer (which L_val sees, so
  // that a wrong per-group decay changes h) and the VID terms without.
  auto sp = p.student->parameters();
  auto vp = p.vid->parameters();
  vp.insert(vp.begin(), sp.end() - 2, sp.end());
  sp.resize(sp.size() - 2);
  std::vector<torch::optim::OptimizerParamGroup> groups;
  if (kind == "adam") {
    groups.emplace_back(sp, std::make_unique<torch::optim::AdamOptions>(
                                torch::optim::AdamOptions(0.01).weight_decay(1e-2)));
    groups.emplace_back(vp, std::make_unique<torch::optim::AdamOptions>(
                                torch::optim::AdamOptions(0.01).weight_decay(0)));
    p.opt = std::make_unique<torch::optim::Adam>(std::move(groups), torch::optim::AdamOptions(0.01));
  } else {
    const double momentum = kind == "momentum" ? 0.9 : 0.0;
    groups.emplace_back(sp, std::make_unique<torch::optim::SGDOptions>(
                                torch::optim::SGDOptions(0.1).momentum(momentum).weight_decay(1e-2)));
    groups.emplace_back(vp, std::make_unique<torch::optim::SGDOptions>(
                                torch::optim::SGDOptions(0.1).momentum(momentum).weight_decay(0)));
    p.opt = std::make_unique<torch::optim::SGD>(std::move(groups), torch::optim::SGDOptions(0.1));
  }
  p.params = sp;
  p.params.insert(p.params.end(), vp.begin(), vp.end());
  p.m = torch::tensor({0.4, 0.1, 0.3, 0.2, 0.6}, kF64);
  for (int step = 0; step < 2; ++step) {
    p.opt->zero_grad();
    p.train_loss(p.m).backward();
    p.opt->step();
  }
  p.opt->zero_grad();
  return p;
}

constexpr double kLr = 0.1;
double lr_of(const std::string& kind) { return kind == "adam" ? 0.01 : kLr; }

// L_val(U(w, m)) with U the optimizer's real step, on a fresh copy of the problem.
double val_after_real_step(const std::string& kind, const torch::Tensor& m) {
  Problem p = make_problem(kind);
  p.opt->zero_grad();
  p.train_loss(m).backward();
  p.opt->step();
  return p.val_loss().item<double>();
}

torch::Tensor brute_force(const std::string& kind, double delta) {
  const auto m0 = make_problem(kind).m;
  auto out = torch::zeros_like(m0);
  for (int64_t k = 0; k < m0.numel(); ++k) {
    auto mp = m0.clone(), mm = m0.clone();
    mp[k] += delta;
    mm[k] -= delta;
    out[k] = (val_after_real_step(kind, mp) - val_after_real_step(kind, mm)) / (2 * delta);
  }
  return out;
}

HyperStep step_of(Problem& p) {
  HyperStep s;
  s.params = p.params;
  s.train_loss = [&](const torch::Tensor& m) { return p.train_loss(m); };
  s.val_loss = [&] { return p.val_loss(); };
  s.modules = {p.student.get(), p.vid.get()};
  return s;
}

HypergradientVector compute(Problem& p, const std::string& kind, const std::string& mode) {
  return hypergradient(step_of(p), *p.opt, kind, lr_of(kind), p.m,
                       HypergradientOptions().with_mode(mode).with_fd_scale(1e-5));
}

class HypergradientVectorTest : public ::testing::TestWithParam<std::string> {};

TEST_P(HypergradientVectorTest, ExactAndFdMatchBruteForceCentralDifferences) {
  const std::string kind = GetParam();
  const auto reference = brute_force(kind, 1e-5);
  ASSERT_GT(reference.abs().max().item<double>(), 1e-8) << "no signal to compare";
  Problem p = make_problem(kind);
  const auto exact = compute(p, kind, "exact");
  Problem q = make_problem(kind);
  const auto fd = compute(q, kind, "fd");
  EXPECT_GT(fd.epsilon, 0);
  const double scale = reference.abs().max().item<double>();
  for (int64_t k = 0; k < reference.numel(); ++k) {
    const double r = reference[k].item<double>();
    EXPECT_NEAR(exact.gradient[k].item<double>(), r, 1e-6 * scale + 1e-10) << kind << " exact, m[" << k << "]";
    EXPECT_NEAR(fd.gradient[k].item<double>(), r, 1e-3 * scale + 1e-9) << kind << " fd, m[" << k << "]";
  }
  EXPECT_NEAR(exact.val_loss, fd.val_loss, 1e-12);
  EXPECT_NEAR(exact.val_loss, val_after_real_step(kind, make_problem(kind).m), 1e-10);
}

INSTANTIATE_TEST_SUITE_P(Optimizers, HypergradientVectorTest,
                         ::testing::Values("sgd", "momentum", "adam"));

std::vector<torch::Tensor> optimizer_state(torch::optim::Optimizer& opt) {
  std::vector<torch::Tensor> out;
  for (auto& group : opt.param_groups())
    for (auto& p : group.params()) {
      auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
      if (it == opt.state().end()) continue;
      if (auto* s = dynamic_cast<torch::optim::SGDParamState*>(it->second.get())) {
        if (s->momentum_buffer().defined()) out.push_back(s->momentum_buffer().clone());
      } else if (auto* a = dynamic_cast<torch::optim::AdamParamState*>(it->second.get())) {
        out.push_back(a->exp_avg().clone());
        out.push_back(a->exp_avg_sq().clone());
        out.push_back(torch::tensor(a->step()));
      }
    }
  return out;
}

// The lagged order (the step already taken, DESIGN.md 3.6) must give the before order's
// hypergradient of that step. Two groups with different weight decays: Adam's preconditioner read
// from the state after the step must use each parameter's own decay.
TEST(HypergradientVector, LaggedOrderEqualsTheBeforeOrderOfTheStepTaken) {
  for (const std::string kind : {"momentum", "adam"}) {
    for (const std::string mode : {"exact", "fd"}) {
      Problem p = make_problem(kind);
      const auto before = compute(p, kind, mode);
      Problem q = make_problem(kind);
      HyperStep s = step_of(q);
      s.w_before = snapshot_parameters(q.params);
      q.opt->zero_grad();
      q.train_loss(q.m).backward();
      for (const auto& t : q.params) s.grads.push_back(t.grad().detach().clone());
      q.opt->step();
      const auto stepped = snapshot_parameters(q.params);
      const auto lagged = hypergradient(s, *q.opt, kind, lr_of(kind), q.m,
                                        HypergradientOptions().with_mode(mode).with_fd_scale(1e-5));
      const double scale = before.gradient.abs().max().item<double>();
      ASSERT_GT(scale, 1e-8) << "no signal to compare";
      EXPECT_LT((lagged.gradient - before.gradient).abs().max().item<double>(), 1e-8 * scale)
          << kind << " " << mode << ": lagged " << lagged.gradient << " before " << before.gradient;
      EXPECT_NEAR(lagged.val_loss, before.val_loss, 1e-12) << kind << " " << mode;
      for (size_t i = 0; i < stepped.size(); ++i)
        EXPECT_TRUE(torch::equal(stepped[i], q.params[i].detach())) << "parameter " << i << " moved";
    }
  }
}

TEST(HypergradientVector, LeavesParametersBuffersAndOptimizerStateExactlyAsTheyWere) {
  for (const std::string kind : {"momentum", "adam"}) {
    for (const std::string mode : {"exact", "fd"}) {
      Problem p = make_problem(kind);
      std::vector<torch::Tensor> params, buffers;
      for (auto& t : p.params) params.push_back(t.detach().clone());
      for (auto& b : p.student->buffers()) buffers.push_back(b.clone());
      const auto state = optimizer_state(*p.opt);
      ASSERT_FALSE(state.empty());
      compute(p, kind, mode);
      for (size_t i = 0; i < params.size(); ++i) {
        EXPECT_TRUE(torch::equal(params[i], p.params[i].detach())) << kind << " " << mode << " param " << i;
        EXPECT_TRUE(p.params[i].requires_grad());
        EXPECT_FALSE(p.params[i].grad().defined() && p.params[i].grad().abs().sum().item<double>() != 0);
      }
      auto now = p.student->buffers();
      for (size_t i = 0; i < buffers.size(); ++i)
        EXPECT_TRUE(torch::equal(buffers[i], now[i])) << kind << " " << mode << " buffer " << i;
      const auto after = optimizer_state(*p.opt);
      ASSERT_EQ(after.size(), state.size());
      for (size_t i = 0; i < state.size(); ++i)
        EXPECT_TRUE(torch::equal(state[i], after[i])) << kind << " " << mode << " state " << i;
    }
  }
}

TEST(HypergradientVector, PerGroupWeightDecayMatters) {
  // The brute force above already checks two groups with different decays; here the student
  // group's decay (not the first group's options alone) must reach the virtual step.
  Problem p = make_problem("sgd");
  const auto base = compute(p, "sgd", "exact").gradient;
  Problem q = make_problem("sgd");
  static_cast<torch::optim::SGDOptions&>(q.opt->param_groups()[0].options()).weight_decay(5.0);
  const auto changed = compute(q, "sgd", "exact").gradient;
  EXPECT_GT((base - changed).abs().max().item<double>(), 1e-8);
}

TEST(HypergradientVector, RejectsUnknownModeAndForeignParameters) {
  Problem p = make_problem("sgd");
  testing::expect_error([&] { compute(p, "sgd", "magic"); }, {"'magic'", "exact or fd"});
  auto stray = torch::zeros({2}, kF64).requires_grad_();
  auto params = p.params;
  params.push_back(stray);
  testing::expect_error(
      [&] {
        HyperStep s = step_of(p);
        s.params = params;
        s.train_loss = [&](const torch::Tensor& m) { return p.train_loss(m) + stray.sum(); };
        hypergradient(s, *p.opt, "sgd", 0.1, p.m, HypergradientOptions());
      },
      {"not in any of the optimizer's groups"});
}

}  // namespace
}  // namespace metadistill
