#include <gtest/gtest.h>

#include "test_util.h"
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <functional>
#include <string>
#include <vector>

#include "metadistill/data/cifar.h"
#include "metadistill/util/error.h"

namespace fs = std::filesystem;
using namespace metadistill;

namespace {

constexpr int64_t kPerTrainBatch = 20;
constexpr int64_t kTrain = 5 * kPerTrainBatch;
constexpr int64_t kTest = 10;

// A fresh folder under the system temp folder, removed with its contents at the end of a test.
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

// The known pixel of sample `i` (numbered across all training batches, test samples from 1000),
// channel `c` (0 = R), position `p` = row * 32 + column. Different in every channel, so that a
// swapped plane shows.
uint8_t pixel(int64_t i, int64_t c, int64_t p) {
  return static_cast<uint8_t>((i * 7 + c * 85 + p * 3 + (p / 32)) % 256);
}
uint8_t label_of(int64_t i) { return static_cast<uint8_t>((i * 3) % 10); }

// One batch in the binary format: per record the label byte, then the R, G and B planes.
std::string batch_bytes(int64_t first, int64_t n) {
  std::string out;
  for (int64_t i = first; i < first + n; ++i) {
    out.push_back(static_cast<char>(label_of(i)));
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 1024; ++p) out.push_back(static_cast<char>(pixel(i, c, p)));
  }
  return out;
}

void write_plain(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

// Five training batches of 20 records (samples 0..99) and a test batch of 10 (samples
// 1000..1009) in `folder`.
void write_batches(const fs::path& folder) {
  fs::create_directories(folder);
  for (int64_t b = 0; b < 5; ++b)
    write_plain(folder / ("data_batch_" + std::to_string(b + 1) + ".bin"),
                batch_bytes(b * kPerTrainBatch, kPerTrainBatch));
  write_plain(folder / "test_batch.bin", batch_bytes(1000, kTest));
}

std::vector<fs::path> train_files(const fs::path& folder) {
  std::vector<fs::path> files;
  for (int b = 1; b <= 5; ++b)
    files.push_back(folder / ("data_batch_" + std::to_string(b) + ".bin"));
  return files;
}

// Expected uint8 [n, 3, 32, 32] images of samples first..first+n-1.
torch::Tensor expected_images(int64_t first, int64_t n) {
  auto out = torch::empty({n, 3, 32, 32}, torch::kUInt8);
  auto a = out.accessor<uint8_t, 4>();
  for (int64_t i = 0; i < n; ++i)
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p = 0; p < 1024; ++p) a[i][c][p / 32][p % 32] = pixel(first + i, c, p);
  return out;
}

torch::Tensor expected_labels(int64_t first, int64_t n) {
  auto out = torch::empty({n}, torch::kLong);
  for (int64_t i = 0; i < n; ++i) out[i] = label_of(first + i);
  return out;
}

}  // namespace

TEST(Cifar, ReadsRecordsWithPlanesInRgbOrder) {
  TempDir dir;
  write_batches(dir.path());
  auto [images, labels] = read_cifar_binary(train_files(dir.path()));
  EXPECT_EQ(images.sizes(), (std::vector<int64_t>{kTrain, 3, 32, 32}));
  EXPECT_EQ(images.dtype(), torch::kUInt8);
  EXPECT_EQ(labels.sizes(), (std::vector<int64_t>{kTrain}));
  EXPECT_EQ(labels.dtype(), torch::kLong);
  EXPECT_TRUE(torch::equal(images, expected_images(0, kTrain)));
  EXPECT_TRUE(torch::equal(labels, expected_labels(0, kTrain)));
  // One pixel spelled out: sample 42 (batch 3, record 2), green plane, row 5, column 7.
  EXPECT_EQ(images[42][1][5][7].item<int64_t>(), pixel(42, 1, 5 * 32 + 7));
  EXPECT_EQ(labels[42].item<int64_t>(), label_of(42));
}

TEST(Cifar, LoadsFullBundleWithPerChannelNormalization) {
  TempDir dir;
  write_batches(dir.path());
  const auto b = load_cifar10(CifarOptions().with_root(dir.path()).val_rows(10));
  EXPECT_EQ(b.name, "cifar10");
  EXPECT_EQ(b.num_classes, 10);
  EXPECT_EQ(b.pool.x.sizes(), (std::vector<int64_t>{kTrain, 3, 32, 32}));
  EXPECT_EQ(b.pool.x.dtype(), torch::kFloat32);
  EXPECT_EQ(b.train_idx.size(0), kTrain - 10);
  EXPECT_EQ(b.val_idx.size(0), 10);
  EXPECT_EQ(b.test.x.sizes(), (std::vector<int64_t>{kTest, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(b.test.y, expected_labels(1000, kTest)));
  EXPECT_TRUE(torch::equal(b.teacher_train.y, b.pool.y.index_select(0, b.train_idx)));
  EXPECT_FALSE(b.fingerprint.empty());

  // By hand: x = (p / 255 - mean[c]) / std[c] with the usual CIFAR-10 constants.
  const double mean[3] = {0.4914, 0.4822, 0.4465}, stddev[3] = {0.2470, 0.2435, 0.2616};
  for (int64_t i : {0, 37, 99})
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t p : {0, 33, 1023}) {
        const double want = (pixel(i, c, p) / 255.0 - mean[c]) / stddev[c];
        EXPECT_NEAR(b.pool.x[i][c][p / 32][p % 32].item<double>(), want, 1e-5)
            << "sample " << i << " channel " << c << " pixel " << p;
      }
  const double want_test = (pixel(1003, 2, 100) / 255.0 - mean[2]) / stddev[2];
  EXPECT_NEAR(b.test.x[3][2][3][4].item<double>(), want_test, 1e-5);
}

TEST(Cifar, FindsTheArchiveSubfolder) {
  TempDir dir;
  write_batches(dir / "cifar-10-batches-bin");
  const auto b = load_cifar10(CifarOptions().with_root(dir.path()).val_rows(10));
  EXPECT_EQ(b.pool.size(), kTrain);
  EXPECT_EQ(b.test.size(), kTest);
}

TEST(Cifar, SplitDependsOnlyOnSeed) {
  TempDir dir;
  write_batches(dir.path());
  const auto opts = CifarOptions().with_root(dir.path()).val_rows(20);
  const auto a = load_cifar10(CifarOptions(opts).seeded(5));
  const auto b = load_cifar10(CifarOptions(opts).seeded(5));
  const auto c = load_cifar10(CifarOptions(opts).seeded(6));
  EXPECT_TRUE(torch::equal(a.val_idx, b.val_idx));
  EXPECT_TRUE(torch::equal(a.train_idx, b.train_idx));
  EXPECT_EQ(a.fingerprint, b.fingerprint);
  EXPECT_FALSE(torch::equal(a.val_idx, c.val_idx));
  EXPECT_NE(a.fingerprint, c.fingerprint);
  auto all = std::get<0>(torch::cat({a.train_idx, a.val_idx}).sort());
  EXPECT_TRUE(torch::equal(all, torch::arange(kTrain, torch::kLong)));
}

TEST(Cifar, ReducedUsesTheFirstImagesAndItsOwnValidationSize) {
  TempDir dir;
  write_batches(dir.path());
  // val_size keeps its default 5000, which would not fit: the reduced variant ignores it.
  const auto b = load_cifar10(
      CifarOptions().with_root(dir.path()).use_reduced(true).reduced_rows(64).reduced_val_rows(8));
  EXPECT_EQ(b.name, "cifar10-reduced");
  EXPECT_EQ(b.pool.size(), 64);
  EXPECT_EQ(b.train_idx.size(0), 56);
  EXPECT_EQ(b.val_idx.size(0), 8);
  EXPECT_EQ(b.teacher_train.size(), 56);
  EXPECT_EQ(b.test.size(), kTest);
  EXPECT_TRUE(torch::equal(b.pool.y, expected_labels(0, 64)));
  EXPECT_LT(b.val_idx.max().item<int64_t>(), 64);

  // The defaults (12 800 images) do not fit the 100 written here.
  expect_error([&] { load_cifar10(CifarOptions().with_root(dir.path()).use_reduced(true)); },
               {"reduced_size 12800", "hold 100 images", dir.path().string()});
  expect_error(
      [&] {
        load_cifar10(CifarOptions()
                         .with_root(dir.path())
                         .use_reduced(true)
                         .reduced_rows(64)
                         .reduced_val_rows(64));
      },
      {"reduced_val_size 64", "[0, 64)"});
}

TEST(Cifar, LimitsKeepTheFirstImages) {
  TempDir dir;
  write_batches(dir.path());
  const auto b = load_cifar10(
      CifarOptions().with_root(dir.path()).train_limit(30).test_limit(4).val_rows(3));
  EXPECT_EQ(b.pool.size(), 30);
  EXPECT_EQ(b.train_idx.size(0), 27);
  EXPECT_EQ(b.val_idx.size(0), 3);
  EXPECT_EQ(b.test.size(), 4);
  EXPECT_TRUE(torch::equal(b.pool.y, expected_labels(0, 30)));
  EXPECT_TRUE(torch::equal(b.test.y, expected_labels(1000, 4)));
  // With the reduced variant the smaller of the two wins.
  const auto r = load_cifar10(CifarOptions()
                                  .with_root(dir.path())
                                  .use_reduced(true)
                                  .reduced_rows(64)
                                  .reduced_val_rows(5)
                                  .train_limit(40));
  EXPECT_EQ(r.pool.size(), 40);
  EXPECT_EQ(r.val_idx.size(0), 5);
}

TEST(Cifar, SizeNotAMultipleOfTheRecord) {
  TempDir dir;
  write_batches(dir.path());
  const fs::path bad = dir / "data_batch_4.bin";
  write_plain(bad, batch_bytes(60, 2) + "12345");
  expect_error([&] { load_cifar10(CifarOptions().with_root(dir.path()).val_rows(10)); },
               {"CIFAR-10 file " + bad.string(), "size 6151 bytes", "multiple of the 3073-byte"});
}

TEST(Cifar, MissingFileOrFolder) {
  TempDir dir;
  write_batches(dir.path());
  const fs::path gone = dir / "data_batch_3.bin";
  fs::remove(gone);
  expect_error([&] { load_cifar10(CifarOptions().with_root(dir.path()).val_rows(10)); },
               {"CIFAR-10 file " + gone.string(), "no such file"});
  expect_error([&] { read_cifar_binary({dir / "test_batch.bin", dir / "nope.bin"}); },
               {(dir / "nope.bin").string(), "no such file"});
  expect_error([&] { load_cifar10(CifarOptions().with_root(dir / "empty")); },
               {"no data_batch_1.bin in " + (dir / "empty").string(), "cifar-10-batches-bin"});
}

TEST(Cifar, LabelAboveNine) {
  TempDir dir;
  write_batches(dir.path());
  std::string bytes = batch_bytes(1000, kTest);
  bytes[5 * 3073] = 10;  // label byte of record 5
  write_plain(dir / "test_batch.bin", bytes);
  expect_error([&] { load_cifar10(CifarOptions().with_root(dir.path()).val_rows(10)); },
               {"CIFAR-10 file " + (dir / "test_batch.bin").string(), "record 5 has label 10",
                "expected 0 to 9"});
}
