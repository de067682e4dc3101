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
  /// Data parallel: the first examples of each rank's shard.
  int64_t tangent_batch = 0;
  /// Online: forget the tangents when the learning rate drops (the dynamics they describe end).
  bool reset_on_lr_drop = true;
  /// The rule of the meta-step on the stepped coordinates (meta/meta_step.h) with step γ_λ:
  /// "sgd" (the paper), "adam" or "sign".
  std::string meta_step = "sgd";
  /// A step size per coordinate in place of γ_λ for each (≥ 0; 0 holds that coordinate), for a
  /// head whose coordinates differ in scale (multi-layer VID: `meta_lr` on the pair logits,
  /// `beta_lr` on β). Empty: γ_λ for every coordinate. Not a config key.
  std::vector<double> step_sizes;
  /// ε of the Adam meta-step's denominator.
  double meta_step_eps = 1e-8;
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

/// `gradient`: m ← m − γ_λ · h(m) before the student step, on the same train batch and a cycling
/// validation batch (or after it, in the lagged and online orders). m is the Hinton [λ1, T] (its
/// hypergradient taken with respect to the values and carried into the stepped coordinates by
/// the chain rule), or the coordinates of another head's space (`MethodOptions::space`,
/// `HyperStepContext::head`; the hypergradient is taken with respect to the coordinates).
class GradientMetaOptimizer : public MetaOptimizer {
 public:
  GradientMetaOptimizer(const MethodOptions& method, GradientMethodOptions options);
  std::string name() const override { return "gradient"; }
  void before_step(const HyperStepContext& ctx) override;
  void after_step(const HyperStepContext& ctx) override;
  const MetaSpace& space() const override { return space_; }
  std::vector<double> values() const override { return values_; }
  std::vector<double> coordinates() const override { return coordinates_; }
  bool uses_teacher() const override { return true; }
  TrajectoryPoint last_point() const override { return last_; }
  nlohmann::json state() const override;
  void load_state(const nlohmann::json& state) override;
  void save_tensors(torch::serialize::OutputArchive& archive) const override;
  void load_tensors(torch::serialize::InputArchive& archive) override;
  const GradientMethodOptions& options() const { return options_; }

 protected:
  /// Runs one hyper-step on `ctx` and updates m; records it in `last_`.
  void hyper_step(const HyperStepContext& ctx);
  /// The `lagged` order: remembers w before a hyper step (`before_step`) and computes the
  /// hypergradient after it (`after_step`); true when a hyper-step was completed.
  void remember_weights(const HyperStepContext& ctx);
  bool lagged_hyper_step(const HyperStepContext& ctx);
  /// Applies a hypergradient with respect to the values (`of_values`, the Hinton head: chain rule
  /// into the stepped coordinates) or to the coordinates: clipping, the meta-step, the domain.
  void apply(const std::vector<double>& gradient, bool of_values, int64_t step);
  /// The Hinton head's hypergradient [dλ1, dT].
  void apply(const Hypergradient& h, int64_t step) {
    apply({h.lambda1, h.temperature}, true, step);
  }
  bool lagged() const { return options_.order == "lagged" || options_.online; }
  /// Online: remembers w_t (every step) and resets the tangents at a learning-rate drop.
  void online_before_step(const HyperStepContext& ctx);
  /// Online: carries the tangents through the step just taken (every step, whatever the phase).
  void carry_tangents(const HyperStepContext& ctx);
  /// Moves to `coordinates` (values from them; the coordinates kept as `MetaSpace::settle`s).
  void set_coordinates(const std::vector<double>& coordinates);
  /// The trajectory row of step `step` in phase `phase`, without a hypergradient.
  void mark(int64_t step, const char* phase);
  /// Another head's step (`HyperStepContext::head`) with validation batch `val`, order `before`.
  HyperStep head_step(const HyperStepContext& ctx, const Batch& val, double val_temperature) const;
  /// The hypergradient of such a step with respect to the coordinates, applied.
  void apply_head_hypergradient(const HyperStep& step, const HyperStepContext& ctx,
                                const HypergradientOptions& options);
  /// The parameters the step trains: the head's, or the student's trainable ones.
  std::vector<torch::Tensor> trained_parameters(const HyperStepContext& ctx) const;
  /// m as the head takes it, in the dtype and on the device of `like`: [λ1, T] for the Hinton
  /// head, the coordinates for another.
  torch::Tensor m_tensor(const torch::Tensor& like) const;

  GradientMethodOptions options_;
  /// [λ1, T] with the domain option's stepping (projected, or λ1 = σ(a), T = 0.1 + softplus(b)),
  /// or the space of `MethodOptions::space`.
  MetaSpace space_;
  /// The Hinton head (no `MethodOptions::space`).
  bool hinton_ = true;
  /// The stepped coordinates and the values they give.
  std::vector<double> coordinates_, values_;
  TrajectoryPoint last_;
  std::vector<torch::Tensor> w_before_;  // lagged order: weights before the pending hyper step
  std::unique_ptr<OnlineHypergradient> online_;  // `hypergradient: online` only
  double last_lr_ = 0;                           // online: the previous step's learning rate
  MetaStepRule rule_;  // the meta-step on the stepped coordinates
};

}  // namespace metadistill
