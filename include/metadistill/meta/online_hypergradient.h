#pragma once
/// The long-horizon hypergradient in forward mode (DESIGN.md 3.8): RTHO of Franceschi, Donini,
/// Frasconi, Pontil, "Forward and Reverse Gradient-Based Hyperparameter Optimization" (ICML 2017),
/// with the decay μ of Donini et al., "MARTHE" (2020).
///
/// For metaparameters m ∈ R^d the tangents Z_t = ∂w_t/∂m (and those of the optimizer's state: the
/// momentum buffer, Adam's moments) are carried through every real optimizer step
///   s_{t+1} = Φ(s_t, m),   Z_{t+1} = μ · (∂Φ/∂s) Z_t + ∂Φ/∂m,
/// which needs, per metaparameter j, the directional derivative of the gradient map
///   D_j = H_t Z_j + ∂(∇_w L_train)/∂m_j = ∇_w [⟨∇_w L_train, Z_j⟩ + ∂L_train/∂m_j]
/// (a Hessian-vector product and the mixed derivative in one). The hypergradient at any step is
///   g_j = ⟨Z_j, ∇_w L_val(w_t)⟩.
/// μ = 1 is the exact derivative of L_val(w_t) for a constant m (RTHO); μ = 0 forgets all but the
/// last step and equals the greedy one-step hypergradient in its `lagged` order; 0 < μ < 1 weighs
/// step t−k by μ^k (MARTHE).
///
/// D_j is formed by `exact` double backward, or by finite differences of the gradient along the
/// direction (Z_j, e_j) of (w, m): `forward` (one extra forward+backward per metaparameter, error
/// O(ε)) or `central` (two, error O(ε²)), with ε = fd_scale / ‖(Z_j, e_j)‖.
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/meta/hypergradient.h"

namespace metadistill {

/// Options of `OnlineHypergradient`.
struct OnlineHypergradientOptions {
  /// μ ∈ [0, 1]: the weight of the tangent carried from the step before.
  TORCH_ARG(double, mu) = 0.99;
  /// How D_j = H Z_j + ∂g/∂m_j is formed: "exact" (double backward) or "fd" (finite differences
  /// of gradients). fd is unstable on ReLU networks: a difference of gradients across ReLU kinks
  /// carries an error of the order of ‖Z‖ itself, which the recurrence amplifies (measured on the
  /// Fashion-MNIST CNN: Z overflowed after 34–38 steps with either scheme, exact stayed finite).
  TORCH_ARG(std::string, product) = "exact";
  /// `fd`: "forward" (gradient at (w + εZ_j, m + εe_j) against the step's own) or "central".
  TORCH_ARG(std::string, fd_scheme) = "forward";
  /// ε = fd_scale / ‖(Z_j, e_j)‖.
  TORCH_ARG(double, fd_scale) = 1e-3;
  /// When > 0, each tangent is rescaled (with its optimizer-state tangents) so that
  /// ‖Z_j‖ ≤ tangent_clip · ‖w‖ after every step. Training at a large learning rate runs at the
  /// edge of stability, where ‖I − ηH‖ > 1 and the exact recurrence grows without bound
  /// (Fashion-MNIST CNN at lr 1.0: overflow after ~300 steps); the clip keeps the direction of
  /// the carried tangent and bounds its length, a biased but finite long-horizon signal.
  TORCH_ARG(double, tangent_clip) = 0.0;

 public:
  /// Throws `Error` naming the value for μ outside [0, 1], an unknown product or scheme, or a
  /// non-positive scale.
  void validate() const;
};

/// The tangents of one training run; `carry` after every optimizer step, `hypergradient` when a
/// meta-step is due.
class OnlineHypergradient {
 public:
  explicit OnlineHypergradient(OnlineHypergradientOptions options = {});

  /// Carries the tangents through the optimizer step just taken: `params` hold w_{t+1} and the
  /// optimizer its state after the step; `w_before` holds w_t and `grads` the step's
  /// ∇_w L_train(w_t, m) (without weight decay, which is read from the optimizer's groups).
  /// `train_loss(m)` evaluates L_train on the step's batch at the current `params` (it is called
  /// at w_t and nearby points). `kind` is "sgd", "momentum" or "adam"; `lr` the step's learning
  /// rate. The buffers of `modules` (BatchNorm running statistics) are left unchanged, and
  /// `params` are left at w_{t+1}. Data parallel: `train_loss` is this rank's shard of `count`
  /// examples and `grads` the whole batch's; the directional derivatives D_j, batch means, are
  /// averaged over the ranks by `reduce`, so that every rank carries the same tangents.
  ///
  /// `normalized_by` (step_norm ce): the step took d = ‖∇c‖·∇L/‖∇L‖ instead of ∇L, c being this
  /// loss (the cross-entropy on the step's batch, evaluated at the current `params`); `grads` then
  /// hold d. The tangent of d along (Z_j, e_j) is
  ///   (‖∇c‖/‖∇L‖)·(I − ĝĝᵀ)·D_j + ĝ·⟨ĉ, H_c Z_j⟩,   ĝ = ∇L/‖∇L‖, ĉ = ∇c/‖∇c‖,
  /// with one more Hessian-vector product per metaparameter. Needs `product` exact; not with
  /// `reduce`.
  void carry(const std::vector<torch::Tensor>& params, const std::vector<torch::Tensor>& w_before,
             const std::vector<torch::Tensor>& grads, torch::optim::Optimizer& optimizer,
             const std::string& kind, double lr, const TrainLossFn& train_loss,
             const torch::Tensor& m, const std::vector<torch::nn::Module*>& modules,
             const BatchMeanReduce& reduce = {}, int64_t count = 0,
             const ValLossFn& normalized_by = {});

  /// g = Zᵀ ∇_w L_val at the current `params`; `gradient` has the shape of m (zeros before the
  /// first `carry`). Leaves parameters and the buffers of `modules` unchanged. Data parallel:
  /// `val_loss` is this rank's shard of `count` examples; g and L_val are averaged by `reduce`.
  HypergradientVector hypergradient(const std::vector<torch::Tensor>& params,
                                     const ValLossFn& val_loss,
                                     const std::vector<torch::nn::Module*>& modules,
                                     const BatchMeanReduce& reduce = {}, int64_t count = 0) const;

  /// Forgets the tangents (Z = 0), for example at a learning-rate drop.
  void reset();
  /// Whether no tangent is held (before the first `carry` or after `reset`).
  bool empty() const { return z_.empty(); }
  /// How many times a tangent was rescaled by `tangent_clip` (since construction).
  int64_t clipped() const { return clipped_; }
  const OnlineHypergradientOptions& options() const { return options_; }

  /// The tangents, for checkpoints: resuming continues with the same Z.
  void save(torch::serialize::OutputArchive& archive) const;
  void load(torch::serialize::InputArchive& archive);

 private:
  OnlineHypergradientOptions options_;
  // Indexed [metaparameter][parameter]: Z = ∂w/∂m; `state1_` the momentum buffer's or Adam's
  // first moment's tangent, `state2_` Adam's second moment's.
  std::vector<std::vector<torch::Tensor>> z_, state1_, state2_;
  int64_t clipped_ = 0;
  /// Applies `tangent_clip` after a step (`params` at w_{t+1}).
  void clip(const std::vector<torch::Tensor>& params);
  /// Turns the columns D_j of the gradient's tangent into those of the normalized step (see
  /// `carry`); `g` is ∇L at w_t with its graph, `params` at w_t.
  void normalize_tangents(const std::vector<torch::Tensor>& params,
                          const std::vector<torch::Tensor>& g, const ValLossFn& normalized_by,
                          std::vector<std::vector<torch::Tensor>>& D) const;
};

}  // namespace metadistill
