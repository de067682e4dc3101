#include "metadistill/data/fashion_mnist.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "data/idx_files.h"
#include "metadistill/data/idx.h"
#include "test_util.h"

namespace fs = std::filesystem;

namespace metadistill {
namespace {

// The real Fashion-MNIST files and the writers of small IDX files are in data/idx_files.h.
using metadistill::testing::expect_error;
using metadistill::testing::image_file;
using metadistill::testing::kRealRoot;
using metadistill::testing::label_file;
using metadistill::testing::real_data;
using metadistill::testing::TempDir;
using metadistill::testing::write_gz;

// A Fashion-MNIST root with small files: `n_train` and `n_test` images of 28x28.
void write_small_root(const fs::path& root, int64_t n_train, int64_t n_test) {
  const std::vector<std::pair<std::string, int64_t>> parts = {{"train", n_train},
                                                             {"t10k", n_test}};
  for (const auto& [part, n] : parts) {
    write_gz(root / (part + "-images-idx3-ubyte.gz"),
             image_file(static_cast<uint32_t>(n), 28, 28, static_cast<uint8_t>(n)));
    std::vector<uint8_t> labels(static_cast<size_t>(n));
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>(i % 10);
    write_gz(root / (part + "-labels-idx1-ubyte.gz"), label_file(labels));
  }
}

// --- the real files ---------------------------------------------------------------------------

TEST(FashionMnistReal, BundleSplitsAndNormalization) {
  SKIP_WITHOUT_REAL_DATA();
  const auto& d = real_data();
  const auto& b = d.bundle;
  EXPECT_EQ(b.name, "fmnist");
  EXPECT_EQ(b.num_classes, 10);
  EXPECT_EQ(b.pool.x.sizes(), (std::vector<int64_t>{60000, 1, 28, 28}));
  EXPECT_EQ(b.pool.x.dtype(), torch::kFloat32);
  EXPECT_EQ(b.train_idx.size(0), 54000);
  EXPECT_EQ(b.val_idx.size(0), 6000);
  EXPECT_EQ(b.test.size(), 10000);
  EXPECT_EQ(b.teacher_train.size(), 54000);
  EXPECT_FALSE(b.fingerprint.empty());
  // Train and validation ids are disjoint and cover the pool.
  auto all = std::get<0>(torch::cat({b.train_idx, b.val_idx}).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(60000, torch::kLong)));
  // The teacher sees exactly the training part of the pool.
  EXPECT_TRUE(torch::equal(b.teacher_train.y, b.pool.y.index_select(0, b.train_idx)));
  EXPECT_TRUE(torch::equal(b.pool.y, d.train_labels));
  EXPECT_TRUE(torch::equal(b.test.y, d.test_labels));
  // (p / 255 - 0.286) / 0.353 by hand, on one image.
  auto expected = (d.train_images[7].to(torch::kFloat32) / 255.0 - 0.286) / 0.353;
  EXPECT_TRUE(torch::allclose(b.pool.x[7][0], expected, 1e-5, 1e-6));
  // Standardized with the measured pixel std 0.353 (the issue text says 0.315, which gives std 1.12).
  EXPECT_NEAR(b.pool.x.mean().item<double>(), 0.0, 0.01);
  EXPECT_NEAR(b.pool.x.std().item<double>(), 1.0, 0.01);
}

TEST(FashionMnistReal, SplitDependsOnlyOnSeed) {
  SKIP_WITHOUT_REAL_DATA();
  const auto& first = real_data().bundle;
  const auto again = load_fashion_mnist(FashionMnistOptions().seeded(0));
  EXPECT_TRUE(torch::equal(first.train_idx, again.train_idx));
  EXPECT_TRUE(torch::equal(first.val_idx, again.val_idx));
  EXPECT_EQ(first.fingerprint, again.fingerprint);
  const auto other = load_fashion_mnist(FashionMnistOptions().seeded(1));
  EXPECT_EQ(other.val_idx.size(0), 6000);
  EXPECT_FALSE(torch::equal(first.val_idx, other.val_idx));
  EXPECT_NE(first.fingerprint, other.fingerprint);
}

TEST(FashionMnistReal, LimitsKeepTheFirstImages) {
  SKIP_WITHOUT_REAL_DATA();
  const auto b = load_fashion_mnist(
      FashionMnistOptions().train_limit(1000).test_limit(200).val_rows(100).seeded(3));
  EXPECT_EQ(b.pool.size(), 1000);
  EXPECT_EQ(b.train_idx.size(0), 900);
  EXPECT_EQ(b.val_idx.size(0), 100);
  EXPECT_EQ(b.test.size(), 200);
  // Only the label files are read again here, to keep this test cheap on its own.
  const auto train_labels = read_idx_labels(kRealRoot / "train-labels-idx1-ubyte.gz");
  const auto test_labels = read_idx_labels(kRealRoot / "t10k-labels-idx1-ubyte.gz");
  EXPECT_TRUE(torch::equal(b.pool.y, train_labels.slice(0, 0, 1000)));
  EXPECT_TRUE(torch::equal(b.test.y, test_labels.slice(0, 0, 200)));
}

// --- load_fashion_mnist on small files -------------------------------------------------------

TEST(FashionMnist, LoadsASmallRoot) {
  TempDir dir;
  write_small_root(dir.path(), 20, 5);
  const auto b = load_fashion_mnist(FashionMnistOptions().with_root(dir.path()).val_rows(4));
  EXPECT_EQ(b.pool.x.sizes(), (std::vector<int64_t>{20, 1, 28, 28}));
  EXPECT_EQ(b.train_idx.size(0), 16);
  EXPECT_EQ(b.val_idx.size(0), 4);
  EXPECT_EQ(b.test.size(), 5);
  EXPECT_EQ(b.teacher_train.size(), 16);
  EXPECT_EQ(b.pool.y[13].item<int64_t>(), 3);
  auto raw = read_idx_images(dir / "train-images-idx3-ubyte.gz");
  auto expected = (raw.to(torch::kFloat32) / 255.0 - 0.286) / 0.353;
  EXPECT_TRUE(torch::allclose(b.pool.x.squeeze(1), expected, 1e-5, 1e-6));
  // Other normalization constants are used as given.
  const auto c = load_fashion_mnist(
      FashionMnistOptions().with_root(dir.path()).val_rows(4).normalized(0.5, 0.25));
  EXPECT_TRUE(torch::allclose(c.pool.x.squeeze(1), (raw.to(torch::kFloat32) / 255.0 - 0.5) / 0.25,
                              1e-5, 1e-6));
}

TEST(FashionMnist, CountMismatchNamesBothFiles) {
  TempDir dir;
  write_small_root(dir.path(), 6, 3);
  write_gz(dir / "train-labels-idx1-ubyte.gz", label_file({0, 1, 2, 3, 4}));
  expect_error(
      [&] { load_fashion_mnist(FashionMnistOptions().with_root(dir.path()).val_rows(1)); },
      {(dir / "train-images-idx3-ubyte.gz").string(), "6 images",
       (dir / "train-labels-idx1-ubyte.gz").string(), "5 labels"});
}

TEST(FashionMnist, LabelOutOfRange) {
  TempDir dir;
  write_small_root(dir.path(), 4, 3);
  write_gz(dir / "t10k-labels-idx1-ubyte.gz", label_file({0, 10, 2}));
  expect_error(
      [&] { load_fashion_mnist(FashionMnistOptions().with_root(dir.path()).val_rows(1)); },
      {(dir / "t10k-labels-idx1-ubyte.gz").string(), "labels must lie in [0, 10), found 10"});
}

TEST(FashionMnist, MissingFileAndRoot) {
  TempDir dir;
  write_small_root(dir.path(), 4, 3);
  fs::remove(dir / "t10k-images-idx3-ubyte.gz");
  expect_error(
      [&] { load_fashion_mnist(FashionMnistOptions().with_root(dir.path()).val_rows(1)); },
      {(dir / "t10k-images-idx3-ubyte.gz").string(), "no such file"});
  expect_error([&] { load_fashion_mnist(FashionMnistOptions().with_root(dir / "absent")); },
               {(dir / "absent").string(), "is not a folder"});
}

TEST(FashionMnist, ValidationSizeMustFitThePool) {
  TempDir dir;
  write_small_root(dir.path(), 10, 3);
  expect_error([&] { load_fashion_mnist(FashionMnistOptions().with_root(dir.path())); },
               {"val_size 6000", "[0, 10)"});
}

}  // namespace
}  // namespace metadistill
