#pragma once
/// The strategy interface of the metaparameter methods (STYLE.md item 6): one class per method
/// (none, naive, fixed, random, gradient, proposed, ...), one registration line each.
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "metadistill/data/loader.h"
#include "metadistill/losses/hinton.h"
#include "metadistill/meta/hypergradient.h"
#include "metadistill/meta/metaparameter_space.h"
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
  /// A loss head other than the Hinton one (multi-layer VID, train/multilayer.h), for a method
  /// over that head's space (`MethodOptions::space`): L_train(w, m) on `train` at the current
  /// weights for m the method's *coordinates* (a tensor that may require grad; the head maps
  /// them to values itself, so autograd does the chain rule), the parameters the optimizer steps
  /// (the student's and the head's, e.g. the VID terms) and the modules whose buffers a
  /// hyper-step restores. Unset (`train_loss` empty): the Hinton head on `teacher_logits`.
  struct Head {
    TrainLossFn train_loss;
    std::vector<torch::Tensor> params;
    std::vector<torch::nn::Module*> modules;
  } head;
};

/// One row of a metaparameter trajectory (written as CSV by the trainer).
struct TrajectoryPoint {
  int64_t step = 0;
  Metaparameters value;
  /// The hypergradient of this step's hyper-step, empty when none was computed: d/d[λ1, T] for
  /// the Hinton head, d/d(coordinates) for another head's space.
  std::vector<double> hypergradient;
  double r2_lambda1 = 0.0, r2_temperature = 0.0;  // fit quality, NaN when no fit applies
  std::string phase;                  // "fixed", "hyper", "predict", ...
};

/// A metaparameter method: decides the metaparameters m of every student step, as values in
/// its `space()` — the Hinton [λ1, T] of `hinton_space()` unless it was built for another head
/// (`MethodOptions::space`, e.g. the VID [λ_1..λ_P, β] of `vid_space`).
class MetaOptimizer {
 public:
  virtual ~MetaOptimizer() = default;
  /// Registry name of the method.
  virtual std::string name() const = 0;
  /// Prepares m for the coming student step (`values()` afterwards); may first run a hyper-step
  /// on `ctx` (which must leave the model's parameters, buffers and optimizer state unchanged).
  virtual void before_step(const HyperStepContext& ctx) = 0;
  /// Called after the optimizer's step with the same context (plus the step's logits); the
  /// `lagged` hyper-step order works here, reusing the student step as its virtual step.
  virtual void after_step(const HyperStepContext& ctx) {}
  /// The domain of the values (default: `hinton_space()`).
  virtual const MetaSpace& space() const;
  /// m in force now [space().size()], without side effects.
  virtual std::vector<double> values() const = 0;
  /// The coordinates of m in force now (what a head given coordinates trains with; a method that
  /// steps coordinates returns its own, which a simplex group defines only up to a constant).
  virtual std::vector<double> coordinates() const { return space().to_coordinates(values()); }
  /// The Hinton view [λ1, T] of `values()`; throws `Error` for a method over another space.
  Metaparameters current() const;
  /// Whether the student step needs teacher logits (Hinton: unless λ1 = 1; other heads: yes).
  virtual bool uses_teacher() const;
  /// Whether the student trains on D_train ∪ D_val (the paper's `none`: no validation is needed).
  virtual bool trains_on_validation() const { return false; }
  /// The trajectory row of the last step (`value` is the Hinton view; other spaces leave it).
  virtual TrajectoryPoint last_point() const = 0;
  /// State for checkpoints (resuming mid-run continues the same trajectory).
  virtual nlohmann::json state() const { return nlohmann::json::object(); }
  virtual void load_state(const nlohmann::json& state) {}
  /// Tensor state for checkpoints (the online hypergradient's tangents); a checkpoint without it
  /// leaves the method as constructed.
  virtual void save_tensors(torch::serialize::OutputArchive& archive) const {}
  virtual void load_tensors(torch::serialize::InputArchive& archive) {}
};

/// True when `space` is the Hinton [λ1, T] (components lambda1, temperature).
bool is_hinton_space(const MetaSpace& space);

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
  /// Another head's space (its metaparameters in place of [λ1, T]) and the initial coordinates
  /// in it (a draw or the head's defaults; `fixed`, `given_initial` and the seed's draw of [λ1, T]
  /// do not apply). Unset: the Hinton head.
  std::optional<MetaSpace> space;
  std::vector<double> initial_coordinates;
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

/// A method whose m stays fixed for the whole run (`none`, `naive`, `fixed`, `random`; and the
/// uniform or drawn pair weights of multi-layer distillation).
class FixedMetaOptimizer : public MetaOptimizer {
 public:
  /// The Hinton [λ1, T] = `value` (validated).
  FixedMetaOptimizer(std::string name, Metaparameters value, bool trains_on_validation = false);
  /// m with `coordinates` in `space`.
  FixedMetaOptimizer(std::string name, MetaSpace space, std::vector<double> coordinates);
  std::string name() const override { return name_; }
  void before_step(const HyperStepContext& ctx) override { step_ = ctx.step; }
  const MetaSpace& space() const override { return space_; }
  std::vector<double> values() const override { return values_; }
  std::vector<double> coordinates() const override { return coordinates_; }
  bool trains_on_validation() const override { return trains_on_validation_; }
  TrajectoryPoint last_point() const override;

 private:
  std::string name_;
  MetaSpace space_;
  std::vector<double> coordinates_, values_;
  bool trains_on_validation_ = false;
  int64_t step_ = 0;
};

}  // namespace metadistill
