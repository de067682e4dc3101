#pragma once
/// The greedy one-step hypergradient (paper eq. 3; DESIGN.md 3.1, 3.6), for any metaparameter
/// vector m that enters the training loss (the Hinton [λ1, T], the VID pair weights and β, ...):
///   h(m) = d/dm L_val(U(w, m)) = −γ · ∇²_{m,w} L_train(w, m) · (P v),   v = ∇_{w'} L_val(w'),
/// with U the trainer's real optimizer step at the current learning rate γ and P its diagonal
/// Jacobian with respect to the gradient (meta/virtual_step.h). L_val does not depend on m, so
/// the first-order shortcut is exactly zero and is not offered.
///
/// Two orders (DESIGN.md 3.6):
/// - `before`: at w, take ∇_w L_train(w, m), form the virtual step w' = U(w, m), v = ∇L_val(w');
/// - `lagged`: the step was already taken (the model is at w'), so its forward and backward are
///   shared: only v and the mixed product are computed.
/// Three ways to get the mixed product −γ ∇_m ⟨∇_w L_train(w, m), u⟩, u = P v:
/// - `fd` (DARTS, the paper's): (∇_m L_train(w + εu, m) − ∇_m L_train(w − εu, m)) / 2ε with
///   ε = fd_scale/‖u‖; the forwards run with the parameters frozen, so each backward runs through
///   the loss head only. `fd_scheme: forward` takes one side against ∇_m L_train(w, m) given by
///   the caller (the lagged step's own logits), error O(ε);
/// - `exact` by double backward: ⟨∇_w L_train, u⟩ with create_graph, differentiated in m;
/// - `exact` with a `jvp_product` (Hinton: one forward-mode pass of the network gives J u, the
///   rest is the loss head).
/// No pass changes the parameters, the buffers of the listed modules or the optimizer's state.
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/loader.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/metaparameters.h"
#include "metadistill/models/classifier.h"

namespace metadistill {

/// The length of the student's step. kNone: the loss gradient as it is. kCrossEntropy: the
/// gradient g = ∇_w L rescaled to the length of the cross-entropy gradient, g·‖∇_w CE‖/‖g‖, so
/// that no metaparameter can change the step length, only its direction (as Learning-to-Reweight
/// normalizes its weights).
enum class StepNorm { kNone, kCrossEntropy };

/// "none" or "ce"; throws `Error` naming the value otherwise.
StepNorm parse_step_norm(const std::string& name);

/// Options of the hypergradient.
struct HypergradientOptions {
  /// "exact" (automatic differentiation) or "fd" (finite differences).
  std::string mode = "fd";
  /// ε = fd_scale / ‖P v‖ for `fd`.
  double fd_scale = 0.01;
  /// Temperature of the validation loss (0.1 synthetic, 1.0 images in the paper); Hinton head.
  double val_temperature = 1.0;
  /// `fd` differences: "central" (forwards at w ± εu, error O(ε²)) or "forward" (one forward at
  /// w + εu against the step's own ∇_m L_train(w, m), error O(ε), one forward cheaper; `lagged`
  /// only).
  std::string fd_scheme = "central";
  /// How `exact` forms ⟨∇_w L_train, u⟩: "jvp" (forward mode, where the head offers it; the
  /// default) or "reverse" (double backward, for models whose ops lack forward-mode formulas).
  std::string exact_product = "jvp";
  /// Scale of the distillation term in L_train (losses/hinton.h); Hinton head.
  KdScale kd_scale = KdScale::kNone;
  /// The trainer's `step_norm`: the virtual step is normalized like the real one, and h follows
  /// the normalization's dependence on m (order `before` only).
  StepNorm step_norm = StepNorm::kNone;
  /// Data parallel (train/data_parallel.h): the batches are this rank's shards; the training
  /// gradient, the validation gradient v (before ε = fd_scale/‖Pv‖ is formed), L_val and the
  /// final m-derivatives, each a batch mean, are reduced over the ranks. Empty = one process.
  BatchMeanReduce reduce;

  HypergradientOptions& with_kd_scale(KdScale v) { kd_scale = v; return *this; }
  HypergradientOptions& with_step_norm(StepNorm v) { step_norm = v; return *this; }
  HypergradientOptions& with_mode(std::string v) { mode = std::move(v); return *this; }
  HypergradientOptions& with_fd_scale(double v) { fd_scale = v; return *this; }
  HypergradientOptions& with_val_temperature(double v) { val_temperature = v; return *this; }
  HypergradientOptions& with_fd_scheme(std::string v) { fd_scheme = std::move(v); return *this; }
  HypergradientOptions& with_exact_product(std::string v) { exact_product = std::move(v); return *this; }
  /// Throws `Error` naming the value for an unknown mode or a non-positive scale/temperature.
  void validate() const;
};

/// L_train(w, m) at the current weights for the metaparameters `m` (which may require grad).
using TrainLossFn = std::function<torch::Tensor(const torch::Tensor& m)>;
/// A loss at the current weights that does not depend on m (L_val; CE for `step_norm`).
using ValLossFn = std::function<torch::Tensor()>;
/// ∇_m ⟨∇_w L_train(w, m), u⟩ at the current weights, by a route cheaper than double backward.
using MixedProductFn =
    std::function<torch::Tensor(const std::vector<torch::Tensor>& u, const torch::Tensor& m)>;

/// One training step, as the hypergradient sees it.
struct HyperStep {
  /// The trainable parameters the optimizer steps (student and loss-head modules such as
  /// `MultiVID`); every one must be in one of the optimizer's groups.
  std::vector<torch::Tensor> params;
  TrainLossFn train_loss;
  ValLossFn val_loss;
  /// Modules whose buffers (BatchNorm running statistics) are restored after the extra passes.
  std::vector<torch::nn::Module*> modules;
  /// Order `lagged`: the step was taken from `w_before` with the gradients `grads`, and the
  /// parameters are at w'. Empty = order `before`.
  std::vector<torch::Tensor> w_before, grads;
  /// ∇_m L_train(w, m) at w, for `fd_scheme: forward` (lagged).
  torch::Tensor base_gradient;
  /// Used by `exact` with `exact_product: jvp` when given; otherwise `exact` is double backward.
  MixedProductFn jvp_product;
  /// CE at the current weights, for `step_norm: ce`.
  ValLossFn reference_loss;
  /// Examples in this rank's training and validation batches (data parallel weights).
  int64_t train_count = 0, val_count = 0;
};

/// Result of `hypergradient`.
struct HypergradientVector {
  /// dL_val(U(w, m))/dm, of m's shape and dtype.
  torch::Tensor gradient;
  /// L_val(U(w, m)) on the validation batch.
  double val_loss = 0;
  /// The finite-difference step used (0 for `exact`, or when ‖P v‖ = 0).
  double epsilon = 0;
};

/// h(m) for the step `step`; `kind` is "sgd", "momentum", "adam" or "lstm" as in
/// `TrainerOptions::optimizer`. `train_loss` and `val_loss` must be deterministic.
HypergradientVector hypergradient(const HyperStep& step, torch::optim::Optimizer& optimizer,
                                  const std::string& kind, double lr, const torch::Tensor& m,
                                  const HypergradientOptions& options);

// ---- The Hinton head: m = [λ1, T], L_train = hinton_loss(g(x, w), teacher, y; λ1, T) --------

/// Result of one Hinton hypergradient evaluation.
struct Hypergradient {
  /// dL_val(U(w, λ))/dλ1 and dL_val(U(w, λ))/dT.
  double lambda1 = 0, temperature = 0;
  /// L_val(U(w, λ)) on the validation batch.
  double val_loss = 0;
  /// The finite-difference step used (0 for `exact`).
  double epsilon = 0;
};

/// L_val(w) = CE(g(x, w)/T_val, y) as a tensor (graph kept).
torch::Tensor validation_loss(ClassifierImpl& model, const Batch& val, double val_temperature);

/// The hypergradient of [λ1, T] at the model's current weights for the step the optimizer would
/// take on `train` (with `teacher_logits`) under `lambda` (order `before`).
Hypergradient greedy_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& optimizer_kind, double lr,
                                   const Batch& train, const torch::Tensor& teacher_logits,
                                   const Batch& val, const Metaparameters& lambda,
                                   const HypergradientOptions& options);

/// The same for a step that was already taken (order `lagged`): the model is at w' = U(w, λ),
/// `w_before` holds w, `grads` the step's ∇_w L_train(w, λ) and `logits` the step's logits
/// g(x, w). Costs one validation forward+backward and one or two forwards (fd). Leaves the model
/// at w' with its buffers unchanged.
Hypergradient lagged_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& optimizer_kind, double lr,
                                   const std::vector<torch::Tensor>& w_before,
                                   const std::vector<torch::Tensor>& grads,
                                   const torch::Tensor& logits, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options);

}  // namespace metadistill
