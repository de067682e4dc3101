#pragma once
/// One distillation run from a config: data, teacher (trained when missing), cached teacher
/// outputs, student, method, trainer; results written to the run's folder.
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "metadistill/data/dataset.h"
#include "metadistill/experiment/config.h"
#include "metadistill/train/teacher.h"
#include "metadistill/train/trainer.h"

namespace metadistill {

/// Loads the data set a config names. `cache_dir` holds decoded-image caches (CIFAR-10 with
/// format "folder"); empty = no cache.
DataBundle load_data(const DataConfig& config, const std::string& cache_dir = "");

/// What every run of an experiment shares: the data, the teacher and its cached outputs.
struct Prepared {
  DataBundle data;
  LoadedModel teacher;
  torch::Tensor teacher_logits;  // [N_pool, K], by sample id
  double teacher_test_accuracy = 0;
  /// Hash of the teacher file's contents: the teacher's identity in run settings keys.
  std::string teacher_hash;
};

/// Checks everything about `config` that can be checked before data are decoded or a teacher is
/// trained (STYLE.md item 18), so that a mistake fails in a second, not after an hour: the
/// methods (`methods`: names, and the method settings each of them reads), the student model and,
/// when the teacher file is missing, the teacher model against the data's input shape (where it is
/// known without decoding: synthetic, fmnist, cifar10*, folders with `image_size`), and that the
/// output folder, the teacher file's folder and the cache folder are writable. Throws `Error`
/// naming the problem and `config.source`.
void check_before_start(const Config& config, const std::vector<std::string>& methods);

/// Loads the data, loads or trains the teacher, computes or reads its cached outputs. With
/// `group` (every rank of a data-parallel run calls it), a missing output cache is computed
/// sharded over the ranks (`cached_teacher_logits`).
Prepared prepare(const Config& config, DataParallel* group = nullptr);

/// Everything that shapes one run of `method` with `seed` (its settings key, util/settings_key.h):
/// the data settings (not their folder) and fingerprint, the teacher file's hash, the student's
/// model and training schedule (not its checkpoint interval), the method's name and the settings
/// it reads, the seed, the wall-clock limit. Not the output folder, threads, device or progress.
nlohmann::json run_settings(const Config& config, const Prepared& prepared,
                            const std::string& method, uint64_t seed);

/// Outcome of one run.
struct RunResult {
  std::string method;
  uint64_t seed = 0;
  Metaparameters initial, final;
  TrainResult train;
  nlohmann::json to_json() const;
};

/// Trains one student with `method` and `seed`; writes metrics.csv, trajectory.csv, checkpoint.pt
/// and result.json (atomically) into `out_dir` when it is not empty. The checkpoint and
/// result.json carry the run's settings and their key (`run_settings`); `resume` continues only a
/// checkpoint of the same settings (see TrainerOptions::settings). With `group`, this process is
/// one rank of a data-parallel run (train/data_parallel.h): every rank calls this with the same
/// arguments, and only rank 0 writes files.
RunResult run_distill(const Config& config, const Prepared& prepared, const std::string& method,
                      uint64_t seed, const std::filesystem::path& out_dir, bool resume = false,
                      bool verbose = false, std::shared_ptr<DataParallel> group = nullptr);

}  // namespace metadistill
