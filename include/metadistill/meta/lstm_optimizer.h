#pragma once
/// The learned optimization operator of Andrychowicz et al., "Learning to learn by gradient
/// descent by gradient descent" (NeurIPS 2016): a coordinatewise two-layer LSTM (20 hidden units
/// each) whose weights are shared by every coordinate of every parameter, with a hidden and cell
/// state per coordinate. For a coordinate with gradient d (weight decay included, d = g + wd·w):
///
///   x = pre(d) ∈ R²,   (y, s') = LSTM(x, s),   w' = w − γ · scale · y
///
/// with the paper's preprocessing (appendix A, p = 10)
///   pre(d) = (log|d| / p, sign d)   if |d| ≥ e^{−p},   (−1, e^p · d)   otherwise,
/// y = W_out h₂ + b_out the output of a linear layer on the second LSTM layer's hidden state, and
/// scale the paper's output scale (0.1). The paper's step is θ' = θ + scale·y; we write the step
/// as w' = w − γ·scale·y so that the trainer's learning rate γ (and its schedule: step decay,
/// cosine) multiplies the learned step. γ = 1 is the paper's operator; meta-training
/// (meta/lstm_meta_training.h) uses a fixed γ (1 by default), and a learned optimizer is meant to
/// be run with the γ it was trained with (the schedule then only shrinks it).
///
/// The step of a coordinate depends on that coordinate's gradient (and its own state) only, so
/// ∂w'/∂d is diagonal: P = −(1/γ) ∂w'/∂d = scale · ∂y/∂d, computed by autograd (the gradient of
/// Σ y with respect to the input gradient) — the preconditioner the greedy hypergradient needs
/// (meta/hypergradient.h: virtual_step, preconditioner_after_step).
///
/// What the hypergradients do with the LSTM's state: the greedy (one-step) hypergradient holds
/// the state fixed for the step, exactly as it holds Adam's moments fixed, and is then exact for
/// that step. The online (forward-mode, DESIGN.md 3.8) hypergradient would need the tangent of
/// the hidden and cell states (∂s/∂m, 2 layers × 2 × 20 copies of w per metaparameter); it is
/// not carried, and the online hypergradient refuses `lstm` with an error rather than return a
/// derivative that silently ignores the state.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

namespace metadistill {

/// Architecture of the learned optimizer (stored in its file with the weights).
struct LstmOptimizerNetOptions {
  /// Hidden units per LSTM layer (the paper: 20).
  int64_t hidden = 20;
  /// LSTM layers (the paper: 2).
  int64_t layers = 2;
  /// p of the gradient preprocessing (the paper: 10).
  double preprocess_p = 10.0;
  /// Output scale of the step (the paper: 0.1).
  double output_scale = 0.1;

  LstmOptimizerNetOptions& with_hidden(int64_t v) { hidden = v; return *this; }
  LstmOptimizerNetOptions& with_layers(int64_t v) { layers = v; return *this; }
  LstmOptimizerNetOptions& with_preprocess_p(double v) { preprocess_p = v; return *this; }
  LstmOptimizerNetOptions& with_output_scale(double v) { output_scale = v; return *this; }
  /// Throws `Error` naming the value when one is out of range.
  void validate() const;
};

namespace functional {

/// The preprocessing of Andrychowicz et al. 2016 (appendix A): d [N] -> [N, 2], see the header
/// comment. Differentiable in d (the sign has derivative 0; the small branch is linear).
torch::Tensor preprocess_gradient(const torch::Tensor& d, double p);

}  // namespace functional

/// The per-coordinate state of the LSTM: hidden and cell states of every layer.
struct LstmState {
  torch::Tensor h;  // [layers, N, hidden]
  torch::Tensor c;  // [layers, N, hidden]

  /// Zeros for `n` coordinates.
  static LstmState zeros(int64_t layers, int64_t n, int64_t hidden, torch::TensorOptions options);
  /// Detached copies (truncation of backpropagation through time).
  LstmState detached() const;
  bool defined() const { return h.defined(); }
};

/// The network: LSTM layers shared across coordinates and the linear output.
class LstmOptimizerNetImpl : public torch::nn::Cloneable<LstmOptimizerNetImpl> {
 public:
  explicit LstmOptimizerNetImpl(LstmOptimizerNetOptions options = {});
  void reset() override;

  /// One step for the coordinates d [N] (any shape, flattened) from `state`: the update direction
  /// scale·y (same shape as d; the step is w' = w − γ·direction) and the new state. The graph is
  /// kept to the weights, d and the state.
  std::pair<torch::Tensor, LstmState> forward(const torch::Tensor& d, const LstmState& state);

  /// Zero state for `n` coordinates in the dtype and device of the weights.
  LstmState initial_state(int64_t n) const;

  const LstmOptimizerNetOptions& options() const { return options_; }

 private:
  LstmOptimizerNetOptions options_;
  std::vector<torch::nn::LSTMCell> cells_;
  torch::nn::Linear out_{nullptr};
};
TORCH_MODULE(LstmOptimizerNet);

/// Writes the learned optimizer (architecture and weights) to `path` atomically.
void save_lstm_optimizer(const LstmOptimizerNetImpl& net, const std::filesystem::path& path);

/// Reads a file written by `save_lstm_optimizer`; throws `Error` naming the file when it is
/// missing, not a learned-optimizer file, or holds weights of the wrong shape.
LstmOptimizerNet load_lstm_optimizer(const std::filesystem::path& path);

/// Options of `LstmOptimizer` (per parameter group).
struct LstmOptimizerOptions
    : public torch::optim::OptimizerCloneableOptions<LstmOptimizerOptions> {
  explicit LstmOptimizerOptions(double lr = 1.0) : lr_(lr) {}
  /// γ: the step is γ · scale · y.
  TORCH_ARG(double, lr) = 1.0;
  /// Weight decay: the LSTM sees d = g + wd · w.
  TORCH_ARG(double, weight_decay) = 0.0;

 public:
  double get_lr() const override { return lr(); }
  void set_lr(const double v) override { lr(v); }
  void serialize(torch::serialize::InputArchive& archive) override;
  void serialize(torch::serialize::OutputArchive& archive) const override;
};

/// State of one parameter: the LSTM state of its coordinates now and before the last step (the
/// lagged hypergradient needs the step's Jacobian after the step), and the step count.
struct LstmParamState
    : public torch::optim::OptimizerCloneableParamState<LstmParamState> {
  TORCH_ARG(int64_t, step) = 0;
  TORCH_ARG(torch::Tensor, h);
  TORCH_ARG(torch::Tensor, c);
  TORCH_ARG(torch::Tensor, prev_h);
  TORCH_ARG(torch::Tensor, prev_c);
};

/// One step of the learned operator for one parameter, not applied.
struct LstmStep {
  torch::Tensor direction;       // scale·y, shape of the parameter: w' = w − γ·direction
  torch::Tensor preconditioner;  // P = ∂direction/∂d (diagonal), undefined unless asked for
};

/// The learned operator as a `torch::optim::Optimizer`: plugs into the trainer beside SGD,
/// momentum and Adam (`TrainerOptions::optimizer = "lstm"` with `optimizer_file`). The network's
/// weights are fixed (a copy of `net`, in the parameters' dtype); the state is per parameter.
/// `save`/`load` write and read the per-parameter states (not the weights: those come from the
/// optimizer file), so a checkpointed run resumes bit for bit.
class LstmOptimizer : public torch::optim::Optimizer {
 public:
  LstmOptimizer(std::vector<torch::optim::OptimizerParamGroup> groups, const LstmOptimizerNet& net,
                LstmOptimizerOptions defaults = LstmOptimizerOptions());
  LstmOptimizer(std::vector<torch::Tensor> params, const LstmOptimizerNet& net,
                LstmOptimizerOptions defaults = LstmOptimizerOptions());

  torch::Tensor step(LossClosure closure = nullptr) override;
  void save(torch::serialize::OutputArchive& archive) const override;
  void load(torch::serialize::InputArchive& archive) override;

  /// The step `step()` would take for `param` if its gradient (weight decay included) were `d`,
  /// from the current state, without changing anything; with `jacobian`, also P = ∂direction/∂d.
  LstmStep peek(const torch::Tensor& param, const torch::Tensor& d, bool jacobian) const;
  /// P of the step just taken for `param`, whose input was `d` (from the state before it).
  torch::Tensor last_step_preconditioner(const torch::Tensor& param, const torch::Tensor& d) const;

  const LstmOptimizerNetImpl& net() const { return *net_; }

 private:
  LstmStep compute(const torch::Tensor& d, const LstmState& state, bool jacobian,
                   LstmState* next) const;
  const LstmParamState* state_of(const torch::Tensor& param) const;
  mutable LstmOptimizerNet net_{nullptr};  // the weights never change; forward is not const
  torch::Dtype dtype_ = torch::kFloat32;
};

}  // namespace metadistill
