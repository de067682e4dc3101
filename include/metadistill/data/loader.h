#pragma once
/// Mini-batch iteration over a data set's ids, seeded shuffling, each batch carrying its ids.
#include <cstdint>
#include <functional>

#include <torch/torch.h>

#include "metadistill/data/dataset.h"

namespace metadistill {

/// One mini-batch: inputs, labels and the samples' ids in their pool.
struct Batch {
  torch::Tensor x;    // [B, ...]
  torch::Tensor y;    // [B]
  torch::Tensor idx;  // [B] int64 ids into the pool
};

/// Replaces this process's batch means (`means`, each over `count` samples) by the means over the
/// union of every data-parallel rank's samples, in place (train/data_parallel.h). An empty
/// function is one process: the means are already those of the whole batch.
using BatchMeanReduce = std::function<void(std::vector<torch::Tensor>& means, int64_t count)>;

/// Options of `BatchLoader`.
struct LoaderOptions {
  /// Samples per batch; 0 or more than the data means full batch.
  int64_t batch_size = 128;
  /// Reshuffle every epoch.
  bool shuffle = true;
  /// Drop the last, smaller batch.
  bool drop_last = false;
  /// Seed of the shuffling generator.
  uint64_t seed = 0;
  LoaderOptions& batch(int64_t v) { batch_size = v; return *this; }
  LoaderOptions& shuffled(bool v) { shuffle = v; return *this; }
  LoaderOptions& drop_last_batch(bool v) { drop_last = v; return *this; }
  LoaderOptions& seeded(uint64_t v) { seed = v; return *this; }
};

/// Iterates over `data[ids]` in batches; epoch e's order depends only on (seed, e), so a resumed
/// run sees the same batches. When `device` is not CPU batches are moved there.
class BatchLoader {
 public:
  BatchLoader(const DataSet& data, torch::Tensor ids, LoaderOptions options,
              torch::Device device = torch::kCPU);

  /// Starts epoch `epoch` (0-based): fixes its order.
  void start_epoch(int64_t epoch);
  /// Number of batches per epoch.
  int64_t batches_per_epoch() const;
  /// Batch `b` of the current epoch.
  Batch batch(int64_t b) const;
  /// Next batch, cycling through epochs forever (used for validation batches).
  Batch next_cycling();
  int64_t size() const { return ids_.size(0); }

 private:
  const DataSet& data_;
  torch::Tensor ids_;
  LoaderOptions options_;
  torch::Device device_;
  torch::Tensor order_;  // ids of the current epoch, in order
  int64_t epoch_ = -1;
  int64_t cursor_ = 0;
};

}  // namespace metadistill
