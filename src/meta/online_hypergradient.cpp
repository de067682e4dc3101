#include "metadistill/meta/online_hypergradient.h"

#include <cmath>
#include <memory>

#include "metadistill/meta/parameter_ops.h"
#include "metadistill/meta/virtual_step.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace {

std::vector<torch::Tensor> zeros_like_all(const std::vector<torch::Tensor>& like) {
  std::vector<torch::Tensor> out;
  out.reserve(like.size());
  for (const auto& t : like) out.push_back(torch::zeros_like(t).detach());
  return out;
}

}  // namespace

void OnlineHypergradientOptions::validate() const {
  check(std::isfinite(mu()) && mu() >= 0 && mu() <= 1, "mu = {}: expected a value in [0, 1]", mu());
  check(product() == "fd" || product() == "exact",
        "online product '{}': expected fd or exact", product());
  check(fd_scheme() == "forward" || fd_scheme() == "central",
        "fd_scheme '{}': expected forward or central", fd_scheme());
  check(std::isfinite(fd_scale()) && fd_scale() > 0, "fd_scale = {}: expected > 0", fd_scale());
  check(std::isfinite(tangent_clip()) && tangent_clip() >= 0,
        "tangent_clip = {}: expected >= 0 (0 = off)", tangent_clip());
}

void OnlineHypergradient::clip(const std::vector<torch::Tensor>& params) {
  if (options_.tangent_clip() <= 0) return;
  torch::NoGradGuard no_grad;
  double w2 = 0;
  for (const auto& p : params) w2 += p.detach().pow(2).sum().item<double>();
  const double cap = options_.tangent_clip() * std::sqrt(w2);
  for (size_t j = 0; j < z_.size(); ++j) {
    double z2 = 0;
    for (const auto& t : z_[j]) z2 += t.pow(2).sum().item<double>();
    const double norm = std::sqrt(z2);
    if (!(norm > cap)) continue;
    // Z, and the state tangents with it, are linear in the carried past: one factor for all.
    const double s = cap / norm;
    for (auto* set : {&z_, &state1_, &state2_})
      if (j < set->size())
        for (auto& t : (*set)[j]) t.mul_(s);
    ++clipped_;
  }
}

OnlineHypergradient::OnlineHypergradient(OnlineHypergradientOptions options)
    : options_(std::move(options)) {
  options_.validate();
}

void OnlineHypergradient::reset() {
  z_.clear();
  state1_.clear();
  state2_.clear();
}

void OnlineHypergradient::carry(const std::vector<torch::Tensor>& params,
                                const std::vector<torch::Tensor>& w_before,
                                const std::vector<torch::Tensor>& grads,
                                torch::optim::Optimizer& optimizer, const std::string& kind,
                                double lr, const TrainLossFn& train_loss, const torch::Tensor& m,
                                const std::vector<torch::nn::Module*>& modules,
                                const BatchMeanReduce& reduce, int64_t count,
                                const ValLossFn& normalized_by) {
  check(kind != "lstm",
        "online hypergradient: optimizer 'lstm' is not supported: the tangent of the learned "
        "optimizer's hidden and cell states is not carried (meta/lstm_optimizer.h); use the "
        "greedy hypergradient (hypergradient: exact or fd) with lstm");
  check(kind == "sgd" || kind == "momentum" || kind == "adam",
        "online hypergradient: optimizer '{}': expected sgd, momentum or adam", kind);
  check(params.size() == w_before.size() && params.size() == grads.size(),
        "online hypergradient: {} parameters but {} saved weights and {} gradients", params.size(),
        w_before.size(), grads.size());
  check(m.defined() && m.dim() == 1 && m.is_floating_point(),
        "online hypergradient: metaparameters must be a 1-d floating tensor");
  check(std::isfinite(lr) && lr > 0, "online hypergradient: lr = {}: expected > 0", lr);
  check(!normalized_by || options_.product() == "exact",
        "online hypergradient: step_norm ce needs product 'exact' (the tangent of the normalized "
        "step is formed by double backward)");
  check(!normalized_by || !reduce,
        "online hypergradient: step_norm ce is not supported data-parallel");
  const int64_t d = m.size(0);
  const auto decays = parameter_weight_decays(params, optimizer, kind);
  const double mu = options_.mu();
  if (z_.empty()) {
    for (int64_t j = 0; j < d; ++j) {
      z_.push_back(zeros_like_all(params));
      state1_.push_back(zeros_like_all(params));
      if (kind == "adam") state2_.push_back(zeros_like_all(params));
    }
  }
  check(static_cast<int64_t>(z_.size()) == d && z_.front().size() == params.size(),
        "online hypergradient: tangents of {} metaparameters, but m has {}", z_.size(), d);
  check(kind != "adam" || !state2_.empty(),
        "online hypergradient: the optimizer changed to adam mid-run");

  BufferGuard buffers(modules);
  const auto w_after = snapshot_parameters(params);
  const torch::Tensor m_value = m.detach().clone();

  // μ · (∂Φ/∂s) Z = (∂Φ/∂s)(μ Z): the decay is applied to every carried tangent first.
  if (mu != 1.0) {
    torch::NoGradGuard no_grad;
    for (auto* set : {&z_, &state1_, &state2_})
      for (auto& per_m : *set)
        for (auto& t : per_m) t.mul_(mu);
  }

  // D_j = H Z_j + ∂g/∂m_j at (w_t, m), one column per metaparameter.
  std::vector<std::vector<torch::Tensor>> D(d);
  if (options_.product() == "exact") {
    assign_parameters(params, w_before);
    auto mg = m_value.clone().requires_grad_();
    auto loss = train_loss(mg);
    std::vector<torch::Tensor> inputs(params.begin(), params.end());
    inputs.push_back(mg);
    auto g = torch::autograd::grad({loss}, inputs, {}, /*retain_graph=*/true,
                                   /*create_graph=*/true, /*allow_unused=*/true);
    for (int64_t j = 0; j < d; ++j) {
      // s_j = ⟨∇_w L, Z_j⟩ + ∂L/∂m_j, whose gradient in w is D_j.
      auto s = torch::zeros({}, m_value.options());
      for (size_t i = 0; i < params.size(); ++i)
        if (g[i].defined()) s = s + (g[i] * z_[j][i]).sum();
      if (g.back().defined()) s = s + g.back()[j];
      D[j] = s.requires_grad() ? gradients_or_zeros(s, params, /*retain_graph=*/j + 1 < d)
                               : zeros_like_all(params);
    }
    if (normalized_by) normalize_tangents(params, g, normalized_by, D);
  } else {
    // The gradient at (w_t + εZ_j, m + εe_j).
    auto gradient_at = [&](int64_t j, double eps) {
      assign_parameters_axpy(params, w_before, eps, z_[j]);
      auto mj = m_value.clone();
      mj[j] += eps;
      return gradients_or_zeros(train_loss(mj), params);
    };
    for (int64_t j = 0; j < d; ++j) {
      double zn2 = 1.0;  // ‖(Z_j, e_j)‖²
      for (const auto& t : z_[j]) zn2 += t.pow(2).sum().item<double>();
      const double eps = options_.fd_scale() / std::sqrt(zn2);
      auto plus = gradient_at(j, eps);
      D[j].resize(params.size());
      if (options_.fd_scheme() == "central") {
        auto minus = gradient_at(j, -eps);
        for (size_t i = 0; i < params.size(); ++i) D[j][i] = (plus[i] - minus[i]) / (2 * eps);
      } else {
        for (size_t i = 0; i < params.size(); ++i) D[j][i] = (plus[i] - grads[i]) / eps;
      }
    }
  }
  assign_parameters(params, w_after);

  torch::NoGradGuard no_grad;
  if (reduce) {
    // D_j is linear in the loss, a batch mean: the whole batch's is the ranks' weighted mean (also
    // for the forward scheme, whose reference `grads` is already the whole batch's). One bucket.
    std::vector<torch::Tensor> all;
    for (const auto& per_m : D) all.insert(all.end(), per_m.begin(), per_m.end());
    reduce(all, count);
    size_t k = 0;
    for (auto& per_m : D)
      for (auto& t : per_m) t = all[k++];
  }
  // Weight decay: d = g + wd·w, so its tangent gains wd·Z.
  for (int64_t j = 0; j < d; ++j)
    for (size_t i = 0; i < params.size(); ++i)
      if (decays[i] != 0) D[j][i] = D[j][i] + decays[i] * z_[j][i];

  auto& group_options = optimizer.param_groups().at(0).options();
  if (kind == "adam") {
    auto& o = static_cast<torch::optim::AdamOptions&>(group_options);
    check(!o.amsgrad(), "online hypergradient: Adam with amsgrad is not supported");
    const double beta1 = std::get<0>(o.betas()), beta2 = std::get<1>(o.betas());
    for (size_t i = 0; i < params.size(); ++i) {
      const auto* st =
          static_cast<const torch::optim::AdamParamState*>(optimizer_param_state(optimizer, params[i]));
      check(st != nullptr, "online hypergradient: Adam has no state for a parameter after its step");
      // The state after the step holds m_t, v_t and t (torch::optim::Adam's formulas).
      auto dgrad = decays[i] != 0 ? grads[i] + decays[i] * w_before[i] : grads[i];
      const double bias1 = 1 - std::pow(beta1, st->step()), bias2 = 1 - std::pow(beta2, st->step());
      auto root_v = st->exp_avg_sq().sqrt();
      auto denom = root_v / std::sqrt(bias2) + o.eps();
      for (int64_t j = 0; j < d; ++j) {
        auto& M = state1_[j][i];
        auto& V = state2_[j][i];
        M.mul_(beta1).add_((1 - beta1) * D[j][i]);
        V.mul_(beta2).add_(2 * (1 - beta2) * dgrad * D[j][i]);
        // ∂denom = V / (2·√bias2·√v), zero where v = 0 (the limit of the formula).
        auto ddenom = torch::where(root_v > 0, V / (2 * std::sqrt(bias2) * root_v),
                                   torch::zeros_like(root_v));
        z_[j][i].sub_((lr / bias1) * (M / denom - st->exp_avg() * ddenom / (denom * denom)));
      }
    }
    clip(params);
    return;
  }
  auto& o = static_cast<torch::optim::SGDOptions&>(group_options);
  check(!o.nesterov() && o.dampening() == 0,
        "online hypergradient: SGD with nesterov or dampening is not supported");
  const bool momentum = kind == "momentum" && o.momentum() != 0;
  for (int64_t j = 0; j < d; ++j)
    for (size_t i = 0; i < params.size(); ++i) {
      if (momentum) {
        // b_{t+1} = ρ b_t + d_t (PyTorch's first buffer is d_1 = ρ·0 + d_1): B ← ρB + D.
        state1_[j][i].mul_(o.momentum()).add_(D[j][i]);
        z_[j][i].sub_(lr * state1_[j][i]);
      } else {
        z_[j][i].sub_(lr * D[j][i]);
      }
    }
  clip(params);
}

void OnlineHypergradient::normalize_tangents(const std::vector<torch::Tensor>& params,
                                             const std::vector<torch::Tensor>& g,
                                             const ValLossFn& normalized_by,
                                             std::vector<std::vector<torch::Tensor>>& D) const {
  // At w_t: ∇L (from the step's loss, `g`) and ∇c with its graph for H_c Z_j.
  auto c = torch::autograd::grad({normalized_by()}, params, {}, /*retain_graph=*/true,
                                 /*create_graph=*/true, /*allow_unused=*/true);
  // Inner products as tensors, read once each (no per-parameter synchronization in the step).
  auto dot = [&](const std::vector<torch::Tensor>& a, const std::vector<torch::Tensor>& b) {
    auto sum = torch::zeros({}, params.front().options());
    for (size_t i = 0; i < params.size(); ++i) sum = sum + (a[i] * b[i]).sum();
    return sum.item<double>();
  };
  std::vector<torch::Tensor> gv(params.size()), cv(params.size());
  for (size_t i = 0; i < params.size(); ++i) {
    gv[i] = g[i].defined() ? g[i].detach() : torch::zeros_like(params[i]);
    cv[i] = c[i].defined() ? c[i].detach() : torch::zeros_like(params[i]);
  }
  const double g2 = dot(gv, gv), c2 = dot(cv, cv);
  if (g2 == 0.0) return;  // the step was zero: nothing was rescaled
  const double gn = std::sqrt(g2), cn = std::sqrt(c2);
  for (size_t j = 0; j < D.size(); ++j) {
    // H_c Z_j = ∇_w ⟨∇c, Z_j⟩.
    auto s = torch::zeros({}, params.front().options());
    for (size_t i = 0; i < params.size(); ++i)
      if (c[i].defined()) s = s + (c[i] * z_[j][i]).sum();
    const auto hz = s.requires_grad()
                        ? gradients_or_zeros(s, params, /*retain_graph=*/j + 1 < D.size())
                        : zeros_like_all(params);
    // ⟨ĝ, D_j⟩ and ⟨ĉ, H_c Z_j⟩
    const double along_g = dot(gv, D[j]) / gn, along_c = cn > 0 ? dot(cv, hz) / cn : 0.0;
    for (size_t i = 0; i < params.size(); ++i)
      D[j][i] = (cn / gn) * (D[j][i] - gv[i] * (along_g / gn)) + gv[i] * (along_c / gn);
  }
}

HypergradientVector OnlineHypergradient::hypergradient(
    const std::vector<torch::Tensor>& params, const ValLossFn& val_loss,
    const std::vector<torch::nn::Module*>& modules, const BatchMeanReduce& reduce,
    int64_t count) const {
  BufferGuard buffers(modules);
  HypergradientVector h;
  auto lv = val_loss();
  h.val_loss = lv.item<double>();
  const int64_t d = static_cast<int64_t>(z_.size());
  auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  h.gradient = torch::zeros({d}, opts);
  if (d > 0) {
    auto v = gradients_or_zeros(lv, params);
    torch::NoGradGuard no_grad;
    for (int64_t j = 0; j < d; ++j) {
      double s = 0;
      for (size_t i = 0; i < params.size(); ++i) s += (z_[j][i] * v[i]).sum().item<double>();
      h.gradient[j] = s;
    }
  }
  if (reduce) {
    // g is linear in ∇L_val, a batch mean: the ranks' weighted mean, with L_val, in one bucket.
    std::vector<torch::Tensor> means{torch::cat({h.gradient, torch::full({1}, h.val_loss, opts)})};
    reduce(means, count);
    h.gradient = means[0].slice(0, 0, d).clone();
    h.val_loss = means[0][d].item<double>();
  }
  return h;
}

void OnlineHypergradient::save(torch::serialize::OutputArchive& archive) const {
  archive.write("count", torch::tensor({static_cast<int64_t>(z_.size()),
                                        static_cast<int64_t>(z_.empty() ? 0 : z_[0].size()),
                                        static_cast<int64_t>(state2_.size())}));
  auto write_set = [&](const std::string& name, const std::vector<std::vector<torch::Tensor>>& set) {
    for (size_t j = 0; j < set.size(); ++j)
      for (size_t i = 0; i < set[j].size(); ++i)
        archive.write(name + "." + std::to_string(j) + "." + std::to_string(i), set[j][i]);
  };
  write_set("z", z_);
  write_set("state1", state1_);
  write_set("state2", state2_);
}

void OnlineHypergradient::load(torch::serialize::InputArchive& archive) {
  reset();
  torch::Tensor count;
  if (!archive.try_read("count", count)) return;
  check(count.numel() == 3, "online hypergradient: corrupt tangent archive");
  const auto n_m = count[0].item<int64_t>(), n_p = count[1].item<int64_t>(),
             n_2 = count[2].item<int64_t>();
  auto read_set = [&](const std::string& name, int64_t sets,
                      std::vector<std::vector<torch::Tensor>>& set) {
    set.assign(sets, {});
    for (int64_t j = 0; j < sets; ++j)
      for (int64_t i = 0; i < n_p; ++i) {
        torch::Tensor t;
        archive.read(name + "." + std::to_string(j) + "." + std::to_string(i), t);
        set[j].push_back(t);
      }
  };
  read_set("z", n_m, z_);
  read_set("state1", n_m, state1_);
  read_set("state2", n_2, state2_);
}

}  // namespace metadistill
