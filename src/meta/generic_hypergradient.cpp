#include "metadistill/meta/generic_hypergradient.h"

#include <cmath>
#include <memory>
#include <unordered_map>

#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/meta/parameter_ops.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

double decay_of(torch::optim::OptimizerOptions& o, const std::string& kind) {
  if (kind == "lstm") return static_cast<LstmOptimizerOptions&>(o).weight_decay();
  return kind == "adam" ? static_cast<torch::optim::AdamOptions&>(o).weight_decay()
                        : static_cast<torch::optim::SGDOptions&>(o).weight_decay();
}

double first_group_decay(torch::optim::Optimizer& optimizer, const std::string& kind) {
  return decay_of(optimizer.param_groups().front().options(), kind);
}

std::vector<torch::Tensor> defined_or_zeros(const std::vector<torch::Tensor>& g,
                                            const std::vector<torch::Tensor>& like) {
  std::vector<torch::Tensor> out;
  out.reserve(g.size());
  for (size_t i = 0; i < g.size(); ++i)
    out.push_back(g[i].defined() ? g[i].detach() : torch::zeros_like(like[i]));
  return out;
}

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

 private:
  std::vector<torch::Tensor> params_;
  std::vector<bool> flags_;
};

// `virtual_step` reads the options of the optimizer's first group. Weight decay enters its step
// only through d = g + wd·w, so a parameter of another group gets its own decay by passing
// g + (wd_group − wd_first)·w.
std::vector<torch::Tensor> group_adjusted_grads(const std::vector<torch::Tensor>& params,
                                                const std::vector<torch::Tensor>& grads,
                                                torch::optim::Optimizer& optimizer,
                                                const std::string& kind) {
  const auto decays = parameter_weight_decays(params, optimizer, kind);
  const double wd0 = decays.empty() ? 0.0 : first_group_decay(optimizer, kind);
  std::vector<torch::Tensor> out;
  out.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i)
    out.push_back(decays[i] == wd0 ? grads[i] : grads[i] + (decays[i] - wd0) * params[i].detach());
  return out;
}

VirtualStep group_virtual_step(const std::vector<torch::Tensor>& params,
                               const std::vector<torch::Tensor>& grads,
                               torch::optim::Optimizer& optimizer, const std::string& kind,
                               double lr) {
  check(kind == "sgd" || kind == "momentum" || kind == "adam" || kind == "lstm",
        "hypergradient: optimizer '{}': expected sgd, momentum, adam or lstm", kind);
  auto adjusted = group_adjusted_grads(params, grads, optimizer, kind);
  return virtual_step(params, adjusted, optimizer, kind, lr);
}

}  // namespace

std::vector<double> parameter_weight_decays(const std::vector<torch::Tensor>& params,
                                            torch::optim::Optimizer& optimizer,
                                            const std::string& kind) {
  auto& groups = optimizer.param_groups();
  check(!groups.empty(), "hypergradient: the optimizer has no parameter groups");
  auto& first = groups.front().options();
  for (auto& g : groups) {
    auto& o = g.options();
    if (kind == "lstm") continue;  // one network for every group: only the decay may differ
    if (kind == "adam") {
      auto& a = static_cast<torch::optim::AdamOptions&>(o);
      auto& b = static_cast<torch::optim::AdamOptions&>(first);
      check(a.betas() == b.betas() && a.eps() == b.eps() && a.amsgrad() == b.amsgrad(),
            "hypergradient: the optimizer's parameter groups differ in Adam options other than "
            "weight decay");
    } else {
      auto& a = static_cast<torch::optim::SGDOptions&>(o);
      auto& b = static_cast<torch::optim::SGDOptions&>(first);
      check(a.momentum() == b.momentum() && a.dampening() == b.dampening() &&
                a.nesterov() == b.nesterov(),
            "hypergradient: the optimizer's parameter groups differ in SGD options other than "
            "weight decay");
    }
  }
  std::unordered_map<const void*, double> decay;
  for (auto& g : groups) {
    const double wd = decay_of(g.options(), kind);
    for (const auto& p : g.params()) decay[p.unsafeGetTensorImpl()] = wd;
  }
  std::vector<double> out;
  out.reserve(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    auto it = decay.find(params[i].unsafeGetTensorImpl());
    check(it != decay.end(),
          "hypergradient: parameter {} (shape {}) is not in any of the optimizer's groups", i,
          params[i].sizes());
    out.push_back(it->second);
  }
  return out;
}

void GenericHypergradientOptions::validate() const {
  check(mode() == "exact" || mode() == "fd", "hypergradient '{}': expected exact or fd", mode());
  check(std::isfinite(fd_scale()) && fd_scale() > 0, "fd_scale = {}: expected > 0", fd_scale());
}

void apply_virtual_step(const std::vector<torch::Tensor>& params, torch::optim::Optimizer& optimizer,
                        const std::string& kind, double lr, const torch::Tensor& train_loss) {
  auto g = torch::autograd::grad({train_loss}, params, {}, false, false, /*allow_unused=*/true);
  auto grads = defined_or_zeros(g, params);
  auto vs = group_virtual_step(params, grads, optimizer, kind, lr);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].sub_(vs.step[i]);
}

GenericHypergradient generic_hypergradient(const std::vector<torch::Tensor>& params,
                                           torch::optim::Optimizer& optimizer,
                                           const std::string& kind, double lr,
                                           const TrainLossFn& train_loss,
                                           const ValLossFn& val_loss, const torch::Tensor& m,
                                           const std::vector<torch::nn::Module*>& modules,
                                           const GenericHypergradientOptions& options) {
  options.validate();
  check(m.defined() && m.is_floating_point(), "hypergradient: metaparameters must be a floating tensor");
  check(std::isfinite(lr) && lr > 0, "hypergradient: lr = {}: expected > 0", lr);
  std::vector<std::unique_ptr<BufferGuard>> guards;
  for (auto* module : modules) {
    check(module != nullptr, "hypergradient: a null module was given for buffer restoring");
    guards.push_back(std::make_unique<BufferGuard>(*module));
  }
  const auto w = snapshot_parameters(params);
  const torch::Tensor m_value = m.detach().clone();
  GenericHypergradient h;
  h.gradient = torch::zeros_like(m_value);

  // 1. ∇_w L_train(w, m) and the virtual step w' = U(w, m).
  std::vector<torch::Tensor> grads;
  {
    auto loss = train_loss(m_value);
    grads = defined_or_zeros(
        torch::autograd::grad({loss}, params, {}, false, false, /*allow_unused=*/true), params);
  }
  auto vs = group_virtual_step(params, grads, optimizer, kind, lr);
  assign_parameters_axpy(params, w, -1.0, vs.step);

  // 2. v = ∇ L_val(w'), then u = P v.
  std::vector<torch::Tensor> u;
  {
    auto lv = val_loss();
    h.val_loss = lv.item<double>();
    auto v = defined_or_zeros(
        torch::autograd::grad({lv}, params, {}, false, false, /*allow_unused=*/true), params);
    for (size_t i = 0; i < params.size(); ++i)
      u.push_back(vs.preconditioner.empty() ? v[i] : vs.preconditioner[i] * v[i]);
  }
  assign_parameters(params, w);

  // 3. The mixed product −γ ∇²_{m,w} L_train · u.
  if (options.mode() == "exact") {
    auto mg = m_value.clone().requires_grad_();
    auto loss = train_loss(mg);
    auto g = torch::autograd::grad({loss}, params, {}, /*retain_graph=*/true,
                                   /*create_graph=*/true, /*allow_unused=*/true);
    auto s = torch::zeros({}, m_value.options());
    for (size_t i = 0; i < params.size(); ++i)
      if (g[i].defined()) s = s + (g[i] * u[i]).sum();
    if (s.requires_grad()) {
      auto d = torch::autograd::grad({s}, {mg}, {}, false, false, /*allow_unused=*/true);
      if (d[0].defined()) h.gradient = -lr * d[0].detach();
    }
  } else {
    double norm2 = 0;
    for (const auto& ui : u) norm2 += ui.pow(2).sum().item<double>();
    const double norm = std::sqrt(norm2);
    if (norm > 0) {  // else L_val is flat along the step: no signal
      h.epsilon = options.fd_scale() / norm;
      auto head_gradient_at = [&](double sign) {
        assign_parameters_axpy(params, w, sign * h.epsilon, u);
        FrozenParameters frozen(params);
        auto mg = m_value.clone().requires_grad_();
        auto loss = train_loss(mg);
        if (!loss.requires_grad()) return torch::zeros_like(m_value);
        auto d = torch::autograd::grad({loss}, {mg}, {}, false, false, /*allow_unused=*/true);
        return d[0].defined() ? d[0].detach() : torch::zeros_like(m_value);
      };
      const auto plus = head_gradient_at(+1.0);
      const auto minus = head_gradient_at(-1.0);
      h.gradient = -lr * (plus - minus) / (2 * h.epsilon);
    }
    assign_parameters(params, w);
  }
  return h;
}

}  // namespace metadistill
