#pragma once
/// Multi-layer distillation ("multilayer-vid-distillation", DESIGN.md 3.4): the training loop for
///   L = β · CE(g(x), y) + (1 − β) · Σ_{i,j} λij · VID(t_i, s_j)
/// between teacher tap i and student tap j, with the pairs, λij and β chosen by a method:
/// - "none": CE only (β = 1); "hinton": the Hinton loss of losses/hinton.h (λ1, T fixed);
/// - "pairwise": teacher tap k ↔ student tap k, λ uniform;
/// - "all-pairs-fixed" / "all-pairs-random": every teacher tap with every student tap, λ uniform /
///   drawn at random (β from the options, or drawn with `random_beta`);
/// - "all-pairs-exact" / "all-pairs-fd": λij and β learned by the greedy hypergradient
///   (exact / finite differences) on a cycling validation batch, before each student step on
///   the same training batch;
/// - "all-pairs-online": λij and β learned by the long-horizon online hypergradient of
///   meta/online_hypergradient.h (tangents carried through every student step, decay
///   `online_mu`), a meta-step after every `hyper_every`-th student step;
/// - "all-pairs-proposed" / "all-pairs-online-proposed": the fd / online hyper-steps under the
///   paper's e1/e2 trajectory predictor (meta/trajectory.h) on the coordinates [a_1..a_P, β].
/// The weights are set by a `MetaOptimizer` over `vid_space(P)` (meta/meta_optimizer.h): the
/// fixed method for the uniform and random ones, the `gradient` and `proposed` methods of
/// meta/gradient_method.h and meta/trajectory.h — the ones that learn the Hinton [λ1, T] — for
/// the learned ones, given this loss head through `HyperStepContext::head`.
/// The VID regressors and variances (losses/vid.h) train with the student, in a second optimizer
/// group without weight decay unless asked for. The teacher runs per batch in eval mode without
/// gradients. The epochs, checkpoints and resume are those of every trainer (train/loop.h).
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/losses/vid.h"
#include "metadistill/models/classifier.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/trainer.h"

namespace metadistill {

/// What a multi-layer method is, declared once per method (one registration line each in
/// train/multilayer.cpp): its loss head, the pairs it distills between and how it sets the
/// metaparameters m = [λ_1..λ_P, β] of `vid_space` (meta/metaparameter_space.h).
struct MultiLayerMethod {
  std::string name;
  /// The loss head: CE alone (β = 1), the Hinton loss (β = λ1, T fixed), or β·CE + (1 − β)·VID.
  enum class Loss { kCrossEntropy, kHinton, kVid } loss = Loss::kVid;
  /// VID pairs: none, teacher tap k ↔ student tap k, or every teacher tap with every student tap.
  enum class Pairs { kNone, kMatched, kAll } pairs = Pairs::kNone;
  /// λ and β: uniform λ with the configured β, drawn at random, or learned by a hypergradient.
  enum class Weights { kUniform, kRandom, kLearned } weights = Weights::kUniform;
  /// Learned weights: "exact", "fd" (greedy, meta/hypergradient.h) or "online"
  /// (meta/online_hypergradient.h).
  std::string hypergradient;
  /// Learned weights: e1 hyper-steps, then e2 steps on the extrapolated lines, repeated
  /// (`TrajectoryPredictor`, meta/trajectory.h).
  bool extrapolated = false;

  bool uses_pairs() const { return pairs != Pairs::kNone; }
  bool learns() const { return weights == Weights::kLearned; }
};

/// The method `name`; throws `Error` listing the known names for an unknown one.
const MultiLayerMethod& multilayer_method(const std::string& name);
/// Method names `MultiLayerOptions::method` accepts, in the order of the paper's table.
std::vector<std::string> multilayer_method_names();

/// Options of `MultiLayerTrainer` beyond `TrainerOptions` (which give epochs, batches, lr
/// schedule, optimizer, weight decay, seed, evaluation, output folder, augmentation).
struct MultiLayerOptions {
  /// One of `multilayer_method_names()`.
  TORCH_ARG(std::string, method) = "hinton";
  /// Teacher and student taps to distill between (see each model's `tap_names()`); "pairwise"
  /// needs lists of equal length.
  TORCH_ARG(std::vector<std::string>, teacher_taps) = {};
  TORCH_ARG(std::vector<std::string>, student_taps) = {};
  /// β, the weight of CE (initial value for the learned methods), in [0, 1].
  TORCH_ARG(double, beta) = 0.5;
  /// "all-pairs-random": draw β ~ U(0, 1) as well (the paper draws both); else β = `beta`.
  TORCH_ARG(bool, random_beta) = false;
  /// "hinton": λ1 and T of the Hinton loss.
  TORCH_ARG(double, hinton_lambda1) = 0.5;
  TORCH_ARG(double, temperature) = 4.0;
  /// Learned methods: step size on the free pair parameters a (λ = softmax(a)).
  TORCH_ARG(double, meta_lr) = 1.0;
  /// Learned methods: step size on β; 0 keeps β at `beta` and learns λ alone.
  TORCH_ARG(double, beta_lr) = 1.0;
  /// Learned methods: β is kept in [beta_min, beta_max] (a floor keeps the greedy step, which
  /// favours the task loss over a one-step horizon, from switching distillation off).
  TORCH_ARG(double, beta_min) = 0.0;
  TORCH_ARG(double, beta_max) = 1.0;
  /// Learned methods: how a hyper-step moves [a, β] (meta/meta_step.h): "sgd" (m −= step · h),
  /// "adam" (steps of about `meta_lr` whatever the scale of h, which is tiny for a, about
  /// lr · (1 − β) · λij · ⟨∇VID, ∇L_val⟩) or "sign" (sign steps halved when the sign flips).
  TORCH_ARG(std::string, meta_optimizer) = "sgd";
  /// Learned methods: fd step scale, ε = fd_scale / ‖P v‖.
  TORCH_ARG(double, fd_scale) = 0.01;
  /// Learned methods: a hyper-step every this many student steps.
  TORCH_ARG(int64_t, hyper_every) = 1;
  /// "all-pairs-online": the decay μ ∈ [0, 1] of the carried tangents.
  TORCH_ARG(double, online_mu) = 0.99;
  /// The extrapolating methods: hyper-steps per window (≥ 2) and extrapolated steps (≥ 0).
  TORCH_ARG(int64_t, e1) = 10;
  TORCH_ARG(int64_t, e2) = 10;
  /// Temperature of the validation loss CE(g(x_val)/T_val, y_val).
  TORCH_ARG(double, val_temperature) = 1.0;
  /// VID terms: regressor hidden width (0 = teacher channels), initial σ², ε.
  TORCH_ARG(int64_t, vid_hidden) = 0;
  TORCH_ARG(double, vid_init_variance) = 5.0;
  TORCH_ARG(double, vid_eps) = 1e-5;
  /// Apply the trainer's weight decay to the VID parameters too (off: they are excluded).
  TORCH_ARG(bool, vid_weight_decay) = false;

 public:
  /// The declaration of `method` (throws `Error` for an unknown one).
  const MultiLayerMethod& declared() const { return multilayer_method(method()); }
  /// True for the methods that use VID pairs.
  bool uses_pairs() const { return declared().uses_pairs(); }
  /// True for the methods that learn λ and β.
  bool learns() const { return declared().learns(); }
  /// Throws `Error` naming the option for an unknown method or an out-of-range value.
  void validate() const;
  /// Every option as JSON (run fingerprints, reports).
  nlohmann::json to_json() const;
};

/// The pairs a method distills between: teacher_taps[k] ↔ student_taps[k] for "pairwise", every
/// combination (teacher-major order) for "all-pairs-*", none otherwise. Throws `Error` for empty or
/// unequal lists.
std::vector<TapPair> make_pairs(const MultiLayerOptions& options);

/// The data of one multi-layer run. The teacher sees `train_set->teacher_input()` rows.
struct MultiLayerData {
  const DataSet* train_set = nullptr;
  /// Rows trained on, ids into `train_set`.
  torch::Tensor train_ids;
  /// Validation data (hyper-steps, val accuracy); needed by the learned methods.
  const DataSet* val_set = nullptr;
  const DataSet* test_set = nullptr;
};

/// One evaluated epoch: the record every trainer logs (train/trainer.h `EpochRecord`) and β.
struct MultiLayerEpoch : EpochRecord {
  double beta = 1;
};

/// λ and β after one step (every step is logged).
struct PairWeightsPoint {
  int64_t step = 0;
  double beta = 1;
  std::vector<double> lambda;
  /// ‖h‖ of the hyper-step taken before this step (0 when none).
  double hypergradient_norm = 0;
  /// h = dL_val/d[a_1..a_P, β] of that hyper-step (empty when none; kept in memory, not stored).
  std::vector<double> hypergradient;
};

/// Outcome of `MultiLayerTrainer::fit`.
struct MultiLayerResult {
  std::string method;
  std::vector<TapPair> pairs;
  std::vector<MultiLayerEpoch> history;
  std::vector<PairWeightsPoint> trajectory;
  /// Final λ [P] and β.
  std::vector<double> lambda;
  double beta = 1;
  double final_test_accuracy = 0, best_test_accuracy = 0, seconds = 0;
  int64_t steps = 0, hyper_steps = 0;
  /// True when `TrainerOptions::time_limit` ended the run before its last epoch.
  bool stopped_by_time_limit = false;
};

/// A result as JSON and back (an experiment saves each run's and reuses it); `from_json` throws
/// `Error` for a malformed document.
nlohmann::json multilayer_result_to_json(const MultiLayerResult& r);
MultiLayerResult multilayer_result_from_json(const nlohmann::json& j);

/// Trains one student by multi-layer distillation; one instance per run.
class MultiLayerTrainer {
 public:
  /// Validates both option sets. Training runs in the one epoch loop of train/loop.h, so every
  /// `TrainerOptions` field applies as in `Trainer`: checkpoints (`checkpoint_every`, with the VID
  /// terms, λ, β, the meta-step's moments and the online tangents), `resume` (a killed run
  /// continues to the numbers of an uninterrupted one), `fork_from`, `time_limit` (counted across
  /// resumes; the run ends with an evaluated epoch) and `val_batch_size`.
  MultiLayerTrainer(MultiLayerOptions options, TrainerOptions trainer);

  /// Trains `student` from `teacher` on `data`. Checks the taps first (an `Error` lists the taps
  /// the model offers). When `trainer.out_dir` is set writes metrics.csv (per epoch),
  /// pair_weights.csv (λij and β per step), pairs.csv (final λij) and student.pt (student with
  /// its VID terms, see `save_multilayer_student`). Throws `Error` on a NaN/Inf loss.
  MultiLayerResult fit(ClassifierImpl& student, ClassifierImpl& teacher, const MultiLayerData& data);

  /// The VID terms of the last `fit` (null for "none" and "hinton").
  MultiVID vid() const { return vid_; }
  const MultiLayerOptions& options() const { return options_; }

 private:
  MultiLayerOptions options_;
  TrainerOptions trainer_;
  MultiVID vid_{nullptr};
};

/// Writes a student with its VID terms: the model as `save_model_file` writes it (so
/// `load_model_file` reads the student alone) plus the terms' pairs, shapes, options and
/// parameters, and `extra` (JSON, e.g. the final λ and β). Atomic.
void save_multilayer_student(const std::filesystem::path& path, const ClassifierImpl& student,
                             const ModelSpec& spec, const MultiVIDImpl* vid,
                             const nlohmann::json& extra = {});

/// What `load_multilayer_student` returns; `vid` is null when none was saved.
struct LoadedMultiLayerStudent {
  LoadedModel student;
  MultiVID vid{nullptr};
  nlohmann::json extra;
};

/// Reads a file of `save_multilayer_student`; throws `Error` naming the file when it is missing or
/// corrupt.
LoadedMultiLayerStudent load_multilayer_student(const std::filesystem::path& path);

}  // namespace metadistill
