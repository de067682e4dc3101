#pragma once
/// Data-parallel training on LibTorch's own distributed engine, c10d (DESIGN.md 3.9): the ranks
/// of one group meet at a `c10d::TCPStore` hosted by rank 0 and talk through
/// `c10d::ProcessGroupGloo` (CPU tensors; CUDA tensors go through Gloo too, without NCCL).
///
/// Each global batch is cut into R near-equal contiguous parts, one per rank, so that the union of
/// the shards is the one-process batch. Every quantity that is a batch mean (the loss gradient,
/// the loss value, the validation gradient of a hyper-step, the loss head's λ-derivatives) is
/// replaced by the mean over the union before it is used, weighting each rank by its shard's
/// size: the step equals the one-process step up to floating-point summation order, and the
/// metaparameters stay bit-identical on every rank (an all-reduce leaves the same bits
/// everywhere). BatchNorm keeps per-rank batch statistics, as PyTorch's DDP does, so equality
/// with one process holds only for models without BatchNorm.
///
/// Failures: every collective and the rendezvous wait at most `timeout`; a lost rank ends the
/// others with an `Error` naming it (a rank on the same host is named by its process id; rank 0
/// is named when its store stops answering).
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/loader.h"

namespace metadistill {

/// Where the group meets and how long anyone waits.
struct DataParallelOptions {
  /// Rank 0's address, where it hosts the rendezvous store (torchrun's MASTER_ADDR).
  std::string master_addr = "127.0.0.1";
  /// The store's port (MASTER_PORT).
  int port = 29500;
  int rank = 0;        // RANK
  int world_size = 1;  // WORLD_SIZE
  /// Seconds the rendezvous and every collective may wait for the other ranks
  /// (METADISTILL_DIST_TIMEOUT); a lost rank is reported after at most this long.
  double timeout = 60;
  /// The collectives' engine (METADISTILL_DIST_BACKEND): "gloo" (CPU and CUDA tensors, the
  /// latter through host memory) or "nccl" (GPU to GPU, on cuda:LOCAL_RANK; needs a build with
  /// -DMETADISTILL_NCCL=ON against a CUDA LibTorch with NCCL).
  std::string backend = "gloo";
  /// The GPU of this rank on its machine for "nccl" (LOCAL_RANK).
  int local_rank = 0;

  /// torchrun's variables (MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK),
  /// METADISTILL_DIST_TIMEOUT and METADISTILL_DIST_BACKEND; `world_size` 1 when WORLD_SIZE is unset. Throws `Error` naming a
  /// variable that is not a number.
  static DataParallelOptions from_environment();
  /// Throws `Error` naming the value: rank outside [0, world_size), a port outside [1, 65535],
  /// a timeout that is not positive, an unknown backend or "nccl" in a build without it.
  void validate() const;
};

/// One rank's membership of a data-parallel group (see the header comment).
class DataParallel {
 public:
  /// Joins the group: rank 0 hosts the store and waits for the others; every rank then builds
  /// the Gloo group. Throws `Error` on a port in use, an unreachable MASTER_ADDR, or ranks that do
  /// not join within the timeout (a wrong WORLD_SIZE), naming the address, port and counts.
  static std::shared_ptr<DataParallel> join(const DataParallelOptions& options);
  /// The group of the environment (`DataParallelOptions::from_environment`), or null when
  /// WORLD_SIZE is unset or 1.
  static std::shared_ptr<DataParallel> from_environment();
  ~DataParallel();
  DataParallel(const DataParallel&) = delete;
  DataParallel& operator=(const DataParallel&) = delete;

  int rank() const;
  int world_size() const;
  const DataParallelOptions& options() const;

  /// This rank's part of a global batch: rows [r·B/R, (r+1)·B/R) (near-equal, contiguous; a
  /// rank may get none when B < R).
  Batch shard(const Batch& batch) const;
  /// See `BatchMeanReduce`: one all-reduce of a flat bucket holding every tensor (per dtype).
  void all_reduce_batch_mean(std::vector<torch::Tensor>& means, int64_t count);
  /// `all_reduce_batch_mean` bound to this group.
  BatchMeanReduce batch_mean_reduce();
  /// The maximum of `value` over the ranks.
  double all_reduce_max(double value);
  /// Copies rank `root`'s tensors into every rank's (in place; same shapes everywhere).
  void broadcast(std::vector<torch::Tensor>& tensors, int root = 0);
  /// Waits until every rank arrives.
  void barrier();

 private:
  struct Impl;
  explicit DataParallel(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// A TCP port on 127.0.0.1 that is free now (for `metadistill launch` and tests).
int free_tcp_port();

}  // namespace metadistill
