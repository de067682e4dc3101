#pragma once
/// Teachers: trained once per data set and saved; their outputs computed once and cached on
/// disk, keyed by the teacher file's contents and the data's fingerprint so that a different
/// teacher or data set never reuses a stale cache.
#include <filesystem>

#include "metadistill/data/dataset.h"
#include "metadistill/train/checkpoint.h"
#include "metadistill/train/trainer.h"

namespace metadistill {

/// The teacher's DataSet view of `data`: its inputs are what the teacher sees.
DataSet teacher_view(const DataSet& data);

/// The checkpoint folder of a teacher training for `path`: "<path>.training-<hash>", the hash
/// taken over the model, the data's fingerprint and every option that shapes the training.
std::filesystem::path teacher_training_folder(const std::filesystem::path& path,
                                              const ModelSpec& spec, const DataBundle& bundle,
                                              const TrainerOptions& options);

/// Trains a teacher of `spec` on `bundle.teacher_train` with plain cross-entropy, evaluating on
/// the test set; saves it to `path` atomically. Unless `options.out_dir` is set, checkpoints go
/// to a folder next to `path` (named by a hash of the training settings) and an interrupted
/// training resumes from there; the folder is removed once the teacher is saved. Returns the
/// model and its final test accuracy.
LoadedModel train_teacher(const DataBundle& bundle, const ModelSpec& spec,
                          const TrainerOptions& options, const std::filesystem::path& path,
                          double* test_accuracy = nullptr);

/// Loads the teacher at `path`, or trains and saves it first when the file is missing (saying so
/// on stderr). Several processes needing the same missing teacher train it once: the first takes
/// an flock on "<path>.lock", the others wait and load what it saved (a holder that dies releases
/// the lock, and the next one trains, resuming from the checkpoint folder). Throws `Error` when
/// the file exists but does not fit the data (input shape, classes).
LoadedModel ensure_teacher(const DataBundle& bundle, const ModelSpec& spec,
                           const TrainerOptions& options, const std::filesystem::path& path);

/// Teacher logits for every row of `bundle.pool` [N_pool, K] (float32, CPU), looked up by sample
/// id. Cached in `cache_dir` under a key of (teacher file hash, bundle fingerprint); computed in
/// eval mode without gradients when the cache is missing or unreadable, by one process at a time
/// (a lock beside the file, as for `ensure_teacher`). With `group` (data parallel: every rank
/// calls it with the same arguments), a cache missing on any rank is computed sharded: each rank
/// runs the teacher on its contiguous part of the rows, the parts are broadcast from their ranks,
/// and every rank returns (and keeps in its cache folder) the same whole tensor.
torch::Tensor cached_teacher_logits(ClassifierImpl& teacher, const std::filesystem::path& teacher_file,
                                    const DataBundle& bundle, const std::filesystem::path& cache_dir,
                                    torch::Device device = torch::kCPU,
                                    DataParallel* group = nullptr);

/// Logits of `model` on `inputs` in eval mode, in batches (CPU float32 result).
torch::Tensor predict_logits(ClassifierImpl& model, const torch::Tensor& inputs,
                             int64_t batch_size = 1024, torch::Device device = torch::kCPU);

}  // namespace metadistill
