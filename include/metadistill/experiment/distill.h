#pragma once
/// One distillation run from a config: data, teacher (trained when missing), cached teacher
/// outputs, student, method, trainer; results written to the run's folder.
#include <filesystem>
#include <string>

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
};

/// Loads the data, loads or trains the teacher, computes or reads its cached outputs.
Prepared prepare(const Config& config);

/// Outcome of one run.
struct RunResult {
  std::string method;
  uint64_t seed = 0;
  Metaparameters initial, final;
  TrainResult train;
  nlohmann::json to_json() const;
};

/// Trains one student with `method` and `seed`; writes metrics.csv, trajectory.csv, checkpoint.pt
/// and result.json (atomically) into `out_dir` when it is not empty.
RunResult run_distill(const Config& config, const Prepared& prepared, const std::string& method,
                      uint64_t seed, const std::filesystem::path& out_dir, bool resume = false,
                      bool verbose = false);

}  // namespace metadistill
