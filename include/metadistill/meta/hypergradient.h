#pragma once
/// The greedy one-step hypergradient (paper eq. 3; DESIGN.md 3.1, 3.6):
///   h(λ) = d/dλ L_val(U(w, λ)) = −γ · ∇²_{λ,w} L_train(w, λ) · (P v),   v = ∇_{w'} L_val(w'),
/// with U the trainer's real optimizer step (SGD, SGD with momentum, Adam) at the current learning
/// rate γ, and P the diagonal Jacobian ∂U/∂g / (−γ) of that step with respect to the gradient
/// (identity for SGD and momentum; for Adam the exact per-coordinate derivative, second-moment
/// term included). L_val(w) = CE(g(x_val, w)/T_val, y_val) does not depend on λ, so the
/// first-order shortcut is exactly zero and is not offered.
///
/// Two ways to get the mixed second derivative:
/// - `exact`: s = ⟨∇_w L_train(w, λ), P v⟩ = ⟨∂ℓ/∂z, J P v⟩ and h = −γ ∇_λ s, with J P v from
///   one forward-mode (dual-number) pass of the network and the rest at the loss head; or, with
///   `exact_product: reverse`, the gradient taken with create_graph and differentiated again;
/// - `fd` (DARTS, the paper's): (∇_λ L_train(w + εu, λ) − ∇_λ L_train(w − εu, λ)) / 2ε with
///   u = P v and ε = fd_scale / ‖u‖; λ enters only the loss head, so each term is one forward pass
///   without a network backward.
/// No pass changes the model's parameters, buffers (BatchNorm running statistics) or the
/// optimizer's state: all are restored exactly.
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

/// Options of `greedy_hypergradient`.
struct HypergradientOptions {
  /// "exact" (automatic differentiation) or "fd" (finite differences).
  std::string mode = "fd";
  /// ε = fd_scale / ‖P v‖ for `fd`.
  double fd_scale = 0.01;
  /// Temperature of the validation loss (0.1 synthetic, 1.0 images in the paper).
  double val_temperature = 1.0;
  /// `fd` differences: "central" (forwards at w ± εu, error O(ε²)) or "forward" (one forward at
  /// w + εu against the step's own logits at w, error O(ε), one forward cheaper; `lagged` only).
  std::string fd_scheme = "central";
  /// How `exact` forms ⟨∇_w L_train, u⟩: "jvp" (one forward-mode pass gives J u, then the loss
  /// head; the default) or "reverse" (double backward through the network, for models whose ops
  /// lack forward-mode formulas).
  std::string exact_product = "jvp";
  /// Scale of the distillation term in L_train (losses/hinton.h); the trainer's `kd_scale`.
  KdScale kd_scale = KdScale::kNone;
  /// The trainer's `step_norm`: the virtual step is normalized like the real one, and h follows
  /// the normalization's dependence on λ (order `before` only).
  StepNorm step_norm = StepNorm::kNone;
  /// Data parallel (train/data_parallel.h): the batches are this rank's shards; the training
  /// gradient, the validation gradient v (before ε = fd_scale/‖Pv‖ is formed), L_val and the
  /// final λ-derivatives, each a batch mean, are reduced over the ranks. Empty = one process.
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

/// Result of one hypergradient evaluation.
struct Hypergradient {
  /// dL_val(U(w, λ))/dλ1 and dL_val(U(w, λ))/dT.
  double lambda1 = 0, temperature = 0;
  /// L_val(U(w, λ)) on the validation batch.
  double val_loss = 0;
  /// The finite-difference step used (0 for `exact`).
  double epsilon = 0;
};

/// The optimizer's step from the current state, without applying it: w' = w − step[i] for each
/// parameter, and the diagonal P[i] = −(1/γ) ∂w'/∂g. `grads` are ∇_w L_train (detached).
struct VirtualStep {
  std::vector<torch::Tensor> step;
  std::vector<torch::Tensor> preconditioner;  // empty = identity
};
VirtualStep virtual_step(const std::vector<torch::Tensor>& params,
                         const std::vector<torch::Tensor>& grads, torch::optim::Optimizer& optimizer,
                         const std::string& optimizer_kind, double lr);

/// L_val(w) = CE(g(x, w)/T_val, y) as a tensor (graph kept).
torch::Tensor validation_loss(ClassifierImpl& model, const Batch& val, double val_temperature);

/// Computes the greedy hypergradient at the model's current weights for the step the optimizer
/// would take on `train` (with `teacher_logits`) under `lambda`; see the header comment.
Hypergradient greedy_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& optimizer_kind, double lr,
                                   const Batch& train, const torch::Tensor& teacher_logits,
                                   const Batch& val, const Metaparameters& lambda,
                                   const HypergradientOptions& options);

/// The same hypergradient for a step that was already taken (the `lagged` order, DESIGN.md 3.6):
/// the model is at w' = U(w, λ) — the student step is the virtual step, so its forward and
/// backward are shared — `w_before` holds w, `grads` the step's ∇_w L_train(w, λ) and `logits`
/// the step's logits g(x, w). Costs one validation forward+backward and one or two forwards (fd).
/// Leaves the model at w' with its buffers unchanged.
Hypergradient lagged_hypergradient(ClassifierImpl& model, torch::optim::Optimizer& optimizer,
                                   const std::string& optimizer_kind, double lr,
                                   const std::vector<torch::Tensor>& w_before,
                                   const std::vector<torch::Tensor>& grads,
                                   const torch::Tensor& logits, const Batch& train,
                                   const torch::Tensor& teacher_logits, const Batch& val,
                                   const Metaparameters& lambda,
                                   const HypergradientOptions& options);

/// The diagonal P of the step just taken, from the optimizer's state after it (empty = identity).
std::vector<torch::Tensor> preconditioner_after_step(const std::vector<torch::Tensor>& w_before,
                                                     const std::vector<torch::Tensor>& grads,
                                                     const std::vector<torch::Tensor>& params,
                                                     torch::optim::Optimizer& optimizer,
                                                     const std::string& optimizer_kind);

/// Saves and restores a module's buffers (BatchNorm running statistics) around extra passes.
class BufferGuard {
 public:
  explicit BufferGuard(torch::nn::Module& module);
  ~BufferGuard();

 private:
  std::vector<torch::Tensor> buffers_, saved_;
};

}  // namespace metadistill
