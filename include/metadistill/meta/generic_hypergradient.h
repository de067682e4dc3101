#pragma once
/// The greedy one-step hypergradient of DESIGN.md 3.1 for any metaparameter tensor m that enters
/// the training loss only through its head (the VID pair weights λij and β of 3.4, for example):
///   h(m) = d/dm L_val(U(w, m)) = −γ · ∇²_{m,w} L_train(w, m) · (P v),  v = ∇_{w'} L_val(w'),
/// with U the optimizer's real step (SGD, momentum, Adam; `virtual_step` of hypergradient.h) and
/// P its diagonal preconditioner. The Hinton-specific `greedy_hypergradient` is the special case
/// m = [λ1, T]. Two ways to get the mixed product:
/// - `exact`: s = ⟨∇_w L_train(w, m), P v⟩ with create_graph, h = −γ ∇_m s (double backward);
/// - `fd`: (∇_m L_train(w + εu, m) − ∇_m L_train(w − εu, m)) / 2ε, u = P v, ε = fd_scale/‖u‖;
///   the two forwards run with the parameters frozen (requires_grad off), so the backward to m
///   only runs through the loss head.
/// Parameters, the buffers of the listed modules and the optimizer's state are left exactly as
/// they were.
#include <functional>
#include <string>
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// Options of `generic_hypergradient`.
struct GenericHypergradientOptions {
  /// "exact" (double backward) or "fd" (central finite differences).
  TORCH_ARG(std::string, mode) = "fd";
  /// ε = fd_scale / ‖P v‖ for `fd`.
  TORCH_ARG(double, fd_scale) = 0.01;

 public:
  /// Throws `Error` naming the value for an unknown mode or a non-positive scale.
  void validate() const;
};

/// Result of `generic_hypergradient`.
struct GenericHypergradient {
  /// d L_val(U(w, m)) / dm, same shape as m.
  torch::Tensor gradient;
  /// L_val(U(w, m)).
  double val_loss = 0;
  /// The finite-difference step used (0 for `exact`, or when ‖P v‖ = 0).
  double epsilon = 0;
};

/// L_train(w, m) at the current weights for the metaparameters `m` (which may require grad).
using TrainLossFn = std::function<torch::Tensor(const torch::Tensor& m)>;
/// L_val(w) at the current weights (no metaparameter).
using ValLossFn = std::function<torch::Tensor()>;

/// Computes h(m) at the current weights. `params` are the trainable parameters the optimizer
/// steps (student and loss-head modules such as `MultiVID`; every one must belong to one of the
/// optimizer's parameter groups, whose weight decays may differ; the other group options — lr
/// aside, which is `lr` for all — must be equal). `kind` is "sgd", "momentum" or "adam" as in
/// `TrainerOptions::optimizer`. The buffers of `modules` (BatchNorm running statistics) are saved
/// and restored around the extra passes. `train_loss` and `val_loss` must be deterministic.
GenericHypergradient generic_hypergradient(const std::vector<torch::Tensor>& params,
                                           torch::optim::Optimizer& optimizer,
                                           const std::string& kind, double lr,
                                           const TrainLossFn& train_loss,
                                           const ValLossFn& val_loss, const torch::Tensor& m,
                                           const std::vector<torch::nn::Module*>& modules,
                                           const GenericHypergradientOptions& options = {});

/// The step U(w, m) the optimizer would take, applied to `params` (no state change in the
/// optimizer): what brute-force checks of `generic_hypergradient` evaluate L_val at. Honors
/// per-group weight decay like `generic_hypergradient`.
void apply_virtual_step(const std::vector<torch::Tensor>& params, torch::optim::Optimizer& optimizer,
                        const std::string& kind, double lr, const torch::Tensor& train_loss);

/// The weight decay of each of `params`, from the optimizer's group that holds it; throws `Error`
/// when a parameter is in no group or when the groups differ in other options than weight decay
/// (and the learning rate, which the trainer sets for all).
std::vector<double> parameter_weight_decays(const std::vector<torch::Tensor>& params,
                                            torch::optim::Optimizer& optimizer,
                                            const std::string& kind);

}  // namespace metadistill
