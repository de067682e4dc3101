#pragma once
/// The one epoch loop of every trainer (DESIGN.md 2, train/): learning-rate schedule, shuffled
/// mini-batches, augmentation, the cycle of validation batches, the time limit, evaluation on
/// D_val and D_test, checkpoints (cadence, kept copies, resume, forks) and the NaN guard. What a
/// step trains — the loss head and the metaparameter method — is a `LoopBody`: the Hinton
/// trainer (`Trainer`) and multi-layer distillation (`MultiLayerTrainer`) are two bodies of this
/// loop, so both resume, honour `time_limit` and cycle validation batches the same way.
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "metadistill/data/dataset.h"
#include "metadistill/data/loader.h"
#include "metadistill/meta/meta_optimizer.h"
#include "metadistill/models/classifier.h"
#include "metadistill/train/trainer.h"

namespace metadistill {

/// What the loop hands a body for one student step.
struct LoopStep {
  /// The step's training batch (augmented when the options say so).
  Batch* batch = nullptr;
  /// Global step counter (from 0, continued across resumes), 0-based epoch and batch index.
  int64_t step = 0, epoch = 0, index = 0;
  /// Batches in this epoch; `index + 1 == batches` on the epoch's last step.
  int64_t batches = 0;
  /// The scheduled learning rate of the epoch (already set in every optimizer group).
  double lr = 0;
  /// The next validation batch of the cycle through D_val, indexed by the global step so that a
  /// resumed run sees the batches an uninterrupted one sees. Throws `Error` without D_val.
  std::function<Batch()> next_val;
  /// Data-parallel runs (TrainerOptions::data_parallel): the step's batch and the validation
  /// batches are this rank's shards, and the body passes every batch mean it uses (the loss, its
  /// gradient in .grad, a hyper-step's validation gradient) through `reduce` before using it, so
  /// that every rank takes the step of the whole batch. Empty for one process.
  BatchMeanReduce reduce;
  /// Throws `Error` when `loss` is not finite, naming the step, epoch, `what` (the body's
  /// metaparameters) and the last checkpoint kept; a body calls it before its optimizer step.
  std::function<void(double loss, const std::string& what)> check_loss;

  /// What a metaparameter method sees of this step (meta/meta_optimizer.h): `student` trained by
  /// `optimizer` of kind `kind`, the batch, the validation cycle, the learning rate, the step
  /// counter and the ranks' reduction; the body adds its loss head.
  HyperStepContext context(ClassifierImpl& student, torch::optim::Optimizer& optimizer,
                           const std::string& kind) const;
};

/// One evaluated epoch, as the loop measured it.
struct LoopEpoch {
  int64_t epoch = 0;  // 1-based
  double lr = 0, train_loss = 0, seconds = 0;
  /// On D_val (accuracy −1 without validation data) and D_test.
  Evaluation val{-1, -1, -1}, test;
};

/// A trainer's step and its state (see the header comment).
class LoopBody {
 public:
  virtual ~LoopBody() = default;
  /// Name in messages and checkpoints ("gradient", "all-pairs-exact", ...); a checkpoint of
  /// another name is refused on resume.
  virtual std::string name() const = 0;
  /// One student step on `s.batch`; returns the loss value the step trained on.
  virtual double step(const LoopStep& s) = 0;
  /// Records one evaluated epoch; `verbose`: print a line.
  virtual void end_epoch(const LoopEpoch& e, int64_t epochs, bool verbose) = 0;
  /// The body's state for a checkpoint: JSON keys merged into the checkpoint's state (not
  /// "format", "version", "epochs_done", "steps", "seconds", "settings", "settings_key"), tensors
  /// into `archive` (the model and the optimizer are saved by the loop).
  virtual void save(nlohmann::json& state, torch::serialize::OutputArchive& archive) const = 0;
  /// Reads what `save` wrote. `fork`: another run's checkpoint, whose history is taken but whose
  /// metaparameter state is not (the body keeps its own initial state).
  virtual void load(const nlohmann::json& state, torch::serialize::InputArchive& archive,
                    bool fork) = 0;
  /// Writes the body's per-epoch files (metrics.csv, ...) into `dir`; called before every
  /// checkpoint and at the end.
  virtual void write_outputs(const std::filesystem::path& dir) const = 0;
};

/// What `run_epochs` reports.
struct LoopOutcome {
  int64_t steps = 0;
  double seconds = 0;
  /// Continued from the output folder's checkpoint.
  bool resumed = false;
  /// `time_limit` ended the run before its last epoch.
  bool stopped_by_time_limit = false;
};

/// Runs epochs of `body` on `model` under `options`: resumes from `options.out_dir`/checkpoint.pt
/// or forks from `options.fork_from` first (the checkpoint holds the model, the optimizer and what
/// the body saves, such as VID terms), then trains the remaining epochs. `train_set[train_ids]`
/// are the training rows; `val_set` may be null; `test_set` is evaluated after every evaluated
/// epoch. The model must already be on `options.device`. With `options.data_parallel`, every rank
/// runs this with the same arguments: each trains on its shard of every batch, rank 0's weights
/// are broadcast at the start, only rank 0 writes checkpoints and the body's outputs, and the ranks
/// agree on the epoch they resume after and on when the time limit stops them.
LoopOutcome run_epochs(const TrainerOptions& options, ClassifierImpl& model,
                       torch::optim::Optimizer& optimizer, const DataSet& train_set,
                       const torch::Tensor& train_ids, const DataSet* val_set,
                       const DataSet& test_set, LoopBody& body);

/// Data parallel: replaces this rank's `loss` and the gradients in the .grad of `params` (zeros
/// where a parameter has none) by the whole batch's, `count` being this rank's examples; returns
/// the whole batch's loss. A body calls it between its backward pass and its optimizer step.
double reduce_step(const std::vector<torch::Tensor>& params, const BatchMeanReduce& reduce,
                   double loss, int64_t count);

/// The effective learning rate η·‖∇_w L‖/‖∇_w CE‖ of a step: ∇_w L is what the model's
/// parameters hold in .grad (after the backward pass and, data parallel, `reduce_step`), ∇_w CE
/// the gradient of the cross-entropy of `logits` (whose graph must still be there) against `y`,
/// reduced like it; −1 when ∇_w CE is zero. Bodies measure it on an epoch's last step.
/// The record of an evaluated epoch (train/trainer.h): what the loop measured in `e` and the
/// effective learning rate of the epoch's last step (-1: not measured). Without validation data
/// the validation fields stay −1.
EpochRecord epoch_record(const LoopEpoch& e, double effective_lr);
/// The record as the keys of a result's history entry, and back (the trainer adds its
/// metaparameters' keys); measurements a result stored before they were logged lacks read as −1.
/// `from_json` throws nlohmann's exception for a missing required key.
nlohmann::json epoch_record_json(const EpochRecord& r);
EpochRecord epoch_record_from_json(const nlohmann::json& j);
/// metrics.csv, one row per evaluated epoch: the header and a row with the trainer's
/// metaparameter columns `names` (values `values`) after test_accuracy; unmeasured values (−1)
/// and non-finite ones are empty cells.
std::string metrics_csv_header(const std::vector<std::string>& names);
std::string metrics_csv_row(const EpochRecord& r, const std::vector<double>& values);
/// A number as metrics and trajectory CSVs write it (9 significant digits; empty if not finite).
std::string csv_number(double v);

double measure_effective_lr(ClassifierImpl& model, const torch::Tensor& logits,
                            const torch::Tensor& y, double lr, const BatchMeanReduce& reduce);

/// The student's optimizer U ("sgd", "momentum", "adam" or "lstm" as `options.optimizer`; the
/// learned LSTM read from `options.optimizer_file`): `groups[0]`
/// with the options' weight decay, the others (loss-head parameters) with `extra_decay`.
std::unique_ptr<torch::optim::Optimizer> make_student_optimizer(
    const TrainerOptions& options, const std::vector<std::vector<torch::Tensor>>& groups,
    double extra_decay = 0.0);

}  // namespace metadistill
