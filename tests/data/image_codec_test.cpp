#include "metadistill/data/image_codec.h"

#include <gtest/gtest.h>

#include <string>

#include "metadistill/util/error.h"
#include "metadistill/util/files.h"
#include "test_util.h"

using namespace metadistill;
using metadistill::testing::contains_all;
using metadistill::testing::expect_error;
using metadistill::testing::TempDir;

namespace {

// A smooth colour image uint8 [C, H, W] (JPEG keeps smooth images close).
torch::Tensor gradient_image(int64_t channels, int64_t height, int64_t width) {
  auto rows = torch::arange(height, torch::kFloat32).view({1, height, 1});
  auto cols = torch::arange(width, torch::kFloat32).view({1, 1, width});
  auto ch = torch::arange(channels, torch::kFloat32).view({channels, 1, 1});
  auto x = 40 + 4 * rows + 3 * cols + 50 * ch;  // [C, H, W]
  return x.clamp(0, 255).to(torch::kUInt8);
}

// Random pixels uint8 [C, H, W]: any change shows in a lossless round trip.
torch::Tensor noise_image(int64_t channels, int64_t height, int64_t width, uint64_t seed) {
  auto gen = at::detail::createCPUGenerator(seed);
  return torch::randint(0, 256, {channels, height, width}, gen, torch::kInt64).to(torch::kUInt8);
}


}  // namespace

TEST(ImageCodec, DetectsFormatFromMagicBytes) {
  const std::string jpeg = encode_jpeg(gradient_image(3, 8, 8));
  const std::string png = encode_png(gradient_image(3, 8, 8));
  EXPECT_EQ(detect_image_format(jpeg.data(), jpeg.size()), ImageFormat::kJpeg);
  EXPECT_EQ(detect_image_format(png.data(), png.size()), ImageFormat::kPng);
  EXPECT_EQ(detect_image_format("GIF89a", 6), ImageFormat::kUnknown);
  EXPECT_EQ(detect_image_format("", 0), ImageFormat::kUnknown);
  EXPECT_EQ(to_string(ImageFormat::kPng), "png");
}

TEST(ImageCodec, PngRoundTripIsExact) {
  for (int64_t c : {1, 3}) {
    auto image = noise_image(c, 13, 21, 7 + c);  // odd sizes: no row padding assumptions
    const std::string bytes = encode_png(image);
    auto decoded = decode_image(bytes.data(), bytes.size(), c, "noise.png");
    ASSERT_EQ(decoded.sizes(), image.sizes());
    EXPECT_EQ(decoded.scalar_type(), torch::kUInt8);
    EXPECT_TRUE(torch::equal(decoded, image)) << "channels " << c;
  }
}

TEST(ImageCodec, JpegRoundTripIsClose) {
  auto image = gradient_image(3, 32, 32);
  const std::string bytes = encode_jpeg(image, 95);
  auto decoded = decode_image(bytes.data(), bytes.size(), 3, "gradient.jpg");
  ASSERT_EQ(decoded.sizes(), image.sizes());
  auto diff = (decoded.to(torch::kInt32) - image.to(torch::kInt32)).abs();
  EXPECT_LT(diff.to(torch::kFloat32).mean().item<float>(), 2.0);
  EXPECT_LE(diff.max().item<int>(), 12);
}

TEST(ImageCodec, ConvertsBetweenGreyAndRgb) {
  // Grey PNG and JPEG read as RGB: three equal channels.
  auto grey = gradient_image(1, 16, 16);
  for (const std::string& bytes : {encode_png(grey), encode_jpeg(grey, 95)}) {
    auto rgb = decode_image(bytes.data(), bytes.size(), 3, "grey");
    ASSERT_EQ(rgb.sizes(), (c10::IntArrayRef{3, 16, 16}));
    EXPECT_TRUE(torch::equal(rgb[0], rgb[1]));
    EXPECT_TRUE(torch::equal(rgb[0], rgb[2]));
  }
  // An RGB image whose channels are equal reads back as that grey image.
  auto rgb = grey.expand({3, 16, 16}).contiguous();
  const std::string png = encode_png(rgb);
  auto back = decode_image(png.data(), png.size(), 1, "rgb.png");
  ASSERT_EQ(back.sizes(), (c10::IntArrayRef{1, 16, 16}));
  EXPECT_LE((back.to(torch::kInt32) - grey.to(torch::kInt32)).abs().max().item<int>(), 1);
}

TEST(ImageCodec, TruncatedJpegIsAnErrorNotGreyRows) {
  const std::string bytes = encode_jpeg(noise_image(3, 32, 32, 1), 90);
  const std::string cut = bytes.substr(0, bytes.size() / 2);
  expect_error([&] { decode_image(cut.data(), cut.size(), 3, "cut.jpg"); },
               {"cut.jpg", "JPEG", "Premature end"});
}

TEST(ImageCodec, CorruptJpegHeaderIsAnError) {
  std::string bytes = "\xFF\xD8\xFF";
  bytes += std::string(40, '\x01');
  expect_error([&] { decode_image(bytes.data(), bytes.size(), 3, "junk.jpg"); },
               {"junk.jpg", "JPEG"});
}

TEST(ImageCodec, TruncatedAndCorruptPngAreErrors) {
  const std::string bytes = encode_png(noise_image(3, 32, 32, 2));
  const std::string cut = bytes.substr(0, bytes.size() / 2);
  expect_error([&] { decode_image(cut.data(), cut.size(), 3, "cut.png"); }, {"cut.png", "PNG"});
  std::string flipped = bytes;
  flipped[bytes.size() / 2] = static_cast<char>(flipped[bytes.size() / 2] ^ 0x55);  // CRC fails
  expect_error([&] { decode_image(flipped.data(), flipped.size(), 3, "crc.png"); },
               {"crc.png", "PNG"});
}

TEST(ImageCodec, OtherBytesAreNotAnImage) {
  const std::string text = "hello, not an image";
  expect_error([&] { decode_image(text.data(), text.size(), 3, "notes.jpg"); },
               {"notes.jpg", "not a JPEG or PNG", "68 65 6c"});
  expect_error([&] { decode_image("", 0, 3, "empty.png"); }, {"empty.png", "0 bytes"});
  expect_error([&] { decode_image(text.data(), text.size(), 2, "x.png"); }, {"channels", "2"});
}

TEST(ImageCodec, WritesAndReadsFilesByExtension) {
  TempDir dir("codec");
  auto image = noise_image(3, 10, 12, 3);
  write_image(image, dir / "a.PNG");
  EXPECT_TRUE(torch::equal(read_image(dir / "a.PNG"), image));
  write_image(image, dir / "b.jpeg");
  EXPECT_EQ(read_image(dir / "b.jpeg").sizes(), image.sizes());
  expect_error([&] { write_image(image, dir / "c.gif"); }, {"c.gif", ".gif"});
  expect_error([&] { read_image(dir / "missing.jpg"); }, {"missing.jpg", "no such file"});
  expect_error([&] { encode_png(image.to(torch::kFloat32)); }, {"uint8", "float"});
}

TEST(ImageCodec, ResizeKeepsConstantsAndAverages) {
  auto flat = torch::full({3, 40, 36}, 77, torch::kUInt8);
  auto small = resize_image(flat, 32, 32);
  ASSERT_EQ(small.sizes(), (c10::IntArrayRef{3, 32, 32}));
  EXPECT_TRUE(torch::equal(small, torch::full({3, 32, 32}, 77, torch::kUInt8)));
  // Halving a 2x2 checkerboard of 0/200 averages it (antialiased), not samples it.
  auto checker = (torch::arange(64).view({8, 8}) + torch::arange(8).view({8, 1})).remainder(2);
  auto board = (checker * 200).to(torch::kUInt8).unsqueeze(0);  // [1, 8, 8]
  auto half = resize_image(board, 4, 4);  // [1, 4, 4]
  auto inner = half.slice(1, 1, 3).slice(2, 1, 3).to(torch::kInt32);
  EXPECT_LE((inner - 100).abs().max().item<int>(), 1) << half;
  EXPECT_LE((half.to(torch::kInt32) - 100).abs().max().item<int>(), 30) << half;
  auto same = resize_image(flat, 40, 36);
  EXPECT_TRUE(same.is_same(flat));
}
