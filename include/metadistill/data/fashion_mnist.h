#pragma once
/// Fashion-MNIST (Xiao, Rasul, Vollgraf 2017): 28x28 grey images of 10 clothing classes,
/// 60 000 training and 10 000 test images, read from the four gzip'd IDX files that Debian's
/// `dataset-fashion-mnist` installs in /usr/share/datasets/fashion-mnist.
///
/// The paper's setting (DESIGN.md section 4): the 60 000 training images are the pool D, split
/// 9:1 into D_train (54 000) and D_val (6 000); the teacher trains on D_train; t10k is the test
/// set.
#include <cstdint>
#include <filesystem>
#include <string>

#include "metadistill/data/dataset.h"

namespace metadistill {

/// Options of `load_fashion_mnist`.
struct FashionMnistOptions {
  /// Folder holding {train,t10k}-{images-idx3,labels-idx1}-ubyte.gz.
  std::filesystem::path root = "/usr/share/datasets/fashion-mnist";
  /// Validation images drawn from the pool (D_val); the rest is D_train.
  int64_t val_size = 6000;
  /// Seed of the train/validation split (`random_split`).
  uint64_t split_seed = 0;
  /// Pixel mean subtracted after scaling to [0, 1]: x = (p / 255 - mean) / stddev.
  double mean = 0.286;
  /// Pixel standard deviation the centred pixels are divided by.
  double stddev = 0.353;
  /// Use only the first `limit_train` training images as the pool (0 = all 60 000); for quick runs.
  int64_t limit_train = 0;
  /// Use only the first `limit_test` test images (0 = all 10 000); for quick runs.
  int64_t limit_test = 0;

  FashionMnistOptions& with_root(std::filesystem::path v) { root = std::move(v); return *this; }
  FashionMnistOptions& val_rows(int64_t v) { val_size = v; return *this; }
  FashionMnistOptions& seeded(uint64_t v) { split_seed = v; return *this; }
  FashionMnistOptions& normalized(double mean_v, double stddev_v) {
    mean = mean_v;
    stddev = stddev_v;
    return *this;
  }
  FashionMnistOptions& train_limit(int64_t v) { limit_train = v; return *this; }
  FashionMnistOptions& test_limit(int64_t v) { limit_test = v; return *this; }
};

/// Loads Fashion-MNIST as a `DataBundle` named "fmnist" with 10 classes: pool = the training
/// images (float32 [N, 1, 28, 28], normalized), train_idx/val_idx = random_split(N, val_size,
/// split_seed), test = t10k, teacher_train = pool[train_idx]; the bundle is finalized.
/// Throws `Error` naming the file for a missing or corrupt file, image and label counts that
/// disagree, images that are not 28x28 or labels outside [0, 10), and naming the option for a
/// val_size that does not fit the pool.
DataBundle load_fashion_mnist(const FashionMnistOptions& options = {});

}  // namespace metadistill
