#pragma once
/// Meta-training of the learned optimizer (meta/lstm_optimizer.h) by truncated backpropagation
/// through unrolled optimization, as in Andrychowicz et al. 2016: the optimizee's parameters θ
/// follow θ_{t+1} = θ_t − γ · direction(∇f(θ_t), s_t); the meta-objective of a truncation of K
/// steps is L(φ) = Σ_{t=1..K} f(θ_t) (all weights 1, the paper's choice), minimized over the
/// LSTM's weights φ with Adam. A problem (episode) runs `horizon` steps in truncations of
/// `unroll`; θ and the LSTM state carry over between truncations, detached.
///
/// Two meta-gradients:
/// - first order (the paper's, default): ∂∇f(θ_t)/∂φ is dropped, i.e. the optimizee's gradients
///   are inputs. Then dL/dφ = Σ_t ⟨∇f(θ_t), dθ_t/dφ⟩ with dθ_t/dφ through the LSTM only, which
///   autograd gives as the gradient of the surrogate Σ_t ⟨stop(∇f(θ_t)), θ_t(φ)⟩: the graph holds
///   the LSTM, never the optimizee's network, so any model works (the distillation task);
/// - second order: f(θ_t) with its whole graph (the gradients taken with create_graph), the exact
///   gradient of L(φ); needs a task whose loss is a differentiable function of θ (quadratics).
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/data/loader.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/lstm_optimizer.h"
#include "metadistill/models/classifier.h"

namespace metadistill {

/// A family of problems the learned optimizer trains on (the "optimizee").
class OptimizeeTask {
 public:
  virtual ~OptimizeeTask() = default;
  /// Name and the settings that shape the task (for checkpoints' settings keys).
  virtual nlohmann::json settings() const = 0;
  /// Starts problem `index` (a deterministic function of the task's seed and `index`) and
  /// returns its initial parameters θ_0 (detached).
  virtual std::vector<torch::Tensor> start(uint64_t index) = 0;
  /// f(θ) at optimization step `step` of the current problem (a step may pick a mini-batch) with
  /// its graph to θ. Used by the second-order meta-gradient; tasks without a functional form
  /// throw `Error`.
  virtual torch::Tensor loss(const std::vector<torch::Tensor>& theta, int64_t step) = 0;
  /// f(θ) and ∇f(θ) at θ (detached values) for step `step`. Default: through `loss`.
  virtual std::pair<double, std::vector<torch::Tensor>> loss_and_gradient(
      const std::vector<torch::Tensor>& theta, int64_t step);
};

/// Options of `QuadraticTask`.
struct QuadraticTaskOptions {
  /// Dimension n of θ (the paper: 10).
  int64_t dim = 10;
  /// Functions per problem; f is their sum, so that each θ_b sees its own function's gradient
  /// whatever the batch (the paper trains on batches of functions).
  int64_t batch = 1;
  /// Seed of the family: problem i draws W, y and θ_0 from a generator seeded with (seed, i).
  uint64_t seed = 0;
  torch::Dtype dtype = torch::kFloat32;

  QuadraticTaskOptions& with_dim(int64_t v) { dim = v; return *this; }
  QuadraticTaskOptions& with_batch(int64_t v) { batch = v; return *this; }
  QuadraticTaskOptions& with_seed(uint64_t v) { seed = v; return *this; }
  QuadraticTaskOptions& with_dtype(torch::Dtype v) { dtype = v; return *this; }
};

/// The paper's first experiment: f(θ) = Σ_b ‖W_b θ_b − y_b‖² with W_b [n, n], y_b [n] and
/// θ_0 entries i.i.d. N(0, 1); θ is one tensor [batch, n].
class QuadraticTask : public OptimizeeTask {
 public:
  explicit QuadraticTask(QuadraticTaskOptions options);
  nlohmann::json settings() const override;
  std::vector<torch::Tensor> start(uint64_t index) override;
  torch::Tensor loss(const std::vector<torch::Tensor>& theta, int64_t step) override;
  const torch::Tensor& W() const { return W_; }  // [batch, n, n]
  const torch::Tensor& y() const { return y_; }  // [batch, n]

 private:
  QuadraticTaskOptions options_;
  torch::Tensor W_, y_;
};

/// Options of `DistillationTask`.
struct DistillationTaskOptions {
  int64_t batch_size = 128;
  double lambda1 = 0.5, temperature = 2.0;
  KdScale kd_scale = KdScale::kNone;
  /// Problem i initializes the student with seed (seed + i) and shuffles with it.
  uint64_t seed = 0;
  torch::Device device = torch::kCPU;
};

/// A student trained with the Hinton loss at fixed λ on the training split: f(θ) is the loss of
/// the step's mini-batch (the order of a seeded loader), ∇f by the model's backward. First-order
/// meta-gradients only (`loss` throws).
class DistillationTask : public OptimizeeTask {
 public:
  /// `pool[train_ids]` are the training rows, `teacher_logits` [N_pool, K] by id.
  DistillationTask(const DataSet& pool, torch::Tensor train_ids, torch::Tensor teacher_logits,
                   ModelSpec student, DistillationTaskOptions options, nlohmann::json data_settings);
  nlohmann::json settings() const override;
  std::vector<torch::Tensor> start(uint64_t index) override;
  torch::Tensor loss(const std::vector<torch::Tensor>& theta, int64_t step) override;
  std::pair<double, std::vector<torch::Tensor>> loss_and_gradient(
      const std::vector<torch::Tensor>& theta, int64_t step) override;
  /// The student whose parameters θ are (its trainable parameters, in order).
  ClassifierImpl& model() { return *model_; }

 private:
  const DataSet& pool_;
  torch::Tensor train_ids_, teacher_logits_;
  ModelSpec spec_;
  DistillationTaskOptions options_;
  nlohmann::json data_settings_;
  Classifier model_{nullptr};
  std::unique_ptr<BatchLoader> loader_;
  int64_t epoch_ = -1;
};

/// One truncation of `steps` steps from θ and the LSTM states (one per parameter tensor).
struct UnrollResult {
  /// Its gradient in the network's weights is the meta-gradient of Σ f(θ_t), t = 1..steps (the
  /// exact objective for second order, the first-order surrogate otherwise).
  torch::Tensor objective;
  /// Σ f(θ_t), t = 1..steps, and f(θ_steps).
  double loss_sum = 0, final_loss = 0;
  /// θ_steps and the states after the truncation (detached).
  std::vector<torch::Tensor> theta;
  std::vector<LstmState> state;
};

/// Runs one truncation; `first_step` numbers the steps for the task's mini-batches. `lr` is γ.
UnrollResult unroll(LstmOptimizerNetImpl& net, OptimizeeTask& task,
                    const std::vector<torch::Tensor>& theta, const std::vector<LstmState>& state,
                    int64_t first_step, int64_t steps, double lr, bool second_order);

/// Options of `train_lstm_optimizer`.
struct LstmMetaTrainingOptions {
  /// Steps per truncation (the paper: 20) and per problem (100–200).
  int64_t unroll = 20, horizon = 100;
  /// Problems (episodes) to train on.
  int64_t episodes = 100;
  /// Adam's learning rate on the LSTM's weights.
  double meta_lr = 1e-3;
  /// γ of the learned step during meta-training.
  double lr = 1.0;
  /// Clip the meta-gradient's norm at this value (0 = off).
  double clip = 0.0;
  bool second_order = false;
  /// Seed of the network's initialization.
  uint64_t seed = 0;
  LstmOptimizerNetOptions net;
  /// Checkpoint file (empty = none), written atomically every `checkpoint_every` episodes; an
  /// existing one with the same settings is resumed, one with other settings is refused naming
  /// the differences. `episodes` is not among them: a run may be extended (or, when the
  /// checkpoint holds more episodes than asked for, its network is returned as it is).
  std::filesystem::path checkpoint;
  int64_t checkpoint_every = 10;
  /// Called after each episode with (episode, mean f over the episode's steps).
  std::function<void(int64_t, double)> on_episode;

  /// Throws `Error` naming the value when one is out of range.
  void validate() const;
  /// The settings that shape the training (not the checkpoint's place or the callback).
  nlohmann::json to_json() const;
};

/// What `train_lstm_optimizer` did.
struct LstmMetaTrainingResult {
  LstmOptimizerNet net{nullptr};
  /// Mean f over each episode's steps, by episode (resumed episodes included).
  std::vector<double> episode_loss;
  /// Episodes taken from a checkpoint instead of trained now.
  int64_t resumed_episodes = 0;
};

/// Trains the learned optimizer on `task` (problems 0 .. episodes − 1).
LstmMetaTrainingResult train_lstm_optimizer(OptimizeeTask& task,
                                            const LstmMetaTrainingOptions& options);

/// Runs an optimizer for `steps` steps on problem `index` of `task` and returns f(θ) after each
/// step ([steps + 1] values, f(θ_0) first). `step` maps (θ, ∇f, step) to the update θ' − θ.
using UpdateRule = std::function<std::vector<torch::Tensor>(
    const std::vector<torch::Tensor>&, const std::vector<torch::Tensor>&, int64_t)>;
std::vector<double> run_optimizer(OptimizeeTask& task, uint64_t index, int64_t steps,
                                  const UpdateRule& rule);

/// The learned optimizer as an `UpdateRule` (fresh state; γ = lr).
UpdateRule lstm_rule(LstmOptimizerNetImpl& net, double lr);
/// Plain gradient descent with learning rate `lr`.
UpdateRule sgd_rule(double lr);

}  // namespace metadistill
