#include "metadistill/meta/hypergradient.h"

#include <cmath>

#include <torch/csrc/autograd/forward_grad.h>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

std::vector<torch::Tensor> trainable(ClassifierImpl& model) {
  std::vector<torch::Tensor> out;
  for (auto& p : model.parameters())
    if (p.requires_grad()) out.push_back(p);
  return out;
}

const torch::optim::OptimizerParamState* param_state(torch::optim::Optimizer& opt,
                                                     const torch::Tensor& p) {
  auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  return it == opt.state().end() ? nullptr : it->second.get();
}

// ∇_λ of the loss head at fixed logits: forward-only in the network (DESIGN.md 3.6).
std::pair<double, double> head_gradient(const torch::Tensor& logits, const torch::Tensor& teacher,
                                        const torch::Tensor& targets, const Metaparameters& lambda,
                                        KdScale scale) {
  auto opts = torch::TensorOptions().dtype(logits.dtype()).device(logits.device());
  auto l1 = torch::tensor(lambda.lambda1, opts).requires_grad_();
  auto T = torch::tensor(lambda.temperature, opts).requires_grad_();
  auto loss = functional::hinton_loss(logits, teacher, targets, l1, T, scale);
  auto g = torch::autograd::grad({loss}, {l1, T});
  return {g[0].item<double>(), g[1].item<double>()};
}

// Data parallel: v and L_val are means over the validation batch, reduced together.
void reduce_validation(const HypergradientOptions& o, torch::autograd::variable_list& v,
                       Hypergradient& h, int64_t count) {
  if (!o.reduce) return;
  v.push_back(torch::full({1}, h.val_loss, v.empty() ? torch::TensorOptions(torch::kDouble)
                                                     : v.front().options()));
  o.reduce(v, count);
  h.val_loss = v.back().item<double>();
  v.pop_back();
}

// Data parallel: the λ-derivatives are linear in the training batch's mean loss.
void reduce_derivatives(const HypergradientOptions& o, Hypergradient& h, int64_t count) {
  if (!o.reduce) return;
  std::vector<torch::Tensor> means{torch::tensor({h.lambda1, h.temperature}, torch::kDouble)};
  o.reduce(means, count);
  h.lambda1 = means[0][0].item<double>();
  h.temperature = means[0][1].item<double>();
}

}  // namespace

StepNorm parse_step_norm(const std::string& name) {
  if (name == "none") return StepNorm::kNone;
  if (name == "ce") return StepNorm::kCrossEntropy;
  fail("step_norm '{}': expected none or ce", name);
}

void HypergradientOptions::validate() const {
  check(mode == "exact" || mode == "fd", "hypergradient '{}': expected exact or fd", mode);
  check(exact_product == "jvp" || exact_product == "reverse",
        "exact_product '{}': expected jvp or reverse", exact_product);
  check(fd_scheme == "central" || fd_scheme == "forward",
        "fd_scheme '{}': expected central or forward", fd_scheme);
  check(std::isfinite(fd_scale) && fd_scale > 0, "fd_scale = {}: expected > 0", fd_scale);
  check(std::isfinite(val_temperature) && val_temperature > 0,
        "val_temperature = {}: expected > 0", val_temperature);
}

BufferGuard::BufferGuard(torch::nn::Module& module) {
  for (auto& b : module.buffers()) {
    buffers_.push_back(b);
    saved_.push_back(b.detach().clone());
  }
}

BufferGuard::~BufferGuard() {
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < buffers_.size(); ++i) buffers_[i].copy_(saved_[i]);
}

VirtualStep virtual_step(const std::vector<torch::Tensor>& params,
                         const std::vector<torch::Tensor>& grads, torch::optim::Optimizer& optimizer,
                         const std::string& kind, double lr) {
  torch::NoGradGuard no_grad;
  VirtualStep out;
  auto& group_options = optimizer.param_groups().at(0).options();
  if (kind == "lstm") {
    // The learned operator (meta/lstm_optimizer.h): step γ·direction(d), P = ∂direction/∂d.
    auto* lstm = dynamic_cast<LstmOptimizer*>(&optimizer);
    check(lstm != nullptr, "hypergradient: optimizer kind 'lstm', but the optimizer is not an LstmOptimizer");
    const double wd = static_cast<LstmOptimizerOptions&>(group_options).weight_decay();
    for (size_t i = 0; i < params.size(); ++i) {
      auto d = wd != 0 ? grads[i] + wd * params[i] : grads[i];
      auto s = lstm->peek(params[i], d, /*jacobian=*/true);
      out.step.push_back(lr * s.direction);
      out.preconditioner.push_back(s.preconditioner);
    }
    return out;
  }
  if (kind == "adam") {
    auto& o = static_cast<torch::optim::AdamOptions&>(group_options);
    check(!o.amsgrad(), "hypergradient: Adam with amsgrad is not supported");
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (size_t i = 0; i < params.size(); ++i) {
      auto d = o.weight_decay() != 0 ? grads[i] + o.weight_decay() * params[i] : grads[i];
      const auto* st = static_cast<const torch::optim::AdamParamState*>(param_state(optimizer, params[i]));
      const int64_t t = (st ? st->step() : 0) + 1;
      auto m = st ? beta1 * st->exp_avg() + (1 - beta1) * d : (1 - beta1) * d;
      auto v = st ? beta2 * st->exp_avg_sq() + (1 - beta2) * d * d : (1 - beta2) * d * d;
      const double bias1 = 1 - std::pow(beta1, t), bias2 = 1 - std::pow(beta2, t);
      auto root_v = v.sqrt();
      auto denom = root_v / std::sqrt(bias2) + o.eps();
      const double step_size = lr / bias1;
      out.step.push_back(step_size * m / denom);
      // ∂(m/denom)/∂d = (1−β1)/denom − m · ∂denom/∂d / denom², with
      // ∂denom/∂d = (1−β2)·d / (√bias2 · √v) (zero where v = 0, the limit of the formula).
      auto ddenom = torch::where(root_v > 0, (1 - beta2) * d / (std::sqrt(bias2) * root_v),
                                 torch::zeros_like(root_v));
      out.preconditioner.push_back((1.0 / bias1) * ((1 - beta1) / denom - m * ddenom / (denom * denom)));
    }
    return out;
  }
  auto& o = static_cast<torch::optim::SGDOptions&>(group_options);
  check(!o.nesterov() && o.dampening() == 0,
        "hypergradient: SGD with nesterov or dampening is not supported");
  for (size_t i = 0; i < params.size(); ++i) {
    auto d = o.weight_decay() != 0 ? grads[i] + o.weight_decay() * params[i] : grads[i];
    if (kind == "momentum" && o.momentum() != 0) {
      const auto* st = static_cast<const torch::optim::SGDParamState*>(param_state(optimizer, params[i]));
      // PyTorch's first momentum step starts the buffer at d.
      if (st && st->momentum_buffer().defined()) d = o.momentum() * st->momentum_buffer() + d;
    }
    out.step.push_back(lr * d);
  }
  return out;
}

torch::Tensor validation_loss(ClassifierImpl& model, const Batch& val, double val_temperature) {
  auto z = model.forward(val.x);
  return torch::nn::functional::cross_entropy(z / val_temperature, val.y);
}

namespace {

// The logits g(x, w) (detached) and their directional derivative J u along `u`, by one
// forward-mode pass: the tangents ride on the parameters for the duration of a dual level.
std::pair<torch::Tensor, torch::Tensor> logits_and_jvp(ClassifierImpl& model,
                                                        const std::vector<torch::Tensor>& params,
                                                        const std::vector<torch::Tensor>& u,
                                                        const torch::Tensor& x) {
  using torch::autograd::ForwardADLevel;
  struct Level {
    uint64_t index = ForwardADLevel::get_next_idx();
    ~Level() { ForwardADLevel::release_idx(index); }
  } level;
  torch::NoGradGuard no_grad;  // forward-mode only: no backward graph is recorded
  for (size_t i = 0; i < params.size(); ++i)
    params[i]._set_fw_grad(u[i], level.index, /*is_inplace_op=*/false);
  auto z = model.forward(x);
  auto tangent = z._fw_grad(level.index);
  check(tangent.defined(), "hypergradient: the model's forward has no forward-mode derivative "
        "(use exact_product: reverse)");
  // Releasing the level (at scope exit) drops the parameters' tangents.
  return {z.detach().clone(), tangent.detach().clone()};
}

// h = −γ ∇²_{λ,w} L_train(w, λ) · u at w = `w`, by `exact` autodiff or finite differences of the
// loss head's λ-gradient. `base_logits` (optional) are g(x, w), used by the one-sided scheme.
void mixed_product(ClassifierImpl& model, const std::vector<torch::Tensor>& params,
                   const std::vector<torch::Tensor>& w, const std::vector<torch::Tensor>& u,
                   double lr, const Batch& train, const torch::Tensor& teacher_logits,
                   const torch::Tensor& base_logits, const Metaparameters& lambda,
                   const HypergradientOptions& options, Hypergradient& h) {
  if (options.mode == "exact" && options.exact_product == "jvp") {
    // ⟨∇_w L_train(w, λ), u⟩ = ⟨∂ℓ/∂z, J u⟩: one forward-mode pass gives J u, the rest is the
    // loss head (DESIGN.md 3.6).
    assign_parameters(params, w);
    auto [z, z_dot] = logits_and_jvp(model, params, u, train.x);
    auto opts = torch::TensorOptions().dtype(z.dtype()).device(z.device());
    auto l1 = torch::tensor(lambda.lambda1, opts).requires_grad_();
    auto T = torch::tensor(lambda.temperature, opts).requires_grad_();
    auto zr = z.requires_grad_();
    auto loss = functional::hinton_loss(zr, teacher_logits, train.y, l1, T, options.kd_scale);
    auto gz = torch::autograd::grad({loss}, {zr}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    auto d = torch::autograd::grad({(gz[0] * z_dot).sum()}, {l1, T}, {}, false, false,
                                   /*allow_unused=*/true);
    h.lambda1 = d[0].defined() ? -lr * d[0].item<double>() : 0.0;
    h.temperature = d[1].defined() ? -lr * d[1].item<double>() : 0.0;
    return;
  }
  if (options.mode == "exact") {
    // s(λ) = ⟨∇_w L_train(w, λ), u⟩ with the gradient's graph kept, then h = −γ ∇_λ s. The graph
    // is built only here because moving the weights in place would invalidate it.
    assign_parameters(params, w);
    auto opts = torch::TensorOptions().dtype(w.front().dtype()).device(w.front().device());
    auto l1 = torch::tensor(lambda.lambda1, opts).requires_grad_();
    auto T = torch::tensor(lambda.temperature, opts).requires_grad_();
    auto loss = functional::hinton_loss(model.forward(train.x), teacher_logits, train.y, l1, T,
                                        options.kd_scale);
    auto g = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true, /*create_graph=*/true);
    auto s = torch::zeros({}, opts);
    for (size_t i = 0; i < params.size(); ++i) s = s + (g[i] * u[i]).sum();
    auto d = torch::autograd::grad({s}, {l1, T}, {}, false, false, /*allow_unused=*/true);
    h.lambda1 = d[0].defined() ? -lr * d[0].item<double>() : 0.0;
    h.temperature = d[1].defined() ? -lr * d[1].item<double>() : 0.0;
    return;
  }
  double norm2 = 0;
  for (const auto& ui : u) norm2 += ui.pow(2).sum().item<double>();
  const double norm = std::sqrt(norm2);
  if (norm == 0.0) return;  // L_val is flat along the step: no signal.
  h.epsilon = options.fd_scale / norm;
  auto head_at = [&](double sign) {
    assign_parameters_axpy(params, w, sign * h.epsilon, u);
    torch::Tensor z;
    {
      torch::NoGradGuard no_grad;
      z = model.forward(train.x);
    }
    return head_gradient(z, teacher_logits, train.y, lambda, options.kd_scale);
  };
  const auto plus = head_at(+1.0);
  if (options.fd_scheme == "forward" && base_logits.defined()) {
    const auto base = head_gradient(base_logits, teacher_logits, train.y, lambda, options.kd_scale);
    h.lambda1 = -lr * (plus.first - base.first) / h.epsilon;
    h.temperature = -lr * (plus.second - base.second) / h.epsilon;
    return;
  }
  const auto minus = head_at(-1.0);
  h.lambda1 = -lr * (plus.first - minus.first) / (2 * h.epsilon);
  h.temperature = -lr * (plus.second - minus.second) / (2 * h.epsilon);
}

}  // namespace

Hypergradient greedy_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& kind, double lr, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options) {
  options.validate();
  check(teacher_logits.defined(), "hypergradient: the method distills but has no teacher logits");
  check(!options.reduce || options.step_norm == StepNorm::kNone,
        "hypergradient: step_norm ce is not data-parallel yet");
  BufferGuard buffers(model);
  auto params = trainable(model);
  const auto w = snapshot_parameters(params);
  Hypergradient h;

  // 1. ∇_w L_train(w, λ) for the virtual step.
  std::vector<torch::Tensor> g_detached;
  // step_norm ce: the step takes s·g, s = ‖∇CE‖/‖g‖; ĝ = g/‖g‖.
  const bool normed = options.step_norm == StepNorm::kCrossEntropy;
  double scale = 1.0;
  std::vector<torch::Tensor> g_unit;
  {
    auto logits = model.forward(train.x);  // [B, K]
    auto loss = functional::hinton_loss(logits, teacher_logits, train.y, lambda.lambda1,
                                        lambda.temperature, options.kd_scale);
    for (auto& gi : torch::autograd::grad({loss}, params, {}, /*retain_graph=*/normed))
      g_detached.push_back(gi.detach());
    if (options.reduce) options.reduce(g_detached, train.x.size(0));
    if (normed) {
      auto ce = torch::nn::functional::cross_entropy(logits, train.y);
      double ce2 = 0, g2 = 0;
      for (auto& gi : torch::autograd::grad({ce}, params)) ce2 += gi.pow(2).sum().item<double>();
      for (const auto& gi : g_detached) g2 += gi.pow(2).sum().item<double>();
      if (g2 > 0) {
        scale = std::sqrt(ce2 / g2);
        for (auto& gi : g_detached) {
          g_unit.push_back(gi / std::sqrt(g2));
          gi = gi * scale;
        }
      }
    }
  }

  // 2. The virtual step w' = U(w, λ) and v = ∇ L_val(w').
  auto vs = virtual_step(params, g_detached, optimizer, kind, lr);
  assign_parameters_axpy(params, w, -1.0, vs.step);
  auto val_loss = validation_loss(model, val, options.val_temperature);
  h.val_loss = val_loss.item<double>();
  auto v = torch::autograd::grad({val_loss}, params);
  reduce_validation(options, v, h, val.x.size(0));
  assign_parameters(params, w);

  // 3. u = P v: the direction in which the step's gradient moves w'.
  std::vector<torch::Tensor> u;
  for (size_t i = 0; i < params.size(); ++i)
    u.push_back(vs.preconditioner.empty() ? v[i] : vs.preconditioner[i] * v[i]);
  mixed_product(model, params, w, u, lr, train, teacher_logits, torch::Tensor(), lambda, options, h);
  if (!g_unit.empty()) {
    // d(s·g)/dλ = s·(I − ĝĝᵀ)·∂g/∂λ, so h = s·(M(u) − ⟨u, ĝ⟩·M(ĝ)) with M(x) = −γ⟨x, ∂g/∂λ⟩.
    double u_dot = 0;
    for (size_t i = 0; i < u.size(); ++i) u_dot += (u[i] * g_unit[i]).sum().item<double>();
    Hypergradient along;
    mixed_product(model, params, w, g_unit, lr, train, teacher_logits, torch::Tensor(), lambda,
                  options, along);
    h.lambda1 = scale * (h.lambda1 - u_dot * along.lambda1);
    h.temperature = scale * (h.temperature - u_dot * along.temperature);
  }
  reduce_derivatives(options, h, train.x.size(0));
  assign_parameters(params, w);
  return h;
}

std::vector<torch::Tensor> preconditioner_after_step(const std::vector<torch::Tensor>& w_before,
                                                     const std::vector<torch::Tensor>& grads,
                                                     const std::vector<torch::Tensor>& params,
                                                     torch::optim::Optimizer& optimizer,
                                                     const std::string& kind) {
  std::vector<torch::Tensor> out;
  if (kind == "lstm") {
    // The learned operator keeps the state before its last step for this.
    auto* lstm = dynamic_cast<LstmOptimizer*>(&optimizer);
    check(lstm != nullptr, "lagged hypergradient: optimizer kind 'lstm', but the optimizer is not an LstmOptimizer");
    const double wd =
        static_cast<LstmOptimizerOptions&>(optimizer.param_groups().at(0).options()).weight_decay();
    for (size_t i = 0; i < params.size(); ++i)
      out.push_back(lstm->last_step_preconditioner(
          params[i], wd != 0 ? grads[i] + wd * w_before[i] : grads[i]));
    return out;
  }
  if (kind != "adam") return out;  // SGD and momentum: ∂w'/∂g = −γ I
  torch::NoGradGuard no_grad;
  auto& o = static_cast<torch::optim::AdamOptions&>(optimizer.param_groups().at(0).options());
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto* st = static_cast<const torch::optim::AdamParamState*>(param_state(optimizer, params[i]));
    check(st != nullptr, "lagged hypergradient: Adam has no state for a parameter after its step");
    // The state after the step holds m_t, v_t and t: the same quantities `virtual_step` forms.
    auto d = o.weight_decay() != 0 ? grads[i] + o.weight_decay() * w_before[i] : grads[i];
    const double bias1 = 1 - std::pow(beta1, st->step()), bias2 = 1 - std::pow(beta2, st->step());
    auto root_v = st->exp_avg_sq().sqrt();
    auto denom = root_v / std::sqrt(bias2) + o.eps();
    auto ddenom = torch::where(root_v > 0, (1 - beta2) * d / (std::sqrt(bias2) * root_v),
                               torch::zeros_like(root_v));
    out.push_back((1.0 / bias1) * ((1 - beta1) / denom - st->exp_avg() * ddenom / (denom * denom)));
  }
  return out;
}

Hypergradient lagged_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& kind, double lr,
                                   const std::vector<torch::Tensor>& w_before,
                                   const std::vector<torch::Tensor>& grads,
                                   const torch::Tensor& logits, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options) {
  options.validate();
  check(options.step_norm == StepNorm::kNone,
        "step_norm ce: the hypergradient supports order 'before' only, not 'lagged'");
  check(teacher_logits.defined(), "hypergradient: the method distills but has no teacher logits");
  BufferGuard buffers(model);
  auto params = trainable(model);
  check(params.size() == w_before.size() && params.size() == grads.size(),
        "lagged hypergradient: {} parameters but {} saved weights and {} gradients", params.size(),
        w_before.size(), grads.size());
  Hypergradient h;
  // v = ∇ L_val(w') at the weights the student step produced.
  auto val_loss = validation_loss(model, val, options.val_temperature);
  h.val_loss = val_loss.item<double>();
  auto v = torch::autograd::grad({val_loss}, params);
  reduce_validation(options, v, h, val.x.size(0));
  auto p = preconditioner_after_step(w_before, grads, params, optimizer, kind);
  std::vector<torch::Tensor> u;
  for (size_t i = 0; i < params.size(); ++i) u.push_back(p.empty() ? v[i] : p[i] * v[i]);
  const auto w_after = snapshot_parameters(params);
  mixed_product(model, params, w_before, u, lr, train, teacher_logits, logits, lambda, options, h);
  reduce_derivatives(options, h, train.x.size(0));
  assign_parameters(params, w_after);
  return h;
}

}  // namespace metadistill
