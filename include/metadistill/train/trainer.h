#pragma once
/// The trainer: epochs of mini-batch steps with the Hinton loss under a metaparameter method,
/// step-decay learning rate, evaluation after every epoch, atomic checkpoints and resume.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"

namespace metadistill {

class DataParallel;

/// Options of `Trainer`.
struct TrainerOptions {
  /// Number of epochs (the synthetic data set: one full batch per epoch, so epochs = steps).
  int64_t epochs = 10;
  /// Mini-batch size; 0 = full batch.
  int64_t batch_size = 128;
  /// Initial learning rate γ (the paper: 1.0).
  double lr = 1.0;
  /// Step decay: lr ← lr · lr_gamma every lr_step epochs (the paper: ×0.5 every 10); 0 = constant.
  int64_t lr_step = 10;
  double lr_gamma = 0.5;
  /// Learning-rate schedule: "step" (the decay above) or "cosine" (lr · ½(1 + cos(π·e/epochs))
  /// at epoch e, from lr down towards 0; lr_step and lr_gamma are then unused).
  std::string lr_schedule = "step";
  /// Operator U: "sgd" (the paper), "momentum", "adam" or "lstm" (the learned optimizer of
  /// `optimizer_file`, meta/lstm_optimizer.h).
  std::string optimizer = "sgd";
  /// The learned optimizer's file (written by `metadistill train-optimizer`); "lstm" only.
  std::filesystem::path optimizer_file;
  /// Momentum for "momentum"; β1 for "adam".
  double momentum = 0.9;
  double weight_decay = 0.0;
  /// Seed of the model initialization and the batch order.
  uint64_t seed = 0;
  /// Device of the model and batches.
  torch::Device device = torch::kCPU;
  /// Evaluate every this many epochs (and always after the last); >= 1.
  int64_t eval_every = 1;
  /// Size of the validation batches the hyper-steps use (0 = batch_size). A smaller one makes a
  /// hyper-step cheaper (its validation forward+backward shrinks) at the price of a noisier
  /// hypergradient.
  int64_t val_batch_size = 0;
  /// Evaluation batch size.
  int64_t eval_batch_size = 1024;
  /// Folder for checkpoint.pt and metrics.csv / trajectory.csv; empty = nothing written.
  std::filesystem::path out_dir;
  /// Write a checkpoint every this many epochs (and after the last); 0 = only after the last.
  int64_t checkpoint_every = 1;
  /// Continue from out_dir/checkpoint.pt when it exists.
  bool resume = false;
  /// The settings that shape this run (util/settings_key.h; null = unkeyed). Every checkpoint
  /// stores them with their hash, and `resume` refuses a checkpoint stored with other settings,
  /// naming the keys that differ; a checkpoint stored before settings keys is resumed with a
  /// warning, assuming the current settings.
  nlohmann::json settings;
  /// Record the metaparameter trajectory every this many steps (1 = every step).
  int64_t trajectory_every = 1;
  /// Print one line per evaluated epoch.
  bool verbose = false;
  /// Training augmentation of image batches: "none", "crop-flip", "crop" or "flip" (teachers
  /// default to crop-flip for images, students to none).
  std::string augmentation = "none";
  /// Scale of the distillation term: "none" (the paper's L) or "t_squared" (×T², Hinton et al.
  /// 2015); see losses/hinton.h. The hypergradients follow it.
  std::string kd_scale = "none";
  /// Length of the student's step: "none" (the loss gradient) or "ce" (rescaled to the length of
  /// the cross-entropy gradient on the same batch: metaparameters then set only its direction;
  /// one extra backward per step). See meta/hypergradient.h StepNorm.
  std::string step_norm = "none";
  /// Wall-clock budget of the run in seconds (0 = none): training stops after the step that
  /// exhausts it, and that partial epoch is evaluated and checkpointed as the last (equal-budget
  /// comparisons). Not deterministic, unlike everything else here.
  double time_limit = 0.0;
  /// The data-parallel group this process is a rank of (train/data_parallel.h); null = one
  /// process. Each rank trains on its shard of every batch (`batch_size` stays the global
  /// batch), gradients and hypergradients are averaged over the ranks, and only rank 0 writes
  /// checkpoints and metrics. Not a setting of the run: it does not enter its settings key.
  std::shared_ptr<DataParallel> data_parallel;
  /// Also keep a copy of the checkpoint after these (1-based) epochs, as
  /// out_dir/checkpoint-epoch<E>.pt (forks for the long-horizon sign test, `fork_from`).
  std::vector<int64_t> keep_checkpoints;
  /// Start from this checkpoint's weights, optimizer state, step count and history, with the
  /// metaparameter method given to `fit` in its own initial state (a fork: same seed, same data
  /// order from the checkpoint's epoch on). Empty = no fork. `resume` wins when out_dir holds a
  /// checkpoint of its own.
  std::filesystem::path fork_from;
  /// Learning rate per (0-based) epoch, replacing the schedule where given (an epoch beyond the
  /// list keeps the schedule); e.g. a gradient run's effective learning rates, for the control
  /// that trains plain cross-entropy with them.
  std::vector<double> lr_by_epoch;

  TrainerOptions& with_epochs(int64_t v) { epochs = v; return *this; }
  TrainerOptions& with_batch_size(int64_t v) { batch_size = v; return *this; }
  TrainerOptions& with_lr(double v) { lr = v; return *this; }
  TrainerOptions& with_lr_step(int64_t step, double gamma) { lr_step = step; lr_gamma = gamma; return *this; }
  TrainerOptions& with_lr_schedule(std::string v) { lr_schedule = std::move(v); return *this; }
  TrainerOptions& with_optimizer(std::string v) { optimizer = std::move(v); return *this; }
  TrainerOptions& with_optimizer_file(std::filesystem::path v) { optimizer_file = std::move(v); return *this; }
  TrainerOptions& with_seed(uint64_t v) { seed = v; return *this; }
  TrainerOptions& with_device(torch::Device v) { device = v; return *this; }
  TrainerOptions& with_out_dir(std::filesystem::path v) { out_dir = std::move(v); return *this; }
  TrainerOptions& with_resume(bool v) { resume = v; return *this; }
  TrainerOptions& with_eval_every(int64_t v) { eval_every = v; return *this; }
  TrainerOptions& with_checkpoint_every(int64_t v) { checkpoint_every = v; return *this; }
  TrainerOptions& with_verbose(bool v) { verbose = v; return *this; }
  TrainerOptions& with_augmentation(std::string v) { augmentation = std::move(v); return *this; }
  TrainerOptions& with_kd_scale(std::string v) { kd_scale = std::move(v); return *this; }
  TrainerOptions& with_step_norm(std::string v) { step_norm = std::move(v); return *this; }
  TrainerOptions& with_time_limit(double seconds) { time_limit = seconds; return *this; }
  TrainerOptions& with_keep_checkpoints(std::vector<int64_t> v) { keep_checkpoints = std::move(v); return *this; }
  TrainerOptions& with_fork_from(std::filesystem::path v) { fork_from = std::move(v); return *this; }
  TrainerOptions& with_lr_by_epoch(std::vector<double> v) { lr_by_epoch = std::move(v); return *this; }
  TrainerOptions& with_val_batch_size(int64_t v) { val_batch_size = v; return *this; }

  /// Throws `Error` naming the option when a value is out of range.
  void validate() const;
};

/// What one `fit` trains on and is evaluated on.
struct FitData {
  /// Rows the model trains on are `train_set[train_ids]`; ids are also the teacher-cache keys.
  const DataSet* train_set = nullptr;
  torch::Tensor train_ids;
  /// Validation data for the meta-level (hyper-steps) and val accuracy; may be null.
  const DataSet* val_set = nullptr;
  /// Test data, evaluated after every epoch.
  const DataSet* test_set = nullptr;
  /// Teacher logits for every row of train_set [N, K] (looked up by id); undefined when the
  /// method never distills.
  torch::Tensor teacher_logits;
};

/// What every trainer logs of one evaluated epoch: one record, filled, stored and written by one
/// set of functions (train/loop.h `epoch_record`, `epoch_record_json`, `metrics_csv_row`). Each
/// trainer's epoch adds its metaparameters: `EpochMetrics` λ1 and T, the multi-layer
/// `MultiLayerEpoch` β (train/multilayer.h).
struct EpochRecord {
  int64_t epoch = 0;  // 1-based
  double lr = 0, train_loss = 0, val_accuracy = -1, val_loss = -1, test_accuracy = 0, seconds = 0;
  /// Test cross-entropy; expected calibration errors (15 bins) on D_val and D_test (-1: no data,
  /// or a result stored before they were logged).
  double test_loss = -1, val_ece = -1, test_ece = -1;
  /// η·‖∇_w L‖ / ‖∇_w CE‖ at the epoch's last step (L the loss the step took, CE its
  /// cross-entropy term alone on the same batch): the step length the metaparameters give,
  /// measured in cross-entropy steps. Equals η for plain cross-entropy. -1: not measured.
  double effective_lr = -1;
};

/// One evaluated epoch of the Hinton trainer.
struct EpochMetrics : EpochRecord {
  Metaparameters lambda;  // at the end of the epoch
};

/// Outcome of a run.
struct TrainResult {
  std::vector<EpochMetrics> history;
  std::vector<TrajectoryPoint> trajectory;
  double final_test_accuracy = 0, best_test_accuracy = 0;
  int64_t best_epoch = 0;
  double seconds = 0;
  int64_t steps = 0, hyper_steps = 0;
  bool resumed = false;
  /// True when `time_limit` ended the run before its last epoch.
  bool stopped_by_time_limit = false;
};

/// The settings record of the checkpoint at `path` ({"settings", "settings_key"}, see
/// util/settings_key.h; null when it was stored without). Throws `Error` naming the path when it
/// cannot be read.
nlohmann::json checkpoint_settings(const std::filesystem::path& path);

/// The learning rate of (0-based) `epoch` under the options' schedule.
double scheduled_lr(const TrainerOptions& options, int64_t epoch);

/// Accuracy, mean cross-entropy and expected calibration error (15 bins) of a model on a data set.
struct Evaluation {
  double accuracy = 0, loss = 0, ece = 0;
};

/// Expected calibration error (Guo et al., ICML 2017): samples binned by confidence
/// c = max softmax(z) into `bins` equal-width bins (lo, hi] of (0, 1];
/// ECE = Σ_b |B_b|/n · |accuracy(B_b) − mean c over B_b|. `logits` [N, K], `labels` [N].
double expected_calibration_error(const torch::Tensor& logits, const torch::Tensor& labels,
                                  int64_t bins = 15);

/// Evaluates `model` on `data` (eval mode, no grad); restores the model's train/eval mode.
Evaluation evaluate(ClassifierImpl& model, const DataSet& data, int64_t batch_size = 1024,
                    torch::Device device = torch::kCPU);

/// Data parallel: rank `rank` of `world_size` evaluates its contiguous part of `data` and the
/// counts, loss sums and calibration bins are summed over the ranks through `reduce`, so that
/// every rank returns the evaluation of the whole set (the accuracy exactly, the loss and ECE up
/// to summation order) at 1/world_size of the cost.
Evaluation evaluate_sharded(ClassifierImpl& model, const DataSet& data, int64_t batch_size,
                            torch::Device device, int rank, int world_size,
                            const BatchMeanReduce& reduce);

/// Accuracy of `model` on `data`, see `evaluate`.
double evaluate_accuracy(ClassifierImpl& model, const DataSet& data, int64_t batch_size = 1024,
                         torch::Device device = torch::kCPU);

/// Trains models; one instance per run.
class Trainer {
 public:
  explicit Trainer(TrainerOptions options);
  /// Trains `model` under `meta` on `data`. Throws `Error` when the loss becomes NaN/Inf, after
  /// which the last checkpoint (if any) is left untouched.
  TrainResult fit(ClassifierImpl& model, const FitData& data, MetaOptimizer& meta);
  const TrainerOptions& options() const { return options_; }

 private:
  TrainerOptions options_;
};

}  // namespace metadistill
