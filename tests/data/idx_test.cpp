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

#include "data/idx_files.h"
#include "metadistill/data/idx.h"
#include "metadistill/util/error.h"

namespace fs = std::filesystem;
using namespace metadistill;

namespace {

// The real Fashion-MNIST files and the writers of small IDX files are in data/idx_files.h.
using metadistill::testing::idx_bytes;
using metadistill::testing::image_file;
using metadistill::testing::label_file;
using metadistill::testing::real_data;
using metadistill::testing::write_gz;

// A fresh folder under the system temp folder, removed with its contents at the end of a test.
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

void write_plain(const fs::path& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  ASSERT_TRUE(out.good()) << path;
}

std::string read_bytes(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

// --- the real files ---------------------------------------------------------------------------

TEST(IdxReal, CountsShapesAndLabels) {
  SKIP_WITHOUT_REAL_DATA();
  const auto& d = real_data();
  EXPECT_EQ(d.train_images.sizes(), (std::vector<int64_t>{60000, 28, 28}));
  EXPECT_EQ(d.test_images.sizes(), (std::vector<int64_t>{10000, 28, 28}));
  EXPECT_EQ(d.train_images.dtype(), torch::kUInt8);
  EXPECT_EQ(d.train_labels.sizes(), (std::vector<int64_t>{60000}));
  EXPECT_EQ(d.test_labels.sizes(), (std::vector<int64_t>{10000}));
  EXPECT_EQ(d.train_labels.dtype(), torch::kLong);
  for (const auto& y : {d.train_labels, d.test_labels}) {
    EXPECT_EQ(y.min().item<int64_t>(), 0);
    EXPECT_EQ(y.max().item<int64_t>(), 9);
    // Fashion-MNIST is balanced: 6000 / 1000 of each class.
    auto counts = torch::bincount(y);
    EXPECT_EQ(counts.min().item<int64_t>(), counts.max().item<int64_t>());
  }
  // Pixels use the full range, and the mean is the well-known 0.286.
  EXPECT_EQ(d.train_images.max().item<int64_t>(), 255);
  EXPECT_NEAR(d.train_images.to(torch::kDouble).mean().item<double>() / 255.0, 0.286, 0.001);
}

// --- the IDX reader on small files --------------------------------------------------------------

TEST(Idx, ReadsGzipAndPlainFilesAlike) {
  TempDir dir;
  const std::string images = image_file(3, 2, 4);
  write_gz(dir / "images.gz", images);
  write_plain(dir / "images", images);
  write_gz(dir / "labels.gz", label_file({0, 9, 255}));
  write_plain(dir / "labels", label_file({0, 9, 255}));

  auto gz = read_idx_images(dir / "images.gz");
  auto plain = read_idx_images(dir / "images");
  EXPECT_EQ(gz.sizes(), (std::vector<int64_t>{3, 2, 4}));
  EXPECT_EQ(gz.dtype(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(gz, plain));
  // Row-major after the 16-byte header: image 1, row 1, column 2 is byte 16 + 8 + 4 + 2.
  EXPECT_EQ(gz[1][1][2].item<int64_t>(), static_cast<uint8_t>(images[16 + 8 + 4 + 2]));

  auto labels = read_idx_labels(dir / "labels.gz");
  EXPECT_EQ(labels.dtype(), torch::kLong);
  EXPECT_TRUE(torch::equal(labels, torch::tensor({0, 9, 255}, torch::kLong)));
  EXPECT_TRUE(torch::equal(labels, read_idx_labels(dir / "labels")));
}

TEST(Idx, WrongMagicNamesFileAndBothMagics) {
  TempDir dir;
  const fs::path labels = dir / "train-images-idx3-ubyte.gz";
  write_gz(labels, label_file({1, 2, 3}));
  expect_error([&] { read_idx_images(labels); },
               {"IDX file " + labels.string(), "expected magic 2051, found 2049", "label file"});
  const fs::path images = dir / "labels.gz";
  write_gz(images, image_file(2, 3, 3));
  expect_error([&] { read_idx_labels(images); },
               {images.string(), "expected magic 2049, found 2051"});
}

TEST(Idx, TruncatedGzipSaysHowManyBytesArrived) {
  TempDir dir;
  const fs::path full = dir / "full.gz", cut = dir / "cut.gz";
  write_gz(full, image_file(100, 28, 28));  // 78 400 incompressible pixel bytes
  const std::string bytes = read_bytes(full);
  write_plain(cut, bytes.substr(0, bytes.size() / 2));
  expect_error([&] { read_idx_images(cut); },
               {"IDX file " + cut.string(), "truncated",
                "100 images of 28x28 pixels (78400 bytes after the 16-byte header)", "found ",
                "gzip stream ends early"});
}

TEST(Idx, GzipWithoutTrailerIsTruncated) {
  TempDir dir;
  const fs::path full = dir / "full.gz", cut = dir / "cut.gz";
  write_gz(full, label_file({1, 2, 3, 4}));
  const std::string bytes = read_bytes(full);
  // The last 8 bytes are the CRC-32 and the length; without them all data is there but
  // unchecked.
  write_plain(cut, bytes.substr(0, bytes.size() - 8));
  expect_error([&] { read_idx_labels(cut); },
               {cut.string(), "truncated", "ends before its checksum"});
}

TEST(Idx, CorruptGzipStream) {
  TempDir dir;
  const fs::path full = dir / "full.gz";
  write_gz(full, image_file(4, 28, 28));
  const std::string bytes = read_bytes(full);

  // gzopen writes a 10-byte header; the first deflate block follows. Bits 1-2 = 11 is a
  // reserved block type.
  std::string bad_block = bytes;
  bad_block[10] = static_cast<char>(0x07);
  write_plain(dir / "bad_block.gz", bad_block);
  expect_error([&] { read_idx_images(dir / "bad_block.gz"); },
               {(dir / "bad_block.gz").string(), "corrupt gzip stream", "invalid block type"});

  // A wrong CRC-32 (the trailer's first 4 bytes) only shows at the end of the stream.
  std::string bad_crc = bytes;
  bad_crc[bad_crc.size() - 8] = static_cast<char>(bad_crc[bad_crc.size() - 8] ^ 0x5a);
  write_plain(dir / "bad_crc.gz", bad_crc);
  expect_error([&] { read_idx_images(dir / "bad_crc.gz"); },
               {(dir / "bad_crc.gz").string(), "corrupt gzip stream", "incorrect data check"});
}

TEST(Idx, TruncatedPlainFile) {
  TempDir dir;
  const fs::path path = dir / "images";
  write_plain(path, image_file(2, 5, 5).substr(0, 16 + 30));
  expect_error([&] { read_idx_images(path); },
               {"IDX file " + path.string(), "truncated",
                "2 images of 5x5 pixels (50 bytes after the 16-byte header), found 30 bytes"});

  const fs::path header = dir / "header";
  write_plain(header, image_file(2, 5, 5).substr(0, 6));
  expect_error([&] { read_idx_images(header); },
               {header.string(), "expected a 16-byte header, found 6 bytes"});
}

TEST(Idx, TrailingBytesAreAnError) {
  TempDir dir;
  const fs::path path = dir / "labels";
  write_plain(path, label_file({1, 2, 3}) + "xyz!");
  expect_error([&] { read_idx_labels(path); }, {path.string(), "3 labels", "found 4 more bytes"});
}

TEST(Idx, AbsurdHeaderDimensions) {
  TempDir dir;
  const fs::path path = dir / "images";
  write_plain(path, idx_bytes(2051, {10, 100000, 28}, {}));
  expect_error([&] { read_idx_images(path); },
               {path.string(), "absurd header", "10 images of 100000x28 pixels"});
  write_plain(path, idx_bytes(2051, {4000000000u, 4000, 4000}, {}));
  expect_error([&] { read_idx_images(path); }, {path.string(), "absurd header"});
  // Found by scripts/fuzz.sh: sides near 2^32 made n * rows * cols overflow (undefined
  // behaviour) before the sides were checked.
  write_plain(path, idx_bytes(2051, {788, 0xd025c24bu, 0x40ae3ac1u}, {}));
  expect_error([&] { read_idx_images(path); },
               {path.string(), "absurd header", "788 images of 3492135499x1085160129 pixels"});
}

// A short file whose header promises gigabytes fails before they are allocated: a plain file by
// its size, a gzip'd one by deflate's largest expansion (1032:1). Found by scripts/fuzz.sh (a
// 16-byte input made the reader allocate up to 4 GiB).
TEST(Idx, ShortFilePromisingGigabytesFailsBeforeAllocating) {
  TempDir dir;
  const fs::path plain = dir / "plain", gz = dir / "images.gz";
  write_plain(plain, idx_bytes(2051, {4000000, 28, 28}, {1, 2, 3}));
  expect_error([&] { read_idx_images(plain); },
               {plain.string(), "truncated", "4000000 images of 28x28 pixels", "3136000000 bytes",
                "found 3 bytes"});
  write_plain(plain, idx_bytes(2049, {4000000000u}, {}));
  expect_error([&] { read_idx_labels(plain); },
               {plain.string(), "truncated", "4000000000 labels", "found 0 bytes"});
  write_gz(gz, idx_bytes(2051, {4000000, 28, 28}, {1, 2, 3}));
  const auto gz_size = static_cast<int64_t>(fs::file_size(gz));
  expect_error([&] { read_idx_images(gz); },
               {gz.string(), "truncated", "3136000000 bytes",
                fmt::format("gzip file of {} bytes holds at most {}", gz_size,
                            1032 * gz_size + 4096)});
}

TEST(Idx, MissingFile) {
  TempDir dir;
  const fs::path path = dir / "nothing-here.gz";
  expect_error([&] { read_idx_images(path); }, {"IDX file " + path.string(), "no such file"});
  expect_error([&] { read_idx_labels(path); }, {"IDX file " + path.string(), "no such file"});
}
