#pragma once
/// The student optimizer's step as a function of the gradient, without taking it: what every
/// hypergradient differentiates through (DESIGN.md 3.1, 3.6). For an optimizer `kind` of "sgd",
/// "momentum", "adam" or "lstm" (`TrainerOptions::optimizer`), the step from the current state is
/// w' = w − step(g), and its diagonal Jacobian with respect to g is −γ·P:
/// - SGD and momentum: P = I (empty `preconditioner`); momentum adds μ·b to the gradient;
/// - Adam: P = ∂(m̂/(√v̂ + ε))/∂g per coordinate, the second-moment term included;
/// - lstm (meta/lstm_optimizer.h): P = ∂direction/∂g of the learned operator.
/// Weight decay enters as g + wd·w with the decay of the parameter's own group; groups may differ
/// in weight decay only (the learning rate is the trainer's γ for all).
#include <string>
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// w' = w − step[i] for each parameter, and the diagonal P[i] = −(1/γ) ∂w'/∂g.
struct VirtualStep {
  std::vector<torch::Tensor> step;
  std::vector<torch::Tensor> preconditioner;  // empty = identity
};

/// The step the optimizer would take from its current state for the gradients `grads`
/// (∇_w L_train, detached) at learning rate `lr`; no state changes.
VirtualStep virtual_step(const std::vector<torch::Tensor>& params,
                         const std::vector<torch::Tensor>& grads, torch::optim::Optimizer& optimizer,
                         const std::string& kind, double lr);

/// The diagonal P of the step just taken from `w_before` with `grads`, read from the optimizer's
/// state after it (empty = identity).
std::vector<torch::Tensor> preconditioner_after_step(const std::vector<torch::Tensor>& w_before,
                                                     const std::vector<torch::Tensor>& grads,
                                                     const std::vector<torch::Tensor>& params,
                                                     torch::optim::Optimizer& optimizer,
                                                     const std::string& kind);

/// Applies U(w) for the gradient of `train_loss` to `params` (the optimizer's state does not
/// change): what brute-force checks of a hypergradient evaluate L_val at.
void apply_virtual_step(const std::vector<torch::Tensor>& params, torch::optim::Optimizer& optimizer,
                        const std::string& kind, double lr, const torch::Tensor& train_loss);

/// The weight decay of each of `params`, from the optimizer's group that holds it; throws `Error`
/// when a parameter is in no group or when the groups differ in other options than weight decay.
std::vector<double> parameter_weight_decays(const std::vector<torch::Tensor>& params,
                                            torch::optim::Optimizer& optimizer,
                                            const std::string& kind);

/// The optimizer's state of `p` (momentum buffer, Adam moments), or null before its first step.
const torch::optim::OptimizerParamState* optimizer_param_state(torch::optim::Optimizer& optimizer,
                                                               const torch::Tensor& p);

}  // namespace metadistill
