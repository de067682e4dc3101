#include "metadistill/data/image_folder.h"

#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "metadistill/data/cifar.h"
#include "metadistill/data/image_codec.h"
#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "test_util.h"

namespace fs = std::filesystem;
using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// A uniform colour identifying (class, image) by its red value, uint8 [3, h, w]; JPEG keeps a
// uniform colour within a step or two.
torch::Tensor flat_image(int64_t cls, int64_t i, int64_t h = 8, int64_t w = 8) {
  auto img = torch::empty({3, h, w}, torch::kUInt8);
  img[0].fill_(10 + 40 * cls + 3 * i);
  img[1].fill_(200 - 20 * cls);
  img[2].fill_(20 + 10 * i);
  return img;
}

// Random pixels uint8 [3, h, w], for lossless (PNG) comparisons.
torch::Tensor noise_image(uint64_t seed, int64_t h = 32, int64_t w = 32) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, {3, h, w}, gen, torch::kInt64).to(torch::kUInt8);
}

void write_bytes(const fs::path& path, const std::string& bytes) {
  fs::create_directories(path.parent_path());
  std::ofstream out(path, std::ios::binary);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

// train/ of three classes, JPEG and PNG mixed, names that sort byte-wise ("10" before "9"):
//   ant:  0.png 1.png          (label 0)
//   bird: a.jpg b.JPEG c.png   (label 1)
//   cat:  10.png 9.jpg         (label 2)
// plus a hidden file, which is ignored. Image i of class c is flat_image(c, i) in that order.
void write_small_folder(const fs::path& root, const std::string& split = "train") {
  const fs::path s = root / split;
  write_image(flat_image(0, 0), s / "ant/0.png");
  write_image(flat_image(0, 1), s / "ant/1.png");
  write_image(flat_image(1, 0), s / "bird/a.jpg");
  write_image(flat_image(1, 1), s / "bird/b.JPEG");
  write_image(flat_image(1, 2), s / "bird/c.png");
  write_image(flat_image(2, 0), s / "cat/10.png");
  write_image(flat_image(2, 1), s / "cat/9.jpg");
  write_bytes(s / "cat/.DS_Store", "junk");
}


bool any_contains(const std::vector<std::string>& lines, const std::string& part) {
  for (const auto& l : lines)
    if (l.find(part) != std::string::npos) return true;
  return false;
}

}  // namespace

TEST(ImageFolder, ListsByClassThenFileName) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  auto listing = list_image_folder(ImageFolderOptions(dir.path()), "train");
  EXPECT_EQ(listing.classes, (std::vector<std::string>{"ant", "bird", "cat"}));
  std::vector<std::string> names;
  std::vector<int64_t> labels;
  for (const auto& f : listing.files) {
    names.push_back(f.relative);
    labels.push_back(f.label);
    EXPECT_GT(f.bytes, 0u);
  }
  EXPECT_EQ(names, (std::vector<std::string>{"ant/0.png", "ant/1.png", "bird/a.jpg",
                                             "bird/b.JPEG", "bird/c.png", "cat/10.png",
                                             "cat/9.jpg"}));
  EXPECT_EQ(labels, (std::vector<int64_t>{0, 0, 1, 1, 1, 2, 2}));
  EXPECT_EQ(listing.class_counts(), (std::vector<int64_t>{2, 3, 2}));
  EXPECT_TRUE(listing.skipped.empty());
}

TEST(ImageFolder, DecodesJpegAndPngWithLabels) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  auto split = read_image_folder(ImageFolderOptions(dir.path()), "train");
  ASSERT_EQ(split.images.sizes(), (c10::IntArrayRef{7, 3, 8, 8}));
  EXPECT_EQ(split.images.scalar_type(), torch::kUInt8);
  EXPECT_TRUE(torch::equal(split.labels, torch::tensor({0, 0, 1, 1, 1, 2, 2}, torch::kInt64)));
  EXPECT_FALSE(split.from_cache);
  EXPECT_EQ(split.resized, 0);
  // (class, image index) of each row in listing order.
  const std::vector<std::pair<int64_t, int64_t>> expected = {{0, 0}, {0, 1}, {1, 0}, {1, 1},
                                                             {1, 2}, {2, 0}, {2, 1}};
  for (size_t r = 0; r < expected.size(); ++r) {
    auto want = flat_image(expected[r].first, expected[r].second).to(torch::kInt32);
    auto diff = (split.images[r].to(torch::kInt32) - want).abs().max().item<int>();
    const bool png = split.files[r].find(".png") != std::string::npos;
    if (png)
      EXPECT_EQ(diff, 0) << split.files[r];  // lossless
    else
      EXPECT_LE(diff, 3) << split.files[r];
  }
  // Grey decoding of the same folder.
  auto grey = read_image_folder(ImageFolderOptions(dir.path()).with_channels(1), "train");
  EXPECT_EQ(grey.images.sizes(), (c10::IntArrayRef{7, 1, 8, 8}));
}

TEST(ImageFolder, GivenClassesSetTheLabels) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  auto split = read_image_folder(
      ImageFolderOptions(dir.path()).with_classes({"cat", "ant", "bird"}), "train");
  EXPECT_TRUE(torch::equal(split.labels, torch::tensor({0, 0, 1, 1, 2, 2, 2}, torch::kInt64)));
  EXPECT_EQ(split.files.front(), "cat/10.png");
  // A class folder outside the list: an error, or skipped with a warning.
  expect_error(
      [&] {
        read_image_folder(ImageFolderOptions(dir.path()).with_classes({"ant", "bird"}), "train");
      },
      {(dir.path() / "train" / "cat").string(), "not among the 2 configured classes"});
  auto skipped = read_image_folder(ImageFolderOptions(dir.path())
                                       .with_classes({"ant", "bird"})
                                       .on_bad_image(BadImagePolicy::kSkip),
                                   "train");
  EXPECT_EQ(skipped.images.size(0), 5);
  EXPECT_TRUE(any_contains(skipped.warnings, "cat"));
  // A configured class without a folder.
  expect_error(
      [&] {
        read_image_folder(
            ImageFolderOptions(dir.path()).with_classes({"ant", "bird", "cat", "dog"}), "train");
      },
      {(dir.path() / "train" / "dog").string(), "class folder missing"});
}

TEST(ImageFolder, MixedSizesAreRejectedOrResized) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  write_image(flat_image(2, 2, 12, 10), dir / "train/cat/z.png");
  // Size 0: the first image's (8x8); the 12x10 one is rejected by default, naming it.
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "train"); },
               {"z.png", "12x10", "expected 8x8"});
  auto resized = read_image_folder(
      ImageFolderOptions(dir.path()).on_size_mismatch(SizeMismatchPolicy::kResize), "train");
  EXPECT_EQ(resized.images.sizes(), (c10::IntArrayRef{8, 3, 8, 8}));
  EXPECT_EQ(resized.resized, 1);
  EXPECT_TRUE(any_contains(resized.warnings, "resized 1 of 8 images to 8x8"));
  // A flat image stays flat when resized.
  EXPECT_TRUE(torch::equal(resized.images[7], flat_image(2, 2)));
  // A configured size: every image is resized to it.
  auto all = read_image_folder(ImageFolderOptions(dir.path())
                                   .with_size(4, 6)
                                   .on_size_mismatch(SizeMismatchPolicy::kResize),
                               "train");
  EXPECT_EQ(all.images.sizes(), (c10::IntArrayRef{8, 3, 4, 6}));
  EXPECT_EQ(all.resized, 8);
  // Skipped instead of failing.
  auto skipped = read_image_folder(
      ImageFolderOptions(dir.path()).on_bad_image(BadImagePolicy::kSkip), "train");
  EXPECT_EQ(skipped.images.size(0), 7);
  EXPECT_TRUE(any_contains(skipped.warnings, "z.png"));
}

TEST(ImageFolder, EmptyClassFolderAndNonImageFiles) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  fs::create_directories(dir / "train/dog");
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "train"); },
               {(dir.path() / "train" / "dog").string(), "empty class folder"});
  auto skipped = read_image_folder(
      ImageFolderOptions(dir.path()).on_bad_image(BadImagePolicy::kSkip), "train");
  // The empty class keeps its label (3) so that labels do not shift.
  EXPECT_EQ(skipped.classes.size(), 4u);
  EXPECT_EQ(skipped.images.size(0), 7);
  EXPECT_TRUE(any_contains(skipped.warnings, "class 3 ('dog') has no images"));

  fs::remove_all(dir / "train/dog");
  write_bytes(dir / "train/bird/notes.txt", "a note");
  write_bytes(dir / "train/README", "split-level file");
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "train"); },
               {(dir.path() / "train" / "README").string(), "not a class folder"});
  fs::remove(dir / "train/README");
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "train"); },
               {"notes.txt", "not an image file"});
  auto without = read_image_folder(
      ImageFolderOptions(dir.path()).on_bad_image(BadImagePolicy::kSkip), "train");
  EXPECT_EQ(without.images.size(0), 7);
  EXPECT_TRUE(any_contains(without.warnings, "notes.txt"));
}

TEST(ImageFolder, BrokenImagesNameTheFile) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  const std::string jpeg = encode_jpeg(noise_image(1, 8, 8));
  const std::string png = encode_png(noise_image(2, 8, 8));
  write_bytes(dir / "train/ant/2-garbage.jpg", "this is text, not a JPEG");
  write_bytes(dir / "train/ant/3-truncated.jpg", jpeg.substr(0, jpeg.size() / 2));
  write_bytes(dir / "train/bird/d-truncated.png", png.substr(0, png.size() / 2));
  write_bytes(dir / "train/cat/8-empty.png", "");
  // The first bad file in listing order is named, and the others counted.
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "train"); },
               {"2-garbage.jpg", "not a JPEG or PNG", "and 3 more bad images"});
  auto skipped = read_image_folder(
      ImageFolderOptions(dir.path()).on_bad_image(BadImagePolicy::kSkip), "train");
  EXPECT_EQ(skipped.images.size(0), 7);
  EXPECT_TRUE(torch::equal(skipped.labels, torch::tensor({0, 0, 1, 1, 1, 2, 2}, torch::kInt64)));
  for (const char* name : {"2-garbage.jpg", "3-truncated.jpg", "d-truncated.png", "8-empty.png"})
    EXPECT_TRUE(any_contains(skipped.warnings, name)) << name;
  // Only bad files: nothing left is an error even when skipping.
  TempDir bad("imgfolder");
  write_bytes(bad / "train/x/a.jpg", "nope");
  expect_error(
      [&] {
        read_image_folder(ImageFolderOptions(bad.path()).on_bad_image(BadImagePolicy::kSkip),
                          "train");
      },
      {"none of the 1 images can be decoded", "a.jpg"});
}

TEST(ImageFolder, MissingRootOrSplitFolder) {
  TempDir dir("imgfolder");
  write_small_folder(dir.path());
  expect_error([&] { read_image_folder(ImageFolderOptions(dir / "nowhere"), "train"); },
               {"nowhere", "no such folder"});
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "test"); },
               {(dir.path() / "test").string(), "missing", "found: train"});
  fs::create_directories(dir / "val");
  expect_error([&] { read_image_folder(ImageFolderOptions(dir.path()), "val"); },
               {"no class folders"});
}

TEST(ImageFolder, CachedTensorsEqualDecodedOnesAndAreNeverStale) {
  TempDir dir("imgfolder");
  TempDir cache("imgcache");
  write_small_folder(dir.path());
  write_bytes(dir / "train/ant/junk.jpg", "not an image");
  auto options =
      ImageFolderOptions(dir.path()).cached_in(cache.path()).on_bad_image(BadImagePolicy::kSkip);
  auto decoded = read_image_folder(options, "train");
  EXPECT_FALSE(decoded.from_cache);
  auto cached = read_image_folder(options, "train");
  EXPECT_TRUE(cached.from_cache);
  EXPECT_TRUE(torch::equal(cached.images, decoded.images));
  EXPECT_TRUE(torch::equal(cached.labels, decoded.labels));
  EXPECT_EQ(cached.files, decoded.files);
  EXPECT_EQ(cached.classes, decoded.classes);
  EXPECT_EQ(cached.warnings, decoded.warnings);  // the skip is reported again
  // Without the cache the same tensors come out.
  auto plain = read_image_folder(ImageFolderOptions(options).cached_in({}), "train");
  EXPECT_TRUE(torch::equal(plain.images, cached.images));

  // Another decode setting: another cache file.
  auto grey = read_image_folder(ImageFolderOptions(options).with_channels(1), "train");
  EXPECT_FALSE(grey.from_cache);
  EXPECT_EQ(grey.images.size(1), 1);

  // A changed file (same size: a PNG of other pixels, newer time) is decoded again.
  const fs::path changed = dir / "train/cat/10.png";
  const auto before = fs::last_write_time(changed);
  write_image(flat_image(2, 5), changed);
  fs::last_write_time(changed, before + std::chrono::seconds(2));
  auto fresh = read_image_folder(options, "train");
  EXPECT_FALSE(fresh.from_cache);
  EXPECT_TRUE(torch::equal(fresh.images[5], flat_image(2, 5)));
  // A new file too.
  write_image(flat_image(0, 7), dir / "train/ant/7.png");
  auto more = read_image_folder(options, "train");
  EXPECT_FALSE(more.from_cache);
  EXPECT_EQ(more.images.size(0), 8);

  // A damaged cache file is ignored (decoded again), never a crash.
  for (const auto& entry : fs::directory_iterator(cache.path())) write_bytes(entry.path(), "x");
  auto again = read_image_folder(options, "train");
  EXPECT_FALSE(again.from_cache);
  EXPECT_TRUE(torch::equal(again.images, more.images));
}

TEST(ImageFolder, ClassInterleavedOrder) {
  auto order = class_interleaved_order(torch::tensor({0, 0, 0, 1, 1, 2}, torch::kInt64));
  EXPECT_TRUE(torch::equal(order, torch::tensor({0, 3, 5, 1, 4, 2}, torch::kInt64)));
  auto labels = torch::arange(3).repeat_interleave(4);  // 0 0 0 0 1 1 1 1 2 2 2 2
  auto balanced = class_interleaved_order(labels);
  EXPECT_TRUE(torch::equal(labels.index_select(0, balanced), torch::arange(3).repeat({4})));
  EXPECT_TRUE(torch::equal(balanced.slice(0, 0, 3), torch::tensor({0, 4, 8}, torch::kInt64)));
}

TEST(ImageFolder, ChannelStatistics) {
  auto gen = at::detail::createCPUGenerator(5);
  auto images = torch::randint(0, 256, {2500, 3, 4, 5}, gen, torch::kInt64).to(torch::kUInt8);
  auto [mean, stddev] = channel_statistics(images);
  auto x = images.to(torch::kFloat64) / 255.0;
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(mean[c], x.select(1, c).mean().item<double>(), 1e-12);
    EXPECT_NEAR(stddev[c], x.select(1, c).std(/*unbiased=*/false).item<double>(), 1e-9);
  }
}

TEST(ImageFolderData, BundleLayoutAndComputedStatistics) {
  TempDir dir("imgdata");
  // 3 classes x 10 training images (noise, PNG), 3 x 2 test images, 16x16.
  for (int64_t c = 0; c < 3; ++c) {
    for (int64_t i = 0; i < 10; ++i)
      write_image(noise_image(100 * c + i, 16, 16),
                  dir / fmt::format("train/c{}/{:02d}.png", c, i));
    for (int64_t i = 0; i < 2; ++i)
      write_image(noise_image(1000 + 100 * c + i, 16, 16),
                  dir / fmt::format("test/c{}/{:02d}.png", c, i));
  }
  auto options = ImageFolderDataOptions(ImageFolderOptions(dir.path())).seeded(4);
  DataBundle b = load_image_folder(options);
  EXPECT_EQ(b.name, "image-folder");
  EXPECT_EQ(b.num_classes, 3);
  ASSERT_EQ(b.pool.x.sizes(), (c10::IntArrayRef{30, 3, 16, 16}));
  EXPECT_EQ(b.pool.x.scalar_type(), torch::kFloat32);
  // Class-interleaved: labels 0, 1, 2, 0, 1, 2, ...
  EXPECT_TRUE(torch::equal(b.pool.y, torch::arange(3).repeat({10})));
  EXPECT_EQ(b.val_idx.size(0), 3);  // a tenth of the pool
  EXPECT_EQ(b.train_idx.size(0), 27);
  EXPECT_EQ(b.test.x.size(0), 6);
  EXPECT_EQ(b.teacher_train.size(), 27);
  EXPECT_FALSE(b.fingerprint.empty());
  // Statistics from D_train: its normalized channels have mean 0 and stddev 1.
  auto xt = b.pool.x.index_select(0, b.train_idx).to(torch::kFloat64);
  for (int64_t c = 0; c < 3; ++c) {
    EXPECT_NEAR(xt.select(1, c).mean().item<double>(), 0.0, 1e-5);
    EXPECT_NEAR(xt.select(1, c).std(false).item<double>(), 1.0, 1e-4);
  }
  // Pool row 1 is the first image of class 1 (c1/00.png), normalized with the given statistics.
  DataBundle given = load_image_folder(
      ImageFolderDataOptions(options).normalized({0.5, 0.5, 0.5}, {0.25, 0.25, 0.25}));
  auto want = (noise_image(100, 16, 16).to(torch::kFloat32) / 255.0 - 0.5) / 0.25;
  EXPECT_TRUE(torch::allclose(given.pool.x[1], want, 1e-5, 1e-5));
  // pool_size and limits take class-interleaved prefixes.
  DataBundle small = load_image_folder(
      ImageFolderDataOptions(options).pool_rows(12).val_rows(3).test_limit(3));
  EXPECT_EQ(small.pool.size(), 12);
  EXPECT_EQ(torch::bincount(small.pool.y).min().item<int64_t>(), 4);
  EXPECT_TRUE(torch::equal(small.test.y, torch::arange(3)));
  expect_error([&] { load_image_folder(ImageFolderDataOptions(options).pool_rows(31)); },
               {"pool_size 31", "30 images"});
  expect_error([&] { load_image_folder(ImageFolderDataOptions(options).val_rows(30)); },
               {"val_size 30"});
  expect_error([&] { load_image_folder(ImageFolderDataOptions(options).normalized({0.5}, {0.2})); },
               {"mean and stddev need 3 values"});
  // The test split must hold the training split's classes, at the training size.
  fs::remove_all(dir / "test/c2");
  expect_error([&] { load_image_folder(options); },
               {(dir.path() / "test" / "c2").string(), "class folder missing"});
}

TEST(ImageFolderCifar, FolderGivesTheBundleOfTheBinaryFiles) {
  // The same images as PNG files (lossless) and as binary batches whose record order is the
  // folder's class-interleaved order: both loaders must give identical bundles.
  TempDir dir("imgcifar");
  const fs::path folder = dir / "folder", binary = dir / "binary";
  const int64_t per_class_train = 6, per_class_test = 2;
  auto records = [&](const std::string& split, int64_t per_class, uint64_t seed0) {
    std::string bytes;
    for (int64_t k = 0; k < 10 * per_class; ++k) {
      const int64_t cls = k % 10, i = k / 10;
      auto img = noise_image(seed0 + k);
      write_image(img, folder / split / cifar10_classes()[cls] / fmt::format("{:04d}.png", i));
      bytes.push_back(static_cast<char>(cls));
      bytes.append(reinterpret_cast<const char*>(img.data_ptr<uint8_t>()), 3 * 32 * 32);
    }
    return bytes;
  };
  const std::string train = records("train", per_class_train, 0);
  const std::string test = records("test", per_class_test, 5000);
  const size_t per_batch = train.size() / 5;  // 12 records per batch
  for (int b = 0; b < 5; ++b)
    write_bytes(binary / fmt::format("data_batch_{}.bin", b + 1),
                train.substr(b * per_batch, per_batch));
  write_bytes(binary / "test_batch.bin", test);

  for (bool reduced : {false, true}) {
    auto base = CifarOptions().val_rows(6).seeded(3).use_reduced(reduced).reduced_rows(20).reduced_val_rows(4);
    DataBundle a = load_cifar10(CifarOptions(base).with_root(binary));
    DataBundle f = load_cifar10_folder(CifarOptions(base).with_root(folder), dir / "cache");
    EXPECT_EQ(f.name, reduced ? "cifar10-reduced" : "cifar10");
    EXPECT_EQ(f.name, a.name);
    EXPECT_EQ(f.num_classes, 10);
    EXPECT_TRUE(torch::equal(f.pool.x, a.pool.x));
    EXPECT_TRUE(torch::equal(f.pool.y, a.pool.y));
    EXPECT_TRUE(torch::equal(f.train_idx, a.train_idx));
    EXPECT_TRUE(torch::equal(f.val_idx, a.val_idx));
    EXPECT_TRUE(torch::equal(f.test.x, a.test.x));
    EXPECT_TRUE(torch::equal(f.test.y, a.test.y));
    EXPECT_TRUE(torch::equal(f.teacher_train.x, a.teacher_train.x));
    EXPECT_EQ(f.fingerprint, a.fingerprint);
    EXPECT_EQ(f.pool.size(), reduced ? 20 : 60);
  }
  // Another image size is rejected, naming the file.
  write_image(noise_image(9, 32, 30), folder / "test/cat/0009.png");
  expect_error([&] { load_cifar10_folder(CifarOptions().with_root(folder)); },
               {"0009.png", "32x30", "expected 32x32"});
}

// The JPEG copy of CIFAR-10 in /work/shared/data (development machines only): extracted once
// into the build folder, counted by listing, a few hundred files decoded.
TEST(ImageFolderSharedCifar, SlowJpegCopyCountsShapesAndLabelOrder) {
  const char* env = std::getenv("METADISTILL_CIFAR_JPEG_ARCHIVE");
  const fs::path archive = env ? env : "/work/shared/data/cifar10-jpeg.tar.xz";
  if (!fs::exists(archive))
    GTEST_SKIP() << "the JPEG copy of CIFAR-10 (" << archive.string()
                 << ") is absent; it exists on development machines only";
  const fs::path root = fs::path(METADISTILL_BINARY_DIR) / "test-data" / "cifar10-jpeg";
  const fs::path marker = root / ".extracted";
  if (!fs::exists(marker)) {
    const fs::path tmp = root.string() + ".tmp";
    fs::remove_all(tmp);
    fs::remove_all(root);
    fs::create_directories(tmp);
    const std::string cmd =
        fmt::format("tar xJf '{}' -C '{}'", archive.string(), tmp.string());
    ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
    write_file_atomic(tmp / ".extracted", archive.string());
    fs::rename(tmp, root);
  }

  ImageFolderOptions options(root);
  auto train = list_image_folder(options, "train");
  auto test = list_image_folder(options, "test");
  // Sorted folder names give the CIFAR-10 label order airplane..truck = 0..9.
  EXPECT_EQ(train.classes, cifar10_classes());
  EXPECT_EQ(test.classes, cifar10_classes());
  EXPECT_EQ(train.class_counts(), std::vector<int64_t>(10, 5000));
  EXPECT_EQ(test.class_counts(), std::vector<int64_t>(10, 1000));
  EXPECT_EQ(train.files.front().relative, "airplane/0000.jpg");
  EXPECT_EQ(train.files.back().relative, "truck/4999.jpg");

  // Decode the first 30 files of every class.
  ImageFolderListing few = train;
  few.files.clear();
  for (const auto& f : train.files)
    if (f.relative.substr(f.relative.find('/') + 1) < "0030") few.files.push_back(f);
  ASSERT_EQ(few.files.size(), 300u);
  auto split = decode_image_folder(few, ImageFolderOptions(root).with_size(32, 32));
  ASSERT_EQ(split.images.sizes(), (c10::IntArrayRef{300, 3, 32, 32}));
  EXPECT_TRUE(torch::equal(split.labels, torch::arange(10).repeat_interleave(30)));
  EXPECT_TRUE(split.warnings.empty());
  // Natural images: mean intensity near CIFAR-10's (about 0.47), not flat.
  const double mean = split.images.to(torch::kFloat64).mean().item<double>() / 255.0;
  EXPECT_GT(mean, 0.35);
  EXPECT_LT(mean, 0.6);
  EXPECT_GT(split.images.to(torch::kFloat64).std().item<double>() / 255.0, 0.15);
}
