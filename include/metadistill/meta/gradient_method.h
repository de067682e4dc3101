#pragma once
/// The gradient metaparameter method `gradient`: a greedy hyper-step every k student steps
/// (paper eq. 3; the hypergradient itself is in hypergradient.h), or the long-horizon online
/// hypergradient (online_hypergradient.h). `proposed`, which extrapolates its trajectory, builds
/// on it in trajectory.h.
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/meta/meta_step.h"
#include "metadistill/meta/metaparameter_space.h"
#include "metadistill/meta/online_hypergradient.h"

namespace metadistill {

/// Settings of the gradient methods, read from `MethodOptions::extra` (config `method.settings`).
struct GradientMethodOptions {
  /// How the mixed derivative is computed: "fd" (the paper) or "exact".
  HypergradientOptions hypergradient;
  /// Learning rate γ_λ of the metaparameter SGD (paper: 0.1 Fashion-MNIST and CIFAR-10, 0.25
  /// reduced CIFAR-10), in (0, kMaxGamma].
  double gamma = 0.1;
  /// Largest γ_λ accepted: λ1 lives in [0, 1] and T in [0.1, 10], so a larger step only throws
  /// them from bound to bound.
  static constexpr double kMaxGamma = 100.0;
  /// Value clipping of the hypergradient; 0 = off. The authors clip at 0.01, which saturates and
  /// makes the update sign-SGD with step γ_λ·0.01 (`paper` presets turn it on).
  double clip = 0.0;
  /// A hyper-step every this many student steps.
  int64_t every = 1;
  /// "before": the hyper-step runs before the student step on the same batch and its λ is used
  /// by that step (the paper). "lagged": the student step itself is the virtual step (its forward
  /// and backward are shared), the same hypergradient is computed right after it, and the new λ
  /// takes effect from the next step — one step later, at about half the extra cost.
  std::string order = "before";
  /// "projected": raw λ1, T clamped to [0, 1] × [0.1, 10] after every change (the paper);
  /// "reparametrized": λ1 = sigmoid(a), T = 0.1 + softplus(b), steps on a, b.
  std::string domain = "projected";
  /// `hypergradient: online`: the long-horizon forward-mode hypergradient (RTHO with decay μ,
  /// online_hypergradient.h) in place of the greedy one-step one. Its tangents are carried
  /// through every student step; a meta-step uses them every `every` steps. Order `lagged` is
  /// implied (the hypergradient needs the step just taken).
  bool online = false;
  /// Online: μ (key `mu`), how H Z + ∂g/∂m is formed (key `product`: fd or exact), `fd_scheme`
  /// (forward or central) and `fd_scale`.
  OnlineHypergradientOptions online_options;
  /// Online: D_j = H Z_j + ∂g/∂m_j from the first `tangent_batch` examples of the step's batch
  /// (0 = the whole batch): an unbiased, noisier and cheaper Hessian term. Needs `product: exact`
  /// or `fd_scheme: central` (the one-sided difference reuses the whole batch's gradient).
  int64_t tangent_batch = 0;
  /// Online: forget the tangents when the learning rate drops (the dynamics they describe end).
  bool reset_on_lr_drop = true;
  /// The rule of the meta-step on the stepped coordinates (meta/meta_step.h) with step γ_λ:
  /// "sgd" (the paper), "adam" or "sign".
  std::string meta_step = "sgd";
  /// Proposed method: hyper-step window e1 and extrapolation length e2, in steps.
  int64_t e1 = 10, e2 = 10;
  /// Proposed method, beyond the paper: skip extrapolation when a fit's R² < r2_threshold, and
  /// cut it short where the line would leave the domain.
  bool guarded = false;
  double r2_threshold = 0.5;

  /// Reads the keys of `extra`; throws `Error` naming an unknown key or an invalid value.
  static GradientMethodOptions from_json(const nlohmann::json& extra);
  void validate() const;
};

/// `gradient`: λ ← λ − γ_λ · h(λ) before the student step, on the same train batch and a cycling
/// validation batch.
class GradientMetaOptimizer : public MetaOptimizer {
 public:
  GradientMetaOptimizer(const MethodOptions& method, GradientMethodOptions options);
  std::string name() const override { return "gradient"; }
  Metaparameters before_step(const HyperStepContext& ctx) override;
  void after_step(const HyperStepContext& ctx) override;
  Metaparameters current() const override { return value_; }
  bool uses_teacher() const override { return true; }
  TrajectoryPoint last_point() const override { return last_; }
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  void save_tensors(torch::serialize::OutputArchive& archive) const override;
  void load_tensors(torch::serialize::InputArchive& archive) override;
  const GradientMethodOptions& options() const { return options_; }

 protected:
  /// Runs one hyper-step on `ctx` and updates λ; records it in `last_`.
  void hyper_step(const HyperStepContext& ctx);
  /// The `lagged` order: remembers w before a hyper step (`before_step`) and computes the
  /// hypergradient after it (`after_step`); true when a hyper-step was completed.
  void remember_weights(const HyperStepContext& ctx);
  bool lagged_hyper_step(const HyperStepContext& ctx);
  /// Applies a hypergradient: chain rule into the stepped coordinates, clipping, SGD, domain.
  void apply(const Hypergradient& h, int64_t step);
  bool lagged() const { return options_.order == "lagged" || options_.online; }
  /// Online: remembers w_t (every step) and resets the tangents at a learning-rate drop.
  void online_before_step(const HyperStepContext& ctx);
  /// Online: carries the tangents through the step just taken (every step, whatever the phase).
  void carry_tangents(const HyperStepContext& ctx);
  /// Sets λ, projected onto the domain the coordinates reach.
  void set_value(const Metaparameters& m);
  /// The coordinates the method steps and fits in (`space_`): (λ1, T) or (a, b).
  std::pair<double, double> coordinates() const;
  Metaparameters from_coordinates(double c1, double c2) const;

  GradientMethodOptions options_;
  /// [λ1, T] with the domain option's stepping: projected, or λ1 = σ(a), T = 0.1 + softplus(b).
  MetaSpace space_;
  Metaparameters value_;
  TrajectoryPoint last_;
  std::vector<torch::Tensor> w_before_;  // lagged order: weights before the pending hyper step
  std::unique_ptr<OnlineHypergradient> online_;  // `hypergradient: online` only
  double last_lr_ = 0;                           // online: the previous step's learning rate
  MetaStepRule rule_;  // the meta-step on the two stepped coordinates
};

}  // namespace metadistill
