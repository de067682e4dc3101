#pragma once
/// In-memory labelled data and the bundle of splits every run works on.
///
/// Every data set here fits in memory (Fashion-MNIST 188 MB, CIFAR-10 615 MB as float32), so a
/// data set is a pair of tensors and a split is an index tensor into a pool. The index of a sample
/// in its pool is its identity: the teacher-output cache is looked up by it (never by batch number).
#include <cstdint>
#include <string>

#include <torch/torch.h>

namespace metadistill {

/// Labelled samples. `x_teacher`, when defined, is what the teacher sees (the synthetic data set
/// gives teacher and student different features); otherwise the teacher sees `x`.
struct DataSet {
  torch::Tensor x;          // [N, ...] float32, normalized
  torch::Tensor y;          // [N] int64 in [0, K)
  torch::Tensor x_teacher;  // [N, ...] or undefined

  int64_t size() const { return y.defined() ? y.size(0) : 0; }
  const torch::Tensor& teacher_input() const { return x_teacher.defined() ? x_teacher : x; }
  /// The samples at `idx` (a copy).
  DataSet select(const torch::Tensor& idx) const;
  /// Throws `Error` naming `what` when shapes disagree or labels leave [0, num_classes).
  void validate(int64_t num_classes, const std::string& what) const;
};

/// Everything one experiment needs: the student's pool D = D_train ⊔ D_val (indices into it),
/// the test set, and the teacher's training data.
struct DataBundle {
  std::string name;           // e.g. "fmnist", "synthetic-reference"
  int64_t num_classes = 0;
  DataSet pool;               // D_train ∪ D_val; sample id = row
  torch::Tensor train_idx;    // [N_train] int64 ids into pool
  torch::Tensor val_idx;      // [N_val] int64 ids into pool
  DataSet test;
  /// The teacher's training set. For image data it is pool[train_idx]; the synthetic data set
  /// has its own rows.
  DataSet teacher_train;
  /// When true, the hypergradient's validation batches come from the test set (the authors'
  /// synthetic setting D_val = D_test); off by default.
  bool val_is_test = false;
  /// Identifies the data: name, sizes, content hash. Part of every cache key.
  std::string fingerprint;

  /// The validation samples the meta-level uses: pool[val_idx], or `test` when val_is_test.
  DataSet validation() const;
  /// Computes `fingerprint` from the contents.
  void finalize();
};

/// Draws a seeded split of `n` ids into (n - n_val) train and n_val val ids, both sorted.
std::pair<torch::Tensor, torch::Tensor> random_split(int64_t n, int64_t n_val, uint64_t seed);

}  // namespace metadistill
