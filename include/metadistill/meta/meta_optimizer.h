#pragma once
/// The strategy interface of the metaparameter methods (STYLE.md item 6): one class per method
/// (none, naive, fixed, random, gradient, proposed, ...), one registration line each.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "metadistill/data/loader.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/metaparameters.h"
#include "metadistill/models/classifier.h"

namespace metadistill {

/// What a method may look at before a student step: the model at its current weights w, the
/// optimizer that will take the step, the train batch of the step with its teacher logits, a
/// source of validation batches and the current (scheduled) learning rate.
struct HyperStepContext {
  ClassifierImpl* student = nullptr;
  torch::optim::Optimizer* optimizer = nullptr;
  /// "sgd", "momentum" or "adam": which operator U the trainer applies.
  std::string optimizer_kind = "sgd";
  const Batch* train = nullptr;
  torch::Tensor teacher_logits;  // [B, K] for `train`, or undefined when the method needs none
  std::function<Batch()> next_val;
  double lr = 0.0;
  int64_t step = 0;  // global step counter, from 0
  /// In `after_step` only: the student's logits of the step just taken, detached [B, K].
  torch::Tensor logits;
  /// Scale of the distillation term in the trainer's loss, which the hypergradient must follow.
  KdScale kd_scale = KdScale::kNone;
  /// The trainer's step normalization, which the hypergradient must follow.
  StepNorm step_norm = StepNorm::kNone;
  /// Data-parallel runs: `train` and the validation batches are this rank's shards, and every
  /// batch mean a hyper-step uses goes through `reduce` (data/loader.h) so that λ is the same on
  /// every rank. Empty for one process.
  BatchMeanReduce reduce;
};

/// One row of a metaparameter trajectory (written as CSV by the trainer).
struct TrajectoryPoint {
  int64_t step = 0;
  Metaparameters value;
  std::vector<double> hypergradient;  // empty when none was computed this step
  double r2_lambda1 = 0.0, r2_temperature = 0.0;  // fit quality, NaN when no fit applies
  std::string phase;                  // "fixed", "hyper", "predict", ...
};

/// A metaparameter method: decides λ for every student step.
class MetaOptimizer {
 public:
  virtual ~MetaOptimizer() = default;
  /// Registry name of the method.
  virtual std::string name() const = 0;
  /// λ for the coming student step; may first run a hyper-step on `ctx` (which must leave the
  /// model's parameters, buffers and optimizer state unchanged).
  virtual Metaparameters before_step(const HyperStepContext& ctx) = 0;
  /// Called after the optimizer's step with the same context (plus the step's logits); the
  /// `lagged` hyper-step order works here, reusing the student step as its virtual step.
  virtual void after_step(const HyperStepContext& ctx) {}
  /// λ in force now, without side effects.
  virtual Metaparameters current() const = 0;
  /// Whether the student step needs teacher logits.
  virtual bool uses_teacher() const { return !current().is_plain_ce(); }
  /// Whether the student trains on D_train ∪ D_val (the paper's `none`: no validation is needed).
  virtual bool trains_on_validation() const { return false; }
  /// The trajectory row of the last `before_step`.
  virtual TrajectoryPoint last_point() const = 0;
  /// State for checkpoints (resuming mid-run continues the same trajectory).
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json& state) {}
  /// Tensor state for checkpoints (the online hypergradient's tangents); a checkpoint without it
  /// leaves the method as constructed.
  virtual void save_tensors(torch::serialize::OutputArchive& archive) const {}
  virtual void load_tensors(torch::serialize::InputArchive& archive) {}
};

/// Settings of every method; each method reads what it needs.
struct MethodOptions {
  /// Method name, see `method_names()`.
  std::string method = "naive";
  /// λ for `fixed`; initial λ for the optimizing methods when `given_initial`.
  Metaparameters fixed{0.5, 1.0};
  bool given_initial = false;
  /// Seed of the method's own draws (random λ, initial λ).
  uint64_t seed = 0;
  /// Prior of T for random draws: "log-uniform" (log10 T ~ U(−1, 1), the paper's initial draw) or
  /// "uniform" (T ~ U(0.1, 10), the paper's text for the random baseline).
  std::string temperature_prior = "log-uniform";
  /// Method-specific settings (hypergradient, trajectory, ...) as JSON, validated by the method.
  nlohmann::json extra = nlohmann::json::object();
};

using MetaOptimizerFactory = std::function<std::unique_ptr<MetaOptimizer>(const MethodOptions&)>;

/// What a method does with a λ given by the user (`MethodOptions::fixed`, the CLI's `--lambda1`
/// and `--temperature`): nothing, train with it, or start from it.
enum class GivenLambda { kIgnored, kFixed, kInitial };

/// Registers a method under `name` with what it does with a given λ (called once per method by
/// `register_builtin_methods`, one line each).
void register_meta_optimizer(const std::string& name, MetaOptimizerFactory factory,
                             GivenLambda given = GivenLambda::kIgnored);
/// What method `name` does with a given λ; throws `Error` listing the known names for an
/// unknown one.
GivenLambda method_given_lambda(const std::string& name);
/// Builds the method `options.method`; throws `Error` listing the known names for an unknown one.
std::unique_ptr<MetaOptimizer> make_meta_optimizer(const MethodOptions& options);
/// Registered method names, sorted.
std::vector<std::string> method_names();

/// Draws λ1 ~ U(0, 1) and T from `prior` with a seeded generator.
Metaparameters draw_metaparameters(uint64_t seed, const std::string& temperature_prior);

/// A method whose λ stays fixed for the whole run (`none`, `naive`, `fixed`, `random`).
class FixedMetaOptimizer : public MetaOptimizer {
 public:
  FixedMetaOptimizer(std::string name, Metaparameters value, bool trains_on_validation = false);
  std::string name() const override { return name_; }
  Metaparameters before_step(const HyperStepContext& ctx) override;
  Metaparameters current() const override { return value_; }
  bool trains_on_validation() const override { return trains_on_validation_; }
  TrajectoryPoint last_point() const override;

 private:
  std::string name_;
  Metaparameters value_;
  bool trains_on_validation_;
  int64_t step_ = 0;
};

}  // namespace metadistill
