#pragma once
/// CIFAR-10 (Krizhevsky 2009) in its standard binary release: data_batch_1.bin ... data_batch_5.bin
/// (10 000 training images each) and test_batch.bin (10 000 test images). Each record is 3073
/// bytes: one label byte (0..9), then the 32x32 red plane, green plane and blue plane, row-major.
///
/// The paper's settings (DESIGN.md section 4): CIFAR-10 = the 50 000 training images split 9:1
/// into D_train and D_val; reduced CIFAR-10 = only the first 12 800 training images, split inside
/// them. The binary files cannot be downloaded on the project's machines; the reader is tested on
/// small files written in the same format.
#include <array>
#include <cstdint>
#include <filesystem>
#include <utility>
#include <vector>

#include "metadistill/data/dataset.h"

namespace metadistill {

/// Bytes of one CIFAR-10 binary record: 1 label byte + 3 * 32 * 32 pixel bytes.
constexpr int64_t kCifarRecordBytes = 3073;

/// Reads CIFAR-10 binary batch files, concatenated in the given order, into
/// (images uint8 [N, 3, 32, 32] with channels R, G, B; labels int64 [N]). Throws `Error` naming
/// the file for a missing file, a size that is not a multiple of 3073 bytes, or a label above 9.
std::pair<torch::Tensor, torch::Tensor> read_cifar_binary(
    const std::vector<std::filesystem::path>& files);

/// Options of `load_cifar10`.
struct CifarOptions {
  /// Folder holding data_batch_{1..5}.bin and test_batch.bin, directly or in the archive's
  /// sub-folder cifar-10-batches-bin. No Debian package ships CIFAR-10; this is only a default
  /// place for a copy.
  std::filesystem::path root = "/usr/share/datasets/cifar-10";
  /// Validation images drawn from the pool (D_val) of the full data set.
  int64_t val_size = 5000;
  /// Seed of the train/validation split (`random_split`).
  uint64_t split_seed = 0;
  /// The paper's reduced CIFAR-10: the pool is only the first `reduced_size` training images and
  /// `reduced_val_size` of them (instead of `val_size`) are drawn for validation.
  bool reduced = false;
  /// Pool size of the reduced variant.
  int64_t reduced_size = 12800;
  /// Validation images of the reduced variant (10% of its pool).
  int64_t reduced_val_size = 1280;
  /// Per-channel (R, G, B) mean subtracted after scaling to [0, 1]:
  /// x[c] = (p[c] / 255 - mean[c]) / stddev[c].
  std::array<double, 3> mean = {0.4914, 0.4822, 0.4465};
  /// Per-channel (R, G, B) standard deviation the centred pixels are divided by.
  std::array<double, 3> stddev = {0.2470, 0.2435, 0.2616};
  /// Use only the first `limit_train` images of the pool (0 = all); for quick runs. With
  /// `reduced` the pool is the first min(reduced_size, limit_train) images.
  int64_t limit_train = 0;
  /// Use only the first `limit_test` test images (0 = all 10 000); for quick runs.
  int64_t limit_test = 0;

  CifarOptions& with_root(std::filesystem::path v) { root = std::move(v); return *this; }
  CifarOptions& val_rows(int64_t v) { val_size = v; return *this; }
  CifarOptions& seeded(uint64_t v) { split_seed = v; return *this; }
  CifarOptions& use_reduced(bool v) { reduced = v; return *this; }
  CifarOptions& reduced_rows(int64_t v) { reduced_size = v; return *this; }
  CifarOptions& reduced_val_rows(int64_t v) { reduced_val_size = v; return *this; }
  CifarOptions& normalized(std::array<double, 3> mean_v, std::array<double, 3> stddev_v) {
    mean = mean_v;
    stddev = stddev_v;
    return *this;
  }
  CifarOptions& train_limit(int64_t v) { limit_train = v; return *this; }
  CifarOptions& test_limit(int64_t v) { limit_test = v; return *this; }
};

/// Loads CIFAR-10 as a `DataBundle` named "cifar10" (or "cifar10-reduced") with 10 classes:
/// pool = the training images (float32 [N, 3, 32, 32], normalized per channel), train_idx/val_idx
/// = random_split(N, val_size or reduced_val_size, split_seed), test = test_batch.bin,
/// teacher_train = pool[train_idx]; the bundle is finalized. Throws `Error` naming the folder or
/// file for missing or malformed files, and naming the option for sizes that do not fit.
DataBundle load_cifar10(const CifarOptions& options = {});

}  // namespace metadistill
