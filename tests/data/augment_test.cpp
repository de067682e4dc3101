#include "metadistill/data/augment.h"

#include <gtest/gtest.h>

#include <ATen/CPUGeneratorImpl.h>

#include <string>
#include <vector>

#include "metadistill/util/error.h"
#include "test_util.h"

namespace metadistill {
namespace {

using metadistill::testing::expect_error;

// Every crop window of `image` [C, H, W] zero-padded by `pad` pixels on each side, each also
// flipped left-right when `flip`: the outputs augment_batch may give for this image.
std::vector<torch::Tensor> candidates(const torch::Tensor& image, int64_t pad, bool flip) {
  const int64_t c = image.size(0), h = image.size(1), w = image.size(2);
  auto padded = torch::zeros({c, h + 2 * pad, w + 2 * pad}, image.options());
  padded.slice(1, pad, pad + h).slice(2, pad, pad + w).copy_(image);
  std::vector<torch::Tensor> out;
  for (int64_t dy = 0; dy <= 2 * pad; ++dy)
    for (int64_t dx = 0; dx <= 2 * pad; ++dx) {
      auto window = padded.slice(1, dy, dy + h).slice(2, dx, dx + w).contiguous();
      out.push_back(window);
      if (flip) out.push_back(window.flip({2}).contiguous());
    }
  return out;
}

bool is_one_of(const torch::Tensor& t, const std::vector<torch::Tensor>& options) {
  for (const auto& o : options)
    if (t.equal(o)) return true;
  return false;
}

// Each of the four names is accepted; "none" alone leaves augmentation off, "crop" does not
// flip, "flip" does not crop (pad 0), "crop-flip" does both.
TEST(Augment, ParsesTheFourNamesAndSetsEnabled) {
  bool enabled = true;
  parse_augmentation("none", &enabled);
  EXPECT_FALSE(enabled);

  enabled = false;
  AugmentOptions o = parse_augmentation("crop-flip", &enabled);
  EXPECT_TRUE(enabled);
  EXPECT_EQ(o.pad, AugmentOptions().pad);
  EXPECT_GT(o.pad, 0);
  EXPECT_TRUE(o.flip);

  enabled = false;
  o = parse_augmentation("crop", &enabled);
  EXPECT_TRUE(enabled);
  EXPECT_EQ(o.pad, AugmentOptions().pad);
  EXPECT_FALSE(o.flip);

  enabled = false;
  o = parse_augmentation("flip", &enabled);
  EXPECT_TRUE(enabled);
  EXPECT_EQ(o.pad, 0);
  EXPECT_TRUE(o.flip);
}

// An unknown name is an Error that names it.
TEST(Augment, UnknownNameIsAnErrorNamingIt) {
  bool enabled = false;
  expect_error([&] { parse_augmentation("rotate90", &enabled); }, {"rotate90"});
  expect_error([&] { parse_augmentation("Crop-Flip", &enabled); }, {"Crop-Flip"});
}

// The output has the input's shape, dtype and device, and the input is left unchanged.
TEST(Augment, KeepsShapeDtypeAndDeviceAndLeavesTheInput) {
  torch::manual_seed(3);
  auto x = torch::randn({6, 3, 8, 5});
  const auto before = x.clone();
  auto gen = at::make_generator<at::CPUGeneratorImpl>(17);
  auto out = augment_batch(x, AugmentOptions().with_pad(2).with_flip(true), gen);
  EXPECT_EQ(out.sizes(), x.sizes());
  EXPECT_EQ(out.dtype(), x.dtype());
  EXPECT_EQ(out.device(), x.device());
  EXPECT_TRUE(x.equal(before));
}

// With a crop and a flip, every output image is a window of the zero-padded input image, flipped
// or not (candidates computed here independently); over a batch of 64 it is not the identity
// everywhere and some crops reach into the zero padding.
TEST(Augment, EachImageIsAShiftedWindowOfTheZeroPaddedImageFlippedOrNot) {
  torch::manual_seed(5);
  const int64_t pad = 2;
  // Values away from 0, so that padding zeros are told apart from image pixels.
  auto x = torch::rand({64, 2, 6, 7}) + 1.0;
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1234);
  auto out = augment_batch(x, AugmentOptions().with_pad(pad).with_flip(true), gen);
  ASSERT_EQ(out.sizes(), x.sizes());
  int64_t identity = 0, with_zeros = 0;
  for (int64_t i = 0; i < x.size(0); ++i) {
    const auto img = out[i].contiguous();
    EXPECT_TRUE(is_one_of(img, candidates(x[i], pad, true))) << "image " << i;
    if (img.equal(x[i])) ++identity;
    if (img.eq(0).any().item<bool>()) ++with_zeros;
  }
  EXPECT_LT(identity, x.size(0));
  EXPECT_GT(with_zeros, 0);  // some crops reach into the zero padding
  // Without the flip, every image is an unmirrored window.
  auto gen2 = at::make_generator<at::CPUGeneratorImpl>(1234);
  auto crop_only = augment_batch(x, AugmentOptions().with_pad(pad).with_flip(false), gen2);
  for (int64_t i = 0; i < x.size(0); ++i)
    EXPECT_TRUE(is_one_of(crop_only[i].contiguous(), candidates(x[i], pad, false))) << i;
}

// Flip only (pad 0): each image is itself or its mirror, and over 64 images both occur.
TEST(Augment, FlipOnlyMirrorsSomeImagesAndKeepsTheOthers) {
  torch::manual_seed(6);
  auto x = torch::randn({64, 3, 4, 5});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(99);
  auto out = augment_batch(x, AugmentOptions().with_pad(0).with_flip(true), gen);
  int64_t kept = 0, mirrored = 0;
  for (int64_t i = 0; i < x.size(0); ++i) {
    if (out[i].equal(x[i]))
      ++kept;
    else if (out[i].equal(x[i].flip({2})))
      ++mirrored;
    else
      ADD_FAILURE() << "image " << i << " is neither the input nor its mirror";
  }
  EXPECT_GT(kept, 0);
  EXPECT_GT(mirrored, 0);
  EXPECT_EQ(kept + mirrored, x.size(0));
}

// No crop and no flip leave the batch as it is.
TEST(Augment, NoCropAndNoFlipIsTheIdentity) {
  torch::manual_seed(7);
  auto x = torch::randn({4, 1, 5, 5});
  auto gen = at::make_generator<at::CPUGeneratorImpl>(1);
  EXPECT_TRUE(augment_batch(x, AugmentOptions().with_pad(0).with_flip(false), gen).equal(x));
}

// Two generators with the same seed give the same augmentation.
TEST(Augment, SameGeneratorSeedGivesTheSameBatch) {
  torch::manual_seed(8);
  auto x = torch::randn({16, 3, 6, 6});
  auto g1 = at::make_generator<at::CPUGeneratorImpl>(42);
  auto g2 = at::make_generator<at::CPUGeneratorImpl>(42);
  const AugmentOptions o;
  EXPECT_TRUE(augment_batch(x, o, g1).equal(augment_batch(x, o, g2)));
}

// augment_batch_at_step depends only on (seed, step): repeated calls agree (whatever the global
// generator did in between), another step or another seed gives another batch.
TEST(Augment, AtStepIsDeterministicInSeedAndStep) {
  torch::manual_seed(9);
  auto x = torch::randn({32, 3, 8, 8});
  const AugmentOptions o;
  torch::manual_seed(100);
  auto a = augment_batch_at_step(x, o, 5, 12);
  torch::manual_seed(200);
  torch::rand({10});
  auto b = augment_batch_at_step(x, o, 5, 12);
  EXPECT_TRUE(a.equal(b));
  EXPECT_FALSE(a.equal(augment_batch_at_step(x, o, 5, 13)));
  EXPECT_FALSE(a.equal(augment_batch_at_step(x, o, 6, 12)));
  // Each image is still a valid crop-and-flip of its input.
  for (int64_t i = 0; i < x.size(0); ++i)
    EXPECT_TRUE(is_one_of(a[i].contiguous(), candidates(x[i], o.pad, o.flip))) << i;
}

}  // namespace
}  // namespace metadistill
