#include "metadistill/meta/virtual_step.h"

#include <cmath>
#include <unordered_map>

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

void check_kind(const std::string& kind) {
  check(kind == "sgd" || kind == "momentum" || kind == "adam" || kind == "lstm",
        "hypergradient: optimizer '{}': expected sgd, momentum, adam or lstm", kind);
}

LstmOptimizer& as_lstm(torch::optim::Optimizer& optimizer) {
  auto* lstm = dynamic_cast<LstmOptimizer*>(&optimizer);
  check(lstm != nullptr, "hypergradient: optimizer kind 'lstm', but the optimizer is not an LstmOptimizer");
  return *lstm;
}

// d = g + wd·w, the gradient the optimizer's rule sees.
torch::Tensor decayed(const torch::Tensor& g, double wd, const torch::Tensor& w) {
  return wd != 0 ? g + wd * w : g;
}

// P of Adam's step at step count t for the moments m, v that include d:
// ∂(m̂/denom)/∂d = (1/bias1)·((1−β1)/denom − m·∂denom/∂d / denom²), with
// ∂denom/∂d = (1−β2)·d / (√bias2 · √v) (zero where v = 0, the limit of the formula).
torch::Tensor adam_preconditioner(const torch::Tensor& d, const torch::Tensor& m,
                                  const torch::Tensor& v, int64_t t,
                                  const torch::optim::AdamOptions& o) {
  const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
  const double bias1 = 1 - std::pow(beta1, t), bias2 = 1 - std::pow(beta2, t);
  auto root_v = v.sqrt();
  auto denom = root_v / std::sqrt(bias2) + o.eps();
  auto ddenom = torch::where(root_v > 0, (1 - beta2) * d / (std::sqrt(bias2) * root_v),
                             torch::zeros_like(root_v));
  return (1.0 / bias1) * ((1 - beta1) / denom - m * ddenom / (denom * denom));
}

}  // namespace

const torch::optim::OptimizerParamState* optimizer_param_state(torch::optim::Optimizer& opt,
                                                               const torch::Tensor& p) {
  auto it = opt.state().find(c10::guts::to_string(p.unsafeGetTensorImpl()));
  return it == opt.state().end() ? nullptr : it->second.get();
}

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

VirtualStep virtual_step(const std::vector<torch::Tensor>& params,
                         const std::vector<torch::Tensor>& grads, torch::optim::Optimizer& optimizer,
                         const std::string& kind, double lr) {
  check_kind(kind);
  const auto decays = parameter_weight_decays(params, optimizer, kind);
  torch::NoGradGuard no_grad;
  VirtualStep out;
  auto& group_options = optimizer.param_groups().at(0).options();
  if (kind == "lstm") {
    auto& lstm = as_lstm(optimizer);
    for (size_t i = 0; i < params.size(); ++i) {
      auto s = lstm.peek(params[i], decayed(grads[i], decays[i], params[i]), /*jacobian=*/true);
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
      auto d = decayed(grads[i], decays[i], params[i]);
      const auto* st =
          static_cast<const torch::optim::AdamParamState*>(optimizer_param_state(optimizer, params[i]));
      const int64_t t = (st ? st->step() : 0) + 1;
      auto m = st ? beta1 * st->exp_avg() + (1 - beta1) * d : (1 - beta1) * d;
      auto v = st ? beta2 * st->exp_avg_sq() + (1 - beta2) * d * d : (1 - beta2) * d * d;
      const double bias1 = 1 - std::pow(beta1, t), bias2 = 1 - std::pow(beta2, t);
      auto denom = v.sqrt() / std::sqrt(bias2) + o.eps();
      out.step.push_back((lr / bias1) * m / denom);
      out.preconditioner.push_back(adam_preconditioner(d, m, v, t, o));
    }
    return out;
  }
  auto& o = static_cast<torch::optim::SGDOptions&>(group_options);
  check(!o.nesterov() && o.dampening() == 0,
        "hypergradient: SGD with nesterov or dampening is not supported");
  for (size_t i = 0; i < params.size(); ++i) {
    auto d = decayed(grads[i], decays[i], params[i]);
    if (kind == "momentum" && o.momentum() != 0) {
      const auto* st =
          static_cast<const torch::optim::SGDParamState*>(optimizer_param_state(optimizer, params[i]));
      // PyTorch's first momentum step starts the buffer at d.
      if (st && st->momentum_buffer().defined()) d = o.momentum() * st->momentum_buffer() + d;
    }
    out.step.push_back(lr * d);
  }
  return out;
}

std::vector<torch::Tensor> preconditioner_after_step(const std::vector<torch::Tensor>& w_before,
                                                     const std::vector<torch::Tensor>& grads,
                                                     const std::vector<torch::Tensor>& params,
                                                     torch::optim::Optimizer& optimizer,
                                                     const std::string& kind) {
  check_kind(kind);
  std::vector<torch::Tensor> out;
  if (kind == "sgd" || kind == "momentum") return out;  // ∂w'/∂g = −γ I
  const auto decays = parameter_weight_decays(params, optimizer, kind);
  if (kind == "lstm") {
    // The learned operator keeps the state before its last step for this.
    auto& lstm = as_lstm(optimizer);
    for (size_t i = 0; i < params.size(); ++i)
      out.push_back(lstm.last_step_preconditioner(params[i], decayed(grads[i], decays[i], w_before[i])));
    return out;
  }
  torch::NoGradGuard no_grad;
  auto& o = static_cast<torch::optim::AdamOptions&>(optimizer.param_groups().at(0).options());
  for (size_t i = 0; i < params.size(); ++i) {
    const auto* st =
        static_cast<const torch::optim::AdamParamState*>(optimizer_param_state(optimizer, params[i]));
    check(st != nullptr, "lagged hypergradient: Adam has no state for a parameter after its step");
    // The state after the step holds m_t, v_t and t: the quantities `virtual_step` forms.
    out.push_back(adam_preconditioner(decayed(grads[i], decays[i], w_before[i]), st->exp_avg(),
                                      st->exp_avg_sq(), st->step(), o));
  }
  return out;
}

void apply_virtual_step(const std::vector<torch::Tensor>& params, torch::optim::Optimizer& optimizer,
                        const std::string& kind, double lr, const torch::Tensor& train_loss) {
  auto vs = virtual_step(params, gradients_or_zeros(train_loss, params), optimizer, kind, lr);
  torch::NoGradGuard no_grad;
  for (size_t i = 0; i < params.size(); ++i) params[i].sub_(vs.step[i]);
}

}  // namespace metadistill
