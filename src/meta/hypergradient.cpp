#include "metadistill/meta/hypergradient.h"

#include <cmath>

#include <torch/csrc/autograd/forward_grad.h>

#include "metadistill/losses/hinton.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/meta/virtual_step.h"
#include "metadistill/util/error.h"

namespace metadistill {

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

namespace {

// Turns requires_grad off for the forwards of the fd scheme (the graph then starts at m, so the
// backward to m only runs through the loss head) and back on at scope exit.
class FrozenParameters {
 public:
  explicit FrozenParameters(const std::vector<torch::Tensor>& params) : params_(params) {
    for (auto& p : params_) {
      flags_.push_back(p.requires_grad());
      p.requires_grad_(false);
    }
  }
  ~FrozenParameters() {
    for (size_t i = 0; i < params_.size(); ++i) params_[i].requires_grad_(flags_[i]);
  }
  FrozenParameters(const FrozenParameters&) = delete;
  FrozenParameters& operator=(const FrozenParameters&) = delete;

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> flags_;
};

// v = ∇_w L_val at the current weights, and L_val; under data parallel both are batch means,
// reduced together before anything is formed from them.
std::vector<torch::Tensor> validation_gradient(const HyperStep& s, const HypergradientOptions& o,
                                               double& val_loss) {
  auto loss = s.val_loss();
  val_loss = loss.item<double>();
  auto v = gradients_or_zeros(loss, s.params);
  if (o.reduce) {
    v.push_back(torch::full({1}, val_loss, v.front().options()));
    o.reduce(v, s.val_count);
    val_loss = v.back().item<double>();
    v.pop_back();
  }
  return v;
}

// ∇_m L_train at the current weights, with the network frozen: one forward, a head backward.
torch::Tensor head_gradient(const HyperStep& s, const torch::Tensor& m) {
  FrozenParameters frozen(s.params);
  auto mg = m.clone().requires_grad_();
  auto loss = s.train_loss(mg);
  if (!loss.requires_grad()) return torch::zeros_like(m);
  auto d = torch::autograd::grad({loss}, {mg}, {}, false, false, /*allow_unused=*/true);
  return d[0].defined() ? d[0].detach() : torch::zeros_like(m);
}

// The mixed product −γ ∇²_{m,w} L_train(w, m) · u at w = `w`.
torch::Tensor mixed_product(const HyperStep& s, const std::vector<torch::Tensor>& w,
                            const std::vector<torch::Tensor>& u, double lr, const torch::Tensor& m,
                            const HypergradientOptions& o, double& epsilon) {
  const auto& params = s.params;
  if (o.mode == "exact" && o.exact_product == "jvp" && s.jvp_product) {
    assign_parameters(params, w);
    return -lr * s.jvp_product(u, m);
  }
  if (o.mode == "exact") {
    // s(m) = ⟨∇_w L_train(w, m), u⟩ with the gradient's graph kept, then h = −γ ∇_m s.
    assign_parameters(params, w);
    auto mg = m.clone().requires_grad_();
    auto g = torch::autograd::grad({s.train_loss(mg)}, params, {}, /*retain_graph=*/true,
                                   /*create_graph=*/true, /*allow_unused=*/true);
    auto dot = torch::zeros({}, m.options());
    for (size_t i = 0; i < params.size(); ++i)
      if (g[i].defined()) dot = dot + (g[i] * u[i]).sum();
    if (!dot.requires_grad()) return torch::zeros_like(m);
    auto d = torch::autograd::grad({dot}, {mg}, {}, false, false, /*allow_unused=*/true);
    return d[0].defined() ? -lr * d[0].detach() : torch::zeros_like(m);
  }
  double norm2 = 0;
  for (const auto& ui : u) norm2 += ui.pow(2).sum().item<double>();
  const double norm = std::sqrt(norm2);
  if (norm == 0.0) return torch::zeros_like(m);  // L_val is flat along the step: no signal
  epsilon = o.fd_scale / norm;
  assign_parameters_axpy(params, w, +epsilon, u);
  const auto plus = head_gradient(s, m);
  if (o.fd_scheme == "forward" && s.base_gradient.defined())
    return -lr * (plus - s.base_gradient) / epsilon;
  assign_parameters_axpy(params, w, -epsilon, u);
  const auto minus = head_gradient(s, m);
  return -lr * (plus - minus) / (2 * epsilon);
}

}  // namespace

HypergradientVector hypergradient(const HyperStep& s, torch::optim::Optimizer& optimizer,
                                  const std::string& kind, double lr, const torch::Tensor& m,
                                  const HypergradientOptions& o) {
  o.validate();
  check(m.defined() && m.is_floating_point(), "hypergradient: metaparameters must be a floating tensor");
  check(std::isfinite(lr) && lr > 0, "hypergradient: lr = {}: expected > 0", lr);
  const bool lagged = !s.w_before.empty();
  const bool normed = o.step_norm == StepNorm::kCrossEntropy;
  check(!normed || !lagged,
        "step_norm ce: the hypergradient supports order 'before' only, not 'lagged'");
  check(!normed || s.reference_loss, "hypergradient: step_norm ce needs the cross-entropy loss");
  check(!o.reduce || (s.train_count > 0 && s.val_count > 0),
        "hypergradient: data parallel needs the batch sizes of this rank");
  const auto& params = s.params;
  check(!lagged || (params.size() == s.w_before.size() && params.size() == s.grads.size()),
        "lagged hypergradient: {} parameters but {} saved weights and {} gradients", params.size(),
        s.w_before.size(), s.grads.size());
  BufferGuard buffers(s.modules);
  const torch::Tensor m_value = m.detach().clone();
  HypergradientVector h;

  std::vector<torch::Tensor> w;        // the weights the step starts from
  std::vector<torch::Tensor> v, P;     // ∇L_val(w') and the step's preconditioner
  std::vector<torch::Tensor> w_after;  // lagged: where the parameters are left
  // step_norm ce: the step takes c·g, c = ‖∇CE‖/‖g‖; ĝ = g/‖g‖.
  double c = 1.0;
  std::vector<torch::Tensor> g_unit;
  if (!lagged) {
    // 1. ∇_w L_train(w, m) and the virtual step w' = U(w, m).
    w = snapshot_parameters(params);
    auto g = gradients_or_zeros(s.train_loss(m_value), params);
    if (o.reduce) o.reduce(g, s.train_count);
    if (normed) {
      double ce2 = 0, g2 = 0;
      auto ce = gradients_or_zeros(s.reference_loss(), params);
      if (o.reduce) o.reduce(ce, s.train_count);  // the whole batch's ∇CE, as the real step
      for (const auto& gi : ce) ce2 += gi.pow(2).sum().item<double>();
      for (const auto& gi : g) g2 += gi.pow(2).sum().item<double>();
      if (g2 > 0) {
        c = std::sqrt(ce2 / g2);
        for (auto& gi : g) {
          g_unit.push_back(gi / std::sqrt(g2));
          gi = gi * c;
        }
      }
    }
    auto vs = virtual_step(params, g, optimizer, kind, lr);
    assign_parameters_axpy(params, w, -1.0, vs.step);
    // 2. v = ∇ L_val(w').
    v = validation_gradient(s, o, h.val_loss);
    assign_parameters(params, w);
    P = std::move(vs.preconditioner);
  } else {
    // 1–2. The step was taken: the parameters are at w'.
    w = s.w_before;
    v = validation_gradient(s, o, h.val_loss);
    P = preconditioner_after_step(s.w_before, s.grads, params, optimizer, kind);
    w_after = snapshot_parameters(params);
  }

  // 3. u = P v, the direction in which the step's gradient moves w', and the mixed product.
  std::vector<torch::Tensor> u;
  for (size_t i = 0; i < params.size(); ++i) u.push_back(P.empty() ? v[i] : P[i] * v[i]);
  h.gradient = mixed_product(s, w, u, lr, m_value, o, h.epsilon);
  if (!g_unit.empty()) {
    // d(c·g)/dm = c·(I − ĝĝᵀ)·∂g/∂m, so h = c·(M(u) − ⟨u, ĝ⟩·M(ĝ)) with M(x) = −γ⟨x, ∂g/∂m⟩.
    double u_dot = 0;
    for (size_t i = 0; i < u.size(); ++i) u_dot += (u[i] * g_unit[i]).sum().item<double>();
    double unused = 0;
    const auto along = mixed_product(s, w, g_unit, lr, m_value, o, unused);
    h.gradient = c * (h.gradient - u_dot * along);
  }
  if (o.reduce) {
    // The m-derivatives are linear in the training batch's mean loss.
    std::vector<torch::Tensor> d{h.gradient};
    o.reduce(d, s.train_count);
    h.gradient = d[0];
  }
  assign_parameters(params, lagged ? w_after : w);
  return h;
}

// ---- The Hinton head ---------------------------------------------------------------------------

torch::Tensor validation_loss(ClassifierImpl& model, const Batch& val, double val_temperature) {
  auto z = model.forward(val.x);
  return torch::nn::functional::cross_entropy(z / val_temperature, val.y);
}

namespace {

// hinton_loss at logits z for m = [λ1, T] (float64): the plain double overload when m is a value,
// the tensor one, cast to the logits' dtype, when m is differentiated.
torch::Tensor hinton_head(const torch::Tensor& z, const torch::Tensor& teacher,
                          const torch::Tensor& targets, const torch::Tensor& m, KdScale scale) {
  if (!m.requires_grad())
    return functional::hinton_loss(z, teacher, targets, m[0].item<double>(), m[1].item<double>(),
                                   scale);
  auto mz = m.to(z.device(), z.scalar_type());
  return functional::hinton_loss(z, teacher, targets, mz[0], mz[1], scale);
}

// ∇_m hinton_loss at fixed logits: forward-only in the network (DESIGN.md 3.6).
torch::Tensor hinton_head_gradient(const torch::Tensor& z, const torch::Tensor& teacher,
                                   const torch::Tensor& targets, const torch::Tensor& m,
                                   KdScale scale) {
  auto mg = m.clone().requires_grad_();
  return torch::autograd::grad({hinton_head(z, teacher, targets, mg, scale)}, {mg})[0];
}

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

// The training step of the Hinton loss on `train` as a `HyperStep`; the references must outlive it.
HyperStep hinton_step(ClassifierImpl& model, const Batch& train, const torch::Tensor& teacher,
                      const Batch& val, const HypergradientOptions& o) {
  check(teacher.defined(), "hypergradient: the method distills but has no teacher logits");
  HyperStep s;
  s.params = trainable_parameters(model);
  s.modules = {&model};
  const KdScale scale = o.kd_scale;
  s.train_loss = [&model, &train, &teacher, scale](const torch::Tensor& m) {
    return hinton_head(model.forward(train.x), teacher, train.y, m, scale);
  };
  const double t_val = o.val_temperature;
  s.val_loss = [&model, &val, t_val] { return validation_loss(model, val, t_val); };
  // ⟨∇_w L_train(w, m), u⟩ = ⟨∂ℓ/∂z, J u⟩: one forward-mode pass gives J u, the rest is the head.
  s.jvp_product = [&model, &train, &teacher, scale, params = s.params](
                      const std::vector<torch::Tensor>& u, const torch::Tensor& m) {
    auto [z, z_dot] = logits_and_jvp(model, params, u, train.x);
    auto mg = m.clone().requires_grad_();
    auto zr = z.requires_grad_();
    auto loss = hinton_head(zr, teacher, train.y, mg, scale);
    auto gz = torch::autograd::grad({loss}, {zr}, {}, /*retain_graph=*/true, /*create_graph=*/true);
    return torch::autograd::grad({(gz[0] * z_dot).sum()}, {mg}, {}, false, false,
                                 /*allow_unused=*/true)[0];
  };
  s.reference_loss = [&model, &train] {
    return torch::nn::functional::cross_entropy(model.forward(train.x), train.y);
  };
  s.train_count = train.x.size(0);
  s.val_count = val.x.size(0);
  return s;
}

torch::Tensor as_tensor(const Metaparameters& lambda) {
  return torch::tensor({lambda.lambda1, lambda.temperature}, torch::kDouble);
}

Hypergradient as_hinton(const HypergradientVector& v) {
  Hypergradient h;
  auto g = v.gradient.defined() ? v.gradient : torch::zeros({2}, torch::kDouble);
  h.lambda1 = g[0].item<double>();
  h.temperature = g[1].item<double>();
  h.val_loss = v.val_loss;
  h.epsilon = v.epsilon;
  return h;
}

}  // namespace

Hypergradient greedy_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& kind, double lr, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options) {
  const HyperStep s = hinton_step(model, train, teacher_logits, val, options);
  return as_hinton(hypergradient(s, optimizer, kind, lr, as_tensor(lambda), options));
}

Hypergradient lagged_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& kind, double lr,
                                   const std::vector<torch::Tensor>& w_before,
                                   const std::vector<torch::Tensor>& grads,
                                   const torch::Tensor& logits, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options) {
  HyperStep s = hinton_step(model, train, teacher_logits, val, options);
  s.w_before = w_before;
  s.grads = grads;
  const auto m = as_tensor(lambda);
  if (options.mode == "fd" && options.fd_scheme == "forward")
    s.base_gradient = hinton_head_gradient(logits, teacher_logits, train.y, m, options.kd_scale);
  return as_hinton(hypergradient(s, optimizer, kind, lr, m, options));
}

}  // namespace metadistill
