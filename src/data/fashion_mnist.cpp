#include "metadistill/data/fashion_mnist.h"

#include <string>
#include <tuple>

#include "metadistill/data/idx.h"
#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kClasses = 10;
constexpr int64_t kSide = 28;

// Reads one part ("train" or "t10k"), checks it, keeps the first `limit` images (0 = all) and
// normalizes them.
DataSet read_part(const FashionMnistOptions& options, const std::string& part, int64_t limit) {
  const fs::path images_path = options.root / (part + "-images-idx3-ubyte.gz");
  const fs::path labels_path = options.root / (part + "-labels-idx1-ubyte.gz");
  auto images = read_idx_images(images_path);  // [N, 28, 28] uint8
  auto labels = read_idx_labels(labels_path);  // [N] int64

  check(images.size(0) == labels.size(0),
        "Fashion-MNIST: {} holds {} images but {} holds {} labels", images_path.string(), images.size(0), labels_path.string(), labels.size(0));
  check(images.size(1) == kSide && images.size(2) == kSide,
        "Fashion-MNIST: {}: expected {}x{} images, found {}x{}", images_path.string(), kSide, kSide,
        images.size(1), images.size(2));
  if (labels.numel() > 0) {
    const int64_t hi = labels.max().item<int64_t>();
    check(hi < kClasses, "Fashion-MNIST: {}: labels must lie in [0, {}), found {}",
          labels_path.string(), kClasses, hi);
  }

  check(limit >= 0, "Fashion-MNIST: limit for {} must be >= 0 (0 = all), got {}", part, limit);
  if (limit > 0 && limit < images.size(0)) {
    // Cut before converting to float, so a quick run never holds all images as float.
    images = images.slice(0, 0, limit);
    labels = labels.slice(0, 0, limit);
  }

  DataSet data;
  data.x = images.to(torch::kFloat32)
               .div_(255.0)
               .sub_(options.mean)
               .div_(options.stddev)
               .unsqueeze(1)
               .contiguous();  // [N, 1, 28, 28]
  data.y = labels.contiguous();  // [N]
  return data;
}

}  // namespace

DataBundle load_fashion_mnist(const FashionMnistOptions& options) {
  check(fs::is_directory(options.root),
        "Fashion-MNIST: root {} is not a folder (expected the four *-ubyte.gz files there; "
        "Debian's dataset-fashion-mnist installs them in /usr/share/datasets/fashion-mnist)",
        options.root.string());
  check(options.stddev > 0, "Fashion-MNIST: stddev must be > 0, got {}", options.stddev);

  DataBundle bundle;
  bundle.name = "fmnist";
  bundle.num_classes = kClasses;
  bundle.pool = read_part(options, "train", options.limit_train);
  bundle.test = read_part(options, "t10k", options.limit_test);

  const int64_t n = bundle.pool.size();
  check(options.val_size >= 0 && options.val_size < n,
        "Fashion-MNIST: val_size {} must lie in [0, {}) (the pool holds {} training images; "
        "limit_train is {})",
        options.val_size, n, n, options.limit_train);
  std::tie(bundle.train_idx, bundle.val_idx) =
      random_split(n, options.val_size, options.split_seed);
  bundle.teacher_train = bundle.pool.select(bundle.train_idx);
  bundle.finalize();
  return bundle;
}

}  // namespace metadistill
