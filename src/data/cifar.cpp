#include "metadistill/data/cifar.h"

#include <algorithm>
#include <fstream>
#include <string>
#include <tuple>

#include "metadistill/util/error.h"

namespace metadistill {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kClasses = 10;
constexpr int64_t kSide = 32;
constexpr int64_t kTrainBatches = 5;
constexpr const char* kArchiveFolder = "cifar-10-batches-bin";

// Reads one batch file into uint8 [records, 3073].
torch::Tensor read_records(const fs::path& path) {
  const std::string name = path.string();
  check(fs::exists(path), "CIFAR-10 file {}: no such file", name);
  check(fs::is_regular_file(path), "CIFAR-10 file {}: not a regular file", name);
  const auto size = static_cast<int64_t>(fs::file_size(path));
  check(size % kCifarRecordBytes == 0,
        "CIFAR-10 file {}: size {} bytes is not a multiple of the {}-byte record (1 label byte + "
        "3072 pixel bytes); the file is truncated or not a CIFAR-10 binary batch",
        name, size, kCifarRecordBytes);
  auto records = torch::empty({size / kCifarRecordBytes, kCifarRecordBytes}, torch::kUInt8);
  std::ifstream in(path, std::ios::binary);
  check(static_cast<bool>(in), "CIFAR-10 file {}: cannot open", name);
  in.read(reinterpret_cast<char*>(records.data_ptr<uint8_t>()), size);
  check(in.gcount() == size, "CIFAR-10 file {}: expected {} bytes, read {}", name, size,
        static_cast<int64_t>(in.gcount()));
  return records;
}

// The folder holding the batches: `root` itself or the archive's sub-folder inside it.
fs::path batches_folder(const fs::path& root) {
  if (fs::exists(root / "data_batch_1.bin")) return root;
  if (fs::exists(root / kArchiveFolder / "data_batch_1.bin")) return root / kArchiveFolder;
  fail("CIFAR-10: no data_batch_1.bin in {} nor in {} (expected the binary release: "
       "data_batch_1.bin ... data_batch_5.bin and test_batch.bin)",
       root.string(), (root / kArchiveFolder).string());
}

// x[c] = (p[c] / 255 - mean[c]) / stddev[c] on uint8 [N, 3, 32, 32].
torch::Tensor normalize(const torch::Tensor& images, const CifarOptions& options) {
  auto mean = torch::tensor({options.mean[0], options.mean[1], options.mean[2]}, torch::kFloat32)
                  .view({1, 3, 1, 1});
  auto stddev =
      torch::tensor({options.stddev[0], options.stddev[1], options.stddev[2]}, torch::kFloat32)
          .view({1, 3, 1, 1});
  return images.to(torch::kFloat32).div_(255.0).sub_(mean).div_(stddev).contiguous();
}

// The first `n` samples, normalized.
DataSet make_set(const torch::Tensor& images, const torch::Tensor& labels, int64_t n,
                 const CifarOptions& options) {
  DataSet data;
  // Cut before converting to float, so a reduced or quick run never holds all images as float.
  data.x = normalize(images.slice(0, 0, n), options);  // [n, 3, 32, 32]
  data.y = labels.slice(0, 0, n).contiguous();         // [n]
  return data;
}

}  // namespace

std::pair<torch::Tensor, torch::Tensor> read_cifar_binary(const std::vector<fs::path>& files) {
  check(!files.empty(), "CIFAR-10: no batch files given");
  std::vector<torch::Tensor> parts;
  for (const auto& path : files) {
    auto records = read_records(path);  // [n, 3073]
    if (records.size(0) > 0) {
      // Report the first bad record by position, so the file can be inspected.
      auto bad = (records.select(1, 0) >= kClasses).nonzero();
      if (bad.numel() > 0) {
        const int64_t row = bad[0][0].item<int64_t>();
        fail("CIFAR-10 file {}: record {} has label {}, expected 0 to {}", path.string(), row,
             records[row][0].item<int64_t>(), kClasses - 1);
      }
    }
    parts.push_back(records);
  }
  auto records = torch::cat(parts);  // [N, 3073]
  auto labels = records.select(1, 0).to(torch::kLong).contiguous();  // [N]
  // The 3072 pixel bytes are the R, G and B planes one after the other, each 32x32 row-major,
  // which is exactly the channel-first layout [3, 32, 32].
  auto images = records.slice(1, 1).reshape({-1, 3, kSide, kSide}).contiguous();  // [N, 3, 32, 32]
  return {images, labels};
}

DataBundle load_cifar10(const CifarOptions& options) {
  for (int c = 0; c < 3; ++c)
    check(options.stddev[c] > 0, "CIFAR-10: stddev[{}] must be > 0, got {}", c, options.stddev[c]);
  check(options.limit_train >= 0, "CIFAR-10: limit_train must be >= 0 (0 = all), got {}",
        options.limit_train);
  check(options.limit_test >= 0, "CIFAR-10: limit_test must be >= 0 (0 = all), got {}",
        options.limit_test);
  const fs::path folder = batches_folder(options.root);

  std::vector<fs::path> train_files;
  for (int64_t b = 1; b <= kTrainBatches; ++b)
    train_files.push_back(folder / ("data_batch_" + std::to_string(b) + ".bin"));
  auto [train_images, train_labels] = read_cifar_binary(train_files);
  auto [test_images, test_labels] = read_cifar_binary({folder / "test_batch.bin"});

  int64_t n_pool = train_images.size(0);
  if (options.reduced) {
    check(options.reduced_size > 0 && options.reduced_size <= n_pool,
          "CIFAR-10: reduced_size {} must lie in [1, {}] (the training batches in {} hold {} "
          "images)",
          options.reduced_size, n_pool, folder.string(), n_pool);
    n_pool = options.reduced_size;
  }
  if (options.limit_train > 0) n_pool = std::min(n_pool, options.limit_train);
  int64_t n_test = test_images.size(0);
  if (options.limit_test > 0) n_test = std::min(n_test, options.limit_test);

  const int64_t n_val = options.reduced ? options.reduced_val_size : options.val_size;
  check(n_val >= 0 && n_val < n_pool,
        "CIFAR-10: {} {} must lie in [0, {}) (the pool holds {} training images; limit_train is "
        "{})",
        options.reduced ? "reduced_val_size" : "val_size", n_val, n_pool, n_pool,
        options.limit_train);

  DataBundle bundle;
  bundle.name = options.reduced ? "cifar10-reduced" : "cifar10";
  bundle.num_classes = kClasses;
  bundle.pool = make_set(train_images, train_labels, n_pool, options);
  bundle.test = make_set(test_images, test_labels, n_test, options);
  std::tie(bundle.train_idx, bundle.val_idx) = random_split(n_pool, n_val, options.split_seed);
  bundle.teacher_train = bundle.pool.select(bundle.train_idx);
  bundle.finalize();
  return bundle;
}

}  // namespace metadistill
