// Cost of one training step of the Fashion-MNIST student (batch 128) under each metaparameter
// method, as a ratio to a plain cross-entropy step, measured in one process with the variants
// interleaved round by round so that machine noise hits all of them alike.
//   step_bench [--threads N] [--rounds R] [--steps S] [--json FILE]
#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <map>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/gradient_method.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/models/classifier.h"
#include "metadistill/util/runtime.h"

using namespace metadistill;
using Clock = std::chrono::steady_clock;

namespace {

struct Setup {
  Classifier model;
  std::unique_ptr<torch::optim::SGD> opt;
  std::vector<Batch> train, val, val_small;  // val_small: the first 32 rows of each val batch
  std::vector<torch::Tensor> teacher;
  size_t cursor = 0;
};

Setup make_setup(int64_t batch, int64_t n_batches) {
  torch::manual_seed(0);
  Setup s;
  s.model = make_model(ModelSpec("cnn", 10, {1, 28, 28}));
  s.model->train();
  s.opt = std::make_unique<torch::optim::SGD>(s.model->parameters(), torch::optim::SGDOptions(0.1));
  for (int64_t i = 0; i < n_batches; ++i) {
    Batch b, v;
    b.x = torch::randn({batch, 1, 28, 28});
    b.y = torch::randint(10, {batch}, torch::kLong);
    b.idx = torch::arange(batch, torch::kLong);
    v.x = torch::randn({batch, 1, 28, 28});
    v.y = torch::randint(10, {batch}, torch::kLong);
    s.train.push_back(b);
    s.val.push_back(v);
    Batch small;
    small.x = v.x.slice(0, 0, 32).clone();
    small.y = v.y.slice(0, 0, 32).clone();
    s.val_small.push_back(small);
    s.teacher.push_back(3 * torch::randn({batch, 10}));
  }
  return s;
}

// One student step as the trainer takes it, with the method's after-step hook; `normed`: the
// gradient rescaled to the length of the cross-entropy's on the same logits (step_norm ce, one
// more backward, as train/trainer.cpp does).
void student_step(Setup& s, const Batch& b, const torch::Tensor& t, Metaparameters m,
                  MetaOptimizer* meta = nullptr, HyperStepContext* ctx = nullptr,
                  bool normed = false) {
  s.opt->zero_grad();
  auto logits = s.model->forward(b.x);
  functional::hinton_loss(logits, t, b.y, m.lambda1, m.temperature).backward({}, normed);
  if (normed) {
    auto params = s.model->parameters();
    auto c = torch::autograd::grad({torch::nn::functional::cross_entropy(logits, b.y)}, params);
    double g2 = 0, c2 = 0;
    for (size_t i = 0; i < params.size(); ++i) {
      g2 += params[i].grad().pow(2).sum().item<double>();
      c2 += c[i].pow(2).sum().item<double>();
    }
    torch::NoGradGuard ng;
    for (auto& p : params) p.grad().mul_(std::sqrt(c2 / g2));
  }
  s.opt->step();
  if (meta != nullptr) {
    ctx->logits = logits.detach();
    meta->after_step(*ctx);
  }
}

// The authors' design: a DARTS step on a virtual copy of the model, with backward passes at
// w' and at w ± εv through the network.
void reference_darts_step(Setup& s, const Batch& b, const torch::Tensor& t, const Batch& val,
                          Metaparameters m) {
  auto copy = clone_model(*s.model);
  auto l1 = torch::tensor(m.lambda1).requires_grad_(), T = torch::tensor(m.temperature).requires_grad_();
  {
    auto loss = functional::hinton_loss(copy->forward(b.x), t, b.y, l1, T);
    auto g = torch::autograd::grad({loss}, copy->parameters());
    torch::NoGradGuard ng;
    auto ps = copy->parameters();
    for (size_t i = 0; i < ps.size(); ++i) ps[i].sub_(0.1 * g[i]);
  }
  auto vloss = torch::nn::functional::cross_entropy(copy->forward(val.x), val.y);
  auto v = torch::autograd::grad({vloss}, copy->parameters());
  double norm = 0;
  for (auto& vi : v) norm += vi.pow(2).sum().item<double>();
  const double eps = 0.01 / std::sqrt(norm);
  auto params = s.model->parameters();
  std::vector<torch::Tensor> saved;
  for (auto& p : params) saved.push_back(p.detach().clone());
  for (double sign : {1.0, -1.0}) {
    {
      torch::NoGradGuard ng;
      for (size_t i = 0; i < params.size(); ++i) params[i].copy_(saved[i] + sign * eps * v[i]);
    }
    // The reference code calls backward on the whole loss here, through the network.
    functional::hinton_loss(s.model->forward(b.x), t, b.y, l1, T).backward();
  }
  {
    torch::NoGradGuard ng;
    for (size_t i = 0; i < params.size(); ++i) params[i].copy_(saved[i]);
  }
  student_step(s, b, t, m);
}

}  // namespace

int main(int argc, char** argv) {
  int threads = 0, rounds = 7, steps = 20;
  std::string json_path;
  for (int i = 1; i < argc; ++i) {
    if (!std::strcmp(argv[i], "--threads") && i + 1 < argc) threads = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--rounds") && i + 1 < argc) rounds = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--steps") && i + 1 < argc) steps = std::atoi(argv[++i]);
    else if (!std::strcmp(argv[i], "--json") && i + 1 < argc) json_path = argv[++i];
    else {
      std::cerr << "usage: step_bench [--threads N] [--rounds R] [--steps S] [--json FILE]\n";
      return 2;
    }
  }
  threads = set_threads(threads);
  Setup s = make_setup(128, 8);
  const Metaparameters m{0.5, 2.0};

  auto make_method = [&](const std::string& name, nlohmann::json settings) {
    MethodOptions mo;
    mo.method = name;
    mo.fixed = m;
    mo.given_initial = true;
    mo.extra = std::move(settings);
    return make_meta_optimizer(mo);
  };
  auto fd = make_method("gradient", {{"hypergradient", "fd"}});
  auto exact = make_method("gradient", {{"hypergradient", "exact"}});
  auto fd_lagged = make_method("gradient", {{"hypergradient", "fd"}, {"order", "lagged"}});
  auto fd_lagged_1 = make_method("gradient", {{"hypergradient", "fd"}, {"order", "lagged"},
                                              {"fd_scheme", "forward"}});
  auto exact_lagged = make_method("gradient", {{"hypergradient", "exact"}, {"order", "lagged"}});
  auto exact_reverse = make_method("gradient", {{"hypergradient", "exact"},
                                                {"exact_product", "reverse"}});
  auto exact_lagged_reverse = make_method(
      "gradient", {{"hypergradient", "exact"}, {"order", "lagged"}, {"exact_product", "reverse"}});
  auto proposed = make_method("proposed", {{"hypergradient", "fd"}});
  auto proposed_lagged = make_method("proposed", {{"hypergradient", "fd"}, {"order", "lagged"},
                                                  {"fd_scheme", "forward"}});
  auto proposed_lagged_small = make_method("proposed", {{"hypergradient", "fd"}, {"order", "lagged"},
                                                        {"fd_scheme", "forward"}});
  auto online_fd =
      make_method("gradient", {{"hypergradient", "online"}, {"mu", 0.99}, {"product", "fd"}});
  auto online_fd_k10 = make_method(
      "gradient", {{"hypergradient", "online"}, {"mu", 0.99}, {"product", "fd"}, {"every", 10}});
  auto online_central = make_method("gradient", {{"hypergradient", "online"}, {"mu", 0.99},
                                                 {"product", "fd"}, {"fd_scheme", "central"}});
  auto online_exact = make_method(
      "gradient", {{"hypergradient", "online"}, {"mu", 0.99}, {"product", "exact"}});
  auto online_exact_32 = make_method(
      "gradient", {{"hypergradient", "online"}, {"mu", 0.99}, {"tangent_batch", 32},
                   {"tangent_clip", 0.1}});
  auto online_exact_32_normed = make_method(
      "gradient", {{"hypergradient", "online"}, {"mu", 0.99}, {"tangent_batch", 32},
                   {"tangent_clip", 0.1}});
  auto fd_central_normed = make_method("gradient", {{"hypergradient", "fd"}});
  int64_t global_step = 0;
  auto make_ctx = [&](size_t k, bool small_val) {
    HyperStepContext ctx;
    ctx.student = s.model.get();
    ctx.optimizer = s.opt.get();
    ctx.train = &s.train[k];
    ctx.teacher_logits = s.teacher[k];
    ctx.next_val = [&, k, small_val]() { return small_val ? s.val_small[k] : s.val[k]; };
    ctx.lr = 0.1;
    ctx.step = global_step++;
    return ctx;
  };
  // The gradient variants are reset to the same λ every step so that they do the same arithmetic.
  auto with_method = [&](MetaOptimizer& method, bool small_val = false, bool normed = false) {
    MetaOptimizer* meta = &method;
    return [&, meta, small_val, normed]() {
      const size_t k = s.cursor++ % s.train.size();
      auto ctx = make_ctx(k, small_val);
      if (normed) ctx.step_norm = StepNorm::kCrossEntropy;
      meta->load_state({{"lambda1", m.lambda1}, {"temperature", m.temperature}});
      meta->before_step(ctx);
      student_step(s, s.train[k], s.teacher[k], m, meta, &ctx, normed);
    };
  };
  // The proposed method keeps its own phase state across its 20-step cycle.
  auto proposed_step_of = [&](MetaOptimizer& method, bool small_val = false) {
    MetaOptimizer* meta = &method;
    return [&, meta, small_val]() {
      const size_t k = s.cursor++ % s.train.size();
      auto ctx = make_ctx(k, small_val);
      meta->before_step(ctx);
      student_step(s, s.train[k], s.teacher[k], meta->current(), meta, &ctx);
    };
  };

  std::vector<std::pair<std::string, std::function<void()>>> variants = {
      {"plain CE step", [&]() {
         const size_t k = s.cursor++ % s.train.size();
         student_step(s, s.train[k], s.teacher[k], {1.0, 1.0});
       }},
      {"distillation step", [&]() {
         const size_t k = s.cursor++ % s.train.size();
         student_step(s, s.train[k], s.teacher[k], m);
       }},
      {"greedy fd step (order before, the paper)", with_method(*fd)},
      {"greedy exact step (order before, JVP)", with_method(*exact)},
      {"greedy exact step (order before, double backward)", with_method(*exact_reverse)},
      {"greedy fd step (order lagged, central)", with_method(*fd_lagged)},
      {"greedy fd step (order lagged, one-sided)", with_method(*fd_lagged_1)},
      {"greedy exact step (order lagged, JVP)", with_method(*exact_lagged)},
      {"greedy exact step (order lagged, double backward)", with_method(*exact_lagged_reverse)},
      {"proposed e1=e2=10 (before, amortized)", proposed_step_of(*proposed)},
      {"proposed e1=e2=10 (lagged one-sided, amortized)", proposed_step_of(*proposed_lagged)},
      {"greedy fd step (lagged, one-sided, val batch 32)", with_method(*fd_lagged_1, true)},
      {"greedy exact step (lagged, JVP, val batch 32)", with_method(*exact_lagged, true)},
      {"proposed e1=e2=10 (lagged one-sided, val batch 32)",
       proposed_step_of(*proposed_lagged_small, true)},
      {"online fd step (mu 0.99, one-sided, k=1)", with_method(*online_fd)},
      {"online fd step (mu 0.99, one-sided, k=10)", with_method(*online_fd_k10)},
      {"online fd step (mu 0.99, central, k=1)", with_method(*online_central)},
      {"online exact step (mu 0.99, double backward, k=1)", with_method(*online_exact)},
      {"online exact step (mu 0.99, tangent batch 32, clip)", with_method(*online_exact_32)},
      {"distillation step, step_norm ce", [&]() {
         const size_t k = s.cursor++ % s.train.size();
         student_step(s, s.train[k], s.teacher[k], m, nullptr, nullptr, true);
       }},
      {"greedy fd step (order before, step_norm ce)",
       with_method(*fd_central_normed, false, true)},
      {"online exact step (tangent batch 32, clip, step_norm ce)",
       with_method(*online_exact_32_normed, false, true)},
      {"reference DARTS step (model copy, backward at w±)", [&]() {
         const size_t k = s.cursor++ % s.train.size();
         reference_darts_step(s, s.train[k], s.teacher[k], s.val[k], m);
       }},
  };
  std::map<std::string, std::vector<double>> per_step;
  for (auto& [name, f] : variants) f();  // warm-up
  for (int r = 0; r < rounds; ++r)
    for (auto& [name, f] : variants) {
      // Whole 20-step cycles so the proposed method's amortization is exact.
      const auto t0 = Clock::now();
      for (int i = 0; i < steps; ++i) f();
      per_step[name].push_back(std::chrono::duration<double>(Clock::now() - t0).count() / steps);
    }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double base = median(per_step["plain CE step"]);
  nlohmann::json out = {{"threads", threads}, {"rounds", rounds}, {"steps_per_round", steps},
                        {"model", "cnn (Fashion-MNIST student)"}, {"batch", 128}};
  std::cout << fmt::format("Fashion-MNIST student, batch 128, {} thread(s), median of {} rounds\n",
                           threads, rounds);
  for (auto& [name, f] : variants) {
    const double t = median(per_step[name]);
    std::cout << fmt::format("  {:<52} {:8.2f} ms   {:5.2f}x plain\n", name, t * 1e3, t / base);
    out["variants"].push_back({{"name", name}, {"ms_per_step", t * 1e3}, {"ratio_to_plain", t / base}});
  }
  if (!json_path.empty()) std::ofstream(json_path) << out.dump(2) << "\n";
  return 0;
}
